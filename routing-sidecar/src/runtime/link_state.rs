//! Link-state mode in the running sidecar. When the config has a
//! `linkState` section the node actor owns a `LinkStateRouter` next to the
//! path-vector engine; this module is the glue between the two and the IO:
//!
//! - the router's local links are derived from the established sessions and
//!   the config (`local_links`): one per up neighbor and area of its link,
//!   with the neighbor's configured link metrics;
//! - inputs (received updates, config changes) are collected between two
//!   flushes and handed over in one batch, so a burst costs at most one SPF
//!   run per area; SPF is timed with the runtime clock;
//! - the node's `originate` entries are the destinations it advertises
//!   (`local_destinations`), with their cost as the metric and their tags;
//! - next-hop questions are answered under the configured mode
//!   (`answer_route`), and `/link-state` and the explain view are built here.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Instant;

use serde::Serialize;

use fabric_core::config::SidecarConfig;
use fabric_core::ids::{DestinationId, NodeId, Tag};
use fabric_core::message::RouteMetrics;
use fabric_core::security::{KeyRegistry, SigningIdentity};
use fabric_core::time::Timestamp;
use fabric_engine::{BestRoute, SelectionTrace};
use fabric_link_state::{
    DestinationExplanation, DestinationRoute, DestinationRouteChange, LinkStateEvent, LinkStateInput, LinkStateOutput,
    LinkStateRoute, LinkStateRouter, LinkStateSnapshot, LinkStateUpdate, LocalDestination, LocalLink, OutgoingUpdate,
    PathVectorChoice, Protocol, RouteChange, RouteExplanation, RoutingMode, decide,
};

/// The links the router should know about: one per (up neighbor, area of
/// its link), carrying the neighbor's configured link metrics.
pub(super) fn local_links(config: &SidecarConfig, is_up: impl Fn(&NodeId) -> bool) -> Vec<LocalLink> {
    config
        .neighbors
        .iter()
        .filter(|neighbor| is_up(&neighbor.id))
        .flat_map(|neighbor| {
            config.link_state_areas_of(&neighbor.id).into_iter().map(|area| LocalLink {
                neighbor: neighbor.id.clone(),
                area,
                cost: neighbor.link.cost,
                latency_us: neighbor.link.latency_us,
                reliability: neighbor.link.reliability,
            })
        })
        .collect()
}

/// The destinations this node advertises: its `originate` entries, with
/// their cost as the metric; none when `linkState.advertiseDestinations`
/// is off.
pub(super) fn local_destinations(config: &SidecarConfig) -> Vec<LocalDestination> {
    if config.link_state.as_ref().is_some_and(|link_state| !link_state.advertise_destinations) {
        return Vec::new();
    }
    config
        .originate
        .iter()
        .map(|route| LocalDestination { name: route.destination.clone(), metric: route.cost, tags: route.tags.clone() })
        .collect()
}

/// Link-state updates verify against the same trusted keys as path-vector
/// announcements. The config was validated, so the registry builds; should
/// it not, no key is trusted rather than the node stopping.
fn key_registry(config: &SidecarConfig) -> KeyRegistry {
    config.key_registry().unwrap_or_else(|error| {
        tracing::error!(error = %error, "link-state: trusted keys refused; no key is trusted");
        KeyRegistry::new()
    })
}

/// The link-state router of one running node and what it was last told.
pub(super) struct LinkStateRuntime {
    router: LinkStateRouter,
    /// Inputs since the last flush, in arrival order.
    pending: Vec<LinkStateInput>,
    /// The local links the router was last given.
    fed_links: Vec<LocalLink>,
    /// The local destinations the router was last given, or is given at the
    /// next flush.
    fed_destinations: Vec<LocalDestination>,
    /// The destinations changed since the last flush. Given before the
    /// links, so joining an area originates them in the first update.
    destinations_changed: bool,
    /// Peers whose session came up since the last flush.
    reconnected: BTreeSet<NodeId>,
}

impl std::fmt::Debug for LinkStateRuntime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LinkStateRuntime").field("router", &self.router).finish_non_exhaustive()
    }
}

