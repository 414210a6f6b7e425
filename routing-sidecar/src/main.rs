//! `routing-sidecar`: the fabric routing node.
//!
//! `run` is the sidecar itself; `lab` starts a local fabric of sidecar
//! processes on 127.0.0.1; `simulate` runs a fabric of engines in memory;
//! `soak` compares path-vector and link-state under hours of simulated
//! churn (docs/soak.md); `check-config` and `keygen` are tools.

mod lab;
mod soak_charts;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};
use fabric_core::SidecarConfig;
use fabric_core::time::Timestamp;
use fabric_engine::sim::{Fabric, Topology};
use fabric_engine::{CandidateStatus, SelectionTrace};

pub(crate) const DEFAULT_TOPOLOGY: &str = include_str!("../../examples/topology.yaml");

#[derive(Parser)]
#[command(version, about = "Fabric routing sidecar")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

// Parsed once at start; the size difference between variants is irrelevant.
#[allow(clippy::large_enum_variant)]
#[derive(Subcommand)]
enum Command {
    /// Run a fabric of routing engines in memory: converge, explain, fail a
    /// node, reconverge. Uses the embedded example topology unless given one.
    Simulate {
        /// Topology YAML (nodes with `originate`, links with `metrics`).
        #[arg(long)]
        topology: Option<std::path::PathBuf>,
        /// Node to fail after convergence (default: the first node with the
        /// most links).
        #[arg(long)]
        fail: Option<String>,
    },
    /// Validate a SidecarConfig YAML file; prints the offending field on error.
    CheckConfig { file: std::path::PathBuf },
    /// Run the routing sidecar.
    Run(Box<RunArgs>),
    /// Start a local fabric of sidecar processes on 127.0.0.1 from a
    /// topology (the embedded example by default) and show it converge.
    Lab(lab::LabArgs),
    /// Soak and churn simulation: path-vector and link-state on the same
    /// fabric and the same schedule of failures, for hours of simulated
    /// time; prints the figures and the targets (docs/soak.md).
    Soak(soak_charts::SoakArgs),
    /// Generate an ed25519 signing key file and print its public key.
    Keygen {
        #[arg(long)]
        key_id: String,
        /// Where to write the key file (JSON); stdout when absent.
        #[arg(long)]
        out: Option<PathBuf>,
    },
}

