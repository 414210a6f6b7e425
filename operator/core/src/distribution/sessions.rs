//! A sidecar's stream from Hello to its end: who is connected (by
//! connection id), and the ACKs and NACKs that count.

use super::{Action, Distribution, Note};
use crate::index::{NamespacedName, SidecarInfo};
use crate::sync_status::{NackInfo, SidecarState};

/// Identifies one stream of one sidecar (a reconnect gets a new one, so the
/// end of an old stream cannot disconnect the new one).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Connection {
    pub sidecar: NamespacedName,
    pub id: u64,
}

/// Why an ACK or NACK was ignored.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StaleReply {
    /// It came on a stream the sidecar has replaced (or that ended).
    OldStream,
    /// Its nonce is not that of the last snapshot sent on the stream.
    OldNonce,
}

impl Distribution {
    /// A stream said Hello (as `sidecar`, running `applied_version`, empty
    /// when none): register the sidecar and push its config unless it
    /// already runs the current version. A previous stream of the same
    /// sidecar is replaced.
    pub fn connect(&mut self, mut sidecar: SidecarInfo, applied_version: &str) -> (Connection, Vec<Action>) {
        let mut actions = Vec::new();
        let key = NamespacedName::new(&sidecar.namespace, &sidecar.name);
        // In a cluster the pod is authoritative: its node id label and
        // address win over what the Hello says.
        if self.options.sidecars_from_objects
            && let Some(pod) = self.objects.sidecar(&key.namespace, &key.name)
        {
            if pod.node_id != sidecar.node_id {
                let note = Note::PodNodeIdWins {
                    sidecar: key.clone(),
                    hello: sidecar.node_id.clone(),
                    pod: pod.node_id.clone(),
                };
                actions.push(Action::Note(note));
            }
            sidecar = pod.clone();
        }
        self.next_connection += 1;
        let id = self.next_connection;
        self.connections.insert(key.clone(), id);
        let applied = (!applied_version.is_empty()).then(|| applied_version.to_string());
        self.state.sidecars.insert(key.clone(), SidecarState::new(&sidecar, true, applied));
        // A Hello changes the fabric only when it registers a new or changed
        // sidecar (local mode); in a cluster the pod watch does. Otherwise
        // the compilation stands: a fleet reconnecting after an operator
        // restart must not recompile once per sidecar.
        let changed = !self.options.sidecars_from_objects
            && self.registered.insert(key.clone(), sidecar.clone()).as_ref() != Some(&sidecar);
        if changed {
            actions.push(Action::SaveRegistry);
            actions.push(Action::Compile(self.compile_inputs()));
        } else {
            self.push_if_needed(&key, &mut actions);
        }
        (Connection { sidecar: key, id }, actions)
    }

    /// An ACK: the snapshot with this nonce is in force.
    pub fn ack(&mut self, connection: &Connection, version: &str, nonce: &str) -> Result<(), StaleReply> {
        let state = self.replied(connection, nonce)?;
        state.acked_version = Some(version.to_string());
        state.applied_version = Some(version.to_string());
        state.last_nack = None;
        self.counters.acks += 1;
        Ok(())
    }

    /// A NACK: the sidecar refused the snapshot and still runs
    /// `applied_version` (empty when none).
    pub fn nack(
        &mut self,
        connection: &Connection,
        nack: NackInfo,
        nonce: &str,
        applied_version: &str,
    ) -> Result<(), StaleReply> {
        let state = self.replied(connection, nonce)?;
        state.applied_version = (!applied_version.is_empty()).then(|| applied_version.to_string());
        state.last_nack = Some(nack);
        self.counters.nacks += 1;
        Ok(())
    }

    /// The state of the sidecar that replied, if the reply is to the last
    /// snapshot sent on its current stream; a stale reply is counted.
    fn replied(&mut self, connection: &Connection, nonce: &str) -> Result<&mut SidecarState, StaleReply> {
        let replied = if self.connections.get(&connection.sidecar) != Some(&connection.id) {
            Err(StaleReply::OldStream)
        } else {
            match self.state.sidecars.get_mut(&connection.sidecar) {
                Some(state) if state.sent_nonce.as_deref() == Some(nonce) => Ok(state),
                _ => Err(StaleReply::OldNonce),
            }
        };
        if replied.is_err() {
            self.counters.stale_replies += 1;
        }
        replied
    }

    /// A stream ended. The sidecar stays registered (marked disconnected)
    /// unless `forget_disconnected`. `None` when the stream is not the
    /// sidecar's current one (it reconnected since): nothing changes.
    pub fn disconnect(&mut self, connection: &Connection) -> Option<Vec<Action>> {
        if self.connections.get(&connection.sidecar) != Some(&connection.id) {
            return None;
        }
        self.connections.remove(&connection.sidecar);
        self.peer_certificates.remove(&connection.sidecar);
        let mut actions = Vec::new();
        if self.options.forget_disconnected {
            self.state.sidecars.remove(&connection.sidecar);
            self.registered.remove(&connection.sidecar);
            actions.push(Action::SaveRegistry);
            actions.push(Action::Compile(self.compile_inputs()));
        } else if let Some(state) = self.state.sidecars.get_mut(&connection.sidecar) {
            state.connected = false;
            state.sent_version = None;
            state.sent_nonce = None;
        }
        Some(actions)
    }
}

#[cfg(test)]
mod tests {
    use fabric_core::NodeId;

    use super::super::test_builders::{EPOCH, cluster, local, named, pods, settle, sidecar, sidecar_as, version_of};
    use super::super::{Message, Options, Push, Snapshot};
    use super::*;

