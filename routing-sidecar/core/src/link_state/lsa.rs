//! Link-state updates (LSAs): what one node says about its links in one
//! area, their structural checks, canonical signing bytes, and signing and
//! verification with the crate's key registry.
//!
//! Unlike a path-vector announcement, which every hop re-signs, an update is
//! flooded unchanged: the signature is made by the origin and authenticates
//! the origin, wherever the copy came from.

use std::time::Duration;

use ed25519_dalek::{Signer as _, SigningKey};

use crate::ids::{KeyId, NodeId};
use crate::link_state::area_id::AreaId;
use crate::message::{SignatureAlgorithm, SignatureBlock};
use crate::security::{KeyRegistry, SignatureCheck, SigningIdentity, Verifier, VerifyRequest};
use crate::time::Timestamp;

/// Domain separation tag of link-state updates, distinct from the
/// path-vector tags in `crate::canonical` so no signature crosses kinds.
pub const LINK_STATE_UPDATE_DOMAIN: &[u8] = b"fabric-routing/v1/link-state-update";

/// One adjacency of the origin, with the metrics of the origin-to-neighbor
/// direction (links may be asymmetric).
#[derive(Clone, Debug, PartialEq)]
pub struct LinkAdvert {
    pub neighbor: NodeId,
    /// Additive cost used by SPF; at least 1 (zero-cost links would let two
    /// nodes pick each other as equal-cost next hops and loop).
    pub cost: u32,
    pub latency_us: u32,
    /// Delivery probability in [0, 1].
    pub reliability: f32,
}

/// One destination of another area, as reachable from the exporting area
/// border router (the update's origin).
#[derive(Clone, Debug, PartialEq)]
pub struct SummaryEntry {
    pub destination: NodeId,
    /// The area the destination lives in (kept across levels, so filters and
    /// counters see the real source even after two hops up the hierarchy).
    pub source_area: AreaId,
    /// Cost from the exporting border router to the destination.
    pub cost: u32,
    pub latency_us: u32,
    pub reliability: f32,
}

/// Destinations of child areas that the origin, a border router, exports
/// into this update's area.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct AreaSummary {
    pub entries: Vec<SummaryEntry>,
}

/// "In `area`, I (`origin`) have these links", version `sequence`.
#[derive(Clone, Debug, PartialEq)]
pub struct LinkStateUpdate {
    pub origin: NodeId,
    pub area: AreaId,
    /// Grows with every update the origin makes for this area; the highest
    /// sequence is the current one.
    pub sequence: u64,
    /// Lifetime granted by the origin: a receiver keeps the update until
    /// `received + ttl` unless refreshed. Zero is "max age": the origin
    /// withdraws the update (a flush) and receivers drop its links at once.
    pub ttl_ms: u32,
    pub links: Vec<LinkAdvert>,
    pub summary: Option<AreaSummary>,
    pub signature: Option<SignatureBlock>,
}

/// Hard limits on what a neighbor may send in one update.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct UpdateLimits {
    pub max_links: usize,
    pub max_summary_entries: usize,
}

/// Why an update is structurally unacceptable.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum InvalidUpdate {
    #[error("empty origin or area id")]
    EmptyId,
    #[error("{count} links, more than the limit {max}")]
    TooManyLinks { count: usize, max: usize },
    #[error("{count} summary entries, more than the limit {max}")]
    TooManySummaryEntries { count: usize, max: usize },
    #[error("link to itself")]
    SelfLink,
    #[error("neighbor {0} listed twice")]
    DuplicateNeighbor(NodeId),
    #[error("link to {0} has cost 0")]
    ZeroCost(NodeId),
    #[error("reliability of {0} is not within [0, 1]")]
    BadReliability(NodeId),
    #[error("summary lists destination {destination} of area {source_area} twice")]
    DuplicateSummaryEntry { destination: NodeId, source_area: AreaId },
    #[error("a flush (ttl 0) must not carry links or a summary")]
    FlushWithContent,
}

