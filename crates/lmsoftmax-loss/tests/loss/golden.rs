//! Every golden vector of the official PyTorch code (float64), for both implementations, in f64,
//! f32, and f16/bf16 input.
//!
//! The folder is `$LM_GOLDEN_DIR`, by default the copy of `shared/golden` in `tests/data/golden`
//! (written by `shared/bench/golden.py`; `tests/data/make_golden.py --check` recomputes them
//! independently). An empty or missing folder fails the test, and so does a file with a field
//! this test does not know.

use std::path::PathBuf;

use burn::tensor::{DType, Device};
use lmsoftmax_loss::{LargeMarginInSoftmaxLossConfig, LossReduction};
use serde::Deserialize;

use crate::common::{IMPLEMENTATIONS, assert_close, read_golden, run, run_on};

/// One golden file; a field not listed here is an error, not silently skipped.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Case {
    name: String,
    shape: Vec<usize>,
    logits: Vec<f64>,
    target: Vec<i64>,
    reg_lambda: f64,
    deg_logit: Option<f64>,
    weight: Option<Vec<f64>>,
    reduction: String,
    ignore_index: Option<i64>,
    upstream: Option<Vec<f64>>,
    loss: Vec<f64>,
    grad: Vec<f64>,
}

impl Case {
    fn config(&self) -> LargeMarginInSoftmaxLossConfig {
        LargeMarginInSoftmaxLossConfig::new()
            .with_reg_lambda(self.reg_lambda)
            .with_deg_logit(self.deg_logit)
            .with_weight(self.weight.clone())
            .with_ignore_index(self.ignore_index)
            .with_reduction(match self.reduction.as_str() {
                "mean" => LossReduction::Mean,
                "sum" => LossReduction::Sum,
                "none" => LossReduction::None,
                other => panic!("{}: unknown reduction {other}", self.name),
            })
    }
}

fn golden_dir() -> PathBuf {
    std::env::var_os("LM_GOLDEN_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/data/golden"))
}

/// Every case with the file it came from, sorted by path.
fn case_files() -> Vec<(PathBuf, Case)> {
    read_golden(&golden_dir(), "LM_GOLDEN_DIR")
}

fn cases() -> Vec<Case> {
    case_files().into_iter().map(|(_, case)| case).collect()
}

/// Each file is named after its case and its arrays have the lengths its shape implies.
#[test]
fn golden_files_are_consistent() {
    for (path, case) in case_files() {
        let stem = path
            .file_stem()
            .and_then(|s| s.to_str())
            .unwrap_or_default();
        assert_eq!(
            case.name,
            stem,
            "{}: name is not the file stem",
            path.display()
        );
        assert!(
            case.shape.len() >= 2 && case.shape[1] >= 2,
            "{}: shape {:?}",
            case.name,
            case.shape
        );
        let size: usize = case.shape.iter().product();
        let rows = size / case.shape[1];
        let loss_len = if case.reduction == "none" { rows } else { 1 };
        let mut lengths = vec![
            ("logits", case.logits.len(), size),
            ("target", case.target.len(), rows),
            ("grad", case.grad.len(), size),
            ("loss", case.loss.len(), loss_len),
        ];
        if let Some(weight) = &case.weight {
            lengths.push(("weight", weight.len(), case.shape[1]));
        }
        if let Some(upstream) = &case.upstream {
            lengths.push(("upstream", upstream.len(), rows));
        }
        for (field, got, want) in lengths {
            assert_eq!(
                got, want,
                "{}: {field} has {got} values, want {want}",
                case.name
            );
        }
    }
}

/// A field the test would not read (e.g. a future `label_smoothing`) fails the parse.
#[test]
fn golden_layout_rejects_unknown_fields() {
    let known = r#"{"name": "t", "shape": [1, 2], "logits": [0.0, 1.0], "target": [0],
        "reg_lambda": 0.3, "deg_logit": null, "weight": null, "reduction": "mean",
        "ignore_index": null, "upstream": null, "loss": [1.0], "grad": [0.0, 0.0]"#;
    assert!(serde_json::from_str::<Case>(&format!("{known}}}")).is_ok());
    let err = serde_json::from_str::<Case>(&format!("{known}, \"label_smoothing\": 0.1}}"))
        .expect_err("an unknown field must not parse");
    assert!(err.to_string().contains("label_smoothing"), "{err}");
}

/// Runs every case in `dtype` and compares with the golden values.
fn check_all(dtype: DType, rel: f64, abs: f64) {
    check_all_on(&crate::common::device(), dtype, rel, abs);
}

