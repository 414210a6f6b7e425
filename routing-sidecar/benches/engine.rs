//! Routing engine throughput: `cargo bench -p routing-sidecar --bench engine`.
//!
//! First a table of scenarios timed with `std::time::Instant` (median of a
//! few runs each, all in this one process so the ratios compare like with
//! like), then a few criterion micro benchmarks of the hot pieces.
//!
//! Every scenario runs the full pipeline: `receive_batch` of pre-built
//! messages in batches of 512, as the runtime's sessions hand them over
//! (one row: `receive` one by one; another: `receive_frame` of wire
//! frames), and `drain_effects_into` after every batch, dropping the
//! drained effects as a caller would after acting on them. Messages are
//! built outside the timed region as the runtime's
//! session tasks hand them to the engine: freshly allocated strings from
//! the decoder, with node ids and tags then swapped for the session's shared
//! copies (`SharedIds`); dropping them (which the engine does) is timed. One
//! row repeats an update round without the sharing.
//!
//! A name filter selects as in criterion; the scenario table is named
//! `table` (`cargo bench -p routing-sidecar --bench engine -- table`).
//! Without `--bench` (e.g. `cargo test --benches`) everything runs at a tiny
//! scale as a smoke test.

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{BatchSize, Criterion, Throughput};
use fabric_core::canonical;
use fabric_core::config::{NeighborConfig, TrustedKey, encode_public_key};
use fabric_core::message::{SignatureAlgorithm, SignatureBlock};
use fabric_core::security::{KeyRegistry, SignatureCheck, SigningIdentity, Verifier, VerifyRequest};
use fabric_core::shared_ids::SharedIds;
use fabric_core::{KeyId, Message, NodeId, RouteAnnouncement, RouteMetrics, SidecarConfig, Tag, Timestamp};
use fabric_engine::{Effect, Engine};
use fabric_testkit::engine_builders::{peer, workload_path};
use fabric_testkit::machine::machine;

/// Neighbors, each announcing every destination.
const NEIGHBORS: usize = 4;
/// Unsigned messages per `receive_batch` and between two drains: what a
/// session hands the node per read batch (`runtime::transport`'s batch).
const BURST: usize = 512;
/// Signed messages per `receive_batch` call, and between drains on the
/// single-verify path.
const SIGNED_BURST: usize = 64;
const TTL_MS: u32 = 90_000;
const NOW: Timestamp = Timestamp(1_700_000_000_000);

const TARGET_UNSIGNED_PER_SEC: f64 = 1_000_000.0;
const TARGET_BATCH_RATIO: f64 = 1.5;
const TARGET_CACHE_RATIO: f64 = 20.0;

#[derive(Clone, Copy)]
struct Scale {
    /// Destinations in the unsigned table (each gets NEIGHBORS candidates).
    destinations: usize,
    /// Update rounds (new epochs) after the initial load.
    update_rounds: u64,
    /// Runs per scenario; the median is reported.
    runs: usize,
    /// Signed scenarios: destinations per neighbor.
    signed_destinations: usize,
    signed_runs: usize,
}

const FULL: Scale =
    Scale { destinations: 100_000, update_rounds: 2, runs: 3, signed_destinations: 1024, signed_runs: 5 };
const SMOKE: Scale = Scale { destinations: 500, update_rounds: 1, runs: 1, signed_destinations: 16, signed_runs: 1 };

/// The allocator the `routing-sidecar` binary runs with (see its main.rs).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let bench_mode = args.iter().any(|arg| arg == "--bench");
    let scale = if bench_mode { FULL } else { SMOKE };
    // A criterion-style name filter (`cargo bench --bench engine -- verify`)
    // also selects the scenario table, which is named "table".
    let filter = args
        .iter()
        .enumerate()
        .find(|(i, arg)| {
            !arg.starts_with('-') && (*i == 0 || !args[i - 1].starts_with("--") || args[i - 1] == "--bench")
        })
        .map(|(_, arg)| arg.as_str());
    if filter.is_none_or(|f| "table".contains(f)) {
        print_machine();
        let rows = scenario_table(scale);
        print_table(&rows);
    }
    let mut criterion = Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
        .configure_from_args();
    micro_benchmarks(&mut criterion, scale);
    criterion.final_summary();
}

// ---------------------------------------------------------------------------
// Workload

