//! `explain`: why the selected route won, why each other candidate lost or
//! is not eligible, and the recent rejections for the destination.

use std::cmp::Ordering;

use serde::Serialize;

use crate::Engine;
use crate::candidate::{Candidate, Ineligibility, RouteKey, flags};
use crate::intern::DestIx;
use crate::selection::{Criterion, compare, loss_detail};
use fabric_core::ids::{DestinationId, NodeId, Tag};
use fabric_core::message::RouteMetrics;
use fabric_core::stats::RejectReason;
use fabric_core::time::Timestamp;

/// A message that was not stored, remembered for explain.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct RejectionRecord {
    pub at: Timestamp,
    pub destination: Option<DestinationId>,
    pub from: NodeId,
    pub reason: RejectReason,
    pub detail: String,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum CandidateStatus {
    Selected,
    /// Eligible, but `winner` is preferred by `criterion`.
    Lost {
        winner: NodeId,
        criterion: Criterion,
        detail: String,
    },
    /// Stored but not usable now.
    Ineligible {
        reason: RejectReason,
        detail: String,
        until: Option<Timestamp>,
    },
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct CandidateTrace {
    pub next_hop: NodeId,
    pub path: Vec<NodeId>,
    pub hop_count: u32,
    /// Including the link to the next hop.
    pub metrics: RouteMetrics,
    pub tags: Vec<Tag>,
    pub epoch: u64,
    pub received_at: Timestamp,
    /// `None` for local routes, which never expire.
    pub expires_at: Option<Timestamp>,
    pub local: bool,
    pub signed: bool,
    pub stale: bool,
    /// A dry-run policy would reject this route (it is used anyway).
    pub dry_run_violation: Option<String>,
    #[serde(flatten)]
    pub status: CandidateStatus,
}

/// The full story of one destination's selection.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct SelectionTrace {
    pub destination: DestinationId,
    pub evaluated_at: Timestamp,
    /// Criteria in the order they are applied.
    pub order: Vec<&'static str>,
    pub selected: Option<NodeId>,
    /// Selected first, then the other eligible candidates in preference
    /// order, then the ineligible ones by next hop.
    pub candidates: Vec<CandidateTrace>,
    /// Messages for this destination rejected before being stored, newest last.
    pub rejections: Vec<RejectionRecord>,
    /// Why the selected route is not advertised to any neighbor, when a
    /// limit forbids it (policy refusals per neighbor are not listed).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub not_exported: Option<String>,
}

impl Engine {
    /// Explains the selection for `destination`; `None` if the engine has
    /// never heard of it and has no rejection for it.
    pub fn explain(&self, destination: &str, now: Timestamp) -> Option<SelectionTrace> {
        let rejections: Vec<RejectionRecord> = self
            .rejections
            .iter()
            .filter(|r| r.destination.as_ref().is_some_and(|d| d.as_str() == destination))
            .cloned()
            .collect();
        let dest = self.destinations.get(destination);
        if dest.is_none() && rejections.is_empty() {
            return None;
        }
        let mut order = vec!["local_origin", "score"];
        order.extend(self.compiled.tie_breakers.iter().map(|t| t.label()));
        if !order.contains(&"advertiser") {
            order.push("advertiser");
        }
        let mut trace = SelectionTrace {
            destination: DestinationId::new(destination),
            evaluated_at: now,
            order,
            selected: None,
            candidates: Vec::new(),
            rejections,
            not_exported: None,
        };
        let Some(dest) = dest else { return Some(trace) };
        let entry = &self.table[dest.index()];
        let winner = entry.best();
        trace.selected = winner.map(|w| self.next_hop_id(w));
        let limit = self.config.limits.max_path_length;
        trace.not_exported = winner.and_then(|w| {
            if w.path.len() + 1 > limit {
                return Some(format!(
                    "path has {} hop(s); advertised it would have {}, over limits.maxPathLength {limit}: a neighbor \
                     with the same limits would refuse it",
                    w.path.len(),
                    w.path.len() + 1
                ));
            }
            self.announcement_over_frame_limit(now, dest).map(|bytes| {
                format!(
                    "its announcement would take {bytes} bytes, over limits.maxMessageBytes {}: a neighbor would \
                     refuse the frame",
                    self.config.limits.max_message_bytes
                )
            })
        });
        let mut eligible: Vec<&Candidate> = entry.candidates.iter().filter(|c| c.eligible()).collect();
        eligible.sort_by(|a, b| compare(&self.ranked(a), &self.ranked(b), &self.compiled.tie_breakers, &self.nodes).0);
        let mut ineligible: Vec<&Candidate> = entry.candidates.iter().filter(|c| !c.eligible()).collect();
        ineligible.sort_by(|a, b| self.nodes.resolve(a.next_hop).cmp(self.nodes.resolve(b.next_hop)));
        for candidate in eligible.into_iter().chain(ineligible) {
            let status = self.status_of(dest, candidate, winner, now);
            trace.candidates.push(self.candidate_trace(dest, candidate, status));
        }
        Some(trace)
    }

