//! The margin-loss family's float64 golden vectors (FAMILY.md, section 3): every logit-level
//! case, loss and gradient, in f64 and f32 with FAMILY.md's tolerances, for both
//! implementations; and every margin-head case (loss, margin logits, the gradients of the
//! embeddings and of the class weights). The folder is `$LM_FAMILY_GOLDEN_DIR`, by default the
//! copy in `tests/data/golden-family`; an empty folder, a file that does not parse, or a
//! `loss_kind` this test does not know fails it.

use std::path::PathBuf;

use burn::tensor::{DType, Device, Int, Tensor, TensorData};
use lmsoftmax_loss::{
    CommonOptions, HeadKind, LogitLoss, LossConfig, LossImplementation, LossKind, LossReduction,
    MarginHead,
};
use serde::Deserialize;

use crate::common::{IMPLEMENTATIONS, assert_close, read_golden, run_loss_on, to_f64};

/// The heads' kinds.
const HEAD_KINDS: [&str; 6] = [
    "cosface",
    "arcface",
    "combined",
    "subcenter_arcface",
    "sphereface",
    "lsoftmax",
];

/// One golden file; the heads' own fields are read so that a head case parses too.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Case {
    name: String,
    loss_kind: String,
    params: std::collections::BTreeMap<String, f64>,
    input: String,
    shape: Vec<usize>,
    #[serde(default)]
    logits: Vec<f64>,
    target: Vec<i64>,
    weight: Option<Vec<f64>>,
    reduction: String,
    ignore_index: Option<i64>,
    upstream: Option<Vec<f64>>,
    loss: Vec<f64>,
    grad: Vec<f64>,
    #[serde(default)]
    embeddings: Vec<f64>,
    #[serde(default)]
    class_weight_shape: Vec<usize>,
    #[serde(default)]
    class_weight: Vec<f64>,
    #[serde(default)]
    logits_with_margin: Vec<f64>,
    #[serde(default)]
    grad_class_weight: Vec<f64>,
}

impl Case {
    fn param(&self, name: &str) -> f64 {
        *self
            .params
            .get(name)
            .unwrap_or_else(|| panic!("{}: no parameter {name}", self.name))
    }

    fn head_kind(&self) -> HeadKind {
        let p = |n| self.param(n);
        match self.loss_kind.as_str() {
            "cosface" => HeadKind::CosFace {
                scale: p("scale"),
                margin: p("margin"),
            },
            "arcface" => HeadKind::ArcFace {
                scale: p("scale"),
                margin: p("margin"),
            },
            "combined" => HeadKind::Combined {
                scale: p("scale"),
                m1: p("m1"),
                m2: p("m2"),
                m3: p("m3"),
            },
            "subcenter_arcface" => HeadKind::SubcenterArcFace {
                scale: p("scale"),
                margin: p("margin"),
                centers: p("centers") as usize,
            },
            "sphereface" => HeadKind::SphereFace {
                margin: p("margin") as u32,
                lambda: p("lambda"),
            },
            "lsoftmax" => HeadKind::LSoftmax {
                margin: p("margin") as u32,
                lambda: p("lambda"),
            },
            other => panic!("{}: not a head: {other}", self.name),
        }
    }

    fn reduction(&self) -> LossReduction {
        match self.reduction.as_str() {
            "mean" => LossReduction::Mean,
            "sum" => LossReduction::Sum,
            "none" => LossReduction::None,
            other => panic!("{}: unknown reduction {other}", self.name),
        }
    }

    fn kind(&self) -> LossKind {
        self.loss_kind
            .replace('_', "-")
            .parse()
            .unwrap_or_else(|e| panic!("{}: {e}", self.name))
    }

    fn loss(&self, implementation: LossImplementation, device: &Device) -> LogitLoss {
        let common = CommonOptions {
            weight: self.weight.clone(),
            ignore_index: self.ignore_index,
            implementation,
            ..CommonOptions::default()
        };
        let mut config = LossConfig::Softmax { common }.with_kind(self.kind());
        for (name, value) in &self.params {
            config = config
                .with_parameter(name, *value)
                .unwrap_or_else(|e| panic!("{}: {e}", self.name));
        }
        config
            .init(device)
            .unwrap_or_else(|e| panic!("{}: {e}", self.name))
            .with_reduction(self.reduction())
    }
}

