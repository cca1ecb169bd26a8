//! Who may call the webhook: the [`Authenticator`] turns a request's headers into a [`Caller`] or an
//! [`AuthError`] (401/403/503 with a machine-readable code).
//!
//! Modes are chosen by `AUTH_MODE` (see [`crate::config::AuthMode`]); there is no default, so a
//! deployment can never be open by accident:
//! - `google-oidc` and `cloud-run-iam` read the Google ID token Dialogflow's service agent sends
//!   as `Authorization: Bearer` ([`id_token`]): the first verifies it fully with Google's keys
//!   ([`keys`]), the second trusts Cloud Run IAM's verification of a token whose signature it
//!   stripped. Both check the claims the same way ([`claims`]) and pin the caller's email.
//! - `api-key` compares a custom header with a shared key in constant time ([`api_key`]).
//! - `none` accepts everyone and exists for local testing; it is refused on Cloud Run at
//!   configuration time.
//!
//! Answers: 401 when the credentials are missing, malformed, unverifiable or expired; 403 when a
//! valid token names a caller that is not allowed (email, audience); 503 while Google's keys have
//! never been fetched. An [`AuthError`] carries a reason code and a sentence, never the token; the
//! server logs one WARNING per refusal with the code and, when the token was trustworthy enough to
//! say, the caller's email.

pub mod api_key;
pub mod claims;
pub mod id_token;
pub mod keys;

use http::HeaderMap;
use http::header::AUTHORIZATION;

use crate::config::AuthConfig;
use api_key::ApiKeyVerifier;
use id_token::IdTokenVerifier;
use keys::KeyCache;

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

impl AuthError {
    /// 401: missing, malformed, unverifiable or expired credentials.
    pub fn unauthorized(code: &'static str, message: impl Into<String>) -> Self {
        AuthError {
            status: 401,
            code,
            message: message.into(),
            retry_after: None,
            email: None,
        }
    }

    /// 403: valid credentials of a caller that is not allowed.
    pub fn forbidden(code: &'static str, message: impl Into<String>) -> Self {
        AuthError {
            status: 403,
            ..AuthError::unauthorized(code, message)
        }
    }

    /// 503: credentials cannot be checked yet; retry after `retry_after` seconds.
    pub fn unavailable(code: &'static str, message: impl Into<String>, retry_after: u64) -> Self {
        AuthError {
            status: 503,
            retry_after: Some(retry_after),
            ..AuthError::unauthorized(code, message)
        }
    }

    /// The same error, naming the caller.
    pub fn with_email(self, email: Option<String>) -> Self {
        AuthError { email, ..self }
    }
}

/// Why an authenticator could not be built.
#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    /// The HTTP client for Google's keys could not be built (TLS setup).
    #[error("cannot build the HTTP client for Google's keys: {0}")]
    Client(#[source] reqwest::Error),
    /// Built outside a tokio runtime, so the key refresh task cannot start.
    #[error("the key cache must be built inside the tokio runtime")]
    NoRuntime,
}

/// Authenticates webhook requests according to the configured mode.
#[derive(Debug)]
pub enum Authenticator {
    /// google-oidc or cloud-run-iam: a Google ID token in `Authorization: Bearer`.
    IdToken(Box<IdTokenVerifier>),
    /// A shared key in a custom header.
    ApiKey(ApiKeyVerifier),
    /// Accepts every request (local testing only).
    None,
}

impl Authenticator {
    /// Builds the authenticator for `config`. The ID-token modes start fetching Google's keys at
    /// once, so this must run inside the tokio runtime.
    pub fn from_config(config: &AuthConfig) -> Result<Self, SetupError> {
        Ok(match config {
            AuthConfig::GoogleOidc(oidc) => {
                Authenticator::IdToken(Box::new(IdTokenVerifier::new(oidc, false)?))
            }
            AuthConfig::CloudRunIam(oidc) => {
                Authenticator::IdToken(Box::new(IdTokenVerifier::new(oidc, true)?))
            }
            AuthConfig::ApiKey(api_key) => Authenticator::ApiKey(ApiKeyVerifier::new(api_key)),
            AuthConfig::None => Authenticator::None,
        })
    }

    /// Checks one request's headers.
    pub async fn authenticate(&self, headers: &HeaderMap) -> Result<Caller, AuthError> {
        match self {
            Authenticator::IdToken(verifier) => verifier.verify(bearer(headers)?).await,
            Authenticator::ApiKey(verifier) => verifier.verify(headers),
            Authenticator::None => Ok(Caller::default()),
        }
    }

    /// Google's key cache, in the ID-token modes.
    pub fn keys(&self) -> Option<&KeyCache> {
        match self {
            Authenticator::IdToken(verifier) => Some(verifier.keys()),
            _ => None,
        }
    }
}

/// The credential of `Authorization: Bearer <token>` (the scheme is case-insensitive).
fn bearer(headers: &HeaderMap) -> Result<&str, AuthError> {
    let missing = || AuthError::unauthorized("missing_token", "no Bearer token was sent");
    let mut values = headers.get_all(AUTHORIZATION).iter();
    let value = values.next().ok_or_else(missing)?;
    if values.next().is_some() {
        return Err(AuthError::unauthorized(
            "malformed_token",
            "more than one Authorization header was sent",
        ));
    }
    let value = value
        .to_str()
        .map_err(|_| AuthError::unauthorized("malformed_token", "the token is not ASCII"))?
        .trim();
    let (scheme, token) = value.split_once(' ').unwrap_or((value, ""));
    if !scheme.eq_ignore_ascii_case("bearer") {
        return Err(AuthError::unauthorized(
            "unsupported_scheme",
            "the Authorization header must use the Bearer scheme",
        ));
    }
    let token = token.trim();
    if token.is_empty() {
        return Err(missing());
    }
    Ok(token)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with_authorization(values: &[&str]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for v in values {
            headers.append(AUTHORIZATION, v.parse().unwrap());
        }
        headers
    }

    #[test]
    fn bearer_extracts_the_token() {
        let h = with_authorization(&["Bearer abc.def.ghi"]);
        assert_eq!(bearer(&h).unwrap(), "abc.def.ghi");
        let h = with_authorization(&["bearer   abc.def.ghi "]);
        assert_eq!(bearer(&h).unwrap(), "abc.def.ghi");
    }

    #[test]
    fn bearer_refusals_name_the_reason() {
        let code = |values: &[&str]| bearer(&with_authorization(values)).unwrap_err().code;
        assert_eq!(code(&[]), "missing_token");
        assert_eq!(code(&["Bearer"]), "missing_token");
        assert_eq!(code(&["Bearer   "]), "missing_token");
        assert_eq!(code(&["Basic dXNlcjpwYXNz"]), "unsupported_scheme");
        assert_eq!(code(&["Bearer a.b.c", "Bearer d.e.f"]), "malformed_token");
    }
}
