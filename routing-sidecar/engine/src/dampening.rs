//! Route flap dampening in the manner of RFC 2439, per (destination,
//! advertiser).
//!
//! Each flap adds a penalty (a withdrawal more than an attribute change; a
//! first announcement nothing). The penalty halves every `half_life`. Above
//! `suppress_threshold` the route is suppressed (kept, but not selected)
//! until the penalty decays below `reuse_threshold`. The penalty is capped
//! at `reuse * 2^(max_suppress / half_life)`, so a route that stops flapping
//! is never suppressed for longer than `max_suppress`.

use foldhash::{HashMap, HashMapExt};
use std::hash::Hash;
use std::time::Duration;

use fabric_core::config::DampeningConfig;
use fabric_core::deadline::DeadlineQueue;
use fabric_core::time::Timestamp;

#[derive(Clone, Copy, Debug, PartialEq)]
struct FlapState {
    penalty: f64,
    updated_at: Timestamp,
    suppressed: bool,
}

/// What a penalty did to the route.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) enum PenaltyOutcome {
    /// Still usable.
    Usable { penalty: f64 },
    /// Crossed the suppress threshold just now.
    NewlySuppressed { penalty: f64, reuse_at: Timestamp },
    /// Was already suppressed; the reuse time moved.
    StillSuppressed { penalty: f64, reuse_at: Timestamp },
}

#[derive(Clone, Debug)]
pub(crate) struct Dampening<K: Ord + Hash + Copy> {
    config: DampeningConfig,
    ceiling: f64,
    states: HashMap<K, FlapState>,
    reuse: DeadlineQueue<K>,
    forget: DeadlineQueue<K>,
}

impl<K: Ord + Hash + Copy> Dampening<K> {
    pub(crate) fn new(config: DampeningConfig) -> Self {
        let ratio = config.max_suppress.as_secs_f64() / config.half_life.as_secs_f64().max(f64::MIN_POSITIVE);
        let ceiling = config.reuse_threshold * 2f64.powf(ratio);
        Self {
            config,
            ceiling,
            states: HashMap::new(),
            reuse: DeadlineQueue::default(),
            forget: DeadlineQueue::default(),
        }
    }

    fn decayed(&self, state: &FlapState, now: Timestamp) -> f64 {
        let elapsed = now.saturating_since(state.updated_at).as_secs_f64();
        state.penalty * 0.5f64.powf(elapsed / self.config.half_life.as_secs_f64())
    }

    /// When a penalty `from` decays to `to`.
    fn time_to_decay(&self, from: f64, to: f64) -> Duration {
        if from <= to {
            return Duration::ZERO;
        }
        // Round up to whole milliseconds so that at the deadline the penalty
        // is really below the threshold.
        let seconds = self.config.half_life.as_secs_f64() * (from / to).log2();
        Duration::from_millis((seconds * 1000.0).ceil() as u64)
    }

    fn penalize(&mut self, key: K, amount: f64, now: Timestamp) -> PenaltyOutcome {
        if !self.config.enabled {
            return PenaltyOutcome::Usable { penalty: 0.0 };
        }
        let previous = self.states.get(&key).copied();
        let current = previous.map(|s| self.decayed(&s, now)).unwrap_or(0.0);
        let penalty = (current + amount).min(self.ceiling);
        let was_suppressed = previous.is_some_and(|s| s.suppressed);
        let suppressed = was_suppressed || penalty > self.config.suppress_threshold;
        self.states.insert(key, FlapState { penalty, updated_at: now, suppressed });
        let forget_at = now + self.time_to_decay(penalty, self.config.reuse_threshold / 2.0);
        self.forget.schedule(key, forget_at);
        if suppressed {
            let reuse_at = now + self.time_to_decay(penalty, self.config.reuse_threshold);
            self.reuse.schedule(key, reuse_at);
            if was_suppressed {
                PenaltyOutcome::StillSuppressed { penalty, reuse_at }
            } else {
                PenaltyOutcome::NewlySuppressed { penalty, reuse_at }
            }
        } else {
            PenaltyOutcome::Usable { penalty }
        }
    }