#[derive(clap::Args, Debug)]
struct RunArgs {
    /// SidecarConfig YAML; re-read on SIGHUP. Without it, the last config
    /// applied is loaded from --state-dir.
    #[arg(long, env = "FABRIC_CONFIG")]
    config: Option<PathBuf>,
    /// Keeps the last applied config (and a generated key) across restarts.
    #[arg(long, env = "FABRIC_STATE_DIR")]
    state_dir: Option<PathBuf>,
    /// Peer sessions listen here; port 0 lets the OS choose.
    #[arg(long, default_value = "0.0.0.0:7443", env = "FABRIC_LISTEN")]
    listen: SocketAddr,
    /// The local API (routes, explain, metrics); keep it on localhost.
    #[arg(long, default_value = "127.0.0.1:7480", env = "FABRIC_API")]
    api: SocketAddr,
    /// PEM certificate for peer TLS (its DNS name is this node's id).
    #[arg(long, requires_all = ["tls_key", "tls_ca"])]
    tls_cert: Option<PathBuf>,
    #[arg(long)]
    tls_key: Option<PathBuf>,
    /// PEM CA that signed every peer's certificate.
    #[arg(long)]
    tls_ca: Option<PathBuf>,
    /// Peer TLS with a certificate the operator issues: the sidecar makes
    /// its key pair at start, asks the operator for a short-lived
    /// certificate naming its node id, and renews it before it expires.
    /// Peering waits for the first certificate.
    #[arg(long, env = "FABRIC_PEER_TLS_FROM_OPERATOR", requires = "operator", conflicts_with = "tls_cert")]
    peer_tls_from_operator: bool,
    /// Signing key file from `keygen` (a mounted Secret).
    #[arg(long, env = "FABRIC_SIGNING_KEY")]
    signing_key: Option<PathBuf>,
    /// On SIGTERM, tell peers this is a restart so they keep our routes as
    /// stale for their graceful-restart window (for in-place upgrades).
    #[arg(long)]
    announce_restart: bool,
    /// Log format on stderr.
    #[arg(long, default_value = "text", value_parser = ["text", "json"])]
    log_format: String,
    /// OTLP/gRPC collector to export traces and metrics to (e.g.
    /// `http://otel-collector:4317`); no export when absent.
    #[arg(long, env = "OTEL_EXPORTER_OTLP_ENDPOINT")]
    otlp_endpoint: Option<String>,
    /// How often metrics are exported over OTLP.
    #[arg(long, default_value = "10s", value_parser = fabric_core::time::parse_duration)]
    otlp_metrics_interval: Duration,
    /// `service.name` of the exported traces and metrics.
    #[arg(long, default_value = "routing-sidecar", env = "OTEL_SERVICE_NAME")]
    otlp_service_name: String,
    /// The operator to take configs from (`https://host:port`, or
    /// `http://` for local use); see docs/sidecar.md, "Operator connection".
    /// With it, the local API is read-only.
    #[arg(long, env = "FABRIC_OPERATOR")]
    operator: Option<String>,
    /// A second listener serving only `/metrics`, `/healthz` and `/readyz`,
    /// for Prometheus to scrape on the pod IP (the local API stays on
    /// localhost). Port 0 lets the OS choose.
    #[arg(long, env = "FABRIC_METRICS_LISTEN")]
    metrics_listen: Option<SocketAddr>,
    /// A file holding the bearer token `PUT /config` on the local API
    /// needs. Without it (and without --operator) the local API refuses
    /// config writes.
    #[arg(long, env = "FABRIC_API_TOKEN_FILE", conflicts_with = "operator")]
    api_token_file: Option<PathBuf>,
    /// Bearer token for the operator (a projected ServiceAccount token, or
    /// the operator's static token in local mode); re-read at each connect.
    #[arg(long, env = "FABRIC_OPERATOR_TOKEN_FILE")]
    operator_token_file: Option<PathBuf>,
    /// PEM CA that signed the operator's serving certificate.
    #[arg(long, env = "FABRIC_OPERATOR_CA")]
    operator_ca: Option<PathBuf>,
    /// With `--operator`, peering waits for the operator's first config (or
    /// its word that the config in force is current) at most this long,
    /// then starts on the config in force.
    #[arg(long, default_value = "10s", value_parser = fabric_core::time::parse_duration, env = "FABRIC_OPERATOR_INITIAL_TIMEOUT")]
    operator_initial_timeout: std::time::Duration,
    /// Namespace reported to the operator (policies select sidecars of their
    /// own namespace).
    #[arg(long, default_value = "default", env = "POD_NAMESPACE")]
    namespace: String,
    /// The pod running this sidecar (downward API); in a cluster the
    /// operator matches it to its pod watch and the ServiceAccount token.
    #[arg(long, default_value = "", env = "POD_NAME")]
    pod_name: String,
    /// A label reported to the operator (`k=v`, repeated): policy selectors
    /// match these like pod labels.
    #[arg(long = "label", value_name = "K=V", value_parser = parse_label)]
    labels: Vec<(String, String)>,
    /// `host` or `host:port` other sidecars dial (default: the bound peer
    /// address; an unspecified host is filled in by the operator).
    #[arg(long, env = "FABRIC_ADVERTISE_ADDRESS")]
    advertise_address: Option<String>,
}

