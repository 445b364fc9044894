//! The margin-loss family through the command: `train --loss KIND` for every logit-level kind
//! (with `--loss-param` and the shipped configs), `report` grouping the runs by kind, `eval` of a
//! checkpoint, and a resume under another kind refused.

use std::path::Path;

use super::{TINY_RUN, assert_ok, eval_tiny, last_json, lmsoftmax, metrics_row};

/// A 1-epoch tiny run of `kind` (extra flags after), into `out`.
fn train(out: &Path, kind: &str, extra: &[&str]) -> std::process::Output {
    lmsoftmax()
        .args(TINY_RUN)
        .args([
            "--config-name",
            "layer13",
            "--epochs",
            "1",
            "--batch-size",
            "64",
        ])
        .args(["--loss", kind])
        .args(extra)
        .arg("--out-dir")
        .arg(out)
        .output()
        .unwrap()
}

#[test]
fn every_kind_trains_reports_evaluates_and_refuses_another_kinds_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    let runs = dir.path().join("runs");
    for kind in [
        "softmax",
        "large-margin",
        "label-smoothing",
        "focal",
        "poly",
        "confidence-penalty",
    ] {
        let res = train(&runs.join(kind), kind, &[]);
        assert_ok(&res);
        let meta: serde_json::Value = serde_json::from_str(
            &std::fs::read_to_string(runs.join(kind).join("run.json")).unwrap(),
        )
        .unwrap();
        assert_eq!(meta["loss"]["kind"], kind, "{meta}");
    }
    // a parameter from the command line reaches the run
    let res = train(
        &runs.join("focal-0.5"),
        "focal",
        &["--loss-param", "gamma=0.5"],
    );
    assert_ok(&res);
    let meta: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(runs.join("focal-0.5").join("run.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(meta["loss"]["gamma"], 0.5, "{meta}");

    // report: one row per kind and parameters, each labelled with them
    let res = lmsoftmax()
        .arg("report")
        .arg(&runs)
        .arg("--out-dir")
        .arg(dir.path().join("figs"))
        .arg("--json")
        .output()
        .unwrap();
    assert_ok(&res);
    let v = last_json(&res);
    let rows = v["rows"].as_array().unwrap();
    assert_eq!(rows.len(), 7, "{v}");
    let stdout = String::from_utf8_lossy(&res.stdout);
    for label in [
        "| softmax |",
        "| large-margin λ=0.3 |",
        "| label-smoothing ε=0.1 |",
        "| focal γ=2 |",
        "| focal γ=0.5 |",
        "| poly ε=1 |",
        "| confidence-penalty β=0.1 |",
    ] {
        assert!(stdout.contains(label), "{label} not in\n{stdout}");
    }

    // eval of a focal checkpoint reproduces its last epoch's test error and focal loss
    let v = eval_tiny(&runs.join("focal").join("checkpoint-last.ckpt"));
    let last = metrics_row(&runs.join("focal"), 1);
    assert_eq!(v["top1_err"].as_f64().unwrap(), last[8], "{v}");
    assert!(
        (v["loss"].as_f64().unwrap() - last[7]).abs() < 1e-6,
        "{v} vs {last:?}"
    );

    // a resume under another kind names the loss on both sides
    let res = train(&runs.join("focal"), "poly", &["--resume"]);
    let stderr = String::from_utf8_lossy(&res.stderr);
    assert_eq!(res.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("loss: checkpoint") && stderr.contains("Focal") && stderr.contains("Poly"),
        "{stderr}"
    );
}

#[test]
fn the_shipped_family_configs_load_and_name_their_kind() {
    let res = lmsoftmax().arg("configs").output().unwrap();
    assert_ok(&res);
    let stdout = String::from_utf8_lossy(&res.stdout);
    for name in [
        "layer13_label_smoothing",
        "layer13_focal",
        "layer13_poly",
        "layer13_confidence_penalty",
    ] {
        assert!(stdout.contains(name), "{name} not in {stdout}");
    }
}
