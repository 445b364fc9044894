//! The learner's per-epoch metrics, read back from its logs, and the check CI relies on.

use std::path::Path;

use anyhow::{Context, bail};
use burn::train::{LearnerSummary, MetricSummary};

/// The learner's names of the two metrics the example registers.
const LOSS: &str = "Loss";
const ACCURACY: &str = "Accuracy";

/// One epoch's means, as burn-train's loss and accuracy metrics log them (accuracy in percent).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct EpochRow {
    /// Mean training loss over the epoch's batches.
    pub train_loss: f64,
    /// Training accuracy, percent.
    pub train_acc: f64,
    /// Mean validation loss after the epoch.
    pub valid_loss: f64,
    /// Validation accuracy, percent.
    pub valid_acc: f64,
}

/// Reads epochs `1..=epochs` from the learner's artifact folder `dir`.
///
/// # Errors
/// When the logs cannot be read or a metric is missing for some epoch.
pub fn read_history(dir: &Path, epochs: usize) -> anyhow::Result<Vec<EpochRow>> {
    let summary = LearnerSummary::new(dir, &[LOSS, ACCURACY])
        .map_err(anyhow::Error::msg)
        .with_context(|| format!("reading the learner's metric logs in {}", dir.display()))?;
    let means = |split: &[MetricSummary], metric| epoch_means(split, metric, epochs);
    let (train, valid) = (&summary.metrics.train, &summary.metrics.valid);
    let columns = [
        means(train, LOSS)?,
        means(train, ACCURACY)?,
        means(valid, LOSS)?,
        means(valid, ACCURACY)?,
    ];
    Ok((0..epochs)
        .map(|e| EpochRow {
            train_loss: columns[0][e],
            train_acc: columns[1][e],
            valid_loss: columns[2][e],
            valid_acc: columns[3][e],
        })
        .collect())
}

/// The per-epoch means of `metric`, epoch 1 first.
fn epoch_means(split: &[MetricSummary], metric: &str, epochs: usize) -> anyhow::Result<Vec<f64>> {
    let summary = split
        .iter()
        .find(|s| s.name == metric)
        .with_context(|| format!("the learner logged no {metric:?}"))?;
    let steps: Vec<usize> = summary.entries.iter().map(|e| e.step).collect();
    if steps != (1..=epochs).collect::<Vec<_>>() {
        bail!("{metric:?} was logged for epochs {steps:?}, expected 1 to {epochs}");
    }
    Ok(summary.entries.iter().map(|e| e.value).collect())
}

/// Prints the rows as a table.
pub fn print_table(rows: &[EpochRow]) {
    println!("epoch | train loss | train acc | valid loss | valid acc");
    for (e, r) in rows.iter().enumerate() {
        println!(
            "{:>5} | {:>10.4} | {:>8.2}% | {:>10.4} | {:>8.2}%",
            e + 1,
            r.train_loss,
            r.train_acc,
            r.valid_loss,
            r.valid_acc
        );
    }
}

/// What a run must reach to pass [`failures`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Targets {
    /// The fraction by which the last epoch's mean training loss must lie below the first's
    /// (a bare `<` passes a flat loss on summation-order noise).
    pub min_loss_drop: f64,
    /// The reference validation accuracy, percent.
    pub reference_acc: f64,
    /// How many points below `reference_acc` the last validation accuracy may lie.
    pub acc_slack: f64,
}

/// What went wrong, empty when training did what it should: the training loss fell by at least
/// [`Targets::min_loss_drop`] from the first epoch to the last, and the last validation
/// accuracy is at most [`Targets::acc_slack`] points below [`Targets::reference_acc`]. A NaN
/// anywhere fails.
pub fn failures(rows: &[EpochRow], targets: Targets) -> Vec<String> {
    let Targets {
        min_loss_drop,
        reference_acc: reference,
        acc_slack: slack,
    } = targets;
    let (Some(first), Some(last)) = (rows.first(), rows.last()) else {
        return vec!["no epoch was logged".to_string()];
    };
    let mut failures = Vec::new();
    let loss_went_down = last.train_loss <= (1.0 - min_loss_drop) * first.train_loss;
    if !loss_went_down {
        failures.push(format!(
            "the training loss did not go down by {:.0}% ({:.4} -> {:.4})",
            100.0 * min_loss_drop,
            first.train_loss,
            last.train_loss
        ));
    }
    let accurate = last.valid_acc >= reference - slack;
    if !accurate {
        failures.push(format!(
            "the validation accuracy {:.2}% is more than {slack} points below the \
             reference {reference:.2}%",
            last.valid_acc
        ));
    }
    failures
}

#[cfg(test)]
mod tests {
    use super::*;

    const TARGETS: Targets = Targets {
        min_loss_drop: 0.05,
        reference_acc: 95.0,
        acc_slack: 10.0,
    };

    fn row(train_loss: f64, valid_acc: f64) -> EpochRow {
        EpochRow {
            train_loss,
            train_acc: valid_acc,
            valid_loss: train_loss,
            valid_acc,
        }
    }

    #[test]
    fn falling_loss_and_near_reference_accuracy_pass() {
        let rows = [row(0.7, 88.0), row(0.3, 94.0), row(0.25, 94.8)];
        assert!(failures(&rows, TARGETS).is_empty());
        // A 10% drop, and accuracy exactly on the limit (95 - 10), pass.
        assert!(failures(&[row(1.0, 50.0), row(0.9, 85.0)], TARGETS).is_empty());
    }

    #[test]
    fn a_loss_that_does_not_fall_enough_fails() {
        for last in [1.0, 1.0 - 1e-9, 0.96, 1.2] {
            let found = failures(&[row(1.0, 94.0), row(last, 94.0)], TARGETS);
            assert_eq!(found.len(), 1, "{last}: {found:?}");
            assert!(found[0].contains("did not go down by 5%"), "{found:?}");
        }
    }

    #[test]
    fn low_accuracy_fails() {
        let found = failures(&[row(0.7, 60.0), row(0.6, 84.0)], TARGETS);
        assert_eq!(found.len(), 1);
        assert!(found[0].contains("84.00%"), "{found:?}");
    }

    #[test]
    fn nan_and_no_epochs_fail() {
        let nan = [row(0.7, 90.0), row(f64::NAN, f64::NAN)];
        assert_eq!(failures(&nan, TARGETS).len(), 2);
        assert_eq!(failures(&[], TARGETS), ["no epoch was logged"]);
    }
}
