//! The fabrics of the soak: a three-tier Clos, a ring with random chords,
//! and a multi-area layout (a core area and child areas joined by border
//! routers). Nodes are `n0000`, `n0001`, ... so that id order is index
//! order (link-state keeps the lowest ids among equal-cost next hops).

use std::collections::{BTreeSet, VecDeque};
use std::str::FromStr;

use fabric_core::ids::NodeId;

use super::Rng;

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum TopologyKind {
    Clos,
    RingRandom,
    MultiArea,
}

impl TopologyKind {
    pub const ALL: [TopologyKind; 3] = [TopologyKind::Clos, TopologyKind::RingRandom, TopologyKind::MultiArea];

    pub fn label(self) -> &'static str {
        match self {
            TopologyKind::Clos => "clos",
            TopologyKind::RingRandom => "ring-random",
            TopologyKind::MultiArea => "multi-area",
        }
    }

    pub(crate) fn salt(self) -> u64 {
        match self {
            TopologyKind::Clos => 0x11,
            TopologyKind::RingRandom => 0x22,
            TopologyKind::MultiArea => 0x33,
        }
    }
}

/// A topology name that is none of [`TopologyKind::ALL`].
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("unknown topology {0:?}: expected clos, ring-random or multi-area")]
pub struct UnknownTopology(pub String);

impl FromStr for TopologyKind {
    type Err = UnknownTopology;

    fn from_str(text: &str) -> Result<Self, UnknownTopology> {
        TopologyKind::ALL.into_iter().find(|kind| kind.label() == text).ok_or_else(|| UnknownTopology(text.to_string()))
    }
}

/// Why no topology was generated.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum TopologyError {
    #[error("--nodes: the {} topology needs at least {minimum} nodes", kind.label())]
    TooFewNodes { kind: TopologyKind, nodes: usize, minimum: usize },
    #[error("generated {} topology is not connected", kind.label())]
    NotConnected { kind: TopologyKind },
}

/// An undirected link, the same metrics both ways.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SoakLink {
    pub a: u32,
    pub b: u32,
    pub cost: u32,
    pub latency_us: u32,
    /// Index into `SoakTopology::areas` (link-state area of the link).
    pub area: u16,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SoakArea {
    pub name: String,
    pub parent: Option<u16>,
}

#[derive(Clone, Debug)]
pub struct SoakTopology {
    pub kind: TopologyKind,
    pub names: Vec<NodeId>,
    pub links: Vec<SoakLink>,
    pub areas: Vec<SoakArea>,
    /// Per node: (neighbor, link index), sorted by neighbor.
    pub adjacency: Vec<Vec<(u32, u32)>>,
}

struct Builder {
    links: Vec<SoakLink>,
    seen: BTreeSet<(u32, u32)>,
}

impl Builder {
    fn new() -> Self {
        Self { links: Vec::new(), seen: BTreeSet::new() }
    }

    /// Adds a link unless it exists or is a self-loop; says whether it did.
    fn link(&mut self, a: u32, b: u32, cost: u32, latency_us: u32, area: u16) -> bool {
        let key = (a.min(b), a.max(b));
        if a == b || !self.seen.insert(key) {
            return false;
        }
        self.links.push(SoakLink { a: key.0, b: key.1, cost, latency_us, area });
        true
    }

    /// A ring over `nodes` plus `chords` random links among them.
    fn ring_with_chords(
        &mut self,
        nodes: &[u32],
        chords: usize,
        rng: &mut Rng,
        cost: (u64, u64),
        latency: (u64, u64),
        area: u16,
    ) {
        let n = nodes.len();
        for i in 0..n {
            let (a, b) = (nodes[i], nodes[(i + 1) % n]);
            let (c, l) = (rng.between(cost.0, cost.1) as u32, rng.between(latency.0, latency.1) as u32);
            self.link(a, b, c, l, area);
        }
        let mut added = 0;
        let mut attempts = 0;
        while added < chords && attempts < chords * 20 {
            attempts += 1;
            let a = nodes[rng.below(n as u64) as usize];
            let b = nodes[rng.below(n as u64) as usize];
            let (c, l) = (rng.between(cost.0, cost.1) as u32, rng.between(latency.0, latency.1) as u32);
            if self.link(a, b, c, l, area) {
                added += 1;
            }
        }
    }
}

fn names(n: usize) -> Vec<NodeId> {
    let width = n.saturating_sub(1).to_string().len().max(4);
    (0..n).map(|i| NodeId::from(format!("n{i:0width$}").as_str())).collect()
}

