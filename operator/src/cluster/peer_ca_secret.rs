//! The peer CA of cluster mode, kept in a Secret of the operator's
//! namespace so that every replica and every restart issues from the same
//! CA (sidecars keep trusting the certificates of their peers). The first
//! leader creates it; a replica that loses the race to create it reads it.

use std::collections::BTreeMap;

use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use kube::Client;
use kube::api::{Api, ObjectMeta, PostParams};

use fabric_operator_core::peer_ca::{PeerCa, PeerCaSettings};

const CERT_KEY: &str = "ca.crt";
const PRIVATE_KEY: &str = "ca.key";

fn text<'a>(secret: &'a Secret, key: &str) -> Result<&'a str, String> {
    let name = secret.metadata.name.as_deref().unwrap_or_default();
    let bytes = secret.data.as_ref().and_then(|d| d.get(key)).ok_or_else(|| format!("Secret {name} has no {key}"))?;
    std::str::from_utf8(&bytes.0).map_err(|_| format!("Secret {name}: {key} is not PEM text"))
}

/// The CA in Secret `name` of `namespace`, created (with a new CA) when it
/// does not exist.
pub async fn load_or_create(
    client: Client,
    namespace: &str,
    name: &str,
    settings: &PeerCaSettings,
) -> Result<PeerCa, String> {
    let api: Api<Secret> = Api::namespaced(client, namespace);
    let (domain, lifetime) = (&settings.trust_domain, settings.lifetime);
    for _ in 0..3 {
        match api.get_opt(name).await.map_err(|e| format!("read Secret {namespace}/{name}: {e}"))? {
            Some(secret) => {
                return PeerCa::from_pem(text(&secret, CERT_KEY)?, text(&secret, PRIVATE_KEY)?, domain, lifetime)
                    .map_err(|e| format!("Secret {namespace}/{name}: {e}"));
            }
            None => {
                let ca = PeerCa::generate(domain, lifetime, std::time::SystemTime::now()).map_err(|e| e.to_string())?;
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
                    Err(e) => return Err(format!("create Secret {namespace}/{name}: {e}")),
                }
            }
        }
    }
    Err(format!("Secret {namespace}/{name}: created and deleted again while reading it"))
}
