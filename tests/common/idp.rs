//! A stand-in for Google's identity side, for tests and the dev tool `examples/dev_idp.rs`: real
//! RS256 keys made at run time, a JSON Web Key Set served over HTTP on loopback that the caller
//! steers (switch keys, go down, hold answers, set `Cache-Control`, count fetches), an OpenID
//! discovery document at `/.well-known/openid-configuration` naming that key set, and token minting
//! (service-agent and end-user tokens), including the malformed and forged tokens an attacker would
//! try. On request ([`Idp::mint_end_user_tokens`]) it also signs end-user ID tokens over HTTP,
//! `POST /mint` with `{"sub": SUBJECT}`, the way a site's sign-in would hand one to its page; that
//! is what `cx-webhook send --user` asks the dev tool for.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::rsa::KeySize;
use aws_lc_rs::signature::{KeyPair, RSA_PKCS1_SHA256, RsaKeyPair, RsaPublicKeyComponents};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use serde_json::{Value, json};
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// The audience the tests configure (a webhook URL with its path, as Dialogflow sends it).
pub const AUDIENCE: &str = "https://cx-webhook-abc-ew.a.run.app/webhook";
/// The Dialogflow service agent of project number 123456789.
pub const AGENT: &str = "service-123456789@gcp-sa-dialogflow.iam.gserviceaccount.com";

/// A 2048-bit RSA key pair with its key id.
pub struct TestKey {
    /// Key id, as in the key set and token headers.
    pub kid: String,
    pair: RsaKeyPair,
}

impl TestKey {
    /// A fresh key pair (a few hundred milliseconds of CPU).
    pub fn generate(kid: &str) -> TestKey {
        TestKey {
            kid: kid.to_owned(),
            pair: RsaKeyPair::generate(KeySize::Rsa2048).expect("RSA key generation"),
        }
    }

    /// The public key as a JWK, shaped like Google's.
    pub fn jwk(&self) -> Value {
        let public: RsaPublicKeyComponents<Vec<u8>> = self.pair.public_key().into();
        json!({
            "kty": "RSA", "alg": "RS256", "use": "sig", "kid": self.kid,
            "n": b64(&public.n), "e": b64(&public.e),
        })
    }

    /// The public key's DER bytes (what an HS256 key-confusion attack uses as the HMAC secret).
    pub fn public_key_bytes(&self) -> Vec<u8> {
        self.pair.public_key().as_ref().to_vec()
    }

    /// RS256 signature of `message`.
    pub fn sign(&self, message: &[u8]) -> Vec<u8> {
        let mut signature = vec![0; self.pair.public_modulus_len()];
        self.pair
            .sign(
                &RSA_PKCS1_SHA256,
                &SystemRandom::new(),
                message,
                &mut signature,
            )
            .expect("RSA signing");
        signature
    }

    /// A token with the usual RS256 header naming this key.
    pub fn mint(&self, claims: &Value) -> String {
        token(&header(&self.kid, "RS256"), claims, |message| {
            self.sign(message)
        })
    }
}

/// Key number `n` (0..4) of a pool shared by the tests of one binary, so keys are generated once.
pub fn key(n: usize) -> &'static TestKey {
    static POOL: [OnceLock<TestKey>; 4] = [const { OnceLock::new() }; 4];
    POOL[n].get_or_init(|| TestKey::generate(&format!("test-key-{n}")))
}

/// base64url without padding, as JWTs use.
pub fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

/// A JOSE header naming `kid` and `alg`.
pub fn header(kid: &str, alg: &str) -> Value {
    json!({"alg": alg, "kid": kid, "typ": "JWT"})
}

/// `b64(header).b64(claims).b64(sign(signing input))`.
pub fn token(header: &Value, claims: &Value, sign: impl FnOnce(&[u8]) -> Vec<u8>) -> String {
    let input = format!(
        "{}.{}",
        b64(header.to_string().as_bytes()),
        b64(claims.to_string().as_bytes())
    );
    let signature = sign(input.as_bytes());
    format!("{input}.{}", b64(&signature))
}

/// Seconds since the epoch.
pub fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// The claims of a good Dialogflow service-agent ID token, issued a minute ago for an hour.
pub fn agent_claims() -> Value {
    let now = now();
    json!({
        "iss": "https://accounts.google.com",
        "aud": AUDIENCE,
        "azp": "112233445566778899001",
        "sub": "112233445566778899001",
        "email": AGENT,
        "email_verified": true,
        "iat": now - 60,
        "exp": now - 60 + 3600,
    })
}

