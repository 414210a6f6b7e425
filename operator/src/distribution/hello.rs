//! A sidecar's Hello (the proto message) as the compiler sees a pod.

use std::net::IpAddr;

use fabric_control::Hello;
use fabric_core::NodeId;
use fabric_operator_core::index::SidecarInfo;
use fabric_operator_core::names::NODE_ID_LABEL;

/// A Hello that does not describe a sidecar (`INVALID_ARGUMENT`).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum HelloError {
    #[error("Hello without node_id")]
    NoNodeId,
    #[error("bad peer_address port in {0:?}")]
    PeerAddressPort(String),
}

/// The sidecar a Hello describes, as the compiler sees a pod: name = node
/// id, labels as sent; a `routing.fabric.dev/node-id` label overrides the
/// node id (the pod label is authoritative, as in a cluster). An
/// unspecified or missing host in the peer address is replaced by `remote`.
pub fn sidecar_from_hello(hello: &Hello, remote: Option<IpAddr>) -> Result<SidecarInfo, HelloError> {
    if hello.node_id.is_empty() {
        return Err(HelloError::NoNodeId);
    }
    let namespace = if hello.namespace.is_empty() { "default".to_string() } else { hello.namespace.clone() };
    let node_id = hello.labels.get(NODE_ID_LABEL).filter(|id| !id.is_empty()).unwrap_or(&hello.node_id).clone();
    let peer_address = match (hello.peer_address.rsplit_once(':'), remote) {
        (Some((host, port)), Some(remote)) if is_unspecified(host) => {
            let port = port.parse().map_err(|_| HelloError::PeerAddressPort(hello.peer_address.clone()))?;
            Some(std::net::SocketAddr::new(remote, port).to_string())
        }
        _ if hello.peer_address.is_empty() => None,
        _ => Some(hello.peer_address.clone()),
    };
    Ok(SidecarInfo {
        node_id: NodeId::from(node_id),
        namespace,
        name: if hello.pod_name.is_empty() { hello.node_id.clone() } else { hello.pod_name.clone() },
        labels: hello.labels.clone(),
        peer_address,
        service_account: None,
    })
}

fn is_unspecified(host: &str) -> bool {
    let host = host.trim_start_matches('[').trim_end_matches(']');
    host.is_empty() || host.parse::<IpAddr>().is_ok_and(|ip| ip.is_unspecified())
}

/// A Hello of sidecar `node` in namespace `fabric` with `labels`, its peer
/// address on an unspecified host (for this crate's tests).
#[cfg(test)]
pub(super) fn hello_for_test(node: &str, labels: &[(&str, &str)]) -> Hello {
    Hello {
        node_id: node.into(),
        namespace: "fabric".into(),
        labels: labels.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
        peer_address: "0.0.0.0:7000".into(),
        applied_version: String::new(),
        pod_name: String::new(),
        peer_certificate_request: Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hello_fills_an_unspecified_host_and_honours_the_node_id_label() {
        let remote = Some("10.1.2.3".parse().unwrap());
        let info = sidecar_from_hello(&hello_for_test("a", &[]), remote).unwrap();
        assert_eq!(info.peer_address.as_deref(), Some("10.1.2.3:7000"));
        assert_eq!(info.node_id.as_str(), "a");
        let info = sidecar_from_hello(&hello_for_test("a", &[(NODE_ID_LABEL, "other")]), remote).unwrap();
        assert_eq!((info.node_id.as_str(), info.name.as_str()), ("other", "a"));
        let mut explicit = hello_for_test("a", &[]);
        explicit.peer_address = "192.168.0.9:7000".into();
        assert_eq!(sidecar_from_hello(&explicit, remote).unwrap().peer_address.as_deref(), Some("192.168.0.9:7000"));
    }

    #[test]
    fn a_hello_without_a_node_id_or_with_a_bad_port_is_refused() {
        let remote = Some("10.1.2.3".parse().unwrap());
        assert_eq!(sidecar_from_hello(&hello_for_test("", &[]), remote), Err(HelloError::NoNodeId));
        let mut bad_port = hello_for_test("a", &[]);
        bad_port.peer_address = "0.0.0.0:http".into();
        let error = sidecar_from_hello(&bad_port, remote).unwrap_err();
        assert_eq!(error, HelloError::PeerAddressPort("0.0.0.0:http".into()));
        assert_eq!(error.to_string(), "bad peer_address port in \"0.0.0.0:http\"");
    }
}
