//! `admission.k8s.io/v1` AdmissionReview, as much of it as the webhook
//! reads and writes (k8s-openapi has no admission types, and kube-core's
//! sit behind its `admission` feature), and [`review`]: the request body
//! in, the response review out, pure.
//!
//! Errors, following the Kubernetes conventions for webhooks:
//!
//! - a body that is not an `admission.k8s.io/v1` AdmissionReview with a
//!   request and a uid is [`BadReview`]: HTTP 400 with the reason, no
//!   review (the API server then applies the webhook's `failurePolicy`);
//! - a pod that cannot be injected (see [`super::inject::InjectError`]) is
//!   refused: `allowed: false`, `status.code` 400 and a message naming the
//!   label or annotation to fix, which is what `kubectl` and the
//!   ReplicaSet's events show;
//! - anything that is not a Pod CREATE (the webhook is only registered for
//!   those) is allowed unchanged.

use base64::Engine;
use k8s_openapi::api::core::v1::Pod;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::inject::{InjectionSettings, inject};

pub const API_VERSION: &str = "admission.k8s.io/v1";
pub const KIND: &str = "AdmissionReview";
/// The only `patchType` of admission v1.
pub const PATCH_TYPE: &str = "JSONPatch";

/// The review the API server sends.
#[derive(Clone, Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AdmissionReviewRequest {
    #[serde(default)]
    pub api_version: String,
    #[serde(default)]
    pub kind: String,
    pub request: Option<AdmissionRequest>,
}

/// `group`, `version`, `kind` (or `resource`).
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GroupVersionKind {
    #[serde(default)]
    pub group: String,
    #[serde(default)]
    pub version: String,
    #[serde(default)]
    pub kind: String,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AdmissionRequest {
    /// Echoed in the response.
    pub uid: String,
    #[serde(default)]
    pub kind: GroupVersionKind,
    #[serde(default)]
    pub namespace: Option<String>,
    /// Empty on a CREATE whose name the server generates.
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub operation: String,
    #[serde(default)]
    pub object: Option<Value>,
    #[serde(default)]
    pub dry_run: Option<bool>,
}

/// The review the webhook answers.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AdmissionReviewResponse {
    pub api_version: &'static str,
    pub kind: &'static str,
    pub response: AdmissionResponse,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AdmissionResponse {
    pub uid: String,
    pub allowed: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<Status>,
    /// Base64 of the JSON Patch.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub patch: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub patch_type: Option<&'static str>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
}

impl AdmissionResponse {
    /// Allows the request of `uid` as it is.
    pub fn allow(uid: &str) -> Self {
        Self { uid: uid.to_owned(), allowed: true, status: None, patch: None, patch_type: None, warnings: Vec::new() }
    }

    /// Refuses it with an HTTP-like `code` and `reason` (`BadRequest`,
    /// `Invalid`) and `message`, what `kubectl` shows; the outcome to log.
    pub fn refuse(&mut self, code: u16, reason: &'static str, message: String) -> Outcome {
        self.allowed = false;
        self.status = Some(Status { status: "Failure", code, reason, message: message.clone() });
        Outcome::Refused(message)
    }
}

impl Decision {
    pub fn new(response: AdmissionResponse, outcome: Outcome, subject: String) -> Self {
        Decision {
            response: AdmissionReviewResponse { api_version: API_VERSION, kind: KIND, response },
            outcome,
            subject,
        }
    }
}

/// The part of `metav1.Status` a refusal carries.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Status {
    pub status: &'static str,
    pub code: u16,
    pub reason: &'static str,
    pub message: String,
}

/// A body that is not a usable AdmissionReview: answered with HTTP 400.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct BadReview(pub String);

/// The answer to one review, and what it was about (for the log).
#[derive(Clone, Debug, PartialEq)]
pub struct Decision {
    pub response: AdmissionReviewResponse,
    pub outcome: Outcome,
    /// `namespace/name`, or `namespace/generateName*` for a pod without a
    /// name yet.
    pub subject: String,
}

/// What was decided.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Not a pod CREATE: allowed as it is.
    Ignored,
    /// Labelled or not, nothing to add.
    Unchanged,
    Injected,
    /// Allowed with warnings (the validating webhook).
    Warned,
    Refused(String),
}

/// The request of an AdmissionReview body, or why it is not one.
pub fn parse(body: &[u8]) -> Result<AdmissionRequest, BadReview> {
    let review: AdmissionReviewRequest =
        serde_json::from_slice(body).map_err(|e| BadReview(format!("the body is not an AdmissionReview: {e}")))?;
    if review.api_version != API_VERSION || review.kind != KIND {
        return Err(BadReview(format!(
            "expected apiVersion {API_VERSION} and kind {KIND}, got {:?} and {:?} (set admissionReviewVersions: [v1])",
            review.api_version, review.kind
        )));
    }
    let request = review.request.ok_or_else(|| BadReview("the AdmissionReview has no request".into()))?;
    if request.uid.is_empty() {
        return Err(BadReview("the AdmissionReview request has no uid".into()));
    }
    Ok(request)
}

