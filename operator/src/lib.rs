//! `fabric_operator`: the operator around its pure core
//! (`fabric_operator_core`): the gRPC config distribution server and the
//! distributor state it serves, key rotation with its stores, the webhook
//! server, the Kubernetes watches, leader election and status writer, the
//! two modes (cluster and local), `/metrics` and the kubectl plugin. See
//! `docs/operator.md`.

pub mod cluster;
pub mod distribution;
pub mod identity_flags;
pub mod metrics;
pub mod plugin;
pub mod rotation;
pub mod webhook;
