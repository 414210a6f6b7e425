//! Receiving messages: the per-announcement pipeline.
//!
//! Checks run cheapest first, and nothing is stored before the signature
//! verified: neighbor, advertiser consistency, allowed advertisers,
//! structure, loop, epoch, signature; then hold-down, dampening and import
//! policy decide whether the stored route is eligible. Every rejection is
//! counted by reason, emitted as one event and remembered for `explain`.

use crate::batch::LookedUp;
use crate::candidate::{Candidate, Ineligibility, Path, RouteKey, flags};
use crate::dampening::PenaltyOutcome;
use crate::explain::RejectionRecord;
use crate::intern::{DestIx, NodeIx, TagSetIx};
use crate::{Engine, RouteEvent, WithdrawCause};
use fabric_core::canonical;
use fabric_core::ids::{DestinationId, NodeId};
use fabric_core::message::{Message, RouteAnnouncement, RouteWithdrawal, SignatureBlock};
use fabric_core::security::{KeyError, SignatureCheck, VerifyRequest};
use fabric_core::stats::RejectReason;
use fabric_core::time::Timestamp;
use fabric_core::wire::DecodeError;

/// A rejection on its way out: reason and a human-readable detail.
type Rejection = (RejectReason, String);

impl Engine {
    /// Handles one message received from neighbor `from`.
    pub fn receive(&mut self, now: Timestamp, from: &NodeId, message: Message) {
        self.process(now, from, message, None, LookedUp::default());
    }

    /// Decodes a frame with the configured limits and handles it. A frame
    /// that does not decode is counted as `malformed` and the error is
    /// returned so the session layer can decide to drop the peer.
    pub fn receive_frame(&mut self, now: Timestamp, from: &NodeId, bytes: &[u8]) -> Result<(), DecodeError> {
        match fabric_core::wire::decode(bytes, &self.config.limits.decode_limits()) {
            Ok(message) => {
                self.receive(now, from, message);
                Ok(())
            }
            Err(error) => {
                self.reject(now, None, from, (RejectReason::Malformed, error.to_string()));
                Err(error)
            }
        }
    }

    /// Counts a frame from `from` that the session layer could not decode.
    pub fn record_malformed(&mut self, now: Timestamp, from: &NodeId, detail: String) {
        self.reject(now, None, from, (RejectReason::Malformed, detail));
    }

    /// A message from neighbor `from` about `destination` broke a
    /// per-message limit: it is refused (counted as `malformed`, shown by
    /// `explain`) and treated as a withdrawal of `from`'s route to
    /// `destination`, the way RFC 7606 handles a malformed attribute,
    /// instead of ending the session and dropping every route of `from`.
    /// The session authenticated `from`, so no signature is needed to
    /// withdraw its own route.
    pub fn treat_as_withdraw(&mut self, now: Timestamp, from: &NodeId, destination: &str, detail: String) {
        let name = DestinationId::new(destination);
        self.reject(now, Some(name), from, (RejectReason::Malformed, format!("{detail}; treated as a withdrawal")));
        let (Some(next_hop), Some(dest)) = (self.configured_neighbor(from, None), self.destinations.get(destination))
        else {
            return;
        };
        if self.table[dest.index()].position(next_hop).is_some() {
            self.remove_route(now, RouteKey { destination: dest, next_hop }, WithdrawCause::TreatAsWithdraw);
        }
    }

    pub(super) fn process(
        &mut self,
        now: Timestamp,
        from: &NodeId,
        message: Message,
        verdict: Option<SignatureCheck>,
        known: LookedUp,
    ) {
        match message {
            Message::Announcement(announcement) => self.announcement(now, from, announcement, verdict, known),
            Message::Withdrawal(withdrawal) => self.withdrawal(now, from, withdrawal, verdict, known),
            Message::EndOfTable { advertiser } => {
                if advertiser == *from
                    && let Some(ix) = self.configured_neighbor(from, known.sender)
                {
                    self.purge_stale(now, ix);
                }
            }
        }
    }

