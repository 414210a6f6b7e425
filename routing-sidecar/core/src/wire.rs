//! Versioned binary wire format: the protobuf encoding of
//! [`Message`](crate::message::Message), of link-state updates
//! ([`LinkStateUpdate`]) and of the session frames, and a decoder that
//! enforces size limits on untrusted input before the engine or the
//! link-state router sees it.
//!
//! The prost types in [`schema`] are the authoritative schema.
//! `proto/fabric_routing.proto` documents them for other implementations; a
//! unit test keeps the two in sync. Semantics, limits and the signing rules
//! are specified in `docs/protocol.md`.
//!
//! Signatures never cover these bytes. Protobuf allows several encodings of
//! one message (field order, repeated tags, unknown fields), so signatures
//! cover the canonical encoding of [`crate::canonical`] (path-vector) or
//! [`crate::link_state::lsa`] (link-state) instead, which the receiver
//! recomputes from the decoded message.
//!
//! The decoder only checks what it needs to build well-formed domain values
//! (sizes, versions, required fields). Semantic checks such as loop
//! detection or `path[0] == advertiser` belong to the engine.

use prost::Message as _;

use crate::ids::{DestinationId, KeyId, NodeId, Tag};
use crate::link_state::{
    AreaId, AreaSummary, DestinationAdvert, LinkAdvert, LinkStateUpdate, SummaryDestination, SummaryEntry,
};
use crate::message::{Message, RouteAnnouncement, RouteMetrics, RouteWithdrawal, SignatureAlgorithm, SignatureBlock};

use self::schema::envelope::Body;

/// The protocol version this node speaks. A receiver rejects every other
/// version with [`DecodeError::UnsupportedVersion`].
pub const PROTOCOL_VERSION: u32 = 1;

/// Ed25519 signatures are always this long.
const SIGNATURE_LENGTH: usize = 64;

/// Bounds the decoder enforces on untrusted input. They keep a hostile or
/// broken neighbor from making us allocate or store unbounded data.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DecodeLimits {
    /// Largest encoded message accepted; checked before parsing.
    pub max_message_bytes: usize,
    /// Most hops in a path (announcements and withdrawals).
    pub max_path_length: usize,
    /// Most tags on an announcement (counted as sent, before de-duplication).
    pub max_tags: usize,
    /// Longest identifier in bytes of UTF-8: destination, advertiser, each
    /// path hop, each tag, the key id and the algorithm name; in link-state
    /// updates the origin, the area, each neighbor, each summary
    /// destination and source area.
    pub max_string_bytes: usize,
    /// Most links in one link-state update. The sidecar takes it from
    /// `linkState.limits.maxLinksPerUpdate`, so one knob bounds both the
    /// decoder and the router.
    pub max_links: usize,
    /// Most summary entries in one link-state update (from
    /// `linkState.limits.maxSummaryEntriesPerUpdate`).
    pub max_summary_entries: usize,
    /// Most destinations an origin advertises in one link-state update
    /// (from `linkState.limits.maxDestinationsPerUpdate`).
    pub max_destinations: usize,
}

/// Default of [`DecodeLimits::max_links`], the same as the link-state
/// router's `limits.maxLinksPerUpdate`.
pub const DEFAULT_MAX_LINKS: usize = 1024;
/// Default of [`DecodeLimits::max_summary_entries`], the same as the
/// link-state router's `limits.maxSummaryEntriesPerUpdate`.
pub const DEFAULT_MAX_SUMMARY_ENTRIES: usize = 4096;
/// Default of [`DecodeLimits::max_destinations`], the same as the
/// link-state router's `limits.maxDestinationsPerUpdate`.
pub const DEFAULT_MAX_DESTINATIONS: usize = 4096;

impl Default for DecodeLimits {
    fn default() -> Self {
        Self {
            max_message_bytes: 16 * 1024,
            max_path_length: 64,
            max_tags: 32,
            // The longest DNS name: identifiers are often host or cluster names.
            max_string_bytes: 253,
            max_links: DEFAULT_MAX_LINKS,
            max_summary_entries: DEFAULT_MAX_SUMMARY_ENTRIES,
            max_destinations: DEFAULT_MAX_DESTINATIONS,
        }
    }
}

/// Why bytes from a neighbor were not accepted as a [`Message`] or [`Frame`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    #[error("message is {size} bytes, limit max_message_bytes is {limit}")]
    MessageTooLarge { size: usize, limit: usize },
    #[error("path has {length} hops, limit max_path_length is {limit}")]
    PathTooLong { length: usize, limit: usize },
    #[error("message has {count} tags, limit max_tags is {limit}")]
    TooManyTags { count: usize, limit: usize },
    #[error("link-state update has {count} links, limit max_links is {limit}")]
    TooManyLinks { count: usize, limit: usize },
    #[error("link-state update has {count} summary entries, limit max_summary_entries is {limit}")]
    TooManySummaryEntries { count: usize, limit: usize },
    #[error("link-state update has {count} destinations, limit max_destinations is {limit}")]
    TooManyDestinations { count: usize, limit: usize },
    #[error("{field} is {length} bytes, limit max_string_bytes is {limit}")]
    StringTooLong { field: &'static str, length: usize, limit: usize },
    #[error("protocol version {version} is not supported, this node speaks version {supported}")]
    UnsupportedVersion { version: u32, supported: u32 },
    #[error("required field {0} is missing")]
    MissingField(&'static str),
    #[error("field {0} must not be empty")]
    EmptyString(&'static str),
    #[error("signature is {length} bytes, an ed25519 signature is 64 bytes")]
    BadSignatureLength { length: usize },
    #[error("unknown signature algorithm {0:?}")]
    UnknownSignatureAlgorithm(String),
    #[error("malformed protobuf: {0}")]
    Protobuf(String),
    #[error("reliability is not a finite number")]
    InvalidFloat,
}

impl DecodeError {
    /// Whether the error concerns one announcement, withdrawal or link-state
    /// update rather than the framing or the protocol: such a message is
    /// refused alone and the session stays up (RFC 7606's
    /// treat-as-withdraw); anything else ends the session.
    pub fn is_per_message(&self) -> bool {
        !matches!(
            self,
            DecodeError::MessageTooLarge { .. } | DecodeError::UnsupportedVersion { .. } | DecodeError::Protobuf(_)
        )
    }

    /// A short, stable snake_case label for logs and metrics. For limit
    /// violations it is the name of the [`DecodeLimits`] field.
    pub fn limit_name(&self) -> &'static str {
        match self {
            DecodeError::MessageTooLarge { .. } => "max_message_bytes",
            DecodeError::PathTooLong { .. } => "max_path_length",
            DecodeError::TooManyTags { .. } => "max_tags",
            DecodeError::TooManyLinks { .. } => "max_links",
            DecodeError::TooManySummaryEntries { .. } => "max_summary_entries",
            DecodeError::TooManyDestinations { .. } => "max_destinations",
            DecodeError::StringTooLong { .. } => "max_string_bytes",
            DecodeError::UnsupportedVersion { .. } => "unsupported_version",
            DecodeError::MissingField(_) => "missing_field",
            DecodeError::EmptyString(_) => "empty_string",
            DecodeError::BadSignatureLength { .. } => "bad_signature_length",
            DecodeError::UnknownSignatureAlgorithm(_) => "unknown_signature_algorithm",
            DecodeError::Protobuf(_) => "malformed_protobuf",
            DecodeError::InvalidFloat => "invalid_float",
        }
    }
}

/// The raw protobuf messages. They carry no validation: use [`encode`] and
/// [`decode`] unless you need to build deliberately odd bytes (tests).
pub mod schema {
    /// One protocol message. Each frame carries exactly one envelope.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Envelope {
        /// Field 1 in every protocol version, so any version can be read
        /// without understanding the rest of the message.
        #[prost(uint32, tag = "1")]
        pub version: u32,
        // Tags 2..=15 get one-byte field keys: path-vector messages 2..=4,
        // session messages 5..=7, link-state 8, the rest free.
        #[prost(oneof = "envelope::Body", tags = "2, 3, 4, 5, 6, 7, 8")]
        pub body: Option<envelope::Body>,
    }

    pub mod envelope {
        use super::{Close, EndOfTable, Hello, Keepalive, LinkStateUpdate, RouteAnnouncement, RouteWithdrawal};

        #[derive(Clone, PartialEq, prost::Oneof)]
        pub enum Body {
            #[prost(message, tag = "2")]
            Announcement(RouteAnnouncement),
            #[prost(message, tag = "3")]
            Withdrawal(RouteWithdrawal),
            #[prost(message, tag = "4")]
            EndOfTable(EndOfTable),
            #[prost(message, tag = "5")]
            Hello(Hello),
            #[prost(message, tag = "6")]
            Keepalive(Keepalive),
            #[prost(message, tag = "7")]
            Close(Close),
            #[prost(message, tag = "8")]
            LinkStateUpdate(LinkStateUpdate),
        }
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct RouteAnnouncement {
        #[prost(string, tag = "1")]
        pub destination: String,
        #[prost(string, repeated, tag = "2")]
        pub path: Vec<String>,
        #[prost(uint32, tag = "3")]
        pub hop_count: u32,
        #[prost(uint32, tag = "4")]
        pub cost: u32,
        #[prost(uint32, tag = "5")]
        pub latency_us: u32,
        /// `optional` so that -0.0 survives: proto3 skips a plain float that
        /// compares equal to 0.0, and -0.0 would arrive as +0.0 with other
        /// canonical bits, breaking the signature. Absent means 0.0.
        #[prost(float, optional, tag = "6")]
        pub reliability: Option<f32>,
        #[prost(string, tag = "7")]
        pub advertiser: String,
        #[prost(uint64, tag = "8")]
        pub epoch: u64,
        #[prost(uint32, tag = "9")]
        pub ttl_ms: u32,
        #[prost(string, repeated, tag = "10")]
        pub tags: Vec<String>,
        #[prost(message, optional, tag = "11")]
        pub signature: Option<Signature>,
        #[prost(uint64, optional, tag = "12")]
        pub issued_at_ms: Option<u64>,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct RouteWithdrawal {
        #[prost(string, tag = "1")]
        pub destination: String,
        #[prost(string, repeated, tag = "2")]
        pub path: Vec<String>,
        #[prost(string, tag = "3")]
        pub advertiser: String,
        #[prost(uint64, tag = "4")]
        pub epoch: u64,
        #[prost(message, optional, tag = "5")]
        pub signature: Option<Signature>,
        #[prost(uint64, optional, tag = "6")]
        pub issued_at_ms: Option<u64>,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct EndOfTable {
        #[prost(string, tag = "1")]
        pub advertiser: String,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Signature {
        #[prost(string, tag = "1")]
        pub algorithm: String,
        #[prost(string, tag = "2")]
        pub key_id: String,
        #[prost(bytes = "vec", tag = "3")]
        pub signature: Vec<u8>,
    }

    /// "In `area`, I (`origin`) have these links": one link-state
    /// advertisement, flooded unchanged through the area.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct LinkStateUpdate {
        #[prost(string, tag = "1")]
        pub origin: String,
        #[prost(string, tag = "2")]
        pub area: String,
        #[prost(uint64, tag = "3")]
        pub sequence: u64,
        /// Zero withdraws the origin's update (a flush).
        #[prost(uint32, tag = "4")]
        pub ttl_ms: u32,
        #[prost(message, repeated, tag = "5")]
        pub links: Vec<LinkAdvert>,
        /// A message field, so "no summary" and "an empty summary" stay
        /// apart: the canonical bytes differ.
        #[prost(message, optional, tag = "6")]
        pub summary: Option<AreaSummary>,
        #[prost(message, optional, tag = "7")]
        pub signature: Option<Signature>,
        /// Destinations the origin serves, sorted by name.
        #[prost(message, repeated, tag = "8")]
        pub destinations: Vec<DestinationAdvert>,
    }

    /// One destination the origin serves, with its metric and tags.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct DestinationAdvert {
        #[prost(string, tag = "1")]
        pub name: String,
        #[prost(uint32, tag = "2")]
        pub metric: u32,
        #[prost(string, repeated, tag = "3")]
        pub tags: Vec<String>,
    }

    /// One destination of a child area, from the exporting border router.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct SummaryDestination {
        #[prost(string, tag = "1")]
        pub name: String,
        #[prost(string, tag = "2")]
        pub source_area: String,
        #[prost(uint32, tag = "3")]
        pub cost: u32,
        #[prost(string, repeated, tag = "4")]
        pub tags: Vec<String>,
    }

    /// One adjacency of the origin, with the origin-to-neighbor metrics.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct LinkAdvert {
        #[prost(string, tag = "1")]
        pub neighbor: String,
        #[prost(uint32, tag = "2")]
        pub cost: u32,
        #[prost(uint32, tag = "3")]
        pub latency_us: u32,
        /// `optional` for the same reason as in `RouteAnnouncement`.
        #[prost(float, optional, tag = "4")]
        pub reliability: Option<f32>,
    }

    /// Destinations of child areas a border router exports into the area.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct AreaSummary {
        #[prost(message, repeated, tag = "1")]
        pub entries: Vec<SummaryEntry>,
        #[prost(message, repeated, tag = "2")]
        pub destinations: Vec<SummaryDestination>,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct SummaryEntry {
        #[prost(string, tag = "1")]
        pub destination: String,
        #[prost(string, tag = "2")]
        pub source_area: String,
        #[prost(uint32, tag = "3")]
        pub cost: u32,
        #[prost(uint32, tag = "4")]
        pub latency_us: u32,
        #[prost(float, optional, tag = "5")]
        pub reliability: Option<f32>,
    }

    /// First message on a session, each way: who is speaking and the hold
    /// time it proposes.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Hello {
        #[prost(string, tag = "1")]
        pub node_id: String,
        #[prost(uint32, tag = "2")]
        pub hold_time_ms: u32,
    }

    /// Proves the session is alive when there is nothing else to send.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Keepalive {}

    /// Last message before closing a session on purpose.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Close {
        #[prost(string, tag = "1")]
        pub reason: String,
        /// The sender is restarting and will be back: keep its routes as
        /// stale for the graceful-restart window.
        #[prost(bool, tag = "2")]
        pub restarting: bool,
    }

    /// Only the version field of an [`Envelope`]: read first, so that a
    /// message from another version is reported as such even when its body
    /// would not parse with this version's schema.
    #[derive(Clone, PartialEq, prost::Message)]
    pub(super) struct VersionOnly {
        #[prost(uint32, tag = "1")]
        pub version: u32,
    }
}

