//! The node actor: the one task that owns the engine, and the link-state
//! router when link-state is configured. Connections, the local API and
//! signal handlers talk to it through `Command`s; it feeds the engine and
//! the router, then dispatches what they want sent and logs their events.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

use serde::Serialize;
use tokio::net::TcpStream;
use tokio::sync::{mpsc, oneshot, watch};

use crate::runtime::codec;
use crate::runtime::inbound::InFlight;
use crate::runtime::link_state::{
    ExplainAnswer, LinkStateRuntime, LinkStateStatus, RouteAnswer, answer_route, explain_route, local_links,
};
use crate::runtime::send_queue::{self, Refused, SendQueue};
use crate::runtime::state_dir::StateDir;
use crate::runtime::tls::{PeerIdentity, PeerTls};
use crate::runtime::transport::{BoxedStream, Connection, Outbound};
use fabric_core::config::{ConfigError, SidecarConfig};
use fabric_core::ids::NodeId;
use fabric_core::message::Message;
use fabric_core::security::SigningIdentity;
use fabric_core::session::{Backoff, SessionSettings};
use fabric_core::stats::StatsSnapshot;
use fabric_core::time::Timestamp;
use fabric_engine::{BestRoute, Effect, Engine, RouteEvent};
use fabric_io::clock;
use fabric_link_state::{LinkStateSnapshot, LinkStateUpdate, OutgoingUpdate};

/// The configured neighbors, shared with connections for the hello check.
#[derive(Clone, Debug, Default)]
pub(super) struct NeighborSet(Arc<RwLock<HashSet<NodeId>>>);

impl NeighborSet {
    pub(super) fn contains(&self, id: &NodeId) -> bool {
        self.0.read().expect("neighbor set lock").contains(id)
    }

    fn replace(&self, ids: HashSet<NodeId>) {
        *self.0.write().expect("neighbor set lock") = ids;
    }
}

/// Requests to the actor. `Frames` is a burst read from one session:
/// path-vector messages for the engine, link-state updates for the
/// link-state router.
pub enum Command {
    /// A config refused before it reached the engine (a local API write
    /// the caller may not make): counted with the refused configs.
    RefuseConfig {
        source: String,
        reason: String,
        /// Answered once counted, so that the caller's next query (served
        /// on its own channel) sees the refusal.
        counted: oneshot::Sender<()>,
    },
    SessionUp {
        conn: u64,
        peer: NodeId,
        dialed: bool,
        outbound: SendQueue,
        reply: oneshot::Sender<SessionVerdict>,
    },
    SessionDown {
        conn: u64,
        peer: NodeId,
        keep_routes: bool,
        reason: String,
        /// One of `session::SESSION_END_REASONS`.
        label: &'static str,
    },
    /// A connection ended before its session was established (no or a bad
    /// hello, a reset during the handshake, garbage before the hello).
    SessionFailed {
        /// The neighbor dialed; `None` for an accepted connection.
        expected: Option<NodeId>,
        label: &'static str,
        reason: String,
    },
    Frames {
        peer: NodeId,
        conn: u64,
        /// Each with `peer`, as the engine takes them (paired by the
        /// connection, off the actor's thread).
        messages: Vec<(NodeId, Message)>,
        link_state: Vec<LinkStateUpdate>,
        /// Held until the batch is handled: bounds the batches a connection
        /// has decoded ahead of the actor, and takes `messages`' vector
        /// back to it.
        slot: InFlight,
    },
    Malformed {
        peer: NodeId,
        detail: String,
    },
    /// One message broke a per-message limit; the session stays up.
    /// With a destination, it withdraws the peer's route to it.
    MalformedMessage {
        peer: NodeId,
        conn: u64,
        destination: Option<String>,
        detail: String,
    },
    ApplyConfig {
        config: Box<SidecarConfig>,
        /// A new signing key arriving with the config (key rotation).
        signer: Option<Box<SigningIdentity>>,
        source: String,
        reply: oneshot::Sender<Result<(), ConfigError>>,
    },
    Shutdown {
        restarting: bool,
        reply: oneshot::Sender<()>,
    },
}

/// The actor's answer to a connection whose hello completed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SessionVerdict {
    Accepted,
    /// The peer already has a session that the collision rule keeps.
    Collision,
    /// This node is shutting down. The close frame says whether it
    /// announced a restart: a peer that reconnects in the meantime must keep
    /// this node's routes as stale, as on the session that just ended.
    ShuttingDown {
        restarting: bool,
    },
}

/// Read-only questions, answered from the engine's and the link-state
/// router's current state. They have their own channel, served first (see
/// `NodeHandle`), and are answered only after what the commands handled so
/// far produced was dispatched.
pub enum Query {
    Routes(oneshot::Sender<Vec<BestRoute>>),
    /// The next hop(s) under the routing mode.
    Route(String, oneshot::Sender<Option<RouteAnswer>>),
    Explain(String, oneshot::Sender<Option<ExplainAnswer>>),
    /// `None` when link-state is off.
    LinkState(oneshot::Sender<Option<LinkStateStatus>>),
    Peers(oneshot::Sender<Vec<PeerStatus>>),
    Stats(oneshot::Sender<NodeStats>),
    Config(oneshot::Sender<ConfigStatus>),
    /// The SidecarConfig in force, as the engine runs it.
    EffectiveConfig(oneshot::Sender<SidecarConfig>),
}

