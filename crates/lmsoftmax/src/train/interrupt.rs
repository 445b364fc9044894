//! Ctrl-C during training: the handler only raises a flag; the epoch loop looks at it after each
//! step, abandons the epoch (whose updates were never checkpointed) and stops with a message
//! saying how to resume. A second Ctrl-C ends the process at once.

use std::sync::Once;
use std::sync::atomic::{AtomicBool, Ordering};

use thiserror::Error;

static REQUESTED: AtomicBool = AtomicBool::new(false);

/// Installs the handler (once per process; later calls do nothing).
pub fn install() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let result = ctrlc::set_handler(|| {
            if REQUESTED.swap(true, Ordering::SeqCst) {
                // the second Ctrl-C: the user does not want to wait for the step
                std::process::exit(130);
            }
        });
        if let Err(e) = result {
            eprintln!("warning: Ctrl-C cannot be caught ({e}); it will end the run at once");
        }
    });
}

/// Whether Ctrl-C was pressed.
pub fn requested() -> bool {
    REQUESTED.load(Ordering::SeqCst)
}

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
