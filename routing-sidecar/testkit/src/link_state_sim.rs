//! A deterministic in-memory network of `LinkStateRouter`s: no sockets, no
//! threads, no clocks. Shared by the `link_state_*` integration tests.
//!
//! Same round semantics as `fabric_engine::sim::Fabric` (the path-vector
//! simulator), so the two protocols' figures compare like with like: every
//! update sent during round `n` is delivered in round `n + 1`, in send
//! order; a round stands for one gossip interval. Each receiver handles all
//! updates of a round as one batch (one SPF run at most per area).

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use fabric_core::{NodeId, Timestamp};
use fabric_link_state::{
    AreaId, LinkStateConfig, LinkStateEvent, LinkStateInput, LinkStateOutput, LinkStateRouter, LinkStateUpdate,
    LocalLink,
};

pub const START: Timestamp = Timestamp(1_700_000_000_000);

/// An update in flight.
#[derive(Clone, Debug)]
pub struct InFlight {
    pub from: NodeId,
    pub to: NodeId,
    pub update: Arc<LinkStateUpdate>,
}

/// Key of a link: both ends in id order, and the area.
type LinkKey = (NodeId, NodeId, AreaId);

pub struct LinkStateNet {
    now: Timestamp,
    routers: BTreeMap<NodeId, LinkStateRouter>,
    /// Up links and their cost (same both ways).
    links: BTreeMap<LinkKey, u32>,
    queue: VecDeque<InFlight>,
    pub messages_delivered: u64,
    /// Updates whose link went down while they were in flight.
    pub messages_dropped: u64,
    pub route_changes: u64,
    /// Every event, per node, in order.
    pub events: Vec<(NodeId, LinkStateEvent)>,
}

fn key(a: &str, b: &str, area: &str) -> LinkKey {
    let (a, b) = if a <= b { (a, b) } else { (b, a) };
    (NodeId::from(a), NodeId::from(b), AreaId::from(area))
}

