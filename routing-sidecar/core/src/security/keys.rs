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

/// Why 32 bytes are not an ed25519 public key this node trusts.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum BadPublicKey {
    #[error("not a point of the ed25519 curve")]
    NotAPoint,
    /// Another encoding of a point: two keys would compare unequal and
    /// verify the same signatures.
    #[error("not the canonical encoding of its point")]
    NonCanonical,
    /// A point of order at most 8: signatures with it prove nothing.
    #[error("a weak key: a point of small order")]
    SmallOrder,
    /// A point with a small-order component: verification results depend
    /// on the verifier's equation.
    #[error("a weak key: not in the prime-order subgroup")]
    MixedOrder,
}

/// The ed25519 public key of `bytes`, refused when it is not a valid point,
/// not canonically encoded, or not of prime order (RFC 8032 section 5.1.3
/// decoding, plus the checks of "Taming the many EdDSAs").
pub fn public_key(bytes: &[u8; 32]) -> Result<VerifyingKey, BadPublicKey> {
    let key = VerifyingKey::from_bytes(bytes).map_err(|_| BadPublicKey::NotAPoint)?;
    if key.is_weak() {
        return Err(BadPublicKey::SmallOrder);
    }
    let point = key.to_edwards();
    if point.compress().to_bytes() != *bytes {
        return Err(BadPublicKey::NonCanonical);
    }
    if !point.is_torsion_free() {
        return Err(BadPublicKey::MixedOrder);
    }
    Ok(key)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_canonical_prime_order_points_are_keys() {
        let valid = crate::security::SigningIdentity::from_secret_bytes("k".into(), &[7; 32]).verifying_key();
        assert_eq!(public_key(&valid.to_bytes()), Ok(valid));
        // The identity point (y = 1): small order.
        let mut identity = [0u8; 32];
        identity[0] = 1;
        assert_eq!(public_key(&identity), Err(BadPublicKey::SmallOrder));
        // 32 bytes of 0xff: y = 2^255 - 1 is not reduced mod p, and the point
        // it decodes to has a small-order component.
        let ones = [0xffu8; 32];
        assert!(matches!(public_key(&ones), Err(BadPublicKey::NonCanonical | BadPublicKey::MixedOrder)));
        // y = p + 1 encodes the identity again, non-canonically.
        let mut p_plus_one = [0xffu8; 32];
        p_plus_one[0] = 0xee;
        p_plus_one[31] = 0x7f;
        assert!(public_key(&p_plus_one).is_err());
        // A valid point plus a point of order 2 (y = -1): mixed order.
        let mut minus_one = [0xffu8; 32];
        minus_one[0] = 0xec;
        minus_one[31] = 0x7f;
        let order_two = VerifyingKey::from_bytes(&minus_one).unwrap().to_edwards();
        let mixed = (valid.to_edwards() + order_two).compress().to_bytes();
        assert_eq!(public_key(&mixed), Err(BadPublicKey::MixedOrder));
        // Not on the curve at all: x^2 = (y^2 - 1) / (d y^2 + 1) has no root.
        let off_curve = (2u8..=255).map(|b| [b; 32]).find(|b| VerifyingKey::from_bytes(b).is_err()).unwrap();
        assert_eq!(public_key(&off_curve), Err(BadPublicKey::NotAPoint));
    }
}