#[derive(Clone, Debug, Serialize)]
pub struct PeerStatus {
    pub id: NodeId,
    pub address: Option<String>,
    pub established: bool,
    /// When the session came up or went down last.
    pub since: Option<Timestamp>,
    pub routes_received: u32,
    pub sessions_established_total: u64,
    pub session_failures_total: u64,
    /// Every end of a connection with this peer (established or not, for
    /// connections this node dialed), by reason.
    pub session_ends: BTreeMap<&'static str, u64>,
    pub last_error: Option<String>,
    /// Bytes (wire size) queued for the peer and not yet written; 0
    /// without a session. Never above `session.maxQueuedBytes`.
    pub send_queue_bytes: u64,
    /// Milliseconds from the last session's start until the peer's
    /// end-of-table was handled, that is until every route of its table
    /// was in use here: how long the table transfer took. `None` until the
    /// end-of-table arrived.
    pub table_received_ms: Option<f64>,
}

#[derive(Clone, Debug, Serialize)]
pub struct ConfigStatus {
    pub node_id: NodeId,
    pub version: Option<String>,
    pub applied_at: Timestamp,
    /// Where the config in force came from (`file`, `state-dir`, `api`, ...).
    pub source: String,
    pub applied_total: u64,
    pub rejected_total: u64,
    pub last_error: Option<String>,
}

#[derive(Clone, Debug, Serialize)]
pub struct NodeStats {
    pub engine: StatsSnapshot,
    pub peers: Vec<PeerStatus>,
    /// Every connection end, established or not, by reason (all of
    /// `session::SESSION_END_REASONS` present).
    pub session_ends_total: BTreeMap<&'static str, u64>,
    pub config: ConfigStatus,
    /// Present when link-state is on.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub link_state: Option<LinkStateSnapshot>,
}

#[derive(Clone, Debug, Default)]
struct PeerInfo {
    since: Option<Timestamp>,
    /// The last session's table transfer (see `PeerStatus`).
    table_received: Option<std::time::Duration>,
    established_total: u64,
    failures_total: u64,
    ends: BTreeMap<&'static str, u64>,
    last_error: Option<String>,
}

struct LiveSession {
    conn: u64,
    dialed: bool,
    outbound: SendQueue,
    /// When it was accepted, until the peer's end-of-table arrived.
    awaiting_table_since: Option<std::time::Instant>,
}

/// What connections need from the node, shared by the listener and dialers.
#[derive(Clone)]
pub(super) struct Shared {
    pub local: NodeId,
    pub tls: Option<Arc<PeerTls>>,
    pub actor: mpsc::Sender<Command>,
    pub neighbors: NeighborSet,
    next_conn: Arc<AtomicU64>,
    settings: Arc<RwLock<(SessionSettings, fabric_core::wire::DecodeLimits)>>,
    /// Closed while the node waits for its first config from the operator:
    /// no session is dialed or served before (see `PeeringGate`).
    peering: watch::Receiver<bool>,
    /// The I/O runtime, where the actor (on its own thread, see
    /// `actor_thread`) starts dialers and their connections.
    io: tokio::runtime::Handle,
}

impl Shared {
    /// Returns once peering is allowed.
    async fn peering_allowed(&self) {
        let mut peering = self.peering.clone();
        let _ = peering.wait_for(|open| *open).await;
    }

    fn connection(&self, expected: Option<NodeId>, identity: Option<PeerIdentity>) -> Connection {
        let (settings, limits) = *self.settings.read().expect("settings lock");
        Connection {
            identity,
            id: self.next_conn.fetch_add(1, Ordering::Relaxed),
            local: self.local.clone(),
            expected,
            settings,
            limits,
            neighbors: self.neighbors.clone(),
            actor: self.actor.clone(),
        }
    }

    /// Serves an accepted TCP connection.
    pub(super) async fn serve_inbound(self, stream: TcpStream) {
        self.peering_allowed().await;
        let _ = stream.set_nodelay(true);
        let (stream, identity): (BoxedStream, _) = match &self.tls {
            Some(tls) => match tls.accept(stream).await {
                Ok((stream, identity)) => (stream, Some(identity)),
                Err(e) => {
                    tracing::warn!(error = %e, "inbound TLS handshake failed");
                    let failed =
                        Command::SessionFailed { expected: None, label: "tls_handshake", reason: e.to_string() };
                    let _ = self.actor.send(failed).await;
                    return;
                }
            },
            None => (Box::new(stream), None),
        };
        self.connection(None, identity).run(stream).await;
    }
}

fn session_settings(config: &SidecarConfig) -> (SessionSettings, fabric_core::wire::DecodeLimits) {
    (
        SessionSettings {
            hold_time: config.session.hold_time,
            max_messages_per_second: config.session.max_messages_per_second,
        },
        config.decode_limits(),
    )
}

struct Dialer {
    address: String,
    task: tokio::task::JoinHandle<()>,
}

