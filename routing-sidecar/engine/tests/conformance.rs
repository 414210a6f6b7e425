//! Conformance scripts: one engine, a config and a timed list of inputs,
//! and the effects each input produced, stored next to the script as
//! golden JSON (`tests/conformance/<case>.yaml` and
//! `<case>.expected.json`). A change in the engine's behaviour shows in
//! review as a diff of the expected files.
//!
//! `FABRIC_BLESS=1 cargo test -p fabric-engine --test conformance`
//! rewrites the expected files; without it the test compares.

use std::path::{Path, PathBuf};

use fabric_core::message::{Message, RouteAnnouncement, RouteMetrics, RouteWithdrawal};
use fabric_core::{DestinationId, NodeId, SidecarConfig, Tag, Timestamp};
use fabric_engine::{Effect, Engine};
use fabric_testkit::golden::{blessing, first_difference};
use serde::Deserialize;
use serde_json::{Value, json};

/// A script: the node's config and what happens to it.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Script {
    /// The `SidecarConfig`, as YAML.
    config: String,
    steps: Vec<Step>,
}

/// One input at `at` milliseconds; the effects drained after it are its
/// expected output.
#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct Step {
    at: u64,
    #[serde(flatten)]
    input: Input,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
enum Input {
    NeighborUp(String),
    NeighborDown {
        neighbor: String,
        graceful: bool,
    },
    Announce(Announce),
    Withdraw {
        from: String,
        destination: String,
        epoch: u64,
    },
    EndOfTable(String),
    /// `true` runs the timers (`Engine::tick`); `false` only drains.
    Tick(bool),
    /// A new config (YAML); a refused one is reported, the old one stays.
    ApplyConfig(String),
}

/// An announcement from neighbor `path[0]`, unsigned.
#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct Announce {
    destination: String,
    path: Vec<String>,
    cost: u32,
    #[serde(default = "one")]
    epoch: u64,
    #[serde(default)]
    tags: Vec<String>,
    #[serde(default = "default_ttl")]
    ttl_ms: u32,
}

fn one() -> u64 {
    1
}

fn default_ttl() -> u32 {
    90_000
}

fn announcement(a: &Announce) -> Message {
    let from = NodeId::new(a.path.first().expect("a path").as_str());
    Message::Announcement(RouteAnnouncement {
        destination: DestinationId::new(a.destination.as_str()),
        path: a.path.iter().map(|p| NodeId::new(p.as_str())).collect(),
        hop_count: a.path.len() as u32,
        metrics: RouteMetrics { cost: a.cost, latency_us: 100, reliability: 1.0 },
        advertiser: from,
        epoch: a.epoch,
        ttl_ms: a.ttl_ms,
        issued_at_ms: None,
        tags: a.tags.iter().map(|t| Tag::new(t.as_str())).collect::<Vec<_>>().into(),
        signature: None,
    })
}

/// An effect as the expected files show it: messages summarized, route
/// changes and events as the engine serializes them.
fn render(effect: &Effect) -> Value {
    match effect {
        Effect::Send { to, message } => {
            let to: Vec<&str> = to.iter().map(NodeId::as_str).collect();
            let message = match &**message {
                Message::Announcement(a) => json!({
                    "announce": a.destination.as_str(),
                    "path": a.path.iter().map(NodeId::as_str).collect::<Vec<_>>(),
                    "cost": a.metrics.cost,
                    "tags": a.tags.iter().map(Tag::as_str).collect::<Vec<_>>(),
                }),
                Message::Withdrawal(w) => json!({ "withdraw": w.destination.as_str() }),
                Message::EndOfTable { advertiser } => json!({ "endOfTable": advertiser.as_str() }),
            };
            json!({ "send": { "to": to, "message": message } })
        }
        Effect::RouteChanged { destination, best } => {
            json!({ "routeChanged": { "destination": destination.as_str(), "best": best } })
        }
        Effect::Event(event) => json!({ "event": event }),
    }
}

fn run(script: &Script) -> Value {
    let config = SidecarConfig::from_yaml(&script.config).expect("the script's config is valid");
    let mut engine = Engine::new(config, Timestamp(0)).expect("the engine starts");
    let mut outputs = Vec::new();
    for step in &script.steps {
        let now = Timestamp(step.at);
        let mut note = None;
        match &step.input {
            Input::NeighborUp(n) => engine.neighbor_up(now, &NodeId::new(n.as_str())),
            Input::NeighborDown { neighbor, graceful } => {
                engine.neighbor_down(now, &NodeId::new(neighbor.as_str()), *graceful)
            }
            Input::Announce(a) => engine.receive(now, &NodeId::new(a.path[0].as_str()), announcement(a)),
            Input::Withdraw { from, destination, epoch } => engine.receive(
                now,
                &NodeId::new(from.as_str()),
                Message::Withdrawal(RouteWithdrawal {
                    destination: DestinationId::new(destination.as_str()),
                    path: vec![NodeId::new(from.as_str())],
                    advertiser: NodeId::new(from.as_str()),
                    epoch: *epoch,
                    issued_at_ms: None,
                    signature: None,
                }),
            ),
            Input::EndOfTable(from) => engine.receive(
                now,
                &NodeId::new(from.as_str()),
                Message::EndOfTable { advertiser: NodeId::new(from.as_str()) },
            ),
            Input::Tick(true) => engine.tick(now),
            Input::Tick(false) => {}
            Input::ApplyConfig(yaml) => {
                let result = SidecarConfig::from_yaml(yaml)
                    .map_err(|e| e.to_string())
                    .and_then(|config| engine.apply_config(now, config).map_err(|e| e.to_string()));
                note = Some(match result {
                    Ok(()) => json!("applied"),
                    Err(error) => json!({ "refused": error }),
                });
            }
        }
        let effects: Vec<Value> = engine.drain_effects(now).iter().map(render).collect();
        let mut output = json!({ "at": step.at, "effects": effects });
        if let Some(note) = note {
            output["config"] = note;
        }
        outputs.push(output);
    }
    Value::Array(outputs)
}

fn cases() -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/conformance");
    let mut cases: Vec<PathBuf> = std::fs::read_dir(&dir)
        .expect("tests/conformance")
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    cases.sort();
    cases
}

#[test]
fn every_script_produces_its_expected_effects() {
    let cases = cases();
    assert!(cases.len() >= 5, "scripts found: {cases:?}");
    let bless = blessing();
    let mut failures = Vec::new();
    for case in cases {
        let script: Script = serde_norway::from_str(&std::fs::read_to_string(&case).unwrap())
            .unwrap_or_else(|e| panic!("{}: {e}", case.display()));
        let got = serde_json::to_string_pretty(&run(&script)).unwrap() + "\n";
        let expected_path = case.with_extension("expected.json");
        if bless {
            std::fs::write(&expected_path, &got).unwrap();
            continue;
        }
        let want = std::fs::read_to_string(&expected_path).unwrap_or_default();
        if want != got {
            failures.push(format!("{}: differs at {}", expected_path.display(), first_difference(&want, &got)));
        }
    }
    assert!(failures.is_empty(), "{}\nrerun with FABRIC_BLESS=1 and review the diff", failures.join("\n"));
}

#[test]
fn a_step_input_is_one_of_the_known_kinds() {
    let error = serde_norway::from_str::<Step>("at: 0\nteleport: x\n").err().expect("unknown input refused");
    assert!(error.to_string().contains("no variant of enum Input"), "{error}");
}
