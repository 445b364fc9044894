//! The `lmsoftmax` command. Exit status: 0 on success, 2 on bad usage or input, 1 otherwise.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use burn::tensor::Device;
use clap::{Args, Parser, Subcommand};
use lmsoftmax::bench::loss::{LossPath, REFERENCE_SHAPES, TABLE_HEADER, measure_paths, table_row};
use lmsoftmax::bench::train_step::StepLoss;
use lmsoftmax::dataset_info::dataset_info;
use lmsoftmax::device::{
    DistFlags, check_single_node, gpu_index, parse_device, parse_devices, visible_gpus,
};
use lmsoftmax::report::report;
use lmsoftmax::train::demo::{DemoOptions, demo, table};
use lmsoftmax::train::{
    LossKind, TrainConfig, TrainOptions, evaluate_checkpoint, evaluate_run, train,
};
use lmsoftmax_data::download::{Archive, download_and_extract};
use lmsoftmax_data::{
    Cifar, Dataset, DatasetName, FolderOptions, OpenOptions, SyntheticSpec, open_dataset,
};

/// mimalloc keeps freed blocks for reuse across threads. With the system allocator every large
/// tensor a training step makes (tens of MB each, on rayon threads) is a fresh `mmap` whose pages
/// the kernel zeroes on first touch: 10-20% of a layer13 step.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// mimalloc's `mi_option_purge_delay` (its position in `mi_option_e`, mimalloc v3's
/// `mimalloc.h`, the version `libmimalloc-sys` 0.1.49 builds by default).
const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

/// Keeps freed memory instead of handing it back to the OS a second after it is freed
/// (mimalloc v3's default purge delay, 1000 ms), as PyTorch's caching allocators do: a training
/// step frees and remakes the same large activations every step, and returned pages come back
/// zeroed by the kernel (42,000-47,000 page faults and ~6% of a layer13 step at batch 128). The
/// process keeps its peak memory. `MIMALLOC_PURGE_DELAY` in the environment (milliseconds; -1
/// never) still wins.
fn keep_freed_memory() {
    if std::env::var_os("MIMALLOC_PURGE_DELAY").is_none() {
        // SAFETY: setting a mimalloc option is thread-safe; -1 is a documented value.
        unsafe { libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, -1) };
    }
}

/// Large-margin softmax (Kobayashi, BMVC 2019): training, evaluation and benchmarks in Rust.
#[derive(Debug, Parser)]
#[command(name = "lmsoftmax", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
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
    /// Softmax vs the large-margin loss, a few seeds each, on synthetic data (or --data CIFAR-10).
    Demo(DemoArgs),
    /// The paper's table (final and best top-1 error, mean ± std over seeds) and figures from
    /// training folders.
    Report(ReportArgs),
}

#[derive(Debug, Args)]
struct ReportArgs {
    /// Training folders (or folders holding them, as `lmsoftmax demo` writes).
    #[arg(required = true)]
    runs: Vec<PathBuf>,
    /// Where the figures go.
    #[arg(long, default_value = "lmsoftmax-report")]
    out_dir: PathBuf,
    /// End with one JSON object (the table's numbers and the figures' paths).
    #[arg(long)]
    json: bool,
}

