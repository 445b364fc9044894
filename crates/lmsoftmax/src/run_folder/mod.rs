//! The run folder: every file a training run writes and how it is read back, in one place that
//! both training and `report` use.
//!
//! | file | written | what |
//! |---|---|---|
//! | `run.json` | at the start | [`meta::RunMeta`]: dataset, network, width, seed, config, loss |
//! | `config.toml` | at the start | the resolved training configuration |
//! | `metrics.csv`, `metrics.jsonl` | every epoch | [`metrics::EpochRow`]s |
//! | `test-margins.txt` | every epoch | the epoch's margin per test image |
//! | `train_epochs.png` | every epoch | the official four-panel figure ([`curves`]) |
//! | `checkpoint-{last,best,epochN}.ckpt` | every epoch | model + optimizer + run state |
//! | `summary.txt` | at the end | the official ` *BEST* Err@1 .. Err@5 ..` line |
//!
//! Every file is written atomically ([`crate::atomic::write_atomic`]).

pub mod curves;
pub mod meta;
pub mod metrics;
pub mod record;
pub mod stats;

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

use self::meta::RunMeta;
use self::metrics::EpochRow;
use crate::atomic::write_atomic;

/// `run.json`.
pub const RUN_JSON: &str = "run.json";
/// `config.toml`.
pub const CONFIG_TOML: &str = "config.toml";
/// `metrics.csv`.
pub const METRICS_CSV: &str = "metrics.csv";
/// `metrics.jsonl`.
pub const METRICS_JSONL: &str = "metrics.jsonl";
/// `test-margins.txt`.
pub const MARGINS_TXT: &str = "test-margins.txt";
/// `summary.txt`.
pub const SUMMARY_TXT: &str = "summary.txt";
/// `checkpoint-last.ckpt`.
pub const LAST_CHECKPOINT: &str = "checkpoint-last.ckpt";
/// `checkpoint-best.ckpt`.
pub const BEST_CHECKPOINT: &str = "checkpoint-best.ckpt";

/// A run's folder and the paths of its files.
///
/// ```
/// use lmsoftmax::run_folder::RunFolder;
/// let run = RunFolder::new("runs/lm");
/// assert!(run.last_checkpoint().ends_with("checkpoint-last.ckpt"));
/// assert!(run.epoch_checkpoint(3).ends_with("checkpoint-epoch3.ckpt"));
/// assert!(RunFolder::is_run_file("metrics.csv") && !RunFolder::is_run_file("notes.txt"));
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct RunFolder {
    dir: PathBuf,
}

