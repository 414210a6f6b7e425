//! Every CEL rule (`x-kubernetes-validations`) in the generated CRDs is
//! compiled and evaluated with cel-rust against sample objects, and the
//! verdict must equal the Rust mirror's (`fabric_operator_core::validation`).
//!
//! The samples are every combination of a set of mutations of a valid
//! object, so each rule is seen holding and failing, alone and together.
//! Transition rules (`oldSelf`) are evaluated on (old, new) pairs the same
//! way the API server does on update: only where the old object has a
//! value at the rule's path. cel-rust evaluates all constructs used here
//! (`has`, `all`, `exists_one`, `in`, `size`, `duration`, `timestamp`,
//! `oldSelf` bound as a variable), so no rule is left to a unit test alone.

use std::collections::BTreeSet;
use std::sync::Arc;

use cel::objects::{Key, Map};
use cel::{Context, Program, Value as CelValue};
use fabric_operator_core::api::duration::GoDuration;
use fabric_operator_core::api::{
    DampeningSpec, ExternalKey, KeyManagement, LinkStateArea, LinkStateAreaSpec, NeighborPolicy, NeighborPolicySpec,
    NeighborSpec, RouteFilter, RouteKey, RouteKeySpec, RoutePolicy, RoutePolicySpec, RoutingMode, SummaryFilterSpec,
    TieBreaker, rules,
};
use fabric_operator_core::validation::{
    cel_messages, check_link_state_area, check_neighbor_policy, check_route_key, check_route_key_update,
    check_route_policy,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, LabelSelectorRequirement};
use kube::CustomResourceExt;
use serde_json::Value;

#[derive(Clone, Debug, PartialEq)]
enum Step {
    Property(String),
    Items,
}

#[derive(Clone, Debug)]
struct Rule {
    path: Vec<Step>,
    rule: String,
    message: String,
}

impl Rule {
    fn is_transition(&self) -> bool {
        self.rule.contains("oldSelf")
    }
}

fn collect_rules(schema: &Value, path: &mut Vec<Step>, out: &mut Vec<Rule>) {
    for rule in schema.get("x-kubernetes-validations").and_then(Value::as_array).into_iter().flatten() {
        out.push(Rule {
            path: path.clone(),
            rule: rule["rule"].as_str().expect("rule text").to_owned(),
            message: rule["message"].as_str().expect("every rule has a message").to_owned(),
        });
    }
    for (name, property) in schema.get("properties").and_then(Value::as_object).into_iter().flatten() {
        path.push(Step::Property(name.clone()));
        collect_rules(property, path, out);
        path.pop();
    }
    if let Some(items) = schema.get("items") {
        path.push(Step::Items);
        collect_rules(items, path, out);
        path.pop();
    }
}

/// The rules of `K`'s CRD as generated (`crds::all`, which adds the
/// selector and integer constraints to the derived schema).
fn rules_of<K: CustomResourceExt>() -> Vec<Rule> {
    let name = K::crd_name();
    let crd =
        fabric_operator_core::crds::all().into_iter().find(|c| c.metadata.name.as_deref() == Some(name)).expect("CRD");
    let schema = crd.spec.versions[0].schema.as_ref().and_then(|s| s.open_api_v3_schema.as_ref()).expect("schema");
    let schema = serde_json::to_value(schema).expect("schema serializes");
    let mut rules = Vec::new();
    collect_rules(&schema, &mut Vec::new(), &mut rules);
    rules
}

/// The values at `path` (a list step fans out), with the parallel old value
/// for transition rules (matched by position, as for atomic lists).
fn values_at<'a>(value: &'a Value, path: &[Step]) -> Vec<&'a Value> {
    let Some((step, rest)) = path.split_first() else { return vec![value] };
    match step {
        Step::Property(name) => value.get(name).map(|v| values_at(v, rest)).unwrap_or_default(),
        Step::Items => value.as_array().into_iter().flatten().flat_map(|item| values_at(item, rest)).collect(),
    }
}

/// JSON to CEL the way the API server types it: integers are `int`.
fn to_cel(value: &Value) -> CelValue {
    match value {
        Value::Null => CelValue::Null,
        Value::Bool(b) => CelValue::Bool(*b),
        Value::Number(n) => match n.as_i64() {
            Some(i) => CelValue::Int(i),
            None => CelValue::Float(n.as_f64().expect("a JSON number")),
        },
        Value::String(s) => CelValue::String(Arc::new(s.clone())),
        Value::Array(items) => CelValue::List(Arc::new(items.iter().map(to_cel).collect())),
        Value::Object(fields) => {
            let map = fields.iter().map(|(k, v)| (Key::String(Arc::new(k.clone())), to_cel(v))).collect();
            CelValue::Map(Map { map: Arc::new(map) })
        }
    }
}

