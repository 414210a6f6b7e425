//! Cluster mode against a mocked API server (tower-test), in the style of
//! kube-rs controller-rs `fixtures.rs`: every test scripts the API calls it
//! expects, in order, and asserts method, path, query and body; the mock
//! answers like the API server would. Every wait is bounded, so a missing
//! call fails the test instead of hanging it, and "no call" is proved by
//! the code under test finishing while nobody answers.

use std::collections::BTreeMap;
use std::future::Future;
use std::time::Duration;

use fabric_control::{ConfigSnapshot, Hello, OperatorMessage, SidecarMessage, open_stream, operator_message};
use fabric_core::NodeId;
use fabric_operator::cluster::status_writer::{StatusWriter, WriteReport};
use fabric_operator::distribution::auth::{AuthError, POD_NAME_EXTRA, TokenReview, TokenVerifier};
use fabric_operator::distribution::server::{DistributionService, serve};
use fabric_operator::distribution::{Connection, Distributor, DistributorOptions, NackInfo, Options};
use fabric_operator::kubernetes::events::EventPublisher;
use fabric_operator_core::api::RouteKey;
use fabric_operator_core::index::{Index, SidecarInfo};
use futures::StreamExt;
use http::{Method, Request, Response, StatusCode};
use kube::client::Body;
use serde_json::{Value, json};
use tower_test::mock::{self, Handle, SendResponse};

const NS: &str = "fabric";
const NOW: &str = "2025-01-01T00:00:00Z";
const LATER: &str = "2025-01-01T01:00:00Z";
/// How long a scripted call may take to arrive, and a run may take.
const TIMEOUT: Duration = Duration::from_secs(5);

type ApiHandle = Handle<Request<Body>, Response<Body>>;

fn mock_client() -> (kube::Client, ApiServer) {
    let (service, handle) = mock::pair::<Request<Body>, Response<Body>>();
    (kube::Client::new(service, "default"), ApiServer(handle))
}

/// The API server side of a test.
struct ApiServer(ApiHandle);

/// One request as the API server received it.
struct Call {
    method: Method,
    path: String,
    query: BTreeMap<String, String>,
    body: Value,
    respond: SendResponse<Response<Body>>,
}

impl Call {
    fn reply(self, status: StatusCode, body: &Value) {
        let response = Response::builder().status(status).body(Body::from(body.to_string().into_bytes())).unwrap();
        self.respond.send_response(response);
    }
}

fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && i + 2 < bytes.len()
            && let Ok(byte) = u8::from_str_radix(&text[i + 1..i + 3], 16)
        {
            out.push(byte);
            i += 3;
            continue;
        }
        out.push(if bytes[i] == b'+' { b' ' } else { bytes[i] });
        i += 1;
    }
    String::from_utf8(out).unwrap()
}

impl ApiServer {
    /// The next request; fails the test if none arrives in time.
    async fn next(&mut self, expected: &str) -> Call {
        let (request, respond) = tokio::time::timeout(TIMEOUT, self.0.next_request())
            .await
            .unwrap_or_else(|_| panic!("no API call within {TIMEOUT:?}; expected {expected}"))
            .unwrap_or_else(|| panic!("the client is gone; expected {expected}"));
        let method = request.method().clone();
        let path = request.uri().path().to_owned();
        let query = request
            .uri()
            .query()
            .unwrap_or_default()
            .split('&')
            .filter(|pair| !pair.is_empty())
            .map(|pair| {
                let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
                (percent_decode(key), percent_decode(value))
            })
            .collect();
        let bytes = request.into_body().collect_bytes().await.unwrap();
        let body = if bytes.is_empty() { Value::Null } else { serde_json::from_slice(&bytes).unwrap() };
        Call { method, path, query, body, respond }
    }

    /// A server-side apply of a status: asserts the request and returns the
    /// call (to answer) and the applied body.
    async fn expect_status_apply(&mut self, plural: &str, name: &str) -> Call {
        let path = format!("/apis/routing.fabric.dev/v1alpha1/namespaces/{NS}/{plural}/{name}/status");
        let call = self.next(&format!("PATCH {path}")).await;
        assert_eq!((&call.method, call.path.as_str()), (&Method::PATCH, path.as_str()));
        assert_eq!(
            call.query.get("fieldManager").map(String::as_str),
            Some("fabric-operator/status"),
            "{:?}",
            call.query
        );
        assert_eq!(call.query.get("force").map(String::as_str), Some("true"), "{:?}", call.query);
        call
    }

