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
//!    `body_read_timeout` (408), within the connection's body budget (503 with `Retry-After`), a
//!    JSON object that is a `WebhookRequest` (400);
//! 4. dispatch under the deadline (always a 200 answer from here on), encoded within 64 KiB.
//!
//! Each webhook call logs one line: tag, session, status, route, outcome and latency.
//!
//! **Memory per connection is bounded** (issue 14): an HTTP/1 connection buffers at most 64 KiB of
//! unparsed input (a larger request head gets 431); an h2c connection runs at most 128 streams,
//! header blocks of at most 16 KiB, and receive windows of one maximal body per stream and of the
//! body budget per connection; the request bodies its streams collect, webhook and `/tools/` alike
//! (both read through [`crate::body`]), share that budget (the larger of 1 MiB and
//! `max_body_bytes`). A body that would go past it is refused with 503 and `Retry-After: 1`, not
//! buffered; its bytes go back to the budget once the request is parsed.
//! Memory freed after a flood goes back to the OS, so RSS falls back instead of staying at its
//! peak: the binary's allocator (jemalloc) purges it from a background thread, and glibc's heap is
//! trimmed every 10 s (`malloc_trim`).

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::pin;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::header::{self, HeaderName, HeaderValue};
use http::{Method, Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulConnection;
use tokio::net::TcpListener;
use tokio::time::Instant;
use tracing::Instrument;

use crate::app::App;
use crate::auth::AuthFailure;
use crate::body::{self, BodyBudget, BodyError};
use crate::cx::{MAX_RESPONSE_BYTES, Trim, WebhookRequest};
use crate::handlers::TOO_LARGE_TEXT;
use crate::telemetry::TraceContext;

mod conn;
use conn::{ConnState, Registration, Signal, Tracked, Tracker};

/// The response body type.
pub type Body = Full<Bytes>;

/// The HTTP/1 and h2c settings every connection is served with (timeouts, buffer and window sizes:
/// the per-connection memory bounds in the module docs).
fn connection_builder(limits: &ConnLimits) -> auto::Builder<TokioExecutor> {
    let mut builder = auto::Builder::new(TokioExecutor::new());
    // No hyper header-read timeout (its default is 30 s once a timer is set): `drive` enforces
    // HEADER_READ_TIMEOUT_SECS with the one timer each connection keeps, where hyper would
    // allocate, arm and cancel a timer per request.
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(None)
        .max_buf_size(H1_MAX_BUF)
        .keep_alive(true)
        // A client that half-closes after its requests still gets every answer.
        .half_close(true);
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_concurrent_streams(H2_MAX_STREAMS)
        .initial_stream_window_size(limits.stream_window)
        .initial_connection_window_size(limits.connection_window)
        .max_header_list_size(H2_MAX_HEADER_LIST)
        .max_send_buf_size(MAX_RESPONSE_BYTES)
        .keep_alive_interval(Some(Duration::from_secs(30)));
    builder
}

/// After the listener is gone: lets open connections finish what they received within `grace`,
/// then drops the rest.
async fn drain(tracker: &Tracker, grace: Duration) {
    tracing::info!(
        connections = tracker.open(),
        grace_secs = grace.as_secs(),
        "shutting down: no new connections, finishing in-flight and received requests"
    );
    tracker.start_draining();
    tracker.signal_all(Signal::DRAINING);
    match tokio::time::timeout(grace, tracker.all_closed()).await {
        Ok(()) => tracing::info!("all connections closed"),
        Err(_) => {
            tracing::warn!(
                connections = tracker.open(),
                "grace period over; dropping the remaining connections"
            );
            tracker.signal_all(Signal::ABORT);
            let _ = tokio::time::timeout(Duration::from_secs(1), tracker.all_closed()).await;
        }
    }
}

/// Serves `app` on `listener` until `shutdown` completes, then drains in-flight requests for at most
/// the configured grace period.
///
/// Long (~100 lines) on purpose: the accept loop's three waits (a connection slot, `accept`, the
/// back-off after an accept error) each race `shutdown` and leave with `break 'accept`; split
/// into functions they would need a result type just to carry that break.
pub async fn run(
    listener: TcpListener,
    app: Arc<App>,
    shutdown: impl Future<Output = ()>,
) -> std::io::Result<()> {
    let limits = ConnLimits::new(app.config.max_body_bytes);
    let builder = connection_builder(&limits);

    let (cap, fd_limit) = conn::max_connections(app.config.connections.max_connections);
    let tracker = Arc::new(Tracker::new(cap));
    let mut shutdown = pin!(shutdown);
    tracing::info!(
        address = %listener.local_addr()?,
        auth_mode = %app.config.auth.mode(),
        webhook_paths = ?app.config.webhook_paths,
        max_connections = cap,
        fd_limit,
        "listening"
    );

    let trimmer = spawn_trimmer();
    let mut accept_failures = Burst::default();
    let mut cap_reached = RateLimited::default();
    'accept: loop {
        // A slot first; at the cap, make room by closing the oldest connection with no request yet.
        let slot = match tracker.try_slot() {
            Some(slot) => slot,
            None => {
                let evicted = tracker.evict_oldest_unused();
                if let Some(since_last) = cap_reached.note() {
                    tracing::warn!(
                        max_connections = cap,
                        evicted,
                        times_since_last_log = since_last,
                        "connection cap reached: closing the oldest connections that sent no request"
                    );
                }
                tokio::select! {
                    biased;
                    () = &mut shutdown => break 'accept,
                    slot = tracker.slot() => slot,
                }
            }
        };
        let (stream, peer) = tokio::select! {
            biased;
            () = &mut shutdown => break 'accept,
            accepted = listener.accept() => match accepted {
                Ok(pair) => pair,
                Err(error) => {
                    // EMFILE and friends: free a descriptor if an unused connection holds one, back
                    // off briefly, and log once per burst; the listener survives.
                    tracker.evict_oldest_unused();
                    if accept_failures.note() {
                        tracing::warn!(%error, "accept failed; backing off");
                    }
                    tokio::select! {
                        biased;
                        () = &mut shutdown => break 'accept,
                        () = tokio::time::sleep(accept_failures.backoff()) => continue 'accept,
                    }
                }
            },
        };
        if let Some(count) = accept_failures.ended() {
            tracing::info!(failures = count, "accepting again");
        }
        let _ = stream.set_nodelay(true);
        let registration = tracker.register(&stream, slot);
        let state = registration.state.clone();
        let timeouts = (
            app.config.header_read_timeout,
            app.config.connections.idle_timeout,
        );
        let app = app.clone();
        let requests = tracker.clone();
        let bodies = Arc::new(BodyBudget::new(limits.body_budget));
        let service = service_fn(move |req: Request<Incoming>| {
            let app = app.clone();
            let guard = state.request_started();
            let requests = requests.clone();
            let bodies = bodies.clone();
            let http1 = req.version() <= http::Version::HTTP_11;
            async move {
                let mut response = handle(&app, req, peer, &bodies).await;
                if http1 && guard.close_after(&requests) {
                    response
                        .headers_mut()
                        .insert(header::CONNECTION, HeaderValue::from_static("close"));
                }
                Ok::<_, Infallible>(response)
            }
        });
        let io = TokioIo::new(Tracked::new(stream, registration.state.clone()));
        let conn = builder.serve_connection(io, service).into_owned();
        tokio::spawn(drive(conn, registration, timeouts, peer));
    }

    drop(listener);
    if let Some(trimmer) = trimmer {
        trimmer.abort();
    }
    drain(&tracker, app.config.shutdown_grace).await;
    Ok(())
}

