//! Dispatch over HTTP: the fallback for unknown tags, graceful answers when a handler fails, panics or
//! overruns the deadline, and the 64 KiB response bound.

use crate::common;

use std::time::{Duration, Instant};

use common::{CxRequest, sleeps, spawn_app, spawn_with};
use cx_webhook::Config;
use cx_webhook::cx::{RichContent, RichElement, WebhookResponse};
use cx_webhook::handlers::{
    Call, ERROR_TEXT, Handler, HandlerError, Reply, Route, TIMEOUT_TEXT, TOO_LARGE_TEXT,
    fallback::FALLBACK_TEXT,
};
use http::StatusCode;

async fn fails(_call: Call) -> Reply {
    let cause = std::io::Error::other("disk on fire at /secret/path");
    Err(HandlerError::new("reading the ledger", cause).into())
}

fn huge(text_bytes: usize, rich_bytes: usize) -> impl Handler {
    move |_call: Call| async move {
        let rich = RichContent::new().card(vec![RichElement::info("x".repeat(rich_bytes), None)]);
        Ok(WebhookResponse::new()
            .text("y".repeat(text_bytes))
            .rich_content(rich)
            .set_param("kept", true))
    }
}

#[tokio::test]
async fn unknown_tag_gets_a_polite_200() {
    let app = spawn_app().await;
    let a = app.post_fixture("unknown-tag.json").await;
    assert_eq!(a.status, StatusCode::OK);
    assert_eq!(a.texts(), vec![FALLBACK_TEXT]);
}

#[tokio::test]
async fn seed_guide_sample_gets_the_fallback() {
    let app = spawn_app().await;
    let a = app.post_fixture("seed-guide-sample.json").await;
    assert_eq!(a.status, StatusCode::OK);
    assert_eq!(a.texts(), vec![FALLBACK_TEXT]);
}

#[tokio::test]
async fn event_triggered_request_without_intent_info_is_served() {
    let app = spawn_app().await;
    let a = app.post_fixture("event-triggered.json").await;
    assert_eq!(a.status, StatusCode::OK);
    assert!(!a.texts().is_empty());
}

#[tokio::test]
async fn a_failing_handler_yields_200_with_no_internals() {
    let app = spawn_with(Config::local(), |d| {
        d.register(Route::new("test.fails", fails)).unwrap();
    })
    .await;
    let a = app.post(CxRequest::tag("test.fails")).await;
    assert_eq!(a.status, StatusCode::OK);
    assert_eq!(a.texts(), vec![ERROR_TEXT]);
    let body = String::from_utf8_lossy(&a.body);
    assert!(
        !body.contains("secret") && !body.contains("ledger"),
        "{body}"
    );
}

#[tokio::test]
async fn an_overrunning_handler_is_answered_by_the_deadline() {
    let mut config = Config::local();
    config.deadline = Duration::from_millis(300);
    let app = spawn_with(config, |d| {
        d.register(Route::new(
            "test.slow",
            sleeps(Duration::from_secs(20), "finally"),
        ))
        .unwrap();
    })
    .await;
    let started = Instant::now();
    let a = app.post(CxRequest::tag("test.slow")).await;
    let took = started.elapsed();
    assert_eq!(a.status, StatusCode::OK);
    assert_eq!(a.texts(), vec![TIMEOUT_TEXT]);
    // Functional bound (not a performance target): the handler would take 20 s.
    assert!(took < Duration::from_secs(10), "took {took:?}");
}

#[tokio::test]
async fn oversized_answers_stay_under_64_kib() {
    let app = spawn_with(Config::local(), |d| {
        d.register(Route::new("test.rich", huge(100, 70_000)))
            .unwrap();
        d.register(Route::new("test.text", huge(70_000, 10)))
            .unwrap();
    })
    .await;
    let a = app.post(CxRequest::tag("test.rich")).await;
    assert_eq!(a.status, StatusCode::OK);
    assert!(a.body.len() <= 64 * 1024);
    let v = a.json();
    assert_eq!(v["sessionInfo"]["parameters"]["kept"], true);
    assert_eq!(
        v["fulfillmentResponse"]["messages"]
            .as_array()
            .unwrap()
            .len(),
        1
    );

    let a = app.post(CxRequest::tag("test.text")).await;
    assert!(a.body.len() <= 64 * 1024);
    assert_eq!(a.texts(), vec![TOO_LARGE_TEXT]);
}