    /// An Event creation; answers it and returns the event.
    async fn expect_event(&mut self, type_: &str, reason: &str) -> Value {
        let path = format!("/apis/events.k8s.io/v1/namespaces/{NS}/events");
        let call = self.next(&format!("POST {path} ({type_} {reason})")).await;
        assert_eq!((&call.method, call.path.as_str()), (&Method::POST, path.as_str()));
        let event = call.body.clone();
        assert_eq!(event["type"], type_, "{event}");
        assert_eq!(event["reason"], reason, "{event}");
        assert_eq!(event["reportingController"], "fabric-operator", "{event}");
        call.reply(StatusCode::CREATED, &event);
        event
    }
}

/// Runs `work` (the code under test) and `script` (the API server)
/// together; both must finish in time.
async fn scripted<T, S>(work: impl Future<Output = T>, script: impl Future<Output = S>) -> (T, S) {
    tokio::time::timeout(TIMEOUT * 2, async { tokio::join!(work, script) })
        .await
        .expect("the run or the API script did not finish")
}

/// Runs `work` with nobody answering the API: it must finish, i.e. make no
/// call at all.
async fn without_calls<T>(work: impl Future<Output = T>, server: &mut ApiServer) -> T {
    let result = tokio::time::timeout(Duration::from_secs(2), work)
        .await
        .expect("the run made an API call (it waited for an answer that never came)");
    assert!(
        tokio::time::timeout(Duration::from_millis(50), server.0.next_request()).await.is_err(),
        "an API call was made"
    );
    result
}

fn sidecar(name: &str) -> SidecarInfo {
    SidecarInfo {
        node_id: NodeId::from(name),
        namespace: NS.into(),
        name: name.into(),
        labels: [("mesh".to_string(), "test".to_string())].into(),
        peer_address: Some(format!("{name}.{NS}:7400")),
        service_account: None,
    }
}

fn route_policy(name: &str, spec: Value, status: Option<Value>) -> Value {
    let mut object = json!({
        "apiVersion": "routing.fabric.dev/v1alpha1",
        "kind": "RoutePolicy",
        "metadata": {"name": name, "namespace": NS, "generation": 2, "resourceVersion": "100", "uid": format!("uid-{name}")},
        "spec": spec,
    });
    if let Some(status) = status {
        object["status"] = status;
    }
    object
}

fn selecting_mesh() -> Value {
    json!({"sidecarSelector": {"matchLabels": {"mesh": "test"}}, "priority": 10})
}

/// The index of a test: `objects` (JSON of any of the four kinds) and the
/// sidecars a, b.
fn index(objects: &[Value]) -> Index {
    let mut index = Index::new();
    for object in objects {
        let changed = match object["kind"].as_str() {
            Some("RoutePolicy") => {
                index.apply(serde_json::from_value::<fabric_operator_core::api::RoutePolicy>(object.clone()).unwrap())
            }
            Some("RouteKey") => index.apply(serde_json::from_value::<RouteKey>(object.clone()).unwrap()),
            kind => panic!("unexpected kind {kind:?}"),
        };
        assert_eq!(changed, Ok(true));
    }
    index.upsert_sidecar(sidecar("a"));
    index.upsert_sidecar(sidecar("b"));
    index
}

/// The distributor as cluster mode builds it, with the objects of `index`.
fn idle_distributor(index: &Index) -> Distributor {
    let distributor = Distributor::new(DistributorOptions {
        machine: Options { sidecars_from_objects: true, ..Default::default() },
        registry: None,
    });
    distributor.set_objects(index.clone());
    distributor
}

/// The same with both sidecars connected and sent their config.
fn distributor(index: &Index) -> (Distributor, Vec<(Connection, ConfigSnapshot)>) {
    let distributor = idle_distributor(index);
    let mut streams = Vec::new();
    for name in ["a", "b"] {
        let (connection, mut outbound) = distributor.connect(sidecar(name), "");
        let snapshot = match outbound.try_recv() {
            Ok(Ok(OperatorMessage { kind: Some(operator_message::Kind::Snapshot(snapshot)) })) => snapshot,
            other => panic!("sidecar {name}: expected a snapshot, got {other:?}"),
        };
        streams.push((connection, snapshot));
    }
    (distributor, streams)
}