/// The flags of the official cifar_train.py and imagenet_train.py (kebab-case, same defaults;
/// where the two scripts differ the default follows `--dataset`), plus ours.
#[derive(Debug, Args)]
struct TrainArgs {
    #[command(flatten)]
    data: DataArgs,
    /// Network (see `lmsoftmax models`) [default: layer13; vgg16bow_bn for imagenet].
    #[arg(short = 'a', long)]
    arch: Option<String>,
    /// A shipped configuration (see `lmsoftmax configs`) [default: layer13_largemargin;
    /// imagenet_largemargin for imagenet].
    #[arg(long, conflicts_with = "config")]
    config_name: Option<String>,
    /// A TOML configuration file instead of a shipped one.
    #[arg(long)]
    config: Option<PathBuf>,
    /// Output folder for metrics, checkpoints, figures and the resolved config.
    #[arg(long, default_value = "./")]
    out_dir: PathBuf,
    /// Seed of initialisation, shuffling, augmentation and dropout.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Data worker threads [default: 6; 12 for imagenet].
    #[arg(short = 'j', long)]
    workers: Option<usize>,
    /// First epoch (0-based) of a fresh run; a resumed run continues from its checkpoint.
    #[arg(long, default_value_t = 0)]
    start_epoch: usize,
    /// With --quiet: log the running loss and error every N iterations (0: only per epoch).
    #[arg(short = 'p', long, default_value_t = 100)]
    print_freq: usize,
    /// File name (inside --out-dir) of the training-curve figure. Written as PNG: a name ending
    /// in .pdf gets .png instead.
    #[arg(long, default_value = "train_epochs.pdf")]
    pdf_filename: String,
    /// Keep only the last and the best checkpoints (default: also one per epoch,
    /// checkpoint-epoch{N}.ckpt, as the official script).
    #[arg(long)]
    save_last_checkpoint: bool,
    /// Evaluate once on the test split and exit (the model of --resume, else the untrained one).
    #[arg(short = 'e', long)]
    evaluate: bool,
    /// Epochs (respaces the learning-rate schedule over them).
    #[arg(long)]
    epochs: Option<usize>,
    /// Batch size (overrides the config).
    #[arg(short = 'b', long)]
    batch_size: Option<usize>,
    /// Loss (overrides the config).
    #[arg(long, value_enum)]
    loss: Option<LossKind>,
    /// Lambda of the large-margin regulariser (overrides the config).
    #[arg(long)]
    reg_lambda: Option<f64>,
    /// Channel-width multiplier of the network.
    #[arg(long, default_value_t = 1.0)]
    width: f32,
    /// Continue a run: a run folder (default: --out-dir) or a checkpoint file.
    #[arg(long, num_args = 0..=1, value_name = "DIR|FILE")]
    resume: Option<Option<PathBuf>>,
    /// Replace a different run already in --out-dir.
    #[arg(long)]
    overwrite: bool,
    /// Device: cpu (the flex backend), or cuda[:N], rocm[:N], wgpu[:N] in a binary built with
    /// that cargo feature.
    #[arg(long, default_value = "cpu")]
    device: String,
    /// The official single-GPU flag: GPU N of the GPU backend compiled in.
    #[arg(long, conflicts_with = "device")]
    gpu: Option<usize>,
    /// Data-parallel training over these devices (comma-separated, the first is the main one):
    /// one replica per device, the batch split evenly, gradients summed on the main device.
    #[arg(long, value_name = "LIST", conflicts_with_all = ["device", "gpu"])]
    devices: Option<String>,
    /// Every visible GPU of the GPU backend compiled in, as `--devices` (the official flag; one
    /// process drives them all).
    #[arg(long, conflicts_with_all = ["device", "gpu", "devices"])]
    multiprocessing_distributed: bool,
    /// Number of nodes (the official flag; only one node is supported, see the README).
    #[arg(long, default_value_t = -1, allow_negative_numbers = true)]
    world_size: i64,
    /// This node's rank (the official flag).
    #[arg(long, default_value_t = -1, allow_negative_numbers = true)]
    rank: i64,
    /// Rendezvous address of the nodes (the official flag; `env://` reads WORLD_SIZE and RANK).
    #[arg(long, default_value = "tcp://127.0.0.1:8080")]
    dist_url: String,
    /// Collective backend (the official flag; accepted for compatibility, Burn picks the transport).
    #[arg(long, default_value = "nccl")]
    dist_backend: String,
    /// Logs only, no progress bars.
    #[arg(long)]
    quiet: bool,
    /// Stop after this many epochs of this invocation (the run can be resumed).
    #[arg(long, hide = true)]
    stop_after: Option<usize>,
}

