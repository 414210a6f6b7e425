//! Config distribution: the gRPC server sidecars dial (xDS semantics, see
//! docs/operator.md, "Distribution").
//!
//! [`Distributor`] is the state machine, with no IO of its own: it holds the
//! objects (an [`Index`] without the dialed-in sidecars), the sidecars that
//! said Hello, the latest [`Compilation`], and per sidecar what was sent,
//! acknowledged or refused. Every change (objects, a Hello, a stream end)
//! recompiles and pushes a complete snapshot to each connected sidecar whose
//! compiled version differs from what its stream was last sent. `server`
//! puts it behind tonic, `auth` checks tokens, `status` rolls the ACKs up
//! into conditions, `local` is `fabric-operator run --manifests`.

pub mod auth;
pub mod counters;
pub mod server;

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::sync::{Arc, Mutex, MutexGuard};

use fabric_control::{ConfigSnapshot, Hello, OperatorMessage, PeerCertificate, SigningKey};
use fabric_core::KeyId;
use fabric_core::NodeId;
use tokio::sync::mpsc;

use fabric_operator_core::api::{RouteKey, RouteKeyStatus};
use fabric_operator_core::compile::{Compilation, compile, compile_with};
use fabric_operator_core::index::{Index, NamespacedName, SidecarInfo};
use fabric_operator_core::names::NODE_ID_LABEL;
pub use fabric_operator_core::rotation_plan::{Rollout, RotationStatus};
pub use fabric_operator_core::sync_status::{DistributionState, NackInfo, SidecarState};

/// The index key of the pod running sidecar `name`.
/// What goes down one sidecar's stream.
pub type Outbound = mpsc::UnboundedSender<Result<OperatorMessage, tonic::Status>>;
pub type OutboundReceiver = mpsc::UnboundedReceiver<Result<OperatorMessage, tonic::Status>>;

#[derive(Clone, Debug, Default)]
pub struct DistributorOptions {
    /// Remove a sidecar from the index when its stream ends. Off by default:
    /// a sidecar whose stream drops (its restart, an operator restart, a
    /// network blip) stays a neighbor of the others, marked disconnected, so
    /// a blip does not rewrite every other sidecar's config. In a cluster
    /// the pod watch removes sidecars instead.
    pub forget_disconnected: bool,
    /// Collect Hellos without pushing until [`Distributor::release`]: after
    /// an operator restart, the sidecars reconnect one by one; pushing to
    /// the first before the others are back would send configs missing
    /// neighbors. The caller releases after a grace period.
    pub hold: bool,
    /// Local mode: a file (JSON) where the sidecars that said Hello are
    /// kept, so a restarted operator compiles for all of them at once and
    /// reconnecting sidecars on the current version get no push. (In a
    /// cluster, the pod watch plays this part.)
    pub registry: Option<std::path::PathBuf>,
    /// Cluster mode: sidecars come from the pod watch (in the objects'
    /// index), not from Hellos. A Hello then only opens the stream of the
    /// pod it names (namespace + pod name).
    pub sidecars_from_objects: bool,
    /// Who may run as which node id (`--fabric-namespace`,
    /// `--unbound-node-ids`).
    pub identity: fabric_operator_core::compile::Settings,
    /// Issues peer TLS certificates to sidecars that ask in their Hello.
    pub peer_ca: Option<Arc<fabric_operator_core::peer_ca::PeerCa>>,
}

/// A sidecar's request for a peer certificate and what it was issued.
struct PeerCertificateState {
    /// The stream that asked; a new stream asks again.
    connection: u64,
    request: Vec<u8>,
    /// The node id and expiry of the last certificate sent.
    issued: Option<(NodeId, std::time::SystemTime)>,
}

/// A registered sidecar as stored in the registry file.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct Registered {
    node_id: String,
    namespace: String,
    name: String,
    labels: BTreeMap<String, String>,
    peer_address: Option<String>,
}

impl From<&SidecarInfo> for Registered {
    fn from(info: &SidecarInfo) -> Self {
        Self {
            node_id: info.node_id.to_string(),
            namespace: info.namespace.clone(),
            name: info.name.clone(),
            labels: info.labels.clone(),
            peer_address: info.peer_address.clone(),
        }
    }
}

impl From<Registered> for SidecarInfo {
    fn from(r: Registered) -> Self {
        Self {
            node_id: NodeId::from(r.node_id),
            namespace: r.namespace,
            name: r.name,
            labels: r.labels,
            peer_address: r.peer_address,
            service_account: None,
        }
    }
}

fn load_registry(path: &std::path::Path) -> BTreeMap<NamespacedName, SidecarInfo> {
    let Ok(text) = std::fs::read_to_string(path) else { return BTreeMap::new() };
    match serde_json::from_str::<Vec<Registered>>(&text) {
        Ok(list) => list
            .into_iter()
            .map(SidecarInfo::from)
            .map(|info| (NamespacedName::new(&info.namespace, &info.name), info))
            .collect(),
        Err(error) => {
            tracing::warn!(file = %path.display(), %error, "sidecar registry unreadable; starting empty");
            BTreeMap::new()
        }
    }
}

/// Identifies one stream of one sidecar (a reconnect gets a new one, so the
/// end of an old stream cannot disconnect the new one).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Connection {
    pub sidecar: NamespacedName,
    pub id: u64,
}

/// How long key rotation waits for a connected sidecar that has no valid
/// config (see [`Distributor::rollout`]).
pub const UNCONFIGURED_WAIT: std::time::Duration = std::time::Duration::from_secs(60);

