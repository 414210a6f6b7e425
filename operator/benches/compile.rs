//! `compile(&index)` on a 1,000-sidecar fabric (issue 5: goal ≤ 100 ms),
//! against a baseline measured in the same run: cloning the index and
//! serializing every compiled config to YAML, the least any compiler feeding
//! the distributor has to do (read all the objects, write one YAML document
//! per sidecar; the distributor serializes each pushed config exactly so).
//!
//! `cargo bench -p operator --bench compile` prints a table (median of
//! several `Instant` runs, round-robin) and then runs the criterion
//! benchmarks. The table also times, alone, the parts of `compile` that the
//! profile shows growing with the fleet (the per-config `key_registry()`
//! inside `SidecarConfig::validate`, the YAML the version hashes, SHA-256),
//! the JSON alternative and the same fabric without RouteKeys;
//! `-- table` runs only the table. Sizes: `FABRIC_BENCH_SIDECARS`,
//! `FABRIC_BENCH_ROUTE_POLICIES`, `FABRIC_BENCH_ROUTE_KEYS`, runs:
//! `FABRIC_BENCH_RUNS`. Without `--bench` (`cargo test --benches`) it is a
//! smoke run at a tiny scale.

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{Criterion, SamplingMode};
use fabric_core::SidecarConfig;
use fabric_operator_core::api::RouteKey;
use fabric_operator_core::compile::{Compilation, compile};
use fabric_operator_core::index::Index;
use fabric_testkit::machine::{percentile, print_machine, sorted_ms};
use fabric_testkit::operator_topology::{self as topology, FULL, SMOKE, Sizes, assert_clean, env_usize};
use sha2::{Digest, Sha256};

/// The baseline: clone the index (the distributor clones its objects before
/// every compile) and serialize every compiled config to YAML.
fn baseline(index: &Index, compilation: &Compilation) -> usize {
    let copy = index.clone();
    let bytes = compilation.sidecars.values().map(|sidecar| sidecar.config.to_yaml().len()).sum();
    drop(black_box(copy));
    bytes
}

/// One timed run of `f`, the result dropped after the clock stops.
fn timed<T>(f: impl Fn() -> T) -> (Duration, T) {
    let start = Instant::now();
    let value = black_box(f());
    (start.elapsed(), value)
}

struct Row {
    what: String,
    ms: Vec<f64>,
}

fn row(what: impl Into<String>, samples: &[Duration]) -> Row {
    Row { what: what.into(), ms: sorted_ms(samples) }
}

fn print_rows(rows: &[Row], baseline_median: f64) {
    println!("| What | Median | min..max | Ratio to baseline |");
    println!("|---|---:|---:|---:|");
    for row in rows {
        let median = percentile(&row.ms, 50.0);
        println!(
            "| {} | {median:.1} ms | {:.1}..{:.1} ms | {:.2}x |",
            row.what,
            row.ms[0],
            row.ms[row.ms.len() - 1],
            median / baseline_median
        );
    }
}