/// Everything a session carries: path-vector messages, link-state updates
/// and the session's own hello, keepalive and close.
#[derive(Clone, Debug, PartialEq)]
pub enum Frame {
    Routing(Message),
    LinkState(LinkStateUpdate),
    Hello { node_id: NodeId, hold_time_ms: u32 },
    Keepalive,
    Close { reason: String, restarting: bool },
}

/// Encodes one frame body (without the length prefix of the transport).
pub fn encode_frame(frame: &Frame, buf: &mut Vec<u8>) {
    let body = match frame {
        Frame::Routing(message) => return encode_into(message, buf),
        Frame::LinkState(update) => return encode_link_state_update(update, buf),
        Frame::Hello { node_id, hold_time_ms } => {
            Body::Hello(schema::Hello { node_id: node_id.as_str().to_owned(), hold_time_ms: *hold_time_ms })
        }
        Frame::Keepalive => Body::Keepalive(schema::Keepalive {}),
        Frame::Close { reason, restarting } => {
            Body::Close(schema::Close { reason: reason.clone(), restarting: *restarting })
        }
    };
    encode_envelope(body, buf);
}

/// Appends the frame of one link-state update to `buf`. Takes a reference
/// so that one shared update can be written to many sessions.
pub fn encode_link_state_update(update: &LinkStateUpdate, buf: &mut Vec<u8>) {
    encode_envelope(Body::LinkStateUpdate(to_wire_link_state_update(update)), buf);
}

fn encode_envelope(body: Body, buf: &mut Vec<u8>) {
    let envelope = schema::Envelope { version: PROTOCOL_VERSION, body: Some(body) };
    buf.reserve(envelope.encoded_len());
    // prost only fails when the buffer cannot grow; a Vec always can.
    envelope.encode(buf).expect("encoding into a Vec<u8> cannot run out of space");
}

/// Decodes one frame body received on a session, enforcing `limits`.
pub fn decode_frame(bytes: &[u8], limits: &DecodeLimits) -> Result<Frame, DecodeError> {
    if bytes.len() > limits.max_message_bytes {
        return Err(DecodeError::MessageTooLarge { size: bytes.len(), limit: limits.max_message_bytes });
    }
    check_version(bytes)?;
    let envelope = schema::Envelope::decode(bytes).map_err(protobuf_error)?;
    match envelope.body.ok_or(DecodeError::MissingField("body"))? {
        Body::Hello(hello) => Ok(Frame::Hello {
            node_id: NodeId::from(identifier("node_id", hello.node_id, limits)?),
            hold_time_ms: hello.hold_time_ms,
        }),
        Body::Keepalive(_) => Ok(Frame::Keepalive),
        Body::Close(close) => {
            check_string_length("reason", &close.reason, limits)?;
            Ok(Frame::Close { reason: close.reason, restarting: close.restarting })
        }
        Body::LinkStateUpdate(update) => from_wire_link_state_update(update, limits).map(Frame::LinkState),
        routing => routing_body(routing, limits).map(Frame::Routing),
    }
}

/// The destination an announcement or withdrawal names, read without the
/// limits that refused the rest of it, so that the session layer can treat
/// the refused message as a withdrawal of that destination. `None` when
/// the frame is not a routing message, or the destination itself breaks
/// `limits` (nothing is stored under an over-long name to withdraw).
pub fn destination_of(bytes: &[u8], limits: &DecodeLimits) -> Option<String> {
    let envelope = schema::Envelope::decode(bytes).ok()?;
    let destination = match envelope.body? {
        Body::Announcement(announcement) => announcement.destination,
        Body::Withdrawal(withdrawal) => withdrawal.destination,
        _ => return None,
    };
    (!destination.is_empty() && destination.len() <= limits.max_string_bytes).then_some(destination)
}

/// Encodes `message` as one envelope of the current protocol version.
pub fn encode(message: &Message) -> Vec<u8> {
    let mut buf = Vec::new();
    encode_into(message, &mut buf);
    buf
}

/// Appends the encoding of `message` to `buf`, so a sender can reuse one
/// buffer for many messages.
pub fn encode_into(message: &Message, buf: &mut Vec<u8>) {
    encode_envelope(to_body(message), buf);
}

/// Decodes one envelope received from a neighbor, enforcing `limits`.
///
/// Never panics, whatever the bytes.
pub fn decode(bytes: &[u8], limits: &DecodeLimits) -> Result<Message, DecodeError> {
    // Before parsing, so an oversized message costs no allocation.
    if bytes.len() > limits.max_message_bytes {
        return Err(DecodeError::MessageTooLarge { size: bytes.len(), limit: limits.max_message_bytes });
    }
    check_version(bytes)?;
    let envelope = schema::Envelope::decode(bytes).map_err(protobuf_error)?;
    routing_body(envelope.body.ok_or(DecodeError::MissingField("body"))?, limits)
}

/// A path-vector message body; session and link-state bodies are not
/// path-vector messages.
fn routing_body(body: Body, limits: &DecodeLimits) -> Result<Message, DecodeError> {
    match body {
        Body::Hello(_) | Body::Keepalive(_) | Body::Close(_) | Body::LinkStateUpdate(_) => {
            Err(DecodeError::MissingField("body"))
        }
        Body::Announcement(announcement) => from_wire_announcement(announcement, limits).map(Message::Announcement),
        Body::Withdrawal(withdrawal) => from_wire_withdrawal(withdrawal, limits).map(Message::Withdrawal),
        Body::EndOfTable(end) => {
            Ok(Message::EndOfTable { advertiser: NodeId::from(identifier("advertiser", end.advertiser, limits)?) })
        }
    }
}

fn protobuf_error(error: prost::DecodeError) -> DecodeError {
    DecodeError::Protobuf(error.to_string())
}

fn check_version(bytes: &[u8]) -> Result<(), DecodeError> {
    let version = schema::VersionOnly::decode(bytes).map_err(protobuf_error)?.version;
    if version == PROTOCOL_VERSION {
        Ok(())
    } else {
        Err(DecodeError::UnsupportedVersion { version, supported: PROTOCOL_VERSION })
    }
}

// ---------------------------------------------------------------------------
// Domain -> wire

fn to_body(message: &Message) -> Body {
    match message {
        Message::Announcement(announcement) => Body::Announcement(to_wire_announcement(announcement)),
        Message::Withdrawal(withdrawal) => Body::Withdrawal(to_wire_withdrawal(withdrawal)),
        Message::EndOfTable { advertiser } => {
            Body::EndOfTable(schema::EndOfTable { advertiser: advertiser.as_str().to_owned() })
        }
    }
}

fn to_wire_announcement(announcement: &RouteAnnouncement) -> schema::RouteAnnouncement {
    schema::RouteAnnouncement {
        destination: announcement.destination.as_str().to_owned(),
        path: to_wire_path(&announcement.path),
        hop_count: announcement.hop_count,
        cost: announcement.metrics.cost,
        latency_us: announcement.metrics.latency_us,
        reliability: Some(announcement.metrics.reliability),
        advertiser: announcement.advertiser.as_str().to_owned(),
        epoch: announcement.epoch,
        ttl_ms: announcement.ttl_ms,
        // Sent in the caller's order: tags are a set and the canonical
        // encoding sorts them, so the order carries no meaning.
        tags: announcement.tags.iter().map(|tag| tag.as_str().to_owned()).collect(),
        signature: announcement.signature.as_deref().map(to_wire_signature),
        issued_at_ms: announcement.issued_at_ms,
    }
}

fn to_wire_withdrawal(withdrawal: &RouteWithdrawal) -> schema::RouteWithdrawal {
    schema::RouteWithdrawal {
        destination: withdrawal.destination.as_str().to_owned(),
        path: to_wire_path(&withdrawal.path),
        advertiser: withdrawal.advertiser.as_str().to_owned(),
        epoch: withdrawal.epoch,
        signature: withdrawal.signature.as_deref().map(to_wire_signature),
        issued_at_ms: withdrawal.issued_at_ms,
    }
}

fn to_wire_link_state_update(update: &LinkStateUpdate) -> schema::LinkStateUpdate {
    schema::LinkStateUpdate {
        origin: update.origin.as_str().to_owned(),
        area: update.area.as_str().to_owned(),
        sequence: update.sequence,
        ttl_ms: update.ttl_ms,
        // Sent in the caller's order: the canonical bytes sort links by
        // neighbor, so the order on the wire carries no meaning.
        links: update.links.iter().map(to_wire_link).collect(),
        summary: update.summary.as_ref().map(|summary| schema::AreaSummary {
            entries: summary.entries.iter().map(to_wire_summary_entry).collect(),
            destinations: summary
                .destinations
                .iter()
                .map(|destination| schema::SummaryDestination {
                    name: destination.name.as_str().to_owned(),
                    source_area: destination.source_area.as_str().to_owned(),
                    cost: destination.cost,
                    tags: to_wire_tag_list(&destination.tags),
                })
                .collect(),
        }),
        signature: update.signature.as_ref().map(to_wire_signature),
        destinations: update
            .destinations
            .iter()
            .map(|destination| schema::DestinationAdvert {
                name: destination.name.as_str().to_owned(),
                metric: destination.metric,
                tags: to_wire_tag_list(&destination.tags),
            })
            .collect(),
    }
}

fn to_wire_tag_list(tags: &[Tag]) -> Vec<String> {
    tags.iter().map(|tag| tag.as_str().to_owned()).collect()
}

fn to_wire_link(link: &LinkAdvert) -> schema::LinkAdvert {
    schema::LinkAdvert {
        neighbor: link.neighbor.as_str().to_owned(),
        cost: link.cost,
        latency_us: link.latency_us,
        reliability: Some(link.reliability),
    }
}

fn to_wire_summary_entry(entry: &SummaryEntry) -> schema::SummaryEntry {
    schema::SummaryEntry {
        destination: entry.destination.as_str().to_owned(),
        source_area: entry.source_area.as_str().to_owned(),
        cost: entry.cost,
        latency_us: entry.latency_us,
        reliability: Some(entry.reliability),
    }
}

fn to_wire_path(path: &[NodeId]) -> Vec<String> {
    path.iter().map(|hop| hop.as_str().to_owned()).collect()
}

fn to_wire_signature(signature: &SignatureBlock) -> schema::Signature {
    schema::Signature {
        algorithm: signature.algorithm.as_str().to_owned(),
        key_id: signature.key_id.as_str().to_owned(),
        signature: signature.bytes.to_vec(),
    }
}

// ---------------------------------------------------------------------------
// Wire -> domain, enforcing the limits

fn from_wire_announcement(
    wire: schema::RouteAnnouncement,
    limits: &DecodeLimits,
) -> Result<RouteAnnouncement, DecodeError> {
    Ok(RouteAnnouncement {
        destination: DestinationId::from(identifier("destination", wire.destination, limits)?),
        path: from_wire_path(wire.path, limits)?,
        hop_count: wire.hop_count,
        metrics: RouteMetrics {
            cost: wire.cost,
            latency_us: wire.latency_us,
            reliability: reliability(wire.reliability)?,
        },
        advertiser: NodeId::from(identifier("advertiser", wire.advertiser, limits)?),
        epoch: wire.epoch,
        ttl_ms: wire.ttl_ms,
        issued_at_ms: wire.issued_at_ms,
        tags: from_wire_tags(wire.tags, limits)?,
        signature: wire.signature.map(|signature| from_wire_signature(signature, limits).map(Box::new)).transpose()?,
    })
}

