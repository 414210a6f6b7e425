//! Real-process soak: 30 `routing-sidecar run --operator` processes on
//! 127.0.0.1 (OS-chosen ports) wired by a real `fabric-operator run
//! --manifests` (local mode), under a seeded schedule of churn: SIGKILL of
//! sidecars, their restarts, and policy edits written into the watched
//! manifests folder. After every event each running sidecar's `/routes` must
//! match an oracle (shortest paths over the running nodes, with the current
//! link costs and import policy), polled with a deadline. RSS and open file
//! descriptors of every process are sampled throughout and must stay flat.
//!
//! `FABRIC_SOAK_SECS` (default 40) sets the churn phase, `FABRIC_SOAK_SEED`
//! the schedule (printed either way). docs/benchmarks.md, "Real-process
//! soak", has the long run's figures and command.
//!
//! The sidecar binary is the workspace's `target/<profile>/routing-sidecar`
//! (`cargo test --workspace` builds it; alone: `cargo build -p
//! routing-sidecar` first).

use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet, BinaryHeap};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use fabric_sidecar::runtime::lab::SidecarProcess;
use fabric_testkit::builders::OperatorFedSidecar;
use fabric_testkit::process::{LocalOperator, scratch_in, sidecar_exe};
use serde_json::Value;

const TOKEN: &str = "soak-test-token";
const SPINES: usize = 4;
const LEAVES: usize = 26;
/// Leaf-to-spine link cost of spine `k` (distinct, so the cheapest live
/// spine is the one next hop between leaves); a drained spine costs
/// `DRAINED`. Spine-to-leaf links cost 1.
const SPINE_COSTS: [u32; SPINES] = [1, 2, 3, 4];
const DRAINED: u32 = 10;
/// At most this many sidecars down at once, at most one of them a spine:
/// every leaf keeps three spines, so no kill partitions the fabric.
const MAX_DOWN: usize = 3;
/// Bound on one event's convergence (30 debug processes on 2 shared cores).
/// Above `timers.routeTtl` (90 s): a stale route that only its TTL removes
/// shows as a slow event with its mismatches printed, not as a failure.
const CONVERGE: Duration = Duration::from_secs(120);
/// An event slower than this prints what it waited for.
const SLOW: Duration = Duration::from_secs(5);
const SAMPLE_EVERY: Duration = Duration::from_millis(1000);

/// splitmix64: the schedule is a pure function of the seed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

fn spine(k: usize) -> String {
    format!("spine-{k}")
}
fn leaf(k: usize) -> String {
    format!("leaf-{k:02}")
}
fn is_spine(node: &str) -> bool {
    node.starts_with("spine-")
}

/// What the operator is told (manifests) and the oracle computes from.
#[derive(Clone, Debug, PartialEq)]
struct Policy {
    /// Spines whose leaf uplinks cost `DRAINED`.
    drained: BTreeSet<usize>,
    /// RoutePolicy import denies `blocked-*`.
    deny_blocked: bool,
}

impl Policy {
    fn uplink_cost(&self, k: usize) -> u32 {
        if self.drained.contains(&k) { DRAINED } else { SPINE_COSTS[k] }
    }

