//! What a run does with bad input and faults: output names and empty splits checked before
//! training, one process per run folder, a network too large for memory, Ctrl-C, a resume of
//! another run.

use super::{TINY_RUN, assert_ok, lmsoftmax, tiny_train};

#[test]
fn bad_output_names_and_empty_splits_fail_before_training() {
    let dir = tempfile::tempdir().unwrap();
    for name in ["../escape.png", "/tmp/x.png", "", "run.json", "metrics.csv"] {
        let out = dir.path().join("run");
        let res = lmsoftmax()
            .args(tiny_train(&out))
            .args(["--pdf-filename", name])
            .output()
            .unwrap();
        assert_eq!(res.status.code(), Some(2), "{name:?}");
        let stderr = String::from_utf8_lossy(&res.stderr);
        assert!(stderr.contains("--pdf-filename"), "{name:?}: {stderr}");
        assert!(
            !out.exists(),
            "{name:?}: a run folder was made before the check"
        );
    }
    let out = dir.path().join("empty-test");
    let res = lmsoftmax()
        .args(["train", "--dataset", "synthetic", "--synthetic-train", "64"])
        .args(["--synthetic-test", "0", "--arch", "small_cnn", "--quiet"])
        .arg("--out-dir")
        .arg(&out)
        .output()
        .unwrap();
    assert_eq!(res.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&res.stderr).contains("the test split is empty"),
        "{}",
        String::from_utf8_lossy(&res.stderr)
    );
    // a negative learning rate in a config file is refused with the key
    let config = dir.path().join("neg.toml");
    std::fs::write(
        &config,
        "name = \"neg\"\nepochs = 2\nbatch_size = 64\nmomentum = 0.9\nweight_decay = 1e-4\n[loss]\nkind = \"softmax\"\n[lr]\nkind = \"step\"\nstart = -0.1\ngamma = 1.0\nevery = 1\n",
    )
    .unwrap();
    let res = lmsoftmax()
        .args(TINY_RUN)
        .arg("--config")
        .arg(&config)
        .arg("--out-dir")
        .arg(dir.path().join("neg"))
        .output()
        .unwrap();
    assert_eq!(res.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&res.stderr);
    assert!(
        stderr.contains("start must be a finite learning rate > 0"),
        "{stderr}"
    );
}

