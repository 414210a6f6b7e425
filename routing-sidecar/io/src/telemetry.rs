//! Logging, and OpenTelemetry export of traces and metrics over OTLP/gRPC.
//!
//! [`init`] always installs the global `tracing` subscriber: an `EnvFilter`
//! (`RUST_LOG`, default `info`) and a text or JSON formatter on stderr. When
//! an OTLP endpoint is configured it adds a `tracing-opentelemetry` layer
//! whose spans go through a batch span processor to an OTLP/gRPC (tonic)
//! exporter; [`TelemetryGuard::start_metrics`] then gives the binary a
//! meter whose instruments a periodic reader exports. Without an endpoint
//! nothing OpenTelemetry is built and no connection is ever attempted.
//!
//! The SDK's batch processor and periodic reader run their exports on their
//! own threads, but the tonic channel does its IO on the tokio runtime that
//! was current when it was built: that runtime must keep running while
//! telemetry is on, and [`TelemetryGuard::shutdown`] flushes from a blocking
//! task so that even a current-thread runtime keeps driving the final export.
//!
//! Both binaries set up logging and export here: the sidecar as
//! `routing-sidecar`, the operator as `fabric-operator` (the service name
//! is the instrumentation scope).

use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use opentelemetry::KeyValue;
use opentelemetry::metrics::{Meter, MeterProvider as _};
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_otlp::WithExportConfig;
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::metrics::{PeriodicReader, SdkMeterProvider};
use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing_subscriber::filter::{FilterExt, filter_fn};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer, Registry};

/// How often metrics are exported (and the node's stats read) by default.
pub const DEFAULT_METRICS_INTERVAL: Duration = Duration::from_secs(10);
/// Per-request timeout of the OTLP exporters.
const EXPORT_TIMEOUT: Duration = Duration::from_secs(5);
/// How long [`TelemetryGuard::shutdown`] waits for the final flush.
const SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(5);
/// Default service name (and instrumentation scope).
const DEFAULT_SERVICE: &str = "routing-sidecar";

/// What [`init`] sets up.
#[derive(Clone, Debug)]
pub struct TelemetryOptions {
    /// `text` or `json`: the format of the log on stderr.
    pub log_format: String,
    /// OTLP/gRPC collector (`http://host:4317`); `None` turns export off.
    pub otlp_endpoint: Option<String>,
    /// Resource attribute `service.name`.
    pub service_name: String,
    /// Resource attribute `fabric.node_id`, when known at start.
    pub node_id: Option<String>,
    /// Period of the metrics export (and of the stats poll behind it).
    pub metrics_interval: Duration,
}

impl Default for TelemetryOptions {
    fn default() -> Self {
        Self {
            log_format: "text".into(),
            otlp_endpoint: None,
            service_name: DEFAULT_SERVICE.into(),
            node_id: None,
            metrics_interval: DEFAULT_METRICS_INTERVAL,
        }
    }
}

/// Keeps the OpenTelemetry providers; flushes and shuts them down with
/// [`shutdown`](Self::shutdown) or, best effort, on drop.
pub struct TelemetryGuard {
    otlp: Option<Otlp>,
    tracer: Option<SdkTracerProvider>,
    meter: Mutex<Option<SdkMeterProvider>>,
}

struct Otlp {
    endpoint: String,
    resource: Resource,
    metrics_interval: Duration,
}

/// Why logging or the OTLP export could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum TelemetryError {
    #[error("unknown log format {0:?} (text or json)")]
    LogFormat(String),
    #[error("OTLP export must be set up inside a tokio runtime")]
    NoRuntime,
    #[error("OTLP span exporter for {endpoint}: {source}")]
    SpanExporter {
        endpoint: String,
        #[source]
        source: opentelemetry_otlp::ExporterBuildError,
    },
    #[error("logging: {0}")]
    Subscriber(#[source] tracing_subscriber::util::TryInitError),
}

