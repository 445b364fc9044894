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
    /// An I/O failure while reading.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
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
        } else {
            Self::Io { path, source }
        }
    }
}

/// Reads a whole file, mapping errors to [`DataError`].
pub(crate) fn read_file(path: &std::path::Path) -> Result<Vec<u8>, DataError> {
    std::fs::read(path).map_err(|e| DataError::io(path, e))
}
