//! A cheap, cloneable handle to the node actor for the API and signals.

use tokio::sync::{mpsc, oneshot};

use crate::runtime::link_state::{ExplainAnswer, LinkStateStatus, RouteAnswer};
use crate::runtime::node::{Command, ConfigStatus, NodeStats, PeerStatus, Query};
use fabric_core::config::{ConfigError, SidecarConfig};
use fabric_core::security::SigningIdentity;
use fabric_engine::BestRoute;

/// The actor has stopped (shutting down).
#[derive(Debug, Clone, thiserror::Error)]
#[error("the routing node is not running")]
pub struct NodeGone;

#[derive(Clone)]
pub struct NodeHandle {
    commands: mpsc::Sender<Command>,
    /// Questions go through their own channel, which the actor serves
    /// before commands: during a table transfer thousands of frame batches
    /// may be queued, and an answer must not wait behind them.
    queries: mpsc::Sender<Query>,
}

impl NodeHandle {
    pub fn new(commands: mpsc::Sender<Command>, queries: mpsc::Sender<Query>) -> Self {
        Self { commands, queries }
    }

    async fn ask<T>(&self, query: impl FnOnce(oneshot::Sender<T>) -> Query) -> Result<T, NodeGone> {
        let (reply, answer) = oneshot::channel();
        self.queries.send(query(reply)).await.map_err(|_| NodeGone)?;
        answer.await.map_err(|_| NodeGone)
    }

    pub async fn routes(&self) -> Result<Vec<BestRoute>, NodeGone> {
        self.ask(Query::Routes).await
    }

    /// The next hop(s) for `destination` under the routing mode.
    pub async fn route(&self, destination: String) -> Result<Option<RouteAnswer>, NodeGone> {
        self.ask(|reply| Query::Route(destination, reply)).await
    }

    pub async fn explain(&self, destination: String) -> Result<Option<ExplainAnswer>, NodeGone> {
        self.ask(|reply| Query::Explain(destination, reply)).await
    }

    /// `None` when link-state is off.
    pub async fn link_state(&self) -> Result<Option<LinkStateStatus>, NodeGone> {
        self.ask(Query::LinkState).await
    }

    pub async fn peers(&self) -> Result<Vec<PeerStatus>, NodeGone> {
        self.ask(Query::Peers).await
    }

    pub async fn stats(&self) -> Result<NodeStats, NodeGone> {
        self.ask(Query::Stats).await
    }

    pub async fn config(&self) -> Result<ConfigStatus, NodeGone> {
        self.ask(Query::Config).await
    }

    /// The SidecarConfig in force.
    pub async fn effective_config(&self) -> Result<SidecarConfig, NodeGone> {
        self.ask(Query::EffectiveConfig).await
    }

    /// Applies a config live; `Err(Ok(error))` when the node refused it.
    pub async fn apply_config(&self, config: SidecarConfig, source: &str) -> Result<Result<(), ConfigError>, NodeGone> {
        self.apply_config_with_signer(config, None, source).await
    }

    /// Applies `config` and, when it is accepted, switches to `signer` (key
    /// rotation: the operator sends the new private key with the config that
    /// names it in `security.signingKeyId`).
    pub async fn apply_config_with_signer(
        &self,
        config: SidecarConfig,
        signer: Option<SigningIdentity>,
        source: &str,
    ) -> Result<Result<(), ConfigError>, NodeGone> {
        let (reply, answer) = oneshot::channel();
        let command = Command::ApplyConfig {
            config: Box::new(config),
            signer: signer.map(Box::new),
            source: source.to_string(),
            reply,
        };
        self.commands.send(command).await.map_err(|_| NodeGone)?;
        answer.await.map_err(|_| NodeGone)
    }

    /// Counts a config refused before it reached the node (an API write
    /// the caller may not make), like a config the node refused; returns
    /// once it is counted.
    pub async fn refuse_config(&self, source: &str, reason: String) -> Result<(), NodeGone> {
        let (counted, done) = oneshot::channel();
        let command = Command::RefuseConfig { source: source.to_string(), reason, counted };
        self.commands.send(command).await.map_err(|_| NodeGone)?;
        done.await.map_err(|_| NodeGone)
    }

    /// Closes every session (announcing a restart when `restarting`) and
    /// stops the actor.
    pub async fn shutdown(&self, restarting: bool) {
        let (reply, done) = oneshot::channel();
        if self.commands.send(Command::Shutdown { restarting, reply }).await.is_ok() {
            let _ = done.await;
        }
    }
}