/// For shells that still report errors as text: `?` keeps working.
impl From<TelemetryError> for String {
    fn from(error: TelemetryError) -> String {
        error.to_string()
    }
}

type Layers = Vec<Box<dyn Layer<Registry> + Send + Sync>>;

/// Installs the global subscriber and, when `otlp_endpoint` is set, the
/// OTLP span export. With OTLP on it must be called inside a tokio runtime.
pub fn init(options: &TelemetryOptions) -> Result<TelemetryGuard, TelemetryError> {
    let filter = env_filter();
    // Colours only on a terminal: log files and collectors get plain text.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let fmt = tracing_subscriber::fmt::layer().with_writer(std::io::stderr).with_ansi(ansi);
    let fmt = match options.log_format.as_str() {
        "json" => fmt.json().boxed(),
        "text" => fmt.boxed(),
        other => return Err(TelemetryError::LogFormat(other.to_string())),
    };
    let mut layers: Layers = vec![fmt.with_filter(filter).boxed()];
    let mut guard = TelemetryGuard { otlp: None, tracer: None, meter: Mutex::new(None) };
    if let Some(endpoint) = options.otlp_endpoint.as_deref().filter(|e| !e.is_empty()) {
        if tokio::runtime::Handle::try_current().is_err() {
            return Err(TelemetryError::NoRuntime);
        }
        let resource = resource(options);
        let exporter = opentelemetry_otlp::SpanExporter::builder()
            .with_tonic()
            .with_endpoint(endpoint)
            .with_timeout(EXPORT_TIMEOUT)
            .build()
            .map_err(|source| TelemetryError::SpanExporter { endpoint: endpoint.to_string(), source })?;
        let provider =
            SdkTracerProvider::builder().with_batch_exporter(exporter).with_resource(resource.clone()).build();
        // The exporter's own stack must not feed spans back into it.
        let filter = env_filter().and(filter_fn(|meta| !is_exporter_internal(meta.target())));
        // The scope is the service: `routing-sidecar`, or `fabric-operator`
        // when the operator uses this setup.
        let otel = tracing_opentelemetry::layer()
            .with_tracer(provider.tracer(options.service_name.clone()))
            .with_filter(filter);
        layers.push(otel.boxed());
        guard.tracer = Some(provider);
        guard.otlp = Some(Otlp {
            endpoint: endpoint.to_string(),
            resource,
            metrics_interval: if options.metrics_interval.is_zero() {
                DEFAULT_METRICS_INTERVAL
            } else {
                options.metrics_interval
            },
        });
    }
    tracing_subscriber::registry().with(layers).try_init().map_err(TelemetryError::Subscriber)?;
    if let Some(otlp) = &guard.otlp {
        tracing::info!(endpoint = %otlp.endpoint, "exporting traces over OTLP/gRPC");
    }
    Ok(guard)
}

/// `RUST_LOG`, `info` when unset or invalid.
fn env_filter() -> EnvFilter {
    EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"))
}

fn is_exporter_internal(target: &str) -> bool {
    ["h2", "hyper", "tonic", "tower", "opentelemetry"].iter().any(|prefix| target.starts_with(prefix))
}

fn resource(options: &TelemetryOptions) -> Resource {
    let mut builder = Resource::builder()
        .with_service_name(options.service_name.clone())
        .with_attribute(KeyValue::new("service.version", env!("CARGO_PKG_VERSION")));
    if let Some(node_id) = &options.node_id {
        builder = builder.with_attribute(KeyValue::new("fabric.node_id", node_id.clone()));
    }
    builder.build()
}

impl TelemetryGuard {
    /// Whether OTLP export is on.
    pub fn otlp_enabled(&self) -> bool {
        self.otlp.is_some()
    }

