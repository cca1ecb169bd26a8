//! Typed configuration: every setting is a flag and an environment variable of the same name
//! (`--webhook-deadline-ms` / `WEBHOOK_DEADLINE_MS`, one clap definition), validated once at start
//! into a [`Config`] that the rest of the service trusts.
//!
//! One module per concern, each holding its clap arguments, its defaults (stated once, as
//! constants the arguments, [`Config::local`] and the `Default`s share), its validation and its
//! validated type:
//! - [`server`]: where to listen, webhook paths, limits, timeouts; the database file;
//! - [`auth`]: `AUTH_MODE` and what each mode needs;
//! - [`weather`]: the weather provider; [`booking`]: the remote booking API;
//! - [`booking_store`]: where bookings live (`BOOKING_STORE`, the PostgreSQL settings);
//! - [`secret`]: [`Secret`], a value that never appears in `Debug` output;
//! - `url`: the one validator of URL settings.
//!
//! Validation collects *every* problem and reports one line each, so a misconfigured deployment is
//! fixed in one round.

pub mod auth;
pub mod booking;
pub mod booking_store;
pub mod connections;
pub mod identity;
pub mod secret;
pub mod server;
mod url;
pub mod weather;

use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::Args;

pub use auth::{
    ApiKeyConfig, AuthArgs, AuthConfig, AuthMode, GOOGLE_JWKS_URL, JwksConfig, MAX_LEEWAY_SECS,
    MAX_TOKEN_CACHE_SIZE, MIN_API_KEY_CHARS, OidcConfig,
};
pub use booking::{BookingApiArgs, BookingApiConfig};
pub use booking_store::{BookingStoreArgs, BookingStoreConfig, BookingStoreKind};
pub use connections::{ConnectionArgs, ConnectionConfig};
pub use identity::{AccountAccess, EndUserArgs, IdentityArgs, IdentityConfig};
pub use secret::Secret;
pub use server::{ServerArgs, StoreArgs};
pub use weather::{WeatherArgs, WeatherConfig};

/// Settings of `cx-webhook serve` (also accepted without the subcommand), as given.
#[derive(Debug, Clone, Args)]
pub struct ServeArgs {
    /// The database.
    #[command(flatten)]
    pub store: StoreArgs,

    /// Where to listen, paths, limits and timeouts.
    #[command(flatten)]
    pub server: ServerArgs,

    /// Connection limits.
    #[command(flatten)]
    pub connections: ConnectionArgs,

    /// Who may call.
    #[command(flatten)]
    pub auth: AuthArgs,

    /// Who may read account data.
    #[command(flatten)]
    pub identity: IdentityArgs,

    /// The end user's signed ID token.
    #[command(flatten)]
    pub end_user: EndUserArgs,

    /// Weather provider settings.
    #[command(flatten)]
    pub weather: WeatherArgs,

    /// Remote booking API settings.
    #[command(flatten)]
    pub booking_api: BookingApiArgs,
}

/// The validated configuration the server runs with.
#[derive(Debug, Clone)]
pub struct Config {
    /// Socket address to listen on.
    pub listen: SocketAddr,
    /// Webhook path prefixes (each starts with `/`, none ends with `/`).
    pub webhook_paths: Vec<String>,
    /// Largest accepted request body.
    pub max_body_bytes: usize,
    /// HTTP/1 header read timeout.
    pub header_read_timeout: Duration,
    /// Request body read timeout.
    pub body_read_timeout: Duration,
    /// Per-call answer budget.
    pub deadline: Duration,
    /// Grace period for in-flight requests at shutdown.
    pub shutdown_grace: Duration,
    /// Connection limits.
    pub connections: ConnectionConfig,
    /// Authentication settings.
    pub auth: AuthConfig,
    /// End-user identity settings (who may read account data).
    pub identity: IdentityConfig,
    /// The SQLite database file.
    pub database_path: PathBuf,
    /// Weather provider settings.
    pub weather: WeatherConfig,
    /// The remote booking API, when configured.
    pub booking_api: Option<BookingApiConfig>,
    /// Where bookings live (SQLite file or PostgreSQL).
    pub booking_store: BookingStoreConfig,
}

/// Every problem found in the settings, one line each.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigErrors(pub Vec<String>);

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, line) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{line}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigErrors {}

impl Config {
    /// The defaults, for tests and local embedding, except: loopback, port 0 (ephemeral),
    /// authentication off.
    pub fn local() -> Self {
        use server::*;
        Config {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            webhook_paths: vec![DEFAULT_WEBHOOK_PATH.into()],
            max_body_bytes: DEFAULT_MAX_BODY_BYTES,
            header_read_timeout: Duration::from_secs(DEFAULT_HEADER_READ_TIMEOUT_SECS),
            body_read_timeout: Duration::from_secs(DEFAULT_BODY_READ_TIMEOUT_SECS),
            deadline: Duration::from_millis(DEFAULT_WEBHOOK_DEADLINE_MS),
            shutdown_grace: Duration::from_secs(DEFAULT_SHUTDOWN_GRACE_SECS),
            connections: ConnectionConfig::default(),
            auth: AuthConfig::None,
            identity: IdentityConfig::default(),
            database_path: PathBuf::from(DEFAULT_DATABASE_PATH),
            weather: WeatherConfig::default(),
            booking_api: None,
            booking_store: BookingStoreConfig::Sqlite,
        }
    }

