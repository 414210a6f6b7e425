//! The status writer: the status of every CR, computed by the pure
//! [`status_updates`] from the compilation, the distribution roll-up
//! ([`fabric_operator_core::sync_status::rollup`]) and the status the CR has now,
//! then written by [`StatusWriter`] with server-side apply on the status
//! subresource, field manager `fabric-operator/status`.
//!
//! Ownership. The writer owns `observedGeneration` and the conditions
//! `Accepted`, `Conflict`, `NeighborNotFound`, `Degraded` and `Applied` of
//! every kind, plus `selectedSidecars`, `appliedSidecars` and `nacks` of
//! RoutePolicy, NeighborPolicy and LinkStateArea. A RouteKey's key fields
//! (`keys`, `activeKeyId`, `nextRotation`) belong to the key rotation (field
//! manager `fabric-operator/keys`) and are never in this writer's patches,
//! so the two never take fields from each other. Conditions of other types
//! (someone else's) are ignored when comparing.

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::api::core::v1::ObjectReference;
use kube::api::{Api, Patch, PatchParams};
use kube::{Client, Resource};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use super::events::{EventPublisher, EventSpec, events_for};
use super::lenient::Lenient;
use crate::distribution::DistributionState;
use fabric_operator_core::api::{
    AppliedStatus, Condition, ConditionStatus, LinkStateArea, NeighborPolicy, RouteKey, RouteKeyStatus, RoutePolicy,
    SidecarNack,
};
use fabric_operator_core::compile::{Compilation, ConditionSpec, ConditionType};
use fabric_operator_core::index::{Index, Indexed, NamespacedName, ObjectKey, ObjectKind};
use fabric_operator_core::names::API_VERSION;
use fabric_operator_core::sync_status::{self as status, AppliedStatus as Rollup};

/// The field manager of status writes.
pub const FIELD_MANAGER: &str = "fabric-operator/status";
/// The condition types this writer owns.
pub const OWNED_CONDITIONS: [&str; 5] = ["Accepted", "Conflict", "NeighborNotFound", "Degraded", "Applied"];

/// The rollout counters of the kinds that shape configs.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Rollout {
    pub selected_sidecars: u32,
    pub applied_sidecars: u32,
    /// Omitted when empty: the apply then removes the list this manager
    /// wrote before.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub nacks: Vec<SidecarNack>,
}

/// The status fields this writer owns, as written (the `status` of the
/// patch) and as read back from an object.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct OwnedStatus {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    pub conditions: Vec<Condition>,
    /// RoutePolicy, NeighborPolicy, LinkStateArea only.
    #[serde(flatten)]
    pub rollout: Option<Rollout>,
}

fn owned_conditions(conditions: &[Condition]) -> Vec<Condition> {
    conditions.iter().filter(|c| OWNED_CONDITIONS.contains(&c.type_.as_str())).cloned().collect()
}

impl OwnedStatus {
    /// The owned part of a RoutePolicy/NeighborPolicy/LinkStateArea status.
    pub fn of_applied(status: Option<&AppliedStatus>) -> Self {
        let Some(status) = status else { return Self::default() };
        Self {
            observed_generation: status.observed_generation,
            conditions: owned_conditions(&status.conditions),
            rollout: Some(Rollout {
                selected_sidecars: status.selected_sidecars,
                applied_sidecars: status.applied_sidecars,
                nacks: status.nacks.clone(),
            }),
        }
    }

    /// The owned part of a RouteKey status (not the keys).
    pub fn of_route_key(status: Option<&RouteKeyStatus>) -> Self {
        let Some(status) = status else { return Self::default() };
        Self {
            observed_generation: status.observed_generation,
            conditions: owned_conditions(&status.conditions),
            rollout: None,
        }
    }

    /// Equal for the API: the condition list is a map keyed by type, so
    /// its order does not matter.
    pub fn same_as(&self, other: &Self) -> bool {
        fn sorted(conditions: &[Condition]) -> Vec<&Condition> {
            let mut list: Vec<&Condition> = conditions.iter().collect();
            list.sort_by(|a, b| a.type_.cmp(&b.type_));
            list
        }
        self.observed_generation == other.observed_generation
            && self.rollout == other.rollout
            && sorted(&self.conditions) == sorted(&other.conditions)
    }
}

