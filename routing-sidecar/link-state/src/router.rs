//! `LinkStateRouter`: the sans-IO state machine of link-state mode.
//!
//! Inputs (updates from neighbors, this node's links, timer ticks, config)
//! come with the caller's `now`; outputs are updates to send to named
//! neighbors, route table changes and structured events. The router owns
//! no socket, thread or clock: the same inputs give the same outputs in the
//! same order, which is what the simulated-network tests rely on.
//!
//! One call to `handle_batch` processes all its inputs first and then runs
//! SPF at most once per area. Route computation is further throttled in
//! time (`spf_throttle`): a change schedules it, `next_wakeup` says when it
//! is due, and the `Tick` at that time (or any later input) runs it.
//! Flooding never waits for it.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use serde::Serialize;

use crate::destinations::{
    DestinationExplanation, DestinationRoute, DestinationRouteChange, DestinationTable, LocalDestination,
    explain_destination, normalize_local,
};
use crate::explain::{RouteExplanation, explain_route};
use crate::lsdb::{AreaLsdb, Freshness, InstallOutcome};
use crate::routes::{AreaRoute, AreaSpf, LinkStateRoute, RouteChange, area_routes, diff_routes, merge_routes};
use crate::spf_throttle::{SpfThrottle, ThrottleDecision};
use crate::stats::{LinkStateCounters, LinkStateGauges, LinkStateSnapshot, UpdateRejectReason};
use fabric_core::config::ConfigError;
use fabric_core::ids::{DestinationId, NodeId};
use fabric_core::link_state::area::{
    AreaPair, ExportPlan, FilterVerdict, SummaryCandidate, SummaryPolicy, plan_exports_with_destinations,
};
use fabric_core::link_state::area_id::AreaId;
use fabric_core::link_state::config::LinkStateConfig;
use fabric_core::link_state::lsa::{
    AreaSummary, DestinationAdvert, LinkAdvert, LinkStateUpdate, SummaryDestination, SummaryEntry, UpdateAuth,
    sign_update, verify_update,
};
use fabric_core::security::{KeyError, KeyRegistry, SignatureCheck, SigningIdentity, Verifier};
use fabric_core::time::Timestamp;

/// Verification cache entries; link-state updates are few per origin.
const VERIFICATION_CACHE_SIZE: usize = 16_384;

/// One link of this node, as the IO layer sees it (up links only).
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct LocalLink {
    pub neighbor: NodeId,
    /// The area the link belongs to; a neighbor may share several areas.
    pub area: AreaId,
    pub cost: u32,
    pub latency_us: u32,
    pub reliability: f32,
}

/// What the router reacts to.
// Inputs are consumed as they come; boxing the update would cost one
// allocation per received update for nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Clone, Debug, PartialEq)]
pub enum LinkStateInput {
    /// `from` sent `update` (flooded or originated by it).
    UpdateReceived { from: NodeId, update: LinkStateUpdate },
    /// The complete set of this node's up links replaces the previous one.
    LocalLinksChanged { links: Vec<LocalLink> },
    /// The complete set of destinations this node serves replaces the
    /// previous one; a change re-originates its update in every area.
    LocalDestinations(Vec<LocalDestination>),
    /// Timer: refresh own updates and age out expired ones.
    Tick,
    /// A new config; refused (with an event) when invalid.
    ConfigChanged(Box<LinkStateConfig>),
    /// Graceful stop: flushes (prematurely ages) this node's updates in
    /// every area, so the others drop it at once instead of waiting for
    /// their links to it to fail or its updates to expire. The router then
    /// forgets its areas; new local links make it join again.
    Shutdown,
}

/// An update to send to one neighbor.
#[derive(Clone, Debug, PartialEq)]
pub struct OutgoingUpdate {
    pub to: NodeId,
    pub update: Arc<LinkStateUpdate>,
}

/// One SPF run, reported so the IO layer can time the call that did it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SpfRunReport {
    pub area: AreaId,
    pub nodes: usize,
    pub edges: usize,
    pub heap_pops: u64,
}

/// Structured events, one per decision worth logging.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase", rename_all_fields = "camelCase", tag = "event")]
pub enum LinkStateEvent {
    UpdateInstalled {
        area: AreaId,
        origin: NodeId,
        sequence: u64,
        from: NodeId,
        flush: bool,
    },
    /// Older than stored; the stored copy was sent back to `from`.
    UpdateStale {
        area: AreaId,
        origin: NodeId,
        sequence: u64,
        current: u64,
        from: NodeId,
    },
    UpdateRejected {
        area: AreaId,
        origin: NodeId,
        from: NodeId,
        reason: UpdateRejectReason,
        detail: String,
    },
    SummaryEntriesRefused {
        area: AreaId,
        origin: NodeId,
        source_area: AreaId,
        refused: u64,
        verdict: FilterVerdict,
    },
    EntryExpired {
        area: AreaId,
        origin: NodeId,
        sequence: u64,
    },
    Originated {
        area: AreaId,
        sequence: u64,
        links: usize,
        summary_entries: usize,
    },
    /// A copy of this node's own update from an earlier life was seen; the
    /// sequence continues above it.
    SequenceJump {
        area: AreaId,
        seen: u64,
    },
    SpfRun(SpfRunReport),
    SpfSkipped {
        area: AreaId,
    },
    /// Route computation after a change was scheduled for `due` (the SPF
    /// throttle); flooding went ahead.
    SpfDeferred {
        due: Timestamp,
    },
    AreaJoined {
        area: AreaId,
    },
    AreaLeft {
        area: AreaId,
    },
    LocalLinkRefused {
        neighbor: NodeId,
        area: AreaId,
        reason: String,
    },
    LocalDestinationRefused {
        name: DestinationId,
        reason: String,
    },
    ConfigApplied,
    ConfigRejected {
        field: String,
        reason: String,
    },
}

/// Everything one call produced, each list in a deterministic order.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct LinkStateOutput {
    pub send: Vec<OutgoingUpdate>,
    pub route_changes: Vec<RouteChange>,
    pub destination_changes: Vec<DestinationRouteChange>,
    pub events: Vec<LinkStateEvent>,
    pub spf_runs: Vec<SpfRunReport>,
}

/// Per-area state.
#[derive(Clone, Debug)]
struct AreaState {
    lsdb: AreaLsdb,
    own_sequence: u64,
    spf: Option<AreaSpf>,
    view: BTreeMap<NodeId, AreaRoute>,
    /// (links version, summary version, policy generation) of `view`.
    view_key: Option<(u64, u64, u64)>,
    /// The database changed since the last recompute.
    touched: bool,
}

