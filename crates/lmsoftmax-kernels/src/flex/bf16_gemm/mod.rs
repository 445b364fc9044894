//! A matrix product on bf16 operands with f32 sums, on AVX-512-BF16 (`vdpbf16ps`: 16 lanes, each
//! the f32 sum of two bf16 products, per instruction — twice an f32 FMA's products), chosen at
//! run time where the CPU has it ([`available`]).
//!
//! The operands are f32 matrices rounded to bf16 while they are packed (round to nearest, ties to
//! even; NaN stays NaN), so values already rounded by [`crate::autocast`] pass unchanged; the
//! products of two bf16 values are exact in f32 and the sums are f32, so the result is the
//! emulated path's up to the order of the additions (and `vdpbf16ps` flushes subnormal inputs
//! to zero, as the bf16 units do).
//!
//! Blocking: `k` in blocks of [`KC`] pairs; for each block the rows of `a` are packed once as
//! bf16 pairs, `b` strip by strip ([`NR`] columns), and an [`MR`] x [`NR`] micro-kernel keeps its
//! 16 accumulators in registers.

/// Rows of the micro-kernel.
pub const MR: usize = 8;
/// Columns of the micro-kernel (two vectors of 16).
pub const NR: usize = 32;
/// Pairs of `k` per packed block (1,024 bytes of a packed `b` row pair strip: 32 KiB a strip).
pub const KC: usize = 256;

/// Whether this CPU runs [`gemm()`]: x86-64 with AVX-512 F, BW and BF16 (every CPU with
/// AVX-512-BF16 has BW).
///
/// ```
/// // false on CPUs without AVX-512-BF16 (and off x86-64): callers take the f32 path there
/// let _ = lmsoftmax_kernels::flex::bf16_gemm::available();
/// ```
pub fn available() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::is_x86_feature_detected!("avx512f")
            && std::is_x86_feature_detected!("avx512bw")
            && std::is_x86_feature_detected!("avx512bf16")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

#[cfg(target_arch = "x86_64")]
thread_local! {
    /// The last [`gemm()`]'s packed `a` on this thread, kept for the next one's.
    static PACKED_A: std::cell::Cell<Vec<u32>> = const { std::cell::Cell::new(Vec::new()) };
}

