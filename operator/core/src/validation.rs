//! The CRDs' validation rules in Rust: every CEL rule of `api::rules`
//! mirrored with the same message, plus the schema-level constraints
//! (patterns, ranges, selectors) the API server enforces from the OpenAPI
//! schema. The compiler refuses an object that breaks any of them, so
//! `analyze` on a folder and the API server agree, and an object that slips
//! past an API server without CEL support is still caught.

use std::collections::BTreeSet;
use std::fmt;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;

use crate::api::duration::GoDuration;
use crate::api::filter::{MAX_NAME_LENGTH, MAX_PATTERNS, MatchList, RouteFilter, TagRules};
use crate::api::link_state_area::{LinkStateAreaSpec, MAX_AREA_REFERENCES};
use crate::api::neighbor_policy::{MAX_NEIGHBOR_ENTRIES, NeighborPolicySpec};
use crate::api::route_key::{MAX_EXTERNAL_KEYS, RouteKeySpec};
use crate::api::route_policy::RoutePolicySpec;
use crate::api::rules::{self, CelRule};
use crate::time::parse_rfc3339_millis;

/// One broken rule: where, what, and which CEL rule when it is one.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Violation {
    /// Path from the object root, e.g. `spec.neighbors[2]`.
    pub field: String,
    pub message: String,
    /// The CEL rule this mirrors; `None` for schema-level constraints.
    pub rule: Option<CelRule>,
}

impl Violation {
    fn cel(field: impl Into<String>, rule: CelRule) -> Self {
        Self { field: field.into(), message: rule.message.to_owned(), rule: Some(rule) }
    }

    fn schema(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self { field: field.into(), message: message.into(), rule: None }
    }

    /// An object the operator cannot decode: `field` is where, `error`
    /// what (e.g. an integer beyond its type's range, stored under a CRD of
    /// an older version that did not bound it).
    pub fn unreadable(field: &str, error: &str) -> Self {
        Self::schema(field, format!("cannot be read by the operator: {error}; fix or delete this object"))
    }
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.field, self.message)
    }
}

/// Collects violations while walking one object.
#[derive(Default)]
struct Checker {
    violations: Vec<Violation>,
}

impl Checker {
    fn cel(&mut self, holds: bool, field: impl Into<String>, rule: CelRule) {
        if !holds {
            self.violations.push(Violation::cel(field, rule));
        }
    }

    fn schema(&mut self, field: impl Into<String>, message: impl Into<String>) {
        self.violations.push(Violation::schema(field, message));
    }

    /// The rules `crds::constrain` adds to every label selector.
    fn selector(&mut self, field: &str, selector: &LabelSelector) {
        use crate::crds::{MAX_SELECTOR_EXPRESSIONS, MAX_SELECTOR_LABELS, MAX_SELECTOR_VALUES, SELECTOR_OPERATORS};
        let labels = selector.match_labels.as_ref();
        let labels_field = format!("{field}.matchLabels");
        if labels.is_some_and(|l| l.len() > MAX_SELECTOR_LABELS as usize) {
            self.schema(&labels_field, format!("at most {MAX_SELECTOR_LABELS} labels"));
        }
        self.cel(labels.into_iter().flatten().all(|(k, _)| is_label_key(k)), &labels_field, rules::SELECTOR_LABEL_KEYS);
        self.cel(
            labels.into_iter().flatten().all(|(_, v)| is_label_value(v)),
            &labels_field,
            rules::SELECTOR_LABEL_VALUES,
        );
        let expressions = selector.match_expressions.as_deref().unwrap_or_default();
        self.max_items(&format!("{field}.matchExpressions"), expressions.len(), MAX_SELECTOR_EXPRESSIONS);
        for (i, requirement) in expressions.iter().enumerate() {
            let at = format!("{field}.matchExpressions[{i}]");
            if !is_label_key(&requirement.key) {
                self.schema(format!("{at}.key"), format!("{:?} is not a label key", requirement.key));
            }
            let operator = requirement.operator.as_str();
            if !SELECTOR_OPERATORS.contains(&operator) {
                self.schema(
                    format!("{at}.operator"),
                    format!("{operator:?} is not one of In, NotIn, Exists, DoesNotExist"),
                );
            }
            let values = requirement.values.as_deref().unwrap_or_default();
            let values_fit = match operator {
                "In" | "NotIn" => !values.is_empty(),
                "Exists" | "DoesNotExist" => values.is_empty(),
                _ => true,
            };
            self.cel(values_fit, &at, rules::SELECTOR_EXPRESSION_VALUES);
            self.max_items(&format!("{at}.values"), values.len(), MAX_SELECTOR_VALUES);
            if values.iter().any(|v| v.len() > 63) {
                self.schema(format!("{at}.values"), "a value is longer than 63 bytes");
            }
        }
    }

