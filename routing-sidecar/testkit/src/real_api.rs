//! What the operator's real-API tests share (fabric-envtest): installing
//! the CRDs and finding the workspace's files and tools.

use std::path::PathBuf;
use std::time::Duration;

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::Api;

use crate::wait::wait_for;

/// The repository root (this crate lives in `routing-sidecar/testkit/`).
pub fn workspace() -> PathBuf {
    let testkit = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    testkit.ancestors().nth(2).expect("workspace").to_owned()
}

/// Held while a test changes the CRDs of its server (an older CRD to store
/// an object today's refuses), so no other test installs them meanwhile.
pub static CRD_CHANGE: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Applies every CRD in `crds/` (server-side apply: a no-op when they are
/// there) and waits until each is Established. Returns their names, sorted.
pub async fn install_crds(client: &kube::Client) -> Vec<String> {
    let _no_change = CRD_CHANGE.lock().await;
    install_crds_unlocked(client).await
}

/// [`install_crds`] for a caller that holds [`CRD_CHANGE`].
pub async fn install_crds_unlocked(client: &kube::Client) -> Vec<String> {
    let mut names = Vec::new();
    let mut files: Vec<PathBuf> =
        std::fs::read_dir(workspace().join("crds")).unwrap().map(|entry| entry.unwrap().path()).collect();
    files.sort();
    for file in files {
        let text = std::fs::read_to_string(&file).unwrap();
        let applied = fabric_envtest::apply_yaml(client, "default", &text)
            .await
            .unwrap_or_else(|e| panic!("{}: {e}", file.display()));
        names.extend(applied.into_iter().filter_map(|crd| crd.metadata.name));
    }
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    for name in &names {
        wait_for(&format!("CRD {name} Established"), Duration::from_secs(30), || async {
            let crd = crds.get(name).await.map_err(|e| e.to_string())?;
            let established = crd
                .status
                .and_then(|s| s.conditions)
                .unwrap_or_default()
                .into_iter()
                .any(|c| c.type_ == "Established" && c.status == "True");
            if established { Ok(()) } else { Err("not yet".to_owned()) }
        })
        .await;
    }
    names.sort();
    names
}

/// helm (installed by `scripts/install-helm.sh`), or `None` when it is not
/// there and the real-API tests are not required: the caller skips.
pub fn helm() -> Option<PathBuf> {
    let helm = workspace().join(".tools/bin/helm");
    if helm.exists() {
        return Some(helm);
    }
    if std::env::var(fabric_envtest::REQUIRE_ENV).as_deref() == Ok("require") {
        panic!("helm is missing ({}); run scripts/install-helm.sh", helm.display());
    }
    fabric_envtest::uncaptured("SKIPPED: helm is missing; run scripts/install-helm.sh");
    None
}