fn from_wire_withdrawal(wire: schema::RouteWithdrawal, limits: &DecodeLimits) -> Result<RouteWithdrawal, DecodeError> {
    Ok(RouteWithdrawal {
        destination: DestinationId::from(identifier("destination", wire.destination, limits)?),
        path: from_wire_path(wire.path, limits)?,
        advertiser: NodeId::from(identifier("advertiser", wire.advertiser, limits)?),
        epoch: wire.epoch,
        issued_at_ms: wire.issued_at_ms,
        signature: wire.signature.map(|signature| from_wire_signature(signature, limits).map(Box::new)).transpose()?,
    })
}

/// Counts are checked before any entry is converted, so an oversized list
/// is refused without building its domain values.
fn from_wire_link_state_update(
    wire: schema::LinkStateUpdate,
    limits: &DecodeLimits,
) -> Result<LinkStateUpdate, DecodeError> {
    if wire.links.len() > limits.max_links {
        return Err(DecodeError::TooManyLinks { count: wire.links.len(), limit: limits.max_links });
    }
    let entries = wire.summary.as_ref().map_or(0, |summary| summary.entries.len() + summary.destinations.len());
    if entries > limits.max_summary_entries {
        return Err(DecodeError::TooManySummaryEntries { count: entries, limit: limits.max_summary_entries });
    }
    if wire.destinations.len() > limits.max_destinations {
        return Err(DecodeError::TooManyDestinations {
            count: wire.destinations.len(),
            limit: limits.max_destinations,
        });
    }
    Ok(LinkStateUpdate {
        origin: NodeId::from(identifier("origin", wire.origin, limits)?),
        area: AreaId::from(identifier("area", wire.area, limits)?),
        sequence: wire.sequence,
        ttl_ms: wire.ttl_ms,
        links: wire.links.into_iter().map(|link| from_wire_link(link, limits)).collect::<Result<_, _>>()?,
        summary: wire
            .summary
            .map(|summary| {
                let entries = summary.entries.into_iter().map(|entry| from_wire_summary_entry(entry, limits));
                let destinations = summary.destinations.into_iter().map(|destination| {
                    Ok(SummaryDestination {
                        name: DestinationId::from(identifier("summary destination name", destination.name, limits)?),
                        source_area: AreaId::from(identifier(
                            "summary destination source_area",
                            destination.source_area,
                            limits,
                        )?),
                        cost: destination.cost,
                        tags: from_wire_tag_list(destination.tags, limits)?,
                    })
                });
                Ok::<_, DecodeError>(AreaSummary {
                    entries: entries.collect::<Result<_, _>>()?,
                    destinations: destinations.collect::<Result<_, _>>()?,
                })
            })
            .transpose()?,
        destinations: wire
            .destinations
            .into_iter()
            .map(|destination| {
                Ok(DestinationAdvert {
                    name: DestinationId::from(identifier("destination name", destination.name, limits)?),
                    metric: destination.metric,
                    tags: from_wire_tag_list(destination.tags, limits)?,
                })
            })
            .collect::<Result<_, DecodeError>>()?,
        signature: wire.signature.map(|signature| from_wire_signature(signature, limits)).transpose()?,
    })
}

/// Tags of a link-state destination, in the order sent: the router checks
/// that they are sorted (the signature covers them in that order).
fn from_wire_tag_list(tags: Vec<String>, limits: &DecodeLimits) -> Result<Vec<Tag>, DecodeError> {
    if tags.len() > limits.max_tags {
        return Err(DecodeError::TooManyTags { count: tags.len(), limit: limits.max_tags });
    }
    tags.into_iter().map(|tag| identifier("destination tag", tag, limits).map(Tag::from)).collect()
}

fn from_wire_link(wire: schema::LinkAdvert, limits: &DecodeLimits) -> Result<LinkAdvert, DecodeError> {
    Ok(LinkAdvert {
        neighbor: NodeId::from(identifier("link neighbor", wire.neighbor, limits)?),
        cost: wire.cost,
        latency_us: wire.latency_us,
        reliability: reliability(wire.reliability)?,
    })
}

fn from_wire_summary_entry(wire: schema::SummaryEntry, limits: &DecodeLimits) -> Result<SummaryEntry, DecodeError> {
    Ok(SummaryEntry {
        destination: NodeId::from(identifier("summary destination", wire.destination, limits)?),
        source_area: AreaId::from(identifier("summary source_area", wire.source_area, limits)?),
        cost: wire.cost,
        latency_us: wire.latency_us,
        reliability: reliability(wire.reliability)?,
    })
}

/// A non-empty string within `max_string_bytes`. Empty identifiers are never
/// meaningful and would collide with protobuf's "field absent".
fn identifier(field: &'static str, value: String, limits: &DecodeLimits) -> Result<String, DecodeError> {
    check_string_length(field, &value, limits)?;
    if value.is_empty() {
        return Err(DecodeError::EmptyString(field));
    }
    Ok(value)
}

fn check_string_length(field: &'static str, value: &str, limits: &DecodeLimits) -> Result<(), DecodeError> {
    if value.len() > limits.max_string_bytes {
        return Err(DecodeError::StringTooLong { field, length: value.len(), limit: limits.max_string_bytes });
    }
    Ok(())
}

fn from_wire_path(hops: Vec<String>, limits: &DecodeLimits) -> Result<Vec<NodeId>, DecodeError> {
    if hops.len() > limits.max_path_length {
        return Err(DecodeError::PathTooLong { length: hops.len(), limit: limits.max_path_length });
    }
    hops.into_iter().map(|hop| identifier("path hop", hop, limits).map(NodeId::from)).collect()
}

fn from_wire_tags(tags: Vec<String>, limits: &DecodeLimits) -> Result<std::sync::Arc<[Tag]>, DecodeError> {
    if tags.len() > limits.max_tags {
        return Err(DecodeError::TooManyTags { count: tags.len(), limit: limits.max_tags });
    }
    tags.into_iter().map(|tag| identifier("tag", tag, limits).map(Tag::from)).collect()
}

/// Absent means 0.0 (see the schema). Non-finite values would poison every
/// metric computed from them, so they are refused here.
fn reliability(value: Option<f32>) -> Result<f32, DecodeError> {
    let value = value.unwrap_or(0.0);
    if value.is_finite() { Ok(value) } else { Err(DecodeError::InvalidFloat) }
}

fn from_wire_signature(wire: schema::Signature, limits: &DecodeLimits) -> Result<SignatureBlock, DecodeError> {
    // Bounded first so the error below never echoes a huge string.
    check_string_length("signature.algorithm", &wire.algorithm, limits)?;
    let algorithm = match wire.algorithm.as_str() {
        "ed25519" => SignatureAlgorithm::Ed25519,
        _ => return Err(DecodeError::UnknownSignatureAlgorithm(wire.algorithm)),
    };
    let key_id = KeyId::from(identifier("signature.key_id", wire.key_id, limits)?);
    let bytes: [u8; SIGNATURE_LENGTH] = wire
        .signature
        .as_slice()
        .try_into()
        .map_err(|_| DecodeError::BadSignatureLength { length: wire.signature.len() })?;
    Ok(SignatureBlock { algorithm, key_id, bytes })
}

/// Deterministic test vectors for `docs/protocol.md`.
///
/// `examples/protocol_vectors.rs` prints [`test_vectors_markdown`];
/// `tests/protocol_vectors.rs` checks that the document contains exactly that
/// text and that its signatures verify.
pub mod vectors {
    use std::fmt::Write as _;

    use base64::Engine as _;
    use base64::engine::general_purpose::STANDARD as BASE64;

    use super::Frame;
    use crate::canonical::{
        self, ANNOUNCEMENT_DOMAIN, ANNOUNCEMENT_DOMAIN_V2, WITHDRAWAL_DOMAIN, WITHDRAWAL_DOMAIN_V2,
    };
    use crate::ids::{KeyId, NodeId, Tag};
    use crate::link_state::lsa::{
        LINK_STATE_UPDATE_DOMAIN, LINK_STATE_UPDATE_DOMAIN_V2, link_state_update_bytes, sign_update,
    };
    use crate::link_state::{
        AreaId, AreaSummary, DestinationAdvert, LinkAdvert, LinkStateUpdate, SummaryDestination, SummaryEntry,
    };
    use crate::message::{
        Message, RouteAnnouncement, RouteMetrics, RouteWithdrawal, SignatureAlgorithm, SignatureBlock,
    };
    use crate::security::SigningIdentity;

    /// Test-only secret key. Ed25519 signing is deterministic, so the
    /// vectors are stable.
    pub const SECRET_KEY: [u8; 32] = [7u8; 32];
    pub const KEY_ID: &str = "k1";
    pub const ADVERTISER: &str = "node-a";
    /// The issue time of the v2 vectors: 2026-01-01T00:00:00Z.
    pub const ISSUED_AT_MS: u64 = 1_767_225_600_000;

    /// Bytes per line in hex listings.
    const HEX_LINE_BYTES: usize = 32;

    /// One signed message and everything needed to check an implementation
    /// against it.
    #[derive(Clone, Debug)]
    pub struct TestVector {
        pub title: &'static str,
        /// The signed message: `Frame::Routing` or `Frame::LinkState`.
        pub frame: Frame,
        /// What the signature covers (`crate::canonical`, or
        /// `crate::link_state::lsa` for link-state updates).
        pub canonical: Vec<u8>,
        pub public_key: [u8; 32],
        pub signature: [u8; 64],
        /// The full envelope as sent.
        pub wire: Vec<u8>,
        /// The canonical bytes cut into fields, for the annotated listing.
        pub canonical_fields: Vec<CanonicalField>,
    }

    /// One field of a canonical encoding: its label and its bytes
    /// (`prefix` is the length or count prefix, empty for plain integers).
    #[derive(Clone, Debug, PartialEq, Eq)]
    pub struct CanonicalField {
        pub label: String,
        pub prefix: Vec<u8>,
        pub value: Vec<u8>,
    }

    pub fn identity() -> SigningIdentity {
        SigningIdentity::from_secret_bytes(KeyId::from(KEY_ID), &SECRET_KEY)
    }

    /// The vector announcement, unsigned.
    pub fn announcement() -> RouteAnnouncement {
        RouteAnnouncement {
            destination: "cluster-x".into(),
            path: vec![NodeId::from(ADVERTISER), NodeId::from("node-b")],
            hop_count: 2,
            metrics: RouteMetrics { cost: 20, latency_us: 1500, reliability: 0.99 },
            advertiser: NodeId::from(ADVERTISER),
            epoch: 42,
            ttl_ms: 90_000,
            issued_at_ms: None,
            tags: vec!["gold".into(), "eu".into()].into(),
            signature: None,
        }
    }

    /// The vector link-state update, unsigned: `node-a` in area `core`
    /// with two links (listed out of order: the canonical bytes sort them)
    /// and a one-entry summary of area `edge`.
    pub fn link_state_update() -> LinkStateUpdate {
        LinkStateUpdate {
            origin: NodeId::from(ADVERTISER),
            area: AreaId::from("core"),
            sequence: 7,
            ttl_ms: 300_000,
            links: vec![
                LinkAdvert { neighbor: NodeId::from("node-c"), cost: 20, latency_us: 900, reliability: 0.98 },
                LinkAdvert { neighbor: NodeId::from("node-b"), cost: 10, latency_us: 250, reliability: 0.999 },
            ],
            summary: Some(AreaSummary {
                entries: vec![SummaryEntry {
                    destination: NodeId::from("edge-1"),
                    source_area: AreaId::from("edge"),
                    cost: 5,
                    latency_us: 400,
                    reliability: 0.995,
                }],
                destinations: Vec::new(),
            }),
            destinations: Vec::new(),
            signature: None,
        }
    }

    /// The v2 vector: the same update, also serving two destinations
    /// itself and summarizing one destination of area `edge`.
    pub fn link_state_update_with_destinations() -> LinkStateUpdate {
        let mut update = link_state_update();
        update.destinations = vec![
            DestinationAdvert { name: "cluster-x".into(), metric: 2, tags: vec![Tag::from("eu"), Tag::from("prod")] },
            DestinationAdvert { name: "cluster-y".into(), metric: 0, tags: Vec::new() },
        ];
        if let Some(summary) = update.summary.as_mut() {
            summary.destinations = vec![SummaryDestination {
                name: "edge-svc".into(),
                source_area: AreaId::from("edge"),
                cost: 7,
                tags: vec![Tag::from("edge")],
            }];
        }
        update
    }

