//! The route table: candidates per destination and best-path bookkeeping.

use std::cmp::Ordering;

use crate::candidate::{Candidate, DestinationEntry, Fingerprint, Ineligibility, Pending, flags};
use crate::intern::{DestIx, NodeIx};
use crate::selection::{Ranked, compare, effective_metrics};
use crate::{BestRoute, Effect, Engine};
use fabric_core::config::LinkMetrics;
use fabric_core::ids::DestinationId;
use fabric_core::stats::Gauges;
use fabric_core::time::Timestamp;

impl Engine {
    pub(super) fn intern_destination(&mut self, id: &DestinationId) -> DestIx {
        let ix = self.destinations.intern(id);
        if ix.index() >= self.table.len() {
            self.table.grow_with(ix.index() + 1, DestinationEntry::default);
        }
        ix
    }

    pub(super) fn link_of(&self, next_hop: NodeIx) -> LinkMetrics {
        self.compiled.link(next_hop)
    }

    pub(super) fn ranked<'a>(&self, candidate: &'a Candidate) -> Ranked<'a> {
        Ranked { candidate, metrics: effective_metrics(candidate, self.link_of(candidate.next_hop)) }
    }

    /// Index of the best eligible candidate.
    pub(super) fn select_best(&self, entry: &DestinationEntry) -> Option<usize> {
        let mut best: Option<(usize, Ranked<'_>)> = None;
        for (i, candidate) in entry.candidates.iter().enumerate() {
            if !candidate.eligible() {
                continue;
            }
            let ranked = self.ranked(candidate);
            let better = match &best {
                None => true,
                Some((_, current)) => {
                    compare(&ranked, current, &self.compiled.tie_breakers, &self.nodes).0 == Ordering::Less
                }
            };
            if better {
                best = Some((i, ranked));
            }
        }
        best.map(|(i, _)| i)
    }

    pub(super) fn fingerprint(&self, entry: &DestinationEntry) -> Option<Fingerprint> {
        entry.best().map(|best| Fingerprint {
            next_hop: best.next_hop,
            epoch: best.epoch,
            metrics: effective_metrics(best, self.link_of(best.next_hop)),
        })
    }

    /// Recomputes the best route of `dest` after its candidates changed,
    /// reporting a change and queueing re-advertisement when it did.
    pub(super) fn reselect(&mut self, now: Timestamp, dest: DestIx) {
        let entry = &self.table[dest.index()];
        let best = self.select_best(entry).map(|i| i as u32);
        self.gauges.routed(entry.best.is_some(), best.is_some());
        self.table[dest.index()].best = best;
        let after = self.fingerprint(&self.table[dest.index()]);
        if self.table[dest.index()].reported == after {
            return;
        }
        self.table[dest.index()].reported = after;
        self.counters.best_path_changes += 1;
        let destination = self.destinations.resolve(dest).clone();
        let view = self.table[dest.index()].best().map(|b| self.best_view(dest, b));
        if view.is_some() {
            if let Some(since) = self.unreachable_since.remove(&dest) {
                let took = now.saturating_since(since);
                self.counters.convergence.observe(took);
                self.last_convergence.insert(dest, took);
            }
        } else {
            self.unreachable_since.entry(dest).or_insert(now);
        }
        self.effects.push(Effect::RouteChanged { destination, best: view });
        self.mark_pending(dest, Pending::Readvertise);
    }

    pub(super) fn mark_pending(&mut self, dest: DestIx, pending: Pending) {
        let entry = &mut self.table[dest.index()];
        if entry.pending == Pending::Nothing {
            self.pending.push(dest);
        }
        entry.pending = entry.pending.max(pending);
    }

    /// Notes that the best route of `dest` is going away, for convergence
    /// timing (the clock starts when the route in use is lost).
    pub(super) fn note_loss(&mut self, now: Timestamp, dest: DestIx, next_hop: NodeIx) {
        if self.table[dest.index()].best().is_some_and(|b| b.next_hop == next_hop) {
            self.unreachable_since.entry(dest).or_insert(now);
        }
    }

    /// Removes the candidate of `next_hop` for `dest`, keeping the
    /// per-neighbor count right. The caller reselects.
    pub(super) fn take_candidate(&mut self, dest: DestIx, next_hop: NodeIx) -> Option<Candidate> {
        let entry = &mut self.table[dest.index()];
        let position = entry.position(next_hop)?;
        let removed = entry.candidates.swap_remove(position);
        // Indices moved; the caller's reselect recomputes `best`.
        self.gauges.routed(entry.best.is_some(), false);
        entry.best = None;
        self.gauges.candidates_stored -= 1;
        self.gauges.standing(removed.ineligible, false);
        self.tag_sets.release(removed.tags);
        if !removed.is(flags::LOCAL)
            && let Some(runtime) = self.neighbors.get_mut(&next_hop)
        {
            runtime.routes = runtime.routes.saturating_sub(1);
        }
        Some(removed)
    }

    /// Stores `candidate`, replacing the one from the same next hop.
    pub(super) fn put_candidate(&mut self, dest: DestIx, candidate: Candidate) {
        if candidate.expires_at != Timestamp(u64::MAX) {
            self.earliest_expiry =
                Some(self.earliest_expiry.map_or(candidate.expires_at, |e| e.min(candidate.expires_at)));
        }
        let entry = &mut self.table[dest.index()];
        match entry.position(candidate.next_hop) {
            Some(position) => {
                // Mostly a refresh or an update with the same tags.
                let tags = candidate.tags;
                let standing = candidate.ineligible;
                let replaced = std::mem::replace(&mut entry.candidates[position], candidate);
                self.gauges.restanding(replaced.ineligible, standing);
                if replaced.tags != tags {
                    self.tag_sets.acquire(tags);
                    self.tag_sets.release(replaced.tags);
                }
            }
            None => {
                self.gauges.candidates_stored += 1;
                self.gauges.standing(candidate.ineligible, true);
                self.tag_sets.acquire(candidate.tags);
                if !candidate.is(flags::LOCAL)
                    && let Some(runtime) = self.neighbors.get_mut(&candidate.next_hop)
                {
                    runtime.routes += 1;
                }
                let candidates = &mut self.table[dest.index()].candidates;
                // Grows 1, 2, 4, 8: most destinations have one candidate or
                // a few, and a plain push would reserve four at once (of
                // about 80 B each) for the first.
                if candidates.len() == candidates.capacity() {
                    candidates.reserve_exact(candidates.len().max(1));
                }
                candidates.push(candidate);
            }
        }
    }

    pub(super) fn best_view(&self, dest: DestIx, best: &Candidate) -> BestRoute {
        let local = best.is(flags::LOCAL);
        BestRoute {
            destination: self.destinations.resolve(dest).clone(),
            next_hop: if local { self.config.node_id.clone() } else { self.nodes.resolve(best.next_hop).clone() },
            path: best.path.iter().map(|hop| self.nodes.resolve(*hop).clone()).collect(),
            hop_count: best.hop_count,
            metrics: effective_metrics(best, self.link_of(best.next_hop)),
            tags: self.tag_sets.resolve(best.tags).clone(),
            local,
            signed: best.is(flags::SIGNED),
            stale: best.is(flags::STALE),
        }
    }
}