pub(super) struct Node {
    engine: Engine,
    /// The link-state router, while the config has a `linkState` section.
    link_state: Option<LinkStateRuntime>,
    shared: Shared,
    state_dir: Option<StateDir>,
    /// Looked up for every message sent: hashed with foldhash, not SipHash.
    sessions: foldhash::HashMap<NodeId, LiveSession>,
    established: HashMap<NodeId, watch::Sender<bool>>,
    peers: BTreeMap<NodeId, PeerInfo>,
    /// Every connection end by reason (see `NodeStats::session_ends_total`).
    session_ends: BTreeMap<&'static str, u64>,
    dialers: HashMap<NodeId, Dialer>,
    config: ConfigStatus,
    /// Shutting down (`Some`, announcing a restart when `true`): no new
    /// sessions.
    closing: Option<bool>,
    /// The engine has destinations left to flush (`FLUSH_SLICE`).
    flush_pending: bool,
    /// What `dispatch_engine` drains the engine into, kept between steps:
    /// a new vector per step would touch fresh memory for every batch of a
    /// table transfer.
    effects: Vec<Effect>,
    /// The frame of the message being queued (`dispatch_engine`), kept
    /// between messages.
    frame: Vec<u8>,
}

/// Destinations the engine turns into messages per actor wake-up. A whole
/// table for a neighbor that just came up (100k routes: about 20 ms to
/// build) is so written by the connection while the rest is built, instead
/// of after.
const FLUSH_SLICE: usize = 4096;

impl Node {
    pub(super) fn new(engine: Engine, shared: Shared, state_dir: Option<StateDir>, source: String) -> Self {
        let config = ConfigStatus {
            node_id: engine.node_id().clone(),
            version: engine.config().version.clone(),
            applied_at: clock::now(),
            source,
            applied_total: 1,
            rejected_total: 0,
            last_error: None,
        };
        Self {
            link_state: LinkStateRuntime::from_config(engine.config(), engine.signer().cloned()),
            engine,
            shared,
            state_dir,
            sessions: foldhash::HashMap::default(),
            established: HashMap::new(),
            peers: BTreeMap::new(),
            session_ends: fabric_core::session::SESSION_END_REASONS.iter().map(|r| (*r, 0)).collect(),
            dialers: HashMap::new(),
            config,
            closing: None,
            flush_pending: false,
            effects: Vec::new(),
            frame: Vec::new(),
        }
    }

    pub(super) fn shared_for(
        local: NodeId,
        tls: Option<Arc<PeerTls>>,
        actor: mpsc::Sender<Command>,
        config: &SidecarConfig,
        peering: watch::Receiver<bool>,
    ) -> Shared {
        Shared {
            peering,
            local,
            tls,
            actor,
            neighbors: NeighborSet::default(),
            next_conn: Arc::new(AtomicU64::new(1)),
            settings: Arc::new(RwLock::new(session_settings(config))),
            io: tokio::runtime::Handle::current(),
        }
    }

    /// Runs until shutdown.
    pub(super) async fn run(mut self, mut commands: mpsc::Receiver<Command>, mut queries: mpsc::Receiver<Query>) {
        self.sync_with_config();
        // The start-up config's routes, before the first command arrives.
        self.dispatch();
        // Set once shutdown was asked: who to tell, and until when to wait
        // for the sessions to deliver their close frames.
        let mut closing: Option<(oneshot::Sender<()>, tokio::time::Instant)> = None;
        loop {
            if let Some((_, until)) = &closing
                && (self.sessions.is_empty() || tokio::time::Instant::now() >= *until)
            {
                let (reply, _) = closing.take().expect("checked");
                let _ = reply.send(());
                return;
            }
            let deadline = self.next_deadline().map(clock::instant_at);
            let closing_deadline = closing.as_ref().map(|(_, until)| *until);
            // Between the slices of a large flush the actor does not wait:
            // queries, due timers and commands go first, then the next slice.
            let flushing = self.flush_pending && closing.is_none();
            tokio::select! {
                biased;
                Some(query) = queries.recv() => self.answer(query),
                _ = async { tokio::time::sleep_until(deadline.expect("guarded")).await }, if deadline.is_some() && closing.is_none() => {
                    // Link-state timers are run by the flush in `dispatch`.
                    let now = clock::now();
                    if self.engine.next_deadline().is_some_and(|at| at <= now) {
                        self.engine.tick(now);
                    }
                }
                _ = async { tokio::time::sleep_until(closing_deadline.expect("guarded")).await }, if closing_deadline.is_some() => {}
                command = commands.recv() => {
                    let Some(command) = command else { return };
                    let mut next = Some(command);
                    // Take whatever else is queued before sending, so a burst
                    // of inputs produces one flush.
                    let mut budget = 256;
                    while let Some(command) = next.take() {
                        if let Some((reply, restarting)) = self.handle(command) {
                            self.dispatch_all();
                            self.close_sessions(restarting);
                            closing = Some((reply, tokio::time::Instant::now() + std::time::Duration::from_secs(2)));
                        }
                        if !queries.is_empty() {
                            // Answered on the state the commands so far
                            // left, their effects dispatched.
                            self.dispatch();
                            while let Ok(query) = queries.try_recv() {
                                self.answer(query);
                            }
                        }
                        budget -= 1;
                        if budget > 0 {
                            next = commands.try_recv().ok();
                        }
                    }
                }
                () = std::future::ready(()), if flushing => {}
            }
            self.dispatch();
        }
    }

