//! The sidecar's metrics: one table of definitions ([`NODE_METRICS`],
//! [`LINK_STATE_METRICS`]) that both `/metrics` (Prometheus, rendered here)
//! and the OTLP export (`otlp_metrics`) iterate, so a metric's name, help,
//! unit and labels are written once. Values are read from the engine's
//! [`StatsSnapshot`], the link-state router's [`LinkStateSnapshot`] (when
//! link-state is on) and the runtime's peer and config state.
//!
//! The engine keeps the real counters; this module only formats them. Every
//! render builds a fresh [`Registry`] from the snapshot it is given, so the
//! output is exactly the snapshot (no second copy of the counters that could
//! drift) and series come out in a fixed order: the order of the table.
//!
//! Either exposition format (`fabric_io::prometheus`, negotiated on the
//! request's `Accept` header) comes from the same registry. See
//! `docs/metrics.md` for the list of metrics.

use std::collections::BTreeMap;

#[cfg(test)]
use fabric_io::metric_table::Kind;
use fabric_io::metric_table::{Def, Metric, Reading, register_prometheus};
pub use fabric_io::prometheus::MetricsFormat;
use fabric_io::prometheus::encode;
use prometheus_client::registry::Registry;

use fabric_core::stats::{RejectReason, StatsSnapshot};
use fabric_link_state::UpdateRejectReason;
use fabric_link_state::{AreaId, ExportCounts, LinkStateSnapshot};

use crate::runtime::node::NodeStats;

/// Prefix of every metric name (`fabric_...`).
pub const PREFIX: &str = "fabric";

/// Per-peer session state, as the runtime sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PeerMetrics {
    /// The peer's node id (value of the `peer` label).
    pub peer: String,
    /// Whether a session with the peer is established now.
    pub established: bool,
    pub sessions_established_total: u64,
    pub session_failures_total: u64,
    /// Routes currently learned from this peer.
    pub routes_received: u64,
    /// Bytes queued for the peer and not yet written.
    pub send_queue_bytes: u64,
}

/// Everything one render needs. The snapshot is the source of truth.
#[derive(Clone, Copy, Debug)]
pub struct MetricsInput<'a> {
    pub stats: &'a StatsSnapshot,
    /// Rendered in this order; ids are expected to be unique.
    pub peers: &'a [PeerMetrics],
    pub node_id: &'a str,
    pub config_version: Option<&'a str>,
    /// Configs put in force by the node, the startup config included.
    pub config_applied_total: u64,
    /// Configs the node refused (the previous one stayed in force).
    pub config_rejected_total: u64,
    /// The link-state router's snapshot; `None` (no `fabric_link_state_*`
    /// family at all) when link-state is off.
    pub link_state: Option<&'a LinkStateSnapshot>,
    /// Connection ends by reason (`fabric_core::session::SESSION_END_REASONS`);
    /// reasons missing here are rendered at zero.
    pub session_ends: &'a BTreeMap<&'static str, u64>,
}

impl<'a> MetricsInput<'a> {
    /// The input of a node's stats; `peers` from [`peer_metrics`].
    pub fn of_node(stats: &'a NodeStats, peers: &'a [PeerMetrics]) -> Self {
        MetricsInput {
            stats: &stats.engine,
            peers,
            node_id: stats.config.node_id.as_str(),
            config_version: stats.config.version.as_deref(),
            config_applied_total: stats.config.applied_total,
            config_rejected_total: stats.config.rejected_total,
            link_state: stats.link_state.as_ref(),
            session_ends: &stats.session_ends_total,
        }
    }
}

/// The per-peer part of a node's stats, in the node's order.
pub fn peer_metrics(stats: &NodeStats) -> Vec<PeerMetrics> {
    stats
        .peers
        .iter()
        .map(|p| PeerMetrics {
            peer: p.id.to_string(),
            established: p.established,
            sessions_established_total: p.sessions_established_total,
            session_failures_total: p.session_failures_total,
            routes_received: u64::from(p.routes_received),
            send_queue_bytes: p.send_queue_bytes,
        })
        .collect()
}

/// Renders the metrics in the given format.
pub fn render(input: &MetricsInput<'_>, format: MetricsFormat) -> String {
    encode(&registry(input), format)
}

/// Builds the registry for one render: every entry of the tables, in order.
fn registry(input: &MetricsInput<'_>) -> Registry {
    let mut registry = Registry::with_prefix(PREFIX);
    for metric in NODE_METRICS {
        register_prometheus(&mut registry, &metric.def, (metric.read)(input));
    }
    if let Some(link_state) = input.link_state {
        for metric in LINK_STATE_METRICS {
            register_prometheus(&mut registry, &metric.def, (metric.read)(link_state));
        }
    }
    registry
}

