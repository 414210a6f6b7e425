//! `fabric_testkit`: what the tests and benches of the workspace share, so
//! that no crate keeps its own copy. A dev-dependency only.
//!
//! Always there:
//! - [`counting_alloc`]: a global allocator that counts live heap bytes
//!   and blocks, for the memory benches;
//! - [`golden`]: comparing and blessing (`FABRIC_BLESS=1`) golden files;
//! - [`machine`]: the machine a bench ran on and what a process uses, and
//!   percentiles of timing samples.
//!
//! Behind features, so each crate builds only what its tests use:
//! - `process`: [`wait`] (polling with a deadline), [`process`] (the
//!   sidecar binary, scratch directories, a local-mode operator process)
//!   and [`builders`] (operator manifests, operator-fed sidecars);
//! - `engine`: [`engine_builders`] (engine configs, messages, bench
//!   workloads);
//! - `link-state`: [`link_state_sim`] (an in-memory network of link-state
//!   routers);
//! - `operator`: [`operator_topology`] (the fabric the operator benches
//!   compile) and [`real_api`] (CRDs and tools of the real-API tests).

pub mod counting_alloc;
pub mod golden;
pub mod machine;

#[cfg(feature = "process")]
pub mod builders;
#[cfg(feature = "process")]
pub mod process;
#[cfg(feature = "process")]
pub mod wait;

#[cfg(feature = "engine")]
pub mod engine_builders;

#[cfg(feature = "link-state")]
pub mod link_state_sim;

#[cfg(feature = "operator")]
pub mod operator_topology;
#[cfg(feature = "operator")]
pub mod real_api;
