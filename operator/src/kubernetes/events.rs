//! Kubernetes Events on the fabric objects (`kubectl describe` shows them):
//! which status transitions deserve one is the pure [`events_for`];
//! [`EventPublisher`] sends them (reporter `fabric-operator`), folding exact
//! repeats into an event series. [`EventPublisher::on_route_key`] is for the
//! key rotation.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use jiff::{SignedDuration, Timestamp};
use k8s_openapi::api::core::v1::ObjectReference;
use k8s_openapi::api::events::v1::Event;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use kube::api::{Api, Patch, PatchParams, PostParams};
use kube::{Client, Resource};
use serde_json::json;

use fabric_operator_core::names::REPORTER;

use fabric_operator_core::api::RouteKey;
use fabric_operator_core::object_status::EventSpec;

/// The API limits an event's note to 1 kB.
const MAX_NOTE_BYTES: usize = 1024;

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

    #[test]
    fn notes_are_cut_at_a_character_boundary() {
        assert_eq!(truncate("short", 10), "short");
        let cut = truncate(&"é".repeat(600), MAX_NOTE_BYTES);
        assert!(cut.len() <= MAX_NOTE_BYTES && cut.ends_with("..."));
    }
}
