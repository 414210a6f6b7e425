//! `fabric-operator`: the fabric routing operator. `analyze` checks a
//! manifest folder offline; `run --manifests DIR` is local mode: it follows
//! the folder and distributes configs to sidecars (docs/operator.md,
//! "Distribution"); `run` without `--manifests` is cluster mode: it watches
//! the API server, distributes, and writes status (docs/operator.md,
//! "Cluster mode").

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};

#[derive(Parser)]
#[command(name = "fabric-operator", version, about = "Fabric routing operator")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Check a folder of manifests offline: print errors, conflicts and the
    /// config compiled for each sidecar. Exits 1 on errors or conflicts.
    Analyze(AnalyzeArgs),
    /// Run the operator: compile the CRs and distribute configs to the
    /// sidecars that dial in. With `--manifests DIR`: local mode (a folder);
    /// without: cluster mode (the API server, in-cluster config or
    /// kubeconfig).
    Run(Box<RunArgs>),
}

#[derive(Args)]
struct RunArgs {
    /// Folder of CR YAML to follow (an edit is an apply): local mode.
    /// Without it: cluster mode.
    #[arg(long, value_name = "DIR")]
    manifests: Option<PathBuf>,
    /// gRPC config distribution; port 0 lets the OS choose. Default
    /// 127.0.0.1:7600 (local mode), 0.0.0.0:7600 (cluster mode).
    #[arg(long)]
    listen: Option<SocketAddr>,
    /// HTTP API (`/status`, `/sidecars`, `/metrics`, `/healthz`; `/readyz`
    /// in cluster mode). Default 127.0.0.1:0 (local mode; keep it on
    /// localhost), 0.0.0.0:8080 (cluster mode, for the probes).
    #[arg(long)]
    http: Option<SocketAddr>,
    /// PEM serving certificate (e.g. from the operator's TLS Secret).
    #[arg(long, requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    #[arg(long, requires = "tls_cert")]
    tls_key: Option<PathBuf>,
    /// Serve without TLS (local use only).
    #[arg(long, conflicts_with_all = ["tls_cert", "tls_key"])]
    insecure_plaintext: bool,
    /// Static bearer token sidecars must present (local mode; cluster mode
    /// always checks tokens with a TokenReview).
    #[arg(long, requires = "manifests")]
    token_file: Option<PathBuf>,
    /// Accept sidecars without a token (local experiments only).
    #[arg(long, conflicts_with = "token_file", requires = "manifests")]
    allow_unauthenticated: bool,
    /// After start, collect reconnecting sidecars this long before pushing
    /// (local mode).
    #[arg(long, default_value = "2s", value_parser = parse_duration, requires = "manifests")]
    resume_grace: Duration,
    /// Drop a sidecar from the fabric when its stream ends (default: keep
    /// it, marked disconnected). Local mode; in a cluster the pod watch
    /// decides.
    #[arg(long, requires = "manifests")]
    forget_disconnected: bool,
    /// Keeps the sidecars that said Hello across restarts, so a restarted
    /// operator resumes without pushing to sidecars already current (local
    /// mode).
    #[arg(long, requires = "manifests")]
    state_dir: Option<PathBuf>,
    /// Cluster mode: watch only this namespace (default: all namespaces).
    #[arg(long, conflicts_with = "manifests")]
    namespace: Option<String>,
    /// Cluster mode: the audience of the sidecars' projected
    /// ServiceAccount tokens, checked with a TokenReview.
    #[arg(long, default_value = fabric_operator_core::names::DEFAULT_AUDIENCE, conflicts_with = "manifests")]
    token_audience: String,
    /// Cluster mode: namespace of the leader-election Lease
    /// `fabric-operator` (default: the namespace of the kubeconfig context,
    /// in a pod its own).
    #[arg(long, conflicts_with = "manifests")]
    leader_election_namespace: Option<String>,
    /// Cluster mode: run without leader election (a single replica, or
    /// development). Two replicas without it both write status.
    #[arg(long, conflicts_with_all = ["manifests", "leader_election_namespace"])]
    no_leader_election: bool,
    /// Cluster mode: the sidecar injection webhook (`POST /mutate-pods`,
    /// HTTPS with the serving certificate) listens here.
    #[arg(long, default_value = fabric_operator::webhook::DEFAULT_LISTEN, conflicts_with = "manifests")]
    webhook_listen: SocketAddr,
    /// Cluster mode: do not serve the sidecar injection webhook.
    #[arg(long, conflicts_with = "manifests")]
    no_webhook: bool,
    /// Cluster mode: the MutatingWebhookConfiguration whose `caBundle` the
    /// operator keeps equal to the CA of its serving certificate (when the
    /// chart cannot render it; not with cert-manager's CA injector).
    #[arg(long, value_name = "NAME", conflicts_with = "manifests")]
    webhook_configuration: Option<String>,
    /// Cluster mode: validate the fabric kinds at admission
    /// (`POST /validate-fabric` on the webhook listener) with the operator's
    /// own compiler: `deny` refuses what a change adds that the operator
    /// would refuse or report, `warn` only warns, `off` does not serve it.
    #[arg(long, default_value = "off", value_parser = ["off", "warn", "deny"], conflicts_with = "manifests")]
    validation: String,
    /// Cluster mode: the ValidatingWebhookConfiguration whose `caBundle`
    /// the operator keeps equal to the CA of its serving certificate.
    #[arg(long, value_name = "NAME", conflicts_with = "manifests")]
    validating_webhook_configuration: Option<String>,
    /// Cluster mode: what injected sidecars dial (their `--operator`), the
    /// operator's Service: `https://NAME.NAMESPACE.svc:7600`. Required
    /// unless --no-webhook.
    #[arg(long, value_name = "URL", conflicts_with = "manifests")]
    sidecar_operator_url: Option<String>,
    /// Cluster mode: the image of the injected routing sidecar.
    #[arg(long, default_value = concat!("routing-sidecar:", env!("CARGO_PKG_VERSION")), conflicts_with = "manifests")]
    sidecar_image: String,
    /// Cluster mode: its pull policy (default: the cluster's).
    #[arg(long, value_parser = ["Always", "IfNotPresent", "Never"], conflicts_with = "manifests")]
    sidecar_image_pull_policy: Option<String>,
    /// Cluster mode: the injected sidecar's metrics listener port on the pod
    /// IP (`--metrics-listen`, container port `fabric-metrics`, and the
    /// `prometheus.io/*` annotations unless the pod has its own); 0: none.
    #[arg(long, default_value_t = fabric_operator_core::names::DEFAULT_METRICS_PORT, conflicts_with = "manifests")]
    sidecar_metrics_port: u16,
    /// Cluster mode: PEM CA injected sidecars verify the operator with,
    /// written into each pod's `routing.fabric.dev/operator-ca` annotation
    /// (default: `ca.crt` beside --tls-cert).
    #[arg(long, value_name = "FILE", conflicts_with_all = ["manifests", "sidecar_ca_configmap"])]
    sidecar_ca_file: Option<PathBuf>,
    /// Cluster mode: take that CA from this ConfigMap (key `ca.crt`) of the
    /// pod's namespace instead.
    #[arg(long, value_name = "NAME", conflicts_with = "manifests")]
    sidecar_ca_configmap: Option<String>,
    /// Cluster mode: a resource request of the injected sidecar
    /// (`cpu=10m`; repeated).
    #[arg(long = "sidecar-request", value_name = "NAME=QUANTITY", value_parser = parse_pair, conflicts_with = "manifests")]
    sidecar_requests: Vec<(String, String)>,
    /// Cluster mode: a resource limit of the injected sidecar
    /// (`memory=128Mi`; repeated).
    #[arg(long = "sidecar-limit", value_name = "NAME=QUANTITY", value_parser = parse_pair, conflicts_with = "manifests")]
    sidecar_limits: Vec<(String, String)>,
    /// Cluster mode: inject the sidecar as a native sidecar (init container
    /// with `restartPolicy: Always`): `auto` (API server 1.29 or newer),
    /// `always` or `never` (a regular container).
    #[arg(long, default_value = "auto", value_parser = parse_native_sidecars, conflicts_with = "manifests")]
    native_sidecars: fabric_operator::webhook::NativeSidecars,
    /// How often key rotation checks the operator-managed RouteKeys (a
    /// pending key becomes active at the first check after every sidecar
    /// acknowledged it).
    #[arg(long, default_value = "500ms", value_parser = parse_duration)]
    rotation_tick: Duration,
    /// OTLP/gRPC collector for traces of compiles, key rotation passes and
    /// status writes, and for the metrics of `/metrics` (`http://host:4317`);
    /// off when unset.
    #[arg(long, env = "OTEL_EXPORTER_OTLP_ENDPOINT")]
    otlp_endpoint: Option<String>,
    /// How often metrics are exported over OTLP (and the distributor's state
    /// is read for them).
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    otlp_metrics_interval: Duration,
    /// Log format on stderr: `text` or `json`.
    #[arg(long, default_value = "text")]
    log_format: String,
    /// How often the manifest folder is checked for edits (local mode).
    #[arg(long, default_value = "500ms", value_parser = parse_duration, requires = "manifests")]
    poll_interval: Duration,
    #[command(flatten)]
    identity: fabric_operator::identity_flags::IdentityFlags,
    /// Local mode: issue peer TLS certificates to sidecars that ask
    /// (`--peer-tls-from-operator`); the CA is kept in --state-dir.
    #[arg(long, requires = "manifests")]
    peer_certificates: bool,
    /// Cluster mode: issue peer TLS certificates, with the CA kept in this
    /// Secret of the operator's namespace (created when missing).
    #[arg(long, value_name = "NAME", conflicts_with = "manifests")]
    peer_ca_secret: Option<String>,
    /// How long an issued peer certificate is valid; renewed when a third
    /// of it is left.
    #[arg(long, default_value = "24h", value_parser = parse_duration)]
    peer_certificate_lifetime: Duration,
    /// SPIFFE trust domain of the peer certificates' URI names
    /// (`spiffe://DOMAIN/ns/NAMESPACE/node/NODE_ID`).
    #[arg(long, default_value = fabric_operator_core::peer_ca::DEFAULT_TRUST_DOMAIN)]
    peer_trust_domain: String,
}

