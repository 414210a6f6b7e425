//! Multi-process tests: real `routing-sidecar` processes on 127.0.0.1 with
//! OS-chosen ports, wired through their local APIs.

use std::path::{Path, PathBuf};
use std::sync::LazyLock;
use std::time::Duration;

use bytes::Bytes;
use fabric_core::config::{LocalRoute, TrustedKey, encode_public_key};
use fabric_core::security::SigningIdentity;
use fabric_core::wire::{self, Frame};
use fabric_core::{Message, RouteAnnouncement, RouteMetrics, SidecarConfig};
use fabric_engine::sim::Topology;
use fabric_sidecar::runtime::lab::{Lab, SidecarProcess};
use fabric_sidecar::runtime::state_dir::SigningKeyFile;
use fabric_sidecar::runtime::tls::{PeerTls, TlsFiles};
use fabric_testkit::process::{scratch, sidecar_exe};
use fabric_testkit::wait::eventually;
use futures::{SinkExt, StreamExt};
use tokio::net::TcpStream;
use tokio_util::codec::{Framed, LengthDelimitedCodec};

fn exe() -> &'static Path {
    static EXE: LazyLock<PathBuf> = LazyLock::new(sidecar_exe);
    &EXE
}

fn topology(yaml: &str) -> Topology {
    Topology::from_yaml(yaml).expect("topology")
}

/// Short hold time: "one gossip interval" is the keepalive interval, a third of it.
fn fast_sessions(config: &mut SidecarConfig) {
    config.session.hold_time = Duration::from_millis(900);
    config.session.reconnect_initial = Duration::from_millis(20);
    config.session.reconnect_max = Duration::from_millis(200);
}

const GOSSIP_INTERVAL: Duration = Duration::from_millis(300);

