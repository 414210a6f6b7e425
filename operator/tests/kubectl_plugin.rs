//! `kubectl-fabric` against a running local fabric: a real `fabric-operator
//! run --manifests` and three real `routing-sidecar run --operator`
//! processes on 127.0.0.1 (ports chosen by the OS, every wait bounded), then
//! the built plugin binary for `routes`, `explain`, `sync` (also through
//! `--pod`, with a stand-in `kubectl` that "forwards" to the real APIs) and
//! `analyze` (compared with `fabric-operator analyze`).
//!
//! The sidecar binary is the workspace's `target/<profile>/routing-sidecar`
//! (`cargo build -p routing-sidecar` first when running only this test).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Output, Stdio};
use std::time::Duration;

use fabric_sidecar::runtime::lab::SidecarProcess;
use fabric_testkit::builders::{MESH_NEIGHBORS as NEIGHBORS, OperatorFedSidecar};
use fabric_testkit::process::{LocalOperator, scratch_in, sidecar_exe};
use fabric_testkit::wait::wait_for;
use serde_json::Value;
use tokio::process::Command;

const POLICY: &str = r#"
apiVersion: routing.fabric.dev/v1alpha1
kind: RoutePolicy
metadata: {name: default, namespace: fabric}
spec:
  sidecarSelector: {matchLabels: {mesh: test}}
"#;

const PLUGIN: &str = env!("CARGO_BIN_EXE_kubectl-fabric");
/// A plaintext, unauthenticated local operator.
const LOCAL_ARGS: &[&str] = &[
    "--insecure-plaintext",
    "--allow-unauthenticated",
    "--listen",
    "127.0.0.1:0",
    "--http",
    "127.0.0.1:0",
    "--resume-grace",
    "0s",
    "--poll-interval",
    "100ms",
];
const WAIT: Duration = Duration::from_secs(30);

fn scratch(name: &str) -> PathBuf {
    let dir = scratch_in(Path::new(env!("CARGO_TARGET_TMPDIR")), &format!("kubectl-plugin-{name}"));
    std::fs::create_dir_all(dir.join("manifests")).unwrap();
    std::fs::write(dir.join("manifests/neighbors.yaml"), NEIGHBORS).unwrap();
    std::fs::write(dir.join("manifests/policy.yaml"), POLICY).unwrap();
    dir
}

async fn sidecar(dir: &Path, operator: SocketAddr, id: &str) -> SidecarProcess {
    let sidecar = OperatorFedSidecar::new(id, format!("http://{operator}"))
        .originate(&[format!("svc-{id}")])
        .labels(&["mesh=test"]);
    SidecarProcess::spawn(&sidecar_exe(), &sidecar.config(), &dir.join(id), &sidecar.args()).await.unwrap()
}

/// Runs the plugin (bounded); `path_prefix` goes in front of PATH (the
/// stand-in kubectl).
async fn plugin_with(args: &[&str], path_prefix: Option<&Path>, env: &[(&str, String)]) -> Output {
    let mut command = Command::new(PLUGIN);
    command.args(args).stdin(Stdio::null()).kill_on_drop(true);
    if let Some(prefix) = path_prefix {
        let path = std::env::var_os("PATH").unwrap_or_default();
        let mut dirs = vec![prefix.to_path_buf()];
        dirs.extend(std::env::split_paths(&path));
        command.env("PATH", std::env::join_paths(dirs).unwrap());
    }
    for (key, value) in env {
        command.env(key, value);
    }
    tokio::time::timeout(Duration::from_secs(60), command.output())
        .await
        .unwrap_or_else(|_| panic!("kubectl-fabric {args:?} took over 60 s"))
        .expect("run kubectl-fabric")
}

async fn plugin(args: &[&str]) -> Output {
    plugin_with(args, None, &[]).await
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

#[track_caller]
fn assert_exit(output: &Output, code: i32) {
    assert_eq!(
        output.status.code(),
        Some(code),
        "exit status\n--- stdout ---\n{}\n--- stderr ---\n{}",
        stdout(output),
        stderr(output)
    );
}

/// The row of a table whose first cell is `first`, split on blanks.
fn row<'a>(table: &'a str, first: &str) -> Vec<&'a str> {
    table
        .lines()
        .map(|l| l.split_whitespace().collect::<Vec<_>>())
        .find(|cells| cells.first() == Some(&first))
        .unwrap_or_else(|| panic!("no row {first} in\n{table}"))
}

