//! The same capabilities as tools for generative agents (Dialogflow CX Playbooks, CX Agent Studio):
//! `POST /tools/<name>` with a plain JSON body, answered with plain JSON or an RFC 9457 problem
//! ([`problem`]), and `GET /openapi.json`, the OpenAPI 3.0.3 document of them ([`openapi`]).
//!
//! [`TOOLS`] is the one table: each row holds a tool's path, operationId, descriptions, request and
//! response schemas, extra error statuses and the function that runs it. The router and the document
//! are both read from it, so what is published is what is served.
//!
//! Each tool applies the tag handlers' own rules (the booking checks, the dealer search, the price
//! choice, the place label; see [`crate::handlers`]). Where a rule reads parameters, the tool's JSON
//! body is read through the same [`crate::cx::Params`] readers the tags use, so `booking_date` or
//! `location` parse the same way from either door.
//!
//! A tool call passes, in order (each step can end it with a problem):
//! 1. route: a row of [`TOOLS`] (404), `POST` only (405 with `Allow`);
//! 2. auth: the webhook's [`crate::auth::Authenticator`] (401/403/503), or, for the account tools,
//!    the end user's verified identity ([`verified_end_user`]; 401 without one);
//! 3. body, read by the webhook's reader ([`crate::body`]): JSON (415), at most `max_body_bytes`
//!    (413), within `body_read_timeout` (408), within the connection's body budget (503 with
//!    `Retry-After`), an object (400);
//! 4. the tool, under the webhook deadline (503 on overrun, 500 without internals on a panic).
//!
//! Each call logs one line: tool, status, problem code, caller and latency (never a field's value).

pub mod account;
pub mod booking;
pub mod catalog;
pub mod openapi;
pub mod problem;
pub mod weather;

use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures_util::FutureExt;
use http::header::{self, HeaderValue};
use http::{HeaderMap, Method, Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;
use serde_json::{Map, Value, json};
use tokio::time::Instant;

use crate::app::App;
use crate::body::{self, BodyBudget, BodyError};
use crate::cx::{Params, WebhookRequest};
use crate::domain::AccountId;
use crate::handlers::{Deps, Stop, answer_reserve};
use crate::telemetry::error_chain;
pub use problem::{FieldError, Problem};

/// Where the tools live.
pub const TOOLS_PREFIX: &str = "/tools/";
/// Where the OpenAPI document is served.
pub const OPENAPI_PATH: &str = "/openapi.json";

/// What a tool returns: its JSON answer, or a problem.
pub type ToolResult = Result<Value, Problem>;
/// The future a tool returns.
pub type ToolFuture = Pin<Box<dyn Future<Output = ToolResult> + Send + 'static>>;

/// One tool: a row of [`TOOLS`].
pub struct Tool {
    /// The path under `/tools/`, e.g. `find-dealers`.
    pub name: &'static str,
    /// The OpenAPI operationId, e.g. `findDealers`.
    pub operation_id: &'static str,
    /// One line: what it does.
    pub summary: &'static str,
    /// For the agent: when to call it and what it needs.
    pub description: &'static str,
    /// The request body's JSON schema.
    pub request: fn() -> Value,
    /// The 200 answer's JSON schema.
    pub response: fn() -> Value,
    /// Problem statuses this tool adds to the common ones (e.g. 404, 409).
    pub statuses: &'static [u16],
    /// Needs the end user's verified identity (account data), not the service agent's.
    pub end_user: bool,
    /// Runs it.
    pub run: fn(Input) -> ToolFuture,
}

/// The tools, in the order the document lists them.
pub static TOOLS: &[Tool] = &[
    catalog::FIND_DEALERS,
    catalog::SERVICE_COST,
    booking::VALIDATE,
    booking::CREATE,
    weather::CURRENT,
    account::BALANCE,
    account::TRANSACTIONS,
];

/// The tool served at `/tools/<name>`.
pub fn tool(name: &str) -> Option<&'static Tool> {
    TOOLS.iter().find(|t| t.name == name)
}