/// One node's link-state protocol instance: its areas' databases, SPF
/// state, route table, exports and counters. Feed it `LinkStateInput`s with
/// the current time; act on the `LinkStateOutput` it returns.
pub struct LinkStateRouter {
    node: NodeId,
    config: LinkStateConfig,
    policy: SummaryPolicy,
    /// Bumped when the summary policy changes, so every area view is rebuilt.
    policy_generation: u64,
    signer: Option<SigningIdentity>,
    keys: KeyRegistry,
    verifier: Verifier,
    links: BTreeMap<AreaId, BTreeMap<NodeId, LocalLink>>,
    areas: BTreeMap<AreaId, AreaState>,
    routes: BTreeMap<NodeId, LinkStateRoute>,
    /// What this node serves, as advertised: sorted by name.
    local_destinations: Vec<DestinationAdvert>,
    destinations: DestinationTable,
    exports: ExportPlan,
    next_refresh: Option<Timestamp>,
    /// Something changed that may change routes.
    dirty: bool,
    /// The set of areas changed (a view appeared or vanished).
    areas_changed: bool,
    /// When the route computation `dirty` asks for may run.
    throttle: SpfThrottle,
    counters: LinkStateCounters,
}

impl std::fmt::Debug for LinkStateRouter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LinkStateRouter")
            .field("node", &self.node)
            .field("areas", &self.areas.keys().collect::<Vec<_>>())
            .field("routes", &self.routes.len())
            .finish_non_exhaustive()
    }
}

fn reliability_ok(value: f32) -> bool {
    value.is_finite() && (0.0..=1.0).contains(&value)
}

/// The summary an update carries, in canonical order.
fn summary_of(update: Option<&LinkStateUpdate>) -> Vec<SummaryEntry> {
    update.map(|u| u.sorted_summary_entries().into_iter().cloned().collect()).unwrap_or_default()
}

/// The summary destinations an update carries, in canonical order.
fn summary_destinations_of(update: Option<&LinkStateUpdate>) -> Vec<SummaryDestination> {
    update.map(|u| u.sorted_summary_destinations().into_iter().cloned().collect()).unwrap_or_default()
}

impl LinkStateRouter {
    /// A router for `node` with a validated `config`.
    pub fn new(node: NodeId, config: LinkStateConfig) -> Result<Self, ConfigError> {
        config.validate()?;
        let policy = config.summary_policy()?;
        let throttle = SpfThrottle::new(config.spf_throttle);
        Ok(Self {
            node,
            config,
            policy,
            policy_generation: 0,
            signer: None,
            keys: KeyRegistry::new(),
            verifier: Verifier::new(VERIFICATION_CACHE_SIZE),
            links: BTreeMap::new(),
            areas: BTreeMap::new(),
            routes: BTreeMap::new(),
            local_destinations: Vec::new(),
            destinations: DestinationTable::default(),
            exports: ExportPlan::default(),
            next_refresh: None,
            dirty: false,
            areas_changed: false,
            throttle,
            counters: LinkStateCounters::default(),
        })
    }

    /// Signs this node's future updates with `identity` (`None`: unsigned).
    pub fn set_signing_identity(&mut self, identity: Option<SigningIdentity>) {
        self.signer = identity;
    }

    /// Keys used to verify other nodes' updates.
    pub fn set_key_registry(&mut self, registry: KeyRegistry) {
        self.keys = registry;
    }

    pub fn node(&self) -> &NodeId {
        &self.node
    }

    pub fn config(&self) -> &LinkStateConfig {
        &self.config
    }

    /// The current route table, by destination.
    pub fn routes(&self) -> &BTreeMap<NodeId, LinkStateRoute> {
        &self.routes
    }

    pub fn route(&self, destination: &NodeId) -> Option<&LinkStateRoute> {
        self.routes.get(destination)
    }

    /// The routes to destination names (served by other nodes), by name.
    pub fn destination_routes(&self) -> &BTreeMap<DestinationId, DestinationRoute> {
        self.destinations.routes()
    }

    pub fn destination_route(&self, name: &DestinationId) -> Option<&DestinationRoute> {
        self.destinations.route(name)
    }

    /// The destinations this node advertises, sorted by name.
    pub fn local_destinations(&self) -> &[DestinationAdvert] {
        &self.local_destinations
    }

    /// Areas this node has links in.
    pub fn areas(&self) -> impl Iterator<Item = &AreaId> {
        self.areas.keys()
    }

    pub fn lsdb(&self, area: &AreaId) -> Option<&AreaLsdb> {
        self.areas.get(area).map(|s| &s.lsdb)
    }

    /// Fingerprint of the SPF graph of `area` (see `Topology::fingerprint`).
    pub fn topology_fingerprint(&self, area: &AreaId) -> Option<u64> {
        self.areas.get(area)?.spf.as_ref().map(|spf| spf.topology.fingerprint())
    }

    /// What this node exports as a border router, with counts per
    /// (source area, target area).
    pub fn exports(&self) -> &ExportPlan {
        &self.exports
    }

    pub fn counters(&self) -> &LinkStateCounters {
        &self.counters
    }

    /// Records how long an SPF run took, as timed by the IO layer around a
    /// call whose output reported `spf_runs`.
    pub fn record_spf_duration(&mut self, duration: std::time::Duration) {
        self.counters.spf_duration.observe(duration);
    }

    /// When `Tick` next has work to do (refresh, expiry or a deferred
    /// route computation), if ever.
    pub fn next_wakeup(&self) -> Option<Timestamp> {
        let expiry = self.areas.values().filter_map(|s| s.lsdb.next_expiry()).min();
        [self.next_refresh, expiry, self.spf_due()].into_iter().flatten().min()
    }

    /// When the deferred route computation is due, if one is pending.
    pub fn spf_due(&self) -> Option<Timestamp> {
        self.throttle.due().filter(|_| self.dirty)
    }

    pub fn snapshot(&self) -> LinkStateSnapshot {
        let gauges = LinkStateGauges {
            lsdb_entries: self.areas.iter().map(|(area, s)| (area.clone(), s.lsdb.len())).collect(),
            topology_fingerprints: self
                .areas
                .iter()
                .filter_map(|(area, s)| {
                    s.spf.as_ref().map(|spf| (area.clone(), format!("{:016x}", spf.topology.fingerprint())))
                })
                .collect(),
            routes_active: self.routes.len(),
            exports: self.exports.counts.clone(),
        };
        LinkStateSnapshot::build(&self.counters, gauges)
    }

    /// Why the route to `destination` is what it is: the candidate of every
    /// area, the equal-cost next hops (also those cut by `maxPaths`) and one
    /// shortest path per next hop.
    pub fn explain(&self, destination: &NodeId) -> RouteExplanation {
        let areas = self.areas.iter().filter_map(|(area, s)| s.spf.as_ref().map(|spf| (area, spf, &s.view)));
        explain_route(destination, areas, self.routes.get(destination), self.config.max_paths)
    }

    /// Why the route to the destination name `name` is what it is: every
    /// offer of every area (serving node or border router, its cost and
    /// metric) with a verdict, and the equal-cost next hops.
    pub fn explain_destination(&self, name: &DestinationId) -> DestinationExplanation {
        let areas = self.areas.iter().filter_map(|(area, s)| s.spf.as_ref().map(|spf| (area, spf, &s.lsdb)));
        explain_destination(
            &self.node,
            name,
            areas,
            &self.policy,
            &self.local_destinations,
            self.destinations.route(name),
            self.config.max_paths,
        )
    }