/// `c = a x b` (or `c += a x b` with `accumulate`) for `a` `[m, k]` with element `(i, p)` at
/// `a[i * a_strides[0] + p * a_strides[1]]` (row major: `[lda, 1]`; transposed: `[1, lda]`),
/// `b` `[k, n]` with element `(p, j)` at `b[p * b_strides[0] + j * b_strides[1]]` (likewise),
/// and row-major `c` `[m, n]` (row stride `ldc`),
/// with bf16 products and f32 sums; `parallel` splits the columns over rayon's threads (each
/// column's sum is made in the same order whatever the threads).
///
/// ```
/// use lmsoftmax_kernels::flex::bf16_gemm;
/// if bf16_gemm::available() {
///     let a = [1.0, 2.0, 3.0, 4.0]; // [2, 2]
///     let b = [1.0, 0.5, -1.0, 2.0]; // [2, 2]
///     let mut c = [0.0f32; 4];
///     // SAFETY: the slices hold [2, 2] matrices with row stride 2, and the CPU has the units.
///     unsafe { bf16_gemm::gemm(2, 2, 2, a.as_ptr(), [2, 1], b.as_ptr(), [2, 1], c.as_mut_ptr(), 2, false, false) };
///     assert_eq!(c, [-1.0, 4.5, -1.0, 9.5]);
///     // b read transposed, added to c
///     unsafe { bf16_gemm::gemm(2, 2, 2, a.as_ptr(), [2, 1], b.as_ptr(), [1, 2], c.as_mut_ptr(), 2, true, false) };
///     assert_eq!(c, [-1.0 + 2.0, 4.5 + 3.0, -1.0 + 5.0, 9.5 + 5.0]);
/// }
/// ```
///
/// # Safety
/// [`available`] must be true; `a`, `b` and `c` must point to matrices of the given shapes and
/// strides (`ldc >= n`), and `c` must not overlap `a` or `b`.
#[allow(clippy::too_many_arguments)]
pub unsafe fn gemm(
    m: usize,
    n: usize,
    k: usize,
    a: *const f32,
    a_strides: [usize; 2],
    b: *const f32,
    b_strides: [usize; 2],
    c: *mut f32,
    ldc: usize,
    accumulate: bool,
    parallel: bool,
) {
    #[cfg(target_arch = "x86_64")]
    {
        // SAFETY: as this function's contract.
        let pack = |apack: &mut Vec<u32>| unsafe { x86::pack_all(a, a_strides, [m, k], apack) };
        // SAFETY: as this function's contract.
        unsafe {
            product_in_thread_buffer(pack, [m, n, k], b, b_strides, c, ldc, accumulate, parallel)
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        let _ = (
            m, n, k, a, a_strides, b, b_strides, c, ldc, accumulate, parallel,
        );
        unreachable!("bf16_gemm::gemm without AVX-512-BF16: check available() first");
    }
}

/// `c = a x b` (`+=` with `accumulate`) with `a` `[m, k]` packed by `pack` into this thread's
/// buffer ([`PACKED_A`]), taken out of its cell while in use: a rayon thread waiting on this
/// product's columns may run another product meanwhile.
///
/// # Safety
/// As [`gemm()`]'s, with `pack` leaving a packing of an `[m, k]` matrix in the buffer.
#[cfg(target_arch = "x86_64")]
#[allow(clippy::too_many_arguments)]
unsafe fn product_in_thread_buffer(
    pack: impl FnOnce(&mut Vec<u32>),
    [m, n, k]: [usize; 3],
    b: *const f32,
    b_strides: [usize; 2],
    c: *mut f32,
    ldc: usize,
    accumulate: bool,
    parallel: bool,
) {
    let mut apack = PACKED_A.with(|cell| cell.take());
    pack(&mut apack);
    // SAFETY: as this function's contract.
    unsafe {
        x86::product(
            &apack,
            [m, n, k],
            x86::BSource::strided(b, b_strides),
            c,
            ldc,
            accumulate,
            parallel,
        )
    };
    PACKED_A.with(|cell| cell.replace(apack));
}

/// An `[m, k]` matrix rounded to bf16 and packed once, for several products with it
/// ([`gemm_packed`]): a convolution's weights against every image of a batch.
///
/// ```
/// use lmsoftmax_kernels::flex::bf16_gemm::{self, PackedA};
/// if bf16_gemm::available() {
///     let a = [1.0, 2.0, 3.0, 4.0]; // [2, 2]
///     // SAFETY: a [2, 2] row-major matrix; the CPU has the units.
///     let packed = unsafe { PackedA::new(2, 2, a.as_ptr(), [2, 1]) };
///     // the identity, then the swap of the two columns
///     for (b, want) in [([1.0, 0.0, 0.0, 1.0], [1.0, 2.0, 3.0, 4.0]), ([0.0, 1.0, 1.0, 0.0], [2.0, 1.0, 4.0, 3.0])] {
///         let mut c = [0.0f32; 4];
///         // SAFETY: b and c are [2, 2] with row stride 2.
///         unsafe { bf16_gemm::gemm_packed(&packed, 2, b.as_ptr(), [2, 1], c.as_mut_ptr(), 2, false, false) };
///         assert_eq!(c, want);
///     }
/// }
/// ```
pub struct PackedA {
    m: usize,
    k: usize,
    lanes: Vec<u32>,
}

impl PackedA {
    /// `a` `[m, k]`, element `(i, p)` at `a[i * a_strides[0] + p * a_strides[1]]`, packed.
    ///
    /// # Safety
    /// [`available`] must be true and `a` point to a matrix of that shape and strides.
    pub unsafe fn new(m: usize, k: usize, a: *const f32, a_strides: [usize; 2]) -> PackedA {
        let mut lanes = Vec::new();
        #[cfg(target_arch = "x86_64")]
        // SAFETY: as this function's contract.
        unsafe {
            x86::pack_all(a, a_strides, [m, k], &mut lanes)
        };
        #[cfg(not(target_arch = "x86_64"))]
        {
            let _ = (a, a_strides);
            unreachable!("bf16_gemm::PackedA without AVX-512-BF16: check available() first");
        }
        PackedA { m, k, lanes }
    }

    /// `[m, k]`.
    pub fn dims(&self) -> [usize; 2] {
        [self.m, self.k]
    }
}

/// [`gemm()`] with an `a` packed beforehand: `c = a x b` (`+=` with `accumulate`) for `b`
/// `[k, n]` (strides as in [`gemm()`]) and row-major `c` `[m, n]` with row stride `ldc`.
///
/// # Safety
/// As [`gemm()`]: `b` and `c` must point to matrices of the given shapes (`ldc >= n`), `c`
/// overlapping neither `b` nor anything the packed matrix was read from.
#[allow(clippy::too_many_arguments)]
pub unsafe fn gemm_packed(
    a: &PackedA,
    n: usize,
    b: *const f32,
    b_strides: [usize; 2],
    c: *mut f32,
    ldc: usize,
    accumulate: bool,
    parallel: bool,
) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: as this function's contract; a was packed on a CPU with the units (its `new`).
    unsafe {
        x86::product(
            &a.lanes,
            [a.m, n, a.k],
            x86::BSource::strided(b, b_strides),
            c,
            ldc,
            accumulate,
            parallel,
        )
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        let _ = (a, n, b, b_strides, c, ldc, accumulate, parallel);
        unreachable!("bf16_gemm::gemm_packed without AVX-512-BF16: check available() first");
    }
}