fn reliability_ok(value: f32) -> bool {
    value.is_finite() && (0.0..=1.0).contains(&value)
}

impl LinkStateUpdate {
    /// Whether this update withdraws the origin's previous update.
    pub fn is_flush(&self) -> bool {
        self.ttl_ms == 0
    }

    /// When a copy received at `received_at` stops counting. The origin's
    /// TTL is capped at `max_ttl` so a neighbor cannot pin state forever.
    pub fn expires_at(&self, received_at: Timestamp, max_ttl: Duration) -> Timestamp {
        received_at + Duration::from_millis(u64::from(self.ttl_ms)).min(max_ttl)
    }

    /// Links sorted by neighbor: the order used by signing bytes and content
    /// comparison, so the order on the wire does not matter.
    pub fn sorted_links(&self) -> Vec<&LinkAdvert> {
        let mut links: Vec<&LinkAdvert> = self.links.iter().collect();
        links.sort_by(|a, b| a.neighbor.cmp(&b.neighbor));
        links
    }

    /// Summary entries sorted by (source area, destination).
    pub fn sorted_summary_entries(&self) -> Vec<&SummaryEntry> {
        let mut entries: Vec<&SummaryEntry> = self.summary.iter().flat_map(|summary| summary.entries.iter()).collect();
        entries.sort_by(|a, b| (&a.source_area, &a.destination).cmp(&(&b.source_area, &b.destination)));
        entries
    }

    /// Whether `other` says the same thing about the topology (links with
    /// their metrics, and the summary), whatever the sequence, TTL or
    /// signature. A refresh has the same content; SPF need not run again.
    pub fn same_content(&self, other: &LinkStateUpdate) -> bool {
        self.same_links(other) && self.same_summary(other)
    }

    /// Whether the link lists are equal, metrics included.
    pub fn same_links(&self, other: &LinkStateUpdate) -> bool {
        let (ours, theirs) = (self.sorted_links(), other.sorted_links());
        ours.len() == theirs.len()
            && ours.iter().zip(&theirs).all(|(a, b)| {
                a.neighbor == b.neighbor
                    && a.cost == b.cost
                    && a.latency_us == b.latency_us
                    && a.reliability.to_bits() == b.reliability.to_bits()
            })
    }

    /// Whether the summaries are equal (an empty summary equals none).
    pub fn same_summary(&self, other: &LinkStateUpdate) -> bool {
        let (ours, theirs) = (self.sorted_summary_entries(), other.sorted_summary_entries());
        ours.len() == theirs.len()
            && ours.iter().zip(&theirs).all(|(a, b)| {
                a.destination == b.destination
                    && a.source_area == b.source_area
                    && a.cost == b.cost
                    && a.latency_us == b.latency_us
                    && a.reliability.to_bits() == b.reliability.to_bits()
            })
    }

    /// Structural checks that need no state: limits, no self link, no
    /// duplicate neighbor, costs at least 1, reliabilities within [0, 1].
    pub fn validate(&self, limits: &UpdateLimits) -> Result<(), InvalidUpdate> {
        if self.origin.as_str().is_empty() || self.area.as_str().is_empty() {
            return Err(InvalidUpdate::EmptyId);
        }
        let summary_len = self.summary.as_ref().map_or(0, |s| s.entries.len());
        if self.is_flush() && (!self.links.is_empty() || summary_len > 0) {
            return Err(InvalidUpdate::FlushWithContent);
        }
        if self.links.len() > limits.max_links {
            return Err(InvalidUpdate::TooManyLinks { count: self.links.len(), max: limits.max_links });
        }
        if summary_len > limits.max_summary_entries {
            return Err(InvalidUpdate::TooManySummaryEntries { count: summary_len, max: limits.max_summary_entries });
        }
        let links = self.sorted_links();
        for (i, link) in links.iter().enumerate() {
            if link.neighbor == self.origin {
                return Err(InvalidUpdate::SelfLink);
            }
            if i > 0 && links[i - 1].neighbor == link.neighbor {
                return Err(InvalidUpdate::DuplicateNeighbor(link.neighbor.clone()));
            }
            if link.cost == 0 {
                return Err(InvalidUpdate::ZeroCost(link.neighbor.clone()));
            }
            if !reliability_ok(link.reliability) {
                return Err(InvalidUpdate::BadReliability(link.neighbor.clone()));
            }
        }
        let entries = self.sorted_summary_entries();
        for (i, entry) in entries.iter().enumerate() {
            if i > 0
                && entries[i - 1].destination == entry.destination
                && entries[i - 1].source_area == entry.source_area
            {
                return Err(InvalidUpdate::DuplicateSummaryEntry {
                    destination: entry.destination.clone(),
                    source_area: entry.source_area.clone(),
                });
            }
            if !reliability_ok(entry.reliability) {
                return Err(InvalidUpdate::BadReliability(entry.destination.clone()));
            }
        }
        Ok(())
    }
}