/// The table's gauges, kept as candidates and best routes change rather
/// than counted by a walk of the table per `/stats` or `/metrics` scrape,
/// which held the actor for a millisecond per 100k routes
/// (docs/benchmarks.md, Sidecar). `verify_invariants` recounts them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct TableGauges {
    pub routes_active: u64,
    pub candidates_stored: u64,
    pub held_down: u64,
    pub suppressed: u64,
}

impl TableGauges {
    /// A stored candidate's standing `ineligible` counted in (`stored`) or
    /// out.
    pub(crate) fn standing(&mut self, ineligible: Option<Ineligibility>, stored: bool) {
        let gauge = match ineligible {
            Some(Ineligibility::HeldDown) => &mut self.held_down,
            Some(Ineligibility::Suppressed) => &mut self.suppressed,
            _ => return,
        };
        if stored {
            *gauge += 1;
        } else {
            *gauge -= 1;
        }
    }

    /// A stored candidate's standing changed in place.
    pub(crate) fn restanding(&mut self, before: Option<Ineligibility>, after: Option<Ineligibility>) {
        self.standing(before, false);
        self.standing(after, true);
    }

    /// A destination got or lost its best route.
    pub(crate) fn routed(&mut self, before: bool, after: bool) {
        match (before, after) {
            (false, true) => self.routes_active += 1,
            (true, false) => self.routes_active -= 1,
            _ => {}
        }
    }

    pub(crate) fn snapshot(self) -> Gauges {
        let TableGauges { routes_active, candidates_stored, held_down, suppressed } = self;
        Gauges { routes_active, candidates_stored, held_down, suppressed }
    }
}
