//! The GPU path on the wgpu device (a real GPU, or Mesa's software Vulkan device lavapipe in
//! CI): a few training steps of small_cnn and of layer13 at a small width follow the same steps
//! on flex to float tolerance, `eval` on wgpu reads a run as flex does, and two wgpu replicas
//! follow one. Built only with `--features wgpu`; each test says SKIPPED where no wgpu device
//! works (and fails instead with `LMSOFTMAX_REQUIRE_GPU=1`).

use std::path::Path;

use super::{ShortRun, assert_ok, assert_same_curve, constant_lr_run, last_json, lmsoftmax};

/// Whether a wgpu device works here (else the reason is on stderr).
fn wgpu_works() -> bool {
    lmsoftmax_kernels::cube::wgpu_test_device().is_some()
}

/// A 2-epoch run, 4 steps each (batch 32 of 128 synthetic images).
fn run(out: &Path, arch: &str, width: &str, extra: &[&str]) -> Vec<Vec<f64>> {
    let sizes = ShortRun {
        epochs: 2,
        batch_size: 32,
        train: 128,
        lr: 0.02,
    };
    constant_lr_run(out, arch, width, sizes, extra)
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
        assert_same_curve(arch, &flex, &gpu, 2e-3, 128);
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
    assert_same_curve("two replicas", &one, &two, 2e-3, 128);
}

#[test]
fn wgpu_refuses_bf16_with_the_reason() {
    if !wgpu_works() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let res = lmsoftmax()
        .args([
            "train",
            "--dataset",
            "synthetic",
            "--arch",
            "small_cnn",
            "--out-dir",
        ])
        .arg(dir.path().join("run"))
        .args(["--device", "wgpu", "--precision", "bf16"])
        .output()
        .unwrap();
    assert_eq!(res.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&res.stderr);
    assert!(stderr.contains("no bf16 type"), "{stderr}");
    assert!(
        !dir.path().join("run").exists(),
        "a refused run wrote files"
    );
}