fn status_writer(client: &kube::Client) -> StatusWriter {
    StatusWriter::new(client.clone(), EventPublisher::new(client.clone(), Some("fabric-operator-0".into())))
}

/// The applied object echoed back, as the API server answers an apply.
fn applied(object: &Value, body: &Value, resource_version: &str) -> Value {
    let mut object = object.clone();
    object["status"] = body["status"].clone();
    object["metadata"]["resourceVersion"] = json!(resource_version);
    object
}

fn condition(type_: &str, status: &str, reason: &str, message: &str, time: &str) -> Value {
    json!({
        "type": type_, "status": status, "reason": reason, "message": message,
        "lastTransitionTime": time, "observedGeneration": 2
    })
}

#[tokio::test]
async fn status_is_applied_with_only_owned_fields_then_nothing_while_unchanged() {
    let (client, mut server) = mock_client();
    let policy = route_policy("p", selecting_mesh(), None);
    let index = index(std::slice::from_ref(&policy));
    let (distributor, streams) = distributor(&index);
    for (connection, snapshot) in &streams {
        assert!(distributor.ack(connection, &snapshot.version, &snapshot.nonce));
    }
    let mut writer = status_writer(&client);
    let (compilation, state) = (distributor.compilation(), distributor.state());

    let script = async {
        let call = server.expect_status_apply("routepolicies", "p").await;
        assert_eq!(
            call.body,
            json!({
                "apiVersion": "routing.fabric.dev/v1alpha1",
                "kind": "RoutePolicy",
                "metadata": {"name": "p"},
                "status": {
                    "observedGeneration": 2,
                    "conditions": [
                        condition("Accepted", "True", "Compiled", "compiled; shapes the config of 2 sidecar(s)", NOW),
                        condition("Conflict", "False", "NoConflict", "", NOW),
                        condition("Degraded", "False", "Healthy", "", NOW),
                        condition("Applied", "True", "Applied", "2/2 sidecars on current version", NOW),
                    ],
                    "selectedSidecars": 2,
                    "appliedSidecars": 2,
                }
            })
        );
        let reply = applied(&policy, &call.body, "101");
        call.reply(StatusCode::OK, &reply);
        let event = server.expect_event("Normal", "Accepted").await;
        assert_eq!(event["regarding"]["kind"], "RoutePolicy");
        assert_eq!(event["regarding"]["name"], "p");
        assert_eq!(event["regarding"]["uid"], "uid-p");
        assert_eq!(event["note"], "compiled; shapes the config of 2 sidecar(s)");
        assert_eq!(event["reportingInstance"], "fabric-operator-0");
    };
    let (report, ()) = scripted(writer.reconcile(&index, &compilation, &state, NOW), script).await;
    assert_eq!(report, WriteReport { written: 1, events: 1, ..Default::default() });

    // The watch has not delivered the write yet (same index): no call.
    let report = without_calls(writer.reconcile(&index, &compilation, &state, LATER), &mut server).await;
    assert_eq!(report, WriteReport::default());

    // The watch delivered it (the object now carries the status): no call.
    let mut delivered = index.clone();
    let written = applied(
        &policy,
        &json!({"status": {
            "observedGeneration": 2,
            "conditions": [
                condition("Applied", "True", "Applied", "2/2 sidecars on current version", NOW),
                condition("Accepted", "True", "Compiled", "compiled; shapes the config of 2 sidecar(s)", NOW),
                condition("Conflict", "False", "NoConflict", "", NOW),
                condition("Degraded", "False", "Healthy", "", NOW),
            ],
            "selectedSidecars": 2, "appliedSidecars": 2,
        }}),
        "101",
    );
    delivered.apply(serde_json::from_value::<fabric_operator_core::api::RoutePolicy>(written).unwrap()).unwrap();
    let report = without_calls(writer.reconcile(&delivered, &compilation, &state, LATER), &mut server).await;
    assert_eq!(report, WriteReport::default());
}

