//! Memory per stored candidate route:
//! `cargo bench -p routing-sidecar --bench memory`.
//!
//! A counting global allocator (a wrapper around `System`) tracks the live
//! heap bytes the process holds, so the difference before and after
//! building the table is exactly the heap the engine keeps (requested
//! sizes, without the allocator's own per-block overhead). The RSS delta
//! from `/proc/self/statm` is reported for comparison; it includes
//! allocator overhead and fragmentation.
//!
//! Each table size is measured in a fresh child process (this same binary,
//! re-executed), so memory freed by an earlier measurement cannot hide in
//! the RSS of a later one. Announcements are generated and received one at
//! a time (effects drained every 1024 messages and dropped), so no message
//! backlog is counted.
//!
//! Without `--bench` (e.g. `cargo test --benches`) only a tiny table is
//! built, as a smoke test.

use std::process::Command;

use fabric_core::config::NeighborConfig;
use fabric_core::{Message, NodeId, RouteAnnouncement, RouteMetrics, SidecarConfig, Tag, Timestamp};
use fabric_engine::Engine;
use fabric_testkit::counting_alloc::CountingAllocator;
use fabric_testkit::engine_builders::{peer, workload_path};

#[global_allocator]
static ALLOCATOR: CountingAllocator = CountingAllocator;

/// Neighbors each destination is learned from, unless a table says
/// otherwise: four candidates per destination.
const NEIGHBORS: usize = 4;
const NOW: Timestamp = Timestamp(1_700_000_000_000);
const CHILD_ENV: &str = "FABRIC_MEMORY_BENCH_DESTINATIONS";
const GOAL_BYTES: f64 = 200.0;
const BIRD_BYTES: f64 = 300.0;
/// x86-64 Linux base page size, for `/proc/self/statm`.
const PAGE_BYTES: usize = 4096;

fn main() {
    if let Ok(table) = std::env::var(CHILD_ENV) {
        let (destinations, neighbors) = table.split_once(',').expect("destinations,neighbors");
        child(destinations.parse().expect("destination count"), neighbors.parse().expect("neighbor count"));
        return;
    }
    let bench_mode = std::env::args().any(|arg| arg == "--bench");
    // (destinations, neighbors): the last, one candidate per destination,
    // is a leaf's table, learned from its one upstream.
    let tables: &[(usize, usize)] = if bench_mode {
        &[(25_000, NEIGHBORS), (250_000, NEIGHBORS), (100_000, 1)]
    } else {
        &[(1_000, NEIGHBORS), (1_000, 1)]
    };
    let exe = std::env::current_exe().expect("own path");
    let mut results = Vec::new();
    for &(destinations, neighbors) in tables {
        let output = Command::new(&exe)
            .env(CHILD_ENV, format!("{destinations},{neighbors}"))
            .output()
            .expect("re-executes itself");
        let stdout = String::from_utf8_lossy(&output.stdout);
        print!("{stdout}");
        eprint!("{}", String::from_utf8_lossy(&output.stderr));
        assert!(output.status.success(), "measurement child failed");
        let line = stdout.lines().find(|l| l.starts_with("RESULT ")).expect("child reports a result");
        results.push(Measurement::parse(line));
    }
    println!();
    println!(
        "{:>12} {:>13} {:>14} {:>14} {:>12} {:>13}   vs {GOAL_BYTES:.0} B/candidate goal",
        "candidates", "destinations", "heap B/cand", "heap B/cand", "RSS B/cand", "heap B/dest"
    );
    println!("{:>12} {:>13} {:>14} {:>14} {:>12} {:>13}", "", "", "(total)", "(excl. fixed)", "(delta)", "(total)");
    for m in &results {
        let total = m.heap_total as f64 / m.candidates as f64;
        let marginal = m.heap_table as f64 / m.candidates as f64;
        let verdict = |bytes: f64| if bytes <= GOAL_BYTES { "MET" } else { "MISSED" };
        println!(
            "{:>12} {:>13} {:>14.1} {:>14.1} {:>12.1} {:>13.1}   total {} ({:.0}%), excl. fixed {} ({:.0}%)",
            m.candidates,
            m.destinations,
            total,
            marginal,
            m.rss as f64 / m.candidates as f64,
            m.heap_total as f64 / m.destinations as f64,
            verdict(total),
            total / GOAL_BYTES * 100.0,
            verdict(marginal),
            marginal / GOAL_BYTES * 100.0,
        );
    }
    println!(
        "goal: <= {GOAL_BYTES:.0} B per stored candidate (BIRD: ~{BIRD_BYTES:.0} B per route); 'total' includes \
         the empty engine's fixed overhead (its preallocated verification cache), 'excl. fixed' does not"
    );
}

struct Measurement {
    destinations: usize,
    candidates: usize,
    /// Live heap growth from before `Engine::new` to the built table.
    heap_total: usize,
    /// Live heap growth from the empty engine to the built table.
    heap_table: usize,
    rss: usize,
}