    /// The vector withdrawal, unsigned: the same route, withdrawn with the
    /// next epoch.
    pub fn withdrawal() -> RouteWithdrawal {
        RouteWithdrawal {
            destination: "cluster-x".into(),
            path: vec![NodeId::from(ADVERTISER), NodeId::from("node-b")],
            advertiser: NodeId::from(ADVERTISER),
            epoch: 43,
            issued_at_ms: None,
            signature: None,
        }
    }

    pub fn test_vectors() -> Vec<TestVector> {
        let identity = identity();
        let algorithm = SignatureAlgorithm::Ed25519;
        let key_id = identity.key_id().clone();

        let mut announcement = announcement();
        identity.sign_announcement(&mut announcement);
        let announcement_vector = vector(
            "Route announcement",
            canonical::announcement_bytes(&announcement, algorithm, &key_id),
            announcement_fields(&announcement, &key_id),
            Frame::Routing(Message::Announcement(announcement)),
            &identity,
        );

        let mut withdrawal = withdrawal();
        identity.sign_withdrawal(&mut withdrawal);
        let withdrawal_vector = vector(
            "Route withdrawal",
            canonical::withdrawal_bytes(&withdrawal, algorithm, &key_id),
            withdrawal_fields(&withdrawal, &key_id),
            Frame::Routing(Message::Withdrawal(withdrawal)),
            &identity,
        );

        let mut announcement_v2 = RouteAnnouncement { issued_at_ms: Some(ISSUED_AT_MS), ..self::announcement() };
        identity.sign_announcement(&mut announcement_v2);
        let announcement_v2_vector = vector(
            "Route announcement, v2 (with issue time)",
            canonical::announcement_bytes(&announcement_v2, algorithm, &key_id),
            announcement_fields(&announcement_v2, &key_id),
            Frame::Routing(Message::Announcement(announcement_v2)),
            &identity,
        );

        let mut withdrawal_v2 = RouteWithdrawal { issued_at_ms: Some(ISSUED_AT_MS + 1_000), ..self::withdrawal() };
        identity.sign_withdrawal(&mut withdrawal_v2);
        let withdrawal_v2_vector = vector(
            "Route withdrawal, v2 (with issue time)",
            canonical::withdrawal_bytes(&withdrawal_v2, algorithm, &key_id),
            withdrawal_fields(&withdrawal_v2, &key_id),
            Frame::Routing(Message::Withdrawal(withdrawal_v2)),
            &identity,
        );

        let mut update = link_state_update();
        sign_update(&identity, &mut update);
        let link_state_vector = vector(
            "Link-state update",
            link_state_update_bytes(&update, algorithm, &key_id),
            link_state_update_fields(&update, &key_id),
            Frame::LinkState(update),
            &identity,
        );

        let mut update = link_state_update_with_destinations();
        sign_update(&identity, &mut update);
        let link_state_v2_vector = vector(
            "Link-state update, v2 (with destinations)",
            link_state_update_bytes(&update, algorithm, &key_id),
            link_state_update_fields(&update, &key_id),
            Frame::LinkState(update),
            &identity,
        );

        vec![
            announcement_vector,
            withdrawal_vector,
            announcement_v2_vector,
            withdrawal_v2_vector,
            link_state_vector,
            link_state_v2_vector,
        ]
    }

    impl TestVector {
        /// The node whose key signed: the advertiser, or the link-state origin.
        pub fn signer(&self) -> &NodeId {
            match &self.frame {
                Frame::Routing(message) => message.advertiser(),
                Frame::LinkState(update) => &update.origin,
                _ => unreachable!("vectors are signed messages"),
            }
        }

        pub fn signature_block(&self) -> Option<&SignatureBlock> {
            signature_of(&self.frame)
        }
    }

    fn signature_of(frame: &Frame) -> Option<&SignatureBlock> {
        match frame {
            Frame::Routing(message) => message.signature(),
            Frame::LinkState(update) => update.signature.as_ref(),
            _ => None,
        }
    }

    fn vector(
        title: &'static str,
        canonical: Vec<u8>,
        canonical_fields: Vec<CanonicalField>,
        frame: Frame,
        identity: &SigningIdentity,
    ) -> TestVector {
        // Every vector message is signed before it gets here; a missing
        // signature would show as zeros, which the vector tests reject.
        let signature = signature_of(&frame).map(|block| block.bytes).unwrap_or([0u8; 64]);
        let mut wire = Vec::new();
        super::encode_frame(&frame, &mut wire);
        TestVector {
            title,
            wire,
            frame,
            canonical,
            public_key: identity.verifying_key().to_bytes(),
            signature,
            canonical_fields,
        }
    }

    /// The vectors as Markdown, exactly as pasted into `docs/protocol.md`
    /// between the test vector markers.
    pub fn test_vectors_markdown() -> String {
        let vectors = test_vectors();
        let mut out = String::new();
        push_line(&mut out, "All vectors are signed with this key. It is public: use it for tests only.");
        push_line(&mut out, "");
        push_line(&mut out, &format!("- Secret key (hex): `{}`", hex(&SECRET_KEY)));
        push_line(&mut out, &format!("- Key id: `{KEY_ID}`"));
        push_line(&mut out, &format!("- Advertiser (link-state: origin): `{ADVERTISER}`"));
        for vector in &vectors {
            push_line(&mut out, "");
            push_vector(&mut out, vector);
        }
        out
    }

    fn push_vector(out: &mut String, vector: &TestVector) {
        push_line(out, &format!("### {}", vector.title));
        push_line(out, "");
        push_line(out, "| Field | Value |");
        push_line(out, "| --- | --- |");
        for (field, value) in describe(&vector.frame) {
            push_line(out, &format!("| {field} | {value} |"));
        }
        push_line(out, "");
        push_line(out, &format!("Public key (hex): `{}`", hex(&vector.public_key)));
        push_line(out, "");
        push_line(out, &format!("Public key (base64): `{}`", BASE64.encode(vector.public_key)));
        push_line(out, "");
        push_hex_block(
            out,
            &format!("Canonical signing bytes (hex, {} bytes):", vector.canonical.len()),
            &vector.canonical,
        );
        push_line(out, "");
        push_line(out, "The same bytes field by field (length or count prefix, then value):");
        push_line(out, "");
        push_line(out, "```text");
        push_canonical_fields(out, &vector.canonical_fields);
        push_line(out, "```");
        push_line(out, "");
        push_hex_block(out, "Ed25519 signature (hex):", &vector.signature);
        push_line(out, "");
        push_hex_block(out, &format!("Wire encoding (hex, {} bytes):", vector.wire.len()), &vector.wire);
    }

    fn push_line(out: &mut String, line: &str) {
        out.push_str(line);
        out.push('\n');
    }

    fn push_hex_block(out: &mut String, caption: &str, bytes: &[u8]) {
        push_line(out, caption);
        push_line(out, "");
        push_line(out, "```text");
        for chunk in bytes.chunks(HEX_LINE_BYTES) {
            push_line(out, &hex(chunk));
        }
        push_line(out, "```");
    }

    fn push_canonical_fields(out: &mut String, fields: &[CanonicalField]) {
        let width = fields.iter().map(|field| field.label.chars().count()).max().unwrap_or(0);
        for field in fields {
            let bytes = [hex(&field.prefix), hex(&field.value)].join(" ");
            push_line(out, format!("{:width$}  {}", field.label, bytes.trim()).trim_end());
        }
    }

    pub fn hex(bytes: &[u8]) -> String {
        let mut out = String::with_capacity(bytes.len() * 2);
        for byte in bytes {
            // Writing to a String cannot fail.
            let _ = write!(out, "{byte:02x}");
        }
        out
    }

    fn describe(frame: &Frame) -> Vec<(&'static str, String)> {
        let mut rows = match frame {
            Frame::Routing(message) => describe_message(message),
            Frame::LinkState(update) => describe_link_state_update(update),
            _ => Vec::new(),
        };
        if let Some(signature) = signature_of(frame) {
            rows.push((
                "signature",
                format!("{}, key id {}", signature.algorithm.as_str(), code(signature.key_id.as_str())),
            ));
        }
        rows
    }

    fn describe_message(message: &Message) -> Vec<(&'static str, String)> {
        let mut rows = Vec::new();
        match message {
            Message::Announcement(a) => {
                rows.push(("destination", code(a.destination.as_str())));
                rows.push(("path", code_list(a.path.iter().map(NodeId::as_str))));
                rows.push(("hop_count", a.hop_count.to_string()));
                rows.push(("cost", a.metrics.cost.to_string()));
                rows.push(("latency_us", a.metrics.latency_us.to_string()));
                let reliability = a.metrics.reliability;
                rows.push(("reliability", format!("{reliability} (f32 bits `{:08x}`)", reliability.to_bits())));
                rows.push(("advertiser", code(a.advertiser.as_str())));
                rows.push(("epoch", a.epoch.to_string()));
                rows.push(("ttl_ms", a.ttl_ms.to_string()));
                rows.push(("tags", code_list(a.tags.iter().map(Tag::as_str))));
                if let Some(issued_at_ms) = a.issued_at_ms {
                    rows.push(("issued_at_ms", issued_at_ms.to_string()));
                }
            }
            Message::Withdrawal(w) => {
                rows.push(("destination", code(w.destination.as_str())));
                rows.push(("path", code_list(w.path.iter().map(NodeId::as_str))));
                rows.push(("advertiser", code(w.advertiser.as_str())));
                rows.push(("epoch", w.epoch.to_string()));
                if let Some(issued_at_ms) = w.issued_at_ms {
                    rows.push(("issued_at_ms", issued_at_ms.to_string()));
                }
            }
            Message::EndOfTable { advertiser } => rows.push(("advertiser", code(advertiser.as_str()))),
        }
        rows
    }

    fn describe_link_state_update(update: &LinkStateUpdate) -> Vec<(&'static str, String)> {
        let mut rows = vec![
            ("origin", code(update.origin.as_str())),
            ("area", code(update.area.as_str())),
            ("sequence", update.sequence.to_string()),
            ("ttl_ms", update.ttl_ms.to_string()),
        ];
        for link in &update.links {
            let metrics = metrics_text(link.cost, link.latency_us, link.reliability);
            rows.push(("link", format!("{}: {metrics}", code(link.neighbor.as_str()))));
        }
        for entry in update.summary.iter().flat_map(|summary| &summary.entries) {
            let metrics = metrics_text(entry.cost, entry.latency_us, entry.reliability);
            let place = format!("{} of area {}", code(entry.destination.as_str()), code(entry.source_area.as_str()));
            rows.push(("summary entry", format!("{place}: {metrics}")));
        }
        rows
    }

    fn metrics_text(cost: u32, latency_us: u32, reliability: f32) -> String {
        format!(
            "cost {cost}, latency_us {latency_us}, reliability {reliability} (f32 bits `{:08x}`)",
            reliability.to_bits()
        )
    }

    fn code(value: &str) -> String {
        format!("`{value}`")
    }

