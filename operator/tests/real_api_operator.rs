//! The operator in cluster mode against a real kube-apiserver
//! (fabric-envtest), authenticated as the chart's ServiceAccount with the
//! chart's own ClusterRole and Roles (rendered by helm), never as an admin:
//! watches, server-side-apply status with observedGeneration, Events,
//! RouteKey Secrets and a key rotation with real sidecars connected, and
//! the leader Lease with two replicas and a failover.
//!
//! The sidecars are real `routing-sidecar` processes that authenticate with
//! pod-bound ServiceAccount tokens from the TokenRequest API, checked by the
//! operator with a real TokenReview. There is no kubelet: the test creates
//! each Pod and sets its status (phase, podIP) through the status
//! subresource. The operator serves gRPC in plaintext here (TLS between
//! sidecar and operator is covered by tests/distribution_processes.rs).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use fabric_envtest::{Envtest, apply_yaml, envtest_or_skip};
use fabric_sidecar::runtime::lab::SidecarProcess;
use fabric_testkit::builders::OperatorFedSidecar;
use fabric_testkit::process::sidecar_exe;
use fabric_testkit::real_api::{helm, install_crds, workspace};
use fabric_testkit::wait::wait_for;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Pod, Secret};
use k8s_openapi::api::events::v1::Event;
use kube::api::{Api, DynamicObject, ListParams, Patch, PatchParams};
use kube::core::GroupVersionKind;
use kube::discovery::pinned_kind;
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};
use tokio::sync::watch;

const WAIT: Duration = Duration::from_secs(45);
/// The audience of the sidecars' tokens (the operator's default).
const AUDIENCE: &str = "fabric-operator";

/// One fabric: the operator's namespace (its ServiceAccount, Roles and
/// Lease, as the chart installs them) and the namespace of the sidecars and
/// their CRs.
struct Fabric {
    envtest: &'static Envtest,
    client: kube::Client,
    operator_namespace: String,
    namespace: String,
    kubeconfig: PathBuf,
    dir: PathBuf,
    /// The chart's ServiceAccount of the operator.
    account: String,
    /// Peer TLS from the operator: its `--peer-ca-secret`, and sidecars
    /// started with `--peer-tls-from-operator`.
    peer_ca_secret: Option<String>,
}

impl Fabric {
    async fn new(envtest: &'static Envtest, prefix: &str) -> Option<Fabric> {
        Fabric::with_rbac(envtest, prefix, true).await
    }

    /// `secrets`: whether the chart's values grant Secrets in the fabric's
    /// namespace (`rbac.secrets.namespaces`), where RouteKeys keep theirs.
    async fn with_rbac(envtest: &'static Envtest, prefix: &str, secrets: bool) -> Option<Fabric> {
        let helm = helm()?;
        let client = envtest.client().await;
        install_crds(&client).await;
        let operator_namespace = envtest.namespace(&client, &format!("{prefix}-operator")).await;
        let namespace = envtest.namespace(&client, prefix).await;
        envtest.service_account(&client, &namespace, "sidecar").await;
        let dir = envtest.dir().join(&namespace);
        std::fs::create_dir_all(&dir).unwrap();

        // The chart's RBAC and ServiceAccount, as `helm install` would create
        // them; the release name is unique so cluster-scoped names are too.
        let release = format!("fabric-{}", envtest.unique());
        let rendered = std::process::Command::new(helm)
            .args(["template", &release])
            .arg(workspace().join("charts/fabric-routing"))
            .args(["--namespace", &operator_namespace])
            .args(["--show-only", "templates/rbac.yaml", "--show-only", "templates/serviceaccount.yaml"])
            .args(if secrets {
                vec!["--set".to_owned(), format!("rbac.secrets.namespaces={{{namespace}}}")]
            } else {
                vec![]
            })
            .output()
            .unwrap();
        assert!(rendered.status.success(), "helm template: {}", String::from_utf8_lossy(&rendered.stderr));
        let objects =
            apply_yaml(&client, &operator_namespace, &String::from_utf8(rendered.stdout).unwrap()).await.unwrap();
        let account = objects
            .iter()
            .find(|o| o.types.as_ref().is_some_and(|t| t.kind == "ServiceAccount"))
            .and_then(|o| o.metadata.name.clone())
            .expect("the chart renders a ServiceAccount");
        // What the kubelet would mount: a token of the chart's account.
        let token = envtest.token(&client, &operator_namespace, &account, &[], None).await;
        let kubeconfig = envtest.kubeconfig_with_token(&format!("{release}-operator"), &token).unwrap();
        Some(Fabric { envtest, client, operator_namespace, namespace, kubeconfig, dir, account, peer_ca_secret: None })
    }

    /// A `fabric-operator run` replica in cluster mode named `instance`.
    async fn operator(&self, instance: &str) -> OperatorProcess {
        self.operator_logging(instance, "info").await
    }

