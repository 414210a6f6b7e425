//! `analyze --plan` and `kubectl fabric plan`: what a change would do before
//! it is applied. The fabric as it is and as it would be are compiled by the
//! operator's compiler, both run to quiet in the in-memory simulator
//! (`fabric_engine::sim`, links where both ends name each other as
//! neighbors), and their route tables compared per node: next hops that
//! change, destinations that become unreachable or reachable, routes
//! refused by policy, trusted keys that go away. Pure.
//!
//! Signatures are left out of the simulation (no private key is at hand
//! offline): what it shows is what routing and policy do; keys are compared
//! from the compiled trust lists. The operator does not know what each
//! sidecar originates (sidecars keep their own list), so in the simulation
//! every node originates its node id: the plan speaks of which nodes reach
//! which.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;

use fabric_core::{NodeId, SidecarConfig, Timestamp};
use fabric_engine::sim::Fabric;

use crate::api::{LinkStateArea, NeighborPolicy, RouteKey, RoutePolicy};
use crate::compile::{Compilation, Settings, compile_with};
use crate::index::{Index, Indexed};

/// How long the simulation may run (message rounds) before it is cut.
const MAX_ROUNDS: usize = 100_000;

/// `before` with every object and sidecar of `change` put in (created or
/// replaced), as `kubectl apply -f change` would.
pub(crate) fn overlay(before: &Index, change: &Index) -> Index {
    fn put<K: Indexed>(into: &mut Index, from: &Index) {
        for (_, object) in from.objects::<K>() {
            // Objects of `from` passed the same index once: they apply.
            let _ = into.apply(object.clone());
        }
    }
    let mut after = before.clone();
    put::<RoutePolicy>(&mut after, change);
    put::<NeighborPolicy>(&mut after, change);
    put::<RouteKey>(&mut after, change);
    put::<LinkStateArea>(&mut after, change);
    for sidecar in change.sidecars() {
        after.upsert_sidecar(sidecar.clone());
    }
    after
}

/// What changes at one node.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NodeChanges {
    /// Destination, next hop before, next hop after.
    pub next_hops: Vec<(String, String, String)>,
    /// Destination, next hop it had.
    pub unreachable: Vec<(String, String)>,
    /// Destination, next hop it gets.
    pub reachable: Vec<(String, String)>,
    /// Reject reason (policy ones), count before, count after.
    pub refused_by_policy: Vec<(String, u64, u64)>,
    /// `advertiser/key id` trusted before, not after.
    pub keys_untrusted: Vec<String>,
    /// The node has a config before and none after (or the reverse).
    pub compiled: Option<(bool, bool)>,
}

impl NodeChanges {
    pub fn is_empty(&self) -> bool {
        *self == NodeChanges::default()
    }
}

/// The plan: per node, what changes.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Plan {
    pub nodes: BTreeMap<NodeId, NodeChanges>,
}

impl Plan {
    /// Whether some node loses a destination it reached (the plan's exit 1).
    pub fn loses_reachability(&self) -> bool {
        self.nodes.values().any(|n| !n.unreachable.is_empty())
    }

    pub fn render(&self) -> String {
        let changed = self.nodes.values().filter(|n| !n.is_empty()).count();
        let losing = self.nodes.values().filter(|n| !n.unreachable.is_empty()).count();
        let mut out =
            format!("Plan: {changed} of {} sidecar(s) change; {losing} lose a destination\n", self.nodes.len());
        for (node, changes) in self.nodes.iter().filter(|(_, c)| !c.is_empty()) {
            let _ = writeln!(out, "{node}:");
            match changes.compiled {
                Some((true, false)) => out.push_str("  no config any more (see the findings)\n"),
                Some((false, true)) => out.push_str("  a new sidecar\n"),
                _ => {}
            }
            for (destination, from, to) in &changes.next_hops {
                let _ = writeln!(out, "  next hop     {destination}: {from} -> {to}");
            }
            for (destination, via) in &changes.unreachable {
                let _ = writeln!(out, "  UNREACHABLE  {destination} (was via {via})");
            }
            for (destination, via) in &changes.reachable {
                let _ = writeln!(out, "  reachable    {destination} via {via}");
            }
            for (reason, before, after) in &changes.refused_by_policy {
                let _ = writeln!(out, "  refused      {reason}: {before} -> {after} announcement(s)");
            }
            for key in &changes.keys_untrusted {
                let _ = writeln!(out, "  untrusted    key {key}");
            }
        }
        out
    }
}

