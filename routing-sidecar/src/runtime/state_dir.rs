//! The state directory: the last config applied and this node's signing
//! key, so a restart without the operator comes back with the same policy
//! and keys. Files are replaced atomically (write, fsync, rename).

use std::path::{Path, PathBuf};

use base64::Engine as _;
use serde::{Deserialize, Serialize};

use fabric_core::config::{ConfigError, SidecarConfig};
use fabric_core::ids::KeyId;
use fabric_core::security::SigningIdentity;
use fabric_io::files::{write_atomically, write_private};

const CONFIG_FILE: &str = "config.yaml";
const KEY_FILE: &str = "signing-key.json";

/// Why the state directory or a signing key file could not be used.
#[derive(Debug, thiserror::Error)]
pub enum StateDirError {
    #[error("state dir {}: {source}", path.display())]
    Create {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{}: {source}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{}: {source}", path.display())]
    Config {
        path: PathBuf,
        #[source]
        source: ConfigError,
    },
    #[error("{}: {source}", path.display())]
    KeyFile {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
    #[error("{}: {source}", path.display())]
    SigningKey {
        path: PathBuf,
        #[source]
        source: SigningKeyError,
    },
}

/// Why a signing key file's `secretKey` is not an ed25519 secret key.
#[derive(Debug, thiserror::Error)]
pub enum SigningKeyError {
    #[error("secretKey: not base64: {0}")]
    NotBase64(#[source] base64::DecodeError),
    #[error("secretKey: {0} bytes, an ed25519 key has 32")]
    Length(usize),
}

/// A signing key as stored on disk or mounted from a Secret.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SigningKeyFile {
    pub key_id: KeyId,
    /// Standard base64 of the 32-byte ed25519 secret key.
    pub secret_key: String,
}

impl SigningKeyFile {
    pub fn from_identity(identity: &SigningIdentity) -> Self {
        Self {
            key_id: identity.key_id().clone(),
            secret_key: base64::engine::general_purpose::STANDARD.encode(identity.secret_bytes()),
        }
    }

    pub fn identity(&self) -> Result<SigningIdentity, SigningKeyError> {
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(self.secret_key.trim())
            .map_err(SigningKeyError::NotBase64)?;
        let secret: [u8; 32] = bytes.try_into().map_err(|b: Vec<u8>| SigningKeyError::Length(b.len()))?;
        Ok(SigningIdentity::from_secret_bytes(self.key_id.clone(), &secret))
    }

    pub fn read(path: &Path) -> Result<Self, StateDirError> {
        let text =
            std::fs::read_to_string(path).map_err(|source| StateDirError::Read { path: path.to_path_buf(), source })?;
        serde_json::from_str(&text).map_err(|source| StateDirError::KeyFile { path: path.to_path_buf(), source })
    }

    /// The identity in the key file at `path`.
    pub fn read_identity(path: &Path) -> Result<SigningIdentity, StateDirError> {
        Self::read(path)?.identity().map_err(|source| StateDirError::SigningKey { path: path.to_path_buf(), source })
    }
}

#[derive(Clone, Debug)]
pub struct StateDir {
    path: PathBuf,
}

impl StateDir {
    pub fn open(path: impl Into<PathBuf>) -> Result<Self, StateDirError> {
        let path = path.into();
        if let Err(source) = std::fs::create_dir_all(&path) {
            return Err(StateDirError::Create { path, source });
        }
        Ok(Self { path })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The last config applied, if any. A corrupt file is an error, not a
    /// silent fresh start.
    pub fn load_config(&self) -> Result<Option<SidecarConfig>, StateDirError> {
        let path = self.path.join(CONFIG_FILE);
        match std::fs::read_to_string(&path) {
            Ok(text) => {
                SidecarConfig::from_yaml(&text).map(Some).map_err(|source| StateDirError::Config { path, source })
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(source) => Err(StateDirError::Read { path, source }),
        }
    }

    pub fn save_config(&self, config: &SidecarConfig) -> std::io::Result<()> {
        write_atomically(&self.path.join(CONFIG_FILE), config.to_yaml().as_bytes())
    }

    pub fn load_signing_key(&self) -> Result<Option<SigningIdentity>, StateDirError> {
        let path = self.path.join(KEY_FILE);
        if !path.exists() {
            return Ok(None);
        }
        SigningKeyFile::read_identity(&path).map(Some)
    }

    pub fn save_signing_key(&self, identity: &SigningIdentity) -> std::io::Result<()> {
        let json = serde_json::to_vec_pretty(&SigningKeyFile::from_identity(identity)).expect("serializes");
        let path = self.path.join(KEY_FILE);
        write_private(&path, &json).map_err(std::io::Error::other)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_and_key_survive_a_reopen_and_corruption_is_an_error() {
        let dir = std::env::temp_dir().join(format!("fabric-state-{}", std::process::id()));
        let state = StateDir::open(&dir).unwrap();
        assert_eq!(state.load_config().unwrap(), None);
        let mut config = SidecarConfig::new("n1");
        config.version = Some("7".into());
        state.save_config(&config).unwrap();
        let key = SigningIdentity::from_secret_bytes("k1".into(), &[9; 32]);
        state.save_signing_key(&key).unwrap();
        let reopened = StateDir::open(&dir).unwrap();
        assert_eq!(reopened.load_config().unwrap(), Some(config));
        assert_eq!(reopened.load_signing_key().unwrap().unwrap().secret_bytes(), [9; 32]);
        std::fs::write(dir.join(CONFIG_FILE), "nodeId: [").unwrap();
        assert!(reopened.load_config().is_err());
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn a_bad_key_file_error_names_the_file_and_the_field() {
        let dir = std::env::temp_dir().join(format!("fabric-state-key-{}", std::process::id()));
        let state = StateDir::open(&dir).unwrap();
        let path = dir.join(KEY_FILE);
        std::fs::write(&path, r#"{"keyId":"k1","secretKey":"AAAA"}"#).unwrap();
        let error = state.load_signing_key().unwrap_err();
        assert!(
            matches!(&error, StateDirError::SigningKey { path: named, source: SigningKeyError::Length(3) } if *named == path),
            "{error:?}"
        );
        assert_eq!(error.to_string(), format!("{}: secretKey: 3 bytes, an ed25519 key has 32", path.display()));
        std::fs::remove_dir_all(dir).unwrap();
    }
}
