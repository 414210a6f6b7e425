//! The open streams: the sending half of each sidecar's current stream,
//! and the core's messages as the proto messages that go down it.

use std::collections::BTreeMap;

use fabric_control::{ConfigSnapshot, OperatorMessage, PeerCertificate, SigningKey};
use fabric_operator_core::distribution::{Connection, IssuedCertificate, Message, Push, Snapshot};
use fabric_operator_core::index::NamespacedName;
use tokio::sync::mpsc;

/// What goes down one sidecar's stream.
pub type Outbound = mpsc::UnboundedSender<Result<OperatorMessage, tonic::Status>>;
pub type OutboundReceiver = mpsc::UnboundedReceiver<Result<OperatorMessage, tonic::Status>>;

/// The current stream of each connected sidecar, with its connection id.
#[derive(Default)]
pub(super) struct Streams {
    open: BTreeMap<NamespacedName, (u64, Outbound)>,
}

impl Streams {
    /// The channel of a new stream; a previous stream of the same sidecar
    /// is replaced, and so ends.
    pub(super) fn open(&mut self, connection: &Connection) -> OutboundReceiver {
        let (sender, receiver) = mpsc::unbounded_channel();
        self.open.insert(connection.sidecar.clone(), (connection.id, sender));
        receiver
    }

    pub(super) fn close(&mut self, sidecar: &NamespacedName) {
        self.open.remove(sidecar);
    }

    /// Puts `push` on its stream; false when that stream is gone (its
    /// receiver dropped, or replaced by a newer one).
    pub(super) fn send(&self, push: &Push) -> bool {
        let Some((id, sender)) = self.open.get(&push.sidecar) else { return false };
        *id == push.connection && sender.send(Ok(to_proto(&push.message))).is_ok()
    }
}

fn to_proto(message: &Message) -> OperatorMessage {
    match message {
        Message::Snapshot(snapshot) => OperatorMessage::snapshot(snapshot_to_proto(snapshot)),
        Message::Current { version } => OperatorMessage::current(version),
        Message::PeerCertificate(issued) => OperatorMessage::peer_certificate(PeerCertificate {
            chain_pem: issued.chain_pem.clone(),
            ca_bundle_pem: issued.ca_bundle_pem.clone(),
            not_after_unix_ms: not_after_unix_ms(issued),
        }),
    }
}

fn snapshot_to_proto(snapshot: &Snapshot) -> ConfigSnapshot {
    ConfigSnapshot {
        version: snapshot.version.clone(),
        nonce: snapshot.nonce.clone(),
        config_yaml: snapshot.config_yaml.to_string(),
        signing_key: snapshot
            .signing_key
            .as_ref()
            .map(|key| SigningKey { key_id: key.key_id.to_string(), private_key: key.secret.to_vec() }),
    }
}

/// The certificate's expiry as the proto carries it (0 before 1970).
pub(super) fn not_after_unix_ms(issued: &IssuedCertificate) -> i64 {
    issued
        .not_after
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::{Duration, SystemTime};

    use fabric_control::operator_message::Kind;
    use fabric_core::{KeyId, NodeId};
    use fabric_operator_core::distribution::SigningSecret;

    use super::*;

    #[test]
    fn a_message_becomes_its_proto_message() {
        let snapshot = Snapshot {
            version: "v1".into(),
            nonce: "run-1".into(),
            config_yaml: Arc::from("{}"),
            signing_key: Some(SigningSecret { key_id: KeyId::from("k1"), secret: [7; 32] }),
        };
        let Some(Kind::Snapshot(proto)) = to_proto(&Message::Snapshot(snapshot)).kind else { panic!("a snapshot") };
        assert_eq!((proto.version.as_str(), proto.nonce.as_str(), proto.config_yaml.as_str()), ("v1", "run-1", "{}"));
        assert_eq!(proto.signing_key, Some(SigningKey { key_id: "k1".into(), private_key: vec![7; 32] }));

        let issued = IssuedCertificate {
            node_id: NodeId::from("a"),
            chain_pem: "leaf".into(),
            ca_bundle_pem: "ca".into(),
            not_after: SystemTime::UNIX_EPOCH + Duration::from_millis(1_500),
        };
        let Some(Kind::PeerCertificate(proto)) = to_proto(&Message::PeerCertificate(issued)).kind else {
            panic!("a certificate")
        };
        assert_eq!(
            proto,
            PeerCertificate { chain_pem: "leaf".into(), ca_bundle_pem: "ca".into(), not_after_unix_ms: 1_500 }
        );
    }

    #[test]
    fn a_push_goes_only_to_the_stream_of_its_connection() {
        let mut streams = Streams::default();
        let sidecar = NamespacedName::new("fabric", "a");
        let current = |connection| Push {
            sidecar: sidecar.clone(),
            connection,
            message: Message::Current { version: "v".into() },
        };
        let mut first = streams.open(&Connection { sidecar: sidecar.clone(), id: 1 });
        assert!(streams.send(&current(1)));
        assert!(first.try_recv().is_ok());
        let mut second = streams.open(&Connection { sidecar: sidecar.clone(), id: 2 });
        assert!(!streams.send(&current(1)), "replaced");
        assert!(streams.send(&current(2)));
        assert!(second.try_recv().is_ok());
        drop(second);
        assert!(!streams.send(&current(2)), "its receiver is gone");
        streams.close(&sidecar);
        assert!(!streams.send(&current(2)));
    }
}
