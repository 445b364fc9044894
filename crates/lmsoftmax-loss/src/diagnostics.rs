//! Per-row quantities the paper analyses, for logging: cross-entropy, regulariser, margin and
//! the entropy of the non-target distribution.

use burn::tensor::{Bool, Int, Tensor, TensorData};

use crate::composed::{compute_dtype, nontarget_regulariser, nontarget_softmax};
use crate::error::LossError;
use crate::rows::{check_targets, flatten_rows, read_targets};

/// Per-row diagnostics, each `[rows]` (rows = every position of the targets, row-major), in
/// f32 (f64 for f64 logits), detached from any autodiff graph.
#[derive(Debug, Clone)]
pub struct RowDiagnostics {
    /// Softmax cross-entropy `logsumexp_j z_j - z_y` (unweighted, no `deg_logit`).
    pub ce: Tensor<1>,
    /// The regulariser `1/2 sum_{j != y} (q_j - u) log q_j`.
    pub reg: Tensor<1>,
    /// The margin `z_y - max_{j != y} z_j` (positive when the row is classified correctly).
    pub margin: Tensor<1>,
    /// Entropy `-sum_{j != y} q_j log q_j` of the non-target distribution (at most `log(C-1)`).
    pub nontarget_entropy: Tensor<1>,
}

/// Computes [`RowDiagnostics`] for `logits` `[N, C, ..]` and `targets` `[N, ..]`.
///
/// ```
/// use burn::tensor::{Device, Int, Tensor};
/// let device = Device::flex();
/// let logits = Tensor::<2>::from_floats([[0.0, 2.0, 0.0]], &device);
/// let d = lmsoftmax_loss::row_diagnostics(logits, Tensor::<1, Int>::from_ints([0], &device))?;
/// assert_eq!(d.margin.into_scalar::<f32>(), -2.0);
/// # Ok::<(), lmsoftmax_loss::LossError>(())
/// ```
///
/// # Errors
/// As [`LargeMarginInSoftmaxLoss::try_forward`](crate::LargeMarginInSoftmaxLoss::try_forward)
/// for shapes, dtypes and targets out of `[0, C)`.
pub fn row_diagnostics<const D: usize, const T: usize>(
    logits: Tensor<D>,
    targets: Tensor<T, Int>,
) -> Result<RowDiagnostics, LossError> {
    let x = compute_dtype(flatten_rows(logits.detach(), &targets)?);
    let [rows, classes] = x.dims();
    let host = read_targets(targets);
    check_targets(&host, classes)?;
    let targets = Tensor::<1, Int>::from_data(TensorData::new(host, [rows]), &x.device());
    let index = targets.reshape([rows, 1]);
    let is_target: Tensor<2, Bool> = index.clone().one_hot_dim(classes);
    let target_logit = x.clone().gather(1, index);

    let max = x.clone().max_dim(1);
    let lse = (x.clone() - max.clone()).exp().sum_dim(1).log() + max;
    let ce = lse - target_logit.clone();
    let nontarget_max = x
        .clone()
        .mask_fill(is_target.clone(), f64::NEG_INFINITY)
        .max_dim(1);
    let margin = target_logit - nontarget_max;
    let (q, log_q) = nontarget_softmax(x.clone(), is_target.clone());
    let entropy = (q * log_q).sum_dim(1).neg();
    let reg = nontarget_regulariser(x, is_target);
    Ok(RowDiagnostics {
        ce: ce.reshape([rows]),
        reg: reg.reshape([rows]),
        margin: margin.reshape([rows]),
        nontarget_entropy: entropy.reshape([rows]),
    })
}

/// `[rows, 1]` class indices to a `[rows, C]` mask of the target positions.
trait OneHotDim {
    fn one_hot_dim(self, classes: usize) -> Tensor<2, Bool>;
}

impl OneHotDim for Tensor<2, Int> {
    fn one_hot_dim(self, classes: usize) -> Tensor<2, Bool> {
        let rows = self.dims()[0];
        self.reshape([rows]).one_hot::<2>(classes).equal_elem(1)
    }
}

#[cfg(test)]
mod tests {
    use burn::tensor::{DType, Device, Int, Tensor, TensorData};

    use super::*;

    fn values(t: Tensor<1>) -> Vec<f64> {
        t.cast(DType::F64).into_data().try_to_vec::<f64>().unwrap()
    }

    /// Hand-computed: row [2, 0, ln 3] with target 0. Non-target logits 0 and ln 3 give
    /// q = (1/4, 3/4); u = 1/2; reg = 1/2 [(1/4 - 1/2) ln(1/4) + (3/4 - 1/2) ln(3/4)];
    /// entropy = -(1/4 ln 1/4 + 3/4 ln 3/4); margin = 2 - ln 3; ce = ln(e^2 + 1 + 3) - 2.
    #[test]
    fn diagnostics_match_hand_computed_values() {
        let device = Device::flex();
        let l3 = 3f64.ln();
        let logits = Tensor::<2>::from_data(
            TensorData::new(vec![2.0, 0.0, l3], [1, 3]),
            (&device, DType::F64),
        );
        let d = row_diagnostics(logits, Tensor::<1, Int>::from_ints([0], &device)).unwrap();
        let (q1, q2) = (0.25f64, 0.75f64);
        let reg = 0.5 * ((q1 - 0.5) * q1.ln() + (q2 - 0.5) * q2.ln());
        let entropy = -(q1 * q1.ln() + q2 * q2.ln());
        let ce = (2f64.exp() + 4.0).ln() - 2.0;
        for (got, want) in [
            (values(d.reg), reg),
            (values(d.nontarget_entropy), entropy),
            (values(d.margin), 2.0 - l3),
            (values(d.ce), ce),
        ] {
            assert!((got[0] - want).abs() < 1e-12, "got {got:?}, want {want}");
        }
    }

    #[test]
    fn diagnostics_of_spatial_input_are_per_position_and_bounded() {
        let device = Device::flex();
        let logits =
            Tensor::<3>::from_floats([[[1.0, 5.0], [0.0, 1.0], [2.0, -3.0], [0.5, 0.5]]], &device); // [N=1, C=4, d=2]
        let targets = Tensor::<2, Int>::from_ints([[0, 1]], &device);
        let d = row_diagnostics(logits, targets).unwrap();
        let entropy = values(d.nontarget_entropy);
        assert_eq!(entropy.len(), 2);
        assert!(entropy.iter().all(|h| *h >= 0.0 && *h <= 3f64.ln() + 1e-6));
        // position 1: target logit 1, others 5, -3, 0.5 -> margin 1 - 5
        assert!((values(d.margin)[1] + 4.0).abs() < 1e-6);
    }

    #[test]
    fn diagnostics_reject_out_of_range_targets() {
        let device = Device::flex();
        let err = row_diagnostics(
            Tensor::<2>::zeros([2, 3], &device),
            Tensor::<1, Int>::from_ints([0, 3], &device),
        )
        .unwrap_err();
        assert_eq!(
            err,
            LossError::TargetOutOfRange {
                row: 1,
                target: 3,
                num_classes: 3
            }
        );
    }
}
