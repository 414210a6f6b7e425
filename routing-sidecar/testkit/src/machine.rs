//! The machine a bench ran on, what a process uses, and percentiles of
//! timing samples: what every bench prints next to its figures.

use std::time::Duration;

/// The CPU model from /proc/cpuinfo (`unknown` elsewhere) and the cores
/// available to this process.
pub fn machine() -> (String, usize) {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|info| {
            info.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|s| s.trim().to_string())
        })
        .unwrap_or_else(|| "unknown".into());
    let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0);
    (cpu, cores)
}

/// The 1, 5 and 15 minute load averages from /proc/loadavg (empty
/// elsewhere): on a shared machine they tell whether other work ran.
pub fn load_average() -> String {
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    load.split_whitespace().take(3).collect::<Vec<_>>().join(" ")
}

/// Prints `machine: CPU, N cores available, load average L1 L5 L15`.
pub fn print_machine() {
    let (cpu, cores) = machine();
    println!("machine: {cpu}, {cores} cores available, load average {}", load_average());
}

/// This process's RSS and its peak (`VmRSS`, `VmHWM` of
/// /proc/self/status), in KiB; zeros where there is no /proc.
pub fn rss_kib() -> (u64, u64) {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    (field("VmRSS:"), field("VmHWM:"))
}

/// KiB as MiB.
pub fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

/// The samples in milliseconds, sorted (for [`percentile`]).
pub fn sorted_ms(samples: &[Duration]) -> Vec<f64> {
    let mut ms: Vec<f64> = samples.iter().map(|d| d.as_secs_f64() * 1e3).collect();
    ms.sort_by(f64::total_cmp);
    ms
}

/// Nearest-rank percentile of a sorted sample; NaN when it is empty.
pub fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentile_is_nearest_rank() {
        let sorted = sorted_ms(&[4, 1, 3, 2].map(Duration::from_millis));
        assert_eq!(sorted, [1.0, 2.0, 3.0, 4.0]);
        assert_eq!(percentile(&sorted, 50.0), 2.0);
        assert_eq!(percentile(&sorted, 99.0), 4.0);
        assert_eq!(percentile(&sorted, 0.0), 1.0);
        assert!(percentile(&[], 50.0).is_nan());
    }
}