    /// `known`: the id's index if it was looked up already.
    fn configured_neighbor(&self, id: &NodeId, known: Option<NodeIx>) -> Option<NodeIx> {
        known.or_else(|| self.nodes.get(id.as_str())).filter(|ix| self.compiled.slot(*ix).is_some())
    }

    /// Counts, reports and remembers a rejection.
    pub(super) fn reject(
        &mut self,
        now: Timestamp,
        destination: Option<DestinationId>,
        from: &NodeId,
        (reason, detail): Rejection,
    ) {
        self.counters.reject(reason);
        self.record_rejection(RejectionRecord {
            at: now,
            destination: destination.clone(),
            from: from.clone(),
            reason,
            detail: detail.clone(),
        });
        self.emit(RouteEvent::Rejected { destination, from: from.clone(), reason, detail });
    }

    /// Neighbor, advertiser and allow-list checks shared by announcements
    /// and withdrawals.
    fn check_sender(
        &self,
        from: &NodeId,
        known: Option<NodeIx>,
        advertiser: &NodeId,
        path: &[NodeId],
    ) -> Result<NodeIx, Rejection> {
        let Some(ix) = self.configured_neighbor(from, known) else {
            return Err((RejectReason::UnknownNeighbor, format!("{from} is not a configured neighbor")));
        };
        if advertiser != from {
            return Err((
                RejectReason::AdvertiserMismatch,
                format!("advertiser {advertiser} differs from sending neighbor {from}"),
            ));
        }
        if path.first().is_some_and(|first| first != from) {
            return Err((
                RejectReason::AdvertiserMismatch,
                format!("path starts at {}, not at the advertiser {from}", path[0]),
            ));
        }
        if self.compiled.allowed_advertisers.as_ref().is_some_and(|allowed| !allowed.contains(&ix)) {
            return Err((
                RejectReason::UnauthorizedAdvertiser,
                format!("{from} is not in security.allowedAdvertisers"),
            ));
        }
        Ok(ix)
    }

    fn check_structure(&self, a: &RouteAnnouncement) -> Result<(), Rejection> {
        if a.path.is_empty() {
            return Err((RejectReason::InvalidPath, "empty path".into()));
        }
        if a.hop_count as usize != a.path.len() {
            return Err((
                RejectReason::InvalidPath,
                format!("hop count {} but the path has {} hops", a.hop_count, a.path.len()),
            ));
        }
        if a.path.contains(&self.config.node_id) {
            return Err((RejectReason::LoopDetected, format!("{} is already in the path", self.config.node_id)));
        }
        if let Some(repeated) = repeated_hop(&a.path) {
            return Err((RejectReason::InvalidPath, format!("{repeated} appears twice in the path")));
        }
        let reliability = a.metrics.reliability;
        if !(reliability.is_finite() && (0.0..=1.0).contains(&reliability)) {
            return Err((RejectReason::InvalidMetrics, format!("reliability {reliability} outside [0, 1]")));
        }
        if a.ttl_ms == 0 {
            return Err((RejectReason::InvalidTtl, "TTL of zero".into()));
        }
        Ok(())
    }

    /// Highest epoch already seen for `key`, from the stored route or the
    /// tombstone of its withdrawal.
    fn seen_epoch(&self, key: Option<RouteKey>) -> Option<u64> {
        let key = key?;
        let stored = self.table[key.destination.index()]
            .position(key.next_hop)
            .map(|i| self.table[key.destination.index()].candidates[i].epoch);
        stored.max(self.tombstones.get(&key).copied())
    }

