//! OTLP export end to end: a fake OTLP/gRPC collector (tonic, on
//! 127.0.0.1:0) records what real `routing-sidecar run` processes send it.

use std::path::{Path, PathBuf};
use std::sync::LazyLock;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use fabric_core::SidecarConfig;
use fabric_core::stats::RejectReason;
use fabric_engine::sim::Topology;
use fabric_sidecar::runtime::lab::{Lab, SidecarProcess};
use fabric_testkit::process::{scratch_in, sidecar_exe};
use fabric_testkit::wait::wait_for;
use opentelemetry_proto::tonic::collector::metrics::v1::metrics_service_server::{
    MetricsService, MetricsServiceServer,
};
use opentelemetry_proto::tonic::collector::metrics::v1::{ExportMetricsServiceRequest, ExportMetricsServiceResponse};
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{TraceService, TraceServiceServer};
use opentelemetry_proto::tonic::collector::trace::v1::{ExportTraceServiceRequest, ExportTraceServiceResponse};
use opentelemetry_proto::tonic::common::v1::{KeyValue, any_value};
use opentelemetry_proto::tonic::metrics::v1::{NumberDataPoint, metric, number_data_point};
use opentelemetry_proto::tonic::resource::v1::Resource;
use tokio::net::TcpListener;

/// Spans leave in batches every 5 s (the SDK's default schedule).
const DEADLINE: Duration = Duration::from_secs(15);

fn exe() -> &'static Path {
    static EXE: LazyLock<PathBuf> = LazyLock::new(sidecar_exe);
    &EXE
}

fn scratch(name: &str) -> PathBuf {
    scratch_in(&std::env::temp_dir(), &format!("fabric-otlp-{name}"))
}

/// Records every export request and counts the TCP connections accepted.
#[derive(Clone, Default)]
struct Collector {
    traces: Arc<Mutex<Vec<ExportTraceServiceRequest>>>,
    metrics: Arc<Mutex<Vec<ExportMetricsServiceRequest>>>,
    connections: Arc<AtomicUsize>,
}

#[tonic::async_trait]
impl TraceService for Collector {
    async fn export(
        &self,
        request: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        self.traces.lock().unwrap().push(request.into_inner());
        Ok(tonic::Response::new(ExportTraceServiceResponse { partial_success: None }))
    }
}

#[tonic::async_trait]
impl MetricsService for Collector {
    async fn export(
        &self,
        request: tonic::Request<ExportMetricsServiceRequest>,
    ) -> Result<tonic::Response<ExportMetricsServiceResponse>, tonic::Status> {
        self.metrics.lock().unwrap().push(request.into_inner());
        Ok(tonic::Response::new(ExportMetricsServiceResponse { partial_success: None }))
    }
}

/// A span as received: name, string attributes, and its resource's node id.
#[derive(Debug)]
struct ReceivedSpan {
    node_id: Option<String>,
    service: Option<String>,
    name: String,
    attributes: Vec<(String, String)>,
}

/// A metric data point as received (sums and gauges).
#[derive(Debug)]
struct ReceivedPoint {
    node_id: Option<String>,
    metric: String,
    unit: String,
    attributes: Vec<(String, String)>,
    value: f64,
}

impl Collector {
    /// Serves on 127.0.0.1:0; returns the `http://` endpoint.
    async fn start() -> (Self, String) {
        let collector = Self::default();
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind the collector");
        let endpoint = format!("http://{}", listener.local_addr().expect("collector address"));
        let connections = collector.connections.clone();
        let incoming = futures::stream::unfold(listener, move |listener| {
            let connections = connections.clone();
            async move {
                let accepted = listener.accept().await.map(|(stream, _)| {
                    connections.fetch_add(1, Ordering::SeqCst);
                    stream
                });
                Some((accepted, listener))
            }
        });
        let server = tonic::transport::Server::builder()
            .add_service(TraceServiceServer::new(collector.clone()))
            .add_service(MetricsServiceServer::new(collector.clone()))
            .serve_with_incoming(incoming);
        tokio::spawn(async move { server.await.expect("collector server") });
        (collector, endpoint)
    }

    fn spans(&self) -> Vec<ReceivedSpan> {
        let traces = self.traces.lock().unwrap();
        let mut spans = Vec::new();
        for resource_spans in traces.iter().flat_map(|r| &r.resource_spans) {
            let node_id = resource_attribute(resource_spans.resource.as_ref(), "fabric.node_id");
            let service = resource_attribute(resource_spans.resource.as_ref(), "service.name");
            for span in resource_spans.scope_spans.iter().flat_map(|s| &s.spans) {
                spans.push(ReceivedSpan {
                    node_id: node_id.clone(),
                    service: service.clone(),
                    name: span.name.clone(),
                    attributes: strings(&span.attributes),
                });
            }
        }
        spans
    }