    async fn operator_logging(&self, instance: &str, filter: &str) -> OperatorProcess {
        let log = std::fs::File::create(self.dir.join(format!("{instance}.log"))).unwrap();
        let mut child = Command::new(env!("CARGO_BIN_EXE_fabric-operator"))
            .args(["run", "--insecure-plaintext", "--no-webhook"])
            .args(["--listen", "127.0.0.1:0", "--http", "127.0.0.1:0", "--rotation-tick", "100ms"])
            .args(["--namespace", &self.namespace, "--leader-election-namespace", &self.operator_namespace])
            .args(self.peer_ca_secret.iter().flat_map(|secret| ["--peer-ca-secret", secret.as_str()]))
            .env("KUBECONFIG", &self.kubeconfig)
            .env("POD_NAME", instance)
            .env("RUST_LOG", filter)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(log))
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let (http_sender, mut http) = watch::channel(None);
        let (grpc_sender, grpc) = watch::channel(None);
        tokio::spawn(async move {
            while let Ok(Some(line)) = lines.next_line().await {
                let Ok(event) = serde_json::from_str::<Value>(&line) else { continue };
                let address = |key: &str| event[key].as_str().and_then(|a| a.parse::<SocketAddr>().ok());
                match event["event"].as_str() {
                    Some("listening") => http_sender.send_replace(address("http")),
                    Some("leading") => grpc_sender.send_replace(address("grpc")),
                    _ => None,
                };
            }
        });
        let log = self.dir.join(format!("{instance}.log"));
        let http = tokio::time::timeout(WAIT, http.wait_for(Option::is_some))
            .await
            .unwrap_or_else(|_| panic!("{instance} printed no listening line; see {}", log.display()))
            .unwrap()
            .expect("http address");
        OperatorProcess { instance: instance.to_owned(), child, http, grpc, log }
    }

    /// A real sidecar for node `node` in a Pod of its own, authenticated
    /// with a token bound to that Pod.
    async fn sidecar(&self, operator: SocketAddr, node: &str, originate: &[&str]) -> SidecarProcess {
        let token_file = self.dir.join(format!("{node}.token"));
        // Started first, to learn the peer port it bound; it retries the
        // operator until its token file exists.
        let sidecar = self.spawn_sidecar(operator, node, &token_file, node, originate, &self.dir.join(node)).await;
        let uid = self.pod(node, node, sidecar.peer).await;
        let token = self.envtest.token(&self.client, &self.namespace, "sidecar", &[AUDIENCE], Some((node, &uid))).await;
        write_atomically(&token_file, &token);
        sidecar
    }

    /// A real sidecar in pod `pod` running as ServiceAccount `account` that
    /// claims node id `node` by its label.
    async fn sidecar_as(&self, operator: SocketAddr, pod: &str, node: &str, account: &str) -> SidecarProcess {
        let token_file = self.dir.join(format!("{pod}.token"));
        let sidecar = self.spawn_sidecar(operator, pod, &token_file, node, &[], &self.dir.join(pod)).await;
        let uid = self.pod_as(pod, node, sidecar.peer, account).await;
        let token = self.envtest.token(&self.client, &self.namespace, account, &[AUDIENCE], Some((pod, &uid))).await;
        write_atomically(&token_file, &token);
        sidecar
    }

    /// A `routing-sidecar run` that takes its config from `operator` as
    /// pod `pod` of the fabric's namespace, with the token in `token_file`;
    /// its bootstrap config names node `node` and originates `originate`.
    async fn spawn_sidecar(
        &self,
        operator: SocketAddr,
        pod: &str,
        token_file: &Path,
        node: &str,
        originate: &[&str],
        dir: &Path,
    ) -> SidecarProcess {
        let mut sidecar = OperatorFedSidecar::new(node, format!("http://{operator}"))
            .unversioned()
            .originate(originate)
            .token_file(token_file)
            .namespace(&self.namespace)
            .pod_name(pod);
        if self.peer_ca_secret.is_some() {
            sidecar = sidecar.args_after(&["--peer-tls-from-operator"]);
        }
        SidecarProcess::spawn(&sidecar_exe(), &sidecar.config(), dir, &sidecar.args()).await.unwrap()
    }

    /// Creates the Pod of a sidecar and sets its status as a kubelet would;
    /// returns its uid.
    async fn pod(&self, name: &str, node: &str, peer: SocketAddr) -> String {
        self.pod_as(name, node, peer, "sidecar").await
    }

    async fn pod_as(&self, name: &str, node: &str, peer: SocketAddr, account: &str) -> String {
        let pods: Api<Pod> = Api::namespaced(self.client.clone(), &self.namespace);
        let pod: Pod = serde_json::from_value(json!({
            "metadata": {
                "name": name,
                "labels": {"routing.fabric.dev/sidecar": "true", "routing.fabric.dev/node-id": node, "mesh": "test"},
                "annotations": {"routing.fabric.dev/peer-address": peer.to_string()},
            },
            "spec": {
                "serviceAccountName": account,
                "containers": [{"name": "app", "image": "registry.invalid/app:1"}],
            },
        }))
        .unwrap();
        let created = pods.create(&Default::default(), &pod).await.unwrap_or_else(|e| panic!("create Pod {name}: {e}"));
        let status = json!({"status": {"phase": "Running", "podIP": "127.0.0.1", "podIPs": [{"ip": "127.0.0.1"}]}});
        pods.patch_status(name, &PatchParams::default(), &Patch::Merge(&status)).await.unwrap();
        created.metadata.uid.expect("uid")
    }

    async fn apply(&self, yaml: &str) -> Vec<DynamicObject> {
        apply_yaml(&self.client, &self.namespace, yaml).await.unwrap_or_else(|e| panic!("{e}\n{yaml}"))
    }

    /// A fabric CR as the server has it.
    async fn get(&self, kind: &str, name: &str) -> DynamicObject {
        let gvk = GroupVersionKind::gvk("routing.fabric.dev", "v1alpha1", kind);
        let (resource, _) = pinned_kind(&self.client, &gvk).await.unwrap();
        let api: Api<DynamicObject> = Api::namespaced_with(self.client.clone(), &self.namespace, &resource);
        api.get(name).await.unwrap_or_else(|e| panic!("{kind} {name}: {e}"))
    }

    /// Waits for an Event of the fabric's namespace that `matches`.
    async fn wait_event(&self, what: &str, matches: impl Fn(&Event) -> bool) {
        let events: Api<Event> = Api::namespaced(self.client.clone(), &self.namespace);
        wait_for(what, WAIT, || async {
            let list = events.list(&ListParams::default()).await.map_err(|e| e.to_string())?;
            if list.items.iter().any(&matches) { Ok(()) } else { Err(format!("{} events", list.items.len())) }
        })
        .await
    }

    /// Waits until `kind/name` reports its current generation with
    /// condition `condition` True; returns the object.
    async fn wait_condition(&self, kind: &str, name: &str, condition: &str) -> DynamicObject {
        wait_for(&format!("{kind} {name}: {condition}=True at its generation"), WAIT, || async {
            let object = self.get(kind, name).await;
            let status = &object.data["status"];
            let observed = status["observedGeneration"].as_i64();
            if observed != object.metadata.generation {
                return Err(format!("observedGeneration {observed:?}, generation {:?}", object.metadata.generation));
            }
            match condition_of(&object, condition) {
                Some(c) if c["status"] == "True" => Ok(object),
                other => Err(format!("{condition}: {other:?}; status {status}")),
            }
        })
        .await
    }
}

