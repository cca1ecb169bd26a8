//! Authentication over real sockets: google-oidc against a local key-set server with real RS256
//! keys, cloud-run-iam with stripped tokens, api-key, the key cache's fetch discipline (rotation,
//! outage, single flight) counted at the key-set server, and the end-user ID-token verifier against
//! its own key set (directly: the handlers wire it in with the end-user identity issue).

use crate::common;

use std::sync::Arc;
use std::time::{Duration, UNIX_EPOCH};

use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair};
use common::idp::{
    self, AUDIENCE, END_USER_AUDIENCE, Idp, agent_claims, b64, end_user_claims, key, with,
};
use common::{
    Answer, TestApp, assert_ok, google_oidc, keys, oidc, spawn_auth, until, wait_for_keys,
};
use cx_webhook::auth::end_user::{EndUserError, EndUserSettings, EndUserVerifier};
use cx_webhook::config::{ApiKeyConfig, AuthConfig};
use http::StatusCode;
use serde_json::{Value, json};

// ---------------------------------------------------------------------------------------------
// helpers

/// Asserts a refusal: status, reason code, the Bearer challenge on 401, and that no part of the
/// token came back.
fn assert_refused(a: &Answer, status: u16, code: &str, token: &str) {
    let body = String::from_utf8_lossy(&a.body);
    assert_eq!(a.status.as_u16(), status, "{code}: {body}");
    assert_eq!(a.error_code(), code, "{body}");
    let challenge = a.headers.get("www-authenticate");
    if status == 401 {
        let challenge = challenge
            .expect("401 carries WWW-Authenticate")
            .to_str()
            .unwrap();
        assert!(challenge.starts_with("Bearer"), "{challenge}");
    } else {
        assert!(challenge.is_none(), "only 401 challenges");
    }
    for part in token.split('.').filter(|p| p.len() >= 8) {
        assert!(!body.contains(part), "the answer echoes the token: {body}");
    }
}

fn stripped(claims: &Value) -> String {
    let header = idp::header(&key(0).kid, "RS256");
    format!(
        "{}.{}.SIGNATURE_REMOVED_BY_GOOGLE",
        b64(header.to_string().as_bytes()),
        b64(claims.to_string().as_bytes())
    )
}

fn signed(claims: Value) -> String {
    key(0).mint(&claims)
}

// ---------------------------------------------------------------------------------------------
// google-oidc: what passes and what does not

#[tokio::test]
async fn a_valid_service_agent_token_passes() {
    let idp = Idp::start(&[key(0)]).await;
    let app = google_oidc(&idp).await;
    assert_ok(&app.post_bearer(&signed(agent_claims())).await);
    // `accounts.google.com` is Google's other spelling of the issuer; `bearer` is case-insensitive.
    let token = signed(with(agent_claims(), "iss", json!("accounts.google.com")));
    assert_ok(
        &app.post_with(&[("authorization", &format!("bearer {token}"))])
            .await,
    );
    // Issue 14, decided: Google has sent `email_verified` as the string "true"; exactly that
    // string counts (other strings are refused below).
    let token = signed(with(agent_claims(), "email_verified", json!("true")));
    assert_ok(&app.post_bearer(&token).await);
}

#[tokio::test]
async fn missing_and_malformed_credentials_are_401() {
    let idp = Idp::start(&[key(0)]).await;
    let app = google_oidc(&idp).await;
    let good = signed(agent_claims());
    let (header, rest) = good.split_once('.').unwrap();
    let (payload, signature) = rest.split_once('.').unwrap();

    let a = app.post_with(&[]).await;
    assert_refused(&a, 401, "missing_token", "");
    // RFC 6750: no error attribute when no credentials were sent; one when they were bad.
    assert_eq!(a.headers["www-authenticate"], "Bearer realm=\"cx-webhook\"");
    let a = app
        .post_with(&[("authorization", "Basic ZGlhbG9nZmxvdzpodW50ZXIy")])
        .await;
    assert_refused(&a, 401, "unsupported_scheme", "");
    let challenge = a.headers["www-authenticate"].to_str().unwrap();
    assert!(challenge.contains("error=\"invalid_token\""), "{challenge}");

    let cases = [
        ("two segments", format!("{header}.{payload}")),
        ("four segments", format!("{good}.{payload}")),
        (
            "bad base64 in the header",
            format!("!!{header}.{payload}.{signature}"),
        ),
        (
            "bad base64 in the signature",
            format!("{header}.{payload}.@@@@"),
        ),
        (
            "header not JSON",
            format!("{}.{payload}.{signature}", b64(b"alg=RS256")),
        ),
        (
            "larger than 8 KiB",
            format!("{header}.{}.{signature}", "A".repeat(9000)),
        ),
    ];
    for (what, token) in cases {
        let a = app.post_bearer(&token).await;
        assert_refused(&a, 401, "malformed_token", &token);
        println!("ok: {what}");
    }
}

