//! The admission webhooks' server: the mutating webhook that injects the
//! routing sidecar into pods labelled `routing.fabric.dev/sidecar=true`
//! (docs/install.md, "Sidecar injection") and the validating webhook of the
//! fabric kinds.
//!
//! ```text
//! API server --POST /mutate-pods (AdmissionReview v1, HTTPS :9443)--> router
//!     review::review (parse, echo uid) --> inject::inject (pure: Pod -> JSON Patch)
//! ```
//!
//! What is decided (parsing reviews, the injection, validation) is pure and
//! lives in `fabric_operator_core::admission`; here are:
//! - `server`: HTTPS with the operator's serving certificate;
//! - `ca_bundle`: keeps the MutatingWebhookConfiguration's `caBundle` equal
//!   to the CA of that certificate.
//!
//! The webhook is stateless and served by every replica (not only the
//! leader); the Service sends the API server's calls to ready pods.

pub mod ca_bundle;
pub mod server;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use k8s_openapi::api::admissionregistration::v1::{MutatingWebhookConfiguration, ValidatingWebhookConfiguration};
use k8s_openapi::api::core::v1::ResourceRequirements;
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;

use fabric_operator_core::admission;
pub use fabric_operator_core::admission::{
    BadReview, CaSource, InjectError, InjectionSettings, Outcome, inject, review,
};

use crate::tls::TlsFiles;

/// The path the MutatingWebhookConfiguration calls.
pub const PATH: &str = "/mutate-pods";
/// The path the ValidatingWebhookConfiguration of the fabric kinds calls.
pub const VALIDATE_PATH: &str = "/validate-fabric";
/// Default `--webhook-listen`.
pub const DEFAULT_LISTEN: &str = "0.0.0.0:9443";
/// Largest AdmissionReview accepted (a pod is at most ~1.5 MiB in etcd).
pub const MAX_BODY: usize = 4 * 1024 * 1024;
/// How long the start waits for the API server's version (`auto`).
const VERSION_TIMEOUT: Duration = Duration::from_secs(5);

/// `--native-sidecars`: whether the sidecar is injected as a native sidecar
/// (init container with `restartPolicy: Always`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum NativeSidecars {
    /// When the API server is 1.29 or newer; a regular container when older
    /// or when its version cannot be read.
    #[default]
    Auto,
    Always,
    Never,
}

impl FromStr for NativeSidecars {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        match text {
            "auto" => Ok(Self::Auto),
            "always" => Ok(Self::Always),
            "never" => Ok(Self::Never),
            other => Err(format!("{other:?}: expected auto, always or never")),
        }
    }
}

/// The webhook part of cluster mode.
#[derive(Clone, Debug)]
pub struct WebhookOptions {
    /// `--webhook-listen`.
    pub listen: SocketAddr,
    /// Everything but `native_sidecars`, which [`start`] decides from
    /// `native_sidecars` below.
    pub settings: InjectionSettings,
    pub native_sidecars: NativeSidecars,
    /// `--webhook-configuration`: the MutatingWebhookConfiguration whose
    /// `caBundle` the operator keeps equal to `ca_bundle` (see
    /// [`ca_bundle`]).
    pub configuration: Option<String>,
    /// The PEM CA of the serving certificate.
    pub ca_bundle: Option<String>,
    /// `--validation`: serve [`VALIDATE_PATH`] for the fabric kinds
    /// (`None`: `off`, the path answers 404).
    pub validation: Option<admission::validate::ValidationMode>,
    /// `--validating-webhook-configuration`: the
    /// ValidatingWebhookConfiguration whose `caBundle` the operator keeps.
    pub validating_configuration: Option<String>,
}

/// What the validating webhook needs: the fabric of this replica.
#[derive(Clone)]
struct Validation {
    distributor: crate::distribution::Distributor,
    mode: admission::validate::ValidationMode,
}

