//! What the engine tests and benches build: configs of node `self`,
//! announcements and withdrawals, signing identities, and the bench
//! workload of many neighbors advertising many destinations.

use std::time::Duration;

use fabric_core::config::{NeighborConfig, TrustedKey, encode_public_key};
use fabric_core::security::SigningIdentity;
use fabric_core::stats::RejectReason;
use fabric_core::{
    DestinationId, Message, NodeId, RouteAnnouncement, RouteMetrics, RouteWithdrawal, SidecarConfig, Tag, Timestamp,
};
use fabric_engine::Engine;
use fabric_engine::{Effect, RouteEvent};

pub const SELF: &str = "self";

pub fn t(millis: u64) -> Timestamp {
    Timestamp(millis)
}

pub fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}

pub fn neighbor(id: &str) -> NeighborConfig {
    NeighborConfig { id: id.into(), address: None, link: Default::default(), import: None, export: None }
}

/// A config for node `self` with the given neighbors.
pub fn config_with(neighbors: &[&str]) -> SidecarConfig {
    let mut config = SidecarConfig::new(SELF);
    config.neighbors = neighbors.iter().map(|n| neighbor(n)).collect();
    config
}

pub fn engine(neighbors: &[&str]) -> Engine {
    Engine::new(config_with(neighbors), t(0)).expect("valid config")
}

/// Announcement of `dest` by `from` along `path` (from first), cost `cost`.
pub fn ann(from: &str, dest: &str, path: &[&str], cost: u32, epoch: u64) -> RouteAnnouncement {
    RouteAnnouncement {
        destination: DestinationId::new(dest),
        path: path.iter().map(|p| NodeId::new(*p)).collect(),
        hop_count: path.len() as u32,
        metrics: RouteMetrics { cost, latency_us: 100, reliability: 1.0 },
        advertiser: NodeId::new(from),
        epoch,
        ttl_ms: 90_000,
        issued_at_ms: None,
        tags: Vec::new().into(),
        signature: None,
    }
}

pub fn with_tags(mut a: RouteAnnouncement, tags: &[&str]) -> RouteAnnouncement {
    a.tags = tags.iter().map(|t| Tag::new(*t)).collect();
    a
}

pub fn wd(from: &str, dest: &str, epoch: u64) -> RouteWithdrawal {
    RouteWithdrawal {
        destination: DestinationId::new(dest),
        path: vec![NodeId::new(from)],
        advertiser: NodeId::new(from),
        epoch,
        issued_at_ms: None,
        signature: None,
    }
}

pub fn send(engine: &mut Engine, now: Timestamp, from: &str, message: impl Into<Msg>) -> Vec<Effect> {
    engine.receive(now, &NodeId::new(from), message.into().0);
    engine.drain_effects(now)
}

pub struct Msg(pub Message);

impl From<RouteAnnouncement> for Msg {
    fn from(a: RouteAnnouncement) -> Self {
        Msg(Message::Announcement(a))
    }
}

impl From<RouteWithdrawal> for Msg {
    fn from(w: RouteWithdrawal) -> Self {
        Msg(Message::Withdrawal(w))
    }
}

pub fn next_hop(engine: &Engine, dest: &str) -> Option<String> {
    engine.best_route(dest).map(|b| b.next_hop.to_string())
}

pub fn rejects(engine: &Engine, reason: RejectReason) -> u64 {
    engine.stats().announcement_rejects_total.get(reason.label()).copied().unwrap_or(0)
}

pub fn rejected_reasons(effects: &[Effect]) -> Vec<RejectReason> {
    effects
        .iter()
        .filter_map(|e| match e {
            Effect::Event(RouteEvent::Rejected { reason, .. }) => Some(*reason),
            _ => None,
        })
        .collect()
}

/// A deterministic signing identity for `node` (secret derived from the name).
pub fn identity(node: &str, key_id: &str) -> SigningIdentity {
    let mut secret = [0u8; 32];
    for (i, b) in format!("{node}/{key_id}").bytes().enumerate() {
        secret[i % 32] ^= b.wrapping_add(i as u8);
    }
    SigningIdentity::from_secret_bytes(key_id.into(), &secret)
}

pub fn trusted(node: &str, identity: &SigningIdentity) -> TrustedKey {
    TrustedKey {
        advertiser: node.into(),
        key_id: identity.key_id().clone(),
        public_key: encode_public_key(&identity.verifying_key()),
        valid_from: None,
        valid_until: None,
    }
}

/// Neighbor `i` of the benchmarked node.
pub fn peer(i: usize) -> NodeId {
    NodeId::from(format!("peer-{i}"))
}

/// The path neighbor `i` advertises for destination `d`: 2 to 4 hops,
/// starting at the neighbor, through up to two of 64 transit nodes, ending
/// at one of 2000 origins. Fresh strings, as the wire decoder produces them.
pub fn workload_path(d: usize, i: usize) -> Vec<NodeId> {
    let hops = 2 + (d + i) % 3;
    let mut path = Vec::with_capacity(hops);
    path.push(peer(i));
    let transit = (d * 3 + i) % 64;
    if hops >= 3 {
        path.push(NodeId::from(format!("transit-{transit}")));
    }
    if hops == 4 {
        path.push(NodeId::from(format!("transit-{}", (transit + 1 + d % 7) % 64)));
    }
    path.push(NodeId::from(format!("origin-{}", d % 2000)));
    path
}
