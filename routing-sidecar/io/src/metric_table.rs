//! One table of metric definitions per binary, read by both exporters.
//!
//! Each [`Metric`] says once what a metric is ([`Def`]: its Prometheus
//! name, OpenTelemetry name, kind, unit, help text and label names) and how
//! to read its value from the binary's snapshot (`read`, a function the
//! binary chooses). [`register_prometheus`] renders a table into a
//! `prometheus-client` registry at scrape time; [`register_otlp`] turns the
//! same table into asynchronous OpenTelemetry instruments. So adding a
//! metric is one entry, and the two exports cannot disagree on help texts,
//! labels or values.
//!
//! Prometheus names are given without the binary's prefix (the registry
//! adds it), without `_total` (the encoders add it to counters) and without
//! the unit suffix (`s` gives `_seconds`, `By` gives `_bytes`).

use std::borrow::Cow;
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::Duration;

use fabric_core::histogram::{Buckets, Histogram};
use opentelemetry::KeyValue;
use opentelemetry::metrics::{AsyncInstrument, Meter, MeterProvider as _};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::info::Info;
use prometheus_client::registry::{Registry, Unit};

use crate::prometheus::{ConstHistogram, Labels, counters, gauges};

/// What kind of metric an entry is, in both exports.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// Prometheus counter; OTLP monotonic sum (observable counter).
    Counter,
    /// Prometheus gauge; OTLP non-monotonic sum (observable up-down
    /// counter): an amount that adds up across nodes (routes, entries).
    UpDownCounter,
    /// Prometheus gauge; OTLP gauge: a state or level that does not add up.
    Gauge,
    /// Prometheus histogram. OpenTelemetry has no asynchronous histogram,
    /// so OTLP gets two counters: `<otlp name>.count` (observations, in
    /// `count_unit`) and `<otlp name>.time` (their sum, in seconds).
    Histogram { count_unit: &'static str },
    /// Prometheus info metric (value always 1, the data in its labels);
    /// not exported over OTLP, where such data are resource attributes.
    Info,
}

/// What a metric is, as both exporters show it. Built with the constructors
/// and finished with [`Def::read`], which gives the table entry:
/// `Def::counter("messages_sent", "Messages queued").otlp("x.messages.sent", "{message}").read(|s| ...)`.
#[derive(Clone, Copy, Debug)]
pub struct Def {
    /// Prometheus family name without prefix, `_total` or unit suffix.
    pub name: &'static str,
    /// OpenTelemetry instrument name (`fabric.routes.active`); `None`: not
    /// exported over OTLP (an info metric, or a binary that exports no
    /// metrics over OTLP).
    pub otlp_name: Option<&'static str>,
    pub kind: Kind,
    /// UCUM unit as OTLP carries it (`s`, `By`, `1`, `{route}`), set by
    /// [`Def::otlp`] (`s` for every histogram); `s` and `By` also give the
    /// Prometheus unit suffix.
    pub unit: &'static str,
    /// Help text, without a final full stop (the Prometheus registry adds
    /// one); the OTLP description is the same text.
    pub help: &'static str,
    /// Label names, in the order the reader gives their values.
    pub labels: &'static [&'static str],
}

/// One entry of a binary's metric table: the definition and how to read
/// the value from the binary's snapshot (`R`, a function type the binary
/// chooses).
#[derive(Clone, Copy, Debug)]
pub struct Metric<R> {
    pub def: Def,
    pub read: R,
}

impl Def {
    const fn new(kind: Kind, name: &'static str, help: &'static str) -> Self {
        Self { name, otlp_name: None, kind, unit: "", help, labels: &[] }
    }

    pub const fn counter(name: &'static str, help: &'static str) -> Self {
        Self::new(Kind::Counter, name, help)
    }

    pub const fn up_down_counter(name: &'static str, help: &'static str) -> Self {
        Self::new(Kind::UpDownCounter, name, help)
    }

    pub const fn gauge(name: &'static str, help: &'static str) -> Self {
        Self::new(Kind::Gauge, name, help)
    }

    /// A duration histogram (unit `s`).
    pub const fn histogram(name: &'static str, help: &'static str) -> Self {
        let mut def = Self::new(Kind::Histogram { count_unit: "" }, name, help);
        def.unit = "s";
        def
    }

