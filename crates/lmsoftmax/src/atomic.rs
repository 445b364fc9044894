//! Atomic file writes: a temporary file in the same folder, fsync, rename. A run killed at any
//! moment leaves either the previous file or the new one, never half of one.

use std::io::Write;
use std::path::Path;

use anyhow::{Context, Result, bail};

/// Environment variable (a test hook): milliseconds to sleep after each 64 KiB written by
/// [`write_atomic`], so that tests can kill a run in the middle of writing a checkpoint.
pub const SLOW_WRITE_ENV: &str = "LMSOFTMAX_TEST_SLOW_WRITE_MS";

/// Writes a file through a temporary file in the same folder and a rename.
///
/// # Errors
/// I/O errors, with the path. A full disk (or a file-size limit) is named as such; the previous
/// file under `path` stays intact and the temporary file is removed.
///
/// ```
/// let dir = tempfile::tempdir()?;
/// let path = dir.path().join("run.json");
/// lmsoftmax::atomic::write_atomic(&path, b"{}")?;
/// assert_eq!(std::fs::read(&path)?, b"{}");
/// # Ok::<(), anyhow::Error>(())
/// ```
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let mut tmp_name = path.file_name().unwrap_or_default().to_os_string();
    tmp_name.push(".tmp");
    let tmp = path.with_file_name(tmp_name);
    let pause = std::env::var(SLOW_WRITE_ENV)
        .ok()
        .and_then(|v| v.parse::<u64>().ok())
        .map(std::time::Duration::from_millis);
    let result = (|| -> std::io::Result<()> {
        let mut f = std::fs::File::create(&tmp)?;
        match pause {
            None => f.write_all(bytes)?,
            Some(pause) => {
                for chunk in bytes.chunks(1 << 16) {
                    f.write_all(chunk)?;
                    std::thread::sleep(pause);
                }
            }
        }
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    if let Err(e) = result {
        let _ = std::fs::remove_file(&tmp);
        if is_out_of_space(&e) {
            bail!(
                "the disk is full (or a file-size limit was reached) while writing {} ({e}): free \
                 some space and continue with --resume; the files written before are intact",
                path.display()
            );
        }
        return Err(e).with_context(|| format!("writing {}", path.display()));
    }
    Ok(())
}

/// Whether an I/O error means "no space left": ENOSPC, EFBIG (file-size limit) or EDQUOT.
fn is_out_of_space(e: &std::io::Error) -> bool {
    matches!(
        e.kind(),
        std::io::ErrorKind::StorageFull
            | std::io::ErrorKind::FileTooLarge
            | std::io::ErrorKind::QuotaExceeded
    )
}
