//! BatchNorm for the flex CPU backend in as few passes over the activation as the maths allows.
//!
//! Burn 0.22's default `batch_norm_train` builds the batch statistics and the output from
//! general tensor operations: a transposed copy of the input for the mean, a centred copy, its
//! square, another transposed copy for the variance, then four element-wise passes for the
//! output, each in freshly allocated memory; its backward takes about as many again. For the
//! large activations of layer13 (batch 128: 67 MB per BatchNorm input) or of the ImageNet
//! networks at 224x224, that memory traffic and the page faults of the fresh buffers are a large
//! part of a training step. Here:
//!
//! * training forward: per channel, the mean and then the centred sum of squares (two reads,
//!   summed in `f64`), then one pass writing `(x - mean) * gamma / sqrt(var + eps) + beta`;
//! * backward: per channel, `sum(dy)` and `sum(dy * x_hat)` in one read of `dy` and `x`, then
//!   one pass writing `dx = gamma / std * (dy - mean(dy) - x_hat * mean(dy * x_hat))`;
//! * inference: one pass with the running statistics.
//!
//! Channels are summed each in one fixed order, so the results do not depend on the thread
//! count. Other backends and non-`f32` tensors take Burn's path, unchanged. The networks of
//! `lmsoftmax-models` reach this through their `batch_norm_forward`, which also keeps PyTorch's
//! running-variance rule.

use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::backend::flex::FlexTensor;
use burn::backend::ops::ModuleOps;
use burn::backend::tensor::FloatTensor;
use burn::backend::{Autodiff, AutodiffBackend, Backend, Dispatch, Flex, backend_extension};
use burn::tensor::{DType, Tensor, TensorData};
use rayon::prelude::*;

/// Values per task when a pass is split over rayon threads.
const MIN_TASK: usize = 1 << 14;

/// Training-mode BatchNorm of `x` (`[n, c, ...]`) with its own batch statistics: the output,
/// and the batch mean and biased batch variance (each `[c]`, not tracked), the values Burn's
/// `batch_norm_train` returns.
///
/// ```
/// use burn::tensor::{Device, Tensor};
/// let device = Device::default().autodiff();
/// let x = Tensor::<4>::from_floats([[[[1.0, 3.0]], [[2.0, 2.0]]]], &device); // [1, 2, 1, 2]
/// let gamma = Tensor::<1>::from_floats([2.0, 1.0], &device);
/// let beta = Tensor::<1>::from_floats([0.5, 0.0], &device);
/// let (y, mean, var) = lmsoftmax_kernels::flex::batch_norm::train(x, gamma, beta, 0.0);
/// assert_eq!(mean.to_data().try_to_vec::<f32>().unwrap(), [2.0, 2.0]);
/// assert_eq!(var.to_data().try_to_vec::<f32>().unwrap(), [1.0, 0.0]);
/// // channel 0: (x - 2) / 1 * 2 + 0.5
/// assert_eq!(y.to_data().try_to_vec::<f32>().unwrap()[..2], [-1.5, 2.5]);
/// ```
///
/// # Panics
/// If `x` has rank below 2, or `gamma` or `beta` does not hold one value per channel of `x`.
pub fn train<const D: usize>(
    x: Tensor<D>,
    gamma: Tensor<1>,
    beta: Tensor<1>,
    epsilon: f64,
) -> (Tensor<D>, Tensor<1>, Tensor<1>) {
    assert_per_channel(&x, &[("gamma", &gamma), ("beta", &beta)]);
    if !fused(&x) {
        let result = burn::tensor::module::batch_norm_train(x, gamma, beta, epsilon);
        return (
            result.output,
            result.mean.detach(),
            result.variance.detach(),
        );
    }
    let (y, mean, var) = <Dispatch as FastBatchNormBackend>::batch_norm_train_fused(
        x.into_dispatch(),
        gamma.into_dispatch(),
        beta.into_dispatch(),
        epsilon,
    );
    (
        Tensor::from_dispatch(y),
        Tensor::from_dispatch(mean),
        Tensor::from_dispatch(var),
    )
}

