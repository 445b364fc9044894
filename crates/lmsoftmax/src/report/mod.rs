//! `lmsoftmax report`: reads finished (or running) training folders, groups them by experiment
//! and configuration, prints the paper's table (top-1 error of the final and of the best epoch,
//! mean ± std over seeds) and draws the curves and margin distributions.

pub mod plots;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use serde::Serialize;

use crate::train::run::{EpochRow, RunMeta, best_row};
use crate::train::{LossKind, demo::mean_std};

/// One training folder as written by `lmsoftmax train`.
#[derive(Debug, Clone)]
pub struct RunRecord {
    /// The folder.
    pub dir: PathBuf,
    /// `run.json`.
    pub meta: RunMeta,
    /// `metrics.jsonl`, one row per finished epoch.
    pub rows: Vec<EpochRow>,
    /// `test-margins.txt`: the last epoch's test margins, if present.
    pub margins: Option<Vec<f64>>,
}

impl RunRecord {
    /// Reads a run folder.
    ///
    /// # Errors
    /// A folder that is not a run (no `run.json`), unreadable or malformed files, a run with no
    /// finished epoch.
    ///
    /// ```no_run
    /// let run = lmsoftmax::report::RunRecord::load("runs/layer13-seed0".as_ref()).unwrap();
    /// println!("{} epochs", run.rows.len());
    /// ```
    pub fn load(dir: &Path) -> Result<Self> {
        let meta_path = dir.join("run.json");
        if !meta_path.is_file() {
            bail!(
                "{} is not a training folder: it has no run.json (written by `lmsoftmax train`)",
                dir.display()
            );
        }
        let meta: RunMeta = serde_json::from_str(
            &std::fs::read_to_string(&meta_path)
                .with_context(|| format!("reading {}", meta_path.display()))?,
        )
        .with_context(|| format!("{} is malformed", meta_path.display()))?;
        let metrics = dir.join("metrics.jsonl");
        let text = std::fs::read_to_string(&metrics).with_context(|| {
            format!(
                "reading {} (has the run finished an epoch?)",
                metrics.display()
            )
        })?;
        let rows = text
            .lines()
            .filter(|l| !l.trim().is_empty())
            .enumerate()
            .map(|(i, l)| {
                serde_json::from_str::<EpochRow>(l)
                    .with_context(|| format!("{} line {} is malformed", metrics.display(), i + 1))
            })
            .collect::<Result<Vec<_>>>()?;
        if rows.is_empty() {
            bail!("{} has no finished epoch yet", dir.display());
        }
        let margins_path = dir.join("test-margins.txt");
        let margins = if margins_path.is_file() {
            let text = std::fs::read_to_string(&margins_path)?;
            Some(
                text.lines()
                    .map(|l| l.trim().parse::<f64>())
                    .collect::<Result<Vec<_>, _>>()
                    .with_context(|| format!("{} is malformed", margins_path.display()))?,
            )
        } else {
            None
        };
        Ok(Self {
            dir: dir.to_path_buf(),
            meta,
            rows,
            margins,
        })
    }

    /// The last finished epoch's row.
    pub fn final_row(&self) -> &EpochRow {
        self.rows.last().expect("load() refuses runs without rows")
    }

    /// The row of the lowest test top-1 error (ties: the later epoch, as the official script).
    pub fn best_row(&self) -> &EpochRow {
        best_row(&self.rows).expect("load() refuses runs without rows")
    }
}

/// What makes runs seeds of one another: the experiment (dataset, network, width) and the
/// configuration (name, loss, lambda).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ConfigKey {
    /// Dataset.
    pub dataset: String,
    /// Network.
    pub arch: String,
    /// Width multiplier.
    pub width: f32,
    /// Configuration name.
    pub config: String,
    /// Loss.
    pub loss: LossKind,
    /// Lambda of the regulariser (0 for softmax).
    pub reg_lambda: f64,
}

impl ConfigKey {
    /// The key of a run.
    pub fn of(m: &RunMeta) -> Self {
        Self {
            dataset: m.dataset.clone(),
            arch: m.arch.clone(),
            width: m.width,
            config: m.config.clone(),
            loss: m.loss,
            reg_lambda: m.reg_lambda,
        }
    }
}

/// Runs that share a [`ConfigKey`].
#[derive(Debug, Clone)]
pub struct Group {
    /// What the runs share.
    pub key: ConfigKey,
    /// The runs (one per seed, in the order given).
    pub runs: Vec<RunRecord>,
}

impl Group {
    /// `dataset / arch (width)`: the experiment the group belongs to.
    pub fn experiment(&self) -> String {
        let k = &self.key;
        if k.width == 1.0 {
            format!("{} / {}", k.dataset, k.arch)
        } else {
            format!("{} / {} (width {})", k.dataset, k.arch, k.width)
        }
    }
}

/// One line of the report table, with the numbers behind it.
#[derive(Debug, Clone, Serialize)]
pub struct TableRow {
    /// The experiment and configuration (flattened into the row's JSON).
    #[serde(flatten)]
    pub key: ConfigKey,
    /// Seeds of the runs.
    pub seeds: Vec<u64>,
    /// Epochs finished, per run.
    pub epochs_done: Vec<usize>,
    /// Epochs configured.
    pub epochs: usize,
    /// Final-epoch test top-1 errors (%), per run.
    pub final_top1: Vec<f64>,
    /// Best-epoch test top-1 errors (%), per run.
    pub best_top1: Vec<f64>,
    /// Final-epoch test top-5 errors (%), per run.
    pub final_top5: Vec<f64>,
    /// Final-epoch mean test margins, per run.
    pub final_margin: Vec<f64>,
    /// The official README's top-1 error for this experiment and loss, when there is one.
    pub reference: Option<f64>,
}