fn put_u32(out: &mut Vec<u8>, value: u32) {
    out.extend_from_slice(&value.to_be_bytes());
}

fn put_u64(out: &mut Vec<u8>, value: u64) {
    out.extend_from_slice(&value.to_be_bytes());
}

fn put_bytes(out: &mut Vec<u8>, bytes: &[u8]) {
    // Lengths are bounded by the decoder limits, far below u32::MAX.
    put_u32(out, bytes.len() as u32);
    out.extend_from_slice(bytes);
}

fn put_str(out: &mut Vec<u8>, value: &str) {
    put_bytes(out, value.as_bytes());
}

/// Appends the canonical bytes of `update`, as signed with `key_id`.
///
/// Layout, all integers big-endian, strings `u32 length || UTF-8`, lists
/// `u32 count || items`, `f32` as its IEEE-754 bits (same conventions as
/// `crate::canonical`): domain tag; origin; area; sequence (u64); ttl_ms;
/// links sorted by neighbor, each neighbor, cost, latency_us, reliability;
/// summary presence (one byte, 0 or 1) and, if present, its entries sorted
/// by (source area, destination), each source area, destination, cost,
/// latency_us, reliability; algorithm; key id.
pub fn write_link_state_update(
    out: &mut Vec<u8>,
    update: &LinkStateUpdate,
    algorithm: SignatureAlgorithm,
    key_id: &KeyId,
) {
    put_bytes(out, LINK_STATE_UPDATE_DOMAIN);
    put_str(out, update.origin.as_str());
    put_str(out, update.area.as_str());
    put_u64(out, update.sequence);
    put_u32(out, update.ttl_ms);
    let links = update.sorted_links();
    put_u32(out, links.len() as u32);
    for link in links {
        put_str(out, link.neighbor.as_str());
        put_u32(out, link.cost);
        put_u32(out, link.latency_us);
        put_u32(out, link.reliability.to_bits());
    }
    match &update.summary {
        None => out.push(0),
        Some(_) => {
            out.push(1);
            let entries = update.sorted_summary_entries();
            put_u32(out, entries.len() as u32);
            for entry in entries {
                put_str(out, entry.source_area.as_str());
                put_str(out, entry.destination.as_str());
                put_u32(out, entry.cost);
                put_u32(out, entry.latency_us);
                put_u32(out, entry.reliability.to_bits());
            }
        }
    }
    put_str(out, algorithm.as_str());
    put_str(out, key_id.as_str());
}

pub fn link_state_update_bytes(update: &LinkStateUpdate, algorithm: SignatureAlgorithm, key_id: &KeyId) -> Vec<u8> {
    let mut out = Vec::with_capacity(96 + 32 * update.links.len());
    write_link_state_update(&mut out, update, algorithm, key_id);
    out
}

