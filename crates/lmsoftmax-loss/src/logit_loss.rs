//! [`LogitLoss`]: one module type for every logit-level loss of the family (softmax, large-margin,
//! label smoothing, focal, Poly-1, confidence penalty), computed by the shared engine; and the
//! `init` of the family's configurations, which build it.

use burn::module::{Content, DisplaySettings, Module, ModuleDisplay};
use burn::tensor::{DType, Device, Int, Tensor};
use lmsoftmax_kernels::fused_loss::RowTerm;

use crate::config::{LargeMarginInSoftmaxLossConfig, LossImplementation};
use crate::engine::{fused_on, planned_rows, reduce};
use crate::error::{ConfigError, LossError};
use crate::family_config::{
    ConfidencePenaltyLossConfig, FocalLossConfig, LabelSmoothingLossConfig, PolyLossConfig,
};
use crate::plan::PlanOptions;
use crate::reduction::LossReduction;

/// What a [`LogitLoss`] computes: its kind's name and term, and the shared options, validated.
#[derive(Debug, Clone, PartialEq)]
struct Spec {
    kind: &'static str,
    reg_lambda: f64,
    deg_logit: f64,
    label_smoothing: f64,
    term: RowTerm,
    weight: Option<Vec<f64>>,
    ignore_index: Option<i64>,
    reduction: LossReduction,
    implementation: LossImplementation,
    check_finite: bool,
}

impl Spec {
    /// A family term with the shared options and nothing of the cross-entropy's own.
    fn family(
        kind: &'static str,
        term: RowTerm,
        weight: Option<Vec<f64>>,
        ignore_index: Option<i64>,
        reduction: LossReduction,
        implementation: LossImplementation,
        check_finite: bool,
    ) -> Self {
        Self {
            kind,
            reg_lambda: 0.0,
            deg_logit: 0.0,
            label_smoothing: 0.0,
            term,
            weight,
            ignore_index,
            reduction,
            implementation,
            check_finite,
        }
    }

    fn plan_options(&self) -> PlanOptions<'_> {
        PlanOptions {
            reg_lambda: self.reg_lambda,
            deg_logit: self.deg_logit,
            weight: self.weight.as_deref(),
            ignore_index: self.ignore_index,
            reduction: self.reduction,
            label_smoothing: self.label_smoothing,
            term: self.term,
        }
    }
}

/// A logit-level loss of the family (FAMILY.md, section 1), built by its configuration's `init`:
/// [`FocalLossConfig`], [`PolyLossConfig`], [`ConfidencePenaltyLossConfig`],
/// [`LabelSmoothingLossConfig`], or any kind through [`LossConfig`](crate::LossConfig). Every
/// kind has the same options (class weights, `ignore_index`, mean/sum/none, spatial
/// `[N, C, d...]` input, f16/bf16 computed in f32) and both implementations: the fused flex
/// kernel (one read of the logits, one `exp` per logit, a hand-written backward) and composed
/// ops on every other backend.
///
/// ```
/// use burn::tensor::{Device, Int, Tensor};
/// use lmsoftmax_loss::FocalLossConfig;
///
/// let device = Device::flex().autodiff();
/// let focal = FocalLossConfig::new().with_gamma(2.0).init(&device)?;
/// let logits = Tensor::<2>::from_floats([[3.0, 1.0, 0.0], [0.0, 0.0, 0.0]], &device).require_grad();
/// let targets = Tensor::<1, Int>::from_ints([0, 2], &device);
/// let loss = focal.forward(logits.clone(), targets);
/// // a confident right row counts little: (1 - p)^2 scales its cross-entropy
/// let value: f32 = loss.clone().into_scalar();
/// assert!(value > 0.0 && value < 3f32.ln() / 2.0);
/// let grads = loss.backward();
/// assert_eq!(logits.grad(&grads).unwrap().dims(), [2, 3]);
/// # Ok::<(), lmsoftmax_loss::ConfigError>(())
/// ```
#[derive(Module, Debug)]
#[module(custom_display)]
pub struct LogitLoss {
    #[module(skip)]
    spec: Spec,
}

impl ModuleDisplay for LogitLoss {
    fn custom_settings(&self) -> Option<DisplaySettings> {
        DisplaySettings::new()
            .with_new_line_after_attribute(false)
            .optional()
    }

    fn custom_content(&self, content: Content) -> Option<Content> {
        let s = &self.spec;
        let content = content.add("kind", &s.kind.to_string());
        let content = match s.term {
            RowTerm::CrossEntropy => content
                .add("reg_lambda", &s.reg_lambda)
                .add("deg_logit", &s.deg_logit)
                .add("label_smoothing", &s.label_smoothing),
            RowTerm::Focal { gamma } => content.add("gamma", &gamma),
            RowTerm::Poly { epsilon } => content.add("epsilon", &epsilon),
            RowTerm::ConfidencePenalty { beta } => content.add("beta", &beta),
        };
        content
            .add(
                "weight",
                &s.weight
                    .as_ref()
                    .map_or("None".to_string(), |w| format!("[{} classes]", w.len())),
            )
            .add("ignore_index", &format!("{:?}", s.ignore_index))
            .add("reduction", &format!("{:?}", s.reduction))
            .optional()
    }
}

impl LogitLoss {
    /// The large-margin (or, with `reg_lambda = 0`, softmax) loss of a validated configuration.
    pub(crate) fn from_large_margin(
        kind: &'static str,
        c: &LargeMarginInSoftmaxLossConfig,
    ) -> Self {
        Self {
            spec: Spec {
                kind,
                reg_lambda: c.reg_lambda,
                deg_logit: c.deg_logit.unwrap_or(0.0),
                label_smoothing: c.label_smoothing,
                term: RowTerm::CrossEntropy,
                weight: c.weight.clone(),
                ignore_index: c.ignore_index,
                reduction: c.reduction,
                implementation: c.implementation,
                check_finite: c.check_finite,
            },
        }
    }

