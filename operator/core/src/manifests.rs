//! Loads a folder of YAML manifests (multi-document files, as `kubectl
//! apply -f DIR` reads them) into an [`Index`]: the four CRD kinds, and
//! `v1/Pod` objects as sidecars. Problems are collected, never fatal:
//! unknown kinds are reported as warnings, parse errors and duplicates as
//! errors naming the file and the document (1-based).

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::CustomResourceExt;
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::api::{LinkStateArea, NeighborPolicy, RouteKey, RoutePolicy};
use crate::compile::Severity;
use crate::index::{Index, Indexed, NamespacedName, ObjectKind, SidecarInfo};
use crate::names::{API_VERSION, GROUP};

/// Namespace of objects that do not name one, as with `kubectl apply`.
pub const DEFAULT_NAMESPACE: &str = "default";

/// Where a document came from.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Source {
    pub file: PathBuf,
    /// 1-based position of the document in its file.
    pub document: usize,
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} document {}", self.file.display(), self.document)
    }
}

/// One thing wrong with the manifests.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ManifestIssue {
    pub severity: Severity,
    pub source: Source,
    /// `RoutePolicy ns/name` when the document got that far.
    pub object: Option<String>,
    pub message: String,
}

impl fmt::Display for ManifestIssue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let severity = if self.severity == Severity::Error { "error" } else { "warning" };
        write!(f, "{severity}: {}", self.source)?;
        if let Some(object) = &self.object {
            write!(f, " ({object})")?;
        }
        write!(f, ": {}", self.message)
    }
}

/// The folder could not be read at all.
#[derive(Debug, thiserror::Error)]
#[error("cannot read {}: {source}", path.display())]
pub struct ManifestError {
    pub path: PathBuf,
    #[source]
    pub source: std::io::Error,
}

/// An index built from manifests, and what was wrong with them.
#[derive(Clone, Debug, Default)]
pub struct Manifests {
    pub index: Index,
    pub issues: Vec<ManifestIssue>,
    /// Where each loaded object came from (for duplicate reports).
    pub sources: BTreeMap<(ObjectKind, NamespacedName), Source>,
}

impl Manifests {
    pub fn has_errors(&self) -> bool {
        self.issues.iter().any(|i| i.severity == Severity::Error)
    }
}

fn is_manifest(path: &Path) -> bool {
    matches!(path.extension().and_then(|e| e.to_str()), Some("yaml" | "yml" | "json"))
}

/// Manifest files under `dir`, recursively, in path order.
fn manifest_files(dir: &Path) -> Result<Vec<PathBuf>, ManifestError> {
    let error = |source| ManifestError { path: dir.to_owned(), source };
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(error)? {
        let path = entry.map_err(error)?.path();
        if path.is_dir() {
            files.extend(manifest_files(&path)?);
        } else if is_manifest(&path) {
            files.push(path);
        }
    }
    files.sort();
    Ok(files)
}

/// Loads every `*.yaml`, `*.yml` and `*.json` file under `dir` (or `dir`
/// itself when it is a file).
pub fn load_dir(dir: &Path) -> Result<Manifests, ManifestError> {
    let files = if dir.is_file() { vec![dir.to_owned()] } else { manifest_files(dir)? };
    let mut manifests = Manifests::default();
    let mut loader = Loader::default();
    for file in files {
        let text = std::fs::read_to_string(&file).map_err(|source| ManifestError { path: file.clone(), source })?;
        loader.load_text(&mut manifests, &file, &text);
    }
    Ok(manifests)
}

/// Loads the documents of one file's text (pure; `file` only labels issues).
pub fn load_text(manifests: &mut Manifests, file: &Path, text: &str) {
    Loader::default().load_text(manifests, file, text);
}

/// Caches the CRD schemas used to spot unknown fields.
#[derive(Default)]
struct Loader {
    schemas: BTreeMap<ObjectKind, Value>,
}

