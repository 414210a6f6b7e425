//! Dense indices for ids, so the table stores 4-byte handles instead of
//! strings. Node and destination indices are assigned in first-seen order
//! and never reused; a tag set's index is reused once no stored route uses
//! the set (`TagSets`). Any ordering visible outside the engine goes back
//! to the strings.

use foldhash::{HashMap, HashMapExt};
use std::sync::Arc;

use crate::name_index::NameIndex;
use fabric_core::ids::{DestinationId, NodeId, Tag};

macro_rules! index_type {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub(crate) struct $name(pub(crate) u32);

        impl $name {
            // Not every index type is used to index a vector.
            #[allow(dead_code)]
            pub(crate) fn index(self) -> usize {
                self.0 as usize
            }
        }
    };
}

index_type!(
    /// Interned `NodeId`.
    NodeIx
);
index_type!(
    /// Interned `DestinationId`.
    DestIx
);
index_type!(
    /// Interned sorted, de-duplicated set of tags.
    TagSetIx
);

/// Interns ids of one kind.
#[derive(Clone, Debug)]
pub(crate) struct Interner<Id> {
    ids: Vec<Id>,
    index: HashMap<Id, u32>,
}

impl<Id> Default for Interner<Id> {
    fn default() -> Self {
        Self { ids: Vec::new(), index: HashMap::new() }
    }
}

impl<Id: Clone + Eq + std::hash::Hash + std::borrow::Borrow<str>> Interner<Id> {
    pub(crate) fn intern(&mut self, id: &Id) -> u32 {
        // By id, not by text: ids are shared strings whose equality first
        // compares pointers, so a clone of the interned id (every id a
        // session shares, for the session that brought it) skips the text
        // comparison.
        if let Some(&ix) = self.index.get::<Id>(id) {
            return ix;
        }
        let ix = u32::try_from(self.ids.len()).expect("fewer than 2^32 ids");
        self.ids.push(id.clone());
        self.index.insert(id.clone(), ix);
        ix
    }

    pub(crate) fn get(&self, name: &str) -> Option<u32> {
        self.index.get(name).copied()
    }

    pub(crate) fn resolve(&self, ix: u32) -> &Id {
        &self.ids[ix as usize]
    }

    pub(crate) fn len(&self) -> usize {
        self.ids.len()
    }
}

/// Node ids with typed indices.
#[derive(Clone, Debug, Default)]
pub(crate) struct Nodes(Interner<NodeId>);

impl Nodes {
    pub(crate) fn intern(&mut self, id: &NodeId) -> NodeIx {
        NodeIx(self.0.intern(id))
    }
    pub(crate) fn get(&self, name: &str) -> Option<NodeIx> {
        self.0.get(name).map(NodeIx)
    }
    pub(crate) fn resolve(&self, ix: NodeIx) -> &NodeId {
        self.0.resolve(ix.0)
    }
    pub(crate) fn len(&self) -> usize {
        self.0.len()
    }
}

/// Destination ids with typed indices. Their own index (not `Interner`):
/// the engine looks destinations up a window at a time (`get_many`).
#[derive(Default)]
pub(crate) struct Destinations {
    ids: Vec<DestinationId>,
    index: NameIndex,
}

impl Destinations {
    pub(crate) fn intern(&mut self, id: &DestinationId) -> DestIx {
        if let Some(ix) = self.get(id.as_str()) {
            return ix;
        }
        let ix = DestIx(u32::try_from(self.ids.len()).expect("fewer than 2^32 destinations"));
        self.ids.push(id.clone());
        self.index.insert(&self.ids, ix);
        ix
    }
    pub(crate) fn get(&self, name: &str) -> Option<DestIx> {
        self.index.get(&self.ids, name)
    }
    /// `found[k]`: the index of `wanted[k]`, as `get` would answer, for up
    /// to `name_index::MANY` names at once.
    pub(crate) fn get_many(&self, wanted: &[Option<&str>], found: &mut [Option<DestIx>]) {
        self.index.get_many(&self.ids, wanted, found);
    }
    pub(crate) fn resolve(&self, ix: DestIx) -> &DestinationId {
        &self.ids[ix.index()]
    }
    pub(crate) fn len(&self) -> usize {
        self.ids.len()
    }
}

