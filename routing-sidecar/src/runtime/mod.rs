//! The running sidecar: the IO layer around the engine. One actor task owns
//! the engine (`node`), on a thread of its own (`actor_thread`); peer
//! connections (`transport`, optional `tls`), the local API (`api`,
//! `metrics`) and signals talk to it through a handle.

mod actor_thread;
pub mod api;
mod codec;
pub mod handle;
mod inbound;
pub mod lab;
mod link_state;
pub mod metrics;
mod node;
pub mod otlp_metrics;
pub mod send_queue;
pub mod state_dir;
pub mod tls;
mod transport;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use tokio::net::TcpListener;
use tokio::sync::mpsc;

use fabric_core::config::{ConfigError, SidecarConfig};
use fabric_core::security::SigningIdentity;
use fabric_engine::Engine;
use fabric_io::clock;
pub use handle::NodeHandle;
use node::Node;
use state_dir::{SigningKeyFile, StateDir, StateDirError};
use tls::{PeerTls, PeerTlsSource, TlsError};

/// Everything needed to start a node.
#[derive(Clone, Debug)]
pub struct NodeOptions {
    /// The config file (`--config`); re-read on SIGHUP.
    pub config_path: Option<PathBuf>,
    /// Where the last applied config and the signing key are kept.
    pub state_dir: Option<PathBuf>,
    /// Peer sessions listen here (port 0: the OS picks).
    pub listen: SocketAddr,
    /// The local API listens here (keep it on localhost).
    pub api_listen: SocketAddr,
    /// Mutual TLS between sidecars.
    pub peer_tls: PeerTlsSource,
    /// A mounted signing key (`{"keyId": ..., "secretKey": base64}`).
    pub signing_key: Option<PathBuf>,
    /// Start with peering closed: no session is dialed or served until
    /// `RunningNode::peering` opens it (the control client does, once the
    /// operator's first config is in force, or a timeout does).
    pub wait_for_operator: bool,
    /// Who may `PUT /config` on the local API.
    pub config_writes: api::ConfigWrites,
    /// A second listener for Prometheus (`--metrics-listen`): `/metrics`
    /// and health only.
    pub metrics_listen: Option<SocketAddr>,
}

/// Opens peering once. A node fed by the operator waits for its first
/// config before talking to peers: a config from the state directory may
/// not trust keys that became active while it was down, and it would
/// reject its neighbors' announcements signed with them.
#[derive(Clone, Debug)]
pub struct PeeringGate(Arc<tokio::sync::watch::Sender<bool>>);

impl PeeringGate {
    /// Opens the gate (idempotent); `why` is logged the first time.
    pub fn open(&self, why: &str) {
        if !*self.0.borrow() {
            tracing::info!(reason = why, "peering open");
            self.0.send_replace(true);
        }
    }

    pub fn is_open(&self) -> bool {
        *self.0.borrow()
    }
}

/// A started node: its handle and the addresses it bound.
pub struct RunningNode {
    pub handle: NodeHandle,
    pub peer_addr: SocketAddr,
    pub api_addr: SocketAddr,
    /// The bound metrics listener, if any.
    pub metrics_addr: Option<SocketAddr>,
    pub node_id: fabric_core::ids::NodeId,
    /// Where the config in force came from, and why a config file was not
    /// used if it was refused.
    pub config_source: String,
    pub config_warning: Option<String>,
    pub actor: tokio::task::JoinHandle<()>,
    pub peering: PeeringGate,
    /// The peer TLS of the node, for the control client to install
    /// operator-issued certificates in.
    pub peer_tls: Option<Arc<PeerTls>>,
}

