//! Shuffled batches per epoch, made by worker threads ahead of the training step through a
//! bounded queue, identical whatever the number of workers: every random choice comes from an
//! RNG seeded by `(seed, epoch, index)`.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::mpsc::{Receiver, sync_channel};
use std::thread::JoinHandle;

use burn::tensor::{Device, Int, Tensor, TensorData};
use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_pcg::Pcg64Mcg;

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
    /// (no copy on the CPU backend).
    pub fn into_tensors(self, device: &Device) -> (Tensor<4>, Tensor<1, Int>) {
        let n = self.labels.len();
        (
            Tensor::<4>::from_data(TensorData::new(self.images, self.shape), device),
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
    /// Batches made ahead of the consumer.
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

/// Asks the kernel to back a large, not yet touched buffer with transparent huge pages: an
/// ImageNet batch (77 MB) then takes a few dozen page faults on first write instead of ~19,000.
/// A hint only; nothing changes where the kernel does not offer them.
fn advise_huge_pages(buf: &mut [f32]) {
    #[cfg(target_os = "linux")]
    {
        const PAGE: usize = 4096;
        let bytes = std::mem::size_of_val(buf);
        if bytes < 4 << 20 {
            return;
        }
        let start = buf.as_mut_ptr() as usize;
        let aligned = start.div_ceil(PAGE) * PAGE;
        let len = (start + bytes - aligned) / PAGE * PAGE;
        // SAFETY: the range lies inside `buf`'s allocation; MADV_HUGEPAGE changes no contents.
        unsafe {
            libc::madvise(aligned as *mut libc::c_void, len, libc::MADV_HUGEPAGE);
        }
    }
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
    let mut images = vec![0.0f32; ids.len() * per];
    advise_huge_pages(&mut images);
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

/// The batches of one epoch, in order.
pub struct EpochBatches {
    rx: Option<Receiver<(usize, Result<HostBatch, DataError>)>>,
    pending: BTreeMap<usize, Result<HostBatch, DataError>>,
    next: usize,
    total: usize,
    inline: Option<InlineEpoch>,
    workers: Vec<JoinHandle<()>>,
}

/// Starts an epoch: with workers, they begin making batches at once.
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
    let order = Arc::new(epoch_order(source.len(), cfg.seed, epoch, cfg.shuffle));
    let total = batches_per_epoch(source.len(), cfg.batch_size);
    if cfg.workers == 0 {
        return EpochBatches {
            rx: None,
            pending: BTreeMap::new(),
            next: 0,
            total,
            inline: Some((source, order, cfg, epoch)),
            workers: Vec::new(),
        };
    }
    let (tx, rx) = sync_channel(cfg.prefetch.max(1));
    let workers = (0..cfg.workers)
        .map(|k| {
            let (tx, source, order) = (tx.clone(), source.clone(), order.clone());
            std::thread::spawn(move || {
                for b in (k..total).step_by(cfg.workers) {
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
        self.pending.remove(&b)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let left = self.total - self.next;
        (left, Some(left))
    }
}

impl Drop for EpochBatches {
    fn drop(&mut self) {
        self.rx = None; // unblocks workers waiting to send
        for w in self.workers.drain(..) {
            let _ = w.join();
        }
    }
}
