//! The event schedule: scenarios spread evenly over the run, each one or a
//! few timed actions (a failure and its repair, a burst of flaps, a forged
//! announcement). Both protocols replay the same schedule.

use std::collections::{BTreeSet, VecDeque};
use std::time::Duration;

use super::Rng;
use super::topology::SoakTopology;

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    LinkDown {
        link: u32,
    },
    LinkUp {
        link: u32,
    },
    /// The node dies: its links go down and its state is lost.
    NodeCrash {
        node: u32,
    },
    /// A fresh engine (no memory) takes the crashed node's place.
    NodeRestart {
        node: u32,
    },
    /// The links between `group` and the rest go down.
    Partition {
        group: Vec<u32>,
        links: Vec<u32>,
    },
    Heal {
        links: Vec<u32>,
    },
    /// The node withdraws its destination (path-vector: a reload without
    /// its local route; link-state: a graceful shutdown, which flushes its
    /// updates).
    Withdraw {
        node: u32,
    },
    /// The withdrawn destination comes back.
    Restore {
        node: u32,
    },
    /// A reload of `node`'s config: path-vector import policy denying
    /// `deny` (or nothing); link-state reloads its config unchanged.
    PolicyReload {
        node: u32,
        deny: Option<u32>,
    },
    /// The node signs with a new key from now on; its neighbors (path-vector)
    /// or every node (link-state) trust it first.
    KeyRotation {
        node: u32,
    },
    /// `victim` receives an announcement claiming to come from its neighbor
    /// `from`: unsigned, or signed with the right key id and a wrong key.
    Forgery {
        victim: u32,
        from: u32,
        forged_signature: bool,
        claimed: u32,
    },
}

