//! Real sidecar processes on 127.0.0.1, for `routing-sidecar lab` and the
//! multi-process tests: spawn with OS-chosen ports, learn the ports from the
//! process's `listening` line, wire neighbors by pushing configs with their
//! addresses, and ask the local APIs.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

use fabric_core::config::SidecarConfig;
use fabric_core::ids::NodeId;
use fabric_engine::sim::Topology;
use fabric_io::local_http::{self, HttpError, HttpResponse};

/// Why a sidecar process or a lab could not be started, asked or stopped.
#[derive(Debug, thiserror::Error)]
pub enum LabError {
    /// A file or directory of the lab, or the sidecar executable.
    #[error("{}: {source}", path.display())]
    File {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    WriteToken(#[from] fabric_io::files::WriteError),
    #[error("random token: {0}")]
    RandomToken(#[source] getrandom::Error),
    #[error("{node}: no stdout")]
    NoStdout { node: NodeId },
    #[error("{node}: no listening line within 20 s (see {}/sidecar.log)", dir.display())]
    NoListeningLine { node: NodeId, dir: PathBuf },
    #[error("{node}: exited before listening (see {}/sidecar.log)", dir.display())]
    ExitedBeforeListening { node: NodeId, dir: PathBuf },
    #[error("{node}: stdout: {source}")]
    Stdout {
        node: NodeId,
        #[source]
        source: std::io::Error,
    },
    #[error("{line}: {source}")]
    ListeningLine {
        line: String,
        #[source]
        source: serde_json::Error,
    },
    #[error("no {key} in {line}")]
    NoAddress { key: &'static str, line: String },
    #[error(transparent)]
    Http(#[from] HttpError),
    #[error("GET {path}: {status} {body}")]
    Status { path: String, status: u16, body: String },
    #[error("{node}: SIGTERM: {source}")]
    Signal {
        node: NodeId,
        #[source]
        source: std::io::Error,
    },
    #[error("{node} did not exit on SIGTERM")]
    NoExit { node: NodeId },
    #[error("{node}: wait for the exit: {source}")]
    Wait {
        node: NodeId,
        #[source]
        source: std::io::Error,
    },
    #[error("{node}: config refused: {body}")]
    ConfigRefused { node: NodeId, body: String },
    /// `lagging` lists each node short of routes as `id: count/expected`.
    #[error("not converged after {timeout:?}: {}", lagging.join(", "))]
    NotConverged { timeout: Duration, lagging: Vec<String> },
}

/// For tests and benches that still report errors as text: `?` keeps working.
impl From<LabError> for String {
    fn from(error: LabError) -> String {
        error.to_string()
    }
}

/// One running `routing-sidecar run` process.
/// The sidecars' `RUST_LOG` unless a caller sets one: `FABRIC_LAB_LOG`,
/// else `info`.
fn default_log_filter() -> String {
    std::env::var("FABRIC_LAB_LOG").unwrap_or_else(|_| "info".into())
}

pub struct SidecarProcess {
    pub node_id: NodeId,
    pub child: Child,
    pub peer: SocketAddr,
    pub api: SocketAddr,
    /// The metrics listener, when started with `--metrics-listen`.
    pub metrics: Option<SocketAddr>,
    pub dir: PathBuf,
    pub config_path: PathBuf,
    /// The token `PUT /config` needs (`dir/api-token`); `None` for a
    /// sidecar fed by an operator, whose local API is read-only.
    pub api_token: Option<String>,
}

/// The local API token of the sidecar in `dir`: kept across restarts, made
/// (random, owner-only) the first time.
fn api_token(dir: &Path) -> Result<(PathBuf, String), LabError> {
    let path = dir.join("api-token");
    if let Ok(token) = std::fs::read_to_string(&path) {
        return Ok((path, token));
    }
    let mut bytes = [0u8; 16];
    getrandom::fill(&mut bytes).map_err(LabError::RandomToken)?;
    let token: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    fabric_io::files::write_private(&path, token.as_bytes())?;
    Ok((path, token))
}

impl SidecarProcess {
    /// Writes `config` to `dir/config.yaml` and starts the sidecar with its
    /// state in `dir/state` and its log in `dir/sidecar.log`.
    pub async fn spawn(exe: &Path, config: &SidecarConfig, dir: &Path, extra: &[String]) -> Result<Self, LabError> {
        Self::spawn_logging(exe, config, dir, extra, &default_log_filter()).await
    }

    /// [`spawn`](Self::spawn) with the sidecar's `RUST_LOG` set to
    /// `log_filter` (the lab's default is `FABRIC_LAB_LOG`, else `info`).
    pub async fn spawn_logging(
        exe: &Path,
        config: &SidecarConfig,
        dir: &Path,
        extra: &[String],
        log_filter: &str,
    ) -> Result<Self, LabError> {
        std::fs::create_dir_all(dir).map_err(|source| LabError::File { path: dir.to_path_buf(), source })?;
        let config_path = dir.join("config.yaml");
        std::fs::write(&config_path, config.to_yaml())
            .map_err(|source| LabError::File { path: config_path.clone(), source })?;
        Self::start(exe, config.node_id.clone(), dir, Some(&config_path), extra, log_filter).await
    }

    /// Starts a sidecar on an existing directory (restart); without a config
    /// path it comes back from its state dir.
    pub async fn spawn_with(
        exe: &Path,
        node_id: NodeId,
        dir: &Path,
        config_path: Option<&Path>,
        extra: &[String],
    ) -> Result<Self, LabError> {
        Self::start(exe, node_id, dir, config_path, extra, &default_log_filter()).await
    }

    async fn start(
        exe: &Path,
        node_id: NodeId,
        dir: &Path,
        config_path: Option<&Path>,
        extra: &[String],
        log_filter: &str,
    ) -> Result<Self, LabError> {
        let log_path = dir.join("sidecar.log");
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log_path)
            .map_err(|source| LabError::File { path: log_path, source })?;
        let mut command = Command::new(exe);
        command.arg("run").arg("--state-dir").arg(dir.join("state"));
        if let Some(path) = config_path {
            command.arg("--config").arg(path);
        }
        let operator_fed = extra.iter().any(|arg| arg == "--operator");
        let api_token = if operator_fed {
            None
        } else {
            let (path, token) = api_token(dir)?;
            command.arg("--api-token-file").arg(path);
            Some(token)
        };
        command
            .args(["--listen", "127.0.0.1:0", "--api", "127.0.0.1:0", "--log-format", "json"])
            .args(extra)
            .env("RUST_LOG", log_filter)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(log))
            .kill_on_drop(true);
        let mut child = command.spawn().map_err(|source| LabError::File { path: exe.to_path_buf(), source })?;
        let stdout = child.stdout.take().ok_or_else(|| LabError::NoStdout { node: node_id.clone() })?;
        let mut lines = BufReader::new(stdout).lines();
        let line = tokio::time::timeout(Duration::from_secs(20), lines.next_line())
            .await
            .map_err(|_| LabError::NoListeningLine { node: node_id.clone(), dir: dir.to_path_buf() })?
            .map_err(|source| LabError::Stdout { node: node_id.clone(), source })?
            .ok_or_else(|| LabError::ExitedBeforeListening { node: node_id.clone(), dir: dir.to_path_buf() })?;
        let event: serde_json::Value = match serde_json::from_str(&line) {
            Ok(event) => event,
            Err(source) => return Err(LabError::ListeningLine { line, source }),
        };
        let address = |key: &'static str| -> Result<SocketAddr, LabError> {
            event[key]
                .as_str()
                .and_then(|s| s.parse().ok())
                .ok_or_else(|| LabError::NoAddress { key, line: line.clone() })
        };
        // Keep draining stdout so the child never blocks on a full pipe.
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        Ok(Self {
            peer: address("peer")?,
            api: address("api")?,
            metrics: event["metrics"].as_str().and_then(|s| s.parse().ok()),
            node_id,
            child,
            dir: dir.to_path_buf(),
            config_path: config_path.map(Path::to_path_buf).unwrap_or_else(|| dir.join("config.yaml")),
            api_token,
        })
    }

    pub async fn get(&self, path: &str) -> Result<HttpResponse, LabError> {
        Ok(local_http::get(self.api, path).await?)
    }

    pub async fn get_json(&self, path: &str) -> Result<serde_json::Value, LabError> {
        let response = self.get(path).await?;
        if response.status != 200 {
            return Err(LabError::Status { path: path.to_string(), status: response.status, body: response.body });
        }
        Ok(response.json()?)
    }

    /// Pushes a config through the local API (and keeps the file in sync).
    pub async fn apply(&self, config: &SidecarConfig) -> Result<HttpResponse, LabError> {
        let yaml = config.to_yaml();
        std::fs::write(&self.config_path, &yaml)
            .map_err(|source| LabError::File { path: self.config_path.clone(), source })?;
        Ok(local_http::put(self.api, "/config", &yaml, self.api_token.as_deref()).await?)
    }

    /// Next hop for `destination`, `None` when there is no route.
    pub async fn next_hop(&self, destination: &str) -> Result<Option<String>, LabError> {
        let path = format!("/routes/{destination}");
        let response = self.get(&path).await?;
        match response.status {
            200 => Ok(response.json()?["next_hop"].as_str().map(str::to_string)),
            404 => Ok(None),
            status => Err(LabError::Status { path, status, body: response.body }),
        }
    }

    /// SIGKILL: the peers see the connection reset.
    pub async fn kill(&mut self) {
        let _ = self.child.kill().await;
    }

    /// SIGTERM and wait for the exit.
    pub async fn terminate(&mut self) -> Result<(), LabError> {
        if let Some(pid) = self.child.id() {
            std::process::Command::new("kill")
                .args(["-TERM", &pid.to_string()])
                .status()
                .map_err(|source| LabError::Signal { node: self.node_id.clone(), source })?;
        }
        tokio::time::timeout(Duration::from_secs(10), self.child.wait())
            .await
            .map_err(|_| LabError::NoExit { node: self.node_id.clone() })?
            .map_err(|source| LabError::Wait { node: self.node_id.clone(), source })?;
        Ok(())
    }
}

/// A fabric of sidecar processes built from a topology.
pub struct Lab {
    pub exe: PathBuf,
    pub dir: PathBuf,
    pub nodes: BTreeMap<NodeId, SidecarProcess>,
    pub configs: BTreeMap<NodeId, SidecarConfig>,
}

impl Lab {
    /// Starts one process per node (each config passed through `customize`
    /// first), then pushes the configs again with every neighbor's address.
    pub async fn start(
        exe: &Path,
        topology: &Topology,
        dir: &Path,
        customize: impl Fn(&mut SidecarConfig),
    ) -> Result<Self, LabError> {
        Self::start_with(exe, topology, dir, customize, |_| Vec::new()).await
    }

    /// Like `start`, with extra command-line arguments per node (keys, TLS).
    pub async fn start_with(
        exe: &Path,
        topology: &Topology,
        dir: &Path,
        customize: impl Fn(&mut SidecarConfig),
        arguments: impl Fn(&NodeId) -> Vec<String>,
    ) -> Result<Self, LabError> {
        let mut configs = BTreeMap::new();
        for mut config in topology.configs() {
            customize(&mut config);
            configs.insert(config.node_id.clone(), config);
        }
        let mut nodes = BTreeMap::new();
        for (id, config) in &configs {
            let process = SidecarProcess::spawn(exe, config, &dir.join(id.as_str()), &arguments(id)).await?;
            nodes.insert(id.clone(), process);
        }
        let mut lab = Self { exe: exe.to_path_buf(), dir: dir.to_path_buf(), nodes, configs };
        lab.wire().await?;
        Ok(lab)
    }

    /// Fills in neighbor addresses from the running processes and applies.
    pub async fn wire(&mut self) -> Result<(), LabError> {
        let addresses: BTreeMap<NodeId, SocketAddr> = self.nodes.iter().map(|(id, p)| (id.clone(), p.peer)).collect();
        for (id, config) in &mut self.configs {
            for neighbor in &mut config.neighbors {
                neighbor.address = addresses.get(&neighbor.id).map(|a| a.to_string());
            }
            if let Some(node) = self.nodes.get(id) {
                let response = node.apply(config).await?;
                if response.status != 200 {
                    return Err(LabError::ConfigRefused { node: id.clone(), body: response.body });
                }
            }
        }
        Ok(())
    }

    pub fn node(&self, id: &str) -> &SidecarProcess {
        self.nodes.get(id).unwrap_or_else(|| panic!("no node {id}"))
    }

    /// Destinations originated by running nodes.
    pub fn destinations(&self) -> Vec<String> {
        let mut all: Vec<String> = self
            .configs
            .iter()
            .filter(|(id, _)| self.nodes.contains_key(*id))
            .flat_map(|(_, c)| c.originate.iter().map(|r| r.destination.to_string()))
            .collect();
        all.sort();
        all
    }

    /// Polls every node's `/routes` until each knows `expected` destinations
    /// or `timeout` passes.
    pub async fn wait_for_routes(&self, expected: usize, timeout: Duration) -> Result<(), LabError> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let mut lagging = Vec::new();
            for (id, node) in &self.nodes {
                let routes = node.get_json("/routes").await?;
                let count = routes.as_array().map_or(0, Vec::len);
                if count != expected {
                    lagging.push(format!("{id}: {count}/{expected}"));
                }
            }
            if lagging.is_empty() {
                return Ok(());
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(LabError::NotConverged { timeout, lagging });
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}
