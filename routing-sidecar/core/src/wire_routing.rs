//! A direct decoder for the frames that make up a table transfer:
//! announcements and withdrawals, laid out as this crate's encoder writes
//! them. It reads the domain values straight from the bytes, with the ids
//! a neighbor repeats taken from its session's [`SharedIds`] instead of
//! allocated, where [`wire::decode_frame`] goes through prost's structs and
//! allocates every string twice (measured: docs/benchmarks.md, Sidecar).
//!
//! It accepts a subset of what [`wire::decode_frame`] accepts and decodes
//! it to the same message: an envelope of version 1 followed by one
//! routing body, every field of a known number and wire type, singular
//! fields at most once, every value within the limits. Anything else (an
//! unknown or repeated field, another frame type, a value a limit refuses,
//! malformed bytes) gives `None`, and the caller decodes the frame with
//! [`wire::decode_frame`], which reports errors. A property test checks
//! that both agree on whatever this decoder accepts.
//!
//! [`routing_frame`] is the sending side: the bytes
//! [`wire::encode_frame`] writes for a routing message, without building
//! prost's structs (a copy of every string) first.
//!
//! [`wire::decode_frame`]: crate::wire::decode_frame
//! [`wire::encode_frame`]: crate::wire::encode_frame

use crate::ids::{DestinationId, KeyId, NodeId};
use crate::message::{Message, RouteAnnouncement, RouteMetrics, RouteWithdrawal, SignatureAlgorithm, SignatureBlock};
use crate::shared_ids::SharedIds;
use crate::wire::{DecodeLimits, PROTOCOL_VERSION};
use prost::bytes::BufMut;

// Field numbers and wire types of `wire::schema`.
const VARINT: u8 = 0;
const FIXED32: u8 = 5;
const LEN: u8 = 2;
const ENVELOPE_VERSION: u32 = 1;
const BODY_ANNOUNCEMENT: u32 = 2;
const BODY_WITHDRAWAL: u32 = 3;

/// The message of an announcement or withdrawal frame (without the length
/// prefix), its node ids and tag list shared through `shared`; `None` when
/// the frame is anything else or outside the subset this decoder reads
/// (see the module documentation).
pub fn decode_routing_frame(bytes: &[u8], limits: &DecodeLimits, shared: &mut SharedIds) -> Option<Message> {
    if bytes.len() > limits.max_message_bytes {
        return None;
    }
    let mut envelope = Reader(bytes);
    let (number, wire_type) = envelope.key()?;
    if number != ENVELOPE_VERSION || wire_type != VARINT || envelope.varint()? != u64::from(PROTOCOL_VERSION) {
        return None;
    }
    let (number, wire_type) = envelope.key()?;
    if wire_type != LEN {
        return None;
    }
    let body = envelope.bytes()?;
    if !envelope.0.is_empty() {
        return None;
    }
    match number {
        BODY_ANNOUNCEMENT => announcement(body, limits, shared).map(Message::Announcement),
        BODY_WITHDRAWAL => withdrawal(body, limits, shared).map(Message::Withdrawal),
        _ => None,
    }
}

/// The length of `message`'s frame (without the transport's length
/// prefix) and a writer that appends the frame to a buffer: the same bytes
/// as [`wire::encode_frame`] writes for `Frame::Routing`, as prost lays
/// them out (fields in number order, proto3 defaults left out). The length
/// comes first so that a caller can check it, or write it in front, before
/// the frame, without computing it twice.
///
/// [`wire::encode_frame`]: crate::wire::encode_frame
pub fn routing_frame(message: &Message) -> (usize, impl FnOnce(&mut Vec<u8>) + '_) {
    let body = routing_body(message);
    (frame_len(body.1), move |buf: &mut Vec<u8>| encode_routing_body(message, body, buf))
}

