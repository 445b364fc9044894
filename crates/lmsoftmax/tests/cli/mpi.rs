//! Many ranks over Open MPI on loopback (`mpirun -np 2 --oversubscribe`): 1 rank against 2 with the
//! same global batch, a resumed 2-rank run, a killed rank, a stalled rank caught by the
//! watchdog, and the official flags checked against MPI's world.
//!
//! These tests need `mpirun` (Debian: openmpi-bin libopenmpi-dev libclang-dev, which `.ci/run`
//! installs); without it each says it was skipped, and why. They build `lmsoftmax-mpi` (the
//! command with the `mpi` feature) beside the default binary, once.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use super::{assert_ok, assert_same_run, metrics_row, metrics_without_timings};

/// The MPI-enabled binary, built on first use; `None` (the test is skipped, and says why) where
/// `mpirun` is missing.
fn mpi_binary(test: &str) -> Option<PathBuf> {
    static BUILT: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    let have_mpirun = Command::new("mpirun")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !have_mpirun {
        // straight to the process's standard error: the test harness captures `eprintln!` of a
        // passing test, and a skip must be seen
        use std::io::Write;
        let _ = writeln!(
            std::io::stderr(),
            "SKIPPED {test}: `mpirun` was not found; the MPI tests need Open MPI (Debian: \
             apt-get install openmpi-bin libopenmpi-dev libclang-dev, as .ci/run does)"
        );
        return None;
    }
    let built = BUILT.get_or_init(|| {
        let default = PathBuf::from(env!("CARGO_BIN_EXE_lmsoftmax"));
        let dir = default.parent().expect("the binary's folder").to_path_buf();
        // Burn is compiled with the features of the whole workspace's test build (dev-dependencies
        // included); a build of this package alone resolves fewer and compiles a second copy of
        // burn (~9 min on 2 cores). `--workspace --examples` resolves the same set (`--examples`
        // turns dev-dependencies on, and there are no examples to build), and `--bin` builds and
        // copies out only `lmsoftmax-mpi`: the `lmsoftmax` binary the other tests run is left as it is.
        let mut features = vec!["lmsoftmax/mpi"];
        for (on, feature) in [
            (cfg!(feature = "wgpu"), "lmsoftmax/wgpu"),
            (cfg!(feature = "cuda"), "lmsoftmax/cuda"),
            (cfg!(feature = "rocm"), "lmsoftmax/rocm"),
        ] {
            if on {
                features.push(feature);
            }
        }
        let mut cargo = Command::new(env!("CARGO"));
        cargo
            .args([
                "build",
                "--workspace",
                "--examples",
                "--bin",
                "lmsoftmax-mpi",
            ])
            .args(["--features", &features.join(",")])
            .current_dir(env!("CARGO_MANIFEST_DIR"));
        if dir.ends_with("release") {
            cargo.arg("--release");
        }
        let out = cargo.output().map_err(|e| e.to_string())?;
        if !out.status.success() {
            return Err(String::from_utf8_lossy(&out.stderr).into_owned());
        }
        Ok(dir.join("lmsoftmax-mpi"))
    });
    match built {
        Ok(path) => Some(path.clone()),
        Err(e) => panic!("building lmsoftmax-mpi with the mpi feature failed:\n{e}"),
    }
}

/// `mpirun -np N` over loopback, allowed as root (CI runs as root).
fn mpirun(bin: &Path, ranks: usize) -> Command {
    let mut c = Command::new("mpirun");
    c.args(["-np", &ranks.to_string(), "--oversubscribe"])
        .args([
            "--mca",
            "btl",
            "self,tcp",
            "--mca",
            "btl_tcp_if_include",
            "lo",
        ])
        .args(["--mca", "oob_tcp_if_include", "lo"])
        .env("OMPI_ALLOW_RUN_AS_ROOT", "1")
        .env("OMPI_ALLOW_RUN_AS_ROOT_CONFIRM", "1")
        .env("OMPI_MCA_rmaps_base_oversubscribe", "1")
        .env("RAYON_NUM_THREADS", "1")
        .arg(bin);
    c
}

/// `args` (then `extra`) on 2 ranks, which must succeed; its output.
fn two_ranks_ok(bin: &Path, args: Vec<String>, extra: &[&str]) -> Output {
    let res = mpirun(bin, 2).args(args).args(extra).output().unwrap();
    assert_ok(&res);
    res
}

