//! Every name the operator shares with Kubernetes objects: the API group,
//! labels, annotations, the injected container's names and default ports.
//! One place, so the compiler, the injector, the watches and the tests
//! cannot disagree on a spelling.

// The API group and version of the CRDs.

pub const GROUP: &str = "routing.fabric.dev";
pub const API_VERSION: &str = "routing.fabric.dev/v1alpha1";

// Labels on fabric pods.

/// Pod label carrying the sidecar's node id (default: the pod name).
pub const NODE_ID_LABEL: &str = "routing.fabric.dev/node-id";
/// The label the sidecar injection puts on every pod that runs a routing
/// sidecar; only pods with `routing.fabric.dev/sidecar=true` are watched.
pub const SIDECAR_LABEL: &str = "routing.fabric.dev/sidecar";
/// The pod watch's label selector.
pub const SIDECAR_LABEL_SELECTOR: &str = "routing.fabric.dev/sidecar=true";

// Annotations on fabric pods, read by the operator and the injector.

/// Pod annotation carrying the `host:port` other sidecars dial.
pub const PEER_ADDRESS_ANNOTATION: &str = "routing.fabric.dev/peer-address";
/// Pod annotation: the port other sidecars dial, when the pod has no
/// `routing.fabric.dev/peer-address` annotation (the address is then
/// `<podIP>:<port>`).
pub const PEER_PORT_ANNOTATION: &str = "routing.fabric.dev/peer-port";
/// Pod annotation: `"false"` leaves a labelled pod alone (its sidecar is
/// written by hand, or it is only to be watched).
pub const INJECT_ANNOTATION: &str = "routing.fabric.dev/inject";
/// Pod annotation: `"false"` makes the sidecar a regular container, `"true"`
/// a native sidecar, whatever the operator's setting.
pub const NATIVE_SIDECAR_ANNOTATION: &str = "routing.fabric.dev/native-sidecar";
/// Pod annotation: the destinations the pod serves, comma-separated; they go
/// into the generated bootstrap config (`originate`).
pub const ORIGINATE_ANNOTATION: &str = "routing.fabric.dev/originate";
/// Pod annotation: the sidecar's bootstrap config (a `SidecarConfig` YAML).
/// Written by the webhook unless the pod brings its own (then it is
/// validated and its `nodeId` must be the pod's node id).
pub const BOOTSTRAP_ANNOTATION: &str = "routing.fabric.dev/bootstrap-config";
/// Pod annotation: the PEM CA of the operator's serving certificate,
/// written by the webhook (with [`CaSource::Inline`]).
pub const OPERATOR_CA_ANNOTATION: &str = "routing.fabric.dev/operator-ca";
/// Pod annotation: a PersistentVolumeClaim (same namespace) for the state
/// dir instead of an `emptyDir`, so the last good config survives the pod.
pub const STATE_CLAIM_ANNOTATION: &str = "routing.fabric.dev/state-claim";

// Prometheus scrape annotations the injector adds.

/// Annotation-based scraping (the Prometheus community convention). Set on
/// an injected pod unless it already says whether to scrape it: one pod
/// has one such port, and an app's own is not overwritten.
pub const SCRAPE_ANNOTATION: &str = "prometheus.io/scrape";
pub const SCRAPE_PORT_ANNOTATION: &str = "prometheus.io/port";
pub const SCRAPE_PATH_ANNOTATION: &str = "prometheus.io/path";

// The injected container, its volumes and ports.

/// The name of the injected container; a pod that already has a container
/// or init container of this name is left alone (idempotence, and the way
/// to write the sidecar by hand).
pub const SIDECAR_CONTAINER: &str = "routing-sidecar";
/// The projected volume: token, CA, bootstrap config.
pub const CONFIG_VOLUME: &str = "routing-sidecar-config";
/// The state dir volume.
pub const STATE_VOLUME: &str = "routing-sidecar-state";
/// The peer port when neither annotation is set.
pub const DEFAULT_PEER_PORT: u16 = 7443;
/// The port of the injected sidecar's metrics listener by default.
pub const DEFAULT_METRICS_PORT: u16 = 7481;

// Who the operator is: in Events, and the audience of sidecar tokens.

/// `reportingController` of every event.
pub const REPORTER: &str = "fabric-operator";
/// The audience sidecars' projected tokens are issued for (the
/// `serviceAccountToken.audience` of their volume).
pub const DEFAULT_AUDIENCE: &str = "fabric-operator";
