//! The CRDs of API group `routing.fabric.dev`, version `v1alpha1`, all
//! namespaced with a status subresource. Field reference: `docs/crds.md`.

pub mod duration;
pub mod filter;
pub mod link_state_area;
pub mod neighbor_policy;
pub mod route_key;
pub mod route_policy;
pub mod rules;
mod status;

pub use filter::{MatchList, PolicyMode, RouteFilter, TagRules};
pub use link_state_area::{LinkStateArea, LinkStateAreaSpec, RoutingMode, SummaryFilterSpec};
pub use neighbor_policy::{LinkSpec, NeighborPolicy, NeighborPolicySpec, NeighborSpec};
pub use route_key::{
    ExternalKey, KeyAlgorithm, KeyManagement, KeyState, PublishedKey, RouteKey, RouteKeySpec, RouteKeyStatus,
};
pub use route_policy::{DampeningSpec, RoutePolicy, RoutePolicySpec, SecuritySpec, StabilitySpec, TieBreaker};
pub use status::{AppliedStatus, Condition, ConditionStatus, SidecarNack};

pub const VERSION: &str = "v1alpha1";
