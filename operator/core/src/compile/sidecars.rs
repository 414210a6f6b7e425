//! The sidecars by node id, among the pods [`identity`] lets claim their
//! node id. A malformed peer address is reported and dropped, so that one bad annotation does not invalidate the config of
//! every sidecar that has this one as a neighbor.

use std::collections::BTreeMap;

use fabric_core::NodeId;

use super::identity::{self, Bindings, Settings};
use super::output::{Problem, Severity};
use super::report::Report;
use crate::index::{Index, SidecarInfo};
use crate::names::{NODE_ID_LABEL, PEER_ADDRESS_ANNOTATION};

/// A sidecar with its usable peer address.
pub(crate) struct Sidecar<'a> {
    pub info: &'a SidecarInfo,
    pub address: Option<String>,
}

/// `host:port` with a numeric port, as `SidecarConfig::validate` requires.
fn is_host_port(address: &str) -> bool {
    address.rsplit_once(':').is_some_and(|(host, port)| !host.is_empty() && port.parse::<u16>().is_ok())
}

pub(crate) fn resolve<'a>(
    index: &'a Index,
    settings: &Settings,
    bindings: &Bindings<'_>,
    report: &mut Report,
) -> BTreeMap<NodeId, Sidecar<'a>> {
    for (pod, requested) in index.refused_node_ids() {
        let Some(info) = index.sidecar(&pod.namespace, &pod.name) else { continue };
        report.problem(Problem {
            severity: Severity::Error,
            object: Some(info.key()),
            sidecar: Some(info.node_id.clone()),
            field: Some(format!("metadata.labels[{NODE_ID_LABEL}]")),
            message: format!(
                "changed to {requested} while the pod runs as {}: refused, it keeps running as {} (a pod's node id \
                 is fixed for its life; delete the pod to start it as {requested})",
                info.node_id, info.node_id
            ),
            related: Vec::new(),
        });
    }
    let mut sidecars = BTreeMap::new();
    for (node_id, info) in identity::claims(index, settings, bindings, report) {
        let address = match &info.peer_address {
            Some(address) if is_host_port(address) => Some(address.clone()),
            Some(address) => {
                report.problem(Problem {
                    severity: Severity::Error,
                    object: Some(info.key()),
                    sidecar: Some(info.node_id.clone()),
                    field: Some(format!("metadata.annotations[{PEER_ADDRESS_ANNOTATION}]")),
                    message: format!("{address:?} is not host:port; neighbors get no address for this sidecar"),
                    related: Vec::new(),
                });
                None
            }
            None => None,
        };
        sidecars.insert(node_id, Sidecar { info, address });
    }
    sidecars
}

#[cfg(test)]
mod tests {
    use super::is_host_port;

    #[test]
    fn host_port_needs_a_host_and_a_numeric_port() {
        assert!(is_host_port("10.0.0.1:7400"));
        assert!(is_host_port("eu-1.fabric.svc:7400"));
        assert!(is_host_port("[::1]:7400"));
        assert!(!is_host_port("10.0.0.1"));
        assert!(!is_host_port(":7400"));
        assert!(!is_host_port("host:http"));
        assert!(!is_host_port("host:70000"));
    }
}
