//! The connection layer at its edges (issue 14): silent connections are closed, and shutdown
//! answers everything it received (in flight, pipelined, half-closed) with `Connection: close`
//! instead of resetting. Loopback only; every wait is bounded. (A flood of silent connections at a
//! low file-descriptor limit is `tests/nofile.rs`, a binary of its own.)

use crate::common;

use std::time::{Duration, Instant};

use bytes::Bytes;
use common::{CxRequest, sleeps, spawn_with};
use cx_webhook::Config;
use cx_webhook::handlers::Route;
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const HEALTH: &str = "GET /health HTTP/1.1\r\nhost: x\r\n\r\n";

fn slow_request() -> Vec<u8> {
    let body = CxRequest::tag("test.slow").build();
    let mut req = format!(
        "POST /webhook HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n",
        body.len()
    )
    .into_bytes();
    req.extend_from_slice(&body);
    req
}

async fn slow_app(config: Config) -> common::TestApp {
    spawn_with(config, |d| {
        d.register(Route::new(
            "test.slow",
            sleeps(Duration::from_millis(500), "slow answer"),
        ))
        .unwrap();
    })
    .await
}

/// Reads until the server closes the connection (at most 10 s).
async fn read_to_close(stream: &mut TcpStream) -> String {
    let mut out = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut out))
        .await
        .expect("the server closes the connection within 10 s")
        .expect("a clean close, not a reset");
    String::from_utf8_lossy(&out).into_owned()
}

/// The answers in a raw HTTP/1 byte stream, each as its head (lower-cased) and body.
fn answers(raw: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut rest = raw;
    while let Some(head_end) = rest.find("\r\n\r\n") {
        let head = rest[..head_end].to_ascii_lowercase();
        let len: usize = head
            .lines()
            .find_map(|l| l.strip_prefix("content-length: "))
            .map_or(0, |v| v.trim().parse().unwrap());
        let body_start = head_end + 4;
        out.push((head, rest[body_start..body_start + len].to_owned()));
        rest = &rest[body_start + len..];
    }
    assert!(rest.is_empty(), "trailing bytes: {rest:?}");
    out
}

/// Sends a request head one byte every 200 ms until the server closes, then reads what it answered
/// (at most 10 s more); gives the time from `since` to the end, and the answer.
fn drip_a_head(
    mut stream: TcpStream,
    since: Instant,
) -> tokio::task::JoinHandle<(Duration, Vec<u8>)> {
    tokio::spawn(async move {
        for b in HEALTH.bytes() {
            if stream.write_all(&[b]).await.is_err() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        let mut answer = Vec::new();
        let _ =
            tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut answer)).await;
        (since.elapsed(), answer)
    })
}

fn closes(head: &str) -> bool {
    head.lines().any(|l| l == "connection: close")
}

#[tokio::test]
async fn a_silent_connection_is_closed_after_the_header_read_timeout() {
    let mut config = Config::local();
    config.header_read_timeout = Duration::from_secs(1);
    let app = spawn_with(config, |_| {}).await;

    // Nothing at all, and a head that trickles in one byte every 200 ms: both end about 1 s after
    // the accept, not 1 s after their first byte.
    let mut silent = TcpStream::connect(app.addr).await.unwrap();
    let trickle = TcpStream::connect(app.addr).await.unwrap();
    let started = Instant::now();
    let dripping = drip_a_head(trickle, started);
    assert_eq!(read_to_close(&mut silent).await, "");
    let silent_for = started.elapsed();
    assert!(
        (Duration::from_millis(900)..Duration::from_secs(3)).contains(&silent_for),
        "{silent_for:?}"
    );
    let (trickled_for, answer) = dripping.await.unwrap();
    assert!(answer.is_empty(), "{:?}", String::from_utf8_lossy(&answer));
    assert!(trickled_for < Duration::from_secs(4), "{trickled_for:?}");

    // A normal client is still served.
    let mut normal = TcpStream::connect(app.addr).await.unwrap();
    normal
        .write_all(b"GET /health HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n")
        .await
        .unwrap();
    assert!(read_to_close(&mut normal).await.starts_with("HTTP/1.1 200"));
}

/// After an answer, an HTTP/1 keep-alive connection has the header read timeout for its next head
/// (not the longer h2c idle timeout): a silent one and one whose next head trickles in are both
/// closed about 1 s after their answer, without an answer to the trickled head.
#[tokio::test]
async fn a_keep_alive_connection_gets_the_header_read_timeout_for_its_next_head() {
    let mut config = Config::local();
    config.header_read_timeout = Duration::from_secs(1);
    config.connections.idle_timeout = Duration::from_secs(30);
    let app = spawn_with(config, |_| {}).await;
    let answered = |mut stream: TcpStream| async move {
        stream.write_all(HEALTH.as_bytes()).await.unwrap();
        let mut first = [0u8; 512];
        let n = stream.read(&mut first).await.unwrap();
        assert!(first[..n].starts_with(b"HTTP/1.1 200"));
        (stream, Instant::now())
    };
    let (mut silent, silent_since) = answered(TcpStream::connect(app.addr).await.unwrap()).await;
    let (trickle, trickle_since) = answered(TcpStream::connect(app.addr).await.unwrap()).await;
    let dripping = drip_a_head(trickle, trickle_since);
    assert_eq!(read_to_close(&mut silent).await, "");
    let silent_for = silent_since.elapsed();
    assert!(
        (Duration::from_millis(900)..Duration::from_secs(4)).contains(&silent_for),
        "{silent_for:?}"
    );
    let (trickled_for, rest) = dripping.await.unwrap();
    assert!(rest.is_empty(), "{:?}", String::from_utf8_lossy(&rest));
    assert!(trickled_for < Duration::from_secs(4), "{trickled_for:?}");
}

