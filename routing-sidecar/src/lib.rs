//! `fabric_routing`: the sans-IO routing engine of the fabric routing sidecar.
//!
//! The engine takes inputs (messages received from neighbors, neighbor up or
//! down, timers, config) together with the current time, and produces
//! effects (route changes, messages to send, structured events). It owns no
//! sockets, threads or clocks, so every rule is testable by calling it.

pub mod canonical;
pub mod config;
pub mod control;
pub mod dampening;
pub mod deadline;
pub mod engine;
pub mod ids;
pub mod link_state;
pub mod message;
pub mod policy;
pub mod runtime;
pub mod security;
pub mod session;
pub mod shared_ids;
pub mod sim;
pub mod soak;
pub mod stats;
pub mod time;
pub mod wire;

pub use config::SidecarConfig;
pub use engine::{Effect, Engine, Event, RouteEvent};
pub use ids::{DestinationId, KeyId, NodeId, Tag};
pub use message::{Message, RouteAnnouncement, RouteMetrics, RouteWithdrawal};
pub use time::Timestamp;