/// Cheap deterministic mixing, so metrics vary per destination, neighbor
/// and round without a random number generator.
fn mix(d: usize, i: usize, round: u64) -> u64 {
    let mut x =
        (d as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ ((i as u64) << 48) ^ round.wrapping_mul(0xD1B5_4A32_D192_ED03);
    x ^= x >> 31;
    x = x.wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x ^ (x >> 29)
}

/// A few distinct tag sets, as fabrics have.
fn tags(d: usize) -> Vec<Tag> {
    let names: &[&str] = match d % 4 {
        0 => &[],
        1 => &["gold"],
        2 => &["eu", "gold"],
        _ => &["pci", "silver", "us"],
    };
    names.iter().map(|t| Tag::from(*t)).collect()
}

/// What neighbor `i` announces about destination `d` in `round`: a path of
/// 2 to 4 hops starting at the neighbor, metrics that change every round,
/// and an epoch that grows with the round. Every string is freshly
/// allocated, as the wire decoder would produce it.
fn announcement(d: usize, i: usize, round: u64) -> RouteAnnouncement {
    let path = workload_path(d, i);
    let m = mix(d, i, round);
    RouteAnnouncement {
        destination: format!("svc-{d:06}.prod.fabric").into(),
        hop_count: path.len() as u32,
        path,
        metrics: RouteMetrics {
            cost: 10 + (m % 20) as u32,
            latency_us: 1000 + ((m >> 8) % 500) as u32,
            reliability: 0.999,
        },
        advertiser: peer(i),
        epoch: 1000 + round,
        ttl_ms: TTL_MS,
        issued_at_ms: None,
        tags: tags(d).into(),
        signature: None,
    }
}

/// One round of the unsigned workload: every neighbor sends its whole table
/// (neighbor by neighbor, as after session establishment or a refresh).
///
/// With `sessions` (one per neighbor, kept across rounds), the messages are
/// what the runtime's session tasks hand the engine: decoded with fresh
/// strings, then node ids and tags swapped for the session's shared copies
/// (`SharedIds`). Without, every string stays freshly allocated.
fn unsigned_round(destinations: usize, round: u64, sessions: Option<&mut [Session]>) -> Vec<(NodeId, Message)> {
    let peers: Vec<NodeId> = match &sessions {
        // The session's peer id is the `from` of everything it receives.
        Some(sessions) => sessions.iter().map(|session| session.peer.clone()).collect(),
        None => (0..NEIGHBORS).map(peer).collect(),
    };
    let mut out = Vec::with_capacity(destinations * NEIGHBORS);
    for (i, from) in peers.iter().enumerate() {
        for d in 0..destinations {
            out.push((from.clone(), Message::Announcement(announcement(d, i, round))));
        }
    }
    if let Some(sessions) = sessions {
        for (from, message) in &mut out {
            let i = peers.iter().position(|peer| peer == from).expect("one of the peers");
            sessions[i].ids.share(message);
        }
    }
    out
}

/// A neighbor's session as the runtime keeps it: the peer's id and the
/// ids shared over the session.
struct Session {
    peer: NodeId,
    ids: SharedIds,
}

fn sessions() -> Vec<Session> {
    (0..NEIGHBORS)
        .map(|i| {
            let peer = peer(i);
            Session { ids: SharedIds::for_peer(&peer), peer }
        })
        .collect()
}

fn base_config() -> SidecarConfig {
    let mut config = SidecarConfig::new("edge-self");
    config.neighbors = (0..NEIGHBORS)
        .map(|i| NeighborConfig { id: peer(i), address: None, link: Default::default(), import: None, export: None })
        .collect();
    config
}

fn identity(i: usize) -> SigningIdentity {
    SigningIdentity::from_secret_bytes(KeyId::from("k1"), &[i as u8 + 1; 32])
}

fn signed_config() -> SidecarConfig {
    let mut config = base_config();
    config.security.require_signatures = true;
    config.security.trusted_keys = (0..NEIGHBORS)
        .map(|i| TrustedKey {
            advertiser: peer(i),
            key_id: KeyId::from("k1"),
            public_key: encode_public_key(&identity(i).verifying_key()),
            valid_from: None,
            valid_until: None,
        })
        .collect();
    config
}

/// Signed announcements with distinct content, interleaved across the
/// neighbors (a burst from several sessions).
fn signed_messages(destinations: usize) -> Vec<(NodeId, Message)> {
    let identities: Vec<SigningIdentity> = (0..NEIGHBORS).map(identity).collect();
    let mut out = Vec::with_capacity(destinations * NEIGHBORS);
    for d in 0..destinations {
        for (i, id) in identities.iter().enumerate() {
            let mut a = announcement(d, i, 0);
            id.sign_announcement(&mut a);
            out.push((peer(i), Message::Announcement(a)));
        }
    }
    out
}

// ---------------------------------------------------------------------------
// Timed pipelines

/// Receives `messages` one by one, draining after every `burst`. The
/// emptied message buffer is freed after the clock stops (freeing one huge
/// block makes glibc consolidate its free lists, which is not engine work).
fn ingest(engine: &mut Engine, mut messages: Vec<(NodeId, Message)>, burst: usize, out: &mut Vec<Effect>) -> Duration {
    let start = Instant::now();
    let mut rest = messages.drain(..);
    loop {
        let mut n = 0;
        for (from, message) in rest.by_ref().take(burst) {
            engine.receive(NOW, &from, message);
            n += 1;
        }
        engine.drain_effects_into(NOW, out);
        out.clear();
        if n < burst {
            break;
        }
    }
    drop(rest);
    let elapsed = start.elapsed();
    drop(messages);
    elapsed
}

/// Receives pre-chunked bursts with `receive_batch`, draining after each.
fn ingest_batches(engine: &mut Engine, mut batches: Vec<Vec<(NodeId, Message)>>, out: &mut Vec<Effect>) -> Duration {
    let start = Instant::now();
    for mut batch in batches.drain(..) {
        engine.receive_batch(NOW, &mut batch);
        engine.drain_effects_into(NOW, out);
        out.clear();
    }
    let elapsed = start.elapsed();
    drop(batches);
    elapsed
}

/// Decodes and receives wire frames, draining after every `burst`.
fn ingest_frames(engine: &mut Engine, frames: &[(NodeId, Vec<u8>)], burst: usize, out: &mut Vec<Effect>) -> Duration {
    let start = Instant::now();
    for chunk in frames.chunks(burst) {
        for (from, bytes) in chunk {
            engine.receive_frame(NOW, from, bytes).expect("frame decodes");
        }
        engine.drain_effects_into(NOW, out);
        out.clear();
    }
    start.elapsed()
}

fn chunked(messages: Vec<(NodeId, Message)>, size: usize) -> Vec<Vec<(NodeId, Message)>> {
    let mut batches = Vec::with_capacity(messages.len().div_ceil(size));
    let mut messages = messages.into_iter().peekable();
    while messages.peek().is_some() {
        batches.push(messages.by_ref().take(size).collect());
    }
    batches
}

fn assert_no_rejects(engine: &Engine, scenario: &str) {
    let stats = engine.stats();
    let rejected: u64 = stats.announcement_rejects_total.values().sum();
    assert_eq!(rejected, 0, "{scenario}: unexpected rejections {:?}", stats.announcement_rejects_total);
}

// ---------------------------------------------------------------------------
// Scenario table

/// Rates of one scenario over several runs.
#[derive(Default)]
struct Samples {
    messages: usize,
    rates: Vec<f64>,
}

impl Samples {
    fn add(&mut self, messages: usize, elapsed: Duration) {
        self.messages = messages;
        self.rates.push(messages as f64 / elapsed.as_secs_f64());
    }

    fn median(&self) -> f64 {
        let mut sorted = self.rates.clone();
        sorted.sort_by(f64::total_cmp);
        sorted[sorted.len() / 2]
    }

    fn spread(&self) -> (f64, f64) {
        let min = self.rates.iter().copied().fold(f64::INFINITY, f64::min);
        let max = self.rates.iter().copied().fold(0.0, f64::max);
        (min, max)
    }
}

struct Row {
    name: String,
    samples: Samples,
    /// Ratio to another row's median, with that row's short name.
    ratio: Option<(f64, &'static str)>,
    /// Verdict against a target, if the scenario has one.
    target: Option<(bool, String)>,
    note: String,
}

impl Row {
    /// A row without a target, shown as a ratio to another row's median.
    fn compared(name: String, samples: Samples, (base, base_name): (f64, &'static str)) -> Row {
        Row { name, ratio: Some((samples.median() / base, base_name)), target: None, note: String::new(), samples }
    }
}

#[derive(Default)]
struct UnsignedResult {
    initial: Samples,
    updates: Samples,
    /// One more update round with every string freshly allocated (no
    /// session sharing): what sharing saves.
    fresh_updates: Samples,
    /// One more update round through `receive`, message by message.
    one_by_one: Samples,
    frames: Samples,
    sent_per_message: f64,
    changes_per_message: f64,
}

/// One run of the unsigned pipeline into a table of `destinations` x
/// NEIGHBORS candidates: the initial load, update rounds with new epochs,
/// and one more update round fed as wire frames (decode included).
fn unsigned_run(scale: Scale, neighbors_up: bool, result: &mut UnsignedResult) {
    let per_round = scale.destinations * NEIGHBORS;
    let mut engine = Engine::new(base_config(), NOW).expect("valid config");
    let mut out = Vec::new();
    if neighbors_up {
        for i in 0..NEIGHBORS {
            engine.neighbor_up(NOW, &peer(i));
        }
        engine.drain_effects_into(NOW, &mut out);
        out.clear();
    }
    let mut sessions = sessions();
    let messages = unsigned_round(scale.destinations, 0, Some(&mut sessions));
    let elapsed = ingest_batches(&mut engine, chunked(messages, BURST), &mut out);
    result.initial.add(per_round, elapsed);
    let stats = engine.stats();
    assert_eq!(stats.candidates_stored, per_round as u64, "every announcement stored");
    assert_eq!(stats.announcements_accepted, per_round as u64);

    let mut update_time = Duration::ZERO;
    for round in 1..=scale.update_rounds {
        let messages = unsigned_round(scale.destinations, round, Some(&mut sessions));
        update_time += ingest_batches(&mut engine, chunked(messages, BURST), &mut out);
    }
    result.updates.add(per_round * scale.update_rounds as usize, update_time);

    let messages = unsigned_round(scale.destinations, scale.update_rounds + 1, None);
    result.fresh_updates.add(per_round, ingest_batches(&mut engine, chunked(messages, BURST), &mut out));

    let messages = unsigned_round(scale.destinations, scale.update_rounds + 2, Some(&mut sessions));
    result.one_by_one.add(per_round, ingest(&mut engine, messages, BURST, &mut out));

    let frames: Vec<(NodeId, Vec<u8>)> = unsigned_round(scale.destinations, scale.update_rounds + 3, None)
        .into_iter()
        .map(|(from, message)| (from, fabric_core::wire::encode(&message)))
        .collect();
    let elapsed = ingest_frames(&mut engine, &frames, BURST, &mut out);
    result.frames.add(per_round, elapsed);

    let stats = engine.stats();
    let total = stats.announcements_received as f64;
    assert_eq!(stats.announcements_accepted, stats.announcements_received);
    assert_no_rejects(&engine, "unsigned");
    result.sent_per_message = stats.messages_sent_total as f64 / total;
    result.changes_per_message = stats.best_path_changes_total as f64 / total;
}

struct SignedResult {
    single: Samples,
    batch: Samples,
    duplicate_single: Samples,
    duplicate_batch: Samples,
}

/// Fresh signed announcements (every one needs a real ed25519
/// verification), then the same messages again (verification cache hit,
/// then a refresh of the stored route).
fn signed_scenario(scale: Scale) -> SignedResult {
    let master = signed_messages(scale.signed_destinations);
    let n = master.len();
    let mut result = SignedResult {
        single: Samples::default(),
        batch: Samples::default(),
        duplicate_single: Samples::default(),
        duplicate_batch: Samples::default(),
    };
    let mut out = Vec::new();
    for _ in 0..scale.signed_runs {
        let mut engine = Engine::new(signed_config(), NOW).expect("valid config");
        result.single.add(n, ingest(&mut engine, master.clone(), SIGNED_BURST, &mut out));
        let verified = engine.stats().signatures_verified_total;
        assert_eq!(verified, n as u64, "every fresh signature verified");
        result.duplicate_single.add(n, ingest(&mut engine, master.clone(), SIGNED_BURST, &mut out));
        let stats = engine.stats();
        assert_eq!(stats.signature_cache_hits_total, n as u64, "every duplicate hit the cache");
        assert_eq!(stats.candidates_stored, n as u64);
        assert_no_rejects(&engine, "signed single");

        let mut engine = Engine::new(signed_config(), NOW).expect("valid config");
        result.batch.add(n, ingest_batches(&mut engine, chunked(master.clone(), SIGNED_BURST), &mut out));
        assert_eq!(engine.stats().signatures_verified_total, n as u64);
        result.duplicate_batch.add(n, ingest_batches(&mut engine, chunked(master.clone(), SIGNED_BURST), &mut out));
        let stats = engine.stats();
        assert_eq!(stats.signature_cache_hits_total, n as u64);
        assert_eq!(stats.candidates_stored, n as u64);
        assert_no_rejects(&engine, "signed batch");
    }
    result
}

fn scenario_table(scale: Scale) -> Vec<Row> {
    let mut rows = Vec::new();
    let table = format!("{}k dest x {NEIGHBORS}", scale.destinations / 1000);
    let rounds = scale.update_rounds;
    // The two variants alternate run by run, so that a slow phase of a
    // shared machine does not bias one of them.
    let started = Instant::now();
    let (mut down, mut up) = (UnsignedResult::default(), UnsignedResult::default());
    for _ in 0..scale.runs {
        unsigned_run(scale, false, &mut down);
        unsigned_run(scale, true, &mut up);
    }
    let wall = started.elapsed().as_secs_f64();
    for (neighbors_up, r) in [(false, down), (true, up)] {
        let label = if neighbors_up { "neighbors up, re-advertising" } else { "neighbors down" };
        let note = format!(
            "{:.2} best changes and {:.2} sends per message; unsigned scenarios {wall:.1}s wall",
            r.changes_per_message, r.sent_per_message,
        );
        let initial = r.initial.median();
        let updates = r.updates.median();
        rows.push(Row {
            name: format!("unsigned initial load into empty table ({table}), {label}"),
            ratio: None,
            target: Some(target_min(initial, TARGET_UNSIGNED_PER_SEC)),
            note: String::new(),
            samples: r.initial,
        });
        rows.push(Row {
            name: format!("unsigned updates, {rounds} rounds of new epochs ({table}), {label}"),
            ratio: None,
            target: Some(target_min(updates, TARGET_UNSIGNED_PER_SEC)),
            note: String::new(),
            samples: r.updates,
        });
        rows.push(Row::compared(
            format!("unsigned update round, fresh ids (no session sharing), {label}"),
            r.fresh_updates,
            (updates, "updates"),
        ));
        rows.push(Row::compared(
            format!("unsigned update round, receive one by one (no batch), {label}"),
            r.one_by_one,
            (updates, "updates"),
        ));
        rows.push(Row {
            name: format!("unsigned update round from wire frames (decode+receive), {label}"),
            ratio: None,
            target: None,
            note,
            samples: r.frames,
        });
    }

    let started = Instant::now();
    let s = signed_scenario(scale);
    let single = s.single.median();
    let batch_ratio = s.batch.median() / single;
    let dup_ratio = s.duplicate_single.median() / single;
    let n = s.single.messages;
    rows.push(Row {
        name: format!("signed fresh, single verify (receive), {n} msgs"),
        ratio: Some((1.0, "baseline")),
        target: None,
        note: format!("signed scenarios {:.1}s wall", started.elapsed().as_secs_f64()),
        samples: s.single,
    });
    rows.push(Row {
        name: format!("signed fresh, batch verify (receive_batch x{SIGNED_BURST})"),
        ratio: Some((batch_ratio, "signed single")),
        target: Some(target_ratio(batch_ratio, TARGET_BATCH_RATIO)),
        note: String::new(),
        samples: s.batch,
    });
    rows.push(Row {
        name: "signed duplicate (cache hit + refresh), receive".into(),
        ratio: Some((dup_ratio, "signed single")),
        target: Some(target_ratio(dup_ratio, TARGET_CACHE_RATIO)),
        note: String::new(),
        samples: s.duplicate_single,
    });
    rows.push(Row::compared(
        format!("signed duplicate (cache hit + refresh), receive_batch x{SIGNED_BURST}"),
        s.duplicate_batch,
        (single, "signed single"),
    ));
    rows
}

fn target_min(rate: f64, target: f64) -> (bool, String) {
    (rate >= target, format!(">= {}", human(target)))
}

fn target_ratio(ratio: f64, target: f64) -> (bool, String) {
    (ratio >= target, format!(">= {target:.1}x"))
}

fn human(rate: f64) -> String {
    if rate >= 1e6 {
        format!("{:.2}M/s", rate / 1e6)
    } else if rate >= 1e3 {
        format!("{:.1}k/s", rate / 1e3)
    } else {
        format!("{rate:.0}/s")
    }
}

fn print_machine() {
    let (cpu, cores) = machine();
    println!("routing engine benchmark: cpu {cpu:?}, {cores} cores available, single-threaded");
}

fn print_table(rows: &[Row]) {
    println!();
    println!("{:<82} {:>9} {:>11} {:>21} {:>22} {:>22}", "scenario", "messages", "rate", "min..max", "ratio", "target");
    for row in rows {
        let (min, max) = row.samples.spread();
        let ratio = match row.ratio {
            Some((r, "baseline")) => format!("{r:.2}x (baseline)"),
            Some((r, base)) => format!("{r:.2}x vs {base}"),
            None => "-".into(),
        };
        let target = match &row.target {
            Some((true, t)) => format!("{t} MET"),
            Some((false, t)) => format!("{t} MISSED"),
            None => "-".into(),
        };
        println!(
            "{:<82} {:>9} {:>11} {:>21} {:>22} {:>22}",
            row.name,
            row.samples.messages,
            human(row.samples.median()),
            format!("{}..{}", human(min), human(max)),
            ratio,
            target
        );
        if !row.note.is_empty() {
            println!("    ({})", row.note);
        }
    }
    println!("rates are medians over runs; ratios are computed from the medians of this run");
    println!();
}

// ---------------------------------------------------------------------------
// Criterion micro benchmarks

fn micro_benchmarks(c: &mut Criterion, scale: Scale) {
    // One announcement with a new epoch into a populated table, then drain.
    let mut engine = Engine::new(base_config(), NOW).expect("valid config");
    let mut out = Vec::new();
    ingest_batches(&mut engine, chunked(unsigned_round(scale.destinations, 0, Some(&mut sessions())), BURST), &mut out);
    let peers: Vec<NodeId> = (0..NEIGHBORS).map(peer).collect();
    let mut k = 0usize;
    let mut group = c.benchmark_group("engine");
    group.throughput(Throughput::Elements(1));
    group.bench_function("receive_and_drain_unsigned_update", |b| {
        b.iter_batched(
            || {
                k += 1;
                let (d, i) = (k / NEIGHBORS % scale.destinations, k % NEIGHBORS);
                let mut a = announcement(d, i, 0);
                a.epoch = 10_000 + k as u64;
                (peers[i].clone(), Message::Announcement(a))
            },
            |(from, message)| {
                engine.receive(NOW, &from, message);
                engine.drain_effects_into(NOW, &mut out);
                out.clear();
            },
            // Small batches: criterion frees each batch's input buffer inside
            // the timed region, and freeing a block above 64 KiB makes glibc
            // consolidate its free lists (harness cost, not engine cost).
            BatchSize::NumIterations(128),
        )
    });
    group.finish();
    drop(engine);

    // The verification layer on its own.
    let id = identity(0);
    let registry = KeyRegistry::from_entries([id.public_entry(peer(0), None, None)]);
    let signed: Vec<(Vec<u8>, SignatureBlock)> = (0..SIGNED_BURST)
        .map(|d| {
            let mut a = announcement(d, 0, 0);
            id.sign_announcement(&mut a);
            let signature = *a.signature.clone().expect("signed");
            (canonical::announcement_bytes(&a, SignatureAlgorithm::Ed25519, id.key_id()), signature)
        })
        .collect();
    let requests: Vec<VerifyRequest<'_>> = signed
        .iter()
        .map(|(bytes, signature)| VerifyRequest { advertiser: "peer-0", signature, canonical: bytes })
        .collect();
    let mut group = c.benchmark_group("verify");
    group.throughput(Throughput::Elements(1));
    let mut uncached = Verifier::new(0);
    group.bench_function("verify_one_fresh", |b| {
        b.iter(|| {
            let check = uncached.verify_one(&registry, NOW, black_box(requests[0]));
            assert_eq!(check, SignatureCheck::Valid { cached: false });
        })
    });
    let mut cached = Verifier::new(1024);
    cached.verify_one(&registry, NOW, requests[0]);
    group.bench_function("verify_one_cache_hit", |b| {
        b.iter(|| {
            let check = cached.verify_one(&registry, NOW, black_box(requests[0]));
            assert_eq!(check, SignatureCheck::Valid { cached: true });
        })
    });
    group.throughput(Throughput::Elements(requests.len() as u64));
    group.sample_size(20);
    group.bench_function(format!("verify_many_fresh_x{SIGNED_BURST}"), |b| {
        b.iter(|| {
            let checks = uncached.verify_many(&registry, NOW, black_box(&requests));
            assert!(checks.iter().all(|c| *c == SignatureCheck::Valid { cached: false }));
        })
    });
    group.finish();
}
