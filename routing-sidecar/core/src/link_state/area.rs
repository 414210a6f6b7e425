//! Areas above the flooding level: the area graph (which area is a parent
//! of which), summary filters and summary compression, and the pure export
//! planner an area border router (ABR) uses to decide what it summarizes
//! from each child area into each parent area.
//!
//! Summaries only flow up the graph, from a child area to its parents. The
//! graph must be acyclic, so a summary can never come back into an area it
//! came from: that is what keeps inter-area routing loop-free without the
//! OSPF backbone rule.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::ids::{DestinationId, NodeId, Tag};
use crate::link_state::area_id::AreaId;
use crate::link_state::lsa::{SummaryDestination, SummaryEntry};

/// Why an area graph is refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum AreaGraphError {
    #[error("area {0} is defined twice")]
    Duplicate(AreaId),
    #[error("area {area} lists itself as a parent")]
    SelfParent { area: AreaId },
    #[error("area {area} names parent {parent}, which is not defined")]
    UnknownParent { area: AreaId, parent: AreaId },
    #[error("area graph has a cycle: {}", CyclePath(.areas))]
    Cycle {
        /// The areas around the cycle, the first repeated at the end.
        areas: Vec<AreaId>,
    },
}

struct CyclePath<'a>(&'a [AreaId]);

impl fmt::Display for CyclePath<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, area) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(" -> ")?;
            }
            f.write_str(area.as_str())?;
        }
        Ok(())
    }
}

/// Parent relations between areas. An area may have several parents; areas
/// not defined have none.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AreaGraph {
    parents: BTreeMap<AreaId, BTreeSet<AreaId>>,
}

impl AreaGraph {
    /// Builds the graph from `(area, parents)` definitions and checks it:
    /// each area defined once, parents defined, no cycle.
    pub fn new(definitions: impl IntoIterator<Item = (AreaId, Vec<AreaId>)>) -> Result<Self, AreaGraphError> {
        let mut parents: BTreeMap<AreaId, BTreeSet<AreaId>> = BTreeMap::new();
        for (area, area_parents) in definitions {
            if parents.contains_key(&area) {
                return Err(AreaGraphError::Duplicate(area));
            }
            parents.insert(area, area_parents.into_iter().collect());
        }
        for (area, area_parents) in &parents {
            for parent in area_parents {
                if parent == area {
                    return Err(AreaGraphError::SelfParent { area: area.clone() });
                }
                if !parents.contains_key(parent) {
                    return Err(AreaGraphError::UnknownParent { area: area.clone(), parent: parent.clone() });
                }
            }
        }
        let graph = Self { parents };
        graph.check_acyclic()?;
        Ok(graph)
    }

