//! From ACKs to status: [`rollup`] turns the compilation and the
//! distribution state into the `Applied` condition, `selectedSidecars`,
//! `appliedSidecars` and `nacks` of every RoutePolicy, NeighborPolicy and
//! LinkStateArea (like Istio's `Reconciled` "N/M"), and [`sidecars`] into a
//! per-sidecar view like `istioctl proxy-status`. Pure functions over the
//! per-sidecar state the distributor keeps; the admin HTTP server and the
//! cluster status writer both serve them.

use std::collections::BTreeMap;

use fabric_core::NodeId;
use serde::Serialize;

use crate::api::{Condition, ConditionStatus, SidecarNack};
use crate::compile::{Compilation, ConditionType};
use crate::index::{NamespacedName, ObjectKey, ObjectKind, SidecarInfo};

/// A refused snapshot.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct NackInfo {
    pub version: String,
    pub field: String,
    pub message: String,
}

/// What the operator knows of one sidecar's config.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SidecarState {
    pub node_id: NodeId,
    pub peer_address: String,
    pub connected: bool,
    /// Version and nonce pushed on the current stream (none yet on it).
    pub sent_version: Option<String>,
    #[serde(skip)]
    pub sent_nonce: Option<String>,
    /// The last version the sidecar acknowledged (or reported running in its
    /// Hello: resume).
    pub acked_version: Option<String>,
    /// The version the sidecar says it runs.
    pub applied_version: Option<String>,
    /// The last refusal, cleared by the next ACK.
    pub last_nack: Option<NackInfo>,
}

impl SidecarState {
    /// Sidecar `info` as it connects (`connected`) reporting that it runs
    /// `applied` (taken as acknowledged: a resume), or as it is known from
    /// a previous run (not connected); nothing sent on its stream yet.
    pub fn new(info: &SidecarInfo, connected: bool, applied: Option<String>) -> Self {
        Self {
            node_id: info.node_id.clone(),
            peer_address: info.peer_address.clone().unwrap_or_default(),
            connected,
            sent_version: None,
            sent_nonce: None,
            acked_version: applied.clone(),
            applied_version: applied,
            last_nack: None,
        }
    }
}

#[cfg(any(test, feature = "fixtures"))]
impl SidecarState {
    /// A connected sidecar of node `node` that acknowledged `acked` and
    /// last refused `nack` (for the roll-up and status tests).
    pub fn connected_for_test(node: &str, acked: Option<&str>, nack: Option<NackInfo>) -> Self {
        Self {
            node_id: NodeId::from(node),
            peer_address: String::new(),
            connected: true,
            sent_version: None,
            sent_nonce: None,
            acked_version: acked.map(str::to_string),
            applied_version: acked.map(str::to_string),
            last_nack: nack,
        }
    }
}

/// The per-sidecar state, keyed by sidecar (namespace/name); what
/// [`rollup`] reads.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DistributionState {
    pub sidecars: BTreeMap<NamespacedName, SidecarState>,
}

/// The `Applied` condition of one object.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AppliedCondition {
    pub status: ConditionStatus,
    /// `Applied`, `Pending`, `Nacked`, `NotAccepted`.
    pub reason: String,
    /// `2/3 sidecars on current version; NACKed by ...`.
    pub message: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
}

impl AppliedCondition {
    pub fn to_condition(&self, last_transition_time: impl Into<String>) -> Condition {
        Condition {
            type_: ConditionType::Applied.as_str().into(),
            status: self.status,
            reason: self.reason.clone(),
            message: self.message.clone(),
            last_transition_time: last_transition_time.into(),
            observed_generation: self.observed_generation,
        }
    }
}

/// Rollout of one object to the sidecars it shapes.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AppliedStatus {
    pub selected_sidecars: u32,
    /// Selected sidecars that acknowledged their current compiled version
    /// (which contains this object's current generation).
    pub applied_sidecars: u32,
    /// Selected sidecars that refused their current version (`sidecar` is
    /// the node id).
    pub nacks: Vec<SidecarNack>,
    pub applied: AppliedCondition,
}

