//! The training loop: one epoch of SGD over the training split with the epoch's learning rate,
//! one pass over the test split, a metrics row, checkpoints of the last and the best epoch.
//! Resuming continues from the last checkpoint; batches depend only on `(seed, epoch)`, so a
//! resumed run follows the same path as an uninterrupted one.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, Result, bail};
use burn::module::Module;
use burn::optim::decay::WeightDecayConfig;
use burn::optim::momentum::MomentumConfig;
use burn::optim::{OptimizerRecord, SgdConfig};
use burn::store::ModuleRecord;
use burn::tensor::{Bytes, Device, Int, Tensor};
use indicatif::{ProgressBar, ProgressStyle};
use lmsoftmax_data::{Dataset, LoaderConfig, epoch_batches};
use lmsoftmax_loss::{LargeMarginInSoftmaxLoss, LargeMarginInSoftmaxLossConfig, row_diagnostics};
use lmsoftmax_models::Network;
use serde::{Deserialize, Serialize};

use super::checkpoint::{self, CheckpointParts};
use super::config::{LossKind, TrainConfig};
use super::parallel::{DataParallel, StepError};

/// What a run needs besides the data.
#[derive(Debug, Clone)]
pub struct TrainOptions {
    /// Dataset name (recorded in `run.json` for `lmsoftmax report`).
    pub dataset: String,
    /// Network name.
    pub arch: String,
    /// Channel-width multiplier.
    pub width: f32,
    /// The configuration (after command-line overrides).
    pub config: TrainConfig,
    /// Output folder.
    pub out_dir: PathBuf,
    /// Seed of initialisation, shuffling and augmentation.
    pub seed: u64,
    /// Data worker threads.
    pub workers: usize,
    /// No progress bars.
    pub quiet: bool,
    /// Continue from `out_dir`'s last checkpoint.
    pub resume: bool,
    /// Replace a different run in `out_dir`.
    pub overwrite: bool,
    /// Stop after this many epochs of this invocation (tests of resume; `None`: to the end).
    pub stop_after: Option<usize>,
    /// The devices (without autodiff; training adds it). The first is the main device, where the
    /// model, the optimizer and the evaluation live; with several, each step is split over
    /// replicas on all of them ([`super::parallel`]).
    pub devices: Vec<Device>,
    /// First epoch (0-based) of a fresh run, as the official `--start-epoch`.
    pub start_epoch: usize,
    /// With `quiet`: a log line every this many iterations (0: none), as the official `-p`.
    pub print_freq: usize,
    /// Keep `checkpoint-epoch{N}.ckpt` for every epoch (the official default); `false` keeps only
    /// the last and the best (the official `--save-last-checkpoint`).
    pub keep_epoch_checkpoints: bool,
    /// File name (inside `out_dir`) of the per-run training-curve figure (PNG); `None`: none.
    pub curves_file: Option<String>,
    /// Resume from this checkpoint file instead of `out_dir/checkpoint-last.ckpt`.
    pub resume_from: Option<PathBuf>,
}

impl TrainOptions {
    /// Options with the defaults of the command line: seed 0, two workers, width 1, CPU, no
    /// resume, keep only the last and best checkpoints, curves in `train_epochs.png`.
    ///
    /// ```
    /// use lmsoftmax::train::{TrainConfig, TrainOptions};
    /// let opts = TrainOptions::new("synthetic", "small_cnn", TrainConfig::builtin("layer13").unwrap(), "runs/a");
    /// assert_eq!((opts.seed, opts.width, opts.start_epoch), (0, 1.0, 0));
    /// ```
    pub fn new(
        dataset: &str,
        arch: &str,
        config: TrainConfig,
        out_dir: impl Into<PathBuf>,
    ) -> Self {
        Self {
            dataset: dataset.into(),
            arch: arch.into(),
            width: 1.0,
            config,
            out_dir: out_dir.into(),
            seed: 0,
            workers: 2,
            quiet: false,
            resume: false,
            overwrite: false,
            stop_after: None,
            devices: vec![Device::flex()],
            start_epoch: 0,
            print_freq: 100,
            keep_epoch_checkpoints: false,
            curves_file: Some("train_epochs.png".into()),
            resume_from: None,
        }
    }
}

