//! The fused large-margin in softmax loss rows as one Burn backend operation: loss and gradient
//! of every row in one kernel over the logits, with a hand-written backward. The forward writes
//! the gradient of every row's loss into one `[M, C]` buffer; the backward only scales it by the
//! upstream gradient of each row. What each row computes is described by [`LossRows`];
//! `lmsoftmax-loss` fills it in and tests the result against its composed ops.
//!
//! Two kernels implement it: [`crate::flex`]'s for the flex CPU backend (f32 and f64, SIMD and
//! rayon) and, with the `wgpu`, `cuda` or `rocm` feature, the `cube` module's CubeCL kernel for
//! Burn's cubecl backend (f32). [`runs_on`] says which devices and dtypes they take.

mod input;
#[cfg(test)]
pub(crate) mod test_batches;

pub use input::{LossRows, RowTerm};

use std::sync::Arc;

use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
use burn::backend::autodiff::ops::{Backward, OpsKind};
use burn::backend::tensor::FloatTensor;
use burn::backend::{Autodiff, Backend, Dispatch, DispatchDevice, backend_extension};
use burn::tensor::{DType, Device, Tensor};

/// The per-batch description as the extension passes it across the dispatch boundary.
#[derive(Debug, Clone)]
pub(crate) struct SharedPlan(pub Arc<LossRows>);

/// The fused loss as a backend operation.
#[backend_extension(Flex, Cube: cfg(feature = "cube"), Autodiff)]
pub(crate) trait FusedLossBackend: Backend {
    /// Per-row losses of `[M, C]` logits (f32 or f64 on flex, f32 on cubecl).
    fn fused_loss_rows(logits: FloatTensor<Self>, plan: SharedPlan) -> FloatTensor<Self>;
}

/// Whether a fused kernel runs on `device` for logits of `dtype`: the flex backend in f32 or
/// f64, and (built with the `wgpu`, `cuda` or `rocm` feature) Burn's cubecl backend in f32; with
/// or without autodiff.
///
/// ```
/// use burn::tensor::{DType, Device};
/// use lmsoftmax_kernels::fused_loss::runs_on;
/// assert!(runs_on(&Device::flex(), DType::F64));
/// assert!(runs_on(&Device::flex().autodiff(), DType::F32));
/// assert!(!runs_on(&Device::flex(), DType::F16));
/// ```
pub fn runs_on(device: &Device, dtype: DType) -> bool {
    match device.as_dispatch().clone().inner() {
        DispatchDevice::Flex(_) => matches!(dtype, DType::F32 | DType::F64),
        #[cfg(feature = "cube")]
        DispatchDevice::Cube(_) => dtype == DType::F32,
        #[allow(unreachable_patterns)]
        _ => false,
    }
}

/// The per-row losses `l_n` that `rows` describes, `[M]`, of `logits` `[M, C]` on a device and
/// dtype that [`runs_on`] accepts; on autodiff, with the hand-written backward.
/// A row whose logits are not all finite gets a non-finite loss (NaN on flex, NaN or inf on
/// cubecl).
///
/// ```
/// use burn::tensor::{Device, Tensor};
/// use lmsoftmax_kernels::fused_loss::{LossRows, RowTerm, fused_rows};
/// let device = Device::flex();
/// let logits = Tensor::<2>::from_floats([[0.0, 0.0], [3.0, 1.0]], &device);
/// let rows = LossRows {
///     num_classes: 2,
///     targets: vec![1, 0],
///     hard: vec![1.0, 0.5],
///     smooth: vec![0.0; 2],
///     reg: vec![0.0; 2],
///     delta: 0.0,
///     weight: None,
///     term: RowTerm::CrossEntropy,
/// };
/// let loss = fused_rows(logits, rows).into_data().try_to_vec::<f32>().unwrap();
/// assert!((loss[0] - 2f32.ln()).abs() < 1e-6); // -log(1/2)
/// assert!((loss[1] - 0.5 * (1.0 + (-2f32).exp()).ln()).abs() < 1e-6);
/// ```
///
/// # Panics
/// If no fused kernel runs on the logits' device and dtype, or `rows` does not describe
/// `[M, C]` logits (lengths, number of classes, a target outside `[0, C)`), naming what is wrong.
pub fn fused_rows(logits: Tensor<2>, rows: LossRows) -> Tensor<1> {
    assert!(
        runs_on(&logits.device(), logits.dtype()),
        "no fused loss kernel runs on {:?} in {:?} (flex: f32 or f64; cubecl: f32)",
        logits.device(),
        logits.dtype()
    );
    rows.check(logits.dims());
    let out = <Dispatch as FusedLossBackend>::fused_loss_rows(
        logits.into_dispatch(),
        SharedPlan(Arc::new(rows)),
    );
    Tensor::from_dispatch(out)
}

/// What each kernel gives the autodiff op: the rows and, when asked, the `[M, C]` gradient of
/// each row's loss.
pub(crate) type KernelRows<B> = (FloatTensor<B>, Option<FloatTensor<B>>);

/// The autodiff version of a backend's fused op, written once: with a tracked input the kernel
/// computes the gradient along with the rows and `backward` keeps it as its state (to be scaled
/// by the upstream gradient); untracked, the kernel computes the rows alone.
pub(crate) fn record_fused<B, C, BW, K>(
    backward: BW,
    logits: FloatTensor<Autodiff<B, C>>,
    plan: &LossRows,
    kernel: K,
) -> FloatTensor<Autodiff<B, C>>
where
    B: Backend,
    C: CheckpointStrategy,
    BW: Backward<B, 1, State = FloatTensor<B>>,
    K: Fn(FloatTensor<B>, &LossRows, bool) -> KernelRows<B>,
{
    let prep = backward
        .prepare::<C>([logits.node()])
        .compute_bound()
        .stateful();
    let primitive = logits.into_primitive();
    match prep {
        OpsKind::Tracked(prep) => {
            let (rows, grad) = kernel(primitive, plan, true);
            prep.finish(grad.expect("the kernel was asked for the gradient"), rows)
        }
        OpsKind::UnTracked(prep) => prep.finish(kernel(primitive, plan, false).0),
    }
}