/// Why a node could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("{}: {source}", path.display())]
    ReadConfig {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{}: {source}", path.display())]
    ParseConfig {
        path: PathBuf,
        #[source]
        source: ConfigError,
    },
    #[error("no config: pass --config FILE or a --state-dir holding a previous config")]
    NoConfig,
    #[error(transparent)]
    StateDir(#[from] StateDirError),
    #[error("state dir: {0}")]
    SaveConfig(#[source] std::io::Error),
    #[error(transparent)]
    PeerTls(#[from] TlsError),
    /// The config does not make an engine (it failed validation).
    #[error(transparent)]
    Engine(ConfigError),
    /// `what` names the listener: `listen`, `API`, `metrics listener`.
    #[error("{what} on {address}: {source}")]
    Bind {
        what: &'static str,
        address: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("{what} address: {source}")]
    LocalAddress {
        what: &'static str,
        #[source]
        source: std::io::Error,
    },
    /// The node actor's runtime or thread (the text names which).
    #[error("{0}")]
    Actor(String),
}

/// For shells that still report errors as text: `?` keeps working.
impl From<StartError> for String {
    fn from(error: StartError) -> String {
        error.to_string()
    }
}

/// The config to start with: the file if it is valid, else the last good
/// config from the state directory (so a bad edit cannot take a restarting
/// node down), else an error.
fn initial_config(
    options: &NodeOptions,
    state: Option<&StateDir>,
) -> Result<(SidecarConfig, String, Option<String>), StartError> {
    let from_file = options.config_path.as_ref().map(|path| {
        std::fs::read_to_string(path).map_err(|source| StartError::ReadConfig { path: path.clone(), source }).and_then(
            |text| {
                SidecarConfig::from_yaml(&text).map_err(|source| StartError::ParseConfig { path: path.clone(), source })
            },
        )
    });
    let from_state = state.map(StateDir::load_config).transpose()?.flatten();
    match (from_file, from_state) {
        (Some(Ok(config)), _) => Ok((config, "file".into(), None)),
        (Some(Err(error)), Some(last_good)) => Ok((last_good, "state-dir".into(), Some(error.to_string()))),
        (Some(Err(error)), None) => Err(error),
        (None, Some(last_good)) => Ok((last_good, "state-dir".into(), None)),
        (None, None) => Err(StartError::NoConfig),
    }
}

fn initial_signer(options: &NodeOptions, state: Option<&StateDir>) -> Result<Option<SigningIdentity>, StateDirError> {
    if let Some(path) = &options.signing_key {
        return SigningKeyFile::read_identity(path).map(Some);
    }
    state.map(StateDir::load_signing_key).transpose().map(Option::flatten)
}

/// Binds the listeners and starts the actor, the peer listener and the API.
pub async fn start(options: NodeOptions) -> Result<RunningNode, StartError> {
    let state = options.state_dir.as_ref().map(StateDir::open).transpose()?;
    let (config, source, warning) = initial_config(&options, state.as_ref())?;
    let signer = initial_signer(&options, state.as_ref())?;
    if let Some(state) = &state {
        state.save_config(&config).map_err(StartError::SaveConfig)?;
    }
    let tls = match (&options.peer_tls, &options.state_dir) {
        // The key and last certificate survive a restart (with the signing
        // key and the config), so a restart while the operator is away can
        // still peer.
        (PeerTlsSource::Operator, Some(dir)) => Some(Arc::new(PeerTls::from_operator(Some(dir))?)),
        (source, _) => PeerTls::new(source)?,
    };
    let node_id = config.node_id.clone();
    let mut engine = Engine::new(config.clone(), clock::now()).map_err(StartError::Engine)?;
    engine.set_signer(signer);
    // Per-announcement events only feed debug log lines.
    engine.set_accepted_events(tracing::enabled!(tracing::Level::DEBUG));

    let bind = |what, address| async move {
        TcpListener::bind(address).await.map_err(|source| StartError::Bind { what, address, source })
    };
    let local_address = |what, listener: &TcpListener| {
        listener.local_addr().map_err(|source| StartError::LocalAddress { what, source })
    };
    let peer_listener = bind("listen", options.listen).await?;
    let api_listener = bind("API", options.api_listen).await?;
    let metrics_listener = match options.metrics_listen {
        Some(address) => Some(bind("metrics listener", address).await?),
        None => None,
    };
    let metrics_addr =
        metrics_listener.as_ref().map(|listener| local_address("metrics listener", listener)).transpose()?;
    let peer_addr = local_address("listen", &peer_listener)?;
    let api_addr = local_address("API", &api_listener)?;

    let (commands, inbox) = mpsc::channel(1024);
    let (gate, peering) = tokio::sync::watch::channel(!options.wait_for_operator);
    let shared = Node::shared_for(node_id.clone(), tls.clone(), commands.clone(), &config, peering);
    let node = Node::new(engine, shared.clone(), state, source.clone());
    let (queries, query_inbox) = mpsc::channel(64);
    let actor = actor_thread::spawn(node, inbox, query_inbox).map_err(StartError::Actor)?;

    tokio::spawn(async move {
        loop {
            match peer_listener.accept().await {
                Ok((stream, _)) => {
                    tokio::spawn(shared.clone().serve_inbound(stream));
                }
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                }
            }
        }
    });
    let handle = NodeHandle::new(commands, queries);
    let app = api::router(handle.clone(), options.config_writes.clone(), tls.clone());
    tokio::spawn(async move {
        if let Err(e) = axum::serve(api_listener, app).await {
            tracing::error!(error = %e, "API server stopped");
        }
    });
    if let Some(listener) = metrics_listener {
        let app = api::metrics_router(handle.clone());
        tokio::spawn(async move {
            if let Err(e) = axum::serve(listener, app).await {
                tracing::error!(error = %e, "metrics listener stopped");
            }
        });
    }
    Ok(RunningNode {
        handle,
        peer_addr,
        api_addr,
        metrics_addr,
        node_id,
        config_source: source,
        config_warning: warning,
        actor,
        peering: PeeringGate(Arc::new(gate)),
        peer_tls: tls,
    })
}
