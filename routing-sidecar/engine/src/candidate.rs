//! One stored route: what a neighbor told us about a destination, kept
//! whether or not it is currently usable, so that a policy reload or the end
//! of a hold-down can bring it back without a re-announcement.

use smallvec::SmallVec;

use crate::intern::{DestIx, NodeIx, TagSetIx};
use fabric_core::message::RouteMetrics;
use fabric_core::stats::RejectReason;
use fabric_core::time::Timestamp;

/// (destination, next hop): the key of hold-down, dampening, epochs and
/// candidates (a neighbor advertises at most one route per destination).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) struct RouteKey {
    pub destination: DestIx,
    pub next_hop: NodeIx,
}

/// Why a stored candidate may not be selected right now.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Ineligibility {
    /// Security settings reject it (unsigned while required, or an
    /// advertiser outside `allowedAdvertisers`).
    Security(RejectReason),
    /// Import policy rejects it.
    Policy(RejectReason),
    HeldDown,
    Suppressed,
}

impl Ineligibility {
    pub(crate) fn reason(self) -> RejectReason {
        match self {
            Ineligibility::Security(reason) | Ineligibility::Policy(reason) => reason,
            Ineligibility::HeldDown => RejectReason::HoldDown,
            Ineligibility::Suppressed => RejectReason::Suppressed,
        }
    }
}

/// Bit flags of a candidate.
pub(crate) mod flags {
    /// Originated by this node.
    pub(crate) const LOCAL: u8 = 1 << 0;
    /// Carried a signature that verified against a trusted key.
    pub(crate) const SIGNED: u8 = 1 << 1;
    /// Learned before the neighbor's graceful restart, not yet refreshed.
    pub(crate) const STALE: u8 = 1 << 2;
    /// A dry-run policy would have rejected it.
    pub(crate) const DRY_RUN_FLAGGED: u8 = 1 << 3;
}

/// Path hops inline up to four (the common fabric depth) without a heap
/// allocation.
pub(crate) type Path = SmallVec<[NodeIx; 4]>;

#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Candidate {
    pub next_hop: NodeIx,
    pub tags: TagSetIx,
    /// As received: `path[0]` is the next hop, the last hop the origin.
    /// Empty for local routes.
    pub path: Path,
    /// As received, before the link to the next hop is added (so a change
    /// of link metrics on reload applies without re-announcement).
    pub metrics: RouteMetrics,
    pub hop_count: u32,
    pub flags: u8,
    pub ineligible: Option<Ineligibility>,
    pub epoch: u64,
    pub expires_at: Timestamp,
    pub received_at: Timestamp,
}

impl Candidate {
    pub(crate) fn is(&self, flag: u8) -> bool {
        self.flags & flag != 0
    }

    pub(crate) fn set(&mut self, flag: u8, on: bool) {
        if on {
            self.flags |= flag;
        } else {
            self.flags &= !flag;
        }
    }

    pub(crate) fn eligible(&self) -> bool {
        self.ineligible.is_none()
    }

    /// Same route content (what a refresh must repeat exactly).
    pub(crate) fn same_content(&self, other: &Candidate) -> bool {
        self.path == other.path
            && self.metrics == other.metrics
            && self.hop_count == other.hop_count
            && self.tags == other.tags
    }

    pub(crate) fn origin(&self) -> Option<NodeIx> {
        self.path.last().copied()
    }
}

/// Everything stored about one destination.
#[derive(Clone, Debug, Default)]
pub(crate) struct DestinationEntry {
    pub candidates: Vec<Candidate>,
    /// Index into `candidates` of the selected route.
    pub best: Option<u32>,
    /// Neighbors we currently advertise this destination to.
    pub advertised_to: SmallVec<[NodeIx; 4]>,
    pub pending: Pending,
    /// What the last reported best route looked like, to detect changes.
    pub reported: Option<Fingerprint>,
}

/// Identity of a selected route for change detection: a new next hop, a
/// new epoch (any re-announcement) or new effective metrics is a change.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct Fingerprint {
    pub next_hop: NodeIx,
    pub epoch: u64,
    pub metrics: RouteMetrics,
}

/// Work queued for the next flush of outgoing messages.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Pending {
    #[default]
    Nothing,
    /// Export decisions may have changed (policy reload, neighbor up).
    RecheckExport,
    /// The best route changed: re-advertise to everyone it is exported to.
    Readvertise,
}

impl DestinationEntry {
    pub(crate) fn best(&self) -> Option<&Candidate> {
        self.best.map(|i| &self.candidates[i as usize])
    }

    pub(crate) fn position(&self, next_hop: NodeIx) -> Option<usize> {
        self.candidates.iter().position(|c| c.next_hop == next_hop)
    }
}
