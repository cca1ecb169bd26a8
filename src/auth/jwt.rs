//! The RS256 JWT machinery shared by the service-agent verifier ([`super::id_token`]) and the
//! end-user verifier ([`super::end_user`]): each holds its own instance of it, with its own key
//! cache and verified-token cache.
//!
//! A token is taken apart by hand before any cryptography, so each failure has its own reason and
//! nothing the token says can choose how it is checked:
//! 1. at most 8 KiB, exactly three dot-separated segments ([`split`], `malformed_token`);
//! 2. the header must say `alg: RS256` (`none`, HS256 signed with a public key, ES256 … are
//!    `unsupported_algorithm`) and name a `kid` found in the issuer's key set ([`super::keys`]);
//! 3. jsonwebtoken (aws-lc-rs) verifies the signature with that key, the algorithm pinned to RS256
//!    and its own claim checks off: the claims are checked by [`super::claims`].
//!
//! **Verified-token cache** ([`VerifiedTokens`]). RSA verification costs more than the rest of a
//! webhook call (the benchmark showed throughput halved), and callers send the same token for up
//! to its hour of life. So a token that passed every check is remembered, with what it established
//! and its `exp`, until `exp` plus the leeway; a hit still checks the expiry. Only successes are
//! cached, so garbage cannot fill or poison it; it holds at most a configured number of entries
//! (moka, LRU plus frequency). A token stays accepted until its `exp` even if the issuer retires
//! its key earlier; Google retires keys only after the tokens they signed have expired.
//!
//! The cache is keyed by the first 32 characters of the token's signature segment (192 bits of an
//! RSA signature), and each entry keeps the full text of the token it was made for: a lookup is a
//! hit only when the presented token is byte for byte that text (compared in constant time). So
//! the key decides only where to look, never what is accepted; correctness rests on the full
//! comparison, and a token that was not verified is never served from the cache, whatever its
//! signature. Why not a hash of the whole token: hashing ~900 bytes with SHA-256 was 28% of an
//! authenticated call's instructions, while the key needs no collision resistance here. A forger
//! can copy a cached token's signature onto an edited payload and land on its entry, but the
//! comparison misses, the token goes to RSA verification and fails, and failures are never
//! inserted, so the entry survives. Two verified tokens share a key only if their RSA signatures
//! agree in 192 bits, which no one can arrange without the private key; were it to happen, the
//! later insert replaces the earlier entry (one extra verification, nothing wrong accepted).
//! The price is memory: up to one token (about 1 KiB) per entry.
//!
//! Neither the token nor any part of it ever goes into an error message or a log.

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use aws_lc_rs::constant_time;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, Validation};
use serde::Deserialize;
use serde::de::DeserializeOwned;

use super::keys::{KeyCache, KeyError};
use super::settings::JwksConfig;
use super::{AuthFailure, SetupError};

/// Largest accepted token; Google ID tokens are about 1 KiB, Firebase's about 1.2 KiB.
pub const MAX_TOKEN_BYTES: usize = 8 * 1024;

/// The three segments of a compact JWS, still encoded.
#[derive(Debug, Clone, Copy)]
pub struct Segments<'a> {
    /// base64url JOSE header.
    pub header: &'a str,
    /// base64url claims.
    pub payload: &'a str,
    /// base64url signature (or Cloud Run's marker).
    pub signature: &'a str,
}

/// Splits `token` into its three segments: at most [`MAX_TOKEN_BYTES`], exactly three parts.
pub fn split(token: &str) -> Result<Segments<'_>, AuthFailure> {
    if token.len() > MAX_TOKEN_BYTES {
        return Err(AuthFailure::MalformedToken(
            "the token is larger than 8 KiB",
        ));
    }
    // memchr: this runs on every call over a ~1 KB token; `str::split` was 1,300 instructions.
    let mut dots = memchr::memchr_iter(b'.', token.as_bytes());
    match (dots.next(), dots.next(), dots.next()) {
        (Some(first), Some(second), None) => Ok(Segments {
            header: &token[..first],
            payload: &token[first + 1..second],
            signature: &token[second + 1..],
        }),
        _ => Err(AuthFailure::MalformedToken(
            "a JWT has three dot-separated segments",
        )),
    }
}

/// A base64url JSON segment of the token.
pub fn decode_segment<T: DeserializeOwned>(segment: &str) -> Result<T, AuthFailure> {
    let bytes = URL_SAFE_NO_PAD
        .decode(segment)
        .map_err(|_| AuthFailure::MalformedToken("a token segment is not base64url"))?;
    serde_json::from_slice(&bytes).map_err(|_| {
        AuthFailure::MalformedToken("a token segment is not JSON of the expected shape")
    })
}

