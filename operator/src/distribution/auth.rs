//! Sidecar authentication: every stream carries `authorization: Bearer
//! TOKEN`, checked by a [`TokenVerifier`]. Local mode uses a static token
//! ([`StaticToken`]); in a cluster the token is the pod's projected
//! ServiceAccount token, checked with a TokenReview against the API server
//! ([`TokenReview`]), which also tells which pod the token was issued to, so
//! a sidecar can only open the stream of its own pod
//! ([`Identity::check_pod`]). Running without a verifier
//! (`--allow-unauthenticated`) is for local experiments.

use std::time::Duration;

use k8s_openapi::api::authentication::v1::{
    TokenReview as TokenReviewObject, TokenReviewSpec, TokenReviewStatus, UserInfo,
};
use kube::api::{Api, PostParams};
use sha2::{Digest, Sha256};

/// The `status.user.extra` key under which the API server names the pod a
/// bound ServiceAccount token was issued to.
pub const POD_NAME_EXTRA: &str = "authentication.kubernetes.io/pod-name";
/// ServiceAccount usernames are `system:serviceaccount:NAMESPACE:NAME`.
const SERVICE_ACCOUNT_PREFIX: &str = "system:serviceaccount:";
/// A TokenReview that takes longer fails (closed): the stream is refused and
/// the sidecar retries, instead of hanging on a slow API server.
const REVIEW_TIMEOUT: Duration = Duration::from_secs(10);

/// Who a valid token belongs to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Identity {
    /// e.g. `local` or `system:serviceaccount:fabric:sidecar`.
    pub subject: String,
    /// The ServiceAccount's namespace (cluster tokens only).
    pub namespace: Option<String>,
    /// The pod the token was issued to (bound projected tokens only).
    pub pod_name: Option<String>,
}

impl Identity {
    /// An identity that is not a pod (a static token).
    pub fn subject(subject: impl Into<String>) -> Self {
        Self { subject: subject.into(), namespace: None, pod_name: None }
    }

    /// Cluster mode: may this identity open the stream of pod
    /// `namespace/pod_name`? Only if its token was issued to exactly that
    /// pod, so a compromised sidecar cannot speak for (and receive the
    /// config of) another one.
    pub fn check_pod(&self, namespace: &str, pod_name: &str) -> Result<(), PodBindingError> {
        let (Some(token_namespace), Some(token_pod)) = (&self.namespace, &self.pod_name) else {
            return Err(PodBindingError::Unbound { subject: self.subject.clone() });
        };
        if token_namespace != namespace || token_pod != pod_name {
            return Err(PodBindingError::OtherPod {
                hello: format!("{namespace}/{pod_name}"),
                token: format!("{token_namespace}/{token_pod}"),
            });
        }
        Ok(())
    }
}

/// Why a Hello was refused for the pod it names (`PERMISSION_DENIED`).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PodBindingError {
    #[error("the token of {subject} is not bound to a pod; sidecars must present a projected ServiceAccount token")]
    Unbound { subject: String },
    #[error("the Hello names pod {hello} but the token was issued to pod {token}")]
    OtherPod {
        /// `namespace/name` from the Hello.
        hello: String,
        /// `namespace/name` the token was issued to.
        token: String,
    },
}

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    #[error("no bearer token")]
    Missing,
    #[error("invalid token")]
    Invalid,
    #[error("token verification is not configured: {0}")]
    NotConfigured(&'static str),
    /// The verifier could not decide (API server error or timeout): the
    /// token is refused, never accepted by default.
    #[error("token verification failed: {0}")]
    Unavailable(String),
}

/// Checks a sidecar's bearer token.
#[tonic::async_trait]
pub trait TokenVerifier: Send + Sync + 'static {
    async fn verify(&self, token: &str) -> Result<Identity, AuthError>;
}

/// One shared secret (local mode, `--token-file`). Compared by hash so the
/// comparison time does not depend on where the strings differ.
pub struct StaticToken {
    digest: [u8; 32],
}

