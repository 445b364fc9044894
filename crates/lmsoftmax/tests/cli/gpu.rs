//! The GPU path on the wgpu device (a real GPU, or Mesa's software Vulkan device lavapipe in
//! CI): a few training steps of small_cnn and of layer13 at a small width follow the same steps
//! on flex to float tolerance, `eval` on wgpu reads a run as flex does, and two wgpu replicas
//! follow one. Built only with `--features wgpu`; each test says SKIPPED where no wgpu device
//! works (and fails instead with `LMSOFTMAX_REQUIRE_GPU=1`).

use std::path::Path;

use super::{assert_ok, last_json, lmsoftmax};

/// Whether a wgpu device works here (else the reason is on stderr).
fn wgpu_works() -> bool {
    lmsoftmax_kernels::cube::wgpu_test_device().is_some()
}

/// A 2-epoch run (4 steps each, batch 32 of 128 synthetic images) at a constant learning rate;
/// its metrics rows.
fn run(out: &Path, arch: &str, width: &str, extra: &[&str]) -> Vec<Vec<f64>> {
    let config = out.with_extension("toml");
    std::fs::write(
        &config,
        "name = \"lm-constant\"\nepochs = 2\nbatch_size = 32\nmomentum = 0.9\nweight_decay = 1e-4\n\
         [loss]\nkind = \"large-margin\"\nreg_lambda = 0.3\n[lr]\nkind = \"step\"\nstart = 0.02\ngamma = 1.0\nevery = 1\n",
    )
    .unwrap();
    let res = lmsoftmax()
        .args([
            "train",
            "--dataset",
            "synthetic",
            "--synthetic-train",
            "128",
        ])
        .args(["--synthetic-test", "64", "--arch", arch, "--width", width])
        .arg("--config")
        .arg(&config)
        .args([
            "--quiet",
            "--save-last-checkpoint",
            "--workers",
            "0",
            "--out-dir",
        ])
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

/// The loss columns agree to `tol` (relative), the error rates to one image per epoch.
fn assert_same_curve(what: &str, a: &[Vec<f64>], b: &[Vec<f64>], tol: f64) {
    assert_eq!(a.len(), b.len(), "{what}: epochs");
    for (x, y) in a.iter().zip(b) {
        // train_loss, train_ce, train_reg, test_loss, mean_margin, nontarget_entropy
        for col in [2, 3, 4, 7, 10, 11] {
            assert!(
                (x[col] - y[col]).abs() <= tol * (1.0 + x[col].abs()),
                "{what}: epoch {} column {col}: flex {} vs wgpu {}",
                x[0],
                x[col],
                y[col]
            );
        }
        assert!(
            (x[5] - y[5]).abs() <= 100.0 / 128.0 + 1e-9,
            "{what}: {x:?} vs {y:?}"
        );
        assert!(
            (x[8] - y[8]).abs() <= 100.0 / 64.0 + 1e-9,
            "{what}: {x:?} vs {y:?}"
        );
    }
}

#[test]
fn wgpu_training_steps_follow_flex() {
    if !wgpu_works() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    for (arch, width) in [("small_cnn", "0.5"), ("layer13", "0.125")] {
        let flex = run(&dir.path().join(format!("{arch}-flex")), arch, width, &[]);
        let gpu = run(
            &dir.path().join(format!("{arch}-wgpu")),
            arch,
            width,
            &["--device", "wgpu"],
        );
        eprintln!("{arch} flex: {flex:?}\n{arch} wgpu: {gpu:?}");
        // the loss moved, so the comparison means something
        assert!(flex[1][2] < flex[0][2], "{arch}: {flex:?}");
        assert_same_curve(arch, &flex, &gpu, 2e-3);
    }
}

#[test]
fn wgpu_eval_reads_a_run_as_flex_does() {
    if !wgpu_works() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("run");
    run(&out, "small_cnn", "0.5", &[]);
    let eval = |device: &str| {
        let res = lmsoftmax()
            .args(["eval", "--dataset", "synthetic", "--synthetic-train", "128"])
            .args(["--synthetic-test", "64", "--batch-size", "32", "--json"])
            .args(["--device", device, "--checkpoint"])
            .arg(out.join("checkpoint-last.ckpt"))
            .output()
            .unwrap();
        assert_ok(&res);
        last_json(&res)
    };
    let (cpu, gpu) = (eval("cpu"), eval("wgpu"));
    eprintln!("cpu {cpu}\nwgpu {gpu}");
    for key in ["loss", "mean_margin"] {
        let (a, b) = (cpu[key].as_f64().unwrap(), gpu[key].as_f64().unwrap());
        assert!(
            (a - b).abs() <= 1e-4 * (1.0 + a.abs()),
            "{key}: cpu {a} vs wgpu {b}"
        );
    }
    let (a, b) = (
        cpu["top1_err"].as_f64().unwrap(),
        gpu["top1_err"].as_f64().unwrap(),
    );
    assert!(
        (a - b).abs() <= 100.0 / 64.0 + 1e-9,
        "top1: cpu {a} vs wgpu {b}"
    );
}

#[test]
fn two_wgpu_replicas_follow_one() {
    if !wgpu_works() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    // BatchNorm-free, so that two half-batches see what the whole batch sees
    let one = run(
        &dir.path().join("one"),
        "small_cnn_nobn",
        "0.5",
        &["--device", "wgpu"],
    );
    let two = run(
        &dir.path().join("two"),
        "small_cnn_nobn",
        "0.5",
        &["--devices", "wgpu:0,wgpu:0"],
    );
    eprintln!("one: {one:?}\ntwo: {two:?}");
    assert_same_curve("two replicas", &one, &two, 2e-3);
}