    pub const fn info(name: &'static str, help: &'static str, labels: &'static [&'static str]) -> Self {
        let mut def = Self::new(Kind::Info, name, help);
        def.labels = labels;
        def
    }

    /// The OTLP instrument name and unit; for a histogram, `unit` is that
    /// of its observation count (the sum is in seconds).
    pub const fn otlp(mut self, name: &'static str, unit: &'static str) -> Self {
        self.otlp_name = Some(name);
        match self.kind {
            Kind::Histogram { .. } => self.kind = Kind::Histogram { count_unit: unit },
            _ => self.unit = unit,
        }
        self
    }

    /// The label names of a labelled family.
    pub const fn labels(mut self, labels: &'static [&'static str]) -> Self {
        self.labels = labels;
        self
    }

    /// The table entry: this definition, read with `read`.
    pub const fn read<R>(self, read: R) -> Metric<R> {
        Metric { def: self, read }
    }

    fn prometheus_unit(&self) -> Option<Unit> {
        match self.unit {
            "s" => Some(Unit::Seconds),
            "By" => Some(Unit::Bytes),
            _ => None,
        }
    }

    /// The family name in the classic text format (`# TYPE` line) under
    /// `prefix`: `fabric_routes_withdrawn_total`, `fabric_node_info`,
    /// `fabric_convergence_seconds`.
    pub fn prometheus_family(&self, prefix: &str) -> String {
        let unit = match self.prometheus_unit() {
            Some(Unit::Seconds) => "_seconds",
            Some(Unit::Bytes) => "_bytes",
            _ => "",
        };
        let suffix = match self.kind {
            Kind::Counter => "_total",
            Kind::Info => "_info",
            _ => "",
        };
        format!("{prefix}_{}{unit}{suffix}", self.name)
    }

    /// `(name, unit, description)` of each OTLP instrument of this metric:
    /// none for an info metric, two for a histogram.
    pub fn otlp_instruments(&self) -> Vec<(String, &'static str, Cow<'static, str>)> {
        let Some(name) = self.otlp_name else { return Vec::new() };
        match self.kind {
            Kind::Info => Vec::new(),
            Kind::Histogram { count_unit } => vec![
                (format!("{name}.count"), count_unit, format!("{} (observations)", self.help).into()),
                (format!("{name}.time"), "s", format!("{} (sum of the observations)", self.help).into()),
            ],
            _ => vec![(name.to_owned(), self.unit, self.help.into())],
        }
    }
}

/// A value read from a snapshot for one metric.
#[derive(Clone, Debug, PartialEq)]
pub enum Reading {
    /// One sample without labels (counters, gauges).
    Value(u64),
    /// One sample per label-value tuple, in the order of `Def::labels`;
    /// the series come out in this order.
    Series(Vec<(Vec<String>, u64)>),
    Histogram(HistogramReading),
    /// The label values of an info metric.
    Info(Vec<String>),
}

/// A histogram as read from a snapshot.
#[derive(Clone, Debug, PartialEq)]
pub struct HistogramReading {
    pub bounds: &'static [f64],
    /// Cumulative counts per bound; may be empty (no observation yet).
    pub buckets: Vec<u64>,
    pub count: u64,
    pub sum_seconds: f64,
}

impl From<u64> for Reading {
    fn from(value: u64) -> Self {
        Reading::Value(value)
    }
}

impl<B: Buckets> From<&Histogram<B>> for Reading {
    fn from(histogram: &Histogram<B>) -> Self {
        Reading::Histogram(HistogramReading {
            bounds: histogram.bounds(),
            buckets: histogram.buckets.clone(),
            count: histogram.count,
            sum_seconds: histogram.sum_seconds,
        })
    }
}

impl Reading {
    /// One series per `(label value, value)`: a family with one label.
    pub fn by_label<V: ToString>(series: impl IntoIterator<Item = (V, u64)>) -> Self {
        Reading::Series(series.into_iter().map(|(label, value)| (vec![label.to_string()], value)).collect())
    }

    /// The samples of a counter or gauge reading: `[]` labels for a plain value.
    fn samples(self) -> Vec<(Vec<String>, u64)> {
        match self {
            Reading::Value(value) => vec![(Vec::new(), value)],
            Reading::Series(series) => series,
            Reading::Histogram(_) | Reading::Info(_) => Vec::new(),
        }
    }

