//! Who may run as a node id. Node ids are global, and a node id is worth
//! taking: its config, its signing key and its peer certificate go to the
//! pod the compiler picks for it. A pod label is not a credential (whoever
//! may create a pod sets its labels), so the pick rests on what owners and
//! installers declared:
//!
//! - [`Settings::namespaces`], the installer's list of fabric namespaces:
//!   pods and RouteKeys elsewhere are refused.
//! - A RouteKey binds its node id to its namespace and, with
//!   `spec.serviceAccountName`, to that ServiceAccount. The oldest RouteKey
//!   of a node id binds it (creation time, then namespace/name); a later one
//!   is a `DuplicateNodeId` conflict, so a RouteKey created afterwards in
//!   another namespace cannot take the node over.
//! - A pod outside its node id's binding is refused and reported on itself.
//! - A node id no RouteKey binds is served to its one claimant with
//!   [`UnboundNodeIds::Allow`], to none with [`UnboundNodeIds::Refuse`].
//! - Two pods that may both claim a node id: neither is served until one is
//!   gone. Picking one would hand the node's key to whichever sorts first.

use std::collections::{BTreeMap, BTreeSet};

use fabric_core::NodeId;

use super::output::{Problem, Severity};
use super::report::Report;
use crate::api::RouteKey;
use crate::index::{Index, ObjectKey, ObjectKind, SidecarInfo};
use crate::names::NODE_ID_LABEL;
use crate::validation::check_route_key;

/// What a node id without a RouteKey gets.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[cfg_attr(feature = "cli", derive(clap::ValueEnum))]
#[serde(rename_all = "camelCase")]
pub enum UnboundNodeIds {
    /// Served to its one claimant: fabrics that do not sign need no RouteKeys.
    #[default]
    Allow,
    /// Refused: every node id needs a RouteKey that binds it.
    Refuse,
}

/// The installer's identity settings (operator flags, chart `identity.*`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Settings {
    /// Namespaces fabric pods and RouteKeys may live in; `None`: any.
    pub namespaces: Option<BTreeSet<String>>,
    pub unbound_node_ids: UnboundNodeIds,
}

impl Settings {
    fn allows(&self, namespace: &str) -> bool {
        self.namespaces.as_ref().is_none_or(|allowed| allowed.contains(namespace))
    }

    fn namespace_refusal(&self, namespace: &str) -> String {
        let allowed: Vec<&str> = self.namespaces.iter().flatten().map(String::as_str).collect();
        format!(
            "namespace {namespace} is not a fabric namespace (--fabric-namespace, chart identity.namespaces: {})",
            allowed.join(", ")
        )
    }
}

/// Who owns a node id, as its RouteKey declares.
pub(crate) struct Binding<'a> {
    pub route_key: ObjectKey,
    pub object: &'a RouteKey,
    pub service_account: Option<&'a str>,
}

impl Binding<'_> {
    fn admits(&self, sidecar: &SidecarInfo) -> bool {
        let service_account_matches = match (self.service_account, sidecar.service_account.as_deref()) {
            (Some(bound), Some(actual)) => bound == actual,
            // A sidecar that is not a pod (local mode) has no ServiceAccount;
            // its token is its credential.
            _ => true,
        };
        sidecar.namespace == self.route_key.namespace && service_account_matches
    }

    fn describe(&self) -> String {
        match self.service_account {
            Some(account) => format!(
                "{} binds it to ServiceAccount {account} in namespace {}",
                self.route_key, self.route_key.namespace
            ),
            None => format!("{} binds it to namespace {}", self.route_key, self.route_key.namespace),
        }
    }
}

/// The binding of every node id that has an accepted RouteKey.
pub(crate) type Bindings<'a> = BTreeMap<NodeId, Binding<'a>>;

