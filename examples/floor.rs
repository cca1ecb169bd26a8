//! Benchmark tool, not part of the service: the floor of the stack. A bare hyper 1 HTTP/1.1 server on
//! the same runtime as the service (tokio multi-thread, TCP_NODELAY) that reads each request's body
//! and answers a fixed JSON object, with no routing, auth, logging, timers or parsing. What
//! `scripts/load.sh` and `scripts/callgrind.sh` compare the service with: the distance between the
//! two is what the service adds per call.
//!
//! ```text
//! $ cargo run --release --example floor            # PORT (default 0: an ephemeral port)
//! listening on 127.0.0.1:40123
//! ```
//!
//! Binds 127.0.0.1 only. Exits 0 on SIGTERM or Ctrl-C.

use std::convert::Infallible;

use bytes::Bytes;
use http::{Request, Response, header};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use std::io::Write;

/// About the size of a webhook answer.
const ANSWER: &[u8] = br#"{"fulfillmentResponse":{"messages":[{"text":{"text":["Your account balance is Rs 12,345.67."]}}]}}"#;

async fn answer(req: Request<Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    // Read the whole body, as the service does; a broken body still gets the answer.
    let _ = req.into_body().collect().await;
    let mut response = Response::new(Full::new(Bytes::from_static(ANSWER)));
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("application/json"),
    );
    Ok(response)
}

fn main() {
    let port: u16 = std::env::var("PORT")
        .ok()
        .and_then(|p| p.parse().ok())
        .unwrap_or(0);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    runtime.block_on(async move {
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
            .await
            .expect("bind 127.0.0.1");
        let address = listener.local_addr().expect("local address");
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "listening on {address}");
        let _ = out.flush();
        drop(out);

        use tokio::signal::unix::{SignalKind, signal};
        let mut term = signal(SignalKind::terminate()).expect("SIGTERM handler");
        loop {
            tokio::select! {
                _ = term.recv() => break,
                _ = tokio::signal::ctrl_c() => break,
                accepted = listener.accept() => {
                    let Ok((stream, _)) = accepted else { continue };
                    let _ = stream.set_nodelay(true);
                    tokio::spawn(async move {
                        let _ = http1::Builder::new()
                            .serve_connection(TokioIo::new(stream), service_fn(answer))
                            .await;
                    });
                }
            }
        }
    });
}
