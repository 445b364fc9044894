//! 2-D convolution for the flex CPU backend: im2col + one matrix product per few images, in both
//! directions, with Burn's own convolution everywhere else.
//!
//! Burn 0.22 computes a convolution's weight gradient as another convolution, with the batch as
//! channels and the output gradient as a `Ho x Wo` kernel. On flex that becomes, for each input
//! channel, a matrix product with 9 columns (the 3x3 positions) and a depth of `N * Ho * Wo`,
//! which re-reads the whole output gradient once per input channel: the largest single cost of
//! a layer13 training step. Here the same gradient is the textbook product
//!
//! ```text
//! dW [O, C*kh*kw] = sum over images  dY_n [O, Ho*Wo] x im2col(X_n)^T [Ho*Wo, C*kh*kw]
//! ```
//!
//! made of a few images at a time (so the product is deep enough), each thread summing its own
//! images into its own accumulator. A grouped convolution (ResNeXt's) is one such product per
//! group, on the group's channels and weight rows. The forward is the matching `W x im2col(X_n)`, written
//! straight into the NCHW output (flex converts to NHWC, builds 512-position tiles and scatters
//! the result back). The input gradient stays Burn's in f32 (a transposed convolution, already
//! a well-shaped product on flex); with the bf16 units it is ours (`input_grad`).
//!
//! Modules: `im2col` (the geometry and the matrices the products multiply), `weight_grad`,
//! `input_grad`; this one holds the forward and the backend operation tying them together.
//!
//! [`forward`] is what the networks of `lmsoftmax-models` call in place of [`Conv2d::forward`]:
//! the same result, the same parameters and records; other backends, asymmetric padding and
//! non-`f32` tensors take Burn's path unchanged. Inside a bf16 [`autocast`] scope the
//! operands and the output are rounded to bf16 around the same kernels, and on a CPU with
//! AVX-512-BF16 the three products (forward, weight gradient, and the input gradient as
//! `W^T x dY` scattered back by col2im) run on bf16 operands ([`super::bf16_gemm`]); there a
//! stride-1 "same" forward reads its input planes in place, without an im2col matrix
//! ([`super::bf16_gemm::ShiftedPlanes`]).

use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::backend::flex::FlexTensor;
use burn::backend::ops::{ConvOptions, ModuleOps};
use burn::backend::tensor::FloatTensor;
use burn::backend::{Autodiff, Backend, Dispatch, Flex, backend_extension};
use burn::nn::PaddingConfig2d;
use burn::nn::conv::Conv2d;
use burn::tensor::{DType, Tensor, TensorData};
use rayon::prelude::*;

use crate::autocast::{self, Precision};

mod im2col;
mod input_grad;
mod weight_grad;

use im2col::{Geometry, Scratch, columns, images_per_product};
use input_grad::input_grad_bf16;
pub use weight_grad::weight_grad;

/// Applies `conv` to `x` (`[n, c_in, h, w]`), exactly as [`Conv2d::forward`] does, through
/// [`forward_f32`] and [`weight_grad`] where they apply (flex backend, `f32`, symmetric
/// padding; any number of groups).
///
/// ```
/// use burn::nn::conv::Conv2dConfig;
/// use burn::tensor::{Distribution, Tensor};
/// let device = Default::default();
/// let conv = Conv2dConfig::new([3, 8], [3, 3]).init(&device);
/// let x = Tensor::<4>::random([2, 3, 10, 10], Distribution::Default, &device);
/// let y = lmsoftmax_kernels::flex::conv::forward(&conv, x.clone());
/// assert_eq!(y.dims(), [2, 8, 8, 8]);
/// y.to_data().assert_approx_eq::<f32>(&conv.forward(x).to_data(), Default::default());
/// ```
pub fn forward(conv: &Conv2d, x: Tensor<4>) -> Tensor<4> {
    if autocast::current() == Precision::Bf16 && x.dtype() == DType::F32 {
        return forward_bf16(conv, x);
    }
    if x.dtype() != DType::F32 || !super::runs_on(&x.device()) {
        return conv.forward(x);
    }
    match symmetric_padding(conv) {
        Some(padding) => im2col_conv(
            conv,
            x,
            conv.weight.val(),
            conv.bias.as_ref().map(|b| b.val()),
            padding,
        ),
        None => conv.forward(x),
    }
}

/// `[top, left]` of a symmetric explicit padding (or none); `None` for the rest ("same" can be
/// asymmetric), which takes Burn's path.
fn symmetric_padding(conv: &Conv2d) -> Option<[usize; 2]> {
    match conv.padding {
        PaddingConfig2d::Valid => Some([0, 0]),
        PaddingConfig2d::Explicit(top, left, bottom, right) if top == bottom && left == right => {
            Some([top, left])
        }
        _ => None,
    }
}

