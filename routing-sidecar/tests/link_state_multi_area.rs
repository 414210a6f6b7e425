//! Multi-area link-state on the simulated network: two border routers, a
//! multi-parent area, summary filters and compression. Summaries must reach
//! exactly the permitted areas and never leak into the others.

use std::collections::BTreeSet;

use fabric_core::{DestinationId, NodeId};
use fabric_link_state::{AreaId, AreaPair, LinkStateConfig, LinkStateInput, LocalDestination, RouteScope};
use fabric_testkit::link_state_sim::LinkStateNet;

/// Areas:
/// - `core`: c1 c2 c3 + abr1 abr2 (parent of edge-a, edge-b, dmz);
/// - `edge-a`: abr1 a1 a2 a3 (ring), child of core;
/// - `edge-b`: abr1 b1 b2 abr2 (both border routers), child of core;
/// - `dmz`: abr2 d1 d2, child of core *and* partner;
/// - `partner`: abr2 p1 p2, a root.
///
/// Filters: nothing from dmz enters core; destination a3 never enters core.
const CONFIG: &str = r#"
mode: preferLinkState
areas:
  - id: core
  - id: edge-a
    parents: [core]
  - id: edge-b
    parents: [core]
  - id: dmz
    parents: [core, partner]
  - id: partner
summaryFilters:
  - targetArea: core
    denySourceAreas: [dmz]
    denyDestinations: [a3]
"#;

const NODES: [&str; 14] = ["a1", "a2", "a3", "abr1", "abr2", "b1", "b2", "c1", "c2", "c3", "d1", "d2", "p1", "p2"];

fn config() -> LinkStateConfig {
    LinkStateConfig::from_yaml(CONFIG).unwrap()
}

