//! How the per-row losses are reduced: the one choice that both the configuration and the row
//! plan need, so it sits below both.

use burn::config::Config;

/// How the per-row losses are reduced.
///
/// ```
/// use lmsoftmax_loss::LossReduction;
/// assert_eq!(LossReduction::default(), LossReduction::Mean);
/// ```
#[derive(Config, Debug, Copy, PartialEq, Eq)]
pub enum LossReduction {
    /// `sum_n w_n ce_n / sum_n w_n + lambda * mean_n reg_n` over the rows that are not ignored.
    Mean,
    /// `sum_n (w_n ce_n + lambda reg_n)`.
    Sum,
    /// One value per row, `w_n ce_n + lambda reg_n` (0 for ignored rows), shaped like the targets.
    None,
}

// Burn's `Config` derive does not accept `#[default]` on a variant, so this is written out.
#[allow(clippy::derivable_impls)]
impl Default for LossReduction {
    fn default() -> Self {
        Self::Mean
    }
}