    fn next_hop_id(&self, candidate: &Candidate) -> NodeId {
        if candidate.is(flags::LOCAL) {
            self.config.node_id.clone()
        } else {
            self.nodes.resolve(candidate.next_hop).clone()
        }
    }

    fn status_of(
        &self,
        dest: DestIx,
        candidate: &Candidate,
        winner: Option<&Candidate>,
        now: Timestamp,
    ) -> CandidateStatus {
        let key = RouteKey { destination: dest, next_hop: candidate.next_hop };
        match candidate.ineligible {
            None => match winner {
                Some(w) if w.next_hop != candidate.next_hop => {
                    let (winner_ranked, loser_ranked) = (self.ranked(w), self.ranked(candidate));
                    let (ordering, criterion) =
                        compare(&winner_ranked, &loser_ranked, &self.compiled.tie_breakers, &self.nodes);
                    debug_assert_eq!(ordering, Ordering::Less);
                    CandidateStatus::Lost {
                        winner: self.next_hop_id(w),
                        criterion,
                        detail: loss_detail(criterion, &winner_ranked, &loser_ranked, &self.nodes),
                    }
                }
                _ => CandidateStatus::Selected,
            },
            Some(Ineligibility::HeldDown) => CandidateStatus::Ineligible {
                reason: RejectReason::HoldDown,
                detail: "held down after a withdrawal of this (destination, next hop)".into(),
                until: self.hold_downs.deadline(key),
            },
            Some(Ineligibility::Suppressed) => CandidateStatus::Ineligible {
                reason: RejectReason::Suppressed,
                detail: format!("flap penalty {:.0}", self.dampening.penalty(key, now)),
                until: self.dampening.reuse_at(key),
            },
            Some(Ineligibility::Policy(reason)) => {
                let assessment = self.assess(dest, candidate);
                let detail = assessment.violation.map_or_else(|| reason.describe().to_string(), |v| v.to_string());
                CandidateStatus::Ineligible { reason, detail, until: None }
            }
            Some(Ineligibility::Security(reason)) => {
                CandidateStatus::Ineligible { reason, detail: reason.describe().to_string(), until: None }
            }
        }
    }

    fn candidate_trace(&self, dest: DestIx, candidate: &Candidate, status: CandidateStatus) -> CandidateTrace {
        let dry_run_violation = if candidate.is(flags::DRY_RUN_FLAGGED) {
            self.assess(dest, candidate).dry_run.map(|v| v.to_string())
        } else {
            None
        };
        CandidateTrace {
            next_hop: self.next_hop_id(candidate),
            path: candidate.path.iter().map(|hop| self.nodes.resolve(*hop).clone()).collect(),
            hop_count: candidate.hop_count,
            metrics: self.ranked(candidate).metrics,
            tags: self.tag_sets.resolve(candidate.tags).to_vec(),
            epoch: candidate.epoch,
            received_at: candidate.received_at,
            expires_at: (candidate.expires_at != Timestamp(u64::MAX)).then_some(candidate.expires_at),
            local: candidate.is(flags::LOCAL),
            signed: candidate.is(flags::SIGNED),
            stale: candidate.is(flags::STALE),
            dry_run_violation,
            status,
        }
    }
}
