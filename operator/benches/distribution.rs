//! Config distribution at fleet size (issue 5): the time from a CR change
//! to the ACKs of all 1,000 sidecars (goal p99 ≤ 1 s), and the operator's
//! RSS with 1,000 connected sidecars and the compiled state (goal ≤ 150 MB).
//!
//! The real tonic distribution server (`distribution::server::serve`,
//! plaintext, 127.0.0.1:0) runs in this process around a cluster-mode
//! [`Distributor`] (sidecars come from the objects' index, as from the pod
//! watch). The sidecars are real gRPC streams opened with the sidecar's
//! `open_stream`, a Hello each, answering every `ConfigSnapshot` with an
//! ACK of its version and nonce; they run in a child process (this binary
//! again, `FABRIC_BENCH_ROLE=clients`), so the RSS read here is the
//! operator side alone and the clients' CPU is not spent inside the
//! measured process. By default every sidecar has its own HTTP/2
//! connection, as pods do; `FABRIC_BENCH_STREAMS_PER_CONNECTION` shares
//! connections. The clients do not parse the YAML: 1,000 real sidecars would
//! do that in parallel on their own CPUs.
//!
//! One round: `Distributor::set_objects` with the fleet-wide RoutePolicy
//! (`rp-fleet`, the highest priority, selects every sidecar) switched
//! between two import deny lists, so every sidecar gets a new version; the
//! clock stops when `Distributor::state()` shows every sidecar acked the
//! version compiled for it. The state is polled when the clients report
//! that they sent all ACKs of the round, then every 100 µs (and every 50 ms
//! meanwhile, in case a report is late).
//!
//! Rows: the fleet; 1 sidecar (the baseline of the ratio); and the fleet's
//! index with a single connected sidecar, which splits the fleet's time into
//! compiling and fanning out.
//!
//! Sizes: `FABRIC_BENCH_SIDECARS`, `FABRIC_BENCH_ROUTE_POLICIES`,
//! `FABRIC_BENCH_ROUTE_KEYS`, `FABRIC_BENCH_ROUNDS`. Without `--bench`
//! (`cargo test --benches`) it is a smoke run at a tiny scale.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

use fabric_core::NodeId;
use fabric_operator::distribution::server::{DistributionService, serve};
use fabric_operator::distribution::{Distributor, DistributorOptions, Options};
use fabric_operator_core::api::RoutePolicy;
use fabric_operator_core::compile::Compilation;
use fabric_operator_core::index::Index;
use fabric_testkit::counting_alloc::CountingAllocator;
use fabric_testkit::machine::{mib, percentile, print_machine, rss_kib, sorted_ms};
use fabric_testkit::operator_topology::{self as topology, FULL, SMOKE, Sizes, env_usize};

#[global_allocator]
static GLOBAL: CountingAllocator = CountingAllocator;

fn live_kib() -> u64 {
    (fabric_testkit::counting_alloc::live().0.max(0) / 1024) as u64
}

const ROLE: &str = "FABRIC_BENCH_ROLE";
/// How long any one wait may take before the bench gives up.
const PATIENCE: Duration = Duration::from_secs(180);

/// The fleet-wide policy of variant `v`: highest priority, selects all.
fn fleet_policy(v: u32) -> RoutePolicy {
    let mut policy = topology::route_policy(0, 1, v);
    policy.metadata.name = Some("rp-fleet".into());
    policy.spec.priority = 1_000_000;
    policy.spec.import.destinations.deny.push(format!("emergency-v{v}-*"));
    policy
}

fn variant(sizes: Sizes, v: u32) -> Index {
    let mut index = topology::index(sizes);
    index.apply(fleet_policy(v)).expect("fleet policy");
    index
}

/// What the client process writes on its stdout.
enum Line {
    /// ACKs sent so far, written each time a multiple of the stream count.
    Acked(usize),
    /// The client process's RSS and peak, KiB, when its stdin closes.
    Rss(u64, u64),
}

struct Clients {
    child: Child,
    stdin: Option<ChildStdin>,
    lines: Receiver<Line>,
    reported: usize,
}

