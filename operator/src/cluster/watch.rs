//! Watches feeding the pure [`Index`]: one kube-runtime `watcher` per kind
//! (the four CRDs and the sidecar Pods), all sending into one channel, read
//! by one task that owns the index ([`IndexLoop`]). Turning a watch event
//! into index calls is the pure [`apply_event`], tested without an API
//! server; the loop only adds the debounce and hands the index to the
//! [`Distributor`].

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::Pod;
use kube::runtime::WatchStreamExt;
use kube::runtime::watcher::{self, Event};
use kube::{Api, Client};
use serde::de::DeserializeOwned;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::distribution::Distributor;
use crate::kubernetes::lenient::Lenient;
use fabric_operator_core::api::{LinkStateArea, NeighborPolicy, RouteKey, RoutePolicy};
use fabric_operator_core::index::{Index, Indexed, SidecarInfo};
use fabric_operator_core::names::PEER_ADDRESS_ANNOTATION;
use fabric_operator_core::names::{DEFAULT_PEER_PORT, PEER_PORT_ANNOTATION, SIDECAR_LABEL, SIDECAR_LABEL_SELECTOR};

/// How one watched kind goes into the index. `issues` collects what could
/// not be indexed (the caller logs and counts them: nothing is dropped
/// silently).
pub(super) trait Watched: Sized {
    const KIND: &'static str;
    /// A watch `Apply`: insert or update. Returns whether the index changed.
    fn upsert(self, index: &mut Index, issues: &mut Vec<String>) -> bool;
    /// A watch `Delete`.
    fn remove(self, index: &mut Index, issues: &mut Vec<String>) -> bool;
    /// A completed re-list: the complete set of this kind.
    fn replace(objects: Vec<Self>, index: &mut Index, issues: &mut Vec<String>) -> bool;
}

/// The four CRDs, read so that one undecodable object is reported on
/// itself instead of failing the list of its kind (see [`Lenient`]).
impl<K: Indexed + kube::Resource<DynamicType = ()>> Watched for Lenient<K> {
    const KIND: &'static str = K::KIND.as_str();
    fn upsert(self, index: &mut Index, issues: &mut Vec<String>) -> bool {
        let result = match self {
            Lenient::Read(object) => index.apply(object),
            Lenient::Unreadable(object) => {
                tracing::warn!(
                    kind = Self::KIND,
                    namespace = object.metadata.namespace.as_deref().unwrap_or_default(),
                    name = object.metadata.name.as_deref().unwrap_or_default(),
                    field = object.field,
                    error = object.error,
                    "object cannot be read; it is refused (Accepted=False) and the others compile"
                );
                index.apply_unreadable::<K>(object)
            }
        };
        result.unwrap_or_else(|error| {
            issues.push(error.to_string());
            false
        })
    }
    fn remove(self, index: &mut Index, issues: &mut Vec<String>) -> bool {
        let metadata = kube::Resource::meta(&self);
        match (metadata.namespace.as_deref(), metadata.name.as_deref()) {
            (Some(namespace), Some(name)) => index.delete::<K>(namespace, name),
            _ => {
                issues.push(format!("delete event of a {} without namespace or name ignored", Self::KIND));
                false
            }
        }
    }
    fn replace(objects: Vec<Self>, index: &mut Index, issues: &mut Vec<String>) -> bool {
        let before = index.revision();
        let (mut read, mut unreadable) = (Vec::new(), Vec::new());
        for object in objects {
            match object {
                Lenient::Read(object) => read.push(object),
                Lenient::Unreadable(object) => unreadable.push(object),
            }
        }
        issues.extend(index.replace(read).iter().map(ToString::to_string));
        issues.extend(index.replace_unreadable::<K>(unreadable).iter().map(ToString::to_string));
        index.revision() != before
    }
}