    /// The earliest timer of the engine and the link-state router.
    fn next_deadline(&self) -> Option<Timestamp> {
        let link_state = self.link_state.as_ref().and_then(LinkStateRuntime::next_wakeup);
        match (self.engine.next_deadline(), link_state) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Handles one command; returns the shutdown reply when asked to stop.
    fn handle(&mut self, command: Command) -> Option<(oneshot::Sender<()>, bool)> {
        let now = clock::now();
        match command {
            Command::SessionUp { conn, peer, dialed, outbound, reply } => {
                let verdict = self.accept_session(&peer, dialed);
                if verdict == SessionVerdict::Accepted {
                    let _span = tracing::info_span!("fabric.session.establish", peer = %peer, conn, dialed).entered();
                    let replaced = self.sessions.insert(
                        peer.clone(),
                        LiveSession { conn, dialed, outbound, awaiting_table_since: Some(std::time::Instant::now()) },
                    );
                    if let Some(mut old) = replaced {
                        // Announced as a restart: when both ends dialed at
                        // once, the peer may still count the closed
                        // connection as its session; it keeps our routes as
                        // stale until the surviving session re-sends them,
                        // instead of withdrawing them for a moment.
                        old.outbound.close("replaced by a newer session".into(), true);
                        // The same on this side: what the peer sent on the
                        // old connection is stale until its end-of-table on
                        // the new one. The peer may already count the new
                        // connection as its session and ignore the old one's
                        // close, so without this a route it stopped
                        // exporting in between would stay until its TTL.
                        self.engine.neighbor_down(now, &peer, true);
                    }
                    let info = self.peers.entry(peer.clone()).or_default();
                    info.since = Some(now);
                    info.established_total += 1;
                    info.table_received = None;
                    self.set_established(&peer, true);
                    tracing::info!(peer = %peer, conn, dialed, "session established");
                    self.engine.neighbor_up(now, &peer);
                    if let Some(link_state) = &mut self.link_state {
                        link_state.session_up(&peer);
                    }
                }
                let _ = reply.send(verdict);
            }
            Command::SessionFailed { expected, label, reason } => {
                *self.session_ends.entry(label).or_default() += 1;
                if let Some(peer) = expected {
                    let info = self.peers.entry(peer).or_default();
                    *info.ends.entry(label).or_default() += 1;
                    info.last_error = Some(reason);
                }
            }
            Command::SessionDown { conn, peer, keep_routes, reason, label } => {
                *self.session_ends.entry(label).or_default() += 1;
                *self.peers.entry(peer.clone()).or_default().ends.entry(label).or_default() += 1;
                if self.sessions.get(&peer).is_some_and(|s| s.conn == conn) {
                    let _span = tracing::info_span!("fabric.session.teardown", peer = %peer, conn, keep_routes, reason = %reason)
                        .entered();
                    self.sessions.remove(&peer);
                    let info = self.peers.entry(peer.clone()).or_default();
                    info.since = Some(now);
                    info.last_error = Some(reason.clone());
                    if !keep_routes {
                        info.failures_total += 1;
                    }
                    self.set_established(&peer, false);
                    if keep_routes {
                        // A restart the peer announced (or a replaced
                        // connection): not a failure.
                        tracing::info!(peer = %peer, conn, reason = %reason, "session closed by the peer; routes kept as stale");
                    } else {
                        tracing::warn!(peer = %peer, conn, keep_routes, reason = %reason, "session down");
                    }
                    self.engine.neighbor_down(now, &peer, keep_routes);
                }
            }
            Command::Frames { peer, conn, mut messages, link_state, slot } => {
                self.receive_frames(now, &peer, conn, &mut messages, link_state);
                slot.handled(messages);
            }
            Command::Malformed { peer, detail } => {
                self.engine.record_malformed(now, &peer, detail);
            }
            Command::MalformedMessage { peer, conn, destination, detail } => match destination {
                Some(destination) if self.sessions.get(&peer).is_some_and(|s| s.conn == conn) => {
                    self.engine.treat_as_withdraw(now, &peer, &destination, detail);
                }
                _ => self.engine.record_malformed(now, &peer, detail),
            },
            Command::RefuseConfig { source, reason, counted } => {
                self.config.rejected_total += 1;
                tracing::warn!(source = %source, reason = %reason, "config refused; the previous one stays in force");
                self.config.last_error = Some(reason);
                let _ = counted.send(());
            }
            Command::ApplyConfig { config, signer, source, reply } => {
                let result = self.apply_config(*config, signer.map(|s| *s), source);
                let _ = reply.send(result);
            }
            Command::Shutdown { restarting, reply } => return Some((reply, restarting)),
        }
        None
    }

    /// What connection `conn` read from `peer`, if it is still the
    /// session's; the first end-of-table of the session times its table
    /// transfer.
    fn receive_frames(
        &mut self,
        now: Timestamp,
        peer: &NodeId,
        conn: u64,
        messages: &mut Vec<(NodeId, Message)>,
        link_state: Vec<LinkStateUpdate>,
    ) {
        let Some(session) = self.sessions.get_mut(peer).filter(|s| s.conn == conn) else { return };
        let table_since = session
            .awaiting_table_since
            .filter(|_| messages.iter().any(|(_, message)| matches!(message, Message::EndOfTable { .. })));
        if table_since.is_some() {
            session.awaiting_table_since = None;
        }
        if !messages.is_empty() {
            self.engine.receive_batch(now, messages);
        }
        if let Some(since) = table_since {
            self.peers.entry(peer.clone()).or_default().table_received = Some(since.elapsed());
        }
        self.receive_link_state(peer, link_state);
    }

    fn receive_link_state(&mut self, peer: &NodeId, updates: Vec<LinkStateUpdate>) {
        if updates.is_empty() {
            return;
        }
        match &mut self.link_state {
            Some(link_state) => link_state.received(peer, updates),
            None => tracing::debug!(peer = %peer, updates = updates.len(), "link-state is off; updates ignored"),
        }
    }

    /// Collision rule: one session per peer. A second one is kept only if it
    /// was initiated by the node with the smaller id (both ends apply the
    /// same rule, so they agree on which connection survives).
    fn accept_session(&self, peer: &NodeId, dialed: bool) -> SessionVerdict {
        if let Some(restarting) = self.closing {
            return SessionVerdict::ShuttingDown { restarting };
        }
        let Some(existing) = self.sessions.get(peer) else { return SessionVerdict::Accepted };
        let local_is_smaller = self.shared.local < *peer;
        let preferred = |dialed_by_us: bool| dialed_by_us == local_is_smaller;
        if preferred(dialed) || !preferred(existing.dialed) {
            SessionVerdict::Accepted
        } else {
            SessionVerdict::Collision
        }
    }

    fn set_established(&mut self, peer: &NodeId, up: bool) {
        if let Some(sender) = self.established.get(peer) {
            sender.send_replace(up);
        }
    }

    #[tracing::instrument(name = "fabric.config.apply", skip_all, fields(
        source = %source, version = config.version.as_deref().unwrap_or(""), result = tracing::field::Empty,
        otel.status_code = tracing::field::Empty
    ))]
    fn apply_config(
        &mut self,
        config: SidecarConfig,
        signer: Option<SigningIdentity>,
        source: String,
    ) -> Result<(), ConfigError> {
        let now = clock::now();
        let checked = check_signer(&config, signer.as_ref().or(self.engine.signer()));
        match checked.and_then(|()| self.engine.apply_config(now, config)) {
            Ok(()) => {
                if let Some(signer) = signer {
                    self.switch_signer(signer);
                }
                tracing::Span::current().record("result", "applied");
                self.config.version = self.engine.config().version.clone();
                self.config.applied_at = now;
                self.config.source = source;
                self.config.applied_total += 1;
                self.config.last_error = None;
                if let Some(state) = &self.state_dir
                    && let Err(e) = state.save_config(self.engine.config())
                {
                    tracing::error!(error = %e, dir = %state.path().display(), "could not persist the config");
                }
                self.sync_with_config();
                self.sync_link_state();
                Ok(())
            }
            Err(error) => {
                tracing::Span::current().record("result", "rejected").record("otel.status_code", "ERROR");
                self.config.rejected_total += 1;
                self.config.last_error = Some(error.to_string());
                tracing::error!(field = %error.field, reason = %error.reason, source = %source, "config refused; the previous one stays in force");
                Err(error)
            }
        }
    }

    /// Key rotation: from now on messages are signed with `signer`; the
    /// table is re-advertised so neighbors hold copies signed with the new
    /// key before the old one retires. The key is kept in the state
    /// directory so a restart signs with it.
    fn switch_signer(&mut self, signer: SigningIdentity) {
        if self.engine.signer().is_some_and(|current| current.secret_bytes() == signer.secret_bytes()) {
            return;
        }
        if let Some(state) = &self.state_dir
            && let Err(e) = state.save_signing_key(&signer)
        {
            tracing::error!(error = %e, dir = %state.path().display(), "could not persist the signing key");
        }
        tracing::info!(key_id = %signer.key_id(), "signing key switched");
        self.engine.rotate_signer(signer);
        self.sync_link_state();
    }

    /// Neighbor set, session settings and dialers follow the config.
    fn sync_with_config(&mut self) {
        let config = self.engine.config().clone();
        *self.shared.settings.write().expect("settings lock") = session_settings(&config);
        let ids: HashSet<NodeId> = config.neighbors.iter().map(|n| n.id.clone()).collect();
        self.shared.neighbors.replace(ids.clone());
        let removed: Vec<NodeId> = self.sessions.keys().filter(|p| !ids.contains(*p)).cloned().collect();
        for peer in removed {
            if let Some(mut session) = self.sessions.remove(&peer) {
                session.outbound.close("no longer a neighbor".into(), false);
            }
        }
        let wanted: HashMap<NodeId, String> =
            config.neighbors.iter().filter_map(|n| Some((n.id.clone(), n.address.clone()?))).collect();
        self.dialers.retain(|peer, dialer| {
            let keep = wanted.get(peer) == Some(&dialer.address);
            if !keep {
                dialer.task.abort();
            }
            keep
        });
        for (peer, address) in wanted {
            if self.dialers.contains_key(&peer) {
                continue;
            }
            let (tx, rx) = watch::channel(self.sessions.contains_key(&peer));
            self.established.insert(peer.clone(), tx);
            let backoff =
                Backoff::new(config.session.reconnect_initial, config.session.reconnect_max, &self.shared.local, &peer);
            let task = self.shared.io.spawn(dial_loop(self.shared.clone(), peer.clone(), address.clone(), rx, backoff));
            self.dialers.insert(peer, Dialer { address, task });
        }
    }

    /// Link-state follows the config: started when a `linkState` section
    /// appears, reconfigured while it stays, stopped (its updates flushed)
    /// when it goes.
    fn sync_link_state(&mut self) {
        let config = self.engine.config();
        let signer = self.engine.signer().cloned();
        match (&mut self.link_state, config.link_state.is_some()) {
            (Some(link_state), true) => link_state.reconfigure(config, signer),
            (None, true) => {
                // The sessions already up become its links at the next flush.
                self.link_state = LinkStateRuntime::from_config(config, signer);
                tracing::info!("link-state started");
            }
            (Some(link_state), false) => {
                let flushes = link_state.shutdown(clock::now());
                self.link_state = None;
                self.send_link_state(flushes);
                tracing::info!("link-state stopped");
            }
            (None, false) => {}
        }
    }

    fn answer(&self, query: Query) {
        match query {
            Query::Routes(reply) => {
                let _ = reply.send(self.engine.routes());
            }
            Query::Route(destination, reply) => {
                let best = self.engine.best_route(&destination);
                let _ = reply.send(answer_route(&destination, best, self.link_state.as_ref()));
            }
            Query::Explain(destination, reply) => {
                let trace = self.engine.explain(&destination, clock::now());
                let best = self.engine.best_route(&destination);
                let _ = reply.send(explain_route(&destination, trace, best, self.link_state.as_ref()));
            }
            Query::LinkState(reply) => {
                let _ = reply.send(self.link_state.as_ref().map(LinkStateRuntime::status));
            }
            Query::Peers(reply) => {
                let _ = reply.send(self.peer_statuses());
            }
            Query::Stats(reply) => {
                let _ = reply.send(NodeStats {
                    engine: self.engine.stats(),
                    peers: self.peer_statuses(),
                    session_ends_total: self.session_ends.clone(),
                    config: self.config.clone(),
                    link_state: self.link_state.as_ref().map(LinkStateRuntime::snapshot),
                });
            }
            Query::Config(reply) => {
                let _ = reply.send(self.config.clone());
            }
            Query::EffectiveConfig(reply) => {
                let _ = reply.send(self.engine.config().clone());
            }
        }
    }

    fn peer_statuses(&self) -> Vec<PeerStatus> {
        self.engine
            .neighbor_states()
            .into_iter()
            .map(|(id, _, routes)| {
                let info = self.peers.get(&id).cloned().unwrap_or_default();
                PeerStatus {
                    address: self.engine.config().neighbor(id.as_str()).and_then(|n| n.address.clone()),
                    established: self.sessions.contains_key(&id),
                    since: info.since,
                    routes_received: routes,
                    sessions_established_total: info.established_total,
                    session_failures_total: info.failures_total,
                    session_ends: info.ends,
                    last_error: info.last_error,
                    send_queue_bytes: self.sessions.get(&id).map_or(0, |s| s.outbound.queued_bytes()),
                    table_received_ms: info.table_received.map(|took| took.as_secs_f64() * 1e3),
                    id,
                }
            })
            .collect()
    }

    /// Sends what the engine and the link-state router produced and logs
    /// their events; of a large flush, one slice (`FLUSH_SLICE`).
    fn dispatch(&mut self) {
        self.dispatch_engine();
        self.dispatch_link_state();
        self.hand_over();
    }

    /// `dispatch` until nothing is left pending (before closing sessions).
    fn dispatch_all(&mut self) {
        self.dispatch();
        while self.flush_pending {
            self.dispatch_engine();
        }
        self.hand_over();
    }

    /// Passes what this step queued to the connections, each its part at
    /// once (see `send_queue`).
    fn hand_over(&mut self) {
        for session in self.sessions.values_mut() {
            session.outbound.hand_over();
        }
    }

    /// Runs the link-state inputs collected since the last dispatch (and a
    /// due tick) as one batch, and sends what it floods.
    fn dispatch_link_state(&mut self) {
        let Some(link_state) = &mut self.link_state else { return };
        if self.closing.is_some() {
            // Its updates were flushed; the sessions still ending must not
            // make it join its areas again.
            return;
        }
        let links = local_links(self.engine.config(), |peer| self.sessions.contains_key(peer));
        let sends = link_state.flush(clock::now(), links);
        self.send_link_state(sends);
    }

    fn send_link_state(&mut self, sends: Vec<OutgoingUpdate>) {
        for OutgoingUpdate { to, update } in sends {
            let bytes = send_queue::link_state_wire_size(&update);
            self.queue_for(&to, |queue, limit| queue.push(Outbound::LinkState(update), bytes, limit));
        }
    }

    /// Queues `item` for `peer`'s session, if one is up. Never waits and
    /// never drops a message of a session that goes on: past
    /// `session.maxQueuedBytes` the session ends instead (`send_queue`),
    /// and its end, reported by the connection, withdraws the peer's
    /// routes; the peer gets a fresh table when it reconnects.
    ///
    /// `put` puts the item (an encoded routing frame or another item) into
    /// the session's queue under the bound it is given.
    fn queue_for(&mut self, peer: &NodeId, put: impl FnOnce(&mut SendQueue, u64) -> Result<(), Refused>) {
        let Some(session) = self.sessions.get_mut(peer) else { return };
        let limit = self.engine.config().session.max_queued_bytes;
        if let Err(Refused::Overflowed { queued }) = put(&mut session.outbound, limit) {
            tracing::warn!(
                peer = %peer, conn = session.conn, queued_bytes = queued, limit,
                "send queue full: the peer does not read fast enough; resetting the session"
            );
        }
    }

    /// A message its recipients would refuse to read: their sessions end
    /// rather than go on with a table that silently lacks it (as for a
    /// full queue); they get a fresh table when they reconnect.
    fn close_unsendable(&mut self, to: &[NodeId], message: &Message, reason: String) {
        for peer in to {
            if let Some(session) = self.sessions.get_mut(peer) {
                tracing::warn!(
                    peer = %peer, conn = session.conn, destination = ?message.destination(), error = %reason,
                    "message too large to send; resetting the session"
                );
                session.outbound.close(format!("cannot send: {reason}"), false);
            }
        }
    }

    fn dispatch_engine(&mut self) {
        let mut effects = std::mem::take(&mut self.effects);
        self.flush_pending = self.engine.drain_effects_upto(clock::now(), FLUSH_SLICE, &mut effects);
        for effect in effects.drain(..) {
            match effect {
                Effect::Send { to, message } => {
                    // Encoded once here, whatever the number of recipients
                    // (`send_queue`).
                    self.frame.clear();
                    let max_frame = self.engine.config().limits.max_message_bytes;
                    match codec::encode_routing(&message, max_frame, &mut self.frame) {
                        Ok(()) => {
                            let frame = std::mem::take(&mut self.frame);
                            for to in to.iter() {
                                self.queue_for(to, |queue, limit| queue.push_frame(&frame, limit));
                            }
                            self.frame = frame;
                        }
                        Err(reason) => self.close_unsendable(&to, &message, reason),
                    }
                }
                Effect::RouteChanged { destination, best } => match best {
                    // Per-route lines at debug: at info they cost more than
                    // routing itself on large tables (docs/benchmarks-history.md, "Sidecar").
                    Some(best) => tracing::debug!(
                        destination = %destination, next_hop = %best.next_hop, cost = best.metrics.cost,
                        hops = best.hop_count, "route selected"
                    ),
                    None => tracing::debug!(destination = %destination, "route lost"),
                },
                Effect::Event(event) => log_event(&event),
            }
        }
        self.effects = effects;
    }

    /// Asks every session to send a close frame (announcing a restart when
    /// `restarting`); they report back as they end.
    fn close_sessions(&mut self, restarting: bool) {
        self.closing = Some(restarting);
        // Link-state has no graceful restart: the others route around this
        // node until it is back, whether it announced a restart or not.
        if let Some(flushes) = self.link_state.as_mut().map(|link_state| link_state.shutdown(clock::now())) {
            self.send_link_state(flushes);
        }
        for (_, dialer) in self.dialers.drain() {
            dialer.task.abort();
        }
        for session in self.sessions.values_mut() {
            session.outbound.close(if restarting { "restarting".into() } else { "shutting down".into() }, restarting);
        }
    }
}