impl Clients {
    fn spawn(addr: std::net::SocketAddr, streams: usize, per_connection: usize) -> Clients {
        let mut child = Command::new(std::env::current_exe().expect("bench executable"))
            .env(ROLE, "clients")
            .env("FABRIC_BENCH_ADDR", addr.to_string())
            .env("FABRIC_BENCH_STREAMS", streams.to_string())
            .env("FABRIC_BENCH_STREAMS_PER_CONNECTION", per_connection.to_string())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("client process");
        let stdout = child.stdout.take().expect("client stdout");
        let (sender, lines) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let mut words = line.split_whitespace();
                let kind = words.next();
                let mut number = || words.next().and_then(|w| w.parse::<u64>().ok()).unwrap_or(0);
                let parsed = match kind {
                    Some("acked") => Line::Acked(number() as usize),
                    Some("rss") => Line::Rss(number(), number()),
                    _ => continue,
                };
                if sender.send(parsed).is_err() {
                    return;
                }
            }
        });
        let stdin = child.stdin.take();
        Clients { child, stdin, lines, reported: 0 }
    }

    /// Closes the clients' stdin: they report their RSS and exit.
    fn stop(mut self) -> Option<(u64, u64)> {
        drop(self.stdin.take());
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut rss = None;
        while let Some(left) = deadline.checked_duration_since(Instant::now()) {
            match self.lines.recv_timeout(left) {
                Ok(Line::Rss(now, peak)) => rss = Some((now, peak)),
                Ok(Line::Acked(_)) => continue,
                Err(_) => break,
            }
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        rss
    }
}

/// Every connected sidecar acked the version compiled for it.
fn all_acked(distributor: &Distributor, compilation: &Compilation, streams: usize) -> bool {
    let state = distributor.state();
    let current = state
        .sidecars
        .values()
        .filter(|s| {
            s.connected
                && s.acked_version.as_deref().is_some()
                && s.acked_version.as_deref() == compilation.sidecars.get(&s.node_id).map(|c| c.version())
        })
        .count();
    current == streams
}

/// Waits until every sidecar acked the current compilation; the time since
/// `start`.
fn wait_acked(
    distributor: &Distributor,
    clients: &mut Clients,
    expected_acks: usize,
    streams: usize,
    start: Instant,
) -> Duration {
    let compilation = distributor.compilation();
    loop {
        if clients.reported < expected_acks {
            match clients.lines.recv_timeout(Duration::from_millis(50)) {
                Ok(Line::Acked(n)) => {
                    clients.reported = clients.reported.max(n);
                    if clients.reported < expected_acks {
                        continue;
                    }
                }
                Ok(Line::Rss(..)) => continue,
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => panic!("the client process ended"),
            }
        }
        if all_acked(distributor, &compilation, streams) {
            return start.elapsed();
        }
        assert!(start.elapsed() < PATIENCE, "not every sidecar acked within {PATIENCE:?}");
        if clients.reported >= expected_acks {
            std::thread::sleep(Duration::from_micros(100));
        }
    }
}

fn versions(compilation: &Compilation) -> BTreeMap<NodeId, String> {
    compilation.sidecars.iter().map(|(id, c)| (id.clone(), c.version().to_string())).collect()
}

struct Scenario {
    name: String,
    /// Sidecars in the index (compiled).
    sidecars: usize,
    /// Of which connected.
    streams: usize,
    per_connection: usize,
    rounds: usize,
    memory: bool,
}

