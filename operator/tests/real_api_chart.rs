//! The Helm chart against a real kube-apiserver (fabric-envtest): rendered
//! with the default values and with `ci/full-values.yaml` (every optional
//! part on), it passes `kubectl apply --dry-run=server` and a real apply,
//! and the operator's pod template passes the `restricted` Pod Security
//! level. No controller-manager runs, so nothing creates the operator's
//! pods: the pod template is checked by a dry-run Pod built from it.

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;

use fabric_envtest::{Envtest, apply_yaml, envtest_or_skip, parse_yaml_documents};
use serde_json::{Value, json};
use support::real_api::{install_crds, workspace};

/// Stand-ins for the CRDs of other projects that the full values use
/// (cert-manager's Certificate and Issuer, the Prometheus operator's
/// ServiceMonitor and PodMonitor): the same group, version, kind and
/// scope, with a schema that keeps any spec. They prove the chart's objects
/// reach the server and that RBAC, namespaces and names fit; checking them
/// against those projects' own schemas is left to their CRDs.
const FOREIGN_CRDS: &[(&str, &str, &str, &str)] = &[
    ("cert-manager.io", "v1", "Certificate", "certificates"),
    ("cert-manager.io", "v1", "Issuer", "issuers"),
    ("monitoring.coreos.com", "v1", "ServiceMonitor", "servicemonitors"),
    ("monitoring.coreos.com", "v1", "PodMonitor", "podmonitors"),
];

fn foreign_crd(group: &str, version: &str, kind: &str, plural: &str) -> Value {
    json!({
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": format!("{plural}.{group}")},
        "spec": {
            "group": group,
            "names": {"kind": kind, "plural": plural, "singular": kind.to_lowercase()},
            "scope": "Namespaced",
            "versions": [{
                "name": version, "served": true, "storage": true,
                "schema": {"openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}},
            }],
        },
    })
}

/// helm, or `None` (the test is skipped) where it is not installed and the
/// real-API tests are not required.
fn helm() -> Option<PathBuf> {
    let helm = workspace().join(".tools/bin/helm");
    if helm.exists() {
        return Some(helm);
    }
    if std::env::var(fabric_envtest::REQUIRE_ENV).as_deref() == Ok("require") {
        panic!("helm is missing ({}); run scripts/install-helm.sh", helm.display());
    }
    fabric_envtest::uncaptured("SKIPPED: helm is missing; run scripts/install-helm.sh");
    None
}

/// `helm template RELEASE charts/fabric-routing -n NAMESPACE ARGS...`,
/// written to a file for kubectl.
fn render(envtest: &Envtest, helm: &Path, release: &str, namespace: &str, args: &[&str]) -> (PathBuf, String) {
    let output = Command::new(helm)
        .args(["template", release])
        .arg(workspace().join("charts/fabric-routing"))
        .args(["--namespace", namespace])
        .args(args)
        .output()
        .unwrap();
    assert!(output.status.success(), "helm template: {}", String::from_utf8_lossy(&output.stderr));
    let text = String::from_utf8(output.stdout).unwrap();
    let file = envtest.dir().join(format!("{release}.yaml"));
    std::fs::write(&file, &text).unwrap();
    (file, text)
}

/// Runs kubectl with `args`; panics with its output unless it succeeds.
fn kubectl(envtest: &Envtest, args: &[&str]) -> String {
    let output = envtest.kubectl().args(args).output().unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(output.status.success(), "kubectl {args:?}:\n{stdout}\n{}", String::from_utf8_lossy(&output.stderr));
    stdout
}

/// Dry run, then a real apply, then every rendered object is on the server.
fn apply_rendering(envtest: &Envtest, file: &Path, text: &str) {
    let file = file.to_str().unwrap();
    kubectl(envtest, &["apply", "--dry-run=server", "-f", file]);
    // Server-side apply, as a GitOps tool would (and without the
    // last-applied annotation, which would not fit the large dashboards
    // ConfigMap).
    kubectl(envtest, &["apply", "--server-side", "--field-manager=helm-test", "-f", file]);
    let found = kubectl(envtest, &["get", "-f", file, "-o", "name"]);
    let rendered = parse_yaml_documents(text).unwrap().len();
    assert_eq!(found.lines().count(), rendered, "every rendered object exists:\n{found}");
}

#[tokio::test]
async fn the_chart_with_default_values_is_accepted_and_its_pod_is_restricted() {
    let envtest = envtest_or_skip!();
    let Some(helm) = helm() else { return };
    let client = envtest.client().await;
    install_crds(&client).await;
    let namespace = envtest.namespace(&client, "fabric-system").await;
    let (file, text) = render(envtest, &helm, "fabric", &namespace, &[]);
    apply_rendering(envtest, &file, &text);

    // The operator's pod under `restricted`: a Pod from the Deployment's
    // template, created with a dry run in a namespace that enforces it.
    let deployment = parse_yaml_documents(&text)
        .unwrap()
        .into_iter()
        .find(|d| d["kind"] == "Deployment")
        .expect("the chart renders a Deployment");
    let restricted = envtest.namespace(&client, "restricted").await;
    kubectl(envtest, &["label", "namespace", &restricted, "pod-security.kubernetes.io/enforce=restricted"]);
    let account = deployment["spec"]["template"]["spec"]["serviceAccountName"].as_str().unwrap_or("default");
    envtest.service_account(&client, &restricted, account).await;
    let pod = json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "operator-pod-check", "namespace": restricted},
        "spec": deployment["spec"]["template"]["spec"],
    });
    let params = kube::api::PatchParams::apply("fabric-envtest").dry_run();
    fabric_envtest::apply_yaml_with(&client, &restricted, &pod.to_string(), &params)
        .await
        .unwrap_or_else(|e| panic!("the operator's pod template breaks `restricted`: {e}"));
    // The check can fail: a privileged container is refused there.
    let mut privileged = pod.clone();
    privileged["spec"]["containers"][0]["securityContext"] = json!({"privileged": true});
    let refused = fabric_envtest::apply_yaml_with(&client, &restricted, &privileged.to_string(), &params).await;
    let error = refused.expect_err("a privileged pod is refused under restricted").to_string();
    assert!(error.contains("violates PodSecurity \"restricted"), "{error}");
}