/// Inference-mode BatchNorm of `x` (`[n, c, ...]`) with the given per-channel statistics:
/// `(x - mean) / sqrt(var + eps) * gamma + beta`, as `burn::tensor::module::batch_norm`.
///
/// ```
/// use burn::tensor::{Device, Tensor};
/// let device = Device::default();
/// let x = Tensor::<2>::from_floats([[1.0, 4.0]], &device); // [1, 2]
/// let ones = Tensor::<1>::from_floats([1.0, 1.0], &device);
/// let mean = Tensor::<1>::from_floats([0.0, 2.0], &device);
/// let var = Tensor::<1>::from_floats([1.0, 4.0], &device);
/// let y = lmsoftmax_kernels::flex::batch_norm::inference(x, ones.clone(), ones.zeros_like(), mean, var, 0.0);
/// assert_eq!(y.to_data().try_to_vec::<f32>().unwrap(), [1.0, 1.0]);
/// ```
///
/// # Panics
/// If `x` has rank below 2, or a statistic or parameter does not hold one value per channel.
pub fn inference<const D: usize>(
    x: Tensor<D>,
    gamma: Tensor<1>,
    beta: Tensor<1>,
    mean: Tensor<1>,
    var: Tensor<1>,
    epsilon: f64,
) -> Tensor<D> {
    let per_channel = [
        ("gamma", &gamma),
        ("beta", &beta),
        ("mean", &mean),
        ("var", &var),
    ];
    assert_per_channel(&x, &per_channel);
    if !fused(&x) {
        return burn::tensor::module::batch_norm(x, gamma, beta, mean, var, epsilon);
    }
    Tensor::from_dispatch(
        <Dispatch as FastBatchNormBackend>::batch_norm_inference_fused(
            x.into_dispatch(),
            gamma.into_dispatch(),
            beta.into_dispatch(),
            mean.into_dispatch(),
            var.into_dispatch(),
            epsilon,
        ),
    )
}

/// Panics with the tensor's name unless `x` is `[n, c, ...]` and every one of `per_channel`
/// holds `c` values.
fn assert_per_channel<const D: usize>(x: &Tensor<D>, per_channel: &[(&str, &Tensor<1>)]) {
    let dims = x.dims();
    assert!(
        D >= 2,
        "BatchNorm needs an input [n, c, ...] of rank 2 or more, got {dims:?}"
    );
    for (name, t) in per_channel {
        let [len] = t.dims();
        assert_eq!(
            len, dims[1],
            "BatchNorm: {name} has {len} values but the input {dims:?} has {} channels (axis 1)",
            dims[1]
        );
    }
}

/// Whether `x` takes the fused path: `f32` on the flex backend.
fn fused<const D: usize>(x: &Tensor<D>) -> bool {
    x.dtype() == DType::F32 && super::runs_on(&x.device())
}

/// BatchNorm as backend operations with their own backward.
#[backend_extension(Flex, Autodiff)]
pub(crate) trait FastBatchNormBackend: Backend {
    /// Training-mode BatchNorm: the output, the batch mean and the biased batch variance.
    fn batch_norm_train_fused(
        x: FloatTensor<Self>,
        gamma: FloatTensor<Self>,
        beta: FloatTensor<Self>,
        epsilon: f64,
    ) -> (FloatTensor<Self>, FloatTensor<Self>, FloatTensor<Self>);

    /// Inference-mode BatchNorm with the given statistics.
    fn batch_norm_inference_fused(
        x: FloatTensor<Self>,
        gamma: FloatTensor<Self>,
        beta: FloatTensor<Self>,
        mean: FloatTensor<Self>,
        var: FloatTensor<Self>,
        epsilon: f64,
    ) -> FloatTensor<Self>;
}

impl FastBatchNormBackend for Flex {
    fn batch_norm_train_fused(
        x: FlexTensor,
        gamma: FlexTensor,
        beta: FlexTensor,
        epsilon: f64,
    ) -> (FlexTensor, FlexTensor, FlexTensor) {
        flex_train(x, gamma, beta, epsilon)
    }

    fn batch_norm_inference_fused(
        x: FlexTensor,
        gamma: FlexTensor,
        beta: FlexTensor,
        mean: FlexTensor,
        var: FlexTensor,
        epsilon: f64,
    ) -> FlexTensor {
        flex_inference(x, gamma, beta, mean, var, epsilon)
    }
}