    fn code_list<'a>(values: impl Iterator<Item = &'a str>) -> String {
        values.map(code).collect::<Vec<_>>().join(", ")
    }

    /// Builds the annotated listing. A unit test checks that the fields
    /// concatenate to the output of `crate::canonical`, so the listing
    /// cannot drift from the real encoding.
    #[derive(Default)]
    struct FieldList(Vec<CanonicalField>);

    impl FieldList {
        fn string(&mut self, label: &str, value: &str) {
            self.0.push(CanonicalField {
                label: format!("{label} {value:?}"),
                prefix: (value.len() as u32).to_be_bytes().to_vec(),
                value: value.as_bytes().to_vec(),
            });
        }

        fn count(&mut self, label: &str, count: usize) {
            self.0.push(CanonicalField {
                label: format!("{label} {count}"),
                prefix: (count as u32).to_be_bytes().to_vec(),
                value: Vec::new(),
            });
        }

        fn u32(&mut self, label: &str, value: u32) {
            self.0.push(CanonicalField {
                label: format!("{label} {value}"),
                prefix: Vec::new(),
                value: value.to_be_bytes().to_vec(),
            });
        }

        fn byte(&mut self, label: &str, value: u8) {
            self.0.push(CanonicalField { label: format!("{label} {value}"), prefix: Vec::new(), value: vec![value] });
        }

        fn reliability(&mut self, label: &str, value: f32) {
            self.0.push(CanonicalField {
                label: format!("{label} {value} as f32 bits"),
                prefix: Vec::new(),
                value: value.to_bits().to_be_bytes().to_vec(),
            });
        }

        fn u64(&mut self, label: &str, value: u64) {
            self.0.push(CanonicalField {
                label: format!("{label} {value}"),
                prefix: Vec::new(),
                value: value.to_be_bytes().to_vec(),
            });
        }

        fn path(&mut self, path: &[NodeId]) {
            self.count("path count", path.len());
            for (index, hop) in path.iter().enumerate() {
                self.string(&format!("path[{index}]"), hop.as_str());
            }
        }

        fn signer(&mut self, key_id: &KeyId) {
            self.string("algorithm", SignatureAlgorithm::Ed25519.as_str());
            self.string("key_id", key_id.as_str());
        }
    }

    fn domain(domain: &[u8]) -> &str {
        std::str::from_utf8(domain).unwrap_or("")
    }

    fn announcement_fields(a: &RouteAnnouncement, key_id: &KeyId) -> Vec<CanonicalField> {
        let mut fields = FieldList::default();
        let v2 = a.issued_at_ms.is_some();
        fields.string("domain", domain(if v2 { ANNOUNCEMENT_DOMAIN_V2 } else { ANNOUNCEMENT_DOMAIN }));
        fields.string("destination", a.destination.as_str());
        fields.path(&a.path);
        fields.u32("hop_count", a.hop_count);
        fields.u32("cost", a.metrics.cost);
        fields.u32("latency_us", a.metrics.latency_us);
        fields.reliability("reliability", a.metrics.reliability);
        fields.string("advertiser", a.advertiser.as_str());
        fields.u64("epoch", a.epoch);
        fields.u32("ttl_ms", a.ttl_ms);
        let tags = canonical::canonical_tags(&a.tags);
        fields.count("tag count (sorted, deduplicated)", tags.len());
        for (index, tag) in tags.iter().enumerate() {
            fields.string(&format!("tags[{index}]"), tag);
        }
        if let Some(issued_at_ms) = a.issued_at_ms {
            fields.u64("issued_at_ms", issued_at_ms);
        }
        fields.signer(key_id);
        fields.0
    }

    fn withdrawal_fields(w: &RouteWithdrawal, key_id: &KeyId) -> Vec<CanonicalField> {
        let mut fields = FieldList::default();
        let v2 = w.issued_at_ms.is_some();
        fields.string("domain", domain(if v2 { WITHDRAWAL_DOMAIN_V2 } else { WITHDRAWAL_DOMAIN }));
        fields.string("destination", w.destination.as_str());
        fields.path(&w.path);
        fields.string("advertiser", w.advertiser.as_str());
        fields.u64("epoch", w.epoch);
        if let Some(issued_at_ms) = w.issued_at_ms {
            fields.u64("issued_at_ms", issued_at_ms);
        }
        fields.signer(key_id);
        fields.0
    }

    fn link_state_update_fields(u: &LinkStateUpdate, key_id: &KeyId) -> Vec<CanonicalField> {
        let mut fields = FieldList::default();
        let tag = if u.has_destinations() { LINK_STATE_UPDATE_DOMAIN_V2 } else { LINK_STATE_UPDATE_DOMAIN };
        fields.string("domain", domain(tag));
        fields.string("origin", u.origin.as_str());
        fields.string("area", u.area.as_str());
        fields.u64("sequence", u.sequence);
        fields.u32("ttl_ms", u.ttl_ms);
        let links = u.sorted_links();
        fields.count("link count (sorted by neighbor)", links.len());
        for (index, link) in links.iter().enumerate() {
            fields.string(&format!("links[{index}].neighbor"), link.neighbor.as_str());
            fields.u32(&format!("links[{index}].cost"), link.cost);
            fields.u32(&format!("links[{index}].latency_us"), link.latency_us);
            fields.reliability(&format!("links[{index}].reliability"), link.reliability);
        }
        fields.byte("summary present", u8::from(u.summary.is_some()));
        if u.summary.is_some() {
            let entries = u.sorted_summary_entries();
            fields.count("summary entry count (sorted by source area, destination)", entries.len());
            for (index, entry) in entries.iter().enumerate() {
                fields.string(&format!("entries[{index}].source_area"), entry.source_area.as_str());
                fields.string(&format!("entries[{index}].destination"), entry.destination.as_str());
                fields.u32(&format!("entries[{index}].cost"), entry.cost);
                fields.u32(&format!("entries[{index}].latency_us"), entry.latency_us);
                fields.reliability(&format!("entries[{index}].reliability"), entry.reliability);
            }
        }
        if u.has_destinations() {
            fields.count("destination count (sorted by name)", u.destinations.len());
            for (index, destination) in u.destinations.iter().enumerate() {
                fields.string(&format!("destinations[{index}].name"), destination.name.as_str());
                fields.u32(&format!("destinations[{index}].metric"), destination.metric);
                fields.count(&format!("destinations[{index}].tag count"), destination.tags.len());
                for (tag_index, tag) in destination.tags.iter().enumerate() {
                    fields.string(&format!("destinations[{index}].tags[{tag_index}]"), tag.as_str());
                }
            }
            let summarized = u.sorted_summary_destinations();
            fields.count("summary destination count (sorted by source area, name)", summarized.len());
            for (index, destination) in summarized.iter().enumerate() {
                let label = format!("summary_destinations[{index}]");
                fields.string(&format!("{label}.source_area"), destination.source_area.as_str());
                fields.string(&format!("{label}.name"), destination.name.as_str());
                fields.u32(&format!("{label}.cost"), destination.cost);
                fields.count(&format!("{label}.tag count"), destination.tags.len());
                for (tag_index, tag) in destination.tags.iter().enumerate() {
                    fields.string(&format!("{label}.tags[{tag_index}]"), tag.as_str());
                }
            }
        }
        fields.signer(key_id);
        fields.0
    }
}

#[cfg(test)]
mod tests {
    use ed25519_dalek::{Signature, VerifyingKey};
    use proptest::prelude::*;

    use super::*;
    use crate::canonical;
    use crate::security::SigningIdentity;

    fn limits() -> DecodeLimits {
        DecodeLimits::default()
    }

    fn announcement() -> RouteAnnouncement {
        vectors::announcement()
    }

    fn withdrawal() -> RouteWithdrawal {
        vectors::withdrawal()
    }

    fn signed_announcement() -> RouteAnnouncement {
        let mut announcement = announcement();
        vectors::identity().sign_announcement(&mut announcement);
        announcement
    }

    fn signed_withdrawal() -> RouteWithdrawal {
        let mut withdrawal = withdrawal();
        vectors::identity().sign_withdrawal(&mut withdrawal);
        withdrawal
    }

    fn roundtrip(message: &Message) -> Result<Message, DecodeError> {
        decode(&encode(message), &limits())
    }

    /// Encodes raw schema types, for bytes our encoder would never produce.
    fn envelope_bytes(version: u32, body: Option<Body>) -> Vec<u8> {
        schema::Envelope { version, body }.encode_to_vec()
    }

    fn wire_announcement() -> schema::RouteAnnouncement {
        to_wire_announcement(&signed_announcement())
    }

    fn decode_wire_announcement(wire: schema::RouteAnnouncement) -> Result<Message, DecodeError> {
        decode(&envelope_bytes(PROTOCOL_VERSION, Some(Body::Announcement(wire))), &limits())
    }

    fn verify(key: &VerifyingKey, canonical: &[u8], block: &SignatureBlock) -> bool {
        key.verify_strict(canonical, &Signature::from_bytes(&block.bytes)).is_ok()
    }

    fn announcement_signature_verifies(key: &VerifyingKey, announcement: &RouteAnnouncement) -> bool {
        let Some(block) = &announcement.signature else {
            return false;
        };
        let canonical = canonical::announcement_bytes(announcement, block.algorithm, &block.key_id);
        verify(key, &canonical, block)
    }

    fn withdrawal_signature_verifies(key: &VerifyingKey, withdrawal: &RouteWithdrawal) -> bool {
        let Some(block) = &withdrawal.signature else {
            return false;
        };
        let canonical = canonical::withdrawal_bytes(withdrawal, block.algorithm, &block.key_id);
        verify(key, &canonical, block)
    }

    // --- roundtrips -------------------------------------------------------

    #[test]
    fn roundtrip_unsigned_announcement() {
        let message = Message::Announcement(announcement());
        assert_eq!(roundtrip(&message), Ok(message));
    }

    #[test]
    fn roundtrip_signed_announcement() {
        let message = Message::Announcement(signed_announcement());
        let decoded = roundtrip(&message).expect("decodes");
        assert_eq!(decoded, message);
        let Message::Announcement(decoded) = decoded else { unreachable!() };
        assert!(announcement_signature_verifies(&vectors::identity().verifying_key(), &decoded));
    }

    #[test]
    fn roundtrip_unsigned_withdrawal() {
        let message = Message::Withdrawal(withdrawal());
        assert_eq!(roundtrip(&message), Ok(message));
    }

    #[test]
    fn roundtrip_signed_withdrawal() {
        let message = Message::Withdrawal(signed_withdrawal());
        let decoded = roundtrip(&message).expect("decodes");
        assert_eq!(decoded, message);
        let Message::Withdrawal(decoded) = decoded else { unreachable!() };
        assert!(withdrawal_signature_verifies(&vectors::identity().verifying_key(), &decoded));
    }

    #[test]
    fn roundtrip_end_of_table() {
        let message = Message::EndOfTable { advertiser: NodeId::from("node-a") };
        assert_eq!(roundtrip(&message), Ok(message));
    }

    #[test]
    fn roundtrip_keeps_negative_zero_reliability_bits() {
        let mut announcement = announcement();
        announcement.metrics.reliability = -0.0;
        let Ok(Message::Announcement(decoded)) = roundtrip(&Message::Announcement(announcement)) else {
            panic!("announcement did not roundtrip")
        };
        assert_eq!(decoded.metrics.reliability.to_bits(), (-0.0f32).to_bits());
    }

    #[test]
    fn encode_into_appends() {
        let message = Message::EndOfTable { advertiser: NodeId::from("node-a") };
        let mut buf = vec![0xff];
        encode_into(&message, &mut buf);
        assert_eq!(buf[0], 0xff);
        assert_eq!(&buf[1..], encode(&message).as_slice());
    }

    #[test]
    fn absent_reliability_decodes_as_zero() {
        let mut wire = to_wire_announcement(&announcement());
        wire.reliability = None;
        let Ok(Message::Announcement(decoded)) = decode_wire_announcement(wire) else { panic!("rejected") };
        assert_eq!(decoded.metrics.reliability.to_bits(), 0);
    }

    #[test]
    fn unknown_fields_are_ignored() {
        // Forward compatibility within a version: an old decoder skips fields
        // it does not know (here field 99 of the announcement).
        let message = Message::Announcement(signed_announcement());
        let mut body = wire_announcement().encode_to_vec();
        prost::encoding::string::encode(99, &"future".to_owned(), &mut body);
        let mut bytes = Vec::new();
        prost::encoding::uint32::encode(1, &PROTOCOL_VERSION, &mut bytes);
        prost::encoding::bytes::encode(2, &body, &mut bytes);
        assert_eq!(decode(&bytes, &limits()), Ok(message));
    }

    // --- limits -----------------------------------------------------------

    #[test]
    fn oversized_message_is_rejected_before_parsing() {
        let limits = DecodeLimits { max_message_bytes: 100, ..limits() };
        // Not protobuf at all: the size check must come first.
        let bytes = vec![0xff; 101];
        let error = decode(&bytes, &limits).unwrap_err();
        assert_eq!(error, DecodeError::MessageTooLarge { size: 101, limit: 100 });
        assert_eq!(error.limit_name(), "max_message_bytes");
        assert_eq!(error.to_string(), "message is 101 bytes, limit max_message_bytes is 100");
    }

    #[test]
    fn message_at_size_limit_is_accepted() {
        let bytes = encode(&Message::Announcement(signed_announcement()));
        let limits = DecodeLimits { max_message_bytes: bytes.len(), ..limits() };
        assert!(decode(&bytes, &limits).is_ok());
        let limits = DecodeLimits { max_message_bytes: bytes.len() - 1, ..limits };
        assert!(matches!(decode(&bytes, &limits), Err(DecodeError::MessageTooLarge { .. })));
    }

    #[test]
    fn long_path_is_rejected() {
        let mut announcement = announcement();
        announcement.path = (0..65).map(|i| NodeId::from(format!("n{i}"))).collect();
        let error = roundtrip(&Message::Announcement(announcement.clone())).unwrap_err();
        assert_eq!(error, DecodeError::PathTooLong { length: 65, limit: 64 });
        assert_eq!(error.limit_name(), "max_path_length");

        announcement.path.pop();
        assert!(roundtrip(&Message::Announcement(announcement)).is_ok());
    }

    #[test]
    fn long_withdrawal_path_is_rejected() {
        let mut withdrawal = withdrawal();
        withdrawal.path = (0..65).map(|i| NodeId::from(format!("n{i}"))).collect();
        assert_eq!(
            roundtrip(&Message::Withdrawal(withdrawal)),
            Err(DecodeError::PathTooLong { length: 65, limit: 64 })
        );
    }

