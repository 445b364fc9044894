//! Data-parallel training steps on one or several devices, the way Burn's multi-device execution
//! strategy (`ExecutionStrategy::MultiDevice` with `MultiDeviceOptim::OptimMainDevice`) runs
//! them: one worker thread per device holds a replica forked from the main model, each replica
//! computes the gradients of its shard of the batch, the gradients move to the main device and
//! are summed with Burn's `GradientsAccumulator`, and the optimizer steps once on the main device.
//!
//! The global batch is split evenly (the first shards take one more image when it does not
//! divide), and each shard's loss is scaled by its share of the batch, so the summed gradients are
//! those of the mean loss over the whole batch, the regulariser's mean over rows included, also for
//! the partial last batch. BatchNorm normalises with per-device batch statistics, as the official
//! DistributedDataParallel run does (not synchronised); its running statistics follow Burn's
//! `RunningState` (the replicas' values are averaged).
//!
//! With one device no thread is involved: the step runs on the caller's thread, exactly as a
//! plain training loop.

use std::sync::mpsc::{Receiver, Sender, channel};
use std::thread::JoinHandle;

use lmsoftmax_kernels::autocast::{self, Precision, autocast};

use super::model::{Classifier, Objective};
use super::step::shard_step;
pub use super::step::{StepError, StepOutput, StepStats};
use anyhow::{Result, anyhow, bail};
use burn::module::Module;
use burn::optim::GradientsAccumulator;
use burn::tensor::Device;
use lmsoftmax_data::{HostBatch, batch_buffers};

/// The rows of each shard when `batch` rows are split over `devices` devices: as even as
/// possible, the first shards one larger; empty shards when the batch is smaller than the
/// number of devices.
///
/// ```
/// use lmsoftmax::train::parallel::shard_sizes;
/// assert_eq!(shard_sizes(128, 2), vec![64, 64]);
/// assert_eq!(shard_sizes(81, 4), vec![21, 20, 20, 20]);
/// assert_eq!(shard_sizes(1, 2), vec![1, 0]);
/// ```
pub fn shard_sizes(batch: usize, devices: usize) -> Vec<usize> {
    let devices = devices.max(1);
    (0..devices)
        .map(|i| batch / devices + usize::from(i < batch % devices))
        .collect()
}

/// The shards of a host batch, in order.
fn split(batch: &HostBatch, devices: usize) -> Vec<HostBatch> {
    let [_, c, h, w] = batch.shape;
    let per_image = c * h * w;
    let mut start = 0;
    shard_sizes(batch.labels.len(), devices)
        .into_iter()
        .map(|n| {
            // in a reused buffer, as the loader's batches (it returns there after the step)
            let mut images = batch_buffers::take(n * per_image);
            images.copy_from_slice(&batch.images[start * per_image..(start + n) * per_image]);
            let shard = HostBatch {
                shape: [n, c, h, w],
                images,
                labels: batch.labels[start..start + n].to_vec(),
            };
            start += n;
            shard
        })
        .collect()
}

struct Job {
    model: Classifier,
    shard: HostBatch,
    scale: f64,
}

struct Worker {
    jobs: Option<Sender<Job>>,
    results: Receiver<Result<StepOutput, StepError>>,
    handle: Option<JoinHandle<()>>,
}

fn panic_text(payload: &(dyn std::any::Any + Send)) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown panic".into())
}

impl Worker {
    fn start(index: usize, device: Device, loss: Objective, precision: Precision) -> Self {
        let (jobs, inbox) = channel::<Job>();
        let (outbox, results) = channel();
        let handle = std::thread::Builder::new()
            .name(format!("replica-{index}"))
            .spawn(move || {
                let _autocast = autocast(precision);
                for job in inbox {
                    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                        let replica = job.model.fork(&device);
                        shard_step(&replica, &loss, job.shard, job.scale, &device)
                    }))
                    .unwrap_or_else(|payload| {
                        Err(StepError::Other(anyhow!(
                            "the replica on device {index} ({device:?}) failed: {}",
                            panic_text(payload.as_ref())
                        )))
                    });
                    if outbox.send(result).is_err() {
                        break;
                    }
                }
            })
            .expect("spawning a replica thread");
        Self {
            jobs: Some(jobs),
            results,
            handle: Some(handle),
        }
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        self.jobs.take();
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}

/// Runs training steps over a list of devices (the first is the main device).
pub struct DataParallel {
    main: Device,
    main_loss: Objective,
    workers: Vec<Worker>,
}

