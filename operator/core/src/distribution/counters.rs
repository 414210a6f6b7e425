//! What the distributor counts for `/metrics`.

use fabric_core::histogram::{Buckets, Histogram};

/// The counters the distributor keeps for `/metrics`.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Counters {
    pub pushes: u64,
    /// ACKs of the snapshot in force.
    pub acks: u64,
    pub nacks: u64,
    /// ACKs and NACKs of a snapshot already replaced by a newer push (or
    /// from an old stream): ignored, counted here.
    pub stale_replies: u64,
    /// Objects compiled, by kind and outcome (`ok`: accepted; `error`: not).
    pub reconciles: std::collections::BTreeMap<(&'static str, &'static str), u64>,
    pub status_patches: u64,
    /// Peer TLS certificates sent to sidecars (first ones and renewals).
    pub peer_certificates_issued: u64,
    /// Certificate requests refused (a request that does not parse or is
    /// not signed by its key, a node id that is not a DNS name).
    pub peer_certificate_refusals: u64,
    pub compile_duration: Histogram<CompileDuration>,
    /// 1 while this replica leads (always 1 in local mode).
    pub leader: bool,
}

/// Upper bounds (seconds) of the compile duration histogram.
pub const COMPILE_BUCKETS: &[f64] = &[0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5];

/// The buckets of `compile_duration_seconds`: [`COMPILE_BUCKETS`].
pub enum CompileDuration {}

impl Buckets for CompileDuration {
    const BOUNDS: &'static [f64] = COMPILE_BUCKETS;
}
