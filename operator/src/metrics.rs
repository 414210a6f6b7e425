//! The operator's `/metrics`, rendered at scrape time from the
//! distributor's counters and state (the same scheme and the same content
//! negotiation as the sidecar's, from `fabric_io::prometheus`: the
//! classic text format for promtool and curl, OpenMetrics for Prometheus).
//! Every metric is one entry of [`OPERATOR_METRICS`] (a
//! `fabric_io::metric_table`, as the sidecar's); names are listed in
//! docs/metrics.md, "Operator".

use prometheus_client::registry::Registry;

use fabric_io::metric_table::{Def, Metric, Reading, register_prometheus};
pub use fabric_io::prometheus::MetricsFormat;
use fabric_io::prometheus::encode;

use crate::distribution::Distributor;
use crate::distribution::counters::Counters;
use fabric_operator_core::sync_status::{SyncState, sidecars};

/// Prefix of every operator metric name.
pub const PREFIX: &str = "fabric_operator";

const SYNC_STATES: [(SyncState, &str); 4] = [
    (SyncState::Synced, "synced"),
    (SyncState::Stale, "stale"),
    (SyncState::Nacked, "nacked"),
    (SyncState::NotSent, "not_sent"),
];

/// What one render reads: the distributor's counters and state.
pub struct OperatorSnapshot {
    pub counters: Counters,
    /// Signing keys that became active, over every RouteKey.
    pub key_rotations: u64,
    pub sidecars_connected: u64,
    /// Known sidecars per sync state, in the order of `SYNC_STATES`.
    pub sidecars_by_sync: [u64; SYNC_STATES.len()],
}

impl OperatorSnapshot {
    pub fn of(distributor: &Distributor) -> Self {
        let state = distributor.state();
        let compilation = distributor.compilation();
        let listed = sidecars(&compilation, &state);
        Self {
            counters: distributor.counters(),
            key_rotations: distributor.rotation_status().values().map(|r| r.rotations).sum(),
            sidecars_connected: state.sidecars.values().filter(|s| s.connected).count() as u64,
            sidecars_by_sync: SYNC_STATES.map(|(sync, _)| listed.iter().filter(|s| s.sync == sync).count() as u64),
        }
    }
}

/// Reads one operator metric from a render's snapshot.
pub type OperatorRead = fn(&OperatorSnapshot) -> Reading;

/// The operator's metrics, in the order `/metrics` lists them, with their
/// OTLP names (`otlp_metrics`).
pub static OPERATOR_METRICS: &[Metric<OperatorRead>] = &[
    Def::counter("reconciles", "Objects compiled, by kind and result (error: not accepted)")
        .otlp("fabric.operator.reconciles", "{object}")
        .labels(&["kind", "result"])
        .read(|s| {
            Reading::Series(
                s.counters
                    .reconciles
                    .iter()
                    .map(|((kind, result), value)| (vec![(*kind).to_owned(), (*result).to_owned()], *value))
                    .collect(),
            )
        }),
    Def::counter("config_pushes", "Config snapshots pushed to sidecars")
        .otlp("fabric.operator.config.pushes", "{snapshot}")
        .read(|s| s.counters.pushes.into()),
    Def::counter("config_acks", "Snapshots acknowledged by sidecars")
        .otlp("fabric.operator.config.acks", "{snapshot}")
        .read(|s| s.counters.acks.into()),
    Def::counter("config_nacks", "Snapshots refused by sidecars")
        .otlp("fabric.operator.config.nacks", "{snapshot}")
        .read(|s| s.counters.nacks.into()),
    Def::counter("config_stale_replies", "ACKs and NACKs ignored because a newer snapshot replaced theirs")
        .otlp("fabric.operator.config.stale_replies", "{reply}")
        .read(|s| s.counters.stale_replies.into()),
    Def::counter("status_patches", "Status writes to the API server")
        .otlp("fabric.operator.status.patches", "{patch}")
        .read(|s| s.counters.status_patches.into()),
    Def::counter("key_rotations", "Signing keys that became active")
        .otlp("fabric.operator.key.rotations", "{key}")
        .read(|s| s.key_rotations.into()),
    Def::counter("peer_certificates_issued", "Peer TLS certificates issued to sidecars, renewals included")
        .otlp("fabric.operator.peer_certificates.issued", "{certificate}")
        .read(|s| s.counters.peer_certificates_issued.into()),
    Def::counter("peer_certificate_refusals", "Peer TLS certificate requests refused")
        .otlp("fabric.operator.peer_certificate.refusals", "{request}")
        .read(|s| s.counters.peer_certificate_refusals.into()),
    Def::up_down_counter("sidecars_connected", "Sidecars with an open config stream")
        .otlp("fabric.operator.sidecars.connected", "{sidecar}")
        .read(|s| s.sidecars_connected.into()),
    Def::up_down_counter("sidecars", "Known sidecars by sync state (synced, stale, nacked, not_sent)")
        .otlp("fabric.operator.sidecars", "{sidecar}")
        .labels(&["sync"])
        .read(|s| Reading::by_label(SYNC_STATES.iter().map(|(_, label)| *label).zip(s.sidecars_by_sync))),
    Def::gauge("leader", "1 while this replica leads (writes status, serves sidecars)")
        .otlp("fabric.operator.leader", "1")
        .read(|s| u64::from(s.counters.leader).into()),
    Def::histogram("compile_duration", "Time to compile every sidecar's config")
        .otlp("fabric.operator.compile", "{compile}")
        .read(|s| (&s.counters.compile_duration).into()),
];

