//! Every metric the Grafana dashboards (charts/fabric-routing/dashboards/)
//! query is exported by the sidecar or the operator.
//!
//! The metric names come from the PromQL of every panel target (rows and
//! nested panels included) and every query template variable, as in
//! `scripts/dashboard-metrics.py`: identifiers `[a-zA-Z_:][a-zA-Z0-9_:]*`
//! starting with `fabric_`, outside string literals. The exported families
//! come from the `# TYPE` lines of the real renderers in the classic text
//! format: the sidecar's `fabric_sidecar::runtime::metrics::render` with
//! every input populated (peers and link-state included) and the operator's
//! `fabric_operator::metrics::render` on a Distributor with the example
//! manifests. A `_bucket`, `_sum` or `_count` name is exported when its base
//! name is a histogram family (`_sum`/`_count` also for a summary).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::Duration;

use fabric_core::stats::{Histogram, RejectReason, StatsSnapshot};
use fabric_link_state::stats::{SummaryExportRefusal, SummaryExportStat};
use fabric_link_state::{AreaId, ExportCounts, LinkStateSnapshot};
use fabric_operator::distribution::{Distributor, DistributorOptions};
use fabric_sidecar::runtime::metrics::{MetricsFormat, MetricsInput, PeerMetrics};
use fabric_testkit::process::{LocalOperator, scratch_in, sidecar_exe};
use fabric_testkit::wait::wait_for;
use serde_json::Value;

const HISTOGRAM_SUFFIXES: [&str; 3] = ["_bucket", "_sum", "_count"];

/// One PromQL query of a dashboard and where it is.
#[derive(Clone, Debug)]
struct Query {
    dashboard: String,
    location: String,
    expr: String,
}

fn walk_panels<'a>(panels: &'a Value, out: &mut Vec<&'a Value>) {
    for panel in panels.as_array().into_iter().flatten() {
        out.push(panel);
        walk_panels(&panel["panels"], out);
    }
}

/// Every panel target `expr` and every query variable of a dashboard.
fn queries(name: &str, dashboard: &Value) -> Vec<Query> {
    let mut panels = Vec::new();
    walk_panels(&dashboard["panels"], &mut panels);
    let mut out = Vec::new();
    for panel in panels {
        for target in panel["targets"].as_array().into_iter().flatten() {
            if let Some(expr) = target["expr"].as_str().filter(|e| !e.trim().is_empty()) {
                let location = format!("panel {:?}", panel["title"].as_str().unwrap_or_default());
                out.push(Query { dashboard: name.into(), location, expr: expr.into() });
            }
        }
    }
    for variable in dashboard["templating"]["list"].as_array().into_iter().flatten() {
        if variable["type"] != "query" {
            continue;
        }
        let query = match &variable["query"] {
            Value::String(q) => Some(q.as_str()),
            object => object["query"].as_str(),
        };
        if let Some(expr) = query.filter(|q| !q.trim().is_empty()) {
            let location = format!("variable {:?}", variable["name"].as_str().unwrap_or_default());
            out.push(Query { dashboard: name.into(), location, expr: expr.into() });
        }
    }
    out
}

/// PromQL with its string literals (`"..."`, `'...'`, `` `...` ``) blanked:
/// label values are not metric names.
fn without_strings(expr: &str) -> String {
    let mut out = String::with_capacity(expr.len());
    let mut chars = expr.chars();
    while let Some(c) = chars.next() {
        if matches!(c, '"' | '\'' | '`') {
            let quote = c;
            while let Some(inner) = chars.next() {
                if inner == '\\' && quote != '`' {
                    chars.next();
                } else if inner == quote {
                    break;
                }
            }
            out.push(' ');
        } else {
            out.push(c);
        }
    }
    out
}

/// The `fabric_*` identifiers of one PromQL expression, as queried (a
/// histogram's `_bucket` kept: [`exported`] knows what it belongs to).
fn metric_names(expr: &str) -> BTreeSet<String> {
    let text = without_strings(expr);
    let mut names = BTreeSet::new();
    let mut chars = text.char_indices().peekable();
    while let Some((start, c)) = chars.next() {
        if !(c.is_ascii_alphabetic() || c == '_' || c == ':') {
            // Digits and the rest of non-identifier text; an identifier
            // cannot start inside a number like `0.99`, so skip its tail.
            if c.is_ascii_digit() {
                while chars.peek().is_some_and(|(_, d)| d.is_ascii_alphanumeric() || *d == '_' || *d == '.') {
                    chars.next();
                }
            }
            continue;
        }
        let mut end = start + c.len_utf8();
        while let Some(&(i, d)) = chars.peek() {
            if d.is_ascii_alphanumeric() || d == '_' || d == ':' {
                end = i + d.len_utf8();
                chars.next();
            } else {
                break;
            }
        }
        let word = &text[start..end];
        if word.starts_with("fabric_") {
            names.insert(word.to_string());
        }
    }
    names
}

