//! A set of keys with one deadline each, popped in deadline order. Used for
//! hold-down expiry, dampening reuse, graceful-restart windows and
//! tombstones; ties pop in key order so the output is deterministic.

use std::collections::BTreeSet;

use foldhash::{HashMap, HashMapExt};
use std::hash::Hash;

use crate::time::Timestamp;

#[derive(Clone, Debug)]
pub struct DeadlineQueue<K: Ord + Hash + Copy> {
    by_time: BTreeSet<(Timestamp, K)>,
    by_key: HashMap<K, Timestamp>,
}

impl<K: Ord + Hash + Copy> Default for DeadlineQueue<K> {
    fn default() -> Self {
        Self { by_time: BTreeSet::new(), by_key: HashMap::new() }
    }
}

impl<K: Ord + Hash + Copy> DeadlineQueue<K> {
    /// Sets (or moves) the deadline of `key`.
    pub fn schedule(&mut self, key: K, at: Timestamp) {
        if let Some(old) = self.by_key.insert(key, at) {
            self.by_time.remove(&(old, key));
        }
        self.by_time.insert((at, key));
    }

    pub fn cancel(&mut self, key: K) -> Option<Timestamp> {
        let at = self.by_key.remove(&key)?;
        self.by_time.remove(&(at, key));
        Some(at)
    }

    pub fn deadline(&self, key: K) -> Option<Timestamp> {
        self.by_key.get(&key).copied()
    }

    pub fn next_deadline(&self) -> Option<Timestamp> {
        self.by_time.first().map(|(at, _)| *at)
    }

    /// Removes and returns every key whose deadline is at or before `now`.
    pub fn pop_due(&mut self, now: Timestamp) -> Vec<K> {
        let mut due = Vec::new();
        while let Some(&(at, key)) = self.by_time.first() {
            if at > now {
                break;
            }
            self.by_time.pop_first();
            self.by_key.remove(&key);
            due.push(key);
        }
        due
    }

    pub fn len(&self) -> usize {
        self.by_key.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_key.is_empty()
    }

    pub fn clear(&mut self) {
        self.by_time.clear();
        self.by_key.clear();
    }

    pub fn keys(&self) -> impl Iterator<Item = (&K, &Timestamp)> {
        self.by_key.iter()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pops_in_deadline_then_key_order_and_reschedule_moves() {
        let mut queue = DeadlineQueue::default();
        queue.schedule(3u32, Timestamp(20));
        queue.schedule(1u32, Timestamp(10));
        queue.schedule(2u32, Timestamp(10));
        queue.schedule(1u32, Timestamp(30));
        assert_eq!(queue.next_deadline(), Some(Timestamp(10)));
        assert_eq!(queue.pop_due(Timestamp(20)), vec![2, 3]);
        assert_eq!(queue.pop_due(Timestamp(29)), Vec::<u32>::new());
        assert_eq!(queue.cancel(1), Some(Timestamp(30)));
        assert!(queue.is_empty());
    }
}
