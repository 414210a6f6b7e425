//! Properties of SPF on random connected graphs: costs and the complete
//! sets of equal-cost next hops equal a brute-force oracle, the cap keeps
//! the lowest ids, explained paths are real shortest paths, and routes to
//! destination names pick the cheapest serving nodes (cost plus metric)
//! with the union of their next hops.
//!
//! Costs are drawn from 1..=3 (and may differ per direction) so that ties,
//! and therefore multipath, are the common case rather than the exception.

use std::collections::{BTreeMap, BTreeSet};

use fabric_core::time::Timestamp;
use fabric_core::{DestinationId, NodeId, Tag};
use fabric_link_state::spf::shortest_paths;
use fabric_link_state::{
    AreaId, DestinationAdvert, LinkAdvert, LinkStateConfig, LinkStateInput, LinkStateRouter, LinkStateUpdate,
    LocalDestination, LocalLink, SpfThrottleConfig, Topology,
};
use proptest::prelude::*;

/// A connected graph: node names (shuffled, so index order is not id
/// order), directed edges by generator index, and the source.
#[derive(Clone, Debug)]
struct Graph {
    names: Vec<String>,
    edges: Vec<(usize, usize, u32)>,
    source: usize,
}

fn graph(max_nodes: usize) -> impl Strategy<Value = Graph> {
    (2..=max_nodes)
        .prop_flat_map(|n| {
            let names = Just((0..n).map(|i| format!("n{i:03}")).collect::<Vec<_>>()).prop_shuffle();
            // A random spanning tree keeps the graph connected; extra links
            // make cycles; each direction has its own cost.
            let tree = (1..n).map(|i| (0..i, 1u32..=3, 1u32..=3)).collect::<Vec<_>>();
            let extra = prop::collection::vec((0..n, 0..n, 1u32..=3, 1u32..=3), 0..=2 * n);
            (names, tree, extra, 0..n)
        })
        .prop_map(|(names, tree, extra, source)| {
            let mut edges = Vec::new();
            for (child, (parent, forward, backward)) in tree.into_iter().enumerate() {
                edges.push((child + 1, parent, forward));
                edges.push((parent, child + 1, backward));
            }
            for (a, b, forward, backward) in extra {
                edges.push((a, b, forward));
                edges.push((b, a, backward));
            }
            Graph { names, edges, source }
        })
}

/// Bellman-Ford over the directed edges with the cheapest parallel edge.
fn distances(n: usize, edges: &[(usize, usize, u32)], from: usize) -> Vec<Option<u64>> {
    let mut dist = vec![None; n];
    dist[from] = Some(0);
    for _ in 0..n {
        let mut changed = false;
        for &(a, b, cost) in edges {
            if a == b {
                continue;
            }
            if let Some(da) = dist[a] {
                let candidate = da + u64::from(cost);
                if dist[b].is_none_or(|db| candidate < db) {
                    dist[b] = Some(candidate);
                    changed = true;
                }
            }
        }
        if !changed {
            break;
        }
    }
    dist
}

/// Per destination name: cost and the set of first-hop names, by brute
/// force: neighbor h is a first hop to d iff cost(self, h) + dist(h, d) ==
/// dist(self, d).
fn oracle(graph: &Graph) -> BTreeMap<String, (u64, BTreeSet<String>)> {
    let n = graph.names.len();
    let from_source = distances(n, &graph.edges, graph.source);
    let mut first_link: BTreeMap<usize, u64> = BTreeMap::new();
    for &(a, b, cost) in &graph.edges {
        if a == graph.source && b != a {
            let entry = first_link.entry(b).or_insert(u64::from(cost));
            *entry = (*entry).min(u64::from(cost));
        }
    }
    let from_neighbor: BTreeMap<usize, Vec<Option<u64>>> =
        first_link.keys().map(|&h| (h, distances(n, &graph.edges, h))).collect();
    (0..n)
        .filter(|&d| d != graph.source)
        .filter_map(|d| {
            let dist = from_source[d]?;
            let hops = first_link
                .iter()
                .filter(|&(h, link)| from_neighbor[h][d].is_some_and(|rest| link + rest == dist))
                .map(|(h, _)| graph.names[*h].clone())
                .collect();
            Some((graph.names[d].clone(), (dist, hops)))
        })
        .collect()
}

