//! Free functions for custom training loops: the same computation as the modules.

use burn::tensor::{Int, Tensor};

use crate::config::{LargeMarginInSoftmaxLossConfig, SoftmaxCrossEntropyLossConfig};
use crate::error::LossError;
use crate::loss::LargeMarginInSoftmaxLoss;

/// The large-margin in softmax loss of `logits` against `targets` under `config`.
///
/// ```
/// use burn::tensor::{Device, Int, Tensor};
/// use lmsoftmax_loss::{LargeMarginInSoftmaxLossConfig, large_margin_in_softmax_loss};
/// let device = Device::flex();
/// let logits = Tensor::<2>::from_floats([[1.0, 2.0, 3.0]], &device);
/// let targets = Tensor::<1, Int>::from_ints([2], &device);
/// let loss = large_margin_in_softmax_loss(logits, targets, &LargeMarginInSoftmaxLossConfig::new())?;
/// assert_eq!(loss.dims(), [1]);
/// # Ok::<(), lmsoftmax_loss::LossError>(())
/// ```
///
/// # Errors
/// A [`LossError::Config`] for a rejected configuration, else as
/// [`LargeMarginInSoftmaxLoss::try_forward`].
pub fn large_margin_in_softmax_loss<const D: usize, const T: usize>(
    logits: Tensor<D>,
    targets: Tensor<T, Int>,
    config: &LargeMarginInSoftmaxLossConfig,
) -> Result<Tensor<1>, LossError> {
    config.validate()?;
    LargeMarginInSoftmaxLoss::from_validated(config.clone()).try_forward(logits, targets)
}

/// Plain softmax cross-entropy with the same options (weights, ignore_index, smoothing,
/// reductions, spatial input).
///
/// ```
/// use burn::tensor::{Device, Int, Tensor};
/// use lmsoftmax_loss::{SoftmaxCrossEntropyLossConfig, softmax_cross_entropy};
/// let device = Device::flex();
/// let logits = Tensor::<2>::from_floats([[0.0, 0.0]], &device);
/// let targets = Tensor::<1, Int>::from_ints([1], &device);
/// let loss: f32 = softmax_cross_entropy(logits, targets, &SoftmaxCrossEntropyLossConfig::new())?
///     .into_scalar();
/// assert!((loss - 2f32.ln()).abs() < 1e-6);
/// # Ok::<(), lmsoftmax_loss::LossError>(())
/// ```
///
/// # Errors
/// As [`large_margin_in_softmax_loss`].
pub fn softmax_cross_entropy<const D: usize, const T: usize>(
    logits: Tensor<D>,
    targets: Tensor<T, Int>,
    config: &SoftmaxCrossEntropyLossConfig,
) -> Result<Tensor<1>, LossError> {
    large_margin_in_softmax_loss(logits, targets, &config.to_large_margin())
}