impl LinkStateNet {
    /// Routers with the same config; links start down.
    pub fn new<'a>(nodes: impl IntoIterator<Item = &'a str>, config: &LinkStateConfig) -> Self {
        Self::with_configs(nodes.into_iter().map(|n| (n, config.clone())))
    }

    /// Routers with a config each.
    pub fn with_configs<'a>(configs: impl IntoIterator<Item = (&'a str, LinkStateConfig)>) -> Self {
        let routers = configs
            .into_iter()
            .map(|(id, config)| {
                (NodeId::from(id), LinkStateRouter::new(NodeId::from(id), config).expect("valid config"))
            })
            .collect();
        Self {
            now: START,
            routers,
            links: BTreeMap::new(),
            queue: VecDeque::new(),
            messages_delivered: 0,
            messages_dropped: 0,
            route_changes: 0,
            events: Vec::new(),
        }
    }

    pub fn now(&self) -> Timestamp {
        self.now
    }

    pub fn node_ids(&self) -> Vec<NodeId> {
        self.routers.keys().cloned().collect()
    }

    pub fn router(&self, id: &str) -> &LinkStateRouter {
        self.routers.get(id).unwrap_or_else(|| panic!("no node {id}"))
    }

    pub fn routers(&self) -> impl Iterator<Item = (&NodeId, &LinkStateRouter)> {
        self.routers.iter()
    }

    /// Brings a link up (or changes its cost); both ends see their new
    /// link set.
    pub fn connect(&mut self, a: &str, b: &str, area: &str, cost: u32) {
        self.links.insert(key(a, b, area), cost);
        self.push_links(a);
        self.push_links(b);
    }

    pub fn disconnect(&mut self, a: &str, b: &str, area: &str) {
        self.links.remove(&key(a, b, area));
        self.push_links(a);
        self.push_links(b);
    }

    /// A node restarts: its sessions drop (neighbors see the links go down),
    /// a fresh router with the same config and no memory takes its place,
    /// and the links come back up.
    pub fn restart(&mut self, node: &str) {
        let touching: Vec<(LinkKey, u32)> = self
            .links
            .iter()
            .filter(|((a, b, _), _)| a.as_str() == node || b.as_str() == node)
            .map(|(key, cost)| (key.clone(), *cost))
            .collect();
        let neighbors: BTreeSet<NodeId> =
            touching.iter().map(|((a, b, _), _)| if a.as_str() == node { b.clone() } else { a.clone() }).collect();
        for (key, _) in &touching {
            self.links.remove(key);
        }
        for neighbor in &neighbors {
            self.push_links(neighbor.as_str());
        }
        let id = NodeId::from(node);
        let config = self.router(node).config().clone();
        self.routers.insert(id.clone(), LinkStateRouter::new(id, config).expect("valid config"));
        self.links.extend(touching);
        self.push_links(node);
        for neighbor in &neighbors {
            self.push_links(neighbor.as_str());
        }
    }

    /// Every link of one area between the given pairs, brought up at once.
    pub fn connect_all(&mut self, area: &str, links: &[(&str, &str, u32)]) {
        for (a, b, cost) in links {
            self.links.insert(key(a, b, area), *cost);
        }
        for id in self.node_ids() {
            self.push_links(id.as_str());
        }
    }

    fn is_up(&self, a: &NodeId, b: &NodeId) -> bool {
        let (a, b) = if a <= b { (a, b) } else { (b, a) };
        self.links.keys().any(|(x, y, _)| x == a && y == b)
    }

    fn local_links(&self, node: &str) -> Vec<LocalLink> {
        self.links
            .iter()
            .filter_map(|((a, b, area), cost)| {
                let neighbor = if a.as_str() == node {
                    b
                } else if b.as_str() == node {
                    a
                } else {
                    return None;
                };
                Some(LocalLink {
                    neighbor: neighbor.clone(),
                    area: area.clone(),
                    cost: *cost,
                    latency_us: 100 * cost,
                    reliability: 1.0,
                })
            })
            .collect()
    }

    /// Hands one input to one node and queues what it sends.
    pub fn input(&mut self, node: &str, input: LinkStateInput) -> LinkStateOutput {
        let now = self.now;
        let out = self.routers.get_mut(node).unwrap_or_else(|| panic!("no node {node}")).handle(input, now);
        self.collect(&NodeId::from(node), &out);
        out
    }

    fn push_links(&mut self, node: &str) {
        if self.routers.contains_key(node) {
            let links = self.local_links(node);
            self.input(node, LinkStateInput::LocalLinksChanged { links });
        }
    }

    fn collect(&mut self, id: &NodeId, out: &LinkStateOutput) {
        for send in &out.send {
            self.queue.push_back(InFlight { from: id.clone(), to: send.to.clone(), update: Arc::clone(&send.update) });
        }
        self.route_changes += out.route_changes.len() as u64;
        self.events.extend(out.events.iter().map(|e| (id.clone(), e.clone())));
    }

    /// Delivers everything queued before this call; returns how many
    /// updates were delivered.
    pub fn step(&mut self) -> usize {
        let mut inboxes: BTreeMap<NodeId, Vec<LinkStateInput>> = BTreeMap::new();
        let mut delivered = 0;
        for flight in self.queue.drain(..).collect::<Vec<_>>() {
            if !self.is_up(&flight.from, &flight.to) || !self.routers.contains_key(&flight.to) {
                self.messages_dropped += 1;
                continue;
            }
            let update = Arc::unwrap_or_clone(flight.update);
            inboxes.entry(flight.to).or_default().push(LinkStateInput::UpdateReceived { from: flight.from, update });
            delivered += 1;
        }
        let now = self.now;
        for (to, inputs) in inboxes {
            let out = self.routers.get_mut(&to).expect("checked above").handle_batch(inputs, now);
            self.collect(&to, &out);
        }
        self.messages_delivered += delivered as u64;
        delivered
    }

    /// Delivers rounds until nothing is in flight and no route computation
    /// is pending; returns the number of rounds that delivered something.
    /// Panics past `max_rounds`.
    pub fn run_until_quiet(&mut self, max_rounds: usize) -> usize {
        let mut rounds = 0;
        loop {
            if self.queue.is_empty() && !self.fire_spf_timers() {
                return rounds;
            }
            assert!(rounds < max_rounds, "network not quiet after {max_rounds} rounds");
            if self.step() > 0 {
                rounds += 1;
            }
        }
    }

    /// Moves time to the earliest deferred route computation (the SPF
    /// throttle) and ticks the routers it is due on. `false` when none is
    /// pending.
    pub fn fire_spf_timers(&mut self) -> bool {
        let Some(due) = self.routers.values().filter_map(LinkStateRouter::spf_due).min() else {
            return false;
        };
        self.now = self.now.max(due);
        let now = self.now;
        let due_now: Vec<NodeId> = self
            .routers
            .iter()
            .filter(|(_, r)| r.spf_due().is_some_and(|at| at <= now))
            .map(|(id, _)| id.clone())
            .collect();
        for id in due_now {
            self.input(id.as_str(), LinkStateInput::Tick);
        }
        true
    }

    /// Moves time forward and ticks every router, in node order.
    pub fn advance(&mut self, by: Duration) {
        self.now = self.now + by;
        for id in self.node_ids() {
            self.input(id.as_str(), LinkStateInput::Tick);
        }
    }

    pub fn next_hops(&self, node: &str, destination: &str) -> Vec<String> {
        self.router(node)
            .route(&NodeId::from(destination))
            .map(|r| r.next_hops.iter().map(|h| h.to_string()).collect())
            .unwrap_or_default()
    }

    pub fn cost(&self, node: &str, destination: &str) -> Option<u64> {
        self.router(node).route(&NodeId::from(destination)).map(|r| r.cost)
    }

    /// Follows every equal-cost next hop from `from` hop by hop: `Ok` with
    /// every forwarding path when all reach `destination`, `Err` on a loop
    /// or a node without a route.
    pub fn trace(&self, from: &str, destination: &str) -> Result<Vec<Vec<String>>, String> {
        let mut complete = Vec::new();
        let mut pending = vec![vec![from.to_string()]];
        while let Some(path) = pending.pop() {
            let here = path.last().expect("non-empty").clone();
            if here == destination {
                complete.push(path);
                continue;
            }
            let hops = self.next_hops(&here, destination);
            if hops.is_empty() {
                return Err(format!("{here} has no route to {destination} (path {path:?})"));
            }
            for hop in hops {
                if path.contains(&hop) {
                    return Err(format!("loop: {path:?} then {hop}"));
                }
                let mut longer = path.clone();
                longer.push(hop);
                pending.push(longer);
            }
        }
        complete.sort();
        Ok(complete)
    }
}