/// A status to write, and the events its transitions deserve.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StatusUpdate {
    pub object: ObjectKey,
    pub status: OwnedStatus,
    pub events: Vec<EventSpec>,
}

/// The status every object of `compilation` should have, for those whose
/// `current` status differs. `current` holds the objects that exist (an
/// object without an entry is skipped: it was deleted). `now` (RFC 3339)
/// stamps conditions whose status changed; a condition whose status did
/// not change keeps its `lastTransitionTime`.
///
/// `failures` are the operator's own failures per object (key rotation of
/// a RouteKey that cannot read or write its Secret): they make the object
/// `Degraded=True` with reason [`ROTATION_FAILED`] and the failure as the
/// message, whatever the compiler said.
pub fn status_updates(
    compilation: &Compilation,
    rollups: &BTreeMap<ObjectKey, Rollup>,
    failures: &BTreeMap<ObjectKey, String>,
    current: &BTreeMap<ObjectKey, OwnedStatus>,
    now: &str,
) -> Vec<StatusUpdate> {
    let mut updates = Vec::new();
    for (object, specs) in &compilation.conditions {
        let Some(current) = current.get(object) else { continue };
        let desired = match failures.get(object) {
            Some(failure) => desired_status(&with_failure(specs, failure), rollups.get(object), current, now),
            None => desired_status(specs, rollups.get(object), current, now),
        };
        if !desired.same_as(current) {
            let events = events_for(current, &desired);
            updates.push(StatusUpdate { object: object.clone(), status: desired, events });
        }
    }
    updates
}

/// The `Degraded` reason of a RouteKey whose key rotation fails.
pub const ROTATION_FAILED: &str = "RotationFailed";

/// `specs` with `Degraded` replaced by the key rotation failure, so the
/// status is built (and its transition time kept) like any other.
fn with_failure(specs: &[ConditionSpec], failure: &str) -> Vec<ConditionSpec> {
    let degraded = ConditionSpec {
        type_: ConditionType::Degraded,
        status: ConditionStatus::True,
        reason: ROTATION_FAILED.into(),
        message: format!("key rotation stopped: {failure}; retrying with backoff"),
        observed_generation: specs.iter().find_map(|spec| spec.observed_generation),
        related: Vec::new(),
    };
    specs.iter().filter(|spec| spec.type_ != ConditionType::Degraded).cloned().chain([degraded]).collect()
}

fn desired_status(specs: &[ConditionSpec], rollup: Option<&Rollup>, current: &OwnedStatus, now: &str) -> OwnedStatus {
    let since = |type_: &str, status: ConditionStatus| {
        current
            .conditions
            .iter()
            .find(|c| c.type_ == type_ && c.status == status && !c.last_transition_time.is_empty())
            .map_or_else(|| now.to_owned(), |c| c.last_transition_time.clone())
    };
    let mut conditions: Vec<Condition> =
        specs.iter().map(|spec| spec.to_condition(since(spec.type_.as_str(), spec.status))).collect();
    if let Some(rollup) = rollup {
        conditions.push(rollup.applied.to_condition(since("Applied", rollup.applied.status)));
    }
    OwnedStatus {
        observed_generation: specs.iter().find_map(|spec| spec.observed_generation),
        conditions,
        rollout: rollup.map(|r| Rollout {
            selected_sidecars: r.selected_sidecars,
            applied_sidecars: r.applied_sidecars,
            nacks: r.nacks.clone(),
        }),
    }
}

/// The server-side apply body for one status: apiVersion, kind, name and
/// the owned status fields, nothing else.
pub fn status_patch(object: &ObjectKey, status: &OwnedStatus) -> Value {
    json!({
        "apiVersion": API_VERSION,
        "kind": object.kind.as_str(),
        "metadata": {"name": object.name},
        "status": status,
    })
}

/// An object of the index as the writer sees it.
#[derive(Clone, Debug)]
pub struct CurrentObject {
    pub status: OwnedStatus,
    pub resource_version: Option<String>,
    /// Where its events go.
    pub reference: ObjectReference,
}

