//! The per-row plan shared by both implementations: validated targets and the coefficient of each
//! term in each row, so that every reduction, class weight, ignored row and smoothing factor is
//! decided in one place and both implementations only compute `sum_n l_n` or `l_n` with
//!
//! ```text
//! l_n = hard_n * (lse_n - z'_{n,y}) + smooth_n * sum_j w_j (lse_n - z'_{n,j}) + reg_n * reg(z_n)
//! ```

use lmsoftmax_kernels::fused_loss::{LossRows, RowTerm};

use crate::error::LossError;
use crate::reduction::LossReduction;

/// The hyper-parameters the plan folds into the per-row coefficients (the loss fills them in
/// from a validated configuration).
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct PlanOptions<'a> {
    /// `lambda`, the weight of the regulariser.
    pub reg_lambda: f64,
    /// `delta`, subtracted from the target logit (0 for none).
    pub deg_logit: f64,
    /// Class weights of the cross-entropy term (none: all ones).
    pub weight: Option<&'a [f64]>,
    /// Target value whose rows contribute nothing.
    pub ignore_index: Option<i64>,
    /// Reduction over rows.
    pub reduction: LossReduction,
    /// Label smoothing `eps` of the cross-entropy term.
    pub label_smoothing: f64,
    /// What each row's weighted coefficient multiplies: the cross-entropy (with the smoothing
    /// and regulariser terms above) or another loss of the family (with neither).
    pub term: RowTerm,
}

/// Validated targets and per-row coefficients for one batch: the fused kernel's own input
/// ([`LossRows`], which the composed path reads too) and which optional terms any row needs.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct RowPlan {
    /// Classes, targets (ignored rows hold 0, their coefficients all 0), the coefficients of the
    /// hard cross-entropy `lse - z'_y`, of the smoothing term `sum_j w_j (lse - z'_j)` and of the
    /// regulariser, `deg_logit` (0 when none) and the smoothing term's class weights.
    pub rows: LossRows,
    /// Whether any row needs the regulariser (lambda > 0 and a kept row).
    pub needs_reg: bool,
    /// Whether any row needs the smoothing term.
    pub needs_smooth: bool,
}

impl RowPlan {
    /// Builds the plan from the targets read on the host.
    ///
    /// # Errors
    /// [`LossError::TooFewClasses`], [`LossError::WeightLength`] or
    /// [`LossError::TargetOutOfRange`] with the first bad row.
    pub fn new(
        options: &PlanOptions<'_>,
        targets: &[i64],
        num_classes: usize,
    ) -> Result<Self, LossError> {
        if num_classes < 2 {
            return Err(LossError::TooFewClasses(num_classes));
        }
        if let Some(weight) = options.weight
            && weight.len() != num_classes
        {
            return Err(LossError::WeightLength {
                weights: weight.len(),
                num_classes,
            });
        }
        let class_weight = |class: usize| options.weight.map_or(1.0, |w| w[class]);

        let mut kept_targets = Vec::with_capacity(targets.len());
        let mut kept = Vec::with_capacity(targets.len());
        for (row, &target) in targets.iter().enumerate() {
            if options.ignore_index == Some(target) {
                kept_targets.push(0);
                kept.push(false);
            } else if target < 0 || target as u64 >= num_classes as u64 {
                return Err(LossError::TargetOutOfRange {
                    row,
                    target,
                    num_classes,
                });
            } else {
                kept_targets.push(target as usize);
                kept.push(true);
            }
        }

        // Normalisers of the two terms: the cross-entropy is a weighted mean over the kept rows,
        // the regulariser a plain mean over the kept rows (the official semantics). An empty
        // normaliser (every row ignored, or all kept weights 0) contributes nothing, not NaN.
        let (ce_norm, reg_norm) = match options.reduction {
            LossReduction::Mean => {
                let weight_sum: f64 = kept_targets
                    .iter()
                    .zip(&kept)
                    .filter(|(_, k)| **k)
                    .map(|(&y, _)| class_weight(y))
                    .sum();
                let kept_rows = kept.iter().filter(|k| **k).count() as f64;
                (inverse_or_zero(weight_sum), inverse_or_zero(kept_rows))
            }
            LossReduction::Sum | LossReduction::None => (1.0, 1.0),
        };
        let eps = options.label_smoothing;
        let lambda = options.reg_lambda;
        let c = num_classes as f64;

        let mut hard = Vec::with_capacity(targets.len());
        let mut smooth = Vec::with_capacity(targets.len());
        let mut reg = Vec::with_capacity(targets.len());
        for (&y, &k) in kept_targets.iter().zip(&kept) {
            let keep = if k { 1.0 } else { 0.0 };
            hard.push(keep * ce_norm * (1.0 - eps) * class_weight(y));
            smooth.push(keep * ce_norm * eps / c);
            reg.push(keep * reg_norm * lambda);
        }
        let any_kept = kept.iter().any(|k| *k);
        Ok(Self {
            rows: LossRows {
                num_classes,
                targets: kept_targets,
                hard,
                smooth,
                reg,
                delta: options.deg_logit,
                weight: options.weight.map(<[f64]>::to_vec),
                term: options.term,
            },
            needs_reg: lambda > 0.0 && any_kept,
            needs_smooth: eps > 0.0 && any_kept,
        })
    }
}

