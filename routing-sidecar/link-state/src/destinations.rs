//! Routes to destination names: what nodes serve, as advertised in their
//! updates, on top of the routes to the nodes themselves.
//!
//! After SPF, each area offers a destination through every node of the area
//! that advertises it (cost to that node plus its metric) and, when no node
//! of the area serves it, through every border router whose summary lists
//! it (cost to the border router plus the summarized cost, if the summary
//! policy lets it into the area). Per area the lowest cost wins; equal
//! costs pool their next hops. The areas are then merged like node routes:
//! an intra-area offer beats any inter-area one, the lowest cost wins, and
//! equal costs of several areas pool their next hops, capped at `maxPaths`
//! in id order.
//!
//! Ties are broken deterministically: next hops and serving nodes are kept
//! in id order, and the tags, latency and reliability of a route are those
//! of the first equal-cost offer, areas in id order and, within an area,
//! serving nodes (or border routers) in id order. Destinations this node
//! serves itself get no route: they are answered locally.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;

use crate::lsdb::AreaLsdb;
use crate::routes::{AreaSpf, Ranked, RouteScope, winners};
use fabric_core::ids::{DestinationId, NodeId, Tag};
use fabric_core::link_state::area::{DestinationCandidate, FilterVerdict, SummaryPolicy};
use fabric_core::link_state::area_id::AreaId;
use fabric_core::link_state::lsa::DestinationAdvert;

/// A destination this node serves, as the IO layer gives it (in the
/// sidecar: an `originate` entry).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct LocalDestination {
    pub name: DestinationId,
    /// Added to the cost of reaching this node.
    pub metric: u32,
    pub tags: Vec<Tag>,
}

/// Why a local destination was not advertised.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RefusedDestination {
    pub name: DestinationId,
    pub reason: &'static str,
}

/// The advertised set: sorted by name, tags sorted without duplicates;
/// empty names and repeated names are refused (the first copy is kept).
pub fn normalize_local(destinations: Vec<LocalDestination>) -> (Vec<DestinationAdvert>, Vec<RefusedDestination>) {
    let mut by_name: BTreeMap<DestinationId, DestinationAdvert> = BTreeMap::new();
    let mut refused = Vec::new();
    for destination in destinations {
        let reason = if destination.name.as_str().is_empty() {
            Some("empty name")
        } else if destination.tags.iter().any(|tag| tag.as_str().is_empty()) {
            Some("empty tag")
        } else if by_name.contains_key(&destination.name) {
            Some("listed twice")
        } else {
            None
        };
        if let Some(reason) = reason {
            refused.push(RefusedDestination { name: destination.name, reason });
            continue;
        }
        let tags: BTreeSet<Tag> = destination.tags.into_iter().collect();
        let advert = DestinationAdvert {
            name: destination.name.clone(),
            metric: destination.metric,
            tags: tags.into_iter().collect(),
        };
        by_name.insert(destination.name, advert);
    }
    (by_name.into_values().collect(), refused)
}

/// One area's best way to a destination name.
#[derive(Clone, Debug, PartialEq)]
pub struct AreaDestinationRoute {
    pub cost: u64,
    /// Every equal-cost next hop, uncapped, in id order.
    pub next_hops: Vec<NodeId>,
    pub scope: RouteScope,
    /// The area of the serving node.
    pub source_area: AreaId,
    /// The serving nodes (intra-area) or border routers (inter-area) that
    /// give this cost, in id order.
    pub via: Vec<NodeId>,
    pub tags: Vec<Tag>,
    pub latency_us: u32,
    pub reliability: f32,
}

impl Ranked for AreaDestinationRoute {
    fn scope(&self) -> RouteScope {
        self.scope
    }

    fn cost(&self) -> u64 {
        self.cost
    }
}

/// The link-state route to one destination name.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DestinationRoute {
    pub destination: DestinationId,
    /// Cost to the serving node plus its metric (or to the border router
    /// plus the summarized cost).
    pub cost: u64,
    /// Equal-cost next hops in id order, at most `maxPaths`.
    pub next_hops: Vec<NodeId>,
    pub scope: RouteScope,
    /// Areas whose equal-cost offers make up the route, in id order.
    pub areas: Vec<AreaId>,
    /// Serving nodes (intra-area) or border routers (inter-area) of the
    /// equal-cost offers, in id order.
    pub via: Vec<NodeId>,
    pub tags: Vec<Tag>,
    /// Along the path to the first `via` of the first area.
    pub latency_us: u32,
    pub reliability: f32,
}