    /// Depth-first search with three colors; a grey area met again closes a
    /// cycle, reported from that area around to itself. Areas and parents
    /// are visited in id order, so the same graph names the same cycle.
    fn check_acyclic(&self) -> Result<(), AreaGraphError> {
        #[derive(Clone, Copy, PartialEq)]
        enum Color {
            White,
            Grey,
            Black,
        }
        let mut color: BTreeMap<&AreaId, Color> = self.parents.keys().map(|a| (a, Color::White)).collect();
        for root in self.parents.keys() {
            if color[root] != Color::White {
                continue;
            }
            // Stack of (area, its parents not yet explored).
            let mut stack: Vec<(&AreaId, std::collections::btree_set::Iter<'_, AreaId>)> =
                vec![(root, self.parents[root].iter())];
            color.insert(root, Color::Grey);
            while let Some((area, pending)) = stack.last_mut() {
                match pending.next() {
                    Some(parent) => match color[parent] {
                        Color::White => {
                            color.insert(parent, Color::Grey);
                            stack.push((parent, self.parents[parent].iter()));
                        }
                        Color::Grey => {
                            let start =
                                stack.iter().position(|(a, _)| *a == parent).expect("grey areas are on the stack");
                            let mut areas: Vec<AreaId> = stack[start..].iter().map(|(a, _)| (*a).clone()).collect();
                            areas.push(parent.clone());
                            return Err(AreaGraphError::Cycle { areas });
                        }
                        Color::Black => {}
                    },
                    None => {
                        color.insert(area, Color::Black);
                        stack.pop();
                    }
                }
            }
        }
        Ok(())
    }

    pub fn areas(&self) -> impl Iterator<Item = &AreaId> {
        self.parents.keys()
    }

    pub fn is_defined(&self, area: &AreaId) -> bool {
        self.parents.contains_key(area)
    }

    /// Direct parents of `area`, in id order.
    pub fn parents(&self, area: &AreaId) -> impl Iterator<Item = &AreaId> {
        self.parents.get(area).into_iter().flatten()
    }

    pub fn is_parent(&self, child: &AreaId, parent: &AreaId) -> bool {
        self.parents.get(child).is_some_and(|p| p.contains(parent))
    }

    /// Whether `ancestor` is reachable from `area` by parent steps (strict).
    pub fn is_descendant(&self, area: &AreaId, ancestor: &AreaId) -> bool {
        let mut seen: BTreeSet<&AreaId> = BTreeSet::new();
        let mut pending: Vec<&AreaId> = self.parents(area).collect();
        while let Some(next) = pending.pop() {
            if next == ancestor {
                return true;
            }
            if seen.insert(next) {
                pending.extend(self.parents(next));
            }
        }
        false
    }
}

/// Which summaries may enter one target area. Lists of destinations are
/// node ids or destination names (both kinds of summary entry are checked
/// against them), optionally ending in one `*` to match a prefix.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SummaryFilter {
    pub target_area: AreaId,
    /// When set, only summaries of these source areas enter.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allow_source_areas: Option<Vec<AreaId>>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub deny_source_areas: Vec<AreaId>,
    /// When set, only these destinations enter.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allow_destinations: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub deny_destinations: Vec<String>,
}

/// Why a filter stopped a summary entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FilterVerdict {
    /// The source area is not below the target area in the area graph (a
    /// summary that would flow sideways, down or back into its own area).
    NotAChildArea,
    SourceAreaNotAllowed,
    SourceAreaDenied,
    DestinationNotAllowed,
    DestinationDenied,
}

fn matches(pattern: &str, value: &str) -> bool {
    match pattern.strip_suffix('*') {
        Some(prefix) => value.starts_with(prefix),
        None => pattern == value,
    }
}

impl SummaryFilter {
    /// A filter for `target_area` that lets everything through.
    pub fn new(target_area: AreaId) -> Self {
        Self {
            target_area,
            allow_source_areas: None,
            deny_source_areas: Vec::new(),
            allow_destinations: None,
            deny_destinations: Vec::new(),
        }
    }

    /// `Ok` when `destination` of `source_area` may enter the target area.
    pub fn check(&self, source_area: &AreaId, destination: &NodeId) -> Result<(), FilterVerdict> {
        self.check_name(source_area, destination.as_str())
    }

    /// `check` for any name: a node id or a destination name.
    pub fn check_name(&self, source_area: &AreaId, destination: &str) -> Result<(), FilterVerdict> {
        if self.deny_source_areas.contains(source_area) {
            return Err(FilterVerdict::SourceAreaDenied);
        }
        if self.allow_source_areas.as_ref().is_some_and(|allow| !allow.contains(source_area)) {
            return Err(FilterVerdict::SourceAreaNotAllowed);
        }
        if self.deny_destinations.iter().any(|p| matches(p, destination)) {
            return Err(FilterVerdict::DestinationDenied);
        }
        if self.allow_destinations.as_ref().is_some_and(|allow| !allow.iter().any(|p| matches(p, destination))) {
            return Err(FilterVerdict::DestinationNotAllowed);
        }
        Ok(())
    }
}

