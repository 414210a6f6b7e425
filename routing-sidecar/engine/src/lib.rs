//! The path-vector engine: a deterministic state machine.
//!
//! Callers feed it inputs with the current time (`receive`, `tick`,
//! `neighbor_up`, `apply_config`, ...) and collect what it wants done with
//! `drain_effects`: messages to send, best-route changes and structured
//! events. Outgoing messages are produced when effects are drained, so a
//! burst of inputs that changes a destination several times sends one
//! update for it (like BGP's update batching), in destination order.
//!
//! The crate owns no sockets, threads or clocks: it depends on
//! `fabric_core` for the message, config and security types and on nothing
//! that does IO, so every rule is testable by calling it. [`sim`] runs many
//! engines in one process, round by round, for `simulate` and for plans;
//! [`dampening`] is the flap-dampening state the engine keeps per route.

mod advertise;
mod batch;
mod candidate;
mod chunked;
mod explain;
mod ingest;
mod intern;
mod invariants;
mod name_index;
mod reconfigure;
mod selection;
mod table;
mod timers;

mod dampening;
pub mod sim;

use std::collections::VecDeque;

use foldhash::{HashMap, HashMapExt};
use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;

use crate::chunked::ChunkedVec;
use crate::dampening::Dampening;
use fabric_core::config::{ConfigError, SidecarConfig};
use fabric_core::deadline::DeadlineQueue;
use fabric_core::ids::{DestinationId, NodeId, Tag};
use fabric_core::message::{Message, RouteMetrics};
use fabric_core::security::{SigningIdentity, Verifier};
use fabric_core::stats::{Counters, RejectReason, StatsSnapshot};
use fabric_core::time::Timestamp;

pub use explain::{CandidateStatus, CandidateTrace, RejectionRecord, SelectionTrace};
pub use selection::Criterion;

/// The neighbors one message goes to. Shared between messages: most route
/// changes go to one of a few sets of neighbors (every neighbor up but the
/// next hop), so each set is built once and a message holds a reference
/// instead of a clone of every id (`advertise::RecipientSets`).
pub type Recipients = Arc<[NodeId]>;

use candidate::{DestinationEntry, RouteKey};
use intern::{DestIx, Destinations, NodeIx, Nodes, TagSets};
use reconfigure::Compiled;

/// Rejections remembered for `explain`, across all destinations.
const REJECTION_HISTORY: usize = 1024;

/// An input, for callers that prefer one entry point (the simulation
/// harness); each variant maps to one method of `Engine`.
#[derive(Clone, Debug)]
pub enum Event {
    Received { from: NodeId, message: Message },
    NeighborUp { neighbor: NodeId },
    NeighborDown { neighbor: NodeId, graceful: bool },
    Tick,
    ApplyConfig(Box<SidecarConfig>),
}

/// The selected route to a destination.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct BestRoute {
    pub destination: DestinationId,
    /// The neighbor to forward to; this node itself for local routes.
    pub next_hop: NodeId,
    /// Full path from the next hop to the origin (empty when local).
    pub path: Vec<NodeId>,
    pub hop_count: u32,
    /// Metrics including the link to the next hop.
    pub metrics: RouteMetrics,
    /// Shared with the engine's interned tag set: a best-route change
    /// allocates no tag list.
    pub tags: std::sync::Arc<[Tag]>,
    pub local: bool,
    pub signed: bool,
    pub stale: bool,
}

