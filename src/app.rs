//! The assembled service: validated configuration, the authenticator and the dispatch table, built
//! once at start and shared by every connection.
//!
//! [`App::deps`] is the one place where configuration becomes clients: the store, the booking
//! repository (`BOOKING_STORE`: the SQLite file, or PostgreSQL through [`PostgresBookings::connect`],
//! which starts without the database but refuses a schema newer than this build), one shared
//! outbound HTTP client, the cached weather service, and the booking API client when
//! `BOOKING_API_URL` is set.

use std::sync::Arc;

use crate::auth::{Authenticator, SetupError};
use crate::clients::booking_api::{BookingApiBuildError, BookingApiClient};
use crate::clients::weather::{CacheTtl, OpenMeteo, Weather};
use crate::config::{AccountAccess, BookingStoreConfig, Config};
use crate::handlers::{self, Deps, Dispatcher, DuplicateRoute};
use crate::identity::Identity;
use crate::store::Store;
use crate::store::bookings::BookingRepository;
use crate::store::pins::{PinAttempts, SqlitePins};
use crate::store::postgres::{PgError, PostgresBookings};

/// Everything a request needs, shared read-only across connections.
pub struct App {
    /// The configuration the server runs with.
    pub config: Config,
    /// Decides who may call the webhook.
    pub auth: Authenticator,
    /// Routes calls to handlers.
    pub dispatcher: Dispatcher,
    /// What the `/tools/` endpoints use (set by [`App::build`] and [`App::with_tools`]; without
    /// it `/tools/` answers 404).
    pub tools: Option<Arc<Deps>>,
}

/// The service could not be assembled.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    /// The shared outbound HTTP client could not be built (TLS setup).
    #[error("cannot build the outbound HTTP client")]
    Http(#[source] crate::clients::ClientError),
    /// The booking API client could not load its credentials.
    #[error("cannot set up the booking API client (BOOKING_API_URL)")]
    BookingApi(#[source] BookingApiBuildError),
    /// The dispatch table is inconsistent.
    #[error(transparent)]
    Routes(#[from] DuplicateRoute),
    /// The authenticator could not start.
    #[error(transparent)]
    Auth(#[from] SetupError),
    /// The PostgreSQL booking store cannot be used: its schema is newer than this build, or its
    /// TLS or credentials could not be set up (PostgreSQL merely down is not an error).
    #[error("cannot use the PostgreSQL booking store (BOOKING_DATABASE_URL)")]
    BookingStore(#[source] PgError),
}

impl BuildError {
    /// True when the booking database was migrated by a newer build: `serve` exits with code 2.
    pub fn is_newer_schema(&self) -> bool {
        matches!(self, BuildError::BookingStore(e) if e.is_newer_schema())
    }
}

impl App {
    /// Builds the service for `config` with the standard dispatch table over `store`.
    pub async fn build(config: Config, store: Store) -> Result<App, BuildError> {
        let deps = Arc::new(App::deps(&config, store).await?);
        let dispatcher = Dispatcher::new(handlers::table(&deps))?;
        Ok(App::new(config, dispatcher)?.with_tools(deps))
    }

    /// Builds the handlers' dependencies from `config`. Async because the booking API's
    /// credentials start a token refresh task on the runtime, and PostgreSQL is migrated at start
    /// when it answers within a few seconds (otherwise in the background).
    pub async fn deps(config: &Config, store: Store) -> Result<Deps, BuildError> {
        let http = crate::clients::http_client(config.deadline).map_err(BuildError::Http)?;
        let w = &config.weather;
        let provider = OpenMeteo::new(
            http.clone(),
            w.geocoding_url.clone(),
            w.forecast_url.clone(),
            w.timeout,
        );
        let ttl = CacheTtl {
            fresh: w.cache_ttl,
            stale: w.stale_ttl,
        };
        let booking_api = match &config.booking_api {
            Some(b) => Some(Arc::new(
                BookingApiClient::new(b.url.clone(), b.audience.clone(), http)
                    .await
                    .map_err(BuildError::BookingApi)?,
            )),
            None => None,
        };
        let identity = Identity::new(&config.identity)?;
        if identity.access == AccountAccess::Open {
            tracing::warn!(
                "ACCOUNT_ACCESS=open: account data is shown to anyone who names an account number \
                 (demos only)"
            );
        }
        // Bookings and PIN counters live in the same writable store, so a PIN lockout holds for
        // every instance that shares the bookings.
        let (bookings, pins): (Arc<dyn BookingRepository>, Arc<dyn PinAttempts>) =
            match &config.booking_store {
                BookingStoreConfig::Sqlite => {
                    tracing::info!(path = %store.path().display(), "bookings in the SQLite file");
                    (
                        Arc::new(store.bookings()),
                        Arc::new(SqlitePins::new(store.clone())),
                    )
                }
                BookingStoreConfig::Postgres(settings) => {
                    // `Display` of the settings leaves out the password and token.
                    tracing::info!(database = %settings, "bookings in PostgreSQL");
                    let pg = Arc::new(
                        PostgresBookings::connect((**settings).clone())
                            .await
                            .map_err(BuildError::BookingStore)?,
                    );
                    (pg.clone(), pg)
                }
            };
        Ok(Deps {
            identity: Arc::new(identity),
            pins,
            bookings,
            store,
            weather: Arc::new(Weather::new(provider, ttl)),
            booking_api,
        })
    }

    /// Assembles the service from parts (tests pass their own dispatcher). Must run inside the
    /// tokio runtime: the ID-token modes start fetching Google's keys.
    pub fn new(config: Config, dispatcher: Dispatcher) -> Result<App, BuildError> {
        let auth = Authenticator::from_config(&config.auth)?;
        Ok(App {
            config,
            auth,
            dispatcher,
            tools: None,
        })
    }

    /// Serves the `/tools/` endpoints and `/openapi.json` over `deps`.
    pub fn with_tools(mut self, deps: Arc<Deps>) -> Self {
        self.tools = Some(deps);
        self
    }
}
