//! OpenTelemetry export of the operator's metrics: asynchronous instruments
//! made from the same table as `/metrics` ([`OPERATOR_METRICS`]), read from
//! the latest [`OperatorSnapshot`] that a task takes every export interval
//! (so a value is at most one interval old, as the sidecar's).

use std::sync::Arc;
use std::time::Duration;

use fabric_io::metric_table::{Latest, current, register_otlp, spawn_snapshots};
use opentelemetry::metrics::Meter;

use crate::distribution::Distributor;
use crate::metrics::{OPERATOR_METRICS, OperatorRead, OperatorSnapshot};

/// Where and how often to export: a meter from
/// `TelemetryGuard::start_metrics` and its export interval. `None` in the
/// modes' options when OTLP is off.
pub type OtlpMetrics = (Meter, Duration);

/// When OTLP is on (`otlp`, from `TelemetryGuard::start_metrics`): exports
/// the operator's metrics on its meter, taking a snapshot of `distributor`
/// every export interval; a no-op otherwise. Call inside the tokio
/// runtime; the task runs until the process ends.
pub fn spawn_metrics_export(otlp: Option<OtlpMetrics>, distributor: &Distributor) {
    let Some((meter, interval)) = otlp else { return };
    let latest: Latest<OperatorSnapshot> = Arc::default();
    register_instruments(&meter, &latest);
    let distributor = distributor.clone();
    spawn_snapshots(interval, latest, move || std::future::ready(Some(OperatorSnapshot::of(&distributor))));
}

fn register_instruments(meter: &Meter, latest: &Latest<OperatorSnapshot>) {
    let latest = latest.clone();
    register_otlp(meter, OPERATOR_METRICS, move |read: &OperatorRead| Some(read(current(&latest)?.as_ref())));
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::distribution::DistributorOptions;
    use fabric_io::metric_table::{Reading, collect_otlp};

    #[test]
    fn every_metric_of_the_table_is_exported_with_its_value() {
        let distributor = Distributor::new(DistributorOptions::default());
        distributor.set_objects(fabric_operator_core::index::Index::new());
        distributor.set_leader(true);
        let snapshot = Arc::new(OperatorSnapshot::of(&distributor));
        let latest: Latest<OperatorSnapshot> = Arc::new(std::sync::RwLock::new(Some(snapshot.clone())));
        let points = collect_otlp(|meter| register_instruments(meter, &latest));
        let names: Vec<&str> = points.iter().map(|point| point.metric.as_str()).collect();
        for metric in OPERATOR_METRICS {
            // A labelled metric without series (no object reconciled yet)
            // has no data point.
            if matches!((metric.read)(&snapshot), Reading::Series(series) if series.is_empty()) {
                continue;
            }
            for (name, _, _) in metric.def.otlp_instruments() {
                assert!(names.contains(&name.as_str()), "{name} not exported: {names:?}");
            }
        }
        let value = |name: &str| points.iter().find(|point| point.metric == name).map(|point| point.value);
        assert_eq!(value("fabric.operator.leader"), Some(1.0));
        assert_eq!(value("fabric.operator.compile.count"), Some(1.0), "the first compile");
    }

    #[test]
    fn nothing_is_reported_before_the_first_snapshot() {
        let latest: Latest<OperatorSnapshot> = Arc::default();
        assert!(collect_otlp(|meter| register_instruments(meter, &latest)).is_empty());
    }
}
