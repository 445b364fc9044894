//! The fused rows against the formula of [`LossRows`], computed directly in f64.

use burn::tensor::{DType, Device, Tensor, TensorData};

use crate::fused_loss::test_batches::{FAMILY, batch, family_batch, values};
use crate::fused_loss::{LossRows, RowTerm, fused_rows};

/// The loss of one row straight from the formula of [`LossRows`], in f64.
fn reference_row(z: &[f64], y: usize, rows: &LossRows, n: usize) -> f64 {
    let c = z.len();
    if rows.term != RowTerm::CrossEntropy {
        let lse = z.iter().map(|v| v.exp()).sum::<f64>().ln();
        let ce = lse - z[y];
        let p_y = (-ce).exp();
        let entropy: f64 = z.iter().map(|v| -(v - lse).exp() * (v - lse)).sum();
        return rows.hard[n]
            * match rows.term {
                RowTerm::Focal { gamma } => (1.0 - p_y).powf(gamma) * ce,
                RowTerm::Poly { epsilon } => ce + epsilon * (1.0 - p_y),
                RowTerm::ConfidencePenalty { beta } => ce - beta * entropy,
                RowTerm::CrossEntropy => unreachable!(),
            };
    }
    let w = |j: usize| rows.weight.as_ref().map_or(1.0, |w| w[j]);
    let shifted: Vec<f64> = (0..c)
        .map(|j| if j == y { z[j] - rows.delta } else { z[j] })
        .collect();
    let lse = shifted.iter().map(|v| v.exp()).sum::<f64>().ln();
    let smooth: f64 = (0..c).map(|j| w(j) * (lse - shifted[j])).sum();
    let others: f64 = (0..c).filter(|&j| j != y).map(|j| z[j].exp()).sum();
    let u = 1.0 / (c - 1) as f64;
    let reg: f64 = (0..c)
        .filter(|&j| j != y)
        .map(|j| {
            let q = z[j].exp() / others;
            (q - u) * (q.ln() - u.ln())
        })
        .sum::<f64>()
        / 2.0;
    rows.hard[n] * (lse - shifted[y]) + rows.smooth[n] * smooth + rows.reg[n] * reg
}

/// Forward against the formula, and the gradient of `sum_n up_n l_n` through autodiff
/// against central differences of the formula, in f64 and (looser) in f32.
#[test]
fn rows_and_gradient_match_the_formula() {
    let (m, c) = (5, 7);
    check_against_the_formula(batch(m, c), m, c);
    for term in FAMILY {
        check_against_the_formula(family_batch(m, c, term), m, c);
    }
}

fn check_against_the_formula((z, rows): (Vec<f64>, LossRows), m: usize, c: usize) {
    let up: Vec<f64> = (0..m).map(|n| 1.0 + 0.5 * n as f64).collect();
    let loss_of = |z: &[f64]| -> Vec<f64> {
        (0..m)
            .map(|n| reference_row(&z[n * c..(n + 1) * c], rows.targets[n], &rows, n))
            .collect()
    };
    let want = loss_of(&z);
    let h = 1e-6;
    let want_grad: Vec<f64> = (0..m * c)
        .map(|i| {
            let (mut a, mut b) = (z.clone(), z.clone());
            a[i] += h;
            b[i] -= h;
            let n = i / c;
            up[n] * (loss_of(&a)[n] - loss_of(&b)[n]) / (2.0 * h)
        })
        .collect();
    let device = Device::flex().autodiff();
    for (dtype, tol) in [(DType::F64, 1e-7), (DType::F32, 2e-5)] {
        let x = Tensor::<2>::from_data(TensorData::new(z.clone(), [m, c]), (&device, dtype))
            .require_grad();
        let got = fused_rows(x.clone(), rows.clone());
        let upstream = Tensor::<1>::from_data(TensorData::new(up.clone(), [m]), (&device, dtype));
        let grads = (got.clone() * upstream).sum().backward();
        let grad = values(x.grad(&grads).unwrap());
        for (what, got, want) in [("loss", values(got), &want), ("grad", grad, &want_grad)] {
            for (i, (g, w)) in got.iter().zip(want.iter()).enumerate() {
                assert!(
                    (g - w).abs() <= tol * (1.0 + w.abs()),
                    "{:?} {dtype:?} {what}[{i}]: got {g}, want {w}",
                    rows.term
                );
            }
        }
        // the ignored row: no loss, no gradient
        assert!(
            values(x.grad(&grads).unwrap())[c..2 * c]
                .iter()
                .all(|g| *g == 0.0)
        );
    }
}