/// HTTP/1 read buffer cap (hyper's default is 408 KiB): a request head must fit in it (else 431),
/// and it is what one HTTP/1 connection can hold of unparsed input.
const H1_MAX_BUF: usize = 64 * 1024;
/// Concurrent h2c streams per connection (was 256; RFC 9113 advises at least 100).
const H2_MAX_STREAMS: u32 = 128;
/// Largest h2 header block (hyper's default, stated here so it stays bounded).
const H2_MAX_HEADER_LIST: u32 = 16 * 1024;

/// Per-connection memory bounds derived from `MAX_BODY_BYTES`.
#[derive(Debug, Clone, Copy)]
struct ConnLimits {
    /// Request-body bytes one connection may hold at once across its streams: the larger of 1 MiB
    /// and one maximal body (so any single accepted body fits).
    body_budget: usize,
    /// h2 receive window per stream: one maximal body (64 KiB to 1 MiB) may be in flight unread.
    stream_window: u32,
    /// h2 receive window per connection: the body budget.
    connection_window: u32,
}

impl ConnLimits {
    fn new(max_body_bytes: usize) -> Self {
        let body_budget = max_body_bytes.max(1024 * 1024);
        let window = |n: usize| u32::try_from(n).unwrap_or(u32::MAX).min(i32::MAX as u32);
        ConnLimits {
            body_budget,
            stream_window: window(max_body_bytes.clamp(64 * 1024, 1024 * 1024)),
            connection_window: window(body_budget),
        }
    }
}