/// A `[k, n]` matrix `b` that is a stack of shifted, masked image planes, read in place: the
/// im2col matrix of a stride-1 convolution whose output rows are as wide as its input's, without
/// building it. Row `r` is channel `r / taps` and tap `r % taps`; column `slot * positions + q` is
/// position `q` of image `slot`; the element is
/// `x[slot * image_stride + channel * plane + q + shifts[tap]]` where bit `q % 16` of
/// `masks[tap * positions / 16 + q / 16]` is set, and zero where it is not (the padding).
///
/// ```
/// use lmsoftmax_kernels::flex::bf16_gemm::{self, PackedA, ShiftedPlanes};
/// if bf16_gemm::available() {
///     // one image, one channel, 16 positions; tap 0: the plane itself; tap 1: shifted by one,
///     // the last position masked off
///     let x: Vec<f32> = (0..16).map(|v| v as f32).collect();
///     let planes = ShiftedPlanes::new(&x, 16, 16, 1, 1, 16, &[0, 1], &[0xffff, 0x7fff]);
///     let a = [1.0, 10.0]; // [1, 2]: row 0 + 10 x row 1
///     // SAFETY: a is [1, 2] row-major; the CPU has the units.
///     let packed = unsafe { PackedA::new(1, 2, a.as_ptr(), [2, 1]) };
///     let mut c = [0f32; 16];
///     // SAFETY: c is [1, 16].
///     unsafe { bf16_gemm::gemm_shifted(&packed, &planes, c.as_mut_ptr(), 16, false, false) };
///     assert_eq!(c[0], 0.0 + 10.0 * 1.0);
///     assert_eq!(c[15], 15.0); // the masked tap adds nothing
/// }
/// ```
pub struct ShiftedPlanes<'a> {
    x: &'a [f32],
    image_stride: usize,
    plane: usize,
    channels: usize,
    images: usize,
    positions: usize,
    shifts: &'a [isize],
    masks: &'a [u16],
}

impl<'a> ShiftedPlanes<'a> {
    /// The matrix of `channels * shifts.len()` rows and `images * positions` columns over `x`.
    ///
    /// # Panics
    /// If `positions` is not a positive multiple of 16, `masks` does not hold
    /// `shifts.len() * positions / 16` masks, `x` does not hold every plane whole, or an
    /// element a mask enables lies outside its plane.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        x: &'a [f32],
        image_stride: usize,
        plane: usize,
        channels: usize,
        images: usize,
        positions: usize,
        shifts: &'a [isize],
        masks: &'a [u16],
    ) -> Self {
        assert!(
            positions > 0 && positions.is_multiple_of(16),
            "positions ({positions}) must be a positive multiple of 16"
        );
        let chunks = positions / 16;
        assert_eq!(
            masks.len(),
            shifts.len() * chunks,
            "one mask per tap and 16 positions"
        );
        if channels > 0 && images > 0 {
            let last_plane = (images - 1) * image_stride + (channels - 1) * plane;
            assert!(
                last_plane + plane <= x.len(),
                "{images} images of {channels} planes of {plane} values (image stride \
                 {image_stride}) need {} values, x holds {}",
                last_plane + plane,
                x.len()
            );
            for (tap, shift) in shifts.iter().enumerate() {
                for (chunk, mask) in masks[tap * chunks..][..chunks].iter().enumerate() {
                    for lane in (0..16).filter(|l| mask >> l & 1 == 1) {
                        let q = (chunk * 16 + lane) as isize + shift;
                        assert!(
                            q >= 0 && q < plane as isize,
                            "tap {tap} reads position {q} outside its plane of {plane} values"
                        );
                    }
                }
            }
        }
        ShiftedPlanes {
            x,
            image_stride,
            plane,
            channels,
            images,
            positions,
            shifts,
            masks,
        }
    }

    /// `[k, n]`: rows (channels times taps) and columns (images times positions).
    pub fn dims(&self) -> [usize; 2] {
        [
            self.channels * self.shifts.len(),
            self.images * self.positions,
        ]
    }
}

