//! The local HTTP API (localhost): what the application and operators ask
//! the node. Errors are JSON `{"error": ..., "field": ...}`.
//!
//! Every container of the pod reaches this port, so reading is open and
//! writing is not: `PUT /config` is refused when the operator is the source
//! of config, and otherwise needs the bearer token of `--api-token-file`
//! ([`ConfigWrites`]).

use std::sync::Arc;

use axum::extract::{FromRef, Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::runtime::handle::{NodeGone, NodeHandle};
use crate::runtime::metrics::{MetricsFormat, MetricsInput, peer_metrics, render};
use crate::runtime::tls::PeerTls;
use fabric_core::config::SidecarConfig;

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

/// Who may replace the config with `PUT /config`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ConfigWrites {
    /// The operator (`--operator`) is the only source of config; the local
    /// API is read-only.
    Operator,
    /// No `--api-token-file`: nobody.
    Disabled,
    /// Callers presenting this bearer token, kept as its SHA-256 digest so
    /// the comparison's timing says nothing about the token.
    Token([u8; 32]),
}

impl ConfigWrites {
    /// Writes with `token` (surrounding whitespace, e.g. a trailing newline
    /// of the file, is not part of it); `None` for an empty token.
    pub fn token(token: &str) -> Option<Self> {
        let token = token.trim();
        (!token.is_empty()).then(|| ConfigWrites::Token(Sha256::digest(token.as_bytes()).into()))
    }

    /// Whether a request with `headers` may write, or the status and reason
    /// to refuse it with.
    fn check(&self, headers: &HeaderMap) -> Result<(), (StatusCode, &'static str)> {
        match self {
            ConfigWrites::Operator => Err((
                StatusCode::FORBIDDEN,
                "the config comes from the operator (--operator); the local API is read-only",
            )),
            ConfigWrites::Disabled => Err((
                StatusCode::FORBIDDEN,
                "config writes are disabled: start the sidecar with --api-token-file to allow PUT /config",
            )),
            ConfigWrites::Token(expected) => {
                let presented = headers
                    .get(header::AUTHORIZATION)
                    .and_then(|value| value.to_str().ok())
                    .and_then(|value| value.strip_prefix("Bearer "))
                    .map(|token| <[u8; 32]>::from(Sha256::digest(token.trim().as_bytes())));
                match presented {
                    Some(digest) if &digest == expected => Ok(()),
                    Some(_) => Err((StatusCode::UNAUTHORIZED, "the bearer token is not the --api-token-file token")),
                    None => Err((StatusCode::UNAUTHORIZED, "PUT /config needs Authorization: Bearer <token>")),
                }
            }
        }
    }
}

#[derive(Clone)]
struct ApiState {
    node: NodeHandle,
    writes: Arc<ConfigWrites>,
    peer_tls: Option<Arc<PeerTls>>,
}

impl FromRef<ApiState> for NodeHandle {
    fn from_ref(state: &ApiState) -> NodeHandle {
        state.node.clone()
    }
}

pub fn router(node: NodeHandle, writes: ConfigWrites, peer_tls: Option<Arc<PeerTls>>) -> Router {
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
        .with_state(ApiState { node, writes: Arc::new(writes), peer_tls })
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
/// validity, not the key material. With peer TLS, `peer_certificate` says
/// which certificate is in use.
async fn config(State(state): State<ApiState>) -> Result<Response, NodeGone> {
    let status = state.node.config().await?;
    let effective = state.node.effective_config().await?;
    let mut body = serde_json::to_value(&status).unwrap_or_default();
    body["effective"] = redacted(&effective);
    if let Some(tls) = &state.peer_tls {
        body["peer_certificate"] = serde_json::to_value(tls.status()).unwrap_or_default();
    }
    Ok(Json(body).into_response())
}

fn redacted(config: &SidecarConfig) -> serde_json::Value {
    let mut value = serde_json::to_value(config).unwrap_or_default();
    for key in value["security"]["trustedKeys"].as_array_mut().into_iter().flatten() {
        key["publicKey"] = serde_json::Value::from("<redacted>");
    }
    value
}

/// Applies a SidecarConfig (YAML or JSON body) live, for callers
/// [`ConfigWrites`] allows; a refusal is counted as a refused config.
async fn put_config(State(state): State<ApiState>, headers: HeaderMap, body: String) -> Result<Response, NodeGone> {
    let node = state.node;
    if let Err((status, reason)) = state.writes.check(&headers) {
        node.refuse_config("api", format!("PUT /config refused: {reason}")).await?;
        let mut response = error(status, reason, None);
        if status == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(header::WWW_AUTHENTICATE, header::HeaderValue::from_static("Bearer"));
        }
        return Ok(response);
    }
    let config = match SidecarConfig::from_yaml(&body) {
        Ok(config) => config,
        Err(e) => return Ok(error(StatusCode::UNPROCESSABLE_ENTITY, e.to_string(), Some(e.field))),
    };
    Ok(match node.apply_config(config, "api").await? {
        Ok(()) => Json(node.config().await?).into_response(),
        Err(e) => error(StatusCode::UNPROCESSABLE_ENTITY, e.to_string(), Some(e.field)),
    })
}

/// The metrics listener (`--metrics-listen`, the pod IP in a cluster, for
/// Prometheus): `/metrics` and health only, never config or routes.
pub fn metrics_router(node: NodeHandle) -> Router {
    Router::new()
        .route("/metrics", get(metrics))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .fallback(|| async {
            error(StatusCode::NOT_FOUND, "the metrics listener serves /metrics, /healthz and /readyz only", None)
        })
        .with_state(node)
}

async fn metrics(State(node): State<NodeHandle>, headers: HeaderMap) -> Result<Response, NodeGone> {
    let stats = node.stats().await?;
    let peers = peer_metrics(&stats);
    let format = MetricsFormat::from_accept(headers.get(header::ACCEPT).and_then(|v| v.to_str().ok()));
    let body = render(&MetricsInput::of_node(&stats, &peers), format);
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

#[cfg(test)]
mod tests {
    use super::*;

    fn bearer(token: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(header::AUTHORIZATION, format!("Bearer {token}").parse().unwrap());
        headers
    }

    #[test]
    fn config_writes_are_refused_unless_a_token_allows_them() {
        let token = ConfigWrites::token("s3cret\n").unwrap();
        assert_eq!(token.check(&bearer("s3cret")), Ok(()), "the file's trailing newline is not part of it");
        assert_eq!(token.check(&bearer("s3cre")).unwrap_err().0, StatusCode::UNAUTHORIZED);
        assert_eq!(token.check(&HeaderMap::new()).unwrap_err().0, StatusCode::UNAUTHORIZED);
        let disabled = ConfigWrites::Disabled.check(&bearer("s3cret")).unwrap_err();
        assert_eq!(disabled.0, StatusCode::FORBIDDEN);
        assert!(disabled.1.contains("--api-token-file"), "{}", disabled.1);
        assert_eq!(ConfigWrites::Operator.check(&bearer("s3cret")).unwrap_err().0, StatusCode::FORBIDDEN);
        assert_eq!(ConfigWrites::token(" \n"), None, "an empty token allows nothing");
    }
}
