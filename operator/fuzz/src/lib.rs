//! The fuzz targets, as functions: `fuzz_targets/*.rs` hand them
//! libFuzzer's inputs, and `tests/seeds.rs` runs them over the committed
//! corpus under `cargo test`, so every seed (and every crash added as a
//! regression seed) is checked without libFuzzer. Each target feeds bytes
//! to what the fabric decodes from others and asserts more than "no panic"
//! where that is cheap: round trips, and that what was accepted is valid.
//! docs/fuzzing.md says how to run them.

use bytes::BytesMut;
use fabric_control::{OperatorMessage, SidecarMessage, operator_message, sidecar_message};
use fabric_core::SidecarConfig;
use fabric_core::session::{Session, SessionSettings};
use fabric_core::time::Timestamp;
use fabric_core::wire::{self, DecodeLimits};
use fabric_sidecar::control::{ControlOptions, parse, signing_key};
use prost::Message as _;
use tokio_util::codec::{Decoder, LengthDelimitedCodec};

/// The names of the targets, as in `Cargo.toml` and `corpus/`.
pub const TARGETS: [&str; 5] = ["wire_decode", "session_frames", "config_load", "control_messages", "admission_review"];

/// Runs target `name` on `data`.
pub fn run(name: &str, data: &[u8]) {
    match name {
        "wire_decode" => wire_decode(data),
        "session_frames" => session_frames(data),
        "config_load" => config_load(data),
        "control_messages" => control_messages(data),
        "admission_review" => admission_review(data),
        other => panic!("no fuzz target {other}"),
    }
}

/// The envelope decoder. A frame that decodes re-encodes to bytes that
/// decode to the same frame, and encoding is deterministic.
pub fn wire_decode(data: &[u8]) {
    let limits = DecodeLimits::default();
    let Ok(frame) = wire::decode_frame(data, &limits) else { return };
    let mut once = Vec::new();
    wire::encode_frame(&frame, &mut once);
    let again = wire::decode_frame(&once, &limits).expect("a frame we encoded decodes");
    let mut twice = Vec::new();
    wire::encode_frame(&again, &mut twice);
    assert_eq!(once, twice, "encoding is a fixed point after one round");
}

/// What a connection does with its bytes: length-delimited frames (the
/// transport's codec, at the decoder's frame limit) into the sans-IO
/// session, as a dialer expecting `b` and as a listener.
pub fn session_frames(data: &[u8]) {
    let limits = DecodeLimits::default();
    for expected in [Some("b".into()), None] {
        let mut codec = LengthDelimitedCodec::builder().max_frame_length(limits.max_message_bytes).new_codec();
        let mut buffer = BytesMut::from(data);
        let settings = SessionSettings { hold_time: std::time::Duration::from_secs(3), max_messages_per_second: 1000 };
        let mut session = Session::new("a".into(), expected, settings, Timestamp(1_000));
        let _ = session.hello(Timestamp(1_000));
        let mut now = 1_000;
        while let Ok(Some(frame)) = codec.decode(&mut buffer) {
            now += 1;
            let Ok(frame) = wire::decode_frame(&frame, &limits) else { break };
            if session.on_frame(Timestamp(now), frame, |id| id.as_str() != "mallory").is_err() {
                break;
            }
        }
    }
}

/// The config loader, on the bytes as YAML (JSON is YAML too) and as JSON:
/// what loads is valid, and reloads from what it writes.
pub fn config_load(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else { return };
    if let Ok(config) = SidecarConfig::from_yaml(text) {
        config.validate().expect("from_yaml returns valid configs only");
        let written = config.to_yaml();
        let reloaded = SidecarConfig::from_yaml(&written).unwrap_or_else(|e| panic!("{e}: {written}"));
        assert_eq!(reloaded.to_yaml(), written, "a written config reloads to the same");
    }
    if let Ok(config) = serde_json::from_str::<SidecarConfig>(text) {
        let _ = config.validate();
    }
}

/// The control stream, both ways: what the sidecar does with an operator
/// message (a snapshot's config and signing key), and what the operator
/// does with a Hello.
pub fn control_messages(data: &[u8]) {
    if let Ok(message) = OperatorMessage::decode(data)
        && let Some(operator_message::Kind::Snapshot(snapshot)) = message.kind
    {
        let options = ControlOptions::new("http://127.0.0.1:7600", "0.0.0.0:7443");
        if let Ok(config) = parse(&snapshot, &options) {
            config.validate().expect("a parsed snapshot is a valid config");
        }
        let _ = signing_key(&snapshot);
    }
    if let Ok(message) = SidecarMessage::decode(data)
        && let Some(sidecar_message::Kind::Hello(hello)) = message.kind
    {
        let _ = fabric_operator::distribution::sidecar_from_hello(&hello, Some([10, 0, 0, 1].into()));
    }
}

/// The webhooks' AdmissionReview handling: injection, and validation of
/// the fabric kinds against a small fabric. A body that is not a review is
/// an error, never a panic; an answer echoes the request's uid.
pub fn admission_review(data: &[u8]) {
    use fabric_operator_core::admission::validate::{ValidationMode, validate};
    use fabric_operator_core::admission::{InjectionSettings, review};
    let settings = InjectionSettings::new("routing-sidecar:fuzz", "https://fabric.fabric-system.svc:7600", None);
    if let Ok(decision) = review(data, &settings) {
        assert!(!decision.response.response.uid.is_empty(), "a decision answers a request with a uid");
    }
    let mut fabric = fabric_operator_core::index::Index::new();
    fabric.upsert_sidecar(fabric_operator_core::index::SidecarInfo {
        node_id: "eu-1".into(),
        namespace: "fabric".into(),
        name: "eu-1-0".into(),
        labels: Default::default(),
        peer_address: Some("10.0.0.1:7443".into()),
        service_account: Some("default".into()),
    });
    let identity = fabric_operator_core::compile::Settings::default();
    let _ = validate(data, Some(&fabric), &identity, ValidationMode::Deny);
}
