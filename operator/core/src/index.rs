//! The index: every CR of the four kinds and every sidecar, as the watches
//! (or a manifest folder) report them. A pure state machine in the manner of
//! linkerd2's policy-controller index: events go in, nothing comes out but
//! whether something changed, and the compiler reads it.
//!
//! Everything is kept in `BTreeMap`s keyed by namespace/name so that
//! iteration order, and therefore the compiled output, never depends on the
//! order in which events arrived.

use std::collections::BTreeMap;
use std::fmt;

use fabric_core::NodeId;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde::{Serialize, Serializer};

use crate::api::{LinkStateArea, NeighborPolicy, RouteKey, RoutePolicy};
use crate::names::{NODE_ID_LABEL, PEER_ADDRESS_ANNOTATION};
use crate::selector::Labels;

/// The kinds of object the compiler reads or reports on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ObjectKind {
    RoutePolicy,
    NeighborPolicy,
    RouteKey,
    LinkStateArea,
    /// A sidecar, known by the pod that runs it.
    Pod,
}

impl ObjectKind {
    pub const fn as_str(self) -> &'static str {
        match self {
            ObjectKind::RoutePolicy => "RoutePolicy",
            ObjectKind::NeighborPolicy => "NeighborPolicy",
            ObjectKind::RouteKey => "RouteKey",
            ObjectKind::LinkStateArea => "LinkStateArea",
            ObjectKind::Pod => "Pod",
        }
    }
}

/// Namespace and name of an object.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct NamespacedName {
    pub namespace: String,
    pub name: String,
}

impl NamespacedName {
    pub fn new(namespace: impl Into<String>, name: impl Into<String>) -> Self {
        Self { namespace: namespace.into(), name: name.into() }
    }
}

impl fmt::Display for NamespacedName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.namespace, self.name)
    }
}

/// Names one object of one kind; conditions and problems are keyed by it.
/// Ordered by kind, then namespace, then name.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ObjectKey {
    pub kind: ObjectKind,
    pub namespace: String,
    pub name: String,
}

impl ObjectKey {
    pub fn new(kind: ObjectKind, name: &NamespacedName) -> Self {
        Self { kind, namespace: name.namespace.clone(), name: name.name.clone() }
    }
}

/// `RoutePolicy team-a/gold`: how objects are named in every message.
impl fmt::Display for ObjectKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}/{}", self.kind.as_str(), self.namespace, self.name)
    }
}

/// Serialized as its display text, so maps keyed by it stay JSON/YAML
/// friendly.
impl Serialize for ObjectKey {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

/// A routing sidecar as the compiler needs it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SidecarInfo {
    pub node_id: NodeId,
    pub namespace: String,
    /// The pod (or other object) running the sidecar; with the namespace,
    /// the key of the sidecar in the index.
    pub name: String,
    pub labels: Labels,
    /// `host:port` other sidecars dial.
    pub peer_address: Option<String>,
    /// The ServiceAccount the pod runs as: what a RouteKey's
    /// `serviceAccountName` binds a node id to. `None` for sidecars that
    /// are not pods (local mode registrations).
    pub service_account: Option<String>,
}

impl SidecarInfo {
    /// A sidecar from its pod: node id from the `routing.fabric.dev/node-id`
    /// label (default: the pod name), peer address from the
    /// `routing.fabric.dev/peer-address` annotation, ServiceAccount from
    /// `spec.serviceAccountName` (`default` when unset, as the API server
    /// admits it). `default_namespace` applies when the metadata has none
    /// (manifests).
    pub fn from_pod(
        metadata: &ObjectMeta,
        service_account: Option<&str>,
        default_namespace: &str,
    ) -> Result<Self, IndexError> {
        let name =
            metadata.name.clone().filter(|n| !n.is_empty()).ok_or(IndexError::MissingName { kind: ObjectKind::Pod })?;
        let labels = metadata.labels.clone().unwrap_or_default();
        let node_id = labels.get(NODE_ID_LABEL).filter(|id| !id.is_empty()).cloned().unwrap_or_else(|| name.clone());
        let peer_address = metadata.annotations.as_ref().and_then(|a| a.get(PEER_ADDRESS_ANNOTATION)).cloned();
        Ok(Self {
            node_id: NodeId::from(node_id),
            namespace: metadata.namespace.clone().unwrap_or_else(|| default_namespace.to_owned()),
            name,
            labels,
            peer_address,
            service_account: Some(service_account.filter(|sa| !sa.is_empty()).unwrap_or("default").to_owned()),
        })
    }

