//! Numerical adversaries for every kind of the crate (every logit-level kind, through
//! `LossConfig`) and both implementations: huge, infinite and NaN logits, one class, very many
//! classes, all rows ignored, an empty batch. Each is an error or a finite value with a finite
//! gradient, never a silent NaN.

use burn::tensor::DType;
use lmsoftmax_loss::{
    CommonOptions, LogitLoss, LossConfig, LossImplementation, LossKind, LossReduction,
};

use super::common::{IMPLEMENTATIONS, Outcome, run_loss};

/// A kind with its defaults, an implementation, an `ignore_index` and a reduction.
#[derive(Clone)]
struct Case {
    kind: LossKind,
    implementation: LossImplementation,
    ignore_index: Option<i64>,
    reduction: LossReduction,
}

impl Case {
    fn with_ignore_index(self, ignore_index: Option<i64>) -> Self {
        Self {
            ignore_index,
            ..self
        }
    }

    fn with_reduction(self, reduction: LossReduction) -> Self {
        Self { reduction, ..self }
    }

    fn loss(&self) -> LogitLoss {
        let common = CommonOptions {
            ignore_index: self.ignore_index,
            implementation: self.implementation,
            ..CommonOptions::default()
        };
        LossConfig::Softmax { common }
            .with_kind(self.kind)
            .init(&super::common::device())
            .unwrap()
            .with_reduction(self.reduction)
    }
}

fn run(
    c: &Case,
    shape: &[usize],
    logits: &[f64],
    targets: &[i64],
    upstream: Option<&[f64]>,
    dtype: DType,
) -> Result<Outcome, lmsoftmax_loss::LossError> {
    run_loss(&c.loss(), shape, logits, targets, upstream, dtype)
}

/// Every kind with its defaults, with each implementation.
fn configs() -> Vec<(String, Case)> {
    let mut out = Vec::new();
    for kind in LossKind::LOGIT {
        for implementation in IMPLEMENTATIONS {
            let c = Case {
                kind,
                implementation,
                ignore_index: None,
                reduction: LossReduction::Mean,
            };
            out.push((format!("{kind} {implementation:?}"), c));
        }
    }
    out
}

/// The outcome is an error, or finite values and gradients.
fn error_or_finite(what: &str, name: &str, r: Result<Outcome, lmsoftmax_loss::LossError>) -> bool {
    match r {
        Err(_) => false,
        Ok(o) => {
            assert!(
                o.loss.iter().all(|v| v.is_finite()) && o.grad.iter().all(|g| g.is_finite()),
                "{name}, {what}: loss {:?} grad has non-finite values",
                o.loss
            );
            true
        }
    }
}

#[test]
fn huge_logits_are_finite_and_non_finite_ones_are_errors() {
    for (name, c) in configs() {
        // +-1e30 in f64 and f32 (1e30 is within f32's range): finite, exact ranks
        for dtype in [DType::F64, DType::F32] {
            let logits = [1e30, -1e30, 0.0, -1e30, 1e30, 1e30];
            let ok = error_or_finite(
                "±1e30",
                &name,
                run(&c, &[2, 3], &logits, &[0, 2], None, dtype),
            );
            assert!(ok, "{name}: ±1e30 must give a value");
        }
        // NaN and +inf have no finite loss: errors naming the row
        for bad in [f64::INFINITY, f64::NAN] {
            let logits = [0.5, bad, -1.0, 2.0, 0.0, 1.0];
            let r = run(&c, &[2, 3], &logits, &[0, 1], None, DType::F32);
            let err = r
                .err()
                .unwrap_or_else(|| panic!("{name}: {bad} logit accepted"));
            assert!(err.to_string().contains("row 0"), "{name}: {err}");
        }
        // -inf on a non-target class has probability 0: an error or a finite value; on the
        // target class the loss is infinite: an error
        let logits = [0.5, f64::NEG_INFINITY, -1.0, 2.0, 0.0, 1.0];
        let r = run(&c, &[2, 3], &logits, &[0, 1], None, DType::F32);
        if let Err(e) = &r {
            assert!(e.to_string().contains("row 0"), "{name}: {e}");
        }
        error_or_finite("-inf non-target", &name, r);
        let logits = [f64::NEG_INFINITY, 0.5, -1.0, 2.0, 0.0, 1.0];
        let r = run(&c, &[2, 3], &logits, &[0, 1], None, DType::F32);
        assert!(r.is_err(), "{name}: -inf target logit accepted");
    }
}

#[test]
fn one_class_is_an_error_and_a_hundred_thousand_classes_are_finite() {
    for (name, c) in configs() {
        let r = run(&c, &[3, 1], &[0.0, 1.0, 2.0], &[0, 0, 0], None, DType::F32);
        assert!(r.is_err(), "{name}: C = 1 accepted");
        let classes = 100_000;
        let logits: Vec<f64> = (0..2 * classes)
            .map(|i| ((i * 7919) % 1000) as f64 / 100.0 - 5.0)
            .collect();
        let ok = error_or_finite(
            "C = 100000",
            &name,
            run(&c, &[2, classes], &logits, &[3, 99_999], None, DType::F32),
        );
        assert!(ok, "{name}: C = 100000 must give a value");
    }
}

#[test]
fn all_ignored_and_empty_batches_give_zero_or_an_error() {
    for (name, c) in configs() {
        let c = c.with_ignore_index(Some(-100));
        for reduction in [LossReduction::Mean, LossReduction::Sum] {
            let c = c.clone().with_reduction(reduction);
            let r = run(
                &c,
                &[2, 3],
                &[1.0, 2.0, 3.0, 0.0, 0.0, 0.0],
                &[-100, -100],
                None,
                DType::F32,
            )
            .unwrap_or_else(|e| panic!("{name} {reduction:?}: all ignored: {e}"));
            assert_eq!(r.loss, vec![0.0], "{name} {reduction:?}");
            assert!(r.grad.iter().all(|g| *g == 0.0), "{name} {reduction:?}");
            // no rows at all
            match run(&c, &[0, 3], &[], &[], None, DType::F32) {
                Err(_) => {}
                Ok(o) => {
                    assert!(
                        o.loss.iter().all(|v| v.is_finite() && *v == 0.0),
                        "{name} {reduction:?}: empty batch gave {:?}",
                        o.loss
                    );
                }
            }
        }
    }
}
