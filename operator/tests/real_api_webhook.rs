//! The sidecar injection webhook called by a real kube-apiserver
//! (fabric-envtest): the operator runs in cluster mode with its webhook on
//! 127.0.0.1, a MutatingWebhookConfiguration points the API server at it
//! (`clientConfig.url`), and the operator fills in its `caBundle` itself
//! (`--webhook-configuration`). A labelled Pod created through the API
//! server comes out injected, an unlabelled one untouched, and the injected
//! Pod passes the `restricted` Pod Security level, which the API server
//! evaluates after mutation.
//!
//! The operator authenticates as the admin here: running it under the
//! chart's ServiceAccount and RBAC is `tests/real_api_operator.rs`.

mod support;

use std::net::SocketAddr;
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use base64::Engine as _;
use fabric_envtest::{Envtest, envtest_or_skip};
use k8s_openapi::api::admissionregistration::v1::MutatingWebhookConfiguration;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, PostParams};
use serde_json::{Value, json};
use support::wait_for;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

const WAIT: Duration = Duration::from_secs(45);

/// A CA and a serving certificate for 127.0.0.1, as files; returns the CA.
fn certificates(dir: &Path) -> String {
    use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};
    let ca_key = KeyPair::generate().unwrap();
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca = ca_params.self_signed(&ca_key).unwrap();
    let issuer = Issuer::new(ca_params, ca_key);
    let key = KeyPair::generate().unwrap();
    let cert = CertificateParams::new(vec!["127.0.0.1".to_owned()]).unwrap().signed_by(&key, &issuer).unwrap();
    std::fs::write(dir.join("ca.crt"), ca.pem()).unwrap();
    std::fs::write(dir.join("tls.crt"), cert.pem()).unwrap();
    std::fs::write(dir.join("tls.key"), key.serialize_pem()).unwrap();
    ca.pem()
}

/// The operator in cluster mode, serving the webhook; returns it and the
/// webhook's address.
async fn operator(envtest: &Envtest, dir: &Path, namespace: &str, configuration: &str) -> (Child, SocketAddr) {
    let path = |name: &str| dir.join(name).display().to_string();
    let log = std::fs::File::create(dir.join("operator.log")).unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_fabric-operator"))
        .args(["run", "--no-leader-election", "--namespace", namespace])
        .args(["--listen", "127.0.0.1:0", "--http", "127.0.0.1:0", "--webhook-listen", "127.0.0.1:0"])
        .args(["--tls-cert", &path("tls.crt"), "--tls-key", &path("tls.key")])
        .args(["--sidecar-ca-file", &path("ca.crt"), "--webhook-configuration", configuration])
        .args(["--sidecar-operator-url", "https://fabric-operator.fabric-system.svc:7600"])
        .env("KUBECONFIG", envtest.admin_kubeconfig())
        .env("RUST_LOG", "info")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::from(log))
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let listening = tokio::time::timeout(WAIT, async {
        while let Some(line) = lines.next_line().await.unwrap() {
            let event: Value = serde_json::from_str(&line).unwrap_or_default();
            if event["event"] == "listening" {
                return event;
            }
        }
        panic!("the operator exited; see {}", dir.join("operator.log").display());
    })
    .await
    .expect("the operator's listening line");
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    (child, listening["webhook"].as_str().expect("webhook address").parse().unwrap())
}

fn pod(name: &str, labelled: bool) -> Pod {
    let labels = if labelled { json!({"routing.fabric.dev/sidecar": "true"}) } else { json!({}) };
    serde_json::from_value(json!({
        "metadata": {"name": name, "labels": labels},
        "spec": {
            "containers": [{
                "name": "app",
                "image": "registry.invalid/app:1",
                // The app itself meets `restricted`.
                "securityContext": {
                    "allowPrivilegeEscalation": false,
                    "runAsNonRoot": true,
                    "capabilities": {"drop": ["ALL"]},
                    "seccompProfile": {"type": "RuntimeDefault"},
                },
            }],
        },
    }))
    .unwrap()
}

