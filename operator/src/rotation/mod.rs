//! Key rotation for RouteKeys with `management: Operator`: generate ed25519
//! keys, keep the private halves in a [`KeyStore`] (an owner-referenced
//! Secret in a cluster, the state directory locally), publish the public
//! halves in `status.keys`, switch the owning sidecar's signer once every
//! sidecar trusts the new key, retire the old key after the overlap.
//!
//! [`plan`] decides (pure); [`Rotator`] runs it for every RouteKey: it
//! saves the private keys first, then publishes (so a published key always
//! has its private half somewhere), then hands the signing keys to the
//! distributor. See docs/operator.md, "Key rotation".

pub mod secret;
mod store;

use std::collections::BTreeMap;
use std::sync::Arc;

use fabric_core::{KeyId, NodeId, Timestamp};

pub use fabric_operator_core::rotation_plan::{
    GenerateError, KeyError, KeyRing, Plan, PlanError, PrivateKey, PublishedKeys, Rollout, RotationEvent,
    RotationStatus,
};
pub use store::{FileKeyStore, KeyStore, KeyStoreError, MemoryKeyStore};

use crate::distribution::{Distributor, KeyMaterial};
use fabric_operator_core::api::{KeyManagement, RouteKey, RouteKeyStatus};
use fabric_operator_core::compile::ConditionType;
use fabric_operator_core::index::{NamespacedName, ObjectKey, ObjectKind};
use fabric_operator_core::rotation_plan;

/// Why published keys could not be written.
#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    /// The API server refused or failed the status write of the RouteKey.
    #[error("RouteKey {route_key} status: {}", secret::api_error(.source))]
    Status {
        route_key: NamespacedName,
        #[source]
        source: kube::Error,
    },
}

/// Why one rotation pass of one RouteKey failed; the pass changed nothing
/// and is retried with a backoff.
#[derive(Debug, thiserror::Error)]
pub enum RotationError {
    #[error("cannot read the private keys: {0}")]
    Load(#[source] KeyStoreError),
    #[error("cannot save the private keys (nothing is published): {0}")]
    Save(#[source] KeyStoreError),
    #[error("cannot publish the keys: {0}")]
    Publish(#[source] PublishError),
    #[error(transparent)]
    Plan(#[from] PlanError),
}

impl RotationError {
    /// A stable short label of the failed step (log field, metric label).
    pub fn reason(&self) -> &'static str {
        match self {
            RotationError::Load(_) => "load_keys",
            RotationError::Save(_) => "save_keys",
            RotationError::Publish(_) => "publish_keys",
            RotationError::Plan(PlanError::Duration { .. }) => "invalid_spec",
            RotationError::Plan(PlanError::Key(_)) => "unusable_key",
            RotationError::Plan(PlanError::Generate(_)) => "generate_key",
        }
    }
}

/// Fresh secret key bytes for new keys.
pub type KeyGenerator = Box<dyn FnMut() -> Result<[u8; 32], GenerateError> + Send>;

/// Where published keys go.
#[tonic::async_trait]
pub trait KeyPublisher: Send + Sync {
    /// Whether the published keys of RouteKeys are read back from the
    /// objects (a cluster: status is written and watched) or must be laid
    /// over them (local mode: there is no API server to hold them).
    fn overlay(&self) -> bool;
    /// Writes the published keys of one RouteKey.
    async fn publish(
        &self,
        name: &NamespacedName,
        route_key: &RouteKey,
        keys: &PublishedKeys,
    ) -> Result<(), PublishError>;
    /// A rotation step worth telling users about (an Event in a cluster).
    async fn announce(&self, name: &NamespacedName, route_key: &RouteKey, event: &RotationEvent);
}

/// Local mode: published keys live in memory (and are laid over the
/// objects); events are logged.
#[derive(Default)]
pub struct LocalPublisher;

#[tonic::async_trait]
impl KeyPublisher for LocalPublisher {
    fn overlay(&self) -> bool {
        true
    }
    async fn publish(&self, _: &NamespacedName, _: &RouteKey, _: &PublishedKeys) -> Result<(), PublishError> {
        Ok(())
    }
    async fn announce(&self, name: &NamespacedName, route_key: &RouteKey, event: &RotationEvent) {
        tracing::info!(route_key = %name, node = %route_key.spec.node_id, "{event}");
    }
}

/// The sidecars as the distributor knows them, for one node id's keys.
struct DistributedFabric<'a> {
    distributor: &'a Distributor,
    node: NodeId,
    now: Timestamp,
}

impl rotation_plan::Fabric for DistributedFabric<'_> {
    fn trusted_everywhere(&self, key_id: &str) -> Rollout {
        self.distributor.rollout(&self.node, &KeyId::from(key_id), self.now)
    }
    fn signs_with(&self, key_id: &str) -> bool {
        self.distributor.signs_with(&self.node, &KeyId::from(key_id))
    }
}

/// Runs rotation for every operator-managed RouteKey.
pub struct Rotator {
    store: Arc<dyn KeyStore>,
    publisher: Arc<dyn KeyPublisher>,
    /// Private keys as last loaded or saved (loaded once per RouteKey).
    rings: BTreeMap<NamespacedName, KeyRing>,
    /// Published keys (authoritative in local mode; a cache of what was
    /// written in a cluster, so a write is not repeated before the watch
    /// brings it back).
    published: BTreeMap<NamespacedName, PublishedKeys>,
    status: BTreeMap<NamespacedName, RotationStatus>,
    /// RouteKeys whose last pass failed: when to try again, and how many
    /// passes in a row failed.
    retry: BTreeMap<NamespacedName, Retry>,
    generate: KeyGenerator,
}

/// Backoff after a failed pass (a Secret the operator may not read, an API
/// server error): the first retry after [`RETRY_INITIAL`], doubling up to
/// [`RETRY_MAX`], so a lasting failure neither floods the API server nor
/// the log.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Retry {
    at: Timestamp,
    failures: u32,
}

