//! The operator's `/metrics`, rendered at scrape time from the
//! distributor's counters and state (the same scheme and the same content
//! negotiation as the sidecar's, from `fabric_io::prometheus`: the
//! classic text format for promtool and curl, OpenMetrics for Prometheus).
//! Names are listed in docs/metrics.md, "Operator".

use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::registry::{Registry, Unit};

pub use fabric_io::prometheus::MetricsFormat;
use fabric_io::prometheus::{ConstHistogram, counters, encode, gauges};

use crate::distribution::Distributor;
use crate::distribution::counters::COMPILE_BUCKETS;
use fabric_operator_core::sync_status::{SyncState, sidecars};

const SYNC_STATES: [(SyncState, &str); 4] = [
    (SyncState::Synced, "synced"),
    (SyncState::Stale, "stale"),
    (SyncState::Nacked, "nacked"),
    (SyncState::NotSent, "not_sent"),
];

/// Renders the operator's metrics in `format`.
pub fn render(distributor: &Distributor, format: MetricsFormat) -> String {
    let counters_now = distributor.counters();
    let state = distributor.state();
    let compilation = distributor.compilation();
    let rotations: u64 = distributor.rotation_status().values().map(|r| r.rotations).sum();
    let listed = sidecars(&compilation, &state);

    let mut r = Registry::with_prefix("fabric_operator");
    let counter =
        |r: &mut Registry, name: &str, help: &str, value: u64| r.register(name, help, ConstCounter::new(value));
    let gauge = |r: &mut Registry, name: &str, help: &str, value: u64| r.register(name, help, ConstGauge::new(value));
    let reconciles = counters_now
        .reconciles
        .iter()
        .map(|((kind, result), value)| (vec![("kind", (*kind).to_owned()), ("result", (*result).to_owned())], *value));
    r.register("reconciles", "Objects compiled, by kind and result (error: not accepted)", counters(reconciles));
    counter(&mut r, "config_pushes", "Config snapshots pushed to sidecars", counters_now.pushes);
    counter(&mut r, "config_acks", "Snapshots acknowledged by sidecars", counters_now.acks);
    counter(&mut r, "config_nacks", "Snapshots refused by sidecars", counters_now.nacks);
    counter(
        &mut r,
        "config_stale_replies",
        "ACKs and NACKs ignored because a newer snapshot replaced theirs",
        counters_now.stale_replies,
    );
    counter(&mut r, "status_patches", "Status writes to the API server", counters_now.status_patches);
    counter(&mut r, "key_rotations", "Signing keys that became active", rotations);
    counter(
        &mut r,
        "peer_certificates_issued",
        "Peer TLS certificates issued to sidecars, renewals included",
        counters_now.peer_certificates_issued,
    );
    counter(
        &mut r,
        "peer_certificate_refusals",
        "Peer TLS certificate requests refused",
        counters_now.peer_certificate_refusals,
    );
    gauge(
        &mut r,
        "sidecars_connected",
        "Sidecars with an open config stream",
        state.sidecars.values().filter(|s| s.connected).count() as u64,
    );
    let by_sync = SYNC_STATES.iter().map(|(sync, label)| {
        (vec![("sync", (*label).to_owned())], listed.iter().filter(|s| s.sync == *sync).count() as u64)
    });
    r.register("sidecars", "Known sidecars by sync state (synced, stale, nacked, not_sent)", gauges(by_sync));
    gauge(
        &mut r,
        "leader",
        "1 while this replica leads (writes status, serves sidecars)",
        u64::from(counters_now.leader),
    );
    let histogram = &counters_now.compile_duration;
    r.register_with_unit(
        "compile_duration",
        "Time to compile every sidecar's config",
        Unit::Seconds,
        ConstHistogram::from_cumulative(COMPILE_BUCKETS, &histogram.cumulative, histogram.count, histogram.sum_seconds),
    );
    encode(&r, format)
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
        let mut h = crate::distribution::counters::DurationHistogram::default();
        h.observe(0.003);
        h.observe(0.2);
        assert_eq!(h.cumulative[..3], [0, 0, 1]);
        assert_eq!(*h.cumulative.last().unwrap(), 2);
        assert_eq!(h.count, 2);
    }
}
