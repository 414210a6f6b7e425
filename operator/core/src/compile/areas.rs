//! LinkStateArea: the area graph of each namespace and the link-state
//! config of member sidecars. Area ids are scoped to their namespace (the
//! graph is the namespace's areas). Resolution:
//! - two objects with one `areaId`: Conflict, the smaller namespace/name
//!   defines the area;
//! - a parent or summary-filter area that is not defined: Degraded, the
//!   reference is ignored;
//! - a cycle through parents: Degraded on every area of the cycle (named),
//!   and the parent links among them are ignored, leaving an acyclic graph;
//! - two summary filters for one target area (from different objects):
//!   Conflict, the smaller namespace/name wins;
//! - a sidecar in several areas with different modes: Conflict, the mode of
//!   the smallest namespace/name applies; ECMP is the largest of its areas'.

use std::collections::{BTreeMap, BTreeSet};

use fabric_core::link_state::{AreaConfig, AreaId, LinkStateConfig, SummaryFilter};

use super::report::Report;
use crate::api::{LinkStateArea, LinkStateAreaSpec, SummaryFilterSpec};
use crate::index::{Index, ObjectKey, ObjectKind, SidecarInfo};
use crate::selector::selector_matches;
use crate::validation::check_link_state_area;

struct Area<'a> {
    key: ObjectKey,
    spec: &'a LinkStateAreaSpec,
}

#[derive(Default)]
struct NamespaceAreas<'a> {
    areas: BTreeMap<AreaId, Area<'a>>,
    configs: Vec<AreaConfig>,
    filters: Vec<SummaryFilter>,
}

/// The resolved area graphs, per namespace.
#[derive(Default)]
pub(crate) struct AreaPlan<'a> {
    namespaces: BTreeMap<String, NamespaceAreas<'a>>,
}

/// What a member sidecar gets.
pub(crate) struct MemberConfig {
    pub config: LinkStateConfig,
    pub areas: Vec<AreaId>,
    pub sources: BTreeSet<ObjectKey>,
}

pub(crate) fn resolve<'a>(index: &'a Index, report: &mut Report) -> AreaPlan<'a> {
    let mut by_namespace: BTreeMap<String, Vec<Area<'a>>> = BTreeMap::new();
    for (name, area) in index.objects::<LinkStateArea>() {
        let key = ObjectKey::new(ObjectKind::LinkStateArea, name);
        let violations = check_link_state_area(&area.spec);
        if violations.is_empty() {
            by_namespace.entry(name.namespace.clone()).or_default().push(Area { key, spec: &area.spec });
        } else {
            report.invalid(key, violations);
        }
    }
    let namespaces =
        by_namespace.into_iter().map(|(namespace, areas)| (namespace, resolve_namespace(areas, report))).collect();
    AreaPlan { namespaces }
}