/// Shortest-path costs and equal-cost first hops from `source` over the
/// undirected `links`, by brute force (Bellman-Ford from the source and from
/// each of its neighbors): the oracle the routers must agree with.
pub fn oracle(links: &[(String, String, u32)], source: &str) -> BTreeMap<String, (u64, BTreeSet<String>)> {
    let mut edges: Vec<(&str, &str, u64)> = Vec::new();
    for (a, b, cost) in links {
        edges.push((a, b, u64::from(*cost)));
        edges.push((b, a, u64::from(*cost)));
    }
    let from_source = bellman_ford(&edges, source);
    let mut first_link: BTreeMap<&str, u64> = BTreeMap::new();
    for &(a, b, cost) in &edges {
        if a == source {
            let entry = first_link.entry(b).or_insert(cost);
            *entry = (*entry).min(cost);
        }
    }
    let from_neighbor: BTreeMap<&str, BTreeMap<&str, u64>> =
        first_link.keys().map(|n| (*n, bellman_ford(&edges, n))).collect();
    from_source
        .iter()
        .filter(|(node, _)| **node != source)
        .map(|(node, &dist)| {
            let hops = first_link
                .iter()
                .filter(|(n, link)| from_neighbor[**n].get(node).is_some_and(|d| **link + d == dist))
                .map(|(n, _)| n.to_string())
                .collect();
            (node.to_string(), (dist, hops))
        })
        .collect()
}