/// A stand-in `kubectl`: logs its arguments, then either fails like kubectl
/// (`FAKE_KUBECTL_FAIL`) or prints the forwarding line of the real address
/// `FAKE_FORWARD_PORT` and waits to be killed, its pid in
/// `FAKE_KUBECTL_PID`.
fn fake_kubectl(dir: &Path) -> PathBuf {
    let bin = dir.join("fake-bin");
    std::fs::create_dir_all(&bin).unwrap();
    let script = bin.join("kubectl");
    std::fs::write(
        &script,
        r#"#!/bin/sh
printf '%s\n' "$*" >> "$FAKE_KUBECTL_LOG"
if [ -n "$FAKE_KUBECTL_FAIL" ]; then
  echo "error: $FAKE_KUBECTL_FAIL" >&2
  exit 1
fi
echo $$ > "$FAKE_KUBECTL_PID"
echo "Forwarding from 127.0.0.1:$FAKE_FORWARD_PORT -> 7480"
exec sleep 60
"#,
    )
    .unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    bin
}

/// Whether process `pid` is gone (or a zombie nobody reaped yet).
fn process_gone(pid: &str) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        Ok(stat) => stat.rsplit_once(')').is_some_and(|(_, rest)| rest.trim_start().starts_with('Z')),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_plugin_reads_a_running_local_fabric() {
    let dir = scratch("fabric");
    let operator = LocalOperator::spawn(Path::new(env!("CARGO_BIN_EXE_fabric-operator")), &dir, LOCAL_ARGS).await;
    let mut fabric = Vec::new();
    for id in ["s1", "s2", "s3"] {
        fabric.push(sidecar(&dir, operator.grpc, id).await);
    }
    wait_for("3 sidecars SYNCED", WAIT, || async {
        let list = operator.sidecars().await;
        let synced = list.iter().filter(|s| s["sync"] == "SYNCED" && s["connected"] == true).count();
        if synced == 3 { Ok(()) } else { Err(Value::Array(list).to_string()) }
    })
    .await;
    // Converged: every sidecar routes to every destination, and s1 has both
    // candidates for svc-s3 (direct, and through s2).
    wait_for("routes converge", WAIT, || async {
        for s in &fabric {
            for other in ["s1", "s2", "s3"] {
                if s.next_hop(&format!("svc-{other}")).await?.is_none() {
                    return Err(format!("{} has no route to svc-{other}", s.node_id));
                }
            }
        }
        let trace = fabric[0].get_json("/routes/svc-s3/explain").await?;
        let candidates = trace["candidates"].as_array().map_or(0, Vec::len);
        if candidates == 2 { Ok(()) } else { Err(trace.to_string()) }
    })
    .await;
    let s1_api = fabric[0].api.to_string();
    let operator_http = operator.http.to_string();

    // sync: every sidecar SYNCED, its acknowledged version the current one.
    let output = plugin(&["sync", "--operator", &operator_http]).await;
    assert_exit(&output, 0);
    let table = stdout(&output);
    assert!(
        table.starts_with("NAME       NODE  CONNECTED  CURRENT VERSION   ACKED             SYNC    LAST NACK\n"),
        "{table}"
    );
    for id in ["s1", "s2", "s3"] {
        let cells = row(&table, &format!("fabric/{id}"));
        assert_eq!(cells[1..3], [id, "yes"], "{table}");
        assert_eq!(cells[3], cells[4], "current version acknowledged: {table}");
        assert_eq!(cells[5..], ["SYNCED", "-"], "{table}");
    }
    assert_eq!(table.lines().count(), 4, "{table}");
    let output = plugin(&["sync", "--operator", &operator_http, "-o", "json"]).await;
    assert_exit(&output, 0);
    let json: Value = serde_json::from_str(&stdout(&output)).expect("sync -o json is JSON");
    assert_eq!(json.as_array().map(Vec::len), Some(3), "{json}");
    assert!(json.as_array().unwrap().iter().all(|s| s["sync"] == "SYNCED"), "{json}");

    // status: healthy, from the operator's /status and /sidecars.
    let output = plugin(&["status", "--operator", &operator_http]).await;
    assert_exit(&output, 0);
    let text = stdout(&output);
    assert!(
        text.starts_with(&format!("Operator: version {}, leading\nSidecars: 3/3 SYNCED\n", env!("CARGO_PKG_VERSION"))),
        "{text}"
    );
    assert!(text.ends_with("Status: healthy\n"), "{text}");

    // routes: s1's table, the others' destinations through their own node.
    let output = plugin(&["routes", "--sidecar", &s1_api]).await;
    assert_exit(&output, 0);
    let table = stdout(&output);
    assert!(table.starts_with("DESTINATION  NEXT HOP  PATH     METRICS"), "{table}");
    assert_eq!(row(&table, "svc-s1")[1..3], ["s1", "(local)"], "{table}");
    assert_eq!(row(&table, "svc-s2")[1..3], ["s2", "s2"], "{table}");
    assert_eq!(row(&table, "svc-s3")[1..3], ["s3", "s3"], "{table}");
    assert!(row(&table, "svc-s2")[3].starts_with("cost="), "{table}");
    let output = plugin(&["routes", "--sidecar", &s1_api, "--output", "json"]).await;
    assert_exit(&output, 0);
    let json: Value = serde_json::from_str(&stdout(&output)).expect("routes -o json is JSON");
    assert_eq!(json, fabric[0].get_json("/routes").await.unwrap(), "raw passthrough of /routes");

    // explain: s3 direct wins, the path through s2 lost.
    let output = plugin(&["explain", "svc-s3", "--sidecar", &s1_api]).await;
    assert_exit(&output, 0);
    let trace = stdout(&output);
    assert!(trace.starts_with("Destination:  svc-s3\nWinner:       s3 (path-vector)\n"), "{trace}");
    assert!(trace.contains("\n  * s3  SELECTED\n        path s3  cost="), "{trace}");
    assert!(trace.contains("\n  - s2  LOST to s3 on "), "{trace}");
    assert!(trace.contains("\n        path s2 > s3  cost="), "{trace}");
    let output = plugin(&["explain", "svc-s3", "--sidecar", &s1_api, "-o", "json"]).await;
    assert_exit(&output, 0);
    let json: Value = serde_json::from_str(&stdout(&output)).expect("explain -o json is JSON");
    assert_eq!(json["selected"], "s3", "{json}");
    let output = plugin(&["explain", "svc-nowhere", "--sidecar", &s1_api]).await;
    assert_exit(&output, 1);
    assert!(stderr(&output).contains("nothing known about svc-nowhere"), "{}", stderr(&output));
    assert!(stdout(&output).is_empty());

    // --pod: kubectl port-forward runs for the command and is stopped after.
    let bin = fake_kubectl(&dir);
    let log = dir.join("kubectl.log");
    let pid_file = dir.join("kubectl.pid");
    let fake_env = |port: u16| {
        vec![
            ("FAKE_KUBECTL_LOG", log.display().to_string()),
            ("FAKE_KUBECTL_PID", pid_file.display().to_string()),
            ("FAKE_FORWARD_PORT", port.to_string()),
        ]
    };
    let output = plugin_with(&["routes", "--pod", "fabric/s1"], Some(&bin), &fake_env(fabric[0].api.port())).await;
    assert_exit(&output, 0);
    assert_eq!(row(&stdout(&output), "svc-s2")[1], "s2", "{}", stdout(&output));
    let pid = std::fs::read_to_string(&pid_file).unwrap().trim().to_string();
    wait_for("kubectl port-forward stopped", Duration::from_secs(5), || async {
        if process_gone(&pid) { Ok(()) } else { Err(format!("pid {pid} still runs")) }
    })
    .await;
    let output = plugin_with(
        &["sync", "--pod", "fabric-system/deployment/fabric-fabric-routing"],
        Some(&bin),
        &fake_env(operator.http.port()),
    )
    .await;
    assert_exit(&output, 0);
    assert_eq!(row(&stdout(&output), "fabric/s2")[5], "SYNCED", "{}", stdout(&output));
    let output = plugin_with(&["explain", "svc-s2", "--pod", "s1"], Some(&bin), &fake_env(fabric[0].api.port())).await;
    assert_exit(&output, 0);
    assert!(stdout(&output).contains("Winner:       s2 (path-vector)"), "{}", stdout(&output));
    let logged = std::fs::read_to_string(&log).unwrap();
    assert_eq!(
        logged.lines().collect::<Vec<_>>(),
        [
            "-n fabric port-forward pod/s1 :7480 --address 127.0.0.1",
            "-n fabric-system port-forward deployment/fabric-fabric-routing :8080 --address 127.0.0.1",
            "port-forward pod/s1 :7480 --address 127.0.0.1",
        ]
    );
    // kubectl failing (no such pod) is reported with its message.
    let mut env = fake_env(1);
    env.push(("FAKE_KUBECTL_FAIL", r#"pods "nope" not found"#.to_string()));
    let output = plugin_with(&["routes", "--pod", "fabric/nope"], Some(&bin), &env).await;
    assert_exit(&output, 3);
    let message = stderr(&output);
    assert!(message.contains("kubectl -n fabric port-forward pod/nope :7480 --address 127.0.0.1"), "{message}");
    assert!(message.contains(r#"error: pods "nope" not found"#), "{message}");

    // status names a sidecar that went away, and exits 1.
    fabric[2].kill().await;
    let text = wait_for("status reports s3", WAIT, || async {
        let output = plugin(&["status", "--operator", &operator_http]).await;
        let text = stdout(&output);
        if output.status.code() == Some(1) && text.contains("disconnected: fabric/s3") { Ok(text) } else { Err(text) }
    })
    .await;
    assert!(text.contains("Sidecars: 2/3 SYNCED") || text.contains("Sidecars: 3/3 SYNCED"), "{text}");
    assert!(text.ends_with("Status: needs attention\n"), "{text}");
}

/// A local port nobody listens on.
fn closed_port() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    drop(listener);
    addr
}

#[tokio::test]
async fn an_unreachable_address_exits_3_naming_it_and_the_port_forward() {
    let addr = closed_port();
    for args in [
        vec!["routes", "--sidecar", &addr],
        vec!["explain", "svc", "--sidecar", &addr],
        vec!["routes", "--sidecar", &addr, "-o", "json"],
    ] {
        let output = plugin(&args).await;
        assert_exit(&output, 3);
        let message = stderr(&output);
        assert!(message.contains(&format!("cannot reach the sidecar API at {addr}")), "{args:?}: {message}");
        assert!(message.contains("kubectl -n NAMESPACE port-forward pod/POD 7480"), "{args:?}: {message}");
        assert!(stdout(&output).is_empty(), "{args:?}");
    }
    let output = plugin(&["sync", "--operator", &addr]).await;
    assert_exit(&output, 3);
    let message = stderr(&output);
    assert!(message.contains(&format!("cannot reach the operator HTTP API at {addr}")), "{message}");
    assert!(
        message.contains("kubectl -n fabric-system port-forward deployment/fabric-fabric-routing 8080"),
        "{message}"
    );

    // Usage errors: 2.
    assert_exit(&plugin(&["routes", "--sidecar", "127.0.0.1"]).await, 2);
    assert_exit(&plugin(&["routes", "--sidecar", &addr, "--pod", "fabric/s1"]).await, 2);
    assert_exit(&plugin(&["routes", "--output", "yaml"]).await, 2);
}

#[tokio::test]
async fn analyze_is_fabric_operator_analyze() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let dir = scratch("analyze");
    let cases = [
        (root.join("examples/manifests"), 0),
        (root.join("examples/manifests-broken"), 1),
        (dir.join("manifests"), 0),
        (dir.join("does-not-exist"), 2),
    ];
    for (path, code) in &cases {
        let path = path.to_str().unwrap();
        for extra in [&[][..], &["--no-configs"][..]] {
            let mut args = vec!["analyze", "-f", path];
            args.extend_from_slice(extra);
            let ours = plugin(&args).await;
            let theirs = Command::new(env!("CARGO_BIN_EXE_fabric-operator")).args(&args).output().await.unwrap();
            assert_exit(&ours, *code);
            assert_eq!(ours.status.code(), theirs.status.code(), "{args:?}");
            assert_eq!(stdout(&ours), stdout(&theirs), "{args:?}");
            if *code == 2 {
                assert!(stderr(&ours).starts_with("kubectl fabric analyze: "), "{}", stderr(&ours));
            }
        }
        if *code != 2 {
            let output = plugin(&["analyze", "-f", path, "-o", "json"]).await;
            assert_exit(&output, *code);
            let json: Value = serde_json::from_str(&stdout(&output)).expect("analyze -o json is JSON");
            assert_eq!(json["hasErrors"], *code == 1, "{json}");
            assert!(json["compilation"]["conditions"].is_object(), "{json}");
        }
    }
}
