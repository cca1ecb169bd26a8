//! Settings of the HTTP server (where to listen, which paths, limits and timeouts) and of the
//! database file.

use std::net::{IpAddr, Ipv4Addr};
use std::path::PathBuf;

use clap::Args;

/// Default `BIND`: every interface, as Cloud Run needs.
pub const DEFAULT_BIND: IpAddr = IpAddr::V4(Ipv4Addr::UNSPECIFIED);
/// Default `PORT` (Cloud Run injects its own).
pub const DEFAULT_PORT: u16 = 8080;
/// Default `WEBHOOK_PATHS`.
pub const DEFAULT_WEBHOOK_PATH: &str = "/webhook";
/// Default `MAX_BODY_BYTES`: 256 KiB.
pub const DEFAULT_MAX_BODY_BYTES: usize = 256 * 1024;
/// Default `HEADER_READ_TIMEOUT_SECS`.
pub const DEFAULT_HEADER_READ_TIMEOUT_SECS: u64 = 10;
/// Default `BODY_READ_TIMEOUT_SECS`.
pub const DEFAULT_BODY_READ_TIMEOUT_SECS: u64 = 10;
/// Default `WEBHOOK_DEADLINE_MS`: under Dialogflow's default webhook timeout of 5 s.
pub const DEFAULT_WEBHOOK_DEADLINE_MS: u64 = 4500;
/// Shortest `WEBHOOK_DEADLINE_MS`. The answer reserve scales down with it (a quarter of what is left
/// under 800 ms), so even this leaves a store read or a cached weather answer most of the call.
const MIN_WEBHOOK_DEADLINE_MS: u64 = 10;
/// Default `SHUTDOWN_GRACE_SECS`: Cloud Run allows 10 s after SIGTERM.
pub const DEFAULT_SHUTDOWN_GRACE_SECS: u64 = 8;
/// Default `DATABASE_PATH`.
pub const DEFAULT_DATABASE_PATH: &str = "data/cx-webhook.db";

/// Where the SQLite database lives (shared by `serve` and `db`).
#[derive(Debug, Clone, Args)]
pub struct StoreArgs {
    /// The SQLite database file. `serve` creates and seeds it when it does not exist.
    #[arg(long, env, value_name = "FILE", default_value = DEFAULT_DATABASE_PATH, global = true)]
    pub database_path: PathBuf,

    /// Where bookings live (`BOOKING_STORE`, `BOOKING_DATABASE_URL`, ...).
    #[command(flatten)]
    pub booking: super::booking_store::BookingStoreArgs,
}

/// Settings of the HTTP server, as given.
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "Server")]
pub struct ServerArgs {
    /// Address to listen on (Cloud Run needs 0.0.0.0; on your machine use 127.0.0.1).
    #[arg(long, env, value_name = "ADDR", default_value_t = DEFAULT_BIND)]
    pub bind: IpAddr,

    /// Port to listen on (Cloud Run injects PORT).
    #[arg(long, env, value_name = "PORT", default_value_t = DEFAULT_PORT)]
    pub port: u16,

    /// Path(s) that accept webhook calls, comma separated.
    ///
    /// Each also accepts sub-paths, so `/dialogflow` serves `/dialogflow/account` too.
    #[arg(
        long,
        env, value_name = "PATH,...",
        alias = "webhook-path",
        value_delimiter = ',',
        default_value = DEFAULT_WEBHOOK_PATH,
        hide_short_help = true
    )]
    pub webhook_paths: Vec<String>,

    /// Budget for answering one webhook call, in milliseconds.
    ///
    /// 10 to 29000. Keep it under the webhook timeout configured in Dialogflow (5 s by default).
    /// On overrun the caller still gets a 200 answer.
    #[arg(
        long,
        env, value_name = "MS",
        alias = "deadline-ms",
        default_value_t = DEFAULT_WEBHOOK_DEADLINE_MS,
        hide_short_help = true
    )]
    pub webhook_deadline_ms: u64,

    /// Largest accepted request body in bytes (larger ones get 413).
    #[arg(long, env, value_name = "BYTES", default_value_t = DEFAULT_MAX_BODY_BYTES, hide_short_help = true)]
    pub max_body_bytes: usize,

    /// Seconds a client may take to send a request head, counted from the connection's accept for
    /// its first request (a silent connection is closed after it) and from the last answer after.
    #[arg(long, env, value_name = "SECS", default_value_t = DEFAULT_HEADER_READ_TIMEOUT_SECS, hide_short_help = true)]
    pub header_read_timeout_secs: u64,

    /// Seconds a client may take to send the request body (then 408).
    #[arg(long, env, value_name = "SECS", default_value_t = DEFAULT_BODY_READ_TIMEOUT_SECS, hide_short_help = true)]
    pub body_read_timeout_secs: u64,

    /// Seconds in-flight requests get to finish after SIGTERM/SIGINT (Cloud Run allows 10).
    #[arg(long, env, value_name = "SECS", default_value_t = DEFAULT_SHUTDOWN_GRACE_SECS, hide_short_help = true)]
    pub shutdown_grace_secs: u64,
}

impl ServerArgs {
    /// `WEBHOOK_PATHS`, normalised (no trailing `/`), or a problem for each bad entry.
    pub(crate) fn webhook_paths(&self, problems: &mut Vec<String>) -> Vec<String> {
        let mut paths = Vec::new();
        for raw in &self.webhook_paths {
            let path = raw.trim().trim_end_matches('/');
            if !raw.trim().starts_with('/') {
                problems.push(format!(
                    "WEBHOOK_PATHS: `{raw}` must start with `/` (e.g. /webhook)"
                ));
            } else if path.is_empty() {
                problems.push(
                    "WEBHOOK_PATHS: `/` would swallow /health; use a path such as /webhook".into(),
                );
            } else if path == "/health" || path.starts_with("/health/") {
                problems.push(format!("WEBHOOK_PATHS: `{raw}` collides with /health"));
            } else if path.contains(['?', '#', ' ']) {
                problems.push(format!("WEBHOOK_PATHS: `{raw}` is not a plain path"));
            } else {
                paths.push(path.to_owned());
            }
        }
        if self.webhook_paths.is_empty() {
            problems.push("WEBHOOK_PATHS: at least one path is needed".into());
        }
        paths
    }

    /// The limits and timeouts, each within its range.
    pub(crate) fn check_limits(&self, problems: &mut Vec<String>) {
        if !(1024..=16 * 1024 * 1024).contains(&self.max_body_bytes) {
            problems.push(format!(
                "MAX_BODY_BYTES: {} is outside 1024..=16777216",
                self.max_body_bytes
            ));
        }
        if !(MIN_WEBHOOK_DEADLINE_MS..=29_000).contains(&self.webhook_deadline_ms) {
            problems.push(format!(
                "WEBHOOK_DEADLINE_MS: {} is outside {MIN_WEBHOOK_DEADLINE_MS}..=29000 (below that a call's own scheduling \
                 takes the budget; Dialogflow's webhook timeout is at most 30 s)",
                self.webhook_deadline_ms
            ));
        }
        for (name, secs) in [
            ("HEADER_READ_TIMEOUT_SECS", self.header_read_timeout_secs),
            ("BODY_READ_TIMEOUT_SECS", self.body_read_timeout_secs),
        ] {
            if !(1..=300).contains(&secs) {
                problems.push(format!("{name}: {secs} is outside 1..=300"));
            }
        }
        if self.shutdown_grace_secs > 3600 {
            problems.push(format!(
                "SHUTDOWN_GRACE_SECS: {} is more than 3600",
                self.shutdown_grace_secs
            ));
        }
    }
}
