//! What the admission webhooks decide, without the HTTP server: parsing an
//! AdmissionReview ([`review`]), injecting the sidecar into a pod
//! ([`inject`], as a JSON patch built with [`patch`]) and validating a
//! fabric object by compiling with it in place ([`validate`]).

pub mod inject;
mod patch;
pub mod review;
pub mod validate;

pub use inject::{CaSource, InjectError, InjectionSettings, inject};
pub use review::{BadReview, Outcome, review};
