//! Link-state SPF: `cargo bench -p routing-sidecar --bench spf`.
//!
//! Full SPF with complete equal-cost next-hop sets on seeded random graphs
//! (10k nodes / 40k links, and 1k / 4k), next to petgraph's `dijkstra` on
//! the same graph in the same process. petgraph computes distances only (no
//! multipath) into a `HashMap`; ours also builds every node's next-hop set.
//!
//! Two measurements: criterion micro benchmarks, then a plain timing loop
//! (`std::time::Instant`, median of many runs) whose medians give the
//! ours/petgraph ratio printed at the end. The table also shows what the
//! router does around SPF: building the graph from a database of updates
//! (two-way check, interning), and a whole recompute of one area as the
//! router does it: graph from the database, SPF, path metrics, the area's
//! route view and the merged route table.
//!
//! Last, churn: single link changes fed to a router one update per call,
//! 50 µs of simulated time apart, with the default SPF throttle against a
//! full recompute per update, in the same run.
//!
//! Without `--bench` (e.g. `cargo test --benches`) everything runs at a tiny
//! scale as a smoke test.

use std::collections::HashSet;
use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::Criterion;
use fabric_core::{NodeId, Timestamp};
use fabric_link_state::area::SummaryPolicy;
use fabric_link_state::lsdb::{AreaLsdb, LsdbLimits};
use fabric_link_state::routes::{AreaSpf, area_routes, merge_routes};
use fabric_link_state::spf::shortest_paths;
use fabric_link_state::topology::EdgeSpec;
use fabric_link_state::{
    AreaId, LinkAdvert, LinkStateConfig, LinkStateInput, LinkStateRouter, LinkStateUpdate, LocalLink,
    SpfThrottleConfig, Topology,
};
use fabric_testkit::machine::print_machine;
use petgraph::algo::dijkstra;
use petgraph::graph::{NodeIndex, UnGraph};

const TARGET_MEDIAN_10K: Duration = Duration::from_millis(5);
const TARGET_RATIO: f64 = 1.5;
const SEED: u64 = 0x5eed_5eed_0f5b;

/// xorshift64*: enough randomness for a graph, no dependency.
struct XorShift(u64);

impl XorShift {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, bound: usize) -> usize {
        (self.next() % bound as u64) as usize
    }
}

/// A connected undirected graph: a random spanning tree, then random extra
/// links up to `links`, no duplicates or self loops, costs 1..=10 (small,
/// so equal-cost paths are common).
struct Graph {
    nodes: usize,
    links: Vec<(u32, u32, u32)>,
}

fn random_graph(nodes: usize, links: usize, seed: u64) -> Graph {
    let mut rng = XorShift(seed);
    let mut seen = HashSet::with_capacity(links);
    let mut out = Vec::with_capacity(links);
    let mut add = |a: usize, b: usize, rng: &mut XorShift, out: &mut Vec<(u32, u32, u32)>| {
        let pair = (a.min(b) as u32, a.max(b) as u32);
        if a != b && seen.insert(pair) {
            out.push((pair.0, pair.1, 1 + rng.below(10) as u32));
        }
    };
    for node in 1..nodes {
        let parent = rng.below(node);
        add(node, parent, &mut rng, &mut out);
    }
    while out.len() < links {
        let (a, b) = (rng.below(nodes), rng.below(nodes));
        add(a, b, &mut rng, &mut out);
    }
    Graph { nodes, links: out }
}

fn name(index: usize) -> NodeId {
    // Zero-padded, so id order is index order.
    NodeId::from(format!("node-{index:06}"))
}

fn our_topology(graph: &Graph) -> Topology {
    let nodes = (0..graph.nodes).map(name).collect();
    let edges = graph
        .links
        .iter()
        .flat_map(|&(a, b, cost)| [EdgeSpec::with_cost(a, b, cost), EdgeSpec::with_cost(b, a, cost)])
        .collect();
    Topology::from_sorted_nodes(nodes, edges)
}

fn petgraph_graph(graph: &Graph) -> UnGraph<(), u32> {
    let mut g = UnGraph::with_capacity(graph.nodes, graph.links.len());
    for _ in 0..graph.nodes {
        g.add_node(());
    }
    for &(a, b, cost) in &graph.links {
        g.add_edge(NodeIndex::new(a as usize), NodeIndex::new(b as usize), cost);
    }
    g
}

