//! An issuer's token-signing keys (Google's for the service agent, the end users' identity
//! provider's for [`super::end_user`]): fetched at start, cached as `Cache-Control` says, refreshed
//! in the background and on demand, without ever making a request wait on a lock. Each verifier
//! holds its own [`KeyCache`].
//!
//! Design:
//! - **Snapshot.** The parsed keys live in an immutable `KeySet` behind
//!   `std::sync::RwLock<Option<Arc<KeySet>>>`. A request takes the read lock only to clone the
//!   `Arc` (no `.await` while it is held) and looks its `kid` up in its own snapshot; a fetch builds
//!   a whole new set and swaps it in with one short write. Keys are parsed into `DecodingKey`s once
//!   per fetch, not per request. (The upstream google-cloud-auth verifier holds a write lock across
//!   the fetch, so one slow fetch stalls every request: issue googleapis/google-cloud-rust#6696.)
//! - **Single flight.** At most one fetch runs at a time. It runs in its own task, so a request that
//!   gives up (client gone, deadline) cannot cancel it for the others. Whoever needs keys while it
//!   runs subscribes to a `watch` channel, under the same short `std::sync::Mutex` that says whether
//!   a fetch is in flight, so no completion can be missed; the lock is released before waiting.
//! - **On demand, rate limited.** A request whose `kid` is unknown (the issuer rotated its keys), or
//!   that finds no keys at all, starts a fetch unless one was started on demand less than
//!   `refetch_interval` ago; otherwise it gets its answer from the keys at hand. Made-up key ids
//!   therefore cost at most one fetch per interval.
//! - **Background.** A task fetches at start and then whenever the set's `Cache-Control: max-age`
//!   (minus `Age`, clamped to `min_ttl..=max_ttl`) runs out, retrying failures with backoff. A
//!   failed fetch keeps the keys we have: issuers (Google, Firebase) publish keys well before they
//!   sign with them and keep them well after. The task holds only a `Weak` reference, so it ends with its cache.
//! - **No keys yet.** Until a first fetch succeeds, requests that need a key get
//!   [`KeyError::Unavailable`] (503 with `Retry-After`).
//!
//! - **Discovery.** When the settings name an OpenID discovery document instead of a key set
//!   ([`JwksConfig::discover`]), each fetch first reads the document (it must name the configured
//!   issuer, and its `jwks_uri` must be https or loopback http) and then the key set it names, so a
//!   provider that moves its keys is followed at the next fetch.
//!
//! Only RSA keys meant for RS256 signatures are kept; the set is capped at 1 MiB and 100 keys. The
//! HTTP client and the size-capped body reader are [`crate::clients`]'s.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError, RwLock, Weak};
use std::time::Duration;

use http::header::{AGE, CACHE_CONTROL, HeaderMap};
use jsonwebtoken::DecodingKey;
use jsonwebtoken::jwk::{AlgorithmParameters, JwkSet, KeyAlgorithm, PublicKeyUse};
use tokio::sync::watch;
use tokio::time::Instant;

use super::SetupError;
use super::settings::JwksConfig;
use crate::clients::{BodyError, http_client, read_capped};

/// Largest key-set (or discovery) document accepted.
const MAX_BODY_BYTES: usize = 1024 * 1024;
/// Most keys kept from one document (Google publishes two or three).
const MAX_KEYS: usize = 100;
/// First retry delay of the background task after a failed fetch; doubles up to [`MAX_BACKOFF`].
const FIRST_BACKOFF: Duration = Duration::from_secs(1);
/// Longest retry delay of the background task.
const MAX_BACKOFF: Duration = Duration::from_secs(60);
/// Lifetime assumed when the response has no usable `max-age`.
const DEFAULT_TTL: Duration = Duration::from_secs(3600);

/// Why no key could be had for a `kid`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    /// The current key set has no key with this id.
    #[error("no key with this id in the key set")]
    Unknown,
    /// No key set has been fetched yet.
    #[error("no key set has been fetched yet")]
    Unavailable,
}

