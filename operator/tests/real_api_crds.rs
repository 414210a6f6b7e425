//! The CRDs against a real kube-apiserver (fabric-envtest): they become
//! Established, every rule docs/crds.md says the API server enforces
//! refuses an object that breaks it with that rule's message, every CR
//! under `examples/` is accepted, and applying an unchanged CR again changes
//! nothing. `tests/cel_rules.rs` evaluates the same CEL rules with cel-rust;
//! this is the proof that the real server agrees.

use fabric_envtest::{apply_yaml, envtest_or_skip, parse_yaml_documents};
use fabric_testkit::real_api::{install_crds, workspace};
use kube::api::{Api, DynamicObject, PatchParams};
use kube::discovery::pinned_kind;
use serde_json::Value;

/// A valid object of each kind; every case below changes one thing.
const ROUTE_POLICY: &str = r#"
apiVersion: routing.fabric.dev/v1alpha1
kind: RoutePolicy
metadata: {name: policy}
spec:
  sidecarSelector: {matchLabels: {role: edge}}
  tieBreakers: [HopCount, Latency]
  stability:
    holdDown: 5s
    dampening: {suppressThreshold: 3000, reuseThreshold: 750, halfLife: 15m, maxSuppress: 1h}
"#;

const NEIGHBOR_POLICY: &str = r#"
apiVersion: routing.fabric.dev/v1alpha1
kind: NeighborPolicy
metadata: {name: neighbors}
spec:
  sidecarSelector: {}
  neighbors:
    - nodeId: core-1
      link: {cost: 2}
    - selector: {matchLabels: {role: core}}
"#;

const ROUTE_KEY: &str = r#"
apiVersion: routing.fabric.dev/v1alpha1
kind: RouteKey
metadata: {name: key}
spec:
  nodeId: edge-1
  rotationInterval: 720h
  overlap: 24h
"#;

const LINK_STATE_AREA: &str = r#"
apiVersion: routing.fabric.dev/v1alpha1
kind: LinkStateArea
metadata: {name: area}
spec:
  areaId: eu
  memberSelector: {}
  parents: [core]
  summaryFilters:
    - targetArea: core
      denyDestinations: ["secret-*"]
"#;

/// (what breaks, base object, JSON merge patch onto its spec, the message
/// the server must answer with).
struct Case {
    what: &'static str,
    base: &'static str,
    spec_patch: &'static str,
    message: &'static str,
}

const fn case(what: &'static str, base: &'static str, spec_patch: &'static str, message: &'static str) -> Case {
    Case { what, base, spec_patch, message }
}

