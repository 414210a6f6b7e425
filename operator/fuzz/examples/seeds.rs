//! Writes the seed corpus, `corpus/<target>/seed-*`, from the protocol test
//! vectors, example configs and messages and the admission fixtures:
//! `cargo run -p fabric-fuzz --example seeds`. Crashes found by fuzzing are
//! kept next to them as `crash-*` (docs/fuzzing.md).

use std::path::Path;

use fabric_control::{ConfigSnapshot, Hello, OperatorMessage, SidecarMessage, SigningKey};
use fabric_core::wire::{self, Frame, vectors};
use prost::Message as _;

fn write(target: &str, name: &str, bytes: &[u8]) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("corpus").join(target);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join(format!("seed-{name}")), bytes).unwrap();
}

fn encoded(frame: &Frame) -> Vec<u8> {
    let mut bytes = Vec::new();
    wire::encode_frame(frame, &mut bytes);
    bytes
}

/// `frames`, each behind the transport's 4-byte big-endian length.
fn length_delimited(frames: &[Frame]) -> Vec<u8> {
    let mut out = Vec::new();
    for frame in frames {
        let bytes = encoded(frame);
        out.extend_from_slice(&(bytes.len() as u32).to_be_bytes());
        out.extend_from_slice(&bytes);
    }
    out
}

const CONFIG: &str = "nodeId: eu-1\nneighbors:\n  - {id: eu-2, address: \"10.0.0.2:7443\", link: {cost: 2}}\n\
originate:\n  - {destination: payments, tags: [gold]}\nsecurity:\n  requireSignatures: true\n\
timers: {routeTtl: 90s, refreshInterval: 30s}\n";

fn main() {
    let test_vectors = vectors::test_vectors();
    for (i, vector) in test_vectors.iter().enumerate() {
        write("wire_decode", &format!("vector-{i}"), &vector.wire);
    }
    let hello = Frame::Hello { node_id: "b".into(), hold_time_ms: 3000 };
    write("wire_decode", "hello", &encoded(&hello));
    write("wire_decode", "close", &encoded(&Frame::Close { reason: "bye".into(), restarting: true }));

    let routing: Vec<Frame> = test_vectors.iter().map(|v| v.frame.clone()).collect();
    let mut session = vec![hello.clone()];
    session.extend(routing);
    write("session_frames", "hello-then-vectors", &length_delimited(&session));
    write("session_frames", "hello-only", &length_delimited(&[hello]));

    write("config_load", "yaml", CONFIG.as_bytes());
    let json = serde_json::to_vec(&fabric_core::SidecarConfig::from_yaml(CONFIG).unwrap()).unwrap();
    write("config_load", "json", &json);

    let snapshot = ConfigSnapshot {
        version: "v1".into(),
        nonce: "n1".into(),
        config_yaml: CONFIG.into(),
        signing_key: Some(SigningKey { key_id: "k1".into(), private_key: vec![7; 32] }),
    };
    write("control_messages", "snapshot", &OperatorMessage::snapshot(snapshot).encode_to_vec());
    let hello = Hello {
        node_id: "eu-1".into(),
        namespace: "fabric".into(),
        labels: [("routing.fabric.dev/node-id".to_string(), "eu-1".to_string())].into(),
        peer_address: "0.0.0.0:7443".into(),
        applied_version: String::new(),
        pod_name: "eu-1-0".into(),
        peer_certificate_request: Vec::new(),
    };
    write("control_messages", "hello", &SidecarMessage::hello(hello).encode_to_vec());

    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/admission");
    for name in
        ["statefulset-pod-labelled.json", "deployment-pod-without-node-id.json", "malformed-v1beta1-review.json"]
    {
        write("admission_review", name.trim_end_matches(".json"), &std::fs::read(fixtures.join(name)).unwrap());
    }
    let policy = serde_json::json!({
        "apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
        "request": {"uid": "u1", "kind": {"group": "routing.fabric.dev", "version": "v1alpha1", "kind": "NeighborPolicy"},
            "namespace": "fabric", "operation": "CREATE",
            "object": {"apiVersion": "routing.fabric.dev/v1alpha1", "kind": "NeighborPolicy",
                "metadata": {"name": "uplinks", "namespace": "fabric"},
                "spec": {"sidecarSelector": {}, "neighbors": [{"nodeId": "eu-9"}]}}}
    });
    write("admission_review", "neighbor-policy", &serde_json::to_vec(&policy).unwrap());
}