#[test]
fn a_second_run_into_a_folder_in_use_is_refused_with_the_holders_pid() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("run");
    // the first run writes its checkpoints slowly, so it is still running
    let mut first = lmsoftmax()
        .args(tiny_train(&out))
        .env("LMSOFTMAX_TEST_SLOW_WRITE_MS", "200")
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let lock = out.join(".lmsoftmax.lock");
    let started = std::time::Instant::now();
    while std::fs::read_to_string(&lock).map_or(true, |s| s.trim().is_empty()) {
        assert!(
            started.elapsed().as_secs() < 60,
            "the first run never took the lock"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    for extra in ["--overwrite", "--resume"] {
        let res = lmsoftmax()
            .args(tiny_train(&out))
            .arg(extra)
            .output()
            .unwrap();
        assert_eq!(res.status.code(), Some(2), "{extra}");
        let stderr = String::from_utf8_lossy(&res.stderr);
        assert!(
            stderr.contains("in use by another lmsoftmax process")
                && stderr.contains(&format!("pid {}", first.id())),
            "{extra}: {stderr}"
        );
    }
    first.kill().unwrap();
    first.wait().unwrap();
    // killed: the OS released the lock, and the run can be resumed or replaced
    let res = lmsoftmax()
        .args(tiny_train(&out))
        .arg("--overwrite")
        .output()
        .unwrap();
    assert_ok(&res);
}

#[test]
fn a_network_too_large_for_memory_is_refused_with_the_figure() {
    let dir = tempfile::tempdir().unwrap();
    let res = lmsoftmax()
        .args([
            "train",
            "--dataset",
            "synthetic",
            "--arch",
            "layer13",
            "--width",
            "100",
        ])
        .args(["--quiet", "--out-dir"])
        .arg(dir.path().join("huge"))
        .output()
        .unwrap();
    assert_eq!(res.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&res.stderr);
    assert!(
        stderr.contains("parameters")
            && stderr.contains("GB")
            && stderr.contains("smaller --width"),
        "{stderr}"
    );
}

#[cfg(unix)]
#[test]
fn ctrl_c_abandons_the_epoch_says_how_to_resume_and_the_resume_finishes() {
    use std::io::BufRead;
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("run");
    // 32 batches an epoch, an iteration line for each
    let args = |out: &std::path::Path| {
        let mut a: Vec<String> = [
            "train",
            "--dataset",
            "synthetic",
            "--synthetic-train",
            "2048",
            "--synthetic-test",
            "64",
            "--arch",
            "small_cnn",
            "--width",
            "0.5",
            "--quiet",
            "--print-freq",
            "1",
            "--config-name",
            "layer13_largemargin",
            "--epochs",
            "2",
            "--batch-size",
            "64",
            "--out-dir",
        ]
        .map(String::from)
        .to_vec();
        a.push(out.to_str().unwrap().into());
        a
    };
    let mut run = lmsoftmax()
        .args(args(&out))
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = std::io::BufReader::new(run.stderr.take().unwrap()).lines();
    let mut seen = String::new();
    for line in lines.by_ref() {
        let line = line.unwrap();
        seen.push_str(&line);
        seen.push('\n');
        if line.starts_with("Epoch: [2][ 0/32]") {
            // SAFETY: sending SIGINT to our own child process.
            unsafe { libc::kill(run.id() as i32, libc::SIGINT) };
            break;
        }
    }
    for line in lines {
        seen.push_str(&line.unwrap());
        seen.push('\n');
    }
    let status = run.wait().unwrap();
    assert_eq!(status.code(), Some(130), "{seen}");
    assert!(
        seen.contains("interrupted (Ctrl-C) in epoch 2")
            && seen.contains("checkpoint-last.ckpt (the epochs before it) is intact")
            && seen.contains("--resume"),
        "{seen}"
    );
    let csv = std::fs::read_to_string(out.join("metrics.csv")).unwrap();
    assert_eq!(csv.lines().count(), 2, "only epoch 1 was recorded: {csv}");
    let mut resume = args(&out);
    resume.push("--resume".into());
    let res = lmsoftmax().args(resume).output().unwrap();
    assert_ok(&res);
    let csv = std::fs::read_to_string(out.join("metrics.csv")).unwrap();
    assert_eq!(csv.lines().count(), 3, "{csv}");
}

#[test]
fn resume_with_other_data_or_options_names_every_difference() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("run");
    assert_ok(
        &lmsoftmax()
            .args(tiny_train(&out))
            .args(["--stop-after", "1"])
            .output()
            .unwrap(),
    );
    // other data: the synthetic set drawn with more training images
    let other: Vec<String> = tiny_train(&out)
        .into_iter()
        .map(|a| if a == "256" { "320".into() } else { a })
        .collect();
    let res = lmsoftmax().args(&other).arg("--resume").output().unwrap();
    assert_eq!(res.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&res.stderr);
    assert!(
        stderr.contains("belongs to another run")
            && stderr.contains("training images: checkpoint 256, now 320")
            && stderr.contains("data fingerprint: checkpoint"),
        "{stderr}"
    );
    // other options: each differing field with both values
    let changed: Vec<String> = tiny_train(&out)
        .into_iter()
        .map(|a| if a == "0.5" { "0.75".into() } else { a })
        .collect();
    let res = lmsoftmax()
        .args(&changed)
        .args(["--resume", "--seed", "5"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&res.stderr);
    assert_eq!(res.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("seed: checkpoint 0, now 5")
            && stderr.contains("width: checkpoint 0.5, now 0.75"),
        "{stderr}"
    );
    // the same run resumes
    let res = lmsoftmax()
        .args(tiny_train(&out))
        .arg("--resume")
        .output()
        .unwrap();
    assert_ok(&res);
}
