//! Fault injection beyond `resume.rs` (SIGKILL at random moments and in checkpoint writes, a
//! full disk): SIGKILL during evaluation, a dataset changed under a running training, a folder
//! the user may not write, data the user may not read. Each case must end with a clear message,
//! the newest intact checkpoint intact, and a resume identical to an uninterrupted run.
//!
//! Runs as root (sessions, CI) ignore permission bits, so the permission cases run the binary as
//! the unprivileged user `nobody`; where that is impossible they say so and are skipped.

#![cfg(unix)]

use std::io::BufRead;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use super::{
    assert_ok, assert_same_run, eval_tiny, lmsoftmax, metrics_row, metrics_without_timings,
    tiny_train,
};

/// The phase-announcing test hook (`lmsoftmax::train::phases`), pausing this long in each.
const PAUSE_MS: &str = "300";

/// Starts `args` with the phase hook on, reads its standard error until it announces `phase`,
/// runs `act` there (the run is paused at that phase only), then lets it go on and returns its
/// status and stderr.
fn run_until_phase(
    args: &[String],
    phase: &str,
    act: impl FnOnce(&mut std::process::Child),
) -> (Option<i32>, String) {
    run_until_phase_with(args, &[], phase, act)
}

/// [`run_until_phase`] with more environment variables.
fn run_until_phase_with(
    args: &[String],
    envs: &[(&str, &str)],
    phase: &str,
    act: impl FnOnce(&mut std::process::Child),
) -> (Option<i32>, String) {
    let mut child = lmsoftmax()
        .args(args)
        .envs(envs.iter().copied())
        .env(lmsoftmax::train::phases::PHASE_PAUSE_ENV, PAUSE_MS)
        .env(lmsoftmax::train::phases::PHASE_PAUSE_AT_ENV, phase)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = std::io::BufReader::new(child.stderr.take().unwrap()).lines();
    let mut seen = String::new();
    let mut act = Some(act);
    for line in lines.by_ref() {
        let line = line.unwrap();
        seen.push_str(&line);
        seen.push('\n');
        if line == format!("phase: {phase}") {
            (act.take().unwrap())(&mut child);
            break;
        }
    }
    assert!(act.is_none(), "the run never reached phase {phase}: {seen}");
    for line in lines {
        seen.push_str(&line.unwrap());
        seen.push('\n');
    }
    (child.wait().unwrap().code(), seen)
}

#[test]
fn killed_during_evaluation_then_resumed_gives_the_same_metrics() {
    let dir = tempfile::tempdir().unwrap();
    let whole = dir.path().join("whole");
    assert_ok(&lmsoftmax().args(tiny_train(&whole)).output().unwrap());
    let parts = dir.path().join("parts");
    let (code, seen) = run_until_phase(&tiny_train(&parts), "evaluate 2", |child| {
        child.kill().unwrap(); // SIGKILL, in the middle of epoch 2's evaluation
    });
    assert_eq!(code, None, "not killed: {seen}");
    let csv = std::fs::read_to_string(parts.join("metrics.csv")).unwrap();
    assert_eq!(csv.lines().count(), 2, "only epoch 1 is recorded: {csv}");
    let mut resume = tiny_train(&parts);
    resume.push("--resume".into());
    assert_ok(&lmsoftmax().args(resume).output().unwrap());
    assert_same_run(&parts, &whole);
}

