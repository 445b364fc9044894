//! Properties of the logit-level family: each kind at its neutral parameter is the
//! cross-entropy, the focal loss weighs confident rows down, and the two implementations agree
//! on spatial input and under every reduction.

use burn::tensor::DType;
use lmsoftmax_loss::{
    CommonOptions, LogitLoss, LossConfig, LossImplementation, LossKind, LossReduction,
};

use crate::common::{IMPLEMENTATIONS, assert_close, pseudo_random, run_loss};

fn loss(
    kind: LossKind,
    param: Option<f64>,
    implementation: LossImplementation,
    reduction: LossReduction,
    weight: Option<Vec<f64>>,
) -> LogitLoss {
    let common = CommonOptions {
        weight,
        ignore_index: Some(-100),
        implementation,
        ..CommonOptions::default()
    };
    let mut config = LossConfig::Softmax { common }.with_kind(kind);
    if let (Some(value), Some(&(name, _))) = (param, kind.parameters().first()) {
        config = config.with_parameter(name, value).unwrap();
    }
    config
        .init(&crate::common::device())
        .unwrap()
        .with_reduction(reduction)
}

#[test]
fn every_kind_at_its_neutral_parameter_is_the_cross_entropy() {
    let (n, c) = (9, 7);
    let logits = pseudo_random(n * c, 11, 4.0);
    let targets: Vec<i64> = (0..n as i64)
        .map(|i| if i == 4 { -100 } else { i % 7 })
        .collect();
    let weight = Some(
        pseudo_random(c, 5, 1.0)
            .iter()
            .map(|w| 1.0 + w.abs())
            .collect(),
    );
    for implementation in IMPLEMENTATIONS {
        for reduction in [LossReduction::Mean, LossReduction::Sum, LossReduction::None] {
            let ce = loss(
                LossKind::Softmax,
                None,
                implementation,
                reduction,
                weight.clone(),
            );
            let want = run_loss(&ce, &[n, c], &logits, &targets, None, DType::F64).unwrap();
            for kind in [
                LossKind::LargeMargin,
                LossKind::Focal,
                LossKind::Poly,
                LossKind::ConfidencePenalty,
            ] {
                let l = loss(kind, Some(0.0), implementation, reduction, weight.clone());
                let got = run_loss(&l, &[n, c], &logits, &targets, None, DType::F64).unwrap();
                let what = format!("{kind} 0 {implementation:?} {reduction:?}");
                assert_close(&format!("{what} loss"), &got.loss, &want.loss, 1e-12, 1e-14);
                assert_close(&format!("{what} grad"), &got.grad, &want.grad, 1e-12, 1e-14);
            }
            // label smoothing has no class weights in FAMILY.md: compare unweighted
            let ce = loss(LossKind::Softmax, None, implementation, reduction, None);
            let want = run_loss(&ce, &[n, c], &logits, &targets, None, DType::F64).unwrap();
            let l = loss(
                LossKind::LabelSmoothing,
                Some(0.0),
                implementation,
                reduction,
                None,
            );
            let got = run_loss(&l, &[n, c], &logits, &targets, None, DType::F64).unwrap();
            assert_close("label-smoothing 0", &got.loss, &want.loss, 1e-12, 1e-14);
            assert_close(
                "label-smoothing 0 grad",
                &got.grad,
                &want.grad,
                1e-12,
                1e-14,
            );
        }
    }
}

#[test]
fn the_focal_loss_weighs_confident_rows_down_and_falls_with_gamma() {
    let (n, c) = (16, 5);
    let logits = pseudo_random(n * c, 3, 6.0);
    let targets: Vec<i64> = (0..n as i64).map(|i| i % 5).collect();
    let rows = |kind, gamma| {
        let l = loss(
            kind,
            gamma,
            LossImplementation::Fused,
            LossReduction::None,
            None,
        );
        run_loss(&l, &[n, c], &logits, &targets, None, DType::F64)
            .unwrap()
            .loss
    };
    let ce = rows(LossKind::Softmax, None);
    let mut previous = ce.clone();
    for gamma in [0.5, 1.0, 2.0, 5.0] {
        let focal = rows(LossKind::Focal, Some(gamma));
        for (i, ((f, p), ce)) in focal.iter().zip(&previous).zip(&ce).enumerate() {
            assert!(
                *f <= *p + 1e-15 && *f >= 0.0,
                "gamma {gamma} row {i}: {f} after {p}"
            );
            // exactly (1 - p_t)^gamma ce, with p_t = exp(-ce)
            let want = (1.0 - (-ce).exp()).powf(gamma) * ce;
            assert!(
                (f - want).abs() <= 1e-12 * (1.0 + want),
                "row {i}: {f} vs {want}"
            );
        }
        previous = focal;
    }
}

#[test]
fn both_implementations_agree_on_spatial_input_and_half_precision() {
    let shape = [2, 6, 3, 2]; // [N, C, H, W]: 12 rows of 6 classes
    let logits = pseudo_random(shape.iter().product(), 17, 3.0);
    let targets: Vec<i64> = (0..12).map(|i| if i == 5 { -100 } else { i % 6 }).collect();
    for kind in LossKind::LOGIT {
        for reduction in [LossReduction::Mean, LossReduction::None] {
            for (dtype, tol) in [(DType::F64, 1e-12), (DType::F32, 2e-5), (DType::BF16, 2e-2)] {
                let run = |imp| {
                    let l = loss(kind, None, imp, reduction, None);
                    run_loss(&l, &shape, &logits, &targets, None, dtype).unwrap()
                };
                let (fused, composed) = (
                    run(LossImplementation::Fused),
                    run(LossImplementation::Composed),
                );
                let what = format!("{kind} {reduction:?} {dtype:?}");
                assert_close(
                    &format!("{what} loss"),
                    &fused.loss,
                    &composed.loss,
                    tol,
                    tol,
                );
                assert_close(
                    &format!("{what} grad"),
                    &fused.grad,
                    &composed.grad,
                    tol,
                    tol,
                );
            }
        }
    }
}
