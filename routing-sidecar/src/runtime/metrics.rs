//! The sidecar's `/metrics`: a scrape-time rendering of the engine's
//! [`StatsSnapshot`], the link-state router's [`LinkStateSnapshot`] (when
//! link-state is on) and the runtime's peer and config state with
//! `prometheus-client`.
//!
//! The engine keeps the real counters; this module only formats them. Every
//! render builds a fresh [`Registry`] from the snapshot it is given, so the
//! output is exactly the snapshot (no second copy of the counters that could
//! drift) and series come out in a fixed order.
//!
//! Either exposition format (`fabric_io::prometheus`, negotiated on the
//! request's `Accept` header) comes from the same registry. See
//! `docs/metrics.md` for the list of metrics.

pub use fabric_io::prometheus::MetricsFormat;
use fabric_io::prometheus::{ConstHistogram, Labels, counters, encode, gauges};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::info::Info;
use prometheus_client::registry::{Registry, Unit};

use fabric_core::stats::{CONVERGENCE_BUCKETS, Histogram, RejectReason, StatsSnapshot};
use fabric_link_state::UpdateRejectReason;
use fabric_link_state::stats::{DurationHistogram, SPF_DURATION_BUCKETS};
use fabric_link_state::{AreaId, ExportCounts, LinkStateSnapshot};

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
    pub session_ends: &'a std::collections::BTreeMap<&'static str, u64>,
}

/// Renders the metrics in the given format.
pub fn render(input: &MetricsInput<'_>, format: MetricsFormat) -> String {
    encode(&registry(input), format)
}

/// From the snapshot's cumulative histogram over `CONVERGENCE_BUCKETS`.
fn convergence_histogram(histogram: &Histogram) -> ConstHistogram {
    ConstHistogram::from_cumulative(CONVERGENCE_BUCKETS, &histogram.buckets, histogram.count, histogram.sum_seconds)
}

/// From the link-state SPF duration histogram over `SPF_DURATION_BUCKETS`.
fn spf_histogram(histogram: &DurationHistogram) -> ConstHistogram {
    ConstHistogram::from_cumulative(SPF_DURATION_BUCKETS, &histogram.buckets, histogram.count, histogram.sum_seconds)
}

fn reason_series(by_label: &std::collections::BTreeMap<&'static str, u64>) -> Vec<(Labels, u64)> {
    // Every reason, zero when unseen: the snapshot only lists the seen ones.
    RejectReason::ALL
        .iter()
        .map(|reason| (vec![("reason", reason.label().to_owned())], by_label.get(reason.label()).copied().unwrap_or(0)))
        .collect()
}

fn peer_series(peers: &[PeerMetrics], value: impl Fn(&PeerMetrics) -> u64) -> Vec<(Labels, u64)> {
    peers.iter().map(|peer| (vec![("peer", peer.peer.clone())], value(peer))).collect()
}