    pub fn handle(&mut self, input: LinkStateInput, now: Timestamp) -> LinkStateOutput {
        self.handle_batch(vec![input], now)
    }

    /// Processes `inputs` in order, then recomputes routes once.
    pub fn handle_batch(&mut self, inputs: Vec<LinkStateInput>, now: Timestamp) -> LinkStateOutput {
        let mut out = LinkStateOutput::default();
        let mut new_adjacencies: Vec<(AreaId, NodeId)> = Vec::new();
        // `dirty` is cleared while the inputs run, so that afterwards it
        // says whether this batch changed anything (for the throttle).
        let pending = std::mem::take(&mut self.dirty);
        let mut urgent = false;
        for input in inputs {
            match input {
                LinkStateInput::UpdateReceived { from, update } => self.on_update(from, update, now, &mut out),
                LinkStateInput::LocalLinksChanged { links } => {
                    self.on_local_links(links, now, &mut out, &mut new_adjacencies)
                }
                LinkStateInput::LocalDestinations(destinations) => {
                    self.on_local_destinations(destinations, now, &mut out)
                }
                LinkStateInput::Tick => self.on_tick(now, &mut out),
                LinkStateInput::Shutdown => {
                    urgent = true;
                    self.on_shutdown(now, &mut out)
                }
                LinkStateInput::ConfigChanged(config) => {
                    urgent = true;
                    if let Err(error) = self.apply_config(*config) {
                        out.events.push(LinkStateEvent::ConfigRejected { field: error.field, reason: error.reason });
                    } else {
                        out.events.push(LinkStateEvent::ConfigApplied);
                    }
                }
            }
        }
        let changed = self.dirty;
        self.dirty |= pending;
        if self.route_computation_due(changed, urgent, now, &mut out) {
            self.recompute(now, &mut out);
        }
        for (area, neighbor) in new_adjacencies {
            self.sync_database(&area, &neighbor, &mut out);
        }
        self.counters.updates_sent += out.send.len() as u64;
        out
    }

    /// Applies a new config, or refuses it and keeps the current one.
    pub fn apply_config(&mut self, config: LinkStateConfig) -> Result<(), ConfigError> {
        config.validate()?;
        let policy = config.summary_policy()?;
        if policy != self.policy || config.max_paths != self.config.max_paths {
            self.policy = policy;
            self.policy_generation += 1;
            self.dirty = true;
        }
        for state in self.areas.values_mut() {
            state.lsdb.set_limits(config.lsdb_limits());
        }
        if config.refresh_interval != self.config.refresh_interval {
            // Restart the refresh cycle with the new interval at the next tick.
            self.next_refresh = self.next_refresh.map(|_| Timestamp::ZERO);
        }
        self.throttle.set_config(config.spf_throttle);
        self.config = config;
        self.counters.config_reloads += 1;
        Ok(())
    }

    fn reject(
        &mut self,
        out: &mut LinkStateOutput,
        update: &LinkStateUpdate,
        from: &NodeId,
        reason: UpdateRejectReason,
        detail: String,
    ) {
        self.counters.reject(reason);
        if reason == UpdateRejectReason::AreaMismatch {
            *self.counters.area_mismatches.entry(update.area.clone()).or_default() += 1;
        }
        out.events.push(LinkStateEvent::UpdateRejected {
            area: update.area.clone(),
            origin: update.origin.clone(),
            from: from.clone(),
            reason,
            detail,
        });
    }

    fn authenticate(&mut self, update: &LinkStateUpdate, now: Timestamp) -> Result<(), UpdateRejectReason> {
        let require = self.config.require_signatures;
        match verify_update(&mut self.verifier, &self.keys, now, update) {
            UpdateAuth::Unsigned if require => Err(UpdateRejectReason::Unsigned),
            UpdateAuth::Unsigned => Ok(()),
            UpdateAuth::Checked(SignatureCheck::Valid { .. }) => Ok(()),
            UpdateAuth::Checked(SignatureCheck::Invalid) => Err(UpdateRejectReason::BadSignature),
            UpdateAuth::Checked(SignatureCheck::Key(KeyError::UnknownKey)) if require => {
                Err(UpdateRejectReason::UnknownKey)
            }
            UpdateAuth::Checked(SignatureCheck::Key(KeyError::UnknownKey)) => {
                self.counters.unverified_signatures_accepted += 1;
                Ok(())
            }
            UpdateAuth::Checked(SignatureCheck::Key(KeyError::NotYetValid)) => Err(UpdateRejectReason::KeyNotYetValid),
            UpdateAuth::Checked(SignatureCheck::Key(KeyError::Expired)) => Err(UpdateRejectReason::KeyExpired),
        }
    }

    fn on_update(&mut self, from: NodeId, update: LinkStateUpdate, now: Timestamp, out: &mut LinkStateOutput) {
        self.counters.updates_received += 1;
        let Some(state) = self.areas.get(&update.area) else {
            let detail = format!("this node is not in area {}", update.area);
            return self.reject(out, &update, &from, UpdateRejectReason::AreaMismatch, detail);
        };
        if !state.lsdb.is_neighbor(&from) {
            let shared: Vec<&str> = self
                .links
                .iter()
                .filter(|(_, links)| links.contains_key(&from))
                .map(|(area, _)| area.as_str())
                .collect();
            return if shared.is_empty() {
                self.reject(out, &update, &from, UpdateRejectReason::UnknownNeighbor, String::new())
            } else {
                let detail = format!("the link to {from} is in area(s) {}", shared.join(", "));
                self.reject(out, &update, &from, UpdateRejectReason::AreaMismatch, detail)
            };
        }
        if let Err(error) = update.validate(&self.config.update_limits()) {
            return self.reject(out, &update, &from, UpdateRejectReason::Invalid, error.to_string());
        }
        if update.origin == self.node {
            return self.on_own_update_echo(from, update, now, out);
        }
        match state.lsdb.freshness(&update) {
            Freshness::Duplicate => {
                self.counters.updates_duplicate += 1;
                return;
            }
            Freshness::Older => {
                self.counters.updates_stale += 1;
                let current = Arc::clone(&state.lsdb.get(&update.origin).expect("older than a stored entry").update);
                out.events.push(LinkStateEvent::UpdateStale {
                    area: update.area.clone(),
                    origin: update.origin.clone(),
                    sequence: update.sequence,
                    current: current.sequence,
                    from: from.clone(),
                });
                out.send.push(OutgoingUpdate { to: from, update: current });
                return;
            }
            Freshness::Newer => {}
        }
        // Only updates that would be installed are verified: duplicates are
        // the common case of flooding and cost nothing this way.
        if let Err(reason) = self.authenticate(&update, now) {
            return self.reject(out, &update, &from, reason, String::new());
        }
        self.count_refused_summary_entries(&update, out);
        let (area, origin) = (update.area.clone(), update.origin.clone());
        let state = self.areas.get_mut(&area).expect("checked above");
        match state.lsdb.install(update, Some(&from), now) {
            InstallOutcome::Installed { update, flood_to, .. } => {
                state.touched = true;
                self.dirty = true;
                self.counters.updates_installed += 1;
                if update.is_flush() {
                    self.counters.flushes_received += 1;
                }
                out.events.push(LinkStateEvent::UpdateInstalled {
                    area,
                    origin,
                    sequence: update.sequence,
                    from,
                    flush: update.is_flush(),
                });
                out.send.extend(flood_to.into_iter().map(|to| OutgoingUpdate { to, update: Arc::clone(&update) }));
            }
            InstallOutcome::Full => {
                let detail = format!("area {area} holds {} origins", state.lsdb.len());
                self.counters.reject(UpdateRejectReason::LsdbFull);
                out.events.push(LinkStateEvent::UpdateRejected {
                    area,
                    origin,
                    from,
                    reason: UpdateRejectReason::LsdbFull,
                    detail,
                });
            }
            InstallOutcome::Duplicate | InstallOutcome::Stale { .. } | InstallOutcome::WrongArea => {
                unreachable!("freshness and area were checked above")
            }
        }
    }

