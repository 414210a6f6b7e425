//! What the routes should be, and what forwarding along them does.
//!
//! `LiveGraph` is the fabric as it is at a point of the run (nodes present,
//! links up); `distances_from` gives the shortest-path costs (Dijkstra; the
//! links are symmetric, so the costs from a destination are the costs to
//! it). `Forwarding` is every node's next hops per destination, as the
//! protocol under test last reported them; `verdicts` follows them from
//! every node towards one destination: delivered, no route at the source,
//! a loop, or a black hole (a hop without a route, a dead node, or a link
//! that is down). With several equal-cost next hops every one is followed:
//! a loop or black hole on any of them counts.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, VecDeque};

/// No next hop / unreachable.
pub(crate) const NONE: u32 = u32::MAX;
pub(crate) const UNREACHABLE: u64 = u64::MAX;
/// Most next hops kept per route (link-state's default `maxPaths`).
pub(crate) const MAX_HOPS: usize = 4;

/// The fabric at one moment: present nodes and up links, each with its
/// cost and link-state area.
#[derive(Clone, Debug, Default)]
pub(crate) struct LiveGraph {
    pub present: Vec<bool>,
    /// Per node: (neighbor, cost, area), sorted by neighbor.
    pub adjacency: Vec<Vec<(u32, u32, u16)>>,
}

impl LiveGraph {
    pub(crate) fn new(nodes: usize) -> Self {
        Self { present: vec![true; nodes], adjacency: vec![Vec::new(); nodes] }
    }

    pub(crate) fn len(&self) -> usize {
        self.present.len()
    }

    /// Adds an up link (both directions); call `finish` after the last one.
    pub(crate) fn link(&mut self, a: u32, b: u32, cost: u32, area: u16) {
        self.adjacency[a as usize].push((b, cost, area));
        self.adjacency[b as usize].push((a, cost, area));
    }

    pub(crate) fn finish(&mut self) {
        for list in &mut self.adjacency {
            list.sort_unstable();
        }
    }

    pub(crate) fn linked(&self, a: u32, b: u32) -> bool {
        self.adjacency[a as usize].binary_search_by_key(&b, |(n, _, _)| *n).is_ok()
    }

    /// Shortest-path costs from `source` to every node (`UNREACHABLE` when
    /// there is no path or the node is absent).
    pub(crate) fn distances_from(&self, source: u32, out: &mut Vec<u64>) {
        out.clear();
        out.resize(self.len(), UNREACHABLE);
        if !self.present[source as usize] {
            return;
        }
        let mut heap = BinaryHeap::new();
        out[source as usize] = 0;
        heap.push(Reverse((0u64, source)));
        while let Some(Reverse((d, u))) = heap.pop() {
            if d > out[u as usize] {
                continue;
            }
            for &(v, cost, _) in &self.adjacency[u as usize] {
                let next = d + u64::from(cost);
                if self.present[v as usize] && next < out[v as usize] {
                    out[v as usize] = next;
                    heap.push(Reverse((next, v)));
                }
            }
        }
    }

    /// Which nodes link-state can route to `destination` from when areas
    /// scope what it knows: nodes connected to it inside one of its areas,
    /// and nodes of a parent area connected (inside the parent) to a border
    /// router that reaches it, up the area graph. `parents[a]` is area
    /// `a`'s parent.
    pub(crate) fn area_scoped_reach(&self, destination: u32, parents: &[Option<u16>], out: &mut Vec<bool>) {
        out.clear();
        out.resize(self.len(), false);
        if !self.present[destination as usize] {
            return;
        }
        let mut dest_areas: Vec<u16> = self.adjacency[destination as usize].iter().map(|e| e.2).collect();
        dest_areas.sort_unstable();
        dest_areas.dedup();
        for area in dest_areas {
            let mut reach = self.flood(&[destination], area);
            let mut current = area;
            for (node, reached) in reach.iter().enumerate() {
                out[node] |= *reached;
            }
            // Climb: border routers of `current` that also have a link in
            // its parent carry the summary up.
            while let Some(parent) = parents.get(current as usize).copied().flatten() {
                let borders: Vec<u32> = (0..self.len() as u32)
                    .filter(|&n| reach[n as usize] && self.adjacency[n as usize].iter().any(|e| e.2 == parent))
                    .collect();
                if borders.is_empty() {
                    break;
                }
                reach = self.flood(&borders, parent);
                for (node, reached) in reach.iter().enumerate() {
                    out[node] |= *reached;
                }
                current = parent;
            }
        }
    }

