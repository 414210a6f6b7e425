//! The identity flags `run`, `analyze` and `kubectl fabric analyze` share,
//! so an offline analysis refuses what the operator would.

use fabric_operator_core::compile::{Settings, UnboundNodeIds};

#[derive(clap::Args, Clone, Debug, Default)]
pub struct IdentityFlags {
    /// A namespace fabric sidecar pods and RouteKeys may live in
    /// (repeated). Pods and RouteKeys elsewhere are refused and reported.
    /// Default: any namespace.
    #[arg(long = "fabric-namespace", value_name = "NAMESPACE")]
    pub fabric_namespaces: Vec<String>,
    /// What a node id no RouteKey binds gets: `allow` (served to its one
    /// claimant) or `refuse` (every node id needs a RouteKey naming the
    /// namespace and ServiceAccount that may run it).
    #[arg(long, value_enum, default_value_t = UnboundNodeIds::Allow)]
    pub unbound_node_ids: UnboundNodeIds,
}

impl IdentityFlags {
    pub fn settings(&self) -> Settings {
        Settings {
            namespaces: (!self.fabric_namespaces.is_empty()).then(|| self.fabric_namespaces.iter().cloned().collect()),
            unbound_node_ids: self.unbound_node_ids,
        }
    }
}
