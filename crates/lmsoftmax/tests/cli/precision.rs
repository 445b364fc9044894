//! `--precision bf16` (autocast) of train, eval and bench train-step: it runs, changes the
//! arithmetic and not the curve, says what ran the bf16 products, records itself in the run, and a
//! run may be resumed at another precision (and says so).

use lmsoftmax_kernels::autocast::bf16_kernel;
use lmsoftmax_kernels::cpu::CpuFeatures;

use super::{assert_ok, eval_tiny, last_json, lmsoftmax, metrics_row, tiny_train};

/// The first epoch's metrics row of a tiny run with `extra` flags, and its standard error.
fn tiny_epoch(out: &std::path::Path, extra: &[&str]) -> (Vec<f64>, String) {
    let res = lmsoftmax()
        .args(tiny_train(out))
        .args(["--stop-after", "1"])
        .args(extra)
        .output()
        .unwrap();
    assert_ok(&res);
    (
        metrics_row(out, 1),
        String::from_utf8_lossy(&res.stderr).into_owned(),
    )
}

#[test]
fn bf16_training_tracks_fp32_says_what_ran_and_resumes_across_precisions() {
    let dir = tempfile::tempdir().unwrap();
    let (fp32, fp32_log) = tiny_epoch(&dir.path().join("fp32"), &[]);
    assert!(!fp32_log.contains("precision bf16"), "{fp32_log}");
    let bf16_dir = dir.path().join("bf16");
    let (bf16, log) = tiny_epoch(&bf16_dir, &["--precision", "bf16"]);
    assert!(log.contains("precision bf16 (autocast)"), "{log}");
    // what ran the products on this CPU (AVX-512-BF16 or the f32 kernels), as the kernels say
    let kernel = bf16_kernel(&CpuFeatures::detect());
    assert!(log.contains(&format!("bf16 products: {kernel}")), "{log}");
    // columns: epoch, lr, train_loss, train_ce, train_reg, ..., test_loss (7)
    for col in [2, 3, 7] {
        let rel = (bf16[col] - fp32[col]).abs() / fp32[col].abs().max(1e-9);
        assert!(
            rel < 0.05,
            "column {col}: bf16 {} vs fp32 {}",
            bf16[col],
            fp32[col]
        );
    }
    assert_ne!(bf16[2], fp32[2], "bf16 changed no arithmetic");
    let meta = std::fs::read_to_string(bf16_dir.join("run.json")).unwrap();
    assert!(meta.contains("\"precision\": \"bf16\""), "{meta}");

    // the fp32 run's second epoch in bf16: allowed, and said
    let res = lmsoftmax()
        .args(tiny_train(&dir.path().join("fp32")))
        .args(["--resume", "--precision", "bf16"])
        .output()
        .unwrap();
    assert_ok(&res);
    let stderr = String::from_utf8_lossy(&res.stderr);
    assert!(
        stderr.contains("trained in fp32; this run continues in bf16"),
        "{stderr}"
    );
    let meta = std::fs::read_to_string(dir.path().join("fp32/run.json")).unwrap();
    assert!(meta.contains("\"precision\": \"bf16\""), "{meta}");
    assert_eq!(metrics_row(&dir.path().join("fp32"), 2)[0], 2.0);
}

#[test]
fn eval_at_bf16_reads_the_same_f32_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("run");
    let _ = tiny_epoch(&out, &[]);
    let checkpoint = out.join("checkpoint-last.ckpt");
    let fp32 = eval_tiny(&checkpoint);
    let res = lmsoftmax()
        .args(["eval", "--dataset", "synthetic", "--synthetic-train", "256"])
        .args(["--synthetic-test", "64", "--batch-size", "64", "--json"])
        .args(["--precision", "bf16", "--checkpoint"])
        .arg(&checkpoint)
        .output()
        .unwrap();
    assert_ok(&res);
    assert!(
        String::from_utf8_lossy(&res.stdout).contains("test images, bf16"),
        "{}",
        String::from_utf8_lossy(&res.stdout)
    );
    let bf16 = last_json(&res);
    let (a, b) = (
        fp32["loss"].as_f64().unwrap(),
        bf16["loss"].as_f64().unwrap(),
    );
    assert!(
        (a - b).abs() < 0.05 * a.abs(),
        "eval loss fp32 {a}, bf16 {b}"
    );
    assert_ne!(a, b, "bf16 evaluation changed no arithmetic");
}

#[test]
fn bench_train_step_names_the_precision_and_the_bf16_kernel() {
    let bench = |precision: &str| {
        let res = lmsoftmax()
            .args([
                "bench",
                "train-step",
                "--arch",
                "small_cnn",
                "--width",
                "0.25",
            ])
            .args([
                "--batch-size",
                "4",
                "--warmup",
                "0",
                "--reps",
                "1",
                "--json",
            ])
            .args(["--precision", precision])
            .env("RAYON_NUM_THREADS", "1")
            .output()
            .unwrap();
        assert_ok(&res);
        last_json(&res)
    };
    let fp32 = bench("fp32");
    assert_eq!(fp32["precision"], "fp32");
    assert!(fp32["bf16_kernel"].is_null(), "{fp32}");
    let bf16 = bench("bf16");
    assert_eq!(bf16["precision"], "bf16");
    let kernel = bf16["bf16_kernel"].as_str().unwrap_or_default();
    assert_eq!(kernel, bf16_kernel(&CpuFeatures::detect()), "{bf16}");
    assert!(bf16["step_ms"].as_f64().is_some_and(|t| t > 0.0), "{bf16}");
    if cfg!(target_os = "linux") {
        assert!(
            bf16["peak_rss_mib"].as_f64().is_some_and(|m| m > 1.0),
            "{bf16}"
        );
    }
}

#[test]
fn an_unknown_precision_is_refused_with_the_choices() {
    let res = lmsoftmax()
        .args([
            "bench",
            "train-step",
            "--arch",
            "small_cnn",
            "--precision",
            "fp16",
        ])
        .output()
        .unwrap();
    assert_eq!(res.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&res.stderr);
    assert!(stderr.contains("use fp32 or bf16"), "{stderr}");
}