/// Reads one node metric from a render's input.
pub type NodeRead = fn(&MetricsInput<'_>) -> Reading;
/// Reads one link-state metric from the router's snapshot.
pub type LinkStateRead = fn(&LinkStateSnapshot) -> Reading;

/// Every reason, zero when unseen: the snapshot only lists the seen ones.
fn reject_reasons(by_label: &BTreeMap<&'static str, u64>) -> Reading {
    Reading::by_label(
        RejectReason::ALL.iter().map(|reason| (reason.label(), by_label.get(reason.label()).copied().unwrap_or(0))),
    )
}

fn by_peer(peers: &[PeerMetrics], value: fn(&PeerMetrics) -> u64) -> Reading {
    Reading::by_label(peers.iter().map(|peer| (peer.peer.as_str(), value(peer))))
}

/// The node's metrics (path-vector engine, configuration, peers), in the
/// order `/metrics` lists them. Help texts end without a full stop; the
/// registry adds it.
///
/// Adding a metric is one entry here (or in [`LINK_STATE_METRICS`]) plus
/// its two rows in `docs/metrics.md` (its section's table and the OTLP
/// table), which `docs_match_the_metric_table` checks.
pub static NODE_METRICS: &[Metric<NodeRead>] = &[
    Def::info(
        "node",
        "Identity of this node and the version of the config in force (empty when the config has none); value always 1",
        &["node_id", "config_version"],
    )
    .read(|s| Reading::Info(vec![s.node_id.to_owned(), s.config_version.unwrap_or_default().to_owned()])),
    // Routing table gauges.
    Def::up_down_counter("routes_active", "Destinations with a selected best route")
        .otlp("fabric.routes.active", "{route}")
        .read(|s| s.stats.routes_active_total.into()),
    Def::up_down_counter("route_candidates_stored", "Candidate routes stored, eligible or not")
        .otlp("fabric.route.candidates", "{route}")
        .read(|s| s.stats.candidates_stored.into()),
    Def::up_down_counter(
        "routes_held_down",
        "Candidate routes currently ineligible because their (destination, next hop) is held down",
    )
    .otlp("fabric.routes.held_down", "{route}")
    .read(|s| s.stats.routes_held_down.into()),
    Def::up_down_counter(
        "routes_suppressed_now",
        "Candidate routes currently ineligible because flap dampening suppresses them",
    )
    .otlp("fabric.routes.suppressed", "{route}")
    .read(|s| s.stats.routes_suppressed_now.into()),
    // Route lifecycle counters.
    Def::counter("routes_withdrawn", "Routes removed because their advertiser withdrew them or the neighbor went away")
        .otlp("fabric.routes.withdrawn", "{route}")
        .read(|s| s.stats.routes_withdrawn_total.into()),
    Def::counter("routes_expired", "Routes removed because their TTL ran out")
        .otlp("fabric.routes.expired", "{route}")
        .read(|s| s.stats.routes_expired_total.into()),
    Def::counter(
        "routes_purged_stale",
        "Routes of a restarted neighbor purged because it did not refresh them within its restart window",
    )
    .otlp("fabric.routes.purged_stale", "{route}")
    .read(|s| s.stats.routes_purged_stale_total.into()),
    Def::counter("routes_suppressed", "Times flap dampening started suppressing a (destination, advertiser)")
        .otlp("fabric.route.suppressions", "{suppression}")
        .read(|s| s.stats.routes_suppressed_total.into()),
    Def::counter("routes_reused", "Times a suppression ended and the route could be used again")
        .otlp("fabric.route.reuses", "{suppression}")
        .read(|s| s.stats.routes_reused_total.into()),
    Def::counter("best_path_changes", "Changes of a destination's selected best route, losing it included")
        .otlp("fabric.best_path.changes", "{change}")
        .read(|s| s.stats.best_path_changes_total.into()),
    // Announcements and withdrawals.
    Def::counter("announcements_received", "Route announcements received")
        .otlp("fabric.announcements.received", "{announcement}")
        .read(|s| s.stats.announcements_received.into()),
    Def::counter(
        "announcements_accepted",
        "Announcements that became usable routes, and stored routes that became usable again when a hold-down or suppression ended",
    )
    .otlp("fabric.announcements.accepted", "{announcement}")
    .read(|s| s.stats.announcements_accepted.into()),
    Def::counter(
        "announcement_rejects",
        "Announcements and withdrawals not used, by reason; every reason is always present",
    )
    .labels(&["reason"])
    .otlp("fabric.announcement.rejects", "{announcement}")
    .read(|s| reject_reasons(&s.stats.announcement_rejects_total)),
    Def::counter(
        "dry_run_rejects",
        "Announcements accepted that an import policy in dry-run mode would have rejected, by reason; every reason is always present",
    )
    .labels(&["reason"])
    .otlp("fabric.announcement.dry_run_rejects", "{announcement}")
    .read(|s| reject_reasons(&s.stats.dry_run_rejects_total)),
    Def::counter(
        "session_ends",
        "Connections to peers that ended, established or not, by reason; every reason is always present",
    )
    .labels(&["reason"])
    .otlp("fabric.session.ends", "{session}")
    .read(|s| {
        Reading::by_label(
            fabric_core::session::SESSION_END_REASONS
                .iter()
                .map(|reason| (*reason, s.session_ends.get(reason).copied().unwrap_or(0))),
        )
    }),
    Def::counter(
        "export_refusals",
        "Best routes not advertised to neighbors, by reason (path_limit: with this node added the path would exceed limits.maxPathLength, so a neighbor with the same limits would refuse it; message_limit: the announcement would take more than limits.maxMessageBytes, a frame the neighbor would refuse)",
    )
    .labels(&["reason"])
    .otlp("fabric.export.refusals", "{route}")
    .read(|s| Reading::by_label(s.stats.export_refusals_total.iter().map(|(reason, n)| (*reason, *n)))),
    Def::counter(
        "hold_down_rejects",
        "Announcements stored but not used because their (destination, next hop) is held down; also counted under announcement_rejects_total{reason=hold_down}",
    )
    .otlp("fabric.hold_down.rejects", "{announcement}")
    .read(|s| s.stats.hold_down_rejects.into()),
    Def::counter("withdrawals_received", "Route withdrawals received")
        .otlp("fabric.withdrawals.received", "{withdrawal}")
        .read(|s| s.stats.withdrawals_received.into()),
    Def::counter("withdrawals_applied", "Route withdrawals that removed a stored route")
        .otlp("fabric.withdrawals.applied", "{withdrawal}")
        .read(|s| s.stats.withdrawals_applied.into()),
    Def::counter("messages_sent", "Messages (announcements, withdrawals, end-of-table markers) queued for neighbors")
        .otlp("fabric.messages.sent", "{message}")
        .read(|s| s.stats.messages_sent_total.into()),
    // Signatures.
    Def::counter("signatures_verified", "Signatures verified as valid by computation (cache hits not included)")
        .otlp("fabric.signatures.verified", "{signature}")
        .read(|s| s.stats.signatures_verified_total.into()),
    Def::counter("signature_cache_hits", "Signatures found already verified in the verification cache")
        .otlp("fabric.signature_cache.hits", "{signature}")
        .read(|s| s.stats.signature_cache_hits_total.into()),
    Def::counter(
        "unverified_signatures_accepted",
        "Signed messages accepted unverified: the key is unknown and signatures are not required",
    )
    .otlp("fabric.signatures.unverified_accepted", "{message}")
    .read(|s| s.stats.unverified_signatures_accepted_total.into()),
    Def::counter(
        "v1_messages_accepted",
        "Announcements and withdrawals accepted without a signed issue time (protocol v1)",
    )
    .otlp("fabric.messages.v1_accepted", "{message}")
    .read(|s| s.stats.v1_messages_accepted_total.into()),
    // Convergence.
    Def::histogram(
        "convergence",
        "Time a destination went without a usable route: from losing its last one to having a new best route",
    )
    .otlp("fabric.convergence", "{convergence}")
    .read(|s| (&s.stats.convergence_seconds).into()),
    // Configuration.
    Def::counter("config_applied", "Configs put in force, the startup config included")
        .otlp("fabric.config.applied", "{config}")
        .read(|s| s.config_applied_total.into()),
    Def::counter(
        "config_rejected",
        "Configs refused (from the file, on reload or through the API); the previous config stayed in force",
    )
    .otlp("fabric.config.rejected", "{config}")
    .read(|s| s.config_rejected_total.into()),
    Def::counter("engine_config_reloads", "Live config changes applied by the routing engine")
        .otlp("fabric.engine.config.reloads", "{config}")
        .read(|s| s.stats.config_reloads_total.into()),
    Def::counter("engine_config_rejects", "Live config changes refused by the routing engine")
        .otlp("fabric.engine.config.rejects", "{config}")
        .read(|s| s.stats.config_rejects_total.into()),
    // Peers.
    Def::gauge("peer_session_up", "Whether a session with the peer is established (1) or not (0)")
        .labels(&["peer"])
        .otlp("fabric.peer.session.up", "1")
        .read(|s| by_peer(s.peers, |p| u64::from(p.established))),
    Def::counter("peer_sessions_established", "Sessions established with the peer")
        .labels(&["peer"])
        .otlp("fabric.peer.sessions.established", "{session}")
        .read(|s| by_peer(s.peers, |p| p.sessions_established_total)),
    Def::counter("peer_session_failures", "Established sessions with the peer that went down")
        .labels(&["peer"])
        .otlp("fabric.peer.session.failures", "{session}")
        .read(|s| by_peer(s.peers, |p| p.session_failures_total)),
    Def::up_down_counter("peer_routes_received", "Routes currently stored from the peer")
        .labels(&["peer"])
        .otlp("fabric.peer.routes.received", "{route}")
        .read(|s| by_peer(s.peers, |p| p.routes_received)),
    Def::gauge(
        "peer_send_queue",
        "Bytes (wire size) queued for the peer and not yet written; never above session.maxQueuedBytes",
    )
    .labels(&["peer"])
    .otlp("fabric.peer.send_queue.size", "By")
    .read(|s| by_peer(s.peers, |p| p.send_queue_bytes)),
];

/// Every reason a link-state update can be refused. `reject_reason_index`
/// is an exhaustive match, so a new reason does not compile until it gets
/// an index there, and the assertion below fails until it is listed here at
/// that index.
const UPDATE_REJECT_REASONS: [UpdateRejectReason; 9] = [
    UpdateRejectReason::AreaMismatch,
    UpdateRejectReason::UnknownNeighbor,
    UpdateRejectReason::Invalid,
    UpdateRejectReason::Unsigned,
    UpdateRejectReason::UnknownKey,
    UpdateRejectReason::KeyNotYetValid,
    UpdateRejectReason::KeyExpired,
    UpdateRejectReason::BadSignature,
    UpdateRejectReason::LsdbFull,
];

const fn reject_reason_index(reason: UpdateRejectReason) -> usize {
    match reason {
        UpdateRejectReason::AreaMismatch => 0,
        UpdateRejectReason::UnknownNeighbor => 1,
        UpdateRejectReason::Invalid => 2,
        UpdateRejectReason::Unsigned => 3,
        UpdateRejectReason::UnknownKey => 4,
        UpdateRejectReason::KeyNotYetValid => 5,
        UpdateRejectReason::KeyExpired => 6,
        UpdateRejectReason::BadSignature => 7,
        UpdateRejectReason::LsdbFull => 8,
    }
}

const _: () = {
    let mut i = 0;
    while i < UPDATE_REJECT_REASONS.len() {
        assert!(reject_reason_index(UPDATE_REJECT_REASONS[i]) == i, "UPDATE_REJECT_REASONS is out of order");
        i += 1;
    }
};

/// Every reason, zero when unseen, as for path-vector rejects.
fn update_reject_reasons(by_label: &BTreeMap<&'static str, u64>) -> Reading {
    Reading::by_label(
        UPDATE_REJECT_REASONS.iter().map(|reason| (reason.label(), by_label.get(reason.label()).copied().unwrap_or(0))),
    )
}

fn by_area<V: Copy + TryInto<u64>>(by_area: &BTreeMap<AreaId, V>) -> Reading {
    Reading::by_label(by_area.iter().map(|(area, value)| (area, (*value).try_into().unwrap_or(u64::MAX))))
}

fn by_area_pair(pairs: impl Iterator<Item = (AreaId, AreaId, u64)>) -> Reading {
    Reading::Series(
        pairs.map(|(source, target, value)| (vec![source.to_string(), target.to_string()], value)).collect(),
    )
}

fn exports(s: &LinkStateSnapshot, count: fn(&ExportCounts) -> u64) -> Reading {
    by_area_pair(
        s.summary_exports.iter().map(|stat| (stat.source_area.clone(), stat.target_area.clone(), count(&stat.counts))),
    )
}

/// The `link_state_*` families, from the router's snapshot: present (on
/// `/metrics` and over OTLP) only while link-state is on.
pub static LINK_STATE_METRICS: &[Metric<LinkStateRead>] = &[
    Def::up_down_counter(
        "link_state_lsdb_entries",
        "Origins stored in the link-state database of each area this node is in, flush tombstones included",
    )
    .labels(&["area"])
    .otlp("fabric.link_state.lsdb.entries", "{entry}")
    .read(|s| by_area(&s.lsdb_entries)),
    Def::up_down_counter("link_state_routes_active", "Destinations with a link-state route")
        .otlp("fabric.link_state.routes.active", "{route}")
        .read(|s| (s.routes_active as u64).into()),
    Def::counter("link_state_updates_received", "Link-state updates received from neighbors")
        .otlp("fabric.link_state.updates.received", "{update}")
        .read(|s| s.updates_received_total.into()),
    Def::counter("link_state_updates_installed", "Received link-state updates stored as the newest of their origin")
        .otlp("fabric.link_state.updates.installed", "{update}")
        .read(|s| s.updates_installed_total.into()),
    Def::counter(
        "link_state_updates_duplicate",
        "Received link-state updates already stored (the normal end of flooding)",
    )
    .otlp("fabric.link_state.updates.duplicate", "{update}")
    .read(|s| s.updates_duplicate_total.into()),
    Def::counter(
        "link_state_updates_stale",
        "Received link-state updates older than the stored one; the stored copy was sent back",
    )
    .otlp("fabric.link_state.updates.stale", "{update}")
    .read(|s| s.updates_stale_total.into()),
    Def::counter("link_state_update_rejects", "Link-state updates refused, by reason; every reason is always present")
        .labels(&["reason"])
        .otlp("fabric.link_state.update.rejects", "{update}")
        .read(|s| update_reject_reasons(&s.update_rejects_total)),
    Def::counter(
        "link_state_area_mismatches",
        "Link-state updates refused because this node is not in their area or they came over a link of another area, by the area they named",
    )
    .labels(&["area"])
    .otlp("fabric.link_state.area_mismatches", "{update}")
    .read(|s| by_area(&s.area_mismatches_total)),
    Def::counter("link_state_updates_originated", "Link-state updates this node made of its own links")
        .otlp("fabric.link_state.updates.originated", "{update}")
        .read(|s| s.updates_originated_total.into()),
    Def::counter(
        "link_state_updates_sent",
        "Link-state updates queued for neighbors (flooding and database exchange)",
    )
    .otlp("fabric.link_state.updates.sent", "{update}")
    .read(|s| s.updates_sent_total.into()),
    Def::counter("link_state_flushes_received", "Withdrawn (flushed) link-state updates received and stored")
        .otlp("fabric.link_state.flushes.received", "{update}")
        .read(|s| s.flushes_received_total.into()),
    Def::counter("link_state_entries_expired", "Link-state database entries removed because their TTL ran out")
        .otlp("fabric.link_state.entries.expired", "{entry}")
        .read(|s| s.entries_expired_total.into()),
    Def::counter("link_state_spf_runs", "Shortest-path-first runs, one per area whose links changed")
        .otlp("fabric.link_state.spf.runs", "{run}")
        .read(|s| s.spf_runs_total.into()),
    Def::counter("link_state_spf_skipped", "Link-state database changes that changed no link, so SPF was not run")
        .otlp("fabric.link_state.spf.skipped", "{change}")
        .read(|s| s.spf_skipped_total.into()),
    Def::counter(
        "link_state_spf_deferred",
        "Link-state changes whose route computation the SPF throttle scheduled for later",
    )
    .otlp("fabric.link_state.spf.deferred", "{change}")
    .read(|s| s.spf_deferred_total.into()),
    Def::counter(
        "link_state_spf_coalesced",
        "Link-state changes that joined a route computation already scheduled by the SPF throttle",
    )
    .otlp("fabric.link_state.spf.coalesced", "{change}")
    .read(|s| s.spf_coalesced_total.into()),
    Def::histogram(
        "link_state_spf_duration",
        "Wall time of the router calls that ran SPF, route table rebuild included",
    )
    .otlp("fabric.link_state.spf_call", "{call}")
    .read(|s| (&s.spf_duration_seconds).into()),
    Def::counter("link_state_route_changes", "Link-state routes added, changed or removed")
        .otlp("fabric.link_state.route.changes", "{change}")
        .read(|s| s.route_changes_total.into()),
    Def::up_down_counter(
        "link_state_exported_entries",
        "Summary entries this node exports as an area border router, by source and target area",
    )
    .labels(&["source_area", "target_area"])
    .otlp("fabric.link_state.export.entries", "{entry}")
    .read(|s| exports(s, |counts| counts.exported)),
    Def::up_down_counter(
        "link_state_export_filtered_entries",
        "Summary entries a summary filter keeps this node from exporting, by source and target area",
    )
    .labels(&["source_area", "target_area"])
    .otlp("fabric.link_state.export.filtered_entries", "{entry}")
    .read(|s| exports(s, |counts| counts.filtered)),
    Def::up_down_counter(
        "link_state_export_compressed_entries",
        "Summary entries left out of this node's exports by maxSummaryEntries, by source and target area",
    )
    .labels(&["source_area", "target_area"])
    .otlp("fabric.link_state.export.compressed_entries", "{entry}")
    .read(|s| exports(s, |counts| counts.compressed)),
    Def::counter(
        "link_state_import_refused_entries",
        "Summary entries received that this node does not use (filtered, or not flowing up the area graph), by source and target area",
    )
    .labels(&["source_area", "target_area"])
    .otlp("fabric.link_state.import.refused_entries", "{entry}")
    .read(|s| {
        by_area_pair(s.summary_entries_refused.iter().map(|r| (r.source_area.clone(), r.target_area.clone(), r.refused)))
    }),
    Def::counter(
        "link_state_unverified_signatures_accepted",
        "Signed link-state updates accepted unverified: the key is unknown and linkState.requireSignatures is false",
    )
    .otlp("fabric.link_state.signatures.unverified_accepted", "{update}")
    .read(|s| s.unverified_signatures_accepted_total.into()),
];

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use fabric_core::stats::{CONVERGENCE_BUCKETS, Histogram};
    use fabric_link_state::stats::SPF_DURATION_BUCKETS;

    use super::*;

    fn empty_snapshot() -> StatsSnapshot {
        StatsSnapshot {
            routes_active_total: 0,
            candidates_stored: 0,
            routes_held_down: 0,
            routes_suppressed_now: 0,
            announcements_received: 0,
            announcements_accepted: 0,
            announcement_rejects_total: BTreeMap::new(),
            dry_run_rejects_total: BTreeMap::new(),
            export_refusals_total: BTreeMap::from([("path_limit", 0)]),
            withdrawals_received: 0,
            withdrawals_applied: 0,
            routes_withdrawn_total: 0,
            routes_expired_total: 0,
            routes_purged_stale_total: 0,
            routes_suppressed_total: 0,
            routes_reused_total: 0,
            hold_down_rejects: 0,
            best_path_changes_total: 0,
            messages_sent_total: 0,
            config_reloads_total: 0,
            config_rejects_total: 0,
            signatures_verified_total: 0,
            signature_cache_hits_total: 0,
            unverified_signatures_accepted_total: 0,
            v1_messages_accepted_total: 0,
            convergence_seconds: Histogram::default(),
            last_convergence: BTreeMap::new(),
        }
    }

    /// Every field distinct, so a value showing up under the wrong name is caught.
    fn populated_snapshot() -> StatsSnapshot {
        let mut convergence = Histogram::default();
        for ms in [0, 3, 7, 20, 20, 400, 1_500, 90_000] {
            convergence.observe(Duration::from_millis(ms));
        }
        StatsSnapshot {
            routes_active_total: 101,
            candidates_stored: 102,
            routes_held_down: 103,
            routes_suppressed_now: 104,
            announcements_received: 105,
            announcements_accepted: 106,
            announcement_rejects_total: BTreeMap::from([("bad_signature", 107), ("loop_detected", 108)]),
            dry_run_rejects_total: BTreeMap::from([("policy_tag", 109)]),
            export_refusals_total: BTreeMap::from([("path_limit", 3)]),
            withdrawals_received: 110,
            withdrawals_applied: 111,
            routes_withdrawn_total: 112,
            routes_expired_total: 113,
            routes_purged_stale_total: 114,
            routes_suppressed_total: 115,
            routes_reused_total: 116,
            hold_down_rejects: 117,
            best_path_changes_total: 118,
            messages_sent_total: 119,
            config_reloads_total: 120,
            config_rejects_total: 121,
            signatures_verified_total: 122,
            signature_cache_hits_total: 123,
            unverified_signatures_accepted_total: 124,
            v1_messages_accepted_total: 7,
            convergence_seconds: convergence,
            last_convergence: BTreeMap::new(),
        }
    }

    fn peers() -> Vec<PeerMetrics> {
        vec![
            PeerMetrics {
                peer: "node-b".into(),
                established: true,
                sessions_established_total: 201,
                session_failures_total: 202,
                routes_received: 203,
                send_queue_bytes: 205,
            },
            PeerMetrics {
                peer: "node-c".into(),
                established: false,
                sessions_established_total: 0,
                session_failures_total: 204,
                routes_received: 0,
                send_queue_bytes: 0,
            },
        ]
    }

    fn render_with(stats: &StatsSnapshot, peers: &[PeerMetrics], format: MetricsFormat) -> String {
        render_full(stats, peers, None, format)
    }

    fn render_full(
        stats: &StatsSnapshot,
        peers: &[PeerMetrics],
        link_state: Option<&LinkStateSnapshot>,
        format: MetricsFormat,
    ) -> String {
        render(
            &MetricsInput {
                stats,
                peers,
                node_id: "node-a",
                config_version: Some("v7"),
                config_applied_total: 301,
                config_rejected_total: 302,
                link_state,
                session_ends: &Default::default(),
            },
            format,
        )
    }

    /// Every value distinct, as in `populated_snapshot`.
    fn link_state_snapshot() -> LinkStateSnapshot {
        let mut spf = Histogram::default();
        for micros in [50, 300, 3_000, 700_000] {
            spf.observe(Duration::from_micros(micros));
        }
        let pair = |source: &str, target: &str| (AreaId::from(source), AreaId::from(target));
        let (edge_core, dmz_core) = (pair("edge", "core"), pair("dmz", "core"));
        LinkStateSnapshot {
            lsdb_entries: BTreeMap::from([(AreaId::from("core"), 401), (AreaId::from("edge"), 402)]),
            topology_fingerprints: BTreeMap::new(),
            routes_active: 403,
            summary_exports: vec![fabric_link_state::stats::SummaryExportStat {
                source_area: edge_core.0.clone(),
                target_area: edge_core.1.clone(),
                counts: ExportCounts { exported: 404, filtered: 405, compressed: 406 },
            }],
            summary_entries_refused: vec![fabric_link_state::stats::SummaryExportRefusal {
                source_area: dmz_core.0,
                target_area: dmz_core.1,
                refused: 407,
            }],
            updates_received_total: 408,
            updates_installed_total: 409,
            updates_duplicate_total: 410,
            updates_stale_total: 411,
            update_rejects_total: BTreeMap::from([("area_mismatch", 412), ("bad_signature", 413)]),
            area_mismatches_total: BTreeMap::from([(AreaId::from("elsewhere"), 412)]),
            flushes_received_total: 414,
            entries_expired_total: 415,
            updates_originated_total: 416,
            sequence_jumps_total: 417,
            updates_sent_total: 418,
            spf_runs_total: 419,
            spf_skipped_total: 420,
            spf_heap_pops_total: 421,
            spf_deferred_total: 5,
            spf_coalesced_total: 17,
            spf_duration_seconds: spf,
            route_changes_total: 422,
            unverified_signatures_accepted_total: 423,
            config_reloads_total: 424,
        }
    }

    const FORMATS: [MetricsFormat; 2] = [MetricsFormat::OpenMetrics, MetricsFormat::PrometheusText];

    fn has_line(text: &str, line: &str) -> bool {
        text.lines().any(|l| l == line)
    }

    #[track_caller]
    fn assert_line(text: &str, line: &str) {
        assert!(has_line(text, line), "missing line {line:?} in:\n{text}");
    }

    /// `(name, type)` of every `# TYPE` line.
    fn type_lines(text: &str) -> Vec<(&str, &str)> {
        text.lines()
            .filter_map(|l| l.strip_prefix("# TYPE "))
            .map(|rest| rest.split_once(' ').expect("# TYPE name type"))
            .collect()
    }

    #[test]
    fn every_reject_reason_is_zero_on_an_empty_snapshot() {
        for format in FORMATS {
            let text = render_with(&empty_snapshot(), &[], format);
            for reason in RejectReason::ALL {
                assert_line(&text, &format!("fabric_announcement_rejects_total{{reason=\"{}\"}} 0", reason.label()));
                assert_line(&text, &format!("fabric_dry_run_rejects_total{{reason=\"{}\"}} 0", reason.label()));
            }
            let series = text.lines().filter(|l| l.starts_with("fabric_announcement_rejects_total{")).count();
            assert_eq!(series, RejectReason::COUNT, "{format:?}");
        }
    }

    #[test]
    fn snapshot_values_appear_in_both_formats() {
        let stats = populated_snapshot();
        let peers = peers();
        for format in FORMATS {
            let text = render_with(&stats, &peers, format);
            for line in [
                "fabric_node_info{node_id=\"node-a\",config_version=\"v7\"} 1",
                "fabric_routes_active 101",
                "fabric_route_candidates_stored 102",
                "fabric_routes_held_down 103",
                "fabric_routes_suppressed_now 104",
                "fabric_announcements_received_total 105",
                "fabric_announcements_accepted_total 106",
                "fabric_announcement_rejects_total{reason=\"bad_signature\"} 107",
                "fabric_announcement_rejects_total{reason=\"loop_detected\"} 108",
                "fabric_announcement_rejects_total{reason=\"malformed\"} 0",
                "fabric_dry_run_rejects_total{reason=\"policy_tag\"} 109",
                "fabric_dry_run_rejects_total{reason=\"bad_signature\"} 0",
                "fabric_withdrawals_received_total 110",
                "fabric_withdrawals_applied_total 111",
                "fabric_routes_withdrawn_total 112",
                "fabric_routes_expired_total 113",
                "fabric_routes_purged_stale_total 114",
                "fabric_routes_suppressed_total 115",
                "fabric_routes_reused_total 116",
                "fabric_hold_down_rejects_total 117",
                "fabric_best_path_changes_total 118",
                "fabric_messages_sent_total 119",
                "fabric_engine_config_reloads_total 120",
                "fabric_engine_config_rejects_total 121",
                "fabric_signatures_verified_total 122",
                "fabric_signature_cache_hits_total 123",
                "fabric_unverified_signatures_accepted_total 124",
                "fabric_config_applied_total 301",
                "fabric_config_rejected_total 302",
                "fabric_peer_session_up{peer=\"node-b\"} 1",
                "fabric_peer_session_up{peer=\"node-c\"} 0",
                "fabric_peer_sessions_established_total{peer=\"node-b\"} 201",
                "fabric_peer_sessions_established_total{peer=\"node-c\"} 0",
                "fabric_peer_session_failures_total{peer=\"node-b\"} 202",
                "fabric_peer_session_failures_total{peer=\"node-c\"} 204",
                "fabric_peer_routes_received{peer=\"node-b\"} 203",
                "fabric_peer_routes_received{peer=\"node-c\"} 0",
                "fabric_peer_send_queue_bytes{peer=\"node-b\"} 205",
            ] {
                assert!(has_line(&text, line), "{format:?}: missing {line:?} in:\n{text}");
            }
        }
    }

    #[test]
    fn link_state_families_appear_only_when_link_state_is_on() {
        let text = render_with(&empty_snapshot(), &[], MetricsFormat::PrometheusText);
        assert!(!text.contains("fabric_link_state_"), "{text}");
        let text = render_full(&empty_snapshot(), &[], Some(&link_state_snapshot()), MetricsFormat::PrometheusText);
        assert_line(&text, "# TYPE fabric_link_state_spf_runs_total counter");
        assert_line(&text, "# TYPE fabric_link_state_lsdb_entries gauge");
    }

    #[test]
    fn link_state_values_appear_in_both_formats() {
        let link_state = link_state_snapshot();
        for format in FORMATS {
            let text = render_full(&empty_snapshot(), &[], Some(&link_state), format);
            for line in [
                "fabric_link_state_lsdb_entries{area=\"core\"} 401",
                "fabric_link_state_lsdb_entries{area=\"edge\"} 402",
                "fabric_link_state_routes_active 403",
                "fabric_link_state_exported_entries{source_area=\"edge\",target_area=\"core\"} 404",
                "fabric_link_state_export_filtered_entries{source_area=\"edge\",target_area=\"core\"} 405",
                "fabric_link_state_export_compressed_entries{source_area=\"edge\",target_area=\"core\"} 406",
                "fabric_link_state_import_refused_entries_total{source_area=\"dmz\",target_area=\"core\"} 407",
                "fabric_link_state_updates_received_total 408",
                "fabric_link_state_updates_installed_total 409",
                "fabric_link_state_updates_duplicate_total 410",
                "fabric_link_state_updates_stale_total 411",
                "fabric_link_state_update_rejects_total{reason=\"area_mismatch\"} 412",
                "fabric_link_state_update_rejects_total{reason=\"bad_signature\"} 413",
                "fabric_link_state_update_rejects_total{reason=\"lsdb_full\"} 0",
                "fabric_link_state_area_mismatches_total{area=\"elsewhere\"} 412",
                "fabric_link_state_flushes_received_total 414",
                "fabric_link_state_entries_expired_total 415",
                "fabric_link_state_updates_originated_total 416",
                "fabric_link_state_updates_sent_total 418",
                "fabric_link_state_spf_runs_total 419",
                "fabric_link_state_spf_skipped_total 420",
                "fabric_link_state_route_changes_total 422",
                "fabric_link_state_unverified_signatures_accepted_total 423",
                "fabric_link_state_spf_duration_seconds_count 4",
            ] {
                assert!(has_line(&text, line), "{format:?}: missing {line:?} in:\n{text}");
            }
            let series = text.lines().filter(|l| l.starts_with("fabric_link_state_update_rejects_total{")).count();
            assert_eq!(series, UPDATE_REJECT_REASONS.len(), "{format:?}");
        }
    }

    #[test]
    fn spf_duration_histogram_uses_the_spf_buckets() {
        let text = render_full(&empty_snapshot(), &[], Some(&link_state_snapshot()), MetricsFormat::PrometheusText);
        let buckets: Vec<&str> =
            text.lines().filter(|l| l.starts_with("fabric_link_state_spf_duration_seconds_bucket{")).collect();
        assert_eq!(buckets.len(), SPF_DURATION_BUCKETS.len() + 1);
        // Observations 50 us, 300 us, 3 ms, 700 ms (above the last bound, 0.5 s).
        assert_eq!(buckets[0], "fabric_link_state_spf_duration_seconds_bucket{le=\"0.0001\"} 1");
        assert_eq!(
            buckets[SPF_DURATION_BUCKETS.len() - 1],
            "fabric_link_state_spf_duration_seconds_bucket{le=\"0.5\"} 3"
        );
        assert_eq!(buckets[SPF_DURATION_BUCKETS.len()], "fabric_link_state_spf_duration_seconds_bucket{le=\"+Inf\"} 4");
    }

    #[test]
    fn histogram_has_cumulative_buckets_inf_sum_and_count() {
        // Observations (ms): 0, 3, 7, 20, 20, 400, 1500, 90000 (above the last bound).
        let expected: [u64; 14] = [1, 2, 3, 5, 5, 5, 5, 6, 6, 7, 7, 7, 7, 7];
        let stats = populated_snapshot();
        assert_eq!(stats.convergence_seconds.buckets, expected, "fixture");
        // The formats spell bounds differently: OpenMetrics as floats, the
        // classic format like Go's client (whole numbers without `.0`).
        let om_le = [
            "0.0", "0.005", "0.01", "0.025", "0.05", "0.1", "0.25", "0.5", "1.0", "2.5", "5.0", "10.0", "30.0", "60.0",
        ];
        let text_le = ["0", "0.005", "0.01", "0.025", "0.05", "0.1", "0.25", "0.5", "1", "2.5", "5", "10", "30", "60"];
        for (format, le) in [(MetricsFormat::OpenMetrics, om_le), (MetricsFormat::PrometheusText, text_le)] {
            let text = render_with(&stats, &[], format);
            let buckets: Vec<&str> =
                text.lines().filter(|l| l.starts_with("fabric_convergence_seconds_bucket{")).collect();
            let mut want: Vec<String> = le
                .iter()
                .zip(expected)
                .map(|(le, count)| format!("fabric_convergence_seconds_bucket{{le=\"{le}\"}} {count}"))
                .collect();
            want.push("fabric_convergence_seconds_bucket{le=\"+Inf\"} 8".into());
            assert_eq!(buckets, want, "{format:?}");
            assert_line(&text, "fabric_convergence_seconds_count 8");
            let sum = text
                .lines()
                .find_map(|l| l.strip_prefix("fabric_convergence_seconds_sum "))
                .expect("a _sum line")
                .parse::<f64>()
                .expect("a float sum");
            assert!((sum - 91.95).abs() < 1e-9, "{format:?}: sum {sum}");
            assert!(type_lines(&text).contains(&("fabric_convergence_seconds", "histogram")), "{format:?}");
        }
    }

    #[test]
    fn histogram_of_an_empty_snapshot_is_all_zero() {
        for format in FORMATS {
            let text = render_with(&empty_snapshot(), &[], format);
            let buckets: Vec<&str> =
                text.lines().filter(|l| l.starts_with("fabric_convergence_seconds_bucket{")).collect();
            assert_eq!(buckets.len(), CONVERGENCE_BUCKETS.len() + 1, "{format:?}");
            assert!(buckets.iter().all(|l| l.ends_with(" 0")), "{format:?}: {buckets:?}");
            assert_line(&text, "fabric_convergence_seconds_bucket{le=\"+Inf\"} 0");
            assert_line(&text, "fabric_convergence_seconds_count 0");
        }
    }

    #[test]
    fn inconsistent_histogram_still_renders_monotonic_buckets() {
        let mut stats = empty_snapshot();
        stats.convergence_seconds = Histogram::from_parts(vec![5, 3], 4, 1.0);
        let text = render_with(&stats, &[], MetricsFormat::PrometheusText);
        let counts: Vec<u64> = text
            .lines()
            .filter(|l| l.starts_with("fabric_convergence_seconds_bucket{"))
            .map(|l| l.rsplit_once(' ').expect("value").1.parse().expect("integer"))
            .collect();
        assert!(counts.windows(2).all(|w| w[0] <= w[1]), "{counts:?}");
        assert_eq!(counts.last(), Some(&4));
    }

    #[test]
    fn classic_format_has_no_openmetrics_only_lines_and_counters_end_in_total() {
        let link_state = link_state_snapshot();
        let text = render_full(&populated_snapshot(), &peers(), Some(&link_state), MetricsFormat::PrometheusText);
        for line in text.lines() {
            assert!(!line.starts_with("# EOF"), "{line}");
            assert!(!line.starts_with("# UNIT"), "{line}");
            assert!(!line.contains("_created"), "{line}");
        }
        let types = type_lines(&text);
        assert!(types.iter().filter(|(_, kind)| *kind == "counter").count() >= 20);
        for (name, kind) in &types {
            assert!(matches!(*kind, "counter" | "gauge" | "histogram"), "{name} {kind}");
            assert_eq!(*kind == "counter", name.ends_with("_total"), "{name} is a {kind}");
        }
        assert!(types.contains(&("fabric_node_info", "gauge")));
        // HELP and TYPE name the same family, and every sample belongs to the
        // family declared last.
        let helps: Vec<&str> = text
            .lines()
            .filter_map(|l| l.strip_prefix("# HELP "))
            .map(|rest| rest.split_once(' ').expect("# HELP name text").0)
            .collect();
        assert_eq!(helps, types.iter().map(|(name, _)| *name).collect::<Vec<_>>());
        let mut family = ("", "");
        for line in text.lines() {
            if let Some(rest) = line.strip_prefix("# TYPE ") {
                family = rest.split_once(' ').expect("type");
            } else if !line.starts_with('#') {
                let name = line.split(['{', ' ']).next().expect("name");
                let ok = match family.1 {
                    "histogram" => ["_bucket", "_sum", "_count"].iter().any(|s| name == format!("{}{s}", family.0)),
                    _ => name == family.0,
                };
                assert!(ok, "sample {line:?} under family {family:?}");
            }
        }
    }

    #[test]
    fn openmetrics_format_ends_with_eof_and_declares_counters_without_total() {
        let link_state = link_state_snapshot();
        let text = render_full(&populated_snapshot(), &peers(), Some(&link_state), MetricsFormat::OpenMetrics);
        assert!(text.ends_with("\n# EOF\n"), "{text}");
        assert_eq!(text.matches("# EOF").count(), 1);
        let types = type_lines(&text);
        assert!(types.contains(&("fabric_routes_withdrawn", "counter")));
        assert!(types.contains(&("fabric_node", "info")));
        for (name, _) in &types {
            assert!(!name.ends_with("_total"), "{name}");
        }
        assert_line(&text, "# UNIT fabric_convergence_seconds seconds");
        assert_line(&text, "# UNIT fabric_link_state_spf_duration_seconds seconds");
    }

    #[test]
    fn family_names_are_unique() {
        // OpenMetrics forbids two families with one name, which a gauge and a
        // counter with the same stem (`routes_suppressed`) would be.
        let link_state = link_state_snapshot();
        let text = render_full(&empty_snapshot(), &[], Some(&link_state), MetricsFormat::OpenMetrics);
        let mut names: Vec<&str> = type_lines(&text).into_iter().map(|(name, _)| name).collect();
        let all = names.len();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), all);
    }

    #[test]
    fn node_info_escapes_labels_and_renders_a_missing_version_as_empty() {
        let stats = empty_snapshot();
        let input = MetricsInput {
            stats: &stats,
            peers: &[],
            node_id: "we\"ird\\id",
            config_version: None,
            config_applied_total: 1,
            config_rejected_total: 0,
            link_state: None,
            session_ends: &Default::default(),
        };
        for format in FORMATS {
            let text = render(&input, format);
            assert_line(&text, r#"fabric_node_info{node_id="we\"ird\\id",config_version=""} 1"#);
        }
    }

    #[test]
    fn peer_families_keep_their_metadata_without_peers() {
        let text = render_with(&empty_snapshot(), &[], MetricsFormat::PrometheusText);
        assert_line(&text, "# TYPE fabric_peer_session_up gauge");
        assert_line(&text, "# TYPE fabric_peer_session_failures_total counter");
        assert!(!text.contains("fabric_peer_session_up{"));
    }

    #[test]
    fn docs_match_the_metric_table() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/metrics.md");
        let docs = std::fs::read_to_string(path).expect("docs/metrics.md");
        let (sidecar, rest) = docs.split_once("\n## Operator\n").expect("an Operator section");
        let otlp = rest.split_once("\n## OTLP export\n").expect("an OTLP export section").1;
        let otlp = otlp.split_once("\n### Metrics\n").expect("a Metrics part of the OTLP export section").1;
        // The operator's instruments follow in a part of their own.
        let otlp = otlp.split_once("\n### ").map_or(otlp, |(sidecar, _)| sidecar);
        let defs: Vec<Def> =
            NODE_METRICS.iter().map(|m| m.def).chain(LINK_STATE_METRICS.iter().map(|m| m.def)).collect();
        let problems = fabric_io::metric_table::docs_mismatches(&defs, PREFIX, sidecar, Some(otlp));
        assert!(problems.is_empty(), "docs/metrics.md disagrees with the metric table:\n{}", problems.join("\n"));
    }

    /// `(labels sorted by name, value)` of every sample named `name`.
    fn samples(text: &str, name: &str) -> Vec<(Vec<(String, String)>, f64)> {
        text.lines()
            .filter(|l| !l.starts_with('#'))
            .filter_map(|l| {
                let (series, value) = l.rsplit_once(' ')?;
                let (sample, labels) =
                    series.split_once('{').map_or((series, ""), |(n, rest)| (n, rest.trim_end_matches('}')));
                (sample == name).then_some((labels, value))
            })
            .map(|(labels, value)| {
                let mut pairs: Vec<(String, String)> = labels
                    .split(',')
                    .filter(|pair| !pair.is_empty())
                    .map(|pair| {
                        let (key, value) = pair.split_once('=').expect("label=value");
                        (key.to_owned(), value.trim_matches('"').to_owned())
                    })
                    .collect();
                pairs.sort();
                (pairs, value.parse().expect("a number"))
            })
            .collect()
    }

    #[test]
    fn every_prometheus_family_has_otlp_instruments_with_the_same_help_and_values() {
        struct Owned {
            stats: StatsSnapshot,
            peers: Vec<PeerMetrics>,
            link_state: LinkStateSnapshot,
            session_ends: BTreeMap<&'static str, u64>,
        }
        let owned = std::sync::Arc::new(Owned {
            stats: populated_snapshot(),
            peers: peers(),
            link_state: link_state_snapshot(),
            session_ends: BTreeMap::from([("eof", 5), ("rate_limited", 6)]),
        });
        fn input(o: &Owned) -> MetricsInput<'_> {
            MetricsInput {
                stats: &o.stats,
                peers: &o.peers,
                node_id: "node-a",
                config_version: Some("v7"),
                config_applied_total: 301,
                config_rejected_total: 302,
                link_state: Some(&o.link_state),
                session_ends: &o.session_ends,
            }
        }
        let text = render(&input(&owned), MetricsFormat::PrometheusText);
        let points = fabric_io::metric_table::collect_otlp(|meter| {
            let node = owned.clone();
            fabric_io::metric_table::register_otlp(meter, NODE_METRICS, move |read: &NodeRead| {
                Some(read(&input(&node)))
            });
            let link_state = owned.clone();
            fabric_io::metric_table::register_otlp(meter, LINK_STATE_METRICS, move |read: &LinkStateRead| {
                Some(read(&link_state.link_state))
            });
        });

        let defs: Vec<Def> =
            NODE_METRICS.iter().map(|m| m.def).chain(LINK_STATE_METRICS.iter().map(|m| m.def)).collect();
        let rendered: Vec<&str> = type_lines(&text).into_iter().map(|(name, _)| name).collect();
        let from_table: Vec<String> = defs.iter().map(|def| def.prometheus_family(PREFIX)).collect();
        assert_eq!(rendered, from_table, "the rendered families are the table's, in its order");

        let helps: BTreeMap<&str, &str> = text
            .lines()
            .filter_map(|l| l.strip_prefix("# HELP "))
            .map(|rest| rest.split_once(' ').expect("# HELP name text"))
            .collect();
        let mut checked = 0;
        for def in &defs {
            let family = def.prometheus_family(PREFIX);
            let help = helps[family.as_str()].strip_suffix('.').expect("help ends with a full stop");
            let Some(otlp) = def.otlp_name else {
                assert_eq!(def.kind, Kind::Info, "{family} has no OTLP name");
                continue;
            };
            let instrument = |name: &str| -> Vec<&fabric_io::metric_table::OtlpPoint> {
                points.iter().filter(|p| p.metric == name).collect()
            };
            let same_points = |otlp_name: &str, prometheus_sample: &str| {
                let mut otlp_points: Vec<(Vec<(String, String)>, f64)> =
                    instrument(otlp_name).iter().map(|p| (p.attributes.clone(), p.value)).collect();
                let mut prometheus = samples(&text, prometheus_sample);
                otlp_points.sort_by(|a, b| a.0.cmp(&b.0));
                prometheus.sort_by(|a, b| a.0.cmp(&b.0));
                assert_eq!(otlp_points, prometheus, "{otlp_name} vs {prometheus_sample}");
            };
            if let Kind::Histogram { .. } = def.kind {
                for (suffix, sample) in [("count", "_count"), ("time", "_sum")] {
                    let name = format!("{otlp}.{suffix}");
                    let first = instrument(&name);
                    assert!(!first.is_empty(), "no {name}");
                    assert!(first[0].description.starts_with(help), "{name}: {:?} vs {help:?}", first[0].description);
                    same_points(&name, &format!("{family}{sample}"));
                }
            } else {
                let first = instrument(otlp);
                assert!(!first.is_empty(), "no OTLP points for {otlp} ({family})");
                assert_eq!(first[0].description, help, "{otlp} vs {family}");
                assert_eq!(first[0].unit, def.unit, "{otlp}");
                same_points(otlp, &family);
            }
            checked += 1;
        }
        assert_eq!(checked, defs.len() - 1, "every family but fabric_node_info");
    }
}