#[tokio::test]
async fn an_idle_h2c_connection_is_closed_after_the_idle_timeout() {
    let mut config = Config::local();
    config.connections.idle_timeout = Duration::from_secs(1);
    let app = spawn_with(config, |_| {}).await;
    let stream = TcpStream::connect(app.addr).await.unwrap();
    let (mut sender, conn) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(stream))
            .await
            .unwrap();
    let conn = tokio::spawn(conn);
    let request = http::Request::get(app.url("/health"))
        .body(Empty::<Bytes>::new())
        .unwrap();
    let response = sender.send_request(request).await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.version(), http::Version::HTTP_2);
    response.into_body().collect().await.unwrap();
    let answered = Instant::now();

    tokio::time::timeout(Duration::from_secs(5), conn)
        .await
        .expect("the server closes the idle h2c connection")
        .unwrap()
        .expect("with a GOAWAY, not an error");
    assert!(answered.elapsed() >= Duration::from_millis(900));
}

#[tokio::test]
async fn draining_answers_the_request_in_flight_with_connection_close() {
    let mut app = slow_app(Config::local()).await;
    let mut stream = TcpStream::connect(app.addr).await.unwrap();
    stream.write_all(&slow_request()).await.unwrap();
    tokio::time::sleep(Duration::from_millis(150)).await;
    app.begin_shutdown();
    let raw = read_to_close(&mut stream).await;
    let got = answers(&raw);
    assert_eq!(got.len(), 1, "{raw}");
    assert!(got[0].0.starts_with("http/1.1 200"), "{raw}");
    assert!(got[0].1.contains("slow answer"), "{raw}");
    assert!(closes(&got[0].0), "{raw}");
    app.stopped().await.unwrap();
}

#[tokio::test]
async fn draining_finishes_pipelined_requests_before_closing() {
    let mut app = slow_app(Config::local()).await;
    let mut stream = TcpStream::connect(app.addr).await.unwrap();
    // The slow request is in flight when the drain starts; two more wait behind it.
    let mut pipelined = slow_request();
    pipelined.extend_from_slice(HEALTH.as_bytes());
    pipelined.extend_from_slice(HEALTH.as_bytes());
    stream.write_all(&pipelined).await.unwrap();
    tokio::time::sleep(Duration::from_millis(150)).await;
    app.begin_shutdown();
    let raw = read_to_close(&mut stream).await;
    let got = answers(&raw);
    assert_eq!(got.len(), 3, "{raw}");
    assert!(
        got.iter().all(|(h, _)| h.starts_with("http/1.1 200")),
        "{raw}"
    );
    assert!(got[0].1.contains("slow answer"));
    assert_eq!(got[2].1, r#"{"status":"ok"}"#);
    assert!(!closes(&got[0].0) && !closes(&got[1].0), "{raw}");
    assert!(closes(&got[2].0), "the last answer closes: {raw}");
    app.stopped().await.unwrap();
}

#[tokio::test]
async fn requests_received_on_idle_keep_alive_connections_are_answered_during_the_drain() {
    let mut app = slow_app(Config::local()).await;
    // Twenty keep-alive connections that have each been answered once and are idle.
    let mut conns = Vec::new();
    for _ in 0..20 {
        let mut s = TcpStream::connect(app.addr).await.unwrap();
        s.write_all(HEALTH.as_bytes()).await.unwrap();
        let mut buf = vec![0; 1024];
        let n = tokio::time::timeout(Duration::from_secs(5), s.read(&mut buf))
            .await
            .unwrap()
            .unwrap();
        assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"));
        conns.push(s);
    }
    // Each sends its next request just as shutdown begins: none may be dropped or reset.
    for s in &mut conns {
        s.write_all(HEALTH.as_bytes()).await.unwrap();
    }
    app.begin_shutdown();
    for s in &mut conns {
        let raw = read_to_close(s).await;
        let got = answers(&raw);
        assert_eq!(got.len(), 1, "{raw}");
        assert!(got[0].0.starts_with("http/1.1 200"), "{raw}");
    }
    app.stopped().await.unwrap();
}

#[tokio::test]
async fn a_client_that_half_closes_after_pipelined_requests_gets_every_answer() {
    let app = slow_app(Config::local()).await;
    let mut stream = TcpStream::connect(app.addr).await.unwrap();
    let mut pipelined = HEALTH.as_bytes().to_vec();
    pipelined.extend_from_slice(&slow_request());
    pipelined.extend_from_slice(HEALTH.as_bytes());
    stream.write_all(&pipelined).await.unwrap();
    stream.shutdown().await.unwrap();
    let raw = read_to_close(&mut stream).await;
    let got = answers(&raw);
    assert_eq!(got.len(), 3, "{raw}");
    assert!(
        got.iter().all(|(h, _)| h.starts_with("http/1.1 200")),
        "{raw}"
    );
    assert!(got[1].1.contains("slow answer"));
}
