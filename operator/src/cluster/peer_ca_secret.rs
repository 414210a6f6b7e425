//! The peer CA of cluster mode, kept in a Secret of the operator's
//! namespace so that every replica and every restart issues from the same
//! CA (sidecars keep trusting the certificates of their peers). The first
//! leader creates it; a replica that loses the race to create it reads it.

use std::collections::BTreeMap;

use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use kube::Client;
use kube::api::{Api, ObjectMeta, PostParams};

use fabric_operator_core::peer_ca::{PeerCa, PeerCaError, PeerCaSettings};

const CERT_KEY: &str = "ca.crt";
const PRIVATE_KEY: &str = "ca.key";

/// Why the peer CA Secret could not be read, made or used; `secret` is
/// `namespace/name`.
#[derive(Debug, thiserror::Error)]
pub enum PeerCaSecretError {
    #[error("read Secret {secret}: {source}")]
    Read {
        secret: String,
        #[source]
        source: kube::Error,
    },
    #[error("create Secret {secret}: {source}")]
    Create {
        secret: String,
        #[source]
        source: kube::Error,
    },
    #[error("Secret {secret} has no {key}")]
    MissingKey { secret: String, key: &'static str },
    #[error("Secret {secret}: {key} is not PEM text")]
    NotText { secret: String, key: &'static str },
    /// The Secret's CA does not load.
    #[error("Secret {secret}: {source}")]
    BadCa {
        secret: String,
        #[source]
        source: PeerCaError,
    },
    #[error("peer CA: {0}")]
    Generate(#[source] PeerCaError),
    #[error("Secret {secret}: created and deleted again while reading it")]
    Vanished { secret: String },
}

fn text<'a>(secret: &'a Secret, key: &'static str) -> Result<&'a str, PeerCaSecretError> {
    let name = secret.metadata.name.as_deref().unwrap_or_default();
    let bytes = secret
        .data
        .as_ref()
        .and_then(|d| d.get(key))
        .ok_or_else(|| PeerCaSecretError::MissingKey { secret: name.to_string(), key })?;
    std::str::from_utf8(&bytes.0).map_err(|_| PeerCaSecretError::NotText { secret: name.to_string(), key })
}

/// The CA in Secret `name` of `namespace`, created (with a new CA) when it
/// does not exist.
pub(super) async fn load_or_create(
    client: Client,
    namespace: &str,
    name: &str,
    settings: &PeerCaSettings,
) -> Result<PeerCa, PeerCaSecretError> {
    let api: Api<Secret> = Api::namespaced(client, namespace);
    let (domain, lifetime) = (&settings.trust_domain, settings.lifetime);
    let full_name = || format!("{namespace}/{name}");
    for _ in 0..3 {
        match api.get_opt(name).await.map_err(|source| PeerCaSecretError::Read { secret: full_name(), source })? {
            Some(secret) => {
                return PeerCa::from_pem(text(&secret, CERT_KEY)?, text(&secret, PRIVATE_KEY)?, domain, lifetime)
                    .map_err(|source| PeerCaSecretError::BadCa { secret: full_name(), source });
            }
            None => {
                let ca = PeerCa::generate(domain, lifetime, std::time::SystemTime::now())
                    .map_err(PeerCaSecretError::Generate)?;
                let data = BTreeMap::from([
                    (CERT_KEY.to_owned(), ByteString(ca.certificate_pem().as_bytes().to_vec())),
                    (PRIVATE_KEY.to_owned(), ByteString(ca.key_pem().as_bytes().to_vec())),
                ]);
                let secret = Secret {
                    metadata: ObjectMeta {
                        name: Some(name.to_owned()),
                        labels: Some(BTreeMap::from([(
                            "app.kubernetes.io/managed-by".to_owned(),
                            "fabric-operator".to_owned(),
                        )])),
                        ..Default::default()
                    },
                    data: Some(data),
                    type_: Some("Opaque".to_owned()),
                    ..Default::default()
                };
                match api.create(&PostParams::default(), &secret).await {
                    Ok(_) => {
                        tracing::info!(secret = %format!("{namespace}/{name}"), "peer CA created");
                        return Ok(ca);
                    }
                    // Another replica created it first: read theirs.
                    Err(kube::Error::Api(status)) if status.code == 409 => continue,
                    Err(source) => return Err(PeerCaSecretError::Create { secret: full_name(), source }),
                }
            }
        }
    }
    Err(PeerCaSecretError::Vanished { secret: full_name() })
}
