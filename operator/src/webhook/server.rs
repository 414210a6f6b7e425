//! The webhook's HTTPS server: axum over connections that went through a
//! [`Handshake`] (TLS, or nothing with `--insecure-plaintext`).
//!
//! Handshakes run in their own tasks with a timeout, so a client that
//! stalls in its handshake holds up nobody else.
//!
//! **ALPN.** The API server calls admission webhooks over HTTP/1.1 only:
//! its webhook client offers exactly `http/1.1` in ALPN
//! (`k8s.io/apiserver/pkg/util/webhook/client.go`, since Kubernetes 1.16,
//! so that concurrent calls spread over several connections and webhook
//! pods). A rustls server that offers only `h2` (tonic's TLS server, used
//! for gRPC) fails that handshake with `no_application_protocol`, so the
//! gRPC server's TLS cannot serve the webhook; its TLS must offer
//! `http/1.1`.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_rustls::rustls;
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};

use crate::tls::TlsFiles;

/// A client has this long to finish its handshake.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Turns an accepted TCP connection into the stream HTTP is served on.
pub trait Handshake: Clone + Send + Sync + 'static {
    type Io: AsyncRead + AsyncWrite + Unpin + Send + 'static;

    fn handshake(&self, tcp: TcpStream) -> impl Future<Output = io::Result<Self::Io>> + Send;
}

/// No handshake: HTTP on the TCP connection (`--insecure-plaintext`, tests).
#[derive(Clone, Copy, Debug, Default)]
pub struct Plaintext;

impl Handshake for Plaintext {
    type Io = TcpStream;

    fn handshake(&self, tcp: TcpStream) -> impl Future<Output = io::Result<TcpStream>> + Send {
        std::future::ready(Ok(tcp))
    }
}

/// Why the webhook server could not start or stopped.
#[derive(Debug, thiserror::Error)]
pub enum WebhookServerError {
    /// The serving certificate or key file does not read or parse.
    #[error("{}: {source}", path.display())]
    Pem {
        path: std::path::PathBuf,
        #[source]
        source: tokio_rustls::rustls::pki_types::pem::Error,
    },
    #[error("TLS protocol versions: {0}")]
    Protocols(#[source] rustls::Error),
    /// The key does not match the certificate, or either is unusable.
    #[error("{}: {source}", path.display())]
    Certificate {
        path: std::path::PathBuf,
        #[source]
        source: rustls::Error,
    },
    #[error("webhook listener has no local address: {0}")]
    LocalAddr(#[source] io::Error),
    #[error("webhook server on {local}: {source}")]
    Server {
        local: SocketAddr,
        #[source]
        source: io::Error,
    },
}

/// Serves `app` over TLS with the operator's serving certificate.
pub async fn serve_tls(listener: TcpListener, app: Router, files: &TlsFiles) -> Result<(), WebhookServerError> {
    serve(listener, app, Tls::load(files)?).await
}

/// TLS with the serving certificate, offering `http/1.1` in ALPN (what the
/// API server's webhook client asks for).
#[derive(Clone)]
pub struct Tls(tokio_rustls::TlsAcceptor);

impl Tls {
    pub fn load(files: &TlsFiles) -> Result<Self, WebhookServerError> {
        let certs = CertificateDer::pem_file_iter(&files.cert)
            .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
            .map_err(|source| WebhookServerError::Pem { path: files.cert.clone(), source })?;
        let key = PrivateKeyDer::from_pem_file(&files.key)
            .map_err(|source| WebhookServerError::Pem { path: files.key.clone(), source })?;
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(WebhookServerError::Protocols)?
            .with_no_client_auth()
            .with_single_cert(certs, key)
            .map_err(|source| WebhookServerError::Certificate { path: files.cert.clone(), source })?;
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(Self(tokio_rustls::TlsAcceptor::from(Arc::new(config))))
    }
}

impl Handshake for Tls {
    type Io = tokio_rustls::server::TlsStream<TcpStream>;

    fn handshake(&self, tcp: TcpStream) -> impl Future<Output = io::Result<Self::Io>> + Send {
        self.0.accept(tcp)
    }
}

/// Serves `app` on `listener` after `handshake`, until the task is dropped
/// or the server fails.
pub async fn serve<H: Handshake>(listener: TcpListener, app: Router, handshake: H) -> Result<(), WebhookServerError> {
    let local = listener.local_addr().map_err(WebhookServerError::LocalAddr)?;
    let (sender, streams) = mpsc::channel(64);
    let _acceptor = AbortOnDrop(tokio::spawn(accept(listener, handshake, sender)));
    axum::serve(Handshaken { streams, local }, app).await.map_err(|source| WebhookServerError::Server { local, source })
}

struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

async fn accept<H: Handshake>(listener: TcpListener, handshake: H, sender: mpsc::Sender<(H::Io, SocketAddr)>) {
    loop {
        let (tcp, peer) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(error) => {
                // Out of file descriptors and the like: wait, do not spin.
                tracing::warn!(%error, "webhook: accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let (handshake, sender) = (handshake.clone(), sender.clone());
        tokio::spawn(async move {
            match tokio::time::timeout(HANDSHAKE_TIMEOUT, handshake.handshake(tcp)).await {
                Ok(Ok(io)) => {
                    let _ = sender.send((io, peer)).await;
                }
                Ok(Err(error)) => tracing::debug!(%peer, %error, "webhook: handshake failed"),
                Err(_) => tracing::debug!(%peer, "webhook: handshake timed out"),
            }
        });
    }
}

/// The connections that completed their handshake, as an axum listener.
struct Handshaken<Io> {
    streams: mpsc::Receiver<(Io, SocketAddr)>,
    local: SocketAddr,
}

impl<Io: AsyncRead + AsyncWrite + Unpin + Send + 'static> axum::serve::Listener for Handshaken<Io> {
    type Io = Io;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Io, SocketAddr) {
        match self.streams.recv().await {
            Some(accepted) => accepted,
            // The accept task is gone (the server is being dropped).
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> io::Result<SocketAddr> {
        Ok(self.local)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_certificate_names_its_file() {
        let dir = std::env::temp_dir().join(format!("fabric-webhook-tls-{}", std::process::id()));
        let files = TlsFiles { cert: dir.join("tls.crt"), key: dir.join("tls.key") };
        let Err(error) = Tls::load(&files) else { panic!("no certificate file, yet TLS loaded") };
        assert!(matches!(&error, WebhookServerError::Pem { path, .. } if *path == files.cert), "{error:?}");
        assert!(error.to_string().starts_with(&files.cert.display().to_string()), "{error}");
    }
}