/// A change of the destination route table.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase", tag = "change")]
pub enum DestinationRouteChange {
    Added { route: DestinationRoute },
    Changed { old: DestinationRoute, new: DestinationRoute },
    Removed { route: DestinationRoute },
}

/// What one node or border router offers for a destination in one area.
#[derive(Clone, Debug, PartialEq)]
struct Offer<'a> {
    scope: RouteScope,
    via: &'a NodeId,
    source_area: &'a AreaId,
    /// The serving node's metric, or the summarized cost.
    advertised_cost: u64,
    tags: &'a [Tag],
}

/// Every offer of every destination name in one area, by name, intra-area
/// offers first, each kind in `via` order. Offers of this node itself and
/// of names it serves are left out.
fn area_offers<'a>(
    node: &NodeId,
    lsdb: &'a AreaLsdb,
    local: &BTreeSet<&DestinationId>,
) -> BTreeMap<&'a DestinationId, Vec<Offer<'a>>> {
    let mut offers: BTreeMap<&DestinationId, Vec<Offer>> = BTreeMap::new();
    let area = lsdb.area();
    for update in lsdb.live_updates().filter(|u| &u.origin != node) {
        for advert in update.destinations.iter().filter(|d| !local.contains(&d.name)) {
            offers.entry(&advert.name).or_default().push(Offer {
                scope: RouteScope::IntraArea,
                via: &update.origin,
                source_area: area,
                advertised_cost: u64::from(advert.metric),
                tags: &advert.tags,
            });
        }
    }
    for update in lsdb.live_updates().filter(|u| &u.origin != node) {
        for entry in update.summary.iter().flat_map(|s| &s.destinations).filter(|d| !local.contains(&d.name)) {
            offers.entry(&entry.name).or_default().push(Offer {
                scope: RouteScope::InterArea,
                via: &update.origin,
                source_area: &entry.source_area,
                advertised_cost: u64::from(entry.cost),
                tags: &entry.tags,
            });
        }
    }
    offers
}

/// Whether the summary policy lets an inter-area offer into `area`.
fn admitted(offer: &Offer, area: &AreaId, name: &DestinationId, policy: &SummaryPolicy) -> Result<(), FilterVerdict> {
    match offer.scope {
        RouteScope::IntraArea => Ok(()),
        RouteScope::InterArea => policy.permits_name(offer.source_area, area, name.as_str()),
    }
}

/// Cost, next hops and path metrics to a node, as `AreaSpf::reach` gives.
type Reach = Option<(u64, Vec<NodeId>, crate::spf::PathMetrics)>;

/// The best route of one area to each destination name it offers.
pub fn area_destination_routes(
    node: &NodeId,
    spf: &AreaSpf,
    lsdb: &AreaLsdb,
    policy: &SummaryPolicy,
    local: &BTreeSet<&DestinationId>,
) -> BTreeMap<DestinationId, AreaDestinationRoute> {
    let area = lsdb.area();
    let mut routes = BTreeMap::new();
    let mut reach_cache: BTreeMap<&NodeId, Reach> = BTreeMap::new();
    for (name, offers) in area_offers(node, lsdb, local) {
        let mut best: Option<AreaDestinationRoute> = None;
        for offer in &offers {
            // Offers are intra-area first: a reachable serving node in the
            // area ends the search before any summary is looked at.
            if offer.scope == RouteScope::InterArea && best.as_ref().is_some_and(|b| b.scope == RouteScope::IntraArea) {
                break;
            }
            if admitted(offer, area, name, policy).is_err() {
                continue;
            }
            let reach = reach_cache.entry(offer.via).or_insert_with(|| spf.reach(offer.via));
            let Some((to_via, hops, metrics)) = reach else { continue };
            let cost = *to_via + offer.advertised_cost;
            match &mut best {
                Some(kept) if cost > kept.cost => {}
                Some(kept) if cost == kept.cost => {
                    kept.via.push(offer.via.clone());
                    kept.next_hops = union(&kept.next_hops, hops);
                }
                _ => {
                    best = Some(AreaDestinationRoute {
                        cost,
                        next_hops: hops.clone(),
                        scope: offer.scope,
                        source_area: offer.source_area.clone(),
                        via: vec![offer.via.clone()],
                        tags: offer.tags.to_vec(),
                        latency_us: metrics.latency_us,
                        reliability: metrics.reliability,
                    })
                }
            }
        }
        if let Some(route) = best {
            routes.insert(name.clone(), route);
        }
    }
    routes
}

fn union(a: &[NodeId], b: &[NodeId]) -> Vec<NodeId> {
    let set: BTreeSet<&NodeId> = a.iter().chain(b).collect();
    set.into_iter().cloned().collect()
}

