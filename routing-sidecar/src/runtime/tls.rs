//! Mutual TLS between sidecars. Each node presents a certificate naming its
//! node id (a DNS name, and with operator-issued certificates also a
//! SPIFFE-style URI) signed by the fabric CA, and checks its peer's: a
//! dialed peer's certificate must name the neighbor dialed, and an accepted
//! peer's must name the node id its hello claims ([`PeerIdentity`]), so a
//! session's identity is authenticated before its hello is believed.
//!
//! The certificate comes from mounted PEM files ([`PeerTls::from_files`],
//! fixed for the life of the process) or from the operator
//! ([`PeerTls::from_operator`]): the sidecar makes its key pair at start and
//! sends a certificate signing request in its hello; the operator answers
//! with a short-lived certificate and renews it before it expires.
//! [`PeerTls::install`] swaps the certificate for new handshakes; sessions
//! already up keep going.

use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName};
use rustls::server::WebPkiClientVerifier;
use rustls::{ClientConfig, RootCertStore, ServerConfig};
use serde::Serialize;
use tokio::net::TcpStream;
use tokio_rustls::{TlsAcceptor, TlsConnector};

use fabric_core::ids::NodeId;

/// Paths of the PEM files.
#[derive(Clone, Debug)]
pub struct TlsFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
    pub ca: PathBuf,
}

/// Where a node's peer certificate comes from.
#[derive(Clone, Debug)]
pub enum PeerTlsSource {
    /// Plain TCP.
    Off,
    /// Mounted PEM files.
    Files(TlsFiles),
    /// Issued by the operator (`--peer-tls-from-operator`).
    Operator,
}

/// Both ends of mutual TLS for one certificate.
struct Endpoints {
    acceptor: TlsAcceptor,
    connector: TlsConnector,
    status: CertificateStatus,
}

/// The certificate in use, for `GET /peers` and the logs.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct CertificateStatus {
    /// `files` or `operator`.
    pub source: &'static str,
    /// First 16 hex digits of the SHA-256 of the certificate.
    pub fingerprint: String,
    /// How many certificates were installed since start.
    pub installed_total: u64,
}

/// The key pair of operator-issued certificates and the request for them.
struct OperatorKey {
    key: PrivatePkcs8KeyDer<'static>,
    csr: Vec<u8>,
    /// Where the key and the last certificate are kept, so a sidecar that
    /// restarts while the operator is away can still peer.
    state: Option<PathBuf>,
}

/// Files of an operator-issued certificate in the state directory.
const KEY_FILE: &str = "peer-tls-key.pem";
const CHAIN_FILE: &str = "peer-tls-chain.pem";
const CA_FILE: &str = "peer-tls-ca.pem";

impl std::fmt::Debug for PeerTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PeerTls").field("certificate", &self.status()).finish_non_exhaustive()
    }
}

/// A node's peer TLS: the certificate in use (none yet when the operator
/// has not issued one) and, for operator-issued ones, the key pair.
pub struct PeerTls {
    current: RwLock<Option<Arc<Endpoints>>>,
    operator_key: Option<OperatorKey>,
}

/// Why a TLS connection could not be made.
#[derive(Debug, thiserror::Error)]
pub enum TlsFailure {
    #[error("no peer certificate yet (the operator has not issued one)")]
    NoCertificate,
    #[error("TLS handshake: {0}")]
    Handshake(std::io::Error),
    #[error("the peer presented no certificate")]
    NoPeerCertificate,
}

