//! Counters of the link-state router and the snapshot it hands out for
//! `/metrics` and the link-state status view. Maps are `BTreeMap`s so the
//! snapshot serializes in the same order on every node.

use std::collections::BTreeMap;

use serde::Serialize;

use fabric_core::histogram::{Buckets, Histogram};
use fabric_core::link_state::area::{AreaPair, ExportCounts};
use fabric_core::link_state::area_id::AreaId;

/// Why a received update was not used. The label is the value of `reason`
/// in `link_state_update_rejects_total{reason}`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum UpdateRejectReason {
    /// The update names an area this node is not in, or came over a link
    /// that belongs to another area.
    AreaMismatch,
    /// The sender is not a neighbor of this node.
    UnknownNeighbor,
    /// Structurally invalid (limits, zero cost, duplicate neighbor...).
    Invalid,
    Unsigned,
    UnknownKey,
    KeyNotYetValid,
    KeyExpired,
    BadSignature,
    /// A new origin in an area already at `limits.maxLsdbEntriesPerArea`.
    LsdbFull,
}

impl UpdateRejectReason {
    pub fn label(self) -> &'static str {
        match self {
            UpdateRejectReason::AreaMismatch => "area_mismatch",
            UpdateRejectReason::UnknownNeighbor => "unknown_neighbor",
            UpdateRejectReason::Invalid => "invalid",
            UpdateRejectReason::Unsigned => "unsigned",
            UpdateRejectReason::UnknownKey => "unknown_key",
            UpdateRejectReason::KeyNotYetValid => "key_not_yet_valid",
            UpdateRejectReason::KeyExpired => "key_expired",
            UpdateRejectReason::BadSignature => "bad_signature",
            UpdateRejectReason::LsdbFull => "lsdb_full",
        }
    }
}

/// Upper bounds (seconds) of the SPF duration histogram buckets.
pub const SPF_DURATION_BUCKETS: &[f64] = &[0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5];

/// The buckets of `spf_duration_seconds`: [`SPF_DURATION_BUCKETS`].
pub enum SpfDuration {}

impl Buckets for SpfDuration {
    const BOUNDS: &'static [f64] = SPF_DURATION_BUCKETS;
}

/// Monotonic counters.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct LinkStateCounters {
    pub updates_received: u64,
    pub updates_installed: u64,
    /// Same sequence as stored: the normal end of flooding.
    pub updates_duplicate: u64,
    /// Older than stored; answered with the stored copy.
    pub updates_stale: u64,
    pub update_rejects: BTreeMap<UpdateRejectReason, u64>,
    /// Updates refused for area mismatch, by the area they named.
    pub area_mismatches: BTreeMap<AreaId, u64>,
    pub flushes_received: u64,
    pub entries_expired: u64,
    pub updates_originated: u64,
    /// Own sequence raised above a copy from an earlier life of this node.
    pub sequence_jumps: u64,
    pub updates_sent: u64,
    pub spf_runs: u64,
    /// The database changed but no link did, so SPF was not run.
    pub spf_skipped: u64,
    /// Heap pops over all SPF runs: a clock-free measure of SPF work.
    pub spf_heap_pops: u64,
    /// Changes whose route computation the SPF throttle scheduled for later
    /// (one per scheduled computation).
    pub spf_deferred: u64,
    /// Changes that joined an already scheduled computation.
    pub spf_coalesced: u64,
    /// SPF wall time, observed by the IO layer (the router reads no clock).
    pub spf_duration: Histogram<SpfDuration>,
    pub route_changes: u64,
    /// Signed updates accepted although their key is unknown (only while
    /// `requireSignatures` is false).
    pub unverified_signatures_accepted: u64,
    /// Summary entries a receiver refused (filters, or not flowing up the
    /// area graph), by (source area, target area).
    pub summary_entries_refused: BTreeMap<AreaPair, u64>,
    pub config_reloads: u64,
}

impl LinkStateCounters {
    pub fn reject(&mut self, reason: UpdateRejectReason) {
        *self.update_rejects.entry(reason).or_default() += 1;
    }

    pub fn rejects(&self, reason: UpdateRejectReason) -> u64 {
        self.update_rejects.get(&reason).copied().unwrap_or(0)
    }
}

/// Export counts of one (source area, target area) pair.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SummaryExportStat {
    pub source_area: AreaId,
    pub target_area: AreaId,
    #[serde(flatten)]
    pub counts: ExportCounts,
}

