//! The validating webhook for the four fabric kinds: compiles the fabric
//! as the operator sees it with the object of the review in place, by the
//! same compiler `analyze` and the reconciler run, and refuses what the
//! change would make the operator refuse or report anyway: an object that
//! is not accepted (rule violations, a namespace outside the fabric's), a
//! conflict it enters, a neighbor it names that does not exist, a key it
//! lists that sidecars would refuse. Pure: the index comes from the caller.
//!
//! Only what the change adds counts against it: a finding the object had
//! before the change (an UPDATE of an object already in conflict) is a
//! warning, not a refusal, so fixing one thing never requires fixing all.
//! In [`ValidationMode::Warn`] every finding is a warning.

use std::collections::BTreeSet;

use serde_json::Value;

use super::review::{AdmissionRequest, AdmissionResponse, BadReview, Decision, Outcome, parse, subject};
use crate::api::{LinkStateArea, NeighborPolicy, RouteKey, RoutePolicy};
use crate::compile::{ConditionSpec, Settings, compile_with};
use crate::index::{Index, Indexed, NamespacedName, ObjectKey};

/// What a finding does to the request.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ValidationMode {
    /// Findings the change adds refuse it; older ones are warnings.
    #[default]
    Deny,
    /// Every finding is a warning; nothing is refused.
    Warn,
}

/// The group of the fabric kinds.
const GROUP: &str = "routing.fabric.dev";

/// Answers one AdmissionReview of a fabric object against `fabric`, the
/// objects and sidecars as the operator knows them (`None` while this
/// replica has not listed them: then the request is allowed with a
/// warning, since validating against an empty fabric would refuse every
/// neighbor).
pub fn validate(
    body: &[u8],
    fabric: Option<&Index>,
    identity: &Settings,
    mode: ValidationMode,
) -> Result<Decision, BadReview> {
    let request = parse(body)?;
    let subject = subject(&request);
    let mut response = AdmissionResponse::allow(&request.uid);
    let outcome = match (fabric, findings(&request, fabric, identity)) {
        (_, None) => Outcome::Ignored,
        (None, Some(_)) => {
            response.warnings.push(
                "fabric validation skipped: this operator replica has not listed the fabric (not the leader, or \
                 starting)"
                    .into(),
            );
            Outcome::Unchanged
        }
        (Some(_), Some(Findings { added, kept })) => {
            let (refusals, mut warnings) = match mode {
                ValidationMode::Deny => (added, kept),
                ValidationMode::Warn => (Vec::new(), added.into_iter().chain(kept).collect()),
            };
            warnings.dedup();
            response.warnings = warnings;
            if refusals.is_empty() {
                if response.warnings.is_empty() { Outcome::Unchanged } else { Outcome::Warned }
            } else {
                let message = format!("the fabric operator would refuse this change: {}", refusals.join("; "));
                response.refuse(422, "Invalid", message)
            }
        }
    };
    Ok(Decision::new(response, outcome, subject))
}

/// What the object would be reported with after the change: `added` are
/// the findings it did not have before.
struct Findings {
    added: Vec<String>,
    kept: Vec<String>,
}

/// `None` when the request is not a CREATE or UPDATE of a fabric kind
/// (nothing to check); with no fabric, empty findings.
fn findings(request: &AdmissionRequest, fabric: Option<&Index>, identity: &Settings) -> Option<Findings> {
    if request.kind.group != GROUP || !matches!(request.operation.as_str(), "CREATE" | "UPDATE") {
        return None;
    }
    let kind = request.kind.kind.as_str();
    if ![RoutePolicy::KIND, NeighborPolicy::KIND, RouteKey::KIND, LinkStateArea::KIND]
        .iter()
        .any(|k| k.as_str() == kind)
    {
        return None;
    }
    let Some(fabric) = fabric else { return Some(Findings { added: Vec::new(), kept: Vec::new() }) };
    let mut object = request.object.clone().unwrap_or(Value::Null);
    if object.pointer("/metadata/namespace").is_none()
        && let Some(namespace) = &request.namespace
    {
        object["metadata"]["namespace"] = Value::String(namespace.clone());
    }
    let mut after = fabric.clone();
    let key = match apply(&mut after, kind, object) {
        Ok(key) => key,
        Err(error) => return Some(Findings { added: vec![error], kept: Vec::new() }),
    };
    let before: BTreeSet<String> = reported(&compile_with(fabric, identity).conditions.get(&key).cloned());
    let now = reported(&compile_with(&after, identity).conditions.get(&key).cloned());
    let (added, kept) = now.into_iter().partition(|finding| !before.contains(finding));
    Some(Findings { added, kept })
}

