//! PNG figures drawn with plotters: per-epoch error and loss curves (mean over seeds, each seed
//! faint behind it) and the distribution of test margins, one colour per configuration.

use std::path::Path;
use std::sync::Once;

use anyhow::{Context, Result, anyhow};
use plotters::coord::Shift;
use plotters::coord::types::RangedCoordf64;
use plotters::prelude::*;

use super::Group;
use crate::train::LossKind;
use crate::train::run::EpochRow;

const WIDTH: u32 = 1200;
const HEIGHT: u32 = 480;
const FONT: &str = "sans-serif";

/// The figures' font (DejaVu Sans, shipped in `assets/`), registered once: plotters' bitmap
/// backend draws no text without one and we do not depend on the system's fonts.
fn register_font() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        plotters::style::register_font(
            FONT,
            FontStyle::Normal,
            include_bytes!("../../assets/DejaVuSans.ttf"),
        )
        .unwrap_or_else(|_| panic!("the shipped font is a valid TrueType file"));
    });
}

fn plot_err<E: std::fmt::Debug>(e: E) -> anyhow::Error {
    anyhow!("drawing the figure: {e:?}")
}

/// Softmax runs in blue, large-margin runs in red, further configurations in other colours.
fn colour(index: usize, loss: LossKind) -> RGBColor {
    const OTHERS: [RGBColor; 4] = [
        RGBColor(44, 160, 44),
        RGBColor(148, 103, 189),
        RGBColor(255, 127, 14),
        RGBColor(23, 190, 207),
    ];
    match (index, loss) {
        (0, LossKind::Softmax) => RGBColor(31, 119, 180),
        (1, LossKind::LargeMargin) | (0, LossKind::LargeMargin) => RGBColor(214, 39, 40),
        (i, _) => OTHERS[i % OTHERS.len()],
    }
}

fn label(g: &Group) -> String {
    let k = &g.key;
    match k.loss {
        LossKind::Softmax => format!("{} (softmax, {} runs)", k.config, g.runs.len()),
        LossKind::LargeMargin => format!(
            "{} (large-margin λ={}, {} runs)",
            k.config,
            k.reg_lambda,
            g.runs.len()
        ),
    }
}

/// Renders into an RGB buffer and saves it as PNG.
fn save_png(
    path: &Path,
    draw: impl FnOnce(&DrawingArea<BitMapBackend, Shift>) -> Result<()>,
) -> Result<()> {
    register_font();
    let mut buffer = vec![0u8; (WIDTH * HEIGHT * 3) as usize];
    {
        let root = BitMapBackend::with_buffer(&mut buffer, (WIDTH, HEIGHT)).into_drawing_area();
        root.fill(&WHITE).map_err(plot_err)?;
        draw(&root)?;
        root.present().map_err(plot_err)?;
    }
    let mut encoded = Vec::new();
    image::ImageEncoder::write_image(
        image::codecs::png::PngEncoder::new(&mut encoded),
        &buffer,
        WIDTH,
        HEIGHT,
        image::ExtendedColorType::Rgb8,
    )
    .context("encoding the PNG")?;
    crate::train::checkpoint::write_atomic(path, &encoded)
        .with_context(|| format!("writing the figure {}", path.display()))
}

/// A labelled, coloured polyline.
type Curve = (String, RGBColor, Vec<(f64, f64)>);

/// One series of a panel: its points per run and its legend.
struct Series {
    label: String,
    colour: RGBColor,
    runs: Vec<Vec<(f64, f64)>>,
}

/// The mean over runs at each epoch that every run reached.
fn mean_curve(runs: &[Vec<(f64, f64)>]) -> Vec<(f64, f64)> {
    let len = runs.iter().map(Vec::len).min().unwrap_or(0);
    (0..len)
        .map(|i| {
            let x = runs[0][i].0;
            let y = runs.iter().map(|r| r[i].1).sum::<f64>() / runs.len() as f64;
            (x, y)
        })
        .collect()
}

/// A line chart of `series` in `area`: each run faint, the mean over runs bold.
fn panel(
    area: &DrawingArea<BitMapBackend, Shift>,
    title: &str,
    y_desc: &str,
    series: &[Series],
) -> Result<()> {
    let points = series.iter().flat_map(|s| s.runs.iter().flatten());
    let (mut x_max, mut y_min, mut y_max) = (1f64, f64::INFINITY, f64::NEG_INFINITY);
    for &(x, y) in points {
        if y.is_finite() {
            x_max = x_max.max(x);
            y_min = y_min.min(y);
            y_max = y_max.max(y);
        }
    }
    if !y_min.is_finite() {
        (y_min, y_max) = (0.0, 1.0);
    }
    let pad = ((y_max - y_min) * 0.05).max(1e-3);
    let mut chart = ChartBuilder::on(area)
        .caption(title, (FONT, 20))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(60)
        .build_cartesian_2d(1f64..x_max.max(2.0), (y_min - pad)..(y_max + pad))
        .map_err(plot_err)?;
    chart
        .configure_mesh()
        .x_desc("epoch")
        .y_desc(y_desc)
        .label_style((FONT, 13))
        .draw()
        .map_err(plot_err)?;
    for s in series {
        if s.runs.len() > 1 {
            for run in &s.runs {
                chart
                    .draw_series(LineSeries::new(run.clone(), s.colour.mix(0.25)))
                    .map_err(plot_err)?;
            }
        }
        labelled_line(&mut chart, mean_curve(&s.runs), &s.label, s.colour)?;
    }
    legend(&mut chart, SeriesLabelPosition::UpperRight)
}