/// The sidecar a Pod runs, or `None` while it is not one the fabric can
/// use: not labelled `routing.fabric.dev/sidecar=true`, terminating
/// (`deletionTimestamp` set), finished (`Succeeded`/`Failed`), or without a
/// pod IP yet. Node id and labels come from [`SidecarInfo::from_pod`];
/// the peer address from the `routing.fabric.dev/peer-address` annotation,
/// else `<podIP>:<port>` with the port from `routing.fabric.dev/peer-port`
/// (default [`DEFAULT_PEER_PORT`]). An unparsable port leaves the sidecar
/// without an address (neighbors then get none for it) and is an issue.
pub(super) fn sidecar_from_pod(pod: &Pod, issues: &mut Vec<String>) -> Option<SidecarInfo> {
    let metadata = &pod.metadata;
    let labelled = metadata.labels.as_ref().and_then(|l| l.get(SIDECAR_LABEL)).is_some_and(|v| v == "true");
    if !labelled || metadata.deletion_timestamp.is_some() {
        return None;
    }
    let status = pod.status.as_ref()?;
    if matches!(status.phase.as_deref(), Some("Succeeded" | "Failed")) {
        return None;
    }
    let ip = status.pod_ip.as_deref().filter(|ip| !ip.is_empty())?;
    let service_account = pod.spec.as_ref().and_then(|spec| spec.service_account_name.as_deref());
    let mut info = match SidecarInfo::from_pod(metadata, service_account, "") {
        Ok(info) => info,
        Err(error) => {
            issues.push(error.to_string());
            return None;
        }
    };
    if info.namespace.is_empty() {
        issues.push(format!("Pod {} has no metadata.namespace; ignored", info.name));
        return None;
    }
    if info.peer_address.is_none() {
        let annotations = metadata.annotations.as_ref();
        let port = annotations.and_then(|a| a.get(PEER_PORT_ANNOTATION));
        match port.map(|p| p.parse::<u16>()) {
            None => info.peer_address = Some(host_port(ip, DEFAULT_PEER_PORT)),
            Some(Ok(port)) if port != 0 => info.peer_address = Some(host_port(ip, port)),
            Some(_) => issues.push(format!(
                "Pod {}/{}: metadata.annotations[{PEER_PORT_ANNOTATION}] = {:?} is not a port (1-65535); \
                 the sidecar has no peer address (set it or {PEER_ADDRESS_ANNOTATION})",
                info.namespace,
                info.name,
                port.map(String::as_str).unwrap_or_default(),
            )),
        }
    }
    Some(info)
}

/// `ip:port`, with brackets for IPv6.
fn host_port(ip: &str, port: u16) -> String {
    match ip.parse::<std::net::IpAddr>() {
        Ok(ip) => std::net::SocketAddr::new(ip, port).to_string(),
        Err(_) => format!("{ip}:{port}"),
    }
}

impl Watched for Pod {
    const KIND: &'static str = "Pod";

    fn upsert(self, index: &mut Index, issues: &mut Vec<String>) -> bool {
        match sidecar_from_pod(&self, issues) {
            Some(info) => index.upsert_pod_sidecar(info, self.metadata.uid.as_deref().unwrap_or_default()),
            // It stopped being a usable sidecar (terminating, lost its IP,
            // label removed): it leaves the fabric now, not at deletion.
            None => self.remove(index, issues),
        }
    }

    fn remove(self, index: &mut Index, _: &mut Vec<String>) -> bool {
        let (Some(namespace), Some(name)) = (&self.metadata.namespace, &self.metadata.name) else { return false };
        index.remove_sidecar(namespace, name)
    }

    fn replace(objects: Vec<Self>, index: &mut Index, issues: &mut Vec<String>) -> bool {
        let fresh: Vec<(SidecarInfo, &str)> = objects
            .iter()
            .filter_map(|pod| Some((sidecar_from_pod(pod, issues)?, pod.metadata.uid.as_deref().unwrap_or_default())))
            .collect();
        let gone: Vec<(String, String)> = index
            .sidecars()
            .filter(|old| !fresh.iter().any(|(new, _)| new.namespace == old.namespace && new.name == old.name))
            .map(|old| (old.namespace.clone(), old.name.clone()))
            .collect();
        let mut changed = false;
        for (namespace, name) in gone {
            changed |= index.remove_sidecar(&namespace, &name);
        }
        for (info, uid) in fresh {
            changed |= index.upsert_pod_sidecar(info, uid);
        }
        changed
    }
}

/// What the watch of one kind has told so far, beside the index: the
/// re-list being buffered, whether a first list completed, and the issues
/// not yet logged.
#[derive(Debug)]
pub(super) struct WatchState<K> {
    relist: Option<Vec<K>>,
    /// A complete list (`InitDone`) was applied at least once.
    pub synced: bool,
    /// What could not be indexed, for the caller to log and count.
    pub issues: Vec<String>,
}