    pub(crate) fn on_withdrawal(&mut self, key: K, now: Timestamp) -> PenaltyOutcome {
        self.penalize(key, self.config.withdrawal_penalty, now)
    }

    pub(crate) fn on_attribute_change(&mut self, key: K, now: Timestamp) -> PenaltyOutcome {
        self.penalize(key, self.config.attribute_change_penalty, now)
    }

    pub(crate) fn is_suppressed(&self, key: K) -> bool {
        self.states.get(&key).is_some_and(|s| s.suppressed)
    }

    pub(crate) fn reuse_at(&self, key: K) -> Option<Timestamp> {
        self.reuse.deadline(key)
    }

    /// The current (decayed) penalty, for explain.
    pub(crate) fn penalty(&self, key: K, now: Timestamp) -> f64 {
        self.states.get(&key).map(|s| self.decayed(s, now)).unwrap_or(0.0)
    }

    pub(crate) fn next_deadline(&self) -> Option<Timestamp> {
        match (self.reuse.next_deadline(), self.forget.next_deadline()) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Keys whose suppression ends at or before `now`; also forgets states
    /// that have decayed to insignificance.
    pub(crate) fn tick(&mut self, now: Timestamp) -> Vec<K> {
        let reused = self.reuse.pop_due(now);
        for key in &reused {
            if let Some(state) = self.states.get_mut(key) {
                state.suppressed = false;
            }
        }
        for key in self.forget.pop_due(now) {
            if self.reuse.deadline(key).is_none() {
                self.states.remove(&key);
            }
        }
        reused
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> DampeningConfig {
        DampeningConfig {
            enabled: true,
            half_life: Duration::from_secs(60),
            max_suppress: Duration::from_secs(240),
            ..DampeningConfig::default()
        }
    }

    #[test]
    fn suppresses_after_repeated_withdrawals_and_reuses_after_decay() {
        let mut damp = Dampening::new(config());
        let t0 = Timestamp(0);
        assert!(matches!(damp.on_withdrawal(1u32, t0), PenaltyOutcome::Usable { .. }));
        assert!(matches!(damp.on_withdrawal(1, t0), PenaltyOutcome::Usable { .. }));
        let PenaltyOutcome::NewlySuppressed { penalty, reuse_at } = damp.on_withdrawal(1, t0) else {
            panic!("third withdrawal must suppress");
        };
        assert_eq!(penalty, 3000.0);
        // 3000 -> 750 is two half-lives.
        assert_eq!(reuse_at, Timestamp(120_000));
        assert!(damp.is_suppressed(1));
        assert!(damp.tick(Timestamp(119_999)).is_empty());
        assert_eq!(damp.tick(reuse_at), vec![1]);
        assert!(!damp.is_suppressed(1));
        assert!(damp.penalty(1, reuse_at) <= 750.0);
    }

    #[test]
    fn penalty_is_capped_so_suppression_never_exceeds_max_suppress() {
        let mut damp = Dampening::new(config());
        let t0 = Timestamp(0);
        for _ in 0..50 {
            damp.on_withdrawal(7u32, t0);
        }
        // ceiling = 750 * 2^(240/60) = 12000 -> reuse after exactly 240 s.
        assert_eq!(damp.penalty(7, t0), 12_000.0);
        assert_eq!(damp.reuse_at(7), Some(Timestamp(240_000)));
    }

    #[test]
    fn disabled_dampening_never_suppresses() {
        let mut damp = Dampening::new(DampeningConfig::default());
        for _ in 0..10 {
            assert!(matches!(damp.on_withdrawal(1u32, Timestamp(0)), PenaltyOutcome::Usable { .. }));
        }
        assert!(!damp.is_suppressed(1));
    }

    #[test]
    fn decayed_state_is_forgotten() {
        let mut damp = Dampening::new(config());
        damp.on_attribute_change(1u32, Timestamp(0));
        assert!(damp.penalty(1, Timestamp(0)) > 0.0);
        damp.tick(Timestamp(10 * 60_000));
        assert!(damp.states.is_empty());
    }
}
