//! The float types the fused kernel computes in, with the slice primitives it is built from.
//! The loops keep several independent accumulators so that the compiler vectorises them.

use std::mem::MaybeUninit;
use std::ops::{Add, Div, Mul, Neg, Sub};

/// Lanes of the partial accumulators (two AVX2 registers of f32).
const LANES: usize = 16;

/// f32 or f64, with an `exp` suited to the kernel.
pub(crate) trait Real:
    Copy
    + Send
    + Sync
    + PartialOrd
    + Add<Output = Self>
    + Sub<Output = Self>
    + Mul<Output = Self>
    + Div<Output = Self>
    + Neg<Output = Self>
    + 'static
{
    const ZERO: Self;
    const ONE: Self;
    const NEG_INFINITY: Self;
    fn from_f64(x: f64) -> Self;
    /// `e^x`, vectorisable; f32 uses a polynomial accurate to about 2 ulp.
    fn exp_fast(self) -> Self;
    fn ln(self) -> Self;
    fn ln_1p(self) -> Self;
    fn exp_precise(self) -> Self;
    fn powf(self, e: Self) -> Self;
    fn is_finite(self) -> bool;
    fn max(self, other: Self) -> Self {
        if other > self { other } else { self }
    }
}

impl Real for f32 {
    const ZERO: Self = 0.0;
    const ONE: Self = 1.0;
    const NEG_INFINITY: Self = f32::NEG_INFINITY;
    #[inline(always)]
    fn from_f64(x: f64) -> Self {
        x as f32
    }
    #[inline(always)]
    fn exp_fast(self) -> Self {
        exp_f32(self)
    }
    #[inline(always)]
    fn ln(self) -> Self {
        f32::ln(self)
    }
    #[inline(always)]
    fn ln_1p(self) -> Self {
        f32::ln_1p(self)
    }
    #[inline(always)]
    fn exp_precise(self) -> Self {
        f32::exp(self)
    }
    #[inline(always)]
    fn powf(self, e: Self) -> Self {
        f32::powf(self, e)
    }
    #[inline(always)]
    fn is_finite(self) -> bool {
        f32::is_finite(self)
    }
}

impl Real for f64 {
    const ZERO: Self = 0.0;
    const ONE: Self = 1.0;
    const NEG_INFINITY: Self = f64::NEG_INFINITY;
    #[inline(always)]
    fn from_f64(x: f64) -> Self {
        x
    }
    #[inline(always)]
    fn exp_fast(self) -> Self {
        f64::exp(self)
    }
    #[inline(always)]
    fn ln(self) -> Self {
        f64::ln(self)
    }
    #[inline(always)]
    fn ln_1p(self) -> Self {
        f64::ln_1p(self)
    }
    #[inline(always)]
    fn exp_precise(self) -> Self {
        f64::exp(self)
    }
    #[inline(always)]
    fn powf(self, e: Self) -> Self {
        f64::powf(self, e)
    }
    #[inline(always)]
    fn is_finite(self) -> bool {
        f64::is_finite(self)
    }
}

/// `e^x` for f32 without a libm call, so that loops over it vectorise: `x = n ln2 + r` with
/// `|r| <= ln2 / 2`, a degree-7 polynomial for `e^r` (the Cephes `expf` coefficients), and
/// `2^n` built in the exponent bits. Inputs below -87.3 give about 1e-38 instead of a subnormal,
/// which no sum in the loss can tell apart from 0.
#[inline(always)]
pub(crate) fn exp_f32(x: f32) -> f32 {
    const LOG2E: f32 = std::f32::consts::LOG2_E;
    const LN2_HI: f32 = 0.693_359_4;
    const LN2_LO: f32 = -2.121_944_4e-4;
    // 1.5 * 2^23: adding it rounds to the nearest integer and leaves that integer in the low
    // mantissa bits.
    const ROUND: f32 = 12_582_912.0;
    let x = x.clamp(-87.3, 88.7);
    let t = x * LOG2E + ROUND;
    let n = t - ROUND;
    let n_bits = t.to_bits().wrapping_sub(ROUND.to_bits()) as i32;
    let r = x - n * LN2_HI - n * LN2_LO;
    let mut p = 1.987_569_1e-4_f32;
    p = p * r + 1.398_199_9e-3;
    p = p * r + 8.333_452e-3;
    p = p * r + 4.166_579_6e-2;
    p = p * r + 1.666_666_5e-1;
    p = p * r + 0.5;
    let er = p * r * r + r + 1.0;
    let scale = f32::from_bits(((n_bits + 127) as u32) << 23);
    er * scale
}

/// Maximum of a slice (-inf for an empty one); NaN is skipped.
#[inline(always)]
pub(crate) fn max<F: Real>(s: &[F]) -> F {
    let mut mx = [F::NEG_INFINITY; LANES];
    let chunks = s.chunks_exact(LANES);
    let rest = chunks.remainder();
    for c in chunks {
        for i in 0..LANES {
            mx[i] = if c[i] > mx[i] { c[i] } else { mx[i] };
        }
    }
    let mut m = F::NEG_INFINITY;
    for v in mx.into_iter().chain(rest.iter().copied()) {
        m = m.max(v);
    }
    m
}