#[derive(Default)]
struct Outcome {
    connect: Duration,
    initial: Duration,
    rounds: Vec<Duration>,
    set_objects: Vec<Duration>,
    /// (what, RSS KiB, live heap KiB) of this process.
    rss: Vec<(&'static str, u64, u64)>,
    peak_kib: u64,
    /// RSS after each round.
    rss_rounds: Vec<u64>,
    clients_kib: Option<(u64, u64)>,
    /// One more Hello (a reconnect) into the full state: `connect` alone.
    hello: Vec<Duration>,
    config_bytes: usize,
}

fn run(scenario: &Scenario, sizes: Sizes) -> Outcome {
    let mut outcome = Outcome::default();
    let sizes = Sizes { sidecars: scenario.sidecars, ..sizes };
    let indexes = [variant(sizes, 0), variant(sizes, 1)];
    if scenario.memory {
        outcome.rss.push(("bench's own two indexes built, no server", rss_kib().0, live_kib()));
    }
    let runtime =
        tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("tokio runtime");
    let distributor = Distributor::new(DistributorOptions {
        machine: Options { sidecars_from_objects: true, ..Default::default() },
        registry: None,
    });
    let listener = runtime.block_on(tokio::net::TcpListener::bind("127.0.0.1:0")).expect("listen");
    let addr = listener.local_addr().expect("address");
    let service = DistributionService::new(distributor.clone(), None);
    runtime.spawn(async move {
        if let Err(error) = serve(listener, service, None, std::future::pending()).await {
            eprintln!("server: {error}");
        }
    });
    if scenario.memory {
        outcome.rss.push(("server listening, no stream, nothing compiled", rss_kib().0, live_kib()));
    }

    // The streams connect while the Distributor has no objects: in cluster
    // mode every Hello recompiles everything (see `hello` below), which would
    // make setting up 1,000 streams take minutes.
    let start = Instant::now();
    let mut clients = Clients::spawn(addr, scenario.streams, scenario.per_connection);
    loop {
        let connected = distributor.state().sidecars.values().filter(|s| s.connected).count();
        if connected == scenario.streams {
            break;
        }
        assert!(start.elapsed() < PATIENCE, "{connected} of {} streams connected", scenario.streams);
        std::thread::sleep(Duration::from_millis(10));
    }
    outcome.connect = start.elapsed();
    if scenario.memory {
        outcome.rss.push(("streams connected, nothing compiled", rss_kib().0, live_kib()));
    }

    let mut acks = scenario.streams;
    let objects = indexes[0].clone();
    let start = Instant::now();
    distributor.set_objects(objects);
    outcome.initial = wait_acked(&distributor, &mut clients, acks, scenario.streams, start);
    let compilation = distributor.compilation();
    if scenario.sidecars >= topology::REGIONS * topology::HUBS_PER_REGION {
        topology::assert_clean(&compilation, scenario.sidecars);
    }
    outcome.config_bytes =
        compilation.sidecars.values().map(|c| c.config.to_yaml().len()).sum::<usize>() / compilation.sidecars.len();
    let mut previous = versions(&compilation);
    drop(compilation);
    if scenario.memory {
        outcome.rss.push(("streams connected, compiled state, every config pushed and acked", rss_kib().0, live_kib()));
    }

    for round in 0..scenario.rounds {
        std::thread::sleep(Duration::from_millis(50));
        let objects = indexes[(round + 1) % 2].clone();
        acks += scenario.streams;
        let start = Instant::now();
        distributor.set_objects(objects);
        outcome.set_objects.push(start.elapsed());
        outcome.rounds.push(wait_acked(&distributor, &mut clients, acks, scenario.streams, start));
        let now = versions(&distributor.compilation());
        let unchanged = now.iter().filter(|(id, version)| previous.get(*id) == Some(*version)).count();
        assert_eq!(unchanged, 0, "every sidecar gets a new version each round");
        previous = now;
        if scenario.memory {
            outcome.rss_rounds.push(rss_kib().0);
        }
    }
    if scenario.memory {
        outcome.rss.push(("after the rounds", rss_kib().0, live_kib()));
        outcome.peak_kib = rss_kib().1;
        if fabric_testkit::counting_alloc::trim_heap() {
            outcome.rss.push(("after the rounds, then `malloc_trim(0)`", rss_kib().0, live_kib()));
        }
    }

    // One Hello more (sidecar 0 reconnecting): what each of N Hellos costs
    // after an operator restart. This replaces sidecar 0's stream, so it
    // comes last.
    if let Some(info) = (0..sizes.sidecars).next().map(topology::sidecar) {
        for _ in 0..2 {
            let start = Instant::now();
            let (_connection, receiver) = distributor.connect(info.clone(), "");
            outcome.hello.push(start.elapsed());
            drop(receiver);
        }
    }
    outcome.clients_kib = clients.stop();
    runtime.shutdown_timeout(Duration::from_secs(2));
    outcome
}

/// Live heap held by one `Compilation` of the fleet, KiB.
fn compilation_heap(sizes: Sizes) -> u64 {
    let index = variant(sizes, 0);
    let before = live_kib();
    let compilation = fabric_operator_core::compile::compile(&index);
    let held = live_kib().saturating_sub(before);
    drop(compilation);
    held
}

fn ms(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1e3
}

fn main() {
    if std::env::var(ROLE).as_deref() == Ok("clients") {
        clients::run();
        return;
    }
    let bench_mode = std::env::args().any(|arg| arg == "--bench");
    let process_start_kib = (rss_kib().0, live_kib());
    let sizes = Sizes::from_env(if bench_mode { FULL } else { SMOKE });
    let rounds = env_usize("FABRIC_BENCH_ROUNDS", if bench_mode { 20 } else { 3 });
    let per_connection = env_usize("FABRIC_BENCH_STREAMS_PER_CONNECTION", 1).max(1);
    print_machine();
    println!(
        "topology: {} sidecars, {} RoutePolicies + rp-fleet, {} RouteKeys, as in the compile bench; \
         {per_connection} stream(s) per HTTP/2 connection; {rounds} rounds",
        sizes.sidecars, sizes.route_policies, sizes.route_keys
    );
    let scenarios = [
        Scenario {
            name: format!("{} sidecars, all connected", sizes.sidecars),
            sidecars: sizes.sidecars,
            streams: sizes.sidecars,
            per_connection,
            rounds,
            memory: true,
        },
        Scenario {
            name: "1 sidecar (baseline)".into(),
            sidecars: 1,
            streams: 1,
            per_connection: 1,
            rounds,
            memory: false,
        },
        Scenario {
            name: format!("{} sidecars, 1 connected", sizes.sidecars),
            sidecars: sizes.sidecars,
            streams: 1,
            per_connection: 1,
            rounds: rounds.div_ceil(2),
            memory: false,
        },
    ];
    let outcomes: Vec<Outcome> = scenarios.iter().map(|s| run(s, sizes)).collect();
    // After the scenarios, so that this does not raise the RSS read in them.
    let heap = [compilation_heap(sizes), compilation_heap(Sizes { route_keys: 0, ..sizes })];

    let baseline_p50 = percentile(&sorted_ms(&outcomes[1].rounds), 50.0);
    println!(
        "\nCR change → every sidecar's ACK (`Instant`, {rounds} rounds, {} in the last row; p99 is nearest-rank):\n",
        scenarios[2].rounds
    );
    println!(
        "| Scenario | connect | first push → all ACKs | p50 | p99 | max | set_objects p50 | then → all ACKs p50 | p50 / baseline |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|---:|---:|");
    for (scenario, outcome) in scenarios.iter().zip(&outcomes) {
        let sorted = sorted_ms(&outcome.rounds);
        let set_objects = percentile(&sorted_ms(&outcome.set_objects), 50.0);
        let p50 = percentile(&sorted, 50.0);
        let after: Vec<Duration> = outcome.rounds.iter().zip(&outcome.set_objects).map(|(r, s)| *r - *s).collect();
        let after = percentile(&sorted_ms(&after), 50.0);
        println!(
            "| {} | {:.0} ms | {:.1} ms | {p50:.1} ms | {:.1} ms | {:.1} ms | {set_objects:.1} ms | {after:.1} ms | {:.1}x |",
            scenario.name,
            ms(outcome.connect),
            ms(outcome.initial),
            percentile(&sorted, 99.0),
            sorted.last().copied().unwrap_or(f64::NAN),
            p50 / baseline_p50
        );
    }
    let fleet = &outcomes[0];
    let p99 = percentile(&sorted_ms(&fleet.rounds), 99.0);
    println!("\nsnapshot size: {} bytes of config YAML per sidecar", fleet.config_bytes);
    let hello = percentile(&sorted_ms(&fleet.hello), 50.0);
    println!(
        "one more Hello into the full state (`Distributor::connect`: recompile + 1 push): {hello:.1} ms; \
         {} reconnecting sidecars ≈ {:.1} s of recompiles",
        sizes.sidecars,
        hello * sizes.sidecars as f64 / 1e3
    );
    println!(
        "live heap of one Compilation of the fleet: {:.1} MiB ({:.1} MiB without the RouteKeys)",
        mib(heap[0]),
        mib(heap[1])
    );
    println!("\noperator process RSS (VmRSS; the clients run in another process):\n");
    println!("| Point | RSS | live heap |");
    println!("|---|---:|---:|");
    println!("| bench started | {:.1} MiB | {:.1} MiB |", mib(process_start_kib.0), mib(process_start_kib.1));
    for (what, kib, live) in &fleet.rss {
        println!("| {what} | {:.1} MiB | {:.1} MiB |", mib(*kib), mib(*live));
    }
    println!("| peak (VmHWM) | {:.1} MiB | |", mib(fleet.peak_kib));
    if let (Some(first), Some(last)) = (fleet.rss_rounds.first(), fleet.rss_rounds.last()) {
        let (low, high) =
            (fleet.rss_rounds.iter().min().unwrap_or(first), fleet.rss_rounds.iter().max().unwrap_or(last));
        println!(
            "\nRSS after each round: first {:.1} MiB, min {:.1}, max {:.1}, last {:.1} MiB",
            mib(*first),
            mib(*low),
            mib(*high),
            mib(*last)
        );
    }
    if let Some((now, peak)) = fleet.clients_kib {
        println!("\nclient process ({} streams): RSS {:.1} MiB, peak {:.1} MiB", sizes.sidecars, mib(now), mib(peak));
    }
    let compiled_kib = fleet.rss.iter().find(|(w, ..)| w.starts_with("streams connected, compiled")).map_or(0, |r| r.1);
    let verdict = |met: bool| if met { "met" } else { "MISSED" };
    println!(
        "\ngoals at {} sidecars: p99 ≤ 1 s: {} ({p99:.1} ms); RSS ≤ 150 MB with every sidecar connected and compiled: \
         {} ({:.1} MB = {:.1} MiB)",
        sizes.sidecars,
        verdict(p99 <= 1000.0),
        verdict(compiled_kib as f64 * 1024.0 <= 150e6),
        compiled_kib as f64 * 1024.0 / 1e6,
        mib(compiled_kib)
    );
    let _ = std::io::stdout().flush();
}

/// The child process: `FABRIC_BENCH_STREAMS` sidecar streams.
mod clients {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use fabric_control::{Ack, Hello, SidecarMessage, open_stream, operator_message};
    use tokio::sync::mpsc;
    use tonic::codegen::tokio_stream::wrappers::ReceiverStream;
    use tonic::transport::{Channel, Endpoint};

