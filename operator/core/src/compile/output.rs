//! What the compiler produces: one config per sidecar, conditions per
//! object, problems, and which objects shaped which sidecars. All of it is
//! ordered (`BTreeMap`, sorted `Vec`s) so that serializing it is
//! deterministic byte for byte.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use fabric_core::NodeId;
use fabric_core::SidecarConfig;
use fabric_core::link_state::{AreaId, LinkStateConfig};
use serde::Serialize;

use crate::api::{Condition, ConditionStatus};
use crate::index::{NamespacedName, ObjectKey, ObjectKind};

/// Everything one sidecar is sent, link-state included, and where it came
/// from.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CompiledSidecar {
    /// Valid (`SidecarConfig::validate` passed); `version` is its content
    /// hash (see [`CompiledSidecar::version`]).
    pub config: SidecarConfig,
    /// The objects that shaped this config (for status roll-ups).
    pub sources: BTreeSet<ObjectKey>,
    /// The config as sent (JSON, which the sidecar reads as YAML):
    /// serialized once per compile, not once per push.
    #[serde(skip)]
    pub text: std::sync::Arc<str>,
}

impl CompiledSidecar {
    /// The content hash the distributor uses as the config version: the
    /// first 16 hex digits of the SHA-256 of the config's JSON with the
    /// version field unset (`compile/text.rs`).
    pub fn version(&self) -> &str {
        self.config.version.as_deref().unwrap_or_default()
    }

    /// The link-state section, when the sidecar is in at least one area.
    pub fn link_state(&self) -> Option<&LinkStateConfig> {
        self.config.link_state.as_ref()
    }

    /// The areas the sidecar is a member of.
    pub fn link_state_areas(&self) -> Vec<&AreaId> {
        self.config.link_state_areas.iter().map(|m| &m.area).collect()
    }
}

/// Every condition type the operator writes. The compiler decides all but
/// `Applied`, which comes from the roll-up of ACKs (`crate::sync_status`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub enum ConditionType {
    /// The object is valid and compiled (False: invalid or refused).
    Accepted,
    /// It collides with another object; the message names it and the winner.
    Conflict,
    /// NeighborPolicy only: a nodeId neighbor is not a known sidecar.
    NeighborNotFound,
    /// It compiled, but part of it is ignored (area cycle, unknown area,
    /// a refused key) or a sidecar it shapes got no valid config.
    Degraded,
    /// How many selected sidecars run the current config (False: a NACK).
    Applied,
}

impl ConditionType {
    pub fn as_str(self) -> &'static str {
        match self {
            ConditionType::Accepted => "Accepted",
            ConditionType::Conflict => "Conflict",
            ConditionType::NeighborNotFound => "NeighborNotFound",
            ConditionType::Degraded => "Degraded",
            ConditionType::Applied => "Applied",
        }
    }
}

/// A condition as the compiler decides it; the status writer adds the
/// transition time.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ConditionSpec {
    #[serde(rename = "type")]
    pub type_: ConditionType,
    pub status: ConditionStatus,
    pub reason: String,
    pub message: String,
    /// The object's `metadata.generation` this was computed from.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// Other objects named in the message.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub related: Vec<ObjectKey>,
}

impl ConditionSpec {
    /// True when this condition means something is wrong: not accepted, in
    /// conflict, degraded. `NeighborNotFound` is a warning (a neighbor
    /// outside the cluster is legitimate).
    pub fn is_error(&self) -> bool {
        match self.type_ {
            ConditionType::Accepted => self.status != ConditionStatus::True,
            ConditionType::Conflict | ConditionType::Degraded => self.status == ConditionStatus::True,
            ConditionType::NeighborNotFound => false,
            ConditionType::Applied => self.status == ConditionStatus::False,
        }
    }

    /// True when the condition reports something (an error or a warning).
    pub fn is_notable(&self) -> bool {
        self.is_error() || (self.type_ == ConditionType::NeighborNotFound && self.status == ConditionStatus::True)
    }

    /// The API condition, stamped with `last_transition_time` (RFC 3339).
    pub fn to_condition(&self, last_transition_time: impl Into<String>) -> Condition {
        Condition {
            type_: self.type_.as_str().to_owned(),
            status: self.status,
            reason: self.reason.clone(),
            message: self.message.clone(),
            last_transition_time: last_transition_time.into(),
            observed_generation: self.observed_generation,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Error,
    Warning,
}

/// Something the operator wants a human to know, not tied to a condition:
/// an invalid object field, a sidecar without valid config, a duplicate
/// node id.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Problem {
    pub severity: Severity,
    /// The object at fault (a Pod for sidecar problems).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub object: Option<ObjectKey>,
    /// The sidecar concerned, when there is one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sidecar: Option<NodeId>,
    /// Path of the field at fault.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
    pub message: String,
    /// Other objects involved.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub related: Vec<ObjectKey>,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let severity = match self.severity {
            Severity::Error => "error",
            Severity::Warning => "warning",
        };
        write!(f, "{severity}:")?;
        if let Some(object) = &self.object {
            write!(f, " {object}:")?;
        }
        if let Some(sidecar) = &self.sidecar {
            write!(f, " sidecar {sidecar}:")?;
        }
        if let Some(field) = &self.field {
            write!(f, " {field}:")?;
        }
        write!(f, " {}", self.message)?;
        if !self.related.is_empty() {
            let related: Vec<String> = self.related.iter().map(ToString::to_string).collect();
            write!(f, " (involving {})", related.join(", "))?;
        }
        Ok(())
    }
}

/// The result of one compilation.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Compilation {
    /// One entry per sidecar with a valid config. A sidecar whose config
    /// failed validation has no entry (its last good config stays in force)
    /// and a problem says why.
    pub sidecars: BTreeMap<NodeId, CompiledSidecar>,
    /// For every indexed object: the compiler-owned conditions, sorted by type.
    pub conditions: BTreeMap<ObjectKey, Vec<ConditionSpec>>,
    /// Sorted by severity, object, sidecar, field, message.
    pub problems: Vec<Problem>,
    /// Which sidecars each object shaped (the `selectedSidecars` count).
    pub contributions: BTreeMap<ObjectKey, BTreeSet<NodeId>>,
}

impl Compilation {
    /// The config compiled for node `node_id` if it was compiled for pod
    /// `pod`: a pod that claims a node id it was not compiled for (refused
    /// by the identity rules, or unknown to the index) has none.
    pub fn for_pod(&self, node_id: &NodeId, pod: &NamespacedName) -> Option<&CompiledSidecar> {
        self.sidecars.get(node_id).filter(|compiled| compiled.sources.contains(&ObjectKey::new(ObjectKind::Pod, pod)))
    }

    /// Error-level problems and conditions (what makes `analyze` exit 1).
    pub fn has_errors(&self) -> bool {
        self.problems.iter().any(|p| p.severity == Severity::Error)
            || self.conditions.values().flatten().any(ConditionSpec::is_error)
    }

    /// The conditions of one object of one type.
    pub fn condition(&self, object: &ObjectKey, type_: ConditionType) -> Option<&ConditionSpec> {
        self.conditions.get(object)?.iter().find(|c| c.type_ == type_)
    }

    /// The whole result as YAML (deterministic).
    pub fn to_yaml(&self) -> Result<String, serde_norway::Error> {
        serde_norway::to_string(self)
    }
}
