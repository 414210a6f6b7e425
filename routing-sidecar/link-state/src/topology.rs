//! The graph SPF runs on, in dense form: node ids interned to `u32` indices
//! in id order, outgoing edges as compressed sparse rows (CSR). Interning in
//! id order means "lower index" is "lower node id", which is what makes next
//! hop ordering deterministic for free.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

use fabric_core::ids::NodeId;
use fabric_core::link_state::lsa::LinkStateUpdate;

/// Where an id's text lives: equal for ids sharing one allocation.
fn address(id: &NodeId) -> usize {
    id.as_str().as_ptr() as usize
}

/// A one-multiply hash for addresses. Addresses are not chosen by peers, so
/// a keyed (DoS-resistant) hash buys nothing here.
#[derive(Default)]
struct AddressHasher(u64);

impl Hasher for AddressHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for byte in bytes {
            self.0 = (self.0.rotate_left(8) ^ u64::from(*byte)).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        }
    }

    fn write_usize(&mut self, value: usize) {
        // Fold the high half down: allocations are aligned, so the low bits
        // of the product alone would be mostly zero.
        let product = (value as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        self.0 = product ^ (product >> 32);
    }
}

/// Stable counting sort of `edges` by source index.
fn group_by_source(node_count: usize, edges: Vec<EdgeSpec>) -> Vec<EdgeSpec> {
    let mut starts = vec![0usize; node_count + 1];
    for edge in &edges {
        starts[edge.from as usize + 1] += 1;
    }
    for i in 0..node_count {
        starts[i + 1] += starts[i];
    }
    let mut grouped = vec![EdgeSpec::with_cost(0, 0, 1); edges.len()];
    for edge in edges {
        let slot = &mut starts[edge.from as usize];
        grouped[*slot] = edge;
        *slot += 1;
    }
    grouped
}

/// A directed edge between dense indices.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct EdgeSpec {
    pub from: u32,
    pub to: u32,
    pub cost: u32,
    pub latency_us: u32,
    pub reliability: f32,
}

impl EdgeSpec {
    /// An edge with neutral latency and reliability (tests and benchmarks).
    pub fn with_cost(from: u32, to: u32, cost: u32) -> Self {
        Self { from, to, cost, latency_us: 0, reliability: 1.0 }
    }
}

/// One outgoing edge as seen from its source.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Edge {
    pub to: u32,
    pub cost: u32,
    pub latency_us: u32,
    pub reliability: f32,
}

/// A directed graph in CSR form. Edges of node `i` are at
/// `offsets[i]..offsets[i + 1]`, sorted by target index.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Topology {
    nodes: Vec<NodeId>,
    offsets: Vec<u32>,
    targets: Vec<u32>,
    costs: Vec<u32>,
    latencies: Vec<u32>,
    reliabilities: Vec<f32>,
    max_cost: u32,
}

impl Topology {
    /// Builds from nodes already sorted by id and unique, and edges between
    /// their indices. Parallel edges keep the cheapest; a cost of 0 counts
    /// as 1 (see `LinkAdvert::cost`); self loops are dropped.
    ///
    /// # Panics
    /// If `nodes` is not strictly increasing or an edge names an index out
    /// of range: both are programming errors of the caller.
    pub fn from_sorted_nodes(nodes: Vec<NodeId>, edges: Vec<EdgeSpec>) -> Self {
        assert!(nodes.windows(2).all(|w| w[0] < w[1]), "nodes must be sorted and unique");
        Self::build(nodes, edges)
    }

