//! The fused row kernel: loss and gradient of one row in three passes over its logits with one
//! `exp` per logit, rows spread over rayon's threads.
//!
//! For a row `z` with target `y`, non-target maximum `m`, `e_j = exp(z_j - m)` (`e_y = 0`) and
//! `S = sum_j e_j`, everything the loss needs shares the `e_j`:
//!
//! ```text
//! q_j   = e_j / S                      log q_j = z_j - m - log S
//! lse   = log(S e^m + e^{z'_y})        p_j = e_j e^{m - lse},  p_y = e^{z'_y - lse}
//! reg   = 1/2 sum_{j != y} (q_j - u)(log q_j + log(C-1))
//!       = 1/2 (sum_j q_j (z_j - m) - mean_{j != y} (z_j - m))     (sum_j q_j = 1, u (C-1) = 1)
//! d l / d z_k = (hard + smooth W) p_k - hard [k=y] - smooth w_k
//!             + reg_coef/2 (q_k (log q_k - sum_j q_j log q_j) + q_k - u)      (k != y)
//! ```

use std::mem::MaybeUninit;

use rayon::prelude::*;

use super::real::{Real, dot, dot_centred, exp_shifted, max};
use crate::fused_loss::{LossRows, RowTerm};

/// What the kernel returns: per-row losses (NaN for a row whose logits are not finite) and the
/// gradient of each row's loss, when asked for.
pub(crate) struct KernelOutput<F> {
    pub rows: Vec<F>,
    pub grad: Option<Vec<F>>,
}

/// Constants shared by every row of a batch.
struct Shared<'a, F> {
    classes: usize,
    delta: F,
    u: F,
    weight: Option<&'a [F]>,
    /// `W = sum_j w_j` (C without weights).
    weight_total: F,
    needs_reg: bool,
    needs_smooth: bool,
    /// The family's term of every row, when it is not the cross-entropy.
    family: Option<Family<F>>,
}

impl<'a, F: Real> Shared<'a, F> {
    /// The plan's class weights in the kernel's float type.
    fn weight_of(plan: &LossRows) -> Option<Vec<F>> {
        plan.weight
            .as_ref()
            .map(|w| w.iter().map(|&x| F::from_f64(x)).collect())
    }

    /// The constants of `plan`, with its weights from [`Shared::weight_of`].
    fn new(plan: &LossRows, weight: Option<&'a [F]>) -> Self {
        let classes = plan.num_classes;
        Shared {
            classes,
            delta: F::from_f64(plan.delta),
            u: F::from_f64(1.0 / (classes - 1) as f64),
            weight,
            weight_total: F::from_f64(
                plan.weight
                    .as_ref()
                    .map_or(classes as f64, |w| w.iter().sum()),
            ),
            needs_reg: plan.needs_reg(),
            needs_smooth: plan.needs_smooth(),
            family: Family::of(plan.term),
        }
    }
}

/// [`RowTerm`] other than the cross-entropy, in the kernel's float type.
#[derive(Clone, Copy)]
enum Family<F> {
    Focal(F),
    Poly(F),
    ConfidencePenalty(F),
}

impl<F: Real> Family<F> {
    fn of(term: RowTerm) -> Option<Self> {
        match term {
            RowTerm::CrossEntropy => None,
            RowTerm::Focal { gamma } => Some(Self::Focal(F::from_f64(gamma))),
            RowTerm::Poly { epsilon } => Some(Self::Poly(F::from_f64(epsilon))),
            RowTerm::ConfidencePenalty { beta } => Some(Self::ConfidencePenalty(F::from_f64(beta))),
        }
    }
}

/// Rows per rayon task: about 16k logits, enough to amortise scheduling.
fn rows_per_task(classes: usize) -> usize {
    (16_384 / classes.max(1)).max(1)
}

