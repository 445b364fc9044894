//! Example: training with Burn's own `burn-train` [`Learner`] on the large-margin in softmax
//! loss of `lmsoftmax-loss`.
//!
//! What a Burn user adds to use our loss: the loss as a field of the model, built from
//! [`LargeMarginInSoftmaxLossConfig`](lmsoftmax_loss::LargeMarginInSoftmaxLossConfig), and one
//! line in the step the learner calls, in `model.rs`:
//!
//! ```text
//! let loss = self.loss.forward(logits.clone(), batch.targets.clone());
//! ```
//!
//! Everything else is stock burn-train 0.22: a
//! [`ClassificationOutput`](burn::train::ClassificationOutput) carrying that loss,
//! [`TrainStep`](burn::train::TrainStep) and [`InferenceStep`](burn::train::InferenceStep),
//! [`SupervisedTraining`] with the loss and accuracy metrics, Adam, and the flex CPU backend
//! with autodiff. The data are five Gaussian blobs in the plane, generated here
//! (deterministic), so the run needs no download.
//!
//! It trains a small MLP for three epochs, prints the learner's per-epoch metrics, and exits
//! with status 1 if the last epoch's mean training loss is not at least 5% below the first's,
//! or if the final validation accuracy is more than 10 points below that of the ideal
//! classifier of the blobs (each point to the nearest class centre): CI runs it as a check.
//!
//! ```text
//! cargo run -p lmsoftmax-example-burn-learner [ARTIFACT_DIR]
//! ```
//!
//! `ARTIFACT_DIR` (new or empty) keeps the learner's logs; by default they go to a fresh
//! folder in the system's temporary directory that is removed afterwards.

mod data;
mod history;
mod model;
mod quiet;

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use anyhow::{Context, bail};
use burn::data::dataloader::DataLoaderBuilder;
use burn::data::dataset::InMemDataset;
use burn::optim::AdamConfig;
use burn::tensor::Device;
use burn::train::metric::{AccuracyMetric, LossMetric};
use burn::train::{Learner, SupervisedTraining};

use crate::data::{BlobBatcher, CLASSES, FEATURES, blobs, nearest_centre_accuracy};
use crate::history::{Targets, failures, print_table, read_history};
use crate::model::MlpConfig;
use crate::quiet::QuietRenderer;

const EPOCHS: usize = 3;
const TRAIN_SAMPLES: usize = 2000;
const VALID_SAMPLES: usize = 500;
const BATCH_SIZE: usize = 50;
const LEARNING_RATE: f64 = 1e-2;
const SEED: u64 = 42;
/// The training loss must fall by this fraction from the first epoch to the last (it falls by
/// about 60%; a network that does not learn stays flat to the last digit).
const MIN_LOSS_DROP: f64 = 0.05;
/// How many accuracy points (percent) below the ideal classifier the network may end (three
/// epochs get within a point of it; a network that does not learn stays near chance, 20%).
const ACCURACY_SLACK: f64 = 10.0;

fn main() -> ExitCode {
    match run() {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::from(2)
        }
    }
}

/// Trains, prints, and says whether training did what it should.
fn run() -> anyhow::Result<bool> {
    let started = Instant::now();
    let artifacts = ArtifactDir::from_args()?;

    let device = Device::flex();
    device.seed(SEED);
    let train_set = blobs(TRAIN_SAMPLES, SEED);
    let valid_set = blobs(VALID_SAMPLES, SEED + 1);
    let reference = nearest_centre_accuracy(&valid_set);

    let train_loader = DataLoaderBuilder::new(BlobBatcher)
        .batch_size(BATCH_SIZE)
        .shuffle(SEED)
        .set_device(device.clone().autodiff())
        .build(InMemDataset::new(train_set));
    let valid_loader = DataLoaderBuilder::new(BlobBatcher)
        .batch_size(BATCH_SIZE)
        .set_device(device.clone())
        .build(InMemDataset::new(valid_set));

    let model = MlpConfig::new(FEATURES, CLASSES)
        .init(&device.clone().autodiff())
        .context("building the model and its loss")?;
    println!("loss: {}", model.loss());
    let learner = Learner::new(model, AdamConfig::new().init(), LEARNING_RATE);

    let result = SupervisedTraining::new(artifacts.path(), train_loader, valid_loader)
        .metrics((LossMetric::new(), AccuracyMetric::new()))
        .num_epochs(EPOCHS)
        .renderer(Box::new(QuietRenderer::default()))
        .launch(learner);
    if let Some(err) = result.error {
        bail!("training stopped: {err}");
    }

    let history = read_history(artifacts.path(), EPOCHS)?;
    print_table(&history);
    let last = history.last().context("no epoch was logged")?;
    println!(
        "final training loss {:.4} (epoch 1: {:.4}), training accuracy {:.2}%",
        last.train_loss, history[0].train_loss, last.train_acc
    );
    println!(
        "final validation accuracy {:.2}% (nearest class centre: {:.2}%, chance: {:.2}%)",
        last.valid_acc,
        100.0 * reference,
        100.0 / CLASSES as f64
    );
    println!("took {:.2} s", started.elapsed().as_secs_f64());

    let failed = failures(
        &history,
        Targets {
            min_loss_drop: MIN_LOSS_DROP,
            reference_acc: 100.0 * reference,
            acc_slack: ACCURACY_SLACK,
        },
    );
    for failure in &failed {
        eprintln!("FAIL: {failure}");
    }
    Ok(failed.is_empty())
}

/// Where the learner writes its logs: the folder given on the command line, which must be new
/// or empty (the logs of an earlier run would be read as this run's), or a fresh temporary
/// folder, removed on drop.
struct ArtifactDir {
    path: PathBuf,
    remove: bool,
}

impl ArtifactDir {
    fn from_args() -> anyhow::Result<Self> {
        let mut args = std::env::args_os().skip(1);
        let (path, remove) = match (args.next(), args.next()) {
            (None, _) => {
                let name = format!("lmsoftmax-example-burn-learner-{}", std::process::id());
                (std::env::temp_dir().join(name), true)
            }
            (Some(path), None) => (PathBuf::from(path), false),
            (Some(_), Some(_)) => bail!("usage: lmsoftmax-example-burn-learner [ARTIFACT_DIR]"),
        };
        if path.exists() {
            let mut entries = std::fs::read_dir(&path)
                .with_context(|| format!("reading artifact folder {}", path.display()))?;
            if entries.next().is_some() {
                bail!(
                    "artifact folder {} is not empty: give a new or empty one",
                    path.display()
                );
            }
        }
        std::fs::create_dir_all(&path)
            .with_context(|| format!("creating artifact folder {}", path.display()))?;
        Ok(Self { path, remove })
    }

    fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for ArtifactDir {
    fn drop(&mut self) {
        if self.remove {
            // A leftover folder in the temporary directory is harmless; say so and go on.
            if let Err(err) = std::fs::remove_dir_all(&self.path) {
                eprintln!("warning: could not remove {}: {err}", self.path.display());
            }
        }
    }
}
