//! Public keys of advertisers. Several keys per advertiser may be valid at
//! once: during a rotation the old and the new key overlap, so announcements
//! signed with either verify.

use std::collections::HashMap;

use ed25519_dalek::VerifyingKey;

use crate::ids::{KeyId, NodeId};
use crate::time::Timestamp;

/// One public key of one advertiser and the window in which it may sign.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PublicKeyEntry {
    pub advertiser: NodeId,
    pub key_id: KeyId,
    pub key: VerifyingKey,
    /// Inclusive start; `None` means valid since forever.
    pub valid_from: Option<Timestamp>,
    /// Exclusive end; `None` means no expiry.
    pub valid_until: Option<Timestamp>,
}

/// Why a key could not be used; each maps to a reject reason.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeyError {
    UnknownKey,
    NotYetValid,
    Expired,
}

/// Keys by advertiser. Lookups are by (advertiser, key id) and check the
/// validity window against the caller's clock.
#[derive(Clone, Debug, Default)]
pub struct KeyRegistry {
    by_advertiser: HashMap<NodeId, Vec<PublicKeyEntry>>,
    /// Bumped on every change so that caches keyed on verification results
    /// know when to forget.
    generation: u64,
}

impl KeyRegistry {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn from_entries(entries: impl IntoIterator<Item = PublicKeyEntry>) -> Self {
        let mut registry = Self::new();
        for entry in entries {
            registry.insert(entry);
        }
        registry
    }

    /// Adds or replaces the key `(advertiser, key_id)`.
    pub fn insert(&mut self, entry: PublicKeyEntry) {
        let keys = self.by_advertiser.entry(entry.advertiser.clone()).or_default();
        keys.retain(|existing| existing.key_id != entry.key_id);
        keys.push(entry);
        keys.sort_by(|a, b| a.key_id.cmp(&b.key_id));
        self.generation += 1;
    }

    pub fn remove(&mut self, advertiser: &NodeId, key_id: &KeyId) -> bool {
        let Some(keys) = self.by_advertiser.get_mut(advertiser) else {
            return false;
        };
        let before = keys.len();
        keys.retain(|existing| &existing.key_id != key_id);
        let removed = keys.len() != before;
        if keys.is_empty() {
            self.by_advertiser.remove(advertiser);
        }
        if removed {
            self.generation += 1;
        }
        removed
    }

    pub fn generation(&self) -> u64 {
        self.generation
    }

    pub fn len(&self) -> usize {
        self.by_advertiser.values().map(Vec::len).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.by_advertiser.is_empty()
    }

    /// The key to verify a signature by `advertiser` made with `key_id`, if
    /// it is known and valid at `now`.
    pub fn resolve(&self, advertiser: &str, key_id: &str, now: Timestamp) -> Result<&VerifyingKey, KeyError> {
        let entry = self
            .by_advertiser
            .get(advertiser)
            .and_then(|keys| keys.iter().find(|k| k.key_id.as_str() == key_id))
            .ok_or(KeyError::UnknownKey)?;
        if entry.valid_from.is_some_and(|from| now < from) {
            return Err(KeyError::NotYetValid);
        }
        if entry.valid_until.is_some_and(|until| now >= until) {
            return Err(KeyError::Expired);
        }
        Ok(&entry.key)
    }

    /// All keys, sorted by advertiser then key id (for status and tests).
    pub fn entries(&self) -> Vec<&PublicKeyEntry> {
        let mut all: Vec<&PublicKeyEntry> = self.by_advertiser.values().flatten().collect();
        all.sort_by(|a, b| (&a.advertiser, &a.key_id).cmp(&(&b.advertiser, &b.key_id)));
        all
    }
}
