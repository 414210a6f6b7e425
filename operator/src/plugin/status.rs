//! `kubectl fabric status`: one screen on the health of a running fabric
//! (like `linkerd check` or `cilium status`), from the operator's `/status`
//! and `/sidecars`: the operator (version, leading), sidecars by sync state
//! with the names of those not in sync, key rotation, objects with error
//! conditions and the compiler's problems. Pure: the answers in, the text
//! and whether something is wrong out.

use serde_json::Value;

use super::render::table;

/// Reject reasons that say something is wrong with trust (not policy doing
/// its job): any of them over the window needs attention.
const TRUST_REASONS: &[&str] = &[
    "bad_signature",
    "unknown_key",
    "key_not_yet_valid",
    "key_expired",
    "unsigned",
    "stale_issue_time",
    "future_issue_time",
    "v1_message",
];

/// The PromQL of the rejects by reason over `window`.
pub fn rejects_query(window: &str) -> String {
    format!("sum by (reason) (increase(fabric_announcement_rejects_total[{window}])) > 0")
}

/// `(reason, count)` from a Prometheus instant query answer.
pub fn rejects_from(answer: &Value) -> Result<Vec<(String, f64)>, String> {
    if answer["status"] != "success" {
        return Err(format!("Prometheus: {} {}", answer["errorType"], answer["error"]));
    }
    let result = answer["data"]["result"].as_array().ok_or("Prometheus: no data.result")?;
    Ok(result
        .iter()
        .map(|series| {
            let reason = series["metric"]["reason"].as_str().unwrap_or("?").to_owned();
            let value = series["value"][1].as_str().and_then(|v| v.parse().ok()).unwrap_or(0.0);
            (reason, value)
        })
        .collect())
}