impl TrainOptions {
    /// The main device (the first of `devices`; the CPU when the list is empty).
    pub fn main_device(&self) -> Device {
        self.devices.first().cloned().unwrap_or_else(Device::flex)
    }
}

/// What `run.json` records about a run: enough for `lmsoftmax report` to group runs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunMeta {
    /// Dataset name.
    pub dataset: String,
    /// Network.
    pub arch: String,
    /// Width multiplier.
    pub width: f32,
    /// Seed.
    pub seed: u64,
    /// Configuration name.
    pub config: String,
    /// Loss.
    pub loss: LossKind,
    /// Lambda of the regulariser (0 for softmax).
    pub reg_lambda: f64,
    /// Epochs configured.
    pub epochs: usize,
    /// Batch size.
    pub batch_size: usize,
}

/// One metrics row (errors in percent).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct EpochRow {
    /// Epoch, from 1.
    pub epoch: usize,
    /// Learning rate of the epoch.
    pub lr: f64,
    /// Mean training loss (running over the epoch, augmented data, train mode).
    pub train_loss: f64,
    /// Mean training cross-entropy.
    pub train_ce: f64,
    /// Mean training regulariser.
    pub train_reg: f64,
    /// Training top-1 error.
    pub train_top1_err: f64,
    /// Test loss (the training criterion, eval mode).
    pub test_loss: f64,
    /// Test top-1 error.
    pub test_top1_err: f64,
    /// Test top-5 error.
    pub test_top5_err: f64,
    /// Mean test margin `z_y - max_{j!=y} z_j`.
    pub mean_margin: f64,
    /// Mean test entropy of the non-target distribution.
    pub nontarget_entropy: f64,
    /// Wall time of the epoch (train + test).
    pub seconds: f64,
    /// Training images per second.
    pub images_per_s: f64,
}

/// The metrics columns, in order.
pub const COLUMNS: [&str; 13] = [
    "epoch",
    "lr",
    "train_loss",
    "train_ce",
    "train_reg",
    "train_top1_err",
    "test_loss",
    "test_top1_err",
    "test_top5_err",
    "mean_margin",
    "nontarget_entropy",
    "seconds",
    "images_per_s",
];

/// Run state stored in checkpoints.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct RunState {
    arch: String,
    width: f32,
    seed: u64,
    config: TrainConfig,
    rows: Vec<EpochRow>,
}

/// The outcome of a run.
#[derive(Debug, Clone)]
pub struct RunSummary {
    /// Every epoch's metrics.
    pub rows: Vec<EpochRow>,
    /// Lowest test top-1 error and that epoch's top-5 error.
    pub best: (f64, f64),
    /// Whether all configured epochs are done.
    pub finished: bool,
}

fn loss_module(config: &TrainConfig, device: &Device) -> Result<LargeMarginInSoftmaxLoss> {
    let lambda = match config.loss {
        LossKind::Softmax => 0.0,
        LossKind::LargeMargin => config.reg_lambda,
    };
    Ok(LargeMarginInSoftmaxLossConfig::new()
        .with_reg_lambda(lambda)
        .init(device)?)
}

/// Counts of rows whose target is not the top-1 / not in the top-5 (ties count against).
fn errors(logits: &Tensor<2>, y: &Tensor<1, Int>) -> (usize, usize) {
    let [b, _] = logits.dims();
    let target = logits.clone().gather(1, y.clone().reshape([b, 1]));
    let rank = logits.clone().greater(target).int().sum_dim(1);
    let ranks: Vec<i64> = rank
        .into_data()
        .try_into_vec_as::<i64>()
        .unwrap_or_default();
    (
        ranks.iter().filter(|&&r| r >= 1).count(),
        ranks.iter().filter(|&&r| r >= 5).count(),
    )
}

fn mean_of(t: Tensor<1>) -> f64 {
    t.mean().into_scalar::<f32>() as f64
}

