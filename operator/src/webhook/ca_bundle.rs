//! Keeps the `caBundle` of the operator's MutatingWebhookConfiguration
//! (`--webhook-configuration`) and ValidatingWebhookConfiguration
//! (`--validating-webhook-configuration`) equal to the CA of its serving
//! certificate.
//!
//! The API server verifies the webhook with that bundle. The chart cannot
//! always render it: with `tls.mode: selfSigned` the CA is generated in the
//! same render on the first install (and `helm template` has no cluster to
//! read it from), and with `tls.mode: secret` it lives only in the Secret.
//! The operator reads it from its mounted Secret anyway, so it writes it,
//! at start (retrying every 10 s until the configuration exists and the
//! write succeeds) and then every 5 minutes, which also repairs a bundle
//! reset by a re-apply. With cert-manager the chart leaves this to
//! cert-manager's CA injector instead.

use std::time::Duration;

use base64::Engine;
use k8s_openapi::api::admissionregistration::v1::{
    MutatingWebhookConfiguration, ValidatingWebhookConfiguration, WebhookClientConfig,
};
use kube::Api;
use kube::api::{Patch, PatchParams};
use serde_json::{Value, json};

/// While the bundle was never written (or the last write failed).
const RETRY: Duration = Duration::from_secs(10);
/// Once written.
const RECHECK: Duration = Duration::from_secs(300);

/// A webhook configuration kind: its webhooks' client configs.
pub trait WebhookConfiguration:
    kube::Resource<DynamicType = (), Scope = k8s_openapi::ClusterResourceScope>
    + Clone
    + std::fmt::Debug
    + serde::de::DeserializeOwned
    + serde::Serialize
{
    fn client_configs(&self) -> Vec<&WebhookClientConfig>;
}

impl WebhookConfiguration for MutatingWebhookConfiguration {
    fn client_configs(&self) -> Vec<&WebhookClientConfig> {
        self.webhooks.iter().flatten().map(|w| &w.client_config).collect()
    }
}

impl WebhookConfiguration for ValidatingWebhookConfiguration {
    fn client_configs(&self) -> Vec<&WebhookClientConfig> {
        self.webhooks.iter().flatten().map(|w| &w.client_config).collect()
    }
}

/// The JSON Patch that sets `caBundle` to `pem` in every webhook of
/// `configuration` whose bundle differs, guarded by the resource version
/// it was computed from; `None` when every bundle is already `pem`.
pub fn ca_bundle_patch<K: WebhookConfiguration>(configuration: &K, pem: &str) -> Option<Value> {
    let encoded = base64::engine::general_purpose::STANDARD.encode(pem.as_bytes());
    let mut operations = Vec::new();
    for (i, client_config) in configuration.client_configs().into_iter().enumerate() {
        if client_config.ca_bundle.as_ref().map(|bundle| bundle.0.as_slice()) != Some(pem.as_bytes()) {
            operations
                .push(json!({"op": "add", "path": format!("/webhooks/{i}/clientConfig/caBundle"), "value": encoded}));
        }
    }
    if operations.is_empty() {
        return None;
    }
    if let Some(version) = &configuration.meta().resource_version {
        operations.insert(0, json!({"op": "test", "path": "/metadata/resourceVersion", "value": version}));
    }
    Some(Value::Array(operations))
}

/// Why a caBundle check failed (retried after [`RETRY`]).
#[derive(Debug, thiserror::Error)]
pub enum CaBundleError {
    #[error("get {kind} {name}: {source}")]
    Get {
        kind: String,
        name: String,
        #[source]
        source: kube::Error,
    },
    #[error("patch the caBundle of {kind} {name}: {source}")]
    Patch {
        kind: String,
        name: String,
        #[source]
        source: kube::Error,
    },
}

/// One check: reads the configuration and patches it if needed. Returns
/// whether it wrote.
pub async fn sync_ca_bundle<K: WebhookConfiguration>(
    api: &Api<K>,
    name: &str,
    pem: &str,
) -> Result<bool, CaBundleError> {
    let kind = K::kind(&());
    let configuration = api.get(name).await.map_err(|source| CaBundleError::Get {
        kind: kind.to_string(),
        name: name.to_string(),
        source,
    })?;
    let Some(patch) = ca_bundle_patch(&configuration, pem) else { return Ok(false) };
    let patch = Patch::Json::<()>(serde_json::from_value(patch).expect("a JSON Patch"));
    api.patch(name, &PatchParams::default(), &patch).await.map_err(|source| CaBundleError::Patch {
        kind: kind.to_string(),
        name: name.to_string(),
        source,
    })?;
    Ok(true)
}

/// Runs [`sync_ca_bundle`] for ever (see the module docs).
pub async fn keep_ca_bundle<K: WebhookConfiguration>(client: kube::Client, name: String, pem: String) {
    let api: Api<K> = Api::all(client);
    loop {
        let wait = match sync_ca_bundle(&api, &name, &pem).await {
            Ok(written) => {
                if written {
                    tracing::info!(configuration = name, "webhook: caBundle written");
                }
                RECHECK
            }
            Err(error) => {
                tracing::warn!(%error, "webhook: cannot write the caBundle yet; the API server cannot call the webhook");
                RETRY
            }
        };
        tokio::time::sleep(wait).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn configuration(bundles: &[Option<&str>]) -> MutatingWebhookConfiguration {
        serde_json::from_value(json!({
            "metadata": {"name": "fabric", "resourceVersion": "42"},
            "webhooks": bundles.iter().enumerate().map(|(i, bundle)| {
                let mut client_config = json!({"service": {"name": "fabric", "namespace": "fabric-system"}});
                if let Some(pem) = bundle {
                    client_config["caBundle"] = json!(base64::engine::general_purpose::STANDARD.encode(pem));
                }
                json!({"name": format!("w{i}.routing.fabric.dev"), "clientConfig": client_config,
                       "sideEffects": "None", "admissionReviewVersions": ["v1"]})
            }).collect::<Vec<_>>(),
        }))
        .unwrap()
    }

    #[test]
    fn only_differing_bundles_are_written() {
        assert_eq!(ca_bundle_patch(&configuration(&[Some("CA")]), "CA"), None);
        let patch = ca_bundle_patch(&configuration(&[Some("CA"), None, Some("OLD")]), "CA").unwrap();
        assert_eq!(
            patch,
            json!([
                {"op": "test", "path": "/metadata/resourceVersion", "value": "42"},
                {"op": "add", "path": "/webhooks/1/clientConfig/caBundle", "value": "Q0E="},
                {"op": "add", "path": "/webhooks/2/clientConfig/caBundle", "value": "Q0E="},
            ])
        );
    }
}