/// The status text, and whether something needs attention (the command
/// then exits 1): the replica does not lead, a sidecar is not SYNCED or not
/// connected, a key rotation waits with an error, an object has an error
/// condition, the compiler reports an error, or (with `rejects`, from
/// Prometheus over a window) announcements were refused for a trust reason.
pub fn status(
    status: &Value,
    sidecars: &Value,
    rejects: Option<(&str, &[(String, f64)])>,
) -> Result<(String, bool), String> {
    let sidecars = sidecars.as_array().ok_or("/sidecars: expected a JSON list")?;
    let objects = status["objects"].as_object().ok_or("/status: no `objects`")?;
    let mut out = String::new();
    let mut problem = false;

    let operator = &status["operator"];
    let leader = operator["leader"].as_bool().unwrap_or(false);
    problem |= !leader;
    out.push_str(&format!(
        "Operator: version {}, {}\n",
        operator["version"].as_str().unwrap_or("unknown"),
        if leader { "leading" } else { "NOT LEADING (a standby answered: forward to the Lease holder)" }
    ));

    let mut by_state: std::collections::BTreeMap<String, Vec<String>> = Default::default();
    for sidecar in sidecars {
        let name = sidecar["sidecar"].as_str().unwrap_or("?").to_owned();
        let mut state = sidecar["sync"].as_str().unwrap_or("?").to_owned();
        if sidecar["connected"] == false {
            state = format!("{state}, disconnected");
        }
        by_state.entry(state).or_default().push(name);
    }
    let synced = by_state.get("SYNCED").map_or(0, Vec::len);
    out.push_str(&format!("Sidecars: {synced}/{} SYNCED\n", sidecars.len()));
    for (state, names) in by_state.iter().filter(|(state, _)| *state != "SYNCED") {
        problem = true;
        out.push_str(&format!("  {state}: {}\n", names.join(", ")));
    }

    let rotation = status["keyRotation"].as_object();
    let rows: Vec<Vec<String>> = rotation
        .into_iter()
        .flatten()
        .map(|(name, r)| {
            let state = match (r["error"].as_str(), r["waiting"].as_str()) {
                (Some(error), _) => {
                    problem = true;
                    format!("ERROR: {error}")
                }
                (None, Some(waiting)) => format!("waiting: {waiting}"),
                (None, None) => "ok".to_owned(),
            };
            let text = |v: &Value| v.as_str().map_or("-".to_owned(), str::to_owned);
            vec![name.clone(), text(&r["nodeId"]), text(&r["activeKeyId"]), r["rotations"].to_string(), state]
        })
        .collect();
    if rows.is_empty() {
        out.push_str("Key rotation: no operator-managed RouteKey\n");
    } else {
        out.push_str("Key rotation:\n");
        out.push_str(&table(&["ROUTEKEY", "NODE", "ACTIVE KEY", "ROTATIONS", "STATE"], &rows));
    }

    let mut errors = Vec::new();
    for (object, entry) in objects {
        for condition in entry["conditions"].as_array().into_iter().flatten() {
            let (kind, state) = (condition["type"].as_str().unwrap_or(""), condition["status"].as_str().unwrap_or(""));
            let bad = match kind {
                "Accepted" | "Applied" => state == "False",
                "Conflict" | "Degraded" => state == "True",
                _ => false,
            };
            if bad {
                errors.push(format!(
                    "{object}: {kind}={state} ({}): {}",
                    condition["reason"].as_str().unwrap_or(""),
                    condition["message"].as_str().unwrap_or("")
                ));
            }
        }
    }
    let compile_errors: Vec<&str> = status["problems"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .filter(|p| p.starts_with("error"))
        .collect();
    problem |= !errors.is_empty() || !compile_errors.is_empty();
    out.push_str(&format!("Objects: {} with error conditions\n", errors.len()));
    for error in &errors {
        out.push_str(&format!("  {error}\n"));
    }
    out.push_str(&format!("Problems: {} error(s) from the compiler\n", compile_errors.len()));
    for error in &compile_errors {
        out.push_str(&format!("  {error}\n"));
    }
    match rejects {
        None => out.push_str("Rejects: not shown (pass --prometheus ADDR)\n"),
        Some((window, [])) => out.push_str(&format!("Rejects (last {window}): none\n")),
        Some((window, rejects)) => {
            out.push_str(&format!("Rejects (last {window}):\n"));
            for (reason, count) in rejects {
                let trust = TRUST_REASONS.contains(&reason.as_str());
                problem |= trust;
                out.push_str(&format!("  {reason}: {count:.0}{}\n", if trust { " (trust)" } else { "" }));
            }
        }
    }
    out.push_str(if problem { "Status: needs attention\n" } else { "Status: healthy\n" });
    Ok((out, problem))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn healthy() -> (Value, Value) {
        let status = json!({
            "operator": {"version": "0.1.0", "leader": true},
            "objects": {"RoutePolicy fabric/default": {"conditions": [
                {"type": "Accepted", "status": "True", "reason": "Accepted", "message": "shapes 2 sidecar(s)"},
                {"type": "Applied", "status": "True", "reason": "Applied", "message": "2/2 sidecars on current version"}
            ]}},
            "problems": [],
            "keyRotation": {"fabric/a": {"nodeId": "a", "activeKeyId": "k2", "keys": ["k1", "k2"], "rotations": 1}},
        });
        let sidecars = json!([
            {"sidecar": "fabric/a", "sync": "SYNCED", "connected": true},
            {"sidecar": "fabric/b", "sync": "SYNCED", "connected": true}
        ]);
        (status, sidecars)
    }

    #[test]
    fn a_healthy_fabric_says_so() {
        let (status, sidecars) = healthy();
        let (text, problem) = super::status(&status, &sidecars, Some(("5m", &[]))).unwrap();
        assert!(!problem, "{text}");
        assert!(text.starts_with("Operator: version 0.1.0, leading\nSidecars: 2/2 SYNCED\nKey rotation:\n"), "{text}");
        assert!(
            text.ends_with(
                "Objects: 0 with error conditions\nProblems: 0 error(s) from the compiler\nRejects (last 5m): none\n\
                 Status: healthy\n"
            ),
            "{text}"
        );
        // Policy doing its job is shown, not a problem; a trust reason is.
        let policy = [("policy_destination".to_owned(), 4.0)];
        assert!(!super::status(&status, &sidecars, Some(("5m", &policy))).unwrap().1);
        let forged = [("bad_signature".to_owned(), 2.0)];
        let (text, problem) = super::status(&status, &sidecars, Some(("5m", &forged))).unwrap();
        assert!(problem && text.contains("  bad_signature: 2 (trust)\n"), "{text}");
        let answer = serde_json::json!({"status": "success", "data": {"result": [
            {"metric": {"reason": "bad_signature"}, "value": [1.0, "2"]}]}});
        assert_eq!(rejects_from(&answer).unwrap(), forged);
    }

    #[test]
    fn what_needs_attention_is_named() {
        let (mut status, mut sidecars) = healthy();
        sidecars[1]["sync"] = json!("NACKED");
        status["operator"]["leader"] = json!(false);
        status["keyRotation"]["fabric/a"]["error"] = json!("secrets is forbidden");
        status["objects"]["RoutePolicy fabric/default"]["conditions"][1]["status"] = json!("False");
        status["problems"] = json!(["error: Pod fabric/x: node id x is claimed by two pods"]);
        let (text, problem) = super::status(&status, &sidecars, None).unwrap();
        assert!(problem);
        for expected in [
            "NOT LEADING",
            "Sidecars: 1/2 SYNCED\n  NACKED: fabric/b\n",
            "ERROR: secrets is forbidden",
            "RoutePolicy fabric/default: Applied=False (Applied): 2/2 sidecars on current version",
            "Problems: 1 error(s) from the compiler\n  error: Pod fabric/x",
            "Status: needs attention",
        ] {
            assert!(text.contains(expected), "{expected:?} in\n{text}");
        }
    }
}