impl LinkStateRuntime {
    /// The runtime for `config`; `None` when it has no `linkState` section.
    pub(super) fn from_config(config: &SidecarConfig, signer: Option<SigningIdentity>) -> Option<Self> {
        let link_state = config.link_state.clone()?;
        let mut router = match LinkStateRouter::new(config.node_id.clone(), link_state) {
            Ok(router) => router,
            Err(error) => {
                // Validated configs never get here.
                tracing::error!(error = %error, "link-state: config refused; link-state stays off");
                return None;
            }
        };
        router.set_signing_identity(signer);
        router.set_key_registry(key_registry(config));
        let mut runtime = Self {
            router,
            pending: Vec::new(),
            fed_links: Vec::new(),
            fed_destinations: Vec::new(),
            destinations_changed: false,
            reconnected: BTreeSet::new(),
        };
        runtime.feed_destinations(config);
        Some(runtime)
    }

    /// Queues the config's destinations for the next flush when they differ
    /// from what the router was given.
    fn feed_destinations(&mut self, config: &SidecarConfig) {
        let destinations = local_destinations(config);
        if destinations != self.fed_destinations {
            self.fed_destinations = destinations;
            self.destinations_changed = true;
        }
    }

    pub(super) fn mode(&self) -> RoutingMode {
        self.router.config().mode
    }

    /// Takes a new config (whose `linkState` is set): keys at once, the
    /// link-state knobs with the next flush.
    pub(super) fn reconfigure(&mut self, config: &SidecarConfig, signer: Option<SigningIdentity>) {
        if let Some(link_state) = &config.link_state
            && link_state != self.router.config()
        {
            self.pending.push(LinkStateInput::ConfigChanged(Box::new(link_state.clone())));
        }
        self.router.set_key_registry(key_registry(config));
        self.router.set_signing_identity(signer);
        self.feed_destinations(config);
    }

    pub(super) fn received(&mut self, from: &NodeId, updates: Vec<LinkStateUpdate>) {
        let inputs = updates.into_iter().map(|update| LinkStateInput::UpdateReceived { from: from.clone(), update });
        self.pending.extend(inputs);
    }

    /// A session with `peer` was established. If the link was up already
    /// (a replaced session: the peer may have restarted in between), the
    /// router sees no new adjacency, so the flush sends it the databases.
    pub(super) fn session_up(&mut self, peer: &NodeId) {
        self.reconnected.insert(peer.clone());
    }

    /// When the router next has timer work (refresh, expiry).
    pub(super) fn next_wakeup(&self) -> Option<Timestamp> {
        self.router.next_wakeup()
    }

    /// Hands the router everything since the last flush in one batch: this
    /// node's destinations when they changed and the current links first (so updates from a peer whose session just came
    /// up are accepted), then the received updates and config, then a tick
    /// when one is due. Returns the updates to send.
    pub(super) fn flush(&mut self, now: Timestamp, links: Vec<LocalLink>) -> Vec<OutgoingUpdate> {
        let previous = std::mem::take(&mut self.fed_links);
        let mut inputs = Vec::with_capacity(self.pending.len() + 3);
        if std::mem::take(&mut self.destinations_changed) {
            inputs.push(LinkStateInput::LocalDestinations(self.fed_destinations.clone()));
        }
        if links != previous {
            inputs.push(LinkStateInput::LocalLinksChanged { links: links.clone() });
        }
        inputs.append(&mut self.pending);
        if self.router.next_wakeup().is_some_and(|at| at <= now) {
            inputs.push(LinkStateInput::Tick);
        }
        let resync = self.reconnected_links(&previous, &links);
        self.fed_links = links;
        let mut sends = if inputs.is_empty() { Vec::new() } else { self.run_batch(inputs, now) };
        sends.extend(resync.iter().flat_map(|peer| self.databases_for(peer)));
        sends
    }

    /// Graceful stop: flushes this node's updates everywhere so the others
    /// route around it at once. Returns the flushes to send.
    pub(super) fn shutdown(&mut self, now: Timestamp) -> Vec<OutgoingUpdate> {
        let mut inputs = std::mem::take(&mut self.pending);
        inputs.push(LinkStateInput::Shutdown);
        self.fed_links.clear();
        self.run_batch(inputs, now)
    }