/// The area graph with the filters and caps: everything that decides where
/// summaries may go, shared by exporters and receivers so both enforce the
/// same rules (receivers re-check, so one misconfigured border router
/// cannot leak summaries into an area that forbids them).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct SummaryPolicy {
    pub graph: AreaGraph,
    /// By target area; at most one filter per target.
    pub filters: BTreeMap<AreaId, SummaryFilter>,
    /// Cap on entries exported per source area, by source area.
    pub caps: BTreeMap<AreaId, usize>,
    /// Cap for source areas without their own.
    pub default_cap: Option<usize>,
}

impl SummaryPolicy {
    /// Whether `destination`, living in `source_area`, may be summarized
    /// into `target_area`.
    pub fn permits(
        &self,
        source_area: &AreaId,
        target_area: &AreaId,
        destination: &NodeId,
    ) -> Result<(), FilterVerdict> {
        self.permits_name(source_area, target_area, destination.as_str())
    }

    /// `permits` for any name: a node id or a destination name.
    pub fn permits_name(&self, source_area: &AreaId, target_area: &AreaId, name: &str) -> Result<(), FilterVerdict> {
        if !self.graph.is_descendant(source_area, target_area) {
            return Err(FilterVerdict::NotAChildArea);
        }
        match self.filters.get(target_area) {
            Some(filter) => filter.check_name(source_area, name),
            None => Ok(()),
        }
    }

    pub fn cap_for(&self, source_area: &AreaId) -> Option<usize> {
        self.caps.get(source_area).copied().or(self.default_cap)
    }
}

/// A destination this node reaches through one of its areas, offered for
/// export to that area's parents.
#[derive(Clone, Debug, PartialEq)]
pub struct SummaryCandidate {
    pub destination: NodeId,
    /// Where the destination lives: the area it was reached through for
    /// intra-area routes, the summary's source area for inter-area ones.
    pub source_area: AreaId,
    pub cost: u64,
    pub latency_us: u32,
    pub reliability: f32,
}

/// A destination name this node reaches through one of its areas (served by
/// a node of that area, or summarized into it), offered for export.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DestinationCandidate {
    pub name: DestinationId,
    pub source_area: AreaId,
    /// Cost to the serving node plus its metric.
    pub cost: u64,
    pub tags: Vec<Tag>,
}

/// (source area, target area), the key of export counters.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AreaPair {
    pub source_area: AreaId,
    pub target_area: AreaId,
}

/// Counts of one (source, target) pair in one export plan.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ExportCounts {
    /// Node entries and destination entries.
    pub exported: u64,
    /// Stopped by a summary filter.
    pub filtered: u64,
    /// Dropped by the compression cap.
    pub compressed: u64,
}

/// What a border router exports: the summary for each target area (only
/// areas it is a member of and that are parents of another of its areas),
/// and the counts behind it.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ExportPlan {
    pub summaries: BTreeMap<AreaId, Vec<SummaryEntry>>,
    /// Destination entries per target area, by (source area, name).
    pub destinations: BTreeMap<AreaId, Vec<SummaryDestination>>,
    pub counts: BTreeMap<AreaPair, ExportCounts>,
}

/// Compression order: higher reliability, then lower latency, then lower
/// cost, then destination id; total, so every node picks the same entries.
fn compression_order(a: &SummaryCandidate, b: &SummaryCandidate) -> std::cmp::Ordering {
    b.reliability
        .total_cmp(&a.reliability)
        .then(a.latency_us.cmp(&b.latency_us))
        .then(a.cost.cmp(&b.cost))
        .then_with(|| a.destination.cmp(&b.destination))
}

/// Plans the summaries this node exports. `reachable` holds, per local
/// area, the destinations reached through it (this node excluded).
pub fn plan_exports(
    policy: &SummaryPolicy,
    local_areas: &BTreeSet<AreaId>,
    reachable: &BTreeMap<AreaId, Vec<SummaryCandidate>>,
) -> ExportPlan {
    plan_exports_with_destinations(policy, local_areas, reachable, &BTreeMap::new())
}