impl<K> Default for WatchState<K> {
    fn default() -> Self {
        Self { relist: None, synced: false, issues: Vec::new() }
    }
}

/// One watch event into the index; returns whether the index changed.
/// `Init` .. `InitApply`* .. `InitDone` is buffered and applied at
/// `InitDone` as one [`Watched::replace`], so a re-list is one change (and
/// objects deleted while the watch was down disappear), and the index never
/// holds half a list.
pub(super) fn apply_event<K: Watched>(index: &mut Index, state: &mut WatchState<K>, event: Event<K>) -> bool {
    match event {
        Event::Apply(object) => object.upsert(index, &mut state.issues),
        Event::Delete(object) => object.remove(index, &mut state.issues),
        Event::Init => {
            state.relist = Some(Vec::new());
            false
        }
        Event::InitApply(object) => {
            state.relist.get_or_insert_with(Vec::new).push(object);
            false
        }
        Event::InitDone => {
            let objects = state.relist.take().unwrap_or_default();
            state.synced = true;
            K::replace(objects, index, &mut state.issues)
        }
    }
}

/// An event of one of the watched kinds.
#[derive(Debug)]
// Events move once through a channel, one at a time: boxing the pod variant
// would cost an allocation per event to save a copy of 2 KB.
#[allow(clippy::large_enum_variant)]
pub(super) enum WatchEvent {
    RoutePolicy(Event<Lenient<RoutePolicy>>),
    NeighborPolicy(Event<Lenient<NeighborPolicy>>),
    RouteKey(Event<Lenient<RouteKey>>),
    LinkStateArea(Event<Lenient<LinkStateArea>>),
    Pod(Event<Pod>),
}

/// The index and the watch state of every kind.
#[derive(Debug, Default)]
pub(super) struct Watches {
    index: Index,
    route_policies: WatchState<Lenient<RoutePolicy>>,
    neighbor_policies: WatchState<Lenient<NeighborPolicy>>,
    route_keys: WatchState<Lenient<RouteKey>>,
    link_state_areas: WatchState<Lenient<LinkStateArea>>,
    pods: WatchState<Pod>,
    /// Events whose object could not be indexed, since start.
    pub skipped: u64,
}

impl Watches {
    pub(super) fn new() -> Self {
        Self::default()
    }

    /// Applies one event; returns whether the index changed.
    pub(super) fn apply(&mut self, event: WatchEvent) -> bool {
        let index = &mut self.index;
        match event {
            WatchEvent::RoutePolicy(e) => apply_event(index, &mut self.route_policies, e),
            WatchEvent::NeighborPolicy(e) => apply_event(index, &mut self.neighbor_policies, e),
            WatchEvent::RouteKey(e) => apply_event(index, &mut self.route_keys, e),
            WatchEvent::LinkStateArea(e) => apply_event(index, &mut self.link_state_areas, e),
            WatchEvent::Pod(e) => apply_event(index, &mut self.pods, e),
        }
    }

    /// Every kind completed a first list: the index is the cluster's, and
    /// compiling it cannot push configs missing objects or sidecars.
    pub(super) fn synced(&self) -> bool {
        self.unsynced().is_empty()
    }

    /// The kinds still waiting for their first list.
    pub(super) fn unsynced(&self) -> Vec<&'static str> {
        let states = [
            (<Lenient<RoutePolicy> as Watched>::KIND, self.route_policies.synced),
            (<Lenient<NeighborPolicy> as Watched>::KIND, self.neighbor_policies.synced),
            (<Lenient<RouteKey> as Watched>::KIND, self.route_keys.synced),
            (<Lenient<LinkStateArea> as Watched>::KIND, self.link_state_areas.synced),
            (<Pod as Watched>::KIND, self.pods.synced),
        ];
        states.into_iter().filter(|(_, synced)| !synced).map(|(kind, _)| kind).collect()
    }

    /// The issues since the last call, with the kind (`RoutePolicy: ...`).
    pub(super) fn take_issues(&mut self) -> Vec<String> {
        let mut issues = Vec::new();
        let mut take = |kind: &str, list: &mut Vec<String>| {
            issues.extend(list.drain(..).map(|issue| format!("{kind}: {issue}")));
        };
        take(<Lenient<RoutePolicy> as Watched>::KIND, &mut self.route_policies.issues);
        take(<Lenient<NeighborPolicy> as Watched>::KIND, &mut self.neighbor_policies.issues);
        take(<Lenient<RouteKey> as Watched>::KIND, &mut self.route_keys.issues);
        take(<Lenient<LinkStateArea> as Watched>::KIND, &mut self.link_state_areas.issues);
        take(<Pod as Watched>::KIND, &mut self.pods.issues);
        self.skipped += issues.len() as u64;
        issues
    }

    pub(super) fn index(&self) -> &Index {
        &self.index
    }
}