    fn points(&self) -> Vec<ReceivedPoint> {
        let requests = self.metrics.lock().unwrap();
        let mut points = Vec::new();
        for resource_metrics in requests.iter().flat_map(|r| &r.resource_metrics) {
            let node_id = resource_attribute(resource_metrics.resource.as_ref(), "fabric.node_id");
            for m in resource_metrics.scope_metrics.iter().flat_map(|s| &s.metrics) {
                let data_points: &[NumberDataPoint] = match &m.data {
                    Some(metric::Data::Sum(sum)) => &sum.data_points,
                    Some(metric::Data::Gauge(gauge)) => &gauge.data_points,
                    _ => &[],
                };
                for point in data_points {
                    let value = match point.value {
                        Some(number_data_point::Value::AsInt(v)) => v as f64,
                        Some(number_data_point::Value::AsDouble(v)) => v,
                        None => f64::NAN,
                    };
                    points.push(ReceivedPoint {
                        node_id: node_id.clone(),
                        metric: m.name.clone(),
                        unit: m.unit.clone(),
                        attributes: strings(&point.attributes),
                        value,
                    });
                }
            }
        }
        points
    }

    fn nothing_received(&self) -> bool {
        self.traces.lock().unwrap().is_empty() && self.metrics.lock().unwrap().is_empty()
    }
}

fn string_value(kv: &KeyValue) -> Option<String> {
    match kv.value.as_ref()?.value.as_ref()? {
        any_value::Value::StringValue(s) => Some(s.clone()),
        any_value::Value::IntValue(i) => Some(i.to_string()),
        any_value::Value::BoolValue(b) => Some(b.to_string()),
        any_value::Value::DoubleValue(d) => Some(d.to_string()),
        _ => None,
    }
}

fn strings(attributes: &[KeyValue]) -> Vec<(String, String)> {
    attributes.iter().filter_map(|kv| Some((kv.key.clone(), string_value(kv)?))).collect()
}

fn resource_attribute(resource: Option<&Resource>, key: &str) -> Option<String> {
    resource?.attributes.iter().find(|kv| kv.key == key).and_then(string_value)
}

fn attribute<'a>(attributes: &'a [(String, String)], key: &str) -> Option<&'a str> {
    attributes.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
}

/// Waits until `check` holds; fails with `what` and `detail()` after `limit`.
async fn eventually(limit: Duration, what: &str, check: impl Fn() -> bool, detail: impl Fn() -> String) {
    wait_for(what, limit, || std::future::ready(if check() { Ok(()) } else { Err(detail()) })).await
}

fn pair() -> Topology {
    Topology::from_yaml(
        "nodes:\n  - {id: otel-a, originate: [{destination: svc}]}\n  - {id: otel-b}\nlinks:\n  - {a: otel-a, b: otel-b}\n",
    )
    .expect("topology")
}

fn fast_sessions(config: &mut SidecarConfig) {
    config.session.hold_time = Duration::from_millis(900);
    config.session.reconnect_initial = Duration::from_millis(20);
    config.session.reconnect_max = Duration::from_millis(200);
}

