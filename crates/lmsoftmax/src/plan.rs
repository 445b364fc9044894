//! Flags and a configuration file become one resolved, validated run: the defaults that follow
//! `--dataset` (where `cifar_train.py` and `imagenet_train.py` differ), the configuration and its
//! overrides, the resume target, the devices. Nothing here touches the data or the run folder.

use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use burn::tensor::Device;
use lmsoftmax_kernels::autocast::Precision;

use crate::cli::{DataArgs, TrainArgs};
use crate::device::{
    DistFlags, check_mpi_world, check_single_node, gpu_index, parse_device, parse_devices,
    visible_gpus,
};
use crate::train::{TrainConfig, TrainOptions};

/// What `lmsoftmax train` will do.
#[derive(Debug, Clone)]
pub struct TrainPlan {
    /// Where the data comes from, with the dataset's default folder filled in.
    pub data: DataArgs,
    /// The run.
    pub options: TrainOptions,
    /// Evaluate once and exit (`-e`), instead of training.
    pub evaluate: bool,
}

/// The official scripts' defaults for one dataset.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DatasetDefaults {
    /// `--data`.
    pub data: &'static str,
    /// `--arch`.
    pub arch: &'static str,
    /// `--config-name`.
    pub config: &'static str,
    /// `-j`.
    pub workers: usize,
}

/// `cifar_train.py`'s defaults, or `imagenet_train.py`'s for `imagenet`.
///
/// ```
/// use lmsoftmax::plan::defaults_for;
/// assert_eq!(defaults_for("imagenet").arch, "vgg16bow_bn");
/// assert_eq!(defaults_for("cifar10").config, "layer13_largemargin");
/// ```
pub fn defaults_for(dataset: &str) -> DatasetDefaults {
    if dataset == "imagenet" {
        DatasetDefaults {
            data: "./datasets/imagenet12/images/",
            arch: "vgg16bow_bn",
            config: "imagenet_largemargin",
            workers: 12,
        }
    } else {
        DatasetDefaults {
            data: "./datasets/",
            arch: "layer13",
            config: "layer13_largemargin",
            workers: 6,
        }
    }
}

/// The dataset of `lmsoftmax train` when `--dataset` is not given, as `cifar_train.py`.
pub const DEFAULT_DATASET: &str = "cifar100";

/// The configuration of a run: `--config FILE`, `--config-name`, or the dataset's default, then
/// the overrides `--epochs`, `--batch-size`, `--loss`, `--reg-lambda`. An override of the loss
/// shows in the configuration's name, so that `report` tells such runs apart.
///
/// # Errors
/// An unreadable or invalid file, an unknown name, an override out of range or one the loss
/// does not have.
pub fn resolve_config(a: &TrainArgs, defaults: &DatasetDefaults) -> Result<TrainConfig> {
    let mut config = match &a.config {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("reading {}", path.display()))?;
            TrainConfig::from_toml(&text).with_context(|| format!("in {}", path.display()))?
        }
        None => TrainConfig::builtin(a.config_name.as_deref().unwrap_or(defaults.config))?,
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
    if let Some(kind) = a.loss.filter(|&k| k != config.loss.kind()) {
        config.loss = config.loss.with_kind(kind);
        config.name = format!("{}+{kind}", config.name);
    }
    if let Some(l) = a.reg_lambda {
        let before = config.loss.reg_lambda();
        config.loss = config.loss.clone().with_reg_lambda(l).with_context(|| {
            format!(
                "--reg-lambda {l}: the loss of '{}' is {}; add --loss large-margin",
                config.name,
                config.loss.kind()
            )
        })?;
        if l != before {
            config.name = format!("{}+lambda{l}", config.name);
        }
    }
    for param in &a.loss_param {
        let (name, value) = param
            .split_once('=')
            .and_then(|(n, v)| Some((n.trim(), v.trim().parse::<f64>().ok()?)))
            .with_context(|| format!("--loss-param {param:?}: give NAME=VALUE, e.g. gamma=2"))?;
        let before = config.loss.parameters();
        config.loss = config
            .loss
            .clone()
            .with_parameter(name, value)
            .with_context(|| format!("--loss-param {param}"))?;
        if config.loss.parameters() != before {
            config.name = format!("{}+{name}{value}", config.name);
        }
    }
    Ok(config)
}