/// Builds the registry for one render. Names are registered without the
/// `fabric_` prefix (the registry adds it) and counters without `_total`
/// (the encoders add it); help texts get a final `.` from the registry.
fn registry(input: &MetricsInput<'_>) -> Registry {
    let s = input.stats;
    let mut r = Registry::with_prefix(PREFIX);
    let counter =
        |r: &mut Registry, name: &str, help: &str, value: u64| r.register(name, help, ConstCounter::new(value));
    let gauge = |r: &mut Registry, name: &str, help: &str, value: u64| r.register(name, help, ConstGauge::new(value));

    r.register(
        "node",
        "Identity of this node and the version of the config in force (empty when the config has none); value always 1",
        Info::new([
            ("node_id", input.node_id.to_owned()),
            ("config_version", input.config_version.unwrap_or_default().to_owned()),
        ]),
    );

    // Routing table gauges.
    gauge(&mut r, "routes_active", "Destinations with a selected best route", s.routes_active_total);
    gauge(&mut r, "route_candidates_stored", "Candidate routes stored, eligible or not", s.candidates_stored);
    gauge(
        &mut r,
        "routes_held_down",
        "Candidate routes currently ineligible because their (destination, next hop) is held down",
        s.routes_held_down,
    );
    gauge(
        &mut r,
        "routes_suppressed_now",
        "Candidate routes currently ineligible because flap dampening suppresses them",
        s.routes_suppressed_now,
    );

    // Route lifecycle counters.
    counter(
        &mut r,
        "routes_withdrawn",
        "Routes removed because their advertiser withdrew them or the neighbor went away",
        s.routes_withdrawn_total,
    );
    counter(&mut r, "routes_expired", "Routes removed because their TTL ran out", s.routes_expired_total);
    counter(
        &mut r,
        "routes_purged_stale",
        "Routes of a restarted neighbor purged because it did not refresh them within its restart window",
        s.routes_purged_stale_total,
    );
    counter(
        &mut r,
        "routes_suppressed",
        "Times flap dampening started suppressing a (destination, advertiser)",
        s.routes_suppressed_total,
    );
    counter(
        &mut r,
        "routes_reused",
        "Times a suppression ended and the route could be used again",
        s.routes_reused_total,
    );
    counter(
        &mut r,
        "best_path_changes",
        "Changes of a destination's selected best route, losing it included",
        s.best_path_changes_total,
    );

    // Announcements and withdrawals.
    counter(&mut r, "announcements_received", "Route announcements received", s.announcements_received);
    counter(
        &mut r,
        "announcements_accepted",
        "Announcements that became usable routes, and stored routes that became usable again when a hold-down or suppression ended",
        s.announcements_accepted,
    );
    r.register(
        "announcement_rejects",
        "Announcements and withdrawals not used, by reason; every reason is always present",
        counters(reason_series(&s.announcement_rejects_total)),
    );
    r.register(
        "dry_run_rejects",
        "Announcements accepted that an import policy in dry-run mode would have rejected, by reason; every reason is always present",
        counters(reason_series(&s.dry_run_rejects_total)),
    );
    r.register(
        "session_ends",
        "Connections to peers that ended, established or not, by reason; every reason is always present",
        counters(
            fabric_core::session::SESSION_END_REASONS
                .iter()
                .map(|reason| {
                    (vec![("reason", (*reason).to_owned())], input.session_ends.get(reason).copied().unwrap_or(0))
                })
                .collect::<Vec<(Labels, u64)>>(),
        ),
    );
    r.register(
        "export_refusals",
        "Best routes not advertised to neighbors, by reason (path_limit: with this node added the path would exceed limits.maxPathLength, so a neighbor with the same limits would refuse it)",
        counters(
            s.export_refusals_total.iter().map(|(reason, n)| (vec![("reason", (*reason).to_owned())], *n)).collect::<Vec<(Labels, u64)>>(),
        ),
    );
    counter(
        &mut r,
        "hold_down_rejects",
        "Announcements stored but not used because their (destination, next hop) is held down; also counted under announcement_rejects_total{reason=hold_down}",
        s.hold_down_rejects,
    );
    counter(&mut r, "withdrawals_received", "Route withdrawals received", s.withdrawals_received);
    counter(&mut r, "withdrawals_applied", "Route withdrawals that removed a stored route", s.withdrawals_applied);
    counter(
        &mut r,
        "messages_sent",
        "Messages (announcements, withdrawals, end-of-table markers) queued for neighbors",
        s.messages_sent_total,
    );

    // Signatures.
    counter(
        &mut r,
        "signatures_verified",
        "Signatures verified as valid by computation (cache hits not included)",
        s.signatures_verified_total,
    );
    counter(
        &mut r,
        "signature_cache_hits",
        "Signatures found already verified in the verification cache",
        s.signature_cache_hits_total,
    );
    counter(
        &mut r,
        "unverified_signatures_accepted",
        "Signed messages accepted unverified: the key is unknown and signatures are not required",
        s.unverified_signatures_accepted_total,
    );
    counter(
        &mut r,
        "v1_messages_accepted",
        "Announcements and withdrawals accepted without a signed issue time (protocol v1)",
        s.v1_messages_accepted_total,
    );

    // Convergence.
    r.register_with_unit(
        "convergence",
        "Time a destination went without a usable route: from losing its last one to having a new best route",
        Unit::Seconds,
        convergence_histogram(&s.convergence_seconds),
    );

    // Configuration.
    counter(&mut r, "config_applied", "Configs put in force, the startup config included", input.config_applied_total);
    counter(
        &mut r,
        "config_rejected",
        "Configs refused (from the file, on reload or through the API); the previous config stayed in force",
        input.config_rejected_total,
    );
    counter(
        &mut r,
        "engine_config_reloads",
        "Live config changes applied by the routing engine",
        s.config_reloads_total,
    );
    counter(
        &mut r,
        "engine_config_rejects",
        "Live config changes refused by the routing engine",
        s.config_rejects_total,
    );

    // Peers.
    r.register(
        "peer_session_up",
        "Whether a session with the peer is established (1) or not (0)",
        gauges(peer_series(input.peers, |p| u64::from(p.established))),
    );
    r.register(
        "peer_sessions_established",
        "Sessions established with the peer",
        counters(peer_series(input.peers, |p| p.sessions_established_total)),
    );
    r.register(
        "peer_session_failures",
        "Established sessions with the peer that went down",
        counters(peer_series(input.peers, |p| p.session_failures_total)),
    );
    r.register(
        "peer_routes_received",
        "Routes currently stored from the peer",
        gauges(peer_series(input.peers, |p| p.routes_received)),
    );
    r.register_with_unit(
        "peer_send_queue",
        "Bytes (wire size) queued for the peer and not yet written; never above session.maxQueuedBytes",
        Unit::Bytes,
        gauges(peer_series(input.peers, |p| p.send_queue_bytes)),
    );

    if let Some(link_state) = input.link_state {
        register_link_state(&mut r, link_state);
    }
    r
}

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

