//! `kubectl fabric check --pre`: can the chart be installed on this cluster
//! by this user (like `linkerd check --pre`)? The binary gathers the facts
//! with kubectl (the server version, `kubectl api-versions`, `kubectl auth
//! can-i` for every kind the chart creates, the fabric CRDs already there);
//! [`evaluate`] turns them into checks, pure and unit-tested.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;

/// The oldest Kubernetes the CRDs' validation rules (CEL) work on.
pub const MIN_MINOR: u32 = 25;
/// Native sidecars (init containers with `restartPolicy: Always`) are on
/// by default from this minor version.
pub const NATIVE_SIDECARS_MINOR: u32 = 29;

/// The API groups and versions the chart's objects use.
pub const REQUIRED_APIS: &[&str] = &[
    "apiextensions.k8s.io/v1",
    "admissionregistration.k8s.io/v1",
    "coordination.k8s.io/v1",
    "rbac.authorization.k8s.io/v1",
];

/// What installing the chart creates, as `kubectl auth can-i create`
/// resources (cluster-wide ones, and namespaced ones in the release
/// namespace).
pub const CLUSTER_RESOURCES: &[&str] = &[
    "customresourcedefinitions.apiextensions.k8s.io",
    "clusterroles.rbac.authorization.k8s.io",
    "clusterrolebindings.rbac.authorization.k8s.io",
    "mutatingwebhookconfigurations.admissionregistration.k8s.io",
    "validatingwebhookconfigurations.admissionregistration.k8s.io",
];
pub const NAMESPACED_RESOURCES: &[&str] = &[
    "deployments.apps",
    "services",
    "serviceaccounts",
    "secrets",
    "roles.rbac.authorization.k8s.io",
    "rolebindings.rbac.authorization.k8s.io",
];

/// The fabric CRDs.
pub const CRDS: &[&str] = &[
    "routepolicies.routing.fabric.dev",
    "neighborpolicies.routing.fabric.dev",
    "routekeys.routing.fabric.dev",
    "linkstateareas.routing.fabric.dev",
];

/// What kubectl said about the cluster.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ClusterFacts {
    /// `(major, minor)` of the API server; `None`: it did not answer.
    pub server_version: Option<(u32, u32)>,
    pub api_versions: BTreeSet<String>,
    /// `create <resource>` allowed, by resource as in the lists above.
    pub can_create: BTreeMap<String, bool>,
    /// The fabric CRDs that already exist.
    pub crds_present: BTreeSet<String>,
    /// The namespace the chart is going to be installed in.
    pub namespace: String,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    Ok,
    Warning,
    Failed,
}

/// One check and its outcome.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Check {
    pub name: String,
    pub verdict: Verdict,
    pub detail: String,
}

fn check(name: impl Into<String>, verdict: Verdict, detail: impl Into<String>) -> Check {
    Check { name: name.into(), verdict, detail: detail.into() }
}

/// The checks, in the order they are printed.
pub fn evaluate(facts: &ClusterFacts) -> Vec<Check> {
    let mut checks = Vec::new();
    match facts.server_version {
        None => {
            checks.push(check("Kubernetes API", Verdict::Failed, "the API server did not answer `kubectl version`"))
        }
        Some((major, minor)) if major < 1 || (major == 1 && minor < MIN_MINOR) => checks.push(check(
            "Kubernetes version",
            Verdict::Failed,
            format!("{major}.{minor}: the CRDs' validation rules (CEL) need 1.{MIN_MINOR} or newer"),
        )),
        Some((major, minor)) if major == 1 && minor < NATIVE_SIDECARS_MINOR => checks.push(check(
            "Kubernetes version",
            Verdict::Warning,
            format!(
                "{major}.{minor}: no native sidecars before 1.{NATIVE_SIDECARS_MINOR}; the sidecar is injected as a \
                 regular container (it may start after the app and stop before it)"
            ),
        )),
        Some((major, minor)) => {
            checks.push(check("Kubernetes version", Verdict::Ok, format!("{major}.{minor}, native sidecars on")))
        }
    }
    for api in REQUIRED_APIS {
        let (verdict, detail) = if facts.api_versions.contains(*api) {
            (Verdict::Ok, "served".to_owned())
        } else {
            (Verdict::Failed, "not served by this API server".to_owned())
        };
        checks.push(check(format!("API {api}"), verdict, detail));
    }
    for resource in CLUSTER_RESOURCES.iter().chain(NAMESPACED_RESOURCES) {
        let scope = if NAMESPACED_RESOURCES.contains(resource) {
            format!(" in namespace {}", facts.namespace)
        } else {
            String::new()
        };
        let (verdict, detail) = match facts.can_create.get(*resource) {
            Some(true) => (Verdict::Ok, format!("you may create {resource}{scope}")),
            Some(false) => (
                Verdict::Failed,
                format!("you may not create {resource}{scope}: ask for the permission or install as a cluster admin"),
            ),
            None => (Verdict::Failed, format!("could not ask whether you may create {resource}{scope}")),
        };
        checks.push(check(format!("create {resource}"), verdict, detail));
    }
    let present: Vec<&str> = CRDS.iter().copied().filter(|crd| facts.crds_present.contains(*crd)).collect();
    checks.push(match present.len() {
        0 => check("fabric CRDs", Verdict::Ok, "not installed yet: the chart installs them"),
        n if n == CRDS.len() => check(
            "fabric CRDs",
            Verdict::Warning,
            "already installed: an upgrade; Helm does not upgrade CRDs, apply crds/ first (docs/install.md)",
        ),
        _ => check(
            "fabric CRDs",
            Verdict::Failed,
            format!("only {} of the four are installed: a broken earlier install; apply crds/", present.join(", ")),
        ),
    });
    checks
}

