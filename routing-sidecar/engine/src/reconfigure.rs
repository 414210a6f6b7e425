//! Config compilation and live reload. A reload re-evaluates every stored
//! candidate against the new settings, so routes the new policy forbids go
//! at once and routes it now allows come back without a re-announcement.

use foldhash::{HashSet, HashSetExt};

use crate::candidate::{Candidate, Ineligibility, Path, Pending, RouteKey, flags};
use crate::dampening::Dampening;
use crate::intern::{DestIx, NodeIx, Nodes};
use crate::{Engine, RouteEvent, WithdrawCause};
use fabric_core::config::{ConfigError, LinkMetrics, SidecarConfig, TieBreaker};
use fabric_core::ids::NodeId;
use fabric_core::message::RouteMetrics;
use fabric_core::policy::{CompiledPolicy, PolicyMode, PolicyViolation, RouteFacts};
use fabric_core::security::KeyRegistry;
use fabric_core::stats::RejectReason;
use fabric_core::time::Timestamp;

pub(super) struct NeighborSlot {
    pub ix: NodeIx,
    pub id: NodeId,
    pub link: LinkMetrics,
    pub import: Option<CompiledPolicy>,
    pub export: Option<CompiledPolicy>,
}

/// The config in the form the hot path wants it.
pub(super) struct Compiled {
    pub self_ix: NodeIx,
    /// Sorted by node id, which is also the order messages are sent in.
    pub neighbors: Vec<NeighborSlot>,
    /// Neighbor slot by `NodeIx` (dense: this is on the hot path).
    slot_of: Vec<Option<u32>>,
    pub import: CompiledPolicy,
    pub export: CompiledPolicy,
    pub allowed_advertisers: Option<HashSet<NodeIx>>,
    pub keys: KeyRegistry,
    pub tie_breakers: Vec<TieBreaker>,
}

impl Compiled {
    pub(crate) fn build(config: &SidecarConfig, nodes: &mut Nodes) -> Result<Self, ConfigError> {
        let keys = config.key_registry()?;
        let mut neighbors: Vec<NeighborSlot> = config
            .neighbors
            .iter()
            .map(|n| NeighborSlot {
                ix: nodes.intern(&n.id),
                id: n.id.clone(),
                link: n.link,
                import: n.import.as_ref().map(CompiledPolicy::compile),
                export: n.export.as_ref().map(CompiledPolicy::compile),
            })
            .collect();
        neighbors.sort_by(|a, b| a.id.cmp(&b.id));
        let mut slot_of = vec![None; nodes.len() + 1];
        for (i, neighbor) in neighbors.iter().enumerate() {
            slot_of[neighbor.ix.index()] = Some(i as u32);
        }
        Ok(Self {
            self_ix: nodes.intern(&config.node_id),
            neighbors,
            slot_of,
            import: CompiledPolicy::compile(&config.import_policy),
            export: CompiledPolicy::compile(&config.export_policy),
            allowed_advertisers: config
                .security
                .allowed_advertisers
                .as_ref()
                .map(|list| list.iter().map(|id| nodes.intern(id)).collect()),
            keys,
            tie_breakers: config.selection.tie_breakers.clone(),
        })
    }

    pub(crate) fn slot(&self, ix: NodeIx) -> Option<&NeighborSlot> {
        self.slot_of.get(ix.index()).copied().flatten().map(|i| &self.neighbors[i as usize])
    }

    pub(crate) fn link(&self, ix: NodeIx) -> LinkMetrics {
        self.slot(ix).map(|s| s.link).unwrap_or_default()
    }

    pub(crate) fn import_for(&self, ix: NodeIx) -> &CompiledPolicy {
        self.slot(ix).and_then(|s| s.import.as_ref()).unwrap_or(&self.import)
    }

    pub(crate) fn export_for(&self, ix: NodeIx) -> &CompiledPolicy {
        self.slot(ix).and_then(|s| s.export.as_ref()).unwrap_or(&self.export)
    }
}

/// The result of checking a candidate against the settings in force.
pub(super) struct Assessment {
    pub ineligible: Option<Ineligibility>,
    /// A violation reported by a dry-run policy (the route stays eligible).
    pub dry_run: Option<PolicyViolation>,
    /// The violation behind `Ineligibility::Policy`, for the event detail.
    pub violation: Option<PolicyViolation>,
}

impl Engine {
    /// Checks a candidate against security settings, import policy,
    /// hold-down and dampening, in that order. Used both when a route
    /// arrives and when settings change, so the two always agree.
    pub(super) fn assess(&self, dest: DestIx, candidate: &Candidate) -> Assessment {
        let mut result = Assessment { ineligible: None, dry_run: None, violation: None };
        if candidate.is(flags::LOCAL) {
            return result;
        }
        let next_hop = candidate.next_hop;
        if self.compiled.allowed_advertisers.as_ref().is_some_and(|allowed| !allowed.contains(&next_hop)) {
            result.ineligible = Some(Ineligibility::Security(RejectReason::UnauthorizedAdvertiser));
            return result;
        }
        if self.config.security.require_signatures && !candidate.is(flags::SIGNED) {
            result.ineligible = Some(Ineligibility::Security(RejectReason::Unsigned));
            return result;
        }
        let policy = self.compiled.import_for(next_hop);
        let tags = self.tag_sets.resolve(candidate.tags);
        let facts = RouteFacts {
            advertiser: self.nodes.resolve(next_hop).as_str(),
            origin: candidate.origin().map_or("", |o| self.nodes.resolve(o).as_str()),
            destination: self.destinations.resolve(dest).as_str(),
            tags,
            hop_count: candidate.hop_count,
        };
        if let Err(violation) = policy.evaluate(&facts) {
            match policy.mode {
                PolicyMode::Enforce => {
                    result.ineligible = Some(Ineligibility::Policy(violation.reason()));
                    result.violation = Some(violation);
                    return result;
                }
                PolicyMode::DryRun => result.dry_run = Some(violation),
            }
        }
        let key = RouteKey { destination: dest, next_hop };
        if self.hold_downs.deadline(key).is_some() {
            result.ineligible = Some(Ineligibility::HeldDown);
        } else if self.dampening.is_suppressed(key) {
            result.ineligible = Some(Ineligibility::Suppressed);
        }
        result
    }