#[tokio::test]
async fn a_route_key_patch_never_carries_the_key_fields() {
    let (client, mut server) = mock_client();
    let key = json!({
        "apiVersion": "routing.fabric.dev/v1alpha1",
        "kind": "RouteKey",
        "metadata": {"name": "a-keys", "namespace": NS, "generation": 2, "resourceVersion": "7", "uid": "uid-k"},
        "spec": {"nodeId": "a"},
        // Written by the key rotation (field manager fabric-operator/keys).
        "status": {
            "keys": [{"keyId": "k1", "publicKey": "f3LZc9EXICJwg92vpsL6sfFc3ErII+y/fcB+e1aREaA=", "state": "Active"}],
            "activeKeyId": "k1",
            "nextRotation": "2025-02-01T00:00:00Z",
        },
    });
    let index = index(std::slice::from_ref(&key));
    let distributor = idle_distributor(&index);
    let mut writer = status_writer(&client);
    let (compilation, state) = (distributor.compilation(), distributor.state());

    let script = async {
        let call = server.expect_status_apply("routekeys", "a-keys").await;
        let status = call.body["status"].as_object().expect("a status object").clone();
        let mut fields: Vec<&str> = status.keys().map(String::as_str).collect();
        fields.sort();
        assert_eq!(fields, ["conditions", "observedGeneration"], "only the fields this writer owns: {}", call.body);
        assert_eq!(call.body["metadata"], json!({"name": "a-keys"}));
        assert_eq!(call.body["kind"], "RouteKey");
        let types: Vec<&str> =
            status["conditions"].as_array().unwrap().iter().map(|c| c["type"].as_str().unwrap()).collect();
        assert_eq!(types, ["Accepted", "Conflict", "Degraded"], "no Applied on a RouteKey");
        let reply = applied(
            &key,
            &json!({"status": {
                "observedGeneration": 2,
                "conditions": status["conditions"],
                "keys": key["status"]["keys"], "activeKeyId": "k1", "nextRotation": "2025-02-01T00:00:00Z",
            }}),
            "8",
        );
        call.reply(StatusCode::OK, &reply);
        server.expect_event("Normal", "Accepted").await;
    };
    let (report, ()) = scripted(writer.reconcile(&index, &compilation, &state, NOW), script).await;
    assert_eq!((report.written, report.events), (1, 1));
    let report = without_calls(writer.reconcile(&index, &compilation, &state, LATER), &mut server).await;
    assert_eq!(report, WriteReport::default());
}

#[tokio::test]
async fn a_nack_is_written_with_the_sidecar_and_announced_with_a_warning() {
    let (client, mut server) = mock_client();
    // The status written before: accepted an hour ago, pending since.
    let earlier = "2024-12-31T23:00:00Z";
    let policy = route_policy(
        "p",
        selecting_mesh(),
        Some(json!({
            "observedGeneration": 2,
            "conditions": [
                condition("Accepted", "True", "Compiled", "compiled; shapes the config of 2 sidecar(s)", earlier),
                condition("Conflict", "False", "NoConflict", "", earlier),
                condition("Degraded", "False", "Healthy", "", earlier),
                condition("Applied", "False", "Pending", "0/2 sidecars on current version", earlier),
            ],
            "selectedSidecars": 2, "appliedSidecars": 0,
        })),
    );
    let index = index(std::slice::from_ref(&policy));
    let (distributor, streams) = distributor(&index);
    let (a, b) = (&streams[0], &streams[1]);
    assert!(distributor.ack(&a.0, &a.1.version, &a.1.nonce));
    let nack =
        NackInfo { version: b.1.version.clone(), field: "nodeId".into(), message: "cannot change at runtime".into() };
    assert!(distributor.nack(&b.0, nack, &b.1.nonce, ""));
    let mut writer = status_writer(&client);
    let (compilation, state) = (distributor.compilation(), distributor.state());

    let script = async {
        let call = server.expect_status_apply("routepolicies", "p").await;
        let status = &call.body["status"];
        assert_eq!(status["appliedSidecars"], 1);
        assert_eq!(
            status["nacks"],
            json!([{"sidecar": "b", "version": b.1.version, "error": "nodeId: cannot change at runtime"}])
        );
        let conditions = status["conditions"].as_array().unwrap();
        assert_eq!(conditions[0]["lastTransitionTime"], earlier, "Accepted did not change: its time is kept");
        // Pending -> Nacked is no status change (False stays False): the
        // time is kept too, the reason and message say what happened.
        assert_eq!(
            conditions[3],
            condition(
                "Applied",
                "False",
                "Nacked",
                "1/2 sidecars on current version; NACKed by fabric/b (node b): nodeId: cannot change at runtime",
                earlier
            )
        );
        let reply = applied(&policy, &call.body, "101");
        call.reply(StatusCode::OK, &reply);
        let event = server.expect_event("Warning", "Nacked").await;
        assert!(event["note"].as_str().unwrap().contains("fabric/b (node b)"), "the note names the sidecar: {event}");
    };
    let (report, ()) = scripted(writer.reconcile(&index, &compilation, &state, NOW), script).await;
    assert_eq!((report.written, report.events), (1, 1));
    without_calls(writer.reconcile(&index, &compilation, &state, LATER), &mut server).await;
}

