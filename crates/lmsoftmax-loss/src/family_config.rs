//! The configurations of the rest of the logit-level family (FAMILY.md, section 1): label
//! smoothing, focal, Poly-1 and the confidence penalty. Each holds its own parameter with the
//! paper's default and the options every logit-level loss shares; `init` (in `logit_loss.rs`)
//! validates it and builds a [`LogitLoss`](crate::LogitLoss).

use burn::config::Config;

use crate::config::{LossImplementation, finite, validate_weight};
use crate::error::ConfigError;
use crate::reduction::LossReduction;

/// Label smoothing (Szegedy et al., 2016), PyTorch's formula:
/// `l = (1 - eps) ce + eps mean_c(-log p_c)`. With class weights, PyTorch's semantics (the
/// smoothing term weighted per class); FAMILY.md leaves that case undefined.
///
/// ```
/// use lmsoftmax_loss::LabelSmoothingLossConfig;
/// let loss = LabelSmoothingLossConfig::new().init(&burn::tensor::Device::flex())?;
/// assert_eq!(loss.kind_name(), "label-smoothing");
/// # Ok::<(), lmsoftmax_loss::ConfigError>(())
/// ```
#[derive(Config, Debug, PartialEq)]
pub struct LabelSmoothingLossConfig {
    /// `eps`, in `[0, 1]` (default 0.1).
    #[config(default = 0.1)]
    pub smoothing: f64,
    /// Class weights, one per class (default none).
    #[config(default = "None")]
    pub weight: Option<Vec<f64>>,
    /// Target value whose rows contribute nothing (default none).
    #[config(default = "None")]
    pub ignore_index: Option<i64>,
    /// Reduction over rows (default mean).
    #[config(default = "LossReduction::Mean")]
    pub reduction: LossReduction,
    /// Implementation choice (default: the fused kernel where it runs).
    #[config(default = "LossImplementation::Auto")]
    pub implementation: LossImplementation,
    /// Check the logits for NaN and infinity and report the row (default true).
    #[config(default = true)]
    pub check_finite: bool,
}

impl LabelSmoothingLossConfig {
    /// Checks every field; `init` calls it.
    pub fn validate(&self) -> Result<(), ConfigError> {
        finite("smoothing", self.smoothing)?;
        if !(0.0..=1.0).contains(&self.smoothing) {
            return Err(ConfigError::OutOfRange {
                field: "smoothing",
                value: self.smoothing,
                range: "in [0, 1]",
            });
        }
        validate_weight(self.weight.as_deref())
    }
}

/// Focal loss (Lin et al., ICCV 2017): `l = -(1 - p_t)^gamma log p_t`; focal's per-class
/// `alpha` is the class weight.
///
/// ```
/// use lmsoftmax_loss::FocalLossConfig;
/// let err = FocalLossConfig::new().with_gamma(-1.0).init(&burn::tensor::Device::flex()).unwrap_err();
/// assert_eq!(err.to_string(), "gamma must be >= 0, got -1");
/// ```
#[derive(Config, Debug, PartialEq)]
pub struct FocalLossConfig {
    /// The focusing exponent `gamma >= 0` (default 2; 0 is the cross-entropy).
    #[config(default = 2.0)]
    pub gamma: f64,
    /// Class weights (`alpha`), one per class (default none).
    #[config(default = "None")]
    pub weight: Option<Vec<f64>>,
    /// Target value whose rows contribute nothing (default none).
    #[config(default = "None")]
    pub ignore_index: Option<i64>,
    /// Reduction over rows (default mean).
    #[config(default = "LossReduction::Mean")]
    pub reduction: LossReduction,
    /// Implementation choice (default: the fused kernel where it runs).
    #[config(default = "LossImplementation::Auto")]
    pub implementation: LossImplementation,
    /// Check the logits for NaN and infinity and report the row (default true).
    #[config(default = true)]
    pub check_finite: bool,
}

impl FocalLossConfig {
    /// Checks every field; `init` calls it.
    pub fn validate(&self) -> Result<(), ConfigError> {
        non_negative("gamma", self.gamma)?;
        validate_weight(self.weight.as_deref())
    }
}

/// Poly-1 loss (Leng et al., ICLR 2022): `l = -log p_t + epsilon (1 - p_t)`.
///
/// ```
/// use lmsoftmax_loss::PolyLossConfig;
/// assert_eq!(PolyLossConfig::new().epsilon, 1.0);
/// ```
#[derive(Config, Debug, PartialEq)]
pub struct PolyLossConfig {
    /// The weight `epsilon` of `1 - p_t`, `>= -1` so that the loss stays a loss (default 1).
    #[config(default = 1.0)]
    pub epsilon: f64,
    /// Class weights, one per class (default none).
    #[config(default = "None")]
    pub weight: Option<Vec<f64>>,
    /// Target value whose rows contribute nothing (default none).
    #[config(default = "None")]
    pub ignore_index: Option<i64>,
    /// Reduction over rows (default mean).
    #[config(default = "LossReduction::Mean")]
    pub reduction: LossReduction,
    /// Implementation choice (default: the fused kernel where it runs).
    #[config(default = "LossImplementation::Auto")]
    pub implementation: LossImplementation,
    /// Check the logits for NaN and infinity and report the row (default true).
    #[config(default = true)]
    pub check_finite: bool,
}

impl PolyLossConfig {
    /// Checks every field; `init` calls it.
    pub fn validate(&self) -> Result<(), ConfigError> {
        finite("epsilon", self.epsilon)?;
        if self.epsilon < -1.0 {
            return Err(ConfigError::OutOfRange {
                field: "epsilon",
                value: self.epsilon,
                range: ">= -1 (below, the loss falls as the target probability rises)",
            });
        }
        validate_weight(self.weight.as_deref())
    }
}

/// Confidence penalty (Pereyra et al., 2017): `l = -log p_t - beta H(p)`,
/// `H(p) = -sum_c p_c log p_c`.
///
/// ```
/// use lmsoftmax_loss::ConfidencePenaltyLossConfig;
/// assert_eq!(ConfidencePenaltyLossConfig::new().beta, 0.1);
/// ```
#[derive(Config, Debug, PartialEq)]
pub struct ConfidencePenaltyLossConfig {
    /// The weight `beta >= 0` of the entropy (default 0.1).
    #[config(default = 0.1)]
    pub beta: f64,
    /// Class weights, one per class (default none).
    #[config(default = "None")]
    pub weight: Option<Vec<f64>>,
    /// Target value whose rows contribute nothing (default none).
    #[config(default = "None")]
    pub ignore_index: Option<i64>,
    /// Reduction over rows (default mean).
    #[config(default = "LossReduction::Mean")]
    pub reduction: LossReduction,
    /// Implementation choice (default: the fused kernel where it runs).
    #[config(default = "LossImplementation::Auto")]
    pub implementation: LossImplementation,
    /// Check the logits for NaN and infinity and report the row (default true).
    #[config(default = true)]
    pub check_finite: bool,
}

impl ConfidencePenaltyLossConfig {
    /// Checks every field; `init` calls it.
    pub fn validate(&self) -> Result<(), ConfigError> {
        non_negative("beta", self.beta)?;
        validate_weight(self.weight.as_deref())
    }
}

fn non_negative(field: &'static str, value: f64) -> Result<(), ConfigError> {
    finite(field, value)?;
    if value < 0.0 {
        return Err(ConfigError::OutOfRange {
            field,
            value,
            range: ">= 0",
        });
    }
    Ok(())
}
