//! Config distribution: the gRPC server sidecars dial (xDS semantics, see
//! docs/operator.md, "Distribution").
//!
//! The decisions (who is connected, which ACK counts, who gets which
//! snapshot, when key rotation may go on) are
//! `fabric_operator_core::distribution`'s state machine. [`Distributor`] is
//! its adapter, shared by the gRPC streams, the manifest watcher, key
//! rotation and the HTTP status: it holds the machine under a mutex, the
//! channel of each open stream (`streams`), local mode's registry file
//! (`registry`), runs the compiles the machine asks for outside the lock,
//! and turns the machine's messages into proto messages on the streams.
//! `hello` reads a Hello, `server` puts it all behind tonic, `auth` checks
//! tokens; `local` is `fabric-operator run --manifests`.

pub mod auth;
mod hello;
mod log;
mod registry;
pub mod server;
mod streams;

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use fabric_core::{KeyId, NodeId, Timestamp};
use fabric_operator_core::api::RouteKey;
use fabric_operator_core::compile::{Compilation, Settings, compile_with};
use fabric_operator_core::distribution::{Action, CompileInputs, Distribution, Push, StaleReply};
use fabric_operator_core::index::{Index, NamespacedName, SidecarInfo};
use fabric_operator_core::peer_ca::PeerCa;

pub use fabric_operator_core::distribution::counters;
pub use fabric_operator_core::distribution::{Connection, KeyMaterial, Options, UNCONFIGURED_WAIT};
pub use fabric_operator_core::rotation_plan::{Rollout, RotationStatus};
pub use fabric_operator_core::sync_status::{DistributionState, NackInfo, SidecarState};
pub use hello::{HelloError, sidecar_from_hello};
pub use streams::{Outbound, OutboundReceiver};

/// How a [`Distributor`] runs: the state machine's options and the
/// registry file, which only the adapter touches.
#[derive(Clone, Debug, Default)]
pub struct DistributorOptions {
    pub machine: Options,
    /// Local mode: a file (JSON) where the sidecars that said Hello are
    /// kept, so a restarted operator compiles for all of them at once and
    /// reconnecting sidecars on the current version get no push. (In a
    /// cluster, the pod watch plays this part.)
    pub registry: Option<std::path::PathBuf>,
}

struct Inner {
    machine: Distribution,
    streams: streams::Streams,
    registry: Option<std::path::PathBuf>,
}

impl Inner {
    /// Puts `push` on its stream and, once it is there, tells the machine.
    fn deliver(&mut self, push: &Push) {
        if self.streams.send(push) {
            log::sent(push);
            self.machine.record_sent(push);
        }
    }

    fn save_registry(&self) {
        if let Some(path) = &self.registry {
            registry::save(path, self.machine.registered());
        }
    }
}

/// Shared by the gRPC streams, the manifest watcher and the HTTP status.
#[derive(Clone)]
pub struct Distributor {
    inner: Arc<Mutex<Inner>>,
}

