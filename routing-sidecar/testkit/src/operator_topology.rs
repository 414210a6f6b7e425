//! The fabric topology both operator benches compile.
//!
//! One namespace, `fabric`. Sidecar `i` is node `node-NNNN` (pod
//! `sidecar-NNNN`) with labels spread over 10 regions x 4 tiers x 5 racks;
//! the first 20 sidecars are the hubs (two per region). On top:
//! - RoutePolicies of distinct priorities whose selectors get more specific
//!   as the priority grows (all, tier, region, region+tier,
//!   region+tier+rack), so the winner differs from sidecar to sidecar;
//! - one NeighborPolicy per rack (its members peer with each other by
//!   selector and with their region's two hubs by node id) and one per
//!   region for the hubs (the hubs of the two adjacent regions, by node id):
//!   6 neighbors per sidecar, 9 per hub;
//! - RouteKeys with real ed25519 public keys (derived from fixed seeds)
//!   for the first sidecars, every fifth with a second, time-bounded key;
//! - four LinkStateAreas: `core` (the hubs), `west` and `east` (5 regions
//!   each, children of `core`) and `lab` (one region's data tier, a child
//!   of `west`).

use std::collections::BTreeMap;

use base64::Engine as _;
use fabric_core::NodeId;
use fabric_operator_core::api::duration::GoDuration;
use fabric_operator_core::api::{
    DampeningSpec, ExternalKey, KeyManagement, LinkSpec, LinkStateArea, LinkStateAreaSpec, MatchList, NeighborPolicy,
    NeighborPolicySpec, NeighborSpec, PolicyMode, RouteFilter, RouteKey, RouteKeySpec, RoutePolicy, RoutePolicySpec,
    RoutingMode, SecuritySpec, StabilitySpec, SummaryFilterSpec, TagRules, TieBreaker,
};
use fabric_operator_core::compile::Compilation;
use fabric_operator_core::index::{Index, SidecarInfo};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, LabelSelectorRequirement, ObjectMeta};

pub const NS: &str = "fabric";
pub const REGIONS: usize = 10;
pub const TIERS: [&str; 4] = ["core", "edge", "app", "data"];
pub const RACKS: usize = 5;
/// Hubs per region: sidecars `r` and `r + 10` (tiers core and edge, rack 0).
pub const HUBS_PER_REGION: usize = 2;

/// How big the topology is.
#[derive(Clone, Copy, Debug)]
pub struct Sizes {
    pub sidecars: usize,
    pub route_policies: usize,
    pub route_keys: usize,
}

impl Sizes {
    /// The sizes, each overridable: `FABRIC_BENCH_SIDECARS`,
    /// `FABRIC_BENCH_ROUTE_POLICIES`, `FABRIC_BENCH_ROUTE_KEYS`.
    pub fn from_env(default: Sizes) -> Sizes {
        Sizes {
            sidecars: env_usize("FABRIC_BENCH_SIDECARS", default.sidecars),
            route_policies: env_usize("FABRIC_BENCH_ROUTE_POLICIES", default.route_policies),
            route_keys: env_usize("FABRIC_BENCH_ROUTE_KEYS", default.route_keys),
        }
    }
}

pub const FULL: Sizes = Sizes { sidecars: 1000, route_policies: 100, route_keys: 50 };
/// `cargo test --benches` (no `--bench` argument): a smoke run.
pub const SMOKE: Sizes = Sizes { sidecars: 40, route_policies: 10, route_keys: 5 };

pub fn env_usize(name: &str, default: usize) -> usize {
    match std::env::var(name) {
        Ok(value) => value.trim().parse().unwrap_or_else(|_| panic!("{name}={value:?} is not a number")),
        Err(_) => default,
    }
}

fn meta(name: impl Into<String>) -> ObjectMeta {
    ObjectMeta { name: Some(name.into()), namespace: Some(NS.into()), generation: Some(1), ..Default::default() }
}

fn match_labels(pairs: &[(&str, String)]) -> LabelSelector {
    LabelSelector {
        match_labels: Some(pairs.iter().map(|(k, v)| (k.to_string(), v.clone())).collect()),
        match_expressions: None,
    }
}

fn requirement(key: &str, operator: &str, values: Vec<String>) -> LabelSelectorRequirement {
    LabelSelectorRequirement { key: key.into(), operator: operator.into(), values: Some(values) }
}

pub fn region(r: usize) -> String {
    format!("r{r}")
}

pub fn node_id(i: usize) -> String {
    format!("node-{i:04}")
}

pub fn pod_name(i: usize) -> String {
    format!("sidecar-{i:04}")
}

/// Node id of hub `h` of region `r`.
pub fn hub(r: usize, h: usize) -> String {
    node_id(r + REGIONS * h)
}

