//! The sidecar's connection to the operator (`routing-sidecar run
//! --operator URL`): the config distribution protocol ([`proto`], shared
//! with the operator's server) and the client that applies what the
//! operator pushes ([`client`]). See docs/sidecar.md, "Operator connection".

pub mod client;
pub mod proto;

pub use client::{ControlOptions, run};
