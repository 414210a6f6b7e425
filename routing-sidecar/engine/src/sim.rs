//! An in-memory fabric of engines wired by a deterministic simulated
//! network: no sockets, no threads, no clocks. Used by the tests and by
//! `routing-sidecar simulate`.
//!
//! Messages are delivered in rounds: everything sent during round `n` is
//! delivered in round `n + 1`, in send order. One round stands for one
//! gossip interval, so "converged within k rounds" is "within k gossip
//! intervals".

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::{BestRoute, Effect, Engine, RouteEvent};
use fabric_core::config::{ConfigError, LinkMetrics, LocalRoute, NeighborConfig, SidecarConfig};
use fabric_core::ids::NodeId;
use fabric_core::message::Message;
use fabric_core::time::Timestamp;

/// A compact description of a fabric: nodes with the destinations they
/// originate, and links with their metrics.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Topology {
    pub nodes: Vec<TopologyNode>,
    pub links: Vec<TopologyLink>,
    /// The node `simulate` fails after convergence.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fail_node: Option<NodeId>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TopologyNode {
    pub id: NodeId,
    #[serde(default)]
    pub originate: Vec<LocalRoute>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TopologyLink {
    pub a: NodeId,
    pub b: NodeId,
    #[serde(default)]
    pub metrics: LinkMetrics,
}

impl Topology {
    pub fn from_yaml(text: &str) -> Result<Self, ConfigError> {
        serde_norway::from_str(text).map_err(|e| ConfigError::new("topology", e))
    }

    /// One config per node (sorted by id), neighbors from the links.
    pub fn configs(&self) -> Vec<SidecarConfig> {
        let mut configs: BTreeMap<NodeId, SidecarConfig> = self
            .nodes
            .iter()
            .map(|node| {
                let mut config = SidecarConfig::new(node.id.clone());
                config.originate = node.originate.clone();
                (node.id.clone(), config)
            })
            .collect();
        for link in &self.links {
            for (from, to) in [(&link.a, &link.b), (&link.b, &link.a)] {
                if let Some(config) = configs.get_mut(from) {
                    config.neighbors.push(NeighborConfig {
                        id: to.clone(),
                        address: None,
                        link: link.metrics,
                        import: None,
                        export: None,
                    });
                }
            }
        }
        configs.into_values().collect()
    }
}

/// A message in flight.
#[derive(Clone, Debug)]
pub struct InFlight {
    pub from: NodeId,
    pub to: NodeId,
    pub message: Arc<Message>,
}

/// Engines and the links between them.
pub struct Fabric {
    now: Timestamp,
    engines: BTreeMap<NodeId, Engine>,
    links: BTreeSet<(NodeId, NodeId)>,
    queue: VecDeque<InFlight>,
    /// Every effect other than sends, per node, in order.
    pub events: Vec<(NodeId, Effect)>,
    pub messages_delivered: u64,
    /// Messages whose link was down when they were due.
    pub messages_dropped: u64,
}

impl Fabric {
    /// Builds the engines; links start down (`connect` or `connect_all`).
    pub fn new(configs: Vec<SidecarConfig>, now: Timestamp) -> Result<Self, ConfigError> {
        let mut engines = BTreeMap::new();
        for config in configs {
            let id = config.node_id.clone();
            engines.insert(id, Engine::new(config, now)?);
        }
        Ok(Self {
            now,
            engines,
            links: BTreeSet::new(),
            queue: VecDeque::new(),
            events: Vec::new(),
            messages_delivered: 0,
            messages_dropped: 0,
        })
    }

    pub fn from_topology(topology: &Topology, now: Timestamp) -> Result<Self, ConfigError> {
        let mut fabric = Self::new(topology.configs(), now)?;
        for link in &topology.links {
            fabric.connect(&link.a, &link.b);
        }
        Ok(fabric)
    }

    pub fn now(&self) -> Timestamp {
        self.now
    }

    pub fn node_ids(&self) -> Vec<NodeId> {
        self.engines.keys().cloned().collect()
    }

    pub fn engine(&self, id: &str) -> &Engine {
        self.engines.get(id).unwrap_or_else(|| panic!("no node {id}"))
    }

    pub fn engine_mut(&mut self, id: &str) -> &mut Engine {
        self.engines.get_mut(id).unwrap_or_else(|| panic!("no node {id}"))
    }

    fn key(a: &NodeId, b: &NodeId) -> (NodeId, NodeId) {
        if a <= b { (a.clone(), b.clone()) } else { (b.clone(), a.clone()) }
    }

    pub fn is_connected(&self, a: &NodeId, b: &NodeId) -> bool {
        self.links.contains(&Self::key(a, b))
    }