#[tokio::test]
async fn forged_and_foreign_tokens_are_401() {
    let idp = Idp::start(&[key(0), key(1)]).await;
    let app = google_oidc(&idp).await;
    let kid = &key(0).kid;
    let claims = agent_claims();
    let good = signed(claims.clone());
    let (header, rest) = good.split_once('.').unwrap();
    let (_, signature) = rest.split_once('.').unwrap();

    let es256 = EcdsaKeyPair::generate(&ECDSA_P256_SHA256_FIXED_SIGNING).unwrap();
    let rng = aws_lc_rs::rand::SystemRandom::new();
    let hmac_with_public_key =
        aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, &key(0).public_key_bytes());
    let tampered = with(claims.clone(), "email", json!("attacker@evil.example"));

    let cases: Vec<(&str, &str, String)> = vec![
        (
            "alg none",
            "unsupported_algorithm",
            idp::token(&idp::header(kid, "none"), &claims, |_| Vec::new()),
        ),
        (
            "HS256 keyed with the RSA public key",
            "unsupported_algorithm",
            idp::token(&idp::header(kid, "HS256"), &claims, |m| {
                aws_lc_rs::hmac::sign(&hmac_with_public_key, m)
                    .as_ref()
                    .to_vec()
            }),
        ),
        (
            "ES256",
            "unsupported_algorithm",
            idp::token(&idp::header(kid, "ES256"), &claims, |m| {
                es256.sign(&rng, m).unwrap().as_ref().to_vec()
            }),
        ),
        (
            "no kid",
            "missing_key_id",
            idp::token(&json!({"alg": "RS256"}), &claims, |m| key(0).sign(m)),
        ),
        (
            "tampered payload",
            "invalid_signature",
            format!(
                "{header}.{}.{signature}",
                b64(tampered.to_string().as_bytes())
            ),
        ),
        (
            "signed by another key in the set",
            "invalid_signature",
            idp::token(&idp::header(kid, "RS256"), &claims, |m| key(1).sign(m)),
        ),
        (
            "signature stripped (only cloud-run-iam accepts that)",
            "signature_stripped",
            stripped(&claims),
        ),
    ];
    for (what, code, token) in cases {
        let a = app.post_bearer(&token).await;
        assert_refused(&a, 401, code, &token);
        println!("ok: {what}");
    }
    assert_eq!(idp.fetches(), 1, "none of these needed a refetch");
}

#[tokio::test]
async fn bad_claims_are_401() {
    let idp = Idp::start(&[key(0)]).await;
    let app = google_oidc(&idp).await;
    let now = idp::now();
    let c = agent_claims;
    let cases = [
        (
            "expired",
            "token_expired",
            with(
                with(c(), "exp", json!(now - 3600)),
                "iat",
                json!(now - 7200),
            ),
        ),
        (
            "iat in the future",
            "issued_in_future",
            with(with(c(), "iat", json!(now + 600)), "exp", json!(now + 4200)),
        ),
        (
            "nbf in the future",
            "token_not_yet_valid",
            with(c(), "nbf", json!(now + 600)),
        ),
        (
            "wrong iss",
            "invalid_issuer",
            with(c(), "iss", json!("https://evil.example")),
        ),
        (
            "missing iss",
            "missing_claim",
            with(c(), "iss", Value::Null),
        ),
        (
            "missing aud",
            "missing_claim",
            with(c(), "aud", Value::Null),
        ),
        (
            "missing exp",
            "missing_claim",
            with(c(), "exp", Value::Null),
        ),
        (
            "missing iat",
            "missing_claim",
            with(c(), "iat", Value::Null),
        ),
        (
            "exp not a number",
            "malformed_token",
            with(c(), "exp", json!("soon")),
        ),
        // Issue 14: a token that names no caller is incomplete (401), not a refused caller (403).
        ("no email", "missing_claim", with(c(), "email", Value::Null)),
        // Issue 14: `exp: 1e300` must not saturate into "valid forever"; times are whole seconds.
        ("exp 1e300", "invalid_claim", with(c(), "exp", json!(1e300))),
        (
            "exp fractional",
            "invalid_claim",
            with(c(), "exp", json!(now as f64 + 600.5)),
        ),
        (
            "exp past year 9999",
            "invalid_claim",
            with(c(), "exp", json!(253_402_300_800_i64)),
        ),
        ("iat negative", "invalid_claim", with(c(), "iat", json!(-1))),
        ("nbf 1e300", "invalid_claim", with(c(), "nbf", json!(1e300))),
    ];
    for (what, code, claims) in cases {
        let token = signed(claims);
        let a = app.post_bearer(&token).await;
        assert_refused(&a, 401, code, &token);
        println!("ok: {what}");
    }
    let a = app
        .post_bearer(&signed(with(c(), "aud", Value::Null)))
        .await;
    assert!(
        a.json()["error"]["message"]
            .as_str()
            .unwrap()
            .contains("`aud`"),
        "the message names the missing claim"
    );
}