/// `areas` in namespace/name order.
fn resolve_namespace<'a>(areas: Vec<Area<'a>>, report: &mut Report) -> NamespaceAreas<'a> {
    let mut defined: BTreeMap<AreaId, Area<'a>> = BTreeMap::new();
    let mut in_name_order = Vec::new();
    for area in areas {
        let id = AreaId::from(area.spec.area_id.as_str());
        if let Some(earlier) = defined.get(&id) {
            let parties = BTreeSet::from([earlier.key.clone(), area.key.clone()]);
            report.conflict("DuplicateAreaId", &format!("areaId {id} defined twice"), &parties, &earlier.key, None);
            continue;
        }
        in_name_order.push(id.clone());
        defined.insert(id, area);
    }

    let mut parents: BTreeMap<AreaId, Vec<AreaId>> = BTreeMap::new();
    for (id, area) in &defined {
        let mut known = Vec::new();
        for parent in &area.spec.parents {
            let parent = AreaId::from(parent.as_str());
            if defined.contains_key(&parent) {
                known.push(parent);
            } else {
                let message =
                    format!("parent area {parent} is not defined in namespace {}; ignored", area.key.namespace);
                report.degraded(&area.key, "UnknownArea", message, BTreeSet::new());
            }
        }
        parents.insert(id.clone(), known);
    }

    for cycle in cycles(&parents) {
        let names: Vec<&str> = cycle.iter().map(AreaId::as_str).collect();
        let message = format!(
            "areas {} form a cycle through their parents; the parent links among them are ignored",
            names.join(", ")
        );
        let objects: BTreeSet<ObjectKey> =
            cycle.iter().filter_map(|id| defined.get(id)).map(|a| a.key.clone()).collect();
        for object in &objects {
            let related = objects.iter().filter(|o| *o != object).cloned().collect();
            report.degraded(object, "AreaCycle", message.clone(), related);
        }
        for id in &cycle {
            if let Some(list) = parents.get_mut(id) {
                list.retain(|parent| !cycle.contains(parent));
            }
        }
    }

    let mut filters: BTreeMap<AreaId, (ObjectKey, SummaryFilter)> = BTreeMap::new();
    for id in &in_name_order {
        let Some(area) = defined.get(id) else { continue };
        for (i, spec) in area.spec.summary_filters.iter().enumerate() {
            let field = format!("spec.summaryFilters[{i}]");
            let Some(filter) = summary_filter(spec, &field, area, &defined, report) else { continue };
            match filters.get(&filter.target_area) {
                Some((earlier, _)) => {
                    let parties = BTreeSet::from([earlier.clone(), area.key.clone()]);
                    let subject = format!("second summary filter for area {}", filter.target_area);
                    report.conflict("DuplicateSummaryFilter", &subject, &parties, earlier, None);
                }
                None => {
                    filters.insert(filter.target_area.clone(), (area.key.clone(), filter));
                }
            }
        }
    }

    let configs = defined
        .iter()
        .map(|(id, area)| AreaConfig {
            id: id.clone(),
            parents: parents.remove(id).unwrap_or_default(),
            max_summary_entries: area.spec.max_summary_entries.map(|cap| cap as usize),
        })
        .collect();
    NamespaceAreas { areas: defined, configs, filters: filters.into_values().map(|(_, f)| f).collect() }
}

/// The filter with references to undefined areas dropped (each reported);
/// `None` when its target area is not defined.
fn summary_filter(
    spec: &SummaryFilterSpec,
    field: &str,
    area: &Area<'_>,
    defined: &BTreeMap<AreaId, Area<'_>>,
    report: &mut Report,
) -> Option<SummaryFilter> {
    let mut filter = SummaryFilter::from(spec);
    let namespace = &area.key.namespace;
    if !defined.contains_key(&filter.target_area) {
        let message = format!(
            "{field}.targetArea: area {} is not defined in namespace {namespace}; filter ignored",
            filter.target_area
        );
        report.degraded(&area.key, "UnknownArea", message, BTreeSet::new());
        return None;
    }
    let mut keep_defined = |list: &mut Vec<AreaId>, name: &str| {
        list.retain(|source| {
            let known = defined.contains_key(source);
            if !known {
                let message = format!("{field}.{name}: area {source} is not defined in namespace {namespace}; ignored");
                report.degraded(&area.key, "UnknownArea", message, BTreeSet::new());
            }
            known
        });
    };
    if let Some(allow) = filter.allow_source_areas.as_mut() {
        keep_defined(allow, "allowSourceAreas");
    }
    keep_defined(&mut filter.deny_source_areas, "denySourceAreas");
    Some(filter)
}

