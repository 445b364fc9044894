//! The fused loss rows as a CubeCL kernel, for Burn's cubecl backend (wgpu, cuda, rocm): the
//! same maths as the flex kernel ([`crate::fused_loss::LossRows`] says what a row computes), one
//! cube (workgroup) per row.
//!
//! Each unit of a cube takes every `block`-th logit of the row; three passes over the row:
//!
//! 1. the non-target maximum `m`, reduced over the cube in shared memory;
//! 2. `e_j = exp(z_j - m)` for `j != y` (`e_y = 0`), the only `exp` per logit, written to the
//!    gradient buffer, and the sums the loss needs (`S = sum e_j`, `sum_{j != y} (z_j - m)`,
//!    `sum e_j (z_j - m)`, `sum w_j z_j`), reduced together;
//! 3. with the gradient, each unit turns the `e_j` it wrote into `d l / d z_j`, from the row's
//!    scalars that every unit has computed from the reduced sums.
//!
//! A row with a non-finite logit gets a non-finite loss (NaN or inf; flex gives NaN).

use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops};
use burn::backend::cubecl::dtype_to_storage_type;
use burn::backend::ops::{FloatTensorOps, IntTensorOps};
use burn::backend::tensor::FloatTensor;
use burn::backend::{Autodiff, Cube, Shape, TensorMetadata};
use burn::tensor::{DType, TensorData};
use burn_cubecl::kernel::into_contiguous;
use burn_cubecl::ops::numeric::empty_device_dtype;
use burn_cubecl::tensor::CubeTensor;
use cubecl::prelude::*;

use crate::fused_loss::{FusedLossBackend, LossRows, RowTerm, SharedPlan, record_fused};

/// Units per cube: the row is read `BLOCK` logits at a time.
const BLOCK: usize = 256;

/// Cubes along x before rows spill into y (Vulkan guarantees 65,535 per dimension).
const MAX_CUBES_X: u32 = 65_535;

/// Which term a row's `hard` coefficient multiplies, as the kernel's compile-time switch.
const TERM_CE: u32 = 0;
const TERM_FOCAL: u32 = 1;
const TERM_POLY: u32 = 2;
const TERM_CONFIDENCE: u32 = 3;

/// Tree reduction of the four `dim`-long sums of `values` (`values[k dim..(k + 1) dim]`, k < 4)
/// into `values[k dim]`, one barrier a level for all four; every unit of the cube calls it and
/// may read the results after it returns.
#[cube]
fn reduce_four_sums<F: Float>(values: &mut Shared<[F]>, tid: usize, dim: usize) {
    let mut stride = dim / 2;
    while stride > 0 {
        if tid < stride {
            let i = tid;
            values[i] = values[i] + values[i + stride];
            let i = dim + tid;
            values[i] = values[i] + values[i + stride];
            let i = 2 * dim + tid;
            values[i] = values[i] + values[i + stride];
            let i = 3 * dim + tid;
            values[i] = values[i] + values[i + stride];
        }
        sync_cube();
        stride /= 2;
    }
}

