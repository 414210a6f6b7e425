//! The operator's admin HTTP endpoints, served in both modes: `/status`
//! (objects with their conditions and roll-up, problems, manifest issues,
//! key rotation), `/sidecars` (per-sidecar sync state, like `istioctl
//! proxy-status`) and `/metrics`.

use std::sync::{Arc, Mutex};

use axum::Json;
use axum::extract::State;
use fabric_operator_core::sync_status as status;
use serde_json::{Value, json};

use crate::distribution::Distributor;

/// What the HTTP status shows besides the distributor.
#[derive(Default)]
pub(crate) struct Folder {
    /// Issues of the last load (`error: file document N: ...`).
    pub(crate) issues: Vec<String>,
    /// Loads applied since start.
    pub(crate) applied_loads: u64,
    pub(crate) fingerprint: Option<[u8; 32]>,
}

#[derive(Clone)]
pub(crate) struct AppState {
    pub(crate) distributor: Distributor,
    pub(crate) folder: Arc<Mutex<Folder>>,
}

pub(crate) async fn get_status(State(app): State<AppState>) -> Json<Value> {
    let compilation = app.distributor.compilation();
    let state = app.distributor.state();
    let rollups = status::rollup(&compilation, &state);
    let mut objects = serde_json::Map::new();
    for (object, conditions) in &compilation.conditions {
        let mut conditions: Vec<Value> = conditions.iter().map(|c| json!(c)).collect();
        let mut entry = json!({});
        if let Some(rollup) = rollups.get(object) {
            let mut applied = json!(rollup.applied);
            applied["type"] = json!("Applied");
            conditions.push(applied);
            entry = json!({
                "selectedSidecars": rollup.selected_sidecars,
                "appliedSidecars": rollup.applied_sidecars,
                "nacks": rollup.nacks,
            });
        }
        entry["conditions"] = json!(conditions);
        objects.insert(object.to_string(), entry);
    }
    let folder = app.folder.lock().unwrap_or_else(|p| p.into_inner());
    Json(json!({
        "operator": {"version": env!("CARGO_PKG_VERSION"), "leader": app.distributor.counters().leader},
        "objects": objects,
        "problems": compilation.problems.iter().map(ToString::to_string).collect::<Vec<_>>(),
        "manifestIssues": folder.issues,
        "appliedLoads": folder.applied_loads,
        "pushes": app.distributor.pushes(),
        "keyRotation": app
            .distributor
            .rotation_status()
            .into_iter()
            .map(|(name, status)| (name.to_string(), status))
            .collect::<std::collections::BTreeMap<_, _>>(),
    }))
}

/// `/metrics`: classic text unless the scraper asks for OpenMetrics.
pub(crate) async fn get_metrics(
    State(app): State<AppState>,
    headers: axum::http::HeaderMap,
) -> impl axum::response::IntoResponse {
    let accept = headers.get(axum::http::header::ACCEPT).and_then(|v| v.to_str().ok());
    let format = crate::metrics::MetricsFormat::from_accept(accept);
    ([(axum::http::header::CONTENT_TYPE, format.content_type())], crate::metrics::render(&app.distributor, format))
}

pub(crate) async fn get_sidecars(State(app): State<AppState>) -> Json<Value> {
    let compilation = app.distributor.compilation();
    Json(json!(status::sidecars(&compilation, &app.distributor.state())))
}