fn build(configs: Vec<(&'static str, LinkStateConfig)>) -> LinkStateNet {
    let mut net = LinkStateNet::with_configs(configs);
    net.connect_all(
        "core",
        &[
            ("c1", "c2", 1),
            ("c2", "c3", 1),
            ("c3", "c1", 1),
            ("c1", "abr1", 1),
            ("c2", "abr1", 1),
            ("c2", "abr2", 1),
            ("c3", "abr2", 1),
        ],
    );
    net.connect_all("edge-a", &[("abr1", "a1", 1), ("a1", "a2", 1), ("a2", "a3", 1), ("a3", "abr1", 1)]);
    net.connect_all("edge-b", &[("abr1", "b1", 1), ("b1", "b2", 1), ("b2", "abr2", 1)]);
    net.connect_all("dmz", &[("abr2", "d1", 1), ("d1", "d2", 1)]);
    net.connect_all("partner", &[("abr2", "p1", 1), ("p1", "p2", 1)]);
    net.run_until_quiet(50);
    net
}

fn destinations(net: &LinkStateNet, node: &str) -> BTreeSet<String> {
    net.router(node).routes().keys().map(|d| d.to_string()).collect()
}

fn set(names: &[&str]) -> BTreeSet<String> {
    names.iter().map(|s| s.to_string()).collect()
}

/// Source areas of every summary entry stored in `area`'s database, at
/// every router of that area.
fn summarized_sources(net: &LinkStateNet, area: &str) -> BTreeSet<(String, String)> {
    let area = AreaId::from(area);
    net.routers()
        .filter_map(|(_, router)| router.lsdb(&area))
        .flat_map(|lsdb| {
            lsdb.live_updates().flat_map(|u| u.summary.iter().flat_map(|s| s.entries.iter())).collect::<Vec<_>>()
        })
        .map(|entry| (entry.source_area.to_string(), entry.destination.to_string()))
        .collect()
}

#[test]
fn summaries_reach_permitted_parent_areas_only() {
    let net = build(NODES.iter().map(|n| (*n, config())).collect());

    // Core sees edge-a (but not the denied a3) and edge-b through
    // summaries, nothing of dmz (denied) or partner (not a child of core).
    let core_view = set(&["a1", "a2", "abr1", "abr2", "b1", "b2", "c2", "c3"]);
    assert_eq!(destinations(&net, "c1"), core_view);
    for node in ["c1", "c2", "c3"] {
        let routes = net.router(node).routes();
        assert_eq!(routes[&NodeId::from("a1")].scope, RouteScope::InterArea);
        assert!(!routes.contains_key(&NodeId::from("a3")), "{node} must not learn the denied a3");
        assert!(!routes.keys().any(|d| d.as_str().starts_with('d') || d.as_str().starts_with('p')));
    }
    // The core databases carry no dmz entry and no a3.
    let in_core = summarized_sources(&net, "core");
    assert!(!in_core.is_empty());
    assert!(
        in_core.iter().all(|(source, destination)| (source == "edge-a" || source == "edge-b") && destination != "a3")
    );

    // Partner gets dmz (its child) and nothing else.
    assert_eq!(destinations(&net, "p1"), set(&["abr2", "d1", "d2", "p2"]));
    assert!(summarized_sources(&net, "partner").iter().all(|(source, _)| source == "dmz"));

    // Summaries only flow up: child areas learn nothing from outside.
    assert_eq!(destinations(&net, "a1"), set(&["a2", "a3", "abr1"]));
    assert_eq!(destinations(&net, "d1"), set(&["abr2", "d2"]));
    assert_eq!(destinations(&net, "b1"), set(&["abr1", "abr2", "b2"]));
    for child in ["edge-a", "edge-b", "dmz"] {
        assert!(summarized_sources(&net, child).is_empty(), "no summary inside {child}");
    }

    // Export counters at the border router name (source, target) pairs.
    let pair = |s: &str, t: &str| AreaPair { source_area: AreaId::from(s), target_area: AreaId::from(t) };
    let abr2 = net.router("abr2").exports();
    assert_eq!(abr2.counts[&pair("dmz", "core")].exported, 0);
    assert_eq!(abr2.counts[&pair("dmz", "core")].filtered, 2, "d1 and d2");
    assert_eq!(abr2.counts[&pair("dmz", "partner")].exported, 2);
    let abr1 = net.router("abr1").exports();
    assert_eq!(abr1.counts[&pair("edge-a", "core")].filtered, 1, "a3");
}

#[test]
fn forwarding_through_border_routers_reaches_every_summarized_destination() {
    let net = build(NODES.iter().map(|n| (*n, config())).collect());
    assert_eq!(net.trace("c3", "a1").unwrap(), [["c3", "c1", "abr1", "a1"], ["c3", "c2", "abr1", "a1"]]);
    // b2 is summarized by both border routers; c2 is next to both.
    let route = net.router("c2").route(&NodeId::from("b2")).unwrap().clone();
    assert_eq!((route.cost, route.next_hops.clone()), (2, vec![NodeId::from("abr2")]));
    let route = net.router("c1").route(&NodeId::from("b2")).unwrap().clone();
    assert_eq!(route.cost, 3);
    assert_eq!(
        route.next_hops,
        [NodeId::from("abr1"), NodeId::from("c2"), NodeId::from("c3")],
        "abr1 then b1, or c2 or c3 then abr2"
    );
    for (from, to) in [("c1", "b2"), ("c3", "b1"), ("p2", "d2"), ("c1", "a2")] {
        let paths = net.trace(from, to).unwrap();
        assert!(!paths.is_empty(), "{from} -> {to}");
    }

    // The explain view names the border routers and the summary cost.
    let explanation = net.router("c1").explain(&NodeId::from("b2"));
    let via: Vec<(String, Option<String>, Option<u64>)> = explanation
        .paths
        .iter()
        .map(|p| (p.next_hop.to_string(), p.via_border_router.as_ref().map(|b| b.to_string()), p.summary_cost))
        .collect();
    assert_eq!(
        via,
        [
            ("abr1".into(), Some("abr1".into()), Some(2)),
            ("c2".into(), Some("abr2".into()), Some(1)),
            ("c3".into(), Some("abr2".into()), Some(1)),
        ]
    );
}

#[test]
fn receivers_refuse_summaries_a_misconfigured_border_router_leaks() {
    // abr2 runs without the filters: it exports dmz into core anyway. The
    // other core routers still apply the operator's filters on receipt.
    let mut configs: Vec<(&str, LinkStateConfig)> = NODES.iter().map(|n| (*n, config())).collect();
    let leaky = configs.iter_mut().find(|(n, _)| *n == "abr2").unwrap();
    leaky.1.summary_filters.clear();
    let net = build(configs);

    assert!(summarized_sources(&net, "core").iter().any(|(source, _)| source == "dmz"), "abr2 leaks");
    for node in ["c1", "c2", "c3", "abr1"] {
        let routes = destinations(&net, node);
        assert!(!routes.contains("d1") && !routes.contains("d2"), "{node} uses leaked dmz routes: {routes:?}");
    }
    let refused = &net.router("c1").counters().summary_entries_refused;
    let pair = AreaPair { source_area: AreaId::from("dmz"), target_area: AreaId::from("core") };
    assert!(refused[&pair] >= 2, "{refused:?}");
}

#[test]
fn a_failure_inside_a_child_area_changes_the_summary_cost_upstream() {
    let mut net = build(NODES.iter().map(|n| (*n, config())).collect());
    assert_eq!(net.cost("c1", "a1"), Some(2));
    net.disconnect("abr1", "a1", "edge-a");
    net.run_until_quiet(50);
    // abr1 now reaches a1 around the ring (abr1-a3-a2-a1), cost 3.
    assert_eq!(net.cost("c1", "a1"), Some(4));
    assert_eq!(net.trace("c1", "a1").unwrap(), [["c1", "abr1", "a3", "a2", "a1"]]);
}

#[test]
fn compression_caps_what_a_large_child_area_exports() {
    // A 30-node ring "big" under "top"; at most 5 entries cross, chosen by
    // reliability, then latency, then id: the nodes nearest the border
    // router have the lowest latency.
    let yaml = r#"
areas:
  - id: top
  - id: big
    parents: [top]
    maxSummaryEntries: 5
"#;
    let config = LinkStateConfig::from_yaml(yaml).unwrap();
    let ring: Vec<String> = (0..30).map(|i| format!("r{i:02}")).collect();
    let mut names: Vec<&str> = ring.iter().map(String::as_str).collect();
    names.extend(["abr", "t1"]);
    let mut net = LinkStateNet::new(names.iter().copied(), &config);
    let mut big: Vec<(&str, &str, u32)> = (0..30).map(|i| (names[i], names[(i + 1) % 30], 1)).collect();
    big.push(("abr", "r00", 1));
    net.connect_all("big", &big);
    net.connect_all("top", &[("abr", "t1", 1)]);
    net.run_until_quiet(100);

    let exported: BTreeSet<String> = destinations(&net, "t1").into_iter().filter(|d| d != "abr").collect();
    assert_eq!(exported, set(&["r00", "r01", "r02", "r28", "r29"]));
    let pair = AreaPair { source_area: AreaId::from("big"), target_area: AreaId::from("top") };
    let counts = net.router("abr").exports().counts[&pair];
    assert_eq!((counts.exported, counts.compressed), (5, 25));
    assert!(
        net.router("abr")
            .lsdb(&AreaId::from("top"))
            .unwrap()
            .live_updates()
            .all(|u| u.summary.as_ref().is_none_or(|s| s.entries.len() <= 5))
    );
}

#[test]
fn every_router_of_an_area_sees_the_same_topology() {
    let net = build(NODES.iter().map(|n| (*n, config())).collect());
    for area in ["core", "edge-a", "edge-b", "dmz", "partner"] {
        let area = AreaId::from(area);
        let fingerprints: BTreeSet<u64> =
            net.routers().filter_map(|(_, router)| router.topology_fingerprint(&area)).collect();
        assert_eq!(fingerprints.len(), 1, "area {area}: {fingerprints:?}");
    }
}

fn serve(net: &mut LinkStateNet, node: &str, names: &[(&str, u32)]) {
    let destinations = names
        .iter()
        .map(|(name, metric)| LocalDestination { name: DestinationId::from(*name), metric: *metric, tags: Vec::new() })
        .collect();
    net.input(node, LinkStateInput::LocalDestinations(destinations));
}

fn named_route(net: &LinkStateNet, node: &str, name: &str) -> Option<(u64, RouteScope, Vec<String>)> {
    net.router(node)
        .destination_route(&DestinationId::from(name))
        .map(|route| (route.cost, route.scope, route.next_hops.iter().map(|h| h.to_string()).collect()))
}

#[test]
fn destination_names_climb_the_area_graph_through_permitted_filters_only() {
    let mut net = build(NODES.iter().map(|n| (*n, config())).collect());
    serve(&mut net, "a2", &[("web", 2)]);
    serve(&mut net, "b2", &[("web", 0)]);
    serve(&mut net, "d1", &[("dmz-svc", 0)]);
    net.run_until_quiet(50);

    // Inside edge-a, a2 serves web: one hop, then its metric.
    assert_eq!(named_route(&net, "a1", "web"), Some((3, RouteScope::IntraArea, vec!["a2".to_string()])));
    // abr1 summarizes web at its cheapest (b2 in edge-b, cost 2), abr2 at
    // cost 1; from c1 both ways cost 3, so all their first hops are used.
    let expected = vec!["abr1".to_string(), "c2".to_string(), "c3".to_string()];
    assert_eq!(named_route(&net, "c1", "web"), Some((3, RouteScope::InterArea, expected)));
    let via: Vec<&str> = net
        .router("c1")
        .destination_route(&DestinationId::from("web"))
        .unwrap()
        .via
        .iter()
        .map(NodeId::as_str)
        .collect();
    assert_eq!(via, ["abr1", "abr2"]);

    // Nothing of dmz enters core; partner, dmz's other parent, gets it.
    assert_eq!(named_route(&net, "c1", "dmz-svc"), None);
    assert_eq!(named_route(&net, "p1", "dmz-svc"), Some((2, RouteScope::InterArea, vec!["abr2".to_string()])));
    // Summaries only flow up: edge-a learns nothing of b2's web.
    let explanation = net.router("a1").explain_destination(&DestinationId::from("web"));
    assert_eq!(explanation.offers.len(), 1);

    // b2 stops serving web: core falls back to a2's, through abr1 only.
    serve(&mut net, "b2", &[]);
    net.run_until_quiet(50);
    assert_eq!(named_route(&net, "c1", "web"), Some((5, RouteScope::InterArea, vec!["abr1".to_string()])));
}
