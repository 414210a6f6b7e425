//! `fabric_operator_core`: the operator's pure core, with no client, server
//! or runtime. The CRD types ([`api`]) and their schemas ([`crds`]), the
//! [`index`] of objects and sidecars, the [`compile`]r from them to one
//! `SidecarConfig` per sidecar, config distribution as a state machine
//! ([`distribution`]: who is connected, which ACK counts, who is pushed
//! what), the status roll-up from ACKs ([`sync_status`]) and the status
//! and Events it writes on objects ([`object_status`]), key rotation
//! planning ([`rotation_plan`]), the admission logic of the injecting and
//! validating webhooks ([`admission`]), the peer CA ([`peer_ca`]), offline
//! analysis and plans ([`analyze`], [`plan`]) and every Kubernetes name the
//! operator uses ([`names`]). The only IO is [`manifests`] reading a folder
//! of YAML for `analyze`; time comes in as arguments. The `operator` crate puts this behind gRPC, HTTP and the
//! Kubernetes API; see `docs/operator.md`.

pub mod admission;
pub mod analyze;
pub mod api;
pub mod compile;
pub mod crd_reference;
pub mod crds;
pub mod distribution;
pub mod index;
pub mod manifests;
pub mod names;
pub mod object_status;
pub mod peer_ca;
mod plan;
pub mod rotation_plan;
mod selector;
pub mod sync_status;
pub mod time;
pub mod validation;
