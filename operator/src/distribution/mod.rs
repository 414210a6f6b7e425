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
pub mod local;
pub mod server;
pub mod status;

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, MutexGuard};

use fabric_routing::NodeId;
use fabric_routing::control::proto::{ConfigSnapshot, Hello, OperatorMessage};
use serde::Serialize;
use tokio::sync::mpsc;

use crate::api::NODE_ID_LABEL;
use crate::compile::{Compilation, compile};
use crate::index::{Index, NamespacedName, SidecarInfo};

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

/// A refused snapshot.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct NackInfo {
    pub version: String,
    pub field: String,
    pub message: String,
}

/// What the operator knows of one sidecar's config.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SidecarState {
    pub node_id: NodeId,
    pub peer_address: String,
    pub connected: bool,
    /// Version and nonce pushed on the current stream (none yet on it).
    pub sent_version: Option<String>,
    #[serde(skip)]
    pub sent_nonce: Option<String>,
    /// The last version the sidecar acknowledged (or reported running in its
    /// Hello: resume).
    pub acked_version: Option<String>,
    /// The version the sidecar says it runs.
    pub applied_version: Option<String>,
    /// The last refusal, cleared by the next ACK.
    pub last_nack: Option<NackInfo>,
}

/// The per-sidecar state, keyed by sidecar (namespace/name); what
/// [`status::rollup`] reads.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DistributionState {
    pub sidecars: BTreeMap<NamespacedName, SidecarState>,
}

/// Identifies one stream of one sidecar (a reconnect gets a new one, so the
/// end of an old stream cannot disconnect the new one).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Connection {
    pub sidecar: NamespacedName,
    pub id: u64,
}

struct Inner {
    options: DistributorOptions,
    objects: Index,
    registered: BTreeMap<NamespacedName, SidecarInfo>,
    compilation: Arc<Compilation>,
    state: DistributionState,
    streams: BTreeMap<NamespacedName, (u64, Outbound)>,
    next_connection: u64,
    next_nonce: u64,
    /// Nonces from different operator runs never collide.
    epoch: String,
    pushes: u64,
}

/// Shared by the gRPC streams, the manifest watcher and the HTTP status.
#[derive(Clone)]
pub struct Distributor {
    inner: Arc<Mutex<Inner>>,
}

