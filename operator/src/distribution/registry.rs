//! Local mode's sidecar registry: a JSON file of the sidecars that said
//! Hello, so a restarted operator compiles for all of them at once and
//! reconnecting sidecars on the current version get no push. (In a
//! cluster, the pod watch plays this part.)

use std::collections::BTreeMap;
use std::path::Path;

use fabric_core::NodeId;
use fabric_operator_core::index::SidecarInfo;

/// A registered sidecar as stored in the file.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct Registered {
    node_id: String,
    namespace: String,
    name: String,
    labels: BTreeMap<String, String>,
    peer_address: Option<String>,
}

impl From<&SidecarInfo> for Registered {
    fn from(info: &SidecarInfo) -> Self {
        Self {
            node_id: info.node_id.to_string(),
            namespace: info.namespace.clone(),
            name: info.name.clone(),
            labels: info.labels.clone(),
            peer_address: info.peer_address.clone(),
        }
    }
}

impl From<Registered> for SidecarInfo {
    fn from(r: Registered) -> Self {
        Self {
            node_id: NodeId::from(r.node_id),
            namespace: r.namespace,
            name: r.name,
            labels: r.labels,
            peer_address: r.peer_address,
            service_account: None,
        }
    }
}

/// The sidecars kept in `path`; none when it is missing or unreadable (a
/// first start, or a file from an incompatible version: the sidecars
/// register again as they say Hello).
pub(super) fn load(path: &Path) -> Vec<SidecarInfo> {
    let Ok(text) = std::fs::read_to_string(path) else { return Vec::new() };
    match serde_json::from_str::<Vec<Registered>>(&text) {
        Ok(list) => list.into_iter().map(SidecarInfo::from).collect(),
        Err(error) => {
            tracing::warn!(file = %path.display(), %error, "sidecar registry unreadable; starting empty");
            Vec::new()
        }
    }
}

/// Replaces the file with `sidecars` (written aside, then renamed, so a
/// crash leaves the old file or the new one, never half of one).
pub(super) fn save<'a>(path: &Path, sidecars: impl Iterator<Item = &'a SidecarInfo>) {
    let list: Vec<Registered> = sidecars.map(Registered::from).collect();
    let text = serde_json::to_string_pretty(&list).unwrap_or_default();
    let temporary = path.with_extension("tmp");
    if let Err(error) = std::fs::write(&temporary, text).and_then(|()| std::fs::rename(&temporary, path)) {
        tracing::warn!(file = %path.display(), %error, "cannot save the sidecar registry");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn saved_sidecars_load_again_and_an_unreadable_file_is_empty() {
        let dir = fabric_testkit::process::scratch("registry");
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("sidecars.json");
        let sidecar = SidecarInfo {
            node_id: NodeId::from("eu-1"),
            namespace: "fabric".into(),
            name: "a".into(),
            labels: [("mesh".to_string(), "test".to_string())].into(),
            peer_address: Some("10.0.0.1:7000".into()),
            service_account: None,
        };
        save(&path, [&sidecar].into_iter());
        assert_eq!(load(&path), vec![sidecar]);
        std::fs::write(&path, "not json").unwrap();
        assert!(load(&path).is_empty());
        assert!(load(&dir.join("missing.json")).is_empty());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
