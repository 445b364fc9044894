//! What a training run needs besides the data: the resolved options of `lmsoftmax train`.

use std::path::PathBuf;

use burn::tensor::Device;
use lmsoftmax_kernels::autocast::Precision;

use super::config::TrainConfig;

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
    /// Ranks (processes) of the run ([`crate::distributed::World::size`]); 1 without MPI.
    pub ranks: usize,
    /// Precision of the convolutions and linear layers (the steps and the evaluations run
    /// inside an [`lmsoftmax_kernels::autocast`] scope of it); checkpoints are f32 either way.
    pub precision: Precision,
}

impl TrainOptions {
    /// Options with the defaults of the command line: seed 0, two workers, width 1, CPU, no
    /// resume, keep only the last and best checkpoints, curves in `train_epochs.png`, fp32.
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
            ranks: 1,
            precision: Precision::Fp32,
        }
    }
}

impl TrainOptions {
    /// The main device (the first of `devices`; the CPU when the list is empty).
    pub fn main_device(&self) -> Device {
        self.devices.first().cloned().unwrap_or_else(Device::flex)
    }
}