#[derive(Debug, Args)]
struct EvalArgs {
    /// A checkpoint written by `lmsoftmax train` (checkpoint-last.ckpt or checkpoint-best.ckpt).
    #[arg(long)]
    checkpoint: PathBuf,
    /// Device: cpu, or cuda[:N], rocm[:N], wgpu[:N] with that cargo feature.
    #[arg(long, default_value = "cpu")]
    device: String,
    #[command(flatten)]
    data: DataArgs,
    /// Images per batch.
    #[arg(long, default_value_t = 128)]
    batch_size: usize,
    /// Data worker threads.
    #[arg(short = 'j', long, default_value_t = 2)]
    workers: usize,
    /// End with one JSON object.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Args)]
struct DemoArgs {
    /// Real CIFAR-10 instead of the synthetic dataset.
    #[arg(long)]
    data: Option<PathBuf>,
    /// Seeds per loss.
    #[arg(long, default_value_t = 2)]
    seeds: usize,
    /// Epochs per run.
    #[arg(long, default_value_t = 3)]
    epochs: usize,
    /// Network.
    #[arg(long, default_value = "small_cnn")]
    arch: String,
    /// Width multiplier.
    #[arg(long, default_value_t = 1.0)]
    width: f32,
    /// Synthetic training images.
    #[arg(long, default_value_t = 4000)]
    synthetic_train: usize,
    /// Synthetic test images.
    #[arg(long, default_value_t = 1000)]
    synthetic_test: usize,
    /// Where the runs are written.
    #[arg(long, default_value = "lmsoftmax-demo")]
    out_dir: PathBuf,
    /// Data worker threads.
    #[arg(short = 'j', long, default_value_t = 2)]
    workers: usize,
    /// Logs only, no progress bars.
    #[arg(long)]
    quiet: bool,
}

#[derive(Debug, Args)]
struct ModelsArgs {
    /// Print one JSON array instead of the table.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Args)]
struct BenchTrainStepArgs {
    /// Network (see `lmsoftmax models`).
    #[arg(long)]
    arch: String,
    /// Images per step.
    #[arg(long, default_value_t = 128)]
    batch_size: usize,
    /// Loss of the step.
    #[arg(long, value_enum, default_value_t = StepLoss::LargeMargin)]
    loss: StepLoss,
    /// Channel-width multiplier of the network.
    #[arg(long, default_value_t = 1.0)]
    width: f32,
    /// Classes (default: the network's usual count).
    #[arg(long)]
    classes: Option<usize>,
    /// Untimed warm-up steps.
    #[arg(long, default_value_t = 2)]
    warmup: usize,
    /// Timed steps (the median is reported).
    #[arg(long, default_value_t = 5)]
    reps: usize,
    /// End with one JSON object (`step_ms`, `eval_images_per_s`, ...).
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Subcommand)]
enum DatasetCommand {
    /// Image counts, classes, image shape and per-channel mean/std of the training images.
    Info(DatasetInfoArgs),
}

/// Where the data comes from (shared by every command that reads a dataset).
#[derive(Debug, Clone, Args)]
struct DataArgs {
    /// cifar10, cifar100, mnist (also kmnist, mnist-format), fashion-mnist, imagefolder, imagenet,
    /// synthetic [train's default: cifar100, as the official cifar_train.py].
    #[arg(long)]
    dataset: Option<String>,
    /// The folder holding the dataset (not needed for synthetic) [train's default: ./datasets/,
    /// ./datasets/imagenet12/images/ for imagenet].
    #[arg(long)]
    data: Option<PathBuf>,
    /// ImageFolder/ImageNet: skip (and count) images that cannot be read instead of failing.
    #[arg(long)]
    skip_bad_images: bool,
    /// ImageFolder/ImageNet: a file of image names to leave out, one per line.
    #[arg(long)]
    blacklist: Option<PathBuf>,
    /// CIFAR: download the official archive into --data first (MD5-checked; skipped when the
    /// dataset folder is already there).
    #[arg(long)]
    download: bool,
    /// With --download: fetch from this mirror address instead (needs --download-md5).
    #[arg(long, requires = "download_md5")]
    download_url: Option<String>,
    /// With --download-url: the archive's MD5 (hex).
    #[arg(long)]
    download_md5: Option<String>,
    /// Synthetic dataset: training images.
    #[arg(long, default_value_t = 4000)]
    synthetic_train: usize,
    /// Synthetic dataset: test images.
    #[arg(long, default_value_t = 1000)]
    synthetic_test: usize,
}

impl DataArgs {
    /// The dataset's name; commands other than `train` need `--dataset`.
    fn name(&self) -> Result<&str> {
        self.dataset
            .as_deref()
            .context("--dataset is required: cifar10, cifar100, mnist, fashion-mnist, imagefolder, imagenet or synthetic")
    }