    fn name(&mut self, field: &str, value: &str) {
        if value.is_empty() {
            self.schema(field, "must not be empty");
        } else if value.len() > MAX_NAME_LENGTH as usize {
            self.schema(field, format!("longer than {MAX_NAME_LENGTH} bytes"));
        }
    }

    fn max_items(&mut self, field: &str, len: usize, max: u32) {
        if len > max as usize {
            self.schema(field, format!("{len} entries, at most {max} allowed"));
        }
    }

    fn patterns(&mut self, field: &str, patterns: &[String]) {
        self.max_items(field, patterns.len(), MAX_PATTERNS);
        for (i, pattern) in patterns.iter().enumerate() {
            let body = pattern.strip_suffix('*').unwrap_or(pattern);
            if pattern.is_empty() || body.contains('*') {
                self.schema(
                    format!("{field}[{i}]"),
                    format!("{pattern:?}: a pattern is a name, optionally ending in one '*'"),
                );
            } else if pattern.len() > MAX_NAME_LENGTH as usize {
                self.schema(format!("{field}[{i}]"), format!("longer than {MAX_NAME_LENGTH} bytes"));
            }
        }
    }

    fn match_list(&mut self, field: &str, list: &MatchList) {
        if let Some(allow) = &list.allow {
            self.patterns(&format!("{field}.allow"), allow);
        }
        self.patterns(&format!("{field}.deny"), &list.deny);
    }

    fn tags(&mut self, field: &str, tags: &TagRules) {
        if let Some(allow_any) = &tags.allow_any {
            self.patterns(&format!("{field}.allowAny"), allow_any);
        }
        self.patterns(&format!("{field}.deny"), &tags.deny);
    }

    fn filter(&mut self, field: &str, filter: &RouteFilter) {
        self.match_list(&format!("{field}.advertisers"), &filter.advertisers);
        self.match_list(&format!("{field}.origins"), &filter.origins);
        self.match_list(&format!("{field}.destinations"), &filter.destinations);
        self.tags(&format!("{field}.tags"), &filter.tags);
        if filter.max_hop_count == Some(0) {
            self.schema(format!("{field}.maxHopCount"), "must be at least 1");
        }
    }

    /// The parsed duration, or the violation of the duration rule (its
    /// message, then what exactly is wrong).
    fn duration(&mut self, field: &str, value: &GoDuration) -> Option<std::time::Duration> {
        match value.parse() {
            Ok(duration) => Some(duration),
            Err(error) => {
                let rule = crate::api::duration::DURATION_FORMAT;
                let message = format!("{} ({error})", rule.message);
                self.violations.push(Violation { field: field.into(), message, rule: Some(rule) });
                None
            }
        }
    }

    fn timestamp(&mut self, field: &str, value: Option<&str>) -> Option<i64> {
        match parse_rfc3339_millis(value?) {
            Ok(millis) => Some(millis),
            Err(error) => {
                self.schema(field, error);
                None
            }
        }
    }

    fn finish(mut self) -> Vec<Violation> {
        self.violations.sort();
        self.violations.dedup();
        self.violations
    }
}

/// A label key ([`rules::LABEL_KEY_PATTERN`]): an optional DNS subdomain
/// prefix and `/`, then a name of 1 to 63 characters.
pub fn is_label_key(key: &str) -> bool {
    let (prefix, name) = match key.split_once('/') {
        Some((prefix, name)) => (Some(prefix), name),
        None => (None, key),
    };
    key.len() <= rules::LABEL_KEY_MAX_LENGTH as usize
        && prefix.is_none_or(|p| !p.is_empty() && p.split('.').all(is_dns_label))
        && !name.is_empty()
        && is_label_value(name)
}

/// A label value ([`rules::LABEL_VALUE_PATTERN`]): empty, or 1 to 63 of
/// `[-A-Za-z0-9_.]` beginning and ending with a letter or digit.
pub fn is_label_value(value: &str) -> bool {
    let bytes = value.as_bytes();
    value.len() <= 63
        && bytes.iter().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
        && bytes.first().is_none_or(u8::is_ascii_alphanumeric)
        && bytes.last().is_none_or(u8::is_ascii_alphanumeric)
}