    fn route_policy(&self) -> String {
        let deny = if self.deny_blocked { r#"["blocked-*"]"# } else { "[]" };
        format!(
            "apiVersion: routing.fabric.dev/v1alpha1\nkind: RoutePolicy\n\
             metadata: {{name: soak, namespace: fabric}}\nspec:\n  sidecarSelector: {{}}\n\
             \x20 import:\n    destinations: {{deny: {deny}}}\n"
        )
    }

    fn neighbor_policies(&self) -> String {
        let mut yaml = String::from(
            "apiVersion: routing.fabric.dev/v1alpha1\nkind: NeighborPolicy\n\
             metadata: {name: spine-downlinks, namespace: fabric}\nspec:\n\
             \x20 sidecarSelector: {matchLabels: {role: spine}}\n  neighbors:\n\
             \x20   - selector: {matchLabels: {role: leaf}}\n      link: {cost: 1}\n---\n\
             apiVersion: routing.fabric.dev/v1alpha1\nkind: NeighborPolicy\n\
             metadata: {name: leaf-uplinks, namespace: fabric}\nspec:\n\
             \x20 sidecarSelector: {matchLabels: {role: leaf}}\n  neighbors:\n",
        );
        for k in 0..SPINES {
            yaml.push_str(&format!("    - nodeId: {}\n      link: {{cost: {}}}\n", spine(k), self.uplink_cost(k)));
        }
        yaml
    }

    /// Atomic replace, as an editor or `kubectl apply` of a folder would.
    fn write(&self, manifests: &Path) {
        for (name, text) in [("policy.yaml", self.route_policy()), ("neighbors.yaml", self.neighbor_policies())] {
            let tmp = manifests.with_file_name(format!("{name}.tmp"));
            std::fs::write(&tmp, text).unwrap();
            std::fs::rename(&tmp, manifests.join(name)).unwrap();
        }
    }
}

/// Destinations node `id` originates.
fn originated(id: &str) -> [String; 2] {
    [format!("svc-{id}"), format!("blocked-{id}")]
}

/// The cost of the link `from -> to` as `from` is configured (`None`: not
/// neighbors).
fn link_cost(policy: &Policy, from: &str, to: &str) -> Option<u32> {
    match (is_spine(from), is_spine(to)) {
        (true, false) => Some(1),
        (false, true) => Some(policy.uplink_cost(to["spine-".len()..].parse().unwrap())),
        _ => None,
    }
}

/// Expected route at one node: cost, and the next hops that achieve it.
#[derive(Debug)]
struct Expected {
    cost: u32,
    next_hops: BTreeSet<String>,
}

/// The oracle: for every running node, every destination it should route,
/// with its cost and the set of equal-cost next hops. A route's cost is the
/// sum of the receivers' link costs toward the origin (a neighbor's route
/// plus the link to it), so the cost at `x` of origin `o` is the shortest
/// `x -> o` distance over the running nodes (Dijkstra from `o` over reversed
/// links). With import of `blocked-*` denied everywhere, only the origin
/// has those.
fn oracle(running: &BTreeSet<String>, policy: &Policy) -> BTreeMap<String, BTreeMap<String, Expected>> {
    let mut tables: BTreeMap<String, BTreeMap<String, Expected>> =
        running.iter().map(|n| (n.clone(), BTreeMap::new())).collect();
    for origin in running {
        // dist[x]: the cost at x of a route to origin.
        let mut dist: BTreeMap<&str, u32> = BTreeMap::from([(origin.as_str(), 0)]);
        let mut queue = BinaryHeap::from([Reverse((0u32, origin.as_str()))]);
        while let Some(Reverse((d, node))) = queue.pop() {
            if dist.get(node).is_some_and(|best| *best < d) {
                continue;
            }
            for x in running {
                if let Some(cost) = link_cost(policy, x, node) {
                    let through = d + cost;
                    if dist.get(x.as_str()).is_none_or(|best| through < *best) {
                        dist.insert(x, through);
                        queue.push(Reverse((through, x)));
                    }
                }
            }
        }
        for x in running {
            if x == origin {
                continue;
            }
            let Some(&cost) = dist.get(x.as_str()) else { continue };
            let next_hops = running
                .iter()
                .filter(|n| link_cost(policy, x, n).zip(dist.get(n.as_str())).is_some_and(|(link, d)| link + d == cost))
                .cloned()
                .collect();
            let [svc, blocked] = originated(origin);
            let table = tables.get_mut(x).unwrap();
            if !policy.deny_blocked {
                table.insert(blocked, Expected { cost, next_hops: BTreeSet::clone(&next_hops) });
            }
            table.insert(svc, Expected { cost, next_hops });
        }
    }
    tables
}

/// What is wrong with `node`'s `/routes` (empty: it matches the oracle).
fn compare(node: &str, routes: &Value, expected: &BTreeMap<String, Expected>) -> Vec<String> {
    let mut wrong = Vec::new();
    let mut seen = BTreeSet::new();
    for route in routes.as_array().map(Vec::as_slice).unwrap_or_default() {
        let destination = route["destination"].as_str().unwrap_or_default().to_string();
        if route["local"] == true {
            if !originated(node).contains(&destination) {
                wrong.push(format!("{node}: {destination} local"));
            }
            continue;
        }
        let next_hop = route["next_hop"].as_str().unwrap_or_default();
        let cost = route["metrics"]["cost"].as_u64().unwrap_or(u64::MAX);
        match expected.get(&destination) {
            None => wrong.push(format!("{node}: unexpected route to {destination} via {next_hop}")),
            Some(e) if u64::from(e.cost) != cost || !e.next_hops.contains(next_hop) => wrong.push(format!(
                "{node}: {destination} via {next_hop} cost {cost}, expected cost {} via one of {:?}",
                e.cost, e.next_hops
            )),
            Some(_) => {}
        }
        seen.insert(destination);
    }
    for destination in expected.keys().filter(|d| !seen.contains(*d)) {
        wrong.push(format!("{node}: no route to {destination}"));
    }
    wrong
}

/// One process's RSS (KiB) and open descriptors, from /proc.
fn sample_proc(pid: u32) -> Option<(u64, usize)> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let rss =
        status.lines().find_map(|l| l.strip_prefix("VmRSS:"))?.trim().trim_end_matches("kB").trim().parse().ok()?;
    let fds = std::fs::read_dir(format!("/proc/{pid}/fd")).ok()?.count();
    Some((rss, fds))
}