impl RunFolder {
    /// The folder `dir` (not created until [`RunFolder::create`]).
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Self { dir: dir.into() }
    }

    /// The folder.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// A file of the run.
    pub fn file(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    /// `checkpoint-last.ckpt`.
    pub fn last_checkpoint(&self) -> PathBuf {
        self.file(LAST_CHECKPOINT)
    }

    /// `checkpoint-best.ckpt`.
    pub fn best_checkpoint(&self) -> PathBuf {
        self.file(BEST_CHECKPOINT)
    }

    /// `checkpoint-epoch{epoch}.ckpt` (epoch from 1).
    pub fn epoch_checkpoint(&self, epoch: usize) -> PathBuf {
        self.file(&format!("checkpoint-epoch{epoch}.ckpt"))
    }

    /// Whether a run was started here (`run.json`, metrics or a checkpoint exist).
    pub fn holds_run(&self) -> bool {
        [RUN_JSON, METRICS_CSV, LAST_CHECKPOINT]
            .iter()
            .any(|f| self.file(f).exists())
    }

    /// Whether a run was started here with this version's files (`run.json` exists).
    pub fn was_started(&self) -> bool {
        self.file(RUN_JSON).exists()
    }

    /// Whether `name` is one of the files a run writes (removed by `--overwrite`), or the
    /// temporary file of one (or of a figure) that a killed run left behind.
    pub fn is_run_file(name: &str) -> bool {
        if let Some(written) = name.strip_suffix(".tmp") {
            return Self::is_run_file(written) || written.ends_with(".png");
        }
        matches!(
            name,
            METRICS_CSV | METRICS_JSONL | SUMMARY_TXT | RUN_JSON | CONFIG_TOML | MARGINS_TXT
        ) || (name.starts_with("checkpoint-") && name.ends_with(".ckpt"))
    }

    /// Removes the temporary files that a run killed while writing left behind (the files
    /// they were to replace are intact). Call it holding the folder's [`lock`](Self::lock).
    ///
    /// # Errors
    /// I/O errors, with the path.
    pub fn remove_temporary_files(&self) -> Result<()> {
        let Ok(entries) = std::fs::read_dir(&self.dir) else {
            return Ok(());
        };
        for entry in entries.filter_map(|e| e.ok()) {
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.ends_with(".tmp") && Self::is_run_file(&name) {
                std::fs::remove_file(entry.path())
                    .with_context(|| format!("removing {}", entry.path().display()))?;
            }
        }
        Ok(())
    }

    /// Creates the folder.
    ///
    /// # Errors
    /// I/O errors, with the path.
    pub fn create(&self) -> Result<()> {
        if self.dir.is_dir() {
            return Ok(());
        }
        std::fs::create_dir_all(&self.dir).map_err(|e| {
            if matches!(
                e.kind(),
                std::io::ErrorKind::PermissionDenied | std::io::ErrorKind::ReadOnlyFilesystem
            ) {
                anyhow::anyhow!(
                    "cannot create {}: a folder above it is not writable by this user ({e}); \
                     train into another --out-dir",
                    self.dir.display()
                )
            } else {
                anyhow::anyhow!("creating {}: {e}", self.dir.display())
            }
        })
    }

    /// An I/O error on the folder itself; a permission problem (or a read-only file system)
    /// is said as such, with what to do.
    fn not_writable(&self, doing: &str, e: std::io::Error) -> anyhow::Error {
        use std::io::ErrorKind;
        if matches!(
            e.kind(),
            ErrorKind::PermissionDenied | ErrorKind::ReadOnlyFilesystem
        ) {
            anyhow::anyhow!(
                "{} is not writable by this user ({e}): make it writable, or train into another \
                 --out-dir; nothing in it was changed",
                self.dir.display()
            )
        } else {
            anyhow::anyhow!("{doing} {}: {e}", self.dir.display())
        }
    }

    /// Removes the files of an earlier run (and only those), for `--overwrite`.
    ///
    /// # Errors
    /// I/O errors, with the path.
    pub fn clear_run_files(&self) -> Result<()> {
        if !self.dir.is_dir() {
            return Ok(());
        }
        let entries = std::fs::read_dir(&self.dir)
            .with_context(|| format!("listing {}", self.dir.display()))?;
        for entry in entries {
            let entry = entry?;
            if entry.file_name().to_str().is_some_and(Self::is_run_file) {
                std::fs::remove_file(entry.path())
                    .with_context(|| format!("removing {}", entry.path().display()))?;
            }
        }
        Ok(())
    }

    /// Writes `run.json`.
    ///
    /// # Errors
    /// I/O errors.
    pub fn write_meta(&self, meta: &RunMeta) -> Result<()> {
        write_atomic(
            &self.file(RUN_JSON),
            serde_json::to_string_pretty(meta)?.as_bytes(),
        )
    }

    /// Writes `config.toml` (the resolved configuration's text).
    ///
    /// # Errors
    /// I/O errors.
    pub fn write_config(&self, toml_text: &str) -> Result<()> {
        write_atomic(&self.file(CONFIG_TOML), toml_text.as_bytes())
    }

    /// Writes `metrics.csv` and `metrics.jsonl` for `rows`.
    ///
    /// # Errors
    /// I/O errors.
    pub fn write_metrics(&self, rows: &[EpochRow]) -> Result<()> {
        write_atomic(&self.file(METRICS_CSV), metrics::to_csv(rows)?.as_bytes())?;
        write_atomic(
            &self.file(METRICS_JSONL),
            metrics::to_jsonl(rows)?.as_bytes(),
        )
    }

    /// Writes `test-margins.txt`, one margin per line.
    ///
    /// # Errors
    /// I/O errors.
    pub fn write_margins(&self, margins: &[f64]) -> Result<()> {
        let text: String = margins.iter().map(|m| format!("{m}\n")).collect();
        write_atomic(&self.file(MARGINS_TXT), text.as_bytes())
    }

    /// Writes `summary.txt`.
    ///
    /// # Errors
    /// I/O errors.
    pub fn write_summary(&self, line: &str) -> Result<()> {
        write_atomic(&self.file(SUMMARY_TXT), format!("{line}\n").as_bytes())
    }
}