/// Every node's links, both directions of each undirected link.
fn adjacency(graph: &Graph) -> Vec<Vec<LinkAdvert>> {
    let mut adjacency: Vec<Vec<LinkAdvert>> = vec![Vec::new(); graph.nodes];
    for &(a, b, cost) in &graph.links {
        for (from, to) in [(a, b), (b, a)] {
            adjacency[from as usize].push(LinkAdvert {
                neighbor: name(to as usize),
                cost,
                latency_us: 100,
                reliability: 1.0,
            });
        }
    }
    adjacency
}

/// The database every node of the area would hold for this graph.
fn lsdb(graph: &Graph) -> AreaLsdb {
    let area = AreaId::from("bench");
    let adjacency = adjacency(graph);
    let limits =
        LsdbLimits { max_entries: usize::MAX, max_ttl: Duration::from_secs(3600), flush_hold: Duration::from_secs(60) };
    let mut lsdb = AreaLsdb::new(area.clone(), limits);
    for (index, links) in adjacency.into_iter().enumerate() {
        let update = LinkStateUpdate {
            origin: name(index),
            area: area.clone(),
            sequence: 1,
            ttl_ms: 3_600_000,
            links,
            summary: None,
            destinations: Vec::new(),
            signature: None,
        };
        lsdb.install(update, None, Timestamp(0));
    }
    lsdb
}

fn median(runs: usize, mut work: impl FnMut()) -> Duration {
    let mut samples: Vec<Duration> = (0..runs)
        .map(|_| {
            let start = Instant::now();
            work();
            start.elapsed()
        })
        .collect();
    samples.sort();
    samples[runs / 2]
}

struct Scale {
    label: &'static str,
    nodes: usize,
    links: usize,
    runs: usize,
}

const FULL: [Scale; 2] = [
    Scale { label: "10k nodes / 40k links", nodes: 10_000, links: 40_000, runs: 101 },
    Scale { label: "1k nodes / 4k links", nodes: 1_000, links: 4_000, runs: 501 },
];
const SMOKE: [Scale; 2] = [
    Scale { label: "smoke 200 / 800", nodes: 200, links: 800, runs: 3 },
    Scale { label: "smoke 20 / 60", nodes: 20, links: 60, runs: 3 },
];

struct Row {
    label: &'static str,
    ours: Duration,
    petgraph: Duration,
    graph_from_lsdb: Duration,
    area_recompute: Duration,
    multipath_nodes: usize,
}

fn timing_table(scales: &[Scale]) -> Vec<Row> {
    scales
        .iter()
        .map(|scale| {
            let graph = random_graph(scale.nodes, scale.links, SEED);
            let topology = our_topology(&graph);
            let pg = petgraph_graph(&graph);
            let spf = shortest_paths(&topology, 0);
            let multipath_nodes = (0..scale.nodes as u32).filter(|&n| spf.next_hop_count(n) > 1).count();
            // Both sides reach every node at the same costs.
            let distances = dijkstra(&pg, NodeIndex::new(0), None, |e| u64::from(*e.weight()));
            assert_eq!(distances.len(), spf.reachable().len());
            assert!(distances.iter().all(|(n, d)| spf.cost(n.index() as u32) == Some(*d)));

            let ours = median(scale.runs, || {
                black_box(shortest_paths(black_box(&topology), 0));
            });
            let petgraph = median(scale.runs, || {
                black_box(dijkstra(black_box(&pg), NodeIndex::new(0), None, |e| *e.weight()));
            });
            let lsdb = lsdb(&graph);
            let slow_runs = scale.runs / 4 + 1;
            let graph_from_lsdb = median(slow_runs, || {
                black_box(Topology::from_updates(black_box(&lsdb).live_updates()));
            });
            let me = name(0);
            let policy = SummaryPolicy::default();
            let area = lsdb.area().clone();
            let area_recompute = median(slow_runs, || {
                let spf = AreaSpf::compute(&me, &lsdb);
                let view = area_routes(&me, &area, &spf, &lsdb, &policy);
                black_box(merge_routes([(&area, &view)], 4));
            });
            Row { label: scale.label, ours, petgraph, graph_from_lsdb, area_recompute, multipath_nodes }
        })
        .collect()
}

