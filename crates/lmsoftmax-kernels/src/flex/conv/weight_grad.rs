//! The weight gradient of a convolution as im2col products (see [`super`]): a few images per
//! product, each thread summing its partition of the batch into its own accumulator.

use burn::backend::ops::ConvOptions;
use rayon::prelude::*;

use super::bf16_units_in_use;
use super::im2col::{Geometry, Scratch, columns, images_per_product};

/// Partitions of a batch's weight gradient summed separately (and in parallel), at most.
const PARTITIONS: usize = 16;

/// Bytes of the partitions' accumulators together to aim for: each is a fresh `[o, k2]` buffer,
/// zeroed, then read again by the final sum, so sixteen of a deep layer's (4.7 MB for 512 x 256
/// x 3 x 3) cost more memory traffic than the products save; at least two partitions remain.
const PARTITION_BYTES: usize = 16 << 20;

/// Partitions for an accumulator of `values` floats: [`PARTITIONS`], fewer where their
/// buffers would exceed [`PARTITION_BYTES`], at least 2. A function of the shapes only.
fn partitions(values: usize) -> usize {
    (PARTITION_BYTES / (values * 4).max(1)).clamp(2, PARTITIONS)
}

/// Depth of a product on the bf16 units, at most, where an image has fewer output positions:
/// one block of [`KC`](crate::flex::bf16_gemm::KC) pairs, filled with whole images, so that a
/// product does not spill a few pairs into a short second block (the im2col chunks of
/// [`images_per_product`] round up instead).
const BF16_DEPTH: usize = 2 * crate::flex::bf16_gemm::KC;

/// The gradient of `conv2d(x, w)` (symmetric padding, `options.groups` groups) with respect to
/// `w`, given `x` `[n, c, h, w]` and the output gradient `dy` `[n, o, ho, wo]`, both contiguous
/// `f32`; returns `[o, c / groups, kh, kw]` row-major. Inside a bf16 [`autocast`](crate::autocast) scope on a
/// CPU with AVX-512-BF16 ([`bf16_units_in_use`], read on the calling thread) the products take
/// bf16 operands with f32 sums.
///
/// ```
/// use burn::backend::ops::ConvOptions;
/// // 1 image, 1 channel, 3x3 input, 2x2 kernel, no padding: dW[i][j] = sum dy * shifted x
/// let x = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0];
/// let dy = [1.0, 0.0, 0.0, 1.0];
/// let options = ConvOptions::new([1, 1], [0, 0], [1, 1], 1);
/// let dw = lmsoftmax_kernels::flex::conv::weight_grad(&x, [1, 1, 3, 3], &dy, [1, 1, 2, 2], [2, 2], &options);
/// assert_eq!(dw, [1.0 + 5.0, 2.0 + 6.0, 4.0 + 8.0, 5.0 + 9.0]);
/// ```
pub fn weight_grad(
    x: &[f32],
    x_dims: [usize; 4],
    dy: &[f32],
    dy_dims: [usize; 4],
    kernel: [usize; 2],
    options: &ConvOptions<2>,
) -> Vec<f32> {
    let [n, c, _, _] = x_dims;
    let [n_dy, o, ho, wo] = dy_dims;
    assert_eq!(n, n_dy, "input and output gradient batch sizes differ");
    assert_eq!(x.len(), x_dims.iter().product::<usize>());
    assert_eq!(dy.len(), dy_dims.iter().product::<usize>());
    assert!(
        options.groups > 0 && c % options.groups == 0,
        "{c} input channels do not split into {} groups",
        options.groups
    );
    let w_dims = [o, c / options.groups, kernel[0], kernel[1]];
    let geometry = Geometry::new(x_dims, w_dims, options);
    assert_eq!(
        geometry.out,
        [ho, wo],
        "the output gradient's size does not match the convolution's output"
    );
    let k2 = geometry.group_channels * kernel[0] * kernel[1];
    let positions = ho * wo;
    if n == 0 || positions == 0 || k2 == 0 || o == 0 {
        return vec![0.0; o * k2];
    }
    // decided here, on the calling thread: the autocast scope is per thread, and the partitions
    // below run on rayon's workers, which are outside it
    let bf16_products = bf16_units_in_use();
    let per_product = if bf16_products {
        // whole blocks of pairs: each block re-reads and re-writes the accumulator
        (BF16_DEPTH / positions).clamp(1, n)
    } else {
        images_per_product(positions, n)
    };
    let chunks: Vec<(usize, usize)> = (0..n)
        .step_by(per_product)
        .map(|start| (start, (start + per_product).min(n)))
        .collect();
    let threads = rayon::current_num_threads();
    // A fixed split into partitions, each summed in order, then the partitions summed in order:
    // the result depends on the shapes only, not on the thread count or on work stealing.
    let per = chunks.len().div_ceil(chunks.len().min(partitions(o * k2)));
    let parts = chunks.len().div_ceil(per);
    let inner = if parts < threads {
        gemm::Parallelism::Rayon(threads)
    } else {
        gemm::Parallelism::None
    };
    // with the bf16 units, a stride-1 "same" convolution's im2col rows read in place from the
    // shifted input planes
    let shifted_taps = if bf16_products {
        geometry.shifted_taps()
    } else {
        None
    };
    let partials: Vec<Vec<f32>> = chunks
        .par_chunks(per)
        .map(|part| {
            let mut acc = vec![0.0f32; o * k2];
            let mut scratch = Scratch::default();
            for &(start, end) in part {
                accumulate(
                    &mut acc,
                    x,
                    dy,
                    o,
                    &geometry,
                    start..end,
                    &mut scratch,
                    inner,
                    bf16_products,
                    shifted_taps.as_ref(),
                );
            }
            acc
        })
        .collect();
    let mut partials = partials.into_iter();
    let mut total = partials.next().expect("at least one partition");
    let rest: Vec<Vec<f32>> = partials.collect();
    total
        .par_chunks_mut(1 << 14)
        .enumerate()
        .for_each(|(i, block)| {
            for part in &rest {
                let src = &part[i << 14..][..block.len()];
                block.iter_mut().zip(src).for_each(|(a, b)| *a += b);
            }
        });
    if bf16_products {
        transpose_groups(&mut total, geometry.groups, o / geometry.groups, k2);
    }
    total
}

