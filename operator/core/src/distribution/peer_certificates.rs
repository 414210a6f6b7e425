//! Peer TLS certificates: issued for the node id compiled for a sidecar's
//! pod, on its stream's request, and again when a third of the lifetime is
//! left or the pod's node id changed.

use std::time::SystemTime;

use fabric_core::NodeId;

use super::{Action, Connection, Distribution, IssuedCertificate, Message, Note, Push};
use crate::index::NamespacedName;
use crate::peer_ca::renewal_due;

/// A sidecar's request for a peer certificate and what it was issued.
#[derive(Debug)]
pub(super) struct Request {
    /// The stream that asked; a new stream asks again.
    connection: u64,
    /// DER PKCS#10.
    der: Vec<u8>,
    /// The node id and expiry of the last certificate sent.
    issued: Option<(NodeId, SystemTime)>,
}

impl Distribution {
    /// The sidecar of `connection` asks for a peer TLS certificate for the
    /// key of `request` (DER PKCS#10); it is issued now if the sidecar's pod
    /// was compiled for its node id, else when it is.
    pub fn request_peer_certificate(
        &mut self,
        connection: &Connection,
        request: Vec<u8>,
        now: SystemTime,
    ) -> Vec<Action> {
        if self.options.peer_ca.is_none() {
            return vec![Action::Note(Note::PeerCertificatesOff { sidecar: connection.sidecar.clone() })];
        }
        let request = Request { connection: connection.id, der: request, issued: None };
        self.peer_certificates.insert(connection.sidecar.clone(), request);
        let mut actions = Vec::new();
        self.issue_peer_certificate(&connection.sidecar, now, &mut actions);
        actions
    }

    /// Issues the certificates that are due: first ones of sidecars whose
    /// pod was compiled since they asked, renewals in the last third of the
    /// lifetime, and new ones for a pod whose node id changed.
    pub fn renew_peer_certificates(&mut self, now: SystemTime) -> Vec<Action> {
        let mut actions = Vec::new();
        let asking: Vec<NamespacedName> = self.peer_certificates.keys().cloned().collect();
        for key in asking {
            self.issue_peer_certificate(&key, now, &mut actions);
        }
        actions
    }

    /// A certificate for `key` if one is due, only for the node id compiled
    /// for its pod.
    fn issue_peer_certificate(&mut self, key: &NamespacedName, now: SystemTime, actions: &mut Vec<Action>) {
        let Some(ca) = self.options.peer_ca.clone() else { return };
        let Some(&connection) = self.connections.get(key) else { return };
        let Some(request) = self.peer_certificates.get(key).filter(|r| r.connection == connection) else { return };
        let Some(node_id) = self.state.sidecars.get(key).map(|s| s.node_id.clone()) else { return };
        if self.compilation.for_pod(&node_id, key).is_none() {
            return;
        }
        let due = match &request.issued {
            Some((issued_for, not_after)) => issued_for != &node_id || renewal_due(*not_after, ca.lifetime, now),
            None => true,
        };
        if !due {
            return;
        }
        match ca.issue(&request.der, &node_id, &key.namespace, now) {
            Ok(issued) => {
                let certificate = IssuedCertificate {
                    node_id,
                    chain_pem: issued.chain_pem,
                    ca_bundle_pem: ca.certificate_pem().to_owned(),
                    not_after: issued.not_after,
                };
                let message = Message::PeerCertificate(certificate);
                actions.push(Action::Push(Push { sidecar: key.clone(), connection, message }));
            }
            Err(error) => {
                // A bad request stays bad: not retried until the sidecar
                // reconnects with another.
                self.peer_certificates.remove(key);
                self.counters.peer_certificate_refusals += 1;
                let note =
                    Note::PeerCertificateRefused { sidecar: key.clone(), node: node_id, error: error.to_string() };
                actions.push(Action::Note(note));
            }
        }
    }

    /// A certificate is on its way: renewal is timed from it.
    pub(super) fn record_certificate_sent(&mut self, push: &Push, issued: &IssuedCertificate) {
        let request = self.peer_certificates.get_mut(&push.sidecar).filter(|r| r.connection == push.connection);
        if let Some(request) = request {
            request.issued = Some((issued.node_id.clone(), issued.not_after));
            self.counters.peer_certificates_issued += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::Duration;

    use super::super::Distribution;
    use super::super::test_builders::{cluster, named, pods, settle, sidecar, sidecar_as};
    use super::*;
    use crate::index::SidecarInfo;
    use crate::peer_ca::PeerCa;

    const LIFETIME: Duration = Duration::from_secs(300);

    fn at(seconds: u64) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000 + seconds)
    }