fn inverse_or_zero(x: f64) -> f64 {
    if x > 0.0 { 1.0 / x } else { 0.0 }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The defaults of the configuration: lambda 0.3, mean reduction, nothing else.
    fn defaults() -> PlanOptions<'static> {
        PlanOptions {
            reg_lambda: 0.3,
            deg_logit: 0.0,
            weight: None,
            ignore_index: None,
            reduction: LossReduction::Mean,
            label_smoothing: 0.0,
            term: RowTerm::CrossEntropy,
        }
    }

    #[test]
    fn mean_divides_ce_by_kept_weights_and_reg_by_kept_rows() {
        let cfg = PlanOptions {
            weight: Some(&[1.0, 2.0, 4.0]),
            ignore_index: Some(-100),
            ..defaults()
        };
        let plan = RowPlan::new(&cfg, &[0, 2, -100, 1], 3).unwrap();
        // kept weights 1 + 4 + 2 = 7, kept rows 3
        assert_eq!(plan.rows.hard, vec![1.0 / 7.0, 4.0 / 7.0, 0.0, 2.0 / 7.0]);
        let want_reg = [0.1, 0.1, 0.0, 0.1];
        assert!(
            plan.rows
                .reg
                .iter()
                .zip(want_reg)
                .all(|(a, b)| (a - b).abs() < 1e-15)
        );
        assert_eq!(plan.rows.targets, vec![0, 2, 0, 1]);
    }

    #[test]
    fn all_ignored_gives_zero_coefficients() {
        let cfg = PlanOptions {
            ignore_index: Some(5),
            ..defaults()
        };
        let plan = RowPlan::new(&cfg, &[5, 5], 3).unwrap();
        assert!(
            plan.rows
                .hard
                .iter()
                .chain(&plan.rows.reg)
                .all(|&x| x == 0.0)
        );
        assert!(!plan.needs_reg);
    }

    #[test]
    fn smoothing_splits_the_ce_coefficient() {
        let cfg = PlanOptions {
            label_smoothing: 0.1,
            reduction: LossReduction::Sum,
            ..defaults()
        };
        let plan = RowPlan::new(&cfg, &[1], 4).unwrap();
        assert!((plan.rows.hard[0] - 0.9).abs() < 1e-15);
        assert!((plan.rows.smooth[0] - 0.025).abs() < 1e-15);
    }

    #[test]
    fn errors_name_the_row_and_value() {
        let err = RowPlan::new(&defaults(), &[0, 3], 3).unwrap_err();
        assert_eq!(
            err.to_string(),
            "target 3 at row 1 is outside [0, 3) and is not the ignore_index"
        );
        let err = RowPlan::new(&defaults(), &[-1], 3).unwrap_err();
        assert!(matches!(
            err,
            LossError::TargetOutOfRange { target: -1, .. }
        ));
        assert_eq!(
            RowPlan::new(&defaults(), &[0], 1).unwrap_err(),
            LossError::TooFewClasses(1)
        );
        let cfg = PlanOptions {
            weight: Some(&[1.0; 4]),
            ..defaults()
        };
        assert_eq!(
            RowPlan::new(&cfg, &[0], 3).unwrap_err().to_string(),
            "4 class weights were given for logits with 3 classes"
        );
    }
}