    /// Whether a message issued at `issued_at_ms` (`None`: protocol v1) may
    /// be taken at `now`: not older than the validity (`timers.maxTtl`
    /// minus `security.maxClockSkew`, so a replay after the tombstone
    /// expired is refused), not from further in the future than the skew.
    fn check_issue_time(&mut self, now: Timestamp, issued_at_ms: Option<u64>) -> Result<(), Rejection> {
        let Some(issued_at) = issued_at_ms else {
            if self.config.security.refuse_v1_messages {
                let detail = "no signed issue time (protocol v1) while security.refuseV1Messages is true";
                return Err((RejectReason::V1Message, detail.into()));
            }
            return Ok(());
        };
        let validity = self.config.message_validity().as_millis() as u64;
        let skew = self.config.security.max_clock_skew().as_millis() as u64;
        if issued_at.saturating_add(validity) < now.0 {
            let detail = format!("issued {} ms ago, valid for {validity} ms", now.0 - issued_at);
            return Err((RejectReason::StaleIssueTime, detail));
        }
        if issued_at > now.0.saturating_add(skew) {
            let detail =
                format!("issued {} ms in the future, more than the allowed skew of {skew} ms", issued_at - now.0);
            return Err((RejectReason::FutureIssueTime, detail));
        }
        Ok(())
    }

    /// Verifies the signature if there is one; `Ok(true)` when it verified.
    fn check_signature(
        &mut self,
        now: Timestamp,
        message: Signable<'_>,
        verdict: Option<SignatureCheck>,
    ) -> Result<bool, Rejection> {
        let required = self.config.security.require_signatures;
        let Some(signature) = message.signature() else {
            return if required {
                Err((RejectReason::Unsigned, "unsigned while security.requireSignatures is true".into()))
            } else {
                Ok(false)
            };
        };
        let verdict = match verdict {
            Some(verdict) => verdict,
            None => self.verify_now(now, message, signature),
        };
        match verdict {
            SignatureCheck::Valid { cached } => {
                if !cached {
                    self.counters.signatures_verified += 1;
                }
                Ok(true)
            }
            SignatureCheck::Invalid => {
                Err((RejectReason::BadSignature, format!("signature by key {} does not verify", signature.key_id)))
            }
            SignatureCheck::Key(KeyError::UnknownKey) if !required => {
                self.counters.unverified_signatures_accepted += 1;
                Ok(false)
            }
            SignatureCheck::Key(KeyError::UnknownKey) => Err((
                RejectReason::UnknownKey,
                format!("no trusted key {} for {}", signature.key_id, message.advertiser()),
            )),
            SignatureCheck::Key(KeyError::NotYetValid) => {
                Err((RejectReason::KeyNotYetValid, format!("key {} is not valid yet", signature.key_id)))
            }
            SignatureCheck::Key(KeyError::Expired) => {
                Err((RejectReason::KeyExpired, format!("key {} has expired", signature.key_id)))
            }
        }
    }

    fn verify_now(&mut self, now: Timestamp, message: Signable<'_>, signature: &SignatureBlock) -> SignatureCheck {
        let mut scratch = std::mem::take(&mut self.canonical_scratch);
        scratch.clear();
        message.write_canonical(&mut scratch);
        let check = self.verifier.verify_one(
            &self.compiled.keys,
            now,
            VerifyRequest { advertiser: message.advertiser().as_str(), signature, canonical: &scratch },
        );
        self.canonical_scratch = scratch;
        check
    }