    /// Nodes connected to `from` by links of `area` only.
    fn flood(&self, from: &[u32], area: u16) -> Vec<bool> {
        let mut seen = vec![false; self.len()];
        let mut queue: VecDeque<u32> = VecDeque::new();
        for &f in from {
            seen[f as usize] = true;
            queue.push_back(f);
        }
        while let Some(u) = queue.pop_front() {
            for &(v, _, a) in &self.adjacency[u as usize] {
                if a == area && self.present[v as usize] && !seen[v as usize] {
                    seen[v as usize] = true;
                    queue.push_back(v);
                }
            }
        }
        seen
    }
}

/// Every node's next hops and cost per destination (`nodes` x `nodes`).
#[derive(Clone, Debug)]
pub(crate) struct Forwarding {
    nodes: usize,
    hops: Vec<[u32; MAX_HOPS]>,
    cost: Vec<u64>,
    routes: u64,
}

impl Forwarding {
    pub(crate) fn new(nodes: usize) -> Self {
        Self { nodes, hops: vec![[NONE; MAX_HOPS]; nodes * nodes], cost: vec![UNREACHABLE; nodes * nodes], routes: 0 }
    }

    fn ix(&self, node: u32, destination: u32) -> usize {
        node as usize * self.nodes + destination as usize
    }

    /// Sets (`Some`) or removes (`None`) a route; says whether the node had
    /// one before.
    pub(crate) fn set(&mut self, node: u32, destination: u32, route: Option<(&[u32], u64)>) -> bool {
        let ix = self.ix(node, destination);
        let had = self.hops[ix][0] != NONE;
        let mut entry = [NONE; MAX_HOPS];
        let mut cost = UNREACHABLE;
        if let Some((hops, c)) = route {
            for (slot, hop) in entry.iter_mut().zip(hops) {
                *slot = *hop;
            }
            cost = c;
        }
        let has = entry[0] != NONE;
        self.routes = self.routes + u64::from(has) - u64::from(had);
        self.hops[ix] = entry;
        self.cost[ix] = cost;
        had
    }

    /// Forgets every route of a node (it crashed).
    pub(crate) fn clear_node(&mut self, node: u32) {
        for destination in 0..self.nodes as u32 {
            self.set(node, destination, None);
        }
    }

    pub(crate) fn hops(&self, node: u32, destination: u32) -> &[u32] {
        let entry = &self.hops[self.ix(node, destination)];
        let len = entry.iter().position(|h| *h == NONE).unwrap_or(MAX_HOPS);
        &entry[..len]
    }

    pub(crate) fn cost(&self, node: u32, destination: u32) -> u64 {
        self.cost[self.ix(node, destination)]
    }

