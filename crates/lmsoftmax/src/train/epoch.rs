//! One training epoch: shuffled batches of the training split, one SGD step each at the epoch's
//! learning rate, a progress bar, and the official iteration lines
//! (`Epoch: [e][i/n]  Time .. Data .. Loss .. Err@1 .. Err@5 ..`, each "current (average)").

use std::path::Path;
use std::time::Instant;

use super::collective::all_reduce_step;
use super::model::Classifier;
use super::parallel::DataParallel;
use super::step::{StepError, StepStats};
use crate::distributed::{World, rank_share};
use anyhow::{Result, bail};
use burn::optim::ModuleOptimizer;
use indicatif::{ProgressBar, ProgressStyle};
use lmsoftmax_data::{Dataset, LoaderConfig, batches_in_order, epoch_order};
use lmsoftmax_loss::LossError;

/// How an epoch is run and logged.
pub struct EpochPlan<'a> {
    /// The training data.
    pub data: &'a Dataset,
    /// The loader of the training split (shuffled), its batch size this rank's share of the
    /// global batch.
    pub loader: LoaderConfig,
    /// The ranks of the run: this one trains on its share of each epoch (as PyTorch's
    /// `DistributedSampler`) and the steps' gradients are all-reduced.
    pub world: &'a World,
    /// Epochs of the run (for the progress bar's `e/E`).
    pub epochs: usize,
    /// No progress bar.
    pub quiet: bool,
    /// With `quiet`, an iteration line every this many batches (0: none).
    pub print_freq: usize,
    /// The newest intact checkpoint, named when a divergence stops the run.
    pub last_checkpoint: &'a Path,
}

/// What one epoch of training measured.
#[derive(Debug, Clone, Copy)]
pub struct EpochTraining {
    /// Sums over the epoch's batches.
    pub stats: StepStats,
    /// Training steps taken (batches).
    pub steps: u64,
    /// Seconds spent in the all-reduce of the steps (many ranks; 0 otherwise).
    pub all_reduce_seconds: f64,
    /// Wall time of the training pass.
    pub seconds: f64,
}

impl EpochTraining {
    /// The running-average percentage of `count` rows.
    pub fn pct(&self, count: usize) -> f64 {
        100.0 * count as f64 / self.stats.rows.max(1) as f64
    }
}

/// "current (average)" of a value, as the official meters print it.
fn meter(current: f64, average: f64, decimals: usize) -> String {
    format!("{current:.decimals$} ({average:.decimals$})")
}

