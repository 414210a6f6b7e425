//! Cluster mode, `fabric-operator run` without `--manifests`: the same
//! pipeline as local mode with the API server as the source and the sink.
//!
//! ```text
//! watch (4 CRDs + sidecar Pods) -> Index -> Distributor (compile, push over gRPC)
//!                                      \-> status writer (SSA on /status) -> Events
//! ```
//!
//! - `watch`: kube-runtime watchers into the pure `Index` (`apply_event`),
//!   debounced, handed to the [`Distributor`] built with
//!   `sidecars_from_objects` (sidecars are the watched pods; a Hello only
//!   opens the stream of its pod).
//! - `status_writer`: the pure desired status of every CR and its
//!   server-side apply; `events`: Events on transitions.
//! - `leader`: only the Lease holder does any of it.
//! - Sidecar tokens are checked with a TokenReview
//!   ([`crate::distribution::auth::TokenReview`]) and a Hello must name the
//!   pod its token was issued to.

mod leader;
mod peer_ca_secret;
pub mod status_writer;
mod watch;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use kube::Client;
use tokio::sync::{mpsc, watch as channel};

use crate::admin_http::{AppState, Folder, get_metrics, get_sidecars, get_status};
use crate::distribution::auth::TokenReview;
use crate::distribution::server::{DistributionService, ServeError, serve};
use crate::distribution::{DistributionState, Distributor, DistributorOptions, Options};
use crate::kubernetes::events::EventPublisher;
use crate::listener::{ListenError, bind};
use crate::rotation::secret::{ClusterPublisher, SecretKeyStore};
use crate::rotation::{RotationStatus, Rotator};
use crate::shutdown::shutdown_signal;
use crate::tls::TlsFiles;
use fabric_operator_core::index::{Index, NamespacedName};
use status_writer::StatusWriter;

/// After a change, how long more changes are collected before one
/// recompile.
const DEBOUNCE: Duration = Duration::from_millis(100);
/// How often the status writer looks at the ACKs and NACKs (besides after
/// every recompile).
const STATUS_POLL: Duration = Duration::from_millis(500);
/// The longest wait before retrying failed status writes.
const MAX_RETRY: Duration = Duration::from_secs(30);

pub struct ClusterOptions {
    /// Watch only this namespace (default: all).
    pub namespace: Option<String>,
    /// gRPC config distribution.
    pub listen: SocketAddr,
    /// HTTP: `/healthz`, `/readyz`, `/status`, `/sidecars`, `/metrics`.
    pub http: SocketAddr,
    /// `None`: plaintext (`--insecure-plaintext`).
    pub tls: Option<TlsFiles>,
    /// The audience of the sidecars' projected ServiceAccount tokens.
    pub token_audience: String,
    /// `None`: no leader election (`--no-leader-election`).
    pub leader_election: Option<LeaderElection>,
    /// The sidecar injection webhook (`None`: `--no-webhook`); served by
    /// every replica, leader or not.
    pub webhook: Option<crate::webhook::WebhookOptions>,
    /// How often key rotation checks the RouteKeys (`--rotation-tick`).
    pub rotation_tick: Duration,
    /// Who may run as which node id (`--fabric-namespace`,
    /// `--unbound-node-ids`).
    pub identity: fabric_operator_core::compile::Settings,
    /// Issue peer TLS certificates with the CA kept in this Secret of the
    /// operator's namespace (`--peer-ca-secret`).
    pub peer_ca: Option<(String, fabric_operator_core::peer_ca::PeerCaSettings)>,
    /// Export the metrics over OTLP too (`--otlp-endpoint`).
    pub otlp_metrics: Option<crate::otlp_metrics::OtlpMetrics>,
}

pub struct LeaderElection {
    /// Namespace of the Lease (default: the client's namespace, in a pod
    /// the operator's own).
    pub namespace: Option<String>,
}

/// Liveness and readiness. Live as soon as the HTTP server runs; ready when
/// this replica leads, listed the cluster and serves distribution, so a
/// Service in front of the replicas sends sidecars to the leader only.
#[derive(Clone, Default)]
pub struct Health {
    ready: Arc<AtomicBool>,
}

impl Health {
    pub fn set_ready(&self, ready: bool) {
        self.ready.store(ready, Ordering::Release);
    }

