//! Real processes for the multi-process tests and benches: where the
//! sidecar binary is, scratch directories, and a local-mode operator
//! (`fabric-operator run --manifests`). The sidecar processes themselves
//! are `fabric_sidecar::runtime::lab::SidecarProcess`, which the
//! `routing-sidecar lab` command uses too.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, SystemTime};

use fabric_io::local_http;
use serde_json::Value;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

/// The `routing-sidecar` binary the multi-process tests and benches run.
/// The lookup rule, the same for every package:
///
/// 1. `FABRIC_SIDECAR_EXE`, when set (it must name a file);
/// 2. else `target/<profile>/routing-sidecar`: the directory above the
///    `deps/` directory cargo puts test and bench binaries in.
///
/// Cargo builds that binary before the routing-sidecar package's own tests
/// (it is the file their `CARGO_BIN_EXE_routing-sidecar` names), but not
/// for other packages: the operator's tests need `cargo build -p
/// routing-sidecar` first (`cargo test --workspace` builds it). A binary
/// older than the sidecar's sources gets a warning on stderr.
pub fn try_sidecar_exe() -> Result<PathBuf, String> {
    if let Some(path) = std::env::var_os("FABRIC_SIDECAR_EXE") {
        let path = PathBuf::from(path);
        return if path.is_file() {
            Ok(path)
        } else {
            Err(format!("FABRIC_SIDECAR_EXE={}: no such file", path.display()))
        };
    }
    let me = std::env::current_exe().map_err(|e| format!("current_exe: {e}"))?;
    let profile_dir = me
        .parent()
        .and_then(|deps| if deps.ends_with("deps") { deps.parent() } else { Some(deps) })
        .ok_or_else(|| format!("cannot tell the target directory from {}", me.display()))?;
    let exe = profile_dir.join(format!("routing-sidecar{}", std::env::consts::EXE_SUFFIX));
    if !exe.is_file() {
        let profile = profile_dir.file_name().and_then(|n| n.to_str()).unwrap_or("debug");
        let flag = if profile == "release" { " --release" } else { "" };
        return Err(format!(
            "{} does not exist: build it first (cargo build{flag} -p routing-sidecar), \
             or point FABRIC_SIDECAR_EXE at a routing-sidecar binary",
            exe.display()
        ));
    }
    if let Some((source, modified)) = newest_sidecar_source()
        && let Ok(built) = exe.metadata().and_then(|m| m.modified())
        && built < modified
    {
        eprintln!(
            "warning: {} is older than {} — rebuild it (cargo build{} -p routing-sidecar) \
             or the results are for old code",
            exe.display(),
            source.display(),
            if profile_dir.ends_with("release") { " --release" } else { "" },
        );
    }
    Ok(exe)
}

/// [`try_sidecar_exe`] for tests: panics with the reason.
pub fn sidecar_exe() -> PathBuf {
    try_sidecar_exe().unwrap_or_else(|reason| panic!("{reason}"))
}

/// The most recently modified file under `routing-sidecar/src/` (this
/// crate lives in `routing-sidecar/testkit/`).
fn newest_sidecar_source() -> Option<(PathBuf, SystemTime)> {
    let mut newest: Option<(PathBuf, SystemTime)> = None;
    let mut dirs = vec![Path::new(env!("CARGO_MANIFEST_DIR")).join("../src")];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).ok()?.flatten() {
            let path = entry.path();
            let Ok(meta) = entry.metadata() else { continue };
            if meta.is_dir() {
                dirs.push(path);
            } else if let Ok(modified) = meta.modified()
                && newest.as_ref().is_none_or(|(_, t)| modified > *t)
            {
                newest = Some((path, modified));
            }
        }
    }
    newest
}

/// `parent/NAME-PID`, emptied: a directory of one test's files (logs,
/// state dirs) that a failed run leaves behind for reading. Not created;
/// whoever writes into it creates it.
pub fn scratch_in(parent: &Path, name: &str) -> PathBuf {
    let dir = parent.join(format!("{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

/// [`scratch_in`] the system's temporary directory, as `fabric-it-NAME-PID`.
pub fn scratch(name: &str) -> PathBuf {
    scratch_in(&std::env::temp_dir(), &format!("fabric-it-{name}"))
}

/// A real operator in local mode (`fabric-operator run --manifests
/// DIR/manifests`), its log in `DIR/operator.log`; killed when dropped.
pub struct LocalOperator {
    pub child: Child,
    pub grpc: SocketAddr,
    pub http: SocketAddr,
}

impl LocalOperator {
    /// Starts `exe run --manifests DIR/manifests ARGS...` and returns once
    /// it printed the addresses it bound (within 20 s).
    pub async fn spawn(exe: &Path, dir: &Path, args: &[&str]) -> LocalOperator {
        let log = std::fs::OpenOptions::new().create(true).append(true).open(dir.join("operator.log")).unwrap();
        let mut child = Command::new(exe)
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
            .unwrap_or_else(|e| panic!("spawn {}: {e}", exe.display()));
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let line = tokio::time::timeout(Duration::from_secs(20), lines.next_line())
            .await
            .expect("operator listening line within 20 s")
            .unwrap()
            .unwrap_or_else(|| panic!("operator exited (see {}/operator.log)", dir.display()));
        let event: Value = serde_json::from_str(&line).unwrap();
        // Keep draining stdout so the operator never blocks on a full pipe.
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        let addr = |key: &str| event[key].as_str().unwrap().parse().unwrap();
        LocalOperator { grpc: addr("grpc"), http: addr("http"), child }
    }

    /// `GET path` on the operator's HTTP API; panics unless 200 and JSON.
    pub async fn get(&self, path: &str) -> Value {
        let response = local_http::get(self.http, path).await.unwrap();
        assert_eq!(response.status, 200, "{path}: {}", response.body);
        response.json().unwrap()
    }

    /// `/sidecars`.
    pub async fn sidecars(&self) -> Vec<Value> {
        self.get("/sidecars").await.as_array().cloned().unwrap_or_default()
    }

    /// SIGKILL.
    pub async fn kill(&mut self) {
        self.child.kill().await.unwrap();
    }
}