/// The run folder and the checkpoint of `--resume`: a file resumes from it into `--out-dir`, a
/// folder is the run to continue, nothing means `--out-dir`'s last checkpoint.
///
/// # Errors
/// A path that does not exist.
pub fn resolve_resume(a: &TrainArgs) -> Result<(PathBuf, Option<PathBuf>)> {
    match &a.resume {
        Some(Some(path)) if path.is_file() => Ok((a.out_dir.clone(), Some(path.clone()))),
        Some(Some(path)) if path.is_dir() => Ok((path.clone(), None)),
        Some(Some(path)) => bail!("--resume: no checkpoint found at {}", path.display()),
        _ => Ok((a.out_dir.clone(), None)),
    }
}

/// The devices of a run: `--gpu N`, `--devices LIST`, `--multiprocessing-distributed` (every
/// visible GPU) or `--device`.
///
/// # Errors
/// A device this binary was not built for, or a malformed list.
pub fn resolve_devices(a: &TrainArgs) -> Result<Vec<burn::tensor::Device>> {
    match (a.gpu, &a.devices, a.multiprocessing_distributed) {
        (Some(index), _, _) => Ok(vec![gpu_index(index)?]),
        (_, Some(list), _) => parse_devices(list),
        (_, _, true) => visible_gpus().map_err(|e| {
            anyhow::anyhow!(
                "{e:#}; or run one process per device over MPI: `mpirun -np N lmsoftmax train \
                 --multiprocessing-distributed ...` with a build of `--features mpi`"
            )
        }),
        _ => Ok(vec![parse_device(&a.device)?]),
    }
}

/// The device of one rank of an MPI run: `--gpu N` as given, else `--device`'s kind at the
/// rank's local rank (`--device cuda` on the second rank of a machine: `cuda:1`; the CPU for
/// every rank on the CPU). `--devices` is refused: each rank drives one device.
///
/// # Errors
/// `--devices`, or a device this binary was not built for.
pub fn rank_device(
    a: &TrainArgs,
    local_rank: usize,
    local_size: usize,
) -> Result<Vec<burn::tensor::Device>> {
    if a.devices.is_some() {
        bail!(
            "--devices with mpirun: each rank drives one device, its local rank's (give --device \
             cuda, and rank r of a machine takes cuda:r)"
        );
    }
    if let Some(index) = a.gpu {
        if local_size > 1 {
            bail!(
                "--gpu {index} with {local_size} ranks on this machine would put them all on one \
                 GPU: give --device cuda (rank r of a machine takes cuda:r)"
            );
        }
        return Ok(vec![gpu_index(index)?]);
    }
    if a.device.contains(':') && local_size > 1 {
        bail!(
            "--device {} under mpirun: each rank takes its local rank's device; give the kind \
             alone (--device cuda)",
            a.device
        );
    }
    let kind = match a.device.split(':').next().unwrap_or("cpu") {
        // one process per device means GPUs, where this binary has a GPU backend
        "cpu" if a.multiprocessing_distributed => crate::device::gpu_backends()
            .first()
            .copied()
            .unwrap_or("cpu"),
        kind => kind,
    };
    let spec = match kind {
        "cpu" | "flex" => "cpu".to_string(),
        gpu => format!("{gpu}:{local_rank}"),
    };
    Ok(vec![parse_device(&spec)?])
}

/// The official `--pdf-filename` as the PNG file we write: `x.pdf` becomes `x.png`.
///
/// ```
/// use lmsoftmax::plan::figure_name;
/// assert_eq!(figure_name("train_epochs.pdf"), "train_epochs.png");
/// assert_eq!(figure_name("curves.png"), "curves.png");
/// ```
pub fn figure_name(pdf_filename: &str) -> String {
    match pdf_filename.strip_suffix(".pdf") {
        Some(stem) => format!("{stem}.png"),
        None => pdf_filename.to_string(),
    }
}

/// Checks an output file name given on the command line (`--pdf-filename`): a plain file name
/// inside the run folder, not empty, not a path, and not one of the run's own files.
///
/// ```
/// use lmsoftmax::plan::check_output_name;
/// assert!(check_output_name("--pdf-filename", "curves.png").is_ok());
/// assert!(check_output_name("--pdf-filename", "../x.png").is_err());
/// assert!(check_output_name("--pdf-filename", "run.json").is_err());
/// ```
///
/// # Errors
/// The name and what is wrong with it.
pub fn check_output_name(flag: &str, name: &str) -> Result<()> {
    let plain = std::path::Path::new(name)
        .file_name()
        .is_some_and(|f| f == std::ffi::OsStr::new(name));
    if name.trim().is_empty() {
        bail!("{flag} is empty: give a file name such as train_epochs.pdf");
    }
    if !plain || name == "." || name == ".." || name.contains('\\') {
        bail!(
            "{flag} {name:?} is not a plain file name: the figure is written inside --out-dir, so \
             give a name without folders"
        );
    }
    if crate::run_folder::RunFolder::is_run_file(name) || name.starts_with('.') {
        bail!(
            "{flag} {name:?} would replace one of the run's own files (run.json, config.toml, \
             metrics.csv/jsonl, test-margins.txt, summary.txt, checkpoints): choose another name"
        );
    }
    Ok(())
}

