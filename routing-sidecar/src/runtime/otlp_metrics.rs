//! OpenTelemetry export of the node's metrics: the instruments, read from
//! the latest `NodeStats` that a task polls every export interval.
//!
//! Metric names follow the OpenTelemetry conventions (`fabric.routes.active`,
//! `fabric.announcement.rejects` with unit `{announcement}`, ...); their
//! Prometheus counterparts on `/metrics` are listed in the docs.

use std::collections::BTreeMap;
use std::sync::{Arc, PoisonError, RwLock};

use fabric_core::stats::RejectReason;
use fabric_io::telemetry::TelemetryGuard;
use opentelemetry::KeyValue;
use opentelemetry::metrics::{AsyncInstrument, Meter};

use crate::runtime::NodeHandle;
use crate::runtime::node::NodeStats;

/// Instrumentation scope of the sidecar's metrics.
const SCOPE: &str = "routing-sidecar";

/// The latest stats read from the node, shared with the metric callbacks.
type Latest = Arc<RwLock<Option<Arc<NodeStats>>>>;

/// When OTLP is on: exports the node's metrics every `metrics_interval`,
/// from a task that polls `node.stats()` at the same interval (it ends when
/// the node does). A no-op without OTLP or when already started. Call
/// inside the tokio runtime.
pub fn spawn_metrics_export(guard: &TelemetryGuard, node: NodeHandle) {
    let Some((meter, interval)) = guard.start_metrics(SCOPE) else { return };
    let latest: Latest = Arc::default();
    register_instruments(&meter, &latest);
    tokio::spawn(async move {
        let mut ticker = tokio::time::interval(interval);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticker.tick().await;
            let Ok(stats) = node.stats().await else { break };
            *latest.write().unwrap_or_else(PoisonError::into_inner) = Some(Arc::new(stats));
        }
    });
}

fn current(latest: &Latest) -> Option<Arc<NodeStats>> {
    latest.read().unwrap_or_else(PoisonError::into_inner).clone()
}

/// One instrument with no attributes, read from the latest stats.
struct Plain {
    name: &'static str,
    unit: &'static str,
    description: &'static str,
    value: fn(&NodeStats) -> u64,
}

const fn plain(
    name: &'static str,
    unit: &'static str,
    description: &'static str,
    value: fn(&NodeStats) -> u64,
) -> Plain {
    Plain { name, unit, description, value }
}

/// Current amounts (non-monotonic sums; gauges in Prometheus).
const UP_DOWN: &[Plain] = &[
    plain("fabric.routes.active", "{route}", "Destinations with a selected best route", |s| {
        s.engine.routes_active_total
    }),
    plain("fabric.route.candidates", "{route}", "Candidate routes stored, eligible or not", |s| {
        s.engine.candidates_stored
    }),
    plain("fabric.routes.held_down", "{route}", "Candidate routes ineligible because held down", |s| {
        s.engine.routes_held_down
    }),
    plain("fabric.routes.suppressed", "{route}", "Candidate routes ineligible because suppressed by dampening", |s| {
        s.engine.routes_suppressed_now
    }),
];