/// Whether any check failed (`check --pre` then exits 1).
pub fn failed(checks: &[Check]) -> bool {
    checks.iter().any(|c| c.verdict == Verdict::Failed)
}

/// The checks as lines: `[ok]`, `[warn]`, `[FAIL]`, name, detail.
pub fn render(checks: &[Check]) -> String {
    let mut out = String::new();
    for c in checks {
        let mark = match c.verdict {
            Verdict::Ok => "[ok]  ",
            Verdict::Warning => "[warn]",
            Verdict::Failed => "[FAIL]",
        };
        out.push_str(&format!("{mark} {}: {}\n", c.name, c.detail));
    }
    let (failed, warnings) = checks.iter().fold((0, 0), |(f, w), c| match c.verdict {
        Verdict::Failed => (f + 1, w),
        Verdict::Warning => (f, w + 1),
        Verdict::Ok => (f, w),
    });
    out.push_str(&format!("{} checks: {failed} failed, {warnings} warning(s)\n", checks.len()));
    out
}

/// `(major, minor)` from `kubectl version -o json` (`serverVersion`);
/// minors like `29+` (GKE, EKS) count as 29.
pub fn server_version(json: &serde_json::Value) -> Option<(u32, u32)> {
    let server = &json["serverVersion"];
    let number = |field: &str| -> Option<u32> {
        let text = server[field].as_str()?;
        text.trim_end_matches('+').parse().ok()
    };
    Some((number("major")?, number("minor")?))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn facts(minor: u32, allowed: bool) -> ClusterFacts {
        ClusterFacts {
            server_version: Some((1, minor)),
            api_versions: REQUIRED_APIS.iter().map(|a| a.to_string()).collect(),
            can_create: CLUSTER_RESOURCES
                .iter()
                .chain(NAMESPACED_RESOURCES)
                .map(|r| (r.to_string(), allowed))
                .collect(),
            crds_present: BTreeSet::new(),
            namespace: "fabric-system".into(),
        }
    }

    fn verdicts(checks: &[Check]) -> BTreeMap<&str, Verdict> {
        checks.iter().map(|c| (c.name.as_str(), c.verdict)).collect()
    }

    #[test]
    fn a_recent_cluster_and_an_admin_pass() {
        let checks = evaluate(&facts(33, true));
        assert!(!failed(&checks), "{}", render(&checks));
        assert!(checks.iter().all(|c| c.verdict == Verdict::Ok));
    }

    #[test]
    fn versions_permissions_apis_and_half_installed_crds_are_reported() {
        assert_eq!(verdicts(&evaluate(&facts(24, true)))["Kubernetes version"], Verdict::Failed);
        assert_eq!(verdicts(&evaluate(&facts(28, true)))["Kubernetes version"], Verdict::Warning);
        let denied = evaluate(&facts(33, false));
        assert!(failed(&denied));
        let secrets = denied.iter().find(|c| c.name == "create secrets").unwrap();
        assert_eq!(
            secrets.detail,
            "you may not create secrets in namespace fabric-system: ask for the permission or install as a cluster admin"
        );
        let mut missing_api = facts(33, true);
        missing_api.api_versions.remove("coordination.k8s.io/v1");
        assert_eq!(verdicts(&evaluate(&missing_api))["API coordination.k8s.io/v1"], Verdict::Failed);
        let mut half = facts(33, true);
        half.crds_present.insert(CRDS[0].into());
        assert_eq!(verdicts(&evaluate(&half))["fabric CRDs"], Verdict::Failed);
        half.crds_present.extend(CRDS.iter().map(|c| c.to_string()));
        assert_eq!(verdicts(&evaluate(&half))["fabric CRDs"], Verdict::Warning);
        assert_eq!(verdicts(&evaluate(&ClusterFacts::default()))["Kubernetes API"], Verdict::Failed);
    }

    #[test]
    fn the_server_version_comes_from_kubectl_version() {
        let json = serde_json::json!({"serverVersion": {"major": "1", "minor": "29+"}});
        assert_eq!(server_version(&json), Some((1, 29)));
        assert_eq!(server_version(&serde_json::json!({"clientVersion": {}})), None);
    }
}