/// One label of a DNS subdomain: `[a-z0-9]([-a-z0-9]*[a-z0-9])?`.
fn is_dns_label(label: &str) -> bool {
    let bytes = label.as_bytes();
    !bytes.is_empty()
        && bytes.iter().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'-')
        && bytes.first().is_some_and(|b| *b != b'-')
        && bytes.last().is_some_and(|b| *b != b'-')
}

/// True when every element of `items` (by `key`) occurs once, i.e. CEL's
/// `self.all(x, self.exists_one(y, key(y) == key(x)))`.
fn all_unique<'a, T, K: Ord + 'a>(items: &'a [T], key: impl Fn(&'a T) -> K) -> bool {
    let mut seen = BTreeSet::new();
    items.iter().all(|item| seen.insert(key(item)))
}

pub fn check_route_policy(spec: &RoutePolicySpec) -> Vec<Violation> {
    let mut check = Checker::default();
    check.selector("spec.sidecarSelector", &spec.sidecar_selector);
    check.filter("spec.import", &spec.import);
    check.filter("spec.export", &spec.export);
    if let Some(tie_breakers) = &spec.tie_breakers {
        check.max_items("spec.tieBreakers", tie_breakers.len(), 4);
        check.cel(all_unique(tie_breakers, |t| *t), "spec.tieBreakers", rules::TIE_BREAKERS_UNIQUE);
    }
    if let Some(allowed) = &spec.security.allowed_advertisers {
        let field = "spec.security.allowedAdvertisers";
        check.max_items(field, allowed.len(), 1024);
        for (i, advertiser) in allowed.iter().enumerate() {
            check.name(&format!("{field}[{i}]"), advertiser);
        }
        if !all_unique(allowed, |a| a.as_str()) {
            check.schema(field, "a set: no advertiser may be listed twice");
        }
    }
    if let Some(hold_down) = &spec.stability.hold_down {
        check.duration("spec.stability.holdDown", hold_down);
    }
    if let Some(damp) = &spec.stability.dampening {
        let field = "spec.stability.dampening";
        for (name, value) in [("suppressThreshold", damp.suppress_threshold), ("reuseThreshold", damp.reuse_threshold)]
        {
            if value < 1 {
                check.schema(format!("{field}.{name}"), "must be at least 1");
            }
        }
        check.cel(damp.reuse_threshold < damp.suppress_threshold, field, rules::DAMPENING_REUSE_BELOW_SUPPRESS);
        let half_life = check.duration(&format!("{field}.halfLife"), &damp.half_life);
        let max_suppress = check.duration(&format!("{field}.maxSuppress"), &damp.max_suppress);
        if let Some(half_life) = half_life {
            check.cel(!half_life.is_zero(), field, rules::DAMPENING_HALF_LIFE_POSITIVE);
            if let Some(max_suppress) = max_suppress {
                check.cel(max_suppress >= half_life, field, rules::DAMPENING_MAX_SUPPRESS_AT_LEAST_HALF_LIFE);
            }
        }
    }
    check.finish()
}

pub fn check_neighbor_policy(spec: &NeighborPolicySpec) -> Vec<Violation> {
    let mut check = Checker::default();
    check.selector("spec.sidecarSelector", &spec.sidecar_selector);
    check.max_items("spec.neighbors", spec.neighbors.len(), MAX_NEIGHBOR_ENTRIES);
    for (i, neighbor) in spec.neighbors.iter().enumerate() {
        let field = format!("spec.neighbors[{i}]");
        check.cel(
            neighbor.node_id.is_some() != neighbor.selector.is_some(),
            &field,
            rules::NEIGHBOR_NODE_ID_XOR_SELECTOR,
        );
        check.cel(neighbor.export.is_none() || neighbor.advertise, &field, rules::NEIGHBOR_EXPORT_NEEDS_ADVERTISE);
        if let Some(node_id) = &neighbor.node_id {
            check.name(&format!("{field}.nodeId"), node_id);
        }
        if let Some(selector) = &neighbor.selector {
            check.selector(&format!("{field}.selector"), selector);
        }
        let reliability = neighbor.link.reliability;
        if !(reliability.is_finite() && (0.0..=1.0).contains(&reliability)) {
            check.schema(format!("{field}.link.reliability"), format!("must be within [0, 1], got {reliability}"));
        }
        if let Some(import) = &neighbor.import {
            check.filter(&format!("{field}.import"), import);
        }
        if let Some(export) = &neighbor.export {
            check.filter(&format!("{field}.export"), export);
        }
    }
    let node_ids: Vec<&String> = spec.neighbors.iter().filter_map(|n| n.node_id.as_ref()).collect();
    check.cel(all_unique(&node_ids, |id| *id), "spec.neighbors", rules::NEIGHBOR_NODE_IDS_UNIQUE);
    check.finish()
}