/// Refuses `--precision bf16` on a device it does not run on in this version: bf16 autocast
/// runs on the CPU (flex); wgpu has no bf16 type (WGSL), and on CUDA and ROCm it is untested.
///
/// # Errors
/// bf16 with a device other than the CPU, named.
pub fn check_precision(precision: Precision, devices: &[Device]) -> Result<()> {
    if precision == Precision::Fp32 {
        return Ok(());
    }
    if let Some(device) = devices
        .iter()
        .find(|d| !lmsoftmax_kernels::flex::runs_on(d))
    {
        bail!(
            "--precision {precision} runs on the CPU (--device cpu) in this version, not on \
             {device:?}: wgpu has no bf16 type (WGSL), and the CUDA and ROCm paths are not \
             tested yet; use --precision fp32 there"
        );
    }
    Ok(())
}

/// Resolves `lmsoftmax train`'s flags into a run.
///
/// # Errors
/// Any flag or configuration value that cannot be used, named.
pub fn resolve_train(a: &TrainArgs) -> Result<TrainPlan> {
    resolve_train_in(a, &crate::distributed::World::single())
}

/// [`resolve_train`] for one rank of `world` (`mpirun -np N lmsoftmax train ...`): the official
/// multi-node flags are checked against MPI's world, and the rank's device is its local one.
///
/// # Errors
/// As [`resolve_train`]; flags that disagree with MPI's world.
pub fn resolve_train_in(a: &TrainArgs, world: &crate::distributed::World) -> Result<TrainPlan> {
    let mut data = a.data.clone();
    let dataset = data
        .dataset
        .get_or_insert_with(|| DEFAULT_DATASET.into())
        .clone();
    let defaults = defaults_for(&dataset);
    if data.data.is_none() && dataset != "synthetic" {
        data.data = Some(PathBuf::from(defaults.data));
    }
    let arch = a.arch.clone().unwrap_or_else(|| defaults.arch.into());
    let flags = DistFlags {
        world_size: a.world_size,
        rank: a.rank,
        dist_url: a.dist_url.clone(),
        dist_backend: a.dist_backend.clone(),
    };
    let devices = if world.size() > 1 {
        check_mpi_world(&flags, world, a.multiprocessing_distributed)?;
        rank_device(a, world.local_rank(), world.local_size())?
    } else {
        check_single_node(&flags)?;
        resolve_devices(a)?
    };
    let config = resolve_config(a, &defaults)?;
    if a.start_epoch >= config.epochs {
        bail!(
            "--start-epoch {} is past the last epoch of {} (epochs 0..{})",
            a.start_epoch,
            config.name,
            config.epochs
        );
    }
    if !(a.width > 0.0 && a.width.is_finite()) {
        bail!("--width must be a positive number, got {}", a.width);
    }
    check_precision(a.precision, &devices)?;
    let figure = figure_name(&a.pdf_filename);
    check_output_name("--pdf-filename", &figure)?;
    let (out_dir, resume_from) = resolve_resume(a)?;
    let mut o = TrainOptions::new(&dataset, &arch, config, out_dir);
    o.width = a.width;
    o.seed = a.seed;
    o.workers = a.workers.unwrap_or(defaults.workers);
    o.quiet = a.quiet;
    o.resume = a.resume.is_some();
    o.overwrite = a.overwrite;
    o.stop_after = a.stop_after;
    o.devices = devices;
    o.ranks = world.size();
    o.start_epoch = a.start_epoch;
    o.print_freq = a.print_freq;
    o.keep_epoch_checkpoints = !a.save_last_checkpoint;
    o.curves_file = Some(figure);
    o.resume_from = resume_from;
    o.precision = a.precision;
    Ok(TrainPlan {
        data,
        options: o,
        evaluate: a.evaluate,
    })
}

#[cfg(test)]
mod tests {
    use clap::Parser;
    use lmsoftmax_loss::LossKind;

    use super::*;
    use crate::cli::{Cli, Command};

    fn args(flags: &[&str]) -> TrainArgs {
        let cli = Cli::try_parse_from(["lmsoftmax", "train"].iter().chain(flags))
            .unwrap_or_else(|e| panic!("{flags:?}: {e}"));
        match cli.command {
            Command::Train(a) => *a,
            other => panic!("{other:?}"),
        }
    }