/// `plan_exports` with destination names as well: `destinations` holds, per
/// local area, the destination names reached through it. Filters apply to
/// names as to node ids. The cap of a source area counts both kinds:
/// destination entries are kept first (lowest cost, then name), node
/// entries fill what is left in compression order, so node entries are
/// the first to go.
pub fn plan_exports_with_destinations(
    policy: &SummaryPolicy,
    local_areas: &BTreeSet<AreaId>,
    reachable: &BTreeMap<AreaId, Vec<SummaryCandidate>>,
    destinations: &BTreeMap<AreaId, Vec<DestinationCandidate>>,
) -> ExportPlan {
    let mut plan = ExportPlan::default();
    for target in local_areas {
        let children: Vec<&AreaId> = local_areas.iter().filter(|c| policy.graph.is_parent(c, target)).collect();
        if children.is_empty() {
            continue;
        }
        // Best candidate per destination over all children: lower cost,
        // then lower source area id.
        let mut best: BTreeMap<&NodeId, &SummaryCandidate> = BTreeMap::new();
        for &child in &children {
            for candidate in reachable.get(child).into_iter().flatten() {
                let pair = AreaPair { source_area: candidate.source_area.clone(), target_area: target.clone() };
                if policy.permits(&candidate.source_area, target, &candidate.destination).is_err() {
                    plan.counts.entry(pair).or_default().filtered += 1;
                    continue;
                }
                best.entry(&candidate.destination)
                    .and_modify(|kept| {
                        if (candidate.cost, &candidate.source_area) < (kept.cost, &kept.source_area) {
                            *kept = candidate;
                        }
                    })
                    .or_insert(candidate);
            }
        }
        // The same for destination names: lower cost, then lower source
        // area id.
        let mut best_names: BTreeMap<&DestinationId, &DestinationCandidate> = BTreeMap::new();
        for &child in &children {
            for candidate in destinations.get(child).into_iter().flatten() {
                let pair = AreaPair { source_area: candidate.source_area.clone(), target_area: target.clone() };
                if policy.permits_name(&candidate.source_area, target, candidate.name.as_str()).is_err() {
                    plan.counts.entry(pair).or_default().filtered += 1;
                    continue;
                }
                best_names
                    .entry(&candidate.name)
                    .and_modify(|kept| {
                        if (candidate.cost, &candidate.source_area) < (kept.cost, &kept.source_area) {
                            *kept = candidate;
                        }
                    })
                    .or_insert(candidate);
            }
        }
        let mut by_source: BTreeMap<&AreaId, (Vec<&SummaryCandidate>, Vec<&DestinationCandidate>)> = BTreeMap::new();
        for candidate in best.into_values() {
            by_source.entry(&candidate.source_area).or_default().0.push(candidate);
        }
        for candidate in best_names.into_values() {
            by_source.entry(&candidate.source_area).or_default().1.push(candidate);
        }
        let mut entries = Vec::new();
        let mut names = Vec::new();
        for (source_area, (mut candidates, mut named)) in by_source {
            let pair = AreaPair { source_area: source_area.clone(), target_area: target.clone() };
            let counts = plan.counts.entry(pair).or_default();
            if let Some(cap) = policy.cap_for(source_area)
                && candidates.len() + named.len() > cap
            {
                named.sort_by(|a, b| (a.cost, &a.name).cmp(&(b.cost, &b.name)));
                let names_kept = named.len().min(cap);
                counts.compressed += (named.len() - names_kept) as u64;
                named.truncate(names_kept);
                let nodes_kept = cap - names_kept;
                candidates.sort_by(|a, b| compression_order(a, b));
                counts.compressed += (candidates.len().saturating_sub(nodes_kept)) as u64;
                candidates.truncate(nodes_kept);
            }
            counts.exported += (candidates.len() + named.len()) as u64;
            names.extend(named.into_iter().map(|c| SummaryDestination {
                name: c.name.clone(),
                source_area: c.source_area.clone(),
                cost: u32::try_from(c.cost).unwrap_or(u32::MAX),
                tags: c.tags.clone(),
            }));
            entries.extend(candidates.into_iter().map(|c| SummaryEntry {
                destination: c.destination.clone(),
                source_area: c.source_area.clone(),
                cost: u32::try_from(c.cost).unwrap_or(u32::MAX),
                latency_us: c.latency_us,
                reliability: c.reliability,
            }));
        }
        entries.sort_by(|a, b| (&a.source_area, &a.destination).cmp(&(&b.source_area, &b.destination)));
        names.sort_by(|a, b| (&a.source_area, &a.name).cmp(&(&b.source_area, &b.name)));
        plan.summaries.insert(target.clone(), entries);
        plan.destinations.insert(target.clone(), names);
    }
    plan
}

