//! Connection limits (`MAX_CONNECTIONS`, `IDLE_TIMEOUT_SECS`): how many connections stay open and
//! how long an idle one lives, so silent or abandoned sockets cannot exhaust file descriptors.

use std::time::Duration;

use clap::Args;

/// Default `IDLE_TIMEOUT_SECS`.
pub const DEFAULT_IDLE_TIMEOUT_SECS: u64 = 60;

/// The largest accepted `MAX_CONNECTIONS`.
pub const MAX_MAX_CONNECTIONS: usize = 1_000_000;

/// Settings of the connection layer, as given.
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "Server")]
pub struct ConnectionArgs {
    /// Most connections open at once; 0 (the default) derives it from the file-descriptor limit
    /// (RLIMIT_NOFILE minus 128). At the cap, the oldest connections that have not sent a complete
    /// request yet are closed to make room.
    #[arg(
        long,
        env,
        value_name = "N",
        hide_short_help = true,
        default_value_t = 0
    )]
    pub max_connections: usize,

    /// Seconds a connection that has served requests may stay open with none in flight (h2c;
    /// HTTP/1 keep-alive waits at most HEADER_READ_TIMEOUT_SECS for the next request head).
    #[arg(long, env, value_name = "SECS", hide_short_help = true, default_value_t = DEFAULT_IDLE_TIMEOUT_SECS)]
    pub idle_timeout_secs: u64,
}

/// Connection limits, validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectionConfig {
    /// The connection cap; `None` derives it from RLIMIT_NOFILE at start.
    pub max_connections: Option<usize>,
    /// How long a connection that has served requests may stay open with none in flight.
    pub idle_timeout: Duration,
}

impl Default for ConnectionConfig {
    fn default() -> Self {
        ConnectionConfig {
            max_connections: None,
            idle_timeout: Duration::from_secs(DEFAULT_IDLE_TIMEOUT_SECS),
        }
    }
}

impl ConnectionArgs {
    /// Checks the limits, one problem line each.
    pub fn validate(&self, problems: &mut Vec<String>) -> ConnectionConfig {
        if self.max_connections > MAX_MAX_CONNECTIONS {
            problems.push(format!(
                "MAX_CONNECTIONS: {} is more than {MAX_MAX_CONNECTIONS} (0 derives it from the \
                 file-descriptor limit)",
                self.max_connections
            ));
        }
        if !(1..=3600).contains(&self.idle_timeout_secs) {
            problems.push(format!(
                "IDLE_TIMEOUT_SECS: {} is outside 1..=3600",
                self.idle_timeout_secs
            ));
        }
        ConnectionConfig {
            max_connections: (self.max_connections > 0).then_some(self.max_connections),
            idle_timeout: Duration::from_secs(self.idle_timeout_secs),
        }
    }
}