/// Runs the kernel over `[M, C]` logits laid out row-major.
pub(crate) fn run<F: Real>(logits: &[F], plan: &LossRows, with_grad: bool) -> KernelOutput<F> {
    let classes = plan.num_classes;
    let rows = plan.rows();
    debug_assert_eq!(logits.len(), rows * classes);
    let weight = Shared::<F>::weight_of(plan);
    let shared = Shared::new(plan, weight.as_deref());
    let mut out = vec![F::ZERO; rows];
    // The gradient buffer is left uninitialised: every row writes all of its entries (pass 2 of
    // `row` runs before anything can return), which saves a zeroing pass over M x C floats.
    let mut grad: Option<Vec<MaybeUninit<F>>> = with_grad.then(|| uninit_vec(rows * classes));
    let step = rows_per_task(classes);

    // Small batches, or a single thread, stay on the calling thread: handing work to rayon's
    // pool and waiting for it costs more than the work.
    if rows * classes < SEQUENTIAL_BELOW || rayon::current_num_threads() == 1 {
        rows_dispatch(logits, plan, 0, &shared, &mut out, grad.as_deref_mut());
        return finish(out, grad);
    }
    match grad.as_mut() {
        Some(grad) => out
            .par_chunks_mut(step)
            .zip(grad.par_chunks_mut(step * classes))
            .enumerate()
            .for_each(|(task, (out, grad))| {
                let first = task * step;
                let z = &logits[first * classes..(first + out.len()) * classes];
                rows_dispatch(z, plan, first, &shared, out, Some(grad));
            }),
        None => out
            .par_chunks_mut(step)
            .enumerate()
            .for_each(|(task, out)| {
                let first = task * step;
                let z = &logits[first * classes..(first + out.len()) * classes];
                rows_dispatch(z, plan, first, &shared, out, None);
            }),
    }
    finish(out, grad)
}

/// Logits below which the kernel runs on the calling thread.
const SEQUENTIAL_BELOW: usize = 32_768;

fn uninit_vec<F>(len: usize) -> Vec<MaybeUninit<F>> {
    let mut v = Vec::with_capacity(len);
    // SAFETY: `MaybeUninit` needs no initialisation; the capacity is `len`.
    unsafe { v.set_len(len) };
    v
}

fn finish<F>(rows: Vec<F>, grad: Option<Vec<MaybeUninit<F>>>) -> KernelOutput<F> {
    let grad = grad.map(|g| {
        let mut g = std::mem::ManuallyDrop::new(g);
        // SAFETY: every row wrote all of its entries (see `run`); `MaybeUninit<F>` has the
        // layout of `F`, and the pointer, length and capacity come from the same vector.
        unsafe { Vec::from_raw_parts(g.as_mut_ptr().cast::<F>(), g.len(), g.capacity()) }
    });
    KernelOutput { rows, grad }
}

/// The instruction sets the row loop is compiled for; the loop's source is the same for each
/// (its sums keep a fixed order), so every one gives the same bits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Isa {
    Portable,
    #[cfg(target_arch = "x86_64")]
    Avx2,
    #[cfg(target_arch = "x86_64")]
    Avx512,
}

impl Isa {
    /// The widest this CPU has.
    fn best() -> Self {
        #[cfg(target_arch = "x86_64")]
        {
            if std::is_x86_feature_detected!("avx512f") {
                return Self::Avx512;
            }
            if std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma") {
                return Self::Avx2;
            }
        }
        Self::Portable
    }

    /// Every one this CPU can run.
    #[cfg(test)]
    fn available() -> Vec<Self> {
        let mut all = vec![Self::Portable];
        #[cfg(target_arch = "x86_64")]
        {
            if std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma") {
                all.push(Self::Avx2);
            }
            if std::is_x86_feature_detected!("avx512f") {
                all.push(Self::Avx512);
            }
        }
        all
    }
}

/// Runs the chunk on the widest instruction set this CPU has.
fn rows_dispatch<F: Real>(
    z: &[F],
    plan: &LossRows,
    first: usize,
    shared: &Shared<F>,
    out: &mut [F],
    grad: Option<&mut [MaybeUninit<F>]>,
) {
    rows_on(Isa::best(), z, plan, first, shared, out, grad)
}

/// Runs the chunk compiled for `isa`, which the CPU must have (see [`Isa::best`]).
fn rows_on<F: Real>(
    isa: Isa,
    z: &[F],
    plan: &LossRows,
    first: usize,
    shared: &Shared<F>,
    out: &mut [F],
    grad: Option<&mut [MaybeUninit<F>]>,
) {
    match isa {
        Isa::Portable => rows_portable(z, plan, first, shared, out, grad),
        // SAFETY: `isa` comes from `Isa::best` or `Isa::available`, which checked the CPU.
        #[cfg(target_arch = "x86_64")]
        Isa::Avx2 => unsafe { rows_avx2(z, plan, first, shared, out, grad) },
        // SAFETY: as above.
        #[cfg(target_arch = "x86_64")]
        Isa::Avx512 => unsafe { rows_avx512(z, plan, first, shared, out, grad) },
    }
}

/// Defines `$name`: [`rows_portable`] compiled with the target features `$features` (so that
/// its inlined loops are vectorised for them); the CPU must have them.
macro_rules! rows_compiled_for {
    ($name:ident, $features:literal) => {
        #[cfg(target_arch = "x86_64")]
        #[target_feature(enable = $features)]
        fn $name<F: Real>(
            z: &[F],
            plan: &LossRows,
            first: usize,
            shared: &Shared<F>,
            out: &mut [F],
            grad: Option<&mut [MaybeUninit<F>]>,
        ) {
            rows_portable(z, plan, first, shared, out, grad)
        }
    };
}

