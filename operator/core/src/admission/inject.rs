//! The mutation itself, pure: [`inject`] looks at a Pod and the operator's
//! [`InjectionSettings`] and returns the JSON Patch that adds the routing
//! sidecar, `None` when the pod is to be left alone, or why it cannot be
//! injected. No IO, no clock: everything it needs is in its arguments.
//!
//! What a labelled pod gets (docs/install.md, "Sidecar injection"):
//!
//! - the container `routing-sidecar`: a native sidecar (an init container
//!   with `restartPolicy: Always`, Kubernetes 1.29+) placed first among the
//!   init containers, or a regular container appended to `containers` when
//!   native sidecars are off (operator setting, or the pod annotation
//!   `routing.fabric.dev/native-sidecar: "false"`);
//! - a projected volume `routing-sidecar-config` on
//!   `/var/run/secrets/fabric`: `token` (a ServiceAccount token for the
//!   operator's audience, 1 h, refreshed by the kubelet), `ca.crt` (the CA
//!   of the operator's serving certificate) and `bootstrap.yaml` (the
//!   sidecar's first config: its node id and the destinations it
//!   originates), the last two from pod annotations through the downward
//!   API, so nothing has to exist in the pod's namespace beforehand;
//! - a state volume `routing-sidecar-state` on `/var/lib/fabric`: an
//!   `emptyDir`, or the PVC named by `routing.fabric.dev/state-claim`.
//!
//! The node id must be known at admission: the `routing.fabric.dev/node-id`
//! label, else the pod's name. Pods created with `generateName` (those of a
//! Deployment or a Job) have no name yet when admission runs, so without
//! the label they are refused with a message that says so.

use std::collections::BTreeMap;

use fabric_core::SidecarConfig;
use k8s_openapi::api::core::v1::{
    Capabilities, ConfigMapProjection, Container, ContainerPort, DownwardAPIProjection, DownwardAPIVolumeFile,
    EmptyDirVolumeSource, EnvVar, EnvVarSource, KeyToPath, ObjectFieldSelector, PersistentVolumeClaimVolumeSource, Pod,
    ProjectedVolumeSource, ResourceRequirements, SeccompProfile, SecurityContext, ServiceAccountTokenProjection,
    Volume, VolumeMount, VolumeProjection,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use serde::Serialize;
use serde_json::Value;

use super::patch::{JsonPatch, escape};
use crate::names::{
    BOOTSTRAP_ANNOTATION, CONFIG_VOLUME, DEFAULT_METRICS_PORT, DEFAULT_PEER_PORT, INJECT_ANNOTATION,
    NATIVE_SIDECAR_ANNOTATION, NODE_ID_LABEL, OPERATOR_CA_ANNOTATION, ORIGINATE_ANNOTATION, PEER_PORT_ANNOTATION,
    SCRAPE_ANNOTATION, SCRAPE_PATH_ANNOTATION, SCRAPE_PORT_ANNOTATION, SIDECAR_CONTAINER, SIDECAR_LABEL,
    STATE_CLAIM_ANNOTATION, STATE_VOLUME,
};

/// Where [`CONFIG_VOLUME`] is mounted.
pub const CONFIG_DIR: &str = "/var/run/secrets/fabric";
/// Where [`STATE_VOLUME`] is mounted (`--state-dir`; also the image's
/// `FABRIC_STATE_DIR`).
pub const STATE_DIR: &str = "/var/lib/fabric";
/// The user of the images (distroless `nonroot`).
pub const SIDECAR_UID: i64 = 65532;
/// Size limit of the `emptyDir` state dir (configs and keys: kilobytes).
pub const STATE_SIZE_LIMIT: &str = "64Mi";

/// Where the sidecar finds the CA of the operator's serving certificate.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CaSource {
    /// The PEM itself: written into the pod's [`OPERATOR_CA_ANNOTATION`]
    /// and projected as `ca.crt` (nothing to create per namespace).
    Inline(String),
    /// A ConfigMap of the pod's namespace with the key `ca.crt` (e.g. one
    /// distributed by trust-manager).
    ConfigMap(String),
}

