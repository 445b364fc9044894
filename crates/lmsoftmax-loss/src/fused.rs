//! The binding to the fused kernel of `lmsoftmax-kernels`: the row plan handed over as the
//! kernel's own description of the rows.

use burn::tensor::{Device, Tensor};
use lmsoftmax_kernels::flex::{self, fused_loss};

use crate::plan::RowPlan;

/// Whether the fused kernel runs on this device (the flex backend, with or without autodiff).
pub(crate) fn runs_on(device: &Device) -> bool {
    flex::runs_on(device)
}

/// Per-row losses through the fused kernel; `logits` must be `[M, C]`, f32 or f64, on flex.
pub(crate) fn fused_rows(logits: Tensor<2>, plan: RowPlan) -> Tensor<1> {
    // the kernel finds out by itself which terms any row needs
    fused_loss::fused_rows(logits, plan.rows)
}