#[cfg(test)]
mod tests {
    use super::*;

    fn area(name: &str) -> AreaId {
        AreaId::from(name)
    }

    fn graph(definitions: &[(&str, &[&str])]) -> Result<AreaGraph, AreaGraphError> {
        AreaGraph::new(definitions.iter().map(|(a, parents)| (area(a), parents.iter().map(|p| area(p)).collect())))
    }

    fn candidate(destination: &str, source: &str, cost: u64, latency_us: u32, reliability: f32) -> SummaryCandidate {
        SummaryCandidate {
            destination: NodeId::from(destination),
            source_area: area(source),
            cost,
            latency_us,
            reliability,
        }
    }

    fn destinations(entries: &[SummaryEntry]) -> Vec<&str> {
        entries.iter().map(|e| e.destination.as_str()).collect()
    }

    #[test]
    fn multi_parent_graphs_are_accepted() {
        let g = graph(&[("leaf", &["mid1", "mid2"]), ("mid1", &["top"]), ("mid2", &["top"]), ("top", &[])]).unwrap();
        assert_eq!(g.parents(&area("leaf")).map(AreaId::as_str).collect::<Vec<_>>(), ["mid1", "mid2"]);
        assert!(g.is_descendant(&area("leaf"), &area("top")));
        assert!(!g.is_descendant(&area("top"), &area("leaf")));
        assert!(!g.is_descendant(&area("mid1"), &area("mid2")));
    }

    #[test]
    fn cycles_are_refused_naming_the_areas() {
        let error = graph(&[("a", &["b"]), ("b", &["c"]), ("c", &["a"]), ("d", &["a"])]).unwrap_err();
        assert_eq!(error, AreaGraphError::Cycle { areas: vec![area("a"), area("b"), area("c"), area("a")] });
        assert_eq!(error.to_string(), "area graph has a cycle: a -> b -> c -> a");

        let error = graph(&[("x", &["x"])]).unwrap_err();
        assert_eq!(error, AreaGraphError::SelfParent { area: area("x") });
        let error = graph(&[("x", &["nowhere"])]).unwrap_err();
        assert!(matches!(error, AreaGraphError::UnknownParent { .. }));
        let error = graph(&[("x", &[]), ("x", &[])]).unwrap_err();
        assert_eq!(error, AreaGraphError::Duplicate(area("x")));
    }

    #[test]
    fn a_diamond_is_not_a_cycle() {
        graph(&[("a", &["b", "c"]), ("b", &["d"]), ("c", &["d"]), ("d", &[])]).unwrap();
    }

    #[test]
    fn filters_allow_and_deny_by_source_area_and_destination() {
        let filter = SummaryFilter {
            target_area: area("top"),
            allow_source_areas: Some(vec![area("a"), area("b")]),
            deny_source_areas: vec![area("b")],
            allow_destinations: Some(vec!["eu-*".into(), "us-1".into()]),
            deny_destinations: vec!["eu-secret".into()],
        };
        let ok = NodeId::from("eu-1");
        assert_eq!(filter.check(&area("a"), &ok), Ok(()));
        assert_eq!(filter.check(&area("a"), &NodeId::from("us-1")), Ok(()));
        assert_eq!(filter.check(&area("b"), &ok), Err(FilterVerdict::SourceAreaDenied));
        assert_eq!(filter.check(&area("c"), &ok), Err(FilterVerdict::SourceAreaNotAllowed));
        assert_eq!(filter.check(&area("a"), &NodeId::from("eu-secret")), Err(FilterVerdict::DestinationDenied));
        assert_eq!(filter.check(&area("a"), &NodeId::from("us-2")), Err(FilterVerdict::DestinationNotAllowed));
    }