fn collect<K: Indexed + Resource<DynamicType = ()>>(
    index: &Index,
    owned: fn(&K) -> OwnedStatus,
    out: &mut BTreeMap<ObjectKey, CurrentObject>,
) {
    for (name, object) in index.objects::<K>() {
        let current = CurrentObject {
            status: owned(object),
            resource_version: object.meta().resource_version.clone(),
            reference: object.object_ref(&()),
        };
        out.insert(ObjectKey::new(<K as Indexed>::KIND, name), current);
    }
}

/// Every CR of the index with its owned status.
pub fn current_objects(index: &Index) -> BTreeMap<ObjectKey, CurrentObject> {
    let mut out = BTreeMap::new();
    collect::<RoutePolicy>(index, |o| OwnedStatus::of_applied(o.status.as_ref()), &mut out);
    collect::<NeighborPolicy>(index, |o| OwnedStatus::of_applied(o.status.as_ref()), &mut out);
    collect::<RouteKey>(index, |o| OwnedStatus::of_route_key(o.status.as_ref()), &mut out);
    collect::<LinkStateArea>(index, |o| OwnedStatus::of_applied(o.status.as_ref()), &mut out);
    // Undecodable objects get their status too (Accepted=False naming the
    // field), read as far as their raw status allows.
    for (key, object) in index.unreadable() {
        let status = match key.kind {
            ObjectKind::RouteKey => {
                OwnedStatus::of_route_key(serde_json::from_value(object.status.clone()).ok().as_ref())
            }
            _ => OwnedStatus::of_applied(serde_json::from_value(object.status.clone()).ok().as_ref()),
        };
        let reference = ObjectReference {
            api_version: Some(API_VERSION.to_owned()),
            kind: Some(key.kind.as_str().to_owned()),
            name: Some(key.name.clone()),
            namespace: Some(key.namespace.clone()),
            uid: object.metadata.uid.clone(),
            resource_version: object.metadata.resource_version.clone(),
            ..Default::default()
        };
        let current = CurrentObject { status, resource_version: object.metadata.resource_version.clone(), reference };
        out.insert(key.clone(), current);
    }
    out
}

/// A status this writer wrote, until the index shows it.
#[derive(Clone, Debug)]
struct Written {
    /// The resourceVersion of the object the write was computed from.
    over: Option<String>,
    status: OwnedStatus,
}

/// What one [`StatusWriter::reconcile`] did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct WriteReport {
    pub written: usize,
    /// Objects deleted before their status could be written.
    pub gone: usize,
    pub failed: usize,
    pub events: usize,
    pub event_failures: usize,
}

/// Writes statuses (and their events) with one client.
pub struct StatusWriter {
    client: Client,
    events: EventPublisher,
    /// The watch shows our own writes a little later: until the index holds
    /// a newer version of an object than the one a write was computed from,
    /// the written status counts as current, so the next run does not write
    /// it (and publish its events) again.
    written: BTreeMap<ObjectKey, Written>,
    /// Key rotation failures per RouteKey (see [`status_updates`]).
    failures: BTreeMap<ObjectKey, String>,
    /// The sidecar (Pod) problems already announced with an Event: Pods
    /// have no conditions of ours, so each problem gets one Warning
    /// `SidecarProblem` on its Pod when it appears.
    pod_problems: BTreeSet<(ObjectKey, String)>,
}

impl StatusWriter {
    pub fn new(client: Client, events: EventPublisher) -> Self {
        Self { client, events, written: BTreeMap::new(), failures: BTreeMap::new(), pod_problems: BTreeSet::new() }
    }

    /// The current key rotation failures, for the next [`Self::reconcile`].
    pub fn set_rotation(&mut self, rotation: &BTreeMap<NamespacedName, crate::rotation::RotationStatus>) {
        self.failures = rotation
            .iter()
            .filter_map(|(name, status)| Some((ObjectKey::new(ObjectKind::RouteKey, name), status.error.clone()?)))
            .collect();
    }