/// Samples of one node (the operator, or one sidecar across its restarts:
/// a restarted process starts small again, so growth within any instance
/// still shows in the node's last third).
struct Series {
    name: String,
    /// Every process that ran it; the last one is the current one.
    pids: Vec<u32>,
    /// (seconds since the churn started, RSS KiB, fds)
    samples: Vec<(f64, u64, usize)>,
}

struct Soak {
    dir: PathBuf,
    operator: LocalOperator,
    sidecars: BTreeMap<String, SidecarProcess>,
    down: BTreeSet<String>,
    policy: Policy,
    series: Vec<Series>,
    started: Instant,
    last_sample: Option<Instant>,
}

impl Soak {
    fn all_nodes() -> Vec<String> {
        (0..SPINES).map(spine).chain((0..LEAVES).map(leaf)).collect()
    }

    fn running(&self) -> BTreeSet<String> {
        self.sidecars.keys().cloned().collect()
    }

    async fn spawn_sidecar(&self, id: &str) -> SidecarProcess {
        let role = if is_spine(id) { "role=spine" } else { "role=leaf" };
        let dir = self.dir.join(id);
        let sidecar = OperatorFedSidecar::new(id, format!("http://{}", self.operator.grpc))
            .originate(&originated(id))
            .token_file(&self.dir.join("token"))
            .labels(&[role]);
        if dir.join("config.yaml").exists() {
            // A restart: the same bootstrap file and state dir, new ports.
            SidecarProcess::spawn_with(&sidecar_exe(), id.into(), &dir, Some(&dir.join("config.yaml")), &sidecar.args())
                .await
                .unwrap()
        } else {
            SidecarProcess::spawn(&sidecar_exe(), &sidecar.config(), &dir, &sidecar.args()).await.unwrap()
        }
    }

    fn track(&mut self, name: &str, pid: u32) {
        match self.series.iter_mut().find(|s| s.name == name) {
            Some(series) => series.pids.push(pid),
            None => self.series.push(Series { name: name.into(), pids: vec![pid], samples: Vec::new() }),
        }
    }

