//! `drain_effects_upto`: a table flushed in slices gives the same effects,
//! in the same order, as one flush, and end-of-table comes after the last
//! announcement even when inputs arrive between the slices.

use fabric_core::config::LocalRoute;
use fabric_core::{Message, NodeId, Timestamp};
use fabric_engine::sim::{Topology, TopologyLink, TopologyNode};
use fabric_engine::{Effect, Engine};

const NOW: Timestamp = Timestamp(1_700_000_000_000);

/// `a` originates `routes` destinations and has neighbors `b` and `c`.
fn engine_a(routes: usize) -> Engine {
    let originate = (0..routes)
        .map(|i| LocalRoute {
            destination: format!("svc-{i:04}").into(),
            cost: 0,
            latency_us: 0,
            reliability: 1.0,
            tags: Vec::new(),
        })
        .collect();
    let node = |id: &str, originate| TopologyNode { id: NodeId::from(id), originate };
    let link = |b: &str| TopologyLink { a: NodeId::from("a"), b: NodeId::from(b), metrics: Default::default() };
    let topology = Topology {
        nodes: vec![node("a", originate), node("b", Vec::new()), node("c", Vec::new())],
        links: vec![link("b"), link("c")],
        fail_node: None,
    };
    let config = topology.configs().into_iter().find(|c| c.node_id.as_str() == "a").expect("a's config");
    let mut engine = Engine::new(config, NOW).expect("valid config");
    engine.drain_effects(NOW);
    engine
}

/// What was sent, as (recipients, destination or "end-of-table"), epochs
/// left out: they are the same either way.
fn sends(effects: &[Effect]) -> Vec<(Vec<String>, String)> {
    effects
        .iter()
        .filter_map(|effect| match effect {
            Effect::Send { to, message } => {
                let what = match &**message {
                    Message::EndOfTable { .. } => "end-of-table".to_string(),
                    other => other.destination().expect("routing message").to_string(),
                };
                Some((to.iter().map(ToString::to_string).collect(), what))
            }
            _ => None,
        })
        .collect()
}

#[test]
fn a_table_drained_in_slices_equals_one_drain() {
    let mut whole = engine_a(300);
    whole.neighbor_up(NOW, &NodeId::from("b"));
    let expected = whole.drain_effects(NOW);

    let mut sliced = engine_a(300);
    sliced.neighbor_up(NOW, &NodeId::from("b"));
    let mut effects = Vec::new();
    let mut slices = 1;
    while sliced.drain_effects_upto(NOW, 7, &mut effects) {
        slices += 1;
    }
    assert_eq!(slices, 300usize.div_ceil(7), "one slice per 7 destinations");
    assert_eq!(effects, expected);
    assert_eq!(sends(&effects).len(), 301, "300 announcements and end-of-table");
}

#[test]
fn end_of_table_follows_every_announcement_when_inputs_come_between_slices() {
    let mut engine = engine_a(100);
    engine.neighbor_up(NOW, &NodeId::from("b"));
    let mut effects = Vec::new();
    assert!(engine.drain_effects_upto(NOW, 30, &mut effects), "more pending after the first slice");
    engine.neighbor_up(NOW, &NodeId::from("c"));
    while engine.drain_effects_upto(NOW, 30, &mut effects) {}
    let sent = sends(&effects);
    for neighbor in ["b", "c"] {
        let to_neighbor: Vec<&String> =
            sent.iter().filter(|(to, _)| to.iter().any(|n| n == neighbor)).map(|(_, what)| what).collect();
        assert_eq!(to_neighbor.len(), 101, "{neighbor}: every destination once, then end-of-table");
        assert_eq!(to_neighbor.last().map(|s| s.as_str()), Some("end-of-table"), "{neighbor}");
    }
}