/// The sidecar's resources from `--sidecar-request` / `--sidecar-limit`
/// (`NAME=QUANTITY` pairs, e.g. `cpu=10m`); `None` when both are empty.
/// Quantities are checked here: a bad one would make the API server refuse
/// every injected pod.
pub fn resource_requirements(
    requests: &[(String, String)],
    limits: &[(String, String)],
) -> Result<Option<ResourceRequirements>, String> {
    let map = |pairs: &[(String, String)], flag: &str| -> Result<Option<BTreeMap<String, Quantity>>, String> {
        let mut map = BTreeMap::new();
        for (name, quantity) in pairs {
            if !is_quantity(quantity) {
                return Err(format!("--{flag} {name}={quantity}: not a Kubernetes quantity (e.g. 10m, 32Mi, 0.5)"));
            }
            map.insert(name.clone(), Quantity(quantity.clone()));
        }
        Ok((!map.is_empty()).then_some(map))
    };
    let (requests, limits) = (map(requests, "sidecar-request")?, map(limits, "sidecar-limit")?);
    Ok((requests.is_some() || limits.is_some()).then_some(ResourceRequirements { requests, limits, claims: None }))
}

/// A non-negative resource quantity: a decimal number, then a binary
/// (`Ki`..`Ei`) or decimal (`m`, `k`, `M`..`E`) suffix or an exponent.
pub fn is_quantity(text: &str) -> bool {
    let text = text.strip_prefix('+').unwrap_or(text);
    let number_end = text.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(text.len());
    let (number, suffix) = text.split_at(number_end);
    let digits = number.chars().filter(char::is_ascii_digit).count();
    if digits == 0 || number.matches('.').count() > 1 {
        return false;
    }
    const SUFFIXES: [&str; 14] = ["", "Ki", "Mi", "Gi", "Ti", "Pi", "Ei", "m", "k", "M", "G", "T", "P", "E"];
    if SUFFIXES.contains(&suffix) {
        return true;
    }
    let Some(exponent) = suffix.strip_prefix(['e', 'E']) else { return false };
    let exponent = exponent.strip_prefix(['+', '-']).unwrap_or(exponent);
    !exponent.is_empty() && exponent.chars().all(|c| c.is_ascii_digit())
}

/// `POST /mutate-pods`.
pub fn router(settings: Arc<InjectionSettings>) -> Router {
    app(settings, None)
}

/// `POST /mutate-pods`, and `POST /validate-fabric` with a validation.
fn app(settings: Arc<InjectionSettings>, validation: Option<Validation>) -> Router {
    let mutate = Router::new().route(PATH, post(mutate_pods)).with_state(settings);
    let app = match validation {
        Some(validation) => {
            mutate.merge(Router::new().route(VALIDATE_PATH, post(validate_fabric)).with_state(validation))
        }
        None => mutate,
    };
    app.layer(DefaultBodyLimit::max(MAX_BODY))
}

async fn mutate_pods(State(settings): State<Arc<InjectionSettings>>, body: Bytes) -> Response {
    answer(review(&body, &settings))
}

async fn validate_fabric(State(validation): State<Validation>, body: Bytes) -> Response {
    // Compiling takes milliseconds to tens of them: off the async workers.
    let decision = tokio::task::spawn_blocking(move || {
        let fabric = validation.distributor.fabric();
        let identity = fabric.as_ref().map(|(_, identity)| identity.clone()).unwrap_or_default();
        admission::validate::validate(&body, fabric.as_ref().map(|(index, _)| index), &identity, validation.mode)
    })
    .await
    .unwrap_or_else(|e| Err(BadReview(format!("validation failed: {e}"))));
    answer(decision)
}

/// The HTTP answer to a decision, logged.
fn answer(decision: Result<review::Decision, BadReview>) -> Response {
    match decision {
        Ok(decision) => {
            let (subject, uid) = (&decision.subject, &decision.response.response.uid);
            match &decision.outcome {
                Outcome::Injected => tracing::info!(%subject, uid, "routing sidecar injected"),
                Outcome::Warned => {
                    let warnings = &decision.response.response.warnings;
                    tracing::info!(%subject, uid, ?warnings, "admitted with warnings");
                }
                Outcome::Refused(message) => tracing::warn!(%subject, uid, message, "refused at admission"),
                Outcome::Unchanged | Outcome::Ignored => tracing::debug!(%subject, uid, "left alone"),
            }
            axum::Json(decision.response).into_response()
        }
        Err(BadReview(message)) => {
            tracing::warn!(message, "webhook: malformed AdmissionReview");
            (StatusCode::BAD_REQUEST, axum::Json(serde_json::json!({ "error": message }))).into_response()
        }
    }
}