fn merge(name: &DestinationId, candidates: &[(&AreaId, &AreaDestinationRoute)], max_paths: usize) -> DestinationRoute {
    let tied = winners(candidates);
    let (_, first) = tied[0];
    let hops: BTreeSet<&NodeId> = tied.iter().flat_map(|(_, r)| &r.next_hops).collect();
    let via: BTreeSet<&NodeId> = tied.iter().flat_map(|(_, r)| &r.via).collect();
    DestinationRoute {
        destination: name.clone(),
        cost: first.cost,
        next_hops: hops.into_iter().take(max_paths).cloned().collect(),
        scope: first.scope,
        areas: tied.iter().map(|(area, _)| (*area).clone()).collect(),
        via: via.into_iter().cloned().collect(),
        tags: first.tags.clone(),
        latency_us: first.latency_us,
        reliability: first.reliability,
    }
}

/// Per-area destination views and the merged destination route table of
/// one router.
#[derive(Clone, Debug, Default)]
pub struct DestinationTable {
    views: BTreeMap<AreaId, BTreeMap<DestinationId, AreaDestinationRoute>>,
    routes: BTreeMap<DestinationId, DestinationRoute>,
}

impl DestinationTable {
    pub fn routes(&self) -> &BTreeMap<DestinationId, DestinationRoute> {
        &self.routes
    }

    pub fn route(&self, name: &DestinationId) -> Option<&DestinationRoute> {
        self.routes.get(name)
    }

    /// The view of one area (the routes it offers before merging).
    pub fn view(&self, area: &AreaId) -> Option<&BTreeMap<DestinationId, AreaDestinationRoute>> {
        self.views.get(area)
    }

    /// What each area offers for export to its parents: every name of its
    /// view with the area it lives in.
    pub fn export_candidates(&self) -> BTreeMap<AreaId, Vec<DestinationCandidate>> {
        self.views
            .iter()
            .map(|(area, view)| {
                let candidates = view
                    .iter()
                    .map(|(name, route)| DestinationCandidate {
                        name: name.clone(),
                        source_area: route.source_area.clone(),
                        cost: route.cost,
                        tags: route.tags.clone(),
                    })
                    .collect();
                (area.clone(), candidates)
            })
            .collect()
    }

    /// Rebuilds every area view from its SPF result and database and merges
    /// them; returns the changes in name order. Called right after SPF,
    /// wherever node routes are recomputed.
    pub fn recompute<'a>(
        &mut self,
        node: &NodeId,
        areas: impl IntoIterator<Item = (&'a AreaId, Option<&'a AreaSpf>, &'a AreaLsdb)>,
        policy: &SummaryPolicy,
        max_paths: usize,
        local: &[DestinationAdvert],
    ) -> Vec<DestinationRouteChange> {
        let local: BTreeSet<&DestinationId> = local.iter().map(|d| &d.name).collect();
        self.views = areas
            .into_iter()
            .filter_map(|(area, spf, lsdb)| {
                spf.map(|spf| (area.clone(), area_destination_routes(node, spf, lsdb, policy, &local)))
            })
            .collect();
        let mut candidates: BTreeMap<&DestinationId, Vec<(&AreaId, &AreaDestinationRoute)>> = BTreeMap::new();
        for (area, view) in &self.views {
            for (name, route) in view {
                candidates.entry(name).or_default().push((area, route));
            }
        }
        let routes: BTreeMap<DestinationId, DestinationRoute> =
            candidates.into_iter().map(|(name, offers)| (name.clone(), merge(name, &offers, max_paths))).collect();
        let changes = diff(&self.routes, &routes);
        self.routes = routes;
        changes
    }
}

fn diff(
    old: &BTreeMap<DestinationId, DestinationRoute>,
    new: &BTreeMap<DestinationId, DestinationRoute>,
) -> Vec<DestinationRouteChange> {
    let names: BTreeSet<&DestinationId> = old.keys().chain(new.keys()).collect();
    names
        .into_iter()
        .filter_map(|name| match (old.get(name), new.get(name)) {
            (Some(route), None) => Some(DestinationRouteChange::Removed { route: route.clone() }),
            (None, Some(route)) => Some(DestinationRouteChange::Added { route: route.clone() }),
            (Some(a), Some(b)) if a != b => Some(DestinationRouteChange::Changed { old: a.clone(), new: b.clone() }),
            _ => None,
        })
        .collect()
}

