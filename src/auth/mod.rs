//! Who may call the webhook: the [`Authenticator`] turns a request's headers into a [`Caller`] or an
//! [`AuthError`] (401/403/503 with a machine-readable code).
//!
//! Modes are chosen by `AUTH_MODE` (see [`crate::config::AuthMode`]); there is no default, so a
//! deployment can never be open by accident. `none` accepts everyone and exists for local testing;
//! it is refused on Cloud Run at configuration time.

use http::HeaderMap;

use crate::config::AuthConfig;

/// The authenticated caller of one request.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Caller {
    /// The caller's verified email (a service account), when the mode establishes one.
    pub email: Option<String>,
}

/// Why a request was refused. `code` names the failed check; the token is never part of it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{code}: {message}")]
pub struct AuthError {
    /// 401 (no or bad credentials), 403 (valid but not allowed) or 503 (cannot verify yet).
    pub status: u16,
    /// Machine-readable reason, e.g. `missing_token`, `token_expired`, `email_not_allowed`.
    pub code: &'static str,
    /// A sentence for the caller's developer.
    pub message: String,
    /// Seconds to wait before retrying (503 only).
    pub retry_after: Option<u64>,
    /// The caller's email when the token said who it was (for the WARNING log).
    pub email: Option<String>,
}

/// Authenticates webhook requests according to the configured mode.
#[derive(Debug)]
pub enum Authenticator {
    /// Accepts every request (local testing only).
    None,
}

impl Authenticator {
    /// Builds the authenticator for `config`.
    pub fn from_config(config: &AuthConfig) -> Self {
        match config {
            AuthConfig::None => Authenticator::None,
        }
    }

    /// Checks one request's headers.
    pub async fn authenticate(&self, _headers: &HeaderMap) -> Result<Caller, AuthError> {
        match self {
            Authenticator::None => Ok(Caller::default()),
        }
    }
}
