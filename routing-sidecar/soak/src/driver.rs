//! The discrete-event network and the two protocols behind one interface.
//!
//! Time is simulated in microseconds. Every node acts on a gossip grid:
//! once per gossip interval, at its own phase, it hands everything that
//! arrived since its last turn to its protocol as one batch (path-vector
//! `receive_batch`, link-state `handle_batch`), runs its due timers, and
//! sends what it has to say; each message arrives after its link's latency.
//! Local events (a link going down, a reload) reach the protocol at once,
//! and what it wants to send waits for the node's next turn. A priority
//! queue orders arrivals and turns by (time, sequence number), so the run is
//! deterministic.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use fabric_core::config::{LinkMetrics, LocalRoute, NeighborConfig, SidecarConfig, TrustedKey, encode_public_key};
use fabric_core::ids::{KeyId, NodeId};
use fabric_core::message::{Message, RouteAnnouncement, RouteMetrics};
use fabric_core::security::{KeyRegistry, PublicKeyEntry, SigningIdentity};
use fabric_core::time::Timestamp;
use fabric_engine::{Effect, Engine, RouteEvent};
use fabric_link_state::{
    AreaConfig, AreaId, LinkAdvert, LinkStateConfig, LinkStateInput, LinkStateOutput, LinkStateRouter, LinkStateUpdate,
    LocalLink, RouteChange, SpfThrottleConfig,
};

use super::oracle::{Forwarding, LiveGraph, MAX_HOPS, NONE, UNREACHABLE, Verdict, verdicts};
use super::report::{EventRow, ModeRun, SteadyRow};
use super::schedule::{Action, Schedule};
use super::topology::SoakTopology;
use super::{Rng, SoakOptions};

/// Simulated time of the run's start (any fixed instant works; this one
/// keeps epochs and key validity realistic).
pub(crate) const START: Timestamp = Timestamp(1_700_000_000_000);

/// Timers set beyond any soak, so that the counted messages are the ones
/// events cause: periodic refreshes would add, per refresh interval, one
/// announcement per (node, destination, neighbor) in path-vector and one
/// flood per node in link-state, whatever happens.
const NO_REFRESH: Duration = Duration::from_secs(7 * 24 * 3600);
const LONG_TTL: Duration = Duration::from_secs(30 * 24 * 3600);

/// Heap bytes per stored path-vector candidate (docs/benchmarks.md,
/// "Memory per stored candidate", at 1M candidates).
pub(crate) const PATH_VECTOR_BYTES_PER_CANDIDATE: u64 = 124;

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Mode {
    PathVector,
    LinkState,
}

impl Mode {
    pub fn label(self) -> &'static str {
        match self {
            Mode::PathVector => "path-vector",
            Mode::LinkState => "link-state",
        }
    }
}

/// A route as the oracle checks it: up to `MAX_HOPS` next hops (`NONE`
/// fills the rest) and its cost.
pub(crate) type RouteView = ([u32; MAX_HOPS], u64);

/// What one protocol call produced.
pub(crate) struct Out<M> {
    /// (to, message, encoded bytes).
    pub sends: Vec<(u32, M, u32)>,
    /// (destination, next hops and cost, or `None`: no route).
    pub changes: Vec<(u32, Option<RouteView>)>,
    /// Hold-downs and suppressions started.
    pub held_down_started: u64,
    pub suppressions_started: u64,
}

impl<M> Default for Out<M> {
    fn default() -> Self {
        Self { sends: Vec::new(), changes: Vec::new(), held_down_started: 0, suppressions_started: 0 }
    }
}

/// One protocol instance per node, behind the calls the network makes.
pub(crate) trait Protocol {
    type Msg: Clone;
    /// A node's turn: the messages that arrived since its last one, then
    /// its due timers.
    fn process(&mut self, node: u32, now: Timestamp, inbox: Vec<(u32, Self::Msg)>, out: &mut Out<Self::Msg>);
    fn next_deadline(&self, node: u32) -> Option<Timestamp>;
    /// Links of `node` went up or down; `live` is its up links now.
    fn links_changed(
        &mut self,
        node: u32,
        changes: &[(u32, bool)],
        live: &[(u32, u32)],
        now: Timestamp,
        out: &mut Out<Self::Msg>,
    );
    fn crash(&mut self, node: u32);
    /// A fresh instance with no memory; links come up afterwards.
    fn restart(&mut self, node: u32, now: Timestamp, out: &mut Out<Self::Msg>);
    fn withdraw(&mut self, node: u32, now: Timestamp, out: &mut Out<Self::Msg>);
    /// Brings the destination back; `true`: the node must restart instead.
    fn restore(&mut self, node: u32, now: Timestamp, out: &mut Out<Self::Msg>) -> bool;
    /// Whether a withdrawn node still forwards for others.
    fn withdrawn_node_forwards(&self) -> bool;
    fn reload(&mut self, node: u32, deny: Option<u32>, now: Timestamp, out: &mut Out<Self::Msg>);
    /// Rotation of `node`'s key; outputs by node.
    fn rotate(&mut self, node: u32, now: Timestamp, outs: &mut Vec<(u32, Out<Self::Msg>)>);
    /// Injects a forged message; returns whether it was accepted.
    fn forge(
        &mut self,
        victim: u32,
        from: u32,
        claimed: u32,
        forged_signature: bool,
        now: Timestamp,
        out: &mut Out<Self::Msg>,
    ) -> bool;
    /// Approximate state bytes of one node.
    fn memory(&self, node: u32) -> u64;
    /// Over all nodes: (stored routes, held down, suppressed), from the
    /// engines' own gauges.
    fn suppression(&self) -> (u64, u64, u64);
}

struct Item<M> {
    time: u64,
    seq: u64,
    kind: ItemKind<M>,
}

enum ItemKind<M> {
    Arrival { to: u32, from: u32, link: u32, generation: u32, message: M },
    Turn { node: u32 },
}

impl<M> PartialEq for Item<M> {
    fn eq(&self, other: &Self) -> bool {
        (self.time, self.seq) == (other.time, other.seq)
    }
}
impl<M> Eq for Item<M> {}
impl<M> PartialOrd for Item<M> {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl<M> Ord for Item<M> {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        (self.time, self.seq).cmp(&(other.time, other.seq))
    }
}