    fn plan(flags: &[&str]) -> Result<TrainPlan> {
        resolve_train(&args(flags))
    }

    fn err(flags: &[&str]) -> String {
        format!("{:#}", plan(flags).unwrap_err())
    }

    #[test]
    fn the_defaults_are_cifar_train_py_s() {
        let p = plan(&[]).unwrap();
        assert_eq!(p.data.dataset.as_deref(), Some("cifar100"));
        assert_eq!(p.data.data, Some(PathBuf::from("./datasets/")));
        let o = &p.options;
        assert_eq!((o.arch.as_str(), o.workers), ("layer13", 6));
        assert_eq!(o.config.name, "layer13_largemargin");
        assert_eq!(o.out_dir, PathBuf::from("./"));
        assert_eq!(o.curves_file.as_deref(), Some("train_epochs.png"));
        assert!(o.keep_epoch_checkpoints && !o.resume && !p.evaluate);
        assert_eq!((o.seed, o.print_freq, o.start_epoch), (0, 100, 0));
    }

    #[test]
    fn imagenet_takes_imagenet_train_py_s_defaults() {
        let o = plan(&["--dataset", "imagenet"]).unwrap();
        assert_eq!(
            o.data.data,
            Some(PathBuf::from("./datasets/imagenet12/images/"))
        );
        assert_eq!(o.options.arch, "vgg16bow_bn");
        assert_eq!(o.options.config.name, "imagenet_largemargin");
        assert_eq!(o.options.workers, 12);
        // what is given wins
        let o = plan(&["--dataset", "imagenet", "-a", "resnet50", "-j", "3"]).unwrap();
        assert_eq!(
            (o.options.arch.as_str(), o.options.workers),
            ("resnet50", 3)
        );
    }

    #[test]
    fn synthetic_data_needs_no_folder() {
        assert_eq!(plan(&["--dataset", "synthetic"]).unwrap().data.data, None);
    }

    #[test]
    fn epochs_and_batch_size_override_the_config() {
        let o = plan(&["--epochs", "5", "-b", "32"]).unwrap().options;
        assert_eq!((o.config.epochs, o.config.batch_size), (5, 32));
        assert_eq!(o.config.lr(4) as f32, 1e-4, "the schedule is respaced");
        assert!(err(&["--epochs", "0"]).contains("--epochs must be >= 1"));
        assert!(err(&["-b", "0"]).contains("--batch-size must be >= 1"));
    }

    #[test]
    fn loss_overrides_change_the_kind_and_show_in_the_name() {
        let o = plan(&["--config-name", "layer13", "--loss", "large-margin"]).unwrap();
        assert_eq!(o.options.config.loss.kind(), LossKind::LargeMargin);
        assert_eq!(o.options.config.loss.reg_lambda(), 0.3);
        assert_eq!(o.options.config.name, "layer13+large-margin");
        // the same kind is no override
        let o = plan(&["--config-name", "layer13", "--loss", "softmax"]).unwrap();
        assert_eq!(o.options.config.name, "layer13");
        let o = plan(&["--reg-lambda", "0.5"]).unwrap();
        assert_eq!(o.options.config.loss.reg_lambda(), 0.5);
        assert_eq!(o.options.config.name, "layer13_largemargin+lambda0.5");
        let o = plan(&["--reg-lambda", "0.3"]).unwrap();
        assert_eq!(o.options.config.name, "layer13_largemargin");
    }

    #[test]
    fn every_kind_and_its_parameters_can_be_chosen_on_the_command_line() {
        for kind in LossKind::ALL {
            let o = plan(&["--config-name", "layer13", "--loss", kind.name()]).unwrap();
            assert_eq!(o.options.config.loss.kind(), kind);
            assert_eq!(
                o.options.config.loss.parameters().len(),
                kind.parameters().len()
            );
        }
        let o = plan(&["--loss", "focal", "--loss-param", "gamma=0.5"]).unwrap();
        assert_eq!(o.options.config.loss.parameters(), [("gamma", 0.5)]);
        assert_eq!(o.options.config.name, "layer13_largemargin+focal+gamma0.5");
        let o = plan(&["--config-name", "layer13_poly", "--loss-param", "epsilon=1"]).unwrap();
        assert_eq!(
            o.options.config.name, "layer13_poly",
            "the default is no override"
        );
        let e = err(&["--loss", "focal", "--loss-param", "beta=0.1"]);
        assert!(
            e.contains("beta is not a parameter of the focal loss (its parameters: gamma)"),
            "{e}"
        );
        let e = err(&["--loss", "focal", "--loss-param", "gamma"]);
        assert!(e.contains("give NAME=VALUE"), "{e}");
        let e = err(&["--loss", "focal", "--loss-param", "gamma=-2"]);
        assert!(e.contains("gamma must be >= 0"), "{e}");
    }