fn parse_label(text: &str) -> Result<(String, String), String> {
    let (key, value) = text.split_once('=').ok_or_else(|| format!("{text:?}: expected K=V"))?;
    if key.is_empty() {
        return Err(format!("{text:?}: empty label key"));
    }
    Ok((key.to_string(), value.to_string()))
}

/// The peer address announced to the operator: `--advertise-address` (a
/// bare host takes the bound port), else the bound address.
fn advertised_peer_address(args: &RunArgs, bound: SocketAddr) -> String {
    let Some(address) = &args.advertise_address else { return bound.to_string() };
    if address.parse::<SocketAddr>().is_ok() {
        return address.clone();
    }
    if let Ok(ip) = address.parse::<std::net::IpAddr>() {
        return SocketAddr::new(ip, bound.port()).to_string();
    }
    match address.rsplit_once(':') {
        Some((host, port)) if !host.is_empty() && port.parse::<u16>().is_ok() => address.clone(),
        _ => format!("{address}:{}", bound.port()),
    }
}

/// Starts the control client when `--operator` is set. The local routes
/// (`originate`) come from the config the node started with.
fn start_control(node: &fabric_sidecar::runtime::RunningNode, args: &RunArgs) {
    use fabric_sidecar::control::{self, ControlOptions};
    let Some(url) = &args.operator else { return };
    let local = args
        .config
        .as_ref()
        .and_then(|path| std::fs::read_to_string(path).ok())
        .and_then(|text| SidecarConfig::from_yaml(&text).ok())
        .or_else(|| {
            let dir = args.state_dir.as_ref()?;
            fabric_sidecar::runtime::state_dir::StateDir::open(dir).ok()?.load_config().ok()?
        });
    let mut options = ControlOptions::new(url.clone(), advertised_peer_address(args, node.peer_addr));
    options.token_file = args.operator_token_file.clone();
    options.ca_file = args.operator_ca.clone();
    options.namespace = args.namespace.clone();
    options.pod_name = args.pod_name.clone();
    options.labels = args.labels.iter().cloned().collect();
    options.local_originate = local.map(|c| c.originate).unwrap_or_default();
    options.peering = Some(node.peering.clone());
    options.peer_tls = node.peer_tls.clone().filter(|tls| tls.certificate_request().is_some());
    let (gate, timeout) = (node.peering.clone(), args.operator_initial_timeout);
    tokio::spawn(async move {
        tokio::time::sleep(timeout).await;
        if !gate.is_open() {
            tracing::warn!(?timeout, "no config from the operator in time; peering on the config in force");
            gate.open("operator initial timeout");
        }
    });
    tokio::spawn(control::run(node.handle.clone(), node.node_id.clone(), options));
}

/// mimalloc: ingestion allocates and frees small blocks for every message
/// (decoded strings, effects), which glibc's allocator serves much more
/// slowly, with free-list consolidation on top; the engine benchmark runs
/// with the same allocator (docs/benchmarks.md, "Routing engine").
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Simulate { topology, fail } => simulate(topology, fail),
        Command::CheckConfig { file } => check_config(&file),
        Command::Run(args) => run(*args),
        Command::Lab(args) => lab::run(args).map_err(|e| e.to_string()),
        Command::Keygen { key_id, out } => keygen(key_id, out),
        Command::Soak(args) => soak_charts::run(args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("error: {message}");
            ExitCode::from(2)
        }
    }
}

fn run(args: RunArgs) -> Result<(), String> {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().map_err(|e| e.to_string())?;
    runtime.block_on(serve(args))
}

/// The node id for the telemetry resource, known before the node starts:
/// from the config file, else from the state dir (the order `start` uses).
fn node_id_hint(args: &RunArgs) -> Option<String> {
    let from_file = args
        .config
        .as_ref()
        .and_then(|path| std::fs::read_to_string(path).ok())
        .and_then(|text| SidecarConfig::from_yaml(&text).ok());
    let config = from_file.or_else(|| {
        let dir = args.state_dir.as_ref()?;
        fabric_sidecar::runtime::state_dir::StateDir::open(dir).ok()?.load_config().ok()?
    })?;
    Some(config.node_id.to_string())
}