impl<C: CheckpointStrategy> FastBatchNormBackend for Autodiff<Flex, C> {
    fn batch_norm_train_fused(
        x: FloatTensor<Self>,
        gamma: FloatTensor<Self>,
        beta: FloatTensor<Self>,
        epsilon: f64,
    ) -> (FloatTensor<Self>, FloatTensor<Self>, FloatTensor<Self>) {
        let prep = BatchNormTrainBackward
            .prepare::<C>([x.node(), gamma.node(), beta.node()])
            .compute_bound()
            .stateful();
        let (x, gamma, beta) = (
            x.into_primitive(),
            gamma.into_primitive(),
            beta.into_primitive(),
        );
        let (output, mean, var) = flex_train(x.clone(), gamma.clone(), beta, epsilon);
        let output = match prep {
            OpsKind::Tracked(prep) => {
                prep.finish((x, gamma, mean.clone(), var.clone(), epsilon), output)
            }
            OpsKind::UnTracked(prep) => prep.finish(output),
        };
        (output, Self::from_inner(mean), Self::from_inner(var))
    }

    fn batch_norm_inference_fused(
        x: FloatTensor<Self>,
        gamma: FloatTensor<Self>,
        beta: FloatTensor<Self>,
        mean: FloatTensor<Self>,
        var: FloatTensor<Self>,
        epsilon: f64,
    ) -> FloatTensor<Self> {
        // A frozen layer on a training device: gradients still flow through it, so Burn's
        // composed (tracked) operations.
        <Self as ModuleOps<Self>>::batch_norm(x, gamma, beta, mean, var, epsilon)
    }
}

/// The backward of [`FastBatchNormBackend::batch_norm_train_fused`].
#[derive(Debug)]
struct BatchNormTrainBackward;

impl Backward<Flex, 3> for BatchNormTrainBackward {
    /// Input, gamma, batch mean, biased batch variance, epsilon.
    type State = (FlexTensor, FlexTensor, FlexTensor, FlexTensor, f64);

    fn backward(self, ops: Ops<Self::State, 3>, grads: &mut Gradients, _: &mut Checkpointer) {
        let grad = grads.consume::<Flex>(&ops.node);
        let [node_x, node_gamma, node_beta] = ops.parents;
        let (x, gamma, mean, var, epsilon) = ops.state;
        let (dx, dgamma, dbeta) = flex_backward(x, gamma, mean, var, epsilon, grad);
        for (node, g) in [(node_x, dx), (node_gamma, dgamma), (node_beta, dbeta)] {
            if let Some(node) = node {
                grads.register::<Flex>(node.id, g);
            }
        }
    }
}

/// `[n, c, s]`: batch, channels and values per channel and image of a `[n, c, ...]` shape.
fn planes(t: &FlexTensor) -> [usize; 3] {
    let shape = t.layout().shape();
    let (n, c) = (shape[0], shape[1]);
    let s = (2..shape.num_dims()).map(|i| shape[i]).product();
    [n, c, s]
}

/// Whether every tensor is `f32`.
fn all_f32(tensors: &[&FlexTensor]) -> bool {
    tensors.iter().all(|t| t.dtype() == DType::F32)
}

/// A `[c]` f32 tensor.
fn per_channel(values: Vec<f32>) -> FlexTensor {
    let c = values.len();
    FlexTensor::from_data(TensorData::new(values, [c]))
}

/// A tensor of `x`'s shape holding `values`.
fn shaped_like(values: Vec<f32>, x: &FlexTensor) -> FlexTensor {
    let shape = x.layout().shape().clone();
    FlexTensor::from_data(TensorData::new(values, shape))
}

/// Mean and biased variance of every channel of `x` (`[n, c, s]` contiguous), in `f64`.
fn channel_statistics(x: &[f32], [n, c, s]: [usize; 3]) -> Vec<(f64, f64)> {
    let count = (n * s) as f64;
    (0..c)
        .into_par_iter()
        .map(|ch| {
            let blocks = || (0..n).map(move |i| &x[(i * c + ch) * s..][..s]);
            let sum: f64 = blocks().map(|b| lane_sums(b, b, |v, _| [v])[0]).sum();
            let mean = sum / count;
            let squares: f64 = blocks()
                .map(|b| lane_sums(b, b, |v, _| [(v - mean).powi(2)])[0])
                .sum();
            (mean, squares / count)
        })
        .collect()
}