    pub fn ready(&self) -> bool {
        self.ready.load(Ordering::Acquire)
    }
}

/// This replica's name: `POD_NAME` (downward API), else the hostname (a
/// pod's hostname is its name).
pub fn instance_name() -> String {
    let from_env = |name: &str| std::env::var(name).ok().filter(|v| !v.trim().is_empty());
    from_env("POD_NAME")
        .or_else(|| from_env("HOSTNAME"))
        .or_else(|| std::fs::read_to_string("/proc/sys/kernel/hostname").ok().map(|h| h.trim().to_owned()))
        .filter(|name| !name.is_empty())
        .unwrap_or_else(|| format!("fabric-operator-{}", std::process::id()))
}

/// The current time as RFC 3339 (seconds, UTC), for condition transitions.
pub fn now_rfc3339() -> String {
    jiff::Timestamp::now().strftime("%Y-%m-%dT%H:%M:%SZ").to_string()
}

fn router(distributor: Distributor, health: Health) -> axum::Router {
    // `/status`, `/sidecars` and `/metrics` are local mode's handlers; the
    // folder part of `/status` (`manifestIssues`, `appliedLoads`) stays
    // empty here.
    let app = AppState { distributor, folder: Arc::new(Mutex::new(Folder::default())) };
    let readyz =
        axum::Router::new().route("/readyz", get(readyz)).route("/healthz", get(|| async { "ok" })).with_state(health);
    axum::Router::new()
        .route("/status", get(get_status))
        .route("/sidecars", get(get_sidecars))
        .route("/metrics", get(get_metrics))
        .with_state(app)
        .merge(readyz)
}

async fn readyz(State(health): State<Health>) -> (StatusCode, &'static str) {
    if health.ready() {
        (StatusCode::OK, "ok")
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "not ready: not the leader, or still listing the cluster")
    }
}