    use fabric_testkit::machine::rss_kib;
    use fabric_testkit::operator_topology::{self as topology, env_usize};

    pub(super) fn run() {
        let addr = std::env::var("FABRIC_BENCH_ADDR").expect("FABRIC_BENCH_ADDR");
        let streams = env_usize("FABRIC_BENCH_STREAMS", 1);
        let per_connection = env_usize("FABRIC_BENCH_STREAMS_PER_CONNECTION", 1).max(1);
        // The parent closes stdin when done: report the RSS and leave.
        std::thread::spawn(|| {
            let _ = std::io::copy(&mut std::io::stdin(), &mut std::io::sink());
            let (now, peak) = rss_kib();
            println!("rss {now} {peak}");
            std::process::exit(0);
        });
        let runtime =
            tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("tokio runtime");
        runtime.block_on(async move {
            let acked = Arc::new(AtomicUsize::new(0));
            for first in (0..streams).step_by(per_connection) {
                let endpoint = Endpoint::from_shared(format!("http://{addr}")).expect("endpoint");
                let channel = endpoint.connect().await.expect("connect to the operator");
                for i in first..(first + per_connection).min(streams) {
                    tokio::spawn(stream(channel.clone(), i, streams, acked.clone()));
                }
            }
            std::future::pending::<()>().await;
        });
    }