/// The chart type of every figure: f64 by f64 on a bitmap.
type Chart<'a, 'b> =
    ChartContext<'a, BitMapBackend<'b>, Cartesian2d<RangedCoordf64, RangedCoordf64>>;

/// A bold line with a legend entry.
fn labelled_line(
    chart: &mut Chart,
    points: Vec<(f64, f64)>,
    label: &str,
    colour: RGBColor,
) -> Result<()> {
    chart
        .draw_series(LineSeries::new(points, colour.stroke_width(2)))
        .map_err(plot_err)?
        .label(label)
        .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], colour.stroke_width(2)));
    Ok(())
}

/// The legend box of the labelled lines.
fn legend<'a, 'b: 'a>(chart: &mut Chart<'a, 'b>, position: SeriesLabelPosition) -> Result<()> {
    chart
        .configure_series_labels()
        .label_font((FONT, 13))
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .position(position)
        .draw()
        .map_err(plot_err)
}

fn series_of(groups: &[&Group], value: impl Fn(&EpochRow) -> f64) -> Vec<Series> {
    groups
        .iter()
        .enumerate()
        .map(|(i, g)| Series {
            label: label(g),
            colour: colour(i, g.key.loss),
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
    save_png(path, |root| {
        let (l, r) = root.split_horizontally(WIDTH / 2);
        panel(&l, &left.0, left.1, &left.2)?;
        panel(&r, &right.0, right.1, &right.2)
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
            (label(g), colour(*i, g.key.loss), density(v, lo, hi, bins))
        })
        .collect();
    let y_max = curves
        .iter()
        .flat_map(|c| c.2.iter().map(|p| p.1))
        .fold(0f64, f64::max)
        .max(1e-6);
    save_png(path, |root| {
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

/// One run's training curves (the official script's `train_epochs.pdf`, as PNG): top-1 error
/// (left, training and test) and loss (right, training and test) per epoch.
///
/// # Errors
/// The figure cannot be drawn or written.
pub fn run_curves(rows: &[EpochRow], config: &str, path: &Path) -> Result<()> {
    let line = |label: &str, colour: RGBColor, value: fn(&EpochRow) -> f64| Series {
        label: label.into(),
        colour,
        runs: vec![rows.iter().map(|e| (e.epoch as f64, value(e))).collect()],
    };
    save_png(path, |root| {
        let (left, right) = root.split_horizontally(WIDTH / 2);
        panel(
            &left,
            &format!("{config}: top-1 error"),
            "error (%)",
            &[
                line("train", RGBColor(31, 119, 180), |e| e.train_top1_err),
                line("test", RGBColor(214, 39, 40), |e| e.test_top1_err),
            ],
        )?;
        panel(
            &right,
            &format!("{config}: loss"),
            "loss",
            &[
                line("train", RGBColor(31, 119, 180), |e| e.train_loss),
                line("test", RGBColor(214, 39, 40), |e| e.test_loss),
            ],
        )
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

    #[test]
    fn mean_curve_stops_at_the_shortest_run() {
        let runs = vec![
            vec![(1.0, 2.0), (2.0, 4.0), (3.0, 9.0)],
            vec![(1.0, 4.0), (2.0, 8.0)],
        ];
        assert_eq!(mean_curve(&runs), vec![(1.0, 3.0), (2.0, 6.0)]);
    }

    #[test]
    fn run_curves_writes_a_png_of_the_figure_size() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("curves.png");
        let row = |epoch: usize, err: f64| EpochRow {
            epoch,
            lr: 0.1,
            train_loss: 2.0 / epoch as f64,
            train_ce: 2.0 / epoch as f64,
            train_reg: 0.0,
            train_top1_err: err + 5.0,
            test_loss: 2.5 / epoch as f64,
            test_top1_err: err,
            test_top5_err: err / 4.0,
            mean_margin: 1.0,
            nontarget_entropy: 2.0,
            seconds: 1.0,
            images_per_s: 100.0,
        };
        run_curves(
            &[row(1, 50.0), row(2, 30.0), row(3, 25.0)],
            "layer13",
            &path,
        )
        .unwrap();
        let img = image::open(&path).unwrap().to_rgb8();
        assert_eq!(img.dimensions(), (WIDTH, HEIGHT));
        // something besides the white background was drawn: lines, axes and text
        let ink = img.pixels().filter(|p| p.0 != [255, 255, 255]).count();
        assert!(ink > 5_000, "{ink} non-white pixels");
        // both series colours are present
        assert!(img.pixels().any(|p| p.0 == [31, 119, 180]));
        assert!(img.pixels().any(|p| p.0 == [214, 39, 40]));
    }
}
