//! The sidecars of one compile, indexed by namespace and by label pair, so
//! that finding what a selector selects looks only at the sidecars that
//! carry its rarest required label (or share its namespace, when it requires
//! none) instead of at every sidecar: matching every RoutePolicy and
//! NeighborPolicy against every sidecar one by one grows with policies ×
//! sidecars and would dominate a fleet's compile (docs/benchmarks.md,
//! "Operator").
//!
//! The index only narrows: every candidate is still checked with
//! [`selector_matches`], so the result is exactly the one-by-one result, in
//! the same (member) order.

use std::collections::HashMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;

use crate::index::SidecarInfo;
use crate::selector::selector_matches;

pub(crate) struct Population<'a> {
    members: Vec<&'a SidecarInfo>,
    /// Member positions per namespace, ascending.
    by_namespace: HashMap<&'a str, Vec<usize>>,
    /// Member positions per (label key, label value), ascending.
    by_label: HashMap<(&'a str, &'a str), Vec<usize>>,
}

impl<'a> Population<'a> {
    /// Indexes `members`; positions follow the iteration order.
    pub(crate) fn new(members: impl IntoIterator<Item = &'a SidecarInfo>) -> Self {
        let members: Vec<&SidecarInfo> = members.into_iter().collect();
        let mut by_namespace: HashMap<&str, Vec<usize>> = HashMap::new();
        let mut by_label: HashMap<(&str, &str), Vec<usize>> = HashMap::new();
        for (position, member) in members.iter().enumerate() {
            by_namespace.entry(member.namespace.as_str()).or_default().push(position);
            for (key, value) in &member.labels {
                by_label.entry((key.as_str(), value.as_str())).or_default().push(position);
            }
        }
        Population { members, by_namespace, by_label }
    }

    /// The positions of the members of `namespace` that `selector` selects,
    /// ascending.
    pub(crate) fn select(&self, namespace: &str, selector: &LabelSelector) -> Vec<usize> {
        let Some(mut narrowest) = self.by_namespace.get(namespace) else {
            return Vec::new();
        };
        for (key, value) in selector.match_labels.iter().flatten() {
            match self.by_label.get(&(key.as_str(), value.as_str())) {
                None => return Vec::new(),
                Some(carriers) if carriers.len() < narrowest.len() => narrowest = carriers,
                Some(_) => {}
            }
        }
        narrowest
            .iter()
            .copied()
            .filter(|&position| {
                let member = self.members[position];
                member.namespace == namespace && selector_matches(selector, &member.labels)
            })
            .collect()
    }

    /// For every member (by position), the positions of the `selectors`
    /// (namespace, selector) that select it, ascending.
    pub(crate) fn selections<'s>(
        &self,
        selectors: impl IntoIterator<Item = (&'s str, &'s LabelSelector)>,
    ) -> Vec<Vec<usize>> {
        let mut per_member = vec![Vec::new(); self.members.len()];
        for (position, (namespace, selector)) in selectors.into_iter().enumerate() {
            for member in self.select(namespace, selector) {
                per_member[member].push(position);
            }
        }
        per_member
    }

    pub(crate) fn member(&self, position: usize) -> &'a SidecarInfo {
        self.members[position]
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelectorRequirement;
    use proptest::prelude::*;

    use super::*;

    fn sidecar(namespace: &str, name: &str, labels: &[(&str, &str)]) -> SidecarInfo {
        SidecarInfo {
            node_id: name.into(),
            namespace: namespace.into(),
            name: name.into(),
            labels: labels.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
            peer_address: None,
            service_account: None,
        }
    }

    fn match_labels(pairs: &[(&str, &str)]) -> LabelSelector {
        LabelSelector {
            match_labels: Some(pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()),
            match_expressions: None,
        }
    }

    #[test]
    fn selection_respects_namespace_labels_and_expressions() {
        let members = [
            sidecar("a", "a1", &[("tier", "edge"), ("region", "eu")]),
            sidecar("a", "a2", &[("tier", "core"), ("region", "eu")]),
            sidecar("b", "b1", &[("tier", "edge"), ("region", "eu")]),
            sidecar("a", "a3", &[("tier", "edge")]),
        ];
        let population = Population::new(&members);
        assert_eq!(population.select("a", &LabelSelector::default()), [0, 1, 3]);
        assert_eq!(population.select("a", &match_labels(&[("tier", "edge")])), [0, 3]);
        assert_eq!(population.select("b", &match_labels(&[("tier", "edge")])), [2]);
        assert_eq!(population.select("c", &LabelSelector::default()), Vec::<usize>::new());
        assert_eq!(population.select("a", &match_labels(&[("tier", "nowhere")])), Vec::<usize>::new());
        let not_in_eu = LabelSelector {
            match_labels: Some(BTreeMap::from([("tier".to_string(), "edge".to_string())])),
            match_expressions: Some(vec![LabelSelectorRequirement {
                key: "region".into(),
                operator: "NotIn".into(),
                values: Some(vec!["eu".into()]),
            }]),
        };
        assert_eq!(population.select("a", &not_in_eu), [3]);
        let selections = population.selections([("a", &match_labels(&[("tier", "edge")])), ("b", &not_in_eu)]);
        assert_eq!(selections, [vec![0], vec![], vec![], vec![0]]);
    }

    fn labels_strategy() -> impl Strategy<Value = Vec<(String, String)>> {
        prop::collection::vec(
            (prop::sample::select(vec!["k1", "k2", "k3"]), prop::sample::select(vec!["x", "y"])),
            0..4,
        )
        .prop_map(|pairs| pairs.into_iter().map(|(k, v)| (k.to_string(), v.to_string())).collect())
    }

    proptest! {
        /// The index narrows and never changes an answer: it selects what
        /// matching every member one by one selects, in member order.
        #[test]
        fn select_equals_matching_one_by_one(
            members in prop::collection::vec((prop::sample::select(vec!["a", "b"]), labels_strategy()), 0..30),
            wanted in labels_strategy(),
            namespace in prop::sample::select(vec!["a", "b", "c"]),
        ) {
            let members: Vec<SidecarInfo> = members
                .iter()
                .enumerate()
                .map(|(i, (ns, labels))| SidecarInfo {
                    node_id: format!("n{i}").as_str().into(),
                    namespace: ns.to_string(),
                    name: format!("n{i}"),
                    labels: labels.iter().cloned().collect(),
                    peer_address: None,
                    service_account: None,
                })
                .collect();
            let selector = LabelSelector { match_labels: Some(wanted.into_iter().collect()), match_expressions: None };
            let population = Population::new(&members);
            let one_by_one: Vec<usize> = members
                .iter()
                .enumerate()
                .filter(|(_, m)| m.namespace == namespace && selector_matches(&selector, &m.labels))
                .map(|(i, _)| i)
                .collect();
            prop_assert_eq!(population.select(namespace, &selector), one_by_one);
        }
    }
}
