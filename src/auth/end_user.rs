//! The end user's identity on web and app channels: a signed ID token from the site's or app's
//! sign-in (Firebase Authentication / Identity Platform, Google Sign-In, or any OIDC provider),
//! which the page passes to Dialogflow in `queryParams.payload` and CX hands to the webhook as
//! `WebhookRequest.payload.<END_USER_TOKEN_FIELD>` (default `userIdToken`).
//!
//! [`EndUserVerifier::verify`] checks it exactly like the service agent's token, with a second
//! instance of the same machinery ([`super::jwt`], [`super::keys`]): size and shape, `alg` pinned to
//! RS256 (`none` and HS256 signed with the public key are refused), the `kid` looked up in the
//! issuer's key set (cached per `Cache-Control`, refreshed in the background, refetched at most
//! once per interval for an unknown `kid`, old keys kept when a refresh fails), the signature, then
//! the claims:
//! - `iss` exactly `END_USER_ISSUER`;
//! - `aud` one of `END_USER_AUDIENCES`;
//! - `exp`, `iat`, `nbf` with the service agent's leeway and the same shape rules (whole seconds in
//!   range, [`super::claims::check_lifetime`]);
//! - `sub` present and non-empty (at most 255 bytes): the user's stable id at the issuer.
//!
//! Where the keys come from ([`EndUserSettings::new`]): `END_USER_JWKS_URL` when set; for
//! Firebase / Identity Platform issuers (`https://securetoken.google.com/<project>`) Google's
//! published securetoken key set; otherwise the issuer's OpenID discovery document
//! (`<issuer>/.well-known/openid-configuration`, its `jwks_uri`).
//!
//! Verified tokens are remembered (by SHA-256, [`super::jwt::VerifiedTokens`]) until they expire.
//! Session parameters are never proof of identity: only this token is. Neither the token nor any
//! part of it ever reaches an error message or a log; the subject is for the caller to pseudonymise.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::claims::{Claims, check_audience, check_lifetime};
use super::jwt::{self, Rs256Verifier, VerifiedTokens};
use super::keys::KeyCache;
use super::settings::{DEFAULT_LEEWAY, DEFAULT_TOKEN_CACHE_SIZE, JwksConfig};
use super::{AuthFailure, SetupError};

/// Google's key set for Firebase Authentication and Identity Platform ID tokens.
pub const SECURETOKEN_JWKS_URL: &str =
    "https://www.googleapis.com/service_accounts/v1/jwk/securetoken@system.gserviceaccount.com";

/// The issuer prefix of Firebase Authentication and Identity Platform ID tokens.
pub const SECURETOKEN_ISSUER_PREFIX: &str = "https://securetoken.google.com/";

/// The `WebhookRequest.payload` field that carries the token unless `END_USER_TOKEN_FIELD` says
/// otherwise.
pub const DEFAULT_TOKEN_FIELD: &str = "userIdToken";

/// The longest accepted `sub` (OIDC: at most 255 ASCII characters).
const MAX_SUBJECT_BYTES: usize = 255;

/// Why an end-user token was refused: the same reasons as the service agent's token. Only the
/// token variants occur (`MalformedToken`, `UnsupportedAlgorithm`, `MissingKeyId`, `UnknownKey`,
/// `BadSignature`, `KeysUnavailable`, `MissingClaim`, `InvalidClaim`, `InvalidIssuer`, `Expired`,
/// `IssuedInFuture`, `NotYetValid`, `AudienceNotAllowed`); `code()` names them for logs.
pub type EndUserError = AuthFailure;

/// Settings of the end-user verifier.
#[derive(Debug, Clone)]
pub struct EndUserSettings {
    /// The exact `iss` accepted (`END_USER_ISSUER`).
    pub issuer: String,
    /// Accepted `aud` values (`END_USER_AUDIENCES`), never empty.
    pub audiences: Vec<String>,
    /// Where and how the issuer's keys are fetched and cached.
    pub jwks: JwksConfig,
    /// Clock skew tolerated on `exp`, `iat` and `nbf` (the service agent's `AUTH_LEEWAY_SECS`).
    pub leeway: Duration,
    /// Verified tokens remembered until they expire; 0 verifies every call.
    pub token_cache_size: u64,
    /// The `WebhookRequest.payload` field that carries the token (`END_USER_TOKEN_FIELD`).
    pub token_field: String,
}