/// The `N` sums of `term(a[i], b[i])` over `i` (the values widened to `f64`), each made of
/// eight interleaved partial sums added in a fixed order at the end: eight chains of dependent
/// additions instead of one, so that they pipeline (one `f64` chain runs at a quarter of the
/// adder's rate). `a` and `b` have the same length.
#[inline]
fn lane_sums<const N: usize>(
    a: &[f32],
    b: &[f32],
    term: impl Fn(f64, f64) -> [f64; N],
) -> [f64; N] {
    const LANES: usize = 8;
    let mut acc = [[0f64; LANES]; N];
    let (a_chunks, b_chunks) = (a.chunks_exact(LANES), b.chunks_exact(LANES));
    let (a_tail, b_tail) = (a_chunks.remainder(), b_chunks.remainder());
    for (x, y) in a_chunks.zip(b_chunks) {
        for lane in 0..LANES {
            let terms = term(x[lane] as f64, y[lane] as f64);
            for (sums, t) in acc.iter_mut().zip(terms) {
                sums[lane] += t;
            }
        }
    }
    let mut totals = acc.map(|l| ((l[0] + l[1]) + (l[2] + l[3])) + ((l[4] + l[5]) + (l[6] + l[7])));
    for (&x, &y) in a_tail.iter().zip(b_tail) {
        for (total, t) in totals.iter_mut().zip(term(x as f64, y as f64)) {
            *total += t;
        }
    }
    totals
}

/// `out = x * scale[channel] + shift[channel]` over `[n, c, s]` contiguous data.
fn affine_per_channel(x: &[f32], [_, c, s]: [usize; 3], scale: &[f32], shift: &[f32]) -> Vec<f32> {
    let mut out = vec![0.0f32; x.len()];
    if s == 0 {
        return out;
    }
    out.par_chunks_mut(s)
        .zip(x.par_chunks(s))
        .enumerate()
        .with_min_len(MIN_TASK.div_ceil(s))
        .for_each(|(plane, (o, x))| {
            let ch = plane % c;
            let (a, b) = (scale[ch], shift[ch]);
            o.iter_mut().zip(x).for_each(|(o, &v)| *o = v * a + b);
        });
    out
}

/// Training forward on flex tensors: output, batch mean, biased batch variance.
fn flex_train(
    x: FlexTensor,
    gamma: FlexTensor,
    beta: FlexTensor,
    epsilon: f64,
) -> (FlexTensor, FlexTensor, FlexTensor) {
    if !all_f32(&[&x, &gamma, &beta]) {
        let r = <Flex as ModuleOps<Flex>>::batch_norm_train(x, gamma, beta, epsilon);
        return (r.output, r.mean, r.variance);
    }
    let (x, gamma, beta) = (
        x.to_contiguous(),
        gamma.to_contiguous(),
        beta.to_contiguous(),
    );
    let dims = planes(&x);
    let xs = x.storage::<f32>();
    let stats = channel_statistics(xs, dims);
    let (gamma, beta) = (gamma.storage::<f32>(), beta.storage::<f32>());
    // y = (x - mean) * k + beta = x * k + (beta - mean * k), k = gamma / sqrt(var + eps)
    let (scale, shift): (Vec<f32>, Vec<f32>) = stats
        .iter()
        .enumerate()
        .map(|(ch, &(mean, var))| {
            let k = gamma[ch] as f64 / (var + epsilon).sqrt();
            (k as f32, (beta[ch] as f64 - mean * k) as f32)
        })
        .unzip();
    let y = affine_per_channel(xs, dims, &scale, &shift);
    let (mean, var): (Vec<f32>, Vec<f32>) =
        stats.iter().map(|&(m, v)| (m as f32, v as f32)).unzip();
    (shaped_like(y, &x), per_channel(mean), per_channel(var))
}

/// Inference forward on flex tensors.
fn flex_inference(
    x: FlexTensor,
    gamma: FlexTensor,
    beta: FlexTensor,
    mean: FlexTensor,
    var: FlexTensor,
    epsilon: f64,
) -> FlexTensor {
    if !all_f32(&[&x, &gamma, &beta, &mean, &var]) {
        return <Flex as ModuleOps<Flex>>::batch_norm(x, gamma, beta, mean, var, epsilon);
    }
    let x = x.to_contiguous();
    let [gamma, beta, mean, var] = [gamma, beta, mean, var].map(|t| t.to_contiguous());
    let [gamma, beta, mean, var] = [&gamma, &beta, &mean, &var].map(|t| t.storage::<f32>());
    let (scale, shift): (Vec<f32>, Vec<f32>) = (0..gamma.len())
        .map(|ch| {
            let k = gamma[ch] as f64 / (var[ch] as f64 + epsilon).sqrt();
            (k as f32, (beta[ch] as f64 - mean[ch] as f64 * k) as f32)
        })
        .unzip();
    let y = affine_per_channel(x.storage::<f32>(), planes(&x), &scale, &shift);
    shaped_like(y, &x)
}

