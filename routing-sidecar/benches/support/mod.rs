//! Workload and machine helpers shared by the bench binaries.
#![allow(dead_code)]

use fabric_core::NodeId;

/// Neighbor `i` of the benchmarked node.
pub fn peer(i: usize) -> NodeId {
    NodeId::from(format!("peer-{i}"))
}

/// The path neighbor `i` advertises for destination `d`: 2 to 4 hops,
/// starting at the neighbor, through up to two of 64 transit nodes, ending
/// at one of 2000 origins. Fresh strings, as the wire decoder produces them.
pub fn workload_path(d: usize, i: usize) -> Vec<NodeId> {
    let hops = 2 + (d + i) % 3;
    let mut path = Vec::with_capacity(hops);
    path.push(peer(i));
    let transit = (d * 3 + i) % 64;
    if hops >= 3 {
        path.push(NodeId::from(format!("transit-{transit}")));
    }
    if hops == 4 {
        path.push(NodeId::from(format!("transit-{}", (transit + 1 + d % 7) % 64)));
    }
    path.push(NodeId::from(format!("origin-{}", d % 2000)));
    path
}

/// The CPU model from /proc/cpuinfo and the cores available, for the
/// header every bench prints.
pub fn machine() -> (String, usize) {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|info| {
            info.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|s| s.trim().to_string())
        })
        .unwrap_or_else(|| "unknown".into());
    let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0);
    (cpu, cores)
}
