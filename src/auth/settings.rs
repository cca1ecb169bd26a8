//! The settings the authenticators are built from. They live here, beside the code that reads
//! them, so `auth` does not depend on [`crate::config`]: config validates flags and environment
//! into these types (and re-exports them under its own name), never the other way round.

use std::fmt;
use std::time::Duration;

use aws_lc_rs::digest::{SHA256, digest};
use http::HeaderName;

/// Authentication settings, per mode (`AUTH_MODE`).
#[derive(Debug, Clone)]
pub enum AuthConfig {
    /// Full verification of Google-signed ID tokens (public ingress).
    GoogleOidc(OidcConfig),
    /// Claims of ID tokens Cloud Run IAM already verified (signature stripped); a token that still
    /// carries a signature is verified fully.
    CloudRunIam(OidcConfig),
    /// A shared key in a custom header.
    ApiKey(ApiKeyConfig),
    /// No authentication (local only).
    None,
}

/// Settings of the two ID-token modes.
#[derive(Debug, Clone)]
pub struct OidcConfig {
    /// Accepted `aud` values. Never empty in google-oidc; empty in cloud-run-iam means "not
    /// checked" (Cloud Run checked it).
    pub audiences: Vec<String>,
    /// Accepted `email` values, lowercase, never empty.
    pub allowed_emails: Vec<String>,
    /// Clock skew tolerated on `exp`, `iat` and `nbf`.
    pub leeway: Duration,
    /// Where and how Google's keys are fetched and cached.
    pub jwks: JwksConfig,
    /// Verified tokens remembered until they expire; 0 verifies every request.
    pub token_cache_size: u64,
}

impl OidcConfig {
    /// Settings with the default leeway and key-cache policy.
    pub fn new(audiences: Vec<String>, allowed_emails: Vec<String>, jwks_url: String) -> Self {
        OidcConfig {
            audiences,
            allowed_emails,
            leeway: DEFAULT_LEEWAY,
            jwks: JwksConfig::new(jwks_url),
            token_cache_size: DEFAULT_TOKEN_CACHE_SIZE,
        }
    }
}

/// Clock skew tolerated on `exp`, `iat` and `nbf` unless configured otherwise.
pub const DEFAULT_LEEWAY: Duration = Duration::from_secs(30);

/// Verified tokens remembered unless configured otherwise.
pub const DEFAULT_TOKEN_CACHE_SIZE: u64 = 10_000;

/// The key-set cache policy. Only the URL is a setting; the rest are fixed policy that tests may
/// shorten.
#[derive(Debug, Clone)]
pub struct JwksConfig {
    /// The JSON Web Key Set URL (https, or http on loopback for tests and local tools); with
    /// `discovery`, the URL of an OpenID discovery document whose `jwks_uri` names the key set.
    pub url: String,
    /// `Some(issuer)`: `url` is `issuer`'s OpenID discovery document; its `jwks_uri` is looked up
    /// at every fetch, and the document must name `issuer` (OpenID Connect Discovery §4.3).
    pub discovery: Option<String>,
    /// Shortest time a fetched key set is trusted to be current, whatever `Cache-Control` says.
    pub min_ttl: Duration,
    /// Longest time a fetched key set is trusted to be current, whatever `Cache-Control` says.
    pub max_ttl: Duration,
    /// Minimum time between two fetches caused by requests (an unknown `kid`, no keys yet), so a
    /// flood of made-up key ids cannot turn into a flood of fetches.
    pub refetch_interval: Duration,
    /// Budget of one fetch, connection included (of each of the two with discovery).
    pub fetch_timeout: Duration,
}

impl JwksConfig {
    /// The default policy for the key set at `url`: trust a key set 60 s to 24 h, refetch on
    /// demand at most every 10 s, give a fetch 3 s.
    pub fn new(url: String) -> Self {
        JwksConfig {
            url,
            discovery: None,
            min_ttl: Duration::from_secs(60),
            max_ttl: Duration::from_secs(24 * 3600),
            refetch_interval: Duration::from_secs(10),
            fetch_timeout: Duration::from_secs(3),
        }
    }

    /// The default policy for the key set named by `issuer`'s OpenID discovery document
    /// (`<issuer>/.well-known/openid-configuration`).
    pub fn discover(issuer: &str) -> Self {
        JwksConfig {
            discovery: Some(issuer.to_owned()),
            ..JwksConfig::new(format!(
                "{}/.well-known/openid-configuration",
                issuer.trim_end_matches('/')
            ))
        }
    }
}

/// Settings of the api-key mode. Only the SHA-256 of the key is kept.
#[derive(Clone)]
pub struct ApiKeyConfig {
    /// The header carrying the key (never `authorization`).
    pub header: HeaderName,
    /// SHA-256 of the expected key.
    key_digest: Vec<u8>,
}

impl ApiKeyConfig {
    /// Settings for `key` in `header`.
    pub fn new(header: HeaderName, key: &str) -> Self {
        ApiKeyConfig {
            header,
            key_digest: digest(&SHA256, key.as_bytes()).as_ref().to_vec(),
        }
    }

    /// SHA-256 of the expected key.
    pub fn key_digest(&self) -> &[u8] {
        &self.key_digest
    }
}

impl fmt::Debug for ApiKeyConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ApiKeyConfig")
            .field("header", &self.header)
            .finish_non_exhaustive()
    }
}