/// `name` without a histogram series suffix, if it has one.
fn strip_suffix(name: &str) -> Option<&str> {
    HISTOGRAM_SUFFIXES.iter().find_map(|suffix| name.strip_suffix(suffix))
}

/// Family name -> type, from the `# TYPE name type` lines of a render.
fn families(text: &str) -> BTreeMap<String, String> {
    text.lines()
        .filter_map(|line| line.strip_prefix("# TYPE "))
        .filter_map(|rest| rest.split_once(' '))
        .map(|(name, kind)| (name.to_string(), kind.trim().to_string()))
        .collect()
}

/// Whether the series name `name` is exported by one of `families`.
fn exported(name: &str, families: &BTreeMap<String, String>) -> bool {
    if families.contains_key(name) {
        return true;
    }
    let Some(base) = strip_suffix(name) else { return false };
    match families.get(base).map(String::as_str) {
        Some("histogram") => true,
        Some("summary") => !name.ends_with("_bucket"),
        _ => false,
    }
}

/// The queried names no family exports, with where they are queried.
fn missing(queries: &[Query], families: &BTreeMap<String, String>) -> BTreeMap<String, Vec<String>> {
    let mut out: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for query in queries {
        for name in metric_names(&query.expr) {
            if !exported(&name, families) {
                out.entry(name).or_default().push(format!("{} {}: {}", query.dashboard, query.location, query.expr));
            }
        }
    }
    out
}

fn dashboards_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../charts/fabric-routing/dashboards")
}

fn all_queries() -> Vec<Query> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dashboards_dir())
        .expect("charts/fabric-routing/dashboards")
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|e| e == "json"))
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no dashboard in {}", dashboards_dir().display());
    let mut out = Vec::new();
    for file in files {
        let name = file.file_name().unwrap().to_string_lossy().into_owned();
        let text = std::fs::read_to_string(&file).unwrap();
        let dashboard: Value = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{name}: {e}"));
        let found = queries(&name, &dashboard);
        assert!(!found.is_empty(), "{name} has no query");
        for query in &found {
            assert!(
                !metric_names(&query.expr).is_empty(),
                "{name} {}: no fabric_ metric in {:?}",
                query.location,
                query.expr
            );
        }
        out.extend(found);
    }
    out
}

/// A sidecar's stats with every value set (as in routing-sidecar's
/// tests/promtool.rs).
fn sidecar_stats() -> StatsSnapshot {
    let mut convergence = Histogram::default();
    for ms in [0, 2, 15, 80, 700, 3_000] {
        convergence.observe(Duration::from_millis(ms));
    }
    let rejects: BTreeMap<&'static str, u64> =
        RejectReason::ALL.iter().enumerate().map(|(i, r)| (r.label(), i as u64 + 1)).collect();
    StatsSnapshot {
        routes_active_total: 12,
        candidates_stored: 30,
        routes_held_down: 2,
        routes_suppressed_now: 1,
        announcements_received: 1_000,
        announcements_accepted: 900,
        announcement_rejects_total: rejects.clone(),
        dry_run_rejects_total: rejects,
        export_refusals_total: BTreeMap::from([("path_limit", 1)]),
        withdrawals_received: 40,
        withdrawals_applied: 35,
        routes_withdrawn_total: 35,
        routes_expired_total: 4,
        routes_purged_stale_total: 3,
        routes_suppressed_total: 6,
        routes_reused_total: 5,
        hold_down_rejects: 7,
        best_path_changes_total: 50,
        messages_sent_total: 2_000,
        config_reloads_total: 3,
        config_rejects_total: 1,
        signatures_verified_total: 950,
        signature_cache_hits_total: 400,
        unverified_signatures_accepted_total: 2,
        v1_messages_accepted_total: 3,
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
            counts: ExportCounts { exported: 28, filtered: 2, compressed: 1 },
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
        sequence_jumps_total: 1,
        updates_sent_total: 900,
        spf_runs_total: 33,
        spf_skipped_total: 70,
        spf_heap_pops_total: 4_000,
        spf_deferred_total: 12,
        spf_coalesced_total: 340,
        spf_duration_seconds: spf,
        route_changes_total: 60,
        unverified_signatures_accepted_total: 1,
        config_reloads_total: 1,
    }
}

