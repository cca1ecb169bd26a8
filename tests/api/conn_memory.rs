//! Memory per connection is bounded (issue 14, item 5): an HTTP/1 request head larger than the read
//! buffer cap is refused with 431, and the request bodies one h2c connection's streams collect share
//! a budget: past it a stream gets 503 `connection_body_budget` at once instead of being buffered,
//! while other connections are served. Loopback only; every wait is bounded.

use crate::common;

use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use common::{assert_ok, spawn_app};
use http_body_util::BodyExt;
use hyper::body::{Body, Frame};
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
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

#[tokio::test]
async fn an_http1_request_head_over_64_kib_is_431() {
    let app = spawn_app().await;
    let mut head = b"POST /webhook HTTP/1.1\r\nhost: x\r\nx-pad: ".to_vec();
    head.extend(std::iter::repeat_n(b'a', 80 * 1024));
    head.extend_from_slice(b"\r\ncontent-length: 0\r\n\r\n");
    let mut stream = TcpStream::connect(app.addr).await.unwrap();
    // The server may answer and close before it has read everything: a failed write is fine.
    let _ = stream.write_all(&head).await;
    let mut answer = vec![0; 64];
    let n = tokio::time::timeout(Duration::from_secs(5), stream.read(&mut answer))
        .await
        .expect("an answer within 5 s")
        .unwrap();
    let answer = String::from_utf8_lossy(&answer[..n]);
    assert!(answer.starts_with("HTTP/1.1 431"), "{answer}");
    // A head that fits is still served.
    assert_ok(&app.post_fixture("unknown-tag.json").await);
}

#[tokio::test]
async fn h2c_bodies_past_the_connection_budget_are_503_and_other_connections_are_served() {
    // MAX_BODY_BYTES is 256 KiB by default: the budget per connection is 1 MiB.
    let app = spawn_app().await;
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
        let request = http::Request::post(app.url("/webhook"))
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
        let body: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(parts.status, 503, "{body}");
        assert_eq!(body["error"]["code"], "connection_body_budget", "{body}");
        assert_eq!(parts.headers["retry-after"], "1");
    }
    // The budget is per connection: a client on another one is served while these stall.
    assert_ok(&app.post_fixture("unknown-tag.json").await);
    for s in streams {
        s.abort();
    }
    conn.abort();
}
