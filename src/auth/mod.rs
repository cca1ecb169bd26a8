//! Who may call the webhook, and who is talking to it.
//!
//! The [`Authenticator`] turns a request's headers into a [`Caller`] or an [`AuthError`] (an
//! [`AuthFailure`]: 401/403/503 with a machine-readable code). Modes are chosen by `AUTH_MODE`
//! (`crate::config::AuthMode`); there is no default, so a deployment can never be open by accident:
//! - `google-oidc` and `cloud-run-iam` read the Google ID token Dialogflow's service agent sends
//!   as `Authorization: Bearer` ([`id_token`]): the first verifies it fully with Google's keys
//!   ([`jwt`], [`keys`]), the second trusts Cloud Run IAM's verification of a token whose signature
//!   it stripped. Both check the claims the same way ([`claims`]) and pin the caller's email.
//! - `api-key` compares a custom header with a shared key in constant time ([`api_key`]).
//! - `none` accepts everyone and exists for local testing; it is refused on Cloud Run at
//!   configuration time.
//!
//! [`end_user`] verifies the signed-in end user's ID token (web and app channels) with a second
//! instance of the same RS256 and key-set machinery.
//!
//! Answers: 401 when the credentials are missing, malformed, unverifiable or expired; 403 when a
//! valid token names a caller that is not allowed (email, audience); 503 while the keys have
//! never been fetched. An [`AuthError`] carries the failure and, when the token was trustworthy
//! enough to say, the caller's email, never the token; the server logs one WARNING per refusal with
//! the code and that email.
//!
//! Dependencies: `auth` uses [`crate::clients`] (the one outbound HTTP client builder and capped
//! body reader) and nothing else of ours; its settings types live in [`settings`] and
//! [`end_user`], and [`crate::config`] builds them.

pub mod api_key;
pub mod claims;
pub mod end_user;
pub mod id_token;
pub mod jwt;
pub mod keys;
pub mod settings;

use http::header::AUTHORIZATION;
use http::{HeaderMap, HeaderName, StatusCode};

use api_key::ApiKeyVerifier;
use id_token::IdTokenVerifier;
use keys::KeyCache;
pub use settings::AuthConfig;

/// The authenticated caller of one request.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Caller {
    /// The caller's verified email (a service account), when the mode establishes one.
    pub email: Option<String>,
}

/// Why a credential was refused: one variant per check, each with its wire code ([`Self::code`])
/// and HTTP status ([`Self::status`]). The token is never part of it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthFailure {
    /// No credentials at all (no Authorization header, or an empty Bearer value).
    #[error("no Bearer token was sent")]
    MissingToken,
    /// The credential is not a well-formed JWT; the detail says which part failed.
    #[error("{0}")]
    MalformedToken(&'static str),
    /// `Authorization` uses another scheme than Bearer.
    #[error("the Authorization header must use the Bearer scheme")]
    UnsupportedScheme,
    /// The api-key header is absent.
    #[error("the {0} header is missing")]
    MissingApiKey(HeaderName),
    /// The api-key header is wrong or repeated.
    #[error("the {0} header does not hold the key")]
    InvalidApiKey(HeaderName),
    /// A required claim is absent (its name).
    #[error("the token has no `{0}` claim")]
    MissingClaim(&'static str),
    /// A claim has a value no honest issuer writes (its name): a time that is not a whole number of
    /// seconds in range, an empty subject.
    #[error("the token's `{0}` claim is not valid")]
    InvalidClaim(&'static str),
    /// `iss` is not an accepted issuer.
    #[error("the token was not issued by the expected issuer (iss)")]
    InvalidIssuer,
    /// `exp` has passed.
    #[error("the token has expired (exp)")]
    Expired,
    /// `iat` is in the future.
    #[error("the token claims to be issued in the future (iat)")]
    IssuedInFuture,
    /// `nbf` is in the future.
    #[error("the token is not valid yet (nbf)")]
    NotYetValid,
    /// A valid token for another audience.
    #[error("the token is for another audience (aud)")]
    AudienceNotAllowed,
    /// A valid token naming a caller that is not allowed.
    #[error("this caller is not allowed to call the webhook (email)")]
    EmailNotAllowed,
    /// A valid token whose email the issuer does not vouch for.
    #[error("the token's email is not verified (email_verified)")]
    EmailNotVerified,
    /// A token whose signature Cloud Run IAM removed, where this service must verify it itself.
    #[error(
        "the token's signature was removed (as Cloud Run IAM does); this service verifies \
         signatures itself and needs the whole token"
    )]
    SignatureStripped,
    /// The header's `alg` is not RS256 (`none`, HS256, ES256 ...).
    #[error("the token must be signed with RS256")]
    UnsupportedAlgorithm,
    /// The header names no `kid`.
    #[error("the token's header names no key (kid)")]
    MissingKeyId,
    /// The `kid` is not in the issuer's key set, even after a refetch.
    #[error("the token was signed with a key that is not in the issuer's key set")]
    UnknownKey,
    /// The signature does not verify with the named key.
    #[error("the token's signature does not verify with the issuer's key")]
    BadSignature,
    /// No key set has been fetched yet: retry after `retry_after` seconds.
    #[error("the issuer's signing keys could not be fetched yet; retry shortly")]
    KeysUnavailable {
        /// Seconds to wait before retrying (`Retry-After`).
        retry_after: u64,
    },
}

