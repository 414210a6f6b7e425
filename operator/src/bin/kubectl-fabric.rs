//! `kubectl-fabric`: the kubectl plugin of the fabric (`kubectl fabric ...`
//! once the binary is on PATH). See docs/kubectl-fabric.md.
//!
//! - `routes`: a sidecar's route table (`GET /routes` of its local API);
//! - `explain DEST`: why a sidecar routes DEST as it does
//!   (`GET /routes/DEST/explain`);
//! - `sync`: every sidecar's config sync state, like `istioctl
//!   proxy-status` (`GET /sidecars` of the operator);
//! - `analyze -f DIR`: the offline check, the same as `fabric-operator
//!   analyze`.
//!
//! Exit status: 0 done; 1 `analyze` found errors or conflicts, or the
//! sidecar knows nothing about DEST; 2 bad usage or unreadable input; 3 the
//! sidecar or operator is unreachable or answered something unexpected.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};
use fabric_operator::plugin::check::{self, ClusterFacts};
use fabric_operator::plugin::client::{Api, Service, encode_segment};
use fabric_operator::plugin::port_forward::{PortForward, Target};
use fabric_operator::plugin::{EXIT_FINDINGS, EXIT_OK, EXIT_USAGE, Failure, render};
use serde_json::{Value, json};

