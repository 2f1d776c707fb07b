//! The picture of a run: throughput, latency percentiles and path share over time, with the
//! phases and actions marked, as one SVG.
//!
//! Each panel's legend sits in a strip to the right of its plot, so it never hides data; the
//! log axis labels only as many values as fit; and rates are taken over the part of a bucket the
//! run covered, so the last, partial bucket is not drawn as a drop.

use super::Report;
use crate::stats::timeline::Bucket;
use plotters::coord::Shift;
use plotters::prelude::*;

const WIDTH: u32 = 1100;
const PANEL: u32 = 300;
/// Width of the legend strip right of each plot.
const LEGEND: u32 = 110;

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
        let split = |i: usize| panels[i].split_horizontally(WIDTH - LEGEND);
        let (plot, key) = split(0);
        throughput(&plot, r).map_err(|e| e.to_string())?;
        legend(&key, &THROUGHPUT).map_err(|e| e.to_string())?;
        let (plot, key) = split(1);
        latency(&plot, r).map_err(|e| e.to_string())?;
        legend(&key, &LATENCY).map_err(|e| e.to_string())?;
        let (plot, key) = split(2);
        let shown = path_share(&plot, r).map_err(|e| e.to_string())?;
        legend(&key, &shown).map_err(|e| e.to_string())?;
        root.present().map_err(|e| e.to_string())?;
    }
    Ok(svg)
}

type DrawResult = Result<(), Box<dyn std::error::Error>>;

