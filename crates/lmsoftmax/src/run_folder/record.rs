//! Reading a run folder back: `run.json`, the metrics and the margins, for `report`.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};

use super::meta::RunMeta;
use super::metrics::{self, EpochRow};
use super::stats::best_row;
use super::{MARGINS_TXT, METRICS_JSONL, RUN_JSON};

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
    /// Reads a run folder. Every file is replaced atomically by a running training, so a folder
    /// can be read while its run goes on.
    ///
    /// # Errors
    /// A folder that is not a run (no `run.json`), unreadable or malformed files, a run with no
    /// finished epoch.
    ///
    /// ```no_run
    /// let run = lmsoftmax::run_folder::record::RunRecord::load("runs/layer13-seed0".as_ref()).unwrap();
    /// println!("{} epochs", run.rows.len());
    /// ```
    pub fn load(dir: &Path) -> Result<Self> {
        let meta_path = dir.join(RUN_JSON);
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
        let rows = metrics::read_jsonl(&dir.join(METRICS_JSONL))?;
        if rows.is_empty() {
            bail!("{} has no finished epoch yet", dir.display());
        }
        let margins_path = dir.join(MARGINS_TXT);
        let margins = if margins_path.is_file() {
            let text = std::fs::read_to_string(&margins_path)
                .with_context(|| format!("reading {}", margins_path.display()))?;
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

    /// The row of the lowest test top-1 error (ties: the later epoch, as the official script's
    /// `model_best`).
    pub fn best_row(&self) -> &EpochRow {
        best_row(&self.rows).expect("load() refuses runs without rows")
    }
}