/// The kernel: one cube per row of `logits` (`[M, C]`, contiguous).
///
/// `coefs` is `[M, 3]` (hard, smooth, reg), `weights` `[C]` (the smoothing term's class
/// weights, ones when none), `params` `[4]` (delta, `u = 1/(C-1)`, `W = sum_j w_j`, the family
/// term's parameter). `grad` is `[M, C]` with `with_grad`, a one-element placeholder without.
#[allow(clippy::too_many_arguments)]
#[cube(launch)]
fn fused_loss_rows_kernel<F: Float>(
    logits: &Tensor<F>,
    targets: &Tensor<u32>,
    coefs: &Tensor<F>,
    weights: &Tensor<F>,
    params: &Tensor<F>,
    losses: &mut Tensor<F>,
    grad: &mut Tensor<F>,
    #[comptime] block: usize,
    #[comptime] term: u32,
    #[comptime] with_grad: bool,
    #[comptime] needs_reg: bool,
    #[comptime] needs_smooth: bool,
    #[comptime] weighted: bool,
    #[define(F)] _dtype: ElemType,
) {
    let row = (CUBE_POS_Y * CUBE_COUNT_X + CUBE_POS_X) as usize;
    if row >= losses.len() {
        terminate!();
    }
    let classes = logits.shape(1);
    let tid = UNIT_POS_X as usize;
    let dim = CUBE_DIM_X as usize;
    let base = row * classes;
    let y = targets[row] as usize;
    let zero = F::new(0.0);
    let one = F::new(1.0);
    let half = F::new(0.5);

    // Pass 1: the non-target maximum.
    let mut shared = Shared::<[F]>::new_slice(4 * block);
    let mut local_max = F::min_value();
    let mut j = tid;
    while j < classes {
        if j != y {
            local_max = local_max.max(logits[base + j]);
        }
        j += dim;
    }
    shared[tid] = local_max;
    sync_cube();
    let mut stride = dim / 2;
    while stride > 0 {
        if tid < stride {
            shared[tid] = shared[tid].max(shared[tid + stride]);
        }
        sync_cube();
        stride /= 2;
    }
    let m = shared[0];
    sync_cube();

    // Pass 2: e_j and the row's sums.
    let mut total = zero;
    let mut centred = zero;
    let mut spread = zero;
    let mut weighted_logits = zero;
    let mut j = tid;
    while j < classes {
        let z = logits[base + j];
        let mut e = zero;
        if j != y {
            e = (z - m).exp();
            centred += z - m;
            if comptime![needs_reg || term == TERM_CONFIDENCE] {
                spread += e * (z - m);
            }
        }
        if with_grad {
            grad[base + j] = e;
        }
        total += e;
        if comptime![needs_smooth && weighted] {
            weighted_logits += weights[j] * z;
        }
        j += dim;
    }
    shared[tid] = total;
    shared[dim + tid] = centred;
    shared[2 * dim + tid] = spread;
    shared[3 * dim + tid] = weighted_logits;
    sync_cube();
    // (a sum a row does not need is all zeros)
    reduce_four_sums::<F>(&mut shared, tid, dim);
    let total = shared[0];
    let centred = shared[dim];
    let spread = shared[2 * dim];
    let weighted_logits = shared[3 * dim];

    // The row's scalars, computed by every unit.
    let zy = logits[base + y];
    let hard = coefs[row * 3];
    let smooth = coefs[row * 3 + 1];
    let reg_coef = coefs[row * 3 + 2];
    let delta = params[0];
    let u = params[1];
    let weight_total = params[2];
    let parameter = params[3];
    // NaN or inf here reveals a non-finite logit (the target's included, through zy - m). A
    // comparison, not `check - check == 0`: shader compilers fold x - x to 0.
    let check = centred + total + (zy - m);
    let finite = check.abs() <= F::max_value();
    let zy_shifted = zy - delta;
    let mut lse = m + (total + (zy_shifted - m).exp()).ln();
    if zy_shifted > m {
        lse = zy_shifted + (total * (m - zy_shifted).exp()).log1p();
    }
    let scale = (m - lse).exp();
    let p_y = (zy_shifted - lse).exp();
    let mut loss = zero;

    if comptime![term == TERM_CE] {
        loss += hard * (lse - zy_shifted);
        let mut w_y = one;
        if needs_smooth {
            let mut logit_sum = centred + m * F::cast_from(classes as u32 - 1) + zy_shifted;
            if weighted {
                w_y = weights[y];
                logit_sum = weighted_logits - w_y * delta;
            }
            loss += smooth * (weight_total * lse - logit_sum);
        }
        let inv_total = one / total;
        if needs_reg {
            let r = half * (spread * inv_total - centred * u);
            loss += reg_coef * r.max(zero);
        }
        if with_grad {
            let p_scale = (hard + smooth * weight_total) * scale;
            let log_total = total.ln();
            let log_shift = m + log_total;
            let entropy_term = spread * inv_total - log_total;
            let reg_half = reg_coef * half;
            let target_grad = (hard + smooth * weight_total) * p_y - hard - smooth * w_y;
            let mut j = tid;
            while j < classes {
                let mut g = target_grad;
                if j != y {
                    let e = grad[base + j];
                    g = p_scale * e;
                    if needs_reg {
                        let q = e * inv_total;
                        let log_q = logits[base + j] - log_shift;
                        g += reg_half * (q * (log_q - entropy_term) + q - u);
                    }
                    if needs_smooth {
                        let mut w = one;
                        if weighted {
                            w = weights[j];
                        }
                        g -= smooth * w;
                    }
                }
                grad[base + j] = g;
                j += dim;
            }
        }
    } else {
        // The family's terms (delta is 0 for them): 1 - p_y is the other classes' mass S scale.
        let rest = total * scale;
        let mut ce = lse - zy;
        if p_y > half {
            ce = (rest / p_y).log1p();
        }
        if comptime![term == TERM_CONFIDENCE] {
            let beta = parameter;
            let entropy = scale * ((lse - m) * total - spread) + p_y * ce;
            loss += hard * (ce - beta * entropy);
            if with_grad {
                let mut j = tid;
                while j < classes {
                    let mut g = hard * (beta * p_y * (entropy - ce) - rest);
                    if j != y {
                        let p = grad[base + j] * scale;
                        g = hard * p * (one + beta * (logits[base + j] - lse + entropy));
                    }
                    grad[base + j] = g;
                    j += dim;
                }
            }
        } else {
            let mut value = ce;
            let mut factor = one;
            if comptime![term == TERM_FOCAL] {
                let gamma = parameter;
                if gamma != zero {
                    value = zero;
                    factor = zero;
                    if rest > zero {
                        let a_g = rest.powf(gamma);
                        value = a_g * ce;
                        factor = a_g + gamma * p_y * rest.powf(gamma - one) * ce;
                    }
                }
            } else {
                let epsilon = parameter;
                value = ce + epsilon * rest;
                factor = one + epsilon * p_y;
            }
            loss += hard * value;
            if with_grad {
                let g_scale = hard * factor * scale;
                let target_grad = zero - hard * factor * rest;
                let mut j = tid;
                while j < classes {
                    let mut g = target_grad;
                    if j != y {
                        g = grad[base + j] * g_scale;
                    }
                    grad[base + j] = g;
                    j += dim;
                }
            }
        }
    }
    if tid == 0 {
        // a non-finite row keeps its non-finite sum (NaN or inf): WGSL has no NaN literal
        if finite {
            losses[row] = loss;
        } else {
            losses[row] = check;
        }
    }
}

