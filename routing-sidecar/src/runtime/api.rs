//! The local HTTP API (localhost): what the application and operators ask
//! the node. Errors are JSON `{"error": ..., "field": ...}`.

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::Serialize;

use crate::config::SidecarConfig;
use crate::runtime::handle::{NodeGone, NodeHandle};
use crate::runtime::metrics::{MetricsFormat, MetricsInput, PeerMetrics, render};

#[derive(Serialize)]
struct ApiError {
    error: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    field: Option<String>,
}

fn error(status: StatusCode, message: impl Into<String>, field: Option<String>) -> Response {
    (status, Json(ApiError { error: message.into(), field })).into_response()
}

impl IntoResponse for NodeGone {
    fn into_response(self) -> Response {
        error(StatusCode::SERVICE_UNAVAILABLE, self.to_string(), None)
    }
}

pub fn router(node: NodeHandle) -> Router {
    Router::new()
        .route("/routes", get(routes))
        .route("/routes/{destination}", get(route))
        .route("/routes/{destination}/explain", get(explain))
        .route("/link-state", get(link_state))
        .route("/peers", get(peers))
        .route("/stats", get(stats))
        .route("/config", get(config).put(put_config))
        .route("/metrics", get(metrics))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .fallback(|| async { error(StatusCode::NOT_FOUND, "no such endpoint", None) })
        // A config with tens of thousands of originated routes is several MiB.
        .layer(axum::extract::DefaultBodyLimit::max(64 * 1024 * 1024))
        .with_state(node)
}

async fn routes(State(node): State<NodeHandle>) -> Result<Response, NodeGone> {
    Ok(Json(node.routes().await?).into_response())
}

async fn route(State(node): State<NodeHandle>, Path(destination): Path<String>) -> Result<Response, NodeGone> {
    Ok(match node.route(destination.clone()).await? {
        Some(best) => Json(best).into_response(),
        None => error(StatusCode::NOT_FOUND, format!("no route to {destination}"), None),
    })
}

async fn explain(State(node): State<NodeHandle>, Path(destination): Path<String>) -> Result<Response, NodeGone> {
    Ok(match node.explain(destination.clone()).await? {
        Some(trace) => Json(trace).into_response(),
        None => error(StatusCode::NOT_FOUND, format!("nothing known about {destination}"), None),
    })
}

async fn link_state(State(node): State<NodeHandle>) -> Result<Response, NodeGone> {
    Ok(match node.link_state().await? {
        Some(status) => Json(status).into_response(),
        None => error(StatusCode::NOT_FOUND, "link-state is not enabled (no linkState in the config)", None),
    })
}

async fn peers(State(node): State<NodeHandle>) -> Result<Response, NodeGone> {
    Ok(Json(node.peers().await?).into_response())
}

async fn stats(State(node): State<NodeHandle>) -> Result<Response, NodeGone> {
    Ok(Json(node.stats().await?).into_response())
}

/// Version, source and history of the config, and under `effective` the
/// settings in force (timers, stability, limits, policies, neighbors), so a
/// user can check them from the API; trusted keys show their ids and
/// validity, not the key material.
async fn config(State(node): State<NodeHandle>) -> Result<Response, NodeGone> {
    let status = node.config().await?;
    let effective = node.effective_config().await?;
    let mut body = serde_json::to_value(&status).unwrap_or_default();
    body["effective"] = redacted(&effective);
    Ok(Json(body).into_response())
}

fn redacted(config: &SidecarConfig) -> serde_json::Value {
    let mut value = serde_json::to_value(config).unwrap_or_default();
    for key in value["security"]["trustedKeys"].as_array_mut().into_iter().flatten() {
        key["publicKey"] = serde_json::Value::from("<redacted>");
    }
    value
}

/// Applies a SidecarConfig (YAML or JSON body) live.
async fn put_config(State(node): State<NodeHandle>, body: String) -> Result<Response, NodeGone> {
    let config = match SidecarConfig::from_yaml(&body) {
        Ok(config) => config,
        Err(e) => return Ok(error(StatusCode::UNPROCESSABLE_ENTITY, e.to_string(), Some(e.field))),
    };
    Ok(match node.apply_config(config, "api").await? {
        Ok(()) => Json(node.config().await?).into_response(),
        Err(e) => error(StatusCode::UNPROCESSABLE_ENTITY, e.to_string(), Some(e.field)),
    })
}

async fn metrics(State(node): State<NodeHandle>, headers: HeaderMap) -> Result<Response, NodeGone> {
    let stats = node.stats().await?;
    let peers: Vec<PeerMetrics> = stats
        .peers
        .iter()
        .map(|p| PeerMetrics {
            peer: p.id.to_string(),
            established: p.established,
            sessions_established_total: p.sessions_established_total,
            session_failures_total: p.session_failures_total,
            routes_received: u64::from(p.routes_received),
            send_queue_bytes: p.send_queue_bytes,
        })
        .collect();
    let format = MetricsFormat::from_accept(headers.get(header::ACCEPT).and_then(|v| v.to_str().ok()));
    let body = render(
        &MetricsInput {
            stats: &stats.engine,
            peers: &peers,
            node_id: stats.config.node_id.as_str(),
            config_version: stats.config.version.as_deref(),
            config_applied_total: stats.config.applied_total,
            config_rejected_total: stats.config.rejected_total,
            link_state: stats.link_state.as_ref(),
            session_ends: &stats.session_ends_total,
        },
        format,
    );
    Ok(([(header::CONTENT_TYPE, format.content_type())], body).into_response())
}

async fn healthz() -> Response {
    Json(serde_json::json!({"status": "ok"})).into_response()
}

/// Ready once the node runs with a config in force (it answers queries).
async fn readyz(State(node): State<NodeHandle>) -> Result<Response, NodeGone> {
    let config = node.config().await?;
    Ok(Json(serde_json::json!({"status": "ready", "configVersion": config.version})).into_response())
}
