//! The fused loss rows on the flex backend: the CPU kernel ([`kernel`]) behind
//! [`crate::fused_loss::fused_rows`] for flex tensors, and its autodiff op.

mod kernel;
mod real;

use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops};
use burn::backend::flex::FlexTensor;
use burn::backend::tensor::FloatTensor;
use burn::backend::{Autodiff, Flex};
use burn::tensor::{DType, TensorData};

use crate::fused_loss::{FusedLossBackend, LossRows, SharedPlan, record_fused};

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
        record_fused::<Flex, C, _, _>(FusedLossBackward, logits, &plan.0, |z, plan, with_grad| {
            flex_kernel(&z, plan, with_grad)
        })
    }
}

#[cfg(test)]
mod tests;
