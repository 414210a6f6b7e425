//! What the state machine asks of its caller: messages for sidecars'
//! streams, a compile, keeping the registry, and notes for the log.

use std::sync::Arc;
use std::time::SystemTime;

use fabric_core::{KeyId, NodeId};

use super::inputs::CompileInputs;
use crate::index::NamespacedName;

/// One thing for the caller to do, in the order given.
#[derive(Clone, Debug)]
pub enum Action {
    /// Send a message on a sidecar's stream; once it is on the stream,
    /// report it with [`super::Distribution::record_sent`] (a message that
    /// cannot be sent, its stream being gone, is not reported and counts
    /// as never sent).
    Push(Push),
    /// Compile these inputs and hand the result to
    /// [`super::Distribution::install`].
    Compile(CompileInputs),
    /// The registered sidecars changed: keep [`super::Distribution::registered`]
    /// (local mode's registry file) so a restarted operator knows them.
    SaveRegistry,
    /// Nothing to do but worth a log line.
    Note(Note),
}

/// A message for the stream `connection` of `sidecar`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Push {
    pub sidecar: NamespacedName,
    pub connection: u64,
    pub message: Message,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Message {
    /// A complete config to apply and ACK or NACK.
    Snapshot(Snapshot),
    /// The sidecar already runs `version` (it said so in its Hello): no
    /// snapshot is coming, so it can start peering.
    Current { version: String },
    /// A peer TLS certificate for the node id compiled for its pod.
    PeerCertificate(IssuedCertificate),
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Snapshot {
    pub version: String,
    /// Unique per push; the sidecar's ACK or NACK names it.
    pub nonce: String,
    /// The config as the compiler wrote it.
    pub config_yaml: Arc<str>,
    /// For the owner of an operator-managed key: the private key its
    /// config signs with.
    pub signing_key: Option<SigningSecret>,
}

/// The private half of a signing key.
#[derive(Clone, PartialEq, Eq)]
pub struct SigningSecret {
    pub key_id: KeyId,
    pub secret: [u8; 32],
}

impl std::fmt::Debug for SigningSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SigningSecret").field("key_id", &self.key_id).finish_non_exhaustive()
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IssuedCertificate {
    /// The node id the certificate names.
    pub node_id: NodeId,
    /// The leaf (PEM).
    pub chain_pem: String,
    /// The CA certificate every sidecar trusts (PEM).
    pub ca_bundle_pem: String,
    pub not_after: SystemTime,
}

/// Why something did not happen, or happened otherwise than asked.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Note {
    /// In a cluster the pod is authoritative: the Hello's node id was
    /// replaced by the pod's.
    PodNodeIdWins { sidecar: NamespacedName, hello: NodeId, pod: NodeId },
    /// A config is compiled for `node`, but not for this sidecar's pod (a
    /// pod unknown to the index, or refused by the identity rules): it gets
    /// nothing, and nobody else's signing key.
    NotTheCompiledPod { sidecar: NamespacedName, node: NodeId },
    /// The config names a signing key whose private half is not here yet
    /// (the key store is read after the status): pushed once it is, never
    /// a config the sidecar would have to refuse.
    SigningKeyNotYetAvailable { sidecar: NamespacedName, key_id: KeyId },
    /// The sidecar asked for a peer certificate, but no peer CA is set.
    PeerCertificatesOff { sidecar: NamespacedName },
    /// The sidecar's certificate request was refused (it does not parse,
    /// or the node id cannot be a certificate's name); not retried until
    /// the sidecar reconnects with another.
    PeerCertificateRefused { sidecar: NamespacedName, node: NodeId, error: String },
    /// A compile of inputs `inputs` finished after one of newer inputs
    /// (`installed`) was put in force; it was dropped.
    OlderCompilationDropped { inputs: u64, installed: u64 },
}