    /// `from_sorted_nodes` without the order check, for callers that sorted.
    fn build(nodes: Vec<NodeId>, mut edges: Vec<EdgeSpec>) -> Self {
        let node_count = nodes.len();
        assert!(u32::try_from(node_count).is_ok(), "too many nodes for u32 indices");
        for edge in &edges {
            assert!((edge.from as usize) < node_count && (edge.to as usize) < node_count, "edge index out of range");
        }
        // Edges built from a database arrive grouped by source already;
        // others are grouped by a linear counting sort.
        if !edges.is_sorted_by_key(|e| e.from) {
            edges = group_by_source(node_count, edges);
        }
        let mut row_ends = vec![0u32; node_count + 1];
        let mut targets = Vec::with_capacity(edges.len());
        let mut costs = Vec::with_capacity(edges.len());
        let mut latencies = Vec::with_capacity(edges.len());
        let mut reliabilities = Vec::with_capacity(edges.len());
        for row in edges.chunk_by_mut(|a, b| a.from == b.from) {
            // Sorted by target then cost, the first of parallel edges is the
            // cheapest one; self loops are dropped.
            row.sort_unstable_by_key(|e| (e.to, e.cost, e.latency_us));
            let from = row[0].from;
            let mut previous = None;
            let mut kept = 0u32;
            for edge in row.iter() {
                if edge.to == from || previous == Some(edge.to) {
                    continue;
                }
                previous = Some(edge.to);
                targets.push(edge.to);
                costs.push(edge.cost.max(1));
                latencies.push(edge.latency_us);
                reliabilities.push(edge.reliability);
                kept += 1;
            }
            row_ends[from as usize + 1] = kept;
        }
        for i in 0..node_count {
            row_ends[i + 1] += row_ends[i];
        }
        let max_cost = costs.iter().copied().max().unwrap_or(0);
        Self { nodes, offsets: row_ends, targets, costs, latencies, reliabilities, max_cost }
    }