/// The errors and warnings among an object's conditions, as
/// `Type Reason: message`.
fn reported(conditions: &Option<Vec<ConditionSpec>>) -> BTreeSet<String> {
    conditions
        .iter()
        .flatten()
        .filter(|c| c.is_notable())
        .map(|c| format!("{} {}: {}", c.type_.as_str(), c.reason, c.message))
        .collect()
}

/// Puts the object of a review into `index`, as the watch would.
fn apply(index: &mut Index, kind: &str, object: Value) -> Result<ObjectKey, String> {
    fn typed<K: Indexed + serde::de::DeserializeOwned>(index: &mut Index, object: Value) -> Result<ObjectKey, String> {
        let object: K =
            serde_json::from_value(object).map_err(|e| format!("the {} does not decode: {e}", K::KIND.as_str()))?;
        let metadata = object.metadata();
        let name = NamespacedName::new(
            metadata.namespace.as_deref().unwrap_or_default(),
            metadata.name.as_deref().unwrap_or_default(),
        );
        index.apply(object).map_err(|e| e.to_string())?;
        Ok(ObjectKey::new(K::KIND, &name))
    }
    match kind {
        k if k == RoutePolicy::KIND.as_str() => typed::<RoutePolicy>(index, object),
        k if k == NeighborPolicy::KIND.as_str() => typed::<NeighborPolicy>(index, object),
        k if k == RouteKey::KIND.as_str() => typed::<RouteKey>(index, object),
        _ => typed::<LinkStateArea>(index, object),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::index::SidecarInfo;

    fn review(operation: &str, object: Value) -> Vec<u8> {
        let kind = object["kind"].as_str().unwrap().to_owned();
        serde_json::to_vec(&json!({
            "apiVersion": "admission.k8s.io/v1",
            "kind": "AdmissionReview",
            "request": {
                "uid": "b1f1",
                "kind": {"group": GROUP, "version": "v1alpha1", "kind": kind},
                "namespace": "fabric",
                "operation": operation,
                "object": object,
            }
        }))
        .unwrap()
    }

    fn route_policy(name: &str, priority: i32) -> Value {
        json!({"apiVersion": "routing.fabric.dev/v1alpha1", "kind": "RoutePolicy",
               "metadata": {"name": name, "namespace": "fabric", "generation": 1},
               "spec": {"sidecarSelector": {}, "priority": priority}})
    }

    fn neighbor_policy(neighbor: &str) -> Value {
        json!({"apiVersion": "routing.fabric.dev/v1alpha1", "kind": "NeighborPolicy",
               "metadata": {"name": "uplinks", "namespace": "fabric", "generation": 1},
               "spec": {"sidecarSelector": {}, "neighbors": [{"nodeId": neighbor}]}})
    }

    /// Two sidecars and a RoutePolicy `base` of priority 10.
    fn fabric() -> Index {
        let mut index = Index::new();
        for node in ["eu-1", "eu-2"] {
            index.upsert_sidecar(SidecarInfo {
                node_id: node.into(),
                namespace: "fabric".into(),
                name: node.into(),
                labels: Default::default(),
                peer_address: Some(format!("{node}:7443")),
                service_account: None,
            });
        }
        let mut typed = Index::new();
        apply(&mut typed, "RoutePolicy", route_policy("base", 10)).unwrap();
        let base: RoutePolicy = typed.objects::<RoutePolicy>().next().unwrap().1.clone();
        index.apply(base).unwrap();
        index
    }

    fn decide(body: &[u8], fabric: Option<&Index>, mode: ValidationMode) -> AdmissionResponse {
        validate(body, fabric, &Settings::default(), mode).unwrap().response.response
    }

    #[test]
    fn what_a_change_adds_is_refused_and_what_it_keeps_is_a_warning() {
        struct Case {
            name: &'static str,
            body: Vec<u8>,
            allowed: bool,
            says: &'static str,
        }
        let cases = [
            Case { name: "a clean policy", body: review("CREATE", route_policy("other", 20)), allowed: true, says: "" },
            Case {
                name: "equal priority",
                body: review("CREATE", route_policy("twin", 10)),
                allowed: false,
                says: "Conflict EqualPriority",
            },
            Case {
                name: "an unknown neighbor",
                body: review("CREATE", neighbor_policy("eu-9")),
                allowed: false,
                says: "NeighborNotFound",
            },
            Case { name: "a known neighbor", body: review("CREATE", neighbor_policy("eu-2")), allowed: true, says: "" },
        ];
        let fabric = fabric();
        for case in cases {
            let response = decide(&case.body, Some(&fabric), ValidationMode::Deny);
            assert_eq!(response.allowed, case.allowed, "{}: {response:?}", case.name);
            let message = response.status.as_ref().map(|s| s.message.clone()).unwrap_or_default();
            assert!(message.contains(case.says), "{}: {message}", case.name);
            if !case.allowed {
                assert!(message.starts_with("the fabric operator would refuse this change: "), "{message}");
                assert_eq!(response.status.unwrap().code, 422);
            }
        }
    }

    #[test]
    fn an_update_is_not_refused_for_what_the_object_already_had() {
        let mut fabric = fabric();
        apply(&mut fabric, "RoutePolicy", route_policy("twin", 10)).unwrap();
        // `twin` already conflicts with `base`; relabelling it changes nothing there.
        let mut update = route_policy("twin", 10);
        update["metadata"]["labels"] = json!({"team": "net"});
        let response = decide(&review("UPDATE", update), Some(&fabric), ValidationMode::Deny);
        assert!(response.allowed, "{response:?}");
        assert!(response.warnings.iter().any(|w| w.starts_with("Conflict EqualPriority")), "{:?}", response.warnings);
    }

    #[test]
    fn warn_mode_and_an_unlisted_fabric_allow_with_warnings() {
        let fabric = fabric();
        let twin = review("CREATE", route_policy("twin", 10));
        let warned = decide(&twin, Some(&fabric), ValidationMode::Warn);
        assert!(warned.allowed && warned.status.is_none());
        assert!(warned.warnings.iter().any(|w| w.starts_with("Conflict EqualPriority")), "{:?}", warned.warnings);
        let unlisted = decide(&twin, None, ValidationMode::Deny);
        assert!(unlisted.allowed);
        assert!(unlisted.warnings[0].starts_with("fabric validation skipped"), "{:?}", unlisted.warnings);
    }

    #[test]
    fn other_kinds_and_deletes_are_not_looked_at() {
        let fabric = fabric();
        let delete = review("DELETE", route_policy("base", 10));
        let response = decide(&delete, Some(&fabric), ValidationMode::Deny);
        assert!(response.allowed && response.warnings.is_empty());
        let mut pod = review("CREATE", route_policy("x", 1));
        let mut value: Value = serde_json::from_slice(&pod).unwrap();
        value["request"]["kind"] = json!({"group": "", "version": "v1", "kind": "Pod"});
        pod = serde_json::to_vec(&value).unwrap();
        assert!(decide(&pod, Some(&fabric), ValidationMode::Deny).allowed);
        assert!(validate(b"{}", Some(&fabric), &Settings::default(), ValidationMode::Deny).is_err());
    }
}