    /// Writes every status that differs from what the objects have, then
    /// the events of the written ones. Failures are logged and counted; the
    /// next run retries them (their status still differs).
    pub async fn reconcile(
        &mut self,
        index: &Index,
        compilation: &Compilation,
        state: &DistributionState,
        now: &str,
    ) -> WriteReport {
        let rollups = status::rollup(compilation, state);
        let objects = current_objects(index);
        self.written.retain(|key, written| objects.get(key).is_some_and(|o| o.resource_version == written.over));
        let current = objects
            .iter()
            .map(|(key, object)| {
                let status = self.written.get(key).map_or(&object.status, |w| &w.status);
                (key.clone(), status.clone())
            })
            .collect();
        let mut report = WriteReport::default();
        self.announce_pod_problems(compilation, &mut report).await;
        for update in status_updates(compilation, &rollups, &self.failures, &current, now) {
            let object = &objects[&update.object];
            match self.patch(&update).await {
                Ok(()) => {
                    report.written += 1;
                    tracing::info!(object = %update.object, "status written");
                    let written = Written { over: object.resource_version.clone(), status: update.status };
                    self.written.insert(update.object.clone(), written);
                }
                Err(kube::Error::Api(status)) if status.is_not_found() => {
                    report.gone += 1;
                    tracing::debug!(object = %update.object, "deleted before its status was written");
                    continue;
                }
                Err(error) => {
                    report.failed += 1;
                    tracing::warn!(object = %update.object, %error, "status not written; retrying on the next run");
                    continue;
                }
            }
            for event in &update.events {
                match self.events.publish(&object.reference, event).await {
                    Ok(()) => report.events += 1,
                    Err(error) => {
                        report.event_failures += 1;
                        tracing::warn!(object = %update.object, reason = %event.reason, %error, "event not published");
                    }
                }
            }
        }
        report
    }

    async fn announce_pod_problems(&mut self, compilation: &Compilation, report: &mut WriteReport) {
        let current: BTreeSet<(ObjectKey, String)> = compilation
            .problems
            .iter()
            .filter_map(|p| p.object.as_ref().filter(|o| o.kind == ObjectKind::Pod).map(|o| (o.clone(), p.to_string())))
            .collect();
        self.pod_problems.retain(|problem| current.contains(problem));
        for (pod, message) in current {
            if self.pod_problems.contains(&(pod.clone(), message.clone())) {
                continue;
            }
            let reference = ObjectReference {
                api_version: Some("v1".into()),
                kind: Some("Pod".into()),
                name: Some(pod.name.clone()),
                namespace: Some(pod.namespace.clone()),
                ..Default::default()
            };
            let event =
                EventSpec { warning: true, reason: "SidecarProblem".into(), action: "Compile", note: message.clone() };
            match self.events.publish(&reference, &event).await {
                Ok(()) => {
                    report.events += 1;
                    self.pod_problems.insert((pod, message));
                }
                Err(error) => {
                    report.event_failures += 1;
                    tracing::warn!(object = %pod, %error, "event not published");
                }
            }
        }
    }

    async fn patch(&self, update: &StatusUpdate) -> Result<(), kube::Error> {
        let body = status_patch(&update.object, &update.status);
        let client = self.client.clone();
        let object = &update.object;
        match object.kind {
            ObjectKind::RoutePolicy => apply_status::<RoutePolicy>(client, object, &body).await,
            ObjectKind::NeighborPolicy => apply_status::<NeighborPolicy>(client, object, &body).await,
            ObjectKind::RouteKey => apply_status::<RouteKey>(client, object, &body).await,
            ObjectKind::LinkStateArea => apply_status::<LinkStateArea>(client, object, &body).await,
            ObjectKind::Pod => Ok(()), // pods have no conditions in a compilation
        }
    }
}