    /// One sample of every live process, at most every `SAMPLE_EVERY`.
    fn sample(&mut self, force: bool) {
        if !force && self.last_sample.is_some_and(|t| t.elapsed() < SAMPLE_EVERY) {
            return;
        }
        self.last_sample = Some(Instant::now());
        let t = self.started.elapsed().as_secs_f64();
        let live: BTreeSet<u32> =
            self.sidecars.values().filter_map(|s| s.child.id()).chain(self.operator.child.id()).collect();
        for series in self.series.iter_mut() {
            let pid = *series.pids.last().unwrap();
            if !live.contains(&pid) {
                continue;
            }
            if let Some((rss, fds)) = sample_proc(pid) {
                series.samples.push((t, rss, fds));
            }
        }
    }

    /// Sleeps `pause`, sampling meanwhile.
    async fn pace(&mut self, pause: Duration) {
        let until = Instant::now() + pause;
        while Instant::now() < until {
            self.sample(false);
            tokio::time::sleep(Duration::from_millis(100).min(until - Instant::now())).await;
        }
    }

    /// What is not yet as the oracle says (empty: converged): every running
    /// sidecar connected and SYNCED at the operator, every table right.
    async fn mismatches(&self) -> Vec<String> {
        let expected = oracle(&self.running(), &self.policy);
        let mut wrong = Vec::new();
        let sidecars = self.operator.sidecars().await;
        for id in self.sidecars.keys() {
            let entry = sidecars.iter().find(|s| s["sidecar"] == format!("fabric/{id}"));
            match entry {
                Some(s) if s["sync"] == "SYNCED" && s["connected"] == true => {}
                Some(s) => wrong.push(format!("{id}: {} connected={}", s["sync"], s["connected"])),
                None => wrong.push(format!("{id}: not registered")),
            }
        }
        for (id, sidecar) in &self.sidecars {
            match sidecar.get_json("/routes").await {
                Ok(routes) => wrong.extend(compare(id, &routes, &expected[id])),
                Err(e) => wrong.push(format!("{id}: GET /routes: {e}")),
            }
        }
        wrong
    }

