//! The sidecar injection webhook through its real HTTP server (in-process,
//! plaintext: the TLS handshake is the only part left out), fed with
//! AdmissionReview bodies as the API server sends them
//! (`tests/fixtures/admission/`, see the README there). Each answer's patch
//! is applied to the pod by this file's own JSON Patch applier, and the
//! result decoded as a Pod.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use fabric_operator::webhook::{self, CaSource, InjectionSettings, resource_requirements};
use k8s_openapi::api::core::v1::{Container, Pod};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

const CA: &str = "-----BEGIN CERTIFICATE-----\nMIIBfixtureCA\n-----END CERTIFICATE-----\n";

fn settings(native_sidecars: bool) -> InjectionSettings {
    let pair = |k: &str, v: &str| (k.to_string(), v.to_string());
    let mut settings = InjectionSettings::new(
        "registry.example.com/fabric/routing-sidecar:0.1.0",
        "https://fabric-routing.fabric-system.svc:7600",
        Some(CaSource::Inline(CA.into())),
    );
    settings.image_pull_policy = Some("IfNotPresent".into());
    settings.resources =
        resource_requirements(&[pair("cpu", "10m"), pair("memory", "32Mi")], &[pair("memory", "128Mi")]).unwrap();
    settings.native_sidecars = native_sidecars;
    settings
}

fn fixture(name: &str) -> Vec<u8> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/admission").join(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn fixture_json(name: &str) -> Value {
    serde_json::from_slice(&fixture(name)).unwrap()
}

/// The webhook's router behind its real server on 127.0.0.1.
struct Webhook {
    address: std::net::SocketAddr,
    server: tokio::task::JoinHandle<()>,
}

impl Webhook {
    async fn start(settings: InjectionSettings) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let app = webhook::router(Arc::new(settings));
        let server = tokio::spawn(async move {
            webhook::server::serve(listener, app, webhook::server::Plaintext).await.unwrap();
        });
        Self { address, server }
    }

    /// One HTTP/1.1 request, as the API server makes it; (status, body).
    async fn call(&self, method: &str, path: &str, body: &[u8]) -> (u16, Value) {
        let exchange = async {
            let mut stream = TcpStream::connect(self.address).await.unwrap();
            let head = format!(
                "{method} {path} HTTP/1.1\r\nHost: fabric-routing.fabric-system.svc:443\r\n\
                 Content-Type: application/json\r\nAccept: application/json, */*\r\n\
                 Content-Length: {}\r\nConnection: close\r\n\r\n",
                body.len()
            );
            stream.write_all(head.as_bytes()).await.unwrap();
            stream.write_all(body).await.unwrap();
            let mut answer = Vec::new();
            stream.read_to_end(&mut answer).await.unwrap();
            answer
        };
        let answer = tokio::time::timeout(Duration::from_secs(10), exchange).await.expect("answer within 10 s");
        let split = answer.windows(4).position(|w| w == b"\r\n\r\n").expect("HTTP head");
        let head = String::from_utf8_lossy(&answer[..split]).to_string();
        let mut body = answer[split + 4..].to_vec();
        if head.to_ascii_lowercase().contains("transfer-encoding: chunked") {
            body = dechunk(&body);
        }
        let status = head.split(' ').nth(1).and_then(|s| s.parse().ok()).unwrap_or_else(|| panic!("status: {head}"));
        let body = if body.is_empty() { Value::Null } else { serde_json::from_slice(&body).unwrap_or(Value::Null) };
        (status, body)
    }

    async fn review(&self, body: &[u8]) -> Value {
        let (status, answer) = self.call("POST", "/mutate-pods", body).await;
        assert_eq!(status, 200, "{answer}");
        assert_eq!(
            (answer["apiVersion"].as_str(), answer["kind"].as_str()),
            (Some("admission.k8s.io/v1"), Some("AdmissionReview"))
        );
        answer["response"].clone()
    }
}

impl Drop for Webhook {
    fn drop(&mut self) {
        self.server.abort();
    }
}

fn dechunk(mut body: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let line = body.windows(2).position(|w| w == b"\r\n").unwrap();
        let size = usize::from_str_radix(std::str::from_utf8(&body[..line]).unwrap().trim(), 16).unwrap();
        if size == 0 {
            return out;
        }
        out.extend_from_slice(&body[line + 2..line + 2 + size]);
        body = &body[line + 4 + size..];
    }
}

