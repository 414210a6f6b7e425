//! The Helm chart against a real kube-apiserver (fabric-envtest): rendered
//! with the default values and with `ci/full-values.yaml` (every optional
//! part on), each into a namespace of its own under a release name of its
//! own (the cluster-scoped objects are named after the release, so the two
//! tests never touch the same object), it passes
//! `kubectl apply --dry-run=server` and a real server-side apply, and then
//! every rendered object is on the server, in the namespace the rendering
//! put it in.
//!
//! The chart says its operator meets the `restricted` Pod Security level
//! (docs/install.md), so the release namespace enforces and warns at that
//! level. No controller-manager runs, so nothing creates the operator's
//! pods: the pod template is checked by a dry-run Pod built from it (the
//! `enforce` level, with the chart's own ServiceAccount and priority class
//! resolved by admission) and by the server's warnings for the Deployment
//! itself (the `warn` level, evaluated on the template as rendered).
//!
//! `helm template` leaves out the chart's `crds/`, which `helm install`
//! applies before the rest: they are installed from the repository's
//! `crds/`, which `scripts/check-chart.sh` keeps byte-for-byte equal to them.

use std::path::{Path, PathBuf};
use std::process::Command;

use fabric_envtest::{Envtest, apply_yaml, apply_yaml_with, envtest_or_skip, parse_yaml_documents};
use fabric_testkit::real_api::{helm, install_crds, workspace};
use kube::api::{Api, DynamicObject, PatchParams};
use kube::core::GroupVersionKind;
use kube::discovery::{Scope, pinned_kind};
use serde_json::{Value, json};

/// Stand-ins for the CRDs of other projects that the full values render
/// objects of (cert-manager's Certificate and Issuer, the Prometheus
/// operator's ServiceMonitor and PodMonitor): the same group, version, kind and scope,
/// with a schema that keeps any spec. They prove the chart's objects reach
/// the server and that namespaces and names fit; checking their specs
/// against those projects' own schemas is left to those projects' CRDs,
/// which are not vendored here.
const FOREIGN_CRDS: &[(&str, &str, &str, &str)] = &[
    ("cert-manager.io", "v1", "Certificate", "certificates"),
    ("cert-manager.io", "v1", "Issuer", "issuers"),
    ("monitoring.coreos.com", "v1", "ServiceMonitor", "servicemonitors"),
    ("monitoring.coreos.com", "v1", "PodMonitor", "podmonitors"),
];

/// What the full values add to the default rendering, besides the kinds
/// above: every one must be there, or that part of the chart went
/// untested.
const FULL_VALUES_KINDS: &[&str] = &["NetworkPolicy", "PodDisruptionBudget", "ConfigMap"];

/// The namespaces `rbac.secrets.namespaces` and `identity.namespaces` of the
/// full values name: the chart renders a Role and RoleBinding, and a
/// NetworkPolicy for the fabric pods, into each, so they must exist.
const FULL_VALUES_SECRET_NAMESPACES: &[&str] = &["fabric", "fabric-staging"];

/// How the API server words a workload whose pod template breaks the
/// level (a warning: Deployments are not refused, their pods would be),
/// and a Pod it refuses.
const WOULD_VIOLATE_RESTRICTED: &str = "would violate PodSecurity \"restricted";
const VIOLATES_RESTRICTED: &str = "violates PodSecurity \"restricted";

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

/// One `helm template` output: the file kubectl applies and its documents.
struct Rendering {
    file: PathBuf,
    documents: Vec<Value>,
}

impl Rendering {
    fn file(&self) -> &str {
        self.file.to_str().unwrap()
    }

    fn kinds(&self) -> Vec<&str> {
        self.documents.iter().map(|d| d["kind"].as_str().unwrap_or_default()).collect()
    }

    fn deployment(&self) -> &Value {
        let mut deployments = self.documents.iter().filter(|d| d["kind"] == "Deployment");
        let deployment = deployments.next().expect("the chart renders a Deployment");
        assert!(deployments.next().is_none(), "the chart renders one Deployment: {:?}", self.kinds());
        deployment
    }
}