    /// Routes held, over all nodes.
    pub(crate) fn routes(&self) -> u64 {
        self.routes
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Verdict {
    Unknown,
    Visiting,
    Delivered,
    /// The source itself has no route.
    NoRoute,
    Loop,
    BlackHole,
}

/// Follows the next hops of every node towards `destination`; `out[n]` is
/// the fate of what node `n` forwards there.
pub(crate) fn verdicts(table: &Forwarding, graph: &LiveGraph, destination: u32, out: &mut Vec<Verdict>) {
    let n = graph.len();
    out.clear();
    out.resize(n, Verdict::Unknown);
    out[destination as usize] = Verdict::Delivered;
    let mut stack: Vec<(u32, usize)> = Vec::new();
    for source in 0..n as u32 {
        if out[source as usize] != Verdict::Unknown {
            continue;
        }
        if !graph.present[source as usize] || table.hops(source, destination).is_empty() {
            out[source as usize] = Verdict::NoRoute;
            continue;
        }
        out[source as usize] = Verdict::Visiting;
        stack.push((source, 0));
        // Worst verdict of the children explored so far, per stack frame.
        let mut worst: Vec<Verdict> = vec![Verdict::Delivered];
        while let Some(&mut (node, ref mut next)) = stack.last_mut() {
            let hops = table.hops(node, destination);
            if *next < hops.len() {
                let hop = hops[*next];
                *next += 1;
                let child = if !graph.linked(node, hop) || !graph.present[hop as usize] {
                    Verdict::BlackHole
                } else {
                    match out[hop as usize] {
                        Verdict::Visiting => Verdict::Loop,
                        Verdict::Unknown => {
                            if table.hops(hop, destination).is_empty() {
                                out[hop as usize] = Verdict::NoRoute;
                                Verdict::BlackHole
                            } else {
                                out[hop as usize] = Verdict::Visiting;
                                stack.push((hop, 0));
                                worst.push(Verdict::Delivered);
                                continue;
                            }
                        }
                        Verdict::NoRoute => Verdict::BlackHole,
                        done => done,
                    }
                };
                let frame = worst.last_mut().expect("one per stack frame");
                *frame = combine(*frame, child);
            } else {
                stack.pop();
                let verdict = worst.pop().expect("one per stack frame");
                out[node as usize] = verdict;
                if let Some(parent) = worst.last_mut() {
                    *parent = combine(*parent, verdict);
                }
            }
        }
    }
}

/// A loop anywhere is a loop; else a black hole anywhere is one.
fn combine(a: Verdict, b: Verdict) -> Verdict {
    match (a, b) {
        (Verdict::Loop, _) | (_, Verdict::Loop) => Verdict::Loop,
        (Verdict::BlackHole, _) | (_, Verdict::BlackHole) => Verdict::BlackHole,
        _ => Verdict::Delivered,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 0 - 1 - 2 - 3 in a line (cost 1) plus 0 - 3 (cost 5).
    fn line() -> LiveGraph {
        let mut g = LiveGraph::new(4);
        g.link(0, 1, 1, 0);
        g.link(1, 2, 1, 0);
        g.link(2, 3, 1, 0);
        g.link(0, 3, 5, 0);
        g.finish();
        g
    }

    #[test]
    fn distances_are_shortest_paths_and_skip_absent_nodes() {
        let mut g = line();
        let mut d = Vec::new();
        g.distances_from(3, &mut d);
        assert_eq!(d, vec![3, 2, 1, 0]);
        g.present[2] = false;
        g.distances_from(3, &mut d);
        assert_eq!(d, vec![5, 6, UNREACHABLE, 0]);
    }

    #[test]
    fn verdicts_find_delivery_loops_black_holes_and_missing_routes() {
        let g = line();
        let mut t = Forwarding::new(4);
        let mut v = Vec::new();
        // Everyone forwards towards 3 along the line.
        t.set(0, 3, Some((&[1], 3)));
        t.set(1, 3, Some((&[2], 2)));
        t.set(2, 3, Some((&[3], 1)));
        verdicts(&t, &g, 3, &mut v);
        assert_eq!(v, vec![Verdict::Delivered; 4]);
        assert_eq!(t.routes(), 3);

        // 1 and 2 point at each other: both loop, and so does 0 through 1.
        t.set(2, 3, Some((&[1], 1)));
        verdicts(&t, &g, 3, &mut v);
        assert_eq!(&v[..3], &[Verdict::Loop, Verdict::Loop, Verdict::Loop]);

        // 2 has no route: 0 and 1 forward into a black hole, 2 has none.
        t.set(2, 3, None);
        verdicts(&t, &g, 3, &mut v);
        assert_eq!(&v[..3], &[Verdict::BlackHole, Verdict::BlackHole, Verdict::NoRoute]);
        assert_eq!(t.routes(), 2);

        // A next hop over a link that is not up is a black hole too.
        t.set(2, 3, Some((&[3], 1)));
        t.set(1, 3, Some((&[3], 1)));
        verdicts(&t, &g, 3, &mut v);
        assert_eq!(v[1], Verdict::BlackHole);
    }

    #[test]
    fn one_looping_equal_cost_branch_makes_the_source_loop() {
        let g = line();
        let mut t = Forwarding::new(4);
        let mut v = Vec::new();
        t.set(0, 2, Some((&[1, 3], 2)));
        t.set(1, 2, Some((&[2], 1)));
        t.set(3, 2, Some((&[0], 1)));
        verdicts(&t, &g, 2, &mut v);
        assert_eq!(v[1], Verdict::Delivered);
        assert_eq!(v[0], Verdict::Loop, "the branch through 3 comes back to 0");
        assert_eq!(v[3], Verdict::Loop);
    }

    #[test]
    fn area_scope_reaches_up_through_border_routers_only() {
        // Area 0 (core): 0 - 1. Area 1 (child of 0): 1 - 2 - 3. Node 1 is
        // the border router.
        let mut g = LiveGraph::new(4);
        g.link(0, 1, 1, 0);
        g.link(1, 2, 1, 1);
        g.link(2, 3, 1, 1);
        g.finish();
        let parents = [None, Some(0)];
        let mut reach = Vec::new();
        g.area_scoped_reach(3, &parents, &mut reach);
        assert_eq!(reach, vec![true, true, true, true], "the core reaches the child through the summary");
        g.area_scoped_reach(0, &parents, &mut reach);
        assert_eq!(reach, vec![true, true, false, false], "summaries do not flow down");
    }
}
