//! Local mode, `fabric-operator run --manifests DIR`: the same CR YAML from
//! a folder instead of the API server, followed by polling (an edit is an
//! apply), the distribution server for sidecars on this machine, and a
//! small HTTP status API (`/status`, `/sidecars`).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::routing::get;
use serde_json::json;
use sha2::{Digest, Sha256};

use crate::admin_http::{AppState, Folder, get_metrics, get_sidecars, get_status};
use crate::distribution::auth::TokenVerifier;
use crate::distribution::server::{DistributionService, ServeError, serve};
use crate::distribution::{Distributor, DistributorOptions, Options};
use crate::listener::{ListenError, bind};
use crate::rotation::{FileKeyStore, KeyStore, KeyStoreError, LocalPublisher, MemoryKeyStore, Rotator};
use crate::shutdown::shutdown_signal;
use crate::tls::TlsFiles;
use fabric_operator_core::compile::Severity;
use fabric_operator_core::manifests::{ManifestError, Manifests, load_dir};
use fabric_operator_core::peer_ca::PeerCaError;

/// Why local mode could not start or stopped.
#[derive(Debug, thiserror::Error)]
pub enum LocalError {
    /// No CA could be made (a new one, not read from the state directory).
    #[error("peer CA: {0}")]
    PeerCa(#[source] PeerCaError),
    /// The CA kept in the state directory does not load.
    #[error("{}: {source}", dir.display())]
    StoredPeerCa {
        dir: PathBuf,
        #[source]
        source: PeerCaError,
    },
    /// The state directory or a file in it cannot be made or written.
    #[error("{}: {source}", path.display())]
    StateDir {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    WriteSecret(#[from] fabric_io::files::WriteError),
    #[error(transparent)]
    KeyStore(#[from] KeyStoreError),
    #[error(transparent)]
    Manifests(#[from] ManifestError),
    #[error(transparent)]
    Listen(#[from] ListenError),
    #[error(transparent)]
    Serve(#[from] ServeError),
}

pub struct LocalOptions {
    pub manifests: PathBuf,
    /// gRPC distribution (port 0: the OS picks).
    pub listen: SocketAddr,
    /// HTTP status API.
    pub http: SocketAddr,
    /// `None`: plaintext (`--insecure-plaintext`).
    pub tls: Option<TlsFiles>,
    /// `None`: no authentication (`--allow-unauthenticated`).
    pub verifier: Option<Arc<dyn TokenVerifier>>,
    /// After start, only collect Hellos for this long before pushing (so
    /// reconnecting sidecars are all known before configs are compiled for
    /// them); zero pushes at once.
    pub resume_grace: Duration,
    pub forget_disconnected: bool,
    pub poll_interval: Duration,
    /// Where the registry of sidecars and the private keys of RouteKeys
    /// are kept across restarts.
    pub state_dir: Option<PathBuf>,
    /// How often key rotation checks its RouteKeys.
    pub rotation_tick: Duration,
    /// Who may run as which node id.
    pub identity: fabric_operator_core::compile::Settings,
    /// Issue peer TLS certificates (`--peer-certificates`); the CA is kept
    /// in `STATE_DIR/peer-ca/` (memory only without a state dir).
    pub peer_ca: Option<fabric_operator_core::peer_ca::PeerCaSettings>,
    /// Export the metrics over OTLP too (`--otlp-endpoint`).
    pub otlp_metrics: Option<crate::otlp_metrics::OtlpMetrics>,
}

/// The local CA: the one kept in `dir` (so sidecars keep trusting it across
/// operator restarts), else a new one, kept there.
fn local_peer_ca(
    dir: Option<&std::path::Path>,
    settings: &fabric_operator_core::peer_ca::PeerCaSettings,
) -> Result<fabric_operator_core::peer_ca::PeerCa, LocalError> {
    use fabric_operator_core::peer_ca::PeerCa;
    let (domain, lifetime, now) = (&settings.trust_domain, settings.lifetime, std::time::SystemTime::now());
    let Some(dir) = dir else { return PeerCa::generate(domain, lifetime, now).map_err(LocalError::PeerCa) };
    let (cert, key) = (dir.join("ca.crt"), dir.join("ca.key"));
    if let (Ok(cert_pem), Ok(key_pem)) = (std::fs::read_to_string(&cert), std::fs::read_to_string(&key)) {
        return PeerCa::from_pem(&cert_pem, &key_pem, domain, lifetime)
            .map_err(|source| LocalError::StoredPeerCa { dir: dir.to_path_buf(), source });
    }
    let ca = PeerCa::generate(domain, lifetime, now).map_err(LocalError::PeerCa)?;
    std::fs::create_dir_all(dir).map_err(|source| LocalError::StateDir { path: dir.to_path_buf(), source })?;
    fabric_io::files::write_private(&key, ca.key_pem().as_bytes())?;
    std::fs::write(&cert, ca.certificate_pem()).map_err(|source| LocalError::StateDir { path: cert, source })?;
    Ok(ca)
}

fn manifest_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            manifest_files(&path, out);
        } else if matches!(path.extension().and_then(|e| e.to_str()), Some("yaml" | "yml" | "json")) {
            out.push(path);
        }
    }
}

/// Hash of every manifest's path and content: changes exactly when an edit
/// (or an added or removed file) does.
fn fingerprint(dir: &Path) -> [u8; 32] {
    let mut files = Vec::new();
    if dir.is_file() {
        files.push(dir.to_path_buf());
    } else {
        manifest_files(dir, &mut files);
    }
    files.sort();
    let mut hash = Sha256::new();
    for file in files {
        hash.update(file.to_string_lossy().as_bytes());
        hash.update([0]);
        hash.update(std::fs::read(&file).unwrap_or_default());
        hash.update([0]);
    }
    hash.finalize().into()
}

fn render_issues(manifests: &Manifests) -> Vec<String> {
    manifests.issues.iter().map(ToString::to_string).collect()
}

/// Loads the folder if it changed. An edit that leaves the folder with
/// errors (bad YAML, schema mismatch, duplicates) is not applied: the last
/// good objects stay, like `kubectl apply` refusing the file. The first load
/// is applied for its valid documents.
fn reload(dir: &Path, distributor: &Distributor, folder: &Mutex<Folder>) -> Result<(), ManifestError> {
    let print = fingerprint(dir);
    let first = {
        let folder = folder.lock().unwrap_or_else(|p| p.into_inner());
        if folder.fingerprint == Some(print) {
            return Ok(());
        }
        folder.fingerprint.is_none()
    };
    let manifests = load_dir(dir)?;
    let issues = render_issues(&manifests);
    let mut folder = folder.lock().unwrap_or_else(|p| p.into_inner());
    folder.fingerprint = Some(print);
    folder.issues = issues;
    if manifests.has_errors() && !first {
        let errors = manifests.issues.iter().filter(|i| i.severity == Severity::Error).count();
        tracing::error!(
            errors,
            "manifest edit not applied: the folder has errors (see /status); previous objects stay"
        );
        return Ok(());
    }
    for issue in &manifests.issues {
        tracing::warn!(%issue, "manifest issue");
    }
    folder.applied_loads += 1;
    drop(folder);
    distributor.set_objects(manifests.index);
    tracing::info!(dir = %dir.display(), "manifests applied");
    Ok(())
}

/// Runs local mode until SIGTERM or Ctrl-C.
pub async fn run(options: LocalOptions) -> Result<(), LocalError> {
    let peer_ca = options
        .peer_ca
        .as_ref()
        .map(|settings| local_peer_ca(options.state_dir.as_ref().map(|d| d.join("peer-ca")).as_deref(), settings))
        .transpose()?
        .map(Arc::new);
    let distributor = Distributor::new(DistributorOptions {
        machine: Options {
            peer_ca: peer_ca.clone(),
            forget_disconnected: options.forget_disconnected,
            hold: !options.resume_grace.is_zero(),
            sidecars_from_objects: false,
            identity: options.identity.clone(),
        },
        registry: options.state_dir.as_ref().map(|dir| dir.join("sidecars.json")),
    });
    crate::otlp_metrics::spawn_metrics_export(options.otlp_metrics.clone(), &distributor);
    if let Some(dir) = &options.state_dir {
        std::fs::create_dir_all(dir).map_err(|source| LocalError::StateDir { path: dir.clone(), source })?;
    }
    let folder = Arc::new(Mutex::new(Folder::default()));
    reload(&options.manifests, &distributor, &folder)?;

    let (grpc, grpc_addr) = bind("listen", options.listen).await?;
    let (http, http_addr) = bind("HTTP", options.http).await?;
    println!(
        "{}",
        json!({"event": "listening", "grpc": grpc_addr.to_string(), "http": http_addr.to_string(),
               "tls": options.tls.is_some()})
    );
    tracing::info!(grpc = %grpc_addr, http = %http_addr, manifests = %options.manifests.display(), "operator running (local mode)");

    {
        let store: Arc<dyn KeyStore> = match &options.state_dir {
            Some(dir) => Arc::new(FileKeyStore::new(dir.join("keys"))?),
            None => Arc::new(MemoryKeyStore::default()),
        };
        let mut rotator = Rotator::new(store, Arc::new(LocalPublisher));
        // One pass before any sidecar is served: keys of RouteKeys that no
        // connected sidecar has to learn first are active from the first
        // snapshot on, so no sidecar starts peering without its key.
        rotator.tick(&distributor, fabric_io::clock::now()).await;
        distributor.set_rotation_status(rotator.status().clone());
        let (distributor, tick) = (distributor.clone(), options.rotation_tick);
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(tick).await;
                rotator.tick(&distributor, fabric_io::clock::now()).await;
                distributor.set_rotation_status(rotator.status().clone());
            }
        });
    }
    if peer_ca.is_some() {
        tokio::spawn(distributor.clone().run_peer_certificate_renewal(options.rotation_tick));
    }
    if !options.resume_grace.is_zero() {
        let distributor = distributor.clone();
        let grace = options.resume_grace;
        tokio::spawn(async move {
            tokio::time::sleep(grace).await;
            distributor.release();
            tracing::info!("resume grace over: pushing");
        });
    }
    {
        let (distributor, folder, dir) = (distributor.clone(), folder.clone(), options.manifests.clone());
        let interval = options.poll_interval;
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(interval).await;
                if let Err(error) = reload(&dir, &distributor, &folder) {
                    tracing::error!(%error, "cannot read the manifests; previous objects stay");
                }
            }
        });
    }
    let app = axum::Router::new()
        .route("/status", get(get_status))
        .route("/sidecars", get(get_sidecars))
        .route("/healthz", get(|| async { "ok" }))
        .route("/metrics", get(get_metrics))
        .with_state(AppState { distributor: distributor.clone(), folder });
    tokio::spawn(async move {
        if let Err(error) = axum::serve(http, app).await {
            tracing::error!(%error, "HTTP status server stopped");
        }
    });
    let service = DistributionService::new(distributor, options.verifier);
    // Config streams never end by themselves, so a graceful shutdown would
    // wait forever: on a signal, stop at once (sidecars see the stream end,
    // keep their config and reconnect).
    tokio::select! {
        result = serve(grpc, service, options.tls.as_ref(), std::future::pending()) => Ok(result?),
        () = shutdown_signal() => {
            tracing::info!("shutting down");
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_kept_ca_that_does_not_load_names_its_folder() {
        let dir = std::env::temp_dir().join(format!("fabric-local-peer-ca-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("ca.crt"), "not a certificate").unwrap();
        std::fs::write(dir.join("ca.key"), "not a key").unwrap();
        let settings = fabric_operator_core::peer_ca::PeerCaSettings {
            trust_domain: "fabric.local".into(),
            lifetime: Duration::from_secs(3600),
        };
        let error = local_peer_ca(Some(&dir), &settings).unwrap_err();
        assert!(matches!(&error, LocalError::StoredPeerCa { dir: named, .. } if *named == dir), "{error:?}");
        assert!(error.to_string().starts_with(&dir.display().to_string()), "{error}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