    /// Validates the command-line/environment settings.
    pub fn from_args(args: &ServeArgs) -> Result<Config, ConfigErrors> {
        let mut problems = Vec::new();
        let server = &args.server;
        let webhook_paths = server.webhook_paths(&mut problems);
        server.check_limits(&mut problems);
        let connections = args.connections.validate(&mut problems);
        if args.store.database_path.as_os_str().is_empty() {
            problems.push("DATABASE_PATH: empty".into());
        }
        let auth = args.auth.validate(&mut problems);
        let on_cloud_run = args
            .auth
            .k_service
            .as_deref()
            .is_some_and(|s| !s.is_empty());
        let end_user = args.end_user.validate(
            Duration::from_secs(args.auth.auth_leeway_secs),
            args.auth.auth_token_cache_size,
            &mut problems,
        );
        let identity = args
            .identity
            .validate(on_cloud_run, end_user, &mut problems);
        let weather = args
            .weather
            .validate(server.webhook_deadline_ms, &mut problems);
        let booking_api = args.booking_api.validate(&mut problems);
        let booking_store = BookingStoreConfig::from_args(&args.store.booking, &mut problems);

        match (auth, weather, booking_store) {
            (Some(auth), Some(weather), Some(booking_store)) if problems.is_empty() => Ok(Config {
                listen: SocketAddr::new(server.bind, server.port),
                webhook_paths,
                max_body_bytes: server.max_body_bytes,
                header_read_timeout: Duration::from_secs(server.header_read_timeout_secs),
                body_read_timeout: Duration::from_secs(server.body_read_timeout_secs),
                deadline: Duration::from_millis(server.webhook_deadline_ms),
                shutdown_grace: Duration::from_secs(server.shutdown_grace_secs),
                connections,
                auth,
                identity,
                database_path: args.store.database_path.clone(),
                weather,
                booking_api,
                booking_store,
            }),
            _ => Err(ConfigErrors(problems)),
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct T {
        #[command(flatten)]
        serve: ServeArgs,
    }

    /// The settings `args` give (on top of the environment, as in production).
    pub(crate) fn parse(args: &[&str]) -> ServeArgs {
        T::try_parse_from(std::iter::once("t").chain(args.iter().copied()))
            .unwrap()
            .serve
    }

    #[test]
    fn auth_mode_must_be_explicit() {
        let mut args = parse(&[]);
        args.auth.auth_mode = None;
        let err = Config::from_args(&args).unwrap_err();
        assert!(
            err.0.iter().any(|l| l.starts_with("AUTH_MODE is not set")),
            "{err}"
        );
    }

    #[test]
    fn none_is_refused_on_cloud_run() {
        let mut args = parse(&["--auth-mode", "none"]);
        args.auth.k_service = Some("cx-webhook".into());
        let err = Config::from_args(&args).unwrap_err();
        assert!(err.to_string().contains("refused on Cloud Run"), "{err}");
    }

    #[test]
    fn every_problem_is_reported_once() {
        let mut args = parse(&["--auth-mode", "none", "--webhook-paths", "hook,/health,/"]);
        args.server.webhook_deadline_ms = 40_000;
        args.server.max_body_bytes = 10;
        let err = Config::from_args(&args).unwrap_err();
        assert_eq!(err.0.len(), 5, "{err}");
    }

    #[test]
    fn old_flag_spellings_still_work() {
        let args = parse(&["--webhook-path", "/a,/b", "--deadline-ms", "1234"]);
        assert_eq!(args.server.webhook_paths, ["/a", "/b"]);
        assert_eq!(args.server.webhook_deadline_ms, 1234);
    }

    #[test]
    fn defaults_are_cloud_run_friendly() {
        let mut args = parse(&["--auth-mode", "none"]);
        args.auth.k_service = None;
        args.server.port = 8080;
        args.server.bind = "0.0.0.0".parse().unwrap();
        let c = Config::from_args(&args).unwrap();
        assert_eq!(c.listen, "0.0.0.0:8080".parse().unwrap());
        assert_eq!(c.deadline, Duration::from_millis(4500));
        assert_eq!(c.shutdown_grace, Duration::from_secs(8));
        assert_eq!(c.webhook_paths, vec!["/webhook".to_string()]);
    }

    #[test]
    fn the_flag_defaults_are_the_local_defaults() {
        let mut args = parse(&["--auth-mode", "none"]);
        args.auth.k_service = None;
        let parsed = Config::from_args(&args).unwrap();
        let local = Config::local();
        // Config::local differs in where it listens only.
        let listen = SocketAddr::new(server::DEFAULT_BIND, server::DEFAULT_PORT);
        assert_eq!(parsed.listen, listen);
        assert_eq!(
            format!("{:?}", Config { listen, ..local }),
            format!("{parsed:?}")
        );
    }

    #[test]
    fn the_api_key_never_shows_in_debug_output() {
        let args = parse(&[
            "--auth-mode",
            "api-key",
            "--auth-api-key",
            "0123456789abcdef-secret",
        ]);
        assert!(!format!("{args:?}").contains("0123456789abcdef"));
        let mut args = args;
        args.auth.k_service = None;
        let config = Config::from_args(&args).unwrap();
        assert!(!format!("{config:?}").contains("0123456789abcdef"));
    }
}