const RETRY_INITIAL: std::time::Duration = std::time::Duration::from_millis(500);
const RETRY_MAX: std::time::Duration = std::time::Duration::from_secs(60);

impl Retry {
    fn after(failures: u32, now: Timestamp) -> Retry {
        let delay = RETRY_INITIAL.saturating_mul(1 << failures.saturating_sub(1).min(16)).min(RETRY_MAX);
        Retry { at: now + delay, failures }
    }
}

impl Rotator {
    pub fn new(store: Arc<dyn KeyStore>, publisher: Arc<dyn KeyPublisher>) -> Self {
        let generate = || fabric_core::security::generate_signing_key_bytes().map_err(|e| GenerateError(e.into()));
        Self::with_generator(store, publisher, Box::new(generate))
    }

    /// With a key generator of the caller's (tests use fixed bytes).
    pub fn with_generator(store: Arc<dyn KeyStore>, publisher: Arc<dyn KeyPublisher>, generate: KeyGenerator) -> Self {
        Self {
            store,
            publisher,
            rings: BTreeMap::new(),
            published: BTreeMap::new(),
            status: BTreeMap::new(),
            retry: BTreeMap::new(),
            generate,
        }
    }

    pub fn status(&self) -> &BTreeMap<NamespacedName, RotationStatus> {
        &self.status
    }

    /// One pass over every RouteKey of the distributor's objects at `now`.
    /// Returns the events of the pass.
    pub async fn tick(&mut self, distributor: &Distributor, now: Timestamp) -> Vec<(NamespacedName, RotationEvent)> {
        use tracing::Instrument as _;
        let span = tracing::debug_span!("fabric.operator.key_rotation", events = tracing::field::Empty);
        let events = self.tick_inner(distributor, now).instrument(span.clone()).await;
        span.record("events", events.len());
        events
    }