fn encode_routing_body(message: &Message, (number, body): (u32, usize), buf: &mut impl BufMut) {
    put_key(buf, ENVELOPE_VERSION, VARINT);
    put_varint(buf, u64::from(PROTOCOL_VERSION));
    put_key(buf, number, LEN);
    put_varint(buf, body as u64);
    match message {
        Message::Announcement(a) => {
            put_string(buf, 1, a.destination.as_str());
            for hop in &a.path {
                put_repeated(buf, 2, hop.as_str().as_bytes());
            }
            put_uint(buf, 3, a.hop_count.into());
            put_uint(buf, 4, a.metrics.cost.into());
            put_uint(buf, 5, a.metrics.latency_us.into());
            put_key(buf, 6, FIXED32);
            buf.put_f32_le(a.metrics.reliability);
            put_string(buf, 7, a.advertiser.as_str());
            put_uint(buf, 8, a.epoch);
            put_uint(buf, 9, a.ttl_ms.into());
            for tag in a.tags.iter() {
                put_repeated(buf, 10, tag.as_str().as_bytes());
            }
            put_signature(buf, 11, a.signature.as_deref());
            put_optional(buf, 12, a.issued_at_ms);
        }
        Message::Withdrawal(w) => {
            put_string(buf, 1, w.destination.as_str());
            for hop in &w.path {
                put_repeated(buf, 2, hop.as_str().as_bytes());
            }
            put_string(buf, 3, w.advertiser.as_str());
            put_uint(buf, 4, w.epoch);
            put_signature(buf, 5, w.signature.as_deref());
            put_optional(buf, 6, w.issued_at_ms);
        }
        Message::EndOfTable { advertiser } => put_string(buf, 1, advertiser.as_str()),
    }
}

const BODY_END_OF_TABLE: u32 = 4;

/// The number of bytes the frame of `message` takes ([`routing_frame`]).
pub fn routing_frame_len(message: &Message) -> usize {
    frame_len(routing_body(message).1)
}

/// A frame's length from its body's: the envelope's version and the body
/// as a length-delimited field.
fn frame_len(body: usize) -> usize {
    1 + varint_len(u64::from(PROTOCOL_VERSION)) + len_field(body)
}

/// The envelope field of `message`'s body and the body's length.
fn routing_body(message: &Message) -> (u32, usize) {
    match message {
        Message::Announcement(a) => (BODY_ANNOUNCEMENT, announcement_len(a)),
        Message::Withdrawal(w) => (BODY_WITHDRAWAL, withdrawal_len(w)),
        Message::EndOfTable { advertiser } => (BODY_END_OF_TABLE, string_len(advertiser.as_str())),
    }
}

fn varint_len(value: u64) -> usize {
    // 7 bits a byte; 0 takes one byte.
    (64 - (value | 1).leading_zeros() as usize).div_ceil(7)
}

/// A length-delimited field: key (one byte below field 16), length, value.
fn len_field(length: usize) -> usize {
    1 + varint_len(length as u64) + length
}

/// A proto3 string: absent when empty.
fn string_len(value: &str) -> usize {
    if value.is_empty() { 0 } else { len_field(value.len()) }
}

fn uint_len(value: u64) -> usize {
    if value == 0 { 0 } else { 1 + varint_len(value) }
}

fn signature_len(signature: &SignatureBlock) -> usize {
    string_len(signature.algorithm.as_str()) + string_len(signature.key_id.as_str()) + len_field(signature.bytes.len())
}

fn announcement_len(a: &RouteAnnouncement) -> usize {
    string_len(a.destination.as_str())
        + a.path.iter().map(|hop| len_field(hop.as_str().len())).sum::<usize>()
        + uint_len(a.hop_count.into())
        + uint_len(a.metrics.cost.into())
        + uint_len(a.metrics.latency_us.into())
        + 1
        + 4
        + string_len(a.advertiser.as_str())
        + uint_len(a.epoch)
        + uint_len(a.ttl_ms.into())
        + a.tags.iter().map(|tag| len_field(tag.as_str().len())).sum::<usize>()
        + a.signature.as_ref().map_or(0, |signature| len_field(signature_len(signature)))
        + a.issued_at_ms.map_or(0, |at| 1 + varint_len(at))
}

fn withdrawal_len(w: &RouteWithdrawal) -> usize {
    string_len(w.destination.as_str())
        + w.path.iter().map(|hop| len_field(hop.as_str().len())).sum::<usize>()
        + string_len(w.advertiser.as_str())
        + uint_len(w.epoch)
        + w.signature.as_ref().map_or(0, |signature| len_field(signature_len(signature)))
        + w.issued_at_ms.map_or(0, |at| 1 + varint_len(at))
}

fn put_varint(buf: &mut impl BufMut, mut value: u64) {
    while value >= 0x80 {
        buf.put_u8((value as u8) | 0x80);
        value >>= 7;
    }
    buf.put_u8(value as u8);
}

