//! Exit status of the command: 0 on success, **2** for a usage or input error (a bad flag or
//! config value, a dataset or checkpoint that cannot be used, a folder that holds another run),
//! **1** for a failure while running (a diverging run, a full disk, a failed device). Clap's
//! own usage errors exit 2 as well. A training stopped by Ctrl-C exits **130**, as a shell reports
//! SIGINT.

use thiserror::Error;

/// An error in what the user gave: exit status 2.
#[derive(Debug, Error)]
#[error("{0}")]
pub struct InputError(pub String);

/// The run stopped on Ctrl-C: exit status 130, as a shell reports SIGINT.
#[derive(Debug, Error)]
#[error(
    "interrupted (Ctrl-C) in epoch {epoch} after batch {batch}: that epoch is abandoned; {resume}"
)]
pub struct Interrupted {
    /// The epoch (from 1).
    pub epoch: usize,
    /// The last finished batch (from 1).
    pub batch: usize,
    /// What is left and how to continue.
    pub resume: String,
}

/// An [`InputError`] as an `anyhow` error.
///
/// ```
/// let err = lmsoftmax::error::input("--epochs must be >= 1");
/// assert_eq!(lmsoftmax::error::exit_code(&err), 2);
/// ```
pub fn input(message: impl Into<String>) -> anyhow::Error {
    InputError(message.into()).into()
}

/// `err` as an input error (exit status 2), its message (with its causes) unchanged.
pub fn as_input(err: anyhow::Error) -> anyhow::Error {
    InputError(format!("{err:#}")).into()
}

/// The exit status for `err`: 2 when any error in its chain is an input error (ours, or the
/// data, loss, network or TOML crates' errors about what they were given), else 1.
///
/// ```
/// use lmsoftmax::error::{as_input, exit_code};
/// assert_eq!(exit_code(&anyhow::anyhow!("the disk is full")), 1);
/// assert_eq!(exit_code(&as_input(anyhow::anyhow!("no such checkpoint"))), 2);
/// ```
pub fn exit_code(err: &anyhow::Error) -> u8 {
    if err.chain().any(|e| e.is::<Interrupted>()) {
        return 130;
    }
    let input = err.chain().any(|e| {
        e.is::<InputError>()
            || e.is::<lmsoftmax_data::DataError>()
            || e.is::<lmsoftmax_loss::ConfigError>()
            || e.is::<lmsoftmax_loss::LossError>()
            || e.is::<lmsoftmax_models::ModelError>()
            || e.is::<toml::de::Error>()
    });
    if input { 2 } else { 1 }
}

/// The message of `err` and its causes, `a: b: c`.
///
/// ```
/// use lmsoftmax::error::{as_input, exit_code, message};
/// let err = as_input(anyhow::anyhow!("bad").context("reading x")).context("in run a");
/// assert_eq!(message(&err), "in run a: reading x: bad");
/// assert_eq!(exit_code(&err), 2);
/// ```
pub fn message(err: &anyhow::Error) -> String {
    format!("{err:#}")
}