    async fn tick_inner(&mut self, distributor: &Distributor, now: Timestamp) -> Vec<(NamespacedName, RotationEvent)> {
        let route_keys = distributor.route_keys();
        let compilation = distributor.compilation();
        let mut all_events = Vec::new();
        let mut seen = Vec::new();
        for (name, route_key) in &route_keys {
            if route_key.spec.management != KeyManagement::Operator {
                continue;
            }
            // A RouteKey the compiler refused (invalid, foreign node id, a
            // second one for a node id) gets no keys.
            let object = ObjectKey::new(ObjectKind::RouteKey, name);
            let accepted = compilation
                .condition(&object, ConditionType::Accepted)
                .is_some_and(|c| c.status == fabric_operator_core::api::ConditionStatus::True);
            if !accepted {
                continue;
            }
            seen.push(name.clone());
            if self.retry.get(name).is_some_and(|retry| now < retry.at) {
                continue;
            }
            let events = match self.rotate_one(name, route_key, distributor, now).await {
                Ok(events) => {
                    if self.retry.remove(name).is_some() {
                        tracing::info!(route_key = %name, "key rotation works again");
                    }
                    events
                }
                Err(error) => {
                    let failures = self.retry.get(name).map_or(1, |r| r.failures + 1);
                    let retry = Retry::after(failures, now);
                    let wait = std::time::Duration::from_millis(retry.at.0.saturating_sub(now.0));
                    // The first failure (and then every tenth) at ERROR; the
                    // condition and the Event carry it meanwhile.
                    let reason = error.reason();
                    if failures == 1 || failures.is_multiple_of(10) {
                        tracing::error!(route_key = %name, %error, reason, failures, retry_in = ?wait, "key rotation failed");
                    } else {
                        tracing::debug!(route_key = %name, %error, reason, failures, retry_in = ?wait, "key rotation failed");
                    }
                    self.retry.insert(name.clone(), retry);
                    self.status.entry(name.clone()).or_default().error = Some(error.to_string());
                    Vec::new()
                }
            };
            for event in events {
                self.publisher.announce(name, route_key, &event).await;
                all_events.push((name.clone(), event));
            }
        }
        self.rings.retain(|name, _| seen.contains(name));
        self.published.retain(|name, _| seen.contains(name));
        self.status.retain(|name, _| seen.contains(name));
        self.retry.retain(|name, _| seen.contains(name));
        distributor.set_key_material(self.material(&route_keys));
        all_events
    }

    /// One pass for one RouteKey; an error leaves everything as it was
    /// (the caller backs off).
    async fn rotate_one(
        &mut self,
        name: &NamespacedName,
        route_key: &RouteKey,
        distributor: &Distributor,
        now: Timestamp,
    ) -> Result<Vec<RotationEvent>, RotationError> {
        self.status.entry(name.clone()).or_default().node_id = route_key.spec.node_id.clone();
        if !self.rings.contains_key(name) {
            let ring = self.store.load(name).await.map_err(RotationError::Load)?;
            self.rings.insert(name.clone(), ring);
        }
        let ring = self.rings[name].clone();
        let published = if self.publisher.overlay() {
            self.published.get(name).cloned().unwrap_or_default()
        } else {
            // What the API server has, unless a write of ours is newer than
            // what the watch has brought back so far.
            let from_status = PublishedKeys::from_status(route_key.status.as_ref());
            match self.published.get(name) {
                Some(written) if written != &from_status => written.clone(),
                _ => from_status,
            }
        };
        let fabric = DistributedFabric { distributor, node: NodeId::from(route_key.spec.node_id.as_str()), now };
        let inputs = rotation_plan::Inputs { spec: &route_key.spec, published: &published, ring: &ring, now };
        let plan = rotation_plan::plan(&inputs, &fabric, &mut self.generate)?;
        if plan.ring != ring {
            self.store.save(name, route_key, &plan.ring).await.map_err(RotationError::Save)?;
            self.rings.insert(name.clone(), plan.ring.clone());
        }
        if plan.published != published {
            self.publisher.publish(name, route_key, &plan.published).await.map_err(RotationError::Publish)?;
        }
        self.published.insert(name.clone(), plan.published.clone());
        let status = self.status.entry(name.clone()).or_default();
        status.waiting = plan.waiting.clone();
        status.error = None;
        status.active_key_id = plan.published.active_key_id.clone();
        status.keys = plan.published.keys.iter().map(|k| format!("{}:{:?}", k.key_id, k.state)).collect();
        status.rotations += plan.events.iter().filter(|e| matches!(e, RotationEvent::Activated { .. })).count() as u64;
        Ok(plan.events)
    }