/// The kinds that shape configs and so report `Applied`.
fn reports_applied(kind: ObjectKind) -> bool {
    matches!(kind, ObjectKind::RoutePolicy | ObjectKind::NeighborPolicy | ObjectKind::LinkStateArea)
}

/// The sidecar (by smallest namespace/name, the compiler's rule for
/// duplicate node ids) with this node id.
fn sidecar_of<'a>(state: &'a DistributionState, node: &NodeId) -> Option<(&'a NamespacedName, &'a SidecarState)> {
    state.sidecars.iter().find(|(_, s)| &s.node_id == node)
}

/// `Applied` for every RoutePolicy, NeighborPolicy and LinkStateArea the
/// compilation knows.
pub fn rollup(compilation: &Compilation, state: &DistributionState) -> BTreeMap<ObjectKey, AppliedStatus> {
    let mut out = BTreeMap::new();
    for object in compilation.conditions.keys().filter(|k| reports_applied(k.kind)) {
        let accepted = compilation.condition(object, ConditionType::Accepted);
        let observed_generation = accepted.and_then(|c| c.observed_generation);
        if accepted.is_none_or(|c| c.status != ConditionStatus::True) {
            let applied = AppliedCondition {
                status: ConditionStatus::False,
                reason: "NotAccepted".into(),
                message: "not accepted, so not distributed".into(),
                observed_generation,
            };
            out.insert(
                object.clone(),
                AppliedStatus { selected_sidecars: 0, applied_sidecars: 0, nacks: vec![], applied },
            );
            continue;
        }
        let selected = compilation.contributions.get(object).cloned().unwrap_or_default();
        let mut applied_count = 0u32;
        let mut nacks = Vec::new();
        let mut nacked_by = Vec::new();
        for node in &selected {
            let current = compilation.sidecars.get(node).map(|c| c.version());
            let Some((name, sidecar)) = sidecar_of(state, node) else { continue };
            if current.is_some() && sidecar.acked_version.as_deref() == current {
                applied_count += 1;
            } else if let Some(nack) = sidecar.last_nack.as_ref().filter(|n| Some(n.version.as_str()) == current) {
                let error = format!("{}: {}", nack.field, nack.message);
                nacked_by.push(format!("{name} (node {node}): {error}"));
                nacks.push(SidecarNack { sidecar: node.to_string(), version: nack.version.clone(), error });
            }
        }
        let total = selected.len() as u32;
        let mut message = format!("{applied_count}/{total} sidecars on current version");
        if !nacked_by.is_empty() {
            message.push_str(&format!("; NACKed by {}", nacked_by.join("; ")));
        }
        let (status, reason) = if applied_count == total {
            (ConditionStatus::True, "Applied")
        } else if !nacks.is_empty() {
            (ConditionStatus::False, "Nacked")
        } else {
            (ConditionStatus::False, "Pending")
        };
        let applied = AppliedCondition { status, reason: reason.into(), message, observed_generation };
        out.insert(
            object.clone(),
            AppliedStatus { selected_sidecars: total, applied_sidecars: applied_count, nacks, applied },
        );
    }
    out
}

/// `istioctl proxy-status`-style sync state of one sidecar.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub enum SyncState {
    /// Acknowledged the current version.
    #[serde(rename = "SYNCED")]
    Synced,
    /// Refused the current version (runs an older one).
    #[serde(rename = "NACKED")]
    Nacked,
    /// Sent (or due) but not acknowledged yet, or disconnected behind.
    #[serde(rename = "STALE")]
    Stale,
    /// No valid config compiled for it: nothing to send.
    #[serde(rename = "NOT SENT")]
    NotSent,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SidecarSync {
    pub sidecar: String,
    #[serde(flatten)]
    pub state: SidecarState,
    pub current_version: Option<String>,
    pub sync: SyncState,
}

