//! `equity.svg` of `trader compare` (plotters, SVG backend): both equity
//! curves and buy-and-hold on one chart, their drawdowns below. Text is set
//! in DejaVu Sans, shipped in `assets/` (its licence beside it), because the
//! SVG backend measures text with a registered font.

use std::path::Path;

use anyhow::{Context, anyhow};
use plotters::prelude::*;
use plotters::style::{FontStyle, register_font};

const FONT: &[u8] = include_bytes!("../assets/DejaVuSans.ttf");

/// One curve: its name and its values per hour.
pub(crate) struct Curve<'a> {
    pub(crate) name: &'a str,
    pub(crate) values: &'a [f64],
}

fn drawdowns(values: &[f64]) -> Vec<f64> {
    let mut peak = f64::MIN;
    values
        .iter()
        .map(|v| {
            peak = peak.max(*v);
            if peak > 0.0 {
                (v / peak - 1.0) * 100.0
            } else {
                0.0
            }
        })
        .collect()
}

/// Writes the chart to `path`; `first_hour` labels the x axis.
pub(crate) fn equity_svg(
    path: &Path,
    first_hour: &str,
    curves: &[Curve<'_>],
) -> anyhow::Result<()> {
    // Registering twice is harmless; failing means the font bytes are bad.
    register_font("sans-serif", FontStyle::Normal, FONT)
        .map_err(|_| anyhow!("the shipped font is unreadable"))?;
    let err = |e: &dyn std::fmt::Display| anyhow!("drawing {}: {e}", path.display());
    let root = SVGBackend::new(path, (1000, 700)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| err(&e))?;
    let (top, bottom) = root.split_vertically(470);
    let n = curves
        .iter()
        .map(|c| c.values.len())
        .max()
        .unwrap_or(1)
        .max(2);
    let (lo, hi) = curves
        .iter()
        .flat_map(|c| c.values.iter().copied())
        .fold((f64::MAX, f64::MIN), |(lo, hi), v| (lo.min(v), hi.max(v)));
    let pad = ((hi - lo) * 0.05).max(1.0);
    let colors = [
        RGBColor(31, 119, 180),
        RGBColor(214, 39, 40),
        RGBColor(120, 120, 120),
    ];
    let mut chart = ChartBuilder::on(&top)
        .caption("Equity (USD)", ("sans-serif", 20))
        .margin(12)
        .x_label_area_size(30)
        .y_label_area_size(80)
        .build_cartesian_2d(0..n, (lo - pad)..(hi + pad))
        .map_err(|e| err(&e))?;
    chart
        .configure_mesh()
        .x_desc(format!("hours since {first_hour}"))
        .draw()
        .map_err(|e| err(&e))?;
    for (c, color) in curves.iter().zip(colors) {
        chart
            .draw_series(LineSeries::new(
                c.values.iter().copied().enumerate(),
                color.stroke_width(2),
            ))
            .map_err(|e| err(&e))?
            .label(c.name)
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2))
            });
    }
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .draw()
        .map_err(|e| err(&e))?;
    let dds: Vec<Vec<f64>> = curves.iter().map(|c| drawdowns(c.values)).collect();
    let worst = dds.iter().flatten().copied().fold(0.0, f64::min).min(-1.0);
    let mut dd_chart = ChartBuilder::on(&bottom)
        .caption("Drawdown (%)", ("sans-serif", 18))
        .margin(12)
        .x_label_area_size(30)
        .y_label_area_size(80)
        .build_cartesian_2d(0..n, (worst * 1.05)..0.0)
        .map_err(|e| err(&e))?;
    dd_chart.configure_mesh().draw().map_err(|e| err(&e))?;
    for (dd, color) in dds.iter().zip(colors) {
        dd_chart
            .draw_series(LineSeries::new(
                dd.iter().copied().enumerate(),
                color.stroke_width(1),
            ))
            .map_err(|e| err(&e))?;
    }
    root.present().context("writing the SVG")?;
    Ok(())
}
