//! Who gets which message: a snapshot when a sidecar's compiled version
//! differs from what its stream was sent, `Current` once when it already
//! runs it, nothing while pushes are held or no valid config compiled.

use super::{Action, Distribution, Message, Note, Push, SigningSecret, Snapshot};
use crate::index::NamespacedName;

impl Distribution {
    /// Ends the hold: push to every connected sidecar that is not current.
    pub fn release(&mut self) -> Vec<Action> {
        self.options.hold = false;
        let mut actions = Vec::new();
        self.push_all(&mut actions);
        actions
    }

    /// A message of a [`Push`] is on its stream: what the sidecar was sent
    /// (and what an ACK must name) changes only now.
    pub fn record_sent(&mut self, push: &Push) {
        if self.connections.get(&push.sidecar) != Some(&push.connection) {
            return;
        }
        match &push.message {
            Message::Snapshot(snapshot) => {
                if let Some(state) = self.state.sidecars.get_mut(&push.sidecar) {
                    state.sent_version = Some(snapshot.version.clone());
                    state.sent_nonce = Some(snapshot.nonce.clone());
                    self.counters.pushes += 1;
                }
            }
            Message::Current { version } => {
                if let Some(state) = self.state.sidecars.get_mut(&push.sidecar) {
                    state.sent_version = Some(version.clone());
                }
            }
            Message::PeerCertificate(issued) => self.record_certificate_sent(push, issued),
        }
    }

    pub(super) fn push_all(&mut self, actions: &mut Vec<Action>) {
        let connected: Vec<NamespacedName> = self.connections.keys().cloned().collect();
        for key in connected {
            self.push_if_needed(&key, actions);
        }
    }

    /// Pushes the sidecar's compiled config unless its stream was already
    /// sent this version, or (nothing sent on this stream yet) it reported
    /// running it. A sidecar without a valid config is sent nothing: it
    /// keeps its last good config.
    pub(super) fn push_if_needed(&mut self, key: &NamespacedName, actions: &mut Vec<Action>) {
        if self.options.hold {
            return;
        }
        let Some(&connection) = self.connections.get(key) else { return };
        let Some(state) = self.state.sidecars.get(key) else { return };
        if !self.compilation.sidecars.contains_key(&state.node_id) {
            return;
        }
        // Only the sidecar the config was compiled for gets it (and its
        // signing key): not a pod that claims the node id without being
        // that sidecar (unknown to the index, or refused by the identity
        // rules).
        let Some(compiled) = self.compilation.for_pod(&state.node_id, key) else {
            actions.push(Action::Note(Note::NotTheCompiledPod { sidecar: key.clone(), node: state.node_id.clone() }));
            return;
        };
        let version = compiled.version();
        let push = |message| Action::Push(Push { sidecar: key.clone(), connection, message });
        match &state.sent_version {
            Some(sent) if sent == version => return,
            None if state.acked_version.as_deref() == Some(version) => {
                // Resume: tell the sidecar (once per stream) so it starts
                // peering without waiting for a snapshot that will not come.
                actions.push(push(Message::Current { version: version.to_string() }));
                return;
            }
            _ => {}
        }
        let signing_key = match &compiled.config.security.signing_key_id {
            None => None,
            Some(key_id) => match self.keys.signing.get(&state.node_id).and_then(|keys| keys.get(key_id)) {
                Some(secret) => Some(SigningSecret { key_id: key_id.clone(), secret: *secret }),
                None => {
                    let note = Note::SigningKeyNotYetAvailable { sidecar: key.clone(), key_id: key_id.clone() };
                    actions.push(Action::Note(note));
                    return;
                }
            },
        };
        self.next_nonce += 1;
        let nonce = format!("{}-{}", self.epoch, self.next_nonce);
        let snapshot =
            Snapshot { version: version.to_string(), nonce, config_yaml: compiled.text.clone(), signing_key };
        actions.push(push(Message::Snapshot(snapshot)));
    }
}

#[cfg(test)]
mod tests {
    use fabric_core::{KeyId, NodeId, Timestamp};

    use super::super::test_builders::{
        SECRET, cluster, local, named, pods, published_k1, route_key, settle, sidecar, sidecar_as, version_of,
    };
    use super::super::{KeyMaterial, Options};
    use super::*;
    use crate::api::KeyState;
    use crate::rotation_plan::Rollout;
    use crate::sync_status::NackInfo;