/// Every sidecar that said Hello, with its sync state.
pub fn sidecars(compilation: &Compilation, state: &DistributionState) -> Vec<SidecarSync> {
    state
        .sidecars
        .iter()
        .map(|(name, sidecar)| {
            let current = compilation.for_pod(&sidecar.node_id, name).map(|c| c.version().to_string());
            let sync = match &current {
                None => SyncState::NotSent,
                Some(v) if sidecar.acked_version.as_ref() == Some(v) => SyncState::Synced,
                Some(v) if sidecar.last_nack.as_ref().is_some_and(|n| &n.version == v) => SyncState::Nacked,
                Some(_) => SyncState::Stale,
            };
            SidecarSync { sidecar: name.to_string(), state: sidecar.clone(), current_version: current, sync }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::compile::compile;
    use crate::manifests::{Manifests, load_text};

    const FABRIC: &str = r#"
apiVersion: routing.fabric.dev/v1alpha1
kind: RoutePolicy
metadata: {name: p, namespace: fabric}
spec: {sidecarSelector: {matchLabels: {mesh: test}}}
---
apiVersion: v1
kind: Pod
metadata: {name: a, namespace: fabric, labels: {mesh: test}, annotations: {routing.fabric.dev/peer-address: "127.0.0.1:1"}}
---
apiVersion: v1
kind: Pod
metadata: {name: b, namespace: fabric, labels: {mesh: test}, annotations: {routing.fabric.dev/peer-address: "127.0.0.1:2"}}
"#;

    #[test]
    fn rollup_counts_current_acks_and_names_nacks() {
        let mut manifests = Manifests::default();
        load_text(&mut manifests, Path::new("fabric.yaml"), FABRIC);
        let compilation = compile(&manifests.index);
        let version = |node: &str| compilation.sidecars[&NodeId::from(node)].version().to_string();
        let nack = NackInfo { version: version("b"), field: "nodeId".into(), message: "refused".into() };
        let mut state = DistributionState::default();
        state.sidecars.insert(
            NamespacedName::new("fabric", "a"),
            SidecarState::connected_for_test("a", Some(&version("a")), None),
        );
        state
            .sidecars
            .insert(NamespacedName::new("fabric", "b"), SidecarState::connected_for_test("b", Some("old"), Some(nack)));

        let policy = ObjectKey { kind: ObjectKind::RoutePolicy, namespace: "fabric".into(), name: "p".into() };
        let rollups = rollup(&compilation, &state);
        let status = &rollups[&policy];
        assert_eq!((status.selected_sidecars, status.applied_sidecars), (2, 1));
        assert_eq!(status.applied.status, ConditionStatus::False);
        assert_eq!(status.applied.reason, "Nacked");
        assert_eq!(
            status.applied.message,
            "1/2 sidecars on current version; NACKed by fabric/b (node b): nodeId: refused"
        );
        assert_eq!(
            status.nacks,
            vec![SidecarNack { sidecar: "b".into(), version: version("b"), error: "nodeId: refused".into() }]
        );
        assert_eq!(status.applied.to_condition("2025-01-01T00:00:00Z").type_, "Applied");

        let sync: Vec<SyncState> = sidecars(&compilation, &state).iter().map(|s| s.sync).collect();
        assert_eq!(sync, vec![SyncState::Synced, SyncState::Nacked]);

        // Once b acknowledges its current version: Applied 2/2.
        let b = state.sidecars.get_mut(&NamespacedName::new("fabric", "b")).unwrap();
        b.acked_version = Some(version("b"));
        b.last_nack = None;
        let status = &rollup(&compilation, &state)[&policy];
        assert_eq!(
            (status.applied.status, status.applied.message.as_str()),
            (ConditionStatus::True, "2/2 sidecars on current version")
        );
    }
}
