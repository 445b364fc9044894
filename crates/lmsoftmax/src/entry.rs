//! The body of the `lmsoftmax` binaries (`lmsoftmax`, and `lmsoftmax-mpi` built with the `mpi`
//! feature): process setup (SIGPIPE, mimalloc's options), the command line, the exit status
//! ([`crate::error`]): 0 on success, 2 on bad usage or input, 1 on a failure while running.

use std::process::ExitCode;

use clap::Parser;

use crate::cli::Cli;
use crate::error::{exit_code, message};

/// mimalloc's `mi_option_purge_delay` (its position in `mi_option_e`, mimalloc v3's
/// `mimalloc.h`, the version `libmimalloc-sys` 0.1.49 builds by default).
const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

/// Keeps freed memory instead of handing it back to the OS a second after it is freed
/// (mimalloc v3's default purge delay, 1000 ms), as PyTorch's caching allocators do: a training
/// step frees and remakes the same large activations every step, and returned pages come back
/// zeroed by the kernel (42,000-47,000 page faults and ~6% of a layer13 step at batch 128). The
/// process keeps its peak memory. `MIMALLOC_PURGE_DELAY` in the environment (milliseconds; -1
/// never) still wins.
pub fn keep_freed_memory() {
    if std::env::var_os("MIMALLOC_PURGE_DELAY").is_none() {
        // SAFETY: setting a mimalloc option is thread-safe; -1 is a documented value.
        unsafe { libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, -1) };
    }
}

/// What the `lmsoftmax` binaries run: the command line parsed and handed to
/// [`crate::commands::run`], its error printed, the exit status returned.
pub fn main() -> ExitCode {
    // Die quietly on a closed pipe (`lmsoftmax models --json | head`), as Unix tools do,
    // instead of panicking on the next print.
    #[cfg(unix)]
    // SAFETY: restoring the default action of a signal before any thread is started.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
    keep_freed_memory();
    match crate::commands::run(Cli::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {}", message(&err));
            ExitCode::from(exit_code(&err))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The option index is tied to the `libmimalloc-sys` version: a different one would set some
    /// other option silently. Its default (1000 ms) differs from both neighbours' (1 and 0).
    #[test]
    fn the_purge_delay_option_is_the_one_set() {
        if std::env::var_os("MIMALLOC_PURGE_DELAY").is_some() {
            eprintln!("MIMALLOC_PURGE_DELAY is set: the default cannot be checked");
            return;
        }
        // SAFETY: reading and setting mimalloc options is thread-safe.
        assert_eq!(
            unsafe { libmimalloc_sys::mi_option_get(MI_OPTION_PURGE_DELAY) },
            1000,
            "option {MI_OPTION_PURGE_DELAY} is not mimalloc's purge delay"
        );
        keep_freed_memory();
        assert_eq!(
            unsafe { libmimalloc_sys::mi_option_get(MI_OPTION_PURGE_DELAY) },
            -1
        );
    }
}
