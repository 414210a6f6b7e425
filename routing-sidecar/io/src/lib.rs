//! `fabric_io`: the IO edges the sidecar and the operator share, so that
//! neither binary links the other's runtime: logging and OpenTelemetry
//! setup ([`telemetry`]), Prometheus exposition ([`prometheus`]), the
//! metric definition tables both exports iterate ([`metric_table`]), the wall
//! clock as an engine `Timestamp` ([`clock`]), secret files ([`files`]) and
//! a loopback HTTP client for the sidecar's local API ([`local_http`]).

pub mod clock;
pub mod files;
pub mod local_http;
pub mod metric_table;
pub mod prometheus;
pub mod telemetry;