fn put_key(buf: &mut impl BufMut, number: u32, wire_type: u8) {
    put_varint(buf, u64::from(number << 3 | u32::from(wire_type)));
}

/// One element of a repeated string or a bytes field: written even when
/// empty.
fn put_repeated(buf: &mut impl BufMut, number: u32, value: &[u8]) {
    put_key(buf, number, LEN);
    put_varint(buf, value.len() as u64);
    buf.put_slice(value);
}

fn put_string(buf: &mut impl BufMut, number: u32, value: &str) {
    if !value.is_empty() {
        put_repeated(buf, number, value.as_bytes());
    }
}

fn put_uint(buf: &mut impl BufMut, number: u32, value: u64) {
    if value != 0 {
        put_key(buf, number, VARINT);
        put_varint(buf, value);
    }
}

fn put_optional(buf: &mut impl BufMut, number: u32, value: Option<u64>) {
    if let Some(value) = value {
        put_key(buf, number, VARINT);
        put_varint(buf, value);
    }
}

fn put_signature(buf: &mut impl BufMut, number: u32, signature: Option<&SignatureBlock>) {
    let Some(signature) = signature else { return };
    put_key(buf, number, LEN);
    put_varint(buf, signature_len(signature) as u64);
    put_string(buf, 1, signature.algorithm.as_str());
    put_string(buf, 2, signature.key_id.as_str());
    put_repeated(buf, 3, &signature.bytes);
}

/// Protobuf fields read from a slice.
struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn varint(&mut self) -> Option<u64> {
        let mut value = 0u64;
        for (i, &byte) in self.0.iter().enumerate().take(10) {
            value |= u64::from(byte & 0x7f) << (7 * i);
            if byte < 0x80 {
                // The tenth byte may only carry the top bit of a u64.
                if i == 9 && byte > 1 {
                    return None;
                }
                self.0 = &self.0[i + 1..];
                return Some(value);
            }
        }
        None
    }

    /// The next field's number and wire type.
    fn key(&mut self) -> Option<(u32, u8)> {
        let key = u32::try_from(self.varint()?).ok()?;
        let number = key >> 3;
        (number != 0).then_some((number, (key & 7) as u8))
    }

    fn u32(&mut self) -> Option<u32> {
        u32::try_from(self.varint()?).ok()
    }

    fn bytes(&mut self) -> Option<&'a [u8]> {
        let length = usize::try_from(self.varint()?).ok()?;
        if length > self.0.len() {
            return None;
        }
        let (value, rest) = self.0.split_at(length);
        self.0 = rest;
        Some(value)
    }

    fn str(&mut self) -> Option<&'a str> {
        std::str::from_utf8(self.bytes()?).ok()
    }

    /// Whether the next field is `number` of `wire_type`, its key then
    /// read. Every field here has a key of one byte (numbers below 16).
    fn at(&mut self, number: u32, wire_type: u8) -> bool {
        debug_assert!(number < 16);
        match self.0.split_first() {
            Some((&key, rest)) if u32::from(key) == number << 3 | u32::from(wire_type) => {
                self.0 = rest;
                true
            }
            _ => false,
        }
    }

    fn fixed32(&mut self) -> Option<[u8; 4]> {
        let (value, rest) = self.0.split_first_chunk::<4>()?;
        self.0 = rest;
        Some(*value)
    }
}

/// Marks singular field `number` as seen; `None` when it was already, or
/// when the number is beyond every field this decoder reads.
fn once(seen: &mut u32, number: u32) -> Option<()> {
    let bit = 1u32.checked_shl(number)?;
    if *seen & bit != 0 {
        return None;
    }
    *seen |= bit;
    Some(())
}

/// A non-empty identifier within `max_string_bytes`.
fn identifier<'a>(value: &'a str, limits: &DecodeLimits) -> Option<&'a str> {
    (!value.is_empty() && value.len() <= limits.max_string_bytes).then_some(value)
}

/// Path hops, bounded by `max_path_length`, shared.
fn hops(hops: &[&str], limits: &DecodeLimits, shared: &mut SharedIds) -> Option<Vec<NodeId>> {
    if hops.len() > limits.max_path_length || hops.iter().any(|hop| identifier(hop, limits).is_none()) {
        return None;
    }
    Some(hops.iter().map(|hop| shared.node(hop)).collect())
}

