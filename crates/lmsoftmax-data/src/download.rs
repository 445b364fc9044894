//! `--download`: fetches an official dataset archive over HTTP(S), checks its MD5 while it
//! streams, and extracts it. A failed or mismatched download leaves nothing behind; a server
//! that stops sending fails the download after [`Archive::timeout`] without progress.

use std::fs::File;
use std::io::{BufWriter, IsTerminal, Read, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use md5::{Digest, Md5};

use crate::cifar::Cifar;
use crate::error::DataError;

/// Default of [`Archive::timeout`]: a download that makes no progress this long fails.
pub const DEFAULT_DOWNLOAD_TIMEOUT: Duration = Duration::from_secs(30);

/// A downloadable archive: where it is, its MD5, the folder it extracts to, and how long to
/// wait for the server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Archive {
    /// HTTP(S) address.
    pub url: String,
    /// Expected MD5: 32 hex digits (either case).
    pub md5: String,
    /// The folder the archive holds at its top level.
    pub folder: String,
    /// The download timeout (`download_timeout`): the longest wait for the connection, and
    /// for each read, with no byte arriving; [`DEFAULT_DOWNLOAD_TIMEOUT`] unless set.
    pub timeout: Duration,
}

impl Archive {
    /// The official CIFAR archive (the python layout, as torchvision downloads it).
    ///
    /// ```
    /// use lmsoftmax_data::{Cifar, download::Archive};
    /// let a = Archive::cifar(Cifar::Ten);
    /// assert_eq!(a.folder, "cifar-10-batches-py");
    /// assert_eq!(a.md5, "c58f30108f718f92721af3b95e74349a");
    /// assert_eq!(a.timeout, std::time::Duration::from_secs(30));
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
            timeout: DEFAULT_DOWNLOAD_TIMEOUT,
        }
    }
}

/// Checks that `md5` is 32 hex digits.
///
/// ```
/// use lmsoftmax_data::download::check_md5;
/// assert!(check_md5("c58f30108f718f92721af3b95e74349a").is_ok());
/// assert!(check_md5("C58F30108F718F92721AF3B95E74349A").is_ok());
/// assert!(check_md5("c58f3010").is_err());
/// ```
///
/// # Errors
/// [`DataError::Invalid`] quoting the string and what was expected.
pub fn check_md5(md5: &str) -> Result<(), DataError> {
    if md5.len() == 32 && md5.bytes().all(|b| b.is_ascii_hexdigit()) {
        Ok(())
    } else {
        Err(DataError::Invalid(format!(
            "the expected MD5 {md5:?} is not 32 hex digits (e.g. c58f30108f718f92721af3b95e74349a)"
        )))
    }
}

/// MD5 of a byte slice as lower-case hex.
pub fn md5_hex(bytes: &[u8]) -> String {
    format!("{:x}", Md5::digest(bytes))
}

/// Downloads `archive` into `dest` and extracts it, unless `dest/<folder>` exists already.
/// Returns the extracted folder.
///
/// A progress bar goes to stderr while it downloads, when stderr is a terminal.
///
/// # Errors
/// [`DataError`] for an MD5 argument that is not 32 hex digits (before any connection), a
/// failed request (with the HTTP status), a server that sends nothing for
/// [`Archive::timeout`], an MD5 mismatch, or an archive that does not extract to the expected
/// folder.
pub fn download_and_extract(archive: &Archive, dest: &Path) -> Result<PathBuf, DataError> {
    check_md5(&archive.md5)?;
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
    let stalled = || {
        fail(format!(
            "no progress for {} s (the download timeout); the server accepted the connection \
             but stopped answering, or cannot be reached",
            archive.timeout.as_secs_f64()
        ))
    };
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .timeout_resolve(Some(archive.timeout))
        .timeout_connect(Some(archive.timeout))
        .timeout_per_read(Some(archive.timeout))
        .timeout_per_write(Some(archive.timeout))
        .build()
        .into();
    let mut response = agent.get(&archive.url).call().map_err(|e| match e {
        ureq::Error::Timeout(_) => stalled(),
        e => fail(e.to_string()),
    })?;
    let total = response.body().content_length();
    let mut reader = response.body_mut().with_config().limit(u64::MAX).reader();
    let mut out = BufWriter::new(File::create(part).map_err(|e| DataError::io(part, e))?);
    let mut hasher = Md5::new();
    let mut buf = vec![0u8; 1 << 16];
    let bar = progress_bar(total);
    loop {
        let n = reader.read(&mut buf).map_err(|e| {
            bar.abandon();
            if is_timeout(&e) {
                stalled()
            } else {
                fail(e.to_string())
            }
        })?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        out.write_all(&buf[..n])
            .map_err(|e| DataError::io(part, e))?;
        bar.inc(n as u64);
    }
    bar.finish_and_clear();
    out.flush().map_err(|e| DataError::io(part, e))?;
    let got = format!("{:x}", hasher.finalize());
    if got != archive.md5.to_ascii_lowercase() {
        return Err(fail(format!(
            "MD5 {got} does not match the expected {} (corrupt or wrong file)",
            archive.md5
        )));
    }
    Ok(())
}

/// Whether a body read failed on a ureq timeout.
fn is_timeout(e: &std::io::Error) -> bool {
    e.kind() == std::io::ErrorKind::TimedOut
        || e.get_ref()
            .and_then(|inner| inner.downcast_ref::<ureq::Error>())
            .is_some_and(|u| matches!(u, ureq::Error::Timeout(_)))
}

/// Bytes downloaded, of `total` when the server says, on stderr; hidden when stderr is not a
/// terminal.
fn progress_bar(total: Option<u64>) -> indicatif::ProgressBar {
    if !std::io::stderr().is_terminal() {
        return indicatif::ProgressBar::hidden();
    }
    let (bar, template) = match total {
        Some(n) => (
            indicatif::ProgressBar::new(n),
            "{bar:40} {bytes}/{total_bytes} {bytes_per_sec} eta {eta}",
        ),
        None => (
            indicatif::ProgressBar::no_length(),
            "{spinner} {bytes} {bytes_per_sec}",
        ),
    };
    if let Ok(style) = indicatif::ProgressStyle::with_template(template) {
        bar.set_style(style);
    }
    bar.set_draw_target(indicatif::ProgressDrawTarget::stderr());
    bar
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
