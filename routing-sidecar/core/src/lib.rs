//! `fabric_core`: what every part of the fabric shares, with no IO.
//!
//! Typed ids, route messages and their canonical signing bytes, the wire
//! format, ed25519 keys and verification, the sidecar config with its
//! policy, the link-state update format and config, and the counters both
//! routing protocols report. The path-vector engine (`fabric_engine`), the
//! link-state router (`fabric_link_state`), the sidecar runtime and the
//! operator build on these; nothing here owns a socket, thread or clock.

pub mod canonical;
pub mod config;
pub mod deadline;
pub mod histogram;
pub mod ids;
pub mod link_state;
pub mod message;
pub mod policy;
pub mod security;
pub mod session;
pub mod shared_ids;
pub mod stats;
pub mod time;
pub mod wire;
pub mod wire_routing;

pub use config::SidecarConfig;
pub use ids::{DestinationId, KeyId, NodeId, Tag};
pub use message::{Message, RouteAnnouncement, RouteMetrics, RouteWithdrawal};
pub use time::Timestamp;
