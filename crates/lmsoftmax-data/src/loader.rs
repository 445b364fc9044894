//! Shuffled batches per epoch, made by worker threads ahead of the training step through a
//! bounded queue, identical whatever the number of workers: every random choice comes from an
//! RNG seeded by `(seed, epoch, index)`.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{Receiver, sync_channel};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;

use burn::tensor::{DType, Device, Int, Tensor, TensorData};
use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_pcg::Pcg64Mcg;

use crate::batch_buffers;
use crate::error::DataError;
use crate::source::Source;

/// A batch on the host: normalised images `[b, c, h, w]` and labels.
#[derive(Debug, Clone, PartialEq)]
pub struct HostBatch {
    /// `[b, c, h, w]`.
    pub shape: [usize; 4],
    /// Row-major image values.
    pub images: Vec<f32>,
    /// One label per image.
    pub labels: Vec<i64>,
}

impl HostBatch {
    /// Moves the batch to `device` as `(images [b,c,h,w], labels [b])`, handing its buffers over
    /// (no copy on the CPU backend). The image buffer returns to the
    /// [batch buffer cache](crate::batch_buffers) when the last tensor using it is dropped.
    pub fn into_tensors(self, device: &Device) -> (Tensor<4>, Tensor<1, Int>) {
        let n = self.labels.len();
        let images = TensorData::from_bytes(
            batch_buffers::into_bytes(self.images),
            self.shape,
            DType::F32,
        );
        (
            Tensor::<4>::from_data(images, device),
            Tensor::<1, Int>::from_data(TensorData::new(self.labels, [n]), device),
        )
    }

    /// Copies the batch to `device` as `(images [b,c,h,w], labels [b])`.
    pub fn to_tensors(&self, device: &Device) -> (Tensor<4>, Tensor<1, Int>) {
        (
            Tensor::<4>::from_data(TensorData::new(self.images.clone(), self.shape), device),
            Tensor::<1, Int>::from_data(
                TensorData::new(self.labels.clone(), [self.labels.len()]),
                device,
            ),
        )
    }
}

/// Batching settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LoaderConfig {
    /// Images per batch (the last one may be smaller).
    pub batch_size: usize,
    /// Shuffle every epoch.
    pub shuffle: bool,
    /// Seed of the shuffle and the augmentation.
    pub seed: u64,
    /// Worker threads (0: make batches on the calling thread).
    pub workers: usize,
    /// Batches made ahead of the consumer at most (at least `workers` are allowed, so that
    /// every worker can be busy).
    pub prefetch: usize,
}

/// SplitMix64 finaliser: decorrelates nearby seeds.
fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// The RNG of sample `index` in `epoch`.
pub fn sample_rng(seed: u64, epoch: u64, index: u64) -> Pcg64Mcg {
    Pcg64Mcg::seed_from_u64(mix(mix(mix(seed) ^ epoch) ^ index))
}

/// The order in which an epoch visits the samples.
pub fn epoch_order(len: usize, seed: u64, epoch: u64, shuffle: bool) -> Vec<usize> {
    let mut order: Vec<usize> = (0..len).collect();
    if shuffle {
        order.shuffle(&mut Pcg64Mcg::seed_from_u64(mix(
            mix(seed ^ 0x5348_5546) ^ epoch
        )));
    }
    order
}

/// Makes batch `b` of an epoch.
fn make_batch(
    source: &Source,
    order: &[usize],
    cfg: &LoaderConfig,
    epoch: u64,
    b: usize,
) -> Result<HostBatch, DataError> {
    let [c, h, w] = source.output_shape();
    let per = c * h * w;
    let ids = &order[b * cfg.batch_size..((b + 1) * cfg.batch_size).min(order.len())];
    // Reused from an earlier batch when one has been dropped: every slot is overwritten below.
    let mut images = batch_buffers::take(ids.len() * per);
    let mut labels = Vec::with_capacity(ids.len());
    for (slot, &index) in ids.iter().enumerate() {
        let mut rng = sample_rng(cfg.seed, epoch, index as u64);
        labels
            .push(source.fill(index, &mut rng, &mut images[slot * per..(slot + 1) * per])? as i64);
    }
    Ok(HostBatch {
        shape: [ids.len(), c, h, w],
        images,
        labels,
    })
}

/// Number of batches in an epoch of `len` samples (the partial last batch is kept).
pub fn batches_per_epoch(len: usize, batch_size: usize) -> usize {
    len.div_ceil(batch_size.max(1))
}

