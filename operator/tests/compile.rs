//! The compiler, driven through the index as the watches would drive it.

use std::collections::BTreeSet;
use std::path::Path;

use fabric_core::NodeId;
use fabric_core::policy::PolicyMode as EnginePolicyMode;
use fabric_link_state::RoutingMode as EngineRoutingMode;
use fabric_operator_core::api::duration::GoDuration;
use fabric_operator_core::api::{ConditionStatus, MatchList};
use fabric_operator_core::api::{
    ExternalKey, KeyManagement, KeyState, LinkStateArea, LinkStateAreaSpec, NeighborPolicy, NeighborPolicySpec,
    NeighborSpec, PolicyMode, PublishedKey, RouteFilter, RouteKey, RouteKeySpec, RouteKeyStatus, RoutePolicy,
    RoutePolicySpec, RoutingMode, SummaryFilterSpec, TieBreaker, rules,
};
use fabric_operator_core::compile::{
    Compilation, ConditionType, Settings, Severity, UnboundNodeIds, compile, compile_with,
};
use fabric_operator_core::index::{Index, ObjectKey, ObjectKind, SidecarInfo};
use fabric_operator_core::manifests;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta, Time};

const NS: &str = "fabric";
const KEY_A: &str = "f3LZc9EXICJwg92vpsL6sfFc3ErII+y/fcB+e1aREaA=";
const KEY_B: &str = "DYq6idv2k2qfCyBdC92F5bJbbVXsMLekOvh9uQTUSfk=";

fn labels(pairs: &[(&str, &str)]) -> LabelSelector {
    LabelSelector {
        match_labels: Some(pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()),
        match_expressions: None,
    }
}

fn all() -> LabelSelector {
    LabelSelector::default()
}

fn meta(namespace: &str, name: &str) -> ObjectMeta {
    ObjectMeta { name: Some(name.into()), namespace: Some(namespace.into()), generation: Some(3), ..Default::default() }
}

fn sidecar(namespace: &str, node_id: &str, pairs: &[(&str, &str)]) -> SidecarInfo {
    SidecarInfo {
        node_id: NodeId::from(node_id),
        namespace: namespace.into(),
        name: format!("{node_id}-0"),
        labels: pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
        peer_address: Some(format!("{node_id}.{namespace}:7400")),
        service_account: None,
    }
}

fn route_policy(name: &str, priority: i32, selector: LabelSelector) -> RoutePolicy {
    RoutePolicy {
        metadata: meta(NS, name),
        spec: RoutePolicySpec {
            sidecar_selector: selector,
            priority,
            mode: PolicyMode::Enforce,
            import: RouteFilter::default(),
            export: RouteFilter::default(),
            tie_breakers: None,
            security: Default::default(),
            stability: Default::default(),
        },
        status: None,
    }
}

fn neighbor_policy(name: &str, selector: LabelSelector, neighbors: Vec<NeighborSpec>) -> NeighborPolicy {
    NeighborPolicy {
        metadata: meta(NS, name),
        spec: NeighborPolicySpec { sidecar_selector: selector, mode: PolicyMode::Enforce, neighbors },
        status: None,
    }
}

fn route_key(namespace: &str, name: &str, node_id: &str) -> RouteKey {
    RouteKey {
        metadata: meta(namespace, name),
        spec: RouteKeySpec {
            node_id: node_id.into(),
            service_account_name: None,
            algorithm: Default::default(),
            management: KeyManagement::Operator,
            rotation_interval: GoDuration::new("720h"),
            overlap: GoDuration::new("24h"),
            external_keys: Vec::new(),
        },
        status: None,
    }
}

fn area(name: &str, area_id: &str, members: LabelSelector, parents: &[&str]) -> LinkStateArea {
    LinkStateArea {
        metadata: meta(NS, name),
        spec: LinkStateAreaSpec {
            area_id: area_id.into(),
            mode: RoutingMode::PreferLinkState,
            member_selector: members,
            parents: parents.iter().map(|p| p.to_string()).collect(),
            summary_filters: Vec::new(),
            ecmp_max_paths: 4,
            max_summary_entries: None,
        },
        status: None,
    }
}

fn key(kind: ObjectKind, name: &str) -> ObjectKey {
    ObjectKey { kind, namespace: NS.into(), name: name.into() }
}

fn three_sidecars() -> Index {
    let mut index = Index::new();
    index.upsert_sidecar(sidecar(NS, "eu-1", &[("region", "eu"), ("role", "edge")]));
    index.upsert_sidecar(sidecar(NS, "eu-2", &[("region", "eu"), ("role", "edge")]));
    index.upsert_sidecar(sidecar(NS, "border", &[("region", "core"), ("role", "border")]));
    index
}

fn neighbor_ids(compilation: &Compilation, node: &str) -> Vec<String> {
    compilation.sidecars[node].config.neighbors.iter().map(|n| n.id.to_string()).collect()
}

fn status_of(compilation: &Compilation, object: &ObjectKey, type_: ConditionType) -> ConditionStatus {
    compilation.condition(object, type_).map(|c| c.status).unwrap_or_default()
}

