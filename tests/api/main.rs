//! The integration tests: one binary, one module per feature (the shape of zero-to-production's
//! `tests/api/`). The modules start the real server on an ephemeral loopback port
//! (`common::spawn_app` and its variants) or run the real binary (`common::process`), build the
//! requests they post with `common::CxRequest`, and stand in for outside services with local fakes
//! (`common::idp` for Google's keys and tokens, `common::spawn_fake`).
//!
//! A new tag's test is one file here plus its `mod` line below (a test checks that no file lacks
//! one). Run one module or one test with `cargo test --test api booking::` or
//! `cargo test --test api send::intent`.
//!
//! `tests/common` stays outside this folder because three test files are binaries of their own, each
//! for a process-wide reason stated at its top: `tests/auth_logs.rs` (log capture; tracing caches
//! each log site's interest process-wide), `tests/booking_api.rs` (sets process environment for
//! google-cloud-auth and installs a global log subscriber) and `tests/nofile.rs` (raises this
//! process's RLIMIT_NOFILE and holds 1300 sockets). `examples/dev_idp.rs` and `benches/auth.rs`
//! include `tests/common/idp.rs` too.

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
mod identity_send;
mod pg;
mod postgres;
mod postgres_e2e;
mod send;
mod shutdown;
mod store;
mod tools;
mod weather;

/// A file in `tests/api/` without its `mod` line above would never be compiled or run.
#[test]
fn every_file_here_is_a_module() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/api");
    let main = std::fs::read_to_string(format!("{dir}/main.rs")).unwrap();
    let mut missing = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let name = entry.unwrap().file_name().into_string().unwrap();
        if let Some(module) = name.strip_suffix(".rs")
            && module != "main"
            && !main.lines().any(|line| line == format!("mod {module};"))
        {
            missing.push(name);
        }
    }
    assert!(
        missing.is_empty(),
        "tests/api/main.rs lacks a `mod` line for {missing:?}"
    );
}