/// The peer CA settings of `--peer-trust-domain` and
/// `--peer-certificate-lifetime` (fields, so that other fields of the args
/// may already be moved out).
fn peer_ca_settings(trust_domain: &str, lifetime: Duration) -> fabric_operator_core::peer_ca::PeerCaSettings {
    fabric_operator_core::peer_ca::PeerCaSettings { trust_domain: trust_domain.to_owned(), lifetime }
}

fn parse_pair(text: &str) -> Result<(String, String), String> {
    match text.split_once('=') {
        Some((key, value)) if !key.is_empty() && !value.is_empty() => Ok((key.to_string(), value.to_string())),
        _ => Err(format!("{text:?}: expected NAME=VALUE")),
    }
}

fn parse_native_sidecars(text: &str) -> Result<fabric_operator::webhook::NativeSidecars, String> {
    text.parse()
}

fn parse_duration(text: &str) -> Result<Duration, String> {
    fabric_operator_core::api::duration::parse_duration(text).map_err(|e| e.to_string())
}

fn run(args: RunArgs) -> ExitCode {
    use fabric_operator::distribution::auth::{StaticToken, TokenVerifier};
    use fabric_operator::local::{self, LocalOptions};
    use fabric_operator::tls::TlsFiles;
    let fail = |message: String| {
        eprintln!("fabric-operator run: {message}");
        ExitCode::from(2)
    };
    let Some(manifests) = args.manifests.clone() else {
        return run_cluster(args);
    };
    let telemetry = telemetry_options(&args);
    let tls = match (args.tls_cert, args.tls_key) {
        (Some(cert), Some(key)) => Some(TlsFiles { cert, key }),
        _ if args.insecure_plaintext => None,
        _ => return fail("TLS is on by default: pass --tls-cert and --tls-key, or --insecure-plaintext".into()),
    };
    let verifier: Option<Arc<dyn TokenVerifier>> = match &args.token_file {
        Some(path) => match std::fs::read_to_string(path) {
            Ok(token) if !token.trim().is_empty() => Some(Arc::new(StaticToken::new(&token))),
            Ok(_) => return fail(format!("{}: empty token", path.display())),
            Err(e) => return fail(format!("{}: {e}", path.display())),
        },
        None if args.allow_unauthenticated => None,
        None => return fail("sidecars must authenticate: pass --token-file, or --allow-unauthenticated".into()),
    };
    let peer_ca =
        args.peer_certificates.then(|| peer_ca_settings(&args.peer_trust_domain, args.peer_certificate_lifetime));
    let options = LocalOptions {
        manifests,
        listen: args.listen.unwrap_or(SocketAddr::from(([127, 0, 0, 1], 7600))),
        http: args.http.unwrap_or(SocketAddr::from(([127, 0, 0, 1], 0))),
        tls,
        verifier,
        resume_grace: args.resume_grace,
        forget_disconnected: args.forget_disconnected,
        poll_interval: args.poll_interval,
        state_dir: args.state_dir,
        rotation_tick: args.rotation_tick,
        peer_ca,
        identity: args.identity.settings(),
        otlp_metrics: None,
    };
    run_with_telemetry(telemetry, |otlp_metrics| local::run(LocalOptions { otlp_metrics, ..options }))
}

