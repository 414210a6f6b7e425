//! `fabric-operator`: the fabric routing operator. Today: `analyze`, the
//! offline check of a manifest folder. The controller (`run`, watching the
//! cluster or a `--manifests` folder) comes next and shares the compiler.

use std::path::PathBuf;
use std::process::ExitCode;

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
    }
}
