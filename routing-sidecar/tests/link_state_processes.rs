//! Link-state mode across real `routing-sidecar` processes on 127.0.0.1
//! (OS-chosen ports, wired through their local APIs), next to path-vector:
//! equal-cost multipath chosen by link-state, rerouting when a branch dies,
//! fallback to path-vector in `preferLinkState`, none in `linkStateOnly`,
//! and destinations served by another node answered by link-state.

use std::path::{Path, PathBuf};
use std::sync::LazyLock;
use std::time::Duration;

use fabric_core::config::{LinkStateAreaMembership, LocalRoute};
use fabric_core::ids::Tag;
use fabric_core::{NodeId, SidecarConfig};
use fabric_engine::sim::Topology;
use fabric_link_state::{LinkStateConfig, RoutingMode};
use fabric_sidecar::runtime::lab::{Lab, SidecarProcess};
use fabric_testkit::process::{scratch, sidecar_exe};
use fabric_testkit::wait::eventually;
use serde_json::Value;

fn exe() -> &'static Path {
    static EXE: LazyLock<PathBuf> = LazyLock::new(sidecar_exe);
    &EXE
}

/// An equal-cost diamond of link-state nodes, and `legacy`, a path-vector
/// only node hanging off `dst`. Every node originates its own id as a
/// path-vector destination.
///
/// ```text
///        p1
///      /    \
///   src      dst -- legacy (path-vector only)
///      \    /
///        p2
/// ```
fn diamond() -> Topology {
    let node = |id: &str| format!("  - {{id: {id}, originate: [{{destination: {id}}}]}}\n");
    let nodes: String = ["src", "p1", "p2", "dst", "legacy"].iter().map(|id| node(id)).collect();
    let yaml = format!(
        "nodes:\n{nodes}links:\n  - {{a: src, b: p1}}\n  - {{a: src, b: p2}}\n  - {{a: p1, b: dst}}\n\
         \x20 - {{a: p2, b: dst}}\n  - {{a: dst, b: legacy}}\n"
    );
    Topology::from_yaml(&yaml).expect("topology")
}

/// Short hold time and reconnects, and link-state on every node but
/// `legacy`; `dst` keeps its link to `legacy` out of link-state.
fn link_state_in(mode: RoutingMode) -> impl Fn(&mut SidecarConfig) {
    move |config| {
        config.session.hold_time = Duration::from_millis(900);
        config.session.reconnect_initial = Duration::from_millis(20);
        config.session.reconnect_max = Duration::from_millis(200);
        if config.node_id.as_str() == "legacy" {
            return;
        }
        config.link_state = Some(LinkStateConfig { mode, ..LinkStateConfig::default() });
        if config.node_id.as_str() == "dst" {
            config.link_state_areas = vec![LinkStateAreaMembership {
                area: "backbone".into(),
                neighbors: Some(vec![NodeId::from("p1"), NodeId::from("p2")]),
            }];
        }
    }
}

/// `GET /routes/{destination}`: `None` on 404.
async fn route(node: &SidecarProcess, destination: &str) -> Option<Value> {
    let response = node.get(&format!("/routes/{destination}")).await.expect("API answers");
    match response.status {
        200 => Some(response.json().expect("JSON")),
        404 => None,
        status => panic!("GET /routes/{destination}: {status} {}", response.body),
    }
}

fn strings(value: &Value) -> Vec<&str> {
    value.as_array().map(|items| items.iter().filter_map(Value::as_str).collect()).unwrap_or_default()
}

/// Whether `node` answers `destination` through link-state with exactly `hops`.
async fn link_state_hops_are(node: &SidecarProcess, destination: &str, hops: &[&str]) -> bool {
    route(node, destination)
        .await
        .is_some_and(|answer| answer["chosen_by"] == "linkState" && strings(&answer["next_hops"]) == hops)
}