#[test]
fn highest_priority_route_policy_applies() {
    let mut index = three_sidecars();
    let mut low = route_policy("low", 0, all());
    low.spec.import.destinations.deny = vec!["from-low".into()];
    let mut high = route_policy("high", 10, labels(&[("role", "border")]));
    high.spec.import.destinations.deny = vec!["from-high".into()];
    high.spec.mode = PolicyMode::DryRun;
    high.spec.tie_breakers = Some(vec![TieBreaker::Advertiser]);
    index.apply(low).unwrap();
    index.apply(high).unwrap();
    let compilation = compile(&index);
    assert!(!compilation.has_errors(), "{:#?}", compilation.problems);
    let border = &compilation.sidecars["border"].config;
    assert_eq!(border.import_policy.destinations.deny, ["from-high"]);
    assert_eq!(border.import_policy.mode, EnginePolicyMode::DryRun);
    assert_eq!(border.selection.tie_breakers, [fabric_core::config::TieBreaker::Advertiser]);
    assert_eq!(compilation.sidecars["eu-1"].config.import_policy.destinations.deny, ["from-low"]);
    let contributions = &compilation.contributions[&key(ObjectKind::RoutePolicy, "low")];
    assert_eq!(contributions.iter().map(NodeId::as_str).collect::<Vec<_>>(), ["eu-1", "eu-2"]);
    assert_eq!(
        status_of(&compilation, &key(ObjectKind::RoutePolicy, "low"), ConditionType::Conflict),
        ConditionStatus::False
    );
}

#[test]
fn equal_priority_is_a_conflict_naming_both_and_the_smaller_name_wins() {
    let mut index = three_sidecars();
    let mut b = route_policy("b-policy", 5, labels(&[("region", "eu")]));
    b.spec.export.tags.deny = vec!["from-b".into()];
    let mut a = route_policy("a-policy", 5, all());
    a.spec.export.tags.deny = vec!["from-a".into()];
    index.apply(b).unwrap();
    index.apply(a).unwrap();
    let compilation = compile(&index);
    assert!(compilation.has_errors());
    assert_eq!(compilation.sidecars["eu-1"].config.export_policy.tags.deny, ["from-a"]);
    let a_key = key(ObjectKind::RoutePolicy, "a-policy");
    let b_key = key(ObjectKind::RoutePolicy, "b-policy");
    let on_a = compilation.condition(&a_key, ConditionType::Conflict).unwrap();
    let on_b = compilation.condition(&b_key, ConditionType::Conflict).unwrap();
    assert_eq!((on_a.status, on_a.reason.as_str()), (ConditionStatus::True, "EqualPriority"));
    assert_eq!(on_a.related, std::slice::from_ref(&b_key));
    assert_eq!(on_b.related, std::slice::from_ref(&a_key));
    assert_eq!(
        on_b.message,
        "equal priority 5 with RoutePolicy fabric/a-policy on sidecar(s) eu-1, eu-2: RoutePolicy fabric/a-policy wins"
    );
    assert!(on_a.message.ends_with("this object wins"), "{}", on_a.message);
    assert_eq!(on_a.observed_generation, Some(3));
    // The border sidecar is selected by a-policy alone: no conflict there.
    assert!(!on_a.message.contains("border"));
}

#[test]
fn neighbor_policies_merge_and_a_duplicate_neighbor_is_a_conflict_won_by_the_first() {
    let mut index = three_sidecars();
    let mut first = NeighborSpec::node("border");
    first.link.cost = 7;
    index.apply(neighbor_policy("a-uplink", labels(&[("role", "edge")]), vec![first])).unwrap();
    let mut second = NeighborSpec::node("border");
    second.link.cost = 99;
    let mesh = NeighborSpec::selected(labels(&[("region", "eu")]));
    index.apply(neighbor_policy("b-mesh", labels(&[("region", "eu")]), vec![mesh, second])).unwrap();
    let compilation = compile(&index);
    assert_eq!(neighbor_ids(&compilation, "eu-1"), ["border", "eu-2"]);
    let eu_1 = &compilation.sidecars["eu-1"].config;
    assert_eq!(eu_1.neighbor("border").unwrap().link.cost, 7, "a-uplink is first by namespace/name");
    let a = key(ObjectKind::NeighborPolicy, "a-uplink");
    let b = key(ObjectKind::NeighborPolicy, "b-mesh");
    let conflict = compilation.condition(&b, ConditionType::Conflict).unwrap();
    assert_eq!(conflict.status, ConditionStatus::True);
    assert_eq!(conflict.reason, "DuplicateNeighbor");
    assert_eq!(
        conflict.message,
        "neighbor border listed twice with NeighborPolicy fabric/a-uplink on sidecar(s) eu-1, eu-2: NeighborPolicy fabric/a-uplink wins"
    );
    assert_eq!(compilation.condition(&a, ConditionType::Conflict).unwrap().related, [b]);
}

#[test]
fn an_explicit_node_id_overrides_selector_matches_in_the_same_policy() {
    let mut index = three_sidecars();
    let mesh = NeighborSpec::selected(all());
    let mut border = NeighborSpec::node("border");
    border.link.cost = 5;
    index.apply(neighbor_policy("mesh", labels(&[("region", "eu")]), vec![mesh, border])).unwrap();
    let compilation = compile(&index);
    assert!(!compilation.has_errors(), "{:#?}", compilation.conditions);
    assert_eq!(neighbor_ids(&compilation, "eu-1"), ["border", "eu-2"], "selector neighbors exclude the sidecar itself");
    assert_eq!(compilation.sidecars["eu-1"].config.neighbor("border").unwrap().link.cost, 5);
    assert_eq!(compilation.sidecars["eu-1"].config.neighbor("eu-2").unwrap().link.cost, 1);
}

