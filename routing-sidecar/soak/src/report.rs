//! Per-event rows, summaries per (topology, mode), the plan's targets and
//! the CSV files.

use std::fmt::Write as _;
use std::path::Path;

use super::SoakOptions;
use super::driver::Mode;
use super::schedule::Schedule;
use super::topology::SoakTopology;

/// What one event did in one mode.
#[derive(Clone, Debug, PartialEq)]
pub struct EventRow {
    /// 0 is the initial convergence.
    pub index: u32,
    pub scenario: u32,
    pub at_ms: u64,
    pub kind: &'static str,
    pub subject: String,
    /// Nothing was in flight when the event was measured (else the next
    /// event came first).
    pub quiet: bool,
    /// From the event to the last route change it caused.
    pub convergence_ms: f64,
    pub convergence_intervals: f64,
    /// Withdrawals: until the withdrawn node's neighbors had their last
    /// route change for its destination.
    pub one_hop_ms: Option<f64>,
    pub messages: u64,
    pub bytes: u64,
    pub route_changes: u64,
    /// Pairs (node, destination) that lost their route during the event
    /// and had it back when it was measured.
    pub transient_missing: u64,
    /// Pairs seen forwarding into a loop at any check during the event.
    pub transient_loops: u64,
    /// At the measurement, among the pairs the oracle says are reachable:
    pub missing: u64,
    pub loops: u64,
    pub black_holes: u64,
    /// A route whose cost is above the shortest path (single-area fabrics).
    pub suboptimal: u64,
    pub held_down_started: u64,
    pub suppressions_started: u64,
    /// Messages lost with their link.
    pub dropped: u64,
    pub forged_injected: u64,
    pub forged_accepted: u64,
}

impl EventRow {
    pub fn new(index: u32, scenario: u32, at_ms: u64, kind: &'static str, subject: String) -> Self {
        Self {
            index,
            scenario,
            at_ms,
            kind,
            subject,
            quiet: false,
            convergence_ms: 0.0,
            convergence_intervals: 0.0,
            one_hop_ms: None,
            messages: 0,
            bytes: 0,
            route_changes: 0,
            transient_missing: 0,
            transient_loops: 0,
            missing: 0,
            loops: 0,
            black_holes: 0,
            suboptimal: 0,
            held_down_started: 0,
            suppressions_started: 0,
            dropped: 0,
            forged_injected: 0,
            forged_accepted: 0,
        }
    }

    /// Pairs whose forwarding was disturbed by the event.
    pub fn disturbed(&self) -> u64 {
        self.transient_missing + self.transient_loops + self.missing + self.black_holes
    }
}

/// Hold-downs and suppressions in force just before an event.
#[derive(Clone, Debug, PartialEq)]
pub struct SteadyRow {
    pub at_ms: u64,
    /// Selected routes (node, destination), over all nodes.
    pub routes: u64,
    /// Stored routes (path-vector candidates; link-state routes).
    pub stored: u64,
    /// Stored routes not usable because of hold-down.
    pub held_down: u64,
    /// Stored routes not usable because dampening suppresses them.
    pub suppressed: u64,
}

impl SteadyRow {
    pub fn fraction(&self) -> f64 {
        if self.stored == 0 { 0.0 } else { (self.held_down + self.suppressed) as f64 / self.stored as f64 }
    }
}

#[derive(Clone, Debug)]
pub struct ModeRun {
    pub mode: Mode,
    pub initial: EventRow,
    pub events: Vec<EventRow>,
    pub steady: Vec<SteadyRow>,
    pub memory_mean_bytes: u64,
    pub memory_max_bytes: u64,
    pub forged_injected: u64,
    pub forged_accepted: u64,
}

#[derive(Clone, Debug)]
pub struct TopologyRun {
    pub topology: &'static str,
    pub nodes: usize,
    pub links: usize,
    pub areas: usize,
    pub actions: usize,
    pub modes: Vec<ModeRun>,
}

impl TopologyRun {
    pub fn new(topology: &SoakTopology, schedule: &Schedule, modes: Vec<ModeRun>) -> Self {
        Self {
            topology: topology.kind.label(),
            nodes: topology.node_count(),
            links: topology.links.len(),
            areas: topology.areas.len(),
            actions: schedule.actions.len(),
            modes,
        }
    }
}