/// Test-set statistics of a model.
#[derive(Debug, Clone, Serialize)]
pub struct EvalStats {
    /// Images evaluated.
    pub images: usize,
    /// Mean loss (the training criterion).
    pub loss: f64,
    /// Top-1 error, percent.
    pub top1_err: f64,
    /// Top-5 error, percent.
    pub top5_err: f64,
    /// Mean margin `z_y - max_{j!=y} z_j`.
    pub mean_margin: f64,
    /// 10th, 50th and 90th percentile of the margin.
    pub margin_quantiles: [f64; 3],
    /// Mean entropy of the non-target distribution.
    pub nontarget_entropy: f64,
}

/// Evaluates `model` (eval mode, plain device) on the test split.
///
/// # Errors
/// Data or loss errors.
pub fn evaluate(
    model: &Network,
    data: &Dataset,
    loss: &LargeMarginInSoftmaxLoss,
    cfg: LoaderConfig,
) -> Result<EvalStats> {
    Ok(evaluate_margins(model, data, loss, cfg, &Device::flex())?.0)
}

/// As [`evaluate`] on `device`, also returning every test image's margin `z_y - max_{j!=y} z_j`
/// in test-set order.
///
/// # Errors
/// Data or loss errors.
pub fn evaluate_margins(
    model: &Network,
    data: &Dataset,
    loss: &LargeMarginInSoftmaxLoss,
    cfg: LoaderConfig,
    device: &Device,
) -> Result<(EvalStats, Vec<f64>)> {
    let plain = device.clone();
    let (mut n, mut total_loss, mut e1, mut e5, mut entropy) = (0usize, 0f64, 0usize, 0usize, 0f64);
    let mut margins: Vec<f64> = Vec::with_capacity(data.test.len());
    for batch in epoch_batches(data.test.clone(), cfg, 0) {
        let batch = batch?;
        let size = batch.labels.len();
        let (x, y) = batch.into_tensors(&plain);
        let logits = model.forward(x);
        total_loss += loss
            .try_forward(logits.clone(), y.clone())?
            .into_scalar::<f32>() as f64
            * size as f64;
        let (w1, w5) = errors(&logits, &y);
        let diag = row_diagnostics(logits, y)?;
        margins.extend(
            diag.margin
                .into_data()
                .try_into_vec_as::<f64>()
                .unwrap_or_default(),
        );
        entropy += diag.nontarget_entropy.sum().into_scalar::<f32>() as f64;
        e1 += w1;
        e5 += w5;
        n += size;
    }
    let count = n.max(1) as f64;
    let mut sorted = margins.clone();
    sorted.sort_by(f64::total_cmp);
    let q = |p: f64| {
        sorted
            .get(((sorted.len().max(1) - 1) as f64 * p).round() as usize)
            .copied()
            .unwrap_or(f64::NAN)
    };
    let stats = EvalStats {
        images: n,
        loss: total_loss / count,
        top1_err: 100.0 * e1 as f64 / count,
        top5_err: 100.0 * e5 as f64 / count,
        mean_margin: margins.iter().sum::<f64>() / count,
        margin_quantiles: [q(0.1), q(0.5), q(0.9)],
        nontarget_entropy: entropy / count,
    };
    Ok((stats, margins))
}

/// Loads a checkpoint's network for `data` and evaluates it on the test split.
///
/// # Errors
/// A corrupt checkpoint, a network that does not fit the data, data errors.
pub fn evaluate_checkpoint(
    path: &Path,
    data: &Dataset,
    batch_size: usize,
    workers: usize,
    device: &Device,
) -> Result<(String, EvalStats)> {
    let parts = checkpoint::read(path)?;
    let state: RunState = serde_json::from_slice(&parts.state).context("checkpoint run state")?;
    let plain = device.clone();
    let [c, _, _] = data.test.output_shape();
    let model =
        lmsoftmax_models::build(&state.arch, c, data.class_names.len(), state.width, &plain)?;
    let record = ModuleRecord::from_bytes(Bytes::from_bytes_vec(parts.model))
        .context("checkpoint model record")?;
    let model = model.try_load_record(record).with_context(|| {
        format!(
            "{} does not fit {} with {} classes",
            path.display(),
            state.arch,
            data.class_names.len()
        )
    })?;
    let loss = loss_module(&state.config, &plain)?;
    let cfg = LoaderConfig {
        batch_size,
        shuffle: false,
        seed: 0,
        workers,
        prefetch: 2 * workers.max(1),
    };
    Ok((
        format!(
            "{} (width {}), config {}, {} epochs done",
            state.arch,
            state.width,
            state.config.name,
            state.rows.len()
        ),
        evaluate_margins(&model.valid(), data, &loss, cfg, &plain)?.0,
    ))
}