/// How often freed heap memory is handed back to the OS.
const TRIM_EVERY: Duration = Duration::from_secs(10);

/// glibc keeps memory freed after a flood of connections in its arenas: measured with
/// examples/flood.rs, RSS stayed at 51 MB after the floods, and one `malloc_trim(0)` brought it to
/// 14 MB. So every `TRIM_EVERY` the heap is trimmed (on a blocking thread; it takes the arena
/// locks briefly). Other C libraries (musl) return memory on their own: nothing to do there.
/// The `cx-webhook` binary allocates with jemalloc, which purges on its own (see `src/main.rs`);
/// the trim then covers what C code (SQLite) allocated from glibc, and servers the library runs
/// under the system allocator (the tests).
#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn spawn_trimmer() -> Option<tokio::task::JoinHandle<()>> {
    Some(tokio::spawn(async {
        let mut tick = tokio::time::interval(TRIM_EVERY);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        tick.tick().await;
        loop {
            tick.tick().await;
            // SAFETY: malloc_trim takes no pointers and only releases free memory.
            let _ = tokio::task::spawn_blocking(|| unsafe { libc::malloc_trim(0) }).await;
        }
    }))
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn spawn_trimmer() -> Option<tokio::task::JoinHandle<()>> {
    None
}

/// Runs one connection to its end: closes it when it stays idle too long, when the tracker evicts it,
/// or, while draining, once it is quiet (nothing in flight, nothing more received). Idle means no
/// request head completed: from the accept until the first request, `timeouts.0` (the header read
/// timeout); after an answer, `timeouts.0` again for HTTP/1 (a keep-alive connection must send its
/// next head within it, as a slow head must) and `timeouts.1` (the idle timeout) for h2c.
async fn drive<C>(
    conn: C,
    registration: Registration,
    timeouts: (Duration, Duration),
    peer: SocketAddr,
) where
    C: GracefulConnection,
    C::Error: std::fmt::Display,
{
    let state = registration.state.clone();
    let mut conn = pin!(conn);
    let mut closing = false;
    // Signals seen so far: a connection registered while draining starts with DRAINING raised.
    let mut seen = 0;
    let mut draining = false;
    // One timer for the connection's life, re-armed when it fires or a signal comes, never per
    // request. It is never later than the true idle deadline (see `next_look`); when it fires
    // early, the loop finds the deadline moved and re-arms it.
    let mut look_again = pin!(tokio::time::sleep_until(next_look(
        &state,
        Instant::now(),
        timeouts
    )));
    loop {
        tokio::select! {
            result = conn.as_mut() => {
                if let Err(error) = result {
                    tracing::debug!(%error, %peer, "connection ended with an error");
                }
                return;
            }
            raised = std::future::poll_fn(|cx| state.poll_signals(cx, seen)) => {
                let new = raised & !seen;
                seen = raised;
                if new & Signal::EVICTED != 0 {
                    tracing::debug!(%peer, "closed to make room: no request on it yet");
                    return;
                }
                if new & Signal::ABORT != 0 {
                    return;
                }
                draining |= new & Signal::DRAINING != 0;
            }
            () = look_again.as_mut() => {}
        }
        let now = Instant::now();
        let idle_at = state.idle_deadline(timeouts.0, idle_timeout(&state, timeouts));
        if !closing {
            let idle_over = idle_at.is_some_and(|at| at <= now);
            if idle_over && !(state.used() && state.is_h2()) {
                // Silent since the accept, or an HTTP/1 connection whose next head did not come
                // (or came too slowly) within the header read timeout: nothing to answer.
                tracing::debug!(%peer, "closed: no request head within the header read timeout");
                return;
            }
            if idle_over || (draining && (state.is_h2() || state.quiet())) {
                conn.as_mut().graceful_shutdown();
                closing = true;
            }
        }
        // While draining, look again soon: a quiet connection closes at once.
        let next = if draining && !closing {
            now + Duration::from_millis(10)
        } else {
            next_look(&state, now, timeouts)
        };
        look_again.as_mut().reset(next);
    }
}

/// How long `state`'s connection may stay idle after an answer: the header read timeout for
/// HTTP/1, the idle timeout for h2c.
fn idle_timeout(state: &ConnState, (header_read, idle): (Duration, Duration)) -> Duration {
    if state.is_h2() { idle } else { header_read }
}

