//! Counters kept by the engine and the snapshot it hands out. Metric names
//! match the plan's (`routes_active_total`, `announcement_rejects_total`...)
//! so the IO layer can export them one to one.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Serialize;

use crate::ids::DestinationId;

macro_rules! reject_reasons {
    ($($variant:ident => $label:literal, $doc:literal;)*) => {
        /// Why an announcement or withdrawal was not used. The label is the
        /// value of `reason` in `announcement_rejects_total{reason}`.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
        #[serde(rename_all = "snake_case")]
        pub enum RejectReason {
            $(#[doc = $doc] $variant,)*
        }

        impl RejectReason {
            pub const ALL: &'static [RejectReason] = &[$(RejectReason::$variant,)*];
            pub const COUNT: usize = Self::ALL.len();

            pub fn label(self) -> &'static str {
                match self {
                    $(RejectReason::$variant => $label,)*
                }
            }

            pub fn describe(self) -> &'static str {
                match self {
                    $(RejectReason::$variant => $doc,)*
                }
            }
        }
    };
}

reject_reasons! {
    Malformed => "malformed", "the frame did not decode or broke a decoder limit";
    Unsigned => "unsigned", "no signature while signatures are required";
    UnknownKey => "unknown_key", "signed with a key id the registry does not know for this advertiser";
    KeyNotYetValid => "key_not_yet_valid", "signed with a key whose validity window has not started";
    KeyExpired => "key_expired", "signed with a key whose validity window has ended";
    BadSignature => "bad_signature", "the signature does not verify";
    UnauthorizedAdvertiser => "unauthorized_advertiser", "the advertiser is not in security.allowedAdvertisers";
    AdvertiserMismatch => "advertiser_mismatch", "the advertiser is not the sending neighbor or not the first hop of the path";
    UnknownNeighbor => "unknown_neighbor", "received from a node that is not a configured neighbor";
    LoopDetected => "loop_detected", "this node is already in the path";
    InvalidPath => "invalid_path", "empty path, repeated hop, or hop count not equal to path length";
    InvalidMetrics => "invalid_metrics", "reliability outside [0, 1] or not a number";
    InvalidTtl => "invalid_ttl", "TTL of zero";
    StaleEpoch => "stale_epoch", "epoch older than one already seen from this advertiser for this destination";
    EpochReuse => "epoch_reuse", "same epoch as the stored route but different content";
    PolicyAdvertiser => "policy_advertiser", "import policy rejects the advertiser";
    PolicyOrigin => "policy_origin", "import policy rejects the origin";
    PolicyDestination => "policy_destination", "import policy rejects the destination";
    PolicyTag => "policy_tag", "import policy rejects the tags";
    PolicyHopCount => "policy_hop_count", "import policy rejects the path length";
    HoldDown => "hold_down", "the (destination, next hop) is held down after a withdrawal";
    Suppressed => "suppressed", "flap dampening suppresses this (destination, advertiser)";
    NeighborRouteLimit => "neighbor_route_limit", "the neighbor already has maxRoutesPerNeighbor routes stored";
    V1Message => "v1_message", "no signed issue time (protocol v1) while security.refuseV1Messages is true";
    StaleIssueTime => "stale_issue_time", "issued longer ago than timers.maxTtl minus security.maxClockSkew (a replay)";
    FutureIssueTime => "future_issue_time", "issued more than security.maxClockSkew in the future";
}

pub use crate::histogram::Histogram;

/// Upper bounds (seconds) of the convergence histogram buckets.
pub const CONVERGENCE_BUCKETS: &[f64] =
    &[0.0, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0];

/// The buckets of `convergence_seconds`: [`CONVERGENCE_BUCKETS`].
pub enum Convergence {}

impl crate::histogram::Buckets for Convergence {
    const BOUNDS: &'static [f64] = CONVERGENCE_BUCKETS;
}

/// Monotonic counters. Gauges (routes active, candidates stored) are
/// computed when a snapshot is taken.
#[derive(Clone, Debug, Default)]
pub struct Counters {
    pub announcements_received: u64,
    pub announcements_accepted: u64,
    pub announcement_rejects: [u64; RejectReason::COUNT],
    /// Rejections a dry-run policy reported but did not enforce.
    pub dry_run_rejects: [u64; RejectReason::COUNT],
    /// Best routes not advertised because their path, with this node added,
    /// would exceed `limits.maxPathLength`: a neighbor with the same limits
    /// would refuse the announcement (counted once per destination and
    /// flush, whatever the number of neighbors).
    pub exports_over_path_limit: u64,
    /// Best routes not advertised because their announcement would take
    /// more than `limits.maxMessageBytes`: the neighbor would refuse the
    /// frame (counted once per destination and flush).
    pub exports_over_frame_limit: u64,
    pub withdrawals_received: u64,
    pub withdrawals_applied: u64,
    pub routes_withdrawn: u64,
    pub routes_expired: u64,
    pub routes_purged_stale: u64,
    pub routes_suppressed: u64,
    pub routes_reused: u64,
    pub hold_down_rejects: u64,
    pub best_path_changes: u64,
    pub messages_sent: u64,
    pub config_reloads: u64,
    pub config_rejects: u64,
    pub signatures_verified: u64,
    pub signature_cache_hits: u64,
    pub unverified_signatures_accepted: u64,
    /// Announcements and withdrawals without a signed issue time (protocol
    /// v1) that were accepted.
    pub v1_messages_accepted: u64,
    pub convergence: Histogram<Convergence>,
}

