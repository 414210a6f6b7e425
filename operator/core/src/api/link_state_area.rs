//! `LinkStateArea`: one link-state area: which sidecars are members, its
//! parents in the area graph (a hierarchy, or any acyclic graph), the
//! summary filters of its area border routers, ECMP and compression caps,
//! and the routing mode its members use.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::filter::{MAX_NAME_LENGTH, pattern_list};
use super::rules;
use super::status::LinkStateAreaStatus;

/// Most parents or summary filters of one area.
pub const MAX_AREA_REFERENCES: u32 = 32;

// kube's `printcolumn(...)` repeats `type_ = ...` by design; clippy reads that as
// duplicated attributes.
#[allow(clippy::duplicated_attributes)]
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[kube(
    group = "routing.fabric.dev",
    version = "v1alpha1",
    kind = "LinkStateArea",
    plural = "linkstateareas",
    shortname = "lsarea",
    category = "fabric",
    namespaced,
    status = "LinkStateAreaStatus",
    derive = "PartialEq",
    doc = "A link-state area: members, parent areas, ABR summary filters, ECMP and routing mode.",
    printcolumn(name = "Area", type_ = "string", json_path = ".spec.areaId"),
    printcolumn(name = "Mode", type_ = "string", json_path = ".spec.mode"),
    printcolumn(name = "ECMP", type_ = "integer", json_path = ".spec.ecmpMaxPaths"),
    printcolumn(name = "Accepted", type_ = "string", json_path = ".status.conditions[?(@.type==\"Accepted\")].status"),
    printcolumn(name = "Selected", type_ = "integer", json_path = ".status.selectedSidecars"),
    printcolumn(name = "Age", type_ = "date", json_path = ".metadata.creationTimestamp")
)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = [
    {"rule": rules::AREA_NOT_OWN_PARENT.rule, "message": rules::AREA_NOT_OWN_PARENT.message},
    {"rule": rules::SUMMARY_TARGET_IS_SELF_OR_PARENT.rule, "message": rules::SUMMARY_TARGET_IS_SELF_OR_PARENT.message}
]))]
pub struct LinkStateAreaSpec {
    /// The area's id, unique within the namespace.
    #[schemars(length(min = 1, max = MAX_NAME_LENGTH))]
    pub area_id: String,
    /// Routing mode of the member sidecars. Default `PathVector`
    /// (link-state runs but does not forward).
    #[serde(default)]
    pub mode: RoutingMode,
    /// Sidecars (pods) of this namespace that belong to the area.
    pub member_selector: LabelSelector,
    /// Areas this area's destinations are summarized into, by border
    /// routers that are members of both.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = MAX_AREA_REFERENCES), inner(length(min = 1, max = MAX_NAME_LENGTH)))]
    #[schemars(extend("x-kubernetes-validations" = [{
        "rule": rules::AREA_PARENTS_UNIQUE.rule,
        "message": rules::AREA_PARENTS_UNIQUE.message
    }]))]
    pub parents: Vec<String>,
    /// What border routers let into a target area (this area or a parent).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = MAX_AREA_REFERENCES))]
    #[schemars(extend("x-kubernetes-validations" = [{
        "rule": rules::SUMMARY_TARGETS_UNIQUE.rule,
        "message": rules::SUMMARY_TARGETS_UNIQUE.message
    }]))]
    pub summary_filters: Vec<SummaryFilterSpec>,
    /// Most equal-cost next hops kept per destination, 1 to 64. Default 4.
    #[serde(default = "default_ecmp_max_paths")]
    #[schemars(extend("x-kubernetes-validations" = [{
        "rule": rules::AREA_ECMP_RANGE.rule,
        "message": rules::AREA_ECMP_RANGE.message
    }]))]
    pub ecmp_max_paths: u32,
    /// Summary compression: most entries exported from this area into each
    /// parent. Default no cap.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub max_summary_entries: Option<u32>,
}

fn default_ecmp_max_paths() -> u32 {
    4
}

/// Which protocol answers next-hop queries on member sidecars.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, JsonSchema)]
pub enum RoutingMode {
    /// Path-vector only; link-state is informational.
    #[default]
    PathVector,
    /// Link-state where SPF reaches the destination, path-vector elsewhere.
    PreferLinkState,
    /// Link-state only.
    LinkStateOnly,
}

/// What enters `targetArea` from its child areas.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SummaryFilterSpec {
    #[schemars(length(min = 1, max = MAX_NAME_LENGTH))]
    pub target_area: String,
    /// When set, only summaries of these source areas enter.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = MAX_AREA_REFERENCES), inner(length(min = 1, max = MAX_NAME_LENGTH)))]
    pub allow_source_areas: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = MAX_AREA_REFERENCES), inner(length(min = 1, max = MAX_NAME_LENGTH)))]
    pub deny_source_areas: Vec<String>,
    /// When set, only these destinations (patterns) enter.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "pattern_list")]
    pub allow_destinations: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(schema_with = "pattern_list")]
    pub deny_destinations: Vec<String>,
}

impl SummaryFilterSpec {
    /// A filter for `target_area` that lets everything through.
    pub fn new(target_area: impl Into<String>) -> Self {
        Self {
            target_area: target_area.into(),
            allow_source_areas: None,
            deny_source_areas: Vec::new(),
            allow_destinations: None,
            deny_destinations: Vec::new(),
        }
    }
}