    /// Whether this reading fits `metric` (kind and number of labels).
    pub fn check(&self, metric: &Def) -> Result<(), String> {
        let fits = match (self, metric.kind) {
            (Reading::Value(_), Kind::Counter | Kind::UpDownCounter | Kind::Gauge) => metric.labels.is_empty(),
            (Reading::Series(series), Kind::Counter | Kind::UpDownCounter | Kind::Gauge) => {
                series.iter().all(|(values, _)| values.len() == metric.labels.len())
            }
            (Reading::Histogram(_), Kind::Histogram { .. }) => metric.labels.is_empty(),
            (Reading::Info(values), Kind::Info) => values.len() == metric.labels.len(),
            _ => false,
        };
        if fits {
            Ok(())
        } else {
            Err(format!("{}: {:?} does not fit {:?} {:?}", metric.name, self, metric.kind, metric.labels))
        }
    }
}

fn label_pairs(names: &'static [&'static str], values: Vec<String>) -> Labels {
    names.iter().copied().zip(values).collect()
}

/// Registers `metric` with the value `reading` (read from the snapshot
/// being rendered). A reading that does not fit the metric (a bug the
/// table tests catch) registers nothing.
pub fn register_prometheus(registry: &mut Registry, metric: &Def, reading: Reading) {
    if let Err(error) = reading.check(metric) {
        debug_assert!(false, "{error}");
        return;
    }
    let (name, help, unit) = (metric.name, metric.help, metric.prometheus_unit());
    let labelled = |reading: Reading| {
        reading
            .samples()
            .into_iter()
            .map(|(values, value)| (label_pairs(metric.labels, values), value))
            .collect::<Vec<_>>()
    };
    match (metric.kind, reading) {
        (Kind::Counter, Reading::Value(value)) => add(registry, name, help, unit, ConstCounter::new(value)),
        (Kind::UpDownCounter | Kind::Gauge, Reading::Value(value)) => {
            add(registry, name, help, unit, ConstGauge::new(value))
        }
        (Kind::Counter, reading) => add(registry, name, help, unit, counters(labelled(reading))),
        (Kind::UpDownCounter | Kind::Gauge, reading) => add(registry, name, help, unit, gauges(labelled(reading))),
        (Kind::Histogram { .. }, Reading::Histogram(h)) => {
            let histogram = ConstHistogram::from_cumulative(h.bounds, &h.buckets, h.count, h.sum_seconds);
            add(registry, name, help, unit, histogram)
        }
        (Kind::Info, Reading::Info(values)) => {
            add(registry, name, help, unit, Info::new(label_pairs(metric.labels, values)))
        }
        _ => {}
    }
}

fn add(
    registry: &mut Registry,
    name: &str,
    help: &str,
    unit: Option<Unit>,
    metric: impl prometheus_client::registry::Metric,
) {
    match unit {
        Some(unit) => registry.register_with_unit(name, help, unit, metric),
        None => registry.register(name, help, metric),
    }
}

