//! Link-state updates (LSAs): what one node says about its links in one
//! area, their structural checks, canonical signing bytes, and signing and
//! verification with the crate's key registry.
//!
//! Unlike a path-vector announcement, which every hop re-signs, an update is
//! flooded unchanged: the signature is made by the origin and authenticates
//! the origin, wherever the copy came from.

use std::time::Duration;

use ed25519_dalek::{Signer as _, SigningKey};

use crate::ids::{DestinationId, KeyId, NodeId, Tag};
use crate::link_state::area_id::AreaId;
use crate::message::{SignatureAlgorithm, SignatureBlock};
use crate::security::{KeyRegistry, SignatureCheck, SigningIdentity, Verifier, VerifyRequest};
use crate::time::Timestamp;

/// Domain separation tag of link-state updates, distinct from the
/// path-vector tags in `crate::canonical` so no signature crosses kinds.
pub const LINK_STATE_UPDATE_DOMAIN: &[u8] = b"fabric-routing/v1/link-state-update";

/// Domain tag of updates that carry destinations (the origin's own or a
/// summary's). Updates without destinations keep the v1 tag and bytes, so
/// their signatures stay valid and nodes that know no destinations still
/// verify them.
pub const LINK_STATE_UPDATE_DOMAIN_V2: &[u8] = b"fabric-routing/v2/link-state-update";

/// One destination the origin serves itself (an `originate` entry of the
/// sidecar), with the metric of reaching it from the origin.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DestinationAdvert {
    pub name: DestinationId,
    /// Added to the cost of reaching the origin.
    pub metric: u32,
    /// Sorted, without duplicates.
    pub tags: Vec<Tag>,
}

/// One destination of another area, as reachable from the exporting area
/// border router: the destination-name counterpart of `SummaryEntry`, kept
/// in its own list so node ids and destination names never collide.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SummaryDestination {
    pub name: DestinationId,
    /// The area whose node serves the destination (kept across levels).
    pub source_area: AreaId,
    /// From the exporting border router: cost to the serving node plus its
    /// metric.
    pub cost: u32,
    /// Sorted, without duplicates.
    pub tags: Vec<Tag>,
}

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
    /// Destinations of child areas, by (source area, name).
    pub destinations: Vec<SummaryDestination>,
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
    /// Destinations the origin serves, sorted by name without duplicates.
    pub destinations: Vec<DestinationAdvert>,
    pub signature: Option<SignatureBlock>,
}

/// Hard limits on what a neighbor may send in one update.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct UpdateLimits {
    pub max_links: usize,
    /// Summary entries and summary destinations together.
    pub max_summary_entries: usize,
    pub max_destinations: usize,
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
    #[error("a flush (ttl 0) must not carry links, a summary or destinations")]
    FlushWithContent,
    #[error("{count} destinations, more than the limit {max}")]
    TooManyDestinations { count: usize, max: usize },
    #[error("destinations[{index}]: empty name")]
    EmptyDestinationName { index: usize },
    #[error("destinations[{index}]: {name} is not above the previous name (the list must be sorted, no duplicates)")]
    UnsortedDestinations { index: usize, name: DestinationId },
    #[error("tags of destination {0} are not sorted without duplicates, or one is empty")]
    BadDestinationTags(DestinationId),
    #[error("summary lists destination name {name} of area {source_area} twice")]
    DuplicateSummaryDestination { name: DestinationId, source_area: AreaId },
}

