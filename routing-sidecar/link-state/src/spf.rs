//! Shortest path first (Dijkstra) from this node, with equal-cost multipath.
//!
//! For every reachable node the result holds its cost and the *complete* set
//! of first hops (neighbors of the source) that start some shortest path to
//! it. The set is a bitset over the source's neighbor slots; because the CSR
//! sorts a node's edges by target index and indices follow node id order,
//! slot order is next-hop id order, so capping to `max_paths` by taking the
//! lowest bits is the deterministic "lowest ids first" choice.
//!
//! The sets are built during the Dijkstra run itself: when a node is settled
//! every predecessor on a shortest path has been settled before it (costs
//! are at least 1), so its set is complete and can be pushed along its
//! edges: copied on a strict improvement, OR-ed on a tie.

use std::cmp::Reverse;
use std::collections::BinaryHeap;

use crate::topology::Topology;

const UNREACHED: u64 = u64::MAX;
const NO_PARENT: u32 = u32::MAX;

/// Outcome of one SPF run, in dense indices of the topology it ran on.
#[derive(Clone, Debug, PartialEq)]
pub struct SpfResult {
    source: u32,
    dist: Vec<u64>,
    /// Nodes in the order they were settled (non-decreasing cost).
    order: Vec<u32>,
    /// The node that first reached each node at its final cost: one
    /// canonical shortest path, used for path metrics.
    parent: Vec<u32>,
    /// Slot `k` of the first-hop bitsets is the source's `k`-th neighbor.
    slots: Vec<u32>,
    words: usize,
    first_hops: Vec<u64>,
    heap_pops: u64,
}

/// A heap entry: (cost, node), ordered by cost then node index.
trait HeapEntry: Ord + Copy {
    fn new(cost: u64, node: u32) -> Self;
    fn cost(self) -> u64;
    fn node(self) -> u32;
}

/// Cost and node packed in one `u64` (cost in the high half): one integer
/// comparison per heap step and half the memory of the tuple. Usable when
/// no path can cost 2^32 or more.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct Packed(u64);

impl HeapEntry for Packed {
    fn new(cost: u64, node: u32) -> Self {
        Packed((cost << 32) | u64::from(node))
    }
    fn cost(self) -> u64 {
        self.0 >> 32
    }
    fn node(self) -> u32 {
        self.0 as u32
    }
}

/// The general entry, for graphs whose path costs may exceed `u32`.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct Wide(u64, u32);

impl HeapEntry for Wide {
    fn new(cost: u64, node: u32) -> Self {
        Wide(cost, node)
    }
    fn cost(self) -> u64 {
        self.0
    }
    fn node(self) -> u32 {
        self.1
    }
}

/// Runs SPF from `source` over `topology`.
///
/// # Panics
/// If `source` is not an index of `topology`.
pub fn shortest_paths(topology: &Topology, source: u32) -> SpfResult {
    assert!((source as usize) < topology.node_count(), "source out of range");
    // A shortest path has at most n - 1 edges; both entry kinds pop in the
    // same (cost, node) order, so the choice changes speed, not results.
    let longest = u64::from(topology.max_cost()) * topology.node_count() as u64;
    if longest < 1 << 32 { run::<Packed>(topology, source) } else { run::<Wide>(topology, source) }
}