fn update_reject_series(by_label: &std::collections::BTreeMap<&'static str, u64>) -> Vec<(Labels, u64)> {
    // Every reason, zero when unseen, as for path-vector rejects.
    UPDATE_REJECT_REASONS
        .iter()
        .map(|reason| (vec![("reason", reason.label().to_owned())], by_label.get(reason.label()).copied().unwrap_or(0)))
        .collect()
}

fn area_series<V: Copy + Into<u64>>(by_area: &std::collections::BTreeMap<AreaId, V>) -> Vec<(Labels, u64)> {
    by_area.iter().map(|(area, value)| (vec![("area", area.to_string())], (*value).into())).collect()
}

fn area_pair_labels(source_area: &AreaId, target_area: &AreaId) -> Labels {
    vec![("source_area", source_area.to_string()), ("target_area", target_area.to_string())]
}

fn export_series(snapshot: &LinkStateSnapshot, count: fn(&ExportCounts) -> u64) -> Vec<(Labels, u64)> {
    snapshot
        .summary_exports
        .iter()
        .map(|stat| (area_pair_labels(&stat.source_area, &stat.target_area), count(&stat.counts)))
        .collect()
}

/// The `link_state_*` families, from the router's snapshot.
fn register_link_state(r: &mut Registry, s: &LinkStateSnapshot) {
    let counter = |r: &mut Registry, name: &str, help: &str, value: u64| {
        r.register(format!("link_state_{name}"), help, ConstCounter::new(value))
    };
    let lsdb_entries: std::collections::BTreeMap<AreaId, u64> =
        s.lsdb_entries.iter().map(|(area, entries)| (area.clone(), *entries as u64)).collect();
    r.register(
        "link_state_lsdb_entries",
        "Origins stored in the link-state database of each area this node is in, flush tombstones included",
        gauges(area_series(&lsdb_entries)),
    );
    r.register(
        "link_state_routes_active",
        "Destinations with a link-state route",
        ConstGauge::new(s.routes_active as u64),
    );
    counter(r, "updates_received", "Link-state updates received from neighbors", s.updates_received_total);
    counter(
        r,
        "updates_installed",
        "Received link-state updates stored as the newest of their origin",
        s.updates_installed_total,
    );
    counter(
        r,
        "updates_duplicate",
        "Received link-state updates already stored (the normal end of flooding)",
        s.updates_duplicate_total,
    );
    counter(
        r,
        "updates_stale",
        "Received link-state updates older than the stored one; the stored copy was sent back",
        s.updates_stale_total,
    );
    r.register(
        "link_state_update_rejects",
        "Link-state updates refused, by reason; every reason is always present",
        counters(update_reject_series(&s.update_rejects_total)),
    );
    r.register(
        "link_state_area_mismatches",
        "Link-state updates refused because this node is not in their area or they came over a link of another area, by the area they named",
        counters(area_series(&s.area_mismatches_total)),
    );
    counter(r, "updates_originated", "Link-state updates this node made of its own links", s.updates_originated_total);
    counter(
        r,
        "updates_sent",
        "Link-state updates queued for neighbors (flooding and database exchange)",
        s.updates_sent_total,
    );
    counter(
        r,
        "flushes_received",
        "Withdrawn (flushed) link-state updates received and stored",
        s.flushes_received_total,
    );
    counter(
        r,
        "entries_expired",
        "Link-state database entries removed because their TTL ran out",
        s.entries_expired_total,
    );
    counter(r, "spf_runs", "Shortest-path-first runs, one per area whose links changed", s.spf_runs_total);
    counter(
        r,
        "spf_skipped",
        "Link-state database changes that changed no link, so SPF was not run",
        s.spf_skipped_total,
    );
    counter(
        r,
        "spf_deferred",
        "Link-state changes whose route computation the SPF throttle scheduled for later",
        s.spf_deferred_total,
    );
    counter(
        r,
        "spf_coalesced",
        "Link-state changes that joined a route computation already scheduled by the SPF throttle",
        s.spf_coalesced_total,
    );
    r.register_with_unit(
        "link_state_spf_duration",
        "Wall time of the router calls that ran SPF, route table rebuild included",
        Unit::Seconds,
        spf_histogram(&s.spf_duration_seconds),
    );
    counter(r, "route_changes", "Link-state routes added, changed or removed", s.route_changes_total);
    r.register(
        "link_state_exported_entries",
        "Summary entries this node exports as an area border router, by source and target area",
        gauges(export_series(s, |counts| counts.exported)),
    );
    r.register(
        "link_state_export_filtered_entries",
        "Summary entries a summary filter keeps this node from exporting, by source and target area",
        gauges(export_series(s, |counts| counts.filtered)),
    );
    r.register(
        "link_state_export_compressed_entries",
        "Summary entries left out of this node's exports by maxSummaryEntries, by source and target area",
        gauges(export_series(s, |counts| counts.compressed)),
    );
    r.register(
        "link_state_import_refused_entries",
        "Summary entries received that this node does not use (filtered, or not flowing up the area graph), by source and target area",
        counters(
            s.summary_entries_refused
                .iter()
                .map(|refusal| (area_pair_labels(&refusal.source_area, &refusal.target_area), refusal.refused)),
        ),
    );
    counter(
        r,
        "unverified_signatures_accepted",
        "Signed link-state updates accepted unverified: the key is unknown and linkState.requireSignatures is false",
        s.unverified_signatures_accepted_total,
    );
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::time::Duration;

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
        let mut spf = DurationHistogram::default();
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
        stats.convergence_seconds = Histogram { buckets: vec![5, 3], count: 4, sum_seconds: 1.0 };
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
    fn docs_list_every_metric() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/metrics.md");
        let docs = std::fs::read_to_string(path).expect("docs/metrics.md");
        let link_state = link_state_snapshot();
        let text = render_full(&empty_snapshot(), &[], Some(&link_state), MetricsFormat::PrometheusText);
        for (name, _) in type_lines(&text) {
            assert!(docs.contains(&format!("`{name}`")), "docs/metrics.md does not document `{name}`");
        }
    }
}
