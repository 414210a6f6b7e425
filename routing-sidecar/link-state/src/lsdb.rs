//! The link-state database of one area and its flooding rules.
//!
//! Per origin the database keeps the newest update seen:
//! - a higher sequence replaces what is stored and is re-flooded to every
//!   neighbor of the area except the one it came from;
//! - the same sequence is a duplicate: dropped, not re-flooded (this is what
//!   stops flooding);
//! - a lower sequence is stale: rejected, and the caller may send our newer
//!   copy back so the sender catches up;
//! - at equal sequence a flush (TTL 0, "max age") beats a live copy, as in
//!   OSPF, so a withdrawal cannot be undone by a slow duplicate.
//!
//! Entries age out at `received + min(ttl, maxTtl)`, driven by `tick(now)`.
//! A flush removes the origin's links at once and stays as a tombstone for
//! `flush_hold` so older copies still in flight are recognised as stale.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::sync::Arc;

use fabric_core::ids::NodeId;
pub use fabric_core::link_state::LsdbLimits;
use fabric_core::link_state::area_id::AreaId;
use fabric_core::link_state::lsa::LinkStateUpdate;
use fabric_core::time::Timestamp;

/// Whether `update` offers anything besides its links: summary entries or
/// destinations.
fn names_destinations(update: &LinkStateUpdate) -> bool {
    update.summary.as_ref().is_some_and(|s| !s.entries.is_empty()) || update.has_destinations()
}

/// One stored update.
#[derive(Clone, Debug, PartialEq)]
pub struct LsdbEntry {
    pub update: Arc<LinkStateUpdate>,
    pub received_at: Timestamp,
    pub expires_at: Timestamp,
    /// The neighbor that delivered it; `None` when this node originated it.
    pub learned_from: Option<NodeId>,
}

impl LsdbEntry {
    pub fn is_flush(&self) -> bool {
        self.update.is_flush()
    }
}

/// How an incoming update compares with the stored one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Freshness {
    Newer,
    Duplicate,
    Older,
}

/// What `install` did.
#[derive(Clone, Debug, PartialEq)]
pub enum InstallOutcome {
    /// Stored. `flood_to` lists the area's neighbors that must get a copy
    /// of `update` (the stored copy, shared).
    Installed {
        update: Arc<LinkStateUpdate>,
        flood_to: Vec<NodeId>,
        /// The origin's links differ from before (SPF must run again).
        links_changed: bool,
        /// The origin's summary differs from before (inter-area routes must
        /// be recomputed, SPF need not run).
        summary_changed: bool,
    },
    /// Same sequence as stored: not re-flooded.
    Duplicate,
    /// Older than stored; `current` is the stored copy.
    Stale { current: Arc<LinkStateUpdate> },
    /// The update belongs to another area.
    WrongArea,
    /// A new origin from a neighbor while the area already holds
    /// `max_entries` origins.
    Full,
}

/// An entry removed by `tick`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExpiredEntry {
    pub origin: NodeId,
    pub sequence: u64,
    /// A flush tombstone ended (its links were already gone).
    pub was_flush: bool,
}

/// The database of one area: one entry per origin, plus the neighbors that
/// updates of this area are flooded to.
#[derive(Clone, Debug)]
pub struct AreaLsdb {
    area: AreaId,
    limits: LsdbLimits,
    neighbors: BTreeSet<NodeId>,
    entries: BTreeMap<NodeId, LsdbEntry>,
    /// One shared copy of every node id the stored updates mention. Updates
    /// are rewritten to use these copies, so every mention of a node shares
    /// one allocation and the graph builder can intern by address instead
    /// of hashing and comparing strings (see `Topology::from_updates`).
    names: HashSet<NodeId>,
    /// Bumped whenever some origin's links change, appear or disappear: the
    /// SPF input version. Refreshes with the same links leave it alone.
    links_version: u64,
    /// Bumped whenever some origin's summary or destinations change: what
    /// route views use besides the SPF result.
    summary_version: u64,
}

impl AreaLsdb {
    pub fn new(area: AreaId, limits: LsdbLimits) -> Self {
        Self {
            area,
            limits,
            neighbors: BTreeSet::new(),
            entries: BTreeMap::new(),
            names: HashSet::new(),
            links_version: 0,
            summary_version: 0,
        }
    }