/// A legend entry: name and colour.
type Entry = (&'static str, RGBColor);

const THROUGHPUT: [Entry; 3] = [("sent", SENT), ("ok", OK), ("failed", FAILED)];
const LATENCY: [Entry; 3] = [("p50", OK), ("p99", PATHS[1]), ("max", FAILED)];

fn t_max(r: &Report) -> f64 {
    let end = r.timeline.last().map_or(0.0, |b| b.t + r.bucket_s);
    end.max(r.duration_s).max(1.0)
}

/// When the last request was accounted for, seconds from the start.
fn run_end(r: &Report) -> f64 {
    r.accounting.sending_stopped_s + r.accounting.drain_s
}

/// The rate of `pick` per second over time: one point per bucket that starts before `end`, at
/// the middle of the part of it the run covered and over that part only, so the last bucket
/// (which `end` cuts short) is not drawn as a drop. A last sliver under a quarter of a bucket
/// is folded into the bucket before it: a rate over a few milliseconds says nothing.
fn rates(timeline: &[Bucket], width: f64, end: f64, pick: Pick<u64>) -> Vec<(f64, f64)> {
    let mut spans: Vec<(f64, f64, u64)> = timeline
        .iter()
        .filter(|b| b.t < end)
        .map(|b| (b.t, width.min(end - b.t), pick(b)))
        .collect();
    if spans.len() >= 2
        && let Some(&(_, covered, n)) = spans.last()
        && covered < width / 4.0
    {
        spans.pop();
        let prev = spans.last_mut().expect("two spans were there");
        prev.1 += covered;
        prev.2 += n;
    }
    spans
        .into_iter()
        .map(|(t, covered, n)| (t + covered / 2.0, n as f64 / covered))
        .collect()
}

/// The values labelled on the log axis from `floor` to `top`: decades only when the axis spans
/// more than three and a half of them, otherwise 1, 2 and 5 of each decade, so that no two
/// labels overlap (a panel's plot is about 230 px high, and 2 is 0.3 of a decade above 1).
/// Given explicitly because plotters' own log key points put labels a few pixels apart.
fn log_ticks(floor: f64, top: f64) -> Vec<f64> {
    let mantissas: &[f64] = if (top / floor).log10() > 3.5 {
        &[1.0]
    } else {
        &[1.0, 2.0, 5.0]
    };
    let (low, high) = (floor.log10().floor() as i32, top.log10().ceil() as i32);
    (low..=high)
        .flat_map(|e| mantissas.iter().map(move |m| m * 10f64.powi(e)))
        .filter(|v| (floor..=top).contains(v))
        .collect()
}

/// A log-axis value as a label: whole milliseconds from 1 up, the digits needed below.
fn log_label(v: f64) -> String {
    if v >= 1.0 {
        format!("{v:.0}")
    } else {
        // Tick values are 1, 2 or 5 times a power of ten, so a few digits always suffice.
        let text = format!("{v:.4}");
        text.trim_end_matches('0').to_owned()
    }
}

fn throughput(area: &Area<'_>, r: &Report) -> DrawResult {
    let end = run_end(r);
    let sent_end = r.accounting.sending_stopped_s.min(r.duration_s);
    let series = [
        rates(&r.timeline, r.bucket_s, sent_end, |b| b.sent),
        rates(&r.timeline, r.bucket_s, end, |b| b.ok),
        rates(&r.timeline, r.bucket_s, end, |b| b.failed),
    ];
    let peak = series
        .iter()
        .flatten()
        .map(|&(_, rate)| rate)
        .fold(1.0, f64::max);
    let mut chart = ChartBuilder::on(area)
        .caption(
            "requests per second (sent by due time, completed by completion time)",
            ("sans-serif", 15),
        )
        .margin(8)
        .x_label_area_size(28)
        .y_label_area_size(60)
        .build_cartesian_2d(0.0..t_max(r), 0.0..peak * 1.15)?;
    chart
        .configure_mesh()
        .light_line_style(GRID)
        .max_light_lines(3)
        .x_label_formatter(&|v| format!("{v:.0}"))
        .y_label_formatter(&|v| format!("{v:.0}"))
        .x_desc("s")
        .y_desc("req/s")
        .draw()?;
    for (points, (_, color)) in series.into_iter().zip(THROUGHPUT) {
        chart.draw_series(LineSeries::new(points, color.stroke_width(2)))?;
    }
    marks(&mut chart, r, peak * 1.15)?;
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
        .build_cartesian_2d(
            0.0..t_max(r),
            (floor..peak * 2.0)
                .log_scale()
                .with_key_points(log_ticks(floor, peak * 2.0)),
        )?;
    chart
        .configure_mesh()
        .light_line_style(GRID)
        .max_light_lines(3)
        .x_label_formatter(&|v| format!("{v:.0}"))
        .y_label_formatter(&|v| log_label(*v))
        .x_desc("s")
        .y_desc("ms")
        .draw()?;
    let values: [Pick<f64>; 3] = [|b| b.p50_ms, |b| b.p99_ms, |b| b.max_ms];
    for (value, (_, color)) in values.into_iter().zip(LATENCY) {
        // Buckets without ok answers have no latency; leave gaps rather than draw zeros.
        let points: Vec<(f64, f64)> = r
            .timeline
            .iter()
            .filter(|b| b.ok > 0)
            .map(|b| (b.t + r.bucket_s / 2.0, value(b).max(floor)))
            .collect();
        chart.draw_series(LineSeries::new(points, color.stroke_width(2)))?;
    }
    for a in &r.actions {
        chart.draw_series(std::iter::once(PathElement::new(
            vec![(a.started_s, floor), (a.started_s, peak * 2.0)],
            ACTION.stroke_width(1),
        )))?;
    }
    Ok(())
}

/// Draws the share of each path and returns the legend entries of the paths that served any.
fn path_share(area: &Area<'_>, r: &Report) -> Result<Vec<Entry>, Box<dyn std::error::Error>> {
    let mut chart = ChartBuilder::on(area)
        .caption("share of answered requests by path, %", ("sans-serif", 15))
        .margin(8)
        .x_label_area_size(28)
        .y_label_area_size(60)
        .build_cartesian_2d(0.0..t_max(r), 0.0..SHARE_TOP)?;
    chart
        .configure_mesh()
        .light_line_style(GRID)
        .max_light_lines(3)
        .x_label_formatter(&|v| format!("{v:.0}"))
        .y_label_formatter(&|v| {
            if *v <= 100.0 {
                format!("{v:.0}")
            } else {
                String::new()
            }
        })
        .x_desc("s")
        .y_desc("%")
        .draw()?;
    let mut shown = Vec::new();
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
        chart.draw_series(LineSeries::new(points, PATHS[i].stroke_width(2)))?;
        shown.push((*name, PATHS[i]));
    }
    marks(&mut chart, r, SHARE_TOP)?;
    Ok(shown)
}