    fn announcement(
        &mut self,
        now: Timestamp,
        from: &NodeId,
        a: RouteAnnouncement,
        verdict: Option<SignatureCheck>,
        known: LookedUp,
    ) {
        self.counters.announcements_received += 1;
        let destination = a.destination.clone();
        let checked = self
            .check_sender(from, known.sender, &a.advertiser, &a.path)
            .and_then(|ix| self.check_structure(&a).map(|()| ix));
        let next_hop = match checked {
            Ok(ix) => ix,
            Err(rejection) => return self.reject(now, Some(destination), from, rejection),
        };
        let known = known.destination.or_else(|| self.destinations.get(destination.as_str()));
        let key = known.map(|d| RouteKey { destination: d, next_hop });
        let seen = self.seen_epoch(key);
        if seen.is_some_and(|seen| a.epoch < seen) {
            let detail = format!("epoch {} is older than {}", a.epoch, seen.unwrap_or_default());
            return self.reject(now, Some(destination), from, (RejectReason::StaleEpoch, detail));
        }
        if let Err(rejection) = self.check_issue_time(now, a.issued_at_ms) {
            return self.reject(now, Some(destination), from, rejection);
        }
        let signed = match self.check_signature(now, Signable::Announcement(&a), verdict) {
            Ok(signed) => signed,
            Err(rejection) => return self.reject(now, Some(destination), from, rejection),
        };
        if a.issued_at_ms.is_none() {
            self.counters.v1_messages_accepted += 1;
        }
        let dest = match known {
            Some(dest) => dest,
            None => self.intern_destination(&destination),
        };
        let key = RouteKey { destination: dest, next_hop };
        let mut candidate = self.candidate_from(now, dest, next_hop, &a, signed);
        let existing =
            self.table[dest.index()].position(next_hop).map(|i| self.table[dest.index()].candidates[i].clone());
        if let Some(existing) = &existing {
            if a.epoch == existing.epoch {
                return self.refresh(now, from, dest, key, existing, candidate);
            }
        } else if let Some(limit) = self.config.limits.max_routes_per_neighbor
            && self.neighbors.get(&next_hop).is_some_and(|n| n.routes >= limit)
        {
            let detail = format!("{from} already has {limit} routes (limits.maxRoutesPerNeighbor)");
            return self.reject(now, Some(destination), from, (RejectReason::NeighborRouteLimit, detail));
        }
        if existing.as_ref().is_some_and(|e| !e.same_content(&candidate)) {
            let outcome = self.dampening.on_attribute_change(key, now);
            self.note_penalty(dest, next_hop, outcome);
        }
        let assessment = self.assess(dest, &candidate);
        candidate.ineligible = assessment.ineligible;
        candidate.set(flags::DRY_RUN_FLAGGED, assessment.dry_run.is_some());
        match assessment.ineligible {
            None => {
                self.counters.announcements_accepted += 1;
                if self.accepted_events {
                    self.emit(RouteEvent::Accepted {
                        destination: destination.clone(),
                        from: from.clone(),
                        epoch: a.epoch,
                    });
                }
                if let Some(violation) = assessment.dry_run {
                    self.counters.dry_run_reject(violation.reason());
                    self.emit(RouteEvent::DryRunWouldReject {
                        destination: destination.clone(),
                        from: from.clone(),
                        reason: violation.reason(),
                        detail: violation.to_string(),
                    });
                }
            }
            Some(Ineligibility::HeldDown) => {
                self.counters.hold_down_rejects += 1;
                let until = self.hold_downs.deadline(key).unwrap_or(now);
                let detail = format!("held down until {} ms", until.as_millis());
                self.reject(now, Some(destination.clone()), from, (RejectReason::HoldDown, detail));
            }
            Some(reason) => {
                let detail = match &assessment.violation {
                    Some(violation) => violation.to_string(),
                    None => reason.reason().describe().to_string(),
                };
                self.reject(now, Some(destination.clone()), from, (reason.reason(), detail));
            }
        }
        if self.tombstones.remove(&key).is_some() {
            self.tombstone_expiry.cancel(key);
        }
        self.put_candidate(dest, candidate);
        self.reselect(now, dest);
    }

    /// Same epoch again: a refresh if the content is identical (and at least
    /// as well authenticated), otherwise a protocol violation.
    fn refresh(
        &mut self,
        now: Timestamp,
        from: &NodeId,
        dest: DestIx,
        key: RouteKey,
        existing: &Candidate,
        fresh: Candidate,
    ) {
        let destination = self.destinations.resolve(dest).clone();
        let weaker = existing.is(flags::SIGNED) && !fresh.is(flags::SIGNED);
        if !existing.same_content(&fresh) || weaker {
            let detail = format!("epoch {} reused with different content", existing.epoch);
            return self.reject(now, Some(destination), from, (RejectReason::EpochReuse, detail));
        }
        let entry = &mut self.table[dest.index()];
        if let Some(i) = entry.position(key.next_hop) {
            let stored = &mut entry.candidates[i];
            stored.expires_at = fresh.expires_at;
            stored.set(flags::STALE, false);
        }
        self.emit(RouteEvent::Refreshed { destination, from: from.clone() });
    }

