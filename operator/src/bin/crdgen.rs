//! Writes `crds/<plural>.routing.fabric.dev.yaml`, one file per CRD, the
//! same files into the Helm chart's `crds/` (which `scripts/check-chart.sh`
//! compares), and the field reference `docs/crd-reference.md`.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;

#[derive(Parser)]
#[command(about = "Write the fabric routing CRDs as YAML, one file per CRD")]
struct Args {
    /// Output folder (default: crds/ at the repository root).
    #[arg(long)]
    out: Option<PathBuf>,
}

fn main() -> ExitCode {
    let args = Args::parse();
    let out = args.out.clone().unwrap_or_else(fabric_operator_core::crds::default_dir);
    let files = match fabric_operator_core::crds::files() {
        Ok(files) => files,
        Err(error) => {
            eprintln!("crdgen: cannot render the CRDs: {error}");
            return ExitCode::FAILURE;
        }
    };
    if let Err(error) = std::fs::create_dir_all(&out) {
        eprintln!("crdgen: cannot create {}: {error}", out.display());
        return ExitCode::FAILURE;
    }
    // Without --out: the chart carries the same files.
    let chart = args.out.is_none().then(|| out.parent().unwrap_or(&out).join("charts/fabric-routing/crds"));
    let targets: Vec<PathBuf> = std::iter::once(out.clone()).chain(chart).collect();
    for (dir, file) in targets.iter().flat_map(|dir| files.iter().map(move |file| (dir, file))) {
        let path = dir.join(&file.file_name);
        if let Err(error) = std::fs::write(&path, &file.yaml) {
            eprintln!("crdgen: cannot write {}: {error}", path.display());
            return ExitCode::FAILURE;
        }
        println!("wrote {}", path.display());
    }
    // The field reference, from the same schemas.
    let reference = fabric_operator_core::crd_reference::default_path();
    match fabric_operator_core::crd_reference::render() {
        Ok(text) => {
            if let Err(error) = std::fs::write(&reference, text) {
                eprintln!("crdgen: cannot write {}: {error}", reference.display());
                return ExitCode::FAILURE;
            }
            println!("wrote {}", reference.display());
        }
        Err(error) => {
            eprintln!("crdgen: cannot render the CRD reference: {error}");
            return ExitCode::FAILURE;
        }
    }
    ExitCode::SUCCESS
}
