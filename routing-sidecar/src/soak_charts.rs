//! `routing-sidecar soak`: runs `fabric_soak`, prints the figures
//! and the targets, and draws the charts of docs/soak.md as PNG files.
//!
//! Text is drawn with ab_glyph from the DejaVu Sans file in
//! `routing-sidecar/assets` (embedded in the binary), so no system font
//! library is needed.

use std::path::{Path, PathBuf};
use std::time::Duration;

use fabric_soak::{self as soak, Mode, SoakOptions, SoakReport, TopologyKind};
use plotters::prelude::*;
use plotters::style::FontStyle;

const FONT: &[u8] = include_bytes!("../assets/DejaVuSans.ttf");
const PATH_VECTOR_COLOR: RGBColor = RGBColor(31, 119, 180);
const LINK_STATE_COLOR: RGBColor = RGBColor(230, 110, 0);

#[derive(clap::Args, Debug)]
pub(crate) struct SoakArgs {
    /// Nodes per fabric.
    #[arg(long, default_value_t = 1000)]
    nodes: usize,
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Fabrics to run: clos, ring-random, multi-area (comma-separated).
    #[arg(long, value_delimiter = ',', default_value = "clos,ring-random,multi-area")]
    topology: Vec<String>,
    /// Simulated time of the schedule.
    #[arg(long, default_value = "3h", value_parser = fabric_core::time::parse_duration)]
    duration: Duration,
    /// Scenarios in the schedule (each one to six actions: a failure and its
    /// repair, a burst of flaps, a forged announcement...).
    #[arg(long, default_value_t = 120)]
    events: usize,
    #[arg(long, default_value = "50ms", value_parser = fabric_core::time::parse_duration)]
    gossip_interval: Duration,
    /// Require signatures in both protocols and inject unsigned and forged
    /// announcements (`off`: unsigned, no injections).
    #[arg(long, default_value = "required", value_parser = ["required", "off"])]
    signatures: String,
    /// Path-vector hold-down after a withdrawal.
    #[arg(long, default_value = "1s", value_parser = fabric_core::time::parse_duration)]
    hold_down: Duration,
    /// Path-vector flap dampening (RFC 2439 defaults).
    #[arg(long, default_value = "on", value_parser = ["on", "off"])]
    dampening: String,
    /// Protocols to run: path-vector, link-state (comma-separated).
    #[arg(long, value_delimiter = ',', default_value = "path-vector,link-state")]
    mode: Vec<String>,
    /// Directory for the CSV files and the charts (nothing written without it).
    #[arg(long)]
    out: Option<PathBuf>,
    /// Exit with status 1 when a target fails.
    #[arg(long)]
    check: bool,
}

pub(crate) fn run(args: SoakArgs) -> Result<(), String> {
    let topologies = args
        .topology
        .iter()
        .map(|t| t.parse::<TopologyKind>().map_err(|e| format!("--topology: {e}")))
        .collect::<Result<Vec<_>, _>>()?;
    let modes = args
        .mode
        .iter()
        .map(|m| match m.as_str() {
            "path-vector" => Ok(Mode::PathVector),
            "link-state" => Ok(Mode::LinkState),
            other => Err(format!("--mode: unknown mode {other:?}: expected path-vector or link-state")),
        })
        .collect::<Result<Vec<_>, _>>()?;
    let options = SoakOptions {
        nodes: args.nodes,
        seed: args.seed,
        topologies,
        duration: args.duration,
        scenarios: args.events,
        gossip_interval: args.gossip_interval,
        signatures: args.signatures == "required",
        hold_down: args.hold_down,
        dampening: args.dampening == "on",
        modes,
        out: args.out.clone(),
    };
    let started = std::time::Instant::now();
    let report = soak::run(&options, &mut |line| eprintln!("[{:>6.1}s] {line}", started.elapsed().as_secs_f64()))
        .map_err(|e| e.to_string())?;
    print!("{}", report.text());
    if let Some(dir) = &args.out {
        draw_all(&report, dir).map_err(|e| format!("charts in {}: {e}", dir.display()))?;
        eprintln!("wrote CSV files and charts to {}", dir.display());
    }
    eprintln!("wall time {:.1}s (not part of the results)", started.elapsed().as_secs_f64());
    if args.check && !report.all_targets_pass() {
        return Err("a target failed".into());
    }
    Ok(())
}