    fn candidate_from(
        &mut self,
        now: Timestamp,
        dest: DestIx,
        next_hop: NodeIx,
        a: &RouteAnnouncement,
        signed: bool,
    ) -> Candidate {
        let (path, tags) = self.intern_path_and_tags(dest, next_hop, a);
        let ttl = std::time::Duration::from_millis(u64::from(a.ttl_ms)).min(self.config.timers.max_ttl);
        Candidate {
            next_hop,
            tags,
            path,
            metrics: a.metrics,
            hop_count: a.hop_count,
            flags: if signed { flags::SIGNED } else { 0 },
            ineligible: None,
            epoch: a.epoch,
            expires_at: now + ttl,
            received_at: now,
        }
    }

    /// The interned path and tag set of `a`, announced by `next_hop` for
    /// `dest`. A neighbor mostly announces the path and tags it announced
    /// before: comparing with the stored route (the same ids, often the
    /// same allocations) is cheaper than hashing and looking up each one.
    fn intern_path_and_tags(&mut self, dest: DestIx, next_hop: NodeIx, a: &RouteAnnouncement) -> (Path, TagSetIx) {
        let entry = &self.table[dest.index()];
        let stored = entry.position(next_hop).map(|i| &entry.candidates[i]);
        let path = match stored {
            Some(stored)
                if stored.path.len() == a.path.len()
                    && stored.path.iter().zip(&a.path).skip(1).all(|(ix, hop)| self.nodes.resolve(*ix) == hop) =>
            {
                Some(stored.path.clone())
            }
            _ => None,
        };
        let tags = stored.map(|stored| stored.tags).filter(|&ix| *self.tag_sets.resolve(ix) == a.tags);
        // a.path[0] is the sender, already interned as `next_hop`.
        let path = path.unwrap_or_else(|| {
            std::iter::once(next_hop).chain(a.path.iter().skip(1).map(|hop| self.nodes.intern(hop))).collect()
        });
        (path, tags.unwrap_or_else(|| self.tag_sets.intern(&a.tags)))
    }

    pub(super) fn note_penalty(&mut self, dest: DestIx, advertiser: NodeIx, outcome: PenaltyOutcome) {
        if let PenaltyOutcome::NewlySuppressed { penalty, reuse_at } = outcome {
            self.counters.routes_suppressed += 1;
            self.emit(RouteEvent::Suppressed {
                destination: self.destinations.resolve(dest).clone(),
                advertiser: self.nodes.resolve(advertiser).clone(),
                penalty,
                reuse_at,
            });
        }
    }

    fn withdrawal(
        &mut self,
        now: Timestamp,
        from: &NodeId,
        w: RouteWithdrawal,
        verdict: Option<SignatureCheck>,
        known: LookedUp,
    ) {
        self.counters.withdrawals_received += 1;
        let destination = w.destination.clone();
        let next_hop = match self.check_sender(from, known.sender, &w.advertiser, &w.path) {
            Ok(ix) => ix,
            Err(rejection) => return self.reject(now, Some(destination), from, rejection),
        };
        let known = known.destination.or_else(|| self.destinations.get(destination.as_str()));
        let key = known.map(|d| RouteKey { destination: d, next_hop });
        if let Some(seen) = self.seen_epoch(key)
            && w.epoch <= seen
        {
            let detail = format!("withdrawal epoch {} is not newer than {seen}", w.epoch);
            return self.reject(now, Some(destination), from, (RejectReason::StaleEpoch, detail));
        }
        let epoch = w.epoch;
        if let Err(rejection) = self.check_issue_time(now, w.issued_at_ms) {
            return self.reject(now, Some(destination), from, rejection);
        }
        if let Err(rejection) = self.check_signature(now, Signable::Withdrawal(&w), verdict) {
            return self.reject(now, Some(destination), from, rejection);
        }
        if w.issued_at_ms.is_none() {
            self.counters.v1_messages_accepted += 1;
        }
        let dest = self.intern_destination(&destination);
        let key = RouteKey { destination: dest, next_hop };
        self.tombstones.insert(key, epoch);
        self.tombstone_expiry.schedule(key, now + self.config.timers.max_ttl);
        if self.table[dest.index()].position(next_hop).is_none() {
            return;
        }
        self.counters.withdrawals_applied += 1;
        self.remove_route(now, key, WithdrawCause::Withdrawal);
    }

