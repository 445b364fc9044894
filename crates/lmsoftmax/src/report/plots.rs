//! PNG figures drawn with plotters: per-epoch error and loss curves (mean over seeds, each seed
//! faint behind it) and the distribution of test margins, one colour per configuration.

use std::path::Path;

use anyhow::Result;
use lmsoftmax_loss::LossKind;
use plotters::prelude::*;

use super::Group;
use crate::plot::{
    BLUE, Curve, FONT, HEIGHT, RED, Series, WIDTH, labelled_line, legend, panel, plot_err, save_png,
};
use crate::run_folder::metrics::EpochRow;

/// One colour per loss kind: softmax blue and large-margin red, as the paper's figures, then one
/// colour for each other kind of the family; a second configuration of a kind already drawn
/// (another lambda, say) takes the next spare colour.
fn colour(index: usize, kind: LossKind) -> RGBColor {
    const SPARE: [RGBColor; 3] = [
        RGBColor(127, 127, 127),
        RGBColor(60, 60, 60),
        RGBColor(170, 170, 170),
    ];
    let own = match kind {
        LossKind::Softmax => BLUE,
        LossKind::LargeMargin => RED,
        LossKind::LabelSmoothing => RGBColor(44, 160, 44),
        LossKind::Focal => RGBColor(148, 103, 189),
        LossKind::Poly => RGBColor(255, 127, 14),
        LossKind::ConfidencePenalty => RGBColor(23, 190, 207),
        LossKind::CosFace => RGBColor(188, 189, 34),
        LossKind::ArcFace => RGBColor(140, 86, 75),
        LossKind::Combined => RGBColor(227, 119, 194),
        LossKind::SubcenterArcFace => RGBColor(0, 128, 128),
        LossKind::SphereFace => RGBColor(128, 0, 0),
        LossKind::LSoftmax => RGBColor(0, 0, 128),
    };
    // `index` counts the groups drawn before this one with the same kind
    if index == 0 {
        own
    } else {
        SPARE[(index - 1) % SPARE.len()]
    }
}

/// For each group, how many groups before it have the same loss kind (see [`colour`]).
fn kind_ranks(groups: &[&Group]) -> Vec<usize> {
    groups
        .iter()
        .enumerate()
        .map(|(i, g)| {
            let kind = g.key.loss.kind();
            groups[..i]
                .iter()
                .filter(|h| h.key.loss.kind() == kind)
                .count()
        })
        .collect()
}

fn label(g: &Group) -> String {
    format!(
        "{} ({}, {} runs)",
        g.key.config,
        g.key.loss.label(),
        g.runs.len()
    )
}

fn series_of(groups: &[&Group], value: impl Fn(&EpochRow) -> f64) -> Vec<Series> {
    let ranks = kind_ranks(groups);
    groups
        .iter()
        .enumerate()
        .map(|(i, g)| Series {
            label: label(g),
            colour: colour(ranks[i], g.key.loss.kind()),
            runs: g
                .runs
                .iter()
                .map(|r| r.rows.iter().map(|e| (e.epoch as f64, value(e))).collect())
                .collect(),
        })
        .collect()
}

/// Test (left) and training (right) top-1 error per epoch of each configuration.
///
/// # Errors
/// The figure cannot be drawn or written.
pub fn error_curves(experiment: &str, groups: &[&Group], path: &Path) -> Result<()> {
    side_by_side(
        path,
        [
            (
                format!("{experiment}: test top-1 error"),
                "error (%)",
                series_of(groups, |e| e.test_top1_err),
            ),
            (
                format!("{experiment}: training top-1 error"),
                "error (%)",
                series_of(groups, |e| e.train_top1_err),
            ),
        ],
    )
}

/// Training loss (left) and test loss (right) per epoch, each the run's own criterion.
///
/// # Errors
/// The figure cannot be drawn or written.
pub fn loss_curves(experiment: &str, groups: &[&Group], path: &Path) -> Result<()> {
    side_by_side(
        path,
        [
            (
                format!("{experiment}: training loss"),
                "loss",
                series_of(groups, |e| e.train_loss),
            ),
            (
                format!("{experiment}: test loss"),
                "loss",
                series_of(groups, |e| e.test_loss),
            ),
        ],
    )
}

/// Two curve panels, left and right, each `(title, y label, series)`, in one PNG.
fn side_by_side(path: &Path, [left, right]: [(String, &str, Vec<Series>); 2]) -> Result<()> {
    save_png(path, (WIDTH, HEIGHT), |root| {
        let (l, r) = root.split_horizontally(WIDTH / 2);
        panel(&l, &left.0, left.1, &left.2, None)?;
        panel(&r, &right.0, right.1, &right.2, None)
    })
}