fn run<E: HeapEntry>(topology: &Topology, source: u32) -> SpfResult {
    let node_count = topology.node_count();
    let targets = topology.targets();
    let costs = topology.costs();
    let source_edges = topology.edge_range(source);
    let slots: Vec<u32> = targets[source_edges.clone()].to_vec();
    let words = slots.len().div_ceil(64).max(1);

    let mut dist = vec![UNREACHED; node_count];
    let mut parent = vec![NO_PARENT; node_count];
    let mut first_hops = vec![0u64; node_count * words];
    let mut order = Vec::with_capacity(node_count);
    let mut heap: BinaryHeap<Reverse<E>> = BinaryHeap::with_capacity(node_count);
    let mut heap_pops = 0u64;

    // The source is settled first; its neighbors get their own slot bit
    // rather than the source's (empty) set.
    dist[source as usize] = 0;
    order.push(source);
    for (slot, position) in source_edges.enumerate() {
        let to = targets[position] as usize;
        let cost = u64::from(costs[position]);
        let bit = 1u64 << (slot % 64);
        let word = to * words + slot / 64;
        if cost < dist[to] {
            dist[to] = cost;
            parent[to] = source;
            first_hops[to * words..(to + 1) * words].fill(0);
            first_hops[word] = bit;
            heap.push(Reverse(E::new(cost, to as u32)));
        } else if cost == dist[to] {
            first_hops[word] |= bit;
        }
    }

    while let Some(Reverse(entry)) = heap.pop() {
        heap_pops += 1;
        let (cost, node) = (entry.cost(), entry.node());
        let node_index = node as usize;
        if cost > dist[node_index] {
            continue; // superseded entry; the node was settled at a lower cost
        }
        order.push(node);
        let edges = topology.edge_range(node);
        if words == 1 {
            let hops = first_hops[node_index];
            for position in edges {
                let to = targets[position] as usize;
                let candidate = cost + u64::from(costs[position]);
                if candidate < dist[to] {
                    dist[to] = candidate;
                    parent[to] = node;
                    first_hops[to] = hops;
                    heap.push(Reverse(E::new(candidate, to as u32)));
                } else if candidate == dist[to] {
                    first_hops[to] |= hops;
                }
            }
        } else {
            for position in edges {
                let to = targets[position] as usize;
                let candidate = cost + u64::from(costs[position]);
                if candidate < dist[to] {
                    dist[to] = candidate;
                    parent[to] = node;
                    first_hops.copy_within(node_index * words..(node_index + 1) * words, to * words);
                    heap.push(Reverse(E::new(candidate, to as u32)));
                } else if candidate == dist[to] {
                    for word in 0..words {
                        first_hops[to * words + word] |= first_hops[node_index * words + word];
                    }
                }
            }
        }
    }

    SpfResult { source, dist, order, parent, slots, words, first_hops, heap_pops }
}

/// Latency and reliability along one canonical shortest path.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct PathMetrics {
    pub latency_us: u32,
    pub reliability: f32,
}

impl SpfResult {
    pub fn source(&self) -> u32 {
        self.source
    }

    /// Cost to `node`, `None` when unreachable.
    pub fn cost(&self, node: u32) -> Option<u64> {
        let cost = self.dist[node as usize];
        (cost != UNREACHED).then_some(cost)
    }

    /// Reachable nodes (the source first) in settling order.
    pub fn reachable(&self) -> &[u32] {
        &self.order
    }

    /// Heap pops of the run: a clock-free measure of the work done.
    pub fn heap_pops(&self) -> u64 {
        self.heap_pops
    }

    fn hop_words(&self, node: u32) -> &[u64] {
        let start = node as usize * self.words;
        &self.first_hops[start..start + self.words]
    }

    /// All equal-cost first hops toward `node` as neighbor indices in id
    /// order, at most `max_paths` of them. Empty for the source and for
    /// unreachable nodes.
    pub fn next_hops(&self, node: u32, max_paths: usize) -> Vec<u32> {
        let mut hops = Vec::new();
        for (word_index, &word) in self.hop_words(node).iter().enumerate() {
            let mut bits = word;
            while bits != 0 && hops.len() < max_paths {
                let bit = bits.trailing_zeros() as usize;
                hops.push(self.slots[word_index * 64 + bit]);
                bits &= bits - 1;
            }
        }
        hops
    }

    /// How many equal-cost first hops `node` has before any cap.
    pub fn next_hop_count(&self, node: u32) -> usize {
        self.hop_words(node).iter().map(|w| w.count_ones() as usize).sum()
    }

