//! The command line: every subcommand's flags as clap types. Turning them into a run is
//! [`crate::plan`]'s job, running it [`crate::commands`]'.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};
use lmsoftmax_kernels::autocast::Precision;
use lmsoftmax_loss::LossKind;

use crate::bench::loss::LossPath;

/// Large-margin softmax (Kobayashi, BMVC 2019): training, evaluation and benchmarks in Rust.
#[derive(Debug, Parser)]
#[command(name = "lmsoftmax", version, about)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Benchmarks (CPU backend; threads follow RAYON_NUM_THREADS).
    #[command(subcommand)]
    Bench(BenchCommand),
    /// Datasets: what a data folder holds.
    #[command(subcommand)]
    Dataset(DatasetCommand),
    /// The networks: name, parameters at the usual class count, input size, forward GMACs.
    Models(ModelsArgs),
    /// Train a network (the flags of the official cifar_train.py, kebab-case).
    Train(Box<TrainArgs>),
    /// Evaluate a checkpoint on a dataset's test split: errors, loss, margin statistics.
    Eval(EvalArgs),
    /// The shipped training configurations.
    Configs,
    /// Write a checkpoint's network under the PyTorch/torchvision key names (a `state_dict` that
    /// `load_state_dict(strict=True)` takes).
    Export(ExportArgs),
    /// Softmax vs the large-margin loss, a few seeds each, on synthetic data (or --data CIFAR-10).
    Demo(DemoArgs),
    /// The paper's table (final and best top-1 error, mean ± std over seeds) and figures from
    /// training folders.
    Report(ReportArgs),
}

/// `lmsoftmax export`.
#[derive(Debug, Args)]
pub struct ExportArgs {
    /// A checkpoint written by `lmsoftmax train`.
    pub checkpoint: PathBuf,
    /// Output format (safetensors: float32 weights and BatchNorm statistics, int64
    /// num_batches_tracked).
    #[arg(long, default_value = "safetensors", value_parser = ["safetensors"])]
    pub format: String,
    /// Output file [default: the checkpoint's path with the extension .safetensors].
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Classes of the network, for checkpoints of earlier versions that do not record them.
    #[arg(long)]
    pub classes: Option<usize>,
    /// Input channels of the network, for checkpoints of earlier versions (default 3).
    #[arg(long)]
    pub channels: Option<usize>,
}

/// `lmsoftmax report`.
#[derive(Debug, Args)]
pub struct ReportArgs {
    /// Training folders (or folders holding them, as `lmsoftmax demo` writes).
    #[arg(required = true)]
    pub runs: Vec<PathBuf>,
    /// Where the figures go.
    #[arg(long, default_value = "lmsoftmax-report")]
    pub out_dir: PathBuf,
    /// End with one JSON object (the table's numbers and the figures' paths).
    #[arg(long)]
    pub json: bool,
}