/// Every CEL rule of docs/crds.md ("Validation rules") and the plain
/// OpenAPI constraints it lists.
const REFUSED: &[Case] = &[
    // CEL rules.
    case(
        "duplicate tie-breaker",
        ROUTE_POLICY,
        r#"{"tieBreakers": ["HopCount", "HopCount"]}"#,
        "tieBreakers must not list the same tie-breaker twice",
    ),
    case(
        "reuse above suppress",
        ROUTE_POLICY,
        r#"{"stability": {"dampening": {"suppressThreshold": 700, "reuseThreshold": 750, "halfLife": "15m", "maxSuppress": "1h"}}}"#,
        "dampening.reuseThreshold must be below dampening.suppressThreshold",
    ),
    case(
        "zero half-life",
        ROUTE_POLICY,
        r#"{"stability": {"dampening": {"suppressThreshold": 3000, "reuseThreshold": 750, "halfLife": "0s", "maxSuppress": "1h"}}}"#,
        "dampening.halfLife must be greater than zero",
    ),
    case(
        "maxSuppress below half-life",
        ROUTE_POLICY,
        r#"{"stability": {"dampening": {"suppressThreshold": 3000, "reuseThreshold": 750, "halfLife": "15m", "maxSuppress": "1m"}}}"#,
        "dampening.maxSuppress must be at least dampening.halfLife",
    ),
    case(
        "neighbor with nodeId and selector",
        NEIGHBOR_POLICY,
        r#"{"neighbors": [{"nodeId": "x", "selector": {}}]}"#,
        "each neighbor needs exactly one of nodeId or selector",
    ),
    case(
        "neighbor with neither",
        NEIGHBOR_POLICY,
        r#"{"neighbors": [{"link": {"cost": 1}}]}"#,
        "each neighbor needs exactly one of nodeId or selector",
    ),
    case(
        "export filter on a receive-only neighbor",
        NEIGHBOR_POLICY,
        r#"{"neighbors": [{"nodeId": "x", "advertise": false, "export": {"tags": {"deny": ["a"]}}}]}"#,
        "export filters have no effect on a neighbor with advertise: false",
    ),
    case(
        "nodeId listed twice",
        NEIGHBOR_POLICY,
        r#"{"neighbors": [{"nodeId": "x"}, {"nodeId": "x"}]}"#,
        "a nodeId must not be listed twice in one NeighborPolicy",
    ),
    case(
        "overlap not shorter than the interval",
        ROUTE_KEY,
        r#"{"overlap": "720h"}"#,
        "overlap must be shorter than rotationInterval",
    ),
    case(
        "External without keys",
        ROUTE_KEY,
        r#"{"management": "External"}"#,
        "management: External needs at least one externalKeys entry",
    ),
    case(
        "external keyId twice",
        ROUTE_KEY,
        r#"{"management": "External", "externalKeys": [
            {"keyId": "a", "publicKey": "f3LZc9EXICJwg92vpsL6sfFc3ErII+y/fcB+e1aREaA="},
            {"keyId": "a", "publicKey": "f3LZc9EXICJwg92vpsL6sfFc3ErII+y/fcB+e1aREaA="}]}"#,
        "externalKeys must not repeat a keyId",
    ),
    case(
        "validUntil before validFrom",
        ROUTE_KEY,
        r#"{"management": "External", "externalKeys": [{"keyId": "a", "publicKey": "f3LZc9EXICJwg92vpsL6sfFc3ErII+y/fcB+e1aREaA=",
            "validFrom": "2026-02-01T00:00:00Z", "validUntil": "2026-01-01T00:00:00Z"}]}"#,
        "validUntil must be after validFrom",
    ),
    case(
        "own parent",
        LINK_STATE_AREA,
        r#"{"parents": ["eu"], "summaryFilters": null}"#,
        "an area cannot be its own parent",
    ),
    case(
        "filter for a foreign area",
        LINK_STATE_AREA,
        r#"{"summaryFilters": [{"targetArea": "us"}]}"#,
        "a summary filter's targetArea must be this area or one of its parents",
    ),
    case("parent twice", LINK_STATE_AREA, r#"{"parents": ["core", "core"]}"#, "parents must not list an area twice"),
    case("ECMP above 64", LINK_STATE_AREA, r#"{"ecmpMaxPaths": 65}"#, "ecmpMaxPaths must be within 1..64"),
    case(
        "two filters for one area",
        LINK_STATE_AREA,
        r#"{"summaryFilters": [{"targetArea": "core"}, {"targetArea": "core"}]}"#,
        "summaryFilters must not target the same area twice",
    ),
    // Plain OpenAPI constraints.
    case("duration pattern", ROUTE_POLICY, r#"{"stability": {"holdDown": "5 seconds"}}"#, "spec.stability.holdDown"),
    case("name pattern", ROUTE_POLICY, r#"{"import": {"destinations": {"deny": ["a*b"]}}}"#, "should match"),
    case(
        "maxHopCount minimum",
        ROUTE_POLICY,
        r#"{"import": {"maxHopCount": 0}}"#,
        "should be greater than or equal to 1",
    ),
    case("enum", ROUTE_POLICY, r#"{"mode": "Sometimes"}"#, "Unsupported value: \"Sometimes\""),
    case("tie-breaker enum", ROUTE_POLICY, r#"{"tieBreakers": ["Fastest"]}"#, "Unsupported value: \"Fastest\""),
    case("maxItems", NEIGHBOR_POLICY, "GENERATED:257 neighbors", "must have at most 256 items"),
    case(
        "public key pattern",
        ROUTE_KEY,
        r#"{"management": "External", "externalKeys": [{"keyId": "a", "publicKey": "not a key"}]}"#,
        "spec.externalKeys[0].publicKey",
    ),
    case(
        "date-time format",
        ROUTE_KEY,
        r#"{"management": "External", "externalKeys": [{"keyId": "a", "publicKey": "f3LZc9EXICJwg92vpsL6sfFc3ErII+y/fcB+e1aREaA=", "validFrom": "yesterday"}]}"#,
        "spec.externalKeys[0].validFrom",
    ),
    case("algorithm enum", ROUTE_KEY, r#"{"algorithm": "RSA"}"#, "Unsupported value: \"RSA\""),
    // Values the schema must refuse because the operator could not read
    // them or the docs say they are refused.
    case(
        "uint32 overflow",
        ROUTE_POLICY,
        r#"{"import": {"maxHopCount": 4294967296}}"#,
        "should be less than or equal to 4294967295",
    ),
    case(
        "link cost overflow",
        NEIGHBOR_POLICY,
        r#"{"neighbors": [{"nodeId": "x", "link": {"cost": 4294967296}}]}"#,
        "should be less than or equal to 4294967295",
    ),
    case("int32 overflow", ROUTE_POLICY, r#"{"priority": 2147483648}"#, "should be less than or equal to 2147483647"),
    case(
        "selector operator",
        ROUTE_POLICY,
        r#"{"sidecarSelector": {"matchExpressions": [{"key": "a", "operator": "Like", "values": ["x"]}]}}"#,
        "Unsupported value: \"Like\"",
    ),
    case(
        "In without values",
        NEIGHBOR_POLICY,
        r#"{"sidecarSelector": {"matchExpressions": [{"key": "a", "operator": "In", "values": []}]}}"#,
        "operators In and NotIn need at least one value; Exists and DoesNotExist take none",
    ),
    case(
        "Exists with values",
        LINK_STATE_AREA,
        r#"{"memberSelector": {"matchExpressions": [{"key": "a", "operator": "Exists", "values": ["x"]}]}}"#,
        "operators In and NotIn need at least one value; Exists and DoesNotExist take none",
    ),
    case(
        "malformed label key",
        ROUTE_POLICY,
        r#"{"sidecarSelector": {"matchLabels": {"bad key": "x"}}}"#,
        "matchLabels keys must be label keys",
    ),
    case(
        "malformed label value",
        NEIGHBOR_POLICY,
        r#"{"neighbors": [{"selector": {"matchLabels": {"role": "-core"}}}]}"#,
        "matchLabels values must be label values",
    ),
    case(
        "malformed expression key",
        ROUTE_POLICY,
        r#"{"sidecarSelector": {"matchExpressions": [{"key": "a/b/c", "operator": "Exists"}]}}"#,
        "spec.sidecarSelector.matchExpressions[0].key",
    ),
    case(
        "duration too long",
        ROUTE_POLICY,
        r#"{"stability": {"holdDown": "99999999999999h"}}"#,
        "must be a duration such as 10s, 15m or 1h30m",
    ),
    case(
        "duration units out of order",
        ROUTE_KEY,
        r#"{"rotationInterval": "30m1h"}"#,
        "must be a duration such as 10s, 15m or 1h30m",
    ),
];

#[tokio::test]
async fn a_malformed_duration_gets_one_clear_message() {
    let envtest = envtest_or_skip!();
    let client = envtest.client().await;
    install_crds(&client).await;
    let namespace = envtest.namespace(&client, "duration").await;
    let bad = ROUTE_POLICY.replace("halfLife: 15m", "halfLife: 15 minutes");
    let error = apply_yaml(&client, &namespace, &bad).await.expect_err("a malformed halfLife is refused");
    let fabric_envtest::Error::Kube(kube::Error::Api(status)) = error else { panic!("{error}") };
    assert_eq!(status.code, 422);
    assert_eq!(
        status.message.matches("spec.stability.dampening").count(),
        1,
        "one cause, on the field itself: {}",
        status.message
    );
    assert!(status.message.contains("spec.stability.dampening.halfLife"), "{}", status.message);
    assert!(status.message.contains("must be a duration such as 10s"), "{}", status.message);
    assert!(!status.message.contains("conversion"), "no CEL type error: {}", status.message);
}

/// `base` with `spec_patch` merged into its spec (RFC 7386).
fn object(case: &Case) -> Value {
    let mut object = parse_yaml_documents(case.base).unwrap().remove(0);
    let patch: Value = match case.spec_patch.strip_prefix("GENERATED:") {
        Some("257 neighbors") => {
            let neighbors: Vec<Value> = (0..257).map(|i| serde_json::json!({"nodeId": format!("n{i}")})).collect();
            serde_json::json!({"neighbors": neighbors})
        }
        Some(other) => panic!("unknown generated patch {other}"),
        None => serde_json::from_str(case.spec_patch).unwrap_or_else(|e| panic!("{}: patch: {e}", case.what)),
    };
    merge(&mut object["spec"], &patch);
    object
}

fn merge(target: &mut Value, patch: &Value) {
    match (target, patch) {
        (Value::Object(target), Value::Object(patch)) => {
            for (key, value) in patch {
                if value.is_null() {
                    target.remove(key);
                } else {
                    merge(target.entry(key.clone()).or_insert(Value::Null), value);
                }
            }
        }
        (target, patch) => *target = patch.clone(),
    }
}

#[tokio::test]
async fn every_crd_becomes_established() {
    let envtest = envtest_or_skip!();
    let client = envtest.client().await;
    let names = install_crds(&client).await;
    assert_eq!(
        names,
        [
            "linkstateareas.routing.fabric.dev",
            "neighborpolicies.routing.fabric.dev",
            "routekeys.routing.fabric.dev",
            "routepolicies.routing.fabric.dev"
        ]
    );
}

#[tokio::test]
async fn the_valid_base_objects_are_accepted() {
    let envtest = envtest_or_skip!();
    let client = envtest.client().await;
    install_crds(&client).await;
    let namespace = envtest.namespace(&client, "base").await;
    for base in [ROUTE_POLICY, NEIGHBOR_POLICY, ROUTE_KEY, LINK_STATE_AREA] {
        apply_yaml(&client, &namespace, base).await.unwrap_or_else(|e| panic!("{e}\n{base}"));
    }
}

#[tokio::test]
async fn the_server_refuses_each_documented_rule_with_its_message() {
    let envtest = envtest_or_skip!();
    let client = envtest.client().await;
    install_crds(&client).await;
    let namespace = envtest.namespace(&client, "rules").await;
    let mut failures = Vec::new();
    for case in REFUSED {
        let text = serde_json::to_string(&object(case)).unwrap();
        match apply_yaml(&client, &namespace, &text).await {
            Ok(_) => failures.push(format!("{}: accepted", case.what)),
            Err(fabric_envtest::Error::Kube(kube::Error::Api(status))) => {
                if status.code != 422 || !status.message.contains(case.message) {
                    failures.push(format!(
                        "{}: {} {:?}, expected {:?}",
                        case.what, status.code, status.message, case.message
                    ));
                }
            }
            Err(other) => failures.push(format!("{}: {other}", case.what)),
        }
    }
    assert!(failures.is_empty(), "{} of {} cases:\n{}", failures.len(), REFUSED.len(), failures.join("\n"));
}

#[tokio::test]
async fn a_route_key_node_id_cannot_change() {
    let envtest = envtest_or_skip!();
    let client = envtest.client().await;
    install_crds(&client).await;
    let namespace = envtest.namespace(&client, "immutable").await;
    apply_yaml(&client, &namespace, ROUTE_KEY).await.unwrap();
    let changed = ROUTE_KEY.replace("nodeId: edge-1", "nodeId: edge-2");
    let error = apply_yaml(&client, &namespace, &changed).await.expect_err("nodeId changed");
    assert!(error.to_string().contains("nodeId is immutable; create a new RouteKey instead"), "{error}");
}

/// Every routing.fabric.dev object in `examples/` and `e2e/manifests/`, with
/// the file it came from.
fn example_crs() -> Vec<(String, Value)> {
    let mut found = Vec::new();
    let mut folders = vec![workspace().join("examples"), workspace().join("e2e/manifests")];
    while let Some(folder) = folders.pop() {
        for entry in std::fs::read_dir(&folder).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                folders.push(path);
            } else if path.extension().is_some_and(|e| e == "yaml" || e == "yml") {
                let text = std::fs::read_to_string(&path).unwrap();
                let Ok(documents) = parse_yaml_documents(&text) else { continue };
                for document in documents {
                    if document["apiVersion"].as_str().is_some_and(|v| v.starts_with("routing.fabric.dev/")) {
                        found.push((path.display().to_string(), document));
                    }
                }
            }
        }
    }
    found.sort_by(|a, b| a.0.cmp(&b.0));
    found
}

#[tokio::test]
async fn every_example_cr_is_accepted_and_a_second_apply_changes_nothing() {
    let envtest = envtest_or_skip!();
    let client = envtest.client().await;
    install_crds(&client).await;
    let examples = example_crs();
    assert!(examples.len() >= 10, "found only {} example CRs", examples.len());
    // One namespace per example file: the files reuse names.
    let mut namespaces = std::collections::BTreeMap::new();
    for (file, mut document) in examples {
        let next = namespaces.len();
        let namespace = namespaces.entry(file.clone()).or_insert_with(|| next).to_owned();
        let namespace = format!("examples-{namespace}");
        if envtest_namespace_missing(&client, &namespace).await {
            create_namespace(&client, &namespace).await;
        }
        document["metadata"].as_object_mut().unwrap().remove("namespace");
        let text = serde_json::to_string(&document).unwrap();
        let first = apply_yaml(&client, &namespace, &text).await.unwrap_or_else(|e| panic!("{file}: {e}"));
        let second = apply_yaml(&client, &namespace, &text).await.unwrap_or_else(|e| panic!("{file}: {e}"));
        let (first, second) = (&first[0].metadata, &second[0].metadata);
        assert_eq!(
            first.resource_version, second.resource_version,
            "{file}: {:?} changed on a second apply",
            first.name
        );
        assert_eq!(first.generation, second.generation, "{file}: {:?}", first.name);
    }
}

#[tokio::test]
async fn kubectl_apply_of_an_unchanged_cr_is_unchanged() {
    let envtest = envtest_or_skip!();
    let client = envtest.client().await;
    install_crds(&client).await;
    let namespace = envtest.namespace(&client, "kubectl").await;
    for base in [ROUTE_POLICY, NEIGHBOR_POLICY, ROUTE_KEY, LINK_STATE_AREA] {
        let file = envtest.dir().join(format!("kubectl-{}.yaml", envtest.unique()));
        std::fs::write(&file, base).unwrap();
        let apply = || {
            let output = envtest.kubectl().args(["apply", "-n", &namespace, "-f"]).arg(&file).output().unwrap();
            assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
            String::from_utf8_lossy(&output.stdout).trim().to_owned()
        };
        assert!(apply().ends_with("created"), "{base}");
        let again = apply();
        assert!(again.ends_with("unchanged"), "second kubectl apply said {again:?} for\n{base}");
    }
}

async fn envtest_namespace_missing(client: &kube::Client, name: &str) -> bool {
    let namespaces: Api<k8s_openapi::api::core::v1::Namespace> = Api::all(client.clone());
    namespaces.get_opt(name).await.unwrap().is_none()
}

async fn create_namespace(client: &kube::Client, name: &str) {
    let text = format!("apiVersion: v1\nkind: Namespace\nmetadata: {{name: {name}}}\n");
    apply_yaml(client, name, &text).await.unwrap();
}

#[tokio::test]
async fn dry_run_applies_nothing() {
    let envtest = envtest_or_skip!();
    let client = envtest.client().await;
    install_crds(&client).await;
    let namespace = envtest.namespace(&client, "dryrun").await;
    let params = PatchParams::apply("fabric-envtest").dry_run();
    fabric_envtest::apply_yaml_with(&client, &namespace, ROUTE_KEY, &params).await.unwrap();
    let gvk = kube::core::GroupVersionKind::gvk("routing.fabric.dev", "v1alpha1", "RouteKey");
    let (resource, _) = pinned_kind(&client, &gvk).await.unwrap();
    let keys: Api<DynamicObject> = Api::namespaced_with(client, &namespace, &resource);
    assert!(keys.get_opt("key").await.unwrap().is_none());
}

#[tokio::test]
async fn kubectl_get_shows_a_future_next_rotation() {
    let envtest = envtest_or_skip!();
    let client = envtest.client().await;
    install_crds(&client).await;
    let namespace = envtest.namespace(&client, "columns").await;
    apply_yaml(&client, &namespace, ROUTE_KEY).await.unwrap();
    let gvk = kube::core::GroupVersionKind::gvk("routing.fabric.dev", "v1alpha1", "RouteKey");
    let (resource, _) = pinned_kind(&client, &gvk).await.unwrap();
    let keys: Api<DynamicObject> = Api::namespaced_with(client, &namespace, &resource);
    let status = serde_json::json!({"status": {"nextRotation": "2999-01-01T00:00:00Z", "activeKeyId": "k1"}});
    keys.patch_status("key", &PatchParams::default(), &kube::api::Patch::Merge(&status)).await.unwrap();
    let output = envtest.kubectl().args(["get", "routekeys", "-n", &namespace]).output().unwrap();
    let table = String::from_utf8_lossy(&output.stdout);
    assert!(table.contains("NEXT ROTATION") && table.contains("2999-01-01T00:00:00Z"), "{table}");
    assert!(!table.contains("<invalid>"), "{table}");
}