/// Ids and strings are gathered before any is converted, so the limits
/// are checked first (as the prost path refuses before building values).
type Hops<'a> = smallvec::SmallVec<[&'a str; 8]>;

/// The fields of an announcement body as read, before any limit is
/// checked or id allocated.
#[derive(Default)]
struct AnnouncementFields<'a> {
    destination: &'a str,
    path: Hops<'a>,
    hop_count: u32,
    cost: u32,
    latency_us: u32,
    reliability: Option<f32>,
    advertiser: &'a str,
    epoch: u64,
    ttl_ms: u32,
    tags: Hops<'a>,
    signature: Option<&'a [u8]>,
    issued_at_ms: Option<u64>,
}

fn announcement(body: &[u8], limits: &DecodeLimits, shared: &mut SharedIds) -> Option<RouteAnnouncement> {
    // Filled in place: the fields are a few hundred bytes, which moving
    // them out of a parser cost more than the parse saved.
    let mut fields = AnnouncementFields::default();
    if !announcement_in_order(body, &mut fields) {
        fields = AnnouncementFields::default();
        announcement_any_order(body, &mut fields)?;
    }
    let reliability = fields.reliability.unwrap_or(0.0);
    if !reliability.is_finite() || fields.tags.len() > limits.max_tags {
        return None;
    }
    let destination = identifier(fields.destination, limits)?;
    let advertiser = identifier(fields.advertiser, limits)?;
    if fields.tags.iter().any(|tag| identifier(tag, limits).is_none()) {
        return None;
    }
    let signature = match fields.signature {
        Some(bytes) => Some(signature_block(bytes, limits)?),
        None => None,
    };
    Some(RouteAnnouncement {
        path: hops(&fields.path, limits, shared)?,
        destination: DestinationId::from(destination),
        hop_count: fields.hop_count,
        metrics: RouteMetrics { cost: fields.cost, latency_us: fields.latency_us, reliability },
        advertiser: shared.node(advertiser),
        epoch: fields.epoch,
        ttl_ms: fields.ttl_ms,
        issued_at_ms: fields.issued_at_ms,
        tags: shared.tag_list(&fields.tags),
        signature: signature.map(Box::new),
    })
}

/// The fields in number order, each singular one at most once: what
/// every encoder of this protocol writes (prost and `routing_frame`
/// alike). One predictable test per field where the general loop below
/// jumps on every key (15% of the parser's samples fell on that one
/// jump); about 5% less decoding time (docs/benchmarks.md, Sidecar).
/// `false` for any other layout, which the general loop then reads.
fn announcement_in_order<'a>(body: &'a [u8], read: &mut AnnouncementFields<'a>) -> bool {
    let mut fields = Reader(body);
    in_order(&mut fields, read).is_some() && fields.0.is_empty()
}

/// Every field of an announcement body, in number order, and whether it
/// repeats.
const ANNOUNCEMENT_FIELDS: [(u32, u8, bool); 12] = [
    (1, LEN, false),
    (2, LEN, true),
    (3, VARINT, false),
    (4, VARINT, false),
    (5, VARINT, false),
    (6, FIXED32, false),
    (7, LEN, false),
    (8, VARINT, false),
    (9, VARINT, false),
    (10, LEN, true),
    (11, LEN, false),
    (12, VARINT, false),
];

fn in_order<'a>(fields: &mut Reader<'a>, read: &mut AnnouncementFields<'a>) -> Option<()> {
    // A loop over a constant list, unrolled by the compiler into one test
    // per field.
    for (number, wire_type, repeated) in ANNOUNCEMENT_FIELDS {
        while fields.at(number, wire_type) {
            announcement_field(fields, read, number, wire_type)?;
            if !repeated {
                break;
            }
        }
    }
    Some(())
}

/// The fields in any order, each singular one at most once.
fn announcement_any_order<'a>(body: &'a [u8], read: &mut AnnouncementFields<'a>) -> Option<()> {
    let mut fields = Reader(body);
    let mut seen = 0u32;
    while !fields.0.is_empty() {
        let (number, wire_type) = fields.key()?;
        if !ANNOUNCEMENT_FIELDS.iter().any(|&(n, _, repeated)| n == number && repeated) {
            once(&mut seen, number)?;
        }
        announcement_field(&mut fields, read, number, wire_type)?;
    }
    Some(())
}