fn evaluate(rule: &Rule, this: &Value, old: Option<&Value>) -> bool {
    let program = Program::compile(&rule.rule).unwrap_or_else(|e| panic!("cel-rust cannot parse {:?}: {e}", rule.rule));
    let mut context = Context::default();
    context.add_variable_from_value("self", to_cel(this));
    if let Some(old) = old {
        context.add_variable_from_value("oldSelf", to_cel(old));
    }
    match program.execute(&context) {
        Ok(CelValue::Bool(holds)) => holds,
        other => panic!("rule {:?} on {this} gave {other:?}", rule.rule),
    }
}

/// Messages of the rules that fail on `object` (creation), or on the
/// update `old` -> `object` (transition rules only).
fn cel_verdict(rules: &[Rule], object: &Value, old: Option<&Value>) -> BTreeSet<String> {
    let mut failed = BTreeSet::new();
    for rule in rules {
        match (rule.is_transition(), old) {
            (false, None) => {
                for this in values_at(object, &rule.path) {
                    if !evaluate(rule, this, None) {
                        failed.insert(rule.message.clone());
                    }
                }
            }
            (true, Some(old)) => {
                let new_values = values_at(object, &rule.path);
                let old_values = values_at(old, &rule.path);
                for (this, before) in new_values.iter().zip(old_values.iter()) {
                    if !evaluate(rule, this, Some(before)) {
                        failed.insert(rule.message.clone());
                    }
                }
            }
            _ => {}
        }
    }
    failed
}

fn owned(messages: BTreeSet<&'static str>) -> BTreeSet<String> {
    messages.into_iter().map(str::to_owned).collect()
}