/// Tag sets: few distinct sets exist in practice, so routes share them.
///
/// Reference-counted by the stored candidates that use them, so that a
/// peer announcing ever new sets cannot grow the interner past what the
/// table holds: `acquire` when a candidate is stored, `release` when it is
/// removed or replaced, and `sweep` (at a point where every index in use is
/// held by a stored candidate) frees the sets nothing holds any more. A
/// freed index is reused, so indices stay dense. The empty set is never
/// freed.
#[derive(Clone, Debug)]
pub(crate) struct TagSets {
    sets: Vec<Arc<[Tag]>>,
    index: HashMap<Arc<[Tag]>, u32>,
    /// Stored candidates per set, by index.
    refs: Vec<u32>,
    /// Indices that were at zero references at some point since the last
    /// sweep (a set is born at zero): the only ones a sweep needs to look
    /// at. May hold an index twice, or one that is in use again.
    unreferenced: Vec<u32>,
    /// Freed indices, reused last-freed first.
    free: Vec<u32>,
}

impl Default for TagSets {
    fn default() -> Self {
        let empty: Arc<[Tag]> = Arc::from(Vec::new());
        let mut index = HashMap::new();
        index.insert(empty.clone(), 0);
        Self { sets: vec![empty], index, refs: vec![0], unreferenced: Vec::new(), free: Vec::new() }
    }
}

impl TagSets {
    pub(crate) const EMPTY: TagSetIx = TagSetIx(0);

    /// Interns `tags` as a set (sorted, de-duplicated). A new set has no
    /// reference: it is freed at the next sweep unless a candidate stored
    /// by then `acquire`s it.
    pub(crate) fn intern(&mut self, tags: &[Tag]) -> TagSetIx {
        if tags.is_empty() {
            return Self::EMPTY;
        }
        let canonical = tags.windows(2).all(|w| w[0] < w[1]);
        let lookup = |index: &HashMap<Arc<[Tag]>, u32>, set: &[Tag]| index.get(set).copied();
        if canonical && let Some(ix) = lookup(&self.index, tags) {
            return TagSetIx(ix);
        }
        let mut sorted = tags.to_vec();
        sorted.sort();
        sorted.dedup();
        if let Some(ix) = lookup(&self.index, &sorted) {
            return TagSetIx(ix);
        }
        let set: Arc<[Tag]> = Arc::from(sorted);
        let ix = match self.free.pop() {
            Some(ix) => {
                self.sets[ix as usize] = set.clone();
                ix
            }
            None => {
                let ix = u32::try_from(self.sets.len()).expect("fewer than 2^32 tag sets");
                self.sets.push(set.clone());
                self.refs.push(0);
                ix
            }
        };
        self.index.insert(set, ix);
        self.unreferenced.push(ix);
        TagSetIx(ix)
    }

    pub(crate) fn resolve(&self, ix: TagSetIx) -> &Arc<[Tag]> {
        &self.sets[ix.index()]
    }

    /// A stored candidate uses `ix`.
    pub(crate) fn acquire(&mut self, ix: TagSetIx) {
        self.refs[ix.index()] += 1;
    }

    /// A stored candidate that used `ix` is gone.
    pub(crate) fn release(&mut self, ix: TagSetIx) {
        let refs = &mut self.refs[ix.index()];
        *refs = refs.checked_sub(1).expect("released a tag set more often than acquired");
        if *refs == 0 && ix != Self::EMPTY {
            self.unreferenced.push(ix.0);
        }
    }