impl Loader {
    fn load_text(&mut self, manifests: &mut Manifests, file: &Path, text: &str) {
        for (i, document) in serde_norway::Deserializer::from_str(text).enumerate() {
            let source = Source { file: file.to_owned(), document: i + 1 };
            match Value::deserialize(document) {
                Ok(Value::Null) => {}
                Ok(value) => self.load_value(manifests, source, value),
                Err(error) => {
                    manifests.issues.push(ManifestIssue {
                        severity: Severity::Error,
                        source,
                        object: None,
                        message: format!("not valid YAML: {error}"),
                    });
                    // The YAML stream cannot be resynchronized after a
                    // syntax error: the rest of the file is skipped.
                    break;
                }
            }
        }
    }

    fn load_value(&mut self, manifests: &mut Manifests, source: Source, value: Value) {
        let api_version = value.get("apiVersion").and_then(Value::as_str).unwrap_or_default().to_owned();
        let kind = value.get("kind").and_then(Value::as_str).unwrap_or_default().to_owned();
        let issue =
            |severity, message: String| ManifestIssue { severity, source: source.clone(), object: None, message };
        if api_version == API_VERSION {
            match kind.as_str() {
                "RoutePolicy" => self.load_custom::<RoutePolicy>(manifests, source, value),
                "NeighborPolicy" => self.load_custom::<NeighborPolicy>(manifests, source, value),
                "RouteKey" => self.load_custom::<RouteKey>(manifests, source, value),
                "LinkStateArea" => self.load_custom::<LinkStateArea>(manifests, source, value),
                other => manifests.issues.push(issue(Severity::Error, format!("{API_VERSION} has no kind {other:?}"))),
            }
        } else if api_version.starts_with(&format!("{GROUP}/")) {
            let message = format!("apiVersion {api_version} is not served; use {API_VERSION}");
            manifests.issues.push(issue(Severity::Error, message));
        } else if api_version == "v1" && kind == "Pod" {
            load_pod(manifests, source, &value);
        } else {
            let what = if kind.is_empty() {
                "a document without kind".to_owned()
            } else {
                format!("kind {kind} ({api_version})")
            };
            manifests
                .issues
                .push(issue(Severity::Warning, format!("{what} is not used by the fabric operator; ignored")));
        }
    }

    fn load_custom<K>(&mut self, manifests: &mut Manifests, source: Source, mut value: Value)
    where
        K: Indexed + DeserializeOwned + CustomResourceExt,
    {
        let kind = K::KIND.as_str();
        let name = value.pointer("/metadata/name").and_then(Value::as_str).unwrap_or_default().to_owned();
        if let Some(metadata) = value.get_mut("metadata").and_then(Value::as_object_mut) {
            metadata.entry("namespace").or_insert_with(|| Value::from(DEFAULT_NAMESPACE));
        }
        let namespace =
            value.pointer("/metadata/namespace").and_then(Value::as_str).unwrap_or(DEFAULT_NAMESPACE).to_owned();
        let label = format!("{kind} {namespace}/{name}");
        let issue = |severity, message: String| ManifestIssue {
            severity,
            source: source.clone(),
            object: Some(label.clone()),
            message,
        };
        let schema = self.schemas.entry(K::KIND).or_insert_with(|| schema_of::<K>());
        for path in unknown_fields(schema, value.get("spec").unwrap_or(&Value::Null), "spec") {
            manifests.issues.push(issue(
                Severity::Warning,
                format!("{path} is not a field of {kind}; the API server would drop it"),
            ));
        }
        let object: K = match serde_json::from_value(value) {
            Ok(object) => object,
            Err(error) => {
                manifests.issues.push(issue(Severity::Error, format!("does not match the {kind} schema: {error}")));
                return;
            }
        };
        let key = (K::KIND, NamespacedName::new(&namespace, &name));
        if let Some(first) = manifests.sources.get(&key) {
            manifests.issues.push(issue(Severity::Error, format!("defined twice; the first, in {first}, is used")));
            return;
        }
        match manifests.index.apply(object) {
            Ok(_) => {
                manifests.sources.insert(key, source);
            }
            Err(error) => manifests.issues.push(issue(Severity::Error, error.to_string())),
        }
    }
}