/// The figures of one (topology, mode).
#[derive(Clone, Debug, PartialEq)]
pub struct ModeSummary {
    pub topology: &'static str,
    pub mode: Mode,
    pub events: usize,
    /// Events that changed at least one route (the convergence figures are
    /// over these).
    pub events_with_changes: usize,
    pub events_not_quiet: usize,
    pub initial_ms: f64,
    pub initial_messages: u64,
    pub convergence_p50_ms: f64,
    pub convergence_p90_ms: f64,
    pub convergence_p99_ms: f64,
    pub convergence_max_ms: f64,
    pub messages_per_event: f64,
    pub messages_p99: f64,
    pub bytes_per_event: f64,
    pub transient_missing: u64,
    pub transient_loops: u64,
    pub missing: u64,
    pub loops: u64,
    pub black_holes: u64,
    pub suboptimal: u64,
    pub held_down_started: u64,
    pub suppressions_started: u64,
    pub steady_suppressed_max: f64,
    pub steady_suppressed_mean: f64,
    pub withdrawal_one_hop_max_intervals: Option<f64>,
    pub withdrawal_one_hop_p50_intervals: Option<f64>,
    pub memory_mean_bytes: u64,
    pub memory_max_bytes: u64,
    pub forged_injected: u64,
    pub forged_accepted: u64,
}

/// One of the plan's targets for one (topology, mode).
#[derive(Clone, Debug, PartialEq)]
pub struct TargetCheck {
    pub topology: &'static str,
    pub mode: Mode,
    pub target: &'static str,
    pub value: String,
    pub limit: &'static str,
    /// `None`: not applicable in this run (e.g. no signatures).
    pub pass: Option<bool>,
}

impl TargetCheck {
    pub fn verdict(&self) -> &'static str {
        match self.pass {
            Some(true) => "PASS",
            Some(false) => "FAIL",
            None => "N/A",
        }
    }
}

#[derive(Clone, Debug)]
pub struct SoakReport {
    pub nodes: usize,
    pub seed: u64,
    pub duration_ms: u64,
    pub gossip_interval_ms: f64,
    pub signatures: bool,
    pub runs: Vec<TopologyRun>,
    pub summaries: Vec<ModeSummary>,
    pub targets: Vec<TargetCheck>,
}

/// Nearest-rank percentile of sorted values.
pub fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil().max(1.0) as usize;
    sorted[rank.min(sorted.len()) - 1]
}

fn sorted(values: impl Iterator<Item = f64>) -> Vec<f64> {
    let mut v: Vec<f64> = values.collect();
    v.sort_by(f64::total_cmp);
    v
}

impl ModeSummary {
    pub fn new(topology: &'static str, run: &ModeRun, interval_ms: f64) -> Self {
        let changed: Vec<&EventRow> = run.events.iter().filter(|e| e.route_changes > 0).collect();
        let convergence = sorted(changed.iter().map(|e| e.convergence_ms));
        let messages = sorted(run.events.iter().map(|e| e.messages as f64));
        let count = run.events.len().max(1) as f64;
        let one_hop = sorted(run.events.iter().filter_map(|e| e.one_hop_ms).map(|ms| ms / interval_ms));
        let fractions: Vec<f64> = run.steady.iter().map(SteadyRow::fraction).collect();
        let sum = |f: fn(&EventRow) -> u64| run.events.iter().map(f).sum::<u64>();
        Self {
            topology,
            mode: run.mode,
            events: run.events.len(),
            events_with_changes: changed.len(),
            events_not_quiet: run.events.iter().filter(|e| !e.quiet).count(),
            initial_ms: run.initial.convergence_ms,
            initial_messages: run.initial.messages,
            convergence_p50_ms: percentile(&convergence, 50.0),
            convergence_p90_ms: percentile(&convergence, 90.0),
            convergence_p99_ms: percentile(&convergence, 99.0),
            convergence_max_ms: convergence.last().copied().unwrap_or(0.0),
            messages_per_event: messages.iter().sum::<f64>() / count,
            messages_p99: percentile(&messages, 99.0),
            bytes_per_event: run.events.iter().map(|e| e.bytes as f64).sum::<f64>() / count,
            transient_missing: sum(|e| e.transient_missing),
            transient_loops: sum(|e| e.transient_loops),
            missing: sum(|e| e.missing),
            loops: sum(|e| e.loops),
            black_holes: sum(|e| e.black_holes),
            suboptimal: sum(|e| e.suboptimal),
            held_down_started: sum(|e| e.held_down_started),
            suppressions_started: sum(|e| e.suppressions_started),
            steady_suppressed_max: fractions.iter().copied().fold(0.0, f64::max),
            steady_suppressed_mean: fractions.iter().sum::<f64>() / fractions.len().max(1) as f64,
            withdrawal_one_hop_max_intervals: one_hop.last().copied(),
            withdrawal_one_hop_p50_intervals: (!one_hop.is_empty()).then(|| percentile(&one_hop, 50.0)),
            memory_mean_bytes: run.memory_mean_bytes,
            memory_max_bytes: run.memory_max_bytes,
            forged_injected: run.forged_injected,
            forged_accepted: run.forged_accepted,
        }
    }

