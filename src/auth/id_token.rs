//! Google ID tokens as Dialogflow sends them (`Authorization: Bearer <JWT>`), for the google-oidc
//! and cloud-run-iam modes.
//!
//! A token is taken apart by hand before any cryptography, so each failure has its own reason and
//! nothing the token says can choose how it is checked:
//! 1. at most 8 KiB, exactly three dot-separated segments (`malformed_token`);
//! 2. a signature segment of `SIGNATURE_REMOVED_BY_GOOGLE` is what Cloud Run IAM leaves after it
//!    verified the token: cloud-run-iam checks the claims of such a token and nothing else can;
//!    google-oidc refuses it (`signature_stripped`), since anyone can write that string;
//! 3. the header must say `alg: RS256` (`none`, HS256 signed with a public key, ES256 … are
//!    `unsupported_algorithm`) and name a `kid` found in Google's key set ([`super::keys`]);
//! 4. jsonwebtoken (aws-lc-rs) verifies the signature with that key, the algorithm pinned to RS256
//!    and its own claim checks off: every claim is checked by [`super::claims`], the same code for
//!    both modes.
//!
//! **Verified-token cache.** RSA verification costs more than the rest of a webhook call (the
//! benchmark showed throughput halved), and Dialogflow sends the same token for up to its hour of
//! life. So a token that passed every check is remembered by the SHA-256 of its full text
//! (signature included: a hit needs the very bytes that were verified) together with its caller and
//! `exp`, until `exp` plus the leeway; a hit still checks the expiry. Only successes are cached, so
//! garbage cannot fill or poison it; it holds at most `AUTH_TOKEN_CACHE_SIZE` entries (moka, LRU
//! plus frequency). A token stays accepted until its `exp` even if Google retires its key earlier;
//! Google retires keys only after the tokens they signed have expired.
//!
//! Neither the token nor any part of it ever goes into an error message or a log.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use aws_lc_rs::digest::{SHA256, digest};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, Validation};
use serde::Deserialize;
use serde::de::DeserializeOwned;

use super::claims::{Claims, Policy};
use super::keys::{KeyCache, KeyError};
use super::{AuthError, Caller, SetupError};
use crate::config::OidcConfig;

/// What Cloud Run puts in place of the signature after verifying a token.
const STRIPPED_SIGNATURE: &str = "SIGNATURE_REMOVED_BY_GOOGLE";
/// Largest accepted token; Google ID tokens are about 1 KiB.
const MAX_TOKEN_BYTES: usize = 8 * 1024;

/// The JOSE header fields that matter.
#[derive(Debug, Deserialize)]
struct JoseHeader {
    /// Signature algorithm; only RS256 is accepted.
    alg: String,
    /// Id of the signing key in Google's key set.
    kid: Option<String>,
}

/// Verifies Google ID tokens and pins their caller.
#[derive(Debug)]
pub struct IdTokenVerifier {
    /// Claim checks (issuer, lifetime, audience, email).
    policy: Policy,
    /// Google's signing keys.
    keys: KeyCache,
    /// jsonwebtoken's settings: RS256 only, signature only.
    validation: Validation,
    /// Whether a token whose signature Cloud Run stripped is accepted on its claims
    /// (cloud-run-iam).
    accept_stripped: bool,
    /// `Retry-After` seconds while no key set has been fetched.
    retry_after: u64,
    /// Tokens that passed every check, by SHA-256 (`None` when `AUTH_TOKEN_CACHE_SIZE` is 0).
    verified: Option<moka::future::Cache<[u8; 32], Verified>>,
}

/// What a verified token established.
#[derive(Debug, Clone)]
struct Verified {
    /// The caller's email.
    email: String,
    /// The token's expiry (seconds since the epoch).
    exp: i64,
}

/// Drops a cache entry when its token expires (plus the leeway).
struct UntilExpiry {
    leeway: i64,
}

impl moka::Expiry<[u8; 32], Verified> for UntilExpiry {
    fn expire_after_create(
        &self,
        _key: &[u8; 32],
        value: &Verified,
        _created_at: Instant,
    ) -> Option<Duration> {
        let left = value
            .exp
            .saturating_add(self.leeway)
            .saturating_sub(unix_now());
        Some(Duration::from_secs(u64::try_from(left).unwrap_or(0)))
    }
}

impl IdTokenVerifier {
    /// A verifier for `config`; starts the key cache (so it must run inside the tokio runtime).
    /// `accept_stripped` selects cloud-run-iam's behaviour.
    pub fn new(config: &OidcConfig, accept_stripped: bool) -> Result<Self, SetupError> {
        let mut validation = Validation::new(Algorithm::RS256);
        // Claims are checked by `claims::Policy` for both modes; jsonwebtoken checks the signature.
        validation.required_spec_claims.clear();
        validation.validate_exp = false;
        validation.validate_nbf = false;
        validation.validate_aud = false;
        let leeway = i64::try_from(config.leeway.as_secs()).unwrap_or(i64::MAX);
        let verified = (config.token_cache_size > 0).then(|| {
            moka::future::Cache::builder()
                .max_capacity(config.token_cache_size)
                .expire_after(UntilExpiry { leeway })
                .build()
        });
        Ok(IdTokenVerifier {
            policy: Policy {
                audiences: config.audiences.clone(),
                allowed_emails: config.allowed_emails.clone(),
                leeway,
            },
            keys: KeyCache::start(config.jwks.clone())?,
            validation,
            accept_stripped,
            retry_after: config.jwks.refetch_interval.as_secs().max(1),
            verified,
        })
    }