impl AuthFailure {
    /// The HTTP status: 401 (no or bad credentials), 403 (a valid token of a caller that is not
    /// allowed) or 503 (cannot verify yet).
    pub fn status(&self) -> StatusCode {
        match self {
            AuthFailure::AudienceNotAllowed
            | AuthFailure::EmailNotAllowed
            | AuthFailure::EmailNotVerified => StatusCode::FORBIDDEN,
            AuthFailure::KeysUnavailable { .. } => StatusCode::SERVICE_UNAVAILABLE,
            _ => StatusCode::UNAUTHORIZED,
        }
    }

    /// The machine-readable reason on the wire (`{"error": {"code": ...}}`) and in the logs.
    pub fn code(&self) -> &'static str {
        match self {
            AuthFailure::MissingToken => "missing_token",
            AuthFailure::MalformedToken(_) => "malformed_token",
            AuthFailure::UnsupportedScheme => "unsupported_scheme",
            AuthFailure::MissingApiKey(_) => "missing_api_key",
            AuthFailure::InvalidApiKey(_) => "invalid_api_key",
            AuthFailure::MissingClaim(_) => "missing_claim",
            AuthFailure::InvalidClaim(_) => "invalid_claim",
            AuthFailure::InvalidIssuer => "invalid_issuer",
            AuthFailure::Expired => "token_expired",
            AuthFailure::IssuedInFuture => "issued_in_future",
            AuthFailure::NotYetValid => "token_not_yet_valid",
            AuthFailure::AudienceNotAllowed => "audience_not_allowed",
            AuthFailure::EmailNotAllowed => "email_not_allowed",
            AuthFailure::EmailNotVerified => "email_not_verified",
            AuthFailure::SignatureStripped => "signature_stripped",
            AuthFailure::UnsupportedAlgorithm => "unsupported_algorithm",
            AuthFailure::MissingKeyId => "missing_key_id",
            AuthFailure::UnknownKey => "unknown_key",
            AuthFailure::BadSignature => "invalid_signature",
            AuthFailure::KeysUnavailable { .. } => "keys_unavailable",
        }
    }

    /// Whether no credentials were sent at all (RFC 6750 §3.1: the challenge then carries no
    /// error attribute).
    pub fn no_credentials(&self) -> bool {
        matches!(
            self,
            AuthFailure::MissingToken | AuthFailure::MissingApiKey(_)
        )
    }

    /// The `WWW-Authenticate` challenge of a 401: no error attribute when no credentials were
    /// sent (RFC 6750 §3.1), else `invalid_token` with this failure's code.
    pub fn challenge(&self) -> String {
        if self.no_credentials() {
            "Bearer realm=\"cx-webhook\"".to_owned()
        } else {
            format!(
                "Bearer realm=\"cx-webhook\", error=\"invalid_token\", error_description=\"{}\"",
                self.code()
            )
        }
    }

    /// Seconds to wait before retrying, for 503.
    pub fn retry_after(&self) -> Option<u64> {
        match self {
            AuthFailure::KeysUnavailable { retry_after } => Some(*retry_after),
            _ => None,
        }
    }
}

