//! The operator's serving certificate: the files both servers (gRPC config
//! distribution and the admission webhooks) read.

use std::path::PathBuf;

/// The serving certificate and key (PEM files, e.g. a mounted
/// `kubernetes.io/tls` Secret).
#[derive(Clone, Debug)]
pub struct TlsFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
}