#[tokio::test]
async fn the_chart_with_every_option_on_is_accepted() {
    let envtest = envtest_or_skip!();
    let Some(helm) = helm() else { return };
    let client = envtest.client().await;
    install_crds(&client).await;
    for (group, version, kind, plural) in FOREIGN_CRDS {
        apply_yaml(&client, "default", &foreign_crd(group, version, kind, plural).to_string()).await.unwrap();
    }
    for (group, _, _, plural) in FOREIGN_CRDS {
        kubectl(envtest, &["wait", "--for=condition=Established", "--timeout=30s", &format!("crd/{plural}.{group}")]);
    }
    let namespace = envtest.namespace(&client, "fabric-system").await;
    // The namespaces `rbac.secrets.namespaces` of the full values names.
    for secrets_namespace in ["fabric", "fabric-staging"] {
        let text = format!("apiVersion: v1\nkind: Namespace\nmetadata: {{name: {secrets_namespace}}}\n");
        apply_yaml(&client, "default", &text).await.unwrap();
    }
    let full = workspace().join("charts/fabric-routing/ci/full-values.yaml");
    let (file, text) = render(envtest, &helm, "full", &namespace, &["-f", full.to_str().unwrap()]);
    let kinds: Vec<String> = parse_yaml_documents(&text)
        .unwrap()
        .iter()
        .map(|d| d["kind"].as_str().unwrap_or_default().to_owned())
        .collect();
    for kind in ["Certificate", "Issuer", "ServiceMonitor", "NetworkPolicy", "PodDisruptionBudget"] {
        assert!(kinds.iter().any(|k| k == kind), "the full values render a {kind}: {kinds:?}");
    }
    apply_rendering(envtest, &file, &text);
}
