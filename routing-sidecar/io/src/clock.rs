//! The runtime's clock: wall-clock unix milliseconds for the engine (key
//! validity windows are wall-clock), and conversion of engine deadlines to
//! tokio instants.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use fabric_core::time::Timestamp;

pub fn now() -> Timestamp {
    let millis = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default().as_millis();
    Timestamp(u64::try_from(millis).unwrap_or(u64::MAX))
}

/// The tokio instant at which the engine timestamp `at` is reached.
pub fn instant_at(at: Timestamp) -> tokio::time::Instant {
    let wait = at.saturating_since(now());
    // Far deadlines are capped so the arithmetic cannot overflow.
    tokio::time::Instant::now() + wait.min(Duration::from_secs(24 * 3600))
}
