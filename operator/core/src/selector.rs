//! Kubernetes label selectors (`matchLabels` + `matchExpressions` with
//! `In`, `NotIn`, `Exists`, `DoesNotExist`), with the API server's
//! semantics: all requirements must hold, an empty selector selects
//! everything.
//!
//! Validation is separate from matching (`crate::validation`, mirroring
//! the rules `crate::crds` adds to every selector's schema) so that a
//! malformed selector is reported once, against its object and field,
//! instead of silently selecting nothing.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, LabelSelectorRequirement};

pub(crate) type Labels = BTreeMap<String, String>;

fn requirement_holds(requirement: &LabelSelectorRequirement, labels: &Labels) -> bool {
    let value = labels.get(&requirement.key);
    let values = requirement.values.as_deref().unwrap_or_default();
    match requirement.operator.as_str() {
        "In" => value.is_some_and(|v| values.contains(v)),
        // As in Kubernetes: NotIn also holds when the label is absent.
        "NotIn" => value.is_none_or(|v| !values.contains(v)),
        "Exists" => value.is_some(),
        "DoesNotExist" => value.is_none(),
        // Unknown operators are refused by validation; should one
        // get here anyway, it selects nothing rather than everything.
        _ => false,
    }
}

/// Whether `selector` selects an object with `labels`.
pub(crate) fn selector_matches(selector: &LabelSelector, labels: &Labels) -> bool {
    let labels_hold =
        selector.match_labels.iter().flatten().all(|(key, value)| labels.get(key).is_some_and(|v| v == value));
    labels_hold && selector.match_expressions.iter().flatten().all(|r| requirement_holds(r, labels))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> Labels {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    fn expression(key: &str, operator: &str, values: &[&str]) -> LabelSelectorRequirement {
        LabelSelectorRequirement {
            key: key.into(),
            operator: operator.into(),
            values: (!values.is_empty()).then(|| values.iter().map(|v| v.to_string()).collect()),
        }
    }

    fn selector(match_labels: &[(&str, &str)], expressions: Vec<LabelSelectorRequirement>) -> LabelSelector {
        LabelSelector {
            match_labels: (!match_labels.is_empty()).then(|| labels(match_labels)),
            match_expressions: (!expressions.is_empty()).then_some(expressions),
        }
    }

    #[test]
    fn empty_selector_selects_everything() {
        assert!(selector_matches(&LabelSelector::default(), &labels(&[])));
        assert!(selector_matches(&LabelSelector::default(), &labels(&[("a", "b")])));
    }

    #[test]
    fn match_labels_need_every_pair() {
        let s = selector(&[("region", "eu"), ("tier", "edge")], vec![]);
        assert!(selector_matches(&s, &labels(&[("region", "eu"), ("tier", "edge"), ("x", "y")])));
        assert!(!selector_matches(&s, &labels(&[("region", "eu")])));
        assert!(!selector_matches(&s, &labels(&[("region", "us"), ("tier", "edge")])));
    }

    #[test]
    fn each_operator_follows_kubernetes_semantics() {
        let eu = labels(&[("region", "eu")]);
        let us = labels(&[("region", "us")]);
        let none = labels(&[]);
        let in_eu = selector(&[], vec![expression("region", "In", &["eu", "ap"])]);
        assert!(selector_matches(&in_eu, &eu));
        assert!(!selector_matches(&in_eu, &us));
        assert!(!selector_matches(&in_eu, &none));
        let not_in_eu = selector(&[], vec![expression("region", "NotIn", &["eu"])]);
        assert!(!selector_matches(&not_in_eu, &eu));
        assert!(selector_matches(&not_in_eu, &us));
        assert!(selector_matches(&not_in_eu, &none), "NotIn holds when the label is absent");
        let exists = selector(&[], vec![expression("region", "Exists", &[])]);
        assert!(selector_matches(&exists, &eu));
        assert!(!selector_matches(&exists, &none));
        let absent = selector(&[], vec![expression("region", "DoesNotExist", &[])]);
        assert!(!selector_matches(&absent, &eu));
        assert!(selector_matches(&absent, &none));
    }

    #[test]
    fn labels_and_expressions_are_anded() {
        let s = selector(&[("tier", "edge")], vec![expression("region", "In", &["eu"])]);
        assert!(selector_matches(&s, &labels(&[("tier", "edge"), ("region", "eu")])));
        assert!(!selector_matches(&s, &labels(&[("tier", "core"), ("region", "eu")])));
        assert!(!selector_matches(&s, &labels(&[("tier", "edge"), ("region", "us")])));
    }

    #[test]
    fn an_unknown_operator_selects_nothing() {
        let bad_operator = selector(&[], vec![expression("a", "Exists", &[]), expression("b", "Equals", &["x"])]);
        assert!(!selector_matches(&bad_operator, &labels(&[("a", "1"), ("b", "x")])));
    }
}
