//! What the tests that run an operator with real sidecars build: the
//! manifests every such fabric starts from, and the bootstrap config and
//! arguments of a sidecar that takes its config from the operator.

use std::path::{Path, PathBuf};

use fabric_core::SidecarConfig;

/// Every sidecar labelled `mesh: test` peers with every other one.
pub const MESH_NEIGHBORS: &str = r#"
apiVersion: routing.fabric.dev/v1alpha1
kind: NeighborPolicy
metadata: {name: mesh, namespace: fabric}
spec:
  sidecarSelector: {matchLabels: {mesh: test}}
  neighbors:
    - selector: {matchLabels: {mesh: test}}
"#;

/// A sidecar fed by an operator (`routing-sidecar run --operator URL`):
/// the bootstrap config it starts from (its node id, a `bootstrap-ID`
/// version and the destinations it originates) and its arguments
/// (operator, namespace `fabric`, token file, labels, pod name). Spawn it
/// with `SidecarProcess::spawn(&sidecar_exe(), &s.config(), dir, &s.args())`.
#[derive(Clone, Debug)]
pub struct OperatorFedSidecar {
    node_id: String,
    version: Option<String>,
    originate: Vec<String>,
    operator_url: String,
    namespace: String,
    token_file: Option<PathBuf>,
    labels: Vec<String>,
    pod_name: Option<String>,
    extra: Vec<String>,
}

impl OperatorFedSidecar {
    /// Node `node_id` of namespace `fabric`, config version
    /// `bootstrap-NODE_ID`, fed by the operator at `operator_url`.
    pub fn new(node_id: &str, operator_url: impl Into<String>) -> Self {
        Self {
            node_id: node_id.to_owned(),
            version: Some(format!("bootstrap-{node_id}")),
            originate: Vec::new(),
            operator_url: operator_url.into(),
            namespace: "fabric".to_owned(),
            token_file: None,
            labels: Vec::new(),
            pod_name: None,
            extra: Vec::new(),
        }
    }

    /// A bootstrap config without a version.
    pub fn unversioned(mut self) -> Self {
        self.version = None;
        self
    }

    /// The destinations the bootstrap config originates.
    pub fn originate<S: AsRef<str>>(mut self, destinations: &[S]) -> Self {
        self.originate.extend(destinations.iter().map(|d| d.as_ref().to_owned()));
        self
    }

    pub fn namespace(mut self, namespace: &str) -> Self {
        self.namespace = namespace.to_owned();
        self
    }

    /// `--operator-token-file`.
    pub fn token_file(mut self, path: &Path) -> Self {
        self.token_file = Some(path.to_path_buf());
        self
    }

    /// `--label KEY=VALUE`, once per label.
    pub fn labels<S: AsRef<str>>(mut self, labels: &[S]) -> Self {
        self.labels.extend(labels.iter().map(|l| l.as_ref().to_owned()));
        self
    }

    /// `--pod-name`.
    pub fn pod_name(mut self, pod: &str) -> Self {
        self.pod_name = Some(pod.to_owned());
        self
    }

    /// More arguments, after the others.
    pub fn args_after<S: AsRef<str>>(mut self, args: &[S]) -> Self {
        self.extra.extend(args.iter().map(|a| a.as_ref().to_owned()));
        self
    }

    /// The bootstrap config, as the sidecar reads it from YAML.
    pub fn config(&self) -> SidecarConfig {
        let mut yaml = format!("nodeId: {}\n", self.node_id);
        if let Some(version) = &self.version {
            yaml.push_str(&format!("version: {version}\n"));
        }
        if !self.originate.is_empty() {
            yaml.push_str("originate:\n");
            for destination in &self.originate {
                yaml.push_str(&format!("  - destination: {destination}\n"));
            }
        }
        SidecarConfig::from_yaml(&yaml).unwrap_or_else(|e| panic!("bootstrap config of {}: {e}", self.node_id))
    }

    /// The arguments after `routing-sidecar run` (the lab adds the state
    /// dir, config file and listeners).
    pub fn args(&self) -> Vec<String> {
        let mut args = vec!["--operator".to_owned(), self.operator_url.clone()];
        if let Some(token_file) = &self.token_file {
            args.extend(["--operator-token-file".to_owned(), token_file.display().to_string()]);
        }
        args.extend(["--namespace".to_owned(), self.namespace.clone()]);
        if let Some(pod) = &self.pod_name {
            args.extend(["--pod-name".to_owned(), pod.clone()]);
        }
        for label in &self.labels {
            args.extend(["--label".to_owned(), label.clone()]);
        }
        args.extend(self.extra.iter().cloned());
        args
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bootstrap_config_and_arguments() {
        let sidecar = OperatorFedSidecar::new("s1", "http://127.0.0.1:9")
            .originate(&["svc-a", "svc-b"])
            .token_file(Path::new("/t/token"))
            .labels(&["mesh=test"])
            .args_after(&["--x"]);
        let config = sidecar.config();
        assert_eq!(config.node_id.as_str(), "s1");
        assert_eq!(config.version.as_deref(), Some("bootstrap-s1"));
        let originated: Vec<String> = config.originate.iter().map(|r| r.destination.to_string()).collect();
        assert_eq!(originated, ["svc-a", "svc-b"]);
        assert_eq!(
            sidecar.args(),
            [
                "--operator",
                "http://127.0.0.1:9",
                "--operator-token-file",
                "/t/token",
                "--namespace",
                "fabric",
                "--label",
                "mesh=test",
                "--x"
            ]
        );
    }
}
