//! Where private keys are kept: [`KeyStore`]. In a cluster an
//! owner-referenced Secret per RouteKey (`secret::SecretKeyStore`); locally
//! a file per RouteKey in the state directory ([`FileKeyStore`]), or memory
//! when there is no state directory ([`MemoryKeyStore`]: a restart starts a
//! new key, which rotation handles like a lost one).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Mutex;

use fabric_operator_core::api::RouteKey;
use fabric_operator_core::index::NamespacedName;
use fabric_operator_core::rotation_plan::KeyRing;

/// Why private keys could not be read or written, naming the file or the
/// Secret.
#[derive(Debug, thiserror::Error)]
pub enum KeyStoreError {
    /// The state directory or a key file cannot be read or made.
    #[error("{}: {source}", path.display())]
    File {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A key file or a Secret's key ring is not the JSON of a key ring.
    #[error("{location}: {source}")]
    Corrupt {
        /// The file path, or `Secret NAMESPACE/NAME key keys.json`.
        location: String,
        #[source]
        source: serde_json::Error,
    },
    #[error(transparent)]
    Write(#[from] fabric_io::files::WriteError),
    /// The API server refused or failed the read or the write of the Secret.
    #[error("{}", crate::rotation::secret::api_error(.0))]
    Api(#[source] kube::Error),
    /// The RouteKey has no uid yet, so its Secret cannot name its owner.
    #[error("RouteKey {0} has no uid yet; its Secret needs an owner")]
    NoOwner(NamespacedName),
    #[error("cannot encode the key ring: {0}")]
    Encode(#[source] serde_json::Error),
}

#[tonic::async_trait]
pub trait KeyStore: Send + Sync {
    /// The private keys of one RouteKey (empty when none were stored).
    async fn load(&self, name: &NamespacedName) -> Result<KeyRing, KeyStoreError>;
    /// Replaces them. `route_key` is the owner (for owner references).
    async fn save(&self, name: &NamespacedName, route_key: &RouteKey, ring: &KeyRing) -> Result<(), KeyStoreError>;
}

#[derive(Default)]
pub struct MemoryKeyStore {
    rings: Mutex<BTreeMap<NamespacedName, KeyRing>>,
}

#[tonic::async_trait]
impl KeyStore for MemoryKeyStore {
    async fn load(&self, name: &NamespacedName) -> Result<KeyRing, KeyStoreError> {
        Ok(self.rings.lock().unwrap_or_else(|p| p.into_inner()).get(name).cloned().unwrap_or_default())
    }
    async fn save(&self, name: &NamespacedName, _: &RouteKey, ring: &KeyRing) -> Result<(), KeyStoreError> {
        self.rings.lock().unwrap_or_else(|p| p.into_inner()).insert(name.clone(), ring.clone());
        Ok(())
    }
}

/// `DIR/<namespace>_<name>.json`, written atomically with mode 0600.
pub struct FileKeyStore {
    dir: PathBuf,
}

impl FileKeyStore {
    pub fn new(dir: impl Into<PathBuf>) -> Result<Self, KeyStoreError> {
        let dir = dir.into();
        std::fs::create_dir_all(&dir).map_err(|source| KeyStoreError::File { path: dir.clone(), source })?;
        Ok(Self { dir })
    }

    fn path(&self, name: &NamespacedName) -> PathBuf {
        self.dir.join(format!("{}_{}.json", name.namespace, name.name))
    }
}

#[tonic::async_trait]
impl KeyStore for FileKeyStore {
    async fn load(&self, name: &NamespacedName) -> Result<KeyRing, KeyStoreError> {
        let path = self.path(name);
        match std::fs::read_to_string(&path) {
            Ok(text) => serde_json::from_str(&text)
                .map_err(|source| KeyStoreError::Corrupt { location: path.display().to_string(), source }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(KeyRing::default()),
            Err(source) => Err(KeyStoreError::File { path, source }),
        }
    }

    async fn save(&self, name: &NamespacedName, _: &RouteKey, ring: &KeyRing) -> Result<(), KeyStoreError> {
        let text = serde_json::to_string_pretty(ring).map_err(KeyStoreError::Encode)?;
        Ok(fabric_io::files::write_private(&self.path(name), text.as_bytes())?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rotation::PrivateKey;

    #[tokio::test]
    async fn the_file_store_round_trips_and_is_private() {
        let dir = std::env::temp_dir().join(format!("fabric-keys-{}", std::process::id()));
        let store = FileKeyStore::new(&dir).unwrap();
        let name = NamespacedName::new("fabric", "eu-1");
        assert_eq!(store.load(&name).await.unwrap(), KeyRing::default());
        let ring = KeyRing { keys: vec![PrivateKey::new("k1".into(), &[3; 32], fabric_core::Timestamp(5))] };
        let owner = RouteKey::new("eu-1", serde_json::from_str(r#"{"nodeId": "eu-1"}"#).unwrap());
        store.save(&name, &owner, &ring).await.unwrap();
        assert_eq!(store.load(&name).await.unwrap(), ring);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(dir.join("fabric_eu-1.json")).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        std::fs::write(dir.join("fabric_eu-1.json"), "{").unwrap();
        let corrupt = store.load(&name).await.unwrap_err();
        assert!(matches!(corrupt, KeyStoreError::Corrupt { .. }), "{corrupt:?}");
        assert!(corrupt.to_string().contains("fabric_eu-1.json"), "{corrupt}");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