/// How the operator injects; built from its flags (`fabric-operator run
/// --sidecar-*`), the same for every pod.
#[derive(Clone, Debug, PartialEq)]
pub struct InjectionSettings {
    /// The `routing-sidecar` image.
    pub image: String,
    /// `Always`, `IfNotPresent`, `Never`; `None`: the cluster's default.
    pub image_pull_policy: Option<String>,
    /// What the sidecars dial: `https://<service>.<namespace>.svc:7600`.
    pub operator_url: String,
    /// The audience of the projected token (`--token-audience`).
    pub token_audience: String,
    /// Lifetime of the projected token; the kubelet renews it at 80 %.
    pub token_expiration_seconds: i64,
    /// `None`: no `--operator-ca` (a plaintext `http://` operator).
    pub ca: Option<CaSource>,
    /// Native sidecars (init container with `restartPolicy: Always`): the
    /// operator's decision from its flag and the cluster version; a pod can
    /// override it with [`NATIVE_SIDECAR_ANNOTATION`].
    pub native_sidecars: bool,
    /// The sidecar container's resources.
    pub resources: Option<ResourceRequirements>,
    /// The sidecar's local API (`--api`); keep it on localhost.
    pub api: String,
    /// The host of `--listen` (the port is the pod's peer port).
    pub listen_host: String,
    /// Peer TLS with certificates the operator issues
    /// (`--peer-tls-from-operator`; the operator runs with
    /// `--peer-ca-secret`).
    pub peer_tls_from_operator: bool,
    /// The sidecar's metrics listener on the pod IP (`--metrics-listen`,
    /// port `fabric-metrics`, `prometheus.io/*` annotations); `None`: none.
    pub metrics_port: Option<u16>,
}

impl InjectionSettings {
    /// Settings with the defaults for everything but what has none.
    pub fn new(image: impl Into<String>, operator_url: impl Into<String>, ca: Option<CaSource>) -> Self {
        Self {
            image: image.into(),
            image_pull_policy: None,
            operator_url: operator_url.into(),
            token_audience: crate::names::DEFAULT_AUDIENCE.to_string(),
            token_expiration_seconds: 3600,
            ca,
            native_sidecars: true,
            resources: None,
            api: "127.0.0.1:7480".to_string(),
            listen_host: "0.0.0.0".to_string(),
            peer_tls_from_operator: false,
            metrics_port: Some(DEFAULT_METRICS_PORT),
        }
    }
}