/// Each group's block of `acc`, summed as `[k2, og]` row-major by the bf16 products, rewritten
/// in place as the `[og, k2]` block of the weight gradient.
fn transpose_groups(acc: &mut [f32], groups: usize, og: usize, k2: usize) {
    let mut block = vec![0.0f32; og * k2];
    for group in acc.chunks_mut(og * k2).take(groups) {
        block.copy_from_slice(group);
        for (j, row) in group.chunks_mut(k2).enumerate() {
            for (k, v) in row.iter_mut().enumerate() {
                *v = block[k * og + j];
            }
        }
    }
}

/// `acc [o, k2] += dy[images] x im2col(x[images])^T`, on bf16 operands with `bf16_products`
/// (the caller checked [`bf16_units_in_use`] on its own thread), each group's block then summed
/// transposed, `[k2, og]`, its im2col rows read in place from the input planes where
/// `shifted_taps` (the geometry's [`Geometry::shifted_taps`]) is given.
#[allow(clippy::too_many_arguments)]
fn accumulate(
    acc: &mut [f32],
    x: &[f32],
    dy: &[f32],
    o: usize,
    g: &Geometry,
    images: std::ops::Range<usize>,
    scratch: &mut Scratch,
    parallelism: gemm::Parallelism,
    bf16_products: bool,
    shifted_taps: Option<&(Vec<isize>, Vec<u16>)>,
) {
    let [ho, wo] = g.out;
    let [kh, kw] = g.kernel;
    let positions = ho * wo;
    let depth = images.len() * positions;
    let og = o / g.groups;
    let k2 = g.group_channels * kh * kw;

    // The output gradients of these images as one [o, depth] matrix (a view when one image).
    let (lhs, lhs_rs) = if images.len() == 1 {
        (&dy[images.start * o * positions..], positions)
    } else {
        scratch.packed.resize(o * depth, 0.0);
        for oc in 0..o {
            for (slot, img) in images.clone().enumerate() {
                let src = &dy[(img * o + oc) * positions..(img * o + oc + 1) * positions];
                scratch.packed[oc * depth + slot * positions..][..positions].copy_from_slice(src);
            }
        }
        (&scratch.packed[..], depth)
    };

    for group in 0..g.groups {
        if let Some((shifts, masks)) = shifted_taps {
            // the bf16 units' transposed product (below) with `a` read from the planes
            let [_, c, h, w] = g.x_dims;
            let start = (images.start * c + group * g.group_channels) * h * w;
            let planes = crate::flex::bf16_gemm::ShiftedPlanes::new(
                &x[start..],
                c * h * w,
                h * w,
                g.group_channels,
                images.len(),
                positions,
                shifts,
                masks,
            );
            // SAFETY: as the product below; the caller found the bf16 units (shifted_taps is
            // only given with them).
            unsafe {
                crate::flex::bf16_gemm::gemm_planes_a(
                    &planes,
                    lhs.as_ptr().add(group * og * lhs_rs),
                    [1, lhs_rs],
                    og,
                    acc.as_mut_ptr().add(group * og * k2),
                    og,
                    true,
                    matches!(parallelism, gemm::Parallelism::Rayon(_)),
                )
            };
            continue;
        }
        let cols = columns(x, g, group, images.clone(), &mut scratch.cols);
        // SAFETY: every pointer/stride pair addresses elements inside its slice:
        // dst: the group's rows of `acc` [o, k2] row-major (og rows from group * og),
        // lhs: the group's rows of the [o, depth] output gradients, row stride `lhs_rs` (rows
        // of `depth` used), rhs = cols^T [depth, k2]: element (p, k) at cols[k * depth + p].
        unsafe {
            if bf16_products {
                // with bf16 units under a bf16 autocast scope: bf16 operands, f32 sums, as the
                // transposed product dW_g^T [k2, og] += cols [k2, depth] x dY_g^T [depth, og]:
                // the large operand (cols) is then the packed `a`, read along its rows, and
                // the small one (dY) the `b` packed strip by strip (see `transpose_groups`)
                crate::flex::bf16_gemm::gemm(
                    k2,
                    og,
                    depth,
                    cols.as_ptr(),
                    [depth, 1],
                    lhs.as_ptr().add(group * og * lhs_rs),
                    [1, lhs_rs],
                    acc.as_mut_ptr().add(group * og * k2),
                    og,
                    true,
                    matches!(parallelism, gemm::Parallelism::Rayon(_)),
                );
                continue;
            }
            gemm::gemm(
                og,
                k2,
                depth,
                acc.as_mut_ptr().add(group * og * k2),
                1,
                k2 as isize,
                true,
                lhs.as_ptr().add(group * og * lhs_rs),
                1,
                lhs_rs as isize,
                cols.as_ptr(),
                depth as isize,
                1,
                1.0,
                1.0,
                false,
                false,
                false,
                parallelism,
            );
        }
    }
}
