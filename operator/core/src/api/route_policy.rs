//! `RoutePolicy`: the global routing policy of the sidecars it selects:
//! import and export filters, tie-breaker order, security, stability and
//! dry-run mode. One policy applies per sidecar: the highest priority wins
//! (see `docs/crds.md`, "Conflict resolution").

use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::filter::{MAX_NAME_LENGTH, PolicyMode, RouteFilter, is_default};
use super::rules;
use super::status::RoutePolicyStatus;
use crate::api::duration::GoDuration;

// kube's `printcolumn(...)` repeats `type_ = ...` by design; clippy reads that as
// duplicated attributes.
#[allow(clippy::duplicated_attributes)]
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[kube(
    group = "routing.fabric.dev",
    version = "v1alpha1",
    kind = "RoutePolicy",
    plural = "routepolicies",
    shortname = "rpol",
    category = "fabric",
    namespaced,
    status = "RoutePolicyStatus",
    derive = "PartialEq",
    doc = "Routing policy (import/export filters, tie-breakers, security, stability) for the sidecars it selects.",
    printcolumn(name = "Priority", type_ = "integer", json_path = ".spec.priority"),
    printcolumn(name = "Mode", type_ = "string", json_path = ".spec.mode"),
    printcolumn(name = "Accepted", type_ = "string", json_path = ".status.conditions[?(@.type==\"Accepted\")].status"),
    printcolumn(name = "Selected", type_ = "integer", json_path = ".status.selectedSidecars"),
    printcolumn(name = "Applied", type_ = "integer", json_path = ".status.appliedSidecars"),
    printcolumn(name = "Age", type_ = "date", json_path = ".metadata.creationTimestamp")
)]
#[serde(rename_all = "camelCase")]
pub struct RoutePolicySpec {
    /// Sidecars (pods) of this namespace the policy applies to; `{}` selects all.
    pub sidecar_selector: LabelSelector,
    /// Higher wins when several policies select one sidecar. Equal
    /// priorities are a conflict (the smaller namespace/name wins).
    #[serde(default)]
    pub priority: i32,
    /// `DryRun` reports what the import and export filters would reject
    /// (metrics and events) but accepts it.
    #[serde(default)]
    pub mode: PolicyMode,
    /// Which routes received from neighbors are accepted (neighbors with a
    /// NeighborPolicy import filter use that instead).
    #[serde(default, skip_serializing_if = "is_default")]
    pub import: RouteFilter,
    /// Which routes are advertised to neighbors (neighbors with a
    /// NeighborPolicy export filter use that instead).
    #[serde(default, skip_serializing_if = "is_default")]
    pub export: RouteFilter,
    /// Order of comparisons after the path cost; default
    /// `[HopCount, Latency, Reliability, Advertiser]`. The engine always
    /// ends with the advertiser id, so the order is total.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 4))]
    #[schemars(extend("x-kubernetes-validations" = [{
        "rule": rules::TIE_BREAKERS_UNIQUE.rule,
        "message": rules::TIE_BREAKERS_UNIQUE.message
    }]))]
    pub tie_breakers: Option<Vec<TieBreaker>>,
    #[serde(default, skip_serializing_if = "is_default")]
    pub security: SecuritySpec,
    #[serde(default, skip_serializing_if = "is_default")]
    pub stability: StabilitySpec,
}

/// A comparison between two routes of equal path cost.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, JsonSchema)]
pub enum TieBreaker {
    /// Fewer hops wins.
    HopCount,
    /// Lower accumulated latency wins.
    Latency,
    /// Higher reliability wins.
    Reliability,
    /// Lexicographically lower advertiser id wins.
    Advertiser,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SecuritySpec {
    /// Reject unsigned announcements and signatures by unknown keys (the
    /// trusted keys come from the RouteKeys). A bad signature is always
    /// rejected.
    #[serde(default)]
    pub require_signatures: bool,
    /// When set, only these advertisers (node ids) are accepted at all.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 1024), inner(length(min = 1, max = MAX_NAME_LENGTH)))]
    #[schemars(extend("x-kubernetes-list-type" = "set"))]
    pub allowed_advertisers: Option<Vec<String>>,
    /// Sign announcements and withdrawals as protocol v1 (no issue time),
    /// while sidecars that verify only v1 are in the fabric: step 1 of a
    /// rolling upgrade (docs/protocol.md, "Versions of the signed encoding").
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub sign_v1: bool,
    /// Refuse announcements and withdrawals without a signed issue time
    /// (v1), so none can be replayed after its tombstone expired. Set once
    /// fabric_v1_messages_accepted_total stays 0.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub refuse_v1_messages: bool,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct StabilitySpec {
    /// After a withdrawal, routes for the same (destination, next hop) are
    /// held back this long. Default none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hold_down: Option<GoDuration>,
    /// Flap dampening (RFC 2439 style); present means enabled unless
    /// `enabled: false`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dampening: Option<DampeningSpec>,
}

/// Flap dampening per (destination, advertiser). Defaults follow RFC 2439:
/// penalties 1000 per withdrawal and 500 per attribute change, suppress at
/// 2000, reuse below 750, half-life 15m, at most 1h suppressed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = [
    {"rule": rules::DAMPENING_REUSE_BELOW_SUPPRESS.rule, "message": rules::DAMPENING_REUSE_BELOW_SUPPRESS.message},
    {"rule": rules::DAMPENING_HALF_LIFE_POSITIVE.rule, "message": rules::DAMPENING_HALF_LIFE_POSITIVE.message},
    {
        "rule": rules::DAMPENING_MAX_SUPPRESS_AT_LEAST_HALF_LIFE.rule,
        "message": rules::DAMPENING_MAX_SUPPRESS_AT_LEAST_HALF_LIFE.message
    }
]))]
pub struct DampeningSpec {
    #[serde(default = "yes")]
    pub enabled: bool,
    #[serde(default = "default_withdrawal_penalty")]
    pub withdrawal_penalty: u32,
    #[serde(default = "default_attribute_change_penalty")]
    pub attribute_change_penalty: u32,
    #[serde(default = "default_suppress_threshold")]
    #[schemars(range(min = 1))]
    pub suppress_threshold: u32,
    #[serde(default = "default_reuse_threshold")]
    #[schemars(range(min = 1))]
    pub reuse_threshold: u32,
    #[serde(default = "default_half_life")]
    pub half_life: GoDuration,
    #[serde(default = "default_max_suppress")]
    pub max_suppress: GoDuration,
}

fn yes() -> bool {
    true
}
fn default_withdrawal_penalty() -> u32 {
    1000
}
fn default_attribute_change_penalty() -> u32 {
    500
}
fn default_suppress_threshold() -> u32 {
    2000
}
fn default_reuse_threshold() -> u32 {
    750
}
fn default_half_life() -> GoDuration {
    GoDuration::new("15m")
}
fn default_max_suppress() -> GoDuration {
    GoDuration::new("1h")
}

impl Default for DampeningSpec {
    fn default() -> Self {
        Self {
            enabled: true,
            withdrawal_penalty: default_withdrawal_penalty(),
            attribute_change_penalty: default_attribute_change_penalty(),
            suppress_threshold: default_suppress_threshold(),
            reuse_threshold: default_reuse_threshold(),
            half_life: default_half_life(),
            max_suppress: default_max_suppress(),
        }
    }
}