/// Starts one watcher per kind (all namespaces, or `namespace`), sending
/// into `sender`. A failing watch (CRD missing, RBAC, API server down) is
/// logged and retried with kube's default backoff; it never ends the task.
pub(super) fn spawn_watchers(
    client: &Client,
    namespace: Option<&str>,
    sender: mpsc::Sender<WatchEvent>,
) -> Vec<JoinHandle<()>> {
    fn api<K>(client: &Client, namespace: Option<&str>) -> Api<K>
    where
        K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope>,
        K::DynamicType: Default,
    {
        match namespace {
            Some(namespace) => Api::namespaced(client.clone(), namespace),
            None => Api::all(client.clone()),
        }
    }
    let crds = watcher::Config::default();
    let pods = watcher::Config::default().labels(SIDECAR_LABEL_SELECTOR);
    vec![
        tokio::spawn(forward(api(client, namespace), crds.clone(), sender.clone(), WatchEvent::RoutePolicy)),
        tokio::spawn(forward(api(client, namespace), crds.clone(), sender.clone(), WatchEvent::NeighborPolicy)),
        tokio::spawn(forward(api(client, namespace), crds.clone(), sender.clone(), WatchEvent::RouteKey)),
        tokio::spawn(forward(api(client, namespace), crds, sender.clone(), WatchEvent::LinkStateArea)),
        tokio::spawn(forward(api::<Pod>(client, namespace), pods, sender, WatchEvent::Pod)),
    ]
}

async fn forward<K>(
    api: Api<K>,
    config: watcher::Config,
    sender: mpsc::Sender<WatchEvent>,
    wrap: fn(Event<K>) -> WatchEvent,
) where
    K: kube::Resource + Clone + DeserializeOwned + std::fmt::Debug + Send + 'static,
    K::DynamicType: Default,
{
    let kind = K::kind(&K::DynamicType::default()).into_owned();
    let mut stream = watcher::watcher(api, config).default_backoff().boxed();
    while let Some(item) = stream.next().await {
        match item {
            Ok(event) => {
                if sender.send(wrap(event)).await.is_err() {
                    return; // the index loop is gone: shutting down
                }
            }
            Err(error) => tracing::warn!(
                kind, %error,
                "watch failed; retrying with backoff (is the CRD installed and the RBAC role bound?)"
            ),
        }
    }
}

/// Owns the index: applies watch events and, once every kind is listed,
/// hands the index to the distributor (which recompiles and pushes) and
/// publishes it to the status writer.
pub(super) struct IndexLoop {
    watches: Watches,
    distributor: Distributor,
    snapshots: watch::Sender<Option<Arc<Index>>>,
    debounce: Duration,
    published: Option<u64>,
}

impl IndexLoop {
    /// `debounce`: after the first change, wait this long for more before
    /// recompiling (a burst of pod events is one recompile). A re-list is
    /// one change already (see [`apply_event`]).
    pub(super) fn new(
        distributor: Distributor,
        snapshots: watch::Sender<Option<Arc<Index>>>,
        debounce: Duration,
    ) -> Self {
        Self { watches: Watches::new(), distributor, snapshots, debounce, published: None }
    }

    /// Runs until `events` closes.
    pub(super) async fn run(mut self, mut events: mpsc::Receiver<WatchEvent>) {
        let mut deadline: Option<Instant> = None;
        let mut waiting_logged = Instant::now();
        loop {
            let due = deadline.filter(|_| self.watches.synced());
            tokio::select! {
                event = events.recv() => {
                    let Some(event) = event else { return };
                    let changed = self.watches.apply(event);
                    for issue in self.watches.take_issues() {
                        tracing::warn!(%issue, skipped_total = self.watches.skipped, "watch event not indexed");
                    }
                    // The first publish happens once everything is listed,
                    // even if the lists were empty (no change).
                    if (changed || self.published.is_none()) && deadline.is_none() {
                        deadline = Some(Instant::now() + self.debounce);
                    }
                    if !self.watches.synced() && waiting_logged.elapsed() > Duration::from_secs(10) {
                        waiting_logged = Instant::now();
                        tracing::info!(kinds = ?self.watches.unsynced(), "waiting for the first list of");
                    }
                }
                () = sleep_until(due), if due.is_some() => {
                    deadline = None;
                    self.publish();
                }
            }
        }
    }

