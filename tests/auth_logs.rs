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

/// Cloud Logging lines (linking traces to `project`, if given) captured on this thread until the
/// guard drops. The test runtime has one thread, so the server's tasks log through it too.
fn capture_logs(project: Option<&str>) -> (LogBuffer, tracing::subscriber::DefaultGuard) {
    use tracing_subscriber::layer::SubscriberExt;
    let logs = LogBuffer::default();
    let subscriber = tracing_subscriber::registry().with(
        cx_webhook::telemetry::CloudLoggingLayer::new(project.map(String::from), logs.clone()),
    );
    (logs, tracing::subscriber::set_default(subscriber))
}

/// The captured text and each of its lines as JSON.
fn json_lines(logs: &LogBuffer) -> (String, Vec<Value>) {
    let text = logs.text();
    let lines = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    (text, lines)
}

#[tokio::test]
async fn refusals_log_the_reason_and_the_caller_but_never_the_token() {
    let (logs, guard) = capture_logs(None);

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

    let (text, lines) = json_lines(&logs);
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

#[tokio::test]
async fn every_line_of_a_call_carries_its_trace_and_once_parsed_its_tag_and_session() {
    let (logs, guard) = capture_logs(Some("proj"));

    let app = common::spawn_app().await;
    let trace = |id: char| format!("00-{}-00f067aa0ba902b7-01", id.to_string().repeat(32));
    // Answered: the fallback handler logs a WARNING inside the call, then the call's own line.
    assert_ok(&app.post_with(&[("traceparent", &trace('a'))]).await);
    // Refused before the body is parsed: a wrong content type, then a body that is not JSON.
    let refused = app
        .call(
            http::Method::POST,
            "/webhook",
            &[("content-type", "text/plain"), ("traceparent", &trace('b'))],
            b"{}".to_vec(),
        )
        .await;
    assert_eq!(refused.status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    let garbage = app
        .call(
            http::Method::POST,
            "/webhook",
            &[
                ("content-type", "application/json"),
                (
                    "x-cloud-trace-context",
                    &format!("{}/1;o=1", "c".repeat(32)),
                ),
            ],
            b"{\"fulfillmentInfo\":".to_vec(),
        )
        .await;
    assert_eq!(garbage.status, StatusCode::BAD_REQUEST);
    drop(guard);

    let (text, lines) = json_lines(&logs);
    let line = |message: &str, trace: char| {
        let link = format!("projects/proj/traces/{}", trace.to_string().repeat(32));
        lines
            .iter()
            .find(|l| l["message"] == message && l["logging.googleapis.com/trace"] == link)
            .unwrap_or_else(|| panic!("no {message:?} line in trace {trace}:\n{text}"))
    };
    for answered in [
        line("no handler for this webhook tag", 'a'),
        line("webhook call", 'a'),
    ] {
        assert_eq!(answered["tag"], "no.such.tag", "{answered}");
        assert_eq!(answered["session"], "s-4f9e2b", "{answered}");
        assert_eq!(
            answered["logging.googleapis.com/spanId"],
            "00f067aa0ba902b7"
        );
        assert_eq!(answered["logging.googleapis.com/trace_sampled"], true);
    }
    let unsupported = line("webhook call refused", 'b');
    assert_eq!(unsupported["error"], "unsupported_media_type");
    let malformed = line("webhook call refused", 'c');
    assert_eq!(malformed["error"], "malformed_json");
    assert_eq!(
        malformed["logging.googleapis.com/spanId"],
        "0000000000000001"
    );
    for refused in [unsupported, malformed] {
        assert!(
            refused.get("tag").is_none() && refused.get("session").is_none(),
            "{refused}"
        );
        assert!(
            refused.get("trace_id").is_none(),
            "the id is in the link only"
        );
    }
    assert_eq!(
        lines
            .iter()
            .filter(|l| l["message"] == "webhook call")
            .count(),
        1
    );
}
