//! The loss as composed Burn tensor ops: runs on every backend, autodiff derives the backward.
//! It is the reference that the fused kernel is tested against.

use burn::tensor::{Bool, DType, Int, Tensor, TensorData};
use lmsoftmax_kernels::fused_loss::RowTerm;

use crate::plan::RowPlan;

/// Per-row losses `l_n` (see [`crate::plan`]) of `[M, C]` logits in f32 or f64.
pub(crate) fn composed_rows(x: Tensor<2>, plan: &RowPlan) -> Tensor<1> {
    let [rows, classes] = x.dims();
    let device = x.device();
    let dtype = x.dtype();
    let column = |values: &[f64]| -> Tensor<2> {
        Tensor::<1>::from_data(TensorData::new(values.to_vec(), [rows]), (&device, dtype))
            .reshape([rows, 1])
    };
    let targets: Vec<i64> = plan.rows.targets.iter().map(|&y| y as i64).collect();
    let targets = Tensor::<1, Int>::from_data(TensorData::new(targets, [rows]), &device);
    let is_target: Tensor<2, Bool> = targets.clone().one_hot::<2>(classes).equal_elem(1);
    if plan.rows.term != RowTerm::CrossEntropy {
        let targets = targets.reshape([rows, 1]);
        return (family_rows(x, plan.rows.term, targets, is_target) * column(&plan.rows.hard))
            .reshape([rows]);
    }

    // Cross-entropy on z' (the target logit lowered by delta).
    let shifted = if plan.rows.delta != 0.0 {
        x.clone() - is_target.clone().float().cast(dtype) * plan.rows.delta
    } else {
        x.clone()
    };
    let max = shifted.clone().max_dim(1).detach();
    let lse = (shifted.clone() - max.clone()).exp().sum_dim(1).log() + max;
    let target_logit = shifted.clone().gather(1, targets.reshape([rows, 1]));
    let mut rows_loss = (lse.clone() - target_logit) * column(&plan.rows.hard);

    if plan.needs_smooth {
        // sum_j w_j (lse - z'_j) = W lse - sum_j w_j z'_j
        let smooth = match &plan.rows.weight {
            Some(weight) => {
                let w = Tensor::<1>::from_data(
                    TensorData::new(weight.clone(), [classes]),
                    (&device, dtype),
                )
                .reshape([1, classes]);
                lse * weight.iter().sum::<f64>() - (shifted * w).sum_dim(1)
            }
            None => lse * classes as f64 - shifted.sum_dim(1),
        };
        rows_loss = rows_loss + smooth * column(&plan.rows.smooth);
    }

    if plan.needs_reg {
        rows_loss = rows_loss + nontarget_regulariser(x, is_target) * column(&plan.rows.reg);
    }
    rows_loss.reshape([rows])
}

/// The family's per-row losses (FAMILY.md, section 1), `[M, 1]`, before the row's coefficient:
/// focal `(1 - p_y)^gamma ce`, poly `ce + eps (1 - p_y)`, confidence penalty `ce - beta H(p)`.
/// `1 - p_y` is summed from the other classes' probabilities (exact near `p_y = 1`), and held
/// above the smallest normal float of the dtype so that the focal power's gradient stays finite.
fn family_rows(
    x: Tensor<2>,
    term: RowTerm,
    targets: Tensor<2, Int>,
    is_target: Tensor<2, Bool>,
) -> Tensor<2> {
    let max = x.clone().max_dim(1).detach();
    let centred = x - max;
    let log_p = centred.clone() - centred.exp().sum_dim(1).log();
    let ce = -log_p.clone().gather(1, targets);
    let p = log_p.clone().exp();
    let tiny = match p.dtype() {
        DType::F64 => f64::MIN_POSITIVE,
        _ => f64::from(f32::MIN_POSITIVE),
    };
    let rest = || p.clone().mask_fill(is_target.clone(), 0.0).sum_dim(1);
    match term {
        RowTerm::Focal { gamma: 0.0 } => ce,
        RowTerm::Focal { gamma } => rest().clamp_min(tiny).powf_scalar(gamma) * ce,
        RowTerm::Poly { epsilon } => ce + rest() * epsilon,
        RowTerm::ConfidencePenalty { beta } => {
            let entropy = -(p.clone() * log_p).sum_dim(1);
            ce - entropy * beta
        }
        RowTerm::CrossEntropy => unreachable!("the cross-entropy rows are composed_rows' own"),
    }
}

/// `reg = 1/2 sum_{j != y} (q_j - u)(log q_j - log u)` per row, `[M, 1]`, with the non-target
/// softmax `q` computed directly from the non-target logits (no large constant on the target).
/// Writing each term as `(q_j - u)(log q_j - log u)` keeps every term >= 0.
pub(crate) fn nontarget_regulariser(x: Tensor<2>, is_target: Tensor<2, Bool>) -> Tensor<2> {
    let (q, log_q) = nontarget_softmax(x, is_target.clone());
    let classes = q.dims()[1];
    let u = 1.0 / (classes - 1) as f64;
    let log_ratio = (log_q + ((classes - 1) as f64).ln()).mask_fill(is_target, 0.0);
    ((q - u) * log_ratio).sum_dim(1) * 0.5
}

/// The softmax over the non-target logits and its log, `[M, C]` each; both are 0 at the target.
pub(crate) fn nontarget_softmax(
    x: Tensor<2>,
    is_target: Tensor<2, Bool>,
) -> (Tensor<2>, Tensor<2>) {
    let masked = x.mask_fill(is_target.clone(), f64::NEG_INFINITY);
    let max = masked.clone().max_dim(1).detach();
    let centred = masked - max;
    let e = centred.clone().exp();
    let sum = e.clone().sum_dim(1);
    let log_q = (centred - sum.clone().log()).mask_fill(is_target, 0.0);
    (e / sum, log_q)
}

/// Casts half-precision logits to f32, the precision the loss is computed in.
pub(crate) fn compute_dtype(x: Tensor<2>) -> Tensor<2> {
    match x.dtype() {
        DType::F16 | DType::BF16 => x.cast(DType::F32),
        _ => x,
    }
}
