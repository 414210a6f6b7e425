//! JSON Patch (RFC 6902), the `patchType: JSONPatch` of an admission
//! response. Only what the webhook emits is modelled; kube-core's
//! `json-patch` types sit behind its `admission` feature, which this build
//! does not enable.

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// One operation; the webhook only adds.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "lowercase")]
pub enum PatchOperation {
    /// Adds `value` at `path`: a new object member (or replaces an existing
    /// one), or inserts into an array at an index (`/-`: at the end).
    Add { path: String, value: Value },
}

/// A JSON Patch document: operations applied in order, all or nothing.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct JsonPatch(pub Vec<PatchOperation>);

impl JsonPatch {
    pub fn add(&mut self, path: impl Into<String>, value: Value) {
        self.0.push(PatchOperation::Add { path: path.into(), value });
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The JSON the API server expects (before base64).
    pub fn to_json(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("a JSON patch serializes")
    }
}

/// One reference token of a JSON Pointer (RFC 6901): `~` is `~0` and `/` is
/// `~1`, so `routing.fabric.dev/node-id` is `routing.fabric.dev~1node-id`.
pub(super) fn escape(token: &str) -> String {
    token.replace('~', "~0").replace('/', "~1")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_escaped_as_rfc_6901_says() {
        assert_eq!(escape("routing.fabric.dev/bootstrap-config"), "routing.fabric.dev~1bootstrap-config");
        assert_eq!(escape("a~/b"), "a~0~1b");
        assert_eq!(escape("plain"), "plain");
    }

    #[test]
    fn serializes_as_a_list_of_operations() {
        let mut patch = JsonPatch::default();
        patch.add("/spec/volumes/-", serde_json::json!({"name": "v"}));
        let json: Value = serde_json::from_slice(&patch.to_json()).unwrap();
        assert_eq!(json, serde_json::json!([{"op": "add", "path": "/spec/volumes/-", "value": {"name": "v"}}]));
        assert_eq!(serde_json::from_value::<JsonPatch>(json).unwrap(), patch);
    }
}
