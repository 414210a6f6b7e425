//! What `kubectl fabric` prints: pure functions from the JSON answers of the
//! sidecar's local API and the operator's HTTP API to aligned tables and a
//! readable selection trace. They read the JSON loosely (a missing field is
//! shown as `-`), so a newer sidecar with more fields still renders; only an
//! answer of the wrong shape (an object where a list is expected) is an
//! error.

use std::fmt::Write as _;

use serde_json::Value;

/// `-` for a missing or null value, the text of a string, else the JSON.
fn text(value: &Value) -> String {
    match value {
        Value::Null => "-".into(),
        Value::String(s) if s.is_empty() => "-".into(),
        Value::String(s) => one_line(s),
        other => other.to_string(),
    }
}

/// Newlines and tabs would break a table row.
fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// The strings of a JSON list joined with `sep` (empty when absent).
fn joined(value: &Value, sep: &str) -> String {
    value.as_array().map(|items| items.iter().map(text).collect::<Vec<_>>().join(sep)).unwrap_or_default()
}

fn flag(value: &Value, name: &str) -> bool {
    value.get(name).and_then(Value::as_bool).unwrap_or(false)
}

/// `500us`, `1.5ms`, `2.25s`.
pub fn latency(micros: u64) -> String {
    if micros < 1_000 {
        format!("{micros}us")
    } else if micros < 1_000_000 {
        format!("{}ms", trim_decimals(micros as f64 / 1_000.0, 1))
    } else {
        format!("{}s", trim_decimals(micros as f64 / 1_000_000.0, 2))
    }
}

/// `value` with at most `places` decimals and no trailing zeros.
fn trim_decimals(value: f64, places: usize) -> String {
    let s = format!("{value:.places$}");
    if s.contains('.') { s.trim_end_matches('0').trim_end_matches('.').to_string() } else { s }
}

/// A duration in milliseconds, coarse: `250ms`, `42s`, `3m05s`, `2h10m`.
pub fn duration_ms(ms: i64) -> String {
    let sign = if ms < 0 { "-" } else { "" };
    let ms = ms.unsigned_abs();
    let body = if ms < 1_000 {
        format!("{ms}ms")
    } else if ms < 60_000 {
        format!("{}s", ms / 1_000)
    } else if ms < 3_600_000 {
        format!("{}m{:02}s", ms / 60_000, ms / 1_000 % 60)
    } else {
        format!("{}h{:02}m", ms / 3_600_000, ms / 60_000 % 60)
    };
    format!("{sign}{body}")
}

/// Route metrics (`{"cost", "latency_us", "reliability"}`) on one line:
/// `cost=3 latency=1ms rel=0.99`.
pub fn metrics(value: &Value) -> String {
    if !value.is_object() {
        return "-".into();
    }
    let cost = text(&value["cost"]);
    let latency_text = value["latency_us"].as_u64().map_or_else(|| text(&value["latency_us"]), latency);
    let reliability =
        value["reliability"].as_f64().map_or_else(|| text(&value["reliability"]), |r| trim_decimals(r, 3));
    format!("cost={cost} latency={latency_text} rel={reliability}")
}