/// SIGKILL in the middle of writing each file of epoch 2 in turn (writes slowed by the test
/// hook): every time, the resume ends as the uninterrupted run.
#[test]
fn killed_while_writing_each_file_of_an_epoch_then_resumed_gives_the_same_metrics() {
    use std::time::{Duration, Instant};
    let dir = tempfile::tempdir().unwrap();
    let whole = dir.path().join("whole");
    assert_ok(&lmsoftmax().args(tiny_train(&whole)).output().unwrap());
    let files = [
        "metrics.csv",
        "metrics.jsonl",
        "test-margins.txt",
        "train_epochs.png",
        "checkpoint-epoch2.ckpt",
        "checkpoint-best.ckpt",
        "checkpoint-last.ckpt",
    ];
    let mut killed = Vec::new();
    for file in files {
        let parts = dir.path().join(format!("parts-{file}"));
        let tmp = parts.join(format!("{file}.tmp"));
        // 50 ms per 64 KiB written: each temporary file lives long enough for the 1 ms poll
        // below to see it, on a loaded machine too
        let slow = [(lmsoftmax::atomic::SLOW_WRITE_ENV, "50")];
        let (code, seen) =
            run_until_phase_with(&tiny_train(&parts), &slow, "checkpoint 2", |child| {
                let deadline = Instant::now() + Duration::from_secs(60);
                while Instant::now() < deadline {
                    if tmp.exists() {
                        child.kill().unwrap();
                        return;
                    }
                    if child.try_wait().unwrap().is_some() {
                        return; // this run does not write the file in epoch 2
                    }
                    std::thread::sleep(Duration::from_millis(1));
                }
                panic!("{file}: the run neither wrote it nor ended");
            });
        if code.is_some() {
            assert_eq!(code, Some(0), "{file}: {seen}");
            assert!(
                file == "checkpoint-best.ckpt",
                "{file} was not written in epoch 2"
            );
            continue;
        }
        killed.push(file);
        let mut resume = tiny_train(&parts);
        resume.push("--resume".into());
        assert_ok(&lmsoftmax().args(resume).output().unwrap());
        assert_eq!(
            metrics_without_timings(&parts),
            metrics_without_timings(&whole),
            "killed while writing {file}"
        );
        assert!(!tmp.exists(), "{file}: the temporary file was left behind");
        // the folder's checkpoints cover what they cover in the uninterrupted run
        for name in ["checkpoint-last.ckpt", "checkpoint-best.ckpt"] {
            assert_eq!(
                epochs_in(&parts.join(name)),
                epochs_in(&whole.join(name)),
                "killed while writing {file}: {name}"
            );
        }
    }
    eprintln!("killed while writing: {killed:?}");
    assert!(killed.len() >= files.len() - 1, "{killed:?}");
}

/// The epochs a checkpoint covers.
fn epochs_in(path: &Path) -> usize {
    use lmsoftmax::train::{checkpoint, state::read_state};
    let parts = checkpoint::read(path).unwrap();
    read_state(&parts, path).unwrap().rows.len()
}

/// An ImageFolder dataset of small PNGs: `train/` with 16 images in each of two classes,
/// `test/` with 4.
fn image_folder(root: &Path) {
    for (split, n) in [("train", 16), ("test", 4)] {
        for (c, class) in ["cat", "dog"].iter().enumerate() {
            let dir = root.join(split).join(class);
            std::fs::create_dir_all(&dir).unwrap();
            for i in 0..n {
                let img = image::RgbImage::from_fn(40, 36, |x, y| {
                    let v = (x * 7 + y * 3 + i * 11 + c as u32 * 90) % 256;
                    image::Rgb([v as u8, (255 - v) as u8, (v / 2 + 60 * c as u32) as u8])
                });
                img.save(dir.join(format!("{i:02}.png"))).unwrap();
            }
        }
    }
}

fn folder_run(data: &Path, out: &Path) -> Vec<String> {
    [
        "train",
        "--dataset",
        "imagefolder",
        "--arch",
        "small_cnn",
        "--width",
        "0.25",
        "--quiet",
        "--config-name",
        "layer13_largemargin",
        "--epochs",
        "2",
        "--batch-size",
        "4",
        "--workers",
        "1",
        "--data",
    ]
    .iter()
    .map(|s| s.to_string())
    .chain([data.to_str().unwrap().into(), "--out-dir".into()])
    .chain([out.to_str().unwrap().into()])
    .collect()
}

