//! # lmsoftmax-fuzz
//!
//! Fuzzing on stable Rust for the workspace's parsers (CIFAR pickles and binaries, IDX, images,
//! the training config, checkpoints). [`fuzz`] feeds a check with
//!
//! 1. every file of the target's **regression corpus** (inputs that once broke it, kept in the
//!    repository), then
//! 2. proptest-generated inputs: **mutations of real inputs** (bit flips, interesting values,
//!    truncations, insertions, deletions, duplicated ranges) and plain random bytes,
//!
//! for a **budget** of cases or seconds (see [`Budget`]). A check fails by returning an error or
//! by panicking; proptest then shrinks the input, the smallest failing one is written into the
//! corpus (so it is replayed from then on) and the test panics naming that file. A case that takes
//! longer than [`SLOW_CASE`] fails too: an input that stalls a parser is a denial of service.
//!
//! Runs are repeatable: round `k` of a target draws from a seed made of the target's name and `k`.
//!
//! # Example
//! ```
//! use lmsoftmax_fuzz::{Budget, fuzz};
//! let corpus = tempfile::tempdir()?;
//! let report = fuzz("utf8", corpus.path(), vec![b"hello".to_vec()], Budget::cases(64), |bytes| {
//!     let _ = std::str::from_utf8(bytes); // must not panic, whatever the bytes
//!     Ok(())
//! });
//! assert_eq!(report.cases, 64);
//! # Ok::<(), std::io::Error>(())
//! ```
#![warn(missing_docs)]

mod mutate;

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use md5::{Digest, Md5};
use proptest::test_runner::{Config, RngAlgorithm, TestCaseError, TestError, TestRng, TestRunner};

pub use mutate::{Mutation, apply, inputs};

/// Environment variable: seconds of generated cases per target (overrides the case count).
pub const SECONDS_ENV: &str = "LMSOFTMAX_FUZZ_SECONDS";
/// Environment variable: generated cases per target.
pub const CASES_ENV: &str = "LMSOFTMAX_FUZZ_CASES";
/// A single case slower than this fails the target.
pub const SLOW_CASE: Duration = Duration::from_secs(5);

/// How many generated cases a target runs: a count, or as many as fit in a time.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Budget {
    /// Exactly this many generated cases.
    Cases(u64),
    /// Rounds of cases until this much time has passed (at least one round).
    Seconds(f64),
}

impl Budget {
    /// A budget of `n` cases.
    pub fn cases(n: u64) -> Self {
        Budget::Cases(n)
    }

    /// The budget named by [`SECONDS_ENV`] or [`CASES_ENV`], else `default_cases` (what the test
    /// suite runs: `scripts/fuzz.sh` sets a time per target).
    ///
    /// # Panics
    /// When a variable is set to something that is not a positive number, naming it.
    pub fn from_env(default_cases: u64) -> Self {
        if let Ok(v) = std::env::var(SECONDS_ENV) {
            let s: f64 = v.trim().parse().unwrap_or(f64::NAN);
            assert!(
                s > 0.0,
                "{SECONDS_ENV}={v:?}: give a positive number of seconds"
            );
            return Budget::Seconds(s);
        }
        if let Ok(v) = std::env::var(CASES_ENV) {
            let n: u64 = v.trim().parse().unwrap_or(0);
            assert!(n > 0, "{CASES_ENV}={v:?}: give a positive number of cases");
            return Budget::Cases(n);
        }
        Budget::Cases(default_cases)
    }
}

/// What a target's run did.
#[derive(Debug, Clone, PartialEq)]
pub struct Report {
    /// The target's name.
    pub target: String,
    /// Corpus files replayed.
    pub corpus: usize,
    /// Generated cases run.
    pub cases: u64,
    /// Seconds spent on the generated cases.
    pub seconds: f64,
    /// The slowest single case, in seconds.
    pub slowest: f64,
}

impl std::fmt::Display for Report {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "fuzz target {}: {} corpus files replayed, {} generated cases in {:.1} s (slowest {:.3} s)",
            self.target, self.corpus, self.cases, self.seconds, self.slowest
        )
    }
}

/// Cases per proptest round: small enough that a time budget is kept to within a round.
const ROUND: u64 = 32;

