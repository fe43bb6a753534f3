//! A group's chart: a horizontal bar per implementation with its spread as a
//! whisker, ours highlighted, the floor a dashed line. Drawn by plotters'
//! SVG backend (text stays SVG text: no font files needed). A group whose
//! figures span more than 20x is drawn on a log scale, so that the bars that
//! matter are not slivers beside a slow baseline.

use plotters::coord::Shift;
use plotters::prelude::*;

use super::data::Measurement;
use super::report::{Group, human, is_floor, is_ours};

const OURS: RGBColor = RGBColor(0x1f, 0x6f, 0xd1);
const OTHERS: RGBColor = RGBColor(0xa0, 0xa7, 0xb0);
const FLOOR: RGBColor = RGBColor(0x2c, 0xa0, 0x2c);

/// The SVG of `group`'s chart.
pub(crate) fn svg(group: &Group<'_>) -> Result<String, String> {
    let floor = group.floor;
    // One unit per chart: the headline's (a group never mixes units today;
    // a row in another unit would be drawn on the wrong scale).
    let unit = group
        .ours
        .or(group.rows.first().copied())
        .map_or("", |m| m.unit.as_str());
    let bars: Vec<&Measurement> = group
        .rows
        .iter()
        .copied()
        .filter(|m| m.unit == unit && !floor.is_some_and(|f| std::ptr::eq(f, *m)))
        .collect();
    let higher = bars.first().is_some_and(|m| !m.lower_is_better());
    // The positive extremes of `values` of the rows in this unit.
    let extremes = |values: &dyn Fn(&Measurement) -> [f64; 3]| {
        group
            .rows
            .iter()
            .filter(|m| m.unit == unit)
            .flat_map(|m| values(m))
            .filter(|v| *v > 0.0)
            .fold((f64::MAX, 0.0_f64), |(lo, hi), v| (lo.min(v), hi.max(v)))
    };
    // The scale covers the spreads; it is log when the figures themselves
    // span more than 20x.
    let (min, max) = extremes(&|m| [m.value, m.range().0, m.range().1]);
    let (vmin, vmax) = extremes(&|m| [m.value; 3]);
    let log = vmax > 0.0 && vmin < f64::MAX && vmax / vmin > 20.0;
    let n = bars.len().max(1);
    let height = 90 + 30 * n as u32;
    let mut out = String::new();
    {
        let root = SVGBackend::with_string(&mut out, (760, height)).into_drawing_area();
        root.fill(&WHITE).map_err(|e| e.to_string())?;
        let caption = format!(
            "{} ({} is better{})",
            group.name,
            if higher { "higher" } else { "lower" },
            if log { ", log scale" } else { "" }
        );
        // Each bar's name and value, best at the top (row i from the top is
        // segment n - 1 - i).
        let names: Vec<String> = bars
            .iter()
            .rev()
            .map(|m| format!("{} {}", m.implementation, human(m.value, &m.unit)))
            .collect();
        let x_desc = match floor {
            Some(f) => format!(
                "dashed line: {} {}",
                f.implementation,
                human(f.value, &f.unit)
            ),
            None => String::new(),
        };
        let parts = Parts {
            caption,
            names,
            x_desc,
            unit,
            bars,
            floor,
        };
        if log {
            let range = (min / 2.0)..(max * 2.0);
            draw(&root, &parts, range.clone().log_scale(), range.start)?;
        } else {
            draw(&root, &parts, 0.0..max.max(f64::MIN_POSITIVE) * 1.15, 0.0)?;
        }
        root.present().map_err(|e| e.to_string())?;
    }
    Ok(out)
}

/// What a chart shows, whatever its scale.
struct Parts<'a> {
    caption: String,
    /// Each bar's name and value, from the bottom row up.
    names: Vec<String>,
    x_desc: String,
    unit: &'a str,
    /// Best first.
    bars: Vec<&'a Measurement>,
    floor: Option<&'a Measurement>,
}

/// Draws `parts` on the x scale `x`, bars starting at `base`.
fn draw<X>(
    root: &DrawingArea<SVGBackend<'_>, Shift>,
    parts: &Parts<'_>,
    x: X,
    base: f64,
) -> Result<(), String>
where
    X: plotters::coord::ranged1d::AsRangedCoord<Value = f64>,
    X::CoordDescType: plotters::coord::ranged1d::ValueFormatter<f64>,
{
    let Parts {
        caption,
        names,
        x_desc,
        unit,
        bars,
        floor,
    } = parts;
    let n = bars.len().max(1);
    let mut chart = ChartBuilder::on(root)
        .caption(caption, ("sans-serif", 16))
        .margin(8)
        .margin_right(36)
        .x_label_area_size(40)
        .y_label_area_size(210)
        .build_cartesian_2d(x, (0..n - 1).into_segmented())
        .map_err(|e| e.to_string())?;
    chart
        .configure_mesh()
        .disable_y_mesh()
        .light_line_style(TRANSPARENT)
        .y_labels(n)
        .y_label_formatter(&|y| match y {
            SegmentValue::CenterOf(i) => names.get(*i).cloned().unwrap_or_default(),
            _ => String::new(),
        })
        .x_labels(6)
        .x_label_formatter(&|x| human(*x, unit))
        .x_desc(x_desc)
        .label_style(("sans-serif", 12))
        .draw()
        .map_err(|e| e.to_string())?;
    let top = |i: usize| {
        if i + 1 < n {
            SegmentValue::Exact(i + 1)
        } else {
            SegmentValue::Last
        }
    };
    for (rank, m) in bars.iter().enumerate() {
        let i = n - 1 - rank;
        let color = if is_ours(&m.implementation) {
            OURS
        } else if is_floor(&m.implementation) {
            FLOOR
        } else {
            OTHERS
        };
        let mut bar = Rectangle::new(
            [(base, SegmentValue::Exact(i)), (m.value, top(i))],
            color.filled(),
        );
        bar.set_margin(4, 4, 0, 0);
        chart
            .draw_series(std::iter::once(bar))
            .map_err(|e| e.to_string())?;
        let (lo, hi) = m.range();
        if hi > lo {
            chart
                .draw_series(std::iter::once(PathElement::new(
                    vec![
                        (lo.max(base), SegmentValue::CenterOf(i)),
                        (hi, SegmentValue::CenterOf(i)),
                    ],
                    BLACK.stroke_width(2),
                )))
                .map_err(|e| e.to_string())?;
        }
    }
    if let Some(floor) = floor {
        chart
            .draw_series(DashedLineSeries::new(
                vec![
                    (floor.value, SegmentValue::Exact(0)),
                    (floor.value, SegmentValue::Last),
                ],
                6,
                4,
                FLOOR.stroke_width(2),
            ))
            .map_err(|e| e.to_string())?;
    }
    Ok(())
}
