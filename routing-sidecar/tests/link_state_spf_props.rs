//! Properties of SPF on random connected graphs: costs and the complete
//! sets of equal-cost next hops equal a brute-force oracle, the cap keeps
//! the lowest ids, and explained paths are real shortest paths.
//!
//! Costs are drawn from 1..=3 (and may differ per direction) so that ties,
//! and therefore multipath, are the common case rather than the exception.

use std::collections::{BTreeMap, BTreeSet};

use fabric_core::NodeId;
use fabric_link_state::Topology;
use fabric_link_state::spf::shortest_paths;
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
}