/// The end user's identity, proven by their ID token (a Google-signed or IdP-signed token verified by
/// signature; a session parameter alone proves nothing).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EndUser {
    /// The user's pseudonym for logs (a keyed hash of the token's subject, never the subject).
    pub subject: String,
    /// The accounts this user may read.
    pub accounts: Vec<AccountId>,
}

/// What a tool gets: its dependencies, its body, its deadline and, for account tools, the verified
/// end user.
pub struct Input {
    /// Stores and clients.
    pub deps: Arc<Deps>,
    /// The body, as the parameters of a request, so [`Params`] reads it as the tags read theirs.
    request: WebhookRequest,
    /// When the answer is due.
    pub deadline: Instant,
    /// The verified end user (account tools only; `None` until a verifier establishes one).
    pub end_user: Option<EndUser>,
}

impl Input {
    /// The input for `body` (a JSON object).
    pub fn new(deps: Arc<Deps>, body: Map<String, Value>, deadline: Instant) -> Self {
        let mut request = WebhookRequest::default();
        request.session_info.parameters = body;
        Input {
            deps,
            request,
            deadline,
            end_user: None,
        }
    }

    /// The body's fields through the tags' parameter readers.
    pub fn params(&self) -> Params<'_> {
        Params::new(&self.request)
    }

    /// A text field (`None` when absent, null or blank); 400 naming it when it is not text.
    pub fn text(&self, name: &str) -> Result<Option<String>, Problem> {
        self.params()
            .text(name)
            .map_err(|_| Problem::invalid(name, format!("`{name}` must be a string.")))
    }

    /// A required text field; 400 naming it when absent.
    pub fn required_text(&self, name: &str, what: &str) -> Result<String, Problem> {
        self.text(name)?
            .ok_or_else(|| Problem::invalid(name, format!("`{name}` is required: {what}.")))
    }

    /// Time for an outbound call, keeping back the time to answer (as a tag's `Call::budget`).
    pub fn budget(&self) -> Duration {
        let left = self.deadline.saturating_duration_since(Instant::now());
        left.saturating_sub(answer_reserve(left))
    }
}

/// A handler-side failure as a problem: a store or backend that failed is logged with its cause and
/// answered 503; a handler's conversational answer cannot occur in the shared checks (500).
pub(crate) fn from_stop(tool: &str, stop: Stop) -> Problem {
    match stop {
        Stop::Fail(error) => {
            tracing::error!(tool, error = %error_chain(&error), "tool backend failed");
            Problem::unavailable(
                "A backend this tool needs is not answering. Please retry shortly.",
            )
        }
        Stop::Answer(_) => {
            tracing::error!(tool, "a shared check answered like a tag handler");
            Problem::internal()
        }
    }
}

/// A store failure as a problem (logged; 503).
pub(crate) fn store_down(tool: &str, error: crate::store::StoreError) -> Problem {
    from_stop(tool, Stop::from(error))
}

/// Whether `path` belongs to the tool surface (`/openapi.json`, `/tools/...`).
pub fn handles(path: &str) -> bool {
    path == OPENAPI_PATH || path == "/tools" || path.starts_with(TOOLS_PREFIX)
}

/// The verified end user of a request, from its `Authorization: Bearer <end user's ID token>`
/// (a tool's bearer-token authentication referencing the session parameter that holds the signed-in
/// user's token): verified by signature with the same verifier as the tags' `payload.userIdToken`.
/// `Ok(None)` when no token was sent or no verifier is configured (`END_USER_ISSUER` unset); `Err`
/// (401) for a token that fails verification.
pub async fn verified_end_user(app: &App, headers: &HeaderMap) -> Result<Option<EndUser>, Problem> {
    let Some(deps) = app.tools.as_ref() else {
        return Ok(None);
    };
    let Some(verifier) = deps.identity.end_users.as_ref() else {
        return Ok(None);
    };
    let token = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
        })
        .map(str::trim)
        .filter(|t| !t.is_empty());
    let Some(token) = token else {
        return Ok(None);
    };
    let user = verifier.verify(token).await.map_err(|failure| {
        Problem::from(crate::auth::AuthError {
            failure,
            email: None,
        })
    })?;
    let Some(subject) = crate::domain::Subject::new(&user.subject) else {
        return Ok(None);
    };
    let accounts = deps
        .store
        .accounts()
        .owned_by(&subject)
        .map_err(|e| store_down("account", e))?;
    Ok(Some(EndUser {
        subject: deps.identity.pseudonyms.of(&subject),
        accounts,
    }))
}

