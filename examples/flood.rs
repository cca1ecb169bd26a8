//! Memory after floods (issue 14): drives a running server on loopback with rounds of slowloris
//! connections and h2c stream floods, and prints the server's resident memory after each round.
//!
//! usage: cargo run --release --example flood -- ADDRESS PID [SLOWLORIS_ROUNDS] [H2_ROUNDS]
//!
//! - slowloris round: 1,000 HTTP/1 connections each send a request line and 16 KiB of a header line
//!   that never ends, hold 1 s, then close.
//! - h2 round: 20 h2c connections each open 200 streams that send 64 KiB of a 200 KiB body and stall,
//!   hold 1 s, then close.
//!
//! RSS is read from /proc/PID/status 500 ms after each round's sockets are closed, then 5 s and 15 s
//! after the last round.

use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use hyper::body::{Body, Frame};
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

/// A body that sends one chunk and then stalls forever.
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

fn rss_kib(pid: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("the server runs");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

async fn slowloris(addr: &str) {
    let mut pad = b"POST /webhook HTTP/1.1\r\nhost: x\r\nx-pad: ".to_vec();
    pad.extend(std::iter::repeat_n(b'a', 16 * 1024));
    let mut conns = Vec::new();
    for _ in 0..1000 {
        let Ok(mut s) = TcpStream::connect(addr).await else {
            continue;
        };
        let _ = s.write_all(&pad).await;
        conns.push(s);
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    drop(conns);
}

async fn h2_flood(addr: &str) {
    let mut tasks = Vec::new();
    for _ in 0..20 {
        let Ok(stream) = TcpStream::connect(addr).await else {
            continue;
        };
        let Ok((sender, conn)) =
            hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(stream)).await
        else {
            continue;
        };
        tasks.push(tokio::spawn(async move {
            let _ = conn.await;
        }));
        for _ in 0..200 {
            let mut sender = sender.clone();
            let request = http::Request::post(format!("http://{addr}/webhook"))
                .header("content-type", "application/json")
                .header("content-length", "200000")
                .body(Stalls(Some(Bytes::from(vec![b' '; 64 * 1024]))))
                .unwrap();
            tasks.push(tokio::spawn(async move {
                let _ = sender.send_request(request).await;
            }));
        }
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    for t in tasks {
        t.abort();
    }
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let (addr, pid) = (&args[1], &args[2]);
    let slow_rounds: usize = args.get(3).map_or(7, |v| v.parse().unwrap());
    let h2_rounds: usize = args.get(4).map_or(3, |v| v.parse().unwrap());
    println!("start: {} KiB", rss_kib(pid));
    for round in 1..=slow_rounds {
        slowloris(addr).await;
        tokio::time::sleep(Duration::from_millis(500)).await;
        println!("after slowloris round {round}: {} KiB", rss_kib(pid));
    }
    for round in 1..=h2_rounds {
        h2_flood(addr).await;
        tokio::time::sleep(Duration::from_millis(500)).await;
        println!("after h2 round {round}: {} KiB", rss_kib(pid));
    }
    tokio::time::sleep(Duration::from_secs(5)).await;
    println!("5 s later: {} KiB", rss_kib(pid));
    // The server trims its heap every 10 s (glibc): by now it has.
    tokio::time::sleep(Duration::from_secs(10)).await;
    println!("15 s later: {} KiB", rss_kib(pid));
}