    /// Frees every set without a reference. Only sound where no index is
    /// held outside the stored candidates (between inputs, not during one).
    /// Returns how many sets were freed.
    pub(crate) fn sweep(&mut self) -> usize {
        let mut freed = 0;
        for ix in std::mem::take(&mut self.unreferenced) {
            let slot = ix as usize;
            // Skips an index listed twice (already freed) or used again.
            if self.refs[slot] != 0 || self.sets[slot].is_empty() {
                continue;
            }
            let empty = self.sets[0].clone();
            let set = std::mem::replace(&mut self.sets[slot], empty);
            self.index.remove(&set);
            self.free.push(ix);
            freed += 1;
        }
        freed
    }

    /// Sets held now (the empty one included), freed ones not counted.
    pub(crate) fn len(&self) -> usize {
        self.sets.len() - self.free.len()
    }

    /// Stored candidates per set, for the invariant check.
    pub(crate) fn references(&self, ix: TagSetIx) -> u32 {
        self.refs[ix.index()]
    }

    /// Indices of the sets held now.
    pub(crate) fn live(&self) -> impl Iterator<Item = TagSetIx> + '_ {
        (0..self.sets.len()).filter(|&i| i == 0 || !self.sets[i].is_empty()).map(|i| TagSetIx(i as u32))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tags(names: &[&str]) -> Vec<Tag> {
        names.iter().map(|n| Tag::new(*n)).collect()
    }

    #[test]
    fn a_set_is_freed_when_its_last_user_goes_and_its_index_reused() {
        let mut sets = TagSets::default();
        let gold = sets.intern(&tags(&["gold", "eu"]));
        assert_eq!(sets.intern(&tags(&["eu", "gold", "eu"])), gold, "one index per set");
        sets.acquire(gold);
        sets.acquire(gold);
        sets.release(gold);
        assert_eq!(sets.sweep(), 0, "one user left");
        assert_eq!(**sets.resolve(gold), tags(&["eu", "gold"]));
        sets.release(gold);
        assert_eq!(sets.sweep(), 1);
        assert_eq!(sets.len(), 1, "only the empty set");
        let silver = sets.intern(&tags(&["silver"]));
        assert_eq!(silver, gold, "the freed index is reused");
        assert_eq!(**sets.resolve(silver), tags(&["silver"]));
        assert_eq!(sets.intern(&tags(&["gold", "eu"])), TagSetIx(2), "a freed set is interned afresh");
    }

    #[test]
    fn a_set_never_stored_is_freed_and_one_used_again_is_kept() {
        let mut sets = TagSets::default();
        let unused = sets.intern(&tags(&["a"]));
        let kept = sets.intern(&tags(&["b"]));
        sets.acquire(kept);
        sets.release(kept);
        sets.acquire(kept);
        assert_eq!(sets.sweep(), 1);
        assert_eq!(sets.live().collect::<Vec<_>>(), [TagSets::EMPTY, kept]);
        assert_ne!(sets.intern(&tags(&["a"])), kept);
        let _ = unused;
        sets.acquire(TagSets::EMPTY);
        sets.release(TagSets::EMPTY);
        sets.sweep();
        assert!(sets.resolve(TagSets::EMPTY).is_empty(), "the empty set stays");
        assert_eq!(sets.intern(&[]), TagSets::EMPTY);
    }

    #[test]
    fn a_stream_of_distinct_sets_with_one_user_at_a_time_keeps_two_sets() {
        let mut sets = TagSets::default();
        let mut current = TagSets::EMPTY;
        sets.acquire(current);
        for i in 0..10_000 {
            let next = sets.intern(&tags(&[&format!("t{i}"), "x"]));
            sets.acquire(next);
            sets.release(current);
            current = next;
            sets.sweep();
            assert!(sets.len() <= 2, "{} sets after {i}", sets.len());
        }
        assert!(sets.sets.len() <= 3, "the slots are reused: {}", sets.sets.len());
        assert_eq!(sets.index.len(), sets.len());
    }
}
