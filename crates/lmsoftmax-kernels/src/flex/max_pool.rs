//! 2x2 max pooling with stride 2 (layer13's, the VGGs' and the small CNN's) for the flex CPU
//! backend, in one pass each way.
//!
//! Burn 0.22's flex max pooling goes through its general 3-D pooling: the forward writes the
//! output and an `i64` index per output value, the backward scatters the output gradient through
//! those indices into a zeroed input gradient, one value at a time. Here the forward writes the
//! maxima only, and the backward finds each window's maximum again in the input it keeps (the
//! first of the window's four values in row-major order that equals the output, as PyTorch's and
//! Burn's indices point to the first maximum), writing the whole input gradient in one pass. A
//! NaN in a window is its maximum (as in PyTorch) and receives the gradient.
//!
//! [`forward`] takes a [`MaxPool2d`]: this path when it is 2x2 with stride 2, no padding, no
//! dilation and floor rounding, on an `f32` flex tensor; Burn's otherwise.

use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::backend::flex::FlexTensor;
use burn::backend::tensor::FloatTensor;
use burn::backend::{Autodiff, Backend, Dispatch, Flex, backend_extension};
use burn::nn::PaddingConfig2d;
use burn::nn::pool::MaxPool2d;
use burn::tensor::{DType, Tensor, TensorData};
use rayon::prelude::*;

/// Output values per rayon task, at least.
const MIN_TASK: usize = 1 << 13;

/// `pool.forward(x)`, on the fused 2x2 path where it applies (see the module docs).
///
/// ```
/// use burn::nn::pool::MaxPool2dConfig;
/// use burn::tensor::{Device, Tensor};
/// let device = Device::default().autodiff();
/// let pool = MaxPool2dConfig::new([2, 2]).with_strides([2, 2]).init();
/// let x = Tensor::<4>::from_floats([[[[1.0, 5.0], [3.0, 2.0]]]], &device).require_grad();
/// let y = lmsoftmax_kernels::flex::max_pool::forward(&pool, x.clone());
/// assert_eq!(y.to_data().try_to_vec::<f32>().unwrap(), [5.0]);
/// let dx = y.mul_scalar(2.0).sum().backward();
/// assert_eq!(x.grad(&dx).unwrap().to_data().try_to_vec::<f32>().unwrap(), [0.0, 2.0, 0.0, 0.0]);
/// ```
pub fn forward(pool: &MaxPool2d, x: Tensor<4>) -> Tensor<4> {
    let two_by_two = pool.kernel_size == [2, 2]
        && pool.stride == [2, 2]
        && pool.dilation == [1, 1]
        && !pool.ceil_mode
        && matches!(
            pool.padding,
            PaddingConfig2d::Valid | PaddingConfig2d::Explicit(0, 0, 0, 0)
        );
    let [_, _, h, w] = x.dims();
    if !two_by_two || h < 2 || w < 2 || x.dtype() != DType::F32 || !super::runs_on(&x.device()) {
        return pool.forward(x);
    }
    Tensor::from_dispatch(<Dispatch as FastMaxPoolBackend>::max_pool2x2(
        x.into_dispatch(),
    ))
}

/// The 2x2, stride-2 max pooling as a backend operation with its own backward.
#[backend_extension(Flex, Autodiff)]
pub(crate) trait FastMaxPoolBackend: Backend {
    /// `[n, c, h, w] -> [n, c, h / 2, w / 2]`, the maximum of each 2x2 window.
    fn max_pool2x2(x: FloatTensor<Self>) -> FloatTensor<Self>;
}

impl FastMaxPoolBackend for Flex {
    fn max_pool2x2(x: FlexTensor) -> FlexTensor {
        flex_forward(&x.to_contiguous())
    }
}

