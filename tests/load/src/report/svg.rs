//! The picture of a run: throughput, latency percentiles and path share over time, with the
//! phases and actions marked, as one SVG.

use super::Report;
use crate::stats::timeline::Bucket;
use plotters::coord::Shift;
use plotters::prelude::*;

const WIDTH: u32 = 1100;
const PANEL: u32 = 300;

const OK: RGBColor = RGBColor(46, 139, 87);
const FAILED: RGBColor = RGBColor(200, 40, 40);
const SENT: RGBColor = RGBColor(120, 120, 120);
const ACTION: RGBColor = RGBColor(220, 90, 0);
const PHASE: RGBColor = RGBColor(110, 110, 150);
const GRID: RGBColor = RGBColor(235, 235, 235);
const PATHS: [RGBColor; 4] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(148, 103, 189),
    RGBColor(127, 127, 127),
];
const PATH_NAMES: [&str; 4] = ["sync", "queue", "async", "unmarked"];

type Area<'a> = DrawingArea<SVGBackend<'a>, Shift>;

/// Reads one value of a timeline bucket.
type Pick<T> = fn(&Bucket) -> T;

/// Renders the picture as SVG text.
pub fn render(r: &Report) -> Result<String, String> {
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (WIDTH, PANEL * 3 + 40)).into_drawing_area();
        root.fill(&WHITE).map_err(|e| e.to_string())?;
        let (title, body) = root.split_vertically(40);
        title
            .draw_text(
                &format!(
                    "{} against {}: {} issued, {} ok, {} lost, {} mismatched",
                    r.scenario,
                    r.target,
                    r.totals.counts.issued,
                    r.totals.counts.ok,
                    r.totals.counts.lost_total(),
                    r.totals.counts.mismatched_total()
                ),
                &("sans-serif", 18).into_font().color(&BLACK),
                (12, 12),
            )
            .map_err(|e| e.to_string())?;
        let panels = body.split_evenly((3, 1));
        throughput(&panels[0], r).map_err(|e| e.to_string())?;
        latency(&panels[1], r).map_err(|e| e.to_string())?;
        path_share(&panels[2], r).map_err(|e| e.to_string())?;
        root.present().map_err(|e| e.to_string())?;
    }
    Ok(svg)
}

type DrawResult = Result<(), Box<dyn std::error::Error>>;

fn t_max(r: &Report) -> f64 {
    let end = r.timeline.last().map_or(0.0, |b| b.t + r.bucket_s);
    end.max(r.duration_s).max(1.0)
}

/// Per-second rate of a bucket count.
fn per_s(r: &Report, n: u64) -> f64 {
    n as f64 / r.bucket_s
}

fn throughput(area: &Area<'_>, r: &Report) -> DrawResult {
    let peak = r
        .timeline
        .iter()
        .map(|b| per_s(r, b.sent.max(b.ok + b.failed)))
        .fold(1.0, f64::max);
    let mut chart = ChartBuilder::on(area)
        .caption(
            "requests per second (sent by due time, completed by completion time)",
            ("sans-serif", 15),
        )
        .margin(8)
        .x_label_area_size(28)
        .y_label_area_size(60)
        .build_cartesian_2d(0.0..t_max(r), 0.0..peak * 1.1)?;
    chart
        .configure_mesh()
        .light_line_style(GRID)
        .max_light_lines(3)
        .x_desc("s")
        .y_desc("req/s")
        .draw()?;
    let mid = |b: &Bucket| b.t + r.bucket_s / 2.0;
    let series: [(&str, RGBColor, Pick<u64>); 3] = [
        ("sent", SENT, |b| b.sent),
        ("ok", OK, |b| b.ok),
        ("failed", FAILED, |b| b.failed),
    ];
    for (name, color, value) in series {
        let points: Vec<(f64, f64)> = r
            .timeline
            .iter()
            .map(|b| (mid(b), per_s(r, value(b))))
            .collect();
        chart
            .draw_series(LineSeries::new(points, color.stroke_width(2)))?
            .label(name)
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 18, y)], color.stroke_width(2))
            });
    }
    marks(&mut chart, r, peak * 1.1)?;
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .position(SeriesLabelPosition::UpperRight)
        .draw()?;
    Ok(())
}

