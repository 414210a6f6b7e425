//! Time-driven work: hold-down and suppression ends, TTL expiry, graceful
//! restart windows, tombstones and periodic refresh. All driven by `tick`.

use crate::candidate::{Ineligibility, RouteKey, flags};
use crate::intern::{DestIx, NodeIx};
use crate::{Engine, RouteEvent, WithdrawCause};
use fabric_core::ids::NodeId;
use fabric_core::time::Timestamp;

impl Engine {
    /// Runs everything that is due at `now`. Call at `next_deadline()`.
    pub fn tick(&mut self, now: Timestamp) {
        for key in self.hold_downs.pop_due(now) {
            self.emit(RouteEvent::HoldDownEnded {
                destination: self.destinations.resolve(key.destination).clone(),
                next_hop: self.nodes.resolve(key.next_hop).clone(),
            });
            self.reassess_one(now, key);
        }
        for key in self.dampening.tick(now) {
            self.counters.routes_reused += 1;
            self.emit(RouteEvent::Reused {
                destination: self.destinations.resolve(key.destination).clone(),
                advertiser: self.nodes.resolve(key.next_hop).clone(),
            });
            self.reassess_one(now, key);
        }
        for neighbor in self.restart_windows.pop_due(now) {
            self.purge_stale(now, neighbor);
        }
        for key in self.tombstone_expiry.pop_due(now) {
            self.tombstones.remove(&key);
        }
        if self.earliest_expiry.is_some_and(|at| at <= now) {
            self.expire(now);
        }
        if now >= self.next_refresh {
            self.readvertise_all();
            self.next_refresh = now + self.config.timers.refresh_interval;
        }
    }

    /// Re-checks one stored candidate after a timer changed its standing.
    fn reassess_one(&mut self, now: Timestamp, key: RouteKey) {
        let entry = &self.table[key.destination.index()];
        let Some(i) = entry.position(key.next_hop) else { return };
        let assessment = self.assess(key.destination, &entry.candidates[i]);
        let candidate = &mut self.table[key.destination.index()].candidates[i];
        if candidate.ineligible != assessment.ineligible {
            self.gauges.restanding(candidate.ineligible, assessment.ineligible);
            candidate.ineligible = assessment.ineligible;
            if assessment.ineligible.is_none() {
                self.counters.announcements_accepted += 1;
            }
            self.reselect(now, key.destination);
        }
    }

    /// Removes every candidate whose TTL ran out, and recomputes the
    /// earliest expiry exactly.
    fn expire(&mut self, now: Timestamp) {
        let mut earliest: Option<Timestamp> = None;
        for i in 0..self.table.len() {
            let dest = DestIx(i as u32);
            let expired: Vec<NodeIx> =
                self.table[i].candidates.iter().filter(|c| c.expires_at <= now).map(|c| c.next_hop).collect();
            for next_hop in expired {
                self.note_loss(now, dest, next_hop);
                self.take_candidate(dest, next_hop);
                self.counters.routes_expired += 1;
                self.emit(RouteEvent::Expired {
                    destination: self.destinations.resolve(dest).clone(),
                    from: self.nodes.resolve(next_hop).clone(),
                });
                self.reselect(now, dest);
            }
            for candidate in &self.table[i].candidates {
                if candidate.expires_at != Timestamp(u64::MAX) {
                    earliest = Some(earliest.map_or(candidate.expires_at, |e| e.min(candidate.expires_at)));
                }
            }
        }
        self.earliest_expiry = earliest;
    }

    /// A neighbor's session came up: send it our table.
    pub fn neighbor_up(&mut self, _now: Timestamp, neighbor: &NodeId) {
        let Some(ix) = self.nodes.get(neighbor.as_str()).filter(|ix| self.compiled.slot(*ix).is_some()) else {
            return;
        };
        self.neighbors.entry(ix).or_default().up = true;
        self.send_table_to(ix);
    }

    /// A neighbor's session went down. With `graceful`, its routes stay in
    /// use marked stale until it sends end-of-table after reconnecting or
    /// the restart window closes; otherwise they are withdrawn at once,
    /// unless the neighbor is still inside a restart window it announced.
    pub fn neighbor_down(&mut self, now: Timestamp, neighbor: &NodeId, graceful: bool) {
        let Some(ix) = self.nodes.get(neighbor.as_str()).filter(|ix| self.compiled.slot(*ix).is_some()) else {
            return;
        };
        self.neighbors.entry(ix).or_default().up = false;
        for entry in &mut self.table {
            entry.advertised_to.retain(|n| *n != ix);
        }
        // A neighbor still inside the restart window it announced (no
        // end-of-table yet) that drops again keeps its routes stale until
        // that window ends: a session to a node that is still shutting down,
        // or one that ends before the table was re-sent, must not undo the
        // announced restart. The window is not extended.
        let restarting = self.restart_windows.deadline(ix).is_some();
        if graceful || restarting {
            for entry in &mut self.table {
                if let Some(i) = entry.position(ix) {
                    entry.candidates[i].set(flags::STALE, true);
                }
            }
            if !self.marked_stale.contains(&ix) {
                self.marked_stale.push(ix);
            }
            if graceful {
                self.restart_windows.schedule(ix, now + self.config.timers.graceful_restart_window);
            }
        } else {
            self.drop_routes_of(now, ix, WithdrawCause::NeighborLost);
        }
    }

    /// Withdraws every route learned from `neighbor`.
    pub(super) fn drop_routes_of(&mut self, now: Timestamp, neighbor: NodeIx, cause: WithdrawCause) {
        for i in 0..self.table.len() {
            if self.table[i].position(neighbor).is_some() {
                self.remove_route(now, RouteKey { destination: DestIx(i as u32), next_hop: neighbor }, cause);
            }
        }
    }

    /// Drops the routes of `neighbor` still marked stale after its restart.
    pub(super) fn purge_stale(&mut self, now: Timestamp, neighbor: NodeIx) {
        self.restart_windows.cancel(neighbor);
        let Some(at) = self.marked_stale.iter().position(|ix| *ix == neighbor) else {
            // None of its routes is stale: nothing to walk the table for.
            return;
        };
        self.marked_stale.swap_remove(at);
        let mut purged = 0;
        for i in 0..self.table.len() {
            let dest = DestIx(i as u32);
            let stale = self.table[i].position(neighbor).is_some_and(|p| self.table[i].candidates[p].is(flags::STALE));
            if stale {
                self.note_loss(now, dest, neighbor);
                self.take_candidate(dest, neighbor);
                purged += 1;
                self.reselect(now, dest);
            }
        }
        self.counters.routes_purged_stale += purged;
        if purged > 0 {
            self.emit(RouteEvent::PurgedStale { neighbor: self.nodes.resolve(neighbor).clone(), routes: purged });
        }
    }

    /// Whether a stored candidate is currently held down (for tests).
    pub fn is_held_down(&self, destination: &str, next_hop: &str) -> bool {
        self.lookup(destination, next_hop)
            .is_some_and(|(d, i)| self.table[d.index()].candidates[i].ineligible == Some(Ineligibility::HeldDown))
    }

    pub(super) fn lookup(&self, destination: &str, next_hop: &str) -> Option<(DestIx, usize)> {
        let dest = self.destinations.get(destination)?;
        let hop = self.nodes.get(next_hop)?;
        self.table[dest.index()].position(hop).map(|i| (dest, i))
    }
}