impl SoakTopology {
    /// A fabric of `nodes` nodes of `kind`, connected, from `rng`.
    pub fn generate(kind: TopologyKind, nodes: usize, rng: &mut Rng) -> Result<Self, TopologyError> {
        let minimum = match kind {
            TopologyKind::Clos => 12,
            TopologyKind::RingRandom => 4,
            TopologyKind::MultiArea => 24,
        };
        if nodes < minimum {
            return Err(TopologyError::TooFewNodes { kind, nodes, minimum });
        }
        let mut builder = Builder::new();
        let areas = match kind {
            TopologyKind::Clos => {
                clos(&mut builder, nodes, rng);
                vec![SoakArea { name: "fabric".into(), parent: None }]
            }
            TopologyKind::RingRandom => {
                let all: Vec<u32> = (0..nodes as u32).collect();
                builder.ring_with_chords(&all, nodes / 2, rng, (1, 3), (1_000, 10_000), 0);
                vec![SoakArea { name: "fabric".into(), parent: None }]
            }
            TopologyKind::MultiArea => multi_area(&mut builder, nodes, rng),
        };
        let topology = Self::from_links(kind, names(nodes), builder.links, areas);
        if !topology.is_connected() {
            return Err(TopologyError::NotConnected { kind });
        }
        Ok(topology)
    }

    pub fn from_links(kind: TopologyKind, names: Vec<NodeId>, links: Vec<SoakLink>, areas: Vec<SoakArea>) -> Self {
        let mut adjacency = vec![Vec::new(); names.len()];
        for (i, link) in links.iter().enumerate() {
            adjacency[link.a as usize].push((link.b, i as u32));
            adjacency[link.b as usize].push((link.a, i as u32));
        }
        for list in &mut adjacency {
            list.sort_unstable();
        }
        Self { kind, names, links, areas, adjacency }
    }

    pub fn node_count(&self) -> usize {
        self.names.len()
    }

    pub fn link_between(&self, a: u32, b: u32) -> Option<u32> {
        let list = &self.adjacency[a as usize];
        list.binary_search_by_key(&b, |(n, _)| *n).ok().map(|i| list[i].1)
    }

    pub fn other_end(&self, link: u32, node: u32) -> u32 {
        let l = &self.links[link as usize];
        if l.a == node { l.b } else { l.a }
    }

    pub fn is_connected(&self) -> bool {
        let n = self.node_count();
        if n == 0 {
            return true;
        }
        let mut seen = vec![false; n];
        let mut queue = VecDeque::from([0u32]);
        seen[0] = true;
        let mut count = 1;
        while let Some(u) = queue.pop_front() {
            for &(v, _) in &self.adjacency[u as usize] {
                if !seen[v as usize] {
                    seen[v as usize] = true;
                    count += 1;
                    queue.push_back(v);
                }
            }
        }
        count == n
    }

    /// Areas of a node: those of its links, in index order.
    pub fn areas_of(&self, node: u32) -> Vec<u16> {
        let set: BTreeSet<u16> =
            self.adjacency[node as usize].iter().map(|(_, l)| self.links[*l as usize].area).collect();
        set.into_iter().collect()
    }

    pub fn max_degree(&self) -> usize {
        self.adjacency.iter().map(Vec::len).max().unwrap_or(0)
    }
}

/// Three tiers: spines, and pods of aggregation switches and leaves. Every
/// leaf links to every aggregation switch of its pod; aggregation switch
/// `j` of every pod links to the spines of plane `j` (spine `s` is in plane
/// `s % aggs_per_pod`). 1,000 nodes: 40 spines and 20 pods of 4 + 44.
fn clos(builder: &mut Builder, n: usize, rng: &mut Rng) {
    let aggs = if n >= 200 { 4 } else { 2 };
    let spines = ((n / 25).max(2 * aggs) / aggs) * aggs;
    let rest = n - spines;
    let pod_target = aggs * 12;
    let pods = rest.div_ceil(pod_target).max(2);
    let mut next = spines as u32;
    for pod in 0..pods {
        let size = rest / pods + usize::from(pod < rest % pods);
        let first = next;
        next += size as u32;
        let pod_aggs: Vec<u32> = (first..first + aggs as u32).collect();
        for leaf in first + aggs as u32..next {
            for &agg in &pod_aggs {
                builder.link(leaf, agg, 1, rng.between(50, 150) as u32, 0);
            }
        }
        for (j, &agg) in pod_aggs.iter().enumerate() {
            for spine in (0..spines as u32).filter(|s| *s as usize % aggs == j) {
                builder.link(agg, spine, 1, rng.between(200, 600) as u32, 0);
            }
        }
    }
}