    /// One sidecar: Hello, then an ACK for every snapshot.
    async fn stream(channel: Channel, i: usize, streams: usize, acked: Arc<AtomicUsize>) {
        let info = topology::sidecar(i);
        let (outbound, queue) = mpsc::channel(4);
        let hello = Hello {
            node_id: info.node_id.to_string(),
            namespace: info.namespace,
            labels: info.labels,
            peer_address: info.peer_address.unwrap_or_default(),
            applied_version: String::new(),
            pod_name: info.name,
            peer_certificate_request: Vec::new(),
        };
        if outbound.send(SidecarMessage::hello(hello)).await.is_err() {
            return;
        }
        let mut inbound = match open_stream(channel, tonic::Request::new(ReceiverStream::new(queue))).await {
            Ok(response) => response.into_inner(),
            Err(status) => {
                eprintln!("sidecar {i}: {}: {}", status.code(), status.message());
                return;
            }
        };
        while let Ok(Some(message)) = inbound.message().await {
            let Some(operator_message::Kind::Snapshot(snapshot)) = message.kind else { continue };
            let ack = Ack { version: snapshot.version, nonce: snapshot.nonce };
            if outbound.send(SidecarMessage::ack(ack)).await.is_err() {
                return;
            }
            let total = acked.fetch_add(1, Ordering::SeqCst) + 1;
            if total.is_multiple_of(streams) {
                println!("acked {total}");
            }
        }
    }
}
