//! Kubernetes Events on the fabric objects (`kubectl describe` shows them):
//! which status transitions deserve one is the pure [`events_for`];
//! [`EventPublisher`] sends them (reporter `fabric-operator`), folding exact
//! repeats into an event series. [`EventPublisher::on_route_key`] is for the
//! key rotation.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use k8s_openapi::api::core::v1::ObjectReference;
use k8s_openapi::api::events::v1::Event;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use kube::api::{Api, Patch, PatchParams, PostParams};
use kube::{Client, Resource};
use serde_json::json;

use fabric_operator_core::names::REPORTER;

use super::status_writer::OwnedStatus;
use fabric_operator_core::api::{Condition, ConditionStatus, RouteKey};

/// The API limits an event's note to 1 kB.
const MAX_NOTE_BYTES: usize = 1024;

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

fn condition<'a>(status: &'a OwnedStatus, type_: &str) -> Option<&'a Condition> {
    status.conditions.iter().find(|c| c.type_ == type_)
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
    if let Some(accepted) = condition(desired, "Accepted") {
        let before = condition(current, "Accepted");
        let transition = match before {
            None => true,
            Some(before) => {
                before.status != accepted.status
                    || (accepted.status != ConditionStatus::True && before.reason != accepted.reason)
            }
        };
        if transition {
            let warning = accepted.status != ConditionStatus::True;
            let reason = if warning { accepted.reason.clone() } else { "Accepted".to_owned() };
            events.push(EventSpec { warning, reason, action: "Compile", note: accepted.message.clone() });
        }
    }
    fn conflict(status: &OwnedStatus) -> Option<&Condition> {
        condition(status, "Conflict").filter(|c| c.status == ConditionStatus::True)
    }
    if let (Some(conflict), None) = (conflict(desired), conflict(current)) {
        events.push(EventSpec {
            warning: true,
            reason: "Conflict".into(),
            action: "Compile",
            note: format!("{}: {}", conflict.reason, conflict.message),
        });
    }
    fn nacked(status: &OwnedStatus) -> Option<&Condition> {
        condition(status, "Applied").filter(|c| c.status == ConditionStatus::False && c.reason == "Nacked")
    }
    // Degraded became True, or stays True for another reason: the object
    // works, but something is ignored or stopped (a refused key, a cycle,
    // key rotation that cannot reach its Secret).
    fn degraded(status: &OwnedStatus) -> Option<&Condition> {
        condition(status, "Degraded").filter(|c| c.status == ConditionStatus::True)
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

/// How long a published event may be continued as a series (kube-runtime
/// and client-go use the same window).
const SERIES_WINDOW: SignedDuration = SignedDuration::from_secs(6 * 60);

/// Publishes events (`events.k8s.io/v1`) as `fabric-operator`. The same
/// event again (type, reason, action, object and note) within
/// [`SERIES_WINDOW`] only counts up the series of the first, as
/// kube-runtime's `Recorder` does; but an event whose note changed is a new
/// Event, so `kubectl describe` always shows the current message (the
/// Recorder keys series without the note and kept the first one).
#[derive(Clone)]
pub struct EventPublisher {
    client: Client,
    instance: String,
    recent: Arc<Mutex<HashMap<SeriesKey, Published>>>,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct SeriesKey {
    warning: bool,
    reason: String,
    action: &'static str,
    regarding: (Option<String>, Option<String>, Option<String>, Option<String>),
    note: String,
}

#[derive(Clone, Debug)]
struct Published {
    name: String,
    namespace: String,
    count: i32,
    last: Timestamp,
}

impl EventPublisher {
    /// `instance`: this replica (`reportingInstance`), e.g. the pod name.
    pub fn new(client: Client, instance: Option<String>) -> Self {
        let instance = instance.unwrap_or_else(|| REPORTER.to_owned());
        Self { client, instance, recent: Arc::default() }
    }

    /// One event on the object `regarding` (in its namespace).
    pub async fn publish(&self, regarding: &ObjectReference, event: &EventSpec) -> Result<(), kube::Error> {
        let note = truncate(&event.note, MAX_NOTE_BYTES);
        let key = SeriesKey {
            warning: event.warning,
            reason: event.reason.clone(),
            action: event.action,
            regarding: (
                regarding.kind.clone(),
                regarding.namespace.clone(),
                regarding.name.clone(),
                regarding.uid.clone(),
            ),
            note: note.clone(),
        };
        let now = Timestamp::now();
        let repeat = {
            let mut recent = self.recent.lock().unwrap_or_else(PoisonError::into_inner);
            recent.retain(|_, published| published.last + SERIES_WINDOW > now);
            recent.get_mut(&key).map(|published| {
                published.count += 1;
                published.last = now;
                published.clone()
            })
        };
        if let Some(published) = repeat {
            let events: Api<Event> = Api::namespaced(self.client.clone(), &published.namespace);
            let series = json!({"series": {"count": published.count, "lastObservedTime": MicroTime(now)}});
            match events.patch(&published.name, &PatchParams::default(), &Patch::Merge(&series)).await {
                Err(kube::Error::Api(status)) if status.code == 404 => {} // expired: publish anew
                other => return other.map(drop),
            }
        }
        let namespace = regarding.namespace.clone().unwrap_or_else(|| "default".to_owned());
        let name =
            format!("{}.{:x}", regarding.name.as_deref().unwrap_or("object"), now.as_nanosecond().unsigned_abs());
        let object = Event {
            metadata: ObjectMeta { name: Some(name.clone()), namespace: Some(namespace.clone()), ..Default::default() },
            event_time: Some(MicroTime(now)),
            type_: Some(if event.warning { "Warning" } else { "Normal" }.to_owned()),
            reason: Some(event.reason.clone()),
            action: Some(event.action.to_owned()),
            note: (!note.is_empty()).then_some(note),
            regarding: Some(regarding.clone()),
            reporting_controller: Some(REPORTER.to_owned()),
            reporting_instance: Some(self.instance.clone()),
            ..Default::default()
        };
        Api::<Event>::namespaced(self.client.clone(), &namespace).create(&PostParams::default(), &object).await?;
        let published = Published { name, namespace, count: 1, last: now };
        self.recent.lock().unwrap_or_else(PoisonError::into_inner).insert(key, published);
        Ok(())
    }

    /// `Normal`/`Warning` events of the key rotation on a RouteKey (`note`
    /// e.g. `active key k-2025-02; previous k-2025-01 retiring until ...`).
    pub async fn on_route_key(
        &self,
        key: &RouteKey,
        warning: bool,
        reason: &str,
        note: &str,
    ) -> Result<(), kube::Error> {
        let event = EventSpec { warning, reason: reason.into(), action: "Rotate", note: note.into() };
        self.publish(&key.object_ref(&()), &event).await
    }
}

/// At most `max` bytes, cut at a character boundary, with `...` when cut.
fn truncate(text: &str, max: usize) -> String {
    if text.len() <= max {
        return text.to_owned();
    }
    let mut end = max - 3;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}...", &text[..end])
}

#[cfg(test)]
mod tests {
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
                reason: "Conflict".into(),
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

    #[test]
    fn notes_are_cut_at_a_character_boundary() {
        assert_eq!(truncate("short", 10), "short");
        let cut = truncate(&"é".repeat(600), MAX_NOTE_BYTES);
        assert!(cut.len() <= MAX_NOTE_BYTES && cut.ends_with("..."));
    }
}