impl StaticToken {
    pub fn new(token: &str) -> Self {
        Self { digest: Sha256::digest(token.trim().as_bytes()).into() }
    }
}

#[tonic::async_trait]
impl TokenVerifier for StaticToken {
    async fn verify(&self, token: &str) -> Result<Identity, AuthError> {
        let digest: [u8; 32] = Sha256::digest(token.trim().as_bytes()).into();
        let diff = digest.iter().zip(self.digest.iter()).fold(0u8, |acc, (a, b)| acc | (a ^ b));
        if diff == 0 { Ok(Identity::subject("local")) } else { Err(AuthError::Invalid) }
    }
}

/// The cluster verifier: `POST authentication.k8s.io/v1 TokenReview` with
/// the token and the audience (default [`DEFAULT_AUDIENCE`](fabric_operator_core::names::DEFAULT_AUDIENCE)). The token is
/// valid only if the API server says `authenticated: true` and confirms the
/// audience; the identity carries the pod the token was bound to.
pub struct TokenReview {
    client: kube::Client,
    audience: String,
}

impl TokenReview {
    pub fn new(client: kube::Client, audience: impl Into<String>) -> Self {
        Self { client, audience: audience.into() }
    }

    pub fn audience(&self) -> &str {
        &self.audience
    }
}

#[tonic::async_trait]
impl TokenVerifier for TokenReview {
    async fn verify(&self, token: &str) -> Result<Identity, AuthError> {
        let review = TokenReviewObject {
            spec: TokenReviewSpec { token: Some(token.to_owned()), audiences: Some(vec![self.audience.clone()]) },
            ..Default::default()
        };
        let api: Api<TokenReviewObject> = Api::all(self.client.clone());
        let reviewed = tokio::time::timeout(REVIEW_TIMEOUT, api.create(&PostParams::default(), &review))
            .await
            .map_err(|_| AuthError::Unavailable(format!("TokenReview timed out after {REVIEW_TIMEOUT:?}")))?
            .map_err(|error| AuthError::Unavailable(format!("TokenReview: {error}")))?;
        identity_from_review(reviewed.status.as_ref(), &self.audience)
    }
}

/// The identity a TokenReview answer grants, or why it grants none.
///
/// Audience: the API server echoes in `status.audiences` the audiences of
/// the request it validated the token for; the Kubernetes docs ask clients
/// that set `spec.audiences` to check it, so that an API server that
/// ignores audiences cannot make a token for another audience valid here.
pub fn identity_from_review(status: Option<&TokenReviewStatus>, audience: &str) -> Result<Identity, AuthError> {
    let Some(status) = status else {
        return Err(AuthError::Unavailable("TokenReview answer without status".into()));
    };
    if status.authenticated != Some(true) {
        if let Some(error) = status.error.as_deref().filter(|e| !e.is_empty()) {
            tracing::debug!(%error, "token refused by TokenReview");
        }
        return Err(AuthError::Invalid);
    }
    if !status.audiences.as_deref().unwrap_or_default().iter().any(|a| a == audience) {
        tracing::debug!(audience, audiences = ?status.audiences, "token not confirmed for the audience");
        return Err(AuthError::Invalid);
    }
    let user = status.user.as_ref();
    let Some(username) = user.and_then(|u| u.username.clone()).filter(|u| !u.is_empty()) else {
        return Err(AuthError::Unavailable("TokenReview: authenticated without a username".into()));
    };
    Ok(Identity {
        namespace: service_account_namespace(&username).map(str::to_owned),
        pod_name: user.and_then(pod_name_of),
        subject: username,
    })
}

/// `NS` of `system:serviceaccount:NS:NAME`.
fn service_account_namespace(username: &str) -> Option<&str> {
    let rest = username.strip_prefix(SERVICE_ACCOUNT_PREFIX)?;
    let (namespace, name) = rest.split_once(':')?;
    (!namespace.is_empty() && !name.is_empty()).then_some(namespace)
}