#[tokio::test]
async fn refusals_and_conflicts_are_warnings_with_their_reason() {
    let (client, mut server) = mock_client();
    // Equal priorities: both conflict, `p1` (smaller name) wins; `bad` has a
    // duration that does not parse.
    let p1 = route_policy("p1", selecting_mesh(), None);
    let p2 = route_policy("p2", selecting_mesh(), None);
    let bad = route_policy(
        "bad",
        json!({"sidecarSelector": {"matchLabels": {"mesh": "none"}}, "stability": {"holdDown": "soon"}}),
        None,
    );
    let index = index(&[p1.clone(), p2.clone(), bad.clone()]);
    let distributor = idle_distributor(&index);
    let mut writer = status_writer(&client);
    let (compilation, state) = (distributor.compilation(), distributor.state());

    let script = async {
        // Objects in name order: bad, p1, p2.
        let call = server.expect_status_apply("routepolicies", "bad").await;
        let accepted = &call.body["status"]["conditions"][0];
        assert_eq!((accepted["status"].as_str(), accepted["reason"].as_str()), (Some("False"), Some("Invalid")));
        let reply = applied(&bad, &call.body, "101");
        call.reply(StatusCode::OK, &reply);
        let event = server.expect_event("Warning", "Invalid").await;
        assert!(event["note"].as_str().unwrap().contains("holdDown"), "the note names the field: {event}");

        for (name, object, outcome) in [("p1", &p1, "this object wins"), ("p2", &p2, "RoutePolicy fabric/p1 wins")] {
            let call = server.expect_status_apply("routepolicies", name).await;
            let conflict = &call.body["status"]["conditions"][1];
            assert_eq!((conflict["type"].as_str(), conflict["status"].as_str()), (Some("Conflict"), Some("True")));
            let reply = applied(object, &call.body, "101");
            call.reply(StatusCode::OK, &reply);
            server.expect_event("Normal", "Accepted").await;
            let event = server.expect_event("Warning", "Conflict").await;
            let note = event["note"].as_str().unwrap();
            assert!(note.starts_with("EqualPriority: ") && note.contains(outcome), "{event}");
        }
    };
    let (report, ()) = scripted(writer.reconcile(&index, &compilation, &state, NOW), script).await;
    assert_eq!((report.written, report.events, report.failed), (3, 5, 0));
}

#[tokio::test]
async fn a_failed_write_is_retried_and_a_deleted_object_is_skipped() {
    let (client, mut server) = mock_client();
    let policy = route_policy("p", selecting_mesh(), None);
    let index = index(std::slice::from_ref(&policy));
    let distributor = idle_distributor(&index);
    let mut writer = status_writer(&client);
    let (compilation, state) = (distributor.compilation(), distributor.state());
    let failure = |code: u16, reason: &str| json!({"kind": "Status", "apiVersion": "v1", "status": "Failure", "message": reason, "reason": reason, "code": code});

    let script = async {
        let call = server.expect_status_apply("routepolicies", "p").await;
        call.reply(StatusCode::INTERNAL_SERVER_ERROR, &failure(500, "InternalError"));
    };
    let (report, ()) = scripted(writer.reconcile(&index, &compilation, &state, NOW), script).await;
    assert_eq!(report, WriteReport { failed: 1, ..Default::default() }, "no event for an unwritten status");

    let script = async {
        let call = server.expect_status_apply("routepolicies", "p").await;
        call.reply(StatusCode::NOT_FOUND, &failure(404, "NotFound"));
    };
    let (report, ()) = scripted(writer.reconcile(&index, &compilation, &state, NOW), script).await;
    assert_eq!(report, WriteReport { gone: 1, ..Default::default() });
}

