//! Route messages as the engine sees them, after decoding and before any
//! validation. Field meanings are specified in `docs/protocol.md`.

use serde::{Deserialize, Serialize};

use crate::ids::{DestinationId, KeyId, NodeId, Tag};

/// Signature algorithms the protocol knows. Only ed25519 today; the field
/// exists so that a second algorithm can be introduced without a new version.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SignatureAlgorithm {
    Ed25519,
}

impl SignatureAlgorithm {
    pub fn as_str(self) -> &'static str {
        match self {
            SignatureAlgorithm::Ed25519 => "ed25519",
        }
    }
}

/// A detached signature over the canonical bytes of a message
/// (`crate::canonical`), made by the advertiser with key `key_id`.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct SignatureBlock {
    pub algorithm: SignatureAlgorithm,
    pub key_id: KeyId,
    pub bytes: [u8; 64],
}

/// Path metrics accumulated hop by hop. Lower cost and latency are better,
/// higher reliability is better.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize, Default)]
pub struct RouteMetrics {
    /// Additive path cost; the primary selection score (lower wins).
    pub cost: u32,
    /// Accumulated one-way latency in microseconds.
    pub latency_us: u32,
    /// Probability that the path delivers, in [0, 1]; multiplied per hop.
    pub reliability: f32,
}

/// "Destination D is reachable through me along `path`."
///
/// `path[0]` is the advertiser (the neighbor that sent it) and the last
/// element is the origin. Each hop re-signs what it advertises, so a
/// signature authenticates the advertiser, not the origin; origins are
/// authorised by policy.
#[derive(Clone, Debug, PartialEq)]
pub struct RouteAnnouncement {
    pub destination: DestinationId,
    pub path: Vec<NodeId>,
    pub hop_count: u32,
    pub metrics: RouteMetrics,
    pub advertiser: NodeId,
    /// Per-advertiser sequence; must grow with every message the advertiser
    /// sends about a destination. Older or replayed epochs are rejected.
    pub epoch: u64,
    /// How long the receiver may keep the route without a refresh.
    pub ttl_ms: u32,
    /// When the advertiser made (and signed) it, Unix ms: protocol v2,
    /// signed; receivers refuse one older than its validity, so a recorded
    /// announcement cannot be replayed once its tombstone is gone.
    /// `None`: a v1 message (docs/protocol.md, "Versions").
    pub issued_at_ms: Option<u64>,
    /// A set: order on the wire does not matter, the canonical encoding sorts.
    /// Shared: a session hands the engine one list per distinct tag set
    /// (`SharedIds`), and the engine advertises one per set and flush.
    pub tags: std::sync::Arc<[Tag]>,
    /// Boxed: inline it would take 80 of the message's bytes, which every
    /// move of an unsigned message (decoded, batched, handed to the
    /// engine) would copy too.
    pub signature: Option<Box<SignatureBlock>>,
}

/// "Forget the route to D that I advertised to you."
#[derive(Clone, Debug, PartialEq)]
pub struct RouteWithdrawal {
    pub destination: DestinationId,
    /// The path being withdrawn, as it was advertised (informational: the
    /// withdrawal applies to whatever route the advertiser gave for D).
    pub path: Vec<NodeId>,
    pub advertiser: NodeId,
    pub epoch: u64,
    /// As [`RouteAnnouncement::issued_at_ms`].
    pub issued_at_ms: Option<u64>,
    /// Boxed, as an announcement's.
    pub signature: Option<Box<SignatureBlock>>,
}

/// One protocol message between neighbors.
#[derive(Clone, Debug, PartialEq)]
pub enum Message {
    Announcement(RouteAnnouncement),
    Withdrawal(RouteWithdrawal),
    /// The sender has sent its whole table after (re)connecting; the
    /// receiver purges routes still marked stale from before the restart.
    EndOfTable {
        advertiser: NodeId,
    },
}

impl Message {
    pub fn advertiser(&self) -> &NodeId {
        match self {
            Message::Announcement(a) => &a.advertiser,
            Message::Withdrawal(w) => &w.advertiser,
            Message::EndOfTable { advertiser } => advertiser,
        }
    }

    /// The destination an announcement or withdrawal is about.
    pub fn destination(&self) -> Option<&DestinationId> {
        match self {
            Message::Announcement(a) => Some(&a.destination),
            Message::Withdrawal(w) => Some(&w.destination),
            Message::EndOfTable { .. } => None,
        }
    }

    pub fn signature(&self) -> Option<&SignatureBlock> {
        match self {
            Message::Announcement(a) => a.signature.as_deref(),
            Message::Withdrawal(w) => w.signature.as_deref(),
            Message::EndOfTable { .. } => None,
        }
    }
}
