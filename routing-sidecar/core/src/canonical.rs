//! Canonical signing bytes: what a signature covers, independent of how the
//! message was encoded on the wire (protobuf allows several encodings of the
//! same message; the signature must not depend on the encoder).
//!
//! Layout (all integers big-endian, specified in `docs/protocol.md`):
//! - a domain separation tag, length-prefixed, distinct per message kind, so
//!   a signature over one kind can never be replayed as another;
//! - every field in a fixed order; strings as `u32 length || UTF-8 bytes`;
//!   lists as `u32 count || items`; `f32` as its IEEE-754 bit pattern;
//! - tags sorted and de-duplicated (they are a set);
//! - the signature algorithm and key id, so a signature cannot be moved to
//!   another key of the same advertiser.
//!
//! Protocol v2 messages carry the time they were issued: their domain tags
//! say `v2` and the issue time follows the other fields, so a v2 signature
//! never verifies as v1 (a stripped issue time breaks it) and the reverse.

use crate::ids::{KeyId, Tag};
use crate::message::{RouteAnnouncement, RouteWithdrawal, SignatureAlgorithm};

pub const ANNOUNCEMENT_DOMAIN: &[u8] = b"fabric-routing/v1/route-announcement";
pub const WITHDRAWAL_DOMAIN: &[u8] = b"fabric-routing/v1/route-withdrawal";
pub const ANNOUNCEMENT_DOMAIN_V2: &[u8] = b"fabric-routing/v2/route-announcement";
pub const WITHDRAWAL_DOMAIN_V2: &[u8] = b"fabric-routing/v2/route-withdrawal";

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

fn put_signer(out: &mut Vec<u8>, algorithm: SignatureAlgorithm, key_id: &KeyId) {
    put_str(out, algorithm.as_str());
    put_str(out, key_id.as_str());
}

/// Sorted, de-duplicated view of a tag list.
pub fn canonical_tags(tags: &[Tag]) -> Vec<&str> {
    let mut sorted: Vec<&str> = tags.iter().map(Tag::as_str).collect();
    sorted.sort_unstable();
    sorted.dedup();
    sorted
}

/// Appends the canonical bytes of `announcement`, as signed with `key_id`.
pub fn write_announcement(
    out: &mut Vec<u8>,
    announcement: &RouteAnnouncement,
    algorithm: SignatureAlgorithm,
    key_id: &KeyId,
) {
    put_bytes(out, if announcement.issued_at_ms.is_some() { ANNOUNCEMENT_DOMAIN_V2 } else { ANNOUNCEMENT_DOMAIN });
    put_str(out, announcement.destination.as_str());
    put_u32(out, announcement.path.len() as u32);
    for hop in &announcement.path {
        put_str(out, hop.as_str());
    }
    put_u32(out, announcement.hop_count);
    put_u32(out, announcement.metrics.cost);
    put_u32(out, announcement.metrics.latency_us);
    put_u32(out, announcement.metrics.reliability.to_bits());
    put_str(out, announcement.advertiser.as_str());
    put_u64(out, announcement.epoch);
    put_u32(out, announcement.ttl_ms);
    let tags = canonical_tags(&announcement.tags);
    put_u32(out, tags.len() as u32);
    for tag in tags {
        put_str(out, tag);
    }
    if let Some(issued_at_ms) = announcement.issued_at_ms {
        put_u64(out, issued_at_ms);
    }
    put_signer(out, algorithm, key_id);
}

/// Appends the canonical bytes of `withdrawal`, as signed with `key_id`.
pub fn write_withdrawal(
    out: &mut Vec<u8>,
    withdrawal: &RouteWithdrawal,
    algorithm: SignatureAlgorithm,
    key_id: &KeyId,
) {
    put_bytes(out, if withdrawal.issued_at_ms.is_some() { WITHDRAWAL_DOMAIN_V2 } else { WITHDRAWAL_DOMAIN });
    put_str(out, withdrawal.destination.as_str());
    put_u32(out, withdrawal.path.len() as u32);
    for hop in &withdrawal.path {
        put_str(out, hop.as_str());
    }
    put_str(out, withdrawal.advertiser.as_str());
    put_u64(out, withdrawal.epoch);
    if let Some(issued_at_ms) = withdrawal.issued_at_ms {
        put_u64(out, issued_at_ms);
    }
    put_signer(out, algorithm, key_id);
}

pub fn announcement_bytes(announcement: &RouteAnnouncement, algorithm: SignatureAlgorithm, key_id: &KeyId) -> Vec<u8> {
    let mut out = Vec::with_capacity(128);
    write_announcement(&mut out, announcement, algorithm, key_id);
    out
}

pub fn withdrawal_bytes(withdrawal: &RouteWithdrawal, algorithm: SignatureAlgorithm, key_id: &KeyId) -> Vec<u8> {
    let mut out = Vec::with_capacity(96);
    write_withdrawal(&mut out, withdrawal, algorithm, key_id);
    out
}
