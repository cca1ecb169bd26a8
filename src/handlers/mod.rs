//! Tag dispatch: the table from `fulfillmentInfo.tag` to [`Handler`]s, and the rules around a call.
//!
//! - The tag selects a route (primary tag or alias). When the tag is empty, the matched intent's
//!   display name may select one (the seed guide's routing rule, kept as an alias mechanism).
//! - Anything else goes to [`fallback::fallback`]: HTTP 200, a polite text, a WARNING naming the tag.
//!   An unknown tag is a value, not an error.
//! - Every call runs under the request's deadline. A handler that fails, panics or overruns still
//!   yields a valid answer with a graceful text (no internals); the cause is logged at ERROR.
//!
//! Adding a tag: write `handlers/<name>.rs` with an `async fn <name>(call: Call, deps: Arc<Deps>) ->
//! Reply`, declare it here (`pub mod <name>;`), and add one line to [`table`]. Helpers that may end
//! the call early return [`Reply<T>`] and are used with `?`. `examples/custom_tag.rs` does exactly
//! this from outside the crate.

pub mod access;
pub mod account;
pub mod account_verify;
pub mod booking;
pub mod dealers;
pub mod fallback;
pub mod service_cost;
pub mod weather;

use foldhash::HashMap;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use futures_util::FutureExt;
use tokio::time::Instant;

use crate::clients::booking_api::BookingApiClient;
use crate::clients::weather::Weather;
use crate::cx::{Chip, Params, RichContent, RichElement, WebhookRequest, WebhookResponse};
use crate::identity::Identity;
use crate::store::bookings::{BookingError, BookingRepository};
use crate::store::pins::PinAttempts;
use crate::store::{Store, StoreError};
use crate::telemetry::error_chain;

/// Said when a handler fails or panics. Promises nothing and reveals nothing.
pub const ERROR_TEXT: &str =
    "Sorry, something went wrong on our side. Please try again in a moment.";
/// Said when a handler runs out of time.
pub const TIMEOUT_TEXT: &str =
    "Sorry, that is taking longer than expected. Please try again in a moment.";
/// Said instead of an answer too large for Dialogflow.
pub const TOO_LARGE_TEXT: &str =
    "Sorry, that answer is too long to show here. Could you narrow it down?";

/// What a handler returns: its answer, or a [`Stop`] that ends the call early.
pub type Reply<T = WebhookResponse> = Result<T, Stop>;

/// The future a handler returns.
pub type HandlerFuture = Pin<Box<dyn Future<Output = Reply> + Send + 'static>>;

/// Boxed error source.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Why a handler stopped before its main answer. `?` carries either out of a helper, so a helper
/// such as [`access::account_for`] returns `Reply<Account>`, not a nested result.
#[derive(Debug)]
pub enum Stop {
    /// Wrong or missing user input: this answer (a question, a re-prompt) is sent as it is (boxed:
    /// it is large, and the `Ok` path should not pay for it).
    Answer(Box<WebhookResponse>),
    /// Something went wrong inside: logged with its cause chain; the user hears [`ERROR_TEXT`].
    Fail(HandlerError),
}

/// Ends the call with `response` (for `return Err(ask(...))` and `ok_or_else(|| ask(...))`).
pub fn ask(response: WebhookResponse) -> Stop {
    Stop::Answer(Box::new(response))
}

impl<E: Into<HandlerError>> From<E> for Stop {
    fn from(e: E) -> Self {
        Stop::Fail(e.into())
    }
}

/// One capability, selected by tag. Any `Fn(Call) -> impl Future<Output = Reply>` is a handler, so
/// a handler is usually a plain `async fn(call: Call, deps: Arc<Deps>) -> Reply` registered with
/// [`Deps::with`].
pub trait Handler: Send + Sync + 'static {
    /// Answers one call. Wrong or missing user input is an answer that says so (and may invalidate
    /// the parameter); [`Stop::Fail`] is for what went wrong inside.
    fn handle(&self, call: Call) -> HandlerFuture;
}

impl<F, Fut> Handler for F
where
    F: Fn(Call) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Reply> + Send + 'static,
{
    fn handle(&self, call: Call) -> HandlerFuture {
        Box::pin(self(call))
    }
}

/// What a handler gets: the request and the time left to answer.
#[derive(Debug)]
pub struct Call {
    /// The parsed request (boxed: a call moves through the dispatcher into the handler's future,
    /// and a pointer moves where the whole request would be copied each time).
    pub request: Box<WebhookRequest>,
    /// When the answer is due (the request's budget ends here).
    pub deadline: Instant,
}