    fn targets(&self, signatures: bool) -> Vec<TargetCheck> {
        let check = |target, value: String, limit, pass| TargetCheck {
            topology: self.topology,
            mode: self.mode,
            target,
            value,
            limit,
            pass,
        };
        vec![
            check(
                "single-hop withdrawal converges within 2 gossip intervals",
                self.withdrawal_one_hop_max_intervals
                    .map_or("no withdrawal in the schedule".into(), |v| format!("max {v:.2} intervals")),
                "<= 2 intervals",
                self.withdrawal_one_hop_max_intervals.map(|v| v <= 2.0),
            ),
            check(
                "routes suppressed in steady state",
                format!("max {:.3}%", self.steady_suppressed_max * 100.0),
                "< 5%",
                Some(self.steady_suppressed_max < 0.05),
            ),
            check(
                "unsigned or forged announcements accepted (signatures required)",
                format!("{} of {}", self.forged_accepted, self.forged_injected),
                "0",
                (signatures && self.forged_injected > 0).then_some(self.forged_accepted == 0),
            ),
        ]
    }
}

impl SoakReport {
    pub fn new(options: &SoakOptions, runs: Vec<TopologyRun>) -> Self {
        let interval_ms = options.gossip_interval.as_secs_f64() * 1000.0;
        let summaries: Vec<ModeSummary> =
            runs.iter().flat_map(|r| r.modes.iter().map(|m| ModeSummary::new(r.topology, m, interval_ms))).collect();
        let targets = summaries.iter().flat_map(|s| s.targets(options.signatures)).collect();
        Self {
            nodes: options.nodes,
            seed: options.seed,
            duration_ms: options.duration.as_millis() as u64,
            gossip_interval_ms: interval_ms,
            signatures: options.signatures,
            runs,
            summaries,
            targets,
        }
    }

    pub fn all_targets_pass(&self) -> bool {
        self.targets.iter().all(|t| t.pass != Some(false))
    }

    pub fn events_csv(&self) -> String {
        let mut out = String::from(
            "topology,mode,index,scenario,at_ms,kind,subject,quiet,convergence_ms,convergence_intervals,one_hop_ms,\
             messages,bytes,route_changes,transient_missing,transient_loops,missing,loops,black_holes,suboptimal,\
             held_down_started,suppressions_started,dropped,forged_injected,forged_accepted\n",
        );
        for run in &self.runs {
            for mode in &run.modes {
                for e in std::iter::once(&mode.initial).chain(&mode.events) {
                    let scenario = if e.scenario == u32::MAX { String::new() } else { e.scenario.to_string() };
                    let one_hop = e.one_hop_ms.map(|v| format!("{v:.3}")).unwrap_or_default();
                    let _ = writeln!(
                        out,
                        "{},{},{},{},{},{},{},{},{:.3},{:.2},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{}",
                        run.topology,
                        mode.mode.label(),
                        e.index,
                        scenario,
                        e.at_ms,
                        e.kind,
                        e.subject.replace(',', ";"),
                        e.quiet,
                        e.convergence_ms,
                        e.convergence_intervals,
                        one_hop,
                        e.messages,
                        e.bytes,
                        e.route_changes,
                        e.transient_missing,
                        e.transient_loops,
                        e.missing,
                        e.loops,
                        e.black_holes,
                        e.suboptimal,
                        e.held_down_started,
                        e.suppressions_started,
                        e.dropped,
                        e.forged_injected,
                        e.forged_accepted
                    );
                }
            }
        }
        out
    }

    pub fn steady_csv(&self) -> String {
        let mut out = String::from("topology,mode,at_ms,routes,stored,held_down,suppressed,fraction\n");
        for run in &self.runs {
            for mode in &run.modes {
                for s in &mode.steady {
                    let _ = writeln!(
                        out,
                        "{},{},{},{},{},{},{},{:.6}",
                        run.topology,
                        mode.mode.label(),
                        s.at_ms,
                        s.routes,
                        s.stored,
                        s.held_down,
                        s.suppressed,
                        s.fraction()
                    );
                }
            }
        }
        out
    }

