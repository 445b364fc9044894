//! `lmsoftmax report` on real training folders, and the official flags of `train`.

use std::path::Path;

use super::{TINY_RUN, assert_ok, last_json, lmsoftmax, tiny_train};

/// Final-epoch test top-1 errors of the runs under `root` whose folder name starts with `prefix`,
/// read from their metrics.csv (column 8).
fn final_errors(root: &Path, prefix: &str) -> Vec<f64> {
    let mut dirs: Vec<_> = std::fs::read_dir(root)
        .unwrap()
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.file_name().unwrap().to_string_lossy().starts_with(prefix))
        .collect();
    dirs.sort();
    dirs.iter()
        .map(|d| {
            let csv = std::fs::read_to_string(d.join("metrics.csv")).unwrap();
            csv.lines()
                .last()
                .unwrap()
                .split(',')
                .nth(8)
                .unwrap()
                .parse()
                .unwrap()
        })
        .collect()
}

#[test]
fn demo_then_report_groups_seeds_and_writes_the_figures() {
    let dir = tempfile::tempdir().unwrap();
    let res = lmsoftmax()
        .current_dir(dir.path())
        .args([
            "demo",
            "--seeds",
            "2",
            "--epochs",
            "2",
            "--synthetic-train",
            "256",
        ])
        .args(["--synthetic-test", "64", "--width", "0.5", "--quiet"])
        .output()
        .unwrap();
    assert_ok(&res);
    // the demo's own table names what ran: the network and the loss, two seeds each
    let stdout = String::from_utf8_lossy(&res.stdout);
    assert!(
        stdout.contains("| small_cnn | softmax | layer13 | 2 |")
            && stdout.contains("| small_cnn | large-margin λ=0.3 | layer13_largemargin | 2 |"),
        "{stdout}"
    );
    // distinct seeds: no warning about runs sharing one
    assert!(!String::from_utf8_lossy(&res.stderr).contains("share seed"));
    let runs = dir.path().join("lmsoftmax-demo");
    // the demo drew its figures too
    assert!(runs.join("figures").read_dir().unwrap().count() >= 3);

    let figs = dir.path().join("figs");
    let res = lmsoftmax()
        .arg("report")
        .arg(&runs)
        .arg("--out-dir")
        .arg(&figs)
        .arg("--json")
        .output()
        .unwrap();
    assert_ok(&res);
    let stdout = String::from_utf8_lossy(&res.stdout);
    assert!(
        stdout.starts_with("| dataset | network | config |"),
        "{stdout}"
    );
    let v = last_json(&res);
    let rows = v["rows"].as_array().unwrap();
    assert_eq!(rows.len(), 2, "{v}");
    // softmax first, then large-margin, each with both seeds; the mean and std are those of
    // the metrics files
    for (row, (config, loss)) in rows.iter().zip([
        ("layer13", "softmax"),
        ("layer13_largemargin", "large-margin"),
    ]) {
        assert_eq!(row["config"], config);
        assert_eq!(row["loss"]["kind"], loss);
        assert_eq!(row["seeds"], serde_json::json!([0, 1]));
        let want = final_errors(&runs, &format!("small_cnn-{loss}-seed"));
        let got: Vec<f64> = serde_json::from_value(row["final_top1"].clone()).unwrap();
        assert_eq!(got, want);
        let mean = (want[0] + want[1]) / 2.0;
        let std = (want[0] - want[1]).abs() / 2f64.sqrt();
        let cell = format!("| {mean:.2} ± {std:.2} |");
        assert!(stdout.contains(&cell), "{cell} not in\n{stdout}");
    }
    let figures = v["figures"].as_array().unwrap();
    assert_eq!(figures.len(), 3, "{v}");
    for f in figures {
        let img = image::open(f.as_str().unwrap()).unwrap();
        assert_eq!((img.width(), img.height()), (1200, 480));
    }

    // a folder that is not a run is named in the error
    let res = lmsoftmax().arg("report").arg(&figs).output().unwrap();
    assert_eq!(res.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&res.stderr).contains("run.json"));
}

