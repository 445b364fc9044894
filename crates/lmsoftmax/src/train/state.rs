//! The pieces of a run: the network, the optimizer and the run state, made fresh or restored
//! from a checkpoint (after checking that it belongs to the same run), and saved into one.

use std::path::Path;

use anyhow::{Context, Result, bail};
use burn::module::Module;
use burn::optim::decay::WeightDecayConfig;
use burn::optim::momentum::MomentumConfig;
use burn::optim::{ModuleOptimizer, OptimizerRecord, SgdConfig};
use burn::store::ModuleRecord;
use burn::tensor::{Bytes, Device};
use lmsoftmax_data::Dataset;
use lmsoftmax_models::Network;
use serde::{Deserialize, Serialize};

use super::checkpoint::{self, CheckpointParts};
use super::config::TrainConfig;
use super::options::TrainOptions;
use crate::run_folder::metrics::EpochRow;

/// Run state stored in checkpoints.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RunState {
    /// Network.
    pub arch: String,
    /// Width multiplier.
    pub width: f32,
    /// Seed.
    pub seed: u64,
    /// The configuration.
    pub config: TrainConfig,
    /// The network's input channels and classes (what `export` and `eval` need to rebuild it;
    /// absent in checkpoints of earlier versions).
    #[serde(default)]
    pub shape: Option<NetworkShape>,
    /// The finished epochs' metrics.
    pub rows: Vec<EpochRow>,
}

/// What a network is built for besides its name and width.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct NetworkShape {
    /// Input channels.
    pub channels: usize,
    /// Classes.
    pub classes: usize,
}

/// Network, optimizer and run state.
pub struct Pieces {
    /// The network (on the autodiff device).
    pub model: Network,
    /// SGD with momentum and weight decay, as PyTorch's.
    pub optim: ModuleOptimizer,
    /// What the checkpoints record.
    pub state: RunState,
}

/// A freshly initialised network (seeded with the run's seed), the optimizer, and the state of
/// a new run.
///
/// # Errors
/// An unknown network or one that does not fit the data.
pub fn fresh(opts: &TrainOptions, data: &Dataset, device: &Device) -> Result<Pieces> {
    device.seed(opts.seed);
    let [c, _, _] = data.train.output_shape();
    let classes = data.class_names.len();
    let model = lmsoftmax_models::build(&opts.arch, c, classes, opts.width, device)?;
    let optim = SgdConfig::new()
        .with_momentum(Some(
            MomentumConfig::new()
                .with_momentum(opts.config.momentum)
                .with_dampening(0.0),
        ))
        .with_weight_decay(Some(WeightDecayConfig::new(
            opts.config.weight_decay as f32,
        )))
        .init();
    let state = RunState {
        arch: opts.arch.clone(),
        width: opts.width,
        seed: opts.seed,
        config: opts.config.clone(),
        shape: Some(NetworkShape {
            channels: c,
            classes,
        }),
        rows: Vec::new(),
    };
    Ok(Pieces {
        model,
        optim,
        state,
    })
}

/// Reads a checkpoint's run state.
///
/// # Errors
/// A missing, corrupt or foreign checkpoint.
pub fn read_state(parts: &CheckpointParts, path: &Path) -> Result<RunState> {
    serde_json::from_slice(&parts.state).with_context(|| {
        format!(
            "{}: its run state cannot be read (a checkpoint of another lmsoftmax version?)",
            path.display()
        )
    })
}

/// Loads `path` into the pieces [`fresh`] made, after checking it belongs to the same run.
///
/// # Errors
/// A corrupt checkpoint, or one of another run (the differing options are named).
pub fn restore(path: &Path, opts: &TrainOptions, pieces: Pieces) -> Result<Pieces> {
    let parts = checkpoint::read(path)?;
    let mut saved = read_state(&parts, path)?;
    saved.shape = saved.shape.or(pieces.state.shape);
    if saved.arch != opts.arch
        || saved.config != opts.config
        || saved.seed != opts.seed
        || saved.width != opts.width
    {
        bail!(
            "--resume: {} was trained with arch {} width {} seed {} config '{}'; give the same options",
            path.display(),
            saved.arch,
            saved.width,
            saved.seed,
            saved.config.name
        );
    }
    let model = load_model(pieces.model, parts.model, path)?;
    let record = OptimizerRecord::from_bytes(Bytes::from_bytes_vec(parts.optimizer))
        .context("checkpoint optimizer record")?;
    Ok(Pieces {
        model,
        optim: pieces.optim.load_record(record),
        state: saved,
    })
}

/// Loads a checkpoint's model record into `model`.
///
/// # Errors
/// A record that does not fit the network.
pub fn load_model(model: Network, bytes: Vec<u8>, path: &Path) -> Result<Network> {
    let record = ModuleRecord::from_bytes(Bytes::from_bytes_vec(bytes))
        .context("checkpoint model record")?;
    model
        .try_load_record(record)
        .with_context(|| format!("loading the model from {}", path.display()))
}

/// Saves the pieces into `path` (atomically).
///
/// # Errors
/// I/O errors (a full disk is named as such).
pub fn save(path: &Path, pieces: &Pieces) -> Result<()> {
    let parts = CheckpointParts {
        state: serde_json::to_vec(&pieces.state)?,
        model: pieces
            .model
            .clone()
            .into_record()
            .into_bytes()
            .context("serialising the model")?
            .to_vec(),
        optimizer: pieces
            .optim
            .to_record()
            .into_bytes()
            .context("serialising the optimizer")?
            .to_vec(),
    };
    checkpoint::write(path, &parts)
}
