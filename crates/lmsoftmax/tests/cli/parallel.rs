//! Data-parallel training: the same run on one device and on two replicas gives the same curve;
//! the official multi-node flags are checked.

use std::path::Path;

use super::{assert_ok, lmsoftmax};

/// A 3-epoch run of the BatchNorm-free small CNN (shards then see exactly what the whole batch
/// sees), batch 48 over 200 images: a partial last batch of 8 too.
fn run(out: &Path, extra: &[&str]) -> Vec<Vec<f64>> {
    // the large-margin loss at a constant learning rate, so the loss falls within 3 epochs
    let config = out.with_extension("toml");
    std::fs::write(
        &config,
        "name = \"lm-constant\"\nepochs = 3\nbatch_size = 48\nmomentum = 0.9\nweight_decay = 1e-4\n\
         [loss]\nkind = \"large-margin\"\nreg_lambda = 0.3\n[lr]\nkind = \"step\"\nstart = 0.05\ngamma = 1.0\nevery = 1\n",
    )
    .unwrap();
    let res = lmsoftmax()
        .args([
            "train",
            "--dataset",
            "synthetic",
            "--synthetic-train",
            "200",
        ])
        .args([
            "--synthetic-test",
            "64",
            "--arch",
            "small_cnn_nobn",
            "--width",
            "0.5",
        ])
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

#[test]
fn two_replicas_follow_the_single_device_curve() {
    let dir = tempfile::tempdir().unwrap();
    let one = run(&dir.path().join("one"), &[]);
    let two = run(&dir.path().join("two"), &["--devices", "cpu,cpu"]);
    assert_eq!(one.len(), 3);
    // the loss moved, so the comparison means something
    assert!(one[2][2] < one[0][2] - 0.02, "{one:?}");
    eprintln!("one device: {one:?}\ntwo replicas: {two:?}");
    for (a, b) in one.iter().zip(&two) {
        // train_loss, train_ce, train_reg, test_loss, mean_margin, nontarget_entropy
        for col in [2, 3, 4, 7, 10, 11] {
            let tol = 1e-5 * (1.0 + a[col].abs());
            assert!(
                (a[col] - b[col]).abs() <= tol,
                "epoch {} column {col}: {} vs {}",
                a[0],
                a[col],
                b[col]
            );
        }
        // error rates are counts: at most one image may flip on a float-level difference
        assert!((a[5] - b[5]).abs() <= 100.0 / 200.0 + 1e-9);
        assert!((a[8] - b[8]).abs() <= 100.0 / 64.0 + 1e-9);
    }
}

#[test]
fn multi_node_flags_are_checked() {
    let dir = tempfile::tempdir().unwrap();
    let base = [
        "train",
        "--dataset",
        "synthetic",
        "--arch",
        "small_cnn",
        "--epochs",
        "1",
    ];
    // the official single-node command line is accepted (world size 1, rank 0)
    let res = lmsoftmax()
        .args(base)
        .args([
            "--synthetic-train",
            "64",
            "--synthetic-test",
            "32",
            "--width",
            "0.25",
            "--quiet",
        ])
        .args([
            "--dist-url",
            "tcp://127.0.0.1:8080",
            "--dist-backend",
            "nccl",
        ])
        .args(["--world-size", "1", "--rank", "0", "--out-dir"])
        .arg(dir.path().join("one-node"))
        .output()
        .unwrap();
    assert_ok(&res);
    let cases: [(&[&str], &str); 3] = [
        (&["--world-size", "2", "--rank", "1"], "--features mpi"),
        (&["--multiprocessing-distributed"], "mpirun -np N"),
        (&["--devices", "cpu,tpu"], "unknown device"),
    ];
    for (extra, want) in cases {
        let res = lmsoftmax()
            .args(base)
            .args(extra)
            .arg("--out-dir")
            .arg(dir.path().join("x"))
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&res.stderr);
        assert_eq!(res.status.code(), Some(2), "{extra:?}: {stderr}");
        assert!(stderr.contains(want), "{extra:?}: {stderr}");
    }
    // started by an MPI launcher without the mpi feature: refused, not N lone trainings
    if !lmsoftmax::distributed::MPI_BUILT {
        let res = lmsoftmax()
            .args(base)
            .arg("--out-dir")
            .arg(dir.path().join("z"))
            .env("OMPI_COMM_WORLD_SIZE", "2")
            .env("OMPI_COMM_WORLD_RANK", "0")
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&res.stderr);
        assert_eq!(res.status.code(), Some(2), "{stderr}");
        assert!(stderr.contains("built without MPI"), "{stderr}");
    }
    let res = lmsoftmax()
        .args(base)
        .args(["--collective-timeout", "1e20", "--out-dir"])
        .arg(dir.path().join("t"))
        .output()
        .unwrap();
    assert_eq!(res.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&res.stderr).contains("too large"));
    // WORLD_SIZE from the environment with env://
    let res = lmsoftmax()
        .args(base)
        .args(["--dist-url", "env://", "--out-dir"])
        .arg(dir.path().join("y"))
        .env("WORLD_SIZE", "3")
        .output()
        .unwrap();
    assert_eq!(res.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&res.stderr).contains("--world-size 3"));
}