/// The sidecar a Hello describes, as the compiler sees a pod: name = node
/// id, labels as sent; a `routing.fabric.dev/node-id` label overrides the
/// node id (the pod label is authoritative, as in a cluster). An
/// unspecified or missing host in the peer address is replaced by `remote`.
pub fn sidecar_from_hello(hello: &Hello, remote: Option<IpAddr>) -> Result<SidecarInfo, String> {
    if hello.node_id.is_empty() {
        return Err("Hello without node_id".into());
    }
    let namespace = if hello.namespace.is_empty() { "default".to_string() } else { hello.namespace.clone() };
    let node_id = hello.labels.get(NODE_ID_LABEL).filter(|id| !id.is_empty()).unwrap_or(&hello.node_id).clone();
    let peer_address = match (hello.peer_address.rsplit_once(':'), remote) {
        (Some((host, port)), Some(remote)) if is_unspecified(host) => {
            Some(std::net::SocketAddr::new(remote, port.parse().map_err(|_| "bad peer_address port")?).to_string())
        }
        _ if hello.peer_address.is_empty() => None,
        _ => Some(hello.peer_address.clone()),
    };
    Ok(SidecarInfo {
        node_id: NodeId::from(node_id),
        namespace,
        name: hello.node_id.clone(),
        labels: hello.labels.clone(),
        peer_address,
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
            registered,
            compilation: Arc::new(compile(&Index::new())),
            state,
            streams: BTreeMap::new(),
            next_connection: 0,
            next_nonce: 0,
            epoch,
            pushes: 0,
        };
        Self { inner: Arc::new(Mutex::new(inner)) }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The objects (and any sidecars known from pods or manifests) changed:
    /// recompile and push what changed.
    pub fn set_objects(&self, objects: Index) {
        let mut inner = self.lock();
        inner.objects = objects;
        inner.recompile();
    }

    /// A stream said Hello: register the sidecar, recompile, and push its
    /// config unless it already runs the current version.
    pub fn connect(&self, sidecar: SidecarInfo, applied_version: &str) -> (Connection, OutboundReceiver) {
        let mut inner = self.lock();
        let key = NamespacedName::new(&sidecar.namespace, &sidecar.name);
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
        if inner.registered.insert(key.clone(), sidecar.clone()).as_ref() != Some(&sidecar) {
            inner.save_registry();
        }
        inner.recompile();
        (Connection { sidecar: key, id }, receiver)
    }

    /// An ACK: the snapshot with this nonce is in force. Stale nonces (an
    /// older push, another stream) are ignored.
    pub fn ack(&self, connection: &Connection, version: &str, nonce: &str) -> bool {
        let mut inner = self.lock();
        let Some(state) = inner.current_state(connection, nonce) else { return false };
        state.acked_version = Some(version.to_string());
        state.applied_version = Some(version.to_string());
        state.last_nack = None;
        true
    }

    /// A NACK: the sidecar refused the snapshot and still runs
    /// `applied_version`.
    pub fn nack(&self, connection: &Connection, nack: NackInfo, nonce: &str, applied_version: &str) -> bool {
        let mut inner = self.lock();
        let Some(state) = inner.current_state(connection, nonce) else { return false };
        state.applied_version = (!applied_version.is_empty()).then(|| applied_version.to_string());
        state.last_nack = Some(nack);
        true
    }

    /// A stream ended. The sidecar stays registered (marked disconnected)
    /// unless `forget_disconnected`.
    pub fn disconnect(&self, connection: &Connection) {
        let mut inner = self.lock();
        if inner.streams.get(&connection.sidecar).is_none_or(|(id, _)| *id != connection.id) {
            return; // an older stream of a sidecar that reconnected
        }
        inner.streams.remove(&connection.sidecar);
        if inner.options.forget_disconnected {
            inner.state.sidecars.remove(&connection.sidecar);
            inner.registered.remove(&connection.sidecar);
            inner.save_registry();
            inner.recompile();
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
        self.lock().pushes
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

    fn recompile(&mut self) {
        let mut index = self.objects.clone();
        for sidecar in self.registered.values() {
            index.upsert_sidecar(sidecar.clone());
        }
        self.compilation = Arc::new(compile(&index));
        self.push_all();
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
        let Some(compiled) = self.compilation.sidecars.get(&state.node_id) else { return };
        let version = compiled.version();
        let current = match &state.sent_version {
            Some(sent) => sent == version,
            None => state.acked_version.as_deref() == Some(version),
        };
        if current {
            return;
        }
        self.next_nonce += 1;
        let nonce = format!("{}-{}", self.epoch, self.next_nonce);
        let snapshot = ConfigSnapshot {
            version: version.to_string(),
            nonce: nonce.clone(),
            config_yaml: compiled.config.to_yaml(),
        };
        if sender.send(Ok(OperatorMessage::snapshot(snapshot))).is_ok() {
            tracing::info!(sidecar = %key, version, nonce, "config pushed");
            state.sent_version = Some(version.to_string());
            state.sent_nonce = Some(nonce);
            self.pushes += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use fabric_routing::control::proto::operator_message;

    use super::*;

    fn hello(node: &str, labels: &[(&str, &str)]) -> Hello {
        Hello {
            node_id: node.into(),
            namespace: "fabric".into(),
            labels: labels.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
            peer_address: "0.0.0.0:7000".into(),
            applied_version: String::new(),
        }
    }

    fn snapshot(receiver: &mut OutboundReceiver) -> Option<ConfigSnapshot> {
        match receiver.try_recv().ok()?.ok()?.kind? {
            operator_message::Kind::Snapshot(s) => Some(s),
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
        assert!(snapshot(&mut receiver).is_none(), "resume: nothing to push");
        // The old stream ending late does not disconnect the new one.
        distributor.disconnect(&connection);
        assert!(distributor.state().sidecars[&again.sidecar].connected);

        // Reconnect reporting another version: pushed.
        let (_, mut receiver) = distributor.connect(info, "old");
        assert_eq!(snapshot(&mut receiver).map(|s| s.version), Some(first.version));
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