async fn apply_status<K>(client: Client, object: &ObjectKey, body: &Value) -> Result<(), kube::Error>
where
    K: Resource<DynamicType = (), Scope = k8s_openapi::NamespaceResourceScope>
        + Clone
        + DeserializeOwned
        + std::fmt::Debug,
{
    // The reply is read leniently: an object that does not decode as `K`
    // (see `super::lenient`) still gets its status, and the reply is not
    // logged whole by the client as a decoding failure.
    let api: Api<Lenient<K>> = Api::namespaced(client, &object.namespace);
    let params = PatchParams::apply(FIELD_MANAGER).force();
    api.patch_status(&object.name, &params, &Patch::Apply(body)).await.map(drop)
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use fabric_core::NodeId;

    use super::*;
    use crate::distribution::{NackInfo, SidecarState};
    use fabric_operator_core::compile::compile;
    use fabric_operator_core::index::NamespacedName;
    use fabric_operator_core::manifests::{Manifests, load_text};

    const FABRIC: &str = r#"
apiVersion: routing.fabric.dev/v1alpha1
kind: RoutePolicy
metadata: {name: p, namespace: fabric, generation: 3}
spec: {sidecarSelector: {matchLabels: {mesh: test}}}
---
apiVersion: routing.fabric.dev/v1alpha1
kind: RouteKey
metadata: {name: k, namespace: fabric, generation: 1}
spec: {nodeId: a}
---
apiVersion: v1
kind: Pod
metadata: {name: a, namespace: fabric, labels: {mesh: test}, annotations: {routing.fabric.dev/peer-address: "127.0.0.1:1"}}
---
apiVersion: v1
kind: Pod
metadata: {name: b, namespace: fabric, labels: {mesh: test}, annotations: {routing.fabric.dev/peer-address: "127.0.0.1:2"}}
"#;

    const NOW: &str = "2025-01-01T00:00:00Z";
    const LATER: &str = "2025-01-01T01:00:00Z";

    fn policy() -> ObjectKey {
        ObjectKey::new(ObjectKind::RoutePolicy, &NamespacedName::new("fabric", "p"))
    }

    fn key() -> ObjectKey {
        ObjectKey::new(ObjectKind::RouteKey, &NamespacedName::new("fabric", "k"))
    }

    fn setup() -> (Compilation, DistributionState) {
        let mut manifests = Manifests::default();
        load_text(&mut manifests, Path::new("fabric.yaml"), FABRIC);
        assert!(manifests.issues.is_empty(), "{:?}", manifests.issues);
        let compilation = compile(&manifests.index);
        let mut state = DistributionState::default();
        for node in ["a", "b"] {
            state
                .sidecars
                .insert(NamespacedName::new("fabric", node), SidecarState::connected_for_test(node, None, None));
        }
        (compilation, state)
    }

    fn empty_current() -> BTreeMap<ObjectKey, OwnedStatus> {
        [(policy(), OwnedStatus::default()), (key(), OwnedStatus::default())].into()
    }

    fn updates(
        compilation: &Compilation,
        state: &DistributionState,
        current: &BTreeMap<ObjectKey, OwnedStatus>,
        now: &str,
    ) -> Vec<StatusUpdate> {
        status_updates(compilation, &status::rollup(compilation, state), &BTreeMap::new(), current, now)
    }

    fn conditions(status: &OwnedStatus) -> Vec<(String, ConditionStatus, String, String)> {
        status
            .conditions
            .iter()
            .map(|c| (c.type_.clone(), c.status, c.reason.clone(), c.last_transition_time.clone()))
            .collect()
    }

    #[test]
    fn first_status_of_a_policy_and_a_route_key() {
        let (compilation, state) = setup();
        let updates = updates(&compilation, &state, &empty_current(), NOW);
        assert_eq!(updates.len(), 2);
        let policy_update = updates.iter().find(|u| u.object == policy()).unwrap();
        assert_eq!(policy_update.status.observed_generation, Some(3));
        let c = |type_: &str, status, reason: &str| (type_.to_string(), status, reason.to_string(), NOW.to_string());
        assert_eq!(
            conditions(&policy_update.status),
            [
                c("Accepted", ConditionStatus::True, "Compiled"),
                c("Conflict", ConditionStatus::False, "NoConflict"),
                c("Degraded", ConditionStatus::False, "Healthy"),
                c("Applied", ConditionStatus::False, "Pending"),
            ]
        );
        assert_eq!(
            policy_update.status.rollout,
            Some(Rollout { selected_sidecars: 2, applied_sidecars: 0, nacks: vec![] })
        );
        assert_eq!(policy_update.events.len(), 1, "Accepted appeared");

        let key_update = updates.iter().find(|u| u.object == key()).unwrap();
        assert_eq!(key_update.status.rollout, None, "a RouteKey has no rollout");
        let body = status_patch(&key_update.object, &key_update.status);
        let status = body["status"].as_object().unwrap();
        let mut fields: Vec<&str> = status.keys().map(String::as_str).collect();
        fields.sort();
        assert_eq!(fields, ["conditions", "observedGeneration"], "only the owned fields: {body}");
        assert_eq!(body["kind"], "RouteKey");
        assert_eq!(body["metadata"], json!({"name": "k"}));
    }

    #[test]
    fn nothing_to_write_when_nothing_changed_and_times_are_kept() {
        let (compilation, mut state) = setup();
        let first = updates(&compilation, &state, &empty_current(), NOW);
        let mut current: BTreeMap<ObjectKey, OwnedStatus> =
            first.iter().map(|u| (u.object.clone(), u.status.clone())).collect();
        assert_eq!(updates(&compilation, &state, &current, LATER), [], "same input, no write");

        // Conditions listed in another order are the same status.
        current.get_mut(&policy()).unwrap().conditions.reverse();
        assert_eq!(updates(&compilation, &state, &current, LATER), []);

        // Both sidecars acknowledge: only Applied moves, and gets the new time.
        for node in ["a", "b"] {
            let version = compilation.sidecars[&NodeId::from(node)].version().to_string();
            state.sidecars.insert(
                NamespacedName::new("fabric", node),
                SidecarState::connected_for_test(node, Some(&version), None),
            );
        }
        let next = updates(&compilation, &state, &current, LATER);
        assert_eq!(next.len(), 1);
        let status = &next[0].status;
        let times: BTreeMap<String, String> =
            status.conditions.iter().map(|c| (c.type_.clone(), c.last_transition_time.clone())).collect();
        assert_eq!(times["Accepted"], NOW, "unchanged status keeps its time");
        assert_eq!(times["Applied"], LATER);
        assert_eq!(status.rollout.as_ref().unwrap().applied_sidecars, 2);
        assert_eq!(next[0].events, [], "Pending -> Applied is no event");
    }

    #[test]
    fn a_nack_is_written_with_its_sidecar_and_makes_a_warning() {
        let (compilation, mut state) = setup();
        let current: BTreeMap<ObjectKey, OwnedStatus> =
            updates(&compilation, &state, &empty_current(), NOW).into_iter().map(|u| (u.object, u.status)).collect();
        let version = compilation.sidecars[&NodeId::from("b")].version().to_string();
        let nack = NackInfo { version: version.clone(), field: "nodeId".into(), message: "refused".into() };
        state
            .sidecars
            .insert(NamespacedName::new("fabric", "b"), SidecarState::connected_for_test("b", Some("old"), Some(nack)));
        let next = updates(&compilation, &state, &current, LATER);
        assert_eq!(next.len(), 1);
        let rollout = next[0].status.rollout.as_ref().unwrap();
        assert_eq!(rollout.nacks, [SidecarNack { sidecar: "b".into(), version, error: "nodeId: refused".into() }]);
        assert_eq!(next[0].events.len(), 1);
        assert_eq!(next[0].events[0].reason, "Nacked");
        assert!(next[0].events[0].note.contains("fabric/b (node b): nodeId: refused"), "{:?}", next[0].events);
    }

    #[test]
    fn deleted_objects_and_foreign_conditions_are_left_alone() {
        let (compilation, state) = setup();
        assert_eq!(updates(&compilation, &state, &BTreeMap::new(), NOW), [], "no current object, no write");

        let foreign = Condition {
            type_: "KeysPublished".into(),
            status: ConditionStatus::True,
            reason: "Rotated".into(),
            message: String::new(),
            last_transition_time: NOW.into(),
            observed_generation: None,
        };
        let mut status = RouteKeyStatus { conditions: vec![foreign], ..Default::default() };
        let written = updates(&compilation, &state, &empty_current(), NOW);
        let key_status = &written.iter().find(|u| u.object == key()).unwrap().status;
        status.observed_generation = key_status.observed_generation;
        status.conditions.extend(key_status.conditions.iter().cloned());
        assert!(OwnedStatus::of_route_key(Some(&status)).same_as(key_status), "the foreign condition is ignored");
    }
}