    pub fn key(&self) -> ObjectKey {
        ObjectKey { kind: ObjectKind::Pod, namespace: self.namespace.clone(), name: self.name.clone() }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum IndexError {
    #[error("a {} without metadata.name", kind.as_str())]
    MissingName { kind: ObjectKind },
    #[error("{} {name} has no metadata.namespace (the CRDs are namespaced)", kind.as_str())]
    MissingNamespace { kind: ObjectKind, name: String },
}

/// A CR kind the index stores.
pub trait Indexed: Clone + PartialEq + 'static {
    const KIND: ObjectKind;
    fn metadata(&self) -> &ObjectMeta;
    fn store(index: &Index) -> &BTreeMap<NamespacedName, Self>;
    fn store_mut(index: &mut Index) -> &mut BTreeMap<NamespacedName, Self>;
}

macro_rules! indexed {
    ($kind:ident, $field:ident) => {
        impl Indexed for $kind {
            const KIND: ObjectKind = ObjectKind::$kind;
            fn metadata(&self) -> &ObjectMeta {
                &self.metadata
            }
            fn store(index: &Index) -> &BTreeMap<NamespacedName, Self> {
                &index.$field
            }
            fn store_mut(index: &mut Index) -> &mut BTreeMap<NamespacedName, Self> {
                &mut index.$field
            }
        }
    };
}

indexed!(RoutePolicy, route_policies);
indexed!(NeighborPolicy, neighbor_policies);
indexed!(RouteKey, route_keys);
indexed!(LinkStateArea, link_state_areas);

/// The namespace/name of an object, or why it cannot be indexed.
pub fn namespaced_name<K: Indexed>(object: &K) -> Result<NamespacedName, IndexError> {
    name_in(K::KIND, object.metadata())
}

fn name_in(kind: ObjectKind, metadata: &ObjectMeta) -> Result<NamespacedName, IndexError> {
    let name = metadata.name.clone().filter(|n| !n.is_empty()).ok_or(IndexError::MissingName { kind })?;
    let namespace = metadata
        .namespace
        .clone()
        .filter(|n| !n.is_empty())
        .ok_or_else(|| IndexError::MissingNamespace { kind, name: name.clone() })?;
    Ok(NamespacedName { namespace, name })
}

fn unreadable_name<K: Indexed>(object: &Unreadable) -> Result<NamespacedName, IndexError> {
    name_in(K::KIND, &object.metadata)
}

/// All objects and sidecars, and a revision that grows on every change.
#[derive(Clone, Debug, Default)]
pub struct Index {
    route_policies: BTreeMap<NamespacedName, RoutePolicy>,
    neighbor_policies: BTreeMap<NamespacedName, NeighborPolicy>,
    route_keys: BTreeMap<NamespacedName, RouteKey>,
    link_state_areas: BTreeMap<NamespacedName, LinkStateArea>,
    sidecars: BTreeMap<NamespacedName, SidecarInfo>,
    /// Objects the API server stores but that do not decode as their kind
    /// (a value a CRD of an older version let through): each is reported
    /// on itself and left out of the compilation, never stopping the rest.
    unreadable: BTreeMap<ObjectKey, Unreadable>,
    /// The node id each running pod (by uid) started with: it is fixed for
    /// the life of the pod (see [`Index::upsert_pod_sidecar`]).
    pinned_node_ids: BTreeMap<NamespacedName, (String, NodeId)>,
    /// Pods whose node-id label was changed while they run: the node id
    /// the label asks for (refused; the pinned one stays).
    refused_node_ids: BTreeMap<NamespacedName, NodeId>,
    revision: u64,
}

/// What is known of an object that does not decode: its metadata, its raw
/// status (to keep the conditions other writers own), and why.
#[derive(Clone, Debug, PartialEq)]
pub struct Unreadable {
    pub metadata: ObjectMeta,
    pub status: serde_json::Value,
    /// Where decoding failed, e.g. `spec.import.maxHopCount`.
    pub field: String,
    /// What failed there, e.g. `invalid value: integer 4294967296, expected u32`.
    pub error: String,
}

impl Index {
    pub fn new() -> Self {
        Self::default()
    }

