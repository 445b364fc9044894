//! Errors of the loss: a bad configuration, or input that the loss cannot be computed on.

use thiserror::Error;

/// A configuration that [`init`](crate::LargeMarginInSoftmaxLossConfig::init) refuses, with the
/// field and the value that is wrong.
///
/// ```
/// use lmsoftmax_loss::{ConfigError, LargeMarginInSoftmaxLossConfig};
/// let device = burn::tensor::Device::flex();
/// let err = LargeMarginInSoftmaxLossConfig::new().with_reg_lambda(-1.0).init(&device).unwrap_err();
/// assert!(matches!(err, ConfigError::NegativeLambda(_)));
/// ```
#[derive(Debug, Clone, PartialEq, Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// `reg_lambda` below zero would reward non-uniform non-target probabilities.
    #[error("reg_lambda must be >= 0 (it weights a regulariser that is >= 0), got {0}")]
    NegativeLambda(f64),
    /// A hyper-parameter is NaN or infinite.
    #[error("{field} must be a finite number, got {value}")]
    NonFinite {
        /// The configuration field.
        field: &'static str,
        /// The value given.
        value: f64,
    },
    /// A hyper-parameter outside its range.
    #[error("{field} must be {range}, got {value}")]
    OutOfRange {
        /// The configuration field.
        field: &'static str,
        /// The value given.
        value: f64,
        /// The allowed range, in words (`>= 0`, `in [0, 1]`).
        range: &'static str,
    },
    /// `label_smoothing` outside `[0, 1]`.
    #[error("label_smoothing must lie in [0, 1], got {0}")]
    LabelSmoothingRange(f64),
    /// A class weight that is negative or not finite.
    #[error("class weight {index} must be finite and >= 0, got {value}")]
    BadWeight {
        /// Index of the class.
        index: usize,
        /// The weight given.
        value: f64,
    },
    /// An empty class-weight vector.
    #[error("the class-weight vector is empty: give one weight per class or none")]
    EmptyWeights,
    /// An option given to a kind of loss that does not have it.
    #[error("{option} is not an option of the {kind} loss")]
    NotAnOption {
        /// The option.
        option: &'static str,
        /// The kind of loss.
        kind: &'static str,
    },
    /// A margin head's kind where a logit-level loss is built, or the other way round.
    #[error(
        "the {kind} loss is a margin head: it takes the network's features and owns the class \
         weights (build it with LossConfig::init_head), not logits"
    )]
    MarginHead {
        /// The kind of loss.
        kind: &'static str,
    },
    /// [`init_head`](crate::LossConfig::init_head) for a logit-level kind.
    #[error(
        "the {kind} loss is not a margin head: it takes logits (build it with LossConfig::init)"
    )]
    NotAHead {
        /// The kind of loss.
        kind: &'static str,
    },
    /// A parameter name the kind of loss does not have.
    #[error("{name} is not a parameter of the {kind} loss (its parameters: {known})")]
    UnknownParameter {
        /// The name given.
        name: String,
        /// The kind of loss.
        kind: &'static str,
        /// The kind's parameters, comma-separated.
        known: String,
    },
    /// Class weights that are not one per class.
    #[error("the loss has {weights} class weights but the dataset has {classes} classes")]
    WeightCount {
        /// Weights given.
        weights: usize,
        /// Classes of the dataset.
        classes: usize,
    },
    /// The fused implementation was requested on a device or dtype it does not run on.
    #[error(
        "the fused implementation runs on the flex CPU backend (f32, f64) and, built with a GPU \
         feature, on Burn's cubecl backend (f32), but the logits are on {device}; use \
         LossImplementation::Auto or Composed"
    )]
    FusedUnavailable {
        /// The device of the logits.
        device: String,
    },
}

/// Input that the loss cannot be computed on. [`try_forward`](crate::LargeMarginInSoftmaxLoss::try_forward)
/// returns it; [`forward`](crate::LargeMarginInSoftmaxLoss::forward) panics with the same message.
///
/// ```
/// use burn::tensor::{Device, Int, Tensor};
/// use lmsoftmax_loss::{LargeMarginInSoftmaxLossConfig, LossError};
/// let device = Device::flex();
/// let loss = LargeMarginInSoftmaxLossConfig::new().init(&device).unwrap();
/// let logits = Tensor::<2>::zeros([2, 3], &device);
/// let targets = Tensor::<1, Int>::from_ints([0, 7], &device);
/// let err = loss.try_forward(logits, targets).unwrap_err();
/// assert_eq!(err, LossError::TargetOutOfRange { row: 1, target: 7, num_classes: 3 });
/// ```
#[derive(Debug, Clone, PartialEq, Error)]
#[non_exhaustive]
pub enum LossError {
    /// A target outside `[0, C)` that is not the ignore index.
    #[error(
        "target {target} at row {row} is outside [0, {num_classes}) and is not the ignore_index"
    )]
    TargetOutOfRange {
        /// Row (flattened position) of the bad target.
        row: usize,
        /// The target value.
        target: i64,
        /// Number of classes C.
        num_classes: usize,
    },
    /// The targets are not shaped like the logits without their class axis.
    #[error(
        "targets of shape {targets:?} do not match logits of shape {logits:?}: expected targets of \
         shape {expected:?} (the logits' shape without the class axis 1)"
    )]
    ShapeMismatch {
        /// Shape of the logits.
        logits: Vec<usize>,
        /// Shape of the targets.
        targets: Vec<usize>,
        /// The shape the targets should have.
        expected: Vec<usize>,
    },
    /// Fewer than two classes: the non-target distribution is empty.
    #[error("the loss needs at least 2 classes on axis 1 of the logits, got {0}")]
    TooFewClasses(usize),
    /// The class-weight vector does not have one entry per class.
    #[error("{weights} class weights were given for logits with {num_classes} classes")]
    WeightLength {
        /// Number of weights configured.
        weights: usize,
        /// Number of classes C.
        num_classes: usize,
    },
    /// A logit is NaN or infinite.
    #[error(
        "the logits of row {row} contain a non-finite value ({value}); check the network output"
    )]
    NonFiniteLogits {
        /// Row (flattened position) with the bad logit.
        row: usize,
        /// The first non-finite value of that row.
        value: f64,
    },
    /// The logits have an element type the loss does not compute in.
    #[error("the logits must be a float tensor of f16, bf16, f32 or f64, got {0}")]
    UnsupportedDType(String),
    /// The configuration was rejected (only reachable through the functional API).
    #[error(transparent)]
    Config(#[from] ConfigError),
}
