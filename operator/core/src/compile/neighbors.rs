//! NeighborPolicy: every policy selecting a sidecar contributes neighbors;
//! they are merged. Resolution, in order:
//! - a neighbor never includes the sidecar itself (a policy shared by a
//!   whole mesh may list its hub by node id);
//! - within one object, an explicit `nodeId` entry overrides selector
//!   matches of the same node, and otherwise the first entry wins;
//! - across objects, the same neighbor from two objects is a Conflict on
//!   both, and the smaller namespace/name wins;
//! - a `nodeId` that is not a known sidecar gives `NeighborNotFound` and is
//!   still configured, without an address, so that it can dial in.

use std::collections::{BTreeMap, BTreeSet};

use fabric_core::NodeId;
use fabric_core::config::NeighborConfig;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;

use super::convert::advertise_nothing;
use super::population::Population;
use super::report::Report;
use super::sidecars::Sidecar;
use crate::api::{NeighborPolicy, NeighborPolicySpec, NeighborSpec};
use crate::index::{Index, ObjectKey, ObjectKind, SidecarInfo};
use crate::validation::check_neighbor_policy;

pub(crate) struct ResolvedNeighborPolicy<'a> {
    pub key: ObjectKey,
    pub spec: &'a NeighborPolicySpec,
    /// Per entry, the node ids it names among the sidecars of the policy's
    /// namespace ([`expand_entries`]): computed once per compile, not once
    /// per selected sidecar.
    matches: Vec<Vec<NodeId>>,
}

pub(crate) fn resolve<'a>(index: &'a Index, report: &mut Report) -> Vec<ResolvedNeighborPolicy<'a>> {
    let mut resolved = Vec::new();
    for (name, policy) in index.objects::<NeighborPolicy>() {
        let key = ObjectKey::new(ObjectKind::NeighborPolicy, name);
        let violations = check_neighbor_policy(&policy.spec);
        if violations.is_empty() {
            resolved.push(ResolvedNeighborPolicy { key, spec: &policy.spec, matches: Vec::new() });
        } else {
            report.invalid(key, violations);
        }
    }
    resolved
}

impl ResolvedNeighborPolicy<'_> {
    /// The namespace and selector of the sidecars it applies to.
    pub(super) fn selector(&self) -> (&str, &LabelSelector) {
        (&self.key.namespace, &self.spec.sidecar_selector)
    }
}

/// One neighbor entry chosen for one node id.
struct Chosen<'a> {
    policy: &'a ResolvedNeighborPolicy<'a>,
    entry: &'a NeighborSpec,
    explicit: bool,
}

/// Fills every policy's per-entry matches: a `nodeId` entry names that
/// node, a selector entry the sidecars of the policy's namespace it selects
/// (in node-id order: the population's order).
pub(crate) fn expand_entries(policies: &mut [ResolvedNeighborPolicy<'_>], sidecars: &Population<'_>) {
    for policy in policies {
        policy.matches = policy
            .spec
            .neighbors
            .iter()
            .map(|entry| match (&entry.node_id, &entry.selector) {
                (Some(node_id), _) => vec![NodeId::from(node_id.as_str())],
                (None, Some(selector)) => sidecars
                    .select(&policy.key.namespace, selector)
                    .into_iter()
                    .map(|position| sidecars.member(position).node_id.clone())
                    .collect(),
                (None, None) => Vec::new(),
            })
            .collect();
    }
}

/// The neighbors of `sidecar`, sorted by node id, and the policies that
/// contributed them. `selecting`: the positions in `policies` of the
/// policies that select it, ascending.
pub(crate) fn for_sidecar<'a>(
    policies: &'a [ResolvedNeighborPolicy<'a>],
    selecting: &[usize],
    sidecar: &SidecarInfo,
    sidecars: &BTreeMap<NodeId, Sidecar<'_>>,
    report: &mut Report,
) -> (Vec<NeighborConfig>, BTreeSet<ObjectKey>) {
    let mut chosen: BTreeMap<NodeId, Chosen<'a>> = BTreeMap::new();
    let mut sources = BTreeSet::new();
    for policy in selecting.iter().map(|&position| &policies[position]) {
        sources.insert(policy.key.clone());
        let mut own: BTreeMap<NodeId, Chosen<'a>> = BTreeMap::new();
        for (entry, matches) in policy.spec.neighbors.iter().zip(&policy.matches) {
            let explicit = entry.node_id.is_some();
            for id in matches.iter().filter(|id| **id != sidecar.node_id).cloned() {
                if explicit && !sidecars.contains_key(&id) {
                    report.missing_neighbor(&policy.key, id.as_str(), &sidecar.node_id);
                }
                let overrides = own.get(&id).is_none_or(|earlier| explicit && !earlier.explicit);
                if overrides {
                    own.insert(id, Chosen { policy, entry, explicit });
                }
            }
        }
        for (id, candidate) in own {
            match chosen.get(&id) {
                None => {
                    chosen.insert(id, candidate);
                }
                Some(earlier) => {
                    // Policies come in namespace/name order: the earlier one wins.
                    let parties = BTreeSet::from([earlier.policy.key.clone(), policy.key.clone()]);
                    let subject = format!("neighbor {id} listed twice");
                    report.conflict(
                        "DuplicateNeighbor",
                        &subject,
                        &parties,
                        &earlier.policy.key,
                        Some(&sidecar.node_id),
                    );
                }
            }
        }
    }
    let neighbors = chosen
        .into_iter()
        .map(|(id, chosen)| {
            let mode = chosen.policy.spec.mode;
            let entry = chosen.entry;
            let export = if entry.advertise {
                entry.export.as_ref().map(|f| f.to_engine_policy(mode))
            } else {
                Some(advertise_nothing())
            };
            NeighborConfig {
                address: sidecars.get(&id).and_then(|s| s.address.clone()),
                id,
                link: (&entry.link).into(),
                import: entry.import.as_ref().map(|f| f.to_engine_policy(mode)),
                export,
            }
        })
        .collect();
    (neighbors, sources)
}
