//! The AVX-512-BF16 kernels behind [`super`]'s products: packing `a` and `b` into bf16 pairs
//! (from strided matrices or [`super::ShiftedPlanes`]), the `MR x NR` micro-kernel, and the
//! blocked product over rayon's threads.

use super::{KC, MR, NR, to_bf16_bits};
use rayon::prelude::*;
use std::arch::x86_64::*;

/// A pointer that may be shared by the threads writing disjoint columns of `c`.
#[derive(Clone, Copy)]
struct Shared(*mut f32);
// SAFETY: the threads write disjoint column ranges of the matrix behind it.
unsafe impl Send for Shared {}
// SAFETY: as above.
unsafe impl Sync for Shared {}

#[derive(Clone, Copy)]
pub(super) struct Input(*const f32);
// SAFETY: the inputs are only read while `gemm` runs.
unsafe impl Send for Input {}
// SAFETY: as above.
unsafe impl Sync for Input {}

/// 16 f32 lanes rounded to bf16 bits (in the low 16 bits of each lane), NaN kept as a quiet
/// NaN.
#[target_feature(enable = "avx512f")]
fn round16(v: __m512i) -> __m512i {
    let lsb = _mm512_and_si512(_mm512_srli_epi32::<16>(v), _mm512_set1_epi32(1));
    let rounded = _mm512_add_epi32(v, _mm512_add_epi32(_mm512_set1_epi32(0x7fff), lsb));
    let abs = _mm512_and_si512(v, _mm512_set1_epi32(0x7fff_ffff));
    let nan = _mm512_cmpgt_epu32_mask(abs, _mm512_set1_epi32(0x7f80_0000));
    let rounded = _mm512_mask_mov_epi32(rounded, nan, _mm512_set1_epi32(0x7fc0_0000));
    _mm512_srli_epi32::<16>(rounded)
}

/// Lane `j` of the result holds the pair `(lo[j], hi[j])` rounded to bf16 (to nearest even,
/// `lo` in the low 16 bits): one `vcvtne2ps2bf16` and one word permutation.
#[target_feature(enable = "avx512f,avx512bw,avx512bf16")]
#[inline]
fn bf16_pairs(lo: __m512, hi: __m512) -> __m512i {
    /// Word `2 j` from `lo`'s lane `j` (word `j` of the conversion), word `2 j + 1` from
    /// `hi`'s (word `16 + j`).
    const INTERLEAVE: [u16; 32] = {
        let mut idx = [0u16; 32];
        let mut j = 0;
        while j < 16 {
            idx[2 * j] = j as u16;
            idx[2 * j + 1] = 16 + j as u16;
            j += 1;
        }
        idx
    };
    // SAFETY: the 64 bytes of INTERLEAVE; the two vector types are the same 512 bits.
    unsafe {
        let words: __m512i = std::mem::transmute(_mm512_cvtne2ps_pbh(hi, lo));
        let idx = _mm512_loadu_si512(INTERLEAVE.as_ptr() as *const _);
        _mm512_permutexvar_epi16(idx, words)
    }
}