/// `c = a x b` (`+=` with `accumulate`) for `b` given as [`ShiftedPlanes`] (`[k, n]` with `k` the
/// packed `a`'s columns) and row-major `c` `[m, n]` with row stride `ldc`; as [`gemm_packed`].
///
/// # Safety
/// [`available`] must be true; `c` must point to an `[m, n]` matrix (`ldc >= n`) overlapping
/// neither input.
///
/// # Panics
/// If `b`'s rows are not `a`'s columns.
pub unsafe fn gemm_shifted(
    a: &PackedA,
    b: &ShiftedPlanes<'_>,
    c: *mut f32,
    ldc: usize,
    accumulate: bool,
    parallel: bool,
) {
    let [k, n] = b.dims();
    assert_eq!(k, a.k, "the shifted planes' rows must be a's columns");
    #[cfg(target_arch = "x86_64")]
    // SAFETY: as this function's contract; b's enabled elements are inside its slice.
    unsafe {
        x86::product(
            &a.lanes,
            [a.m, n, k],
            x86::BSource::Shifted(b),
            c,
            ldc,
            accumulate,
            parallel,
        )
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        let _ = (a, n, c, ldc, accumulate, parallel);
        unreachable!("bf16_gemm::gemm_shifted without AVX-512-BF16: check available() first");
    }
}