/// What happened, for logs and tests. Every drop, suppression and
/// withdrawal produces exactly one.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum RouteEvent {
    Accepted {
        destination: DestinationId,
        from: NodeId,
        epoch: u64,
    },
    Refreshed {
        destination: DestinationId,
        from: NodeId,
    },
    Rejected {
        destination: Option<DestinationId>,
        from: NodeId,
        reason: RejectReason,
        detail: String,
    },
    /// A dry-run policy would have rejected this route; it was accepted.
    DryRunWouldReject {
        destination: DestinationId,
        from: NodeId,
        reason: RejectReason,
        detail: String,
    },
    Withdrawn {
        destination: DestinationId,
        from: NodeId,
        cause: WithdrawCause,
    },
    HeldDown {
        destination: DestinationId,
        next_hop: NodeId,
        until: Timestamp,
    },
    HoldDownEnded {
        destination: DestinationId,
        next_hop: NodeId,
    },
    Suppressed {
        destination: DestinationId,
        advertiser: NodeId,
        penalty: f64,
        reuse_at: Timestamp,
    },
    Reused {
        destination: DestinationId,
        advertiser: NodeId,
    },
    Expired {
        destination: DestinationId,
        from: NodeId,
    },
    PurgedStale {
        neighbor: NodeId,
        routes: u64,
    },
    ConfigApplied {
        version: Option<String>,
    },
    ConfigRejected {
        error: ConfigError,
    },
}

/// Why a route was removed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum WithdrawCause {
    Withdrawal,
    /// The neighbor sent an announcement of the destination that could not
    /// be decoded (RFC 7606 treat-as-withdraw): its previous route is gone.
    TreatAsWithdraw,
    NeighborLost,
    NeighborRemoved,
    LocalRouteRemoved,
}

/// Something the caller must do or may log.
#[derive(Clone, Debug, PartialEq)]
pub enum Effect {
    /// Send `message` to each neighbor of `to`, in order. One effect per
    /// message, not per neighbor: a route change goes to most neighbors,
    /// so one effect carrying them all keeps the effect queue short and
    /// moves one `Arc<Message>` instead of a clone per neighbor. The message
    /// is built and signed once.
    Send {
        to: Recipients,
        message: Arc<Message>,
    },
    /// The best route to `destination` changed (`None`: unreachable).
    RouteChanged {
        destination: DestinationId,
        best: Option<BestRoute>,
    },
    Event(RouteEvent),
}

#[derive(Clone, Debug, Default)]
struct NeighborRuntime {
    up: bool,
    /// Candidates stored from this neighbor (for maxRoutesPerNeighbor).
    routes: u32,
}

/// The routing engine of one node.
pub struct Engine {
    config: SidecarConfig,
    compiled: Compiled,
    nodes: Nodes,
    destinations: Destinations,
    tag_sets: TagSets,
    /// Indexed by `DestIx`; grown by chunks, never copied (`chunked`).
    table: ChunkedVec<DestinationEntry>,
    gauges: table::TableGauges,
    neighbors: HashMap<NodeIx, NeighborRuntime>,
    hold_downs: DeadlineQueue<RouteKey>,
    dampening: Dampening<RouteKey>,
    /// Epoch of the last withdrawal per route, so that an older announcement
    /// replayed after it is still rejected; forgotten after `maxTtl`.
    tombstones: HashMap<RouteKey, u64>,
    tombstone_expiry: DeadlineQueue<RouteKey>,
    restart_windows: DeadlineQueue<NodeIx>,
    /// Neighbors whose routes were marked stale (graceful restart) and not
    /// purged since: an end-of-table from any other neighbor (every
    /// session's first table ends with one) skips the walk of the table.
    marked_stale: Vec<NodeIx>,
    verifier: Verifier,
    signer: Option<SigningIdentity>,
    /// Emit `RouteEvent::Accepted` per accepted announcement (off by
    /// default: the counters record acceptances, and one event per
    /// announcement is a large share of the ingestion cost).
    accepted_events: bool,
    next_epoch: u64,
    pending: Vec<DestIx>,
    /// Neighbors that get an end-of-table marker after the next flush.
    end_of_table_due: Vec<NodeIx>,
    recipient_sets: advertise::RecipientSets,
    effects: Vec<Effect>,
    counters: Counters,
    rejections: VecDeque<RejectionRecord>,
    /// No candidate expires before this (a lower bound; see `timers`).
    earliest_expiry: Option<Timestamp>,
    next_refresh: Timestamp,
    /// Destinations that lost their route and have not got a new one yet.
    unreachable_since: HashMap<DestIx, Timestamp>,
    last_convergence: HashMap<DestIx, Duration>,
    canonical_scratch: Vec<u8>,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine")
            .field("node_id", &self.config.node_id)
            .field("destinations", &self.destinations.len())
            .finish_non_exhaustive()
    }
}

