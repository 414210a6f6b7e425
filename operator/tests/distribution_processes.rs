//! Config distribution end to end: a real `fabric-operator run --manifests`
//! process and real `routing-sidecar run --operator` processes on
//! 127.0.0.1, ports chosen by the OS, every wait bounded.
//!
//! The sidecar binary is the workspace's `target/<profile>/routing-sidecar`
//! (`cargo test --workspace` builds it; alone: `cargo build -p
//! routing-sidecar` first).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use fabric_sidecar::runtime::lab::SidecarProcess;
use fabric_testkit::builders::{MESH_NEIGHBORS as NEIGHBORS, OperatorFedSidecar};
use fabric_testkit::process::{LocalOperator, scratch_in, sidecar_exe};
use fabric_testkit::wait::wait_for;
use serde_json::Value;

const TOKEN: &str = "local-test-token";

const POLICY: &str = r#"
apiVersion: routing.fabric.dev/v1alpha1
kind: RoutePolicy
metadata: {name: default, namespace: fabric}
spec:
  sidecarSelector: {matchLabels: {mesh: test}}
  import:
    destinations: {deny: ["blocked-*"]}
"#;

/// A fresh scratch folder for one test.
fn scratch(name: &str) -> PathBuf {
    let dir = scratch_in(Path::new(env!("CARGO_TARGET_TMPDIR")), &format!("distribution-{name}"));
    std::fs::create_dir_all(dir.join("manifests")).unwrap();
    std::fs::write(dir.join("token"), TOKEN).unwrap();
    std::fs::write(dir.join("manifests/neighbors.yaml"), NEIGHBORS).unwrap();
    std::fs::write(dir.join("manifests/policy.yaml"), POLICY).unwrap();
    dir
}

/// A local-mode operator with the test token and a state dir.
async fn start_operator(dir: &Path, listen: &str, extra: &[&str]) -> LocalOperator {
    let mut args = vec!["--insecure-plaintext"];
    args.extend_from_slice(extra);
    start_operator_with(dir, listen, &args).await
}

async fn start_operator_with(dir: &Path, listen: &str, extra: &[&str]) -> LocalOperator {
    let token = dir.join("token").display().to_string();
    let state = dir.join("operator-state").display().to_string();
    let mut args = vec!["--token-file", &token, "--state-dir", &state];
    args.extend_from_slice(&["--listen", listen, "--http", "127.0.0.1:0", "--poll-interval", "100ms"]);
    args.extend_from_slice(extra);
    LocalOperator::spawn(Path::new(env!("CARGO_BIN_EXE_fabric-operator")), dir, &args).await
}

/// Starts sidecar `id` (bootstrap config: its own destinations only) wired
/// to the operator.
async fn sidecar(dir: &Path, operator: SocketAddr, id: &str, labels: &[&str], originate: &[&str]) -> SidecarProcess {
    let url = format!("http://{operator}");
    sidecar_with(dir, &url, id, labels, originate, &["--operator-token-file", &dir.join("token").display().to_string()])
        .await
}

async fn sidecar_with(
    dir: &Path,
    url: &str,
    id: &str,
    labels: &[&str],
    originate: &[&str],
    more: &[&str],
) -> SidecarProcess {
    let sidecar = OperatorFedSidecar::new(id, url).originate(originate).labels(labels).args_after(more);
    SidecarProcess::spawn(&sidecar_exe(), &sidecar.config(), &dir.join(id), &sidecar.args()).await.unwrap()
}

const WAIT: Duration = Duration::from_secs(30);

async fn all_synced(operator: &LocalOperator, count: usize) -> Result<Vec<Value>, String> {
    let list = operator.sidecars().await;
    let synced = list.iter().filter(|s| s["sync"] == "SYNCED" && s["connected"] == true).count();
    if synced == count { Ok(list) } else { Err(serde_json::to_string(&list).unwrap()) }
}

