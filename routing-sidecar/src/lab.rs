//! `routing-sidecar lab`: a local fabric of real sidecar processes.

use std::path::PathBuf;
use std::time::Duration;

use fabric_engine::sim::Topology;
use fabric_sidecar::runtime::lab::{Lab, LabError};

use crate::DEFAULT_TOPOLOGY;

#[derive(clap::Args, Debug)]
pub(crate) struct LabArgs {
    /// Topology YAML; the embedded example when absent.
    #[arg(long)]
    topology: Option<PathBuf>,
    /// Where each node keeps its config, state and log (default: a new
    /// directory under the system temp dir).
    #[arg(long)]
    dir: Option<PathBuf>,
    /// Stop the fabric once it has converged instead of running until Ctrl-C.
    #[arg(long)]
    exit_after_converge: bool,
    /// How long to wait for convergence.
    #[arg(long, default_value = "30s", value_parser = fabric_core::time::parse_duration)]
    timeout: Duration,
}

/// Why `routing-sidecar lab` stopped.
#[derive(Debug, thiserror::Error)]
pub(crate) enum LabCommandError {
    #[error("{0}")]
    Runtime(#[source] std::io::Error),
    #[error("{}: {source}", path.display())]
    ReadTopology {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{0}")]
    Topology(#[source] fabric_core::config::ConfigError),
    #[error("{0}")]
    CurrentExe(#[source] std::io::Error),
    #[error(transparent)]
    Lab(#[from] LabError),
}

pub(crate) fn run(args: LabArgs) -> Result<(), LabCommandError> {
    let runtime =
        tokio::runtime::Builder::new_current_thread().enable_all().build().map_err(LabCommandError::Runtime)?;
    runtime.block_on(lab(args))
}

async fn lab(args: LabArgs) -> Result<(), LabCommandError> {
    let text = match &args.topology {
        Some(path) => std::fs::read_to_string(path)
            .map_err(|source| LabCommandError::ReadTopology { path: path.clone(), source })?,
        None => DEFAULT_TOPOLOGY.to_string(),
    };
    let topology = Topology::from_yaml(&text).map_err(LabCommandError::Topology)?;
    let dir = args.dir.unwrap_or_else(|| std::env::temp_dir().join(format!("fabric-lab-{}", std::process::id())));
    let exe = std::env::current_exe().map_err(LabCommandError::CurrentExe)?;
    let lab = Lab::start(&exe, &topology, &dir, |_| {}).await?;
    println!("fabric of {} sidecars under {}", lab.nodes.len(), dir.display());
    for (id, node) in &lab.nodes {
        println!("  {id:<10} peers {}  api http://{}", node.peer, node.api);
    }
    let started = tokio::time::Instant::now();
    lab.wait_for_routes(lab.destinations().len(), args.timeout).await?;
    println!("converged in {:?}", started.elapsed());
    for (id, node) in &lab.nodes {
        println!("  {id}:");
        for route in node.get_json("/routes").await?.as_array().into_iter().flatten() {
            println!(
                "    {:<12} via {:<9} cost {}",
                route["destination"].as_str().unwrap_or(""),
                route["next_hop"].as_str().unwrap_or(""),
                route["metrics"]["cost"]
            );
        }
    }
    if args.exit_after_converge {
        return Ok(());
    }
    println!(
        "running; try: curl http://{}/routes  (Ctrl-C stops the fabric)",
        lab.nodes.values().next().map(|n| n.api.to_string()).unwrap_or_default()
    );
    let _ = tokio::signal::ctrl_c().await;
    Ok(())
}