pub fn check_route_key(spec: &RouteKeySpec) -> Vec<Violation> {
    let mut check = Checker::default();
    check.name("spec.nodeId", &spec.node_id);
    let rotation = check.duration("spec.rotationInterval", &spec.rotation_interval);
    let overlap = check.duration("spec.overlap", &spec.overlap);
    if let (Some(rotation), Some(overlap)) = (rotation, overlap) {
        check.cel(overlap < rotation, "spec", rules::ROUTE_KEY_OVERLAP_BELOW_ROTATION);
    }
    let external = spec.management == crate::api::KeyManagement::External;
    check.cel(!external || !spec.external_keys.is_empty(), "spec", rules::ROUTE_KEY_EXTERNAL_NEEDS_KEYS);
    check.max_items("spec.externalKeys", spec.external_keys.len(), MAX_EXTERNAL_KEYS);
    check.cel(
        all_unique(&spec.external_keys, |k| k.key_id.as_str()),
        "spec.externalKeys",
        rules::EXTERNAL_KEY_IDS_UNIQUE,
    );
    for (i, key) in spec.external_keys.iter().enumerate() {
        let field = format!("spec.externalKeys[{i}]");
        if key.key_id.is_empty() || key.key_id.len() > 64 {
            check.schema(format!("{field}.keyId"), "must be 1 to 64 bytes");
        }
        let well_formed = key.public_key.len() == 44
            && key.public_key.ends_with('=')
            && key.public_key[..43].bytes().all(|b| b.is_ascii_alphanumeric() || b == b'+' || b == b'/');
        if !well_formed {
            check.schema(
                format!("{field}.publicKey"),
                "must be the standard base64 of a 32-byte ed25519 key (44 characters)",
            );
        }
        let from = check.timestamp(&format!("{field}.validFrom"), key.valid_from.as_deref());
        let until = check.timestamp(&format!("{field}.validUntil"), key.valid_until.as_deref());
        if let (Some(from), Some(until)) = (from, until) {
            check.cel(from < until, &field, rules::EXTERNAL_KEY_VALIDITY_ORDERED);
        }
    }
    check.finish()
}

/// The transition rules of a RouteKey (CEL `oldSelf`), checked on update.
pub fn check_route_key_update(old: &RouteKeySpec, new: &RouteKeySpec) -> Vec<Violation> {
    let mut check = Checker::default();
    check.cel(old.node_id == new.node_id, "spec.nodeId", rules::ROUTE_KEY_NODE_ID_IMMUTABLE);
    check.finish()
}

pub fn check_link_state_area(spec: &LinkStateAreaSpec) -> Vec<Violation> {
    let mut check = Checker::default();
    check.name("spec.areaId", &spec.area_id);
    check.selector("spec.memberSelector", &spec.member_selector);
    check.cel(!spec.parents.contains(&spec.area_id), "spec", rules::AREA_NOT_OWN_PARENT);
    check.max_items("spec.parents", spec.parents.len(), MAX_AREA_REFERENCES);
    for (i, parent) in spec.parents.iter().enumerate() {
        check.name(&format!("spec.parents[{i}]"), parent);
    }
    check.cel(all_unique(&spec.parents, |p| p.as_str()), "spec.parents", rules::AREA_PARENTS_UNIQUE);
    check.cel((1..=64).contains(&spec.ecmp_max_paths), "spec.ecmpMaxPaths", rules::AREA_ECMP_RANGE);
    if spec.max_summary_entries == Some(0) {
        check.schema("spec.maxSummaryEntries", "must be at least 1");
    }
    check.max_items("spec.summaryFilters", spec.summary_filters.len(), MAX_AREA_REFERENCES);
    check.cel(
        all_unique(&spec.summary_filters, |f| f.target_area.as_str()),
        "spec.summaryFilters",
        rules::SUMMARY_TARGETS_UNIQUE,
    );
    let targets_known =
        spec.summary_filters.iter().all(|f| f.target_area == spec.area_id || spec.parents.contains(&f.target_area));
    check.cel(targets_known, "spec", rules::SUMMARY_TARGET_IS_SELF_OR_PARENT);
    for (i, filter) in spec.summary_filters.iter().enumerate() {
        let field = format!("spec.summaryFilters[{i}]");
        check.name(&format!("{field}.targetArea"), &filter.target_area);
        for (name, areas) in [
            ("allowSourceAreas", filter.allow_source_areas.as_deref().unwrap_or_default()),
            ("denySourceAreas", &filter.deny_source_areas),
        ] {
            check.max_items(&format!("{field}.{name}"), areas.len(), MAX_AREA_REFERENCES);
            for (j, area) in areas.iter().enumerate() {
                check.name(&format!("{field}.{name}[{j}]"), area);
            }
        }
        if let Some(allow) = &filter.allow_destinations {
            check.patterns(&format!("{field}.allowDestinations"), allow);
        }
        check.patterns(&format!("{field}.denyDestinations"), &filter.deny_destinations);
    }
    check.finish()
}