/// `conv`'s geometry applied to `x` with `weight` and `bias` through the im2col operation.
fn im2col_conv(
    conv: &Conv2d,
    x: Tensor<4>,
    weight: Tensor<4>,
    bias: Option<Tensor<1>>,
    [top, left]: [usize; 2],
) -> Tensor<4> {
    let options = ConvOptions::new(conv.stride, [top, left], conv.dilation, conv.groups);
    let out = <Dispatch as FastConvBackend>::conv2d_im2col(
        x.into_dispatch(),
        weight.into_dispatch(),
        options,
    );
    let out = Tensor::<4>::from_dispatch(out);
    match bias {
        Some(bias) => {
            let c = bias.dims()[0];
            out + bias.reshape([1, c, 1, 1])
        }
        None => out,
    }
}

/// `[(top, bottom), (left, right)]` of `conv`'s padding on an `[h, w]` input, as
/// [`Conv2d::forward`] resolves it ("same": the output size `ceil(in / stride)`, the extra row or
/// column at the end).
fn padding_pairs(conv: &Conv2d, input: [usize; 2]) -> [(usize, usize); 2] {
    match conv.padding {
        PaddingConfig2d::Valid => [(0, 0); 2],
        PaddingConfig2d::Explicit(top, left, bottom, right) => [(top, bottom), (left, right)],
        PaddingConfig2d::Same => std::array::from_fn(|axis| {
            let (k, stride, size) = (conv.kernel_size[axis], conv.stride[axis], input[axis]);
            let out = size.div_ceil(stride);
            let total = if out > 0 {
                ((out - 1) * stride + k).saturating_sub(size)
            } else {
                0
            };
            (total / 2, total - total / 2)
        }),
    }
}

/// [`forward`] inside a bf16 [`autocast`] scope, as PyTorch's autocast `conv2d`: input, weight
/// and bias rounded to bf16, the products summed in f32 (the im2col kernels on flex, Burn's
/// convolution elsewhere), the output rounded to bf16; the rounding casts round the gradients
/// flowing back through them too.
fn forward_bf16(conv: &Conv2d, x: Tensor<4>) -> Tensor<4> {
    let x = autocast::round_to_bf16(x);
    let weight = autocast::round_to_bf16(conv.weight.val());
    let bias = conv.bias.as_ref().map(|b| autocast::round_to_bf16(b.val()));
    let out = match symmetric_padding(conv) {
        Some(padding) if super::runs_on(&x.device()) => im2col_conv(conv, x, weight, bias, padding),
        _ => {
            let [_, _, h, w] = x.dims();
            let options = ConvOptions::new_with_padding(
                conv.stride,
                padding_pairs(conv, [h, w]),
                conv.dilation,
                conv.groups,
            );
            burn::tensor::module::conv2d(x, weight, bias, options)
        }
    };
    autocast::round_to_bf16(out)
}

/// The convolution (no bias) as a backend operation with its own backward.
#[backend_extension(Flex, Autodiff)]
pub(crate) trait FastConvBackend: Backend {
    /// `conv2d(x, weight)` with symmetric padding.
    fn conv2d_im2col(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        options: ConvOptions<2>,
    ) -> FloatTensor<Self>;
}

impl FastConvBackend for Flex {
    fn conv2d_im2col(x: FlexTensor, weight: FlexTensor, options: ConvOptions<2>) -> FlexTensor {
        flex_forward(x, weight, &options)
    }
}

/// The backward: Burn's input gradient, the weight gradient of [`weight_grad`] (Burn's for
/// tensors other than `f32`).
#[derive(Debug)]
struct FastConvBackward;

impl Backward<Flex, 2> for FastConvBackward {
    /// Input, weight and options of the forward.
    type State = (FlexTensor, FlexTensor, ConvOptions<2>);

