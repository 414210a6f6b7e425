//! Property tests: order independence of selection and consistency of the
//! incremental state with a from-scratch recomputation.

use std::time::Duration;

use fabric_core::config::{DampeningConfig, TieBreaker};
use fabric_core::message::Message;
use fabric_core::policy::{PolicyMode, RoutePolicy};
use fabric_core::{NodeId, RouteAnnouncement};
use fabric_engine::Engine;
use fabric_testkit::engine_builders::*;
use proptest::prelude::*;

const NEIGHBORS: [&str; 5] = ["a", "b", "c", "d", "e"];
const DESTS: [&str; 4] = ["w", "x", "y", "z"];
const TAGS: [&str; 3] = ["gold", "bronze", "private"];

/// (neighbor, destination, cost, latency, path length, reliability class, tags)
type AnnouncementSpec = (usize, usize, u32, u32, u32, u8, Vec<usize>);

fn announcement_strategy() -> impl Strategy<Value = AnnouncementSpec> {
    (
        0..NEIGHBORS.len(),
        0..DESTS.len(),
        0u32..4, // cost: few values for many ties
        0u32..3, // latency
        1u32..4, // path length
        0u8..3,  // reliability class
        prop::collection::vec(0..TAGS.len(), 0..3),
    )
}

fn build(spec: &AnnouncementSpec, epoch: u64) -> RouteAnnouncement {
    let (n, d, cost, latency, hops, rel, tags) = spec;
    let (n, d, cost, latency, hops, rel) = (*n, *d, *cost, *latency, *hops, *rel);
    let from = NEIGHBORS[n];
    let mut path: Vec<String> = vec![from.to_string()];
    for h in 1..hops {
        path.push(format!("far{h}"));
    }
    let path_refs: Vec<&str> = path.iter().map(String::as_str).collect();
    let mut a = ann(from, DESTS[d], &path_refs, cost, epoch);
    a.metrics.latency_us = latency;
    a.metrics.reliability = [1.0, 0.9, 0.5][rel as usize];
    with_tags(a, &tags.iter().map(|t| TAGS[*t]).collect::<Vec<_>>())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    #[test]
    fn selection_does_not_depend_on_arrival_order(
        routes in prop::collection::vec(announcement_strategy(), 1..20),
        seed in any::<u64>(),
        breakers in Just(vec![TieBreaker::HopCount, TieBreaker::Latency, TieBreaker::Reliability]).prop_shuffle(),
    ) {
        // One announcement per (neighbor, destination): the last one of each wins.
        let mut latest = std::collections::BTreeMap::new();
        for (i, r) in routes.iter().enumerate() {
            latest.insert((r.0, r.1), (i, r.clone()));
        }
        let messages: Vec<RouteAnnouncement> = latest
            .values()
            .map(|(_, spec)| build(spec, 1))
            .collect();
        let mut shuffled = messages.clone();
        // Deterministic permutation from the seed.
        let mut state = seed | 1;
        for i in (1..shuffled.len()).rev() {
            state ^= state << 13; state ^= state >> 7; state ^= state << 17;
            shuffled.swap(i, (state % (i as u64 + 1)) as usize);
        }
        let run = |order: &[RouteAnnouncement]| {
            let mut config = config_with(&NEIGHBORS);
            config.selection.tie_breakers = breakers.clone();
            let mut e = Engine::new(config, t(0)).unwrap();
            for a in order {
                e.receive(t(0), &a.advertiser.clone(), Message::Announcement(a.clone()));
            }
            e.drain_effects(t(0));
            DESTS.iter().map(|d| (e.best_route(d), e.explain(d, t(0)).map(|t| t.candidates))).collect::<Vec<_>>()
        };
        prop_assert_eq!(run(&messages), run(&shuffled));
    }
}

#[derive(Clone, Debug)]
enum Step {
    Announce(AnnouncementSpec),
    Replay(usize, usize),
    Withdraw(usize, usize),
    Down(usize, bool),
    Up(usize),
    EndOfTable(usize),
    Advance(u64),
    Reload(u8),
}

