//! CLI tests: the real `lmsoftmax` binary, run as a user runs it.

use std::process::Command;

mod export;
mod family;
mod faults;
mod fuzz;
#[cfg(feature = "wgpu")]
mod gpu;
mod mpi;
mod parallel;
mod precision;
mod reliability;
mod report;
mod resume;

fn lmsoftmax() -> Command {
    Command::new(env!("CARGO_BIN_EXE_lmsoftmax"))
}

/// Fails the test with the command's standard error unless it exited with status 0.
fn assert_ok(out: &std::process::Output) {
    assert!(
        out.status.success(),
        "exit {:?}: {}",
        out.status.code(),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Every metrics column but the two timing columns (`seconds`, `images_per_s`), line by line:
/// what a resumed run must reproduce bit for bit.
fn metrics_without_timings(dir: &std::path::Path) -> Vec<String> {
    let columns = lmsoftmax::run_folder::metrics::columns();
    let timing = |c: &str| c == "seconds" || c == "images_per_s";
    std::fs::read_to_string(dir.join("metrics.csv"))
        .unwrap()
        .lines()
        .map(|l| {
            let cells: Vec<&str> = l.split(',').collect();
            assert_eq!(cells.len(), columns.len(), "{l}");
            cells
                .iter()
                .zip(&columns)
                .filter(|(_, c)| !timing(c))
                .map(|(v, _)| *v)
                .collect::<Vec<_>>()
                .join(",")
        })
        .collect()
}

/// The JSON object on the last line of a command's standard output.
fn last_json(out: &std::process::Output) -> serde_json::Value {
    let stdout = String::from_utf8_lossy(&out.stdout);
    let last = stdout.lines().last().unwrap_or_else(|| {
        panic!(
            "no output; stderr: {}",
            String::from_utf8_lossy(&out.stderr)
        )
    });
    serde_json::from_str(last).unwrap_or_else(|e| panic!("last line is not JSON ({e}): {last}"))
}

/// `lmsoftmax eval --json` of `checkpoint` on the synthetic data of [`TINY_RUN`] (batch 64): the
/// JSON object it ends with.
fn eval_tiny(checkpoint: &std::path::Path) -> serde_json::Value {
    let res = lmsoftmax()
        .args(["eval", "--dataset", "synthetic", "--synthetic-train", "256"])
        .args(["--synthetic-test", "64", "--batch-size", "64", "--json"])
        .arg("--checkpoint")
        .arg(checkpoint)
        .output()
        .unwrap();
    assert_ok(&res);
    last_json(&res)
}

/// Epoch `epoch`'s row (from 1) of a run folder's `metrics.csv`, as numbers.
fn metrics_row(dir: &std::path::Path, epoch: usize) -> Vec<f64> {
    let csv = std::fs::read_to_string(dir.join("metrics.csv")).unwrap();
    let line = csv
        .lines()
        .nth(epoch)
        .unwrap_or_else(|| panic!("no epoch {epoch} in {csv}"));
    line.split(',').map(|x| x.parse().unwrap()).collect()
}

/// The sizes of a [`constant_lr_run`]: epochs, images a step, training images (64 test images).
#[derive(Clone, Copy)]
struct ShortRun {
    epochs: usize,
    batch_size: usize,
    train: usize,
    lr: f64,
}

/// A short run of the large-margin loss at a constant learning rate (SGD momentum 0.9, weight
/// decay 1e-4) on the synthetic data, with `extra` flags; its metrics rows as numbers.
fn constant_lr_run(
    out: &std::path::Path,
    arch: &str,
    width: &str,
    run: ShortRun,
    extra: &[&str],
) -> Vec<Vec<f64>> {
    let config = out.with_extension("toml");
    std::fs::write(
        &config,
        format!(
            "name = \"lm-constant\"\nepochs = {}\nbatch_size = {}\nmomentum = 0.9\nweight_decay = 1e-4\n\
             [loss]\nkind = \"large-margin\"\nreg_lambda = 0.3\n[lr]\nkind = \"step\"\nstart = {}\ngamma = 1.0\nevery = 1\n",
            run.epochs, run.batch_size, run.lr
        ),
    )
    .unwrap();
    let res = lmsoftmax()
        .args(["train", "--dataset", "synthetic", "--synthetic-train"])
        .arg(run.train.to_string())
        .args(["--synthetic-test", "64", "--arch", arch, "--width", width])
        .arg("--config")
        .arg(&config)
        .args(["--quiet", "--save-last-checkpoint", "--out-dir"])
        .arg(out)
        .args(extra)
        .output()
        .unwrap();
    assert_ok(&res);
    std::fs::read_to_string(out.join("metrics.csv"))
        .unwrap()
        .lines()
        .skip(1)
        .map(|l| l.split(',').map(|v| v.parse().unwrap()).collect())
        .collect()
}

/// Two [`constant_lr_run`]s followed the same curve: the loss columns within `tol` (relative),
/// the error rates within one image of `train` and of the 64 test images.
fn assert_same_curve(what: &str, a: &[Vec<f64>], b: &[Vec<f64>], tol: f64, train: usize) {
    assert_eq!(a.len(), b.len(), "{what}: epochs");
    for (x, y) in a.iter().zip(b) {
        // train_loss, train_ce, train_reg, test_loss, mean_margin, nontarget_entropy
        for col in [2, 3, 4, 7, 10, 11] {
            assert!(
                (x[col] - y[col]).abs() <= tol * (1.0 + x[col].abs()),
                "{what}: epoch {} column {col}: {} vs {}",
                x[0],
                x[col],
                y[col]
            );
        }
        // error rates are counts: at most one image may flip on a float-level difference
        assert!(
            (x[5] - y[5]).abs() <= 100.0 / train as f64 + 1e-9,
            "{what}: {x:?} vs {y:?}"
        );
        assert!(
            (x[8] - y[8]).abs() <= 100.0 / 64.0 + 1e-9,
            "{what}: {x:?} vs {y:?}"
        );
    }
}

/// A resumed run `parts` ended as the uninterrupted run `whole`: the same metrics but for the
/// timing columns, and the same test margins, bit for bit.
fn assert_same_run(parts: &std::path::Path, whole: &std::path::Path) {
    assert_eq!(
        metrics_without_timings(parts),
        metrics_without_timings(whole)
    );
    assert_eq!(
        std::fs::read(parts.join("test-margins.txt")).unwrap(),
        std::fs::read(whole.join("test-margins.txt")).unwrap()
    );
}

#[test]
fn bench_loss_json_last_line_has_the_three_times() {
    let out = lmsoftmax()
        .args([
            "bench", "loss", "--n", "32", "--c", "50", "--warmup", "1", "--reps", "3", "--json",
        ])
        .env("RAYON_NUM_THREADS", "1")
        .output()
        .expect("run lmsoftmax");
    assert_ok(&out);
    let stdout = String::from_utf8(out.stdout).unwrap();
    let last = stdout.lines().last().expect("output");
    let v: serde_json::Value = serde_json::from_str(last).expect("last line is JSON");
    for key in ["fused_ms", "composed_ms", "ce_ms"] {
        assert!(v[key].as_f64().is_some_and(|t| t > 0.0), "{key} in {last}");
    }
    assert_eq!(v["threads"], 1);
    assert_eq!(v["n"], 32);
    assert!(stdout.contains("| fused ms |"), "{stdout}");
}

#[test]
fn bench_loss_rejects_one_class() {
    let out = lmsoftmax()
        .args(["bench", "loss", "--n", "4", "--c", "1"])
        .output()
        .expect("run lmsoftmax");
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("--c >= 2"), "{stderr}");
}

#[test]
fn models_json_lists_every_network_with_counts() {
    let out = lmsoftmax()
        .args(["models", "--json"])
        .output()
        .expect("run lmsoftmax");
    assert_ok(&out);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("one JSON array");
    let rows = v.as_array().unwrap();
    let find = |name: &str, classes: u64| {
        rows.iter()
            .find(|r| r["name"] == name && r["num_classes"] == classes)
            .unwrap_or_else(|| panic!("{name} at {classes} classes missing"))
    };
    assert_eq!(find("layer13", 10)["parameters"], 4_432_522);
    assert_eq!(find("layer13", 100)["parameters"], 4_444_132);
    assert_eq!(find("vgg16bow_bn", 1000)["parameters"], 37_719_080);
    assert_eq!(find("resnet50", 1000)["parameters"], 25_557_032);
    let g = find("layer13", 10)["gmacs"].as_f64().unwrap();
    assert!((g - 0.78).abs() < 0.01, "{g}");
    // the feature a margin head takes: layer13's 128-d pooled one, ResNet's 2048-d one
    assert_eq!(find("layer13", 10)["head_features"], 128);
    assert_eq!(find("resnet50", 1000)["head_features"], 2048);
    assert_eq!(find("small_cnn", 10)["head_features"], 128);
    for r in rows {
        for key in [
            "name",
            "num_classes",
            "parameters",
            "input",
            "gmacs",
            "head_features",
        ] {
            assert!(!r[key].is_null(), "{key} in {r}");
        }
    }
}

fn shared_data() -> std::path::PathBuf {
    let dir = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/data");
    assert!(
        dir.join("cifar-10-subset").is_dir(),
        "*** the real test data is missing: {} ***",
        dir.display()
    );
    dir
}

#[test]
fn dataset_info_on_the_real_cifar10_subset() {
    let data = shared_data().join("cifar-10-subset");
    let out = lmsoftmax()
        .args([
            "dataset",
            "info",
            "--dataset",
            "cifar10",
            "--data",
            data.to_str().unwrap(),
            "--json",
        ])
        .output()
        .expect("run lmsoftmax");
    assert_ok(&out);
    let v = last_json(&out);
    assert_eq!(v["train"], 5085);
    assert_eq!(v["test"], 1017);
    assert_eq!(v["classes"], 10);
    assert_eq!(v["class_names"][3], "cat");
    assert_eq!(v["shape"], serde_json::json!([3, 32, 32]));
    assert_eq!(v["mean"].as_array().unwrap().len(), 3);
    assert!((v["std"][0].as_f64().unwrap() - 0.248).abs() < 0.01);
}

#[test]
fn dataset_errors_exit_2_with_the_reason() {
    let out = lmsoftmax()
        .args([
            "dataset",
            "info",
            "--dataset",
            "cifar10",
            "--data",
            "/nonexistent/x",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("/nonexistent/x: not found"));
    let out = lmsoftmax()
        .args(["dataset", "info", "--dataset", "cifar11"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("unknown dataset 'cifar11'"));
}

#[test]
fn bench_data_and_train_step_report_json() {
    let out = lmsoftmax()
        .args([
            "bench",
            "data",
            "--dataset",
            "synthetic",
            "--synthetic-train",
            "300",
            "--batch-size",
            "64",
            "--workers",
            "2",
            "--json",
        ])
        .output()
        .unwrap();
    assert_ok(&out);
    let v = last_json(&out);
    assert_eq!(v["images"], 600);
    assert!(v["images_per_s"].as_f64().unwrap() > 0.0);

    let out = lmsoftmax()
        .args([
            "bench",
            "train-step",
            "--arch",
            "small_cnn",
            "--batch-size",
            "8",
            "--warmup",
            "1",
            "--reps",
            "2",
            "--json",
        ])
        .output()
        .unwrap();
    assert_ok(&out);
    let v = last_json(&out);
    assert!(v["step_ms"].as_f64().unwrap() > 0.0);
    // which instructions produced the timing: what the kernels crate detects on this CPU (its
    // own test checks the detection against /proc/cpuinfo)
    let cpu = lmsoftmax_kernels::cpu::CpuFeatures::detect();
    assert_eq!(v["isa"], cpu.vector_level(), "the JSON names the CPU level");
    assert_eq!(
        v["bf16_units"],
        cpu.bf16_units(),
        "the JSON names the bf16 units"
    );
    let out = lmsoftmax()
        .args(["bench", "train-step", "--arch", "resnet51"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("unknown architecture 'resnet51'"));
}

#[test]
fn download_from_an_unreachable_mirror_is_a_clear_error() {
    let dir = std::env::temp_dir().join(format!("lmsoftmax-dl-{}", std::process::id()));
    // a port nothing listens on: bind one, then drop it
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let out = lmsoftmax()
        .args([
            "dataset",
            "info",
            "--dataset",
            "cifar10",
            "--download",
            "--data",
            dir.to_str().unwrap(),
        ])
        .args([
            "--download-url",
            &format!("http://127.0.0.1:{port}/cifar-10-python.tar.gz"),
            "--download-md5",
            "c58f30108f718f92721af3b95e74349a",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("downloading http://127.0.0.1"), "{stderr}");
    // a malformed MD5 or timeout is refused before any connection
    for (flag, value, says) in [
        ("--download-md5", "abc", "32 hex digits"),
        ("--download-timeout", "0", "--download-timeout must be"),
    ] {
        let mut args: Vec<String> = [
            "dataset",
            "info",
            "--dataset",
            "cifar10",
            "--download",
            "--data",
        ]
        .map(String::from)
        .to_vec();
        args.push(dir.to_str().unwrap().into());
        args.extend([
            "--download-url".into(),
            format!("http://127.0.0.1:{port}/x.tar.gz"),
        ]);
        if flag == "--download-md5" {
            args.extend([flag.into(), value.into()]);
        } else {
            args.extend([
                "--download-md5".into(),
                "c58f30108f718f92721af3b95e74349a".into(),
            ]);
            args.extend([flag.into(), value.into()]);
        }
        let out = lmsoftmax().args(&args).output().unwrap();
        assert_eq!(out.status.code(), Some(2), "{flag} {value}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            stderr.contains(says) && !stderr.contains("downloading http"),
            "{stderr}"
        );
    }
    let _ = std::fs::remove_dir_all(dir);
}

/// `train` on tiny synthetic data with a half-width small_cnn, no progress bars.
const TINY_RUN: [&str; 12] = [
    "train",
    "--dataset",
    "synthetic",
    "--synthetic-train",
    "256",
    "--synthetic-test",
    "64",
    "--arch",
    "small_cnn",
    "--width",
    "0.5",
    "--quiet",
];

/// A tiny training run's arguments: [`TINY_RUN`] with the large-margin config over 2 epochs.
fn tiny_train(out: &std::path::Path) -> Vec<String> {
    TINY_RUN
        .iter()
        .chain(&[
            "--config-name",
            "layer13_largemargin",
            "--epochs",
            "2",
            "--batch-size",
            "64",
        ])
        .map(|s| s.to_string())
        .chain(["--out-dir".to_string(), out.to_str().unwrap().to_string()])
        .collect()
}

#[test]
fn train_writes_metrics_checkpoints_and_the_best_line() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("run");
    let res = lmsoftmax().args(tiny_train(&out)).output().unwrap();
    assert_ok(&res);
    let stdout = String::from_utf8(res.stdout).unwrap();
    assert!(stdout.contains(" *BEST* Err@1 "), "{stdout}");
    let csv = std::fs::read_to_string(out.join("metrics.csv")).unwrap();
    let mut lines = csv.lines();
    assert_eq!(
        lines.next().unwrap(),
        "epoch,lr,train_loss,train_ce,train_reg,train_top1_err,train_top5_err,test_loss,test_top1_err,test_top5_err,mean_margin,nontarget_entropy,seconds,images_per_s"
    );
    let rows: Vec<Vec<f64>> = lines
        .map(|l| l.split(',').map(|v| v.parse().unwrap()).collect())
        .collect();
    assert_eq!(rows.len(), 2);
    assert_eq!(rows[0][1] as f32, 0.1); // log-spaced 0.1 -> 1e-4 over 2 epochs
    assert_eq!(rows[1][1] as f32, 1e-4);
    // reg >= 0; top-5 errors never above top-1, training and test
    assert!(
        rows.iter()
            .all(|r| r[4] >= 0.0 && r[6] <= r[5] && r[9] <= r[8] && r[8] <= 100.0)
    );
    // the *BEST* line: the lowest test top-1 error and the top-5 of the first epoch reaching it
    let first_best = rows
        .iter()
        .fold(None::<&Vec<f64>>, |b, r| match b {
            Some(b) if b[8] <= r[8] => Some(b),
            _ => Some(r),
        })
        .unwrap();
    let line = format!(
        " *BEST* Err@1 {:.3} Err@5 {:.3}",
        first_best[8], first_best[9]
    );
    assert!(stdout.contains(&line), "{line} not in {stdout}");
    assert_eq!(
        std::fs::read_to_string(out.join("summary.txt")).unwrap(),
        format!("{line}\n")
    );
    // the official four-panel figure
    let fig = image::open(out.join("train_epochs.png")).unwrap();
    assert_eq!((fig.width(), fig.height()), (1200, 900));
    // the official iteration and validation lines (--quiet, -p 100: batch 0 of each epoch)
    let stderr = String::from_utf8_lossy(&res.stderr);
    let iteration = stderr
        .lines()
        .find(|l| l.starts_with("Epoch: [1][0/4]"))
        .unwrap_or_else(|| panic!("no iteration line in {stderr}"));
    for field in ["\tTime ", "\tData ", "\tLoss ", "\tErr@1 ", "\tErr@5 "] {
        assert!(iteration.contains(field), "{field:?} not in {iteration:?}");
    }
    assert!(stderr.contains(" *val* Err@1 "), "{stderr}");
    assert_eq!(
        std::fs::read_to_string(out.join("metrics.jsonl"))
            .unwrap()
            .lines()
            .count(),
        2
    );
    for f in [
        "checkpoint-last.ckpt",
        "checkpoint-best.ckpt",
        "config.toml",
        "summary.txt",
    ] {
        assert!(out.join(f).is_file(), "{f}");
    }
    // the same out-dir again is refused
    let res = lmsoftmax().args(tiny_train(&out)).output().unwrap();
    assert_eq!(res.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&res.stderr).contains("--resume"));
}

#[test]
fn interrupted_and_resumed_run_has_the_same_metrics() {
    let dir = tempfile::tempdir().unwrap();
    let whole = dir.path().join("whole");
    let parts = dir.path().join("parts");
    assert_ok(&lmsoftmax().args(tiny_train(&whole)).output().unwrap());
    let res = lmsoftmax()
        .args(tiny_train(&parts))
        .args(["--stop-after", "1"])
        .output()
        .unwrap();
    assert_ok(&res);
    assert_eq!(
        std::fs::read_to_string(parts.join("metrics.csv"))
            .unwrap()
            .lines()
            .count(),
        2
    );
    let res = lmsoftmax()
        .args(tiny_train(&parts))
        .arg("--resume")
        .output()
        .unwrap();
    assert_ok(&res);
    // every column but the timings (seconds, images_per_s) is identical, bit for bit
    assert_eq!(
        metrics_without_timings(&parts),
        metrics_without_timings(&whole)
    );
}

#[test]
fn corrupt_checkpoint_and_bad_options_are_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("run");
    assert_ok(
        &lmsoftmax()
            .args(tiny_train(&out))
            .args(["--stop-after", "1"])
            .output()
            .unwrap(),
    );
    // every checkpoint corrupt: --resume refuses, naming the problem of each
    let truncate = |name: &str| {
        let ckpt = out.join(name);
        let bytes = std::fs::read(&ckpt).unwrap();
        std::fs::write(&ckpt, &bytes[..bytes.len() / 2]).unwrap();
    };
    let saved = std::fs::read(out.join("checkpoint-epoch1.ckpt")).unwrap();
    for name in [
        "checkpoint-last.ckpt",
        "checkpoint-best.ckpt",
        "checkpoint-epoch1.ckpt",
    ] {
        truncate(name);
    }
    let res = lmsoftmax()
        .args(tiny_train(&out))
        .arg("--resume")
        .output()
        .unwrap();
    assert_eq!(res.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&res.stderr);
    assert!(
        stderr.contains("corrupt or truncated") && stderr.contains("is intact"),
        "{stderr}"
    );
    // an explicitly named corrupt checkpoint is refused too, never replaced by another
    let res = lmsoftmax()
        .args(tiny_train(&out))
        .arg("--resume")
        .arg(out.join("checkpoint-best.ckpt"))
        .output()
        .unwrap();
    assert_eq!(res.status.code(), Some(2));
    // with one intact epoch checkpoint left, the run resumes from it and says so
    std::fs::write(out.join("checkpoint-epoch1.ckpt"), saved).unwrap();
    let res = lmsoftmax()
        .args(tiny_train(&out))
        .arg("--resume")
        .output()
        .unwrap();
    assert_ok(&res);
    let stderr = String::from_utf8_lossy(&res.stderr);
    assert!(
        stderr.contains("resuming from") && stderr.contains("checkpoint-epoch1.ckpt"),
        "{stderr}"
    );
    let csv = std::fs::read_to_string(out.join("metrics.csv")).unwrap();
    assert_eq!(csv.lines().count(), 3, "header and both epochs: {csv}");

    let res = lmsoftmax()
        .args(tiny_train(&dir.path().join("x")))
        .args(["--config-name", "layer14"])
        .output();
    // clap rejects the repeated flag or the config is unknown: either way a usage error
    assert_ne!(res.unwrap().status.code(), Some(0));
    let res = lmsoftmax()
        .args([
            "train",
            "--dataset",
            "synthetic",
            "--arch",
            "resnet51",
            "--out-dir",
        ])
        .arg(dir.path().join("y"))
        .output()
        .unwrap();
    assert_eq!(res.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&res.stderr).contains("resnet51"));
}

#[test]
fn configs_lists_the_official_names() {
    let out = lmsoftmax().arg("configs").output().unwrap();
    let stdout = String::from_utf8(out.stdout).unwrap();
    for name in [
        "layer13 ",
        "layer13_largemargin",
        "layer13_softmax",
        "imagenet ",
        "imagenet_largemargin",
    ] {
        assert!(stdout.contains(name), "{name}: {stdout}");
    }
}

#[test]
fn eval_of_the_last_checkpoint_reproduces_the_last_epoch() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("run");
    assert_ok(&lmsoftmax().args(tiny_train(&out)).output().unwrap());
    let v = eval_tiny(&out.join("checkpoint-last.ckpt"));
    let last = metrics_row(&out, 2);
    assert_eq!(v["images"], 64);
    assert_eq!(v["top1_err"].as_f64().unwrap(), last[8]);
    assert_eq!(v["top5_err"].as_f64().unwrap(), last[9]);
    assert!((v["mean_margin"].as_f64().unwrap() - last[10]).abs() < 1e-9);
    // a checkpoint for another number of classes is refused with the reason
    let res = lmsoftmax()
        .args([
            "eval",
            "--dataset",
            "mnist",
            "--data",
            "/nonexistent",
            "--checkpoint",
        ])
        .arg(out.join("checkpoint-last.ckpt"))
        .output()
        .unwrap();
    assert_eq!(res.status.code(), Some(2));
}

#[test]
fn a_diverging_run_stops_with_the_epoch_and_batch() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("explode.toml");
    std::fs::write(
        &config,
        "name = \"explode\"\nepochs = 2\nbatch_size = 64\nmomentum = 0.9\nweight_decay = 1e-4\n[loss]\nkind = \"large-margin\"\nreg_lambda = 0.3\n[lr]\nkind = \"step\"\nstart = 1e12\ngamma = 1.0\nevery = 1\n",
    )
    .unwrap();
    let out = dir.path().join("run");
    let res = lmsoftmax()
        .args(TINY_RUN)
        .arg("--config")
        .arg(&config)
        .arg("--out-dir")
        .arg(&out)
        .output()
        .unwrap();
    // a failure while running, not a usage error
    assert_eq!(
        res.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&res.stdout)
    );
    let stderr = String::from_utf8_lossy(&res.stderr);
    assert!(
        stderr.contains("at epoch 1 batch") && stderr.contains("lower the learning rate"),
        "{stderr}"
    );
    // no checkpoint exists yet, and the message does not pretend one does
    assert!(stderr.contains("no checkpoint was written yet"), "{stderr}");
}
