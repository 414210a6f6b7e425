//! End-to-end benchmarks of real `routing-sidecar` processes on 127.0.0.1
//! (results and analysis: `docs/benchmarks.md`, Sidecar):
//!
//! ```sh
//! cargo build --release -p routing-sidecar        # the sidecar binary itself
//! cargo bench -p routing-sidecar --bench sidecar  # add `-- peer` etc. for one group
//! ```
//!
//! The sidecar executable is `fabric_testkit::process::try_sidecar_exe`'s:
//! `FABRIC_SIDECAR_EXE`, else the one next to this bench binary
//! (`target/release/deps/sidecar-*` -> `target/release/routing-sidecar`).
//!
//! Scenario groups (name filters on the command line select them):
//!
//! - `idle`: RSS (`VmRSS` of `/proc/<pid>/status`) of a sidecar without
//!   neighbors or routes, 1 s after it started.
//! - `pair`: announcements per second between two sidecars over loopback
//!   TCP. `a` originates N destinations (from its config file), `b` is its
//!   neighbor; both start without addresses, then `b` gets a config with
//!   `a`'s address and the clock runs from that push until `b`'s
//!   `GET /peers` reports `routes_received == N` for `a` (polled every
//!   `POLL`; one counter, where `/stats` builds every statistic), then `/stats`
//!   must show `routes_active_total == N`. Run with N = 100k and with a
//!   small table (4,000). Also the RSS of `a` holding N originated routes.
//!   Next to the polls' clock, `b`'s own (`/peers`, `table_received_ms`:
//!   session up to `a`'s end-of-table handled), and what `b` went through
//!   meanwhile: CPU time by thread, page faults, preemptions of its engine
//!   thread and how long it waited for a CPU.
//!   Between the transfers, the in-memory references they are compared
//!   with: the engine ingesting the same announcements in this process
//!   (the baseline), the same in a fresh process (this binary run again
//!   with `FRESH_PROCESS_ARG`: its table in memory never touched, as
//!   `b`'s), and the transfer between two in-process engines.
//! - `peer`: `b` alone, this process acting as neighbor `a` (hello, N
//!   pre-encoded announcements, keepalives): `b`'s receive path at N = 100k,
//!   at the default log level and at `warn`, polled through `/stats` and
//!   through the cheaper `/peers`; once with the default
//!   `session.maxMessagesPerSecond`. Also the RSS of `b` holding N routes.
//! - `failover`: a line and a full mesh of sidecars, each originating one
//!   destination, hold time 900 ms; one node is SIGKILLed (or SIGSTOPped:
//!   only the hold timer notices) and the clock runs until every other
//!   node's `GET /routes` holds exactly the destinations it can still reach
//!   (and stays so for `SETTLE`).
//!
//! `FABRIC_BENCH_RUNS=N` repeats each scenario N times instead of 3;
//! `FABRIC_BENCH_KEEP=1` keeps the sidecars' directories and logs.
//!
//! With `pair` and `peer`, the same announcements are fed to an in-process
//! `Engine` (as `benches/engine.rs` does) between the runs, and the ratios
//! loopback / in-memory are printed. Every figure is the median of the runs
//! in this one process. Without `--bench` (e.g. `cargo test --benches`) a
//! tiny scale runs as a smoke test, and a missing sidecar binary is reported
//! but not fatal.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use fabric_core::config::LocalRoute;
use fabric_core::wire::{self, Frame};
use fabric_core::{Message, NodeId, RouteAnnouncement, RouteMetrics, SidecarConfig, Timestamp};
use fabric_engine::sim::{Topology, TopologyLink, TopologyNode};
use fabric_engine::{Effect, Engine};
use fabric_sidecar::runtime::lab::{Lab, SidecarProcess};
use fabric_testkit::machine::machine;
use fabric_testkit::process::{scratch_in, try_sidecar_exe};
use fabric_testkit::wait::wait_until;

/// The allocator the `routing-sidecar` binary runs with (see its main.rs),
/// so that the in-memory engine is measured as the sidecar runs it.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// How often the local APIs are polled while a clock runs.
const POLL: Duration = Duration::from_millis(5);
/// A failure counts as converged once every node stayed correct this long.
const SETTLE: Duration = Duration::from_millis(500);
/// Messages per `receive_batch` in the in-memory runs: what the sidecar's
/// connection task hands the actor at most (`transport::MAX_BATCH`).
const BATCH: usize = 4096;
const NOW: Timestamp = Timestamp(1_700_000_000_000);
const TARGET_IDLE_RSS_MB: f64 = 20.0;

#[derive(Clone, Copy)]
struct Scale {
    /// Destinations `a` originates in the loopback scenario.
    destinations: usize,
    /// Nodes of the line and of the mesh.
    fabric_nodes: usize,
    runs: usize,
    /// A small table: the time to the first route weighs more.
    pair_small: usize,
    /// Longest wait for the loopback transfer before giving up.
    transfer_timeout: Duration,
}

const FULL: Scale = Scale {
    destinations: 100_000,
    fabric_nodes: 10,
    runs: 3,
    pair_small: 4_000,
    transfer_timeout: Duration::from_secs(60),
};
const SMOKE: Scale =
    Scale { destinations: 1_000, fabric_nodes: 4, runs: 1, pair_small: 500, transfer_timeout: Duration::from_secs(10) };

fn main() {
    if let Some(n) = fresh_process_request() {
        let (took, faults) = in_memory_run(n, false);
        println!("{} {faults}", took.as_nanos());
        return;
    }
    let bench_mode = std::env::args().any(|arg| arg == "--bench");
    let mut scale = if bench_mode { FULL } else { SMOKE };
    // More runs give steadier medians on a noisy machine.
    if let Some(runs) = std::env::var("FABRIC_BENCH_RUNS").ok().and_then(|runs| runs.parse().ok()) {
        scale.runs = runs;
    }
    let exe = match try_sidecar_exe() {
        Ok(exe) => exe,
        Err(message) => {
            eprintln!(
                "the sidecar benchmark runs the sidecar binary: {message}.\n\
                 Then run the benchmark: cargo bench -p routing-sidecar --bench sidecar"
            );
            if bench_mode {
                std::process::exit(2);
            }
            return;
        }
    };
    print_machine(&exe);
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("tokio runtime");
    let scratch = scratch_in(&std::env::temp_dir(), "fabric-sidecar-bench");
    let started = Instant::now();
    let groups = Groups::from_args();
    if let Some(unknown) = groups.0.iter().find(|f| !Groups::ALL.iter().any(|g| g.contains(f.as_str()))) {
        eprintln!("no scenario group matches {unknown:?}; groups: {}", Groups::ALL.join(", "));
    }
    // On Ctrl-C the scenario future is dropped, which kills the sidecars
    // (`kill_on_drop`) before the exit.
    let report = runtime.block_on(async {
        tokio::select! {
            report = run_all(&exe, &scratch, scale, &groups) => Some(report),
            _ = tokio::signal::ctrl_c() => None,
        }
    });
    match report {
        Some(Ok(report)) => {
            if std::env::var_os("FABRIC_BENCH_KEEP").is_some() {
                eprintln!("sidecar directories and logs kept in {} (FABRIC_BENCH_KEEP)", scratch.display());
            } else {
                let _ = std::fs::remove_dir_all(&scratch);
            }
            report.print(started.elapsed());
        }
        Some(Err(error)) => {
            eprintln!("sidecar bench failed: {error}\n(sidecar directories and logs kept in {})", scratch.display());
            std::process::exit(1);
        }
        None => {
            let _ = std::fs::remove_dir_all(&scratch);
            std::process::exit(130);
        }
    }
}

fn print_machine(exe: &Path) {
    let (cpu, cores) = machine();
    println!("sidecar benchmark: cpu {cpu:?}, {cores} cores available; sidecar {}", exe.display());
    let log = std::env::var("FABRIC_LAB_LOG").unwrap_or_else(|_| "info (default)".into());
    println!("sidecar log level (FABRIC_LAB_LOG): {log}");
}