/// Key rotation's contribution to the configs (see `crate::rotation`, which
/// sets it).
#[derive(Clone, Default, PartialEq, Eq)]
pub struct KeyMaterial {
    /// Published keys of RouteKeys whose status is not read back from an
    /// API server (local mode): laid over the objects' status.
    pub published: BTreeMap<NamespacedName, RouteKeyStatus>,
    /// Private keys of operator-managed node ids, by key id. A sidecar whose
    /// config names a signing key gets that key with its snapshot.
    pub signing: BTreeMap<NodeId, BTreeMap<KeyId, [u8; 32]>>,
}

impl std::fmt::Debug for KeyMaterial {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let signing: BTreeMap<&NodeId, Vec<&KeyId>> =
            self.signing.iter().map(|(n, k)| (n, k.keys().collect())).collect();
        f.debug_struct("KeyMaterial").field("published", &self.published).field("signing", &signing).finish()
    }
}

struct Inner {
    options: DistributorOptions,
    objects: Index,
    keys: KeyMaterial,
    rotation: BTreeMap<NamespacedName, RotationStatus>,
    /// Connected sidecars without a valid config, since when (key rotation
    /// waits for them only so long).
    unconfigured_since: BTreeMap<NamespacedName, fabric_core::Timestamp>,
    registered: BTreeMap<NamespacedName, SidecarInfo>,
    compilation: Arc<Compilation>,
    state: DistributionState,
    streams: BTreeMap<NamespacedName, (u64, Outbound)>,
    peer_certificates: BTreeMap<NamespacedName, PeerCertificateState>,
    /// The objects were set at least once (the first full list).
    objects_listed: bool,
    next_connection: u64,
    next_nonce: u64,
    /// Nonces from different operator runs never collide.
    epoch: String,
    counters: counters::Counters,
    /// Bumped each time compile inputs are taken; the compilation in force
    /// came from inputs `installed_inputs`. A compile of older inputs that
    /// finishes after a newer one is dropped.
    taken_inputs: u64,
    installed_inputs: u64,
}

/// Shared by the gRPC streams, the manifest watcher and the HTTP status.
#[derive(Clone)]
pub struct Distributor {
    inner: Arc<Mutex<Inner>>,
}

/// A Hello that does not describe a sidecar (`INVALID_ARGUMENT`).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum HelloError {
    #[error("Hello without node_id")]
    NoNodeId,
    #[error("bad peer_address port in {0:?}")]
    PeerAddressPort(String),
}

/// The sidecar a Hello describes, as the compiler sees a pod: name = node
/// id, labels as sent; a `routing.fabric.dev/node-id` label overrides the
/// node id (the pod label is authoritative, as in a cluster). An
/// unspecified or missing host in the peer address is replaced by `remote`.
pub fn sidecar_from_hello(hello: &Hello, remote: Option<IpAddr>) -> Result<SidecarInfo, HelloError> {
    if hello.node_id.is_empty() {
        return Err(HelloError::NoNodeId);
    }
    let namespace = if hello.namespace.is_empty() { "default".to_string() } else { hello.namespace.clone() };
    let node_id = hello.labels.get(NODE_ID_LABEL).filter(|id| !id.is_empty()).unwrap_or(&hello.node_id).clone();
    let peer_address = match (hello.peer_address.rsplit_once(':'), remote) {
        (Some((host, port)), Some(remote)) if is_unspecified(host) => {
            let port = port.parse().map_err(|_| HelloError::PeerAddressPort(hello.peer_address.clone()))?;
            Some(std::net::SocketAddr::new(remote, port).to_string())
        }
        _ if hello.peer_address.is_empty() => None,
        _ => Some(hello.peer_address.clone()),
    };
    Ok(SidecarInfo {
        node_id: NodeId::from(node_id),
        namespace,
        name: if hello.pod_name.is_empty() { hello.node_id.clone() } else { hello.pod_name.clone() },
        labels: hello.labels.clone(),
        peer_address,
        service_account: None,
    })
}

fn is_unspecified(host: &str) -> bool {
    let host = host.trim_start_matches('[').trim_end_matches(']');
    host.is_empty() || host.parse::<IpAddr>().is_ok_and(|ip| ip.is_unspecified())
}

impl Distributor {
    pub fn new(options: DistributorOptions) -> Self {
        let epoch = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| format!("{:x}", d.as_nanos() & 0xffff_ffff_ffff))
            .unwrap_or_default();
        let registered = options.registry.as_deref().map(load_registry).unwrap_or_default();
        let state = DistributionState {
            sidecars: registered
                .iter()
                .map(|(key, info)| {
                    let state = SidecarState {
                        node_id: info.node_id.clone(),
                        peer_address: info.peer_address.clone().unwrap_or_default(),
                        connected: false,
                        sent_version: None,
                        sent_nonce: None,
                        acked_version: None,
                        applied_version: None,
                        last_nack: None,
                    };
                    (key.clone(), state)
                })
                .collect(),
        };
        let inner = Inner {
            options,
            objects: Index::new(),
            keys: KeyMaterial::default(),
            rotation: BTreeMap::new(),
            unconfigured_since: BTreeMap::new(),
            registered,
            compilation: Arc::new(compile(&Index::new())),
            state,
            streams: BTreeMap::new(),
            peer_certificates: BTreeMap::new(),
            objects_listed: false,
            next_connection: 0,
            next_nonce: 0,
            epoch,
            counters: counters::Counters { leader: true, ..Default::default() },
            taken_inputs: 0,
            installed_inputs: 0,
        };
        Self { inner: Arc::new(Mutex::new(inner)) }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Recompiles with the inputs as they are under `inner`, without holding
    /// the lock while compiling (tens of milliseconds at 1,000 sidecars,
    /// docs/benchmarks.md): ACKs, Hellos and the status API go on meanwhile.
    /// The result is installed, and pushed, unless a compile of newer inputs
    /// was installed first.
    fn recompile(&self, mut inner: MutexGuard<'_, Inner>) {
        let (inputs, index) = inner.compile_inputs();
        let identity = inner.options.identity.clone();
        drop(inner);
        let started = std::time::Instant::now();
        let span = tracing::info_span!(
            "fabric.operator.compile",
            sidecars = index.sidecars().count(),
            revision = index.revision(),
            problems = tracing::field::Empty
        );
        let compilation = span.in_scope(|| compile_with(&index, &identity));
        span.record("problems", compilation.problems.len());
        let took = started.elapsed();
        self.lock().install(inputs, compilation, took);
    }