/// Runs `check` on the corpus in `corpus_dir`, then on generated inputs built from `seeds` and
/// the corpus, for `budget`; prints and returns the [`Report`].
///
/// # Panics
/// When `check` fails (returns an error, panics, or takes over [`SLOW_CASE`]) on a corpus file
/// (named) or on a generated input (shrunk, saved into `corpus_dir` as `crash-<md5>`, named).
pub fn fuzz(
    target: &str,
    corpus_dir: &Path,
    seeds: Vec<Vec<u8>>,
    budget: Budget,
    check: impl Fn(&[u8]) -> Result<(), String>,
) -> Report {
    quiet_panics_on_this_thread();
    let timed = |bytes: &[u8]| -> Result<f64, String> {
        let start = Instant::now();
        match catch_unwind(AssertUnwindSafe(|| check(bytes))) {
            Ok(Ok(())) => {}
            Ok(Err(why)) => return Err(why),
            Err(panic) => return Err(format!("panicked: {}", panic_text(&panic))),
        }
        let took = start.elapsed();
        if took > SLOW_CASE {
            return Err(format!("took {took:?} (more than {SLOW_CASE:?})"));
        }
        Ok(took.as_secs_f64())
    };
    let corpus = read_corpus(corpus_dir);
    for (path, bytes) in &corpus {
        if let Err(why) = timed(bytes) {
            fail(format!(
                "fuzz target {target}: corpus file {} fails: {why}",
                path.display()
            ));
        }
    }
    let mut bases: Vec<Vec<u8>> = seeds;
    bases.extend(corpus.iter().map(|(_, b)| b.clone()));
    assert!(
        !bases.is_empty(),
        "fuzz target {target}: no seed input and an empty corpus"
    );
    let max_len = bases
        .iter()
        .map(Vec::len)
        .max()
        .unwrap_or(0)
        .clamp(64, 1 << 20);
    let strategy = inputs(bases, max_len);

    let start = Instant::now();
    let slowest = std::cell::Cell::new(0.0f64);
    let mut cases = 0u64;
    for round in 0u64.. {
        let this_round = match budget {
            Budget::Cases(n) if cases >= n => break,
            Budget::Cases(n) => (n - cases).min(ROUND),
            Budget::Seconds(s) if round > 0 && start.elapsed().as_secs_f64() >= s => break,
            Budget::Seconds(_) => ROUND,
        };
        let config = Config {
            cases: this_round as u32,
            failure_persistence: None,
            max_shrink_iters: 2048,
            ..Config::default()
        };
        let mut runner = TestRunner::new_with_rng(config, round_rng(target, round));
        let result = runner.run(&strategy, |bytes| {
            let took = timed(&bytes).map_err(TestCaseError::fail)?;
            slowest.set(slowest.get().max(took));
            Ok(())
        });
        match result {
            Ok(()) => cases += this_round,
            Err(TestError::Fail(why, minimal)) => {
                let saved = save_crash(corpus_dir, &minimal);
                fail(format!(
                    "fuzz target {target}: a generated input fails: {why}; the shrunk input \
                     ({} bytes) was saved as {} and is replayed from now on",
                    minimal.len(),
                    saved.display()
                ));
            }
            Err(TestError::Abort(why)) => {
                fail(format!("fuzz target {target}: proptest aborted: {why}"))
            }
        }
    }
    FUZZING.with(|f| f.set(false));
    let report = Report {
        target: target.into(),
        corpus: corpus.len(),
        cases,
        seconds: start.elapsed().as_secs_f64(),
        slowest: slowest.get(),
    };
    println!("{report}");
    report
}

thread_local! {
    static FUZZING: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Panics caught by [`fuzz`] are reported once, with the failing input; the default hook would
/// print each one (and its backtrace) again for every step of the shrinking. Other threads keep
/// the previous hook.
fn quiet_panics_on_this_thread() {
    static INSTALL: std::sync::Once = std::sync::Once::new();
    INSTALL.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if !FUZZING.with(|f| f.get()) {
                previous(info);
            }
        }));
    });
    FUZZING.with(|f| f.set(true));
}

/// Fails the target: the panic is printed again (see [`quiet_panics_on_this_thread`]).
fn fail(message: String) -> ! {
    FUZZING.with(|f| f.set(false));
    panic!("{message}")
}

