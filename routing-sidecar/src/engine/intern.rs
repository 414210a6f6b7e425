//! Dense indices for ids, so the table stores 4-byte handles instead of
//! strings. Indices are assigned in first-seen order and never reused; any
//! ordering visible outside the engine goes back to the strings.

use foldhash::{HashMap, HashMapExt};
use std::sync::Arc;

use crate::engine::name_index::NameIndex;
use crate::ids::{DestinationId, NodeId, Tag};

macro_rules! index_type {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(pub u32);

        impl $name {
            // Not every index type is used to index a vector.
            #[allow(dead_code)]
            pub fn index(self) -> usize {
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
pub struct Interner<Id> {
    ids: Vec<Id>,
    index: HashMap<Id, u32>,
}

impl<Id> Default for Interner<Id> {
    fn default() -> Self {
        Self { ids: Vec::new(), index: HashMap::new() }
    }
}

impl<Id: Clone + Eq + std::hash::Hash + std::borrow::Borrow<str>> Interner<Id> {
    pub fn intern(&mut self, id: &Id) -> u32 {
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

    pub fn get(&self, name: &str) -> Option<u32> {
        self.index.get(name).copied()
    }

    pub fn resolve(&self, ix: u32) -> &Id {
        &self.ids[ix as usize]
    }

    pub fn len(&self) -> usize {
        self.ids.len()
    }
}

/// Node ids with typed indices.
#[derive(Clone, Debug, Default)]
pub struct Nodes(Interner<NodeId>);

impl Nodes {
    pub fn intern(&mut self, id: &NodeId) -> NodeIx {
        NodeIx(self.0.intern(id))
    }
    pub fn get(&self, name: &str) -> Option<NodeIx> {
        self.0.get(name).map(NodeIx)
    }
    pub fn resolve(&self, ix: NodeIx) -> &NodeId {
        self.0.resolve(ix.0)
    }
    pub fn len(&self) -> usize {
        self.0.len()
    }
}

/// Destination ids with typed indices. Their own index (not `Interner`):
/// the engine looks destinations up a window at a time (`get_many`).
#[derive(Default)]
pub struct Destinations {
    ids: Vec<DestinationId>,
    index: NameIndex,
}

impl Destinations {
    pub fn intern(&mut self, id: &DestinationId) -> DestIx {
        if let Some(ix) = self.get(id.as_str()) {
            return ix;
        }
        let ix = DestIx(u32::try_from(self.ids.len()).expect("fewer than 2^32 destinations"));
        self.ids.push(id.clone());
        self.index.insert(&self.ids, ix);
        ix
    }
    pub fn get(&self, name: &str) -> Option<DestIx> {
        self.index.get(&self.ids, name)
    }
    /// `found[k]`: the index of `wanted[k]`, as `get` would answer, for up
    /// to `name_index::MANY` names at once.
    pub fn get_many(&self, wanted: &[Option<&str>], found: &mut [Option<DestIx>]) {
        self.index.get_many(&self.ids, wanted, found);
    }
    pub fn resolve(&self, ix: DestIx) -> &DestinationId {
        &self.ids[ix.index()]
    }
    pub fn len(&self) -> usize {
        self.ids.len()
    }
}

/// Tag sets: few distinct sets exist in practice, so routes share them.
#[derive(Clone, Debug)]
pub struct TagSets {
    sets: Vec<Arc<[Tag]>>,
    index: HashMap<Arc<[Tag]>, u32>,
}

impl Default for TagSets {
    fn default() -> Self {
        let empty: Arc<[Tag]> = Arc::from(Vec::new());
        let mut index = HashMap::new();
        index.insert(empty.clone(), 0);
        Self { sets: vec![empty], index }
    }
}

impl TagSets {
    pub const EMPTY: TagSetIx = TagSetIx(0);

    /// Interns `tags` as a set (sorted, de-duplicated).
    pub fn intern(&mut self, tags: &[Tag]) -> TagSetIx {
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
        let ix = u32::try_from(self.sets.len()).expect("fewer than 2^32 tag sets");
        self.sets.push(set.clone());
        self.index.insert(set, ix);
        TagSetIx(ix)
    }

    pub fn resolve(&self, ix: TagSetIx) -> &Arc<[Tag]> {
        &self.sets[ix.index()]
    }
}