/// Why a labelled pod cannot get its sidecar. The message is what the
/// creator of the pod sees (the admission response's `status.message`).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum InjectError {
    #[error(
        "the pod has no name yet (generateName) and no {NODE_ID_LABEL} label, so its node id is not known at \
         admission: set the label {NODE_ID_LABEL} (unique per pod), or give the pod a fixed name (a StatefulSet does)"
    )]
    UnknownNodeId,
    #[error("annotation {key}: {value:?} {reason}")]
    Annotation { key: &'static str, value: String, reason: String },
    #[error("bootstrap config ({origin}): {reason}")]
    Bootstrap { origin: &'static str, reason: String },
    #[error("the pod already has a volume named {0}, which the routing sidecar needs; rename it")]
    VolumeName(String),
    #[error("the pod has no spec")]
    NoSpec,
}

fn annotation_error(key: &'static str, value: &str, reason: impl Into<String>) -> InjectError {
    InjectError::Annotation { key, value: value.to_string(), reason: reason.into() }
}

/// A boolean annotation: `true`, `false`, or absent.
fn flag(annotations: &BTreeMap<String, String>, key: &'static str) -> Result<Option<bool>, InjectError> {
    match annotations.get(key).map(|v| v.trim()) {
        None => Ok(None),
        Some("true") => Ok(Some(true)),
        Some("false") => Ok(Some(false)),
        Some(other) => Err(annotation_error(key, other, "is not \"true\" or \"false\"")),
    }
}

/// The JSON Patch that injects the routing sidecar into `pod`, or `None`
/// when the pod is left as it is: not labelled
/// `routing.fabric.dev/sidecar=true`, opted out with
/// `routing.fabric.dev/inject: "false"`, or already carrying a container
/// named `routing-sidecar`.
pub fn inject(pod: &Pod, settings: &InjectionSettings) -> Result<Option<JsonPatch>, InjectError> {
    let empty = BTreeMap::new();
    let labels = pod.metadata.labels.as_ref().unwrap_or(&empty);
    let annotations = pod.metadata.annotations.as_ref().unwrap_or(&empty);
    if labels.get(SIDECAR_LABEL).map(String::as_str) != Some("true") {
        return Ok(None);
    }
    if flag(annotations, INJECT_ANNOTATION)? == Some(false) {
        return Ok(None);
    }
    let spec = pod.spec.as_ref().ok_or(InjectError::NoSpec)?;
    let has_sidecar = |containers: Option<&Vec<Container>>| {
        containers.is_some_and(|list| list.iter().any(|c| c.name == SIDECAR_CONTAINER))
    };
    if has_sidecar(Some(&spec.containers)) || has_sidecar(spec.init_containers.as_ref()) {
        return Ok(None);
    }

    // The node id the operator will compile for (SidecarInfo::from_pod).
    let node_id = labels
        .get(NODE_ID_LABEL)
        .filter(|id| !id.is_empty())
        .or(pod.metadata.name.as_ref().filter(|name| !name.is_empty()))
        .ok_or(InjectError::UnknownNodeId)?;
    let native = flag(annotations, NATIVE_SIDECAR_ANNOTATION)?.unwrap_or(settings.native_sidecars);
    // The port the operator tells the other sidecars to dial (cluster/watch.rs).
    let peer_port = match annotations.get(PEER_PORT_ANNOTATION) {
        None => DEFAULT_PEER_PORT,
        Some(text) => match text.trim().parse::<u16>() {
            Ok(port) if port != 0 => port,
            _ => return Err(annotation_error(PEER_PORT_ANNOTATION, text, "is not a port (1-65535)")),
        },
    };
    let state_claim = match annotations.get(STATE_CLAIM_ANNOTATION) {
        Some(claim) if claim.trim().is_empty() => {
            return Err(annotation_error(STATE_CLAIM_ANNOTATION, claim, "is empty (name a PersistentVolumeClaim)"));
        }
        claim => claim.map(|c| c.trim().to_string()),
    };

    let mut new_annotations = BTreeMap::new();
    match annotations.get(BOOTSTRAP_ANNOTATION) {
        Some(text) => {
            if annotations.contains_key(ORIGINATE_ANNOTATION) {
                return Err(annotation_error(
                    ORIGINATE_ANNOTATION,
                    &annotations[ORIGINATE_ANNOTATION],
                    format!("cannot be combined with {BOOTSTRAP_ANNOTATION}: put `originate` in the bootstrap config"),
                ));
            }
            let config = SidecarConfig::from_yaml(text).map_err(|e| InjectError::Bootstrap {
                origin: BOOTSTRAP_ANNOTATION,
                reason: format!("{}: {}", e.field, e.reason),
            })?;
            if config.node_id.as_str() != node_id {
                return Err(InjectError::Bootstrap {
                    origin: BOOTSTRAP_ANNOTATION,
                    reason: format!(
                        "nodeId is {:?} but the pod's node id is {node_id:?} (its {NODE_ID_LABEL} label, else its \
                         name); the operator would refuse it",
                        config.node_id.as_str()
                    ),
                });
            }
        }
        None => {
            let originate = annotations.get(ORIGINATE_ANNOTATION).map(String::as_str).unwrap_or_default();
            new_annotations.insert(BOOTSTRAP_ANNOTATION.to_string(), bootstrap_config(node_id, originate)?);
        }
    }
    if let Some(CaSource::Inline(pem)) = &settings.ca {
        new_annotations.insert(OPERATOR_CA_ANNOTATION.to_string(), pem.clone());
    }
    if let Some(port) = settings.metrics_port
        && !annotations.contains_key(SCRAPE_ANNOTATION)
    {
        new_annotations.insert(SCRAPE_ANNOTATION.to_string(), "true".to_string());
        new_annotations.insert(SCRAPE_PORT_ANNOTATION.to_string(), port.to_string());
        new_annotations.insert(SCRAPE_PATH_ANNOTATION.to_string(), "/metrics".to_string());
    }

    let volumes = spec.volumes.as_deref().unwrap_or_default();
    for name in [CONFIG_VOLUME, STATE_VOLUME] {
        if volumes.iter().any(|v| v.name == name) {
            return Err(InjectError::VolumeName(name.to_string()));
        }
    }

    let mut patch = JsonPatch::default();
    if pod.metadata.annotations.is_none() {
        patch.add("/metadata/annotations", to_value(&new_annotations));
    } else {
        for (key, value) in &new_annotations {
            patch.add(format!("/metadata/annotations/{}", escape(key)), Value::String(value.clone()));
        }
    }
    let new_volumes = vec![config_volume(settings), state_volume(state_claim)];
    if spec.volumes.is_none() {
        patch.add("/spec/volumes", to_value(&new_volumes));
    } else {
        for volume in &new_volumes {
            patch.add("/spec/volumes/-", to_value(volume));
        }
    }
    let container = sidecar_container(settings, peer_port, native);
    if !native {
        patch.add("/spec/containers/-", to_value(&container));
    } else if spec.init_containers.is_none() {
        patch.add("/spec/initContainers", to_value(&vec![container]));
    } else {
        // First: the other init containers may already use the fabric.
        patch.add("/spec/initContainers/0", to_value(&container));
    }
    Ok(Some(patch))
}

fn to_value(value: &impl Serialize) -> Value {
    serde_json::to_value(value).expect("Kubernetes objects serialize")
}

/// The bootstrap config the sidecar starts with: its node id and what it
/// originates (comma-separated destinations). The operator sends the rest;
/// a snapshot without `originate` keeps this list. Validated as the sidecar
/// would, so a bad destination is refused at admission, not in a crash loop.
pub fn bootstrap_config(node_id: &str, originate: &str) -> Result<String, InjectError> {
    #[derive(Serialize)]
    #[serde(rename_all = "camelCase")]
    struct Bootstrap<'a> {
        node_id: &'a str,
        version: &'a str,
        #[serde(skip_serializing_if = "Vec::is_empty")]
        originate: Vec<Route<'a>>,
    }
    #[derive(Serialize)]
    struct Route<'a> {
        destination: &'a str,
    }
    let originate =
        originate.split(',').map(str::trim).filter(|d| !d.is_empty()).map(|destination| Route { destination });
    let bootstrap = Bootstrap { node_id, version: "bootstrap", originate: originate.collect() };
    let yaml = serde_norway::to_string(&bootstrap).expect("the bootstrap config serializes");
    let text = format!(
        "# Written by the fabric-operator injection webhook: the node id and the destinations\n\
         # of annotation {ORIGINATE_ANNOTATION}. The operator sends the rest.\n{yaml}"
    );
    SidecarConfig::from_yaml(&text).map_err(|e| InjectError::Bootstrap {
        origin: if e.field.starts_with("originate") { ORIGINATE_ANNOTATION } else { NODE_ID_LABEL },
        reason: format!("{}: {}", e.field, e.reason),
    })?;
    Ok(text)
}

