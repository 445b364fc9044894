//! The pieces of a run: the network, the optimizer and the run state, made fresh or restored
//! from a checkpoint (after checking that it belongs to the same run), and saved into one.

use std::path::Path;

use anyhow::{Context, Result, bail};
use burn::module::Module;
use burn::optim::decay::WeightDecayConfig;
use burn::optim::momentum::MomentumConfig;
use burn::optim::{ModuleOptimizer, OptimizerRecord, SgdConfig};
use burn::tensor::{Bytes, Device};
use lmsoftmax_data::Dataset;
use lmsoftmax_kernels::autocast::Precision;
use serde::{Deserialize, Serialize};

use super::checkpoint::{self, CheckpointParts};
use super::config::TrainConfig;
use super::identity::{DataIdentity, data_identity, differences};
use super::model::{Classifier, without_panic};
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
    /// The data of the run (absent in checkpoints of earlier versions).
    #[serde(default)]
    pub data: Option<DataIdentity>,
    /// Devices the steps were split over (absent in checkpoints of earlier versions).
    #[serde(default)]
    pub devices: Option<usize>,
    /// Ranks (processes) of the run (absent in checkpoints of earlier versions: one).
    #[serde(default)]
    pub ranks: Option<usize>,
    /// Training steps taken so far (what a margin head's annealed `lambda` follows; absent in
    /// checkpoints of earlier versions, whose runs had no head).
    #[serde(default)]
    pub iterations: u64,
    /// Precision of the convolutions and linear layers of the latest epochs (a run resumed
    /// with another `--precision` continues in that one; absent in checkpoints of earlier
    /// versions, which trained in fp32). The records are f32 whatever it is.
    #[serde(default)]
    pub precision: Option<Precision>,
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
    /// The network and its margin head, if any (on the autodiff device).
    pub model: Classifier,
    /// SGD with momentum and weight decay, as PyTorch's.
    pub optim: ModuleOptimizer,
    /// What the checkpoints record.
    pub state: RunState,
}