#[test]
fn an_unknown_node_id_is_reported_and_still_configured_without_address() {
    let mut index = three_sidecars();
    index
        .apply(neighbor_policy(
            "uplink",
            labels(&[("role", "edge")]),
            vec![NeighborSpec::node("ghost"), NeighborSpec::node("border")],
        ))
        .unwrap();
    let compilation = compile(&index);
    let eu_1 = &compilation.sidecars["eu-1"].config;
    assert_eq!(eu_1.neighbor("ghost").unwrap().address, None);
    assert_eq!(eu_1.neighbor("border").unwrap().address.as_deref(), Some("border.fabric:7400"));
    let condition =
        compilation.condition(&key(ObjectKind::NeighborPolicy, "uplink"), ConditionType::NeighborNotFound).unwrap();
    assert_eq!(condition.status, ConditionStatus::True);
    assert_eq!(
        condition.message,
        "neighbor ghost is not a known sidecar (configured without an address on eu-1, eu-2)"
    );
    assert!(!compilation.has_errors(), "an unknown neighbor is a warning");
}

#[test]
fn selection_is_namespaced_but_node_id_neighbors_reach_other_namespaces() {
    let mut index = three_sidecars();
    index.upsert_sidecar(sidecar("other", "far", &[("region", "eu"), ("role", "edge")]));
    index.apply(route_policy("all", 0, all())).unwrap();
    let neighbors = vec![NeighborSpec::selected(labels(&[("region", "eu")])), NeighborSpec::node("far")];
    index.apply(neighbor_policy("mesh", labels(&[("region", "eu")]), neighbors)).unwrap();
    let compilation = compile(&index);
    assert_eq!(neighbor_ids(&compilation, "eu-1"), ["eu-2", "far"]);
    assert_eq!(compilation.sidecars["eu-1"].config.neighbor("far").unwrap().address.as_deref(), Some("far.other:7400"));
    assert!(
        compilation.sidecars["far"].config.neighbors.is_empty(),
        "policies of fabric do not select sidecars of other"
    );
    assert!(!compilation.sidecars["far"].sources.contains(&key(ObjectKind::RoutePolicy, "all")));
}

#[test]
fn advertise_false_makes_a_receive_only_neighbor_and_filters_take_the_mode() {
    let mut index = three_sidecars();
    let mut quiet = NeighborSpec::node("border");
    quiet.advertise = false;
    quiet.import = Some(RouteFilter {
        destinations: MatchList { allow: Some(vec!["eu-*".into()]), deny: Vec::new() },
        ..Default::default()
    });
    let mut policy = neighbor_policy("uplink", labels(&[("role", "edge")]), vec![quiet]);
    policy.spec.mode = PolicyMode::DryRun;
    index.apply(policy).unwrap();
    let compilation = compile(&index);
    let border = compilation.sidecars["eu-1"].config.neighbor("border").unwrap().clone();
    let export = border.export.unwrap();
    assert_eq!(export.destinations.allow, Some(Vec::new()));
    assert_eq!(export.mode, EnginePolicyMode::Enforce, "targeting is not audited");
    let import = border.import.unwrap();
    assert_eq!(import.mode, EnginePolicyMode::DryRun);
    assert_eq!(import.destinations.allow, Some(vec!["eu-*".to_string()]));
}

#[test]
fn a_bad_peer_address_is_an_error_and_the_address_is_dropped() {
    let mut index = three_sidecars();
    let mut bad = sidecar(NS, "border", &[("region", "core"), ("role", "border")]);
    bad.peer_address = Some("no-port".into());
    index.upsert_sidecar(bad);
    index.apply(neighbor_policy("uplink", labels(&[("role", "edge")]), vec![NeighborSpec::node("border")])).unwrap();
    let compilation = compile(&index);
    assert_eq!(compilation.sidecars["eu-1"].config.neighbor("border").unwrap().address, None);
    let problem =
        compilation.problems.iter().find(|p| p.sidecar.as_ref().map(NodeId::as_str) == Some("border")).unwrap();
    assert_eq!(problem.severity, Severity::Error);
    assert_eq!(problem.field.as_deref(), Some("metadata.annotations[routing.fabric.dev/peer-address]"));
}

#[test]
fn two_pods_with_one_node_id_get_nothing_until_one_is_gone() {
    let mut index = three_sidecars();
    let mut twin = sidecar(NS, "eu-1", &[("region", "eu")]);
    twin.name = "eu-1-1".into();
    index.upsert_sidecar(twin);
    let compilation = compile(&index);
    assert!(!compilation.sidecars.contains_key("eu-1"), "neither claimant is compiled");
    let refused: Vec<(&str, &str)> = compilation
        .problems
        .iter()
        .filter(|p| p.sidecar.as_ref().map(NodeId::as_str) == Some("eu-1"))
        .map(|p| (p.object.as_ref().unwrap().name.as_str(), p.message.as_str()))
        .collect();
    let message = "node id eu-1 is claimed by Pod fabric/eu-1-0 and Pod fabric/eu-1-1: none of them gets a config, \
                   key or certificate until only one claims it";
    assert_eq!(refused, [("eu-1-0", message), ("eu-1-1", message)]);

    index.remove_sidecar(NS, "eu-1-0");
    let compilation = compile(&index);
    let pods: Vec<&str> = compilation.sidecars["eu-1"]
        .sources
        .iter()
        .filter(|s| s.kind == ObjectKind::Pod)
        .map(|s| s.name.as_str())
        .collect();
    assert_eq!(pods, ["eu-1-1"], "the one left is served");
}