struct OperatorProcess {
    instance: String,
    child: Child,
    http: SocketAddr,
    grpc: watch::Receiver<Option<SocketAddr>>,
    log: PathBuf,
}

impl OperatorProcess {
    /// The gRPC address once this replica leads.
    async fn leading(&mut self, within: Duration) -> SocketAddr {
        tokio::time::timeout(within, self.grpc.wait_for(Option::is_some))
            .await
            .unwrap_or_else(|_| panic!("{} did not lead within {within:?}; see {}", self.instance, self.log.display()))
            .unwrap()
            .expect("grpc address")
    }

    async fn get(&self, path: &str) -> (u16, String) {
        let response = fabric_io::local_http::get(self.http, path).await.unwrap();
        (response.status, response.body)
    }

    /// SIGTERM (a rolling update or a drained node) and wait for the exit.
    async fn terminate(&mut self) {
        let pid = self.child.id().expect("running").to_string();
        std::process::Command::new("kill").args(["-TERM", &pid]).status().unwrap();
        tokio::time::timeout(Duration::from_secs(15), self.child.wait())
            .await
            .unwrap_or_else(|_| panic!("{} did not exit on SIGTERM", self.instance))
            .unwrap();
    }
}

/// Whether `event` regards the object `name` and its note has every one of
/// `words`.
fn event_about(event: &Event, name: &str, words: &[&str]) -> bool {
    event.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some(name)
        && event.note.as_deref().is_some_and(|note| words.iter().all(|word| note.contains(word)))
}

fn condition_of<'a>(object: &'a DynamicObject, kind: &str) -> Option<&'a Value> {
    object.data["status"]["conditions"].as_array()?.iter().find(|c| c["type"] == kind)
}

fn write_atomically(path: &Path, text: &str) {
    let temporary = path.with_extension("new");
    std::fs::write(&temporary, text).unwrap();
    std::fs::rename(&temporary, path).unwrap();
}

/// Every sidecar labelled `mesh: test` peers with every other one; every
/// route must be signed; each node has an operator-managed RouteKey.
/// RouteKeys bind each node id to the fabric's namespace and the
/// ServiceAccount `sidecar`, which every sidecar of [`Fabric::sidecar`] runs as.
fn signed_mesh(nodes: &[&str], rotation_interval: &str, overlap: &str) -> String {
    let mut yaml = String::from(
        "apiVersion: routing.fabric.dev/v1alpha1\nkind: NeighborPolicy\nmetadata: {name: mesh}\n\
         spec:\n  sidecarSelector: {matchLabels: {mesh: test}}\n  neighbors:\n    - selector: {matchLabels: {mesh: test}}\n\
         ---\napiVersion: routing.fabric.dev/v1alpha1\nkind: RoutePolicy\nmetadata: {name: signed}\n\
         spec:\n  sidecarSelector: {}\n  security: {requireSignatures: true}\n",
    );
    for node in nodes {
        yaml.push_str(&format!(
            "---\napiVersion: routing.fabric.dev/v1alpha1\nkind: RouteKey\nmetadata: {{name: {node}}}\n\
             spec: {{nodeId: {node}, serviceAccountName: sidecar, rotationInterval: {rotation_interval}, \
             overlap: {overlap}}}\n"
        ));
    }
    yaml
}