/// `args` (then `extra`) on 2 ranks, started in the background, rank 1 pausing `ms` milliseconds
/// at `phase` (the phase hook of `train/phases.rs`).
fn rank_one_paused(
    bin: &Path,
    args: Vec<String>,
    extra: &[&str],
    phase: &str,
    ms: u64,
) -> std::process::Child {
    mpirun(bin, 2)
        .args(args)
        .args(extra)
        .env("LMSOFTMAX_TEST_PHASE_PAUSE_MS", ms.to_string())
        .env("LMSOFTMAX_TEST_PHASE_PAUSE_AT", phase)
        .env("LMSOFTMAX_TEST_PHASE_PAUSE_RANK", "1")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// A tiny run's flags: [`super::TINY_RUN`] with `arch`, the large-margin loss, global batch 64,
/// `epochs` epochs, one data worker.
fn tiny(arch: &str, epochs: usize, out: &Path) -> Vec<String> {
    let mut v: Vec<String> = super::TINY_RUN.iter().map(|s| s.to_string()).collect();
    let at = v
        .iter()
        .position(|a| a == "--arch")
        .expect("TINY_RUN names a network")
        + 1;
    v[at] = arch.into();
    for flag in [
        "--config-name",
        "layer13_largemargin",
        "--batch-size",
        "64",
        "--workers",
        "1",
        "--epochs",
        &epochs.to_string(),
        "--out-dir",
        &out.display().to_string(),
    ] {
        v.push(flag.into());
    }
    v
}

/// Every trainable value of a run's last checkpoint, flattened.
fn parameters(run: &Path) -> Vec<f32> {
    use burn::module::{Module, ModuleVisitor, Param};
    use burn::tensor::Tensor;
    let path = run.join("checkpoint-last.ckpt");
    let parts = lmsoftmax::train::checkpoint::read(&path).unwrap();
    let state = lmsoftmax::train::state::read_state(&parts, &path).unwrap();
    let shape = state.shape.unwrap();
    let device = burn::tensor::Device::flex();
    let model = lmsoftmax::train::model::Classifier::build(
        &state.arch,
        shape.channels,
        shape.classes,
        state.width,
        &state.config.loss,
        &device,
    )
    .unwrap()
    .load_record_bytes(parts.model, &path)
    .unwrap();
    struct All(Vec<f32>);
    impl ModuleVisitor for All {
        fn visit_float<const D: usize>(&mut self, p: &Param<Tensor<D>>) {
            self.0
                .extend(p.val().into_data().try_into_vec::<f32>().unwrap());
        }
    }
    let mut all = All(Vec::new());
    model.visit(&mut all);
    all.0
}

fn close(a: &[f64], b: &[f64], rel: f64) -> bool {
    a.len() == b.len()
        && a.iter()
            .zip(b)
            .all(|(x, y)| (x - y).abs() <= rel * (1.0 + x.abs().max(y.abs())))
}

#[test]
fn two_ranks_train_as_one_process_with_the_same_global_batch() {
    let Some(bin) = mpi_binary("two_ranks_train_as_one_process_with_the_same_global_batch") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let (one, two) = (dir.path().join("one"), dir.path().join("two"));
    // small_cnn_nobn: no BatchNorm, so a rank's half batch sees what the whole batch sees
    let res = Command::new(&bin)
        .args(tiny("small_cnn_nobn", 2, &one))
        .output()
        .unwrap();
    assert_ok(&res);
    let res = two_ranks_ok(&bin, tiny("small_cnn_nobn", 2, &two), &[]);
    let stderr = String::from_utf8_lossy(&res.stderr);
    assert!(
        stderr.contains("2 ranks (MPI), 32 images a step each"),
        "{stderr}"
    );
    // the loss curve (the large-margin loss: its regulariser's mean is over the global batch)
    // and the test metrics, to float tolerance
    for epoch in 1..=2 {
        let (a, b) = (metrics_row(&one, epoch), metrics_row(&two, epoch));
        // every column but the two timings
        assert!(
            close(&a[..12], &b[..12], 1e-5),
            "epoch {epoch}:\n{a:?}\n{b:?}"
        );
    }
    // the parameters after 8 steps
    let (p1, p2) = (parameters(&one), parameters(&two));
    assert_eq!(p1.len(), p2.len());
    let worst = p1
        .iter()
        .zip(&p2)
        .map(|(x, y)| (x - y).abs() / (1.0 + x.abs()))
        .fold(0f32, f32::max);
    assert!(worst < 1e-4, "parameters differ by {worst}");
    // rank 0 alone wrote the run folder, and recorded the ranks
    let meta = std::fs::read_to_string(two.join("metrics.csv")).unwrap();
    assert_eq!(meta.lines().count(), 3);
    let parts = lmsoftmax::train::checkpoint::read(&two.join("checkpoint-last.ckpt")).unwrap();
    let state =
        lmsoftmax::train::state::read_state(&parts, &two.join("checkpoint-last.ckpt")).unwrap();
    assert_eq!(state.ranks, Some(2));
    // with BatchNorm, each rank normalises with its own half batch (as DDP): another run,
    // but a deterministic one
    let (bn_a, bn_b) = (dir.path().join("bn-a"), dir.path().join("bn-b"));
    for out in [&bn_a, &bn_b] {
        two_ranks_ok(&bin, tiny("small_cnn", 1, out), &[]);
    }
    assert_eq!(
        metrics_without_timings(&bn_a),
        metrics_without_timings(&bn_b)
    );
}

#[test]
fn a_resumed_two_rank_run_is_the_uninterrupted_one_bit_for_bit() {
    let Some(bin) = mpi_binary("a_resumed_two_rank_run_is_the_uninterrupted_one_bit_for_bit")
    else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let (whole, parts) = (dir.path().join("whole"), dir.path().join("parts"));
    two_ranks_ok(&bin, tiny("small_cnn", 2, &whole), &[]);
    two_ranks_ok(&bin, tiny("small_cnn", 2, &parts), &["--stop-after", "1"]);
    two_ranks_ok(&bin, tiny("small_cnn", 2, &parts), &["--resume"]);
    assert_same_run(&parts, &whole);
    // a resume with another number of ranks is refused, naming both
    let res = Command::new(&bin)
        .args(tiny("small_cnn", 3, &parts))
        .arg("--resume")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&res.stderr);
    assert_eq!(res.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("ranks: checkpoint 2, now 1"), "{stderr}");
}

