//! The training loop: per epoch, one training pass ([`super::epoch`]) with the epoch's learning
//! rate, one pass over the test split, a metrics row, the figure and the checkpoints. Resuming
//! continues from the last checkpoint; batches depend only on `(seed, epoch)`, so a resumed run
//! follows the same path as an uninterrupted one.

use std::path::PathBuf;

use anyhow::{Result, bail};
use burn::module::Module;
use burn::tensor::Device;
use lmsoftmax_data::{Dataset, LoaderConfig};
use lmsoftmax_kernels::autocast::{Precision, autocast, bf16_kernel};
use lmsoftmax_kernels::cpu::CpuFeatures;

use super::checkpoint;
use super::checkpoint::CheckpointParts;
use super::collective::{check_identical, take_root_model};
use super::epoch::{EpochPlan, EpochTraining, train_epoch};
use super::evaluate::{EvalStats, evaluate_shared};
use super::model::Objective;
use super::options::TrainOptions;
use super::parallel::DataParallel;
use super::phases::{self, Phase};
use super::state::{
    Pieces, RunState, epoch_seed, fresh, precision_change, read_state, restore, restore_read, save,
    share_pieces,
};
use crate::distributed::World;
use crate::error::as_input;
use crate::run_folder::meta::RunMeta;
use crate::run_folder::metrics::EpochRow;
use crate::run_folder::stats::best_row;
use crate::run_folder::{RunFolder, best_line, curves};

/// The outcome of a run.
#[derive(Debug, Clone)]
pub struct RunSummary {
    /// Every epoch's metrics.
    pub rows: Vec<EpochRow>,
    /// The official best: the lowest test top-1 error and that (first such) epoch's top-5 error.
    pub best: (f64, f64),
    /// Whether all configured epochs are done.
    pub finished: bool,
}

/// Refuses empty splits before any training: an empty training split has nothing to learn
/// from, an empty test split would report 0 % error.
///
/// # Errors
/// The split that is empty.
pub fn check_splits(data: &Dataset) -> Result<()> {
    if data.train.is_empty() {
        bail!(
            "the training split is empty: nothing to train on (check --data and the dataset's files)"
        );
    }
    if data.test.is_empty() {
        bail!(
            "the test split is empty: the errors of every epoch would read 0 % (check --data and \
             the dataset's files)"
        );
    }
    Ok(())
}