impl<C: CheckpointStrategy> FastMaxPoolBackend for Autodiff<Flex, C> {
    fn max_pool2x2(x: FloatTensor<Self>) -> FloatTensor<Self> {
        let prep = MaxPoolBackward
            .prepare::<C>([x.node()])
            .compute_bound()
            .stateful();
        let x = x.into_primitive().to_contiguous();
        let y = flex_forward(&x);
        match prep {
            OpsKind::Tracked(prep) => prep.finish((x, y.clone()), y),
            OpsKind::UnTracked(prep) => prep.finish(y),
        }
    }
}

/// The backward of [`FastMaxPoolBackend::max_pool2x2`].
#[derive(Debug)]
struct MaxPoolBackward;

impl Backward<Flex, 1> for MaxPoolBackward {
    /// The (contiguous) input and the output.
    type State = (FlexTensor, FlexTensor);

    fn backward(self, ops: Ops<Self::State, 1>, grads: &mut Gradients, _: &mut Checkpointer) {
        let grad = grads.consume::<Flex>(&ops.node).to_contiguous();
        let [node_x] = ops.parents;
        let (x, y) = ops.state;
        if let Some(node) = node_x {
            let dims = dims(&x);
            let dx = input_grad(
                x.storage::<f32>(),
                dims,
                y.storage::<f32>(),
                grad.storage::<f32>(),
            );
            grads.register::<Flex>(node.id, FlexTensor::from_data(TensorData::new(dx, dims)));
        }
    }
}

/// The shape of a 4-D tensor.
fn dims(t: &FlexTensor) -> [usize; 4] {
    std::array::from_fn(|i| t.layout().shape()[i])
}

/// Forward on a contiguous `f32` flex tensor.
fn flex_forward(x: &FlexTensor) -> FlexTensor {
    let [n, c, h, w] = dims(x);
    let y = maxima(x.storage::<f32>(), [n, c, h, w]);
    FlexTensor::from_data(TensorData::new(y, [n, c, h / 2, w / 2]))
}

/// The larger of two values, NaN if either is (the comparison PyTorch's max pooling makes).
#[inline]
fn nan_max(a: f32, b: f32) -> f32 {
    if b.is_nan() || b > a { b } else { a }
}

/// The 2x2 maxima of every plane of `x` (`[n, c, h, w]` contiguous), `[n, c, h / 2, w / 2]`;
/// an odd last row or column is left out, as floor rounding does.
fn maxima(x: &[f32], [n, c, h, w]: [usize; 4]) -> Vec<f32> {
    let (ho, wo) = (h / 2, w / 2);
    let mut y = vec![0.0f32; n * c * ho * wo];
    if y.is_empty() {
        return y;
    }
    y.par_chunks_mut(ho * wo)
        .zip(x.par_chunks(h * w))
        .with_min_len(MIN_TASK.div_ceil(ho * wo))
        .for_each(|(out, plane)| {
            for (oh, out_row) in out.chunks_mut(wo).enumerate() {
                let (top, bottom) = (&plane[2 * oh * w..][..w], &plane[(2 * oh + 1) * w..][..w]);
                for (ow, o) in out_row.iter_mut().enumerate() {
                    let upper = nan_max(top[2 * ow], top[2 * ow + 1]);
                    let lower = nan_max(bottom[2 * ow], bottom[2 * ow + 1]);
                    *o = nan_max(upper, lower);
                }
            }
        });
    y
}