    #[test]
    fn only_the_pod_compiled_for_a_node_id_gets_its_config() {
        let mut machine = cluster(pods([sidecar("a")]));
        let (_, actions) = machine.connect(sidecar("a"), "");
        settle(&mut machine, actions).only_snapshot_to("a");
        // A pod the watch does not know, claiming node id a, gets nothing,
        // and does not hold key rotation back.
        let (_, actions) = machine.connect(sidecar_as("rogue", "a"), "");
        let outcome = settle(&mut machine, actions);
        assert!(outcome.sent.is_empty());
        assert_eq!(outcome.notes, [Note::NotTheCompiledPod { sidecar: named("rogue"), node: NodeId::from("a") }]);
        let waiting = machine.rollout(&NodeId::from("a"), &KeyId::from("k1"), Timestamp(0));
        assert_eq!(waiting, Rollout::Waiting(vec!["fabric/a".into()]), "only the member counts");
        // A second watched pod claiming node id a: the compiler serves
        // neither (compile::identity), so the duplicate gets nothing.
        let actions = machine.set_objects(pods([sidecar("a"), sidecar_as("b-duplicate", "a")]));
        settle(&mut machine, actions);
        let (_, actions) = machine.connect(sidecar_as("b-duplicate", "a"), "");
        assert!(settle(&mut machine, actions).sent.is_empty());
    }

    #[test]
    fn held_pushes_wait_for_release_and_a_refused_version_is_not_resent() {
        let mut machine = local(Options { hold: true, ..Default::default() });
        let (connection, actions) = machine.connect(sidecar("a"), "");
        let outcome = settle(&mut machine, actions);
        assert_eq!((outcome.compiles, outcome.sent.len()), (1, 0), "compiled, held");
        let actions = machine.release();
        let pushed = settle(&mut machine, actions).only_snapshot_to("a").clone();
        let nack = NackInfo { version: pushed.version.clone(), field: "nodeId".into(), message: "no".into() };
        assert_eq!(machine.nack(&connection, nack.clone(), &pushed.nonce, "v0"), Ok(()));
        let state = machine.state().sidecars[&named("a")].clone();
        assert_eq!((state.last_nack, state.applied_version.as_deref()), (Some(nack), Some("v0")));
        let actions = machine.release();
        assert!(settle(&mut machine, actions).sent.is_empty(), "a refused version is not resent");
    }

    #[test]
    fn a_push_that_never_reached_its_stream_is_planned_again() {
        let mut machine = local(Options { hold: true, ..Default::default() });
        let (_, actions) = machine.connect(sidecar("a"), "");
        settle(&mut machine, actions);
        // The stream is gone before it takes the snapshot: not recorded.
        let lost = machine.release();
        assert!(matches!(lost.as_slice(), [Action::Push(_)]));
        assert_eq!(machine.counters().pushes, 0);
        assert_eq!(machine.state().sidecars[&named("a")].sent_version, None);
        let actions = machine.release();
        let again = settle(&mut machine, actions);
        assert_eq!(again.only_snapshot_to("a").nonce, "run-2", "a new push, a new nonce");
        assert_eq!(machine.counters().pushes, 1);
    }

    #[test]
    fn a_config_that_signs_is_pushed_once_its_private_key_is_here() {
        let mut objects = pods([sidecar("a")]);
        objects.apply(route_key("a", None)).unwrap();
        let mut machine = cluster(objects);
        let (_, actions) = machine.connect(sidecar("a"), "");
        settle(&mut machine, actions).only_snapshot_to("a");
        // Key rotation publishes k1 as active before the store has its
        // private half: the config now names it, and waits.
        let mut keys = KeyMaterial::default();
        keys.published.insert(named("a"), published_k1(KeyState::Active));
        let actions = machine.set_key_material(keys.clone());
        let outcome = settle(&mut machine, actions);
        let note = Note::SigningKeyNotYetAvailable { sidecar: named("a"), key_id: KeyId::from("k1") };
        assert_eq!((outcome.sent.len(), outcome.notes), (0, vec![note]));
        keys.signing.insert(NodeId::from("a"), [(KeyId::from("k1"), SECRET)].into());
        let actions = machine.set_key_material(keys);
        let outcome = settle(&mut machine, actions);
        let snapshot = outcome.only_snapshot_to("a");
        assert_eq!(snapshot.version, version_of(&machine, "a"));
        assert_eq!(snapshot.signing_key, Some(SigningSecret { key_id: KeyId::from("k1"), secret: SECRET }));
    }
}