/// `helm template RELEASE charts/fabric-routing --namespace NAMESPACE
/// ARGS...`, as `scripts/check-chart.sh` renders it, written to a file for
/// kubectl.
fn render(envtest: &Envtest, helm: &Path, release: &str, namespace: &str, args: &[&str]) -> Rendering {
    let output = Command::new(helm)
        .args(["template", release])
        .arg(workspace().join("charts/fabric-routing"))
        .args(["--namespace", namespace])
        .args(args)
        .output()
        .unwrap();
    assert!(output.status.success(), "helm template {release} {args:?}: {}", String::from_utf8_lossy(&output.stderr));
    let text = String::from_utf8(output.stdout).unwrap();
    let file = envtest.dir().join(format!("chart-{release}.yaml"));
    std::fs::write(&file, &text).unwrap();
    let documents = parse_yaml_documents(&text).unwrap_or_else(|e| panic!("helm template {release}: {e}"));
    Rendering { file, documents }
}

/// Runs kubectl with `args`; panics with its output unless it succeeds.
/// Returns its stderr, where it prints the server's warnings.
fn kubectl(envtest: &Envtest, args: &[&str]) -> String {
    let output = envtest.kubectl().args(args).output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert!(
        output.status.success(),
        "kubectl {args:?} failed; the server said:\n{}\n{stderr}",
        String::from_utf8_lossy(&output.stdout)
    );
    stderr
}

/// A fresh namespace that enforces, and warns at, `restricted`.
async fn restricted_namespace(envtest: &Envtest, client: &kube::Client) -> String {
    let namespace = envtest.namespace(client, "fabric-system").await;
    kubectl(
        envtest,
        &[
            "label",
            "namespace",
            &namespace,
            "pod-security.kubernetes.io/enforce=restricted",
            "pod-security.kubernetes.io/warn=restricted",
        ],
    );
    namespace
}

/// A dry run of the whole rendering, then a real apply, then every
/// rendered object is on the server. Neither may draw a Pod Security
/// warning (the release namespace warns at `restricted`).
///
/// Server-side apply, as a GitOps tool would: client-side apply stores the
/// whole object in the `last-applied-configuration` annotation, which the
/// dashboards ConfigMap of the full values would not fit. `--validate=strict`
/// (kubectl's default, spelled out) makes the server refuse a field its
/// schema does not know instead of dropping it.
async fn apply_rendering(envtest: &Envtest, client: &kube::Client, rendering: &Rendering) {
    let file = rendering.file();
    let dry_run = ["apply", "--dry-run=server", "--validate=strict", "-f", file];
    let real = ["apply", "--server-side", "--field-manager=helm-test", "--validate=strict", "-f", file];
    for args in [&dry_run[..], &real[..]] {
        let warnings = kubectl(envtest, args);
        assert!(
            !warnings.contains(WOULD_VIOLATE_RESTRICTED),
            "kubectl {args:?}: the operator's Deployment would break `restricted`:\n{warnings}"
        );
    }
    for document in &rendering.documents {
        assert_on_server(client, document).await;
    }
}

/// `document` (as rendered) is on the server: same kind, namespace, name.
/// A namespaced object must name its namespace: `kubectl apply -f` of a
/// rendering would put one that does not in the kubeconfig's namespace,
/// not the release's.
async fn assert_on_server(client: &kube::Client, document: &Value) {
    let kind = document["kind"].as_str().expect("kind");
    let name = document["metadata"]["name"].as_str().expect("metadata.name");
    let api_version = document["apiVersion"].as_str().expect("apiVersion");
    let (group, version) = api_version.split_once('/').unwrap_or(("", api_version));
    let gvk = GroupVersionKind::gvk(group, version, kind);
    let (resource, capabilities) =
        pinned_kind(client, &gvk).await.unwrap_or_else(|e| panic!("{api_version} {kind} is not served: {e}"));
    let namespace = document["metadata"]["namespace"].as_str();
    let api: Api<DynamicObject> = match (capabilities.scope, namespace) {
        (Scope::Namespaced, Some(namespace)) => Api::namespaced_with(client.clone(), namespace, &resource),
        (Scope::Cluster, None) => Api::all_with(client.clone(), &resource),
        (Scope::Namespaced, None) => panic!("{kind} {name} is namespaced but rendered without metadata.namespace"),
        (Scope::Cluster, Some(namespace)) => {
            panic!("{kind} {name} is cluster-scoped but rendered with metadata.namespace {namespace}")
        }
    };
    let at = format!("{kind} {}/{name}", namespace.unwrap_or("(cluster)"));
    api.get(name).await.unwrap_or_else(|e| panic!("{at} was rendered and applied but is not on the server: {e}"));
}

