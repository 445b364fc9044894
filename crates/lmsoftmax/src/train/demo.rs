//! `lmsoftmax demo`: softmax against the large-margin loss, a few seeds each, on the synthetic
//! dataset (no download) or on real CIFAR-10, with the comparison table at the end.

use std::path::PathBuf;

use anyhow::Result;
use lmsoftmax_data::Dataset;

use super::config::TrainConfig;
use super::options::TrainOptions;
use super::run::train;
use crate::run_folder::stats::mean_std;

/// Demo settings.
#[derive(Debug, Clone)]
pub struct DemoOptions {
    /// Dataset name (recorded in each run's `run.json`).
    pub dataset: String,
    /// Network.
    pub arch: String,
    /// Width multiplier.
    pub width: f32,
    /// Epochs per run.
    pub epochs: usize,
    /// Seeds per loss.
    pub seeds: usize,
    /// Where the runs go (one folder per loss and seed).
    pub out_dir: PathBuf,
    /// Data worker threads.
    pub workers: usize,
    /// No progress bars.
    pub quiet: bool,
}

/// One loss's results over seeds.
#[derive(Debug, Clone)]
pub struct DemoRow {
    /// Network.
    pub arch: String,
    /// The loss, as [`lmsoftmax_loss::LossConfig::label`] writes it.
    pub loss: String,
    /// Configuration name.
    pub config: String,
    /// Final-epoch test top-1 errors, one per seed.
    pub final_err: Vec<f64>,
    /// Best-epoch test top-1 errors.
    pub best_err: Vec<f64>,
    /// Final-epoch mean test margins.
    pub margin: Vec<f64>,
    /// Final-epoch mean non-target entropies.
    pub entropy: Vec<f64>,
}

/// Runs the demo on `data`.
///
/// # Errors
/// As [`train`].
pub fn demo(opts: &DemoOptions, data: &Dataset) -> Result<Vec<DemoRow>> {
    let mut rows = Vec::new();
    for name in ["layer13", "layer13_largemargin"] {
        let config = TrainConfig::builtin(name)?.with_epochs(opts.epochs);
        let loss = config.loss.label();
        let mut row = DemoRow {
            arch: opts.arch.clone(),
            loss: loss.clone(),
            config: name.into(),
            final_err: vec![],
            best_err: vec![],
            margin: vec![],
            entropy: vec![],
        };
        for seed in 0..opts.seeds as u64 {
            let mut run = TrainOptions::new(
                &opts.dataset,
                &opts.arch,
                config.clone(),
                opts.out_dir
                    .join(format!("{}-{}-seed{seed}", opts.arch, config.loss.kind())),
            );
            run.width = opts.width;
            run.seed = seed;
            run.workers = opts.workers;
            run.quiet = opts.quiet;
            run.print_freq = 0;
            run.overwrite = true;
            let summary = train(&run, data)?;
            let last = summary.rows.last().expect("at least one epoch");
            eprintln!(
                "{} {loss} seed {seed}: final top-1 error {:.2}%, best {:.2}%, margin {:.3}",
                opts.arch, last.test_top1_err, summary.best.0, last.mean_margin
            );
            row.final_err.push(last.test_top1_err);
            row.best_err.push(summary.best.0);
            row.margin.push(last.mean_margin);
            row.entropy.push(last.nontarget_entropy);
        }
        rows.push(row);
    }
    Ok(rows)
}

/// The comparison as a Markdown table.
pub fn table(rows: &[DemoRow]) -> String {
    let mut s = String::from(
        "| network | loss | config | runs | final top-1 err (%) | best top-1 err (%) | test margin | non-target entropy |\n|---|---|---|---:|---:|---:|---:|---:|\n",
    );
    for r in rows {
        let f = |v: &[f64], p: usize| {
            let (m, sd) = mean_std(v);
            format!("{m:.p$} ± {sd:.p$}")
        };
        s.push_str(&format!(
            "| {} | {} | {} | {} | {} | {} | {} | {} |\n",
            r.arch,
            r.loss,
            r.config,
            r.final_err.len(),
            f(&r.final_err, 2),
            f(&r.best_err, 2),
            f(&r.margin, 3),
            f(&r.entropy, 3)
        ));
    }
    s
}