/// A core area (ring plus chords) and child areas (each a ring plus chords)
/// whose first two nodes are border routers, each with two links into the
/// core. 1,000 nodes: a core of 40 and 8 children of 120.
fn multi_area(builder: &mut Builder, n: usize, rng: &mut Rng) -> Vec<SoakArea> {
    let children = (n / 125).clamp(2, 16);
    let core = (n / 25).max(4);
    let core_nodes: Vec<u32> = (0..core as u32).collect();
    builder.ring_with_chords(&core_nodes, core / 2, rng, (1, 3), (1_000, 5_000), 0);
    let mut areas = vec![SoakArea { name: "core".into(), parent: None }];
    let rest = n - core;
    let mut next = core as u32;
    for child in 0..children {
        let size = rest / children + usize::from(child < rest % children);
        let members: Vec<u32> = (next..next + size as u32).collect();
        next += size as u32;
        let area = (child + 1) as u16;
        areas.push(SoakArea { name: format!("a{:02}", child + 1), parent: Some(0) });
        builder.ring_with_chords(&members, size / 2, rng, (1, 3), (100, 2_000), area);
        for &border in &members[..2] {
            let mut linked = 0;
            while linked < 2 {
                let target = core_nodes[rng.below(core as u64) as usize];
                if builder.link(border, target, rng.between(1, 3) as u32, rng.between(1_000, 5_000) as u32, 0) {
                    linked += 1;
                }
            }
        }
    }
    areas
}

#[cfg(test)]
mod tests {
    use super::*;

    fn degree(t: &SoakTopology, node: u32) -> usize {
        t.adjacency[node as usize].len()
    }

    #[test]
    fn clos_of_1000_nodes_has_the_documented_shape() {
        let t = SoakTopology::generate(TopologyKind::Clos, 1000, &mut Rng::new(1)).unwrap();
        assert_eq!(t.node_count(), 1000);
        // 40 spines, 20 pods of 4 aggregation switches and 44 leaves.
        assert_eq!(t.links.len(), 20 * 44 * 4 + 20 * 4 * 10);
        assert_eq!(degree(&t, 0), 20, "a spine links to one switch per pod");
        assert_eq!(degree(&t, 40), 44 + 10, "an aggregation switch: its leaves and its plane's spines");
        assert_eq!(degree(&t, 44), 4, "a leaf links to its pod's four aggregation switches");
        assert!(t.is_connected());
        assert_eq!(t.names[7].as_str(), "n0007");
    }

    #[test]
    fn every_generator_is_connected_deterministic_and_without_duplicate_links() {
        for kind in TopologyKind::ALL {
            for n in [24, 50, 333] {
                let a = SoakTopology::generate(kind, n, &mut Rng::new(5)).unwrap();
                let b = SoakTopology::generate(kind, n, &mut Rng::new(5)).unwrap();
                assert_eq!(a.links, b.links, "{kind:?} {n}");
                assert_eq!(a.node_count(), n);
                assert!(a.is_connected(), "{kind:?} {n}");
                let unique: BTreeSet<(u32, u32)> = a.links.iter().map(|l| (l.a, l.b)).collect();
                assert_eq!(unique.len(), a.links.len());
                assert!(a.links.iter().all(|l| l.a < l.b && l.cost >= 1));
                for node in 0..n as u32 {
                    assert!(degree(&a, node) >= 2, "{kind:?} {n}: node {node} has one link");
                }
            }
        }
    }

    #[test]
    fn multi_area_border_routers_join_their_area_to_the_core() {
        let t = SoakTopology::generate(TopologyKind::MultiArea, 1000, &mut Rng::new(3)).unwrap();
        assert_eq!(t.areas.len(), 9);
        let borders: Vec<u32> = (0..1000).filter(|n| t.areas_of(*n).len() == 2).collect();
        assert_eq!(borders.len(), 16, "two border routers per child area");
        for b in borders {
            assert_eq!(t.areas_of(b)[0], 0, "every border router is in the core");
        }
        // Every child area on its own is connected: a ring.
        for area in 1..t.areas.len() as u16 {
            let members: BTreeSet<u32> = t.links.iter().filter(|l| l.area == area).flat_map(|l| [l.a, l.b]).collect();
            assert!(members.len() >= 100);
        }
    }

    #[test]
    fn too_small_fabrics_are_refused_naming_the_flag() {
        let error = SoakTopology::generate(TopologyKind::MultiArea, 10, &mut Rng::new(1)).unwrap_err();
        assert_eq!(error, TopologyError::TooFewNodes { kind: TopologyKind::MultiArea, nodes: 10, minimum: 24 });
        assert!(error.to_string().contains("--nodes"), "{error}");
    }
}