/// A RouteKey binds its node id to its namespace and ServiceAccount.
fn bound_route_key(namespace: &str, name: &str, node_id: &str, service_account: &str) -> RouteKey {
    let mut key = route_key(namespace, name, node_id);
    key.spec.service_account_name = Some(service_account.into());
    key.status = Some(RouteKeyStatus {
        keys: vec![PublishedKey {
            key_id: "k1".into(),
            public_key: KEY_A.into(),
            valid_from: None,
            valid_until: None,
            state: KeyState::Active,
        }],
        active_key_id: Some("k1".into()),
        ..Default::default()
    });
    key
}

fn pod_as(namespace: &str, name: &str, node_id: &str, service_account: &str) -> SidecarInfo {
    let mut info = sidecar(namespace, node_id, &[]);
    info.name = name.into();
    info.service_account = Some(service_account.into());
    info
}

fn served_pod(compilation: &Compilation, node_id: &str) -> Option<String> {
    let sidecar = compilation.sidecars.get(node_id)?;
    sidecar.sources.iter().find(|s| s.kind == ObjectKind::Pod).map(|s| format!("{}/{}", s.namespace, s.name))
}

fn problem_of<'a>(compilation: &'a Compilation, namespace: &str, pod: &str) -> Option<&'a str> {
    compilation
        .problems
        .iter()
        .find(|p| {
            p.object.as_ref().is_some_and(|o| o.kind == ObjectKind::Pod && o.namespace == namespace && o.name == pod)
        })
        .map(|p| p.message.as_str())
}