impl Distributor {
    pub fn new(options: DistributorOptions) -> Self {
        // Nonces from different operator runs must not collide.
        let epoch = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| format!("{:x}", d.as_nanos() & 0xffff_ffff_ffff))
            .unwrap_or_default();
        let DistributorOptions { machine, registry } = options;
        let registered = registry.as_deref().map(registry::load).unwrap_or_default();
        let inner =
            Inner { machine: Distribution::new(machine, registered, epoch), streams: Default::default(), registry };
        Self { inner: Arc::new(Mutex::new(inner)) }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Does what the machine asked, in order. A compile runs without the
    /// lock (tens of milliseconds at 1,000 sidecars, docs/benchmarks.md):
    /// ACKs, Hellos and the status API go on meanwhile, and the machine
    /// drops its result if a compile of newer inputs was installed first.
    fn perform<'a>(&'a self, mut inner: MutexGuard<'a, Inner>, actions: Vec<Action>) {
        let mut queue = VecDeque::from(actions);
        while let Some(action) = queue.pop_front() {
            match action {
                Action::Push(push) => inner.deliver(&push),
                Action::SaveRegistry => inner.save_registry(),
                Action::Note(note) => log::note(&note),
                Action::Compile(inputs) => {
                    drop(inner);
                    let (compilation, took) = compile_traced(&inputs);
                    inner = self.lock();
                    queue.extend(inner.machine.install(inputs.number, compilation, took));
                }
            }
        }
    }

    /// The objects (and any sidecars known from pods or manifests) changed:
    /// recompile and push what changed.
    pub fn set_objects(&self, objects: Index) {
        let mut inner = self.lock();
        let actions = inner.machine.set_objects(objects);
        self.perform(inner, actions);
    }

    /// The fabric as the next compile sees it and the identity settings,
    /// for the validating webhook; `None` until the objects were listed
    /// once (a follower, or a leader still starting).
    pub fn fabric(&self) -> Option<(Index, Settings)> {
        self.lock().machine.fabric()
    }

    /// The RouteKeys last set (without the key rotation overlay), in
    /// namespace/name order.
    pub fn route_keys(&self) -> BTreeMap<NamespacedName, RouteKey> {
        self.lock().machine.route_keys()
    }

    /// Key rotation changed published or private keys: recompile if that
    /// changes anything.
    pub fn set_key_material(&self, keys: KeyMaterial) {
        let mut inner = self.lock();
        let actions = inner.machine.set_key_material(keys);
        self.perform(inner, actions);
    }

    /// Key rotation's progress per RouteKey, for the status API.
    pub fn set_rotation_status(&self, status: BTreeMap<NamespacedName, RotationStatus>) {
        self.lock().machine.set_rotation_status(status);
    }

    pub fn rotation_status(&self) -> BTreeMap<NamespacedName, RotationStatus> {
        self.lock().machine.rotation_status().clone()
    }

    /// Whether every connected sidecar runs a config that trusts key `key`
    /// of `node` (see `Distribution::rollout`, [`UNCONFIGURED_WAIT`]).
    pub fn rollout(&self, node: &NodeId, key: &KeyId, now: Timestamp) -> Rollout {
        self.lock().machine.rollout(node, key, now)
    }

    /// Whether the sidecar of `node` acknowledged a config that makes it
    /// sign with `key` (true when no sidecar has that node id).
    pub fn signs_with(&self, node: &NodeId, key: &KeyId) -> bool {
        self.lock().machine.signs_with(node, key)
    }

    /// A stream said Hello: register the sidecar, recompile if that changes
    /// the fabric, and push its config unless it already runs the current
    /// version. The receiver is what goes down the new stream.
    pub fn connect(&self, sidecar: SidecarInfo, applied_version: &str) -> (Connection, OutboundReceiver) {
        let mut inner = self.lock();
        let (connection, actions) = inner.machine.connect(sidecar, applied_version);
        let receiver = inner.streams.open(&connection);
        self.perform(inner, actions);
        (connection, receiver)
    }

    /// An ACK: the snapshot with this nonce is in force. Stale nonces (an
    /// older push, another stream) are ignored: false.
    pub fn ack(&self, connection: &Connection, version: &str, nonce: &str) -> bool {
        let reply = self.lock().machine.ack(connection, version, nonce);
        taken(connection, nonce, reply)
    }

    /// A NACK: the sidecar refused the snapshot and still runs
    /// `applied_version`.
    pub fn nack(&self, connection: &Connection, nack: NackInfo, nonce: &str, applied_version: &str) -> bool {
        let reply = self.lock().machine.nack(connection, nack, nonce, applied_version);
        taken(connection, nonce, reply)
    }

    /// The sidecar of `connection` asks for a peer TLS certificate for the
    /// key of `request` (DER PKCS#10); it is issued now if the sidecar's pod
    /// was compiled for its node id, else when it is.
    pub fn request_peer_certificate(&self, connection: &Connection, request: Vec<u8>, now: std::time::SystemTime) {
        let mut inner = self.lock();
        let actions = inner.machine.request_peer_certificate(connection, request, now);
        self.perform(inner, actions);
    }

    /// Issues the peer certificates that are due (first ones, renewals, a
    /// pod whose node id changed).
    pub fn renew_peer_certificates(&self, now: std::time::SystemTime) {
        let mut inner = self.lock();
        let actions = inner.machine.renew_peer_certificates(now);
        self.perform(inner, actions);
    }

    /// Issues peer certificates with `ca` from now on (cluster mode: once
    /// the leader has read or created its Secret).
    pub fn set_peer_ca(&self, ca: Arc<PeerCa>) {
        self.lock().machine.set_peer_ca(ca);
    }

    /// Renews peer certificates every `tick` (see
    /// [`Distributor::renew_peer_certificates`]).
    pub async fn run_peer_certificate_renewal(self, tick: Duration) {
        loop {
            tokio::time::sleep(tick).await;
            self.renew_peer_certificates(std::time::SystemTime::now());
        }
    }

    /// A stream ended. The sidecar stays registered (marked disconnected)
    /// unless `forget_disconnected`; the end of an older stream of a
    /// sidecar that reconnected changes nothing.
    pub fn disconnect(&self, connection: &Connection) {
        let mut inner = self.lock();
        if let Some(actions) = inner.machine.disconnect(connection) {
            inner.streams.close(&connection.sidecar);
            self.perform(inner, actions);
        }
    }

    /// Ends the hold: push to every connected sidecar that is not current.
    pub fn release(&self) {
        let mut inner = self.lock();
        let actions = inner.machine.release();
        self.perform(inner, actions);
    }

    pub fn compilation(&self) -> Arc<Compilation> {
        self.lock().machine.compilation().clone()
    }

    pub fn state(&self) -> DistributionState {
        self.lock().machine.state().clone()
    }

    /// Snapshots pushed since start (all streams).
    pub fn pushes(&self) -> u64 {
        self.lock().machine.counters().pushes
    }

    /// What `/metrics` shows.
    pub fn counters(&self) -> counters::Counters {
        self.lock().machine.counters().clone()
    }

    /// Status writes that reached the API server (cluster mode).
    pub fn record_status_patches(&self, written: u64) {
        self.lock().machine.record_status_patches(written);
    }

    /// Whether this replica leads (cluster mode; local mode always does).
    pub fn set_leader(&self, leader: bool) {
        self.lock().machine.set_leader(leader);
    }

    /// The compiled version for a sidecar, if it has a valid config.
    pub fn current_version(&self, sidecar: &NamespacedName) -> Option<String> {
        self.lock().machine.current_version(sidecar).map(str::to_string)
    }
}

