//! The status writer: the status of every CR, computed by the pure
//! [`status_updates`](fabric_operator_core::object_status::status_updates) from the compilation, the distribution roll-up
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
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::distribution::DistributionState;
use crate::kubernetes::events::EventPublisher;
use crate::kubernetes::lenient::Lenient;
use fabric_operator_core::api::{LinkStateArea, NeighborPolicy, RouteKey, RoutePolicy};
use fabric_operator_core::compile::Compilation;
use fabric_operator_core::index::{Index, NamespacedName, ObjectKey, ObjectKind};
use fabric_operator_core::object_status::{
    EventSpec, FIELD_MANAGER, OwnedStatus, StatusUpdate, current_objects, status_patch, status_updates,
};
use fabric_operator_core::sync_status::{self as status};

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
    // (see `crate::kubernetes::lenient`) still gets its status, and the reply is not
    // logged whole by the client as a decoding failure.
    let api: Api<Lenient<K>> = Api::namespaced(client, &object.namespace);
    let params = PatchParams::apply(FIELD_MANAGER).force();
    api.patch_status(&object.name, &params, &Patch::Apply(body)).await.map(drop)
}
