//! Checkpoints: model, optimizer and run state in one file, written atomically (temporary file,
//! fsync, rename) and checked with an MD5 on load, so a killed run never leaves a half-written
//! checkpoint behind and a corrupt one is reported, never used.

use std::io::Write;
use std::path::Path;

use anyhow::{Context, Result, bail, ensure};
use burn::tensor::Bytes;
use md5::{Digest, Md5};

const MAGIC: &[u8; 8] = b"LMSCKPT1";

/// The three parts of a checkpoint.
pub struct CheckpointParts {
    /// Run state (JSON).
    pub state: Vec<u8>,
    /// Model record (burnpack bytes).
    pub model: Vec<u8>,
    /// Optimizer record bytes.
    pub optimizer: Vec<u8>,
}

/// Writes `parts` to `path` atomically.
///
/// # Errors
/// I/O errors, with the path.
pub fn write(path: &Path, parts: &CheckpointParts) -> Result<()> {
    let mut bytes =
        Vec::with_capacity(parts.model.len() + parts.optimizer.len() + parts.state.len() + 64);
    bytes.extend_from_slice(MAGIC);
    for part in [&parts.state, &parts.model, &parts.optimizer] {
        bytes.extend_from_slice(&(part.len() as u64).to_le_bytes());
        bytes.extend_from_slice(part);
    }
    let digest = Md5::digest(&bytes);
    bytes.extend_from_slice(&digest);
    write_atomic(path, &bytes)
}

/// Environment variable (a test hook): milliseconds to sleep after each 64 KiB written by
/// [`write_atomic`], so that tests can kill a run in the middle of writing a checkpoint.
pub const SLOW_WRITE_ENV: &str = "LMSOFTMAX_TEST_SLOW_WRITE_MS";

/// Writes a file through a temporary file in the same folder and a rename.
///
/// # Errors
/// I/O errors, with the path. A full disk (or a file-size limit) is named as such; the previous
/// file under `path` stays intact and the temporary file is removed.
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

/// Reads and verifies a checkpoint.
///
/// # Errors
/// A missing file, or a truncated or corrupt one (bad magic, lengths or checksum).
pub fn read(path: &Path) -> Result<CheckpointParts> {
    let bytes =
        std::fs::read(path).with_context(|| format!("reading checkpoint {}", path.display()))?;
    let corrupt = |why: &str| {
        anyhow::anyhow!(
            "checkpoint {} is corrupt or truncated ({why}); it was not used",
            path.display()
        )
    };
    if bytes.len() < MAGIC.len() + 16 || &bytes[..8] != MAGIC {
        return Err(corrupt("not a lmsoftmax checkpoint"));
    }
    let (body, digest) = bytes.split_at(bytes.len() - 16);
    if Md5::digest(body).as_slice() != digest {
        return Err(corrupt("checksum mismatch"));
    }
    let mut at = 8;
    let mut take = || -> Result<Vec<u8>> {
        ensure!(at + 8 <= body.len(), corrupt("missing length"));
        let n = u64::from_le_bytes(body[at..at + 8].try_into().unwrap()) as usize;
        at += 8;
        ensure!(n <= body.len() - at, corrupt("length past the end"));
        let part = body[at..at + n].to_vec();
        at += n;
        Ok(part)
    };
    let parts = CheckpointParts {
        state: take()?,
        model: take()?,
        optimizer: take()?,
    };
    if at != body.len() {
        bail!(corrupt("trailing bytes"));
    }
    Ok(parts)
}

/// Bytes of a Burn record as a `Vec`.
pub fn bytes_vec(b: Bytes) -> Vec<u8> {
    b.to_vec()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_every_corruption_is_caught() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.ckpt");
        let parts = CheckpointParts {
            state: b"{}".to_vec(),
            model: vec![1, 2, 3],
            optimizer: vec![9; 40],
        };
        write(&path, &parts).unwrap();
        let back = read(&path).unwrap();
        assert_eq!(
            (back.state, back.model, back.optimizer),
            (parts.state, parts.model, parts.optimizer)
        );
        let good = std::fs::read(&path).unwrap();
        for cut in [0, 7, 20, good.len() - 1] {
            std::fs::write(&path, &good[..cut]).unwrap();
            let err = read(&path).err().unwrap().to_string();
            assert!(err.contains("corrupt or truncated"), "{cut}: {err}");
        }
        let mut flipped = good.clone();
        flipped[30] ^= 1;
        std::fs::write(&path, &flipped).unwrap();
        assert!(
            read(&path)
                .err()
                .unwrap()
                .to_string()
                .contains("checksum mismatch")
        );
        assert!(!dir.path().join("c.ckpt.tmp").exists());
    }
}