/// Packs rows `2 p0 ..` (`pc` pairs) of `b`'s columns `j0 .. j0 + NR` as bf16 pairs: lane `j`
/// of pair `p` holds `(b[2p][j], b[2p + 1][j])`; missing rows and columns are zero.
#[target_feature(enable = "avx512f,avx512bw,avx512bf16")]
#[allow(clippy::too_many_arguments)]
unsafe fn pack_b(
    b: *const f32,
    [rs, cs]: [usize; 2],
    [k, n]: [usize; 2],
    p0: usize,
    pc: usize,
    j0: usize,
    out: &mut [u32],
) {
    let full = j0 + NR <= n && 2 * (p0 + pc) <= k;
    if cs == 1 {
        // rows are contiguous: 16 columns of two rows a step, the columns past n masked off
        // and a missing last row (odd k) zero
        let masks: [__mmask16; 2] = std::array::from_fn(|h| {
            let left = n.saturating_sub(j0 + 16 * h).min(16);
            ((1u32 << left) - 1) as __mmask16
        });
        for p in 0..pc {
            let kk = 2 * (p0 + p);
            for (h, &mask) in masks.iter().enumerate() {
                // SAFETY: row kk < k (and kk + 1 where below k), columns j0 + 16h + lane < n
                // for the lanes of the mask, are in b; out holds pc * NR lanes.
                unsafe {
                    let at = b.add(kk * rs + j0 + 16 * h);
                    let lo = _mm512_maskz_loadu_ps(mask, at);
                    let hi = if kk + 1 < k {
                        _mm512_maskz_loadu_ps(mask, at.add(rs))
                    } else {
                        _mm512_setzero_ps()
                    };
                    _mm512_storeu_si512(
                        out.as_mut_ptr().add(p * NR + 16 * h) as *mut _,
                        bf16_pairs(lo, hi),
                    );
                }
            }
        }
        return;
    }
    if full && rs == 1 {
        // columns are contiguous (b is a transposed matrix): 8 pairs of one column a step,
        // rounded by vcvtneps2bf16 (to nearest even, NaN kept)
        for j in 0..NR {
            let column = j0 + j;
            let mut p = 0;
            while p + 8 <= pc {
                let mut pairs = [0u32; 8];
                // SAFETY: rows 2 (p0 + p) .. + 16 <= k of column `column` < n are in b.
                unsafe {
                    let v = _mm512_loadu_ps(b.add(column * cs + 2 * (p0 + p)));
                    let packed: __m256i = std::mem::transmute(_mm512_cvtneps_pbh(v));
                    _mm256_storeu_si256(pairs.as_mut_ptr() as *mut _, packed);
                }
                for (q, pair) in pairs.iter().enumerate() {
                    out[(p + q) * NR + j] = *pair;
                }
                p += 8;
            }
            for p in p..pc {
                let kk = 2 * (p0 + p);
                // SAFETY: rows kk, kk + 1 < k of column `column` < n.
                let (lo, hi) = unsafe { (*b.add(column * cs + kk), *b.add(column * cs + kk + 1)) };
                out[p * NR + j] = to_bf16_bits(lo) | (to_bf16_bits(hi) << 16);
            }
        }
        return;
    }
    for p in 0..pc {
        let kk = 2 * (p0 + p);
        for j in 0..NR {
            let col = j0 + j;
            // SAFETY: in bounds by the checks.
            let at = |row: usize| {
                if col < n && row < k {
                    to_bf16_bits(unsafe { *b.add(row * rs + col * cs) })
                } else {
                    0
                }
            };
            out[p * NR + j] = at(kk) | (at(kk + 1) << 16);
        }
    }
}

/// Where [`product`] reads `b`: a strided matrix, or [`super::ShiftedPlanes`].
#[derive(Clone, Copy)]
pub(super) enum BSource<'a> {
    Strided(Input, [usize; 2]),
    Shifted(&'a super::ShiftedPlanes<'a>),
}

impl BSource<'_> {
    pub(super) fn strided(b: *const f32, strides: [usize; 2]) -> Self {
        BSource::Strided(Input(b), strides)
    }
}

/// [`pack_b`] for `b` given as [`super::ShiftedPlanes`]: each 16-column half of a row is one
/// masked load from its shifted plane (the masked-off lanes, the padding, are not read).
#[target_feature(enable = "avx512f,avx512bw,avx512bf16")]
unsafe fn pack_shifted(
    planes: &super::ShiftedPlanes<'_>,
    [k, n]: [usize; 2],
    p0: usize,
    pc: usize,
    j0: usize,
    out: &mut [u32],
) {
    let taps = planes.shifts.len();
    // per 16-column half of the strip: where its image's positions start in x, and which
    // mask of a tap covers it (None past the last column)
    let halves: [Option<(usize, usize)>; 2] = std::array::from_fn(|h| {
        let col = j0 + 16 * h;
        (col < n).then(|| {
            let (slot, q) = (col / planes.positions, col % planes.positions);
            (slot * planes.image_stride, q)
        })
    });
    // row r = 2 (p0 + p) is (channel, tap) = (r / taps, r % taps), stepped without dividing
    let mut r = 2 * p0;
    let (mut channel, mut tap) = (r / taps, r % taps);
    for p in 0..pc {
        let mut rows = [_mm512_setzero_si512(); 4]; // [lo, hi] of each half
        for which in 0..2 {
            if r < k {
                for (h, half) in halves.iter().enumerate() {
                    if let Some((image, q)) = *half {
                        // SAFETY: image + channel * plane starts a plane of x; q < positions.
                        rows[2 * h + which] =
                            unsafe { load_shifted(planes, image + channel * planes.plane, q, tap) };
                    }
                }
            }
            r += 1;
            tap += 1;
            if tap == taps {
                tap = 0;
                channel += 1;
            }
        }
        for h in 0..2 {
            let pair = bf16_pairs(
                _mm512_castsi512_ps(rows[2 * h]),
                _mm512_castsi512_ps(rows[2 * h + 1]),
            );
            // SAFETY: out holds pc * NR lanes.
            unsafe { _mm512_storeu_si512(out.as_mut_ptr().add(p * NR + 16 * h) as *mut _, pair) };
        }
    }
}

