//! The one duration histogram every counter set keeps (engine convergence,
//! link-state SPF time, operator compile time). The bucket bounds are data,
//! one const table per metric, named by a marker type so that a histogram
//! can only ever be filled and exported with its own bounds, and so that a
//! struct of counters holding one can still derive `Default`.
//!
//! The exporters (`fabric_io::metric_table`) read [`Histogram::bounds`]
//! and the cumulative counts; nothing here knows about Prometheus or OTLP.

use std::fmt;
use std::marker::PhantomData;
use std::time::Duration;

use serde::ser::SerializeStruct;
use serde::{Serialize, Serializer};

/// The bucket bounds of one histogram metric.
pub trait Buckets {
    /// Upper bounds of the buckets in seconds, ascending; `+Inf` is implied.
    const BOUNDS: &'static [f64];
}

/// A cumulative histogram in the Prometheus sense over `B::BOUNDS`.
pub struct Histogram<B> {
    /// Count of observations at or below each bound of `B::BOUNDS`; empty
    /// until the first observation (all zero then).
    pub buckets: Vec<u64>,
    pub count: u64,
    pub sum_seconds: f64,
    bounds: PhantomData<fn() -> B>,
}

impl<B: Buckets> Histogram<B> {
    /// The upper bounds (seconds) of this histogram's buckets.
    pub fn bounds(&self) -> &'static [f64] {
        B::BOUNDS
    }

    pub fn observe(&mut self, value: Duration) {
        self.observe_seconds(value.as_secs_f64());
    }

    pub fn observe_seconds(&mut self, seconds: f64) {
        if self.buckets.is_empty() {
            self.buckets = vec![0; B::BOUNDS.len()];
        }
        for (bucket, bound) in self.buckets.iter_mut().zip(B::BOUNDS) {
            if seconds <= *bound {
                *bucket += 1;
            }
        }
        self.count += 1;
        self.sum_seconds += seconds;
    }
}

impl<B> Histogram<B> {
    /// A histogram with these cumulative counts, as a snapshot holds them.
    /// The exporters clamp inconsistent counts, so any values render.
    pub fn from_parts(buckets: Vec<u64>, count: u64, sum_seconds: f64) -> Self {
        Self { buckets, count, sum_seconds, bounds: PhantomData }
    }

    /// Serializes with a camelCase `sumSeconds`, for snapshots whose other
    /// fields are camelCase (`#[serde(serialize_with = ...)]`).
    pub fn serialize_camel_case<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.serialize_as(serializer, "sumSeconds")
    }

    fn serialize_as<S: Serializer>(&self, serializer: S, sum_name: &'static str) -> Result<S::Ok, S::Error> {
        let mut out = serializer.serialize_struct("Histogram", 3)?;
        out.serialize_field("buckets", &self.buckets)?;
        out.serialize_field("count", &self.count)?;
        out.serialize_field(sum_name, &self.sum_seconds)?;
        out.end()
    }
}

// Written out rather than derived: a derive would require the marker type
// to implement each trait too.
impl<B> Default for Histogram<B> {
    fn default() -> Self {
        Self::from_parts(Vec::new(), 0, 0.0)
    }
}

impl<B> Clone for Histogram<B> {
    fn clone(&self) -> Self {
        Self::from_parts(self.buckets.clone(), self.count, self.sum_seconds)
    }
}

impl<B> PartialEq for Histogram<B> {
    fn eq(&self, other: &Self) -> bool {
        self.buckets == other.buckets && self.count == other.count && self.sum_seconds == other.sum_seconds
    }
}

impl<B> fmt::Debug for Histogram<B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Histogram")
            .field("buckets", &self.buckets)
            .field("count", &self.count)
            .field("sum_seconds", &self.sum_seconds)
            .finish()
    }
}

impl<B> Serialize for Histogram<B> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.serialize_as(serializer, "sum_seconds")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    enum Test {}
    impl Buckets for Test {
        const BOUNDS: &'static [f64] = &[0.001, 0.01, 0.1];
    }

    #[test]
    fn buckets_are_cumulative_and_bounds_inclusive() {
        let mut histogram = Histogram::<Test>::default();
        assert!(histogram.buckets.is_empty());
        histogram.observe(Duration::from_micros(50));
        histogram.observe(Duration::from_millis(10));
        histogram.observe_seconds(5.0);
        assert_eq!(histogram.buckets, [1, 2, 2]);
        assert_eq!(histogram.count, 3);
        assert!((histogram.sum_seconds - 5.01005).abs() < 1e-12, "{}", histogram.sum_seconds);
        assert_eq!(histogram.bounds(), Test::BOUNDS);
    }

    #[test]
    fn serializes_snake_case_or_camel_case() {
        let histogram = Histogram::<Test>::from_parts(vec![1, 2, 2], 3, 0.5);
        let plain = serde_json::to_value(&histogram).expect("json");
        assert_eq!(plain, serde_json::json!({"buckets": [1, 2, 2], "count": 3, "sum_seconds": 0.5}));
        let camel = histogram.serialize_camel_case(serde_json::value::Serializer).expect("json");
        assert_eq!(camel, serde_json::json!({"buckets": [1, 2, 2], "count": 3, "sumSeconds": 0.5}));
    }
}