rows_compiled_for!(rows_avx512, "avx512f,avx2,fma");
rows_compiled_for!(rows_avx2, "avx2,fma");

/// Processes a chunk of rows; a row with non-finite logits gets a NaN loss.
#[inline(always)]
fn rows_portable<F: Real>(
    z: &[F],
    plan: &LossRows,
    first: usize,
    shared: &Shared<F>,
    out: &mut [F],
    mut grad: Option<&mut [MaybeUninit<F>]>,
) {
    let c = shared.classes;
    let mut scratch = if grad.is_none() {
        uninit_vec(c)
    } else {
        Vec::new()
    };
    let with_grad = grad.is_some();
    for (i, o) in out.iter_mut().enumerate() {
        let n = first + i;
        let zrow = &z[i * c..(i + 1) * c];
        let buf: &mut [MaybeUninit<F>] = match grad.as_mut() {
            Some(g) => &mut g[i * c..(i + 1) * c],
            None => &mut scratch,
        };
        let coef = Coefficients {
            hard: F::from_f64(plan.hard[n]),
            smooth: F::from_f64(plan.smooth[n]),
            reg: F::from_f64(plan.reg[n]),
        };
        *o = row(zrow, plan.targets[n], coef, shared, buf, with_grad)
            .unwrap_or_else(|| F::from_f64(f64::NAN));
    }
}

#[derive(Clone, Copy)]
struct Coefficients<F> {
    hard: F,
    smooth: F,
    reg: F,
}

/// One row: returns its loss (None if a logit is not finite) and, with `write_grad`, leaves
/// `d loss / d z` in `buf`; otherwise `buf` is scratch. Every entry of `buf` is written before
/// the function can return.
#[inline(always)]
fn row<F: Real>(
    z: &[F],
    y: usize,
    coef: Coefficients<F>,
    s: &Shared<F>,
    buf: &mut [MaybeUninit<F>],
    write_grad: bool,
) -> Option<F> {
    let half = F::from_f64(0.5);
    let (lo, rest) = z.split_at(y);
    let (zy, hi) = (rest[0], &rest[1..]);

    // Pass 1: the non-target maximum.
    let m = max(lo).max(max(hi));
    let zy_shifted = zy - s.delta;

    // Pass 2: e_j = exp(z_j - m) for j != y, e_y = 0: initialises every entry of `buf`; with
    // S = sum_j e_j and sum_{j != y} (z_j - m), whose NaN or inf reveals a non-finite logit (the
    // maximum skips NaN).
    let (buf, total, centred) = {
        let (b_lo, b_rest) = buf.split_at_mut(y);
        let (total_lo, centred_lo) = exp_shifted(lo, m, b_lo);
        b_rest[0].write(F::ZERO);
        let (total_hi, centred_hi) = exp_shifted(hi, m, &mut b_rest[1..]);
        // SAFETY: the three writes above cover the whole slice; `MaybeUninit<F>` has the
        // layout of `F`.
        let buf = unsafe { &mut *(buf as *mut [MaybeUninit<F>] as *mut [F]) };
        (buf, total_lo + total_hi, centred_lo + centred_hi)
    };
    if !(centred + total + zy).is_finite() {
        return None;
    }
    // For the regulariser, sum_j e_j (z_j - m).
    let weighted = if s.needs_reg {
        dot_centred(buf, z, m)
    } else {
        F::ZERO
    };
    // log-sum-exp of z' without overflow whichever of the target and the rest dominates, and
    // from the same exp the two probabilities' scales: `scale = e^{m - lse}` (so that
    // `p_j = e_j scale`) and `p_y = e^{z'_y - lse}`, one exp and one log per row.
    let (lse, scale, p_y) = if zy_shifted > m {
        let r = (m - zy_shifted).exp_precise();
        let inv = F::ONE / (F::ONE + total * r);
        (zy_shifted + (total * r).ln_1p(), r * inv, inv)
    } else {
        let t = (zy_shifted - m).exp_precise();
        let inv = F::ONE / (total + t);
        (m + (total + t).ln(), inv, t * inv)
    };
    if let Some(family) = s.family {
        let sums = RowSums {
            m,
            lse,
            total,
            scale,
            p_y,
        };
        return Some(family_row(family, z, y, sums, coef.hard, buf, write_grad));
    }
    let mut loss = coef.hard * (lse - zy_shifted);

    if s.needs_smooth {
        // sum_j w_j (lse - z'_j), with z'_y = z_y - delta
        let weighted_logits = match s.weight {
            Some(w) => dot(w, z) - w[y] * s.delta,
            None => centred + m * F::from_f64((s.classes - 1) as f64) + zy_shifted,
        };
        loss = loss + coef.smooth * (s.weight_total * lse - weighted_logits);
    }

    let inv_total = F::ONE / total;
    let reg = if s.needs_reg {
        // The closed form needs no pass of its own: the q-weighted and the plain mean of the
        // non-target logits (both relative to m). It is >= 0 in exact arithmetic; clamp the
        // rounding noise of an all-equal row.
        let r = half * (weighted * inv_total - centred * s.u);
        if r > F::ZERO { r } else { F::ZERO }
    } else {
        F::ZERO
    };
    if write_grad {
        let p_scale = (coef.hard + coef.smooth * s.weight_total) * scale;
        if s.needs_reg && coef.reg != F::ZERO {
            let log_total = total.ln();
            let g = RegGrad {
                p_scale,
                inv_total,
                log_shift: m + log_total,
                entropy_term: weighted * inv_total - log_total,
                reg_half: coef.reg * half,
                u: s.u,
            };
            for (&zj, e) in z.iter().zip(buf.iter_mut()) {
                *e = g.grad(zj, *e);
            }
        } else {
            for e in buf.iter_mut() {
                *e = *e * p_scale;
            }
        }
    }
    loss = loss + coef.reg * reg;

    if write_grad {
        if s.needs_smooth {
            match s.weight {
                Some(w) => {
                    for (g, &wk) in buf.iter_mut().zip(w) {
                        *g = *g - coef.smooth * wk;
                    }
                }
                None => {
                    for g in buf.iter_mut() {
                        *g = *g - coef.smooth;
                    }
                }
            }
        }
        let w_y = s.weight.map_or(F::ONE, |w| w[y]);
        buf[y] = (coef.hard + coef.smooth * s.weight_total) * p_y - coef.hard - coef.smooth * w_y;
    }
    Some(loss)
}