/// Sidecar `i`.
pub fn sidecar(i: usize) -> SidecarInfo {
    let mut labels = BTreeMap::new();
    labels.insert("app.kubernetes.io/name".to_string(), "fabric-sidecar".to_string());
    labels.insert("region".to_string(), region(i % REGIONS));
    labels.insert("tier".to_string(), TIERS[(i / REGIONS) % TIERS.len()].to_string());
    labels.insert("rack".to_string(), format!("rack-{}", (i / (REGIONS * TIERS.len())) % RACKS));
    let role = if i < REGIONS * HUBS_PER_REGION { "hub" } else { "leaf" };
    labels.insert("role".to_string(), role.to_string());
    SidecarInfo {
        node_id: NodeId::from(node_id(i)),
        namespace: NS.into(),
        name: pod_name(i),
        labels,
        peer_address: Some(format!("10.{}.{}.{}:7400", i >> 16 & 255, i >> 8 & 255, i & 255)),
        service_account: None,
    }
}

/// RoutePolicy `j` of `count`: the priority grows with `j`, and so does how
/// specific the selector is (five blocks: all, tier, region, region+tier,
/// region+tier+rack). `variant` changes the import filter only.
pub fn route_policy(j: usize, count: usize, variant: u32) -> RoutePolicy {
    let block = j * 5 / count.max(1);
    let (r, t, k) = (j % REGIONS, (j / REGIONS) % TIERS.len(), (j / 3) % RACKS);
    let selector = match block {
        0 if j.is_multiple_of(2) => LabelSelector::default(),
        0 => LabelSelector {
            match_labels: None,
            match_expressions: Some(vec![requirement("role", "In", vec!["leaf".into(), "hub".into()])]),
        },
        1 => LabelSelector {
            match_labels: Some([("tier".to_string(), TIERS[t].to_string())].into()),
            match_expressions: Some(vec![requirement("region", "NotIn", vec![region(r), region((r + 3) % REGIONS)])]),
        },
        2 => match_labels(&[("region", region(r))]),
        3 => match_labels(&[("region", region(r)), ("tier", TIERS[t].to_string())]),
        _ => LabelSelector {
            match_labels: Some([("region".to_string(), region(r)), ("tier".to_string(), TIERS[t].to_string())].into()),
            match_expressions: Some(vec![requirement(
                "rack",
                "In",
                vec![format!("rack-{k}"), format!("rack-{}", (k + 1) % RACKS)],
            )]),
        },
    };
    let import = RouteFilter {
        advertisers: MatchList { allow: None, deny: vec![format!("quarantined-{j}-*")] },
        origins: MatchList::default(),
        destinations: MatchList {
            allow: None,
            deny: vec![format!("blocked-{j}-v{variant}-*"), "internal-admin".into()],
        },
        tags: TagRules { allow_any: None, deny: vec!["quarantine".into()] },
        max_hop_count: Some(8 + (j % 8) as u32),
    };
    let export = RouteFilter {
        destinations: MatchList { allow: Some(vec!["svc-*".into(), format!("{}-*", region(r))]), deny: Vec::new() },
        tags: TagRules { allow_any: None, deny: vec!["local-only".into()] },
        ..RouteFilter::default()
    };
    RoutePolicy {
        metadata: meta(format!("rp-{j:03}")),
        spec: RoutePolicySpec {
            sidecar_selector: selector,
            priority: 10 * j as i32,
            mode: if j % 7 == 3 { PolicyMode::DryRun } else { PolicyMode::Enforce },
            import,
            export,
            tie_breakers: j.is_multiple_of(3).then(|| vec![TieBreaker::Latency, TieBreaker::HopCount]),
            security: SecuritySpec { require_signatures: j % 4 == 1, ..Default::default() },
            stability: if j.is_multiple_of(2) {
                StabilitySpec { hold_down: Some(GoDuration::new("30s")), dampening: Some(DampeningSpec::default()) }
            } else {
                StabilitySpec::default()
            },
        },
        status: None,
    }
}

fn neighbor_policy(name: String, selector: LabelSelector, neighbors: Vec<NeighborSpec>) -> NeighborPolicy {
    NeighborPolicy {
        metadata: meta(name),
        spec: NeighborPolicySpec { sidecar_selector: selector, mode: PolicyMode::Enforce, neighbors },
        status: None,
    }
}

/// One per rack (members peer with each other and with the region's hubs)
/// and one per region for its hubs (the adjacent regions' hubs).
pub fn neighbor_policies() -> Vec<NeighborPolicy> {
    let mut policies = Vec::new();
    for r in 0..REGIONS {
        for (t, tier) in TIERS.iter().enumerate() {
            for k in 0..RACKS {
                let rack =
                    match_labels(&[("region", region(r)), ("tier", tier.to_string()), ("rack", format!("rack-{k}"))]);
                let mut neighbors = vec![NeighborSpec::selected(rack.clone())];
                for h in 0..HUBS_PER_REGION {
                    let mut uplink = NeighborSpec::node(hub(r, h));
                    uplink.link = LinkSpec { cost: 2 + h as u32, latency_us: 150 + 50 * t as u32, reliability: 0.999 };
                    neighbors.push(uplink);
                }
                policies.push(neighbor_policy(format!("np-{}-{tier}-rack-{k}", region(r)), rack, neighbors));
            }
        }
        let hubs = match_labels(&[("region", region(r)), ("role", "hub".to_string())]);
        let mut neighbors = Vec::new();
        for other in [(r + 1) % REGIONS, (r + REGIONS - 1) % REGIONS] {
            for h in 0..HUBS_PER_REGION {
                let mut trunk = NeighborSpec::node(hub(other, h));
                trunk.link = LinkSpec { cost: 10, latency_us: 4000, reliability: 0.99 };
                trunk.import = Some(RouteFilter { max_hop_count: Some(12), ..RouteFilter::default() });
                neighbors.push(trunk);
            }
        }
        policies.push(neighbor_policy(format!("np-{}-hubs", region(r)), hubs, neighbors));
    }
    policies
}

