//! Config distribution as a state machine (xDS semantics, see
//! docs/operator.md, "Distribution"): events in (objects, key material, a
//! Hello, an ACK or NACK, a stream's end, a finished compile, the time),
//! [`Action`]s out (a message for one sidecar's stream, a compile to run,
//! the registry to keep, a note worth a log line). No streams, files,
//! threads or clock here: the `operator` crate's `distribution` module
//! holds the channels and the registry file, runs the compiles and reads
//! the clock, so every decision below can be tested as data.
//!
//! [`Distribution`] holds the objects (an [`Index`] without the dialed-in
//! sidecars), the sidecars that said Hello, the latest [`Compilation`],
//! and per sidecar what was sent, acknowledged or refused. Every change of
//! the fabric asks for a compile; installing its result pushes a complete
//! snapshot to each connected sidecar whose compiled version differs from
//! what its stream was last sent. The modules: `actions` (what the caller
//! is asked to do), `sessions` (Hello, ACK, NACK, a stream's end), `inputs`
//! (what a compile reads, installing its result), `push` (who gets which
//! message), `rollout` (whether key rotation may go on),
//! `peer_certificates` (issuing and renewing) and [`counters`] (what
//! `/metrics` shows).

mod actions;
pub mod counters;
mod inputs;
mod peer_certificates;
mod push;
mod rollout;
mod sessions;
#[cfg(test)]
mod test_builders;

use std::collections::BTreeMap;
use std::sync::Arc;

pub use actions::{Action, IssuedCertificate, Message, Note, Push, SigningSecret, Snapshot};
pub use inputs::{CompileInputs, KeyMaterial};
pub use rollout::UNCONFIGURED_WAIT;
pub use sessions::{Connection, StaleReply};

use crate::api::RouteKey;
use crate::compile::{Compilation, Settings, compile};
use crate::index::{Index, NamespacedName, SidecarInfo};
use crate::peer_ca::PeerCa;
use crate::rotation_plan::RotationStatus;
use crate::sync_status::{DistributionState, SidecarState};

/// How a [`Distribution`] treats Hellos and stream ends.
#[derive(Clone, Debug, Default)]
pub struct Options {
    /// Remove a sidecar from the fabric when its stream ends. Off by
    /// default: a sidecar whose stream drops (its restart, an operator
    /// restart, a network blip) stays a neighbor of the others, marked
    /// disconnected, so a blip does not rewrite every other sidecar's
    /// config. In a cluster the pod watch removes sidecars instead.
    pub forget_disconnected: bool,
    /// Collect Hellos without pushing until [`Distribution::release`]:
    /// after an operator restart, the sidecars reconnect one by one;
    /// pushing to the first before the others are back would send configs
    /// missing neighbors. The caller releases after a grace period.
    pub hold: bool,
    /// Cluster mode: sidecars come from the pod watch (in the objects'
    /// index), not from Hellos. A Hello then only opens the stream of the
    /// pod it names (namespace + pod name).
    pub sidecars_from_objects: bool,
    /// Who may run as which node id (`--fabric-namespace`,
    /// `--unbound-node-ids`).
    pub identity: Settings,
    /// Issues peer TLS certificates to sidecars that ask in their Hello.
    pub peer_ca: Option<Arc<PeerCa>>,
}

/// The distribution state machine; see the module documentation.
#[derive(Debug)]
pub struct Distribution {
    options: Options,
    objects: Index,
    /// The objects were set at least once (the first full list).
    objects_listed: bool,
    keys: KeyMaterial,
    rotation: BTreeMap<NamespacedName, RotationStatus>,
    /// Local mode: the sidecars that said Hello (what the registry keeps).
    registered: BTreeMap<NamespacedName, SidecarInfo>,
    compilation: Arc<Compilation>,
    state: DistributionState,
    /// The open stream of each connected sidecar, by connection id.
    connections: BTreeMap<NamespacedName, u64>,
    peer_certificates: BTreeMap<NamespacedName, peer_certificates::Request>,
    /// Connected sidecars without a valid config, since when (key rotation
    /// waits for them only so long).
    unconfigured_since: BTreeMap<NamespacedName, fabric_core::Timestamp>,
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

impl Distribution {
    /// A distribution that knows the sidecars `registered` (local mode's
    /// registry from a previous run: disconnected until they say Hello).
    /// `epoch` prefixes every nonce, so it must differ between runs.
    pub fn new(options: Options, registered: impl IntoIterator<Item = SidecarInfo>, epoch: String) -> Self {
        let registered: BTreeMap<NamespacedName, SidecarInfo> =
            registered.into_iter().map(|info| (NamespacedName::new(&info.namespace, &info.name), info)).collect();
        let sidecars =
            registered.iter().map(|(key, info)| (key.clone(), SidecarState::new(info, false, None))).collect();
        Self {
            options,
            objects: Index::new(),
            objects_listed: false,
            keys: KeyMaterial::default(),
            rotation: BTreeMap::new(),
            registered,
            compilation: Arc::new(compile(&Index::new())),
            state: DistributionState { sidecars },
            connections: BTreeMap::new(),
            peer_certificates: BTreeMap::new(),
            unconfigured_since: BTreeMap::new(),
            next_connection: 0,
            next_nonce: 0,
            epoch,
            counters: counters::Counters { leader: true, ..Default::default() },
            taken_inputs: 0,
            installed_inputs: 0,
        }
    }

    /// The sidecars that said Hello, for local mode's registry file.
    pub fn registered(&self) -> impl Iterator<Item = &SidecarInfo> {
        self.registered.values()
    }

    /// The RouteKeys last set (without the key rotation overlay), in
    /// namespace/name order.
    pub fn route_keys(&self) -> BTreeMap<NamespacedName, RouteKey> {
        self.objects.objects::<RouteKey>().map(|(name, key)| (name.clone(), key.clone())).collect()
    }

    /// Key rotation's progress per RouteKey, for the status API.
    pub fn set_rotation_status(&mut self, status: BTreeMap<NamespacedName, RotationStatus>) {
        self.rotation = status;
    }

    pub fn rotation_status(&self) -> &BTreeMap<NamespacedName, RotationStatus> {
        &self.rotation
    }

    /// Issues peer certificates with `ca` from now on (cluster mode: once
    /// the leader has read or created its Secret).
    pub fn set_peer_ca(&mut self, ca: Arc<PeerCa>) {
        self.options.peer_ca = Some(ca);
    }

    pub fn compilation(&self) -> &Arc<Compilation> {
        &self.compilation
    }

    pub fn state(&self) -> &DistributionState {
        &self.state
    }

    /// What `/metrics` shows.
    pub fn counters(&self) -> &counters::Counters {
        &self.counters
    }

    /// Status writes that reached the API server (cluster mode).
    pub fn record_status_patches(&mut self, written: u64) {
        self.counters.status_patches += written;
    }

    /// Whether this replica leads (cluster mode; local mode always does).
    pub fn set_leader(&mut self, leader: bool) {
        self.counters.leader = leader;
    }

    /// The compiled version for a sidecar, if it has a valid config.
    pub fn current_version(&self, sidecar: &NamespacedName) -> Option<&str> {
        let node_id = &self.state.sidecars.get(sidecar)?.node_id;
        self.compilation.sidecars.get(node_id).map(|c| c.version())
    }
}
