//! The connection layer at its edges (issue 14): silent connections are closed, a flood of them at a
//! low file-descriptor limit does not starve a normal client, and shutdown answers everything it
//! received (in flight, pipelined, half-closed) with `Connection: close` instead of resetting.
//! Loopback only; every wait is bounded.

use crate::common;

use std::io::{Read, Write};
use std::time::{Duration, Instant};

use bytes::Bytes;
use common::process::{Binary, terminate};
use common::{CxRequest, spawn_with};
use cx_webhook::Config;
use cx_webhook::cx::WebhookResponse;
use cx_webhook::handlers::{Call, Handler, Route};
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

fn sleeps(pause: Duration) -> impl Handler {
    move |_call: Call| async move {
        tokio::time::sleep(pause).await;
        Ok(WebhookResponse::new().text("slow answer"))
    }
}

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
        d.register(Route::new("test.slow", sleeps(Duration::from_millis(500))))
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
    let mut trickle = TcpStream::connect(app.addr).await.unwrap();
    let started = Instant::now();
    let dripping = tokio::spawn(async move {
        for b in HEALTH.bytes() {
            if trickle.write_all(&[b]).await.is_err() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        let mut rest = Vec::new();
        let _ = tokio::time::timeout(Duration::from_secs(10), trickle.read_to_end(&mut rest)).await;
        (started.elapsed(), rest)
    });
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

/// Raises this process's soft RLIMIT_NOFILE to at least `want` (as far as the hard limit allows).
fn raise_nofile(want: u64) -> u64 {
    let mut rlim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit on our own process with a valid struct.
    unsafe {
        assert_eq!(libc::getrlimit(libc::RLIMIT_NOFILE, &mut rlim), 0);
        if rlim.rlim_cur < want {
            rlim.rlim_cur = want.min(rlim.rlim_max);
            assert_eq!(libc::setrlimit(libc::RLIMIT_NOFILE, &rlim), 0);
        }
    }
    rlim.rlim_cur
}

fn health(address: &str) -> Result<String, String> {
    let mut s =
        std::net::TcpStream::connect_timeout(&address.parse().unwrap(), Duration::from_secs(5))
            .map_err(|e| format!("connect: {e}"))?;
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s.write_all(b"GET /health HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n")
        .map_err(|e| format!("write: {e}"))?;
    let mut out = String::new();
    s.read_to_string(&mut out)
        .map_err(|e| format!("read: {e}"))?;
    Ok(out)
}

#[test]
fn a_normal_client_is_served_while_1300_silent_sockets_are_open_at_ulimit_1024() {
    const SILENT: usize = 1300;
    if raise_nofile(SILENT as u64 + 200) < SILENT as u64 + 100 {
        eprintln!("skipped: this process cannot hold {SILENT} sockets");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (mut child, address, log) = Binary::new(&dir)
        .nofile(1024)
        .env("HEADER_READ_TIMEOUT_SECS", "120")
        .start_with_log();
    let started = Instant::now();

    let mut silent = Vec::with_capacity(SILENT);
    for i in 0..SILENT {
        let s =
            std::net::TcpStream::connect_timeout(&address.parse().unwrap(), Duration::from_secs(5))
                .unwrap_or_else(|e| panic!("silent socket {i}: {e}"));
        silent.push(s);
        if i % 100 == 99 {
            let answer = health(&address).unwrap_or_else(|e| panic!("after {} silent: {e}", i + 1));
            assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
        }
    }
    for _ in 0..20 {
        let answer = health(&address).unwrap();
        assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    }
    assert!(started.elapsed() < Duration::from_secs(60));

    // Room was made by closing the oldest silent sockets: they read end-of-file.
    let mut first = &silent[0];
    first
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let mut buf = [0u8; 16];
    assert_eq!(first.read(&mut buf).unwrap(), 0, "the oldest was closed");

    // The process stayed under its limit, and did not log a warning per failure.
    let fds = std::fs::read_dir(format!("/proc/{}/fd", child.id()))
        .unwrap()
        .count();
    assert!(fds <= 1024, "{fds} descriptors");
    let lines = log.lock().unwrap().clone();
    let warnings = lines.iter().filter(|l| l.contains("\"WARNING\"")).count();
    assert!(warnings <= 3, "{warnings} warnings:\n{}", lines.join("\n"));
    assert!(
        lines.iter().any(|l| l.contains("connection cap reached")),
        "{}",
        lines.join("\n")
    );
    drop(silent);
    terminate(&mut child);
}