/// RFC 6902 `add` (the only operation the webhook may send; any other
/// fails the test), with RFC 6901 pointers.
fn apply_patch(document: &mut Value, patch: &Value) {
    for operation in patch.as_array().expect("a JSON Patch is an array") {
        assert_eq!(operation["op"], "add", "unexpected operation {operation}");
        let path = operation["path"].as_str().unwrap();
        assert!(path.starts_with('/'), "{path}");
        let tokens: Vec<String> = path[1..].split('/').map(|t| t.replace("~1", "/").replace("~0", "~")).collect();
        let (last, parents) = tokens.split_last().unwrap();
        let mut target = &mut *document;
        for token in parents {
            target = match target {
                Value::Object(map) => map.get_mut(token).unwrap_or_else(|| panic!("{path}: no member {token}")),
                Value::Array(list) => {
                    let index: usize = token.parse().unwrap_or_else(|_| panic!("{path}: bad index {token}"));
                    list.get_mut(index).unwrap_or_else(|| panic!("{path}: index {index} out of bounds"))
                }
                _ => panic!("{path}: {token} inside a scalar"),
            };
        }
        let value = operation["value"].clone();
        match target {
            Value::Object(map) => {
                map.insert(last.clone(), value);
            }
            Value::Array(list) if last == "-" => list.push(value),
            Value::Array(list) => {
                let index: usize = last.parse().unwrap_or_else(|_| panic!("{path}: bad index {last}"));
                assert!(index <= list.len(), "{path}: index {index} out of bounds");
                list.insert(index, value);
            }
            _ => panic!("{path}: the parent is a scalar"),
        }
    }
}

/// The pod of `review` with the response's patch applied.
fn patched_pod(review: &Value, response: &Value) -> Pod {
    assert_eq!(response["allowed"], true, "{response}");
    assert_eq!(response["patchType"], "JSONPatch", "{response}");
    let patch = base64::engine::general_purpose::STANDARD.decode(response["patch"].as_str().unwrap()).unwrap();
    let patch: Value = serde_json::from_slice(&patch).unwrap();
    let mut pod = review["request"]["object"].clone();
    apply_patch(&mut pod, &patch);
    serde_json::from_value(pod).expect("the patched pod is a Pod")
}

fn names(containers: Option<&Vec<Container>>) -> Vec<&str> {
    containers.map(|list| list.iter().map(|c| c.name.as_str()).collect()).unwrap_or_default()
}

#[tokio::test]
async fn a_labelled_pod_gets_a_native_sidecar() {
    let webhook = Webhook::start(settings(true)).await;
    let review = fixture_json("statefulset-pod-labelled.json");
    let response = webhook.review(&fixture("statefulset-pod-labelled.json")).await;
    assert_eq!(response["uid"], "0df28fbd-5f5f-11e8-bc74-36e6bb280816");
    let before: Pod = serde_json::from_value(review["request"]["object"].clone()).unwrap();
    let pod = patched_pod(&review, &response);
    let spec = pod.spec.as_ref().unwrap();

    // The application is untouched; the sidecar is the one init container.
    assert_eq!(spec.containers, before.spec.as_ref().unwrap().containers);
    assert_eq!(names(spec.init_containers.as_ref()), ["routing-sidecar"]);
    let sidecar = serde_json::to_value(&spec.init_containers.as_ref().unwrap()[0]).unwrap();
    let expected: Value = fixture_json("expected-native-sidecar.json");
    assert_eq!(sidecar, expected, "injected container (left) differs from expected-native-sidecar.json");

    // Volumes: the pod's own, then the sidecar's two.
    let volumes = serde_json::to_value(spec.volumes.as_ref().unwrap()).unwrap();
    assert_eq!(volumes[0]["name"], "kube-api-access-x7k2p");
    assert_eq!(
        volumes[1],
        json!({"name": "routing-sidecar-config", "projected": {"sources": [
            {"serviceAccountToken": {"audience": "fabric-operator", "expirationSeconds": 3600, "path": "token"}},
            {"downwardAPI": {"items": [
                {"path": "bootstrap.yaml", "fieldRef": {"fieldPath": "metadata.annotations['routing.fabric.dev/bootstrap-config']"}},
                {"path": "ca.crt", "fieldRef": {"fieldPath": "metadata.annotations['routing.fabric.dev/operator-ca']"}}
            ]}}
        ]}})
    );
    assert_eq!(volumes[2], json!({"name": "routing-sidecar-state", "emptyDir": {"sizeLimit": "64Mi"}}));
    assert_eq!(volumes.as_array().unwrap().len(), 3);

    // Annotations: the pod's own kept, the bootstrap config and the CA added.
    let annotations = pod.metadata.annotations.as_ref().unwrap();
    assert_eq!(annotations["routing.fabric.dev/originate"], "web-a, api-a");
    assert_eq!(annotations["routing.fabric.dev/operator-ca"], CA);
    let bootstrap = fabric_core::SidecarConfig::from_yaml(&annotations["routing.fabric.dev/bootstrap-config"]).unwrap();
    assert_eq!(bootstrap.node_id.as_str(), "edge-0");
    let originate: Vec<_> = bootstrap.originate.iter().map(|r| r.destination.to_string()).collect();
    assert_eq!(originate, ["web-a", "api-a"]);
    // The labels and everything else the API server sent are untouched.
    assert_eq!(pod.metadata.labels, before.metadata.labels);
    assert_eq!(pod.metadata.owner_references, before.metadata.owner_references);
}