#[derive(Parser)]
#[command(
    name = "kubectl-fabric",
    bin_name = "kubectl fabric",
    version,
    about = "Inspect the fabric routing: sidecar routes and route traces, operator sync state, offline analysis",
    after_help = "In a cluster, reach the APIs with kubectl port-forward (or --pod):\n  \
        kubectl -n fabric-system port-forward deployment/fabric-fabric-routing 8080   # kubectl fabric sync\n  \
        kubectl -n NAMESPACE port-forward pod/POD 7480                              # kubectl fabric routes / explain\n\n\
        Exit status: 0 ok; 1 analyze found errors, or explain: nothing known about DEST; \
        2 usage or unreadable input; 3 API unreachable or unexpected answer."
)]
struct Cli {
    /// `text`: tables and readable traces; `json`: the API's answer unchanged.
    #[arg(short, long, global = true, value_enum, default_value_t = Output::Text)]
    output: Output,
    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Output {
    Text,
    Json,
}

#[derive(Subcommand)]
enum Command {
    /// The route table of a sidecar: destination, next hop, path, metrics, tags.
    Routes(SidecarArgs),
    /// Why a sidecar routes DEST as it does: the winner, why every other
    /// candidate lost, what was refused or suppressed and why.
    Explain {
        /// The destination (as the application asks for it).
        #[arg(value_name = "DEST")]
        destination: String,
        #[command(flatten)]
        sidecar: SidecarArgs,
    },
    /// Config sync of every sidecar, from the operator (like `istioctl proxy-status`).
    Sync(OperatorArgs),
    /// The fabric's health on one screen, from the operator: leader and
    /// version, sidecars not in sync, key rotation, error conditions,
    /// compiler errors. Exits 1 when something needs attention.
    Status(StatusArgs),
    /// Check a folder of manifests offline (the same output and exit status
    /// as `fabric-operator analyze`).
    Analyze(AnalyzeArgs),
    /// `check --pre`: whether the chart can be installed on the cluster of
    /// the current kubeconfig context by its user (API version, API groups,
    /// permissions, fabric CRDs). Exits 1 when a check fails.
    Check(CheckArgs),
    /// What applying a file of fabric objects would do: the fabric as the
    /// cluster has it and with the file applied, compiled and simulated;
    /// per sidecar, next hops that change, destinations lost or gained,
    /// routes refused by policy, keys no longer trusted. Exits 1 when a
    /// sidecar loses a destination or the result has errors.
    Plan(PlanArgs),
}

#[derive(Args)]
struct StatusArgs {
    #[command(flatten)]
    operator: OperatorArgs,
    /// A Prometheus that scrapes the sidecars, HOST:PORT: adds announcement
    /// rejects by reason over --window.
    #[arg(long, value_name = "ADDR")]
    prometheus: Option<String>,
    /// The window of the rejects (a PromQL duration).
    #[arg(long, default_value = "5m", requires = "prometheus")]
    window: String,
}

#[derive(Args)]
struct PlanArgs {
    /// The change: a file (or folder) of RoutePolicies, NeighborPolicies,
    /// RouteKeys, LinkStateAreas (created or replaced) and Pods.
    #[arg(short = 'f', long = "filename", value_name = "FILE")]
    change: PathBuf,
    /// Only this namespace of the cluster (default: every namespace).
    #[arg(short, long)]
    namespace: Option<String>,
    #[command(flatten)]
    identity: fabric_operator::identity_flags::IdentityFlags,
}

#[derive(Args)]
struct CheckArgs {
    /// Checks before installing (the only mode of `check`).
    #[arg(long)]
    pre: bool,
    /// The namespace the chart is to be installed in.
    #[arg(short, long, default_value = "fabric-system")]
    namespace: String,
}

#[derive(Args)]
struct SidecarArgs {
    /// The sidecar's local API, HOST:PORT (`routing-sidecar run --api`).
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:7480")]
    sidecar: String,
    /// Instead of --sidecar: run `kubectl port-forward` to this pod
    /// ([NAMESPACE/]POD) on a random local port for the command.
    #[arg(long, value_name = "NS/POD", conflicts_with = "sidecar")]
    pod: Option<String>,
    /// With --pod: the sidecar's API port in the pod.
    #[arg(long, value_name = "PORT", requires = "pod", default_value_t = 7480)]
    remote_port: u16,
}

#[derive(Args)]
struct OperatorArgs {
    /// The operator's HTTP API, HOST:PORT (`fabric-operator run --http`).
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:8080")]
    operator: String,
    /// Instead of --operator: run `kubectl port-forward` to the operator
    /// (NAMESPACE/TYPE/NAME, e.g. fabric-system/deployment/fabric-fabric-routing,
    /// or [NAMESPACE/]POD).
    #[arg(long, value_name = "NS/TYPE/NAME", conflicts_with = "operator")]
    pod: Option<String>,
    /// With --pod: the operator's HTTP port in the pod.
    #[arg(long, value_name = "PORT", requires = "pod", default_value_t = 8080)]
    remote_port: u16,
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
    #[command(flatten)]
    identity: fabric_operator::identity_flags::IdentityFlags,
}

/// How long `--pod` waits for kubectl's "Forwarding from" line.
const PORT_FORWARD_TIMEOUT: Duration = Duration::from_secs(30);

/// An API, possibly behind a port-forward this command started.
struct Connection {
    api: Api,
    forward: Option<PortForward>,
}

impl Connection {
    async fn open(service: Service, address: &str, pod: Option<&str>, remote_port: u16) -> Result<Self, Failure> {
        let Some(pod) = pod else {
            return Ok(Connection { api: Api::resolve(service, address).await?, forward: None });
        };
        let target = Target::parse(pod).map_err(|e| Failure::new(EXIT_USAGE, e))?;
        let forward = PortForward::start("kubectl", &target, remote_port, PORT_FORWARD_TIMEOUT).await?;
        let shown = format!("{} (pod {target} port {remote_port}, forwarded by kubectl)", forward.local);
        let hint = format!(
            "kubectl forwards {target} port {remote_port} to {}; is the {} listening on port {remote_port} in the pod? \
             Set --remote-port otherwise.",
            forward.local,
            service.describe()
        );
        Ok(Connection { api: Api::at(service, forward.local, shown, hint), forward: Some(forward) })
    }