/// The 16 values at positions `q .. q + 16` (`q` a multiple of 16) of the plane starting at
/// element `start` of `planes.x`, under tap `tap` (its shift, and zero where its mask is
/// off). A window that reaches past its plane is gathered value by value: a masked load
/// whose masked-off lanes cross into another page is very slow on some CPUs.
///
/// # Safety
/// `start` must be the start of a plane of `planes.x` and `q < planes.positions`.
#[target_feature(enable = "avx512f")]
#[inline]
unsafe fn load_shifted(
    planes: &super::ShiftedPlanes<'_>,
    start: usize,
    q: usize,
    tap: usize,
) -> __m512i {
    let mask = planes.masks[tap * (planes.positions / 16) + q / 16];
    if mask == 0 {
        return _mm512_setzero_si512();
    }
    let from = q as isize + planes.shifts[tap];
    // the same row two strips on (the planes are read at a stride of a plane, too many
    // streams for the hardware prefetcher); a prefetch never faults
    _mm_prefetch::<_MM_HINT_T0>(
        planes
            .x
            .as_ptr()
            .wrapping_offset(start as isize + from + 64) as *const i8,
    );
    if from >= 0 && from as usize + 16 <= planes.plane {
        // SAFETY: the 16 values lie inside the plane, which lies inside `x` (checked by
        // ShiftedPlanes::new).
        return unsafe {
            _mm512_castps_si512(_mm512_maskz_loadu_ps(
                mask,
                planes.x.as_ptr().add(start + from as usize),
            ))
        };
    }
    let mut values = [0f32; 16];
    for (lane, value) in values.iter_mut().enumerate() {
        if mask >> lane & 1 == 1 {
            // the enabled lanes are inside the plane (checked by ShiftedPlanes::new)
            *value = planes.x[(start as isize + from + lane as isize) as usize];
        }
    }
    // SAFETY: 16 values on the stack.
    unsafe { _mm512_castps_si512(_mm512_loadu_ps(values.as_ptr())) }
}