/// Gauges and counters at one point in time.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct LinkStateSnapshot {
    /// Stored origins per area, flush tombstones included.
    pub lsdb_entries: BTreeMap<AreaId, usize>,
    /// Fingerprint of each area's SPF graph: equal on every node of the area
    /// once flooding has converged.
    pub topology_fingerprints: BTreeMap<AreaId, String>,
    pub routes_active: usize,
    /// What this node currently exports, as a border router.
    pub summary_exports: Vec<SummaryExportStat>,
    pub summary_entries_refused: Vec<SummaryExportRefusal>,
    pub updates_received_total: u64,
    pub updates_installed_total: u64,
    pub updates_duplicate_total: u64,
    pub updates_stale_total: u64,
    pub update_rejects_total: BTreeMap<&'static str, u64>,
    pub area_mismatches_total: BTreeMap<AreaId, u64>,
    pub flushes_received_total: u64,
    pub entries_expired_total: u64,
    pub updates_originated_total: u64,
    pub sequence_jumps_total: u64,
    pub updates_sent_total: u64,
    pub spf_runs_total: u64,
    pub spf_skipped_total: u64,
    pub spf_heap_pops_total: u64,
    pub spf_deferred_total: u64,
    pub spf_coalesced_total: u64,
    #[serde(serialize_with = "Histogram::serialize_camel_case")]
    pub spf_duration_seconds: Histogram<SpfDuration>,
    pub route_changes_total: u64,
    pub unverified_signatures_accepted_total: u64,
    pub config_reloads_total: u64,
}

/// Receiver-side refusals of one (source area, target area) pair.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SummaryExportRefusal {
    pub source_area: AreaId,
    pub target_area: AreaId,
    pub refused: u64,
}

/// The parts of a snapshot that are gauges, computed by the router.
pub(crate) struct LinkStateGauges {
    pub lsdb_entries: BTreeMap<AreaId, usize>,
    pub topology_fingerprints: BTreeMap<AreaId, String>,
    pub routes_active: usize,
    pub exports: BTreeMap<AreaPair, ExportCounts>,
}

impl LinkStateSnapshot {
    pub(crate) fn build(counters: &LinkStateCounters, gauges: LinkStateGauges) -> Self {
        Self {
            lsdb_entries: gauges.lsdb_entries,
            topology_fingerprints: gauges.topology_fingerprints,
            routes_active: gauges.routes_active,
            summary_exports: gauges
                .exports
                .into_iter()
                .map(|(pair, counts)| SummaryExportStat {
                    source_area: pair.source_area,
                    target_area: pair.target_area,
                    counts,
                })
                .collect(),
            summary_entries_refused: counters
                .summary_entries_refused
                .iter()
                .map(|(pair, refused)| SummaryExportRefusal {
                    source_area: pair.source_area.clone(),
                    target_area: pair.target_area.clone(),
                    refused: *refused,
                })
                .collect(),
            updates_received_total: counters.updates_received,
            updates_installed_total: counters.updates_installed,
            updates_duplicate_total: counters.updates_duplicate,
            updates_stale_total: counters.updates_stale,
            update_rejects_total: counters.update_rejects.iter().map(|(r, n)| (r.label(), *n)).collect(),
            area_mismatches_total: counters.area_mismatches.clone(),
            flushes_received_total: counters.flushes_received,
            entries_expired_total: counters.entries_expired,
            updates_originated_total: counters.updates_originated,
            sequence_jumps_total: counters.sequence_jumps,
            updates_sent_total: counters.updates_sent,
            spf_runs_total: counters.spf_runs,
            spf_skipped_total: counters.spf_skipped,
            spf_heap_pops_total: counters.spf_heap_pops,
            spf_deferred_total: counters.spf_deferred,
            spf_coalesced_total: counters.spf_coalesced,
            spf_duration_seconds: counters.spf_duration.clone(),
            route_changes_total: counters.route_changes,
            unverified_signatures_accepted_total: counters.unverified_signatures_accepted,
            config_reloads_total: counters.config_reloads,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn histogram_buckets_are_cumulative() {
        let mut histogram = Histogram::<SpfDuration>::default();
        histogram.observe(Duration::from_micros(50));
        histogram.observe(Duration::from_millis(3));
        assert_eq!(histogram.count, 2);
        assert_eq!(histogram.buckets[0], 1);
        assert_eq!(histogram.buckets[SPF_DURATION_BUCKETS.len() - 1], 2);
        assert_eq!(histogram.buckets[4], 1, "3 ms is above 2.5 ms");
    }

    #[test]
    fn snapshot_serializes_the_spf_histogram_in_camel_case() {
        let mut counters = LinkStateCounters::default();
        counters.spf_duration.observe(Duration::from_millis(3));
        let gauges = LinkStateGauges {
            lsdb_entries: BTreeMap::new(),
            topology_fingerprints: BTreeMap::new(),
            routes_active: 0,
            exports: BTreeMap::new(),
        };
        let json = serde_json::to_value(LinkStateSnapshot::build(&counters, gauges)).expect("json");
        assert_eq!(
            json["spfDurationSeconds"],
            serde_json::json!({"buckets": [0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1], "count": 1, "sumSeconds": 0.003})
        );
    }
}