impl Action {
    pub fn kind(&self) -> &'static str {
        match self {
            Action::LinkDown { .. } => "link_down",
            Action::LinkUp { .. } => "link_up",
            Action::NodeCrash { .. } => "node_crash",
            Action::NodeRestart { .. } => "node_restart",
            Action::Partition { .. } => "partition",
            Action::Heal { .. } => "heal",
            Action::Withdraw { .. } => "withdraw",
            Action::Restore { .. } => "restore",
            Action::PolicyReload { .. } => "policy_reload",
            Action::KeyRotation { .. } => "key_rotation",
            Action::Forgery { forged_signature: false, .. } => "unsigned_injection",
            Action::Forgery { forged_signature: true, .. } => "forged_signature",
        }
    }

    /// Every kind, in the order reports list them.
    pub const KINDS: [&'static str; 12] = [
        "link_down",
        "link_up",
        "node_crash",
        "node_restart",
        "partition",
        "heal",
        "withdraw",
        "restore",
        "policy_reload",
        "key_rotation",
        "unsigned_injection",
        "forged_signature",
    ];

    /// What the action is about, for the CSV.
    pub fn subject(&self, topology: &SoakTopology) -> String {
        let name = |n: &u32| topology.names[*n as usize].to_string();
        let link = |l: &u32| {
            let l = &topology.links[*l as usize];
            format!("{}-{}", name(&l.a), name(&l.b))
        };
        match self {
            Action::LinkDown { link: l } | Action::LinkUp { link: l } => link(l),
            Action::NodeCrash { node }
            | Action::NodeRestart { node }
            | Action::Withdraw { node }
            | Action::Restore { node }
            | Action::KeyRotation { node } => name(node),
            Action::PolicyReload { node, deny: Some(d) } => format!("{} deny {}", name(node), name(d)),
            Action::PolicyReload { node, deny: None } => format!("{} allow all", name(node)),
            Action::Partition { group, links } => format!("{} nodes cut by {} links", group.len(), links.len()),
            Action::Heal { links } => format!("{} links", links.len()),
            Action::Forgery { victim, from, claimed, .. } => {
                format!("{} from {} claiming {}", name(victim), name(from), name(claimed))
            }
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ScheduledAction {
    /// Milliseconds after the initial convergence.
    pub at_ms: u64,
    pub scenario: u32,
    pub action: Action,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Schedule {
    pub actions: Vec<ScheduledAction>,
    pub duration_ms: u64,
}

/// Scenario kinds and their weights.
const SCENARIOS: [(&str, u64); 7] = [
    ("flap", 30),
    ("crash", 15),
    ("partition", 10),
    ("withdraw", 15),
    ("policy", 10),
    ("rotation", 10),
    ("forgery", 10),
];

impl Schedule {
    /// `scenarios` scenarios, one per equal slot of `duration`; each starts
    /// at a random point of the first tenth of its slot and ends well
    /// inside it, so scenarios never overlap. Without signatures there are
    /// no key rotations and no forgeries.
    pub fn generate(
        topology: &SoakTopology,
        rng: &mut Rng,
        duration: Duration,
        scenarios: usize,
        signatures: bool,
    ) -> Schedule {
        let duration_ms = duration.as_millis() as u64;
        let slot = (duration_ms / scenarios.max(1) as u64).max(10);
        let n = topology.node_count() as u64;
        let kinds: Vec<(&str, u64)> =
            SCENARIOS.iter().copied().filter(|(k, _)| signatures || !matches!(*k, "rotation" | "forgery")).collect();
        let total: u64 = kinds.iter().map(|(_, w)| w).sum();
        let mut actions = Vec::new();
        for i in 0..scenarios as u64 {
            let start = i * slot + rng.below(slot / 10 + 1);
            let mut pick = rng.below(total);
            let kind = kinds
                .iter()
                .find(|(_, w)| {
                    if pick < *w {
                        true
                    } else {
                        pick -= w;
                        false
                    }
                })
                .map(|(k, _)| *k)
                .expect("weights cover the range");
            let scenario = i as u32;
            let mut push = |at_ms: u64, action: Action| actions.push(ScheduledAction { at_ms, scenario, action });
            let hold = slot * 4 / 10;
            match kind {
                "flap" => {
                    let link = rng.below(topology.links.len() as u64) as u32;
                    // One in three flaps is a flapping link: three quick
                    // cycles, which is what dampening is for.
                    if rng.below(3) == 0 {
                        let step = (slot / 20).max(2);
                        for cycle in 0..3 {
                            push(start + 2 * cycle * step, Action::LinkDown { link });
                            push(start + (2 * cycle + 1) * step, Action::LinkUp { link });
                        }
                    } else {
                        push(start, Action::LinkDown { link });
                        push(start + hold, Action::LinkUp { link });
                    }
                }
                "crash" => {
                    let node = rng.below(n) as u32;
                    push(start, Action::NodeCrash { node });
                    push(start + hold, Action::NodeRestart { node });
                }
                "partition" => {
                    let (group, links) = partition(topology, rng);
                    push(start, Action::Partition { group, links: links.clone() });
                    push(start + hold, Action::Heal { links });
                }
                "withdraw" => {
                    let node = rng.below(n) as u32;
                    push(start, Action::Withdraw { node });
                    push(start + hold, Action::Restore { node });
                }
                "policy" => {
                    let node = rng.below(n) as u32;
                    let mut deny = rng.below(n) as u32;
                    if deny == node {
                        deny = (deny + 1) % n as u32;
                    }
                    push(start, Action::PolicyReload { node, deny: Some(deny) });
                    push(start + hold, Action::PolicyReload { node, deny: None });
                }
                "rotation" => push(start, Action::KeyRotation { node: rng.below(n) as u32 }),
                _ => {
                    let victim = rng.below(n) as u32;
                    let neighbors = &topology.adjacency[victim as usize];
                    let from = neighbors[rng.below(neighbors.len() as u64) as usize].0;
                    let claimed = rng.below(n) as u32;
                    push(start, Action::Forgery { victim, from, forged_signature: false, claimed });
                    push(start + (slot / 20).max(1), Action::Forgery { victim, from, forged_signature: true, claimed });
                }
            }
        }
        Schedule { actions, duration_ms }
    }
}

/// A group of about a twentieth of the nodes (a breadth-first ball around a
/// random node) and the links that join it to the rest.
fn partition(topology: &SoakTopology, rng: &mut Rng) -> (Vec<u32>, Vec<u32>) {
    let n = topology.node_count();
    let target = (n / 20).max(1);
    let start = rng.below(n as u64) as u32;
    let mut group = BTreeSet::from([start]);
    let mut queue = VecDeque::from([start]);
    while let Some(u) = queue.pop_front() {
        if group.len() >= target {
            break;
        }
        for &(v, _) in &topology.adjacency[u as usize] {
            if group.len() < target && group.insert(v) {
                queue.push_back(v);
            }
        }
    }
    let links = topology
        .links
        .iter()
        .enumerate()
        .filter(|(_, l)| group.contains(&l.a) != group.contains(&l.b))
        .map(|(i, _)| i as u32)
        .collect();
    (group.into_iter().collect(), links)
}

#[cfg(test)]
mod tests {
    use super::super::topology::TopologyKind;
    use super::*;

    #[test]
    fn same_seed_same_schedule_and_scenarios_do_not_overlap() {
        let t = SoakTopology::generate(TopologyKind::RingRandom, 100, &mut Rng::new(1)).unwrap();
        let a = Schedule::generate(&t, &mut Rng::new(9), Duration::from_secs(3600), 60, true);
        let b = Schedule::generate(&t, &mut Rng::new(9), Duration::from_secs(3600), 60, true);
        assert_eq!(a, b);
        let c = Schedule::generate(&t, &mut Rng::new(10), Duration::from_secs(3600), 60, true);
        assert_ne!(a, c);
        let slot = 60_000;
        for action in &a.actions {
            let begin = u64::from(action.scenario) * slot;
            assert!(action.at_ms >= begin && action.at_ms < begin + slot, "{action:?}");
        }
        assert!(a.actions.windows(2).all(|w| w[0].at_ms <= w[1].at_ms), "actions in time order");
    }

    #[test]
    fn without_signatures_there_are_no_rotations_or_forgeries() {
        let t = SoakTopology::generate(TopologyKind::Clos, 60, &mut Rng::new(1)).unwrap();
        let s = Schedule::generate(&t, &mut Rng::new(2), Duration::from_secs(3600), 200, false);
        assert!(!s.actions.iter().any(|a| matches!(a.action, Action::KeyRotation { .. } | Action::Forgery { .. })));
        let signed = Schedule::generate(&t, &mut Rng::new(2), Duration::from_secs(3600), 200, true);
        assert!(signed.actions.iter().any(|a| matches!(a.action, Action::Forgery { .. })));
    }

    #[test]
    fn a_partition_cuts_exactly_the_links_leaving_the_group() {
        let t = SoakTopology::generate(TopologyKind::Clos, 200, &mut Rng::new(4)).unwrap();
        let (group, links) = partition(&t, &mut Rng::new(3));
        assert_eq!(group.len(), 10);
        let inside: BTreeSet<u32> = group.iter().copied().collect();
        for (i, l) in t.links.iter().enumerate() {
            let crosses = inside.contains(&l.a) != inside.contains(&l.b);
            assert_eq!(links.contains(&(i as u32)), crosses);
        }
    }
}
