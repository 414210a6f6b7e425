//! Small builders for the state machine's tests: sidecars, fabrics and
//! RouteKeys, and [`settle`], a stand-in for the operator that runs the
//! compiles a step asks for and hands every push to a stream that takes it.

use std::collections::VecDeque;
use std::time::Duration;

use fabric_core::{NodeId, Timestamp};

use super::{Action, Distribution, Message, Note, Options, Push, Snapshot};
use crate::api::{KeyState, PublishedKey, RouteKey, RouteKeyStatus};
use crate::compile::compile_with;
use crate::index::{Index, NamespacedName, SidecarInfo};
use crate::rotation_plan::PrivateKey;

/// The prefix of every nonce in these tests.
pub(super) const EPOCH: &str = "run";
/// The private half of key `k1`.
pub(super) const SECRET: [u8; 32] = [7; 32];

/// Sidecar `name` of namespace `fabric`, running as node id `name`.
pub(super) fn sidecar(name: &str) -> SidecarInfo {
    SidecarInfo {
        node_id: NodeId::from(name),
        namespace: "fabric".into(),
        name: name.into(),
        labels: Default::default(),
        peer_address: Some(format!("{name}.fabric:7000")),
        service_account: None,
    }
}

/// Sidecar `name` running as node id `node`.
pub(super) fn sidecar_as(name: &str, node: &str) -> SidecarInfo {
    SidecarInfo { node_id: NodeId::from(node), ..sidecar(name) }
}

pub(super) fn named(name: &str) -> NamespacedName {
    NamespacedName::new("fabric", name)
}

/// An index of the pods of `sidecars`.
pub(super) fn pods(sidecars: impl IntoIterator<Item = SidecarInfo>) -> Index {
    let mut index = Index::new();
    for sidecar in sidecars {
        index.upsert_sidecar(sidecar);
    }
    index
}

/// Local mode: sidecars register with their Hello.
pub(super) fn local(options: Options) -> Distribution {
    Distribution::new(options, [], EPOCH.into())
}

/// Cluster mode with `objects` listed and compiled: a Hello only opens the
/// stream of its pod.
pub(super) fn cluster(objects: Index) -> Distribution {
    let mut machine =
        Distribution::new(Options { sidecars_from_objects: true, ..Default::default() }, [], EPOCH.into());
    let actions = machine.set_objects(objects);
    settle(&mut machine, actions);
    machine
}

/// RouteKey `name` of node `node`, management Operator, with key `k1`
/// published in `state` when given.
pub(super) fn route_key(node: &str, k1: Option<KeyState>) -> RouteKey {
    let mut route_key: RouteKey = serde_json::from_value(serde_json::json!({
        "apiVersion": "routing.fabric.dev/v1alpha1",
        "kind": "RouteKey",
        "metadata": {"name": node, "namespace": "fabric", "generation": 1, "uid": format!("uid-{node}")},
        "spec": {"nodeId": node},
    }))
    .expect("a RouteKey");
    route_key.status = k1.map(published_k1);
    route_key
}

/// A RouteKey status listing key `k1` (public half of [`SECRET`]) in
/// `state`, active when it is.
pub(super) fn published_k1(state: KeyState) -> RouteKeyStatus {
    let public_key = PrivateKey::new("k1".into(), &SECRET, Timestamp(0)).public_key().expect("a public key");
    RouteKeyStatus {
        keys: vec![PublishedKey { key_id: "k1".into(), public_key, valid_from: None, valid_until: None, state }],
        active_key_id: (state == KeyState::Active).then(|| "k1".into()),
        ..Default::default()
    }
}

/// What a step led to once the operator did what it asked.
#[derive(Debug, Default)]
pub(super) struct Outcome {
    /// Every push, each recorded as sent (a live stream takes it).
    pub(super) sent: Vec<Push>,
    pub(super) notes: Vec<Note>,
    pub(super) compiles: usize,
    pub(super) registry_saved: bool,
}

impl Outcome {
    /// The one snapshot sent, to sidecar `name`.
    pub(super) fn only_snapshot_to(&self, name: &str) -> &Snapshot {
        match self.sent.as_slice() {
            [Push { sidecar, message: Message::Snapshot(snapshot), .. }] if sidecar == &named(name) => snapshot,
            other => panic!("one snapshot to {name} expected, sent {other:?}"),
        }
    }
}

/// Does what `actions` ask, as the operator would: compiles (taking no
/// time) and installs the results, sends and records every push.
pub(super) fn settle(machine: &mut Distribution, actions: Vec<Action>) -> Outcome {
    let mut outcome = Outcome::default();
    let mut queue = VecDeque::from(actions);
    while let Some(action) = queue.pop_front() {
        match action {
            Action::Push(push) => {
                machine.record_sent(&push);
                outcome.sent.push(push);
            }
            Action::Compile(inputs) => {
                outcome.compiles += 1;
                let compilation = compile_with(&inputs.index, &inputs.settings);
                queue.extend(machine.install(inputs.number, compilation, Duration::ZERO));
            }
            Action::SaveRegistry => outcome.registry_saved = true,
            Action::Note(note) => outcome.notes.push(note),
        }
    }
    outcome
}

/// The version compiled for node `node`.
pub(super) fn version_of(machine: &Distribution, node: &str) -> String {
    machine.compilation().sidecars[&NodeId::from(node)].version().to_string()
}