// ---------------------------------------------------------------------------
// Small helpers

fn node(id: &str) -> NodeId {
    NodeId::from(id)
}

fn destination(i: usize) -> String {
    format!("svc-{i:06}.bench.fabric")
}

fn median(values: &[f64]) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    sorted.get(sorted.len() / 2).copied().unwrap_or(f64::NAN)
}

fn spread(values: &[f64]) -> (f64, f64) {
    let min = values.iter().copied().fold(f64::INFINITY, f64::min);
    let max = values.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    (min, max)
}

fn human_rate(rate: f64) -> String {
    if rate >= 1e6 {
        format!("{:.2}M/s", rate / 1e6)
    } else if rate >= 1e3 {
        format!("{:.1}k/s", rate / 1e3)
    } else {
        format!("{rate:.0}/s")
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// `VmRSS` and `VmHWM` of a process, in MB (10^6 bytes).
fn rss_mb(pid: u32) -> Result<(f64, f64), String> {
    let status =
        std::fs::read_to_string(format!("/proc/{pid}/status")).map_err(|e| format!("/proc/{pid}/status: {e}"))?;
    let field = |name: &str| -> Result<f64, String> {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|kb| kb.parse::<f64>().ok())
            .map(|kb| kb * 1024.0 / 1e6)
            .ok_or_else(|| format!("no {name} in /proc/{pid}/status"))
    };
    Ok((field("VmRSS:")?, field("VmHWM:")?))
}

fn pid(process: &SidecarProcess) -> Result<u32, String> {
    process.child.id().ok_or_else(|| format!("{} has exited", process.node_id))
}

async fn stat(process: &SidecarProcess, key: &str) -> Result<u64, String> {
    let stats = process.get_json("/stats").await?;
    stats["engine"][key].as_u64().ok_or_else(|| format!("no engine.{key} in /stats"))
}

/// Lines of a sidecar's log (stderr, JSON) containing `needle`.
fn log_count(process: &SidecarProcess, needle: &str) -> usize {
    std::fs::read_to_string(process.dir.join("sidecar.log"))
        .map_or(0, |log| log.lines().filter(|l| l.contains(needle)).count())
}

// ---------------------------------------------------------------------------
// 1. Loopback transfer and the in-memory engine

/// What a process used so far, from `/proc/<pid>/stat` (`self` for this
/// one).
#[derive(Clone, Copy)]
struct Usage {
    /// User + system CPU time (10 ms ticks).
    cpu: Duration,
    /// Minor page faults: every page touched for the first time, which on
    /// this VM costs the kernel zeroing it and the hypervisor backing it.
    page_faults: u64,
}

fn usage(pid: &str) -> Result<Usage, String> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).map_err(|e| format!("/proc/{pid}/stat: {e}"))?;
    // Fields after the command name (which may hold spaces) start at state.
    let rest = stat.rsplit_once(')').map(|(_, rest)| rest).ok_or("bad /proc/pid/stat")?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let field = |i: usize| fields.get(i).and_then(|f| f.parse::<u64>().ok()).ok_or("bad /proc/pid/stat");
    // Field n of the line is at n - 3 here (state is field 3): minflt is
    // field 10, utime and stime 14 and 15, in ticks of 10 ms (USER_HZ =
    // 100 on Linux).
    Ok(Usage { cpu: Duration::from_millis((field(11)? + field(12)?) * 10), page_faults: field(7)? })
}

/// The name of a sidecar's node actor thread, which runs the engine
/// (`runtime/actor_thread.rs`).
const ENGINE_THREAD: &str = "fabric-node";

/// The threads of `pid` so far: each one's name and its `/proc` directory.
fn threads(pid: u32) -> Vec<(String, PathBuf)> {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else { return Vec::new() };
    tasks
        .flatten()
        .map(|task| {
            let name = std::fs::read_to_string(task.path().join("comm")).unwrap_or_default();
            (name.trim_end().to_owned(), task.path())
        })
        .collect()
}

/// How often the engine thread of `pid` was preempted so far
/// (`nonvoluntary_ctxt_switches`); 0 when there is no such thread.
fn preemptions(pid: u32) -> u64 {
    threads(pid)
        .into_iter()
        .filter(|(name, _)| name == ENGINE_THREAD)
        .filter_map(|(_, dir)| {
            let status = std::fs::read_to_string(dir.join("status")).ok()?;
            let line = status.lines().find(|line| line.starts_with("nonvoluntary_ctxt_switches:"))?;
            line.split_whitespace().nth(1)?.parse::<u64>().ok()
        })
        .sum()
}

/// CPU time a sidecar's threads used so far, from each thread's
/// `schedstat` (nanoseconds, unlike the 10 ms ticks of `/proc/<pid>/stat`):
/// its engine thread (`ENGINE_THREAD`) and every other thread (the
/// connections' I/O, the APIs).
#[derive(Clone, Copy, Default)]
struct ThreadCpu {
    engine: Duration,
    /// How long the engine thread was ready to run but waited for a CPU
    /// (`schedstat`'s second field): what the other threads, this
    /// sidecar's and the rest of the machine's, cost it.
    engine_waited: Duration,
    other: Duration,
}

impl ThreadCpu {
    fn of(pid: u32) -> ThreadCpu {
        let mut cpu = ThreadCpu::default();
        for (name, dir) in threads(pid) {
            let schedstat = std::fs::read_to_string(dir.join("schedstat")).unwrap_or_default();
            let mut fields = schedstat.split_whitespace().map(|field| field.parse::<u64>().ok());
            let mut next = || fields.next().flatten().map_or(Duration::ZERO, Duration::from_nanos);
            let (on_cpu, waited) = (next(), next());
            if name == ENGINE_THREAD {
                cpu.engine += on_cpu;
                cpu.engine_waited += waited;
            } else {
                cpu.other += on_cpu;
            }
        }
        cpu
    }

    fn since(self, before: ThreadCpu) -> ThreadCpu {
        ThreadCpu {
            engine: self.engine.saturating_sub(before.engine),
            engine_waited: self.engine_waited.saturating_sub(before.engine_waited),
            other: self.other.saturating_sub(before.other),
        }
    }
}

fn self_page_faults() -> u64 {
    usage("self").expect("/proc/self/stat").page_faults
}

fn cpu_time(pid: u32) -> Result<Duration, String> {
    Ok(usage(&pid.to_string())?.cpu)
}

struct Timing {
    /// From the start of the clock to `routes_active_total == N` seen at `b`.
    total: Duration,
    /// From the start to the first route seen at `b` (session setup).
    first: Duration,
    /// Longest gap between the starts of two consecutive `/stats` polls.
    worst_poll_gap: Duration,
    /// CPU time `b` used meanwhile (10 ms ticks).
    cpu_b: Duration,
    /// Page faults `b` took meanwhile.
    faults_b: u64,
    /// How often `b`'s node actor (the engine) was preempted meanwhile.
    preempted_b: u64,
    /// CPU time the sending sidecar used meanwhile, when it is one.
    cpu_a: Option<Duration>,
    /// The same by thread, in nanoseconds, of `b` and of `a` when it is a
    /// sidecar.
    threads_b: ThreadCpu,
    threads_a: Option<ThreadCpu>,
    /// How much `b`'s RSS grew meanwhile (MB): memory it touched for the
    /// first time, which the kernel (and on a VM the hypervisor) has to
    /// provide and zero.
    rss_growth_b: f64,
    /// `b`'s own figure (`/peers`, `table_received_ms`): from its session
    /// with `a` coming up to `a`'s end-of-table handled, every route in
    /// use. Free of the polls' delays, which grow when the machine is busy.
    table_received: Option<Duration>,
}

