//! The binding to the fused kernels of `lmsoftmax-kernels`: the row plan handed over as the
//! kernel's own description of the rows.

use burn::tensor::{DType, Device, Tensor};
use lmsoftmax_kernels::fused_loss;

use crate::plan::RowPlan;

/// Whether a fused kernel runs on this device for logits computed in `dtype`: the flex backend
/// (f32, f64) and, built with a GPU feature, Burn's cubecl backend (f32); with or without
/// autodiff.
pub(crate) fn runs_on(device: &Device, dtype: DType) -> bool {
    fused_loss::runs_on(device, dtype)
}

/// Per-row losses through the fused kernel; `logits` must be `[M, C]` on a device and dtype
/// that [`runs_on`] accepts.
pub(crate) fn fused_rows(logits: Tensor<2>, plan: RowPlan) -> Tensor<1> {
    // the kernel finds out by itself which terms any row needs
    fused_loss::fused_rows(logits, plan.rows)
}
