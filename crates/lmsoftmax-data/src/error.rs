//! Errors of the data crate: every one names the file and what was expected there.

use std::path::PathBuf;

use thiserror::Error;

/// Why a dataset could not be read.
///
/// ```
/// use lmsoftmax_data::DataError;
/// let err = DataError::Format { path: "data_batch_1".into(), reason: "truncated".into() };
/// assert_eq!(err.to_string(), "data_batch_1: truncated");
/// ```
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum DataError {
    /// A file or folder that is not there.
    #[error("{path}: not found ({what})")]
    Missing {
        /// The path looked for.
        path: PathBuf,
        /// What it should have held.
        what: String,
    },
    /// An I/O failure while reading (a permission denied, say). The system's message is part of
    /// this error's own text, so it is not repeated as a `source()` (an error chain printed
    /// in full would show it twice).
    #[error("{path}: {error}")]
    Io {
        /// The file or folder.
        path: PathBuf,
        /// The underlying error.
        error: std::io::Error,
    },
    /// A file or folder this user may not read (or enter).
    #[error("{path}: this user may not read it ({error}); check its permissions")]
    Unreadable {
        /// The file or folder.
        path: PathBuf,
        /// The underlying error.
        error: std::io::Error,
    },
    /// A file whose content is not in the expected format.
    #[error("{path}: {reason}")]
    Format {
        /// The file.
        path: PathBuf,
        /// What was wrong, and what was expected.
        reason: String,
    },
    /// A label outside `[0, classes)`.
    #[error("{path}: label {label} of image {index} is outside [0, {classes})")]
    LabelOutOfRange {
        /// The file.
        path: PathBuf,
        /// Image index within the file.
        index: usize,
        /// The label.
        label: i64,
        /// Number of classes.
        classes: usize,
    },
    /// An image that cannot be decoded.
    #[error(
        "{path}: cannot decode the image ({reason}); pass --skip-bad-images to skip such files"
    )]
    BadImage {
        /// The image file.
        path: PathBuf,
        /// The decoder's message.
        reason: String,
    },
    /// A request the dataset cannot serve (unknown name, bad parameter).
    #[error("{0}")]
    Invalid(String),
}

impl DataError {
    pub(crate) fn format(path: impl Into<PathBuf>, reason: impl Into<String>) -> Self {
        Self::Format {
            path: path.into(),
            reason: reason.into(),
        }
    }

    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        let path = path.into();
        if source.kind() == std::io::ErrorKind::NotFound {
            Self::Missing {
                path,
                what: "the file does not exist".into(),
            }
        } else if source.kind() == std::io::ErrorKind::PermissionDenied {
            Self::Unreadable {
                path,
                error: source,
            }
        } else {
            Self::Io {
                path,
                error: source,
            }
        }
    }
}

/// Whether `path` is a folder: `false` when nothing (or a file) is there, an error when it cannot
/// be looked at (a folder above it this user may not enter), so that an unreadable dataset is
/// not reported as a missing one.
pub(crate) fn is_dir(path: &std::path::Path) -> Result<bool, DataError> {
    match std::fs::metadata(path) {
        Ok(m) => Ok(m.is_dir()),
        Err(e)
            if matches!(
                e.kind(),
                std::io::ErrorKind::NotFound | std::io::ErrorKind::NotADirectory
            ) =>
        {
            Ok(false)
        }
        Err(e) => Err(DataError::io(path, e)),
    }
}

/// Reads a whole file, mapping errors to [`DataError`].
pub(crate) fn read_file(path: &std::path::Path) -> Result<Vec<u8>, DataError> {
    std::fs::read(path).map_err(|e| DataError::io(path, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The error and its sources joined with ": ", as `anyhow`'s `{:#}` prints a chain.
    fn chain(e: &dyn std::error::Error) -> String {
        let mut text = e.to_string();
        let mut next = e.source();
        while let Some(s) = next {
            text = format!("{text}: {s}");
            next = s.source();
        }
        text
    }

    #[test]
    fn io_errors_say_the_systems_reason_once_and_permission_is_not_missing() {
        let denied = std::io::Error::from(std::io::ErrorKind::PermissionDenied);
        let reason = denied.to_string();
        let e = DataError::io("data/batches.meta", denied);
        assert!(matches!(e, DataError::Unreadable { .. }), "{e:?}");
        let text = chain(&e);
        assert_eq!(text.matches(&reason).count(), 1, "{text}");
        assert!(text.contains("this user may not read it"), "{text}");
        let other = std::io::Error::from(std::io::ErrorKind::InvalidData);
        let reason = other.to_string();
        let text = chain(&DataError::io("x", other));
        assert_eq!(text.matches(&reason).count(), 1, "{text}");
        assert!(matches!(
            DataError::io("x", std::io::ErrorKind::NotFound.into()),
            DataError::Missing { .. }
        ));
    }

    #[test]
    fn is_dir_tells_missing_from_a_file_from_a_folder() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("f"), b"").unwrap();
        assert!(is_dir(dir.path()).unwrap());
        assert!(!is_dir(&dir.path().join("f")).unwrap());
        assert!(!is_dir(&dir.path().join("none")).unwrap());
        assert!(!is_dir(&dir.path().join("f/below")).unwrap());
    }
}
