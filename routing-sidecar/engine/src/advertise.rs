//! Sending: turns pending destinations into announcements and withdrawals
//! per neighbor, applying split horizon and export policy. Withdrawals are
//! never subject to export policy: a route a neighbor holds from us is
//! always withdrawn when we stop advertising it.

use std::sync::Arc;

use foldhash::HashMap;
use smallvec::SmallVec;

use crate::candidate::{Candidate, Pending, flags};
use crate::intern::{DestIx, NodeIx, Nodes, TagSetIx, TagSets};
use crate::selection::effective_metrics;
use crate::{Effect, Engine, Recipients};
use fabric_core::ids::{NodeId, Tag};
use fabric_core::message::{Message, RouteAnnouncement, RouteWithdrawal};
use fabric_core::policy::{PolicyMode, RouteFacts};
use fabric_core::stats::RejectReason;
use fabric_core::time::Timestamp;
use fabric_core::wire_routing;

/// Distinct recipient sets kept; past this the cache starts over (a
/// fabric node has a handful of neighbors, so few sets ever exist).
const MAX_RECIPIENT_SETS: usize = 1024;

/// The ids that every message of one flush carries (this node's id, the
/// tag sets), as copies with reference counts of their own. The messages
/// are dropped by the connections, on other threads: with the engine's
/// own ids, both threads would take turns on the same counters for every
/// message of a table transfer.
struct FlushIds {
    local: NodeId,
    tag_sets: SmallVec<[(TagSetIx, Arc<[Tag]>); 4]>,
}

impl FlushIds {
    fn new(local: &NodeId) -> Self {
        Self { local: NodeId::from(local.as_str()), tag_sets: SmallVec::new() }
    }

    fn tags(&mut self, ix: TagSetIx, sets: &TagSets) -> Arc<[Tag]> {
        if let Some((_, tags)) = self.tag_sets.iter().find(|(held, _)| *held == ix) {
            return tags.clone();
        }
        let tags: Arc<[Tag]> = sets.resolve(ix).iter().cloned().collect();
        self.tag_sets.push((ix, tags.clone()));
        tags
    }
}

/// Neighbors in the order messages go to them (configured order).
type NeighborList = SmallVec<[NodeIx; 8]>;

/// The recipient lists handed out so far, by the neighbors they name.
#[derive(Default)]
pub(super) struct RecipientSets {
    sets: HashMap<NeighborList, Recipients>,
    /// The list handed out last: consecutive destinations mostly go to the
    /// same neighbors, and a table transfer to one neighbor always does.
    last: Option<(NeighborList, Recipients)>,
}

impl RecipientSets {
    /// The shared list of `neighbors` (indices are never reused, so a list
    /// stays right for as long as it is kept).
    fn get(&mut self, neighbors: &[NodeIx], nodes: &Nodes) -> Recipients {
        if let Some((list, set)) = &self.last
            && list.as_slice() == neighbors
        {
            return Arc::clone(set);
        }
        let set = match self.sets.get(neighbors) {
            Some(set) => Arc::clone(set),
            None => {
                if self.sets.len() >= MAX_RECIPIENT_SETS {
                    self.sets.clear();
                }
                let set: Recipients = neighbors.iter().map(|neighbor| nodes.resolve(*neighbor).clone()).collect();
                self.sets.insert(neighbors.into(), Arc::clone(&set));
                set
            }
        };
        self.last = Some((neighbors.into(), Arc::clone(&set)));
        set
    }
}

impl Engine {
    /// Marks every routed destination for re-advertisement (refresh).
    pub(super) fn readvertise_all(&mut self) {
        for i in 0..self.table.len() {
            if self.table[i].best.is_some() {
                self.mark_pending(DestIx(i as u32), Pending::Readvertise);
            }
        }
    }

    /// Marks every destination so that a neighbor that just came up gets
    /// the whole table, followed by an end-of-table marker.
    pub(super) fn send_table_to(&mut self, neighbor: NodeIx) {
        for i in 0..self.table.len() {
            let entry = &mut self.table[i];
            entry.advertised_to.retain(|n| *n != neighbor);
            if entry.best.is_some() {
                self.mark_pending(DestIx(i as u32), Pending::RecheckExport);
            }
        }
        self.end_of_table_due.push(neighbor);
    }

