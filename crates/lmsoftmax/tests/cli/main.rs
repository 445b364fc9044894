//! CLI tests: the real `lmsoftmax` binary, run as a user runs it.

use std::process::Command;

fn lmsoftmax() -> Command {
    Command::new(env!("CARGO_BIN_EXE_lmsoftmax"))
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
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
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
