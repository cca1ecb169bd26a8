//! Graceful shutdown: a request in flight when shutdown begins gets its full answer, and the real
//! binary exits 0 on SIGTERM.

use crate::common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::Command;
use std::time::Duration;

use common::process::{Binary, post, signal, wait_exit};
use common::{CxRequest, TestApp, fixture, sleeps, spawn_with};
use cx_webhook::Config;
use cx_webhook::handlers::Route;
use http::StatusCode;

/// Sends a webhook call with `tag` from a task of its own, so it is in flight while the test
/// shuts the server down.
fn call_in_flight(
    app: &TestApp,
    tag: &str,
) -> tokio::task::JoinHandle<
    Result<http::Response<hyper::body::Incoming>, hyper_util::client::legacy::Error>,
> {
    let client = app.client.clone();
    let req = http::Request::post(app.url("/webhook"))
        .header("content-type", "application/json")
        .body(http_body_util::Full::new(bytes::Bytes::from(
            CxRequest::tag(tag).build(),
        )))
        .unwrap();
    tokio::spawn(async move { client.request(req).await })
}

#[tokio::test]
async fn in_flight_request_completes_during_shutdown() {
    let mut app = spawn_with(Config::local(), |d| {
        d.register(Route::new(
            "test.slow",
            sleeps(Duration::from_millis(800), "done after the signal"),
        ))
        .unwrap();
    })
    .await;
    let addr = app.addr;
    let in_flight = call_in_flight(&app, "test.slow");
    tokio::time::sleep(Duration::from_millis(200)).await;
    app.begin_shutdown();
    let res = in_flight.await.unwrap().expect("answered");
    let status = res.status();
    let body = http_body_util::BodyExt::collect(res.into_body())
        .await
        .unwrap()
        .to_bytes();
    assert_eq!(status, StatusCode::OK);
    assert!(String::from_utf8_lossy(&body).contains("done after the signal"));
    app.stopped().await.unwrap();
    assert!(
        tokio::net::TcpStream::connect(addr).await.is_err(),
        "no new connections after shutdown"
    );
}

#[tokio::test]
async fn a_call_still_running_when_the_grace_period_ends_is_dropped_and_the_server_stops() {
    let mut config = Config::local();
    config.shutdown_grace = Duration::from_secs(1);
    config.deadline = Duration::from_secs(20);
    let mut app = spawn_with(config, |d| {
        d.register(Route::new(
            "test.stuck",
            sleeps(Duration::from_secs(15), "never sent"),
        ))
        .unwrap();
    })
    .await;
    let in_flight = call_in_flight(&app, "test.stuck");
    tokio::time::sleep(Duration::from_millis(200)).await;
    let began = std::time::Instant::now();
    app.begin_shutdown();
    // The grace period (1 s) ends long before the handler would: the connection is dropped without
    // an answer, and the server returns.
    let outcome = tokio::time::timeout(Duration::from_secs(5), in_flight)
        .await
        .expect("the call ends within 5 s")
        .unwrap();
    assert!(
        outcome.is_err(),
        "no answer after the grace period: {:?}",
        outcome.map(|res| res.status())
    );
    app.stopped().await.unwrap();
    let took = began.elapsed();
    assert!(
        took >= Duration::from_millis(900) && took < Duration::from_secs(5),
        "stopped {took:?} after the shutdown began"
    );
}

#[test]
fn sigterm_lets_the_in_flight_request_finish_and_exits_0() {
    let dir = tempfile::tempdir().unwrap();
    let (mut child, address) = Binary::new(&dir).start();
    let body = fixture("unknown-tag.json");
    let (first, rest) = body.split_at(body.len() / 2);

    // The request is in flight: headers and half the body are in, the rest comes after SIGTERM.
    let mut stream = TcpStream::connect(&address).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    write!(
        stream,
        "POST /webhook HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n",
        body.len()
    )
    .unwrap();
    stream.write_all(first).unwrap();
    stream.flush().unwrap();
    std::thread::sleep(Duration::from_millis(200));

    signal(&child, libc::SIGTERM);
    std::thread::sleep(Duration::from_millis(300));
    stream.write_all(rest).unwrap();

    let mut answer = String::new();
    stream.read_to_string(&mut answer).unwrap();
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(answer.contains("fulfillmentResponse"), "{answer}");

    let status = wait_exit(&mut child, Duration::from_secs(15));
    assert_eq!(status.code(), Some(0));
}