    #[test]
    fn a_hello_is_pushed_its_config_and_only_the_last_nonce_on_its_stream_counts() {
        let mut machine = local(Options::default());
        let (first, actions) = machine.connect(sidecar("a"), "");
        let outcome = settle(&mut machine, actions);
        assert!(outcome.registry_saved, "a new sidecar is registered");
        assert_eq!(outcome.compiles, 1);
        let version = version_of(&machine, "a");
        let text = machine.compilation().sidecars[&NodeId::from("a")].text.clone();
        let expected =
            Snapshot { version: version.clone(), nonce: format!("{EPOCH}-1"), config_yaml: text, signing_key: None };
        let push = Push { sidecar: named("a"), connection: first.id, message: Message::Snapshot(expected) };
        assert_eq!(outcome.sent, [push]);

        assert_eq!(machine.ack(&first, &version, "stale"), Err(StaleReply::OldNonce));
        assert_eq!(machine.ack(&first, &version, "run-1"), Ok(()));
        assert_eq!(machine.state().sidecars[&named("a")].acked_version.as_deref(), Some(version.as_str()));
        assert_eq!((machine.counters().acks, machine.counters().stale_replies), (1, 1));

        assert!(machine.disconnect(&first).is_some_and(|actions| actions.is_empty()));
        let state = &machine.state().sidecars[&named("a")];
        assert_eq!((state.connected, state.sent_version.as_deref()), (false, None));

        // Reconnecting on the current version: told it is current, once.
        let (again, actions) = machine.connect(sidecar("a"), &version);
        let outcome = settle(&mut machine, actions);
        assert_eq!((outcome.compiles, outcome.registry_saved), (0, false), "a known sidecar changes nothing");
        let current = Push { sidecar: named("a"), connection: again.id, message: Message::Current { version } };
        assert_eq!(outcome.sent, [current]);
        let actions = machine.release();
        let outcome = settle(&mut machine, actions);
        assert!(outcome.sent.is_empty(), "Current is sent once per stream");

        // The old stream ending, or replying, late touches the new one not.
        assert!(machine.disconnect(&first).is_none());
        assert!(machine.state().sidecars[&named("a")].connected);
        assert_eq!(machine.ack(&first, "v", "run-1"), Err(StaleReply::OldStream));

        // Reconnecting on another version: pushed, with a new nonce.
        let (_, actions) = machine.connect(sidecar("a"), "old");
        assert_eq!(settle(&mut machine, actions).only_snapshot_to("a").nonce, "run-2");
    }

    #[test]
    fn in_a_cluster_the_pod_decides_the_node_id_and_address() {
        let mut pod = sidecar_as("a", "eu-1");
        pod.peer_address = Some("10.0.0.7:7400".into());
        let mut machine = cluster(pods([pod]));
        let (_, actions) = machine.connect(sidecar("a"), "");
        let outcome = settle(&mut machine, actions);
        let note = Note::PodNodeIdWins { sidecar: named("a"), hello: NodeId::from("a"), pod: NodeId::from("eu-1") };
        assert_eq!(outcome.notes, [note]);
        assert_eq!((outcome.compiles, outcome.registry_saved), (0, false), "the pod watch owns the fabric");
        assert_eq!(outcome.only_snapshot_to("a").version, version_of(&machine, "eu-1"));
        let state = &machine.state().sidecars[&named("a")];
        assert_eq!((state.node_id.as_str(), state.peer_address.as_str()), ("eu-1", "10.0.0.7:7400"));
    }

    #[test]
    fn a_stream_end_keeps_the_sidecar_unless_told_to_forget_it() {
        let mut kept = local(Options::default());
        let (connection, actions) = kept.connect(sidecar("a"), "");
        settle(&mut kept, actions);
        let actions = kept.disconnect(&connection).unwrap();
        let outcome = settle(&mut kept, actions);
        assert_eq!((outcome.compiles, outcome.registry_saved), (0, false));
        assert!(!kept.state().sidecars[&named("a")].connected);
        assert_eq!(kept.registered().count(), 1);

        let mut forgetting = local(Options { forget_disconnected: true, ..Default::default() });
        let (connection, actions) = forgetting.connect(sidecar("a"), "");
        settle(&mut forgetting, actions);
        let actions = forgetting.disconnect(&connection).unwrap();
        let outcome = settle(&mut forgetting, actions);
        assert_eq!((outcome.compiles, outcome.registry_saved), (1, true));
        assert!(forgetting.state().sidecars.is_empty());
        assert_eq!(forgetting.registered().count(), 0);
        assert!(forgetting.compilation().sidecars.is_empty(), "no longer compiled for");
    }

    #[test]
    fn sidecars_known_from_a_previous_run_are_compiled_for_at_once_and_pushed_to_as_they_return() {
        let mut machine = Distribution::new(Options::default(), [sidecar("a"), sidecar("b")], EPOCH.into());
        let state = &machine.state().sidecars[&named("a")];
        assert_eq!(
            (state.connected, state.node_id.as_str(), state.peer_address.as_str()),
            (false, "a", "a.fabric:7000")
        );
        let actions = machine.set_objects(crate::index::Index::new());
        let outcome = settle(&mut machine, actions);
        assert!(outcome.sent.is_empty(), "nobody is connected");
        let compiled: Vec<&str> = machine.compilation().sidecars.keys().map(|node| node.as_str()).collect();
        assert_eq!(compiled, ["a", "b"]);
        let version = version_of(&machine, "a");
        let (_, actions) = machine.connect(sidecar("a"), &version);
        let outcome = settle(&mut machine, actions);
        assert_eq!((outcome.compiles, outcome.registry_saved), (0, false), "already registered");
        assert!(matches!(outcome.sent.as_slice(), [Push { message: Message::Current { .. }, .. }]));
    }
}