/// [`check_all`] on `device`.
fn check_all_on(device: &Device, dtype: DType, rel: f64, abs: f64) {
    let cases = cases();
    for case in &cases {
        for implementation in IMPLEMENTATIONS {
            let config = case.config().with_implementation(implementation);
            let got = run_on(
                device,
                &config,
                &case.shape,
                &case.logits,
                &case.target,
                case.upstream.as_deref(),
                dtype,
            )
            .unwrap_or_else(|e| panic!("{} ({implementation:?}, {dtype:?}): {e}", case.name));
            let what = format!("{} {implementation:?} {dtype:?}", case.name);
            assert_close(&format!("{what} loss"), &got.loss, &case.loss, rel, abs);
            assert_close(&format!("{what} grad"), &got.grad, &case.grad, rel, abs);
        }
    }
    eprintln!(
        "checked {} golden cases in {dtype:?} on {device:?}",
        cases.len()
    );
}

#[test]
fn golden_f64() {
    check_all(DType::F64, 1e-9, 1e-12);
}

#[test]
fn golden_f32() {
    check_all(DType::F32, 1e-4, 1e-6);
}

/// Every case in f32 on the wgpu device, with the tolerances of the flex f32 test: the composed
/// path runs Burn's own GPU kernels, the fused one the CubeCL kernel of `lmsoftmax-kernels`.
#[cfg(feature = "wgpu")]
#[test]
fn golden_f32_wgpu() {
    let Some(device) = crate::common::wgpu_device() else {
        return;
    };
    let fused = LargeMarginInSoftmaxLossConfig::new()
        .with_implementation(lmsoftmax_loss::LossImplementation::Auto)
        .init(&device)
        .unwrap();
    assert!(
        fused.uses_fused(&device),
        "Auto picks the CubeCL kernel on {device:?}"
    );
    check_all_on(&device, DType::F32, 1e-4, 1e-6);
}

/// f64 logits on wgpu: no fused kernel there (WGSL has no f64), so `Auto` must not pick it and
/// `Fused` must say so.
#[cfg(feature = "wgpu")]
#[test]
fn fused_refuses_f64_on_wgpu() {
    use burn::tensor::{Int, Tensor, TensorData};
    use lmsoftmax_loss::{ConfigError, LossError, LossImplementation};
    let Some(device) = crate::common::wgpu_device() else {
        return;
    };
    let forced = LargeMarginInSoftmaxLossConfig::new()
        .with_implementation(LossImplementation::Fused)
        .init(&device)
        .unwrap();
    let logits = Tensor::<2>::from_data(
        TensorData::new(vec![0.5f32, -1.0, 2.0, 0.0], [2, 2]),
        &device,
    );
    let targets = Tensor::<1, Int>::from_ints([0, 1], &device);
    // f32 runs
    let loss: f32 = forced
        .try_forward(logits.clone(), targets.clone())
        .unwrap()
        .into_scalar();
    assert!(loss.is_finite());
    match forced.try_forward(logits.cast(DType::F64), targets) {
        Err(LossError::Config(ConfigError::FusedUnavailable { device: what })) => {
            assert!(what.contains("F64"), "{what}")
        }
        other => panic!("f64 logits on wgpu with Fused: {other:?}"),
    }
}

/// Half-precision input: the logits are rounded to f16/bf16, so the reference is the f64 loss of
/// the rounded logits (which `golden_f64` ties to the official code); the loss is computed in
/// f32 and the gradient rounded back to the input type.
fn check_half(dtype: DType, rel: f64, abs: f64) {
    for case in cases() {
        let rounded = crate::common::to_f64(burn::tensor::Tensor::<1>::from_data(
            burn::tensor::TensorData::new(case.logits.clone(), [case.logits.len()]),
            (&crate::common::device(), dtype),
        ));
        let config = case.config();
        let reference = run(
            &config,
            &case.shape,
            &rounded,
            &case.target,
            case.upstream.as_deref(),
            DType::F64,
        )
        .expect("f64 reference");
        for implementation in IMPLEMENTATIONS {
            let config = config.clone().with_implementation(implementation);
            let got = run(
                &config,
                &case.shape,
                &rounded,
                &case.target,
                case.upstream.as_deref(),
                dtype,
            )
            .unwrap_or_else(|e| panic!("{}: {e}", case.name));
            let what = format!("{} {implementation:?} {dtype:?}", case.name);
            assert!(
                got.loss.iter().all(|v| v.is_finite()),
                "{what}: non-finite loss"
            );
            // The loss itself is f32: as tight as the f32 goldens.
            assert_close(
                &format!("{what} loss"),
                &got.loss,
                &reference.loss,
                1e-4,
                1e-6,
            );
            assert_close(
                &format!("{what} grad"),
                &got.grad,
                &reference.grad,
                rel,
                abs,
            );
        }
    }
}

#[test]
fn golden_f16_input() {
    check_half(DType::F16, 1e-3, 1e-6);
}

#[test]
fn golden_bf16_input() {
    check_half(DType::BF16, 8e-3, 1e-5);
}