    fn open(&self) -> Result<Dataset> {
        let name: DatasetName = self.name()?.parse()?;
        if self.download {
            let which = match name {
                DatasetName::Cifar10 => Cifar::Ten,
                DatasetName::Cifar100 => Cifar::Hundred,
                other => bail!("--download fetches cifar10 and cifar100 only, not {other:?}"),
            };
            let Some(dir) = &self.data else {
                bail!("--download needs --data DIR to download into")
            };
            let mut archive = Archive::cifar(which);
            if let (Some(url), Some(md5)) = (&self.download_url, &self.download_md5) {
                archive.url = url.clone();
                archive.md5 = md5.to_ascii_lowercase();
            }
            let folder = download_and_extract(&archive, dir)?;
            eprintln!("dataset ready in {}", folder.display());
        }
        let mut folder = FolderOptions {
            skip_bad_images: self.skip_bad_images,
            ..Default::default()
        };
        if let Some(list) = &self.blacklist {
            folder = folder.with_blacklist_file(list)?;
        }
        let options = OpenOptions {
            folder,
            synthetic: SyntheticSpec {
                train: self.synthetic_train,
                test: self.synthetic_test,
                seed: 0,
            },
            no_augment: false,
        };
        Ok(open_dataset(name, self.data.as_deref(), &options)?)
    }
}

#[derive(Debug, Args)]
struct DatasetInfoArgs {
    #[command(flatten)]
    data: DataArgs,
    /// End with one JSON object.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Args)]
struct BenchDataArgs {
    #[command(flatten)]
    data: DataArgs,
    /// Images per batch.
    #[arg(long, default_value_t = 128)]
    batch_size: usize,
    /// Worker threads making batches (0: on the main thread).
    #[arg(long, default_value_t = 2)]
    workers: usize,
    /// Epochs to run.
    #[arg(long, default_value_t = 2)]
    epochs: usize,
    /// End with one JSON object (`images_per_s`, ...).
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Subcommand)]
enum BenchCommand {
    /// Median forward+backward time of the loss: fused kernel, composed ops, plain cross-entropy.
    Loss(BenchLossArgs),
    /// Images per second of the training input pipeline (read, augment, batch into tensors).
    Data(BenchDataArgs),
    /// One training step (forward, loss, backward, SGD) and eval throughput of a network.
    TrainStep(BenchTrainStepArgs),
}

#[derive(Debug, Args)]
struct BenchLossArgs {
    /// Rows (batch size).
    #[arg(long, default_value_t = 1024)]
    n: usize,
    /// Classes.
    #[arg(long, default_value_t = 1000)]
    c: usize,
    /// Run every shape of the PyTorch reference (shared/bench/ref_loss.py) instead of one.
    #[arg(long, conflicts_with_all = ["n", "c"])]
    all: bool,
    /// Paths to time, in this order (the fused ones first: the composed path churns memory).
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "ce,fused,composed,burn-ce"
    )]
    paths: Vec<LossPath>,
    /// Untimed warm-up runs per path.
    #[arg(long, default_value_t = 10)]
    warmup: usize,
    /// Timed runs per path (the median is reported).
    #[arg(long, default_value_t = 50)]
    reps: usize,
    /// End with one JSON object per shape, the last line holding the last shape.
    #[arg(long)]
    json: bool,
}

fn bench_loss(args: &BenchLossArgs) -> Result<()> {
    if args.n == 0 || args.c < 2 {
        bail!(
            "--n must be >= 1 and --c >= 2 (the loss needs two classes), got --n {} --c {}",
            args.n,
            args.c
        );
    }
    let shapes: Vec<(usize, usize)> = if args.all {
        REFERENCE_SHAPES.to_vec()
    } else {
        vec![(args.n, args.c)]
    };
    println!(
        "forward+backward, f32, flex CPU backend, {} threads, warm-up {}, median of {}",
        rayon::current_num_threads(),
        args.warmup,
        args.reps
    );
    println!("{TABLE_HEADER}");
    let mut rows = Vec::new();
    for (n, c) in shapes {
        let t = measure_paths(n, c, args.warmup, args.reps, &args.paths);
        println!("{}", table_row(&t));
        rows.push(t);
    }
    if args.json {
        for t in &rows {
            println!("{}", serde_json::to_string(t)?);
        }
    }
    Ok(())
}