fn topology(graph: &Graph) -> Topology {
    let ids: Vec<NodeId> = graph.names.iter().map(|n| NodeId::from(n.as_str())).collect();
    Topology::from_named_edges(&ids, graph.edges.iter().map(|&(a, b, cost)| (&ids[a], &ids[b], cost)))
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]

    #[test]
    fn spf_costs_and_equal_cost_next_hops_match_the_oracle(graph in graph(200)) {
        let topology = topology(&graph);
        let source = topology.index_of(&NodeId::from(graph.names[graph.source].as_str())).unwrap();
        let spf = shortest_paths(&topology, source);
        let actual: BTreeMap<String, (u64, BTreeSet<String>)> = spf.reachable()[1..]
            .iter()
            .map(|&node| {
                let hops = spf.next_hops(node, usize::MAX).into_iter().map(|h| topology.node(h).to_string()).collect();
                (topology.node(node).to_string(), (spf.cost(node).unwrap(), hops))
            })
            .collect();
        prop_assert_eq!(actual, oracle(&graph));
    }

    #[test]
    fn capped_next_hops_are_the_lowest_ids_of_the_full_set(graph in graph(60), cap in 1usize..4) {
        let topology = topology(&graph);
        let source = topology.index_of(&NodeId::from(graph.names[graph.source].as_str())).unwrap();
        let spf = shortest_paths(&topology, source);
        for &node in &spf.reachable()[1..] {
            let all: Vec<&NodeId> = spf.next_hops(node, usize::MAX).into_iter().map(|h| topology.node(h)).collect();
            let capped: Vec<&NodeId> = spf.next_hops(node, cap).into_iter().map(|h| topology.node(h)).collect();
            prop_assert!(all.windows(2).all(|w| w[0] < w[1]), "next hops in id order");
            prop_assert_eq!(&capped[..], &all[..all.len().min(cap)]);
            prop_assert_eq!(spf.next_hop_count(node), all.len());
        }
    }

    #[test]
    fn explained_paths_are_shortest_paths_through_their_next_hop(graph in graph(60)) {
        let topology = topology(&graph);
        let source = topology.index_of(&NodeId::from(graph.names[graph.source].as_str())).unwrap();
        let spf = shortest_paths(&topology, source);
        for &node in &spf.reachable()[1..] {
            for hop in spf.next_hops(node, usize::MAX) {
                let path = spf.path_via(&topology, node, hop).expect("every next hop has a path");
                prop_assert_eq!(path[0], source);
                prop_assert_eq!(path[1], hop);
                prop_assert_eq!(*path.last().unwrap(), node);
                let cost: u64 = path
                    .windows(2)
                    .map(|w| u64::from(topology.edge_between(w[0], w[1]).expect("path follows edges").cost))
                    .sum();
                prop_assert_eq!(Some(cost), spf.cost(node));
            }
        }
    }

    #[test]
    fn destination_routes_take_the_cheapest_servers_and_pool_their_next_hops(
        graph in graph(40),
        served in prop::collection::vec(prop::collection::vec((0usize..4, 0u32..=3), 0..=2), 40),
    ) {
        let n = graph.names.len();
        // Each node's links: the cheapest edge per neighbor, no self links.
        let mut links: Vec<BTreeMap<usize, u32>> = vec![BTreeMap::new(); n];
        for &(a, b, cost) in &graph.edges {
            if a != b {
                let entry = links[a].entry(b).or_insert(cost);
                *entry = (*entry).min(cost);
            }
        }
        // Each node serves a few of d0..d3, each name once with its metric.
        let destinations: Vec<BTreeMap<String, u32>> = (0..n)
            .map(|node| served[node].iter().map(|&(name, metric)| (format!("d{name}"), metric)).collect())
            .collect();
        let area = AreaId::from("backbone");
        let name = |index: usize| NodeId::from(graph.names[index].as_str());
        let source = graph.source;
        let config =
            LinkStateConfig { max_paths: 64, spf_throttle: SpfThrottleConfig::IMMEDIATE, ..LinkStateConfig::default() };
        let mut router = LinkStateRouter::new(name(source), config).unwrap();
        let now = Timestamp(1_000_000);
        let local: Vec<LocalLink> = links[source]
            .iter()
            .map(|(&to, &cost)| LocalLink { neighbor: name(to), area: area.clone(), cost, latency_us: 1, reliability: 1.0 })
            .collect();
        let mine: Vec<LocalDestination> = destinations[source]
            .iter()
            .map(|(d, &metric)| LocalDestination { name: DestinationId::from(d.as_str()), metric, tags: vec![Tag::from("t")] })
            .collect();
        let mut inputs = vec![LinkStateInput::LocalDestinations(mine), LinkStateInput::LocalLinksChanged { links: local }];
        let from = name(*links[source].keys().next().expect("connected"));
        for node in (0..n).filter(|&node| node != source) {
            let update = LinkStateUpdate {
                origin: name(node),
                area: area.clone(),
                sequence: 1,
                ttl_ms: 600_000,
                links: links[node]
                    .iter()
                    .map(|(&to, &cost)| LinkAdvert { neighbor: name(to), cost, latency_us: 1, reliability: 1.0 })
                    .collect(),
                summary: None,
                destinations: destinations[node]
                    .iter()
                    .map(|(d, &metric)| DestinationAdvert { name: DestinationId::from(d.as_str()), metric, tags: Vec::new() })
                    .collect(),
                signature: None,
            };
            inputs.push(LinkStateInput::UpdateReceived { from: from.clone(), update });
        }
        router.handle_batch(inputs, now);

        // Oracle: per name not served by the source, the minimum over
        // serving nodes of distance plus metric, and the union of the first
        // hops toward every serving node that achieves it.
        let nodes = oracle(&graph);
        let mut expected: BTreeMap<String, (u64, BTreeSet<String>)> = BTreeMap::new();
        for node in (0..n).filter(|&node| node != source) {
            let Some((distance, hops)) = nodes.get(&graph.names[node]) else { continue };
            for (d, &metric) in &destinations[node] {
                if destinations[source].contains_key(d) {
                    continue;
                }
                let cost = distance + u64::from(metric);
                let entry = expected.entry(d.clone()).or_insert((cost, BTreeSet::new()));
                if cost < entry.0 {
                    *entry = (cost, BTreeSet::new());
                }
                if cost == entry.0 {
                    entry.1.extend(hops.iter().cloned());
                }
            }
        }
        let actual: BTreeMap<String, (u64, BTreeSet<String>)> = router
            .destination_routes()
            .iter()
            .map(|(d, route)| (d.to_string(), (route.cost, route.next_hops.iter().map(|h| h.to_string()).collect())))
            .collect();
        prop_assert_eq!(actual, expected);
    }
}