/// Why an offer was or was not used.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum OfferVerdict {
    Chosen,
    /// Another offer is cheaper in the same scope.
    HigherCost,
    /// A node of some area serves the destination, which always wins over
    /// a border router's summary.
    InterAreaLosesToIntraArea,
    /// SPF does not reach the serving node or border router.
    Unreachable,
    /// The summary policy keeps this summary out of the area.
    RefusedBySummaryPolicy,
}

/// One offer of a destination, as `explain` shows it.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ExplainedOffer {
    pub area: AreaId,
    pub scope: RouteScope,
    /// The serving node (intra-area) or border router (inter-area).
    pub via: NodeId,
    pub source_area: AreaId,
    /// SPF cost to `via`; absent when unreachable.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cost_to_via: Option<u64>,
    /// The serving node's metric, or the summarized cost.
    pub advertised_cost: u64,
    /// `cost_to_via + advertised_cost`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cost: Option<u64>,
    pub next_hops: Vec<NodeId>,
    pub tags: Vec<Tag>,
    pub verdict: OfferVerdict,
    /// One shortest path per next hop, from this node to `via`.
    pub paths: Vec<Vec<NodeId>>,
}

/// Why the route to a destination name is what it is.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DestinationExplanation {
    pub destination: DestinationId,
    /// This node serves the destination itself (answered locally).
    pub served_locally: bool,
    pub route: Option<DestinationRoute>,
    /// Every equal-cost next hop of the chosen offers, in id order.
    pub equal_cost_next_hops: Vec<NodeId>,
    /// The ones `maxPaths` left out.
    pub dropped_by_max_paths: Vec<NodeId>,
    /// Every offer of every area, areas in id order, intra-area offers
    /// first, then by `via`.
    pub offers: Vec<ExplainedOffer>,
}

/// Builds the explanation of `name` from each area's SPF state and
/// database.
pub fn explain_destination<'a>(
    node: &NodeId,
    name: &DestinationId,
    areas: impl IntoIterator<Item = (&'a AreaId, &'a AreaSpf, &'a AreaLsdb)>,
    policy: &SummaryPolicy,
    local: &[DestinationAdvert],
    route: Option<&DestinationRoute>,
    max_paths: usize,
) -> DestinationExplanation {
    let served_locally = local.iter().any(|d| &d.name == name);
    let mut explanation = DestinationExplanation {
        destination: name.clone(),
        served_locally,
        route: route.cloned(),
        equal_cost_next_hops: Vec::new(),
        dropped_by_max_paths: Vec::new(),
        offers: Vec::new(),
    };
    if served_locally {
        return explanation;
    }
    let no_local = BTreeSet::new();
    for (area, spf, lsdb) in areas {
        let offers = area_offers(node, lsdb, &no_local);
        let Some(offers) = offers.get(name) else { continue };
        let has_intra = offers.iter().any(|o| o.scope == RouteScope::IntraArea && spf.reach(o.via).is_some());
        for offer in offers {
            let reach = spf.reach(offer.via);
            let refused = admitted(offer, area, name, policy).is_err();
            let cost = reach.as_ref().map(|(to_via, _, _)| to_via + offer.advertised_cost);
            let verdict = if has_intra && offer.scope == RouteScope::InterArea {
                OfferVerdict::InterAreaLosesToIntraArea
            } else if refused {
                OfferVerdict::RefusedBySummaryPolicy
            } else if reach.is_none() {
                OfferVerdict::Unreachable
            } else {
                // Settled below against the installed route.
                OfferVerdict::HigherCost
            };
            let next_hops = reach.as_ref().map(|(_, hops, _)| hops.clone()).unwrap_or_default();
            let paths = paths_to(spf, offer.via, &next_hops);
            explanation.offers.push(ExplainedOffer {
                area: area.clone(),
                scope: offer.scope,
                via: offer.via.clone(),
                source_area: offer.source_area.clone(),
                cost_to_via: reach.as_ref().map(|(to_via, _, _)| *to_via),
                advertised_cost: offer.advertised_cost,
                cost,
                next_hops,
                tags: offer.tags.to_vec(),
                verdict,
                paths,
            });
        }
    }
    if let Some(route) = route {
        let mut hops = BTreeSet::new();
        for offer in &mut explanation.offers {
            let chosen = offer.verdict == OfferVerdict::HigherCost
                && route.areas.contains(&offer.area)
                && offer.scope == route.scope
                && offer.cost == Some(route.cost);
            if chosen {
                offer.verdict = OfferVerdict::Chosen;
                hops.extend(offer.next_hops.iter().cloned());
            } else if offer.verdict == OfferVerdict::HigherCost && offer.scope != route.scope {
                offer.verdict = OfferVerdict::InterAreaLosesToIntraArea;
            }
        }
        explanation.equal_cost_next_hops = hops.iter().cloned().collect();
        explanation.dropped_by_max_paths = hops.into_iter().skip(max_paths).collect();
    }
    explanation
}