/// The pids of the ranks of a run whose `--out-dir` is `out`, with each one's rank.
fn rank_pids(out: &Path) -> Vec<(u32, usize)> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
        let cmdline = String::from_utf8_lossy(&cmdline);
        if !cmdline.contains("lmsoftmax-mpi") || !cmdline.contains(&*out.to_string_lossy()) {
            continue;
        }
        let env = std::fs::read(format!("/proc/{pid}/environ")).unwrap_or_default();
        let rank = String::from_utf8_lossy(&env)
            .split('\0')
            .find_map(|v| v.strip_prefix("OMPI_COMM_WORLD_RANK=")?.parse().ok());
        if let Some(rank) = rank {
            found.push((pid, rank));
        }
    }
    found
}

/// Waits (up to `limit`) for `child` to exit; its output.
fn wait_for(mut child: std::process::Child, limit: Duration) -> (Output, Duration) {
    let start = Instant::now();
    loop {
        if child.try_wait().unwrap().is_some() {
            return (child.wait_with_output().unwrap(), start.elapsed());
        }
        if start.elapsed() > limit {
            let _ = child.kill();
            panic!("the job did not end within {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn a_killed_rank_ends_the_job_and_a_two_rank_resume_finishes_the_same_run() {
    let Some(bin) =
        mpi_binary("a_killed_rank_ends_the_job_and_a_two_rank_resume_finishes_the_same_run")
    else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let (whole, killed) = (dir.path().join("whole"), dir.path().join("killed"));
    two_ranks_ok(&bin, tiny("small_cnn", 2, &whole), &[]);
    // rank 1 pauses at epoch 2's second step, with epoch 1's checkpoint written; then it is
    // killed
    let child = rank_one_paused(&bin, tiny("small_cnn", 2, &killed), &[], "step 2.2", 60_000);
    let start = Instant::now();
    let rank1 = loop {
        let ranks = rank_pids(&killed);
        let last = killed.join("checkpoint-last.ckpt");
        if let Some(&(pid, _)) = ranks.iter().find(|(_, r)| *r == 1)
            && last.is_file()
            && start.elapsed() > Duration::from_secs(1)
        {
            break pid;
        }
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "the run did not get to epoch 2"
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    // wait until rank 1 sits at the pause (epoch 2 has started on rank 0 as well)
    std::thread::sleep(Duration::from_millis(1500));
    unsafe { libc::kill(rank1 as i32, libc::SIGKILL) };
    let (out, took) = wait_for(child, Duration::from_secs(30));
    assert!(!out.status.success(), "the job went on without rank 1");
    assert!(took < Duration::from_secs(30), "{took:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("signal 9") || stderr.contains("Killed") || stderr.contains("killed"),
        "mpirun names the killed rank: {stderr}"
    );
    // epoch 1's checkpoint is intact, and a 2-rank resume finishes the run as the whole one
    lmsoftmax::train::checkpoint::read(&killed.join("checkpoint-last.ckpt")).unwrap();
    two_ranks_ok(&bin, tiny("small_cnn", 2, &killed), &["--resume"]);
    assert_same_run(&killed, &whole);
}

#[test]
fn a_stalled_rank_is_caught_by_the_watchdog() {
    let Some(bin) = mpi_binary("a_stalled_rank_is_caught_by_the_watchdog") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let child = rank_one_paused(
        &bin,
        tiny("small_cnn", 1, &dir.path().join("stalled")),
        &["--collective-timeout", "3"],
        "step 1.2",
        120_000,
    );
    let (out, took) = wait_for(child, Duration::from_secs(60));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(took < Duration::from_secs(40), "{took:?}: {stderr}");
    assert!(
        stderr.contains("rank 0: the all-reduce of the gradients")
            && stderr.contains("at epoch 1 step 2 waited more than 3 s"),
        "{stderr}"
    );
}

#[test]
fn the_official_flags_are_checked_against_mpi_and_one_process_needs_no_mpirun() {
    let Some(bin) =
        mpi_binary("the_official_flags_are_checked_against_mpi_and_one_process_needs_no_mpirun")
    else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    // a batch that does not split over the ranks
    let mut odd = tiny("small_cnn", 1, &dir.path().join("odd"));
    let at = odd.iter().position(|a| a == "--batch-size").unwrap() + 1;
    odd[at] = "63".into();
    let res = mpirun(&bin, 2).args(&odd).output().unwrap();
    let stderr = String::from_utf8_lossy(&res.stderr);
    assert!(!res.status.success());
    assert!(
        stderr.contains("batch size 63 does not split evenly over 2 ranks"),
        "{stderr}"
    );
    for (extra, want) in [
        (
            vec!["--world-size", "3"],
            "--world-size 3 disagrees with MPI: mpirun started 2 ranks",
        ),
        (
            vec!["--world-size", "2", "--rank", "1"],
            "--rank 1 disagrees with MPI: this process is rank 0",
        ),
    ] {
        let res = mpirun(&bin, 2)
            .args(tiny("small_cnn", 1, &dir.path().join("x")))
            .args(&extra)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&res.stderr);
        assert!(!res.status.success(), "{extra:?}");
        assert!(stderr.contains(want), "{extra:?}: {stderr}");
    }
    // the official one-node-many-ranks flags are what MPI says
    let res = mpirun(&bin, 2)
        .args(tiny("small_cnn", 1, &dir.path().join("ok")))
        .args([
            "--multiprocessing-distributed",
            "--world-size",
            "1",
            "--rank",
            "0",
        ])
        .args([
            "--dist-url",
            "tcp://127.0.0.1:23456",
            "--dist-backend",
            "nccl",
        ])
        .output()
        .unwrap();
    if cfg!(any(feature = "wgpu", feature = "cuda", feature = "rocm")) && !res.status.success() {
        // In a binary with a GPU backend, one process per device means GPUs: rank r takes its
        // machine's GPU r, and a machine with one GPU (or lavapipe alone) has no GPU 1.
        let stderr = String::from_utf8_lossy(&res.stderr);
        assert!(
            stderr.contains("rank 1: --device") && stderr.contains(":1:"),
            "{stderr}"
        );
    } else {
        assert_ok(&res);
    }
    // the MPI build runs as one process without mpirun, and says how to launch more
    let res = Command::new(&bin)
        .args(tiny("small_cnn", 1, &dir.path().join("single")))
        .output()
        .unwrap();
    assert_ok(&res);
    let res = Command::new(&bin)
        .args(tiny("small_cnn", 1, &dir.path().join("y")))
        .args(["--world-size", "2"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&res.stderr);
    assert_eq!(res.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("mpirun -np 2"), "{stderr}");
}