    /// Grows by one on every event that changed the index; the runtime
    /// recompiles only when it moved.
    pub fn revision(&self) -> u64 {
        self.revision
    }

    fn changed(&mut self, changed: bool) -> bool {
        if changed {
            self.revision += 1;
        }
        changed
    }

    /// A watch `Apply` event: insert or replace. Returns whether the index
    /// changed (re-applying an identical object does not).
    pub fn apply<K: Indexed>(&mut self, object: K) -> Result<bool, IndexError> {
        let key = namespaced_name(&object)?;
        let was_unreadable = self.unreadable.remove(&ObjectKey::new(K::KIND, &key)).is_some();
        let store = K::store_mut(self);
        let changed = store.get(&key) != Some(&object);
        if changed {
            store.insert(key, object);
        }
        Ok(self.changed(changed || was_unreadable))
    }

    /// A watch `Delete` event. Returns whether the object was known.
    pub fn delete<K: Indexed>(&mut self, namespace: &str, name: &str) -> bool {
        let name = NamespacedName::new(namespace, name);
        let was_unreadable = self.unreadable.remove(&ObjectKey::new(K::KIND, &name)).is_some();
        let removed = K::store_mut(self).remove(&name).is_some();
        self.changed(removed || was_unreadable)
    }

    /// A watch `Apply` of an object of kind `K` that does not decode: it
    /// replaces the decoded version, if any (the edit that broke it is the
    /// object now). Returns whether the index changed.
    pub fn apply_unreadable<K: Indexed>(&mut self, object: Unreadable) -> Result<bool, IndexError> {
        let name = unreadable_name::<K>(&object)?;
        let removed = K::store_mut(self).remove(&name).is_some();
        let key = ObjectKey::new(K::KIND, &name);
        let changed = self.unreadable.get(&key) != Some(&object);
        if changed {
            self.unreadable.insert(key, object);
        }
        Ok(self.changed(changed || removed))
    }

    /// A re-list of kind `K`: its undecodable objects (the decoded ones go
    /// through [`Index::replace`]).
    pub fn replace_unreadable<K: Indexed>(&mut self, objects: impl IntoIterator<Item = Unreadable>) -> Vec<IndexError> {
        let mut errors = Vec::new();
        let mut fresh = BTreeMap::new();
        for object in objects {
            match unreadable_name::<K>(&object) {
                Ok(name) => {
                    K::store_mut(self).remove(&name);
                    fresh.insert(ObjectKey::new(K::KIND, &name), object);
                }
                Err(error) => errors.push(error),
            }
        }
        let before: BTreeMap<ObjectKey, Unreadable> = self
            .unreadable
            .iter()
            .filter(|(key, _)| key.kind == K::KIND)
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        self.unreadable.retain(|key, _| key.kind != K::KIND);
        let changed = before != fresh;
        self.unreadable.extend(fresh);
        self.changed(changed);
        errors
    }

    /// The objects that do not decode, by kind, namespace and name.
    pub fn unreadable(&self) -> impl Iterator<Item = (&ObjectKey, &Unreadable)> {
        self.unreadable.iter()
    }