/// The corpus files of `dir`, sorted by name (none when it does not exist).
fn read_corpus(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut files: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    files
        .into_iter()
        .map(|p| {
            let bytes = std::fs::read(&p)
                .unwrap_or_else(|e| panic!("reading corpus file {}: {e}", p.display()));
            (p, bytes)
        })
        .collect()
}

/// Writes a failing input into the corpus as `crash-<first 8 hex digits of its MD5>`.
fn save_crash(dir: &Path, bytes: &[u8]) -> PathBuf {
    let digest = Md5::digest(bytes);
    let name: String = digest[..4].iter().map(|b| format!("{b:02x}")).collect();
    let path = dir.join(format!("crash-{name}"));
    if let Err(e) = std::fs::create_dir_all(dir).and_then(|()| std::fs::write(&path, bytes)) {
        eprintln!(
            "could not save the failing input to {}: {e}",
            path.display()
        );
    }
    path
}

/// The random stream of round `round` of `target`: a function of both only.
fn round_rng(target: &str, round: u64) -> TestRng {
    let mut h = Md5::new();
    h.update(target.as_bytes());
    h.update(round.to_le_bytes());
    let d = h.finalize();
    let mut seed = [0u8; 32];
    seed[..16].copy_from_slice(&d);
    seed[16..].copy_from_slice(&d);
    TestRng::from_seed(RngAlgorithm::ChaCha, &seed)
}

fn panic_text(panic: &Box<dyn std::any::Any + Send>) -> String {
    panic
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap_or_else(|| "a panic without a message".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_panicking_check_is_shrunk_saved_and_replayed() {
        let dir = tempfile::tempdir().unwrap();
        // fails on any input holding the byte 0xAB
        let check = |b: &[u8]| {
            assert!(!b.contains(&0xAB), "found 0xAB");
            Ok(())
        };
        let run = || {
            catch_unwind(AssertUnwindSafe(|| {
                fuzz(
                    "t",
                    dir.path(),
                    vec![vec![0; 16]],
                    Budget::cases(2000),
                    check,
                )
            }))
        };
        let message = panic_text(&run().unwrap_err());
        assert!(
            message.contains("found 0xAB") && message.contains("crash-"),
            "{message}"
        );
        let saved: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
        assert_eq!(saved.len(), 1);
        let bytes = std::fs::read(saved[0].as_ref().unwrap().path()).unwrap();
        assert_eq!(bytes, [0xAB], "not shrunk to the one byte");
        // the saved input now fails as a corpus file, before any generated case
        let message = panic_text(&run().unwrap_err());
        assert!(message.contains("corpus file"), "{message}");
    }

    #[test]
    fn errors_fail_and_budgets_are_kept() {
        let dir = tempfile::tempdir().unwrap();
        let report = fuzz(
            "ok",
            dir.path(),
            vec![vec![1, 2, 3]],
            Budget::cases(70),
            |_| Ok(()),
        );
        assert_eq!((report.cases, report.corpus), (70, 0));
        let start = Instant::now();
        let report = fuzz(
            "time",
            dir.path(),
            vec![vec![1]],
            Budget::Seconds(0.3),
            |_| Ok(()),
        );
        assert!(report.cases >= ROUND && start.elapsed() < Duration::from_secs(5));
        let failed = catch_unwind(AssertUnwindSafe(|| {
            fuzz(
                "err",
                dir.path(),
                vec![vec![7; 4]],
                Budget::cases(50),
                |b| {
                    if b.len() > 2 {
                        Err("too long".into())
                    } else {
                        Ok(())
                    }
                },
            )
        }));
        assert!(panic_text(&failed.unwrap_err()).contains("too long"));
    }

    #[test]
    fn rounds_repeat() {
        use proptest::strategy::{Strategy, ValueTree};
        let strategy = inputs(vec![b"abcdef".to_vec()], 64);
        let draw = |round| {
            let mut runner = TestRunner::new_with_rng(Config::default(), round_rng("x", round));
            (0..20)
                .map(|_| strategy.new_tree(&mut runner).unwrap().current())
                .collect::<Vec<_>>()
        };
        assert_eq!(draw(3), draw(3));
        assert_ne!(draw(3), draw(4));
    }
}