async fn serve(args: RunArgs) -> Result<(), String> {
    use fabric_io::telemetry::{self, TelemetryOptions};
    use fabric_sidecar::runtime::tls::{PeerTlsSource, TlsFiles};
    use fabric_sidecar::runtime::{NodeOptions, start};
    // Inside the runtime: the OTLP exporters need it.
    let telemetry = telemetry::init(&TelemetryOptions {
        log_format: args.log_format.clone(),
        otlp_endpoint: args.otlp_endpoint.clone(),
        service_name: args.otlp_service_name.clone(),
        node_id: args.otlp_endpoint.as_ref().and_then(|_| node_id_hint(&args)),
        metrics_interval: args.otlp_metrics_interval,
    })?;
    let peer_tls = match (&args.tls_cert, &args.tls_key, &args.tls_ca) {
        (Some(cert), Some(key), Some(ca)) => {
            PeerTlsSource::Files(TlsFiles { cert: cert.clone(), key: key.clone(), ca: ca.clone() })
        }
        _ if args.peer_tls_from_operator => PeerTlsSource::Operator,
        _ => PeerTlsSource::Off,
    };
    let config_writes = match config_writes(&args) {
        Ok(writes) => writes,
        Err(e) => {
            telemetry.shutdown().await;
            return Err(e);
        }
    };
    let node = start(NodeOptions {
        config_path: args.config.clone(),
        state_dir: args.state_dir.clone(),
        listen: args.listen,
        api_listen: args.api,
        peer_tls,
        signing_key: args.signing_key.clone(),
        wait_for_operator: args.operator.is_some(),
        config_writes,
        metrics_listen: args.metrics_listen,
    })
    .await;
    let node = match node {
        Ok(node) => node,
        Err(e) => {
            telemetry.shutdown().await;
            return Err(e.to_string());
        }
    };
    fabric_sidecar::runtime::otlp_metrics::spawn_metrics_export(&telemetry, node.handle.clone());
    if let Some(warning) = &node.config_warning {
        tracing::error!(error = %warning, "config file refused; running on the last good config from the state dir");
    }
    // One machine-readable line on stdout: the addresses actually bound.
    println!(
        "{}",
        serde_json::json!({
            "event": "listening",
            "nodeId": node.node_id,
            "peer": node.peer_addr.to_string(),
            "api": node.api_addr.to_string(),
            "metrics": node.metrics_addr.map(|a| a.to_string()),
            "configSource": node.config_source,
        })
    );
    tracing::info!(node = %node.node_id, peer = %node.peer_addr, api = %node.api_addr, "routing sidecar running");
    start_control(&node, &args);
    wait_for_signals(&node, &args).await;
    node.handle.shutdown(args.announce_restart).await;
    telemetry.shutdown().await;
    Ok(())
}

/// Who may `PUT /config`: nobody with --operator (the operator is the
/// source of config), holders of the --api-token-file token, else nobody.
fn config_writes(args: &RunArgs) -> Result<fabric_sidecar::runtime::api::ConfigWrites, String> {
    use fabric_sidecar::runtime::api::ConfigWrites;
    if args.operator.is_some() {
        return Ok(ConfigWrites::Operator);
    }
    let Some(path) = &args.api_token_file else { return Ok(ConfigWrites::Disabled) };
    let token = std::fs::read_to_string(path).map_err(|e| format!("--api-token-file {}: {e}", path.display()))?;
    ConfigWrites::token(&token).ok_or_else(|| format!("--api-token-file {}: the file is empty", path.display()))
}