/// Signs `update` as its origin with `identity`, replacing any signature.
pub fn sign_update(identity: &SigningIdentity, update: &mut LinkStateUpdate) {
    let algorithm = SignatureAlgorithm::Ed25519;
    let bytes = link_state_update_bytes(update, algorithm, identity.key_id());
    // `SigningIdentity` only exposes signing for path-vector messages; the
    // key is rebuilt from its secret so this module needs no change there.
    let key = SigningKey::from_bytes(&identity.secret_bytes());
    update.signature =
        Some(SignatureBlock { algorithm, key_id: identity.key_id().clone(), bytes: key.sign(&bytes).to_bytes() });
}

/// Outcome of authenticating an update; the router turns it into accept or
/// reject according to `requireSignatures`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UpdateAuth {
    Unsigned,
    Checked(SignatureCheck),
}

/// Verifies the origin's signature with the shared verifier (and its cache)
/// against the key registry at `now`.
pub fn verify_update(
    verifier: &mut Verifier,
    registry: &KeyRegistry,
    now: Timestamp,
    update: &LinkStateUpdate,
) -> UpdateAuth {
    let Some(signature) = &update.signature else {
        return UpdateAuth::Unsigned;
    };
    let canonical = link_state_update_bytes(update, signature.algorithm, &signature.key_id);
    UpdateAuth::Checked(verifier.verify_one(
        registry,
        now,
        VerifyRequest { advertiser: update.origin.as_str(), signature, canonical: &canonical },
    ))
}

/// Builders for updates in tests, here and in the crates that build on
/// this one (feature `fixtures`).
#[cfg(any(test, feature = "fixtures"))]
pub mod fixtures {
    use super::*;

    pub fn link(neighbor: &str, cost: u32) -> LinkAdvert {
        LinkAdvert { neighbor: NodeId::from(neighbor), cost, latency_us: 100, reliability: 1.0 }
    }

