//! OpenTelemetry export of the node's metrics: asynchronous instruments
//! made from the same tables as `/metrics` (`metrics::NODE_METRICS`,
//! `metrics::LINK_STATE_METRICS`), read from the latest `NodeStats` that a
//! task polls every export interval.
//!
//! Metric names follow the OpenTelemetry conventions (`fabric.routes.active`,
//! `fabric.announcement.rejects` with unit `{announcement}`, ...); each
//! table entry gives both names, and the docs list them side by side.

use std::sync::Arc;

use fabric_io::metric_table::{Latest, current, register_otlp, spawn_snapshots};
use fabric_io::telemetry::TelemetryGuard;
use opentelemetry::metrics::Meter;

use crate::runtime::NodeHandle;
use crate::runtime::metrics::{LINK_STATE_METRICS, LinkStateRead, MetricsInput, NODE_METRICS, NodeRead, peer_metrics};
use crate::runtime::node::NodeStats;

/// Instrumentation scope of the sidecar's metrics.
const SCOPE: &str = "routing-sidecar";

/// When OTLP is on: exports the node's metrics every `metrics_interval`,
/// from a task that polls `node.stats()` at the same interval (it ends when
/// the node does). A no-op without OTLP or when already started. Call
/// inside the tokio runtime.
pub fn spawn_metrics_export(guard: &TelemetryGuard, node: NodeHandle) {
    let Some((meter, interval)) = guard.start_metrics(SCOPE) else { return };
    let latest: Latest<NodeStats> = Arc::default();
    register_instruments(&meter, &latest);
    spawn_snapshots(interval, latest, move || {
        let node = node.clone();
        async move { node.stats().await.ok() }
    });
}

/// One instrument per table entry (two per histogram, none for the node
/// info); the link-state ones report nothing while link-state is off.
fn register_instruments(meter: &Meter, latest: &Latest<NodeStats>) {
    let node = latest.clone();
    register_otlp(meter, NODE_METRICS, move |read: &NodeRead| {
        let stats = current(&node)?;
        let peers = peer_metrics(&stats);
        Some(read(&MetricsInput::of_node(&stats, &peers)))
    });
    let link_state = latest.clone();
    register_otlp(meter, LINK_STATE_METRICS, move |read: &LinkStateRead| {
        current(&link_state)?.link_state.as_ref().map(read)
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all_names() -> Vec<String> {
        NODE_METRICS
            .iter()
            .map(|m| m.def)
            .chain(LINK_STATE_METRICS.iter().map(|m| m.def))
            .flat_map(|def| def.otlp_instruments())
            .map(|(name, _, _)| name)
            .collect()
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