impl Call {
    /// A call due at `deadline`.
    pub fn new(request: impl Into<Box<WebhookRequest>>, deadline: Instant) -> Self {
        Call {
            request: request.into(),
            deadline,
        }
    }

    /// The merged, typed parameter view.
    pub fn params(&self) -> Params<'_> {
        Params::new(&self.request)
    }

    /// Time left before the deadline.
    pub fn remaining(&self) -> Duration {
        self.deadline.saturating_duration_since(Instant::now())
    }

    /// Time left for an outbound call, keeping [`answer_reserve`] back to build and send the answer.
    pub fn budget(&self) -> Duration {
        let total = self.remaining();
        total.saturating_sub(answer_reserve(total))
    }

    /// The tag (trimmed).
    pub fn tag(&self) -> &str {
        self.request.fulfillment_info.tag.trim()
    }
}

/// Time kept back from an outbound call to build and send the answer: 200 ms, or a quarter of what
/// is left when that is less than 800 ms (so a short `WEBHOOK_DEADLINE_MS` still leaves the call
/// most of its time).
pub fn answer_reserve(left: Duration) -> Duration {
    (left / 4).min(Duration::from_millis(200))
}

/// Something went wrong inside a handler (a store or outside service failed). Logged with its cause
/// chain; the caller only hears [`ERROR_TEXT`].
#[derive(Debug, thiserror::Error)]
#[error("{context}")]
pub struct HandlerError {
    context: String,
    #[source]
    source: Option<BoxError>,
}

impl HandlerError {
    /// An error with a cause.
    pub fn new(context: impl Into<String>, source: impl Into<BoxError>) -> Self {
        HandlerError {
            context: context.into(),
            source: Some(source.into()),
        }
    }

    /// An error without a cause.
    pub fn msg(context: impl Into<String>) -> Self {
        HandlerError {
            context: context.into(),
            source: None,
        }
    }
}

/// A table entry: a handler, the tags that select it, and the intents that select it when the tag
/// is empty.
pub struct Route {
    name: &'static str,
    tags: Vec<&'static str>,
    intents: Vec<&'static str>,
    handler: Arc<dyn Handler>,
}

impl Route {
    /// A route for `tag` (also its name in logs).
    pub fn new(tag: &'static str, handler: impl Handler) -> Self {
        Route {
            name: tag,
            tags: vec![tag],
            intents: Vec::new(),
            handler: Arc::new(handler),
        }
    }

    /// Another tag that selects this route.
    pub fn alias(mut self, tag: &'static str) -> Self {
        self.tags.push(tag);
        self
    }

    /// An intent display name that selects this route when the tag is empty.
    pub fn intent(mut self, display_name: &'static str) -> Self {
        self.intents.push(display_name);
        self
    }
}

impl From<StoreError> for HandlerError {
    fn from(e: StoreError) -> Self {
        HandlerError::new("store", e)
    }
}

impl From<BookingError> for HandlerError {
    fn from(e: BookingError) -> Self {
        HandlerError::new("booking store", e)
    }
}

/// Shared resources handlers are built from (stores, clients). Built once at start by
/// [`crate::App::deps`]; tests build theirs the same way from their own configuration.
#[derive(Clone)]
pub struct Deps {
    /// The SQLite store: accounts and the catalog (and bookings with the SQLite backend).
    pub store: Store,
    /// Where bookings live (`BOOKING_STORE`).
    pub bookings: Arc<dyn BookingRepository>,
    /// Who the end user is: the access mode, token verifier, grants (`ACCOUNT_ACCESS`, ...).
    pub identity: Arc<Identity>,
    /// Where PIN attempts are counted (the writable store).
    pub pins: Arc<dyn PinAttempts>,
    /// Current weather (Open-Meteo behind a TTL cache).
    pub weather: Arc<Weather>,
    /// The remote booking API, when `BOOKING_API_URL` is set.
    pub booking_api: Option<Arc<BookingApiClient>>,
}

impl std::fmt::Debug for Deps {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Deps")
            .field("store", &self.store)
            .field("bookings", &self.bookings.backend())
            .field("access", &self.identity.access)
            .field("booking_api", &self.booking_api.is_some())
            .finish_non_exhaustive()
    }
}

