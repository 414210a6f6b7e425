//! Destination names to dense indices, with a lookup of many names at once
//! that overlaps their cache misses.
//!
//! With 100k destinations, finding one misses the cache several times in a
//! row: the hash slot, then the stored name to confirm it, then (in the
//! engine) the route entry. Message by message those misses are served one
//! after the other, and waiting on them is a large share of the ingestion
//! time (docs/benchmarks.md, "Routing engine"). `get_many` goes through a
//! burst in stages, each stage reading one level for every name before the
//! next level, so the misses of different names are in flight together, as
//! DPDK's bulk hash lookup does. A general-purpose map hides where its
//! buckets are, so it cannot be staged like this; this one is small: names
//! are only ever added, never removed.

use std::hash::BuildHasher;

use crate::intern::DestIx;
use fabric_core::ids::DestinationId;

/// One slot: the upper half of the name's hash (to skip other names
/// without reading them) and the name's index plus one (0: empty).
#[derive(Clone, Copy, Default)]
struct Slot {
    tag: u32,
    index_plus_one: u32,
}

/// The index over `names` (owned by the caller, in index order).
pub(crate) struct NameIndex {
    /// Open addressing with linear probing, a power of two long and at
    /// most half full, so that probes stay short.
    slots: Vec<Slot>,
    /// Seeded per index: collisions cannot be planned from outside.
    hasher: foldhash::fast::RandomState,
}

impl Default for NameIndex {
    fn default() -> Self {
        Self { slots: vec![Slot::default(); 16], hasher: foldhash::fast::RandomState::default() }
    }
}

/// Names looked up together by `get_many` (a look-ahead window).
pub(crate) const MANY: usize = 16;

impl NameIndex {
    pub(crate) fn hash(&self, name: &str) -> u64 {
        self.hasher.hash_one(name)
    }

    fn mask(&self) -> usize {
        self.slots.len() - 1
    }

    fn home(&self, hash: u64) -> usize {
        hash as usize & self.mask()
    }

    fn tag(hash: u64) -> u32 {
        (hash >> 32) as u32
    }

    /// The first index in the probe run of `hash` whose slot carries the
    /// hash's tag and that `accept` takes; `None` at the run's end.
    fn probe(&self, hash: u64, mut accept: impl FnMut(u32) -> bool) -> Option<u32> {
        let tag = Self::tag(hash);
        let mut at = self.home(hash);
        loop {
            let slot = self.slots[at];
            let index = slot.index_plus_one.checked_sub(1)?;
            if slot.tag == tag && accept(index) {
                return Some(index);
            }
            at = (at + 1) & self.mask();
        }
    }

    /// The index of `name` (whose hash is `hash`) among `names`.
    pub(crate) fn get_hashed(&self, names: &[DestinationId], name: &str, hash: u64) -> Option<DestIx> {
        self.probe(hash, |index| names[index as usize].as_str() == name).map(DestIx)
    }

    pub(crate) fn get(&self, names: &[DestinationId], name: &str) -> Option<DestIx> {
        self.get_hashed(names, name, self.hash(name))
    }

    /// Adds `names[index]`, the newest name (the ones before it are in
    /// the index already).
    pub(crate) fn insert(&mut self, names: &[DestinationId], index: DestIx) {
        if (index.index() + 1) * 2 > self.slots.len() {
            self.grow(&names[..index.index()]);
        }
        self.place(self.hash(names[index.index()].as_str()), index.0);
    }

    fn place(&mut self, hash: u64, index: u32) {
        let mut at = self.home(hash);
        while self.slots[at].index_plus_one != 0 {
            at = (at + 1) & self.mask();
        }
        self.slots[at] = Slot { tag: Self::tag(hash), index_plus_one: index + 1 };
    }

    fn grow(&mut self, names: &[DestinationId]) {
        self.slots = vec![Slot::default(); self.slots.len() * 2];
        for (index, name) in names.iter().enumerate() {
            self.place(self.hash(name.as_str()), index as u32);
        }
    }

