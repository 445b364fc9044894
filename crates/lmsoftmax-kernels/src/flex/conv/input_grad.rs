//! The input gradient of a convolution on the bf16 units: `W^T x dY` per image on bf16
//! operands, scattered back onto the input planes (col2im).

use burn::backend::ops::ConvOptions;
use rayon::prelude::*;

use super::im2col::Geometry;

/// The input gradient of `conv2d(x, weight)` on the bf16 units (inside a bf16 autocast scope,
/// [`super::bf16_units_in_use`]): per image and group, `dcols [c/groups*kh*kw, ho*wo] = W_g^T x dY_g`
/// with bf16 operands and f32 sums, scattered back onto the input planes (col2im, f32 sums in a
/// fixed order); the images in parallel.
pub(super) fn input_grad_bf16(
    weight: &[f32],
    w_dims: [usize; 4],
    grad: &[f32],
    g_dims: [usize; 4],
    x_dims: [usize; 4],
    options: &ConvOptions<2>,
) -> Vec<f32> {
    let g = Geometry::new(x_dims, w_dims, options);
    let [n, c, h, w] = x_dims;
    let [o, _, kh, kw] = w_dims;
    let [ho, wo] = g.out;
    let positions = ho * wo;
    assert_eq!(g_dims, [n, o, ho, wo], "the output gradient's shape");
    let og = o / g.groups;
    let k2 = g.group_channels * kh * kw;
    let mut dx = vec![0.0f32; n * c * h * w];
    if dx.is_empty() || positions == 0 || o == 0 {
        return dx;
    }
    let [sh, sw] = g.stride;
    let [ph, pw] = g.padding;
    let [dh, dw] = g.dilation;
    // each group's weights [og, k2], read transposed (element (i, p) at i + p * k2), packed
    // once for every image
    let packed: Vec<crate::flex::bf16_gemm::PackedA> = (0..g.groups)
        // SAFETY: the group's og rows of k2 weights are in `weight`; the caller checked for the
        // bf16 units.
        .map(|group| unsafe {
            crate::flex::bf16_gemm::PackedA::new(
                k2,
                og,
                weight.as_ptr().add(group * og * k2),
                [1, k2],
            )
        })
        .collect();
    // the output columns ow whose input column ow * sw + kj * dw - pw falls inside [0, w)
    let valid_columns = |kj: usize| -> std::ops::Range<usize> {
        let offset = (kj * dw) as isize - pw as isize;
        let first = if offset >= 0 {
            0
        } else {
            (-offset as usize).div_ceil(sw)
        };
        let end = if (w as isize) > offset {
            ((w as isize - offset) as usize).div_ceil(sw).min(wo)
        } else {
            0
        };
        first.min(end)..end
    };
    dx.par_chunks_mut(c * h * w).enumerate().for_each_init(
        Vec::new,
        |dcols: &mut Vec<f32>, (img, dx_img)| {
            dcols.resize(k2 * positions, 0.0);
            for (group, weights) in packed.iter().enumerate() {
                // SAFETY: the image's output-gradient rows of the group [og, positions]
                // row-major, dcols [k2, positions].
                unsafe {
                    crate::flex::bf16_gemm::gemm_packed(
                        weights,
                        positions,
                        grad.as_ptr().add((img * o + group * og) * positions),
                        [positions, 1],
                        dcols.as_mut_ptr(),
                        positions,
                        false,
                        false,
                    );
                }
                for rc in 0..g.group_channels {
                    let plane = &mut dx_img[(group * g.group_channels + rc) * h * w..][..h * w];
                    for ki in 0..kh {
                        for kj in 0..kw {
                            let row = &dcols[((rc * kh + ki) * kw + kj) * positions..][..positions];
                            let columns = valid_columns(kj);
                            if columns.is_empty() {
                                continue;
                            }
                            // input column of the first valid output column
                            let iw0 = columns.start * sw + kj * dw - pw;
                            for oh in 0..ho {
                                let ih = (oh * sh + ki * dh) as isize - ph as isize;
                                if ih < 0 || ih >= h as isize {
                                    continue;
                                }
                                let dst = &mut plane[ih as usize * w..][..w];
                                let src = &row[oh * wo..][columns.clone()];
                                if sw == 1 {
                                    add_into(&mut dst[iw0..][..src.len()], src);
                                } else {
                                    for (q, v) in src.iter().enumerate() {
                                        dst[iw0 + q * sw] += v;
                                    }
                                }
                            }
                        }
                    }
                }
            }
        },
    );
    dx
}

/// `dst += src`, 16 lanes a step on AVX-512 F (which the bf16 units imply), the tail masked;
/// a plain loop elsewhere.
fn add_into(dst: &mut [f32], src: &[f32]) {
    assert_eq!(dst.len(), src.len());
    #[cfg(target_arch = "x86_64")]
    if std::is_x86_feature_detected!("avx512f") {
        // SAFETY: the CPU has AVX-512 F (checked just above).
        unsafe { add_into_avx512(dst, src) };
        return;
    }
    dst.iter_mut().zip(src).for_each(|(d, v)| *d += v);
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
fn add_into_avx512(dst: &mut [f32], src: &[f32]) {
    use std::arch::x86_64::*;
    let len = dst.len().min(src.len());
    let mut i = 0;
    while i < len {
        let mask: __mmask16 = if len - i >= 16 {
            0xffff
        } else {
            ((1u32 << (len - i)) - 1) as __mmask16
        };
        // SAFETY: the lanes of the mask are elements i .. i + 16 of both slices, below len.
        unsafe {
            let d = _mm512_maskz_loadu_ps(mask, dst.as_ptr().add(i));
            let v = _mm512_maskz_loadu_ps(mask, src.as_ptr().add(i));
            _mm512_mask_storeu_ps(dst.as_mut_ptr().add(i), mask, _mm512_add_ps(d, v));
        }
        i += 16;
    }
}
