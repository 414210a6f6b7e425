//! What the multi-process tests share: the sidecar binary, a real
//! `fabric-operator run --manifests` process, bounded waits.

#![allow(dead_code)] // each test file uses a part

pub mod real_api;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use fabric_io::local_http;
use serde_json::Value;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

/// Every sidecar labelled `mesh: test` peers with every other one.
pub const MESH_NEIGHBORS: &str = r#"
apiVersion: routing.fabric.dev/v1alpha1
kind: NeighborPolicy
metadata: {name: mesh, namespace: fabric}
spec:
  sidecarSelector: {matchLabels: {mesh: test}}
  neighbors:
    - selector: {matchLabels: {mesh: test}}
"#;

/// The workspace's `target/<profile>/routing-sidecar`.
pub fn sidecar_exe() -> PathBuf {
    let test_exe = std::env::current_exe().expect("test exe");
    let dir = test_exe.parent().and_then(Path::parent).expect("target/<profile>");
    let exe = dir.join(format!("routing-sidecar{}", std::env::consts::EXE_SUFFIX));
    assert!(exe.exists(), "{} is missing: run `cargo build -p routing-sidecar` first", exe.display());
    exe
}

/// A real operator in local mode, its log in `DIR/operator.log`.
pub struct Operator {
    pub child: Child,
    pub grpc: SocketAddr,
    pub http: SocketAddr,
}

impl Operator {
    /// `fabric-operator run --manifests DIR/manifests ARGS...`; returns once
    /// it printed the addresses it bound.
    pub async fn spawn_args(dir: &Path, args: &[&str]) -> Operator {
        let log = std::fs::OpenOptions::new().create(true).append(true).open(dir.join("operator.log")).unwrap();
        let mut child = Command::new(env!("CARGO_BIN_EXE_fabric-operator"))
            .arg("run")
            .arg("--manifests")
            .arg(dir.join("manifests"))
            .args(args)
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(log))
            .kill_on_drop(true)
            .spawn()
            .expect("spawn fabric-operator");
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let line = tokio::time::timeout(Duration::from_secs(20), lines.next_line())
            .await
            .expect("operator listening line within 20 s")
            .unwrap()
            .unwrap_or_else(|| panic!("operator exited (see {}/operator.log)", dir.display()));
        let event: Value = serde_json::from_str(&line).unwrap();
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        let addr = |key: &str| event[key].as_str().unwrap().parse().unwrap();
        Operator { grpc: addr("grpc"), http: addr("http"), child }
    }

    pub async fn get(&self, path: &str) -> Value {
        let response = local_http::get(self.http, path).await.unwrap();
        assert_eq!(response.status, 200, "{path}: {}", response.body);
        response.json().unwrap()
    }

    /// `/sidecars`.
    pub async fn sidecars(&self) -> Vec<Value> {
        self.get("/sidecars").await.as_array().cloned().unwrap_or_default()
    }

    pub async fn kill(&mut self) {
        self.child.kill().await.unwrap();
    }
}

/// Polls `check` every 100 ms until it returns `Ok`, for at most `timeout`;
/// panics with the last observation otherwise.
pub async fn wait_for<T, F, Fut>(what: &str, timeout: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, String>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        match check().await {
            Ok(value) => return value,
            Err(last) if Instant::now() >= deadline => panic!("timed out waiting for {what}; last: {last}"),
            Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
}