fn field(path: &str) -> Option<ObjectFieldSelector> {
    Some(ObjectFieldSelector { field_path: path.to_string(), ..Default::default() })
}

fn annotation_file(path: &str, annotation: &str) -> DownwardAPIVolumeFile {
    DownwardAPIVolumeFile {
        path: path.to_string(),
        field_ref: field(&format!("metadata.annotations['{annotation}']")),
        ..Default::default()
    }
}

/// `token`, `ca.crt` and `bootstrap.yaml` in one projected volume.
fn config_volume(settings: &InjectionSettings) -> Volume {
    let mut sources = vec![VolumeProjection {
        service_account_token: Some(ServiceAccountTokenProjection {
            audience: Some(settings.token_audience.clone()),
            expiration_seconds: Some(settings.token_expiration_seconds),
            path: "token".to_string(),
        }),
        ..Default::default()
    }];
    let mut files = vec![annotation_file("bootstrap.yaml", BOOTSTRAP_ANNOTATION)];
    match &settings.ca {
        Some(CaSource::Inline(_)) => files.push(annotation_file("ca.crt", OPERATOR_CA_ANNOTATION)),
        Some(CaSource::ConfigMap(name)) => sources.push(VolumeProjection {
            config_map: Some(ConfigMapProjection {
                name: name.clone(),
                items: Some(vec![KeyToPath { key: "ca.crt".into(), path: "ca.crt".into(), mode: None }]),
                optional: None,
            }),
            ..Default::default()
        }),
        None => {}
    }
    sources.push(VolumeProjection {
        downward_api: Some(DownwardAPIProjection { items: Some(files) }),
        ..Default::default()
    });
    Volume {
        name: CONFIG_VOLUME.to_string(),
        projected: Some(ProjectedVolumeSource { sources: Some(sources), default_mode: None }),
        ..Default::default()
    }
}

fn state_volume(claim: Option<String>) -> Volume {
    let mut volume = Volume { name: STATE_VOLUME.to_string(), ..Default::default() };
    match claim {
        Some(claim_name) => {
            volume.persistent_volume_claim = Some(PersistentVolumeClaimVolumeSource { claim_name, read_only: None });
        }
        None => {
            volume.empty_dir =
                Some(EmptyDirVolumeSource { medium: None, size_limit: Some(Quantity(STATE_SIZE_LIMIT.into())) });
        }
    }
    volume
}

