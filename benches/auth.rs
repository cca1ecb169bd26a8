//! In-process cost of authenticating one webhook call in each ID-token path: a token remembered by
//! the verified-token cache, a token verified with RSA every time (cache off), and a stripped token
//! in cloud-run-iam; and of verifying an end user's ID token, remembered or with RSA every time. Run with `cargo bench --bench auth`; `scripts/load.sh` gives the end-to-end
//! figures. The keys come from the tests' local key-set server (`tests/common/idp.rs`).

#[allow(dead_code)]
#[path = "../tests/common/idp.rs"]
mod idp;

use cx_webhook::auth::Authenticator;
use cx_webhook::config::{AuthConfig, OidcConfig};
use divan::Bencher;
use http::HeaderMap;

fn main() {
    divan::main();
}

/// A runtime, the key-set server and an authenticator that has its keys.
struct Fixture {
    runtime: tokio::runtime::Runtime,
    _idp: idp::Idp,
    auth: Authenticator,
}

fn fixture(mode: fn(OidcConfig) -> AuthConfig, cache_size: u64) -> Fixture {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let (idp, auth) = runtime.block_on(async {
        let idp = idp::Idp::start(&[idp::key(0)]).await;
        let mut config = OidcConfig::new(
            vec![idp::AUDIENCE.into()],
            vec![idp::AGENT.into()],
            idp.url(),
        );
        config.token_cache_size = cache_size;
        let auth = Authenticator::from_config(&mode(config)).unwrap();
        (idp, auth)
    });
    Fixture {
        runtime,
        _idp: idp,
        auth,
    }
}

fn bearer(token: &str) -> HeaderMap {
    let mut headers = HeaderMap::new();
    headers.insert("authorization", format!("Bearer {token}").parse().unwrap());
    headers
}

fn run(bencher: Bencher, fixture: Fixture, headers: HeaderMap) {
    let Fixture { runtime, auth, .. } = &fixture;
    // The first call waits for the key set and fills the cache (when there is one).
    runtime.block_on(auth.authenticate(&headers)).unwrap();
    bencher.bench_local(|| {
        runtime
            .block_on(auth.authenticate(divan::black_box(&headers)))
            .unwrap()
    });
}

#[divan::bench]
fn google_oidc_remembered_token(bencher: Bencher) {
    let token = idp::key(0).mint(&idp::agent_claims());
    run(
        bencher,
        fixture(AuthConfig::GoogleOidc, 10_000),
        bearer(&token),
    );
}

#[divan::bench]
fn google_oidc_rsa_every_time(bencher: Bencher) {
    let token = idp::key(0).mint(&idp::agent_claims());
    run(bencher, fixture(AuthConfig::GoogleOidc, 0), bearer(&token));
}

#[divan::bench]
fn cloud_run_iam_stripped_token(bencher: Bencher) {
    let claims = idp::agent_claims().to_string();
    let token = format!(
        "{}.{}.SIGNATURE_REMOVED_BY_GOOGLE",
        idp::b64(br#"{"alg":"RS256","kid":"k","typ":"JWT"}"#),
        idp::b64(claims.as_bytes())
    );
    run(bencher, fixture(AuthConfig::CloudRunIam, 0), bearer(&token));
}

/// A runtime, the key-set server and an end-user verifier that has its keys.
fn end_user_fixture(
    cache_size: u64,
) -> (
    tokio::runtime::Runtime,
    idp::Idp,
    cx_webhook::auth::end_user::EndUserVerifier,
) {
    use cx_webhook::auth::end_user::{EndUserSettings, EndUserVerifier};
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let (idp, verifier) = runtime.block_on(async {
        let idp = idp::Idp::start(&[idp::key(0)]).await;
        let mut settings = EndUserSettings::new(
            idp.issuer(),
            vec![idp::END_USER_AUDIENCE.into()],
            Some(idp.url()),
        );
        settings.token_cache_size = cache_size;
        let verifier = EndUserVerifier::new(&settings).unwrap();
        (idp, verifier)
    });
    (runtime, idp, verifier)
}

fn run_end_user(bencher: Bencher, cache_size: u64) {
    let (runtime, idp, verifier) = end_user_fixture(cache_size);
    let token = idp::key(0).mint(&idp::end_user_claims(&idp.issuer(), "demo-user-1"));
    // The first call waits for the key set and fills the cache (when there is one).
    runtime.block_on(verifier.verify(&token)).unwrap();
    bencher.bench_local(|| {
        runtime
            .block_on(verifier.verify(divan::black_box(&token)))
            .unwrap()
    });
}

#[divan::bench]
fn end_user_remembered_token(bencher: Bencher) {
    run_end_user(bencher, 10_000);
}

#[divan::bench]
fn end_user_rsa_every_time(bencher: Bencher) {
    run_end_user(bencher, 0);
}