fn table(sizes: Sizes, runs: usize) {
    let index = topology::index(sizes);
    let (first, compilation) = timed(|| compile(&index));
    assert_clean(&compilation, sizes.sidecars);
    let configs = &compilation.sidecars;
    let neighbors: usize = configs.values().map(|c| c.config.neighbors.len()).sum();
    let keys = configs.values().next().map_or(0, |c| c.config.security.trusted_keys.len());
    let members = configs.values().filter(|c| c.link_state().is_some()).count();
    let yaml_bytes = baseline(&index, &compilation);
    let winners: std::collections::BTreeSet<_> = configs
        .values()
        .flat_map(|c| c.sources.iter().filter(|s| s.kind == fabric_operator_core::index::ObjectKind::RoutePolicy))
        .collect();
    println!(
        "topology: {} sidecars, {} RoutePolicies ({} distinct winners), {} NeighborPolicies, {} RouteKeys \
         ({keys} trusted keys per sidecar), {} LinkStateAreas ({members} member sidecars)",
        sizes.sidecars,
        sizes.route_policies,
        winners.len(),
        index.objects::<fabric_operator_core::api::NeighborPolicy>().count(),
        sizes.route_keys,
        index.objects::<fabric_operator_core::api::LinkStateArea>().count(),
    );
    println!(
        "per sidecar: {:.1} neighbors, {:.0} bytes of config YAML; no problems, no notable conditions",
        neighbors as f64 / configs.len().max(1) as f64,
        yaml_bytes as f64 / configs.len().max(1) as f64
    );
    println!("first compile (cold): {:.1} ms", first.as_secs_f64() * 1e3);
    // Could the distributor send JSON instead of YAML? The sidecar parses
    // `config_yaml` with a YAML parser, which reads JSON too.
    let same = configs
        .values()
        .filter(|c| {
            let json = serde_json::to_string(&c.config).expect("JSON");
            SidecarConfig::from_yaml(&json).is_ok_and(|parsed| parsed == c.config)
        })
        .count();
    println!("configs whose JSON text `SidecarConfig::from_yaml` reads back unchanged: {same} of {}", configs.len());
    drop(compilation);

    // Where the time goes: the parts of `compile` that grow with the
    // number of sidecars, each timed alone over the same compiled configs,
    // and the same fabric without RouteKeys (no trusted keys in any config).
    let reference = compile(&index);
    let without_keys = index_without_route_keys(&index);
    let yaml: Vec<String> = reference.sidecars.values().map(|s| s.config.to_yaml()).collect();
    type Job<'a> = (String, Box<dyn Fn() -> usize + 'a>);
    let jobs: Vec<Job> = vec![
        (format!("compile(&index), {} sidecars", sizes.sidecars), Box::new(|| compile(&index).sidecars.len())),
        ("baseline: clone the index + every config to YAML".into(), Box::new(|| baseline(&index, &reference))),
        ("part: `key_registry()` of every config (`validate` does it)".into(), Box::new(|| key_registries(&reference))),
        ("part: every config to YAML (serde_norway)".into(), Box::new(|| yaml_all(&reference))),
        ("part: SHA-256 of every config's YAML".into(), Box::new(|| sha_all(&yaml))),
        ("alternative: every config to JSON (serde_json)".into(), Box::new(|| json_all(&reference))),
        ("compile(&index) without the RouteKeys".into(), Box::new(|| compile(&without_keys).sidecars.len())),
    ];
    // Round-robin, so that load changes on the shared machine hit all alike.
    let mut samples = vec![Vec::new(); jobs.len()];
    for _ in 0..runs {
        for ((_, job), samples) in jobs.iter().zip(&mut samples) {
            samples.push(timed(job).0);
        }
    }
    let rows: Vec<Row> = jobs.iter().zip(&samples).map(|((what, _), samples)| row(what.clone(), samples)).collect();
    let base_median = percentile(&rows[1].ms, 50.0);
    println!("\n{runs} runs each, `Instant`, round-robin:\n");
    print_rows(&rows, base_median);
    let median = percentile(&rows[0].ms, 50.0);
    let verdict = if median <= 100.0 { "met" } else { "MISSED" };
    println!("\ngoal: compile ≤ 100 ms at 1,000 sidecars: {verdict} ({median:.1} ms at {} sidecars)", sizes.sidecars);
}

fn index_without_route_keys(index: &Index) -> Index {
    let mut copy = index.clone();
    let names: Vec<_> = copy.objects::<RouteKey>().map(|(name, _)| name.clone()).collect();
    for name in names {
        copy.delete::<RouteKey>(&name.namespace, &name.name);
    }
    copy
}

fn key_registries(compilation: &Compilation) -> usize {
    compilation.sidecars.values().filter(|s| s.config.key_registry().is_ok()).count()
}

fn yaml_all(compilation: &Compilation) -> usize {
    compilation.sidecars.values().map(|s| serde_norway::to_string(&s.config).map_or(0, |y| y.len())).sum()
}

fn json_all(compilation: &Compilation) -> usize {
    compilation.sidecars.values().map(|s| serde_json::to_vec(&s.config).map_or(0, |j| j.len())).sum()
}

fn sha_all(yaml: &[String]) -> usize {
    yaml.iter().map(|y| Sha256::digest(y.as_bytes())[0] as usize).sum()
}

fn micro_benchmarks(criterion: &mut Criterion, sizes: Sizes) {
    let index = topology::index(sizes);
    let reference = compile(&index);
    let mut group = criterion.benchmark_group("compile");
    group.sampling_mode(SamplingMode::Flat).sample_size(10);
    group.bench_function(format!("compile_{}_sidecars", sizes.sidecars), |b| b.iter(|| compile(black_box(&index))));
    group.bench_function("baseline_clone_index_and_yaml", |b| b.iter(|| baseline(black_box(&index), &reference)));
    group.finish();
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let bench_mode = args.iter().any(|arg| arg == "--bench");
    let sizes = Sizes::from_env(if bench_mode { FULL } else { SMOKE });
    let runs = env_usize("FABRIC_BENCH_RUNS", if bench_mode { 11 } else { 2 });
    // A criterion-style name filter also selects the table, named "table".
    let filter = args
        .iter()
        .enumerate()
        .find(|(i, arg)| {
            !arg.starts_with('-') && (*i == 0 || !args[i - 1].starts_with("--") || args[i - 1] == "--bench")
        })
        .map(|(_, arg)| arg.as_str());
    if filter.is_none_or(|f| "table".contains(f)) {
        print_machine();
        table(sizes, runs);
    }
    if bench_mode {
        let mut criterion = Criterion::default()
            .warm_up_time(Duration::from_secs(1))
            .measurement_time(Duration::from_secs(3))
            .configure_from_args();
        micro_benchmarks(&mut criterion, sizes);
        criterion.final_summary();
    }
}