/// Moves the metrics files and the final line into place for `rows`.
fn write_metrics(out: &Path, rows: &[EpochRow]) -> Result<()> {
    let mut csv = COLUMNS.join(",");
    csv.push('\n');
    let mut jsonl = String::new();
    for r in rows {
        let v = [
            r.epoch as f64,
            r.lr,
            r.train_loss,
            r.train_ce,
            r.train_reg,
            r.train_top1_err,
            r.test_loss,
            r.test_top1_err,
            r.test_top5_err,
            r.mean_margin,
            r.nontarget_entropy,
            r.seconds,
            r.images_per_s,
        ];
        csv.push_str(
            &v.iter()
                .map(|x| format!("{x}"))
                .collect::<Vec<_>>()
                .join(","),
        );
        csv.push('\n');
        jsonl.push_str(&serde_json::to_string(r)?);
        jsonl.push('\n');
    }
    checkpoint::write_atomic(&out.join("metrics.csv"), csv.as_bytes())?;
    checkpoint::write_atomic(&out.join("metrics.jsonl"), jsonl.as_bytes())
}

/// The row of the lowest test top-1 error; ties go to the later epoch, as in the official script.
///
/// ```
/// # use lmsoftmax::train::{EpochRow, run::best_row};
/// let row = |epoch, err| EpochRow { epoch, test_top1_err: err, ..EpochRow::default() };
/// let rows = [row(1, 9.0), row(2, 7.0), row(3, 7.0), row(4, 8.0)];
/// assert_eq!(best_row(&rows).unwrap().epoch, 3);
/// assert!(best_row(&[]).is_none());
/// ```
pub fn best_row(rows: &[EpochRow]) -> Option<&EpochRow> {
    rows.iter().fold(None, |best, r| match best {
        Some(b) if b.test_top1_err < r.test_top1_err => Some(b),
        _ => Some(r),
    })
}

fn best_of(rows: &[EpochRow]) -> (f64, f64) {
    best_row(rows).map_or((f64::NAN, f64::NAN), |r| (r.test_top1_err, r.test_top5_err))
}

fn save(
    path: &Path,
    state: &RunState,
    model: &Network,
    optim: &burn::optim::ModuleOptimizer,
) -> Result<()> {
    let parts = CheckpointParts {
        state: serde_json::to_vec(state)?,
        model: checkpoint::bytes_vec(
            model
                .clone()
                .into_record()
                .into_bytes()
                .context("serialising the model")?,
        ),
        optimizer: checkpoint::bytes_vec(
            optim
                .to_record()
                .into_bytes()
                .context("serialising the optimizer")?,
        ),
    };
    checkpoint::write(path, &parts)
}

