//! The assembled service: validated configuration, the authenticator and the dispatch table, built
//! once at start and shared by every connection.

use crate::auth::{Authenticator, SetupError};
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

/// Why the service could not be assembled.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    /// Two routes claim the same tag or intent.
    #[error(transparent)]
    Routes(#[from] DuplicateRoute),
    /// The authenticator could not start.
    #[error(transparent)]
    Auth(#[from] SetupError),
}

impl App {
    /// Builds the service for `config` with the standard dispatch table. Must run inside the tokio
    /// runtime (the ID-token modes start fetching Google's keys).
    pub fn build(config: Config) -> Result<App, BuildError> {
        let deps = Deps::default();
        let dispatcher = Dispatcher::new(handlers::table(&deps))?;
        App::new(config, dispatcher)
    }

    /// Assembles the service from parts (tests pass their own dispatcher).
    pub fn new(config: Config, dispatcher: Dispatcher) -> Result<App, BuildError> {
        let auth = Authenticator::from_config(&config.auth)?;
        Ok(App {
            config,
            auth,
            dispatcher,
        })
    }
}
