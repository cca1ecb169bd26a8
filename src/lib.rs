//! cx-webhook: a Dialogflow CX webhook service for Google Cloud Run.
//!
//! Crate map (dependencies point down this list, never up):
//! - [`cli`]: the command line (`serve`, the default; `db`; `send`); the binary's `main` only calls it.
//! - [`send`]: `cx-webhook send`, a client that posts a `WebhookRequest` as Dialogflow would.
//! - [`server`]: hyper accept loop, connection limits, routes, body limits, graceful shutdown.
//! - [`tools`]: the same capabilities as `POST /tools/<name>` for generative agents, and their
//!   OpenAPI 3.0 document at `/openapi.json`; built on the handlers' rule functions.
//! - [`body`]: bodies in and out for both doors: the request-body reader (size, time and
//!   per-connection limits) and the uncached JSON answer.
//! - [`app`]: the assembled service shared by all connections (configuration becomes clients here).
//! - [`handlers`]: the tag dispatch table and one module per capability; they speak domain types
//!   and reach data only through the store's repositories.
//! - [`identity`]: who the end user is (`ACCOUNT_ACCESS`, PIN session grants, log pseudonyms).
//! - [`config`]: typed settings from flags and environment, validated at start; it builds the
//!   settings types that `auth`, `store` and `clients` own.
//! - [`auth`]: who may call (the `AUTH_MODE` modes) and end users' signed ID tokens; uses only
//!   `clients` (HTTP) of ours.
//! - [`store`]: typed repositories over the SQLite file and, for bookings and PIN counters,
//!   PostgreSQL: the only module that knows SQL.
//! - [`telemetry`]: Cloud Logging JSON lines, trace correlation.
//! - [`clients`]: outbound HTTP (weather provider, remote booking API); knows nothing of Dialogflow.
//! - [`tls`]: the one rustls configuration of outbound connections (HTTPS and PostgreSQL) and the
//!   system's root certificates, loaded once, lazily (depends on nothing of ours).
//! - [`domain`]: the business types and the user's vocabulary (depends on nothing of ours).
//! - [`cx`]: the Dialogflow CX wire model (depends on nothing of ours).
//!
//! A request flows: server (route, auth, body) -> cx (parse) -> handlers (dispatch under a deadline,
//! calling clients) -> cx (bounded JSON answer).

pub mod app;
pub mod auth;
pub mod body;
pub mod cli;
pub mod clients;
pub mod config;
pub mod cx;
pub mod domain;
pub mod handlers;
pub mod identity;
pub mod send;
pub mod server;
pub mod store;
pub mod telemetry;
pub mod tls;
pub mod tools;

pub use app::App;
pub use config::Config;
