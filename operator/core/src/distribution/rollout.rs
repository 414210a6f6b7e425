//! Whether key rotation may go on: a pending key signs only once every
//! sidecar of the fabric runs a config that trusts it, and the old key is
//! dropped only once its owner stopped signing with it.

use std::collections::BTreeSet;
use std::time::Duration;

use fabric_core::{KeyId, NodeId, Timestamp};

use super::Distribution;
use crate::index::NamespacedName;
use crate::rotation_plan::Rollout;

/// How long key rotation waits for a connected sidecar that has no valid
/// config (see [`Distribution::rollout`]).
pub const UNCONFIGURED_WAIT: Duration = Duration::from_secs(60);

impl Distribution {
    /// Whether every connected sidecar runs (acknowledged) a config that
    /// trusts key `key` of `node`: the condition for it to start signing.
    ///
    /// A connected sidecar for which no valid config compiles cannot come
    /// to trust the key; it is waited for [`UNCONFIGURED_WAIT`] (a compile
    /// may be on its way), then left behind and reported, so that one
    /// broken sidecar never stops key rotation for the whole fabric.
    pub fn rollout(&mut self, node: &NodeId, key: &KeyId, now: Timestamp) -> Rollout {
        let mut waiting = Vec::new();
        let mut left_behind = Vec::new();
        let connected: BTreeSet<NamespacedName> =
            self.state.sidecars.iter().filter(|(_, s)| s.connected).map(|(name, _)| name.clone()).collect();
        let mut unconfigured_since = std::mem::take(&mut self.unconfigured_since);
        unconfigured_since.retain(|name, _| connected.contains(name));
        // Only sidecars of the fabric count (a pod the index does not know,
        // or the loser of a duplicate node id, gets no config and must not
        // hold rotation back).
        for (name, sidecar) in self.state.sidecars.iter().filter(|(name, s)| s.connected && self.is_member(name)) {
            let compiled = self.compilation.sidecars.get(&sidecar.node_id);
            if compiled.is_some() && self.compilation.for_pod(&sidecar.node_id, name).is_none() {
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
        self.unconfigured_since = unconfigured_since;
        match (waiting.is_empty(), left_behind.is_empty()) {
            (true, true) => Rollout::Everywhere,
            (true, false) => Rollout::LeavingBehind(left_behind),
            (false, _) => Rollout::Waiting(waiting),
        }
    }

    /// Whether the sidecar of `node` acknowledged a config that makes it
    /// sign with `key` (true when no sidecar has that node id).
    pub fn signs_with(&self, node: &NodeId, key: &KeyId) -> bool {
        let Some(compiled) = self.compilation.sidecars.get(node) else {
            // No sidecar has the node id: nobody signs with the old key.
            return true;
        };
        // The sidecar the config was compiled for (its pod is a source).
        let owner = self.state.sidecars.iter().find(|(name, _)| self.compilation.for_pod(node, name).is_some());
        let Some((_, owner)) = owner else { return true };
        compiled.config.security.signing_key_id.as_ref() == Some(key)
            && owner.acked_version.as_deref() == Some(compiled.version())
    }
}

#[cfg(test)]
mod tests {
    use super::super::KeyMaterial;
    use super::super::test_builders::{
        SECRET, cluster, named, pods, published_k1, route_key, settle, sidecar, sidecar_as, version_of,
    };
    use super::*;
    use crate::api::KeyState;
    use crate::sync_status::NackInfo;

    /// A connected sidecar for which no config compiles holds a key back
    /// for UNCONFIGURED_WAIT, then is left behind (and named).
    #[test]
    fn key_rotation_waits_only_so_long_for_a_sidecar_without_a_config() {
        let mut machine = cluster(pods([sidecar("a")]));
        let (_, actions) = machine.connect(sidecar("a"), "");
        settle(&mut machine, actions);
        // The pod's node id changes under the connected sidecar: the config
        // is compiled for the new id, none for the one it runs as.
        let actions = machine.set_objects(pods([sidecar_as("a", "a2")]));
        settle(&mut machine, actions);
        let (node, key) = (NodeId::from("b"), KeyId::from("k1"));
        let waiting = Rollout::Waiting(vec!["fabric/a (no valid config compiled)".into()]);
        assert_eq!(machine.rollout(&node, &key, Timestamp(1_000)), waiting);
        assert_eq!(machine.rollout(&node, &key, Timestamp(60_999)), waiting);
        assert_eq!(
            machine.rollout(&node, &key, Timestamp(61_000)),
            Rollout::LeavingBehind(vec!["fabric/a (no valid config compiled)".into()])
        );
    }

    #[test]
    fn a_key_signs_once_every_sidecar_acknowledged_a_config_trusting_it() {
        let mut objects = pods([sidecar("a"), sidecar("b")]);
        objects.apply(route_key("a", Some(KeyState::Pending))).unwrap();
        let mut machine = cluster(objects);
        let mut snapshots = Vec::new();
        for name in ["a", "b"] {
            let (connection, actions) = machine.connect(sidecar(name), "");
            snapshots.push((connection, settle(&mut machine, actions).only_snapshot_to(name).clone()));
        }
        let (node, k1, now) = (NodeId::from("a"), KeyId::from("k1"), Timestamp(0));
        assert_eq!(machine.rollout(&node, &k1, now), Rollout::Waiting(vec!["fabric/a".into(), "fabric/b".into()]));
        let [(a, to_a), (b, to_b)] = <[_; 2]>::try_from(snapshots).unwrap();
        machine.ack(&a, &to_a.version, &to_a.nonce).unwrap();
        let nack = NackInfo { version: to_b.version.clone(), field: "neighbors".into(), message: "bad".into() };
        machine.nack(&b, nack, &to_b.nonce, "").unwrap();
        let refusing = Rollout::Waiting(vec!["fabric/b (refuses its config: neighbors: bad)".into()]);
        assert_eq!(machine.rollout(&node, &k1, now), refusing);
        machine.ack(&b, &to_b.version, &to_b.nonce).unwrap();
        assert_eq!(machine.rollout(&node, &k1, now), Rollout::Everywhere);
        assert!(!machine.signs_with(&node, &k1), "pending: a does not sign with it yet");

        // Activated: a's config signs with k1 once it acknowledges it.
        let mut keys = KeyMaterial::default();
        keys.published.insert(named("a"), published_k1(KeyState::Active));
        keys.signing.insert(node.clone(), [(k1.clone(), SECRET)].into());
        let actions = machine.set_key_material(keys);
        let outcome = settle(&mut machine, actions);
        let to_a = outcome.only_snapshot_to("a");
        assert!(!machine.signs_with(&node, &k1), "not acknowledged yet");
        machine.ack(&a, &to_a.version, &to_a.nonce).unwrap();
        assert!(machine.signs_with(&node, &k1));
        assert_eq!(to_a.version, version_of(&machine, "a"));
        assert!(machine.signs_with(&NodeId::from("nobody"), &k1), "no sidecar of that node id signs at all");
    }
}