#[tokio::test]
async fn rotated_events_are_published_on_the_route_key() {
    let (client, mut server) = mock_client();
    let key: RouteKey = serde_json::from_value(json!({
        "apiVersion": "routing.fabric.dev/v1alpha1",
        "kind": "RouteKey",
        "metadata": {"name": "a-keys", "namespace": NS, "uid": "uid-k"},
        "spec": {"nodeId": "a"},
    }))
    .unwrap();
    let events = EventPublisher::new(client, None);
    let script = async {
        let event = server.expect_event("Normal", "Rotated").await;
        assert_eq!(event["regarding"]["kind"], "RouteKey");
        assert_eq!(event["regarding"]["name"], "a-keys");
        assert_eq!(event["note"], "active key k2");
        assert_eq!(event["action"], "Rotate");
    };
    let (result, ()) = scripted(events.on_route_key(&key, false, "Rotated", "active key k2"), script).await;
    result.unwrap();
}

fn token_review_reply(request: &Value, status: Value) -> Value {
    json!({
        "apiVersion": "authentication.k8s.io/v1",
        "kind": "TokenReview",
        "metadata": {},
        "spec": request["spec"],
        "status": status,
    })
}

async fn expect_token_review(server: &mut ApiServer) -> Call {
    let call = server.next("POST TokenReview").await;
    assert_eq!((&call.method, call.path.as_str()), (&Method::POST, "/apis/authentication.k8s.io/v1/tokenreviews"));
    assert_eq!(call.body["spec"], json!({"token": "projected-token", "audiences": ["fabric-operator"]}));
    call
}

#[tokio::test]
async fn token_review_grants_the_pod_of_an_authenticated_token() {
    let (client, mut server) = mock_client();
    let verifier = TokenReview::new(client, "fabric-operator");
    let script = async {
        let call = expect_token_review(&mut server).await;
        let reply = token_review_reply(
            &call.body,
            json!({
                "authenticated": true,
                "audiences": ["fabric-operator"],
                "user": {
                    "username": "system:serviceaccount:fabric:sidecar",
                    "extra": {POD_NAME_EXTRA: ["eu-1-7f9c"], "authentication.kubernetes.io/pod-uid": ["u"]},
                },
            }),
        );
        call.reply(StatusCode::CREATED, &reply);
    };
    let (identity, ()) = scripted(verifier.verify("projected-token"), script).await;
    let identity = identity.unwrap();
    assert_eq!(identity.subject, "system:serviceaccount:fabric:sidecar");
    assert_eq!((identity.namespace.as_deref(), identity.pod_name.as_deref()), (Some("fabric"), Some("eu-1-7f9c")));
    assert_eq!(identity.check_pod("fabric", "eu-1-7f9c"), Ok(()));
    assert!(identity.check_pod("fabric", "eu-2-0000").is_err(), "another pod's Hello is refused");
}

#[tokio::test]
async fn token_review_refuses_an_unauthenticated_token() {
    let (client, mut server) = mock_client();
    let verifier = TokenReview::new(client, "fabric-operator");
    let script = async {
        let call = expect_token_review(&mut server).await;
        let reply = token_review_reply(&call.body, json!({"authenticated": false, "error": "token has expired"}));
        call.reply(StatusCode::CREATED, &reply);
    };
    let (result, ()) = scripted(verifier.verify("projected-token"), script).await;
    assert_eq!(result, Err(AuthError::Invalid));
}

