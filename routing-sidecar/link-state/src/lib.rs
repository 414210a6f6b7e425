//! Link-state mode (OSPF-like), optional next to the default path-vector
//! protocol; see `docs/link-state.md`.
//!
//! Each node floods, within each of its areas, a signed update listing its
//! links; every node of the area keeps the newest update per origin (the
//! LSDB), builds the area's graph from it and runs SPF from itself, keeping
//! every equal-cost first hop. Area border routers summarize child areas
//! into their parent areas, subject to filters and compression caps.
//!
//! The update format, the area graph and `LinkStateConfig` are shared with
//! the wire format and the sidecar config, so they live in
//! `fabric_core::link_state` (re-exported here): `area_id` (the `AreaId`
//! typed id), `lsa` (updates, their checks, canonical signing bytes,
//! sign/verify), `area` (area graph, summary filters, compression, export
//! planning) and `config` (`LinkStateConfig`).
//!
//! Modules of this crate, each doing one thing:
//! - `lsdb`: the per-area database and its flooding and ageing rules;
//! - `topology`: the dense (CSR) graph SPF runs on;
//! - `spf`: Dijkstra with complete equal-cost next-hop sets;
//! - `spf_throttle`: when route computation runs after changes;
//! - `routes`: area views and the merged route table;
//! - `destinations`: routes to the destination names nodes advertise;
//! - `explain`: why a route is what it is;
//! - `mode`: path-vector, prefer link-state, or link-state only;
//! - `stats`: counters and the status snapshot;
//! - `router`: the sans-IO state machine tying it together.

pub mod destinations;
mod explain;
pub mod lsdb;
mod mode;
mod router;
pub mod routes;
pub mod spf;
mod spf_throttle;
pub mod stats;
pub mod topology;

pub use destinations::{DestinationExplanation, DestinationRoute, DestinationRouteChange, LocalDestination};
pub use explain::RouteExplanation;
pub use fabric_core::link_state::{
    AreaConfig, AreaGraph, AreaGraphError, AreaId, AreaPair, AreaSummary, DestinationAdvert, ExportCounts, LinkAdvert,
    LinkStateConfig, LinkStateLimits, LinkStateUpdate, LsdbLimits, RoutingMode, SpfThrottleConfig, SummaryDestination,
    SummaryEntry, SummaryFilter, SummaryPolicy, area, area_id, config, lsa,
};
pub use mode::{ModeDecision, PathVectorChoice, Protocol, decide};
pub use router::{LinkStateEvent, LinkStateInput, LinkStateOutput, LinkStateRouter, LocalLink, OutgoingUpdate};
pub use routes::{LinkStateRoute, RouteChange, RouteScope};
pub use stats::{LinkStateSnapshot, UpdateRejectReason};
pub use topology::Topology;
