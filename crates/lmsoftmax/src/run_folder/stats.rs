//! Statistics over runs and epochs: mean ± std over seeds, the best epoch.

use super::metrics::EpochRow;

/// `(mean, sample std)`; the std is 0 for one value, both are NaN for none.
///
/// ```
/// use lmsoftmax::run_folder::stats::mean_std;
/// assert_eq!(mean_std(&[1.0, 3.0]), (2.0, 2f64.sqrt()));
/// assert_eq!(mean_std(&[5.0]), (5.0, 0.0));
/// ```
pub fn mean_std(v: &[f64]) -> (f64, f64) {
    let n = v.len() as f64;
    let mean = v.iter().sum::<f64>() / n;
    let var = if v.len() > 1 {
        v.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1.0)
    } else {
        0.0
    };
    (mean, var.sqrt())
}

/// `mean ± std` with `decimals` decimals, or the single value.
///
/// ```
/// use lmsoftmax::run_folder::stats::format_mean_std;
/// assert_eq!(format_mean_std(&[8.0, 9.0], 2), "8.50 ± 0.71");
/// assert_eq!(format_mean_std(&[8.0], 1), "8.0");
/// ```
pub fn format_mean_std(values: &[f64], decimals: usize) -> String {
    let (m, sd) = mean_std(values);
    if values.len() > 1 {
        format!("{m:.decimals$} ± {sd:.decimals$}")
    } else {
        format!("{m:.decimals$}")
    }
}

/// The row of the lowest test top-1 error, ties to the later epoch: the official script's rule
/// for `model_best` (a new best when the error is `<=` every earlier one), ours for
/// `checkpoint-best.ckpt` and the report's best column.
///
/// ```
/// # use lmsoftmax::run_folder::{metrics::EpochRow, stats::best_row};
/// let row = |epoch, err| EpochRow { epoch, test_top1_err: err, ..EpochRow::default() };
/// let rows = [row(1, 9.0), row(2, 7.0), row(3, 7.0), row(4, 8.0)];
/// assert_eq!(best_row(&rows).unwrap().epoch, 3);
/// assert!(best_row(&[]).is_none());
/// ```
pub fn best_row(rows: &[EpochRow]) -> Option<&EpochRow> {
    rows.iter().fold(None, |best, r| match best {
        Some(b) if b.test_top1_err < r.test_top1_err => Some(b),
        _ => Some(r),
    })
}

/// The ` *BEST* Err@1 .. Err@5 ..` line's row: the first epoch with the minimal test top-1 error,
/// as `cifar_train.py` takes it (`min` of the errors, top-5 at the first index of that minimum).
///
/// ```
/// # use lmsoftmax::run_folder::{metrics::EpochRow, stats::official_best_row};
/// let row = |epoch, e1, e5| EpochRow { epoch, test_top1_err: e1, test_top5_err: e5, ..EpochRow::default() };
/// let rows = [row(1, 9.0, 2.0), row(2, 7.0, 1.5), row(3, 7.0, 1.0)];
/// assert_eq!(official_best_row(&rows).unwrap().test_top5_err, 1.5);
/// ```
pub fn official_best_row(rows: &[EpochRow]) -> Option<&EpochRow> {
    rows.iter().fold(None, |best, r| match best {
        Some(b) if b.test_top1_err <= r.test_top1_err => Some(b),
        _ => Some(r),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_two_best_rules_differ_only_on_ties() {
        let row = |epoch, e1| EpochRow {
            epoch,
            test_top1_err: e1,
            ..EpochRow::default()
        };
        let rows = [
            row(1, 5.0),
            row(2, 4.0),
            row(3, 6.0),
            row(4, 4.0),
            row(5, 4.5),
        ];
        assert_eq!(best_row(&rows).unwrap().epoch, 4);
        assert_eq!(official_best_row(&rows).unwrap().epoch, 2);
        let strict = [row(1, 5.0), row(2, 3.0), row(3, 4.0)];
        assert_eq!(best_row(&strict).unwrap().epoch, 2);
        assert_eq!(official_best_row(&strict).unwrap().epoch, 2);
        assert!(mean_std(&[]).0.is_nan());
    }
}