/// Per-event measurements being collected.
#[derive(Default)]
struct Window {
    start_us: u64,
    last_change_us: Option<u64>,
    messages: u64,
    bytes: u64,
    route_changes: u64,
    held_down_started: u64,
    suppressions_started: u64,
    dropped: u64,
    /// Withdraw: the node whose destination is watched at its neighbors.
    watched: Option<u32>,
    last_watched_change_us: Option<u64>,
}

struct Sim<'a, P: Protocol> {
    topology: &'a SoakTopology,
    proto: P,
    withdrawn_forwards: bool,
    interval_us: u64,
    phase_us: Vec<u64>,
    now_us: u64,
    queue: BinaryHeap<Reverse<Item<P::Msg>>>,
    seq: u64,
    admin_up: Vec<bool>,
    link_up: Vec<bool>,
    generation: Vec<u32>,
    alive: Vec<bool>,
    withdrawn: Vec<bool>,
    denied: Vec<Option<u32>>,
    inbox: Vec<Vec<(u32, P::Msg)>>,
    outbox: Vec<Vec<(u32, P::Msg, u32)>>,
    pending: Vec<bool>,
    pending_nodes: usize,
    turn_at: Vec<u64>,
    in_flight: u64,
    table: Forwarding,
    window: Window,
    /// Pairs (node * n + destination) that lost their route / were seen in
    /// a loop during the current event.
    lost: Vec<bool>,
    looped: Vec<bool>,
    dirty_destinations: Vec<bool>,
    next_probe_us: Option<u64>,
    scratch: Vec<Verdict>,
}

fn timestamp(us: u64) -> Timestamp {
    Timestamp(START.0 + us / 1000)
}

fn us_of(t: Timestamp) -> u64 {
    t.0.saturating_sub(START.0) * 1000
}

impl<'a, P: Protocol> Sim<'a, P> {
    fn new(topology: &'a SoakTopology, proto: P, interval: Duration, rng: &mut Rng) -> Self {
        let n = topology.node_count();
        let interval_us = interval.as_micros().max(1) as u64;
        let links = topology.links.len();
        Self {
            topology,
            withdrawn_forwards: proto.withdrawn_node_forwards(),
            proto,
            interval_us,
            phase_us: (0..n).map(|_| rng.below(interval_us)).collect(),
            now_us: 0,
            queue: BinaryHeap::new(),
            seq: 0,
            admin_up: vec![true; links],
            link_up: vec![false; links],
            generation: vec![0; links],
            alive: vec![true; n],
            withdrawn: vec![false; n],
            denied: vec![None; n],
            inbox: (0..n).map(|_| Vec::new()).collect(),
            outbox: (0..n).map(|_| Vec::new()).collect(),
            pending: vec![false; n],
            pending_nodes: 0,
            turn_at: vec![u64::MAX; n],
            in_flight: 0,
            table: Forwarding::new(n),
            window: Window::default(),
            lost: vec![false; n * n],
            looped: vec![false; n * n],
            dirty_destinations: vec![false; n],
            next_probe_us: None,
            scratch: Vec::new(),
        }
    }

    fn n(&self) -> usize {
        self.topology.node_count()
    }

    fn push(&mut self, time: u64, kind: ItemKind<P::Msg>) {
        self.seq += 1;
        self.queue.push(Reverse(Item { time, seq: self.seq, kind }));
    }

    /// The node's first turn at or after `at`.
    fn schedule_turn(&mut self, node: u32, at: u64) {
        let phase = self.phase_us[node as usize];
        let k = at.saturating_sub(phase).div_ceil(self.interval_us);
        let time = phase + k * self.interval_us;
        if time < self.turn_at[node as usize] {
            self.turn_at[node as usize] = time;
            self.push(time, ItemKind::Turn { node });
        }
    }

    fn mark_pending(&mut self, node: u32) {
        if !self.pending[node as usize] {
            self.pending[node as usize] = true;
            self.pending_nodes += 1;
        }
        self.schedule_turn(node, self.now_us);
    }

    fn quiet(&self) -> bool {
        self.in_flight == 0 && self.pending_nodes == 0
    }

    /// Takes what a protocol call produced at `node`: route changes now,
    /// messages into the outbox for the node's next turn.
    fn absorb(&mut self, node: u32, out: Out<P::Msg>) {
        let n = self.n();
        for (destination, route) in out.changes {
            let had = self.table.set(node, destination, route.as_ref().map(|(h, c)| (&h[..], *c)));
            self.window.route_changes += 1;
            self.window.last_change_us = Some(self.now_us);
            self.dirty_destinations[destination as usize] = true;
            if route.is_none() && had {
                self.lost[node as usize * n + destination as usize] = true;
            }
            if let Some(watched) = self.window.watched
                && destination == watched
                && self.topology.link_between(node, watched).is_some()
            {
                self.window.last_watched_change_us = Some(self.now_us);
            }
        }
        self.window.held_down_started += out.held_down_started;
        self.window.suppressions_started += out.suppressions_started;
        if !out.sends.is_empty() {
            self.outbox[node as usize].extend(out.sends);
            self.mark_pending(node);
        }
    }

    fn turn(&mut self, node: u32) {
        self.turn_at[node as usize] = u64::MAX;
        if !self.alive[node as usize] {
            return;
        }
        let inbox = std::mem::take(&mut self.inbox[node as usize]);
        let mut out = Out::default();
        self.proto.process(node, timestamp(self.now_us), inbox, &mut out);
        self.absorb(node, out);
        let sends = std::mem::take(&mut self.outbox[node as usize]);
        for (to, message, bytes) in sends {
            let Some(link) = self.topology.link_between(node, to) else { continue };
            self.window.messages += 1;
            self.window.bytes += u64::from(bytes);
            if !self.link_up[link as usize] {
                self.window.dropped += 1;
                continue;
            }
            let arrival = self.now_us + u64::from(self.topology.links[link as usize].latency_us);
            let generation = self.generation[link as usize];
            self.in_flight += 1;
            self.push(arrival, ItemKind::Arrival { to, from: node, link, generation, message });
        }
        if self.pending[node as usize] {
            self.pending[node as usize] = false;
            self.pending_nodes -= 1;
        }
        if let Some(deadline) = self.proto.next_deadline(node) {
            self.schedule_turn(node, us_of(deadline).max(self.now_us + 1));
        }
    }

