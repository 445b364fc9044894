//! Properties from the maths of SPEC.md §1, checked with proptest on both implementations in
//! f64, and finite-difference gradients with every option switched on.

use burn::tensor::DType;
use lmsoftmax_loss::{LargeMarginInSoftmaxLossConfig, LossImplementation, LossReduction};
use proptest::prelude::*;

use crate::common::{IMPLEMENTATIONS, Outcome, assert_close, pseudo_random, run};

/// A batch: (rows, classes, logits, targets).
fn batch() -> impl Strategy<Value = (usize, usize, Vec<f64>, Vec<i64>)> {
    (1usize..5, 2usize..12).prop_flat_map(|(n, c)| {
        (
            Just(n),
            Just(c),
            prop::collection::vec(-6.0f64..6.0, n * c),
            prop::collection::vec(0..c as i64, n),
        )
    })
}

fn sum_config(lambda: f64, implementation: LossImplementation) -> LargeMarginInSoftmaxLossConfig {
    LargeMarginInSoftmaxLossConfig::new()
        .with_reg_lambda(lambda)
        .with_reduction(LossReduction::Sum)
        .with_implementation(implementation)
}

fn f64_run(
    config: &LargeMarginInSoftmaxLossConfig,
    n: usize,
    c: usize,
    z: &[f64],
    y: &[i64],
) -> Outcome {
    run(config, &[n, c], z, y, None, DType::F64).expect("valid batch")
}

/// Independent float64 softmax cross-entropy, summed over rows.
fn reference_ce(c: usize, z: &[f64], y: &[i64]) -> f64 {
    z.chunks(c)
        .zip(y)
        .map(|(row, &t)| {
            let m = row.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
            m + row.iter().map(|v| (v - m).exp()).sum::<f64>().ln() - row[t as usize]
        })
        .sum()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn regulariser_is_non_negative_and_has_no_target_gradient((n, c, z, y) in batch()) {
        for imp in IMPLEMENTATIONS {
            let with = f64_run(&sum_config(1.0, imp), n, c, &z, &y);
            let without = f64_run(&sum_config(0.0, imp), n, c, &z, &y);
            let reg = with.loss[0] - without.loss[0];
            prop_assert!(reg >= -1e-12, "{imp:?}: reg {reg}");
            for (row, &t) in y.iter().enumerate() {
                let k = row * c + t as usize;
                let d = with.grad[k] - without.grad[k];
                prop_assert!(d.abs() < 1e-12, "{imp:?}: d reg / d z_y = {d}");
            }
        }
    }

    #[test]
    fn regulariser_vanishes_on_equal_nontarget_logits((n, c, z, y) in batch(), level in -5.0f64..5.0) {
        let z: Vec<f64> = z
            .chunks(c)
            .zip(&y)
            .flat_map(|(row, &t)| (0..c).map(move |j| if j == t as usize { row[j] } else { level }))
            .collect();
        for imp in IMPLEMENTATIONS {
            let with = f64_run(&sum_config(1.0, imp), n, c, &z, &y);
            let without = f64_run(&sum_config(0.0, imp), n, c, &z, &y);
            prop_assert!((with.loss[0] - without.loss[0]).abs() < 1e-12);
        }
    }

    #[test]
    fn regulariser_vanishes_for_two_classes(n in 1usize..6, seed in 0u64..1000) {
        let z = pseudo_random(2 * n, seed, 8.0);
        let y: Vec<i64> = (0..n as i64).map(|i| (i + seed as i64) % 2).collect();
        for imp in IMPLEMENTATIONS {
            let with = f64_run(&sum_config(5.0, imp), n, 2, &z, &y);
            let without = f64_run(&sum_config(0.0, imp), n, 2, &z, &y);
            prop_assert!((with.loss[0] - without.loss[0]).abs() < 1e-12);
            assert_close("C=2 grad", &with.grad, &without.grad, 0.0, 1e-12);
        }
    }

    #[test]
    fn invariant_to_a_constant_per_row((n, c, z, y) in batch(), shifts in prop::collection::vec(-50.0f64..50.0, 5)) {
        let shifted: Vec<f64> = z.iter().enumerate().map(|(i, v)| v + shifts[i / c]).collect();
        for imp in IMPLEMENTATIONS {
            let cfg = sum_config(0.3, imp).with_deg_logit(Some(0.7));
            let a = f64_run(&cfg, n, c, &z, &y);
            let b = f64_run(&cfg, n, c, &shifted, &y);
            assert_close("shifted loss", &b.loss, &a.loss, 1e-9, 1e-11);
            assert_close("shifted grad", &b.grad, &a.grad, 1e-7, 1e-11);
        }
    }

    #[test]
    fn equivariant_to_permuting_classes((n, c, z, y) in batch(), seed in 0u64..1000) {
        // A permutation of the classes from the seed: sort indices by pseudo-random keys.
        let keys = pseudo_random(c, seed, 1.0);
        let mut perm: Vec<usize> = (0..c).collect();
        perm.sort_by(|a, b| keys[*a].total_cmp(&keys[*b]));
        // new column j holds old column perm[j]; target t moves to inv[t]
        let mut inv = vec![0; c];
        for (j, &p) in perm.iter().enumerate() { inv[p] = j; }
        let pz: Vec<f64> = z.chunks(c).flat_map(|row| perm.iter().map(move |&p| row[p])).collect();
        let py: Vec<i64> = y.iter().map(|&t| inv[t as usize] as i64).collect();
        let weight: Vec<f64> = (0..c).map(|j| 0.5 + j as f64 / c as f64).collect();
        let pweight: Vec<f64> = perm.iter().map(|&p| weight[p]).collect();
        for imp in IMPLEMENTATIONS {
            let cfg = |w: Vec<f64>| sum_config(0.3, imp).with_weight(Some(w)).with_label_smoothing(0.1);
            let a = f64_run(&cfg(weight.clone()), n, c, &z, &y);
            let b = f64_run(&cfg(pweight.clone()), n, c, &pz, &py);
            assert_close("permuted loss", &b.loss, &a.loss, 1e-10, 1e-12);
            let a_grad_permuted: Vec<f64> =
                a.grad.chunks(c).flat_map(|row| perm.iter().map(move |&p| row[p])).collect();
            assert_close("permuted grad", &b.grad, &a_grad_permuted, 1e-9, 1e-12);
        }
    }

    #[test]
    fn lambda_zero_is_cross_entropy((n, c, z, y) in batch()) {
        let want = reference_ce(c, &z, &y);
        for imp in IMPLEMENTATIONS {
            let got = f64_run(&sum_config(0.0, imp), n, c, &z, &y);
            prop_assert!((got.loss[0] - want).abs() <= 1e-10 * want.abs().max(1.0));
        }
    }
}