/// A refused request: the [`AuthFailure`] and, when the token was trustworthy enough to say, the
/// caller's email (for the WARNING log).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}: {failure}", failure.code())]
pub struct AuthError {
    /// What failed.
    pub failure: AuthFailure,
    /// The caller's email when the token named one.
    pub email: Option<String>,
}

impl AuthError {
    /// The same error, naming the caller.
    pub fn with_email(self, email: Option<String>) -> Self {
        AuthError { email, ..self }
    }
}

impl From<AuthFailure> for AuthError {
    fn from(failure: AuthFailure) -> Self {
        AuthError {
            failure,
            email: None,
        }
    }
}

/// Why an authenticator could not be built.
#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    /// The HTTP client for the issuer's keys could not be built (TLS setup).
    #[error("cannot build the HTTP client for the issuer's keys: {0}")]
    Client(#[source] crate::clients::ClientError),
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
            Authenticator::IdToken(verifier) => {
                let bearer = bearer(headers)?;
                // A remembered token is the common case: its bytes are compared with a verified
                // token's before anything reads them (checking ~1 KB of text was 600 instructions).
                if let Some(caller) = verifier.remembered(bearer.token).await {
                    return Ok(caller);
                }
                verifier.verify(bearer.text()?).await
            }
            Authenticator::ApiKey(verifier) => Ok(verifier.verify(headers)?),
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

/// The credential of an `Authorization: Bearer <token>` header, read as bytes: whether the header
/// is text is only asked when the token is not a remembered one ([`Bearer::text`]).
#[derive(Debug, Clone, Copy)]
struct Bearer<'a> {
    /// The whole header value.
    header: &'a [u8],
    /// The credential, without the scheme and the blanks around it.
    token: &'a [u8],
}

const NOT_ASCII: AuthFailure = AuthFailure::MalformedToken("the token is not ASCII");

impl<'a> Bearer<'a> {
    /// The credential as text: the header must be visible ASCII (and tabs), as
    /// `HeaderValue::to_str` requires.
    fn text(&self) -> Result<&'a str, AuthFailure> {
        if !is_visible_ascii(self.header) {
            return Err(NOT_ASCII);
        }
        std::str::from_utf8(self.token).map_err(|_| NOT_ASCII)
    }
}

fn is_visible_ascii(bytes: &[u8]) -> bool {
    bytes
        .iter()
        .all(|&b| b == b'\t' || (b' '..=b'~').contains(&b))
}

