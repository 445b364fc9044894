//! The loss configurations: hyper-parameters with the official defaults and their validation.
//! The module type is built from a validated configuration by `init`, which lives with the
//! module in `loss.rs`, so that this file does not depend on the module.

use burn::config::Config;

use crate::error::ConfigError;
use crate::reduction::LossReduction;

/// Which implementation computes the loss.
///
/// ```
/// use lmsoftmax_loss::LossImplementation;
/// assert_eq!(LossImplementation::default(), LossImplementation::Auto);
/// ```
#[derive(Config, Debug, Copy, PartialEq, Eq)]
pub enum LossImplementation {
    /// The fused kernel where it runs (the flex CPU backend), the composed ops elsewhere.
    Auto,
    /// Composed Burn tensor ops: runs on every backend, autodiff derives the backward.
    Composed,
    /// The fused CPU kernel with its hand-written backward; an error on other backends.
    Fused,
}

// Burn's `Config` derive does not accept `#[default]` on a variant, so this is written out.
#[allow(clippy::derivable_impls)]
impl Default for LossImplementation {
    fn default() -> Self {
        Self::Auto
    }
}

/// Configuration to create a [large-margin in softmax loss](crate::LargeMarginInSoftmaxLoss)
/// using the [init function](LargeMarginInSoftmaxLossConfig::init).
///
/// The defaults are those of the official code (`reg_lambda = 0.3`, no `deg_logit`, mean
/// reduction). Setting `reg_lambda = 0` gives plain softmax cross-entropy; see also
/// [`SoftmaxCrossEntropyLossConfig`].
///
/// ```
/// use burn::tensor::Device;
/// use lmsoftmax_loss::{LargeMarginInSoftmaxLossConfig, LossReduction};
/// let loss = LargeMarginInSoftmaxLossConfig::new()
///     .with_reg_lambda(0.3)
///     .with_ignore_index(Some(-100))
///     .with_reduction(LossReduction::Sum)
///     .init(&Device::flex())?;
/// assert_eq!(loss.config().reg_lambda, 0.3);
/// # Ok::<(), lmsoftmax_loss::ConfigError>(())
/// ```
#[derive(Config, Debug, PartialEq)]
pub struct LargeMarginInSoftmaxLossConfig {
    /// Weight `lambda` of the regulariser (default 0.3, as the paper). Must be >= 0.
    #[config(default = 0.3)]
    pub reg_lambda: f64,
    /// `delta`, subtracted from the target logit before the cross-entropy (the paper's Table 4
    /// variant; default none, i.e. 0). The regulariser never sees the target logit.
    #[config(default = "None")]
    pub deg_logit: Option<f64>,
    /// Class weights, one per class, scaling the cross-entropy term only (default none).
    #[config(default = "None")]
    pub weight: Option<Vec<f64>>,
    /// Target value whose rows contribute nothing (default none). PyTorch uses -100.
    #[config(default = "None")]
    pub ignore_index: Option<i64>,
    /// Reduction over rows (default mean).
    #[config(default = "LossReduction::Mean")]
    pub reduction: LossReduction,
    /// Label smoothing of the cross-entropy term, PyTorch semantics (default 0).
    #[config(default = 0.0)]
    pub label_smoothing: f64,
    /// Implementation choice (default: the fused kernel where it runs).
    #[config(default = "LossImplementation::Auto")]
    pub implementation: LossImplementation,
    /// Check the logits for NaN and infinity and report the row (default true). Costs one read
    /// of the per-row losses.
    #[config(default = true)]
    pub check_finite: bool,
}

impl LargeMarginInSoftmaxLossConfig {
    /// Checks every field; `init` calls it.
    pub fn validate(&self) -> Result<(), ConfigError> {
        finite("reg_lambda", self.reg_lambda)?;
        if self.reg_lambda < 0.0 {
            return Err(ConfigError::NegativeLambda(self.reg_lambda));
        }
        if let Some(delta) = self.deg_logit {
            finite("deg_logit", delta)?;
        }
        finite("label_smoothing", self.label_smoothing)?;
        if !(0.0..=1.0).contains(&self.label_smoothing) {
            return Err(ConfigError::LabelSmoothingRange(self.label_smoothing));
        }
        validate_weight(self.weight.as_deref())
    }
}

/// Class weights: not empty, each finite and >= 0.
pub(crate) fn validate_weight(weight: Option<&[f64]>) -> Result<(), ConfigError> {
    if let Some(weight) = weight {
        if weight.is_empty() {
            return Err(ConfigError::EmptyWeights);
        }
        if let Some((index, &value)) = weight
            .iter()
            .enumerate()
            .find(|(_, w)| !w.is_finite() || **w < 0.0)
        {
            return Err(ConfigError::BadWeight { index, value });
        }
    }
    Ok(())
}

pub(crate) fn finite(field: &'static str, value: f64) -> Result<(), ConfigError> {
    if value.is_finite() {
        Ok(())
    } else {
        Err(ConfigError::NonFinite { field, value })
    }
}

/// Configuration of plain softmax cross-entropy with the same options as the large-margin loss
/// (class weights, ignore_index, label smoothing, reductions, spatial input): the baseline the
/// paper compares against. It builds a [`LargeMarginInSoftmaxLoss`](crate::LargeMarginInSoftmaxLoss) with `reg_lambda = 0`, whose
/// fused kernel then skips the regulariser entirely.
///
/// ```
/// use burn::tensor::{Device, Int, Tensor};
/// use lmsoftmax_loss::SoftmaxCrossEntropyLossConfig;
/// let device = Device::flex();
/// let ce = SoftmaxCrossEntropyLossConfig::new().init(&device)?;
/// let logits = Tensor::<2>::from_floats([[2.0, 0.0, 0.0]], &device);
/// let loss: f32 = ce.forward(logits, Tensor::<1, burn::tensor::Int>::from_ints([0], &device)).into_scalar();
/// assert!((loss - (1.0f32 + 2.0 * (-2.0f32).exp()).ln()).abs() < 1e-6);
/// # Ok::<(), lmsoftmax_loss::ConfigError>(())
/// ```
#[derive(Config, Debug, PartialEq)]
pub struct SoftmaxCrossEntropyLossConfig {
    /// Class weights, one per class (default none).
    #[config(default = "None")]
    pub weight: Option<Vec<f64>>,
    /// Target value whose rows contribute nothing (default none).
    #[config(default = "None")]
    pub ignore_index: Option<i64>,
    /// Reduction over rows (default mean).
    #[config(default = "LossReduction::Mean")]
    pub reduction: LossReduction,
    /// Label smoothing, PyTorch semantics (default 0).
    #[config(default = 0.0)]
    pub label_smoothing: f64,
    /// Implementation choice (default: the fused kernel where it runs).
    #[config(default = "LossImplementation::Auto")]
    pub implementation: LossImplementation,
}

impl SoftmaxCrossEntropyLossConfig {
    /// The equivalent large-margin configuration, with `reg_lambda = 0`.
    pub fn to_large_margin(&self) -> LargeMarginInSoftmaxLossConfig {
        LargeMarginInSoftmaxLossConfig::new()
            .with_reg_lambda(0.0)
            .with_weight(self.weight.clone())
            .with_ignore_index(self.ignore_index)
            .with_reduction(self.reduction)
            .with_label_smoothing(self.label_smoothing)
            .with_implementation(self.implementation)
    }
}