#[cfg(unix)]
async fn wait_for_signals(node: &fabric_sidecar::runtime::RunningNode, args: &RunArgs) {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut term), Ok(mut int), Ok(mut hup)) =
        (signal(SignalKind::terminate()), signal(SignalKind::interrupt()), signal(SignalKind::hangup()))
    else {
        tracing::error!("cannot install signal handlers");
        return;
    };
    loop {
        tokio::select! {
            _ = term.recv() => return,
            _ = int.recv() => return,
            _ = hup.recv() => reload_from_file(node, args).await,
        }
    }
}

#[cfg(not(unix))]
async fn wait_for_signals(_: &fabric_sidecar::runtime::RunningNode, _: &RunArgs) {
    let _ = tokio::signal::ctrl_c().await;
}

async fn reload_from_file(node: &fabric_sidecar::runtime::RunningNode, args: &RunArgs) {
    let Some(path) = &args.config else {
        tracing::warn!("SIGHUP without --config: nothing to reload");
        return;
    };
    let config = std::fs::read_to_string(path)
        .map_err(|e| e.to_string())
        .and_then(|text| SidecarConfig::from_yaml(&text).map_err(|e| e.to_string()));
    match config {
        Ok(config) => match node.handle.apply_config(config, "file").await {
            Ok(Ok(())) => tracing::info!(file = %path.display(), "config reloaded"),
            Ok(Err(e)) => tracing::error!(file = %path.display(), error = %e, "reload refused; previous config stays"),
            Err(e) => tracing::error!(error = %e, "reload failed"),
        },
        Err(e) => tracing::error!(file = %path.display(), error = %e, "reload refused; previous config stays"),
    }
}

fn keygen(key_id: String, out: Option<PathBuf>) -> Result<(), String> {
    use fabric_core::config::encode_public_key;
    use fabric_core::security::SigningIdentity;
    use fabric_sidecar::runtime::state_dir::SigningKeyFile;
    let identity = SigningIdentity::generate(key_id.into()).map_err(|e| format!("no randomness: {e}"))?;
    let json = serde_json::to_string_pretty(&SigningKeyFile::from_identity(&identity)).map_err(|e| e.to_string())?;
    match out {
        Some(path) => {
            std::fs::write(&path, json + "\n").map_err(|e| format!("{}: {e}", path.display()))?;
            eprintln!("wrote {}", path.display());
        }
        None => println!("{json}"),
    }
    eprintln!("publicKey (for security.trustedKeys): {}", encode_public_key(&identity.verifying_key()));
    Ok(())
}

fn check_config(path: &std::path::Path) -> Result<(), String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let config = SidecarConfig::from_yaml(&text).map_err(|e| format!("{}: {e}", path.display()))?;
    println!(
        "{}: valid config for node {} ({} neighbors, {} local routes)",
        path.display(),
        config.node_id,
        config.neighbors.len(),
        config.originate.len()
    );
    Ok(())
}

fn print_tables(fabric: &Fabric) {
    for id in fabric.node_ids() {
        println!("  {id}:");
        for route in fabric.engine(id.as_str()).routes() {
            let path: Vec<&str> = route.path.iter().map(|h| h.as_str()).collect();
            println!(
                "    {:<12} via {:<9} cost {:>3}  latency {:>6} us  path [{}]",
                route.destination.as_str(),
                route.next_hop.as_str(),
                route.metrics.cost,
                route.metrics.latency_us,
                path.join(" > ")
            );
        }
    }
}

fn print_trace(trace: &SelectionTrace) {
    println!("  order: {}", trace.order.join(" > "));
    for candidate in &trace.candidates {
        let verdict = match &candidate.status {
            CandidateStatus::Selected => "selected".to_string(),
            CandidateStatus::Lost { winner, criterion, detail } => {
                format!("lost to {winner} on {criterion:?}: {detail}")
            }
            CandidateStatus::Ineligible { reason, detail, .. } => format!("ineligible ({}): {detail}", reason.label()),
        };
        println!("    via {:<9} cost {:>3}: {verdict}", candidate.next_hop.as_str(), candidate.metrics.cost);
    }
}