    /// Polls (sampling meanwhile) until the oracle holds; returns how long.
    async fn converge(&mut self, what: &str) -> Duration {
        let start = Instant::now();
        let mut first_wrong: Option<Vec<String>> = None;
        loop {
            let wrong = self.mismatches().await;
            if wrong.is_empty() {
                let took = start.elapsed();
                println!(
                    "soak: {:>7.1} s {what}: converged in {:.2} s",
                    self.started.elapsed().as_secs_f64(),
                    took.as_secs_f64()
                );
                if took > SLOW {
                    // What a slow event was waiting for, to find the stuck part.
                    println!("soak: slow; first observation: {:#?}", first_wrong.unwrap_or_default());
                }
                return took;
            }
            if start.elapsed() > SLOW && first_wrong.is_none() {
                first_wrong = Some(wrong[..wrong.len().min(12)].to_vec());
            }
            if start.elapsed() > CONVERGE {
                panic!(
                    "{what}: not converged after {CONVERGE:?} (logs in {}); {} mismatches, first: {:#?}",
                    self.dir.display(),
                    wrong.len(),
                    &wrong[..wrong.len().min(12)]
                );
            }
            self.sample(false);
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Kind {
    Kill,
    Restart,
    Drain,
    Undrain,
    DenyToggle,
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

fn env_u64(name: &str) -> Option<u64> {
    std::env::var(name).ok().map(|v| v.parse().unwrap_or_else(|_| panic!("{name}={v}: not a number")))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn thirty_sidecars_stay_correct_and_flat_under_churn() {
    let churn = Duration::from_secs(env_u64("FABRIC_SOAK_SECS").unwrap_or(40));
    let seed = env_u64("FABRIC_SOAK_SEED")
        .unwrap_or_else(|| std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs());
    println!("soak: seed {seed} (FABRIC_SOAK_SEED={seed} repeats the schedule), churn {churn:?}");
    let mut rng = Rng(seed);

    let dir = scratch_in(Path::new(env!("CARGO_TARGET_TMPDIR")), "soak");
    std::fs::create_dir_all(dir.join("manifests")).unwrap();
    std::fs::write(dir.join("token"), TOKEN).unwrap();
    let policy = Policy { drained: BTreeSet::new(), deny_blocked: true };
    policy.write(&dir.join("manifests"));
    let token = dir.join("token").display().to_string();
    let state = dir.join("operator-state").display().to_string();
    let operator = LocalOperator::spawn(
        Path::new(env!("CARGO_BIN_EXE_fabric-operator")),
        &dir,
        &[
            "--insecure-plaintext",
            "--token-file",
            &token,
            "--state-dir",
            &state,
            "--listen",
            "127.0.0.1:0",
            "--http",
            "127.0.0.1:0",
            "--poll-interval",
            "200ms",
            "--resume-grace",
            "0s",
        ],
    )
    .await;
    let mut soak = Soak {
        dir: dir.clone(),
        operator,
        sidecars: BTreeMap::new(),
        down: BTreeSet::new(),
        policy,
        series: Vec::new(),
        started: Instant::now(),
        last_sample: None,
    };
    let operator_pid = soak.operator.child.id().unwrap();
    soak.track("operator", operator_pid);
    for id in Soak::all_nodes() {
        let process = soak.spawn_sidecar(&id).await;
        let pid = process.child.id().unwrap();
        soak.sidecars.insert(id.clone(), process);
        soak.track(&id, pid);
    }
    let first = soak.converge("initial convergence").await;
    println!("soak: 30 sidecars converged in {:.1} s", first.as_secs_f64());

    // Baseline: sampling starts once the fabric is up.
    soak.started = Instant::now();
    soak.sample(true);
    let mut events: Vec<(Kind, String, Duration)> = Vec::new();
    while soak.started.elapsed() < churn {
        // 0-1.5 s between events, from the schedule.
        let pause = Duration::from_millis(rng.below(1500) as u64);
        soak.pace(pause).await;
        let roll = rng.below(100);
        let (kind, what) = if roll < 40 && soak.down.len() < MAX_DOWN {
            let spine_down = soak.down.iter().any(|n| is_spine(n));
            let candidates: Vec<String> = soak.running().into_iter().filter(|n| !(spine_down && is_spine(n))).collect();
            let victim = candidates[rng.below(candidates.len())].clone();
            let mut process = soak.sidecars.remove(&victim).unwrap();
            process.kill().await;
            soak.down.insert(victim.clone());
            (Kind::Kill, victim)
        } else if roll < 75 && !soak.down.is_empty() {
            let down: Vec<String> = soak.down.iter().cloned().collect();
            let back = down[rng.below(down.len())].clone();
            let process = soak.spawn_sidecar(&back).await;
            let pid = process.child.id().unwrap();
            soak.sidecars.insert(back.clone(), process);
            soak.down.remove(&back);
            soak.track(&back, pid);
            (Kind::Restart, back)
        } else if roll < 90 {
            let k = rng.below(SPINES);
            let kind = if soak.policy.drained.remove(&k) {
                Kind::Undrain
            } else {
                soak.policy.drained.insert(k);
                Kind::Drain
            };
            soak.policy.write(&dir.join("manifests"));
            (kind, spine(k))
        } else {
            soak.policy.deny_blocked = !soak.policy.deny_blocked;
            soak.policy.write(&dir.join("manifests"));
            (Kind::DenyToggle, format!("deny blocked-*: {}", soak.policy.deny_blocked))
        };
        let took = soak.converge(&format!("event {} ({kind:?} {what})", events.len() + 1)).await;
        events.push((kind, what, took));
    }

    // The end: every sidecar back, the fabric converged, a last sample.
    for back in std::mem::take(&mut soak.down) {
        let process = soak.spawn_sidecar(&back).await;
        let pid = process.child.id().unwrap();
        soak.sidecars.insert(back.clone(), process);
        soak.track(&back, pid);
    }
    let last = soak.converge("final convergence, all 30 running").await;
    soak.sample(true);

    // ------------------------------------------------------------ summary
    println!(
        "\nsoak: seed {seed}, {} events in {:.0} s; final convergence {:.1} s",
        events.len(),
        soak.started.elapsed().as_secs_f64(),
        last.as_secs_f64()
    );
    println!("{:<11} {:>6} {:>9} {:>9}", "event", "count", "p50 (s)", "max (s)");
    let mut by_kind: BTreeMap<Kind, Vec<Duration>> = BTreeMap::new();
    for (kind, _, took) in &events {
        by_kind.entry(*kind).or_default().push(*took);
    }
    let mut all: Vec<Duration> = events.iter().map(|e| e.2).collect();
    all.sort();
    for (kind, mut times) in by_kind {
        times.sort();
        println!(
            "{:<11} {:>6} {:>9.2} {:>9.2}",
            format!("{kind:?}"),
            times.len(),
            percentile(&times, 0.5).as_secs_f64(),
            times.last().unwrap().as_secs_f64()
        );
    }
    if !all.is_empty() {
        println!(
            "{:<11} {:>6} {:>9.2} {:>9.2}",
            "all",
            all.len(),
            percentile(&all, 0.5).as_secs_f64(),
            all.last().unwrap().as_secs_f64()
        );
    }
    println!(
        "\n{:<10} {:>8} {:>7} {:>9} {:>9} {:>9} {:>9} {:>9} {:>6}",
        "process", "starts", "samples", "RSS start", "RSS end", "RSS max", "1/3 max", "3/3 max", "fds"
    );
    let mut failures = Vec::new();
    for series in &soak.series {
        let Some(&(_, rss_start, fds_start)) = series.samples.first() else { continue };
        let &(_, rss_end, fds_end) = series.samples.last().unwrap();
        let rss_max = series.samples.iter().map(|s| s.1).max().unwrap();
        let end = soak.started.elapsed().as_secs_f64();
        let third_max =
            |from: f64, to: f64| series.samples.iter().filter(|s| s.0 >= from && s.0 <= to).map(|s| s.1).max();
        let mib = |kib: Option<u64>| kib.map_or("-".to_string(), |k| format!("{} MiB", k / 1024));
        let (first_third, last_third) = (third_max(0.0, end / 3.0), third_max(end * 2.0 / 3.0, end));
        println!(
            "{:<10} {:>8} {:>7} {:>9} {:>9} {:>9} {:>9} {:>9} {:>3}->{:<3}",
            series.name,
            series.pids.len(),
            series.samples.len(),
            mib(Some(rss_start)),
            mib(Some(rss_end)),
            mib(Some(rss_max)),
            mib(first_third),
            mib(last_third),
            fds_start,
            fds_end
        );
        if let (Some(first_third), Some(last_third)) = (first_third, last_third) {
            // Flat: the last third's peak within 25% (at least 4 MiB) of the
            // first third's; descriptors back within 4 of the baseline (all
            // 30 sidecars running and connected both times).
            let tolerance = (first_third / 4).max(4 * 1024);
            if last_third > first_third + tolerance {
                failures.push(format!(
                    "{}: RSS last third {last_third} KiB > first third {first_third} KiB + {tolerance}",
                    series.name
                ));
            }
            if fds_end > fds_start + 4 {
                failures.push(format!("{}: fds {fds_start} -> {fds_end}", series.name));
            }
        }
    }
    assert_eq!(soak.series.len(), 1 + SPINES + LEAVES);
    assert!(failures.is_empty(), "not flat (logs in {}): {failures:#?}", dir.display());
    drop(soak);
    let _ = std::fs::remove_dir_all(&dir);
}