/// The lock file of a run folder (an OS file lock, released by the OS on any exit, also
/// SIGKILL; the file itself stays and holds the last holder's pid).
pub const LOCK_FILE: &str = ".lmsoftmax.lock";

/// An exclusive hold on a run folder: one training process at a time writes into it.
#[derive(Debug)]
pub struct FolderLock {
    _file: std::fs::File,
}

impl RunFolder {
    /// Takes the folder's lock (creating the folder), or says which process holds it.
    ///
    /// # Errors
    /// Another process holds the lock (its pid is named), or the lock file cannot be opened.
    ///
    /// ```
    /// let dir = tempfile::tempdir()?;
    /// let run = lmsoftmax::run_folder::RunFolder::new(dir.path().join("run"));
    /// let held = run.lock()?;
    /// drop(held); // released: it can be taken again
    /// let _again = run.lock()?;
    /// # Ok::<(), anyhow::Error>(())
    /// ```
    pub fn lock(&self) -> Result<FolderLock> {
        use std::io::{Read, Seek, Write};
        self.create()?;
        let path = self.file(LOCK_FILE);
        let mut file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(|e| self.not_writable("opening the lock file in", e))?;
        match file.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => {
                let mut holder = String::new();
                let _ = file.read_to_string(&mut holder);
                let holder = holder.trim();
                anyhow::bail!(
                    "{} is in use by another lmsoftmax process{}: wait for it to end, or train \
                     into another --out-dir (`report` and `eval` may read the folder meanwhile)",
                    self.dir.display(),
                    if holder.is_empty() {
                        String::new()
                    } else {
                        format!(" (pid {holder})")
                    }
                )
            }
            Err(std::fs::TryLockError::Error(e)) => {
                return Err(e).with_context(|| format!("locking {}", path.display()));
            }
        }
        file.set_len(0)?;
        file.rewind()?;
        write!(file, "{}", std::process::id())?;
        file.flush()?;
        Ok(FolderLock { _file: file })
    }
}

/// The official ` *BEST* Err@1 x.xxx Err@5 x.xxx` line of `rows` ([`stats::official_best_row`]).
///
/// ```
/// # use lmsoftmax::run_folder::{best_line, metrics::EpochRow};
/// let row = |epoch, e1, e5| EpochRow { epoch, test_top1_err: e1, test_top5_err: e5, ..EpochRow::default() };
/// assert_eq!(best_line(&[row(1, 9.0, 2.0), row(2, 7.0, 1.5), row(3, 7.0, 1.0)]).unwrap(),
///            " *BEST* Err@1 7.000 Err@5 1.500");
/// ```
pub fn best_line(rows: &[EpochRow]) -> Option<String> {
    stats::official_best_row(rows).map(|r| {
        format!(
            " *BEST* Err@1 {:.3} Err@5 {:.3}",
            r.test_top1_err, r.test_top5_err
        )
    })
}
