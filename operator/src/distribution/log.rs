//! The log lines of what the core did not do, or did otherwise than asked
//! (its [`Note`]s), and of messages that reached a stream.

use fabric_operator_core::distribution::{Message, Note, Push};

use super::streams::not_after_unix_ms;

pub(super) fn note(note: &Note) {
    match note {
        Note::PodNodeIdWins { sidecar, hello, pod } => {
            tracing::warn!(%sidecar, %hello, %pod, "Hello node id differs from the pod's; the pod's is used");
        }
        Note::NotTheCompiledPod { sidecar, node } => {
            tracing::warn!(%sidecar, %node, "not the sidecar compiled for this node id; nothing pushed");
        }
        Note::SigningKeyNotYetAvailable { sidecar, key_id } => {
            tracing::warn!(%sidecar, %key_id, "signing key not available yet; push deferred");
        }
        Note::PeerCertificatesOff { sidecar } => tracing::warn!(
            %sidecar,
            "asks for a peer certificate, but peer certificates are off (--peer-ca-secret / --peer-certificates)"
        ),
        Note::PeerCertificateRefused { sidecar, node, error } => {
            tracing::warn!(%sidecar, %node, %error, "peer certificate refused");
        }
        Note::OlderCompilationDropped { inputs, installed } => {
            tracing::debug!(inputs, installed, "a newer compilation is in force; dropped");
        }
    }
}

pub(super) fn sent(push: &Push) {
    let sidecar = &push.sidecar;
    match &push.message {
        Message::Snapshot(snapshot) => {
            let (version, nonce) = (snapshot.version.as_str(), snapshot.nonce.as_str());
            tracing::info!(%sidecar, version, nonce, "config pushed");
        }
        Message::Current { .. } => {}
        Message::PeerCertificate(issued) => {
            let not_after_unix_ms = not_after_unix_ms(issued);
            tracing::info!(%sidecar, node = %issued.node_id, not_after_unix_ms, "peer certificate issued");
        }
    }
}