/// What an epoch made on the calling thread needs: source, order, settings, epoch.
type InlineEpoch = (Arc<Source>, Arc<Vec<usize>>, LoaderConfig, u64);

/// How far the workers may run ahead, shared between them and the consumer.
#[derive(Default)]
struct Window {
    state: Mutex<WindowState>,
    moved: Condvar,
}

#[derive(Default)]
struct WindowState {
    /// Batches handed to the consumer so far.
    consumed: usize,
    /// The consumer is gone: workers stop.
    closed: bool,
}

impl Window {
    /// Waits until batch `b` may be started (`b < consumed + ahead`); false once closed.
    fn wait_for(&self, b: usize, ahead: usize) -> bool {
        let mut st = self.state.lock().unwrap_or_else(|e| e.into_inner());
        while !st.closed && b >= st.consumed + ahead {
            st = self.moved.wait(st).unwrap_or_else(|e| e.into_inner());
        }
        !st.closed
    }

    fn set_consumed(&self, consumed: usize) {
        self.state
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .consumed = consumed;
        self.moved.notify_all();
    }

    fn close(&self) {
        self.state.lock().unwrap_or_else(|e| e.into_inner()).closed = true;
        self.moved.notify_all();
    }
}

/// The batches of one epoch, in order.
pub struct EpochBatches {
    rx: Option<Receiver<(usize, Result<HostBatch, DataError>)>>,
    pending: BTreeMap<usize, Result<HostBatch, DataError>>,
    next: usize,
    total: usize,
    inline: Option<InlineEpoch>,
    window: Arc<Window>,
    workers: Vec<JoinHandle<()>>,
}

/// Starts an epoch: with workers, they begin making batches at once.
///
/// Workers take the next batch index from a shared counter, so batches are made roughly in
/// order, and none starts a batch more than `max(prefetch, workers)` ahead of the consumer: a
/// slow worker cannot leave the others filling memory with batches that wait for its own.
///
/// ```
/// use std::sync::Arc;
/// use lmsoftmax_data::{LoaderConfig, SyntheticSpec, epoch_batches, synthetic, source::{Augment, Images, Source}, transforms::Normalize};
/// let data = synthetic(SyntheticSpec { train: 10, test: 0, seed: 1 });
/// let source = Arc::new(Source { images: Images::Memory(Arc::new(data.train)), augment: Augment::None, normalize: Normalize::cifar10() });
/// let cfg = LoaderConfig { batch_size: 4, shuffle: true, seed: 7, workers: 2, prefetch: 2 };
/// let sizes: Vec<usize> = epoch_batches(source, cfg, 0).map(|b| b.unwrap().labels.len()).collect();
/// assert_eq!(sizes, [4, 4, 2]);
/// ```
pub fn epoch_batches(source: Arc<Source>, cfg: LoaderConfig, epoch: u64) -> EpochBatches {
    let order = epoch_order(source.len(), cfg.seed, epoch, cfg.shuffle);
    batches_in_order(source, order, cfg, epoch)
}

