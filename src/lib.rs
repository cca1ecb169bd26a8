//! cx-webhook: a Dialogflow CX webhook service for Google Cloud Run.
//!
//! Crate map (dependencies point down this list, never up):
//! - [`cli`]: the command line (`serve`, the default; `db`; `send`); the binary's `main` only calls it.
//! - [`send`]: `cx-webhook send`, a client that posts a `WebhookRequest` as Dialogflow would.
//! - [`config`]: typed settings from flags and environment, validated at start.
//! - [`telemetry`]: Cloud Logging JSON lines, trace correlation.
//! - [`server`]: hyper accept loop, routes, body limits, graceful shutdown.
//! - [`app`]: the assembled service shared by all connections.
//! - [`auth`]: who may call (the `AUTH_MODE` modes).
//! - [`handlers`]: the tag dispatch table and one module per capability.
//! - [`store`]: the SQLite file: schema, demo data, typed queries (the only module that knows SQL).
//! - [`domain`]: newtypes shared by store and handlers (`AccountId`, `Money`, `VehicleNumber`).
//! - [`clients`]: outbound HTTP (weather provider, remote booking API); knows nothing of Dialogflow.
//! - [`cx`]: the Dialogflow CX wire model (depends on nothing of ours).
//!
//! A request flows: server (route, auth, body) -> cx (parse) -> handlers (dispatch under a deadline,
//! calling clients) -> cx (bounded JSON answer).

pub mod app;
pub mod auth;
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

pub use app::App;
pub use config::Config;