/// The sidecar's `/metrics` (classic text) with every input populated.
fn sidecar_metrics() -> String {
    let stats = sidecar_stats();
    let link_state = link_state_snapshot();
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
    fabric_sidecar::runtime::metrics::render(
        &MetricsInput {
            stats: &stats,
            peers: &peers,
            node_id: "node-a",
            config_version: Some("v7"),
            config_applied_total: 4,
            config_rejected_total: 1,
            link_state: Some(&link_state),
            session_ends: &Default::default(),
        },
        MetricsFormat::PrometheusText,
    )
}

/// The operator's `/metrics` (classic text) after compiling the example
/// manifests.
fn operator_metrics() -> String {
    let manifests = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/manifests");
    let loaded = fabric_operator_core::manifests::load_dir(&manifests).expect("examples/manifests");
    let distributor = Distributor::new(DistributorOptions::default());
    distributor.set_objects(loaded.index);
    fabric_operator::metrics::render(&distributor, MetricsFormat::PrometheusText)
}

#[test]
fn every_metric_the_dashboards_query_is_exported() {
    let queries = all_queries();
    let mut exported_families = families(&sidecar_metrics());
    let operator = families(&operator_metrics());
    assert!(operator.contains_key("fabric_operator_compile_duration_seconds"), "{operator:?}");
    assert!(exported_families.contains_key("fabric_link_state_spf_duration_seconds"), "{exported_families:?}");
    exported_families.extend(operator);

    let missing = missing(&queries, &exported_families);
    let report: Vec<String> = missing
        .iter()
        .map(|(name, places)| format!("{name}\n    queried by {}", places.join("\n    queried by ")))
        .collect();
    assert!(
        missing.is_empty(),
        "{} metric(s) queried by the dashboards are not exported by the sidecar or the operator:\n{}",
        missing.len(),
        report.join("\n")
    );

    // The dashboards query a fair share of what is exported (a broken
    // extraction that finds almost nothing would pass the check above).
    let queried: BTreeSet<String> = queries.iter().flat_map(|q| metric_names(&q.expr)).collect();
    assert!(queried.len() >= 40, "only {} metric names found: {queried:?}", queried.len());
    assert!(queried.contains("fabric_convergence_seconds_bucket"), "{queried:?}");
    assert!(queried.contains("fabric_operator_sidecars"), "{queried:?}");
}