/// The audience of the tests' end-user tokens (a Firebase project id).
pub const END_USER_AUDIENCE: &str = "carconnect-demo";

/// The claims of a good end-user ID token of `issuer` for `subject`, issued a minute ago for an
/// hour (shaped like Firebase's).
pub fn end_user_claims(issuer: &str, subject: &str) -> Value {
    let now = now();
    json!({
        "iss": issuer,
        "aud": END_USER_AUDIENCE,
        "sub": subject,
        "user_id": subject,
        "auth_time": now - 120,
        "iat": now - 60,
        "exp": now - 60 + 3600,
        "firebase": {"sign_in_provider": "password"},
    })
}

/// `claims` with `key` set to `value` (`Value::Null` removes it).
pub fn with(mut claims: Value, key: &str, value: Value) -> Value {
    let map = claims.as_object_mut().expect("claims are an object");
    if value.is_null() {
        map.remove(key);
    } else {
        map.insert(key.to_owned(), value);
    }
    claims
}

/// What the key-set server does, steered by the test.
struct Behaviour {
    keys: Vec<&'static TestKey>,
    down: bool,
    cache_control: String,
    /// The `issuer` the discovery document names (default: [`Idp::issuer`]).
    discovery_issuer: Option<String>,
    /// The key that signs end-user tokens at `POST /mint` (`None`: no such endpoint).
    minter: Option<&'static TestKey>,
}

struct State {
    behaviour: Mutex<Behaviour>,
    /// Requests received so far (counted on arrival, before any hold).
    fetches: watch::Sender<usize>,
    /// `false` holds every answer until it turns `true`.
    open: watch::Sender<bool>,
}

/// A JSON Web Key Set server on 127.0.0.1. Stops when dropped.
pub struct Idp {
    /// Where it listens.
    pub addr: SocketAddr,
    state: Arc<State>,
    task: JoinHandle<()>,
}