#[test]
fn official_flags_evaluate_start_epoch_and_checkpoint_files() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("run");
    let res = lmsoftmax().args(tiny_train(&out)).output().unwrap();
    assert_ok(&res);
    // the official default keeps one checkpoint per epoch, and the curves figure (PNG for .pdf)
    for f in [
        "checkpoint-epoch1.ckpt",
        "checkpoint-epoch2.ckpt",
        "train_epochs.png",
    ] {
        assert!(out.join(f).is_file(), "{f}");
    }
    // -e with --resume FILE evaluates that checkpoint: the first epoch's test error
    let csv = std::fs::read_to_string(out.join("metrics.csv")).unwrap();
    let first: Vec<&str> = csv.lines().nth(1).unwrap().split(',').collect();
    let res = lmsoftmax()
        .args(tiny_train(&dir.path().join("unused")))
        .arg("-e")
        .arg("--resume")
        .arg(out.join("checkpoint-epoch1.ckpt"))
        .output()
        .unwrap();
    assert_ok(&res);
    let stdout = String::from_utf8_lossy(&res.stdout);
    let want: f64 = first[8].parse().unwrap();
    assert!(
        stdout.contains(&format!(" * Err@1 {want:.3} ")),
        "{stdout} vs {want}"
    );
    assert!(!dir.path().join("unused").exists());

    // --start-epoch 1 of 2 runs only the last epoch, at the last epoch's learning rate;
    // --save-last-checkpoint keeps no per-epoch files
    let late = dir.path().join("late");
    let res = lmsoftmax()
        .args(tiny_train(&late))
        .args(["--start-epoch", "1", "--save-last-checkpoint"])
        .output()
        .unwrap();
    assert_ok(&res);
    let csv = std::fs::read_to_string(late.join("metrics.csv")).unwrap();
    let rows: Vec<&str> = csv.lines().skip(1).collect();
    assert_eq!(rows.len(), 1);
    assert!(rows[0].starts_with("2,0.0000999999"), "{}", rows[0]);
    assert!(!late.join("checkpoint-epoch2.ckpt").exists());

    // --loss overrides show in the config name recorded for `report`
    let soft = dir.path().join("soft");
    let res = lmsoftmax()
        .args(tiny_train(&soft))
        .args(["--loss", "softmax", "--stop-after", "1"])
        .output()
        .unwrap();
    assert_ok(&res);
    let meta: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(soft.join("run.json")).unwrap()).unwrap();
    assert_eq!(meta["config"], "layer13_largemargin+softmax");
    assert_eq!(meta["loss"]["kind"], "softmax");
    assert!(meta["loss"].get("reg_lambda").is_none(), "{meta}");
}

#[test]
fn device_and_resume_errors_are_clear() {
    let dir = tempfile::tempdir().unwrap();
    // `--gpu N` is GPU N of the backend built in; a binary without one says so
    let gpu_case: (&[&str], &str) = if cfg!(feature = "wgpu") {
        (&["--gpu", "7"], "--device wgpu:7: no working wgpu device")
    } else {
        (&["--gpu", "0"], "CPU backend only")
    };
    let cases: [(&[&str], &str); 5] = [
        gpu_case,
        (&["--device", "cuda:1"], "--features cuda"),
        (&["--device", "tpu"], "unknown device"),
        (&["--resume", "/nonexistent/ckpt"], "no checkpoint found"),
        (&["--start-epoch", "5"], "--start-epoch 5"),
    ];
    for (extra, want) in cases {
        let res = lmsoftmax()
            .args(TINY_RUN)
            .args(["--epochs", "2", "--out-dir"])
            .arg(dir.path().join("x"))
            .args(extra)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&res.stderr);
        assert_eq!(res.status.code(), Some(2), "{extra:?}: {stderr}");
        assert!(stderr.contains(want), "{extra:?}: {stderr}");
    }
    // --resume of a folder where no run was ever started
    let empty = dir.path().join("empty");
    std::fs::create_dir(&empty).unwrap();
    let res = lmsoftmax()
        .args(TINY_RUN)
        .arg("--resume")
        .arg(&empty)
        .output()
        .unwrap();
    assert_eq!(res.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&res.stderr).contains("no checkpoint found"));
}

/// An IDX file: magic (unsigned bytes, `dims.len()` dimensions), big-endian sizes, the bytes.
fn idx(dims: &[u32], bytes: &[u8]) -> Vec<u8> {
    let mut out = vec![0, 0, 8, dims.len() as u8];
    for d in dims {
        out.extend_from_slice(&d.to_be_bytes());
    }
    out.extend_from_slice(bytes);
    out
}