    /// Applies a new config live. On error nothing changes and the error
    /// names the field; it is also counted and reported as an event.
    pub fn apply_config(&mut self, now: Timestamp, config: SidecarConfig) -> Result<(), ConfigError> {
        let compiled = config.validate().and_then(|()| {
            if config.node_id != self.config.node_id {
                return Err(ConfigError::new(
                    "nodeId",
                    format!("cannot change at runtime ({} -> {})", self.config.node_id, config.node_id),
                ));
            }
            Compiled::build(&config, &mut self.nodes)
        });
        let compiled = match compiled {
            Ok(compiled) => compiled,
            Err(error) => {
                self.counters.config_rejects += 1;
                self.emit(RouteEvent::ConfigRejected { error: error.clone() });
                return Err(error);
            }
        };
        if config.stability.dampening != self.config.stability.dampening {
            // Penalties were computed with other parameters; start afresh.
            self.dampening = Dampening::new(config.stability.dampening.clone());
        }
        if config.stability.hold_down.is_zero() {
            self.hold_downs.clear();
        }
        let version = config.version.clone();
        self.config = config;
        self.compiled = compiled;
        self.sync_neighbors_at(now);
        self.sync_local_routes(now);
        self.reassess_all(now);
        self.counters.config_reloads += 1;
        self.emit(RouteEvent::ConfigApplied { version });
        Ok(())
    }

    pub(super) fn sync_neighbors(&mut self) {
        self.sync_neighbors_at(Timestamp::ZERO);
    }

    /// Adds runtime state for new neighbors and drops the routes of removed
    /// ones.
    fn sync_neighbors_at(&mut self, now: Timestamp) {
        let configured: HashSet<NodeIx> = self.compiled.neighbors.iter().map(|n| n.ix).collect();
        let mut removed: Vec<NodeIx> = self.neighbors.keys().filter(|ix| !configured.contains(ix)).copied().collect();
        removed.sort_by(|a, b| self.nodes.resolve(*a).cmp(self.nodes.resolve(*b)));
        for ix in removed {
            self.drop_routes_of(now, ix, WithdrawCause::NeighborRemoved);
            self.neighbors.remove(&ix);
            self.restart_windows.cancel(ix);
        }
        for ix in configured {
            self.neighbors.entry(ix).or_default();
        }
    }

    /// Makes the local candidates match `originate`.
    pub(super) fn sync_local_routes(&mut self, now: Timestamp) {
        let self_ix = self.compiled.self_ix;
        let wanted: Vec<_> = self.config.originate.clone();
        let mut keep = HashSet::new();
        for route in &wanted {
            let dest = self.intern_destination(&route.destination);
            keep.insert(dest);
            let mut candidate = Candidate {
                next_hop: self_ix,
                tags: self.tag_sets.intern(&route.tags),
                path: Path::new(),
                metrics: RouteMetrics {
                    cost: route.cost,
                    latency_us: route.latency_us,
                    reliability: route.reliability,
                },
                hop_count: 0,
                flags: flags::LOCAL,
                ineligible: None,
                epoch: 0,
                expires_at: Timestamp(u64::MAX),
                received_at: now,
            };
            let entry = &self.table[dest.index()];
            match entry.position(self_ix).map(|i| &entry.candidates[i]) {
                Some(existing) if existing.same_content(&candidate) => continue,
                _ => {}
            }
            candidate.epoch = self.allocate_epoch();
            self.put_candidate(dest, candidate);
            self.reselect(now, dest);
        }
        let stale_local: Vec<DestIx> = (0..self.table.len())
            .map(|i| DestIx(i as u32))
            .filter(|dest| !keep.contains(dest) && self.table[dest.index()].position(self_ix).is_some())
            .collect();
        for dest in stale_local {
            self.note_loss(now, dest, self_ix);
            self.take_candidate(dest, self_ix);
            self.emit(RouteEvent::Withdrawn {
                destination: self.destinations.resolve(dest).clone(),
                from: self.config.node_id.clone(),
                cause: WithdrawCause::LocalRouteRemoved,
            });
            self.reselect(now, dest);
        }
    }

    /// Re-evaluates every stored candidate, in destination order.
    fn reassess_all(&mut self, now: Timestamp) {
        for i in 0..self.table.len() {
            let dest = DestIx(i as u32);
            for c in 0..self.table[i].candidates.len() {
                let assessment = self.assess(dest, &self.table[i].candidates[c]);
                let candidate = &mut self.table[i].candidates[c];
                self.gauges.restanding(candidate.ineligible, assessment.ineligible);
                candidate.ineligible = assessment.ineligible;
                candidate.set(flags::DRY_RUN_FLAGGED, assessment.dry_run.is_some());
            }
            self.reselect(now, dest);
            let entry = &self.table[i];
            if entry.best.is_some() || !entry.advertised_to.is_empty() {
                self.mark_pending(dest, Pending::RecheckExport);
            }
        }
    }
}