async fn object(operator: &LocalOperator, key: &str) -> Value {
    operator.get("/status").await["objects"][key].clone()
}

fn applied_condition(object: &Value) -> Value {
    object["conditions"].as_array().and_then(|c| c.iter().find(|c| c["type"] == "Applied")).cloned().unwrap_or_default()
}

async fn has_route(sidecar: &SidecarProcess, destination: &str) -> Result<(), String> {
    match sidecar.next_hop(destination).await? {
        Some(_) => Ok(()),
        None => Err(format!("{} has no route to {destination}", sidecar.node_id)),
    }
}

async fn config_of(sidecar: &SidecarProcess) -> Value {
    sidecar.get_json("/config").await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_policy_edit_reaches_every_sidecar_and_status_reports_applied() {
    let dir = scratch("edit");
    let operator = start_operator(&dir, "127.0.0.1:0", &["--resume-grace", "0s"]).await;
    let mut fabric = Vec::new();
    for id in ["s1", "s2", "s3"] {
        let svc = format!("svc-{id}");
        let blocked = format!("blocked-{id}");
        fabric.push(sidecar(&dir, operator.grpc, id, &["mesh=test"], &[&svc, &blocked]).await);
    }
    wait_for("3 sidecars SYNCED", WAIT, || all_synced(&operator, 3)).await;
    wait_for("routes converge", WAIT, || async {
        for s in &fabric {
            for other in ["s1", "s2", "s3"] {
                has_route(s, &format!("svc-{other}")).await?;
            }
        }
        Ok(())
    })
    .await;
    for s in &fabric {
        assert_eq!(config_of(s).await["source"], "operator", "{}", s.node_id);
        assert_eq!(s.next_hop("blocked-s3").await.unwrap().filter(|_| s.node_id.as_str() != "s3"), None);
    }
    let before: Vec<Value> = operator.sidecars().await.iter().map(|s| s["currentVersion"].clone()).collect();

    // The edit: stop denying blocked-*.
    std::fs::write(dir.join("manifests/policy.yaml"), POLICY.replace(r#"deny: ["blocked-*"]"#, "deny: []")).unwrap();
    let list = wait_for("new versions SYNCED", WAIT, || async {
        let list = all_synced(&operator, 3).await?;
        let now: Vec<Value> = list.iter().map(|s| s["currentVersion"].clone()).collect();
        if now.iter().zip(&before).all(|(a, b)| a != b) { Ok(list) } else { Err("versions unchanged".into()) }
    })
    .await;
    let policy = object(&operator, "RoutePolicy fabric/default").await;
    let applied = applied_condition(&policy);
    assert_eq!(applied["status"], "True", "{policy}");
    assert_eq!(applied["message"], "3/3 sidecars on current version", "{policy}");
    assert_eq!((policy["selectedSidecars"].as_u64(), policy["appliedSidecars"].as_u64()), (Some(3), Some(3)));
    for (s, entry) in fabric.iter().zip(&list) {
        assert_eq!(config_of(s).await["version"], entry["currentVersion"], "{} runs the pushed version", s.node_id);
    }
    wait_for("the edit takes effect in routing", WAIT, || async {
        has_route(&fabric[0], "blocked-s3").await?;
        has_route(&fabric[1], "blocked-s1").await
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_config_is_nacked_reported_and_the_sidecar_keeps_its_config() {
    let dir = scratch("nack");
    let operator = start_operator(&dir, "127.0.0.1:0", &["--resume-grace", "0s"]).await;
    let s1 = sidecar(&dir, operator.grpc, "s1", &["mesh=test"], &["svc-s1"]).await;
    let s2 = sidecar(&dir, operator.grpc, "s2", &["mesh=test"], &["svc-s2"]).await;
    // The pod label says another node id than the sidecar's config: the
    // operator compiles for `s4-renamed`, the engine refuses a node id change.
    let s4 =
        sidecar(&dir, operator.grpc, "s4", &["mesh=test", "routing.fabric.dev/node-id=s4-renamed"], &["svc-s4"]).await;

    let s4_entry = wait_for("s4 NACKED", WAIT, || async {
        let list = operator.sidecars().await;
        let entry = list.iter().find(|s| s["sidecar"] == "fabric/s4").cloned().ok_or("no s4")?;
        if entry["sync"] == "NACKED" { Ok(entry) } else { Err(entry.to_string()) }
    })
    .await;
    assert_eq!(s4_entry["lastNack"]["field"], "nodeId", "{s4_entry}");
    assert!(s4_entry["lastNack"]["message"].as_str().unwrap().contains("cannot change at runtime"), "{s4_entry}");
    assert_eq!(s4_entry["appliedVersion"], "bootstrap-s4", "{s4_entry}");

    let policy = wait_for("RoutePolicy reports the NACK", WAIT, || async {
        let policy = object(&operator, "RoutePolicy fabric/default").await;
        let applied = applied_condition(&policy);
        if applied["message"].as_str().is_some_and(|m| m.starts_with("2/3 sidecars on current version; NACKed by")) {
            Ok(policy)
        } else {
            Err(policy.to_string())
        }
    })
    .await;
    let applied = applied_condition(&policy);
    assert_eq!((applied["status"].as_str(), applied["reason"].as_str()), (Some("False"), Some("Nacked")));
    let message = applied["message"].as_str().unwrap();
    assert!(
        message.contains("fabric/s4 (node s4-renamed): nodeId: cannot change at runtime (s4 -> s4-renamed)"),
        "{message}"
    );
    assert_eq!(policy["nacks"][0]["sidecar"], "s4-renamed", "{policy}");

    // s4 keeps its last good config and keeps answering.
    let config = config_of(&s4).await;
    assert_eq!(config["version"], "bootstrap-s4", "{config}");
    assert!(config["rejected_total"].as_u64().unwrap_or_default() >= 1, "{config}");
    assert!(s4.next_hop("svc-s4").await.unwrap().is_some(), "s4 still routes its own destination");
    let routes = s4.get("/routes").await.unwrap();
    assert_eq!(routes.status, 200);
    // The others are unaffected.
    wait_for("s1 and s2 route to each other", WAIT, || async {
        has_route(&s1, "svc-s2").await?;
        has_route(&s2, "svc-s1").await
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sidecars_keep_routes_while_the_operator_is_down_and_resume_after_a_restart() {
    let dir = scratch("restart");
    let mut operator = start_operator(&dir, "127.0.0.1:0", &["--resume-grace", "0s"]).await;
    // The sidecars dial a fixed address: the restarted operator binds the
    // same port (the OS chose it for the first run).
    let listen = operator.grpc.to_string();
    let mut fabric = Vec::new();
    for id in ["s1", "s2", "s3"] {
        let svc = format!("svc-{id}");
        fabric.push(sidecar(&dir, operator.grpc, id, &["mesh=test"], &[&svc]).await);
    }
    wait_for("3 sidecars SYNCED", WAIT, || all_synced(&operator, 3)).await;
    let converged = || async {
        for s in &fabric {
            for other in ["s1", "s2", "s3"] {
                has_route(s, &format!("svc-{other}")).await?;
            }
        }
        Ok(())
    };
    wait_for("routes converge", WAIT, converged).await;
    let applied_before: Vec<Value> = {
        let mut v = Vec::new();
        for s in &fabric {
            v.push(config_of(s).await["applied_total"].clone());
        }
        v
    };

    // Operator down: routing goes on (observed for 2 s).
    operator.kill().await;
    let until = Instant::now() + Duration::from_secs(2);
    while Instant::now() < until {
        converged().await.expect("routes kept while the operator is down");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    // Restart on the same address: every sidecar resumes, nothing is pushed.
    let operator = start_operator(&dir, &listen, &["--resume-grace", "0s"]).await;
    wait_for("3 sidecars back and SYNCED", WAIT, || all_synced(&operator, 3)).await;
    let status = operator.get("/status").await;
    assert_eq!(status["pushes"], 0, "resume must not push: {status}");
    for (s, before) in fabric.iter().zip(&applied_before) {
        assert_eq!(&config_of(s).await["applied_total"], before, "{} applied nothing new", s.node_id);
    }
    let applied = applied_condition(&object(&operator, "RoutePolicy fabric/default").await);
    assert_eq!(applied["message"], "3/3 sidecars on current version");

    // Down again, edit meanwhile, restart: the sidecars are behind and get
    // the new version.
    let mut operator = operator;
    operator.kill().await;
    std::fs::write(dir.join("manifests/policy.yaml"), POLICY.replace(r#"deny: ["blocked-*"]"#, r#"deny: ["x-*"]"#))
        .unwrap();
    let operator = start_operator(&dir, &listen, &["--resume-grace", "0s"]).await;
    wait_for("3 sidecars SYNCED on the new version", WAIT, || all_synced(&operator, 3)).await;
    let status = operator.get("/status").await;
    assert_eq!(status["pushes"], 3, "one push per sidecar: {status}");
    for (s, before) in fabric.iter().zip(&applied_before) {
        let config = config_of(s).await;
        assert_eq!(config["applied_total"].as_u64(), before.as_u64().map(|n| n + 1), "{}: {config}", s.node_id);
    }
    wait_for("routes still converged", WAIT, converged).await;
}

/// Every flag works in the mode it is given or is refused at start naming
/// it: a local-mode flag in cluster mode (no `--manifests`) is not
/// silently ignored.
#[test]
fn flags_of_the_other_mode_are_refused_by_name() {
    let run = |args: &[&str]| {
        std::process::Command::new(env!("CARGO_BIN_EXE_fabric-operator"))
            .arg("run")
            .args(args)
            .env("KUBECONFIG", "/nonexistent")
            .output()
            .unwrap()
    };
    for (args, named) in [
        (&["--insecure-plaintext", "--no-webhook", "--resume-grace", "5s"][..], "--resume-grace"),
        (
            &["--insecure-plaintext", "--no-webhook", "--token-file", "t", "--state-dir", "d"][..],
            "--token-file, --state-dir",
        ),
        (&["--insecure-plaintext", "--no-webhook", "--forget-disconnected"][..], "--forget-disconnected"),
        (&["--insecure-plaintext", "--no-webhook", "--poll-interval", "1s"][..], "--poll-interval"),
        (&["--insecure-plaintext", "--no-webhook", "--allow-unauthenticated"][..], "--allow-unauthenticated"),
        (&["--manifests", "m", "--insecure-plaintext", "--namespace", "x"][..], "--namespace"),
    ] {
        let output = run(args);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(stderr.contains(named), "{args:?} must name {named}: {stderr}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_is_on_by_default_and_tokens_are_checked() {
    use rcgen::{BasicConstraints, CertificateParams, IsCa, KeyPair};
    let dir = scratch("tls");

    // Neither TLS files nor --insecure-plaintext: refuses to start.
    let refused = std::process::Command::new(env!("CARGO_BIN_EXE_fabric-operator"))
        .arg("run")
        .arg("--manifests")
        .arg(dir.join("manifests"))
        .arg("--token-file")
        .arg(dir.join("token"))
        .args(["--listen", "127.0.0.1:0"])
        .output()
        .unwrap();
    assert_eq!(refused.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&refused.stderr).contains("--insecure-plaintext"));

    let ca_key = KeyPair::generate().unwrap();
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca = ca_params.self_signed(&ca_key).unwrap();
    let issuer = rcgen::Issuer::new(ca_params, ca_key);
    let key = KeyPair::generate().unwrap();
    let cert = CertificateParams::new(vec!["127.0.0.1".to_string(), "localhost".to_string()])
        .unwrap()
        .signed_by(&key, &issuer)
        .unwrap();
    std::fs::write(dir.join("ca.pem"), ca.pem()).unwrap();
    std::fs::write(dir.join("operator.pem"), cert.pem()).unwrap();
    std::fs::write(dir.join("operator.key"), key.serialize_pem()).unwrap();
    std::fs::write(dir.join("wrong-token"), "not-the-token").unwrap();

    let tls = [
        "--tls-cert",
        &dir.join("operator.pem").display().to_string(),
        "--tls-key",
        &dir.join("operator.key").display().to_string(),
        "--resume-grace",
        "0s",
    ]
    .map(str::to_string);
    let tls: Vec<&str> = tls.iter().map(String::as_str).collect();
    let operator = start_operator_with(&dir, "127.0.0.1:0", &tls).await;
    let url = format!("https://127.0.0.1:{}", operator.grpc.port());
    let ca_path = dir.join("ca.pem").display().to_string();
    let token = dir.join("token").display().to_string();
    let wrong = dir.join("wrong-token").display().to_string();
    let _s1 = sidecar_with(
        &dir,
        &url,
        "s1",
        &["mesh=test"],
        &["svc-s1"],
        &["--operator-ca", &ca_path, "--operator-token-file", &token],
    )
    .await;
    let _s2 = sidecar_with(
        &dir,
        &url,
        "s2",
        &["mesh=test"],
        &["svc-s2"],
        &["--operator-ca", &ca_path, "--operator-token-file", &wrong],
    )
    .await;
    wait_for("s1 SYNCED over TLS", WAIT, || all_synced(&operator, 1)).await;
    wait_for("s2 refused for its token", WAIT, || async {
        let log = std::fs::read_to_string(dir.join("s2/sidecar.log")).unwrap_or_default();
        if log.contains("invalid token") { Ok(()) } else { Err(log) }
    })
    .await;
    let list = operator.sidecars().await;
    assert_eq!(list.len(), 1, "only s1 registered: {list:?}");
    assert_eq!(list[0]["sidecar"], "fabric/s1");
}

/// RoutePolicy requiring signatures, and one operator-managed RouteKey per
/// node rotating every `interval`.
fn signed_fabric(dir: &Path, nodes: &[&str], interval: &str, overlap: &str) {
    let policy = POLICY.replace("  import:\n", "  security: {requireSignatures: true}\n  import:\n");
    std::fs::write(dir.join("manifests/policy.yaml"), policy).unwrap();
    let mut keys = String::new();
    for node in nodes {
        keys.push_str(&format!(
            "---\napiVersion: routing.fabric.dev/v1alpha1\nkind: RouteKey\nmetadata: {{name: {node}, namespace: fabric}}\n\
             spec: {{nodeId: {node}, rotationInterval: {interval}, overlap: {overlap}}}\n"
        ));
    }
    std::fs::write(dir.join("manifests/keys.yaml"), keys).unwrap();
}

/// Rotations completed per RouteKey, from `/status`.
async fn rotations(operator: &LocalOperator) -> Vec<u64> {
    let status = operator.get("/status").await;
    status["keyRotation"]
        .as_object()
        .map(|m| m.values().map(|r| r["rotations"].as_u64().unwrap_or(0)).collect())
        .unwrap_or_default()
}

async fn rejects(sidecar: &SidecarProcess) -> (Value, u64) {
    let stats = sidecar.get_json("/stats").await.unwrap();
    let engine = &stats["engine"];
    (engine["announcement_rejects_total"].clone(), engine["announcements_accepted"].as_u64().unwrap_or(0))
}

async fn route_count(sidecar: &SidecarProcess, expected: usize) -> Result<(), String> {
    let routes = sidecar.get_json("/routes").await?;
    let count = routes.as_array().map_or(0, Vec::len);
    if count == expected { Ok(()) } else { Err(format!("{}: {count} routes of {expected}", sidecar.node_id)) }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_rotate_under_continuous_announcements_with_zero_rejects() {
    const NODES: [&str; 3] = ["s1", "s2", "s3"];
    const PER_NODE: usize = 100;
    let dir = scratch("rotation");
    signed_fabric(&dir, &NODES, "2s", "1s");
    let operator = start_operator(&dir, "127.0.0.1:0", &["--resume-grace", "0s", "--rotation-tick", "100ms"]).await;
    let mut fabric = Vec::new();
    for id in NODES {
        let destinations: Vec<String> = (0..PER_NODE).map(|i| format!("svc-{id}-{i}")).collect();
        let destinations: Vec<&str> = destinations.iter().map(String::as_str).collect();
        fabric.push(sidecar(&dir, operator.grpc, id, &["mesh=test"], &destinations).await);
    }
    let everything = |sidecar| route_count(sidecar, NODES.len() * PER_NODE);
    // Start-up: signatures are required before the first keys are active,
    // so unsigned routes are refused until then; the baseline is taken
    // once every node signs and every route is in every table.
    wait_for("first keys active and every route signed in", WAIT, || async {
        if rotations(&operator).await.iter().filter(|r| **r >= 1).count() < NODES.len() {
            return Err("keys not active yet".into());
        }
        for s in &fabric {
            everything(s).await?;
        }
        Ok(())
    })
    .await;
    let mut baseline = Vec::new();
    for s in &fabric {
        baseline.push(rejects(s).await);
    }
    let started: Vec<u64> = rotations(&operator).await;

    // Every activation re-advertises the owner's whole table, signed with
    // the new key: 200 announcements to each neighbor per rotation.
    wait_for("three more rotations of every key", Duration::from_secs(60), || async {
        let now = rotations(&operator).await;
        if now.iter().zip(&started).all(|(n, s)| *n >= s + 3) { Ok(()) } else { Err(format!("{now:?}")) }
    })
    .await;
    for (s, (rejects_before, accepted_before)) in fabric.iter().zip(&baseline) {
        let (rejects_after, accepted_after) = rejects(s).await;
        assert_eq!(&rejects_after, rejects_before, "{}: announcements rejected during rotation", s.node_id);
        assert!(
            accepted_after >= accepted_before + 3 * 2 * PER_NODE as u64,
            "{}: re-signed announcements flowed ({accepted_before} -> {accepted_after})",
            s.node_id
        );
        everything(s).await.unwrap();
    }
    let status = operator.get("/status").await;
    for node in NODES {
        let rotation = &status["keyRotation"][format!("fabric/{node}")];
        assert!(rotation["error"].is_null(), "{rotation}");
        assert!(rotation["activeKeyId"].as_str().is_some_and(|k| k.starts_with('k')), "{rotation}");
    }
}

/// A sidecar's session-end counters, summed over every reason.
async fn session_ends(sidecar: &SidecarProcess) -> u64 {
    let metrics = sidecar.get("/metrics").await.unwrap().body;
    metrics
        .lines()
        .filter(|l| l.starts_with("fabric_session_ends_total{"))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum::<f64>() as u64
}

/// Peer TLS from the operator: sidecars ask in their Hello, get a
/// certificate naming their node id, peer only over mutual TLS, and take a
/// renewed certificate before the first expires without a session ending.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operator_issued_peer_certificates_are_renewed_without_dropping_sessions() {
    let dir = scratch("peer-tls");
    // Renewed when a third of the 6 s is left: every ~4 s.
    let extra = ["--resume-grace", "0s", "--peer-certificates", "--peer-certificate-lifetime", "6s"];
    let operator = start_operator(&dir, "127.0.0.1:0", &extra).await;
    let url = format!("http://{}", operator.grpc);
    let token = dir.join("token").display().to_string();
    let args = ["--operator-token-file", token.as_str(), "--peer-tls-from-operator"];
    let fabric = [
        sidecar_with(&dir, &url, "t1", &["mesh=test"], &["svc-t1"], &args).await,
        sidecar_with(&dir, &url, "t2", &["mesh=test"], &["svc-t2"], &args).await,
    ];
    wait_for("routes over mutual TLS", WAIT, || async {
        has_route(&fabric[0], "svc-t2").await?;
        has_route(&fabric[1], "svc-t1").await
    })
    .await;
    let first: Vec<Value> = certificates_in_use(&fabric).await;
    // Both dial each other at first; the collision closes one connection.
    // What counts is that nothing ends from here on.
    let mut before = Vec::new();
    for sidecar in &fabric {
        before.push((session_ends(sidecar).await, sessions_established(sidecar).await));
    }
    for (sidecar, certificate) in fabric.iter().zip(&first) {
        assert_eq!(certificate["source"], "operator", "{}: {certificate}", sidecar.node_id);
    }
    wait_for("every sidecar installed a renewed certificate", WAIT, || async {
        for sidecar in &fabric {
            let certificate = config_of(sidecar).await["peer_certificate"].clone();
            if certificate["installed_total"].as_u64() < Some(2) {
                return Err(format!("{}: {certificate}", sidecar.node_id));
            }
        }
        Ok(())
    })
    .await;
    let renewed: Vec<Value> = certificates_in_use(&fabric).await;
    for (((sidecar, old), new), counts) in fabric.iter().zip(&first).zip(&renewed).zip(&before) {
        assert_ne!(old["fingerprint"], new["fingerprint"], "{}: a new certificate", sidecar.node_id);
        let now = (session_ends(sidecar).await, sessions_established(sidecar).await);
        assert_eq!(&now, counts, "{}: no session ended or started across the renewal", sidecar.node_id);
    }
    let metrics = operator_metrics(&operator).await;
    let mut operator = operator;
    assert!(
        metrics.lines().any(|l| l.starts_with("fabric_operator_peer_certificates_issued_total ")
            && l.rsplit(' ').next().and_then(|v| v.parse::<f64>().ok()).is_some_and(|v| v >= 4.0)),
        "{metrics}"
    );
    has_route(&fabric[0], "svc-t2").await.unwrap();

    // The operator goes away and t1 restarts: its key and last certificate
    // come back from its state dir, so it peers with t2 again without the
    // operator.
    operator.kill().await;
    let mut fabric = fabric;
    fabric[0].terminate().await.unwrap();
    let mut args: Vec<String> =
        ["--operator", url.as_str(), "--namespace", "fabric", "--operator-initial-timeout", "1s"]
            .iter()
            .map(|a| a.to_string())
            .collect();
    args.extend(
        ["--operator-token-file", token.as_str(), "--peer-tls-from-operator", "--label", "mesh=test"].map(String::from),
    );
    // No --config: the config comes back from the state dir (the
    // operator's last one, with t2's address).
    let restarted =
        SidecarProcess::spawn_with(&sidecar_exe(), "t1".into(), &dir.join("t1"), None, &args).await.unwrap();
    let certificate = config_of(&restarted).await["peer_certificate"].clone();
    assert_eq!(certificate["source"], "operator", "the kept certificate is in use: {certificate}");
    wait_for("t1 peers with t2 over mutual TLS, the operator gone", WAIT, || async {
        has_route(&restarted, "svc-t2").await?;
        has_route(&fabric[1], "svc-t1").await
    })
    .await;
}

async fn sessions_established(sidecar: &SidecarProcess) -> u64 {
    let peers = sidecar.get_json("/peers").await.unwrap();
    peers.as_array().unwrap().iter().filter_map(|p| p["sessions_established_total"].as_u64()).sum()
}

async fn certificates_in_use(fabric: &[SidecarProcess]) -> Vec<Value> {
    let mut certificates = Vec::new();
    for sidecar in fabric {
        certificates.push(config_of(sidecar).await["peer_certificate"].clone());
    }
    certificates
}

async fn operator_metrics(operator: &LocalOperator) -> String {
    fabric_io::local_http::get(operator.http, "/metrics").await.unwrap().body
}