fn dataset_info_cmd(args: &DatasetInfoArgs) -> Result<()> {
    let data = args.data.open()?;
    let info = dataset_info(args.data.name()?, &data)?;
    println!("dataset      {}", info.dataset);
    println!("train        {} images", info.train);
    println!("test         {} images", info.test);
    println!(
        "classes      {}: {}",
        info.classes,
        info.class_names.join(", ")
    );
    println!("shape        {:?} (channels, height, width)", info.shape);
    println!(
        "mean         {:?}",
        info.mean
            .iter()
            .map(|v| format!("{v:.4}"))
            .collect::<Vec<_>>()
    );
    println!(
        "std          {:?}",
        info.std
            .iter()
            .map(|v| format!("{v:.4}"))
            .collect::<Vec<_>>()
    );
    if info.skipped > 0 {
        println!("skipped      {} unreadable images", info.skipped);
    }
    if args.json {
        println!("{}", serde_json::to_string(&info)?);
    }
    Ok(())
}

fn bench_data(args: &BenchDataArgs) -> Result<()> {
    if args.batch_size == 0 || args.epochs == 0 {
        bail!("--batch-size and --epochs must be >= 1");
    }
    let data = args.data.open()?;
    let t = lmsoftmax::bench::data::measure(
        &data,
        args.batch_size,
        args.workers,
        args.epochs,
        &Device::flex(),
    )
    .context("reading the training data")?;
    println!(
        "{} training images x {} epochs, batch {}, {} workers: {:.0} images/s ({:.2} s)",
        data.train.len(),
        t.epochs,
        t.batch_size,
        t.workers,
        t.images_per_s,
        t.seconds
    );
    if args.json {
        println!("{}", serde_json::to_string(&t)?);
    }
    Ok(())
}

fn models_cmd(args: &ModelsArgs) -> Result<()> {
    let rows = lmsoftmax_models::list();
    if args.json {
        let v: Vec<serde_json::Value> = rows
            .iter()
            .map(|m| {
                serde_json::json!({
                    "name": m.name, "num_classes": m.num_classes, "parameters": m.parameters,
                    "input": m.input, "gmacs": m.gmacs,
                })
            })
            .collect();
        println!("{}", serde_json::to_string(&v)?);
        return Ok(());
    }
    println!("| name | classes | parameters | input | GMACs |\n|---|---:|---:|---|---:|");
    for m in rows {
        println!(
            "| {} | {} | {} | {}x{}x{} | {:.3} |",
            m.name, m.num_classes, m.parameters, m.input[0], m.input[1], m.input[2], m.gmacs
        );
    }
    Ok(())
}

fn bench_train_step(a: &BenchTrainStepArgs) -> Result<()> {
    if a.batch_size == 0 || a.reps == 0 {
        bail!("--batch-size and --reps must be >= 1");
    }
    let t = lmsoftmax::bench::train_step::measure(
        &a.arch,
        a.batch_size,
        a.loss,
        a.width,
        a.classes,
        a.warmup,
        a.reps,
    )?;
    println!(
        "{} (width {}), batch {}, input {:?}, {} classes, {:?} loss, {} threads: train step {:.1} ms, eval {:.1} images/s",
        t.arch,
        a.width,
        t.batch_size,
        t.input,
        t.classes,
        t.loss,
        t.threads,
        t.step_ms,
        t.eval_images_per_s
    );
    if a.json {
        println!("{}", serde_json::to_string(&t)?);
    }
    Ok(())
}

