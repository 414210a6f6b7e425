//! From SPF results and summaries to the route table.
//!
//! Per area, a node's view holds intra-area routes (SPF over the area's
//! graph) and inter-area routes (summaries exported into the area by border
//! routers, reached through the SPF route to that border router). The views
//! are merged into one table: an intra-area route beats any inter-area one
//! (as in OSPF, so a destination inside an area is never reached by leaving
//! and re-entering it); within a scope the lowest cost wins and equal costs
//! pool their next hops, capped at `maxPaths` in id order.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;

use crate::lsdb::AreaLsdb;
use crate::spf::{PathMetrics, SpfResult, shortest_paths};
use crate::topology::Topology;
use fabric_core::ids::NodeId;
use fabric_core::link_state::area::SummaryPolicy;
use fabric_core::link_state::area_id::AreaId;

/// Whether a route stays inside an area or uses a border router's summary.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum RouteScope {
    IntraArea,
    InterArea,
}

/// The link-state route to one destination node.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct LinkStateRoute {
    pub destination: NodeId,
    pub cost: u64,
    /// Equal-cost next hops in id order, at most `maxPaths`.
    pub next_hops: Vec<NodeId>,
    pub scope: RouteScope,
    /// Areas whose equal-cost paths make up the route, in id order.
    pub areas: Vec<AreaId>,
    /// Latency and reliability along one of the paths (the one through the
    /// first area), for display and tie-breaking by callers.
    pub latency_us: u32,
    pub reliability: f32,
}

/// The SPF state of one area, kept between runs so an update that changes
/// no link can skip SPF, and so `explain` can walk paths.
#[derive(Clone, Debug)]
pub struct AreaSpf {
    /// `AreaLsdb::links_version` the run was made at.
    pub links_version: u64,
    pub topology: Topology,
    /// `None` when this node has no update in the area's graph yet.
    pub result: Option<SpfResult>,
    pub metrics: Vec<PathMetrics>,
}

impl AreaSpf {
    pub fn compute(node: &NodeId, lsdb: &AreaLsdb) -> Self {
        let topology = Topology::from_updates(lsdb.live_updates());
        let result = topology.index_of(node).map(|source| shortest_paths(&topology, source));
        let metrics = result.as_ref().map(|r| r.path_metrics(&topology)).unwrap_or_default();
        Self { links_version: lsdb.links_version(), topology, result, metrics }
    }

    /// Cost, all next hops and path metrics toward `destination`.
    pub fn reach(&self, destination: &NodeId) -> Option<(u64, Vec<NodeId>, PathMetrics)> {
        let result = self.result.as_ref()?;
        let index = self.topology.index_of(destination)?;
        if index == result.source() {
            return None;
        }
        let cost = result.cost(index)?;
        let hops = result.next_hops(index, usize::MAX).into_iter().map(|h| self.topology.node(h).clone()).collect();
        Some((cost, hops, self.metrics[index as usize]))
    }
}

/// One area's best way to a destination.
#[derive(Clone, Debug, PartialEq)]
pub struct AreaRoute {
    pub cost: u64,
    /// Every equal-cost next hop, uncapped, in id order.
    pub next_hops: Vec<NodeId>,
    pub scope: RouteScope,
    /// The area the destination lives in (this area for intra-area routes).
    pub source_area: AreaId,
    /// Border routers whose summaries give this cost (inter-area only).
    pub via: Vec<NodeId>,
    pub latency_us: u32,
    pub reliability: f32,
}

/// Routes of one area: intra-area from SPF, then inter-area from the
/// summaries of reachable border routers that `policy` lets into the area,
/// for destinations the area does not reach directly.
pub fn area_routes(
    node: &NodeId,
    area: &AreaId,
    spf: &AreaSpf,
    lsdb: &AreaLsdb,
    policy: &SummaryPolicy,
) -> BTreeMap<NodeId, AreaRoute> {
    let Some(result) = &spf.result else {
        return BTreeMap::new();
    };
    let topology = &spf.topology;
    // In index order, which is id order: the map is bulk-built from sorted
    // input instead of inserting (and comparing ids) one route at a time.
    let mut routes: BTreeMap<NodeId, AreaRoute> = (0..topology.node_count() as u32)
        .filter(|&index| index != result.source())
        .filter_map(|index| {
            let cost = result.cost(index)?;
            let metrics = spf.metrics[index as usize];
            let route = AreaRoute {
                cost,
                next_hops: result.next_hops(index, usize::MAX).into_iter().map(|h| topology.node(h).clone()).collect(),
                scope: RouteScope::IntraArea,
                source_area: area.clone(),
                via: Vec::new(),
                latency_us: metrics.latency_us,
                reliability: metrics.reliability,
            };
            Some((topology.node(index).clone(), route))
        })
        .collect();

    for update in lsdb.live_updates() {
        let Some(summary) = &update.summary else { continue };
        if &update.origin == node || summary.entries.is_empty() {
            continue;
        }
        let Some((to_border, hops, metrics)) = spf.reach(&update.origin) else { continue };
        for entry in &summary.entries {
            if &entry.destination == node
                || policy.permits(&entry.source_area, area, &entry.destination).is_err()
                || routes.get(&entry.destination).is_some_and(|r: &AreaRoute| r.scope == RouteScope::IntraArea)
            {
                continue;
            }
            let candidate = AreaRoute {
                cost: to_border + u64::from(entry.cost),
                next_hops: hops.clone(),
                scope: RouteScope::InterArea,
                source_area: entry.source_area.clone(),
                via: vec![update.origin.clone()],
                latency_us: metrics.latency_us.saturating_add(entry.latency_us),
                reliability: metrics.reliability * entry.reliability,
            };
            match routes.get_mut(&entry.destination) {
                None => {
                    routes.insert(entry.destination.clone(), candidate);
                }
                Some(kept) if candidate.cost < kept.cost => *kept = candidate,
                Some(kept) if candidate.cost == kept.cost => {
                    kept.via.push(update.origin.clone());
                    kept.next_hops = union(&kept.next_hops, &candidate.next_hops, usize::MAX);
                }
                Some(_) => {}
            }
        }
    }
    routes
}

