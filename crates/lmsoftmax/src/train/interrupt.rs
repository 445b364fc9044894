//! Ctrl-C during training: the handler only raises a flag; the epoch loop looks at it after each
//! step, abandons the epoch (whose updates were never checkpointed) and stops with
//! [`crate::error::Interrupted`], saying how to resume. A second Ctrl-C ends the process at once.

use std::sync::Once;
use std::sync::atomic::{AtomicBool, Ordering};

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
