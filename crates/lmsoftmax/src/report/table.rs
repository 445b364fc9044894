//! The paper's table: one line per configuration (experiment, config, loss), mean ± std over the
//! seeds of the final and the best epoch's errors, beside the official README's number.

use lmsoftmax_loss::{LossConfig, LossKind};
use serde::Serialize;

use crate::run_folder::meta::RunMeta;
use crate::run_folder::record::RunRecord;
use crate::run_folder::stats::format_mean_std;

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
    /// The loss and its options.
    pub loss: LossConfig,
}

impl ConfigKey {
    /// The key of a run.
    pub fn of(m: &RunMeta) -> Self {
        Self {
            dataset: m.dataset.clone(),
            arch: m.arch.clone(),
            width: m.width,
            config: m.config_label(),
            loss: m.loss.clone(),
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

fn reference(dataset: &str, arch: &str, width: f32, loss: &LossConfig) -> Option<f64> {
    // the README's numbers are for the official losses at their official settings only
    let official = match loss.kind() {
        LossKind::Softmax => LossConfig::of_kind(LossKind::Softmax),
        LossKind::LargeMargin => LossConfig::default(),
        // the paper has no figures for the rest of the family
        _ => return None,
    };
    if width != 1.0 || *loss != official {
        return None;
    }
    REFERENCE_ERRORS
        .iter()
        .find(|(d, a, _, _)| *d == dataset && *a == arch)
        .and_then(|&(_, _, soft, lm)| match loss.kind() {
            LossKind::Softmax => Some(soft),
            LossKind::LargeMargin => Some(lm),
            _ => None,
        })
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
            reference: reference(&g.key.dataset, &g.key.arch, g.key.width, &g.key.loss),
        })
        .collect()
}

/// The paper's table as Markdown: one line per configuration, errors in percent.
///
/// ```
/// use lmsoftmax::report::table::{ConfigKey, TableRow, markdown_table};
/// use lmsoftmax_loss::{LossConfig, LossKind};
/// let key = ConfigKey {
///     dataset: "cifar10".into(), arch: "layer13".into(), width: 1.0,
///     config: "layer13".into(), loss: LossConfig::of_kind(LossKind::Softmax),
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
        let loss = k.loss.label();
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
