//! The integration tests: one binary with one module per feature (the shape of zero-to-production's
//! `tests/api/`), all sharing `tests/common`.

#[path = "../common/mod.rs"]
mod common;

mod accounts;
mod auth;
mod booking;
mod catalog;
mod conn_memory;
mod database;
mod db_cli;
mod dispatch;
mod docs;
mod edges;
mod http;
mod identity;
mod pg;
mod postgres;
mod postgres_e2e;
mod send;
mod shutdown;
mod store;
mod tools;
mod weather;
