//! `/metrics` in the classic text format must pass `promtool check metrics`
//! (the exposition parser plus Prometheus' metric-name lint) with no
//! complaint at all.
//!
//! Runs promtool for real when it is on PATH (`scripts/install-promtool.sh`
//! installs it). Without it the tests pass after printing "skipped: promtool
//! not installed", unless `REQUIRE_PROMTOOL=1` is set (as in CI): then a
//! missing promtool fails them.

use std::collections::BTreeMap;
use std::io::{ErrorKind, Write};
use std::process::{Command, Stdio};
use std::time::Duration;

use fabric_core::stats::{Histogram, RejectReason, StatsSnapshot};
use fabric_link_state::stats::{SummaryExportRefusal, SummaryExportStat};
use fabric_link_state::{AreaId, ExportCounts, LinkStateSnapshot};
use fabric_sidecar::runtime::metrics::{MetricsFormat, MetricsInput, PeerMetrics, render};

/// Whether promtool can be run; panics if it cannot and is required.
fn promtool_available(test: &str) -> bool {
    match Command::new("promtool").arg("--version").stdout(Stdio::null()).stderr(Stdio::null()).status() {
        Ok(_) => true,
        Err(error) => {
            let required = std::env::var("REQUIRE_PROMTOOL").is_ok_and(|v| v == "1");
            assert!(
                !required,
                "REQUIRE_PROMTOOL=1 but promtool cannot be run ({error}); install it with scripts/install-promtool.sh"
            );
            let why = if error.kind() == ErrorKind::NotFound { "not installed".to_owned() } else { error.to_string() };
            // Straight to stderr, past the test harness' output capture, so
            // the skip shows up in the log.
            let _ = writeln!(std::io::stderr(), "{test}: skipped: promtool {why}");
            false
        }
    }
}

/// Feeds `text` to `promtool check metrics`; returns (success, stdout + stderr).
fn check_metrics(text: &str) -> (bool, String) {
    let mut child = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn promtool");
    child.stdin.take().expect("stdin").write_all(text.as_bytes()).expect("write to promtool");
    let output = child.wait_with_output().expect("wait for promtool");
    let report = format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
    (output.status.success(), report)
}

#[track_caller]
fn assert_clean(text: &str) {
    let (success, report) = check_metrics(text);
    assert!(success && report.trim().is_empty(), "promtool check metrics complained:\n{report}\n--- input ---\n{text}");
}

fn snapshot(populated: bool) -> StatsSnapshot {
    let n = u64::from(populated);
    let mut convergence = Histogram::default();
    if populated {
        for ms in [0, 2, 15, 15, 80, 700, 3_000, 120_000] {
            convergence.observe(Duration::from_millis(ms));
        }
    }
    let rejects = |every: usize| -> BTreeMap<&'static str, u64> {
        RejectReason::ALL
            .iter()
            .enumerate()
            .filter(|(i, _)| populated && i % every == 0)
            .map(|(i, r)| (r.label(), i as u64 + 1))
            .collect()
    };
    StatsSnapshot {
        routes_active_total: 12 * n,
        candidates_stored: 30 * n,
        routes_held_down: 2 * n,
        routes_suppressed_now: n,
        announcements_received: 1_000 * n,
        announcements_accepted: 900 * n,
        announcement_rejects_total: rejects(2),
        dry_run_rejects_total: rejects(5),
        export_refusals_total: BTreeMap::from([("path_limit", 2)]),
        withdrawals_received: 40 * n,
        withdrawals_applied: 35 * n,
        routes_withdrawn_total: 35 * n,
        routes_expired_total: 4 * n,
        routes_purged_stale_total: 3 * n,
        routes_suppressed_total: 6 * n,
        routes_reused_total: 5 * n,
        hold_down_rejects: 7 * n,
        best_path_changes_total: 50 * n,
        messages_sent_total: 2_000 * n,
        config_reloads_total: 3 * n,
        config_rejects_total: n,
        signatures_verified_total: 950 * n,
        signature_cache_hits_total: 400 * n,
        unverified_signatures_accepted_total: 0,
        v1_messages_accepted_total: n,
        convergence_seconds: convergence,
        last_convergence: BTreeMap::new(),
    }
}

