//! Property: with the SPF throttle, routes after every quiet period equal a
//! full recomputation. A throttled router and an unthrottled one (a full
//! recompute per input) get the same random link changes at the same
//! random times; whenever time has moved past `maxWait` since the last
//! change and the throttled router's wakeups were handled, both tables are
//! equal, and equal to a router freshly built from the throttled router's
//! database.

use std::collections::BTreeMap;
use std::time::Duration;

use fabric_core::{NodeId, Timestamp};
use fabric_link_state::{
    AreaId, LinkAdvert, LinkStateConfig, LinkStateInput, LinkStateRouter, LinkStateUpdate, LocalLink, SpfThrottleConfig,
};
use proptest::prelude::*;

const NODES: usize = 7;
const AREA: &str = "x";
const START: Timestamp = Timestamp(1_700_000_000_000);

fn name(index: usize) -> NodeId {
    NodeId::from(format!("n{index}"))
}

/// One event: the link between `a` and `b` toggles (cost 0) or takes
/// `cost`; the updates it causes arrive `gaps_ms` apart; `quiet` lets
/// time run past `maxWait` afterwards and compares.
#[derive(Clone, Debug)]
struct Change {
    a: usize,
    b: usize,
    cost: u32,
    gaps_ms: (u64, u64),
    quiet: bool,
}

fn change() -> impl Strategy<Value = Change> {
    (0..NODES, 0..NODES, 0u32..4, (0u64..300, 0u64..300), prop::bool::weighted(0.3))
        .prop_filter("two ends", |(a, b, ..)| a != b)
        .prop_map(|(a, b, cost, gaps_ms, quiet)| Change { a, b, cost, gaps_ms, quiet })
}

fn throttle() -> impl Strategy<Value = SpfThrottleConfig> {
    (0u64..50, 0u64..200, 200u64..800).prop_map(|(initial, hold, max_wait)| SpfThrottleConfig {
        initial_delay: Duration::from_millis(initial),
        hold: Duration::from_millis(hold),
        max_wait: Duration::from_millis(max_wait),
    })
}

/// The routers under test and the topology they are told about.
struct Harness {
    throttled: LinkStateRouter,
    reference: LinkStateRouter,
    /// Undirected links by (low, high) index, with their cost.
    links: BTreeMap<(usize, usize), u32>,
    sequences: Vec<u64>,
    now: Timestamp,
    max_wait: Duration,
}

impl Harness {
    fn new(throttle: SpfThrottleConfig) -> Self {
        let router = |spf_throttle| {
            LinkStateRouter::new(name(0), LinkStateConfig { spf_throttle, ..LinkStateConfig::default() }).unwrap()
        };
        // n0 (the router) has a permanent link to n1, so updates always have
        // a neighbor to arrive from.
        let mut harness = Self {
            throttled: router(throttle),
            reference: router(SpfThrottleConfig::IMMEDIATE),
            links: BTreeMap::from([((0, 1), 1)]),
            sequences: vec![0; NODES],
            now: START,
            max_wait: throttle.max_wait,
        };
        let links = harness.local_links_input();
        harness.deliver(links);
        let update = harness.update_of(1);
        harness.deliver(update);
        harness
    }

    fn links_of(&self, node: usize) -> Vec<(usize, u32)> {
        self.links
            .iter()
            .filter_map(|(&(a, b), &cost)| match node {
                _ if a == node => Some((b, cost)),
                _ if b == node => Some((a, cost)),
                _ => None,
            })
            .collect()
    }

    fn local_links_input(&self) -> LinkStateInput {
        let links = self
            .links_of(0)
            .into_iter()
            .map(|(neighbor, cost)| LocalLink {
                neighbor: name(neighbor),
                area: AreaId::from(AREA),
                cost,
                latency_us: 10 * cost,
                reliability: 1.0,
            })
            .collect();
        LinkStateInput::LocalLinksChanged { links }
    }