    /// Whether `best` may be sent to `neighbor`: never back to where it came
    /// from or to a node already on its path; otherwise as export policy
    /// says. `Err`: a dry-run policy would have refused it (it is sent).
    fn exports_to(&self, dest: DestIx, best: &Candidate, neighbor: NodeIx) -> Result<bool, RejectReason> {
        if best.next_hop == neighbor || best.path.contains(&neighbor) {
            return Ok(false);
        }
        let policy = self.compiled.export_for(neighbor);
        if policy.accepts_everything() {
            return Ok(true);
        }
        let learned_from = if best.is(flags::LOCAL) { self.compiled.self_ix } else { best.next_hop };
        let origin = best.origin().unwrap_or(self.compiled.self_ix);
        let facts = RouteFacts {
            advertiser: self.nodes.resolve(learned_from).as_str(),
            origin: self.nodes.resolve(origin).as_str(),
            destination: self.destinations.resolve(dest).as_str(),
            tags: self.tag_sets.resolve(best.tags),
            hop_count: best.hop_count + 1,
        };
        match policy.evaluate(&facts) {
            Ok(()) => Ok(true),
            Err(violation) if policy.mode == PolicyMode::DryRun => Err(violation.reason()),
            Err(_) => Ok(false),
        }
    }

    /// The announcement of the best route of `dest` (there is one), with
    /// the next epoch.
    fn build_announcement(&mut self, now: Timestamp, dest: DestIx, ids: &mut FlushIds) -> Arc<Message> {
        let epoch = self.allocate_epoch();
        Arc::new(Message::Announcement(self.announcement_of(now, dest, epoch, ids)))
    }

    /// The length of the frame of `dest`'s announcement, signed as it would
    /// be, when that is above `limits.maxMessageBytes` (`explain`).
    pub(super) fn announcement_over_frame_limit(&self, now: Timestamp, dest: DestIx) -> Option<usize> {
        let mut ids = FlushIds::new(&self.config.node_id);
        let announcement = self.announcement_of(now, dest, self.next_epoch + 1, &mut ids);
        self.over_frame_limit(&Message::Announcement(announcement))
    }

    /// The length of `message`'s frame when it is above
    /// `limits.maxMessageBytes`: a frame a neighbor would refuse to read,
    /// ending the session at either end, again at every reconnect.
    fn over_frame_limit(&self, message: &Message) -> Option<usize> {
        let length = wire_routing::routing_frame_len(message);
        (length > self.config.limits.max_message_bytes).then_some(length)
    }

    /// The announcement of the best route of `dest` (there is one) with
    /// `epoch`, signed when this node signs.
    fn announcement_of(&self, now: Timestamp, dest: DestIx, epoch: u64, ids: &mut FlushIds) -> RouteAnnouncement {
        let best = self.table[dest.index()].best().expect("announced routes exist");
        let mut path = Vec::with_capacity(best.path.len() + 1);
        path.push(ids.local.clone());
        path.extend(best.path.iter().map(|hop| self.nodes.resolve(*hop).clone()));
        let ttl_ms = u32::try_from(self.config.timers.route_ttl.as_millis()).unwrap_or(u32::MAX);
        let mut announcement = RouteAnnouncement {
            destination: self.destinations.resolve(dest).clone(),
            hop_count: path.len() as u32,
            path,
            metrics: effective_metrics(best, self.link_of(best.next_hop)),
            advertiser: ids.local.clone(),
            epoch,
            ttl_ms,
            issued_at_ms: self.issue_time(now),
            tags: ids.tags(best.tags, &self.tag_sets),
            signature: None,
        };
        if let Some(signer) = &self.signer {
            signer.sign_announcement(&mut announcement);
        }
        announcement
    }

    /// The signed issue time of what this node sends now: `None` (protocol
    /// v1) with `security.signV1`.
    fn issue_time(&self, now: Timestamp) -> Option<u64> {
        (!self.config.security.sign_v1).then_some(now.0)
    }

