//! What the fused kernel is told about a batch: per row, its target and the coefficients of
//! the three terms of its loss. The loss crate folds every option (lambda, deg_logit, class
//! weights, ignore_index, label smoothing, the reduction's normalisers) into these numbers, so
//! that the kernel knows the formula and nothing of the options.

/// The per-row description of a batch of `[M, C]` logits `z` for [`fused_rows`](super::fused_rows).
/// Row `n`, with target `y = targets[n]` and `z'` its logits with `delta` subtracted from the
/// target logit, has the loss
///
/// ```text
/// l_n = hard[n] * (lse(z') - z'_y) + smooth[n] * sum_j w_j (lse(z') - z'_j) + reg[n] * reg(z)
/// reg(z) = 1/2 sum_{j != y} (q_j - u)(log q_j - log u),   q = softmax of z over j != y,
///                                                         u = 1 / (C - 1)
/// ```
///
/// with `w` the class weights (all ones when `weight` is none). A row whose coefficients are
/// all 0 (an ignored row) contributes 0 and gets a zero gradient.
///
/// ```
/// use lmsoftmax_kernels::flex::fused_loss::LossRows;
/// // two rows of three classes, the plain sum of cross-entropies
/// let rows = LossRows {
///     num_classes: 3,
///     targets: vec![0, 2],
///     hard: vec![1.0, 1.0],
///     smooth: vec![0.0, 0.0],
///     reg: vec![0.0, 0.0],
///     delta: 0.0,
///     weight: None,
/// };
/// assert_eq!(rows.rows(), 2);
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct LossRows {
    /// Number of classes C (at least 2).
    pub num_classes: usize,
    /// Target class of each row, in `[0, C)` (any class for a row whose coefficients are 0).
    pub targets: Vec<usize>,
    /// Coefficient of the cross-entropy `lse(z') - z'_y` of each row.
    pub hard: Vec<f64>,
    /// Coefficient of the smoothing term `sum_j w_j (lse(z') - z'_j)` of each row.
    pub smooth: Vec<f64>,
    /// Coefficient of the regulariser of each row.
    pub reg: Vec<f64>,
    /// `delta`, subtracted from the target logit in the cross-entropy terms (0 for none).
    pub delta: f64,
    /// Class weights `w` of the smoothing term, one per class (none: all ones).
    pub weight: Option<Vec<f64>>,
}

impl LossRows {
    /// Number of rows M.
    pub fn rows(&self) -> usize {
        self.targets.len()
    }

    /// Whether any row has a regulariser to compute.
    pub(crate) fn needs_reg(&self) -> bool {
        self.reg.iter().any(|&c| c != 0.0)
    }

    /// Whether any row has a smoothing term to compute.
    pub(crate) fn needs_smooth(&self) -> bool {
        self.smooth.iter().any(|&c| c != 0.0)
    }

    /// Panics with the field at fault unless the description fits `[rows, classes]` logits.
    pub(crate) fn check(&self, [rows, classes]: [usize; 2]) {
        let c = self.num_classes;
        assert!(c >= 2, "the fused loss needs at least 2 classes, got {c}");
        assert!(
            rows == self.rows() && classes == c,
            "logits of shape [{rows}, {classes}] for a description of {} rows of {c} classes",
            self.rows()
        );
        for (name, v) in [
            ("hard", &self.hard),
            ("smooth", &self.smooth),
            ("reg", &self.reg),
        ] {
            assert!(
                v.len() == rows,
                "{} {name} coefficients for {rows} rows",
                v.len()
            );
        }
        if let Some(w) = &self.weight {
            assert!(w.len() == c, "{} class weights for {c} classes", w.len());
        }
        if let Some((row, y)) = self.targets.iter().enumerate().find(|(_, y)| **y >= c) {
            panic!("target {y} of row {row} is not one of the {c} classes");
        }
    }
}