fn load_pod(manifests: &mut Manifests, source: Source, value: &Value) {
    let metadata = value.get("metadata").cloned().unwrap_or(Value::Null);
    let issue = |message: String, object: Option<String>| ManifestIssue {
        severity: Severity::Error,
        source: source.clone(),
        object,
        message,
    };
    let metadata: ObjectMeta = match serde_json::from_value(metadata) {
        Ok(metadata) => metadata,
        Err(error) => {
            manifests.issues.push(issue(format!("Pod metadata does not parse: {error}"), None));
            return;
        }
    };
    let service_account = value.pointer("/spec/serviceAccountName").and_then(Value::as_str);
    let sidecar = match SidecarInfo::from_pod(&metadata, service_account, DEFAULT_NAMESPACE) {
        Ok(sidecar) => sidecar,
        Err(error) => {
            manifests.issues.push(issue(error.to_string(), None));
            return;
        }
    };
    let key = (ObjectKind::Pod, NamespacedName::new(&sidecar.namespace, &sidecar.name));
    if let Some(first) = manifests.sources.get(&key) {
        let message = format!("defined twice; the first, in {first}, is used");
        manifests.issues.push(issue(message, Some(sidecar.key().to_string())));
        return;
    }
    manifests.index.upsert_sidecar(sidecar);
    manifests.sources.insert(key, source);
}

/// The OpenAPI schema of `K`'s CRD as JSON (`Null` if it has none).
fn schema_of<K: CustomResourceExt>() -> Value {
    let crd = K::crd();
    let schema = crd.spec.versions.first().and_then(|v| v.schema.as_ref()).and_then(|s| s.open_api_v3_schema.as_ref());
    schema.and_then(|s| serde_json::to_value(s).ok()).map_or(Value::Null, |s| s["properties"]["spec"].clone())
}