/// A Pod as the Deployment's ReplicaSet would create it (the template's
/// labels, annotations and spec) in `namespace`.
fn pod_from_template(deployment: &Value, namespace: &str) -> Value {
    let template = &deployment["spec"]["template"];
    json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": format!("{}-pod-check", deployment["metadata"]["name"].as_str().unwrap()),
            "namespace": namespace,
            "labels": template["metadata"]["labels"],
            "annotations": template["metadata"]["annotations"],
        },
        "spec": template["spec"],
    })
}

/// Creates `pod` with a dry run: every admission step runs, nothing stays.
async fn dry_run_pod(client: &kube::Client, namespace: &str, pod: &Value) -> Result<(), fabric_envtest::Error> {
    let params = PatchParams::apply("helm-test").dry_run();
    apply_yaml_with(client, namespace, &pod.to_string(), &params).await.map(drop)
}

/// The operator's pod passes admission in the release namespace, which
/// enforces `restricted`; the chart's ServiceAccount must exist by then
/// (ServiceAccount admission refuses a Pod whose account does not).
async fn assert_pod_admitted(client: &kube::Client, namespace: &str, rendering: &Rendering) -> Value {
    let pod = pod_from_template(rendering.deployment(), namespace);
    dry_run_pod(client, namespace, &pod).await.unwrap_or_else(|e| {
        panic!("a Pod from the Deployment's template is refused in {namespace} (enforces `restricted`): {e}")
    });
    pod
}

#[tokio::test]
async fn the_chart_with_default_values_is_accepted_and_its_pod_is_restricted() {
    let envtest = envtest_or_skip!();
    let Some(helm) = helm() else { return };
    let client = envtest.client().await;
    install_crds(&client).await;
    let namespace = restricted_namespace(envtest, &client).await;
    let rendering = render(envtest, &helm, "fabric", &namespace, &[]);
    // The default values need nothing but Kubernetes and the chart's CRDs.
    // (The other test installs the stand-ins on this same server, so this
    // is what keeps the default rendering from relying on them.)
    for (_, _, kind, _) in FOREIGN_CRDS {
        assert!(!rendering.kinds().contains(kind), "the default values render a {kind}: {:?}", rendering.kinds());
    }
    apply_rendering(envtest, &client, &rendering).await;
    let pod = assert_pod_admitted(&client, &namespace, &rendering).await;

    // Both Pod Security checks can fail: a privileged container is refused
    // as a Pod and warned about as a Deployment.
    let mut privileged = pod.clone();
    privileged["spec"]["containers"][0]["securityContext"] = json!({"privileged": true});
    let refused = dry_run_pod(&client, &namespace, &privileged).await;
    let error = refused.expect_err("a privileged Pod is refused under `restricted`").to_string();
    assert!(error.contains(VIOLATES_RESTRICTED), "a privileged Pod is refused for Pod Security, not: {error}");
    // (A Deployment of its own: an apply onto the chart's would merge.)
    let mut deployment = rendering.deployment().clone();
    deployment["metadata"]["name"] = json!("privileged");
    deployment["spec"]["template"]["spec"]["containers"][0]["securityContext"] = json!({"privileged": true});
    let file = envtest.dir().join("chart-privileged-deployment.yaml");
    std::fs::write(&file, deployment.to_string()).unwrap();
    let warnings = kubectl(envtest, &["apply", "--server-side", "--dry-run=server", "-f", file.to_str().unwrap()]);
    assert!(warnings.contains(WOULD_VIOLATE_RESTRICTED), "a privileged Deployment is warned about: {warnings:?}");
}