impl Counters {
    pub fn reject(&mut self, reason: RejectReason) {
        self.announcement_rejects[reason as usize] += 1;
    }

    pub fn dry_run_reject(&mut self, reason: RejectReason) {
        self.dry_run_rejects[reason as usize] += 1;
    }

    pub fn rejects(&self, reason: RejectReason) -> u64 {
        self.announcement_rejects[reason as usize]
    }
}

fn by_label(counts: &[u64; RejectReason::COUNT]) -> BTreeMap<&'static str, u64> {
    RejectReason::ALL
        .iter()
        .filter(|reason| counts[**reason as usize] > 0)
        .map(|reason| (reason.label(), counts[*reason as usize]))
        .collect()
}

/// A point-in-time view of the engine's counters and gauges.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct StatsSnapshot {
    /// Destinations with a selected best route.
    pub routes_active_total: u64,
    /// Candidate routes stored, eligible or not.
    pub candidates_stored: u64,
    pub routes_held_down: u64,
    pub routes_suppressed_now: u64,
    pub announcements_received: u64,
    pub announcements_accepted: u64,
    pub announcement_rejects_total: BTreeMap<&'static str, u64>,
    pub dry_run_rejects_total: BTreeMap<&'static str, u64>,
    /// Routes not advertised, by reason (`path_limit`: the path with this
    /// node added is longer than `limits.maxPathLength`).
    pub export_refusals_total: BTreeMap<&'static str, u64>,
    pub withdrawals_received: u64,
    pub withdrawals_applied: u64,
    pub routes_withdrawn_total: u64,
    pub routes_expired_total: u64,
    pub routes_purged_stale_total: u64,
    pub routes_suppressed_total: u64,
    pub routes_reused_total: u64,
    pub hold_down_rejects: u64,
    pub best_path_changes_total: u64,
    pub messages_sent_total: u64,
    pub config_reloads_total: u64,
    pub config_rejects_total: u64,
    pub signatures_verified_total: u64,
    pub signature_cache_hits_total: u64,
    pub unverified_signatures_accepted_total: u64,
    pub v1_messages_accepted_total: u64,
    pub convergence_seconds: Histogram<Convergence>,
    /// Last measured convergence time per destination that has changed.
    pub last_convergence: BTreeMap<DestinationId, Duration>,
}

pub struct Gauges {
    pub routes_active: u64,
    pub candidates_stored: u64,
    pub held_down: u64,
    pub suppressed: u64,
}

impl StatsSnapshot {
    pub fn build(counters: &Counters, gauges: Gauges, last_convergence: BTreeMap<DestinationId, Duration>) -> Self {
        Self {
            routes_active_total: gauges.routes_active,
            candidates_stored: gauges.candidates_stored,
            routes_held_down: gauges.held_down,
            routes_suppressed_now: gauges.suppressed,
            announcements_received: counters.announcements_received,
            announcements_accepted: counters.announcements_accepted,
            announcement_rejects_total: by_label(&counters.announcement_rejects),
            dry_run_rejects_total: by_label(&counters.dry_run_rejects),
            export_refusals_total: BTreeMap::from([
                ("path_limit", counters.exports_over_path_limit),
                ("message_limit", counters.exports_over_frame_limit),
            ]),
            withdrawals_received: counters.withdrawals_received,
            withdrawals_applied: counters.withdrawals_applied,
            routes_withdrawn_total: counters.routes_withdrawn,
            routes_expired_total: counters.routes_expired,
            routes_purged_stale_total: counters.routes_purged_stale,
            routes_suppressed_total: counters.routes_suppressed,
            routes_reused_total: counters.routes_reused,
            hold_down_rejects: counters.hold_down_rejects,
            best_path_changes_total: counters.best_path_changes,
            messages_sent_total: counters.messages_sent,
            config_reloads_total: counters.config_reloads,
            config_rejects_total: counters.config_rejects,
            signatures_verified_total: counters.signatures_verified,
            signature_cache_hits_total: counters.signature_cache_hits,
            unverified_signatures_accepted_total: counters.unverified_signatures_accepted,
            v1_messages_accepted_total: counters.v1_messages_accepted,
            convergence_seconds: counters.convergence.clone(),
            last_convergence,
        }
    }
}
