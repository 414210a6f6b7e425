//! `fabric-operator`: the fabric routing operator. `analyze` checks a
//! manifest folder offline; `run --manifests DIR` is local mode: it follows
//! the folder and distributes configs to sidecars (docs/operator.md,
//! "Distribution"). Watching a cluster comes next and shares all of it.

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
    /// Run the operator: compile the manifests and distribute configs to
    /// the sidecars that dial in. Local mode (`--manifests DIR`) only today.
    Run(RunArgs),
}

#[derive(Args)]
struct RunArgs {
    /// Folder of CR YAML to follow (an edit is an apply). Required until
    /// cluster mode exists.
    #[arg(long, value_name = "DIR")]
    manifests: Option<PathBuf>,
    /// gRPC config distribution; port 0 lets the OS choose.
    #[arg(long, default_value = "127.0.0.1:7600")]
    listen: SocketAddr,
    /// HTTP status API (`/status`, `/sidecars`); keep it on localhost.
    #[arg(long, default_value = "127.0.0.1:0")]
    http: SocketAddr,
    /// PEM serving certificate (e.g. from the operator's TLS Secret).
    #[arg(long, requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    #[arg(long, requires = "tls_cert")]
    tls_key: Option<PathBuf>,
    /// Serve without TLS (local use only).
    #[arg(long, conflicts_with_all = ["tls_cert", "tls_key"])]
    insecure_plaintext: bool,
    /// Static bearer token sidecars must present (local mode).
    #[arg(long)]
    token_file: Option<PathBuf>,
    /// Accept sidecars without a token (local experiments only).
    #[arg(long, conflicts_with = "token_file")]
    allow_unauthenticated: bool,
    /// After start, collect reconnecting sidecars this long before pushing.
    #[arg(long, default_value = "2s", value_parser = parse_duration)]
    resume_grace: Duration,
    /// Drop a sidecar from the fabric when its stream ends (default: keep
    /// it, marked disconnected).
    #[arg(long)]
    forget_disconnected: bool,
    /// Keeps the sidecars that said Hello across restarts, so a restarted
    /// operator resumes without pushing to sidecars already current.
    #[arg(long)]
    state_dir: Option<PathBuf>,
    /// How often the manifest folder is checked for edits.
    #[arg(long, default_value = "500ms", value_parser = parse_duration)]
    poll_interval: Duration,
}

fn parse_duration(text: &str) -> Result<Duration, String> {
    fabric_operator::duration::parse_duration(text).map_err(|e| e.to_string())
}

fn run(args: RunArgs) -> ExitCode {
    use fabric_operator::distribution::auth::{StaticToken, TokenVerifier};
    use fabric_operator::distribution::local::{self, LocalOptions};
    use fabric_operator::distribution::server::TlsFiles;
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();
    let fail = |message: String| {
        eprintln!("fabric-operator run: {message}");
        ExitCode::from(2)
    };
    let Some(manifests) = args.manifests else {
        return fail("cluster mode is not implemented yet; pass --manifests DIR (local mode)".into());
    };
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
    let options = LocalOptions {
        manifests,
        listen: args.listen,
        http: args.http,
        tls,
        verifier,
        resume_grace: args.resume_grace,
        forget_disconnected: args.forget_disconnected,
        poll_interval: args.poll_interval,
        state_dir: args.state_dir,
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build() {
        Ok(runtime) => runtime,
        Err(e) => return fail(e.to_string()),
    };
    match runtime.block_on(local::run(options)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => fail(message),
    }
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
}

fn analyze(args: &AnalyzeArgs) -> ExitCode {
    let analysis = match fabric_operator::analyze::analyze_dir(&args.path) {
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

fn main() -> ExitCode {
    match Cli::parse().command {
        Command::Analyze(args) => analyze(&args),
        Command::Run(args) => run(args),
    }
}
