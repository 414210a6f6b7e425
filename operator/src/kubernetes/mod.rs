//! What the operator's Kubernetes adapters share: publishing Events
//! ([`events`]) and reading objects that may not decode ([`lenient`]).

pub mod events;
pub mod lenient;