    pub fn area(&self) -> &AreaId {
        &self.area
    }

    pub fn set_limits(&mut self, limits: LsdbLimits) {
        self.limits = limits;
    }

    /// Replaces the set of neighbors adjacent in this area.
    pub fn set_neighbors(&mut self, neighbors: impl IntoIterator<Item = NodeId>) {
        self.neighbors = neighbors.into_iter().collect();
    }

    pub fn neighbors(&self) -> &BTreeSet<NodeId> {
        &self.neighbors
    }

    pub fn is_neighbor(&self, node: &NodeId) -> bool {
        self.neighbors.contains(node)
    }

    /// Every neighbor of the area but `except`, in id order.
    pub fn flood_targets(&self, except: Option<&NodeId>) -> Vec<NodeId> {
        self.neighbors.iter().filter(|n| Some(*n) != except).cloned().collect()
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    pub fn get(&self, origin: &NodeId) -> Option<&LsdbEntry> {
        self.entries.get(origin)
    }

    /// All entries, tombstones included, by origin.
    pub fn entries(&self) -> impl Iterator<Item = &LsdbEntry> {
        self.entries.values()
    }

    /// The updates that currently count (tombstones excluded), by origin.
    pub fn live_updates(&self) -> impl Iterator<Item = &LinkStateUpdate> {
        self.entries.values().filter(|e| !e.is_flush()).map(|e| &*e.update)
    }

    pub fn links_version(&self) -> u64 {
        self.links_version
    }

    pub fn summary_version(&self) -> u64 {
        self.summary_version
    }

    /// The earliest time `tick` has work to do.
    pub fn next_expiry(&self) -> Option<Timestamp> {
        self.entries.values().map(|e| e.expires_at).min()
    }

    /// Compares `update` with the stored copy of the same origin.
    pub fn freshness(&self, update: &LinkStateUpdate) -> Freshness {
        let Some(stored) = self.entries.get(&update.origin) else {
            return Freshness::Newer;
        };
        let stored = &stored.update;
        match update.sequence.cmp(&stored.sequence) {
            std::cmp::Ordering::Greater => Freshness::Newer,
            std::cmp::Ordering::Less => Freshness::Older,
            std::cmp::Ordering::Equal if update.is_flush() && !stored.is_flush() => Freshness::Newer,
            std::cmp::Ordering::Equal => Freshness::Duplicate,
        }
    }

    /// The shared copy of `id`, remembered if new.
    fn canonical(names: &mut HashSet<NodeId>, id: &NodeId) -> NodeId {
        match names.get(id.as_str()) {
            Some(shared) => shared.clone(),
            None => {
                names.insert(id.clone());
                id.clone()
            }
        }
    }

    /// Applies the flooding rules to `update`, received from `from` (`None`
    /// for this node's own updates) at `now`.
    pub fn install(&mut self, mut update: LinkStateUpdate, from: Option<&NodeId>, now: Timestamp) -> InstallOutcome {
        if update.area != self.area {
            return InstallOutcome::WrongArea;
        }
        match self.freshness(&update) {
            Freshness::Duplicate => return InstallOutcome::Duplicate,
            Freshness::Older => {
                let current = Arc::clone(&self.entries[&update.origin].update);
                return InstallOutcome::Stale { current };
            }
            Freshness::Newer => {}
        }
        let previous = self.entries.get(&update.origin);
        // The cap protects against neighbors; this node's own update always
        // fits, or it could lock itself out of its own area.
        if previous.is_none() && from.is_some() && self.entries.len() >= self.limits.max_entries {
            return InstallOutcome::Full;
        }
        let (links_changed, summary_changed) = match previous {
            Some(old) => (
                !old.update.same_links(&update),
                !old.update.same_summary(&update) || old.update.destinations != update.destinations,
            ),
            None => (!update.links.is_empty(), names_destinations(&update)),
        };
        let expires_at =
            if update.is_flush() { now + self.limits.flush_hold } else { update.expires_at(now, self.limits.max_ttl) };
        update.origin = Self::canonical(&mut self.names, &update.origin);
        for link in &mut update.links {
            link.neighbor = Self::canonical(&mut self.names, &link.neighbor);
        }
        let update = Arc::new(update);
        self.entries.insert(
            update.origin.clone(),
            LsdbEntry { update: Arc::clone(&update), received_at: now, expires_at, learned_from: from.cloned() },
        );
        if links_changed {
            self.links_version += 1;
        }
        if summary_changed {
            self.summary_version += 1;
        }
        InstallOutcome::Installed { update, flood_to: self.flood_targets(from), links_changed, summary_changed }
    }

    /// Forgets shared ids no stored update mentions any more, once they
    /// outnumber the ones in use (so the cost is amortized).
    fn prune_names(&mut self) {
        let mentioned = self.entries.values().map(|e| 1 + e.update.links.len()).sum::<usize>();
        if self.names.len() <= 64 || self.names.len() <= mentioned {
            return;
        }
        let mut names = HashSet::with_capacity(self.entries.len());
        for entry in self.entries.values() {
            names.insert(entry.update.origin.clone());
            names.extend(entry.update.links.iter().map(|l| l.neighbor.clone()));
        }
        self.names = names;
    }

    /// Removes entries whose time is up at `now` and returns them by origin.
    pub fn tick(&mut self, now: Timestamp) -> Vec<ExpiredEntry> {
        let expired: Vec<NodeId> =
            self.entries.iter().filter(|(_, e)| e.expires_at <= now).map(|(origin, _)| origin.clone()).collect();
        let mut removed = Vec::with_capacity(expired.len());
        for origin in expired {
            let entry = self.entries.remove(&origin).expect("listed above");
            if !entry.update.links.is_empty() {
                self.links_version += 1;
            }
            if names_destinations(&entry.update) {
                self.summary_version += 1;
            }
            removed.push(ExpiredEntry { origin, sequence: entry.update.sequence, was_flush: entry.is_flush() });
        }
        if !removed.is_empty() {
            self.prune_names();
        }
        removed
    }

    /// Drops the entry of `origin` without ageing (used when the area is
    /// left). Returns whether there was one.
    pub fn remove(&mut self, origin: &NodeId) -> bool {
        match self.entries.remove(origin) {
            Some(entry) => {
                if !entry.update.links.is_empty() {
                    self.links_version += 1;
                }
                if names_destinations(&entry.update) {
                    self.summary_version += 1;
                }
                self.prune_names();
                true
            }
            None => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use fabric_core::link_state::lsa::fixtures::{link, update};
    use std::time::Duration;

    const LIMITS: LsdbLimits =
        LsdbLimits { max_entries: 3, max_ttl: Duration::from_secs(3600), flush_hold: Duration::from_secs(10) };

    fn lsdb() -> AreaLsdb {
        let mut db = AreaLsdb::new(AreaId::from("x"), LIMITS);
        db.set_neighbors(["n1", "n2", "n3"].map(NodeId::from));
        db
    }

    fn installed(outcome: &InstallOutcome) -> (Vec<&str>, bool) {
        match outcome {
            InstallOutcome::Installed { flood_to, links_changed, .. } => {
                (flood_to.iter().map(NodeId::as_str).collect(), *links_changed)
            }
            other => panic!("expected Installed, got {other:?}"),
        }
    }

    #[test]
    fn newer_sequence_is_installed_and_flooded_to_all_area_neighbors_but_the_sender() {
        let mut db = lsdb();
        let n2 = NodeId::from("n2");
        let outcome = db.install(update("a", "x", 1, vec![link("b", 1)]), Some(&n2), Timestamp(0));
        assert_eq!(installed(&outcome), (vec!["n1", "n3"], true));
        let outcome = db.install(update("a", "x", 2, vec![link("b", 5)]), Some(&n2), Timestamp(1));
        assert_eq!(installed(&outcome), (vec!["n1", "n3"], true));
        assert_eq!(db.get(&NodeId::from("a")).unwrap().update.sequence, 2);
        assert_eq!(db.links_version(), 2);
    }

    #[test]
    fn own_updates_flood_to_every_neighbor() {
        let mut db = lsdb();
        let outcome = db.install(update("me", "x", 1, vec![link("n1", 1)]), None, Timestamp(0));
        assert_eq!(installed(&outcome).0, ["n1", "n2", "n3"]);
    }

    #[test]
    fn equal_sequence_is_a_duplicate_and_not_reflooded() {
        let mut db = lsdb();
        let n1 = NodeId::from("n1");
        db.install(update("a", "x", 4, vec![link("b", 1)]), Some(&n1), Timestamp(0));
        let again = db.install(update("a", "x", 4, vec![link("b", 1)]), Some(&NodeId::from("n2")), Timestamp(5));
        assert_eq!(again, InstallOutcome::Duplicate);
        // The duplicate did not refresh the entry either.
        assert_eq!(db.get(&NodeId::from("a")).unwrap().received_at, Timestamp(0));
    }

    #[test]
    fn older_sequence_is_rejected_with_the_current_copy() {
        let mut db = lsdb();
        db.install(update("a", "x", 4, vec![link("b", 1)]), None, Timestamp(0));
        match db.install(update("a", "x", 3, vec![]), Some(&NodeId::from("n1")), Timestamp(1)) {
            InstallOutcome::Stale { current } => assert_eq!(current.sequence, 4),
            other => panic!("expected Stale, got {other:?}"),
        }
    }

    #[test]
    fn refresh_with_same_links_does_not_bump_the_topology_version() {
        let mut db = lsdb();
        db.install(update("a", "x", 1, vec![link("b", 1)]), None, Timestamp(0));
        let version = db.links_version();
        let outcome = db.install(update("a", "x", 2, vec![link("b", 1)]), None, Timestamp(1));
        assert!(!installed(&outcome).1);
        assert_eq!(db.links_version(), version);
    }

    #[test]
    fn entries_age_out_at_expiry_on_tick() {
        let mut db = lsdb();
        db.install(update("a", "x", 1, vec![link("b", 1)]), None, Timestamp(0));
        assert_eq!(db.next_expiry(), Some(Timestamp(60_000)));
        assert!(db.tick(Timestamp(59_999)).is_empty());
        let version = db.links_version();
        let expired = db.tick(Timestamp(60_000));
        assert_eq!(expired, vec![ExpiredEntry { origin: NodeId::from("a"), sequence: 1, was_flush: false }]);
        assert!(db.is_empty());
        assert_eq!(db.links_version(), version + 1);
    }

    #[test]
    fn flush_removes_links_at_once_and_blocks_older_copies_until_the_tombstone_ends() {
        let mut db = lsdb();
        db.install(update("a", "x", 5, vec![link("b", 1)]), None, Timestamp(0));
        let mut flush = update("a", "x", 5, vec![]);
        flush.ttl_ms = 0;
        // Same sequence: the flush (max age) still wins.
        let outcome = db.install(flush, Some(&NodeId::from("n1")), Timestamp(100));
        assert_eq!(installed(&outcome), (vec!["n2", "n3"], true));
        assert_eq!(db.live_updates().count(), 0);
        assert!(matches!(
            db.install(update("a", "x", 4, vec![link("b", 1)]), None, Timestamp(200)),
            InstallOutcome::Stale { .. }
        ));
        assert_eq!(db.next_expiry(), Some(Timestamp(10_100)));
        let expired = db.tick(Timestamp(10_100));
        assert!(expired[0].was_flush);
        assert!(db.is_empty());
    }

    #[test]
    fn updates_of_other_areas_are_refused() {
        let mut db = lsdb();
        assert_eq!(db.install(update("a", "y", 1, vec![]), None, Timestamp(0)), InstallOutcome::WrongArea);
    }

    #[test]
    fn a_full_database_refuses_new_origins_from_neighbors_but_updates_known_ones_and_own() {
        let mut db = lsdb();
        let n1 = NodeId::from("n1");
        for origin in ["a", "b", "c"] {
            db.install(update(origin, "x", 1, vec![]), Some(&n1), Timestamp(0));
        }
        assert_eq!(db.install(update("d", "x", 1, vec![]), Some(&n1), Timestamp(0)), InstallOutcome::Full);
        assert!(matches!(
            db.install(update("a", "x", 2, vec![]), Some(&n1), Timestamp(0)),
            InstallOutcome::Installed { .. }
        ));
        // This node's own update always fits.
        assert!(matches!(
            db.install(update("me", "x", 1, vec![]), None, Timestamp(0)),
            InstallOutcome::Installed { .. }
        ));
    }
}
