//! The status the operator owns on its objects, computed without the API:
//! from the compilation and the roll-up of ACKs to the status each object
//! should have ([`status_updates`]), the server-side-apply patch that writes
//! it ([`status_patch`]), and the Events a change deserves ([`events_for`]).
//! `operator`'s status writer applies them, only while it leads.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::ObjectReference;
use kube::Resource;
use serde::Serialize;
use serde_json::{Value, json};

use crate::api::{
    AppliedStatus, Condition, ConditionStatus, LinkStateArea, NeighborPolicy, RouteKey, RouteKeyStatus, RoutePolicy,
    SidecarNack,
};
use crate::compile::{Compilation, ConditionSpec, ConditionType};
use crate::index::{Index, Indexed, ObjectKey, ObjectKind};
use crate::names::API_VERSION;
use crate::sync_status::AppliedStatus as Rollup;

/// The field manager of status writes.
pub const FIELD_MANAGER: &str = "fabric-operator/status";
/// The condition types this writer owns.
pub const OWNED_CONDITIONS: [ConditionType; 5] = [
    ConditionType::Accepted,
    ConditionType::Conflict,
    ConditionType::NeighborNotFound,
    ConditionType::Degraded,
    ConditionType::Applied,
];

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
    conditions.iter().filter(|c| OWNED_CONDITIONS.iter().any(|owned| owned.as_str() == c.type_)).cloned().collect()
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
        conditions.push(rollup.applied.to_condition(since(ConditionType::Applied.as_str(), rollup.applied.status)));
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

/// One event to publish on an object.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EventSpec {
    pub warning: bool,
    /// `Accepted`, the refusal reason (`Invalid`, `EqualPriority`, ...),
    /// `Nacked`, `Rotated`.
    pub reason: String,
    /// What the operator was doing: `Compile`, `Distribute`, `Rotate`,
    /// `Reconcile`.
    pub action: &'static str,
    pub note: String,
}

fn condition(status: &OwnedStatus, type_: ConditionType) -> Option<&Condition> {
    status.conditions.iter().find(|c| c.type_ == type_.as_str())
}