#[tokio::test]
async fn native_sidecar_first_among_init_containers_or_a_regular_container() {
    let name = "deployment-pod-with-init-container.json";
    let review = fixture_json(name);

    // Native: before the pod's own init container, which may need routes.
    let native = Webhook::start(settings(true)).await;
    let response = native.review(&fixture(name)).await;
    assert_eq!(response["uid"], "3b1f6c2a-7d4e-4f0b-9c8a-5e2d1b0a9f44");
    let pod = patched_pod(&review, &response);
    let spec = pod.spec.as_ref().unwrap();
    assert_eq!(names(spec.init_containers.as_ref()), ["routing-sidecar", "migrate"]);
    assert_eq!(spec.init_containers.as_ref().unwrap()[0].restart_policy.as_deref(), Some("Always"));
    assert_eq!(names(Some(&spec.containers)), ["gateway"]);
    // The pod had no annotations: the map is created. The node id is the
    // label's (a Deployment pod has no name yet).
    let bootstrap = &pod.metadata.annotations.as_ref().unwrap()["routing.fabric.dev/bootstrap-config"];
    assert_eq!(fabric_core::SidecarConfig::from_yaml(bootstrap).unwrap().node_id.as_str(), "core-gw");

    // Fallback (operator setting, e.g. an API server older than 1.29): a
    // regular container after the application's, no restartPolicy.
    let regular = Webhook::start(settings(false)).await;
    let pod = patched_pod(&review, &regular.review(&fixture(name)).await);
    let spec = pod.spec.as_ref().unwrap();
    assert_eq!(names(spec.init_containers.as_ref()), ["migrate"]);
    assert_eq!(names(Some(&spec.containers)), ["gateway", "routing-sidecar"]);
    assert_eq!(spec.containers[1].restart_policy, None);

    // The pod annotation wins over the operator's setting.
    let mut opted_out = review.clone();
    opted_out["request"]["object"]["metadata"]["annotations"] = json!({"routing.fabric.dev/native-sidecar": "false"});
    let pod = patched_pod(&opted_out, &native.review(&serde_json::to_vec(&opted_out).unwrap()).await);
    assert_eq!(names(Some(&pod.spec.as_ref().unwrap().containers)), ["gateway", "routing-sidecar"]);
}

#[tokio::test]
async fn pods_without_the_label_or_already_injected_are_allowed_unchanged() {
    let webhook = Webhook::start(settings(true)).await;
    for (name, uid) in [
        ("deployment-pod-unlabelled.json", "9c2e4a61-0b3d-4f85-a7c9-1e2f3a4b5c6d"),
        ("statefulset-pod-already-injected.json", "e1d2c3b4-a596-4877-8695-a4b3c2d1e0f9"),
    ] {
        let response = webhook.review(&fixture(name)).await;
        assert_eq!(response, json!({"uid": uid, "allowed": true}), "{name}");
    }
    // Opted out by annotation, label kept (so the operator still watches it).
    let mut opted_out = fixture_json("statefulset-pod-labelled.json");
    opted_out["request"]["object"]["metadata"]["annotations"]["routing.fabric.dev/inject"] = json!("false");
    let response = webhook.review(&serde_json::to_vec(&opted_out).unwrap()).await;
    assert_eq!(response, json!({"uid": "0df28fbd-5f5f-11e8-bc74-36e6bb280816", "allowed": true}));
}