/// Registers every metric of `table` on `meter` as asynchronous
/// instruments. Their callbacks call `read` with the metric's reader; it
/// returns `None` while there is nothing to report (no snapshot yet, or a
/// part of the snapshot that is off), and then the instrument reports
/// nothing.
pub fn register_otlp<R, F>(meter: &Meter, table: &'static [Metric<R>], read: F)
where
    R: Sync + 'static,
    F: Fn(&R) -> Option<Reading> + Clone + Send + Sync + 'static,
{
    for entry in table {
        let metric = &entry.def;
        let instruments = metric.otlp_instruments();
        let observe = {
            let read = read.clone();
            move || read(&entry.read).filter(|reading| reading.check(metric).is_ok())
        };
        let attributes = |values: Vec<String>| -> Vec<KeyValue> {
            metric.labels.iter().zip(values).map(|(k, v)| KeyValue::new(*k, v)).collect()
        };
        match metric.kind {
            Kind::Info => {}
            Kind::Counter => {
                let (name, unit, description) = instruments[0].clone();
                meter
                    .u64_observable_counter(name)
                    .with_unit(unit)
                    .with_description(description)
                    .with_callback(move |observer| observe_samples(observer, observe(), attributes, |v| v))
                    .build();
            }
            Kind::Gauge => {
                let (name, unit, description) = instruments[0].clone();
                meter
                    .u64_observable_gauge(name)
                    .with_unit(unit)
                    .with_description(description)
                    .with_callback(move |observer| observe_samples(observer, observe(), attributes, |v| v))
                    .build();
            }
            Kind::UpDownCounter => {
                let (name, unit, description) = instruments[0].clone();
                meter
                    .i64_observable_up_down_counter(name)
                    .with_unit(unit)
                    .with_description(description)
                    .with_callback(move |observer| {
                        observe_samples(observer, observe(), attributes, |v| i64::try_from(v).unwrap_or(i64::MAX))
                    })
                    .build();
            }
            Kind::Histogram { .. } => {
                let (count_name, count_unit, count_description) = instruments[0].clone();
                let (time_name, time_unit, time_description) = instruments[1].clone();
                let observe_count = observe.clone();
                meter
                    .u64_observable_counter(count_name)
                    .with_unit(count_unit)
                    .with_description(count_description)
                    .with_callback(move |observer| {
                        if let Some(Reading::Histogram(h)) = observe_count() {
                            observer.observe(h.count, &[]);
                        }
                    })
                    .build();
                meter
                    .f64_observable_counter(time_name)
                    .with_unit(time_unit)
                    .with_description(time_description)
                    .with_callback(move |observer| {
                        if let Some(Reading::Histogram(h)) = observe() {
                            observer.observe(h.sum_seconds, &[]);
                        }
                    })
                    .build();
            }
        }
    }
}

fn observe_samples<T>(
    observer: &dyn AsyncInstrument<T>,
    reading: Option<Reading>,
    attributes: impl Fn(Vec<String>) -> Vec<KeyValue>,
    convert: impl Fn(u64) -> T,
) {
    for (values, value) in reading.map(Reading::samples).unwrap_or_default() {
        observer.observe(convert(value), &attributes(values));
    }
}

/// Where a metrics document disagrees with a table: the binaries' doc
/// tests call this with their table and their part of `docs/metrics.md`.
///
/// `prometheus_rows` holds Markdown rows `| \`family\` | type | labels | ...`
/// and `otlp_rows` (when the binary exports OTLP) rows `| \`otlp name\` |
/// instrument | \`unit\` | attributes | \`Prometheus name\` |`. Every metric
/// must have its rows, with the kind, labels and unit of the table, and
/// every row must name a metric of the table.
pub fn docs_mismatches(defs: &[Def], prefix: &str, prometheus_rows: &str, otlp_rows: Option<&str>) -> Vec<String> {
    fn rows(text: &str) -> Vec<Vec<&str>> {
        text.lines().filter(|l| l.starts_with("| `")).map(|l| l.split('|').map(str::trim).skip(1).collect()).collect()
    }
    fn quoted(cell: &str) -> Vec<&str> {
        cell.split('`').skip(1).step_by(2).collect()
    }
    let mut problems = Vec::new();
    let mut check = |ok: bool, problem: String| {
        if !ok {
            problems.push(problem);
        }
    };
    let prometheus = rows(prometheus_rows);
    let otlp = otlp_rows.map(rows).unwrap_or_default();
    let mut families = Vec::new();
    let mut instruments = Vec::new();
    for def in defs {
        let family = def.prometheus_family(prefix);
        let want_type = match def.kind {
            Kind::Counter => "counter",
            Kind::UpDownCounter | Kind::Gauge => "gauge",
            Kind::Histogram { .. } => "histogram",
            Kind::Info => "gauge (OpenMetrics: info)",
        };
        match prometheus.iter().find(|row| quoted(row[0]) == [family.as_str()]) {
            None => check(false, format!("no row for `{family}`")),
            Some(row) => {
                check(row.get(1) == Some(&want_type), format!("`{family}`: type {:?}, not {want_type:?}", row.get(1)));
                let labels: Vec<&str> = row
                    .get(2)
                    .map(|cell| quoted(cell))
                    .unwrap_or_default()
                    .into_iter()
                    .filter(|l| *l != "le" && *l != "_bucket")
                    .collect();
                check(labels == def.labels, format!("`{family}`: labels {labels:?}, not {:?}", def.labels));
            }
        }
        if otlp_rows.is_some() {
            for (index, (name, unit, _)) in def.otlp_instruments().into_iter().enumerate() {
                let (want_instrument, prometheus_name) = match (def.kind, index) {
                    (Kind::Histogram { .. }, 0) => ("counter", format!("{family}_count")),
                    (Kind::Histogram { .. }, _) => ("counter (float)", format!("{family}_sum")),
                    (Kind::UpDownCounter, _) => ("up-down counter", family.clone()),
                    (Kind::Gauge, _) => ("gauge", family.clone()),
                    _ => ("counter", family.clone()),
                };
                match otlp.iter().find(|row| quoted(row[0]) == [name.as_str()]) {
                    None => check(false, format!("no OTLP row for `{name}`")),
                    Some(row) => {
                        let cell = |i: usize| row.get(i).copied().unwrap_or_default();
                        check(
                            cell(1) == want_instrument,
                            format!("`{name}`: instrument {:?}, not {want_instrument:?}", cell(1)),
                        );
                        check(quoted(cell(2)) == [unit], format!("`{name}`: unit {:?}, not {unit:?}", cell(2)));
                        check(
                            quoted(cell(3)) == def.labels,
                            format!("`{name}`: attributes {:?}, not {:?}", cell(3), def.labels),
                        );
                        check(
                            quoted(cell(4)) == [prometheus_name.as_str()],
                            format!("`{name}`: Prometheus {:?}, not {prometheus_name:?}", cell(4)),
                        );
                    }
                }
                instruments.push(name);
            }
        }
        families.push(family);
    }
    for row in &prometheus {
        let name = quoted(row[0]).concat();
        check(families.contains(&name), format!("row `{name}` is not a metric of the table"));
    }
    for row in &otlp {
        let name = quoted(row[0]).concat();
        check(instruments.contains(&name), format!("OTLP row `{name}` is not an instrument of the table"));
    }
    problems
}

/// One data point an OTLP export carries, as [`collect_otlp`] returns it.
#[derive(Clone, Debug, PartialEq)]
pub struct OtlpPoint {
    pub metric: String,
    pub description: String,
    pub unit: String,
    /// `(key, value)` attributes, sorted by key.
    pub attributes: Vec<(String, String)>,
    pub value: f64,
}

/// The latest snapshot a binary's OTLP callbacks ([`register_otlp`]) read;
/// `None` until the first was taken.
pub type Latest<T> = Arc<RwLock<Option<Arc<T>>>>;

/// The snapshot in `latest`, if one was taken.
pub fn current<T>(latest: &Latest<T>) -> Option<Arc<T>> {
    latest.read().unwrap_or_else(PoisonError::into_inner).clone()
}

/// Puts what `take` returns into `latest` every `interval` (the export
/// period, so a value is at most one period old), until `take` returns
/// `None`. Call inside the tokio runtime.
pub fn spawn_snapshots<T, F, Fut>(interval: Duration, latest: Latest<T>, mut take: F)
where
    T: Send + Sync + 'static,
    F: FnMut() -> Fut + Send + 'static,
    Fut: Future<Output = Option<T>> + Send,
{
    tokio::spawn(async move {
        let mut ticker = tokio::time::interval(interval);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticker.tick().await;
            let Some(snapshot) = take().await else { break };
            *latest.write().unwrap_or_else(PoisonError::into_inner) = Some(Arc::new(snapshot));
        }
    });
}

