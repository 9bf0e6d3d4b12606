//! A rule's series as an SVG line plot (plotters' SVG backend, which writes text as SVG
//! `<text>`, so no font library is involved): new pods in orange, old pods in blue, p90 dashed,
//! a threshold as a grey dashed line, and the decision moments as purple vertical lines with
//! their labels. Time runs along x in UTC. Under it, when the records say, a grey lane with
//! the rollout's progress: the new pods available, % of the replicas asked for.

use plotters::coord::types::RangedCoordf64;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use super::model::Mark;
use super::series::{Line, SeriesSet, Side};
use super::{hms, num};
use crate::analysis::source::unix_seconds;
use crate::analysis::time;

/// The size of every plot, in CSS pixels (without the progress lane).
pub const SIZE: (u32, u32) = (720, 280);
/// The height of the progress lane under a plot.
pub const LANE: u32 = 90;
/// The progress lane's colour (`#8c8c8c`): not a series colour.
pub const PROGRESS: RGBColor = RGBColor(0x8c, 0x8c, 0x8c);
/// The new pods' colour (`#e6550d`).
pub const NEW: RGBColor = RGBColor(0xe6, 0x55, 0x0d);
/// The old pods' colour (`#1f6fb4`).
pub const OLD: RGBColor = RGBColor(0x1f, 0x6f, 0xb4);
/// Decision moments (`#7b2d8e`).
pub const MARK: RGBColor = RGBColor(0x7b, 0x2d, 0x8e);
const THRESHOLD: RGBColor = RGBColor(0x55, 0x55, 0x55);
const GRID: RGBColor = RGBColor(0xe4, 0xe4, 0xe4);

/// The plot of `set`, with `marks`, as an `<svg>` element.
pub fn svg(set: &SeriesSet, marks: &[Mark]) -> Result<String, String> {
    let mut out = String::new();
    draw(set, marks, &mut out).map_err(|e| format!("cannot draw the plot: {e}"))?;
    Ok(out)
}

/// The chart every plot draws on: time (Unix seconds) along x, the rule's unit along y.
type Chart<'a, 'b> = ChartContext<'a, SVGBackend<'b>, Cartesian2d<RangedCoordf64, RangedCoordf64>>;

/// Where a plot's data sit: the evaluations' times, the first one with numbers, the marks on
/// the plotted span, and the axes' ranges.
struct Frame<'m> {
    /// The evaluations' times, in Unix seconds.
    times: Vec<f64>,
    /// The first evaluation with a number in any line.
    first: usize,
    /// The decision moments on the plotted span, with their labels.
    marks: Vec<(f64, &'m str)>,
    x0: f64,
    x1: f64,
    /// The top of the y axis.
    y1: f64,
}

/// The frame of the plot of `set` with `marks`; an error when there is nothing to plot.
fn frame<'m>(set: &SeriesSet, marks: &'m [Mark]) -> Result<Frame<'m>, Box<dyn std::error::Error>> {
    let times: Vec<f64> = set.times.iter().map(|t| unix_seconds(*t)).collect();
    // From the evaluation before the rule's first numbers (a rule without data for most of a
    // rollout would otherwise be squeezed into its last few pixels) to the last evaluation or
    // decision moment.
    let first = (0..times.len())
        .find(|i| set.lines.iter().any(|l| l.values[*i].is_some()))
        .ok_or("nothing to plot")?;
    let from = times[first.saturating_sub(1)];
    let marks: Vec<(f64, &str)> = marks
        .iter()
        .map(|m| (unix_seconds(m.at), m.label.as_str()))
        .filter(|m| m.0 >= from)
        .collect();
    let (mut x0, mut x1) = times[first.saturating_sub(1)..]
        .iter()
        .chain(marks.iter().map(|m| &m.0))
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), t| {
            (a.min(*t), b.max(*t))
        });
    if !x0.is_finite() {
        return Err("nothing to plot".into());
    }
    // Room on both sides; a single evaluation gets a minute around it.
    let pad = ((x1 - x0) * 0.04).max(if x1 > x0 { 1.0 } else { 30.0 });
    x0 -= pad;
    x1 += pad;
    let top = set.max().filter(|m| *m > 0.0).unwrap_or(1.0);
    // Head room for the legend (a line per series) and the marks' labels, above the data.
    let entries = set.lines.len() + usize::from(set.threshold.is_some());
    let reserved = (0.08 * entries as f64 + 0.1).max(0.3);
    let y1 = top / (1.0 - reserved);
    Ok(Frame {
        times,
        first,
        marks,
        x0,
        x1,
        y1,
    })
}