    /// Builds from edges named by node id; nodes are interned in id order.
    pub fn from_named_edges<'a>(
        nodes: impl IntoIterator<Item = &'a NodeId>,
        edges: impl IntoIterator<Item = (&'a NodeId, &'a NodeId, u32)>,
    ) -> Self {
        let edges: Vec<(&NodeId, &NodeId, u32)> = edges.into_iter().collect();
        let mut names: Vec<NodeId> = nodes.into_iter().cloned().collect();
        names.extend(edges.iter().flat_map(|(from, to, _)| [(*from).clone(), (*to).clone()]));
        names.sort_unstable();
        names.dedup();
        let index = |id: &NodeId| names.binary_search(id).expect("interned above") as u32;
        let specs = edges.iter().map(|(from, to, cost)| EdgeSpec::with_cost(index(from), index(to), *cost)).collect();
        Self::from_sorted_nodes(names, specs)
    }

    /// The SPF graph of one area: a node per live update, and an edge
    /// `u -> v` only when both `u` and `v` list each other (the two-way
    /// check: a link one side no longer reports is not used, so a failed
    /// link stops carrying traffic as soon as either end says so). The edge
    /// carries the metrics `u` advertised.
    pub fn from_updates<'a>(updates: impl IntoIterator<Item = &'a LinkStateUpdate>) -> Self {
        let updates: Vec<&LinkStateUpdate> = updates.into_iter().filter(|u| !u.is_flush()).collect();
        let mut nodes: Vec<NodeId> = updates.iter().map(|u| u.origin.clone()).collect();
        nodes.sort_unstable();
        nodes.dedup();
        // Interning by address first: the database shares one allocation
        // per node id (see `AreaLsdb`), so a link's neighbor is found
        // without reading, hashing or comparing its text, which on large
        // areas was most of the build time. Ids that do not share an
        // allocation fall back to a lookup by text. Both maps are only
        // looked up, never iterated, so they cannot leak an order.
        let by_address: HashMap<usize, u32, BuildHasherDefault<AddressHasher>> =
            nodes.iter().enumerate().map(|(i, id)| (address(id), i as u32)).collect();
        let mut by_text: Option<HashMap<&str, u32>> = None;
        let mut index = |id: &NodeId| -> Option<u32> {
            if let Some(&i) = by_address.get(&address(id)) {
                return Some(i);
            }
            let by_text = by_text
                .get_or_insert_with(|| nodes.iter().enumerate().map(|(i, id)| (id.as_str(), i as u32)).collect());
            by_text.get(id.as_str()).copied()
        };

        let mut one_way: Vec<EdgeSpec> = Vec::with_capacity(updates.iter().map(|u| u.links.len()).sum());
        for update in &updates {
            let from = index(&update.origin).expect("interned above");
            for link in &update.links {
                if let Some(to) = index(&link.neighbor) {
                    one_way.push(EdgeSpec {
                        from,
                        to,
                        cost: link.cost,
                        latency_us: link.latency_us,
                        reliability: link.reliability,
                    });
                }
            }
        }
        Self::build(nodes, one_way).two_way_only()
    }

    /// Keeps the edges `u -> v` for which `v -> u` exists too. Rows are
    /// sorted by target, so the check is a short binary search in `v`'s row.
    fn two_way_only(self) -> Self {
        let node_count = self.nodes.len();
        let mut offsets = Vec::with_capacity(node_count + 1);
        offsets.push(0u32);
        let mut kept: Vec<usize> = Vec::with_capacity(self.targets.len());
        for from in 0..node_count as u32 {
            for position in self.edge_range(from) {
                let to = self.targets[position];
                if self.targets[self.edge_range(to)].binary_search(&from).is_ok() {
                    kept.push(position);
                }
            }
            offsets.push(kept.len() as u32);
        }
        Self {
            offsets,
            targets: kept.iter().map(|&p| self.targets[p]).collect(),
            costs: kept.iter().map(|&p| self.costs[p]).collect(),
            latencies: kept.iter().map(|&p| self.latencies[p]).collect(),
            reliabilities: kept.iter().map(|&p| self.reliabilities[p]).collect(),
            max_cost: self.max_cost,
            nodes: self.nodes,
        }
    }

    /// The highest edge cost (0 without edges).
    pub fn max_cost(&self) -> u32 {
        self.max_cost
    }

    pub fn node_count(&self) -> usize {
        self.nodes.len()
    }

    /// Directed edges.
    pub fn edge_count(&self) -> usize {
        self.targets.len()
    }

    pub fn nodes(&self) -> &[NodeId] {
        &self.nodes
    }

    pub fn node(&self, index: u32) -> &NodeId {
        &self.nodes[index as usize]
    }

    pub fn index_of(&self, id: &NodeId) -> Option<u32> {
        self.nodes.binary_search(id).ok().map(|i| i as u32)
    }

    /// Range of `node`'s edges in the CSR arrays.
    pub(crate) fn edge_range(&self, node: u32) -> std::ops::Range<usize> {
        self.offsets[node as usize] as usize..self.offsets[node as usize + 1] as usize
    }

    pub(crate) fn targets(&self) -> &[u32] {
        &self.targets
    }

    pub(crate) fn costs(&self) -> &[u32] {
        &self.costs
    }

    pub fn edge(&self, position: usize) -> Edge {
        Edge {
            to: self.targets[position],
            cost: self.costs[position],
            latency_us: self.latencies[position],
            reliability: self.reliabilities[position],
        }
    }

    /// Outgoing edges of `node`, by target index (= target id order).
    pub fn edges_from(&self, node: u32) -> impl Iterator<Item = Edge> + '_ {
        self.edge_range(node).map(|position| self.edge(position))
    }

    /// FNV-1a over node ids and edges with their metrics: equal graphs give
    /// equal fingerprints on every node and in every process (no random
    /// hasher seed), so operators can compare nodes' views of an area.
    pub fn fingerprint(&self) -> u64 {
        const OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
        const PRIME: u64 = 0x0000_0100_0000_01b3;
        let mut hash = OFFSET;
        let mut feed = |bytes: &[u8]| {
            for byte in bytes {
                hash ^= u64::from(*byte);
                hash = hash.wrapping_mul(PRIME);
            }
        };
        for node in &self.nodes {
            feed(&(node.as_str().len() as u32).to_be_bytes());
            feed(node.as_str().as_bytes());
        }
        for from in 0..self.nodes.len() as u32 {
            for edge in self.edges_from(from) {
                feed(&from.to_be_bytes());
                feed(&edge.to.to_be_bytes());
                feed(&edge.cost.to_be_bytes());
                feed(&edge.latency_us.to_be_bytes());
                feed(&edge.reliability.to_bits().to_be_bytes());
            }
        }
        hash
    }

    /// The cheapest edge `from -> to`, if any.
    pub fn edge_between(&self, from: u32, to: u32) -> Option<Edge> {
        let range = self.edge_range(from);
        let slice = &self.targets[range.clone()];
        slice.binary_search(&to).ok().map(|i| self.edge(range.start + i))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use fabric_core::link_state::lsa::fixtures::{link, update};

    #[test]
    fn csr_keeps_the_cheapest_parallel_edge_and_drops_self_loops() {
        let nodes = ["a", "b", "c"].map(NodeId::from).to_vec();
        let edges = vec![
            EdgeSpec::with_cost(0, 2, 5),
            EdgeSpec::with_cost(0, 1, 3),
            EdgeSpec::with_cost(0, 1, 2),
            EdgeSpec::with_cost(1, 1, 1),
            EdgeSpec::with_cost(2, 0, 0),
        ];
        let topology = Topology::from_sorted_nodes(nodes, edges);
        let from_a: Vec<(u32, u32)> = topology.edges_from(0).map(|e| (e.to, e.cost)).collect();
        assert_eq!(from_a, [(1, 2), (2, 5)]);
        assert_eq!(topology.edges_from(1).count(), 0);
        assert_eq!(topology.edge_between(2, 0).map(|e| e.cost), Some(1), "cost 0 counts as 1");
        assert_eq!(topology.edge_count(), 3);
    }

    #[test]
    fn only_links_reported_by_both_ends_become_edges() {
        let updates = [
            update("a", "x", 1, vec![link("b", 1), link("c", 4)]),
            update("b", "x", 1, vec![link("a", 2)]),
            // c does not list a: the a-c link is one-way and unused.
            update("c", "x", 1, vec![link("b", 1)]),
        ];
        let topology = Topology::from_updates(&updates);
        assert_eq!(topology.node_count(), 3);
        let a = topology.index_of(&NodeId::from("a")).unwrap();
        let b = topology.index_of(&NodeId::from("b")).unwrap();
        let c = topology.index_of(&NodeId::from("c")).unwrap();
        assert_eq!(topology.edge_between(a, b).map(|e| e.cost), Some(1));
        assert_eq!(topology.edge_between(b, a).map(|e| e.cost), Some(2));
        assert!(topology.edge_between(a, c).is_none());
        assert!(topology.edge_between(c, b).is_none(), "b does not list c");
    }

    #[test]
    fn fingerprints_follow_content_not_input_order() {
        let forward = [update("a", "x", 1, vec![link("b", 1)]), update("b", "x", 1, vec![link("a", 1)])];
        let backward = [update("b", "x", 7, vec![link("a", 1)]), update("a", "x", 3, vec![link("b", 1)])];
        let changed = [update("a", "x", 1, vec![link("b", 2)]), update("b", "x", 1, vec![link("a", 1)])];
        let fingerprint = Topology::from_updates(&forward).fingerprint();
        assert_eq!(Topology::from_updates(&backward).fingerprint(), fingerprint);
        assert_ne!(Topology::from_updates(&changed).fingerprint(), fingerprint);
    }

    #[test]
    fn named_edges_intern_in_id_order() {
        let (x, y, z) = (NodeId::from("x"), NodeId::from("y"), NodeId::from("z"));
        let topology = Topology::from_named_edges([&z], [(&y, &x, 1)]);
        assert_eq!(topology.nodes(), [x, y, z]);
    }
}