/// One structured log line per route event; routine ones at debug level.
fn log_event(event: &RouteEvent) {
    match event {
        RouteEvent::Accepted { destination, from, epoch } => {
            tracing::debug!(event = "accept", destination = %destination, from = %from, epoch)
        }
        RouteEvent::Refreshed { destination, from } => {
            tracing::debug!(event = "refresh", destination = %destination, from = %from)
        }
        RouteEvent::Rejected { destination, from, reason, detail } => tracing::info!(
            event = "reject", destination = destination.as_ref().map(|d| d.as_str()).unwrap_or(""),
            from = %from, reason = reason.label(), detail = %detail
        ),
        RouteEvent::DryRunWouldReject { destination, from, reason, detail } => tracing::info!(
            event = "dry_run_reject", destination = %destination, from = %from, reason = reason.label(), detail = %detail
        ),
        RouteEvent::Withdrawn { destination, from, cause } => {
            tracing::info!(event = "withdraw", destination = %destination, from = %from, cause = ?cause)
        }
        RouteEvent::HeldDown { destination, next_hop, until } => {
            tracing::info!(event = "hold_down", destination = %destination, next_hop = %next_hop, until = until.as_millis())
        }
        RouteEvent::HoldDownEnded { destination, next_hop } => {
            tracing::info!(event = "hold_down_end", destination = %destination, next_hop = %next_hop)
        }
        RouteEvent::Suppressed { destination, advertiser, penalty, reuse_at } => tracing::info!(
            event = "suppress", destination = %destination, advertiser = %advertiser, penalty, reuse_at = reuse_at.as_millis()
        ),
        RouteEvent::Reused { destination, advertiser } => {
            tracing::info!(event = "reuse", destination = %destination, advertiser = %advertiser)
        }
        RouteEvent::Expired { destination, from } => {
            tracing::info!(event = "expire", destination = %destination, from = %from)
        }
        RouteEvent::PurgedStale { neighbor, routes } => {
            tracing::info!(event = "purge", neighbor = %neighbor, routes)
        }
        RouteEvent::ConfigApplied { version } => {
            tracing::info!(event = "config_applied", version = version.as_deref().unwrap_or(""))
        }
        RouteEvent::ConfigRejected { error } => {
            tracing::warn!(event = "config_rejected", field = %error.field, reason = %error.reason)
        }
    }
}

