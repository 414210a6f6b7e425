//! `fabric_testkit`: what the tests and benches of the workspace share, so
//! that no crate keeps its own copy. A dev-dependency only.
//!
//! - [`counting_alloc`]: a global allocator that counts live heap bytes
//!   and blocks, for the memory benches;
//! - [`golden`]: comparing and blessing (`FABRIC_BLESS=1`) golden files.

pub mod counting_alloc;
pub mod golden;
