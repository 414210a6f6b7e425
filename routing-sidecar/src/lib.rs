//! `fabric_sidecar`: the routing sidecar's runtime around the sans-IO
//! engines (`fabric_engine`, `fabric_link_state`): peer sessions over
//! TCP/TLS, the node actor that owns the engines and the clock, the local
//! HTTP API, metrics and telemetry, the state directory, the connection to
//! the operator ([`control`]).

pub mod control;
pub mod runtime;
