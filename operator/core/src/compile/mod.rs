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

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::sync::Arc;

use fabric_core::SidecarConfig;
use fabric_core::config::{LinkStateAreaMembership, TrustedKey};
use fabric_core::ids::NodeId;
use fabric_core::link_state::AreaId;
use sha2::{Digest, Sha256};

pub use identity::{Settings, UnboundNodeIds};
pub use output::{Compilation, CompiledSidecar, ConditionSpec, ConditionType, Problem, Severity};

use crate::api::{LinkStateArea, NeighborPolicy, RouteKey, RoutePolicy};
use crate::index::{Index, Indexed, ObjectKey};
use crate::validation::Violation;
use population::Population;
use report::Report;

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

/// The trusted keys every config carries, serialized once per compile: they
/// are most of a config's text, so cloning and serializing them into every
/// config would be a large part of a compile (docs/benchmarks.md,
/// "Operator").
struct SharedKeys {
    list: Arc<[TrustedKey]>,
    json: String,
}

impl SharedKeys {
    fn new(list: Arc<[TrustedKey]>) -> Self {
        // Strings and options only: serde_json cannot fail on them.
        let json = serde_json::to_string(&*list).expect("trusted keys serialize to JSON");
        SharedKeys { list, json }
    }
}

/// Sets the config's version, the first 16 hex digits of the SHA-256 of
/// its JSON with the version unset (JSON: much cheaper to produce than YAML,
/// see the "alternative" row of the compile bench, and deterministic the
/// same way: fields in declaration order, maps sorted), gives it the shared
/// trusted keys, and returns the JSON with the
/// version, what is sent.
///
/// The config is serialized once, with an empty key list, and the shared
/// keys' JSON is spliced in where serde writes `"trustedKeys":[]`: the
/// first occurrence after `"security":{`, since nothing before it in that
/// object can hold an unescaped quote. The version goes in right after
/// `nodeId`, where serde puts it (`SidecarConfig` declares `version`
/// second). A debug assertion checks both against a full serialization.
fn versioned_text(config: &mut SidecarConfig, keys: &SharedKeys) -> Result<Arc<str>, serde_json::Error> {
    const EMPTY_KEYS: &str = r#""trustedKeys":[]"#;
    config.version = None;
    config.security.trusted_keys = Arc::from([]);
    let json = serde_json::to_string(config)?;
    config.security.trusted_keys = keys.list.clone();
    let security = json.find(r#""security":{"#).expect("every config has a security section");
    let keys_at = security + json[security..].find(EMPTY_KEYS).expect("security always has trustedKeys");
    let (before_keys, after_keys) = (&json[..keys_at + EMPTY_KEYS.len() - 2], &json[keys_at + EMPTY_KEYS.len()..]);
    let after_node_id = r#"{"nodeId":"#.len() + serde_json::to_string(&config.node_id)?.len();

    let mut hasher = Sha256::new();
    hasher.update(before_keys.as_bytes());
    hasher.update(keys.json.as_bytes());
    hasher.update(after_keys.as_bytes());
    let digest = hasher.finalize();
    let mut version = String::with_capacity(16);
    for byte in digest.iter().take(8) {
        write!(version, "{byte:02x}").expect("writing to a String");
    }

    let mut text = String::with_capacity(json.len() + keys.json.len() + version.len() + 16);
    text.push_str(&before_keys[..after_node_id]);
    write!(text, r#","version":"{version}""#).expect("writing to a String");
    text.push_str(&before_keys[after_node_id..]);
    text.push_str(&keys.json);
    text.push_str(after_keys);
    config.version = Some(version);
    debug_assert_eq!(
        Some(&text),
        serde_json::to_string(config).ok().as_ref(),
        "keys and version spliced where serde puts them"
    );
    Ok(text.into())
}