#[test]
fn any_dataset_trains_any_network_its_input_fits_mnist_on_small_cnn() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("mnist");
    std::fs::create_dir(&data).unwrap();
    for (prefix, n) in [("train", 96u32), ("t10k", 32)] {
        // one bright 4x4 square per image, placed by its label: learnable, 1 channel, 28 x 28
        let mut pixels = vec![0u8; (n * 28 * 28) as usize];
        let labels: Vec<u8> = (0..n).map(|i| (i % 10) as u8).collect();
        for (i, &l) in labels.iter().enumerate() {
            let (y0, x0) = (4 + 2 * l as usize, 4 + 2 * (9 - l as usize));
            for y in y0..y0 + 4 {
                for x in x0..x0 + 4 {
                    pixels[i * 784 + y * 28 + x] = 255;
                }
            }
        }
        std::fs::write(
            data.join(format!("{prefix}-images-idx3-ubyte")),
            idx(&[n, 28, 28], &pixels),
        )
        .unwrap();
        std::fs::write(
            data.join(format!("{prefix}-labels-idx1-ubyte")),
            idx(&[n], &labels),
        )
        .unwrap();
    }
    let out = dir.path().join("run");
    let res = lmsoftmax()
        .args([
            "train",
            "--dataset",
            "mnist",
            "--arch",
            "small_cnn",
            "--width",
            "0.25",
        ])
        .args(["--epochs", "1", "--batch-size", "32", "--quiet", "--data"])
        .arg(&data)
        .arg("--out-dir")
        .arg(&out)
        .output()
        .unwrap();
    assert_ok(&res);
    let meta = std::fs::read_to_string(out.join("run.json")).unwrap();
    assert!(
        meta.contains("\"mnist\"") && meta.contains("small_cnn"),
        "{meta}"
    );
    assert_eq!(
        std::fs::read_to_string(out.join("test-margins.txt"))
            .unwrap()
            .lines()
            .count(),
        32
    );
}

#[test]
fn report_warns_when_runs_share_a_seed() {
    let dir = tempfile::tempdir().unwrap();
    let args = |out: &Path| {
        let mut a: Vec<String> = [
            "train",
            "--dataset",
            "synthetic",
            "--synthetic-train",
            "64",
            "--synthetic-test",
            "32",
            "--arch",
            "small_cnn",
            "--width",
            "0.25",
            "--quiet",
            "--epochs",
            "1",
            "--batch-size",
            "32",
            "--save-last-checkpoint",
            "--out-dir",
        ]
        .map(String::from)
        .to_vec();
        a.push(out.to_str().unwrap().into());
        a
    };
    for name in ["a", "b"] {
        assert_ok(
            &lmsoftmax()
                .args(args(&dir.path().join(name)))
                .output()
                .unwrap(),
        );
    }
    // a run of the same configuration that stopped at another epoch
    let res = lmsoftmax()
        .args(["train", "--dataset", "synthetic", "--synthetic-train", "64"])
        .args([
            "--synthetic-test",
            "32",
            "--arch",
            "small_cnn",
            "--width",
            "0.25",
        ])
        .args([
            "--quiet",
            "--epochs",
            "2",
            "--seed",
            "1",
            "--batch-size",
            "32",
        ])
        .args(["--save-last-checkpoint", "--out-dir"])
        .arg(dir.path().join("c"))
        .output()
        .unwrap();
    assert_ok(&res);
    let res = lmsoftmax()
        .arg("report")
        .arg(dir.path().join("a"))
        .arg(dir.path().join("b"))
        .arg(dir.path().join("c"))
        .arg("--out-dir")
        .arg(dir.path().join("figs"))
        .arg("--json")
        .output()
        .unwrap();
    assert_ok(&res);
    let stderr = String::from_utf8_lossy(&res.stderr);
    assert!(
        stderr.contains("2 runs share seed 0") && stderr.contains("different --seed"),
        "{stderr}"
    );
    assert!(
        stderr.contains("runs stopped after 1, 2 epochs"),
        "{stderr}"
    );
    let v = last_json(&res);
    assert_eq!(v["rows"].as_array().unwrap().len(), 2, "{v}");
}