/// `dst[i] = e^(src[i] - shift)`, initialising `dst` (of the same length as `src`), in the same
/// pass as the two sums the kernel needs next: `(sum dst[i], sum (src[i] - shift))`.
#[inline(always)]
pub(crate) fn exp_shifted<F: Real>(src: &[F], shift: F, dst: &mut [MaybeUninit<F>]) -> (F, F) {
    debug_assert_eq!(src.len(), dst.len());
    let mut exps = [F::ZERO; LANES];
    let mut centred = [F::ZERO; LANES];
    let sc = src.chunks_exact(LANES);
    let rest = sc.remainder();
    let mut dc = dst.chunks_exact_mut(LANES);
    for (s, d) in sc.zip(&mut dc) {
        for i in 0..LANES {
            let x = s[i] - shift;
            let e = x.exp_fast();
            d[i].write(e);
            exps[i] = exps[i] + e;
            centred[i] = centred[i] + x;
        }
    }
    let (mut total, mut spread) = (F::ZERO, F::ZERO);
    for i in 0..LANES {
        total = total + exps[i];
        spread = spread + centred[i];
    }
    for (d, &v) in dc.into_remainder().iter_mut().zip(rest) {
        let x = v - shift;
        let e = x.exp_fast();
        d.write(e);
        total = total + e;
        spread = spread + x;
    }
    (total, spread)
}

/// `sum e_i (z_i - shift)`.
#[inline(always)]
pub(crate) fn dot_centred<F: Real>(e: &[F], z: &[F], shift: F) -> F {
    let mut acc = [F::ZERO; LANES];
    let ec = e.chunks_exact(LANES);
    let zc = z.chunks_exact(LANES);
    let (er, zr) = (ec.remainder(), zc.remainder());
    for (a, b) in ec.zip(zc) {
        for i in 0..LANES {
            acc[i] = acc[i] + a[i] * (b[i] - shift);
        }
    }
    let mut t = F::ZERO;
    for v in acc {
        t = t + v;
    }
    for (&a, &b) in er.iter().zip(zr) {
        t = t + a * (b - shift);
    }
    t
}

/// `sum a_i b_i`.
#[inline(always)]
pub(crate) fn dot<F: Real>(a: &[F], b: &[F]) -> F {
    let mut acc = [F::ZERO; LANES];
    let ac = a.chunks_exact(LANES);
    let bc = b.chunks_exact(LANES);
    let (ar, br) = (ac.remainder(), bc.remainder());
    for (x, y) in ac.zip(bc) {
        for i in 0..LANES {
            acc[i] = acc[i] + x[i] * y[i];
        }
    }
    let mut t = F::ZERO;
    for v in acc {
        t = t + v;
    }
    for (&x, &y) in ar.iter().zip(br) {
        t = t + x * y;
    }
    t
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exp_f32_is_within_a_few_ulp_of_libm() {
        let mut worst = 0.0f64;
        let mut x = -87.0f32;
        while x < 88.0 {
            let want = (x as f64).exp();
            let got = exp_f32(x) as f64;
            worst = worst.max(((got - want) / want).abs());
            x += 0.001_3;
        }
        assert!(
            worst < 4.0 * f32::EPSILON as f64,
            "worst relative error {worst}"
        );
        assert_eq!(exp_f32(0.0), 1.0);
        assert!(exp_f32(-1000.0) < 1e-37);
        assert!(exp_f32(-1000.0) >= 0.0);
    }

    #[test]
    fn reductions_match_the_naive_loops() {
        let v: Vec<f64> = (0..37).map(|i| ((i * 7919) % 23) as f64 - 11.0).collect();
        let w: Vec<f64> = (0..37).map(|i| i as f64 * 0.5).collect();
        assert_eq!(max(&v), 11.0);
        assert_eq!(max::<f32>(&[]), f32::NEG_INFINITY);
        assert_eq!(max(&[1.0, f64::NAN, 3.0]), 3.0);
        assert_eq!(
            dot(&v, &w),
            v.iter().zip(&w).map(|(a, b)| a * b).sum::<f64>()
        );
        let want: f64 = w.iter().zip(&v).map(|(e, z)| e * (z - 2.0)).sum();
        assert!((dot_centred(&w, &v, 2.0) - want).abs() < 1e-9);
        let mut e = vec![MaybeUninit::uninit(); v.len()];
        let (total, spread) = exp_shifted(&v, 2.0, &mut e);
        let e: Vec<f64> = e.into_iter().map(|x| unsafe { x.assume_init() }).collect();
        for (got, &z) in e.iter().zip(&v) {
            assert_eq!(*got, (z - 2.0).exp());
        }
        assert!((total - e.iter().sum::<f64>()).abs() < 1e-9);
        let want: f64 = v.iter().map(|z| z - 2.0).sum();
        assert!((spread - want).abs() < 1e-9);
    }
}