fn print_table(rows: &[Row], bench_mode: bool) {
    println!();
    println!("SPF with ECMP vs petgraph::algo::dijkstra (median of timing loop):");
    println!(
        "{:<24} {:>12} {:>12} {:>8} {:>14} {:>16} {:>10}",
        "graph", "ours", "petgraph", "ratio", "graph from db", "router recompute", "ecmp nodes"
    );
    for row in rows {
        let ratio = row.ours.as_secs_f64() / row.petgraph.as_secs_f64();
        println!(
            "{:<24} {:>12.3?} {:>12.3?} {:>8.2} {:>14.3?} {:>16.3?} {:>10}",
            row.label, row.ours, row.petgraph, ratio, row.graph_from_lsdb, row.area_recompute, row.multipath_nodes
        );
    }
    if bench_mode {
        let big = &rows[0];
        let ratio = big.ours.as_secs_f64() / big.petgraph.as_secs_f64();
        let verdict = |ok: bool| if ok { "met" } else { "MISSED" };
        println!(
            "targets: 10k median {:.3?} <= {:?}: {}; ours/petgraph {:.2} <= {}: {}",
            big.ours,
            TARGET_MEDIAN_10K,
            verdict(big.ours <= TARGET_MEDIAN_10K),
            ratio,
            TARGET_RATIO,
            verdict(ratio <= TARGET_RATIO)
        );
    }
}

fn micro_benchmarks(criterion: &mut Criterion, scales: &[Scale]) {
    for scale in scales {
        let graph = random_graph(scale.nodes, scale.links, SEED);
        let topology = our_topology(&graph);
        let pg = petgraph_graph(&graph);
        criterion.bench_function(&format!("spf_ecmp/{}", scale.label), |b| {
            b.iter(|| shortest_paths(black_box(&topology), 0))
        });
        criterion.bench_function(&format!("petgraph_dijkstra/{}", scale.label), |b| {
            b.iter(|| dijkstra(black_box(&pg), NodeIndex::new(0), None, |e| *e.weight()))
        });
    }
}

fn main() {
    let bench_mode = std::env::args().any(|arg| arg == "--bench");
    let scales: &[Scale] = if bench_mode { &FULL } else { &SMOKE };
    print_machine();
    let mut criterion = Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
        .configure_from_args();
    micro_benchmarks(&mut criterion, scales);
    criterion.final_summary();
    let rows = timing_table(scales);
    print_table(&rows, bench_mode);
    churn_table(if bench_mode { &CHURN_FULL } else { &CHURN_SMOKE }, bench_mode);
}

/// One single-link change: `origin`'s whole update with the link to one
/// neighbor at a new cost, as it arrives from a neighbor of the router.
fn churn_stream(graph: &Graph, updates: usize, seed: u64) -> Vec<LinkStateUpdate> {
    let area = AreaId::from("bench");
    let mut adjacency = adjacency(graph);
    let mut sequences = vec![1u64; graph.nodes];
    let mut rng = XorShift(seed);
    (0..updates)
        .map(|_| {
            // Never the router itself (node 0): its own links come from its
            // local links, not from updates.
            let origin = 1 + rng.below(graph.nodes - 1);
            let links = &mut adjacency[origin];
            let link = rng.below(links.len());
            links[link].cost = 1 + (links[link].cost + rng.below(9) as u32) % 10;
            sequences[origin] += 1;
            LinkStateUpdate {
                origin: name(origin),
                area: area.clone(),
                sequence: sequences[origin],
                ttl_ms: 3_600_000,
                links: links.clone(),
                summary: None,
                destinations: Vec::new(),
                signature: None,
            }
        })
        .collect()
}

/// Node 0's router over the converged database of `graph`.
fn churn_router(graph: &Graph, throttle: SpfThrottleConfig, start: Timestamp) -> (LinkStateRouter, NodeId) {
    let me = name(0);
    let config = LinkStateConfig { spf_throttle: throttle, ..LinkStateConfig::default() };
    let mut router = LinkStateRouter::new(me.clone(), config).expect("valid config");
    let area = AreaId::from("bench");
    let local: Vec<LocalLink> = graph
        .links
        .iter()
        .filter_map(|&(a, b, cost)| match (a, b) {
            (0, other) | (other, 0) => Some(LocalLink {
                neighbor: name(other as usize),
                area: area.clone(),
                cost,
                latency_us: 100,
                reliability: 1.0,
            }),
            _ => None,
        })
        .collect();
    let from = local[0].neighbor.clone();
    router.handle(LinkStateInput::LocalLinksChanged { links: local }, start);
    let database: Vec<LinkStateInput> = lsdb(graph)
        .live_updates()
        .filter(|update| update.origin != me)
        .map(|update| LinkStateInput::UpdateReceived { from: from.clone(), update: update.clone() })
        .collect();
    router.handle_batch(database, start);
    router.handle(LinkStateInput::Tick, start + Duration::from_secs(1));
    assert!(router.spf_due().is_none() && router.routes().len() == graph.nodes - 1);
    (router, from)
}

