//! SPF throttling (OSPF-style): when the database changes, route
//! computation (graph, SPF, route table) is scheduled rather than run at
//! once, so a stream of changes costs a few computations instead of one
//! each.
//!
//! - The first change after a quiet period is computed `initialDelay` after
//!   it arrived (zero: in the same call).
//! - After a computation, the next one waits at least `hold` after it; each
//!   further computation while changes keep coming doubles that wait, up to
//!   `maxWait`.
//! - With no computation for `2 × maxWait` the wait is back to
//!   `initialDelay`.
//!
//! A change is never computed later than `maxWait` after it arrived: the
//! due time is at most `max(now + initialDelay, lastRun + wait)`, and both
//! are within `maxWait` of `now`. Only route computation is deferred:
//! flooding of received updates is never held back.
//!
//! The state machine reads no clock: the router passes its `now` and asks
//! for a wakeup at `due()`.

use std::time::Duration;

use fabric_core::link_state::config::SpfThrottleConfig;
use fabric_core::time::Timestamp;

/// What the router should do about a change.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ThrottleDecision {
    /// Compute now.
    Run,
    /// Compute at `due`; `coalesced` when a computation was already
    /// scheduled and the change simply joins it.
    Wait { due: Timestamp, coalesced: bool },
}

/// The throttle state of one router.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct SpfThrottle {
    config: SpfThrottleConfig,
    /// When the pending computation runs; `None` when nothing is pending.
    due: Option<Timestamp>,
    last_run: Option<Timestamp>,
    /// Least time after `last_run` before the next computation. Zero right
    /// after a quiet period.
    wait: Duration,
}

impl SpfThrottle {
    pub(crate) fn new(config: SpfThrottleConfig) -> Self {
        Self { config, due: None, last_run: None, wait: Duration::ZERO }
    }

    /// Takes new knobs. The router computes at once on a config change, so
    /// a pending due time need not be moved.
    pub(crate) fn set_config(&mut self, config: SpfThrottleConfig) {
        self.config = config;
        self.wait = self.wait.min(config.max_wait);
    }

    /// When the pending computation is due, if one is.
    pub(crate) fn due(&self) -> Option<Timestamp> {
        self.due
    }

    /// Something that changes routes happened at `now`.
    pub(crate) fn request(&mut self, now: Timestamp) -> ThrottleDecision {
        if let Some(due) = self.due {
            return if due <= now { ThrottleDecision::Run } else { ThrottleDecision::Wait { due, coalesced: true } };
        }
        let due = match self.last_run {
            Some(last) if now < last + 2 * self.config.max_wait => {
                (now + self.config.initial_delay).max(last + self.wait)
            }
            _ => {
                self.wait = Duration::ZERO;
                now + self.config.initial_delay
            }
        };
        self.due = Some(due);
        if due <= now { ThrottleDecision::Run } else { ThrottleDecision::Wait { due, coalesced: false } }
    }

    /// Whether a pending computation is due at `now`.
    pub(crate) fn is_due(&self, now: Timestamp) -> bool {
        self.due.is_some_and(|due| due <= now)
    }

    /// The computation ran at `now`: the next one waits `hold` after it,
    /// then twice as long each time, up to `maxWait`.
    pub(crate) fn ran(&mut self, now: Timestamp) {
        self.due = None;
        self.last_run = Some(now);
        self.wait = if self.wait.is_zero() { self.config.hold } else { (self.wait * 2).min(self.config.max_wait) };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T0: Timestamp = Timestamp(1_000_000);

    fn ms(value: u64) -> Duration {
        Duration::from_millis(value)
    }

    fn throttle() -> SpfThrottle {
        SpfThrottle::new(SpfThrottleConfig { initial_delay: ms(10), hold: ms(100), max_wait: ms(1000) })
    }

    fn wait(due: Timestamp, coalesced: bool) -> ThrottleDecision {
        ThrottleDecision::Wait { due, coalesced }
    }

    #[test]
    fn the_first_change_waits_the_initial_delay_and_later_ones_join_it() {
        let mut throttle = throttle();
        assert_eq!(throttle.request(T0), wait(T0 + ms(10), false));
        assert_eq!(throttle.request(T0 + ms(5)), wait(T0 + ms(10), true));
        assert!(!throttle.is_due(T0 + ms(9)));
        assert!(throttle.is_due(T0 + ms(10)));
        assert_eq!(throttle.request(T0 + ms(10)), ThrottleDecision::Run);
    }

    #[test]
    fn the_hold_doubles_while_changes_keep_coming_up_to_max_wait() {
        let mut throttle = throttle();
        let mut now = T0;
        let mut gaps = Vec::new();
        let mut last = None;
        // A change every millisecond; run whenever due.
        for _ in 0..5000 {
            if let ThrottleDecision::Run = throttle.request(now) {
                throttle.ran(now);
                if let Some(previous) = last {
                    gaps.push(now.saturating_since(previous).as_millis() as u64);
                }
                last = Some(now);
            }
            now = now + ms(1);
        }
        assert_eq!(gaps[..5], [100, 200, 400, 800, 1000]);
        assert!(gaps[5..].iter().all(|&gap| gap == 1000), "{gaps:?}");
    }

    #[test]
    fn a_change_never_waits_longer_than_max_wait() {
        let mut throttle = throttle();
        let mut now = T0;
        for step in 0..500u64 {
            let arrived = now;
            match throttle.request(now) {
                ThrottleDecision::Run => throttle.ran(now),
                ThrottleDecision::Wait { due, .. } => assert!(due <= arrived + ms(1000)),
            }
            // Irregular arrivals: 1 to 37 ms apart.
            now = now + ms(1 + (step * 7) % 37);
            if throttle.is_due(now) {
                throttle.ran(now);
            }
        }
    }

    #[test]
    fn after_a_quiet_period_the_initial_delay_applies_again() {
        let mut throttle = throttle();
        // Build up the backoff.
        let mut now = T0;
        for _ in 0..4 {
            if let ThrottleDecision::Wait { due, .. } = throttle.request(now) {
                now = due;
            }
            throttle.ran(now);
        }
        // Soon after: held back.
        let soon = now + ms(1);
        assert!(matches!(throttle.request(soon), ThrottleDecision::Wait { due, .. } if due > soon + ms(10)));
        throttle.ran(soon + ms(800));
        // 2 × maxWait without a run: back to the initial delay.
        let quiet = soon + ms(800) + ms(2000);
        assert_eq!(throttle.request(quiet), wait(quiet + ms(10), false));
        throttle.ran(quiet + ms(10));
        assert_eq!(throttle.request(quiet + ms(20)), wait(quiet + ms(110), false), "hold after the first run");
    }

    #[test]
    fn immediate_config_always_runs_at_once() {
        let mut throttle = SpfThrottle::new(SpfThrottleConfig::IMMEDIATE);
        for step in 0..10 {
            let now = T0 + ms(step);
            assert_eq!(throttle.request(now), ThrottleDecision::Run);
            throttle.ran(now);
        }
    }

    #[test]
    fn a_smaller_max_wait_caps_the_backoff() {
        let mut throttle = throttle();
        for step in [0, 100, 300, 700] {
            throttle.request(T0 + ms(step));
            throttle.ran(T0 + ms(step));
        }
        let fast = SpfThrottleConfig { initial_delay: ms(0), hold: ms(10), max_wait: ms(50) };
        throttle.set_config(fast);
        assert_eq!(throttle.request(T0 + ms(701)), wait(T0 + ms(750), false));
    }
}