/// The JOSE header fields that matter.
#[derive(Debug, Deserialize)]
struct JoseHeader {
    /// Signature algorithm; only RS256 is accepted.
    alg: String,
    /// Id of the signing key in the issuer's key set.
    kid: Option<String>,
}

/// Checks RS256 signatures against one issuer's key set.
#[derive(Debug)]
pub struct Rs256Verifier {
    /// The issuer's signing keys.
    keys: KeyCache,
    /// jsonwebtoken's settings: RS256 only, signature only.
    validation: Validation,
    /// `Retry-After` seconds while no key set has been fetched.
    retry_after: u64,
}

impl Rs256Verifier {
    /// A verifier over the key set `jwks` describes; starts its key cache (so it must run inside
    /// the tokio runtime).
    pub fn start(jwks: JwksConfig) -> Result<Self, SetupError> {
        let mut validation = Validation::new(Algorithm::RS256);
        // Claims are checked by `claims`; jsonwebtoken checks the signature only.
        validation.required_spec_claims.clear();
        validation.validate_exp = false;
        validation.validate_nbf = false;
        validation.validate_aud = false;
        Ok(Rs256Verifier {
            retry_after: jwks.refetch_interval.as_secs().max(1),
            keys: KeyCache::start(jwks)?,
            validation,
        })
    }

    /// The key cache (tests and diagnostics).
    pub fn keys(&self) -> &KeyCache {
        &self.keys
    }

    /// Verifies the signature of `token` (whose segments are `segments`) and returns its claims,
    /// unchecked.
    pub async fn verify<C: DeserializeOwned>(
        &self,
        token: &str,
        segments: Segments<'_>,
    ) -> Result<C, AuthFailure> {
        let header: JoseHeader = decode_segment(segments.header)?;
        if header.alg != "RS256" {
            return Err(AuthFailure::UnsupportedAlgorithm);
        }
        let kid = header.kid.ok_or(AuthFailure::MissingKeyId)?;
        let key = self.keys.key(&kid).await.map_err(|e| match e {
            KeyError::Unknown => AuthFailure::UnknownKey,
            KeyError::Unavailable => AuthFailure::KeysUnavailable {
                retry_after: self.retry_after,
            },
        })?;
        jsonwebtoken::decode::<C>(token, &key, &self.validation)
            .map(|data| data.claims)
            .map_err(|e| signature_error(e.kind()))
    }
}

/// Maps jsonwebtoken's failure (signature check, then claims decoding) to a reason.
fn signature_error(kind: &ErrorKind) -> AuthFailure {
    match kind {
        ErrorKind::InvalidSignature | ErrorKind::InvalidRsaKey(_) | ErrorKind::InvalidKeyFormat => {
            AuthFailure::BadSignature
        }
        ErrorKind::InvalidAlgorithm
        | ErrorKind::MissingAlgorithm
        | ErrorKind::UnsupportedAlgorithm
        | ErrorKind::InvalidAlgorithmName => AuthFailure::UnsupportedAlgorithm,
        _ => AuthFailure::MalformedToken("the token is not a well-formed JWT"),
    }
}

/// Tokens that passed every check, keyed by their signature's first characters and holding their
/// full text, each with what it established (`V`) until its `exp` plus the leeway. Disabled (every lookup misses) when built with capacity 0.
#[derive(Debug)]
pub struct VerifiedTokens<V: Clone + Send + Sync + 'static> {
    cache: Option<moka::future::Cache<[u8; 32], Entry<V>, foldhash::fast::RandomState>>,
    leeway: i64,
}

/// One remembered token.
#[derive(Debug, Clone)]
struct Entry<V> {
    /// The full text of the verified token: a hit must present exactly these bytes.
    token: Arc<str>,
    value: V,
    exp: i64,
}

/// Drops a cache entry when its token expires (plus the leeway).
struct UntilExpiry {
    leeway: i64,
}

impl<V> moka::Expiry<[u8; 32], Entry<V>> for UntilExpiry {
    fn expire_after_create(
        &self,
        _key: &[u8; 32],
        entry: &Entry<V>,
        _created_at: Instant,
    ) -> Option<Duration> {
        let left = entry
            .exp
            .saturating_add(self.leeway)
            .saturating_sub(unix_now());
        Some(Duration::from_secs(u64::try_from(left).unwrap_or(0)))
    }
}