/// The seed of the device's random stream (dropout) for `epoch`: a function of the run's seed and
/// the epoch only, so a resumed run draws the same masks as an uninterrupted one.
pub(crate) fn epoch_seed(seed: u64, epoch: usize) -> u64 {
    let mut z = seed ^ (epoch as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// A freshly initialised network (seeded with the run's seed), the optimizer, and the state of
/// a new run.
///
/// # Errors
/// An unknown network or one that does not fit the data.
pub fn fresh(opts: &TrainOptions, data: &Dataset, device: &Device) -> Result<Pieces> {
    let [c, _, _] = data.train.output_shape();
    let classes = data.class_names.len();
    let model = if lmsoftmax_kernels::flex::runs_on(device) {
        device.seed(opts.seed);
        Classifier::build(
            &opts.arch,
            c,
            classes,
            opts.width,
            &opts.config.loss,
            device,
        )?
    } else {
        // Each backend has its own random generator: on another device the weights are drawn
        // on the CPU, from the stream a flex run draws them from (its first epoch's seed, at
        // the first forward pass), and moved, so that a seed gives the same network on flex,
        // wgpu or cuda, as a PyTorch user initialises on the CPU and moves the model.
        let cpu = Device::flex().autodiff();
        cpu.seed(epoch_seed(opts.seed, opts.start_epoch));
        let lazy = Classifier::build(&opts.arch, c, classes, opts.width, &opts.config.loss, &cpu)?;
        // reading the record draws every lazy parameter, on the CPU
        let drawn = lazy.clone().into_record();
        device.seed(opts.seed);
        lazy.load_record(drawn).fork(device)
    };
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
        data: Some(data_identity(&opts.dataset, data)),
        devices: Some(opts.devices.len().max(1)),
        ranks: Some(opts.ranks.max(1)),
        iterations: 0,
        precision: Some(opts.precision),
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

/// Every field in which a checkpoint's run differs from the run being started, as
/// `field: checkpoint A, now B` (fields a checkpoint of an earlier version lacks are not
/// compared).
pub fn run_differences(saved: &RunState, now: &RunState) -> Vec<String> {
    let mut d = Vec::new();
    let mut field = |name: &str, a: String, b: String| {
        if a != b {
            d.push(format!("{name}: checkpoint {a}, now {b}"));
        }
    };
    let (a, b) = (&saved.config, &now.config);
    field("arch", saved.arch.clone(), now.arch.clone());
    field("width", saved.width.to_string(), now.width.to_string());
    field("seed", saved.seed.to_string(), now.seed.to_string());
    field("config", a.name.clone(), b.name.clone());
    field("epochs", a.epochs.to_string(), b.epochs.to_string());
    field(
        "batch size",
        a.batch_size.to_string(),
        b.batch_size.to_string(),
    );
    field("momentum", a.momentum.to_string(), b.momentum.to_string());
    field(
        "weight decay",
        a.weight_decay.to_string(),
        b.weight_decay.to_string(),
    );
    field(
        "learning rates",
        format!("{:?}", a.lr),
        format!("{:?}", b.lr),
    );
    if a.loss != b.loss {
        let (x, y) = (a.loss.label(), b.loss.label());
        if x != y {
            field("loss", x, y);
        } else {
            field("loss", format!("{:?}", a.loss), format!("{:?}", b.loss));
        }
    }
    if let (Some(x), Some(y)) = (saved.devices, now.devices) {
        field("devices", x.to_string(), y.to_string());
    }
    if let (Some(x), Some(y)) = (saved.ranks, now.ranks) {
        field("ranks", x.to_string(), y.to_string());
    }
    if let (Some(x), Some(y)) = (&saved.data, &now.data) {
        d.extend(differences(x, y));
    }
    d
}

/// What a run resumed at `now` says when its checkpoint trained at another precision (`None`
/// when they agree): the change is allowed, as the records are f32 either way.
///
/// ```
/// use lmsoftmax::train::state::precision_change;
/// use lmsoftmax_kernels::autocast::Precision;
/// assert_eq!(precision_change(None, Precision::Fp32), None);
/// let line = precision_change(None, Precision::Bf16).unwrap();
/// assert!(line.contains("fp32") && line.contains("bf16"));
/// ```
pub fn precision_change(saved: Option<Precision>, now: Precision) -> Option<String> {
    let saved = saved.unwrap_or_default();
    (saved != now).then(|| {
        format!(
            "=> the checkpoint's epochs trained in {saved}; this run continues in {now} (--precision \
             {now}): the weights and optimizer state are f32 records either way, only the \
             arithmetic of the convolutions and linear layers changes"
        )
    })
}

/// Loads `path` into the pieces [`fresh`] made, after checking it belongs to the same run.
///
/// # Errors
/// A corrupt checkpoint, or one of another run (the differing options are named).
pub fn restore(path: &Path, pieces: Pieces) -> Result<Pieces> {
    let parts = checkpoint::read(path)?;
    let saved = read_state(&parts, path)?;
    restore_read(path, parts, saved, pieces)
}

/// [`restore`] from a checkpoint already read and verified (its parts and run state).
///
/// # Errors
/// A checkpoint of another run (the differing fields are named), records that do not fit.
pub fn restore_read(
    path: &Path,
    parts: CheckpointParts,
    mut saved: RunState,
    pieces: Pieces,
) -> Result<Pieces> {
    let different = run_differences(&saved, &pieces.state);
    if !different.is_empty() {
        bail!(
            "--resume: {} belongs to another run: {}; give the same options and data, or train \
             into another --out-dir",
            path.display(),
            different.join("; ")
        );
    }
    saved.shape = saved.shape.or(pieces.state.shape);
    saved.data = saved.data.or(pieces.state.data.clone());
    saved.devices = saved.devices.or(pieces.state.devices);
    saved.ranks = saved.ranks.or(pieces.state.ranks);
    let model = pieces
        .model
        .load_record_bytes(parts.model, path)?
        .after_steps(saved.iterations);
    let record = OptimizerRecord::from_bytes(Bytes::from_bytes_vec(parts.optimizer))
        .context("checkpoint optimizer record")?;
    let optim = pieces.optim;
    // Burn panics on a record whose tensors lack their parameter ids (found by fuzzing)
    let optim = without_panic(move || optim.load_record(record)).map_err(|why| {
        anyhow::anyhow!(
            "{}: its optimizer record cannot be loaded ({why}); the checkpoint was not used",
            path.display()
        )
    })?;
    Ok(Pieces {
        model,
        optim,
        state: saved,
    })
}

/// Saves the pieces into `path` (atomically).
///
/// # Errors
/// I/O errors (a full disk is named as such).
pub fn save(path: &Path, pieces: &Pieces) -> Result<()> {
    checkpoint::write(path, &to_parts(pieces)?)
}

/// Rank 0's pieces on every rank (fresh or resumed: its parameters, optimizer state and run
/// state), as DistributedDataParallel broadcasts rank 0's initial parameters; `pieces` are this
/// rank's own, fresh.
///
/// # Errors
/// Pieces that do not fit (another run on rank 0: its differing options are named).
pub fn share_pieces(world: &crate::distributed::World, pieces: Pieces) -> Result<Pieces> {
    if world.size() == 1 {
        return Ok(pieces);
    }
    let mut bytes = if world.is_root() {
        checkpoint::encode(&to_parts(&pieces)?)
    } else {
        Vec::new()
    };
    world.broadcast(&mut bytes);
    if world.is_root() {
        return Ok(pieces);
    }
    let from = Path::new("rank 0's run");
    let parts = checkpoint::decode(&bytes, from)?;
    let state = read_state(&parts, from)?;
    restore_read(from, parts, state, pieces)
}

/// The checkpoint parts of `pieces`.
fn to_parts(pieces: &Pieces) -> Result<CheckpointParts> {
    Ok(CheckpointParts {
        state: serde_json::to_vec(&pieces.state)?,
        model: pieces.model.to_record_bytes()?,
        optimizer: pieces
            .optim
            .to_record()
            .into_bytes()
            .context("serialising the optimizer")?
            .to_vec(),
    })
}