    /// Whether neighbor `hop` starts a shortest path to `node`.
    pub fn has_next_hop(&self, node: u32, hop: u32) -> bool {
        self.slots.binary_search(&hop).is_ok_and(|slot| self.hop_words(node)[slot / 64] & (1 << (slot % 64)) != 0)
    }

    /// Latency and reliability along the canonical shortest path to every
    /// node, by index (unreachable nodes get zero latency and reliability).
    pub fn path_metrics(&self, topology: &Topology) -> Vec<PathMetrics> {
        let mut metrics = vec![PathMetrics { latency_us: 0, reliability: 0.0 }; self.dist.len()];
        metrics[self.source as usize].reliability = 1.0;
        // Settling order visits every parent before its children.
        for &node in &self.order[1..] {
            let parent = self.parent[node as usize];
            let edge = topology.edge_between(parent, node).expect("the parent reached the node over an edge");
            let before = metrics[parent as usize];
            metrics[node as usize] = PathMetrics {
                latency_us: before.latency_us.saturating_add(edge.latency_us),
                reliability: before.reliability * edge.reliability,
            };
        }
        metrics
    }

    /// One shortest path from the source to `node` whose first hop is
    /// `hop`, as node indices from the source to `node`. At every step back
    /// from `node` it takes the lowest-id predecessor that is on a shortest
    /// path and reachable through `hop`, so the answer is deterministic.
    pub fn path_via(&self, topology: &Topology, node: u32, hop: u32) -> Option<Vec<u32>> {
        if !self.has_next_hop(node, hop) {
            return None;
        }
        let incoming = incoming_edges(topology);
        let mut path = vec![node];
        let mut current = node;
        while current != self.source {
            let start = incoming.partition_point(|&(to, _, _)| to < current);
            let predecessor = incoming[start..]
                .iter()
                .take_while(|&&(to, _, _)| to == current)
                .filter(|&&(_, from, cost)| {
                    self.cost(from).is_some_and(|d| d + u64::from(cost) == self.dist[current as usize])
                        && if from == self.source { current == hop } else { self.has_next_hop(from, hop) }
                })
                .map(|&(_, from, _)| from)
                .min()?;
            path.push(predecessor);
            current = predecessor;
        }
        path.reverse();
        Some(path)
    }
}

