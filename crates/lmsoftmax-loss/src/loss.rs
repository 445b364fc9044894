//! The loss module: built from a validated configuration, it chooses the implementation,
//! plans the rows and reduces them.

use burn::module::{Content, DisplaySettings, Module, ModuleDisplay};
use burn::tensor::{Device, Int, Tensor};

use crate::config::{LargeMarginInSoftmaxLossConfig, SoftmaxCrossEntropyLossConfig};
use crate::error::{ConfigError, LossError};
use crate::logit_loss::LogitLoss;

// `init` lives here rather than in `config.rs`, with the type it builds, so that the module
// depends on its configuration and not the other way round.
impl LargeMarginInSoftmaxLossConfig {
    /// Validates the configuration and builds the loss.
    ///
    /// # Errors
    /// A [`ConfigError`] naming the field when `reg_lambda < 0`, a hyper-parameter is not finite,
    /// `label_smoothing` is outside `[0, 1]`, or a class weight is negative, not finite or the
    /// weight vector is empty.
    ///
    /// ```
    /// use lmsoftmax_loss::LargeMarginInSoftmaxLossConfig;
    /// let err = LargeMarginInSoftmaxLossConfig::new()
    ///     .with_weight(Some(vec![1.0, -2.0]))
    ///     .init(&burn::tensor::Device::flex())
    ///     .unwrap_err();
    /// assert_eq!(err.to_string(), "class weight 1 must be finite and >= 0, got -2");
    /// ```
    pub fn init(&self, _device: &Device) -> Result<LargeMarginInSoftmaxLoss, ConfigError> {
        self.validate()?;
        Ok(LargeMarginInSoftmaxLoss::from_validated(self.clone()))
    }
}

impl SoftmaxCrossEntropyLossConfig {
    /// Validates the configuration and builds the loss (a large-margin loss with lambda 0).
    ///
    /// # Errors
    /// As [`LargeMarginInSoftmaxLossConfig::init`].
    pub fn init(&self, device: &Device) -> Result<LargeMarginInSoftmaxLoss, ConfigError> {
        self.to_large_margin().init(device)
    }
}

/// The large-margin in softmax cross-entropy loss (Kobayashi, BMVC 2019): softmax
/// cross-entropy plus `lambda` times a regulariser that pushes the non-target probabilities
/// towards uniform, which enlarges the margin between the target and the other classes.
///
/// ```text
/// z'_y = z_y - delta
/// ce   = logsumexp_j z'_j - z'_y
/// q_j  = softmax over the non-target logits j != y,   u = 1 / (C - 1)
/// reg  = 1/2 sum_{j != y} (q_j - u) log q_j  = 1/2 [KL(q||U) + KL(U||q)]
/// loss = w_y ce + lambda reg
/// ```
///
/// Paper: <https://www.bmva.org/bmvc/2019/>; official code: `tk1980/LargeMarginInSoftmax`
/// (`models/modules/myloss.py`). The PyTorch equivalent of `lambda = 0` is
/// `torch.nn.functional.cross_entropy`.
///
/// Create it with [`LargeMarginInSoftmaxLossConfig`].
///
/// ```
/// use burn::tensor::{Device, Int, Tensor};
/// use lmsoftmax_loss::LargeMarginInSoftmaxLossConfig;
///
/// let device = Device::flex().autodiff();
/// let loss = LargeMarginInSoftmaxLossConfig::new().init(&device)?;
/// let logits = Tensor::<2>::from_floats([[2.0, 0.5, -1.0], [0.1, 0.2, 3.0]], &device).require_grad();
/// let targets = Tensor::<1, Int>::from_ints([0, 2], &device);
/// let value = loss.forward(logits.clone(), targets);
/// let grads = value.backward();
/// assert_eq!(logits.grad(&grads).unwrap().dims(), [2, 3]);
/// # Ok::<(), lmsoftmax_loss::ConfigError>(())
/// ```
#[derive(Module, Debug)]
#[module(custom_display)]
pub struct LargeMarginInSoftmaxLoss {
    #[module(skip)]
    config: LargeMarginInSoftmaxLossConfig,
    /// The same loss as the family's module, which computes it.
    inner: LogitLoss,
}