    fn build_withdrawal(&mut self, now: Timestamp, dest: DestIx, ids: &FlushIds) -> Arc<Message> {
        let mut withdrawal = RouteWithdrawal {
            destination: self.destinations.resolve(dest).clone(),
            path: vec![ids.local.clone()],
            advertiser: ids.local.clone(),
            epoch: self.allocate_epoch(),
            issued_at_ms: self.issue_time(now),
            signature: None,
        };
        if let Some(signer) = &self.signer {
            signer.sign_withdrawal(&mut withdrawal);
        }
        Arc::new(Message::Withdrawal(withdrawal))
    }

    fn send(&mut self, to: Recipients, message: Arc<Message>) {
        self.counters.messages_sent += to.len() as u64;
        self.effects.push(Effect::Send { to, message });
    }

    /// Produces the messages for the first `limit` pending destinations in
    /// destination order; the end-of-table markers due follow once no
    /// destination is pending. The rest stay pending, in order, for the
    /// next flush. Returns whether any do.
    pub(super) fn flush_advertisements(&mut self, now: Timestamp, limit: usize) -> bool {
        let mut pending = std::mem::take(&mut self.pending);
        pending.sort_unstable();
        let now_due = limit.min(pending.len());
        let up: Vec<NodeIx> = self
            .compiled
            .neighbors
            .iter()
            .map(|slot| slot.ix)
            .filter(|ix| self.neighbors.get(ix).is_some_and(|n| n.up))
            .collect();
        let mut ids = FlushIds::new(&self.config.node_id);
        // The rest stays in the same vector (no allocation per slice).
        for dest in pending.drain(..now_due) {
            let mode = std::mem::take(&mut self.table[dest.index()].pending);
            let mut announce_to = NeighborList::new();
            // Of those, the ones it was not advertised to before this pass.
            let mut first_to = NeighborList::new();
            let mut withdraw_from = NeighborList::new();
            // A path at maxPathLength grows past it with this node added: a
            // neighbor with the same limits would refuse the announcement
            // (and, before it treated that as one bad announcement, dropped
            // the whole session). Not exported; withdrawn where it was.
            let over_limit = self.table[dest.index()]
                .best()
                .is_some_and(|best| best.path.len() + 1 > self.config.limits.max_path_length);
            if over_limit && !up.is_empty() {
                self.counters.exports_over_path_limit += 1;
            }
            for &neighbor in &up {
                let export = match self.table[dest.index()].best() {
                    None => false,
                    Some(_) if over_limit => false,
                    Some(best) => match self.exports_to(dest, best, neighbor) {
                        Ok(export) => export,
                        Err(dry_run) => {
                            self.counters.dry_run_reject(dry_run);
                            true
                        }
                    },
                };
                let advertised = &mut self.table[dest.index()].advertised_to;
                let was = advertised.contains(&neighbor);
                if export {
                    if was && mode != Pending::Readvertise {
                        continue;
                    }
                    if !was {
                        advertised.push(neighbor);
                        first_to.push(neighbor);
                    }
                    announce_to.push(neighbor);
                } else if was {
                    advertised.retain(|n| *n != neighbor);
                    withdraw_from.push(neighbor);
                }
            }
            if !announce_to.is_empty() {
                // Export implies a best route.
                let message = self.build_announcement(now, dest, &mut ids);
                if self.over_frame_limit(&message).is_none() {
                    let to = self.recipient_sets.get(&announce_to, &self.nodes);
                    self.send(to, message);
                } else {
                    // Not exported; withdrawn where an earlier version was.
                    self.counters.exports_over_frame_limit += 1;
                    let advertised = &mut self.table[dest.index()].advertised_to;
                    advertised.retain(|n| !announce_to.contains(n));
                    withdraw_from.extend(announce_to.iter().filter(|n| !first_to.contains(n)).copied());
                }
            }
            if !withdraw_from.is_empty() {
                let message = self.build_withdrawal(now, dest, &ids);
                let to = self.recipient_sets.get(&withdraw_from, &self.nodes);
                self.send(to, message);
            }
        }
        let more = !pending.is_empty();
        self.pending = pending;
        if more {
            return true;
        }
        for neighbor in std::mem::take(&mut self.end_of_table_due) {
            if self.neighbors.get(&neighbor).is_some_and(|n| n.up) {
                let advertiser = self.config.node_id.clone();
                let to = self.recipient_sets.get(&[neighbor], &self.nodes);
                self.send(to, Arc::new(Message::EndOfTable { advertiser }));
            }
        }
        false
    }
}
