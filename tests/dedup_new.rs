//! `/tools/` request bodies count against the same per-connection body budget as the webhook's
//! (issue 14): the h2c streams of one connection that send tool bodies past the budget get 503
//! `connection_body_budget` as an RFC 9457 problem at once instead of being buffered, while other
//! connections are served. Loopback only; every wait is bounded.

mod common;

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use common::{TestApp, seeded_store, spawn_app_from};
use cx_webhook::handlers::{self, Dispatcher};
use cx_webhook::{App, Config};
use http::Method;
use http_body_util::BodyExt;
use hyper::body::{Body, Frame};
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpStream;

/// A request body that sends one chunk and then stalls (never ends).
struct Stalls(Option<Bytes>);

impl Body for Stalls {
    type Data = Bytes;
    type Error = std::convert::Infallible;
    fn poll_frame(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        match self.0.take() {
            Some(chunk) => Poll::Ready(Some(Ok(Frame::data(chunk)))),
            None => Poll::Pending,
        }
    }
}

/// The server with tools over a fresh seeded database.
async fn spawn_tools() -> (TestApp, tempfile::TempDir) {
    let (store, dir) = seeded_store();
    let mut config = Config::local();
    config.database_path = store.path().to_owned();
    let deps = Arc::new(App::deps(&config, store.clone()).await.unwrap());
    let dispatcher = Dispatcher::new(handlers::table(&deps)).unwrap();
    let app = App::new(config, dispatcher).unwrap().with_tools(deps);
    (spawn_app_from(app, store).await, dir)
}

#[tokio::test]
async fn h2c_tool_bodies_past_the_connection_budget_are_503_problems() {
    // MAX_BODY_BYTES is 256 KiB by default: the budget per connection is 1 MiB.
    let (app, _dir) = spawn_tools().await;
    let stream = TcpStream::connect(app.addr).await.unwrap();
    let (sender, conn) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(stream))
            .await
            .unwrap();
    let conn = tokio::spawn(conn);
    // Eight streams each send 200 KiB of a 250,000-byte body and stall: 1.6 MB against 1 MiB.
    let (tx, mut answers) = tokio::sync::mpsc::unbounded_channel();
    let mut streams = Vec::new();
    for _ in 0..8 {
        let mut sender = sender.clone();
        let request = http::Request::post(app.url("/tools/find-dealers"))
            .header("content-type", "application/json")
            .header("content-length", "250000")
            .body(Stalls(Some(Bytes::from(vec![b' '; 200 * 1024]))))
            .unwrap();
        let tx = tx.clone();
        streams.push(tokio::spawn(async move {
            if let Ok(response) = sender.send_request(request).await {
                let (parts, body) = response.into_parts();
                let body = body
                    .collect()
                    .await
                    .map(|b| b.to_bytes())
                    .unwrap_or_default();
                let _ = tx.send((parts, body));
            }
        }));
    }
    // At least two streams' worth of bytes do not fit: those are refused at once (the others wait
    // for the rest of their bodies, up to the body read timeout).
    for _ in 0..2 {
        let (parts, body) = tokio::time::timeout(Duration::from_secs(5), answers.recv())
            .await
            .expect("a refusal within 5 s, not a wait for the body timeout")
            .unwrap();
        let problem: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(parts.status, 503, "{problem}");
        assert_eq!(parts.headers["content-type"], "application/problem+json");
        assert_eq!(parts.headers["retry-after"], "1");
        assert_eq!(problem["status"], 503, "{problem}");
        assert_eq!(
            problem["type"], "urn:cx-webhook:problem:connection_body_budget",
            "{problem}"
        );
    }
    // The budget is per connection: a tool call on another one is served while these stall.
    let served = app
        .call(
            Method::POST,
            "/tools/find-dealers",
            &[("content-type", "application/json")],
            br#"{"location": "411001"}"#.to_vec(),
        )
        .await;
    assert_eq!(
        served.status,
        200,
        "{}",
        String::from_utf8_lossy(&served.body)
    );
    for s in streams {
        s.abort();
    }
    conn.abort();
}

#[tokio::test]
async fn a_tool_body_over_max_body_bytes_is_still_413_and_a_wrong_type_415() {
    let (app, _dir) = spawn_tools().await;
    let big = vec![b' '; 256 * 1024 + 1];
    let a = app
        .call(
            Method::POST,
            "/tools/find-dealers",
            &[("content-type", "application/json")],
            big,
        )
        .await;
    assert_eq!(a.status, 413);
    assert_eq!(a.headers["content-type"], "application/problem+json");
    assert_eq!(a.json()["type"], "urn:cx-webhook:problem:body_too_large");
    // The tools accept plain `application/json` only (the webhook also takes `+json` types).
    let a = app
        .call(
            Method::POST,
            "/tools/find-dealers",
            &[("content-type", "application/vnd.api+json")],
            br#"{"location": "411001"}"#.to_vec(),
        )
        .await;
    assert_eq!(a.status, 415);
    assert_eq!(
        a.json()["type"],
        "urn:cx-webhook:problem:unsupported_media_type"
    );
}