/// The events a status change from `current` to `desired` deserves:
///
/// - `Accepted` changed status (or appeared), or stayed refused for another
///   reason: `Normal Accepted` when it is True, else `Warning <reason>` with
///   the compiler's message.
/// - `Conflict` became True: `Warning Conflict`, the note being the
///   compiler's reason and message (which objects collide, who wins). The
///   object stays Accepted (one of them wins), so the Accepted rule alone
///   would say nothing.
/// - `Degraded` became True (or changed reason while True): `Warning
///   <reason>` with the message.
/// - `Applied` became `False`/`Nacked`: `Warning Nacked`, whose note names
///   the sidecars and their errors (the condition's message). Further NACKs
///   while it stays Nacked update the status, not the events.
pub fn events_for(current: &OwnedStatus, desired: &OwnedStatus) -> Vec<EventSpec> {
    let mut events = Vec::new();
    if let Some(accepted) = condition(desired, ConditionType::Accepted) {
        let before = condition(current, ConditionType::Accepted);
        let transition = match before {
            None => true,
            Some(before) => {
                before.status != accepted.status
                    || (accepted.status != ConditionStatus::True && before.reason != accepted.reason)
            }
        };
        if transition {
            let warning = accepted.status != ConditionStatus::True;
            let reason = if warning { accepted.reason.clone() } else { ConditionType::Accepted.as_str().to_owned() };
            events.push(EventSpec { warning, reason, action: "Compile", note: accepted.message.clone() });
        }
    }
    fn conflict(status: &OwnedStatus) -> Option<&Condition> {
        condition(status, ConditionType::Conflict).filter(|c| c.status == ConditionStatus::True)
    }
    if let (Some(conflict), None) = (conflict(desired), conflict(current)) {
        events.push(EventSpec {
            warning: true,
            reason: ConditionType::Conflict.as_str().into(),
            action: "Compile",
            note: format!("{}: {}", conflict.reason, conflict.message),
        });
    }
    fn nacked(status: &OwnedStatus) -> Option<&Condition> {
        condition(status, ConditionType::Applied).filter(|c| c.status == ConditionStatus::False && c.reason == "Nacked")
    }
    // Degraded became True, or stays True for another reason: the object
    // works, but something is ignored or stopped (a refused key, a cycle,
    // key rotation that cannot reach its Secret).
    fn degraded(status: &OwnedStatus) -> Option<&Condition> {
        condition(status, ConditionType::Degraded).filter(|c| c.status == ConditionStatus::True)
    }
    if let Some(now) = degraded(desired)
        && degraded(current).is_none_or(|before| before.reason != now.reason)
    {
        events.push(EventSpec {
            warning: true,
            reason: now.reason.clone(),
            action: "Reconcile",
            note: now.message.clone(),
        });
    }
    if let (Some(applied), None) = (nacked(desired), nacked(current)) {
        events.push(EventSpec {
            warning: true,
            reason: "Nacked".into(),
            action: "Distribute",
            note: applied.message.clone(),
        });
    }
    events
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use fabric_core::NodeId;

    use super::*;
    use crate::compile::compile;
    use crate::index::NamespacedName;
    use crate::manifests::{Manifests, load_text};
    use crate::sync_status::{DistributionState, NackInfo, SidecarState};

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
        status_updates(compilation, &crate::sync_status::rollup(compilation, state), &BTreeMap::new(), current, now)
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

#[cfg(test)]
mod event_tests {
    use super::*;

    fn status(conditions: &[(&str, ConditionStatus, &str)]) -> OwnedStatus {
        OwnedStatus {
            observed_generation: Some(1),
            conditions: conditions
                .iter()
                .map(|(type_, status, reason)| Condition {
                    type_: type_.to_string(),
                    status: *status,
                    reason: reason.to_string(),
                    message: format!("{type_} {reason}"),
                    last_transition_time: "2025-01-01T00:00:00Z".into(),
                    observed_generation: Some(1),
                })
                .collect(),
            rollout: None,
        }
    }

    use ConditionStatus::{False, True};

    #[test]
    fn accepted_transitions_make_events() {
        let none = OwnedStatus::default();
        let accepted = status(&[("Accepted", True, "Compiled")]);
        let invalid = status(&[("Accepted", False, "Invalid")]);
        let refused = status(&[("Accepted", False, "EqualPriority")]);
        assert_eq!(
            events_for(&none, &accepted),
            [EventSpec {
                warning: false,
                reason: "Accepted".into(),
                action: "Compile",
                note: "Accepted Compiled".into()
            }]
        );
        assert_eq!(events_for(&accepted, &accepted), []);
        let event = &events_for(&accepted, &invalid)[0];
        assert_eq!((event.warning, event.reason.as_str()), (true, "Invalid"));
        assert_eq!(events_for(&invalid, &refused)[0].reason, "EqualPriority", "another refusal reason");
        assert_eq!(events_for(&invalid, &invalid), []);
        assert_eq!(events_for(&invalid, &accepted)[0].reason, "Accepted");
    }

    #[test]
    fn a_new_conflict_makes_one_warning() {
        let clear = status(&[("Accepted", True, "Compiled"), ("Conflict", False, "NoConflict")]);
        let conflict = status(&[("Accepted", True, "Compiled"), ("Conflict", True, "EqualPriority")]);
        assert_eq!(
            events_for(&clear, &conflict),
            [EventSpec {
                warning: true,
                reason: ConditionType::Conflict.as_str().into(),
                action: "Compile",
                note: "EqualPriority: Conflict EqualPriority".into()
            }]
        );
        assert_eq!(events_for(&conflict, &conflict), []);
        assert_eq!(events_for(&conflict, &clear), []);
    }

    #[test]
    fn applied_becoming_nacked_makes_one_warning() {
        let pending = status(&[("Accepted", True, "Compiled"), ("Applied", False, "Pending")]);
        let nacked = status(&[("Accepted", True, "Compiled"), ("Applied", False, "Nacked")]);
        let events = events_for(&pending, &nacked);
        assert_eq!(
            events,
            [EventSpec { warning: true, reason: "Nacked".into(), action: "Distribute", note: "Applied Nacked".into() }]
        );
        assert_eq!(events_for(&nacked, &nacked), [], "still nacked: no new event");
    }
}