/// Keeps a session to `peer` up: dials whenever none is established, with
/// backoff between failed attempts.
async fn dial_loop(
    shared: Shared,
    peer: NodeId,
    address: String,
    mut established: watch::Receiver<bool>,
    mut backoff: Backoff,
) {
    shared.peering_allowed().await;
    loop {
        if established.wait_for(|up| !*up).await.is_err() {
            return;
        }
        let attempt = tokio::time::timeout(std::time::Duration::from_secs(5), TcpStream::connect(&address)).await;
        // `Err(Some(..))`: a TLS failure, counted like a session that
        // failed; `Err(None)`: no TCP connection (the peer is down).
        let stream: Result<BoxedStream, Option<String>> = match attempt {
            Ok(Ok(stream)) => {
                let _ = stream.set_nodelay(true);
                match &shared.tls {
                    Some(tls) => tls.connect(&peer, stream).await.map_err(|e| Some(e.to_string())),
                    None => Ok(Box::new(stream)),
                }
            }
            Ok(Err(e)) => {
                tracing::debug!(peer = %peer, address = %address, error = %e, "dial failed");
                Err(None)
            }
            Err(_) => {
                tracing::debug!(peer = %peer, address = %address, "dial timed out");
                Err(None)
            }
        };
        match stream {
            Ok(stream) => {
                // In its own task: stopping the dialer (config change,
                // shutdown) must not cut a live session without its close.
                let session = tokio::spawn(shared.connection(Some(peer.clone()), None).run(stream));
                if session.await.unwrap_or(false) {
                    // It was up: the next attempt starts from the shortest delay.
                    backoff.reset();
                }
            }
            Err(Some(reason)) => {
                tracing::warn!(peer = %peer, address = %address, error = %reason, "outbound TLS handshake failed");
                let failed = Command::SessionFailed { expected: Some(peer.clone()), label: "tls_handshake", reason };
                let _ = shared.actor.send(failed).await;
            }
            Err(None) => {}
        }
        tokio::time::sleep(backoff.next_delay()).await;
    }
}