    fn run_batch(&mut self, inputs: Vec<LinkStateInput>, now: Timestamp) -> Vec<OutgoingUpdate> {
        let started = Instant::now();
        let output = self.router.handle_batch(inputs, now);
        if !output.spf_runs.is_empty() {
            self.router.record_spf_duration(started.elapsed());
        }
        log_output(&output);
        output.send
    }

    /// Peers that came up again since the last flush while their link stayed
    /// in the router's view (both flushes list it).
    fn reconnected_links(&mut self, before: &[LocalLink], after: &[LocalLink]) -> Vec<NodeId> {
        let linked = |links: &[LocalLink], peer: &NodeId| links.iter().any(|link| &link.neighbor == peer);
        std::mem::take(&mut self.reconnected)
            .into_iter()
            .filter(|peer| linked(before, peer) && linked(after, peer))
            .collect()
    }

    /// Every stored update of every area `peer` is a neighbor in, this
    /// node's own included: the database exchange of a new adjacency.
    fn databases_for(&self, peer: &NodeId) -> Vec<OutgoingUpdate> {
        self.router
            .areas()
            .filter_map(|area| self.router.lsdb(area))
            .filter(|lsdb| lsdb.is_neighbor(peer))
            .flat_map(|lsdb| lsdb.entries())
            .map(|entry| OutgoingUpdate { to: peer.clone(), update: Arc::clone(&entry.update) })
            .collect()
    }

    /// The link-state route for `destination`: to the nodes serving it when
    /// some node advertises that name, else to the node with that id.
    pub(super) fn route(&self, destination: &str) -> Option<LinkStateRoute> {
        match self.destination_route(destination) {
            Some(route) => Some(LinkStateRoute {
                destination: NodeId::from(destination),
                cost: route.cost,
                next_hops: route.next_hops.clone(),
                scope: route.scope,
                areas: route.areas.clone(),
                latency_us: route.latency_us,
                reliability: route.reliability,
            }),
            None => self.router.routes().get(destination).cloned(),
        }
    }

    fn destination_route(&self, destination: &str) -> Option<&DestinationRoute> {
        self.router.destination_route(&DestinationId::from(destination))
    }

    pub(super) fn explain(&self, destination: &str) -> RouteExplanation {
        self.router.explain(&NodeId::from(destination))
    }

    pub(super) fn explain_destination(&self, destination: &str) -> DestinationExplanation {
        self.router.explain_destination(&DestinationId::from(destination))
    }

    pub(super) fn snapshot(&self) -> LinkStateSnapshot {
        self.router.snapshot()
    }

    pub(super) fn status(&self) -> LinkStateStatus {
        LinkStateStatus {
            node_id: self.router.node().clone(),
            mode: self.mode(),
            local_links: self.fed_links.clone(),
            routes: self.router.routes().values().cloned().collect(),
            destination_routes: self.router.destination_routes().values().cloned().collect(),
            snapshot: self.snapshot(),
        }
    }

    /// One shortest path through `next_hop`, from the next hop to the
    /// destination as `BestRoute::path` has it; for an inter-area route it
    /// runs to the border router, followed by the destination.
    fn path_via(&self, destination: &str, next_hop: &NodeId) -> Vec<NodeId> {
        if self.destination_route(destination).is_some() {
            // To the serving node (or border router) of a chosen offer.
            let explanation = self.explain_destination(destination);
            let path = explanation
                .offers
                .iter()
                .filter(|offer| offer.verdict == fabric_link_state::destinations::OfferVerdict::Chosen)
                .flat_map(|offer| &offer.paths)
                .find(|path| path.get(1) == Some(next_hop));
            return match path {
                Some(path) => path.iter().skip(1).cloned().collect(),
                None => vec![next_hop.clone()],
            };
        }
        let explanation = self.explain(destination);
        let Some(explained) = explanation.paths.iter().find(|path| &path.next_hop == next_hop) else {
            // Not expected (every next hop of a route has a path); the two
            // ends are still right.
            return vec![next_hop.clone(), NodeId::from(destination)];
        };
        let mut path: Vec<NodeId> = explained.path.iter().skip(1).cloned().collect();
        if explained.via_border_router.is_some() {
            path.push(NodeId::from(destination));
        }
        path
    }

    /// Whether `requireSignatures` guarantees that every update SPF used
    /// was signed and verified.
    fn signatures_required(&self) -> bool {
        self.router.config().require_signatures
    }
}

