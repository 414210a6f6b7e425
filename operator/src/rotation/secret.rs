//! Key rotation in a cluster: private keys in one Secret per RouteKey
//! (`routekey-<name>`, owner-referenced so it goes with the RouteKey),
//! published keys in the RouteKey's status, events on the RouteKey. Both
//! writes are server-side applies with the field manager
//! `fabric-operator/keys`, which owns exactly the Secret's data and
//! `status.keys`, `status.activeKeyId`, `status.nextRotation` (the status
//! writer owns the conditions under another manager).

use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, Patch, PatchParams};
use kube::{Client, Resource};
use serde_json::json;

use super::store::{KeyStore, KeyStoreError};
use super::{KeyPublisher, PublishError};
use crate::kubernetes::events::EventPublisher;
use crate::kubernetes::lenient::Lenient;
use fabric_operator_core::api::RouteKey;
use fabric_operator_core::index::NamespacedName;
use fabric_operator_core::rotation_plan::{KeyRing, PublishedKeys, RotationEvent};

/// Field manager of every key write.
pub const FIELD_MANAGER: &str = "fabric-operator/keys";
/// The Secret's data key holding the key ring (JSON).
pub const SECRET_DATA_KEY: &str = "keys.json";

/// What the API server said, without the debug dump of its reply: for a
/// refusal its message names the user, verb, resource and namespace
/// (`User "system:serviceaccount:fabric-system:fabric-routing" cannot get
/// resource "secrets" in API group "" in the namespace "fabric"`).
pub fn api_error(error: &kube::Error) -> String {
    match error {
        kube::Error::Api(status) => format!("{} ({} {})", status.message, status.code, status.reason),
        other => other.to_string(),
    }
}

/// `routekey-<name>`.
pub fn secret_name(route_key: &str) -> String {
    format!("routekey-{route_key}")
}

pub struct SecretKeyStore {
    client: Client,
}

impl SecretKeyStore {
    pub fn new(client: Client) -> Self {
        Self { client }
    }
}

#[tonic::async_trait]
impl KeyStore for SecretKeyStore {
    async fn load(&self, name: &NamespacedName) -> Result<KeyRing, KeyStoreError> {
        let secrets: Api<Secret> = Api::namespaced(self.client.clone(), &name.namespace);
        let secret_name = secret_name(&name.name);
        let secret = secrets.get_opt(&secret_name).await.map_err(KeyStoreError::Api)?;
        let Some(data) = secret.and_then(|s| s.data).and_then(|mut d| d.remove(SECRET_DATA_KEY)) else {
            return Ok(KeyRing::default());
        };
        serde_json::from_slice(&data.0).map_err(|source| KeyStoreError::Corrupt {
            location: format!("Secret {}/{secret_name} key {SECRET_DATA_KEY}", name.namespace),
            source,
        })
    }

    async fn save(&self, name: &NamespacedName, route_key: &RouteKey, ring: &KeyRing) -> Result<(), KeyStoreError> {
        let secrets: Api<Secret> = Api::namespaced(self.client.clone(), &name.namespace);
        let secret_name = secret_name(&name.name);
        let owner = route_key.controller_owner_ref(&()).ok_or_else(|| KeyStoreError::NoOwner(name.clone()))?;
        let ring_json = serde_json::to_vec(ring).map_err(KeyStoreError::Encode)?;
        let body = json!({
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {
                "name": secret_name,
                "namespace": name.namespace,
                "labels": {
                    "app.kubernetes.io/managed-by": "fabric-operator",
                    "routing.fabric.dev/route-key": name.name,
                },
                "ownerReferences": [owner],
            },
            "type": "Opaque",
            "data": { SECRET_DATA_KEY: k8s_openapi::ByteString(ring_json) },
        });
        secrets
            .patch(&secret_name, &PatchParams::apply(FIELD_MANAGER).force(), &Patch::Apply(body))
            .await
            .map(|_| ())
            .map_err(KeyStoreError::Api)
    }
}

/// Publishes keys into RouteKey status and rotation events as Kubernetes
/// Events.
pub struct ClusterPublisher {
    client: Client,
    events: EventPublisher,
}

impl ClusterPublisher {
    pub fn new(client: Client, instance: Option<String>) -> Self {
        Self { events: EventPublisher::new(client.clone(), instance), client }
    }
}

/// The server-side apply body of the key fields of a RouteKey's status.
pub fn status_patch(name: &str, keys: &PublishedKeys) -> serde_json::Value {
    let mut status = serde_json::Map::new();
    status.insert("keys".into(), json!(keys.keys));
    if let Some(active) = &keys.active_key_id {
        status.insert("activeKeyId".into(), json!(active));
    }
    if let Some(next) = &keys.next_rotation {
        status.insert("nextRotation".into(), json!(next));
    }
    json!({
        "apiVersion": fabric_operator_core::names::API_VERSION,
        "kind": "RouteKey",
        "metadata": { "name": name },
        "status": status,
    })
}

#[tonic::async_trait]
impl KeyPublisher for ClusterPublisher {
    fn overlay(&self) -> bool {
        false
    }

    async fn publish(&self, name: &NamespacedName, _: &RouteKey, keys: &PublishedKeys) -> Result<(), PublishError> {
        // Read the reply leniently, as the status writer does.
        let api: Api<Lenient<RouteKey>> = Api::namespaced(self.client.clone(), &name.namespace);
        api.patch_status(
            &name.name,
            &PatchParams::apply(FIELD_MANAGER).force(),
            &Patch::Apply(status_patch(&name.name, keys)),
        )
        .await
        .map(|_| ())
        .map_err(|source| PublishError::Status { route_key: name.clone(), source })
    }

    async fn announce(&self, name: &NamespacedName, route_key: &RouteKey, event: &RotationEvent) {
        let (warning, reason) = match event {
            RotationEvent::Published { .. } => (false, "KeyPublished"),
            RotationEvent::Activated { .. } => (false, "Rotated"),
            RotationEvent::Retired { .. } => (false, "KeyRetired"),
            RotationEvent::Lost { .. } => (true, "KeyLost"),
        };
        tracing::info!(route_key = %name, node = %route_key.spec.node_id, reason, "{event}");
        if let Err(error) = self.events.on_route_key(route_key, warning, reason, &event.to_string()).await {
            tracing::warn!(route_key = %name, %error, "cannot publish the event");
        }
    }
}
