//! Multi-engine scenarios on the deterministic in-memory network.

use fabric_core::config::LocalRoute;
use fabric_core::policy::RoutePolicy;
use fabric_core::stats::RejectReason;
use fabric_core::{Message, NodeId, RouteAnnouncement, RouteMetrics, SidecarConfig, Timestamp};
use fabric_engine::RouteEvent;
use fabric_engine::sim::{Fabric, Topology};
use fabric_testkit::engine_builders::{identity, trusted};

fn local(destination: &str) -> LocalRoute {
    LocalRoute { destination: destination.into(), cost: 0, latency_us: 0, reliability: 1.0, tags: vec![] }
}

fn topology(nodes: &[(&str, &[&str])], links: &[(&str, &str, u32)]) -> Topology {
    let yaml = format!(
        "nodes:\n{}links:\n{}",
        nodes
            .iter()
            .map(|(id, dests)| format!(
                "  - id: {id}\n    originate: [{}]\n",
                dests.iter().map(|d| format!("{{destination: {d}}}")).collect::<Vec<_>>().join(", ")
            ))
            .collect::<String>(),
        links
            .iter()
            .map(|(a, b, cost)| format!("  - {{a: {a}, b: {b}, metrics: {{cost: {cost}}}}}\n"))
            .collect::<String>(),
    );
    Topology::from_yaml(&yaml).expect("valid topology")
}

#[test]
fn withdrawal_propagates_across_three_nodes() {
    let topo = topology(&[("a", &["svc"]), ("b", &[]), ("c", &[])], &[("a", "b", 1), ("b", "c", 1)]);
    let mut fabric = Fabric::from_topology(&topo, Timestamp(0)).unwrap();
    fabric.run_until_quiet(10);
    assert_eq!(fabric.next_hop("c", "svc").as_deref(), Some("b"));
    assert_eq!(fabric.best("c", "svc").unwrap().path, vec![NodeId::new("b"), NodeId::new("a")]);
    // a stops originating svc: a withdrawal, re-propagated by b.
    let mut config = fabric.engine("a").config().clone();
    config.originate.clear();
    fabric.apply_config(config).unwrap();
    let rounds = fabric.run_until_quiet(10);
    assert!(fabric.best("b", "svc").is_none());
    assert!(fabric.best("c", "svc").is_none());
    assert_eq!(rounds, 2, "one gossip interval per hop");
    let c_withdrawn =
        fabric.route_events("c").into_iter().filter(|e| matches!(e, RouteEvent::Withdrawn { .. })).count();
    assert_eq!(c_withdrawn, 1);
}

#[test]
fn multi_hop_routing_uses_the_alternate_path_after_link_loss() {
    //   a --1-- b --1-- d
    //   |               |
    //   +--5--- c --5---+
    let topo = topology(
        &[("a", &[]), ("b", &[]), ("c", &[]), ("d", &["svc"])],
        &[("a", "b", 1), ("b", "d", 1), ("a", "c", 5), ("c", "d", 5)],
    );
    let mut fabric = Fabric::from_topology(&topo, Timestamp(0)).unwrap();
    fabric.run_until_quiet(10);
    assert_eq!(fabric.next_hop("a", "svc").as_deref(), Some("b"));
    fabric.disconnect(&"b".into(), &"d".into());
    let rounds = fabric.run_until_quiet(10);
    assert_eq!(fabric.next_hop("a", "svc").as_deref(), Some("c"));
    assert_eq!(fabric.best("a", "svc").unwrap().metrics.cost, 10);
    assert!(rounds <= 3, "converged in {rounds} rounds");
    // b reroutes through a (split horizon kept a from sending b its own route before).
    assert_eq!(fabric.next_hop("b", "svc").as_deref(), Some("a"));
    // Killing c leaves a and b without a route.
    fabric.kill(&"c".into());
    fabric.run_until_quiet(10);
    assert!(fabric.best("a", "svc").is_none());
    assert!(fabric.best("b", "svc").is_none());
}