/// `GET /link-state`: what the router holds and has done.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct LinkStateStatus {
    pub node_id: NodeId,
    pub mode: RoutingMode,
    /// The links given to the router: established sessions, by area.
    pub local_links: Vec<LocalLink>,
    /// The link-state route table, by destination node.
    pub routes: Vec<LinkStateRoute>,
    /// The routes to destination names other nodes serve, by name.
    pub destination_routes: Vec<DestinationRoute>,
    /// LSDB sizes, topology fingerprints, exports and counters.
    #[serde(flatten)]
    pub snapshot: LinkStateSnapshot,
}

/// `GET /routes/{destination}`: the path-vector `BestRoute` fields as
/// before (for a link-state answer filled from the link-state route), plus
/// every next hop and which protocol chose.
#[derive(Clone, Debug, Serialize)]
pub struct RouteAnswer {
    #[serde(flatten)]
    pub route: BestRoute,
    /// In id order; several only for link-state equal-cost multipath.
    /// `next_hop` is the first.
    pub next_hops: Vec<NodeId>,
    pub chosen_by: Protocol,
    /// `preferLinkState` fell back to path-vector: SPF does not reach the
    /// destination.
    pub fallback: bool,
    pub mode: RoutingMode,
}

/// The answer for `destination` under the mode in force. Destinations this
/// node originates itself are answered locally in every mode: link-state
/// never routes to the node itself.
pub(super) fn answer_route(
    destination: &str,
    path_vector: Option<BestRoute>,
    link_state: Option<&LinkStateRuntime>,
) -> Option<RouteAnswer> {
    let mode = link_state.map_or(RoutingMode::PathVector, LinkStateRuntime::mode);
    if let Some(best) = path_vector.as_ref().filter(|best| best.local) {
        return Some(path_vector_answer(best.clone(), mode, false));
    }
    let spf_route = link_state.and_then(|runtime| runtime.route(destination));
    let choice = path_vector
        .as_ref()
        .map(|best| PathVectorChoice { next_hop: best.next_hop.clone(), cost: u64::from(best.metrics.cost) });
    let decision = decide(mode, spf_route.as_ref(), choice.as_ref())?;
    match decision.chosen_by {
        Protocol::PathVector => Some(path_vector_answer(path_vector?, mode, decision.fallback)),
        Protocol::LinkState => Some(link_state_answer(destination, &spf_route?, link_state?, mode)),
    }
}

fn path_vector_answer(route: BestRoute, mode: RoutingMode, fallback: bool) -> RouteAnswer {
    RouteAnswer { next_hops: vec![route.next_hop.clone()], route, chosen_by: Protocol::PathVector, fallback, mode }
}

fn link_state_answer(
    destination: &str,
    spf_route: &LinkStateRoute,
    runtime: &LinkStateRuntime,
    mode: RoutingMode,
) -> RouteAnswer {
    let next_hop = spf_route.next_hops[0].clone();
    let path = runtime.path_via(destination, &next_hop);
    let route = BestRoute {
        destination: DestinationId::from(destination),
        hop_count: u32::try_from(path.len()).unwrap_or(u32::MAX),
        next_hop,
        path,
        metrics: RouteMetrics {
            cost: u32::try_from(spf_route.cost).unwrap_or(u32::MAX),
            latency_us: spf_route.latency_us,
            reliability: spf_route.reliability,
        },
        tags: runtime.destination_route(destination).map_or_else(|| Arc::from([]), |route| tags(&route.tags)),
        local: false,
        signed: runtime.signatures_required(),
        stale: false,
    };
    RouteAnswer { route, next_hops: spf_route.next_hops.clone(), chosen_by: Protocol::LinkState, fallback: false, mode }
}

/// `GET /routes/{destination}/explain`: the path-vector selection trace as
/// before, plus the link-state explanation when link-state is on.
#[derive(Clone, Debug, Serialize)]
pub struct ExplainAnswer {
    #[serde(flatten)]
    pub path_vector: Option<SelectionTrace>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub link_state: Option<RouteExplanation>,
    /// When some node advertises `destination` as a name: every offer of
    /// it and why the chosen ones won.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub link_state_destination: Option<DestinationExplanation>,
    /// The protocol `GET /routes/{destination}` answers from; absent when
    /// there is no route under the mode.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub chosen_by: Option<Protocol>,
    pub mode: RoutingMode,
}

