//! A group's chart: a horizontal bar per implementation with its spread as a
//! whisker, ours highlighted, the floor a dashed line. Drawn by plotters'
//! SVG backend (text stays SVG text: no font files needed).

use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use super::report::{Group, human, is_floor, is_ours};

const OURS: RGBColor = RGBColor(0x1f, 0x6f, 0xd1);
const OTHERS: RGBColor = RGBColor(0xa0, 0xa7, 0xb0);
const FLOOR: RGBColor = RGBColor(0x2c, 0xa0, 0x2c);

/// The SVG of `group`'s chart.
pub(crate) fn svg(group: &Group<'_>) -> Result<String, String> {
    let bars: Vec<_> = group
        .rows
        .iter()
        .copied()
        .filter(|m| !is_floor(&m.implementation))
        .collect();
    let unit = group.rows.first().map_or("", |m| m.unit.as_str());
    let higher = group.rows.first().is_some_and(|m| !m.lower_is_better());
    let x_max = group
        .rows
        .iter()
        .map(|m| m.range().1.max(m.value))
        .fold(0.0_f64, f64::max)
        .max(f64::MIN_POSITIVE)
        * 1.25;
    let n = bars.len().max(1);
    let height = 80 + 30 * n as u32;
    let mut out = String::new();
    {
        let root = SVGBackend::with_string(&mut out, (760, height)).into_drawing_area();
        root.fill(&WHITE).map_err(|e| e.to_string())?;
        let caption = format!(
            "{} ({} is better)",
            group.name,
            if higher { "higher" } else { "lower" }
        );
        let mut chart = ChartBuilder::on(&root)
            .caption(caption, ("sans-serif", 16))
            .margin(8)
            .x_label_area_size(40)
            .y_label_area_size(150)
            .build_cartesian_2d(0.0..x_max, (0..n - 1).into_segmented())
            .map_err(|e| e.to_string())?;
        // The best at the top: row i from the top is segment n - 1 - i.
        let names: Vec<String> = bars
            .iter()
            .rev()
            .map(|m| m.implementation.clone())
            .collect();
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
            .x_desc(match group.floor {
                Some(f) => format!(
                    "dashed line: {} {}",
                    f.implementation,
                    human(f.value, &f.unit)
                ),
                None => String::new(),
            })
            .x_label_formatter(&|x| human(*x, unit))
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
            } else {
                OTHERS
            };
            chart
                .draw_series(std::iter::once(Rectangle::new(
                    [(0.0, SegmentValue::Exact(i)), (m.value, top(i))],
                    color.filled(),
                )))
                .map_err(|e| e.to_string())?;
            let (lo, hi) = m.range();
            if hi > lo {
                chart
                    .draw_series(std::iter::once(PathElement::new(
                        vec![
                            (lo, SegmentValue::CenterOf(i)),
                            (hi, SegmentValue::CenterOf(i)),
                        ],
                        BLACK.stroke_width(2),
                    )))
                    .map_err(|e| e.to_string())?;
            }
            let label = Pos::new(HPos::Left, VPos::Center);
            chart
                .draw_series(std::iter::once(Text::new(
                    format!(" {}", human(m.value, &m.unit)),
                    (hi.max(m.value), SegmentValue::CenterOf(i)),
                    ("sans-serif", 12).into_font().color(&BLACK).pos(label),
                )))
                .map_err(|e| e.to_string())?;
        }
        if let Some(floor) = group.floor {
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
        root.present().map_err(|e| e.to_string())?;
    }
    Ok(out)
}