/// The messages of the CEL-mirrored violations, as a set (what a CEL
/// evaluation of the same object reports).
pub fn cel_messages(violations: &[Violation]) -> BTreeSet<&'static str> {
    violations.iter().filter_map(|v| v.rule.map(|r| r.message)).collect()
}

#[cfg(test)]
mod tests {
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelectorRequirement;

    use super::*;
    use crate::api::{ExternalKey, KeyManagement, NeighborSpec, SummaryFilterSpec};

    #[test]
    fn label_syntax_matches_the_rules_regular_expressions() {
        let key = regex::Regex::new(rules::LABEL_KEY_PATTERN).unwrap();
        let value = regex::Regex::new(rules::LABEL_VALUE_PATTERN).unwrap();
        let long = "a".repeat(63);
        let too_long = "a".repeat(64);
        for text in [
            "",
            "a",
            "A",
            "role",
            "app.kubernetes.io/name",
            "example.com/x",
            "-a",
            "a-",
            "a_b.c",
            "a/b/c",
            "/a",
            "Example.com/x",
            "a..b/c",
            "a.-b/c",
            "x/",
            "a b",
            &long,
            &too_long,
            "sub.example.com/A_b-c.D",
        ] {
            assert_eq!(is_label_key(text), key.is_match(text) && text.len() <= 317, "key {text:?}");
            assert_eq!(is_label_value(text), value.is_match(text), "value {text:?}");
        }
    }

    #[test]
    fn selector_rules_name_the_bad_requirement() {
        let requirement = |key: &str, operator: &str, values: &[&str]| LabelSelectorRequirement {
            key: key.into(),
            operator: operator.into(),
            values: Some(values.iter().map(|v| v.to_string()).collect()),
        };
        let spec = |selector: LabelSelector| RoutePolicySpec {
            sidecar_selector: selector,
            priority: 0,
            mode: Default::default(),
            import: Default::default(),
            export: Default::default(),
            tie_breakers: None,
            security: Default::default(),
            stability: Default::default(),
        };
        let expressions =
            |list: Vec<LabelSelectorRequirement>| LabelSelector { match_expressions: Some(list), match_labels: None };
        let cases = [
            (
                expressions(vec![requirement("a", "Exists", &[]), requirement("b", "Equals", &["x"])]),
                "spec.sidecarSelector.matchExpressions[1].operator",
                "is not one of In, NotIn, Exists, DoesNotExist",
            ),
            (
                expressions(vec![requirement("a", "In", &[])]),
                "spec.sidecarSelector.matchExpressions[0]",
                rules::SELECTOR_EXPRESSION_VALUES.message,
            ),
            (
                expressions(vec![requirement("a", "Exists", &["x"])]),
                "spec.sidecarSelector.matchExpressions[0]",
                rules::SELECTOR_EXPRESSION_VALUES.message,
            ),
            (
                expressions(vec![requirement("", "Exists", &[])]),
                "spec.sidecarSelector.matchExpressions[0].key",
                "is not a label key",
            ),
            (
                LabelSelector { match_labels: Some([("bad key".into(), "v".into())].into()), match_expressions: None },
                "spec.sidecarSelector.matchLabels",
                rules::SELECTOR_LABEL_KEYS.message,
            ),
            (
                LabelSelector { match_labels: Some([("k".into(), "-v".into())].into()), match_expressions: None },
                "spec.sidecarSelector.matchLabels",
                rules::SELECTOR_LABEL_VALUES.message,
            ),
        ];
        for (selector, field, message) in cases {
            let violations = check_route_policy(&spec(selector));
            assert!(
                violations.iter().any(|v| v.field == field && v.message.contains(message)),
                "{field}: {message}: {violations:?}"
            );
        }
        let good = LabelSelector {
            match_labels: Some([("app.kubernetes.io/name".into(), "x".into())].into()),
            match_expressions: None,
        };
        assert_eq!(check_route_policy(&spec(good)), vec![]);
    }

