//! The committed CRDs in `crds/` must be what `crdgen` generates now.

use fabric_operator_core::api::rules;
use fabric_operator_core::crds;

#[test]
fn crds_are_up_to_date() {
    let dir = crds::default_dir();
    let mut stale = Vec::new();
    for file in crds::files().expect("CRDs render") {
        let path = dir.join(&file.file_name);
        match std::fs::read_to_string(&path) {
            Ok(on_disk) if on_disk == file.yaml => {}
            Ok(_) => stale.push(format!("{} differs", path.display())),
            Err(error) => stale.push(format!("{} unreadable: {error}", path.display())),
        }
    }
    assert!(stale.is_empty(), "CRDs are stale ({}); run `cargo run -p operator --bin crdgen`", stale.join(", "));
}

#[test]
fn the_crd_reference_is_up_to_date() {
    let path = fabric_operator_core::crd_reference::default_path();
    let expected = fabric_operator_core::crd_reference::render().expect("reference renders");
    let on_disk = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(on_disk == expected, "{} is stale; run `cargo run -p operator --bin crdgen`", path.display());
}

#[test]
fn every_crd_is_namespaced_with_status_and_printer_columns() {
    let crds = crds::all();
    let kinds: Vec<&str> = crds.iter().map(|crd| crd.spec.names.kind.as_str()).collect();
    assert_eq!(kinds, ["RoutePolicy", "NeighborPolicy", "RouteKey", "LinkStateArea"]);
    for crd in &crds {
        assert_eq!(crd.spec.group, "routing.fabric.dev");
        assert_eq!(crd.spec.scope, "Namespaced");
        let version = &crd.spec.versions[0];
        assert_eq!(version.name, "v1alpha1");
        assert!(
            version.subresources.as_ref().and_then(|s| s.status.as_ref()).is_some(),
            "{} status",
            crd.spec.names.kind
        );
        let columns = version.additional_printer_columns.as_deref().unwrap_or_default();
        assert!(columns.iter().any(|c| c.name == "Age"), "{} printer columns", crd.spec.names.kind);
    }
}

#[test]
fn every_cel_rule_is_in_the_generated_crds() {
    // JSON, not the YAML files: YAML folds long strings across lines.
    let json = serde_json::to_string(&crds::all()).expect("CRDs serialize");
    for rule in rules::ALL {
        let rule_json =
            serde_json::to_string(&serde_json::json!({"message": rule.message, "rule": rule.rule})).unwrap();
        assert!(json.contains(&rule_json[1..rule_json.len() - 1]), "{rule:?} missing from the CRDs");
    }
}