/// What [`row`] has computed of a row that the family's terms reuse.
#[derive(Clone, Copy)]
struct RowSums<F> {
    /// The non-target maximum.
    m: F,
    /// `log sum_j e^{z_j}`.
    lse: F,
    /// `S = sum_{j != y} e^{z_j - m}`.
    total: F,
    /// `e^{m - lse}`: `p_j = e_j scale` for `j != y`.
    scale: F,
    /// `p_y = e^{z_y - lse}`.
    p_y: F,
}

/// A row's loss under one of the family's terms (`delta` is 0 for them): its value times
/// `hard` and, with `write_grad`, its gradient in `buf`, which holds `e_j = e^{z_j - m}` for
/// `j != y` and 0 at `y` on entry. With `scale = e^{m - lse}`, `p_j = e_j scale`; `1 - p_y` is the
/// sum of the other classes' probabilities `S scale`, exact however close `p_y` is to 1.
///
/// ```text
/// focal: l = a^g ce,          dl/dz = (a^g + g p_y a^(g-1) ce) (p - onehot_y)     a = 1 - p_y
/// poly:  l = ce + eps a,      dl/dz = (1 + eps p_y) (p - onehot_y)
/// conf.: l = ce - beta H,     dl/dz_k = p_k - [k=y] + beta p_k (log p_k + H)
/// ```
#[inline(always)]
fn family_row<F: Real>(
    family: Family<F>,
    z: &[F],
    y: usize,
    RowSums {
        m,
        lse,
        total,
        scale,
        p_y,
    }: RowSums<F>,
    hard: F,
    buf: &mut [F],
    write_grad: bool,
) -> F {
    let zy = z[y];
    let rest = total * scale;
    // -log p_y = log(1 + a / p_y): accurate where p_y is near 1 and lse - z_y rounds to 0
    let ce = if p_y > F::from_f64(0.5) {
        (rest / p_y).ln_1p()
    } else {
        lse - zy
    };
    let (value, factor) = match family {
        Family::Focal(gamma) => {
            if gamma == F::ZERO {
                (ce, F::ONE)
            } else if rest > F::ZERO {
                let a_g = rest.powf(gamma);
                (a_g * ce, a_g + gamma * p_y * rest.powf(gamma - F::ONE) * ce)
            } else {
                (F::ZERO, F::ZERO)
            }
        }
        Family::Poly(eps) => (ce + eps * rest, F::ONE + eps * p_y),
        Family::ConfidencePenalty(beta) => {
            // H = sum_j p_j (lse - z_j), the non-target part from the e_j and z_j - m
            let spread = dot_centred(buf, z, m);
            let entropy = scale * ((lse - m) * total - spread) + p_y * ce;
            if write_grad {
                for (e, &zk) in buf.iter_mut().zip(z) {
                    let p = *e * scale;
                    *e = hard * p * (F::ONE + beta * (zk - lse + entropy));
                }
                buf[y] = hard * (beta * p_y * (entropy - ce) - rest);
            }
            return hard * (ce - beta * entropy);
        }
    };
    if write_grad {
        let g = hard * factor * scale;
        for e in buf.iter_mut() {
            *e = *e * g;
        }
        buf[y] = -(hard * factor * rest);
    }
    hard * value
}