/// Monotonic counters (cumulative).
const COUNTERS: &[Plain] = &[
    plain("fabric.announcements.received", "{announcement}", "Route announcements received", |s| {
        s.engine.announcements_received
    }),
    plain("fabric.announcements.accepted", "{announcement}", "Announcements that became usable routes", |s| {
        s.engine.announcements_accepted
    }),
    plain("fabric.hold_down.rejects", "{announcement}", "Announcements stored but not used because held down", |s| {
        s.engine.hold_down_rejects
    }),
    plain("fabric.withdrawals.received", "{withdrawal}", "Route withdrawals received", |s| {
        s.engine.withdrawals_received
    }),
    plain("fabric.withdrawals.applied", "{withdrawal}", "Route withdrawals that removed a stored route", |s| {
        s.engine.withdrawals_applied
    }),
    plain("fabric.routes.withdrawn", "{route}", "Routes removed by a withdrawal or a lost neighbor", |s| {
        s.engine.routes_withdrawn_total
    }),
    plain("fabric.routes.expired", "{route}", "Routes removed because their TTL ran out", |s| {
        s.engine.routes_expired_total
    }),
    plain("fabric.routes.purged_stale", "{route}", "Stale routes of a restarted neighbor purged", |s| {
        s.engine.routes_purged_stale_total
    }),
    plain("fabric.route.suppressions", "{suppression}", "Times flap dampening started suppressing a route", |s| {
        s.engine.routes_suppressed_total
    }),
    plain("fabric.route.reuses", "{suppression}", "Times a suppression ended", |s| s.engine.routes_reused_total),
    plain("fabric.best_path.changes", "{change}", "Changes of a destination's selected best route", |s| {
        s.engine.best_path_changes_total
    }),
    plain("fabric.messages.sent", "{message}", "Messages queued for neighbors", |s| s.engine.messages_sent_total),
    plain("fabric.signatures.verified", "{signature}", "Signatures verified by computation", |s| {
        s.engine.signatures_verified_total
    }),
    plain("fabric.signature_cache.hits", "{signature}", "Signatures found in the verification cache", |s| {
        s.engine.signature_cache_hits_total
    }),
    plain("fabric.signatures.unverified_accepted", "{message}", "Signed messages accepted unverified", |s| {
        s.engine.unverified_signatures_accepted_total
    }),
    plain(
        "fabric.messages.v1_accepted",
        "{message}",
        "Announcements and withdrawals accepted without a signed issue time (protocol v1)",
        |s| s.engine.v1_messages_accepted_total,
    ),
    plain("fabric.config.applied", "{config}", "Configs put in force, the startup config included", |s| {
        s.config.applied_total
    }),
    plain("fabric.config.rejected", "{config}", "Configs refused; the previous one stayed in force", |s| {
        s.config.rejected_total
    }),
    plain("fabric.engine.config.reloads", "{config}", "Live config changes applied by the engine", |s| {
        s.engine.config_reloads_total
    }),
    plain("fabric.engine.config.rejects", "{config}", "Live config changes refused by the engine", |s| {
        s.engine.config_rejects_total
    }),
    plain(
        "fabric.convergence.count",
        "{convergence}",
        "Convergences measured (destinations that regained a route)",
        |s| s.engine.convergence_seconds.count,
    ),
];

/// Per-peer instruments (attribute `peer`).
struct PerPeer {
    name: &'static str,
    unit: &'static str,
    description: &'static str,
    value: fn(&crate::runtime::node::PeerStatus) -> u64,
}

fn register_instruments(meter: &Meter, latest: &Latest) {
    for spec in UP_DOWN {
        let (latest, value) = (latest.clone(), spec.value);
        meter
            .i64_observable_up_down_counter(spec.name)
            .with_unit(spec.unit)
            .with_description(spec.description)
            .with_callback(move |observer| {
                if let Some(stats) = current(&latest) {
                    observer.observe(i64::try_from(value(&stats)).unwrap_or(i64::MAX), &[]);
                }
            })
            .build();
    }
    for spec in COUNTERS {
        let (latest, value) = (latest.clone(), spec.value);
        meter
            .u64_observable_counter(spec.name)
            .with_unit(spec.unit)
            .with_description(spec.description)
            .with_callback(move |observer| {
                if let Some(stats) = current(&latest) {
                    observer.observe(value(&stats), &[]);
                }
            })
            .build();
    }

    // Rejections by reason: every reason, zero when unseen (as on /metrics).
    for (name, description, by_reason) in [
        (
            "fabric.announcement.rejects",
            "Announcements and withdrawals not used, by reason",
            announcement_rejects as RejectCounts,
        ),
        (
            "fabric.announcement.dry_run_rejects",
            "Announcements a dry-run import policy would have rejected, by reason",
            dry_run_rejects,
        ),
    ] {
        let latest = latest.clone();
        meter
            .u64_observable_counter(name)
            .with_unit("{announcement}")
            .with_description(description)
            .with_callback(move |observer| {
                if let Some(stats) = current(&latest) {
                    let counts = by_reason(&stats);
                    for reason in RejectReason::ALL {
                        let value = counts.get(reason.label()).copied().unwrap_or(0);
                        observer.observe(value, &[KeyValue::new("reason", reason.label())]);
                    }
                }
            })
            .build();
    }

    let ends = latest.clone();
    meter
        .u64_observable_counter("fabric.session.ends")
        .with_unit("{session}")
        .with_description("Connections to peers that ended, established or not, by reason")
        .with_callback(move |observer| {
            if let Some(stats) = current(&ends) {
                for reason in fabric_core::session::SESSION_END_REASONS {
                    let value = stats.session_ends_total.get(reason).copied().unwrap_or(0);
                    observer.observe(value, &[KeyValue::new("reason", *reason)]);
                }
            }
        })
        .build();

    let refusals = latest.clone();
    meter
        .u64_observable_counter("fabric.export.refusals")
        .with_unit("{route}")
        .with_description("Best routes not advertised to neighbors, by reason")
        .with_callback(move |observer| {
            if let Some(stats) = current(&refusals) {
                for (reason, value) in &stats.engine.export_refusals_total {
                    observer.observe(*value, &[KeyValue::new("reason", *reason)]);
                }
            }
        })
        .build();

    let sum = latest.clone();
    meter
        .f64_observable_counter("fabric.convergence.time")
        .with_unit("s")
        .with_description("Total time destinations went without a usable route (sum of the convergence histogram)")
        .with_callback(move |observer| {
            if let Some(stats) = current(&sum) {
                observer.observe(stats.engine.convergence_seconds.sum_seconds, &[]);
            }
        })
        .build();

    let up = latest.clone();
    meter
        .u64_observable_gauge("fabric.peer.session.up")
        .with_unit("1")
        .with_description("Whether a session with the peer is established (1) or not (0)")
        .with_callback(move |observer| observe_peers(&up, observer, |p| u64::from(p.established)))
        .build();
    let queued = latest.clone();
    meter
        .u64_observable_gauge("fabric.peer.send_queue.size")
        .with_unit("By")
        .with_description("Bytes (wire size) queued for the peer and not yet written")
        .with_callback(move |observer| observe_peers(&queued, observer, |p| p.send_queue_bytes))
        .build();
    let routes = latest.clone();
    meter
        .i64_observable_up_down_counter("fabric.peer.routes.received")
        .with_unit("{route}")
        .with_description("Routes currently stored from the peer")
        .with_callback(move |observer| {
            if let Some(stats) = current(&routes) {
                for peer in &stats.peers {
                    observer.observe(i64::from(peer.routes_received), &[KeyValue::new("peer", peer.id.to_string())]);
                }
            }
        })
        .build();
    for spec in [
        PerPeer {
            name: "fabric.peer.sessions.established",
            unit: "{session}",
            description: "Sessions established with the peer",
            value: |p| p.sessions_established_total,
        },
        PerPeer {
            name: "fabric.peer.session.failures",
            unit: "{session}",
            description: "Established sessions with the peer that went down",
            value: |p| p.session_failures_total,
        },
    ] {
        let latest = latest.clone();
        meter
            .u64_observable_counter(spec.name)
            .with_unit(spec.unit)
            .with_description(spec.description)
            .with_callback(move |observer| observe_peers(&latest, observer, spec.value))
            .build();
    }
}