    /// Runs until `until_us`, or until nothing is in flight when `stop_when_quiet`.
    fn run_until(&mut self, until_us: u64, stop_when_quiet: bool) -> bool {
        loop {
            if stop_when_quiet && self.quiet() {
                return true;
            }
            let Some(Reverse(top)) = self.queue.peek() else {
                self.now_us = self.now_us.max(until_us);
                return self.quiet();
            };
            if top.time > until_us {
                self.probe_until(until_us);
                self.now_us = until_us;
                return self.quiet();
            }
            let time = top.time;
            self.probe_until(time);
            let Reverse(item) = self.queue.pop().expect("peeked");
            self.now_us = time;
            match item.kind {
                ItemKind::Turn { node } => {
                    if self.turn_at[node as usize] == time {
                        self.turn(node);
                    }
                }
                ItemKind::Arrival { to, from, link, generation, message } => {
                    self.in_flight -= 1;
                    if !self.link_up[link as usize]
                        || self.generation[link as usize] != generation
                        || !self.alive[to as usize]
                    {
                        self.window.dropped += 1;
                        continue;
                    }
                    self.inbox[to as usize].push((from, message));
                    self.mark_pending(to);
                }
            }
        }
    }

    /// Checks forwarding once per gossip interval while an event is being
    /// measured, for the destinations whose routes changed since the last
    /// check (a loop needs a route change to appear or go away).
    fn probe_until(&mut self, time: u64) {
        while let Some(probe) = self.next_probe_us {
            if probe > time {
                return;
            }
            self.next_probe_us = Some(probe + self.interval_us);
            let graph = self.live_graph();
            let n = self.n();
            for destination in 0..n as u32 {
                if !std::mem::take(&mut self.dirty_destinations[destination as usize]) {
                    continue;
                }
                verdicts(&self.table, &graph, destination, &mut self.scratch);
                for (node, verdict) in self.scratch.iter().enumerate() {
                    if *verdict == Verdict::Loop {
                        self.looped[node * n + destination as usize] = true;
                    }
                }
            }
        }
    }

    /// The graph as the protocol should see it: present nodes, up links.
    fn live_graph(&self) -> LiveGraph {
        let mut graph = LiveGraph::new(self.n());
        for node in 0..self.n() {
            graph.present[node] = self.alive[node] && (self.withdrawn_forwards || !self.withdrawn[node]);
        }
        for (i, link) in self.topology.links.iter().enumerate() {
            if self.link_up[i] && graph.present[link.a as usize] && graph.present[link.b as usize] {
                graph.link(link.a, link.b, link.cost, link.area);
            }
        }
        graph.finish();
        graph
    }

    fn live_links(&self, node: u32) -> Vec<(u32, u32)> {
        self.topology.adjacency[node as usize].iter().copied().filter(|(_, l)| self.link_up[*l as usize]).collect()
    }

    /// Brings every link to its wanted state (administratively up and both
    /// ends alive) and tells the protocols of the ends that changed.
    fn sync_links(&mut self, links: impl IntoIterator<Item = u32>) {
        let mut changes: std::collections::BTreeMap<u32, Vec<(u32, bool)>> = Default::default();
        for link in links {
            let l = self.topology.links[link as usize];
            let want = self.admin_up[link as usize] && self.alive[l.a as usize] && self.alive[l.b as usize];
            if want == self.link_up[link as usize] {
                continue;
            }
            self.link_up[link as usize] = want;
            self.generation[link as usize] += 1;
            for (here, there) in [(l.a, l.b), (l.b, l.a)] {
                if self.alive[here as usize] {
                    changes.entry(here).or_default().push((there, want));
                }
            }
        }
        let now = timestamp(self.now_us);
        for (node, list) in changes {
            let live = self.live_links(node);
            let mut out = Out::default();
            self.proto.links_changed(node, &list, &live, now, &mut out);
            self.absorb(node, out);
        }
    }

    fn node_links(&self, node: u32) -> Vec<u32> {
        self.topology.adjacency[node as usize].iter().map(|(_, l)| *l).collect()
    }

    fn crash(&mut self, node: u32) {
        self.alive[node as usize] = false;
        let links = self.node_links(node);
        self.sync_links(links);
        self.proto.crash(node);
        self.table.clear_node(node);
        self.inbox[node as usize].clear();
        self.outbox[node as usize].clear();
        if std::mem::take(&mut self.pending[node as usize]) {
            self.pending_nodes -= 1;
        }
    }

    fn restart(&mut self, node: u32) {
        self.alive[node as usize] = true;
        self.withdrawn[node as usize] = false;
        self.denied[node as usize] = None;
        let mut out = Out::default();
        self.proto.restart(node, timestamp(self.now_us), &mut out);
        self.absorb(node, out);
        let links = self.node_links(node);
        self.sync_links(links);
    }

