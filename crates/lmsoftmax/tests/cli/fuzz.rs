//! The command's own parsers fuzzed with `lmsoftmax-fuzz` (the data crate fuzzes the dataset
//! formats): the training config TOML, the checkpoint container and what it holds (run state,
//! model and optimizer records), and a run folder as `report` reads it. Mutations of real files
//! from a real run, and random bytes: an error, or a value that holds together; never a panic.
//! Regression corpus: `tests/fuzz-corpus/<target>/`; budgets: `scripts/fuzz.sh`.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use burn::tensor::Device;
use lmsoftmax::run_folder::RunFolder;
use lmsoftmax::train::checkpoint::{self, CheckpointParts};
use lmsoftmax::train::run::newest_intact_checkpoint;
use lmsoftmax::train::state::{fresh, read_state, restore_read};
use lmsoftmax::train::{TrainConfig, TrainOptions};
use lmsoftmax_data::{Dataset, DatasetName, OpenOptions, SyntheticSpec, open_dataset};
use lmsoftmax_fuzz::{Budget, fuzz};

/// Generated cases per target in the test suite.
const SUITE_CASES: u64 = 128;

fn corpus(target: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fuzz-corpus")
        .join(target)
}

fn data() -> Dataset {
    let options = OpenOptions {
        synthetic: SyntheticSpec {
            train: 64,
            test: 32,
            seed: 0,
        },
        ..Default::default()
    };
    open_dataset(DatasetName::Synthetic, None, &options).unwrap()
}

fn options(out: &Path) -> TrainOptions {
    let mut config = TrainConfig::builtin("layer13_largemargin")
        .unwrap()
        .with_epochs(2);
    config.batch_size = 32;
    let mut opts = TrainOptions::new("synthetic", "small_cnn", config, out);
    opts.width = 0.25;
    opts.quiet = true;
    opts.print_freq = 0;
    opts.curves_file = None;
    opts.workers = 1;
    opts.stop_after = Some(1);
    opts
}

/// A real run folder after one epoch (run.json, metrics, margins, checkpoints), made once.
fn real_run() -> &'static Path {
    static RUN: OnceLock<tempfile::TempDir> = OnceLock::new();
    RUN.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        lmsoftmax::train::train(&options(dir.path()), &data()).unwrap();
        dir
    })
    .path()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// The shipped configs, and each with every number replaced by values at and past the edges of
/// its range: the seeds reach every range check.
fn config_seeds() -> Vec<Vec<u8>> {
    const EDGES: [&str; 9] = [
        "0",
        "-1",
        "nan",
        "inf",
        "-inf",
        "1e400",
        "18446744073709551616",
        "0.999999",
        "\"3\"",
    ];
    let mut seeds = Vec::new();
    for (_, text) in lmsoftmax::train::config::BUILTIN {
        seeds.push(text.as_bytes().to_vec());
        for (i, line) in text.lines().enumerate() {
            let Some((key, value)) = line.split_once(" = ") else {
                continue;
            };
            if value.starts_with('"') {
                continue;
            }
            for edge in EDGES {
                let changed: Vec<String> = text
                    .lines()
                    .enumerate()
                    .map(|(j, l)| {
                        if i == j {
                            format!("{key} = {edge}")
                        } else {
                            l.to_string()
                        }
                    })
                    .collect();
                seeds.push(changed.join("\n").into_bytes());
            }
        }
    }
    seeds
}

/// A config that parses is valid, has a finite positive learning rate in every epoch, a loss
/// that builds for 10 classes, and reads back the same from the `config.toml` a run writes.
#[test]
fn fuzz_config_toml() {
    let device = Device::flex();
    let parsed = std::cell::Cell::new(0u64);
    fuzz(
        "config-toml",
        &corpus("config-toml"),
        config_seeds(),
        Budget::from_env(SUITE_CASES),
        |b| {
            let Ok(config) = TrainConfig::from_toml(&text(b)) else {
                return Ok(());
            };
            parsed.set(parsed.get() + 1);
            config
                .validate()
                .map_err(|e| format!("parsed but invalid: {e:#}"))?;
            for epoch in (0..config.epochs.min(1000)).chain([config.epochs - 1]) {
                let lr = config.lr(epoch);
                if !(lr.is_finite() && lr > 0.0) {
                    return Err(format!("learning rate {lr} in epoch {epoch}"));
                }
            }
            if config.loss.validate_for_classes(10).is_ok() {
                config
                    .loss
                    .init(&device)
                    .map_err(|e| format!("a valid loss does not build: {e}"))?;
            }
            let written = toml::to_string(&config).map_err(|e| e.to_string())?;
            let back = TrainConfig::from_toml(&written)
                .map_err(|e| format!("its config.toml does not read back: {e:#}\n{written}"))?;
            if back != config {
                return Err(format!(
                    "config.toml reads back as another config:\n{written}"
                ));
            }
            Ok(())
        },
    );
    println!(
        "config-toml: {} inputs parsed as a valid config",
        parsed.get()
    );
    assert!(parsed.get() > 0, "no input got past the parser");
}