impl Deps {
    /// A handler from an `async fn(Call, Arc<Deps>) -> Reply`: each call gets these dependencies.
    pub fn with<F, Fut>(self: &Arc<Self>, f: F) -> impl Handler
    where
        F: Fn(Call, Arc<Deps>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Reply> + Send + 'static,
    {
        let deps = self.clone();
        move |call: Call| f(call, deps.clone())
    }
}

/// The dispatch table. One line per capability: its tag, its handler, and any aliases.
pub fn table(deps: &Arc<Deps>) -> Vec<Route> {
    vec![
        Route::new("account.balance", deps.with(account::balance)).intent("account.balance"),
        Route::new("account.transactions", deps.with(account::transactions))
            .intent("account.transactions"),
        Route::new("database-query", deps.with(account::database_query)),
        Route::new("account.verify", deps.with(account_verify::verify)).intent("account.verify"),
        Route::new("dealers.nearby", deps.with(dealers::nearby)).intent("dealer.find"),
        Route::new("service.cost", deps.with(service_cost::service_cost)).intent("service.cost"),
        Route::new("booking.validate", deps.with(booking::validate)),
        Route::new("booking.create", deps.with(booking::create)).intent("booking.create"),
        Route::new("weather", deps.with(weather::weather)).intent("weather.current"),
    ]
}

/// "I don't know the service "x". I can book: A, B." — the one wording for a name the catalog
/// does not know, with the names it does.
pub fn not_known(what: &str, said: &str, offer: &str, names: &[String]) -> String {
    format!(
        "I don't know the {what} \"{said}\". I can {offer}: {}.",
        names.join(", ")
    )
}

/// Asks the user for `name` again: when the page's form collects it, marks it INVALID (CX re-prompts);
/// otherwise clears its session value so a stale bad value is not reused.
pub fn reject(call: &Call, response: WebhookResponse, name: &str) -> WebhookResponse {
    let in_form = call
        .request
        .form_parameters()
        .iter()
        .any(|p| p.display_name == name);
    if in_form {
        response.invalidate_form_param(name)
    } else {
        response.delete_param(name)
    }
}

/// Rich content holding one card of suggestion chips.
pub fn chips<I, S>(labels: I) -> RichContent
where
    I: IntoIterator<Item = S>,
    S: Into<String>,
{
    RichContent::new().card(vec![RichElement::chips(
        labels.into_iter().map(|l| Chip::new(l)),
    )])
}

/// How a call ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// The handler answered.
    Ok,
    /// No handler matched; the fallback answered.
    Fallback,
    /// The handler returned an error; a graceful text was sent.
    Error,
    /// The handler panicked; a graceful text was sent.
    Panic,
    /// The deadline passed; a graceful text was sent.
    Timeout,
}

impl Outcome {
    /// Lowercase name for logs.
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Ok => "ok",
            Outcome::Fallback => "fallback",
            Outcome::Error => "error",
            Outcome::Panic => "panic",
            Outcome::Timeout => "timeout",
        }
    }
}

/// The answer to one call and how it came about.
#[derive(Debug)]
pub struct Dispatched {
    /// The answer to send (always valid).
    pub response: WebhookResponse,
    /// The route that handled the call (`fallback` if none).
    pub route: &'static str,
    /// How it ended.
    pub outcome: Outcome,
}

/// Routes calls to handlers by tag (or intent, when the tag is empty).
pub struct Dispatcher {
    by_tag: HashMap<&'static str, usize>,
    by_intent: HashMap<&'static str, usize>,
    routes: Vec<Route>,
    fallback: Arc<dyn Handler>,
}

