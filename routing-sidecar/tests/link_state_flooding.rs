//! One-area link-state networks on the simulated network: flooding
//! converges every router to the brute-force shortest paths, link failures
//! re-converge, ageing and restarts behave, and runs are reproducible.

use std::collections::BTreeSet;
use std::time::Duration;

use fabric_link_state::{LinkStateConfig, LinkStateInput};
use fabric_testkit::link_state_sim::{LinkStateNet, assert_matches_oracle, link_state_churn};
use proptest::prelude::*;

/// A 4x4 grid with unit costs: plenty of equal-cost paths.
fn grid(size: usize) -> Vec<(String, String, u32)> {
    let name = |r: usize, c: usize| format!("g{r}{c}");
    let mut links = Vec::new();
    for r in 0..size {
        for c in 0..size {
            if c + 1 < size {
                links.push((name(r, c), name(r, c + 1), 1));
            }
            if r + 1 < size {
                links.push((name(r, c), name(r + 1, c), 1));
            }
        }
    }
    links
}

fn as_refs(links: &[(String, String, u32)]) -> Vec<(&str, &str, u32)> {
    links.iter().map(|(a, b, c)| (a.as_str(), b.as_str(), *c)).collect()
}

#[test]
fn a_grid_converges_to_the_oracle_and_reconverges_after_each_failure() {
    let links = grid(4);
    let failures = [("g00", "g01"), ("g11", "g12"), ("g22", "g32"), ("g00", "g10")];
    let config = LinkStateConfig { max_paths: 8, ..LinkStateConfig::default() };
    let report = link_state_churn(&as_refs(&links), &failures, &config);
    // Flooding crosses the grid diameter (6 hops) plus the exchange of
    // databases at adjacency start.
    assert!(report.initial_rounds <= 8, "{report:?}");
    for step in &report.steps {
        assert!(step.rounds <= 7, "{step:?}");
        assert!(step.messages > 0 && step.route_changes > 0, "{step:?}");
    }
    // The last failure isolates g00.
    assert_eq!(report.steps.len(), 4);
}

#[test]
fn churn_figures_are_reproducible() {
    let links = grid(3);
    let failures = [("g00", "g01"), ("g11", "g12")];
    let config = LinkStateConfig::default();
    let first = link_state_churn(&as_refs(&links), &failures, &config);
    let second = link_state_churn(&as_refs(&links), &failures, &config);
    assert_eq!(first, second);
}

#[test]
fn a_vanished_node_is_routed_around_at_once_and_ages_out_later() {
    let config = LinkStateConfig::default();
    let mut net = LinkStateNet::new(["a", "b", "c"], &config);
    net.connect_all("x", &[("a", "b", 1), ("b", "c", 1)]);
    net.run_until_quiet(10);
    assert_eq!(net.next_hops("a", "c"), ["b"]);

    // c disappears without a word; b sees its link go down and drops it at
    // once (two-way check), a follows from b's new update.
    net.disconnect("b", "c", "x");
    net.run_until_quiet(10);
    assert!(net.router("a").route(&"c".into()).is_none());
    // c's own update still sits in a's database until it ages out.
    let area = "x".into();
    assert!(net.router("a").lsdb(&area).unwrap().get(&"c".into()).is_some());
    net.advance(config.update_ttl + Duration::from_secs(1));
    net.run_until_quiet(10);
    assert!(net.router("a").lsdb(&area).unwrap().get(&"c".into()).is_none());
}

#[test]
fn a_graceful_shutdown_is_seen_everywhere_before_any_link_fails() {
    let config = LinkStateConfig::default();
    let mut net = LinkStateNet::new(["a", "b", "c", "d"], &config);
    net.connect_all("x", &[("a", "b", 1), ("b", "c", 1), ("c", "d", 1), ("d", "a", 1)]);
    net.run_until_quiet(10);
    assert_eq!(net.next_hops("a", "c"), ["b", "d"]);

    // b flushes its update; the links to it are still up.
    net.input("b", LinkStateInput::Shutdown);
    net.run_until_quiet(10);
    assert_eq!(net.next_hops("a", "c"), ["d"]);
    assert!(net.router("a").route(&"b".into()).is_none());
    let area = "x".into();
    for node in ["a", "c", "d"] {
        let stored = net.router(node).lsdb(&area).unwrap().get(&"b".into()).unwrap().update.clone();
        assert!(stored.is_flush(), "{node} keeps b's flush as a tombstone");
    }
    assert!(net.router("c").counters().flushes_received >= 1);
}