    fn backward(self, ops: Ops<Self::State, 2>, grads: &mut Gradients, _: &mut Checkpointer) {
        let grad = grads.consume::<Flex>(&ops.node);
        let [node_x, node_w] = ops.parents;
        let (x, weight, options) = ops.state;
        if let Some(node) = node_w {
            let dw = if [x.dtype(), grad.dtype()] == [DType::F32; 2] {
                let x = x.to_contiguous();
                let grad = grad.to_contiguous();
                let shape = weight.layout().shape().clone();
                let dims: [usize; 4] = std::array::from_fn(|i| shape[i]);
                let x_dims: [usize; 4] = std::array::from_fn(|i| x.layout().shape()[i]);
                let g_dims: [usize; 4] = std::array::from_fn(|i| grad.layout().shape()[i]);
                let dw = weight_grad(
                    x.storage::<f32>(),
                    x_dims,
                    grad.storage::<f32>(),
                    g_dims,
                    [dims[2], dims[3]],
                    &options,
                );
                FlexTensor::from_data(TensorData::new(dw, dims))
            } else {
                <Flex as ModuleOps<Flex>>::conv2d_weight_backward(
                    x.clone(),
                    weight.clone(),
                    grad.clone(),
                    options.clone(),
                )
            };
            grads.register::<Flex>(node.id, dw);
        }
        if let Some(node) = node_x {
            let dx = if bf16_units_in_use()
                && [x.dtype(), weight.dtype(), grad.dtype()] == [DType::F32; 3]
            {
                let dims = |t: &FlexTensor| -> [usize; 4] {
                    std::array::from_fn(|i| t.layout().shape()[i])
                };
                let (x_dims, w_dims, g_dims) = (dims(&x), dims(&weight), dims(&grad));
                let (weight, grad) = (weight.to_contiguous(), grad.to_contiguous());
                let dx = input_grad_bf16(
                    weight.storage::<f32>(),
                    w_dims,
                    grad.storage::<f32>(),
                    g_dims,
                    x_dims,
                    &options,
                );
                FlexTensor::from_data(TensorData::new(dx, x_dims))
            } else {
                <Flex as ModuleOps<Flex>>::conv2d_x_backward(x, weight, grad, options)
            };
            grads.register::<Flex>(node.id, dx);
        }
    }
}

impl<C: CheckpointStrategy> FastConvBackend for Autodiff<Flex, C> {
    fn conv2d_im2col(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        options: ConvOptions<2>,
    ) -> FloatTensor<Self> {
        let prep = FastConvBackward
            .prepare::<C>([x.node(), weight.node()])
            .compute_bound()
            .stateful();
        let (x, weight) = (x.into_primitive(), weight.into_primitive());
        match prep {
            OpsKind::Tracked(prep) => {
                let out = flex_forward(x.clone(), weight.clone(), &options);
                prep.finish((x, weight, options), out)
            }
            OpsKind::UnTracked(prep) => prep.finish(flex_forward(x, weight, &options)),
        }
    }
}

/// Whether the convolutions' products (forward, weight and input gradients) run on the CPU's
/// bf16 units: inside a bf16 [`autocast`] scope (on the thread that runs the forward or the
/// backward) on a CPU with AVX-512-BF16 ([`super::bf16_gemm`]).
pub fn bf16_units_in_use() -> bool {
    autocast::current() == Precision::Bf16 && super::bf16_gemm::available()
}