    /// The key cache (tests and diagnostics).
    pub fn keys(&self) -> &KeyCache {
        &self.keys
    }

    /// Verifies `token` (the Bearer credential) and returns its caller.
    pub async fn verify(&self, token: &str) -> Result<Caller, AuthError> {
        if token.len() > MAX_TOKEN_BYTES {
            return Err(malformed("the token is larger than 8 KiB"));
        }
        let mut segments = token.split('.');
        let (Some(header), Some(payload), Some(signature), None) = (
            segments.next(),
            segments.next(),
            segments.next(),
            segments.next(),
        ) else {
            return Err(malformed("a JWT has three dot-separated segments"));
        };

        if signature == STRIPPED_SIGNATURE {
            if !self.accept_stripped {
                return Err(AuthError::unauthorized(
                    "signature_stripped",
                    "the token's signature was removed (as Cloud Run IAM does); this service \
                     verifies signatures itself and needs the whole token",
                ));
            }
            let claims: Claims = decode_segment(payload)?;
            return self.caller(&claims);
        }

        let fingerprint = fingerprint(token);
        if let Some(cache) = &self.verified
            && let Some(hit) = cache.get(&fingerprint).await
            && self.policy.unexpired(hit.exp, unix_now())
        {
            return Ok(Caller {
                email: Some(hit.email),
            });
        }

        let header: JoseHeader = decode_segment(header)?;
        if header.alg != "RS256" {
            return Err(AuthError::unauthorized(
                "unsupported_algorithm",
                "the token must be signed with RS256",
            ));
        }
        let kid = header.kid.ok_or_else(|| {
            AuthError::unauthorized("missing_key_id", "the token's header names no key (kid)")
        })?;
        let key = self.keys.key(&kid).await.map_err(|e| match e {
            KeyError::Unknown => AuthError::unauthorized(
                "unknown_key",
                "the token was signed with a key that is not in Google's key set",
            ),
            KeyError::Unavailable => AuthError::unavailable(
                "keys_unavailable",
                "Google's signing keys could not be fetched yet; retry shortly",
                self.retry_after,
            ),
        })?;
        let claims = jsonwebtoken::decode::<Claims>(token, &key, &self.validation)
            .map_err(|e| signature_error(e.kind()))?
            .claims;
        let caller = self.caller(&claims)?;
        if let (Some(cache), Some(exp), Some(email)) = (&self.verified, claims.exp, &caller.email) {
            let entry = Verified {
                email: email.clone(),
                exp: exp.secs(),
            };
            cache.insert(fingerprint, entry).await;
        }
        Ok(caller)
    }

    fn caller(&self, claims: &Claims) -> Result<Caller, AuthError> {
        let email = self.policy.check(claims, unix_now())?;
        Ok(Caller { email: Some(email) })
    }
}

/// Seconds since the epoch (0 if the clock is before it, which fails every token).
fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

/// SHA-256 of the whole token: the verified-token cache's key.
fn fingerprint(token: &str) -> [u8; 32] {
    let mut out = [0; 32];
    // SHA-256 digests are always 32 bytes.
    out.copy_from_slice(digest(&SHA256, token.as_bytes()).as_ref());
    out
}

fn malformed(message: &'static str) -> AuthError {
    AuthError::unauthorized("malformed_token", message)
}

/// A base64url JSON segment of the token.
fn decode_segment<T: DeserializeOwned>(segment: &str) -> Result<T, AuthError> {
    let bytes = URL_SAFE_NO_PAD
        .decode(segment)
        .map_err(|_| malformed("a token segment is not base64url"))?;
    serde_json::from_slice(&bytes)
        .map_err(|_| malformed("a token segment is not JSON of the expected shape"))
}

/// Maps jsonwebtoken's failure (signature check, then claims decoding) to a reason.
fn signature_error(kind: &ErrorKind) -> AuthError {
    match kind {
        ErrorKind::InvalidSignature | ErrorKind::InvalidRsaKey(_) | ErrorKind::InvalidKeyFormat => {
            AuthError::unauthorized(
                "invalid_signature",
                "the token's signature does not verify with Google's key",
            )
        }
        ErrorKind::InvalidAlgorithm
        | ErrorKind::MissingAlgorithm
        | ErrorKind::UnsupportedAlgorithm
        | ErrorKind::InvalidAlgorithmName => AuthError::unauthorized(
            "unsupported_algorithm",
            "the token must be signed with RS256",
        ),
        _ => malformed("the token is not a well-formed JWT"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segments_must_be_unpadded_base64url_json() {
        let ok = URL_SAFE_NO_PAD.encode(br#"{"alg":"RS256","kid":"k"}"#);
        let header: JoseHeader = decode_segment(&ok).unwrap();
        assert_eq!(
            (header.alg.as_str(), header.kid.as_deref()),
            ("RS256", Some("k"))
        );
        for bad in ["e30=", "not base64!", "bm90IGpzb24"] {
            let e = decode_segment::<JoseHeader>(bad).unwrap_err();
            assert_eq!(e.code, "malformed_token", "{bad}");
        }
    }

    #[test]
    fn jsonwebtoken_failures_map_to_reasons() {
        assert_eq!(
            signature_error(&ErrorKind::InvalidSignature).code,
            "invalid_signature"
        );
        assert_eq!(
            signature_error(&ErrorKind::InvalidAlgorithm).code,
            "unsupported_algorithm"
        );
        assert_eq!(
            signature_error(&ErrorKind::InvalidToken).code,
            "malformed_token"
        );
    }
}