#[test]
fn refreshes_keep_routes_alive_without_new_spf_runs() {
    let config = LinkStateConfig::default();
    let mut net = LinkStateNet::new(["a", "b", "c"], &config);
    net.connect_all("x", &[("a", "b", 1), ("b", "c", 1)]);
    net.run_until_quiet(10);
    let runs = net.router("a").counters().spf_runs;
    // Several TTLs' worth of refreshes.
    for _ in 0..10 {
        net.advance(config.refresh_interval);
        net.run_until_quiet(10);
    }
    assert_eq!(net.next_hops("a", "c"), ["b"]);
    assert_eq!(net.router("a").counters().spf_runs, runs, "refreshes change no link");
    assert!(net.router("a").counters().spf_skipped >= 10);
}

#[test]
fn a_restarted_node_continues_above_its_old_sequence_numbers() {
    let config = LinkStateConfig::default();
    let mut net = LinkStateNet::new(["a", "b", "c"], &config);
    net.connect_all("x", &[("a", "b", 1), ("b", "c", 1), ("a", "c", 3)]);
    net.run_until_quiet(10);
    // A few refreshes make b's sequence grow.
    for _ in 0..3 {
        net.advance(config.refresh_interval);
        net.run_until_quiet(10);
    }
    let area = "x".into();
    let sequence_of_b =
        |net: &LinkStateNet| net.router("a").lsdb(&area).unwrap().get(&"b".into()).unwrap().update.sequence;
    let before = sequence_of_b(&net);
    assert!(before > 3);

    // The fresh b starts at sequence 1, which its neighbors hold as stale;
    // they answer with the copy from its earlier life and b jumps past it.
    net.restart("b");
    net.run_until_quiet(10);
    assert!(sequence_of_b(&net) > before, "{} <= {before}", sequence_of_b(&net));
    assert_eq!(net.router("b").counters().sequence_jumps, 1);
    assert_eq!(net.next_hops("a", "c"), ["b"]);
    assert_eq!(net.next_hops("b", "a"), ["a"]);
}

fn random_links(max_nodes: usize) -> impl Strategy<Value = Vec<(String, String, u32)>> {
    (2..=max_nodes).prop_flat_map(|n| {
        let tree = (1..n).map(|i| (0..i, 1u32..=3)).collect::<Vec<_>>();
        let extra = prop::collection::vec((0..n, 0..n, 1u32..=3), 0..=n);
        (tree, extra).prop_map(move |(tree, extra)| {
            let name = |i: usize| format!("r{i:02}");
            let mut seen = BTreeSet::new();
            let mut links = Vec::new();
            let all =
                tree.into_iter().enumerate().map(|(child, (parent, cost))| (child + 1, parent, cost)).chain(extra);
            for (a, b, cost) in all {
                let pair = (a.min(b), a.max(b));
                if a != b && seen.insert(pair) {
                    links.push((name(pair.0), name(pair.1), cost));
                }
            }
            links
        })
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 32, ..ProptestConfig::default() })]

    #[test]
    fn flooding_converges_every_router_to_the_oracle(links in random_links(24), max_paths in 1usize..4) {
        let config = LinkStateConfig { max_paths, ..LinkStateConfig::default() };
        let nodes: BTreeSet<&str> = links.iter().flat_map(|(a, b, _)| [a.as_str(), b.as_str()]).collect();
        let mut net = LinkStateNet::new(nodes.iter().copied(), &config);
        net.connect_all("x", &as_refs(&links));
        net.run_until_quiet(100);
        assert_matches_oracle(&net, &links, max_paths);
        for (a, _, _) in &links {
            for (b, _, _) in &links {
                if a != b {
                    prop_assert!(net.trace(a, b).is_ok(), "{a} -> {b}: {:?}", net.trace(a, b));
                }
            }
        }
    }
}