fn metric(text: &str, series: &str) -> f64 {
    text.lines()
        .find_map(|line| line.strip_prefix(series).and_then(|rest| rest.trim().parse().ok()))
        .unwrap_or_else(|| panic!("no {series} in\n{text}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prefer_link_state_spreads_over_equal_cost_paths_and_falls_back_to_path_vector() {
    let mut lab =
        Lab::start(exe(), &diamond(), &scratch("prefer"), link_state_in(RoutingMode::PreferLinkState)).await.unwrap();
    lab.wait_for_routes(5, Duration::from_secs(20)).await.unwrap();
    let src = lab.node("src");
    eventually(Duration::from_secs(20), "src has both equal-cost next hops to dst", || {
        link_state_hops_are(src, "dst", &["p1", "p2"])
    })
    .await;

    // Existing fields stay: next_hop is the first of the next hops.
    let answer = route(src, "dst").await.unwrap();
    assert_eq!(answer["next_hop"], "p1", "{answer}");
    assert_eq!(answer["fallback"], false);
    assert_eq!(answer["mode"], "preferLinkState");
    assert_eq!(answer["metrics"]["cost"], 2);
    assert_eq!(strings(&answer["path"]), ["p1", "dst"]);

    // legacy is no link-state node: path-vector answers, as a fallback.
    let answer = route(src, "legacy").await.expect("path-vector knows legacy");
    assert_eq!((answer["chosen_by"].as_str(), answer["fallback"].as_bool()), (Some("pathVector"), Some(true)));
    assert_eq!(strings(&answer["path"]).last(), Some(&"legacy"));
    // And legacy itself, without link-state, answers as before.
    let answer = route(lab.node("legacy"), "src").await.unwrap();
    assert_eq!((answer["chosen_by"].as_str(), answer["mode"].as_str()), (Some("pathVector"), Some("pathVector")));

    let explain = src.get_json("/routes/dst/explain").await.unwrap();
    assert_eq!(explain["chosen_by"], "linkState");
    assert_eq!(strings(&explain["link_state"]["equalCostNextHops"]), ["p1", "p2"]);
    assert!(explain["candidates"].is_array(), "path-vector trace kept: {explain}");

    let status = src.get_json("/link-state").await.unwrap();
    assert_eq!(status["mode"], "preferLinkState");
    assert_eq!(status["lsdbEntries"]["backbone"], 4, "src, p1, p2, dst: {status}");
    assert!(status["spfRunsTotal"].as_u64().unwrap() > 0);
    assert_eq!(lab.node("legacy").get("/link-state").await.unwrap().status, 404);
    let metrics = src.get("/metrics").await.unwrap().body;
    assert_eq!(metric(&metrics, "fabric_link_state_lsdb_entries{area=\"backbone\"}"), 4.0);
    assert!(metric(&metrics, "fabric_link_state_spf_duration_seconds_count") > 0.0);

    // One branch dies: one next hop is left.
    lab.nodes.get_mut("p1").unwrap().kill().await;
    let src = lab.node("src");
    let took = eventually(Duration::from_secs(10), "src routes to dst through p2 only", || {
        link_state_hops_are(src, "dst", &["p2"])
    })
    .await;
    eprintln!("link-state rerouted {took:?} after the kill");
    assert_eq!(route(src, "dst").await.unwrap()["next_hop"], "p2");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn link_state_only_answers_nothing_spf_cannot_reach() {
    let lab = Lab::start(exe(), &diamond(), &scratch("only"), link_state_in(RoutingMode::LinkStateOnly)).await.unwrap();
    lab.wait_for_routes(5, Duration::from_secs(20)).await.unwrap();
    let src = lab.node("src");
    eventually(Duration::from_secs(20), "src has both equal-cost next hops to dst", || {
        link_state_hops_are(src, "dst", &["p1", "p2"])
    })
    .await;
    assert_eq!(route(src, "dst").await.unwrap()["mode"], "linkStateOnly");
    // Path-vector has a route to legacy, but the mode does not use it.
    assert!(src.get_json("/routes").await.unwrap().as_array().unwrap().iter().any(|r| r["destination"] == "legacy"));
    assert!(route(src, "legacy").await.is_none(), "legacy must not be answered in linkStateOnly");
    // This node's own destination is still answered, locally.
    assert_eq!(route(src, "src").await.unwrap()["local"], true);

    // Live switch to preferLinkState: legacy is answered again, by path-vector.
    let mut config = lab.configs["src"].clone();
    config.link_state.as_mut().unwrap().mode = RoutingMode::PreferLinkState;
    assert_eq!(src.apply(&config).await.unwrap().status, 200);
    eventually(Duration::from_secs(5), "src falls back to path-vector for legacy", || async {
        route(src, "legacy").await.is_some_and(|answer| answer["chosen_by"] == "pathVector")
    })
    .await;
    assert!(link_state_hops_are(src, "dst", &["p1", "p2"]).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn link_state_only_answers_a_destination_another_node_serves() {
    // dst also serves cluster-d, with metric 3 and a tag.
    let base = link_state_in(RoutingMode::LinkStateOnly);
    let configure = move |config: &mut SidecarConfig| {
        base(config);
        if config.node_id.as_str() == "dst" {
            config.originate.push(LocalRoute {
                destination: "cluster-d".into(),
                cost: 3,
                latency_us: 0,
                reliability: 1.0,
                tags: vec![Tag::from("gpu")],
            });
        }
    };
    let lab = Lab::start(exe(), &diamond(), &scratch("named"), configure).await.unwrap();
    let src = lab.node("src");
    eventually(Duration::from_secs(20), "src routes cluster-d over both equal-cost next hops", || {
        link_state_hops_are(src, "cluster-d", &["p1", "p2"])
    })
    .await;
    let answer = route(src, "cluster-d").await.unwrap();
    assert_eq!(answer["mode"], "linkStateOnly");
    assert_eq!(answer["metrics"]["cost"], 5, "two hops of cost 1, then the metric: {answer}");
    assert_eq!(strings(&answer["path"]), ["p1", "dst"]);
    assert_eq!(strings(&answer["tags"]), ["gpu"]);

    let explain = src.get_json("/routes/cluster-d/explain").await.unwrap();
    assert_eq!(explain["chosen_by"], "linkState");
    let offers = explain["link_state_destination"]["offers"].as_array().expect("offers");
    assert_eq!(
        (offers.len(), offers[0]["via"].as_str(), offers[0]["verdict"].as_str()),
        (1, Some("dst"), Some("chosen"))
    );
    let status = src.get_json("/link-state").await.unwrap();
    assert!(status["destinationRoutes"].as_array().unwrap().iter().any(|r| r["destination"] == "cluster-d"));

    // legacy's destination stays unanswered: no link-state node serves it.
    assert!(route(src, "legacy").await.is_none());
}
