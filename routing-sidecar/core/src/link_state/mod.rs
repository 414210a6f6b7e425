//! What of link-state mode the rest of the fabric shares: the area id, the
//! signed update and its checks, the area graph and summary filters, and
//! `LinkStateConfig`. The router that floods, stores and runs SPF over
//! these lives in `fabric_link_state`; the wire format (`crate::wire`) and
//! the sidecar config (`crate::config`) need only what is here.

pub mod area;
pub mod area_id;
pub mod config;
pub mod lsa;

pub use area::{AreaGraph, AreaGraphError, AreaPair, ExportCounts, SummaryFilter, SummaryPolicy};
pub use area_id::AreaId;
pub use config::{AreaConfig, LinkStateConfig, LinkStateLimits, LsdbLimits, RoutingMode, SpfThrottleConfig};
pub use lsa::{AreaSummary, DestinationAdvert, LinkAdvert, LinkStateUpdate, SummaryDestination, SummaryEntry};