/// Whether an ACK or NACK counted; a stale nonce on the current stream is
/// worth a debug line (a reply on an old stream is expected after a
/// reconnect).
fn taken(connection: &Connection, nonce: &str, reply: Result<(), StaleReply>) -> bool {
    if reply == Err(StaleReply::OldNonce) {
        tracing::debug!(sidecar = %connection.sidecar, nonce, "reply with a stale nonce ignored");
    }
    reply.is_ok()
}

/// Compiles `inputs` in a span that names the fleet's size and the
/// problems found, and says how long it took.
fn compile_traced(inputs: &CompileInputs) -> (Compilation, Duration) {
    let started = Instant::now();
    let span = tracing::info_span!(
        "fabric.operator.compile",
        sidecars = inputs.index.sidecars().count(),
        revision = inputs.index.revision(),
        problems = tracing::field::Empty
    );
    let compilation = span.in_scope(|| compile_with(&inputs.index, &inputs.settings));
    span.record("problems", compilation.problems.len());
    (compilation, started.elapsed())
}

#[cfg(test)]
mod tests {
    use fabric_control::{ConfigSnapshot, operator_message};
    use tokio::sync::mpsc::error::TryRecvError;

    use super::hello::hello_for_test;
    use super::*;

    fn sidecar(node: &str) -> SidecarInfo {
        sidecar_from_hello(&hello_for_test(node, &[]), None).unwrap()
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
    fn pushes_reach_the_stream_of_the_connection_and_replies_name_their_nonce() {
        let distributor = Distributor::new(DistributorOptions::default());
        let (connection, mut receiver) = distributor.connect(sidecar("a"), "");
        let first = snapshot(&mut receiver).expect("a push on connect");
        assert!(receiver.try_recv().is_err(), "one push only");
        assert!(!distributor.ack(&connection, &first.version, "stale"), "a stale nonce is ignored");
        assert!(distributor.ack(&connection, &first.version, &first.nonce));
        assert_eq!(distributor.current_version(&connection.sidecar), Some(first.version.clone()));
        assert_eq!(distributor.pushes(), 1);

        // Reconnect reporting the current version: Current, once.
        distributor.disconnect(&connection);
        let (again, mut receiver) = distributor.connect(sidecar("a"), &first.version);
        assert_eq!(current(&mut receiver), Some(first.version.clone()), "resume: told it is current");
        distributor.set_objects(Index::new());
        assert!(receiver.try_recv().is_err(), "a recompile to the same version sends nothing");
        // The old stream ending late does not close the new one.
        distributor.disconnect(&connection);
        assert!(distributor.state().sidecars[&again.sidecar].connected);

        // A reconnect ends the previous stream; the new one gets the push.
        let (_, mut newest) = distributor.connect(sidecar("a"), "old");
        assert_eq!(receiver.try_recv().unwrap_err(), TryRecvError::Disconnected);
        assert_eq!(snapshot(&mut newest).map(|s| s.version), Some(first.version));
    }

    #[test]
    fn a_snapshot_that_cannot_reach_its_stream_is_not_counted_as_sent() {
        let distributor = Distributor::new(DistributorOptions {
            machine: Options { hold: true, ..Default::default() },
            ..Default::default()
        });
        let (connection, receiver) = distributor.connect(sidecar("a"), "");
        drop(receiver);
        distributor.release();
        assert_eq!(distributor.pushes(), 0);
        assert_eq!(distributor.state().sidecars[&connection.sidecar].sent_version, None);
    }

    #[test]
    fn held_pushes_reach_the_streams_on_release_and_a_nack_is_kept() {
        let distributor = Distributor::new(DistributorOptions {
            machine: Options { hold: true, ..Default::default() },
            ..Default::default()
        });
        let (connection, mut receiver) = distributor.connect(sidecar("a"), "");
        assert!(snapshot(&mut receiver).is_none(), "held");
        distributor.release();
        let pushed = snapshot(&mut receiver).expect("pushed on release");
        let nack = NackInfo { version: pushed.version.clone(), field: "nodeId".into(), message: "no".into() };
        assert!(distributor.nack(&connection, nack.clone(), &pushed.nonce, "v0"));
        let state = distributor.state().sidecars[&connection.sidecar].clone();
        assert_eq!((state.last_nack, state.applied_version.as_deref()), (Some(nack), Some("v0")));
    }

    #[test]
    fn a_restarted_operator_reads_its_registry_and_resumes_without_pushes() {
        let dir = fabric_testkit::process::scratch("distributor-registry");
        std::fs::create_dir_all(&dir).unwrap();
        let options = DistributorOptions { registry: Some(dir.join("sidecars.json")), ..Default::default() };
        let version = {
            let distributor = Distributor::new(options.clone());
            let (connection, mut receiver) = distributor.connect(sidecar("a"), "");
            let pushed = snapshot(&mut receiver).unwrap();
            assert!(distributor.ack(&connection, &pushed.version, &pushed.nonce));
            pushed.version
        };
        let restarted = Distributor::new(options);
        let known = restarted.state();
        assert!(!known.sidecars[&NamespacedName::new("fabric", "a")].connected, "known, not connected yet");
        restarted.set_objects(Index::new());
        let (_, mut receiver) = restarted.connect(sidecar("a"), &version);
        assert_eq!(current(&mut receiver), Some(version));
        assert_eq!(restarted.pushes(), 0);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
