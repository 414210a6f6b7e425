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

#[tonic::async_trait]
pub trait KeyStore: Send + Sync {
    /// The private keys of one RouteKey (empty when none were stored).
    async fn load(&self, name: &NamespacedName) -> Result<KeyRing, String>;
    /// Replaces them. `route_key` is the owner (for owner references).
    async fn save(&self, name: &NamespacedName, route_key: &RouteKey, ring: &KeyRing) -> Result<(), String>;
}

#[derive(Default)]
pub struct MemoryKeyStore {
    rings: Mutex<BTreeMap<NamespacedName, KeyRing>>,
}

#[tonic::async_trait]
impl KeyStore for MemoryKeyStore {
    async fn load(&self, name: &NamespacedName) -> Result<KeyRing, String> {
        Ok(self.rings.lock().unwrap_or_else(|p| p.into_inner()).get(name).cloned().unwrap_or_default())
    }
    async fn save(&self, name: &NamespacedName, _: &RouteKey, ring: &KeyRing) -> Result<(), String> {
        self.rings.lock().unwrap_or_else(|p| p.into_inner()).insert(name.clone(), ring.clone());
        Ok(())
    }
}

/// `DIR/<namespace>_<name>.json`, written atomically with mode 0600.
pub struct FileKeyStore {
    dir: PathBuf,
}

impl FileKeyStore {
    pub fn new(dir: impl Into<PathBuf>) -> Result<Self, String> {
        let dir = dir.into();
        std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        Ok(Self { dir })
    }

    fn path(&self, name: &NamespacedName) -> PathBuf {
        self.dir.join(format!("{}_{}.json", name.namespace, name.name))
    }
}

#[tonic::async_trait]
impl KeyStore for FileKeyStore {
    async fn load(&self, name: &NamespacedName) -> Result<KeyRing, String> {
        let path = self.path(name);
        match std::fs::read_to_string(&path) {
            Ok(text) => serde_json::from_str(&text).map_err(|e| format!("{}: {e}", path.display())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(KeyRing::default()),
            Err(e) => Err(format!("{}: {e}", path.display())),
        }
    }

    async fn save(&self, name: &NamespacedName, _: &RouteKey, ring: &KeyRing) -> Result<(), String> {
        let text = serde_json::to_string_pretty(ring).map_err(|e| e.to_string())?;
        fabric_io::files::write_private(&self.path(name), text.as_bytes())
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
        assert!(store.load(&name).await.unwrap_err().contains("fabric_eu-1.json"));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