/// The batches of an epoch that visits the samples of `order` (indices into `source`, repeats
/// allowed), in that order; `cfg.shuffle` is not used. What one rank of a data-parallel run takes
/// (its share of [`epoch_order`]); each sample is augmented as in [`epoch_batches`], by
/// `(seed, epoch, index)`.
///
/// ```
/// use std::sync::Arc;
/// use lmsoftmax_data::{LoaderConfig, SyntheticSpec, batches_in_order, synthetic, source::{Augment, Images, Source}, transforms::Normalize};
/// let data = synthetic(SyntheticSpec { train: 10, test: 0, seed: 1 });
/// let labels: Vec<i64> = data.train.labels().iter().map(|&l| l as i64).collect();
/// let source = Arc::new(Source { images: Images::Memory(Arc::new(data.train)), augment: Augment::None, normalize: Normalize::cifar10() });
/// let cfg = LoaderConfig { batch_size: 2, shuffle: false, seed: 7, workers: 0, prefetch: 1 };
/// let got: Vec<i64> = batches_in_order(source, vec![3, 1, 3], cfg, 0).flat_map(|b| b.unwrap().labels).collect();
/// assert_eq!(got, [labels[3], labels[1], labels[3]]);
/// ```
pub fn batches_in_order(
    source: Arc<Source>,
    order: Vec<usize>,
    cfg: LoaderConfig,
    epoch: u64,
) -> EpochBatches {
    let total = batches_per_epoch(order.len(), cfg.batch_size);
    let order = Arc::new(order);
    let window = Arc::new(Window::default());
    if cfg.workers == 0 {
        return EpochBatches {
            rx: None,
            pending: BTreeMap::new(),
            next: 0,
            total,
            inline: Some((source, order, cfg, epoch)),
            window,
            workers: Vec::new(),
        };
    }
    let ahead = cfg.prefetch.max(cfg.workers);
    // Never full: the window bounds what is in flight, so a send never blocks.
    let (tx, rx) = sync_channel(ahead);
    let counter = Arc::new(AtomicUsize::new(0));
    let workers = (0..cfg.workers)
        .map(|_| {
            let (tx, source, order) = (tx.clone(), source.clone(), order.clone());
            let (counter, window) = (counter.clone(), window.clone());
            std::thread::spawn(move || {
                loop {
                    let b = counter.fetch_add(1, Ordering::Relaxed);
                    if b >= total || !window.wait_for(b, ahead) {
                        return;
                    }
                    let batch = make_batch(&source, &order, &cfg, epoch, b);
                    if tx.send((b, batch)).is_err() {
                        return; // the consumer stopped early
                    }
                }
            })
        })
        .collect();
    EpochBatches {
        rx: Some(rx),
        pending: BTreeMap::new(),
        next: 0,
        total,
        inline: None,
        window,
        workers,
    }
}

impl Iterator for EpochBatches {
    type Item = Result<HostBatch, DataError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.next >= self.total {
            return None;
        }
        let b = self.next;
        self.next += 1;
        if let Some((source, order, cfg, epoch)) = &self.inline {
            return Some(make_batch(source, order, cfg, *epoch, b));
        }
        let rx = self.rx.as_ref()?;
        while !self.pending.contains_key(&b) {
            match rx.recv() {
                Ok((i, batch)) => {
                    self.pending.insert(i, batch);
                }
                Err(_) => {
                    return Some(Err(DataError::Invalid(
                        "a data worker stopped before its batches were made".into(),
                    )));
                }
            }
        }
        self.window.set_consumed(self.next);
        self.pending.remove(&b)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let left = self.total - self.next;
        (left, Some(left))
    }
}

impl Drop for EpochBatches {
    fn drop(&mut self) {
        self.window.close(); // wakes workers waiting for the window
        self.rx = None; // unblocks workers waiting to send
        for w in self.workers.drain(..) {
            let _ = w.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn the_window_holds_a_worker_until_the_consumer_catches_up_or_leaves() {
        let window = Arc::new(Window::default());
        let started = Arc::new(AtomicUsize::new(0));
        let (w, s) = (window.clone(), started.clone());
        let worker = std::thread::spawn(move || {
            // batch 5 with 2 ahead: may start once 4 batches are consumed
            let ok = w.wait_for(5, 2);
            s.store(1, Ordering::SeqCst);
            ok
        });
        std::thread::sleep(Duration::from_millis(50));
        window.set_consumed(3);
        std::thread::sleep(Duration::from_millis(50));
        assert_eq!(
            started.load(Ordering::SeqCst),
            0,
            "started 2 batches too far ahead"
        );
        window.set_consumed(4);
        assert!(worker.join().unwrap());

        let w = window.clone();
        let blocked = std::thread::spawn(move || w.wait_for(100, 2));
        std::thread::sleep(Duration::from_millis(20));
        window.close();
        assert!(
            !blocked.join().unwrap(),
            "a closed window must release its workers"
        );
    }

    #[test]
    fn dropping_an_epoch_early_stops_its_workers() {
        let data = crate::synthetic(crate::SyntheticSpec {
            train: 64,
            test: 0,
            seed: 1,
        });
        let source = Arc::new(Source {
            images: crate::source::Images::Memory(Arc::new(data.train)),
            augment: crate::source::Augment::None,
            normalize: crate::transforms::Normalize::cifar10(),
        });
        let cfg = LoaderConfig {
            batch_size: 2,
            shuffle: false,
            seed: 0,
            workers: 3,
            prefetch: 2,
        };
        let mut batches = epoch_batches(source, cfg, 0);
        assert_eq!(batches.next().unwrap().unwrap().labels.len(), 2);
        drop(batches); // joins the workers: the test would hang if any stayed blocked
    }
}
