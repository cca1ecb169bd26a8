//! The assembled service: validated configuration, the authenticator and the dispatch table, built
//! once at start and shared by every connection.
//!
//! [`App::deps`] is the one place where configuration becomes clients: one shared outbound HTTP
//! client and the cached weather service.

use std::sync::Arc;

use crate::auth::Authenticator;
use crate::clients::weather::{CacheTtl, OpenMeteo, Weather};
use crate::config::Config;
use crate::handlers::{self, Deps, Dispatcher, DuplicateRoute};

/// Everything a request needs, shared read-only across connections.
pub struct App {
    /// The configuration the server runs with.
    pub config: Config,
    /// Decides who may call the webhook.
    pub auth: Authenticator,
    /// Routes calls to handlers.
    pub dispatcher: Dispatcher,
}

/// The service could not be assembled.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    /// The shared outbound HTTP client could not be built (TLS setup).
    #[error("cannot build the outbound HTTP client")]
    Http(#[source] reqwest::Error),
    /// The dispatch table is inconsistent.
    #[error(transparent)]
    Routes(#[from] DuplicateRoute),
}

impl App {
    /// Builds the service for `config` with the standard dispatch table.
    pub async fn build(config: Config) -> Result<App, BuildError> {
        let deps = App::deps(&config).await?;
        let dispatcher = Dispatcher::new(handlers::table(&deps))?;
        Ok(App::new(config, dispatcher))
    }

    /// Builds the handlers' dependencies from `config`. Async because clients that hold
    /// credentials start refresh tasks on the runtime.
    pub async fn deps(config: &Config) -> Result<Deps, BuildError> {
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
        Ok(Deps {
            weather: Arc::new(Weather::new(provider, ttl)),
        })
    }

    /// Assembles the service from parts (tests pass their own dispatcher).
    pub fn new(config: Config, dispatcher: Dispatcher) -> App {
        let auth = Authenticator::from_config(&config.auth);
        App {
            config,
            auth,
            dispatcher,
        }
    }
}