    /// Brings a link up: both ends see the neighbor come up.
    pub fn connect(&mut self, a: &NodeId, b: &NodeId) {
        if !self.links.insert(Self::key(a, b)) {
            return;
        }
        let now = self.now;
        for (here, there) in [(a, b), (b, a)] {
            if let Some(engine) = self.engines.get_mut(here) {
                engine.neighbor_up(now, there);
            }
            self.collect(here);
        }
    }

    /// Takes a link down: both ends see the neighbor lost.
    pub fn disconnect(&mut self, a: &NodeId, b: &NodeId) {
        if !self.links.remove(&Self::key(a, b)) {
            return;
        }
        let now = self.now;
        for (here, there) in [(a, b), (b, a)] {
            if let Some(engine) = self.engines.get_mut(here) {
                engine.neighbor_down(now, there, false);
            }
            self.collect(here);
        }
    }

    /// A node dies: every link to it goes down and its engine is removed.
    pub fn kill(&mut self, id: &NodeId) {
        let peers: Vec<NodeId> = self
            .links
            .iter()
            .filter_map(|(a, b)| {
                if a == id {
                    Some(b.clone())
                } else if b == id {
                    Some(a.clone())
                } else {
                    None
                }
            })
            .collect();
        for peer in peers {
            self.disconnect(id, &peer);
        }
        self.engines.remove(id);
    }

    /// Applies a config to one node.
    pub fn apply_config(&mut self, config: SidecarConfig) -> Result<(), ConfigError> {
        let id = config.node_id.clone();
        let now = self.now;
        let result = self.engine_mut(id.as_str()).apply_config(now, config);
        self.collect(&id);
        result
    }

    /// Hands an input to one node directly (e.g. a forged message).
    pub fn inject(&mut self, to: &NodeId, from: &NodeId, message: Message) {
        let now = self.now;
        self.engine_mut(to.as_str()).receive(now, from, message);
        self.collect(to);
    }

    fn collect(&mut self, id: &NodeId) {
        let Some(engine) = self.engines.get_mut(id) else { return };
        for effect in engine.drain_effects(self.now) {
            match effect {
                Effect::Send { to, message } => {
                    for to in to.iter() {
                        self.queue.push_back(InFlight {
                            from: id.clone(),
                            to: to.clone(),
                            message: Arc::clone(&message),
                        });
                    }
                }
                other => self.events.push((id.clone(), other)),
            }
        }
    }

    /// Delivers everything queued before this call; returns how many
    /// messages were delivered.
    pub fn step(&mut self) -> usize {
        let batch: Vec<InFlight> = self.queue.drain(..).collect();
        let mut delivered = 0;
        let mut touched = BTreeSet::new();
        for flight in batch {
            if !self.is_connected(&flight.from, &flight.to) || !self.engines.contains_key(&flight.to) {
                self.messages_dropped += 1;
                continue;
            }
            let now = self.now;
            let message = Arc::unwrap_or_clone(flight.message);
            self.engine_mut(flight.to.as_str()).receive(now, &flight.from, message);
            touched.insert(flight.to);
            delivered += 1;
        }
        for id in touched {
            self.collect(&id);
        }
        self.messages_delivered += delivered as u64;
        delivered
    }

    /// Delivers rounds until nothing is in flight; returns the number of
    /// rounds that delivered something. Panics past `max_rounds` (a routing
    /// loop or count-to-infinity would otherwise hang a test).
    pub fn run_until_quiet(&mut self, max_rounds: usize) -> usize {
        let mut rounds = 0;
        while !self.queue.is_empty() {
            assert!(rounds < max_rounds, "fabric not quiet after {max_rounds} rounds");
            if self.step() > 0 {
                rounds += 1;
            }
        }
        rounds
    }

    /// Moves time forward and ticks every engine, in node order.
    pub fn advance(&mut self, by: Duration) {
        self.now = self.now + by;
        let ids = self.node_ids();
        for id in ids {
            let now = self.now;
            self.engine_mut(id.as_str()).tick(now);
            self.collect(&id);
        }
    }

    pub fn in_flight(&self) -> usize {
        self.queue.len()
    }

    pub fn best(&self, node: &str, destination: &str) -> Option<BestRoute> {
        self.engine(node).best_route(destination)
    }

    /// The next hop `node` uses for `destination`, as a string.
    pub fn next_hop(&self, node: &str, destination: &str) -> Option<String> {
        self.best(node, destination).map(|b| b.next_hop.to_string())
    }

    /// Route events of one node (rejections, withdrawals, ...).
    pub fn route_events(&self, node: &str) -> Vec<&RouteEvent> {
        self.events
            .iter()
            .filter(|(id, _)| id.as_str() == node)
            .filter_map(|(_, effect)| match effect {
                Effect::Event(event) => Some(event),
                _ => None,
            })
            .collect()
    }
}