/// Enough logits for the rows to be split over rayon's threads, and a row with a NaN.
#[test]
fn a_batch_split_over_threads_matches_the_formula_and_a_nan_row_is_nan() {
    let (m, c) = (300, 130);
    let (mut z, rows) = batch(m, c);
    z[7 * c + 3] = f64::NAN;
    let x = Tensor::<2>::from_data(
        TensorData::new(z.clone(), [m, c]),
        (&Device::flex(), DType::F64),
    );
    let got = values(fused_rows(x, rows.clone()));
    for (n, g) in got.iter().enumerate() {
        if n == 7 {
            assert!(g.is_nan(), "row 7 holds a NaN logit: got {g}");
            continue;
        }
        let want = reference_row(&z[n * c..(n + 1) * c], rows.targets[n], &rows, n);
        assert!(
            (g - want).abs() <= 1e-10 * (1.0 + want.abs()),
            "row {n}: {g} vs {want}"
        );
    }
}

/// The family's terms where the target probability is 1 to within rounding, or 0: finite, and
/// the focal loss's `(1 - p_y)^gamma` taken from the other classes' probabilities (not 1 - p_y).
#[test]
fn family_rows_are_finite_at_certain_and_hopeless_rows() {
    let c = 4;
    let z = vec![
        60.0, 0.0, 0.0, 0.0, // p_y = 1 - 3e-26
        -60.0, 0.0, 0.0, 0.0, // p_y = 3e-27
        0.0, 0.0, 0.0, 0.0, // p_y = 1/4
    ];
    for dtype in [DType::F64, DType::F32] {
        for term in FAMILY {
            let (_, mut rows) = family_batch(3, c, term);
            rows.targets = vec![0; 3];
            rows.hard = vec![1.0; 3];
            let device = Device::flex().autodiff();
            let x = Tensor::<2>::from_data(TensorData::new(z.clone(), [3, c]), (&device, dtype))
                .require_grad();
            let got = fused_rows(x.clone(), rows.clone());
            let grads = got.clone().sum().backward();
            let (loss, grad) = (values(got), values(x.grad(&grads).unwrap()));
            assert!(
                loss.iter().chain(&grad).all(|v| v.is_finite()),
                "{term:?} {dtype:?}: {loss:?} {grad:?}"
            );
            if let (RowTerm::Focal { gamma }, DType::F64) = (term, dtype) {
                let rest: f64 = 3.0 * (-60f64).exp() / (1.0 + 3.0 * (-60f64).exp());
                let want = rest.powf(gamma) * (3.0 * (-60f64).exp()).ln_1p();
                assert!(
                    (loss[0] - want).abs() <= 1e-12 * want,
                    "{gamma}: {} vs {want}",
                    loss[0]
                );
            }
        }
    }
}

#[test]
#[should_panic(expected = "target 3 of row 1 is not one of the 3 classes")]
fn a_target_outside_the_classes_is_named() {
    let (_, mut rows) = batch(2, 3);
    rows.targets[1] = 3;
    let _ = fused_rows(Tensor::<2>::zeros([2, 3], &Device::flex()), rows);
}

#[test]
#[should_panic(expected = "logits of shape [2, 4] for a description of 2 rows of 3 classes")]
fn logits_of_another_shape_are_named() {
    let (_, rows) = batch(2, 3);
    let _ = fused_rows(Tensor::<2>::zeros([2, 4], &Device::flex()), rows);
}