    /// The objects (and any sidecars known from pods or manifests) changed:
    /// recompile and push what changed.
    pub fn set_objects(&self, objects: Index) {
        let mut inner = self.lock();
        inner.objects = objects;
        inner.objects_listed = true;
        self.recompile(inner);
    }

    /// The fabric as the next compile sees it and the identity settings,
    /// for the validating webhook; `None` until the objects were listed
    /// once (a follower, or a leader still starting).
    pub fn fabric(&self) -> Option<(Index, fabric_operator_core::compile::Settings)> {
        let inner = self.lock();
        inner.objects_listed.then(|| (inner.fabric(), inner.options.identity.clone()))
    }

    /// The RouteKeys last set (without the key rotation overlay), in
    /// namespace/name order.
    pub fn route_keys(&self) -> BTreeMap<NamespacedName, RouteKey> {
        self.lock().objects.objects::<RouteKey>().map(|(name, key)| (name.clone(), key.clone())).collect()
    }

    /// Key rotation changed published or private keys: recompile if that
    /// changes anything.
    pub fn set_key_material(&self, keys: KeyMaterial) {
        let mut inner = self.lock();
        if inner.keys != keys {
            inner.keys = keys;
            self.recompile(inner);
        }
    }

    /// Key rotation's progress per RouteKey, for the status API.
    pub fn set_rotation_status(&self, status: BTreeMap<NamespacedName, RotationStatus>) {
        self.lock().rotation = status;
    }

    pub fn rotation_status(&self) -> BTreeMap<NamespacedName, RotationStatus> {
        self.lock().rotation.clone()
    }

    /// Whether every connected sidecar runs (acknowledged) a config that
    /// trusts key `key` of `node`: the condition for it to start signing.
    ///
    /// A connected sidecar for which no valid config compiles cannot come
    /// to trust the key; it is waited for [`UNCONFIGURED_WAIT`] (a compile
    /// may be on its way), then left behind and reported, so that one
    /// broken sidecar never stops key rotation for the whole fabric.
    pub fn rollout(&self, node: &NodeId, key: &KeyId, now: fabric_core::Timestamp) -> Rollout {
        let mut guard = self.lock();
        let inner = &mut *guard;
        let mut waiting = Vec::new();
        let mut left_behind = Vec::new();
        let connected: BTreeSet<NamespacedName> =
            inner.state.sidecars.iter().filter(|(_, s)| s.connected).map(|(name, _)| name.clone()).collect();
        let mut unconfigured_since = std::mem::take(&mut inner.unconfigured_since);
        unconfigured_since.retain(|name, _| connected.contains(name));
        // Only sidecars of the fabric count (a pod the index does not know,
        // or the loser of a duplicate node id, gets no config and must not
        // hold rotation back).
        for (name, sidecar) in inner.state.sidecars.iter().filter(|(name, s)| s.connected && inner.is_member(name)) {
            let compiled = inner.compilation.sidecars.get(&sidecar.node_id);
            if compiled.is_some() && inner.compilation.for_pod(&sidecar.node_id, name).is_none() {
                continue;
            }
            let trusts = compiled.is_some_and(|c| {
                c.config.security.trusted_keys.iter().any(|k| &k.advertiser == node && &k.key_id == key)
            });
            let current = compiled.is_some_and(|c| sidecar.acked_version.as_deref() == Some(c.version()));
            if !(trusts && current) {
                waiting.push(match &sidecar.last_nack {
                    Some(nack) => format!("{name} (refuses its config: {}: {})", nack.field, nack.message),
                    None if compiled.is_none() => {
                        let since = *unconfigured_since.entry(name.clone()).or_insert(now);
                        if now.0.saturating_sub(since.0) >= UNCONFIGURED_WAIT.as_millis() as u64 {
                            left_behind.push(format!("{name} (no valid config compiled)"));
                            continue;
                        }
                        format!("{name} (no valid config compiled)")
                    }
                    None => name.to_string(),
                });
            }
            if compiled.is_some() {
                unconfigured_since.remove(name);
            }
        }
        inner.unconfigured_since = unconfigured_since;
        match (waiting.is_empty(), left_behind.is_empty()) {
            (true, true) => Rollout::Everywhere,
            (true, false) => Rollout::LeavingBehind(left_behind),
            (false, _) => Rollout::Waiting(waiting),
        }
    }

