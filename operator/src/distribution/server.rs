//! The gRPC side of distribution: the `ConfigDistribution` service (token
//! check, Hello, ACK/NACK into the [`Distributor`]) and the server, with TLS
//! from a PEM certificate and key, or plaintext when asked explicitly.

use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use fabric_control::{ConfigDistribution, ConfigDistributionServer, OperatorStream, SidecarMessage, sidecar_message};
use tokio::net::TcpListener;
use tonic::codegen::tokio_stream::wrappers::UnboundedReceiverStream;
use tonic::transport::server::TcpIncoming;
use tonic::transport::{Identity, Server, ServerTlsConfig};
use tonic::{Request, Response, Status, Streaming};

use super::auth::{TokenVerifier, bearer};
use super::{Connection, Distributor, NackInfo, sidecar_from_hello};
use crate::tls::TlsFiles;

/// How long a new stream may take to say Hello.
const HELLO_TIMEOUT: Duration = Duration::from_secs(10);

pub struct DistributionService {
    distributor: Distributor,
    /// `None`: streams are not authenticated (explicit local opt-out).
    verifier: Option<Arc<dyn TokenVerifier>>,
    /// Cluster mode: the Hello must name the pod the token was issued to.
    require_pod_binding: bool,
}

impl DistributionService {
    pub fn new(distributor: Distributor, verifier: Option<Arc<dyn TokenVerifier>>) -> Self {
        Self { distributor, verifier, require_pod_binding: false }
    }

    /// Refuse (`PERMISSION_DENIED`) a Hello whose namespace and pod name are
    /// not those of the pod the token was issued to (see
    /// [`super::auth::Identity::check_pod`]).
    pub fn require_pod_binding(mut self) -> Self {
        self.require_pod_binding = true;
        self
    }
}

#[tonic::async_trait]
impl ConfigDistribution for DistributionService {
    async fn stream(&self, request: Request<Streaming<SidecarMessage>>) -> Result<Response<OperatorStream>, Status> {
        let mut identity = None;
        if let Some(verifier) = &self.verifier {
            let header = request.metadata().get("authorization").and_then(|v| v.to_str().ok());
            let token = bearer(header).map_err(|e| Status::unauthenticated(e.to_string()))?;
            identity = Some(verifier.verify(token).await.map_err(|e| Status::unauthenticated(e.to_string()))?);
        }
        let remote = request.remote_addr().map(|a| a.ip());
        let mut inbound = request.into_inner();
        let first = tokio::time::timeout(HELLO_TIMEOUT, inbound.message())
            .await
            .map_err(|_| Status::deadline_exceeded("no Hello"))??;
        let Some(SidecarMessage { kind: Some(sidecar_message::Kind::Hello(hello)) }) = first else {
            return Err(Status::invalid_argument("the first message must be Hello"));
        };
        let sidecar = sidecar_from_hello(&hello, remote).map_err(|e| Status::invalid_argument(e.to_string()))?;
        if self.require_pod_binding {
            let identity = identity.ok_or_else(|| Status::unauthenticated("pod binding needs a token verifier"))?;
            identity
                .check_pod(&sidecar.namespace, &sidecar.name)
                .map_err(|e| Status::permission_denied(e.to_string()))?;
        }
        tracing::info!(
            sidecar = %sidecar.key(), node = %sidecar.node_id, peer = ?sidecar.peer_address,
            applied_version = %hello.applied_version, "sidecar connected"
        );
        let (connection, outbound) = self.distributor.connect(sidecar, &hello.applied_version);
        if !hello.peer_certificate_request.is_empty() {
            let request = hello.peer_certificate_request;
            self.distributor.request_peer_certificate(&connection, request, std::time::SystemTime::now());
        }
        tokio::spawn(read_replies(self.distributor.clone(), connection, inbound));
        Ok(Response::new(Box::pin(UnboundedReceiverStream::new(outbound))))
    }
}

/// ACKs and NACKs until the stream ends, then the disconnect.
async fn read_replies(distributor: Distributor, connection: Connection, mut inbound: Streaming<SidecarMessage>) {
    loop {
        match inbound.message().await {
            Ok(Some(SidecarMessage { kind: Some(sidecar_message::Kind::Ack(ack)) })) => {
                if distributor.ack(&connection, &ack.version, &ack.nonce) {
                    tracing::info!(sidecar = %connection.sidecar, version = %ack.version, "ACK");
                }
            }
            Ok(Some(SidecarMessage { kind: Some(sidecar_message::Kind::Nack(nack)) })) => {
                let info = NackInfo {
                    version: nack.version.clone(),
                    field: nack.error_field.clone(),
                    message: nack.error_message.clone(),
                };
                if distributor.nack(&connection, info, &nack.nonce, &nack.applied_version) {
                    tracing::warn!(
                        sidecar = %connection.sidecar, version = %nack.version, field = %nack.error_field,
                        error = %nack.error_message, "NACK: the sidecar keeps its last good config"
                    );
                }
            }
            Ok(Some(_)) => tracing::warn!(sidecar = %connection.sidecar, "unexpected message ignored"),
            Ok(None) => break,
            Err(status) => {
                tracing::info!(sidecar = %connection.sidecar, error = %status.message(), "stream failed");
                break;
            }
        }
    }
    tracing::info!(sidecar = %connection.sidecar, "sidecar disconnected");
    distributor.disconnect(&connection);
}

/// Why the distribution server could not start or stopped.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("{}: {source}", path.display())]
    ReadTls {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("TLS: {0}")]
    Tls(#[source] tonic::transport::Error),
    #[error("distribution server: {0}")]
    Server(#[source] tonic::transport::Error),
}

/// Serves distribution on `listener` until `shutdown` completes. `tls`
/// `None` is plaintext (only behind `--insecure-plaintext`).
pub async fn serve(
    listener: TcpListener,
    service: DistributionService,
    tls: Option<&TlsFiles>,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), ServeError> {
    let mut builder = Server::builder()
        .http2_keepalive_interval(Some(Duration::from_secs(10)))
        .http2_keepalive_timeout(Some(Duration::from_secs(5)));
    if let Some(tls) = tls {
        let read =
            |path: &PathBuf| std::fs::read(path).map_err(|source| ServeError::ReadTls { path: path.clone(), source });
        let identity = Identity::from_pem(read(&tls.cert)?, read(&tls.key)?);
        builder = builder.tls_config(ServerTlsConfig::new().identity(identity)).map_err(ServeError::Tls)?;
    }
    builder
        .add_service(ConfigDistributionServer::new(service))
        .serve_with_incoming_shutdown(TcpIncoming::from(listener), shutdown)
        .await
        .map_err(ServeError::Server)
}