    fn apply(&mut self, action: &Action) -> (u64, u64) {
        let now = timestamp(self.now_us);
        match action {
            Action::LinkDown { link } | Action::LinkUp { link } => {
                self.admin_up[*link as usize] = matches!(action, Action::LinkUp { .. });
                self.sync_links([*link]);
            }
            Action::Partition { links, .. } | Action::Heal { links } => {
                let up = matches!(action, Action::Heal { .. });
                for link in links {
                    self.admin_up[*link as usize] = up;
                }
                self.sync_links(links.iter().copied());
            }
            Action::NodeCrash { node } => self.crash(*node),
            Action::NodeRestart { node } => self.restart(*node),
            Action::Withdraw { node } => {
                self.withdrawn[*node as usize] = true;
                self.window.watched = Some(*node);
                let mut out = Out::default();
                self.proto.withdraw(*node, now, &mut out);
                self.absorb(*node, out);
            }
            Action::Restore { node } => {
                let mut out = Out::default();
                let restart = self.proto.restore(*node, now, &mut out);
                self.absorb(*node, out);
                self.withdrawn[*node as usize] = false;
                if restart {
                    self.crash(*node);
                    self.restart(*node);
                }
            }
            Action::PolicyReload { node, deny } => {
                self.denied[*node as usize] = *deny;
                let mut out = Out::default();
                self.proto.reload(*node, *deny, now, &mut out);
                self.absorb(*node, out);
            }
            Action::KeyRotation { node } => {
                let mut outs = Vec::new();
                self.proto.rotate(*node, now, &mut outs);
                for (node, out) in outs {
                    self.absorb(node, out);
                }
            }
            Action::Forgery { victim, from, claimed, forged_signature } => {
                let mut out = Out::default();
                let accepted = self.proto.forge(*victim, *from, *claimed, *forged_signature, now, &mut out);
                self.absorb(*victim, out);
                return (1, u64::from(accepted));
            }
        }
        (0, 0)
    }

    fn begin_window(&mut self) {
        self.window = Window { start_us: self.now_us, ..Window::default() };
        self.lost.fill(false);
        self.looped.fill(false);
        self.dirty_destinations.fill(false);
        self.next_probe_us = Some(self.now_us + self.interval_us);
    }

    /// Closes the current event: checks every route against the oracle.
    fn end_window(&mut self, row: &mut EventRow, quiet: bool) {
        self.next_probe_us = None;
        let n = self.n();
        let graph = self.live_graph();
        let parents: Vec<Option<u16>> = self.topology.areas.iter().map(|a| a.parent).collect();
        let scoped = !self.withdrawn_forwards && self.topology.areas.len() > 1;
        let mut distances = Vec::new();
        let mut reach = Vec::new();
        let (mut missing, mut loops, mut black_holes, mut suboptimal, mut transient_missing) = (0, 0, 0, 0, 0);
        for destination in 0..n as u32 {
            let wanted = self.alive[destination as usize] && !self.withdrawn[destination as usize];
            graph.distances_from(destination, &mut distances);
            if scoped {
                graph.area_scoped_reach(destination, &parents, &mut reach);
            }
            verdicts(&self.table, &graph, destination, &mut self.scratch);
            for source in 0..n as u32 {
                if source == destination || !graph.present[source as usize] {
                    continue;
                }
                let pair = source as usize * n + destination as usize;
                let denied = self.denied[source as usize] == Some(destination);
                let expected = wanted
                    && !denied
                    && distances[source as usize] != UNREACHABLE
                    && (!scoped || reach[source as usize]);
                let verdict = self.scratch[source as usize];
                if verdict == Verdict::Loop {
                    self.looped[pair] = true;
                }
                if !expected {
                    continue;
                }
                match verdict {
                    Verdict::NoRoute => missing += 1,
                    Verdict::Loop => loops += 1,
                    Verdict::BlackHole => black_holes += 1,
                    _ => {
                        if self.lost[pair] {
                            transient_missing += 1;
                        }
                        if !scoped && self.table.cost(source, destination) != distances[source as usize] {
                            suboptimal += 1;
                        }
                    }
                }
            }
        }
        let interval_ms = self.interval_us as f64 / 1000.0;
        let convergence_us = self.window.last_change_us.map(|t| t - self.window.start_us).unwrap_or(0);
        row.quiet = quiet;
        row.convergence_ms = convergence_us as f64 / 1000.0;
        row.convergence_intervals = row.convergence_ms / interval_ms;
        row.one_hop_ms = self
            .window
            .watched
            .map(|_| self.window.last_watched_change_us.map(|t| t - self.window.start_us).unwrap_or(0) as f64 / 1000.0);
        row.messages = self.window.messages;
        row.bytes = self.window.bytes;
        row.route_changes = self.window.route_changes;
        row.transient_missing = transient_missing;
        row.transient_loops = self.looped.iter().filter(|l| **l).count() as u64;
        row.missing = missing;
        row.loops = loops;
        row.black_holes = black_holes;
        row.suboptimal = suboptimal;
        row.held_down_started = self.window.held_down_started;
        row.suppressions_started = self.window.suppressions_started;
        row.dropped = self.window.dropped;
    }

    fn steady(&self, at_ms: u64) -> SteadyRow {
        let (stored, held_down, suppressed) = self.proto.suppression();
        SteadyRow { at_ms, routes: self.table.routes(), stored, held_down, suppressed }
    }
}

/// Runs one protocol over the whole schedule.
pub(crate) fn run_mode(
    mode: Mode,
    topology: &SoakTopology,
    schedule: &Schedule,
    options: &SoakOptions,
    seed: u64,
) -> ModeRun {
    let mut rng = Rng::new(seed ^ 0x5eed);
    let keys = Keys::new(topology, &mut rng);
    match mode {
        Mode::PathVector => {
            let proto = PathVector::new(topology, options, keys);
            drive(mode, topology, schedule, options, proto, &mut rng)
        }
        Mode::LinkState => {
            let proto = LinkState::new(topology, options, keys);
            drive(mode, topology, schedule, options, proto, &mut rng)
        }
    }
}

