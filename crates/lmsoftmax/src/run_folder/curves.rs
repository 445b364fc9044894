//! The official per-run figure (`--pdf-filename`, `train_epochs.pdf` in `cifar_train.py`; PNG
//! here): four panels over the epochs, as `utils/train.py` draws them: the learning rate (log
//! axis, 1e-6 to 1), the loss (0 to 10), the top-1 and the top-5 error (0 to 100 %), training and
//! test each.

use std::path::Path;

use anyhow::Result;
use plotters::prelude::*;

use super::metrics::EpochRow;
use crate::plot::{BLUE, FONT, RED, Series, panel, plot_err, save_png};

/// Size of the figure: two rows of two panels.
pub const SIZE: (u32, u32) = (1200, 900);

/// Draws the figure of `rows` into `path` (PNG).
///
/// # Errors
/// The figure cannot be drawn or written.
///
/// ```
/// use lmsoftmax::run_folder::{curves::run_curves, metrics::EpochRow};
/// let dir = tempfile::tempdir()?;
/// let rows = [EpochRow { epoch: 1, lr: 0.1, ..EpochRow::default() }];
/// run_curves(&rows, "layer13", &dir.path().join("train_epochs.png"))?;
/// # Ok::<(), anyhow::Error>(())
/// ```
pub fn run_curves(rows: &[EpochRow], config: &str, path: &Path) -> Result<()> {
    let line = |label: &str, colour: RGBColor, value: fn(&EpochRow) -> f64| Series {
        label: label.into(),
        colour,
        runs: vec![rows.iter().map(|e| (e.epoch as f64, value(e))).collect()],
    };
    save_png(path, SIZE, |root| {
        let areas = root.split_evenly((2, 2));
        lr_panel(&areas[0], config, rows)?;
        panel(
            &areas[1],
            &format!("{config}: loss"),
            "loss",
            &[
                line("train", BLUE, |e| e.train_loss),
                line("test", RED, |e| e.test_loss),
            ],
            Some((0.0, 10.0)),
        )?;
        panel(
            &areas[2],
            &format!("{config}: top-1 error"),
            "error (%)",
            &[
                line("train", BLUE, |e| e.train_top1_err),
                line("test", RED, |e| e.test_top1_err),
            ],
            Some((0.0, 100.0)),
        )?;
        panel(
            &areas[3],
            &format!("{config}: top-5 error"),
            "error (%)",
            &[
                line("train", BLUE, |e| e.train_top5_err),
                line("test", RED, |e| e.test_top5_err),
            ],
            Some((0.0, 100.0)),
        )
    })
}

/// The learning rate per epoch on a log axis from 1e-6 to 1.
fn lr_panel(
    area: &DrawingArea<BitMapBackend, plotters::coord::Shift>,
    config: &str,
    rows: &[EpochRow],
) -> Result<()> {
    let x_max = rows.last().map_or(2.0, |r| r.epoch as f64).max(2.0);
    let mut chart = ChartBuilder::on(area)
        .caption(format!("{config}: learning rate"), (FONT, 20))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(60)
        .build_cartesian_2d(1f64..x_max, (1e-6f64..1f64).log_scale())
        .map_err(plot_err)?;
    chart
        .configure_mesh()
        .x_desc("epoch")
        .y_desc("lr")
        .y_label_formatter(&|v| format!("{v:.0e}"))
        .label_style((FONT, 13))
        .draw()
        .map_err(plot_err)?;
    let points: Vec<(f64, f64)> = rows
        .iter()
        .map(|r| (r.epoch as f64, r.lr.clamp(1e-6, 1.0)))
        .collect();
    chart
        .draw_series(LineSeries::new(points, BLUE.stroke_width(2)))
        .map_err(plot_err)?
        .label("lr")
        .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], BLUE.stroke_width(2)));
    chart
        .configure_series_labels()
        .label_font((FONT, 13))
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .position(SeriesLabelPosition::UpperRight)
        .draw()
        .map_err(plot_err)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_figure_has_four_panels_with_both_series() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("curves.png");
        let row = |epoch: usize, err: f64| EpochRow {
            epoch,
            lr: 0.1 / epoch as f64,
            train_loss: 2.0 / epoch as f64,
            train_ce: 2.0 / epoch as f64,
            train_top1_err: err + 5.0,
            train_top5_err: err / 3.0,
            test_loss: 2.5 / epoch as f64,
            test_top1_err: err,
            test_top5_err: err / 4.0,
            ..EpochRow::default()
        };
        run_curves(
            &[row(1, 50.0), row(2, 30.0), row(3, 25.0)],
            "layer13",
            &path,
        )
        .unwrap();
        let img = image::open(&path).unwrap().to_rgb8();
        assert_eq!(img.dimensions(), SIZE);
        // each quadrant has ink of its own, and the train/test colours are drawn in the three
        // train-vs-test panels
        let (w, h) = (SIZE.0 / 2, SIZE.1 / 2);
        for (qx, qy) in [(0, 0), (1, 0), (0, 1), (1, 1)] {
            let mut blue = 0;
            let mut red = 0;
            for y in qy * h..(qy + 1) * h {
                for x in qx * w..(qx + 1) * w {
                    match img.get_pixel(x, y).0 {
                        [31, 119, 180] => blue += 1,
                        [214, 39, 40] => red += 1,
                        _ => {}
                    }
                }
            }
            assert!(blue > 50, "quadrant {qx},{qy}: {blue} blue pixels");
            if (qx, qy) != (0, 0) {
                assert!(red > 50, "quadrant {qx},{qy}: {red} red pixels");
            }
        }
    }
}