    /// Counts (and reports) summary entries this node will not use because
    /// the summary policy keeps them out of the update's area.
    fn count_refused_summary_entries(&mut self, update: &LinkStateUpdate, out: &mut LinkStateOutput) {
        let mut refused: BTreeMap<(&AreaId, FilterVerdict), u64> = BTreeMap::new();
        for entry in update.summary.iter().flat_map(|s| &s.entries) {
            if let Err(verdict) = self.policy.permits(&entry.source_area, &update.area, &entry.destination) {
                *refused.entry((&entry.source_area, verdict)).or_default() += 1;
            }
        }
        for entry in update.summary.iter().flat_map(|s| &s.destinations) {
            if let Err(verdict) = self.policy.permits_name(&entry.source_area, &update.area, entry.name.as_str()) {
                *refused.entry((&entry.source_area, verdict)).or_default() += 1;
            }
        }
        for ((source_area, verdict), count) in refused {
            let pair = AreaPair { source_area: source_area.clone(), target_area: update.area.clone() };
            *self.counters.summary_entries_refused.entry(pair).or_default() += count;
            out.events.push(LinkStateEvent::SummaryEntriesRefused {
                area: update.area.clone(),
                origin: update.origin.clone(),
                source_area: source_area.clone(),
                refused: count,
                verdict,
            });
        }
    }

    /// A neighbor sent this node's own update back. Nothing to do when it is
    /// the current one; when it is newer (sent before a restart, when this
    /// node counted sequences from scratch), continue above it so the
    /// network takes the current content.
    fn on_own_update_echo(&mut self, from: NodeId, update: LinkStateUpdate, now: Timestamp, out: &mut LinkStateOutput) {
        let state = &self.areas[&update.area];
        let current = state.lsdb.get(&self.node).map(|e| &e.update);
        let ahead = update.sequence > state.own_sequence
            || (update.sequence == state.own_sequence
                && current.is_some_and(|c| !c.same_content(&update) || c.is_flush() != update.is_flush()));
        if !ahead {
            self.counters.updates_duplicate += 1;
            return;
        }
        if let Err(reason) = self.authenticate(&update, now) {
            return self.reject(out, &update, &from, reason, String::new());
        }
        let area = update.area.clone();
        let state = self.areas.get_mut(&area).expect("checked by the caller");
        state.own_sequence = state.own_sequence.max(update.sequence);
        self.counters.sequence_jumps += 1;
        out.events.push(LinkStateEvent::SequenceJump { area: area.clone(), seen: update.sequence });
        self.originate(&area, now, out);
    }

    fn on_local_links(
        &mut self,
        links: Vec<LocalLink>,
        now: Timestamp,
        out: &mut LinkStateOutput,
        new_adjacencies: &mut Vec<(AreaId, NodeId)>,
    ) {
        let mut by_area: BTreeMap<AreaId, BTreeMap<NodeId, LocalLink>> = BTreeMap::new();
        for link in links {
            let reason = if link.neighbor == self.node {
                Some("a link to this node itself")
            } else if link.neighbor.as_str().is_empty() || link.area.as_str().is_empty() {
                Some("empty neighbor or area id")
            } else if link.cost == 0 {
                Some("cost 0 (links cost at least 1)")
            } else if !reliability_ok(link.reliability) {
                Some("reliability outside [0, 1]")
            } else if by_area.get(&link.area).is_some_and(|l| l.contains_key(&link.neighbor)) {
                Some("listed twice in the same area")
            } else {
                None
            };
            if let Some(reason) = reason {
                out.events.push(LinkStateEvent::LocalLinkRefused {
                    neighbor: link.neighbor,
                    area: link.area,
                    reason: reason.into(),
                });
                continue;
            }
            by_area.entry(link.area.clone()).or_default().insert(link.neighbor.clone(), link);
        }

        let old = std::mem::take(&mut self.links);
        for area in old.keys().filter(|area| !by_area.contains_key(*area)) {
            // No link left to tell anyone: the stored update of this node
            // ages out elsewhere, and the two-way check already stops its
            // links from being used once the neighbors drop theirs.
            self.areas.remove(area);
            self.areas_changed = true;
            self.dirty = true;
            out.events.push(LinkStateEvent::AreaLeft { area: area.clone() });
        }
        let mut changed_areas = Vec::new();
        for (area, links) in &by_area {
            let previous = old.get(area);
            if previous == Some(links) {
                continue;
            }
            if !self.areas.contains_key(area) {
                self.areas.insert(
                    area.clone(),
                    AreaState {
                        lsdb: AreaLsdb::new(area.clone(), self.config.lsdb_limits()),
                        own_sequence: 0,
                        spf: None,
                        view: BTreeMap::new(),
                        view_key: None,
                        touched: false,
                    },
                );
                self.areas_changed = true;
                out.events.push(LinkStateEvent::AreaJoined { area: area.clone() });
            }
            let state = self.areas.get_mut(area).expect("inserted above");
            state.lsdb.set_neighbors(links.keys().cloned());
            for neighbor in links.keys() {
                if previous.is_none_or(|p| !p.contains_key(neighbor)) {
                    new_adjacencies.push((area.clone(), neighbor.clone()));
                }
            }
            changed_areas.push(area.clone());
        }
        self.links = by_area;
        for area in changed_areas {
            self.originate(&area, now, out);
        }
    }

    fn on_local_destinations(
        &mut self,
        destinations: Vec<LocalDestination>,
        now: Timestamp,
        out: &mut LinkStateOutput,
    ) {
        let (advertised, refused) = normalize_local(destinations);
        for refused in refused {
            out.events
                .push(LinkStateEvent::LocalDestinationRefused { name: refused.name, reason: refused.reason.into() });
        }
        if advertised == self.local_destinations {
            return;
        }
        self.local_destinations = advertised;
        let areas: Vec<AreaId> = self.areas.keys().cloned().collect();
        for area in &areas {
            self.originate(area, now, out);
        }
    }