/// A border router's link-state snapshot: two areas, exports, refusals.
fn link_state_snapshot() -> LinkStateSnapshot {
    let mut spf = Histogram::default();
    for micros in [40, 900, 12_000] {
        spf.observe(Duration::from_micros(micros));
    }
    LinkStateSnapshot {
        lsdb_entries: BTreeMap::from([(AreaId::from("core"), 12), (AreaId::from("edge-eu"), 30)]),
        topology_fingerprints: BTreeMap::new(),
        routes_active: 41,
        summary_exports: vec![SummaryExportStat {
            source_area: AreaId::from("edge-eu"),
            target_area: AreaId::from("core"),
            counts: ExportCounts { exported: 28, filtered: 2, compressed: 0 },
        }],
        summary_entries_refused: vec![SummaryExportRefusal {
            source_area: AreaId::from("dmz"),
            target_area: AreaId::from("core"),
            refused: 3,
        }],
        updates_received_total: 500,
        updates_installed_total: 300,
        updates_duplicate_total: 190,
        updates_stale_total: 4,
        update_rejects_total: BTreeMap::from([("area_mismatch", 6)]),
        area_mismatches_total: BTreeMap::from([(AreaId::from("lab"), 6)]),
        flushes_received_total: 2,
        entries_expired_total: 1,
        updates_originated_total: 20,
        sequence_jumps_total: 0,
        updates_sent_total: 900,
        spf_runs_total: 33,
        spf_skipped_total: 70,
        spf_heap_pops_total: 4_000,
        spf_deferred_total: 12,
        spf_coalesced_total: 340,
        spf_duration_seconds: spf,
        route_changes_total: 60,
        unverified_signatures_accepted_total: 0,
        config_reloads_total: 1,
    }
}

#[test]
fn promtool_accepts_populated_metrics() {
    if !promtool_available("promtool_accepts_populated_metrics") {
        return;
    }
    let stats = snapshot(true);
    let peers = [
        PeerMetrics {
            peer: "node-b".into(),
            established: true,
            sessions_established_total: 3,
            session_failures_total: 1,
            routes_received: 9,
            send_queue_bytes: 4096,
        },
        PeerMetrics {
            peer: "node-c".into(),
            established: false,
            sessions_established_total: 0,
            session_failures_total: 12,
            routes_received: 0,
            send_queue_bytes: 0,
        },
    ];
    let text = render(
        &MetricsInput {
            stats: &stats,
            peers: &peers,
            node_id: "node-a",
            config_version: Some("2024-06-01.3"),
            config_applied_total: 4,
            config_rejected_total: 1,
            link_state: Some(&link_state_snapshot()),
            session_ends: &Default::default(),
        },
        MetricsFormat::PrometheusText,
    );
    assert!(text.contains("fabric_convergence_seconds_bucket{le=\"+Inf\"} 8"), "{text}");
    assert_clean(&text);
}

#[test]
fn promtool_accepts_metrics_of_a_fresh_node() {
    if !promtool_available("promtool_accepts_metrics_of_a_fresh_node") {
        return;
    }
    // No traffic, no peers (families with metadata but no samples), no config version.
    let stats = snapshot(false);
    let text = render(
        &MetricsInput {
            stats: &stats,
            peers: &[],
            node_id: "node-a",
            config_version: None,
            config_applied_total: 1,
            config_rejected_total: 0,
            link_state: None,
            session_ends: &Default::default(),
        },
        MetricsFormat::PrometheusText,
    );
    assert_clean(&text);
}

/// The harness is not vacuous: promtool does report a lint problem.
#[test]
fn promtool_reports_a_known_lint_problem() {
    if !promtool_available("promtool_reports_a_known_lint_problem") {
        return;
    }
    let (success, report) =
        check_metrics("# HELP fabric_bad A counter without the suffix.\n# TYPE fabric_bad counter\nfabric_bad 1\n");
    assert!(!success, "promtool accepted a counter without _total:\n{report}");
    assert!(report.contains("_total"), "{report}");
}