/// The telemetry of a `run`: logs on stderr, OTLP traces and metrics when
/// configured.
fn telemetry_options(args: &RunArgs) -> fabric_io::telemetry::TelemetryOptions {
    fabric_io::telemetry::TelemetryOptions {
        log_format: args.log_format.clone(),
        otlp_endpoint: args.otlp_endpoint.clone(),
        service_name: "fabric-operator".into(),
        metrics_interval: args.otlp_metrics_interval,
        ..Default::default()
    }
}

/// Runs `work` on a two-thread runtime with telemetry set up inside it (the
/// OTLP exporters need the runtime) and flushed at the end; `work` gets the
/// OTLP metrics export when one is configured.
fn run_with_telemetry<E: std::fmt::Display, F: std::future::Future<Output = Result<(), E>>>(
    telemetry: fabric_io::telemetry::TelemetryOptions,
    work: impl FnOnce(Option<fabric_operator::otlp_metrics::OtlpMetrics>) -> F,
) -> ExitCode {
    let fail = |message: String| {
        eprintln!("fabric-operator run: {message}");
        ExitCode::from(2)
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build() {
        Ok(runtime) => runtime,
        Err(e) => return fail(e.to_string()),
    };
    runtime.block_on(async {
        let guard = match fabric_io::telemetry::init(&telemetry) {
            Ok(guard) => guard,
            Err(error) => return fail(error.to_string()),
        };
        let result = work(guard.start_metrics("fabric-operator")).await;
        guard.shutdown().await;
        match result {
            Ok(()) => ExitCode::SUCCESS,
            Err(error) => fail(error.to_string()),
        }
    })
}

/// Cluster mode.
fn run_cluster(args: RunArgs) -> ExitCode {
    let telemetry = telemetry_options(&args);
    use fabric_operator::cluster::{self, ClusterOptions, LeaderElection};
    use fabric_operator::tls::TlsFiles;
    let fail = |message: String| {
        eprintln!("fabric-operator run: {message}");
        ExitCode::from(2)
    };
    // The same rule as local mode: TLS unless plaintext is asked for.
    let tls = match (args.tls_cert.clone(), args.tls_key.clone()) {
        (Some(cert), Some(key)) => Some(TlsFiles { cert, key }),
        _ if args.insecure_plaintext => None,
        _ => return fail("TLS is on by default: pass --tls-cert and --tls-key, or --insecure-plaintext".into()),
    };
    if args.token_audience.trim().is_empty() {
        return fail("--token-audience must not be empty".into());
    }
    let webhook = match webhook_options(&args, tls.as_ref()) {
        Ok(webhook) => webhook,
        Err(message) => return fail(message),
    };
    let options = ClusterOptions {
        namespace: args.namespace.filter(|n| !n.is_empty()),
        listen: args.listen.unwrap_or(SocketAddr::from(([0, 0, 0, 0], 7600))),
        http: args.http.unwrap_or(SocketAddr::from(([0, 0, 0, 0], 8080))),
        tls,
        token_audience: args.token_audience,
        leader_election: (!args.no_leader_election)
            .then_some(LeaderElection { namespace: args.leader_election_namespace }),
        webhook,
        rotation_tick: args.rotation_tick,
        identity: args.identity.settings(),
        peer_ca: args
            .peer_ca_secret
            .map(|secret| (secret, peer_ca_settings(&args.peer_trust_domain, args.peer_certificate_lifetime))),
        otlp_metrics: None,
    };
    run_with_telemetry(telemetry, |otlp_metrics| cluster::run(ClusterOptions { otlp_metrics, ..options }))
}

/// The injection webhook's options from the `--webhook-*` / `--sidecar-*`
/// flags (cluster mode); `None` with `--no-webhook`.
fn webhook_options(
    args: &RunArgs,
    tls: Option<&fabric_operator::tls::TlsFiles>,
) -> Result<Option<fabric_operator::webhook::WebhookOptions>, String> {
    use fabric_operator::webhook::{CaSource, InjectionSettings, WebhookOptions, resource_requirements};
    if args.no_webhook {
        return Ok(None);
    }
    let url = args.sidecar_operator_url.as_deref().map(str::trim).filter(|url| !url.is_empty()).ok_or(
        "the sidecar injection webhook needs --sidecar-operator-url (what injected sidecars dial, e.g. \
         https://fabric-operator.fabric-system.svc:7600), or pass --no-webhook",
    )?;
    let read_ca = |path: &std::path::Path, flag: &str| -> Result<String, String> {
        let pem = std::fs::read_to_string(path).map_err(|e| format!("{flag} {}: {e}", path.display()))?;
        if !pem.contains("-----BEGIN CERTIFICATE-----") {
            return Err(format!("{flag} {}: no PEM certificate in the file", path.display()));
        }
        Ok(pem)
    };
    // The CA of the serving certificate: for the sidecars (unless they take
    // it from a ConfigMap) and for the webhook configuration's caBundle.
    let pem = match (&args.sidecar_ca_file, tls) {
        _ if args.sidecar_ca_configmap.is_some() && args.webhook_configuration.is_none() => None,
        (Some(path), _) => Some(read_ca(path, "--sidecar-ca-file")?),
        (None, Some(tls)) => Some(read_ca(&tls.cert.with_file_name("ca.crt"), "--sidecar-ca-file (default)")?),
        (None, None) if args.webhook_configuration.is_some() => {
            return Err("--webhook-configuration needs the CA: pass --sidecar-ca-file".into());
        }
        (None, None) => None,
    };
    let ca = match &args.sidecar_ca_configmap {
        Some(name) => Some(CaSource::ConfigMap(name.clone())),
        None => pem.clone().map(CaSource::Inline),
    };
    let mut settings = InjectionSettings::new(args.sidecar_image.clone(), url, ca);
    settings.image_pull_policy = args.sidecar_image_pull_policy.clone();
    settings.token_audience = args.token_audience.clone();
    settings.peer_tls_from_operator = args.peer_ca_secret.is_some();
    settings.metrics_port = (args.sidecar_metrics_port != 0).then_some(args.sidecar_metrics_port);
    settings.resources = resource_requirements(&args.sidecar_requests, &args.sidecar_limits)?;
    Ok(Some(WebhookOptions {
        listen: args.webhook_listen,
        settings,
        native_sidecars: args.native_sidecars,
        configuration: args.webhook_configuration.clone(),
        ca_bundle: pem,
        validation: match args.validation.as_str() {
            "warn" => Some(fabric_operator_core::admission::validate::ValidationMode::Warn),
            "deny" => Some(fabric_operator_core::admission::validate::ValidationMode::Deny),
            _ => None,
        },
        validating_configuration: args.validating_webhook_configuration.clone(),
    }))
}

#[derive(Args)]
struct AnalyzeArgs {
    /// Folder (read recursively) or file of YAML manifests: the fabric CRs
    /// and the sidecar Pods.
    #[arg(short = 'f', long = "filename", value_name = "DIR")]
    path: PathBuf,
    /// Print only the findings, not the compiled configs.
    #[arg(long)]
    no_configs: bool,
    /// A file (or folder) of changed or new objects: compile the fabric
    /// with them applied, simulate both, and print per sidecar what the
    /// change does. Exits 1 when a sidecar loses a destination.
    #[arg(long, value_name = "FILE")]
    plan: Option<PathBuf>,
    #[command(flatten)]
    identity: fabric_operator::identity_flags::IdentityFlags,
}

fn analyze(args: &AnalyzeArgs) -> ExitCode {
    if let Some(change) = &args.plan {
        return match fabric_operator_core::analyze::plan_dir(&args.path, change, &args.identity.settings()) {
            Ok((analysis, plan)) => {
                print!("{}", analysis.render_findings());
                print!("{}", plan.render());
                if analysis.compilation.has_errors() || plan.loses_reachability() {
                    ExitCode::FAILURE
                } else {
                    ExitCode::SUCCESS
                }
            }
            Err(error) => {
                eprintln!("fabric-operator analyze: {error}");
                ExitCode::from(2)
            }
        };
    }
    let analysis = match fabric_operator_core::analyze::analyze_dir(&args.path, &args.identity.settings()) {
        Ok(analysis) => analysis,
        Err(error) => {
            eprintln!("fabric-operator analyze: {error}");
            return ExitCode::from(2);
        }
    };
    print!("{}", analysis.render_findings());
    if !args.no_configs {
        print!("{}", analysis.render_configs());
    }
    if analysis.has_errors() { ExitCode::FAILURE } else { ExitCode::SUCCESS }
}

/// Flags that only local mode (`--manifests`) reads. clap's `requires`
/// does not refuse them without `--manifests` (they have defaults), so
/// cluster mode checks by hand; cluster-only flags conflict with
/// `--manifests` in their definitions.
const LOCAL_ONLY: [&str; 6] =
    ["token_file", "allow_unauthenticated", "resume_grace", "forget_disconnected", "state_dir", "poll_interval"];

/// Refuses, naming it, a local-mode flag given in cluster mode: it would
/// silently have no effect.
fn check_mode_flags(matches: &clap::ArgMatches, local: bool) -> Result<(), String> {
    use clap::parser::ValueSource;
    if local {
        return Ok(());
    }
    let given: Vec<String> = LOCAL_ONLY
        .iter()
        .filter(|id| matches!(matches.value_source(id), Some(ValueSource::CommandLine | ValueSource::EnvVariable)))
        .map(|id| format!("--{}", id.replace('_', "-")))
        .collect();
    if given.is_empty() {
        return Ok(());
    }
    Err(format!(
        "{} only appl{} to local mode (--manifests DIR); in cluster mode {} no effect: remove {}",
        given.join(", "),
        if given.len() == 1 { "ies" } else { "y" },
        if given.len() == 1 { "it has" } else { "they have" },
        if given.len() == 1 { "it" } else { "them" },
    ))
}

fn main() -> ExitCode {
    use clap::{CommandFactory, FromArgMatches};
    let matches = Cli::command().get_matches();
    let cli = Cli::from_arg_matches(&matches).unwrap_or_else(|error| error.exit());
    match cli.command {
        Command::Analyze(args) => analyze(&args),
        Command::Run(args) => {
            let run_matches = matches.subcommand_matches("run").expect("the run subcommand was parsed");
            if let Err(message) = check_mode_flags(run_matches, args.manifests.is_some()) {
                eprintln!("fabric-operator run: {message}");
                return ExitCode::from(2);
            }
            run(*args)
        }
    }
}