/// Histogram counts of `values` over `bins` equal bins of `[lo, hi]`, as densities.
fn density(values: &[f64], lo: f64, hi: f64, bins: usize) -> Vec<(f64, f64)> {
    let width = (hi - lo) / bins as f64;
    let mut counts = vec![0usize; bins];
    for &v in values.iter().filter(|v| v.is_finite()) {
        let b = (((v - lo) / width).floor().max(0.0) as usize).min(bins - 1);
        counts[b] += 1;
    }
    let total = values.len().max(1) as f64;
    counts
        .iter()
        .enumerate()
        .map(|(i, &c)| (lo + (i as f64 + 0.5) * width, c as f64 / (total * width)))
        .collect()
}

/// The distribution of the last epoch's test margins `z_y - max_{j!=y} z_j`, pooled over the
/// seeds of each configuration (a frequency polygon; negative margins are errors).
///
/// # Errors
/// The figure cannot be drawn or written.
pub fn margin_distribution(experiment: &str, groups: &[&Group], path: &Path) -> Result<()> {
    let ranks = kind_ranks(groups);
    let pooled: Vec<(usize, &Group, Vec<f64>)> = groups
        .iter()
        .enumerate()
        .map(|(i, g)| {
            let all = g
                .runs
                .iter()
                .filter_map(|r| r.margins.as_ref())
                .flatten()
                .copied()
                .filter(|m| m.is_finite())
                .collect();
            (i, *g, all)
        })
        .filter(|(_, _, v): &(usize, &Group, Vec<f64>)| !v.is_empty())
        .collect();
    let mut all: Vec<f64> = pooled.iter().flat_map(|p| p.2.iter().copied()).collect();
    all.sort_by(f64::total_cmp);
    let q = |p: f64| all[((all.len() - 1) as f64 * p).round() as usize];
    let (lo, hi) = if all.is_empty() {
        (-1.0, 1.0)
    } else {
        (q(0.002), q(0.998).max(q(0.002) + 1e-6))
    };
    let curves: Vec<Curve> = pooled
        .iter()
        .map(|(i, g, v)| {
            let bins = ((v.len() as f64).sqrt() as usize).clamp(10, 60);
            (
                label(g),
                colour(ranks[*i], g.key.loss.kind()),
                density(v, lo, hi, bins),
            )
        })
        .collect();
    let y_max = curves
        .iter()
        .flat_map(|c| c.2.iter().map(|p| p.1))
        .fold(0f64, f64::max)
        .max(1e-6);
    save_png(path, (WIDTH, HEIGHT), |root| {
        let mut chart = ChartBuilder::on(root)
            .caption(
                format!("{experiment}: test margins z_y − max_{{j≠y}} z_j (last epoch)"),
                (FONT, 20),
            )
            .margin(12)
            .x_label_area_size(40)
            .y_label_area_size(60)
            .build_cartesian_2d(lo..hi, 0f64..y_max * 1.05)
            .map_err(plot_err)?;
        chart
            .configure_mesh()
            .x_desc("margin")
            .y_desc("density")
            .label_style((FONT, 13))
            .draw()
            .map_err(plot_err)?;
        if lo < 0.0 && hi > 0.0 {
            chart
                .draw_series(LineSeries::new(
                    vec![(0.0, 0.0), (0.0, y_max * 1.05)],
                    BLACK.mix(0.4),
                ))
                .map_err(plot_err)?;
        }
        for (name, colour, points) in &curves {
            labelled_line(&mut chart, points.clone(), name, *colour)?;
        }
        legend(&mut chart, SeriesLabelPosition::UpperLeft)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn density_integrates_to_one_and_puts_values_in_their_bins() {
        let values = [0.05, 0.15, 0.15, 0.95, 5.0, -3.0];
        let d = density(&values, 0.0, 1.0, 10);
        let area: f64 = d.iter().map(|p| p.1 * 0.1).sum();
        assert!((area - 1.0).abs() < 1e-12, "{area}");
        // out-of-range values land in the edge bins
        assert_eq!(d[0].1, 2.0 / 6.0 / 0.1);
        assert_eq!(d[1].1, 2.0 / 6.0 / 0.1);
        assert_eq!(d[9].1, 2.0 / 6.0 / 0.1);
        assert!((d[3].0 - 0.35).abs() < 1e-12);
    }
}