/// Packs rows `i0 .. i0 + MR` of `a`, pairs `p0 .. p0 + pc` of `k`: pair `p`, row `i` at
/// `p * MR + i`, holding `(a[i][2p], a[i][2p + 1])`; missing rows and columns are zero.
///
/// With `MR` whole rows, the whole pairs take vector paths: one step per pair when the
/// rows are contiguous (`a` read transposed), eight pairs of one row per conversion when
/// the columns are; the rest (and an odd `k`'s last pair) is packed one value at a time.
#[target_feature(enable = "avx512f,avx512bf16")]
#[allow(clippy::too_many_arguments)]
unsafe fn pack_a(
    a: *const f32,
    [rs, cs]: [usize; 2],
    [m, k]: [usize; 2],
    p0: usize,
    pc: usize,
    i0: usize,
    out: &mut [u32],
) {
    // the pairs whose two columns are both below k
    let whole = if i0 + MR <= m {
        pc.min((k / 2).saturating_sub(p0))
    } else {
        0
    };
    if rs == 1 {
        // column 2p's MR rows and column 2p + 1's in one vector, rounded, interleaved
        for p in 0..whole {
            let kk = 2 * (p0 + p);
            // SAFETY: rows i0 .. i0 + MR <= m of columns kk, kk + 1 < k are in a; out
            // holds pc * MR lanes.
            unsafe {
                let lo = _mm256_loadu_ps(a.add(i0 + kk * cs));
                let hi = _mm256_loadu_ps(a.add(i0 + (kk + 1) * cs));
                let both = _mm512_inserti64x4::<1>(
                    _mm512_castsi256_si512(_mm256_castps_si256(lo)),
                    _mm256_castps_si256(hi),
                );
                let r = round16(both);
                let pair = _mm256_or_si256(
                    _mm512_castsi512_si256(r),
                    _mm256_slli_epi32::<16>(_mm512_extracti64x4_epi64::<1>(r)),
                );
                _mm256_storeu_si256(out.as_mut_ptr().add(p * MR) as *mut _, pair);
            }
        }
    } else if cs == 1 && whole > 0 {
        // eight pairs of each of the MR rows, one vcvtneps2bf16 (to nearest even, NaN kept) a
        // row, then transposed so that each pair's MR lanes are stored as one vector
        const { assert!(MR == 8, "the transpose below is 8 x 8") };
        let vectors = whole / 8 * 8;
        for p in (0..vectors).step_by(8) {
            let rows: [__m256i; MR] = std::array::from_fn(|i| {
                // SAFETY: columns 2 (p0 + p) .. + 16 <= k of row i0 + i < m are in a.
                unsafe {
                    let v = _mm512_loadu_ps(a.add((i0 + i) * rs + 2 * (p0 + p)));
                    std::mem::transmute::<__m256bh, __m256i>(_mm512_cvtneps_pbh(v))
                }
            });
            for (q, pair) in transpose8x8(rows).iter().enumerate() {
                // SAFETY: out holds pc * MR lanes and p + q < pc.
                unsafe { _mm256_storeu_si256(out.as_mut_ptr().add((p + q) * MR) as *mut _, *pair) };
            }
        }
        for i in 0..MR {
            // SAFETY: row i0 + i < m holds columns up to 2 (p0 + whole) <= k.
            let row = unsafe { a.add((i0 + i) * rs + 2 * p0) };
            for p in vectors..whole {
                // SAFETY: columns 2 (p0 + p), + 1 < k of the row.
                let (lo, hi) = unsafe { (*row.add(2 * p), *row.add(2 * p + 1)) };
                out[p * MR + i] = to_bf16_bits(lo) | (to_bf16_bits(hi) << 16);
            }
        }
    }
    let vectorised = if rs == 1 || cs == 1 { whole } else { 0 };
    for p in vectorised..pc {
        let kk = 2 * (p0 + p);
        for i in 0..MR {
            let row = i0 + i;
            let at = |col: usize| {
                if row < m && col < k {
                    // SAFETY: row < m and col < k: an element of a.
                    to_bf16_bits(unsafe { *a.add(row * rs + col * cs) })
                } else {
                    0
                }
            };
            out[p * MR + i] = at(kk) | (at(kk + 1) << 16);
        }
    }
}

/// The 8 x 8 transpose of 32-bit lanes: lane `i` of result `q` is lane `q` of `rows[i]`.
#[target_feature(enable = "avx2")]
#[inline]
fn transpose8x8(rows: [__m256i; 8]) -> [__m256i; 8] {
    let t: [__m256i; 8] = std::array::from_fn(|i| {
        let (x, y) = (rows[i / 2 * 2], rows[i / 2 * 2 + 1]);
        if i % 2 == 0 {
            _mm256_unpacklo_epi32(x, y)
        } else {
            _mm256_unpackhi_epi32(x, y)
        }
    });
    // u[0..4] from rows 0-3, u[4..8] from rows 4-7: columns (q, q + 4) for q = 0..4
    let u: [__m256i; 8] = std::array::from_fn(|i| {
        let base = i / 4 * 4;
        let (x, y) = (t[base + (i % 4) / 2], t[base + (i % 4) / 2 + 2]);
        if i % 2 == 0 {
            _mm256_unpacklo_epi64(x, y)
        } else {
            _mm256_unpackhi_epi64(x, y)
        }
    });
    std::array::from_fn(|q| {
        if q < 4 {
            _mm256_permute2x128_si256::<0x20>(u[q], u[q + 4])
        } else {
            _mm256_permute2x128_si256::<0x31>(u[q - 4], u[q])
        }
    })
}