fn drive<P: Protocol>(
    mode: Mode,
    topology: &SoakTopology,
    schedule: &Schedule,
    options: &SoakOptions,
    proto: P,
    rng: &mut Rng,
) -> ModeRun {
    let mut sim = Sim::new(topology, proto, options.gossip_interval, rng);
    // The initial convergence: every link comes up at time zero.
    sim.begin_window();
    let all: Vec<u32> = (0..topology.links.len() as u32).collect();
    sim.sync_links(all);
    let limit = 3_600_000_000;
    let quiet = sim.run_until(limit, true);
    let mut initial = EventRow::new(0, u32::MAX, 0, "initial", format!("{} nodes", topology.node_count()));
    sim.end_window(&mut initial, quiet);
    // Scheduled times count from a whole second after the initial convergence.
    let base_us = (sim.now_us / 1_000_000 + 1) * 1_000_000;
    let mut events = Vec::new();
    let mut steady = Vec::new();
    let (mut injected, mut accepted) = (0, 0);
    for (i, scheduled) in schedule.actions.iter().enumerate() {
        let at_us = base_us + scheduled.at_ms * 1000;
        sim.run_until(at_us, false);
        steady.push(sim.steady(scheduled.at_ms));
        sim.begin_window();
        let (inj, acc) = sim.apply(&scheduled.action);
        injected += inj;
        accepted += acc;
        let next_us = schedule
            .actions
            .get(i + 1)
            .map(|a| base_us + a.at_ms * 1000)
            .unwrap_or(base_us + schedule.duration_ms * 1000);
        let quiet = sim.run_until(next_us.max(at_us), true);
        let mut row = EventRow::new(
            i as u32 + 1,
            scheduled.scenario,
            scheduled.at_ms,
            scheduled.action.kind(),
            scheduled.action.subject(topology),
        );
        row.forged_injected = inj;
        row.forged_accepted = acc;
        sim.end_window(&mut row, quiet);
        events.push(row);
    }
    sim.run_until(base_us + schedule.duration_ms * 1000, false);
    steady.push(sim.steady(schedule.duration_ms));
    let memory: Vec<u64> = (0..topology.node_count() as u32).map(|n| sim.proto.memory(n)).collect();
    ModeRun {
        mode,
        initial,
        events,
        steady,
        memory_mean_bytes: memory.iter().sum::<u64>() / memory.len().max(1) as u64,
        memory_max_bytes: memory.iter().copied().max().unwrap_or(0),
        forged_injected: injected,
        forged_accepted: accepted,
    }
}

/// Every node's signing keys, made from the seed (rotation adds one).
struct Keys {
    current: Vec<SigningIdentity>,
    generation: Vec<u32>,
    names: Vec<NodeId>,
    rng: Rng,
}

impl Keys {
    fn new(topology: &SoakTopology, rng: &mut Rng) -> Self {
        let mut rng = Rng::new(rng.next_u64());
        let current = topology
            .names
            .iter()
            .map(|name| SigningIdentity::from_secret_bytes(KeyId::from(format!("{name}-k1").as_str()), &rng.bytes32()))
            .collect();
        Self { current, generation: vec![1; topology.node_count()], names: topology.names.clone(), rng }
    }

    fn rotate(&mut self, node: u32) -> SigningIdentity {
        let g = &mut self.generation[node as usize];
        *g += 1;
        let key_id = KeyId::from(format!("{}-k{g}", self.names[node as usize]).as_str());
        let identity = SigningIdentity::from_secret_bytes(key_id, &self.rng.bytes32());
        self.current[node as usize] = identity.clone();
        identity
    }

    /// A key that is not the node's, under the node's current key id.
    fn impostor(&mut self, node: u32) -> SigningIdentity {
        SigningIdentity::from_secret_bytes(self.current[node as usize].key_id().clone(), &self.rng.bytes32())
    }

    fn trusted(&self, node: u32) -> TrustedKey {
        let identity = &self.current[node as usize];
        TrustedKey {
            advertiser: self.names[node as usize].clone(),
            key_id: identity.key_id().clone(),
            public_key: encode_public_key(&identity.verifying_key()),
            valid_from: None,
            valid_until: None,
        }
    }

    fn entry(&self, node: u32) -> PublicKeyEntry {
        let identity = &self.current[node as usize];
        PublicKeyEntry {
            advertiser: self.names[node as usize].clone(),
            key_id: identity.key_id().clone(),
            key: identity.verifying_key(),
            valid_from: None,
            valid_until: None,
        }
    }
}

/// Node index of a name `nXXXX`.
fn index_of(index: &HashMap<Arc<str>, u32>, name: &str) -> u32 {
    index.get(name).copied().unwrap_or(NONE)
}

fn name_index(topology: &SoakTopology) -> HashMap<Arc<str>, u32> {
    topology.names.iter().enumerate().map(|(i, n)| (Arc::from(n.as_str()), i as u32)).collect()
}

/// The path-vector engines.
struct PathVector {
    names: Vec<NodeId>,
    index: HashMap<Arc<str>, u32>,
    configs: Vec<SidecarConfig>,
    engines: Vec<Option<Engine>>,
    keys: Keys,
    signatures: bool,
    neighbors: Vec<Vec<u32>>,
    effects: Vec<Effect>,
    buffer: Vec<u8>,
}

impl PathVector {
    fn new(topology: &SoakTopology, options: &SoakOptions, keys: Keys) -> Self {
        let n = topology.node_count();
        let neighbors: Vec<Vec<u32>> =
            topology.adjacency.iter().map(|list| list.iter().map(|(v, _)| *v).collect()).collect();
        let mut configs = Vec::with_capacity(n);
        for node in 0..n as u32 {
            let name = topology.names[node as usize].clone();
            let mut config = SidecarConfig::new(name.clone());
            config.originate = vec![LocalRoute {
                destination: name.as_str().into(),
                cost: 0,
                latency_us: 0,
                reliability: 1.0,
                tags: vec![],
            }];
            for &(neighbor, link) in &topology.adjacency[node as usize] {
                let l = &topology.links[link as usize];
                config.neighbors.push(NeighborConfig {
                    id: topology.names[neighbor as usize].clone(),
                    address: None,
                    link: LinkMetrics { cost: l.cost, latency_us: l.latency_us, reliability: 1.0 },
                    import: None,
                    export: None,
                });
            }
            config.timers.refresh_interval = NO_REFRESH;
            config.timers.route_ttl = LONG_TTL;
            config.timers.max_ttl = LONG_TTL;
            config.stability.hold_down = options.hold_down;
            config.stability.dampening.enabled = options.dampening;
            config.security.require_signatures = options.signatures;
            config.security.verification_cache_size = Some(256);
            if options.signatures {
                // A signature authenticates the advertiser, a neighbor: each
                // node needs its neighbors' keys only.
                config.security.trusted_keys = neighbors[node as usize].iter().map(|v| keys.trusted(*v)).collect();
            }
            configs.push(config);
        }
        let mut pv = Self {
            names: topology.names.clone(),
            index: name_index(topology),
            engines: (0..n).map(|_| None).collect(),
            configs,
            keys,
            signatures: options.signatures,
            neighbors,
            effects: Vec::new(),
            buffer: Vec::new(),
        };
        for node in 0..n as u32 {
            pv.start(node, START);
        }
        pv
    }