type RejectCounts = fn(&NodeStats) -> &BTreeMap<&'static str, u64>;

fn announcement_rejects(stats: &NodeStats) -> &BTreeMap<&'static str, u64> {
    &stats.engine.announcement_rejects_total
}

fn dry_run_rejects(stats: &NodeStats) -> &BTreeMap<&'static str, u64> {
    &stats.engine.dry_run_rejects_total
}

fn observe_peers(
    latest: &Latest,
    observer: &dyn AsyncInstrument<u64>,
    value: impl Fn(&crate::runtime::node::PeerStatus) -> u64,
) {
    if let Some(stats) = current(latest) {
        for peer in &stats.peers {
            observer.observe(value(peer), &[KeyValue::new("peer", peer.id.to_string())]);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all_names() -> Vec<&'static str> {
        let mut names: Vec<&str> = UP_DOWN.iter().chain(COUNTERS).map(|p| p.name).collect();
        names.extend([
            "fabric.announcement.rejects",
            "fabric.announcement.dry_run_rejects",
            "fabric.convergence.time",
            "fabric.peer.session.up",
            "fabric.peer.send_queue.size",
            "fabric.peer.routes.received",
            "fabric.peer.sessions.established",
            "fabric.peer.session.failures",
        ]);
        names
    }

    #[test]
    fn docs_map_every_otlp_metric() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/metrics.md");
        let docs = std::fs::read_to_string(path).expect("docs/metrics.md");
        let section = docs.split_once("## OTLP export").expect("an OTLP export section in docs/metrics.md").1;
        for name in all_names() {
            assert!(section.contains(&format!("| `{name}` |")), "docs/metrics.md does not map `{name}`");
        }
    }

    #[test]
    fn metric_names_are_unique_and_namespaced() {
        let mut names = all_names();
        let all = names.len();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), all, "duplicate metric name");
        for name in names {
            assert!(name.starts_with("fabric.") && !name.ends_with("_total"), "{name}");
            assert!(name.len() <= 255 && name.chars().all(|c| c.is_ascii_alphanumeric() || "._".contains(c)), "{name}");
        }
    }
}
