//! `lmsoftmax report`: reads finished (or running) training folders, groups them by experiment
//! and configuration, prints the paper's table (top-1 error of the final and of the best epoch,
//! mean ± std over seeds) and draws the curves and margin distributions.

pub mod plots;
pub mod table;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use lmsoftmax_loss::LossKind;
use serde::Serialize;

use self::table::{ConfigKey, Group, TableRow, markdown_table, table_rows};
use crate::run_folder::record::RunRecord;

/// Loads every folder and groups the runs; a folder holding no `run.json` but run folders
/// directly inside it (as `lmsoftmax demo` writes) is expanded.
///
/// # Errors
/// As [`RunRecord::load`]; no runs at all.
pub fn load_groups(dirs: &[PathBuf]) -> Result<Vec<Group>> {
    let mut runs = Vec::new();
    for dir in dirs {
        if !dir.is_dir() {
            bail!("{} is not a folder", dir.display());
        }
        if dir.join("run.json").is_file() {
            runs.push(RunRecord::load(dir)?);
            continue;
        }
        let mut inner: Vec<PathBuf> = std::fs::read_dir(dir)
            .with_context(|| format!("listing {}", dir.display()))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.join("run.json").is_file())
            .collect();
        if inner.is_empty() {
            bail!(
                "{} is not a training folder and holds none (no run.json)",
                dir.display()
            );
        }
        inner.sort();
        for d in inner {
            runs.push(RunRecord::load(&d)?);
        }
    }
    type SortKey = (String, String, u32, LossKind, u64, String, String, usize);
    let mut groups: BTreeMap<SortKey, Group> = BTreeMap::new();
    for run in runs {
        let m = &run.meta;
        // Softmax sorts before large-margin within an experiment, as in the paper's tables.
        // Width and lambda are never negative, so their bit patterns order as their values; the
        // label separates the other options. Runs that stopped at different epochs are not seeds
        // of one result: they go into separate rows (and `length_warnings` says so).
        let key = (
            m.dataset.clone(),
            m.arch.clone(),
            m.width.to_bits(),
            m.loss.kind(),
            m.loss.reg_lambda().to_bits(),
            m.loss.label(),
            m.config_label(),
            run.final_row().epoch,
        );
        groups
            .entry(key)
            .or_insert_with(|| Group {
                key: ConfigKey::of(m),
                runs: Vec::new(),
            })
            .runs
            .push(run);
    }
    Ok(groups.into_values().collect())
}

/// A warning for every group whose runs share a seed: with a fixed seed, runs are the same
/// run, and their spread says nothing (the official scripts are unseeded; ours default to 0).
///
/// ```
/// # use lmsoftmax::report::seed_warnings;
/// assert!(seed_warnings(&[]).is_empty());
/// ```
pub fn seed_warnings(groups: &[Group]) -> Vec<String> {
    groups
        .iter()
        .filter_map(|g| {
            let mut seeds: Vec<u64> = g.runs.iter().map(|r| r.meta.seed).collect();
            seeds.sort_unstable();
            let repeated: Vec<String> = seeds
                .windows(2)
                .filter(|w| w[0] == w[1])
                .map(|w| w[0].to_string())
                .collect::<std::collections::BTreeSet<_>>()
                .into_iter()
                .collect();
            (!repeated.is_empty()).then(|| {
                format!(
                    "warning: {} / {} ({}): {} runs share seed {} ({}); their mean ± std is not \
                     over independent seeds: train them with different --seed values",
                    g.experiment(),
                    g.key.config,
                    g.key.loss.label(),
                    g.runs.len(),
                    repeated.join(", "),
                    g.runs
                        .iter()
                        .map(|r| r.dir.display().to_string())
                        .collect::<Vec<_>>()
                        .join(", ")
                )
            })
        })
        .collect()
}

/// A warning for every configuration whose runs stopped at different epochs, which the table
/// shows as separate rows instead of averaging them.
pub fn length_warnings(groups: &[Group]) -> Vec<String> {
    let mut by_config: BTreeMap<String, Vec<usize>> = BTreeMap::new();
    for g in groups {
        let k = &g.key;
        let name = format!("{} / {} ({})", g.experiment(), k.config, k.loss.label());
        by_config
            .entry(name)
            .or_default()
            .push(g.runs[0].final_row().epoch);
    }
    by_config
        .into_iter()
        .filter(|(_, lengths)| lengths.len() > 1)
        .map(|(name, lengths)| {
            format!(
                "warning: {name}: runs stopped after {} epochs; each length is a row of its own \
                 (finish or resume the shorter runs to average them)",
                lengths
                    .iter()
                    .map(usize::to_string)
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        })
        .collect()
}

/// What `report` wrote.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// Warnings about the runs (shared seeds).
    pub warnings: Vec<String>,
    /// The table rows.
    pub rows: Vec<TableRow>,
    /// The Markdown table.
    pub markdown: String,
    /// The figures written.
    pub figures: Vec<PathBuf>,
}

/// Groups the runs in `dirs`, builds the table and writes the figures into `out_dir`: per
/// experiment, `<experiment>-error.png` (test and training top-1 error per epoch),
/// `<experiment>-loss.png` (training and test loss) and `<experiment>-margins.png` (the
/// distribution of the last epoch's test margins), softmax against large-margin.
///
/// # Errors
/// As [`load_groups`]; figures that cannot be written.
pub fn report(dirs: &[PathBuf], out_dir: &Path) -> Result<Report> {
    let groups = load_groups(dirs)?;
    let mut warnings = seed_warnings(&groups);
    warnings.extend(length_warnings(&groups));
    let rows = table_rows(&groups);
    let markdown = markdown_table(&rows);
    std::fs::create_dir_all(out_dir).with_context(|| format!("creating {}", out_dir.display()))?;
    let mut figures = Vec::new();
    let mut experiments: BTreeMap<String, Vec<&Group>> = BTreeMap::new();
    for g in &groups {
        experiments.entry(g.experiment()).or_default().push(g);
    }
    for (name, members) in experiments {
        let slug: String = name
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '.' {
                    c
                } else {
                    '-'
                }
            })
            .collect::<String>()
            .split('-')
            .filter(|p| !p.is_empty())
            .collect::<Vec<_>>()
            .join("-");
        let error = out_dir.join(format!("{slug}-error.png"));
        plots::error_curves(&name, &members, &error)?;
        let loss = out_dir.join(format!("{slug}-loss.png"));
        plots::loss_curves(&name, &members, &loss)?;
        figures.extend([error, loss]);
        if members
            .iter()
            .any(|g| g.runs.iter().any(|r| r.margins.is_some()))
        {
            let margins = out_dir.join(format!("{slug}-margins.png"));
            plots::margin_distribution(&name, &members, &margins)?;
            figures.push(margins);
        }
    }
    Ok(Report {
        warnings,
        rows,
        markdown,
        figures,
    })
}