#[tokio::test]
async fn token_review_fails_closed_when_the_api_fails() {
    let (client, mut server) = mock_client();
    let verifier = TokenReview::new(client, "fabric-operator");
    let script = async {
        let call = expect_token_review(&mut server).await;
        let status = json!({
            "kind": "Status", "apiVersion": "v1", "status": "Failure",
            "message": "etcdserver: request timed out", "reason": "InternalError", "code": 500
        });
        call.reply(StatusCode::INTERNAL_SERVER_ERROR, &status);
    };
    let (result, ()) = scripted(verifier.verify("projected-token"), script).await;
    match result {
        Err(AuthError::Unavailable(text)) => assert!(text.contains("etcdserver: request timed out"), "{text}"),
        other => panic!("expected Unavailable, got {other:?}"),
    }
}

fn bound_token_review(request: &Value, pod: &str) -> Value {
    token_review_reply(
        request,
        json!({
            "authenticated": true,
            "audiences": ["fabric-operator"],
            "user": {"username": "system:serviceaccount:fabric:sidecar", "extra": {POD_NAME_EXTRA: [pod]}},
        }),
    )
}

/// Opens a config stream to `address` as pod `pod` (token `projected-token`).
async fn open_as(
    address: std::net::SocketAddr,
    pod: &str,
) -> Result<tonic::Response<tonic::Streaming<OperatorMessage>>, tonic::Status> {
    let channel = tonic::transport::Channel::from_shared(format!("http://{address}")).unwrap().connect().await.unwrap();
    let hello = Hello {
        node_id: pod.into(),
        namespace: NS.into(),
        pod_name: pod.into(),
        peer_address: "10.0.0.1:7400".into(),
        ..Default::default()
    };
    // Hello, then nothing (a sidecar waiting for its config).
    let outbound = futures::stream::iter([SidecarMessage::hello(hello)]).chain(futures::stream::pending());
    let mut request = tonic::Request::new(outbound);
    request.metadata_mut().insert("authorization", "Bearer projected-token".parse().unwrap());
    open_stream(channel, request).await
}

#[tokio::test]
async fn a_hello_must_name_the_pod_its_token_was_issued_to() {
    let (client, mut server) = mock_client();
    let distributor = idle_distributor(&Index::new());
    let verifier = std::sync::Arc::new(TokenReview::new(client, "fabric-operator"));
    let service = DistributionService::new(distributor.clone(), Some(verifier)).require_pod_binding();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(serve(listener, service, None, std::future::pending()));

    // eu-1's token, a Hello for eu-2: refused, and no stream is opened.
    let script = async {
        let call = expect_token_review(&mut server).await;
        let reply = bound_token_review(&call.body, "eu-1");
        call.reply(StatusCode::CREATED, &reply);
    };
    let (result, ()) = scripted(open_as(address, "eu-2"), script).await;
    let status = result.expect_err("a Hello for another pod must be refused");
    assert_eq!(status.code(), tonic::Code::PermissionDenied, "{status:?}");
    assert_eq!(status.message(), "the Hello names pod fabric/eu-2 but the token was issued to pod fabric/eu-1");
    assert!(distributor.state().sidecars.is_empty());

    // eu-1's token, eu-1's Hello: the stream opens.
    let script = async {
        let call = expect_token_review(&mut server).await;
        let reply = bound_token_review(&call.body, "eu-1");
        call.reply(StatusCode::CREATED, &reply);
    };
    let (result, ()) = scripted(open_as(address, "eu-1"), script).await;
    let _stream = result.expect("the pod's own Hello is accepted");
    let sidecars: Vec<String> = distributor.state().sidecars.keys().map(ToString::to_string).collect();
    assert_eq!(sidecars, ["fabric/eu-1"]);
}