    /// The published overlay (local mode) and the private keys by node id.
    fn material(&self, route_keys: &BTreeMap<NamespacedName, RouteKey>) -> KeyMaterial {
        let mut material = KeyMaterial::default();
        for (name, ring) in &self.rings {
            let Some(route_key) = route_keys.get(name) else { continue };
            let node = NodeId::from(route_key.spec.node_id.as_str());
            let keys = material.signing.entry(node).or_default();
            for private in &ring.keys {
                match private.secret() {
                    Ok(secret) => {
                        keys.insert(KeyId::from(private.key_id.as_str()), secret);
                    }
                    Err(error) => tracing::error!(route_key = %name, %error, "unusable private key"),
                }
            }
        }
        if self.publisher.overlay() {
            for (name, published) in &self.published {
                let mut status = RouteKeyStatus::default();
                published.write_to(&mut status);
                material.published.insert(name.clone(), status);
            }
        }
        material
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::distribution::DistributorOptions;
    use fabric_operator_core::index::{Index, SidecarInfo};

    /// A store whose key file the operator may not read.
    struct Unreadable;

    #[tonic::async_trait]
    impl KeyStore for Unreadable {
        async fn load(&self, name: &NamespacedName) -> Result<KeyRing, KeyStoreError> {
            let path = format!("/state/keys/{}_{}.json", name.namespace, name.name).into();
            Err(KeyStoreError::File { path, source: std::io::ErrorKind::PermissionDenied.into() })
        }
        async fn save(&self, _: &NamespacedName, _: &RouteKey, _: &KeyRing) -> Result<(), KeyStoreError> {
            Ok(())
        }
    }

    fn distributor_with_route_key() -> Distributor {
        let route_key: RouteKey = serde_json::from_value(serde_json::json!({
            "apiVersion": "routing.fabric.dev/v1alpha1",
            "kind": "RouteKey",
            "metadata": {"name": "eu-1", "namespace": "fabric", "generation": 1, "uid": "uid-eu-1"},
            "spec": {"nodeId": "a"},
        }))
        .unwrap();
        let mut index = Index::new();
        assert_eq!(index.apply(route_key), Ok(true));
        index.upsert_sidecar(SidecarInfo {
            node_id: NodeId::from("a"),
            namespace: "fabric".into(),
            name: "a".into(),
            labels: Default::default(),
            peer_address: Some("a.fabric:7400".into()),
            service_account: None,
        });
        let distributor = Distributor::new(DistributorOptions::default());
        distributor.set_objects(index);
        distributor
    }

    #[tokio::test]
    async fn an_unreadable_store_fails_the_pass_naming_the_file() {
        let distributor = distributor_with_route_key();
        let mut rotator = Rotator::with_generator(
            Arc::new(Unreadable),
            Arc::new(LocalPublisher),
            Box::new(|| panic!("no key is generated without the stored ones")),
        );
        let events = rotator.tick(&distributor, Timestamp(1_800_000_000_000)).await;
        assert!(events.is_empty(), "{events:?}");
        let status = &rotator.status()[&NamespacedName::new("fabric", "eu-1")];
        assert_eq!(
            status.error.as_deref(),
            Some("cannot read the private keys: /state/keys/fabric_eu-1.json: permission denied")
        );
    }

    #[test]
    fn each_failed_step_has_its_own_reason() {
        let unreadable = || KeyStoreError::File { path: "k.json".into(), source: std::io::ErrorKind::NotFound.into() };
        let lost = KeyError::Length { key_id: "k1".into(), length: 3 };
        let reasons = [
            RotationError::Load(unreadable()).reason(),
            RotationError::Save(unreadable()).reason(),
            RotationError::Plan(PlanError::Key(lost)).reason(),
            RotationError::Plan(PlanError::Generate(GenerateError("no entropy".into()))).reason(),
        ];
        assert_eq!(reasons, ["load_keys", "save_keys", "unusable_key", "generate_key"]);
    }
}