/// One shortest path per next hop from this node to `via`.
fn paths_to(spf: &AreaSpf, via: &NodeId, next_hops: &[NodeId]) -> Vec<Vec<NodeId>> {
    let (Some(result), Some(target)) = (spf.result.as_ref(), spf.topology.index_of(via)) else {
        return Vec::new();
    };
    next_hops
        .iter()
        .filter_map(|hop| {
            let hop = spf.topology.index_of(hop)?;
            let path = result.path_via(&spf.topology, target, hop)?;
            Some(path.into_iter().map(|i| spf.topology.node(i).clone()).collect())
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::router::{LinkStateEvent, LinkStateInput, LinkStateOutput, LinkStateRouter, LocalLink};
    use crate::stats::UpdateRejectReason;
    use fabric_core::ids::KeyId;
    use fabric_core::link_state::area::SummaryFilter;
    use fabric_core::link_state::config::{AreaConfig, LinkStateConfig, SpfThrottleConfig};
    use fabric_core::link_state::lsa::fixtures::{destination, link, update};
    use fabric_core::link_state::lsa::{AreaSummary, LinkStateUpdate, SummaryDestination, sign_update};
    use fabric_core::security::{KeyRegistry, SigningIdentity};
    use fabric_core::time::Timestamp;

    const T0: Timestamp = Timestamp(1_000_000);

    /// Routes computed in the call that changed them, so each step can be
    /// checked at once (the throttle has its own tests).
    fn immediate() -> LinkStateConfig {
        LinkStateConfig { spf_throttle: SpfThrottleConfig::IMMEDIATE, ..LinkStateConfig::default() }
    }

    fn id(name: &str) -> NodeId {
        NodeId::from(name)
    }

    fn name(value: &str) -> DestinationId {
        DestinationId::from(value)
    }

    fn local(neighbor: &str, area: &str, cost: u32) -> LocalLink {
        LocalLink { neighbor: id(neighbor), area: AreaId::from(area), cost, latency_us: 100, reliability: 1.0 }
    }

    fn serving(mut u: LinkStateUpdate, destinations: Vec<DestinationAdvert>) -> LinkStateUpdate {
        u.destinations = destinations;
        u
    }

    fn receive(router: &mut LinkStateRouter, from: &str, update: LinkStateUpdate) -> LinkStateOutput {
        router.handle(LinkStateInput::UpdateReceived { from: id(from), update }, T0)
    }

    /// "me" in area x with links to n1 and n2 (cost 1 each); n1 and n2
    /// both link to far (cost 1), so far is two hops away through either.
    fn square(config: LinkStateConfig) -> LinkStateRouter {
        let mut router = LinkStateRouter::new(id("me"), config).unwrap();
        router.handle(LinkStateInput::LocalLinksChanged { links: vec![local("n1", "x", 1), local("n2", "x", 1)] }, T0);
        receive(&mut router, "n1", update("n1", "x", 1, vec![link("me", 1), link("far", 1)]));
        receive(&mut router, "n2", update("n2", "x", 1, vec![link("me", 1), link("far", 1)]));
        receive(&mut router, "n1", update("far", "x", 1, vec![link("n1", 1), link("n2", 1)]));
        router
    }

    fn hops(route: &DestinationRoute) -> Vec<&str> {
        route.next_hops.iter().map(NodeId::as_str).collect()
    }

    fn via(route: &DestinationRoute) -> Vec<&str> {
        route.via.iter().map(NodeId::as_str).collect()
    }

    #[test]
    fn the_lowest_cost_to_origin_plus_metric_wins() {
        let mut router = square(immediate());
        // n1 is one hop away but its metric is 5 (total 6); far is two hops
        // away with metric 1 (total 3).
        receive(
            &mut router,
            "n1",
            serving(update("n1", "x", 2, vec![link("me", 1), link("far", 1)]), vec![destination("svc", 5, &[])]),
        );
        let out = receive(
            &mut router,
            "n1",
            serving(update("far", "x", 2, vec![link("n1", 1), link("n2", 1)]), vec![destination("svc", 1, &["eu"])]),
        );
        let route = router.destination_route(&name("svc")).expect("routed");
        assert_eq!((route.cost, via(route), hops(route)), (3, vec!["far"], vec!["n1", "n2"]));
        assert_eq!(route.tags, [Tag::from("eu")]);
        assert_eq!(route.scope, RouteScope::IntraArea);
        assert!(matches!(&out.destination_changes[..], [DestinationRouteChange::Changed { old, .. }] if old.cost == 6));
        // Node routes are unaffected by destination names.
        assert!(router.route(&id("svc")).is_none());
        assert_eq!(router.route(&id("far")).unwrap().cost, 2);
    }

    #[test]
    fn equal_costs_merge_next_hops_up_to_max_paths_and_ties_take_the_lowest_origin() {
        let mut router = LinkStateRouter::new(id("me"), immediate()).unwrap();
        router.handle(LinkStateInput::LocalLinksChanged { links: vec![local("n1", "x", 1), local("n2", "x", 1)] }, T0);
        // Two nodes serve "svc" at the same total cost (1 + 2) with other tags.
        receive(
            &mut router,
            "n2",
            serving(update("n2", "x", 1, vec![link("me", 1)]), vec![destination("svc", 2, &["b"])]),
        );
        receive(
            &mut router,
            "n1",
            serving(update("n1", "x", 1, vec![link("me", 1)]), vec![destination("svc", 2, &["a"])]),
        );
        let route = router.destination_route(&name("svc")).unwrap();
        assert_eq!((route.cost, hops(route), via(route)), (3, vec!["n1", "n2"], vec!["n1", "n2"]));
        assert_eq!(route.tags, [Tag::from("a")], "tags of the lowest origin id");

        let config = LinkStateConfig { max_paths: 1, ..immediate() };
        router.handle(LinkStateInput::ConfigChanged(Box::new(config)), T0);
        let route = router.destination_route(&name("svc")).unwrap();
        assert_eq!(hops(route), ["n1"]);
        let explanation = router.explain_destination(&name("svc"));
        assert_eq!(explanation.equal_cost_next_hops, [id("n1"), id("n2")]);
        assert_eq!(explanation.dropped_by_max_paths, [id("n2")]);
        let verdicts: Vec<(&str, OfferVerdict)> =
            explanation.offers.iter().map(|o| (o.via.as_str(), o.verdict)).collect();
        assert_eq!(verdicts, [("n1", OfferVerdict::Chosen), ("n2", OfferVerdict::Chosen)]);
    }

    #[test]
    fn a_destination_is_withdrawn_when_its_origin_stops_advertising_it_or_becomes_unreachable() {
        let mut router = square(immediate());
        receive(
            &mut router,
            "n1",
            serving(
                update("far", "x", 2, vec![link("n1", 1), link("n2", 1)]),
                vec![destination("a", 0, &[]), destination("b", 0, &[])],
            ),
        );
        assert_eq!(router.destination_routes().keys().map(DestinationId::as_str).collect::<Vec<_>>(), ["a", "b"]);

        // far stops advertising "a": only the name goes, no SPF run needed.
        let runs = router.counters().spf_runs;
        let out = receive(
            &mut router,
            "n1",
            serving(update("far", "x", 3, vec![link("n1", 1), link("n2", 1)]), vec![destination("b", 0, &[])]),
        );
        assert_eq!(router.counters().spf_runs, runs);
        assert!(
            matches!(&out.destination_changes[..], [DestinationRouteChange::Removed { route }] if route.destination == name("a"))
        );

        // far becomes unreachable: n1 and n2 drop their links to it.
        receive(&mut router, "n1", update("n1", "x", 2, vec![link("me", 1)]));
        let out = receive(&mut router, "n2", update("n2", "x", 2, vec![link("me", 1)]));
        assert!(router.destination_routes().is_empty());
        assert!(
            matches!(&out.destination_changes[..], [DestinationRouteChange::Removed { route }] if route.destination == name("b"))
        );
        let explanation = router.explain_destination(&name("b"));
        assert_eq!(explanation.offers.len(), 1);
        assert_eq!(explanation.offers[0].verdict, OfferVerdict::Unreachable);
        assert!(explanation.route.is_none());
    }

    #[test]
    fn a_malformed_destination_list_is_refused_and_counted() {
        let mut router = square(immediate());
        let unsorted = serving(
            update("far", "x", 2, vec![link("n1", 1), link("n2", 1)]),
            vec![destination("b", 0, &[]), destination("a", 0, &[])],
        );
        let out = receive(&mut router, "n1", unsorted);
        assert!(matches!(
            &out.events[..],
            [LinkStateEvent::UpdateRejected { reason: UpdateRejectReason::Invalid, detail, .. }] if detail.contains("destinations[1]")
        ));
        assert_eq!(router.counters().rejects(UpdateRejectReason::Invalid), 1);
        assert!(router.destination_routes().is_empty());
        // The last good copy of far stays.
        assert_eq!(router.lsdb(&AreaId::from("x")).unwrap().get(&id("far")).unwrap().update.sequence, 1);
    }

    #[test]
    fn signatures_cover_destinations() {
        let config = LinkStateConfig { require_signatures: true, ..immediate() };
        let mut router = LinkStateRouter::new(id("me"), config).unwrap();
        router.handle(LinkStateInput::LocalLinksChanged { links: vec![local("n1", "x", 1)] }, T0);
        let identity = SigningIdentity::from_secret_bytes(KeyId::from("k1"), &[3; 32]);
        router.set_key_registry(KeyRegistry::from_entries([identity.public_entry(id("n1"), None, None)]));

        let mut signed = serving(update("n1", "x", 1, vec![link("me", 1)]), vec![destination("svc", 1, &[])]);
        sign_update(&identity, &mut signed);
        let mut forged = signed.clone();
        forged.destinations[0].metric = 0;
        receive(&mut router, "n1", forged);
        assert_eq!(router.counters().rejects(UpdateRejectReason::BadSignature), 1);
        assert!(router.destination_routes().is_empty());

        receive(&mut router, "n1", signed);
        assert_eq!(router.destination_route(&name("svc")).unwrap().cost, 2);

        // Without destinations an update is signed exactly as before.
        let mut plain = update("n1", "x", 2, vec![link("me", 1)]);
        sign_update(&identity, &mut plain);
        receive(&mut router, "n1", plain);
        assert_eq!(router.counters().rejects(UpdateRejectReason::BadSignature), 1);
        assert!(router.destination_routes().is_empty(), "n1 no longer serves svc");
    }

    #[test]
    fn local_destinations_are_advertised_in_every_area_and_not_routed() {
        let mut router = LinkStateRouter::new(id("me"), immediate()).unwrap();
        router.handle(LinkStateInput::LocalLinksChanged { links: vec![local("n1", "x", 1), local("n3", "y", 1)] }, T0);
        let mine = |n: &str, metric: u32, tags: &[&str]| LocalDestination {
            name: name(n),
            metric,
            tags: tags.iter().map(|t| Tag::from(*t)).collect(),
        };
        let out = router.handle(
            LinkStateInput::LocalDestinations(vec![
                mine("web", 2, &["z", "a", "z"]),
                mine("", 1, &[]),
                mine("api", 0, &[]),
            ]),
            T0,
        );
        assert!(
            matches!(&out.events[0], LinkStateEvent::LocalDestinationRefused { reason, .. } if reason == "empty name")
        );
        let sent: Vec<(&str, Vec<&str>)> = out
            .send
            .iter()
            .map(|s| (s.to.as_str(), s.update.destinations.iter().map(|d| d.name.as_str()).collect()))
            .collect();
        assert_eq!(sent, [("n1", vec!["api", "web"]), ("n3", vec!["api", "web"])]);
        assert_eq!(out.send[0].update.destinations[1].tags, [Tag::from("a"), Tag::from("z")]);

        // The same set again is not news.
        let out = router
            .handle(LinkStateInput::LocalDestinations(vec![mine("api", 0, &[]), mine("web", 2, &["a", "z"])]), T0);
        assert!(out.send.is_empty());

        // n1 serving "web" too does not make this node route away from itself.
        receive(
            &mut router,
            "n1",
            serving(update("n1", "x", 1, vec![link("me", 1)]), vec![destination("web", 0, &[])]),
        );
        assert!(router.destination_route(&name("web")).is_none());
        assert!(router.explain_destination(&name("web")).served_locally);
    }

    /// "abr" sits in child area `edge` (link to e1) and parent area `core`
    /// (link to c1); `core` refuses `lab-*` names.
    fn border_config() -> LinkStateConfig {
        LinkStateConfig {
            areas: vec![
                AreaConfig { id: AreaId::from("edge"), parents: vec![AreaId::from("core")], max_summary_entries: None },
                AreaConfig { id: AreaId::from("core"), parents: Vec::new(), max_summary_entries: None },
            ],
            summary_filters: vec![SummaryFilter {
                deny_destinations: vec!["lab-*".into()],
                ..SummaryFilter::new(AreaId::from("core"))
            }],
            ..immediate()
        }
    }

    #[test]
    fn a_border_router_summarizes_destinations_and_the_filter_denies_one() {
        let mut abr = LinkStateRouter::new(id("abr"), border_config()).unwrap();
        abr.handle(
            LinkStateInput::LocalLinksChanged { links: vec![local("e1", "edge", 2), local("c1", "core", 1)] },
            T0,
        );
        let out = receive(
            &mut abr,
            "e1",
            serving(
                update("e1", "edge", 1, vec![link("abr", 2)]),
                vec![destination("lab-x", 1, &[]), destination("svc", 3, &["t"])],
            ),
        );
        let to_core = out
            .send
            .iter()
            .find(|s| s.to.as_str() == "c1" && s.update.origin.as_str() == "abr")
            .expect("summary for core");
        let summary = to_core.update.summary.as_ref().expect("summary");
        assert_eq!(
            summary.destinations,
            [SummaryDestination {
                name: name("svc"),
                source_area: AreaId::from("edge"),
                cost: 5,
                tags: vec![Tag::from("t")]
            }]
        );
        assert_eq!(summary.entries.iter().map(|e| e.destination.as_str()).collect::<Vec<_>>(), ["e1"]);
        let pair = fabric_core::link_state::area::AreaPair {
            source_area: AreaId::from("edge"),
            target_area: AreaId::from("core"),
        };
        assert_eq!(abr.exports().counts[&pair].filtered, 1, "lab-x stopped at export");
        assert_eq!(abr.exports().counts[&pair].exported, 2, "e1 and svc");

        // A node of core reaches svc through the border router: cost to
        // abr (1) plus the summarized cost (5).
        let mut c1 = LinkStateRouter::new(id("c1"), border_config()).unwrap();
        c1.handle(LinkStateInput::LocalLinksChanged { links: vec![local("abr", "core", 1)] }, T0);
        receive(&mut c1, "abr", (*to_core.update).clone());
        let route = c1.destination_route(&name("svc")).unwrap();
        assert_eq!(
            (route.cost, route.scope, via(route), hops(route)),
            (6, RouteScope::InterArea, vec!["abr"], vec!["abr"])
        );

        // A border router that leaks a denied name: the receiver refuses and
        // counts it, and explains why.
        let mut leaky = (*to_core.update).clone();
        leaky.sequence += 1;
        leaky.summary = Some(AreaSummary {
            entries: summary.entries.clone(),
            destinations: vec![
                SummaryDestination {
                    name: name("lab-x"),
                    source_area: AreaId::from("edge"),
                    cost: 1,
                    tags: Vec::new(),
                },
                summary.destinations[0].clone(),
            ],
        });
        let out = receive(&mut c1, "abr", leaky);
        assert!(out.events.iter().any(|e| matches!(
            e,
            LinkStateEvent::SummaryEntriesRefused { refused: 1, verdict: FilterVerdict::DestinationDenied, .. }
        )));
        assert!(c1.destination_route(&name("lab-x")).is_none());
        let explanation = c1.explain_destination(&name("lab-x"));
        assert_eq!(explanation.offers[0].verdict, OfferVerdict::RefusedBySummaryPolicy);
    }

    #[test]
    fn an_intra_area_server_beats_a_cheaper_summary() {
        let mut router = LinkStateRouter::new(id("me"), border_config()).unwrap();
        router.handle(
            LinkStateInput::LocalLinksChanged { links: vec![local("abr", "core", 1), local("c2", "core", 1)] },
            T0,
        );
        let mut summary = update("abr", "core", 1, vec![link("me", 1)]);
        summary.summary = Some(AreaSummary {
            entries: Vec::new(),
            destinations: vec![SummaryDestination {
                name: name("svc"),
                source_area: AreaId::from("edge"),
                cost: 1,
                tags: Vec::new(),
            }],
        });
        receive(&mut router, "abr", summary);
        assert_eq!(router.destination_route(&name("svc")).unwrap().scope, RouteScope::InterArea);
        receive(
            &mut router,
            "c2",
            serving(update("c2", "core", 1, vec![link("me", 1)]), vec![destination("svc", 50, &[])]),
        );
        let route = router.destination_route(&name("svc")).unwrap();
        assert_eq!((route.cost, route.scope, via(route)), (51, RouteScope::IntraArea, vec!["c2"]));
        let explanation = router.explain_destination(&name("svc"));
        let verdicts: Vec<(&str, OfferVerdict)> =
            explanation.offers.iter().map(|o| (o.via.as_str(), o.verdict)).collect();
        assert_eq!(verdicts, [("c2", OfferVerdict::Chosen), ("abr", OfferVerdict::InterAreaLosesToIntraArea)]);
        assert_eq!(explanation.offers[0].paths, [vec![id("me"), id("c2")]]);
    }
}