/// `None` when neither protocol knows anything about `destination`.
pub(super) fn explain_route(
    destination: &str,
    trace: Option<SelectionTrace>,
    best: Option<BestRoute>,
    link_state: Option<&LinkStateRuntime>,
) -> Option<ExplainAnswer> {
    let explanation = link_state.map(|runtime| runtime.explain(destination));
    let named = link_state
        .map(|runtime| runtime.explain_destination(destination))
        .filter(|e| e.route.is_some() || !e.offers.is_empty());
    let link_state_knows =
        explanation.as_ref().is_some_and(|e| e.route.is_some() || !e.candidates.is_empty()) || named.is_some();
    if trace.is_none() && !link_state_knows {
        return None;
    }
    Some(ExplainAnswer {
        chosen_by: answer_route(destination, best, link_state).map(|answer| answer.chosen_by),
        mode: link_state.map_or(RoutingMode::PathVector, LinkStateRuntime::mode),
        path_vector: trace,
        link_state: explanation,
        link_state_destination: named,
    })
}

fn tags(tags: &[Tag]) -> Arc<[Tag]> {
    tags.iter().cloned().collect()
}

fn log_output(output: &LinkStateOutput) {
    for event in &output.events {
        log_event(event);
    }
    for change in &output.route_changes {
        log_route_change(change);
    }
    for change in &output.destination_changes {
        log_destination_change(change);
    }
}

fn log_destination_change(change: &DestinationRouteChange) {
    match change {
        DestinationRouteChange::Added { route } | DestinationRouteChange::Changed { new: route, .. } => {
            let hops: Vec<&str> = route.next_hops.iter().map(NodeId::as_str).collect();
            let via: Vec<&str> = route.via.iter().map(NodeId::as_str).collect();
            tracing::info!(
                target: "fabric::link_state", destination = %route.destination, next_hops = ?hops, via = ?via,
                cost = route.cost, "link-state destination route selected"
            );
        }
        DestinationRouteChange::Removed { route } => tracing::info!(
            target: "fabric::link_state", destination = %route.destination, "link-state destination route lost"
        ),
    }
}

/// One structured log line per event; the routine ones of flooding at
/// debug level.
fn log_event(event: &LinkStateEvent) {
    let detail = serde_json::to_string(event).unwrap_or_default();
    match event {
        LinkStateEvent::UpdateInstalled { .. }
        | LinkStateEvent::UpdateStale { .. }
        | LinkStateEvent::Originated { .. }
        | LinkStateEvent::SpfRun(_)
        | LinkStateEvent::SpfSkipped { .. } => tracing::debug!(target: "fabric::link_state", %detail, "link-state"),
        LinkStateEvent::UpdateRejected { .. }
        | LinkStateEvent::LocalLinkRefused { .. }
        | LinkStateEvent::LocalDestinationRefused { .. }
        | LinkStateEvent::ConfigRejected { .. } => tracing::warn!(target: "fabric::link_state", %detail, "link-state"),
        _ => tracing::info!(target: "fabric::link_state", %detail, "link-state"),
    }
}