impl EndUserSettings {
    /// Settings for tokens of `issuer` for `audiences`, with the default leeway, cache size and
    /// token field. Keys come from `jwks_url` when given, else from Google's securetoken key set
    /// for Firebase / Identity Platform issuers, else from the issuer's discovery document.
    pub fn new(issuer: String, audiences: Vec<String>, jwks_url: Option<String>) -> Self {
        let jwks = match jwks_url {
            Some(url) => JwksConfig::new(url),
            None if issuer.starts_with(SECURETOKEN_ISSUER_PREFIX) => {
                JwksConfig::new(SECURETOKEN_JWKS_URL.to_owned())
            }
            None => JwksConfig::discover(&issuer),
        };
        EndUserSettings {
            issuer,
            audiences,
            jwks,
            leeway: DEFAULT_LEEWAY,
            token_cache_size: DEFAULT_TOKEN_CACHE_SIZE,
            token_field: DEFAULT_TOKEN_FIELD.to_owned(),
        }
    }
}

/// A verified end user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EndUser {
    /// The user's stable id at the issuer (`sub`). Log it only as a pseudonym.
    pub subject: String,
    /// When the token expires (its `exp`); the identity holds until then.
    pub expires_at: SystemTime,
}

/// Verifies end users' ID tokens. Build once at start (inside the tokio runtime) and share.
#[derive(Debug)]
pub struct EndUserVerifier {
    /// The exact accepted issuer.
    issuer: String,
    /// Accepted audiences.
    audiences: Vec<String>,
    /// Tolerated clock skew in seconds.
    leeway: i64,
    /// The payload field carrying the token.
    token_field: String,
    /// Signatures against the issuer's keys.
    rs256: Rs256Verifier,
    /// Tokens that passed every check.
    verified: VerifiedTokens<EndUser>,
}

impl EndUserVerifier {
    /// A verifier for `settings`; starts fetching the issuer's keys, so it must run inside the
    /// tokio runtime.
    pub fn new(settings: &EndUserSettings) -> Result<Self, SetupError> {
        let leeway = i64::try_from(settings.leeway.as_secs()).unwrap_or(i64::MAX);
        Ok(EndUserVerifier {
            issuer: settings.issuer.clone(),
            audiences: settings.audiences.clone(),
            leeway,
            token_field: settings.token_field.clone(),
            rs256: Rs256Verifier::start(settings.jwks.clone())?,
            verified: VerifiedTokens::new(settings.token_cache_size, leeway),
        })
    }

    /// The `WebhookRequest.payload` field that carries the token.
    pub fn token_field(&self) -> &str {
        &self.token_field
    }

    /// The issuer's key cache (tests and diagnostics).
    pub fn keys(&self) -> &KeyCache {
        self.rs256.keys()
    }

    /// Verifies `token` and returns who it proves the user is.
    pub async fn verify(&self, token: &str) -> Result<EndUser, EndUserError> {
        // A token verified before passed the checks below: the cache is asked first.
        if let Some(user) = self.verified.get(token).await {
            return Ok(user);
        }
        let segments = jwt::split(token)?;
        let claims: Claims = self.rs256.verify(token, segments).await?;
        let (user, exp) = self.check(&claims, jwt::unix_now())?;
        self.verified.insert(token, user.clone(), exp).await;
        Ok(user)
    }

