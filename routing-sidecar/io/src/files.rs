//! Files that hold state or secrets: written whole (a reader never sees
//! half a key), and secrets readable by their owner only from the moment
//! they exist.

use std::io::Write;
use std::path::{Path, PathBuf};

/// A state or secret file that could not be written, with its path.
#[derive(Debug, thiserror::Error)]
#[error("{}: {source}", path.display())]
pub struct WriteError {
    pub path: PathBuf,
    #[source]
    pub source: std::io::Error,
}

/// For shells that still report errors as text: `?` keeps working.
impl From<WriteError> for String {
    fn from(error: WriteError) -> String {
        error.to_string()
    }
}

/// Writes `bytes` to a temporary file next to `path` and renames it over
/// `path`, so the file is either the old or the new content.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    replace(path, bytes, false)
}

/// Writes a secret file readable by its owner only, atomically like
/// [`write_atomically`]. The temporary file is made owner-only before the
/// secret is written to it, so there is no moment others could read it.
pub fn write_private(path: &Path, contents: &[u8]) -> Result<(), WriteError> {
    replace(path, contents, true).map_err(|source| WriteError { path: path.to_path_buf(), source })
}

fn replace(path: &Path, bytes: &[u8], private: bool) -> std::io::Result<()> {
    let tmp = path.with_extension("tmp");
    {
        let mut file = std::fs::File::create(&tmp)?;
        if private {
            // On the open file: a temporary left by a crash keeps its old
            // mode through `create`, so setting it at creation is not enough.
            restrict_permissions(&file)?;
        }
        file.write_all(bytes)?;
        file.sync_all()?;
    }
    std::fs::rename(&tmp, path)
}

#[cfg(unix)]
fn restrict_permissions(file: &std::fs::File) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    file.set_permissions(std::fs::Permissions::from_mode(0o600))
}

#[cfg(not(unix))]
fn restrict_permissions(_: &std::fs::File) -> std::io::Result<()> {
    Ok(())
}

#[cfg(all(test, unix))]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    #[test]
    fn a_secret_replaces_the_old_file_and_is_owner_only() {
        let dir = std::env::temp_dir().join(format!("fabric-io-files-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("key.pem");
        // A temporary left world-readable by an earlier crash.
        std::fs::write(path.with_extension("tmp"), b"stale").unwrap();
        std::fs::set_permissions(path.with_extension("tmp"), std::fs::Permissions::from_mode(0o644)).unwrap();
        write_atomically(&path, b"old").unwrap();
        write_private(&path, b"secret").unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"secret");
        assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
        assert!(!path.with_extension("tmp").exists(), "the temporary is renamed away");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_failed_write_names_the_file() {
        let path = std::env::temp_dir().join(format!("fabric-io-missing-{}", std::process::id())).join("key.pem");
        let error = write_private(&path, b"secret").unwrap_err();
        assert_eq!(error.path, path);
        assert_eq!(error.source.kind(), std::io::ErrorKind::NotFound);
        assert!(error.to_string().starts_with(&path.display().to_string()), "{error}");
    }
}
