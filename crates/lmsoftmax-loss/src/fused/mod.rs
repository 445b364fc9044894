//! The fused CPU implementation: a Burn backend extension for the flex backend whose autodiff
//! version records one custom op with a hand-written backward. The forward writes the gradient
//! of every row's loss into one `[M, C]` buffer; the backward only scales it by the upstream
//! gradient of each row, in place.

mod kernel;
pub(crate) mod real;

use std::sync::Arc;

use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::backend::flex::FlexTensor;
use burn::backend::tensor::FloatTensor;
use burn::backend::{Autodiff, Backend, Dispatch, DispatchDevice, Flex, backend_extension};
use burn::tensor::{DType, Device, Tensor, TensorData};

use crate::plan::RowPlan;

/// The per-batch plan as the extension passes it across the dispatch boundary.
#[derive(Debug, Clone)]
pub(crate) struct SharedPlan(pub Arc<RowPlan>);

/// The fused loss as a backend operation.
#[backend_extension(Flex, Autodiff)]
pub(crate) trait FusedLossBackend: Backend {
    /// Per-row losses of `[M, C]` f32 or f64 logits.
    fn fused_loss_rows(logits: FloatTensor<Self>, plan: SharedPlan) -> FloatTensor<Self>;
}

/// Whether the fused kernel runs on this device (the flex backend, with or without autodiff).
pub(crate) fn runs_on(device: &Device) -> bool {
    matches!(
        device.as_dispatch().clone().inner(),
        DispatchDevice::Flex(_)
    )
}

/// Per-row losses through the fused kernel; `logits` must be `[M, C]`, f32 or f64, on flex.
pub(crate) fn fused_rows(logits: Tensor<2>, plan: Arc<RowPlan>) -> Tensor<1> {
    let out =
        <Dispatch as FusedLossBackend>::fused_loss_rows(logits.into_dispatch(), SharedPlan(plan));
    Tensor::from_dispatch(out)
}

/// Runs the kernel on a flex tensor; returns the rows and, when asked, the gradient buffer.
fn flex_kernel(
    logits: &FlexTensor,
    plan: &RowPlan,
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
        other => unreachable!("the loss casts {other:?} logits to f32 before the fused kernel"),
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
