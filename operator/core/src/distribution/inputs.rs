//! What a compile reads (the objects, key rotation's keys and, in local
//! mode, the sidecars that said Hello) and putting its result in force.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use fabric_core::{KeyId, NodeId};

use super::{Action, Distribution, Note};
use crate::api::{ConditionStatus, RouteKey, RouteKeyStatus};
use crate::compile::{Compilation, ConditionType, Settings};
use crate::index::{Index, NamespacedName};

/// Key rotation's contribution to the configs (the operator's rotation
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

/// What one compile reads, numbered so that a compile of older inputs
/// finishing last cannot replace a newer one.
#[derive(Clone, Debug)]
pub struct CompileInputs {
    pub number: u64,
    pub index: Index,
    pub settings: Settings,
}

impl Distribution {
    /// The objects (and any sidecars known from pods or manifests) changed:
    /// compile them.
    pub fn set_objects(&mut self, objects: Index) -> Vec<Action> {
        self.objects = objects;
        self.objects_listed = true;
        vec![Action::Compile(self.compile_inputs())]
    }

    /// Key rotation changed published or private keys: compile if that
    /// changes anything.
    pub fn set_key_material(&mut self, keys: KeyMaterial) -> Vec<Action> {
        if self.keys == keys {
            return Vec::new();
        }
        self.keys = keys;
        vec![Action::Compile(self.compile_inputs())]
    }

    /// The fabric as the next compile sees it and the identity settings,
    /// for the validating webhook; `None` until the objects were listed
    /// once (a follower, or a leader still starting).
    pub fn fabric(&self) -> Option<(Index, Settings)> {
        self.objects_listed.then(|| (self.fabric_index(), self.options.identity.clone()))
    }

    /// Puts the compilation of the inputs numbered `inputs` in force
    /// (`took`: how long it took, for `/metrics`) and pushes what changed;
    /// a compilation older than the one in force is dropped.
    pub fn install(&mut self, inputs: u64, compilation: Compilation, took: Duration) -> Vec<Action> {
        self.counters.compile_duration.observe(took);
        if inputs < self.installed_inputs {
            return vec![Action::Note(Note::OlderCompilationDropped { inputs, installed: self.installed_inputs })];
        }
        self.installed_inputs = inputs;
        self.compilation = Arc::new(compilation);
        for (object, conditions) in &self.compilation.conditions {
            let accepted =
                conditions.iter().any(|c| c.type_ == ConditionType::Accepted && c.status == ConditionStatus::True);
            let key = (object.kind.as_str(), if accepted { "ok" } else { "error" });
            *self.counters.reconciles.entry(key).or_default() += 1;
        }
        let mut actions = Vec::new();
        self.push_all(&mut actions);
        actions
    }

    /// What a compile reads now. Forgets deleted pods whose stream is gone.
    pub(super) fn compile_inputs(&mut self) -> CompileInputs {
        if self.options.sidecars_from_objects {
            let objects = &self.objects;
            self.state
                .sidecars
                .retain(|name, state| state.connected || objects.sidecar(&name.namespace, &name.name).is_some());
        }
        self.taken_inputs += 1;
        CompileInputs { number: self.taken_inputs, index: self.fabric_index(), settings: self.options.identity.clone() }
    }

    /// The objects with the published keys of key rotation laid over their
    /// status, and in local mode the sidecars that said Hello.
    fn fabric_index(&self) -> Index {
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

    /// Whether `name` is a sidecar of the fabric: a pod of the objects (a
    /// cluster) or a sidecar that said Hello (local mode).
    pub(super) fn is_member(&self, name: &NamespacedName) -> bool {
        if self.options.sidecars_from_objects {
            self.objects.sidecar(&name.namespace, &name.name).is_some()
        } else {
            self.registered.contains_key(name)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_builders::{EPOCH, cluster, local, named, pods, settle, sidecar};
    use super::super::{Action, Options};
    use super::*;
    use crate::compile::compile;

    fn compile_of(actions: Vec<Action>) -> CompileInputs {
        match <[Action; 1]>::try_from(actions) {
            Ok([Action::Compile(inputs)]) => inputs,
            Ok([other]) => panic!("a compile expected, got {other:?}"),
            Err(actions) => panic!("one compile expected, got {actions:?}"),
        }
    }

    /// Compiles run outside the operator's lock, so two can overlap and
    /// finish in either order: the compilation of the newest inputs must
    /// stay in force.
    #[test]
    fn a_compile_of_older_inputs_finishing_last_does_not_replace_a_newer_one() {
        let cluster_mode = Options { sidecars_from_objects: true, ..Default::default() };
        let mut machine = Distribution::new(cluster_mode, [], EPOCH.into());
        let older = compile_of(machine.set_objects(pods([sidecar("a")])));
        let newer = compile_of(machine.set_objects(pods([sidecar("a"), sidecar("b")])));
        assert!(older.number < newer.number);
        let took = Duration::from_millis(3);
        assert!(machine.install(newer.number, compile(&newer.index), took).is_empty(), "nobody to push to");
        let dropped = machine.install(older.number, compile(&older.index), took);
        let note = Note::OlderCompilationDropped { inputs: older.number, installed: newer.number };
        assert!(matches!(dropped.as_slice(), [Action::Note(n)] if *n == note), "{dropped:?}");
        let in_force: Vec<&str> = machine.compilation().sidecars.keys().map(|node| node.as_str()).collect();
        assert_eq!(in_force, ["a", "b"], "the newer compilation stays");
        assert_eq!(machine.counters().compile_duration.count, 2, "both compiles are timed");
    }

    #[test]
    fn the_fabric_is_unknown_until_listed_and_unchanged_keys_compile_nothing() {
        let mut machine = local(Options::default());
        assert!(machine.fabric().is_none(), "not listed yet");
        assert!(machine.set_key_material(KeyMaterial::default()).is_empty());
        let actions = machine.set_objects(Index::new());
        settle(&mut machine, actions);
        let (_, actions) = machine.connect(sidecar("a"), "");
        settle(&mut machine, actions);
        let (index, _) = machine.fabric().expect("listed");
        assert!(index.sidecar("fabric", "a").is_some(), "local mode: the sidecars that said Hello are in it");
    }

    #[test]
    fn a_deleted_pod_is_forgotten_once_its_stream_is_gone() {
        let mut machine = cluster(pods([sidecar("a"), sidecar("b")]));
        for name in ["a", "b"] {
            let (connection, actions) = machine.connect(sidecar(name), "");
            settle(&mut machine, actions);
            if name == "b" {
                let actions = machine.disconnect(&connection).unwrap();
                settle(&mut machine, actions);
            }
        }
        let actions = machine.set_objects(Index::new());
        settle(&mut machine, actions);
        let known: Vec<&NamespacedName> = machine.state().sidecars.keys().collect();
        assert_eq!(known, [&named("a")], "a is still connected; b is gone");
    }
}