/// Paths of fields in `value` that `schema` does not declare.
fn unknown_fields(schema: &Value, value: &Value, path: &str) -> Vec<String> {
    let mut unknown = Vec::new();
    match value {
        Value::Object(fields) => {
            let Some(properties) = schema.get("properties").and_then(Value::as_object) else {
                // A map (additionalProperties) or free-form object: any key.
                return unknown;
            };
            for (name, field) in fields {
                let field_path = format!("{path}.{name}");
                match properties.get(name) {
                    Some(field_schema) => unknown.extend(unknown_fields(field_schema, field, &field_path)),
                    None => unknown.push(field_path),
                }
            }
        }
        Value::Array(items) => {
            if let Some(item_schema) = schema.get("items") {
                for (i, item) in items.iter().enumerate() {
                    unknown.extend(unknown_fields(item_schema, item, &format!("{path}[{i}]")));
                }
            }
        }
        _ => {}
    }
    unknown
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(text: &str) -> Manifests {
        let mut manifests = Manifests::default();
        load_text(&mut manifests, Path::new("test.yaml"), text);
        manifests
    }

    #[test]
    fn loads_every_kind_and_pods_from_multi_document_text() {
        let manifests = load(
            r#"
apiVersion: routing.fabric.dev/v1alpha1
kind: RoutePolicy
metadata: {name: gold, namespace: fabric}
spec: {sidecarSelector: {}, priority: 5}
---
apiVersion: v1
kind: Pod
metadata:
  name: eu-1-0
  namespace: fabric
  labels: {routing.fabric.dev/node-id: eu-1, region: eu}
  annotations: {routing.fabric.dev/peer-address: "10.0.0.1:7400"}
---
apiVersion: routing.fabric.dev/v1alpha1
kind: LinkStateArea
metadata: {name: core}
spec: {areaId: core, memberSelector: {}}
"#,
        );
        assert!(manifests.issues.is_empty(), "{:?}", manifests.issues);
        assert_eq!(manifests.index.get::<RoutePolicy>("fabric", "gold").map(|p| p.spec.priority), Some(5));
        assert!(manifests.index.get::<LinkStateArea>(DEFAULT_NAMESPACE, "core").is_some(), "namespace defaults");
        let sidecar = manifests.index.sidecars().next().unwrap();
        assert_eq!(sidecar.node_id.as_str(), "eu-1");
        assert_eq!(sidecar.peer_address.as_deref(), Some("10.0.0.1:7400"));
    }

    #[test]
    fn unknown_kinds_are_warnings_and_bad_documents_name_file_and_index() {
        let manifests = load(
            r#"
apiVersion: apps/v1
kind: Deployment
metadata: {name: x}
---
apiVersion: routing.fabric.dev/v1alpha1
kind: RoutePolicy
metadata: {name: broken}
spec: {priority: "high"}
---
apiVersion: routing.fabric.dev/v1beta1
kind: RoutePolicy
metadata: {name: future}
"#,
        );
        let rendered: Vec<String> = manifests.issues.iter().map(ToString::to_string).collect();
        assert_eq!(rendered.len(), 3, "{rendered:#?}");
        assert!(rendered[0].starts_with("warning: test.yaml document 1: kind Deployment (apps/v1)"), "{}", rendered[0]);
        assert!(
            rendered[1].starts_with("error: test.yaml document 2 (RoutePolicy default/broken): does not match"),
            "{}",
            rendered[1]
        );
        assert!(rendered[2].contains("document 3") && rendered[2].contains("v1beta1 is not served"), "{}", rendered[2]);
        assert!(manifests.has_errors());
    }

    #[test]
    fn yaml_syntax_errors_stop_the_file_with_its_position() {
        let manifests = load("apiVersion: v1\nkind: Pod\nmetadata: {name: a}\n---\nkey: [unclosed\n");
        assert_eq!(manifests.index.sidecars().count(), 1);
        assert_eq!(manifests.issues.len(), 1);
        assert!(manifests.issues[0].to_string().starts_with("error: test.yaml document 2: not valid YAML"));
    }

    #[test]
    fn unknown_spec_fields_are_reported_with_their_path() {
        let manifests = load(
            r#"
apiVersion: routing.fabric.dev/v1alpha1
kind: NeighborPolicy
metadata: {name: mesh}
spec:
  sidecarSelector: {matchLabels: {a: b}}
  neighbors:
    - nodeId: eu-2
      link: {cost: 2, latencyMs: 3}
  priorty: 1
"#,
        );
        let messages: Vec<&str> = manifests.issues.iter().map(|i| i.message.as_str()).collect();
        assert_eq!(
            messages,
            [
                "spec.neighbors[0].link.latencyMs is not a field of NeighborPolicy; the API server would drop it",
                "spec.priorty is not a field of NeighborPolicy; the API server would drop it",
            ]
        );
        assert!(!manifests.has_errors(), "unknown fields are warnings");
        assert!(manifests.index.get::<NeighborPolicy>("default", "mesh").is_some());
    }

    #[test]
    fn duplicates_are_errors_and_the_first_stays() {
        let pod = "apiVersion: v1\nkind: Pod\nmetadata: {name: a, labels: {x: first}}\n";
        let manifests = load(&format!("{pod}---\n{}", pod.replace("first", "second")));
        assert_eq!(manifests.issues.len(), 1);
        assert!(manifests.issues[0].message.contains("defined twice; the first, in test.yaml document 1"));
        assert_eq!(manifests.index.sidecars().next().unwrap().labels["x"], "first");
    }
}