    fn on_tick(&mut self, now: Timestamp, out: &mut LinkStateOutput) {
        if self.next_refresh.is_some_and(|at| now >= at) {
            let areas: Vec<AreaId> = self.areas.keys().cloned().collect();
            for area in &areas {
                self.originate(area, now, out);
            }
            self.next_refresh = Some(now + self.config.refresh_interval);
        }
        let mut lost_own = Vec::new();
        for (area, state) in &mut self.areas {
            for expired in state.lsdb.tick(now) {
                state.touched = true;
                self.dirty = true;
                self.counters.entries_expired += 1;
                if expired.origin == self.node {
                    // Ticks were missed for longer than the TTL.
                    lost_own.push(area.clone());
                }
                out.events.push(LinkStateEvent::EntryExpired {
                    area: area.clone(),
                    origin: expired.origin,
                    sequence: expired.sequence,
                });
            }
        }
        for area in lost_own {
            self.originate(&area, now, out);
        }
    }

    fn on_shutdown(&mut self, now: Timestamp, out: &mut LinkStateOutput) {
        let areas: Vec<AreaId> = self.areas.keys().cloned().collect();
        for area in areas {
            let state = self.areas.get_mut(&area).expect("listed above");
            state.own_sequence = state.own_sequence.saturating_add(1);
            let mut flush = LinkStateUpdate {
                origin: self.node.clone(),
                area: area.clone(),
                sequence: state.own_sequence,
                ttl_ms: 0,
                links: Vec::new(),
                summary: None,
                destinations: Vec::new(),
                signature: None,
            };
            if let Some(signer) = &self.signer {
                sign_update(signer, &mut flush);
            }
            if let InstallOutcome::Installed { update, flood_to, .. } = state.lsdb.install(flush, None, now) {
                out.send.extend(flood_to.into_iter().map(|to| OutgoingUpdate { to, update: Arc::clone(&update) }));
            }
            self.counters.updates_originated += 1;
            out.events.push(LinkStateEvent::Originated {
                area: area.clone(),
                sequence: state.own_sequence,
                links: 0,
                summary_entries: 0,
            });
            out.events.push(LinkStateEvent::AreaLeft { area });
        }
        self.links.clear();
        self.areas.clear();
        self.exports = ExportPlan::default();
        self.next_refresh = None;
        self.areas_changed = true;
        self.dirty = true;
    }

    /// Makes and floods a new update of this node for `area`: its links in
    /// the area and whatever it currently exports into the area.
    fn originate(&mut self, area: &AreaId, now: Timestamp, out: &mut LinkStateOutput) {
        let links: Vec<LinkAdvert> = self
            .links
            .get(area)
            .into_iter()
            .flat_map(|links| links.values())
            .map(|link| LinkAdvert {
                neighbor: link.neighbor.clone(),
                cost: link.cost,
                latency_us: link.latency_us,
                reliability: link.reliability,
            })
            .collect();
        let entries = self.exports.summaries.get(area).cloned().unwrap_or_default();
        let named = self.exports.destinations.get(area).cloned().unwrap_or_default();
        let summary =
            (!entries.is_empty() || !named.is_empty()).then_some(AreaSummary { entries, destinations: named });
        let Some(state) = self.areas.get_mut(area) else { return };
        state.own_sequence = state.own_sequence.saturating_add(1);
        let mut update = LinkStateUpdate {
            origin: self.node.clone(),
            area: area.clone(),
            sequence: state.own_sequence,
            ttl_ms: self.config.update_ttl_ms(),
            links,
            summary,
            destinations: self.local_destinations.clone(),
            signature: None,
        };
        if let Some(signer) = &self.signer {
            sign_update(signer, &mut update);
        }
        let (sequence, links, summary_entries) =
            (update.sequence, update.links.len(), update.summary.as_ref().map_or(0, |s| s.entries.len()));
        if let InstallOutcome::Installed { update, flood_to, .. } = state.lsdb.install(update, None, now) {
            state.touched = true;
            self.dirty = true;
            out.send.extend(flood_to.into_iter().map(|to| OutgoingUpdate { to, update: Arc::clone(&update) }));
        }
        self.counters.updates_originated += 1;
        out.events.push(LinkStateEvent::Originated { area: area.clone(), sequence, links, summary_entries });
        if self.next_refresh.is_none() {
            self.next_refresh = Some(now + self.config.refresh_interval);
        }
    }

    /// Sends a new neighbor every stored update of the area but this node's
    /// own (just flooded to it): the database exchange of a new adjacency.
    fn sync_database(&mut self, area: &AreaId, neighbor: &NodeId, out: &mut LinkStateOutput) {
        let Some(state) = self.areas.get(area) else { return };
        if !state.lsdb.is_neighbor(neighbor) {
            return;
        }
        out.send.extend(
            state
                .lsdb
                .entries()
                .filter(|entry| entry.update.origin != self.node)
                .map(|entry| OutgoingUpdate { to: neighbor.clone(), update: Arc::clone(&entry.update) }),
        );
    }

    /// Whether routes are to be computed in this call: something is pending
    /// and it is urgent (config, shutdown), or the throttle says it is time.
    /// A change that has to wait is counted as deferred (the first of a
    /// computation) or coalesced (joining one already scheduled).
    fn route_computation_due(
        &mut self,
        changed: bool,
        urgent: bool,
        now: Timestamp,
        out: &mut LinkStateOutput,
    ) -> bool {
        if !self.dirty {
            return false;
        }
        if urgent {
            return true;
        }
        if !changed && self.throttle.due().is_some() {
            return self.throttle.is_due(now);
        }
        match self.throttle.request(now) {
            ThrottleDecision::Run => true,
            ThrottleDecision::Wait { coalesced: true, .. } => {
                self.counters.spf_coalesced += 1;
                false
            }
            ThrottleDecision::Wait { due, coalesced: false } => {
                self.counters.spf_deferred += 1;
                out.events.push(LinkStateEvent::SpfDeferred { due });
                false
            }
        }
    }