fn sidecar_container(settings: &InjectionSettings, peer_port: u16, native: bool) -> Container {
    let mut args: Vec<String> = [
        "run",
        "--config",
        &format!("{CONFIG_DIR}/bootstrap.yaml"),
        "--state-dir",
        STATE_DIR,
        "--listen",
        &host_port(&settings.listen_host, peer_port),
        "--api",
        &settings.api,
        "--operator",
        &settings.operator_url,
        "--operator-token-file",
        &format!("{CONFIG_DIR}/token"),
    ]
    .map(String::from)
    .into();
    if settings.ca.is_some() {
        args.extend([String::from("--operator-ca"), format!("{CONFIG_DIR}/ca.crt")]);
    }
    if settings.peer_tls_from_operator {
        args.push("--peer-tls-from-operator".into());
    }
    let mut ports = vec![ContainerPort {
        name: Some("fabric-peer".into()),
        container_port: i32::from(peer_port),
        protocol: Some("TCP".into()),
        ..Default::default()
    }];
    if let Some(port) = settings.metrics_port {
        args.extend([String::from("--metrics-listen"), host_port(&settings.listen_host, port)]);
        ports.push(ContainerPort {
            name: Some("fabric-metrics".into()),
            container_port: i32::from(port),
            protocol: Some("TCP".into()),
            ..Default::default()
        });
    }
    // The pod IP with the bound port; POD_NAME and POD_NAMESPACE are read
    // from the environment by the sidecar (--pod-name, --namespace).
    args.extend(["--advertise-address", "$(POD_IP)", "--log-format", "json"].map(String::from));
    let env = [("POD_NAME", "metadata.name"), ("POD_NAMESPACE", "metadata.namespace"), ("POD_IP", "status.podIP")].map(
        |(name, path)| EnvVar {
            name: name.to_string(),
            value_from: Some(EnvVarSource { field_ref: field(path), ..Default::default() }),
            ..Default::default()
        },
    );
    Container {
        name: SIDECAR_CONTAINER.to_string(),
        image: Some(settings.image.clone()),
        image_pull_policy: settings.image_pull_policy.clone(),
        args: Some(args),
        env: Some(env.into()),
        ports: Some(ports),
        resources: settings.resources.clone(),
        restart_policy: native.then(|| "Always".to_string()),
        security_context: Some(SecurityContext {
            allow_privilege_escalation: Some(false),
            capabilities: Some(Capabilities { drop: Some(vec!["ALL".into()]), add: None }),
            read_only_root_filesystem: Some(true),
            run_as_non_root: Some(true),
            run_as_user: Some(SIDECAR_UID),
            run_as_group: Some(SIDECAR_UID),
            seccomp_profile: Some(SeccompProfile { type_: "RuntimeDefault".into(), localhost_profile: None }),
            ..Default::default()
        }),
        volume_mounts: Some(vec![
            VolumeMount {
                name: CONFIG_VOLUME.to_string(),
                mount_path: CONFIG_DIR.to_string(),
                read_only: Some(true),
                ..Default::default()
            },
            VolumeMount { name: STATE_VOLUME.to_string(), mount_path: STATE_DIR.to_string(), ..Default::default() },
        ]),
        ..Default::default()
    }
}

fn host_port(host: &str, port: u16) -> String {
    match host.parse::<std::net::IpAddr>() {
        Ok(ip) => std::net::SocketAddr::new(ip, port).to_string(),
        Err(_) => format!("{host}:{port}"),
    }
}