/// Backward on flex tensors: the gradients of the input, gamma and beta.
fn flex_backward(
    x: FlexTensor,
    gamma: FlexTensor,
    mean: FlexTensor,
    var: FlexTensor,
    epsilon: f64,
    dy: FlexTensor,
) -> (FlexTensor, FlexTensor, FlexTensor) {
    if !all_f32(&[&x, &gamma, &mean, &var, &dy]) {
        let r =
            <Flex as ModuleOps<Flex>>::batch_norm_train_backward(x, gamma, mean, var, epsilon, dy);
        return (r.x_grad, r.gamma_grad, r.beta_grad);
    }
    let x = x.to_contiguous();
    let dy = dy.to_contiguous();
    let [gamma, mean, var] = [gamma, mean, var].map(|t| t.to_contiguous());
    let [gamma, mean, var] = [&gamma, &mean, &var].map(|t| t.storage::<f32>());
    let [n, c, s] = planes(&x);
    let (xs, dys) = (x.storage::<f32>(), dy.storage::<f32>());
    let count = (n * s) as f64;
    // per channel: sum(dy), sum(dy * x_hat)
    let sums: Vec<(f64, f64)> = (0..c)
        .into_par_iter()
        .map(|ch| {
            let (m, inv_std) = (mean[ch] as f64, 1.0 / (var[ch] as f64 + epsilon).sqrt());
            let (mut sum_dy, mut sum_dy_centred) = (0.0f64, 0.0f64);
            for i in 0..n {
                let at = (i * c + ch) * s;
                let [dy, centred] =
                    lane_sums(&dys[at..at + s], &xs[at..at + s], |g, v| [g, g * (v - m)]);
                sum_dy += dy;
                sum_dy_centred += centred;
            }
            (sum_dy, sum_dy_centred * inv_std)
        })
        .collect();
    // dx = a * (dy - b - (x - mean) * k): a = gamma / std, b = mean(dy),
    // k = mean(dy * x_hat) / std
    let coefficients: Vec<[f32; 4]> = sums
        .iter()
        .enumerate()
        .map(|(ch, &(sum_dy, sum_dy_xhat))| {
            let inv_std = 1.0 / (var[ch] as f64 + epsilon).sqrt();
            [
                (gamma[ch] as f64 * inv_std) as f32,
                (sum_dy / count) as f32,
                (sum_dy_xhat / count * inv_std) as f32,
                mean[ch],
            ]
        })
        .collect();
    let mut dx = vec![0.0f32; xs.len()];
    if s > 0 {
        dx.par_chunks_mut(s)
            .enumerate()
            .with_min_len(MIN_TASK.div_ceil(s))
            .for_each(|(plane, out)| {
                let [a, b, k, m] = coefficients[plane % c];
                let at = plane * s;
                for ((o, &g), &v) in out.iter_mut().zip(&dys[at..at + s]).zip(&xs[at..at + s]) {
                    *o = a * (g - b - (v - m) * k);
                }
            });
    }
    let dgamma = sums.iter().map(|&(_, v)| v as f32).collect();
    let dbeta = sums.iter().map(|&(v, _)| v as f32).collect();
    (shaped_like(dx, &x), per_channel(dgamma), per_channel(dbeta))
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::{Device, Distribution};

    fn values<const D: usize>(t: Tensor<D>) -> Vec<f32> {
        t.into_data().convert::<f32>().try_to_vec::<f32>().unwrap()
    }

    fn assert_close(got: &[f32], want: &[f32], what: &str) {
        crate::testing::assert_close(got, want, 2e-5, what);
    }

    /// Output, statistics and the three gradients of `sum(bn(x) * r)` against Burn's own
    /// training-mode BatchNorm, for several ranks, plane sizes and an input far from zero mean.
    fn check_train<const D: usize>(shape: [usize; D], offset: f64) {
        let device = Device::flex().autodiff();
        let c = shape[1];
        let x = Tensor::<D>::random(shape, Distribution::Normal(offset, 2.0), &device);
        let r = Tensor::<D>::random(shape, Distribution::Normal(0.0, 1.0), &device);
        let gamma = Tensor::<1>::random([c], Distribution::Uniform(0.5, 1.5), &device);
        let beta = Tensor::<1>::random([c], Distribution::Normal(0.0, 1.0), &device);
        let run = |fused: bool| {
            let (x, gamma, beta) = (
                x.clone().require_grad(),
                gamma.clone().require_grad(),
                beta.clone().require_grad(),
            );
            let (y, mean, var) = if fused {
                train(x.clone(), gamma.clone(), beta.clone(), 1e-5)
            } else {
                let r = burn::tensor::module::batch_norm_train(
                    x.clone(),
                    gamma.clone(),
                    beta.clone(),
                    1e-5,
                );
                (r.output, r.mean, r.variance)
            };
            let grads = (y.clone() * r.clone()).sum().backward();
            [
                values(y),
                values(mean),
                values(var),
                values(x.grad(&grads).unwrap()),
                values(gamma.grad(&grads).unwrap()),
                values(beta.grad(&grads).unwrap()),
            ]
        };
        let (fused, burn) = (run(true), run(false));
        let names = [
            "output",
            "mean",
            "variance",
            "x grad",
            "gamma grad",
            "beta grad",
        ];
        for ((f, b), name) in fused.iter().zip(&burn).zip(names) {
            assert_close(f, b, &format!("{shape:?} {name}"));
        }
    }

    #[test]
    fn training_matches_burns_batch_norm_and_its_gradients() {
        check_train([4, 3, 5, 6], 0.0);
        check_train([2, 5, 33, 31], 3.0); // planes large enough to split over threads
        check_train([7, 4], 0.0); // BatchNorm1d on [n, c]
        check_train([3, 2, 9], -2.0);
        check_train([64, 6, 2, 2], 10.0); // many tiny planes
    }

    #[test]
    #[should_panic(
        expected = "BatchNorm: beta has 3 values but the input [2, 4, 5] has 4 channels"
    )]
    fn per_channel_tensors_of_the_wrong_length_are_named() {
        let device = Device::flex().autodiff();
        let x = Tensor::<3>::zeros([2, 4, 5], &device);
        let _ = train(
            x,
            Tensor::ones([4], &device),
            Tensor::zeros([3], &device),
            1e-5,
        );
    }

    #[test]
    fn inference_matches_burns_batch_norm() {
        for device in [Device::flex(), Device::flex().autodiff()] {
            let x = Tensor::<4>::random([3, 4, 7, 5], Distribution::Normal(1.0, 2.0), &device);
            let stats = |lo, hi| Tensor::<1>::random([4], Distribution::Uniform(lo, hi), &device);
            let (gamma, beta, mean, var) = (
                stats(0.5, 1.5),
                stats(-1.0, 1.0),
                stats(-1.0, 1.0),
                stats(0.1, 3.0),
            );
            let fused = inference(
                x.clone(),
                gamma.clone(),
                beta.clone(),
                mean.clone(),
                var.clone(),
                1e-5,
            );
            let burn = burn::tensor::module::batch_norm(x, gamma, beta, mean, var, 1e-5);
            assert_close(&values(fused), &values(burn), "inference");
        }
    }

    /// Resumed runs must reproduce uninterrupted ones bit for bit.
    #[test]
    fn results_do_not_depend_on_the_thread_count() {
        let shape = [6usize, 5, 40, 30];
        let len: usize = shape.iter().product();
        let tensor = |f: fn(usize) -> f32, dims: &[usize]| {
            let n: usize = dims.iter().product();
            FlexTensor::from_data(TensorData::new(
                (0..n).map(f).collect::<Vec<_>>(),
                dims.to_vec(),
            ))
        };
        let x = || tensor(|i| ((i * 7919 % 1000) as f32).sin() + 0.5, &shape);
        let dy = || tensor(|i| ((i * 104_729 % 977) as f32).cos(), &shape);
        let gamma = || tensor(|i| 0.5 + i as f32 * 0.2, &[5]);
        let beta = || tensor(|i| i as f32 - 2.0, &[5]);
        assert_eq!(x().storage::<f32>().len(), len);
        let run = |threads: usize| {
            crate::testing::with_threads(threads, || {
                let (y, mean, var) = flex_train(x(), gamma(), beta(), 1e-5);
                let (dx, dg, db) = flex_backward(x(), gamma(), mean, var, 1e-5, dy());
                [y, dx, dg, db].map(|t| t.into_data().try_to_vec::<f32>().unwrap())
            })
        };
        let one = run(1);
        for threads in [2, 3] {
            assert!(run(threads) == one, "{threads} threads");
        }
    }
}