impl Engine {
    /// A new engine. `now` seeds the epoch counter (epochs are
    /// `unix_millis << 20` plus a counter, so they keep growing across
    /// restarts) and the first refresh.
    pub fn new(config: SidecarConfig, now: Timestamp) -> Result<Self, ConfigError> {
        config.validate()?;
        let mut nodes = Nodes::default();
        let compiled = Compiled::build(&config, &mut nodes)?;
        let cache =
            config.security.verification_cache_size.unwrap_or(fabric_core::config::DEFAULT_VERIFICATION_CACHE_SIZE);
        let mut engine = Self {
            dampening: Dampening::new(config.stability.dampening.clone()),
            next_refresh: now + config.timers.refresh_interval,
            config,
            compiled,
            nodes,
            destinations: Destinations::default(),
            tag_sets: TagSets::default(),
            table: ChunkedVec::default(),
            gauges: table::TableGauges::default(),
            neighbors: HashMap::new(),
            hold_downs: DeadlineQueue::default(),
            tombstones: HashMap::new(),
            tombstone_expiry: DeadlineQueue::default(),
            restart_windows: DeadlineQueue::default(),
            marked_stale: Vec::new(),
            verifier: Verifier::new(cache),
            signer: None,
            accepted_events: false,
            next_epoch: now.as_millis() << 20,
            pending: Vec::new(),
            end_of_table_due: Vec::new(),
            recipient_sets: advertise::RecipientSets::default(),
            effects: Vec::new(),
            counters: Counters::default(),
            rejections: VecDeque::new(),
            earliest_expiry: None,
            unreachable_since: HashMap::new(),
            last_convergence: HashMap::new(),
            canonical_scratch: Vec::with_capacity(256),
        };
        engine.sync_neighbors();
        engine.sync_local_routes(now);
        Ok(engine)
    }

    pub fn node_id(&self) -> &NodeId {
        &self.config.node_id
    }

    pub fn config(&self) -> &SidecarConfig {
        &self.config
    }

    /// Single entry point over the specific methods.
    pub fn handle(&mut self, now: Timestamp, event: Event) {
        match event {
            Event::Received { from, message } => self.receive(now, &from, message),
            Event::NeighborUp { neighbor } => self.neighbor_up(now, &neighbor),
            Event::NeighborDown { neighbor, graceful } => self.neighbor_down(now, &neighbor, graceful),
            Event::Tick => self.tick(now),
            Event::ApplyConfig(config) => {
                // The error is also reported as a ConfigRejected event.
                let _ = self.apply_config(now, *config);
            }
        }
    }

    /// Sets (or clears) the key this node signs its messages with. Used at
    /// start and by key rotation once every peer trusts the new key.
    pub fn set_signer(&mut self, signer: Option<SigningIdentity>) {
        self.signer = signer;
    }

    /// Whether to emit a `RouteEvent::Accepted` for every accepted
    /// announcement (the runtime turns it on when debug logging is on).
    pub fn set_accepted_events(&mut self, on: bool) {
        self.accepted_events = on;
    }

    /// Key rotation: signs with `signer` from now on and re-advertises the
    /// whole table, so every neighbor holds copies signed with the new key
    /// well before the old one stops being trusted.
    pub fn rotate_signer(&mut self, signer: SigningIdentity) {
        self.signer = Some(signer);
        self.readvertise_all();
    }

    pub fn signer(&self) -> Option<&SigningIdentity> {
        self.signer.as_ref()
    }

    /// Takes everything the engine wants done, flushing batched
    /// advertisements first.
    pub fn drain_effects(&mut self, now: Timestamp) -> Vec<Effect> {
        self.end_step(now, usize::MAX);
        std::mem::take(&mut self.effects)
    }

    /// Like `drain_effects`, appending into a caller-owned buffer.
    pub fn drain_effects_into(&mut self, now: Timestamp, out: &mut Vec<Effect>) {
        self.end_step(now, usize::MAX);
        self.hand_effects(out);
    }