    #[test]
    fn too_many_tags_are_rejected() {
        let mut announcement = announcement();
        announcement.tags = (0..33).map(|i| Tag::from(format!("t{i}"))).collect();
        let error = roundtrip(&Message::Announcement(announcement.clone())).unwrap_err();
        assert_eq!(error, DecodeError::TooManyTags { count: 33, limit: 32 });
        assert_eq!(error.limit_name(), "max_tags");

        announcement.tags = announcement.tags[..32].into();
        assert!(roundtrip(&Message::Announcement(announcement)).is_ok());
    }

    fn assert_string_too_long(message: Message, field: &'static str) {
        let error = roundtrip(&message).unwrap_err();
        assert_eq!(error, DecodeError::StringTooLong { field, length: 254, limit: 253 }, "field {field}");
        assert_eq!(error.limit_name(), "max_string_bytes");
    }

    #[test]
    fn every_string_is_bounded() {
        let long = "x".repeat(254);

        let mut a = announcement();
        a.destination = DestinationId::from(long.as_str());
        assert_string_too_long(Message::Announcement(a), "destination");

        let mut a = announcement();
        a.advertiser = NodeId::from(long.as_str());
        assert_string_too_long(Message::Announcement(a), "advertiser");

        let mut a = announcement();
        a.path[1] = NodeId::from(long.as_str());
        assert_string_too_long(Message::Announcement(a), "path hop");

        let mut a = announcement();
        a.tags = [a.tags[0].clone(), Tag::from(long.as_str())].into();
        assert_string_too_long(Message::Announcement(a), "tag");

        let mut a = signed_announcement();
        if let Some(signature) = a.signature.as_mut() {
            signature.key_id = KeyId::from(long.as_str());
        }
        assert_string_too_long(Message::Announcement(a), "signature.key_id");

        let mut w = withdrawal();
        w.destination = DestinationId::from(long.as_str());
        assert_string_too_long(Message::Withdrawal(w), "destination");

        let mut w = withdrawal();
        w.path[0] = NodeId::from(long.as_str());
        assert_string_too_long(Message::Withdrawal(w), "path hop");

        assert_string_too_long(Message::EndOfTable { advertiser: NodeId::from(long.as_str()) }, "advertiser");

        let mut wire = wire_announcement();
        if let Some(signature) = wire.signature.as_mut() {
            signature.algorithm = long.clone();
        }
        assert_eq!(
            decode_wire_announcement(wire),
            Err(DecodeError::StringTooLong { field: "signature.algorithm", length: 254, limit: 253 })
        );
    }

    #[test]
    fn string_limit_counts_bytes_not_chars() {
        // 127 two-byte characters: 254 bytes.
        let mut a = announcement();
        a.destination = DestinationId::from("é".repeat(127));
        assert_string_too_long(Message::Announcement(a), "destination");
    }

    #[test]
    fn string_at_limit_is_accepted() {
        let mut a = announcement();
        a.destination = DestinationId::from("x".repeat(253));
        let message = Message::Announcement(a);
        assert_eq!(roundtrip(&message), Ok(message));
    }

    #[test]
    fn limits_are_configurable() {
        let limits = DecodeLimits {
            max_message_bytes: 4096,
            max_path_length: 1,
            max_tags: 0,
            max_string_bytes: 16,
            max_links: 1,
            max_summary_entries: 0,
            max_destinations: 0,
        };
        let bytes = encode(&Message::Announcement(announcement()));
        assert_eq!(decode(&bytes, &limits), Err(DecodeError::PathTooLong { length: 2, limit: 1 }));
    }

    #[test]
    fn default_limits() {
        let limits = DecodeLimits::default();
        assert_eq!(limits.max_message_bytes, 16 * 1024);
        assert_eq!(limits.max_path_length, 64);
        assert_eq!(limits.max_tags, 32);
        assert_eq!(limits.max_string_bytes, 253);
        assert_eq!(limits.max_links, 1024);
        assert_eq!(limits.max_summary_entries, 4096);
        assert_eq!(limits.max_destinations, 4096);
    }

    // --- malformed input ----------------------------------------------------

    #[test]
    fn wrong_version_is_rejected() {
        for version in [0, 2, u32::MAX] {
            let bytes = envelope_bytes(version, Some(Body::Announcement(wire_announcement())));
            let error = decode(&bytes, &limits()).unwrap_err();
            assert_eq!(error, DecodeError::UnsupportedVersion { version, supported: PROTOCOL_VERSION });
            assert_eq!(error.limit_name(), "unsupported_version");
        }
    }

    #[test]
    fn future_version_is_reported_even_when_its_body_does_not_parse() {
        let mut bytes = Vec::new();
        prost::encoding::uint32::encode(1, &2, &mut bytes);
        // Field 2 as a varint: not a valid announcement in version 1.
        prost::encoding::uint64::encode(2, &7, &mut bytes);
        assert_eq!(
            decode(&bytes, &limits()),
            Err(DecodeError::UnsupportedVersion { version: 2, supported: PROTOCOL_VERSION })
        );
    }

    #[test]
    fn unknown_body_kind_is_missing_body() {
        // A body kind from the future (field 9, free).
        let mut bytes = Vec::new();
        prost::encoding::uint32::encode(1, &PROTOCOL_VERSION, &mut bytes);
        prost::encoding::bytes::encode(9, &vec![], &mut bytes);
        assert_eq!(decode(&bytes, &limits()), Err(DecodeError::MissingField("body")));
    }

    #[test]
    fn missing_body_is_rejected() {
        assert_eq!(decode(&envelope_bytes(PROTOCOL_VERSION, None), &limits()), Err(DecodeError::MissingField("body")));
    }

    #[test]
    fn empty_input_is_version_zero() {
        assert_eq!(
            decode(&[], &limits()),
            Err(DecodeError::UnsupportedVersion { version: 0, supported: PROTOCOL_VERSION })
        );
    }

    #[test]
    fn truncated_input_is_rejected() {
        let bytes = encode(&Message::Announcement(signed_announcement()));
        // Bytes 0..2 are the version field, then the body's key and length.
        for cut in 0..bytes.len() {
            let error = decode(&bytes[..cut], &limits()).unwrap_err();
            if cut > 2 {
                assert!(matches!(error, DecodeError::Protobuf(_)), "cut at {cut}: {error:?}");
                assert_eq!(error.limit_name(), "malformed_protobuf");
            }
        }
    }

    #[test]
    fn empty_strings_are_rejected() {
        let mut a = announcement();
        a.destination = DestinationId::from("");
        assert_eq!(roundtrip(&Message::Announcement(a)), Err(DecodeError::EmptyString("destination")));

        let mut a = announcement();
        a.advertiser = NodeId::from("");
        assert_eq!(roundtrip(&Message::Announcement(a)), Err(DecodeError::EmptyString("advertiser")));

        let mut w = withdrawal();
        w.advertiser = NodeId::from("");
        assert_eq!(roundtrip(&Message::Withdrawal(w)), Err(DecodeError::EmptyString("advertiser")));

        let end = Message::EndOfTable { advertiser: NodeId::from("") };
        assert_eq!(roundtrip(&end), Err(DecodeError::EmptyString("advertiser")));

        let mut a = announcement();
        a.path[0] = NodeId::from("");
        assert_eq!(roundtrip(&Message::Announcement(a)), Err(DecodeError::EmptyString("path hop")));

        let mut a = announcement();
        a.tags = [Tag::from(""), a.tags[1].clone()].into();
        assert_eq!(roundtrip(&Message::Announcement(a)), Err(DecodeError::EmptyString("tag")));

        let mut a = signed_announcement();
        if let Some(signature) = a.signature.as_mut() {
            signature.key_id = KeyId::from("");
        }
        let error = roundtrip(&Message::Announcement(a)).unwrap_err();
        assert_eq!(error, DecodeError::EmptyString("signature.key_id"));
        assert_eq!(error.limit_name(), "empty_string");
    }

    #[test]
    fn bad_signature_length_is_rejected() {
        for length in [0, 63, 65] {
            let mut wire = wire_announcement();
            if let Some(signature) = wire.signature.as_mut() {
                signature.signature = vec![1; length];
            }
            let error = decode_wire_announcement(wire).unwrap_err();
            assert_eq!(error, DecodeError::BadSignatureLength { length });
            assert_eq!(error.limit_name(), "bad_signature_length");
        }
    }

    #[test]
    fn unknown_signature_algorithm_is_rejected() {
        for algorithm in ["", "Ed25519", "rsa"] {
            let mut wire = wire_announcement();
            if let Some(signature) = wire.signature.as_mut() {
                signature.algorithm = algorithm.to_owned();
            }
            let error = decode_wire_announcement(wire).unwrap_err();
            assert_eq!(error, DecodeError::UnknownSignatureAlgorithm(algorithm.to_owned()));
            assert_eq!(error.limit_name(), "unknown_signature_algorithm");
        }
    }

    #[test]
    fn non_finite_reliability_is_rejected() {
        for value in [f32::NAN, f32::INFINITY, f32::NEG_INFINITY] {
            let mut a = announcement();
            a.metrics.reliability = value;
            let error = roundtrip(&Message::Announcement(a)).unwrap_err();
            assert_eq!(error, DecodeError::InvalidFloat);
            assert_eq!(error.limit_name(), "invalid_float");
        }
    }

    #[test]
    fn invalid_utf8_is_rejected() {
        let mut body = Vec::new();
        prost::encoding::bytes::encode(1, &vec![0xff, 0xfe], &mut body);
        let mut bytes = Vec::new();
        prost::encoding::uint32::encode(1, &PROTOCOL_VERSION, &mut bytes);
        prost::encoding::bytes::encode(4, &body, &mut bytes);
        assert!(matches!(decode(&bytes, &limits()), Err(DecodeError::Protobuf(_))));
    }

    #[test]
    fn error_messages_name_the_limit() {
        let error = DecodeError::StringTooLong { field: "tag", length: 300, limit: 253 };
        assert_eq!(error.to_string(), "tag is 300 bytes, limit max_string_bytes is 253");
        let error = DecodeError::PathTooLong { length: 70, limit: 64 };
        assert_eq!(error.to_string(), "path has 70 hops, limit max_path_length is 64");
        let error = DecodeError::TooManyTags { count: 40, limit: 32 };
        assert_eq!(error.to_string(), "message has 40 tags, limit max_tags is 32");
    }

    // --- link-state updates ------------------------------------------------

    fn signed_link_state_update() -> LinkStateUpdate {
        let mut update = vectors::link_state_update();
        crate::link_state::lsa::sign_update(&vectors::identity(), &mut update);
        update
    }

    fn link_state_roundtrip(update: &LinkStateUpdate) -> Result<Frame, DecodeError> {
        let mut bytes = Vec::new();
        encode_link_state_update(update, &mut bytes);
        decode_frame(&bytes, &limits())
    }

    fn decode_wire_link_state(wire: schema::LinkStateUpdate) -> Result<Frame, DecodeError> {
        decode_frame(&envelope_bytes(PROTOCOL_VERSION, Some(Body::LinkStateUpdate(wire))), &limits())
    }

    fn link_state_signature_verifies(update: &LinkStateUpdate) -> bool {
        let registry = crate::security::KeyRegistry::from_entries([vectors::identity().public_entry(
            NodeId::from(vectors::ADVERTISER),
            None,
            None,
        )]);
        let mut verifier = crate::security::Verifier::new(0);
        matches!(
            crate::link_state::lsa::verify_update(&mut verifier, &registry, crate::time::Timestamp(0), update),
            crate::link_state::lsa::UpdateAuth::Checked(crate::security::SignatureCheck::Valid { .. })
        )
    }

    #[test]
    fn signed_link_state_update_roundtrips_and_still_verifies() {
        let update = signed_link_state_update();
        let decoded = link_state_roundtrip(&update);
        assert_eq!(decoded, Ok(Frame::LinkState(update.clone())));
        let Ok(Frame::LinkState(decoded)) = decoded else { unreachable!() };
        assert!(link_state_signature_verifies(&decoded));
        // encode_frame and encode_link_state_update write the same bytes.
        let (mut by_frame, mut by_reference) = (Vec::new(), Vec::new());
        encode_frame(&Frame::LinkState(update.clone()), &mut by_frame);
        encode_link_state_update(&update, &mut by_reference);
        assert_eq!(by_frame, by_reference);
    }