fn train_cmd(a: &TrainArgs) -> Result<()> {
    let mut data_args = a.data.clone();
    let dataset = data_args
        .dataset
        .get_or_insert_with(|| "cifar100".into())
        .clone();
    let imagenet = dataset == "imagenet";
    if data_args.data.is_none() && dataset != "synthetic" {
        data_args.data = Some(PathBuf::from(if imagenet {
            "./datasets/imagenet12/images/"
        } else {
            "./datasets/"
        }));
    }
    let arch = a
        .arch
        .clone()
        .unwrap_or_else(|| if imagenet { "vgg16bow_bn" } else { "layer13" }.into());
    check_single_node(&DistFlags {
        world_size: a.world_size,
        rank: a.rank,
        dist_url: a.dist_url.clone(),
        dist_backend: a.dist_backend.clone(),
    })?;
    let devices = match (a.gpu, &a.devices, a.multiprocessing_distributed) {
        (Some(index), _, _) => vec![gpu_index(index)?],
        (_, Some(list), _) => parse_devices(list)?,
        (_, _, true) => visible_gpus()?,
        _ => vec![parse_device(&a.device)?],
    };
    let mut config = match &a.config {
        Some(path) => TrainConfig::from_toml(
            &std::fs::read_to_string(path)
                .with_context(|| format!("reading {}", path.display()))?,
        )
        .with_context(|| format!("in {}", path.display()))?,
        None => TrainConfig::builtin(a.config_name.as_deref().unwrap_or(if imagenet {
            "imagenet_largemargin"
        } else {
            "layer13_largemargin"
        }))?,
    };
    if let Some(e) = a.epochs {
        if e == 0 {
            bail!("--epochs must be >= 1");
        }
        config = config.with_epochs(e);
    }
    if let Some(b) = a.batch_size {
        if b == 0 {
            bail!("--batch-size must be >= 1");
        }
        config.batch_size = b;
    }
    // an override of the loss shows in the config's name, so that `report` tells the runs apart
    if let Some(l) = a.loss.filter(|&l| l != config.loss) {
        config.loss = l;
        config.name = format!(
            "{}+{}",
            config.name,
            match l {
                LossKind::Softmax => "softmax",
                LossKind::LargeMargin => "large-margin",
            }
        );
    }
    if let Some(l) = a.reg_lambda {
        if l.is_nan() || l < 0.0 {
            bail!("--reg-lambda must be >= 0");
        }
        if l != config.reg_lambda && config.loss == LossKind::LargeMargin {
            config.name = format!("{}+lambda{l}", config.name);
        }
        config.reg_lambda = l;
    }
    if a.start_epoch >= config.epochs {
        bail!(
            "--start-epoch {} is past the last epoch of {} (epochs 0..{})",
            a.start_epoch,
            config.name,
            config.epochs
        );
    }
    let (out_dir, resume_from) = match &a.resume {
        Some(Some(path)) if path.is_file() => (a.out_dir.clone(), Some(path.clone())),
        Some(Some(path)) if path.is_dir() => (path.clone(), None),
        Some(Some(path)) => bail!("--resume: no checkpoint found at {}", path.display()),
        _ => (a.out_dir.clone(), None),
    };
    let data = data_args.open()?;
    let mut opts = TrainOptions::new(&dataset, &arch, config, out_dir);
    opts.width = a.width;
    opts.seed = a.seed;
    opts.workers = a.workers.unwrap_or(if imagenet { 12 } else { 6 });
    opts.quiet = a.quiet;
    opts.resume = a.resume.is_some();
    opts.overwrite = a.overwrite;
    opts.stop_after = a.stop_after;
    opts.devices = devices;
    opts.start_epoch = a.start_epoch;
    opts.print_freq = a.print_freq;
    opts.keep_epoch_checkpoints = !a.save_last_checkpoint;
    opts.curves_file = Some(match a.pdf_filename.strip_suffix(".pdf") {
        Some(stem) => format!("{stem}.png"),
        None => a.pdf_filename.clone(),
    });
    opts.resume_from = resume_from;
    if a.evaluate {
        let s = evaluate_run(&opts, &data)?;
        println!(
            " * Err@1 {:.3} Err@5 {:.3} Loss {:.4} ({} test images)",
            s.top1_err, s.top5_err, s.loss, s.images
        );
        return Ok(());
    }
    train(&opts, &data)?;
    Ok(())
}

fn report_cmd(a: &ReportArgs) -> Result<()> {
    let r = report(&a.runs, &a.out_dir)?;
    print!("{}", r.markdown);
    for f in &r.figures {
        eprintln!("wrote {}", f.display());
    }
    if a.json {
        println!("{}", serde_json::to_string(&r)?);
    }
    Ok(())
}

fn eval_cmd(a: &EvalArgs) -> Result<()> {
    if a.batch_size == 0 {
        bail!("--batch-size must be >= 1");
    }
    let data = a.data.open()?;
    let device = parse_device(&a.device)?;
    let (what, s) = evaluate_checkpoint(&a.checkpoint, &data, a.batch_size, a.workers, &device)?;
    println!("{what}, {} test images", s.images);
    println!(
        "top-1 error {:.3}%  top-5 error {:.3}%  loss {:.4}\nmargin mean {:.4}  p10 {:.4}  p50 {:.4}  p90 {:.4}  non-target entropy {:.4}",
        s.top1_err,
        s.top5_err,
        s.loss,
        s.mean_margin,
        s.margin_quantiles[0],
        s.margin_quantiles[1],
        s.margin_quantiles[2],
        s.nontarget_entropy
    );
    if a.json {
        println!("{}", serde_json::to_string(&s)?);
    }
    Ok(())
}