#[tokio::test]
async fn valid_tokens_of_callers_that_are_not_allowed_are_403() {
    let idp = Idp::start(&[key(0)]).await;
    let app = google_oidc(&idp).await;
    let c = agent_claims;
    let cases = [
        (
            "wrong aud",
            "audience_not_allowed",
            with(c(), "aud", json!("https://cx-webhook-abc-ew.a.run.app/")),
        ),
        (
            "wrong email",
            "email_not_allowed",
            with(
                c(),
                "email",
                json!("someone@my-project.iam.gserviceaccount.com"),
            ),
        ),
        (
            "email_verified false",
            "email_not_verified",
            with(c(), "email_verified", json!(false)),
        ),
        (
            "email_verified missing",
            "email_not_verified",
            with(c(), "email_verified", Value::Null),
        ),
        // Issue 14: only `true` and exactly `"true"` count as verified.
        (
            "email_verified \"false\"",
            "email_not_verified",
            with(c(), "email_verified", json!("false")),
        ),
        (
            "email_verified \"TRUE\"",
            "email_not_verified",
            with(c(), "email_verified", json!("TRUE")),
        ),
        (
            "email_verified 1",
            "email_not_verified",
            with(c(), "email_verified", json!(1)),
        ),
    ];
    for (what, code, claims) in cases {
        let token = signed(claims);
        let a = app.post_bearer(&token).await;
        assert_refused(&a, 403, code, &token);
        println!("ok: {what}");
    }
}

#[tokio::test]
async fn health_needs_no_token() {
    let idp = Idp::start(&[key(0)]).await;
    idp.set_down(true);
    let app = spawn_auth(AuthConfig::GoogleOidc(oidc(&idp, |_| {}))).await;
    let a = app.call(http::Method::GET, "/health", &[], vec![]).await;
    assert_eq!(a.status, StatusCode::OK);
}

// ---------------------------------------------------------------------------------------------
// the key cache, counted at the key-set server

#[tokio::test]
async fn an_unknown_kid_is_refused_after_exactly_one_refetch() {
    let idp = Idp::start(&[key(0)]).await;
    let app = google_oidc(&idp).await;

    let token = key(2).mint(&agent_claims());
    assert_refused(&app.post_bearer(&token).await, 401, "unknown_key", &token);
    assert_eq!(idp.fetches(), 2, "one refetch for the unknown kid");

    // Another made-up kid right after: the refetch is rate limited.
    let token = key(3).mint(&agent_claims());
    assert_refused(&app.post_bearer(&token).await, 401, "unknown_key", &token);
    assert_eq!(idp.fetches(), 2, "no second refetch within the interval");
    assert_ok(&app.post_bearer(&signed(agent_claims())).await);
}

#[tokio::test]
async fn a_rotated_key_passes_after_one_refetch() {
    let idp = Idp::start(&[key(0)]).await;
    let app = google_oidc(&idp).await;
    assert_ok(&app.post_bearer(&signed(agent_claims())).await);

    idp.serve_keys(&[key(1)]);
    assert_ok(&app.post_bearer(&key(1).mint(&agent_claims())).await);
    assert_eq!(idp.fetches(), 2);

    // The retired key left the set with the refetch.
    let token = signed(with(agent_claims(), "iat", json!(idp::now() - 120)));
    assert_refused(&app.post_bearer(&token).await, 401, "unknown_key", &token);
    assert_eq!(idp.fetches(), 2);
}