#[tokio::test]
async fn a_pod_whose_node_id_is_unknown_is_refused_with_a_clear_message() {
    let webhook = Webhook::start(settings(true)).await;
    let response = webhook.review(&fixture("deployment-pod-without-node-id.json")).await;
    assert_eq!(response["uid"], "5a6b7c8d-9e0f-4a1b-8c2d-3e4f5a6b7c8d");
    assert_eq!(response["allowed"], false);
    assert!(response.get("patch").is_none(), "{response}");
    assert_eq!(response["status"]["code"], 400);
    let message = response["status"]["message"].as_str().unwrap();
    assert!(
        message.starts_with("routing sidecar injection: the pod has no name yet (generateName)")
            && message.contains("set the label routing.fabric.dev/node-id"),
        "{message}"
    );

    // A bad annotation names itself.
    let mut bad_port = fixture_json("statefulset-pod-labelled.json");
    bad_port["request"]["object"]["metadata"]["annotations"]["routing.fabric.dev/peer-port"] = json!("70000");
    let response = webhook.review(&serde_json::to_vec(&bad_port).unwrap()).await;
    assert_eq!(response["allowed"], false);
    assert_eq!(
        response["status"]["message"],
        "routing sidecar injection: annotation routing.fabric.dev/peer-port: \"70000\" is not a port (1-65535)"
    );
}

#[tokio::test]
async fn malformed_reviews_are_bad_requests() {
    let webhook = Webhook::start(settings(true)).await;
    let (status, answer) = webhook.call("POST", "/mutate-pods", &fixture("malformed-v1beta1-review.json")).await;
    assert_eq!(status, 400);
    assert_eq!(
        answer["error"],
        "expected apiVersion admission.k8s.io/v1 and kind AdmissionReview, got \"admission.k8s.io/v1beta1\" and \
         \"AdmissionReview\" (set admissionReviewVersions: [v1])"
    );
    let (status, answer) = webhook.call("POST", "/mutate-pods", b"not json").await;
    assert_eq!(status, 400);
    assert!(answer["error"].as_str().unwrap().starts_with("the body is not an AdmissionReview: "), "{answer}");
    let mut no_request = fixture_json("statefulset-pod-labelled.json");
    no_request.as_object_mut().unwrap().remove("request");
    let (status, answer) = webhook.call("POST", "/mutate-pods", &serde_json::to_vec(&no_request).unwrap()).await;
    assert_eq!((status, answer["error"].as_str()), (400, Some("the AdmissionReview has no request")));
    // Only POST /mutate-pods is served.
    assert_eq!(webhook.call("GET", "/mutate-pods", b"").await.0, 405);
    assert_eq!(webhook.call("POST", "/mutate", b"{}").await.0, 404);
}

/// `--webhook-configuration`: the operator writes the CA of its serving
/// certificate into the configuration's `caBundle` (JSON Patch guarded by
/// the resource version), and writes nothing once it is there. Against a
/// mocked API server (tower-test), every call asserted.
#[tokio::test]
async fn the_ca_bundle_is_written_once() {
    use fabric_operator::webhook::ca_bundle::sync_ca_bundle;
    use http::{Method, Request, Response};
    use k8s_openapi::api::admissionregistration::v1::MutatingWebhookConfiguration;
    use kube::client::Body;

    const PATH: &str = "/apis/admissionregistration.k8s.io/v1/mutatingwebhookconfigurations/fabric-routing";
    let (service, mut api_server) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
    let api: kube::Api<MutatingWebhookConfiguration> = kube::Api::all(kube::Client::new(service, "default"));
    let mut configuration = json!({
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": "MutatingWebhookConfiguration",
        "metadata": {"name": "fabric-routing", "resourceVersion": "7"},
        "webhooks": [{
            "name": "sidecar-injector.routing.fabric.dev",
            "clientConfig": {"service": {"name": "fabric-routing", "namespace": "fabric-system", "path": "/mutate-pods", "port": 443}},
            "sideEffects": "None",
            "admissionReviewVersions": ["v1"]
        }]
    });
    let reply = |body: &Value| Response::builder().body(Body::from(body.to_string().into_bytes())).unwrap();
    let mut next = async || {
        let (request, respond) = tokio::time::timeout(Duration::from_secs(5), api_server.next_request())
            .await
            .expect("an API call within 5 s")
            .expect("the client is alive");
        let (method, path) = (request.method().clone(), request.uri().path().to_string());
        let content_type = request.headers().get("content-type").map(|v| v.to_str().unwrap().to_string());
        let bytes = request.into_body().collect_bytes().await.unwrap();
        let body: Value = if bytes.is_empty() { Value::Null } else { serde_json::from_slice(&bytes).unwrap() };
        (method, path, content_type, body, respond)
    };

    let sync = tokio::spawn({
        let api = api.clone();
        async move { sync_ca_bundle(&api, "fabric-routing", CA).await }
    });
    let (method, path, _, _, respond) = next().await;
    assert_eq!((method, path.as_str()), (Method::GET, PATH));
    respond.send_response(reply(&configuration));
    let (method, path, content_type, body, respond) = next().await;
    assert_eq!((method, path.as_str()), (Method::PATCH, PATH));
    assert_eq!(content_type.as_deref(), Some("application/json-patch+json"));
    let encoded = base64::engine::general_purpose::STANDARD.encode(CA);
    assert_eq!(
        body,
        json!([
            {"op": "test", "path": "/metadata/resourceVersion", "value": "7"},
            {"op": "add", "path": "/webhooks/0/clientConfig/caBundle", "value": encoded},
        ])
    );
    configuration["webhooks"][0]["clientConfig"]["caBundle"] = json!(encoded);
    configuration["metadata"]["resourceVersion"] = json!("8");
    respond.send_response(reply(&configuration));
    assert!(tokio::time::timeout(Duration::from_secs(5), sync).await.unwrap().unwrap().unwrap(), "written");

    // Already right: one GET, no PATCH.
    let sync = tokio::spawn(async move { sync_ca_bundle(&api, "fabric-routing", CA).await });
    let (method, _, _, _, respond) = next().await;
    assert_eq!(method, Method::GET);
    respond.send_response(reply(&configuration));
    assert!(!tokio::time::timeout(Duration::from_secs(5), sync).await.unwrap().unwrap().unwrap(), "not written");
}