#[test]
fn names_are_extracted_from_promql() {
    let names = |expr: &str| metric_names(expr).into_iter().collect::<Vec<_>>();
    assert_eq!(
        names(
            r#"histogram_quantile(0.99, sum by (le) (rate(fabric_convergence_seconds_bucket{namespace=~"$namespace", reason="fabric_not_a_metric"}[5m])))"#
        ),
        ["fabric_convergence_seconds_bucket"]
    );
    assert_eq!(
        names("sum(rate(fabric_a_total[1m])) / on(pod) group_left fabric_b or vector(0) + fabric:recorded:rule"),
        ["fabric_a_total", "fabric_b"]
    );
    assert_eq!(names("label_values(fabric_node_info{namespace=~\"$namespace\"}, pod)"), ["fabric_node_info"]);
    assert_eq!(names(r#"up{job='fabric_job'} + 1e3 + 0.5"#), Vec::<String>::new());
    assert_eq!(names("x_fabric_routes + fabric_2"), ["fabric_2"]);
}

#[test]
fn a_metric_nobody_exports_is_reported_missing() {
    let dashboard: Value = serde_json::json!({
        "panels": [
            {"title": "row", "type": "row", "panels": [
                {"title": "fake", "targets": [{"expr": "rate(fabric_does_not_exist[5m]) + fabric_routes_active"}]}
            ]},
            {"title": "gauge as histogram", "targets": [{"expr": "fabric_routes_active_bucket"}]},
            {"title": "histogram", "targets": [
                {"expr": "histogram_quantile(0.9, rate(fabric_convergence_seconds_bucket[5m]))"},
                {"expr": "fabric_convergence_seconds_sum / fabric_convergence_seconds_count"}
            ]}
        ],
        "templating": {"list": [
            {"name": "ns", "type": "query", "query": {"query": "label_values(fabric_does_not_exist_info, namespace)"}},
            {"name": "ds", "type": "datasource", "query": "prometheus"}
        ]}
    });
    let queries = queries("fake.json", &dashboard);
    assert_eq!(queries.len(), 5, "{queries:?}");
    let families = families(&sidecar_metrics());
    let missing = missing(&queries, &families);
    assert_eq!(
        missing.keys().map(String::as_str).collect::<Vec<_>>(),
        ["fabric_does_not_exist", "fabric_does_not_exist_info", "fabric_routes_active_bucket"]
    );
    assert_eq!(
        missing["fabric_does_not_exist"],
        ["fake.json panel \"fake\": rate(fabric_does_not_exist[5m]) + fabric_routes_active"]
    );
    assert!(missing["fabric_does_not_exist_info"][0].starts_with("fake.json variable \"ns\": "));
}

#[test]
fn families_come_from_type_lines() {
    let text = "# HELP fabric_x_total X\n# TYPE fabric_x_total counter\nfabric_x_total 1\n\
                # TYPE fabric_h_seconds histogram\nfabric_h_seconds_bucket{le=\"+Inf\"} 1\n\
                # TYPE fabric_s summary\n# TYPE fabric_g_count gauge\n";
    let families = families(text);
    assert!(exported("fabric_x_total", &families));
    assert!(!exported("fabric_x", &families));
    for name in ["fabric_h_seconds", "fabric_h_seconds_bucket", "fabric_h_seconds_sum", "fabric_h_seconds_count"] {
        assert!(exported(name, &families), "{name}");
    }
    assert!(exported("fabric_s_sum", &families));
    assert!(!exported("fabric_s_bucket", &families));
    // A gauge whose name ends in _count is itself, not a histogram series.
    assert!(exported("fabric_g_count", &families));
    assert!(!exported("fabric_g", &families));
}

/// What Prometheus scrapes in a cluster: the sidecar's metrics listener on
/// the pod IP (`--metrics-listen`). Two real sidecars in link-state mode
/// with a session between them serve every series the sidecar dashboard
/// queries there, and nothing but metrics and health.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_metrics_listener_serves_every_series_the_sidecar_dashboard_queries() {
    use fabric_engine::sim::Topology;
    use fabric_io::local_http;
    use fabric_sidecar::runtime::lab::Lab;
    let dir = scratch_in(Path::new(env!("CARGO_TARGET_TMPDIR")), "metrics-listener");
    let topology = Topology::from_yaml(
        "nodes:\n  - {id: m1, originate: [{destination: svc-m1}]}\n  - {id: m2}\nlinks:\n  - {a: m1, b: m2}\n",
    )
    .unwrap();
    let link_state = |config: &mut fabric_core::SidecarConfig| {
        config.link_state = Some(fabric_link_state::LinkStateConfig::default());
    };
    let listen = |_: &fabric_core::NodeId| vec!["--metrics-listen".to_owned(), "127.0.0.1:0".to_owned()];
    let lab = Lab::start_with(&sidecar_exe(), &topology, &dir, link_state, listen).await.unwrap();
    lab.wait_for_routes(1, Duration::from_secs(20)).await.unwrap();
    let sidecar = lab.node("m2");
    let address = sidecar.metrics.expect("the listening line names the metrics listener");
    let scraped = local_http::get(address, "/metrics").await.unwrap();
    assert_eq!(scraped.status, 200);
    let served = families(&scraped.body);
    let sidecar_queries: Vec<Query> = all_queries().into_iter().filter(|q| q.dashboard.contains("sidecar")).collect();
    assert!(!sidecar_queries.is_empty());
    let gaps = missing(&sidecar_queries, &served);
    assert!(gaps.is_empty(), "not served by the metrics listener: {gaps:#?}");
    for path in ["/healthz", "/readyz"] {
        assert_eq!(local_http::get(address, path).await.unwrap().status, 200, "{path}");
    }
    for path in ["/routes", "/routes/svc-m1", "/config", "/peers", "/stats", "/link-state"] {
        assert_eq!(local_http::get(address, path).await.unwrap().status, 404, "{path} is not on the metrics listener");
    }
    let write = local_http::put(address, "/config", "nodeId: m2\n", None).await.unwrap();
    assert!(write.status == 404 || write.status == 405, "no config writes there: {}", write.status);
}

/// A free port on 127.0.0.1 for a program that cannot report the port it
/// bound (Prometheus): bound by the OS, released, then given to it.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// A Grafana query as Prometheus gets it once the dashboard variables are
/// set: every namespace and pod, a rate window a few scrapes long.
fn as_prometheus_query(expr: &str) -> String {
    expr.replace("$__rate_interval", "15s").replace("$__range", "1m").replace("$namespace", ".*").replace("$pod", ".*")
}

/// Every query of every dashboard, evaluated by a real Prometheus (Debian's
/// `prometheus`, as `promtool`) that scrapes real sidecars (their metrics
/// listeners, link-state on, sessions up) and a real operator: each must
/// evaluate without error and return at least one series.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_dashboard_query_returns_data_from_a_real_prometheus() {
    use fabric_engine::sim::Topology;
    use fabric_io::local_http;
    use fabric_sidecar::runtime::lab::Lab;
    let Ok(prometheus) = which("prometheus") else {
        assert!(std::env::var("REQUIRE_PROMTOOL").is_err(), "REQUIRE_PROMTOOL is set but prometheus is not installed");
        fabric_envtest::uncaptured(
            "SKIPPED every_dashboard_query_returns_data_from_a_real_prometheus: no prometheus on PATH (scripts/install-promtool.sh)",
        );
        return;
    };
    let dir = scratch_in(Path::new(env!("CARGO_TARGET_TMPDIR")), "prometheus");
    std::fs::create_dir_all(dir.join("manifests")).unwrap();
    // Objects for the operator's reconcile series: one fine, one refused.
    std::fs::write(
        dir.join("manifests/policies.yaml"),
        "apiVersion: routing.fabric.dev/v1alpha1\nkind: RoutePolicy\nmetadata: {name: fine, namespace: fabric}\n\
         spec: {sidecarSelector: {}}\n---\napiVersion: routing.fabric.dev/v1alpha1\nkind: RoutePolicy\n\
         metadata: {name: refused, namespace: fabric}\nspec: {sidecarSelector: {}, priority: 1, tieBreakers: [Latency, Latency]}\n",
    )
    .unwrap();

    // The fabric: three link-state sidecars in a line, and an operator.
    let topology = Topology::from_yaml(
        "nodes:\n  - {id: p1, originate: [{destination: svc-p1}]}\n  - {id: p2}\n  - {id: p3, originate: [{destination: svc-p3}]}\n\
         links:\n  - {a: p1, b: p2}\n  - {a: p2, b: p3}\n",
    )
    .unwrap();
    let link_state = |config: &mut fabric_core::SidecarConfig| {
        config.link_state = Some(fabric_link_state::LinkStateConfig::default());
    };
    let listen = |_: &fabric_core::NodeId| vec!["--metrics-listen".to_owned(), "127.0.0.1:0".to_owned()];
    let lab = Lab::start_with(&sidecar_exe(), &topology, &dir.join("lab"), link_state, listen).await.unwrap();
    lab.wait_for_routes(2, Duration::from_secs(20)).await.unwrap();
    let args = ["--insecure-plaintext", "--allow-unauthenticated", "--listen", "127.0.0.1:0", "--http", "127.0.0.1:0"];
    let operator = LocalOperator::spawn(Path::new(env!("CARGO_BIN_EXE_fabric-operator")), &dir, &args).await;

    // Scrape them every second, with the labels Kubernetes discovery gives.
    let mut targets = String::new();
    for (id, sidecar) in &lab.nodes {
        targets.push_str(&format!(
            "      - targets: ['{}']\n        labels: {{namespace: fabric, pod: {id}}}\n",
            sidecar.metrics.unwrap()
        ));
    }
    let config = format!(
        "global: {{scrape_interval: 1s, evaluation_interval: 1s}}\nscrape_configs:\n  - job_name: sidecars\n    \
         static_configs:\n{targets}  - job_name: operator\n    static_configs:\n      - targets: ['{}']\n        \
         labels: {{namespace: fabric-system, pod: fabric-operator-0}}\n",
        operator.http
    );
    std::fs::write(dir.join("prometheus.yml"), config).unwrap();
    let port = free_port();
    let log = std::fs::File::create(dir.join("prometheus.log")).unwrap();
    let _server = tokio::process::Command::new(prometheus)
        .arg(format!("--config.file={}", dir.join("prometheus.yml").display()))
        .arg(format!("--storage.tsdb.path={}", dir.join("data").display()))
        .arg(format!("--web.listen-address=127.0.0.1:{port}"))
        .stdout(std::process::Stdio::null())
        .stderr(log)
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let address: std::net::SocketAddr = ([127, 0, 0, 1], port).into();
    let query = |expr: String| async move {
        let path = format!("/api/v1/query?query={}", urlencode(&expr));
        let answer = local_http::get(address, &path).await?;
        let json: Value = serde_json::from_str(&answer.body).map_err(|e| format!("{e}: {}", answer.body))?;
        if json["status"] != "success" {
            return Err(format!("{}: {}", json["errorType"], json["error"]));
        }
        Ok(json["data"]["result"].as_array().cloned().unwrap_or_default())
    };
    // Four targets up, each scraped several times (rates need two samples).
    let log_path = dir.join("prometheus.log").display().to_string();
    wait_for(&format!("Prometheus scraping every target (log: {log_path})"), Duration::from_secs(60), || async {
        let up = query("count_over_time(up[30s]) >= 5 and up == 1".into()).await?;
        if up.len() == 4 { Ok(()) } else { Err(format!("{} of 4 targets up with 5 scrapes", up.len())) }
    })
    .await;

    let mut failures = Vec::new();
    for q in all_queries() {
        // What Grafana asks for a variable's values, Prometheus can answer as
        // a query: `label_values(M, L)` lists the L of the series of M.
        let expr = as_prometheus_query(&q.expr);
        let expr = match expr.strip_prefix("label_values(").and_then(|rest| rest.strip_suffix(')')) {
            Some(args) => {
                let (metric, label) = args.rsplit_once(',').unwrap();
                format!("count by ({}) ({metric})", label.trim())
            }
            None => expr,
        };
        // A panel of problems (`> 0`, `== 0`) is empty in a healthy fabric:
        // what it filters must have data.
        let unfiltered = expr.replace(" > 0", "").replace(" == 0", "");
        for (expr, must_have_data) in [(&expr, unfiltered == expr), (&unfiltered, true)] {
            match query(expr.clone()).await {
                Ok(series) if series.is_empty() && must_have_data => {
                    failures.push(format!("{} {}: no data: {expr}", q.dashboard, q.location))
                }
                Ok(_) => {}
                Err(error) => failures.push(format!("{} {}: {error}: {expr}", q.dashboard, q.location)),
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} queries failed:\n{}",
        failures.len(),
        all_queries().len(),
        failures.join("\n")
    );

    // kubectl fabric status takes the rejects by reason from this Prometheus.
    let status = tokio::process::Command::new(env!("CARGO_BIN_EXE_kubectl-fabric"))
        .args(["status", "--operator", &operator.http.to_string(), "--prometheus", &address.to_string()])
        .args(["--window", "1m"])
        .output()
        .await
        .unwrap();
    let text = String::from_utf8_lossy(&status.stdout);
    assert!(text.contains("\nRejects (last 1m): none\n"), "{text}{}", String::from_utf8_lossy(&status.stderr));
    assert!(text.contains("RoutePolicy fabric/refused: Accepted=False (Invalid)"), "{text}");
    assert_eq!(status.status.code(), Some(1), "the refused policy needs attention: {text}");

    // scripts/dashboard-plots.sh: a few panels as the run saw them, one
    // sidecar (p3) stopped half way, as SVG for docs/metrics.md.
    let Ok(plots) = std::env::var("FABRIC_DASHBOARD_PLOTS") else { return };
    let mut lab = lab;
    let stop = std::time::SystemTime::now();
    lab.nodes.get_mut("p3").unwrap().kill().await;
    tokio::time::sleep(Duration::from_secs(8)).await;
    let end = std::time::SystemTime::now();
    let start = stop - Duration::from_secs(12);
    let seconds = |t: std::time::SystemTime| t.duration_since(std::time::UNIX_EPOCH).unwrap().as_secs_f64();
    let panels = [
        ("routes-active", "Routes active (fabric_routes_active), p3 stopped at t=12 s", "fabric_routes_active"),
        ("link-state-routes", "Link-state routes (fabric_link_state_routes_active)", "fabric_link_state_routes_active"),
        (
            "peer-sessions-up",
            "Peer sessions up (sum by pod of fabric_peer_session_up)",
            "sum by (pod) (fabric_peer_session_up)",
        ),
    ];
    for (file, title, expr) in panels {
        let path = format!(
            "/api/v1/query_range?query={}&start={:.3}&end={:.3}&step=1",
            urlencode(expr),
            seconds(start),
            seconds(end)
        );
        let answer = local_http::get(address, &path).await.unwrap();
        let json: Value = serde_json::from_str(&answer.body).unwrap();
        let series: Vec<(String, Vec<(f64, f64)>)> = json["data"]["result"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| {
                let label = s["metric"]["pod"].as_str().unwrap_or("all").to_owned();
                let points = s["values"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|v| (v[0].as_f64().unwrap() - seconds(start), v[1].as_str().unwrap().parse().unwrap_or(0.0)))
                    .collect();
                (label, points)
            })
            .collect();
        std::fs::write(Path::new(&plots).join(format!("dashboard-{file}.svg")), svg_plot(title, &series)).unwrap();
    }
}

/// A line chart as SVG: `series` of (seconds, value) points, one colour
/// each, with axes, ticks and a legend.
fn svg_plot(title: &str, series: &[(String, Vec<(f64, f64)>)]) -> String {
    const COLOURS: [&str; 6] = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b"];
    let (width, height, left, top, right, bottom) = (640.0, 300.0, 50.0, 30.0, 110.0, 30.0);
    let points = series.iter().flat_map(|(_, p)| p.iter());
    let x_max = points.clone().map(|p| p.0).fold(1.0_f64, f64::max);
    let y_max = points.map(|p| p.1).fold(1.0_f64, f64::max).ceil();
    let x = |t: f64| left + t / x_max * (width - left - right);
    let y = |v: f64| height - bottom - v / y_max * (height - top - bottom);
    let mut svg = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{width}\" height=\"{height}\" font-family=\"sans-serif\" \
         font-size=\"11\">\n<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n\
         <text x=\"{left}\" y=\"18\" font-size=\"13\">{title}</text>\n"
    );
    svg.push_str(&format!(
        "<line x1=\"{left}\" y1=\"{}\" x2=\"{}\" y2=\"{}\" stroke=\"black\"/>\n<line x1=\"{left}\" y1=\"{top}\" \
         x2=\"{left}\" y2=\"{}\" stroke=\"black\"/>\n",
        y(0.0),
        x(x_max),
        y(0.0),
        y(0.0)
    ));
    for step in 0..=4 {
        let value = y_max * f64::from(step) / 4.0;
        svg.push_str(&format!(
            "<text x=\"{}\" y=\"{:.1}\" text-anchor=\"end\">{value:.1}</text>\n",
            left - 4.0,
            y(value) + 4.0
        ));
        let t = x_max * f64::from(step) / 4.0;
        svg.push_str(&format!(
            "<text x=\"{:.1}\" y=\"{}\" text-anchor=\"middle\">{t:.0} s</text>\n",
            x(t),
            height - 10.0
        ));
    }
    for (i, (label, points)) in series.iter().enumerate() {
        let colour = COLOURS[i % COLOURS.len()];
        let line: Vec<String> = points.iter().map(|(t, v)| format!("{:.1},{:.1}", x(*t), y(*v))).collect();
        svg.push_str(&format!(
            "<polyline fill=\"none\" stroke=\"{colour}\" stroke-width=\"2\" points=\"{}\"/>\n\
             <text x=\"{}\" y=\"{}\" fill=\"{colour}\">{label}</text>\n",
            line.join(" "),
            width - right + 10.0,
            top + 14.0 * i as f64 + 10.0
        ));
    }
    svg.push_str("</svg>\n");
    svg
}

fn which(program: &str) -> Result<PathBuf, ()> {
    std::env::var_os("PATH")
        .iter()
        .flat_map(std::env::split_paths)
        .map(|dir| dir.join(program))
        .find(|path| path.is_file())
        .ok_or(())
}

/// Percent-encoding of a query parameter value.
fn urlencode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}