#[tokio::test]
async fn the_chart_with_every_option_on_is_accepted_and_its_pod_is_restricted() {
    let envtest = envtest_or_skip!();
    let Some(helm) = helm() else { return };
    let client = envtest.client().await;
    install_crds(&client).await;
    for (group, version, kind, plural) in FOREIGN_CRDS {
        apply_yaml(&client, "default", &foreign_crd(group, version, kind, plural).to_string()).await.unwrap();
    }
    for (group, _, _, plural) in FOREIGN_CRDS {
        // Bounded by kubectl: fails after 30 s with the CRD's conditions.
        kubectl(envtest, &["wait", "--for=condition=Established", "--timeout=30s", &format!("crd/{plural}.{group}")]);
    }
    for secrets_namespace in FULL_VALUES_SECRET_NAMESPACES {
        let text = format!("apiVersion: v1\nkind: Namespace\nmetadata: {{name: {secrets_namespace}}}\n");
        apply_yaml(&client, "default", &text).await.unwrap();
    }
    let namespace = restricted_namespace(envtest, &client).await;
    let full = workspace().join("charts/fabric-routing/ci/full-values.yaml");
    let rendering = render(envtest, &helm, "full", &namespace, &["-f", full.to_str().unwrap()]);
    let expected = FOREIGN_CRDS.iter().map(|(_, _, kind, _)| *kind).chain(FULL_VALUES_KINDS.iter().copied());
    for kind in expected {
        assert!(rendering.kinds().contains(&kind), "the full values render a {kind}: {:?}", rendering.kinds());
    }
    apply_rendering(envtest, &client, &rendering).await;
    // The full values add pod settings the default ones lack (a priority
    // class, image pull secrets, node selector, tolerations, spread
    // constraints, anti-affinity for two replicas): admission resolves them.
    assert_pod_admitted(&client, &namespace, &rendering).await;
}

/// `kubectl fabric check --pre` against the real API server, through the
/// real kubectl (version, api-versions, `auth can-i`, CRDs): an admin may
/// install; a user who may only create Services in the namespace is told
/// each missing permission, and the command exits 1.
#[tokio::test]
async fn check_pre_passes_for_an_admin_and_names_what_another_user_may_not_create() {
    let envtest = envtest_or_skip!();
    let client = envtest.client().await;
    install_crds(&client).await;
    let namespace = envtest.namespace(&client, "check-pre").await;
    let kubectl_dir = envtest.kubectl_path().parent().unwrap().to_path_buf();
    let path = format!("{}:{}", kubectl_dir.display(), std::env::var("PATH").unwrap_or_default());
    let run = |kubeconfig: &std::path::Path| {
        std::process::Command::new(env!("CARGO_BIN_EXE_kubectl-fabric"))
            .args(["check", "--pre", "--namespace", &namespace])
            .env("PATH", &path)
            .env("KUBECONFIG", kubeconfig)
            .output()
            .unwrap()
    };
    let admin = run(envtest.admin_kubeconfig());
    let text = String::from_utf8_lossy(&admin.stdout);
    assert_eq!(admin.status.code(), Some(0), "{text}{}", String::from_utf8_lossy(&admin.stderr));
    assert!(text.contains("[ok]   Kubernetes version: 1.36, native sidecars on"), "{text}");
    assert!(text.contains("[ok]   create customresourcedefinitions.apiextensions.k8s.io"), "{text}");
    assert!(text.contains("[warn] fabric CRDs: already installed"), "{text}");

    envtest.service_account(&client, &namespace, "installer").await;
    let rbac = format!(
        "apiVersion: rbac.authorization.k8s.io/v1\nkind: Role\nmetadata: {{name: services}}\n\
         rules: [{{apiGroups: [\"\"], resources: [services], verbs: [create]}}]\n---\n\
         apiVersion: rbac.authorization.k8s.io/v1\nkind: RoleBinding\nmetadata: {{name: services}}\n\
         roleRef: {{apiGroup: rbac.authorization.k8s.io, kind: Role, name: services}}\n\
         subjects: [{{kind: ServiceAccount, name: installer, namespace: {namespace}}}]\n"
    );
    apply_yaml(&client, &namespace, &rbac).await.unwrap();
    let token = envtest.token(&client, &namespace, "installer", &[], None).await;
    let kubeconfig = envtest.kubeconfig_with_token(&format!("installer-{namespace}"), &token).unwrap();
    let user = run(&kubeconfig);
    let text = String::from_utf8_lossy(&user.stdout);
    assert_eq!(user.status.code(), Some(1), "{text}");
    assert!(text.contains("[ok]   create services: you may create services in namespace"), "{text}");
    assert!(
        text.contains(&format!(
            "[FAIL] create secrets: you may not create secrets in namespace {namespace}: ask for the permission"
        )),
        "{text}"
    );
    assert!(text.contains("[FAIL] create clusterroles.rbac.authorization.k8s.io"), "{text}");
}