    /// When OTLP is on, and the first time only: a meter (instrumentation
    /// scope `scope`) whose instruments
    /// are exported every `metrics_interval` (returned with it) through a
    /// periodic reader. `None` without OTLP, on a second call, or when the
    /// exporter cannot be built (logged).
    pub fn start_metrics(&self, scope: &'static str) -> Option<(Meter, Duration)> {
        let otlp = self.otlp.as_ref()?;
        let mut slot = self.meter.lock().unwrap_or_else(PoisonError::into_inner);
        if slot.is_some() {
            return None;
        }
        let exporter = match opentelemetry_otlp::MetricExporter::builder()
            .with_tonic()
            .with_endpoint(otlp.endpoint.clone())
            .with_timeout(EXPORT_TIMEOUT)
            .build()
        {
            Ok(exporter) => exporter,
            Err(e) => {
                tracing::error!(endpoint = %otlp.endpoint, error = %e, "OTLP metric exporter; metrics are not exported");
                return None;
            }
        };
        let reader = PeriodicReader::builder(exporter).with_interval(otlp.metrics_interval).build();
        let provider = SdkMeterProvider::builder().with_reader(reader).with_resource(otlp.resource.clone()).build();
        let meter = provider.meter(scope);
        *slot = Some(provider);
        tracing::info!(endpoint = %otlp.endpoint, interval = ?otlp.metrics_interval, "exporting metrics over OTLP/gRPC");
        Some((meter, otlp.metrics_interval))
    }

    /// Flushes what is buffered and shuts the exporters down. The flush runs
    /// on a blocking thread so the runtime keeps driving the export; waits
    /// at most a few seconds.
    pub async fn shutdown(mut self) {
        let providers = self.take_providers();
        if providers.is_empty() {
            return;
        }
        let flush = tokio::task::spawn_blocking(move || providers.shutdown());
        if tokio::time::timeout(SHUTDOWN_TIMEOUT + Duration::from_secs(1), flush).await.is_err() {
            tracing::warn!("telemetry did not flush within {SHUTDOWN_TIMEOUT:?}");
        }
    }

    fn take_providers(&mut self) -> Providers {
        Providers {
            tracer: self.tracer.take(),
            meter: self.meter.get_mut().unwrap_or_else(PoisonError::into_inner).take(),
        }
    }
}

impl Drop for TelemetryGuard {
    fn drop(&mut self) {
        let providers = self.take_providers();
        if providers.is_empty() {
            return;
        }
        if tokio::runtime::Handle::try_current().is_ok() {
            // Blocking here could stall the runtime the export needs.
            std::thread::spawn(move || providers.shutdown());
        } else {
            providers.shutdown();
        }
    }
}

struct Providers {
    tracer: Option<SdkTracerProvider>,
    meter: Option<SdkMeterProvider>,
}

impl Providers {
    fn is_empty(&self) -> bool {
        self.tracer.is_none() && self.meter.is_none()
    }

    fn shutdown(self) {
        if let Some(meter) = self.meter
            && let Err(e) = meter.shutdown_with_timeout(SHUTDOWN_TIMEOUT)
        {
            tracing::warn!(error = %e, "OTLP metrics shutdown");
        }
        if let Some(tracer) = self.tracer
            && let Err(e) = tracer.shutdown_with_timeout(SHUTDOWN_TIMEOUT)
        {
            tracing::warn!(error = %e, "OTLP traces shutdown");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exporter_internals_are_not_traced() {
        for target in ["h2::proto", "hyper_util::client", "tonic::transport", "opentelemetry_sdk", "tower::buffer"] {
            assert!(is_exporter_internal(target), "{target}");
        }
        assert!(!is_exporter_internal("fabric_sidecar::runtime::node"));
        assert!(!is_exporter_internal("routing_sidecar"));
    }

    #[test]
    fn init_without_a_runtime_refuses_otlp() {
        let options = TelemetryOptions { otlp_endpoint: Some("http://127.0.0.1:4317".into()), ..Default::default() };
        let error = init(&options).err().expect("no runtime");
        assert!(matches!(error, TelemetryError::NoRuntime), "{error:?}");
        assert!(error.to_string().contains("tokio runtime"), "{error}");
    }
}