/// The flags of the official cifar_train.py and imagenet_train.py (kebab-case, same defaults;
/// where the two scripts differ the default follows `--dataset`), plus ours.
#[derive(Debug, Args)]
pub struct TrainArgs {
    /// Where the data comes from.
    #[command(flatten)]
    pub data: DataArgs,
    /// Network (see `lmsoftmax models`) [default: layer13; vgg16bow_bn for imagenet].
    #[arg(short = 'a', long)]
    pub arch: Option<String>,
    /// A shipped configuration (see `lmsoftmax configs`) [default: layer13_largemargin;
    /// imagenet_largemargin for imagenet].
    #[arg(long, conflicts_with = "config")]
    pub config_name: Option<String>,
    /// A TOML configuration file instead of a shipped one.
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Output folder for metrics, checkpoints, figures and the resolved config.
    #[arg(long, default_value = "./")]
    pub out_dir: PathBuf,
    /// Seed of initialisation, shuffling, augmentation and dropout.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Data worker threads [default: 6; 12 for imagenet].
    #[arg(short = 'j', long)]
    pub workers: Option<usize>,
    /// First epoch (0-based) of a fresh run; a resumed run continues from its checkpoint.
    #[arg(long, default_value_t = 0)]
    pub start_epoch: usize,
    /// With --quiet: log the running loss and error every N iterations (0: only per epoch).
    #[arg(short = 'p', long, default_value_t = 100)]
    pub print_freq: usize,
    /// File name (inside --out-dir) of the training-curve figure. Written as PNG: a name ending
    /// in .pdf gets .png instead.
    #[arg(long, default_value = "train_epochs.pdf")]
    pub pdf_filename: String,
    /// Keep only the last and the best checkpoints (default: also one per epoch,
    /// checkpoint-epoch{N}.ckpt, as the official script).
    #[arg(long)]
    pub save_last_checkpoint: bool,
    /// Evaluate once on the test split and exit (the model of --resume, else the untrained one).
    #[arg(short = 'e', long)]
    pub evaluate: bool,
    /// Epochs (respaces the learning-rate schedule over them).
    #[arg(long)]
    pub epochs: Option<usize>,
    /// Batch size (overrides the config).
    #[arg(short = 'b', long)]
    pub batch_size: Option<usize>,
    /// Loss kind: softmax, large-margin, label-smoothing, focal, poly or confidence-penalty
    /// (overrides the config's `[loss]` kind; its shared options stay, the kind's own
    /// parameters take their defaults).
    #[arg(long, value_name = "KIND")]
    pub loss: Option<LossKind>,
    /// Lambda of the large-margin regulariser (overrides the config; the loss must be
    /// large-margin). The same as --loss-param reg_lambda=L.
    #[arg(long)]
    pub reg_lambda: Option<f64>,
    /// One of the loss kind's own parameters, NAME=VALUE, repeatable (overrides the config):
    /// reg_lambda (large-margin, 0.3), smoothing (label-smoothing, 0.1), gamma (focal, 2),
    /// epsilon (poly, 1), beta (confidence-penalty, 0.1).
    #[arg(long, value_name = "NAME=VALUE")]
    pub loss_param: Vec<String>,
    /// Channel-width multiplier of the network.
    #[arg(long, default_value_t = 1.0)]
    pub width: f32,
    /// Continue a run: a run folder (default: --out-dir) or a checkpoint file.
    #[arg(long, num_args = 0..=1, value_name = "DIR|FILE")]
    pub resume: Option<Option<PathBuf>>,
    /// Replace a different run already in --out-dir.
    #[arg(long)]
    pub overwrite: bool,
    /// Device: cpu (the flex backend), or cuda[:N], rocm[:N], wgpu[:N] in a binary built with
    /// that cargo feature.
    #[arg(long, default_value = "cpu")]
    pub device: String,
    /// The official single-GPU flag: GPU N of the GPU backend compiled in.
    #[arg(long, conflicts_with = "device")]
    pub gpu: Option<usize>,
    /// Data-parallel training over these devices (comma-separated, the first is the main one):
    /// one replica per device, the batch split evenly, gradients summed on the main device.
    #[arg(long, value_name = "LIST", conflicts_with_all = ["device", "gpu"])]
    pub devices: Option<String>,
    /// One process per device (the official flag): under `mpirun` each rank trains on its
    /// local device (`--device cuda`: rank r of a machine takes cuda:r); without it, one
    /// process drives every visible GPU, as `--devices`.
    #[arg(long, conflicts_with_all = ["gpu", "devices"])]
    pub multiprocessing_distributed: bool,
    /// The official flag: the number of processes, or of nodes with
    /// --multiprocessing-distributed. Under `mpirun` (a build with `--features mpi`) MPI gives
    /// the world and this is checked against it; without, only 1 is accepted.
    #[arg(long, default_value_t = -1, allow_negative_numbers = true)]
    pub world_size: i64,
    /// This process's rank (the official flag; checked against MPI's under `mpirun`).
    #[arg(long, default_value_t = -1, allow_negative_numbers = true)]
    pub rank: i64,
    /// Rendezvous address (the official flag): accepted; under `mpirun` the rendezvous is MPI's
    /// own (`--hostfile`). `env://` reads WORLD_SIZE and RANK.
    #[arg(long, default_value = "tcp://127.0.0.1:8080")]
    pub dist_url: String,
    /// Collective backend (the official flag): accepted; the collectives are MPI's.
    #[arg(long, default_value = "nccl")]
    pub dist_backend: String,
    /// Under `mpirun`: seconds a collective may wait for the other ranks before the job is ended
    /// with the step and the rank (a rank that hangs); 1800, as torch.distributed's default.
    /// It also covers the ranks' wait while rank 0 alone reads a checkpoint to resume from or
    /// writes an epoch's files: keep it well above that.
    #[arg(long, default_value_t = 1800.0, value_name = "SECONDS")]
    pub collective_timeout: f64,
    /// Precision of the convolutions and linear layers: fp32, or bf16 as torch.autocast
    /// (bf16 operands, f32 sums; weights, optimizer, BatchNorm and loss in f32). CPU only.
    #[arg(long, default_value_t = Precision::Fp32, value_name = "fp32|bf16")]
    pub precision: Precision,
    /// Logs only, no progress bars.
    #[arg(long)]
    pub quiet: bool,
    /// Stop after this many epochs of this invocation (the run can be resumed).
    #[arg(long, hide = true)]
    pub stop_after: Option<usize>,
}

