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
/// all 0 (an ignored row) contributes 0 and gets a zero gradient. With a `term` other than
/// [`RowTerm::CrossEntropy`], `hard[n]` multiplies that term instead (and `smooth`, `reg` and
/// `delta` must be 0).
///
/// ```
/// use lmsoftmax_kernels::fused_loss::{LossRows, RowTerm};
/// // two rows of three classes, the plain sum of cross-entropies
/// let rows = LossRows {
///     num_classes: 3,
///     targets: vec![0, 2],
///     hard: vec![1.0, 1.0],
///     smooth: vec![0.0, 0.0],
///     reg: vec![0.0, 0.0],
///     delta: 0.0,
///     weight: None,
///     term: RowTerm::CrossEntropy,
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
    /// What `hard` multiplies: the cross-entropy, or another loss of the family.
    pub term: RowTerm,
}

/// The per-row loss that a row's `hard` coefficient multiplies, with `p = softmax(z)` and
/// `ce = -log p_y` (FAMILY.md, section 1).
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub enum RowTerm {
    /// `ce`, with the smoothing and regulariser terms of [`LossRows`].
    #[default]
    CrossEntropy,
    /// Focal loss (Lin et al., 2017): `(1 - p_y)^gamma ce`, `gamma >= 0`.
    Focal {
        /// The focusing exponent.
        gamma: f64,
    },
    /// Poly-1 loss (Leng et al., 2022): `ce + epsilon (1 - p_y)`.
    Poly {
        /// The weight of the first polynomial term.
        epsilon: f64,
    },
    /// Confidence penalty (Pereyra et al., 2017): `ce - beta H(p)`, `H(p) = -sum_j p_j log p_j`.
    ConfidencePenalty {
        /// The weight of the entropy.
        beta: f64,
    },
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
        if self.term != RowTerm::CrossEntropy {
            assert!(
                self.delta == 0.0 && !self.needs_reg() && !self.needs_smooth(),
                "{:?} rows take no delta, smoothing or regulariser",
                self.term
            );
        }
        if let Some((row, y)) = self.targets.iter().enumerate().find(|(_, y)| **y >= c) {
            panic!("target {y} of row {row} is not one of the {c} classes");
        }
    }
}
