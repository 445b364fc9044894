//! Evaluation on the test split: errors, the loss (the training criterion), and every test
//! image's margin `z_y - max_{j!=y} z_j` and non-target entropy.

use std::path::Path;

use anyhow::{Context, Result};
use burn::module::Module;
use burn::tensor::{Device, Tensor};
use lmsoftmax_data::{Dataset, LoaderConfig, batches_in_order};
use lmsoftmax_loss::row_diagnostics;
use serde::Serialize;

use super::checkpoint;
use super::model::{Classifier, Objective};
use super::options::TrainOptions;
use super::state::{fresh, read_state, restore};
use super::step::wrong_counts;
use crate::distributed::World;
use crate::run_folder::RunFolder;

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

/// Evaluates `model` (eval mode, on `device`) on the test split; also returns every test image's
/// margin in test-set order.
///
/// # Errors
/// Data or loss errors; device data that cannot be read back.
pub fn evaluate_margins(
    model: &Classifier,
    data: &Dataset,
    loss: &Objective,
    cfg: LoaderConfig,
    device: &Device,
) -> Result<(EvalStats, Vec<f64>)> {
    evaluate_shared(model, data, loss, cfg, device, &World::single())
}

/// [`evaluate_margins`] split over the ranks of `world`: rank `r` evaluates every `world`-th
/// test image from `r`, and the sums and the margins (each rank filling in its own images) are
/// all-reduced, so that every rank ends with the statistics of the whole test split.
///
/// # Errors
/// As [`evaluate_margins`].
pub fn evaluate_shared(
    model: &Classifier,
    data: &Dataset,
    loss: &Objective,
    cfg: LoaderConfig,
    device: &Device,
    world: &World,
) -> Result<(EvalStats, Vec<f64>)> {
    let (mut n, mut total_loss, mut e1, mut e5, mut entropy) = (0usize, 0f64, 0f64, 0f64, 0f64);
    let mine: Vec<usize> = (world.rank()..data.test.len())
        .step_by(world.size())
        .collect();
    let mut margins = vec![0f64; data.test.len()];
    let mut next = mine.iter();
    for batch in batches_in_order(data.test.clone(), mine.clone(), cfg, 0) {
        let batch = batch?;
        let size = batch.labels.len();
        let (x, y) = batch.into_tensors(device);
        let (value, logits) = loss.loss_and_logits(model, x, y.clone())?;
        let wrong = wrong_counts(&logits, &y);
        let diag = row_diagnostics(logits, y)?;
        // one read for the sums, one for the margins
        let sums = Tensor::cat(
            vec![
                value.reshape([1]),
                wrong,
                diag.nontarget_entropy.sum().reshape([1]),
            ],
            0,
        );
        let sums = read_f64(sums).context("reading the evaluation sums")?;
        total_loss += sums[0] * size as f64;
        e1 += sums[1];
        e5 += sums[2];
        entropy += sums[3];
        for m in read_f64(diag.margin).context("reading the test margins")? {
            let at = *next.next().expect("one margin per image");
            margins[at] = m;
        }
        n += size;
    }
    if world.size() > 1 {
        let mut sums = [n as f64, total_loss, e1, e5, entropy];
        world.all_reduce_sum(&mut sums);
        n = sums[0] as usize;
        [total_loss, e1, e5, entropy] = [sums[1], sums[2], sums[3], sums[4]];
        world.all_reduce_sum(&mut margins);
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
        top1_err: 100.0 * e1 / count,
        top5_err: 100.0 * e5 / count,
        mean_margin: margins.iter().sum::<f64>() / count,
        margin_quantiles: [q(0.1), q(0.5), q(0.9)],
        nontarget_entropy: entropy / count,
    };
    Ok((stats, margins))
}

/// A float tensor's values on the host, as f64.
///
/// # Errors
/// The data cannot be converted (never for float tensors).
pub fn read_f64<const D: usize>(t: Tensor<D>) -> Result<Vec<f64>> {
    t.into_data()
        .convert::<f64>()
        .try_to_vec::<f64>()
        .map_err(|e| anyhow::anyhow!("{e:?}"))
}

/// A test-split loader over `batch_size` images with `workers` threads, in test-set order.
pub fn test_loader(batch_size: usize, workers: usize) -> LoaderConfig {
    LoaderConfig {
        batch_size,
        shuffle: false,
        seed: 0,
        workers,
        prefetch: 2 * workers.max(1),
    }
}

/// Evaluates the model of a run once, as the official `--evaluate`: the checkpoint given by
/// `resume_from` (or `out_dir`'s last one with `resume`), else the freshly initialised network.
///
/// # Errors
/// A corrupt or foreign checkpoint, data errors.
pub fn evaluate_run(opts: &TrainOptions, data: &Dataset) -> Result<EvalStats> {
    let main = opts.main_device();
    let device = main.clone().autodiff();
    let mut pieces = fresh(opts, data, &device)?;
    let from = opts.resume_from.clone().or_else(|| {
        opts.resume
            .then(|| RunFolder::new(&opts.out_dir).last_checkpoint())
    });
    if let Some(path) = from {
        // any number of devices may evaluate a run
        pieces.state.devices = None;
        pieces.state.ranks = None;
        pieces = restore(&path, pieces)?;
    }
    let loss = Objective::new(&opts.config.loss, &main, true)?;
    let cfg = test_loader(opts.config.batch_size, opts.workers);
    let _autocast = lmsoftmax_kernels::autocast::autocast(opts.precision);
    Ok(evaluate_margins(&pieces.model.valid(), data, &loss, cfg, &main)?.0)
}

/// Loads a checkpoint's network for `data` and evaluates it on the test split (at this thread's
/// [`lmsoftmax_kernels::autocast`] precision); also returns a line saying what was evaluated.
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
    let state = read_state(&parts, path)?;
    let [c, _, _] = data.test.output_shape();
    let classes = data.class_names.len();
    let model = Classifier::build(
        &state.arch,
        c,
        classes,
        state.width,
        &state.config.loss,
        device,
    )?;
    let model = model
        .load_record_bytes(parts.model, path)
        .map(|m| m.after_steps(state.iterations))
        .with_context(|| {
            format!(
                "{} does not fit {} with {classes} classes",
                path.display(),
                state.arch
            )
        })?;
    let loss = Objective::new(&state.config.loss, device, true)?;
    let cfg = test_loader(batch_size, workers);
    Ok((
        format!(
            "{} (width {}), config {}, {}, {} epochs done",
            state.arch,
            state.width,
            state.config.name,
            state.config.loss.label(),
            state.rows.len()
        ),
        evaluate_margins(&model.valid(), data, &loss, cfg, device)?.0,
    ))
}
