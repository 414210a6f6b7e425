//! `fabric_operator`: the CRDs of the fabric routing operator and its pure
//! core, the index of objects and sidecars and the compiler from them to one
//! `SidecarConfig` per sidecar. No IO here except `manifests` (reading a
//! folder for `analyze`); see `docs/operator.md`.

pub mod analyze;
pub mod api;
pub mod cluster;
pub mod compile;
pub mod crd_reference;
pub mod crds;
pub mod distribution;
pub mod duration;
pub mod identity_flags;
pub mod index;
pub mod manifests;
pub mod metrics;
pub mod peer_ca;
pub mod plan;
pub mod plugin;
pub mod rotation;
pub mod selector;
pub mod time;
pub mod validation;
pub mod webhook;