    pub fn summary_csv(&self) -> String {
        let mut out = String::from(
            "topology,mode,nodes,links,events,events_with_changes,events_not_quiet,initial_ms,initial_messages,\
             convergence_p50_ms,convergence_p90_ms,convergence_p99_ms,convergence_max_ms,convergence_p50_intervals,\
             convergence_p99_intervals,messages_per_event,messages_p99,bytes_per_event,transient_missing,\
             transient_loops,missing,loops,black_holes,suboptimal,held_down_started,suppressions_started,\
             steady_suppressed_max,withdrawal_one_hop_max_intervals,memory_mean_bytes,memory_max_bytes,\
             forged_injected,forged_accepted\n",
        );
        for s in &self.summaries {
            let run = self.runs.iter().find(|r| r.topology == s.topology).expect("summaries come from runs");
            let iv = self.gossip_interval_ms;
            let _ = writeln!(
                out,
                "{},{},{},{},{},{},{},{:.3},{},{:.3},{:.3},{:.3},{:.3},{:.2},{:.2},{:.1},{:.0},{:.0},{},{},{},{},{},{},{},{},{:.6},{},{},{},{},{}",
                s.topology,
                s.mode.label(),
                run.nodes,
                run.links,
                s.events,
                s.events_with_changes,
                s.events_not_quiet,
                s.initial_ms,
                s.initial_messages,
                s.convergence_p50_ms,
                s.convergence_p90_ms,
                s.convergence_p99_ms,
                s.convergence_max_ms,
                s.convergence_p50_ms / iv,
                s.convergence_p99_ms / iv,
                s.messages_per_event,
                s.messages_p99,
                s.bytes_per_event,
                s.transient_missing,
                s.transient_loops,
                s.missing,
                s.loops,
                s.black_holes,
                s.suboptimal,
                s.held_down_started,
                s.suppressions_started,
                s.steady_suppressed_max,
                s.withdrawal_one_hop_max_intervals.map(|v| format!("{v:.2}")).unwrap_or_default(),
                s.memory_mean_bytes,
                s.memory_max_bytes,
                s.forged_injected,
                s.forged_accepted
            );
        }
        out
    }

    pub fn targets_csv(&self) -> String {
        let mut out = String::from("topology,mode,target,value,limit,result\n");
        for t in &self.targets {
            let _ = writeln!(
                out,
                "{},{},{},{},{},{}",
                t.topology,
                t.mode.label(),
                t.target,
                t.value.replace(',', ";"),
                t.limit,
                t.verdict()
            );
        }
        out
    }

    pub fn write_csv(&self, dir: &Path) -> std::io::Result<()> {
        std::fs::create_dir_all(dir)?;
        std::fs::write(dir.join("events.csv"), self.events_csv())?;
        std::fs::write(dir.join("steady.csv"), self.steady_csv())?;
        std::fs::write(dir.join("summary.csv"), self.summary_csv())?;
        std::fs::write(dir.join("targets.csv"), self.targets_csv())?;
        Ok(())
    }

    /// The summary and targets as text tables, for the terminal.
    pub fn text(&self) -> String {
        let mut out = String::new();
        let iv = self.gossip_interval_ms;
        let _ = writeln!(
            out,
            "soak: {} nodes, seed {}, {:.1} simulated hours, gossip interval {} ms, signatures {}",
            self.nodes,
            self.seed,
            self.duration_ms as f64 / 3_600_000.0,
            iv,
            if self.signatures { "required" } else { "off" }
        );
        let _ = writeln!(
            out,
            "{:<12} {:<12} {:>6} {:>10} {:>10} {:>10} {:>8} {:>10} {:>12} {:>8} {:>8} {:>9} {:>10}",
            "topology",
            "mode",
            "events",
            "p50 ms",
            "p99 ms",
            "p99 ivals",
            "msgs/ev",
            "bytes/ev",
            "trans.miss",
            "loops",
            "missing",
            "supp max",
            "mem/node"
        );
        for s in &self.summaries {
            let _ = writeln!(
                out,
                "{:<12} {:<12} {:>6} {:>10.1} {:>10.1} {:>10.1} {:>8.0} {:>10.0} {:>12} {:>8} {:>8} {:>8.3}% {:>9}K",
                s.topology,
                s.mode.label(),
                s.events,
                s.convergence_p50_ms,
                s.convergence_p99_ms,
                s.convergence_p99_ms / iv,
                s.messages_per_event,
                s.bytes_per_event,
                s.transient_missing,
                s.transient_loops,
                s.missing,
                s.steady_suppressed_max * 100.0,
                s.memory_mean_bytes / 1024
            );
        }
        for t in &self.targets {
            let _ = writeln!(
                out,
                "{:<7} {:<12} {:<12} {}: {} (target {})",
                t.verdict(),
                t.topology,
                t.mode.label(),
                t.target,
                t.value,
                t.limit
            );
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_use_the_nearest_rank() {
        let v: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(percentile(&v, 50.0), 50.0);
        assert_eq!(percentile(&v, 99.0), 99.0);
        assert_eq!(percentile(&v, 100.0), 100.0);
        assert_eq!(percentile(&[7.0], 99.0), 7.0);
        assert_eq!(percentile(&[], 50.0), 0.0);
    }
}