    /// The claim checks, at `now` (seconds since the epoch); returns the user and `exp`.
    fn check(&self, claims: &Claims, now: i64) -> Result<(EndUser, i64), EndUserError> {
        let iss = claims
            .iss
            .as_deref()
            .ok_or(AuthFailure::MissingClaim("iss"))?;
        if iss != self.issuer {
            return Err(AuthFailure::InvalidIssuer);
        }
        let exp = check_lifetime(claims, now, self.leeway)?;
        check_audience(claims, &self.audiences)?;
        let subject = claims
            .sub
            .as_deref()
            .ok_or(AuthFailure::MissingClaim("sub"))?;
        if subject.is_empty() || subject.len() > MAX_SUBJECT_BYTES {
            return Err(AuthFailure::InvalidClaim("sub"));
        }
        let expires_at = UNIX_EPOCH + Duration::from_secs(exp.unsigned_abs());
        let user = EndUser {
            subject: subject.to_owned(),
            expires_at,
        };
        Ok((user, exp))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_come_from_the_setting_then_securetoken_then_discovery() {
        let aud = || vec!["my-project".to_owned()];
        let explicit = EndUserSettings::new(
            "https://idp.example".into(),
            aud(),
            Some("https://idp.example/keys".into()),
        );
        assert_eq!(explicit.jwks.url, "https://idp.example/keys");
        assert_eq!(explicit.jwks.discovery, None);

        let firebase = EndUserSettings::new(
            "https://securetoken.google.com/my-project".into(),
            aud(),
            None,
        );
        assert_eq!(firebase.jwks.url, SECURETOKEN_JWKS_URL);
        assert_eq!(firebase.jwks.discovery, None);

        let oidc = EndUserSettings::new("https://idp.example/tenant/".into(), aud(), None);
        assert_eq!(
            oidc.jwks.url,
            "https://idp.example/tenant/.well-known/openid-configuration"
        );
        assert_eq!(
            oidc.jwks.discovery.as_deref(),
            Some("https://idp.example/tenant/")
        );
        assert_eq!(oidc.token_field, "userIdToken");
    }

    #[tokio::test]
    async fn claims_are_checked_against_the_settings() {
        const NOW: i64 = 1_800_000_000;
        let settings = EndUserSettings::new(
            "https://securetoken.google.com/p".into(),
            vec!["p".into()],
            Some("http://127.0.0.1:9/keys".into()),
        );
        let verifier = EndUserVerifier::new(&settings).unwrap();
        let good = serde_json::json!({
            "iss": "https://securetoken.google.com/p", "aud": "p", "sub": "demo-user-1",
            "iat": NOW - 60, "exp": NOW + 3540,
        });
        let with = |key: &str, value: serde_json::Value| {
            let mut claims = good.clone();
            claims[key] = value;
            serde_json::from_value::<Claims>(claims).unwrap()
        };
        let (user, exp) = verifier
            .check(&serde_json::from_value(good.clone()).unwrap(), NOW)
            .unwrap();
        assert_eq!(user.subject, "demo-user-1");
        assert_eq!(exp, NOW + 3540);
        assert_eq!(
            user.expires_at,
            UNIX_EPOCH + Duration::from_secs((NOW + 3540) as u64)
        );
        let cases = [
            (
                with("iss", "https://securetoken.google.com/other".into()),
                AuthFailure::InvalidIssuer,
            ),
            (
                with("iss", "https://securetoken.google.com/p/".into()),
                AuthFailure::InvalidIssuer,
            ),
            (with("aud", "other".into()), AuthFailure::AudienceNotAllowed),
            (with("sub", "".into()), AuthFailure::InvalidClaim("sub")),
            (
                with("sub", "x".repeat(256).into()),
                AuthFailure::InvalidClaim("sub"),
            ),
            (
                with("sub", serde_json::Value::Null),
                AuthFailure::MissingClaim("sub"),
            ),
            (with("exp", (NOW - 60).into()), AuthFailure::Expired),
            (
                with("exp", serde_json::json!(1e300)),
                AuthFailure::InvalidClaim("exp"),
            ),
        ];
        for (claims, expected) in cases {
            assert_eq!(verifier.check(&claims, NOW).unwrap_err(), expected);
        }
    }
}