/// When [`drive`] should look at the connection next: no later than it could go idle for too long,
/// whatever happens before then. A request that is in flight, or that comes and is answered later,
/// starts its idle clock after `now`, so `now` plus the shorter of the two timeouts is never late
/// (the protocol is not known before the first bytes); an idle connection's deadline only moves
/// later; before the first request the deadline is the header read timeout after the accept,
/// unless a request comes and is answered first.
fn next_look(state: &ConnState, now: Instant, timeouts: (Duration, Duration)) -> Instant {
    let bound = now + timeouts.0.min(timeouts.1);
    match state.idle_deadline(timeouts.0, idle_timeout(state, timeouts)) {
        Some(at) if at > now && state.used() => at,
        Some(at) if at > now => at.min(bound),
        _ => bound,
    }
}

/// An event logged at most once per 10 s, with how often it happened in between.
#[derive(Default)]
struct RateLimited {
    last: Option<Instant>,
    since_last: u64,
}

impl RateLimited {
    /// Counts one event; `Some(count since the last log)` when it should be logged.
    fn note(&mut self) -> Option<u64> {
        self.since_last += 1;
        if self
            .last
            .is_some_and(|at| at.elapsed() < Duration::from_secs(10))
        {
            return None;
        }
        self.last = Some(Instant::now());
        Some(std::mem::take(&mut self.since_last))
    }
}

/// A run of repeated events (accept failures) logged once when it starts and once
/// when it ends, with an exponential back-off between attempts.
#[derive(Default)]
struct Burst {
    count: u64,
}

impl Burst {
    /// Counts one event; true for the first of a burst (log it).
    fn note(&mut self) -> bool {
        self.count += 1;
        self.count == 1
    }

    /// The pause before the next attempt: 5 ms doubling up to 500 ms.
    fn backoff(&self) -> Duration {
        let exp = u32::try_from(self.count.saturating_sub(1).min(7)).unwrap_or(7);
        Duration::from_millis(5 << exp).min(Duration::from_millis(500))
    }

    /// Ends a burst; its size, if there was one.
    fn ended(&mut self) -> Option<u64> {
        (self.count > 0).then(|| std::mem::take(&mut self.count))
    }
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
    headers: Vec<(HeaderName, HeaderValue)>,
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