fn bellman_ford<'a>(edges: &[(&'a str, &'a str, u64)], from: &'a str) -> BTreeMap<&'a str, u64> {
    let mut dist: BTreeMap<&str, u64> = BTreeMap::new();
    dist.insert(from, 0);
    loop {
        let mut changed = false;
        for &(a, b, cost) in edges {
            if let Some(&da) = dist.get(a)
                && dist.get(b).is_none_or(|&db| da + cost < db)
            {
                dist.insert(b, da + cost);
                changed = true;
            }
        }
        if !changed {
            return dist;
        }
    }
}

/// Convergence figures of one link failure.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChurnStep {
    pub failed: (String, String),
    /// Gossip rounds until nothing was in flight.
    pub rounds: usize,
    /// Updates delivered during those rounds.
    pub messages: u64,
    pub route_changes: u64,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChurnReport {
    pub initial_rounds: usize,
    pub initial_messages: u64,
    pub steps: Vec<ChurnStep>,
}

/// The link-state half of the churn comparison: builds a one-area network
/// of `links`, converges it, then fails `failures` one at a time, letting
/// the network settle after each and checking every router against the
/// oracle. The path-vector half runs the same links and failures through
/// `fabric_engine::sim::Fabric`.
pub fn link_state_churn(
    links: &[(&str, &str, u32)],
    failures: &[(&str, &str)],
    config: &LinkStateConfig,
) -> ChurnReport {
    const AREA: &str = "fabric";
    let nodes: BTreeSet<&str> = links.iter().flat_map(|(a, b, _)| [*a, *b]).collect();
    let mut net = LinkStateNet::new(nodes.iter().copied(), config);
    net.connect_all(AREA, links);
    let initial_rounds = net.run_until_quiet(1_000);
    let initial_messages = net.messages_delivered;
    let mut live: Vec<(String, String, u32)> =
        links.iter().map(|(a, b, c)| (a.to_string(), b.to_string(), *c)).collect();
    assert_matches_oracle(&net, &live, config.max_paths);

    let mut steps = Vec::new();
    for (a, b) in failures {
        let (messages_before, changes_before) = (net.messages_delivered, net.route_changes);
        net.disconnect(a, b, AREA);
        let rounds = net.run_until_quiet(1_000);
        live.retain(|(x, y, _)| !((x == a && y == b) || (x == b && y == a)));
        assert_matches_oracle(&net, &live, config.max_paths);
        steps.push(ChurnStep {
            failed: (a.to_string(), b.to_string()),
            rounds,
            messages: net.messages_delivered - messages_before,
            route_changes: net.route_changes - changes_before,
        });
    }
    ChurnReport { initial_rounds, initial_messages, steps }
}

/// Every router's table equals the oracle over `links` (next hops capped at
/// `max_paths`, lowest ids first).
pub fn assert_matches_oracle(net: &LinkStateNet, links: &[(String, String, u32)], max_paths: usize) {
    for (id, router) in net.routers() {
        let expected = oracle(links, id.as_str());
        let actual: BTreeMap<String, (u64, BTreeSet<String>)> = router
            .routes()
            .iter()
            .map(|(dest, route)| {
                (dest.to_string(), (route.cost, route.next_hops.iter().map(|h| h.to_string()).collect()))
            })
            .collect();
        let expected: BTreeMap<String, (u64, BTreeSet<String>)> = expected
            .into_iter()
            .map(|(dest, (cost, hops))| (dest, (cost, hops.into_iter().take(max_paths).collect())))
            .collect();
        assert_eq!(actual, expected, "routes of {id}");
    }
}