    /// Runs SPF where links changed, rebuilds area views where their inputs
    /// changed, merges the route table, and re-originates summaries whose
    /// content changed.
    fn recompute(&mut self, now: Timestamp, out: &mut LinkStateOutput) {
        if !self.dirty {
            return;
        }
        self.dirty = false;
        self.throttle.ran(now);
        let mut views_changed = std::mem::take(&mut self.areas_changed);
        for (area, state) in &mut self.areas {
            let links_version = state.lsdb.links_version();
            if state.spf.as_ref().is_none_or(|spf| spf.links_version != links_version) {
                let spf = AreaSpf::compute(&self.node, &state.lsdb);
                let report = SpfRunReport {
                    area: area.clone(),
                    nodes: spf.topology.node_count(),
                    edges: spf.topology.edge_count(),
                    heap_pops: spf.result.as_ref().map_or(0, |r| r.heap_pops()),
                };
                self.counters.spf_runs += 1;
                self.counters.spf_heap_pops += report.heap_pops;
                out.events.push(LinkStateEvent::SpfRun(report.clone()));
                out.spf_runs.push(report);
                state.spf = Some(spf);
            } else if state.touched {
                self.counters.spf_skipped += 1;
                out.events.push(LinkStateEvent::SpfSkipped { area: area.clone() });
            }
            state.touched = false;
            let key = (links_version, state.lsdb.summary_version(), self.policy_generation);
            if state.view_key != Some(key) {
                let spf = state.spf.as_ref().expect("computed above");
                state.view = area_routes(&self.node, area, spf, &state.lsdb, &self.policy);
                state.view_key = Some(key);
                views_changed = true;
            }
        }
        if !views_changed {
            return;
        }

        let routes = merge_routes(self.areas.iter().map(|(area, s)| (area, &s.view)), self.config.max_paths);
        let changes = diff_routes(&self.routes, &routes);
        self.counters.route_changes += changes.len() as u64;
        out.route_changes.extend(changes);
        self.routes = routes;
        let areas = self.areas.iter().map(|(area, s)| (area, s.spf.as_ref(), &s.lsdb));
        let destination_changes = self.destinations.recompute(
            &self.node,
            areas,
            &self.policy,
            self.config.max_paths,
            &self.local_destinations,
        );
        self.counters.route_changes += destination_changes.len() as u64;
        out.destination_changes.extend(destination_changes);

        self.exports = self.plan_exports();
        let stale: Vec<AreaId> = self
            .areas
            .iter()
            .filter(|(area, state)| {
                let own = state.lsdb.get(&self.node).map(|e| &*e.update);
                let current = summary_of(own);
                let wanted = self.exports.summaries.get(*area).map(Vec::as_slice).unwrap_or_default();
                let named = summary_destinations_of(own);
                let wanted_named = self.exports.destinations.get(*area).map(Vec::as_slice).unwrap_or_default();
                current != wanted || named != wanted_named
            })
            .map(|(area, _)| area.clone())
            .collect();
        for area in stale {
            self.originate(&area, now, out);
        }
    }