#[test]
fn a_route_key_binds_its_node_id_to_its_namespace_and_service_account() {
    struct Case {
        name: &'static str,
        impostor: Option<(&'static str, &'static str, &'static str)>,
    }
    let cases = [
        Case { name: "no impostor", impostor: None },
        // Sorts before the real pod: under "smaller name wins" it took the node.
        Case { name: "same namespace, other ServiceAccount", impostor: Some((NS, "a-impostor", "default")) },
        Case { name: "other namespace, same ServiceAccount name", impostor: Some(("aaa", "a-impostor", "edge")) },
    ];
    for case in cases {
        let mut index = Index::new();
        index.upsert_sidecar(pod_as(NS, "edge-0", "edge", "edge"));
        index.apply(bound_route_key(NS, "edge", "edge", "edge")).unwrap();
        if let Some((namespace, name, account)) = case.impostor {
            index.upsert_sidecar(pod_as(namespace, name, "edge", account));
        }
        let compilation = compile(&index);
        assert_eq!(served_pod(&compilation, "edge").as_deref(), Some("fabric/edge-0"), "{}", case.name);
        let config = &compilation.sidecars["edge"].config;
        assert_eq!(
            config.security.signing_key_id.as_ref().map(|k| k.as_str()),
            Some("k1"),
            "{}: the owner signs",
            case.name
        );
        let route_key = key(ObjectKind::RouteKey, "edge");
        assert_eq!(
            status_of(&compilation, &route_key, ConditionType::Accepted),
            ConditionStatus::True,
            "{}",
            case.name
        );
        if let Some((namespace, name, account)) = case.impostor {
            let message = problem_of(&compilation, namespace, name).expect("the impostor is reported");
            assert_eq!(
                message,
                format!(
                    "claims node id edge as ServiceAccount {account} in namespace {namespace}, but RouteKey \
                     fabric/edge binds it to ServiceAccount edge in namespace fabric: refused, it gets no config, \
                     key or certificate"
                ),
                "{}",
                case.name
            );
        }
    }
}

#[test]
fn a_bound_node_id_moves_with_its_service_account() {
    let mut index = Index::new();
    index.apply(bound_route_key(NS, "edge", "edge", "edge")).unwrap();
    index.upsert_sidecar(pod_as(NS, "edge-7f9c", "edge", "edge"));
    assert_eq!(served_pod(&compile(&index), "edge").as_deref(), Some("fabric/edge-7f9c"));
    // Rescheduled: the old pod goes, a new one with the same account comes.
    index.remove_sidecar(NS, "edge-7f9c");
    index.upsert_sidecar(pod_as(NS, "edge-b81d", "edge", "edge"));
    let compilation = compile(&index);
    assert_eq!(served_pod(&compilation, "edge").as_deref(), Some("fabric/edge-b81d"));
    assert!(compilation.problems.is_empty(), "{:#?}", compilation.problems);
}

#[test]
fn the_oldest_route_key_binds_a_node_id_and_a_later_one_elsewhere_cannot_take_it() {
    let mut index = Index::new();
    index.upsert_sidecar(pod_as(NS, "edge-0", "edge", "edge"));
    let mut owner = bound_route_key(NS, "edge", "edge", "edge");
    owner.metadata.creation_timestamp = Some(Time("2026-01-01T00:00:00Z".parse().unwrap()));
    // Created later in a namespace that sorts first, for its own account.
    let mut thief = bound_route_key("aaa", "steal", "edge", "thief");
    thief.metadata.creation_timestamp = Some(Time("2026-06-01T00:00:00Z".parse().unwrap()));
    index.apply(owner).unwrap();
    index.apply(thief).unwrap();
    index.upsert_sidecar(pod_as("aaa", "thief-0", "edge", "thief"));
    let compilation = compile(&index);
    assert_eq!(served_pod(&compilation, "edge").as_deref(), Some("fabric/edge-0"));
    let steal = ObjectKey { kind: ObjectKind::RouteKey, namespace: "aaa".into(), name: "steal".into() };
    let conflict = compilation.condition(&steal, ConditionType::Conflict).unwrap();
    assert_eq!(conflict.reason, "DuplicateNodeId");
    assert!(conflict.message.ends_with("RouteKey fabric/edge wins"), "{}", conflict.message);
    assert!(problem_of(&compilation, "aaa", "thief-0").unwrap().contains("RouteKey fabric/edge binds it"));
}

#[test]
fn fabric_namespaces_and_unbound_node_ids_are_the_installers_choice() {
    let mut index = Index::new();
    index.upsert_sidecar(pod_as(NS, "edge-0", "edge", "edge"));
    index.upsert_sidecar(pod_as(NS, "core-0", "core", "core"));
    index.upsert_sidecar(pod_as("sandbox", "probe-0", "probe", "default"));
    index.apply(bound_route_key(NS, "edge", "edge", "edge")).unwrap();
    index.apply(bound_route_key("sandbox", "probe", "probe", "default")).unwrap();
    let settings =
        Settings { namespaces: Some(BTreeSet::from([NS.to_owned()])), unbound_node_ids: UnboundNodeIds::Refuse };
    let compilation = compile_with(&index, &settings);
    assert_eq!(compilation.sidecars.keys().map(NodeId::as_str).collect::<Vec<_>>(), ["edge"]);
    assert!(problem_of(&compilation, NS, "core-0").unwrap().starts_with("node id core has no RouteKey binding it"));
    let outside = "namespace sandbox is not a fabric namespace (--fabric-namespace, chart identity.namespaces: fabric)";
    assert_eq!(problem_of(&compilation, "sandbox", "probe-0"), Some(outside));
    let probe = ObjectKey { kind: ObjectKind::RouteKey, namespace: "sandbox".into(), name: "probe".into() };
    let accepted = compilation.condition(&probe, ConditionType::Accepted).unwrap();
    assert_eq!((accepted.status, accepted.reason.as_str()), (ConditionStatus::False, "NamespaceNotAllowed"));
    let trusted: Vec<&str> =
        compilation.sidecars["edge"].config.security.trusted_keys.iter().map(|k| k.advertiser.as_str()).collect();
    assert_eq!(trusted, ["edge"], "a refused RouteKey's keys are trusted nowhere");
    // The defaults: any namespace, unbound node ids served.
    assert_eq!(compile(&index).sidecars.len(), 3);
}

#[test]
fn every_sidecar_trusts_every_published_and_external_key() {
    let mut index = three_sidecars();
    let mut operator_managed = route_key(NS, "border", "border");
    operator_managed.status = Some(RouteKeyStatus {
        keys: vec![
            PublishedKey {
                key_id: "b-2".into(),
                public_key: KEY_B.into(),
                valid_from: Some("2025-06-01T02:00:00+02:00".into()),
                valid_until: None,
                state: KeyState::Pending,
            },
            PublishedKey {
                key_id: "b-1".into(),
                public_key: KEY_A.into(),
                valid_from: None,
                valid_until: Some("2025-07-01T00:00:00Z".into()),
                state: KeyState::Active,
            },
        ],
        ..Default::default()
    });
    let mut external = route_key(NS, "eu-1", "eu-1");
    external.spec.management = KeyManagement::External;
    external.spec.external_keys =
        vec![ExternalKey { key_id: "x".into(), public_key: KEY_A.into(), valid_from: None, valid_until: None }];
    index.apply(operator_managed).unwrap();
    index.apply(external).unwrap();
    let compilation = compile(&index);
    assert!(!compilation.has_errors(), "{:#?}", compilation.problems);
    for sidecar in compilation.sidecars.values() {
        let keys: Vec<(&str, &str, Option<&str>)> = sidecar
            .config
            .security
            .trusted_keys
            .iter()
            .map(|k| (k.advertiser.as_str(), k.key_id.as_str(), k.valid_from.as_deref()))
            .collect();
        assert_eq!(
            keys,
            [("border", "b-1", None), ("border", "b-2", Some("2025-06-01T00:00:00.000Z")), ("eu-1", "x", None)]
        );
    }
}

#[test]
fn route_keys_for_bound_or_duplicate_node_ids_and_bad_keys_are_reported() {
    let mut index = three_sidecars();
    index.apply(route_key("intruder", "steal", "border")).unwrap();
    index.apply(route_key(NS, "a-border", "border")).unwrap();
    index.apply(route_key(NS, "b-border", "border")).unwrap();
    let mut weak = route_key(NS, "eu-2", "eu-2");
    weak.spec.external_keys = vec![ExternalKey {
        key_id: "zero".into(),
        // The identity point: valid base64 of 32 bytes, but a weak key.
        public_key: "AQAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=".into(),
        valid_from: None,
        valid_until: None,
    }];
    index.apply(weak).unwrap();
    let compilation = compile(&index);
    // Without creation times (manifests), namespace/name decides.
    for loser in [
        key(ObjectKind::RouteKey, "b-border"),
        ObjectKey { kind: ObjectKind::RouteKey, namespace: "intruder".into(), name: "steal".into() },
    ] {
        let duplicate = compilation.condition(&loser, ConditionType::Conflict).unwrap();
        assert_eq!(duplicate.reason, "DuplicateNodeId");
        assert!(duplicate.message.ends_with("RouteKey fabric/a-border wins"), "{}", duplicate.message);
    }
    let degraded = compilation.condition(&key(ObjectKind::RouteKey, "eu-2"), ConditionType::Degraded).unwrap();
    assert_eq!((degraded.status, degraded.reason.as_str()), (ConditionStatus::True, "KeyRefused"));
    assert!(
        degraded.message.starts_with("spec.externalKeys[0]: key zero of eu-2: a weak key: a point of small order"),
        "{}",
        degraded.message
    );
    assert_eq!(compilation.sidecars.len(), 3, "a refused key does not invalidate any sidecar");
    assert!(compilation.sidecars.values().all(|s| s.config.security.trusted_keys.is_empty()));
}

#[test]
fn the_signing_version_settings_of_a_route_policy_reach_the_sidecars() {
    let mut index = three_sidecars();
    let mut policy = route_policy("upgrade", 0, all());
    policy.spec.security.sign_v1 = true;
    index.apply(policy.clone()).unwrap();
    let compilation = compile(&index);
    let security = &compilation.sidecars["eu-1"].config.security;
    assert!(security.sign_v1 && !security.refuse_v1_messages);
    // Written only when set: sidecars that predate them read the config.
    assert!(compilation.sidecars["eu-1"].text.contains(r#""signV1":true"#));
    policy.spec.security.sign_v1 = false;
    policy.spec.security.refuse_v1_messages = true;
    index.apply(policy).unwrap();
    let compilation = compile(&index);
    assert!(compilation.sidecars["eu-1"].config.security.refuse_v1_messages);
    assert!(!compilation.sidecars["eu-1"].text.contains("signV1"));
}

#[test]
fn an_object_breaking_a_rule_is_not_accepted_and_left_out() {
    let mut index = three_sidecars();
    let mut broken = route_policy("broken", 100, all());
    broken.spec.tie_breakers = Some(vec![TieBreaker::Latency, TieBreaker::Latency]);
    broken.spec.stability.hold_down = Some(GoDuration::new("5 minutes"));
    index.apply(broken).unwrap();
    index.apply(route_policy("fine", 0, all())).unwrap();
    let compilation = compile(&index);
    let broken = key(ObjectKind::RoutePolicy, "broken");
    let accepted = compilation.condition(&broken, ConditionType::Accepted).unwrap();
    assert_eq!((accepted.status, accepted.reason.as_str()), (ConditionStatus::False, "Invalid"));
    assert!(
        accepted.message.contains(&format!("spec.tieBreakers: {}", rules::TIE_BREAKERS_UNIQUE.message)),
        "{}",
        accepted.message
    );
    assert!(
        accepted
            .message
            .contains(&format!("spec.stability.holdDown: {} (\"5 minutes\"", rules::DURATION_FORMAT.message)),
        "{}",
        accepted.message
    );
    let fields: BTreeSet<&str> = compilation
        .problems
        .iter()
        .filter(|p| p.object.as_ref() == Some(&broken))
        .filter_map(|p| p.field.as_deref())
        .collect();
    assert_eq!(fields, BTreeSet::from(["spec.stability.holdDown", "spec.tieBreakers"]));
    assert!(compilation.sidecars["eu-1"].sources.contains(&key(ObjectKind::RoutePolicy, "fine")));
}

#[test]
fn a_config_failing_validation_is_withheld_and_its_sources_are_told() {
    let mut index = three_sidecars();
    let long_name = "n".repeat(300);
    index.upsert_sidecar(sidecar(NS, &long_name, &[("region", "far")]));
    index.apply(route_policy("all", 0, all())).unwrap();
    let compilation = compile(&index);
    assert!(!compilation.sidecars.contains_key(long_name.as_str()), "no invalid config is emitted");
    assert!(compilation.sidecars.contains_key("eu-1"), "other sidecars are unaffected");
    let problem = compilation.problems.iter().find(|p| p.field.as_deref() == Some("nodeId")).unwrap();
    assert_eq!(problem.severity, Severity::Error);
    assert!(problem.related.contains(&key(ObjectKind::RoutePolicy, "all")));
    let degraded = compilation.condition(&key(ObjectKind::RoutePolicy, "all"), ConditionType::Degraded).unwrap();
    assert_eq!((degraded.status, degraded.reason.as_str()), (ConditionStatus::True, "SidecarConfigInvalid"));
}

#[test]
fn area_members_get_link_state_with_the_whole_namespace_graph() {
    let mut index = three_sidecars();
    let mut core = area("core", "core", labels(&[("role", "border")]), &[]);
    core.spec.ecmp_max_paths = 8;
    let mut eu = area("eu", "eu", LabelSelector::default(), &["core"]);
    eu.spec.summary_filters = vec![SummaryFilterSpec {
        deny_destinations: vec!["secret-*".into()],
        deny_source_areas: vec!["nowhere".into()],
        ..SummaryFilterSpec::new("core")
    }];
    eu.spec.member_selector = labels(&[("region", "eu")]);
    eu.spec.max_summary_entries = Some(50);
    index.apply(core).unwrap();
    index.apply(eu).unwrap();
    let mut also_border = index.sidecars().find(|s| s.node_id.as_str() == "border").unwrap().clone();
    also_border.labels.insert("region".into(), "eu".into());
    index.upsert_sidecar(also_border);
    let compilation = compile(&index);

    let border = &compilation.sidecars["border"];
    let link_state = border.link_state().unwrap();
    assert_eq!(border.link_state_areas().iter().map(|a| a.as_str()).collect::<Vec<_>>(), ["core", "eu"]);
    assert_eq!(link_state.max_paths, 8, "the largest ECMP of its areas");
    assert_eq!(link_state.mode, EngineRoutingMode::PreferLinkState);
    let areas: Vec<(&str, Vec<&str>, Option<usize>)> = link_state
        .areas
        .iter()
        .map(|a| (a.id.as_str(), a.parents.iter().map(|p| p.as_str()).collect(), a.max_summary_entries))
        .collect();
    assert_eq!(areas, [("core", vec![], None), ("eu", vec!["core"], Some(50))]);
    assert_eq!(link_state.summary_filters.len(), 1);
    assert!(link_state.summary_filters[0].deny_source_areas.is_empty(), "unknown area dropped");
    let degraded = compilation.condition(&key(ObjectKind::LinkStateArea, "eu"), ConditionType::Degraded).unwrap();
    assert_eq!(degraded.reason, "UnknownArea");
    assert!(degraded.message.contains("denySourceAreas: area nowhere is not defined"), "{}", degraded.message);

    assert_eq!(compilation.sidecars["eu-1"].link_state_areas().iter().map(|a| a.as_str()).collect::<Vec<_>>(), ["eu"]);
    assert!(compilation.sidecars.values().all(|s| s.link_state().is_none_or(|l| l.validate().is_ok())));
}

#[test]
fn an_area_cycle_degrades_the_areas_in_it_and_ignores_their_parent_links() {
    let mut index = three_sidecars();
    index.apply(area("a", "a", all(), &["b"])).unwrap();
    index.apply(area("b", "b", all(), &["c"])).unwrap();
    index.apply(area("c", "c", all(), &["a", "root"])).unwrap();
    index.apply(area("root", "root", all(), &[])).unwrap();
    let compilation = compile(&index);
    for name in ["a", "b", "c"] {
        let degraded = compilation.condition(&key(ObjectKind::LinkStateArea, name), ConditionType::Degraded).unwrap();
        assert_eq!((degraded.status, degraded.reason.as_str()), (ConditionStatus::True, "AreaCycle"), "{name}");
        assert!(degraded.message.contains("areas a, b, c form a cycle"), "{}", degraded.message);
        assert_eq!(degraded.related.len(), 2);
    }
    assert_eq!(
        status_of(&compilation, &key(ObjectKind::LinkStateArea, "root"), ConditionType::Degraded),
        ConditionStatus::False
    );
    let link_state = compilation.sidecars["eu-1"].link_state().unwrap();
    let c = link_state.areas.iter().find(|a| a.id.as_str() == "c").unwrap();
    assert_eq!(c.parents.iter().map(|p| p.as_str()).collect::<Vec<_>>(), ["root"], "links out of the cycle stay");
    link_state.validate().unwrap();
}

#[test]
fn duplicate_area_ids_and_different_modes_are_conflicts() {
    let mut index = three_sidecars();
    index.apply(area("x-core", "core", all(), &[])).unwrap();
    index.apply(area("y-core", "core", all(), &[])).unwrap();
    let mut eu = area("eu", "eu", labels(&[("region", "eu")]), &[]);
    eu.spec.mode = RoutingMode::LinkStateOnly;
    index.apply(eu).unwrap();
    let compilation = compile(&index);
    let duplicate = compilation.condition(&key(ObjectKind::LinkStateArea, "y-core"), ConditionType::Conflict).unwrap();
    assert_eq!(duplicate.reason, "DuplicateAreaId");
    assert!(
        duplicate.message.starts_with("areaId core defined twice with LinkStateArea fabric/x-core"),
        "{}",
        duplicate.message
    );
    let mismatch = compilation.condition(&key(ObjectKind::LinkStateArea, "eu"), ConditionType::Conflict).unwrap();
    assert_eq!(mismatch.reason, "ModeMismatch");
    assert!(mismatch.message.contains("with LinkStateArea fabric/x-core on sidecar(s) eu-1, eu-2: this object wins"));
    let loser = compilation.condition(&key(ObjectKind::LinkStateArea, "x-core"), ConditionType::Conflict).unwrap();
    assert!(loser.message.contains("LinkStateArea fabric/eu wins"), "{}", loser.message);
    let eu_1 = compilation.sidecars["eu-1"].link_state().unwrap();
    assert_eq!(eu_1.mode, EngineRoutingMode::LinkStateOnly, "the smallest namespace/name (eu) governs");
    assert!(compilation.sidecars["border"].link_state().is_some_and(|l| l.mode == EngineRoutingMode::PreferLinkState));
}

#[test]
fn every_object_gets_the_condition_types_of_its_kind() {
    let manifests = manifests::load_dir(&examples().join("manifests")).unwrap();
    let compilation = compile(&manifests.index);
    assert_eq!(compilation.conditions.len(), 10);
    for (object, conditions) in &compilation.conditions {
        let types: Vec<ConditionType> = conditions.iter().map(|c| c.type_).collect();
        let expected = if object.kind == ObjectKind::NeighborPolicy {
            vec![
                ConditionType::Accepted,
                ConditionType::Conflict,
                ConditionType::NeighborNotFound,
                ConditionType::Degraded,
            ]
        } else {
            vec![ConditionType::Accepted, ConditionType::Conflict, ConditionType::Degraded]
        };
        assert_eq!(types, expected, "{object}");
        assert_eq!(conditions[0].status, ConditionStatus::True, "{object} accepted");
    }
}

fn examples() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../examples"))
}

#[test]
fn the_example_fabric_compiles_cleanly_and_every_config_validates() {
    let manifests = manifests::load_dir(&examples().join("manifests")).unwrap();
    assert!(manifests.issues.is_empty(), "{:#?}", manifests.issues);
    let compilation = compile(&manifests.index);
    assert!(!compilation.has_errors(), "{:#?}\n{:#?}", compilation.problems, compilation.conditions);
    assert_eq!(compilation.sidecars.len(), 5);
    for (node, sidecar) in &compilation.sidecars {
        sidecar.config.validate().unwrap_or_else(|e| panic!("{node}: {e}"));
        let version = sidecar.version();
        assert_eq!(version.len(), 16, "{node}");
        assert!(version.bytes().all(|b| b.is_ascii_hexdigit()));
        let reparsed = fabric_core::SidecarConfig::from_yaml(&sidecar.config.to_yaml()).unwrap();
        assert_eq!(reparsed, sidecar.config, "{node} round-trips through YAML");
    }
}

/// One watch event, replayable.
type Event = Box<dyn Fn(&mut Index)>;

/// Builds an index from the example fabric, applying events in `order`.
fn index_in_order(order: &[usize]) -> Index {
    let loaded = manifests::load_dir(&examples().join("manifests")).unwrap().index;
    let mut events: Vec<Event> = Vec::new();
    for sidecar in loaded.sidecars() {
        let sidecar = sidecar.clone();
        events.push(Box::new(move |index| {
            index.upsert_sidecar(sidecar.clone());
        }));
    }
    macro_rules! objects {
        ($kind:ty) => {
            for (_, object) in loaded.objects::<$kind>() {
                let object = object.clone();
                events.push(Box::new(move |index| {
                    index.apply(object.clone()).unwrap();
                }));
            }
        };
    }
    objects!(RoutePolicy);
    objects!(NeighborPolicy);
    objects!(RouteKey);
    objects!(LinkStateArea);
    let mut index = Index::new();
    for &i in order {
        events[i % events.len()](&mut index);
    }
    assert_eq!(index.sidecars().count(), 5);
    index
}

#[test]
fn compilation_is_byte_for_byte_deterministic_whatever_the_event_order() {
    let count = 15;
    let forward: Vec<usize> = (0..count).collect();
    let backward: Vec<usize> = (0..count).rev().collect();
    // A fixed permutation, with some events repeated (re-applies).
    let shuffled: Vec<usize> = (0..count).map(|i| (i * 7 + 3) % count).chain([2, 9, 14]).collect();
    let render = |index: &Index| compile(index).to_yaml().unwrap();
    let reference = render(&index_in_order(&forward));
    assert_eq!(render(&index_in_order(&backward)), reference);
    assert_eq!(render(&index_in_order(&shuffled)), reference);
    assert_eq!(render(&index_in_order(&forward)), reference, "compiling twice gives the same bytes");
}

#[test]
fn the_version_changes_with_the_content_and_only_with_it() {
    let mut index = three_sidecars();
    index.apply(route_policy("all", 0, all())).unwrap();
    let before = compile(&index);
    let mut changed = route_policy("all", 0, all());
    changed.spec.import.tags.deny = vec!["bronze".into()];
    index.apply(changed).unwrap();
    let after = compile(&index);
    assert_ne!(before.sidecars["eu-1"].version(), after.sidecars["eu-1"].version());
    // An unrelated label change does not touch eu-1's config.
    let mut border = index.sidecars().find(|s| s.node_id.as_str() == "border").unwrap().clone();
    border.labels.insert("unrelated".into(), "x".into());
    index.upsert_sidecar(border);
    assert_eq!(compile(&index).sidecars["eu-1"].version(), after.sidecars["eu-1"].version());
}

#[test]
fn the_text_sent_is_the_config_with_its_version() {
    let mut index = Index::new();
    index.upsert_sidecar(SidecarInfo {
        node_id: NodeId::from("a"),
        namespace: "fabric".into(),
        name: "a".into(),
        labels: Default::default(),
        peer_address: None,
        service_account: None,
    });
    let compilation = compile(&index);
    let compiled = &compilation.sidecars[&NodeId::from("a")];
    assert_eq!(&*compiled.text, serde_json::to_string(&compiled.config).unwrap());
    let read = fabric_core::SidecarConfig::from_yaml(&compiled.text).unwrap();
    assert_eq!(read, compiled.config, "the sidecar reads the JSON as YAML");
    assert_eq!(compiled.version().len(), 16);
}