    /// Like `drain_effects_into`, but builds the messages of at most
    /// `limit` pending destinations (in destination order; end-of-table
    /// markers once none is pending). Returns whether destinations are
    /// still pending: call again, between other inputs or not. A runtime
    /// sending a whole table to a neighbor that just came up can so start
    /// writing it while the rest is being built.
    pub fn drain_effects_upto(&mut self, now: Timestamp, limit: usize, out: &mut Vec<Effect>) -> bool {
        let more = self.end_step(now, limit);
        self.hand_effects(out);
        more
    }

    /// Moves the effects to `out`. Into an empty buffer by swapping the
    /// vectors: no effect is copied, and the engine goes on with the
    /// caller's (emptied) allocation, so a caller that keeps its buffer
    /// between steps makes the two take turns instead of allocating.
    fn hand_effects(&mut self, out: &mut Vec<Effect>) {
        if out.is_empty() {
            std::mem::swap(out, &mut self.effects);
        } else {
            out.append(&mut self.effects);
        }
    }

    /// Between inputs: flushes batched advertisements (of at most `limit`
    /// pending destinations; returns whether some are left), then frees the
    /// tag sets no stored candidate uses any more (every set index in use
    /// is in the table now, none is held by an input being processed).
    /// Here, so that what is freed depends only on the inputs, not on
    /// timing.
    fn end_step(&mut self, now: Timestamp, limit: usize) -> bool {
        let more = self.flush_advertisements(now, limit);
        self.tag_sets.sweep();
        more
    }

    /// Distinct tag sets held, the empty set included.
    pub fn tag_sets_held(&self) -> usize {
        self.tag_sets.len()
    }

    /// When the engine next needs a `tick`.
    pub fn next_deadline(&self) -> Option<Timestamp> {
        [
            Some(self.next_refresh),
            self.earliest_expiry,
            self.hold_downs.next_deadline(),
            self.dampening.next_deadline(),
            self.restart_windows.next_deadline(),
            self.tombstone_expiry.next_deadline(),
        ]
        .into_iter()
        .flatten()
        .min()
    }

    /// The selected route to `destination`, if any.
    pub fn best_route(&self, destination: &str) -> Option<BestRoute> {
        let ix = self.destinations.get(destination)?;
        let entry = &self.table[ix.index()];
        entry.best().map(|best| self.best_view(ix, best))
    }

    /// All selected routes, sorted by destination.
    pub fn routes(&self) -> Vec<BestRoute> {
        let mut routes: Vec<BestRoute> = self
            .table
            .iter()
            .enumerate()
            .filter_map(|(i, entry)| entry.best().map(|best| self.best_view(DestIx(i as u32), best)))
            .collect();
        routes.sort_by(|a, b| a.destination.cmp(&b.destination));
        routes
    }

    pub fn stats(&self) -> StatsSnapshot {
        let gauges = self.gauges.snapshot();
        let last = self.last_convergence.iter().map(|(ix, d)| (self.destinations.resolve(*ix).clone(), *d)).collect();
        let mut counters = self.counters.clone();
        counters.signature_cache_hits = self.verifier.cache().hits;
        StatsSnapshot::build(&counters, gauges, last)
    }

    /// Neighbors and whether their session is up, sorted by id.
    pub fn neighbor_states(&self) -> Vec<(NodeId, bool, u32)> {
        self.compiled
            .neighbors
            .iter()
            .map(|slot| {
                let runtime = self.neighbors.get(&slot.ix).cloned().unwrap_or_default();
                (slot.id.clone(), runtime.up, runtime.routes)
            })
            .collect()
    }

    fn emit(&mut self, event: RouteEvent) {
        self.effects.push(Effect::Event(event));
    }

    fn allocate_epoch(&mut self) -> u64 {
        self.next_epoch += 1;
        self.next_epoch
    }

    fn record_rejection(&mut self, record: RejectionRecord) {
        if self.rejections.len() == REJECTION_HISTORY {
            self.rejections.pop_front();
        }
        self.rejections.push_back(record);
    }
}
