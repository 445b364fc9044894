//! The CubeCL kernel on the wgpu device against the flex kernel (itself tested against the
//! formula of `LossRows`): rows shorter than a cube, as long as several, every term and
//! option, the gradient through autodiff, NaN rows, and more rows than one grid dimension holds.

use burn::tensor::{DType, Device, Tensor, TensorData};

use crate::cube::wgpu_test_device;
use crate::fused_loss::test_batches::{FAMILY, batch, family_batch, values};
use crate::fused_loss::{LossRows, fused_rows};

/// Losses and `d sum_n up_n l_n / d z` of the rows on `device`, in f32.
fn rows_and_grad(device: &Device, z: &[f64], rows: &LossRows, m: usize, c: usize) -> [Vec<f64>; 2] {
    let x = Tensor::<2>::from_data(TensorData::new(z.to_vec(), [m, c]), (device, DType::F32))
        .require_grad();
    let up: Vec<f64> = (0..m).map(|n| 1.0 + 0.25 * (n % 5) as f64).collect();
    let upstream = Tensor::<1>::from_data(TensorData::new(up, [m]), (device, DType::F32));
    let loss = fused_rows(x.clone(), rows.clone());
    let grads = (loss.clone() * upstream).sum().backward();
    [
        values(loss),
        values(x.grad(&grads).expect("logits have a gradient")),
    ]
}

fn assert_agree(what: &str, got: &[f64], want: &[f64], tol: f64) {
    assert_eq!(got.len(), want.len(), "{what}: lengths");
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        assert!(
            (g - w).abs() <= tol * (1.0 + w.abs()),
            "{what}[{i}]: wgpu {g}, flex {w}"
        );
    }
}

#[test]
fn wgpu_kernel_matches_flex_for_every_term_and_row_length() {
    let Some(gpu) = wgpu_test_device() else {
        return;
    };
    let cpu = Device::flex().autodiff();
    // 3 and 130 classes fit one cube of units; 1,000 and 1,030 take several logits per unit.
    for (m, c) in [(37, 3), (64, 130), (20, 1000), (9, 1030)] {
        let mut cases = vec![("large-margin".to_string(), batch(m, c))];
        for term in FAMILY {
            cases.push((format!("{term:?}"), family_batch(m, c, term)));
        }
        let (z, mut plain) = batch(m, c);
        plain.smooth = vec![0.0; m];
        plain.weight = None;
        cases.push(("no smoothing, no weights".into(), (z, plain)));
        for (name, (z, rows)) in cases {
            let [loss, grad] = rows_and_grad(&gpu, &z, &rows, m, c);
            let [want_loss, want_grad] = rows_and_grad(&cpu, &z, &rows, m, c);
            let what = format!("{name} [{m}, {c}]");
            assert_agree(&format!("{what} loss"), &loss, &want_loss, 2e-5);
            assert_agree(&format!("{what} grad"), &grad, &want_grad, 2e-5);
        }
    }
}

#[test]
fn wgpu_kernel_gives_a_non_finite_loss_for_a_row_with_a_non_finite_logit() {
    let Some(gpu) = wgpu_test_device() else {
        return;
    };
    let (m, c) = (6, 300);
    let (mut z, rows) = batch(m, c);
    z[2 * c + 17] = f64::NAN;
    z[3 * c + rows.targets[3]] = f64::INFINITY;
    z[4 * c + 5] = f64::NEG_INFINITY;
    let x = Tensor::<2>::from_data(TensorData::new(z.clone(), [m, c]), (&gpu, DType::F32));
    let got = values(fused_rows(x, rows.clone()));
    for (n, g) in got.iter().enumerate() {
        assert_eq!(!g.is_finite(), (2..=4).contains(&n), "row {n}: {g}");
    }
}

#[test]
fn wgpu_kernel_spreads_many_rows_over_two_grid_dimensions() {
    let Some(gpu) = wgpu_test_device() else {
        return;
    };
    let (m, c) = (70_000, 2);
    let (z, rows) = batch(m, c);
    let x = |device: &Device| {
        Tensor::<2>::from_data(TensorData::new(z.clone(), [m, c]), (device, DType::F32))
    };
    let got = values(fused_rows(x(&gpu), rows.clone()));
    let want = values(fused_rows(x(&Device::flex()), rows));
    assert_agree("70,000 rows", &got, &want, 2e-5);
}