/// Reads the value of field `number` (its key read) into `read`; `None`
/// for a field of another number or wire type, or a malformed value.
#[inline(always)]
fn announcement_field<'a>(
    fields: &mut Reader<'a>,
    read: &mut AnnouncementFields<'a>,
    number: u32,
    wire_type: u8,
) -> Option<()> {
    match (number, wire_type) {
        (1, LEN) => read.destination = fields.str()?,
        (2, LEN) => read.path.push(fields.str()?),
        (3, VARINT) => read.hop_count = fields.u32()?,
        (4, VARINT) => read.cost = fields.u32()?,
        (5, VARINT) => read.latency_us = fields.u32()?,
        (6, FIXED32) => read.reliability = Some(f32::from_le_bytes(fields.fixed32()?)),
        (7, LEN) => read.advertiser = fields.str()?,
        (8, VARINT) => read.epoch = fields.varint()?,
        (9, VARINT) => read.ttl_ms = fields.u32()?,
        (10, LEN) => read.tags.push(fields.str()?),
        (11, LEN) => read.signature = Some(fields.bytes()?),
        (12, VARINT) => read.issued_at_ms = Some(fields.varint()?),
        _ => return None,
    }
    Some(())
}

fn withdrawal(body: &[u8], limits: &DecodeLimits, shared: &mut SharedIds) -> Option<RouteWithdrawal> {
    // Path hops (2) repeat; every other field is singular.
    const REPEATED: [u32; 1] = [2];
    let mut fields = Reader(body);
    let mut seen = 0u32;
    let (mut destination, mut advertiser) = ("", "");
    let mut path = Hops::new();
    let (mut epoch, mut issued_at_ms, mut signature) = (0, None, None);
    while !fields.0.is_empty() {
        let (number, wire_type) = fields.key()?;
        if !REPEATED.contains(&number) {
            once(&mut seen, number)?;
        }
        match (number, wire_type) {
            (1, LEN) => destination = fields.str()?,
            (2, LEN) => path.push(fields.str()?),
            (3, LEN) => advertiser = fields.str()?,
            (4, VARINT) => epoch = fields.varint()?,
            (5, LEN) => signature = Some(fields.bytes()?),
            (6, VARINT) => issued_at_ms = Some(fields.varint()?),
            _ => return None,
        }
    }
    let destination = identifier(destination, limits)?;
    let advertiser = identifier(advertiser, limits)?;
    let signature = match signature {
        Some(bytes) => Some(signature_block(bytes, limits)?),
        None => None,
    };
    Some(RouteWithdrawal {
        path: hops(&path, limits, shared)?,
        destination: DestinationId::from(destination),
        advertiser: shared.node(advertiser),
        epoch,
        issued_at_ms,
        signature: signature.map(Box::new),
    })
}