    fn fields(violations: &[Violation]) -> Vec<&str> {
        violations.iter().map(|v| v.field.as_str()).collect()
    }

    fn route_key() -> RouteKeySpec {
        RouteKeySpec {
            node_id: "eu-1".into(),
            service_account_name: None,
            algorithm: Default::default(),
            management: KeyManagement::Operator,
            rotation_interval: GoDuration::new("720h"),
            overlap: GoDuration::new("24h"),
            external_keys: Vec::new(),
        }
    }

    #[test]
    fn node_id_is_immutable_on_update() {
        let old = route_key();
        assert!(check_route_key_update(&old, &old).is_empty());
        let renamed = RouteKeySpec { node_id: "eu-2".into(), ..route_key() };
        let violations = check_route_key_update(&old, &renamed);
        assert_eq!(violations, [Violation::cel("spec.nodeId", rules::ROUTE_KEY_NODE_ID_IMMUTABLE)]);
    }

    #[test]
    fn schema_constraints_name_their_field() {
        let mut key = route_key();
        key.rotation_interval = GoDuration::new("30 days");
        key.external_keys = vec![ExternalKey {
            key_id: "k".into(),
            public_key: "not-base64".into(),
            valid_from: Some("yesterday".into()),
            valid_until: None,
        }];
        let violations = check_route_key(&key);
        assert_eq!(
            fields(&violations),
            ["spec.externalKeys[0].publicKey", "spec.externalKeys[0].validFrom", "spec.rotationInterval"]
        );
        // The malformed duration is reported by its own rule; the comparison
        // with the overlap is skipped.
        let rules: Vec<_> = violations.iter().filter_map(|v| v.rule).collect();
        assert_eq!(rules, [rules::DURATION_FORMAT], "unparsable values skip the CEL comparisons");

        let mut neighbors = NeighborPolicySpec {
            sidecar_selector: LabelSelector {
                match_labels: None,
                match_expressions: Some(vec![LabelSelectorRequirement {
                    key: "a".into(),
                    operator: "Equals".into(),
                    values: None,
                }]),
            },
            mode: Default::default(),
            neighbors: vec![NeighborSpec::node("a*b")],
        };
        neighbors.neighbors[0].link.reliability = 1.5;
        neighbors.neighbors[0].import = Some(RouteFilter {
            destinations: MatchList { allow: Some(vec!["x*y".into()]), deny: Vec::new() },
            max_hop_count: Some(0),
            ..Default::default()
        });
        assert_eq!(
            fields(&check_neighbor_policy(&neighbors)),
            [
                "spec.neighbors[0].import.destinations.allow[0]",
                "spec.neighbors[0].import.maxHopCount",
                "spec.neighbors[0].link.reliability",
                "spec.sidecarSelector.matchExpressions[0].operator",
            ]
        );
    }

    #[test]
    fn area_limits_and_names_are_checked() {
        let spec = LinkStateAreaSpec {
            area_id: String::new(),
            mode: Default::default(),
            member_selector: LabelSelector::default(),
            parents: vec!["x".repeat(300)],
            summary_filters: vec![SummaryFilterSpec {
                deny_destinations: vec!["**".into()],
                ..SummaryFilterSpec::new("nowhere")
            }],
            ecmp_max_paths: 4,
            max_summary_entries: Some(0),
        };
        let violations = check_link_state_area(&spec);
        assert_eq!(
            fields(&violations),
            [
                "spec",
                "spec.areaId",
                "spec.maxSummaryEntries",
                "spec.parents[0]",
                "spec.summaryFilters[0].denyDestinations[0]",
            ]
        );
        assert_eq!(cel_messages(&violations), BTreeSet::from([rules::SUMMARY_TARGET_IS_SELF_OR_PARENT.message]));
    }
}