/// Every training image removed, or every one cut to half its length, in the middle of epoch 2
/// (its second batch in hand, the loader at most two batches ahead, six to go): the run stops
/// with an error naming an image, epoch 1's checkpoint is intact, and once the files are back the
/// resume ends as the uninterrupted run.
#[test]
fn dataset_files_removed_or_truncated_under_a_running_training() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    image_folder(&data);
    let whole = dir.path().join("whole");
    assert_ok(
        &lmsoftmax()
            .args(folder_run(&data, &whole))
            .output()
            .unwrap(),
    );
    let train = data.join("train");
    let saved = dir.path().join("saved");
    for (case, expected) in [("removed", "cannot read the file"), ("truncated", ".png")] {
        let parts = dir.path().join(format!("parts-{case}"));
        let (code, seen) = run_until_phase(&folder_run(&data, &parts), "step 2.2", |_| {
            copy_tree(&train, &saved);
            for file in files_under(&train) {
                if case == "removed" {
                    std::fs::remove_file(&file).unwrap();
                } else {
                    let bytes = std::fs::read(&file).unwrap();
                    std::fs::write(&file, &bytes[..bytes.len() / 2]).unwrap();
                }
            }
        });
        assert!(matches!(code, Some(1 | 2)), "{case}: exit {code:?}: {seen}");
        assert!(
            !seen.contains("phase: evaluate 2"),
            "{case}: the epoch went on to its end: {seen}"
        );
        let message = seen
            .lines()
            .filter(|l| !l.starts_with("phase:"))
            .collect::<Vec<_>>()
            .join("\n");
        assert!(
            message.contains(train.to_str().unwrap()) && message.contains(expected),
            "{case}: the error does not name the image: {message}"
        );
        assert!(!message.contains("panicked"), "{case}: {message}");
        let csv = std::fs::read_to_string(parts.join("metrics.csv")).unwrap();
        assert_eq!(csv.lines().count(), 2, "{case}: epoch 1 stays recorded");
        // the files come back: the resume continues from epoch 1's intact checkpoint
        std::fs::remove_dir_all(&train).unwrap();
        copy_tree(&saved, &train);
        std::fs::remove_dir_all(&saved).unwrap();
        let mut resume = folder_run(&data, &parts);
        resume.push("--resume".into());
        assert_ok(&lmsoftmax().args(resume).output().unwrap());
        assert_eq!(
            metrics_without_timings(&parts),
            metrics_without_timings(&whole),
            "{case}"
        );
    }
}

fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            out.extend(files_under(&path));
        } else {
            out.push(path);
        }
    }
    out
}

fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let path = entry.unwrap().path();
        let target = to.join(path.file_name().unwrap());
        if path.is_dir() {
            copy_tree(&path, &target);
        } else {
            std::fs::copy(&path, &target).unwrap();
        }
    }
}

/// The binary, run as the unprivileged user `nobody` when this process is root (permission bits
/// do not apply to root); `None`, said loudly, when that cannot be arranged. `dir` gets a copy of
/// the binary (the build folder may not be reachable for `nobody`) and is opened for traversal.
fn unprivileged(dir: &Path) -> Option<Command> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return Some(lmsoftmax());
    }
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    let bin = dir.join("lmsoftmax");
    std::fs::copy(env!("CARGO_BIN_EXE_lmsoftmax"), &bin).unwrap();
    let mut probe = Command::new(&bin);
    as_nobody(&mut probe);
    if !probe
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success())
    {
        eprintln!(
            "\n*** SKIPPED: cannot run the binary as the user nobody (uid 65534) here; the \
             permission cases need an unprivileged user ***\n"
        );
        return None;
    }
    let mut cmd = Command::new(&bin);
    as_nobody(&mut cmd);
    Some(cmd)
}

fn as_nobody(cmd: &mut Command) {
    use std::os::unix::process::CommandExt;
    // SAFETY: only async-signal-safe calls (setgroups, setgid, setuid) between fork and exec.
    unsafe {
        cmd.pre_exec(|| {
            if libc::setgroups(0, std::ptr::null()) != 0
                || libc::setgid(65534) != 0
                || libc::setuid(65534) != 0
            {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
}

/// A folder the user may not write into: training into it, or resuming a run kept there, is a
/// clear error before any training, the run's files are untouched, and the run resumes once
/// the folder is writable (here: by its owner).
#[test]
fn a_folder_the_user_may_not_write_is_a_clear_error_and_nothing_is_touched() {
    let dir = tempfile::tempdir().unwrap();
    let Some(mut nobody) = unprivileged(dir.path()) else {
        return;
    };
    let whole = dir.path().join("whole");
    assert_ok(&lmsoftmax().args(tiny_train(&whole)).output().unwrap());
    let run = dir.path().join("run");
    let mut first = tiny_train(&run);
    first.extend(["--stop-after".into(), "1".into()]);
    assert_ok(&lmsoftmax().args(&first).output().unwrap());
    let snapshot = |d: &Path| -> Vec<(PathBuf, Vec<u8>)> {
        let mut f: Vec<_> = files_under(d)
            .into_iter()
            .map(|p| (p.clone(), std::fs::read(&p).unwrap()))
            .collect();
        f.sort();
        f
    };
    let before = snapshot(&run);
    // read-only for everyone but root (the owner); nobody may read it
    for (path, _) in &before {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o444)).unwrap();
    }
    std::fs::set_permissions(&run, std::fs::Permissions::from_mode(0o555)).unwrap();
    let mut resume = tiny_train(&run);
    resume.push("--resume".into());
    let res = nobody.args(&resume).output().unwrap();
    let stderr = String::from_utf8_lossy(&res.stderr);
    assert_eq!(res.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains(run.to_str().unwrap())
            && stderr.contains("not writable")
            && stderr.matches("Permission denied").count() <= 1
            && !stderr.contains("panicked"),
        "{stderr}"
    );
    assert_eq!(snapshot(&run), before, "the run's files changed");
    // a new run below a read-only folder
    let res = unprivileged(dir.path())
        .unwrap()
        .args(tiny_train(&run.join("inner")))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&res.stderr);
    assert_eq!(res.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains(run.join("inner").to_str().unwrap())
            && stderr.contains("cannot create")
            && stderr.contains("not writable"),
        "{stderr}"
    );
    // writable again: the resume ends as the uninterrupted run
    std::fs::set_permissions(&run, std::fs::Permissions::from_mode(0o755)).unwrap();
    for (path, _) in &before {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o644)).unwrap();
    }
    assert_ok(&lmsoftmax().args(&resume).output().unwrap());
    assert_eq!(
        metrics_without_timings(&run),
        metrics_without_timings(&whole)
    );
}