#[tokio::test]
async fn with_the_key_set_server_down_cached_keys_keep_working() {
    let idp = Idp::start(&[key(0)]).await;
    let app = google_oidc(&idp).await;
    idp.set_down(true);

    // An unknown kid forces a refetch, which fails...
    let token = key(1).mint(&agent_claims());
    assert_refused(&app.post_bearer(&token).await, 401, "unknown_key", &token);
    assert_eq!(idp.fetches(), 2);
    // ...and the keys we had stay.
    assert_ok(&app.post_bearer(&signed(agent_claims())).await);
}

/// A fetch budget no held answer outlasts on a slow machine.
fn patient(config: &mut cx_webhook::config::OidcConfig) {
    config.jwks.fetch_timeout = Duration::from_secs(30);
}

#[tokio::test]
async fn concurrent_requests_with_an_unknown_kid_share_one_fetch() {
    const REQUESTS: usize = 24;
    let idp = Idp::start(&[key(0)]).await;
    let app = spawn_auth(AuthConfig::GoogleOidc(oidc(&idp, patient))).await;
    wait_for_keys(&app, &idp).await;
    let app = Arc::new(app);
    idp.serve_keys(&[key(0), key(1)]);
    idp.hold();

    let token = key(1).mint(&agent_claims());
    let calls: Vec<_> = (0..REQUESTS)
        .map(|_| {
            let (app, token) = (app.clone(), token.clone());
            tokio::spawn(async move { app.post_bearer(&token).await })
        })
        .collect();
    until("every request waits for the fetch", || {
        keys(&app).waiting() == REQUESTS
    })
    .await;
    idp.wait_for_fetches(2).await;
    idp.release();

    for call in calls {
        assert_ok(&call.await.unwrap());
    }
    assert_eq!(idp.fetches(), 2, "one fetch for all of them");
}

#[tokio::test]
async fn a_request_during_the_first_fetch_waits_for_it() {
    let idp = Idp::start(&[key(0)]).await;
    idp.hold();
    let app = Arc::new(spawn_auth(AuthConfig::GoogleOidc(oidc(&idp, patient))).await);
    idp.wait_for_fetches(1).await;

    let call = {
        let app = app.clone();
        tokio::spawn(async move { app.post_bearer(&signed(agent_claims())).await })
    };
    until("the request waits", || keys(&app).waiting() == 1).await;
    idp.release();
    assert_ok(&call.await.unwrap());
    assert_eq!(idp.fetches(), 1);
}

#[tokio::test]
async fn until_a_first_key_set_arrives_requests_get_503_with_retry_after() {
    let idp = Idp::start(&[key(0)]).await;
    idp.set_down(true);
    let app = spawn_auth(AuthConfig::GoogleOidc(oidc(&idp, |c| {
        c.jwks.refetch_interval = Duration::ZERO;
    })))
    .await;
    idp.wait_for_fetches(1).await;

    let token = signed(agent_claims());
    let a = app.post_bearer(&token).await;
    assert_refused(&a, 503, "keys_unavailable", &token);
    let retry_after: u64 = a.headers["retry-after"].to_str().unwrap().parse().unwrap();
    assert!(retry_after >= 1);

    idp.set_down(false);
    assert_ok(&app.post_bearer(&token).await);
}

#[tokio::test]
async fn the_key_set_is_refetched_when_its_max_age_runs_out() {
    let idp = Idp::start(&[key(0)]).await;
    idp.set_cache_control("public, max-age=1");
    let _app = spawn_auth(AuthConfig::GoogleOidc(oidc(&idp, |c| {
        c.jwks.min_ttl = Duration::from_secs(1);
    })))
    .await;
    // No request is sent: only the background refresh can make these fetches.
    idp.wait_for_fetches(3).await;
}

// ---------------------------------------------------------------------------------------------
// the verified-token cache

/// Retires key 0 from the set and makes the app refetch it (with a key-1 token), so only a cached
/// verification can still accept a key-0 token afterwards.
async fn retire_key_0(app: &TestApp, idp: &Idp) {
    idp.serve_keys(&[key(1)]);
    assert_ok(&app.post_bearer(&key(1).mint(&agent_claims())).await);
    assert_eq!(idp.fetches(), 2);
}