    fn plan_exports(&self) -> ExportPlan {
        let local: BTreeSet<AreaId> = self.areas.keys().cloned().collect();
        let mut reachable: BTreeMap<AreaId, Vec<SummaryCandidate>> = BTreeMap::new();
        for (area, state) in &self.areas {
            // Only areas with a parent this node is also in export anything.
            if !self.policy.graph.parents(area).any(|parent| local.contains(parent)) {
                continue;
            }
            let candidates = state
                .view
                .iter()
                .map(|(destination, route)| SummaryCandidate {
                    destination: destination.clone(),
                    source_area: route.source_area.clone(),
                    cost: route.cost,
                    latency_us: route.latency_us,
                    reliability: route.reliability,
                })
                .collect();
            reachable.insert(area.clone(), candidates);
        }
        let mut destinations = self.destinations.export_candidates();
        destinations.retain(|area, _| reachable.contains_key(area));
        plan_exports_with_destinations(&self.policy, &local, &reachable, &destinations)
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::routes::RouteScope;
    use fabric_core::ids::KeyId;
    use fabric_core::link_state::config::SpfThrottleConfig;
    use fabric_core::link_state::lsa::fixtures::{link, update};

    const T0: Timestamp = Timestamp(1_000_000);

    fn id(name: &str) -> NodeId {
        NodeId::from(name)
    }

    /// Default knobs but routes computed in the call that changed them, so
    /// each test sees the effect of its input at once.
    fn config() -> LinkStateConfig {
        LinkStateConfig { spf_throttle: SpfThrottleConfig::IMMEDIATE, ..LinkStateConfig::default() }
    }

    fn local(neighbor: &str, area: &str, cost: u32) -> LocalLink {
        LocalLink { neighbor: id(neighbor), area: AreaId::from(area), cost, latency_us: 100, reliability: 1.0 }
    }

    /// Router "me" with links to n1 and n2 in area x, and n3 in area y.
    fn router() -> LinkStateRouter {
        let mut router = LinkStateRouter::new(id("me"), config()).unwrap();
        router.handle(
            LinkStateInput::LocalLinksChanged {
                links: vec![local("n1", "x", 1), local("n2", "x", 1), local("n3", "y", 1)],
            },
            T0,
        );
        router
    }

    fn receive(router: &mut LinkStateRouter, from: &str, update: LinkStateUpdate) -> LinkStateOutput {
        router.handle(LinkStateInput::UpdateReceived { from: id(from), update }, T0)
    }

    fn sent_to(out: &LinkStateOutput) -> Vec<(&str, &str, u64)> {
        out.send.iter().map(|s| (s.to.as_str(), s.update.origin.as_str(), s.update.sequence)).collect()
    }

    fn hops(router: &LinkStateRouter, destination: &str) -> Vec<String> {
        router.route(&id(destination)).map(|r| r.next_hops.iter().map(|h| h.to_string()).collect()).unwrap_or_default()
    }

    #[test]
    fn joining_areas_originates_one_update_per_area_flooded_to_its_neighbors() {
        let mut router = LinkStateRouter::new(id("me"), config()).unwrap();
        let out = router.handle(
            LinkStateInput::LocalLinksChanged {
                links: vec![local("n1", "x", 1), local("n2", "x", 1), local("n3", "y", 1)],
            },
            T0,
        );
        assert_eq!(sent_to(&out), [("n1", "me", 1), ("n2", "me", 1), ("n3", "me", 1)]);
        assert!(out.send.iter().all(|s| s.update.area.as_str() == if s.to.as_str() == "n3" { "y" } else { "x" }));
        assert_eq!(router.areas().map(AreaId::as_str).collect::<Vec<_>>(), ["x", "y"]);
    }

    #[test]
    fn installed_updates_are_reflooded_within_their_area_only_and_give_routes() {
        let mut router = router();
        let out = receive(&mut router, "n1", update("n1", "x", 1, vec![link("me", 1), link("far", 1)]));
        assert_eq!(sent_to(&out), [("n2", "n1", 1)], "not back to n1, not to n3 of area y");
        assert_eq!(hops(&router, "n1"), ["n1"]);
        let out = receive(&mut router, "n1", update("far", "x", 1, vec![link("n1", 1)]));
        assert_eq!(sent_to(&out), [("n2", "far", 1)]);
        assert_eq!(hops(&router, "far"), ["n1"]);
        assert_eq!(router.route(&id("far")).unwrap().cost, 2);
        assert!(
            out.route_changes
                .iter()
                .any(|c| matches!(c, RouteChange::Added { route } if route.destination == id("far")))
        );
    }

    #[test]
    fn duplicates_are_dropped_silently() {
        let mut router = router();
        receive(&mut router, "n1", update("n1", "x", 1, vec![link("me", 1)]));
        let runs = router.counters().spf_runs;
        let out = receive(&mut router, "n2", update("n1", "x", 1, vec![link("me", 1)]));
        assert!(out.send.is_empty() && out.route_changes.is_empty());
        assert_eq!(router.counters().updates_duplicate, 1);
        assert_eq!(router.counters().spf_runs, runs);
    }

    #[test]
    fn a_stale_update_is_answered_with_the_stored_copy() {
        let mut router = router();
        receive(&mut router, "n1", update("n1", "x", 5, vec![link("me", 1)]));
        let out = receive(&mut router, "n2", update("n1", "x", 3, vec![]));
        assert_eq!(sent_to(&out), [("n2", "n1", 5)]);
        assert_eq!(router.counters().updates_stale, 1);
    }

    #[test]
    fn area_scoping_counts_mismatches_by_area() {
        let mut router = router();
        // Area z: this node is not in it.
        let out = receive(&mut router, "n1", update("n1", "z", 1, vec![]));
        assert!(out.send.is_empty());
        // Area y update over the area x link to n1.
        receive(&mut router, "n1", update("q", "y", 1, vec![]));
        // Not a neighbor at all.
        receive(&mut router, "stranger", update("q", "x", 1, vec![]));
        let counters = router.counters();
        assert_eq!(counters.rejects(UpdateRejectReason::AreaMismatch), 2);
        assert_eq!(counters.rejects(UpdateRejectReason::UnknownNeighbor), 1);
        assert_eq!(counters.area_mismatches[&AreaId::from("z")], 1);
        assert_eq!(counters.area_mismatches[&AreaId::from("y")], 1);
        assert!(router.lsdb(&AreaId::from("y")).unwrap().get(&id("q")).is_none());
    }

    #[test]
    fn invalid_updates_are_rejected_with_the_reason() {
        let mut router = router();
        let out = receive(&mut router, "n1", update("n1", "x", 1, vec![link("me", 0)]));
        assert!(matches!(
            &out.events[..],
            [LinkStateEvent::UpdateRejected { reason: UpdateRejectReason::Invalid, detail, .. }] if detail.contains("cost 0")
        ));
    }

    #[test]
    fn refreshes_do_not_rerun_spf_and_expiry_removes_routes() {
        let mut router = router();
        receive(&mut router, "n1", update("n1", "x", 1, vec![link("me", 1)]));
        let runs = router.counters().spf_runs;
        receive(&mut router, "n1", update("n1", "x", 2, vec![link("me", 1)]));
        assert_eq!(router.counters().spf_runs, runs);
        assert_eq!(router.counters().spf_skipped, 1);

        // n1's update (ttl 60 s) expires; ours are refreshed first.
        let later = T0 + Duration::from_secs(61);
        let out = router.handle(LinkStateInput::Tick, later);
        assert!(router.route(&id("n1")).is_none());
        assert!(
            out.events.iter().any(|e| matches!(e, LinkStateEvent::EntryExpired { origin, .. } if origin == &id("n1")))
        );
        assert!(out.route_changes.iter().any(|c| matches!(c, RouteChange::Removed { .. })));
    }

    #[test]
    fn own_updates_are_refreshed_before_they_expire() {
        let mut router = router();
        let refresh = router.config().refresh_interval;
        assert_eq!(router.next_wakeup(), Some(T0 + refresh));
        let out = router.handle(LinkStateInput::Tick, T0 + refresh);
        assert_eq!(sent_to(&out), [("n1", "me", 2), ("n2", "me", 2), ("n3", "me", 2)]);
        assert_eq!(router.next_wakeup(), Some(T0 + refresh + refresh));
    }

    #[test]
    fn a_flush_removes_the_origin_at_once() {
        let mut router = router();
        receive(&mut router, "n1", update("n1", "x", 1, vec![link("me", 1), link("far", 1)]));
        receive(&mut router, "n1", update("far", "x", 1, vec![link("n1", 1)]));
        assert!(router.route(&id("far")).is_some());
        let mut flush = update("far", "x", 2, vec![]);
        flush.ttl_ms = 0;
        let out = receive(&mut router, "n1", flush);
        assert!(router.route(&id("far")).is_none());
        assert_eq!(sent_to(&out), [("n2", "far", 2)], "flushes are flooded like any newer update");
        assert_eq!(router.counters().flushes_received, 1);
    }

    #[test]
    fn a_restarted_node_continues_above_its_old_sequence() {
        let mut router = router();
        // A neighbor still holds "me" sequence 40 from before a restart.
        let out = receive(&mut router, "n1", update("me", "x", 40, vec![link("n1", 9)]));
        assert_eq!(sent_to(&out), [("n1", "me", 41), ("n2", "me", 41)]);
        assert_eq!(router.counters().sequence_jumps, 1);
        // Our current copy coming back is not news.
        let out = receive(&mut router, "n2", (*out.send[0].update).clone());
        assert!(out.send.is_empty());
    }

    #[test]
    fn signatures_are_required_when_configured() {
        let config = LinkStateConfig { require_signatures: true, ..config() };
        let mut router = LinkStateRouter::new(id("me"), config).unwrap();
        router.handle(LinkStateInput::LocalLinksChanged { links: vec![local("n1", "x", 1)] }, T0);
        let identity = SigningIdentity::from_secret_bytes(KeyId::from("k1"), &[3; 32]);
        router.set_key_registry(KeyRegistry::from_entries([identity.public_entry(id("n1"), None, None)]));

        receive(&mut router, "n1", update("n1", "x", 1, vec![link("me", 1)]));
        assert_eq!(router.counters().rejects(UpdateRejectReason::Unsigned), 1);

        let mut signed = update("n1", "x", 1, vec![link("me", 1)]);
        sign_update(&identity, &mut signed);
        let mut forged = signed.clone();
        forged.links[0].cost = 7;
        receive(&mut router, "n1", forged);
        assert_eq!(router.counters().rejects(UpdateRejectReason::BadSignature), 1);

        receive(&mut router, "n1", signed);
        assert_eq!(hops(&router, "n1"), ["n1"]);
    }

    #[test]
    fn own_updates_are_signed_with_the_identity() {
        let mut router = LinkStateRouter::new(id("me"), config()).unwrap();
        let identity = SigningIdentity::from_secret_bytes(KeyId::from("k1"), &[3; 32]);
        router.set_signing_identity(Some(identity.clone()));
        let out = router.handle(LinkStateInput::LocalLinksChanged { links: vec![local("n1", "x", 1)] }, T0);
        let registry = KeyRegistry::from_entries([identity.public_entry(id("me"), None, None)]);
        let auth = verify_update(&mut Verifier::new(0), &registry, T0, &out.send[0].update);
        assert_eq!(auth, UpdateAuth::Checked(SignatureCheck::Valid { cached: false }));
    }

    #[test]
    fn an_invalid_config_is_refused_and_the_old_one_stays() {
        let mut router = router();
        let bad = LinkStateConfig { max_paths: 0, ..config() };
        let out = router.handle(LinkStateInput::ConfigChanged(Box::new(bad)), T0);
        assert!(matches!(&out.events[..], [LinkStateEvent::ConfigRejected { field, .. }] if field == "maxPaths"));
        assert_eq!(router.config().max_paths, 4);
    }

    #[test]
    fn equal_cost_paths_through_two_neighbors_are_both_next_hops_and_explained() {
        let mut router = router();
        receive(&mut router, "n1", update("n1", "x", 1, vec![link("me", 1), link("far", 1)]));
        receive(&mut router, "n2", update("n2", "x", 1, vec![link("me", 1), link("far", 1)]));
        receive(&mut router, "n1", update("far", "x", 1, vec![link("n1", 1), link("n2", 1)]));
        assert_eq!(hops(&router, "far"), ["n1", "n2"]);
        let route = router.route(&id("far")).unwrap();
        assert_eq!((route.cost, route.scope), (2, RouteScope::IntraArea));

        let explanation = router.explain(&id("far"));
        assert_eq!(explanation.equal_cost_next_hops, [id("n1"), id("n2")]);
        let paths: Vec<Vec<&str>> =
            explanation.paths.iter().map(|p| p.path.iter().map(NodeId::as_str).collect()).collect();
        assert_eq!(paths, [["me", "n1", "far"], ["me", "n2", "far"]]);
        assert!(explanation.paths.iter().all(|p| p.used));

        // maxPaths 1 keeps the lowest id and says which one was dropped.
        let config = LinkStateConfig { max_paths: 1, ..config() };
        router.handle(LinkStateInput::ConfigChanged(Box::new(config)), T0);
        assert_eq!(hops(&router, "far"), ["n1"]);
        let explanation = router.explain(&id("far"));
        assert_eq!(explanation.dropped_by_max_paths, [id("n2")]);
        assert_eq!(explanation.paths.iter().map(|p| p.used).collect::<Vec<_>>(), [true, false]);
    }

    #[test]
    fn shutdown_flushes_own_updates_in_every_area_and_forgets_them() {
        let mut router = router();
        receive(&mut router, "n1", update("n1", "x", 1, vec![link("me", 1)]));
        let out = router.handle(LinkStateInput::Shutdown, T0);
        assert_eq!(sent_to(&out), [("n1", "me", 2), ("n2", "me", 2), ("n3", "me", 2)]);
        assert!(out.send.iter().all(|s| s.update.is_flush() && s.update.links.is_empty()));
        assert!(router.routes().is_empty());
        assert_eq!(router.areas().count(), 0);
        assert_eq!(router.next_wakeup(), None);
        assert!(out.route_changes.iter().all(|c| matches!(c, RouteChange::Removed { .. })));
    }

    #[test]
    fn a_new_neighbor_gets_the_whole_area_database() {
        let mut router = router();
        receive(&mut router, "n1", update("n1", "x", 1, vec![link("me", 1)]));
        receive(&mut router, "n1", update("far", "x", 3, vec![]));
        let out = router.handle(
            LinkStateInput::LocalLinksChanged {
                links: vec![local("n1", "x", 1), local("n2", "x", 1), local("n3", "y", 1), local("new", "x", 1)],
            },
            T0,
        );
        let to_new: Vec<(&str, u64)> = out
            .send
            .iter()
            .filter(|s| s.to.as_str() == "new")
            .map(|s| (s.update.origin.as_str(), s.update.sequence))
            .collect();
        assert_eq!(to_new, [("me", 2), ("far", 3), ("n1", 1)]);
    }

    #[test]
    fn leaving_an_area_drops_its_database_and_routes() {
        let mut router = router();
        receive(&mut router, "n3", update("n3", "y", 1, vec![link("me", 1)]));
        assert!(router.route(&id("n3")).is_some());
        let out = router.handle(LinkStateInput::LocalLinksChanged { links: vec![local("n1", "x", 1)] }, T0);
        assert!(router.lsdb(&AreaId::from("y")).is_none());
        assert!(router.route(&id("n3")).is_none());
        assert!(out.events.contains(&LinkStateEvent::AreaLeft { area: AreaId::from("y") }));
    }

    #[test]
    fn the_same_inputs_give_the_same_outputs() {
        let run = || {
            let mut router = router();
            let outputs = vec![
                receive(&mut router, "n1", update("n1", "x", 1, vec![link("me", 1), link("far", 2)])),
                receive(&mut router, "n2", update("far", "x", 1, vec![link("n1", 2), link("n2", 1)])),
                receive(&mut router, "n2", update("n2", "x", 1, vec![link("me", 1), link("far", 1)])),
                router.handle(LinkStateInput::Tick, T0 + Duration::from_secs(200)),
            ];
            (outputs, serde_json::to_string(&router.snapshot()).unwrap())
        };
        assert_eq!(run(), run());
    }

    #[test]
    fn throttled_route_computation_waits_for_its_due_time_but_flooding_does_not() {
        let throttle = SpfThrottleConfig {
            initial_delay: Duration::from_millis(10),
            hold: Duration::from_millis(100),
            max_wait: Duration::from_millis(400),
        };
        let mut router =
            LinkStateRouter::new(id("me"), LinkStateConfig { spf_throttle: throttle, ..config() }).unwrap();
        let out = router.handle(LinkStateInput::LocalLinksChanged { links: vec![local("n1", "x", 1)] }, T0);
        assert_eq!(sent_to(&out), [("n1", "me", 1)], "own update flooded at once");
        assert_eq!(router.spf_due(), Some(T0 + Duration::from_millis(10)));
        router.handle(LinkStateInput::Tick, T0 + Duration::from_millis(10));
        assert_eq!(router.spf_due(), None);

        let at = T0 + Duration::from_millis(20);
        let out = router.handle(
            LinkStateInput::UpdateReceived { from: id("n1"), update: update("n1", "x", 1, vec![link("me", 1)]) },
            at,
        );
        assert!(out.route_changes.is_empty() && out.spf_runs.is_empty(), "computation deferred");
        assert!(router.route(&id("n1")).is_none());
        // Within the hold after the first run: due at 10 + 100 ms.
        let due = T0 + Duration::from_millis(110);
        assert_eq!(router.next_wakeup(), Some(due));
        assert!(out.events.contains(&LinkStateEvent::SpfDeferred { due }));
        let later = update("far", "x", 1, vec![link("n1", 1)]);
        let out = router.handle(LinkStateInput::UpdateReceived { from: id("n1"), update: later }, at);
        assert!(out.send.is_empty(), "n1 is the only neighbor and sent it");
        assert_eq!((router.counters().spf_deferred, router.counters().spf_coalesced), (2, 1), "joining, then n1");

        let out = router.handle(LinkStateInput::Tick, due);
        assert_eq!(out.spf_runs.len(), 1, "one run for both changes");
        assert_eq!(hops(&router, "n1"), ["n1"]);
        assert_eq!(router.spf_due(), None);
        assert_eq!(router.next_wakeup(), Some(at + Duration::from_secs(60)), "n1's update expires next");
    }
}
