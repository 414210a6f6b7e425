//! `NeighborPolicy`: for the sidecars it selects, which neighbors they
//! peer with (by node id, or every sidecar matching a selector), the link
//! cost to each, per-neighbor import and export filters, and whether routes
//! are advertised to that neighbor at all (export targeting).

use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::filter::{MAX_NAME_LENGTH, PolicyMode, RouteFilter, is_default};
use super::rules;
use super::status::NeighborPolicyStatus;

/// Most neighbor entries in one NeighborPolicy.
pub const MAX_NEIGHBOR_ENTRIES: u32 = 256;

// kube's `printcolumn(...)` repeats `type_ = ...` by design; clippy reads that as
// duplicated attributes.
#[allow(clippy::duplicated_attributes)]
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[kube(
    group = "routing.fabric.dev",
    version = "v1alpha1",
    kind = "NeighborPolicy",
    plural = "neighborpolicies",
    shortname = "npol",
    category = "fabric",
    namespaced,
    status = "NeighborPolicyStatus",
    derive = "PartialEq",
    doc = "Neighbors of the selected sidecars, with per-neighbor link cost, import/export filters and export targeting.",
    printcolumn(name = "Mode", type_ = "string", json_path = ".spec.mode"),
    printcolumn(name = "Accepted", type_ = "string", json_path = ".status.conditions[?(@.type==\"Accepted\")].status"),
    printcolumn(name = "Selected", type_ = "integer", json_path = ".status.selectedSidecars"),
    printcolumn(name = "Applied", type_ = "integer", json_path = ".status.appliedSidecars"),
    printcolumn(name = "Age", type_ = "date", json_path = ".metadata.creationTimestamp")
)]
#[serde(rename_all = "camelCase")]
pub struct NeighborPolicySpec {
    /// Sidecars (pods) of this namespace that get these neighbors; `{}`
    /// selects all.
    pub sidecar_selector: LabelSelector,
    /// Applies to the import and export filters of this object.
    #[serde(default)]
    pub mode: PolicyMode,
    #[schemars(length(max = MAX_NEIGHBOR_ENTRIES))]
    #[schemars(extend("x-kubernetes-validations" = [{
        "rule": rules::NEIGHBOR_NODE_IDS_UNIQUE.rule,
        "message": rules::NEIGHBOR_NODE_IDS_UNIQUE.message
    }]))]
    pub neighbors: Vec<NeighborSpec>,
}

/// One neighbor, or a group of neighbors chosen by label.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(transform = without_server_defaults)]
#[schemars(extend("x-kubernetes-validations" = [
    {"rule": rules::NEIGHBOR_NODE_ID_XOR_SELECTOR.rule, "message": rules::NEIGHBOR_NODE_ID_XOR_SELECTOR.message},
    {"rule": rules::NEIGHBOR_EXPORT_NEEDS_ADVERTISE.rule, "message": rules::NEIGHBOR_EXPORT_NEEDS_ADVERTISE.message}
]))]
pub struct NeighborSpec {
    /// A node id; need not belong to a known sidecar (the neighbor is then
    /// configured without an address, so only it can dial in).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = MAX_NAME_LENGTH))]
    pub node_id: Option<String>,
    /// Every sidecar of this namespace matching it (except the configured
    /// sidecar itself).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub selector: Option<LabelSelector>,
    /// Cost of the link, added to every route learned over it.
    #[serde(default, skip_serializing_if = "is_default")]
    pub link: LinkSpec,
    /// Replaces the RoutePolicy import filter for routes from this neighbor.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub import: Option<RouteFilter>,
    /// Replaces the RoutePolicy export filter for routes sent to this neighbor.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub export: Option<RouteFilter>,
    /// Export targeting: `false` makes the neighbor receive-only (no routes
    /// are advertised to it; withdrawals still are). Default true.
    #[serde(default = "yes")]
    pub advertise: bool,
}

fn yes() -> bool {
    true
}

/// Drops `default` from the schema of a neighbor entry and everything in
/// it. `neighbors` is an atomic list: defaults the API server filled into
/// its items made every client-side `kubectl apply` of an unchanged object
/// see a different list and report `configured`. The defaults still hold:
/// the compiler reads absent fields with the same serde defaults.
fn without_server_defaults(schema: &mut schemars::Schema) {
    fn strip(value: &mut serde_json::Value) {
        match value {
            serde_json::Value::Object(map) => {
                map.remove("default");
                map.values_mut().for_each(strip);
            }
            serde_json::Value::Array(items) => items.iter_mut().for_each(strip),
            _ => {}
        }
    }
    if let Some(properties) = schema.get_mut("properties") {
        strip(properties);
    }
}

/// Link metrics; defaults cost 1, latency 0, reliability 1.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct LinkSpec {
    /// Added to the path cost of routes learned over the link. Default 1.
    #[serde(default = "one")]
    pub cost: u32,
    /// Latency in microseconds (the `Latency` tie-breaker). Default 0.
    #[serde(default)]
    pub latency_us: u32,
    /// Between 0 and 1 (the `Reliability` tie-breaker). Default 1.
    #[serde(default = "full")]
    #[schemars(range(min = 0.0, max = 1.0))]
    pub reliability: f64,
}

fn one() -> u32 {
    1
}
fn full() -> f64 {
    1.0
}

impl Default for LinkSpec {
    fn default() -> Self {
        Self { cost: 1, latency_us: 0, reliability: 1.0 }
    }
}

impl NeighborSpec {
    /// A neighbor by node id with default link and filters.
    pub fn node(node_id: impl Into<String>) -> Self {
        Self {
            node_id: Some(node_id.into()),
            selector: None,
            link: LinkSpec::default(),
            import: None,
            export: None,
            advertise: true,
        }
    }

    /// Neighbors by label selector with default link and filters.
    pub fn selected(selector: LabelSelector) -> Self {
        Self { node_id: None, selector: Some(selector), ..Self::node("") }
    }
}
