//! Data-parallel training: the same run on one device and on two replicas gives the same curve;
//! the official multi-node flags are checked.

use std::path::Path;

use super::{ShortRun, assert_ok, assert_same_curve, constant_lr_run, lmsoftmax};

/// A 3-epoch run of the BatchNorm-free small CNN (shards then see exactly what the whole batch
/// sees), batch 48 over 200 images: a partial last batch of 8 too.
fn run(out: &Path, extra: &[&str]) -> Vec<Vec<f64>> {
    let sizes = ShortRun {
        epochs: 3,
        batch_size: 48,
        train: 200,
        lr: 0.05,
    };
    constant_lr_run(out, "small_cnn_nobn", "0.5", sizes, extra)
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
    assert_same_curve("two replicas", &one, &two, 1e-5, 200);
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