/// The credential of `Authorization: Bearer <token>` (the scheme is case-insensitive). The refusals
/// are those of reading the header as text first: a header that is not ASCII is refused as such,
/// whatever else is wrong with it.
fn bearer(headers: &HeaderMap) -> Result<Bearer<'_>, AuthFailure> {
    let mut values = headers.get_all(AUTHORIZATION).iter();
    let value = values.next().ok_or(AuthFailure::MissingToken)?;
    if values.next().is_some() {
        return Err(AuthFailure::MalformedToken(
            "more than one Authorization header was sent",
        ));
    }
    let header = value.as_bytes();
    let refuse = |failure| {
        Err(if is_visible_ascii(header) {
            failure
        } else {
            NOT_ASCII
        })
    };
    // A header value holds no CR, LF or other control byte but the tab, so on one that is text
    // these trims are `str::trim`'s.
    let value = header.trim_ascii();
    let (scheme, token) = match memchr::memchr(b' ', value) {
        Some(at) => (&value[..at], &value[at + 1..]),
        None => (value, &value[value.len()..]),
    };
    if !scheme.eq_ignore_ascii_case(b"bearer") {
        return refuse(AuthFailure::UnsupportedScheme);
    }
    let token = token.trim_ascii();
    if token.is_empty() {
        return refuse(AuthFailure::MissingToken);
    }
    Ok(Bearer { header, token })
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
        assert_eq!(bearer(&h).unwrap().text().unwrap(), "abc.def.ghi");
        let h = with_authorization(&["bearer   abc.def.ghi "]);
        assert_eq!(bearer(&h).unwrap().text().unwrap(), "abc.def.ghi");
        let h = with_authorization(&["\tBEARER \tabc.def.ghi\t"]);
        assert_eq!(bearer(&h).unwrap().token, b"abc.def.ghi");
    }

    #[test]
    fn bearer_refusals_name_the_reason() {
        let failure = |values: &[&str]| bearer(&with_authorization(values)).unwrap_err();
        assert_eq!(failure(&[]), AuthFailure::MissingToken);
        assert_eq!(failure(&["Bearer"]), AuthFailure::MissingToken);
        assert_eq!(failure(&["Bearer   "]), AuthFailure::MissingToken);
        assert_eq!(
            failure(&["Basic dXNlcjpwYXNz"]),
            AuthFailure::UnsupportedScheme
        );
        assert!(matches!(
            failure(&["Bearer a.b.c", "Bearer d.e.f"]),
            AuthFailure::MalformedToken(_)
        ));
        // obs-text (bytes over 0x7f) is a valid header value but never a token, and a header
        // that is not text is refused as such whatever else is wrong with it.
        let raw = |bytes: &[u8]| {
            let mut headers = HeaderMap::new();
            headers.append(AUTHORIZATION, http::HeaderValue::from_bytes(bytes).unwrap());
            headers
        };
        assert_eq!(
            bearer(&raw(b"Bearer a.b\xe9.c"))
                .unwrap()
                .text()
                .unwrap_err(),
            NOT_ASCII
        );
        assert_eq!(
            bearer(&raw(b"Bearer a.b.c \xe9"))
                .unwrap()
                .text()
                .unwrap_err(),
            NOT_ASCII
        );
        assert_eq!(bearer(&raw(b"B\xe9arer a.b.c")).unwrap_err(), NOT_ASCII);
        assert_eq!(
            bearer(&raw(b"Bearer \xe9")).unwrap().text().unwrap_err(),
            NOT_ASCII
        );
        assert_eq!(bearer(&raw(b"\xe9 ")).unwrap_err(), NOT_ASCII);
    }

    #[test]
    fn every_failure_has_its_wire_code_and_status() {
        let h = || HeaderName::from_static("x-api-key");
        let cases = [
            (AuthFailure::MissingToken, 401, "missing_token"),
            (AuthFailure::MalformedToken("x"), 401, "malformed_token"),
            (AuthFailure::UnsupportedScheme, 401, "unsupported_scheme"),
            (AuthFailure::MissingApiKey(h()), 401, "missing_api_key"),
            (AuthFailure::InvalidApiKey(h()), 401, "invalid_api_key"),
            (AuthFailure::MissingClaim("exp"), 401, "missing_claim"),
            (AuthFailure::InvalidClaim("exp"), 401, "invalid_claim"),
            (AuthFailure::InvalidIssuer, 401, "invalid_issuer"),
            (AuthFailure::Expired, 401, "token_expired"),
            (AuthFailure::IssuedInFuture, 401, "issued_in_future"),
            (AuthFailure::NotYetValid, 401, "token_not_yet_valid"),
            (AuthFailure::AudienceNotAllowed, 403, "audience_not_allowed"),
            (AuthFailure::EmailNotAllowed, 403, "email_not_allowed"),
            (AuthFailure::EmailNotVerified, 403, "email_not_verified"),
            (AuthFailure::SignatureStripped, 401, "signature_stripped"),
            (
                AuthFailure::UnsupportedAlgorithm,
                401,
                "unsupported_algorithm",
            ),
            (AuthFailure::MissingKeyId, 401, "missing_key_id"),
            (AuthFailure::UnknownKey, 401, "unknown_key"),
            (AuthFailure::BadSignature, 401, "invalid_signature"),
            (
                AuthFailure::KeysUnavailable { retry_after: 10 },
                503,
                "keys_unavailable",
            ),
        ];
        for (failure, status, code) in cases {
            assert_eq!(failure.status().as_u16(), status, "{code}");
            assert_eq!(failure.code(), code);
            assert_eq!(failure.retry_after().is_some(), status == 503, "{code}");
        }
        assert!(
            AuthFailure::MissingApiKey(h())
                .to_string()
                .contains("x-api-key")
        );
    }
}