/// Columns padded to their widest cell, two spaces apart, the last one not
/// padded (no trailing blanks).
pub fn table(headers: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = headers.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    let header_row: Vec<String> = headers.iter().map(|h| h.to_string()).collect();
    for row in std::iter::once(&header_row).chain(rows) {
        let mut line = String::new();
        for (i, cell) in row.iter().enumerate() {
            if i > 0 {
                line.push_str("  ");
            }
            line.push_str(cell);
            if i + 1 < row.len() {
                let pad = widths[i].saturating_sub(cell.chars().count());
                line.extend(std::iter::repeat_n(' ', pad));
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

/// The path of a route, `a > b > c`; `(local)` for a route this node
/// originates.
fn route_path(route: &Value) -> String {
    let path = joined(&route["path"], " > ");
    match (path.is_empty(), flag(route, "local")) {
        (false, _) => path,
        (true, true) => "(local)".into(),
        (true, false) => "-".into(),
    }
}

fn route_flags(route: &Value) -> String {
    let flags: Vec<&str> = ["local", "signed", "stale"].into_iter().filter(|f| flag(route, f)).collect();
    if flags.is_empty() { "-".into() } else { flags.join(",") }
}

fn tags(route: &Value) -> String {
    let tags = joined(&route["tags"], ",");
    if tags.is_empty() { "-".into() } else { tags }
}

/// `GET /routes` (a list of selected routes) as a table: DESTINATION,
/// NEXT HOP, PATH, METRICS, TAGS, FLAGS.
pub fn routes(answer: &Value) -> Result<String, String> {
    let routes = answer.as_array().ok_or("expected a JSON list of routes")?;
    if routes.is_empty() {
        return Ok("No routes.\n".into());
    }
    let rows: Vec<Vec<String>> = routes
        .iter()
        .map(|route| {
            vec![
                text(&route["destination"]),
                text(&route["next_hop"]),
                route_path(route),
                metrics(&route["metrics"]),
                tags(route),
                route_flags(route),
            ]
        })
        .collect();
    Ok(table(&["DESTINATION", "NEXT HOP", "PATH", "METRICS", "TAGS", "FLAGS"], &rows))
}

/// `GET /sidecars` of the operator as a table, like `istioctl
/// proxy-status`: NAME, NODE, CONNECTED, CURRENT VERSION, ACKED, SYNC,
/// LAST NACK.
pub fn sync(answer: &Value) -> Result<String, String> {
    let sidecars = answer.as_array().ok_or("expected a JSON list of sidecars")?;
    if sidecars.is_empty() {
        return Ok("No sidecars known to the operator. (With several replicas only the leader serves them: \
                   forward to the pod that holds the Lease fabric-operator.)\n"
            .into());
    }
    let rows: Vec<Vec<String>> = sidecars
        .iter()
        .map(|s| {
            let connected = match s["connected"].as_bool() {
                Some(true) => "yes".to_string(),
                Some(false) => "no".to_string(),
                None => "-".to_string(),
            };
            let nack = &s["lastNack"];
            let last_nack = if nack.is_object() {
                format!("{}: {} (version {})", text(&nack["field"]), text(&nack["message"]), text(&nack["version"]))
            } else {
                "-".into()
            };
            vec![
                text(&s["sidecar"]),
                text(&s["nodeId"]),
                connected,
                text(&s["currentVersion"]),
                text(&s["ackedVersion"]),
                text(&s["sync"]),
                last_nack,
            ]
        })
        .collect();
    Ok(table(&["NAME", "NODE", "CONNECTED", "CURRENT VERSION", "ACKED", "SYNC", "LAST NACK"], &rows))
}

/// The winner line of `explain`: the next hop(s) the sidecar answers for the
/// destination under its routing mode, and by which protocol.
fn winner(answer: &Value) -> String {
    let selected = answer["candidates"].as_array().and_then(|c| c.iter().find(|c| c["status"] == "selected"));
    match answer["chosen_by"].as_str() {
        Some("linkState") => {
            let hops = joined(&answer["link_state"]["route"]["nextHops"], ", ");
            format!("{} (link-state)", if hops.is_empty() { "-".into() } else { hops })
        }
        Some(protocol) => match selected {
            Some(c) if flag(c, "local") => format!("{} (originated by this node)", text(&c["next_hop"])),
            Some(c) => format!("{} (path-vector)", text(&c["next_hop"])),
            None => match answer["selected"].as_str() {
                Some(hop) => format!("{hop} ({protocol})"),
                None => format!("- ({protocol})"),
            },
        },
        None => "none: no usable route under this mode".into(),
    }
}

/// Why a candidate is where it is.
fn verdict(candidate: &Value, evaluated_at: Option<i64>) -> String {
    match candidate["status"].as_str() {
        Some("selected") => "SELECTED".into(),
        Some("lost") => format!(
            "LOST to {} on {}: {}",
            text(&candidate["winner"]),
            text(&candidate["criterion"]),
            text(&candidate["detail"])
        ),
        Some("ineligible") => {
            let mut line = format!("INELIGIBLE ({}): {}", text(&candidate["reason"]), text(&candidate["detail"]));
            if let (Some(until), Some(now)) = (candidate["until"].as_i64(), evaluated_at) {
                let _ = write!(line, "; for {} more", duration_ms(until - now));
            }
            line
        }
        _ => text(&candidate["status"]),
    }
}

/// The details line of a candidate: path, metrics, flags, expiry.
fn candidate_details(candidate: &Value, evaluated_at: Option<i64>) -> String {
    let mut parts = vec![format!("path {}", route_path(candidate)), metrics(&candidate["metrics"])];
    let tags = tags(candidate);
    if tags != "-" {
        parts.push(format!("tags {tags}"));
    }
    let flags = route_flags(candidate);
    if flags != "-" {
        parts.push(flags);
    }
    if let (Some(expires), Some(now)) = (candidate["expires_at"].as_i64(), evaluated_at) {
        parts.push(format!("expires in {}", duration_ms(expires - now)));
    }
    parts.join("  ")
}

/// `GET /routes/{destination}/explain`, readable: the winner, every
/// path-vector candidate with why it won, lost (to whom, on which
/// criterion) or is ineligible (held down, suppressed, refused by policy or
/// security, with the reason), the recent rejections (identical ones
/// grouped), and with link-state on, what each area offered.
pub fn explain(answer: &Value) -> Result<String, String> {
    if !answer.is_object() {
        return Err("expected a JSON object (a selection trace)".into());
    }
    let mut out = String::new();
    let destination = match &answer["destination"] {
        Value::Null => text(&answer["link_state"]["destination"]),
        d => text(d),
    };
    let evaluated_at = answer["evaluated_at"].as_i64();
    let _ = writeln!(out, "Destination:  {destination}");
    let _ = writeln!(out, "Winner:       {}", winner(answer));
    let _ = writeln!(out, "Mode:         {}", text(&answer["mode"]));
    let order = joined(&answer["order"], " > ");
    if !order.is_empty() {
        let _ = writeln!(out, "Order:        {order}");
    }

    if let Some(candidates) = answer["candidates"].as_array() {
        let _ = writeln!(out, "\nPath-vector candidates ({}):", candidates.len());
        if candidates.is_empty() {
            let _ = writeln!(out, "  none stored");
        }
        let width = candidates.iter().map(|c| text(&c["next_hop"]).chars().count()).max().unwrap_or(0);
        for candidate in candidates {
            let marker = match candidate["status"].as_str() {
                Some("selected") => '*',
                Some("lost") => '-',
                _ => 'x',
            };
            let hop = text(&candidate["next_hop"]);
            let _ = writeln!(out, "  {marker} {hop:<width$}  {}", verdict(candidate, evaluated_at));
            let _ = writeln!(out, "    {:<width$}  {}", "", candidate_details(candidate, evaluated_at));
            if let Some(violation) = candidate["dry_run_violation"].as_str() {
                let _ = writeln!(out, "    {:<width$}  dry-run policy would reject it: {}", "", one_line(violation));
            }
        }
    }

    if let Some(rejections) = answer["rejections"].as_array().filter(|r| !r.is_empty()) {
        let groups = group_rejections(rejections);
        let _ = writeln!(
            out,
            "\nRecent rejections ({} message(s), {} distinct, most recent last):",
            rejections.len(),
            groups.len()
        );
        let ago = |at: &Value| match (at.as_i64(), evaluated_at) {
            (Some(at), Some(now)) => format!("{} ago", duration_ms(now - at)),
            _ => text(at),
        };
        let rows: Vec<Vec<String>> = groups
            .iter()
            .map(|g| {
                let first = if g.count > 1 { ago(&g.first["at"]) } else { "-".into() };
                vec![
                    ago(&g.last["at"]),
                    g.count.to_string(),
                    first,
                    text(&g.last["from"]),
                    text(&g.last["reason"]),
                    text(&g.last["detail"]),
                ]
            })
            .collect();
        for line in table(&["LAST", "COUNT", "FIRST", "FROM", "REASON", "DETAIL"], &rows).lines() {
            let _ = writeln!(out, "  {line}");
        }
    }

    let link_state = &answer["link_state"];
    if link_state.is_object() {
        out.push_str(&explain_link_state(link_state));
    }
    Ok(out)
}

/// Identical rejections (same sender, reason and detail), as a refreshed
/// announcement that is refused again every time.
struct RejectionGroup<'a> {
    first: &'a Value,
    last: &'a Value,
    count: usize,
}

/// Rejections grouped, in the order of their most recent occurrence.
fn group_rejections(rejections: &[Value]) -> Vec<RejectionGroup<'_>> {
    let mut groups: Vec<RejectionGroup<'_>> = Vec::new();
    for rejection in rejections {
        let same =
            |g: &RejectionGroup<'_>| ["from", "reason", "detail"].iter().all(|key| g.last[*key] == rejection[*key]);
        match groups.iter().position(same) {
            Some(i) => {
                let mut group = groups.remove(i);
                group.last = rejection;
                group.count += 1;
                groups.push(group);
            }
            None => groups.push(RejectionGroup { first: rejection, last: rejection, count: 1 }),
        }
    }
    groups
}

/// The `link_state` part of an explain answer.
fn explain_link_state(ls: &Value) -> String {
    let mut out = String::new();
    let route = &ls["route"];
    if route.is_object() {
        let _ = writeln!(
            out,
            "\nLink-state route: next hops {}, cost {}, {}, areas {}",
            joined(&route["nextHops"], ", "),
            text(&route["cost"]),
            text(&route["scope"]),
            joined(&route["areas"], ", ")
        );
    } else {
        let _ = writeln!(out, "\nLink-state route: none (no area reaches the destination)");
    }
    let dropped = joined(&ls["droppedByMaxPaths"], ", ");
    if !dropped.is_empty() {
        let _ = writeln!(out, "  equal-cost next hops left out by maxPaths: {dropped}");
    }
    if let Some(candidates) = ls["candidates"].as_array().filter(|c| !c.is_empty()) {
        let rows: Vec<Vec<String>> = candidates
            .iter()
            .map(|c| {
                let via = joined(&c["via"], ", ");
                vec![
                    text(&c["area"]),
                    text(&c["scope"]),
                    text(&c["cost"]),
                    joined(&c["nextHops"], ","),
                    if via.is_empty() { "-".into() } else { via },
                    text(&c["verdict"]),
                ]
            })
            .collect();
        for line in table(&["AREA", "SCOPE", "COST", "NEXT HOPS", "VIA", "VERDICT"], &rows).lines() {
            let _ = writeln!(out, "  {line}");
        }
    }
    if let Some(paths) = ls["paths"].as_array().filter(|p| !p.is_empty()) {
        let _ = writeln!(out, "  Paths:");
        for p in paths {
            let mut line =
                format!("{} (area {}): {}", text(&p["nextHop"]), text(&p["area"]), joined(&p["path"], " > "));
            if !p["viaBorderRouter"].is_null() {
                let _ = write!(
                    line,
                    ", then border router {} (cost {})",
                    text(&p["viaBorderRouter"]),
                    text(&p["summaryCost"])
                );
            }
            line.push_str(if flag(p, "used") { "  used" } else { "  not used (maxPaths)" });
            let _ = writeln!(out, "    {line}");
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn a_table_is_aligned_without_trailing_blanks() {
        let rows =
            vec![vec!["a".to_string(), "long value".into(), "x".into()], vec!["bbbb".into(), "v".into(), "".into()]];
        assert_eq!(table(&["A", "B", "C"], &rows), "A     B           C\na     long value  x\nbbbb  v\n");
    }

    #[test]
    fn units_are_short() {
        assert_eq!(latency(500), "500us");
        assert_eq!(latency(1_000), "1ms");
        assert_eq!(latency(1_500), "1.5ms");
        assert_eq!(latency(2_250_000), "2.25s");
        assert_eq!(duration_ms(250), "250ms");
        assert_eq!(duration_ms(85_400), "1m25s");
        assert_eq!(duration_ms(7_900_000), "2h11m");
        assert_eq!(duration_ms(-3_000), "-3s");
        assert_eq!(
            metrics(&json!({"cost": 3, "latency_us": 1000, "reliability": 0.995})),
            "cost=3 latency=1ms rel=0.995"
        );
        assert_eq!(metrics(&json!({"cost": 0, "latency_us": 0, "reliability": 1.0})), "cost=0 latency=0us rel=1");
        assert_eq!(metrics(&Value::Null), "-");
    }

    /// Recorded from edge-a of `scripts/demo.sh` (trimmed).
    fn demo_routes() -> Value {
        json!([
            {"destination": "api-a", "next_hop": "edge-a", "path": [], "hop_count": 0,
             "metrics": {"cost": 0, "latency_us": 0, "reliability": 1.0}, "tags": [], "local": true,
             "signed": false, "stale": false},
            {"destination": "ledger", "next_hop": "core-2", "path": ["core-2", "edge-b"], "hop_count": 2,
             "metrics": {"cost": 3, "latency_us": 1000, "reliability": 1.0}, "tags": ["pci", "eu"],
             "local": false, "signed": true, "stale": true}
        ])
    }

    #[test]
    fn routes_render_as_a_table() {
        assert_eq!(
            routes(&demo_routes()).unwrap(),
            "\
DESTINATION  NEXT HOP  PATH             METRICS                   TAGS    FLAGS
api-a        edge-a    (local)          cost=0 latency=0us rel=1  -       local
ledger       core-2    core-2 > edge-b  cost=3 latency=1ms rel=1  pci,eu  signed,stale
"
        );
        assert_eq!(routes(&json!([])).unwrap(), "No routes.\n");
        assert!(routes(&json!({"error": "x"})).is_err());
    }

    #[test]
    fn sync_renders_like_proxy_status() {
        let answer = json!([
            {"sidecar": "fabric/core-1", "nodeId": "core-1", "peerAddress": "127.0.0.1:1", "connected": true,
             "sentVersion": "9bfd50d13780e2f2", "ackedVersion": "9bfd50d13780e2f2", "appliedVersion": "9bfd50d13780e2f2",
             "lastNack": null, "currentVersion": "9bfd50d13780e2f2", "sync": "SYNCED"},
            {"sidecar": "fabric/s4", "nodeId": "s4-renamed", "connected": false, "sentVersion": "aa",
             "ackedVersion": null, "appliedVersion": "bootstrap-s4", "currentVersion": "aa", "sync": "NACKED",
             "lastNack": {"version": "aa", "field": "nodeId", "message": "cannot change at runtime\n(s4 -> s4-renamed)"}},
            {"sidecar": "fabric/x", "nodeId": "x", "connected": true, "currentVersion": null, "sync": "NOT SENT",
             "lastNack": null}
        ]);
        assert_eq!(
            sync(&answer).unwrap(),
            "\
NAME           NODE        CONNECTED  CURRENT VERSION   ACKED             SYNC      LAST NACK
fabric/core-1  core-1      yes        9bfd50d13780e2f2  9bfd50d13780e2f2  SYNCED    -
fabric/s4      s4-renamed  no         aa                -                 NACKED    nodeId: cannot change at runtime (s4 -> s4-renamed) (version aa)
fabric/x       x           yes        -                 -                 NOT SENT  -
"
        );
        assert!(sync(&json!([])).unwrap().starts_with("No sidecars known to the operator. (With several replicas"));
        assert!(sync(&json!("nope")).is_err());
    }

    /// Recorded from edge-a of `scripts/demo.sh` after the edit, plus an
    /// ineligible candidate, a dry-run violation and a rejection.
    fn demo_explain() -> Value {
        json!({
            "destination": "payments", "evaluated_at": 1_000_000,
            "order": ["local_origin", "score", "hop_count", "latency", "reliability", "advertiser"],
            "selected": "core-2",
            "candidates": [
                {"next_hop": "core-2", "path": ["core-2", "edge-b"], "hop_count": 2,
                 "metrics": {"cost": 3, "latency_us": 1000, "reliability": 1.0}, "tags": [], "epoch": 1,
                 "received_at": 990_000, "expires_at": 1_085_000, "local": false, "signed": true, "stale": false,
                 "dry_run_violation": "tag pci not allowed by RoutePolicy fabric/strict", "status": "selected"},
                {"next_hop": "core-1", "path": ["core-1", "edge-b"], "hop_count": 2,
                 "metrics": {"cost": 11, "latency_us": 1000, "reliability": 1.0}, "tags": [], "epoch": 1,
                 "received_at": 990_000, "expires_at": 1_085_000, "local": false, "signed": true, "stale": false,
                 "dry_run_violation": null, "status": "lost", "winner": "core-2", "criterion": "score",
                 "detail": "cost 11 > 3"},
                {"next_hop": "core-3", "path": ["core-3", "edge-b"], "hop_count": 2,
                 "metrics": {"cost": 2, "latency_us": 800, "reliability": 1.0}, "tags": [], "epoch": 1,
                 "received_at": 990_000, "expires_at": 1_085_000, "local": false, "signed": true, "stale": false,
                 "dry_run_violation": null, "status": "ineligible", "reason": "suppressed",
                 "detail": "flap penalty 3120", "until": 1_042_000}
            ],
            "rejections": [
                {"at": 997_000, "destination": "payments", "from": "core-4", "reason": "loop_detected",
                 "detail": "path contains edge-a"}
            ],
            "chosen_by": "pathVector", "mode": "pathVector"
        })
    }

    #[test]
    fn explain_names_the_winner_and_why_the_others_lost() {
        assert_eq!(
            explain(&demo_explain()).unwrap(),
            "\
Destination:  payments
Winner:       core-2 (path-vector)
Mode:         pathVector
Order:        local_origin > score > hop_count > latency > reliability > advertiser

Path-vector candidates (3):
  * core-2  SELECTED
            path core-2 > edge-b  cost=3 latency=1ms rel=1  signed  expires in 1m25s
            dry-run policy would reject it: tag pci not allowed by RoutePolicy fabric/strict
  - core-1  LOST to core-2 on score: cost 11 > 3
            path core-1 > edge-b  cost=11 latency=1ms rel=1  signed  expires in 1m25s
  x core-3  INELIGIBLE (suppressed): flap penalty 3120; for 42s more
            path core-3 > edge-b  cost=2 latency=800us rel=1  signed  expires in 1m25s

Recent rejections (1 message(s), 1 distinct, most recent last):
  LAST    COUNT  FIRST  FROM    REASON         DETAIL
  3s ago  1      -      core-4  loop_detected  path contains edge-a
"
        );
    }

    #[test]
    fn explain_of_a_local_route_and_of_no_route() {
        let local = json!({
            "destination": "api-a", "evaluated_at": 5, "order": ["local_origin", "score"], "selected": "edge-a",
            "candidates": [{"next_hop": "edge-a", "path": [], "hop_count": 0,
                "metrics": {"cost": 0, "latency_us": 0, "reliability": 1.0}, "tags": ["t"], "epoch": 1,
                "received_at": 0, "expires_at": null, "local": true, "signed": false, "stale": false,
                "dry_run_violation": null, "status": "selected"}],
            "rejections": [], "chosen_by": "pathVector", "mode": "pathVector"
        });
        let text = explain(&local).unwrap();
        assert!(text.contains("Winner:       edge-a (originated by this node)\n"), "{text}");
        assert!(
            text.contains("  * edge-a  SELECTED\n            path (local)  cost=0 latency=0us rel=1  tags t  local\n"),
            "{text}"
        );
        assert!(!text.contains("Recent rejections"), "{text}");

        // Everything refused: a trace with rejections only.
        let refused = json!({
            "destination": "x", "evaluated_at": 10_000, "order": [], "selected": null, "candidates": [],
            "rejections": [{"at": 9_000, "destination": "x", "from": "p", "reason": "bad_signature", "detail": "d"}],
            "mode": "linkStateOnly"
        });
        let text = explain(&refused).unwrap();
        assert!(text.contains("Winner:       none: no usable route under this mode\n"), "{text}");
        assert!(text.contains("Path-vector candidates (0):\n  none stored\n"), "{text}");
        assert!(text.contains("  1s ago  1      -      p     bad_signature  d\n"), "{text}");
        assert!(explain(&json!([])).is_err());
    }

    #[test]
    fn repeated_rejections_are_grouped() {
        // A denied route refreshed every 30 s is refused every time.
        let rejection = |at: i64, from: &str| {
            json!({"at": at, "destination": "scratch-b", "from": from, "reason": "policy_destination",
                   "detail": "destination scratch-b matches destinations.deny"})
        };
        let answer = json!({
            "destination": "scratch-b", "evaluated_at": 100_000, "order": [], "selected": null, "candidates": [],
            "rejections": [rejection(10_000, "edge-b"), rejection(20_000, "core-9"), rejection(40_000, "edge-b"),
                           rejection(70_000, "edge-b")],
            "mode": "pathVector"
        });
        let text = explain(&answer).unwrap();
        assert!(
            text.ends_with(
                "\
Recent rejections (4 message(s), 2 distinct, most recent last):
  LAST       COUNT  FIRST      FROM    REASON              DETAIL
  1m20s ago  1      -          core-9  policy_destination  destination scratch-b matches destinations.deny
  30s ago    3      1m30s ago  edge-b  policy_destination  destination scratch-b matches destinations.deny
"
            ),
            "{text}"
        );
    }

    #[test]
    fn explain_shows_the_link_state_side() {
        let answer = json!({
            "link_state": {
                "destination": "dst",
                "route": {"destination": "dst", "cost": 4, "nextHops": ["p1", "p2"], "scope": "intraArea",
                          "areas": ["core"], "latency_us": 0, "reliability": 1.0},
                "equalCostNextHops": ["p1", "p2", "p3"], "droppedByMaxPaths": ["p3"],
                "candidates": [
                    {"area": "core", "scope": "intraArea", "cost": 4, "nextHops": ["p1", "p2", "p3"],
                     "sourceArea": "core", "via": [], "verdict": "chosen"},
                    {"area": "edge", "scope": "interArea", "cost": 3, "nextHops": ["b1"], "sourceArea": "dmz",
                     "via": ["b1"], "verdict": "interAreaLosesToIntraArea"}
                ],
                "paths": [
                    {"nextHop": "p1", "area": "core", "path": ["me", "p1", "dst"], "used": true},
                    {"nextHop": "b1", "area": "edge", "path": ["me", "b1"], "viaBorderRouter": "b1",
                     "summaryCost": 2, "used": false}
                ]
            },
            "chosen_by": "linkState", "mode": "linkStateOnly"
        });
        assert_eq!(
            explain(&answer).unwrap(),
            "\
Destination:  dst
Winner:       p1, p2 (link-state)
Mode:         linkStateOnly

Link-state route: next hops p1, p2, cost 4, intraArea, areas core
  equal-cost next hops left out by maxPaths: p3
  AREA  SCOPE      COST  NEXT HOPS  VIA  VERDICT
  core  intraArea  4     p1,p2,p3   -    chosen
  edge  interArea  3     b1         b1   interAreaLosesToIntraArea
  Paths:
    p1 (area core): me > p1 > dst  used
    b1 (area edge): me > b1, then border router b1 (cost 2)  not used (maxPaths)
"
        );
    }
}