fn otlp_args(endpoint: &str) -> Vec<String> {
    vec!["--otlp-endpoint".into(), endpoint.into(), "--otlp-metrics-interval".into(), "200ms".into()]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn otlp_exports_config_apply_spans_and_node_metrics() {
    let (collector, endpoint) = Collector::start().await;
    let dir = scratch("export");
    let mut lab = Lab::start_with(exe(), &pair(), &dir, fast_sessions, |_| otlp_args(&endpoint)).await.unwrap();
    lab.wait_for_routes(1, Duration::from_secs(20)).await.unwrap();

    // A config apply through the API, with a version to find its span by.
    let mut config = lab.configs["otel-a"].clone();
    config.version = Some("otel-v2".into());
    let response = lab.node("otel-a").apply(&config).await.unwrap();
    assert_eq!(response.status, 200, "{}", response.body);
    lab.configs.insert("otel-a".into(), config);

    let applied = |span: &ReceivedSpan| {
        span.name == "fabric.config.apply"
            && span.node_id.as_deref() == Some("otel-a")
            && attribute(&span.attributes, "version") == Some("otel-v2")
    };
    eventually(
        DEADLINE,
        "config-apply span of otel-a",
        || collector.spans().iter().any(applied),
        || format!("spans: {:?}", collector.spans()),
    )
    .await;
    let spans = collector.spans();
    let span = spans.iter().find(|s| applied(s)).expect("checked");
    assert_eq!(attribute(&span.attributes, "source"), Some("api"), "{span:?}");
    assert_eq!(attribute(&span.attributes, "result"), Some("applied"), "{span:?}");
    assert_eq!(span.service.as_deref(), Some("routing-sidecar"), "{span:?}");
    // Every span carries its node's id; both nodes export.
    assert!(spans.iter().all(|s| matches!(s.node_id.as_deref(), Some("otel-a" | "otel-b"))), "{spans:?}");

    // otel-b learned svc from otel-a: one active route, a session up with otel-a.
    let b_has = |metric: &str, attributes: &[(&str, &str)], value: f64| {
        collector.points().iter().any(|p| {
            p.node_id.as_deref() == Some("otel-b")
                && p.metric == metric
                && p.value == value
                && attributes.iter().all(|(k, v)| attribute(&p.attributes, k) == Some(*v))
        })
    };
    eventually(
        DEADLINE,
        "metrics of otel-b",
        || b_has("fabric.routes.active", &[], 1.0) && b_has("fabric.peer.session.up", &[("peer", "otel-a")], 1.0),
        || {
            let names: std::collections::BTreeSet<String> =
                collector.points().into_iter().map(|p| format!("{}@{:?}", p.metric, p.node_id)).collect();
            format!("metrics: {names:?}")
        },
    )
    .await;
    let points = collector.points();
    let rejects: Vec<&ReceivedPoint> = points
        .iter()
        .filter(|p| p.metric == "fabric.announcement.rejects" && p.node_id.as_deref() == Some("otel-b"))
        .collect();
    // Every reason is reported, zero when unseen (as on /metrics).
    for reason in RejectReason::ALL {
        assert!(rejects.iter().any(|p| attribute(&p.attributes, "reason") == Some(reason.label())), "{reason:?}");
    }
    assert!(rejects.iter().all(|p| p.unit == "{announcement}"), "{rejects:?}");
    for name in [
        "fabric.route.candidates",
        "fabric.announcements.received",
        "fabric.announcements.accepted",
        "fabric.routes.withdrawn",
        "fabric.routes.suppressed",
        "fabric.hold_down.rejects",
        "fabric.withdrawals.received",
        "fabric.withdrawals.applied",
        "fabric.convergence.count",
        "fabric.convergence.time",
        "fabric.config.applied",
    ] {
        assert!(points.iter().any(|p| p.metric == name), "no {name} received");
    }
    let received = points
        .iter()
        .filter(|p| p.metric == "fabric.announcements.received" && p.node_id.as_deref() == Some("otel-b"))
        .map(|p| p.value)
        .fold(0.0, f64::max);
    assert!(received >= 1.0, "otel-b received announcements: {received}");

    // A clean stop flushes and exits promptly.
    for node in lab.nodes.values_mut() {
        node.terminate().await.unwrap();
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_the_flag_nothing_is_exported() {
    let (collector, endpoint) = Collector::start().await;
    let dir = scratch("off");
    // The sidecar without the flag starts, applies configs, and answers.
    let mut config = SidecarConfig::new("quiet");
    let quiet = SidecarProcess::spawn(exe(), &config, &dir.join("quiet"), &[]).await.unwrap();
    for version in ["q1", "q2"] {
        config.version = Some(version.into());
        assert_eq!(quiet.apply(&config).await.unwrap().status, 200);
    }
    assert_eq!(quiet.get_json("/config").await.unwrap()["version"], "q2");
    assert!(collector.nothing_received());

    // A control sidecar with the flag, started and configured after it: by
    // the time its spans arrive, the quiet one's would have been sent too.
    let mut control_config = SidecarConfig::new("loud");
    let control =
        SidecarProcess::spawn(exe(), &control_config, &dir.join("loud"), &otlp_args(&endpoint)).await.unwrap();
    control_config.version = Some("l1".into());
    assert_eq!(control.apply(&control_config).await.unwrap().status, 200);
    eventually(
        DEADLINE,
        "control sidecar's config-apply span",
        || collector.spans().iter().any(|s| s.name == "fabric.config.apply" && s.node_id.as_deref() == Some("loud")),
        || format!("spans: {:?}", collector.spans()),
    )
    .await;
    let spans = collector.spans();
    assert!(spans.iter().all(|s| s.node_id.as_deref() == Some("loud")), "{spans:?}");
    assert!(collector.points().iter().all(|p| p.node_id.as_deref() == Some("loud")));
    // Traces and metrics use one channel each: the quiet sidecar opened none.
    assert!(
        collector.connections.load(Ordering::SeqCst) <= 2,
        "{} connections",
        collector.connections.load(Ordering::SeqCst)
    );
    drop(control);
    drop(quiet);
    let _ = std::fs::remove_dir_all(&dir);
}