/// Whether an API server of this version runs native sidecars by default
/// (the `SidecarContainers` feature is beta and on since 1.29). `None` when
/// the version does not parse (then the caller falls back to regular
/// containers). Minor versions such as `29+` (GKE, EKS) count as 29.
pub fn native_sidecars_supported(major: &str, minor: &str) -> Option<bool> {
    let digits = |text: &str| text.trim().chars().take_while(char::is_ascii_digit).collect::<String>().parse::<u32>();
    let (major, minor) = (digits(major).ok()?, digits(minor).ok()?);
    Some(major > 1 || (major == 1 && minor >= 29))
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::PodSpec;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

    fn settings() -> InjectionSettings {
        InjectionSettings::new(
            "routing-sidecar:0.1.0",
            "https://fabric.fabric-system.svc:7600",
            Some(CaSource::Inline("-----BEGIN CERTIFICATE-----\nCA\n-----END CERTIFICATE-----\n".into())),
        )
    }

    fn pod(labels: &[(&str, &str)], annotations: &[(&str, &str)]) -> Pod {
        let map = |pairs: &[(&str, &str)]| {
            (!pairs.is_empty()).then(|| pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect())
        };
        Pod {
            metadata: ObjectMeta {
                name: Some("edge-0".into()),
                labels: map(labels),
                annotations: map(annotations),
                ..Default::default()
            },
            spec: Some(PodSpec {
                containers: vec![Container { name: "app".into(), image: Some("app:1".into()), ..Default::default() }],
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    const LABEL: (&str, &str) = (SIDECAR_LABEL, "true");

    /// Applies an add-only patch (the tests' own reading of RFC 6902).
    fn apply(pod: &Pod, patch: &JsonPatch) -> Pod {
        let mut doc = serde_json::to_value(pod).unwrap();
        for super::super::patch::PatchOperation::Add { path, value } in &patch.0 {
            let tokens: Vec<String> =
                path.split('/').skip(1).map(|t| t.replace("~1", "/").replace("~0", "~")).collect();
            let (last, parents) = tokens.split_last().unwrap();
            let mut target = &mut doc;
            for token in parents {
                target = match target {
                    Value::Object(map) => map.get_mut(token).unwrap_or_else(|| panic!("{path}: no {token}")),
                    Value::Array(list) => &mut list[token.parse::<usize>().unwrap()],
                    _ => panic!("{path}: {token} in a scalar"),
                };
            }
            match target {
                Value::Object(map) => {
                    map.insert(last.clone(), value.clone());
                }
                Value::Array(list) if last == "-" => list.push(value.clone()),
                Value::Array(list) => list.insert(last.parse().unwrap(), value.clone()),
                _ => panic!("{path}: parent is a scalar"),
            }
        }
        serde_json::from_value(doc).unwrap()
    }

    fn injected(pod: &Pod, settings: &InjectionSettings) -> Pod {
        apply(pod, &inject(pod, settings).unwrap().expect("a patch"))
    }

    #[test]
    fn pods_without_the_label_are_left_alone() {
        assert_eq!(inject(&pod(&[], &[]), &settings()), Ok(None));
        assert_eq!(inject(&pod(&[(SIDECAR_LABEL, "false")], &[]), &settings()), Ok(None));
        assert_eq!(inject(&pod(&[LABEL], &[(INJECT_ANNOTATION, "false")]), &settings()), Ok(None));
    }

    #[test]
    fn a_native_sidecar_comes_first_among_init_containers() {
        let mut with_init = pod(&[LABEL], &[]);
        with_init.spec.as_mut().unwrap().init_containers =
            Some(vec![Container { name: "migrate".into(), ..Default::default() }]);
        let spec = injected(&with_init, &settings()).spec.unwrap();
        let init: Vec<_> = spec.init_containers.unwrap().into_iter().map(|c| (c.name, c.restart_policy)).collect();
        assert_eq!(init, [("routing-sidecar".into(), Some("Always".into())), ("migrate".into(), None)]);
        assert_eq!(spec.containers.len(), 1);
    }

    #[test]
    fn without_native_sidecars_it_is_a_regular_container() {
        let off = InjectionSettings { native_sidecars: false, ..settings() };
        let spec = injected(&pod(&[LABEL], &[]), &off).spec.unwrap();
        let names: Vec<_> = spec.containers.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(names, ["app", "routing-sidecar"]);
        assert_eq!(spec.containers[1].restart_policy, None);
        assert_eq!(spec.init_containers, None);
        // The annotation wins both ways.
        let spec = injected(&pod(&[LABEL], &[(NATIVE_SIDECAR_ANNOTATION, "true")]), &off).spec.unwrap();
        assert_eq!(spec.init_containers.unwrap()[0].name, "routing-sidecar");
        let spec = injected(&pod(&[LABEL], &[(NATIVE_SIDECAR_ANNOTATION, "false")]), &settings()).spec.unwrap();
        assert_eq!(spec.containers.len(), 2);
    }

    #[test]
    fn the_container_dials_the_operator_with_the_projected_token() {
        let spec = injected(&pod(&[LABEL], &[(PEER_PORT_ANNOTATION, "7443")]), &settings()).spec.unwrap();
        let sidecar = &spec.init_containers.as_ref().unwrap()[0];
        let args = sidecar.args.as_ref().unwrap().join(" ");
        assert_eq!(
            args,
            "run --config /var/run/secrets/fabric/bootstrap.yaml --state-dir /var/lib/fabric --listen 0.0.0.0:7443 \
             --api 127.0.0.1:7480 --operator https://fabric.fabric-system.svc:7600 \
             --operator-token-file /var/run/secrets/fabric/token --operator-ca /var/run/secrets/fabric/ca.crt \
             --metrics-listen 0.0.0.0:7481 --advertise-address $(POD_IP) --log-format json"
        );
        let ports: Vec<(Option<&str>, i32)> =
            sidecar.ports.as_ref().unwrap().iter().map(|p| (p.name.as_deref(), p.container_port)).collect();
        assert_eq!(ports, [(Some("fabric-peer"), 7443), (Some("fabric-metrics"), 7481)]);
        let security = sidecar.security_context.as_ref().unwrap();
        assert_eq!(
            (security.run_as_non_root, security.read_only_root_filesystem, security.allow_privilege_escalation),
            (Some(true), Some(true), Some(false))
        );
        let volumes = spec.volumes.unwrap();
        let projected = volumes[0].projected.as_ref().unwrap().sources.as_ref().unwrap();
        let token = projected[0].service_account_token.as_ref().unwrap();
        assert_eq!((token.audience.as_deref(), token.expiration_seconds), (Some("fabric-operator"), Some(3600)));
        assert!(volumes[1].empty_dir.is_some());
        // With operator-issued peer certificates, the sidecar asks for one.
        let settings = InjectionSettings { peer_tls_from_operator: true, ..settings() };
        let spec = injected(&pod(&[LABEL], &[]), &settings).spec.unwrap();
        let args = spec.init_containers.as_ref().unwrap()[0].args.clone().unwrap();
        assert_eq!(args.iter().filter(|a| *a == "--peer-tls-from-operator").count(), 1, "{args:?}");
    }

    #[test]
    fn the_bootstrap_config_names_the_node_and_what_it_originates() {
        let pod = injected(&pod(&[LABEL, (NODE_ID_LABEL, "eu-1")], &[(ORIGINATE_ANNOTATION, "web, api")]), &settings());
        let annotations = pod.metadata.annotations.unwrap();
        let config = SidecarConfig::from_yaml(&annotations[BOOTSTRAP_ANNOTATION]).unwrap();
        assert_eq!(config.node_id.as_str(), "eu-1");
        let originate: Vec<_> = config.originate.iter().map(|r| r.destination.to_string()).collect();
        assert_eq!(originate, ["web", "api"]);
        assert!(annotations[OPERATOR_CA_ANNOTATION].starts_with("-----BEGIN CERTIFICATE-----"));
        // Existing annotations are kept, new ones added one by one.
        let patch = inject(&super::tests::pod(&[LABEL], &[("team", "a")]), &settings()).unwrap().unwrap();
        let paths: Vec<_> = patch.0.iter().map(|super::super::patch::PatchOperation::Add { path, .. }| path).collect();
        assert_eq!(
            paths[..5],
            [
                "/metadata/annotations/prometheus.io~1path",
                "/metadata/annotations/prometheus.io~1port",
                "/metadata/annotations/prometheus.io~1scrape",
                "/metadata/annotations/routing.fabric.dev~1bootstrap-config",
                "/metadata/annotations/routing.fabric.dev~1operator-ca"
            ]
        );
    }

    #[test]
    fn the_pod_is_annotated_for_scraping_unless_it_says_otherwise() {
        let annotations = |pod: Pod| pod.metadata.annotations.unwrap();
        let plain = annotations(injected(&pod(&[LABEL], &[]), &settings()));
        let scrape: Vec<(&str, &str)> = plain
            .iter()
            .filter(|(k, _)| k.starts_with("prometheus.io/"))
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        assert_eq!(
            scrape,
            [("prometheus.io/path", "/metrics"), ("prometheus.io/port", "7481"), ("prometheus.io/scrape", "true")]
        );
        // The app scrapes its own port: left alone (a pod has one such port).
        let own = [("prometheus.io/scrape", "true"), ("prometheus.io/port", "8080")];
        let kept = annotations(injected(&pod(&[LABEL], &own), &settings()));
        assert_eq!((kept["prometheus.io/port"].as_str(), kept.get("prometheus.io/path")), ("8080", None));
        // Without a metrics listener, nothing to scrape.
        let off = InjectionSettings { metrics_port: None, ..settings() };
        let none = annotations(injected(&pod(&[LABEL], &[]), &off));
        assert!(!none.contains_key("prometheus.io/scrape"));
        let spec = injected(&pod(&[LABEL], &[]), &off).spec.unwrap();
        let args = spec.init_containers.unwrap()[0].args.clone().unwrap();
        assert!(!args.contains(&"--metrics-listen".to_owned()), "{args:?}");
    }

    #[test]
    fn a_generate_name_pod_needs_the_node_id_label() {
        let mut nameless = pod(&[LABEL], &[]);
        nameless.metadata.name = None;
        nameless.metadata.generate_name = Some("web-7d9f-".into());
        assert_eq!(inject(&nameless, &settings()), Err(InjectError::UnknownNodeId));
        nameless.metadata.labels.as_mut().unwrap().insert(NODE_ID_LABEL.into(), "web".into());
        assert!(inject(&nameless, &settings()).unwrap().is_some());
    }

    #[test]
    fn bad_annotations_are_refused_with_their_name() {
        for (key, value) in [
            (PEER_PORT_ANNOTATION, "0"),
            (PEER_PORT_ANNOTATION, "http"),
            (NATIVE_SIDECAR_ANNOTATION, "yes"),
            (STATE_CLAIM_ANNOTATION, " "),
        ] {
            let error = inject(&pod(&[LABEL], &[(key, value)]), &settings()).unwrap_err();
            assert!(error.to_string().starts_with(&format!("annotation {key}: ")), "{error}");
        }
        let error = inject(&pod(&[LABEL], &[(BOOTSTRAP_ANNOTATION, "nodeId: other\n")]), &settings()).unwrap_err();
        assert!(error.to_string().contains("nodeId is \"other\" but the pod's node id is \"edge-0\""), "{error}");
        let error = inject(&pod(&[LABEL], &[(BOOTSTRAP_ANNOTATION, "nodeId: [\n")]), &settings()).unwrap_err();
        assert!(matches!(error, InjectError::Bootstrap { .. }), "{error}");
    }

    #[test]
    fn a_pod_bringing_its_bootstrap_config_keeps_it() {
        let own = "nodeId: edge-0\noriginate:\n  - destination: web\n";
        let pod = injected(&pod(&[LABEL], &[(BOOTSTRAP_ANNOTATION, own)]), &settings());
        assert_eq!(pod.metadata.annotations.unwrap()[BOOTSTRAP_ANNOTATION], own);
    }

    #[test]
    fn an_injected_pod_is_left_alone() {
        let once = injected(&pod(&[LABEL], &[]), &settings());
        assert_eq!(inject(&once, &settings()), Ok(None));
        let regular = injected(&pod(&[LABEL], &[]), &InjectionSettings { native_sidecars: false, ..settings() });
        assert_eq!(inject(&regular, &settings()), Ok(None));
    }

    #[test]
    fn volume_names_do_not_collide_silently() {
        let mut taken = pod(&[LABEL], &[]);
        taken.spec.as_mut().unwrap().volumes = Some(vec![Volume { name: STATE_VOLUME.into(), ..Default::default() }]);
        assert_eq!(inject(&taken, &settings()), Err(InjectError::VolumeName(STATE_VOLUME.into())));
    }

    #[test]
    fn state_on_a_claim_and_ca_from_a_config_map() {
        let settings = InjectionSettings { ca: Some(CaSource::ConfigMap("fabric-operator-ca".into())), ..settings() };
        let pod = injected(&pod(&[LABEL], &[(STATE_CLAIM_ANNOTATION, "edge-0-state")]), &settings);
        assert!(!pod.metadata.annotations.unwrap().contains_key(OPERATOR_CA_ANNOTATION));
        let volumes = pod.spec.unwrap().volumes.unwrap();
        let sources = volumes[0].projected.as_ref().unwrap().sources.as_ref().unwrap();
        assert_eq!(sources[1].config_map.as_ref().unwrap().name, "fabric-operator-ca");
        assert_eq!(volumes[1].persistent_volume_claim.as_ref().unwrap().claim_name, "edge-0-state");
    }

    #[test]
    fn cluster_versions() {
        assert_eq!(native_sidecars_supported("1", "29"), Some(true));
        assert_eq!(native_sidecars_supported("1", "33+"), Some(true));
        assert_eq!(native_sidecars_supported("1", "28"), Some(false));
        assert_eq!(native_sidecars_supported("2", "0"), Some(true));
        assert_eq!(native_sidecars_supported("1", ""), None);
    }
}
