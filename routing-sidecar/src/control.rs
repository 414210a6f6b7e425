//! The control client: dials the operator, says Hello, applies every pushed
//! snapshot through [`NodeHandle::apply_config`] and answers ACK or NACK
//! (xDS semantics). A refused snapshot leaves the config in force untouched
//! (the node keeps its last good config); the NACK carries the field and the
//! reason. On any stream error it reconnects with backoff and reports the
//! version it runs, so the operator can resume without a redundant push.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use tokio::sync::mpsc;
use tonic::codegen::tokio_stream::wrappers::ReceiverStream;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint};

use crate::runtime::NodeHandle;
use fabric_control::{self as proto, Ack, ConfigSnapshot, Hello, Nack, SidecarMessage, operator_message};
use fabric_core::config::{ConfigError, LocalRoute, SidecarConfig};
use fabric_core::ids::{KeyId, NodeId};
use fabric_core::security::SigningIdentity;
use fabric_core::session::Backoff;

/// Where the operator is and what the sidecar tells it.
#[derive(Clone, Debug)]
pub struct ControlOptions {
    /// `http://host:port` (plaintext, local use) or `https://host:port`.
    pub operator_url: String,
    /// Bearer token, re-read at every connection (projected tokens rotate).
    pub token_file: Option<PathBuf>,
    /// PEM CA that signed the operator's serving certificate (for https).
    pub ca_file: Option<PathBuf>,
    pub namespace: String,
    /// The pod running this sidecar (cluster mode; empty locally).
    pub pod_name: String,
    pub labels: BTreeMap<String, String>,
    /// `host:port` other sidecars dial; an unspecified host is filled in by
    /// the operator with the address the stream comes from.
    pub peer_address: String,
    /// The sidecar's own local routes: the operator does not know which
    /// destinations a sidecar serves, so a snapshot without `originate`
    /// gets these.
    pub local_originate: Vec<LocalRoute>,
    pub backoff_initial: Duration,
    pub backoff_max: Duration,
    /// Opened once the first snapshot was answered (ACK or NACK): from then
    /// on the node peers with the config the operator sees it run. With
    /// operator-issued peer TLS, also not before the first certificate.
    pub peering: Option<crate::runtime::PeeringGate>,
    /// Peer TLS whose certificate the operator issues
    /// (`--peer-tls-from-operator`).
    pub peer_tls: Option<std::sync::Arc<crate::runtime::tls::PeerTls>>,
}

impl ControlOptions {
    pub fn new(operator_url: impl Into<String>, peer_address: impl Into<String>) -> Self {
        Self {
            operator_url: operator_url.into(),
            token_file: None,
            ca_file: None,
            namespace: "default".into(),
            pod_name: String::new(),
            labels: BTreeMap::new(),
            peer_address: peer_address.into(),
            local_originate: Vec::new(),
            backoff_initial: Duration::from_millis(250),
            backoff_max: Duration::from_secs(5),
            peering: None,
            peer_tls: None,
        }
    }

    /// Opens peering once the operator's config is in force (`why`) and,
    /// with operator-issued peer TLS, a certificate is installed.
    fn open_peering(&self, why: &str) {
        let Some(gate) = &self.peering else { return };
        if self.peer_tls.as_ref().is_none_or(|tls| tls.is_ready()) {
            gate.open(why);
        }
    }
}

/// Runs until the node stops: connect, stream, reconnect with backoff.
pub async fn run(handle: NodeHandle, node_id: NodeId, options: ControlOptions) {
    let mut backoff = Backoff::new(options.backoff_initial, options.backoff_max, &node_id, &NodeId::from("operator"));
    loop {
        match session(&handle, &node_id, &options, &mut backoff).await {
            Ok(()) => tracing::warn!(operator = %options.operator_url, "operator closed the config stream"),
            Err(Stop::NodeGone) => return,
            Err(Stop::Failed(error)) => {
                tracing::warn!(operator = %options.operator_url, error = %error, "operator connection failed")
            }
        }
        tokio::time::sleep(backoff.next_delay()).await;
    }
}

enum Stop {
    NodeGone,
    Failed(String),
}

impl From<crate::runtime::handle::NodeGone> for Stop {
    fn from(_: crate::runtime::handle::NodeGone) -> Self {
        Stop::NodeGone
    }
}