/// What the instruments `register` puts on a meter report right now,
/// collected in process (no collector, no network): the data points one
/// OTLP export would carry. For tests that compare the exports.
pub fn collect_otlp(register: impl FnOnce(&Meter)) -> Vec<OtlpPoint> {
    let exporter = CapturingExporter::default();
    let points = exporter.points.clone();
    let reader =
        opentelemetry_sdk::metrics::PeriodicReader::builder(exporter).with_interval(Duration::from_secs(3600)).build();
    let provider = opentelemetry_sdk::metrics::SdkMeterProvider::builder().with_reader(reader).build();
    register(&provider.meter("collect"));
    provider.force_flush().expect("in-process metric export");
    // Taken before the shutdown, which exports once more.
    let collected = std::mem::take(&mut *points.lock().unwrap_or_else(PoisonError::into_inner));
    let _ = provider.shutdown();
    collected
}

#[derive(Default)]
struct CapturingExporter {
    points: Arc<Mutex<Vec<OtlpPoint>>>,
}

impl opentelemetry_sdk::metrics::exporter::PushMetricExporter for CapturingExporter {
    fn export(
        &self,
        metrics: &opentelemetry_sdk::metrics::data::ResourceMetrics,
    ) -> impl std::future::Future<Output = opentelemetry_sdk::error::OTelSdkResult> + Send {
        use opentelemetry_sdk::metrics::data::{AggregatedMetrics, MetricData};
        let mut points = self.points.lock().unwrap_or_else(PoisonError::into_inner);
        for metric in metrics.scope_metrics().flat_map(|scope| scope.metrics()) {
            let mut push = |attributes: Vec<(String, String)>, value: f64| {
                points.push(OtlpPoint {
                    metric: metric.name().to_owned(),
                    description: metric.description().to_owned(),
                    unit: metric.unit().to_owned(),
                    attributes,
                    value,
                })
            };
            fn attributes<'a>(kv: impl Iterator<Item = &'a KeyValue>) -> Vec<(String, String)> {
                let mut pairs: Vec<(String, String)> =
                    kv.map(|kv| (kv.key.to_string(), kv.value.to_string())).collect();
                pairs.sort();
                pairs
            }
            macro_rules! points_of {
                ($data:expr) => {
                    match $data {
                        MetricData::Sum(sum) => {
                            sum.data_points().for_each(|p| push(attributes(p.attributes()), p.value() as f64))
                        }
                        MetricData::Gauge(gauge) => {
                            gauge.data_points().for_each(|p| push(attributes(p.attributes()), p.value() as f64))
                        }
                        _ => {}
                    }
                };
            }
            match metric.data() {
                AggregatedMetrics::U64(data) => points_of!(data),
                AggregatedMetrics::I64(data) => points_of!(data),
                AggregatedMetrics::F64(data) => points_of!(data),
            }
        }
        std::future::ready(Ok(()))
    }

    fn force_flush(&self) -> opentelemetry_sdk::error::OTelSdkResult {
        Ok(())
    }

    fn shutdown_with_timeout(&self, _timeout: Duration) -> opentelemetry_sdk::error::OTelSdkResult {
        Ok(())
    }

    fn temporality(&self) -> opentelemetry_sdk::metrics::Temporality {
        opentelemetry_sdk::metrics::Temporality::Cumulative
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::prometheus::{MetricsFormat, encode};

    struct Snapshot {
        sent: u64,
        queued: Vec<(&'static str, u64)>,
        up: bool,
        waits: Histogram<Waits>,
    }

    enum Waits {}
    impl Buckets for Waits {
        const BOUNDS: &'static [f64] = &[0.1, 1.0];
    }

    type Read = fn(&Snapshot) -> Reading;

    static TABLE: &[Metric<Read>] = &[
        Def::info("build", "Version of this binary", &["version"]).read(|_| Reading::Info(vec!["1.2".into()])),
        Def::counter("messages_sent", "Messages sent").otlp("test.messages.sent", "{message}").read(|s| s.sent.into()),
        Def::up_down_counter("queued", "Bytes queued, by peer")
            .labels(&["peer"])
            .otlp("test.queued", "By")
            .read(|s| Reading::by_label(s.queued.iter().copied())),
        Def::gauge("up", "Whether it is up").otlp("test.up", "1").read(|s| u64::from(s.up).into()),
        Def::histogram("wait", "Time spent waiting").otlp("test.wait", "{wait}").read(|s| (&s.waits).into()),
    ];

    fn snapshot() -> Snapshot {
        let mut waits = Histogram::default();
        waits.observe_seconds(0.05);
        waits.observe_seconds(3.0);
        Snapshot { sent: 7, queued: vec![("b", 9), ("a", 4)], up: true, waits }
    }

    fn render(snapshot: &Snapshot) -> String {
        let mut registry = Registry::with_prefix("test");
        for metric in TABLE {
            register_prometheus(&mut registry, &metric.def, (metric.read)(snapshot));
        }
        encode(&registry, MetricsFormat::PrometheusText)
    }

    #[test]
    fn prometheus_renders_every_kind_with_names_units_and_labels() {
        let text = render(&snapshot());
        for line in [
            "# HELP test_build_info Version of this binary.",
            "test_build_info{version=\"1.2\"} 1",
            "# HELP test_messages_sent_total Messages sent.",
            "# TYPE test_messages_sent_total counter",
            "test_messages_sent_total 7",
            "# TYPE test_queued_bytes gauge",
            "test_queued_bytes{peer=\"b\"} 9",
            "test_queued_bytes{peer=\"a\"} 4",
            "test_up 1",
            "# TYPE test_wait_seconds histogram",
            "test_wait_seconds_bucket{le=\"0.1\"} 1",
            "test_wait_seconds_bucket{le=\"1\"} 1",
            "test_wait_seconds_bucket{le=\"+Inf\"} 2",
            "test_wait_seconds_count 2",
        ] {
            assert!(text.lines().any(|l| l == line), "missing {line:?} in:\n{text}");
        }
        let families: Vec<String> = TABLE.iter().map(|m| m.def.prometheus_family("test")).collect();
        let types: Vec<&str> =
            text.lines().filter_map(|l| l.strip_prefix("# TYPE ")).map(|l| l.split(' ').next().unwrap()).collect();
        assert_eq!(families, types);
    }

    #[test]
    fn otlp_reports_every_metric_but_info_with_the_same_help() {
        let shared = Arc::new(snapshot());
        let points = collect_otlp(|meter| {
            register_otlp(meter, TABLE, move |read: &Read| Some(read(&shared)));
        });
        let find = |metric: &str, attributes: &[(&str, &str)]| {
            points
                .iter()
                .find(|p| {
                    p.metric == metric
                        && p.attributes.iter().map(|(k, v)| (k.as_str(), v.as_str())).eq(attributes.iter().copied())
                })
                .unwrap_or_else(|| panic!("no {metric} {attributes:?} in {points:#?}"))
        };
        let sent = find("test.messages.sent", &[]);
        assert_eq!((sent.value, sent.unit.as_str(), sent.description.as_str()), (7.0, "{message}", "Messages sent"));
        let queued = find("test.queued", &[("peer", "a")]);
        assert_eq!((queued.value, queued.unit.as_str()), (4.0, "By"));
        assert_eq!(find("test.up", &[]).value, 1.0);
        let count = find("test.wait.count", &[]);
        assert_eq!((count.value, count.unit.as_str()), (2.0, "{wait}"));
        let time = find("test.wait.time", &[]);
        assert_eq!((time.value, time.unit.as_str()), (3.05, "s"));
        assert!(time.description.starts_with("Time spent waiting"), "{time:?}");
        assert!(points.iter().all(|p| !p.metric.contains("build")), "{points:?}");
    }

    #[test]
    fn otlp_reports_nothing_without_a_snapshot() {
        let points = collect_otlp(|meter| register_otlp(meter, TABLE, |_: &Read| None));
        assert_eq!(points, []);
    }

    #[test]
    fn check_refuses_a_reading_of_another_kind_or_label_count() {
        let counter = &TABLE[1].def;
        assert!(Reading::Value(1).check(counter).is_ok());
        assert!(Reading::Info(vec![]).check(counter).is_err());
        assert!(Reading::by_label([("x", 1)]).check(counter).is_err());
        assert!(Reading::by_label([("x", 1)]).check(&TABLE[2].def).is_ok());
    }

    #[test]
    fn docs_mismatches_finds_missing_wrong_and_unknown_rows() {
        let defs: Vec<Def> = TABLE.iter().map(|m| m.def).collect();
        let good = "\
| `test_build_info` | gauge (OpenMetrics: info) | `version` | x |
| `test_messages_sent_total` | counter | — | x |
| `test_queued_bytes` | gauge | `peer` | x |
| `test_up` | gauge | — | x |
| `test_wait_seconds` | histogram | `le` on `_bucket` | x |
";
        let otlp = "\
| `test.messages.sent` | counter | `{message}` | — | `test_messages_sent_total` |
| `test.queued` | up-down counter | `By` | `peer` | `test_queued_bytes` |
| `test.up` | gauge | `1` | — | `test_up` |
| `test.wait.count` | counter | `{wait}` | — | `test_wait_seconds_count` |
| `test.wait.time` | counter (float) | `s` | — | `test_wait_seconds_sum` |
";
        assert_eq!(docs_mismatches(&defs, "test", good, Some(otlp)), Vec::<String>::new());
        let wrong =
            good.replace("| `test_queued_bytes` | gauge | `peer` |", "| `test_queued_bytes` | counter | `node` |");
        assert_eq!(docs_mismatches(&defs, "test", &wrong, Some(otlp)).len(), 2, "type and labels");
        let missing = good.replace("| `test_up` | gauge | — | x |\n", "| `test_down` | gauge | — | x |\n");
        assert_eq!(
            docs_mismatches(&defs, "test", &missing, None),
            ["no row for `test_up`", "row `test_down` is not a metric of the table"]
        );
        let otlp_unit = otlp.replace("`{wait}`", "`{waits}`");
        assert_eq!(docs_mismatches(&defs, "test", good, Some(&otlp_unit)).len(), 1);
    }
}