/// Sorted union of two sorted lists, at most `cap` long.
fn union(a: &[NodeId], b: &[NodeId], cap: usize) -> Vec<NodeId> {
    let set: BTreeSet<&NodeId> = a.iter().chain(b).collect();
    set.into_iter().take(cap).cloned().collect()
}

/// Merges the per-area views into the route table.
pub fn merge_routes<'a>(
    views: impl IntoIterator<Item = (&'a AreaId, &'a BTreeMap<NodeId, AreaRoute>)>,
    max_paths: usize,
) -> BTreeMap<NodeId, LinkStateRoute> {
    // A k-way merge of the views (each sorted by destination): areas are
    // few, so picking the smallest head by scanning is cheapest, and the
    // table is bulk-built from sorted output.
    let mut heads: Vec<(&AreaId, std::iter::Peekable<std::collections::btree_map::Iter<'a, NodeId, AreaRoute>>)> =
        views.into_iter().map(|(area, routes)| (area, routes.iter().peekable())).collect();
    let mut table = Vec::new();
    let mut candidates: Vec<(&AreaId, &AreaRoute)> = Vec::with_capacity(heads.len());
    while let Some(destination) = heads.iter_mut().filter_map(|(_, iter)| iter.peek().map(|(d, _)| *d)).min() {
        candidates.clear();
        for (area, iter) in &mut heads {
            if let Some((_, route)) = iter.next_if(|(d, _)| *d == destination) {
                candidates.push((*area, route));
            }
        }
        table.push((destination.clone(), best_of(destination, &candidates, max_paths)));
    }
    table.into_iter().collect()
}

/// What the area views of one destination are ranked by: intra-area
/// before inter-area, then the lowest cost.
pub(crate) trait Ranked {
    fn scope(&self) -> RouteScope;
    fn cost(&self) -> u64;
}

impl Ranked for AreaRoute {
    fn scope(&self) -> RouteScope {
        self.scope
    }

    fn cost(&self) -> u64 {
        self.cost
    }
}

/// The winning scope and cost among `candidates`, and the candidates that
/// achieve them (in area order); empty without candidates.
pub(crate) fn winners<'a, R: Ranked>(candidates: &[(&'a AreaId, &'a R)]) -> Vec<(&'a AreaId, &'a R)> {
    let Some(scope) = candidates.iter().map(|(_, r)| r.scope()).min() else { return Vec::new() };
    let cost = candidates.iter().filter(|(_, r)| r.scope() == scope).map(|(_, r)| r.cost()).min().unwrap_or(0);
    candidates.iter().filter(|(_, r)| r.scope() == scope && r.cost() == cost).copied().collect()
}

fn best_of(destination: &NodeId, candidates: &[(&AreaId, &AreaRoute)], max_paths: usize) -> LinkStateRoute {
    let tied = winners(candidates);
    let (_, first) = tied[0];
    let next_hops = if tied.len() == 1 {
        // The common case: one area; its hops are sorted already.
        first.next_hops.iter().take(max_paths).cloned().collect()
    } else {
        let hops: BTreeSet<&NodeId> = tied.iter().flat_map(|(_, route)| &route.next_hops).collect();
        hops.into_iter().take(max_paths).cloned().collect()
    };
    LinkStateRoute {
        destination: destination.clone(),
        cost: first.cost,
        next_hops,
        scope: first.scope,
        areas: tied.iter().map(|(area, _)| (*area).clone()).collect(),
        latency_us: first.latency_us,
        reliability: first.reliability,
    }
}

/// A change of the route table, as reported to the forwarding layer.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase", tag = "change")]
pub enum RouteChange {
    Added { route: LinkStateRoute },
    Changed { old: LinkStateRoute, new: LinkStateRoute },
    Removed { route: LinkStateRoute },
}