    /// Whether the sidecar of `node` acknowledged a config that makes it
    /// sign with `key` (true when no sidecar has that node id).
    pub fn signs_with(&self, node: &NodeId, key: &KeyId) -> bool {
        let inner = self.lock();
        let Some(compiled) = inner.compilation.sidecars.get(node) else {
            // No sidecar has the node id: nobody signs with the old key.
            return true;
        };
        // The sidecar the config was compiled for (its pod is a source).
        let owner = inner.state.sidecars.iter().find(|(name, _)| inner.compilation.for_pod(node, name).is_some());
        let Some((_, owner)) = owner else { return true };
        compiled.config.security.signing_key_id.as_ref() == Some(key)
            && owner.acked_version.as_deref() == Some(compiled.version())
    }

    /// A stream said Hello: register the sidecar, recompile, and push its
    /// config unless it already runs the current version.
    pub fn connect(&self, mut sidecar: SidecarInfo, applied_version: &str) -> (Connection, OutboundReceiver) {
        let mut inner = self.lock();
        let key = NamespacedName::new(&sidecar.namespace, &sidecar.name);
        // In a cluster the pod is authoritative: its node id label and
        // address win over what the Hello says.
        if inner.options.sidecars_from_objects
            && let Some(pod) = inner.objects.sidecar(&key.namespace, &key.name)
        {
            if pod.node_id != sidecar.node_id {
                tracing::warn!(sidecar = %key, hello = %sidecar.node_id, pod = %pod.node_id, "Hello node id differs from the pod's; the pod's is used");
            }
            sidecar = pod.clone();
        }
        inner.next_connection += 1;
        let id = inner.next_connection;
        let (sender, receiver) = mpsc::unbounded_channel();
        // A previous stream of the same sidecar is replaced (and ends).
        inner.streams.insert(key.clone(), (id, sender));
        let applied = (!applied_version.is_empty()).then(|| applied_version.to_string());
        let state = SidecarState {
            node_id: sidecar.node_id.clone(),
            peer_address: sidecar.peer_address.clone().unwrap_or_default(),
            connected: true,
            sent_version: None,
            sent_nonce: None,
            acked_version: applied.clone(),
            applied_version: applied,
            last_nack: None,
        };
        inner.state.sidecars.insert(key.clone(), state);
        // A Hello changes the fabric only when it registers a new or changed
        // sidecar (local mode); in a cluster the pod watch does. Otherwise
        // the compilation stands: a fleet reconnecting after an operator
        // restart must not recompile once per sidecar.
        let changed = !inner.options.sidecars_from_objects
            && inner.registered.insert(key.clone(), sidecar.clone()).as_ref() != Some(&sidecar);
        if changed {
            inner.save_registry();
            self.recompile(inner);
        } else {
            inner.push_if_needed(&key);
        }
        (Connection { sidecar: key, id }, receiver)
    }

    /// An ACK: the snapshot with this nonce is in force. Stale nonces (an
    /// older push, another stream) are ignored.
    pub fn ack(&self, connection: &Connection, version: &str, nonce: &str) -> bool {
        let mut inner = self.lock();
        let Some(state) = inner.current_state(connection, nonce) else {
            inner.counters.stale_replies += 1;
            return false;
        };
        state.acked_version = Some(version.to_string());
        state.applied_version = Some(version.to_string());
        state.last_nack = None;
        inner.counters.acks += 1;
        true
    }

    /// A NACK: the sidecar refused the snapshot and still runs
    /// `applied_version`.
    pub fn nack(&self, connection: &Connection, nack: NackInfo, nonce: &str, applied_version: &str) -> bool {
        let mut inner = self.lock();
        let Some(state) = inner.current_state(connection, nonce) else {
            inner.counters.stale_replies += 1;
            return false;
        };
        state.applied_version = (!applied_version.is_empty()).then(|| applied_version.to_string());
        state.last_nack = Some(nack);
        inner.counters.nacks += 1;
        true
    }

    /// The sidecar of `connection` asks for a peer TLS certificate for the
    /// key of `request` (DER PKCS#10); it is issued now if the sidecar's pod
    /// was compiled for its node id, else when it is.
    pub fn request_peer_certificate(&self, connection: &Connection, request: Vec<u8>, now: std::time::SystemTime) {
        let mut inner = self.lock();
        if inner.options.peer_ca.is_none() {
            tracing::warn!(sidecar = %connection.sidecar, "asks for a peer certificate, but peer certificates are off (--peer-ca-secret / --peer-certificates)");
            return;
        }
        let state = PeerCertificateState { connection: connection.id, request, issued: None };
        inner.peer_certificates.insert(connection.sidecar.clone(), state);
        inner.issue_peer_certificate(&connection.sidecar, now);
    }

    /// Issues the certificates that are due: first ones of sidecars whose
    /// pod was compiled since they asked, renewals in the last third of the
    /// lifetime, and new ones for a pod whose node id changed.
    pub fn renew_peer_certificates(&self, now: std::time::SystemTime) {
        let mut inner = self.lock();
        let keys: Vec<NamespacedName> = inner.peer_certificates.keys().cloned().collect();
        for key in keys {
            inner.issue_peer_certificate(&key, now);
        }
    }

    /// Issues peer certificates with `ca` from now on (cluster mode: once
    /// the leader has read or created its Secret).
    pub fn set_peer_ca(&self, ca: Arc<fabric_operator_core::peer_ca::PeerCa>) {
        self.lock().options.peer_ca = Some(ca);
    }