/// Trains `model` for epoch `epoch` (0-based) at rate `lr`, its first step being training
/// iteration `first_step` of the run (which a margin head's annealed `lambda` follows); returns
/// the updated model.
///
/// # Errors
/// Data errors, bad targets, a divergence (naming the epoch, the batch and the newest intact
/// checkpoint, if any), a failed replica.
pub fn train_epoch(
    plan: &EpochPlan,
    parallel: &DataParallel,
    mut model: Classifier,
    optim: &mut ModuleOptimizer,
    epoch: usize,
    lr: f64,
    first_step: u64,
) -> Result<(Classifier, EpochTraining)> {
    let start = Instant::now();
    let world = plan.world;
    let order = epoch_order(
        plan.data.train.len(),
        plan.loader.seed,
        epoch as u64,
        plan.loader.shuffle,
    );
    let mine = rank_share(&order, world.rank(), world.size());
    let batches = lmsoftmax_data::batches_per_epoch(mine.len(), plan.loader.batch_size);
    let bar = if plan.quiet || !world.is_root() {
        ProgressBar::hidden()
    } else {
        ProgressBar::new(batches as u64)
    };
    bar.set_style(
        ProgressStyle::with_template("epoch {prefix} [{bar:30}] {pos}/{len} ETA {eta} {msg}")
            .expect("valid template")
            .progress_chars("=> "),
    );
    bar.set_prefix(format!("{}/{}", epoch + 1, plan.epochs));
    let mut total = StepStats::default();
    let mut steps = 0u64;
    let mut all_reduce_seconds = 0f64;
    let (mut time_sum, mut data_sum) = (0f64, 0f64);
    let mut batch_iter =
        batches_in_order(plan.data.train.clone(), mine, plan.loader, epoch as u64).enumerate();
    loop {
        let waited = Instant::now();
        let Some((b, batch)) = batch_iter.next() else {
            break;
        };
        let batch = batch?;
        let data_time = waited.elapsed().as_secs_f64();
        super::phases::enter_step(epoch, b);
        model = model.at_iteration(first_step + b as u64);
        world.set_context(format!("epoch {} step {}", epoch + 1, b + 1));
        let out = parallel
            .step(&model, batch)
            .map_err(|e| step_failure(e, plan, epoch, b))?;
        let out = if world.size() > 1 {
            let reducing = Instant::now();
            let out = all_reduce_step(world, &model, out)?;
            all_reduce_seconds += reducing.elapsed().as_secs_f64();
            out
        } else {
            out
        };
        if !out.loss.is_finite() {
            bail!(
                "the training loss became {} at epoch {} batch {}: lower the learning rate; {}",
                out.loss,
                epoch + 1,
                b + 1,
                intact(plan.last_checkpoint)
            );
        }
        model = optim.step(lr, model, out.grads);
        total += out.stats;
        steps += 1;
        if super::interrupt::requested() {
            bar.finish_and_clear();
            return Err(crate::error::Interrupted {
                epoch: epoch + 1,
                batch: b + 1,
                resume: if plan.last_checkpoint.is_file() {
                    format!(
                        "{} (the epochs before it) is intact: continue with --resume",
                        plan.last_checkpoint.display()
                    )
                } else {
                    "no checkpoint was written yet: start the run again".into()
                },
            }
            .into());
        }
        let batch_time = waited.elapsed().as_secs_f64();
        time_sum += batch_time;
        data_sum += data_time;
        bar.inc(1);
        let pct = |k: usize, n: usize| 100.0 * k as f64 / n.max(1) as f64;
        let (mean_loss, err1) = (
            total.loss_sum / total.rows.max(1) as f64,
            pct(total.wrong_top1, total.rows),
        );
        bar.set_message(format!("loss {mean_loss:.4} err {err1:.2}%"));
        if plan.quiet && world.is_root() && plan.print_freq > 0 && b % plan.print_freq == 0 {
            let s = out.stats;
            let done = (b + 1) as f64;
            eprintln!(
                "Epoch: [{}][{b:>w$}/{batches}]\tTime {}\tData {}\tLoss {}\tErr@1 {}\tErr@5 {}",
                epoch + 1,
                meter(batch_time, time_sum / done, 3),
                meter(data_time, data_sum / done, 3),
                meter(s.loss_sum / s.rows.max(1) as f64, mean_loss, 4),
                meter(pct(s.wrong_top1, s.rows), err1, 3),
                meter(
                    pct(s.wrong_top5, s.rows),
                    pct(total.wrong_top5, total.rows),
                    3
                ),
                w = batches.to_string().len(),
            );
        }
    }
    bar.finish_and_clear();
    Ok((
        model,
        EpochTraining {
            stats: total,
            steps,
            all_reduce_seconds,
            seconds: start.elapsed().as_secs_f64(),
        },
    ))
}

/// What a diverging run leaves behind, for its message.
fn intact(last: &Path) -> String {
    if last.is_file() {
        format!("the last good checkpoint {} is intact", last.display())
    } else {
        "no checkpoint was written yet (the run diverged in its first epoch)".to_string()
    }
}

fn step_failure(e: StepError, plan: &EpochPlan, epoch: usize, b: usize) -> anyhow::Error {
    match e {
        StepError::Loss(err @ LossError::NonFiniteLogits { .. }) => anyhow::anyhow!(
            "training diverged at epoch {} batch {} ({err}): lower the learning rate; {}",
            epoch + 1,
            b + 1,
            intact(plan.last_checkpoint)
        ),
        StepError::Loss(err) => err.into(),
        StepError::Other(err) => err,
    }
}