fn golden_dir() -> PathBuf {
    std::env::var_os("LM_FAMILY_GOLDEN_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/data/golden-family")
        })
}

/// Every case (sorted by file name); panics on an empty folder or an unknown kind.
fn cases() -> Vec<Case> {
    read_golden::<Case>(&golden_dir(), "LM_FAMILY_GOLDEN_DIR")
        .into_iter()
        .map(|(p, case)| {
            let head = case.input == "embeddings" && HEAD_KINDS.contains(&case.loss_kind.as_str());
            let logit = case.input == "logits"
                && case.loss_kind.replace('_', "-").parse::<LossKind>().is_ok();
            assert!(
                head || logit,
                "{}: loss_kind {:?} with input {:?} is not a kind this test knows",
                p.display(),
                case.loss_kind,
                case.input
            );
            case
        })
        .collect()
}

fn check_all(dtype: DType, rel: f64, abs_of_max: f64) {
    check_all_on(
        &crate::common::device(),
        dtype,
        rel,
        abs_of_max,
        (rel, abs_of_max),
    );
}

/// [`check_all`] on `device`, the margin heads to `head_tolerance` (rel, abs of max).
fn check_all_on(
    device: &Device,
    dtype: DType,
    rel: f64,
    abs_of_max: f64,
    head_tolerance: (f64, f64),
) {
    let all = cases();
    let (logit, heads): (Vec<&Case>, Vec<&Case>) = all.iter().partition(|c| c.input == "logits");
    for case in &logit {
        // FAMILY.md: |a - b| <= rel |b| + abs max|b|, max over the tensor compared
        let max = |v: &[f64]| v.iter().fold(0f64, |m, x| m.max(x.abs()));
        for implementation in IMPLEMENTATIONS {
            let loss = case.loss(implementation, device);
            let got = run_loss_on(
                device,
                &loss,
                &case.shape,
                &case.logits,
                &case.target,
                case.upstream.as_deref(),
                dtype,
            )
            .unwrap_or_else(|e| panic!("{} ({implementation:?}, {dtype:?}): {e}", case.name));
            let what = format!("{} {implementation:?} {dtype:?}", case.name);
            let tol = |v: &[f64]| abs_of_max * max(v);
            assert_close(
                &format!("{what} loss"),
                &got.loss,
                &case.loss,
                rel,
                tol(&case.loss),
            );
            assert_close(
                &format!("{what} grad"),
                &got.grad,
                &case.grad,
                rel,
                tol(&case.grad),
            );
        }
    }
    for case in &heads {
        check_head(device, case, dtype, head_tolerance.0, head_tolerance.1);
    }
    eprintln!(
        "family golden {dtype:?} on {device:?}: {} logit-level cases passed with both implementations ({} \
         checks), {} margin-head cases (loss, margin logits, both gradients)",
        logit.len(),
        logit.len() * IMPLEMENTATIONS.len(),
        heads.len()
    );
    assert!(
        !heads.is_empty(),
        "no margin-head case in {}",
        golden_dir().display()
    );
    assert!(
        !logit.is_empty(),
        "no logit-level case in {}",
        golden_dir().display()
    );
    let kinds: std::collections::BTreeSet<LossKind> = logit.iter().map(|c| c.kind()).collect();
    assert_eq!(
        kinds.len(),
        LossKind::LOGIT.len(),
        "a logit-level kind has no golden case: {kinds:?}"
    );
    let head_kinds: std::collections::BTreeSet<&str> =
        heads.iter().map(|c| c.head_kind().name()).collect();
    assert_eq!(
        head_kinds.len(),
        LossKind::HEADS.len(),
        "a margin head has no golden case: {head_kinds:?}"
    );
}