    async fn close(self) {
        if let Some(forward) = self.forward {
            forward.stop().await;
        }
    }
}

/// Prints `body` as it came, or rendered.
fn print_answer(
    output: Output,
    body: &str,
    value: &Value,
    render: fn(&Value) -> Result<String, String>,
    api: &Api,
) -> Result<(), Failure> {
    match output {
        Output::Json => {
            print!("{body}");
            if !body.ends_with('\n') {
                println!();
            }
        }
        Output::Text => {
            let text = render(value).map_err(|e| {
                Failure::new(
                    fabric_operator::plugin::EXIT_UNREACHABLE,
                    format!("unexpected answer from {}: {e}", api.shown),
                )
            })?;
            print!("{text}");
        }
    }
    Ok(())
}

async fn routes(output: Output, args: &SidecarArgs) -> Result<u8, Failure> {
    let connection = Connection::open(Service::Sidecar, &args.sidecar, args.pod.as_deref(), args.remote_port).await?;
    let result = async {
        let (body, value) = connection.api.get_json("/routes").await?;
        print_answer(output, &body, &value, render::routes, &connection.api)
    }
    .await;
    connection.close().await;
    result.map(|()| EXIT_OK)
}

async fn explain(output: Output, destination: &str, args: &SidecarArgs) -> Result<u8, Failure> {
    let connection = Connection::open(Service::Sidecar, &args.sidecar, args.pod.as_deref(), args.remote_port).await?;
    let result = async {
        let api = &connection.api;
        let path = format!("/routes/{}/explain", encode_segment(destination));
        let response = api.get(&path).await?;
        let message = fabric_operator::plugin::client::error_text(&response.body);
        if response.status == 404 && message.starts_with("nothing known about") {
            return Err(Failure::new(EXIT_FINDINGS, format!("the sidecar at {}: {message}", api.shown)));
        }
        if response.status != 200 {
            return Err(api.unexpected(&path, &response));
        }
        let (body, value) = api.parse(&path, response.body)?;
        print_answer(output, &body, &value, render::explain, api)
    }
    .await;
    connection.close().await;
    result.map(|()| EXIT_OK)
}

async fn sync(output: Output, args: &OperatorArgs) -> Result<u8, Failure> {
    let connection = Connection::open(Service::Operator, &args.operator, args.pod.as_deref(), args.remote_port).await?;
    let result = async {
        let (body, value) = connection.api.get_json("/sidecars").await?;
        print_answer(output, &body, &value, render::sync, &connection.api)
    }
    .await;
    connection.close().await;
    result.map(|()| EXIT_OK)
}

async fn status(output: Output, args: &StatusArgs) -> Result<u8, Failure> {
    use fabric_operator::plugin::status;
    let unexpected = |e: String| Failure::new(fabric_operator::plugin::EXIT_UNREACHABLE, e);
    let rejects = match &args.prometheus {
        None => None,
        Some(address) => {
            let prometheus = Api::resolve(Service::Prometheus, address).await?;
            let path = format!("/api/v1/query?query={}", encode_segment(&status::rejects_query(&args.window)));
            let (_, answer) = prometheus.get_json(&path).await?;
            Some(status::rejects_from(&answer).map_err(unexpected)?)
        }
    };
    let args_operator = &args.operator;
    let connection = Connection::open(
        Service::Operator,
        &args_operator.operator,
        args_operator.pod.as_deref(),
        args_operator.remote_port,
    )
    .await?;
    let result = async {
        let (status_body, status) = connection.api.get_json("/status").await?;
        let (sidecars_body, sidecars) = connection.api.get_json("/sidecars").await?;
        let window_rejects = rejects.as_deref().map(|r| (args.window.as_str(), r));
        let (text, problem) = status::status(&status, &sidecars, window_rejects).map_err(unexpected)?;
        match output {
            Output::Text => print!("{text}"),
            Output::Json => println!("{{\"status\":{status_body},\"sidecars\":{sidecars_body}}}"),
        }
        Ok(if problem { EXIT_FINDINGS } else { EXIT_OK })
    }
    .await;
    connection.close().await;
    result
}

/// `fabric-operator analyze`, through the same library calls.
fn analyze(output: Output, args: &AnalyzeArgs) -> Result<u8, Failure> {
    let analysis = fabric_operator_core::analyze::analyze_dir(&args.path, &args.identity.settings())
        .map_err(|e| Failure::new(EXIT_USAGE, e.to_string()))?;
    match output {
        Output::Text => {
            print!("{}", analysis.render_findings());
            if !args.no_configs {
                print!("{}", analysis.render_configs());
            }
        }
        Output::Json => {
            let issues: Vec<Value> = analysis
                .manifests
                .issues
                .iter()
                .map(|issue| {
                    json!({
                        "severity": issue.severity,
                        "source": issue.source.to_string(),
                        "object": issue.object,
                        "message": issue.message,
                        "text": issue.to_string(),
                    })
                })
                .collect();
            let mut compilation = serde_json::to_value(&analysis.compilation)
                .map_err(|e| Failure::new(EXIT_USAGE, format!("cannot render the compilation as JSON: {e}")))?;
            if args.no_configs
                && let Some(map) = compilation.as_object_mut()
            {
                map.remove("sidecars");
            }
            let document = json!({
                "hasErrors": analysis.has_errors(),
                "summary": analysis.render_findings().lines().last().unwrap_or_default(),
                "manifestIssues": issues,
                "compilation": compilation,
            });
            println!("{}", serde_json::to_string_pretty(&document).unwrap_or_default());
        }
    }
    Ok(if analysis.has_errors() { EXIT_FINDINGS } else { EXIT_OK })
}

/// Runs `kubectl ARGS`; its stdout, or why it failed.
fn kubectl(args: &[&str]) -> Result<std::process::Output, String> {
    std::process::Command::new("kubectl")
        .args(args)
        .stdin(std::process::Stdio::null())
        .output()
        .map_err(|e| format!("cannot run kubectl {}: {e}", args.join(" ")))
}

/// Gathers the facts of `check --pre` with kubectl, as the user of the
/// current kubeconfig context.
fn cluster_facts(namespace: &str) -> ClusterFacts {
    let mut facts = ClusterFacts { namespace: namespace.to_owned(), ..Default::default() };
    if let Ok(out) = kubectl(&["version", "-o", "json"])
        && let Ok(json) = serde_json::from_slice::<Value>(&out.stdout)
    {
        facts.server_version = check::server_version(&json);
    }
    if let Ok(out) = kubectl(&["api-versions"]) {
        facts.api_versions = String::from_utf8_lossy(&out.stdout).lines().map(str::to_owned).collect();
    }
    for resource in check::CLUSTER_RESOURCES.iter().chain(check::NAMESPACED_RESOURCES) {
        let mut args = vec!["auth", "can-i", "create", resource];
        if check::NAMESPACED_RESOURCES.contains(resource) {
            args.extend(["-n", namespace]);
        }
        // `yes` (exit 0) or `no` (exit 1); anything else is an error.
        if let Ok(out) = kubectl(&args) {
            match String::from_utf8_lossy(&out.stdout).trim() {
                "yes" => facts.can_create.insert((*resource).to_owned(), true),
                "no" => facts.can_create.insert((*resource).to_owned(), false),
                _ => None,
            };
        }
    }
    let mut args = vec!["get", "crd", "--ignore-not-found", "-o", "name"];
    args.extend(check::CRDS);
    if let Ok(out) = kubectl(&args) {
        facts.crds_present = String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(|line| line.trim_start_matches("customresourcedefinition.apiextensions.k8s.io/").to_owned())
            .collect();
    }
    facts
}

/// The fabric objects and sidecar pods of the cluster, as manifest files in
/// `dir` (one JSON document per object).
fn export_fabric(dir: &std::path::Path, namespace: Option<&str>) -> Result<(), Failure> {
    let scope: Vec<&str> = match namespace {
        Some(namespace) => vec!["-n", namespace],
        None => vec!["-A"],
    };
    let kinds = "routepolicies.routing.fabric.dev,neighborpolicies.routing.fabric.dev,routekeys.routing.fabric.dev,\
                 linkstateareas.routing.fabric.dev";
    let queries: [(&str, Vec<&str>); 2] = [
        ("objects", vec!["get", kinds, "-o", "json"]),
        ("pods", vec!["get", "pods", "-l", "routing.fabric.dev/sidecar=true", "-o", "json"]),
    ];
    let unreachable = |message: String| Failure::new(fabric_operator::plugin::EXIT_UNREACHABLE, message);
    for (name, mut args) in queries {
        args.extend(&scope);
        let out = kubectl(&args).map_err(unreachable)?;
        if !out.status.success() {
            let stderr = String::from_utf8_lossy(&out.stderr);
            return Err(unreachable(format!("kubectl {}: {}", args.join(" "), stderr.trim())));
        }
        let list: Value = serde_json::from_slice(&out.stdout)
            .map_err(|e| unreachable(format!("kubectl {}: not JSON: {e}", args.join(" "))))?;
        let documents: Vec<String> =
            list["items"].as_array().into_iter().flatten().map(|item| item.to_string()).collect();
        std::fs::write(dir.join(format!("{name}.yaml")), documents.join("\n---\n"))
            .map_err(|e| Failure::new(EXIT_USAGE, format!("{}: {e}", dir.display())))?;
    }
    Ok(())
}

fn plan(args: &PlanArgs) -> Result<u8, Failure> {
    let dir = std::env::temp_dir().join(format!("kubectl-fabric-plan-{}", std::process::id()));
    std::fs::create_dir_all(&dir).map_err(|e| Failure::new(EXIT_USAGE, format!("{}: {e}", dir.display())))?;
    let result = export_fabric(&dir, args.namespace.as_deref()).and_then(|()| {
        fabric_operator_core::analyze::plan_dir(&dir, &args.change, &args.identity.settings())
            .map_err(|e| Failure::new(EXIT_USAGE, e.to_string()))
    });
    let _ = std::fs::remove_dir_all(&dir);
    let (analysis, plan) = result?;
    print!("{}", analysis.render_findings());
    print!("{}", plan.render());
    Ok(if analysis.compilation.has_errors() || plan.loses_reachability() { EXIT_FINDINGS } else { EXIT_OK })
}

fn check_pre(output: Output, args: &CheckArgs) -> Result<u8, Failure> {
    if !args.pre {
        return Err(Failure::new(
            EXIT_USAGE,
            "check needs --pre (before installing); for a running fabric, `kubectl fabric sync`",
        ));
    }
    let checks = check::evaluate(&cluster_facts(&args.namespace));
    match output {
        Output::Text => print!("{}", check::render(&checks)),
        Output::Json => println!("{}", serde_json::to_string_pretty(&checks).unwrap_or_default()),
    }
    Ok(if check::failed(&checks) { EXIT_FINDINGS } else { EXIT_OK })
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let name = match &cli.command {
        Command::Routes(_) => "routes",
        Command::Explain { .. } => "explain",
        Command::Sync(_) => "sync",
        Command::Status(_) => "status",
        Command::Analyze(_) => "analyze",
        Command::Check(_) => "check",
        Command::Plan(_) => "plan",
    };
    let result = match &cli.command {
        Command::Analyze(args) => analyze(cli.output, args),
        Command::Check(args) => check_pre(cli.output, args),
        Command::Plan(args) => plan(args),
        command => match tokio::runtime::Builder::new_current_thread().enable_all().build() {
            Err(e) => Err(Failure::new(EXIT_USAGE, format!("cannot start the runtime: {e}"))),
            Ok(runtime) => runtime.block_on(async {
                match command {
                    Command::Routes(args) => routes(cli.output, args).await,
                    Command::Explain { destination, sidecar } => explain(cli.output, destination, sidecar).await,
                    Command::Sync(args) => sync(cli.output, args).await,
                    Command::Status(args) => status(cli.output, args).await,
                    Command::Analyze(_) | Command::Check(_) | Command::Plan(_) => unreachable!("handled above"),
                }
            }),
        },
    };
    match result {
        Ok(code) => ExitCode::from(code),
        Err(failure) => {
            eprintln!("kubectl fabric {name}: {failure}");
            ExitCode::from(failure.code)
        }
    }
}