fn pod_name_of(user: &UserInfo) -> Option<String> {
    let values = user.extra.as_ref()?.get(POD_NAME_EXTRA)?;
    values.first().filter(|name| !name.is_empty()).cloned()
}

/// The token of an `authorization: Bearer TOKEN` header value.
pub fn bearer(header: Option<&str>) -> Result<&str, AuthError> {
    let value = header.ok_or(AuthError::Missing)?;
    let token = value.strip_prefix("Bearer ").or_else(|| value.strip_prefix("bearer ")).ok_or(AuthError::Missing)?;
    if token.trim().is_empty() { Err(AuthError::Missing) } else { Ok(token.trim()) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn static_token_accepts_only_its_token() {
        let verifier = StaticToken::new("s3cret\n");
        assert_eq!(verifier.verify("s3cret").await.unwrap(), Identity::subject("local"));
        assert_eq!(verifier.verify("s3cre").await, Err(AuthError::Invalid));
    }

    #[test]
    fn bearer_header() {
        assert_eq!(bearer(Some("Bearer abc")), Ok("abc"));
        assert_eq!(bearer(Some("Basic abc")), Err(AuthError::Missing));
        assert_eq!(bearer(None), Err(AuthError::Missing));
    }

    fn review(authenticated: bool, audiences: &[&str], username: &str, pod: Option<&str>) -> TokenReviewStatus {
        TokenReviewStatus {
            authenticated: Some(authenticated),
            audiences: Some(audiences.iter().map(|a| a.to_string()).collect()),
            error: None,
            user: Some(UserInfo {
                username: Some(username.into()),
                extra: pod.map(|pod| [(POD_NAME_EXTRA.to_string(), vec![pod.to_string()])].into()),
                ..Default::default()
            }),
        }
    }

    #[test]
    fn a_review_grants_the_service_account_and_its_pod() {
        let status = review(true, &["fabric-operator"], "system:serviceaccount:fabric:sidecar", Some("eu-1-7f9c"));
        let identity = identity_from_review(Some(&status), "fabric-operator").unwrap();
        assert_eq!(identity.subject, "system:serviceaccount:fabric:sidecar");
        assert_eq!(identity.namespace.as_deref(), Some("fabric"));
        assert_eq!(identity.pod_name.as_deref(), Some("eu-1-7f9c"));
        assert_eq!(identity.check_pod("fabric", "eu-1-7f9c"), Ok(()));
    }

    #[test]
    fn a_review_refuses_unauthenticated_tokens_and_other_audiences() {
        let unauthenticated = review(false, &[], "", None);
        assert_eq!(identity_from_review(Some(&unauthenticated), "fabric-operator"), Err(AuthError::Invalid));
        let other = review(true, &["https://kubernetes.default.svc"], "system:serviceaccount:a:b", None);
        assert_eq!(identity_from_review(Some(&other), "fabric-operator"), Err(AuthError::Invalid));
        assert!(matches!(identity_from_review(None, "fabric-operator"), Err(AuthError::Unavailable(_))));
    }

    #[test]
    fn check_pod_requires_the_token_of_that_very_pod() {
        let identity = Identity {
            subject: "system:serviceaccount:fabric:sidecar".into(),
            namespace: Some("fabric".into()),
            pod_name: Some("eu-1".into()),
        };
        let refused = identity.check_pod("fabric", "eu-2").unwrap_err();
        assert_eq!(refused, PodBindingError::OtherPod { hello: "fabric/eu-2".into(), token: "fabric/eu-1".into() });
        assert_eq!(refused.to_string(), "the Hello names pod fabric/eu-2 but the token was issued to pod fabric/eu-1");
        assert!(identity.check_pod("other", "eu-1").is_err());
        let unbound = Identity { pod_name: None, ..identity };
        assert!(unbound.check_pod("fabric", "eu-1").unwrap_err().to_string().contains("not bound to a pod"));
        assert!(Identity::subject("local").check_pod("fabric", "eu-1").is_err());
    }
}