/// `c = a x b` (`+=` with `accumulate`) for `a` given as [`ShiftedPlanes`] (`[m, k]`: its rows
/// the planes' channel-tap rows, its columns their images' positions), `b` `[k, n]` with
/// element `(p, j)` at `b[p * b_strides[0] + j * b_strides[1]]`, and row-major `c` `[m, n]` (row
/// stride `ldc`): a convolution's transposed weight gradient `im2col(x) x dY^T` without the
/// im2col matrix; `parallel` as in [`gemm()`].
///
/// ```
/// use lmsoftmax_kernels::flex::bf16_gemm::{self, ShiftedPlanes};
/// if bf16_gemm::available() {
///     // one image, one channel, 16 positions; tap 0: the plane itself; tap 1: shifted by one,
///     // the last position masked off
///     let x: Vec<f32> = (0..16).map(|v| v as f32).collect();
///     let planes = ShiftedPlanes::new(&x, 16, 16, 1, 1, 16, &[0, 1], &[0xffff, 0x7fff]);
///     // b [16, 1]: the sum of each row's first 8 positions
///     let b: Vec<f32> = (0..16).map(|q| if q < 8 { 1.0 } else { 0.0 }).collect();
///     let mut c = [0f32; 2];
///     // SAFETY: b is [16, 1] and c [2, 1]; the CPU has the units.
///     unsafe { bf16_gemm::gemm_planes_a(&planes, b.as_ptr(), [1, 1], 1, c.as_mut_ptr(), 1, false, false) };
///     assert_eq!(c, [(0..8).sum::<i32>() as f32, (1..9).sum::<i32>() as f32]);
/// }
/// ```
///
/// # Safety
/// [`available`] must be true; `b` must point to a `[k, n]` matrix with these strides and `c`
/// to an `[m, n]` one (`ldc >= n`) overlapping neither.
#[allow(clippy::too_many_arguments)]
pub unsafe fn gemm_planes_a(
    a: &ShiftedPlanes<'_>,
    b: *const f32,
    b_strides: [usize; 2],
    n: usize,
    c: *mut f32,
    ldc: usize,
    accumulate: bool,
    parallel: bool,
) {
    #[cfg(target_arch = "x86_64")]
    {
        let [m, k] = a.dims();
        // SAFETY: the CPU has the units (this function's contract).
        let pack = |apack: &mut Vec<u32>| unsafe { x86::pack_all_planes(a, apack) };
        // SAFETY: as this function's contract; a's enabled elements are inside its slice.
        unsafe {
            product_in_thread_buffer(pack, [m, n, k], b, b_strides, c, ldc, accumulate, parallel)
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        let _ = (a, b, b_strides, n, c, ldc, accumulate, parallel);
        unreachable!("bf16_gemm::gemm_planes_a without AVX-512-BF16: check available() first");
    }
}

/// The bf16 bits of `v`, rounded to nearest, ties to even; NaN stays a (quiet) NaN.
fn to_bf16_bits(v: f32) -> u32 {
    if v.is_nan() {
        return 0x7fc0;
    }
    let bits = v.to_bits();
    bits.wrapping_add(0x7fff + ((bits >> 16) & 1)) >> 16
}

#[cfg(target_arch = "x86_64")]
mod x86;

#[cfg(test)]
mod tests {
    use super::*;

    fn bf(v: f32) -> f64 {
        f32::from_bits(to_bf16_bits(v) << 16) as f64
    }

    /// `a x b` in f64 on the bf16-rounded operands, and the sums of the products' magnitudes.
    fn reference(
        m: usize,
        n: usize,
        k: usize,
        a: &[f32],
        lda: usize,
        b: &[f32],
    ) -> Vec<(f64, f64)> {
        let mut c = vec![(0f64, 0f64); m * n];
        for i in 0..m {
            for j in 0..n {
                for p in 0..k {
                    let product = bf(a[i * lda + p]) * bf(b[p * n + j]);
                    c[i * n + j].0 += product;
                    c[i * n + j].1 += product.abs();
                }
            }
        }
        c
    }

    fn skip() -> bool {
        if !available() {
            use std::io::Write;
            let _ = writeln!(
                std::io::stderr(),
                "SKIPPED bf16_gemm: this CPU has no AVX-512-BF16 (the f32 path is used instead)"
            );
            return true;
        }
        false
    }

    #[test]
    fn the_product_of_rounded_operands_with_f32_sums_at_any_shape() {
        if skip() {
            return;
        }
        // tails in every direction, k odd, more than one k block, a row stride above k
        for (m, n, k, parallel) in [
            (1, 1, 1, false),
            (13, 45, 37, false),
            (8, 32, 2, false),
            (20, 70, 2 * KC + 3, true),
            (64, 300, 600, true),
        ] {
            let lda = k + 3;
            let a: Vec<f32> = (0..m * lda)
                .map(|i| ((i * 7919) % 997) as f32 / 311.0 - 1.6)
                .collect();
            let b: Vec<f32> = (0..k * n)
                .map(|i| ((i * 104_729) % 991) as f32 / 257.0 - 1.9)
                .collect();
            let mut c = vec![f32::NAN; m * n];
            let (pa, pb) = (a.as_ptr(), b.as_ptr());
            // SAFETY: the shapes and strides are those of the vectors; the CPU has the units.
            unsafe {
                gemm(
                    m,
                    n,
                    k,
                    pa,
                    [lda, 1],
                    pb,
                    [n, 1],
                    c.as_mut_ptr(),
                    n,
                    false,
                    parallel,
                )
            };
            let want = reference(m, n, k, &a, lda, &b);
            for (i, (g, (w, magnitude))) in c.iter().zip(&want).enumerate() {
                // f32 sums of k exact products: each addition rounds by at most half an f32
                // step of the running sum, which the sum of magnitudes bounds
                let bound = k as f64 * f32::EPSILON as f64 * magnitude + 1e-30;
                assert!(
                    ((*g as f64) - w).abs() <= bound,
                    "[{m}, {n}, {k}] element {i}: {g} vs {w}"
                );
            }
            // the same b stored transposed, read through its strides, added to c: twice c
            let bt: Vec<f32> = (0..n * k).map(|i| b[(i % k) * n + i / k]).collect();
            let mut twice = c.clone();
            // SAFETY: bt is [n, k] row-major, b's element (p, j) at bt[p + j * k].
            unsafe {
                gemm(
                    m,
                    n,
                    k,
                    pa,
                    [lda, 1],
                    bt.as_ptr(),
                    [1, k],
                    twice.as_mut_ptr(),
                    n,
                    true,
                    parallel,
                )
            };
            // and a stored transposed, read through its strides: c again
            let at: Vec<f32> = (0..k * m).map(|i| a[(i % m) * lda + i / m]).collect();
            let mut again = vec![0f32; m * n];
            // SAFETY: at is [k, m] row-major, a's element (i, p) at at[i + p * m].
            unsafe {
                gemm(
                    m,
                    n,
                    k,
                    at.as_ptr(),
                    [1, m],
                    pb,
                    [n, 1],
                    again.as_mut_ptr(),
                    n,
                    false,
                    false,
                )
            };
            assert_eq!(again, c, "[{m}, {n}, {k}] a transposed");
            for (t, once) in twice.iter().zip(&c) {
                assert!(
                    (t - 2.0 * once).abs() <= 1e-5 * (1.0 + once.abs()),
                    "[{m}, {n}, {k}] transposed: {t} vs 2 x {once}"
                );
            }
        }
    }

    #[test]
    fn a_packed_once_gives_each_product_the_bits_of_a_packing_per_product() {
        if skip() {
            return;
        }
        // a read transposed (as the input gradient reads the weights), tails in m and k
        let (m, k) = (45, 2 * KC + 5);
        let a: Vec<f32> = (0..m * k)
            .map(|i| ((i * 613) % 1009) as f32 / 199.0 - 2.5)
            .collect();
        // SAFETY: element (i, p) at a[i + p * m]: [m, k] in m * k values; the CPU has the units.
        let packed = unsafe { PackedA::new(m, k, a.as_ptr(), [1, m]) };
        assert_eq!(packed.dims(), [m, k]);
        for (n, seed) in [(70, 3), (33, 11)] {
            let b: Vec<f32> = (0..k * n)
                .map(|i| ((i * seed * 7) % 883) as f32 / 173.0 - 2.2)
                .collect();
            let (mut once, mut each) = (vec![0f32; m * n], vec![0f32; m * n]);
            // SAFETY: b is [k, n] row-major, the outputs [m, n].
            unsafe {
                gemm_packed(
                    &packed,
                    n,
                    b.as_ptr(),
                    [n, 1],
                    once.as_mut_ptr(),
                    n,
                    false,
                    true,
                );
                gemm(
                    m,
                    n,
                    k,
                    a.as_ptr(),
                    [1, m],
                    b.as_ptr(),
                    [n, 1],
                    each.as_mut_ptr(),
                    n,
                    false,
                    false,
                );
            }
            assert_eq!(once, each, "n = {n}");
        }
    }

    #[test]
    fn shifted_planes_give_the_bits_of_the_matrix_they_stand_for() {
        if skip() {
            return;
        }
        // 9 images of 5 channels (the product uses channels 1..4), 8x8 planes, a 3x3 kernel
        // with padding 1: taps shifted by (ki - 1) * 8 + (kj - 1), the padding masked off; 576
        // columns, more than one block of KC pairs when the planes are the `a` of a product
        let (images, c, side) = (9, 5, 8);
        let plane = side * side;
        let x: Vec<f32> = (0..images * c * plane)
            .map(|i| ((i * 7907) % 1013) as f32 / 211.0 - 2.4)
            .collect();
        let (mut shifts, mut masks) = (Vec::new(), vec![0u16; 9 * plane / 16]);
        for tap in 0..9 {
            let (dy, dx) = (tap as isize / 3 - 1, tap as isize % 3 - 1);
            shifts.push(dy * side as isize + dx);
            for q in 0..plane {
                let (r, col) = ((q / side) as isize + dy, (q % side) as isize + dx);
                if (0..side as isize).contains(&r) && (0..side as isize).contains(&col) {
                    masks[tap * plane / 16 + q / 16] |= 1 << (q % 16);
                }
            }
        }
        let channels = 3;
        let x_group = &x[plane..];
        let planes = ShiftedPlanes::new(
            x_group,
            c * plane,
            plane,
            channels,
            images,
            plane,
            &shifts,
            &masks,
        );
        let [k, n] = planes.dims();
        assert_eq!([k, n], [channels * 9, images * plane]);
        // the matrix by its definition
        let mut b = vec![0f32; k * n];
        for r in 0..k {
            let (channel, tap) = (r / 9, r % 9);
            for col in 0..n {
                let (slot, q) = (col / plane, col % plane);
                if masks[tap * plane / 16 + q / 16] >> (q % 16) & 1 == 1 {
                    let at = (slot * c * plane + channel * plane + q) as isize + shifts[tap];
                    b[r * n + col] = x_group[at as usize];
                }
            }
        }
        let m = 19;
        let a: Vec<f32> = (0..m * k)
            .map(|i| ((i * 389) % 601) as f32 / 97.0 - 3.1)
            .collect();
        // SAFETY: a is [m, k] row-major; the CPU has the units.
        let packed = unsafe { PackedA::new(m, k, a.as_ptr(), [k, 1]) };
        for parallel in [false, true] {
            let (mut shifted, mut explicit) = (vec![0f32; m * n], vec![0f32; m * n]);
            // SAFETY: the outputs are [m, n]; b is [k, n] row-major.
            unsafe {
                gemm_shifted(&packed, &planes, shifted.as_mut_ptr(), n, false, parallel);
                gemm_packed(
                    &packed,
                    n,
                    b.as_ptr(),
                    [n, 1],
                    explicit.as_mut_ptr(),
                    n,
                    false,
                    parallel,
                );
            }
            assert_eq!(shifted, explicit, "parallel {parallel}");
        }
        // the planes as the `a` [k, n] of a product (a weight gradient's im2col(x) x dY^T) with
        // a `d` [n, 37] stored transposed: the bits of the explicit matrix's product
        let nd = 37;
        let d: Vec<f32> = (0..n * nd)
            .map(|i| ((i * 613) % 487) as f32 / 101.0 - 2.2)
            .collect();
        for parallel in [false, true] {
            let (mut from_planes, mut explicit) = (vec![0f32; k * nd], vec![0f32; k * nd]);
            // SAFETY: the outputs are [k, nd]; b is [k, n] row-major; d's element (p, j) is at
            // d[p + j * n].
            unsafe {
                gemm_planes_a(
                    &planes,
                    d.as_ptr(),
                    [1, n],
                    nd,
                    from_planes.as_mut_ptr(),
                    nd,
                    false,
                    parallel,
                );
                gemm(
                    k,
                    nd,
                    n,
                    b.as_ptr(),
                    [n, 1],
                    d.as_ptr(),
                    [1, n],
                    explicit.as_mut_ptr(),
                    nd,
                    false,
                    parallel,
                );
            }
            assert_eq!(
                from_planes, explicit,
                "a from the planes, parallel {parallel}"
            );
        }
    }

    #[test]
    #[should_panic(expected = "outside its plane")]
    fn shifted_planes_refuse_an_enabled_lane_outside_the_plane() {
        let x = vec![0f32; 32];
        // a shift of one with every lane enabled reads position 16 of a 16-value plane
        let _ = ShiftedPlanes::new(&x, 16, 16, 1, 2, 16, &[1], &[0xffff]);
    }

    #[test]
    #[should_panic(expected = "need 32 values, x holds 31")]
    fn shifted_planes_refuse_a_slice_shorter_than_its_planes() {
        let x = vec![0f32; 31];
        let _ = ShiftedPlanes::new(&x, 16, 16, 1, 2, 16, &[0], &[0x00ff]);
    }

    #[test]
    fn non_finite_values_propagate() {
        if skip() {
            return;
        }
        let a = [1.0, f32::NAN, 2.0, 1.0];
        let b = [1.0, 1.0, 1.0, f32::INFINITY];
        let mut c = [0f32; 4];
        let (pa, pb) = (a.as_ptr(), b.as_ptr());
        // SAFETY: [2, 2] matrices with row stride 2; the CPU has the units.
        unsafe {
            gemm(
                2,
                2,
                2,
                pa,
                [2, 1],
                pb,
                [2, 1],
                c.as_mut_ptr(),
                2,
                false,
                false,
            )
        };
        assert!(c[0].is_nan() && c[1].is_nan(), "{c:?}");
        assert_eq!(c[2], 3.0);
        assert_eq!(c[3], f32::INFINITY);
    }

    #[test]
    fn rounding_to_bf16_bits_is_to_nearest_even() {
        assert_eq!(to_bf16_bits(1.0 + 1.0 / 256.0), 0x3f80);
        assert_eq!(to_bf16_bits(1.0 + 3.0 / 256.0), 0x3f82);
        assert_eq!(to_bf16_bits(-2.0), 0xc000);
        assert_eq!(to_bf16_bits(f32::INFINITY), 0x7f80);
        assert_eq!(to_bf16_bits(f32::NAN), 0x7fc0);
    }
}