    fn with_header(mut self, name: HeaderName, value: HeaderValue) -> Self {
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

impl From<AuthFailure> for HttpError {
    fn from(failure: AuthFailure) -> Self {
        let status = failure.status();
        let mut error = HttpError::new(status, failure.code(), failure.to_string());
        if status == StatusCode::UNAUTHORIZED
            && let Ok(v) = HeaderValue::from_str(&failure.challenge())
        {
            error = error.with_header(header::WWW_AUTHENTICATE, v);
        }
        if let Some(secs) = failure.retry_after() {
            error = error.with_header(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        error
    }
}

fn json_response(status: StatusCode, body: Vec<u8>) -> Response<Body> {
    body::json_answer(status, "application/json", body)
}

fn is_webhook_path(app: &App, path: &str) -> bool {
    app.config.webhook_paths.iter().any(|p| {
        path.strip_prefix(p.as_str())
            .is_some_and(|rest| rest.is_empty() || rest == "/" || rest.starts_with('/'))
    })
}

async fn handle(
    app: &App,
    req: Request<Incoming>,
    peer: SocketAddr,
    bodies: &BodyBudget,
) -> Response<Body> {
    let path = req.uri().path();
    if path == "/health" {
        return match *req.method() {
            Method::GET | Method::HEAD => {
                json_response(StatusCode::OK, br#"{"status":"ok"}"#.to_vec())
            }
            _ => HttpError::method_not_allowed("GET, HEAD").into_response(),
        };
    }
    if crate::tools::handles(path) && !is_webhook_path(app, path) {
        return crate::tools::serve(app, req, bodies).await;
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
    let trace = TraceContext::from_headers(req.headers());
    webhook(app, req, peer, bodies, trace).await
}

/// The span of one webhook call: the trace it belongs to, and the tag and session once the body
/// is parsed. Every line the call logs is in it.
///
/// It is created when the request is parsed, with all its fields at once (recording two fields
/// later cost 800 instructions a call), or, for a call refused before that, for the refusal's line.
/// Nothing logs before the parse: authentication and the body read return their failures, and the
/// key fetches they may start run as tasks of their own.
fn call_span(trace: Option<&TraceContext>, request: Option<&WebhookRequest>) -> tracing::Span {
    tracing::info_span!(
        "webhook",
        trace_id = trace.map(|t| t.trace_id.as_str()),
        span_id = trace.and_then(|t| t.span_id.as_deref()),
        trace_sampled = trace.map(|t| t.sampled),
        tag = request.map(|r| r.fulfillment_info.tag.as_str()),
        session = request.map(|r| r.session_id()),
    )
}

/// What the per-call log line reports besides status and latency.
#[derive(Default)]
struct CallSummary {
    route: &'static str,
    outcome: &'static str,
    error_code: &'static str,
    /// The caller's email, when authentication established (or a refused token named) one.
    caller: Option<String>,
    /// The call's span, once the request is parsed ([`call_span`]).
    span: Option<tracing::Span>,
}

async fn webhook(
    app: &App,
    req: Request<Incoming>,
    peer: SocketAddr,
    bodies: &BodyBudget,
    trace: Option<TraceContext>,
) -> Response<Body> {
    let started = Instant::now();
    let deadline = started + app.config.deadline;
    let mut summary = CallSummary::default();
    let inner = webhook_inner(app, req, deadline, bodies, trace.as_ref(), &mut summary);
    let response = match inner.await {
        Ok(response) => response,
        Err(error) => {
            summary.error_code = error.code;
            error.into_response()
        }
    };
    let span = summary
        .span
        .take()
        .unwrap_or_else(|| call_span(trace.as_ref(), None));
    let status = response.status().as_u16();
    // Whole microseconds over 1000 print as short decimals (0.247), not float noise.
    let latency_ms = started.elapsed().as_micros() as f64 / 1000.0;
    if response.status().is_success() {
        tracing::info!(
            parent: &span,
            status,
            route = summary.route,
            outcome = summary.outcome,
            caller = summary.caller.as_deref(),
            latency_ms,
            "webhook call"
        );
    } else {
        tracing::warn!(
            parent: &span,
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
    bodies: &BodyBudget,
    trace: Option<&TraceContext>,
    summary: &mut CallSummary,
) -> Result<Response<Body>, HttpError> {
    let config = &app.config;
    let caller = app.auth.authenticate(req.headers()).await.map_err(|e| {
        summary.caller = e.email;
        HttpError::from(e.failure)
    })?;
    summary.caller = caller.email;

    let (bytes, hold) = body::read(req, body::json_or_suffix, config, bodies)
        .await
        .map_err(|e| body_error(e, config, bodies))?;

    // Boxed once here; from here on the request moves as a pointer.
    let request = Box::new(
        WebhookRequest::from_slice(&bytes)
            .map_err(|e| HttpError::new(e.status(), e.code(), e.message))?,
    );
    // The parsed request owns its strings: the body's bytes leave the connection's budget.
    drop((bytes, hold));
    let span = call_span(trace, Some(&request));

    let dispatched = app
        .dispatcher
        .dispatch(request, deadline)
        .instrument(span.clone())
        .await;
    summary.route = dispatched.route;
    summary.outcome = dispatched.outcome.as_str();

    let (body, trim) = dispatched
        .response
        .to_bounded_json(MAX_RESPONSE_BYTES, TOO_LARGE_TEXT);
    match trim {
        Trim::None => {}
        Trim::DroppedPayloads { original_bytes } => tracing::warn!(
            parent: &span,
            route = dispatched.route,
            original_bytes,
            sent_bytes = body.len(),
            "answer over 64 KiB: rich content dropped"
        ),
        Trim::ReplacedByFallback { original_bytes } => tracing::error!(
            parent: &span,
            route = dispatched.route,
            original_bytes,
            "answer over 64 KiB even without rich content: replaced by a fallback text"
        ),
    }
    summary.span = Some(span);
    Ok(json_response(StatusCode::OK, body))
}

/// A body that could not be read, in the webhook's error format.
fn body_error(error: BodyError, config: &crate::config::Config, budget: &BodyBudget) -> HttpError {
    match error {
        BodyError::UnsupportedMediaType(content_type) => HttpError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            format!(
                "Content-Type must be application/json, not `{}`",
                if content_type.is_empty() {
                    "(none)"
                } else {
                    &content_type
                }
            ),
        ),
        BodyError::TooLarge => HttpError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "body_too_large",
            format!("the request body exceeds {} bytes", config.max_body_bytes),
        ),
        BodyError::Timeout => HttpError::new(
            StatusCode::REQUEST_TIMEOUT,
            "body_timeout",
            format!(
                "the request body did not arrive within {} s",
                config.body_read_timeout.as_secs()
            ),
        ),
        BodyError::OverBudget => HttpError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "connection_body_budget",
            format!(
                "this connection's requests hold more than {} bytes of bodies at once; \
                 retry, or spread the requests over more connections",
                budget.limit()
            ),
        )
        .with_header(header::RETRY_AFTER, HeaderValue::from_static("1")),
        BodyError::Unreadable(e) => HttpError::new(
            StatusCode::BAD_REQUEST,
            "body_unreadable",
            format!("the request body could not be read: {e}"),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