/// Key rotation in a cluster: the private key goes to an owner-referenced
/// Secret first, then the public key to the RouteKey's status (both by
/// server-side apply as `fabric-operator/keys`), then the events; a second
/// pass with nothing due makes no call.
#[tokio::test]
async fn a_first_key_is_stored_in_a_secret_published_in_status_and_announced() {
    use fabric_operator::rotation::Rotator;
    use fabric_operator::rotation::secret::{ClusterPublisher, SecretKeyStore};

    let (client, mut server) = mock_client();
    let route_key = json!({
        "apiVersion": "routing.fabric.dev/v1alpha1",
        "kind": "RouteKey",
        "metadata": {"name": "eu-1", "namespace": NS, "generation": 1, "resourceVersion": "7", "uid": "uid-eu-1"},
        "spec": {"nodeId": "a"},
    });
    let distributor = Distributor::new(DistributorOptions::default());
    distributor.set_objects(index(std::slice::from_ref(&route_key)));
    let mut rotator = Rotator::with_generator(
        std::sync::Arc::new(SecretKeyStore::new(client.clone())),
        std::sync::Arc::new(ClusterPublisher::new(client, Some("operator-0".into()))),
        Box::new(|| Ok([5; 32])),
    );
    let now = fabric_core::Timestamp(1_800_000_000_000);

    let script = async {
        let secret_path = format!("/api/v1/namespaces/{NS}/secrets/routekey-eu-1");
        let call = server.next("GET the Secret").await;
        assert_eq!((&call.method, call.path.as_str()), (&Method::GET, secret_path.as_str()));
        call.reply(
            StatusCode::NOT_FOUND,
            &json!({"kind": "Status", "apiVersion": "v1", "status": "Failure", "reason": "NotFound", "code": 404,
                    "message": "secrets \"routekey-eu-1\" not found"}),
        );

        let call = server.next("apply the Secret").await;
        assert_eq!((&call.method, call.path.as_str()), (&Method::PATCH, secret_path.as_str()));
        assert_eq!(call.query.get("fieldManager").map(String::as_str), Some("fabric-operator/keys"));
        assert_eq!(call.query.get("force").map(String::as_str), Some("true"));
        let owner = &call.body["metadata"]["ownerReferences"][0];
        assert_eq!((owner["kind"].as_str(), owner["uid"].as_str()), (Some("RouteKey"), Some("uid-eu-1")), "{owner}");
        assert_eq!(owner["controller"], true);
        use base64::Engine as _;
        let data = call.body["data"]["keys.json"].as_str().expect("keys.json in data");
        let ring: Value =
            serde_json::from_slice(&base64::engine::general_purpose::STANDARD.decode(data).unwrap()).unwrap();
        assert_eq!(ring["keys"][0]["keyId"], "k1", "{ring}");
        let secret = call.body.clone();
        call.reply(StatusCode::OK, &secret);

        let path = format!("/apis/routing.fabric.dev/v1alpha1/namespaces/{NS}/routekeys/eu-1/status");
        let call = server.next("apply the key status").await;
        assert_eq!((&call.method, call.path.as_str()), (&Method::PATCH, path.as_str()));
        assert_eq!(call.query.get("fieldManager").map(String::as_str), Some("fabric-operator/keys"));
        let status = &call.body["status"];
        assert_eq!(status["activeKeyId"], "k1", "no sidecar lags: active at once; {status}");
        assert_eq!(status["keys"][0]["state"], "Active");
        assert!(status["keys"][0]["publicKey"].as_str().is_some_and(|k| k.len() == 44), "{status}");
        assert!(status.get("conditions").is_none(), "conditions belong to the status writer: {status}");
        let mut updated = route_key.clone();
        updated["status"] = status.clone();
        call.reply(StatusCode::OK, &updated);

        let published = server.expect_event("Normal", "KeyPublished").await;
        assert!(published["note"].as_str().is_some_and(|n| n.contains("k1")), "{published}");
        server.expect_event("Normal", "Rotated").await;
        updated
    };
    let (events, updated) = scripted(rotator.tick(&distributor, now), script).await;
    assert_eq!(events.len(), 2, "{events:?}");
    // The watch brings the status back: the owner signs with k1, everyone
    // trusts it.
    distributor.set_objects(index(&[updated]));
    let compiled = distributor.compilation();
    let config = &compiled.sidecars[&NodeId::from("a")].config;
    assert_eq!(config.security.signing_key_id.as_ref().map(|k| k.as_str()), Some("k1"), "the owner signs with k1");
    assert!(
        compiled.sidecars[&NodeId::from("b")].config.security.trusted_keys.iter().any(|k| k.key_id.as_str() == "k1")
    );

    // Nothing due: no call.
    let events = without_calls(rotator.tick(&distributor, fabric_core::Timestamp(now.0 + 1000)), &mut server).await;
    assert!(events.is_empty());
}