/// Every edge as (to, from, cost), sorted: the reverse adjacency, built on
/// demand because only `explain` walks paths backwards.
fn incoming_edges(topology: &Topology) -> Vec<(u32, u32, u32)> {
    let mut incoming = Vec::with_capacity(topology.edge_count());
    for from in 0..topology.node_count() as u32 {
        for edge in topology.edges_from(from) {
            incoming.push((edge.to, from, edge.cost));
        }
    }
    incoming.sort_unstable();
    incoming
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::topology::EdgeSpec;
    use fabric_core::ids::NodeId;

    /// Undirected graph on nodes named by single letters, ids in order.
    fn graph(names: &str, links: &[(char, char, u32)]) -> Topology {
        let nodes: Vec<NodeId> = names.chars().map(|c| NodeId::from(c.to_string())).collect();
        let index = |c: char| names.find(c).unwrap() as u32;
        let edges = links
            .iter()
            .flat_map(|&(a, b, cost)| {
                [EdgeSpec::with_cost(index(a), index(b), cost), EdgeSpec::with_cost(index(b), index(a), cost)]
            })
            .collect();
        Topology::from_sorted_nodes(nodes, edges)
    }

    fn names(topology: &Topology, indices: &[u32]) -> String {
        indices.iter().map(|&i| topology.node(i).as_str()).collect()
    }

    #[test]
    fn diamond_has_two_equal_cost_next_hops_in_id_order() {
        //   b
        //  / \
        // a   d - e
        //  \ /
        //   c
        let topology = graph("abcde", &[('a', 'c', 1), ('a', 'b', 1), ('b', 'd', 1), ('c', 'd', 1), ('d', 'e', 2)]);
        let spf = shortest_paths(&topology, 0);
        assert_eq!(spf.cost(4), Some(4));
        assert_eq!(names(&topology, &spf.next_hops(3, 8)), "bc");
        assert_eq!(names(&topology, &spf.next_hops(4, 8)), "bc");
        assert_eq!(names(&topology, &spf.next_hops(4, 1)), "b", "the cap keeps the lowest ids");
        assert_eq!(spf.next_hop_count(4), 2);
        assert_eq!(names(&topology, &spf.next_hops(1, 8)), "b");
        assert!(spf.next_hops(0, 8).is_empty());
        assert_eq!(names(&topology, &spf.path_via(&topology, 4, 2).unwrap()), "acde");
        assert_eq!(names(&topology, &spf.path_via(&topology, 4, 1).unwrap()), "abde");
    }

    #[test]
    fn a_direct_link_that_is_not_shortest_is_not_a_next_hop_to_its_neighbor() {
        let topology = graph("abc", &[('a', 'b', 5), ('a', 'c', 1), ('c', 'b', 1)]);
        let spf = shortest_paths(&topology, 0);
        assert_eq!(spf.cost(1), Some(2));
        assert_eq!(names(&topology, &spf.next_hops(1, 8)), "c");
        assert!(spf.path_via(&topology, 1, 1).is_none());
    }

    #[test]
    fn unreachable_nodes_have_no_cost_or_hops() {
        let topology = graph("abc", &[('a', 'b', 1)]);
        let spf = shortest_paths(&topology, 0);
        assert_eq!(spf.cost(2), None);
        assert!(spf.next_hops(2, 8).is_empty());
        assert_eq!(spf.reachable(), [0, 1]);
    }

    #[test]
    fn more_than_64_neighbors_use_multi_word_bitsets() {
        // Hub 0 with 100 spokes that all reach node 101 at the same cost.
        let nodes: Vec<NodeId> = (0..=101).map(|i| NodeId::from(format!("n{i:03}"))).collect();
        let mut edges = Vec::new();
        for spoke in 1..=100u32 {
            edges.push(EdgeSpec::with_cost(0, spoke, 1));
            edges.push(EdgeSpec::with_cost(spoke, 101, 1));
        }
        let topology = Topology::from_sorted_nodes(nodes, edges);
        let spf = shortest_paths(&topology, 0);
        assert_eq!(spf.next_hop_count(101), 100);
        assert_eq!(spf.next_hops(101, 100), (1..=100).collect::<Vec<u32>>());
        assert_eq!(spf.next_hops(101, 3), [1, 2, 3]);
        assert!(spf.has_next_hop(101, 100));
        assert_eq!(spf.path_via(&topology, 101, 70).unwrap(), [0, 70, 101]);
    }

    #[test]
    fn costs_beyond_u32_take_the_wide_heap_and_agree() {
        // a -> b -> c with huge costs: path costs exceed u32.
        let big = u32::MAX - 1;
        let topology = graph("abcd", &[('a', 'b', big), ('b', 'c', big), ('a', 'd', big), ('d', 'c', big)]);
        let spf = shortest_paths(&topology, 0);
        assert_eq!(spf.cost(2), Some(2 * u64::from(big)));
        assert_eq!(names(&topology, &spf.next_hops(2, 8)), "bd");
    }

    #[test]
    fn path_metrics_follow_one_shortest_path() {
        let nodes = ["a", "b", "c"].map(NodeId::from).to_vec();
        let edges = vec![
            EdgeSpec { from: 0, to: 1, cost: 1, latency_us: 10, reliability: 0.5 },
            EdgeSpec { from: 1, to: 2, cost: 1, latency_us: 20, reliability: 0.5 },
        ];
        let topology = Topology::from_sorted_nodes(nodes, edges);
        let spf = shortest_paths(&topology, 0);
        let metrics = spf.path_metrics(&topology);
        assert_eq!(metrics[2], PathMetrics { latency_us: 30, reliability: 0.25 });
        assert_eq!(metrics[0], PathMetrics { latency_us: 0, reliability: 1.0 });
    }
}