/// Renders the operator's metrics in `format`.
pub fn render(distributor: &Distributor, format: MetricsFormat) -> String {
    let snapshot = OperatorSnapshot::of(distributor);
    let mut registry = Registry::with_prefix(PREFIX);
    for metric in OPERATOR_METRICS {
        register_prometheus(&mut registry, &metric.def, (metric.read)(&snapshot));
    }
    encode(&registry, format)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::distribution::DistributorOptions;

    #[test]
    fn every_documented_family_is_rendered_in_both_formats() {
        let distributor = Distributor::new(DistributorOptions::default());
        distributor.set_objects(fabric_operator_core::index::Index::new());
        let text = render(&distributor, MetricsFormat::PrometheusText);
        for family in [
            "# TYPE fabric_operator_reconciles_total counter",
            "# TYPE fabric_operator_config_pushes_total counter",
            "# TYPE fabric_operator_config_acks_total counter",
            "# TYPE fabric_operator_config_nacks_total counter",
            "# TYPE fabric_operator_config_stale_replies_total counter",
            "# TYPE fabric_operator_status_patches_total counter",
            "# TYPE fabric_operator_key_rotations_total counter",
            "# TYPE fabric_operator_peer_certificates_issued_total counter",
            "# TYPE fabric_operator_peer_certificate_refusals_total counter",
            "# TYPE fabric_operator_sidecars_connected gauge",
            "# TYPE fabric_operator_sidecars gauge",
            "fabric_operator_sidecars{sync=\"not_sent\"} 0",
            "# TYPE fabric_operator_leader gauge",
            "# TYPE fabric_operator_compile_duration_seconds histogram",
            "fabric_operator_compile_duration_seconds_count 1",
        ] {
            assert!(text.contains(family), "{family} missing from\n{text}");
        }
        let open = render(&distributor, MetricsFormat::OpenMetrics);
        assert!(open.ends_with("# EOF\n"));
    }

    #[test]
    fn the_histogram_is_cumulative() {
        let mut h = fabric_core::histogram::Histogram::<crate::distribution::counters::CompileDuration>::default();
        h.observe_seconds(0.003);
        h.observe_seconds(0.2);
        assert_eq!(h.buckets[..3], [0, 0, 1]);
        assert_eq!(*h.buckets.last().unwrap(), 2);
        assert_eq!(h.count, 2);
    }

    #[test]
    fn docs_match_the_metric_table() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/metrics.md");
        let docs = std::fs::read_to_string(path).expect("docs/metrics.md");
        let section = docs.split_once("\n## Operator\n").expect("an Operator section").1;
        let section = section.split_once("\n## ").map_or(section, |(operator, _)| operator);
        let defs: Vec<fabric_io::metric_table::Def> = OPERATOR_METRICS.iter().map(|m| m.def).collect();
        let otlp = docs.split_once("\n### Operator metrics\n").expect("an OTLP section for the operator").1;
        let otlp = otlp.split_once("\n#").map_or(otlp, |(rows, _)| rows);
        let problems = fabric_io::metric_table::docs_mismatches(&defs, PREFIX, section, Some(otlp));
        assert!(problems.is_empty(), "docs/metrics.md disagrees with the metric table:\n{}", problems.join("\n"));
    }
}
