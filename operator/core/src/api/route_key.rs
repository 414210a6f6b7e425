//! `RouteKey`: the signing identity of one node id, and who may run as it
//! (its namespace and `serviceAccountName`). The operator generates and rotates ed25519 keys and publishes their public
//! halves in `status.keys`; keys managed elsewhere are listed in
//! `spec.externalKeys`. Every sidecar trusts every published key.

use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::filter::MAX_NAME_LENGTH;
use super::rules;
use super::status::Condition;
use crate::api::duration::GoDuration;

/// Standard base64 of a 32-byte ed25519 public key.
pub const PUBLIC_KEY_PATTERN: &str = r"^[A-Za-z0-9+/]{43}=$";
/// Most external keys per RouteKey.
pub const MAX_EXTERNAL_KEYS: u32 = 16;

// kube's `printcolumn(...)` repeats `type_ = ...` by design; clippy reads that as
// duplicated attributes.
#[allow(clippy::duplicated_attributes)]
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[kube(
    group = "routing.fabric.dev",
    version = "v1alpha1",
    kind = "RouteKey",
    plural = "routekeys",
    shortname = "rkey",
    category = "fabric",
    namespaced,
    status = "RouteKeyStatus",
    derive = "PartialEq",
    doc = "Signing identity of a fabric node id: rotation schedule and published public keys.",
    printcolumn(name = "Node", type_ = "string", json_path = ".spec.nodeId"),
    printcolumn(name = "Management", type_ = "string", json_path = ".spec.management"),
    printcolumn(name = "Active Key", type_ = "string", json_path = ".status.activeKeyId"),
    printcolumn(name = "Next Rotation", type_ = "string", json_path = ".status.nextRotation"),
    printcolumn(name = "Age", type_ = "date", json_path = ".metadata.creationTimestamp")
)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = [
    {"rule": rules::ROUTE_KEY_OVERLAP_BELOW_ROTATION.rule, "message": rules::ROUTE_KEY_OVERLAP_BELOW_ROTATION.message},
    {"rule": rules::ROUTE_KEY_EXTERNAL_NEEDS_KEYS.rule, "message": rules::ROUTE_KEY_EXTERNAL_NEEDS_KEYS.message}
]))]
pub struct RouteKeySpec {
    /// The node id these keys sign for. Immutable.
    #[schemars(length(min = 1, max = MAX_NAME_LENGTH))]
    #[schemars(extend("x-kubernetes-validations" = [{
        "rule": rules::ROUTE_KEY_NODE_ID_IMMUTABLE.rule,
        "message": rules::ROUTE_KEY_NODE_ID_IMMUTABLE.message
    }]))]
    pub node_id: String,
    /// The ServiceAccount pods running as this node id must use. With it,
    /// this RouteKey binds the node id to its namespace and that
    /// ServiceAccount: another pod that claims the node id (by its
    /// `routing.fabric.dev/node-id` label) is refused and gets no config,
    /// key or certificate. Without it, the binding is to the namespace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 253))]
    pub service_account_name: Option<String>,
    #[serde(default)]
    pub algorithm: KeyAlgorithm,
    /// `Operator`: the operator generates and rotates keys. `External`:
    /// keys are managed elsewhere and only `externalKeys` are trusted.
    #[serde(default)]
    pub management: KeyManagement,
    /// A new key is published every interval. Default 720h (30 days).
    #[serde(default = "default_rotation_interval")]
    pub rotation_interval: GoDuration,
    /// How long the previous key stays trusted after the next one becomes
    /// active (and how long a new key is published before it signs).
    /// Default 24h; must be shorter than `rotationInterval`.
    #[serde(default = "default_overlap")]
    pub overlap: GoDuration,
    /// Public keys managed elsewhere, trusted in addition to the generated ones.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = MAX_EXTERNAL_KEYS))]
    #[schemars(extend("x-kubernetes-validations" = [{
        "rule": rules::EXTERNAL_KEY_IDS_UNIQUE.rule,
        "message": rules::EXTERNAL_KEY_IDS_UNIQUE.message
    }]))]
    pub external_keys: Vec<ExternalKey>,
}

fn default_rotation_interval() -> GoDuration {
    GoDuration::new("720h")
}
fn default_overlap() -> GoDuration {
    GoDuration::new("24h")
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
pub enum KeyAlgorithm {
    #[default]
    Ed25519,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
pub enum KeyManagement {
    #[default]
    Operator,
    External,
}

/// A public key whose private half lives elsewhere.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = [{
    "rule": rules::EXTERNAL_KEY_VALIDITY_ORDERED.rule,
    "message": rules::EXTERNAL_KEY_VALIDITY_ORDERED.message
}]))]
pub struct ExternalKey {
    #[schemars(length(min = 1, max = 64))]
    pub key_id: String,
    /// Standard base64 of the 32-byte ed25519 public key.
    #[schemars(regex(pattern = PUBLIC_KEY_PATTERN))]
    pub public_key: String,
    /// RFC 3339 start of validity (inclusive).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("format" = "date-time"))]
    pub valid_from: Option<String>,
    /// RFC 3339 end of validity (exclusive).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("format" = "date-time"))]
    pub valid_until: Option<String>,
}

/// Lifecycle of a generated key (RFC 8634 spirit: publish, then sign, then
/// retire after an overlap).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, JsonSchema)]
pub enum KeyState {
    /// Published so that sidecars trust it; not signing yet.
    Pending,
    /// The key the node signs with.
    Active,
    /// Superseded; still trusted until `validUntil`.
    Retiring,
}

/// A published public key (written by the operator's key rotation).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PublishedKey {
    pub key_id: String,
    /// Standard base64 of the 32-byte ed25519 public key.
    pub public_key: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("format" = "date-time"))]
    pub valid_from: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("format" = "date-time"))]
    pub valid_until: Option<String>,
    pub state: KeyState,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RouteKeyStatus {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["type"]))]
    pub conditions: Vec<Condition>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub keys: Vec<PublishedKey>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub active_key_id: Option<String>,
    /// RFC 3339 time of the next rotation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("format" = "date-time"))]
    pub next_rotation: Option<String>,
}