    fn start(&mut self, node: u32, now: Timestamp) {
        let mut engine = Engine::new(self.configs[node as usize].clone(), now).expect("soak configs are valid");
        if self.signatures {
            engine.set_signer(Some(self.keys.current[node as usize].clone()));
        }
        self.engines[node as usize] = Some(engine);
    }

    fn collect(&mut self, node: u32, now: Timestamp, out: &mut Out<Arc<Message>>) {
        let Some(engine) = self.engines[node as usize].as_mut() else { return };
        engine.drain_effects_into(now, &mut self.effects);
        for effect in self.effects.drain(..) {
            match effect {
                Effect::Send { to, message } => {
                    self.buffer.clear();
                    fabric_core::wire::encode_into(&message, &mut self.buffer);
                    let bytes = self.buffer.len() as u32;
                    for recipient in to.iter() {
                        out.sends.push((index_of(&self.index, recipient.as_str()), Arc::clone(&message), bytes));
                    }
                }
                Effect::RouteChanged { destination, best } => {
                    let d = index_of(&self.index, destination.as_str());
                    let route = best.map(|b| {
                        let hop = if b.local { node } else { index_of(&self.index, b.next_hop.as_str()) };
                        let mut hops = [NONE; MAX_HOPS];
                        hops[0] = hop;
                        (hops, u64::from(b.metrics.cost))
                    });
                    out.changes.push((d, route));
                }
                Effect::Event(event) => match event {
                    RouteEvent::HeldDown { .. } => out.held_down_started += 1,
                    RouteEvent::Suppressed { .. } => out.suppressions_started += 1,
                    _ => {}
                },
            }
        }
    }

    fn reconfigure(&mut self, node: u32, now: Timestamp, out: &mut Out<Arc<Message>>) {
        let config = self.configs[node as usize].clone();
        if let Some(engine) = self.engines[node as usize].as_mut() {
            engine.apply_config(now, config).expect("soak configs are valid");
        }
        self.collect(node, now, out);
    }
}

impl Protocol for PathVector {
    type Msg = Arc<Message>;

    fn process(&mut self, node: u32, now: Timestamp, inbox: Vec<(u32, Arc<Message>)>, out: &mut Out<Arc<Message>>) {
        let Some(engine) = self.engines[node as usize].as_mut() else { return };
        if !inbox.is_empty() {
            let mut batch = inbox
                .into_iter()
                .map(|(from, m)| (self.names[from as usize].clone(), Arc::unwrap_or_clone(m)))
                .collect();
            engine.receive_batch(now, &mut batch);
        }
        if engine.next_deadline().is_some_and(|d| d <= now) {
            engine.tick(now);
        }
        self.collect(node, now, out);
    }

    fn next_deadline(&self, node: u32) -> Option<Timestamp> {
        self.engines[node as usize].as_ref().and_then(Engine::next_deadline)
    }

    fn links_changed(
        &mut self,
        node: u32,
        changes: &[(u32, bool)],
        _live: &[(u32, u32)],
        now: Timestamp,
        out: &mut Out<Arc<Message>>,
    ) {
        let Some(engine) = self.engines[node as usize].as_mut() else { return };
        for &(neighbor, up) in changes {
            let id = &self.names[neighbor as usize];
            if up {
                engine.neighbor_up(now, id);
            } else {
                engine.neighbor_down(now, id, false);
            }
        }
        self.collect(node, now, out);
    }

    fn crash(&mut self, node: u32) {
        self.engines[node as usize] = None;
    }

    fn restart(&mut self, node: u32, now: Timestamp, out: &mut Out<Arc<Message>>) {
        self.configs[node as usize].import_policy.destinations.deny.clear();
        self.start(node, now);
        self.collect(node, now, out);
    }

    fn withdraw(&mut self, node: u32, now: Timestamp, out: &mut Out<Arc<Message>>) {
        let saved = std::mem::take(&mut self.configs[node as usize].originate);
        self.reconfigure(node, now, out);
        self.configs[node as usize].originate = saved;
    }

    fn restore(&mut self, node: u32, now: Timestamp, out: &mut Out<Arc<Message>>) -> bool {
        self.reconfigure(node, now, out);
        false
    }

    fn withdrawn_node_forwards(&self) -> bool {
        true
    }

    fn reload(&mut self, node: u32, deny: Option<u32>, now: Timestamp, out: &mut Out<Arc<Message>>) {
        let config = &mut self.configs[node as usize];
        config.import_policy.destinations.deny =
            deny.map(|d| vec![self.names[d as usize].to_string()]).unwrap_or_default();
        config.version = Some(format!("reload-{}", now.0));
        self.reconfigure(node, now, out);
    }

    fn rotate(&mut self, node: u32, now: Timestamp, outs: &mut Vec<(u32, Out<Arc<Message>>)>) {
        if !self.signatures {
            return;
        }
        let identity = self.keys.rotate(node);
        let new_key = self.keys.trusted(node);
        // Neighbors trust the new key first (the old one stays trusted), then
        // the node signs with it and re-advertises its table.
        for neighbor in self.neighbors[node as usize].clone() {
            let config = &mut self.configs[neighbor as usize];
            let mut keys: Vec<TrustedKey> = config.security.trusted_keys.to_vec();
            keys.push(new_key.clone());
            config.security.trusted_keys = keys.into();
            let mut out = Out::default();
            self.reconfigure(neighbor, now, &mut out);
            outs.push((neighbor, out));
        }
        let mut out = Out::default();
        if let Some(engine) = self.engines[node as usize].as_mut() {
            engine.rotate_signer(identity);
        }
        self.collect(node, now, &mut out);
        outs.push((node, out));
    }

