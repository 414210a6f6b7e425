//! The sidecar injection webhook called by a real kube-apiserver
//! (fabric-envtest). The operator runs in cluster mode with its webhook on
//! 127.0.0.1 (an OS-chosen port); a MutatingWebhookConfiguration with the
//! chart's rules points the API server at it (`clientConfig.url`, since
//! without kube-proxy a Service's cluster IP leads nowhere), and the
//! operator writes its `caBundle` itself (`--webhook-configuration`), as it
//! does under the chart. Pods are created through the API server, never by
//! posting a review to the webhook (that is `tests/webhook.rs`), so what is
//! checked is what the server stored.
//!
//! The namespace enforces the `restricted` Pod Security level, which the
//! server evaluates after the mutating webhooks: the injected sidecar must
//! comply as well as the app. Also checked: an unlabelled pod is left
//! alone, what the server refuses and who refuses it (Pod Security, the
//! webhook's own message), and `failurePolicy: Fail` once the operator is
//! gone.
//!
//! The operator authenticates as the admin here: running it under the
//! chart's ServiceAccount and RBAC is `tests/real_api_operator.rs`.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use fabric_core::SidecarConfig;
use fabric_envtest::{Envtest, envtest_or_skip};
use fabric_operator::webhook::InjectError;
use fabric_operator::webhook::ca_bundle::WebhookConfiguration;
use fabric_testkit::wait::wait_for;
use k8s_openapi::api::admissionregistration::v1::MutatingWebhookConfiguration;
use k8s_openapi::api::core::v1::{Namespace, Pod};
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

const WAIT: Duration = Duration::from_secs(45);
/// What injected sidecars are told to dial (`--sidecar-operator-url`); no
/// sidecar runs here (no kubelet), it only has to appear in their args.
const OPERATOR_URL: &str = "https://fabric-operator.fabric-system.svc:7600";
/// The webhook's name in the chart (templates/webhook.yaml).
const WEBHOOK: &str = "sidecar-injector.routing.fabric.dev";

/// A CA and a serving certificate for 127.0.0.1 signed by it, as files
/// `ca.crt`, `tls.crt`, `tls.key` in `dir`; returns the CA's PEM.
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

/// `fabric-operator run` in cluster mode, serving the webhook.
struct Operator {
    child: Child,
    webhook: SocketAddr,
    log: PathBuf,
}

impl Operator {
    /// Starts it and returns once it printed the addresses it bound (every
    /// listener on port 0).
    async fn start(envtest: &Envtest, dir: &Path, namespace: &str, configuration: &str, extra: &[&str]) -> Operator {
        let path = |name: &str| dir.join(name).display().to_string();
        let log = dir.join("operator.log");
        let mut child = Command::new(env!("CARGO_BIN_EXE_fabric-operator"))
            .args(["run", "--no-leader-election", "--namespace", namespace])
            .args(["--listen", "127.0.0.1:0", "--http", "127.0.0.1:0", "--webhook-listen", "127.0.0.1:0"])
            .args(["--tls-cert", &path("tls.crt"), "--tls-key", &path("tls.key"), "--sidecar-ca-file", &path("ca.crt")])
            .args(["--webhook-configuration", configuration, "--sidecar-operator-url", OPERATOR_URL])
            .args(extra)
            // `--native-sidecars` keeps its default, `auto`: the operator
            // asks the server its version (1.36, so native sidecars).
            .env("KUBECONFIG", envtest.admin_kubeconfig())
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(std::fs::File::create(&log).unwrap()))
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
            panic!("the operator exited before listening; see {}", log.display());
        })
        .await
        .unwrap_or_else(|_| panic!("no `listening` line from the operator within {WAIT:?}; see {}", log.display()));
        // Keep reading stdout, so the operator never blocks on a full pipe.
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        let webhook = listening["webhook"].as_str().expect("the webhook's address").parse().unwrap();
        Operator { child, webhook, log }
    }
}

