//! The HTTP server: accept loop, per-connection tasks, routes, body limits and graceful shutdown.
//!
//! hyper 1 with hyper-util's auto builder serves HTTP/1.1 and h2c (Cloud Run's end-to-end HTTP/2) on
//! the same port. [`run`] takes its listener, so tests bind port 0, and a shutdown future, so tests can
//! stop it without signals. On shutdown the listener closes at once, idle connections close, and
//! in-flight requests get up to `shutdown_grace` to finish.
//!
//! A webhook request passes, in order (each step can end it with a JSON error):
//! 1. route: `POST <webhook path>`, `GET|HEAD /health`; else 404, or 405 with `Allow`;
//! 2. auth: the [`crate::auth::Authenticator`] (401/403/503) — before the body is read, so an
//!    unauthenticated caller cannot make the server buffer anything; the caller's email (or, on a
//!    refusal, the email the token named) goes into the call's log line;
//! 3. body: `Content-Type` must be JSON (415), at most `max_body_bytes` (413), sent within
//!    `body_read_timeout` (408), a JSON object that is a `WebhookRequest` (400);
//! 4. dispatch under the deadline (always a 200 answer from here on), encoded within 64 KiB.
//!
//! Each webhook call logs one line: tag, session, status, route, outcome and latency.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::pin;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::header::{self, HeaderValue};
use http::{Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full, LengthLimitError, Limited};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;
use tokio::time::Instant;
use tracing::Instrument;

use crate::app::App;
use crate::auth::AuthError;
use crate::cx::{MAX_RESPONSE_BYTES, Trim, WebhookRequest};
use crate::handlers::TOO_LARGE_TEXT;
use crate::telemetry::TraceContext;

/// The response body type.
pub type Body = Full<Bytes>;

/// Serves `app` on `listener` until `shutdown` completes, then drains in-flight requests for at most
/// the configured grace period.
pub async fn run(
    listener: TcpListener,
    app: Arc<App>,
    shutdown: impl Future<Output = ()>,
) -> std::io::Result<()> {
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(app.config.header_read_timeout)
        .keep_alive(true);
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_concurrent_streams(256)
        .keep_alive_interval(Some(Duration::from_secs(30)));

    let graceful = GracefulShutdown::new();
    let mut shutdown = pin!(shutdown);
    tracing::info!(
        address = %listener.local_addr()?,
        auth_mode = %app.config.auth.mode(),
        webhook_paths = ?app.config.webhook_paths,
        "listening"
    );

    loop {
        tokio::select! {
            biased;
            () = &mut shutdown => break,
            accepted = listener.accept() => {
                let (stream, peer) = match accepted {
                    Ok(pair) => pair,
                    Err(error) => {
                        // EMFILE and friends: back off instead of spinning; the listener survives.
                        tracing::warn!(%error, "accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                let _ = stream.set_nodelay(true);
                let app = app.clone();
                let service = service_fn(move |req| {
                    let app = app.clone();
                    async move { Ok::<_, Infallible>(handle(&app, req, peer).await) }
                });
                let conn = builder.serve_connection(TokioIo::new(stream), service).into_owned();
                let conn = graceful.watch(conn);
                tokio::spawn(async move {
                    if let Err(error) = conn.await {
                        tracing::debug!(%error, %peer, "connection ended with an error");
                    }
                });
            }
        }
    }

    drop(listener);
    let grace = app.config.shutdown_grace;
    tracing::info!(
        connections = graceful.count(),
        grace_secs = grace.as_secs(),
        "shutting down: no new connections, finishing in-flight requests"
    );
    match tokio::time::timeout(grace, graceful.shutdown()).await {
        Ok(()) => tracing::info!("all connections closed"),
        Err(_) => tracing::warn!("grace period over; dropping the remaining connections"),
    }
    Ok(())
}

/// Installs SIGTERM (Cloud Run) and SIGINT (Ctrl-C) handlers now, and returns a future that
/// resolves when either arrives. Installing before the server announces itself matters: a signal
/// that arrives between "listening" and the first poll must not kill the process.
pub fn shutdown_signal() -> std::io::Result<impl Future<Output = ()>> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    Ok(async move {
        let name = tokio::select! {
            _ = term.recv() => "SIGTERM",
            _ = int.recv() => "SIGINT",
        };
        tracing::info!(signal = name, "shutdown requested");
    })
}

/// An error answer outside the webhook contract: `{"error": {"code": ..., "message": ...}}`.
#[derive(Debug)]
struct HttpError {
    status: StatusCode,
    code: &'static str,
    message: String,
    headers: Vec<(header::HeaderName, HeaderValue)>,
}

impl HttpError {
    fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        HttpError {
            status,
            code,
            message: message.into(),
            headers: Vec::new(),
        }
    }

    fn with_header(mut self, name: header::HeaderName, value: HeaderValue) -> Self {
        self.headers.push((name, value));
        self
    }

    fn method_not_allowed(allow: &'static str) -> Self {
        HttpError::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
            format!("this path accepts {allow}"),
        )
        .with_header(header::ALLOW, HeaderValue::from_static(allow))
    }

    fn into_response(self) -> Response<Body> {
        let body = serde_json::json!({"error": {"code": self.code, "message": self.message}});
        let mut response =
            json_response(self.status, serde_json::to_vec(&body).unwrap_or_default());
        for (name, value) in self.headers {
            response.headers_mut().insert(name, value);
        }
        response
    }
}