/// Draws the plot of `set` with `marks` into `out`.
fn draw(
    set: &SeriesSet,
    marks: &[Mark],
    out: &mut String,
) -> Result<(), Box<dyn std::error::Error>> {
    let frame = frame(set, marks)?;
    let (x0, x1, y1) = (frame.x0, frame.x1, frame.y1);
    let lane = if set.progress.is_empty() { 0 } else { LANE };
    let root = SVGBackend::with_string(out, (SIZE.0, SIZE.1 + lane)).into_drawing_area();
    root.fill(&WHITE)?;
    let (upper, lower) = root.split_vertically(SIZE.1);
    let mut chart = ChartBuilder::on(&upper)
        .margin(10)
        .margin_right(20)
        .x_label_area_size(42)
        .y_label_area_size(70)
        // A little below zero, so that a series at zero is not hidden by the axis.
        .build_cartesian_2d(x0..x1, -0.03 * y1..y1)?;
    draw_mesh(&mut chart, &set.y_label)?;
    if let Some(t) = set.threshold {
        draw_threshold(&mut chart, &frame, t)?;
    }
    // The decision moments first, so that the data are drawn over them: a decision at the
    // first failure has the new pods' one point right on its mark.
    draw_marks(&mut chart, &frame)?;
    for line in &set.lines {
        draw_line(&mut chart, &frame, line)?;
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperLeft)
        .label_font(("sans-serif", 15))
        .background_style(WHITE.mix(0.85))
        .border_style(GRID)
        .draw()?;
    if !set.progress.is_empty() {
        draw_progress(&lower, &set.progress, x0..x1)?;
    }
    root.present()?;
    Ok(())
}

/// The axes, their labels (time in UTC along x, `y_label` along y) and the grid.
fn draw_mesh(chart: &mut Chart<'_, '_>, y_label: &str) -> Result<(), Box<dyn std::error::Error>> {
    let time_label = |t: &f64| {
        jiff::Timestamp::from_millisecond(time::from_seconds(*t))
            .map(hms)
            .unwrap_or_default()
    };
    let value_label = |v: &f64| if *v < 0.0 { String::new() } else { num(*v) };
    chart
        .configure_mesh()
        .x_labels(6)
        .y_labels(6)
        .x_label_formatter(&time_label)
        .y_label_formatter(&value_label)
        .x_desc("time (UTC)")
        .y_desc(y_label)
        .max_light_lines(0)
        .bold_line_style(GRID)
        .label_style(("sans-serif", 16))
        .axis_desc_style(("sans-serif", 16))
        .draw()?;
    Ok(())
}

/// A fixed threshold `t` as a grey dashed line across the plot, with its legend entry.
fn draw_threshold(
    chart: &mut Chart<'_, '_>,
    frame: &Frame<'_>,
    t: f64,
) -> Result<(), Box<dyn std::error::Error>> {
    let style = THRESHOLD.stroke_width(2);
    chart
        .draw_series(DashedLineSeries::new(
            [(frame.x0, t), (frame.x1, t)],
            8,
            5,
            style,
        ))?
        .label(format!("threshold {}", num(t)))
        .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], style));
    Ok(())
}

/// The decision moments as vertical lines with their labels.
fn draw_marks(
    chart: &mut Chart<'_, '_>,
    frame: &Frame<'_>,
) -> Result<(), Box<dyn std::error::Error>> {
    let (x0, x1, y1) = (frame.x0, frame.x1, frame.y1);
    let label_font = ("sans-serif", 15).into_font().color(&MARK);
    for (i, (t, label)) in frame.marks.iter().enumerate() {
        chart.draw_series(std::iter::once(PathElement::new(
            vec![(*t, -0.03 * y1), (*t, y1)],
            MARK.stroke_width(2),
        )))?;
        // Labels step down so that close marks stay readable; right of the line unless the
        // line is in the right half.
        let y = y1 * (0.97 - 0.07 * (i % 3) as f64);
        let right_half = *t > (x0 + x1) / 2.0;
        let pos = if right_half {
            Pos::new(HPos::Right, VPos::Top)
        } else {
            Pos::new(HPos::Left, VPos::Top)
        };
        let dx = (x1 - x0) * if right_half { -0.006 } else { 0.006 };
        chart.draw_series(std::iter::once(Text::new(
            label.to_string(),
            (*t + dx, y),
            label_font.clone().pos(pos),
        )))?;
    }
    Ok(())
}