impl Idp {
    /// Serves `keys` with `Cache-Control: public, max-age=3600`.
    pub async fn start(keys: &[&'static TestKey]) -> Idp {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let state = Arc::new(State {
            behaviour: Mutex::new(Behaviour {
                keys: keys.to_vec(),
                down: false,
                cache_control: "public, max-age=3600".into(),
                discovery_issuer: None,
                minter: None,
            }),
            fetches: watch::Sender::new(0),
            open: watch::Sender::new(true),
        });
        let served = state.clone();
        let base = format!("http://{addr}");
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let state = served.clone();
                let base = base.clone();
                let service = service_fn(move |req| answer(state.clone(), base.clone(), req));
                tokio::spawn(
                    hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                        .serve_connection(TokioIo::new(stream), service)
                        .into_owned(),
                );
            }
        });
        Idp { addr, state, task }
    }

    /// The key-set URL.
    pub fn url(&self) -> String {
        format!("http://{}/oauth2/v3/certs", self.addr)
    }

    /// The issuer whose discovery document this server serves (its base URL).
    pub fn issuer(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Makes the discovery document name `issuer` instead of [`Idp::issuer`].
    pub fn set_discovery_issuer(&self, issuer: &str) {
        self.state.behaviour.lock().unwrap().discovery_issuer = Some(issuer.to_owned());
    }

    /// Answers `POST /mint` with body `{"sub": SUBJECT}` from now on: `{"id_token": ...}`, an
    /// end-user ID token for SUBJECT signed with `key` ([`end_user_claims`] of [`Idp::issuer`], an
    /// hour of life). Requests to `/mint` are neither counted as fetches nor held.
    pub fn mint_end_user_tokens(&self, key: &'static TestKey) {
        self.state.behaviour.lock().unwrap().minter = Some(key);
    }

    /// Serves `keys` from now on (a rotation).
    pub fn serve_keys(&self, keys: &[&'static TestKey]) {
        self.state.behaviour.lock().unwrap().keys = keys.to_vec();
    }

    /// `true`: answer 503 to every fetch; `false`: serve the keys again.
    pub fn set_down(&self, down: bool) {
        self.state.behaviour.lock().unwrap().down = down;
    }

    /// The `Cache-Control` header of the answers.
    pub fn set_cache_control(&self, value: &str) {
        self.state.behaviour.lock().unwrap().cache_control = value.to_owned();
    }

    /// Holds every answer (fetches still count on arrival) until [`Idp::release`].
    pub fn hold(&self) {
        self.state.open.send_replace(false);
    }

    /// Lets held and future answers go.
    pub fn release(&self) {
        self.state.open.send_replace(true);
    }

    /// Fetches received so far.
    pub fn fetches(&self) -> usize {
        *self.state.fetches.borrow()
    }

    /// Waits until at least `n` fetches have arrived (panics after 10 s).
    pub async fn wait_for_fetches(&self, n: usize) {
        let mut rx = self.state.fetches.subscribe();
        tokio::time::timeout(Duration::from_secs(10), rx.wait_for(|&count| count >= n))
            .await
            .unwrap_or_else(|_| panic!("{n} key-set fetches within 10 s; saw {}", self.fetches()))
            .unwrap();
    }
}

impl Drop for Idp {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn answer(
    state: Arc<State>,
    base: String,
    req: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    if req.uri().path() == "/mint" {
        return Ok(mint(&state, &base, req).await);
    }
    state.fetches.send_modify(|count| *count += 1);
    let mut open = state.open.subscribe();
    let _ = open.wait_for(|&open| open).await;
    let (status, body, cache_control) = {
        let b = state.behaviour.lock().unwrap();
        if b.down {
            (
                StatusCode::SERVICE_UNAVAILABLE,
                json!({"error": "down"}),
                String::new(),
            )
        } else if req.uri().path() == "/.well-known/openid-configuration" {
            let issuer = b.discovery_issuer.clone().unwrap_or_else(|| base.clone());
            let jwks_uri = format!("{base}/oauth2/v3/certs");
            (
                StatusCode::OK,
                json!({"issuer": issuer, "jwks_uri": jwks_uri, "id_token_signing_alg_values_supported": ["RS256"]}),
                b.cache_control.clone(),
            )
        } else {
            let keys: Vec<Value> = b.keys.iter().map(|k| k.jwk()).collect();
            (
                StatusCode::OK,
                json!({"keys": keys}),
                b.cache_control.clone(),
            )
        }
    };
    let mut response = Response::new(Full::new(Bytes::from(body.to_string())));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert("content-type", "application/json".parse().unwrap());
    if !cache_control.is_empty() {
        response
            .headers_mut()
            .insert("cache-control", cache_control.parse().unwrap());
    }
    Ok(response)
}

/// The longest `sub` an end-user token may carry (what the service accepts).
const MAX_SUBJECT_BYTES: usize = 255;

/// `POST /mint` `{"sub": SUBJECT}`: an end-user ID token for SUBJECT, or a JSON error.
async fn mint(state: &State, issuer: &str, req: Request<Incoming>) -> Response<Full<Bytes>> {
    use http_body_util::{BodyExt, Limited};
    let minter = state.behaviour.lock().unwrap().minter;
    let (status, body) = match minter {
        None => (
            StatusCode::NOT_FOUND,
            json!({"error": "this identity provider does not mint end-user tokens"}),
        ),
        Some(_) if req.method() != http::Method::POST => (
            StatusCode::METHOD_NOT_ALLOWED,
            json!({"error": "POST {\"sub\": SUBJECT} to /mint"}),
        ),
        Some(key) => {
            let body = Limited::new(req.into_body(), 4096).collect().await;
            let request: Option<Value> = body
                .ok()
                .and_then(|b| serde_json::from_slice(&b.to_bytes()).ok());
            match request.as_ref().and_then(|r| r["sub"].as_str()) {
                Some(sub)
                    if !sub.is_empty()
                        && sub.len() <= MAX_SUBJECT_BYTES
                        && !sub.chars().any(char::is_control) =>
                {
                    (
                        StatusCode::OK,
                        json!({"id_token": key.mint(&end_user_claims(issuer, sub))}),
                    )
                }
                _ => (
                    StatusCode::BAD_REQUEST,
                    json!({"error": format!(
                        "the body must be {{\"sub\": SUBJECT}}, SUBJECT 1 to {MAX_SUBJECT_BYTES} bytes without control characters"
                    )}),
                ),
            }
        }
    };
    let mut response = Response::new(Full::new(Bytes::from(body.to_string())));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert("content-type", "application/json".parse().unwrap());
    response
}