fn latency(area: &Area<'_>, r: &Report) -> DrawResult {
    // The axis starts a decade below the fastest median, so the interesting range fills it.
    let fastest = r
        .timeline
        .iter()
        .filter(|b| b.ok > 0 && b.p50_ms > 0.0)
        .map(|b| b.p50_ms)
        .fold(f64::INFINITY, f64::min);
    let floor = if fastest.is_finite() {
        10f64.powf(fastest.log10().floor() - 1.0).max(0.001)
    } else {
        0.01
    };
    let peak = r
        .timeline
        .iter()
        .map(|b| b.max_ms)
        .fold(floor * 10.0, f64::max);
    let mut chart = ChartBuilder::on(area)
        .caption("latency of ok answers, ms (log scale)", ("sans-serif", 15))
        .margin(8)
        .x_label_area_size(28)
        .y_label_area_size(60)
        .build_cartesian_2d(0.0..t_max(r), (floor..peak * 2.0).log_scale())?;
    chart
        .configure_mesh()
        .light_line_style(GRID)
        .max_light_lines(3)
        .x_desc("s")
        .y_desc("ms")
        .draw()?;
    let series: [(&str, RGBColor, Pick<f64>); 3] = [
        ("p50", OK, |b| b.p50_ms),
        ("p99", PATHS[1], |b| b.p99_ms),
        ("max", FAILED, |b| b.max_ms),
    ];
    for (name, color, value) in series {
        // Buckets without ok answers have no latency; leave gaps rather than draw zeros.
        let points: Vec<(f64, f64)> = r
            .timeline
            .iter()
            .filter(|b| b.ok > 0)
            .map(|b| (b.t + r.bucket_s / 2.0, value(b).max(floor)))
            .collect();
        chart
            .draw_series(LineSeries::new(points, color.stroke_width(2)))?
            .label(name)
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 18, y)], color.stroke_width(2))
            });
    }
    for a in &r.actions {
        chart.draw_series(std::iter::once(PathElement::new(
            vec![(a.started_s, floor), (a.started_s, peak * 2.0)],
            ACTION.stroke_width(1),
        )))?;
    }
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .position(SeriesLabelPosition::UpperRight)
        .draw()?;
    Ok(())
}

fn path_share(area: &Area<'_>, r: &Report) -> DrawResult {
    let mut chart = ChartBuilder::on(area)
        .caption("share of answered requests by path, %", ("sans-serif", 15))
        .margin(8)
        .x_label_area_size(28)
        .y_label_area_size(60)
        .build_cartesian_2d(0.0..t_max(r), 0.0..105.0)?;
    chart
        .configure_mesh()
        .light_line_style(GRID)
        .max_light_lines(3)
        .x_desc("s")
        .y_desc("%")
        .draw()?;
    for (i, name) in PATH_NAMES.iter().enumerate() {
        let total: u64 = r.timeline.iter().map(|b| b.paths[i]).sum();
        if total == 0 {
            continue;
        }
        let points: Vec<(f64, f64)> = r
            .timeline
            .iter()
            .filter(|b| b.paths.iter().sum::<u64>() > 0)
            .map(|b| {
                let answered: u64 = b.paths.iter().sum();
                (
                    b.t + r.bucket_s / 2.0,
                    b.paths[i] as f64 * 100.0 / answered as f64,
                )
            })
            .collect();
        let color = PATHS[i];
        chart
            .draw_series(LineSeries::new(points, color.stroke_width(2)))?
            .label(*name)
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 18, y)], color.stroke_width(2))
            });
    }
    marks(&mut chart, r, 105.0)?;
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .position(SeriesLabelPosition::UpperRight)
        .draw()?;
    Ok(())
}

/// Phase boundaries (grey, named) and actions (orange, named) as vertical lines.
fn marks<'a>(
    chart: &mut ChartContext<
        'a,
        SVGBackend<'a>,
        Cartesian2d<plotters::coord::types::RangedCoordf64, plotters::coord::types::RangedCoordf64>,
    >,
    r: &Report,
    top: f64,
) -> DrawResult {
    for p in r.phases.iter().skip(1) {
        chart.draw_series(std::iter::once(PathElement::new(
            vec![(p.start_s, 0.0), (p.start_s, top)],
            PHASE.mix(0.5).stroke_width(1),
        )))?;
    }
    for p in &r.phases {
        chart.draw_series(std::iter::once(Text::new(
            p.name.clone(),
            (p.start_s + 0.1, top * 0.97),
            ("sans-serif", 12).into_font().color(&PHASE),
        )))?;
    }
    for a in &r.actions {
        chart.draw_series(std::iter::once(PathElement::new(
            vec![(a.started_s, 0.0), (a.started_s, top)],
            ACTION.stroke_width(2),
        )))?;
        chart.draw_series(std::iter::once(Text::new(
            a.action.clone(),
            (a.started_s + 0.1, top * 0.88),
            ("sans-serif", 11).into_font().color(&ACTION),
        )))?;
    }
    Ok(())
}
