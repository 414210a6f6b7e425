//! Status shapes shared by the CRDs. The compiler decides the conditions
//! (`crate::compile::ConditionSpec`); `crate::object_status` stamps them
//! with times and generations and fills the rollout counters from the
//! sidecars' ACKs and NACKs.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// `True`, `False` or `Unknown`, as in metav1.Condition.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, JsonSchema)]
pub enum ConditionStatus {
    True,
    False,
    #[default]
    Unknown,
}

/// Mirrors metav1.Condition (own type so that it derives `JsonSchema` and
/// `PartialEq` and keeps the time as the RFC 3339 text the API returns).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Condition {
    /// CamelCase kind of condition: `Accepted`, `Conflict`,
    /// `NeighborNotFound`, `Degraded`, `Applied`.
    #[serde(rename = "type")]
    pub type_: String,
    pub status: ConditionStatus,
    /// CamelCase machine-readable reason.
    pub reason: String,
    /// Human-readable details, naming the objects involved.
    #[serde(default)]
    pub message: String,
    /// RFC 3339 time of the last change of `status`.
    #[schemars(extend("format" = "date-time"))]
    pub last_transition_time: String,
    /// The `metadata.generation` this condition was computed from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
}

/// One sidecar that refused the config version compiled for it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SidecarNack {
    /// Node id of the sidecar.
    pub sidecar: String,
    /// The config version it refused.
    pub version: String,
    /// Its error text.
    pub error: String,
}

/// Status of the objects that shape sidecar configs (RoutePolicy,
/// NeighborPolicy, LinkStateArea): conditions plus the rollout summary
/// (`Applied` N/M, as Istio reports `Reconciled`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AppliedStatus {
    /// The `metadata.generation` last compiled.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["type"]))]
    pub conditions: Vec<Condition>,
    /// Sidecars whose compiled config this object contributes to.
    #[serde(default)]
    pub selected_sidecars: u32,
    /// Of those, sidecars that acknowledged a config version containing
    /// this object's current generation.
    #[serde(default)]
    pub applied_sidecars: u32,
    /// Sidecars that refused their config, with the reason.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub nacks: Vec<SidecarNack>,
}

pub(super) type RoutePolicyStatus = AppliedStatus;
pub(super) type NeighborPolicyStatus = AppliedStatus;
pub(super) type LinkStateAreaStatus = AppliedStatus;