fn line3() -> Topology {
    topology(
        "nodes:\n  - {id: a, originate: [{destination: svc}]}\n  - {id: b}\n  - {id: c}\n\
         links:\n  - {a: a, b: b}\n  - {a: b, b: c}\n",
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn withdrawal_propagates_across_three_processes() {
    let mut lab = Lab::start(exe(), &line3(), &scratch("line3"), fast_sessions).await.unwrap();
    lab.wait_for_routes(1, Duration::from_secs(20)).await.unwrap();
    assert_eq!(lab.node("c").next_hop("svc").await.unwrap().as_deref(), Some("b"));
    let mut config = lab.configs["a"].clone();
    config.originate.clear();
    config.version = Some("no-svc".into());
    assert_eq!(lab.node("a").apply(&config).await.unwrap().status, 200);
    lab.configs.insert("a".into(), config);
    let c = lab.node("c");
    eventually(Duration::from_secs(5), "c forgets svc", || async { c.next_hop("svc").await.unwrap().is_none() }).await;
    let metrics = lab.node("b").get("/metrics").await.unwrap().body;
    assert!(metrics.contains("fabric_"), "{metrics}");
}

fn fabric5() -> Topology {
    //  src --1-- p1 --1-- dst
    //   |                  |
    //   +--3--- p2 --3-----+      and p2 -- x (a leaf)
    topology(
        "nodes:\n  - {id: src}\n  - {id: p1}\n  - {id: p2}\n  - {id: x}\n  - {id: dst, originate: [{destination: app}]}\n\
         links:\n  - {a: src, b: p1, metrics: {cost: 1}}\n  - {a: p1, b: dst, metrics: {cost: 1}}\n\
         \x20 - {a: src, b: p2, metrics: {cost: 3}}\n  - {a: p2, b: dst, metrics: {cost: 3}}\n  - {a: p2, b: x}\n",
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killing_a_process_reroutes_within_two_gossip_intervals() {
    let mut lab = Lab::start(exe(), &fabric5(), &scratch("fabric5"), fast_sessions).await.unwrap();
    lab.wait_for_routes(1, Duration::from_secs(20)).await.unwrap();
    assert_eq!(lab.node("src").next_hop("app").await.unwrap().as_deref(), Some("p1"));
    // Every neighbor's table arrived whole (its end-of-table), timed from
    // the session's start.
    let peers = lab.node("src").get_json("/peers").await.unwrap();
    for peer in peers.as_array().unwrap() {
        let took = peer["table_received_ms"].as_f64();
        assert!(took.is_some_and(|ms| (0.0..20_000.0).contains(&ms)), "{peer}");
    }
    lab.nodes.get_mut("p1").unwrap().kill().await;
    let src = lab.node("src");
    let took = eventually(2 * GOSSIP_INTERVAL, "src reroutes via p2", || async {
        src.next_hop("app").await.unwrap().as_deref() == Some("p2")
    })
    .await;
    eprintln!("rerouted {took:?} after the kill");
    let peers = src.get_json("/peers").await.unwrap();
    let p1 = peers.as_array().unwrap().iter().find(|p| p["id"] == "p1").unwrap();
    assert_eq!(p1["established"], false);
    assert!(p1["last_error"].as_str().is_some());
}

fn signed_fabric(dir: &Path) -> (Topology, Vec<(String, SigningIdentity, PathBuf)>) {
    let topo = line3();
    let keys = ["a", "b", "c"]
        .iter()
        .map(|n| {
            let identity = SigningIdentity::generate(format!("{n}-k1").into()).unwrap();
            std::fs::create_dir_all(dir).unwrap();
            let path = dir.join(format!("{n}.key.json"));
            std::fs::write(&path, serde_json::to_string(&SigningKeyFile::from_identity(&identity)).unwrap()).unwrap();
            (n.to_string(), identity, path)
        })
        .collect();
    (topo, keys)
}

fn require_signatures(keys: &[(String, SigningIdentity, PathBuf)]) -> impl Fn(&mut SidecarConfig) + '_ {
    move |config| {
        fast_sessions(config);
        config.security.require_signatures = true;
        config.security.trusted_keys = keys
            .iter()
            .map(|(n, k, _)| TrustedKey {
                advertiser: n.as_str().into(),
                key_id: k.key_id().clone(),
                public_key: encode_public_key(&k.verifying_key()),
                valid_from: None,
                valid_until: None,
            })
            .collect();
        mallory_next_to_b(config);
    }
}

/// Makes room for the tests' fake peer `mallory` next to b: a configured
/// neighbor without an address, which dials in.
fn mallory_next_to_b(config: &mut SidecarConfig) {
    if config.node_id.as_str() == "b" {
        config.neighbors.push(fabric_core::config::NeighborConfig {
            id: "mallory".into(),
            address: None,
            link: Default::default(),
            import: None,
            export: None,
        });
    }
}

/// An unsigned announcement of `destination` by `mallory`, `hops` long.
fn from_mallory(destination: &str, hops: usize, epoch: u64) -> Message {
    let mut path: Vec<fabric_core::NodeId> = vec!["mallory".into()];
    path.extend((1..hops).map(|i| fabric_core::NodeId::from(format!("far-{i}"))));
    Message::Announcement(RouteAnnouncement {
        destination: destination.into(),
        hop_count: path.len() as u32,
        path,
        metrics: RouteMetrics { cost: 1, latency_us: 0, reliability: 1.0 },
        advertiser: "mallory".into(),
        epoch,
        ttl_ms: 600_000,
        issued_at_ms: None,
        tags: Vec::new().into(),
        signature: None,
    })
}

/// Starts a lab whose nodes sign with the given key files.
async fn signed_lab(dir: &Path, keys: &[(String, SigningIdentity, PathBuf)]) -> Lab {
    let key_args = |id: &fabric_core::NodeId| {
        let key = &keys.iter().find(|(n, _, _)| n == id.as_str()).unwrap().2;
        vec!["--signing-key".to_string(), key.display().to_string()]
    };
    Lab::start_with(exe(), &line3(), dir, require_signatures(keys), key_args).await.unwrap()
}

async fn fake_peer(to: &SidecarProcess, claim: &str) -> Framed<TcpStream, LengthDelimitedCodec> {
    let stream = TcpStream::connect(to.peer).await.unwrap();
    let mut framed = Framed::new(stream, LengthDelimitedCodec::new());
    let mut hello = Vec::new();
    wire::encode_frame(&Frame::Hello { node_id: claim.into(), hold_time_ms: 3000 }, &mut hello);
    framed.send(Bytes::from(hello)).await.unwrap();
    let reply = framed.next().await.unwrap().unwrap();
    assert!(matches!(wire::decode_frame(&reply, &Default::default()).unwrap(), Frame::Hello { .. }));
    framed
}

async fn send_message(framed: &mut Framed<TcpStream, LengthDelimitedCodec>, message: Message) {
    let mut buf = Vec::new();
    wire::encode_frame(&Frame::Routing(message), &mut buf);
    framed.send(Bytes::from(buf)).await.unwrap();
}

fn metric(text: &str, series: &str) -> f64 {
    text.lines()
        .find_map(|line| line.strip_prefix(series).and_then(|rest| rest.trim().parse().ok()))
        .unwrap_or_else(|| panic!("no {series} in\n{text}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spoofed_advertiser_is_rejected_and_counted_in_metrics() {
    let dir = scratch("spoof");
    let (_, keys) = signed_fabric(&dir);
    let lab = signed_lab(&dir, &keys).await;
    lab.wait_for_routes(1, Duration::from_secs(20)).await.unwrap();
    let b = lab.node("b");
    assert_eq!(b.get_json("/routes/svc").await.unwrap()["signed"], true);
    // mallory is a configured neighbor of b, but claims routes as `a`, signed with its own key.
    let mallory_key = SigningIdentity::generate("a-k1".into()).unwrap();
    let mut framed = fake_peer(b, "mallory").await;
    let mut forged = RouteAnnouncement {
        destination: "svc".into(),
        path: vec!["mallory".into()],
        hop_count: 1,
        metrics: RouteMetrics { cost: 0, latency_us: 0, reliability: 1.0 },
        advertiser: "mallory".into(),
        epoch: 1,
        ttl_ms: 60_000,
        issued_at_ms: None,
        tags: Vec::new().into(),
        signature: None,
    };
    send_message(&mut framed, Message::Announcement(forged.clone())).await; // unsigned
    mallory_key.sign_announcement(&mut forged);
    send_message(&mut framed, Message::Announcement(forged.clone())).await; // unknown key for mallory
    forged.advertiser = "a".into();
    forged.path = vec!["a".into()];
    mallory_key.sign_announcement(&mut forged);
    send_message(&mut framed, Message::Announcement(forged)).await; // advertiser is not the sender
    eventually(Duration::from_secs(5), "three rejects counted", || async {
        let text = b.get("/metrics").await.unwrap().body;
        metric(&text, "fabric_announcement_rejects_total{reason=\"unsigned\"}") == 1.0
            && metric(&text, "fabric_announcement_rejects_total{reason=\"unknown_key\"}") == 1.0
            && metric(&text, "fabric_announcement_rejects_total{reason=\"advertiser_mismatch\"}") == 1.0
    })
    .await;
    assert_eq!(b.get_json("/routes/svc").await.unwrap()["next_hop"], "a", "the real route stays");
    let explain = b.get_json("/routes/svc/explain").await.unwrap();
    assert_eq!(explain["rejections"].as_array().unwrap().len(), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn live_reload_changes_selection_without_restart_and_bad_config_is_refused() {
    let topo = topology(
        "nodes:\n  - {id: s}\n  - {id: p}\n  - {id: q}\n  - {id: d, originate: [{destination: app}]}\n\
         links:\n  - {a: s, b: p}\n  - {a: s, b: q, metrics: {cost: 2}}\n  - {a: p, b: d}\n  - {a: q, b: d}\n",
    );
    let mut lab = Lab::start(exe(), &topo, &scratch("reload"), fast_sessions).await.unwrap();
    lab.wait_for_routes(1, Duration::from_secs(20)).await.unwrap();
    let s = lab.node("s");
    assert_eq!(s.next_hop("app").await.unwrap().as_deref(), Some("p"));
    let pid = s.child.id();
    let mut config = lab.configs["s"].clone();
    config.neighbors.iter_mut().find(|n| n.id.as_str() == "p").unwrap().link.cost = 10;
    config.version = Some("v2".into());
    assert_eq!(s.apply(&config).await.unwrap().status, 200);
    assert_eq!(s.next_hop("app").await.unwrap().as_deref(), Some("q"), "applied synchronously");
    assert_eq!(s.get_json("/config").await.unwrap()["version"], "v2");
    assert_eq!(s.child.id(), pid, "same process");
    // A bad config: refused with the field, v2 stays in force.
    let mut bad = config.clone();
    bad.neighbors[0].link.reliability = 7.0;
    bad.version = Some("v3".into());
    let refused = s.apply(&bad).await.unwrap();
    assert_eq!(refused.status, 422);
    assert_eq!(refused.json().unwrap()["field"], "neighbors[0].link.reliability");
    assert_eq!(s.get_json("/config").await.unwrap()["version"], "v2");
    assert_eq!(s.next_hop("app").await.unwrap().as_deref(), Some("q"));
    lab.configs.insert("s".into(), config);
}

/// The local API is reachable from every container of the pod: a config
/// write needs the --api-token-file token, and a sidecar fed by an
/// operator takes none. Each refusal is counted and changes nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn config_writes_need_the_api_token_and_an_operator_fed_sidecar_is_read_only() {
    use fabric_io::local_http;
    let dir = scratch("api-writes");
    let mut config = SidecarConfig::new("w");
    config.version = Some("v1".into());
    let standalone = SidecarProcess::spawn(exe(), &config, &dir.join("standalone"), &[]).await.unwrap();
    // Operator-fed: the operator is unreachable, so it runs on its file.
    let operator = ["--operator".to_owned(), "http://127.0.0.1:9".to_owned()];
    let fed = SidecarProcess::spawn(exe(), &config, &dir.join("fed"), &operator).await.unwrap();
    let mut replacement = config.clone();
    replacement.version = Some("v2".into());
    let injected =
        LocalRoute { destination: "injected".into(), cost: 0, latency_us: 0, reliability: 1.0, tags: vec![] };
    replacement.originate.push(injected);
    let yaml = replacement.to_yaml();
    let token = standalone.api_token.clone().expect("a standalone sidecar has a token");

    struct Case<'a> {
        name: &'a str,
        sidecar: &'a SidecarProcess,
        bearer: Option<&'a str>,
        status: u16,
        error: &'a str,
    }
    let cases = [
        Case {
            name: "no token",
            sidecar: &standalone,
            bearer: None,
            status: 401,
            error: "PUT /config needs Authorization: Bearer <token>",
        },
        Case {
            name: "wrong token",
            sidecar: &standalone,
            bearer: Some("not-the-token"),
            status: 401,
            error: "the bearer token is not the --api-token-file token",
        },
        Case {
            name: "operator-fed, even with a token",
            sidecar: &fed,
            bearer: Some(&token),
            status: 403,
            error: "the config comes from the operator (--operator); the local API is read-only",
        },
    ];
    for (refusals, case) in cases.iter().enumerate() {
        let response = local_http::put(case.sidecar.api, "/config", &yaml, case.bearer).await.unwrap();
        assert_eq!(
            (response.status, response.json().unwrap()["error"].as_str()),
            (case.status, Some(case.error)),
            "{}",
            case.name
        );
        let status = case.sidecar.get_json("/config").await.unwrap();
        assert_eq!(status["version"], "v1", "{}: nothing changed", case.name);
        assert_eq!(status["last_error"], format!("PUT /config refused: {}", case.error), "{}", case.name);
        assert!(case.sidecar.next_hop("injected").await.unwrap().is_none(), "{}", case.name);
        let counted = if case.name.starts_with("operator") { 1 } else { refusals as u64 + 1 };
        assert_eq!(status["rejected_total"], counted, "{}: counted", case.name);
        let metrics = case.sidecar.get("/metrics").await.unwrap().body;
        assert!(metrics.contains(&format!("fabric_config_rejected_total {counted}")), "{}: {metrics}", case.name);
    }
    // The token holder writes.
    let accepted = local_http::put(standalone.api, "/config", &yaml, Some(&token)).await.unwrap();
    assert_eq!(accepted.status, 200, "{}", accepted.body);
    assert_eq!(standalone.get_json("/config").await.unwrap()["version"], "v2");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_comes_back_with_the_persisted_config_and_key() {
    let dir = scratch("restart");
    let (_, keys) = signed_fabric(&dir);
    let mut lab = signed_lab(&dir, &keys).await;
    lab.wait_for_routes(1, Duration::from_secs(20)).await.unwrap();
    // a's key is now only in a's state dir once we restart it without --signing-key:
    // persist it there first, the way a node keeps a generated key.
    let a_state = fabric_sidecar::runtime::state_dir::StateDir::open(dir.join("a").join("state")).unwrap();
    a_state.save_signing_key(&keys[0].1).unwrap();
    let version = lab.node("a").get_json("/config").await.unwrap()["version"].clone();
    let mut a = lab.nodes.remove("a").unwrap();
    a.kill().await;
    let c = lab.node("c");
    eventually(Duration::from_secs(5), "c loses svc", || async { c.next_hop("svc").await.unwrap().is_none() }).await;
    // Restart from the state dir only: no --config, no --signing-key.
    let restarted = SidecarProcess::spawn_with(exe(), "a".into(), &dir.join("a"), None, &[]).await.unwrap();
    assert_eq!(restarted.get_json("/config").await.unwrap()["source"], "state-dir");
    assert_eq!(restarted.get_json("/config").await.unwrap()["version"], version);
    // b dials a's old address; a dials b (its persisted config has b's address).
    lab.nodes.insert("a".into(), restarted);
    let c = lab.node("c");
    eventually(Duration::from_secs(10), "c has svc again, signed", || async {
        c.get_json("/routes/svc").await.is_ok_and(|r| r["signed"] == true)
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_and_oversized_frames_disconnect_the_peer_but_the_node_keeps_serving() {
    let dir = scratch("garbage");
    let topo = line3();
    let lab = Lab::start(exe(), &topo, &dir, |config| {
        fast_sessions(config);
        mallory_next_to_b(config);
        if config.node_id.as_str() == "b" {
            config.originate.push(LocalRoute {
                destination: "b-svc".into(),
                cost: 0,
                latency_us: 0,
                reliability: 1.0,
                tags: vec![],
            });
        }
    })
    .await
    .unwrap();
    lab.wait_for_routes(2, Duration::from_secs(20)).await.unwrap();
    let b = lab.node("b");
    // Garbage after a valid hello.
    let mut framed = fake_peer(b, "mallory").await;
    framed.send(Bytes::from_static(&[0xde, 0xad, 0xbe, 0xef])).await.unwrap();
    let closed = tokio::time::timeout(Duration::from_secs(5), async {
        while let Some(Ok(frame)) = framed.next().await {
            if let Ok(Frame::Close { reason, .. }) = wire::decode_frame(&frame, &Default::default()) {
                return reason;
            }
        }
        String::from("closed")
    })
    .await
    .expect("b closes the session");
    assert!(closed.contains("malformed") || closed == "closed", "{closed}");
    // An oversized frame: the length prefix alone announces 1 MiB.
    let mut raw = TcpStream::connect(b.peer).await.unwrap();
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    raw.write_all(&(1u32 << 20).to_be_bytes()).await.unwrap();
    let mut sink = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(5), raw.read_to_end(&mut sink)).await;
    assert!(read.is_ok(), "b drops the oversized sender");
    // b still serves the API and its other sessions.
    assert_eq!(b.get("/healthz").await.unwrap().status, 200);
    assert_eq!(lab.node("c").next_hop("svc").await.unwrap().as_deref(), Some("b"));
    // The garbage is counted as a malformed announcement, and every end by
    // reason, also the connection that never got past its first frame;
    // /peers shows the peer's own. Eventually: the connection tells the
    // actor, and a query may be answered before it handled that.
    eventually(Duration::from_secs(5), "the garbage and both ends counted", || async {
        let text = b.get("/metrics").await.unwrap().body;
        metric(&text, "fabric_announcement_rejects_total{reason=\"malformed\"}") >= 1.0
            && metric(&text, "fabric_session_ends_total{reason=\"malformed_frame\"}") >= 1.0
            && metric(&text, "fabric_session_ends_total{reason=\"frame_too_large\"}") >= 1.0
    })
    .await;
    let peers = b.get_json("/peers").await.unwrap();
    let mallory = peers.as_array().unwrap().iter().find(|p| p["id"] == "mallory").expect("mallory in /peers");
    assert_eq!(mallory["session_ends"]["malformed_frame"], 1, "{mallory}");
}

/// A CA and one certificate per node (DNS name = node id), as PEM files.
fn fabric_certificates(dir: &Path, nodes: &[&str]) -> Vec<(String, Vec<String>)> {
    use rcgen::{BasicConstraints, CertificateParams, IsCa, KeyPair};
    std::fs::create_dir_all(dir).unwrap();
    let ca_key = KeyPair::generate().unwrap();
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca = ca_params.self_signed(&ca_key).unwrap();
    let issuer = rcgen::Issuer::new(ca_params, ca_key);
    std::fs::write(dir.join("ca.pem"), ca.pem()).unwrap();
    nodes
        .iter()
        .map(|node| {
            let key = KeyPair::generate().unwrap();
            let cert = CertificateParams::new(vec![node.to_string()]).unwrap().signed_by(&key, &issuer).unwrap();
            std::fs::write(dir.join(format!("{node}.pem")), cert.pem()).unwrap();
            std::fs::write(dir.join(format!("{node}.key")), key.serialize_pem()).unwrap();
            let args = vec![
                "--tls-cert".into(),
                dir.join(format!("{node}.pem")).display().to_string(),
                "--tls-key".into(),
                dir.join(format!("{node}.key")).display().to_string(),
                "--tls-ca".into(),
                dir.join("ca.pem").display().to_string(),
            ];
            (node.to_string(), args)
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_run_over_mutual_tls_and_refuse_peers_without_a_certificate_or_claiming_another_node() {
    let dir = scratch("tls");
    let args = fabric_certificates(&dir.join("pki"), &["a", "b", "c"]);
    let tls_args = |id: &fabric_core::NodeId| args.iter().find(|(n, _)| n == id.as_str()).unwrap().1.clone();
    let lab = Lab::start_with(exe(), &line3(), &dir, fast_sessions, tls_args).await.unwrap();
    lab.wait_for_routes(1, Duration::from_secs(20)).await.unwrap();
    assert_eq!(lab.node("c").next_hop("svc").await.unwrap().as_deref(), Some("b"));
    // A plaintext client gets no hello back: the TLS handshake fails first.
    let stream = TcpStream::connect(lab.node("b").peer).await.unwrap();
    let mut framed = Framed::new(stream, LengthDelimitedCodec::new());
    let mut hello = Vec::new();
    wire::encode_frame(&Frame::Hello { node_id: "a".into(), hold_time_ms: 3000 }, &mut hello);
    let _ = framed.send(Bytes::from(hello)).await;
    let reply = tokio::time::timeout(Duration::from_secs(5), framed.next()).await.expect("b hangs up");
    assert!(!matches!(reply, Some(Ok(_))), "no frame for a client without TLS");
    assert_eq!(lab.node("c").next_hop("svc").await.unwrap().as_deref(), Some("b"));
    eventually(Duration::from_secs(5), "the failed handshake is counted", || async {
        session_end_count(lab.node("b"), "tls_handshake").await == 1
    })
    .await;

    // A fabric member (c's certificate) dials b claiming to be a, b's other
    // neighbor: refused before the hello is believed, and counted; a's
    // session and routes stay.
    let pki = dir.join("pki");
    let files = TlsFiles { cert: pki.join("c.pem"), key: pki.join("c.key"), ca: pki.join("ca.pem") };
    let impostor = PeerTls::from_files(&files).unwrap();
    let stream = TcpStream::connect(lab.node("b").peer).await.unwrap();
    let stream = impostor.connect(&"b".into(), stream).await.expect("the certificate itself is valid");
    let mut framed = Framed::new(stream, LengthDelimitedCodec::new());
    let mut hello = Vec::new();
    wire::encode_frame(&Frame::Hello { node_id: "a".into(), hold_time_ms: 3000 }, &mut hello);
    framed.send(Bytes::from(hello)).await.unwrap();
    let mut refusal = None;
    while let Ok(Some(Ok(bytes))) = tokio::time::timeout(Duration::from_secs(5), framed.next()).await {
        if let Ok(Frame::Close { reason, .. }) = wire::decode_frame(&bytes, &Default::default()) {
            refusal = Some(reason);
        }
    }
    let refusal = refusal.expect("b closes with a reason");
    assert_eq!(refusal, "the peer's certificate does not name a, the node id its hello claims");
    assert_eq!(session_end_count(lab.node("b"), "identity_mismatch").await, 1);
    let peers = lab.node("b").get_json("/peers").await.unwrap();
    let a = peers.as_array().unwrap().iter().find(|p| p["id"] == "a").unwrap();
    assert_eq!((a["established"].as_bool(), a["sessions_established_total"].as_u64()), (Some(true), Some(1)), "{a}");
    assert_eq!(lab.node("c").next_hop("svc").await.unwrap().as_deref(), Some("b"));
}

/// `fabric_session_ends_total{reason}` of `sidecar`.
async fn session_end_count(sidecar: &SidecarProcess, reason: &str) -> u64 {
    let metrics = sidecar.get("/metrics").await.unwrap().body;
    let prefix = format!("fabric_session_ends_total{{reason=\"{reason}\"}} ");
    metrics.lines().find_map(|l| l.strip_prefix(&prefix)?.parse::<f64>().ok()).unwrap_or(0.0) as u64
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn announced_restart_keeps_routes_stale_until_the_node_is_back() {
    let dir = scratch("graceful");
    let restart_args = |id: &fabric_core::NodeId| {
        if id.as_str() == "a" { vec!["--announce-restart".to_string()] } else { Vec::new() }
    };
    let mut lab = Lab::start_with(exe(), &line3(), &dir, fast_sessions, restart_args).await.unwrap();
    lab.wait_for_routes(1, Duration::from_secs(20)).await.unwrap();
    let mut a = lab.nodes.remove("a").unwrap();
    a.terminate().await.unwrap();
    // b was told a is restarting: the route stays, marked stale, for the window.
    let b = lab.node("b");
    eventually(Duration::from_secs(5), "b sees a down", || async {
        let peers = b.get_json("/peers").await.unwrap();
        peers.as_array().unwrap().iter().any(|p| p["id"] == "a" && p["established"] == false)
    })
    .await;
    let route = b.get_json("/routes/svc").await.unwrap();
    assert_eq!(route["stale"], true, "{route}");
    assert_eq!(lab.node("c").next_hop("svc").await.unwrap().as_deref(), Some("b"));
    // a comes back from its state dir, re-sends its table and end-of-table.
    let restarted = SidecarProcess::spawn_with(exe(), "a".into(), &dir.join("a"), None, &[]).await.unwrap();
    lab.nodes.insert("a".into(), restarted);
    let b = lab.node("b");
    eventually(Duration::from_secs(10), "b refreshed svc", || async {
        b.get_json("/routes/svc").await.is_ok_and(|r| r["stale"] == false)
    })
    .await;
    let stats = b.get_json("/stats").await.unwrap();
    assert_eq!(stats["engine"]["routes_withdrawn_total"], 0, "never withdrawn during the restart");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_table_larger_than_any_queue_reaches_the_neighbor_whole() {
    // Regression: a bounded outbound queue (4,096) once dropped the rest of a
    // large table silently while the session stayed up.
    const ROUTES: usize = 6_000;
    let topo = topology("nodes:\n  - {id: a}\n  - {id: b}\nlinks:\n  - {a: a, b: b}\n");
    let lab = Lab::start(exe(), &topo, &scratch("large"), |config| {
        fast_sessions(config);
        if config.node_id.as_str() == "a" {
            config.originate = (0..ROUTES)
                .map(|i| LocalRoute {
                    destination: format!("svc-{i:05}").into(),
                    cost: 0,
                    latency_us: 0,
                    reliability: 1.0,
                    tags: vec![],
                })
                .collect();
        }
    })
    .await
    .unwrap();
    lab.wait_for_routes(ROUTES, Duration::from_secs(30)).await.unwrap();
    let stats = lab.node("b").get_json("/stats").await.unwrap();
    assert_eq!(stats["engine"]["routes_active_total"], ROUTES as u64);
}

/// The sum of every series of `name` (all peers).
fn metric_sum(text: &str, name: &str) -> f64 {
    text.lines()
        .filter(|line| line.starts_with(name) && line[name.len()..].starts_with(['{', ' ']))
        .filter_map(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// A line n1 - n2 - n3 - n4, every node with `maxPathLength: 2`, each
/// originating `x<i>`: a node has a route to every `x` at most two hops
/// away and none further, and no session ever resets: a route at the limit
/// relayed one hop over it would make the neighbor drop the whole session,
/// again and again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn routes_at_the_path_limit_are_not_relayed_over_it_and_sessions_stay_up() {
    let topo = topology(
        "nodes:\n  - {id: n1, originate: [{destination: x1}]}\n  - {id: n2, originate: [{destination: x2}]}\n\
         \x20 - {id: n3, originate: [{destination: x3}]}\n  - {id: n4, originate: [{destination: x4}]}\n\
         links:\n  - {a: n1, b: n2}\n  - {a: n2, b: n3}\n  - {a: n3, b: n4}\n",
    );
    let lab = Lab::start(exe(), &topo, &scratch("path-limit"), |config| {
        fast_sessions(config);
        config.limits.max_path_length = 2;
    })
    .await
    .unwrap();
    let nodes = ["n1", "n2", "n3", "n4"];
    let within_limit = |from: usize, to: usize| from != to && from.abs_diff(to) <= 2;
    eventually(Duration::from_secs(20), "every route within the limit", || async {
        for (i, node) in nodes.iter().enumerate() {
            for j in 0..nodes.len() {
                let present = lab.node(node).next_hop(&format!("x{}", j + 1)).await.unwrap().is_some();
                if within_limit(i, j) && !present {
                    return false;
                }
            }
        }
        true
    })
    .await;
    // Many keepalive intervals (300 ms each) with every session up: no
    // reset, no route beyond the limit, and the refusals to export counted.
    let failures = || async {
        let mut total = 0.0;
        for node in nodes {
            total +=
                metric_sum(&lab.node(node).get("/metrics").await.unwrap().body, "fabric_peer_session_failures_total");
        }
        total
    };
    assert_eq!(failures().await, 0.0, "sessions went down while converging");
    tokio::time::sleep(GOSSIP_INTERVAL * 10).await;
    assert_eq!(failures().await, 0.0, "sessions went down at the path limit");
    for (i, node) in nodes.iter().enumerate() {
        for j in 0..nodes.len() {
            let hop = lab.node(node).next_hop(&format!("x{}", j + 1)).await.unwrap();
            if i != j {
                assert_eq!(hop.is_some(), within_limit(i, j), "{node} -> x{}: {hop:?}", j + 1);
            }
        }
    }
    let n2 = lab.node("n2").get("/metrics").await.unwrap().body;
    assert!(metric(&n2, "fabric_export_refusals_total{reason=\"path_limit\"}") >= 1.0, "n2 holds x4 at the limit");
    let rejects = metric(&n2, "fabric_announcement_rejects_total{reason=\"malformed\"}");
    assert_eq!(rejects, 0.0, "nothing over the limit was sent to n2");
}

/// An announcement that breaks a per-message limit is refused alone and
/// treated as a withdrawal of its destination (RFC 7606): the session stays
/// up and the neighbor's other routes stay.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_announcement_over_a_limit_is_treated_as_a_withdrawal_and_the_session_stays() {
    let lab = Lab::start(exe(), &line3(), &scratch("treat-as-withdraw"), |config| {
        fast_sessions(config);
        mallory_next_to_b(config);
    })
    .await
    .unwrap();
    lab.wait_for_routes(1, Duration::from_secs(20)).await.unwrap();
    let b = lab.node("b");
    let mut peer = fake_peer(b, "mallory").await;
    send_message(&mut peer, from_mallory("m-kept", 1, 1)).await;
    send_message(&mut peer, from_mallory("m-bad", 1, 1)).await;
    eventually(Duration::from_secs(5), "b learns both routes, c through b", || async {
        b.next_hop("m-kept").await.unwrap().is_some()
            && b.next_hop("m-bad").await.unwrap().is_some()
            && lab.node("c").next_hop("m-bad").await.unwrap().is_some()
    })
    .await;
    // 70 hops: over the default maxPathLength (64).
    send_message(&mut peer, from_mallory("m-bad", 70, 2)).await;
    eventually(Duration::from_secs(5), "m-bad withdrawn", || async { b.next_hop("m-bad").await.unwrap().is_none() })
        .await;
    // Nothing b refused is relayed: c, which had m-bad through b, loses it.
    let c = lab.node("c");
    eventually(Duration::from_secs(5), "c loses m-bad too", || async { c.next_hop("m-bad").await.unwrap().is_none() })
        .await;
    // Still the same session: a new announcement on it is accepted, and the
    // other route of the peer never left.
    send_message(&mut peer, from_mallory("m-after", 1, 1)).await;
    eventually(Duration::from_secs(5), "the session still works", || async {
        b.next_hop("m-after").await.unwrap().is_some()
    })
    .await;
    assert!(b.next_hop("m-kept").await.unwrap().is_some());
    let text = b.get("/metrics").await.unwrap().body;
    assert_eq!(metric(&text, "fabric_announcement_rejects_total{reason=\"malformed\"}"), 1.0);
    assert_eq!(metric(&text, "fabric_peer_session_failures_total{peer=\"mallory\"}"), 0.0);
    let explain = b.get("/routes/m-bad/explain").await.unwrap().body;
    assert!(explain.contains("treated as a withdrawal"), "{explain}");
}

/// A session that ends with a TCP reset (SO_LINGER 0) withdraws the peer's
/// routes at once: only an announced restart keeps them as stale.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reset_connection_withdraws_the_peers_routes_at_once() {
    let lab = Lab::start(exe(), &line3(), &scratch("reset"), |config| {
        fast_sessions(config);
        mallory_next_to_b(config);
    })
    .await
    .unwrap();
    lab.wait_for_routes(1, Duration::from_secs(20)).await.unwrap();
    let b = lab.node("b");
    let mut peer = fake_peer(b, "mallory").await;
    send_message(&mut peer, from_mallory("m-svc", 1, 1)).await;
    eventually(Duration::from_secs(5), "b learns m-svc", || async { b.next_hop("m-svc").await.unwrap().is_some() })
        .await;
    // Abort: linger 0 makes close send RST instead of FIN.
    let stream = peer.into_inner();
    #[allow(deprecated)] // set_linger: the one way to ask for an RST
    stream.set_linger(Some(Duration::ZERO)).unwrap();
    drop(stream);
    // Far sooner than the restart window (`session.restartTime`).
    let took = eventually(Duration::from_secs(5), "m-svc withdrawn after the reset", || async {
        b.next_hop("m-svc").await.unwrap().is_none()
    })
    .await;
    assert!(took < Duration::from_secs(5));
    let routes = b.get_json("/routes").await.unwrap();
    assert!(!routes.to_string().contains("m-svc"), "no stale copy either: {routes}");
    let text = b.get("/metrics").await.unwrap().body;
    assert_eq!(metric(&text, "fabric_session_ends_total{reason=\"connection_reset\"}"), 1.0, "{text}");
}

/// `GET /config` shows the settings in force, not just the version.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn get_config_shows_the_effective_settings_with_keys_redacted() {
    let identity = SigningIdentity::generate("b-key".into()).unwrap();
    let public = encode_public_key(&identity.verifying_key());
    let lab = Lab::start(exe(), &line3(), &scratch("effective"), |config| {
        fast_sessions(config);
        if config.node_id.as_str() == "b" {
            config.stability.hold_down = Duration::from_secs(7);
            config.security.trusted_keys = vec![TrustedKey {
                advertiser: "a".into(),
                key_id: "a-key".into(),
                public_key: public.clone(),
                valid_from: None,
                valid_until: None,
            }]
            .into();
        }
    })
    .await
    .unwrap();
    let config = lab.node("b").get_json("/config").await.unwrap();
    let effective = &config["effective"];
    assert_eq!(effective["stability"]["holdDown"], "7s", "{config}");
    assert_eq!(effective["security"]["trustedKeys"][0]["keyId"], "a-key");
    assert_eq!(effective["security"]["trustedKeys"][0]["publicKey"], "<redacted>");
    assert!(!config.to_string().contains(&public), "no key material in /config");
    assert!(config["version"].is_string() || config["version"].is_null());
}

/// A sidecar killed with SIGKILL while data for it sits unread in its
/// socket: its kernel answers with a reset, and its neighbor withdraws its
/// routes at once, long before the hold timer would (10 s here).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sidecar_killed_with_unread_input_is_withdrawn_at_once() {
    let topo = topology(
        "nodes:\n  - {id: a}\n  - {id: b}\n  - {id: c, originate: [{destination: c-svc}]}\n\
         links:\n  - {a: a, b: b}\n  - {a: b, b: c}\n",
    );
    let mut lab = Lab::start(exe(), &topo, &scratch("kill-unread"), |config| {
        fast_sessions(config);
        config.session.hold_time = Duration::from_secs(10);
    })
    .await
    .unwrap();
    lab.wait_for_routes(1, Duration::from_secs(20)).await.unwrap();
    let signal = |name: &str, pid: u32| {
        std::process::Command::new("kill").args([name, &pid.to_string()]).status().unwrap();
    };
    let c_pid = lab.node("c").child.id().expect("c runs");
    signal("-STOP", c_pid);
    // b sends c an announcement that c, stopped, never reads.
    let sent_before = lab.node("b").get_json("/stats").await.unwrap()["engine"]["messages_sent_total"].as_u64();
    let mut config = lab.configs["b"].clone();
    config.originate.push(LocalRoute {
        destination: "b-new".into(),
        cost: 0,
        latency_us: 0,
        reliability: 1.0,
        tags: vec![],
    });
    config.version = Some("b-new".into());
    assert_eq!(lab.node("b").apply(&config).await.unwrap().status, 200);
    let b = lab.node("b");
    eventually(Duration::from_secs(5), "b sent to the stopped c", || async {
        b.get_json("/stats").await.unwrap()["engine"]["messages_sent_total"].as_u64() > sent_before
    })
    .await;
    signal("-KILL", c_pid);
    let took = eventually(Duration::from_secs(5), "b withdraws c-svc", || async {
        b.next_hop("c-svc").await.unwrap().is_none()
    })
    .await;
    assert!(took < Duration::from_secs(5));
    let text = b.get("/metrics").await.unwrap().body;
    assert!(metric(&text, "fabric_session_ends_total{reason=\"connection_reset\"}") >= 1.0, "{text}");
    lab.nodes.remove(&fabric_core::NodeId::from("c"));
}

/// The `/peers` entry of `peer` on `node`.
async fn peer_status(node: &SidecarProcess, peer: &str) -> serde_json::Value {
    let peers = node.get_json("/peers").await.unwrap();
    peers.as_array().unwrap().iter().find(|p| p["id"] == peer).cloned().unwrap_or_else(|| panic!("{peer} in {peers}"))
}

/// `VmRSS` of a process, in bytes.
fn rss_bytes(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let kib = status.lines().find_map(|l| l.strip_prefix("VmRSS:")).unwrap().trim().trim_end_matches(" kB").trim();
    kib.parse::<u64>().unwrap() * 1024
}

/// A fake peer's connection split in two: a task sends it keepalives (so
/// only the send queue can end the session, never the hold timer), the
/// test reads the other half, or never does.
fn keep_alive(
    framed: Framed<TcpStream, LengthDelimitedCodec>,
) -> (futures::stream::SplitStream<Framed<TcpStream, LengthDelimitedCodec>>, tokio::task::JoinHandle<()>) {
    let (mut sink, stream) = framed.split();
    let task = tokio::spawn(async move {
        let mut keepalive = Vec::new();
        wire::encode_frame(&Frame::Keepalive, &mut keepalive);
        while sink.send(Bytes::from(keepalive.clone())).await.is_ok() {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    });
    (stream, task)
}

/// A peer that completes the hello and then never reads, while the node
/// has a 100k-route table for it: the node's queue for it never holds more
/// than `session.maxQueuedBytes`, the session is reset at the bound
/// (`send_queue_full`, counted, its routes withdrawn), the node keeps
/// serving its API and its other neighbor, and the peer gets the whole
/// table when it comes back and reads.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_that_stops_reading_is_reset_at_the_queue_bound_and_the_sender_stays_healthy() {
    const ROUTES: usize = 100_000;
    let route = |i: usize, cost: u32| LocalRoute {
        destination: format!("svc-{i:06}").into(),
        cost,
        latency_us: 0,
        reliability: 1.0,
        tags: vec![],
    };
    // The bound: one and a half tables, as b sends them. A table fits (a
    // healthy neighbor gets one at once), two do not.
    let sample = Message::Announcement(RouteAnnouncement {
        destination: "svc-000000".into(),
        path: vec!["b".into()],
        hop_count: 1,
        metrics: RouteMetrics { cost: 0, latency_us: 0, reliability: 1.0 },
        advertiser: "b".into(),
        epoch: u64::MAX,
        ttl_ms: 90_000,
        issued_at_ms: Some(u64::MAX),
        tags: Vec::new().into(),
        signature: None,
    });
    // Each frame behind its 4-byte length prefix; the largest epoch and
    // issue time make it an upper bound.
    let table_bytes = ROUTES as u64 * (fabric_core::wire::encode(&sample).len() as u64 + 4);
    let bound = table_bytes * 3 / 2;
    let topo = topology("nodes:\n  - {id: b}\n  - {id: c}\nlinks:\n  - {a: b, b: c}\n");
    let lab = Lab::start(exe(), &topo, &scratch("stalled-peer"), |config| {
        fast_sessions(config);
        mallory_next_to_b(config);
        // Rounds of whole-table changes must not trip c's rate limit; and
        // in a debug build, parsing and applying a 100k-route config keeps
        // both runtime threads busy for seconds, keepalives included.
        config.session.max_messages_per_second = 10_000_000;
        config.session.hold_time = Duration::from_secs(20);
        if config.node_id.as_str() == "b" {
            config.session.max_queued_bytes = bound;
            config.originate = (0..ROUTES).map(|i| route(i, 0)).collect();
        }
    })
    .await
    .unwrap();
    let (b, c) = (lab.node("b"), lab.node("c"));
    // c holds b's table at `cost`: all routes, the first and last at that
    // cost (a change of every route is queued in one go), and nothing is
    // left in b's queue for c.
    let c_has_table = |cost: u64| async move {
        let cost_of = |i: usize| async move {
            c.get_json(&format!("/routes/svc-{i:06}")).await.map(|r| r["metrics"]["cost"].clone()).ok()
        };
        peer_status(c, "b").await["routes_received"] == ROUTES as u64
            && cost_of(0).await == Some(cost.into())
            && cost_of(ROUTES - 1).await == Some(cost.into())
            && peer_status(b, "c").await["send_queue_bytes"] == 0
    };
    eventually(Duration::from_secs(120), "c has b's table", || c_has_table(1)).await;
    let b_pid = b.child.id().unwrap();
    let rss_before = rss_bytes(b_pid);

    // mallory: hello, one route, then it never reads again.
    let mut mallory = fake_peer(b, "mallory").await;
    send_message(&mut mallory, from_mallory("m-svc", 1, 1)).await;
    let (unread, keepalives) = keep_alive(mallory);
    eventually(Duration::from_secs(10), "c learns m-svc through b", || async {
        c.next_hop("m-svc").await.unwrap().is_some()
    })
    .await;

    // What b queues, watched throughout: never above the bound.
    let watching = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(true));
    let watcher = {
        let (api, watching) = (b.api, watching.clone());
        tokio::spawn(async move {
            let mut most = std::collections::BTreeMap::<String, u64>::new();
            while watching.load(std::sync::atomic::Ordering::Relaxed) {
                tokio::time::sleep(Duration::from_millis(20)).await;
                // A busy debug build may drop a request; the next one counts.
                let Ok(peers) = fabric_io::local_http::get(api, "/peers").await.and_then(|r| r.json()) else {
                    continue;
                };
                for peer in peers.as_array().unwrap() {
                    let queued = peer["send_queue_bytes"].as_u64().unwrap();
                    let entry = most.entry(peer["id"].as_str().unwrap().to_owned()).or_default();
                    *entry = (*entry).max(queued);
                }
            }
            most
        })
    };

    // Rounds of a change to every route: c reads each, mallory none.
    let reset = |text: &str| metric(text, "fabric_session_ends_total{reason=\"send_queue_full\"}");
    let mut config = lab.configs["b"].clone();
    let mut round = 0;
    while reset(&b.get("/metrics").await.unwrap().body) == 0.0 {
        round += 1;
        assert!(round <= 4, "mallory's session not reset after {} rounds", round - 1);
        config.originate = (0..ROUTES).map(|i| route(i, round)).collect();
        config.version = Some(format!("round-{round}"));
        assert_eq!(b.apply(&config).await.unwrap().status, 200);
        eventually(Duration::from_secs(120), "c has the round's table", || c_has_table(u64::from(round) + 1)).await;
    }
    eprintln!("mallory reset after {round} round(s) of {ROUTES} changes; bound {bound} B");

    // Reset once, counted, mallory's routes withdrawn; c untouched.
    eventually(Duration::from_secs(10), "m-svc withdrawn at b and c", || async {
        b.next_hop("m-svc").await.unwrap().is_none() && c.next_hop("m-svc").await.unwrap().is_none()
    })
    .await;
    let status = peer_status(b, "mallory").await;
    assert_eq!(status["established"], false, "{status}");
    assert_eq!(status["session_ends"]["send_queue_full"], 1, "{status}");
    assert_eq!(status["send_queue_bytes"], 0, "{status}");
    let text = b.get("/metrics").await.unwrap().body;
    assert_eq!(reset(&text), 1.0);
    assert_eq!(metric(&text, "fabric_peer_session_failures_total{peer=\"c\"}"), 0.0, "c's session never went down");
    assert_eq!(peer_status(b, "c").await["established"], true);
    assert_eq!(b.get("/healthz").await.unwrap().status, 200);
    watching.store(false, std::sync::atomic::Ordering::Relaxed);
    let most = watcher.await.unwrap();
    eprintln!("largest queues seen: {most:?}; bound {bound}; one table {table_bytes}");
    assert!(most.values().all(|&queued| queued <= bound), "{most:?} above {bound}");
    assert!(most["mallory"] > table_bytes / 2, "mallory's queue was seen filling: {most:?}");
    let rss_after = rss_bytes(b_pid);
    eprintln!("b's RSS: {} MiB before mallory, {} MiB after its reset", rss_before >> 20, rss_after >> 20);
    assert!(rss_after < rss_before + 4 * bound + (64 << 20), "{rss_before} -> {rss_after}");
    keepalives.abort();
    drop(unread);

    // mallory comes back and reads: a fresh, whole table.
    let (mut stream, keepalives) = keep_alive(fake_peer(b, "mallory").await);
    let mut announced = 0;
    let table = tokio::time::timeout(Duration::from_secs(120), async {
        while let Some(Ok(bytes)) = stream.next().await {
            match wire::decode_frame(&bytes, &Default::default()) {
                Ok(Frame::Routing(Message::Announcement(_))) => announced += 1,
                Ok(Frame::Routing(Message::EndOfTable { .. })) => return true,
                _ => {}
            }
        }
        false
    })
    .await;
    assert_eq!(table, Ok(true), "end of table after {announced} announcements");
    assert_eq!(announced, ROUTES);
    keepalives.abort();
}
