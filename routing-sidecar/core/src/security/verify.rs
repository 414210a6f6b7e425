//! Signature verification with a cache keyed by message digest and batch
//! verification for bursts.
//!
//! The cache key binds the public key, the signature and the canonical
//! message bytes with SHA-256, so a hit proves exactly the same triple was
//! verified before. Only successful verifications are cached. Validity
//! windows are checked on every lookup, hit or miss, so a cached signature
//! stops counting the moment its key expires.

use std::collections::VecDeque;

use foldhash::{HashSet, HashSetExt};

use ed25519_dalek::{Signature, VerifyingKey};
use sha2::{Digest, Sha256};

use crate::message::SignatureBlock;
use crate::security::{KeyError, KeyRegistry};
use crate::time::Timestamp;

/// Outcome of checking one signature.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SignatureCheck {
    Valid { cached: bool },
    Invalid,
    Key(KeyError),
}

/// One signature to check: who claims to have signed which bytes.
#[derive(Clone, Copy, Debug)]
pub struct VerifyRequest<'a> {
    pub advertiser: &'a str,
    pub signature: &'a SignatureBlock,
    pub canonical: &'a [u8],
}

type Digest32 = [u8; 32];

/// Bounded set of digests of verified (key, signature, message) triples,
/// evicted first-in first-out. Eviction only costs a re-verification.
#[derive(Debug)]
pub struct VerificationCache {
    entries: HashSet<Digest32>,
    order: VecDeque<Digest32>,
    capacity: usize,
    registry_generation: u64,
    pub hits: u64,
    pub misses: u64,
}

impl VerificationCache {
    pub fn new(capacity: usize) -> Self {
        Self {
            // Grown on demand: a node that never sees a signature pays nothing.
            entries: HashSet::new(),
            order: VecDeque::new(),
            capacity,
            registry_generation: 0,
            hits: 0,
            misses: 0,
        }
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    fn contains(&self, digest: &Digest32) -> bool {
        self.entries.contains(digest)
    }

    fn insert(&mut self, digest: Digest32) {
        if self.capacity == 0 || !self.entries.insert(digest) {
            return;
        }
        self.order.push_back(digest);
        while self.order.len() > self.capacity {
            if let Some(old) = self.order.pop_front() {
                self.entries.remove(&old);
            }
        }
    }

    /// Forgets everything when the key set changed (a key may have been
    /// replaced under the same id).
    fn sync_with(&mut self, registry: &KeyRegistry) {
        if self.registry_generation != registry.generation() {
            self.entries.clear();
            self.order.clear();
            self.registry_generation = registry.generation();
        }
    }
}

fn digest(key: &VerifyingKey, signature: &SignatureBlock, canonical: &[u8]) -> Digest32 {
    let mut hasher = Sha256::new();
    hasher.update(key.as_bytes());
    hasher.update(signature.bytes);
    hasher.update(canonical);
    hasher.finalize().into()
}

/// Stateful verifier: the registry is passed per call so the engine can
/// swap it on config reload without touching the cache logic.
#[derive(Debug)]
pub struct Verifier {
    cache: VerificationCache,
}

impl Verifier {
    pub fn new(cache_capacity: usize) -> Self {
        Self { cache: VerificationCache::new(cache_capacity) }
    }

    pub fn cache(&self) -> &VerificationCache {
        &self.cache
    }

    /// Checks one signature.
    pub fn verify_one(&mut self, registry: &KeyRegistry, now: Timestamp, request: VerifyRequest<'_>) -> SignatureCheck {
        self.cache.sync_with(registry);
        let key = match registry.resolve(request.advertiser, request.signature.key_id.as_str(), now) {
            Ok(key) => key,
            Err(error) => return SignatureCheck::Key(error),
        };
        let digest = digest(key, request.signature, request.canonical);
        if self.cache.contains(&digest) {
            self.cache.hits += 1;
            return SignatureCheck::Valid { cached: true };
        }
        self.cache.misses += 1;
        let signature = Signature::from_bytes(&request.signature.bytes);
        if key.verify_strict(request.canonical, &signature).is_ok() {
            self.cache.insert(digest);
            SignatureCheck::Valid { cached: false }
        } else {
            SignatureCheck::Invalid
        }
    }

    /// Checks many signatures at once. Uncached ones go through one batch
    /// verification; only when the batch fails are they checked one by one
    /// to find the bad ones, so a burst of good signatures costs about half
    /// of verifying them singly. Results are in request order.
    pub fn verify_many(
        &mut self,
        registry: &KeyRegistry,
        now: Timestamp,
        requests: &[VerifyRequest<'_>],
    ) -> Vec<SignatureCheck> {
        self.cache.sync_with(registry);
        let mut results = Vec::with_capacity(requests.len());
        // (index into requests, key, digest) of the signatures the cache did not know.
        let mut pending: Vec<(usize, VerifyingKey, Digest32)> = Vec::new();
        for (index, request) in requests.iter().enumerate() {
            match registry.resolve(request.advertiser, request.signature.key_id.as_str(), now) {
                Err(error) => results.push(SignatureCheck::Key(error)),
                Ok(key) => {
                    let digest = digest(key, request.signature, request.canonical);
                    if self.cache.contains(&digest) {
                        self.cache.hits += 1;
                        results.push(SignatureCheck::Valid { cached: true });
                    } else {
                        self.cache.misses += 1;
                        pending.push((index, *key, digest));
                        results.push(SignatureCheck::Invalid);
                    }
                }
            }
        }
        if pending.is_empty() {
            return results;
        }
        let messages: Vec<&[u8]> = pending.iter().map(|(i, _, _)| requests[*i].canonical).collect();
        let signatures: Vec<Signature> =
            pending.iter().map(|(i, _, _)| Signature::from_bytes(&requests[*i].signature.bytes)).collect();
        let keys: Vec<VerifyingKey> = pending.iter().map(|(_, key, _)| *key).collect();
        let batch_ok = pending.len() > 1 && ed25519_dalek::verify_batch(&messages, &signatures, &keys).is_ok();
        for (slot, (index, key, digest)) in pending.into_iter().enumerate() {
            let valid = batch_ok || key.verify_strict(messages[slot], &signatures[slot]).is_ok();
            if valid {
                self.cache.insert(digest);
                results[index] = SignatureCheck::Valid { cached: false };
            }
        }
        results
    }
}
