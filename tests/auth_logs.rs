//! The refusal log over a real socket: one WARNING per refused call naming the reason and, when the
//! token was verified, the caller; never any part of a token or of a key.
//!
//! A test binary of its own: it captures logs with a thread-local subscriber, and tracing caches
//! each log site's interest process-wide, so tests logging on other threads at the same time could
//! make it miss lines.

mod common;

use common::idp::{self, AGENT, Idp, agent_claims, key, with};
use common::logs::LogBuffer;
use common::{assert_ok, google_oidc};
use http::StatusCode;
use serde_json::{Value, json};

#[tokio::test]
async fn refusals_log_the_reason_and_the_caller_but_never_the_token() {
    use tracing_subscriber::layer::SubscriberExt;
    let logs = LogBuffer::default();
    let subscriber = tracing_subscriber::registry().with(
        cx_webhook::telemetry::CloudLoggingLayer::new(None, logs.clone()),
    );
    // The test runtime has one thread, so the server's tasks log through this subscriber too.
    let guard = tracing::subscriber::set_default(subscriber);

    let idp = Idp::start(&[key(0)]).await;
    let app = google_oidc(&idp).await;
    let intruder = key(0).mint(&with(
        agent_claims(),
        "email",
        json!("intruder@example.com"),
    ));
    let forged = idp::token(&idp::header(&key(0).kid, "RS256"), &agent_claims(), |m| {
        key(1).sign(m)
    });
    let good = key(0).mint(&agent_claims());
    assert_eq!(
        app.post_bearer(&intruder).await.status,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        app.post_bearer(&forged).await.status,
        StatusCode::UNAUTHORIZED
    );
    assert_ok(&app.post_bearer(&good).await);
    drop(guard);

    let text = logs.text();
    let lines: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let calls: Vec<&Value> = lines
        .iter()
        .filter(|l| {
            l["message"]
                .as_str()
                .unwrap_or("")
                .starts_with("webhook call")
        })
        .collect();
    assert_eq!(calls.len(), 3, "{text}");
    assert_eq!(calls[0]["severity"], "WARNING");
    assert_eq!(calls[0]["error"], "email_not_allowed");
    assert_eq!(calls[0]["caller"], "intruder@example.com");
    assert_eq!(calls[1]["severity"], "WARNING");
    assert_eq!(calls[1]["error"], "invalid_signature");
    assert!(
        calls[1].get("caller").is_none(),
        "an unverified token names no one"
    );
    assert_eq!(calls[2]["severity"], "INFO");
    assert_eq!(calls[2]["caller"], AGENT);

    let modulus = key(0).jwk()["n"].as_str().unwrap().to_owned();
    assert!(
        !text.contains(&modulus[..32]),
        "key material reached the logs"
    );
    for token in [&intruder, &forged, &good] {
        for part in token.split('.').skip(1) {
            assert!(
                !text.contains(part),
                "a token part reached the logs:\n{text}"
            );
        }
    }
}