    fn publish(&mut self) {
        let revision = self.watches.index().revision();
        if self.published == Some(revision) {
            return;
        }
        let first = self.published.is_none();
        self.published = Some(revision);
        let index = self.watches.index().clone();
        self.distributor.set_objects(index.clone());
        self.snapshots.send_replace(Some(Arc::new(index)));
        if first {
            tracing::info!(revision, sidecars = self.watches.index().sidecars().count(), "cluster listed; compiled");
        } else {
            tracing::debug!(revision, "recompiled");
        }
    }
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline).await,
        None => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests {
    use k8s_openapi::api::core::v1::PodStatus;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta, Time};

    use super::*;
    use fabric_operator_core::api::RoutePolicySpec;
    use fabric_operator_core::names::NODE_ID_LABEL;

    fn policy(name: &str, priority: i32) -> Lenient<RoutePolicy> {
        Lenient::Read(typed_policy(name, priority))
    }

    fn typed_policy(name: &str, priority: i32) -> RoutePolicy {
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
                stability: Default::default(),
            },
        );
        policy.metadata.namespace = Some("fabric".into());
        policy
    }

    fn pod(name: &str, ip: Option<&str>, annotations: &[(&str, &str)]) -> Pod {
        let pairs = |list: &[(&str, &str)]| list.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        Pod {
            metadata: ObjectMeta {
                name: Some(name.into()),
                namespace: Some("fabric".into()),
                labels: Some(pairs(&[(SIDECAR_LABEL, "true"), ("region", "eu")])),
                annotations: Some(pairs(annotations)),
                ..Default::default()
            },
            spec: None,
            status: Some(PodStatus {
                pod_ip: ip.map(str::to_owned),
                phase: Some("Running".into()),
                ..Default::default()
            }),
        }
    }

    fn names(index: &Index) -> Vec<String> {
        index.objects::<RoutePolicy>().map(|(name, _)| name.to_string()).collect()
    }

    #[test]
    fn apply_and_delete_events_change_the_index() {
        let (mut index, mut state) = (Index::new(), WatchState::default());
        assert!(apply_event(&mut index, &mut state, Event::Apply(policy("a", 1))));
        assert!(!apply_event(&mut index, &mut state, Event::Apply(policy("a", 1))), "identical re-apply");
        assert!(apply_event(&mut index, &mut state, Event::Apply(policy("a", 2))));
        assert!(apply_event(&mut index, &mut state, Event::Delete(policy("a", 2))));
        assert!(!apply_event(&mut index, &mut state, Event::Delete(policy("a", 2))), "unknown delete");
        assert!(names(&index).is_empty());
        assert!(state.issues.is_empty());
    }

    #[test]
    fn a_relist_is_buffered_and_replaces_the_kind_at_init_done() {
        let (mut index, mut state) = (Index::new(), WatchState::default());
        apply_event(&mut index, &mut state, Event::Apply(policy("gone", 0)));
        apply_event(&mut index, &mut state, Event::Apply(policy("kept", 0)));
        let revision = index.revision();
        assert!(!apply_event(&mut index, &mut state, Event::Init));
        assert!(!apply_event(&mut index, &mut state, Event::InitApply(policy("kept", 0))));
        assert!(!apply_event(&mut index, &mut state, Event::InitApply(policy("new", 0))));
        assert_eq!(names(&index), ["fabric/gone", "fabric/kept"], "nothing applied before InitDone");
        assert!(!state.synced);
        assert!(apply_event(&mut index, &mut state, Event::InitDone));
        assert!(state.synced);
        assert_eq!(names(&index), ["fabric/kept", "fabric/new"], "objects missing from the re-list are deleted");
        assert_eq!(index.revision(), revision + 1, "a re-list is one change");

        // The same list again: no change.
        for event in [Event::Init, Event::InitApply(policy("kept", 0)), Event::InitApply(policy("new", 0))] {
            apply_event(&mut index, &mut state, event);
        }
        assert!(!apply_event(&mut index, &mut state, Event::InitDone));
    }

    #[test]
    fn objects_that_cannot_be_indexed_are_reported_not_dropped() {
        let (mut index, mut state) = (Index::new(), WatchState::default());
        let mut nameless = typed_policy("x", 0);
        nameless.metadata.namespace = None;
        let nameless = Lenient::Read(nameless);
        assert!(!apply_event(&mut index, &mut state, Event::Apply(nameless.clone())));
        apply_event(&mut index, &mut state, Event::Init);
        apply_event(&mut index, &mut state, Event::InitApply(nameless));
        apply_event(&mut index, &mut state, Event::InitDone);
        assert_eq!(state.issues.len(), 2);
        assert!(state.issues[0].contains("RoutePolicy x has no metadata.namespace"), "{:?}", state.issues);
    }

    #[test]
    fn pods_become_sidecars_with_a_default_peer_address() {
        let mut issues = Vec::new();
        let plain = sidecar_from_pod(&pod("eu-1", Some("10.0.0.7"), &[]), &mut issues).unwrap();
        assert_eq!(plain.peer_address.as_deref(), Some("10.0.0.7:7443"));
        assert_eq!((plain.namespace.as_str(), plain.name.as_str(), plain.node_id.as_str()), ("fabric", "eu-1", "eu-1"));

        let ported = sidecar_from_pod(&pod("eu-1", Some("fd00::7"), &[(PEER_PORT_ANNOTATION, "7000")]), &mut issues);
        assert_eq!(ported.unwrap().peer_address.as_deref(), Some("[fd00::7]:7000"));

        let explicit = pod("eu-1", Some("10.0.0.7"), &[(PEER_ADDRESS_ANNOTATION, "eu-1.fabric.svc:7400")]);
        let explicit = sidecar_from_pod(&explicit, &mut issues).unwrap();
        assert_eq!(explicit.peer_address.as_deref(), Some("eu-1.fabric.svc:7400"));

        let mut labelled = pod("eu-1-7f9c", Some("10.0.0.7"), &[]);
        labelled.metadata.labels.as_mut().unwrap().insert(NODE_ID_LABEL.into(), "eu-1".into());
        assert_eq!(sidecar_from_pod(&labelled, &mut issues).unwrap().node_id.as_str(), "eu-1");
        assert!(issues.is_empty());

        let bad = sidecar_from_pod(&pod("eu-1", Some("10.0.0.7"), &[(PEER_PORT_ANNOTATION, "http")]), &mut issues);
        assert_eq!(bad.unwrap().peer_address, None);
        assert_eq!(issues.len(), 1);
        assert!(issues[0].contains("fabric/eu-1") && issues[0].contains(PEER_PORT_ANNOTATION), "{issues:?}");
    }

    #[test]
    fn terminating_finished_unlabelled_or_ip_less_pods_are_not_sidecars() {
        let mut issues = Vec::new();
        assert!(sidecar_from_pod(&pod("a", None, &[]), &mut issues).is_none(), "no IP yet");
        let mut terminating = pod("a", Some("10.0.0.1"), &[]);
        terminating.metadata.deletion_timestamp = Some(Time(jiff::Timestamp::UNIX_EPOCH));
        assert!(sidecar_from_pod(&terminating, &mut issues).is_none());
        let mut finished = pod("a", Some("10.0.0.1"), &[]);
        finished.status.as_mut().unwrap().phase = Some("Succeeded".into());
        assert!(sidecar_from_pod(&finished, &mut issues).is_none());
        let mut unlabelled = pod("a", Some("10.0.0.1"), &[]);
        unlabelled.metadata.labels.as_mut().unwrap().insert(SIDECAR_LABEL.into(), "false".into());
        assert!(sidecar_from_pod(&unlabelled, &mut issues).is_none());
        assert!(issues.is_empty());
    }

    #[test]
    fn pod_events_add_update_and_remove_sidecars() {
        let (mut index, mut state) = (Index::new(), WatchState::<Pod>::default());
        assert!(!apply_event(&mut index, &mut state, Event::Apply(pod("a", None, &[]))), "pending pod: nothing");
        assert!(apply_event(&mut index, &mut state, Event::Apply(pod("a", Some("10.0.0.1"), &[]))));
        assert!(!apply_event(&mut index, &mut state, Event::Apply(pod("a", Some("10.0.0.1"), &[]))));
        let mut terminating = pod("a", Some("10.0.0.1"), &[]);
        terminating.metadata.deletion_timestamp = Some(Time(jiff::Timestamp::UNIX_EPOCH));
        assert!(apply_event(&mut index, &mut state, Event::Apply(terminating.clone())), "terminating: removed");
        assert_eq!(index.sidecars().count(), 0);
        assert!(!apply_event(&mut index, &mut state, Event::Delete(terminating)));

        apply_event(&mut index, &mut state, Event::Apply(pod("old", Some("10.0.0.2"), &[])));
        apply_event(&mut index, &mut state, Event::Init);
        apply_event(&mut index, &mut state, Event::InitApply(pod("b", Some("10.0.0.3"), &[])));
        apply_event(&mut index, &mut state, Event::InitApply(pod("c", None, &[])));
        assert!(apply_event(&mut index, &mut state, Event::InitDone));
        let names: Vec<&str> = index.sidecars().map(|s| s.name.as_str()).collect();
        assert_eq!(names, ["b"]);
    }

    #[test]
    fn watches_are_synced_once_every_kind_listed() {
        let mut watches = Watches::new();
        assert_eq!(watches.unsynced(), ["RoutePolicy", "NeighborPolicy", "RouteKey", "LinkStateArea", "Pod"]);
        watches.apply(WatchEvent::RoutePolicy(Event::Init));
        watches.apply(WatchEvent::RoutePolicy(Event::InitApply(policy("a", 0))));
        watches.apply(WatchEvent::RoutePolicy(Event::InitDone));
        watches.apply(WatchEvent::NeighborPolicy(Event::InitDone));
        watches.apply(WatchEvent::RouteKey(Event::InitDone));
        watches.apply(WatchEvent::LinkStateArea(Event::InitDone));
        assert!(!watches.synced());
        watches.apply(WatchEvent::Pod(Event::InitDone));
        assert!(watches.synced());
        assert_eq!(watches.index().objects::<RoutePolicy>().count(), 1);
    }

    /// Every kind's first list completes (empty).
    async fn listed(events: &mpsc::Sender<WatchEvent>) {
        for event in [
            WatchEvent::RoutePolicy(Event::InitDone),
            WatchEvent::NeighborPolicy(Event::InitDone),
            WatchEvent::RouteKey(Event::InitDone),
            WatchEvent::LinkStateArea(Event::InitDone),
            WatchEvent::Pod(Event::InitDone),
        ] {
            events.send(event).await.unwrap();
        }
    }

    #[tokio::test(start_paused = true)]
    async fn the_loop_publishes_after_the_first_list_and_debounces_bursts() {
        let distributor = Distributor::new(crate::distribution::DistributorOptions {
            machine: crate::distribution::Options { sidecars_from_objects: true, ..Default::default() },
            registry: None,
        });
        let (snapshots, mut published) = watch::channel(None);
        let (events, receiver) = mpsc::channel(16);
        tokio::spawn(IndexLoop::new(distributor.clone(), snapshots, Duration::from_millis(100)).run(receiver));

        events.send(WatchEvent::RoutePolicy(Event::Apply(policy("a", 0)))).await.unwrap();
        tokio::time::sleep(Duration::from_secs(1)).await;
        assert!(published.borrow().is_none(), "nothing before every kind is listed");

        listed(&events).await;
        published.changed().await.unwrap();
        let first = published.borrow_and_update().clone().unwrap();
        assert_eq!(first.objects::<RoutePolicy>().count(), 0, "the re-list replaced the early apply");
        assert!(distributor.compilation().conditions.is_empty());

        // A burst within the debounce window is one publish.
        let start = Instant::now();
        for priority in 1..=5 {
            events.send(WatchEvent::RoutePolicy(Event::Apply(policy("b", priority)))).await.unwrap();
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        published.changed().await.unwrap();
        let elapsed = start.elapsed();
        assert!(elapsed >= Duration::from_millis(100) && elapsed < Duration::from_millis(150), "{elapsed:?}");
        let index = published.borrow_and_update().clone().unwrap();
        assert_eq!(index.get::<RoutePolicy>("fabric", "b").map(|p| p.spec.priority), Some(5));
        assert_eq!(distributor.compilation().conditions.len(), 1, "the distributor compiled the same index");
        tokio::time::sleep(Duration::from_secs(1)).await;
        assert!(!published.has_changed().unwrap(), "one publish for the burst");
    }
}
