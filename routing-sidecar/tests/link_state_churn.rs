//! Churn comparison: the same fabric and the same link failures through the
//! path-vector engine (`fabric_engine::sim::Fabric`) and through link-state
//! routers (`link_state_sim`), with the same round semantics (one round =
//! one gossip interval). Reports rounds until quiet and messages delivered
//! per failure; run with `--nocapture` to see the table.

use fabric_core::config::{LinkMetrics, LocalRoute};
use fabric_core::{NodeId, Timestamp};
use fabric_engine::sim::{Fabric, Topology, TopologyLink, TopologyNode};
use fabric_link_state::LinkStateConfig;
use fabric_testkit::link_state_sim::{ChurnReport, ChurnStep, LinkStateNet, START, link_state_churn};

/// A 4x4 grid with unit costs plus two diagonals of cost 2: many equal-cost
/// paths, so both protocols have choices to make after each failure.
fn fabric_links() -> Vec<(String, String, u32)> {
    let name = |r: usize, c: usize| format!("g{r}{c}");
    let mut links = Vec::new();
    for r in 0..4 {
        for c in 0..4 {
            if c + 1 < 4 {
                links.push((name(r, c), name(r, c + 1), 1));
            }
            if r + 1 < 4 {
                links.push((name(r, c), name(r + 1, c), 1));
            }
        }
    }
    links.push(("g00".into(), "g11".into(), 2));
    links.push(("g22".into(), "g33".into(), 2));
    links
}

const FAILURES: [(&str, &str); 4] = [("g00", "g01"), ("g11", "g12"), ("g22", "g33"), ("g21", "g22")];

/// The path-vector half: every node originates a destination named after
/// itself, so both protocols route to the same set of targets.
fn path_vector_churn(links: &[(String, String, u32)], failures: &[(&str, &str)]) -> (ChurnReport, Fabric) {
    let mut names: Vec<&String> = links.iter().flat_map(|(a, b, _)| [a, b]).collect();
    names.sort();
    names.dedup();
    let topology = Topology {
        nodes: names
            .iter()
            .map(|n| TopologyNode {
                id: NodeId::from(n.as_str()),
                originate: vec![LocalRoute {
                    destination: n.as_str().into(),
                    cost: 0,
                    latency_us: 0,
                    reliability: 1.0,
                    tags: vec![],
                }],
            })
            .collect(),
        links: links
            .iter()
            .map(|(a, b, cost)| TopologyLink {
                a: a.as_str().into(),
                b: b.as_str().into(),
                metrics: LinkMetrics { cost: *cost, ..LinkMetrics::default() },
            })
            .collect(),
        fail_node: None,
    };
    let mut fabric = Fabric::from_topology(&topology, Timestamp(START.0)).expect("valid topology");
    let initial_rounds = fabric.run_until_quiet(1_000);
    let initial_messages = fabric.messages_delivered;
    let mut steps = Vec::new();
    for (a, b) in failures {
        let before = fabric.messages_delivered;
        fabric.disconnect(&NodeId::from(*a), &NodeId::from(*b));
        let rounds = fabric.run_until_quiet(1_000);
        steps.push(ChurnStep {
            failed: (a.to_string(), b.to_string()),
            rounds,
            messages: fabric.messages_delivered - before,
            route_changes: 0,
        });
    }
    (ChurnReport { initial_rounds, initial_messages, steps }, fabric)
}

fn as_refs(links: &[(String, String, u32)]) -> Vec<(&str, &str, u32)> {
    links.iter().map(|(a, b, c)| (a.as_str(), b.as_str(), *c)).collect()
}

#[test]
fn path_vector_and_link_state_converge_under_the_same_failures() {
    let links = fabric_links();
    let config = LinkStateConfig { max_paths: 64, ..LinkStateConfig::default() };
    let link_state = link_state_churn(&as_refs(&links), &FAILURES, &config);
    let (path_vector, fabric) = path_vector_churn(&links, &FAILURES);

    println!("{:<14} {:>10} {:>10} {:>12} {:>12}", "event", "pv rounds", "ls rounds", "pv messages", "ls messages");
    println!(
        "{:<14} {:>10} {:>10} {:>12} {:>12}",
        "initial",
        path_vector.initial_rounds,
        link_state.initial_rounds,
        path_vector.initial_messages,
        link_state.initial_messages
    );
    for (pv, ls) in path_vector.steps.iter().zip(&link_state.steps) {
        println!(
            "{:<14} {:>10} {:>10} {:>12} {:>12}",
            format!("fail {}-{}", pv.failed.0, pv.failed.1),
            pv.rounds,
            ls.rounds,
            pv.messages,
            ls.messages
        );
        assert!(pv.rounds > 0 && ls.rounds > 0);
    }

    // After the last failure both protocols agree: every path-vector next
    // hop is one of the link-state equal-cost next hops, at the same cost.
    let mut net = LinkStateNet::new(fabric.node_ids().iter().map(NodeId::as_str), &config);
    let live: Vec<(&str, &str, u32)> = as_refs(&links)
        .into_iter()
        .filter(|(a, b, _)| !FAILURES.iter().any(|(x, y)| (a == x && b == y) || (a == y && b == x)))
        .collect();
    net.connect_all("fabric", &live);
    net.run_until_quiet(100);
    for node in fabric.node_ids() {
        for destination in fabric.node_ids() {
            if node == destination {
                continue;
            }
            let (node, destination) = (node.as_str(), destination.as_str());
            let best = fabric.best(node, destination).unwrap_or_else(|| panic!("pv: {node} -> {destination}"));
            let ls_hops = net.next_hops(node, destination);
            assert!(
                ls_hops.contains(&best.next_hop.to_string()),
                "{node} -> {destination}: pv {} not in ls {ls_hops:?}",
                best.next_hop
            );
            assert_eq!(net.cost(node, destination), Some(u64::from(best.metrics.cost)), "{node} -> {destination}");
        }
    }
}