/// Why one fetch failed (logged; the old keys stay).
#[derive(Debug, thiserror::Error)]
enum FetchError {
    #[error("request failed: {0}")]
    Http(#[from] reqwest::Error),
    #[error("answered HTTP {0}")]
    Status(u16),
    #[error(transparent)]
    Body(#[from] BodyError),
    #[error("not a JSON Web Key Set: {0}")]
    Json(#[from] serde_json::Error),
    #[error("the key set has no RS256 signing key with a key id")]
    NoUsableKeys,
    #[error("the discovery document is not usable: {0}")]
    Discovery(&'static str),
}

/// The fields of an OpenID discovery document that matter.
#[derive(Debug, serde::Deserialize)]
struct Discovery {
    /// Must equal the configured issuer.
    issuer: String,
    /// Where the key set is.
    jwks_uri: String,
}

/// One fetched key set: immutable, shared by every request that reads it.
#[derive(Debug)]
struct KeySet {
    /// Parsed keys by key id.
    keys: HashMap<String, Arc<DecodingKey>>,
    /// When the set should be fetched again.
    fresh_until: Instant,
}

/// The outcome of the latest finished fetch, broadcast to whoever waited for it.
#[derive(Debug, Clone, Copy, Default)]
struct Round {
    /// Fetches finished so far.
    finished: u64,
    /// Whether the latest one brought a key set.
    ok: bool,
}

/// Bookkeeping of fetches; guarded by a mutex that is never held across an `.await`.
#[derive(Debug, Default)]
struct Flight {
    /// A fetch task is running.
    in_flight: bool,
    /// When the latest fetch caused by a request started.
    last_on_demand: Option<Instant>,
}

/// Who asks for a fetch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Trigger {
    /// The background task (start, expiry, retry): not rate limited.
    Scheduled,
    /// A request that found no key for its `kid`: rate limited by `refetch_interval`.
    OnDemand,
}

#[derive(Debug)]
struct Inner {
    settings: JwksConfig,
    client: reqwest::Client,
    runtime: tokio::runtime::Handle,
    current: RwLock<Option<Arc<KeySet>>>,
    flight: Mutex<Flight>,
    rounds: watch::Sender<Round>,
    waiting: AtomicUsize,
}

/// The cache of one issuer's signing keys. Cheap to share by reference; dropping it stops its
/// background task.
#[derive(Debug)]
pub struct KeyCache {
    inner: Arc<Inner>,
}

impl KeyCache {
    /// Creates the cache and starts its background task, which fetches the key set at once. Must
    /// run inside the tokio runtime. A failed first fetch is logged and retried, not fatal.
    pub fn start(settings: JwksConfig) -> Result<Self, SetupError> {
        let runtime = tokio::runtime::Handle::try_current().map_err(|_| SetupError::NoRuntime)?;
        let client = http_client(settings.fetch_timeout).map_err(SetupError::Client)?;
        let inner = Arc::new(Inner {
            settings,
            client,
            runtime: runtime.clone(),
            current: RwLock::new(None),
            flight: Mutex::new(Flight::default()),
            rounds: watch::Sender::new(Round::default()),
            waiting: AtomicUsize::new(0),
        });
        runtime.spawn(refresh_in_background(Arc::downgrade(&inner)));
        Ok(KeyCache { inner })
    }

    /// The key with id `kid`. When the current set lacks it (or there is none yet), waits for the
    /// fetch in flight or starts one (rate limited), then looks again.
    pub async fn key(&self, kid: &str) -> Result<Arc<DecodingKey>, KeyError> {
        if let Some(key) = self
            .inner
            .snapshot()
            .and_then(|set| set.keys.get(kid).cloned())
        {
            return Ok(key);
        }
        if let Some(rounds) = self.inner.join_or_start(Trigger::OnDemand) {
            self.inner.waiting.fetch_add(1, Ordering::Relaxed);
            let _waiting = Waiting(&self.inner.waiting);
            self.inner.wait(rounds).await;
        }
        match self.inner.snapshot() {
            None => Err(KeyError::Unavailable),
            Some(set) => set.keys.get(kid).cloned().ok_or(KeyError::Unknown),
        }
    }

    /// How many requests are waiting for a fetch right now (for tests and diagnostics).
    pub fn waiting(&self) -> usize {
        self.inner.waiting.load(Ordering::Relaxed)
    }

    /// Whether a key set has been fetched.
    pub fn has_keys(&self) -> bool {
        self.inner.snapshot().is_some()
    }
}

impl Inner {
    fn snapshot(&self) -> Option<Arc<KeySet>> {
        self.current
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Joins the fetch in flight, or starts one if `trigger` may; returns the channel on which
    /// its end will be announced, or `None` when rate limited.
    fn join_or_start(self: &Arc<Self>, trigger: Trigger) -> Option<watch::Receiver<Round>> {
        let mut flight = self.flight.lock().unwrap_or_else(PoisonError::into_inner);
        // Subscribed under the lock: the fetch task announces its end only after clearing
        // `in_flight` under the same lock, so this receiver cannot miss it.
        let rounds = self.rounds.subscribe();
        if flight.in_flight {
            return Some(rounds);
        }
        let now = Instant::now();
        if trigger == Trigger::OnDemand {
            let recent = flight
                .last_on_demand
                .is_some_and(|at| now.duration_since(at) < self.settings.refetch_interval);
            if recent {
                return None;
            }
            flight.last_on_demand = Some(now);
        }
        flight.in_flight = true;
        drop(flight);
        let announce = Announce {
            inner: self.clone(),
            ok: false,
        };
        self.runtime.spawn(fetch_round(announce, trigger));
        Some(rounds)
    }

    /// Waits (bounded) for the fetch announced on `rounds` to finish; returns its outcome.
    async fn wait(&self, mut rounds: watch::Receiver<Round>) -> bool {
        let budget = self.settings.fetch_timeout + Duration::from_secs(1);
        match tokio::time::timeout(budget, rounds.changed()).await {
            Ok(Ok(())) => rounds.borrow().ok,
            _ => false,
        }
    }

    async fn fetch(&self) -> Result<KeySet, FetchError> {
        let url = match &self.settings.discovery {
            None => self.settings.url.clone(),
            Some(issuer) => {
                let (body, _) = self.get(&self.settings.url).await?;
                let document: Discovery = serde_json::from_slice(&body)?;
                if document.issuer != *issuer {
                    return Err(FetchError::Discovery("it names another issuer"));
                }
                if !is_safe_url(&document.jwks_uri) {
                    return Err(FetchError::Discovery(
                        "its jwks_uri is not https (or http on loopback)",
                    ));
                }
                document.jwks_uri
            }
        };
        let (body, headers) = self.get(&url).await?;
        let ttl = ttl(&headers, self.settings.min_ttl, self.settings.max_ttl);
        let set: JwkSet = serde_json::from_slice(&body)?;
        let keys = rs256_keys(&set);
        if keys.is_empty() {
            return Err(FetchError::NoUsableKeys);
        }
        Ok(KeySet {
            keys,
            fresh_until: Instant::now() + ttl,
        })
    }

    /// GETs a JSON document of at most [`MAX_BODY_BYTES`]; returns its body and headers.
    async fn get(&self, url: &str) -> Result<(bytes::Bytes, HeaderMap), FetchError> {
        let response = self
            .client
            .get(url)
            .header(http::header::ACCEPT, "application/json")
            .send()
            .await
            .map_err(reqwest::Error::without_url)?;
        if !response.status().is_success() {
            return Err(FetchError::Status(response.status().as_u16()));
        }
        let headers = response.headers().clone();
        Ok((read_capped(response, MAX_BODY_BYTES).await?, headers))
    }
}

/// A key-set URL named by a discovery document: https, or plain http to this machine only.
fn is_safe_url(url: &str) -> bool {
    let Ok(url) = reqwest::Url::parse(url) else {
        return false;
    };
    let host = url.host_str().unwrap_or_default();
    let loopback = host.eq_ignore_ascii_case("localhost")
        || host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback());
    match url.scheme() {
        "https" => !host.is_empty(),
        "http" => loopback,
        _ => false,
    }
}

/// Decrements the waiter count when a wait ends, however it ends.
struct Waiting<'a>(&'a AtomicUsize);

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Ends a fetch round when dropped, even if the fetch task panics: clears `in_flight` and wakes
/// the waiters, so no request can wait on a fetch that will never end.
struct Announce {
    inner: Arc<Inner>,
    ok: bool,
}

impl Drop for Announce {
    fn drop(&mut self) {
        self.inner
            .flight
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .in_flight = false;
        let ok = self.ok;
        self.inner.rounds.send_modify(|round| {
            round.finished += 1;
            round.ok = ok;
        });
    }
}

/// One fetch, run in its own task.
async fn fetch_round(mut announce: Announce, trigger: Trigger) {
    let inner = &announce.inner;
    match inner.fetch().await {
        Ok(set) => {
            let keys = set.keys.len();
            let ttl_secs = set
                .fresh_until
                .saturating_duration_since(Instant::now())
                .as_secs();
            *inner
                .current
                .write()
                .unwrap_or_else(PoisonError::into_inner) = Some(Arc::new(set));
            tracing::info!(
                keys,
                ttl_secs,
                ?trigger,
                "fetched the issuer's signing keys"
            );
            announce.ok = true;
        }
        Err(error) => {
            let keeping = inner.snapshot().map_or(0, |set| set.keys.len());
            tracing::warn!(
                url = %inner.settings.url,
                error = %error,
                ?trigger,
                keeping,
                "cannot fetch the issuer's signing keys; keeping the keys we have"
            );
        }
    }
}

/// The background task: fetch now, then again when the set goes stale; retry failures with
/// backoff. Ends when the cache is dropped.
async fn refresh_in_background(cache: Weak<Inner>) {
    let mut backoff = FIRST_BACKOFF;
    loop {
        let Some(inner) = cache.upgrade() else { return };
        let fresh_for = inner
            .snapshot()
            .map(|set| set.fresh_until.saturating_duration_since(Instant::now()))
            .filter(|left| !left.is_zero());
        let delay = match fresh_for {
            Some(left) => left,
            None => {
                let ok = match inner.join_or_start(Trigger::Scheduled) {
                    Some(rounds) => inner.wait(rounds).await,
                    None => false,
                };
                if ok {
                    backoff = FIRST_BACKOFF;
                    continue;
                }
                let delay = backoff;
                backoff = (backoff * 2).min(MAX_BACKOFF);
                delay
            }
        };
        drop(inner);
        tokio::time::sleep(delay).await;
    }
}

/// The RS256 signing keys of `set` that have a key id, parsed once.
fn rs256_keys(set: &JwkSet) -> HashMap<String, Arc<DecodingKey>> {
    let mut keys = HashMap::new();
    for jwk in &set.keys {
        let (Some(kid), AlgorithmParameters::RSA(_)) = (&jwk.common.key_id, &jwk.algorithm) else {
            continue;
        };
        let for_rs256 = matches!(jwk.common.key_algorithm, None | Some(KeyAlgorithm::RS256));
        let for_signing = matches!(
            jwk.common.public_key_use,
            None | Some(PublicKeyUse::Signature)
        );
        if !(for_rs256 && for_signing) || keys.len() >= MAX_KEYS {
            continue;
        }
        match DecodingKey::from_jwk(jwk) {
            Ok(key) => {
                keys.insert(kid.clone(), Arc::new(key));
            }
            Err(error) => tracing::warn!(%error, "skipping a key that does not parse"),
        }
    }
    keys
}

/// How long a key-set response may be used: `Cache-Control: max-age` minus `Age`, clamped to
/// `min..=max`; [`DEFAULT_TTL`] (clamped) when there is no `max-age`, `min` for `no-cache` or
/// `no-store`.
fn ttl(headers: &HeaderMap, min: Duration, max: Duration) -> Duration {
    let mut max_age = None;
    let mut no_cache = false;
    for value in headers.get_all(CACHE_CONTROL) {
        let Ok(value) = value.to_str() else { continue };
        for directive in value.split(',') {
            let (name, arg) = match directive.split_once('=') {
                Some((name, arg)) => (name.trim(), Some(arg.trim().trim_matches('"'))),
                None => (directive.trim(), None),
            };
            if name.eq_ignore_ascii_case("max-age") {
                max_age = arg.and_then(|a| a.parse::<u64>().ok());
            } else if name.eq_ignore_ascii_case("no-cache") || name.eq_ignore_ascii_case("no-store")
            {
                no_cache = true;
            }
        }
    }
    let age = headers
        .get(AGE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
        .unwrap_or(0);
    let ttl = match (no_cache, max_age) {
        (true, _) => Duration::ZERO,
        (false, Some(secs)) => Duration::from_secs(secs.saturating_sub(age)),
        (false, None) => DEFAULT_TTL,
    };
    ttl.clamp(min, max)
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(*k, HeaderValue::from_static(v));
        }
        h
    }

    const MIN: Duration = Duration::from_secs(60);
    const MAX: Duration = Duration::from_secs(86_400);

    #[test]
    fn max_age_minus_age_is_the_ttl() {
        let h = headers(&[
            (
                "cache-control",
                "public, max-age=19845, must-revalidate, no-transform",
            ),
            ("age", "45"),
        ]);
        assert_eq!(ttl(&h, MIN, MAX), Duration::from_secs(19_800));
        let h = headers(&[("cache-control", "Max-Age=\"600\"")]);
        assert_eq!(ttl(&h, MIN, MAX), Duration::from_secs(600));
    }

    #[test]
    fn ttl_is_clamped_to_sane_bounds() {
        assert_eq!(
            ttl(&headers(&[("cache-control", "max-age=1")]), MIN, MAX),
            MIN
        );
        assert_eq!(
            ttl(
                &headers(&[("cache-control", "max-age=0"), ("age", "9")]),
                MIN,
                MAX
            ),
            MIN
        );
        assert_eq!(
            ttl(&headers(&[("cache-control", "max-age=99999999")]), MIN, MAX),
            MAX
        );
        assert_eq!(
            ttl(&headers(&[("cache-control", "no-store")]), MIN, MAX),
            MIN
        );
    }

    #[test]
    fn missing_or_garbled_max_age_means_the_default() {
        assert_eq!(ttl(&headers(&[]), MIN, MAX), DEFAULT_TTL);
        assert_eq!(
            ttl(&headers(&[("cache-control", "max-age=soon")]), MIN, MAX),
            DEFAULT_TTL
        );
    }

    #[test]
    fn only_rs256_signing_keys_with_an_id_are_kept() {
        // A real 2048-bit modulus is not needed to parse: DecodingKey keeps n and e as bytes.
        let n = "sXchDaQebHnPiGvyDOAT4saGEUetSyo9MKLOoWFsueri23bOdgWp4Dy1WlUzewbgBHod5pcM9H95GQRV3JDXboIRROSBigeC5yjU1hGzHHyXss8UDprecbAYxknTcQkhslANGRUZmdTOQ5qTRsLAt6BTYuyvVRdhS8exSZEy_c4gs_7svlJJQ4H9_NxsiIoLwAEk7-Q3UXERGYw_75IDrGA84-lA_-Ct4eTlXHBIY2EaV7t7LjJaynVJCpkv4LKjTTAumiGUIuQhrNhZLuF_RJLqHpM2kgWFLU7-VTdL1VbC2tejvcI2BlMkEpk1BzBZI0KQB0GaDWFLN-aEAw3vRw";
        let set: JwkSet = serde_json::from_value(serde_json::json!({"keys": [
            {"kty": "RSA", "kid": "good", "alg": "RS256", "use": "sig", "n": n, "e": "AQAB"},
            {"kty": "RSA", "kid": "bare", "n": n, "e": "AQAB"},
            {"kty": "RSA", "alg": "RS256", "use": "sig", "n": n, "e": "AQAB"},
            {"kty": "RSA", "kid": "enc", "alg": "RS256", "use": "enc", "n": n, "e": "AQAB"},
            {"kty": "RSA", "kid": "ps", "alg": "PS256", "n": n, "e": "AQAB"},
            {"kty": "EC", "kid": "ec", "alg": "ES256", "crv": "P-256",
             "x": "f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU",
             "y": "x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0"},
            {"kty": "oct", "kid": "hmac", "k": "c2VjcmV0"},
        ]}))
        .unwrap();
        let mut kids: Vec<_> = rs256_keys(&set).into_keys().collect();
        kids.sort();
        assert_eq!(kids, ["bare", "good"]);
    }
}
