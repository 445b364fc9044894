//! Drawing primitives of every figure (plotters on an RGB bitmap, saved as PNG): the shipped font,
//! line panels with each run faint and the mean over runs bold, legends.

use std::path::Path;
use std::sync::Once;

use anyhow::{Context, Result, anyhow};
use plotters::coord::Shift;
use plotters::coord::types::RangedCoordf64;
use plotters::prelude::*;

use crate::atomic::write_atomic;

/// Width of a two-panel figure, pixels.
pub const WIDTH: u32 = 1200;
/// Height of a one-row figure, pixels.
pub const HEIGHT: u32 = 480;
/// The font family name the figures use.
pub const FONT: &str = "sans-serif";
/// Blue (the first series; softmax in the report).
pub const BLUE: RGBColor = RGBColor(31, 119, 180);
/// Red (the second series; large-margin in the report).
pub const RED: RGBColor = RGBColor(214, 39, 40);

/// The figures' font (DejaVu Sans, shipped in `assets/`), registered once: plotters' bitmap
/// backend draws no text without one and we do not depend on the system's fonts.
fn register_font() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        plotters::style::register_font(
            FONT,
            FontStyle::Normal,
            include_bytes!("../assets/DejaVuSans.ttf"),
        )
        .unwrap_or_else(|_| panic!("the shipped font is a valid TrueType file"));
    });
}

/// A plotters error as an `anyhow` error.
pub fn plot_err<E: std::fmt::Debug>(e: E) -> anyhow::Error {
    anyhow!("drawing the figure: {e:?}")
}

/// Renders into an RGB buffer and saves it as PNG.
pub fn save_png(
    path: &Path,
    (width, height): (u32, u32),
    draw: impl FnOnce(&DrawingArea<BitMapBackend, Shift>) -> Result<()>,
) -> Result<()> {
    register_font();
    let mut buffer = vec![0u8; (width * height * 3) as usize];
    {
        let root = BitMapBackend::with_buffer(&mut buffer, (width, height)).into_drawing_area();
        root.fill(&WHITE).map_err(plot_err)?;
        draw(&root)?;
        root.present().map_err(plot_err)?;
    }
    let mut encoded = Vec::new();
    image::ImageEncoder::write_image(
        image::codecs::png::PngEncoder::new(&mut encoded),
        &buffer,
        width,
        height,
        image::ExtendedColorType::Rgb8,
    )
    .context("encoding the PNG")?;
    write_atomic(path, &encoded).with_context(|| format!("writing the figure {}", path.display()))
}

/// A labelled, coloured polyline.
pub type Curve = (String, RGBColor, Vec<(f64, f64)>);

/// One series of a panel: its points per run and its legend.
pub struct Series {
    /// Legend text.
    pub label: String,
    /// Colour.
    pub colour: RGBColor,
    /// `(epoch, value)` points, one list per run.
    pub runs: Vec<Vec<(f64, f64)>>,
}

/// The mean over runs at each epoch that every run reached.
pub fn mean_curve(runs: &[Vec<(f64, f64)>]) -> Vec<(f64, f64)> {
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
/// `y_range` fixes the y axis (the official figure's ranges); `None` fits the data.
pub fn panel(
    area: &DrawingArea<BitMapBackend, Shift>,
    title: &str,
    y_desc: &str,
    series: &[Series],
    y_range: Option<(f64, f64)>,
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
    let (y_lo, y_hi) = y_range.unwrap_or((y_min - pad, y_max + pad));
    let mut chart = ChartBuilder::on(area)
        .caption(title, (FONT, 20))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(60)
        .build_cartesian_2d(1f64..x_max.max(2.0), y_lo..y_hi)
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
pub type Chart<'a, 'b> =
    ChartContext<'a, BitMapBackend<'b>, Cartesian2d<RangedCoordf64, RangedCoordf64>>;

/// A bold line with a legend entry.
pub fn labelled_line(
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
pub fn legend<'a, 'b: 'a>(chart: &mut Chart<'a, 'b>, position: SeriesLabelPosition) -> Result<()> {
    chart
        .configure_series_labels()
        .label_font((FONT, 13))
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .position(position)
        .draw()
        .map_err(plot_err)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mean_curve_stops_at_the_shortest_run() {
        let runs = vec![
            vec![(1.0, 2.0), (2.0, 4.0), (3.0, 9.0)],
            vec![(1.0, 4.0), (2.0, 8.0)],
        ];
        assert_eq!(mean_curve(&runs), vec![(1.0, 3.0), (2.0, 6.0)]);
    }
}
