//! `fabric-operator analyze -f DIR`: the offline check (like `istioctl
//! analyze`). Loads a manifest folder, compiles it with the same compiler
//! the operator runs, and renders problems, notable conditions and the
//! compiled config of every sidecar.

use std::fmt::Write as _;
use std::path::Path;

use crate::compile::{Compilation, Settings, Severity, compile_with};
use crate::manifests::{ManifestError, Manifests, load_dir};

/// The loaded manifests and their compilation.
pub struct Analysis {
    pub manifests: Manifests,
    pub compilation: Compilation,
}

/// Loads `dir` and compiles it as an operator with `identity` would.
pub fn analyze_dir(dir: &Path, identity: &Settings) -> Result<Analysis, ManifestError> {
    let manifests = load_dir(dir)?;
    let compilation = compile_with(&manifests.index, identity);
    Ok(Analysis { manifests, compilation })
}

/// `analyze -f DIR --plan CHANGE`: the fabric of `dir` with the objects of
/// `change` applied, analysed, and what the change does (docs/kubectl-fabric.md,
/// "plan").
pub fn plan_dir(
    dir: &Path,
    change: &Path,
    identity: &Settings,
) -> Result<(Analysis, crate::plan::Plan), ManifestError> {
    let before = load_dir(dir)?;
    let changed = load_dir(change)?;
    let after = crate::plan::overlay(&before.index, &changed.index);
    let (plan, compilation) = crate::plan::plan(&before.index, &after, identity);
    let mut manifests = changed;
    manifests.index = after;
    Ok((Analysis { manifests, compilation }, plan))
}

impl Analysis {
    /// Errors or conflicts anywhere (`analyze` exits 1).
    pub fn has_errors(&self) -> bool {
        self.manifests.has_errors() || self.compilation.has_errors()
    }

    fn counts(&self) -> (usize, usize) {
        let manifest = |severity| self.manifests.issues.iter().filter(|i| i.severity == severity).count();
        let problem = |severity| self.compilation.problems.iter().filter(|p| p.severity == severity).count();
        let conditions = self.compilation.conditions.values().flatten();
        let (condition_errors, condition_warnings) = conditions.fold((0, 0), |(errors, warnings), c| {
            if c.is_error() {
                (errors + 1, warnings)
            } else if c.is_notable() {
                (errors, warnings + 1)
            } else {
                (errors, warnings)
            }
        });
        (
            manifest(Severity::Error) + problem(Severity::Error) + condition_errors,
            manifest(Severity::Warning) + problem(Severity::Warning) + condition_warnings,
        )
    }

    /// The findings: manifest issues, problems and notable conditions, one
    /// per line, then a count.
    pub fn render_findings(&self) -> String {
        let mut out = String::new();
        for issue in &self.manifests.issues {
            let _ = writeln!(out, "{issue}");
        }
        for problem in &self.compilation.problems {
            let _ = writeln!(out, "{problem}");
        }
        for (object, conditions) in &self.compilation.conditions {
            for condition in conditions.iter().filter(|c| c.is_notable()) {
                let severity = if condition.is_error() { "error" } else { "warning" };
                let _ = writeln!(
                    out,
                    "{severity}: {object}: {}={:?} ({}): {}",
                    condition.type_.as_str(),
                    condition.status,
                    condition.reason,
                    condition.message
                );
            }
        }
        let (errors, warnings) = self.counts();
        let objects = self.compilation.conditions.len();
        let sidecars = self.manifests.index.sidecars().count();
        let compiled = self.compilation.sidecars.len();
        let _ = writeln!(
            out,
            "{errors} error(s), {warnings} warning(s); {objects} object(s), {sidecars} sidecar(s), {compiled} config(s) compiled"
        );
        out
    }

    /// Every compiled sidecar as a YAML document, in pod namespace/name order; sidecars
    /// without a valid config are listed as comments.
    pub fn render_configs(&self) -> String {
        let mut out = String::new();
        for sidecar in self.manifests.index.sidecars() {
            let node_id = &sidecar.node_id;
            match self.compilation.sidecars.get(node_id) {
                Some(compiled) if compiled.sources.contains(&sidecar.key()) => {
                    let _ =
                        writeln!(out, "--- # sidecar {node_id} ({}), version {}", sidecar.key(), compiled.version());
                    match serde_norway::to_string(compiled) {
                        Ok(yaml) => out.push_str(&yaml),
                        Err(error) => {
                            let _ = writeln!(out, "# cannot render: {error}");
                        }
                    }
                }
                Some(_) => {}
                None => {
                    let _ = writeln!(out, "--- # sidecar {node_id} ({}): no valid config (see errors)", sidecar.key());
                }
            }
        }
        out
    }
}