    /// A watch re-list (`Init` .. `InitDone`): the complete set of one kind
    /// replaces what was known. Objects that cannot be indexed are skipped
    /// and returned as errors.
    pub fn replace<K: Indexed>(&mut self, objects: impl IntoIterator<Item = K>) -> Vec<IndexError> {
        let mut errors = Vec::new();
        let mut fresh = BTreeMap::new();
        for object in objects {
            match namespaced_name(&object) {
                Ok(key) => {
                    fresh.insert(key, object);
                }
                Err(error) => errors.push(error),
            }
        }
        let store = K::store_mut(self);
        let changed = *store != fresh;
        *store = fresh;
        self.changed(changed);
        errors
    }

    pub fn get<K: Indexed>(&self, namespace: &str, name: &str) -> Option<&K> {
        K::store(self).get(&NamespacedName::new(namespace, name))
    }

    /// Every object of one kind, in namespace/name order.
    pub fn objects<K: Indexed>(&self) -> impl Iterator<Item = (&NamespacedName, &K)> {
        K::store(self).iter()
    }

    /// A sidecar appeared or changed (pod event). Returns whether the index
    /// changed.
    pub fn upsert_sidecar(&mut self, sidecar: SidecarInfo) -> bool {
        let key = NamespacedName::new(&sidecar.namespace, &sidecar.name);
        let changed = self.sidecars.get(&key) != Some(&sidecar);
        if changed {
            self.sidecars.insert(key, sidecar);
        }
        self.changed(changed)
    }

    /// The sidecar of a running pod with uid `uid`. Its node id is fixed
    /// for the life of the pod: a sidecar authenticates, peers and signs as
    /// the node id it started with, and moving it under another identity
    /// mid-flight left it without a config and its peers flapping. A
    /// changed `routing.fabric.dev/node-id` label on the same pod is
    /// refused (see [`Index::refused_node_ids`]) and the pinned id kept;
    /// a new pod (another uid) takes the label's id.
    pub fn upsert_pod_sidecar(&mut self, mut sidecar: SidecarInfo, uid: &str) -> bool {
        let key = NamespacedName::new(&sidecar.namespace, &sidecar.name);
        let refusal_changed = match self.pinned_node_ids.get(&key) {
            Some((pinned_uid, pinned)) if pinned_uid == uid && pinned != &sidecar.node_id => {
                let requested = std::mem::replace(&mut sidecar.node_id, pinned.clone());
                self.refused_node_ids.insert(key, requested.clone()) != Some(requested)
            }
            Some((pinned_uid, _)) if pinned_uid == uid => self.refused_node_ids.remove(&key).is_some(),
            _ => {
                self.pinned_node_ids.insert(key.clone(), (uid.to_owned(), sidecar.node_id.clone()));
                self.refused_node_ids.remove(&key).is_some()
            }
        };
        let changed = self.upsert_sidecar(sidecar);
        self.changed(refusal_changed) || changed
    }

    /// Pods whose node-id label asks for another id than the one they run
    /// as, with the id asked for.
    pub fn refused_node_ids(&self) -> impl Iterator<Item = (&NamespacedName, &NodeId)> {
        self.refused_node_ids.iter()
    }

    /// A sidecar's pod is gone.
    pub fn remove_sidecar(&mut self, namespace: &str, name: &str) -> bool {
        let key = NamespacedName::new(namespace, name);
        self.pinned_node_ids.remove(&key);
        let refusal = self.refused_node_ids.remove(&key).is_some();
        let removed = self.sidecars.remove(&key).is_some();
        self.changed(removed || refusal)
    }

    /// The sidecar of pod `namespace/name`.
    pub fn sidecar(&self, namespace: &str, name: &str) -> Option<&SidecarInfo> {
        self.sidecars.get(&NamespacedName::new(namespace, name))
    }