type DrawResult = Result<(), Box<dyn std::error::Error>>;

fn color(mode: Mode) -> RGBColor {
    match mode {
        Mode::PathVector => PATH_VECTOR_COLOR,
        Mode::LinkState => LINK_STATE_COLOR,
    }
}

/// Writes convergence.png, messages.png and disturbed.png into `dir`.
pub(crate) fn draw_all(report: &SoakReport, dir: &Path) -> DrawResult {
    // Registering twice (a second report in one process) is harmless.
    let _ = plotters::style::register_font("sans-serif", FontStyle::Normal, FONT);
    std::fs::create_dir_all(dir)?;
    draw_convergence(report, &dir.join("convergence.png"))?;
    draw_messages(report, &dir.join("messages.png"))?;
    draw_disturbed(report, &dir.join("disturbed.png"))?;
    Ok(())
}

fn panels(
    path: &Path,
    count: usize,
) -> Result<Vec<DrawingArea<BitMapBackend<'_>, plotters::coord::Shift>>, Box<dyn std::error::Error>> {
    let root = BitMapBackend::new(path, (1200, 380 * count.max(1) as u32)).into_drawing_area();
    root.fill(&WHITE)?;
    Ok(root.split_evenly((count.max(1), 1)))
}

/// Cumulative distribution of the convergence time of the events that
/// changed routes, one panel per topology, both modes on each.
fn draw_convergence(report: &SoakReport, path: &Path) -> DrawResult {
    let areas = panels(path, report.runs.len())?;
    for (run, area) in report.runs.iter().zip(&areas) {
        let series: Vec<(Mode, Vec<f64>)> = run
            .modes
            .iter()
            .map(|m| {
                let mut v: Vec<f64> =
                    m.events.iter().filter(|e| e.route_changes > 0).map(|e| e.convergence_ms.max(0.1)).collect();
                v.sort_by(f64::total_cmp);
                (m.mode, v)
            })
            .collect();
        let max = series.iter().flat_map(|(_, v)| v.last()).copied().fold(1.0, f64::max);
        let mut chart = ChartBuilder::on(area)
            .caption(
                format!("{}: convergence time per event (CDF, {} nodes)", run.topology, run.nodes),
                ("sans-serif", 20),
            )
            .margin(12)
            .x_label_area_size(40)
            .y_label_area_size(60)
            .build_cartesian_2d((0.1f64..max * 1.5).log_scale(), 0f64..1.0)?;
        chart
            .configure_mesh()
            .x_desc(format!(
                "simulated ms from the event to its last route change (gossip interval {} ms)",
                report.gossip_interval_ms
            ))
            .y_desc("fraction of events")
            .label_style(("sans-serif", 14))
            .draw()?;
        for (mode, values) in series {
            let n = values.len().max(1) as f64;
            let points: Vec<(f64, f64)> = values.iter().enumerate().map(|(i, v)| (*v, (i + 1) as f64 / n)).collect();
            let c = color(mode);
            chart
                .draw_series(LineSeries::new(points, c.stroke_width(2)))?
                .label(mode.label())
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], c.stroke_width(2)));
        }
        chart
            .configure_series_labels()
            .label_font(("sans-serif", 14))
            .background_style(WHITE.mix(0.8))
            .border_style(BLACK)
            .position(SeriesLabelPosition::LowerRight)
            .draw()?;
    }
    Ok(())
}

fn short(kind: &str) -> &str {
    match kind {
        "unsigned_injection" => "unsigned",
        "forged_signature" => "forged sig",
        "policy_reload" => "policy",
        "key_rotation" => "key rot.",
        "node_restart" => "restart",
        "node_crash" => "crash",
        other => other,
    }
}