#[tokio::test]
async fn a_verified_token_is_remembered_until_it_expires() {
    let idp = Idp::start(&[key(0)]).await;
    let app = spawn_auth(AuthConfig::GoogleOidc(oidc(&idp, |c| {
        c.leeway = Duration::ZERO;
    })))
    .await;
    wait_for_keys(&app, &idp).await;
    let exp = idp::now() + 3;
    let token = signed(with(agent_claims(), "exp", json!(exp)));
    assert_ok(&app.post_bearer(&token).await);
    retire_key_0(&app, &idp).await;

    // The same bytes pass without their key; other bytes signed by the retired key do not.
    assert_ok(&app.post_bearer(&token).await);
    let other = signed(with(agent_claims(), "exp", json!(exp + 1)));
    assert_refused(&app.post_bearer(&other).await, 401, "unknown_key", &other);

    // Past its exp the cache no longer vouches for it: it is verified afresh, and its key is gone.
    while idp::now() < exp {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_refused(&app.post_bearer(&token).await, 401, "unknown_key", &token);
}

#[tokio::test]
async fn with_the_token_cache_off_every_request_is_verified() {
    let idp = Idp::start(&[key(0)]).await;
    let app = spawn_auth(AuthConfig::GoogleOidc(oidc(&idp, |c| {
        c.token_cache_size = 0;
    })))
    .await;
    wait_for_keys(&app, &idp).await;
    let token = signed(agent_claims());
    assert_ok(&app.post_bearer(&token).await);
    retire_key_0(&app, &idp).await;
    assert_refused(&app.post_bearer(&token).await, 401, "unknown_key", &token);
}

#[tokio::test]
async fn refused_tokens_are_not_remembered() {
    let idp = Idp::start(&[key(0)]).await;
    let app = google_oidc(&idp).await;
    let intruder = signed(with(agent_claims(), "email", json!("intruder@example.com")));
    for _ in 0..2 {
        let a = app.post_bearer(&intruder).await;
        assert_refused(&a, 403, "email_not_allowed", &intruder);
    }
}

#[tokio::test]
async fn a_copied_signature_on_an_edited_payload_is_not_served_from_the_cache() {
    // The cache is keyed by the signature; a hit must still present the very bytes verified.
    let idp = Idp::start(&[key(0)]).await;
    let app = google_oidc(&idp).await;
    let token = signed(agent_claims());
    assert_ok(&app.post_bearer(&token).await);
    let (_, signature) = token.rsplit_once('.').unwrap();
    let header = token.split('.').next().unwrap();
    let later = with(agent_claims(), "exp", json!(idp::now() + 7200));
    let forged = format!("{header}.{}.{signature}", b64(later.to_string().as_bytes()));
    assert_refused(
        &app.post_bearer(&forged).await,
        401,
        "invalid_signature",
        &forged,
    );
    // The forgery did not evict or replace the genuine entry: with its key retired, only the
    // cache can still accept the genuine token.
    retire_key_0(&app, &idp).await;
    assert_ok(&app.post_bearer(&token).await);
}

// ---------------------------------------------------------------------------------------------
// cloud-run-iam

fn cloud_run_iam(idp: &Idp, audiences: &[&str]) -> AuthConfig {
    AuthConfig::CloudRunIam(oidc(idp, |c| {
        c.audiences = audiences.iter().map(|a| a.to_string()).collect();
    }))
}

#[tokio::test]
async fn cloud_run_iam_accepts_a_stripped_token_on_its_claims() {
    let idp = Idp::start(&[key(0)]).await;
    let app = spawn_auth(cloud_run_iam(&idp, &[])).await;
    assert_ok(&app.post_bearer(&stripped(&agent_claims())).await);
    // Without AUTH_AUDIENCES the audience is Cloud Run's business.
    let other_aud = with(agent_claims(), "aud", json!("https://other.example/"));
    assert_ok(&app.post_bearer(&stripped(&other_aud)).await);

    let now = idp::now();
    let cases = [
        (
            403,
            "email_not_allowed",
            with(agent_claims(), "email", json!("someone@example.com")),
        ),
        (
            403,
            "email_not_verified",
            with(agent_claims(), "email_verified", json!(false)),
        ),
        (
            401,
            "token_expired",
            with(
                with(agent_claims(), "exp", json!(now - 600)),
                "iat",
                json!(now - 4200),
            ),
        ),
        (
            401,
            "invalid_issuer",
            with(agent_claims(), "iss", json!("https://evil.example")),
        ),
        (
            401,
            "missing_claim",
            with(agent_claims(), "iat", Value::Null),
        ),
    ];
    for (status, code, claims) in cases {
        let token = stripped(&claims);
        assert_refused(&app.post_bearer(&token).await, status, code, &token);
    }
}

#[tokio::test]
async fn cloud_run_iam_checks_the_audience_when_configured() {
    let idp = Idp::start(&[key(0)]).await;
    let app = spawn_auth(cloud_run_iam(&idp, &[AUDIENCE])).await;
    assert_ok(&app.post_bearer(&stripped(&agent_claims())).await);
    let token = stripped(&with(
        agent_claims(),
        "aud",
        json!("https://other.example/"),
    ));
    assert_refused(
        &app.post_bearer(&token).await,
        403,
        "audience_not_allowed",
        &token,
    );
}

#[tokio::test]
async fn cloud_run_iam_verifies_a_token_that_still_has_its_signature() {
    let idp = Idp::start(&[key(0)]).await;
    let app = spawn_auth(cloud_run_iam(&idp, &[])).await;
    assert_ok(&app.post_bearer(&signed(agent_claims())).await);
    let forged = idp::token(&idp::header(&key(0).kid, "RS256"), &agent_claims(), |m| {
        key(1).sign(m)
    });
    assert_refused(
        &app.post_bearer(&forged).await,
        401,
        "invalid_signature",
        &forged,
    );
}

// ---------------------------------------------------------------------------------------------
// api-key

const API_KEY: &str = "k3y-0f-at-least-16-chars";

#[tokio::test]
async fn api_key_mode_wants_the_key_in_its_header() {
    let app = spawn_auth(AuthConfig::ApiKey(ApiKeyConfig::new(
        http::HeaderName::from_static("x-api-key"),
        API_KEY,
    )))
    .await;
    assert_ok(&app.post_with(&[("X-Api-Key", API_KEY)]).await);

    let a = app
        .post_with(&[("x-api-key", "k3y-0f-at-least-16-chars!")])
        .await;
    assert_refused(&a, 401, "invalid_api_key", "");
    let a = app.post_with(&[("x-api-key", "")]).await;
    assert_refused(&a, 401, "invalid_api_key", "");
    let a = app.post_with(&[]).await;
    assert_refused(&a, 401, "missing_api_key", "");
    let a = app
        .post_with(&[("authorization", &format!("Bearer {API_KEY}"))])
        .await;
    assert_refused(&a, 401, "missing_api_key", "");
    assert!(!String::from_utf8_lossy(&a.body).contains(API_KEY));
}

// ---------------------------------------------------------------------------------------------
// the binary refuses to start without what its mode needs

fn start_refusal(envs: &[(&str, &str)]) -> String {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_cx-webhook"))
        .env_clear()
        .env("BIND", "127.0.0.1")
        .env("PORT", "0")
        .envs(envs.iter().copied())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn authorization_is_refused_as_the_api_key_header_at_start() {
    let err = start_refusal(&[
        ("AUTH_MODE", "api-key"),
        ("AUTH_API_KEY", API_KEY),
        ("AUTH_API_KEY_HEADER", "Authorization"),
    ]);
    assert!(
        err.contains("AUTH_API_KEY_HEADER: Authorization is refused"),
        "{err}"
    );
    assert!(!err.contains(API_KEY), "{err}");
}

#[test]
fn a_mode_missing_its_settings_refuses_to_start_and_names_them() {
    let err = start_refusal(&[("AUTH_MODE", "google-oidc")]);
    assert!(err.contains("needs AUTH_AUDIENCES"), "{err}");
    assert!(
        err.contains("AUTH_ALLOWED_EMAILS or DIALOGFLOW_PROJECT_NUMBER"),
        "{err}"
    );
    let err = start_refusal(&[("AUTH_MODE", "api-key")]);
    assert!(err.contains("needs AUTH_API_KEY"), "{err}");
}

// ---------------------------------------------------------------------------------------------
// end-user ID tokens (issue 12): a second instance of the same machinery, against its own key set

/// An end-user verifier for tokens of `idp`'s issuer, its keys at `jwks_url` (`None`: discovery),
/// once it has its first key set.
async fn end_user_verifier(idp: &Idp, jwks_url: Option<String>) -> EndUserVerifier {
    let settings = EndUserSettings::new(idp.issuer(), vec![END_USER_AUDIENCE.into()], jwks_url);
    let verifier = EndUserVerifier::new(&settings).unwrap();
    until("the end user's key set is in", || {
        verifier.keys().has_keys()
    })
    .await;
    verifier
}

fn user_token(idp: &Idp, subject: &str) -> String {
    key(0).mint(&end_user_claims(&idp.issuer(), subject))
}

#[tokio::test]
async fn a_valid_end_user_token_names_its_subject_until_it_expires() {
    let idp = Idp::start(&[key(0)]).await;
    let verifier = end_user_verifier(&idp, Some(idp.url())).await;
    let claims = end_user_claims(&idp.issuer(), "demo-user-1");
    let user = verifier.verify(&key(0).mint(&claims)).await.unwrap();
    assert_eq!(user.subject, "demo-user-1");
    let exp = claims["exp"].as_u64().unwrap();
    assert_eq!(user.expires_at, UNIX_EPOCH + Duration::from_secs(exp));
    assert_eq!(verifier.token_field(), "userIdToken");
    // An audience list: one match is enough.
    let listed = with(claims, "aud", json!(["other-project", END_USER_AUDIENCE]));
    assert_eq!(
        verifier
            .verify(&key(0).mint(&listed))
            .await
            .unwrap()
            .subject,
        "demo-user-1"
    );
    assert_eq!(idp.fetches(), 1);
}

#[tokio::test]
async fn forged_and_foreign_end_user_tokens_are_refused() {
    let idp = Idp::start(&[key(0), key(1)]).await;
    let verifier = end_user_verifier(&idp, Some(idp.url())).await;
    let kid = &key(0).kid;
    let now = idp::now();
    let good = end_user_claims(&idp.issuer(), "demo-user-2");
    let hmac_with_public_key =
        aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, &key(0).public_key_bytes());
    let cases: Vec<(&str, EndUserError, String)> = vec![
        (
            "forged: another key, same kid",
            EndUserError::BadSignature,
            idp::token(&idp::header(kid, "RS256"), &good, |m| key(2).sign(m)),
        ),
        (
            "another issuer",
            EndUserError::InvalidIssuer,
            key(0).mint(&with(
                good.clone(),
                "iss",
                json!("https://securetoken.google.com/someone-else"),
            )),
        ),
        (
            "the service agent's Google token",
            EndUserError::InvalidIssuer,
            key(0).mint(&agent_claims()),
        ),
        (
            "wrong audience",
            EndUserError::AudienceNotAllowed,
            key(0).mint(&with(good.clone(), "aud", json!("another-project"))),
        ),
        (
            "expired",
            EndUserError::Expired,
            key(0).mint(&with(
                with(good.clone(), "exp", json!(now - 3600)),
                "iat",
                json!(now - 7200),
            )),
        ),
        (
            "exp 1e300",
            EndUserError::InvalidClaim("exp"),
            key(0).mint(&with(good.clone(), "exp", json!(1e300))),
        ),
        (
            "alg none",
            EndUserError::UnsupportedAlgorithm,
            idp::token(&idp::header(kid, "none"), &good, |_| Vec::new()),
        ),
        (
            "HS256 keyed with the RSA public key",
            EndUserError::UnsupportedAlgorithm,
            idp::token(&idp::header(kid, "HS256"), &good, |m| {
                aws_lc_rs::hmac::sign(&hmac_with_public_key, m)
                    .as_ref()
                    .to_vec()
            }),
        ),
        (
            "empty sub",
            EndUserError::InvalidClaim("sub"),
            key(0).mint(&with(good.clone(), "sub", json!(""))),
        ),
        (
            "no sub",
            EndUserError::MissingClaim("sub"),
            key(0).mint(&with(good.clone(), "sub", Value::Null)),
        ),
        (
            "not a JWT",
            EndUserError::MalformedToken("a JWT has three dot-separated segments"),
            "demo-user-1".into(),
        ),
    ];
    for (what, expected, token) in cases {
        assert_eq!(
            verifier.verify(&token).await.unwrap_err(),
            expected,
            "{what}"
        );
        println!("ok: {what}");
    }
    assert_eq!(idp.fetches(), 1, "none of these needed a refetch");
}

#[tokio::test]
async fn a_verified_end_user_token_is_remembered_and_a_refused_one_is_not() {
    let idp = Idp::start(&[key(0)]).await;
    let verifier = end_user_verifier(&idp, Some(idp.url())).await;
    let remembered = user_token(&idp, "demo-user-1");
    verifier.verify(&remembered).await.unwrap();
    let refused = key(0).mint(&with(
        end_user_claims(&idp.issuer(), "demo-user-1"),
        "aud",
        json!("x"),
    ));
    assert_eq!(
        verifier.verify(&refused).await.unwrap_err(),
        EndUserError::AudienceNotAllowed
    );

    // The issuer retires key 0 (a key-1 token makes the cache refetch): a token signed with key 0
    // can no longer be verified, so only the remembered one still passes.
    idp.serve_keys(&[key(1)]);
    let rotated = key(1).mint(&end_user_claims(&idp.issuer(), "demo-user-2"));
    verifier.verify(&rotated).await.unwrap();
    assert_eq!(idp.fetches(), 2);
    assert_eq!(
        verifier.verify(&remembered).await.unwrap().subject,
        "demo-user-1"
    );
    assert_eq!(
        verifier.verify(&refused).await.unwrap_err(),
        EndUserError::UnknownKey,
        "a refusal is not remembered: it is checked again"
    );
}

#[tokio::test]
async fn end_user_key_rotation_at_the_issuer_is_followed_with_one_refetch() {
    let idp = Idp::start(&[key(0)]).await;
    let verifier = end_user_verifier(&idp, Some(idp.url())).await;
    verifier
        .verify(&user_token(&idp, "demo-user-1"))
        .await
        .unwrap();

    idp.serve_keys(&[key(1)]);
    let rotated = key(1).mint(&end_user_claims(&idp.issuer(), "demo-user-1"));
    assert_eq!(
        verifier.verify(&rotated).await.unwrap().subject,
        "demo-user-1"
    );
    assert_eq!(idp.fetches(), 2, "one refetch for the new kid");

    // The retired key left with that refetch (a token it signs that was never verified before).
    let old = key(0).mint(&end_user_claims(&idp.issuer(), "demo-user-2"));
    assert_eq!(
        verifier.verify(&old).await.unwrap_err(),
        EndUserError::UnknownKey
    );
}

#[tokio::test]
async fn with_the_end_user_key_server_down_cached_keys_keep_working() {
    let idp = Idp::start(&[key(0)]).await;
    let verifier = end_user_verifier(&idp, Some(idp.url())).await;
    idp.set_down(true);

    // An unknown kid forces a refetch, which fails: refused, not 503, and the old keys stay.
    let unknown = key(1).mint(&end_user_claims(&idp.issuer(), "demo-user-1"));
    assert_eq!(
        verifier.verify(&unknown).await.unwrap_err(),
        EndUserError::UnknownKey
    );
    assert_eq!(idp.fetches(), 2);
    let fresh = user_token(&idp, "demo-user-3");
    assert_eq!(
        verifier.verify(&fresh).await.unwrap().subject,
        "demo-user-3"
    );
}

#[tokio::test]
async fn end_user_keys_come_from_the_issuers_discovery_document() {
    let idp = Idp::start(&[key(0)]).await;
    let verifier = end_user_verifier(&idp, None).await;
    assert_eq!(
        idp.fetches(),
        2,
        "the discovery document, then the key set it names"
    );
    assert_eq!(
        verifier
            .verify(&user_token(&idp, "demo-user-1"))
            .await
            .unwrap()
            .subject,
        "demo-user-1"
    );

    // A discovery document naming another issuer is not followed: no keys, so 503-worthy.
    let other = Idp::start(&[key(0)]).await;
    other.set_discovery_issuer("https://evil.example");
    let settings = EndUserSettings::new(other.issuer(), vec![END_USER_AUDIENCE.into()], None);
    let verifier = EndUserVerifier::new(&settings).unwrap();
    other.wait_for_fetches(1).await;
    let token = key(0).mint(&end_user_claims(&other.issuer(), "demo-user-1"));
    assert!(matches!(
        verifier.verify(&token).await.unwrap_err(),
        EndUserError::KeysUnavailable { .. }
    ));
    assert!(!verifier.keys().has_keys());
}