/// The official README's numbers (SPEC.md §2): (dataset, network, softmax, large-margin).
pub const REFERENCE_ERRORS: [(&str, &str, f64, f64); 7] = [
    ("cifar10", "layer13", 8.45, 7.81),
    ("cifar100", "layer13", 29.42, 27.61),
    ("imagenet", "vgg16bow_bn", 22.99, 22.09),
    ("imagenet", "vgg16", 25.04, 24.08),
    ("imagenet", "resnet50", 23.45, 23.28),
    ("imagenet", "resnext50_32x4d", 22.42, 22.27),
    ("imagenet", "densenet169", 23.03, 22.70),
];

fn reference(dataset: &str, arch: &str, width: f32, loss: LossKind) -> Option<f64> {
    if width != 1.0 {
        return None;
    }
    REFERENCE_ERRORS
        .iter()
        .find(|(d, a, _, _)| *d == dataset && *a == arch)
        .map(|&(_, _, soft, lm)| match loss {
            LossKind::Softmax => soft,
            LossKind::LargeMargin => lm,
        })
}

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
    type SortKey = (String, String, u32, bool, u64, String);
    let mut groups: BTreeMap<SortKey, Group> = BTreeMap::new();
    for run in runs {
        let m = &run.meta;
        // Softmax sorts before large-margin within an experiment, as in the paper's tables.
        // Width and lambda are never negative, so their bit patterns order as their values.
        let key = (
            m.dataset.clone(),
            m.arch.clone(),
            m.width.to_bits(),
            m.loss == LossKind::LargeMargin,
            m.reg_lambda.to_bits(),
            m.config.clone(),
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

/// The table's rows.
pub fn table_rows(groups: &[Group]) -> Vec<TableRow> {
    groups
        .iter()
        .map(|g| TableRow {
            key: g.key.clone(),
            seeds: g.runs.iter().map(|r| r.meta.seed).collect(),
            epochs_done: g.runs.iter().map(|r| r.final_row().epoch).collect(),
            epochs: g.runs[0].meta.epochs,
            final_top1: g.runs.iter().map(|r| r.final_row().test_top1_err).collect(),
            best_top1: g.runs.iter().map(|r| r.best_row().test_top1_err).collect(),
            final_top5: g.runs.iter().map(|r| r.final_row().test_top5_err).collect(),
            final_margin: g.runs.iter().map(|r| r.final_row().mean_margin).collect(),
            reference: reference(&g.key.dataset, &g.key.arch, g.key.width, g.key.loss),
        })
        .collect()
}

/// `mean ± std` over runs (sample std), or the single value.
pub fn format_mean_std(values: &[f64], decimals: usize) -> String {
    let (m, sd) = mean_std(values);
    if values.len() > 1 {
        format!("{m:.decimals$} ± {sd:.decimals$}")
    } else {
        format!("{m:.decimals$}")
    }
}

/// The paper's table as Markdown: one line per configuration, errors in percent.
///
/// ```
/// use lmsoftmax::report::{ConfigKey, TableRow, markdown_table};
/// use lmsoftmax::train::LossKind;
/// let key = ConfigKey {
///     dataset: "cifar10".into(), arch: "layer13".into(), width: 1.0,
///     config: "layer13".into(), loss: LossKind::Softmax, reg_lambda: 0.0,
/// };
/// let row = TableRow {
///     key,
///     seeds: vec![0, 1], epochs_done: vec![50, 50], epochs: 50,
///     final_top1: vec![8.0, 9.0], best_top1: vec![7.5, 8.5], final_top5: vec![0.3, 0.4],
///     final_margin: vec![5.0, 5.0], reference: Some(8.45),
/// };
/// let md = markdown_table(&[row]);
/// assert!(md.contains("| 8.50 ± 0.71 | 8.00 ± 0.71 |"));
/// ```
pub fn markdown_table(rows: &[TableRow]) -> String {
    let mut s = String::from(
        "| dataset | network | config | loss | runs | epochs | final top-1 err (%) | best top-1 err (%) | final top-5 err (%) | test margin | official README |\n\
         |---|---|---|---|---:|---:|---:|---:|---:|---:|---:|\n",
    );
    for r in rows {
        let k = &r.key;
        let network = if k.width == 1.0 {
            k.arch.clone()
        } else {
            format!("{} ×{}", k.arch, k.width)
        };
        let loss = match k.loss {
            LossKind::Softmax => "softmax".to_string(),
            LossKind::LargeMargin => format!("large-margin λ={}", k.reg_lambda),
        };
        let (lo, hi) = (
            r.epochs_done.iter().min().copied().unwrap_or(0),
            r.epochs_done.iter().max().copied().unwrap_or(0),
        );
        let epochs = match (lo == hi, hi == r.epochs) {
            (true, true) => format!("{hi}"),
            (true, false) => format!("{hi}/{}", r.epochs),
            _ => format!("{lo}-{hi}/{}", r.epochs),
        };
        s.push_str(&format!(
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |\n",
            k.dataset,
            network,
            k.config,
            loss,
            r.seeds.len(),
            epochs,
            format_mean_std(&r.final_top1, 2),
            format_mean_std(&r.best_top1, 2),
            format_mean_std(&r.final_top5, 2),
            format_mean_std(&r.final_margin, 3),
            r.reference.map_or("–".to_string(), |v| format!("{v:.2}")),
        ));
    }
    s
}

/// What `report` wrote.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
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
        rows,
        markdown,
        figures,
    })
}