/// `conv2d(x, w)` (symmetric padding, no bias, `options.groups` groups) for contiguous `f32` `x`
/// `[n, c, h, w]` and `weight` `[o, c / groups, kh, kw]`: per few images and per group,
/// `W_g [o / groups, c/groups*kh*kw] x im2col_g`, written straight into the NCHW output.
/// Returns the output and its shape. Inside a bf16 [`autocast`] scope on a CPU with
/// AVX-512-BF16 the products take bf16 operands ([`bf16_units_in_use`]).
///
/// ```
/// use burn::backend::ops::ConvOptions;
/// // 1 image, 1 channel, 3x3 input, 2x2 kernel picking the top-left and bottom-right taps
/// let x = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0];
/// let w = [1.0, 0.0, 0.0, 1.0];
/// let options = ConvOptions::new([1, 1], [0, 0], [1, 1], 1);
/// let (y, dims) = lmsoftmax_kernels::flex::conv::forward_f32(&x, [1, 1, 3, 3], &w, [1, 1, 2, 2], &options);
/// assert_eq!(dims, [1, 1, 2, 2]);
/// assert_eq!(y, [1.0 + 5.0, 2.0 + 6.0, 4.0 + 8.0, 5.0 + 9.0]);
/// ```
pub fn forward_f32(
    x: &[f32],
    x_dims: [usize; 4],
    weight: &[f32],
    w_dims: [usize; 4],
    options: &ConvOptions<2>,
) -> (Vec<f32>, [usize; 4]) {
    let [n, _, _, _] = x_dims;
    let [o, _, kh, kw] = w_dims;
    assert_eq!(x.len(), x_dims.iter().product::<usize>());
    assert_eq!(weight.len(), w_dims.iter().product::<usize>());
    let geometry = Geometry::new(x_dims, w_dims, options);
    let [ho, wo] = geometry.out;
    let dims = [n, o, ho, wo];
    let positions = ho * wo;
    let mut out = vec![0.0f32; n * o * positions];
    // per group: `og` output channels, each a product over `k2` = (channels of the group) * kh * kw
    let og = o / geometry.groups;
    let k2 = geometry.group_channels * kh * kw;
    if n == 0 || positions == 0 || o == 0 {
        return (out, dims);
    }
    // A 1x1 convolution multiplies each image's own [c, positions] matrix: no im2col, one
    // image per product, written in place.
    let per_product = if geometry.pointwise() {
        1
    } else {
        images_per_product(positions, n)
    };
    let chunks = n.div_ceil(per_product);
    let threads = rayon::current_num_threads();
    let parallelism = if chunks < threads {
        gemm::Parallelism::Rayon(threads)
    } else {
        gemm::Parallelism::None
    };
    let bf16_products = bf16_units_in_use();
    // with the bf16 units, each group's weights [og, k2] packed once for every chunk of images
    let packed_weights: Vec<super::bf16_gemm::PackedA> = if bf16_products {
        (0..geometry.groups)
            // SAFETY: the group's og rows of k2 weights, row-major, are in `weight`; the bf16
            // units are there (bf16_units_in_use).
            .map(|group| unsafe {
                super::bf16_gemm::PackedA::new(
                    og,
                    k2,
                    weight.as_ptr().add(group * og * k2),
                    [k2, 1],
                )
            })
            .collect()
    } else {
        Vec::new()
    };
    // with the bf16 units, a stride-1 "same" convolution reads its input planes in place
    let shifted_taps = if bf16_products {
        geometry.shifted_taps()
    } else {
        None
    };
    let run = |(chunk, out): (usize, &mut [f32]), scratch: &mut Scratch| {
        let images = chunk * per_product..((chunk + 1) * per_product).min(n);
        let count = images.len();
        let depth = count * positions;
        // one image: the product lands in its [o, positions] block; several: in a scratch
        // [o, depth] matrix, then copied image by image
        let direct = count == 1;
        if !direct {
            scratch.packed.resize(o * depth, 0.0);
        }
        let dst: *mut f32 = if direct {
            out.as_mut_ptr()
        } else {
            scratch.packed.as_mut_ptr()
        };
        for group in 0..geometry.groups {
            if let (Some(weights), Some((shifts, masks))) =
                (packed_weights.get(group), &shifted_taps)
            {
                // b read in place from the shifted planes: no im2col matrix
                let [_, c, h, w] = x_dims;
                let start = (images.start * c + group * geometry.group_channels) * h * w;
                let planes = super::bf16_gemm::ShiftedPlanes::new(
                    &x[start..],
                    c * h * w,
                    h * w,
                    geometry.group_channels,
                    count,
                    positions,
                    shifts,
                    masks,
                );
                // SAFETY: dst as below; the bf16 units are there (packed_weights is not empty).
                unsafe {
                    super::bf16_gemm::gemm_shifted(
                        weights,
                        &planes,
                        dst.add(group * og * depth),
                        depth,
                        false,
                        matches!(parallelism, gemm::Parallelism::Rayon(_)),
                    )
                };
                continue;
            }
            let cols = columns(x, &geometry, group, images.clone(), &mut scratch.cols);
            // SAFETY: dst is [o, depth] row-major (o * depth elements: `out` holds count * o *
            // positions = o * depth when direct, the scratch was resized to it otherwise), of
            // which this group writes rows group*og.. (og of them); lhs is the group's weight
            // rows, [og, k2] row-major; rhs the group's im2col matrix [k2, depth] row-major.
            // With bf16 units under a bf16 autocast scope, the same product on bf16 operands.
            unsafe {
                if let Some(weights) = packed_weights.get(group) {
                    super::bf16_gemm::gemm_packed(
                        weights,
                        depth,
                        cols.as_ptr(),
                        [depth, 1],
                        dst.add(group * og * depth),
                        depth,
                        false,
                        matches!(parallelism, gemm::Parallelism::Rayon(_)),
                    );
                    continue;
                }
                gemm::gemm(
                    og,
                    depth,
                    k2,
                    dst.add(group * og * depth),
                    1,
                    depth as isize,
                    false,
                    weight.as_ptr().add(group * og * k2),
                    1,
                    k2 as isize,
                    cols.as_ptr(),
                    1,
                    depth as isize,
                    0.0,
                    1.0,
                    false,
                    false,
                    false,
                    parallelism,
                );
            }
        }
        if !direct {
            for slot in 0..count {
                for oc in 0..o {
                    out[(slot * o + oc) * positions..][..positions].copy_from_slice(
                        &scratch.packed[oc * depth + slot * positions..][..positions],
                    );
                }
            }
        }
    };
    if chunks < threads {
        let mut scratch = Scratch::default();
        out.chunks_mut(per_product * o * positions)
            .enumerate()
            .for_each(|item| run(item, &mut scratch));
    } else {
        out.par_chunks_mut(per_product * o * positions)
            .enumerate()
            .for_each_init(Scratch::default, |scratch, item| run(item, scratch));
    }
    (out, dims)
}