/// Two routes claim the same tag or intent: a programming error caught at start.
#[derive(Debug, thiserror::Error)]
#[error("the dispatch table lists `{0}` twice")]
pub struct DuplicateRoute(pub &'static str);

impl Dispatcher {
    /// A dispatcher over `routes`.
    pub fn new(routes: Vec<Route>) -> Result<Self, DuplicateRoute> {
        let mut d = Dispatcher {
            by_tag: HashMap::default(),
            by_intent: HashMap::default(),
            routes: Vec::new(),
            fallback: Arc::new(fallback::fallback),
        };
        for route in routes {
            d.register(route)?;
        }
        Ok(d)
    }

    /// Adds a route (tests use this to add handlers that fail or stall).
    pub fn register(&mut self, route: Route) -> Result<(), DuplicateRoute> {
        let index = self.routes.len();
        for tag in &route.tags {
            if self.by_tag.insert(tag, index).is_some() {
                return Err(DuplicateRoute(tag));
            }
        }
        for intent in &route.intents {
            if self.by_intent.insert(intent, index).is_some() {
                return Err(DuplicateRoute(intent));
            }
        }
        self.routes.push(route);
        Ok(())
    }

    /// The route for a request, if any.
    fn select(&self, request: &WebhookRequest) -> Option<&Route> {
        let tag = request.fulfillment_info.tag.trim();
        let index = if tag.is_empty() {
            request
                .intent_display_name()
                .and_then(|name| self.by_intent.get(name))
        } else {
            self.by_tag.get(tag)
        };
        index.map(|&i| &self.routes[i])
    }

    /// Answers one request by its deadline, whatever the handler does.
    pub async fn dispatch(
        &self,
        request: impl Into<Box<WebhookRequest>>,
        deadline: Instant,
    ) -> Dispatched {
        let request = request.into();
        let (name, handler, matched) = match self.select(&request) {
            Some(route) => (route.name, route.handler.clone(), true),
            None => ("fallback", self.fallback.clone(), false),
        };
        let call = Call::new(request, deadline);
        let run = AssertUnwindSafe(async move { handler.handle(call).await }).catch_unwind();
        let (response, outcome) = match tokio::time::timeout_at(deadline, run).await {
            Ok(Ok(Err(Stop::Answer(response)))) => (*response, Outcome::Ok),
            Ok(Ok(Ok(response))) => (
                response,
                if matched {
                    Outcome::Ok
                } else {
                    Outcome::Fallback
                },
            ),
            Ok(Ok(Err(Stop::Fail(error)))) => {
                tracing::error!(route = name, error = %error_chain(&error), "handler failed");
                (WebhookResponse::new().text(ERROR_TEXT), Outcome::Error)
            }
            Ok(Err(panic)) => {
                let what = panic
                    .downcast_ref::<&str>()
                    .map(|s| s.to_string())
                    .or_else(|| panic.downcast_ref::<String>().cloned())
                    .unwrap_or_default();
                tracing::error!(route = name, panic = %what, "handler panicked");
                (WebhookResponse::new().text(ERROR_TEXT), Outcome::Panic)
            }
            Err(_) => {
                tracing::error!(route = name, "handler overran the deadline");
                (WebhookResponse::new().text(TIMEOUT_TEXT), Outcome::Timeout)
            }
        };
        Dispatched {
            response,
            route: name,
            outcome,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[allow(non_snake_case)]
    fn Echo(text: &'static str) -> impl Handler {
        move |_call: Call| async move { Ok(WebhookResponse::new().text(text)) }
    }

    fn request(json: &str) -> WebhookRequest {
        WebhookRequest::from_slice(json.as_bytes()).unwrap()
    }

    fn soon() -> Instant {
        Instant::now() + Duration::from_secs(5)
    }

    #[tokio::test]
    async fn tag_alias_and_intent_select_routes() {
        let d = Dispatcher::new(vec![
            Route::new("a", Echo("A")).alias("a-old").intent("intent.a"),
            Route::new("b", Echo("B")),
        ])
        .unwrap();
        let cases = [
            (r#"{"fulfillmentInfo":{"tag":"a"}}"#, "A", Outcome::Ok),
            (r#"{"fulfillmentInfo":{"tag":" a-old "}}"#, "A", Outcome::Ok),
            (r#"{"fulfillmentInfo":{"tag":"b"}}"#, "B", Outcome::Ok),
            (
                r#"{"fulfillmentInfo":{"tag":""},"intentInfo":{"displayName":"intent.a"}}"#,
                "A",
                Outcome::Ok,
            ),
            // An intent name never overrides an explicit tag.
            (
                r#"{"fulfillmentInfo":{"tag":"zzz"},"intentInfo":{"displayName":"intent.a"}}"#,
                fallback::FALLBACK_TEXT,
                Outcome::Fallback,
            ),
            (r#"{}"#, fallback::FALLBACK_TEXT, Outcome::Fallback),
        ];
        for (json, text, outcome) in cases {
            let out = d.dispatch(request(json), soon()).await;
            assert_eq!(out.response.texts(), vec![text], "{json}");
            assert_eq!(out.outcome, outcome, "{json}");
        }
    }

    #[test]
    fn duplicate_tags_are_refused() {
        let err = Dispatcher::new(vec![Route::new("a", Echo("1")), Route::new("a", Echo("2"))]);
        assert!(err.is_err());
    }

    async fn panics(_call: Call) -> Reply {
        panic!("boom")
    }

    #[tokio::test]
    async fn a_panicking_handler_gets_a_graceful_answer() {
        let d = Dispatcher::new(vec![Route::new("p", panics)]).unwrap();
        let out = d
            .dispatch(request(r#"{"fulfillmentInfo":{"tag":"p"}}"#), soon())
            .await;
        assert_eq!(out.outcome, Outcome::Panic);
        assert_eq!(out.response.texts(), vec![ERROR_TEXT]);
    }
}