/// Bytes of memory available to a new allocation (Linux `MemAvailable`); `None` elsewhere.
fn available_memory() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = text.lines().find(|l| l.starts_with("MemAvailable:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

/// Refuses a network that cannot fit in memory before it is built (`--width 100` would abort in
/// the allocator): its parameters scale with the square of the width, and training holds each
/// one four times (weights, gradients, momentum, the checkpoint's copy) in f32.
///
/// # Errors
/// The estimate, against the memory available.
pub fn check_memory(opts: &TrainOptions, data: &Dataset) -> Result<()> {
    if opts.width <= 1.0 {
        return Ok(());
    }
    let Some(available) = available_memory() else {
        return Ok(());
    };
    let [c, h, w] = data.train.output_shape();
    let classes = data.class_names.len();
    let at_one = lmsoftmax_models::model_info(&opts.arch, classes, [c, h, w], 1.0)?.parameters;
    let parameters = at_one as f64 * f64::from(opts.width).powi(2);
    let needed = parameters * 4.0 * 4.0;
    if needed > available as f64 {
        bail!(
            "{} at --width {} has about {:.2e} parameters: training needs at least {:.1} GB for \
             weights, gradients, momentum and a checkpoint copy, and this machine has {:.1} GB \
             available; use a smaller --width",
            opts.arch,
            opts.width,
            parameters,
            needed / 1e9,
            available as f64 / 1e9
        );
    }
    Ok(())
}

/// Refuses a folder that holds another run (unless resuming or overwriting), clears it for
/// `--overwrite`, creates it.
fn prepare_folder(opts: &TrainOptions, folder: &RunFolder) -> Result<()> {
    if !opts.resume && !opts.overwrite && folder.holds_run() {
        bail!(
            "{} already holds a run: pass --resume to continue it or --overwrite to replace it",
            folder.dir().display()
        );
    }
    if opts.overwrite && !opts.resume {
        folder.clear_run_files()?;
    }
    folder.create()?;
    folder.remove_temporary_files()
}

/// The pieces of the run: fresh, or restored from `--resume`'s checkpoint. A run resumed from
/// an epoch checkpoint newer than `checkpoint-last.ckpt` (killed while writing the epoch's other
/// checkpoints) writes those again first, so the folder's `last` and `best` cover the same
/// epochs as its metrics.
fn start_or_resume(
    opts: &TrainOptions,
    data: &Dataset,
    folder: &RunFolder,
    device: &Device,
) -> Result<Pieces> {
    let pieces = fresh(opts, data, device)?;
    if let Some(file) = &opts.resume_from {
        return restore(file, pieces);
    }
    let found = if opts.resume {
        newest_intact_checkpoint(folder)?
    } else {
        None
    };
    match found {
        Some(c) if c.path != folder.last_checkpoint() => {
            let pieces = restore_read(&c.path, c.parts, c.state, pieces)?;
            let rows = &pieces.state.rows;
            if best_row(rows).is_some_and(|b| Some(b.epoch) == rows.last().map(|r| r.epoch)) {
                save(&folder.best_checkpoint(), &pieces)?;
            }
            save(&folder.last_checkpoint(), &pieces)?;
            Ok(pieces)
        }
        Some(c) => restore_read(&c.path, c.parts, c.state, pieces),
        None if opts.resume => {
            if !folder.was_started() {
                bail!(
                    "--resume: no checkpoint found in {} (and no run was started there)",
                    folder.dir().display()
                );
            }
            eprintln!(
                "=> no checkpoint yet in {}: the run starts again from its first epoch",
                folder.dir().display()
            );
            Ok(pieces)
        }
        None => Ok(pieces),
    }
}

/// The checkpoint of the folder that covers the most epochs and reads back intact (MD5 and run
/// state), preferring `checkpoint-last.ckpt` on a tie; a run killed while writing a checkpoint,
/// or stopped by a full disk, resumes from there and says which. Each file is read at most once,
/// and only the epoch checkpoints newer than an intact `checkpoint-last.ckpt` are read at all.
/// `None` when the folder holds no checkpoint at all.
///
/// # Errors
/// Checkpoints exist but none is intact (each one's problem is named).
pub fn newest_intact_checkpoint(folder: &RunFolder) -> Result<Option<ReadCheckpoint>> {
    let mut problems = Vec::new();
    let mut read = |path: PathBuf| -> Option<ReadCheckpoint> {
        if !path.is_file() {
            return None;
        }
        match checkpoint::read(&path).and_then(|parts| Ok((read_state(&parts, &path)?, parts))) {
            Ok((state, parts)) => Some(ReadCheckpoint { path, parts, state }),
            Err(e) => {
                problems.push(format!("{e:#}"));
                None
            }
        }
    };
    let last = folder.last_checkpoint();
    let from_last = read(last.clone());
    let covered = from_last.as_ref().map_or(0, |c| c.state.rows.len());
    // epoch checkpoints newer than that, newest first: the first intact one covers the most
    let mut epochs: Vec<(usize, PathBuf)> = std::fs::read_dir(folder.dir())
        .map(|entries| {
            entries
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter_map(|p| {
                    let n = p
                        .file_name()?
                        .to_str()?
                        .strip_prefix("checkpoint-epoch")?
                        .strip_suffix(".ckpt")?
                        .parse()
                        .ok()?;
                    Some((n, p))
                })
                .collect()
        })
        .unwrap_or_default();
    epochs.retain(|(n, _)| *n > covered);
    epochs.sort_by_key(|e| std::cmp::Reverse(e.0));
    let newest_epoch = epochs.into_iter().find_map(|(_, p)| read(p));
    let best = read(folder.best_checkpoint());
    // the most epochs wins; on a tie the earlier in (last, epoch, best)
    let found = [from_last, newest_epoch, best]
        .into_iter()
        .flatten()
        .reduce(|a, b| {
            if b.state.rows.len() > a.state.rows.len() {
                b
            } else {
                a
            }
        });
    match found {
        Some(found) if found.path == last => Ok(Some(found)),
        Some(found) => {
            eprintln!(
                "=> {} is {}; resuming from {}, the newest intact checkpoint ({} epochs done)",
                last.display(),
                if last.exists() {
                    "not intact"
                } else {
                    "missing"
                },
                found.path.display(),
                found.state.rows.len()
            );
            Ok(Some(found))
        }
        None if problems.is_empty() => Ok(None),
        None => bail!(
            "--resume: no checkpoint in {} is intact: {}",
            folder.dir().display(),
            problems.join("; ")
        ),
    }
}

/// A checkpoint read and verified: its path, its parts and its run state.
pub struct ReadCheckpoint {
    /// The file.
    pub path: PathBuf,
    /// Its parts (model and optimizer records, run state bytes).
    pub parts: CheckpointParts,
    /// Its run state.
    pub state: RunState,
}

/// `run.json` and `config.toml`, written when the run starts.
fn record_start(opts: &TrainOptions, folder: &RunFolder) -> Result<()> {
    folder.write_meta(&RunMeta {
        dataset: opts.dataset.clone(),
        arch: opts.arch.clone(),
        width: opts.width,
        seed: opts.seed,
        config: opts.config.name.clone(),
        loss: opts.config.loss.clone(),
        epochs: opts.config.epochs,
        batch_size: opts.config.batch_size,
        precision: opts.precision,
    })?;
    folder.write_config(&toml::to_string(&opts.config)?)
}

/// The metrics row of an epoch.
fn epoch_row(
    epoch: usize,
    lr: f64,
    train: &EpochTraining,
    test: &EvalStats,
    seconds: f64,
) -> EpochRow {
    let s = train.stats;
    let per_row = |v: f64| v / s.rows.max(1) as f64;
    EpochRow {
        epoch: epoch + 1,
        lr,
        train_loss: per_row(s.loss_sum),
        train_ce: per_row(s.ce_sum),
        train_reg: per_row(s.reg_sum),
        train_top1_err: train.pct(s.wrong_top1),
        train_top5_err: train.pct(s.wrong_top5),
        test_loss: test.loss,
        test_top1_err: test.top1_err,
        test_top5_err: test.top5_err,
        mean_margin: test.mean_margin,
        nontarget_entropy: test.nontarget_entropy,
        seconds,
        images_per_s: s.rows as f64 / train.seconds,
    }
}

/// Writes an epoch's files: metrics and figures first, then the checkpoints that cover them,
/// `last` at the end, so that a run killed in between resumes from the previous `last` and
/// rewrites the same files.
fn record_epoch(
    opts: &TrainOptions,
    folder: &RunFolder,
    pieces: &Pieces,
    margins: &[f64],
) -> Result<()> {
    let rows = &pieces.state.rows;
    let epoch = rows.last().map_or(0, |r| r.epoch);
    folder.write_metrics(rows)?;
    folder.write_margins(margins)?;
    if let Some(name) = &opts.curves_file {
        curves::run_curves(rows, &opts.config.name, &folder.file(name))?;
    }
    if opts.keep_epoch_checkpoints {
        save(&folder.epoch_checkpoint(epoch), pieces)?;
    }
    if best_row(rows).is_some_and(|b| b.epoch == epoch) {
        save(&folder.best_checkpoint(), pieces)?;
    }
    save(&folder.last_checkpoint(), pieces)
}

/// What a bf16 run says at its start: autocast's rules and what runs the bf16 products here.
pub fn bf16_log_line() -> String {
    format!(
        "precision bf16 (autocast): convolutions and linear layers on bf16 operands with f32 \
         sums; weights, optimizer, BatchNorm and loss in f32, checkpoints in f32. bf16 products: \
         {}",
        bf16_kernel(&CpuFeatures::detect())
    )
}

/// Trains (or resumes) a run; writes everything into `opts.out_dir` (see [`crate::run_folder`]).
///
/// # Errors
/// Bad options, data errors, a non-finite loss (with epoch and batch), I/O errors (a full disk is
/// named as such; files already written stay intact).
pub fn train(opts: &TrainOptions, data: &Dataset) -> Result<RunSummary> {
    train_in(opts, data, &World::single())
}

/// The batch size of each rank: the configuration's batch is the global one, split evenly over
/// the ranks (batch 256 on 4 ranks: 64 each, as the official DistributedDataParallel run).
///
/// # Errors
/// A batch that does not split evenly.
pub fn rank_batch_size(batch_size: usize, ranks: usize) -> Result<usize> {
    if ranks == 0 || !batch_size.is_multiple_of(ranks) {
        bail!(
            "batch size {batch_size} does not split evenly over {ranks} ranks: each rank takes \
             batch_size / ranks images a step, so choose a batch size divisible by {ranks} (or \
             another number of ranks)"
        );
    }
    Ok(batch_size / ranks)
}

/// The epoch (0-based) a run continues with: after its last finished one, or `--start-epoch`.
fn first_epoch(opts: &TrainOptions, state: &RunState) -> usize {
    state.rows.last().map_or(opts.start_epoch, |r| r.epoch)
}

/// [`train`] as one rank of `world` (`mpirun -np N lmsoftmax train ...`): every rank trains on
/// its share of each epoch, the steps' gradients are all-reduced, the test split is evaluated in
/// shares, and rank 0 alone writes the run folder (see [`crate::distributed`]).
///
/// # Errors
/// As [`train`]; the ranks' parameters differing after an epoch.
pub fn train_in(opts: &TrainOptions, data: &Dataset, world: &World) -> Result<RunSummary> {
    let folder = RunFolder::new(&opts.out_dir);
    let root = world.is_root();
    check_splits(data).map_err(as_input)?;
    check_memory(opts, data).map_err(as_input)?;
    let rank_batch = rank_batch_size(opts.config.batch_size, world.size()).map_err(as_input)?;
    // one process at a time in a run folder; the lock is released when `_lock` is dropped, or
    // by the OS on any exit. Only rank 0 touches the folder.
    let _lock = if root {
        Some(folder.lock().map_err(as_input)?)
    } else {
        None
    };
    let plain = opts.main_device();
    let device = plain.clone().autodiff();
    // what the folder and the checkpoint hold is the user's input: its errors exit 2
    let pieces = if root {
        prepare_folder(opts, &folder).map_err(as_input)?;
        let mut pieces = start_or_resume(opts, data, &folder, &device).map_err(as_input)?;
        if let Some(line) = precision_change(pieces.state.precision, opts.precision) {
            eprintln!("{line}");
        }
        pieces.state.precision = Some(opts.precision);
        pieces
    } else {
        fresh(opts, data, &device).map_err(as_input)?
    };
    if world.size() > 1 && root {
        // a fresh network's parameters are drawn lazily, at its first forward pass, after the
        // epoch's seed below: drawn here to be broadcast, they are drawn from the same seed
        device.seed(epoch_seed(opts.seed, first_epoch(opts, &pieces.state)));
    }
    let mut pieces = share_pieces(world, pieces).map_err(as_input)?;
    if root {
        record_start(opts, &folder)?;
        if world.size() > 1 {
            eprintln!(
                "=> {} ranks (MPI), {rank_batch} images a step each, {} in all",
                world.size(),
                opts.config.batch_size
            );
        }
    }

    // the steps (on this thread and the replicas' threads) and the evaluations run at the
    // run's precision; the parameters, the optimizer and the checkpoints stay f32
    let _autocast = autocast(opts.precision);
    if root && opts.precision == Precision::Bf16 {
        eprintln!("=> {}", bf16_log_line());
    }
    let replicas: Vec<Device> = opts.devices.iter().map(|d| d.clone().autodiff()).collect();
    // The step reads its loss back with its other statistics and stops on a non-finite one
    // itself, so the loss's own finiteness check (one more read per step) is left out there.
    let parallel = DataParallel::new(&replicas, |d| Objective::new(&opts.config.loss, d, false))?;
    let loss_eval = Objective::new(&opts.config.loss, &plain, true)?;
    let cfg = &opts.config;
    let loader = |shuffle| LoaderConfig {
        batch_size: rank_batch,
        shuffle,
        seed: opts.seed,
        workers: opts.workers,
        prefetch: 2 * opts.workers.max(1),
    };
    let last = folder.last_checkpoint();
    let plan = EpochPlan {
        data,
        loader: loader(true),
        epochs: cfg.epochs,
        quiet: opts.quiet,
        print_freq: opts.print_freq,
        last_checkpoint: &last,
        world,
    };
    let first = first_epoch(opts, &pieces.state);
    for (done_now, epoch) in (first..cfg.epochs).enumerate() {
        if opts.stop_after.is_some_and(|n| done_now >= n) {
            break;
        }
        device.seed(epoch_seed(opts.seed, epoch));
        let lr = cfg.lr(epoch);
        let started = std::time::Instant::now();
        phases::enter(Phase::Train, epoch);
        let (model, training) = train_epoch(
            &plan,
            &parallel,
            pieces.model,
            &mut pieces.optim,
            epoch,
            lr,
            pieces.state.iterations,
        )?;
        pieces.state.iterations += training.steps;
        if world.size() > 1 {
            check_identical(world, &model, epoch + 1)?;
        }
        // rank 0's BatchNorm running statistics on every rank, for the evaluation
        pieces.model = take_root_model(world, model)?;
        phases::enter(Phase::Evaluate, epoch);
        let (test, margins) = evaluate_shared(
            &pieces.model.valid(),
            data,
            &loss_eval,
            loader(false),
            &plain,
            world,
        )?;
        let row = epoch_row(epoch, lr, &training, &test, started.elapsed().as_secs_f64());
        if root && (!opts.quiet || opts.print_freq > 0) {
            eprintln!(
                "epoch {}/{}: lr {:.6} train loss {:.4} err@1 {:.2}% err@5 {:.2}% | test loss {:.4} \
                 err@1 {:.2}% err@5 {:.2}% | {:.0} img/s",
                row.epoch,
                cfg.epochs,
                row.lr,
                row.train_loss,
                row.train_top1_err,
                row.train_top5_err,
                row.test_loss,
                row.test_top1_err,
                row.test_top5_err,
                row.images_per_s
            );
            eprintln!(
                " *val* Err@1 {:.3} Err@5 {:.3}",
                row.test_top1_err, row.test_top5_err
            );
            if world.size() > 1 {
                eprintln!(
                    " {} ranks: {:.0} img/s in all; the all-reduce took {:.2} s of the {:.2} s of \
                     training ({:.1}%)",
                    world.size(),
                    row.images_per_s,
                    training.all_reduce_seconds,
                    training.seconds,
                    100.0 * training.all_reduce_seconds / training.seconds.max(1e-9)
                );
            }
            if let Some(lambda) = pieces.model.lambda() {
                eprintln!(
                    " head lambda {lambda:.4} after {} steps",
                    pieces.state.iterations
                );
            }
        }
        pieces.state.rows.push(row);
        phases::enter(Phase::Checkpoint, epoch);
        if root {
            record_epoch(opts, &folder, &pieces, &margins)?;
        }
    }
    let rows = pieces.state.rows;
    let best = crate::run_folder::stats::official_best_row(&rows)
        .map_or((f64::NAN, f64::NAN), |r| (r.test_top1_err, r.test_top5_err));
    let finished = rows.last().is_some_and(|r| r.epoch == cfg.epochs);
    if root
        && finished
        && let Some(line) = best_line(&rows)
    {
        println!("{line}");
        folder.write_summary(&line)?;
    }
    Ok(RunSummary {
        rows,
        best,
        finished,
    })
}