    fn forge(
        &mut self,
        victim: u32,
        from: u32,
        claimed: u32,
        forged_signature: bool,
        now: Timestamp,
        out: &mut Out<Arc<Message>>,
    ) -> bool {
        let sender = self.names[from as usize].clone();
        let mut announcement = RouteAnnouncement {
            destination: self.names[claimed as usize].as_str().into(),
            path: vec![sender.clone()],
            hop_count: 1,
            metrics: RouteMetrics { cost: 0, latency_us: 0, reliability: 1.0 },
            advertiser: sender.clone(),
            epoch: u64::MAX >> 1,
            ttl_ms: 600_000,
            issued_at_ms: Some(now.0),
            tags: Arc::from(Vec::new()),
            signature: None,
        };
        if forged_signature {
            self.keys.impostor(from).sign_announcement(&mut announcement);
        }
        let Some(engine) = self.engines[victim as usize].as_mut() else { return false };
        let before = engine.stats().announcements_accepted;
        engine.receive(now, &sender, Message::Announcement(announcement));
        let accepted = engine.stats().announcements_accepted > before;
        self.collect(victim, now, out);
        accepted
    }

    fn memory(&self, node: u32) -> u64 {
        self.engines[node as usize]
            .as_ref()
            .map(|e| e.stats().candidates_stored * PATH_VECTOR_BYTES_PER_CANDIDATE)
            .unwrap_or(0)
    }

    fn suppression(&self) -> (u64, u64, u64) {
        let mut totals = (0, 0, 0);
        for engine in self.engines.iter().flatten() {
            let stats = engine.stats();
            totals.0 += stats.candidates_stored;
            totals.1 += stats.routes_held_down;
            totals.2 += stats.routes_suppressed_now;
        }
        totals
    }
}

/// The link-state routers.
struct LinkState {
    names: Vec<NodeId>,
    index: HashMap<Arc<str>, u32>,
    areas: Vec<AreaId>,
    link_areas: Vec<u16>,
    link_metrics: Vec<(u32, u32)>,
    config: LinkStateConfig,
    routers: Vec<Option<LinkStateRouter>>,
    keys: Keys,
    registry: KeyRegistry,
    signatures: bool,
    buffer: Vec<u8>,
}

impl LinkState {
    fn new(topology: &SoakTopology, options: &SoakOptions, keys: Keys) -> Self {
        let n = topology.node_count();
        let areas: Vec<AreaId> = topology.areas.iter().map(|a| AreaId::from(a.name.as_str())).collect();
        let config = LinkStateConfig {
            update_ttl: LONG_TTL,
            refresh_interval: NO_REFRESH,
            max_ttl: LONG_TTL,
            require_signatures: options.signatures,
            areas: topology
                .areas
                .iter()
                .map(|a| AreaConfig {
                    id: AreaId::from(a.name.as_str()),
                    parents: a.parent.map(|p| vec![areas[p as usize].clone()]).unwrap_or_default(),
                    max_summary_entries: None,
                })
                .collect(),
            // A node's turn on the gossip grid already hands it every update
            // since its last turn as one batch, one SPF per changed area:
            // that is the throttle this simulation models. A time throttle
            // on top would have its due times rounded up to the next turn.
            spf_throttle: SpfThrottleConfig::IMMEDIATE,
            ..LinkStateConfig::default()
        };
        let registry = if options.signatures {
            KeyRegistry::from_entries((0..n as u32).map(|node| keys.entry(node)))
        } else {
            KeyRegistry::new()
        };
        let mut ls = Self {
            names: topology.names.clone(),
            index: name_index(topology),
            areas,
            link_areas: topology.links.iter().map(|l| l.area).collect(),
            link_metrics: topology.links.iter().map(|l| (l.cost, l.latency_us)).collect(),
            config,
            routers: (0..n).map(|_| None).collect(),
            keys,
            registry,
            signatures: options.signatures,
            buffer: Vec::new(),
        };
        for node in 0..n as u32 {
            ls.start(node);
        }
        ls
    }

    fn start(&mut self, node: u32) {
        let mut router =
            LinkStateRouter::new(self.names[node as usize].clone(), self.config.clone()).expect("soak config is valid");
        if self.signatures {
            router.set_signing_identity(Some(self.keys.current[node as usize].clone()));
            router.set_key_registry(self.registry.clone());
        }
        self.routers[node as usize] = Some(router);
    }

    fn collect(&mut self, output: LinkStateOutput, out: &mut Out<Arc<LinkStateUpdate>>) {
        let mut last: Option<(*const LinkStateUpdate, u32)> = None;
        for send in output.send {
            let pointer = Arc::as_ptr(&send.update);
            let bytes = match last {
                Some((p, bytes)) if p == pointer => bytes,
                _ => {
                    self.buffer.clear();
                    fabric_core::wire::encode_link_state_update(&send.update, &mut self.buffer);
                    let bytes = self.buffer.len() as u32;
                    last = Some((pointer, bytes));
                    bytes
                }
            };
            out.sends.push((index_of(&self.index, send.to.as_str()), send.update, bytes));
        }
        for change in output.route_changes {
            let destination = index_of(&self.index, change.destination().as_str());
            let route = match change {
                RouteChange::Added { route } | RouteChange::Changed { new: route, .. } => {
                    let mut hops = [NONE; MAX_HOPS];
                    for (slot, hop) in hops.iter_mut().zip(&route.next_hops) {
                        *slot = index_of(&self.index, hop.as_str());
                    }
                    Some((hops, route.cost))
                }
                RouteChange::Removed { .. } => None,
            };
            out.changes.push((destination, route));
        }
    }

    fn handle(&mut self, node: u32, inputs: Vec<LinkStateInput>, now: Timestamp, out: &mut Out<Arc<LinkStateUpdate>>) {
        let Some(router) = self.routers[node as usize].as_mut() else { return };
        let output = router.handle_batch(inputs, now);
        self.collect(output, out);
    }
}

impl Protocol for LinkState {
    type Msg = Arc<LinkStateUpdate>;