    #[test]
    fn summaries_flow_only_from_children_into_permitted_parents() {
        // This node sits in child areas a and b and parents p1 and p2; a and
        // b are both children of p1 and p2; p2 refuses area b.
        let graph = graph(&[("a", &["p1", "p2"]), ("b", &["p1", "p2"]), ("p1", &[]), ("p2", &[])]).unwrap();
        let mut filters = BTreeMap::new();
        filters
            .insert(area("p2"), SummaryFilter { deny_source_areas: vec![area("b")], ..SummaryFilter::new(area("p2")) });
        let policy = SummaryPolicy { graph, filters, ..Default::default() };
        let local: BTreeSet<AreaId> = ["a", "b", "p1", "p2"].map(area).into();
        let mut reachable = BTreeMap::new();
        reachable.insert(area("a"), vec![candidate("a1", "a", 1, 0, 1.0)]);
        reachable.insert(area("b"), vec![candidate("b1", "b", 2, 0, 1.0)]);
        // What p1 reaches must not be exported anywhere: p1 has no parent.
        reachable.insert(area("p1"), vec![candidate("p1n", "p1", 1, 0, 1.0)]);
        let plan = plan_exports(&policy, &local, &reachable);
        assert_eq!(plan.summaries.keys().map(AreaId::as_str).collect::<Vec<_>>(), ["p1", "p2"]);
        assert_eq!(destinations(&plan.summaries[&area("p1")]), ["a1", "b1"]);
        assert_eq!(destinations(&plan.summaries[&area("p2")]), ["a1"]);
        let pair = |s: &str, t: &str| AreaPair { source_area: area(s), target_area: area(t) };
        assert_eq!(plan.counts[&pair("b", "p2")], ExportCounts { exported: 0, filtered: 1, compressed: 0 });
        assert_eq!(plan.counts[&pair("a", "p2")].exported, 1);
    }

    #[test]
    fn receivers_refuse_summaries_that_do_not_flow_upwards() {
        let graph = graph(&[("a", &["p"]), ("p", &[]), ("q", &[])]).unwrap();
        let policy = SummaryPolicy { graph, ..Default::default() };
        let node = NodeId::from("n");
        assert_eq!(policy.permits(&area("a"), &area("p"), &node), Ok(()));
        assert_eq!(policy.permits(&area("p"), &area("a"), &node), Err(FilterVerdict::NotAChildArea));
        assert_eq!(policy.permits(&area("a"), &area("q"), &node), Err(FilterVerdict::NotAChildArea));
        assert_eq!(policy.permits(&area("a"), &area("a"), &node), Err(FilterVerdict::NotAChildArea));
    }

    #[test]
    fn compression_caps_each_source_area_preferring_reliability_then_latency_then_id() {
        let graph = graph(&[("a", &["p"]), ("b", &["p"]), ("p", &[])]).unwrap();
        let mut caps = BTreeMap::new();
        caps.insert(area("b"), 1);
        let policy = SummaryPolicy { graph, caps, default_cap: Some(3), ..Default::default() };
        let local: BTreeSet<AreaId> = ["a", "b", "p"].map(area).into();
        let mut reachable = BTreeMap::new();
        reachable.insert(
            area("a"),
            vec![
                candidate("a-slow", "a", 1, 900, 0.99),
                candidate("a-flaky", "a", 1, 10, 0.5),
                candidate("a-fast", "a", 9, 10, 0.99),
                candidate("a-tie2", "a", 1, 10, 0.99),
                candidate("a-tie1", "a", 1, 10, 0.99),
            ],
        );
        reachable.insert(area("b"), vec![candidate("b2", "b", 1, 0, 1.0), candidate("b1", "b", 1, 0, 1.0)]);
        let plan = plan_exports(&policy, &local, &reachable);
        // a keeps 3 of 5: the reliable ones, lowest latency first; between
        // equal reliability and latency, lower cost, then id.
        assert_eq!(destinations(&plan.summaries[&area("p")]), ["a-fast", "a-tie1", "a-tie2", "b1"]);
        let pair = AreaPair { source_area: area("a"), target_area: area("p") };
        assert_eq!(plan.counts[&pair], ExportCounts { exported: 3, filtered: 0, compressed: 2 });
        let pair = AreaPair { source_area: area("b"), target_area: area("p") };
        assert_eq!(plan.counts[&pair], ExportCounts { exported: 1, filtered: 0, compressed: 1 });
        // Same inputs in another order: same plan.
        let mut shuffled = reachable.clone();
        shuffled.get_mut(&area("a")).unwrap().reverse();
        assert_eq!(plan_exports(&policy, &local, &shuffled), plan);
    }