impl From<AuthError> for HttpError {
    fn from(e: AuthError) -> Self {
        let status = StatusCode::from_u16(e.status).unwrap_or(StatusCode::UNAUTHORIZED);
        let mut error = HttpError::new(status, e.code, e.message);
        if status == StatusCode::UNAUTHORIZED {
            // RFC 6750 §3.1: no error attribute when no credentials were sent at all.
            let challenge = match e.code {
                "missing_token" | "missing_api_key" => "Bearer realm=\"cx-webhook\"".to_owned(),
                code => format!(
                    "Bearer realm=\"cx-webhook\", error=\"invalid_token\", \
                     error_description=\"{code}\""
                ),
            };
            if let Ok(v) = HeaderValue::from_str(&challenge) {
                error = error.with_header(header::WWW_AUTHENTICATE, v);
            }
        }
        if let Some(secs) = e.retry_after {
            error = error.with_header(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        error
    }
}

fn json_response(status: StatusCode, body: Vec<u8>) -> Response<Body> {
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

fn is_webhook_path(app: &App, path: &str) -> bool {
    app.config.webhook_paths.iter().any(|p| {
        path.strip_prefix(p.as_str())
            .is_some_and(|rest| rest.is_empty() || rest == "/" || rest.starts_with('/'))
    })
}

async fn handle(app: &App, req: Request<Incoming>, peer: SocketAddr) -> Response<Body> {
    let path = req.uri().path();
    if path == "/health" {
        return match *req.method() {
            Method::GET | Method::HEAD => {
                json_response(StatusCode::OK, br#"{"status":"ok"}"#.to_vec())
            }
            _ => HttpError::method_not_allowed("GET, HEAD").into_response(),
        };
    }
    if !is_webhook_path(app, path) {
        return HttpError::new(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("no such path: {path}"),
        )
        .into_response();
    }
    if req.method() != Method::POST {
        return HttpError::method_not_allowed("POST").into_response();
    }
    let header = |name: &str| req.headers().get(name).and_then(|v| v.to_str().ok());
    let trace = TraceContext::from_headers(header("traceparent"), header("x-cloud-trace-context"));
    let span = tracing::info_span!(
        "webhook",
        trace_id = trace.as_ref().map(|t| t.trace_id.as_str()),
        span_id = trace.as_ref().and_then(|t| t.span_id.as_deref()),
        trace_sampled = trace.as_ref().map(|t| t.sampled),
        tag = tracing::field::Empty,
        session = tracing::field::Empty,
    );
    webhook(app, req, peer).instrument(span).await
}

/// What the per-call log line reports besides status and latency.
#[derive(Default)]
struct CallSummary {
    route: &'static str,
    outcome: &'static str,
    error_code: &'static str,
    /// The caller's email, when authentication established (or a refused token named) one.
    caller: Option<String>,
}

async fn webhook(app: &App, req: Request<Incoming>, peer: SocketAddr) -> Response<Body> {
    let started = Instant::now();
    let deadline = started + app.config.deadline;
    let mut summary = CallSummary::default();
    let response = match webhook_inner(app, req, deadline, &mut summary).await {
        Ok(response) => response,
        Err(error) => {
            summary.error_code = error.code;
            error.into_response()
        }
    };
    let status = response.status().as_u16();
    // Whole microseconds over 1000 print as short decimals (0.247), not float noise.
    let latency_ms = started.elapsed().as_micros() as f64 / 1000.0;
    if response.status().is_success() {
        tracing::info!(
            status,
            route = summary.route,
            outcome = summary.outcome,
            caller = summary.caller.as_deref(),
            latency_ms,
            "webhook call"
        );
    } else {
        tracing::warn!(
            status,
            error = summary.error_code,
            caller = summary.caller.as_deref(),
            %peer,
            latency_ms,
            "webhook call refused"
        );
    }
    response
}

async fn webhook_inner(
    app: &App,
    req: Request<Incoming>,
    deadline: Instant,
    summary: &mut CallSummary,
) -> Result<Response<Body>, HttpError> {
    let config = &app.config;
    let caller = app.auth.authenticate(req.headers()).await.map_err(|e| {
        summary.caller = e.email.clone();
        HttpError::from(e)
    })?;
    summary.caller = caller.email;

    let content_type = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if !is_json(content_type) {
        return Err(HttpError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            format!(
                "Content-Type must be application/json, not `{}`",
                if content_type.is_empty() {
                    "(none)"
                } else {
                    content_type
                }
            ),
        ));
    }
    let too_large = || {
        HttpError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "body_too_large",
            format!("the request body exceeds {} bytes", config.max_body_bytes),
        )
    };
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > config.max_body_bytes as u64) {
        return Err(too_large());
    }
    let body = Limited::new(req.into_body(), config.max_body_bytes);
    let bytes = match tokio::time::timeout(config.body_read_timeout, body.collect()).await {
        Err(_) => {
            return Err(HttpError::new(
                StatusCode::REQUEST_TIMEOUT,
                "body_timeout",
                format!(
                    "the request body did not arrive within {} s",
                    config.body_read_timeout.as_secs()
                ),
            ));
        }
        Ok(Err(e)) if e.downcast_ref::<LengthLimitError>().is_some() => return Err(too_large()),
        Ok(Err(e)) => {
            return Err(HttpError::new(
                StatusCode::BAD_REQUEST,
                "body_unreadable",
                format!("the request body could not be read: {e}"),
            ));
        }
        Ok(Ok(collected)) => collected.to_bytes(),
    };

    let request = WebhookRequest::from_slice(&bytes)
        .map_err(|e| HttpError::new(e.status(), e.code(), e.message))?;
    let span = tracing::Span::current();
    span.record("tag", request.fulfillment_info.tag.as_str());
    span.record("session", request.session_id());

    let dispatched = app.dispatcher.dispatch(request, deadline).await;
    summary.route = dispatched.route;
    summary.outcome = dispatched.outcome.as_str();

    let (body, trim) = dispatched
        .response
        .to_bounded_json(MAX_RESPONSE_BYTES, TOO_LARGE_TEXT);
    match trim {
        Trim::None => {}
        Trim::DroppedPayloads { original_bytes } => tracing::warn!(
            route = dispatched.route,
            original_bytes,
            sent_bytes = body.len(),
            "answer over 64 KiB: rich content dropped"
        ),
        Trim::ReplacedByFallback { original_bytes } => tracing::error!(
            route = dispatched.route,
            original_bytes,
            "answer over 64 KiB even without rich content: replaced by a fallback text"
        ),
    }
    Ok(json_response(StatusCode::OK, body))
}

fn is_json(content_type: &str) -> bool {
    let essence = content_type
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    essence == "application/json"
        || (essence.starts_with("application/") && essence.ends_with("+json"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_content_types() {
        assert!(is_json("application/json"));
        assert!(is_json("Application/JSON; charset=utf-8"));
        assert!(is_json("application/vnd.api+json"));
        assert!(!is_json("text/plain"));
        assert!(!is_json("application/x-www-form-urlencoded"));
        assert!(!is_json(""));
    }

    #[test]
    fn webhook_paths_match_prefixes_on_segment_boundaries() {
        let mut config = crate::config::Config::local();
        config.webhook_paths = vec!["/webhook".into(), "/dialogflow".into()];
        let app = App::new(config, crate::handlers::Dispatcher::new(vec![]).unwrap()).unwrap();
        for ok in [
            "/webhook",
            "/webhook/",
            "/dialogflow/account",
            "/webhook/a/b",
        ] {
            assert!(is_webhook_path(&app, ok), "{ok}");
        }
        for no in ["/webhooks", "/", "/dialogflowx", "/health"] {
            assert!(!is_webhook_path(&app, no), "{no}");
        }
    }
}
