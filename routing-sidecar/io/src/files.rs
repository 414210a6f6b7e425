//! Files that hold secrets: written whole (a reader never sees half a key)
//! and readable by their owner only.

use std::io::Write;
use std::path::Path;

/// Writes `bytes` to a temporary file next to `path` and renames it over
/// `path`, so the file is either the old or the new content.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let tmp = path.with_extension("tmp");
    {
        let mut file = std::fs::File::create(&tmp)?;
        file.write_all(bytes)?;
        file.sync_all()?;
    }
    std::fs::rename(&tmp, path)
}

/// Writes a secret file readable by its owner only.
pub fn write_private(path: &Path, contents: &[u8]) -> Result<(), String> {
    write_atomically(path, contents)
        .and_then(|()| restrict_permissions(path))
        .map_err(|e| format!("{}: {e}", path.display()))
}

#[cfg(unix)]
pub fn restrict_permissions(path: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
}

#[cfg(not(unix))]
pub fn restrict_permissions(_: &Path) -> std::io::Result<()> {
    Ok(())
}
