//! A test hook: with [`PHASE_PAUSE_ENV`] set, a run announces each phase of an epoch on standard
//! error (`phase: train 2`, `phase: step 2.3` for batch 3 of epoch 2, `phase: evaluate 2`,
//! `phase: checkpoint 2`, counted from 1) and then pauses, so that a test can kill the run, or
//! change its data, in a phase it chooses (the fault-injection tests).

use std::time::Duration;

/// Environment variable (a test hook): milliseconds to pause after announcing each phase.
pub const PHASE_PAUSE_ENV: &str = "LMSOFTMAX_TEST_PHASE_PAUSE_MS";
/// Environment variable (with [`PHASE_PAUSE_ENV`]): pause only at this phase (`step 2.2`,
/// `evaluate 2`, ...); every phase is still announced.
pub const PHASE_PAUSE_AT_ENV: &str = "LMSOFTMAX_TEST_PHASE_PAUSE_AT";
/// Environment variable (with [`PHASE_PAUSE_ENV`]): pause only in the process of this MPI rank
/// (a stalled rank, for the watchdog's test).
pub const PHASE_PAUSE_RANK_ENV: &str = "LMSOFTMAX_TEST_PHASE_PAUSE_RANK";

/// The phases of an epoch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// The training pass is about to start.
    Train,
    /// The evaluation on the test split is about to start.
    Evaluate,
    /// The epoch's metrics, figure and checkpoints are about to be written.
    Checkpoint,
}

impl Phase {
    fn name(self) -> &'static str {
        match self {
            Phase::Train => "train",
            Phase::Evaluate => "evaluate",
            Phase::Checkpoint => "checkpoint",
        }
    }
}

/// Announces `phase` of `epoch` (0-based) and pauses, when the hook is on; nothing otherwise.
pub fn enter(phase: Phase, epoch: usize) {
    announce(|| format!("{} {}", phase.name(), epoch + 1));
}

/// Announces training batch `batch` of `epoch` (both 0-based), its data in hand, and pauses,
/// when the hook is on.
pub fn enter_step(epoch: usize, batch: usize) {
    announce(|| format!("step {}.{}", epoch + 1, batch + 1));
}

fn announce(what: impl FnOnce() -> String) {
    let Some(pause) = std::env::var(PHASE_PAUSE_ENV)
        .ok()
        .and_then(|v| v.parse::<u64>().ok())
    else {
        return;
    };
    let what = what();
    eprintln!("phase: {what}");
    if std::env::var(PHASE_PAUSE_AT_ENV).is_ok_and(|at| at != what) {
        return;
    }
    let rank = crate::distributed::launcher_rank();
    if std::env::var(PHASE_PAUSE_RANK_ENV).is_ok_and(|r| r.trim() != rank.to_string()) {
        return;
    }
    std::thread::sleep(Duration::from_millis(pause));
}