    /// Renews peer certificates every `tick` (see
    /// [`Distributor::renew_peer_certificates`]).
    pub async fn run_peer_certificate_renewal(self, tick: std::time::Duration) {
        loop {
            tokio::time::sleep(tick).await;
            self.renew_peer_certificates(std::time::SystemTime::now());
        }
    }

    /// A stream ended. The sidecar stays registered (marked disconnected)
    /// unless `forget_disconnected`.
    pub fn disconnect(&self, connection: &Connection) {
        let mut inner = self.lock();
        if inner.streams.get(&connection.sidecar).is_none_or(|(id, _)| *id != connection.id) {
            return; // an older stream of a sidecar that reconnected
        }
        inner.streams.remove(&connection.sidecar);
        inner.peer_certificates.remove(&connection.sidecar);
        if inner.options.forget_disconnected {
            inner.state.sidecars.remove(&connection.sidecar);
            inner.registered.remove(&connection.sidecar);
            inner.save_registry();
            self.recompile(inner);
        } else if let Some(state) = inner.state.sidecars.get_mut(&connection.sidecar) {
            state.connected = false;
            state.sent_version = None;
            state.sent_nonce = None;
        }
    }

    /// Ends the hold: push to every connected sidecar that is not current.
    pub fn release(&self) {
        let mut inner = self.lock();
        inner.options.hold = false;
        inner.push_all();
    }

    pub fn compilation(&self) -> Arc<Compilation> {
        self.lock().compilation.clone()
    }

    pub fn state(&self) -> DistributionState {
        self.lock().state.clone()
    }

    /// Snapshots pushed since start (all streams).
    pub fn pushes(&self) -> u64 {
        self.lock().counters.pushes
    }

    /// What `/metrics` shows.
    pub fn counters(&self) -> counters::Counters {
        self.lock().counters.clone()
    }

    /// Status writes that reached the API server (cluster mode).
    pub fn record_status_patches(&self, written: u64) {
        self.lock().counters.status_patches += written;
    }

    /// Whether this replica leads (cluster mode; local mode always does).
    pub fn set_leader(&self, leader: bool) {
        self.lock().counters.leader = leader;
    }

    /// The compiled version for a sidecar, if it has a valid config.
    pub fn current_version(&self, sidecar: &NamespacedName) -> Option<String> {
        let inner = self.lock();
        let node_id = &inner.state.sidecars.get(sidecar)?.node_id;
        inner.compilation.sidecars.get(node_id).map(|c| c.version().to_string())
    }
}

impl Inner {
    fn save_registry(&self) {
        let Some(path) = &self.options.registry else { return };
        let list: Vec<Registered> = self.registered.values().map(Registered::from).collect();
        let text = serde_json::to_string_pretty(&list).unwrap_or_default();
        let temporary = path.with_extension("tmp");
        if let Err(error) = std::fs::write(&temporary, text).and_then(|()| std::fs::rename(&temporary, path)) {
            tracing::warn!(file = %path.display(), %error, "cannot save the sidecar registry");
        }
    }

    fn current_state(&mut self, connection: &Connection, nonce: &str) -> Option<&mut SidecarState> {
        let (id, _) = self.streams.get(&connection.sidecar)?;
        if *id != connection.id {
            return None;
        }
        let state = self.state.sidecars.get_mut(&connection.sidecar)?;
        if state.sent_nonce.as_deref() != Some(nonce) {
            tracing::debug!(sidecar = %connection.sidecar, nonce, "reply with a stale nonce ignored");
            return None;
        }
        Some(state)
    }

    /// Whether `name` is a sidecar of the fabric: a pod of the objects (a
    /// cluster) or a sidecar that said Hello (local mode).
    fn is_member(&self, name: &NamespacedName) -> bool {
        if self.options.sidecars_from_objects {
            self.objects.sidecar(&name.namespace, &name.name).is_some()
        } else {
            self.registered.contains_key(name)
        }
    }

    /// What a compile reads: the objects with the published keys laid over
    /// their status and (local mode) the registered sidecars. Forgets
    /// deleted pods whose stream is gone.
    fn compile_inputs(&mut self) -> (u64, Index) {
        if self.options.sidecars_from_objects {
            // A deleted pod is forgotten once its stream is gone.
            let objects = &self.objects;
            self.state
                .sidecars
                .retain(|name, state| state.connected || objects.sidecar(&name.namespace, &name.name).is_some());
        }
        self.taken_inputs += 1;
        (self.taken_inputs, self.fabric())
    }

    /// The objects with the published keys of key rotation, and in local
    /// mode the sidecars that said Hello.
    fn fabric(&self) -> Index {
        let mut index = self.objects.clone();
        for (name, published) in &self.keys.published {
            if let Some(route_key) = index.get::<RouteKey>(&name.namespace, &name.name) {
                let mut route_key = route_key.clone();
                let mut status = route_key.status.take().unwrap_or_default();
                status.keys = published.keys.clone();
                status.active_key_id = published.active_key_id.clone();
                status.next_rotation = published.next_rotation.clone();
                route_key.status = Some(status);
                let _ = index.apply(route_key);
            }
        }
        if !self.options.sidecars_from_objects {
            for sidecar in self.registered.values() {
                index.upsert_sidecar(sidecar.clone());
            }
        }
        index
    }