    #[test]
    fn an_update_with_destinations_roundtrips_verifies_and_is_limited() {
        let mut update = vectors::link_state_update_with_destinations();
        crate::link_state::lsa::sign_update(&vectors::identity(), &mut update);
        let decoded = link_state_roundtrip(&update);
        assert_eq!(decoded, Ok(Frame::LinkState(update.clone())));
        let Ok(Frame::LinkState(decoded)) = decoded else { unreachable!() };
        assert!(link_state_signature_verifies(&decoded));

        let mut bytes = Vec::new();
        encode_link_state_update(&update, &mut bytes);
        let error = decode_frame(&bytes, &DecodeLimits { max_destinations: 1, ..limits() }).unwrap_err();
        assert_eq!(error, DecodeError::TooManyDestinations { count: 2, limit: 1 });
        assert_eq!(error.limit_name(), "max_destinations");
        // Summary destinations count with the summary entries.
        let error = decode_frame(&bytes, &DecodeLimits { max_summary_entries: 1, ..limits() }).unwrap_err();
        assert_eq!(error, DecodeError::TooManySummaryEntries { count: 2, limit: 1 });
        let mut wire = to_wire_link_state_update(&update);
        wire.destinations[0].name.clear();
        assert_eq!(decode_wire_link_state(wire), Err(DecodeError::EmptyString("destination name")));
    }

    #[test]
    fn flush_unsigned_and_empty_summary_roundtrip_exactly() {
        let flush = LinkStateUpdate { ttl_ms: 0, links: vec![], summary: None, ..vectors::link_state_update() };
        assert_eq!(link_state_roundtrip(&flush), Ok(Frame::LinkState(flush.clone())));
        // An empty summary is not "no summary": the signed bytes differ.
        let empty = LinkStateUpdate { summary: Some(AreaSummary::default()), ..flush };
        assert_eq!(link_state_roundtrip(&empty), Ok(Frame::LinkState(empty)));
    }

    #[test]
    fn link_order_on_the_wire_does_not_break_the_signature() {
        let mut wire = to_wire_link_state_update(&signed_link_state_update());
        wire.links.reverse();
        let Ok(Frame::LinkState(decoded)) = decode_wire_link_state(wire) else { panic!("rejected") };
        assert!(link_state_signature_verifies(&decoded));
    }

    #[test]
    fn changed_link_cost_breaks_the_link_state_signature() {
        let mut wire = to_wire_link_state_update(&signed_link_state_update());
        wire.links[0].cost += 1;
        let Ok(Frame::LinkState(decoded)) = decode_wire_link_state(wire) else { panic!("rejected") };
        assert!(!link_state_signature_verifies(&decoded));
    }

    #[test]
    fn link_state_reliability_keeps_negative_zero_and_refuses_non_finite() {
        let mut update = vectors::link_state_update();
        update.links[0].reliability = -0.0;
        let Ok(Frame::LinkState(decoded)) = link_state_roundtrip(&update) else { panic!("rejected") };
        assert_eq!(decoded.links[0].reliability.to_bits(), (-0.0f32).to_bits());

        let mut wire = to_wire_link_state_update(&update);
        wire.links[0].reliability = Some(f32::INFINITY);
        assert_eq!(decode_wire_link_state(wire), Err(DecodeError::InvalidFloat));
        let mut wire = to_wire_link_state_update(&update);
        if let Some(summary) = wire.summary.as_mut() {
            summary.entries[0].reliability = Some(f32::NAN);
        }
        assert_eq!(decode_wire_link_state(wire), Err(DecodeError::InvalidFloat));
    }

    #[test]
    fn link_and_summary_counts_are_limited() {
        let update = vectors::link_state_update();
        let mut bytes = Vec::new();
        encode_link_state_update(&update, &mut bytes);
        let tight = DecodeLimits { max_links: 1, ..limits() };
        let error = decode_frame(&bytes, &tight).unwrap_err();
        assert_eq!(error, DecodeError::TooManyLinks { count: 2, limit: 1 });
        assert_eq!(error.limit_name(), "max_links");
        assert!(decode_frame(&bytes, &DecodeLimits { max_links: 2, ..limits() }).is_ok());

        let error = decode_frame(&bytes, &DecodeLimits { max_summary_entries: 0, ..limits() }).unwrap_err();
        assert_eq!(error, DecodeError::TooManySummaryEntries { count: 1, limit: 0 });
        assert_eq!(error.limit_name(), "max_summary_entries");
        assert_eq!(error.to_string(), "link-state update has 1 summary entries, limit max_summary_entries is 0");
    }

    #[test]
    fn every_link_state_string_is_bounded_and_non_empty() {
        let long = "x".repeat(254);
        type Edit = fn(&mut schema::LinkStateUpdate, String);
        let edits: [(&str, Edit); 5] = [
            ("origin", |w, v| w.origin = v),
            ("area", |w, v| w.area = v),
            ("link neighbor", |w, v| w.links[1].neighbor = v),
            ("summary destination", |w, v| w.summary.as_mut().expect("summary").entries[0].destination = v),
            ("summary source_area", |w, v| w.summary.as_mut().expect("summary").entries[0].source_area = v),
        ];
        for (field, edit) in edits {
            let mut wire = to_wire_link_state_update(&vectors::link_state_update());
            edit(&mut wire, long.clone());
            let error = DecodeError::StringTooLong { field, length: 254, limit: 253 };
            assert_eq!(decode_wire_link_state(wire), Err(error), "{field}");
            let mut wire = to_wire_link_state_update(&vectors::link_state_update());
            edit(&mut wire, String::new());
            assert_eq!(decode_wire_link_state(wire), Err(DecodeError::EmptyString(field)), "{field}");
        }
        let mut wire = to_wire_link_state_update(&signed_link_state_update());
        wire.signature.as_mut().expect("signed").signature.pop();
        assert_eq!(decode_wire_link_state(wire), Err(DecodeError::BadSignatureLength { length: 63 }));
    }

    #[test]
    fn the_path_vector_decoder_does_not_take_link_state_updates() {
        let mut bytes = Vec::new();
        encode_link_state_update(&vectors::link_state_update(), &mut bytes);
        assert_eq!(decode(&bytes, &limits()), Err(DecodeError::MissingField("body")));
    }

    // --- canonical bytes are independent of the wire encoding --------------

    #[test]
    fn tag_order_and_duplicates_on_the_wire_do_not_break_the_signature() {
        let mut wire = wire_announcement();
        wire.tags = vec!["eu".into(), "gold".into(), "eu".into()];
        let Ok(Message::Announcement(decoded)) = decode_wire_announcement(wire) else { panic!("rejected") };
        assert!(announcement_signature_verifies(&vectors::identity().verifying_key(), &decoded));
    }

    #[test]
    fn changed_field_breaks_the_signature() {
        let mut wire = wire_announcement();
        wire.cost += 1;
        let Ok(Message::Announcement(decoded)) = decode_wire_announcement(wire) else { panic!("rejected") };
        assert!(!announcement_signature_verifies(&vectors::identity().verifying_key(), &decoded));
    }

    // --- the .proto file documents exactly this schema ---------------------

    /// The schema module's source: from `pub mod schema` to the next
    /// top-level closing brace.
    fn schema_source(source: &str) -> &str {
        let start = source.find("pub mod schema {").expect("schema module");
        let length = source[start..].find("\n}\n").expect("end of schema module");
        &source[start..start + length]
    }

    fn snake_case(name: &str) -> String {
        let mut out = String::new();
        for (index, c) in name.chars().enumerate() {
            if c.is_ascii_uppercase() && index > 0 {
                out.push('_');
            }
            out.push(c.to_ascii_lowercase());
        }
        out
    }

    /// The `.proto` line expected for a `#[prost(args)]` attribute followed
    /// by `item` (a struct field `pub name: Type,` or a oneof variant
    /// `Variant(Type),`).
    fn expected_proto_line(args: &str, item: &str) -> String {
        let parts: Vec<&str> = args.split(", ").collect();
        let tag = parts.iter().find_map(|part| part.strip_prefix("tag = \"")).expect("tag").trim_end_matches('"');
        let (name, rust_type) = match item.strip_prefix("pub ") {
            Some(field) => field.split_once(": ").expect("field"),
            None => item.split_once('(').expect("variant"),
        };
        let name = if item.starts_with("pub ") { name.to_owned() } else { snake_case(name) };
        let rust_type = rust_type.trim_end_matches(',').trim_end_matches(')');
        let inner_type = rust_type.trim_start_matches("Option<").trim_start_matches("Vec<").trim_end_matches('>');
        let proto_type = match parts[0] {
            "message" => inner_type,
            "bytes = \"vec\"" => "bytes",
            scalar => scalar,
        };
        let label = if parts.contains(&"repeated") {
            "repeated "
        } else if parts.contains(&"optional") && parts[0] != "message" {
            "optional "
        } else {
            ""
        };
        format!("{label}{proto_type} {name} = {tag};")
    }

    /// (enclosing proto block, expected line) for every field of the schema.
    fn schema_fields(source: &str) -> Vec<(String, String)> {
        let mut fields = Vec::new();
        let mut block = String::new();
        let mut lines = schema_source(source).lines().map(str::trim);
        while let Some(line) = lines.next() {
            let first_word = |rest: &str| rest.split([' ', '{']).next().unwrap_or("").to_owned();
            if let Some(rest) = line.strip_prefix("pub struct ").or_else(|| line.strip_prefix("pub(super) struct ")) {
                block = format!("message {}", first_word(rest));
            } else if let Some(rest) = line.strip_prefix("pub enum ") {
                block = format!("oneof {}", snake_case(&first_word(rest)));
            } else if let Some(args) = line.strip_prefix("#[prost(").and_then(|l| l.strip_suffix(")]")) {
                let item = lines.next().expect("item after attribute");
                if args.starts_with("oneof") {
                    let name = item.trim_start_matches("pub ").split(':').next().unwrap_or("");
                    fields.push((block.clone(), format!("oneof {name} {{")));
                } else {
                    fields.push((block.clone(), expected_proto_line(args, item)));
                }
            }
        }
        // Internal helper type, not part of the documented schema.
        fields.retain(|(block, _)| block != "message VersionOnly");
        fields
    }

    /// The code lines (comments stripped) of `block {` ... `}` in the proto.
    fn proto_block(proto: &str, block: &str) -> Vec<String> {
        let code: Vec<String> =
            proto.lines().map(|line| line.split("//").next().unwrap_or("").trim().to_owned()).collect();
        let opening = format!("{block} {{");
        let start = code.iter().position(|line| *line == opening).unwrap_or_else(|| panic!("no `{opening}` in proto"));
        let mut depth = 0;
        let mut lines = Vec::new();
        for line in &code[start..] {
            depth += line.matches('{').count();
            depth -= line.matches('}').count();
            lines.push(line.clone());
            if depth == 0 {
                break;
            }
        }
        lines
    }

    #[test]
    fn proto_file_documents_the_schema() {
        let source = include_str!("wire.rs");
        let proto = include_str!("../proto/fabric_routing.proto");
        let fields = schema_fields(source);
        // Guard against a parser that silently finds nothing.
        assert!(fields.contains(&("message RouteAnnouncement".to_owned(), "uint64 epoch = 8;".to_owned())));
        assert!(fields.contains(&("oneof body".to_owned(), "EndOfTable end_of_table = 4;".to_owned())));
        assert!(fields.contains(&("message RouteAnnouncement".to_owned(), "Signature signature = 11;".to_owned())));
        assert!(fields.contains(&("message Signature".to_owned(), "bytes signature = 3;".to_owned())));
        assert!(fields.contains(&("oneof body".to_owned(), "LinkStateUpdate link_state_update = 8;".to_owned())));
        assert!(fields.contains(&("message LinkStateUpdate".to_owned(), "repeated LinkAdvert links = 5;".to_owned())));
        assert!(fields.contains(&("message LinkAdvert".to_owned(), "optional float reliability = 4;".to_owned())));
        for (block, line) in &fields {
            assert!(proto_block(proto, block).contains(line), "proto/fabric_routing.proto: `{block}` lacks `{line}`");
        }
        // And nothing more: every numbered field in the proto is in wire.rs.
        let numbered = proto
            .lines()
            .map(|line| line.split("//").next().unwrap_or(""))
            .filter_map(|line| line.trim().strip_suffix(';')?.rsplit_once(" = "))
            .filter(|(_, number)| number.parse::<u32>().is_ok())
            .count();
        let rust_numbered = fields.iter().filter(|(_, line)| line.ends_with(';')).count();
        assert_eq!(numbered, rust_numbered, "proto/fabric_routing.proto has fields that wire.rs lacks");
    }

    // --- vectors -------------------------------------------------------------

    #[test]
    fn vectors_are_deterministic_and_verify() {
        assert_eq!(vectors::test_vectors_markdown(), vectors::test_vectors_markdown());
        for vector in vectors::test_vectors() {
            let key = VerifyingKey::from_bytes(&vector.public_key).expect("public key");
            let signature = Signature::from_bytes(&vector.signature);
            assert!(key.verify_strict(&vector.canonical, &signature).is_ok(), "{}", vector.title);
            assert_eq!(decode_frame(&vector.wire, &limits()), Ok(vector.frame.clone()));
        }
    }

