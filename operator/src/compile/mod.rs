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
mod keys;
mod neighbors;
mod output;
mod report;
mod route_policies;
mod sidecars;

use std::collections::{BTreeMap, BTreeSet};

use fabric_routing::SidecarConfig;
use fabric_routing::link_state::LinkStateConfig;
use serde::Serialize;
use sha2::{Digest, Sha256};

pub use output::{Compilation, CompiledSidecar, ConditionSpec, ConditionType, Problem, Severity};

use crate::api::{LinkStateArea, NeighborPolicy, RouteKey, RoutePolicy};
use crate::index::{Index, Indexed, ObjectKey};
use report::Report;

/// Compiles every sidecar of `index`.
pub fn compile(index: &Index) -> Compilation {
    let mut report = Report::default();
    let route_policies = route_policies::resolve(index, &mut report);
    let neighbor_policies = neighbors::resolve(index, &mut report);
    let sidecars = sidecars::resolve(index, &mut report);
    let (trusted_keys, key_sources) = keys::trusted_keys(index, &sidecars, &mut report);
    let areas = areas::resolve(index, &mut report);

    let mut compiled = BTreeMap::new();
    for (node_id, sidecar) in &sidecars {
        let info = sidecar.info;
        let mut config = SidecarConfig::new(node_id.clone());
        let mut sources = BTreeSet::from([info.key()]);
        if let Some(policy) = route_policies::select(&route_policies, info, &mut report) {
            policy.apply(&mut config);
            sources.insert(policy.key.clone());
        }
        let (neighbors, neighbor_sources) = neighbors::for_sidecar(&neighbor_policies, info, &sidecars, &mut report);
        config.neighbors = neighbors;
        sources.extend(neighbor_sources);
        config.security.trusted_keys = trusted_keys.clone();
        sources.extend(key_sources.iter().cloned());
        let member = areas.for_sidecar(info, config.security.require_signatures, &mut report);
        let (link_state, link_state_areas) = match member {
            Some(member) => {
                sources.extend(member.sources);
                (Some(member.config), member.areas)
            }
            None => (None, Vec::new()),
        };
        for source in &sources {
            report.contributes(source, node_id);
        }

        if let Err(error) = config.validate() {
            report.invalid_sidecar_config(node_id, &sources, error.field, error.reason);
            continue;
        }
        if let Some(Err(error)) = link_state.as_ref().map(LinkStateConfig::validate) {
            report.invalid_sidecar_config(node_id, &sources, format!("linkState.{}", error.field), error.reason);
            continue;
        }
        let mut sidecar = CompiledSidecar { config, link_state, link_state_areas, sources };
        match content_version(&sidecar) {
            Ok(version) => sidecar.config.version = Some(version),
            Err(error) => {
                report.invalid_sidecar_config(node_id, &sidecar.sources, "config".into(), error.to_string());
                continue;
            }
        }
        compiled.insert(node_id.clone(), sidecar);
    }

    let mut objects = Vec::new();
    collect_objects::<RoutePolicy>(index, &mut objects);
    collect_objects::<NeighborPolicy>(index, &mut objects);
    collect_objects::<RouteKey>(index, &mut objects);
    collect_objects::<LinkStateArea>(index, &mut objects);
    report.finish(objects, compiled)
}

fn collect_objects<K: Indexed>(index: &Index, objects: &mut Vec<(ObjectKey, Option<i64>)>) {
    for (name, object) in index.objects::<K>() {
        objects.push((ObjectKey::new(K::KIND, name), object.metadata().generation));
    }
}

/// What the version hashes: config and link-state, with the version unset.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct VersionedContent<'a> {
    config: &'a SidecarConfig,
    link_state: &'a Option<LinkStateConfig>,
    link_state_areas: &'a [fabric_routing::link_state::AreaId],
}

/// First 16 hex digits of the SHA-256 of the canonical YAML.
fn content_version(sidecar: &CompiledSidecar) -> Result<String, serde_norway::Error> {
    let mut config = sidecar.config.clone();
    config.version = None;
    let content = VersionedContent {
        config: &config,
        link_state: &sidecar.link_state,
        link_state_areas: &sidecar.link_state_areas,
    };
    let yaml = serde_norway::to_string(&content)?;
    let digest = Sha256::digest(yaml.as_bytes());
    Ok(digest.iter().take(8).map(|byte| format!("{byte:02x}")).collect())
}
