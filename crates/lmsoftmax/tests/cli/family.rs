//! The margin-loss family through the command: `train --loss KIND` for every kind (with
//! `--loss-param` and the shipped configs; a margin head in place of the network's last layer),
//! `report` grouping the runs by kind, `eval` and `export` of a checkpoint, a resumed head run
//! continuing its `lambda` schedule, and a resume under another kind refused.

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

/// `lmsoftmax report RUNS --json` into `figs`: its JSON object and its standard output.
fn report_runs(runs: &Path, figs: &Path) -> (serde_json::Value, String) {
    let res = lmsoftmax()
        .arg("report")
        .arg(runs)
        .arg("--out-dir")
        .arg(figs)
        .arg("--json")
        .output()
        .unwrap();
    assert_ok(&res);
    (
        last_json(&res),
        String::from_utf8_lossy(&res.stdout).into_owned(),
    )
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
    let (v, stdout) = report_runs(&runs, &dir.path().join("figs"));
    let rows = v["rows"].as_array().unwrap();
    assert_eq!(rows.len(), 7, "{v}");
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
        stderr.contains("loss: checkpoint focal γ=2, now poly ε=1"),
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
        "layer13_cosface",
        "layer13_arcface",
        "layer13_combined",
        "layer13_subcenter_arcface",
        "layer13_sphereface",
        "layer13_lsoftmax",
    ] {
        assert!(stdout.contains(name), "{name} not in {stdout}");
    }
}

const HEADS: [&str; 6] = [
    "cosface",
    "arcface",
    "combined",
    "subcenter-arcface",
    "sphereface",
    "lsoftmax",
];

fn run_json(dir: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(dir.join("run.json")).unwrap()).unwrap()
}

#[test]
fn every_margin_head_trains_evaluates_reports_and_refuses_another_kinds_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    let runs = dir.path().join("runs");
    for kind in HEADS {
        let out = runs.join(kind);
        assert_ok(&train(&out, kind, &[]));
        assert_eq!(run_json(&out)["loss"]["kind"], kind);
        let row = metrics_row(&out, 1);
        assert!(row.iter().all(|v| v.is_finite()), "{kind}: {row:?}");
    }
    // a head's parameter from the command line reaches the run and its label
    let res = train(
        &runs.join("cosface-m0.2"),
        "cosface",
        &["--loss-param", "margin=0.2", "--loss-param", "scale=16"],
    );
    assert_ok(&res);
    let loss = &run_json(&runs.join("cosface-m0.2"))["loss"];
    assert_eq!(
        (loss["margin"].as_f64(), loss["scale"].as_f64()),
        (Some(0.2), Some(16.0))
    );

    let (v, stdout) = report_runs(&runs, &dir.path().join("figs"));
    assert_eq!(v["rows"].as_array().unwrap().len(), 7, "{v}");
    for label in [
        "| cosface s=30 m=0.35 |",
        "| cosface s=16 m=0.2 |",
        "| arcface s=30 m=0.5 |",
        "| combined s=30 m1=1 m2=0.5 m3=0 |",
        "| subcenter-arcface s=30 m=0.5 K=3 |",
        "| sphereface m=4 |",
        "| lsoftmax m=4 |",
    ] {
        assert!(stdout.contains(label), "{label} not in\n{stdout}");
    }

    // eval of a head checkpoint: the head's logits give the last epoch's test error, and its
    // margin loss the test loss
    for kind in ["arcface", "sphereface"] {
        let v = eval_tiny(&runs.join(kind).join("checkpoint-last.ckpt"));
        let last = metrics_row(&runs.join(kind), 1);
        assert_eq!(v["top1_err"].as_f64().unwrap(), last[8], "{kind}: {v}");
        assert!(
            (v["loss"].as_f64().unwrap() - last[7]).abs() < 1e-5 * last[7].abs().max(1.0),
            "{kind}: {v} vs {last:?}"
        );
    }

    // a head checkpoint refused by a logit-level run and by another head, naming both losses
    for (other, label) in [
        ("softmax", "now softmax"),
        ("arcface", "now arcface s=30 m=0.5"),
    ] {
        let res = train(&runs.join("cosface"), other, &["--resume"]);
        let stderr = String::from_utf8_lossy(&res.stderr);
        assert_eq!(res.status.code(), Some(2), "{stderr}");
        assert!(
            stderr.contains(&format!("loss: checkpoint cosface s=30 m=0.35, {label}")),
            "{stderr}"
        );
    }
}

#[test]
fn a_resumed_head_run_continues_its_lambda_schedule_bit_for_bit() {
    let dir = tempfile::tempdir().unwrap();
    let (whole, parts) = (dir.path().join("whole"), dir.path().join("parts"));
    let two = ["--epochs", "2"];
    let cmd = |out: &Path, extra: &[&str]| {
        lmsoftmax()
            .args(TINY_RUN)
            .args(["--config-name", "layer13_sphereface", "--batch-size", "64"])
            .args(two)
            .args(extra)
            .arg("--out-dir")
            .arg(out)
            .output()
            .unwrap()
    };
    assert_ok(&cmd(&whole, &[]));
    assert_ok(&cmd(&parts, &["--stop-after", "1"]));
    let ckpt = lmsoftmax::train::checkpoint::read(&parts.join("checkpoint-last.ckpt")).unwrap();
    let state =
        lmsoftmax::train::state::read_state(&ckpt, &parts.join("checkpoint-last.ckpt")).unwrap();
    assert_eq!(state.iterations, 4, "256 images in batches of 64: 4 steps");
    assert_ok(&cmd(&parts, &["--resume"]));
    // a schedule restarted at lambda = 1000 would give epoch 2 another loss
    super::assert_same_run(&parts, &whole);
}

#[test]
fn a_head_checkpoint_exports_the_network_without_its_last_layer_and_the_head() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("run");
    let res = lmsoftmax()
        .args(["train", "--dataset", "synthetic", "--synthetic-train", "64"])
        .args([
            "--synthetic-test",
            "32",
            "--arch",
            "layer13",
            "--width",
            "0.125",
        ])
        .args([
            "--quiet",
            "--epochs",
            "1",
            "--batch-size",
            "32",
            "--loss",
            "arcface",
        ])
        .arg("--out-dir")
        .arg(&out)
        .output()
        .unwrap();
    assert_ok(&res);
    let file = dir.path().join("m.safetensors");
    let res = lmsoftmax()
        .arg("export")
        .arg(out.join("checkpoint-last.ckpt"))
        .arg("--out")
        .arg(&file)
        .output()
        .unwrap();
    assert_ok(&res);
    let bytes = std::fs::read(&file).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    // layer13 at width 0.125: the last conv has 16 channels, the head W is [10, 16]
    assert_eq!(st.tensor("head.weight").unwrap().shape(), [10, 16]);
    assert!(st.tensor("classifier.weight").is_err());
    assert!(st.tensor("features.0.weight").is_ok());
}
