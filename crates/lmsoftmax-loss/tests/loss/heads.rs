//! Properties of the margin heads: finite at an embedding exactly parallel or anti-parallel to
//! its class row and at zero rows of `x` and `W`; CosFace with no margin is the cross-entropy of
//! the scaled cosines; sub-centre ArcFace with one centre is ArcFace; SphereFace and L-Softmax
//! with a huge lambda have no margin left.

use burn::tensor::{DType, Int, Tensor, TensorData};
use lmsoftmax_loss::{HeadKind, LossConfig, LossKind, MarginHead};

use crate::common::{assert_close, device, pseudo_random, to_f64};

const KINDS: [HeadKind; 6] = [
    HeadKind::CosFace {
        scale: 30.0,
        margin: 0.35,
    },
    HeadKind::ArcFace {
        scale: 30.0,
        margin: 0.5,
    },
    HeadKind::Combined {
        scale: 30.0,
        m1: 1.35,
        m2: 0.3,
        m3: 0.2,
    },
    HeadKind::SubcenterArcFace {
        scale: 30.0,
        margin: 0.5,
        centers: 3,
    },
    HeadKind::SphereFace {
        margin: 4,
        lambda: 5.0,
    },
    HeadKind::LSoftmax {
        margin: 4,
        lambda: 5.0,
    },
];

/// Loss, d/dx and d/dW of `kind` on `x [n, d]`, `w [C*K, d]`.
fn run(kind: HeadKind, x: &[f64], w: &[f64], d: usize, y: &[i64], dtype: DType) -> [Vec<f64>; 3] {
    let dev = device();
    let n = y.len();
    let x =
        Tensor::<2>::from_data(TensorData::new(x.to_vec(), [n, d]), (&dev, dtype)).require_grad();
    let rows = w.len() / d;
    let w = Tensor::<2>::from_data(TensorData::new(w.to_vec(), [rows, d]), (&dev, dtype))
        .require_grad();
    let head = MarginHead::from_weight(kind, w.clone());
    let y = Tensor::<1, Int>::from_data(TensorData::new(y.to_vec(), [n]), &dev);
    let loss = head.forward(x.clone(), y);
    let g = loss.clone().backward();
    [
        to_f64(loss),
        to_f64(x.grad(&g).unwrap()),
        to_f64(w.grad(&g).unwrap()),
    ]
}

#[test]
fn finite_at_cos_plus_and_minus_one_and_at_zero_rows() {
    let d = 3;
    for kind in KINDS {
        let k = kind.centers();
        let classes = 3;
        let mut w = pseudo_random(classes * k * d, 7, 1.0);
        // class 2's rows (every centre) are zero
        for v in &mut w[2 * k * d..3 * k * d] {
            *v = 0.0;
        }
        let row = |c: usize| w[c * k * d..c * k * d + d].to_vec();
        let mut x = Vec::new();
        x.extend(row(0).iter().map(|v| v * 2.0)); // parallel to its class row: cos = 1
        x.extend(row(1).iter().map(|v| -v * 0.5)); // anti-parallel: cos = -1
        x.extend([0.0; 3]); // a zero embedding
        x.extend(row(0)); // the zero class row as target
        let y = [0, 1, 0, 2];
        for dtype in [DType::F64, DType::F32] {
            let out = run(kind, &x, &w, d, &y, dtype);
            for (what, v) in ["loss", "grad x", "grad W"].iter().zip(&out) {
                assert!(
                    v.iter().all(|v| v.is_finite()),
                    "{kind:?} {dtype:?} {what}: {v:?}"
                );
            }
        }
    }
}