/// `lmsoftmax eval`.
#[derive(Debug, Args)]
pub struct EvalArgs {
    /// A checkpoint written by `lmsoftmax train` (checkpoint-last.ckpt or checkpoint-best.ckpt).
    #[arg(long)]
    pub checkpoint: PathBuf,
    /// Device: cpu, or cuda[:N], rocm[:N], wgpu[:N] with that cargo feature.
    #[arg(long, default_value = "cpu")]
    pub device: String,
    /// Where the data comes from.
    #[command(flatten)]
    pub data: DataArgs,
    /// Images per batch.
    #[arg(long, default_value_t = 128)]
    pub batch_size: usize,
    /// Data worker threads.
    #[arg(short = 'j', long, default_value_t = 2)]
    pub workers: usize,
    /// Precision of the convolutions and linear layers: fp32, or bf16 as torch.autocast
    /// (bf16 operands, f32 sums; weights, optimizer, BatchNorm and loss in f32). CPU only.
    #[arg(long, default_value_t = Precision::Fp32, value_name = "fp32|bf16")]
    pub precision: Precision,
    /// End with one JSON object.
    #[arg(long)]
    pub json: bool,
}

/// `lmsoftmax demo`.
#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Real CIFAR-10 instead of the synthetic dataset.
    #[arg(long)]
    pub data: Option<PathBuf>,
    /// Seeds per loss.
    #[arg(long, default_value_t = 2)]
    pub seeds: usize,
    /// Epochs per run.
    #[arg(long, default_value_t = 3)]
    pub epochs: usize,
    /// Network.
    #[arg(long, default_value = "small_cnn")]
    pub arch: String,
    /// Width multiplier.
    #[arg(long, default_value_t = 1.0)]
    pub width: f32,
    /// Synthetic training images.
    #[arg(long, default_value_t = 4000)]
    pub synthetic_train: usize,
    /// Synthetic test images.
    #[arg(long, default_value_t = 1000)]
    pub synthetic_test: usize,
    /// Where the runs are written.
    #[arg(long, default_value = "lmsoftmax-demo")]
    pub out_dir: PathBuf,
    /// Data worker threads.
    #[arg(short = 'j', long, default_value_t = 2)]
    pub workers: usize,
    /// Logs only, no progress bars.
    #[arg(long)]
    pub quiet: bool,
}

/// `lmsoftmax models`.
#[derive(Debug, Args)]
pub struct ModelsArgs {
    /// Print one JSON array instead of the table.
    #[arg(long)]
    pub json: bool,
}

/// `lmsoftmax bench train-step`.
#[derive(Debug, Args)]
pub struct BenchTrainStepArgs {
    /// Network (see `lmsoftmax models`).
    #[arg(long)]
    pub arch: String,
    /// Images per step.
    #[arg(long, default_value_t = 128)]
    pub batch_size: usize,
    /// Loss of the step: softmax or large-margin (its default options).
    #[arg(long, value_name = "KIND", default_value = "large-margin")]
    pub loss: LossKind,
    /// Channel-width multiplier of the network.
    #[arg(long, default_value_t = 1.0)]
    pub width: f32,
    /// Classes (default: the network's usual count).
    #[arg(long)]
    pub classes: Option<usize>,
    /// Untimed warm-up steps.
    #[arg(long, default_value_t = 2)]
    pub warmup: usize,
    /// Timed steps (the median is reported).
    #[arg(long, default_value_t = 5)]
    pub reps: usize,
    /// Device: cpu, or a GPU backend built in (wgpu, cuda:0, ...).
    #[arg(long, default_value = "cpu")]
    pub device: String,
    /// Precision of the convolutions and linear layers: fp32, or bf16 as torch.autocast
    /// (bf16 operands, f32 sums; weights, optimizer, BatchNorm and loss in f32). CPU only.
    #[arg(long, default_value_t = Precision::Fp32, value_name = "fp32|bf16")]
    pub precision: Precision,
    /// End with one JSON object (`step_ms`, `eval_images_per_s`, ...).
    #[arg(long)]
    pub json: bool,
}

/// `lmsoftmax dataset ...`.
#[derive(Debug, Subcommand)]
pub enum DatasetCommand {
    /// Image counts, classes, image shape and per-channel mean/std of the training images.
    Info(DatasetInfoArgs),
}