impl Measurement {
    fn parse(line: &str) -> Self {
        let field = |name: &str| -> usize {
            line.split_whitespace()
                .find_map(|kv| kv.strip_prefix(name).and_then(|v| v.strip_prefix('=')))
                .and_then(|v| v.parse().ok())
                .unwrap_or_else(|| panic!("{name} missing in {line:?}"))
        };
        Self {
            destinations: field("destinations"),
            candidates: field("candidates"),
            heap_total: field("heap_total"),
            heap_table: field("heap_table"),
            rss: field("rss"),
        }
    }
}

fn live() -> (isize, isize) {
    fabric_testkit::counting_alloc::live()
}

fn rss_bytes() -> usize {
    let statm = std::fs::read_to_string("/proc/self/statm").expect("/proc/self/statm");
    let resident: usize = statm.split_whitespace().nth(1).and_then(|v| v.parse().ok()).expect("resident pages");
    resident * PAGE_BYTES
}

/// A few distinct tag sets.
fn tags(d: usize) -> Vec<Tag> {
    let names: &[&str] = match d % 4 {
        0 => &[],
        1 => &["gold"],
        2 => &["eu", "gold"],
        _ => &["pci", "silver", "us"],
    };
    names.iter().map(|t| Tag::from(*t)).collect()
}

/// Neighbor `i`'s route to destination `d`: 2 to 4 hops, as decoded from
/// the wire (fresh strings).
fn announcement(d: usize, i: usize) -> RouteAnnouncement {
    let path = workload_path(d, i);
    RouteAnnouncement {
        destination: format!("svc-{d:06}.prod.fabric").into(),
        hop_count: path.len() as u32,
        path,
        metrics: RouteMetrics {
            cost: 10 + ((d * 7 + i * 13) % 20) as u32,
            latency_us: 1000 + ((d * 31 + i * 17) % 500) as u32,
            reliability: 0.999,
        },
        advertiser: peer(i),
        epoch: 1000,
        ttl_ms: 90_000,
        issued_at_ms: None,
        tags: tags(d).into(),
        signature: None,
    }
}

fn child(destinations: usize, neighbors: usize) {
    let mut config = SidecarConfig::new("edge-self");
    config.neighbors = (0..neighbors)
        .map(|i| NeighborConfig { id: peer(i), address: None, link: Default::default(), import: None, export: None })
        .collect();
    let peers: Vec<NodeId> = (0..neighbors).map(peer).collect();

    let (bytes_before, blocks_before) = live();
    let rss_before = rss_bytes();
    let mut engine = Engine::new(config, NOW).expect("valid config");
    let (bytes_empty, _) = live();

    let mut effects = Vec::new();
    let mut received = 0usize;
    for (i, from) in peers.iter().enumerate() {
        for d in 0..destinations {
            engine.receive(NOW, from, Message::Announcement(announcement(d, i)));
            received += 1;
            if received.is_multiple_of(1024) {
                engine.drain_effects_into(NOW, &mut effects);
                effects.clear();
            }
        }
    }
    engine.drain_effects_into(NOW, &mut effects);
    drop(effects);

    let (bytes_after, blocks_after) = live();
    let rss_after = rss_bytes();
    let stats = engine.stats();
    let candidates = stats.candidates_stored as usize;
    assert_eq!(candidates, destinations * neighbors, "every announcement stored");
    assert_eq!(stats.routes_active_total as usize, destinations);
    drop(stats);

    let heap_total = (bytes_after - bytes_before) as usize;
    let heap_table = (bytes_after - bytes_empty) as usize;
    let blocks = (blocks_after - blocks_before) as usize;
    let rss = rss_after.saturating_sub(rss_before);
    let per = |bytes: usize| bytes as f64 / candidates as f64;
    println!(
        "== {candidates} candidates ({destinations} destinations x {neighbors} neighbors, paths 2-4 hops, 4 tag sets)"
    );
    println!(
        "   live heap held by the engine: {:.1} MiB = {:.1} B/candidate ({:.1} B/candidate excluding the \
         empty engine's {:.1} KiB); {} heap blocks ({:.2}/candidate)",
        heap_total as f64 / (1 << 20) as f64,
        per(heap_total),
        per(heap_table),
        (bytes_empty - bytes_before) as f64 / 1024.0,
        blocks,
        blocks as f64 / candidates as f64,
    );
    println!(
        "   RSS delta (/proc/self/statm): {:.1} MiB = {:.1} B/candidate (includes malloc overhead and fragmentation)",
        rss as f64 / (1 << 20) as f64,
        per(rss)
    );
    let verdict = |bytes: usize| if per(bytes) <= GOAL_BYTES { "MET" } else { "MISSED" };
    println!(
        "   goal {GOAL_BYTES:.0} B/candidate: {} in total, {} excluding the fixed part (BIRD ~{BIRD_BYTES:.0} B/route)",
        verdict(heap_total),
        verdict(heap_table)
    );
    println!(
        "RESULT destinations={destinations} candidates={candidates} heap_total={heap_total} heap_table={heap_table} rss={rss}"
    );
    drop(engine);
}