/// A compiled config as the simulator runs it: without signatures, and
/// originating its node id.
fn simulated(config: &SidecarConfig) -> SidecarConfig {
    let mut config = config.clone();
    config.originate = vec![fabric_core::config::LocalRoute {
        destination: config.node_id.as_str().into(),
        cost: 0,
        latency_us: 0,
        reliability: 1.0,
        tags: Vec::new(),
    }];
    config.security.require_signatures = false;
    config.security.trusted_keys = std::sync::Arc::from([]);
    config.security.signing_key_id = None;
    config
}

/// What one simulated node ends with: its routes (destination -> next hop)
/// and its policy rejects by reason.
#[derive(Default)]
struct Outcome {
    routes: BTreeMap<String, String>,
    policy_rejects: BTreeMap<String, u64>,
}

/// The outcome of every node of `compilation`, run to quiet.
fn simulate(compilation: &Compilation) -> BTreeMap<NodeId, Outcome> {
    let configs: Vec<SidecarConfig> = compilation.sidecars.values().map(|c| simulated(&c.config)).collect();
    let neighbors: BTreeMap<NodeId, BTreeSet<NodeId>> =
        configs.iter().map(|c| (c.node_id.clone(), c.neighbors.iter().map(|n| n.id.clone()).collect())).collect();
    let Ok(mut fabric) = Fabric::new(configs, Timestamp(0)) else { return BTreeMap::new() };
    for (a, theirs) in &neighbors {
        for b in theirs.iter().filter(|b| a < *b) {
            if neighbors.get(b).is_some_and(|back| back.contains(a)) {
                fabric.connect(a, b);
            }
        }
    }
    fabric.run_until_quiet(MAX_ROUNDS);
    fabric
        .node_ids()
        .into_iter()
        .map(|node| {
            let engine = fabric.engine(node.as_str());
            let routes =
                engine.routes().into_iter().map(|r| (r.destination.to_string(), r.next_hop.to_string())).collect();
            let rejects = engine
                .stats()
                .announcement_rejects_total
                .iter()
                .filter(|(reason, _)| reason.starts_with("policy_"))
                .map(|(reason, count)| (reason.to_string(), *count))
                .collect();
            (node, Outcome { routes, policy_rejects: rejects })
        })
        .collect()
}

fn trusted(compilation: &Compilation, node: &NodeId) -> BTreeSet<String> {
    compilation
        .sidecars
        .get(node)
        .into_iter()
        .flat_map(|c| c.config.security.trusted_keys.iter())
        .map(|k| format!("{}/{}", k.advertiser, k.key_id))
        .collect()
}