/// Where the data comes from (shared by every command that reads a dataset).
#[derive(Debug, Clone, Args)]
pub struct DataArgs {
    /// cifar10, cifar100, mnist (also kmnist, mnist-format), fashion-mnist, imagefolder, imagenet,
    /// synthetic [train's default: cifar100, as the official cifar_train.py].
    #[arg(long)]
    pub dataset: Option<String>,
    /// The folder holding the dataset (not needed for synthetic) [train's default: ./datasets/,
    /// ./datasets/imagenet12/images/ for imagenet].
    #[arg(long)]
    pub data: Option<PathBuf>,
    /// ImageFolder/ImageNet: skip (and count) images that cannot be read instead of failing.
    #[arg(long)]
    pub skip_bad_images: bool,
    /// ImageFolder/ImageNet: a file of image names to leave out, one per line.
    #[arg(long)]
    pub blacklist: Option<PathBuf>,
    /// CIFAR: download the official archive into --data first (MD5-checked; skipped when the
    /// dataset folder is already there).
    #[arg(long)]
    pub download: bool,
    /// With --download: fetch from this mirror address instead (needs --download-md5).
    #[arg(long, requires = "download_md5")]
    pub download_url: Option<String>,
    /// With --download-url: the archive's MD5 (32 hex digits).
    #[arg(long)]
    pub download_md5: Option<String>,
    /// With --download: seconds without progress (connecting or receiving) before the download
    /// fails.
    #[arg(long, default_value_t = 30.0)]
    pub download_timeout: f64,
    /// Synthetic dataset: training images.
    #[arg(long, default_value_t = 4000)]
    pub synthetic_train: usize,
    /// Synthetic dataset: test images.
    #[arg(long, default_value_t = 1000)]
    pub synthetic_test: usize,
}

/// `lmsoftmax dataset info`.
#[derive(Debug, Args)]
pub struct DatasetInfoArgs {
    /// Where the data comes from.
    #[command(flatten)]
    pub data: DataArgs,
    /// End with one JSON object.
    #[arg(long)]
    pub json: bool,
}

/// `lmsoftmax bench data`.
#[derive(Debug, Args)]
pub struct BenchDataArgs {
    /// Where the data comes from.
    #[command(flatten)]
    pub data: DataArgs,
    /// Images per batch.
    #[arg(long, default_value_t = 128)]
    pub batch_size: usize,
    /// Worker threads making batches (0: on the main thread).
    #[arg(long, default_value_t = 2)]
    pub workers: usize,
    /// Epochs to run.
    #[arg(long, default_value_t = 2)]
    pub epochs: usize,
    /// End with one JSON object (`images_per_s`, ...).
    #[arg(long)]
    pub json: bool,
}

/// `lmsoftmax bench ...`.
#[derive(Debug, Subcommand)]
pub enum BenchCommand {
    /// Median forward+backward time of the loss: fused kernel, composed ops, plain cross-entropy.
    Loss(BenchLossArgs),
    /// Images per second of the training input pipeline (read, augment, batch into tensors).
    Data(BenchDataArgs),
    /// One training step (forward, loss, backward, SGD) and eval throughput of a network.
    TrainStep(BenchTrainStepArgs),
}

/// `lmsoftmax bench loss`.
#[derive(Debug, Args)]
pub struct BenchLossArgs {
    /// Rows (batch size).
    #[arg(long, default_value_t = 1024)]
    pub n: usize,
    /// Classes.
    #[arg(long, default_value_t = 1000)]
    pub c: usize,
    /// Run every shape of the PyTorch reference (shared/bench/ref_loss.py) instead of one.
    #[arg(long, conflicts_with_all = ["n", "c"])]
    pub all: bool,
    /// Paths to time, in this order (the fused ones first: the composed path churns memory).
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "ce,fused,family,heads,composed,burn-ce"
    )]
    pub paths: Vec<LossPath>,
    /// Embedding size D of the margin heads (`heads` path): they take `N x D` features and own
    /// a `C x D` class-weight matrix [default: 128, layer13's pooled feature].
    #[arg(long, default_value_t = crate::bench::loss::DEFAULT_EMBED_DIM)]
    pub embed_dim: usize,
    /// Untimed warm-up runs per path.
    #[arg(long, default_value_t = 10)]
    pub warmup: usize,
    /// Timed runs per path (the median is reported).
    #[arg(long, default_value_t = 50)]
    pub reps: usize,
    /// Device: cpu, or a GPU backend built in (wgpu, cuda:0, ...).
    #[arg(long, default_value = "cpu")]
    pub device: String,
    /// End with one JSON object per shape, the last line holding the last shape.
    #[arg(long)]
    pub json: bool,
}