fn step_strategy() -> impl Strategy<Value = Step> {
    prop_oneof![
        6 => announcement_strategy().prop_map(Step::Announce),
        1 => (0..NEIGHBORS.len(), 0..DESTS.len()).prop_map(|(n, d)| Step::Replay(n, d)),
        3 => (0..NEIGHBORS.len(), 0..DESTS.len()).prop_map(|(n, d)| Step::Withdraw(n, d)),
        1 => (0..NEIGHBORS.len(), any::<bool>()).prop_map(|(n, g)| Step::Down(n, g)),
        1 => (0..NEIGHBORS.len()).prop_map(Step::Up),
        1 => (0..NEIGHBORS.len()).prop_map(Step::EndOfTable),
        2 => (0u64..40_000).prop_map(Step::Advance),
        1 => (0u8..6).prop_map(Step::Reload),
    ]
}

fn reload_config(variant: u8) -> fabric_core::SidecarConfig {
    let mut config = config_with(&NEIGHBORS);
    match variant {
        0 => {}
        1 => config.import_policy.tags.deny = vec!["bronze".into()],
        2 => {
            config.import_policy.tags.deny = vec!["gold".into()];
            config.import_policy.mode = PolicyMode::DryRun;
        }
        3 => config.stability.hold_down = Duration::from_secs(5),
        4 => {
            config.stability.dampening = DampeningConfig {
                enabled: true,
                half_life: Duration::from_secs(10),
                max_suppress: Duration::from_secs(40),
                ..DampeningConfig::default()
            };
            config.stability.hold_down = Duration::from_secs(2);
        }
        _ => {
            let mut policy = RoutePolicy::default();
            policy.advertisers.deny = vec!["c".into()];
            config.neighbors[0].import = Some(policy);
            config.neighbors[1].link.cost = 3;
            config.neighbors.pop();
            config.selection.tie_breakers = vec![TieBreaker::Reliability];
        }
    }
    config
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(120))]

    #[test]
    fn any_event_sequence_keeps_the_table_equal_to_a_recomputation(
        steps in prop::collection::vec(step_strategy(), 1..80),
    ) {
        let mut e = Engine::new(reload_config(4), t(0)).unwrap();
        let mut now = 0u64;
        let mut epoch = 1u64;
        for step in steps {
            epoch += 1;
            let at = t(now);
            match step {
                Step::Announce(spec) => {
                    let a = build(&spec, epoch);
                    e.receive(at, &NodeId::new(NEIGHBORS[spec.0]), Message::Announcement(a));
                }
                Step::Replay(n, d) => {
                    let a = build(&(n, d, 1, 1, 1, 0, Vec::new()), epoch.saturating_sub(7));
                    e.receive(at, &NodeId::new(NEIGHBORS[n]), Message::Announcement(a));
                }
                Step::Withdraw(n, d) => {
                    e.receive(at, &NodeId::new(NEIGHBORS[n]), Message::Withdrawal(wd(NEIGHBORS[n], DESTS[d], epoch)));
                }
                Step::Down(n, graceful) => e.neighbor_down(at, &NodeId::new(NEIGHBORS[n]), graceful),
                Step::Up(n) => e.neighbor_up(at, &NodeId::new(NEIGHBORS[n])),
                Step::EndOfTable(n) => {
                    e.receive(at, &NodeId::new(NEIGHBORS[n]), Message::EndOfTable { advertiser: NodeId::new(NEIGHBORS[n]) })
                }
                Step::Advance(ms) => {
                    now += ms;
                    e.tick(t(now));
                }
                Step::Reload(v) => {
                    let _ = e.apply_config(at, reload_config(v));
                }
            }
            e.drain_effects(t(now));
            if let Err(difference) = e.verify_invariants() {
                prop_assert!(false, "after {:?}: {}", e.stats(), difference);
            }
        }
    }
}