    /// A certificate request (DER PKCS#10) for a fresh key.
    fn request() -> Vec<u8> {
        let key = rcgen::KeyPair::generate().unwrap();
        rcgen::CertificateParams::new(Vec::<String>::new()).unwrap().serialize_request(&key).unwrap().der().to_vec()
    }

    /// The cluster of `sidecars` with a peer CA, and sidecar `a` connected.
    fn with_ca(sidecars: impl IntoIterator<Item = SidecarInfo>) -> (Distribution, Connection) {
        let mut machine = cluster(pods(sidecars));
        machine.set_peer_ca(Arc::new(PeerCa::generate("example.org", LIFETIME, at(0)).unwrap()));
        let (connection, actions) = machine.connect(sidecar("a"), "");
        settle(&mut machine, actions);
        (machine, connection)
    }

    fn issued_nodes(actions: Vec<Action>, machine: &mut Distribution) -> Vec<String> {
        let outcome = settle(machine, actions);
        outcome
            .sent
            .iter()
            .map(|push| match &push.message {
                Message::PeerCertificate(issued) => format!("{} {}", push.sidecar, issued.node_id),
                other => panic!("a certificate expected, sent {other:?}"),
            })
            .collect()
    }

    #[test]
    fn without_a_peer_ca_a_request_is_only_noted() {
        let mut machine = cluster(pods([sidecar("a")]));
        let (connection, _) = machine.connect(sidecar("a"), "");
        let actions = machine.request_peer_certificate(&connection, request(), at(0));
        let outcome = settle(&mut machine, actions);
        assert_eq!(outcome.notes, [Note::PeerCertificatesOff { sidecar: named("a") }]);
        assert!(outcome.sent.is_empty());
    }

    #[test]
    fn a_certificate_names_the_compiled_node_and_is_renewed_in_its_last_third() {
        let (mut machine, connection) = with_ca([sidecar_as("a", "eu-1")]);
        let actions = machine.request_peer_certificate(&connection, request(), at(0));
        assert_eq!(issued_nodes(actions, &mut machine), ["fabric/a eu-1"]);
        let actions = machine.renew_peer_certificates(at(199));
        assert!(issued_nodes(actions, &mut machine).is_empty(), "two thirds of the lifetime left");
        let actions = machine.renew_peer_certificates(at(201));
        assert_eq!(issued_nodes(actions, &mut machine), ["fabric/a eu-1"]);
        assert_eq!(machine.counters().peer_certificates_issued, 2);
        // The pod's node id changes under the stream: nothing more for the
        // node id the sidecar runs as, no longer compiled for its pod (the
        // sidecar's next stream asks for the new one).
        let actions = machine.set_objects(pods([sidecar_as("a", "eu-2")]));
        settle(&mut machine, actions);
        let actions = machine.renew_peer_certificates(at(290));
        assert!(issued_nodes(actions, &mut machine).is_empty());
    }

    #[test]
    fn a_pod_not_compiled_for_its_node_id_waits_and_a_new_stream_asks_again() {
        let (mut machine, connection) = with_ca([]);
        let actions = machine.request_peer_certificate(&connection, request(), at(0));
        assert!(issued_nodes(actions, &mut machine).is_empty(), "the pod is not known yet");
        let actions = machine.set_objects(pods([sidecar("a")]));
        settle(&mut machine, actions);
        let actions = machine.renew_peer_certificates(at(1));
        assert_eq!(issued_nodes(actions, &mut machine), ["fabric/a a"], "issued once compiled");
        // The stream ends: its request goes with it.
        let actions = machine.disconnect(&connection).unwrap();
        settle(&mut machine, actions);
        let actions = machine.renew_peer_certificates(at(250));
        assert!(issued_nodes(actions, &mut machine).is_empty());
    }

    #[test]
    fn a_bad_request_is_refused_once_and_not_retried() {
        let (mut machine, connection) = with_ca([sidecar("a")]);
        let actions = machine.request_peer_certificate(&connection, b"not a request".to_vec(), at(0));
        let outcome = settle(&mut machine, actions);
        assert!(outcome.sent.is_empty());
        assert!(
            matches!(outcome.notes.as_slice(), [Note::PeerCertificateRefused { sidecar, .. }] if *sidecar == named("a")),
            "{:?}",
            outcome.notes
        );
        let actions = machine.renew_peer_certificates(at(1));
        assert!(settle(&mut machine, actions).notes.is_empty(), "not retried");
        assert_eq!(machine.counters().peer_certificate_refusals, 1);
    }
}
