//! RouteKey: the trusted keys every sidecar gets. Node ids are global, so
//! every sidecar trusts the keys of every node id, with these guards:
//! - only the RouteKey that binds a node id ([`super::identity`]) counts;
//! - a key that the sidecar would refuse (bad base64, not an ed25519 point,
//!   bad times, a key id used twice) is left out with a Degraded condition,
//!   so one bad key cannot invalidate every sidecar's config.
//!
//! `management: Operator` trusts the published `status.keys` (Pending,
//! Active and Retiring: a key is trusted before it signs) plus
//! `externalKeys`; `management: External` trusts `externalKeys` only.

use std::collections::{BTreeMap, BTreeSet};

use fabric_core::SidecarConfig;
use fabric_core::config::TrustedKey;
use fabric_core::ids::{KeyId, NodeId};

use super::identity::Bindings;
use super::report::Report;
use crate::api::{KeyManagement, RouteKey};
use crate::index::ObjectKey;
use crate::time::normalize_rfc3339;

/// One key as listed in a RouteKey, before checks.
struct Listed<'a> {
    field: String,
    key_id: &'a str,
    public_key: &'a str,
    valid_from: Option<&'a str>,
    valid_until: Option<&'a str>,
}

fn listed_keys(route_key: &RouteKey) -> Vec<Listed<'_>> {
    let mut listed = Vec::new();
    if route_key.spec.management == KeyManagement::Operator {
        let published = route_key.status.iter().flat_map(|s| s.keys.iter());
        for (i, key) in published.enumerate() {
            listed.push(Listed {
                field: format!("status.keys[{i}]"),
                key_id: &key.key_id,
                public_key: &key.public_key,
                valid_from: key.valid_from.as_deref(),
                valid_until: key.valid_until.as_deref(),
            });
        }
    }
    for (i, key) in route_key.spec.external_keys.iter().enumerate() {
        listed.push(Listed {
            field: format!("spec.externalKeys[{i}]"),
            key_id: &key.key_id,
            public_key: &key.public_key,
            valid_from: key.valid_from.as_deref(),
            valid_until: key.valid_until.as_deref(),
        });
    }
    listed
}

/// The trusted key for `listed`, or why the sidecar would refuse it.
fn trusted_key(node_id: &NodeId, listed: &Listed<'_>) -> Result<TrustedKey, String> {
    let normalize = |name: &str, time: Option<&str>| {
        time.map(normalize_rfc3339).transpose().map_err(|error| format!("{}.{name}: {error}", listed.field))
    };
    let key = TrustedKey {
        advertiser: node_id.clone(),
        key_id: KeyId::from(listed.key_id),
        public_key: listed.public_key.to_owned(),
        valid_from: normalize("validFrom", listed.valid_from)?,
        valid_until: normalize("validUntil", listed.valid_until)?,
    };
    // The sidecar's own check, on a config holding only this key.
    let mut probe = SidecarConfig::new(node_id.clone());
    probe.security.trusted_keys = vec![key.clone()].into();
    probe.key_registry().map_err(|error| format!("{}: {}", listed.field, error.reason))?;
    Ok(key)
}

/// What the RouteKeys compile to.
pub(crate) struct Keys {
    /// Every trusted key, sorted by (advertiser, key id).
    pub trusted: std::sync::Arc<[TrustedKey]>,
    /// The RouteKeys they come from.
    pub sources: BTreeSet<ObjectKey>,
    /// For operator-managed node ids: the key the node signs with
    /// (`status.activeKeyId`, when that key is trusted).
    pub signing: BTreeMap<NodeId, KeyId>,
}

/// The trusted keys of every RouteKey and the signing key of every
/// operator-managed node id.
pub(crate) fn trusted_keys(bindings: &Bindings<'_>, report: &mut Report) -> Keys {
    let mut keys: BTreeMap<(NodeId, KeyId), TrustedKey> = BTreeMap::new();
    let mut sources = BTreeSet::new();
    let mut signing = BTreeMap::new();
    for (node_id, binding) in bindings {
        let (object, route_key) = (&binding.route_key, binding.object);
        sources.insert(object.clone());
        let active = route_key.status.as_ref().and_then(|s| s.active_key_id.as_deref());
        if let (KeyManagement::Operator, Some(active)) = (route_key.spec.management, active) {
            signing.insert(node_id.clone(), KeyId::from(active));
        }
        for listed in listed_keys(route_key) {
            let id = (node_id.clone(), KeyId::from(listed.key_id));
            if keys.contains_key(&id) {
                let message = format!("{}: key id {} is listed twice; the first is used", listed.field, listed.key_id);
                report.degraded(object, "DuplicateKeyId", message, BTreeSet::new());
                continue;
            }
            match trusted_key(node_id, &listed) {
                Ok(key) => {
                    keys.insert(id, key);
                }
                Err(error) => {
                    report.degraded(object, "KeyRefused", format!("{error}; this key is not trusted"), BTreeSet::new())
                }
            }
        }
    }
    // A signing key the sidecars would not trust is not used.
    signing.retain(|node, key| keys.contains_key(&(node.clone(), key.clone())));
    Keys { trusted: keys.into_values().collect(), sources, signing }
}