/// A named change to a valid spec that may break rules.
type Mutation<S> = (&'static str, fn(&mut S));

/// Applies every subset of `mutations` to `base` and compares verdicts.
/// Returns the messages seen failing, to check every rule was exercised.
fn check_all_combinations<S: Clone>(
    base: &S,
    mutations: &[Mutation<S>],
    rules: &[Rule],
    object: impl Fn(&S) -> Value,
    mirror: impl Fn(&S) -> BTreeSet<&'static str>,
) -> BTreeSet<String> {
    let mut seen = BTreeSet::new();
    for mask in 0u32..(1 << mutations.len()) {
        let mut spec = base.clone();
        let mut applied = Vec::new();
        for (i, (name, mutate)) in mutations.iter().enumerate() {
            if mask & (1 << i) != 0 {
                mutate(&mut spec);
                applied.push(*name);
            }
        }
        let cel = cel_verdict(rules, &object(&spec), None);
        let rust = owned(mirror(&spec));
        assert_eq!(cel, rust, "CEL and the Rust mirror disagree after mutations {applied:?}");
        seen.extend(cel);
    }
    seen
}

fn messages_of(rules: &[Rule]) -> BTreeSet<String> {
    rules.iter().map(|r| r.message.clone()).collect()
}

fn selector(key: &str, value: &str) -> LabelSelector {
    LabelSelector { match_labels: Some([(key.to_owned(), value.to_owned())].into()), match_expressions: None }
}

/// Breaks every selector rule at once: a malformed label key and value, a
/// malformed expression key, `In` without values.
fn break_selector(selector: &mut LabelSelector) {
    selector.match_labels = Some([("bad key".into(), "-v".into())].into());
    selector.match_expressions = Some(vec![
        LabelSelectorRequirement { key: "/x".into(), operator: "Exists".into(), values: None },
        LabelSelectorRequirement { key: "a".into(), operator: "In".into(), values: Some(vec![]) },
    ]);
}

fn json<T: serde::Serialize>(value: &T) -> Value {
    serde_json::to_value(value).expect("serializes")
}

#[test]
fn route_policy_rules_match_the_mirror() {
    let rules = rules_of::<RoutePolicy>();
    let base = RoutePolicySpec {
        sidecar_selector: selector("role", "edge"),
        priority: 1,
        mode: Default::default(),
        import: RouteFilter::default(),
        export: RouteFilter::default(),
        tie_breakers: Some(vec![TieBreaker::Latency, TieBreaker::HopCount]),
        security: Default::default(),
        stability: fabric_operator_core::api::StabilitySpec {
            hold_down: Some(GoDuration::new("5s")),
            dampening: Some(DampeningSpec::default()),
        },
    };
    let mutations: &[Mutation<RoutePolicySpec>] = &[
        ("duplicate tie-breaker", |s| s.tie_breakers.get_or_insert_default().push(TieBreaker::Latency)),
        ("reuse >= suppress", |s| {
            if let Some(d) = s.stability.dampening.as_mut() {
                d.reuse_threshold = d.suppress_threshold;
            }
        }),
        ("half-life zero", |s| {
            if let Some(d) = s.stability.dampening.as_mut() {
                d.half_life = GoDuration::new("0s");
            }
        }),
        ("max-suppress below half-life", |s| {
            if let Some(d) = s.stability.dampening.as_mut() {
                d.max_suppress = GoDuration::new("1m30s");
                d.half_life = GoDuration::new("90m");
            }
        }),
        ("no dampening, no tie-breakers", |s| {
            s.stability.dampening = None;
            s.tie_breakers = None;
        }),
        ("malformed half-life", |s| {
            if let Some(d) = s.stability.dampening.as_mut() {
                d.half_life = GoDuration::new("15 minutes");
            }
        }),
        ("hold-down units out of order", |s| s.stability.hold_down = Some(GoDuration::new("30m1h"))),
        ("selector: In without values, Exists with values", |s| {
            s.sidecar_selector.match_expressions = Some(vec![
                LabelSelectorRequirement { key: "a".into(), operator: "In".into(), values: Some(vec![]) },
                LabelSelectorRequirement { key: "b".into(), operator: "Exists".into(), values: Some(vec!["x".into()]) },
                LabelSelectorRequirement { key: "c".into(), operator: "Like".into(), values: Some(vec!["x".into()]) },
            ])
        }),
        ("selector: malformed keys and values", |s| {
            s.sidecar_selector.match_labels = Some([("bad key".into(), "-v".into())].into());
            s.sidecar_selector.match_expressions =
                Some(vec![LabelSelectorRequirement { key: "/x".into(), operator: "Exists".into(), values: None }]);
        }),
    ];
    let object = |spec: &RoutePolicySpec| json(&RoutePolicy::new("p", spec.clone()));
    let seen = check_all_combinations(&base, mutations, &rules, object, |s| cel_messages(&check_route_policy(s)));
    assert_eq!(seen, messages_of(&rules), "every RoutePolicy rule was seen failing");
}

#[test]
fn neighbor_policy_rules_match_the_mirror() {
    let rules = rules_of::<NeighborPolicy>();
    let base = NeighborPolicySpec {
        sidecar_selector: selector("region", "eu"),
        mode: Default::default(),
        neighbors: vec![NeighborSpec::node("eu-2"), NeighborSpec::selected(selector("region", "eu"))],
    };
    let mutations: &[Mutation<NeighborPolicySpec>] = &[
        ("entry with both", |s| s.neighbors[0].selector = Some(selector("a", "b"))),
        ("entry with neither", |s| s.neighbors.push(NeighborSpec { node_id: None, ..NeighborSpec::node("x") })),
        ("export without advertise", |s| {
            s.neighbors[1].advertise = false;
            s.neighbors[1].export = Some(RouteFilter::default());
        }),
        ("duplicate node id", |s| s.neighbors.push(NeighborSpec::node("eu-2"))),
        ("receive-only neighbor", |s| {
            s.neighbors.push(NeighborSpec { advertise: false, ..NeighborSpec::node("eu-9") })
        }),
        ("malformed neighbor selector", |s| break_selector(s.neighbors[1].selector.get_or_insert_default())),
    ];
    let object = |spec: &NeighborPolicySpec| json(&NeighborPolicy::new("n", spec.clone()));
    let seen = check_all_combinations(&base, mutations, &rules, object, |s| cel_messages(&check_neighbor_policy(s)));
    assert_eq!(seen, messages_of(&rules), "every NeighborPolicy rule was seen failing");
}

fn key(id: &str, from: Option<&str>, until: Option<&str>) -> ExternalKey {
    ExternalKey {
        key_id: id.to_owned(),
        public_key: "f3LZc9EXICJwg92vpsL6sfFc3ErII+y/fcB+e1aREaA=".to_owned(),
        valid_from: from.map(str::to_owned),
        valid_until: until.map(str::to_owned),
    }
}

fn route_key_base() -> RouteKeySpec {
    RouteKeySpec {
        node_id: "eu-1".into(),
        service_account_name: None,
        algorithm: Default::default(),
        management: KeyManagement::Operator,
        rotation_interval: GoDuration::new("720h"),
        overlap: GoDuration::new("24h"),
        external_keys: vec![key("k1", Some("2025-01-01T00:00:00Z"), Some("2026-01-01T00:00:00Z"))],
    }
}

#[test]
fn route_key_rules_match_the_mirror() {
    let rules = rules_of::<RouteKey>();
    let mutations: &[Mutation<RouteKeySpec>] = &[
        ("overlap >= rotation", |s| s.overlap = GoDuration::new("720h")),
        ("malformed overlap", |s| s.overlap = GoDuration::new("99999999999999h")),
        ("external management", |s| s.management = KeyManagement::External),
        ("no external keys", |s| s.external_keys.clear()),
        ("duplicate key id", |s| s.external_keys.push(key("k1", None, None))),
        // Same instant written with an offset: not strictly before.
        ("validity not ordered", |s| {
            s.external_keys.push(key("k2", Some("2025-01-01T02:00:00+02:00"), Some("2025-01-01T00:00:00Z")))
        }),
    ];
    let object = |spec: &RouteKeySpec| json(&RouteKey::new("k", spec.clone()));
    let seen =
        check_all_combinations(&route_key_base(), mutations, &rules, object, |s| cel_messages(&check_route_key(s)));
    let creation: BTreeSet<String> = rules.iter().filter(|r| !r.is_transition()).map(|r| r.message.clone()).collect();
    assert_eq!(seen, creation, "every RouteKey creation rule was seen failing");
}

#[test]
fn route_key_node_id_transition_rule_matches_the_mirror() {
    let rules = rules_of::<RouteKey>();
    assert!(rules.iter().any(|r| r.is_transition() && r.message == rules::ROUTE_KEY_NODE_ID_IMMUTABLE.message));
    let old = route_key_base();
    let object = |spec: &RouteKeySpec| json(&RouteKey::new("k", spec.clone()));
    let mut renamed = old.clone();
    renamed.node_id = "eu-2".into();
    let mut rotated = old.clone();
    rotated.rotation_interval = GoDuration::new("48h");
    for new in [&old, &renamed, &rotated] {
        let cel = cel_verdict(&rules, &object(new), Some(&object(&old)));
        let rust = owned(cel_messages(&check_route_key_update(&old, new)));
        assert_eq!(cel, rust, "update to node id {}", new.node_id);
    }
    let cel = cel_verdict(&rules, &object(&renamed), Some(&object(&old)));
    assert_eq!(cel, BTreeSet::from([rules::ROUTE_KEY_NODE_ID_IMMUTABLE.message.to_owned()]));
}

#[test]
fn link_state_area_rules_match_the_mirror() {
    let rules = rules_of::<LinkStateArea>();
    let base = LinkStateAreaSpec {
        area_id: "eu".into(),
        mode: RoutingMode::PreferLinkState,
        member_selector: selector("region", "eu"),
        parents: vec!["core".into()],
        summary_filters: vec![SummaryFilterSpec::new("core"), SummaryFilterSpec::new("eu")],
        ecmp_max_paths: 4,
        max_summary_entries: Some(10),
    };
    let mutations: &[Mutation<LinkStateAreaSpec>] = &[
        ("malformed member selector", |s| break_selector(&mut s.member_selector)),
        ("own parent", |s| s.parents.push("eu".into())),
        ("duplicate parent", |s| s.parents.push("core".into())),
        ("ecmp zero", |s| s.ecmp_max_paths = 0),
        ("ecmp 65", |s| s.ecmp_max_paths = 65),
        ("duplicate filter target", |s| s.summary_filters.push(SummaryFilterSpec::new("core"))),
        ("filter target elsewhere", |s| s.summary_filters.push(SummaryFilterSpec::new("us"))),
        ("no parents", |s| s.parents.clear()),
    ];
    let object = |spec: &LinkStateAreaSpec| json(&LinkStateArea::new("a", spec.clone()));
    let seen = check_all_combinations(&base, mutations, &rules, object, |s| cel_messages(&check_link_state_area(s)));
    assert_eq!(seen, messages_of(&rules), "every LinkStateArea rule was seen failing");
}

#[test]
fn every_rule_in_the_crds_is_a_known_rule_with_its_message() {
    let mut found = BTreeSet::new();
    for rule in rules_of::<RoutePolicy>()
        .into_iter()
        .chain(rules_of::<NeighborPolicy>())
        .chain(rules_of::<RouteKey>())
        .chain(rules_of::<LinkStateArea>())
    {
        let known = rules::ALL.iter().find(|r| r.rule == rule.rule);
        assert_eq!(known.map(|r| r.message), Some(rule.message.as_str()), "unknown rule {:?}", rule.rule);
        found.insert(rule.rule);
    }
    assert_eq!(found.len(), rules::ALL.len(), "every rule of api::rules is attached somewhere");
}