fn simulate(topology: Option<std::path::PathBuf>, fail: Option<String>) -> Result<(), String> {
    let text = match &topology {
        Some(path) => std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?,
        None => DEFAULT_TOPOLOGY.to_string(),
    };
    let topology = Topology::from_yaml(&text).map_err(|e| e.to_string())?;
    let mut fabric = Fabric::from_topology(&topology, Timestamp(0)).map_err(|e| e.to_string())?;
    let rounds = fabric.run_until_quiet(1_000);
    println!(
        "converged in {rounds} gossip rounds, {} messages, {} nodes",
        fabric.messages_delivered,
        fabric.node_ids().len()
    );
    print_tables(&fabric);

    let victim =
        fail.or_else(|| topology.fail_node.as_ref().map(|n| n.to_string())).unwrap_or_else(|| busiest_node(&topology));
    // Explain the first selection that had a real choice to make.
    let contested = fabric.node_ids().into_iter().find_map(|id| {
        let engine = fabric.engine(id.as_str());
        engine.routes().into_iter().find_map(|route| {
            let trace = engine.explain(route.destination.as_str(), fabric.now())?;
            (trace.candidates.len() > 1).then(|| (id.clone(), trace))
        })
    });
    if let Some((node, trace)) = contested {
        println!("\nexplain {} at {node}:", trace.destination);
        print_trace(&trace);
    }

    println!("\nfailing {victim}");
    let before = fabric.messages_delivered;
    fabric.advance(Duration::from_millis(1));
    fabric.kill(&victim.as_str().into());
    let rounds = fabric.run_until_quiet(1_000);
    println!("reconverged in {rounds} gossip rounds, {} messages", fabric.messages_delivered - before);
    print_tables(&fabric);
    for id in fabric.node_ids() {
        fabric.engine(id.as_str()).verify_invariants().map_err(|e| format!("{id}: {e}"))?;
    }
    Ok(())
}

fn busiest_node(topology: &Topology) -> String {
    let degree = |id: &str| topology.links.iter().filter(|l| l.a.as_str() == id || l.b.as_str() == id).count();
    topology
        .nodes
        .iter()
        .max_by(|a, b| degree(a.id.as_str()).cmp(&degree(b.id.as_str())).then(b.id.cmp(&a.id)))
        .map(|n| n.id.to_string())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory as _;

    use super::*;

    fn run_args(flags: &[&str]) -> Result<Box<RunArgs>, clap::Error> {
        let cli = Cli::try_parse_from(["routing-sidecar", "run"].iter().chain(flags))?;
        match cli.command {
            Command::Run(args) => Ok(args),
            _ => unreachable!("parsed as run"),
        }
    }

    #[test]
    fn duration_flags_read_their_defaults_and_the_config_duration_syntax() {
        Cli::command().debug_assert();
        let defaults = run_args(&[]).unwrap();
        assert_eq!(defaults.otlp_metrics_interval, Duration::from_secs(10));
        let given = run_args(&["--otlp-metrics-interval", "1m 30s", "--operator-initial-timeout", "2.5s"]).unwrap();
        assert_eq!(given.otlp_metrics_interval, Duration::from_secs(90));
        assert_eq!(given.operator_initial_timeout, Duration::from_millis(2_500));
        let error = run_args(&["--otlp-metrics-interval", "1 month"]).unwrap_err().to_string();
        assert!(
            error.contains("--otlp-metrics-interval") && error.contains("\"1 month\" is not a duration"),
            "{error}"
        );
        for subcommand in [
            &["lab", "--timeout", "45s"][..],
            &["soak", "--duration", "3h", "--gossip-interval", "50ms", "--hold-down", "1s"][..],
        ] {
            Cli::try_parse_from(std::iter::once("routing-sidecar").chain(subcommand.iter().copied())).unwrap();
        }
    }
}