/// The kernel's compile-time switch and parameter for a row term.
fn term_code(term: RowTerm) -> (u32, f64) {
    match term {
        RowTerm::CrossEntropy => (TERM_CE, 0.0),
        RowTerm::Focal { gamma } => (TERM_FOCAL, gamma),
        RowTerm::Poly { epsilon } => (TERM_POLY, epsilon),
        RowTerm::ConfidencePenalty { beta } => (TERM_CONFIDENCE, beta),
    }
}

/// A host vector of f32 as a cube tensor on `device`.
fn upload(values: Vec<f32>, shape: Vec<usize>, device: &burn_cubecl::CubeDevice) -> CubeTensor {
    <Cube as FloatTensorOps<Cube>>::float_from_data(TensorData::new(values, shape), device)
}

/// Runs the kernel on an f32 cube tensor; returns the rows and, when asked, the gradient buffer.
fn cube_kernel(
    logits: CubeTensor,
    plan: &LossRows,
    with_grad: bool,
) -> (CubeTensor, Option<CubeTensor>) {
    assert_eq!(
        logits.dtype,
        DType::F32,
        "the cubecl fused loss computes in f32"
    );
    let logits = into_contiguous(logits);
    let [rows, classes] = logits.shape().dims::<2>();
    let client = logits.client.clone();
    let device = logits.device.clone();

    let targets: Vec<u32> = plan.targets.iter().map(|&y| y as u32).collect();
    let targets =
        <Cube as IntTensorOps<Cube>>::int_from_data(TensorData::new(targets, [rows]), &device);
    let coefs: Vec<f32> = (0..rows)
        .flat_map(|n| [plan.hard[n], plan.smooth[n], plan.reg[n]])
        .map(|v| v as f32)
        .collect();
    let coefs = upload(coefs, vec![rows, 3], &device);
    let weight: Vec<f32> = match &plan.weight {
        Some(w) => w.iter().map(|&v| v as f32).collect(),
        None => vec![1.0; classes],
    };
    let weight_total: f64 = plan
        .weight
        .as_ref()
        .map_or(classes as f64, |w| w.iter().sum());
    let weights = upload(weight, vec![classes], &device);
    let (term, parameter) = term_code(plan.term);
    let params = vec![
        plan.delta as f32,
        (1.0 / (classes - 1) as f64) as f32,
        weight_total as f32,
        parameter as f32,
    ];
    let params = upload(params, vec![4], &device);

    let losses = empty_device_dtype(
        client.clone(),
        device.clone(),
        Shape::new([rows]),
        DType::F32,
    );
    let grad_shape = if with_grad {
        Shape::new([rows, classes])
    } else {
        Shape::new([1])
    };
    let grad = empty_device_dtype(client.clone(), device.clone(), grad_shape, DType::F32);

    // Fewer units than classes when the row is short (at least 32, a power of two).
    let hw_max = client.properties().hardware.max_cube_dim.0 as usize;
    let block = classes
        .next_power_of_two()
        .clamp(32, BLOCK.min(hw_max.max(32)));
    let cubes_x = (rows as u32).clamp(1, MAX_CUBES_X);
    let cubes_y = (rows as u32).div_ceil(MAX_CUBES_X).max(1);
    fused_loss_rows_kernel::launch(
        &client,
        CubeCount::Static(cubes_x, cubes_y, 1),
        CubeDim::new_1d(block as u32),
        logits.into_tensor_arg(),
        targets.into_tensor_arg(),
        coefs.into_tensor_arg(),
        weights.into_tensor_arg(),
        params.into_tensor_arg(),
        losses.clone().into_tensor_arg(),
        grad.clone().into_tensor_arg(),
        block,
        term,
        with_grad,
        plan.needs_reg(),
        plan.needs_smooth(),
        plan.weight.is_some(),
        dtype_to_storage_type(DType::F32),
    );
    (losses, with_grad.then_some(grad))
}

