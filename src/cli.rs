//! The command line: `cx-webhook [serve] [OPTIONS]`. Every option is also an environment variable
//! (shown in `--help`), which is how Cloud Run configures the service.

use std::process::ExitCode;
use std::sync::Arc;

use clap::{Parser, Subcommand};

use crate::app::App;
use crate::config::{AuthConfig, Config, ServeArgs};
use crate::server;
use crate::telemetry::{self, LogArgs};

/// A Dialogflow CX webhook for Google Cloud Run.
#[derive(Debug, Parser)]
#[command(name = "cx-webhook", version, about, long_about = None)]
#[command(args_conflicts_with_subcommands = true)]
pub struct Cli {
    /// What to do; `serve` when omitted.
    #[command(subcommand)]
    pub command: Option<Command>,

    /// Settings of `serve`, accepted without the subcommand too.
    #[command(flatten)]
    pub serve: ServeArgs,

    /// Logging settings.
    #[command(flatten)]
    pub log: LogArgs,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve webhook calls over HTTP (the default).
    Serve(ServeArgs),
}

/// Parses the command line, sets up logging and runs the chosen command.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Err(e) = telemetry::init(&cli.log) {
        eprintln!("{e}");
        return ExitCode::from(2);
    }
    match cli.command {
        Some(Command::Serve(args)) => serve(&args),
        None => serve(&cli.serve),
    }
}

fn serve(args: &ServeArgs) -> ExitCode {
    let config = match Config::from_args(args) {
        Ok(config) => config,
        Err(errors) => {
            for line in &errors.0 {
                tracing::error!("{line}");
                eprintln!("cx-webhook: {line}");
            }
            return ExitCode::from(2);
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            tracing::error!(error = %e, "cannot start the async runtime");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(async move {
        match &config.auth {
            AuthConfig::None => tracing::warn!(
                "AUTH_MODE=none: every caller is accepted. Use this only on your own machine."
            ),
            AuthConfig::CloudRunIam(oidc) => tracing::info!(
                allowed_emails = ?oidc.allowed_emails,
                audiences = ?oidc.audiences,
                "AUTH_MODE=cloud-run-iam trusts Cloud Run IAM to verify token signatures: deploy \
                 with --no-allow-unauthenticated, or anyone can forge a stripped token"
            ),
            AuthConfig::GoogleOidc(oidc) => tracing::info!(
                allowed_emails = ?oidc.allowed_emails,
                audiences = ?oidc.audiences,
                jwks_url = %oidc.jwks.url,
                "verifying Google ID tokens"
            ),
            AuthConfig::ApiKey(api_key) => {
                tracing::info!(header = %api_key.header, "checking an API key header")
            }
        }
        let listen = config.listen;
        let app = match App::build(config) {
            Ok(app) => Arc::new(app),
            Err(e) => {
                tracing::error!(error = %e, "cannot build the service");
                return ExitCode::FAILURE;
            }
        };
        let listener = match tokio::net::TcpListener::bind(listen).await {
            Ok(l) => l,
            Err(e) => {
                tracing::error!(%listen, error = %e, "cannot listen");
                eprintln!("cx-webhook: cannot listen on {listen}: {e}");
                return ExitCode::FAILURE;
            }
        };
        match server::run(listener, app, server::shutdown_signal()).await {
            Ok(()) => {
                tracing::info!("stopped");
                ExitCode::SUCCESS
            }
            Err(e) => {
                tracing::error!(error = %e, "server failed");
                ExitCode::FAILURE
            }
        }
    })
}