/// Feeds `stream` one update per call, `gap` of simulated time apart, with
/// a `Tick` whenever the router's deferred computation is due (as the
/// sidecar's actor loop does), then lets the last computation run. Returns
/// the wall time.
fn feed(router: &mut LinkStateRouter, from: &NodeId, stream: &[LinkStateUpdate], start: Timestamp) -> Duration {
    const GAP_US: u64 = 50;
    let began = Instant::now();
    let mut now = start;
    for (i, update) in stream.iter().enumerate() {
        now = start + Duration::from_micros(GAP_US * i as u64);
        if router.spf_due().is_some_and(|due| due <= now) {
            black_box(router.handle(LinkStateInput::Tick, now));
        }
        let input = LinkStateInput::UpdateReceived { from: from.clone(), update: update.clone() };
        black_box(router.handle(input, now));
    }
    if let Some(due) = router.spf_due() {
        black_box(router.handle(LinkStateInput::Tick, due.max(now)));
    }
    began.elapsed()
}

struct ChurnScale {
    label: &'static str,
    nodes: usize,
    links: usize,
    /// Updates fed to the throttled router and to the baseline.
    updates: usize,
    baseline_updates: usize,
}

const CHURN_FULL: [ChurnScale; 2] = [
    ChurnScale { label: "10k nodes / 40k links", nodes: 10_000, links: 40_000, updates: 40_000, baseline_updates: 60 },
    ChurnScale { label: "1k nodes / 4k links", nodes: 1_000, links: 4_000, updates: 40_000, baseline_updates: 600 },
];
const CHURN_SMOKE: [ChurnScale; 1] =
    [ChurnScale { label: "smoke 200 / 800", nodes: 200, links: 800, updates: 400, baseline_updates: 20 }];

/// Single link changes fed one at a time, 50 µs of simulated time apart:
/// the default SPF throttle against a full recompute per update (the
/// `IMMEDIATE` throttle), in the same run.
fn churn_table(scales: &[ChurnScale], bench_mode: bool) {
    const TARGET_10K: f64 = 10_000.0;
    let start = Timestamp(1_700_000_000_000);
    println!();
    println!("Single link changes, one update per call, 50 us of simulated time apart (wall time, one core):");
    println!(
        "{:<24} {:>14} {:>18} {:>8} {:>9} {:>10} {:>10}",
        "graph", "throttled/s", "full recompute/s", "ratio", "spf runs", "deferred", "coalesced"
    );
    let mut first_rate = None;
    for scale in scales {
        let graph = random_graph(scale.nodes, scale.links, SEED);
        let stream = churn_stream(&graph, scale.updates, SEED ^ 0xc4a2);
        let throttle = SpfThrottleConfig::default();
        let (mut router, from) = churn_router(&graph, throttle, start);
        let before = router.counters().clone();
        let t0 = start + Duration::from_secs(10);
        let elapsed = feed(&mut router, &from, &stream, t0);
        let rate = scale.updates as f64 / elapsed.as_secs_f64();
        let counters = router.counters();

        let (mut baseline, from) = churn_router(&graph, SpfThrottleConfig::IMMEDIATE, start);
        let baseline_elapsed = feed(&mut baseline, &from, &stream[..scale.baseline_updates], t0);
        let baseline_rate = scale.baseline_updates as f64 / baseline_elapsed.as_secs_f64();
        println!(
            "{:<24} {:>14.0} {:>18.0} {:>8.1} {:>9} {:>10} {:>10}",
            scale.label,
            rate,
            baseline_rate,
            rate / baseline_rate,
            counters.spf_runs - before.spf_runs,
            counters.spf_deferred - before.spf_deferred,
            counters.spf_coalesced - before.spf_coalesced
        );
        first_rate.get_or_insert(rate);
    }
    if bench_mode && let Some(rate) = first_rate {
        let verdict = if rate >= TARGET_10K { "met" } else { "MISSED" };
        println!("target: 10k nodes >= {TARGET_10K:.0} updates/s: {rate:.0}: {verdict}");
    }
}