/// Binds node ids to the oldest valid RouteKey in a fabric namespace;
/// refuses and reports the others.
pub(crate) fn bind<'a>(index: &'a Index, settings: &Settings, report: &mut Report) -> Bindings<'a> {
    let mut candidates: BTreeMap<NodeId, Vec<(ObjectKey, &'a RouteKey)>> = BTreeMap::new();
    for (name, route_key) in index.objects::<RouteKey>() {
        let object = ObjectKey::new(ObjectKind::RouteKey, name);
        if !settings.allows(&name.namespace) {
            report.refuse(object, "NamespaceNotAllowed", settings.namespace_refusal(&name.namespace));
            continue;
        }
        let violations = check_route_key(&route_key.spec);
        if !violations.is_empty() {
            report.invalid(object, violations);
            continue;
        }
        candidates.entry(NodeId::from(route_key.spec.node_id.as_str())).or_default().push((object, route_key));
    }
    let mut bindings = BTreeMap::new();
    for (node_id, mut claims) in candidates {
        // Objects from manifests have no creation time; they sort first,
        // then by namespace/name (the index order, kept by the stable sort).
        claims.sort_by(|(_, a), (_, b)| a.metadata.creation_timestamp.cmp(&b.metadata.creation_timestamp));
        let (winner, route_key) = claims[0].clone();
        if claims.len() > 1 {
            let parties: BTreeSet<ObjectKey> = claims.iter().map(|(key, _)| key.clone()).collect();
            let subject = format!("second RouteKey for node id {node_id} (the oldest binds it)");
            report.conflict("DuplicateNodeId", &subject, &parties, &winner, None);
        }
        let service_account = route_key.spec.service_account_name.as_deref();
        bindings.insert(node_id, Binding { route_key: winner, object: route_key, service_account });
    }
    bindings
}

/// The sidecars allowed to claim their node id, by node id: pods outside a
/// fabric namespace or their node id's binding, unbound node ids under
/// [`UnboundNodeIds::Refuse`], and every party to a duplicate claim are
/// reported and left out.
pub(crate) fn claims<'a>(
    index: &'a Index,
    settings: &Settings,
    bindings: &Bindings<'_>,
    report: &mut Report,
) -> BTreeMap<NodeId, &'a SidecarInfo> {
    let mut claimants: BTreeMap<&NodeId, Vec<&'a SidecarInfo>> = BTreeMap::new();
    for info in index.sidecars() {
        let refusal = if !settings.allows(&info.namespace) {
            Some((settings.namespace_refusal(&info.namespace), None))
        } else {
            match bindings.get(&info.node_id) {
                Some(binding) if !binding.admits(info) => {
                    let runs_as = info.service_account.as_deref().unwrap_or("-");
                    let message = format!(
                        "claims node id {} as ServiceAccount {runs_as} in namespace {}, but {}: refused, it gets no \
                         config, key or certificate",
                        info.node_id,
                        info.namespace,
                        binding.describe()
                    );
                    Some((message, Some(binding.route_key.clone())))
                }
                None if settings.unbound_node_ids == UnboundNodeIds::Refuse => Some((
                    format!(
                        "node id {} has no RouteKey binding it to a namespace and ServiceAccount, and unbound node \
                         ids are refused (--unbound-node-ids=refuse): refused",
                        info.node_id
                    ),
                    None,
                )),
                _ => None,
            }
        };
        match refusal {
            Some((message, related)) => report.problem(claim_problem(info, message, related.into_iter().collect())),
            None => claimants.entry(&info.node_id).or_default().push(info),
        }
    }
    let mut allowed = BTreeMap::new();
    for (node_id, pods) in claimants {
        if let [only] = pods[..] {
            allowed.insert(node_id.clone(), only);
            continue;
        }
        let names: Vec<String> = pods.iter().map(|pod| pod.key().to_string()).collect();
        for pod in &pods {
            let message = format!(
                "node id {node_id} is claimed by {}: none of them gets a config, key or certificate until only one \
                 claims it",
                names.join(" and ")
            );
            let related = pods.iter().filter(|other| other.key() != pod.key()).map(|other| other.key()).collect();
            report.problem(claim_problem(pod, message, related));
        }
    }
    allowed
}

fn claim_problem(info: &SidecarInfo, message: String, related: Vec<ObjectKey>) -> Problem {
    Problem {
        severity: Severity::Error,
        object: Some(info.key()),
        sidecar: Some(info.node_id.clone()),
        field: Some(format!("metadata.labels[{NODE_ID_LABEL}]")),
        message,
        related,
    }
}
