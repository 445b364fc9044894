//! Options that must reduce to something else: lambda = 0 equals Burn's `CrossEntropyLoss`,
//! unit weights equal no weights, an ignore_index no row uses changes nothing, and the two
//! implementations agree with each other on random spatial input.

use burn::nn::loss::CrossEntropyLossConfig;
use burn::tensor::{DType, Int, Tensor, TensorData};
use lmsoftmax_loss::{
    LargeMarginInSoftmaxLossConfig, LossImplementation, LossReduction,
    SoftmaxCrossEntropyLossConfig,
};

use crate::common::{IMPLEMENTATIONS, assert_close, device, pseudo_random, run, to_f64};

/// The same f64 batch through the composed and the fused implementation.
fn composed_and_fused(
    cfg: &LargeMarginInSoftmaxLossConfig,
    shape: &[usize],
    z: &[f64],
    y: &[i64],
    upstream: Option<&[f64]>,
) -> (crate::common::Outcome, crate::common::Outcome) {
    let with = |imp| cfg.clone().with_implementation(imp);
    (
        run(
            &with(LossImplementation::Composed),
            shape,
            z,
            y,
            upstream,
            DType::F64,
        )
        .unwrap(),
        run(
            &with(LossImplementation::Fused),
            shape,
            z,
            y,
            upstream,
            DType::F64,
        )
        .unwrap(),
    )
}

fn burn_ce(
    z: &[f64],
    y: &[i64],
    n: usize,
    c: usize,
    weights: Option<Vec<f32>>,
    smoothing: Option<f32>,
) -> (f64, Vec<f64>) {
    let device = device();
    let x = Tensor::<2>::from_data(TensorData::new(z.to_vec(), [n, c]), (&device, DType::F32))
        .require_grad();
    let t = Tensor::<1, Int>::from_data(TensorData::new(y.to_vec(), [n]), &device);
    let loss = CrossEntropyLossConfig::new()
        .with_weights(weights)
        .with_smoothing(smoothing)
        .init(&device)
        .forward(x.clone(), t);
    let grads = loss.backward();
    (to_f64(loss)[0], to_f64(x.grad(&grads).unwrap()))
}

#[test]
fn lambda_zero_equals_burn_cross_entropy() {
    let (n, c) = (9, 13);
    let z = pseudo_random(n * c, 3, 4.0);
    let y: Vec<i64> = (0..n as i64).map(|i| (i * 5) % c as i64).collect();
    let weights: Vec<f32> = (0..c).map(|j| 0.5 + (j % 4) as f32).collect();
    for (w, s) in [
        (None, None),
        (Some(weights.clone()), None),
        (None, Some(0.1)),
        (Some(weights), Some(0.2)),
    ] {
        let (want_loss, want_grad) = burn_ce(&z, &y, n, c, w.clone(), s);
        for imp in IMPLEMENTATIONS {
            let cfg = SoftmaxCrossEntropyLossConfig::new()
                .with_weight(w.as_ref().map(|w| w.iter().map(|&x| x as f64).collect()))
                .with_label_smoothing(s.unwrap_or(0.0) as f64)
                .with_implementation(imp)
                .to_large_margin();
            let got = run(&cfg, &[n, c], &z, &y, None, DType::F32).unwrap();
            let what = format!("weights {} smoothing {s:?} {imp:?}", w.is_some());
            assert_close(&format!("{what} loss"), &got.loss, &[want_loss], 1e-5, 1e-6);
            assert_close(&format!("{what} grad"), &got.grad, &want_grad, 1e-4, 1e-6);
        }
    }
}

#[test]
fn options_that_must_not_matter() {
    let (n, c) = (6, 5);
    let z = pseudo_random(n * c, 9, 3.0);
    let y = vec![0, 1, 2, 3, 4, 0];
    for imp in IMPLEMENTATIONS {
        let base = LargeMarginInSoftmaxLossConfig::new().with_implementation(imp);
        let plain = run(&base, &[n, c], &z, &y, None, DType::F64).unwrap();
        for cfg in [
            base.clone().with_weight(Some(vec![1.0; c])),
            base.clone().with_ignore_index(Some(-100)),
            base.clone().with_deg_logit(Some(0.0)),
        ] {
            let got = run(&cfg, &[n, c], &z, &y, None, DType::F64).unwrap();
            assert_close("loss", &got.loss, &plain.loss, 1e-12, 1e-14);
            assert_close("grad", &got.grad, &plain.grad, 1e-12, 1e-14);
        }
    }
}