/// Tags sorted strictly (so no duplicates) and none empty.
fn tags_ok(tags: &[Tag]) -> bool {
    tags.iter().all(|tag| !tag.as_str().is_empty()) && tags.windows(2).all(|pair| pair[0] < pair[1])
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

    /// Summary destinations sorted by (source area, name).
    pub fn sorted_summary_destinations(&self) -> Vec<&SummaryDestination> {
        let mut destinations: Vec<&SummaryDestination> =
            self.summary.iter().flat_map(|summary| summary.destinations.iter()).collect();
        destinations.sort_by(|a, b| (&a.source_area, &a.name).cmp(&(&b.source_area, &b.name)));
        destinations
    }

    /// Whether the update names destinations (its own or a summary's): such
    /// updates are signed under `LINK_STATE_UPDATE_DOMAIN_V2`.
    pub fn has_destinations(&self) -> bool {
        !self.destinations.is_empty() || self.summary.as_ref().is_some_and(|s| !s.destinations.is_empty())
    }

    /// Whether `other` says the same thing about the topology (links with
    /// their metrics, the summary and the destinations), whatever the
    /// sequence, TTL or signature. A refresh has the same content; SPF need
    /// not run again.
    pub fn same_content(&self, other: &LinkStateUpdate) -> bool {
        self.same_links(other) && self.same_summary(other) && self.destinations == other.destinations
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

    /// Whether the summaries are equal, destinations included (an empty
    /// summary equals none).
    pub fn same_summary(&self, other: &LinkStateUpdate) -> bool {
        let (ours, theirs) = (self.sorted_summary_entries(), other.sorted_summary_entries());
        self.sorted_summary_destinations() == other.sorted_summary_destinations()
            && ours.len() == theirs.len()
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
        let summary_len = self.summary.as_ref().map_or(0, |s| s.entries.len() + s.destinations.len());
        if self.is_flush() && (!self.links.is_empty() || summary_len > 0 || !self.destinations.is_empty()) {
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
        self.validate_destinations(limits)
    }

    /// The origin's destinations: within the limit, names non-empty and
    /// strictly increasing (a set, in the order the signature covers),
    /// tags sorted; summary destinations once per (source area, name).
    fn validate_destinations(&self, limits: &UpdateLimits) -> Result<(), InvalidUpdate> {
        if self.destinations.len() > limits.max_destinations {
            return Err(InvalidUpdate::TooManyDestinations {
                count: self.destinations.len(),
                max: limits.max_destinations,
            });
        }
        for (index, destination) in self.destinations.iter().enumerate() {
            if destination.name.as_str().is_empty() {
                return Err(InvalidUpdate::EmptyDestinationName { index });
            }
            if index > 0 && self.destinations[index - 1].name >= destination.name {
                return Err(InvalidUpdate::UnsortedDestinations { index, name: destination.name.clone() });
            }
            if !tags_ok(&destination.tags) {
                return Err(InvalidUpdate::BadDestinationTags(destination.name.clone()));
            }
        }
        let summarized = self.sorted_summary_destinations();
        for (i, destination) in summarized.iter().enumerate() {
            if destination.name.as_str().is_empty() {
                return Err(InvalidUpdate::EmptyDestinationName { index: i });
            }
            if i > 0
                && summarized[i - 1].name == destination.name
                && summarized[i - 1].source_area == destination.source_area
            {
                return Err(InvalidUpdate::DuplicateSummaryDestination {
                    name: destination.name.clone(),
                    source_area: destination.source_area.clone(),
                });
            }
            if !tags_ok(&destination.tags) {
                return Err(InvalidUpdate::BadDestinationTags(destination.name.clone()));
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

fn put_tags(out: &mut Vec<u8>, tags: &[Tag]) {
    put_u32(out, tags.len() as u32);
    for tag in tags {
        put_str(out, tag.as_str());
    }
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
///
/// An update with destinations (`has_destinations`) starts with
/// `LINK_STATE_UPDATE_DOMAIN_V2` instead and, between the summary and the
/// algorithm, adds its destinations (count, then each name, metric, tags
/// as a list of strings) and the summary's destinations sorted by (source
/// area, name) (count, then each source area, name, cost, tags; count 0
/// without a summary). Without destinations the bytes are exactly the v1
/// bytes.
pub fn write_link_state_update(
    out: &mut Vec<u8>,
    update: &LinkStateUpdate,
    algorithm: SignatureAlgorithm,
    key_id: &KeyId,
) {
    let v2 = update.has_destinations();
    put_bytes(out, if v2 { LINK_STATE_UPDATE_DOMAIN_V2 } else { LINK_STATE_UPDATE_DOMAIN });
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
    if v2 {
        put_u32(out, update.destinations.len() as u32);
        for destination in &update.destinations {
            put_str(out, destination.name.as_str());
            put_u32(out, destination.metric);
            put_tags(out, &destination.tags);
        }
        let summarized = update.sorted_summary_destinations();
        put_u32(out, summarized.len() as u32);
        for destination in summarized {
            put_str(out, destination.source_area.as_str());
            put_str(out, destination.name.as_str());
            put_u32(out, destination.cost);
            put_tags(out, &destination.tags);
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
            destinations: Vec::new(),
            signature: None,
        }
    }

    pub fn destination(name: &str, metric: u32, tags: &[&str]) -> DestinationAdvert {
        DestinationAdvert {
            name: DestinationId::from(name),
            metric,
            tags: tags.iter().map(|t| Tag::from(*t)).collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::fixtures::{destination, link, update};
    use super::*;
    use crate::security::KeyError;

    const LIMITS: UpdateLimits = UpdateLimits { max_links: 4, max_summary_entries: 2, max_destinations: 3 };

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
        twice.summary = Some(AreaSummary { entries: vec![entry.clone(), entry], destinations: Vec::new() });
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

    fn with_destinations(mut u: LinkStateUpdate, destinations: Vec<DestinationAdvert>) -> LinkStateUpdate {
        u.destinations = destinations;
        u
    }

    #[test]
    fn without_destinations_the_bytes_are_the_v1_bytes() {
        let u = update("a", "x", 7, vec![link("b", 1)]);
        let key = KeyId::from("k1");
        let bytes = link_state_update_bytes(&u, SignatureAlgorithm::Ed25519, &key);
        assert!(bytes[4..].starts_with(LINK_STATE_UPDATE_DOMAIN));
        // v1 layout ends with the summary flag, the algorithm and the key id.
        let tail = [&[0u8][..], &7u32.to_be_bytes(), b"ed25519", &2u32.to_be_bytes(), b"k1"].concat();
        assert!(bytes.ends_with(&tail), "no destination fields appended");
        assert!(!u.has_destinations());
        // An empty summary (no destinations in it) stays v1 as well.
        let mut empty = u.clone();
        empty.summary = Some(AreaSummary::default());
        assert!(
            link_state_update_bytes(&empty, SignatureAlgorithm::Ed25519, &key)[4..]
                .starts_with(LINK_STATE_UPDATE_DOMAIN)
        );
    }

    #[test]
    fn destinations_switch_to_the_v2_domain_and_are_covered() {
        let key = KeyId::from("k1");
        let alg = SignatureAlgorithm::Ed25519;
        let u = with_destinations(update("a", "x", 7, vec![link("b", 1)]), vec![destination("svc", 3, &["eu"])]);
        let bytes = link_state_update_bytes(&u, alg, &key);
        assert!(bytes[4..].starts_with(LINK_STATE_UPDATE_DOMAIN_V2));
        let mut changed = u.clone();
        changed.destinations[0].metric = 4;
        assert_ne!(link_state_update_bytes(&changed, alg, &key), bytes);
        let mut changed = u.clone();
        changed.destinations[0].tags = vec![Tag::from("us")];
        assert_ne!(link_state_update_bytes(&changed, alg, &key), bytes);
        let mut summarized = update("a", "x", 7, vec![]);
        summarized.summary = Some(AreaSummary {
            entries: Vec::new(),
            destinations: vec![SummaryDestination {
                name: DestinationId::from("svc"),
                source_area: AreaId::from("s"),
                cost: 5,
                tags: Vec::new(),
            }],
        });
        let bytes = link_state_update_bytes(&summarized, alg, &key);
        assert!(bytes[4..].starts_with(LINK_STATE_UPDATE_DOMAIN_V2));
        summarized.summary.as_mut().unwrap().destinations[0].cost = 6;
        assert_ne!(link_state_update_bytes(&summarized, alg, &key), bytes);
    }

    #[test]
    fn a_tampered_destination_fails_verification() {
        let identity = SigningIdentity::from_secret_bytes(KeyId::from("k1"), &[7u8; 32]);
        let registry = KeyRegistry::from_entries([identity.public_entry(NodeId::from("a"), None, None)]);
        let mut verifier = Verifier::new(0);
        let now = Timestamp(1_000);
        let mut signed = with_destinations(update("a", "x", 1, vec![link("b", 1)]), vec![destination("svc", 3, &[])]);
        sign_update(&identity, &mut signed);
        assert_eq!(
            verify_update(&mut verifier, &registry, now, &signed),
            UpdateAuth::Checked(SignatureCheck::Valid { cached: false })
        );
        let mut tampered = signed.clone();
        tampered.destinations[0].metric = 0;
        assert_eq!(
            verify_update(&mut verifier, &registry, now, &tampered),
            UpdateAuth::Checked(SignatureCheck::Invalid)
        );
        // Stripping the destinations does not leave a valid v1 update either.
        let mut stripped = signed.clone();
        stripped.destinations.clear();
        assert_eq!(
            verify_update(&mut verifier, &registry, now, &stripped),
            UpdateAuth::Checked(SignatureCheck::Invalid)
        );
    }

    #[test]
    fn malformed_destination_lists_are_refused_naming_the_fault() {
        let base = update("a", "x", 1, vec![link("b", 1)]);
        let ok = with_destinations(base.clone(), vec![destination("d1", 1, &["a", "b"]), destination("d2", 0, &[])]);
        assert_eq!(ok.validate(&LIMITS), Ok(()));
        let unsorted = with_destinations(base.clone(), vec![destination("d2", 1, &[]), destination("d1", 1, &[])]);
        assert_eq!(
            unsorted.validate(&LIMITS),
            Err(InvalidUpdate::UnsortedDestinations { index: 1, name: DestinationId::from("d1") })
        );
        let twice = with_destinations(base.clone(), vec![destination("d1", 1, &[]), destination("d1", 2, &[])]);
        assert!(matches!(twice.validate(&LIMITS), Err(InvalidUpdate::UnsortedDestinations { index: 1, .. })));
        let empty = with_destinations(base.clone(), vec![destination("", 1, &[])]);
        assert_eq!(empty.validate(&LIMITS), Err(InvalidUpdate::EmptyDestinationName { index: 0 }));
        let tags = with_destinations(base.clone(), vec![destination("d1", 1, &["b", "a"])]);
        assert_eq!(tags.validate(&LIMITS), Err(InvalidUpdate::BadDestinationTags(DestinationId::from("d1"))));
        let many = (0..4).map(|i| destination(&format!("d{i}"), 1, &[])).collect();
        assert_eq!(
            with_destinations(base.clone(), many).validate(&LIMITS),
            Err(InvalidUpdate::TooManyDestinations { count: 4, max: 3 })
        );
        let mut flush = with_destinations(update("a", "x", 1, vec![]), vec![destination("d1", 1, &[])]);
        flush.ttl_ms = 0;
        assert_eq!(flush.validate(&LIMITS), Err(InvalidUpdate::FlushWithContent));
    }

    #[test]
    fn expiry_caps_the_origin_ttl() {
        let u = update("a", "x", 1, vec![]);
        assert_eq!(u.expires_at(Timestamp(10), Duration::from_secs(3600)), Timestamp(60_010));
        assert_eq!(u.expires_at(Timestamp(10), Duration::from_secs(1)), Timestamp(1_010));
    }
}
