//! The bf16 rounding of [`super::round_to_bf16`] on the flex CPU backend as one backend
//! operation with its own backward: one pass over the values, in place where the tensor's memory
//! is its own, instead of Burn's two casts (to a new bf16 tensor, then to a new f32 one), and the
//! gradient rounded the same way in its backward.

use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops};
use burn::backend::flex::FlexTensor;
use burn::backend::tensor::FloatTensor;
use burn::backend::{Autodiff, Backend, Dispatch, DispatchDevice, Flex, backend_extension};
use burn::tensor::{DType, Tensor, TensorData};
use rayon::prelude::*;

/// Values per rayon task.
const CHUNK: usize = 1 << 15;

/// Whether [`round`] takes this module's path for `x`: an `f32` tensor on the flex backend.
pub(super) fn runs_on<const D: usize>(x: &Tensor<D>) -> bool {
    x.dtype() == DType::F32
        && matches!(
            x.device().as_dispatch().clone().inner(),
            DispatchDevice::Flex(_)
        )
}

/// `x` with every value rounded to the nearest bf16 (ties to even, NaN kept as a quiet NaN
/// with its sign and top payload bits, as the `half` crate's cast), for an `f32` flex tensor
/// ([`runs_on`]).
pub(super) fn round<const D: usize>(x: Tensor<D>) -> Tensor<D> {
    Tensor::from_dispatch(<Dispatch as RoundBf16Backend>::round_bf16(
        x.into_dispatch(),
    ))
}

/// The bf16 bits of `v` in the high half of an f32's bits.
#[inline(always)]
fn rounded_bits(v: f32) -> u32 {
    let bits = v.to_bits();
    let nearest = bits.wrapping_add(0x7fff + ((bits >> 16) & 1)) & 0xffff_0000;
    let quiet_nan = (bits | 0x0040_0000) & 0xffff_0000;
    if v.is_nan() { quiet_nan } else { nearest }
}

/// Rounds every value of `values` to bf16, in place.
fn round_slice(values: &mut [f32]) {
    values.par_chunks_mut(CHUNK).for_each(|chunk| {
        for v in chunk {
            *v = f32::from_bits(rounded_bits(*v));
        }
    });
}

/// `t` rounded: in its own memory when the tensor is contiguous and holds it alone, into a new
/// buffer otherwise. Tensors of other dtypes are returned as they are.
fn flex_round(mut t: FlexTensor) -> FlexTensor {
    if t.dtype() != DType::F32 {
        return t;
    }
    if t.is_contiguous()
        && let Some(values) = t.try_storage_mut::<f32>()
    {
        // the whole buffer: the tensor's values and, past them, nothing anyone else reads
        round_slice(values);
        return t;
    }
    let t = t.to_contiguous();
    let shape = t.layout().shape().clone();
    let mut values = match t.as_slice::<f32>() {
        Some(values) => values.to_vec(),
        None => t.into_data().try_into_vec::<f32>().expect("an f32 tensor"),
    };
    round_slice(&mut values);
    FlexTensor::from_data(TensorData::new(values, shape))
}

/// The rounding as a backend operation with its own backward.
#[backend_extension(Flex, Autodiff)]
pub(crate) trait RoundBf16Backend: Backend {
    /// Every value rounded to bf16, still `f32`.
    fn round_bf16(x: FloatTensor<Self>) -> FloatTensor<Self>;
}

impl RoundBf16Backend for Flex {
    fn round_bf16(x: FlexTensor) -> FlexTensor {
        flex_round(x)
    }
}

/// The backward: the incoming gradient rounded to bf16 (the derivative of the two casts).
#[derive(Debug)]
struct RoundBf16Backward;

impl Backward<Flex, 1> for RoundBf16Backward {
    type State = ();

    fn backward(self, ops: Ops<Self::State, 1>, grads: &mut Gradients, _: &mut Checkpointer) {
        let grad = grads.consume::<Flex>(&ops.node);
        let [parent] = ops.parents;
        if let Some(node) = parent {
            grads.register::<Flex>(node.id, flex_round(grad));
        }
    }
}

impl<C: CheckpointStrategy> RoundBf16Backend for Autodiff<Flex, C> {
    fn round_bf16(x: FloatTensor<Self>) -> FloatTensor<Self> {
        RoundBf16Backward
            .prepare::<C>([x.node()])
            .compute_bound()
            .stateless(flex_round(x.into_primitive()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nan_keeps_its_sign_and_top_payload_as_the_half_cast_does() {
        for bits in [
            0x7fc0_0000u32,
            0xffc0_0000,
            0x7f80_0001,
            0x7fa1_2345,
            0xff81_0000,
        ] {
            let v = f32::from_bits(bits);
            let want = half::bf16::from_f32(v).to_f32().to_bits();
            assert_eq!(rounded_bits(v), want, "{bits:#x}");
        }
    }

    #[test]
    fn a_shared_or_strided_tensor_is_copied_and_the_original_left_as_it_was() {
        let device = burn::tensor::Device::flex();
        let values = [1.0 + 1.0 / 256.0 + 1e-6, 2.0, 3.0 + 1e-3, -4.0 - 1e-3];
        let x = Tensor::<2>::from_floats([[values[0], values[1]], [values[2], values[3]]], &device);
        let kept = x.clone();
        let rounded = round(x.clone());
        assert_eq!(
            kept.to_data().try_to_vec::<f32>().unwrap(),
            values,
            "the shared input was rounded in place"
        );
        let transposed = round(x.transpose());
        let want = |v: f32| half::bf16::from_f32(v).to_f32();
        assert_eq!(
            rounded.to_data().try_to_vec::<f32>().unwrap(),
            values.map(want)
        );
        assert_eq!(
            transposed.to_data().try_to_vec::<f32>().unwrap(),
            [values[0], values[2], values[1], values[3]].map(want)
        );
    }
}