/// Constants of the gradient pass: `d l / d z_k` from `e_k` and `z_k` for `k != y`.
struct RegGrad<F> {
    p_scale: F,
    inv_total: F,
    /// `m + log S`, so that `log q_k = z_k - log_shift`.
    log_shift: F,
    /// `sum_j q_j log q_j`.
    entropy_term: F,
    reg_half: F,
    u: F,
}

impl<F: Real> RegGrad<F> {
    #[inline(always)]
    fn grad(&self, zk: F, ek: F) -> F {
        let q = ek * self.inv_total;
        let log_q = zk - self.log_shift;
        self.p_scale * ek + self.reg_half * (q * (log_q - self.entropy_term) + q - self.u)
    }
}

/// Scales each row of `grad` (`[M, C]`) by `upstream[n]` in place, skipping rows scaled by 1.
pub(crate) fn scale_rows<F: Real>(grad: &mut [F], upstream: &[F], classes: usize) {
    // The usual case (a mean or sum whose factor the plan's coefficients already hold): nothing
    // to do, and no work handed to rayon's pool just to find that out.
    if upstream.iter().all(|&a| a == F::ONE) {
        return;
    }
    let step = rows_per_task(classes);
    grad.par_chunks_mut(step * classes)
        .zip(upstream.par_chunks(step))
        .for_each(|(g, up)| {
            for (row, &a) in g.chunks_exact_mut(classes).zip(up) {
                if a != F::ONE {
                    for v in row {
                        *v = *v * a;
                    }
                }
            }
        });
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fused_loss::test_batches::{FAMILY, batch, family_batch};

    /// Losses and gradient bits of every row on `isa`.
    fn on<F: Real>(isa: Isa, z: &[F], plan: &LossRows) -> (Vec<F>, Vec<F>) {
        let weight = Shared::<F>::weight_of(plan);
        let shared = Shared::new(plan, weight.as_deref());
        let mut out = vec![F::ZERO; plan.rows()];
        let mut grad = uninit_vec(z.len());
        rows_on(isa, z, plan, 0, &shared, &mut out, Some(&mut grad));
        (out, finish(Vec::new(), Some(grad)).grad.unwrap())
    }

    /// Each compiled copy of the row loop (portable, AVX2, AVX-512 where the CPU has them) gives
    /// the portable copy's bits, for every term, in f32 and f64, at row lengths with and without
    /// a tail of the 16-lane loops, and a target at either end of its row.
    #[test]
    fn every_instruction_set_gives_the_portable_bits() {
        let isas = Isa::available();
        eprintln!("row loop compiled for {isas:?} on this CPU");
        for c in [2, 10, 16, 33, 100, 1000] {
            let mut cases = vec![batch(9, c)];
            cases.extend(FAMILY.iter().map(|&term| family_batch(9, c, term)));
            for (z, mut plan) in cases {
                plan.targets[0] = 0;
                plan.targets[2] = c - 1;
                let z32: Vec<f32> = z.iter().map(|&v| v as f32).collect();
                let want64 = on(Isa::Portable, &z, &plan);
                let want32 = on(Isa::Portable, &z32, &plan);
                for &isa in &isas[1..] {
                    let (got, want) = (on(isa, &z, &plan), &want64);
                    let bits = |v: &[f64]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
                    assert_eq!(bits(&got.0), bits(&want.0), "{isa:?} f64 losses, C = {c}");
                    assert_eq!(bits(&got.1), bits(&want.1), "{isa:?} f64 grad, C = {c}");
                    let (got, want) = (on(isa, &z32, &plan), &want32);
                    let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
                    assert_eq!(bits(&got.0), bits(&want.0), "{isa:?} f32 losses, C = {c}");
                    assert_eq!(bits(&got.1), bits(&want.1), "{isa:?} f32 grad, C = {c}");
                }
            }
        }
    }
}