impl ModuleDisplay for LargeMarginInSoftmaxLoss {
    fn custom_settings(&self) -> Option<DisplaySettings> {
        DisplaySettings::new()
            .with_new_line_after_attribute(false)
            .optional()
    }

    fn custom_content(&self, content: Content) -> Option<Content> {
        let c = &self.config;
        content
            .add("reg_lambda", &c.reg_lambda)
            .add("deg_logit", &format!("{:?}", c.deg_logit))
            .add(
                "weight",
                &c.weight
                    .as_ref()
                    .map_or("None".to_string(), |w| format!("[{} classes]", w.len())),
            )
            .add("ignore_index", &format!("{:?}", c.ignore_index))
            .add("reduction", &format!("{:?}", c.reduction))
            .add("label_smoothing", &c.label_smoothing)
            .optional()
    }
}

impl LargeMarginInSoftmaxLoss {
    pub(crate) fn from_validated(config: LargeMarginInSoftmaxLossConfig) -> Self {
        let inner = LogitLoss::from_large_margin("large-margin", &config);
        Self { config, inner }
    }

    /// The configuration this loss was built from.
    pub fn config(&self) -> &LargeMarginInSoftmaxLossConfig {
        &self.config
    }

    /// Whether this call would use the fused kernel on `device` (for f32, f16 or bf16 logits).
    ///
    /// ```
    /// use lmsoftmax_loss::{LargeMarginInSoftmaxLossConfig, LossImplementation};
    /// let device = burn::tensor::Device::flex();
    /// let auto = LargeMarginInSoftmaxLossConfig::new().init(&device).unwrap();
    /// assert!(auto.uses_fused(&device));
    /// let composed = LargeMarginInSoftmaxLossConfig::new()
    ///     .with_implementation(LossImplementation::Composed)
    ///     .init(&device)
    ///     .unwrap();
    /// assert!(!composed.uses_fused(&device));
    /// ```
    pub fn uses_fused(&self, device: &Device) -> bool {
        self.inner.uses_fused(device)
    }

    /// The loss of `logits` `[N, C]` or `[N, C, d1, .., dk]` against class indices `targets`
    /// `[N]` or `[N, d1, .., dk]`, reduced as configured.
    ///
    /// # Shapes
    /// - logits: `[N, C, d1, .., dk]` (class axis 1; every other position is one row)
    /// - targets: `[N, d1, .., dk]`
    /// - output: `[1]` for mean and sum; for none, `[N * d1 * .. * dk]` in the targets' row-major
    ///   order (use [`forward_no_reduction`](Self::forward_no_reduction) to keep the shape)
    ///
    /// # Panics
    /// With the message of the [`LossError`] that [`try_forward`](Self::try_forward) returns.
    pub fn forward<const D: usize, const T: usize>(
        &self,
        logits: Tensor<D>,
        targets: Tensor<T, Int>,
    ) -> Tensor<1> {
        self.inner.forward(logits, targets)
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
        self.inner.try_forward(logits, targets)
    }

    /// The per-row losses `w_y ce + lambda reg` (0 for ignored rows), shaped like the targets,
    /// whatever the configured reduction. Under `Mean` each row carries its share of the mean,
    /// so that the rows sum to the mean loss.
    ///
    /// # Errors
    /// As [`try_forward`](Self::try_forward).
    pub fn forward_no_reduction<const D: usize, const T: usize>(
        &self,
        logits: Tensor<D>,
        targets: Tensor<T, Int>,
    ) -> Result<Tensor<T>, LossError> {
        self.inner.forward_no_reduction(logits, targets)
    }
}

#[cfg(test)]
mod tests {
    use crate::config::LargeMarginInSoftmaxLossConfig;

    #[test]
    fn display_lists_the_hyper_parameters() {
        let loss = LargeMarginInSoftmaxLossConfig::new()
            .with_weight(Some(vec![1.0; 10]))
            .with_ignore_index(Some(-100))
            .init(&burn::tensor::Device::flex())
            .unwrap();
        let text = format!("{loss}");
        for part in [
            "reg_lambda: 0.3",
            "deg_logit: None",
            "weight: [10 classes]",
            "ignore_index: Some(-100)",
            "reduction: Mean",
            "label_smoothing: 0",
        ] {
            assert!(text.contains(part), "{part} not in {text}");
        }
    }
}
