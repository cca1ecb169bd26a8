//! The assembled service: validated configuration, the authenticator and the dispatch table, built
//! once at start and shared by every connection.

use crate::auth::Authenticator;
use crate::config::Config;
use crate::handlers::{self, Deps, Dispatcher, DuplicateRoute};
use crate::store::Store;

/// Everything a request needs, shared read-only across connections.
pub struct App {
    /// The configuration the server runs with.
    pub config: Config,
    /// Decides who may call the webhook.
    pub auth: Authenticator,
    /// Routes calls to handlers.
    pub dispatcher: Dispatcher,
}

impl App {
    /// Builds the service for `config` with the standard dispatch table over `store`.
    pub fn build(config: Config, store: Store) -> Result<App, DuplicateRoute> {
        let deps = Deps { store };
        let dispatcher = Dispatcher::new(handlers::table(&deps))?;
        Ok(App::new(config, dispatcher))
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
