//! The explain view of one destination: what every area offered, which
//! candidates won and why the others lost, every equal-cost next hop (also
//! those cut by `maxPaths`) and one shortest path per next hop.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;

use crate::routes::{AreaRoute, AreaSpf, LinkStateRoute, RouteScope, winners};
use fabric_core::ids::NodeId;
use fabric_core::link_state::area_id::AreaId;

/// Why an area's candidate was or was not used.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum CandidateVerdict {
    Chosen,
    /// Another area is cheaper in the same scope.
    HigherCost,
    /// Some area reaches the destination without leaving it, which always
    /// wins over a border router's summary.
    InterAreaLosesToIntraArea,
}

/// One area's offer.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AreaCandidate {
    pub area: AreaId,
    pub scope: RouteScope,
    pub cost: u64,
    pub next_hops: Vec<NodeId>,
    /// Where the destination lives.
    pub source_area: AreaId,
    /// Border routers whose summaries give this cost (inter-area only).
    pub via: Vec<NodeId>,
    pub verdict: CandidateVerdict,
}

/// One shortest path through one next hop.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ExplainedPath {
    pub next_hop: NodeId,
    pub area: AreaId,
    /// From this node to the destination (intra-area), or to the border
    /// router whose summary is used (inter-area).
    pub path: Vec<NodeId>,
    /// Inter-area only: the border router, and its advertised cost from
    /// there to the destination.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub via_border_router: Option<NodeId>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub summary_cost: Option<u64>,
    /// Within `maxPaths`, i.e. used for forwarding.
    pub used: bool,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RouteExplanation {
    pub destination: NodeId,
    /// The installed route; `None` when no area reaches the destination.
    pub route: Option<LinkStateRoute>,
    /// All equal-cost next hops of the winning candidates, in id order.
    pub equal_cost_next_hops: Vec<NodeId>,
    /// The ones `maxPaths` left out.
    pub dropped_by_max_paths: Vec<NodeId>,
    pub candidates: Vec<AreaCandidate>,
    pub paths: Vec<ExplainedPath>,
}

/// Builds the explanation from each area's SPF state and view.
pub(crate) fn explain_route<'a>(
    destination: &NodeId,
    areas: impl IntoIterator<Item = (&'a AreaId, &'a AreaSpf, &'a BTreeMap<NodeId, AreaRoute>)>,
    route: Option<&LinkStateRoute>,
    max_paths: usize,
) -> RouteExplanation {
    let areas: Vec<(&AreaId, &AreaSpf, &AreaRoute)> =
        areas.into_iter().filter_map(|(area, spf, view)| view.get(destination).map(|r| (area, spf, r))).collect();
    let mut explanation = RouteExplanation {
        destination: destination.clone(),
        route: route.cloned(),
        equal_cost_next_hops: Vec::new(),
        dropped_by_max_paths: Vec::new(),
        candidates: Vec::new(),
        paths: Vec::new(),
    };
    if areas.is_empty() {
        return explanation;
    }
    let offers: Vec<(&AreaId, &AreaRoute)> = areas.iter().map(|(area, _, r)| (*area, *r)).collect();
    let won = winners(&offers);
    let best_scope = won[0].1.scope;
    for (area, candidate) in &offers {
        let verdict = if won.iter().any(|(a, _)| a == area) {
            CandidateVerdict::Chosen
        } else if candidate.scope != best_scope {
            CandidateVerdict::InterAreaLosesToIntraArea
        } else {
            CandidateVerdict::HigherCost
        };
        explanation.candidates.push(AreaCandidate {
            area: (*area).clone(),
            scope: candidate.scope,
            cost: candidate.cost,
            next_hops: candidate.next_hops.clone(),
            source_area: candidate.source_area.clone(),
            via: candidate.via.clone(),
            verdict,
        });
    }

    let all_hops: BTreeSet<&NodeId> = won.iter().flat_map(|(_, r)| &r.next_hops).collect();
    explanation.equal_cost_next_hops = all_hops.iter().map(|h| (*h).clone()).collect();
    explanation.dropped_by_max_paths = all_hops.iter().skip(max_paths).map(|h| (*h).clone()).collect();
    for (position, hop) in all_hops.into_iter().enumerate() {
        let Some((area, spf, candidate)) =
            areas.iter().find(|(area, _, r)| won.iter().any(|(a, _)| a == area) && r.next_hops.contains(hop))
        else {
            continue;
        };
        if let Some(path) = explain_path(spf, destination, hop, candidate) {
            explanation.paths.push(ExplainedPath {
                next_hop: hop.clone(),
                area: (*area).clone(),
                used: position < max_paths,
                ..path
            });
        }
    }
    explanation
}

/// One shortest path through `hop`: to the destination for an intra-area
/// candidate, to the first border router reached through `hop` for an
/// inter-area one.
fn explain_path(spf: &AreaSpf, destination: &NodeId, hop: &NodeId, candidate: &AreaRoute) -> Option<ExplainedPath> {
    let result = spf.result.as_ref()?;
    let topology = &spf.topology;
    let hop_index = topology.index_of(hop)?;
    let names = |path: Vec<u32>| path.into_iter().map(|i| topology.node(i).clone()).collect::<Vec<_>>();
    let blank = |path, via_border_router, summary_cost| ExplainedPath {
        next_hop: hop.clone(),
        area: AreaId::from(""),
        path,
        via_border_router,
        summary_cost,
        used: false,
    };
    match candidate.scope {
        RouteScope::IntraArea => {
            let target = topology.index_of(destination)?;
            Some(blank(names(result.path_via(topology, target, hop_index)?), None, None))
        }
        RouteScope::InterArea => candidate.via.iter().find_map(|border| {
            let target = topology.index_of(border)?;
            let path = result.path_via(topology, target, hop_index)?;
            let summary_cost = candidate.cost - result.cost(target)?;
            Some(blank(names(path), Some(border.clone()), Some(summary_cost)))
        }),
    }
}
