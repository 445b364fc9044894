//! The fused large-margin in softmax loss rows: a Burn backend extension for the flex backend
//! whose autodiff version records one custom op with a hand-written backward. The forward
//! writes the gradient of every row's loss into one `[M, C]` buffer; the backward only scales it
//! by the upstream gradient of each row, in place. What each row computes is described by
//! [`LossRows`]; `lmsoftmax-loss` fills it in and tests the result against its composed ops.

mod input;
mod kernel;
mod real;

pub use input::{LossRows, RowTerm};

use std::sync::Arc;

use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::backend::flex::FlexTensor;
use burn::backend::tensor::FloatTensor;
use burn::backend::{Autodiff, Backend, Dispatch, Flex, backend_extension};
use burn::tensor::{DType, Tensor, TensorData};

/// The per-batch description as the extension passes it across the dispatch boundary.
#[derive(Debug, Clone)]
pub(crate) struct SharedPlan(pub Arc<LossRows>);

/// The fused loss as a backend operation.
#[backend_extension(Flex, Autodiff)]
pub(crate) trait FusedLossBackend: Backend {
    /// Per-row losses of `[M, C]` f32 or f64 logits.
    fn fused_loss_rows(logits: FloatTensor<Self>, plan: SharedPlan) -> FloatTensor<Self>;
}

/// The per-row losses `l_n` that `rows` describes, `[M]`, of `logits` `[M, C]` in f32 or f64 on
/// the flex backend (see [`super::runs_on`]); on autodiff, with the hand-written backward.
/// A row whose logits are not all finite gets a NaN loss.
///
/// ```
/// use burn::tensor::{Device, Tensor};
/// use lmsoftmax_kernels::flex::fused_loss::{LossRows, RowTerm, fused_rows};
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
/// If `logits` are not on flex or not f32 or f64, or `rows` does not describe `[M, C]` logits
/// (lengths, number of classes, a target outside `[0, C)`), naming what is wrong.
pub fn fused_rows(logits: Tensor<2>, rows: LossRows) -> Tensor<1> {
    assert!(
        super::runs_on(&logits.device()),
        "the fused loss runs on the flex backend only, not on {:?}",
        logits.device()
    );
    assert!(
        matches!(logits.dtype(), DType::F32 | DType::F64),
        "the fused loss computes in f32 or f64, not {:?}",
        logits.dtype()
    );
    rows.check(logits.dims());
    let out = <Dispatch as FusedLossBackend>::fused_loss_rows(
        logits.into_dispatch(),
        SharedPlan(Arc::new(rows)),
    );
    Tensor::from_dispatch(out)
}

/// Runs the kernel on a flex tensor; returns the rows and, when asked, the gradient buffer.
fn flex_kernel(
    logits: &FlexTensor,
    plan: &LossRows,
    with_grad: bool,
) -> (FlexTensor, Option<FlexTensor>) {
    let logits = logits.to_contiguous();
    let rows = plan.rows();
    let classes = plan.num_classes;
    macro_rules! go {
        ($t:ty) => {{
            let out = kernel::run::<$t>(logits.storage::<$t>(), plan, with_grad);
            (
                FlexTensor::from_data(TensorData::new(out.rows, [rows])),
                out.grad
                    .map(|g| FlexTensor::from_data(TensorData::new(g, [rows, classes]))),
            )
        }};
    }
    match logits.dtype() {
        DType::F32 => go!(f32),
        DType::F64 => go!(f64),
        other => unreachable!("fused_rows lets only f32 and f64 through, not {other:?}"),
    }
}

impl FusedLossBackend for Flex {
    fn fused_loss_rows(logits: FlexTensor, plan: SharedPlan) -> FlexTensor {
        flex_kernel(&logits, &plan.0, false).0
    }
}

/// The backward of the fused op: `d loss / d z = upstream[n] * G[n, :]`.
#[derive(Debug)]
struct FusedLossBackward;

impl Backward<Flex, 1> for FusedLossBackward {
    /// The `[M, C]` gradient of each row's loss, computed by the forward.
    type State = FlexTensor;

    fn backward(self, ops: Ops<Self::State, 1>, grads: &mut Gradients, _: &mut Checkpointer) {
        let upstream = grads.consume::<Flex>(&ops.node);
        let [parent] = ops.parents;
        let Some(parent) = parent else { return };
        let mut grad = ops.state;
        let classes = grad.layout().shape()[1];
        let upstream = upstream.to_contiguous();
        match grad.dtype() {
            DType::F32 => kernel::scale_rows(
                grad.storage_mut::<f32>(),
                upstream.storage::<f32>(),
                classes,
            ),
            DType::F64 => kernel::scale_rows(
                grad.storage_mut::<f64>(),
                upstream.storage::<f64>(),
                classes,
            ),
            other => unreachable!("fused gradient of dtype {other:?}"),
        }
        grads.register::<Flex>(parent.id, grad);
    }
}

impl<C: CheckpointStrategy> FusedLossBackend for Autodiff<Flex, C> {
    fn fused_loss_rows(logits: FloatTensor<Self>, plan: SharedPlan) -> FloatTensor<Self> {
        let prep = FusedLossBackward
            .prepare::<C>([logits.node()])
            .compute_bound()
            .stateful();
        let primitive = logits.into_primitive();
        match prep {
            OpsKind::Tracked(prep) => {
                let (rows, grad) = flex_kernel(&primitive, &plan.0, true);
                prep.finish(grad.expect("the kernel was asked for the gradient"), rows)
            }
            OpsKind::UnTracked(prep) => prep.finish(flex_kernel(&primitive, &plan.0, false).0),
        }
    }
}

#[cfg(test)]
mod tests;
