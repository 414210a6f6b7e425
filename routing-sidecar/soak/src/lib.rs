//! Soak and churn simulation: the path-vector engines and the link-state
//! routers on the same 1,000-node fabric and the same schedule of failures,
//! for hours of simulated time, measured against a shortest-path oracle.
//!
//! Everything is deterministic: the topology, the schedule, the link
//! latencies, the gossip phases and the signing keys come from one seed, and
//! all time is simulated (`Timestamp`s handed to the sans-IO engines). The
//! same options give byte-identical CSV files; no wall-clock figure is part
//! of the results.
//!
//! - `topology`: the fabrics (Clos, ring plus random links, multi-area);
//! - `schedule`: the events (flaps, crashes, partitions, withdrawals,
//!   policy reloads, key rotations, forged announcements);
//! - `driver`: the discrete-event network (latencies, gossip ticks) and the
//!   two protocols behind one interface;
//! - `oracle`: shortest paths and forwarding checks (loops, black holes);
//! - `report`: per-event rows, summaries, targets and the CSV files.
//!
//! `routing-sidecar soak` runs it and draws the charts; docs/soak.md has
//! the figures.

mod driver;
mod oracle;
pub mod report;
mod schedule;
mod topology;

use std::path::PathBuf;
use std::time::Duration;

pub use driver::Mode;
pub use report::{EventRow, ModeSummary, SoakReport, TargetCheck, TopologyRun};
pub use schedule::{Action, Schedule, ScheduledAction};
pub use topology::{SoakTopology, TopologyError, TopologyKind, UnknownTopology};

/// What to simulate.
#[derive(Clone, Debug)]
pub struct SoakOptions {
    pub nodes: usize,
    pub seed: u64,
    pub topologies: Vec<TopologyKind>,
    /// Simulated time of the schedule (after the initial convergence).
    pub duration: Duration,
    /// Scenarios in the schedule (a scenario is one or a few actions: a
    /// link down then up, a crash then a restart, ...).
    pub scenarios: usize,
    /// One gossip interval: every node handles what it received and sends
    /// what it has to say once per interval, at its own phase.
    pub gossip_interval: Duration,
    /// Signatures required in both protocols (and forged or unsigned
    /// announcements injected); off runs unsigned and injects none.
    pub signatures: bool,
    /// Path-vector `stability.holdDown`.
    pub hold_down: Duration,
    /// Path-vector flap dampening (RFC 2439 defaults) on or off.
    pub dampening: bool,
    pub modes: Vec<Mode>,
    /// Where the CSV files go (and the charts, drawn by the binary).
    pub out: Option<PathBuf>,
}

impl Default for SoakOptions {
    fn default() -> Self {
        Self {
            nodes: 1000,
            seed: 1,
            topologies: TopologyKind::ALL.to_vec(),
            duration: Duration::from_secs(3 * 3600),
            scenarios: 120,
            gossip_interval: Duration::from_millis(50),
            signatures: true,
            hold_down: Duration::from_secs(1),
            dampening: true,
            modes: vec![Mode::PathVector, Mode::LinkState],
            out: None,
        }
    }
}

/// Why a soak did not run or its results were not written.
#[derive(Debug, thiserror::Error)]
pub enum SoakError {
    #[error("--gossip-interval must be above zero")]
    ZeroGossipInterval,
    #[error("--events must be at least 1")]
    NoEvents,
    #[error(transparent)]
    Topology(#[from] TopologyError),
    /// The CSV files could not be written to the `--out` folder.
    #[error("{}: {source}", dir.display())]
    WriteCsv {
        dir: std::path::PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// Runs every topology and mode of `options`; `progress` gets one line per
/// finished part (for the terminal, never written to the results).
pub fn run(options: &SoakOptions, progress: &mut dyn FnMut(&str)) -> Result<SoakReport, SoakError> {
    if options.gossip_interval.is_zero() {
        return Err(SoakError::ZeroGossipInterval);
    }
    if options.scenarios == 0 {
        return Err(SoakError::NoEvents);
    }
    let mut runs = Vec::new();
    for (i, kind) in options.topologies.iter().enumerate() {
        // Each topology has its own stream of random numbers, so adding or
        // removing one topology leaves the others' figures unchanged.
        let seed = options.seed ^ (0x9e37_79b9_7f4a_7c15u64.wrapping_mul(i as u64 + 1) ^ kind.salt());
        let mut rng = Rng::new(seed);
        let topology = SoakTopology::generate(*kind, options.nodes, &mut rng)?;
        let schedule = Schedule::generate(&topology, &mut rng, options.duration, options.scenarios, options.signatures);
        let mut modes = Vec::new();
        for mode in &options.modes {
            let run = driver::run_mode(*mode, &topology, &schedule, options, seed);
            progress(&format!(
                "{} {}: {} events, initial convergence {} ms",
                kind.label(),
                mode.label(),
                run.events.len(),
                run.initial.convergence_ms
            ));
            modes.push(run);
        }
        runs.push(TopologyRun::new(&topology, &schedule, modes));
    }
    let report = SoakReport::new(options, runs);
    if let Some(dir) = &options.out {
        report.write_csv(dir).map_err(|source| SoakError::WriteCsv { dir: dir.clone(), source })?;
    }
    Ok(report)
}

/// SplitMix64: small, fast, and the same numbers on every platform.
#[derive(Clone, Debug)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Self(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (`n` > 0).
    pub fn below(&mut self, n: u64) -> u64 {
        debug_assert!(n > 0);
        ((u128::from(self.next_u64()) * u128::from(n)) >> 64) as u64
    }

    /// Uniform in `lo..=hi`.
    pub fn between(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.below(hi - lo + 1)
    }

    pub fn bytes32(&mut self) -> [u8; 32] {
        let mut out = [0u8; 32];
        for chunk in out.chunks_mut(8) {
            chunk.copy_from_slice(&self.next_u64().to_le_bytes());
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rng_is_reproducible_and_stays_in_range() {
        let mut a = Rng::new(7);
        let mut b = Rng::new(7);
        for _ in 0..1000 {
            let (x, y) = (a.below(10), b.below(10));
            assert_eq!(x, y);
            assert!(x < 10);
        }
        let mut c = Rng::new(8);
        assert_ne!(Rng::new(7).next_u64(), c.next_u64());
    }
}