/// What changing `before` into `after` does, compiled with `identity`.
pub(crate) fn plan(before: &Index, after: &Index, identity: &Settings) -> (Plan, Compilation) {
    let (old, new) = (compile_with(before, identity), compile_with(after, identity));
    let (was, will) = (simulate(&old), simulate(&new));
    let empty = Outcome::default();
    let mut plan = Plan::default();
    let nodes: BTreeSet<&NodeId> = old.sidecars.keys().chain(new.sidecars.keys()).collect();
    for node in nodes {
        let (before, after) = (was.get(node).unwrap_or(&empty), will.get(node).unwrap_or(&empty));
        let (old_routes, old_rejects) = (&before.routes, &before.policy_rejects);
        let (new_routes, new_rejects) = (&after.routes, &after.policy_rejects);
        let mut changes = NodeChanges::default();
        for (destination, from) in old_routes {
            match new_routes.get(destination) {
                Some(to) if to != from => changes.next_hops.push((destination.clone(), from.clone(), to.clone())),
                Some(_) => {}
                None => changes.unreachable.push((destination.clone(), from.clone())),
            }
        }
        for (destination, to) in new_routes.iter().filter(|(d, _)| !old_routes.contains_key(*d)) {
            changes.reachable.push((destination.clone(), to.clone()));
        }
        let reasons: BTreeSet<&String> = old_rejects.keys().chain(new_rejects.keys()).collect();
        for reason in reasons {
            let (b, a) = (old_rejects.get(reason).copied().unwrap_or(0), new_rejects.get(reason).copied().unwrap_or(0));
            if a > b {
                changes.refused_by_policy.push((reason.clone(), b, a));
            }
        }
        changes.keys_untrusted = trusted(&old, node).difference(&trusted(&new, node)).cloned().collect();
        let (had, has) = (old.sidecars.contains_key(node), new.sidecars.contains_key(node));
        if had != has {
            changes.compiled = Some((had, has));
        }
        plan.nodes.insert(node.clone(), changes);
    }
    (plan, new)
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::manifests::{Manifests, load_text};

    const FABRIC: &str = r#"
apiVersion: routing.fabric.dev/v1alpha1
kind: NeighborPolicy
metadata: {name: line, namespace: fabric}
spec:
  sidecarSelector: {}
  neighbors:
    - selector: {}
---
apiVersion: v1
kind: Pod
metadata:
  name: a
  namespace: fabric
  labels: {routing.fabric.dev/node-id: a}
  annotations: {routing.fabric.dev/peer-address: "10.0.0.1:7443"}
---
apiVersion: v1
kind: Pod
metadata:
  name: b
  namespace: fabric
  labels: {routing.fabric.dev/node-id: b}
  annotations: {routing.fabric.dev/peer-address: "10.0.0.2:7443"}
"#;

    fn index(text: &str) -> Index {
        let mut manifests = Manifests::default();
        load_text(&mut manifests, Path::new("fabric.yaml"), text);
        assert!(!manifests.has_errors(), "{:?}", manifests.issues);
        manifests.index
    }

    #[test]
    fn a_policy_that_refuses_a_neighbor_loses_its_destination_and_says_where() {
        let before = index(FABRIC);
        let deny = index(
            r#"
apiVersion: routing.fabric.dev/v1alpha1
kind: RoutePolicy
metadata: {name: deny-b, namespace: fabric}
spec:
  sidecarSelector: {}
  import:
    advertisers: {deny: [b]}
"#,
        );
        let after = overlay(&before, &deny);
        let (plan, _) = plan(&before, &after, &Settings::default());
        assert!(plan.loses_reachability(), "{}", plan.render());
        let a = &plan.nodes[&NodeId::from("a")];
        assert_eq!(a.unreachable, [("b".to_owned(), "b".to_owned())]);
        assert_eq!(a.refused_by_policy.len(), 1, "{:?}", a.refused_by_policy);
        assert_eq!(a.refused_by_policy[0].0, "policy_advertiser");
        let text = plan.render();
        assert!(text.starts_with("Plan: 1 of 2 sidecar(s) change; 1 lose a destination\n"), "{text}");
        assert!(text.contains("a:\n  UNREACHABLE  b (was via b)\n  refused      policy_advertiser: 0 -> "), "{text}");
        // The same change again is no change.
        let (same, _) = super::plan(&after, &overlay(&after, &deny), &Settings::default());
        assert!(same.nodes.values().all(NodeChanges::is_empty), "{}", same.render());
    }

    #[test]
    fn a_new_neighbor_path_changes_next_hops_without_losing_anything() {
        let three = format!(
            "{FABRIC}---\napiVersion: v1\nkind: Pod\nmetadata:\n  name: c\n  namespace: fabric\n  labels: {{routing.fabric.dev/node-id: c}}\n  annotations: {{routing.fabric.dev/peer-address: \"10.0.0.3:7443\"}}\n"
        );
        let before = index(&three);
        // Everyone meshes with everyone (the NeighborPolicy selects all); a
        // policy that prefers latency changes nothing on cost ties but keeps
        // reachability.
        let after = overlay(
            &before,
            &index(
                "apiVersion: routing.fabric.dev/v1alpha1\nkind: RoutePolicy\nmetadata: {name: p, namespace: fabric}\nspec: {sidecarSelector: {}, tieBreakers: [Latency]}\n",
            ),
        );
        let (plan, _) = plan(&before, &after, &Settings::default());
        assert!(!plan.loses_reachability(), "{}", plan.render());
    }
}