/// Every sidecar has a route to every destination of `destinations`.
async fn converged(sidecars: &[SidecarProcess], destinations: &[&str]) -> Result<(), String> {
    for sidecar in sidecars {
        for destination in destinations {
            if sidecar.next_hop(destination).await?.is_none() {
                return Err(format!("{} has no route to {destination}", sidecar.node_id));
            }
        }
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_operator_under_its_chart_account_serves_signs_rotates_and_reports() {
    let envtest = envtest_or_skip!();
    let Some(fabric) = Fabric::new(envtest, "serve").await else { return };
    const NODES: [&str; 3] = ["s1", "s2", "s3"];
    fabric.apply(&signed_mesh(&NODES, "4s", "2s")).await;
    let mut operator = fabric.operator("operator-a").await;
    let grpc = operator.leading(WAIT).await;
    let mut sidecars = Vec::new();
    for node in NODES {
        sidecars.push(fabric.sidecar(grpc, node, &[&format!("svc-{node}")]).await);
    }
    let destinations = ["svc-s1", "svc-s2", "svc-s3"];
    // Signatures are required, so routes appear only once every node signs
    // with its operator-managed key: the keys reached the sidecars.
    wait_for("signed routes converged", WAIT, || converged(&sidecars, &destinations)).await;

    // Status: written with server-side apply for the current generation,
    // Applied by all three sidecars (their ACKs came over streams that a
    // real TokenReview admitted).
    let mesh = fabric.wait_condition("NeighborPolicy", "mesh", "Applied").await;
    assert_eq!(mesh.data["status"]["selectedSidecars"], 3, "{:?}", mesh.data["status"]);
    assert_eq!(mesh.data["status"]["appliedSidecars"], 3, "{:?}", mesh.data["status"]);
    let status_managers: Vec<_> = mesh
        .metadata
        .managed_fields
        .iter()
        .flatten()
        .filter(|m| m.subresource.as_deref() == Some("status"))
        .map(|m| (m.manager.clone().unwrap_or_default(), m.operation.clone().unwrap_or_default()))
        .collect();
    assert!(
        status_managers
            .iter()
            .any(|(manager, operation)| manager.starts_with("fabric-operator") && operation == "Apply"),
        "status is written by server-side apply: {status_managers:?}"
    );
    fabric.wait_condition("RoutePolicy", "signed", "Accepted").await;

    // RouteKeys: a Secret per key holding the private keys, the published
    // keys in status, Events recorded by the operator.
    let secrets: Api<Secret> = Api::namespaced(fabric.client.clone(), &fabric.namespace);
    for node in NODES {
        let secret = secrets.get(&format!("routekey-{node}")).await.unwrap_or_else(|e| panic!("Secret of {node}: {e}"));
        assert!(secret.data.is_some_and(|d| d.contains_key("keys.json")), "routekey-{node} holds keys.json");
        let owner = secret.metadata.owner_references.unwrap_or_default();
        assert!(
            owner.iter().any(|o| o.kind == "RouteKey" && o.name == node),
            "routekey-{node} is owned by its RouteKey"
        );
    }
    let first_keys: Vec<String> = {
        let mut keys = Vec::new();
        for node in NODES {
            let key = fabric.get("RouteKey", node).await;
            keys.push(
                key.data["status"]["activeKeyId"]
                    .as_str()
                    .unwrap_or_else(|| panic!("{node}: no active key"))
                    .to_owned(),
            );
        }
        keys
    };

    // A full rotation with the sidecars connected: every RouteKey gets a
    // new active key, and the signed routes stay in place.
    wait_for("every RouteKey rotated to a new active key", WAIT, || async {
        for (node, first) in NODES.iter().zip(&first_keys) {
            let key = fabric.get("RouteKey", node).await;
            let active = key.data["status"]["activeKeyId"].as_str().unwrap_or_default().to_owned();
            if &active == first {
                return Err(format!("{node} still signs with {first}"));
            }
        }
        Ok(())
    })
    .await;
    converged(&sidecars, &destinations).await.unwrap();
    // The newest Rotated event of each RouteKey names the key now active
    // (not the first message of a series of events).
    let events: Api<Event> = Api::namespaced(fabric.client.clone(), &fabric.namespace);
    wait_for("the newest Rotated event names the active key", WAIT, || async {
        let list = events.list(&ListParams::default()).await.map_err(|e| e.to_string())?;
        for node in NODES {
            let active = fabric.get("RouteKey", node).await.data["status"]["activeKeyId"]
                .as_str()
                .unwrap_or_default()
                .to_owned();
            let newest = list
                .items
                .iter()
                .filter(|e| e.reason.as_deref() == Some("Rotated"))
                .filter(|e| e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some(node))
                .max_by_key(|e| {
                    e.series.as_ref().map(|s| s.last_observed_time.0).or(e.event_time.as_ref().map(|t| t.0))
                })
                .and_then(|e| e.note.clone())
                .unwrap_or_default();
            if !newest.contains(&active) {
                return Err(format!("{node}: active {active}, newest Rotated event says {newest:?}"));
            }
        }
        Ok(())
    })
    .await;
    wait_for("key rotation Events on the RouteKeys", WAIT, || async {
        let list = events.list(&ListParams::default()).await.map_err(|e| e.to_string())?;
        let reasons: Vec<(String, String)> = list
            .items
            .iter()
            .filter(|e| e.regarding.as_ref().and_then(|r| r.kind.as_deref()) == Some("RouteKey"))
            .map(|e| (e.reason.clone().unwrap_or_default(), e.reporting_controller.clone().unwrap_or_default()))
            .collect();
        if reasons.iter().any(|(reason, controller)| reason == "Rotated" && !controller.is_empty()) {
            Ok(())
        } else {
            Err(format!("{reasons:?}"))
        }
    })
    .await;

    // An edit: a new generation reaches every sidecar and status follows.
    // Every status write is watched: the first one for generation 2 must
    // not say Applied=True (`kubectl wait --for=condition=Applied` would
    // pass before any sidecar has the change).
    let (resource, _) =
        pinned_kind(&fabric.client, &GroupVersionKind::gvk("routing.fabric.dev", "v1alpha1", "NeighborPolicy"))
            .await
            .unwrap();
    let policies: Api<DynamicObject> = Api::namespaced_with(fabric.client.clone(), &fabric.namespace, &resource);
    let version = fabric.get("NeighborPolicy", "mesh").await.metadata.resource_version.unwrap();
    let params = kube::api::WatchParams::default().fields("metadata.name=mesh").timeout(60);
    let mut writes = Box::pin(policies.watch(&params, &version).await.unwrap());
    fabric
        .apply(&signed_mesh(&NODES, "4s", "2s").replace(
            "- selector: {matchLabels: {mesh: test}}",
            "- selector: {matchLabels: {mesh: test}}\n      link: {cost: 3}",
        ))
        .await;
    let first_at_generation_2 = tokio::time::timeout(WAIT, async {
        use futures::StreamExt;
        while let Some(event) = writes.next().await {
            if let kube::api::WatchEvent::Modified(object) = event.unwrap() {
                let applied = condition_of(&object, "Applied").cloned().unwrap_or_default();
                if applied["observedGeneration"] == 2 || object.data["status"]["observedGeneration"] == 2 {
                    return applied;
                }
            }
        }
        panic!("the watch ended");
    })
    .await
    .expect("a status write for generation 2");
    assert_ne!(first_at_generation_2["status"], "True", "the first status of generation 2: {first_at_generation_2}");
    let mesh = fabric.wait_condition("NeighborPolicy", "mesh", "Applied").await;
    assert_eq!(mesh.metadata.generation, Some(2));
    assert_eq!(mesh.data["status"]["appliedSidecars"], 3);

    let (status, body) = operator.get("/readyz").await;
    assert_eq!(status, 200, "the leader is ready: {body}");
    operator.terminate().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sidecar_can_only_open_the_stream_of_the_pod_its_token_is_bound_to() {
    let envtest = envtest_or_skip!();
    let Some(fabric) = Fabric::new(envtest, "auth").await else { return };
    fabric.apply(&signed_mesh(&[], "720h", "24h").replace("  security: {requireSignatures: true}\n", "")).await;
    let mut operator = fabric.operator("operator-a").await;
    let grpc = operator.leading(WAIT).await;

    // The impostor speaks for pod `victim` with a real token bound to its
    // own pod `impostor`: the TokenReview names `impostor`, so the stream
    // of `victim` is refused.
    let victim_uid = fabric.pod("victim", "victim", "127.0.0.1:9".parse().unwrap()).await;
    let impostor_uid = fabric.pod("impostor", "impostor", "127.0.0.1:9".parse().unwrap()).await;
    assert_ne!(victim_uid, impostor_uid);
    let stolen = envtest
        .token(&fabric.client, &fabric.namespace, "sidecar", &[AUDIENCE], Some(("impostor", &impostor_uid)))
        .await;
    let unbound = envtest.token(&fabric.client, &fabric.namespace, "sidecar", &[AUDIENCE], None).await;
    let wrong_audience = envtest
        .token(&fabric.client, &fabric.namespace, "sidecar", &["somebody-else"], Some(("victim", &victim_uid)))
        .await;
    let cases = [
        ("bound to another pod", stolen, "the token was issued to pod"),
        ("not bound to a pod", unbound, "is not bound to a pod"),
        ("for another audience", wrong_audience, "invalid token"),
    ];
    for (what, token, refusal) in cases {
        let dir = fabric.dir.join(format!("victim-{}", envtest.unique()));
        std::fs::create_dir_all(&dir).unwrap();
        let token_file = dir.join("token");
        write_atomically(&token_file, &token);
        let mut sidecar = fabric.spawn_sidecar(grpc, "victim", &token_file, "victim", &[], &dir).await;
        wait_for(&format!("a token {what} refused"), WAIT, || async {
            let log = std::fs::read_to_string(dir.join("sidecar.log")).unwrap_or_default();
            if log.contains(refusal) { Ok(()) } else { Err(log.lines().last().unwrap_or_default().to_owned()) }
        })
        .await;
        sidecar.kill().await;
    }
    let (_, sidecars) = operator.get("/sidecars").await;
    let sidecars: Value = serde_json::from_str(&sidecars).unwrap();
    let victim = sidecars.as_array().unwrap().iter().find(|s| s["sidecar"] == format!("{}/victim", fabric.namespace));
    assert!(
        victim.is_none_or(|v| v["connected"] != true),
        "the victim's stream was never opened: {victim:?} in {sidecars}"
    );

    // The real owner of the pod gets in.
    let token_file = fabric.dir.join("victim.token");
    let owner =
        envtest.token(&fabric.client, &fabric.namespace, "sidecar", &[AUDIENCE], Some(("victim", &victim_uid))).await;
    write_atomically(&token_file, &owner);
    let owner_dir = fabric.dir.join("victim-owner");
    let _owner = fabric.spawn_sidecar(grpc, "victim", &token_file, "victim", &[], &owner_dir).await;
    wait_for("the pod's own sidecar is SYNCED", WAIT, || async {
        let (_, body) = operator.get("/sidecars").await;
        let list: Value = serde_json::from_str(&body).map_err(|e| e.to_string())?;
        let victim =
            list.as_array().into_iter().flatten().find(|s| s["sidecar"] == format!("{}/victim", fabric.namespace));
        match victim {
            Some(v) if v["sync"] == "SYNCED" && v["connected"] == true => Ok(()),
            other => Err(format!("{other:?}")),
        }
    })
    .await;
    operator.terminate().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_standby_replica_takes_the_lease_when_the_leader_stops() {
    let envtest = envtest_or_skip!();
    let Some(fabric) = Fabric::new(envtest, "lease").await else { return };
    fabric.apply(&signed_mesh(&[], "720h", "24h")).await;
    let mut first = fabric.operator("replica-a").await;
    first.leading(WAIT).await;
    let mut second = fabric.operator_logging("replica-b", "info,kube_lease_manager=debug").await;
    let leases: Api<Lease> = Api::namespaced(fabric.client.clone(), &fabric.operator_namespace);
    let holder = || async {
        let lease = leases.get("fabric-operator").await.map_err(|e| e.to_string())?;
        Ok::<_, String>(lease.spec.and_then(|s| s.holder_identity).unwrap_or_default())
    };
    assert_eq!(holder().await.unwrap(), "replica-a");
    // The standby answers its probes but is not ready: a Service sends
    // sidecars to the leader only.
    wait_for("the standby's /healthz", WAIT, || async {
        match second.get("/healthz").await {
            (200, _) => Ok(()),
            (status, body) => Err(format!("{status} {body}")),
        }
    })
    .await;
    assert_eq!(second.get("/readyz").await.0, 503, "a standby is not ready");
    assert_eq!(leader_metric(&second).await, 0, "the standby does not lead");
    assert_eq!(leader_metric(&first).await, 1, "the leader says so");
    fabric.wait_condition("RoutePolicy", "signed", "Accepted").await;
    // The standby has seen the Lease held and sleeps until it expires
    // (kube-lease-manager's own wait, up to 15 s).
    let log = second.log.clone();
    wait_for("the standby saw the Lease held", WAIT, || async {
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        if text.contains("lease is actually locked by other identity") { Ok(()) } else { Err(String::new()) }
    })
    .await;

    let stopped = Instant::now();
    first.terminate().await;
    second.leading(WAIT).await;
    let handover = stopped.elapsed();
    assert_eq!(holder().await.unwrap(), "replica-b");
    // Released on SIGTERM: the standby watches the Lease and takes it at
    // once, instead of after the expiry it slept towards (5 to 15 s).
    assert!(handover < Duration::from_secs(4), "handover took {handover:?}");
    assert_eq!(leader_metric(&second).await, 1);

    // The new leader writes status: an edit is observed at its generation.
    fabric
        .apply(
            &signed_mesh(&[], "720h", "24h")
                .replace("priority: 0", "")
                .replace("sidecarSelector: {}\n", "sidecarSelector: {}\n  priority: 5\n"),
        )
        .await;
    let policy = fabric.wait_condition("RoutePolicy", "signed", "Accepted").await;
    assert_eq!(policy.metadata.generation, Some(2));
    assert_eq!(second.get("/readyz").await.0, 200);
    second.terminate().await;
}

#[tokio::test]
async fn a_repeated_event_counts_up_and_a_changed_message_is_a_new_event() {
    use fabric_operator::kubernetes::events::EventPublisher;
    use fabric_operator_core::object_status::EventSpec;
    let envtest = envtest_or_skip!();
    let client = envtest.client().await;
    let namespace = envtest.namespace(&client, "events").await;
    let regarding = k8s_openapi::api::core::v1::ObjectReference {
        api_version: Some("routing.fabric.dev/v1alpha1".into()),
        kind: Some("RouteKey".into()),
        name: Some("k".into()),
        namespace: Some(namespace.clone()),
        uid: Some("uid-k".into()),
        ..Default::default()
    };
    let publisher = EventPublisher::new(client.clone(), Some("replica-a".into()));
    let event =
        |note: &str| EventSpec { warning: false, reason: "Rotated".into(), action: "Rotate", note: note.into() };
    for note in ["active key k1", "active key k1", "active key k2", "active key k2", "active key k2"] {
        publisher.publish(&regarding, &event(note)).await.unwrap();
    }
    let events: Api<Event> = Api::namespaced(client, &namespace);
    let mut list: Vec<(String, i32)> = events
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .map(|e| (e.note.unwrap_or_default(), e.series.map_or(1, |s| s.count)))
        .collect();
    list.sort();
    assert_eq!(list, [("active key k1".to_owned(), 2), ("active key k2".to_owned(), 3)]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_secret_rbac_degrades_the_route_key_and_backs_off_until_granted() {
    let envtest = envtest_or_skip!();
    let Some(fabric) = Fabric::with_rbac(envtest, "norbac", false).await else { return };
    fabric.apply(&signed_mesh(&["n1"], "720h", "24h")).await;
    let started = Instant::now();
    let operator = fabric.operator_logging("operator-a", "info,fabric_operator::rotation=debug").await;

    // Degraded with the API server's own words (verb, resource, namespace),
    // and a Warning event with the same reason.
    let key = wait_for("RouteKey n1 Degraded=True RotationFailed", WAIT, || async {
        let key = fabric.get("RouteKey", "n1").await;
        match condition_of(&key, "Degraded") {
            Some(c) if c["status"] == "True" && c["reason"] == "RotationFailed" => Ok(key),
            other => Err(format!("{other:?}")),
        }
    })
    .await;
    let message = condition_of(&key, "Degraded").unwrap()["message"].as_str().unwrap().to_owned();
    assert!(message.contains("cannot get resource \"secrets\""), "names the denied verb and resource: {message}");
    assert!(message.contains(&fabric.namespace), "names the namespace: {message}");
    fabric
        .wait_event("a RotationFailed Warning event", |e| {
            e.reason.as_deref() == Some("RotationFailed") && e.type_.as_deref() == Some("Warning")
        })
        .await;

    // Backoff: the fourth failure in a row comes at least 0.5 + 1 + 2 s
    // after the first (which came after `started`), and only the first is
    // logged at ERROR.
    let log = operator.log.clone();
    let failures = |n: u32| {
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        text.lines().filter(|l| l.contains("key rotation failed") && l.contains(&format!("failures={n}"))).count()
    };
    wait_for("four failures in a row", WAIT, || async { if failures(4) > 0 { Ok(()) } else { Err(String::new()) } })
        .await;
    assert!(started.elapsed() >= Duration::from_millis(3500), "retries back off: {:?}", started.elapsed());
    let text = std::fs::read_to_string(&log).unwrap();
    let errors = text.lines().filter(|l| l.contains("ERROR") && l.contains("key rotation failed")).count();
    assert_eq!(errors, 1, "one ERROR line for a lasting failure, not one per tick:\n{text}");

    // Granted: rotation resumes, the key is active, Degraded clears.
    let grant = format!(
        "apiVersion: rbac.authorization.k8s.io/v1\nkind: Role\nmetadata: {{name: secrets}}\n\
         rules: [{{apiGroups: [\"\"], resources: [secrets], verbs: [get, list, watch, create, update, patch]}}]\n---\n\
         apiVersion: rbac.authorization.k8s.io/v1\nkind: RoleBinding\nmetadata: {{name: secrets}}\n\
         roleRef: {{apiGroup: rbac.authorization.k8s.io, kind: Role, name: secrets}}\n\
         subjects: [{{kind: ServiceAccount, name: {}, namespace: {}}}]\n",
        fabric.account, fabric.operator_namespace
    );
    fabric.apply(&grant).await;
    wait_for("RouteKey n1 active and no longer Degraded", Duration::from_secs(90), || async {
        let key = fabric.get("RouteKey", "n1").await;
        let degraded = condition_of(&key, "Degraded").cloned().unwrap_or_default();
        if key.data["status"]["activeKeyId"].is_string() && degraded["status"] == "False" {
            Ok(())
        } else {
            Err(format!("{degraded}"))
        }
    })
    .await;
}

/// `fabric_operator_leader` from a replica's `/metrics`.
async fn leader_metric(operator: &OperatorProcess) -> u64 {
    let (status, body) = operator.get("/metrics").await;
    assert_eq!(status, 200, "{body}");
    let line = body.lines().find(|l| l.starts_with("fabric_operator_leader ")).unwrap_or_else(|| panic!("{body}"));
    line.rsplit(' ').next().unwrap().parse().unwrap()
}

/// `schema` without any `maximum`: the RoutePolicy CRD as an older version
/// of it was, which let integers beyond `u32` in.
fn without_maximum(schema: &mut Value) {
    match schema {
        Value::Object(map) => {
            map.remove("maximum");
            map.values_mut().for_each(without_maximum);
        }
        Value::Array(items) => items.iter_mut().for_each(without_maximum),
        _ => {}
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_object_the_operator_cannot_read_is_refused_alone_and_the_rest_compiles() {
    use fabric_testkit::real_api::{CRD_CHANGE, install_crds_unlocked};
    let envtest = envtest_or_skip!();
    let Some(fabric) = Fabric::new(envtest, "unreadable").await else { return };
    // Under the older CRD the server stores maxHopCount 4294967296; today's
    // CRD refuses it but keeps what is stored.
    {
        let _change = CRD_CHANGE.lock().await;
        let text = std::fs::read_to_string(workspace().join("crds/routepolicies.routing.fabric.dev.yaml")).unwrap();
        let mut old = fabric_envtest::parse_yaml_documents(&text).unwrap().remove(0);
        without_maximum(&mut old);
        apply_yaml(&fabric.client, "default", &old.to_string()).await.unwrap();
        let huge = "apiVersion: routing.fabric.dev/v1alpha1\nkind: RoutePolicy\nmetadata: {name: huge}\n\
                    spec: {sidecarSelector: {}, priority: 9, import: {maxHopCount: 4294967296}}\n";
        wait_for("the older CRD stores the huge value", WAIT, || async {
            apply_yaml(&fabric.client, &fabric.namespace, huge).await.map(drop).map_err(|e| e.to_string())
        })
        .await;
        install_crds_unlocked(&fabric.client).await;
    }
    fabric
        .apply(
            "apiVersion: routing.fabric.dev/v1alpha1\nkind: RoutePolicy\nmetadata: {name: good}\nspec: {sidecarSelector: {}}\n",
        )
        .await;
    let mut operator = fabric.operator("operator-a").await;
    operator.leading(WAIT).await;

    // The rest of the kind is listed and compiled.
    fabric.wait_condition("RoutePolicy", "good", "Accepted").await;
    assert_eq!(operator.get("/readyz").await.0, 200, "the operator listed the cluster");
    // The unreadable one is refused on itself, naming the field and why.
    let huge = wait_for("RoutePolicy huge Accepted=False", WAIT, || async {
        let huge = fabric.get("RoutePolicy", "huge").await;
        match condition_of(&huge, "Accepted") {
            Some(c) if c["status"] == "False" => Ok(c.clone()),
            other => Err(format!("{other:?}")),
        }
    })
    .await;
    assert_eq!(huge["reason"], "Invalid");
    let message = huge["message"].as_str().unwrap();
    assert!(message.contains("spec.import.maxHopCount") && message.contains("4294967296"), "{message}");
    fabric
        .wait_event("a Warning event on the unreadable object", |e| {
            e.type_.as_deref() == Some("Warning") && event_about(e, "huge", &["maxHopCount"])
        })
        .await;
    let log = std::fs::read_to_string(&operator.log).unwrap();
    let longest = log.lines().map(str::len).max().unwrap_or(0);
    assert!(longest < 2048, "no log line carries a list body ({longest} bytes)");
    operator.terminate().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn relabelling_a_running_pods_node_id_is_refused_and_reported_and_nothing_flaps() {
    let envtest = envtest_or_skip!();
    let Some(fabric) = Fabric::new(envtest, "relabel").await else { return };
    fabric.apply(&signed_mesh(&["r1", "r2"], "720h", "24h")).await;
    let mut operator = fabric.operator("operator-a").await;
    let grpc = operator.leading(WAIT).await;
    let sidecars = [fabric.sidecar(grpc, "r1", &["svc-r1"]).await, fabric.sidecar(grpc, "r2", &["svc-r2"]).await];
    wait_for("signed routes converged", WAIT, || converged(&sidecars, &["svc-r1", "svc-r2"])).await;
    fabric.wait_condition("NeighborPolicy", "mesh", "Applied").await;

    // `kubectl label pod r2 routing.fabric.dev/node-id=r2b --overwrite`
    let pods: Api<Pod> = Api::namespaced(fabric.client.clone(), &fabric.namespace);
    let relabel = |id: &'static str| json!({"metadata": {"labels": {"routing.fabric.dev/node-id": id}}});
    pods.patch("r2", &PatchParams::default(), &Patch::Merge(relabel("r2b"))).await.unwrap();

    // Reported: on the Pod (an Event) and in /status; the pod keeps its id.
    fabric
        .wait_event("a SidecarProblem event on the pod", |e| {
            e.reason.as_deref() == Some("SidecarProblem")
                && event_about(e, "r2", &["changed to r2b", "keeps running as r2"])
        })
        .await;
    let (_, status) = operator.get("/status").await;
    assert!(status.contains("changed to r2b while the pod runs as r2"), "{status}");
    // Nothing moved: both sidecars SYNCED, the policy Applied 2/2, routes
    // in place, no session of either sidecar reset.
    let (_, list) = operator.get("/sidecars").await;
    let list: Value = serde_json::from_str(&list).unwrap();
    for entry in list.as_array().unwrap() {
        assert_eq!(entry["sync"], "SYNCED", "{entry}");
    }
    let mesh = fabric.wait_condition("NeighborPolicy", "mesh", "Applied").await;
    assert_eq!(mesh.data["status"]["appliedSidecars"], 2);
    converged(&sidecars, &["svc-r1", "svc-r2"]).await.unwrap();
    for sidecar in &sidecars {
        let metrics = sidecar.get("/metrics").await.unwrap().body;
        let resets: f64 = metrics
            .lines()
            .filter(|l| l.starts_with("fabric_peer_session_failures_total"))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum();
        assert_eq!(resets, 0.0, "{}: sessions failed after the relabel", sidecar.node_id);
    }

    // The label back: the problem is gone.
    pods.patch("r2", &PatchParams::default(), &Patch::Merge(relabel("r2"))).await.unwrap();
    wait_for("the refusal cleared from /status", WAIT, || async {
        let (_, status) = operator.get("/status").await;
        if status.contains("changed to r2b") { Err("still reported".into()) } else { Ok(()) }
    })
    .await;
    operator.terminate().await;
}

/// A pod that labels itself with a bound node id, under another
/// ServiceAccount, sorts before the real pod (it would have won "smaller
/// name keeps it"): refused and reported on itself, served nothing, and the
/// real node keeps its config, key and RouteKey.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pod_claiming_a_node_id_bound_to_another_service_account_gets_nothing() {
    let envtest = envtest_or_skip!();
    let Some(fabric) = Fabric::new(envtest, "impostor").await else { return };
    envtest.service_account(&fabric.client, &fabric.namespace, "impostor").await;
    fabric.apply(&signed_mesh(&["b1", "b2"], "720h", "24h")).await;
    let mut operator = fabric.operator("operator-a").await;
    let grpc = operator.leading(WAIT).await;
    let sidecars = [fabric.sidecar(grpc, "b1", &["svc-b1"]).await, fabric.sidecar(grpc, "b2", &["svc-b2"]).await];
    wait_for("signed routes converged", WAIT, || converged(&sidecars, &["svc-b1", "svc-b2"])).await;
    let signing_key_of = |config: &Value| config["effective"]["security"]["signingKeyId"].as_str().map(str::to_owned);
    let before = sidecars[0].get_json("/config").await.unwrap();
    assert!(signing_key_of(&before).is_some(), "b1 signs: {before}");

    let mut impostor = fabric.sidecar_as(grpc, "a-impostor", "b1", "impostor").await;
    let words = ["as ServiceAccount impostor", "binds it to ServiceAccount sidecar", "refused"];
    fabric
        .wait_event("a SidecarProblem event on the impostor", |e| {
            e.reason.as_deref() == Some("SidecarProblem") && event_about(e, "a-impostor", &words)
        })
        .await;
    // Its stream was authenticated (a real pod-bound token), but the
    // operator compiled nothing for it: no config version, no key.
    wait_for("the impostor's stream is open", WAIT, || async {
        let (_, list) = operator.get("/sidecars").await;
        if list.contains("a-impostor") { Ok(()) } else { Err(list) }
    })
    .await;
    let config = impostor.get_json("/config").await.unwrap();
    assert!(config["version"].is_null() && signing_key_of(&config).is_none(), "the impostor got {config}");
    // The real b1: same key, still SYNCED, routes in place; its RouteKey
    // Accepted.
    let after = sidecars[0].get_json("/config").await.unwrap();
    assert_eq!(signing_key_of(&after), signing_key_of(&before));
    let route_key = fabric.wait_condition("RouteKey", "b1", "Accepted").await;
    assert!(condition_of(&route_key, "Conflict").is_none_or(|c| c["status"] == "False"), "{:?}", route_key.data);
    let (_, list) = operator.get("/sidecars").await;
    let list: Value = serde_json::from_str(&list).unwrap();
    let sync_of = |pod: &str| {
        let name = format!("{}/{pod}", fabric.namespace);
        list.as_array().unwrap().iter().find(|e| e["sidecar"] == name.as_str()).map(|e| e["sync"].clone())
    };
    assert_eq!(sync_of("b1"), Some(Value::from("SYNCED")), "{list}");
    assert_eq!(sync_of("a-impostor"), Some(Value::from("NOT SENT")), "{list}");
    converged(&sidecars, &["svc-b1", "svc-b2"]).await.unwrap();
    impostor.kill().await;
    operator.terminate().await;
}

/// Cluster mode with peer TLS: the leader creates the peer CA's Secret in
/// its own namespace under the chart's RBAC, sidecars peer over mutual TLS
/// with certificates naming their node ids, and a new leader issues from
/// the same CA (the Secret is read, not replaced).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_leader_keeps_the_peer_ca_in_a_secret_and_sidecars_peer_over_mutual_tls() {
    let envtest = envtest_or_skip!();
    let Some(mut fabric) = Fabric::new(envtest, "peer-tls").await else { return };
    fabric.peer_ca_secret = Some("fabric-peer-ca".into());
    fabric.apply(&signed_mesh(&["p1", "p2"], "720h", "24h")).await;
    let mut operator = fabric.operator("operator-a").await;
    let grpc = operator.leading(WAIT).await;
    let secrets: Api<Secret> = Api::namespaced(fabric.client.clone(), &fabric.operator_namespace);
    let ca = secrets.get("fabric-peer-ca").await.expect("the leader created the peer CA Secret");
    let data = ca.data.clone().unwrap();
    assert!(String::from_utf8_lossy(&data["ca.crt"].0).starts_with("-----BEGIN CERTIFICATE-----"));
    let sidecars = [fabric.sidecar(grpc, "p1", &["svc-p1"]).await, fabric.sidecar(grpc, "p2", &["svc-p2"]).await];
    wait_for("signed routes over mutual TLS", WAIT, || converged(&sidecars, &["svc-p1", "svc-p2"])).await;
    for sidecar in &sidecars {
        let config = sidecar.get_json("/config").await.unwrap();
        assert_eq!(config["peer_certificate"]["source"], "operator", "{}: {config}", sidecar.node_id);
    }
    operator.terminate().await;

    // The next leader reads the Secret: the CA, and so the peers' trust, stay.
    let mut next = fabric.operator("operator-b").await;
    next.leading(WAIT).await;
    let after = secrets.get("fabric-peer-ca").await.unwrap();
    assert_eq!(after.metadata.resource_version, ca.metadata.resource_version, "the Secret is not rewritten");
    next.terminate().await;
}