/// The input gradient: each window's output gradient at the first of its four inputs (in
/// row-major order) equal to its maximum (or NaN where the maximum is), zero elsewhere.
fn input_grad(x: &[f32], [n, c, h, w]: [usize; 4], y: &[f32], dy: &[f32]) -> Vec<f32> {
    let (ho, wo) = (h / 2, w / 2);
    let mut dx = vec![0.0f32; n * c * h * w];
    if dx.is_empty() || ho * wo == 0 {
        return dx;
    }
    dx.par_chunks_mut(h * w)
        .zip(x.par_chunks(h * w))
        .zip(y.par_chunks(ho * wo).zip(dy.par_chunks(ho * wo)))
        .with_min_len(MIN_TASK.div_ceil(ho * wo))
        .for_each(|((dx, x), (y, dy))| {
            for oh in 0..ho {
                for ow in 0..wo {
                    let (max, g) = (y[oh * wo + ow], dy[oh * wo + ow]);
                    let at = [
                        2 * oh * w + 2 * ow,
                        2 * oh * w + 2 * ow + 1,
                        (2 * oh + 1) * w + 2 * ow,
                        (2 * oh + 1) * w + 2 * ow + 1,
                    ];
                    let hit = at
                        .iter()
                        .position(|&i| x[i] == max || (max.is_nan() && x[i].is_nan()))
                        .unwrap_or(0);
                    dx[at[hit]] = g;
                }
            }
        });
    dx
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::nn::pool::MaxPool2dConfig;
    use burn::tensor::{Device, Distribution};

    /// Output and input gradient of `pool` on `x` with the output gradient `dy`, through
    /// `forward` (ours) or Burn's `MaxPool2d::forward`.
    fn run(pool: &MaxPool2d, x: &Tensor<4>, dy: &Tensor<4>, ours: bool) -> (Vec<f32>, Vec<f32>) {
        let x = x.clone().require_grad();
        let y = if ours {
            forward(pool, x.clone())
        } else {
            pool.forward(x.clone())
        };
        let grads = (y.clone() * dy.clone()).sum().backward();
        let dx = x.grad(&grads).expect("x takes a gradient");
        let vec = |t: Tensor<4>| t.to_data().try_to_vec::<f32>().unwrap();
        (vec(y), vec(dx))
    }

    #[test]
    fn matches_burns_max_pool_and_its_gradient() {
        let device = Device::flex().autodiff();
        let pool = MaxPool2dConfig::new([2, 2]).with_strides([2, 2]).init();
        // even and odd sides (the odd last row and column are left out), one plane and many
        for dims in [[2, 3, 8, 8], [1, 1, 5, 7], [3, 4, 6, 3], [64, 16, 16, 16]] {
            let x = Tensor::<4>::random(dims, Distribution::Default, &device);
            let [n, c, h, w] = dims;
            let dy = Tensor::<4>::random([n, c, h / 2, w / 2], Distribution::Default, &device);
            assert_eq!(
                run(&pool, &x, &dy, true),
                run(&pool, &x, &dy, false),
                "{dims:?}"
            );
        }
    }

    #[test]
    fn ties_send_the_gradient_to_the_first_maximum_and_a_nan_is_the_maximum() {
        let device = Device::flex().autodiff();
        let pool = MaxPool2dConfig::new([2, 2]).with_strides([2, 2]).init();
        // window 0: a tie between the 2nd and 4th values; window 1: a NaN in the 3rd
        let x = Tensor::<4>::from_floats(
            [[[[1.0, 3.0, 0.0, 9.0], [-1.0, 3.0, f32::NAN, 2.0]]]],
            &device,
        );
        let dy = Tensor::<4>::from_floats([[[[10.0, 20.0]]]], &device);
        let (y, dx) = run(&pool, &x, &dy, true);
        assert_eq!(y[0], 3.0);
        assert!(y[1].is_nan());
        assert_eq!(dx, [0.0, 10.0, 0.0, 0.0, 0.0, 0.0, 20.0, 0.0]);
    }

    #[test]
    fn other_pools_and_backends_take_burns_path() {
        let device = Device::flex().autodiff();
        // 3x3 with stride 2 and padding 1 (ResNet's): Burn's own, the same values
        let pool = MaxPool2dConfig::new([3, 3])
            .with_strides([2, 2])
            .with_padding(PaddingConfig2d::Explicit(1, 1, 1, 1))
            .init();
        let x = Tensor::<4>::random([2, 3, 9, 9], Distribution::Default, &device);
        let dy = Tensor::<4>::random([2, 3, 5, 5], Distribution::Default, &device);
        assert_eq!(run(&pool, &x, &dy, true), run(&pool, &x, &dy, false));
    }
}