fn demo_cmd(a: &DemoArgs) -> Result<()> {
    let data = match &a.data {
        Some(dir) => open_dataset(DatasetName::Cifar10, Some(dir), &OpenOptions::default())?,
        None => open_dataset(
            DatasetName::Synthetic,
            None,
            &OpenOptions {
                synthetic: SyntheticSpec {
                    train: a.synthetic_train,
                    test: a.synthetic_test,
                    seed: 0,
                },
                ..Default::default()
            },
        )?,
    };
    let opts = DemoOptions {
        dataset: if a.data.is_some() {
            "cifar10"
        } else {
            "synthetic"
        }
        .into(),
        arch: a.arch.clone(),
        width: a.width,
        epochs: a.epochs,
        seeds: a.seeds,
        out_dir: a.out_dir.clone(),
        workers: a.workers,
        quiet: a.quiet,
    };
    let start = std::time::Instant::now();
    let rows = demo(&opts, &data)?;
    println!(
        "\n{} on {} ({} training / {} test images), {} epochs, {} seeds, {:.0} s\n",
        a.arch,
        if a.data.is_some() {
            "CIFAR-10"
        } else {
            "the synthetic dataset"
        },
        data.train.len(),
        data.test.len(),
        a.epochs,
        a.seeds,
        start.elapsed().as_secs_f64()
    );
    print!("{}", table(&rows));
    let figures = report(std::slice::from_ref(&a.out_dir), &a.out_dir.join("figures"))?;
    println!(
        "\nruns, metrics.csv and checkpoints: {}\nfigures: {}",
        a.out_dir.display(),
        figures
            .figures
            .iter()
            .map(|f| f.display().to_string())
            .collect::<Vec<_>>()
            .join(", ")
    );
    Ok(())
}

fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Bench(BenchCommand::Loss(args)) => bench_loss(&args),
        Command::Bench(BenchCommand::Data(args)) => bench_data(&args),
        Command::Dataset(DatasetCommand::Info(args)) => dataset_info_cmd(&args),
        Command::Models(args) => models_cmd(&args),
        Command::Train(args) => train_cmd(&args),
        Command::Demo(args) => demo_cmd(&args),
        Command::Eval(args) => eval_cmd(&args),
        Command::Report(args) => report_cmd(&args),
        Command::Configs => {
            for (name, _) in lmsoftmax::train::config::BUILTIN {
                let c = TrainConfig::builtin(name)?;
                println!(
                    "{name:22} {:?} loss, lambda {}, {} epochs, batch {}, lr {:?}",
                    c.loss, c.reg_lambda, c.epochs, c.batch_size, c.lr
                );
            }
            Ok(())
        }
        Command::Bench(BenchCommand::TrainStep(args)) => bench_train_step(&args),
    }
}

fn main() -> ExitCode {
    // Die quietly on a closed pipe (`lmsoftmax models --json | head`), as Unix tools do,
    // instead of panicking on the next print.
    #[cfg(unix)]
    // SAFETY: restoring the default action of a signal before any thread is started.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
    keep_freed_memory();
    let cli = Cli::parse();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::from(2)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The option index is tied to the `libmimalloc-sys` version: a different one would set some
    /// other option silently. Its default (1000 ms) differs from both neighbours' (1 and 0).
    #[test]
    fn the_purge_delay_option_is_the_one_set() {
        if std::env::var_os("MIMALLOC_PURGE_DELAY").is_some() {
            eprintln!("MIMALLOC_PURGE_DELAY is set: the default cannot be checked");
            return;
        }
        // SAFETY: reading and setting mimalloc options is thread-safe.
        assert_eq!(
            unsafe { libmimalloc_sys::mi_option_get(MI_OPTION_PURGE_DELAY) },
            1000,
            "option {MI_OPTION_PURGE_DELAY} is not mimalloc's purge delay"
        );
        keep_freed_memory();
        assert_eq!(
            unsafe { libmimalloc_sys::mi_option_get(MI_OPTION_PURGE_DELAY) },
            -1
        );
    }
}
