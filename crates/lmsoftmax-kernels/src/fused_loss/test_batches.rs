//! Batches that exercise every term of [`LossRows`], shared by the kernels' tests.

use burn::tensor::{DType, Tensor};

use super::{LossRows, RowTerm};

/// Rows of every kind: weights, smoothing, delta, an ignored row (all coefficients 0),
/// different coefficients per row.
pub(crate) fn batch(m: usize, c: usize) -> (Vec<f64>, LossRows) {
    let z: Vec<f64> = (0..m * c)
        .map(|i| ((i * 7919 % 1013) as f64 / 1013.0 - 0.5) * 6.0)
        .collect();
    let rows = LossRows {
        num_classes: c,
        targets: (0..m).map(|n| (n * 5 + 1) % c).collect(),
        hard: (0..m)
            .map(|n| {
                if n == 1 {
                    0.0
                } else {
                    0.7 + 0.1 * (n % 3) as f64
                }
            })
            .collect(),
        smooth: (0..m).map(|n| if n == 1 { 0.0 } else { 0.02 }).collect(),
        reg: (0..m)
            .map(|n| {
                if n == 1 {
                    0.0
                } else {
                    0.3 + 0.05 * (n % 2) as f64
                }
            })
            .collect(),
        delta: 0.4,
        weight: Some((0..c).map(|j| 0.5 + (j % 4) as f64 * 0.25).collect()),
        term: RowTerm::CrossEntropy,
    };
    (z, rows)
}

/// The batch of [`batch`] for one of the family's terms (no smoothing, regulariser or delta).
pub(crate) fn family_batch(m: usize, c: usize, term: RowTerm) -> (Vec<f64>, LossRows) {
    let (z, mut rows) = batch(m, c);
    rows.smooth = vec![0.0; m];
    rows.reg = vec![0.0; m];
    rows.delta = 0.0;
    rows.weight = None;
    rows.term = term;
    (z, rows)
}

pub(crate) const FAMILY: [RowTerm; 5] = [
    RowTerm::Focal { gamma: 2.0 },
    RowTerm::Focal { gamma: 0.5 },
    RowTerm::Poly { epsilon: 1.0 },
    RowTerm::Poly { epsilon: -0.5 },
    RowTerm::ConfidencePenalty { beta: 0.3 },
];

pub(crate) fn values<const D: usize>(t: Tensor<D>) -> Vec<f64> {
    t.cast(DType::F64).into_data().try_to_vec::<f64>().unwrap()
}