impl RouteChange {
    pub fn destination(&self) -> &NodeId {
        match self {
            RouteChange::Added { route } | RouteChange::Removed { route } => &route.destination,
            RouteChange::Changed { new, .. } => &new.destination,
        }
    }
}

/// Changes from `old` to `new`, in destination order.
pub fn diff_routes(old: &BTreeMap<NodeId, LinkStateRoute>, new: &BTreeMap<NodeId, LinkStateRoute>) -> Vec<RouteChange> {
    let mut changes = Vec::new();
    let mut old_iter = old.iter().peekable();
    let mut new_iter = new.iter().peekable();
    loop {
        match (old_iter.peek(), new_iter.peek()) {
            (None, None) => break,
            (Some((_, route)), None) => {
                changes.push(RouteChange::Removed { route: (*route).clone() });
                old_iter.next();
            }
            (None, Some((_, route))) => {
                changes.push(RouteChange::Added { route: (*route).clone() });
                new_iter.next();
            }
            (Some((old_key, old_route)), Some((new_key, new_route))) => match old_key.cmp(new_key) {
                std::cmp::Ordering::Less => {
                    changes.push(RouteChange::Removed { route: (*old_route).clone() });
                    old_iter.next();
                }
                std::cmp::Ordering::Greater => {
                    changes.push(RouteChange::Added { route: (*new_route).clone() });
                    new_iter.next();
                }
                std::cmp::Ordering::Equal => {
                    if old_route != new_route {
                        changes.push(RouteChange::Changed { old: (*old_route).clone(), new: (*new_route).clone() });
                    }
                    old_iter.next();
                    new_iter.next();
                }
            },
        }
    }
    changes
}

#[cfg(test)]
mod tests {
    use super::*;

    fn route(cost: u64, hops: &[&str], scope: RouteScope, source: &str) -> AreaRoute {
        AreaRoute {
            cost,
            next_hops: hops.iter().map(|h| NodeId::from(*h)).collect(),
            scope,
            source_area: AreaId::from(source),
            via: Vec::new(),
            latency_us: 0,
            reliability: 1.0,
        }
    }

    fn views(entries: &[(&str, &str, AreaRoute)]) -> BTreeMap<AreaId, BTreeMap<NodeId, AreaRoute>> {
        let mut views: BTreeMap<AreaId, BTreeMap<NodeId, AreaRoute>> = BTreeMap::new();
        for (area, destination, route) in entries {
            views.entry(AreaId::from(*area)).or_default().insert(NodeId::from(*destination), route.clone());
        }
        views
    }

    fn hops(route: &LinkStateRoute) -> Vec<&str> {
        route.next_hops.iter().map(NodeId::as_str).collect()
    }

    #[test]
    fn intra_area_beats_cheaper_inter_area() {
        let views = views(&[
            ("a", "d", route(10, &["x"], RouteScope::IntraArea, "a")),
            ("b", "d", route(2, &["y"], RouteScope::InterArea, "c")),
        ]);
        let table = merge_routes(&views, 4);
        let d = &table[&NodeId::from("d")];
        assert_eq!((d.cost, d.scope, hops(d)), (10, RouteScope::IntraArea, vec!["x"]));
    }

    #[test]
    fn equal_cost_routes_of_several_areas_pool_next_hops_up_to_the_cap() {
        let views = views(&[
            ("a", "d", route(3, &["p", "z"], RouteScope::IntraArea, "a")),
            ("b", "d", route(3, &["q"], RouteScope::IntraArea, "b")),
            ("c", "d", route(4, &["a0"], RouteScope::IntraArea, "c")),
        ]);
        let table = merge_routes(&views, 2);
        let d = &table[&NodeId::from("d")];
        assert_eq!(hops(d), ["p", "q"]);
        assert_eq!(d.areas, [AreaId::from("a"), AreaId::from("b")]);
    }

    #[test]
    fn diff_reports_added_changed_and_removed_in_destination_order() {
        let make = |entries: &[(&str, u64)]| -> BTreeMap<NodeId, LinkStateRoute> {
            let views = views(
                &entries
                    .iter()
                    .map(|(d, c)| ("a", *d, route(*c, &["h"], RouteScope::IntraArea, "a")))
                    .collect::<Vec<_>>(),
            );
            merge_routes(&views, 4)
        };
        let old = make(&[("a", 1), ("b", 1), ("c", 1)]);
        let new = make(&[("b", 2), ("c", 1), ("d", 1)]);
        let changes = diff_routes(&old, &new);
        let summary: Vec<(&str, &str)> = changes
            .iter()
            .map(|c| {
                let kind = match c {
                    RouteChange::Added { .. } => "added",
                    RouteChange::Changed { .. } => "changed",
                    RouteChange::Removed { .. } => "removed",
                };
                (c.destination().as_str(), kind)
            })
            .collect();
        assert_eq!(summary, [("a", "removed"), ("b", "changed"), ("d", "added")]);
    }
}