/// One HTTPS call to the webhook port offering `alpn`; the negotiated
/// protocol and the status line.
async fn https_call(
    addr: std::net::SocketAddr,
    ca: tokio_rustls::rustls::pki_types::CertificateDer<'static>,
    alpn: Vec<Vec<u8>>,
) -> Result<String, String> {
    use tokio_rustls::rustls;
    let mut roots = rustls::RootCertStore::empty();
    roots.add(ca).unwrap();
    let mut config = rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = alpn;
    let tcp = TcpStream::connect(addr).await.unwrap();
    let name = rustls::pki_types::ServerName::try_from("fabric-routing.fabric-system.svc").unwrap();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let mut tls = connector.connect(name, tcp).await.map_err(|e| e.to_string())?;
    let negotiated = tls.get_ref().1.alpn_protocol().map(|p| String::from_utf8_lossy(p).to_string());
    tls.write_all(b"POST /ping HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{}").await.unwrap();
    let mut out = Vec::new();
    tls.read_to_end(&mut out).await.unwrap();
    Ok(format!("{negotiated:?} {}", String::from_utf8_lossy(&out).lines().next().unwrap_or_default()))
}

/// The API server's webhook client speaks HTTP/1.1 over TLS and offers only
/// `http/1.1` in ALPN: the webhook port must accept exactly that (tonic's
/// TLS server, offering only h2, would fail the handshake).
#[tokio::test]
async fn the_webhook_port_serves_https_with_http11_alpn() {
    use fabric_operator::tls::TlsFiles;
    let key = rcgen::KeyPair::generate().unwrap();
    let cert = rcgen::CertificateParams::new(vec!["fabric-routing.fabric-system.svc".to_string()])
        .unwrap()
        .self_signed(&key)
        .unwrap();
    let dir = std::env::temp_dir().join(format!("webhook-tls-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("tls.crt"), cert.pem()).unwrap();
    std::fs::write(dir.join("tls.key"), key.serialize_pem()).unwrap();
    let files = TlsFiles { cert: dir.join("tls.crt"), key: dir.join("tls.key") };
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app = axum::Router::new().route("/ping", axum::routing::post(|| async { "ok" }));
    tokio::spawn(async move { webhook::server::serve_tls(listener, app, &files).await.unwrap() });
    let ca = cert.der().clone();
    let ok = "Some(\"http/1.1\") HTTP/1.1 200 OK";
    let call = |alpn: Vec<Vec<u8>>| https_call(addr, ca.clone(), alpn);
    assert_eq!(
        tokio::time::timeout(Duration::from_secs(10), call(vec![b"http/1.1".to_vec()])).await.unwrap().unwrap(),
        ok
    );
    assert_eq!(call(vec![]).await.unwrap(), "None HTTP/1.1 200 OK", "no ALPN (curl --no-alpn)");
    assert_eq!(call(vec![b"h2".to_vec(), b"http/1.1".to_vec()]).await.unwrap(), ok, "HTTP/1 is chosen");
    // A client that does not trust the certificate fails; the port keeps serving.
    let other_key = rcgen::KeyPair::generate().unwrap();
    let other = rcgen::CertificateParams::new(vec!["x".to_string()]).unwrap().self_signed(&other_key).unwrap();
    assert!(https_call(addr, other.der().clone(), vec![b"http/1.1".to_vec()]).await.is_err());
    assert_eq!(call(vec![b"http/1.1".to_vec()]).await.unwrap(), ok);
    let _ = std::fs::remove_dir_all(&dir);
}
