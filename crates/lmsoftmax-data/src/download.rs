//! `--download`: fetches an official dataset archive over HTTP(S), checks its MD5 while it
//! streams, and extracts it. A failed or mismatched download leaves nothing behind.

use std::fs::File;
use std::io::{BufWriter, Read, Write};
use std::path::{Path, PathBuf};

use md5::{Digest, Md5};

use crate::cifar::Cifar;
use crate::error::DataError;

/// A downloadable archive: where it is, its MD5, and the folder it extracts to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Archive {
    /// HTTP(S) address.
    pub url: String,
    /// Expected MD5, lower-case hex.
    pub md5: String,
    /// The folder the archive holds at its top level.
    pub folder: String,
}

impl Archive {
    /// The official CIFAR archive (the python layout, as torchvision downloads it).
    ///
    /// ```
    /// use lmsoftmax_data::{Cifar, download::Archive};
    /// let a = Archive::cifar(Cifar::Ten);
    /// assert_eq!(a.folder, "cifar-10-batches-py");
    /// assert_eq!(a.md5, "c58f30108f718f92721af3b95e74349a");
    /// ```
    pub fn cifar(which: Cifar) -> Self {
        let (name, md5, folder) = match which {
            Cifar::Ten => (
                "cifar-10-python.tar.gz",
                "c58f30108f718f92721af3b95e74349a",
                "cifar-10-batches-py",
            ),
            Cifar::Hundred => (
                "cifar-100-python.tar.gz",
                "eb9058c3a382ffc7106e4002c42a8d85",
                "cifar-100-python",
            ),
        };
        Self {
            url: format!("https://www.cs.toronto.edu/~kriz/{name}"),
            md5: md5.into(),
            folder: folder.into(),
        }
    }
}

/// MD5 of a byte slice as lower-case hex.
pub fn md5_hex(bytes: &[u8]) -> String {
    format!("{:x}", Md5::digest(bytes))
}

/// Downloads `archive` into `dest` and extracts it, unless `dest/<folder>` exists already.
/// Returns the extracted folder.
///
/// # Errors
/// [`DataError`] for a failed request (with the HTTP status), an MD5 mismatch, or an archive
/// that does not extract to the expected folder.
pub fn download_and_extract(archive: &Archive, dest: &Path) -> Result<PathBuf, DataError> {
    let target = dest.join(&archive.folder);
    if target.is_dir() {
        return Ok(target);
    }
    std::fs::create_dir_all(dest).map_err(|e| DataError::io(dest, e))?;
    let file_name = archive
        .url
        .rsplit('/')
        .next()
        .filter(|n| !n.is_empty())
        .unwrap_or("download.tar.gz");
    let part = dest.join(format!("{file_name}.part"));
    let result = fetch(archive, &part).and_then(|()| extract(&part, dest, &archive.folder));
    let _ = std::fs::remove_file(&part);
    result.map(|()| target)
}

fn fetch(archive: &Archive, part: &Path) -> Result<(), DataError> {
    let fail =
        |reason: String| DataError::Invalid(format!("downloading {}: {reason}", archive.url));
    let mut response = ureq::get(&archive.url)
        .call()
        .map_err(|e| fail(e.to_string()))?;
    let mut reader = response.body_mut().with_config().limit(u64::MAX).reader();
    let mut out = BufWriter::new(File::create(part).map_err(|e| DataError::io(part, e))?);
    let mut hasher = Md5::new();
    let mut buf = vec![0u8; 1 << 16];
    loop {
        let n = reader.read(&mut buf).map_err(|e| fail(e.to_string()))?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        out.write_all(&buf[..n])
            .map_err(|e| DataError::io(part, e))?;
    }
    out.flush().map_err(|e| DataError::io(part, e))?;
    let got = format!("{:x}", hasher.finalize());
    if got != archive.md5 {
        return Err(fail(format!(
            "MD5 {got} does not match the expected {} (corrupt or wrong file)",
            archive.md5
        )));
    }
    Ok(())
}

/// Extracts into a temporary folder beside `dest`, then moves `folder` into place, so that an
/// interrupted extraction never leaves a half-filled dataset folder.
fn extract(tarball: &Path, dest: &Path, folder: &str) -> Result<(), DataError> {
    let staging = dest.join(format!(".{folder}.extracting"));
    let _ = std::fs::remove_dir_all(&staging);
    let file = File::open(tarball).map_err(|e| DataError::io(tarball, e))?;
    if let Err(e) = tar::Archive::new(flate2::read::GzDecoder::new(file)).unpack(&staging) {
        let _ = std::fs::remove_dir_all(&staging);
        return Err(DataError::format(
            tarball,
            format!("not a valid .tar.gz archive: {e}"),
        ));
    }
    let inner = staging.join(folder);
    if !inner.is_dir() {
        let _ = std::fs::remove_dir_all(&staging);
        return Err(DataError::format(
            tarball,
            format!("the archive has no top-level folder {folder}/"),
        ));
    }
    std::fs::rename(&inner, dest.join(folder)).map_err(|e| DataError::io(dest.join(folder), e))?;
    let _ = std::fs::remove_dir_all(&staging);
    Ok(())
}
