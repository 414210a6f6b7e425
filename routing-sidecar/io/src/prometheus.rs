//! Prometheus exposition for both binaries' `/metrics`: content
//! negotiation between OpenMetrics and the classic text format, encoding a
//! `prometheus-client` registry in either, and metric families whose series
//! are given at scrape time (from a snapshot) rather than kept live.
//!
//! * OpenMetrics 1.0.0 (`prometheus_client::encoding::text`) for scrapers
//!   that ask for it (Prometheus does, in its `Accept` header);
//! * the classic Prometheus text format 0.0.4
//!   (`prometheus_client::encoding::prometheus_text`) for everything else:
//!   curl, `promtool check metrics`, older tooling. In it counter families
//!   carry `_total` in their `# HELP`/`# TYPE` names, the info metric is a
//!   gauge, and there is no `# UNIT`, `_created` or `# EOF`.
//!
//! Both come from the same registry, so the two formats cannot disagree on
//! names, labels or values.

use std::fmt;

use prometheus_client::encoding::{EncodeMetric, MetricEncoder, NoLabelSet};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::{MetricType, TypedMetric};
use prometheus_client::registry::Registry;

/// The exposition format of a `/metrics` response.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MetricsFormat {
    /// OpenMetrics text 1.0.0.
    OpenMetrics,
    /// The classic Prometheus text format 0.0.4.
    PrometheusText,
}

impl MetricsFormat {
    /// Content negotiation on the request's `Accept` header.
    ///
    /// OpenMetrics when the header lists `application/openmetrics-text` (any
    /// version) with a non-zero quality that is not below the quality given
    /// to an explicit `text/plain`; the classic text format otherwise. So
    /// Prometheus (which lists OpenMetrics first, with the highest quality)
    /// gets OpenMetrics, while curl (`*/*`), promtool and clients that send
    /// no header get the classic format they can read.
    pub fn from_accept(accept: Option<&str>) -> Self {
        let Some(accept) = accept else { return MetricsFormat::PrometheusText };
        let mut openmetrics_q: f32 = 0.0;
        let mut text_q: f32 = 0.0;
        for range in accept.split(',') {
            let mut parts = range.split(';');
            let media_type = parts.next().unwrap_or_default().trim();
            // `q` defaults to 1; an unparsable one is read as 1 too.
            let q = parts
                .filter_map(|param| param.split_once('='))
                .find(|(name, _)| name.trim().eq_ignore_ascii_case("q"))
                .map_or(1.0, |(_, value)| value.trim().parse::<f32>().unwrap_or(1.0));
            if media_type.eq_ignore_ascii_case("application/openmetrics-text") {
                openmetrics_q = openmetrics_q.max(q);
            } else if media_type.eq_ignore_ascii_case("text/plain") {
                text_q = text_q.max(q);
            }
        }
        if openmetrics_q > 0.0 && openmetrics_q >= text_q {
            MetricsFormat::OpenMetrics
        } else {
            MetricsFormat::PrometheusText
        }
    }

    /// The `Content-Type` of a response in this format.
    pub fn content_type(self) -> &'static str {
        match self {
            MetricsFormat::OpenMetrics => "application/openmetrics-text; version=1.0.0; charset=utf-8",
            MetricsFormat::PrometheusText => "text/plain; version=0.0.4; charset=utf-8",
        }
    }
}

/// Encodes a registry in the given format.
pub fn encode(registry: &Registry, format: MetricsFormat) -> String {
    let mut out = String::with_capacity(16 * 1024);
    let written = match format {
        MetricsFormat::OpenMetrics => prometheus_client::encoding::text::encode(&mut out, registry),
        MetricsFormat::PrometheusText => prometheus_client::encoding::prometheus_text::encode(&mut out, registry),
    };
    // Writing to a String does not fail, and no metric here returns an error.
    written.expect("metrics encode into a String");
    out
}