fn signature_block(body: &[u8], limits: &DecodeLimits) -> Option<SignatureBlock> {
    // Every field is singular.
    const REPEATED: [u32; 0] = [];
    let mut fields = Reader(body);
    let mut seen = 0u32;
    let (mut algorithm, mut key_id, mut signature): (&str, &str, &[u8]) = ("", "", &[]);
    while !fields.0.is_empty() {
        let (number, wire_type) = fields.key()?;
        if !REPEATED.contains(&number) {
            once(&mut seen, number)?;
        }
        match (number, wire_type) {
            (1, LEN) => algorithm = fields.str()?,
            (2, LEN) => key_id = fields.str()?,
            (3, LEN) => signature = fields.bytes()?,
            _ => return None,
        }
    }
    if algorithm != SignatureAlgorithm::Ed25519.as_str() {
        return None;
    }
    Some(SignatureBlock {
        algorithm: SignatureAlgorithm::Ed25519,
        key_id: KeyId::from(identifier(key_id, limits)?),
        bytes: signature.try_into().ok()?,
    })
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::ids::Tag;
    use crate::wire::{self, Frame};

    fn limits() -> DecodeLimits {
        DecodeLimits { max_path_length: 6, max_tags: 3, max_string_bytes: 12, ..DecodeLimits::default() }
    }

    fn slow(bytes: &[u8], limits: &DecodeLimits) -> Option<Message> {
        match wire::decode_frame(bytes, limits) {
            Ok(Frame::Routing(message)) => Some(message),
            _ => None,
        }
    }

    fn encoded(message: &Message) -> Vec<u8> {
        let mut bytes = Vec::new();
        wire::encode_frame(&Frame::Routing(message.clone()), &mut bytes);
        bytes
    }

    fn name() -> impl Strategy<Value = String> {
        // Empty and over-long names included: the limits refuse them.
        prop_oneof![Just(String::new()), "[a-c]{1,3}", "[a-z]{11,14}", Just("é".to_string())]
    }

    fn signature() -> impl Strategy<Value = Option<SignatureBlock>> {
        proptest::option::of((name(), any::<u8>()).prop_map(|(key_id, byte)| SignatureBlock {
            algorithm: SignatureAlgorithm::Ed25519,
            key_id: key_id.into(),
            bytes: [byte; 64],
        }))
    }

    fn message() -> impl Strategy<Value = Message> {
        let announcement = (
            (name(), proptest::collection::vec(name(), 0..8), name(), proptest::collection::vec(name(), 0..5)),
            (
                any::<u32>(),
                any::<u32>(),
                any::<u32>(),
                prop_oneof![Just(1.0f32), Just(0.0), Just(f32::NAN), any::<f32>()],
            ),
            (any::<u64>(), any::<u32>(), proptest::option::of(any::<u64>()), signature()),
        )
            .prop_map(
                |((destination, path, advertiser, tags), (hop_count, cost, latency_us, reliability), rest)| {
                    let (epoch, ttl_ms, issued_at_ms, signature) = rest;
                    Message::Announcement(RouteAnnouncement {
                        destination: destination.into(),
                        path: path.into_iter().map(NodeId::from).collect(),
                        hop_count,
                        metrics: RouteMetrics { cost, latency_us, reliability },
                        advertiser: advertiser.into(),
                        epoch,
                        ttl_ms,
                        issued_at_ms,
                        tags: tags.into_iter().map(Tag::from).collect(),
                        signature: signature.map(Box::new),
                    })
                },
            );
        let withdrawal = (
            name(),
            proptest::collection::vec(name(), 0..8),
            name(),
            any::<u64>(),
            proptest::option::of(any::<u64>()),
            signature(),
        )
            .prop_map(|(destination, path, advertiser, epoch, issued_at_ms, signature)| {
                Message::Withdrawal(RouteWithdrawal {
                    destination: destination.into(),
                    path: path.into_iter().map(NodeId::from).collect(),
                    advertiser: advertiser.into(),
                    epoch,
                    issued_at_ms,
                    signature: signature.map(Box::new),
                })
            });
        prop_oneof![announcement, withdrawal]
    }

    /// Bytes changed at random: flipped, cut, extended, or a field added.
    fn mutate(mut bytes: Vec<u8>, edits: &[(usize, u8, u8)]) -> Vec<u8> {
        for &(at, kind, value) in edits {
            if bytes.is_empty() {
                break;
            }
            let at = at % bytes.len();
            match kind % 4 {
                0 => bytes[at] ^= value,
                1 => bytes.truncate(at),
                2 => bytes.insert(at, value),
                _ => bytes.extend_from_slice(&[value, value & 0x7f]),
            }
        }
        bytes
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2048))]

        /// Whatever the direct decoder accepts, the prost decoder decodes
        /// to the same message; what the encoder writes and the limits
        /// allow, it accepts.
        #[test]
        fn agrees_with_the_prost_decoder(
            message in message(),
            edits in proptest::collection::vec((any::<usize>(), any::<u8>(), any::<u8>()), 0..3),
        ) {
            let limits = limits();
            let bytes = mutate(encoded(&message), &edits);
            let mut shared = SharedIds::default();
            let fast = decode_routing_frame(&bytes, &limits, &mut shared);
            let slow = slow(&bytes, &limits);
            if let Some(fast) = &fast {
                prop_assert_eq!(Some(fast), slow.as_ref(), "bytes {:?}", bytes);
            }
            if edits.is_empty() {
                prop_assert_eq!(fast.is_some(), slow.is_some(), "unchanged frame: {:?}", message);
            }
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(1024))]

        /// The direct encoder writes exactly prost's bytes.
        #[test]
        fn encodes_what_prost_encodes(message in message(), end_of_table in name()) {
            prop_assert_eq!(encoded_directly(&message), encoded(&message));
            let end = Message::EndOfTable { advertiser: end_of_table.into() };
            prop_assert_eq!(encoded_directly(&end), encoded(&end));
        }
    }

    fn encoded_directly(message: &Message) -> Vec<u8> {
        let (length, write) = routing_frame(message);
        let mut bytes = Vec::new();
        write(&mut bytes);
        assert_eq!(length, bytes.len(), "the length is computed exactly");
        assert_eq!(routing_frame_len(message), length);
        bytes
    }

    /// "svc" advertised by "a", originated by "o", with `tags`.
    fn svc_via_a_and_o(tags: &[&str]) -> Message {
        Message::Announcement(RouteAnnouncement {
            destination: "svc".into(),
            path: vec![NodeId::from("a"), NodeId::from("o")],
            hop_count: 2,
            metrics: RouteMetrics { cost: 3, latency_us: 4, reliability: 0.5 },
            advertiser: NodeId::from("a"),
            epoch: 7,
            ttl_ms: 90_000,
            issued_at_ms: Some(1),
            tags: tags.iter().map(|&tag| Tag::from(tag)).collect(),
            signature: None,
        })
    }

    /// The body's fields in reverse order: valid protobuf that no encoder
    /// of ours writes.
    fn fields_reversed(frame: &[u8]) -> Vec<u8> {
        let mut envelope = Reader(frame);
        let (version_key, version) = (envelope.key().unwrap(), envelope.varint().unwrap());
        let (body_number, _) = envelope.key().unwrap();
        let mut body = Reader(envelope.bytes().unwrap());
        let mut fields = Vec::new();
        while !body.0.is_empty() {
            let start = body.0;
            let (_, wire_type) = body.key().unwrap();
            match wire_type {
                VARINT => drop(body.varint()),
                FIXED32 => drop(body.fixed32()),
                _ => drop(body.bytes()),
            }
            fields.push(&start[..start.len() - body.0.len()]);
        }
        let reversed: Vec<u8> = fields.iter().rev().flat_map(|field| field.iter().copied()).collect();
        let mut out = Vec::new();
        put_key(&mut out, version_key.0, version_key.1);
        put_varint(&mut out, version);
        put_key(&mut out, body_number, LEN);
        put_varint(&mut out, reversed.len() as u64);
        out.extend_from_slice(&reversed);
        out
    }

    #[test]
    fn fields_out_of_order_are_read_too() {
        let limits = DecodeLimits::default();
        let announcement = svc_via_a_and_o(&["gold", "eu"]);
        let bytes = fields_reversed(&encoded(&announcement));
        assert_ne!(bytes, encoded(&announcement));
        let decoded = decode_routing_frame(&bytes, &limits, &mut SharedIds::default());
        // Repeated fields keep their relative order only within a field:
        // reversed, the path and the tags read backwards.
        let Message::Announcement(mut expected) = announcement else { unreachable!() };
        expected.path.reverse();
        expected.tags = expected.tags.iter().rev().cloned().collect();
        assert_eq!(decoded, Some(Message::Announcement(expected)));
        assert_eq!(decoded, slow(&bytes, &limits));
    }

    #[test]
    fn ids_come_from_the_session_and_other_frames_are_left_to_the_prost_decoder() {
        let limits = DecodeLimits::default();
        let peer = NodeId::from("a");
        let mut shared = SharedIds::for_peer(&peer);
        let announcement = svc_via_a_and_o(&["gold"]);
        let first = decode_routing_frame(&encoded(&announcement), &limits, &mut shared).expect("decoded");
        let second = decode_routing_frame(&encoded(&announcement), &limits, &mut shared).expect("decoded");
        assert_eq!(first, announcement);
        let (Message::Announcement(first), Message::Announcement(second)) = (&first, &second) else { unreachable!() };
        assert!(std::ptr::eq(first.advertiser.as_str(), peer.as_str()), "the peer's own id");
        assert!(std::ptr::eq(first.path[1].as_str(), second.path[1].as_str()), "a transit id, shared");
        assert!(std::ptr::eq(&*first.tags, &*second.tags), "the tag list, shared");

        let end = Message::EndOfTable { advertiser: "a".into() };
        assert_eq!(decode_routing_frame(&encoded(&end), &limits, &mut shared), None);
        let mut hello = Vec::new();
        wire::encode_frame(&Frame::Hello { node_id: "a".into(), hold_time_ms: 3000 }, &mut hello);
        assert_eq!(decode_routing_frame(&hello, &limits, &mut shared), None);
    }
}
