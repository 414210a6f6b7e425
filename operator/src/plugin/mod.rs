//! The kubectl plugin `kubectl-fabric` (`operator/src/bin/kubectl-fabric.rs`,
//! docs/kubectl-fabric.md): reads a sidecar's local API (`/routes`,
//! `/routes/{destination}/explain`) and the operator's `/sidecars`, and runs
//! the offline `analyze`.
//!
//! - [`render`]: pure functions from the APIs' JSON to the tables and traces
//!   the plugin prints (unit-tested on recorded answers);
//! - [`client`]: address parsing, the HTTP GET and its error messages (which
//!   name the address and the `kubectl port-forward` to run);
//! - [`port_forward`]: `--pod`, a `kubectl port-forward` on a random local
//!   port for the duration of one command.

pub mod check;
pub mod client;
pub mod port_forward;
pub mod render;
pub mod status;

/// Exit status: the command did its job (and, for `analyze`, found no error).
pub const EXIT_OK: u8 = 0;
/// `analyze` found errors or conflicts; `explain`: the sidecar knows nothing
/// about the destination.
pub const EXIT_FINDINGS: u8 = 1;
/// Bad usage (clap's own code) or local input that cannot be read (the
/// manifest folder of `analyze`).
pub const EXIT_USAGE: u8 = 2;
/// The sidecar or operator could not be reached (or `kubectl port-forward`
/// failed), or answered something else than expected.
pub const EXIT_UNREACHABLE: u8 = 3;

/// A failed command: what to print on stderr and the exit status.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Failure {
    pub code: u8,
    pub message: String,
}

impl Failure {
    pub fn new(code: u8, message: impl Into<String>) -> Self {
        Failure { code, message: message.into() }
    }
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}