    /// Every sidecar, in namespace/name order.
    pub fn sidecars(&self) -> impl Iterator<Item = &SidecarInfo> {
        self.sidecars.values()
    }
}

#[cfg(test)]
mod tests {
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;

    #[test]
    fn a_running_pods_node_id_is_fixed_and_a_new_pod_takes_the_label() {
        let mut index = Index::new();
        let with_id = |id: &str| SidecarInfo {
            node_id: NodeId::from(id),
            namespace: "fabric".into(),
            name: "edge-b".into(),
            labels: Default::default(),
            peer_address: None,
            service_account: None,
        };
        assert!(index.upsert_pod_sidecar(with_id("edge-b"), "uid-1"));
        assert!(index.upsert_pod_sidecar(with_id("edge-b2"), "uid-1"), "the refusal is a change");
        assert_eq!(index.sidecar("fabric", "edge-b").unwrap().node_id, NodeId::from("edge-b"));
        let refused: Vec<_> = index.refused_node_ids().map(|(k, id)| (k.to_string(), id.to_string())).collect();
        assert_eq!(refused, [("fabric/edge-b".to_owned(), "edge-b2".to_owned())]);
        assert!(!index.upsert_pod_sidecar(with_id("edge-b2"), "uid-1"), "the same refusal again");
        assert!(index.upsert_pod_sidecar(with_id("edge-b"), "uid-1"), "the label back: refusal cleared");
        assert_eq!(index.refused_node_ids().count(), 0);
        // The pod recreated (another uid) with the new label: it takes it.
        assert!(index.upsert_pod_sidecar(with_id("edge-b2"), "uid-2"));
        assert_eq!(index.sidecar("fabric", "edge-b").unwrap().node_id, NodeId::from("edge-b2"));
        assert_eq!(index.refused_node_ids().count(), 0);
    }

    use super::*;
    use crate::api::{RoutePolicySpec, route_policy};
    use crate::compile::population::Population;

    fn policy(namespace: Option<&str>, name: &str, priority: i32) -> RoutePolicy {
        let mut policy = RoutePolicy::new(
            name,
            RoutePolicySpec {
                sidecar_selector: LabelSelector::default(),
                priority,
                mode: Default::default(),
                import: Default::default(),
                export: Default::default(),
                tie_breakers: None,
                security: Default::default(),
                stability: route_policy::StabilitySpec::default(),
            },
        );
        policy.metadata.namespace = namespace.map(str::to_owned);
        policy
    }

    fn sidecar(namespace: &str, name: &str, labels: &[(&str, &str)]) -> SidecarInfo {
        SidecarInfo {
            node_id: NodeId::from(name),
            namespace: namespace.into(),
            name: name.into(),
            labels: labels.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
            peer_address: None,
            service_account: None,
        }
    }

    #[test]
    fn apply_and_delete_track_changes_in_the_revision() {
        let mut index = Index::new();
        assert_eq!(index.revision(), 0);
        assert_eq!(index.apply(policy(Some("ns"), "a", 1)), Ok(true));
        assert_eq!(index.revision(), 1);
        assert_eq!(index.apply(policy(Some("ns"), "a", 1)), Ok(false), "identical re-apply");
        assert_eq!(index.revision(), 1);
        assert_eq!(index.apply(policy(Some("ns"), "a", 2)), Ok(true));
        assert_eq!(index.get::<RoutePolicy>("ns", "a").map(|p| p.spec.priority), Some(2));
        assert!(index.delete::<RoutePolicy>("ns", "a"));
        assert!(!index.delete::<RoutePolicy>("ns", "a"), "unknown delete changes nothing");
        assert_eq!(index.revision(), 3);
    }

    #[test]
    fn objects_iterate_in_namespace_then_name_order_whatever_the_arrival_order() {
        let mut index = Index::new();
        for (namespace, name) in [("b", "x"), ("a", "z"), ("a", "y")] {
            index.apply(policy(Some(namespace), name, 0)).unwrap();
        }
        let names: Vec<String> = index.objects::<RoutePolicy>().map(|(key, _)| key.to_string()).collect();
        assert_eq!(names, ["a/y", "a/z", "b/x"]);
    }