/// Standard base64 of the ed25519 public key of a fixed seed.
pub fn public_key(k: usize, version: u8) -> String {
    let mut seed = [0u8; 32];
    for (i, byte) in seed.iter_mut().enumerate() {
        *byte = (k as u8).wrapping_mul(31).wrapping_add(version.wrapping_mul(101)).wrapping_add(i as u8 * 7) ^ 0xA5;
    }
    let signing = ed25519_dalek::SigningKey::from_bytes(&seed);
    base64::engine::general_purpose::STANDARD.encode(signing.verifying_key().to_bytes())
}

/// The RouteKey of sidecar `k`: external keys, a second one (time-bounded)
/// for every fifth.
pub fn route_key(k: usize) -> RouteKey {
    let mut external_keys =
        vec![ExternalKey { key_id: "k1".into(), public_key: public_key(k, 1), valid_from: None, valid_until: None }];
    if k.is_multiple_of(5) {
        external_keys.push(ExternalKey {
            key_id: "k2".into(),
            public_key: public_key(k, 2),
            valid_from: Some("2026-01-01T00:00:00Z".into()),
            valid_until: Some("2027-01-01T00:00:00Z".into()),
        });
    }
    RouteKey {
        metadata: meta(format!("rk-{}", node_id(k))),
        spec: RouteKeySpec {
            node_id: node_id(k),
            service_account_name: None,
            algorithm: Default::default(),
            management: KeyManagement::External,
            rotation_interval: GoDuration::new("720h"),
            overlap: GoDuration::new("24h"),
            external_keys,
        },
        status: None,
    }
}

fn area(name: &str, members: LabelSelector, parents: &[&str], ecmp: u32) -> LinkStateArea {
    LinkStateArea {
        metadata: meta(format!("area-{name}")),
        spec: LinkStateAreaSpec {
            area_id: name.into(),
            mode: RoutingMode::PreferLinkState,
            member_selector: members,
            parents: parents.iter().map(|p| p.to_string()).collect(),
            summary_filters: Vec::new(),
            ecmp_max_paths: ecmp,
            max_summary_entries: None,
        },
        status: None,
    }
}

pub fn link_state_areas() -> Vec<LinkStateArea> {
    let regions = |range: std::ops::Range<usize>| LabelSelector {
        match_labels: None,
        match_expressions: Some(vec![requirement("region", "In", range.map(region).collect())]),
    };
    let mut core = area("core", match_labels(&[("role", "hub".to_string())]), &[], 4);
    core.spec.summary_filters = vec![SummaryFilterSpec {
        allow_source_areas: Some(vec!["west".into(), "east".into()]),
        deny_destinations: vec!["internal-*".into()],
        ..SummaryFilterSpec::new("core")
    }];
    core.spec.max_summary_entries = Some(10_000);
    let lab = area("lab", match_labels(&[("region", region(0)), ("tier", "data".to_string())]), &["west"], 8);
    vec![core, area("west", regions(0..5), &["core"], 4), area("east", regions(5..10), &["core"], 4), lab]
}

/// The CRs of the topology (no sidecars).
pub fn objects(sizes: Sizes) -> Index {
    let mut index = Index::new();
    for j in 0..sizes.route_policies {
        index.apply(route_policy(j, sizes.route_policies, 0)).expect("route policy");
    }
    for policy in neighbor_policies() {
        index.apply(policy).expect("neighbor policy");
    }
    for k in 0..sizes.route_keys {
        index.apply(route_key(k)).expect("route key");
    }
    for area in link_state_areas() {
        index.apply(area).expect("area");
    }
    index
}

/// The CRs and the sidecars.
pub fn index(sizes: Sizes) -> Index {
    let mut index = objects(sizes);
    for i in 0..sizes.sidecars {
        index.upsert_sidecar(sidecar(i));
    }
    index
}

/// Panics unless every sidecar got a config and nothing is reported: the
/// bench must measure the compilation of a clean fabric, not error paths.
pub fn assert_clean(compilation: &Compilation, sidecars: usize) {
    assert!(compilation.problems.is_empty(), "problems: {:#?}", compilation.problems);
    let notable: Vec<_> =
        compilation.conditions.iter().filter(|(_, list)| list.iter().any(|c| c.is_notable())).collect();
    assert!(notable.is_empty(), "notable conditions: {notable:#?}");
    assert_eq!(compilation.sidecars.len(), sidecars, "one config per sidecar");
}