    /// The kind's name, as configuration files spell it (`focal`, `large-margin`, ...).
    pub fn kind_name(&self) -> &'static str {
        self.spec.kind
    }

    /// The same loss with the check of the logits for NaN and infinity on or off (it costs one
    /// read of the per-row losses; training reads the loss back itself).
    pub fn with_check_finite(mut self, check: bool) -> Self {
        self.spec.check_finite = check;
        self
    }

    /// The same loss with another reduction.
    pub fn with_reduction(mut self, reduction: LossReduction) -> Self {
        self.spec.reduction = reduction;
        self
    }

    /// Whether this call would use the fused kernel on `device` for f32, f16 or bf16 logits
    /// (which the loss computes in f32).
    pub fn uses_fused(&self, device: &Device) -> bool {
        fused_on(self.spec.implementation, device, DType::F32).unwrap_or(false)
    }

    /// The loss of `logits` `[N, C]` or `[N, C, d1, .., dk]` against class indices `targets`
    /// `[N]` or `[N, d1, .., dk]`, reduced as configured: `[1]` for mean and sum, one value per
    /// row for none.
    ///
    /// # Panics
    /// With the message of the [`LossError`] that [`try_forward`](Self::try_forward) returns.
    pub fn forward<const D: usize, const T: usize>(
        &self,
        logits: Tensor<D>,
        targets: Tensor<T, Int>,
    ) -> Tensor<1> {
        self.try_forward(logits, targets)
            .unwrap_or_else(|err| panic!("{err}"))
    }

    /// As [`forward`](Self::forward), returning an error instead of panicking.
    ///
    /// # Errors
    /// [`LossError`] for a target out of range, mismatched shapes, fewer than two classes, a
    /// class-weight vector of the wrong length, a non-finite logit (with its row), a non-float
    /// dtype, or the fused implementation forced on a backend it does not run on.
    pub fn try_forward<const D: usize, const T: usize>(
        &self,
        logits: Tensor<D>,
        targets: Tensor<T, Int>,
    ) -> Result<Tensor<1>, LossError> {
        Ok(reduce(self.rows(logits, targets)?, self.spec.reduction))
    }

    /// The per-row losses (0 for ignored rows), shaped like the targets, whatever the
    /// configured reduction; under mean each row carries its share of the mean.
    ///
    /// # Errors
    /// As [`try_forward`](Self::try_forward).
    pub fn forward_no_reduction<const D: usize, const T: usize>(
        &self,
        logits: Tensor<D>,
        targets: Tensor<T, Int>,
    ) -> Result<Tensor<T>, LossError> {
        let shape = targets.dims();
        Ok(self.rows(logits, targets)?.reshape(shape))
    }

    fn rows<const D: usize, const T: usize>(
        &self,
        logits: Tensor<D>,
        targets: Tensor<T, Int>,
    ) -> Result<Tensor<1>, LossError> {
        let s = &self.spec;
        planned_rows(
            &s.plan_options(),
            s.implementation,
            s.check_finite,
            logits,
            targets,
        )
    }
}

impl LabelSmoothingLossConfig {
    /// Validates the configuration and builds the loss.
    ///
    /// # Errors
    /// A [`ConfigError`] naming the field.
    pub fn init(&self, _device: &Device) -> Result<LogitLoss, ConfigError> {
        self.validate()?;
        let mut spec = Spec::family(
            "label-smoothing",
            RowTerm::CrossEntropy,
            self.weight.clone(),
            self.ignore_index,
            self.reduction,
            self.implementation,
            self.check_finite,
        );
        spec.label_smoothing = self.smoothing;
        Ok(LogitLoss { spec })
    }
}

impl FocalLossConfig {
    /// Validates the configuration and builds the loss.
    ///
    /// # Errors
    /// A [`ConfigError`] naming the field.
    pub fn init(&self, _device: &Device) -> Result<LogitLoss, ConfigError> {
        self.validate()?;
        Ok(LogitLoss {
            spec: Spec::family(
                "focal",
                RowTerm::Focal { gamma: self.gamma },
                self.weight.clone(),
                self.ignore_index,
                self.reduction,
                self.implementation,
                self.check_finite,
            ),
        })
    }
}

impl PolyLossConfig {
    /// Validates the configuration and builds the loss.
    ///
    /// # Errors
    /// A [`ConfigError`] naming the field.
    pub fn init(&self, _device: &Device) -> Result<LogitLoss, ConfigError> {
        self.validate()?;
        Ok(LogitLoss {
            spec: Spec::family(
                "poly",
                RowTerm::Poly {
                    epsilon: self.epsilon,
                },
                self.weight.clone(),
                self.ignore_index,
                self.reduction,
                self.implementation,
                self.check_finite,
            ),
        })
    }
}

impl ConfidencePenaltyLossConfig {
    /// Validates the configuration and builds the loss.
    ///
    /// # Errors
    /// A [`ConfigError`] naming the field.
    pub fn init(&self, _device: &Device) -> Result<LogitLoss, ConfigError> {
        self.validate()?;
        Ok(LogitLoss {
            spec: Spec::family(
                "confidence-penalty",
                RowTerm::ConfidencePenalty { beta: self.beta },
                self.weight.clone(),
                self.ignore_index,
                self.reduction,
                self.implementation,
                self.check_finite,
            ),
        })
    }
}