/// A label set: `(name, value)` pairs.
pub type Labels = Vec<(&'static str, String)>;

/// A labelled metric family with its series in a fixed order.
/// (prometheus-client's `Family` keeps a hash map, so its order would change
/// from one scrape to the next.)
#[derive(Debug)]
pub struct Series<M> {
    series: Vec<(Labels, M)>,
}

impl<M: EncodeMetric + TypedMetric> EncodeMetric for Series<M> {
    fn encode(&self, mut encoder: MetricEncoder) -> fmt::Result {
        for (labels, metric) in &self.series {
            metric.encode(encoder.encode_family(labels)?)?;
        }
        Ok(())
    }

    fn metric_type(&self) -> MetricType {
        M::TYPE
    }
}

/// A counter family with these series.
pub fn counters(series: impl IntoIterator<Item = (Labels, u64)>) -> Series<ConstCounter<u64>> {
    Series { series: series.into_iter().map(|(labels, value)| (labels, ConstCounter::new(value))).collect() }
}

/// A gauge family with these series.
pub fn gauges(series: impl IntoIterator<Item = (Labels, u64)>) -> Series<ConstGauge<u64>> {
    Series { series: series.into_iter().map(|(labels, value)| (labels, ConstGauge::new(value))).collect() }
}

/// A histogram whose buckets are given, not observed: how
/// `metric_table` encodes a histogram read from a snapshot
/// (`fabric_core::histogram::Histogram`).
#[derive(Debug)]
pub struct ConstHistogram {
    sum: f64,
    count: u64,
    /// `(upper bound, observations in this bucket only)`, the last bound
    /// being `+Inf`: the encoders add the counts up into cumulative buckets.
    buckets: Vec<(f64, u64)>,
}

impl ConstHistogram {
    /// From cumulative counts per bound. A snapshot with no observation may
    /// have no buckets: all zero then. The cumulative counts are clamped to
    /// be non-decreasing and at most `count`, so even an inconsistent
    /// snapshot renders a valid histogram.
    pub fn from_cumulative(bounds: &[f64], cumulative_counts: &[u64], count: u64, sum: f64) -> Self {
        let mut buckets = Vec::with_capacity(bounds.len() + 1);
        let mut previous = 0;
        for (i, bound) in bounds.iter().enumerate() {
            let cumulative = cumulative_counts.get(i).copied().unwrap_or(previous).clamp(previous, count);
            buckets.push((*bound, cumulative - previous));
            previous = cumulative;
        }
        buckets.push((f64::INFINITY, count - previous));
        Self { sum, count, buckets }
    }
}

impl TypedMetric for ConstHistogram {
    const TYPE: MetricType = MetricType::Histogram;
}

impl EncodeMetric for ConstHistogram {
    fn encode(&self, mut encoder: MetricEncoder) -> fmt::Result {
        encoder.encode_histogram::<NoLabelSet>(self.sum, self.count, &self.buckets, None)
    }

    fn metric_type(&self) -> MetricType {
        Self::TYPE
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn from_accept_prometheus_2_header_gets_openmetrics() {
        let header = "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,\
                      text/plain;version=0.0.4;q=0.5,*/*;q=0.1";
        assert_eq!(MetricsFormat::from_accept(Some(header)), MetricsFormat::OpenMetrics);
    }

    #[test]
    fn from_accept_prometheus_3_header_gets_openmetrics() {
        let header = "application/openmetrics-text;version=1.0.0;escaping=allow-utf-8;q=0.5,\
                      application/openmetrics-text;version=0.0.1;q=0.4,\
                      text/plain;version=1.0.0;escaping=allow-utf-8;q=0.3,text/plain;version=0.0.4;q=0.2,*/*;q=0.1";
        assert_eq!(MetricsFormat::from_accept(Some(header)), MetricsFormat::OpenMetrics);
    }

    #[test]
    fn from_accept_curl_absent_and_plain_text_get_the_classic_format() {
        for header in
            [None, Some(""), Some("*/*"), Some("text/plain"), Some("text/plain;version=0.0.4"), Some("text/*")]
        {
            assert_eq!(MetricsFormat::from_accept(header), MetricsFormat::PrometheusText, "{header:?}");
        }
    }

    #[test]
    fn from_accept_honours_quality_values() {
        for (header, want) in [
            ("application/openmetrics-text;q=0, text/plain", MetricsFormat::PrometheusText),
            ("text/plain;q=0.9, application/openmetrics-text;q=0.5", MetricsFormat::PrometheusText),
            ("text/plain;q=0.5, application/openmetrics-text;q=0.5", MetricsFormat::OpenMetrics),
            ("APPLICATION/OpenMetrics-Text ; Q=0.2 , */*", MetricsFormat::OpenMetrics),
            ("application/openmetrics-text; q=bogus", MetricsFormat::OpenMetrics),
        ] {
            assert_eq!(MetricsFormat::from_accept(Some(header)), want, "{header:?}");
        }
    }

    #[test]
    fn content_types() {
        assert_eq!(
            MetricsFormat::OpenMetrics.content_type(),
            "application/openmetrics-text; version=1.0.0; charset=utf-8"
        );
        assert_eq!(MetricsFormat::PrometheusText.content_type(), "text/plain; version=0.0.4; charset=utf-8");
    }
}