    #[test]
    fn objects_without_name_or_namespace_are_refused_with_the_kind() {
        let mut index = Index::new();
        let error = index.apply(policy(None, "a", 0)).unwrap_err();
        assert_eq!(error.to_string(), "RoutePolicy a has no metadata.namespace (the CRDs are namespaced)");
        assert_eq!(index.revision(), 0);
    }

    #[test]
    fn replace_swaps_the_whole_set_of_one_kind() {
        let mut index = Index::new();
        index.apply(policy(Some("ns"), "old", 0)).unwrap();
        let errors = index.replace(vec![policy(Some("ns"), "new", 0), policy(None, "broken", 0)]);
        assert_eq!(errors.len(), 1);
        let names: Vec<String> = index.objects::<RoutePolicy>().map(|(key, _)| key.name.clone()).collect();
        assert_eq!(names, ["new"]);
        let revision = index.revision();
        index.replace(vec![policy(Some("ns"), "new", 0)]);
        assert_eq!(index.revision(), revision, "an identical re-list is no change");
    }

    #[test]
    fn sidecars_upsert_remove_and_selection_is_namespaced() {
        let mut index = Index::new();
        assert!(index.upsert_sidecar(sidecar("ns", "eu-1", &[("region", "eu")])));
        assert!(!index.upsert_sidecar(sidecar("ns", "eu-1", &[("region", "eu")])));
        index.upsert_sidecar(sidecar("ns", "us-1", &[("region", "us")]));
        index.upsert_sidecar(sidecar("other", "eu-2", &[("region", "eu")]));
        let selector = LabelSelector {
            match_labels: Some([("region".to_string(), "eu".to_string())].into()),
            match_expressions: None,
        };
        let selected = |index: &Index| -> Vec<String> {
            let population = Population::new(index.sidecars());
            population.select("ns", &selector).into_iter().map(|i| population.member(i).name.clone()).collect()
        };
        assert_eq!(selected(&index), ["eu-1"]);
        assert!(index.remove_sidecar("ns", "eu-1"));
        assert_eq!(selected(&index).len(), 0);
        assert!(!index.remove_sidecar("ns", "eu-1"));
    }

    #[test]
    fn sidecar_from_pod_uses_label_annotation_service_account_and_defaults() {
        let mut metadata = ObjectMeta { name: Some("pod-7f9c".into()), ..Default::default() };
        let plain = SidecarInfo::from_pod(&metadata, None, "default").unwrap();
        assert_eq!(plain.node_id.as_str(), "pod-7f9c");
        assert_eq!(plain.namespace, "default");
        assert_eq!(plain.peer_address, None);
        assert_eq!(plain.service_account.as_deref(), Some("default"));

        metadata.namespace = Some("fabric".into());
        metadata.labels = Some([(NODE_ID_LABEL.to_string(), "eu-1".to_string())].into());
        metadata.annotations = Some([(PEER_ADDRESS_ANNOTATION.to_string(), "10.0.0.1:7400".to_string())].into());
        let labelled = SidecarInfo::from_pod(&metadata, Some("edge"), "default").unwrap();
        assert_eq!(labelled.service_account.as_deref(), Some("edge"));
        assert_eq!(labelled.node_id.as_str(), "eu-1");
        assert_eq!(labelled.namespace, "fabric");
        assert_eq!(labelled.peer_address.as_deref(), Some("10.0.0.1:7400"));
        assert_eq!(labelled.key().to_string(), "Pod fabric/pod-7f9c");

        let nameless = SidecarInfo::from_pod(&ObjectMeta::default(), None, "default");
        assert_eq!(nameless, Err(IndexError::MissingName { kind: ObjectKind::Pod }));
    }
}