type Body = Full<Bytes>;

/// Answers a request whose path [`handles`].
pub async fn serve(app: &App, req: Request<Incoming>, bodies: &BodyBudget) -> Response<Body> {
    let started = std::time::Instant::now();
    let path = req.uri().path().to_owned();
    let mut caller = None;
    let mut name = "openapi";
    let result = match app.tools.clone() {
        None => Err(not_found(&path)),
        Some(_) if path == OPENAPI_PATH => openapi_answer(&req),
        Some(deps) => match path.strip_prefix(TOOLS_PREFIX).and_then(tool) {
            None => Err(not_found(&path)),
            Some(t) => {
                name = t.name;
                call(app, deps, t, req, bodies, &mut caller).await
            }
        },
    };
    let response = match result {
        Ok(response) => response,
        Err(problem) => {
            let latency_ms = started.elapsed().as_micros() as f64 / 1000.0;
            tracing::warn!(
                tool = name,
                status = problem.status,
                error = problem.code,
                caller = caller.as_deref(),
                latency_ms,
                "tool call refused"
            );
            return problem.into_response();
        }
    };
    if name != "openapi" {
        let latency_ms = started.elapsed().as_micros() as f64 / 1000.0;
        tracing::info!(
            tool = name,
            status = response.status().as_u16(),
            caller = caller.as_deref(),
            latency_ms,
            "tool call"
        );
    }
    response
}

fn not_found(path: &str) -> Problem {
    let names: Vec<String> = TOOLS
        .iter()
        .map(|t| format!("{TOOLS_PREFIX}{}", t.name))
        .collect();
    Problem::new(
        StatusCode::NOT_FOUND,
        "not_found",
        "Not found",
        format!(
            "No tool at {path}. Tools: {}; their description: {OPENAPI_PATH}.",
            names.join(", ")
        ),
    )
}

fn openapi_answer(req: &Request<Incoming>) -> Result<Response<Body>, Problem> {
    if !matches!(*req.method(), Method::GET | Method::HEAD) {
        return Ok(not_allowed("GET, HEAD"));
    }
    let header = |name: &str| req.headers().get(name).and_then(|v| v.to_str().ok());
    let server = openapi::server_url(header("x-forwarded-proto"), header("host"));
    let only = req.uri().query().and_then(|q| {
        q.split('&')
            .find_map(|kv| kv.strip_prefix("operation="))
            .map(str::to_owned)
    });
    let document = match only {
        Some(op) => openapi::document_for(server.as_deref(), Some(&op)).ok_or_else(|| {
            Problem::new(
                StatusCode::NOT_FOUND,
                "not_found",
                "Not found",
                format!("No operation `{op}`."),
            )
        })?,
        None => openapi::document(server.as_deref()),
    };
    Ok(json_response(StatusCode::OK, &document))
}

/// 405 with `Allow`.
fn not_allowed(allow: &'static str) -> Response<Body> {
    let mut response = Problem::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        "Method not allowed",
        format!("This path accepts {allow}."),
    )
    .into_response();
    response
        .headers_mut()
        .insert(header::ALLOW, HeaderValue::from_static(allow));
    response
}

