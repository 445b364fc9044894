//! One training step on one device: forward, the loss, backward, and the step's statistics
//! (loss, cross-entropy and regulariser sums, top-1/top-5 error counts) gathered on the device
//! into one small tensor and read to the host once.

use burn::optim::GradientsParams;
use burn::tensor::{Device, Int, Tensor};
use lmsoftmax_data::HostBatch;
use lmsoftmax_loss::{LossError, row_diagnostics};

use super::model::{Classifier, Objective};

/// Sums over a batch (or a shard of one), on the host.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct StepStats {
    /// Rows.
    pub rows: usize,
    /// Sum over rows of the loss (the loss's mean times the rows).
    pub loss_sum: f64,
    /// Sum over rows of the cross-entropy.
    pub ce_sum: f64,
    /// Sum over rows of the regulariser `R` (unweighted).
    pub reg_sum: f64,
    /// Rows whose target is not the top-1 prediction (ties count against).
    pub wrong_top1: usize,
    /// Rows whose target is not among the top-5.
    pub wrong_top5: usize,
}

impl std::ops::AddAssign for StepStats {
    fn add_assign(&mut self, o: Self) {
        self.rows += o.rows;
        self.loss_sum += o.loss_sum;
        self.ce_sum += o.ce_sum;
        self.reg_sum += o.reg_sum;
        self.wrong_top1 += o.wrong_top1;
        self.wrong_top5 += o.wrong_top5;
    }
}

/// What one training step (or one replica's shard of it) produced.
pub struct StepOutput {
    /// The loss of the batch (the mean over rows; for a shard, scaled by its share of the batch,
    /// so that the shards' losses sum to the batch's).
    pub loss: f64,
    /// The batch's statistics.
    pub stats: StepStats,
    /// The gradients of the loss (on the main device once gathered).
    pub grads: GradientsParams,
}

/// Why a step failed: the loss's own error (so that callers can name the epoch and batch of a
/// divergence) or anything else.
#[derive(Debug)]
pub enum StepError {
    /// The loss refused the batch (non-finite logits, bad targets).
    Loss(LossError),
    /// A worker failed (its panic message) or another error.
    Other(anyhow::Error),
}

impl std::fmt::Display for StepError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Loss(e) => write!(f, "{e}"),
            Self::Other(e) => write!(f, "{e:#}"),
        }
    }
}

impl std::error::Error for StepError {}

/// `[wrong top-1, wrong top-5]` as a float tensor on the logits' device: the rank of the target
/// is the number of logits strictly above it (ties count for the target).
///
/// ```
/// use burn::tensor::{Device, Int, Tensor};
/// let d = Device::flex();
/// let z = Tensor::<2>::from_floats([[3.0, 1.0, 2.0], [0.0, 5.0, 1.0]], &d);
/// let y = Tensor::<1, Int>::from_ints([0, 2], &d);
/// let counts: Vec<f32> = lmsoftmax::train::step::wrong_counts(&z, &y).into_data().to_vec().unwrap();
/// assert_eq!(counts, vec![1.0, 0.0]);
/// ```
pub fn wrong_counts(logits: &Tensor<2>, y: &Tensor<1, Int>) -> Tensor<1> {
    let [b, _] = logits.dims();
    let target = logits.clone().gather(1, y.clone().reshape([b, 1]));
    let rank = logits.clone().greater(target).int().sum_dim(1).reshape([b]);
    let top1 = rank.clone().greater_equal_elem(1).int().sum().float();
    let top5 = rank.greater_equal_elem(5).int().sum().float();
    Tensor::cat(vec![top1, top5], 0)
}

/// Forward, loss scaled by `scale`, backward, on the replica's device.
///
/// # Errors
/// The loss's error (bad targets, non-finite logits).
pub fn shard_step(
    model: &Classifier,
    loss: &Objective,
    shard: HostBatch,
    scale: f64,
    device: &Device,
) -> Result<StepOutput, StepError> {
    let rows = shard.labels.len();
    let (x, y) = shard.into_tensors(device);
    let (value, logits) = loss
        .loss_and_logits(model, x, y.clone())
        .map_err(StepError::Loss)?;
    let value = if scale == 1.0 {
        value
    } else {
        value.mul_scalar(scale)
    };
    let detached = logits.detach();
    let diag = row_diagnostics(detached.clone(), y.clone()).map_err(StepError::Loss)?;
    let stats = Tensor::cat(
        vec![
            value.clone().detach().reshape([1]),
            diag.ce.sum().reshape([1]),
            diag.reg.sum().reshape([1]),
            wrong_counts(&detached, &y),
        ],
        0,
    );
    let host: Vec<f32> = stats
        .into_data()
        .convert::<f32>()
        .try_to_vec()
        .map_err(|e| StepError::Other(anyhow::anyhow!("reading the step's statistics: {e:?}")))?;
    let [loss_value, ce_sum, reg_sum, top1, top5] = host[..] else {
        return Err(StepError::Other(anyhow::anyhow!(
            "the step's statistics have {} values, not 5",
            host.len()
        )));
    };
    let loss_value = loss_value as f64;
    let grads = GradientsParams::from_grads(value.backward(), model);
    Ok(StepOutput {
        loss: loss_value,
        stats: StepStats {
            rows,
            loss_sum: loss_value / scale * rows as f64,
            ce_sum: ce_sum as f64,
            reg_sum: reg_sum as f64,
            wrong_top1: top1 as usize,
            wrong_top5: top5 as usize,
        },
        grads,
    })
}