    /// Puts a compilation of the inputs numbered `inputs` in force and
    /// pushes what changed; a compilation older than the one in force is
    /// dropped.
    fn install(&mut self, inputs: u64, compilation: Compilation, took: std::time::Duration) {
        self.counters.compile_duration.observe(took);
        if inputs < self.installed_inputs {
            tracing::debug!(inputs, installed = self.installed_inputs, "a newer compilation is in force; dropped");
            return;
        }
        self.installed_inputs = inputs;
        self.compilation = Arc::new(compilation);
        for (object, conditions) in &self.compilation.conditions {
            let accepted = conditions.iter().any(|c| {
                c.type_ == fabric_operator_core::compile::ConditionType::Accepted
                    && c.status == fabric_operator_core::api::ConditionStatus::True
            });
            let key = (object.kind.as_str(), if accepted { "ok" } else { "error" });
            *self.counters.reconciles.entry(key).or_default() += 1;
        }
        self.push_all();
    }

    /// Sends `key` a peer certificate if one is due (see
    /// [`Distributor::renew_peer_certificates`]), only for the node id
    /// compiled for its pod.
    fn issue_peer_certificate(&mut self, key: &NamespacedName, now: std::time::SystemTime) {
        let Some(ca) = self.options.peer_ca.clone() else { return };
        let Some((connection, sender)) = self.streams.get(key) else { return };
        let Some(state) = self.peer_certificates.get_mut(key).filter(|s| s.connection == *connection) else {
            return;
        };
        let Some(node_id) = self.state.sidecars.get(key).map(|s| s.node_id.clone()) else { return };
        if self.compilation.for_pod(&node_id, key).is_none() {
            return;
        }
        let due = match &state.issued {
            Some((issued_for, not_after)) => {
                issued_for != &node_id || fabric_operator_core::peer_ca::renewal_due(*not_after, ca.lifetime, now)
            }
            None => true,
        };
        if !due {
            return;
        }
        match ca.issue(&state.request, &node_id, &key.namespace, now) {
            Ok(issued) => {
                let not_after_unix_ms = issued
                    .not_after
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX));
                let message = OperatorMessage::peer_certificate(PeerCertificate {
                    chain_pem: issued.chain_pem,
                    ca_bundle_pem: ca.certificate_pem().to_owned(),
                    not_after_unix_ms,
                });
                if sender.send(Ok(message)).is_ok() {
                    tracing::info!(sidecar = %key, node = %node_id, not_after_unix_ms, "peer certificate issued");
                    state.issued = Some((node_id, issued.not_after));
                    self.counters.peer_certificates_issued += 1;
                }
            }
            Err(error) => {
                // A bad request stays bad: not retried until the sidecar
                // reconnects with another.
                tracing::warn!(sidecar = %key, node = %node_id, %error, "peer certificate refused");
                self.peer_certificates.remove(key);
                self.counters.peer_certificate_refusals += 1;
            }
        }
    }

    fn push_all(&mut self) {
        let keys: Vec<NamespacedName> = self.streams.keys().cloned().collect();
        for key in keys {
            self.push_if_needed(&key);
        }
    }

    /// Pushes the sidecar's compiled config unless its stream was already
    /// sent this version, or (nothing sent on this stream yet) it reported
    /// running it. A sidecar without a valid config is sent nothing: it
    /// keeps its last good config.
    fn push_if_needed(&mut self, key: &NamespacedName) {
        if self.options.hold {
            return;
        }
        let Some((_, sender)) = self.streams.get(key) else { return };
        let Some(state) = self.state.sidecars.get_mut(key) else { return };
        if !self.compilation.sidecars.contains_key(&state.node_id) {
            return;
        }
        // Only the sidecar the config was compiled for gets it (and its
        // signing key): not a pod that claims the node id without being
        // that sidecar (unknown to the index, or refused by the identity
        // rules).
        let Some(compiled) = self.compilation.for_pod(&state.node_id, key) else {
            tracing::warn!(sidecar = %key, node = %state.node_id, "not the sidecar compiled for this node id; nothing pushed");
            return;
        };
        let version = compiled.version();
        match &state.sent_version {
            Some(sent) if sent == version => return,
            None if state.acked_version.as_deref() == Some(version) => {
                // Resume: tell the sidecar (once per stream) so it starts
                // peering without waiting for a snapshot that will not come.
                if sender.send(Ok(OperatorMessage::current(version))).is_ok() {
                    state.sent_version = Some(version.to_string());
                }
                return;
            }
            _ => {}
        }
        let signing_key = match &compiled.config.security.signing_key_id {
            None => None,
            Some(key_id) => match self.keys.signing.get(&state.node_id).and_then(|keys| keys.get(key_id)) {
                Some(secret) => Some(SigningKey { key_id: key_id.to_string(), private_key: secret.to_vec() }),
                None => {
                    // The config names a key whose private half is not
                    // here yet (the store is read after the status): push
                    // when it is, never a config the sidecar must refuse.
                    tracing::warn!(sidecar = %key, %key_id, "signing key not available yet; push deferred");
                    return;
                }
            },
        };
        self.next_nonce += 1;
        let nonce = format!("{}-{}", self.epoch, self.next_nonce);
        let snapshot = ConfigSnapshot {
            version: version.to_string(),
            nonce: nonce.clone(),
            config_yaml: compiled.text.to_string(),
            signing_key,
        };
        if sender.send(Ok(OperatorMessage::snapshot(snapshot))).is_ok() {
            tracing::info!(sidecar = %key, version, nonce, "config pushed");
            state.sent_version = Some(version.to_string());
            state.sent_nonce = Some(nonce);
            self.counters.pushes += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use fabric_control::operator_message;

    use super::*;

    fn hello(node: &str, labels: &[(&str, &str)]) -> Hello {
        Hello {
            node_id: node.into(),
            namespace: "fabric".into(),
            labels: labels.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
            peer_address: "0.0.0.0:7000".into(),
            applied_version: String::new(),
            pod_name: String::new(),
            peer_certificate_request: Vec::new(),
        }
    }

    fn snapshot(receiver: &mut OutboundReceiver) -> Option<ConfigSnapshot> {
        match receiver.try_recv().ok()?.ok()?.kind? {
            operator_message::Kind::Snapshot(s) => Some(s),
            operator_message::Kind::Current(c) => panic!("Current {} where a snapshot was expected", c.version),
            operator_message::Kind::PeerCertificate(_) => panic!("a peer certificate where a snapshot was expected"),
        }
    }

    fn current(receiver: &mut OutboundReceiver) -> Option<String> {
        match receiver.try_recv().ok()?.ok()?.kind? {
            operator_message::Kind::Current(c) => Some(c.version),
            operator_message::Kind::Snapshot(s) => panic!("snapshot {} where Current was expected", s.version),
            operator_message::Kind::PeerCertificate(_) => panic!("a peer certificate where Current was expected"),
        }
    }

    #[test]
    fn hello_fills_an_unspecified_host_and_honours_the_node_id_label() {
        let remote = Some("10.1.2.3".parse().unwrap());
        let info = sidecar_from_hello(&hello("a", &[]), remote).unwrap();
        assert_eq!(info.peer_address.as_deref(), Some("10.1.2.3:7000"));
        assert_eq!(info.node_id.as_str(), "a");
        let info = sidecar_from_hello(&hello("a", &[(NODE_ID_LABEL, "other")]), remote).unwrap();
        assert_eq!((info.node_id.as_str(), info.name.as_str()), ("other", "a"));
        let mut explicit = hello("a", &[]);
        explicit.peer_address = "192.168.0.9:7000".into();
        assert_eq!(sidecar_from_hello(&explicit, remote).unwrap().peer_address.as_deref(), Some("192.168.0.9:7000"));
    }

    #[test]
    fn a_hello_without_a_node_id_or_with_a_bad_port_is_refused() {
        let remote = Some("10.1.2.3".parse().unwrap());
        assert_eq!(sidecar_from_hello(&hello("", &[]), remote), Err(HelloError::NoNodeId));
        let mut bad_port = hello("a", &[]);
        bad_port.peer_address = "0.0.0.0:http".into();
        let error = sidecar_from_hello(&bad_port, remote).unwrap_err();
        assert_eq!(error, HelloError::PeerAddressPort("0.0.0.0:http".into()));
        assert_eq!(error.to_string(), "bad peer_address port in \"0.0.0.0:http\"");
    }

    #[test]
    fn push_ack_resume_and_stale_nonces() {
        let distributor = Distributor::new(DistributorOptions::default());
        let info = sidecar_from_hello(&hello("a", &[]), None).unwrap();
        let (connection, mut receiver) = distributor.connect(info.clone(), "");
        let first = snapshot(&mut receiver).expect("a push on connect");
        assert!(snapshot(&mut receiver).is_none(), "one push only");
        assert!(!distributor.ack(&connection, &first.version, "stale"), "a stale nonce is ignored");
        assert!(distributor.ack(&connection, &first.version, &first.nonce));
        let state = &distributor.state().sidecars[&connection.sidecar];
        assert_eq!(state.acked_version.as_deref(), Some(first.version.as_str()));

        // Reconnect reporting the current version: no push (resume).
        distributor.disconnect(&connection);
        assert!(!distributor.state().sidecars[&connection.sidecar].connected);
        let (again, mut receiver) = distributor.connect(info.clone(), &first.version);
        assert_eq!(current(&mut receiver), Some(first.version.clone()), "resume: told it is current");
        assert!(receiver.try_recv().is_err(), "resume: nothing pushed, Current sent once");
        distributor.set_objects(Index::new());
        assert!(receiver.try_recv().is_err(), "a recompile to the same version sends nothing");
        // The old stream ending late does not disconnect the new one.
        distributor.disconnect(&connection);
        assert!(distributor.state().sidecars[&again.sidecar].connected);

        // Reconnect reporting another version: pushed.
        let (_, mut receiver) = distributor.connect(info, "old");
        assert_eq!(snapshot(&mut receiver).map(|s| s.version), Some(first.version));
    }

    #[test]
    fn in_a_cluster_the_pod_decides_the_node_id() {
        let distributor = Distributor::new(DistributorOptions { sidecars_from_objects: true, ..Default::default() });
        let mut index = Index::new();
        let mut pod = sidecar_from_hello(&hello("a", &[]), None).unwrap();
        pod.node_id = NodeId::from("eu-1");
        pod.peer_address = Some("10.0.0.7:7400".into());
        index.upsert_sidecar(pod);
        distributor.set_objects(index);
        let (connection, _receiver) = distributor.connect(sidecar_from_hello(&hello("a", &[]), None).unwrap(), "");
        let state = &distributor.state().sidecars[&connection.sidecar];
        assert_eq!((state.node_id.as_str(), state.peer_address.as_str()), ("eu-1", "10.0.0.7:7400"));
    }

    #[test]
    fn only_the_pod_compiled_for_a_node_id_gets_its_config() {
        let distributor = Distributor::new(DistributorOptions { sidecars_from_objects: true, ..Default::default() });
        let mut index = Index::new();
        index.upsert_sidecar(sidecar_from_hello(&hello("a", &[]), None).unwrap());
        distributor.set_objects(index.clone());
        let (_, mut owner) = distributor.connect(sidecar_from_hello(&hello("a", &[]), None).unwrap(), "");
        assert!(snapshot(&mut owner).is_some(), "the compiled pod gets its config");
        // A pod the watch does not know, claiming node id a, gets nothing,
        // and does not hold key rotation back.
        let mut rogue = hello("rogue", &[]);
        rogue.labels.insert(NODE_ID_LABEL.into(), "a".into());
        let (_, mut rogue) = distributor.connect(sidecar_from_hello(&rogue, None).unwrap(), "");
        assert!(rogue.try_recv().is_err(), "an unknown pod gets nothing");
        let waiting = distributor.rollout(&NodeId::from("a"), &KeyId::from("k1"), fabric_core::Timestamp(0));
        assert_eq!(waiting, Rollout::Waiting(vec!["fabric/a".into()]), "only the member counts");
        // A second watched pod claiming node id a: the compiler serves
        // neither (compile::identity), so the duplicate gets nothing.
        let mut duplicate = sidecar_from_hello(&hello("b-duplicate", &[]), None).unwrap();
        duplicate.node_id = NodeId::from("a");
        index.upsert_sidecar(duplicate);
        distributor.set_objects(index);
        let (_, mut duplicate) = distributor.connect(sidecar_from_hello(&hello("b-duplicate", &[]), None).unwrap(), "");
        assert!(duplicate.try_recv().is_err(), "the duplicate gets nothing");
    }

    /// A connected sidecar for which no config compiles holds a key back
    /// for UNCONFIGURED_WAIT, then is left behind (and named).
    #[test]
    fn key_rotation_waits_only_so_long_for_a_sidecar_without_a_config() {
        let distributor = Distributor::new(DistributorOptions { sidecars_from_objects: true, ..Default::default() });
        let mut index = Index::new();
        index.upsert_sidecar(sidecar_from_hello(&hello("a", &[]), None).unwrap());
        distributor.set_objects(index);
        let (_, _stream) = distributor.connect(sidecar_from_hello(&hello("a", &[]), None).unwrap(), "");
        // The pod's node id changes under the connected sidecar: the config
        // is compiled for the new id, none for the one it runs as.
        let mut index = Index::new();
        let mut moved = sidecar_from_hello(&hello("a", &[]), None).unwrap();
        moved.node_id = NodeId::from("a2");
        index.upsert_sidecar(moved);
        distributor.set_objects(index);
        let (node, key) = (NodeId::from("b"), KeyId::from("k1"));
        let waiting = Rollout::Waiting(vec!["fabric/a (no valid config compiled)".into()]);
        assert_eq!(distributor.rollout(&node, &key, fabric_core::Timestamp(1_000)), waiting);
        assert_eq!(distributor.rollout(&node, &key, fabric_core::Timestamp(60_999)), waiting);
        assert_eq!(
            distributor.rollout(&node, &key, fabric_core::Timestamp(61_000)),
            Rollout::LeavingBehind(vec!["fabric/a (no valid config compiled)".into()])
        );
    }

    /// Compiles run outside the lock, so two can overlap and finish in
    /// either order: the compilation of the newest inputs must stay in force.
    #[test]
    fn a_compile_of_older_inputs_finishing_last_does_not_replace_a_newer_one() {
        let distributor = Distributor::new(DistributorOptions { sidecars_from_objects: true, ..Default::default() });
        let fleet = |pods: &[&str]| {
            let mut index = Index::new();
            for pod in pods {
                index.upsert_sidecar(sidecar_from_hello(&hello(pod, &[]), None).unwrap());
            }
            index
        };
        let (older, older_index) = {
            let mut inner = distributor.lock();
            inner.objects = fleet(&["a"]);
            inner.compile_inputs()
        };
        let (newer, newer_index) = {
            let mut inner = distributor.lock();
            inner.objects = fleet(&["a", "b"]);
            inner.compile_inputs()
        };
        assert!(older < newer);
        let took = std::time::Duration::ZERO;
        distributor.lock().install(newer, compile(&newer_index), took);
        distributor.lock().install(older, compile(&older_index), took);
        let compilation = distributor.compilation();
        let in_force: Vec<&str> = compilation.sidecars.keys().map(|node| node.as_str()).collect();
        assert_eq!(in_force, ["a", "b"], "the newer compilation stays");
        assert_eq!(distributor.counters().compile_duration.count, 2, "both compiles are timed");
    }

    #[test]
    fn a_nack_is_kept_until_the_next_ack_and_held_pushes_wait_for_release() {
        let distributor = Distributor::new(DistributorOptions { hold: true, ..Default::default() });
        let info = sidecar_from_hello(&hello("a", &[]), None).unwrap();
        let (connection, mut receiver) = distributor.connect(info, "");
        assert!(snapshot(&mut receiver).is_none(), "held");
        distributor.release();
        let pushed = snapshot(&mut receiver).expect("pushed on release");
        let nack = NackInfo { version: pushed.version.clone(), field: "nodeId".into(), message: "no".into() };
        assert!(distributor.nack(&connection, nack.clone(), &pushed.nonce, "v0"));
        let state = distributor.state().sidecars[&connection.sidecar].clone();
        assert_eq!((state.last_nack, state.applied_version.as_deref()), (Some(nack), Some("v0")));
        distributor.release();
        assert!(snapshot(&mut receiver).is_none(), "a refused version is not resent");
    }
}