/// Decides native sidecars, binds `--webhook-listen` and spawns the server
/// (TLS with the serving certificate; plaintext only with
/// `--insecure-plaintext`). A bind failure is an error; a server that stops
/// later is logged.
pub async fn start(
    client: &kube::Client,
    options: &WebhookOptions,
    tls: Option<&TlsFiles>,
    distributor: &crate::distribution::Distributor,
) -> Result<SocketAddr, crate::listener::ListenError> {
    let native = match options.native_sidecars {
        NativeSidecars::Always => true,
        NativeSidecars::Never => false,
        NativeSidecars::Auto => {
            let version = tokio::time::timeout(VERSION_TIMEOUT, client.apiserver_version()).await;
            match version {
                Ok(Ok(info)) => {
                    let supported = inject::native_sidecars_supported(&info.major, &info.minor);
                    tracing::info!(version = %info.git_version, ?supported, "webhook: API server version");
                    supported.unwrap_or(false)
                }
                Ok(Err(error)) => {
                    tracing::warn!(%error, "webhook: API server version unknown; injecting regular containers");
                    false
                }
                Err(_) => {
                    tracing::warn!("webhook: API server version timed out; injecting regular containers");
                    false
                }
            }
        }
    };
    let settings = InjectionSettings { native_sidecars: native, ..options.settings.clone() };
    let (listener, address) = crate::listener::bind("webhook", options.listen).await?;
    tracing::info!(%address, native_sidecars = native, tls = tls.is_some(), "webhook: serving {PATH}");
    if let (Some(name), Some(pem)) = (&options.configuration, &options.ca_bundle) {
        tokio::spawn(ca_bundle::keep_ca_bundle::<MutatingWebhookConfiguration>(
            client.clone(),
            name.clone(),
            pem.clone(),
        ));
    }
    if let (Some(name), Some(pem)) = (&options.validating_configuration, &options.ca_bundle) {
        tokio::spawn(ca_bundle::keep_ca_bundle::<ValidatingWebhookConfiguration>(
            client.clone(),
            name.clone(),
            pem.clone(),
        ));
    }
    let validation = options.validation.map(|mode| Validation { distributor: distributor.clone(), mode });
    let app = app(Arc::new(settings), validation);
    let tls = tls.cloned();
    tokio::spawn(async move {
        let result = match &tls {
            Some(files) => server::serve_tls(listener, app, files).await,
            None => server::serve(listener, app, server::Plaintext).await,
        };
        if let Err(error) = result {
            tracing::error!(%error, "webhook: server stopped; labelled pods are not injected");
        }
    });
    Ok(address)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantities() {
        for good in ["10m", "32Mi", "1", "0.5", "1.5Gi", "1e3", "2E-2", "+4k"] {
            assert!(is_quantity(good), "{good}");
        }
        for bad in ["", "m", "10 m", "-1", "1.2.3", "10mb", "1e", "Mi"] {
            assert!(!is_quantity(bad), "{bad}");
        }
    }

    #[test]
    fn resources_from_flags() {
        let pair = |k: &str, v: &str| (k.to_string(), v.to_string());
        assert_eq!(resource_requirements(&[], &[]), Ok(None));
        let resources =
            resource_requirements(&[pair("cpu", "10m"), pair("memory", "32Mi")], &[pair("memory", "128Mi")])
                .unwrap()
                .unwrap();
        assert_eq!(resources.requests.unwrap()["cpu"], Quantity("10m".into()));
        assert_eq!(resources.limits.unwrap()["memory"], Quantity("128Mi".into()));
        assert!(resource_requirements(&[pair("cpu", "ten")], &[]).unwrap_err().contains("--sidecar-request cpu=ten"));
    }

    #[test]
    fn native_sidecar_modes() {
        assert_eq!("auto".parse(), Ok(NativeSidecars::Auto));
        assert_eq!("never".parse(), Ok(NativeSidecars::Never));
        assert!("sometimes".parse::<NativeSidecars>().is_err());
    }
}