impl FusedLossBackend for Cube {
    fn fused_loss_rows(logits: CubeTensor, plan: SharedPlan) -> CubeTensor {
        cube_kernel(logits, &plan.0, false).0
    }
}

/// The backward of the fused op: `d loss / d z = upstream[n] * G[n, :]`.
#[derive(Debug)]
struct FusedLossBackward;

impl Backward<Cube, 1> for FusedLossBackward {
    /// The `[M, C]` gradient of each row's loss, computed by the forward.
    type State = CubeTensor;

    fn backward(self, ops: Ops<Self::State, 1>, grads: &mut Gradients, _: &mut Checkpointer) {
        let upstream = grads.consume::<Cube>(&ops.node);
        let [parent] = ops.parents;
        let Some(parent) = parent else { return };
        let grad = ops.state;
        let rows = grad.shape().dims::<2>()[0];
        let upstream =
            <Cube as FloatTensorOps<Cube>>::float_reshape(upstream, Shape::new([rows, 1]));
        let grad = <Cube as FloatTensorOps<Cube>>::float_mul(grad, upstream);
        grads.register::<Cube>(parent.id, grad);
    }
}

impl<C: CheckpointStrategy> FusedLossBackend for Autodiff<Cube, C> {
    fn fused_loss_rows(logits: FloatTensor<Self>, plan: SharedPlan) -> FloatTensor<Self> {
        record_fused::<Cube, C, _, _>(FusedLossBackward, logits, &plan.0, cube_kernel)
    }
}

#[cfg(all(test, feature = "wgpu"))]
mod tests;