#[test]
fn spoofed_advertiser_is_rejected_when_signatures_are_required() {
    let topo = topology(&[("a", &["svc"]), ("b", &[]), ("m", &[])], &[("a", "b", 1), ("m", "b", 1)]);
    let keys: Vec<_> = ["a", "b", "m"].iter().map(|n| (*n, identity(n, "k1"))).collect();
    let mut configs: Vec<SidecarConfig> = topo.configs();
    for config in &mut configs {
        config.security.require_signatures = true;
        config.security.trusted_keys = keys.iter().map(|(n, k)| trusted(n, k)).collect();
    }
    let mut fabric = Fabric::new(configs, Timestamp(0)).unwrap();
    for (node, key) in &keys {
        fabric.engine_mut(node).set_signer(Some(key.clone()));
    }
    for link in &topo.links {
        fabric.connect(&link.a, &link.b);
    }
    fabric.run_until_quiet(10);
    assert_eq!(fabric.next_hop("b", "svc").as_deref(), Some("a"));
    assert!(fabric.best("b", "svc").unwrap().signed);
    // m forges an announcement claiming to be a, signed with m's own key under a's key id.
    let mut forged = RouteAnnouncement {
        destination: "svc".into(),
        path: vec!["a".into()],
        hop_count: 1,
        metrics: RouteMetrics { cost: 0, latency_us: 0, reliability: 1.0 },
        advertiser: "a".into(),
        epoch: u64::MAX / 2,
        ttl_ms: 90_000,
        issued_at_ms: None,
        tags: Vec::new().into(),
        signature: None,
    };
    identity("m", "k1").sign_announcement(&mut forged);
    // Over m's own session (advertiser mismatch) and as if on a's session (bad signature).
    fabric.inject(&"b".into(), &"m".into(), Message::Announcement(forged.clone()));
    fabric.inject(&"b".into(), &"a".into(), Message::Announcement(forged));
    let stats = fabric.engine("b").stats();
    assert_eq!(stats.announcement_rejects_total.get(RejectReason::AdvertiserMismatch.label()), Some(&1));
    assert_eq!(stats.announcement_rejects_total.get(RejectReason::BadSignature.label()), Some(&1));
    assert_eq!(fabric.best("b", "svc").unwrap().metrics.cost, 1, "the real route stays");
}

#[test]
fn mixed_policy_fabric_selects_the_expected_next_hops() {
    // s originates gold and bronze services; e reaches s through p (cheap) or q (expensive).
    // e refuses bronze routes from p and everything tagged private from q.
    let topo = topology(
        &[("s", &[]), ("p", &[]), ("q", &[]), ("e", &[])],
        &[("s", "p", 1), ("s", "q", 1), ("p", "e", 1), ("q", "e", 5)],
    );
    let mut configs = topo.configs();
    for config in &mut configs {
        match config.node_id.as_str() {
            "s" => {
                config.originate = vec![
                    LocalRoute { tags: vec!["gold".into()], ..local("pay") },
                    LocalRoute { tags: vec!["bronze".into()], ..local("logs") },
                    LocalRoute { tags: vec!["private".into()], ..local("admin") },
                ];
            }
            "e" => {
                for neighbor in &mut config.neighbors {
                    let mut policy = RoutePolicy::default();
                    policy.tags.deny = vec![if neighbor.id.as_str() == "p" { "bronze" } else { "private" }.into()];
                    neighbor.import = Some(policy);
                }
            }
            "q" => {
                // q does not export private routes at all.
                config.export_policy.tags.deny = vec!["private".into()];
            }
            _ => {}
        }
    }
    let mut fabric = Fabric::new(configs, Timestamp(0)).unwrap();
    for link in &topo.links {
        fabric.connect(&link.a, &link.b);
    }
    fabric.run_until_quiet(10);
    assert_eq!(fabric.next_hop("e", "pay").as_deref(), Some("p"), "cheapest");
    assert_eq!(fabric.next_hop("e", "logs").as_deref(), Some("q"), "bronze refused from p");
    assert_eq!(fabric.next_hop("e", "admin").as_deref(), Some("p"), "q never exports private");
    let trace = fabric.engine("e").explain("logs", fabric.now()).unwrap();
    assert_eq!(trace.candidates.len(), 2);
    assert!(format!("{:?}", trace.candidates[1].status).contains("bronze"));
}

#[test]
fn kill_in_a_mesh_converges_and_every_table_is_consistent() {
    // Ring of 6 with one chord; every node originates its own service.
    let names = ["n0", "n1", "n2", "n3", "n4", "n5"];
    let nodes: Vec<(&str, &[&str])> = names.iter().map(|n| (*n, &[][..])).collect();
    let mut links: Vec<(&str, &str, u32)> = (0..6).map(|i| (names[i], names[(i + 1) % 6], 1)).collect();
    links.push(("n0", "n3", 2));
    let mut configs = topology(&nodes, &links).configs();
    for config in &mut configs {
        config.originate = vec![local(&format!("svc-{}", config.node_id))];
    }
    let mut fabric = Fabric::new(configs, Timestamp(0)).unwrap();
    for (a, b, _) in &links {
        fabric.connect(&(*a).into(), &(*b).into());
    }
    fabric.run_until_quiet(20);
    for n in names {
        assert_eq!(fabric.engine(n).routes().len(), 6, "{n} knows every service");
    }
    fabric.kill(&"n1".into());
    fabric.run_until_quiet(20);
    for n in names.iter().filter(|n| **n != "n1") {
        let routes = fabric.engine(n).routes();
        assert_eq!(routes.len(), 5, "{n}: svc-n1 gone, the rest reachable");
        for route in routes {
            assert!(!route.path.iter().any(|hop| hop.as_str() == "n1"), "{n} still routes via n1");
        }
    }
    assert_eq!(fabric.next_hop("n0", "svc-n2").as_deref(), Some("n3"));
}