#[test]
fn implementations_agree_on_spatial_input_with_every_option() {
    let shape = [3, 6, 4, 5];
    let total: usize = shape.iter().product();
    let z = pseudo_random(total, 77, 5.0);
    let rows = 3 * 4 * 5;
    let y: Vec<i64> = (0..rows as i64)
        .map(|i| if i % 7 == 3 { -1 } else { (i * 11) % 6 })
        .collect();
    let up = pseudo_random(rows, 5, 1.0);
    for reduction in [LossReduction::Mean, LossReduction::Sum, LossReduction::None] {
        let cfg = LargeMarginInSoftmaxLossConfig::new()
            .with_reg_lambda(0.5)
            .with_deg_logit(Some(1.5))
            .with_weight(Some(vec![1.0, 0.5, 2.0, 1.5, 0.0, 3.0]))
            .with_ignore_index(Some(-1))
            .with_label_smoothing(0.05)
            .with_reduction(reduction);
        let u = (reduction == LossReduction::None).then_some(&up[..]);
        let (a, b) = composed_and_fused(&cfg, &shape, &z, &y, u);
        assert_close("loss", &b.loss, &a.loss, 1e-12, 1e-14);
        assert_close("grad", &b.grad, &a.grad, 1e-10, 1e-14);
    }
}

#[test]
fn all_ignored_batch_gives_zero_and_zero_gradient() {
    for reduction in [LossReduction::Mean, LossReduction::Sum, LossReduction::None] {
        for imp in IMPLEMENTATIONS {
            let cfg = LargeMarginInSoftmaxLossConfig::new()
                .with_ignore_index(Some(-100))
                .with_reduction(reduction)
                .with_implementation(imp);
            let got = run(
                &cfg,
                &[3, 4],
                &pseudo_random(12, 1, 2.0),
                &[-100; 3],
                None,
                DType::F32,
            )
            .unwrap();
            assert!(
                got.loss.iter().all(|v| *v == 0.0),
                "{reduction:?} {imp:?}: {:?}",
                got.loss
            );
            assert!(
                got.grad.iter().all(|v| *v == 0.0),
                "{reduction:?} {imp:?}: {:?}",
                got.grad
            );
        }
    }
}

#[test]
fn auto_uses_the_fused_kernel_on_flex_only_and_matches_composed() {
    let device = device();
    let loss = LargeMarginInSoftmaxLossConfig::new().init(&device).unwrap();
    assert!(loss.uses_fused(&device));
    assert!(loss.uses_fused(&burn::tensor::Device::flex()));
    let z = pseudo_random(40, 2, 3.0);
    let y = vec![1, 2, 3, 0];
    let auto = run(loss.config(), &[4, 10], &z, &y, None, DType::F32).unwrap();
    let composed = run(
        &loss
            .config()
            .clone()
            .with_implementation(LossImplementation::Composed),
        &[4, 10],
        &z,
        &y,
        None,
        DType::F32,
    )
    .unwrap();
    assert_close("auto vs composed", &auto.grad, &composed.grad, 1e-5, 1e-7);
}

#[test]
fn forward_without_autodiff_gives_the_same_value() {
    let plain = burn::tensor::Device::flex();
    let z = pseudo_random(30, 4, 2.0);
    let y = [2i64, 0, 1];
    for imp in IMPLEMENTATIONS {
        let cfg = LargeMarginInSoftmaxLossConfig::new().with_implementation(imp);
        let x = Tensor::<2>::from_data(TensorData::new(z.clone(), [3, 10]), (&plain, DType::F64));
        let t = Tensor::<1, Int>::from_data(TensorData::new(y.to_vec(), [3]), &plain);
        let value = to_f64(cfg.init(&plain).unwrap().forward(x, t));
        let with_grad = run(&cfg, &[3, 10], &z, &y, None, DType::F64).unwrap();
        assert_close("no-autodiff value", &value, &with_grad.loss, 1e-14, 0.0);
    }
}

/// A batch large enough for the fused kernel to split rows over rayon's threads (the small
/// batches above run on the calling thread).
#[test]
fn implementations_agree_on_a_batch_split_over_threads() {
    let (n, c) = (300, 250);
    let z = pseudo_random(n * c, 123, 6.0);
    let y: Vec<i64> = (0..n as i64)
        .map(|i| {
            if i % 13 == 0 {
                -100
            } else {
                (i * 37) % c as i64
            }
        })
        .collect();
    let up = pseudo_random(n, 8, 1.0);
    for reduction in [LossReduction::Mean, LossReduction::None] {
        let cfg = LargeMarginInSoftmaxLossConfig::new()
            .with_ignore_index(Some(-100))
            .with_label_smoothing(0.1)
            .with_deg_logit(Some(0.5))
            .with_reduction(reduction);
        let u = (reduction == LossReduction::None).then_some(&up[..]);
        let (a, b) = composed_and_fused(&cfg, &[n, c], &z, &y, u);
        assert_close("loss", &b.loss, &a.loss, 1e-11, 1e-14);
        assert_close("grad", &b.grad, &a.grad, 1e-9, 1e-14);
    }
    // a bad logit deep in the batch is reported with its row
    let mut bad = z.clone();
    bad[217 * c + 5] = f64::NAN;
    let err = run(
        &LargeMarginInSoftmaxLossConfig::new(),
        &[n, c],
        &bad,
        &vec![1; n],
        None,
        DType::F32,
    )
    .err()
    .expect("NaN logit is an error");
    match err {
        lmsoftmax_loss::LossError::NonFiniteLogits { row, value } => {
            assert_eq!(row, 217);
            assert!(value.is_nan());
        }
        other => panic!("{other}"),
    }
}