/// The container named `routing-sidecar`, injected as a native sidecar (an
/// init container that keeps running) or as a regular container.
fn sidecar_of(pod: &Pod) -> Option<Value> {
    let spec = serde_json::to_value(pod.spec.as_ref()?).ok()?;
    ["initContainers", "containers"]
        .iter()
        .flat_map(|list| spec[list].as_array().cloned().unwrap_or_default())
        .find(|c| c["name"] == "routing-sidecar")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_api_server_calls_the_webhook_and_the_injected_pod_is_restricted() {
    let envtest = envtest_or_skip!();
    let client = envtest.client().await;
    let namespace = envtest.namespace(&client, "inject").await;
    let dir = envtest.dir().join(&namespace);
    std::fs::create_dir_all(&dir).unwrap();
    let ca = certificates(&dir);
    support::real_api::install_crds(&client).await;

    // Registered without a caBundle: the operator writes it.
    let configuration = format!("fabric-injector-{namespace}");
    let (_operator, webhook) = operator(envtest, &dir, &namespace, &configuration).await;
    let webhooks: Api<MutatingWebhookConfiguration> = Api::all(client.clone());
    let registration: MutatingWebhookConfiguration = serde_json::from_value(json!({
        "metadata": {"name": configuration},
        "webhooks": [{
            "name": "sidecar-injector.routing.fabric.dev",
            "admissionReviewVersions": ["v1"],
            "sideEffects": "None",
            "failurePolicy": "Fail",
            "timeoutSeconds": 10,
            "clientConfig": {"url": format!("https://{webhook}/mutate-pods")},
            "rules": [{"operations": ["CREATE"], "apiGroups": [""], "apiVersions": ["v1"], "resources": ["pods"],
                       "scope": "Namespaced"}],
            // Only this test's namespace: other tests' pods never reach it.
            "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": namespace}},
            "objectSelector": {"matchLabels": {"routing.fabric.dev/sidecar": "true"}},
        }],
    }))
    .unwrap();
    webhooks.create(&PostParams::default(), &registration).await.unwrap();
    let expected = base64::engine::general_purpose::STANDARD.encode(&ca);
    wait_for("the operator filled in the caBundle", WAIT, || async {
        let current = webhooks.get(&configuration).await.map_err(|e| e.to_string())?;
        let bundle = current.webhooks.unwrap_or_default().first().and_then(|w| w.client_config.ca_bundle.clone());
        let bundle = bundle.map(|b| base64::engine::general_purpose::STANDARD.encode(b.0));
        if bundle.as_deref() == Some(expected.as_str()) { Ok(()) } else { Err(format!("{bundle:?}")) }
    })
    .await;

    // Pod Security `restricted` enforced on the namespace: the server
    // checks the pod after the webhook mutated it.
    envtest
        .kubectl()
        .args(["label", "namespace", &namespace, "pod-security.kubernetes.io/enforce=restricted"])
        .status()
        .unwrap();
    let pods: Api<Pod> = Api::namespaced(client.clone(), &namespace);
    let injected = pods
        .create(&PostParams::default(), &pod("app", true))
        .await
        .unwrap_or_else(|e| panic!("the injected pod is refused: {e}"));
    let sidecar = sidecar_of(&injected).unwrap_or_else(|| panic!("no routing-sidecar in {injected:?}"));
    assert_eq!(sidecar["restartPolicy"], "Always", "a native sidecar on a 1.36 server: {sidecar}");
    assert!(
        sidecar["args"].to_string().contains("https://fabric-operator.fabric-system.svc:7600")
            || sidecar["env"].to_string().contains("https://fabric-operator.fabric-system.svc:7600"),
        "the sidecar dials the operator: {sidecar}"
    );
    let annotations = injected.metadata.annotations.clone().unwrap_or_default();
    assert!(annotations.contains_key("routing.fabric.dev/operator-ca"), "{annotations:?}");

    let plain = pods.create(&PostParams::default(), &pod("plain", false)).await.unwrap();
    assert!(sidecar_of(&plain).is_none(), "an unlabelled pod is not injected");

    // `restricted` is really enforced: a privileged labelled pod is refused.
    let mut privileged = pod("privileged", true);
    if let Some(spec) = privileged.spec.as_mut() {
        spec.containers[0].security_context = serde_json::from_value(json!({"privileged": true})).ok();
    }
    let error = pods.create(&PostParams::default(), &privileged).await.expect_err("refused under restricted");
    assert!(error.to_string().contains("violates PodSecurity"), "{error}");
}