#[test]
fn the_binary_runs_one_allocator_purge_thread() {
    // src/main.rs configures jemalloc through an exported symbol; if the symbol stopped being read
    // (a renamed prefix), no thread would purge and memory would stay at its peak after a flood.
    let dir = tempfile::tempdir().unwrap();
    let (mut child, address) = Binary::new(&dir).start();
    assert!(post(&address, &fixture("unknown-tag.json")).starts_with("HTTP/1.1 200"));
    let names: Vec<String> = std::fs::read_dir(format!("/proc/{}/task", child.id()))
        .unwrap()
        .map(|task| std::fs::read_to_string(task.unwrap().path().join("comm")).unwrap())
        .map(|name| name.trim().to_owned())
        .collect();
    let purgers = names.iter().filter(|n| *n == "jemalloc_bg_thd").count();
    assert_eq!(purgers, 1, "threads: {names:?}");
    signal(&child, libc::SIGTERM);
    assert_eq!(
        wait_exit(&mut child, Duration::from_secs(15)).code(),
        Some(0)
    );
}

#[test]
fn idle_binary_exits_0_on_sigint() {
    let dir = tempfile::tempdir().unwrap();
    let (mut child, _) = Binary::new(&dir).start();
    signal(&child, libc::SIGINT);
    assert_eq!(
        wait_exit(&mut child, Duration::from_secs(15)).code(),
        Some(0)
    );
}

#[test]
fn refuses_to_start_without_an_auth_mode_or_with_none_on_cloud_run() {
    let bin = env!("CARGO_BIN_EXE_cx-webhook");
    let out = Command::new(bin).env_clear().output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("AUTH_MODE is not set"), "{err}");

    let out = Command::new(bin)
        .env_clear()
        .env("AUTH_MODE", "none")
        .env("K_SERVICE", "cx-webhook")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("refused on Cloud Run"), "{err}");
}

#[test]
fn help_documents_every_setting_and_its_env_name() {
    let out = Command::new(env!("CARGO_BIN_EXE_cx-webhook"))
        .arg("--help-all")
        .env("AUTH_API_KEY", "the-api-key-value-1234")
        .env("WEBHOOK_TOKEN", "the-token-value")
        .output()
        .unwrap();
    let help = String::from_utf8_lossy(&out.stdout);
    // The flags of secrets are listed, their values never.
    assert!(help.contains("--auth-api-key"), "{help}");
    assert!(!help.contains("the-api-key-value"), "{help}");
    let short = Command::new(env!("CARGO_BIN_EXE_cx-webhook"))
        .arg("--help")
        .output()
        .unwrap();
    let short = String::from_utf8_lossy(&short.stdout);
    assert!(
        short.lines().count() < 60,
        "--help is for a first start:\n{short}"
    );
    assert!(
        short.contains("--auth-mode") && short.contains("--help-all"),
        "{short}"
    );
    for env in [
        "PORT",
        "BIND",
        "WEBHOOK_PATHS",
        "MAX_BODY_BYTES",
        "WEBHOOK_DEADLINE_MS",
        "SHUTDOWN_GRACE_SECS",
        "AUTH_MODE",
        "AUTH_AUDIENCES",
        "AUTH_ALLOWED_EMAILS",
        "DIALOGFLOW_PROJECT_NUMBER",
        "AUTH_JWKS_URL",
        "AUTH_LEEWAY_SECS",
        "AUTH_API_KEY_HEADER",
        "AUTH_API_KEY",
        "AUTH_TOKEN_CACHE_SIZE",
        "HEADER_READ_TIMEOUT_SECS",
        "BODY_READ_TIMEOUT_SECS",
        "DATABASE_PATH",
        "WEATHER_GEOCODING_URL",
        "WEATHER_FORECAST_URL",
        "WEATHER_TIMEOUT_MS",
        "WEATHER_CACHE_TTL_SECS",
        "WEATHER_STALE_TTL_SECS",
        "BOOKING_API_URL",
        "BOOKING_API_AUDIENCE",
        "LOG_FORMAT",
        "RUST_LOG",
        "GOOGLE_CLOUD_PROJECT",
    ] {
        assert!(
            help.contains(&format!("[env: {env}")),
            "--help lacks {env}:\n{help}"
        );
    }
}
