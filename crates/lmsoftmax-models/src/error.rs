//! Errors returned when building or shape-checking a network.

use thiserror::Error;

/// Why a network could not be built, traced or loaded.
#[derive(Debug, Error)]
pub enum ModelError {
    /// The architecture name is not in the registry.
    #[error("unknown architecture `{name}`; known architectures: {known}")]
    UnknownArch {
        /// The name that was asked for.
        name: String,
        /// Comma-separated list of the known names.
        known: String,
    },
    /// The input is spatially too small: some layer would produce an empty map.
    #[error("input {input:?} (C x H x W) is too small for `{arch}`: {detail}")]
    InputTooSmall {
        /// The architecture.
        arch: String,
        /// The input shape `[c, h, w]` that was checked.
        input: [usize; 3],
        /// Which layer failed and how.
        detail: String,
    },
    /// The input's channel count does not match the network's first layer.
    #[error("`{arch}` expects {expected} input channels, got {got}")]
    ChannelMismatch {
        /// The architecture.
        arch: String,
        /// Channels the first layer was built for.
        expected: usize,
        /// Channels of the input.
        got: usize,
    },
    /// A constructor argument is out of range.
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
    /// A checkpoint could not be loaded into the network.
    #[error("cannot load checkpoint `{path}`: {detail}")]
    Load {
        /// The checkpoint file.
        path: String,
        /// What went wrong.
        detail: String,
    },
    /// A network could not be written to a file.
    #[error("cannot write `{path}`: {detail}")]
    Save {
        /// The file.
        path: String,
        /// What went wrong.
        detail: String,
    },
}

/// Validates the arguments shared by every constructor.
pub(crate) fn validate_args(
    in_channels: usize,
    num_classes: usize,
    width: f32,
) -> Result<(), ModelError> {
    if in_channels == 0 {
        return Err(ModelError::InvalidArgument(
            "in_channels must be at least 1".into(),
        ));
    }
    if num_classes == 0 {
        return Err(ModelError::InvalidArgument(
            "num_classes must be at least 1".into(),
        ));
    }
    if !(width.is_finite() && width > 0.0) {
        return Err(ModelError::InvalidArgument(format!(
            "width multiplier must be finite and > 0, got {width}"
        )));
    }
    Ok(())
}