/// The strongly connected components with more than one area (Tarjan),
/// each sorted, in order of their smallest area id.
fn cycles(parents: &BTreeMap<AreaId, Vec<AreaId>>) -> Vec<Vec<AreaId>> {
    struct Tarjan<'g> {
        graph: &'g BTreeMap<AreaId, Vec<AreaId>>,
        next: usize,
        index: BTreeMap<&'g AreaId, usize>,
        low: BTreeMap<&'g AreaId, usize>,
        stack: Vec<&'g AreaId>,
        on_stack: BTreeSet<&'g AreaId>,
        components: Vec<Vec<AreaId>>,
    }
    impl<'g> Tarjan<'g> {
        fn visit(&mut self, node: &'g AreaId) {
            self.index.insert(node, self.next);
            self.low.insert(node, self.next);
            self.next += 1;
            self.stack.push(node);
            self.on_stack.insert(node);
            for next in self.graph.get(node).into_iter().flatten() {
                if !self.index.contains_key(next) {
                    self.visit(next);
                    let low = self.low[node].min(self.low[next]);
                    self.low.insert(node, low);
                } else if self.on_stack.contains(next) {
                    let low = self.low[node].min(self.index[next]);
                    self.low.insert(node, low);
                }
            }
            if self.low[node] == self.index[node] {
                let mut component = Vec::new();
                while let Some(member) = self.stack.pop() {
                    self.on_stack.remove(member);
                    component.push(member.clone());
                    if member == node {
                        break;
                    }
                }
                if component.len() > 1 {
                    component.sort();
                    self.components.push(component);
                }
            }
        }
    }
    let mut tarjan = Tarjan {
        graph: parents,
        next: 0,
        index: BTreeMap::new(),
        low: BTreeMap::new(),
        stack: Vec::new(),
        on_stack: BTreeSet::new(),
        components: Vec::new(),
    };
    for node in parents.keys() {
        if !tarjan.index.contains_key(node) {
            tarjan.visit(node);
        }
    }
    let mut components = tarjan.components;
    components.sort();
    components
}

impl AreaPlan<'_> {
    /// The link-state config of `sidecar`, when it is a member of an area.
    pub(super) fn for_sidecar(
        &self,
        sidecar: &SidecarInfo,
        require_signatures: bool,
        report: &mut Report,
    ) -> Option<MemberConfig> {
        let namespace = self.namespaces.get(&sidecar.namespace)?;
        let members: Vec<(&AreaId, &Area)> = namespace
            .areas
            .iter()
            .filter(|(_, area)| selector_matches(&area.spec.member_selector, &sidecar.labels))
            .collect();
        let governing = members.iter().map(|(_, area)| area).min_by(|a, b| a.key.cmp(&b.key))?;
        let modes: BTreeSet<_> = members.iter().map(|(_, area)| area.spec.mode).collect();
        if modes.len() > 1 {
            let parties: BTreeSet<ObjectKey> = members.iter().map(|(_, area)| area.key.clone()).collect();
            let listed: Vec<String> = modes.iter().map(|m| format!("{m:?}")).collect();
            let subject = format!("modes {} for one sidecar in several areas", listed.join(" and "));
            report.conflict("ModeMismatch", &subject, &parties, &governing.key, Some(&sidecar.node_id));
        }
        let max_paths = members.iter().map(|(_, area)| area.spec.ecmp_max_paths).max().unwrap_or(4);
        let config = LinkStateConfig {
            mode: governing.spec.mode.into(),
            max_paths: max_paths as usize,
            require_signatures,
            areas: namespace.configs.clone(),
            summary_filters: namespace.filters.clone(),
            ..LinkStateConfig::default()
        };
        Some(MemberConfig {
            config,
            areas: members.iter().map(|(id, _)| (*id).clone()).collect(),
            sources: members.iter().map(|(_, area)| area.key.clone()).collect(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn graph(edges: &[(&str, &[&str])]) -> BTreeMap<AreaId, Vec<AreaId>> {
        edges
            .iter()
            .map(|(id, parents)| (AreaId::from(*id), parents.iter().map(|p| AreaId::from(*p)).collect()))
            .collect()
    }

    fn names(cycles: Vec<Vec<AreaId>>) -> Vec<Vec<String>> {
        cycles.into_iter().map(|c| c.into_iter().map(|a| a.to_string()).collect()).collect()
    }

    #[test]
    fn finds_every_cycle_and_nothing_in_a_dag() {
        let dag = graph(&[("a", &["core"]), ("b", &["core", "a"]), ("core", &[])]);
        assert!(cycles(&dag).is_empty());
        let two = graph(&[("a", &["b"]), ("b", &["c"]), ("c", &["a"]), ("x", &["y"]), ("y", &["x"]), ("z", &["a"])]);
        assert_eq!(names(cycles(&two)), [vec!["a", "b", "c"], vec!["x", "y"]]);
    }
}