    #[test]
    fn annotated_canonical_fields_match_the_canonical_bytes() {
        for vector in vectors::test_vectors() {
            let joined: Vec<u8> = vector
                .canonical_fields
                .iter()
                .flat_map(|field| field.prefix.iter().chain(&field.value).copied())
                .collect();
            assert_eq!(joined, vector.canonical, "{}", vector.title);
        }
    }

    // --- properties ----------------------------------------------------------

    fn identifier_string() -> impl Strategy<Value = String> {
        prop_oneof!["[a-z0-9][a-z0-9.-]{0,15}", "\\PC{1,8}"]
    }

    fn node() -> impl Strategy<Value = NodeId> {
        identifier_string().prop_map(NodeId::from)
    }

    fn finite_f32() -> impl Strategy<Value = f32> {
        use proptest::num::f32::{NEGATIVE, NORMAL, POSITIVE, SUBNORMAL, ZERO};
        POSITIVE | NEGATIVE | NORMAL | SUBNORMAL | ZERO
    }

    fn signature_block() -> impl Strategy<Value = SignatureBlock> {
        (identifier_string(), proptest::array::uniform::<_, 64>(any::<u8>())).prop_map(|(key_id, bytes)| {
            SignatureBlock { algorithm: SignatureAlgorithm::Ed25519, key_id: KeyId::from(key_id), bytes }
        })
    }

    fn arbitrary_announcement() -> impl Strategy<Value = RouteAnnouncement> {
        (
            identifier_string(),
            proptest::collection::vec(node(), 0..=8),
            any::<u32>(),
            (any::<u32>(), any::<u32>(), finite_f32()),
            node(),
            (any::<u64>(), proptest::option::of(any::<u64>())),
            any::<u32>(),
            proptest::collection::vec(identifier_string(), 0..=6),
            proptest::option::of(signature_block()),
        )
            .prop_map(
                |(
                    destination,
                    path,
                    hop_count,
                    (cost, latency_us, reliability),
                    advertiser,
                    (epoch, issued_at_ms),
                    ttl_ms,
                    tags,
                    signature,
                )| {
                    RouteAnnouncement {
                        destination: DestinationId::from(destination),
                        path,
                        hop_count,
                        metrics: RouteMetrics { cost, latency_us, reliability },
                        advertiser,
                        epoch,
                        ttl_ms,
                        issued_at_ms,
                        tags: tags.into_iter().map(Tag::from).collect(),
                        signature: signature.map(Box::new),
                    }
                },
            )
    }

    fn arbitrary_withdrawal() -> impl Strategy<Value = RouteWithdrawal> {
        (
            identifier_string(),
            proptest::collection::vec(node(), 0..=8),
            node(),
            (any::<u64>(), proptest::option::of(any::<u64>())),
            proptest::option::of(signature_block()),
        )
            .prop_map(|(destination, path, advertiser, (epoch, issued_at_ms), signature)| RouteWithdrawal {
                destination: DestinationId::from(destination),
                path,
                advertiser,
                epoch,
                issued_at_ms,
                signature: signature.map(Box::new),
            })
    }

    fn arbitrary_message() -> impl Strategy<Value = Message> {
        prop_oneof![
            arbitrary_announcement().prop_map(Message::Announcement),
            arbitrary_withdrawal().prop_map(Message::Withdrawal),
            node().prop_map(|advertiser| Message::EndOfTable { advertiser }),
        ]
    }

    fn area() -> impl Strategy<Value = AreaId> {
        identifier_string().prop_map(AreaId::from)
    }

    fn arbitrary_link() -> impl Strategy<Value = LinkAdvert> {
        (node(), any::<u32>(), any::<u32>(), finite_f32()).prop_map(|(neighbor, cost, latency_us, reliability)| {
            LinkAdvert { neighbor, cost, latency_us, reliability }
        })
    }

    fn arbitrary_summary_entry() -> impl Strategy<Value = SummaryEntry> {
        (node(), area(), any::<u32>(), any::<u32>(), finite_f32()).prop_map(
            |(destination, source_area, cost, latency_us, reliability)| SummaryEntry {
                destination,
                source_area,
                cost,
                latency_us,
                reliability,
            },
        )
    }

    fn arbitrary_destination() -> impl Strategy<Value = DestinationAdvert> {
        ("[a-z0-9-]{1,12}", any::<u32>(), proptest::collection::vec("[a-z]{1,6}", 0..=3)).prop_map(
            |(name, metric, tags)| DestinationAdvert {
                name: DestinationId::from(name),
                metric,
                tags: tags.into_iter().map(Tag::from).collect(),
            },
        )
    }

    fn arbitrary_summary_destination() -> impl Strategy<Value = SummaryDestination> {
        ("[a-z0-9-]{1,12}", area(), any::<u32>(), proptest::collection::vec("[a-z]{1,6}", 0..=3)).prop_map(
            |(name, source_area, cost, tags)| SummaryDestination {
                name: DestinationId::from(name),
                source_area,
                cost,
                tags: tags.into_iter().map(Tag::from).collect(),
            },
        )
    }

    /// Structurally anything the decoder accepts; the router's own checks
    /// (self links, duplicates, zero costs) are not the decoder's business.
    fn arbitrary_link_state_update() -> impl Strategy<Value = LinkStateUpdate> {
        (
            node(),
            area(),
            any::<u64>(),
            any::<u32>(),
            proptest::collection::vec(arbitrary_link(), 0..=6),
            proptest::option::of((
                proptest::collection::vec(arbitrary_summary_entry(), 0..=4),
                proptest::collection::vec(arbitrary_summary_destination(), 0..=3),
            )),
            proptest::collection::vec(arbitrary_destination(), 0..=3),
            proptest::option::of(signature_block()),
        )
            .prop_map(|(origin, area, sequence, ttl_ms, links, summary, destinations, signature)| {
                LinkStateUpdate {
                    origin,
                    area,
                    sequence,
                    ttl_ms,
                    links,
                    summary: summary.map(|(entries, destinations)| AreaSummary { entries, destinations }),
                    destinations,
                    signature,
                }
            })
    }

    /// Drops repeated neighbors and summary entries. The router refuses
    /// such updates before checking signatures; for them the canonical order
    /// (by neighbor, by source area and destination) is not total.
    fn without_duplicates(mut update: LinkStateUpdate) -> LinkStateUpdate {
        let mut neighbors = std::collections::BTreeSet::new();
        update.links.retain(|link| neighbors.insert(link.neighbor.clone()));
        if let Some(summary) = update.summary.as_mut() {
            let mut keys = std::collections::BTreeSet::new();
            summary.entries.retain(|entry| keys.insert((entry.source_area.clone(), entry.destination.clone())));
            let mut keys = std::collections::BTreeSet::new();
            summary.destinations.retain(|d| keys.insert((d.source_area.clone(), d.name.clone())));
        }
        // The signature covers destinations in the order given, so any
        // order verifies; the router refuses unsorted lists separately.
        update
    }

    fn arbitrary_frame() -> impl Strategy<Value = Frame> {
        prop_oneof![
            arbitrary_message().prop_map(Frame::Routing),
            arbitrary_link_state_update().prop_map(Frame::LinkState),
            (node(), any::<u32>()).prop_map(|(node_id, hold_time_ms)| Frame::Hello { node_id, hold_time_ms }),
            Just(Frame::Keepalive),
            ("[a-z ]{0,20}", any::<bool>()).prop_map(|(reason, restarting)| Frame::Close { reason, restarting }),
        ]
    }

    fn encode_to_vec(frame: &Frame) -> Vec<u8> {
        let mut bytes = Vec::new();
        encode_frame(frame, &mut bytes);
        bytes
    }

    /// Every float of a link-state update as bits (PartialEq treats -0.0
    /// and 0.0 as equal; signatures do not).
    fn link_state_float_bits(frame: &Frame) -> Vec<u32> {
        let Frame::LinkState(update) = frame else { return Vec::new() };
        let links = update.links.iter().map(|l| l.reliability.to_bits());
        links.chain(update.summary.iter().flat_map(|s| &s.entries).map(|e| e.reliability.to_bits())).collect()
    }

    fn reliability_bits(message: &Message) -> Option<u32> {
        match message {
            Message::Announcement(a) => Some(a.metrics.reliability.to_bits()),
            _ => None,
        }
    }

    proptest! {
        #[test]
        fn decode_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..=4096)) {
            let _ = decode(&bytes, &limits());
        }

        #[test]
        fn decode_never_panics_on_damaged_messages(
            message in arbitrary_message(),
            cut in any::<prop::sample::Index>(),
            flip in any::<prop::sample::Index>(),
            byte in any::<u8>(),
        ) {
            let mut bytes = encode(&message);
            let at = flip.index(bytes.len());
            bytes[at] ^= byte;
            let _ = decode(&bytes, &limits());
            let _ = decode(&bytes[..cut.index(bytes.len() + 1)], &limits());
        }

        #[test]
        fn decode_frame_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..=4096)) {
            let _ = decode_frame(&bytes, &limits());
        }

        #[test]
        fn decode_frame_never_panics_on_damaged_frames(
            frame in arbitrary_frame(),
            cut in any::<prop::sample::Index>(),
            flip in any::<prop::sample::Index>(),
            byte in any::<u8>(),
        ) {
            let mut bytes = encode_to_vec(&frame);
            let at = flip.index(bytes.len());
            bytes[at] ^= byte;
            let _ = decode_frame(&bytes, &limits());
            let _ = decode_frame(&bytes[..cut.index(bytes.len() + 1)], &limits());
        }

        #[test]
        fn valid_frames_roundtrip_exactly(frame in arbitrary_frame()) {
            let bytes = encode_to_vec(&frame);
            let decoded = decode_frame(&bytes, &limits());
            prop_assert_eq!(decoded.as_ref(), Ok(&frame));
            let decoded = decoded.expect("checked above");
            prop_assert_eq!(link_state_float_bits(&decoded), link_state_float_bits(&frame));
            prop_assert_eq!(encode_to_vec(&decoded), bytes);
        }

        #[test]
        fn link_state_signatures_survive_reencoding(
            update in arbitrary_link_state_update(),
            secret in proptest::array::uniform32(any::<u8>()),
            key_id in identifier_string(),
        ) {
            let identity = SigningIdentity::from_secret_bytes(KeyId::from(key_id), &secret);
            let mut update = without_duplicates(update);
            crate::link_state::lsa::sign_update(&identity, &mut update);
            // Another encoder may order the links differently.
            let mut wire = to_wire_link_state_update(&update);
            wire.links.reverse();
            let Ok(Frame::LinkState(decoded)) = decode_wire_link_state(wire) else {
                return Err(TestCaseError::fail("update rejected"));
            };
            let block = decoded.signature.clone().expect("signed");
            let canonical = crate::link_state::lsa::link_state_update_bytes(&decoded, block.algorithm, &block.key_id);
            prop_assert!(verify(&identity.verifying_key(), &canonical, &block));
        }

        #[test]
        fn valid_messages_roundtrip_exactly(message in arbitrary_message()) {
            let bytes = encode(&message);
            let decoded = decode(&bytes, &limits());
            prop_assert_eq!(decoded.as_ref(), Ok(&message));
            let decoded = decoded.expect("checked above");
            // PartialEq treats -0.0 and 0.0 as equal; signatures do not.
            prop_assert_eq!(reliability_bits(&decoded), reliability_bits(&message));
            prop_assert_eq!(encode(&decoded), bytes);
        }

        #[test]
        fn signatures_survive_reencoding(
            announcement in arbitrary_announcement(),
            withdrawal in arbitrary_withdrawal(),
            secret in proptest::array::uniform32(any::<u8>()),
            key_id in identifier_string(),
        ) {
            let identity = SigningIdentity::from_secret_bytes(KeyId::from(key_id), &secret);
            let key = identity.verifying_key();

            let mut announcement = announcement;
            identity.sign_announcement(&mut announcement);
            // Another encoder may order and repeat tags differently.
            let mut wire = to_wire_announcement(&announcement);
            wire.tags.reverse();
            if let Some(first) = wire.tags.first().cloned() {
                wire.tags.push(first);
            }
            let Ok(Message::Announcement(decoded)) = decode_wire_announcement(wire) else {
                return Err(TestCaseError::fail("announcement rejected"));
            };
            prop_assert!(announcement_signature_verifies(&key, &decoded));
            let Ok(Message::Announcement(again)) = roundtrip(&Message::Announcement(decoded)) else {
                return Err(TestCaseError::fail("re-encoded announcement rejected"));
            };
            prop_assert!(announcement_signature_verifies(&key, &again));

            let mut withdrawal = withdrawal;
            identity.sign_withdrawal(&mut withdrawal);
            let Ok(Message::Withdrawal(decoded)) = roundtrip(&Message::Withdrawal(withdrawal)) else {
                return Err(TestCaseError::fail("withdrawal rejected"));
            };
            prop_assert!(withdrawal_signature_verifies(&key, &decoded));
        }
    }
}