/// A config naming a signing key (`security.signingKeyId`) needs the node to
/// sign with that key, and with the public half the config trusts.
fn check_signer(config: &SidecarConfig, signer: Option<&SigningIdentity>) -> Result<(), ConfigError> {
    let Some(wanted) = &config.security.signing_key_id else { return Ok(()) };
    let field = "security.signingKeyId";
    let Some(signer) = signer else {
        return Err(ConfigError::new(field, format!("no signing key {wanted}: this node has no signing key")));
    };
    if signer.key_id() != wanted {
        return Err(ConfigError::new(
            field,
            format!("no signing key {wanted}: this node signs with {}", signer.key_id()),
        ));
    }
    let public = fabric_core::config::encode_public_key(&signer.verifying_key());
    let trusted = config
        .security
        .trusted_keys
        .iter()
        .any(|k| k.advertiser == config.node_id && &k.key_id == wanted && k.public_key.trim() == public);
    if trusted {
        Ok(())
    } else {
        Err(ConfigError::new(field, format!("the private key {wanted} does not match its trusted public key")))
    }
}

#[cfg(test)]
mod signer_tests {
    use super::*;
    use fabric_core::config::{TrustedKey, encode_public_key};

    fn config(signing_key_id: Option<&str>, public_of: &SigningIdentity) -> SidecarConfig {
        let mut config = SidecarConfig::new(NodeId::from("a"));
        config.security.trusted_keys = vec![TrustedKey {
            advertiser: NodeId::from("a"),
            key_id: "k2".into(),
            public_key: encode_public_key(&public_of.verifying_key()),
            valid_from: None,
            valid_until: None,
        }]
        .into();
        config.security.signing_key_id = signing_key_id.map(Into::into);
        config
    }

    #[test]
    fn a_config_naming_a_signing_key_needs_that_key() {
        let k2 = SigningIdentity::from_secret_bytes("k2".into(), &[2; 32]);
        let other_k2 = SigningIdentity::from_secret_bytes("k2".into(), &[9; 32]);
        let k1 = SigningIdentity::from_secret_bytes("k1".into(), &[1; 32]);
        assert_eq!(check_signer(&config(None, &k2), None), Ok(()), "no signing key named: anything goes");
        assert_eq!(check_signer(&config(Some("k2"), &k2), Some(&k2)), Ok(()));
        let refused = |signer| check_signer(&config(Some("k2"), &k2), signer).unwrap_err();
        assert_eq!(refused(None).field, "security.signingKeyId");
        assert!(refused(Some(&k1)).reason.contains("signs with k1"), "{}", refused(Some(&k1)).reason);
        assert!(refused(Some(&other_k2)).reason.contains("does not match"), "{}", refused(Some(&other_k2)).reason);
    }
}