/// `kubectl fabric plan -f change.yaml` reads the fabric from a real API
/// server with the real kubectl (CRs and sidecar pods of one namespace),
/// applies the change offline and simulates both: dropping a neighbor
/// loses destinations (exit 1, named per sidecar); a harmless change exits 0.
#[tokio::test]
async fn plan_reads_the_fabric_from_the_cluster_and_names_what_a_change_breaks() {
    let envtest = envtest_or_skip!();
    let client = envtest.client().await;
    install_crds(&client).await;
    let namespace = envtest.namespace(&client, "plan").await;
    let pod = |name: &str| {
        format!(
            "apiVersion: v1\nkind: Pod\nmetadata:\n  name: {name}\n  labels: {{routing.fabric.dev/sidecar: \"true\", \
             routing.fabric.dev/node-id: {name}}}\n  annotations: {{routing.fabric.dev/peer-address: \"10.0.0.1:7443\"}}\n\
             spec:\n  containers: [{{name: app, image: registry.invalid/app:1}}]\n"
        )
    };
    let mesh = |neighbors: &str| {
        format!(
            "apiVersion: routing.fabric.dev/v1alpha1\nkind: NeighborPolicy\nmetadata: {{name: mesh, namespace: {namespace}}}\n\
             spec:\n  sidecarSelector: {{}}\n  neighbors: [{neighbors}]\n"
        )
    };
    for name in ["p1", "p2", "p3"] {
        apply_yaml(&client, &namespace, &pod(name)).await.unwrap();
    }
    apply_yaml(&client, &namespace, &mesh("{selector: {}}")).await.unwrap();
    let dir = envtest.dir().join(&namespace);
    std::fs::create_dir_all(&dir).unwrap();
    let kubectl_dir = envtest.kubectl_path().parent().unwrap().to_path_buf();
    let path = format!("{}:{}", kubectl_dir.display(), std::env::var("PATH").unwrap_or_default());
    let run = |change: &str| {
        let file = dir.join("change.yaml");
        std::fs::write(&file, change).unwrap();
        std::process::Command::new(env!("CARGO_BIN_EXE_kubectl-fabric"))
            .args(["plan", "-n", &namespace, "-f"])
            .arg(&file)
            .env("PATH", &path)
            .env("KUBECONFIG", envtest.admin_kubeconfig())
            .output()
            .unwrap()
    };
    // Only p1 and p2 peer: p3 is cut off.
    let cut = run(&mesh("{nodeId: p1}, {nodeId: p2}"));
    let text = String::from_utf8_lossy(&cut.stdout);
    assert_eq!(cut.status.code(), Some(1), "{text}{}", String::from_utf8_lossy(&cut.stderr));
    assert!(text.contains("Plan: 3 of 3 sidecar(s) change; 3 lose a destination"), "{text}");
    assert!(text.contains("p3:\n  UNREACHABLE  p1 (was via p1)\n  UNREACHABLE  p2 (was via p2)\n"), "{text}");
    // The same mesh again: nothing changes.
    let same = run(&mesh("{selector: {}}"));
    let text = String::from_utf8_lossy(&same.stdout);
    assert_eq!(same.status.code(), Some(0), "{text}");
    assert!(text.contains("Plan: 0 of 3 sidecar(s) change; 0 lose a destination"), "{text}");
}
