//! Where the binaries are: `scripts/install-envtest.sh` builds
//! kube-apiserver into `${XDG_CACHE_HOME:-~/.cache}/fabric-envtest/<version>/`
//! and links etcd and kubectl beside it. `FABRIC_ENVTEST_ASSETS` names
//! another folder with the same three files.

use std::path::{Path, PathBuf};

/// The Kubernetes version the install script builds (one place: the file
/// beside the Go module it builds).
pub const KUBERNETES_VERSION: &str = include_str!("../../../scripts/envtest/VERSION").trim_ascii();

/// Overrides the folder holding `kube-apiserver`, `etcd` and `kubectl`.
pub const ASSETS_ENV: &str = "FABRIC_ENVTEST_ASSETS";

#[derive(Clone, Debug)]
pub struct Assets {
    pub kube_apiserver: PathBuf,
    pub etcd: PathBuf,
    pub kubectl: PathBuf,
}

impl Assets {
    /// The binaries, or the reason they cannot be used.
    pub fn locate() -> Result<Assets, String> {
        let dir = match std::env::var_os(ASSETS_ENV) {
            Some(dir) => PathBuf::from(dir),
            None => default_dir().ok_or("neither XDG_CACHE_HOME nor HOME is set")?,
        };
        let file = |name: &str| -> Result<PathBuf, String> {
            let path = dir.join(name);
            if is_executable(&path) {
                Ok(path)
            } else {
                Err(format!("{} is missing or not executable", path.display()))
            }
        };
        Ok(Assets { kube_apiserver: file("kube-apiserver")?, etcd: file("etcd")?, kubectl: file("kubectl")? })
    }
}

fn default_dir() -> Option<PathBuf> {
    let cache = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|home| Path::new(&home).join(".cache")))?;
    Some(cache.join("fabric-envtest").join(KUBERNETES_VERSION))
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0).unwrap_or(false)
}
