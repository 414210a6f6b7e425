//! Waiting for real processes: poll a check until it holds, with a
//! deadline. The deadline, not the poll interval, is what a test asserts;
//! nothing here sleeps and hopes.

use std::future::Future;
use std::time::{Duration, Instant};

/// Waits until `check` holds; returns how long it took. Panics with
/// `what` after `limit`. Polls every 10 ms, for waits whose duration a
/// test reports (failover, convergence).
pub async fn eventually<F, Fut>(limit: Duration, what: &str, mut check: F) -> Duration
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let start = Instant::now();
    loop {
        if check().await {
            return start.elapsed();
        }
        assert!(start.elapsed() < limit, "{what}: not within {limit:?}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Waits until `check` returns `Ok`, and returns its value. Panics after
/// `timeout` with `what` and the last `Err` it returned (what the test
/// saw instead). Polls every 100 ms, for waits on an operator or an API
/// server.
pub async fn wait_for<T, F, Fut>(what: &str, timeout: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, String>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        match check().await {
            Ok(value) => return value,
            Err(last) if Instant::now() >= deadline => panic!("timed out waiting for {what}; last: {last}"),
            Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
}

/// Waits until `check` returns `Ok(true)`, polling every `interval`, and
/// returns how long it took. An `Err` from `check`, or `limit` passing,
/// ends the wait with an error instead of a panic: benches report a
/// failed scenario and keep the sidecars' logs.
pub async fn wait_until<F, Fut>(
    limit: Duration,
    interval: Duration,
    what: &str,
    mut check: F,
) -> Result<Duration, String>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<bool, String>>,
{
    let start = Instant::now();
    loop {
        if check().await? {
            return Ok(start.elapsed());
        }
        if start.elapsed() > limit {
            return Err(format!("{what}: not within {limit:?}"));
        }
        tokio::time::sleep(interval).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn eventually_returns_once_the_check_holds() {
        let mut calls = 0;
        eventually(Duration::from_secs(5), "third call", || {
            calls += 1;
            let holds = calls >= 3;
            async move { holds }
        })
        .await;
        assert_eq!(calls, 3);
    }

    #[tokio::test]
    #[should_panic(expected = "never: not within")]
    async fn eventually_panics_after_the_limit() {
        eventually(Duration::from_millis(30), "never", || async { false }).await;
    }

    #[tokio::test]
    #[should_panic(expected = "timed out waiting for a value; last: no value yet")]
    async fn wait_for_reports_the_last_observation() {
        wait_for("a value", Duration::from_millis(150), || async { Err::<(), _>("no value yet".to_owned()) }).await;
    }

    #[tokio::test]
    async fn wait_for_returns_the_value() {
        let mut calls = 0;
        let value = wait_for("the second call", Duration::from_secs(5), || {
            calls += 1;
            let call = calls;
            async move { if call == 2 { Ok(call * 10) } else { Err(format!("call {call}")) } }
        })
        .await;
        assert_eq!(value, 20);
    }

    #[tokio::test]
    async fn wait_until_stops_at_the_first_error() {
        let mut calls = 0;
        let result = wait_until(Duration::from_secs(5), Duration::from_millis(1), "x", || {
            calls += 1;
            let call = calls;
            async move { if call < 2 { Ok(false) } else { Err("broken".to_owned()) } }
        })
        .await;
        assert_eq!(result, Err("broken".to_owned()));
        assert_eq!(calls, 2);
        let late = wait_until(Duration::from_millis(20), Duration::from_millis(1), "late", || async { Ok(false) });
        assert!(late.await.unwrap_err().starts_with("late: not within"));
    }
}