/// A dataset folder the user may not read is reported as such (not as missing), with the
/// system's reason once.
#[test]
fn an_unreadable_dataset_folder_is_reported_as_unreadable_once() {
    let dir = tempfile::tempdir().unwrap();
    let Some(_) = unprivileged(dir.path()) else {
        return;
    };
    let locked = dir.path().join("datasets");
    std::fs::create_dir_all(locked.join("cifar-10-batches-py")).unwrap();
    let inner = locked.join("cifar-10-batches-py");
    for (target, mode) in [(&locked, 0o700), (&inner, 0o700)] {
        std::fs::set_permissions(&inner, std::fs::Permissions::from_mode(0o755)).unwrap();
        std::fs::set_permissions(&locked, std::fs::Permissions::from_mode(0o755)).unwrap();
        std::fs::set_permissions(target, std::fs::Permissions::from_mode(mode)).unwrap();
        for args in [
            vec!["dataset", "info", "--dataset", "cifar10", "--data"],
            vec!["train", "--dataset", "cifar10", "--data"],
        ] {
            let mut cmd = unprivileged(dir.path()).unwrap();
            cmd.args(&args).arg(&locked);
            if args[0] == "train" {
                cmd.args(["--arch", "small_cnn", "--width", "0.5", "--quiet"])
                    .arg("--out-dir")
                    .arg(dir.path().join("never"));
            }
            let res = cmd.output().unwrap();
            let stderr = String::from_utf8_lossy(&res.stderr);
            assert_eq!(res.status.code(), Some(2), "{args:?}: {stderr}");
            assert!(
                stderr.contains("this user may not read it")
                    && stderr.matches("Permission denied").count() == 1
                    && !stderr.contains("not found")
                    && !stderr.contains("download"),
                "{target:?} {args:?}: {stderr}"
            );
        }
    }
}

/// A run that diverges in epoch 2 (its learning rate jumps by 1e12) stops with the epoch and the
/// batch, names epoch 1's checkpoint as intact, and that checkpoint is epoch 1's: `eval` of it
/// reproduces epoch 1's test error.
#[test]
fn a_run_diverging_after_a_checkpoint_names_it_and_leaves_it_intact() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("jump.toml");
    std::fs::write(
        &config,
        "name = \"jump\"\nepochs = 2\nbatch_size = 64\nmomentum = 0.9\nweight_decay = 1e-4\n\
         [loss]\nkind = \"large-margin\"\n[lr]\nkind = \"step\"\nstart = 0.01\ngamma = 1e12\n\
         every = 1\n",
    )
    .unwrap();
    let out = dir.path().join("run");
    let res = lmsoftmax()
        .args(super::TINY_RUN)
        .arg("--config")
        .arg(&config)
        .arg("--out-dir")
        .arg(&out)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&res.stderr);
    assert_eq!(res.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("at epoch 2 batch")
            && stderr.contains("lower the learning rate")
            && stderr.contains("checkpoint-last.ckpt is intact"),
        "{stderr}"
    );
    assert_eq!(epochs_in(&out.join("checkpoint-last.ckpt")), 1);
    let top1 = eval_tiny(&out.join("checkpoint-last.ckpt"))["top1_err"].as_f64();
    assert_eq!(top1, Some(metrics_row(&out, 1)[8]));
}