impl<V: Clone + Send + Sync + 'static> VerifiedTokens<V> {
    /// A cache of at most `capacity` tokens; `leeway` seconds of clock skew on `exp`.
    pub fn new(capacity: u64, leeway: i64) -> Self {
        let cache = (capacity > 0).then(|| {
            moka::future::Cache::builder()
                .max_capacity(capacity)
                .expire_after(UntilExpiry { leeway })
                .build_with_hasher(foldhash::fast::RandomState::default())
        });
        VerifiedTokens { cache, leeway }
    }

    /// What `token` established, if it was verified before and is still unexpired. A hit means
    /// these very bytes passed every check, size and format included, so callers look here before
    /// checking anything: `token` may be the raw bytes of a header not yet checked to be text.
    pub async fn get(&self, token: &(impl AsRef<[u8]> + ?Sized)) -> Option<V> {
        let token = token.as_ref();
        let cache = self.cache.as_ref()?;
        let hit = cache.get(&cache_key(token)).await?;
        let same = constant_time::verify_slices_are_equal(hit.token.as_bytes(), token);
        (same.is_ok() && super::claims::unexpired(hit.exp, unix_now(), self.leeway))
            .then_some(hit.value)
    }

    /// Remembers that `token`, expiring at `exp`, established `value`.
    pub async fn insert(&self, token: &str, value: V, exp: i64) {
        if let Some(cache) = &self.cache {
            let entry = Entry {
                token: Arc::from(token),
                value,
                exp,
            };
            cache.insert(cache_key(token.as_bytes()), entry).await;
        }
    }
}

/// Seconds since the epoch (0 if the clock is before it, which fails every token).
pub fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

/// The verified-token cache's key: the first 32 bytes of the signature segment (zero-padded when
/// shorter, as no RS256 signature is). Only where to look: a hit also compares the whole token.
fn cache_key(bytes: &[u8]) -> [u8; 32] {
    let signature = memchr::memrchr(b'.', bytes).map_or(bytes, |dot| &bytes[dot + 1..]);
    let mut key = [0; 32];
    let n = signature.len().min(32);
    key[..n].copy_from_slice(&signature[..n]);
    key
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
            assert!(matches!(e, AuthFailure::MalformedToken(_)), "{bad}: {e:?}");
        }
    }

    #[test]
    fn a_jwt_has_three_segments_and_a_size_cap() {
        let s = split("head.body.sig").unwrap();
        assert_eq!((s.header, s.payload, s.signature), ("head", "body", "sig"));
        let s = split("..").unwrap();
        assert_eq!((s.header, s.payload, s.signature), ("", "", ""));
        assert_eq!(&cache_key(b"h.p.sig")[..4], b"sig\0");
        for bad in ["a.b", "a.b.c.d", "abc", ""] {
            assert!(
                matches!(split(bad), Err(AuthFailure::MalformedToken(_))),
                "{bad}"
            );
        }
        let big = format!("a.{}.c", "b".repeat(MAX_TOKEN_BYTES));
        assert!(matches!(split(&big), Err(AuthFailure::MalformedToken(_))));
    }

    #[test]
    fn jsonwebtoken_failures_map_to_reasons() {
        assert_eq!(
            signature_error(&ErrorKind::InvalidSignature),
            AuthFailure::BadSignature
        );
        assert_eq!(
            signature_error(&ErrorKind::InvalidAlgorithm),
            AuthFailure::UnsupportedAlgorithm
        );
        assert!(matches!(
            signature_error(&ErrorKind::InvalidToken),
            AuthFailure::MalformedToken(_)
        ));
    }

    #[tokio::test]
    async fn the_cache_remembers_until_expiry_and_only_the_exact_token() {
        let cache = VerifiedTokens::new(10, 0);
        let now = unix_now();
        cache.insert("a.b.c", "alice".to_owned(), now + 60).await;
        cache.insert("d.e.f", "bob".to_owned(), now - 1).await;
        assert_eq!(cache.get("a.b.c").await.as_deref(), Some("alice"));
        assert_eq!(cache.get("a.b.C").await, None);
        assert_eq!(cache.get("d.e.f").await, None, "expired entries miss");
        // Same signature, other header or payload: the key matches, the token does not.
        let sig = "S".repeat(342);
        cache
            .insert(&format!("h.p.{sig}"), "carol".to_owned(), now + 60)
            .await;
        assert_eq!(
            cache_key(format!("h.p.{sig}").as_bytes()),
            cache_key(format!("h.q.{sig}").as_bytes())
        );
        assert_eq!(
            cache.get(&format!("h.p.{sig}")).await.as_deref(),
            Some("carol")
        );
        assert_eq!(cache.get(&format!("h.q.{sig}")).await, None);
        assert_eq!(cache.get(&format!("g.p.{sig}")).await, None);
        assert_eq!(cache.get(&format!("h.p.{sig}x")).await, None);
        assert_eq!(cache.get(&format!("h.p.{}", &sig[..32])).await, None);
        let off = VerifiedTokens::new(0, 0);
        off.insert("a.b.c", "alice".to_owned(), now + 60).await;
        assert_eq!(off.get("a.b.c").await, None);
    }
}