/// `MR x NR` block of `c` at `(i0, j0)`: `+=` (`accumulate`) or `=` the product of the packed
/// strips over `pc` pairs; only the rows below `m` and columns below `n` are written.
#[target_feature(enable = "avx512f,avx512bf16")]
#[allow(clippy::too_many_arguments)]
unsafe fn micro(
    apack: &[u32],
    bpack: &[u32],
    pc: usize,
    c: *mut f32,
    ldc: usize,
    [i0, j0]: [usize; 2],
    [m, n]: [usize; 2],
    accumulate: bool,
) {
    let mut acc = [[_mm512_setzero_ps(); 2]; MR];
    for p in 0..pc {
        // SAFETY: bpack holds pc * NR lanes, apack pc * MR.
        unsafe {
            let b0: __m512bh =
                std::mem::transmute(_mm512_loadu_si512(bpack.as_ptr().add(p * NR) as *const _));
            let b1: __m512bh = std::mem::transmute(_mm512_loadu_si512(
                bpack.as_ptr().add(p * NR + 16) as *const _,
            ));
            for (i, row) in acc.iter_mut().enumerate() {
                let pair = *apack.get_unchecked(p * MR + i) as i32;
                let av: __m512bh = std::mem::transmute(_mm512_set1_epi32(pair));
                row[0] = _mm512_dpbf16_ps(row[0], av, b0);
                row[1] = _mm512_dpbf16_ps(row[1], av, b1);
            }
        }
    }
    for (i, row) in acc.iter().enumerate() {
        let r = i0 + i;
        if r >= m {
            break;
        }
        for (h, value) in row.iter().enumerate() {
            let col = j0 + 16 * h;
            if col >= n {
                break;
            }
            let lanes = (n - col).min(16);
            let mask: __mmask16 = if lanes == 16 {
                0xffff
            } else {
                (1u16 << lanes) - 1
            };
            // SAFETY: row r < m, columns col..col + lanes < n of c.
            unsafe {
                let ptr = c.add(r * ldc + col);
                let v = if accumulate {
                    _mm512_add_ps(_mm512_maskz_loadu_ps(mask, ptr), *value)
                } else {
                    *value
                };
                _mm512_mask_storeu_ps(ptr, mask, v);
            }
        }
    }
}

/// Every block of `a` `[m, k]` packed into `out`: the block of pairs `p0 .. p0 + pc` at
/// `row_blocks * MR * p0`, its row block `rb` `rb * pc * MR` further on.
///
/// # Safety
/// The CPU has AVX-512 F, BW and BF16; `a` is an `[m, k]` matrix with these strides.
pub(super) unsafe fn pack_all(
    a: *const f32,
    a_strides: [usize; 2],
    [m, k]: [usize; 2],
    out: &mut Vec<u32>,
) {
    let pairs = k.div_ceil(2);
    let row_blocks = m.div_ceil(MR);
    // pack_a writes every lane of its block: no need to zero what a reused buffer holds
    out.resize(row_blocks * pairs * MR, 0);
    for p0 in (0..pairs).step_by(KC) {
        let pc = KC.min(pairs - p0);
        let block = &mut out[row_blocks * MR * p0..][..row_blocks * pc * MR];
        for (rb, lanes) in block.chunks_mut(pc * MR).enumerate() {
            // SAFETY: as this function's contract; lanes holds pc * MR values.
            unsafe { pack_a(a, a_strides, [m, k], p0, pc, rb * MR, lanes) };
        }
    }
}

