//! A run killed with SIGKILL at any moment, or stopped by a full disk, resumes to the same
//! metrics as an uninterrupted run.

use std::path::Path;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use super::{assert_ok, assert_same_run, lmsoftmax, metrics_without_timings, tiny_train};

/// A 3-epoch tiny run (more epochs than `tiny_train`, so kills land in every phase).
fn args(out: &Path) -> Vec<String> {
    let mut a = tiny_train(out);
    let at = a.iter().position(|s| s == "--epochs").unwrap();
    a[at + 1] = "3".into();
    a
}

fn uninterrupted(out: &Path) -> Duration {
    let start = Instant::now();
    let res = lmsoftmax().args(args(out)).output().unwrap();
    assert_ok(&res);
    start.elapsed()
}

/// Starts the run, resuming when an earlier attempt got far enough to leave a run behind.
fn start(out: &Path, slow_writes: bool) -> Child {
    let mut cmd = lmsoftmax();
    cmd.args(args(out))
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    if out.join("run.json").exists() {
        cmd.arg("--resume");
    }
    if slow_writes {
        cmd.env("LMSOFTMAX_TEST_SLOW_WRITE_MS", "15");
    }
    cmd.spawn().unwrap()
}

/// Waits for the child to end by itself; panics with its stderr if it failed.
fn finish(child: Child) {
    let res = child.wait_with_output().unwrap();
    assert_ok(&res);
}

#[test]
fn killed_at_random_moments_then_resumed_gives_the_same_metrics() {
    let dir = tempfile::tempdir().unwrap();
    let whole = dir.path().join("whole");
    let took = uninterrupted(&whole);
    let parts = dir.path().join("parts");
    // a fixed linear-congruential sequence of kill times in [0.05, 0.65] x the run's duration
    let mut state: u64 = 0x2545_F491_4F6C_DD1D;
    let mut kills = 0;
    for _ in 0..8 {
        state = state
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        let delay = took.mul_f64(0.05 + 0.6 * ((state >> 11) as f64 / (1u64 << 53) as f64));
        let mut child = start(&parts, false);
        std::thread::sleep(delay);
        if child.try_wait().unwrap().is_none() {
            child.kill().unwrap(); // SIGKILL
            child.wait().unwrap();
            kills += 1;
        } else {
            finish(child);
        }
        if std::fs::read_to_string(parts.join("summary.txt")).is_ok() {
            break;
        }
    }
    eprintln!("{kills} kills, the uninterrupted run took {took:?}");
    assert!(
        kills >= 2,
        "only {kills} kills landed; the run is faster than expected"
    );
    if !parts.join("summary.txt").exists() {
        finish(start(&parts, false));
    }
    assert_same_run(&parts, &whole);
}

#[test]
fn killed_while_writing_a_checkpoint_then_resumed_gives_the_same_metrics() {
    let dir = tempfile::tempdir().unwrap();
    let whole = dir.path().join("whole");
    uninterrupted(&whole);
    let parts = dir.path().join("parts");
    // Writes are slowed to 15 ms per 64 KiB: kill as soon as a checkpoint's temporary file
    // appears after epoch `round`'s metrics, i.e. in the middle of writing that epoch's
    // checkpoints (in round 2, with epoch 1's checkpoint to resume from).
    for round in 1..=2 {
        let mut child = start(&parts, true);
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            let rows = std::fs::read_to_string(parts.join("metrics.csv"))
                .map_or(0, |t| t.lines().count().saturating_sub(1));
            let writing = std::fs::read_dir(&parts).is_ok_and(|d| {
                d.filter_map(|e| e.ok()).any(|e| {
                    let name = e.file_name().to_string_lossy().to_string();
                    name.starts_with("checkpoint-") && name.ends_with(".tmp")
                })
            });
            if rows >= round && writing {
                break;
            }
            assert!(
                child.try_wait().unwrap().is_none(),
                "run ended before writing a checkpoint"
            );
            assert!(Instant::now() < deadline, "no checkpoint was written");
            std::thread::sleep(Duration::from_millis(2));
        }
        child.kill().unwrap();
        child.wait().unwrap();
        // whatever is left is either absent or whole: never a truncated checkpoint in place
        if parts.join("checkpoint-last.ckpt").exists() {
            let res = lmsoftmax()
                .args(["eval", "--dataset", "synthetic", "--synthetic-train", "256"])
                .args(["--synthetic-test", "64", "--checkpoint"])
                .arg(parts.join("checkpoint-last.ckpt"))
                .output()
                .unwrap();
            assert_ok(&res);
        }
    }
    finish(start(&parts, false));
    assert_eq!(
        metrics_without_timings(&parts),
        metrics_without_timings(&whole)
    );
}

#[cfg(unix)]
#[test]
fn a_full_disk_is_a_clear_error_and_the_run_resumes_from_the_intact_checkpoint() {
    use std::os::unix::process::CommandExt;
    let dir = tempfile::tempdir().unwrap();
    let whole = dir.path().join("whole");
    uninterrupted(&whole);
    let parts = dir.path().join("parts");
    let res = lmsoftmax()
        .args(args(&parts))
        .args(["--stop-after", "1"])
        .output()
        .unwrap();
    assert_ok(&res);
    let before = std::fs::read(parts.join("checkpoint-last.ckpt")).unwrap();
    // Resume with a 16 KiB file-size limit: the small metrics files still fit, the figure and
    // the checkpoints do not, and every write past the limit fails with EFBIG as on a full disk.
    let mut cmd = lmsoftmax();
    cmd.args(args(&parts)).arg("--resume");
    // SAFETY: only async-signal-safe calls (setrlimit, signal) between fork and exec.
    unsafe {
        cmd.pre_exec(|| {
            let limit = libc::rlimit {
                rlim_cur: 16 << 10,
                rlim_max: 16 << 10,
            };
            if libc::setrlimit(libc::RLIMIT_FSIZE, &limit) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            libc::signal(libc::SIGXFSZ, libc::SIG_IGN);
            Ok(())
        });
    }
    let res = cmd.output().unwrap();
    let stderr = String::from_utf8_lossy(&res.stderr);
    assert_eq!(res.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("disk is full") && stderr.contains("--resume"),
        "{stderr}"
    );
    // the checkpoint written before is untouched and no temporary file is left behind
    assert_eq!(
        std::fs::read(parts.join("checkpoint-last.ckpt")).unwrap(),
        before
    );
    let leftovers: Vec<_> = std::fs::read_dir(&parts)
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().ends_with(".tmp"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
    // with space again, the run resumes and ends as the uninterrupted one
    let res = lmsoftmax()
        .args(args(&parts))
        .arg("--resume")
        .output()
        .unwrap();
    assert_ok(&res);
    assert_eq!(
        metrics_without_timings(&parts),
        metrics_without_timings(&whole)
    );
}