/// Central differences of the scalar loss in f64 against the analytic gradient of both
/// implementations, with deg_logit, weights, ignore_index, smoothing and each reduction.
#[test]
fn finite_difference_gradients() {
    let (n, c) = (5, 7);
    let z = pseudo_random(n * c, 42, 3.0);
    let y = vec![0, 6, -100, 3, 3];
    let upstream = [0.3, -1.2, 0.7, 2.0, 0.5];
    let weight: Vec<f64> = (0..c).map(|j| 0.25 + 0.3 * j as f64).collect();
    for reduction in [LossReduction::Mean, LossReduction::Sum, LossReduction::None] {
        for imp in IMPLEMENTATIONS {
            let cfg = LargeMarginInSoftmaxLossConfig::new()
                .with_reg_lambda(0.8)
                .with_deg_logit(Some(0.4))
                .with_weight(Some(weight.clone()))
                .with_ignore_index(Some(-100))
                .with_label_smoothing(0.15)
                .with_reduction(reduction)
                .with_implementation(imp);
            let up = (reduction == LossReduction::None).then_some(&upstream[..]);
            let scalar = |x: &[f64]| -> f64 {
                let o = run(&cfg, &[n, c], x, &y, up, DType::F64).unwrap();
                match up {
                    Some(u) => o.loss.iter().zip(u).map(|(a, b)| a * b).sum(),
                    None => o.loss[0],
                }
            };
            let analytic = run(&cfg, &[n, c], &z, &y, up, DType::F64).unwrap().grad;
            let h = 1e-6;
            let numeric: Vec<f64> = (0..z.len())
                .map(|k| {
                    let mut plus = z.clone();
                    let mut minus = z.clone();
                    plus[k] += h;
                    minus[k] -= h;
                    (scalar(&plus) - scalar(&minus)) / (2.0 * h)
                })
                .collect();
            assert_close(
                &format!("{reduction:?} {imp:?} fd"),
                &analytic,
                &numeric,
                1e-6,
                1e-8,
            );
            // the ignored row has a zero gradient
            assert!(analytic[2 * c..3 * c].iter().all(|g| *g == 0.0));
        }
    }
}