/// One head case: the loss, the margin logits, `d/dx` and `d/dW` (composed ops, autodiff).
fn check_head(device: &Device, case: &Case, dtype: DType, rel: f64, abs_of_max: f64) {
    let device = device.clone();
    let [n, d] = [case.shape[0], case.shape[1]];
    let tensor = |v: &[f64], shape: [usize; 2]| {
        Tensor::<2>::from_data(TensorData::new(v.to_vec(), shape), (&device, dtype))
    };
    let cw = [case.class_weight_shape[0], case.class_weight_shape[1]];
    let x = tensor(&case.embeddings, [n, d]).require_grad();
    let w = tensor(&case.class_weight, cw).require_grad();
    let head =
        MarginHead::from_weight(case.head_kind(), w.clone()).with_reduction(case.reduction());
    let y = Tensor::<1, Int>::from_data(TensorData::new(case.target.clone(), [n]), &device);
    let f = head.margin_logits(x.clone(), y.clone()).unwrap();
    let loss = head.try_forward(x.clone(), y).unwrap();
    let grads = loss.clone().sum().backward();
    let max = |v: &[f64]| v.iter().fold(0f64, |m, x| m.max(x.abs()));
    let what = format!("{} {dtype:?}", case.name);
    for (part, got, want) in [
        ("loss", to_f64(loss), &case.loss),
        ("margin logits", to_f64(f), &case.logits_with_margin),
        ("grad", to_f64(x.grad(&grads).unwrap()), &case.grad),
        (
            "grad_class_weight",
            to_f64(w.grad(&grads).unwrap()),
            &case.grad_class_weight,
        ),
    ] {
        assert!(
            got.iter().all(|v| v.is_finite()),
            "{what} {part}: not finite: {got:?}"
        );
        assert_close(
            &format!("{what} {part}"),
            &got,
            want,
            rel,
            abs_of_max * max(want),
        );
    }
}

#[test]
fn family_golden_f64() {
    check_all(DType::F64, 1e-9, 1e-12);
}

#[test]
fn family_golden_f32() {
    check_all(DType::F32, 1e-4, 1e-5);
}

/// Every family case in f32 on the wgpu device: the logit-level kinds through both
/// implementations (the fused one is the CubeCL kernel) at the flex f32 tolerances; the margin
/// heads, Burn's ops with `acos`/`cos` in the shader's f32, within 1e-3 relative plus 5e-4 of
/// the largest value (lavapipe's `acos` is coarse near ±1: a combined-margin logit with scale 16
/// came out 3.2e-3 off, 2e-4 of its largest value).
#[cfg(feature = "wgpu")]
#[test]
fn family_golden_f32_wgpu() {
    if let Some(device) = crate::common::wgpu_device() {
        check_all_on(&device, DType::F32, 1e-4, 1e-5, (1e-3, 5e-4));
    }
}

/// Each file is named after its case and its arrays have the lengths its shapes imply.
#[test]
fn family_golden_files_are_consistent() {
    for case in cases() {
        let size: usize = case.shape.iter().product();
        let rows = case.shape[0];
        let loss_len = if case.reduction == "none" { rows } else { 1 };
        let mut lengths = vec![
            ("target", case.target.len(), rows),
            ("grad", case.grad.len(), size),
            ("loss", case.loss.len(), loss_len),
        ];
        if case.input == "logits" {
            lengths.push(("logits", case.logits.len(), size));
        } else {
            let weights: usize = case.class_weight_shape.iter().product();
            let centres = case.params.get("centers").map_or(1, |k| *k as usize);
            let classes = case.class_weight_shape[0] / centres;
            lengths.extend([
                ("embeddings", case.embeddings.len(), size),
                ("class_weight", case.class_weight.len(), weights),
                ("grad_class_weight", case.grad_class_weight.len(), weights),
                (
                    "logits_with_margin",
                    case.logits_with_margin.len(),
                    rows * classes,
                ),
            ]);
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

/// The layout is read strictly: an unknown field fails the parse.
#[test]
fn family_golden_layout_rejects_unknown_fields() {
    let known = r#"{"name": "t", "loss_kind": "focal", "params": {"gamma": 2.0}, "input": "logits",
        "shape": [1, 2], "logits": [0.0, 1.0], "target": [0], "weight": null, "reduction": "mean",
        "ignore_index": null, "upstream": null, "loss": [1.0], "grad": [0.0, 0.0]"#;
    assert!(serde_json::from_str::<Case>(&format!("{known}}}")).is_ok());
    let err = serde_json::from_str::<Case>(&format!("{known}, \"alpha\": 0.25}}"))
        .expect_err("an unknown field must not parse");
    assert!(err.to_string().contains("alpha"), "{err}");
}
