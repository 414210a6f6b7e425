//! Sidecar authentication: every stream carries `authorization: Bearer
//! TOKEN`, checked by a [`TokenVerifier`]. Local mode uses a static token
//! ([`StaticToken`]); in a cluster the token is the pod's projected
//! ServiceAccount token, checked with a TokenReview ([`TokenReview`], not
//! wired yet: it refuses every token with an explicit error). Running
//! without a verifier (`--allow-unauthenticated`) is for local experiments.

use sha2::{Digest, Sha256};

/// Who a valid token belongs to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Identity {
    /// e.g. `local` or `system:serviceaccount:fabric:sidecar`.
    pub subject: String,
}

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    #[error("no bearer token")]
    Missing,
    #[error("invalid token")]
    Invalid,
    #[error("token verification is not configured: {0}")]
    NotConfigured(&'static str),
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
        if diff == 0 { Ok(Identity { subject: "local".into() }) } else { Err(AuthError::Invalid) }
    }
}

/// The cluster verifier: a TokenReview against the API server (audience
/// `fabric-operator`). Not implemented yet: it refuses every token with
/// [`AuthError::NotConfigured`], so a cluster deployment fails closed.
pub struct TokenReview;

#[tonic::async_trait]
impl TokenVerifier for TokenReview {
    async fn verify(&self, _: &str) -> Result<Identity, AuthError> {
        Err(AuthError::NotConfigured("TokenReview verification is not implemented; use a static token"))
    }
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
        assert_eq!(verifier.verify("s3cret").await.unwrap().subject, "local");
        assert_eq!(verifier.verify("s3cre").await, Err(AuthError::Invalid));
        assert!(matches!(TokenReview.verify("x").await, Err(AuthError::NotConfigured(_))));
    }

    #[test]
    fn bearer_header() {
        assert_eq!(bearer(Some("Bearer abc")), Ok("abc"));
        assert_eq!(bearer(Some("Basic abc")), Err(AuthError::Missing));
        assert_eq!(bearer(None), Err(AuthError::Missing));
    }
}
