//! A small soak (`fabric_soak`): both protocols on the three
//! fabrics with a short schedule, checking the plan's targets where they
//! hold, the oracle's verdicts, and that the same seed gives the same CSV.
//! docs/soak.md has the 1,000-node figures.

use std::time::Duration;

use fabric_soak::{self as soak, Mode, SoakOptions, SoakReport, TopologyKind};

fn options(nodes: usize, dampening: bool, hold_down: Duration) -> SoakOptions {
    SoakOptions {
        nodes,
        seed: 7,
        topologies: TopologyKind::ALL.to_vec(),
        duration: Duration::from_secs(20 * 60),
        scenarios: 16,
        dampening,
        hold_down,
        ..SoakOptions::default()
    }
}

fn run(options: &SoakOptions) -> SoakReport {
    soak::run(options, &mut |_| {}).expect("soak runs")
}

#[test]
fn small_soak_meets_the_targets_and_routes_match_the_oracle() {
    // Without hold-down and dampening, every route must be back to what the
    // oracle says once the network is quiet after each event.
    let report = run(&options(40, false, Duration::ZERO));
    println!("{}", report.text());
    for run in &report.runs {
        for mode in &run.modes {
            let label = format!("{} {}", run.topology, mode.mode.label());
            assert!(mode.initial.quiet, "{label}: initial convergence");
            assert_eq!(
                (mode.initial.missing, mode.initial.loops, mode.initial.black_holes),
                (0, 0, 0),
                "{label}: after the initial convergence"
            );
            for event in &mode.events {
                assert!(event.quiet, "{label}: {} {} not quiet", event.kind, event.subject);
                assert_eq!(
                    (event.missing, event.loops, event.black_holes),
                    (0, 0, 0),
                    "{label}: {} {}",
                    event.kind,
                    event.subject
                );
                if mode.mode == Mode::LinkState && run.areas == 1 {
                    assert_eq!(event.suboptimal, 0, "{label}: link-state takes shortest paths");
                }
            }
            assert_eq!(mode.forged_accepted, 0, "{label}: a forged or unsigned announcement was accepted");
        }
    }
    let injected: u64 = report.summaries.iter().map(|s| s.forged_injected).sum();
    assert!(injected > 0, "the schedules inject forgeries");
    for summary in &report.summaries {
        assert_eq!(summary.steady_suppressed_max, 0.0, "nothing to suppress without hold-down and dampening");
        if summary.mode == Mode::LinkState && summary.topology != "multi-area" {
            let one_hop = summary.withdrawal_one_hop_max_intervals.expect("the schedule has withdrawals");
            assert!(one_hop <= 2.0, "{}: link-state withdrawal took {one_hop} intervals", summary.topology);
        }
    }
}

#[test]
fn same_seed_gives_identical_csv_and_another_seed_does_not() {
    let mut small = options(24, true, Duration::from_secs(1));
    small.topologies = vec![TopologyKind::RingRandom];
    small.scenarios = 8;
    let a = run(&small);
    let b = run(&small);
    assert_eq!(a.events_csv(), b.events_csv());
    assert_eq!(a.summary_csv(), b.summary_csv());
    assert_eq!(a.steady_csv(), b.steady_csv());
    small.seed = 8;
    assert_ne!(run(&small).events_csv(), a.events_csv());
}