/// The seed of the device's random stream (dropout) for `epoch`: a function of the run's seed and
/// the epoch only, so a resumed run draws the same masks as an uninterrupted one.
fn epoch_seed(seed: u64, epoch: usize) -> u64 {
    let mut z = seed ^ (epoch as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Files a run writes into its folder (removed by `--overwrite` before a new run starts).
fn is_run_file(name: &str) -> bool {
    matches!(
        name,
        "metrics.csv"
            | "metrics.jsonl"
            | "summary.txt"
            | "run.json"
            | "config.toml"
            | "test-margins.txt"
    ) || (name.starts_with("checkpoint-") && (name.ends_with(".ckpt") || name.ends_with(".tmp")))
}

/// A freshly initialised network, the optimizer, and the state of a new run.
fn fresh(
    opts: &TrainOptions,
    data: &Dataset,
    device: &Device,
) -> Result<(Network, burn::optim::ModuleOptimizer, RunState)> {
    device.seed(opts.seed);
    let [c, _, _] = data.train.output_shape();
    let classes = data.class_names.len();
    let model = lmsoftmax_models::build(&opts.arch, c, classes, opts.width, device)?;
    let optim = SgdConfig::new()
        .with_momentum(Some(
            MomentumConfig::new()
                .with_momentum(opts.config.momentum)
                .with_dampening(0.0),
        ))
        .with_weight_decay(Some(WeightDecayConfig::new(
            opts.config.weight_decay as f32,
        )))
        .init();
    let state = RunState {
        arch: opts.arch.clone(),
        width: opts.width,
        seed: opts.seed,
        config: opts.config.clone(),
        rows: Vec::new(),
    };
    Ok((model, optim, state))
}

/// Loads `path` into the pieces [`fresh`] made, after checking it belongs to the same run.
fn restore(
    path: &Path,
    opts: &TrainOptions,
    (model, optim, _): (Network, burn::optim::ModuleOptimizer, RunState),
) -> Result<(Network, burn::optim::ModuleOptimizer, RunState)> {
    let parts = checkpoint::read(path)?;
    let saved: RunState = serde_json::from_slice(&parts.state).context("checkpoint run state")?;
    if saved.arch != opts.arch
        || saved.config != opts.config
        || saved.seed != opts.seed
        || saved.width != opts.width
    {
        bail!(
            "--resume: {} was trained with arch {} width {} seed {} config '{}'; give the same options",
            path.display(),
            saved.arch,
            saved.width,
            saved.seed,
            saved.config.name
        );
    }
    let record = ModuleRecord::from_bytes(Bytes::from_bytes_vec(parts.model))
        .context("checkpoint model record")?;
    let model = model
        .try_load_record(record)
        .context("loading the model from the checkpoint")?;
    let record = OptimizerRecord::from_bytes(Bytes::from_bytes_vec(parts.optimizer))
        .context("checkpoint optimizer record")?;
    Ok((model, optim.load_record(record), saved))
}

/// Evaluates the model of a run once and returns the statistics, as the official `--evaluate`:
/// the checkpoint given by `resume_from` (or `out_dir`'s last one with `resume`), else the
/// freshly initialised network.
///
/// # Errors
/// A corrupt or foreign checkpoint, data errors.
pub fn evaluate_run(opts: &TrainOptions, data: &Dataset) -> Result<EvalStats> {
    let main = opts.main_device();
    let device = main.clone().autodiff();
    let mut pieces = fresh(opts, data, &device)?;
    let from = opts.resume_from.clone().or_else(|| {
        opts.resume
            .then(|| opts.out_dir.join("checkpoint-last.ckpt"))
    });
    if let Some(path) = from {
        pieces = restore(&path, opts, pieces)?;
    }
    let loss = loss_module(&opts.config, &main)?;
    let cfg = LoaderConfig {
        batch_size: opts.config.batch_size,
        shuffle: false,
        seed: opts.seed,
        workers: opts.workers,
        prefetch: 2 * opts.workers.max(1),
    };
    Ok(evaluate_margins(&pieces.0.valid(), data, &loss, cfg, &main)?.0)
}

/// Trains (or resumes) a run; writes everything into `opts.out_dir`.
///
/// Per epoch, in this order: `metrics.csv`/`metrics.jsonl`, `test-margins.txt`, the epoch and
/// best checkpoints, then `checkpoint-last.ckpt`, each atomically; a run killed anywhere resumes
/// from the last checkpoint and rewrites the same rows and files.
///
/// # Errors
/// Bad options, data errors, a non-finite loss (with epoch and batch), I/O errors (a full disk is
/// named as such; files already written stay intact).
pub fn train(opts: &TrainOptions, data: &Dataset) -> Result<RunSummary> {
    let out = &opts.out_dir;
    let last = out.join("checkpoint-last.ckpt");
    let best_path = out.join("checkpoint-best.ckpt");
    let started = out.join("run.json").exists();
    if !opts.resume
        && !opts.overwrite
        && (last.exists() || out.join("metrics.csv").exists() || started)
    {
        bail!(
            "{} already holds a run: pass --resume to continue it or --overwrite to replace it",
            out.display()
        );
    }
    if opts.overwrite && !opts.resume && out.is_dir() {
        for entry in std::fs::read_dir(out)? {
            let entry = entry?;
            if entry.file_name().to_str().is_some_and(is_run_file) {
                std::fs::remove_file(entry.path())
                    .with_context(|| format!("removing {}", entry.path().display()))?;
            }
        }
    }
    std::fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;

    let plain = opts.main_device();
    let device = plain.clone().autodiff();
    let replicas: Vec<Device> = opts.devices.iter().map(|d| d.clone().autodiff()).collect();
    let (mut model, mut optim, mut state) = fresh(opts, data, &device)?;
    let resume_path = opts
        .resume_from
        .clone()
        .or_else(|| (opts.resume && last.exists()).then(|| last.clone()));
    match resume_path {
        Some(path) => (model, optim, state) = restore(&path, opts, (model, optim, state))?,
        None if opts.resume && opts.resume_from.is_none() => {
            if !started {
                bail!(
                    "--resume: no checkpoint found in {} (and no run was started there)",
                    out.display()
                );
            }
            eprintln!(
                "=> no checkpoint yet in {}: the run starts again from its first epoch",
                out.display()
            );
        }
        None => {}
    }
    let meta = RunMeta {
        dataset: opts.dataset.clone(),
        arch: opts.arch.clone(),
        width: opts.width,
        seed: opts.seed,
        config: opts.config.name.clone(),
        loss: opts.config.loss,
        reg_lambda: match opts.config.loss {
            LossKind::Softmax => 0.0,
            LossKind::LargeMargin => opts.config.reg_lambda,
        },
        epochs: opts.config.epochs,
        batch_size: opts.config.batch_size,
    };
    checkpoint::write_atomic(
        &out.join("run.json"),
        serde_json::to_string_pretty(&meta)?.as_bytes(),
    )?;
    let resolved = toml::to_string(&opts.config)?;
    checkpoint::write_atomic(&out.join("config.toml"), resolved.as_bytes())?;

    let parallel = DataParallel::new(&replicas, |d| loss_module(&opts.config, d))?;
    let loss_eval = loss_module(&opts.config, &plain)?;
    let cfg = opts.config.clone();
    let loader = |shuffle| LoaderConfig {
        batch_size: cfg.batch_size,
        shuffle,
        seed: opts.seed,
        workers: opts.workers,
        prefetch: 2 * opts.workers.max(1),
    };
    let first = state.rows.last().map_or(opts.start_epoch, |r| r.epoch);
    for (done_now, epoch) in (first..cfg.epochs).enumerate() {
        if opts.stop_after.is_some_and(|n| done_now >= n) {
            break;
        }
        device.seed(epoch_seed(opts.seed, epoch));
        let lr = cfg.lr(epoch);
        let start = Instant::now();
        let batches = lmsoftmax_data::batches_per_epoch(data.train.len(), cfg.batch_size);
        let bar = if opts.quiet {
            ProgressBar::hidden()
        } else {
            ProgressBar::new(batches as u64)
        };
        bar.set_style(
            ProgressStyle::with_template("epoch {prefix} [{bar:30}] {pos}/{len} ETA {eta} {msg}")
                .expect("valid template")
                .progress_chars("=> "),
        );
        bar.set_prefix(format!("{}/{}", epoch + 1, cfg.epochs));
        let (mut n, mut sum_loss, mut sum_ce, mut sum_reg, mut wrong) =
            (0usize, 0f64, 0f64, 0f64, 0usize);
        for (b, batch) in epoch_batches(data.train.clone(), loader(true), epoch as u64).enumerate()
        {
            let batch = batch?;
            let size = batch.labels.len();
            let out = match parallel.step(&model, batch) {
                Ok(out) => out,
                Err(StepError::Loss(err @ lmsoftmax_loss::LossError::NonFiniteLogits { .. })) => {
                    bail!(
                        "training diverged at epoch {} batch {} ({err}): lower the learning rate; the \
                         last good checkpoint {} is intact",
                        epoch + 1,
                        b + 1,
                        last.display()
                    )
                }
                Err(StepError::Loss(err)) => return Err(err.into()),
                Err(StepError::Other(err)) => return Err(err),
            };
            let value = out.loss;
            if !value.is_finite() {
                bail!(
                    "the training loss became {value} at epoch {} batch {}: lower the learning rate; the last \
                     good checkpoint {} is intact",
                    epoch + 1,
                    b + 1,
                    last.display()
                );
            }
            let diag = row_diagnostics(out.logits.clone(), out.labels.clone())?;
            sum_ce += mean_of(diag.ce) * size as f64;
            sum_reg += mean_of(diag.reg) * size as f64;
            wrong += errors(&out.logits, &out.labels).0;
            sum_loss += value * size as f64;
            n += size;
            model = optim.step(lr, model, out.grads);
            bar.inc(1);
            let (mean_loss, err) = (sum_loss / n as f64, 100.0 * wrong as f64 / n as f64);
            bar.set_message(format!("loss {mean_loss:.4} err {err:.2}%"));
            if opts.quiet && opts.print_freq > 0 && b % opts.print_freq == 0 {
                eprintln!(
                    "Epoch: [{}][{}/{}]\tLoss {value:.4} ({mean_loss:.4})\tErr@1 {err:.3}",
                    epoch + 1,
                    b,
                    batches
                );
            }
        }
        let train_seconds = start.elapsed().as_secs_f64();
        bar.finish_and_clear();

        let (test, margins) =
            evaluate_margins(&model.valid(), data, &loss_eval, loader(false), &plain)?;
        let pct = |k: usize, n: usize| 100.0 * k as f64 / n.max(1) as f64;
        let row = EpochRow {
            epoch: epoch + 1,
            lr,
            train_loss: sum_loss / n.max(1) as f64,
            train_ce: sum_ce / n.max(1) as f64,
            train_reg: sum_reg / n.max(1) as f64,
            train_top1_err: pct(wrong, n),
            test_loss: test.loss,
            test_top1_err: test.top1_err,
            test_top5_err: test.top5_err,
            mean_margin: test.mean_margin,
            nontarget_entropy: test.nontarget_entropy,
            seconds: start.elapsed().as_secs_f64(),
            images_per_s: n as f64 / train_seconds,
        };
        if !opts.quiet || opts.print_freq > 0 {
            eprintln!(
                "epoch {}/{}: lr {:.6} train loss {:.4} err {:.2}% | test loss {:.4} err@1 {:.2}% err@5 {:.2}% | {:.0} img/s",
                row.epoch,
                cfg.epochs,
                row.lr,
                row.train_loss,
                row.train_top1_err,
                row.test_loss,
                row.test_top1_err,
                row.test_top5_err,
                row.images_per_s
            );
        }
        state.rows.push(row);
        let is_best = best_row(&state.rows).is_some_and(|b| b.epoch == epoch + 1);
        // Metrics and figures first, then the checkpoints that cover them, `last` at the end: a
        // run killed in between resumes from the previous `last` and rewrites the same files.
        write_metrics(out, &state.rows)?;
        let margins_text: String = margins.iter().map(|m| format!("{m}\n")).collect();
        checkpoint::write_atomic(&out.join("test-margins.txt"), margins_text.as_bytes())?;
        if let Some(name) = &opts.curves_file {
            crate::report::plots::run_curves(&state.rows, &cfg.name, &out.join(name))?;
        }
        if opts.keep_epoch_checkpoints {
            save(
                &out.join(format!("checkpoint-epoch{}.ckpt", epoch + 1)),
                &state,
                &model,
                &optim,
            )?;
        }
        if is_best {
            save(&best_path, &state, &model, &optim)?;
        }
        save(&last, &state, &model, &optim)?;
    }
    let best = best_of(&state.rows);
    let finished = state.rows.last().is_some_and(|r| r.epoch == cfg.epochs);
    if finished {
        let line = format!(" *BEST* Err@1 {:.3} Err@5 {:.3}", best.0, best.1);
        println!("{line}");
        checkpoint::write_atomic(&out.join("summary.txt"), format!("{line}\n").as_bytes())?;
    }
    Ok(RunSummary {
        rows: state.rows,
        best,
        finished,
    })
}