/// One line of the plot: its segments between gaps, its legend entry on the first segment, and
/// markers on its points unless it is dashed. Nothing when it has no number.
fn draw_line(
    chart: &mut Chart<'_, '_>,
    frame: &Frame<'_>,
    line: &Line,
) -> Result<(), Box<dyn std::error::Error>> {
    let colour = match line.side {
        Side::New => NEW,
        Side::Old => OLD,
    };
    let style = colour.stroke_width(if line.dashed { 2 } else { 3 });
    let points: Vec<Option<(f64, f64)>> = frame
        .times
        .iter()
        .zip(&line.values)
        .skip(frame.first)
        .map(|(t, v)| v.map(|v| (*t, v)))
        .collect();
    if points.iter().all(Option::is_none) {
        return Ok(());
    }
    // Gaps (evaluations without the number) break the line.
    let segments: Vec<Vec<(f64, f64)>> = points
        .split(Option::is_none)
        .filter(|s| !s.is_empty())
        .map(|s| s.iter().flatten().copied().collect())
        .collect();
    // A series of a few points (a rollback on the first failure) gets larger markers:
    // one point must not hide behind the axes or a mark.
    let few = points.iter().flatten().count() <= 3;
    let radius = if few { 6 } else { 4 };
    let mut labelled = false;
    for segment in segments {
        let drawn = if line.dashed {
            chart.draw_series(DashedLineSeries::new(segment.clone(), 7, 4, style))?
        } else {
            chart.draw_series(LineSeries::new(segment.clone(), style))?
        };
        if !labelled {
            labelled = true;
            let dashed = line.dashed;
            drawn.label(line.label.as_str()).legend(move |(x, y)| {
                if dashed {
                    PathElement::new(vec![(x, y), (x + 7, y)], style)
                } else {
                    PathElement::new(vec![(x, y), (x + 18, y)], style)
                }
            });
        }
        if !line.dashed {
            chart.draw_series(
                segment
                    .into_iter()
                    .map(|p| Circle::new(p, radius, colour.filled())),
            )?;
        }
    }
    Ok(())
}

/// The rollout's progress as a step area from 0 to 100%, on the plot's time axis.
fn draw_progress<DB: DrawingBackend>(
    area: &DrawingArea<DB, plotters::coord::Shift>,
    progress: &[(jiff::Timestamp, f64)],
    x: std::ops::Range<f64>,
) -> Result<(), Box<dyn std::error::Error>>
where
    DB::ErrorType: 'static,
{
    let (x0, x1) = (x.start, x.end);
    let mut chart = ChartBuilder::on(area)
        .margin(10)
        .margin_top(0)
        .margin_right(20)
        .x_label_area_size(0)
        .y_label_area_size(70)
        .build_cartesian_2d(x0..x1, 0.0..105.0)?;
    chart
        .configure_mesh()
        .disable_x_mesh()
        .x_labels(0)
        .y_labels(3)
        .y_label_formatter(&|v: &f64| format!("{v:.0}"))
        .y_desc("new pods, %")
        .max_light_lines(0)
        .bold_line_style(GRID)
        .label_style(("sans-serif", 14))
        .axis_desc_style(("sans-serif", 14))
        .draw()?;
    // Each evaluation's share holds until the next one.
    let mut points: Vec<(f64, f64)> = Vec::with_capacity(2 * progress.len());
    for (i, (t, p)) in progress.iter().enumerate() {
        let t = unix_seconds(*t).clamp(x0, x1);
        let p = p.clamp(0.0, 100.0);
        if let Some(&(_, before)) = points.last() {
            points.push((t, before));
        }
        points.push((t, p));
        if i + 1 == progress.len() {
            points.push((x1, p));
        }
    }
    chart.draw_series(
        AreaSeries::new(points, 0.0, PROGRESS.mix(0.35)).border_style(PROGRESS.stroke_width(2)),
    )?;
    Ok(())
}
