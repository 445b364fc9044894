//! Checkpoints: model, optimizer and run state in one file, written atomically (temporary file,
//! fsync, rename) and checked with an MD5 on load, so a killed run never leaves a half-written
//! checkpoint behind and a corrupt one is reported, never used.

use std::path::Path;

use anyhow::{Context, Result, bail, ensure};
use md5::{Digest, Md5};

use crate::atomic::write_atomic;

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
    write_atomic(path, &encode(parts))
}

/// The bytes of a checkpoint file holding `parts` (what [`write`] writes and ranks exchange).
pub fn encode(parts: &CheckpointParts) -> Vec<u8> {
    let mut bytes =
        Vec::with_capacity(parts.model.len() + parts.optimizer.len() + parts.state.len() + 64);
    bytes.extend_from_slice(MAGIC);
    for part in [&parts.state, &parts.model, &parts.optimizer] {
        bytes.extend_from_slice(&(part.len() as u64).to_le_bytes());
        bytes.extend_from_slice(part);
    }
    let digest = Md5::digest(&bytes);
    bytes.extend_from_slice(&digest);
    bytes
}

/// Reads and verifies a checkpoint.
///
/// # Errors
/// A missing file, or a truncated or corrupt one (bad magic, lengths or checksum).
pub fn read(path: &Path) -> Result<CheckpointParts> {
    let bytes =
        std::fs::read(path).with_context(|| format!("reading checkpoint {}", path.display()))?;
    decode(&bytes, path)
}

/// The parts of checkpoint bytes (as [`encode`] makes them), verified; `path` names them in
/// errors.
///
/// # Errors
/// Truncated or corrupt bytes (bad magic, lengths or checksum).
pub fn decode(bytes: &[u8], path: &Path) -> Result<CheckpointParts> {
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
