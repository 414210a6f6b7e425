//! The CRDs of API group `routing.fabric.dev`, version `v1alpha1`, all
//! namespaced with a status subresource. Field reference: `docs/crds.md`.

pub mod filter;
pub mod link_state_area;
pub mod neighbor_policy;
pub mod route_key;
pub mod route_policy;
pub mod rules;
pub mod status;

pub use filter::{MatchList, PolicyMode, RouteFilter, TagRules};
pub use link_state_area::{LinkStateArea, LinkStateAreaSpec, RoutingMode, SummaryFilterSpec};
pub use neighbor_policy::{LinkSpec, NeighborPolicy, NeighborPolicySpec, NeighborSpec};
pub use route_key::{
    ExternalKey, KeyAlgorithm, KeyManagement, KeyState, PublishedKey, RouteKey, RouteKeySpec, RouteKeyStatus,
};
pub use route_policy::{DampeningSpec, RoutePolicy, RoutePolicySpec, SecuritySpec, StabilitySpec, TieBreaker};
pub use status::{AppliedStatus, Condition, ConditionStatus, SidecarNack};

pub const GROUP: &str = "routing.fabric.dev";
pub const VERSION: &str = "v1alpha1";
pub const API_VERSION: &str = "routing.fabric.dev/v1alpha1";

/// Pod label carrying the sidecar's node id (default: the pod name).
pub const NODE_ID_LABEL: &str = "routing.fabric.dev/node-id";
/// Pod annotation carrying the `host:port` other sidecars dial.
pub const PEER_ADDRESS_ANNOTATION: &str = "routing.fabric.dev/peer-address";