/// The forward on flex tensors: [`forward_f32`] for `f32`, flex's own convolution otherwise.
fn flex_forward(x: FlexTensor, weight: FlexTensor, options: &ConvOptions<2>) -> FlexTensor {
    if x.dtype() != DType::F32 || weight.dtype() != DType::F32 {
        return <Flex as ModuleOps<Flex>>::conv2d(x, weight, None, options.clone());
    }
    let (x, weight) = (x.to_contiguous(), weight.to_contiguous());
    let dims = |t: &FlexTensor| -> [usize; 4] { std::array::from_fn(|i| t.layout().shape()[i]) };
    let (y, y_dims) = forward_f32(
        x.storage::<f32>(),
        dims(&x),
        weight.storage::<f32>(),
        dims(&weight),
        options,
    );
    FlexTensor::from_data(TensorData::new(y, y_dims))
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::nn::conv::Conv2dConfig;
    use burn::tensor::{Device, Distribution};

    /// Weight and input gradients of `sum(conv(x) * r)` through `f`.
    fn grads_of(
        conv: &Conv2d,
        x: &Tensor<4>,
        r: &Tensor<4>,
        f: impl Fn(&Conv2d, Tensor<4>) -> Tensor<4>,
    ) -> (Vec<f32>, Vec<f32>, Option<Vec<f32>>, Vec<f32>) {
        let x = x.clone().require_grad();
        let y = f(conv, x.clone());
        let grads = (y.clone() * r.clone()).sum().backward();
        let v = |t: Tensor<4>| t.into_data().try_to_vec::<f32>().unwrap();
        (
            v(y),
            v(conv.weight.val().grad(&grads).unwrap()),
            conv.bias.as_ref().map(|b| {
                b.val()
                    .grad(&grads)
                    .unwrap()
                    .into_data()
                    .try_to_vec::<f32>()
                    .unwrap()
            }),
            v(x.grad(&grads).unwrap()),
        )
    }

    fn assert_close(got: &[f32], want: &[f32], what: &str) {
        crate::testing::assert_close(got, want, 1e-4, what);
    }

    /// Against Burn's own convolution and its gradients, across strides, paddings, dilations,
    /// kernel sizes, bias, and batch sizes that make one or several images per product.
    #[test]
    fn matches_burns_convolution_and_gradients() {
        let device = Device::flex().autodiff();
        let cases = [
            // (n, c_in, c_out, h, w, kernel, stride, padding, dilation, bias, groups)
            (3, 4, 5, 9, 7, 3, 1, 1, 1, false, 1),
            (2, 3, 6, 32, 32, 3, 1, 1, 1, true, 1), // 1024 positions: one image per product
            (5, 2, 3, 8, 8, 3, 2, 1, 1, false, 1),
            (4, 3, 4, 11, 10, 3, 1, 2, 2, true, 1),
            (9, 6, 7, 6, 6, 1, 1, 0, 1, false, 1), // 1x1, many images per product
            (2, 2, 3, 7, 9, 5, 3, 2, 1, false, 1),
            (1, 3, 2, 6, 5, 3, 1, 0, 1, true, 1), // a single image: products in parallel
            (3, 4, 4, 5, 5, 7, 1, 3, 1, false, 1), // kernel wider than some rows' valid range
            (40, 3, 4, 8, 8, 3, 1, 1, 1, false, 1), // several chunks of 8 images, in parallel
            (9, 2, 3, 23, 23, 3, 1, 1, 1, true, 1), // several one-image chunks, in parallel
            // grouped, as ResNeXt's 3x3 convolutions (stride 1 and 2), and depthwise
            (3, 8, 8, 9, 9, 3, 1, 1, 1, false, 4),
            (2, 12, 6, 10, 9, 3, 2, 1, 1, true, 3), // more input than output channels a group
            (2, 6, 12, 24, 24, 3, 1, 1, 1, false, 2), // one image per product
            (5, 5, 10, 7, 7, 3, 1, 2, 2, true, 5),  // depthwise with a channel multiplier of 2
            // 1x1 stride 1: the image itself is the product's matrix (one image per product
            // forward; the weight gradient too once an image has 512 positions)
            (3, 4, 6, 24, 24, 1, 1, 0, 1, true, 1),
            (2, 8, 4, 23, 23, 1, 1, 0, 1, false, 2),
            (4, 6, 3, 5, 5, 1, 2, 0, 1, false, 1), // 1x1 stride 2 (ResNet downsampling): im2col
        ];
        for (k, &(n, ci, co, h, w, ks, s, p, d, bias, g)) in cases.iter().enumerate() {
            let conv = Conv2dConfig::new([ci, co], [ks, ks])
                .with_stride([s, s])
                .with_padding(PaddingConfig2d::Explicit(p, p, p, p))
                .with_dilation([d, d])
                .with_bias(bias)
                .with_groups(g)
                .init(&device);
            let x = Tensor::<4>::random([n, ci, h, w], Distribution::Normal(0.0, 1.0), &device);
            let out_shape = conv.forward(x.clone()).dims();
            let r = Tensor::<4>::random(out_shape, Distribution::Normal(0.0, 1.0), &device);
            let fast = grads_of(&conv, &x, &r, forward);
            let burn = grads_of(&conv, &x, &r, |c, x| c.forward(x));
            let what = format!("case {k}");
            assert_close(&fast.0, &burn.0, &format!("{what} output"));
            assert_close(&fast.1, &burn.1, &format!("{what} weight grad"));
            if let (Some(a), Some(b)) = (&fast.2, &burn.2) {
                assert_close(a, b, &format!("{what} bias grad"));
            }
            assert_close(&fast.3, &burn.3, &format!("{what} input grad"));
        }
    }

    /// Resumed runs must reproduce uninterrupted ones bit for bit: the weight gradient may not
    /// depend on the thread count or on how rayon happened to share the work.
    #[test]
    fn weight_grad_is_bitwise_the_same_with_any_thread_count() {
        let options = ConvOptions::new([1, 1], [1, 1], [1, 1], 1);
        for (n, c, o, side) in [(37usize, 5usize, 6usize, 8usize), (6, 3, 4, 24)] {
            let x: Vec<f32> = (0..n * c * side * side)
                .map(|i| ((i * 7919 % 1000) as f32).sin())
                .collect();
            let dy: Vec<f32> = (0..n * o * side * side)
                .map(|i| ((i * 104_729 % 977) as f32).cos())
                .collect();
            let run = |threads: usize| {
                crate::testing::with_threads(threads, || {
                    let (x_dims, dy_dims) = ([n, c, side, side], [n, o, side, side]);
                    weight_grad(&x, x_dims, &dy, dy_dims, [3, 3], &options)
                })
            };
            let one = run(1);
            for threads in [2, 3, 5] {
                for _ in 0..3 {
                    assert!(run(threads) == one, "{threads} threads, n = {n}");
                }
            }
        }
    }

    /// Under a bf16 autocast scope on a CPU with the bf16 units, the weight gradient's products
    /// take bf16 operands whichever thread runs them: the partitions run on rayon's workers,
    /// outside the caller's (per-thread) scope. The operands here are not bf16 values and round
    /// down by a fixed fraction, so an f32 product of them is far (~2e-3 relative) from the
    /// product of their bf16 roundings, and two orders of f32 sums are not (~1e-6).
    #[test]
    fn under_bf16_autocast_the_weight_gradient_takes_bf16_operands_on_every_thread() {
        use crate::autocast::autocast;
        if !super::super::bf16_gemm::available() {
            eprintln!("SKIPPED: this CPU has no AVX-512-BF16, the weight gradient stays f32");
            return;
        }
        let options = ConvOptions::new([1, 1], [1, 1], [1, 1], 1);
        let (n, c, o, side) = (37usize, 5usize, 6usize, 8usize);
        let (x_dims, dy_dims) = ([n, c, side, side], [n, o, side, side]);
        // in [1, 2) the bf16 step is 2^-7 = 0.0078: the 0.0025 above a multiple of 1/8 rounds off
        let x: Vec<f32> = (0..n * c * side * side)
            .map(|i| 1.0 + (i * 7 % 8) as f32 / 8.0 + 0.0025)
            .collect();
        let dy: Vec<f32> = (0..n * o * side * side)
            .map(|i| 1.0 + (i * 3 % 4) as f32 / 4.0 + 0.003)
            .collect();
        let round = |v: &[f32]| -> Vec<f32> {
            v.iter()
                .map(|v| {
                    let bits = v.to_bits();
                    f32::from_bits(bits.wrapping_add(0x7fff + ((bits >> 16) & 1)) & 0xffff_0000)
                })
                .collect()
        };
        let (xr, dyr) = (round(&x), round(&dy));
        let grad = |x: &[f32], dy: &[f32]| weight_grad(x, x_dims, dy, dy_dims, [3, 3], &options);
        let want = grad(&xr, &dyr);
        let plain = grad(&x, &dy);
        let scale = want.iter().fold(0f32, |m, v| m.max(v.abs()));
        let off = |got: &[f32]| {
            got.iter()
                .zip(&want)
                .map(|(g, w)| (g - w).abs() / scale)
                .fold(0f32, f32::max)
        };
        assert!(
            off(&plain) > 1e-3,
            "the test's operands do not tell the paths apart"
        );
        let bf16_grad = || {
            let _bf16 = autocast(Precision::Bf16);
            grad(&x, &dy)
        };
        // from a thread outside rayon's pool (as training calls it), and from inside pools of
        // several sizes; the same bits every time
        let outside = bf16_grad();
        assert!(
            off(&outside) < 1e-5,
            "off by {} of the largest value",
            off(&outside)
        );
        for threads in [1, 2, 3] {
            let inside = crate::testing::with_threads(threads, bf16_grad);
            assert!(inside == outside, "{threads} threads");
        }
    }

    /// The weight gradient against its definition, summed term by term in f64, with one group
    /// and with several.
    #[test]
    fn weight_grad_equals_the_definition() {
        for (c, o, groups) in [(2usize, 3usize, 1usize), (4, 6, 2), (6, 3, 3)] {
            weight_grad_equals_the_definition_with(c, o, groups);
        }
    }

    fn weight_grad_equals_the_definition_with(c: usize, o: usize, groups: usize) {
        let (n, h, w, kh, kw) = (3usize, 6usize, 5usize, 3usize, 2usize);
        let options = ConvOptions::new([2, 1], [1, 2], [1, 2], groups);
        let (cg, og) = (c / groups, o / groups);
        let ho = (h + 2 - kh) / 2 + 1;
        let wo = (w + 4 - 2 * (kw - 1) - 1) + 1;
        let x: Vec<f32> = (0..n * c * h * w)
            .map(|i| ((i * 37 % 11) as f32) - 5.0)
            .collect();
        let dy: Vec<f32> = (0..n * o * ho * wo)
            .map(|i| ((i * 13 % 7) as f32) - 3.0)
            .collect();
        let got = weight_grad(&x, [n, c, h, w], &dy, [n, o, ho, wo], [kh, kw], &options);
        assert_eq!(got.len(), o * cg * kh * kw);
        for oc in 0..o {
            // output channel oc sees input channels of its group only
            for icg in 0..cg {
                let ic = oc / og * cg + icg;
                for ki in 0..kh {
                    for kj in 0..kw {
                        let mut want = 0.0f64;
                        for img in 0..n {
                            for oh in 0..ho {
                                for ow in 0..wo {
                                    let ih = (oh * 2 + ki) as isize - 1;
                                    let iw = (ow + kj * 2) as isize - 2;
                                    if ih < 0 || iw < 0 || ih >= h as isize || iw >= w as isize {
                                        continue;
                                    }
                                    let xv =
                                        x[((img * c + ic) * h + ih as usize) * w + iw as usize];
                                    let gv = dy[((img * o + oc) * ho + oh) * wo + ow];
                                    want += xv as f64 * gv as f64;
                                }
                            }
                        }
                        let at = ((oc * cg + icg) * kh + ki) * kw + kj;
                        assert_eq!(
                            got[at] as f64, want,
                            "dW[{oc},{icg},{ki},{kj}], {groups} groups"
                        );
                    }
                }
            }
        }
    }

    /// Each value is within one bf16 step of the reference's, and is a bf16 value itself.
    fn assert_bf16_close(got: &[f32], want: &[f32], what: &str) {
        assert_eq!(got.len(), want.len(), "{what}: lengths");
        let scale = want.iter().fold(0f32, |m, v| m.max(v.abs()));
        for (i, (g, w)) in got.iter().zip(want).enumerate() {
            assert_eq!(
                g.to_bits() & 0xffff,
                0,
                "{what}[{i}] = {g} is not a bf16 value"
            );
            // the f32 sums of two implementations differ in their last bits, which can move
            // the bf16 rounding by one step of the value (or of the largest, for values that
            // nearly cancel)
            let step = (w.abs().max(scale * 1e-3)) / 128.0;
            assert!((g - w).abs() <= step, "{what}[{i}]: got {g}, want {w}");
        }
    }

    #[test]
    fn under_bf16_autocast_operands_outputs_and_gradients_are_rounded() {
        use crate::autocast::{Precision, autocast, round_to_bf16};
        let device = Device::flex().autodiff();
        // 8x8 and 4x4 at stride 1 with "same" padding: 64 and 16 positions, the forward reads
        // its input planes in place (ShiftedPlanes) on the bf16 units
        for (groups, stride, padding, dilation, size) in [
            (1, 1, 1, 1, 9),
            (2, 2, 0, 1, 9),
            (1, 1, 2, 2, 9),
            (1, 2, 1, 1, 9),
            (2, 3, 2, 2, 9),
            (1, 1, 1, 1, 8),
            (2, 1, 2, 2, 8),
            (1, 1, 1, 1, 4),
        ] {
            let conv = Conv2dConfig::new([4, 6], [3, 3])
                .with_groups(groups)
                .with_dilation([dilation, dilation])
                .with_stride([stride, stride])
                .with_padding(PaddingConfig2d::Explicit(
                    padding, padding, padding, padding,
                ))
                .init(&device);
            let x =
                Tensor::<4>::random([2, 4, size, size], Distribution::Normal(0.0, 1.0), &device);
            let probe = forward(&conv, x.clone());
            let r = Tensor::<4>::random(probe.dims(), Distribution::Normal(0.0, 1.0), &device);
            let (y, dw, db, dx) = {
                let _bf16 = autocast(Precision::Bf16);
                grads_of(&conv, &x, &r, forward)
            };
            // The reference: Burn's own convolution (not the im2col kernels) on leaves holding
            // the rounded operands, the rounded upstream gradient, and each result rounded.
            let data = |t: Tensor<4>| t.into_data().try_to_vec::<f32>().unwrap();
            let round = |t: Tensor<4>| data(round_to_bf16(t.inner()));
            let leaf = |t: Tensor<4>| round_to_bf16(t.inner()).autodiff().require_grad();
            let (xr, wr) = (leaf(x.clone()), leaf(conv.weight.val()));
            let br = conv
                .bias
                .as_ref()
                .map(|b| round_to_bf16(b.val().inner()).autodiff().require_grad());
            let options = ConvOptions::new([stride; 2], [padding; 2], [dilation; 2], groups);
            let yr = burn::tensor::module::conv2d(xr.clone(), wr.clone(), br.clone(), options);
            let rr = round_to_bf16(r.inner()).autodiff();
            let grads = (yr.clone() * rr).sum().backward();
            let what = |name: &str| {
                format!(
                    "groups {groups}, stride {stride}, dilation {dilation}, {size}x{size}: {name}"
                )
            };
            assert_bf16_close(&y, &round(yr.clone()), &what("output"));
            assert_bf16_close(
                &dx,
                &data(round_to_bf16(xr.grad(&grads).unwrap())),
                &what("dx"),
            );
            assert_bf16_close(
                &dw,
                &data(round_to_bf16(wr.grad(&grads).unwrap())),
                &what("dw"),
            );
            let dbr = br.unwrap().grad(&grads).unwrap();
            let dbr = round_to_bf16(dbr).into_data().try_to_vec::<f32>().unwrap();
            assert_bf16_close(&db.unwrap(), &dbr, &what("db"));
            // and bf16 is not fp32: the plain forward differs
            let plain = data(forward(&conv, x.clone()).inner());
            assert!(
                plain.iter().zip(&y).any(|(p, b)| p != b),
                "{}",
                what("no rounding")
            );
        }
    }

    /// "same" padding with an even kernel is asymmetric: under bf16 it takes Burn's convolution,
    /// with the padding Burn's own `Conv2d::forward` resolves.
    #[test]
    fn under_bf16_an_asymmetric_padding_pads_as_burn_does() {
        use crate::autocast::{Precision, autocast, round_to_bf16};
        let device = Device::flex();
        let conv = Conv2dConfig::new([3, 5], [2, 2])
            .with_padding(PaddingConfig2d::Same)
            .init(&device);
        let x = Tensor::<4>::random([2, 3, 7, 7], Distribution::Normal(0.0, 1.0), &device);
        let got = {
            let _bf16 = autocast(Precision::Bf16);
            forward(&conv, x.clone())
        };
        let mut rounded = conv.clone();
        rounded.weight = rounded.weight.map(round_to_bf16);
        rounded.bias = rounded.bias.map(|b| b.map(round_to_bf16));
        let want = round_to_bf16(rounded.forward(round_to_bf16(x)));
        assert_eq!(got.dims(), [2, 5, 7, 7]);
        let data = |t: Tensor<4>| t.into_data().try_to_vec::<f32>().unwrap();
        assert_bf16_close(&data(got), &data(want), "same padding");
    }
}