    fn update_of(&mut self, node: usize) -> LinkStateInput {
        self.sequences[node] += 1;
        let links = self
            .links_of(node)
            .into_iter()
            .map(|(neighbor, cost)| LinkAdvert {
                neighbor: name(neighbor),
                cost,
                latency_us: 10 * cost,
                reliability: 1.0,
            })
            .collect();
        let update = LinkStateUpdate {
            origin: name(node),
            area: AreaId::from(AREA),
            sequence: self.sequences[node],
            ttl_ms: 3_600_000,
            links,
            summary: None,
            destinations: Vec::new(),
            signature: None,
        };
        LinkStateInput::UpdateReceived { from: name(1), update }
    }

    /// Runs the throttled router's timers up to `until`, as the sidecar's
    /// actor loop does; the reference gets the same ticks.
    fn run_timers(&mut self, until: Timestamp) {
        let mut ticks = 0;
        while let Some(at) = self.throttled.next_wakeup().filter(|&at| at <= until) {
            ticks += 1;
            assert!(ticks < 1_000, "a wakeup at {at:?} does not go away when handled");
            let at = at.max(self.now);
            self.now = at;
            self.throttled.handle(LinkStateInput::Tick, at);
            self.reference.handle(LinkStateInput::Tick, at);
        }
        self.now = self.now.max(until);
    }

    fn deliver(&mut self, input: LinkStateInput) {
        self.throttled.handle(input.clone(), self.now);
        self.reference.handle(input, self.now);
    }

    fn apply(&mut self, change: &Change) {
        let key = (change.a.min(change.b), change.a.max(change.b));
        if key == (0, 1) {
            return; // the permanent link
        }
        if change.cost == 0 {
            if self.links.remove(&key).is_none() {
                self.links.insert(key, 1);
            }
        } else {
            self.links.insert(key, change.cost);
        }
        for (end, gap) in [(key.0, change.gaps_ms.0), (key.1, change.gaps_ms.1)] {
            let arrival = self.now + Duration::from_millis(gap);
            self.run_timers(arrival);
            let input = if end == 0 { self.local_links_input() } else { self.update_of(end) };
            self.deliver(input);
        }
    }

    /// A router built from scratch over the throttled router's database.
    fn fresh(&self) -> LinkStateRouter {
        let mut fresh = LinkStateRouter::new(
            name(0),
            LinkStateConfig { spf_throttle: SpfThrottleConfig::IMMEDIATE, ..LinkStateConfig::default() },
        )
        .unwrap();
        fresh.handle(self.local_links_input(), self.now);
        let database: Vec<LinkStateInput> = self
            .throttled
            .lsdb(&AreaId::from(AREA))
            .unwrap()
            .live_updates()
            .filter(|update| update.origin != name(0))
            .map(|update| LinkStateInput::UpdateReceived { from: name(1), update: update.clone() })
            .collect();
        fresh.handle_batch(database, self.now);
        fresh
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(96))]

    #[test]
    fn routes_after_every_quiet_period_equal_a_full_recomputation(
        throttle in throttle(),
        changes in prop::collection::vec(change(), 1..40),
    ) {
        let mut harness = Harness::new(throttle);
        let mut quiet_points = 0;
        for (step, change) in changes.iter().enumerate() {
            harness.apply(change);
            if change.quiet || step + 1 == changes.len() {
                let quiet = harness.now + harness.max_wait + Duration::from_millis(1);
                harness.run_timers(quiet);
                prop_assert!(harness.throttled.spf_due().is_none(), "nothing pending after a quiet period");
                prop_assert_eq!(harness.throttled.routes(), harness.reference.routes(), "step {}", step);
                let fresh = harness.fresh();
                prop_assert_eq!(harness.throttled.routes(), fresh.routes(), "step {}", step);
                quiet_points += 1;
            }
        }
        prop_assert!(quiet_points >= 1);
        let counters = harness.throttled.counters();
        prop_assert!(counters.spf_runs <= harness.reference.counters().spf_runs);
    }
}