async fn call(
    app: &App,
    deps: Arc<Deps>,
    tool: &'static Tool,
    req: Request<Incoming>,
    bodies: &BodyBudget,
    caller: &mut Option<String>,
) -> Result<Response<Body>, Problem> {
    if req.method() != Method::POST {
        return Ok(not_allowed("POST"));
    }
    let deadline = Instant::now() + app.config.deadline;
    let end_user = if tool.end_user {
        match verified_end_user(app, req.headers()).await? {
            Some(user) => {
                *caller = Some(format!("end-user:{}", user.subject));
                Some(user)
            }
            None => return Err(Problem::end_user_required()),
        }
    } else {
        let who = app.auth.authenticate(req.headers()).await.map_err(|e| {
            *caller = e.email.clone();
            Problem::from(e)
        })?;
        *caller = who.email;
        None
    };
    let body = read_object(app, req, bodies).await?;
    let mut input = Input::new(deps, body, deadline);
    input.end_user = end_user;
    let run = AssertUnwindSafe((tool.run)(input)).catch_unwind();
    let answer = match tokio::time::timeout_at(deadline, run).await {
        Ok(Ok(answer)) => answer?,
        Ok(Err(_panic)) => {
            tracing::error!(tool = tool.name, "tool panicked");
            return Err(Problem::internal());
        }
        Err(_) => {
            tracing::error!(tool = tool.name, "tool overran the deadline");
            return Err(Problem::unavailable(
                "The answer took too long. Please retry shortly.",
            ));
        }
    };
    Ok(json_response(StatusCode::OK, &answer))
}

/// The body as a JSON object, within the server's limits and the connection's body budget.
async fn read_object(
    app: &App,
    req: Request<Incoming>,
    bodies: &BodyBudget,
) -> Result<Map<String, Value>, Problem> {
    let config = &app.config;
    let (bytes, _hold) = body::read(req, body::json_only, config, bodies)
        .await
        .map_err(|e| body_problem(e, config, bodies))?;
    match serde_json::from_slice::<Value>(&bytes) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(_) => Err(Problem::new(
            StatusCode::BAD_REQUEST,
            "not_an_object",
            "Invalid body",
            "The body must be a JSON object of the tool's named fields.",
        )),
        Err(e) => Err(Problem::new(
            StatusCode::BAD_REQUEST,
            "malformed_json",
            "Malformed JSON",
            format!(
                "The body is not valid JSON (line {}, column {}).",
                e.line(),
                e.column()
            ),
        )),
    }
}

/// A body that could not be read, as a problem.
fn body_problem(error: BodyError, config: &crate::config::Config, budget: &BodyBudget) -> Problem {
    match error {
        BodyError::UnsupportedMediaType(_) => Problem::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            "Unsupported media type",
            "The body must be a JSON object sent as `Content-Type: application/json`.",
        ),
        BodyError::TooLarge => Problem::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "body_too_large",
            "Body too large",
            format!("The body exceeds {} bytes.", config.max_body_bytes),
        ),
        BodyError::Timeout => Problem::new(
            StatusCode::REQUEST_TIMEOUT,
            "body_timeout",
            "Body timeout",
            format!(
                "The body did not arrive within {} s.",
                config.body_read_timeout.as_secs()
            ),
        ),
        BodyError::OverBudget => Problem::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "connection_body_budget",
            "Connection body budget spent",
            format!(
                "This connection's requests hold more than {} bytes of bodies at once. \
                 Retry, or spread the requests over more connections.",
                budget.limit()
            ),
        )
        .retry_after(1),
        BodyError::Unreadable(_) => Problem::new(
            StatusCode::BAD_REQUEST,
            "body_unreadable",
            "Body unreadable",
            "The body could not be read.",
        ),
    }
}

fn json_response(status: StatusCode, value: &Value) -> Response<Body> {
    let body = serde_json::to_vec(value).unwrap_or_else(|_| b"{}".to_vec());
    body::json_answer(status, "application/json", body)
}

/// `{"type": "string", ...}` with a description and an example: the property shape every tool uses.
pub(crate) fn prop(kind: &str, description: &str, example: Value) -> Value {
    json!({"type": kind, "description": description, "example": example})
}