/// [`pack_all`] for `a` given as [`super::ShiftedPlanes`] (`[m, k]` = its dims): per row block
/// and eight pairs, each row's 16 positions one masked load from its shifted plane and one
/// conversion, then the 8 x 8 transpose of [`pack_a`]'s row-major path.
///
/// # Safety
/// The CPU has AVX-512 F, BW and BF16.
#[target_feature(enable = "avx512f,avx512bw,avx512bf16")]
pub(super) unsafe fn pack_all_planes(planes: &super::ShiftedPlanes<'_>, out: &mut Vec<u32>) {
    const { assert!(MR == 8 && KC.is_multiple_of(8), "eight pairs per step") };
    let [m, k] = planes.dims();
    // k is images * positions, a multiple of 16: whole groups of eight pairs, each inside one
    // image's positions
    let pairs = k / 2;
    let row_blocks = m.div_ceil(MR);
    let taps = planes.shifts.len();
    out.resize(row_blocks * pairs * MR, 0);
    for p0 in (0..pairs).step_by(KC) {
        let pc = KC.min(pairs - p0);
        let block = &mut out[row_blocks * MR * p0..][..row_blocks * pc * MR];
        for (rb, lanes) in block.chunks_mut(pc * MR).enumerate() {
            for p in (0..pc).step_by(8) {
                let column = 2 * (p0 + p);
                let (slot, q) = (column / planes.positions, column % planes.positions);
                let rows: [__m256i; MR] = std::array::from_fn(|i| {
                    let r = rb * MR + i;
                    if r >= m {
                        return _mm256_setzero_si256();
                    }
                    let (channel, tap) = (r / taps, r % taps);
                    let start = slot * planes.image_stride + channel * planes.plane;
                    // SAFETY: start begins a plane of x (slot < images, channel < channels);
                    // q < positions.
                    unsafe {
                        let v = _mm512_castsi512_ps(load_shifted(planes, start, q, tap));
                        std::mem::transmute::<__m256bh, __m256i>(_mm512_cvtneps_pbh(v))
                    }
                });
                for (step, pair) in transpose8x8(rows).iter().enumerate() {
                    // SAFETY: lanes holds pc * MR values and p + step < pc.
                    unsafe {
                        _mm256_storeu_si256(
                            lanes.as_mut_ptr().add((p + step) * MR) as *mut _,
                            *pair,
                        )
                    };
                }
            }
        }
    }
}

/// `c = apack x b` (`+=` with `accumulate`) for `apack` an `[m, k]` matrix packed by
/// [`pack_all`].
///
/// # Safety
/// The CPU has AVX-512 F, BW and BF16; `b` is a `[k, n]` matrix with these strides, `c` a
/// row-major `[m, n]` one with row stride `ldc >= n` that overlaps neither.
#[allow(clippy::too_many_arguments)]
pub(super) unsafe fn product(
    apack: &[u32],
    [m, n, k]: [usize; 3],
    b: BSource<'_>,
    c: *mut f32,
    ldc: usize,
    accumulate: bool,
    parallel: bool,
) {
    if m == 0 || n == 0 || (k == 0 && accumulate) {
        return;
    }
    let c = Shared(c);
    if k == 0 {
        for r in 0..m {
            // SAFETY: row r of c, n columns.
            unsafe { std::slice::from_raw_parts_mut(c.0.add(r * ldc), n).fill(0.0) };
        }
        return;
    }
    let pairs = k.div_ceil(2);
    let row_blocks = m.div_ceil(MR);
    let strips = n.div_ceil(NR);
    for (block, p0) in (0..pairs).step_by(KC).enumerate() {
        let pc = KC.min(pairs - p0);
        let apack = &apack[row_blocks * MR * p0..][..row_blocks * pc * MR];
        let columns = |range: std::ops::Range<usize>| {
            // the wrappers whole, not their raw-pointer fields (which are not Sync)
            let (b, c) = (b, c);
            let mut bpack = vec![0u32; pc * NR];
            for strip in range {
                let j0 = strip * NR;
                // SAFETY: b is [k, n] with its strides; c as the contract; the CPU has
                // AVX-512 F, BW and BF16 (the contract); this range's columns are its own.
                unsafe {
                    match b {
                        BSource::Strided(b, b_strides) => {
                            pack_b(b.0, b_strides, [k, n], p0, pc, j0, &mut bpack)
                        }
                        BSource::Shifted(planes) => {
                            pack_shifted(planes, [k, n], p0, pc, j0, &mut bpack)
                        }
                    }
                    for rb in 0..row_blocks {
                        micro(
                            &apack[rb * pc * MR..][..pc * MR],
                            &bpack,
                            pc,
                            c.0,
                            ldc,
                            [rb * MR, j0],
                            [m, n],
                            accumulate || block > 0,
                        );
                    }
                }
            }
        };
        let threads = rayon::current_num_threads().min(strips);
        if parallel && threads > 1 {
            let per = strips.div_ceil(threads);
            (0..threads)
                .into_par_iter()
                .for_each(|t| columns(t * per..((t + 1) * per).min(strips)));
        } else {
            columns(0..strips);
        }
    }
}