/// `namespace/name` of the request's object, `namespace/generateName*` for
/// one without a name yet (for the log).
pub fn subject(request: &AdmissionRequest) -> String {
    let metadata = |field: &str| {
        let value = request.object.as_ref()?.pointer(&format!("/metadata/{field}"))?.as_str()?;
        (!value.is_empty()).then(|| value.to_string())
    };
    let name = (request.name.clone().filter(|n| !n.is_empty()))
        .or_else(|| metadata("name"))
        .or_else(|| metadata("generateName").map(|prefix| format!("{prefix}*")))
        .unwrap_or_default();
    format!("{}/{name}", request.namespace.as_deref().unwrap_or_default())
}

/// Answers one AdmissionReview body.
pub fn review(body: &[u8], settings: &InjectionSettings) -> Result<Decision, BadReview> {
    let request = parse(body)?;
    let subject = subject(&request);
    let mut response = AdmissionResponse::allow(&request.uid);
    let is_pod = request.kind.group.is_empty() && request.kind.kind == "Pod";
    let outcome = if !is_pod || request.operation != "CREATE" {
        Outcome::Ignored
    } else {
        let pod = match request.object.map(serde_json::from_value::<Pod>) {
            Some(Ok(pod)) => Ok(pod),
            Some(Err(e)) => Err(format!("the pod does not decode: {e}")),
            None => Err("the request has no object".to_string()),
        };
        match pod.and_then(|pod| inject(&pod, settings).map_err(|e| e.to_string())) {
            Ok(Some(patch)) => {
                response.patch = Some(base64::engine::general_purpose::STANDARD.encode(patch.to_json()));
                response.patch_type = Some(PATCH_TYPE);
                Outcome::Injected
            }
            Ok(None) => Outcome::Unchanged,
            Err(message) => response.refuse(400, "BadRequest", format!("routing sidecar injection: {message}")),
        }
    };
    Ok(Decision::new(response, outcome, subject))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn settings() -> InjectionSettings {
        InjectionSettings::new("routing-sidecar:0.1.0", "https://fabric.fabric-system.svc:7600", None)
    }

    fn body(object: Value) -> Vec<u8> {
        serde_json::to_vec(&json!({
            "apiVersion": "admission.k8s.io/v1",
            "kind": "AdmissionReview",
            "request": {
                "uid": "705ab4f5-6393-11e8-b7cc-42010a800002",
                "kind": {"group": "", "version": "v1", "kind": "Pod"},
                "resource": {"group": "", "version": "v1", "resource": "pods"},
                "namespace": "fabric",
                "operation": "CREATE",
                "object": object,
            }
        }))
        .unwrap()
    }

    #[test]
    fn an_unlabelled_pod_is_allowed_without_a_patch() {
        let pod = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "a"}, "spec": {"containers": [{"name": "app"}]}});
        let decision = review(&body(pod), &settings()).unwrap();
        assert_eq!((decision.outcome, decision.subject.as_str()), (Outcome::Unchanged, "fabric/a"));
        let answer = decision.response;
        assert!(answer.response.allowed && answer.response.patch.is_none());
        assert_eq!(answer.response.uid, "705ab4f5-6393-11e8-b7cc-42010a800002");
    }

    #[test]
    fn a_pod_that_cannot_be_injected_is_refused_with_a_message() {
        let pod = json!({"metadata": {"generateName": "web-", "labels": {"routing.fabric.dev/sidecar": "true"}},
                         "spec": {"containers": [{"name": "app"}]}});
        let decision = review(&body(pod), &settings()).unwrap();
        assert!(matches!(decision.outcome, Outcome::Refused(_)));
        assert_eq!(decision.subject, "fabric/web-*");
        let json = serde_json::to_value(&decision.response).unwrap();
        assert_eq!(json["response"]["allowed"], false);
        assert_eq!(json["response"]["status"]["code"], 400);
        assert!(json["response"]["status"]["message"].as_str().unwrap().contains("routing.fabric.dev/node-id"));
    }

    #[test]
    fn malformed_reviews_are_bad_requests() {
        for (body, wanted) in [
            (b"{".to_vec(), "not an AdmissionReview"),
            (
                br#"{"apiVersion": "admission.k8s.io/v1beta1", "kind": "AdmissionReview"}"#.to_vec(),
                "expected apiVersion",
            ),
            (br#"{"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview"}"#.to_vec(), "no request"),
            (
                br#"{"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": {"uid": ""}}"#.to_vec(),
                "no uid",
            ),
        ] {
            let error = review(&body, &settings()).unwrap_err();
            assert!(error.0.contains(wanted), "{error}");
        }
    }

    #[test]
    fn other_kinds_and_operations_are_ignored() {
        let mut request: Value = serde_json::from_slice(&body(json!({}))).unwrap();
        request["request"]["operation"] = json!("UPDATE");
        let decision = review(&serde_json::to_vec(&request).unwrap(), &settings()).unwrap();
        assert_eq!((decision.outcome, decision.response.response.allowed), (Outcome::Ignored, true));
    }
}