    pub fn update(origin: &str, area: &str, sequence: u64, links: Vec<LinkAdvert>) -> LinkStateUpdate {
        LinkStateUpdate {
            origin: NodeId::from(origin),
            area: AreaId::from(area),
            sequence,
            ttl_ms: 60_000,
            links,
            summary: None,
            signature: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::fixtures::{link, update};
    use super::*;
    use crate::security::KeyError;

    const LIMITS: UpdateLimits = UpdateLimits { max_links: 4, max_summary_entries: 2 };

    #[test]
    fn canonical_bytes_ignore_link_order_but_cover_every_field() {
        let a = update("a", "x", 7, vec![link("b", 1), link("c", 2)]);
        let b = update("a", "x", 7, vec![link("c", 2), link("b", 1)]);
        let key = KeyId::from("k1");
        let alg = SignatureAlgorithm::Ed25519;
        assert_eq!(link_state_update_bytes(&a, alg, &key), link_state_update_bytes(&b, alg, &key));
        let bytes = link_state_update_bytes(&a, alg, &key);
        assert!(bytes[4..].starts_with(LINK_STATE_UPDATE_DOMAIN));

        let mut changed = a.clone();
        changed.sequence = 8;
        assert_ne!(link_state_update_bytes(&changed, alg, &key), bytes);
        let mut changed = a.clone();
        changed.area = AreaId::from("y");
        assert_ne!(link_state_update_bytes(&changed, alg, &key), bytes);
        let mut changed = a.clone();
        changed.ttl_ms = 0;
        assert_ne!(link_state_update_bytes(&changed, alg, &key), bytes);
        let mut changed = a.clone();
        changed.summary = Some(AreaSummary::default());
        assert_ne!(link_state_update_bytes(&changed, alg, &key), bytes, "empty summary differs from none");
        assert_ne!(link_state_update_bytes(&a, alg, &KeyId::from("k2")), bytes);
    }

    #[test]
    fn same_content_ignores_sequence_ttl_and_order() {
        let a = update("a", "x", 1, vec![link("b", 1), link("c", 2)]);
        let mut b = update("a", "x", 9, vec![link("c", 2), link("b", 1)]);
        b.ttl_ms = 5;
        assert!(a.same_content(&b));
        b.links[0].cost = 3;
        assert!(!a.same_content(&b));
    }

    #[test]
    fn validate_rejects_each_structural_fault() {
        assert_eq!(update("a", "x", 1, vec![link("b", 1)]).validate(&LIMITS), Ok(()));
        assert_eq!(update("a", "x", 1, vec![link("a", 1)]).validate(&LIMITS), Err(InvalidUpdate::SelfLink));
        assert_eq!(
            update("a", "x", 1, vec![link("b", 1), link("b", 2)]).validate(&LIMITS),
            Err(InvalidUpdate::DuplicateNeighbor(NodeId::from("b")))
        );
        assert_eq!(
            update("a", "x", 1, vec![link("b", 0)]).validate(&LIMITS),
            Err(InvalidUpdate::ZeroCost(NodeId::from("b")))
        );
        let mut nan = update("a", "x", 1, vec![link("b", 1)]);
        nan.links[0].reliability = f32::NAN;
        assert_eq!(nan.validate(&LIMITS), Err(InvalidUpdate::BadReliability(NodeId::from("b"))));
        let many = (0..5).map(|i| link(&format!("n{i}"), 1)).collect();
        assert_eq!(update("a", "x", 1, many).validate(&LIMITS), Err(InvalidUpdate::TooManyLinks { count: 5, max: 4 }));
        let mut flush = update("a", "x", 1, vec![link("b", 1)]);
        flush.ttl_ms = 0;
        assert_eq!(flush.validate(&LIMITS), Err(InvalidUpdate::FlushWithContent));
        let entry = SummaryEntry {
            destination: NodeId::from("d"),
            source_area: AreaId::from("s"),
            cost: 1,
            latency_us: 0,
            reliability: 1.0,
        };
        let mut twice = update("a", "x", 1, vec![]);
        twice.summary = Some(AreaSummary { entries: vec![entry.clone(), entry] });
        assert!(matches!(twice.validate(&LIMITS), Err(InvalidUpdate::DuplicateSummaryEntry { .. })));
    }

    #[test]
    fn signed_updates_verify_through_the_registry_and_tampering_fails() {
        let identity = SigningIdentity::from_secret_bytes(KeyId::from("k1"), &[7u8; 32]);
        let registry = KeyRegistry::from_entries([identity.public_entry(NodeId::from("a"), None, None)]);
        let mut verifier = Verifier::new(16);
        let now = Timestamp(1_000);

        let mut signed = update("a", "x", 1, vec![link("b", 1)]);
        sign_update(&identity, &mut signed);
        assert_eq!(
            verify_update(&mut verifier, &registry, now, &signed),
            UpdateAuth::Checked(SignatureCheck::Valid { cached: false })
        );
        assert_eq!(
            verify_update(&mut verifier, &registry, now, &signed),
            UpdateAuth::Checked(SignatureCheck::Valid { cached: true })
        );

        let mut tampered = signed.clone();
        tampered.links[0].cost = 2;
        assert_eq!(
            verify_update(&mut verifier, &registry, now, &tampered),
            UpdateAuth::Checked(SignatureCheck::Invalid)
        );

        // Signed by a's key but claiming to originate from c.
        let mut spoofed = signed.clone();
        spoofed.origin = NodeId::from("c");
        assert_eq!(
            verify_update(&mut verifier, &registry, now, &spoofed),
            UpdateAuth::Checked(SignatureCheck::Key(KeyError::UnknownKey))
        );

        let unsigned = update("a", "x", 1, vec![]);
        assert_eq!(verify_update(&mut verifier, &registry, now, &unsigned), UpdateAuth::Unsigned);
    }

    #[test]
    fn expiry_caps_the_origin_ttl() {
        let u = update("a", "x", 1, vec![]);
        assert_eq!(u.expires_at(Timestamp(10), Duration::from_secs(3600)), Timestamp(60_010));
        assert_eq!(u.expires_at(Timestamp(10), Duration::from_secs(1)), Timestamp(1_010));
    }
}
