//! Every error path, with its message.

use burn::tensor::{Device, Int, Tensor};
use lmsoftmax_loss::{ConfigError, LargeMarginInSoftmaxLossConfig, LossError, LossImplementation};

use crate::common::IMPLEMENTATIONS;

fn loss(imp: LossImplementation) -> lmsoftmax_loss::LargeMarginInSoftmaxLoss {
    LargeMarginInSoftmaxLossConfig::new()
        .with_implementation(imp)
        .init(&Device::flex())
        .unwrap()
}

#[test]
fn config_errors_name_the_field() {
    let device = Device::flex();
    let cases: Vec<(LargeMarginInSoftmaxLossConfig, &str)> = vec![
        (
            LargeMarginInSoftmaxLossConfig::new().with_reg_lambda(-0.1),
            "reg_lambda must be >= 0 (it weights a regulariser that is >= 0), got -0.1",
        ),
        (
            LargeMarginInSoftmaxLossConfig::new().with_reg_lambda(f64::NAN),
            "reg_lambda must be a finite number, got NaN",
        ),
        (
            LargeMarginInSoftmaxLossConfig::new().with_deg_logit(Some(f64::INFINITY)),
            "deg_logit must be a finite number, got inf",
        ),
        (
            LargeMarginInSoftmaxLossConfig::new().with_label_smoothing(1.5),
            "label_smoothing must lie in [0, 1], got 1.5",
        ),
        (
            LargeMarginInSoftmaxLossConfig::new().with_weight(Some(vec![])),
            "the class-weight vector is empty: give one weight per class or none",
        ),
        (
            LargeMarginInSoftmaxLossConfig::new().with_weight(Some(vec![1.0, f64::NAN])),
            "class weight 1 must be finite and >= 0, got NaN",
        ),
    ];
    for (cfg, message) in cases {
        assert_eq!(cfg.init(&device).unwrap_err().to_string(), message);
    }
}

#[test]
fn target_out_of_range() {
    let d = Device::flex();
    for imp in IMPLEMENTATIONS {
        let err = loss(imp)
            .try_forward(
                Tensor::<2>::zeros([3, 4], &d),
                Tensor::<1, Int>::from_ints([0, 4, 1], &d),
            )
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "target 4 at row 1 is outside [0, 4) and is not the ignore_index"
        );
        let err = loss(imp)
            .try_forward(
                Tensor::<2>::zeros([2, 4], &d),
                Tensor::<1, Int>::from_ints([-100, 0], &d),
            )
            .unwrap_err();
        assert_eq!(
            err,
            LossError::TargetOutOfRange {
                row: 0,
                target: -100,
                num_classes: 4
            }
        );
    }
}

#[test]
fn shape_mismatch() {
    let d = Device::flex();
    let err = loss(LossImplementation::Auto)
        .try_forward(
            Tensor::<2>::zeros([3, 4], &d),
            Tensor::<1, Int>::from_ints([0, 1], &d),
        )
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "targets of shape [2] do not match logits of shape [3, 4]: expected targets of shape [3] \
         (the logits' shape without the class axis 1)"
    );
    let err = loss(LossImplementation::Auto)
        .try_forward(
            Tensor::<3>::zeros([2, 4, 5], &d),
            Tensor::<1, Int>::zeros([2], &d),
        )
        .unwrap_err();
    assert!(matches!(err, LossError::ShapeMismatch { .. }), "{err}");
    let err = loss(LossImplementation::Auto)
        .try_forward(
            Tensor::<1>::zeros([4], &d),
            Tensor::<1, Int>::zeros([4], &d),
        )
        .unwrap_err();
    assert!(matches!(err, LossError::ShapeMismatch { .. }), "{err}");
}

#[test]
fn too_few_classes_and_weight_length() {
    let d = Device::flex();
    let err = loss(LossImplementation::Auto)
        .try_forward(
            Tensor::<2>::zeros([3, 1], &d),
            Tensor::<1, Int>::zeros([3], &d),
        )
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "the loss needs at least 2 classes on axis 1 of the logits, got 1"
    );
    let weighted = LargeMarginInSoftmaxLossConfig::new()
        .with_weight(Some(vec![1.0; 3]))
        .init(&d)
        .unwrap();
    let err = weighted
        .try_forward(
            Tensor::<2>::zeros([2, 5], &d),
            Tensor::<1, Int>::zeros([2], &d),
        )
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "3 class weights were given for logits with 5 classes"
    );
}

#[test]
fn non_finite_logits_report_the_row() {
    let d = Device::flex();
    for imp in IMPLEMENTATIONS {
        for bad in [f32::NAN, f32::INFINITY, f32::NEG_INFINITY] {
            let logits =
                Tensor::<2>::from_floats([[0.0, 1.0, 2.0], [0.5, 0.5, 0.5], [1.0, bad, 0.0]], &d);
            let err = loss(imp)
                .try_forward(logits, Tensor::<1, Int>::from_ints([0, 1, 2], &d))
                .unwrap_err();
            match err {
                LossError::NonFiniteLogits { row, value } => {
                    assert_eq!(row, 2, "{imp:?} {bad}");
                    assert!(!value.is_finite());
                }
                other => panic!("{imp:?} {bad}: {other}"),
            }
        }
    }
    let logits = Tensor::<2>::from_floats([[f32::NAN, 0.0]], &d);
    let err = loss(LossImplementation::Auto)
        .try_forward(logits, Tensor::<1, Int>::from_ints([0], &d))
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "the logits of row 0 contain a non-finite value (NaN); check the network output"
    );
}

#[test]
#[should_panic(expected = "target 9 at row 0 is outside [0, 3) and is not the ignore_index")]
fn forward_panics_with_the_same_message() {
    let d = Device::flex();
    loss(LossImplementation::Auto).forward(
        Tensor::<2>::zeros([1, 3], &d),
        Tensor::<1, Int>::from_ints([9], &d),
    );
}

/// ndarray is a backend the fused kernel does not run on (it is compiled into the tests for
/// this only): forcing the kernel there is a configuration error naming the device and the
/// remedy, and `Auto` falls back to the composed ops with flex's value.
#[test]
fn fused_on_an_unsupported_device_is_a_config_error() {
    // Burn 0.22 deprecates ndarray in favour of flex; that is why it serves as the other device.
    #[allow(deprecated)]
    let other = Device::ndarray();
    let logits = || Tensor::<2>::from_floats([[2.0, 0.5, -1.0], [0.0, 1.0, 3.0]], &other);
    let targets = || Tensor::<1, Int>::from_ints([0, 2], &other);
    let forced = loss(LossImplementation::Fused);
    assert!(!forced.uses_fused(&other));
    let err = forced.try_forward(logits(), targets()).unwrap_err();
    assert_eq!(
        err,
        LossError::Config(ConfigError::FusedUnavailable {
            device: format!("{other:?} in F32")
        })
    );
    let message = err.to_string();
    assert!(
        message.contains("the fused implementation runs on the flex CPU backend (f32, f64)")
            && message.contains(&format!("{other:?}"))
            && message.contains("use LossImplementation::Auto or Composed"),
        "{message}"
    );

    let auto = loss(LossImplementation::Auto);
    assert!(!auto.uses_fused(&other));
    let on_other: f32 = auto.forward(logits(), targets()).into_scalar();
    let flex = Device::flex();
    let on_flex: f32 = auto
        .forward(logits().to_device(&flex), targets().to_device(&flex))
        .into_scalar();
    assert!(
        (on_other - on_flex).abs() <= 1e-6 * on_flex.abs(),
        "{on_other} vs {on_flex}"
    );
}