    #[test]
    fn bad_loss_overrides_are_refused_with_the_reason() {
        let e = err(&["--config-name", "layer13", "--reg-lambda", "0.5"]);
        assert!(e.contains("add --loss large-margin"), "{e}");
        let e = err(&["--reg-lambda=-1"]);
        assert!(e.contains("reg_lambda must be >= 0"), "{e}");
        let e = format!(
            "{}",
            Cli::try_parse_from(["lmsoftmax", "train", "--loss", "arcfaces"]).unwrap_err()
        );
        assert!(e.contains("unknown loss 'arcfaces'"), "{e}");
        let e = err(&["--loss", "cosface", "--loss-param", "gamma=2"]);
        assert!(
            e.contains("scale, margin"),
            "the head's parameters are listed: {e}"
        );
        let e = err(&["--loss", "subcenter-arcface", "--loss-param", "centers=0"]);
        assert!(e.contains("centers"), "{e}");
    }

    #[test]
    fn config_files_and_names_are_checked() {
        assert!(err(&["--config-name", "layer14"]).contains("known configs are"));
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("c.toml");
        std::fs::write(&file, "name = \"x\"\n").unwrap();
        let e = err(&["--config", file.to_str().unwrap()]);
        assert!(e.contains("c.toml") && e.contains("missing field"), "{e}");
        let e = err(&["--config", "/nonexistent/c.toml"]);
        assert!(e.contains("reading /nonexistent/c.toml"), "{e}");
    }

    #[test]
    fn start_epoch_and_width_are_range_checked() {
        assert!(err(&["--epochs", "3", "--start-epoch", "3"]).contains("past the last epoch"));
        assert_eq!(
            plan(&["--start-epoch", "2"]).unwrap().options.start_epoch,
            2
        );
        assert!(err(&["--width", "0"]).contains("--width must be a positive number"));
    }

    #[test]
    fn resume_takes_a_checkpoint_file_or_a_run_folder() {
        let dir = tempfile::tempdir().unwrap();
        let ckpt = dir.path().join("checkpoint-best.ckpt");
        std::fs::write(&ckpt, b"x").unwrap();
        let o = plan(&["--resume", ckpt.to_str().unwrap(), "--out-dir", "elsewhere"]).unwrap();
        assert_eq!(o.options.resume_from, Some(ckpt.clone()));
        assert_eq!(o.options.out_dir, PathBuf::from("elsewhere"));
        let o = plan(&["--resume", dir.path().to_str().unwrap()]).unwrap();
        assert_eq!(
            (o.options.out_dir.as_path(), o.options.resume),
            (dir.path(), true)
        );
        let o = plan(&["--resume"]).unwrap();
        assert!(o.options.resume && o.options.resume_from.is_none());
        assert!(err(&["--resume", "/nonexistent/x.ckpt"]).contains("no checkpoint found"));
    }

    #[test]
    fn output_names_are_plain_names_that_replace_no_run_file() {
        for bad in ["", "  ", "/tmp/x.png", "../x.png", "sub/x.png", "..", "."] {
            let e = err(&["--pdf-filename", bad]);
            assert!(e.contains("--pdf-filename"), "{bad:?}: {e}");
        }
        // x.pdf is written as x.png: metrics.pdf is fine, run.json or a checkpoint name is not
        for bad in [
            "run.json",
            "metrics.csv",
            "checkpoint-last.ckpt",
            "summary.txt",
            ".lock",
        ] {
            let e = err(&["--pdf-filename", bad]);
            assert!(
                e.contains("would replace") || e.contains("choose another"),
                "{bad}: {e}"
            );
        }
        assert!(plan(&["--pdf-filename", "metrics.pdf"]).is_ok());
    }

    #[test]
    fn official_flags_map_to_options() {
        let o = plan(&[
            "--save-last-checkpoint",
            "--pdf-filename",
            "c.pdf",
            "-e",
            "-p",
            "7",
        ])
        .unwrap();
        assert!(!o.options.keep_epoch_checkpoints && o.evaluate);
        assert_eq!(o.options.curves_file.as_deref(), Some("c.png"));
        assert_eq!(o.options.print_freq, 7);
        assert!(err(&["--world-size", "2", "--rank", "0"]).contains("--world-size 2"));
        assert!(err(&["--device", "cuda"]).contains("cuda"));
    }
}