/// Why the operator could not be reached.
#[derive(Debug, thiserror::Error)]
enum ControlError {
    #[error("bad operator URL {url}: {source}")]
    OperatorUrl {
        url: String,
        #[source]
        source: tonic::transport::Error,
    },
    #[error("{}: {source}", path.display())]
    ReadFile {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("an https operator URL needs --operator-ca")]
    NoOperatorCa,
    #[error("TLS: {0}")]
    Tls(#[source] tonic::transport::Error),
    #[error("connect {url}: {source}")]
    Connect {
        url: String,
        #[source]
        source: tonic::transport::Error,
    },
}

async fn connect(options: &ControlOptions) -> Result<Channel, ControlError> {
    let url = &options.operator_url;
    let mut endpoint = Endpoint::from_shared(url.clone())
        .map_err(|source| ControlError::OperatorUrl { url: url.clone(), source })?
        .connect_timeout(Duration::from_secs(5))
        .http2_keep_alive_interval(Duration::from_secs(10))
        .keep_alive_timeout(Duration::from_secs(5));
    if options.operator_url.starts_with("https://") {
        let mut tls = ClientTlsConfig::new();
        match &options.ca_file {
            Some(path) => {
                let pem =
                    std::fs::read(path).map_err(|source| ControlError::ReadFile { path: path.clone(), source })?;
                tls = tls.ca_certificate(Certificate::from_pem(pem));
            }
            None => return Err(ControlError::NoOperatorCa),
        }
        endpoint = endpoint.tls_config(tls).map_err(ControlError::Tls)?;
    }
    endpoint.connect().await.map_err(|source| ControlError::Connect { url: url.clone(), source })
}

fn token(options: &ControlOptions) -> Result<Option<String>, ControlError> {
    let Some(path) = &options.token_file else { return Ok(None) };
    let text = std::fs::read_to_string(path).map_err(|source| ControlError::ReadFile { path: path.clone(), source })?;
    Ok(Some(text.trim().to_string()))
}

/// One stream: Hello, then snapshots until it ends.
async fn session(
    handle: &NodeHandle,
    node_id: &NodeId,
    options: &ControlOptions,
    backoff: &mut Backoff,
) -> Result<(), Stop> {
    let channel = connect(options).await.map_err(|e| Stop::Failed(e.to_string()))?;
    let applied = handle.config().await?.version.unwrap_or_default();
    let (outbound, queue) = mpsc::channel(16);
    let hello = Hello {
        node_id: node_id.to_string(),
        namespace: options.namespace.clone(),
        labels: options.labels.clone(),
        peer_address: options.peer_address.clone(),
        applied_version: applied.clone(),
        pod_name: options.pod_name.clone(),
        peer_certificate_request: options
            .peer_tls
            .as_ref()
            .and_then(|tls| tls.certificate_request())
            .map(<[u8]>::to_vec)
            .unwrap_or_default(),
    };
    outbound.send(SidecarMessage::hello(hello)).await.map_err(|_| Stop::Failed("stream closed".into()))?;
    let mut request = tonic::Request::new(ReceiverStream::new(queue));
    if let Some(token) = token(options).map_err(|e| Stop::Failed(e.to_string()))? {
        let value =
            format!("Bearer {token}").parse().map_err(|_| Stop::Failed("token is not a valid header".into()))?;
        request.metadata_mut().insert("authorization", value);
    }
    let mut inbound = proto::open_stream(channel, request)
        .await
        .map_err(|status| Stop::Failed(format!("{}: {}", status.code(), status.message())))?
        .into_inner();
    tracing::info!(operator = %options.operator_url, applied_version = %applied, "connected to the operator");
    backoff.reset();
    // Whether the operator's config is in force on this stream.
    let mut configured = false;
    loop {
        let message = match inbound.message().await {
            Ok(Some(message)) => message,
            Ok(None) => return Ok(()),
            Err(status) => return Err(Stop::Failed(format!("{}: {}", status.code(), status.message()))),
        };
        let snapshot = match message.kind {
            Some(operator_message::Kind::Snapshot(snapshot)) => snapshot,
            Some(operator_message::Kind::Current(current)) => {
                tracing::info!(version = %current.version, "the config in force is current");
                configured = true;
                options.open_peering("the config in force is the operator's current one");
                continue;
            }
            Some(operator_message::Kind::PeerCertificate(certificate)) => {
                install_certificate(options, &certificate);
                if configured {
                    options.open_peering("the operator's config and peer certificate are in force");
                }
                continue;
            }
            None => continue,
        };
        let reply = answer(handle, options, snapshot).await?;
        configured = true;
        options.open_peering("the operator's config is in force");
        outbound.send(reply).await.map_err(|_| Stop::Failed("stream closed".into()))?;
    }
}

/// Installs an operator-issued peer certificate; a bad one is logged and
/// the one in use (if any) stays.
fn install_certificate(options: &ControlOptions, certificate: &proto::PeerCertificate) {
    let Some(tls) = &options.peer_tls else {
        tracing::warn!("the operator sent a peer certificate, but this sidecar has no --peer-tls-from-operator");
        return;
    };
    match tls.install(&certificate.chain_pem, &certificate.ca_bundle_pem) {
        Ok(status) => tracing::info!(
            fingerprint = %status.fingerprint, not_after_unix_ms = certificate.not_after_unix_ms,
            installed_total = status.installed_total, "peer certificate installed"
        ),
        Err(error) => tracing::error!(%error, "peer certificate refused; the one in use stays"),
    }
}

/// Applies one snapshot; the ACK or NACK to send back.
async fn answer(
    handle: &NodeHandle,
    options: &ControlOptions,
    snapshot: ConfigSnapshot,
) -> Result<SidecarMessage, Stop> {
    let result = match parse(&snapshot, options).and_then(|config| Ok((config, signing_key(&snapshot)?))) {
        Ok((config, signer)) => handle.apply_config_with_signer(config, signer, "operator").await?,
        Err(error) => Err(error),
    };
    Ok(match result {
        Ok(()) => {
            tracing::info!(version = %snapshot.version, "operator config applied");
            SidecarMessage::ack(Ack { version: snapshot.version, nonce: snapshot.nonce })
        }
        Err(error) => {
            let applied = handle.config().await?.version.unwrap_or_default();
            tracing::error!(
                version = %snapshot.version, field = %error.field, reason = %error.reason, applied_version = %applied,
                "operator config refused; the previous one stays in force"
            );
            SidecarMessage::nack(Nack {
                version: snapshot.version,
                nonce: snapshot.nonce,
                error_field: error.field,
                error_message: error.reason,
                applied_version: applied,
            })
        }
    })
}

/// The snapshot as the config to apply: parsed and validated, with the
/// sidecar's own local routes when the operator sent none, and the
/// snapshot's version.
pub fn parse(snapshot: &ConfigSnapshot, options: &ControlOptions) -> Result<SidecarConfig, ConfigError> {
    let mut config = SidecarConfig::from_yaml(&snapshot.config_yaml)?;
    if config.originate.is_empty() {
        config.originate = options.local_originate.clone();
    }
    config.version = Some(snapshot.version.clone());
    config.validate()?;
    Ok(config)
}

/// The signing key a snapshot carries (key rotation), checked for shape; the
/// node checks it against `security.signingKeyId` and the trusted keys.
pub fn signing_key(snapshot: &ConfigSnapshot) -> Result<Option<SigningIdentity>, ConfigError> {
    let Some(key) = &snapshot.signing_key else { return Ok(None) };
    if key.key_id.is_empty() {
        return Err(ConfigError::new("signingKey.keyId", "empty"));
    }
    let secret: [u8; 32] = key.private_key.as_slice().try_into().map_err(|_| {
        ConfigError::new("signingKey.privateKey", format!("{} bytes, an ed25519 key has 32", key.private_key.len()))
    })?;
    Ok(Some(SigningIdentity::from_secret_bytes(KeyId::from(key.key_id.as_str()), &secret)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_snapshot_keeps_the_local_routes_and_takes_its_version() {
        let mut local = SidecarConfig::from_yaml("nodeId: a\noriginate: [{destination: svc-a}]\n").unwrap();
        let mut options = ControlOptions::new("http://127.0.0.1:1", "127.0.0.1:2");
        options.local_originate = std::mem::take(&mut local.originate);
        let snapshot = ConfigSnapshot {
            version: "v1".into(),
            nonce: "n1".into(),
            config_yaml: "nodeId: a\nversion: v1\nneighbors: [{id: b, address: '127.0.0.1:9'}]\n".into(),
            signing_key: None,
        };
        let config = parse(&snapshot, &options).unwrap();
        assert_eq!(config.originate.len(), 1);
        assert_eq!(config.version.as_deref(), Some("v1"));
        assert_eq!(config.neighbors.len(), 1);
    }

    #[test]
    fn an_unparsable_snapshot_names_the_place() {
        let options = ControlOptions::new("http://127.0.0.1:1", "127.0.0.1:2");
        let snapshot = ConfigSnapshot {
            version: "v".into(),
            nonce: "n".into(),
            config_yaml: "nodeId: a\nbogus: 1\n".into(),
            signing_key: None,
        };
        let error = parse(&snapshot, &options).unwrap_err();
        assert!(error.field.starts_with("line "), "{error:?}");
    }

    #[test]
    fn a_signing_key_is_taken_only_when_well_formed() {
        let mut snapshot =
            ConfigSnapshot { version: "v".into(), nonce: "n".into(), config_yaml: String::new(), signing_key: None };
        assert!(signing_key(&snapshot).unwrap().is_none(), "absent: keep the signer");
        snapshot.signing_key = Some(proto::SigningKey { key_id: "k2".into(), private_key: vec![1; 31] });
        assert_eq!(signing_key(&snapshot).unwrap_err().field, "signingKey.privateKey");
        snapshot.signing_key = Some(proto::SigningKey { key_id: String::new(), private_key: vec![1; 32] });
        assert_eq!(signing_key(&snapshot).unwrap_err().field, "signingKey.keyId");
        snapshot.signing_key = Some(proto::SigningKey { key_id: "k2".into(), private_key: vec![1; 32] });
        let identity = signing_key(&snapshot).unwrap().unwrap();
        assert_eq!((identity.key_id().as_str(), identity.secret_bytes()), ("k2", [1; 32]));
    }
}
