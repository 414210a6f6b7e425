//! Deterministic best-path selection as a chain of comparisons, each of
//! which can say why a route lost.
//!
//! Order: a locally originated route wins; then the score (lower
//! accumulated cost); then the configured tie-breakers (default: fewer hops,
//! lower latency, higher reliability, lower advertiser id); finally the
//! advertiser id, which is unique among a destination's candidates, so the
//! order is total and independent of arrival order.

use std::cmp::Ordering;

use serde::Serialize;

use crate::candidate::{Candidate, flags};
use crate::intern::Nodes;
use fabric_core::config::{LinkMetrics, TieBreaker};
use fabric_core::message::RouteMetrics;

/// The rule that decided a comparison.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Criterion {
    LocalOrigin,
    Score,
    HopCount,
    Latency,
    Reliability,
    Advertiser,
}

impl From<TieBreaker> for Criterion {
    fn from(value: TieBreaker) -> Self {
        match value {
            TieBreaker::HopCount => Criterion::HopCount,
            TieBreaker::Latency => Criterion::Latency,
            TieBreaker::Reliability => Criterion::Reliability,
            TieBreaker::Advertiser => Criterion::Advertiser,
        }
    }
}

/// A candidate's metrics as seen from this node: received metrics plus the
/// link to the next hop.
pub(crate) fn effective_metrics(candidate: &Candidate, link: LinkMetrics) -> RouteMetrics {
    if candidate.is(flags::LOCAL) {
        return candidate.metrics;
    }
    RouteMetrics {
        cost: candidate.metrics.cost.saturating_add(link.cost),
        latency_us: candidate.metrics.latency_us.saturating_add(link.latency_us),
        reliability: candidate.metrics.reliability * link.reliability,
    }
}

/// What selection compares.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Ranked<'a> {
    pub candidate: &'a Candidate,
    pub metrics: RouteMetrics,
}

/// Compares `a` with `b`: `Less` means `a` is preferred. Also returns the
/// criterion that decided.
pub(crate) fn compare(a: &Ranked<'_>, b: &Ranked<'_>, order: &[TieBreaker], nodes: &Nodes) -> (Ordering, Criterion) {
    let local = b.candidate.is(flags::LOCAL).cmp(&a.candidate.is(flags::LOCAL));
    if local != Ordering::Equal {
        return (local, Criterion::LocalOrigin);
    }
    let score = a.metrics.cost.cmp(&b.metrics.cost);
    if score != Ordering::Equal {
        return (score, Criterion::Score);
    }
    for breaker in order.iter().copied().map(Criterion::from).chain([Criterion::Advertiser]) {
        let ordering = by(breaker, a, b, nodes);
        if ordering != Ordering::Equal {
            return (ordering, breaker);
        }
    }
    (Ordering::Equal, Criterion::Advertiser)
}

fn by(criterion: Criterion, a: &Ranked<'_>, b: &Ranked<'_>, nodes: &Nodes) -> Ordering {
    match criterion {
        Criterion::LocalOrigin | Criterion::Score => Ordering::Equal,
        Criterion::HopCount => a.candidate.hop_count.cmp(&b.candidate.hop_count),
        Criterion::Latency => a.metrics.latency_us.cmp(&b.metrics.latency_us),
        Criterion::Reliability => b.metrics.reliability.total_cmp(&a.metrics.reliability),
        Criterion::Advertiser => {
            if a.candidate.next_hop == b.candidate.next_hop {
                Ordering::Equal
            } else {
                nodes.resolve(a.candidate.next_hop).cmp(nodes.resolve(b.candidate.next_hop))
            }
        }
    }
}

/// Human-readable reason `loser` lost to `winner` on `criterion`.
pub(crate) fn loss_detail(criterion: Criterion, winner: &Ranked<'_>, loser: &Ranked<'_>, nodes: &Nodes) -> String {
    match criterion {
        Criterion::LocalOrigin => "the winner is originated by this node".into(),
        Criterion::Score => format!("cost {} > {}", loser.metrics.cost, winner.metrics.cost),
        Criterion::HopCount => format!("hop count {} > {}", loser.candidate.hop_count, winner.candidate.hop_count),
        Criterion::Latency => format!("latency {} us > {} us", loser.metrics.latency_us, winner.metrics.latency_us),
        Criterion::Reliability => {
            format!("reliability {} < {}", loser.metrics.reliability, winner.metrics.reliability)
        }
        Criterion::Advertiser => format!(
            "advertiser {} sorts after {}",
            nodes.resolve(loser.candidate.next_hop),
            nodes.resolve(winner.candidate.next_hop)
        ),
    }
}
