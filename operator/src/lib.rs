//! `fabric_operator`: the operator around its pure core
//! (`fabric_operator_core`). Adapters: the gRPC config distribution server
//! and the [`distribution::Distributor`], which drives the core's
//! distribution state machine over the streams ([`distribution`]), the
//! admin HTTP endpoints ([`admin_http`], [`metrics`]), the OTLP metrics
//! export ([`otlp_metrics`]), the webhook server
//! ([`webhook`]), the Kubernetes API ([`kubernetes`]: Events, lenient
//! decoding), key rotation with its stores ([`rotation`]). Modes: [`local`]
//! (manifests from a folder) and [`cluster`] (watches, leader election,
//! status writer). And the kubectl plugin ([`plugin`]). See
//! `docs/operator.md`; no module imports one that imports it
//! (`tests/module_graph.rs`).

mod admin_http;
pub mod cluster;
pub mod distribution;
pub mod identity_flags;
pub mod kubernetes;
mod listener;
pub mod local;
pub mod metrics;
pub mod otlp_metrics;
pub mod plugin;
pub mod rotation;
mod shutdown;
pub mod tls;
pub mod webhook;