/// Waits until the operator wrote `ca` as the `caBundle` of the first
/// webhook of `configuration`.
async fn wait_for_ca_bundle<K: WebhookConfiguration>(webhooks: &Api<K>, configuration: &str, ca: &str, log: &str) {
    wait_for(&format!("the operator writing the caBundle of {configuration} (log: {log})"), WAIT, || async {
        let current = webhooks.get(configuration).await.map_err(|e| e.to_string())?;
        let bundle = current.client_configs().first().and_then(|c| c.ca_bundle.as_ref()).map(|b| b.0.clone());
        if bundle.as_deref() == Some(ca.as_bytes()) { Ok(()) } else { Err(format!("{bundle:?}")) }
    })
    .await;
}

/// A Pod whose one container `app` meets `restricted` by itself.
fn pod(metadata: Value) -> Pod {
    serde_json::from_value(json!({
        "metadata": metadata,
        "spec": {
            "containers": [{
                "name": "app",
                "image": "registry.invalid/app:1",
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

/// The injection label.
fn labelled(name: &str) -> Value {
    json!({"name": name, "labels": {"routing.fabric.dev/sidecar": "true"}})
}

fn spec(pod: &Pod) -> Value {
    serde_json::to_value(pod.spec.as_ref().expect("a spec")).unwrap()
}

/// The names in a list of containers or volumes (`[]` when absent).
fn names(list: &Value) -> Vec<String> {
    list.as_array().into_iter().flatten().map(|item| item["name"].as_str().unwrap_or_default().to_owned()).collect()
}

/// The container or init container `routing-sidecar`.
fn sidecar_of(pod: &Pod) -> Option<Value> {
    let spec = spec(pod);
    ["initContainers", "containers"]
        .iter()
        .flat_map(|list| spec[list].as_array().cloned().unwrap_or_default())
        .find(|container| container["name"] == "routing-sidecar")
}

fn volume(pod: &Pod, name: &str) -> Value {
    spec(pod)["volumes"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|volume| volume["name"] == name)
        .cloned()
        .unwrap_or_else(|| panic!("no volume {name} in {}", spec(pod)))
}

/// A container's volume mounts, the ServiceAccount plugin's generated
/// volume name (`kube-api-access-<random>`) as `kube-api-access-*`.
fn mounts(container: &Value) -> Value {
    let mut mounts = container["volumeMounts"].clone();
    for mount in mounts.as_array_mut().into_iter().flatten() {
        if mount["name"].as_str().is_some_and(|name| name.starts_with("kube-api-access-")) {
            mount["name"] = json!("kube-api-access-*");
        }
    }
    mounts
}

/// The value after `flag` in the sidecar's args.
fn arg<'a>(sidecar: &'a Value, flag: &str) -> Option<&'a str> {
    let args = sidecar["args"].as_array()?;
    let at = args.iter().position(|a| a == flag)?;
    args.get(at + 1)?.as_str()
}

fn annotation<'a>(pod: &'a Pod, key: &str) -> &'a str {
    pod.metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(key))
        .unwrap_or_else(|| panic!("no annotation {key} on {:?}", pod.metadata))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_api_server_calls_the_webhook_and_the_injected_pod_is_restricted() {
    let envtest = envtest_or_skip!();
    let client = envtest.client().await;
    let namespace = envtest.namespace(&client, "inject").await;
    let dir = envtest.dir().join(&namespace);
    std::fs::create_dir_all(&dir).unwrap();
    let ca = certificates(&dir);
    // Not needed by the webhook, which serves before the watches start, but
    // an operator always runs with its CRDs.
    fabric_testkit::real_api::install_crds(&client).await;

    // Every pod of the namespace, the injected ones included, must meet
    // `restricted` (the newest version of the level).
    let namespaces: Api<Namespace> = Api::all(client.clone());
    let restricted = json!({"metadata": {"labels": {
        "pod-security.kubernetes.io/enforce": "restricted",
        "pod-security.kubernetes.io/enforce-version": "latest",
    }}});
    namespaces.patch(&namespace, &PatchParams::default(), &Patch::Merge(&restricted)).await.unwrap();

    // The configuration exists before the operator starts, as under the
    // chart (else the operator's first caBundle write fails and it retries
    // 10 s later). Its URL is not known yet: the operator picks its port.
    // The placeholder host never resolves, and no pod is created before
    // the real URL is in.
    let configuration = format!("fabric-injector-{namespace}");
    let webhooks: Api<MutatingWebhookConfiguration> = Api::all(client.clone());
    let registration: MutatingWebhookConfiguration = serde_json::from_value(json!({
        "metadata": {"name": configuration},
        "webhooks": [{
            // The chart's webhook (templates/webhook.yaml), but for the
            // clientConfig and the namespaceSelector.
            "name": WEBHOOK,
            "admissionReviewVersions": ["v1"],
            "sideEffects": "None",
            "failurePolicy": "Fail",
            "timeoutSeconds": 10,
            "matchPolicy": "Equivalent",
            "reinvocationPolicy": "Never",
            "clientConfig": {"url": "https://operator-not-started.invalid/mutate-pods"},
            "rules": [{"operations": ["CREATE"], "apiGroups": [""], "apiVersions": ["v1"], "resources": ["pods"],
                       "scope": "Namespaced"}],
            "objectSelector": {"matchLabels": {"routing.fabric.dev/sidecar": "true"}},
            // This test's namespace only: with failurePolicy Fail, the
            // other tests' pods must never depend on this operator.
            "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": namespace}},
        }],
    }))
    .unwrap();
    webhooks.create(&PostParams::default(), &registration).await.unwrap();

    let mut operator = Operator::start(envtest, &dir, &namespace, &configuration, &[]).await;
    let log = operator.log.display().to_string();
    wait_for_ca_bundle(&webhooks, &configuration, &ca, &log).await;
    // Guarded by the webhook's name, so this replaces the URL of the
    // webhook written above and nothing else.
    let url = format!("https://{}/mutate-pods", operator.webhook);
    let set_url = serde_json::from_value(json!([
        {"op": "test", "path": "/webhooks/0/name", "value": WEBHOOK},
        {"op": "replace", "path": "/webhooks/0/clientConfig/url", "value": url},
    ]))
    .unwrap();
    webhooks.patch(&configuration, &PatchParams::default(), &Patch::Json::<()>(set_url)).await.unwrap();

    // The server sees configuration changes through a watch, a moment
    // later: dry runs (the webhook declares no side effects, so the server
    // calls it for them too) until one comes back injected.
    let pods: Api<Pod> = Api::namespaced(client.clone(), &namespace);
    let dry_run = PostParams { dry_run: true, ..Default::default() };
    wait_for(&format!("the API server calling the webhook at {url} (log: {log})"), WAIT, || async {
        let probe = pods.create(&dry_run, &pod(labelled("probe"))).await.map_err(|e| e.to_string())?;
        if sidecar_of(&probe).is_some() { Ok(()) } else { Err("a dry run came back without the sidecar".to_owned()) }
    })
    .await;

    // A labelled pod comes out with what docs/install.md ("Sidecar
    // injection") lists, and is admitted under `restricted`.
    let mut edge = pod(labelled("edge-0"));
    edge.metadata.annotations = Some([("routing.fabric.dev/originate".to_owned(), "web, api".to_owned())].into());
    let injected = pods
        .create(&PostParams::default(), &edge)
        .await
        .unwrap_or_else(|e| panic!("the injected pod is refused: {e} (log: {log})"));
    let stored = spec(&injected);
    assert_eq!(names(&stored["containers"]), ["app"], "the app stays the only regular container: {stored}");
    assert_eq!(names(&stored["initContainers"]), ["routing-sidecar"], "{stored}");
    let sidecar = sidecar_of(&injected).unwrap();
    assert_eq!(sidecar["restartPolicy"], "Always", "a native sidecar, the server being 1.36: {sidecar}");
    for (flag, value) in [
        ("--operator", OPERATOR_URL),
        ("--operator-token-file", "/var/run/secrets/fabric/token"),
        ("--operator-ca", "/var/run/secrets/fabric/ca.crt"),
        ("--config", "/var/run/secrets/fabric/bootstrap.yaml"),
        ("--state-dir", "/var/lib/fabric"),
        ("--listen", "0.0.0.0:7443"),
        ("--metrics-listen", "0.0.0.0:7481"),
    ] {
        assert_eq!(arg(&sidecar, flag), Some(value), "{flag} of {sidecar}");
    }
    // Prometheus finds the metrics listener by its port name (PodMonitor)
    // or by the annotations (annotation-based scraping).
    assert_eq!(
        sidecar["ports"],
        json!([
            {"name": "fabric-peer", "containerPort": 7443, "protocol": "TCP"},
            {"name": "fabric-metrics", "containerPort": 7481, "protocol": "TCP"},
        ]),
        "{sidecar}"
    );
    for (key, value) in
        [("prometheus.io/scrape", "true"), ("prometheus.io/port", "7481"), ("prometheus.io/path", "/metrics")]
    {
        assert_eq!(annotation(&injected, key), value, "{key}");
    }
    // The API server runs its own mutating plugins again after a webhook
    // changed the pod, so the ServiceAccount plugin also mounts the pod's
    // API token into the sidecar (it does not need it: it authenticates to
    // the operator with the projected token). See `edge-1` below.
    assert_eq!(
        mounts(&sidecar),
        json!([
            {"name": "routing-sidecar-config", "mountPath": "/var/run/secrets/fabric", "readOnly": true},
            {"name": "routing-sidecar-state", "mountPath": "/var/lib/fabric"},
            {"name": "kube-api-access-*", "mountPath": "/var/run/secrets/kubernetes.io/serviceaccount", "readOnly": true},
        ]),
        "{sidecar}"
    );
    // As stored, with the server's defaults (defaultMode, apiVersion).
    assert_eq!(
        volume(&injected, "routing-sidecar-config"),
        json!({"name": "routing-sidecar-config", "projected": {"defaultMode": 420, "sources": [
            {"serviceAccountToken": {"audience": "fabric-operator", "expirationSeconds": 3600, "path": "token"}},
            {"downwardAPI": {"items": [
                {"path": "bootstrap.yaml", "fieldRef": {"apiVersion": "v1",
                    "fieldPath": "metadata.annotations['routing.fabric.dev/bootstrap-config']"}},
                {"path": "ca.crt", "fieldRef": {"apiVersion": "v1",
                    "fieldPath": "metadata.annotations['routing.fabric.dev/operator-ca']"}},
            ]}},
        ]}})
    );
    assert_eq!(
        volume(&injected, "routing-sidecar-state"),
        json!({"name": "routing-sidecar-state", "emptyDir": {"sizeLimit": "64Mi"}})
    );
    assert_eq!(annotation(&injected, "routing.fabric.dev/operator-ca"), ca, "the sidecar trusts the operator's CA");
    let bootstrap = SidecarConfig::from_yaml(annotation(&injected, "routing.fabric.dev/bootstrap-config")).unwrap();
    assert_eq!(bootstrap.node_id.as_str(), "edge-0", "the node id is the pod's name");
    let originate: Vec<String> = bootstrap.originate.iter().map(|r| r.destination.to_string()).collect();
    assert_eq!(originate, ["web", "api"], "from routing.fabric.dev/originate");

    // With `automountServiceAccountToken: false` (docs/security.md's
    // checklist) the sidecar has only its own volumes, the projected token
    // among them.
    let mut edge = pod(labelled("edge-1"));
    edge.spec.as_mut().unwrap().automount_service_account_token = Some(false);
    let injected_without_api_token = pods.create(&PostParams::default(), &edge).await.unwrap();
    assert_eq!(
        mounts(&sidecar_of(&injected_without_api_token).unwrap()),
        json!([
            {"name": "routing-sidecar-config", "mountPath": "/var/run/secrets/fabric", "readOnly": true},
            {"name": "routing-sidecar-state", "mountPath": "/var/lib/fabric"},
        ])
    );
    assert_eq!(
        names(&spec(&injected_without_api_token)["volumes"]),
        ["routing-sidecar-config", "routing-sidecar-state"]
    );

    // A pod without the label is never sent to the webhook: it keeps what
    // it was created with (and the ServiceAccount plugin's token volume).
    let plain = pods.create(&PostParams::default(), &pod(json!({"name": "plain"}))).await.unwrap();
    let stored = spec(&plain);
    assert_eq!(names(&stored["containers"]), ["app"], "{stored}");
    assert_eq!(stored["initContainers"], Value::Null, "{stored}");
    assert!(names(&stored["volumes"]).iter().all(|v| v.starts_with("kube-api-access-")), "{stored}");
    assert_eq!(plain.metadata.annotations, None);

    // What the server refuses, and who refuses it. The second case is the
    // injected sidecar as stored for edge-1 (without the API token mount,
    // whose volume the server names anew per pod), written by hand (so the
    // webhook leaves the pod alone) without its securityContext:
    // `restricted` refuses it, so the injected one passes thanks to what
    // the webhook writes, not because the level is not checked on it.
    let mut privileged = pod(labelled("privileged"));
    privileged.spec.as_mut().unwrap().containers[0].security_context =
        serde_json::from_value(json!({"privileged": true})).ok();
    let mut hand_written = serde_json::to_value(pod(labelled("hand-written"))).unwrap();
    let mut bare_sidecar = sidecar_of(&injected_without_api_token).unwrap();
    bare_sidecar.as_object_mut().unwrap().remove("securityContext");
    hand_written["spec"]["initContainers"] = json!([bare_sidecar]);
    hand_written["spec"]["volumes"] =
        json!([volume(&injected, "routing-sidecar-config"), volume(&injected, "routing-sidecar-state")]);
    let hand_written: Pod = serde_json::from_value(hand_written).unwrap();
    let mut nameless = pod(json!({"generateName": "web-", "labels": {"routing.fabric.dev/sidecar": "true"}}));
    let unknown_node_id = InjectError::UnknownNodeId.to_string();
    let refused: [(&str, &Pod, &[&str]); 3] = [
        ("a privileged app", &privileged, &[r#"violates PodSecurity "restricted:latest""#, r#"container "app""#]),
        (
            "the sidecar without its securityContext",
            &hand_written,
            &[r#"violates PodSecurity "restricted:latest""#, r#"container "routing-sidecar""#],
        ),
        (
            // Admission runs before the server generates the name.
            "a generateName pod without a node-id label",
            &nameless,
            &[&format!(r#"admission webhook "{WEBHOOK}" denied the request"#), &unknown_node_id],
        ),
    ];
    for (case, pod, words) in refused {
        let error = pods.create(&PostParams::default(), pod).await.expect_err(case).to_string();
        for word in words {
            assert!(error.contains(word), "{case}: {word:?} not in: {error}");
        }
    }
    // ...and with the label naming the node, the same pod is injected.
    nameless.metadata.labels.as_mut().unwrap().insert("routing.fabric.dev/node-id".into(), "web".into());
    let named = pods.create(&PostParams::default(), &nameless).await.unwrap();
    let bootstrap = SidecarConfig::from_yaml(annotation(&named, "routing.fabric.dev/bootstrap-config")).unwrap();
    assert_eq!(bootstrap.node_id.as_str(), "web");

    // failurePolicy Fail: with the operator gone, a labelled pod is refused
    // rather than created without its sidecar; unlabelled pods never wait
    // for the webhook.
    operator.child.kill().await.unwrap();
    let error = pods.create(&PostParams::default(), &pod(labelled("orphan"))).await.expect_err("no webhook");
    assert!(error.to_string().contains(&format!(r#"failed calling webhook "{WEBHOOK}""#)), "{error}");
    pods.create(&PostParams::default(), &pod(json!({"name": "plain-2"}))).await.unwrap();

    webhooks.delete(&configuration, &DeleteParams::default()).await.unwrap();
}

/// The optional validating webhook (`--validation deny`) called by the real
/// API server for the fabric kinds: a change the operator would refuse or
/// report (a conflict it enters, a neighbor that does not exist) is refused
/// with the compiler's words, a clean one is stored.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_api_server_refuses_a_fabric_change_the_operator_would_refuse() {
    use fabric_envtest::apply_yaml;
    use k8s_openapi::api::admissionregistration::v1::ValidatingWebhookConfiguration;
    let envtest = envtest_or_skip!();
    let client = envtest.client().await;
    fabric_testkit::real_api::install_crds(&client).await;
    let namespace = envtest.namespace(&client, "validate").await;
    let dir = envtest.dir().join(&namespace);
    std::fs::create_dir_all(&dir).unwrap();
    let ca = certificates(&dir);

    // One sidecar pod (no kubelet: the status is set as one would), and a
    // RoutePolicy already in place.
    let pods: Api<Pod> = Api::namespaced(client.clone(), &namespace);
    let mut edge = pod(json!({"name": "edge-0", "labels": {"routing.fabric.dev/sidecar": "true"}}));
    edge.spec.as_mut().unwrap().containers[0].name = "app".into();
    pods.create(&PostParams::default(), &edge).await.unwrap();
    let status = json!({"status": {"phase": "Running", "podIP": "10.0.0.7", "podIPs": [{"ip": "10.0.0.7"}]}});
    pods.patch_status("edge-0", &PatchParams::default(), &Patch::Merge(&status)).await.unwrap();
    let policy = |name: &str, priority: u32| {
        format!(
            "apiVersion: routing.fabric.dev/v1alpha1\nkind: RoutePolicy\nmetadata: {{name: {name}}}\n\
             spec: {{sidecarSelector: {{}}, priority: {priority}}}\n"
        )
    };
    apply_yaml(&client, &namespace, &policy("base", 10)).await.unwrap();

    let configuration = format!("fabric-validation-{namespace}");
    let webhooks: Api<ValidatingWebhookConfiguration> = Api::all(client.clone());
    let registration: ValidatingWebhookConfiguration = serde_json::from_value(json!({
        "metadata": {"name": configuration},
        "webhooks": [{
            // The chart's webhook (templates/webhook.yaml), but for the
            // clientConfig, the namespaceSelector and failurePolicy Fail (so
            // that a webhook that is not called shows).
            "name": "fabric-validation.routing.fabric.dev",
            "admissionReviewVersions": ["v1"],
            "sideEffects": "None",
            "failurePolicy": "Fail",
            "timeoutSeconds": 10,
            "matchPolicy": "Equivalent",
            "clientConfig": {"url": "https://operator-not-started.invalid/validate-fabric"},
            "rules": [{"operations": ["CREATE", "UPDATE"], "apiGroups": ["routing.fabric.dev"],
                       "apiVersions": ["v1alpha1"], "resources": ["routepolicies", "neighborpolicies", "routekeys",
                       "linkstateareas"], "scope": "Namespaced"}],
            "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": namespace}},
        }],
    }))
    .unwrap();
    webhooks.create(&PostParams::default(), &registration).await.unwrap();

    let extra = ["--validation", "deny", "--validating-webhook-configuration", configuration.as_str()];
    let operator = Operator::start(envtest, &dir, &namespace, "fabric-injector-unused", &extra).await;
    let log = operator.log.display().to_string();
    wait_for_ca_bundle(&webhooks, &configuration, &ca, &log).await;
    let url = format!("https://{}/validate-fabric", operator.webhook);
    let set_url = serde_json::from_value(json!([
        {"op": "replace", "path": "/webhooks/0/clientConfig/url", "value": url},
    ]))
    .unwrap();
    webhooks.patch(&configuration, &PatchParams::default(), &Patch::Json::<()>(set_url)).await.unwrap();

    // Until the server calls the webhook, and the operator has listed the
    // fabric, a twin of `base` is not refused for its conflict.
    let refusal = wait_for(&format!("a refusal from the webhook at {url} (log: {log})"), WAIT, || async {
        match apply_yaml(&client, &namespace, &policy("twin", 10)).await.map_err(|e| e.to_string()) {
            Err(error) if error.contains("would refuse") => Ok(error),
            Err(error) => Err(error),
            Ok(_) => {
                // Stored before the webhook was called: take it back.
                let _ = kubectl_delete(envtest, &namespace, "routepolicy/twin");
                Err("stored".to_owned())
            }
        }
    })
    .await;
    assert!(refusal.contains("Conflict EqualPriority"), "{refusal}");
    let neighbors = "apiVersion: routing.fabric.dev/v1alpha1\nkind: NeighborPolicy\nmetadata: {name: uplinks}\n\
                     spec: {sidecarSelector: {}, neighbors: [{nodeId: nowhere-9}]}\n";
    let refusal = apply_yaml(&client, &namespace, neighbors).await.unwrap_err().to_string();
    assert!(refusal.contains("NeighborNotFound") && refusal.contains("nowhere-9"), "{refusal}");
    apply_yaml(&client, &namespace, &policy("other", 20)).await.expect("a clean policy is stored");
}

fn kubectl_delete(envtest: &Envtest, namespace: &str, object: &str) -> std::process::Output {
    envtest.kubectl().args(["-n", namespace, "delete", object, "--wait=false"]).output().unwrap()
}