/// Why cluster mode could not start or stopped. Each ends the process; the
/// Deployment restarts it.
#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    #[error("cannot configure the Kubernetes client (in-cluster config or kubeconfig): {0}")]
    Client(#[source] kube::Error),
    #[error(transparent)]
    Listen(#[from] ListenError),
    #[error(transparent)]
    Leader(#[from] leader::LeaderError),
    #[error("leadership lost: {0}")]
    LeadershipLost(#[source] leader::LeaseLost),
    #[error("the index loop stopped")]
    IndexLoopStopped,
    #[error(transparent)]
    PeerCa(#[from] peer_ca_secret::PeerCaSecretError),
    #[error(transparent)]
    Serve(#[from] ServeError),
}

/// Runs cluster mode until SIGTERM or Ctrl-C, or until leadership is lost
/// (an error: the process exits and the Deployment restarts it).
pub async fn run(options: ClusterOptions) -> Result<(), ClusterError> {
    let client = Client::try_default().await.map_err(ClusterError::Client)?;
    let instance = instance_name();
    let distributor = Distributor::new(DistributorOptions {
        machine: Options { sidecars_from_objects: true, identity: options.identity.clone(), ..Default::default() },
        registry: None,
    });
    crate::otlp_metrics::spawn_metrics_export(options.otlp_metrics.clone(), &distributor);
    distributor.set_leader(false);
    let health = Health::default();

    // HTTP first: the probes must answer while this replica waits for the
    // Lease.
    let (http, http_addr) = bind("HTTP", options.http).await?;
    let app = router(distributor.clone(), health.clone());
    tokio::spawn(async move {
        if let Err(error) = axum::serve(http, app).await {
            tracing::error!(%error, "HTTP server stopped");
        }
    });
    tracing::info!(http = %http_addr, instance, namespace = ?options.namespace, "operator starting (cluster mode)");
    let webhook_addr = match &options.webhook {
        Some(webhook) => Some(crate::webhook::start(&client, webhook, options.tls.as_ref(), &distributor).await?),
        None => None,
    };
    // One line on stdout with the bound addresses (ports may be OS-chosen),
    // as local mode prints; the gRPC address follows once this replica leads.
    println!(
        "{}",
        serde_json::json!({"event": "listening", "http": http_addr.to_string(),
            "webhook": webhook_addr.map(|a| a.to_string()), "instance": instance})
    );

    let mut leadership = match &options.leader_election {
        Some(election) => {
            let namespace = election.namespace.clone().unwrap_or_else(|| client.default_namespace().to_owned());
            tokio::select! {
                leadership = leader::acquire(client.clone(), &namespace, &instance) => {
                    let leadership = leadership?;
                    // The metric follows the Lease, even while the first
                    // lists are still failing.
                    distributor.set_leader(true);
                    Some(leadership)
                }
                () = shutdown_signal() => {
                    tracing::info!("shutting down before becoming leader");
                    return Ok(());
                }
            }
        }
        None => {
            tracing::info!("leader election disabled (--no-leader-election): acting as the only replica");
            None
        }
    };

    let lost = async {
        match leadership.as_mut() {
            Some(leadership) => leadership.lost().await,
            None => std::future::pending().await,
        }
    };
    let result = tokio::select! {
        result = lead(client, &options, distributor, health.clone(), instance) => result,
        reason = lost => {
            tracing::error!(%reason, "leadership lost: exiting so that this replica restarts as a follower");
            Err(ClusterError::LeadershipLost(reason))
        }
        () = shutdown_signal() => {
            tracing::info!("shutting down");
            Ok(())
        }
    };
    health.set_ready(false);
    if let Some(leadership) = leadership {
        leadership.release().await;
    }
    result
}

/// The leader's work: watch, compile, distribute, write status. Returns
/// only on a fatal error.
async fn lead(
    client: Client,
    options: &ClusterOptions,
    distributor: Distributor,
    health: Health,
    instance: String,
) -> Result<(), ClusterError> {
    // Everything spawned here stops with this future (leadership lost or
    // shutdown), so nothing writes after the Lease is gone.
    let mut tasks = Tasks::default();
    let (events, receiver) = mpsc::channel(1024);
    tasks.0.extend(watch::spawn_watchers(&client, options.namespace.as_deref(), events));
    let (snapshots, mut snapshot) = channel::channel(None);
    tasks.0.push(tokio::spawn(watch::IndexLoop::new(distributor.clone(), snapshots, DEBOUNCE).run(receiver)));

    // Serve sidecars only once the whole cluster is listed: a config
    // compiled from part of it would miss neighbors.
    let mut progress = tokio::time::interval(Duration::from_secs(10));
    progress.tick().await;
    while snapshot.borrow_and_update().is_none() {
        tokio::select! {
            changed = snapshot.changed() => changed.map_err(|_| ClusterError::IndexLoopStopped)?,
            _ = progress.tick() => tracing::info!("still waiting for the first list of every watched kind"),
        }
    }

    if let Some((secret, settings)) = &options.peer_ca {
        let namespace = options
            .leader_election
            .as_ref()
            .and_then(|election| election.namespace.clone())
            .unwrap_or_else(|| client.default_namespace().to_owned());
        let ca = peer_ca_secret::load_or_create(client.clone(), &namespace, secret, settings).await?;
        distributor.set_peer_ca(Arc::new(ca));
        tasks.0.push(tokio::spawn(distributor.clone().run_peer_certificate_renewal(options.rotation_tick)));
    }
    let (grpc, grpc_addr) = bind("listen", options.listen).await?;
    let verifier = Arc::new(TokenReview::new(client.clone(), options.token_audience.clone()));
    let service = DistributionService::new(distributor.clone(), Some(verifier)).require_pod_binding();
    let mut rotator = Rotator::new(
        Arc::new(SecretKeyStore::new(client.clone())),
        Arc::new(ClusterPublisher::new(client.clone(), Some(instance.clone()))),
    );
    // One pass before serving: keys nobody has to learn first are active in
    // the first snapshots.
    rotator.tick(&distributor, fabric_io::clock::now()).await;
    distributor.set_rotation_status(rotator.status().clone());
    tasks.0.push(tokio::spawn(rotation_loop(rotator, distributor.clone(), options.rotation_tick)));
    let writer = StatusWriter::new(client.clone(), EventPublisher::new(client, Some(instance)));
    tasks.0.push(tokio::spawn(status_loop(writer, distributor.clone(), snapshot)));
    distributor.set_leader(true);
    health.set_ready(true);
    tracing::info!(grpc = %grpc_addr, tls = options.tls.is_some(), "serving sidecars");
    println!("{}", serde_json::json!({"event": "leading", "grpc": grpc_addr.to_string()}));
    // Config streams never end by themselves: the server runs until the
    // process stops (see `run`).
    Ok(serve(grpc, service, options.tls.as_ref(), std::future::pending()).await?)
}

/// Key rotation for every operator-managed RouteKey: Secrets, key status,
/// signing keys to the distributor (see `crate::rotation`).
async fn rotation_loop(mut rotator: Rotator, distributor: Distributor, every: Duration) {
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tick.tick().await; // the first fires at once; `lead` already ran a pass
    loop {
        tick.tick().await;
        rotator.tick(&distributor, fabric_io::clock::now()).await;
        distributor.set_rotation_status(rotator.status().clone());
    }
}

/// Tasks aborted when dropped.
#[derive(Default)]
struct Tasks(Vec<tokio::task::JoinHandle<()>>);

impl Drop for Tasks {
    fn drop(&mut self) {
        for task in &self.0 {
            task.abort();
        }
    }
}

/// Runs the status writer after every recompile and every [`STATUS_POLL`]
/// (ACKs and NACKs change the roll-up without a recompile). A run whose
/// inputs did not change since the last run is skipped, unless writes
/// failed: those are retried with a backoff (0.5 s doubling up to
/// [`MAX_RETRY`]), so a lasting failure (RBAC) does not flood the API
/// server or the log.
async fn status_loop(
    mut writer: StatusWriter,
    distributor: Distributor,
    mut snapshots: channel::Receiver<Option<Arc<Index>>>,
) {
    let mut poll = tokio::time::interval(STATUS_POLL);
    poll.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    type Inputs = (
        u64,
        Arc<fabric_operator_core::compile::Compilation>,
        DistributionState,
        BTreeMap<NamespacedName, RotationStatus>,
    );
    let mut last: Option<Inputs> = None;
    let mut retry: Option<(tokio::time::Instant, Duration)> = None;
    loop {
        tokio::select! {
            changed = snapshots.changed() => if changed.is_err() { return },
            _ = poll.tick() => {}
        }
        let Some(index) = snapshots.borrow_and_update().clone() else { continue };
        let compilation = distributor.compilation();
        let state = distributor.state();
        let rotation = distributor.rotation_status();
        let unchanged = last.as_ref().is_some_and(|(revision, compiled, sidecars, rotated)| {
            *revision == index.revision()
                && Arc::ptr_eq(compiled, &compilation)
                && *sidecars == state
                && *rotated == rotation
        });
        if unchanged && retry.is_none_or(|(at, _)| tokio::time::Instant::now() < at) {
            continue;
        }
        let span = tracing::info_span!(
            "fabric.operator.status",
            revision = index.revision(),
            written = tracing::field::Empty,
            failed = tracing::field::Empty
        );
        let report = {
            use tracing::Instrument as _;
            writer.set_rotation(&rotation);
            writer.reconcile(&index, &compilation, &state, &now_rfc3339()).instrument(span.clone()).await
        };
        span.record("written", report.written).record("failed", report.failed);
        distributor.record_status_patches(report.written as u64);
        if report.written + report.failed + report.events > 0 {
            tracing::debug!(?report, "status run");
        }
        retry = (report.failed > 0).then(|| {
            let delay = retry.map_or(STATUS_POLL, |(_, delay)| (delay * 2).min(MAX_RETRY));
            (tokio::time::Instant::now() + delay, delay)
        });
        last = Some((index.revision(), compilation, state, rotation));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn now_is_rfc3339_in_seconds() {
        let now = now_rfc3339();
        assert_eq!(now.len(), "2025-01-01T00:00:00Z".len(), "{now}");
        assert!(fabric_operator_core::time::parse_rfc3339_millis(&now).is_ok(), "{now}");
    }

    #[tokio::test]
    async fn readyz_follows_the_health_flag() {
        let health = Health::default();
        assert_eq!(readyz(State(health.clone())).await.0, StatusCode::SERVICE_UNAVAILABLE);
        health.set_ready(true);
        assert_eq!(readyz(State(health)).await.0, StatusCode::OK);
    }
}