fn log_route_change(change: &RouteChange) {
    let destination = change.destination();
    match change {
        RouteChange::Added { route } | RouteChange::Changed { new: route, .. } => {
            let hops: Vec<&str> = route.next_hops.iter().map(NodeId::as_str).collect();
            tracing::info!(
                target: "fabric::link_state", destination = %destination, next_hops = ?hops, cost = route.cost,
                "link-state route selected"
            );
        }
        RouteChange::Removed { .. } => {
            tracing::info!(target: "fabric::link_state", destination = %destination, "link-state route lost")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use fabric_core::config::{LinkMetrics, LinkStateAreaMembership, NeighborConfig};
    use fabric_link_state::{AreaId, LinkStateConfig};

    fn neighbor(id: &str, cost: u32) -> NeighborConfig {
        NeighborConfig {
            id: id.into(),
            address: None,
            link: LinkMetrics { cost, latency_us: 100, reliability: 1.0 },
            import: None,
            export: None,
        }
    }

    fn config(mode: RoutingMode) -> SidecarConfig {
        let mut config = SidecarConfig::new("me");
        config.neighbors = vec![neighbor("a", 1), neighbor("b", 2), neighbor("c", 3)];
        config.link_state = Some(LinkStateConfig { mode, ..LinkStateConfig::default() });
        config
    }

    fn links_of(links: &[LocalLink]) -> Vec<(&str, &str, u32)> {
        links.iter().map(|l| (l.neighbor.as_str(), l.area.as_str(), l.cost)).collect()
    }

    #[test]
    fn local_links_are_the_up_neighbors_in_the_backbone_by_default() {
        let config = config(RoutingMode::PreferLinkState);
        let links = local_links(&config, |id| id.as_str() != "b");
        assert_eq!(links_of(&links), [("a", "backbone", 1), ("c", "backbone", 3)]);
        assert!(local_links(&SidecarConfig { link_state: None, ..config }, |_| true).is_empty());
    }

    #[test]
    fn local_links_follow_the_area_membership() {
        let mut config = config(RoutingMode::PreferLinkState);
        config.link_state_areas = vec![
            LinkStateAreaMembership { area: AreaId::from("core"), neighbors: Some(vec!["a".into(), "b".into()]) },
            LinkStateAreaMembership { area: AreaId::from("edge"), neighbors: Some(vec!["b".into()]) },
        ];
        let links = local_links(&config, |_| true);
        assert_eq!(links_of(&links), [("a", "core", 1), ("b", "core", 2), ("b", "edge", 2)]);
    }

    fn best(destination: &str, next_hop: &str, local: bool) -> BestRoute {
        BestRoute {
            destination: destination.into(),
            next_hop: next_hop.into(),
            path: vec![next_hop.into()],
            hop_count: 1,
            metrics: RouteMetrics { cost: 9, latency_us: 0, reliability: 1.0 },
            tags: Arc::from([]),
            local,
            signed: false,
            stale: false,
        }
    }

    #[test]
    fn without_link_state_the_answer_is_the_path_vector_route_with_the_new_fields() {
        let answer = answer_route("svc", Some(best("svc", "a", false)), None).unwrap();
        assert_eq!(
            (answer.chosen_by, answer.fallback, answer.mode),
            (Protocol::PathVector, false, RoutingMode::PathVector)
        );
        assert_eq!(answer.next_hops, [NodeId::from("a")]);
        let json = serde_json::to_value(&answer).unwrap();
        assert_eq!(json["next_hop"], "a");
        assert_eq!(json["next_hops"], serde_json::json!(["a"]));
        assert_eq!(json["chosen_by"], "pathVector");
        assert_eq!(json["metrics"]["cost"], 9);
        assert_eq!(answer_route("svc", None, None).map(|a| a.chosen_by), None);
    }

    #[test]
    fn link_state_modes_fall_back_or_not_and_local_routes_stay_local() {
        let prefer = LinkStateRuntime::from_config(&config(RoutingMode::PreferLinkState), None).unwrap();
        let answer = answer_route("svc", Some(best("svc", "a", false)), Some(&prefer)).unwrap();
        assert_eq!((answer.chosen_by, answer.fallback), (Protocol::PathVector, true));

        let only = LinkStateRuntime::from_config(&config(RoutingMode::LinkStateOnly), None).unwrap();
        assert!(answer_route("svc", Some(best("svc", "a", false)), Some(&only)).is_none());
        let local = answer_route("mine", Some(best("mine", "me", true)), Some(&only)).unwrap();
        assert_eq!((local.chosen_by, local.fallback), (Protocol::PathVector, false));
    }

    #[test]
    fn flushing_feeds_links_once_and_resyncs_a_replaced_session() {
        let config = config(RoutingMode::PreferLinkState);
        let mut runtime = LinkStateRuntime::from_config(&config, None).unwrap();
        let now = Timestamp(1_000_000);
        let sent = runtime.flush(now, local_links(&config, |_| true));
        let mut first: Vec<&str> = sent.iter().map(|s| s.to.as_str()).collect();
        first.sort_unstable();
        assert_eq!(first, ["a", "b", "c"], "own update flooded to every neighbor");
        assert!(runtime.flush(now, local_links(&config, |_| true)).is_empty(), "nothing new");

        // b's session was replaced: its link never went down for the router.
        runtime.session_up(&NodeId::from("b"));
        let sent = runtime.flush(now, local_links(&config, |_| true));
        assert_eq!(sent.iter().map(|s| (s.to.as_str(), s.update.origin.as_str())).collect::<Vec<_>>(), [("b", "me")]);

        let status = runtime.status();
        assert_eq!(status.local_links.len(), 3);
        assert_eq!(status.snapshot.lsdb_entries[&AreaId::from("backbone")], 1);
        let flushes = runtime.shutdown(now);
        assert!(flushes.iter().all(|s| s.update.is_flush()) && flushes.len() == 3);
    }

    fn originate(destination: &str, cost: u32, tags: &[&str]) -> fabric_core::config::LocalRoute {
        fabric_core::config::LocalRoute {
            destination: destination.into(),
            cost,
            latency_us: 0,
            reliability: 1.0,
            tags: tags.iter().map(|t| Tag::from(*t)).collect(),
        }
    }

    #[test]
    fn originate_entries_are_advertised_and_other_nodes_destinations_are_answered_by_link_state() {
        let mut config = config(RoutingMode::LinkStateOnly);
        config.originate = vec![originate("mine", 3, &["eu"])];
        // Routes in the flush that brought the change (the throttle has its
        // own tests).
        config.link_state.as_mut().unwrap().spf_throttle = fabric_link_state::SpfThrottleConfig::IMMEDIATE;
        let mut runtime = LinkStateRuntime::from_config(&config, None).unwrap();
        let now = Timestamp(1_000_000);
        let sent = runtime.flush(now, local_links(&config, |id| id.as_str() == "a"));
        let advertised: Vec<(&str, u32)> =
            sent[0].update.destinations.iter().map(|d| (d.name.as_str(), d.metric)).collect();
        assert_eq!(advertised, [("mine", 3)]);

        // a serves cluster-x (metric 2): one hop of cost 1, then the metric.
        let update = LinkStateUpdate {
            origin: NodeId::from("a"),
            area: AreaId::from("backbone"),
            sequence: 1,
            ttl_ms: 60_000,
            links: vec![fabric_link_state::LinkAdvert {
                neighbor: NodeId::from("me"),
                cost: 1,
                latency_us: 100,
                reliability: 1.0,
            }],
            summary: None,
            destinations: vec![fabric_link_state::DestinationAdvert {
                name: "cluster-x".into(),
                metric: 2,
                tags: vec![Tag::from("gpu")],
            }],
            signature: None,
        };
        runtime.received(&NodeId::from("a"), vec![update]);
        runtime.flush(now, local_links(&config, |id| id.as_str() == "a"));
        let answer = answer_route("cluster-x", None, Some(&runtime)).expect("link-state answers the name");
        assert_eq!((answer.chosen_by, answer.route.metrics.cost), (Protocol::LinkState, 3));
        assert_eq!(answer.next_hops, [NodeId::from("a")]);
        assert_eq!(answer.route.path, [NodeId::from("a")]);
        assert_eq!(&*answer.route.tags, [Tag::from("gpu")]);
        let explained = explain_route("cluster-x", None, None, Some(&runtime)).expect("explained");
        assert_eq!(explained.chosen_by, Some(Protocol::LinkState));
        assert_eq!(explained.link_state_destination.expect("named").offers.len(), 1);

        // Turning advertising off withdraws the names, as does a live config
        // that drops the originate entry.
        config.link_state.as_mut().unwrap().advertise_destinations = false;
        runtime.reconfigure(&config, None);
        let sent = runtime.flush(now, local_links(&config, |id| id.as_str() == "a"));
        assert!(sent.iter().any(|s| s.update.origin.as_str() == "me" && s.update.destinations.is_empty()));
        config.link_state.as_mut().unwrap().advertise_destinations = true;
        runtime.reconfigure(&config, None);
        let sent = runtime.flush(now, local_links(&config, |id| id.as_str() == "a"));
        assert!(sent.iter().any(|s| s.update.origin.as_str() == "me" && s.update.destinations.len() == 1));
        config.originate.clear();
        runtime.reconfigure(&config, None);
        let sent = runtime.flush(now, local_links(&config, |id| id.as_str() == "a"));
        assert!(sent.iter().any(|s| s.update.origin.as_str() == "me" && s.update.destinations.is_empty()));
    }
}
