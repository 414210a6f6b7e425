//! The compiler: a pure function from the index to one `SidecarConfig`
//! (plus link-state config) per sidecar, conditions per object and
//! problems. It is what the reconciler, a validating path and `analyze`
//! share, as frr-k8s shares one translation between its reconciler and
//! webhook. Same index, same output, byte for byte: everything iterates in
//! namespace/name or node-id order and nothing depends on arrival order,
//! clocks or randomness.
//!
//! Conflict resolution rules are documented in each step's module and in
//! `docs/crds.md`.

mod areas;
mod convert;
mod identity;
mod keys;
mod neighbors;
mod output;
pub(crate) mod population;
mod report;
mod route_policies;
mod sidecars;
mod text;

use std::collections::{BTreeMap, BTreeSet};

use fabric_core::SidecarConfig;
use fabric_core::config::LinkStateAreaMembership;
use fabric_core::ids::NodeId;
use fabric_core::link_state::AreaId;

pub use identity::{Settings, UnboundNodeIds};
pub use output::{Compilation, CompiledSidecar, ConditionSpec, ConditionType, Problem, Severity};

use crate::api::{LinkStateArea, NeighborPolicy, RouteKey, RoutePolicy};
use crate::index::{Index, Indexed, ObjectKey};
use crate::validation::Violation;
use population::Population;
use report::Report;
use text::{SharedKeys, versioned_text};

/// Compiles every sidecar of `index` with the default identity settings
/// (any namespace, unbound node ids allowed).
pub fn compile(index: &Index) -> Compilation {
    compile_with(index, &Settings::default())
}

/// Compiles every sidecar of `index` that `settings` let claim its node id.
pub fn compile_with(index: &Index, settings: &Settings) -> Compilation {
    let mut report = Report::default();
    let route_policies = route_policies::resolve(index, &mut report);
    let mut neighbor_policies = neighbors::resolve(index, &mut report);
    let bindings = identity::bind(index, settings, &mut report);
    let sidecars = sidecars::resolve(index, settings, &bindings, &mut report);
    let population = Population::new(sidecars.values().map(|sidecar| sidecar.info));
    neighbors::expand_entries(&mut neighbor_policies, &population);
    let route_policy_choices = population.selections(route_policies.iter().map(|p| p.selector()));
    let neighbor_policy_choices = population.selections(neighbor_policies.iter().map(|p| p.selector()));
    let keys = keys::trusted_keys(&bindings, &mut report);
    let shared_keys = SharedKeys::new(keys.trusted.clone());
    let areas = areas::resolve(index, &mut report);

    // Two passes: a link belongs to an area when both of its ends are
    // members, so every sidecar's areas are known before links are placed.
    let mut drafts = Vec::new();
    for (position, (node_id, sidecar)) in sidecars.iter().enumerate() {
        let info = sidecar.info;
        let mut config = SidecarConfig::new(node_id.clone());
        let mut sources = BTreeSet::from([info.key()]);
        if let Some(policy) =
            route_policies::select(&route_policies, &route_policy_choices[position], info, &mut report)
        {
            policy.apply(&mut config);
            sources.insert(policy.key.clone());
        }
        let (neighbors, neighbor_sources) = neighbors::for_sidecar(
            &neighbor_policies,
            &neighbor_policy_choices[position],
            info,
            &sidecars,
            &mut report,
        );
        config.neighbors = neighbors;
        sources.extend(neighbor_sources);
        config.security.trusted_keys = shared_keys.list.clone();
        config.security.signing_key_id = keys.signing.get(node_id).cloned();
        // The RouteKeys shape every config: they are recorded once for all
        // compiled sidecars below, not in each sidecar's sources (50 keys x
        // 1,000 sidecars of set inserts were a fifth of a compile).
        let member = areas.for_sidecar(info, config.security.require_signatures, &mut report);
        if let Some(member) = &member {
            sources.extend(member.sources.iter().cloned());
        }
        drafts.push((node_id, config, sources, member));
    }
    let areas_of: BTreeMap<NodeId, Vec<AreaId>> = drafts
        .iter()
        .filter_map(|(node, _, _, member)| Some(((*node).clone(), member.as_ref()?.areas.clone())))
        .collect();

    let mut compiled = BTreeMap::new();
    for (node_id, mut config, sources, member) in drafts {
        if let Some(member) = member {
            config.link_state_areas = member
                .areas
                .iter()
                .map(|area| LinkStateAreaMembership {
                    area: area.clone(),
                    neighbors: Some(
                        config
                            .neighbors
                            .iter()
                            .filter(|n| areas_of.get(&n.id).is_some_and(|areas| areas.contains(area)))
                            .map(|n| n.id.clone())
                            .collect(),
                    ),
                })
                .collect();
            config.link_state = Some(member.config);
        }
        for source in &sources {
            report.contributes(source, node_id);
        }
        // The trusted keys were checked one by one above (`keys`), and are
        // the same for every sidecar: decoding and checking them again per
        // sidecar would cost more than the rest of the compile
        // (docs/benchmarks.md, "Operator").
        if let Err(error) = config.validate_except_keys() {
            report.invalid_sidecar_config(node_id, &sources, error.field, error.reason);
            continue;
        }
        let text = match versioned_text(&mut config, &shared_keys) {
            Ok(text) => text,
            Err(error) => {
                report.invalid_sidecar_config(node_id, &sources, "config".into(), error.to_string());
                continue;
            }
        };
        compiled.insert(node_id.clone(), CompiledSidecar { config, sources, text });
    }

    for source in &keys.sources {
        report.contributes_to_all(source, compiled.keys());
    }

    let mut objects = Vec::new();
    collect_objects::<RoutePolicy>(index, &mut objects);
    collect_objects::<NeighborPolicy>(index, &mut objects);
    collect_objects::<RouteKey>(index, &mut objects);
    collect_objects::<LinkStateArea>(index, &mut objects);
    // Objects that do not decode are refused on themselves, like invalid
    // ones, and shape no config.
    for (key, object) in index.unreadable() {
        report.invalid(key.clone(), vec![Violation::unreadable(&object.field, &object.error)]);
        objects.push((key.clone(), object.metadata.generation));
    }
    report.finish(objects, compiled)
}

fn collect_objects<K: Indexed>(index: &Index, objects: &mut Vec<(ObjectKey, Option<i64>)>) {
    for (name, object) in index.objects::<K>() {
        objects.push((ObjectKey::new(K::KIND, name), object.metadata().generation));
    }
}