impl DataParallel {
    /// Replicas on `devices` (autodiff devices; the first is the main one, where the model and
    /// the optimizer live), each with `make_loss(device)` as its criterion. The replicas' threads
    /// run their steps under the [`lmsoftmax_kernels::autocast`] precision of the thread that
    /// calls this (the main device's steps run on the calling thread itself).
    ///
    /// # Errors
    /// No device, or the loss cannot be built.
    pub fn new(
        devices: &[Device],
        make_loss: impl Fn(&Device) -> Result<Objective>,
    ) -> Result<Self> {
        let Some(main) = devices.first() else {
            bail!("data-parallel training needs at least one device")
        };
        let precision = autocast::current();
        let workers = if devices.len() > 1 {
            devices
                .iter()
                .enumerate()
                .map(|(i, d)| Ok(Worker::start(i, d.clone(), make_loss(d)?, precision)))
                .collect::<Result<Vec<_>>>()?
        } else {
            Vec::new()
        };
        Ok(Self {
            main: main.clone(),
            main_loss: make_loss(main)?,
            workers,
        })
    }

    /// Number of devices.
    pub fn devices(&self) -> usize {
        self.workers.len().max(1)
    }

    /// One step's gradients of the mean loss over `batch`, and its loss and logits.
    ///
    /// # Errors
    /// The loss's error on a shard, or a failed replica (its panic message).
    pub fn step(&self, model: &Classifier, batch: HostBatch) -> Result<StepOutput, StepError> {
        if self.workers.is_empty() {
            return shard_step(model, &self.main_loss, batch, 1.0, &self.main);
        }
        let total = batch.labels.len() as f64;
        let shards = split(&batch, self.workers.len());
        batch_buffers::give(batch.images); // copied into the shards: free for the next batch
        let mut busy = Vec::new();
        for (worker, shard) in self.workers.iter().zip(shards) {
            if shard.labels.is_empty() {
                continue;
            }
            let scale = shard.labels.len() as f64 / total;
            let job = Job {
                model: model.clone(),
                shard,
                scale,
            };
            let sent = worker.jobs.as_ref().is_some_and(|j| j.send(job).is_ok());
            if !sent {
                return Err(StepError::Other(anyhow!(
                    "a replica thread is gone; the run cannot continue"
                )));
            }
            busy.push(worker);
        }
        let mut accumulator = GradientsAccumulator::<Classifier>::new();
        let (mut loss, mut stats) = (0.0, StepStats::default());
        let mut failure = None;
        // every busy worker answers (also after a failure elsewhere) before the step returns
        for worker in busy {
            match worker.results.recv() {
                Ok(Ok(out)) => {
                    loss += out.loss;
                    stats += out.stats;
                    accumulator.accumulate(model, out.grads.to_device(&self.main, model));
                }
                Ok(Err(e)) => failure = failure.or(Some(e)),
                Err(_) => {
                    failure = failure.or(Some(StepError::Other(anyhow!(
                        "a replica thread ended without answering"
                    ))))
                }
            }
        }
        if let Some(e) = failure {
            return Err(e);
        }
        Ok(StepOutput {
            loss,
            stats,
            grads: accumulator.grads(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::module::{ModuleVisitor, Param};
    use burn::optim::GradientsParams;
    use burn::tensor::{Int, Tensor};
    use lmsoftmax_loss::LossConfig;

    /// Every gradient of `model` in `grads`, flattened in visiting order.
    fn flat(model: &Classifier, grads: &GradientsParams) -> Vec<Vec<f32>> {
        struct Collect<'a> {
            grads: &'a GradientsParams,
            out: Vec<Vec<f32>>,
        }
        impl ModuleVisitor for Collect<'_> {
            fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
                if let Some(g) = self.grads.get::<D>(param.id) {
                    self.out
                        .push(g.into_data().try_into_vec_as::<f32>().unwrap());
                }
            }
        }
        let mut c = Collect { grads, out: vec![] };
        model.visit(&mut c);
        c.out
    }

    fn batch(n: usize, seed: u64) -> HostBatch {
        let mut state = seed;
        let mut next = move || {
            state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((state >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
        };
        HostBatch {
            shape: [n, 3, 32, 32],
            images: (0..n * 3 * 32 * 32).map(|_| next()).collect(),
            labels: (0..n).map(|i| (i * 7 % 10) as i64).collect(),
        }
    }

    #[test]
    fn two_replicas_give_the_full_batch_gradients_and_loss() {
        let device = Device::flex().autodiff();
        device.seed(3);
        // vgg11bow has no BatchNorm, so shards see exactly what the full batch sees; the
        // large-margin loss and a margin head both take their means over the whole batch
        for loss in [
            LossConfig::default(),
            LossConfig::of_kind(lmsoftmax_loss::LossKind::CosFace),
        ] {
            same_step_on_two_replicas(&device, &loss);
        }
    }

    fn same_step_on_two_replicas(device: &Device, loss: &LossConfig) {
        let device = device.clone();
        let model = Classifier::build("vgg11bow", 3, 10, 0.125, loss, &device).unwrap();
        let make_loss = |d: &Device| Objective::new(loss, d, false);
        let one = DataParallel::new(std::slice::from_ref(&device), make_loss).unwrap();
        let two = DataParallel::new(&[device.clone(), device.clone()], make_loss).unwrap();
        assert_eq!((one.devices(), two.devices()), (1, 2));
        // an even batch and an odd partial one (shards of 4 and 3 rows)
        for (n, seed) in [(8, 1), (7, 2)] {
            let b = batch(n, seed);
            let full = one.step(&model, b.clone()).unwrap();
            let split = two.step(&model, b).unwrap();
            assert!(
                (full.loss - split.loss).abs() <= 1e-6 * full.loss.abs(),
                "{} vs {}",
                full.loss,
                split.loss
            );
            let (a, c) = (flat(&model, &full.grads), flat(&model, &split.grads));
            assert_eq!(a.len(), c.len());
            assert!(!a.is_empty());
            for (ga, gc) in a.iter().zip(&c) {
                let norm = ga.iter().map(|v| v * v).sum::<f32>().sqrt();
                let diff = ga
                    .iter()
                    .zip(gc)
                    .map(|(x, y)| (x - y) * (x - y))
                    .sum::<f32>()
                    .sqrt();
                assert!(norm > 0.0);
                assert!(
                    diff <= 1e-4 * norm,
                    "gradient differs: {diff} vs norm {norm}"
                );
            }
            let (a, c) = (full.stats, split.stats);
            assert_eq!(a.rows, n);
            assert_eq!(
                (a.rows, a.wrong_top1, a.wrong_top5),
                (c.rows, c.wrong_top1, c.wrong_top5)
            );
            for (x, y) in [
                (a.loss_sum, c.loss_sum),
                (a.ce_sum, c.ce_sum),
                (a.reg_sum, c.reg_sum),
            ] {
                assert!((x - y).abs() <= 1e-5 * (1.0 + x.abs()), "{x} vs {y}");
            }
            // the large-margin loss is the mean of CE + lambda R over the batch
            if !loss.kind().is_head() {
                assert!((a.loss_sum - (a.ce_sum + 0.3 * a.reg_sum)).abs() <= 1e-4 * a.loss_sum);
            }
        }
    }

    #[test]
    fn the_scaled_shard_losses_sum_to_the_mean_loss_regulariser_included() {
        // at the loss level: logits split 5 + 3, each shard's mean scaled by its share
        let device = Device::flex().autodiff();
        let loss = LossConfig::default()
            .with_reg_lambda(0.3)
            .unwrap()
            .init(&device)
            .unwrap();
        let values: Vec<f32> = (0..8 * 6)
            .map(|i| ((i * 37 % 11) as f32 - 5.0) / 3.0)
            .collect();
        let targets: Vec<i64> = vec![0, 5, 2, 2, 1, 4, 3, 0];
        let logits = |rows: std::ops::Range<usize>| {
            Tensor::<2>::from_data(
                burn::tensor::TensorData::new(
                    values[rows.start * 6..rows.end * 6].to_vec(),
                    [rows.len(), 6],
                ),
                &device,
            )
            .require_grad()
        };
        let y = |rows: std::ops::Range<usize>| {
            Tensor::<1, Int>::from_data(
                burn::tensor::TensorData::new(targets[rows.clone()].to_vec(), [rows.len()]),
                &device,
            )
        };
        let full_in = logits(0..8);
        let full = loss.forward(full_in.clone(), y(0..8));
        let full_grad = full_in.grad(&full.backward()).unwrap();
        let (a_in, b_in) = (logits(0..5), logits(5..8));
        let a = loss.forward(a_in.clone(), y(0..5)).mul_scalar(5.0 / 8.0);
        let b = loss.forward(b_in.clone(), y(5..8)).mul_scalar(3.0 / 8.0);
        let sum = a.clone().into_scalar::<f32>() + b.clone().into_scalar::<f32>();
        assert!((sum - full.into_scalar::<f32>()).abs() < 1e-6);
        let ga = a_in.grad(&a.backward()).unwrap();
        let gb = b_in.grad(&b.backward()).unwrap();
        let joined = Tensor::cat(vec![ga, gb], 0)
            .into_data()
            .try_into_vec_as::<f32>()
            .unwrap();
        let whole = full_grad.into_data().try_into_vec_as::<f32>().unwrap();
        for (x, y) in joined.iter().zip(&whole) {
            assert!((x - y).abs() < 1e-6, "{x} vs {y}");
        }
    }

    #[test]
    fn a_failing_replica_is_an_error_not_a_hang() {
        let device = Device::flex().autodiff();
        let loss = LossConfig::default();
        let model = Classifier::build("small_cnn", 3, 10, 0.25, &loss, &device).unwrap();
        let make_loss = |d: &Device| Objective::new(&loss, d, true);
        let two = DataParallel::new(&[device.clone(), device.clone()], make_loss).unwrap();
        let mut b = batch(4, 9);
        b.labels[3] = 99; // out of range in the second shard
        match two.step(&model, b.clone()) {
            Err(StepError::Loss(e)) => assert!(e.to_string().contains("99"), "{e}"),
            Err(e) => panic!("unexpected error {e}"),
            Ok(_) => panic!("a bad label was accepted"),
        }
        // the pool still works afterwards
        b.labels[3] = 1;
        assert!(two.step(&model, b).is_ok());
    }
}