/// Whole checkpoint files: the container's checks (magic, lengths, MD5) refuse every change.
#[test]
fn fuzz_checkpoint_container() {
    let real = std::fs::read(RunFolder::new(real_run()).last_checkpoint()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("c.ckpt");
    fuzz(
        "checkpoint-container",
        &corpus("checkpoint-container"),
        vec![real.clone(), real[..200].to_vec()],
        Budget::from_env(SUITE_CASES),
        |b| {
            std::fs::write(&path, b).unwrap();
            match checkpoint::read(&path) {
                Ok(_) if b != real => Err("a changed checkpoint was read as intact".into()),
                Ok(_) | Err(_) => Ok(()),
            }
        },
    );
}

/// What a valid container holds, changed: the run state (JSON), the model record or the
/// optimizer record is fuzzed and the container rewritten with a correct checksum, as a bug or
/// another version could write it. `--resume` must refuse it or load it, never panic.
#[test]
fn fuzz_checkpoint_contents() {
    let real = checkpoint::read(&RunFolder::new(real_run()).last_checkpoint()).unwrap();
    let data = data();
    let device = Device::flex().autodiff();
    let dir = tempfile::tempdir().unwrap();
    let opts = options(dir.path());
    let folder = RunFolder::new(dir.path());
    let path = folder.last_checkpoint();
    let (state, model, optimizer) = (real.state, real.model, real.optimizer);
    // which part the input replaces: chosen by the seed's first byte, so all three are reached
    let seeds = [&state, &model, &optimizer]
        .iter()
        .enumerate()
        .map(|(i, part)| [&[i as u8][..], part].concat())
        .collect();
    let loaded = std::cell::Cell::new(0u64);
    fuzz(
        "checkpoint-contents",
        &corpus("checkpoint-contents"),
        seeds,
        Budget::from_env(SUITE_CASES),
        |b| {
            let Some((&which, part)) = b.split_first() else {
                return Ok(());
            };
            let mut parts = CheckpointParts {
                state: state.clone(),
                model: model.clone(),
                optimizer: optimizer.clone(),
            };
            *[&mut parts.state, &mut parts.model, &mut parts.optimizer][which as usize % 3] =
                part.to_vec();
            checkpoint::write(&path, &parts).unwrap();
            let Ok(Some(found)) = newest_intact_checkpoint(&folder) else {
                return Ok(());
            };
            let pieces = fresh(&opts, &data, &device).map_err(|e| e.to_string())?;
            if restore_read(&found.path, found.parts, found.state, pieces).is_ok() {
                loaded.set(loaded.get() + 1);
            }
            Ok(())
        },
    );
    println!("checkpoint-contents: {} inputs loaded", loaded.get());
    assert!(loaded.get() > 0, "no input got through to the model");
    // the real parts load (so the target reaches the loading code at all)
    let parts = CheckpointParts {
        state,
        model,
        optimizer,
    };
    checkpoint::write(&path, &parts).unwrap();
    let parts = checkpoint::read(&path).unwrap();
    let saved = read_state(&parts, &path).unwrap();
    let pieces = fresh(&opts, &data, &device).unwrap();
    restore_read(&path, parts, saved, pieces).unwrap();
}

/// A run folder as `report` reads it, with `run.json`, `metrics.jsonl` or `test-margins.txt`
/// fuzzed: a clear error or a table, never a panic.
#[test]
fn fuzz_run_folder() {
    const FILES: [&str; 3] = ["run.json", "metrics.jsonl", "test-margins.txt"];
    let real = real_run();
    let originals: Vec<Vec<u8>> = FILES
        .iter()
        .map(|f| std::fs::read(real.join(f)).unwrap())
        .collect();
    let dir = tempfile::tempdir().unwrap();
    let run = dir.path().join("run");
    std::fs::create_dir(&run).unwrap();
    let seeds = originals
        .iter()
        .enumerate()
        .map(|(i, part)| [&[i as u8][..], part].concat())
        .collect();
    fuzz(
        "run-folder",
        &corpus("run-folder"),
        seeds,
        Budget::from_env(SUITE_CASES),
        |b| {
            let Some((&which, part)) = b.split_first() else {
                return Ok(());
            };
            for (i, (name, original)) in FILES.iter().zip(&originals).enumerate() {
                let bytes = if i == which as usize % 3 {
                    part
                } else {
                    original
                };
                std::fs::write(run.join(name), bytes).unwrap();
            }
            if let Ok(groups) = lmsoftmax::report::load_groups(std::slice::from_ref(&run)) {
                let _ = lmsoftmax::report::table::table_rows(&groups);
                let _ = lmsoftmax::report::seed_warnings(&groups);
                let _ = lmsoftmax::report::length_warnings(&groups);
            }
            Ok(())
        },
    );
}
