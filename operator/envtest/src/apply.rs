//! `kubectl apply --server-side` for multi-document YAML, through the kube
//! client: each document's kind is looked up with discovery and applied
//! with server-side apply.

use kube::api::{Api, DynamicObject, Patch, PatchParams};
use kube::core::GroupVersionKind;
use kube::discovery::{Scope, pinned_kind};
use serde_json::Value;

use crate::Error;

/// The non-empty documents of a multi-document YAML text, as JSON.
pub fn parse_yaml_documents(text: &str) -> Result<Vec<Value>, Error> {
    let mut documents = Vec::new();
    for (index, document) in serde_norway::Deserializer::from_str(text).enumerate() {
        let value =
            <Value as serde::Deserialize>::deserialize(document).map_err(|e| Error::Yaml(index + 1, e.to_string()))?;
        if !value.is_null() {
            documents.push(value);
        }
    }
    Ok(documents)
}

/// Applies every document of `text` with server-side apply as
/// `field_manager`, forcing conflicts; namespaced objects without a
/// namespace go to `namespace`. Returns what the server stored, in order.
pub async fn apply_yaml(client: &kube::Client, namespace: &str, text: &str) -> Result<Vec<DynamicObject>, Error> {
    apply_yaml_with(client, namespace, text, &PatchParams::apply("fabric-envtest").force()).await
}

/// [`apply_yaml`] with explicit patch parameters (a dry run, another field
/// manager). Stops at the first document the server refuses.
pub async fn apply_yaml_with(
    client: &kube::Client,
    namespace: &str,
    text: &str,
    params: &PatchParams,
) -> Result<Vec<DynamicObject>, Error> {
    let mut applied = Vec::new();
    for document in parse_yaml_documents(text)? {
        let object: DynamicObject =
            serde_json::from_value(document.clone()).map_err(|e| Error::Yaml(applied.len() + 1, e.to_string()))?;
        let types = object.types.clone().ok_or_else(|| Error::Yaml(applied.len() + 1, "no apiVersion/kind".into()))?;
        let (group, version) = match types.api_version.split_once('/') {
            Some((group, version)) => (group.to_owned(), version.to_owned()),
            None => (String::new(), types.api_version.clone()),
        };
        let gvk = GroupVersionKind::gvk(&group, &version, &types.kind);
        let (resource, capabilities) = pinned_kind(client, &gvk).await?;
        let api: Api<DynamicObject> = match capabilities.scope {
            Scope::Namespaced => {
                let namespace = object.metadata.namespace.as_deref().unwrap_or(namespace);
                Api::namespaced_with(client.clone(), namespace, &resource)
            }
            Scope::Cluster => Api::all_with(client.clone(), &resource),
        };
        let name =
            object.metadata.name.clone().ok_or_else(|| Error::Yaml(applied.len() + 1, "no metadata.name".into()))?;
        applied.push(api.patch(&name, params, &Patch::Apply(&document)).await?);
    }
    Ok(applied)
}