/// A message of a burst: an announcement (unsigned, or signed by `a` or
/// `b`, whose keys are trusted, possibly altered after signing), a
/// withdrawal, an end-of-table, or an announcement from a node that is not
/// a neighbor.
#[derive(Clone, Debug)]
enum BurstMessage {
    Announce(AnnouncementSpec),
    Signed { spec: AnnouncementSpec, tampered: bool },
    Withdraw(usize, usize),
    EndOfTable(usize),
    Stranger(usize),
}

fn burst_message_strategy() -> impl Strategy<Value = BurstMessage> {
    prop_oneof![
        6 => announcement_strategy().prop_map(BurstMessage::Announce),
        2 => (announcement_strategy(), any::<bool>()).prop_map(|(mut spec, tampered)| {
            spec.0 %= 2;
            BurstMessage::Signed { spec, tampered }
        }),
        2 => (0..NEIGHBORS.len(), 0..DESTS.len()).prop_map(|(n, d)| BurstMessage::Withdraw(n, d)),
        1 => (0..NEIGHBORS.len()).prop_map(BurstMessage::EndOfTable),
        1 => (0..DESTS.len()).prop_map(BurstMessage::Stranger),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(150))]

    /// `receive_batch` verifies signatures in one batch and looks
    /// destinations up a window ahead of processing; whatever the burst
    /// (destinations first seen inside the window, several senders,
    /// strangers, withdrawals, good and bad signatures), it must act exactly
    /// as the same messages received one by one.
    #[test]
    fn a_batch_is_handled_as_its_messages_one_by_one(
        messages in prop::collection::vec(burst_message_strategy(), 1..60),
        split in 1usize..40,
    ) {
        let messages: Vec<(NodeId, Message)> = messages
            .iter()
            .enumerate()
            .map(|(i, m)| {
                let epoch = 10 + i as u64;
                match m {
                    BurstMessage::Announce(spec) => {
                        (NodeId::new(NEIGHBORS[spec.0]), Message::Announcement(build(spec, epoch)))
                    }
                    BurstMessage::Signed { spec, tampered } => {
                        let mut a = build(spec, epoch);
                        identity(NEIGHBORS[spec.0], "k1").sign_announcement(&mut a);
                        if *tampered {
                            a.metrics.cost += 1;
                        }
                        (NodeId::new(NEIGHBORS[spec.0]), Message::Announcement(a))
                    }
                    BurstMessage::Withdraw(n, d) => {
                        (NodeId::new(NEIGHBORS[*n]), Message::Withdrawal(wd(NEIGHBORS[*n], DESTS[*d], epoch)))
                    }
                    BurstMessage::EndOfTable(n) => {
                        let neighbor = NodeId::new(NEIGHBORS[*n]);
                        (neighbor.clone(), Message::EndOfTable { advertiser: neighbor })
                    }
                    BurstMessage::Stranger(d) => {
                        (NodeId::new("stranger"), Message::Announcement(ann("stranger", DESTS[*d], &["stranger"], 1, epoch)))
                    }
                }
            })
            .collect();
        let engine = || {
            let mut config = config_with(&NEIGHBORS);
            config.security.trusted_keys = NEIGHBORS[..2]
                .iter()
                .map(|n| trusted(n, &identity(n, "k1")))
                .collect::<Vec<_>>()
                .into();
            let mut e = Engine::new(config, t(0)).unwrap();
            for n in &NEIGHBORS[..3] {
                e.neighbor_up(t(0), &NodeId::new(*n));
            }
            e.drain_effects(t(0));
            e
        };
        let mut one_by_one = engine();
        for (from, message) in messages.clone() {
            one_by_one.receive(t(1), &from, message);
        }
        let mut batched = engine();
        for chunk in messages.chunks(split) {
            let mut batch = chunk.to_vec();
            batched.receive_batch(t(1), &mut batch);
            prop_assert!(batch.is_empty(), "the batch is handed back emptied");
        }
        prop_assert_eq!(one_by_one.drain_effects(t(1)), batched.drain_effects(t(1)));
        prop_assert_eq!(one_by_one.routes(), batched.routes());
        prop_assert_eq!(format!("{:?}", one_by_one.stats()), format!("{:?}", batched.stats()));
    }
}