/// Top of the share axis: room above 100% for the phase and action names.
const SHARE_TOP: f64 = 118.0;

/// The legend of one panel, in the strip right of its plot, level with the plot's top.
fn legend(area: &Area<'_>, entries: &[Entry]) -> DrawResult {
    for (i, (name, color)) in entries.iter().enumerate() {
        let y = 40 + 18 * i as i32;
        area.draw(&PathElement::new(
            vec![(6, y), (26, y)],
            color.stroke_width(2),
        ))?;
        area.draw(&Text::new(
            *name,
            (32, y - 6),
            ("sans-serif", 13).into_font().color(&BLACK),
        ))?;
    }
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
    // An action close after another gets its name a line lower, so the two do not overprint.
    let (mut level, mut last) = (0u32, f64::NEG_INFINITY);
    for a in &r.actions {
        level = if a.started_s - last < t_max(r) / 8.0 {
            (level + 1) % 4
        } else {
            0
        };
        last = a.started_s;
        chart.draw_series(std::iter::once(PathElement::new(
            vec![(a.started_s, 0.0), (a.started_s, top)],
            ACTION.stroke_width(2),
        )))?;
        chart.draw_series(std::iter::once(Text::new(
            a.action.clone(),
            (a.started_s + 0.1, top * (0.88 - 0.07 * f64::from(level))),
            ("sans-serif", 11).into_font().color(&ACTION),
        )))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::{Accounting, GeneratorReport, ScopeReport};
    use crate::selfcost::{Machine, SelfCost};
    use crate::stats::Scope;
    use std::time::Duration;

    fn buckets(ok: &[u64]) -> Vec<Bucket> {
        ok.iter()
            .enumerate()
            .map(|(i, &ok)| Bucket {
                t: i as f64,
                sent: 100,
                ok,
                p50_ms: 12.0,
                p99_ms: 20.0,
                max_ms: 30.0,
                paths: [ok, 0, 0, 0],
                ..Bucket::default()
            })
            .collect()
    }

    #[test]
    fn the_last_partial_bucket_is_a_rate_over_the_time_it_covers() {
        // The run ended 20 ms into the fifth bucket: two answers there are not a drop to 2/s.
        let t = buckets(&[100, 100, 100, 100, 2]);
        let points = rates(&t, 1.0, 4.02, |b| b.ok);
        assert_eq!(points.len(), 4);
        let (x, rate) = points[3];
        assert!((x - 3.51).abs() < 1e-9 && (rate - 102.0 / 1.02).abs() < 1e-9);
        // Half a bucket covered: its own point, at the rate of that half.
        let t = buckets(&[100, 100, 50]);
        assert_eq!(rates(&t, 1.0, 2.5, |b| b.ok)[2], (2.25, 100.0));
        // Buckets after the end are not drawn at all.
        assert_eq!(rates(&t, 1.0, 1.0, |b| b.sent).len(), 1);
    }

    #[test]
    fn the_log_axis_labels_only_values_that_fit() {
        // Five decades: one label each.
        assert_eq!(
            log_ticks(0.1, 20_000.0),
            [0.1, 1.0, 10.0, 100.0, 1000.0, 10_000.0]
        );
        // Under three and a half: 1, 2 and 5 of each, within the axis only.
        assert_eq!(
            log_ticks(0.1, 44.0),
            [0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0, 20.0]
        );
        let labels: Vec<String> = [0.01, 0.2, 1.0, 50.0, 1000.0].map(log_label).into();
        assert_eq!(labels, ["0.01", "0.2", "1", "50", "1000"]);
    }

    fn report(timeline: Vec<Bucket>) -> Report {
        let scope = |name: &str| {
            ScopeReport::new(
                name,
                Duration::ZERO,
                Duration::from_secs(5),
                &Scope::default(),
            )
        };
        Report {
            tool: "holdline-load".into(),
            scenario: "pic".into(),
            description: String::new(),
            target: "direct".into(),
            url: "http://127.0.0.1:1/".into(),
            run: "r".into(),
            started_unix_ms: 0,
            machine: Machine::current(),
            model: "open".into(),
            planned: Some(500),
            duration_s: 5.0,
            request_timeout_s: 10.0,
            totals: scope("run"),
            phases: vec![scope("steady")],
            accounting: Accounting {
                issued: 500,
                completed: 500,
                balanced: true,
                not_sent: 0,
                sending_stopped_s: 5.0,
                drain_s: 0.02,
                answered_during_drain: 2,
                drained_in_time: true,
            },
            generator: GeneratorReport {
                cost: SelfCost::new(1, Duration::ZERO, Duration::from_secs(5), 500),
                lag_ms: Default::default(),
                late: 0,
                late_after_ms: 5.0,
                peak_in_flight: 0,
                warnings: Vec::new(),
            },
            instances: Default::default(),
            actions: Vec::new(),
            bucket_s: 1.0,
            timeline,
            checks: Vec::new(),
            interrupted: None,
            passed: true,
        }
    }

    /// The `x` of the SVG text element whose content is `label`.
    fn text_x(svg: &str, label: &str) -> f64 {
        let end = svg.find(&format!(">\n{label}\n</text>")).expect(label);
        let start = svg[..end].rfind("<text").unwrap();
        let x = &svg[start..end];
        let x = &x[x.find(" x=\"").unwrap() + 4..];
        x[..x.find('"').unwrap()].parse().unwrap()
    }

    /// The `y` of the first SVG text element whose content is `label`.
    fn text_y(svg: &str, label: &str) -> f64 {
        let end = svg.find(&format!(">\n{label}\n</text>")).expect(label);
        let start = svg[..end].rfind("<text").unwrap();
        let y = &svg[start..end];
        let y = &y[y.find(" y=\"").unwrap() + 4..];
        y[..y.find('"').unwrap()].parse().unwrap()
    }

    #[test]
    fn names_of_actions_close_together_do_not_overprint() {
        let mut r = report(buckets(&[100, 100, 100, 100, 100]));
        for (at, action) in [(1.0, "kill a"), (3.0, "start b"), (3.3, "reload target")] {
            r.actions.push(crate::report::ActionRecord {
                planned_s: at,
                started_s: at,
                finished_s: at,
                action: action.into(),
                ok: true,
                error: None,
            });
        }
        let svg = render(&r).unwrap();
        assert_eq!(
            text_y(&svg, "kill a"),
            text_y(&svg, "start b"),
            "far apart: one line"
        );
        assert!(text_y(&svg, "reload target") > text_y(&svg, "start b") + 8.0);
    }

    /// The largest `x` of any line or polyline point: how far right the plots reach.
    fn plots_right_edge(svg: &str) -> f64 {
        let mut right = 0f64;
        for (i, _) in svg.match_indices("points=\"") {
            let points = &svg[i + 8..];
            for pair in points[..points.find('"').unwrap()].split_whitespace() {
                right = right.max(pair.split(',').next().unwrap().parse().unwrap());
            }
        }
        for key in [" x1=\"", " x2=\""] {
            for (i, _) in svg.match_indices(key) {
                let x = &svg[i + key.len()..];
                right = right.max(x[..x.find('"').unwrap()].parse().unwrap());
            }
        }
        right
    }

    #[test]
    fn legends_sit_right_of_the_plots() {
        let svg = render(&report(buckets(&[100, 100, 100, 100, 100, 2]))).unwrap();
        let right = plots_right_edge(&svg);
        for label in ["sent", "failed", "p50", "max", "sync"] {
            let x = text_x(&svg, label);
            assert!(x > right, "{label} at x {x}, over plots reaching {right}");
        }
        assert!(
            !svg.contains(">\nasync\n</text>"),
            "paths that served nothing have no entry"
        );
    }
}