    /// Removes a learned route because its advertiser withdrew it (or went
    /// away): counts it, starts hold-down, penalizes the flap, reselects.
    pub(super) fn remove_route(&mut self, now: Timestamp, key: RouteKey, cause: WithdrawCause) {
        self.note_loss(now, key.destination, key.next_hop);
        if self.take_candidate(key.destination, key.next_hop).is_none() {
            return;
        }
        self.counters.routes_withdrawn += 1;
        let destination = self.destinations.resolve(key.destination).clone();
        let next_hop_id = self.nodes.resolve(key.next_hop).clone();
        self.emit(RouteEvent::Withdrawn { destination: destination.clone(), from: next_hop_id.clone(), cause });
        if cause != WithdrawCause::NeighborRemoved {
            let hold_down = self.config.stability.hold_down;
            if !hold_down.is_zero() {
                let until = now + hold_down;
                self.hold_downs.schedule(key, until);
                self.emit(RouteEvent::HeldDown { destination, next_hop: next_hop_id, until });
            }
            let outcome = self.dampening.on_withdrawal(key, now);
            self.note_penalty(key.destination, key.next_hop, outcome);
        }
        self.reselect(now, key.destination);
    }
}

/// A hop that appears twice. Paths are short, so a pairwise scan beats a
/// hash set; long ones (up to the decoder limit) sort a copy.
fn repeated_hop(path: &[NodeId]) -> Option<&NodeId> {
    if path.len() <= 16 {
        return path.iter().enumerate().find(|(i, hop)| path[..*i].contains(hop)).map(|(_, hop)| hop);
    }
    let mut sorted: Vec<&NodeId> = path.iter().collect();
    sorted.sort_unstable();
    sorted.windows(2).find(|w| w[0] == w[1]).map(|w| w[0])
}

/// A received announcement or withdrawal, borrowed for its signature
/// check (instead of moving it into a `Message` and back: announcements
/// are large enough for those copies to show in profiles).
#[derive(Clone, Copy)]
pub(super) enum Signable<'a> {
    Announcement(&'a RouteAnnouncement),
    Withdrawal(&'a RouteWithdrawal),
}

impl<'a> Signable<'a> {
    pub(super) fn of(message: &'a Message) -> Option<Self> {
        match message {
            Message::Announcement(a) => Some(Signable::Announcement(a)),
            Message::Withdrawal(w) => Some(Signable::Withdrawal(w)),
            Message::EndOfTable { .. } => None,
        }
    }

    pub(super) fn advertiser(self) -> &'a NodeId {
        match self {
            Signable::Announcement(a) => &a.advertiser,
            Signable::Withdrawal(w) => &w.advertiser,
        }
    }

    pub(super) fn signature(self) -> Option<&'a SignatureBlock> {
        match self {
            Signable::Announcement(a) => a.signature.as_deref(),
            Signable::Withdrawal(w) => w.signature.as_deref(),
        }
    }

    /// The canonical signing bytes (nothing when unsigned).
    pub(super) fn write_canonical(self, out: &mut Vec<u8>) {
        match self {
            Signable::Announcement(a) => {
                if let Some(s) = &a.signature {
                    canonical::write_announcement(out, a, s.algorithm, &s.key_id);
                }
            }
            Signable::Withdrawal(w) => {
                if let Some(s) = &w.signature {
                    canonical::write_withdrawal(out, w, s.algorithm, &s.key_id);
                }
            }
        }
    }
}