/// Mean messages per event, by event kind, both modes side by side.
fn draw_messages(report: &SoakReport, path: &Path) -> DrawResult {
    let areas = panels(path, report.runs.len())?;
    for (run, area) in report.runs.iter().zip(&areas) {
        let kinds: Vec<&str> = soak::Action::KINDS
            .iter()
            .copied()
            .filter(|k| run.modes.iter().any(|m| m.events.iter().any(|e| e.kind == *k)))
            .collect();
        let mean = |mode: &soak::report::ModeRun, kind: &str| {
            let v: Vec<u64> = mode.events.iter().filter(|e| e.kind == kind).map(|e| e.messages).collect();
            if v.is_empty() { 0.0 } else { v.iter().sum::<u64>() as f64 / v.len() as f64 }
        };
        let max = run.modes.iter().flat_map(|m| kinds.iter().map(move |k| mean(m, k))).fold(10.0, f64::max);
        let mut chart = ChartBuilder::on(area)
            .caption(format!("{}: messages per event, mean by kind", run.topology), ("sans-serif", 20))
            .margin(12)
            .x_label_area_size(40)
            .y_label_area_size(70)
            .build_cartesian_2d(0f64..kinds.len() as f64, (1f64..max * 2.0).log_scale())?;
        let labels = kinds.clone();
        chart
            .configure_mesh()
            .disable_x_mesh()
            .x_labels(kinds.len() * 2 + 1)
            .x_label_formatter(&|x| {
                let i = x.floor() as usize;
                if (x - x.floor() - 0.5).abs() < 0.01 && i < labels.len() {
                    short(labels[i]).to_string()
                } else {
                    String::new()
                }
            })
            .y_desc("messages (log)")
            .label_style(("sans-serif", 13))
            .draw()?;
        let width = 0.8 / run.modes.len().max(1) as f64;
        for (j, mode) in run.modes.iter().enumerate() {
            let c = color(mode.mode);
            chart
                .draw_series(kinds.iter().enumerate().map(|(i, kind)| {
                    let x0 = i as f64 + 0.1 + j as f64 * width;
                    Rectangle::new([(x0, 1.0), (x0 + width * 0.95, mean(mode, kind).max(1.0))], c.filled())
                }))?
                .label(mode.mode.label())
                .legend(move |(x, y)| Rectangle::new([(x, y - 5), (x + 15, y + 5)], c.filled()));
        }
        chart
            .configure_series_labels()
            .label_font(("sans-serif", 14))
            .background_style(WHITE.mix(0.8))
            .border_style(BLACK)
            .position(SeriesLabelPosition::UpperRight)
            .draw()?;
    }
    Ok(())
}

/// Routes disturbed per event (lost for a while, looping, missing or black
/// holed) over simulated time.
fn draw_disturbed(report: &SoakReport, path: &Path) -> DrawResult {
    let areas = panels(path, report.runs.len())?;
    let hours = report.duration_ms as f64 / 3_600_000.0;
    for (run, area) in report.runs.iter().zip(&areas) {
        let max = run.modes.iter().flat_map(|m| m.events.iter().map(|e| e.disturbed())).max().unwrap_or(1).max(10);
        let mut chart = ChartBuilder::on(area)
            .caption(
                format!("{}: (node, destination) routes disturbed per event over time", run.topology),
                ("sans-serif", 20),
            )
            .margin(12)
            .x_label_area_size(40)
            .y_label_area_size(70)
            .build_cartesian_2d(0f64..hours.max(0.01), (1f64..max as f64 * 2.0).log_scale())?;
        chart
            .configure_mesh()
            .x_desc("simulated hours")
            .y_desc("routes disturbed + 1 (log)")
            .label_style(("sans-serif", 14))
            .draw()?;
        for mode in &run.modes {
            let c = color(mode.mode);
            let points: Vec<(f64, f64)> =
                mode.events.iter().map(|e| (e.at_ms as f64 / 3_600_000.0, e.disturbed() as f64 + 1.0)).collect();
            chart
                .draw_series(points.iter().map(|p| Circle::new(*p, 3, c.filled())))?
                .label(mode.mode.label())
                .legend(move |(x, y)| Circle::new((x + 8, y), 4, c.filled()));
        }
        chart
            .configure_series_labels()
            .label_font(("sans-serif", 14))
            .background_style(WHITE.mix(0.8))
            .border_style(BLACK)
            .position(SeriesLabelPosition::UpperRight)
            .draw()?;
    }
    Ok(())
}