    fn process(
        &mut self,
        node: u32,
        now: Timestamp,
        inbox: Vec<(u32, Arc<LinkStateUpdate>)>,
        out: &mut Out<Arc<LinkStateUpdate>>,
    ) {
        let Some(router) = self.routers[node as usize].as_ref() else { return };
        let mut inputs: Vec<LinkStateInput> = inbox
            .into_iter()
            .map(|(from, update)| LinkStateInput::UpdateReceived {
                from: self.names[from as usize].clone(),
                update: Arc::unwrap_or_clone(update),
            })
            .collect();
        if router.next_wakeup().is_some_and(|t| t <= now) {
            inputs.push(LinkStateInput::Tick);
        }
        if !inputs.is_empty() {
            self.handle(node, inputs, now, out);
        }
    }

    fn next_deadline(&self, node: u32) -> Option<Timestamp> {
        self.routers[node as usize].as_ref().and_then(LinkStateRouter::next_wakeup)
    }

    fn links_changed(
        &mut self,
        node: u32,
        _changes: &[(u32, bool)],
        live: &[(u32, u32)],
        now: Timestamp,
        out: &mut Out<Arc<LinkStateUpdate>>,
    ) {
        let links = live
            .iter()
            .map(|&(neighbor, link)| {
                let (cost, latency_us) = self.link_metrics[link as usize];
                LocalLink {
                    neighbor: self.names[neighbor as usize].clone(),
                    area: self.areas[self.link_areas[link as usize] as usize].clone(),
                    cost,
                    latency_us,
                    reliability: 1.0,
                }
            })
            .collect();
        self.handle(node, vec![LinkStateInput::LocalLinksChanged { links }], now, out);
    }

    fn crash(&mut self, node: u32) {
        self.routers[node as usize] = None;
    }

    fn restart(&mut self, node: u32, _now: Timestamp, _out: &mut Out<Arc<LinkStateUpdate>>) {
        self.start(node);
    }

    fn withdraw(&mut self, node: u32, now: Timestamp, out: &mut Out<Arc<LinkStateUpdate>>) {
        self.handle(node, vec![LinkStateInput::Shutdown], now, out);
    }

    fn restore(&mut self, _node: u32, _now: Timestamp, _out: &mut Out<Arc<LinkStateUpdate>>) -> bool {
        // A shut-down router has forgotten its links and areas: it comes
        // back as a restarted node, and its neighbors resynchronize with it.
        true
    }

    fn withdrawn_node_forwards(&self) -> bool {
        false
    }

    fn reload(&mut self, node: u32, _deny: Option<u32>, now: Timestamp, out: &mut Out<Arc<LinkStateUpdate>>) {
        // Link-state has no per-node import policy; the reload applies the
        // same config again.
        let config = Box::new(self.config.clone());
        self.handle(node, vec![LinkStateInput::ConfigChanged(config)], now, out);
    }

    fn rotate(&mut self, node: u32, _now: Timestamp, outs: &mut Vec<(u32, Out<Arc<LinkStateUpdate>>)>) {
        if !self.signatures {
            return;
        }
        // Every node verifies every origin: all trust the new key first.
        let identity = self.keys.rotate(node);
        self.registry.insert(self.keys.entry(node));
        for router in self.routers.iter_mut().flatten() {
            router.set_key_registry(self.registry.clone());
        }
        if let Some(router) = self.routers[node as usize].as_mut() {
            router.set_signing_identity(Some(identity));
        }
        outs.push((node, Out::default()));
    }

    fn forge(
        &mut self,
        victim: u32,
        from: u32,
        claimed: u32,
        forged_signature: bool,
        now: Timestamp,
        out: &mut Out<Arc<LinkStateUpdate>>,
    ) -> bool {
        let Some(router) = self.routers[victim as usize].as_ref() else { return false };
        let area = router
            .areas()
            .find(|area| router.lsdb(area).is_some_and(|db| db.is_neighbor(&self.names[from as usize])))
            .cloned()
            .unwrap_or_else(|| self.areas[0].clone());
        // The sender claims a link to `claimed` at cost 1, and keeps its
        // link to the victim so that the two-way check would pass.
        let link = |node: u32| LinkAdvert {
            neighbor: self.names[node as usize].clone(),
            cost: 1,
            latency_us: 1,
            reliability: 1.0,
        };
        let mut links = vec![link(victim)];
        if claimed != victim && claimed != from {
            links.push(link(claimed));
        }
        let mut update = LinkStateUpdate {
            origin: self.names[from as usize].clone(),
            area,
            sequence: u64::MAX >> 1,
            ttl_ms: 600_000,
            links,
            summary: None,
            destinations: Vec::new(),
            signature: None,
        };
        if forged_signature {
            fabric_link_state::lsa::sign_update(&self.keys.impostor(from), &mut update);
        }
        let before = router.counters().updates_installed;
        let sender = self.names[from as usize].clone();
        self.handle(victim, vec![LinkStateInput::UpdateReceived { from: sender, update }], now, out);
        let router = self.routers[victim as usize].as_ref().expect("present above");
        router.counters().updates_installed > before
    }

    fn memory(&self, node: u32) -> u64 {
        let Some(router) = self.routers[node as usize].as_ref() else { return 0 };
        let mut bytes = 0u64;
        for area in router.areas() {
            if let Some(db) = router.lsdb(area) {
                for update in db.live_updates() {
                    bytes += std::mem::size_of::<LinkStateUpdate>() as u64
                        + (update.links.len() * std::mem::size_of::<LinkAdvert>()) as u64
                        + update.summary.as_ref().map_or(0, |s| {
                            (s.entries.len() * std::mem::size_of::<fabric_link_state::SummaryEntry>()) as u64
                        });
                }
            }
        }
        for route in router.routes().values() {
            bytes += (std::mem::size_of::<fabric_link_state::LinkStateRoute>()
                + route.next_hops.len() * std::mem::size_of::<NodeId>()
                + route.areas.len() * std::mem::size_of::<AreaId>()
                + std::mem::size_of::<NodeId>()) as u64;
        }
        bytes
    }

    fn suppression(&self) -> (u64, u64, u64) {
        // Link-state has neither hold-down nor dampening.
        let routes = self.routers.iter().flatten().map(|r| r.routes().len() as u64).sum();
        (routes, 0, 0)
    }
}