#[test]
fn no_margin_is_the_cross_entropy_of_the_plain_logits() {
    let (n, d, classes) = (6, 5, 4);
    let x = pseudo_random(n * d, 3, 1.0);
    let w = pseudo_random(classes * d, 4, 1.0);
    let y: Vec<i64> = (0..n as i64).map(|i| i % 4).collect();
    let dev = device();
    let ce = LossConfig::of_kind(LossKind::Softmax).init(&dev).unwrap();
    for (kind, plain) in [
        (
            HeadKind::CosFace {
                scale: 16.0,
                margin: 0.0,
            },
            HeadKind::CosFace {
                scale: 16.0,
                margin: 0.0,
            },
        ),
        (
            HeadKind::SphereFace {
                margin: 4,
                lambda: 1e12,
            },
            HeadKind::SphereFace {
                margin: 4,
                lambda: 1e12,
            },
        ),
        (
            HeadKind::LSoftmax {
                margin: 3,
                lambda: 1e12,
            },
            HeadKind::LSoftmax {
                margin: 3,
                lambda: 1e12,
            },
        ),
    ] {
        let got = run(kind, &x, &w, d, &y, DType::F64)[0].clone();
        let w_t =
            Tensor::<2>::from_data(TensorData::new(w.clone(), [classes, d]), (&dev, DType::F64));
        let head = MarginHead::from_weight(plain, w_t);
        let xt = Tensor::<2>::from_data(TensorData::new(x.clone(), [n, d]), (&dev, DType::F64));
        let yt = Tensor::<1, Int>::from_data(TensorData::new(y.clone(), [n]), &dev);
        let want = to_f64(ce.forward(head.logits(xt), yt));
        assert_close(&format!("{kind:?}"), &got, &want, 1e-9, 1e-9);
    }
}

#[test]
fn one_subcentre_is_arcface() {
    let (n, d, classes) = (7, 6, 5);
    let x = pseudo_random(n * d, 9, 1.0);
    let w = pseudo_random(classes * d, 10, 1.0);
    let y: Vec<i64> = (0..n as i64).map(|i| (i * 3) % 5).collect();
    let arc = run(
        HeadKind::ArcFace {
            scale: 30.0,
            margin: 0.5,
        },
        &x,
        &w,
        d,
        &y,
        DType::F64,
    );
    let sub = run(
        HeadKind::SubcenterArcFace {
            scale: 30.0,
            margin: 0.5,
            centers: 1,
        },
        &x,
        &w,
        d,
        &y,
        DType::F64,
    );
    for (what, (a, s)) in ["loss", "grad x", "grad W"]
        .iter()
        .zip(arc.iter().zip(&sub))
    {
        assert_close(what, s, a, 1e-12, 1e-14);
    }
}

#[test]
fn bad_parameters_and_targets_are_errors() {
    let dev = device();
    assert!(
        MarginHead::new(
            HeadKind::CosFace {
                scale: 0.0,
                margin: 0.3
            },
            4,
            3,
            &dev
        )
        .is_err()
    );
    assert!(
        MarginHead::new(
            HeadKind::SphereFace {
                margin: 0,
                lambda: 1.0
            },
            4,
            3,
            &dev
        )
        .is_err()
    );
    let head = MarginHead::new(KINDS[0], 4, 3, &dev).unwrap();
    assert_eq!(head.classes(), 3);
    let err = head
        .try_forward(
            Tensor::<2>::ones([2, 4], &dev),
            Tensor::<1, Int>::from_ints([0, 3], &dev),
        )
        .unwrap_err();
    assert!(err.to_string().contains("target 3 at row 1"), "{err}");
    // a NaN embedding is an error naming its row, not a NaN loss
    let x = Tensor::<2>::from_floats([[1.0, 0.0, 0.0, 0.0], [f32::NAN, 1.0, 0.0, 0.0]], &dev);
    for kind in KINDS {
        let head = MarginHead::new(kind, 4, 3, &dev).unwrap();
        let err = head
            .try_forward(x.clone(), Tensor::<1, Int>::from_ints([0, 1], &dev))
            .unwrap_err();
        assert!(err.to_string().contains("row 1"), "{kind:?}: {err}");
    }
}
