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

#[cfg(test)]
mod tests {
    use super::*;

    /// The input gradient by its definition, in f64: `dx[i, ch, ih, iw]` sums
    /// `w[oc, ch - group start, ki, kj] * dy[i, oc, oh, ow]` over the output channels of the
    /// channel's group and the taps that read `(ih, iw)`.
    #[allow(clippy::too_many_arguments)]
    fn definition(
        weight: &[f32],
        [o, cg, kh, kw]: [usize; 4],
        dy: &[f32],
        [n, _, ho, wo]: [usize; 4],
        [_, c, h, w]: [usize; 4],
        [s, p, d]: [usize; 3],
        groups: usize,
    ) -> Vec<f64> {
        let og = o / groups;
        let mut dx = vec![0f64; n * c * h * w];
        for i in 0..n {
            for oc in 0..o {
                let group = oc / og;
                for rc in 0..cg {
                    let ch = group * cg + rc;
                    for ki in 0..kh {
                        for kj in 0..kw {
                            let wv = weight[((oc * cg + rc) * kh + ki) * kw + kj] as f64;
                            for oh in 0..ho {
                                for ow in 0..wo {
                                    let ih = (oh * s + ki * d) as isize - p as isize;
                                    let iw = (ow * s + kj * d) as isize - p as isize;
                                    if (0..h as isize).contains(&ih)
                                        && (0..w as isize).contains(&iw)
                                    {
                                        let g = dy[((i * o + oc) * ho + oh) * wo + ow] as f64;
                                        dx[((i * c + ch) * h + ih as usize) * w + iw as usize] +=
                                            wv * g;
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
        dx
    }

    #[test]
    fn the_input_gradient_is_its_definition_with_groups_and_strides() {
        if !crate::flex::bf16_gemm::available() {
            eprintln!("SKIPPED: this CPU has no AVX-512-BF16, the input gradient stays Burn's");
            return;
        }
        // 20 channels in one group and in two, stride 1 and 2; values that bf16 holds exactly,
        // so only the order of the f32 sums differs from the definition's
        for (groups, stride, padding) in [(1, 1, 1), (2, 1, 1), (1, 2, 0)] {
            let (n, c, o, side) = (3, 20, 12, 9);
            let options = ConvOptions::new([stride; 2], [padding; 2], [1, 1], groups);
            let w_dims = [o, c / groups, 3, 3];
            let out = (side + 2 * padding - 3) / stride + 1;
            let g_dims = [n, o, out, out];
            let x_dims = [n, c, side, side];
            let weight: Vec<f32> = (0..w_dims.iter().product::<usize>())
                .map(|i| ((i * 37) % 17) as f32 / 8.0 - 1.0)
                .collect();
            let dy: Vec<f32> = (0..g_dims.iter().product::<usize>())
                .map(|i| ((i * 11) % 13) as f32 / 4.0 - 1.5)
                .collect();
            let got = input_grad_bf16(&weight, w_dims, &dy, g_dims, x_dims, &options);
            let want = definition(
                &weight,
                w_dims,
                &dy,
                g_dims,
                x_dims,
                [stride, padding, 1],
                groups,
            );
            let scale = want.iter().fold(0f64, |m, v| m.max(v.abs()));
            for (i, (g, w)) in got.iter().zip(&want).enumerate() {
                assert!(
                    (*g as f64 - w).abs() <= 1e-5 * scale,
                    "groups {groups}, stride {stride}: element {i}: {g} vs {w}"
                );
            }
        }
    }
}