/// Why a peer certificate could not be loaded, made or installed.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("{}: {source}", path.display())]
    ReadPem {
        path: PathBuf,
        #[source]
        source: rustls::pki_types::pem::Error,
    },
    #[error("{}: no certificate in the file", path.display())]
    NoCertificateInFile { path: PathBuf },
    /// `what` names the PEM text: `certificate chain` or `CA bundle`.
    #[error("{what}: {source}")]
    ParsePem {
        what: &'static str,
        #[source]
        source: rustls::pki_types::pem::Error,
    },
    #[error("{what}: no certificate")]
    NoCertificateInPem { what: &'static str },
    /// The certificate files load but do not make a TLS configuration.
    #[error("{}: {source}", cert.display())]
    FilesConfig {
        cert: PathBuf,
        #[source]
        source: TlsConfigError,
    },
    #[error(transparent)]
    Config(#[from] TlsConfigError),
    #[error("{}: {source}", path.display())]
    KeptKey {
        path: PathBuf,
        #[source]
        source: rcgen::Error,
    },
    #[error("peer key: {0}")]
    GenerateKey(#[source] rcgen::Error),
    #[error(transparent)]
    KeepKey(#[from] fabric_io::files::WriteError),
    #[error("certificate request: {0}")]
    CertificateRequest(#[source] rcgen::Error),
    #[error("this node's certificate comes from files")]
    NotOperatorIssued,
}

/// For shells that still report errors as text: `?` keeps working.
impl From<TlsError> for String {
    fn from(error: TlsError) -> String {
        error.to_string()
    }
}

/// Why a certificate, its key and CAs do not make a rustls configuration.
#[derive(Debug, thiserror::Error)]
pub enum TlsConfigError {
    #[error("CA: {0}")]
    Ca(#[source] rustls::Error),
    #[error("client verifier: {0}")]
    ClientVerifier(#[source] rustls::server::VerifierBuilderError),
    #[error("protocol versions: {0}")]
    ProtocolVersions(#[source] rustls::Error),
    #[error("certificate: {0}")]
    Certificate(#[source] rustls::Error),
}

fn read_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let read_pem = |source| TlsError::ReadPem { path: path.to_path_buf(), source };
    let certs: Vec<_> =
        CertificateDer::pem_file_iter(path).map_err(read_pem)?.collect::<Result<_, _>>().map_err(read_pem)?;
    if certs.is_empty() {
        return Err(TlsError::NoCertificateInFile { path: path.to_path_buf() });
    }
    Ok(certs)
}

fn pem_certs(what: &'static str, pem: &str) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let certs: Vec<_> = CertificateDer::pem_slice_iter(pem.as_bytes())
        .collect::<Result<_, _>>()
        .map_err(|source| TlsError::ParsePem { what, source })?;
    if certs.is_empty() {
        return Err(TlsError::NoCertificateInPem { what });
    }
    Ok(certs)
}

fn fingerprint(cert: &CertificateDer<'_>) -> String {
    use sha2::{Digest, Sha256};
    Sha256::digest(cert.as_ref()).iter().take(8).map(|b| format!("{b:02x}")).collect()
}

fn endpoints(
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
    cas: Vec<CertificateDer<'static>>,
    status: CertificateStatus,
) -> Result<Endpoints, TlsConfigError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = RootCertStore::empty();
    for ca in cas {
        roots.add(ca).map_err(TlsConfigError::Ca)?;
    }
    let roots = Arc::new(roots);
    let verifier = WebPkiClientVerifier::builder_with_provider(roots.clone(), provider.clone())
        .build()
        .map_err(TlsConfigError::ClientVerifier)?;
    let server = ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(TlsConfigError::ProtocolVersions)?
        .with_client_cert_verifier(verifier)
        .with_single_cert(chain.clone(), key.clone_key())
        .map_err(TlsConfigError::Certificate)?;
    let client = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(TlsConfigError::ProtocolVersions)?
        .with_root_certificates(roots)
        .with_client_auth_cert(chain, key)
        .map_err(TlsConfigError::Certificate)?;
    Ok(Endpoints {
        acceptor: TlsAcceptor::from(Arc::new(server)),
        connector: TlsConnector::from(Arc::new(client)),
        status,
    })
}

impl PeerTls {
    /// `None` for [`PeerTlsSource::Off`].
    pub fn new(source: &PeerTlsSource) -> Result<Option<Arc<Self>>, TlsError> {
        match source {
            PeerTlsSource::Off => Ok(None),
            PeerTlsSource::Files(files) => Self::from_files(files).map(|tls| Some(Arc::new(tls))),
            PeerTlsSource::Operator => Self::from_operator(None).map(|tls| Some(Arc::new(tls))),
        }
    }

    pub fn from_files(files: &TlsFiles) -> Result<Self, TlsError> {
        let chain = read_certs(&files.cert)?;
        let key = PrivateKeyDer::from_pem_file(&files.key)
            .map_err(|source| TlsError::ReadPem { path: files.key.clone(), source })?;
        let cas = read_certs(&files.ca)?;
        let status = CertificateStatus { source: "files", fingerprint: fingerprint(&chain[0]), installed_total: 1 };
        let endpoints = endpoints(chain, key, cas, status)
            .map_err(|source| TlsError::FilesConfig { cert: files.cert.clone(), source })?;
        Ok(Self { current: RwLock::new(Some(Arc::new(endpoints))), operator_key: None })
    }

    /// A key pair (ECDSA P-256) whose certificate the operator issues:
    /// the one kept in `state` (a state directory) with its last
    /// certificate, in use at once, else a new one, kept there.
    pub fn from_operator(state: Option<&Path>) -> Result<Self, TlsError> {
        let kept = state.and_then(|dir| std::fs::read_to_string(dir.join(KEY_FILE)).ok());
        let key = match kept.as_deref().map(rcgen::KeyPair::from_pem) {
            Some(Ok(key)) => key,
            Some(Err(source)) => {
                return Err(TlsError::KeptKey { path: state.unwrap_or(Path::new(".")).join(KEY_FILE), source });
            }
            None => {
                let key = rcgen::KeyPair::generate().map_err(TlsError::GenerateKey)?;
                if let Some(dir) = state {
                    fabric_io::files::write_private(&dir.join(KEY_FILE), key.serialize_pem().as_bytes())?;
                }
                key
            }
        };
        // The operator decides every name; the request only proves the key.
        let csr = rcgen::CertificateParams::default().serialize_request(&key).map_err(TlsError::CertificateRequest)?;
        let operator_key = OperatorKey {
            key: PrivatePkcs8KeyDer::from(key.serialize_der()),
            csr: csr.der().to_vec(),
            state: state.map(Path::to_path_buf),
        };
        let tls = Self { current: RwLock::new(None), operator_key: Some(operator_key) };
        if let Some(dir) = state
            && let (Ok(chain), Ok(ca)) =
                (std::fs::read_to_string(dir.join(CHAIN_FILE)), std::fs::read_to_string(dir.join(CA_FILE)))
        {
            // An expired one fails at the handshake and the operator's next
            // one replaces it.
            match tls.install(&chain, &ca) {
                Ok(status) => tracing::info!(fingerprint = %status.fingerprint, "kept peer certificate in use"),
                Err(error) => tracing::warn!(%error, "kept peer certificate refused; waiting for the operator's"),
            }
        }
        Ok(tls)
    }

    /// The certificate signing request to send to the operator (DER), for
    /// operator-issued certificates.
    pub fn certificate_request(&self) -> Option<&[u8]> {
        self.operator_key.as_ref().map(|key| key.csr.as_slice())
    }

    /// Installs an operator-issued certificate chain (PEM, leaf first) for
    /// this node's key and the CAs to trust (PEM); new handshakes use it.
    pub fn install(&self, chain_pem: &str, ca_bundle_pem: &str) -> Result<CertificateStatus, TlsError> {
        let key = self.operator_key.as_ref().ok_or(TlsError::NotOperatorIssued)?;
        let chain = pem_certs("certificate chain", chain_pem)?;
        let cas = pem_certs("CA bundle", ca_bundle_pem)?;
        let installed_total = self.status().map_or(0, |s| s.installed_total) + 1;
        let status = CertificateStatus { source: "operator", fingerprint: fingerprint(&chain[0]), installed_total };
        let endpoints = endpoints(chain, PrivateKeyDer::Pkcs8(key.key.clone_key()), cas, status.clone())?;
        *self.current.write().unwrap_or_else(|poisoned| poisoned.into_inner()) = Some(Arc::new(endpoints));
        if let Some(dir) = &key.state {
            for (file, pem) in [(CHAIN_FILE, chain_pem), (CA_FILE, ca_bundle_pem)] {
                if let Err(error) = std::fs::write(dir.join(file), pem) {
                    tracing::warn!(%error, file, "could not keep the peer certificate in the state dir");
                }
            }
        }
        Ok(status)
    }

    fn endpoints(&self) -> Option<Arc<Endpoints>> {
        self.current.read().unwrap_or_else(|poisoned| poisoned.into_inner()).clone()
    }

    /// Whether a certificate is in use.
    pub fn is_ready(&self) -> bool {
        self.endpoints().is_some()
    }

    pub fn status(&self) -> Option<CertificateStatus> {
        self.endpoints().map(|endpoints| endpoints.status.clone())
    }

    /// Accepts a connection; the identity of its certificate is checked
    /// against the hello (the chain was checked by the handshake).
    pub async fn accept(&self, stream: TcpStream) -> Result<(super::transport::BoxedStream, PeerIdentity), TlsFailure> {
        let endpoints = self.endpoints().ok_or(TlsFailure::NoCertificate)?;
        let stream = endpoints.acceptor.accept(stream).await.map_err(TlsFailure::Handshake)?;
        let leaf = stream.get_ref().1.peer_certificates().and_then(|chain| chain.first()).cloned();
        let leaf = leaf.ok_or(TlsFailure::NoPeerCertificate)?;
        Ok((Box::new(stream), PeerIdentity(leaf.into_owned())))
    }

    /// Dials `peer`, whose certificate must name it.
    pub async fn connect(&self, peer: &NodeId, stream: TcpStream) -> Result<super::transport::BoxedStream, TlsFailure> {
        let endpoints = self.endpoints().ok_or(TlsFailure::NoCertificate)?;
        let name = ServerName::try_from(peer.to_string()).map_err(|e| {
            TlsFailure::Handshake(std::io::Error::new(std::io::ErrorKind::InvalidInput, format!("{peer}: {e}")))
        })?;
        Ok(Box::new(endpoints.connector.connect(name, stream).await.map_err(TlsFailure::Handshake)?))
    }
}

/// The certificate an accepted peer presented.
#[derive(Clone, Debug)]
pub struct PeerIdentity(CertificateDer<'static>);

impl PeerIdentity {
    /// Whether the certificate names `node` (as a DNS name, the way a
    /// dialing peer checks it).
    pub fn names(&self, node: &NodeId) -> bool {
        let Ok(name) = ServerName::try_from(node.as_str()) else { return false };
        webpki::EndEntityCert::try_from(&self.0).is_ok_and(|cert| cert.verify_is_valid_for_subject_name(&name).is_ok())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn certificate_for(names: &[&str]) -> CertificateDer<'static> {
        let key = rcgen::KeyPair::generate().unwrap();
        let params = rcgen::CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>()).unwrap();
        params.self_signed(&key).unwrap().der().clone()
    }

    #[test]
    fn a_certificate_names_only_its_node_ids() {
        let identity = PeerIdentity(certificate_for(&["eu-1"]));
        assert!(identity.names(&NodeId::from("eu-1")));
        assert!(!identity.names(&NodeId::from("eu-2")));
        assert!(!identity.names(&NodeId::from("not a dns name")));
    }

    #[test]
    fn an_operator_node_has_a_request_and_no_certificate_until_one_is_installed() {
        let tls = PeerTls::from_operator(None).unwrap();
        assert!(!tls.is_ready());
        assert!(!tls.certificate_request().unwrap().is_empty());
        let error = tls.install("not pem", "not pem").unwrap_err().to_string();
        assert!(error.starts_with("certificate chain"), "{error}");
        assert!(!tls.is_ready(), "a refused install leaves nothing in use");
    }
}