    #[test]
    fn the_cheapest_copy_of_a_destination_seen_through_two_children_is_exported() {
        let graph = graph(&[("a", &["p"]), ("b", &["p"]), ("p", &[])]).unwrap();
        let policy = SummaryPolicy { graph, ..Default::default() };
        let local: BTreeSet<AreaId> = ["a", "b", "p"].map(area).into();
        let mut reachable = BTreeMap::new();
        reachable.insert(area("a"), vec![candidate("shared", "a", 5, 0, 1.0)]);
        reachable.insert(area("b"), vec![candidate("shared", "b", 3, 0, 1.0)]);
        let plan = plan_exports(&policy, &local, &reachable);
        let entries = &plan.summaries[&area("p")];
        assert_eq!(entries.len(), 1);
        assert_eq!((entries[0].source_area.as_str(), entries[0].cost), ("b", 3));
    }

    fn named(name: &str, source: &str, cost: u64) -> DestinationCandidate {
        DestinationCandidate { name: DestinationId::from(name), source_area: area(source), cost, tags: Vec::new() }
    }

    #[test]
    fn destination_names_are_filtered_and_share_the_cap_with_node_entries() {
        let graph = graph(&[("a", &["p"]), ("p", &[])]).unwrap();
        let mut filters = BTreeMap::new();
        filters.insert(
            area("p"),
            SummaryFilter { deny_destinations: vec!["secret-*".into()], ..SummaryFilter::new(area("p")) },
        );
        let policy = SummaryPolicy { graph, filters, default_cap: Some(3), ..Default::default() };
        let local: BTreeSet<AreaId> = ["a", "p"].map(area).into();
        let mut reachable = BTreeMap::new();
        reachable.insert(area("a"), vec![candidate("n1", "a", 1, 0, 1.0), candidate("n2", "a", 1, 0, 0.5)]);
        let mut destinations = BTreeMap::new();
        destinations
            .insert(area("a"), vec![named("svc-b", "a", 4), named("secret-db", "a", 1), named("svc-a", "a", 4)]);
        let plan = plan_exports_with_destinations(&policy, &local, &reachable, &destinations);
        let names: Vec<&str> = plan.destinations[&area("p")].iter().map(|d| d.name.as_str()).collect();
        assert_eq!(names, ["svc-a", "svc-b"], "secret-* denied by the filter");
        // Cap 3 over 2 names + 2 nodes: names are kept, the less reliable
        // node entry goes.
        assert_eq!(destinations_of(&plan, "p"), ["n1"]);
        let pair = AreaPair { source_area: area("a"), target_area: area("p") };
        assert_eq!(plan.counts[&pair], ExportCounts { exported: 3, filtered: 1, compressed: 1 });
        // A name and a node id that are spelled alike do not collide.
        let mut destinations = BTreeMap::new();
        destinations.insert(area("a"), vec![named("n1", "a", 9)]);
        let plan = plan_exports_with_destinations(&policy, &local, &reachable, &destinations);
        assert_eq!(plan.destinations[&area("p")].len(), 1);
        assert_eq!(plan.summaries[&area("p")].len(), 2);
    }

    fn destinations_of<'a>(plan: &'a ExportPlan, target: &str) -> Vec<&'a str> {
        destinations(&plan.summaries[&area(target)])
    }
}