/// How long `b`'s route count may stand still before the transfer is
/// declared stuck.
const STALL: Duration = Duration::from_secs(5);

/// What tells that `b` holds the routes.
#[derive(Clone, Copy, PartialEq)]
enum Probe {
    /// `GET /stats`, `engine.routes_active_total` (with every other statistic).
    Stats,
    /// `GET /peers`, `routes_received` of the one neighbor (a counter);
    /// `routes_active_total` is checked once at the end.
    Peers,
}

impl Probe {
    async fn count(self, b: &SidecarProcess) -> Result<u64, String> {
        match self {
            Probe::Stats => stat(b, "routes_active_total").await,
            Probe::Peers => {
                b.get_json("/peers").await?[0]["routes_received"].as_u64().ok_or("no routes_received".into())
            }
        }
    }
}

/// Polls `b` every `POLL` from `started` until it holds `n` routes; fails
/// when the count stands still for `STALL` or `limit` passes.
async fn watch_transfer(
    b: &SidecarProcess,
    n: usize,
    started: Instant,
    limit: Duration,
    probe: Probe,
) -> Result<Timing, String> {
    let before = usage(&pid(b)?.to_string())?;
    let threads_before = ThreadCpu::of(pid(b)?);
    let rss_before = rss_mb(pid(b)?)?.0;
    let preempted_before = preemptions(pid(b)?);
    let (mut first, mut worst_poll_gap, mut last_poll) = (None, Duration::ZERO, started);
    let (mut last_count, mut last_change) = (0, started);
    loop {
        let poll_start = Instant::now();
        worst_poll_gap = worst_poll_gap.max(poll_start - last_poll);
        last_poll = poll_start;
        let active = probe.count(b).await?;
        if active > 0 && first.is_none() {
            first = Some(started.elapsed());
        }
        if active == n as u64 {
            let total = started.elapsed();
            let after = usage(&pid(b)?.to_string())?;
            let (cpu_b, faults_b) = (after.cpu.saturating_sub(before.cpu), after.page_faults - before.page_faults);
            let threads_b = ThreadCpu::of(pid(b)?).since(threads_before);
            let rss_growth_b = rss_mb(pid(b)?)?.0 - rss_before;
            let preempted_b = preemptions(pid(b)?).saturating_sub(preempted_before);
            let routes = stat(b, "routes_active_total").await?;
            if routes != n as u64 {
                return Err(format!("b received {n} routes but has {routes} active"));
            }
            let table_received = table_received(b).await?;
            return Ok(Timing {
                total,
                first: first.unwrap_or(total),
                worst_poll_gap,
                cpu_b,
                faults_b,
                preempted_b,
                cpu_a: None,
                threads_b,
                threads_a: None,
                rss_growth_b,
                table_received,
            });
        }
        if active != last_count {
            (last_count, last_change) = (active, Instant::now());
        }
        if last_change.elapsed() > STALL || started.elapsed() > limit {
            return Err(format!(
                "b stuck at {active}/{n} active routes ({:.1} s after the start, no progress for {:.1} s)",
                started.elapsed().as_secs_f64(),
                last_change.elapsed().as_secs_f64()
            ));
        }
        tokio::time::sleep(POLL).await;
    }
}

/// `b`'s `table_received_ms` for its one neighbor, once the end-of-table
/// that follows the last route was handled; `None` from a sidecar too old
/// to report it (`FABRIC_SIDECAR_EXE`).
async fn table_received(b: &SidecarProcess) -> Result<Option<Duration>, String> {
    let started = Instant::now();
    loop {
        let peer = b.get_json("/peers").await?[0].clone();
        match peer.get("table_received_ms") {
            None => return Ok(None),
            Some(took) if took.is_number() => {
                return Ok(took.as_f64().map(|took| Duration::from_secs_f64(took / 1e3)));
            }
            Some(_) if started.elapsed() > STALL => {
                return Err("b has every route but did not handle a's end-of-table".into());
            }
            Some(_) => tokio::time::sleep(POLL).await,
        }
    }
}

fn loopback_topology(n: usize) -> Topology {
    let originate = (0..n)
        .map(|i| LocalRoute {
            destination: destination(i).into(),
            cost: 0,
            latency_us: 0,
            reliability: 1.0,
            tags: Vec::new(),
        })
        .collect();
    Topology {
        nodes: vec![TopologyNode { id: node("a"), originate }, TopologyNode { id: node("b"), originate: Vec::new() }],
        links: vec![TopologyLink { a: node("a"), b: node("b"), metrics: Default::default() }],
        fail_node: None,
    }
}

/// Room for more messages per second than any run sends, so that the limit
/// never shapes a measurement: the default `session.maxMessagesPerSecond`
/// (50k/s, with a burst of ten seconds' worth) takes one table of 100k
/// routes at full speed, as the run with the default shows, but not many.
fn raise_rate_limit(config: &mut SidecarConfig) {
    config.session.max_messages_per_second = 10_000_000;
}

struct PairRun {
    timing: Result<Timing, String>,
    /// From spawning `a` (config file with N routes) to all N active at `a`.
    a_start: Duration,
    /// `a` holding its N originated routes, before the transfer.
    rss_a: (f64, f64),
    /// What `PUT /config` of `a`'s config did (when probed).
    put_big_config: Option<String>,
}