    /// Looks up up to `MANY` names at once; `found[k]` is the index of
    /// `wanted[k]` (`None` for no name or an unknown one). The same
    /// answers as `get` one by one, with the cache misses of the whole
    /// window overlapped (see the module doc).
    pub(crate) fn get_many(&self, names: &[DestinationId], wanted: &[Option<&str>], found: &mut [Option<DestIx>]) {
        let mut hashes = [0u64; MANY];
        // Stages 1 to 3 only bring lines into cache; what they read is summed
        // into `touched` and passed to `black_box`, so that the loads are kept.
        let mut touched = 0u64;
        for (name, hash) in wanted.iter().zip(&mut hashes) {
            if let Some(name) = name {
                *hash = self.hash(name);
            }
        }
        // Stage 1: the home slot of every name (a tight loop of loads, so
        // that all of them are in flight at once).
        for (name, &hash) in wanted.iter().zip(&hashes) {
            if name.is_some() {
                touched = touched.wrapping_add(u64::from(self.slots[self.home(hash)].tag));
            }
        }
        // Stage 2: where the name of the first slot with the same tag is
        // stored (the right name, unless two share 32 bits of hash).
        let mut stored = [""; MANY];
        for ((name, &hash), stored) in wanted.iter().zip(&hashes).zip(&mut stored) {
            if name.is_some()
                && let Some(index) = self.probe(hash, |_| true)
            {
                *stored = names[index as usize].as_str();
            }
        }
        // Stage 3: the text of those names.
        for stored in &stored {
            touched = touched.wrapping_add(stored.as_bytes().first().copied().map_or(0, u64::from));
        }
        std::hint::black_box(touched);
        // Stage 4: confirm, with everything in cache.
        for ((name, &hash), found) in wanted.iter().zip(&hashes).zip(found) {
            *found = name.and_then(|name| self.get_hashed(names, name, hash));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn build(names: &[String]) -> (Vec<DestinationId>, NameIndex) {
        let mut ids = Vec::new();
        let mut index = NameIndex::default();
        for name in names {
            if index.get(&ids, name).is_none() {
                ids.push(DestinationId::from(name.as_str()));
                index.insert(&ids, DestIx(ids.len() as u32 - 1));
            }
        }
        (ids, index)
    }

    #[test]
    fn finds_every_name_after_growing_and_nothing_else() {
        let names: Vec<String> = (0..5000).map(|i| format!("svc-{i}")).collect();
        let (ids, index) = build(&names);
        assert_eq!(ids.len(), 5000);
        assert!(index.slots.len() >= 10_000, "at most half full");
        for (i, name) in names.iter().enumerate() {
            assert_eq!(index.get(&ids, name), Some(DestIx(i as u32)), "{name}");
        }
        assert_eq!(index.get(&ids, "svc-5000"), None);
        assert_eq!(index.get(&ids, ""), None);
    }

    #[test]
    fn names_sharing_a_tag_are_told_apart_by_their_text() {
        // Force every name into one tag: only the text can separate them.
        let mut ids = Vec::new();
        let mut index = NameIndex::default();
        for (i, name) in ["a", "b", "c"].iter().enumerate() {
            ids.push(DestinationId::from(*name));
            index.place(7, i as u32);
        }
        assert_eq!(index.get_hashed(&ids, "b", 7), Some(DestIx(1)));
        assert_eq!(index.get_hashed(&ids, "c", 7), Some(DestIx(2)));
        assert_eq!(index.get_hashed(&ids, "d", 7), None);
    }

    proptest! {
        #[test]
        fn get_many_answers_as_get_does(
            stored in proptest::collection::vec("[a-c]{0,3}", 0..40),
            asked in proptest::collection::vec(proptest::option::of("[a-c]{0,3}"), 0..=MANY),
        ) {
            let (ids, index) = build(&stored);
            let wanted: Vec<Option<&str>> = asked.iter().map(|name| name.as_deref()).collect();
            let mut found = [Some(DestIx(u32::MAX)); MANY];
            index.get_many(&ids, &wanted, &mut found[..wanted.len()]);
            for (name, found) in wanted.iter().zip(&found) {
                prop_assert_eq!(*found, name.and_then(|name| index.get(&ids, name)));
            }
        }
    }
}