/// Two sidecars: `a` originates N routes, `b` is its neighbor. Both start
/// without addresses (neither dials); the clock starts with the push of
/// `b`'s config carrying `a`'s address, so `b` dials `a` and `a` sends its
/// table.
async fn pair_run(exe: &Path, dir: &Path, n: usize, limit: Duration, probe_put: bool) -> Result<PairRun, String> {
    let topology = loopback_topology(n);
    let mut configs = BTreeMap::new();
    for mut config in topology.configs() {
        raise_rate_limit(&mut config);
        configs.insert(config.node_id.clone(), config);
    }
    // `a` reads its N routes from its config file (`PUT /config` takes at
    // most 2 MB).
    let started = Instant::now();
    let a = SidecarProcess::spawn(exe, &configs["a"], &dir.join("a"), &[]).await?;
    wait_until(Duration::from_secs(60), POLL, "a originates its routes", || async {
        Ok(stat(&a, "routes_active_total").await? == n as u64)
    })
    .await?;
    let a_start = started.elapsed();
    let b = SidecarProcess::spawn(exe, &configs["b"], &dir.join("b"), &[]).await?;
    let nodes = BTreeMap::from([(node("a"), a), (node("b"), b)]);
    let mut lab = Lab { exe: exe.to_path_buf(), dir: dir.to_path_buf(), nodes, configs };
    let put_big_config = if probe_put {
        let started = Instant::now();
        Some(match lab.node("a").apply(&lab.configs["a"]).await {
            Ok(response) => format!("HTTP {} after {:.0} ms", response.status, ms(started.elapsed())),
            Err(error) => format!("failed after {:.0} ms: {error}", ms(started.elapsed())),
        })
    } else {
        None
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    let rss_a = rss_mb(pid(lab.node("a"))?)?;
    if stat(lab.node("b"), "routes_active_total").await? != 0 {
        return Err("b has routes before it was connected".into());
    }

    let address = lab.node("a").peer.to_string();
    let config = lab.configs.get_mut("b").ok_or("no b")?;
    config.neighbors.iter_mut().for_each(|neighbor| neighbor.address = Some(address.clone()));
    let started = Instant::now();
    let response = lab.node("b").apply(&lab.configs["b"]).await?;
    if response.status != 200 {
        return Err(format!("b refused its config: {}", response.body));
    }
    let cpu_a_before = cpu_time(pid(lab.node("a"))?)?;
    let threads_a_before = ThreadCpu::of(pid(lab.node("a"))?);
    let timing = match watch_transfer(lab.node("b"), n, started, limit, Probe::Peers).await {
        Ok(timing) => {
            let cpu_a = cpu_time(pid(lab.node("a"))?)?.saturating_sub(cpu_a_before);
            let threads_a = ThreadCpu::of(pid(lab.node("a"))?).since(threads_a_before);
            Ok(Timing { cpu_a: Some(cpu_a), threads_a: Some(threads_a), ..timing })
        }
        Err(error) => Err(format!("{error}\n{}", pair_diagnosis(&lab).await)),
    };
    Ok(PairRun { timing, a_start, rss_a, put_big_config })
}

/// Counters of both ends and what their logs say.
async fn pair_diagnosis(lab: &Lab) -> String {
    let mut lines = Vec::new();
    for (name, process) in [("a", lab.node("a")), ("b", lab.node("b"))] {
        if let Ok(stats) = process.get_json("/stats").await {
            let engine = &stats["engine"];
            let peer = &stats["peers"][0];
            lines.push(format!(
                "  {name}: routes_active_total {}, announcements_received {}, messages_sent_total {}; \
                 session established {}, failures {}, last_error {}",
                engine["routes_active_total"],
                engine["announcements_received"],
                engine["messages_sent_total"],
                peer["established"],
                peer["session_failures_total"],
                peer["last_error"],
            ));
        }
        lines.push(format!(
            "  {name} log: {} x 'send queue full', {} x 'session established', {} x 'session down'",
            log_count(process, "send queue full"),
            log_count(process, "session established"),
            log_count(process, "session down"),
        ));
    }
    lines.join("\n")
}

/// Appends one session frame with the transport's 4-byte big-endian length.
fn push_frame(out: &mut Vec<u8>, frame: &Frame) {
    let mut body = Vec::new();
    wire::encode_frame(frame, &mut body);
    out.extend_from_slice(&(body.len() as u32).to_be_bytes());
    out.extend_from_slice(&body);
}

/// `b` alone, fed by this process acting as neighbor `a` over loopback TCP:
/// hello, N announcements and end-of-table written as fast as the socket
/// takes them (pre-encoded), keepalives afterwards. Isolates `b`'s receive
/// path (socket, frame decode, actor, engine, logging) from `a`'s sending.
/// With `raise_limit` false, `b` keeps the default
/// `session.maxMessagesPerSecond`.
async fn fake_peer_run(
    exe: &Path,
    dir: &Path,
    n: usize,
    limit: Duration,
    probe: Probe,
    raise_limit: bool,
    log_filter: &str,
) -> Result<PeerRun, String> {
    use tokio::io::AsyncReadExt;
    let mut config = loopback_topology(0).configs().pop().ok_or("no b")?;
    if raise_limit {
        raise_rate_limit(&mut config);
    }
    let b = SidecarProcess::spawn_logging(exe, &config, dir, &[], log_filter).await?;
    wait_until(Duration::from_secs(10), POLL, "b ready", || async { Ok(b.get("/readyz").await?.status == 200) })
        .await?;
    let mut bytes = Vec::with_capacity(n * 64);
    push_frame(&mut bytes, &Frame::Hello { node_id: node("a"), hold_time_ms: 3000 });
    for message in announcements(n) {
        push_frame(&mut bytes, &Frame::Routing(message));
    }
    push_frame(&mut bytes, &Frame::Routing(Message::EndOfTable { advertiser: node("a") }));
    let mut keepalive = Vec::new();
    push_frame(&mut keepalive, &Frame::Keepalive);

    let started = Instant::now();
    let stream = tokio::net::TcpStream::connect(b.peer).await.map_err(|e| format!("connect {}: {e}", b.peer))?;
    stream.set_nodelay(true).map_err(|e| e.to_string())?;
    let (mut reader, writer) = stream.into_split();
    // Whatever b sends (its hello, end-of-table, keepalives) is discarded.
    let drain = tokio::spawn(async move {
        let mut sink = vec![0u8; 64 * 1024];
        while reader.read(&mut sink).await.is_ok_and(|read| read > 0) {}
    });
    let send = tokio::spawn(feed(writer, bytes, keepalive));
    let timing = match watch_transfer(&b, n, started, limit, probe).await {
        Ok(timing) => Ok(timing),
        Err(error) => {
            let peer = b.get_json("/peers").await.map(|peers| peers[0].clone()).unwrap_or_default();
            Err(format!(
                "{error}; b's session with a: established {}, failures {}, last_error {}",
                peer["established"], peer["session_failures_total"], peer["last_error"]
            ))
        }
    };
    let (rss, stats_latency) = match &timing {
        Ok(_) => {
            tokio::time::sleep(Duration::from_millis(300)).await;
            let rss = rss_mb(pid(&b)?);
            let started = Instant::now();
            for _ in 0..10 {
                stat(&b, "routes_active_total").await?;
            }
            (rss, started.elapsed() / 10)
        }
        Err(_) => (Ok((0.0, 0.0)), Duration::ZERO),
    };
    drain.abort();
    if send.is_finished() {
        let error = send.await.unwrap_or_else(|e| e.to_string());
        return Err(format!("fake peer: {error}; {}", timing.err().unwrap_or_default()));
    }
    send.abort();
    Ok(PeerRun { timing: timing?, rss: rss?, stats_latency })
}

struct PeerRun {
    timing: Timing,
    /// `VmRSS` and `VmHWM` of `b` holding the N routes.
    rss: (f64, f64),
    /// Mean `GET /stats` round trip on the full table, `b` otherwise idle.
    stats_latency: Duration,
}

/// Writes `bytes`, then a keepalive every 500 ms; returns only on error.
async fn feed(mut writer: tokio::net::tcp::OwnedWriteHalf, bytes: Vec<u8>, keepalive: Vec<u8>) -> String {
    use tokio::io::AsyncWriteExt;
    if let Err(e) = writer.write_all(&bytes).await {
        return format!("write: {e}");
    }
    loop {
        tokio::time::sleep(Duration::from_millis(500)).await;
        if let Err(e) = writer.write_all(&keepalive).await {
            return format!("keepalive: {e}");
        }
    }
}

/// The announcements `a` sends `b`, as `b` decodes them.
fn announcements(n: usize) -> Vec<Message> {
    let a = node("a");
    (0..n)
        .map(|i| {
            Message::Announcement(RouteAnnouncement {
                destination: destination(i).into(),
                path: vec![a.clone()],
                hop_count: 1,
                metrics: RouteMetrics { cost: 1, latency_us: 0, reliability: 1.0 },
                advertiser: a.clone(),
                epoch: i as u64 + 1,
                ttl_ms: 90_000,
                issued_at_ms: None,
                tags: Vec::new().into(),
                signature: None,
            })
        })
        .collect()
}

fn engine_b() -> Engine {
    let config = loopback_topology(0).configs().pop().expect("b's config");
    assert_eq!(config.node_id.as_str(), "b");
    let mut engine = Engine::new(config, NOW).expect("valid config");
    engine.neighbor_up(NOW, &node("a"));
    engine.drain_effects(NOW);
    engine
}

/// The in-process engine ingesting the same N announcements: batches of
/// `BATCH` through `receive_batch`, effects drained after each, as the
/// sidecar's actor does. With `frames`, each message is first decoded from
/// its session frame (as the connection task does). Returns the elapsed
/// time of the ingestion alone and the page faults this process took in it.
fn in_memory_run(n: usize, frames: bool) -> (Duration, u64) {
    let mut engine = engine_b();
    let a = node("a");
    let mut out: Vec<Effect> = Vec::new();
    let limits = SidecarConfig::new("b").limits.decode_limits();
    let (elapsed, faults) = if frames {
        let encoded: Vec<Vec<u8>> = announcements(n)
            .into_iter()
            .map(|m| {
                let mut buf = Vec::new();
                wire::encode_frame(&Frame::Routing(m), &mut buf);
                buf
            })
            .collect();
        let (start, faults) = (Instant::now(), self_page_faults());
        for chunk in encoded.chunks(BATCH) {
            let mut batch = chunk
                .iter()
                .map(|bytes| match wire::decode_frame(bytes, &limits).expect("frame decodes") {
                    Frame::Routing(message) => (a.clone(), message),
                    _ => unreachable!("routing frame"),
                })
                .collect();
            engine.receive_batch(NOW, &mut batch);
            engine.drain_effects_into(NOW, &mut out);
            out.clear();
        }
        (start.elapsed(), self_page_faults() - faults)
    } else {
        let mut messages = announcements(n).into_iter().map(|m| (a.clone(), m)).peekable();
        let mut batches = Vec::new();
        while messages.peek().is_some() {
            batches.push(messages.by_ref().take(BATCH).collect::<Vec<_>>());
        }
        let (start, faults) = (Instant::now(), self_page_faults());
        for mut batch in batches {
            engine.receive_batch(NOW, &mut batch);
            engine.drain_effects_into(NOW, &mut out);
            out.clear();
        }
        (start.elapsed(), self_page_faults() - faults)
    };
    assert_eq!(engine.stats().routes_active_total, n as u64, "in-memory engine holds every route");
    (elapsed, faults)
}

/// Asks this bench binary, run again as a child, for one `in_memory_run`
/// of N announcements as the first thing it does.
const FRESH_PROCESS_ARG: &str = "--in-memory-in-a-fresh-process";

fn fresh_process_request() -> Option<usize> {
    let mut args = std::env::args().skip_while(|arg| arg != FRESH_PROCESS_ARG).skip(1);
    Some(args.next()?.parse().expect("a number of announcements"))
}

/// `in_memory_run` in a new process: its engine's table goes into memory
/// no earlier run touched, as `b`'s does in a transfer, where in this
/// process it reuses what earlier runs freed. On this VM the kernel's
/// zeroing of fresh pages costs the same ingestion up to half again its
/// time (docs/benchmarks.md, Sidecar). Returns the ingestion's elapsed
/// time and page faults, as `in_memory_run` does.
fn in_memory_run_in_a_fresh_process(n: usize) -> Result<(Duration, u64), String> {
    let exe = std::env::current_exe().map_err(|e| format!("this bench's path: {e}"))?;
    let output = std::process::Command::new(&exe)
        .args([FRESH_PROCESS_ARG, &n.to_string()])
        .output()
        .map_err(|e| format!("run {}: {e}", exe.display()))?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    let parsed = stdout.split_whitespace().map(str::parse::<u64>).collect::<Result<Vec<_>, _>>();
    match (output.status.success(), parsed.as_deref()) {
        (true, Ok(&[nanos, faults])) => Ok((Duration::from_nanos(nanos), faults)),
        _ => Err(format!(
            "in-memory run in a fresh process: {}; stdout {stdout:?}, stderr {:?}",
            output.status,
            String::from_utf8_lossy(&output.stderr)
        )),
    }
}

/// The same table transfer between two in-process engines on this one
/// thread: `a` (originating the N routes, as the pair's `a` does) builds
/// its table for `b` a slice of `BATCH` destinations at a time, as the
/// sidecar's actor does, and `b` takes each slice as one batch, until the
/// end-of-table. No encoding, no sockets, one CPU. Returns the elapsed
/// time from `a` seeing `b` come up to `b` holding every route.
fn in_memory_transfer(n: usize) -> Duration {
    let mut configs = loopback_topology(n).configs().into_iter();
    let (config_a, config_b) = (configs.next().expect("a's config"), configs.next().expect("b's config"));
    assert_eq!((config_a.node_id.as_str(), config_b.node_id.as_str()), ("a", "b"));
    let (mut a, mut b) = (Engine::new(config_a, NOW).expect("valid"), Engine::new(config_b, NOW).expect("valid"));
    b.neighbor_up(NOW, &node("a"));
    let (mut out, mut batch, from) = (Vec::new(), Vec::new(), node("a"));
    b.drain_effects_into(NOW, &mut out);
    a.drain_effects_into(NOW, &mut out);
    out.clear();
    let start = Instant::now();
    a.neighbor_up(NOW, &node("b"));
    loop {
        let more = a.drain_effects_upto(NOW, BATCH, &mut out);
        for effect in out.drain(..) {
            if let Effect::Send { message, .. } = effect {
                batch.push((from.clone(), std::sync::Arc::unwrap_or_clone(message)));
            }
        }
        b.receive_batch(NOW, &mut batch);
        b.drain_effects_into(NOW, &mut out);
        out.clear();
        if !more {
            break;
        }
    }
    let took = start.elapsed();
    assert_eq!(b.stats().routes_active_total, n as u64, "in-memory transfer delivers every route");
    took
}

// ---------------------------------------------------------------------------
// 2. Idle RSS

async fn idle_rss(exe: &Path, dir: &Path) -> Result<(f64, f64), String> {
    let process = SidecarProcess::spawn(exe, &SidecarConfig::new("idle"), dir, &[]).await?;
    wait_until(Duration::from_secs(10), POLL, "idle sidecar ready", || async {
        Ok(process.get("/readyz").await?.status == 200)
    })
    .await?;
    // Settle: let start-up allocations be returned and the runtime go idle.
    tokio::time::sleep(Duration::from_secs(1)).await;
    rss_mb(pid(&process)?)
}

// ---------------------------------------------------------------------------
// 3. Failure convergence

fn fabric_name(i: usize) -> String {
    format!("n{i:02}")
}

fn fabric_topology(n: usize, mesh: bool) -> Topology {
    let nodes = (0..n)
        .map(|i| TopologyNode {
            id: fabric_name(i).into(),
            originate: vec![LocalRoute {
                destination: format!("dest-{}", fabric_name(i)).into(),
                cost: 0,
                latency_us: 0,
                reliability: 1.0,
                tags: Vec::new(),
            }],
        })
        .collect();
    let mut links = Vec::new();
    for i in 0..n {
        let peers: Vec<usize> = if mesh { (i + 1..n).collect() } else { (i + 1..n.min(i + 2)).collect() };
        for j in peers {
            links.push(TopologyLink {
                a: fabric_name(i).into(),
                b: fabric_name(j).into(),
                metrics: Default::default(),
            });
        }
    }
    Topology { nodes, links, fail_node: None }
}

/// Short hold time and reconnect delays, as the process tests use.
fn fast_sessions(config: &mut SidecarConfig) {
    config.session.hold_time = Duration::from_millis(900);
    config.session.reconnect_initial = Duration::from_millis(20);
    config.session.reconnect_max = Duration::from_millis(200);
}

/// Per node, the destinations it must have a route to when `dead` (if any)
/// is gone: those originated in its connected component.
fn expected_routes(topology: &Topology, dead: Option<&str>) -> BTreeMap<String, BTreeSet<String>> {
    let alive = |id: &str| Some(id) != dead;
    let mut adjacency: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for link in &topology.links {
        if alive(link.a.as_str()) && alive(link.b.as_str()) {
            adjacency.entry(link.a.as_str()).or_default().push(link.b.as_str());
            adjacency.entry(link.b.as_str()).or_default().push(link.a.as_str());
        }
    }
    let origins: BTreeMap<&str, Vec<String>> = topology
        .nodes
        .iter()
        .map(|n| (n.id.as_str(), n.originate.iter().map(|r| r.destination.to_string()).collect()))
        .collect();
    let mut expected = BTreeMap::new();
    for start in topology.nodes.iter().map(|n| n.id.as_str()).filter(|id| alive(id)) {
        let mut seen = BTreeSet::from([start]);
        let mut queue = VecDeque::from([start]);
        while let Some(here) = queue.pop_front() {
            for next in adjacency.get(here).into_iter().flatten() {
                if seen.insert(next) {
                    queue.push_back(next);
                }
            }
        }
        let destinations = seen.iter().flat_map(|id| origins[id].iter().cloned()).collect();
        expected.insert(start.to_string(), destinations);
    }
    expected
}

/// Whether a node's `/routes` is exactly `expected`, with no path through
/// `dead`.
fn routes_correct(routes: &serde_json::Value, expected: &BTreeSet<String>, dead: Option<&str>) -> bool {
    let Some(routes) = routes.as_array() else { return false };
    let through_dead = |route: &serde_json::Value| {
        dead.is_some_and(|dead| {
            route["next_hop"] == dead || route["path"].as_array().is_some_and(|p| p.iter().any(|hop| hop == dead))
        })
    };
    let destinations: BTreeSet<String> =
        routes.iter().filter_map(|r| r["destination"].as_str().map(str::to_string)).collect();
    destinations == *expected && routes.len() == expected.len() && !routes.iter().any(through_dead)
}

/// Asks every live node's `/routes` concurrently; returns how many are
/// correct.
async fn correct_nodes(lab: &Lab, expected: &BTreeMap<String, BTreeSet<String>>, dead: Option<&str>) -> usize {
    let checks = expected.iter().map(|(id, want)| async move {
        match lab.nodes.get(id.as_str()) {
            Some(process) => process.get_json("/routes").await.is_ok_and(|routes| routes_correct(&routes, want, dead)),
            None => false,
        }
    });
    futures::future::join_all(checks).await.into_iter().filter(|ok| *ok).count()
}

struct Failover {
    /// From the SIGKILL to the poll after which every node stayed correct.
    converged: Duration,
    /// Longest gap between the starts of two consecutive polling rounds.
    worst_round: Duration,
    /// Times the fabric looked converged and then was not again.
    regressions: u32,
}

/// Polls every node until all are correct and stay so for `SETTLE`.
async fn converge(
    lab: &Lab,
    expected: &BTreeMap<String, BTreeSet<String>>,
    dead: Option<&str>,
    since: Instant,
    limit: Duration,
) -> Result<Failover, String> {
    let mut converged_at: Option<Duration> = None;
    let mut worst_round = Duration::ZERO;
    let mut regressions = 0;
    let mut last_round = since;
    loop {
        let round = Instant::now();
        worst_round = worst_round.max(round - last_round);
        last_round = round;
        let correct = correct_nodes(lab, expected, dead).await;
        if correct == expected.len() {
            let at = *converged_at.get_or_insert_with(|| since.elapsed());
            if since.elapsed() >= at + SETTLE {
                return Ok(Failover { converged: at, worst_round, regressions });
            }
        } else if converged_at.take().is_some() {
            regressions += 1;
        }
        if since.elapsed() > limit {
            return Err(format!("not converged within {limit:?}: {correct}/{} nodes correct", expected.len()));
        }
        tokio::time::sleep(POLL).await;
    }
}

/// How the victim fails.
#[derive(Clone, Copy, Debug)]
enum Failure {
    /// SIGKILL: the kernel closes its sockets, peers see the connection end.
    Kill,
    /// SIGSTOP: the connections stay open and silent; peers notice when the
    /// hold timer expires.
    Freeze,
}

async fn failover_run(
    exe: &Path,
    dir: &Path,
    topology: &Topology,
    victim: &str,
    failure: Failure,
) -> Result<Failover, String> {
    let mut lab = Lab::start(exe, topology, dir, fast_sessions).await?;
    // Initial convergence (and the dial collisions of the start settled).
    converge(&lab, &expected_routes(topology, None), None, Instant::now(), Duration::from_secs(30)).await?;
    let expected = expected_routes(topology, Some(victim));
    let process = lab.nodes.get_mut(victim).ok_or_else(|| format!("no node {victim}"))?;
    let since = Instant::now();
    match failure {
        Failure::Kill => process.kill().await,
        Failure::Freeze => {
            let status = std::process::Command::new("kill")
                .args(["-STOP", &pid(process)?.to_string()])
                .status()
                .map_err(|e| e.to_string())?;
            if !status.success() {
                return Err(format!("kill -STOP {victim}: {status}"));
            }
        }
    }
    let result = converge(&lab, &expected, Some(victim), since, Duration::from_secs(30)).await;
    drop(lab);
    result
}

// ---------------------------------------------------------------------------
// Running and reporting

struct Row {
    name: String,
    unit: &'static str,
    samples: Vec<f64>,
    /// Ratio, goal verdict, or resolution.
    extra: String,
}

struct Report {
    rows: Vec<Row>,
    notes: Vec<String>,
}

impl Report {
    fn print(&self, wall: Duration) {
        println!();
        println!("{:<72} {:>12} {:>23} {:>5}  note", "scenario", "median", "min..max", "runs");
        for row in &self.rows {
            let (min, max) = spread(&row.samples);
            let show = |v: f64| match row.unit {
                "/s" => human_rate(v),
                unit => format!("{v:.1} {unit}"),
            };
            println!(
                "{:<72} {:>12} {:>23} {:>5}  {}",
                row.name,
                show(median(&row.samples)),
                format!("{}..{}", show(min), show(max)),
                row.samples.len(),
                row.extra
            );
        }
        println!();
        for note in &self.notes {
            println!("- {note}");
        }
        println!(
            "- medians over runs; ratios computed from the medians of this run; wall time {:.1}s",
            wall.as_secs_f64()
        );
    }
}

fn log_level() -> String {
    std::env::var("FABRIC_LAB_LOG").unwrap_or_else(|_| "info".into())
}

/// Transfer samples of one loopback scenario.
#[derive(Default)]
struct TransferSamples {
    rates: Vec<f64>,
    /// By `b`'s own clock (`Timing::table_received`).
    own_rates: Vec<f64>,
    to_first: Vec<f64>,
    after_first: Vec<f64>,
    cpu_share: Vec<f64>,
    cpu_share_a: Vec<f64>,
    /// `b`'s page faults per transfer (with transparent huge pages, which
    /// mimalloc asks for, one per 2 MiB: a count per route would read 0).
    faults: Vec<f64>,
    /// Preemptions of `b`'s engine thread per transfer.
    preempted: Vec<f64>,
    /// CPU time by thread of `b`, and of `a` when it is a sidecar.
    threads_b: Vec<ThreadCpu>,
    threads_a: Vec<ThreadCpu>,
    /// Growth of `b`'s RSS (MB).
    rss_growth: Vec<f64>,
    worst_poll_gap: Duration,
}

impl TransferSamples {
    fn add(&mut self, n: usize, timing: &Timing) {
        self.rates.push(n as f64 / timing.total.as_secs_f64());
        self.faults.push(timing.faults_b as f64);
        self.preempted.push(timing.preempted_b as f64);
        self.threads_b.push(timing.threads_b);
        self.threads_a.extend(timing.threads_a);
        self.rss_growth.push(timing.rss_growth_b);
        if let Some(took) = timing.table_received {
            self.own_rates.push(n as f64 / took.as_secs_f64());
        }
        self.to_first.push(ms(timing.first));
        // Only meaningful when the transfer spans many polls.
        let after_first = timing.total - timing.first;
        if after_first >= 10 * POLL {
            self.after_first.push(n as f64 / after_first.as_secs_f64());
        }
        self.cpu_share.push(timing.cpu_b.as_secs_f64() / timing.total.as_secs_f64());
        if let Some(cpu_a) = timing.cpu_a {
            self.cpu_share_a.push(cpu_a.as_secs_f64() / timing.total.as_secs_f64());
        }
        self.worst_poll_gap = self.worst_poll_gap.max(timing.worst_poll_gap);
    }

    /// The rate row (with its ratio to `baseline`) and its breakdown.
    /// `references`: the other in-memory rates, when comparable.
    fn rows(
        &self,
        name: String,
        baseline: (f64, &str),
        references: Option<References>,
        breakdown: bool,
        rows: &mut Vec<Row>,
    ) {
        let rate = median(&self.rates);
        let a_busy = if self.cpu_share_a.is_empty() {
            String::new()
        } else {
            format!(", a {:.0}%", 100.0 * median(&self.cpu_share_a))
        };
        rows.push(Row {
            name,
            unit: "/s",
            samples: self.rates.clone(),
            extra: format!(
                "{:.3}x {}; b busy {:.0}% of the time{a_busy}; b {:.0} page faults, its engine thread \
                 preempted {:.0} times; poll gap <= {:.1} ms",
                rate / baseline.0,
                baseline.1,
                100.0 * median(&self.cpu_share),
                median(&self.faults),
                median(&self.preempted),
                ms(self.worst_poll_gap)
            ),
        });
        if !self.own_rates.is_empty() {
            rows.push(Row {
                name: "    b's own clock: session up to a's whole table in use".into(),
                unit: "/s",
                samples: self.own_rates.clone(),
                extra: format!(
                    "{:.3}x {}{}",
                    median(&self.own_rates) / baseline.0,
                    baseline.1,
                    references.map_or(String::new(), |references| format!(
                        "; {:.3}x the in-memory engine in a fresh process; {:.3}x the in-memory transfer",
                        median(&self.own_rates) / references.fresh,
                        median(&self.own_rates) / references.transfer
                    ))
                ),
            });
        }
        // Each group's milliseconds per run; the other threads' as a median.
        let engine = |threads: &[ThreadCpu]| threads.iter().map(|cpu| ms(cpu.engine)).collect::<Vec<_>>();
        let other = |threads: &[ThreadCpu]| median(&threads.iter().map(|cpu| ms(cpu.other)).collect::<Vec<_>>());
        let other_b = other(&self.threads_b);
        let waited_b = median(&self.threads_b.iter().map(|cpu| ms(cpu.engine_waited)).collect::<Vec<_>>());
        let a_threads = if self.threads_a.is_empty() {
            String::new()
        } else {
            format!(
                "; a's engine thread {:.1} ms, a's other threads {:.1} ms",
                median(&engine(&self.threads_a)),
                other(&self.threads_a)
            )
        };
        rows.push(Row {
            name: "    CPU of b's engine thread (the in-memory work) meanwhile".into(),
            unit: "ms",
            samples: engine(&self.threads_b),
            extra: format!(
                "b's engine thread waited for a CPU {waited_b:.1} ms; b's other threads {other_b:.1} ms{a_threads} (medians)"
            ),
        });
        rows.push(Row {
            name: "    growth of b's RSS meanwhile (memory touched first)".into(),
            unit: "MB",
            samples: self.rss_growth.clone(),
            extra: String::new(),
        });
        rows.push(Row {
            name: "    of which: start to first route at b".into(),
            unit: "ms",
            samples: self.to_first.clone(),
            extra: String::new(),
        });
        if !breakdown || self.after_first.is_empty() {
            return;
        }
        rows.push(Row {
            name: "    rate from the first route at b on".into(),
            unit: "/s",
            samples: self.after_first.clone(),
            extra: format!("{:.3}x {}", median(&self.after_first) / baseline.0, baseline.1),
        });
    }
}

/// In-memory rates a transfer of the same table is also compared with.
#[derive(Clone, Copy)]
struct References {
    /// `in_memory_run_in_a_fresh_process`.
    fresh: f64,
    /// `in_memory_transfer`.
    transfer: f64,
}

/// Scenario groups, selected by name filters on the command line
/// (`cargo bench -p routing-sidecar --bench sidecar -- peer failover`).
struct Groups(Vec<String>);

impl Groups {
    const ALL: &[&str] = &["idle", "pair", "peer", "failover"];

    fn from_args() -> Self {
        Self(std::env::args().skip(1).filter(|arg| !arg.starts_with('-')).collect())
    }

    fn wants(&self, group: &str) -> bool {
        self.0.is_empty() || self.0.iter().any(|filter| group.contains(filter.as_str()))
    }
}

async fn run_all(exe: &Path, scratch: &Path, scale: Scale, groups: &Groups) -> Result<Report, String> {
    let mut rows = Vec::new();
    let mut notes = Vec::new();
    let (n, small) = (scale.destinations, scale.pair_small);
    let k = n / 1000;

    // 2a. Idle RSS first, on a quiet machine.
    if groups.wants("idle") {
        let (idle, idle_peak) = idle_rss(exe, &scratch.join("idle")).await?;
        let met = if idle <= TARGET_IDLE_RSS_MB { "MET" } else { "MISSED" };
        rows.push(Row {
            name: "RSS of an idle sidecar (no neighbors, no routes), 1 s after start".into(),
            unit: "MB",
            samples: vec![idle],
            extra: format!("goal <= {TARGET_IDLE_RSS_MB} MB: {met}; VmHWM {idle_peak:.1} MB"),
        });
    }

    // 1. Loopback runs, each preceded by in-memory runs so that a slow
    // phase of the machine hits both.
    let (mut memory, mut memory_frames, mut memory_small) = (Vec::new(), Vec::new(), Vec::new());
    // Page faults of each in-memory run (as b's, counted per run).
    let mut memory_faults = Vec::new();
    // The in-memory run in a fresh process, and its page faults.
    let (mut memory_fresh, mut memory_fresh_faults) = (Vec::new(), Vec::new());
    // The same transfer between two in-process engines on one thread.
    let mut memory_transfer = Vec::new();
    let mut baseline_run = |memory: &mut Vec<f64>, frames: &mut Vec<f64>, small_memory: &mut Vec<f64>| {
        memory_transfer.push(n as f64 / in_memory_transfer(n).as_secs_f64());
        let (took, faults) = in_memory_run(n, false);
        memory.push(n as f64 / took.as_secs_f64());
        memory_faults.push(faults as f64);
        let (took, faults) = in_memory_run_in_a_fresh_process(n)?;
        memory_fresh.push(n as f64 / took.as_secs_f64());
        memory_fresh_faults.push(faults as f64);
        frames.push(n as f64 / in_memory_run(n, true).0.as_secs_f64());
        small_memory.push(small as f64 / in_memory_run(small, false).0.as_secs_f64());
        Ok::<(), String>(())
    };
    let mut loopback_rows = Vec::new();
    // RSS and set-up figures, shown after the rates.
    let mut side_rows = Vec::new();
    if groups.wants("pair") {
        // Two sidecars, N routes. A run that gets stuck is not repeated.
        let mut pair = TransferSamples::default();
        let (mut a_start, mut rss_a, mut pair_failure) = (Vec::new(), Vec::new(), None);
        for run in 0..scale.runs {
            baseline_run(&mut memory, &mut memory_frames, &mut memory_small)?;
            let dir = scratch.join(format!("pair-{run}"));
            let result = pair_run(exe, &dir, n, scale.transfer_timeout, run == 0).await?;
            a_start.push(ms(result.a_start));
            rss_a.push(result.rss_a.0);
            if let Some(put) = result.put_big_config {
                notes.push(format!("PUT /config of a's config with {k}k originated routes (probe): {put}"));
            }
            match result.timing {
                Ok(timing) => pair.add(n, &timing),
                Err(error) => {
                    eprintln!("sidecar pair, {k}k routes: {error}");
                    pair_failure = Some(error);
                    break;
                }
            }
        }
        // Two sidecars, a small table.
        let mut pair_small = TransferSamples::default();
        for run in 0..scale.runs {
            let dir = scratch.join(format!("pair-small-{run}"));
            let result = pair_run(exe, &dir, small, scale.transfer_timeout, false).await?;
            pair_small.add(small, &result.timing?);
        }
        let name = format!("sidecar a -> sidecar b, {k}k routes (push to all active)");
        match pair_failure {
            None => loopback_rows.push((name, pair, n)),
            Some(error) => {
                rows.push(Row {
                    name,
                    unit: "/s",
                    samples: vec![0.0],
                    extra: "DID NOT COMPLETE: b stuck (see notes)".into(),
                });
                notes.push(format!("sidecar pair with {k}k routes: {error}"));
            }
        }
        loopback_rows.push((format!("sidecar a -> sidecar b, {small} routes (push to all active)"), pair_small, small));
        side_rows.push(Row {
            name: format!("RSS of a originating {k}k routes (before the transfer)"),
            unit: "MB",
            samples: rss_a,
            extra: String::new(),
        });
        side_rows.push(Row {
            name: format!("start of a with {k}k originated routes (spawn to all active)"),
            unit: "ms",
            samples: a_start,
            extra: "setup, not in the transfer time".into(),
        });
    }
    if groups.wants("peer") {
        // b fed by this process, N routes: at the default log level, at
        // warn, and at warn polled through the cheap /peers counter.
        let mut fake = TransferSamples::default();
        let mut fake_quiet = TransferSamples::default();
        let mut fake_peers = TransferSamples::default();
        let (mut rss_b, mut peak_b, mut stats_latency) = (Vec::new(), Vec::new(), Vec::new());
        let level = log_level();
        let limit = scale.transfer_timeout;
        for run in 0..scale.runs {
            baseline_run(&mut memory, &mut memory_frames, &mut memory_small)?;
            let result =
                fake_peer_run(exe, &scratch.join(format!("peer-{run}")), n, limit, Probe::Stats, true, &level).await?;
            fake.add(n, &result.timing);
            rss_b.push(result.rss.0);
            peak_b.push(result.rss.1);
            stats_latency.push(ms(result.stats_latency));
            let dir = scratch.join(format!("peer-warn-{run}"));
            let result = fake_peer_run(exe, &dir, n, limit, Probe::Stats, true, "warn").await?;
            fake_quiet.add(n, &result.timing);
            let dir = scratch.join(format!("peer-warn-peers-{run}"));
            let result = fake_peer_run(exe, &dir, n, limit, Probe::Peers, true, "warn").await?;
            fake_peers.add(n, &result.timing);
        }
        // Once with the default rate limit, to show what it does to a table
        // transfer.
        let dir = scratch.join("peer-default-limit");
        let outcome = match fake_peer_run(exe, &dir, n, limit, Probe::Stats, false, &log_level()).await {
            Ok(result) => format!("completed at {}", human_rate(n as f64 / result.timing.total.as_secs_f64())),
            Err(error) => error,
        };
        notes.push(format!(
            "bench as peer a -> sidecar b, {k}k routes, default session.maxMessagesPerSecond \
             ({}/s): {outcome}",
            SidecarConfig::new("b").session.max_messages_per_second
        ));
        let name = format!("bench as peer a -> sidecar b, {k}k routes, b logs at {level}");
        loopback_rows.push((name, fake, n));
        loopback_rows.push((format!("bench as peer a -> sidecar b, {k}k routes, b logs at warn"), fake_quiet, n));
        let name = format!("bench as peer a -> sidecar b, {k}k routes, warn, polling /peers not /stats");
        loopback_rows.push((name, fake_peers, n));
        side_rows.push(Row {
            name: format!("RSS of b holding {k}k routes (learned over loopback, log {level})"),
            unit: "MB",
            samples: rss_b,
            extra: format!("VmHWM median {:.1} MB", median(&peak_b)),
        });
        side_rows.push(Row {
            name: format!("GET /stats round trip, b idle with {k}k routes"),
            unit: "ms",
            samples: stats_latency,
            extra: "mean of 10".into(),
        });
    }
    if !memory.is_empty() {
        let memory_median = median(&memory);
        let small_median = median(&memory_small);
        for (name, samples, size) in loopback_rows {
            let baseline = if size == n { (memory_median, "in-memory") } else { (small_median, "in-memory same N") };
            // A small table arrives between two polls: no rate after the first.
            let references =
                (size == n).then(|| References { fresh: median(&memory_fresh), transfer: median(&memory_transfer) });
            samples.rows(name, baseline, references, size == n, &mut rows);
        }
        rows.push(Row {
            name: format!("in-memory engine: receive_batch x{BATCH} + drain, {k}k announcements"),
            unit: "/s",
            samples: memory,
            extra: format!("baseline; {:.0} page faults", median(&memory_faults)),
        });
        rows.push(Row {
            name: format!("in-memory engine, the same, in a fresh process, {k}k announcements"),
            unit: "/s",
            samples: memory_fresh.clone(),
            extra: format!(
                "{:.3}x baseline; its table in memory not touched before, as b's; {:.0} page faults",
                median(&memory_fresh) / memory_median,
                median(&memory_fresh_faults)
            ),
        });
        rows.push(Row {
            name: format!("in-memory transfer, {k}k routes: engine a builds its table, engine b takes it"),
            unit: "/s",
            samples: memory_transfer.clone(),
            extra: format!(
                "{:.3}x baseline; both ends' engine work on one thread, slices of {BATCH}, no encoding",
                median(&memory_transfer) / memory_median
            ),
        });
        rows.push(Row {
            name: format!("in-memory engine: frame decode + receive_batch x{BATCH} + drain, {k}k"),
            unit: "/s",
            samples: memory_frames.clone(),
            extra: format!("{:.3}x baseline", median(&memory_frames) / memory_median),
        });
        rows.push(Row {
            name: format!("in-memory engine: receive_batch x{BATCH} + drain, {small} announcements"),
            unit: "/s",
            samples: memory_small,
            extra: String::new(),
        });
        notes.push(format!(
            "loopback clocks: start = config push to b (pairs) or connect (bench as peer); end = the poll that \
             shows N routes: /peers routes_received (pairs, and bench as peer where said), else /stats \
             routes_active_total (each such poll builds all of b's statistics); polled every {POLL:?}, so the resolution is the \
             poll gap shown; 'b busy' (and a's where shown) = b's CPU time (10 ms ticks) / wall time"
        ));
        notes.push("loopback runs set session.maxMessagesPerSecond = 10M on b unless said otherwise".into());
    }

    rows.append(&mut side_rows);

    // 3. Failure convergence.
    if groups.wants("failover") {
        let nodes = scale.fabric_nodes;
        let victim = fabric_name(nodes / 2 - 1);
        let cases = [(false, Failure::Kill), (true, Failure::Kill), (false, Failure::Freeze)];
        for (mesh, failure) in cases {
            let topology = fabric_topology(nodes, mesh);
            let (mut times, mut worst, mut regressions) = (Vec::new(), Duration::ZERO, 0);
            for run in 0..scale.runs {
                let dir = scratch.join(format!("failover-{mesh}-{failure:?}-{run}"));
                let result = failover_run(exe, &dir, &topology, &victim, failure).await?;
                times.push(ms(result.converged));
                worst = worst.max(result.worst_round);
                regressions += result.regressions;
            }
            let shape = if mesh { "full mesh" } else { "line" };
            let how = match failure {
                Failure::Kill => "SIGKILL",
                Failure::Freeze => "SIGSTOP (hold timer)",
            };
            let middle = if mesh { "" } else { ", the middle" };
            rows.push(Row {
                name: format!("failure convergence: {nodes}-node {shape}, {how} {victim}{middle}"),
                unit: "ms",
                samples: times,
                extra: format!("poll rounds every {POLL:?}, gap <= {:.1} ms; {regressions} regression(s)", ms(worst)),
            });
        }
        notes.push(format!(
            "failure convergence: hold time 900 ms, reconnect 20..200 ms; clock from the signal to the first poll \
             round in which every live node's /routes is exactly the destinations of its connected component (no \
             path through the dead node), counted only if it stays so for {SETTLE:?}; all nodes polled \
             concurrently"
        ));
    }
    Ok(Report { rows, notes })
}
