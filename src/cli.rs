//! The command line: `cx-webhook [serve] [OPTIONS]`, `cx-webhook db ...` and `cx-webhook send ...`.
//! Every option is also an environment variable (shown in `--help`), which is how Cloud Run
//! configures the service.

use std::process::ExitCode;
use std::sync::Arc;

use clap::{Parser, Subcommand};

use crate::app::App;
use crate::config::booking_store::{BookingStoreConfig, BookingStoreKind};
use crate::config::{AuthConfig, Config, ServeArgs, StoreArgs};
use crate::send::{self, SendArgs};
use crate::server;
use crate::store::postgres::{self, PostgresBookings};
use crate::store::{self, Create, Opened, Store};
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
    Serve(Box<ServeArgs>),
    /// Manage the SQLite database (and, with BOOKING_STORE=postgres, the PostgreSQL bookings).
    Db {
        /// What to do.
        #[command(subcommand)]
        action: DbAction,
        /// The database.
        #[command(flatten)]
        store: StoreArgs,
    },
    /// Post one WebhookRequest to a webhook as Dialogflow would, and print the answer.
    ///
    /// The status line and latency go to stderr, the answer to stdout. Exit code: 0 for a 2xx
    /// answer, 1 for any other status, 2 when nothing could be sent.
    Send(SendArgs),
}

/// `cx-webhook db ...`.
#[derive(Debug, Subcommand)]
pub enum DbAction {
    /// Create the database file and schema (or migrate an older one).
    Init {
        /// Also write the demo data.
        #[arg(long)]
        seed: bool,
    },
    /// Write (or rewrite) the demo data into an existing database; bookings are kept.
    Seed,
    /// Run SQLite's integrity check and print row counts; with BOOKING_STORE=postgres also check
    /// that PostgreSQL answers and its schema is not newer than this build (exit code 2 if it is).
    Check,
    /// Bring the booking schema up to date: SQLite's file, or with BOOKING_STORE=postgres the
    /// PostgreSQL schema (under an advisory lock, safe beside running instances).
    Migrate,
}

/// Parses the command line, sets up logging and runs the chosen command.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    // `send` logs to stderr: its stdout is the webhook's answer, kept parseable.
    let init = match cli.command {
        Some(Command::Send(_)) => telemetry::init_stderr(&cli.log),
        _ => telemetry::init(&cli.log),
    };
    if let Err(e) = init {
        eprintln!("{e}");
        return ExitCode::from(2);
    }
    match cli.command {
        Some(Command::Serve(args)) => serve(&args),
        Some(Command::Db { action, store }) => db(&action, &store),
        Some(Command::Send(args)) => send::main(&args),
        None => serve(&cli.serve),
    }
}

fn db(action: &DbAction, args: &StoreArgs) -> ExitCode {
    let postgres = args.booking.booking_store == BookingStoreKind::Postgres;
    if matches!(action, DbAction::Migrate) && postgres {
        return postgres_db(args, true);
    }
    let path = &args.database_path;
    let result = match action {
        DbAction::Init { seed } => {
            Store::open(path, Create::IfMissing { seed: *seed }).and_then(|(s, opened)| {
                if *seed && opened != Opened::Created {
                    s.write_now(store::seed::seed)?;
                }
                println!("{}: {}", path.display(), describe(opened));
                Ok(s)
            })
        }
        DbAction::Seed => Store::open(path, Create::Never).and_then(|(s, _)| {
            s.write_now(store::seed::seed)?;
            println!("{}: demo data written", path.display());
            Ok(s)
        }),
        DbAction::Check => Store::open(path, Create::Never).map(|(s, _)| s),
        DbAction::Migrate => Store::open(path, Create::Never).map(|(s, opened)| {
            println!("{}: {}", path.display(), describe(opened));
            s
        }),
    };
    let store = match result {
        Ok(store) => store,
        Err(e) => {
            eprintln!("cx-webhook: {}", telemetry::error_chain(&e));
            return ExitCode::FAILURE;
        }
    };
    match store.check() {
        Ok(counts) => {
            println!(
                "integrity: ok (schema version {})",
                store::schema::SCHEMA_VERSION
            );
            for (table, n) in counts {
                println!("{table:>16}: {n}");
            }
            if postgres && matches!(action, DbAction::Check) {
                return postgres_db(args, false);
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("cx-webhook: {}", telemetry::error_chain(&e));
            ExitCode::FAILURE
        }
    }
}

/// `db migrate` / `db check` against PostgreSQL. Exit code 2 for bad settings or a schema newer
/// than this build, 1 when PostgreSQL cannot be used.
fn postgres_db(args: &StoreArgs, migrate: bool) -> ExitCode {
    let mut problems = Vec::new();
    let settings = match BookingStoreConfig::from_args(&args.booking, &mut problems) {
        Some(BookingStoreConfig::Postgres(settings)) if problems.is_empty() => settings,
        _ => {
            for line in &problems {
                eprintln!("cx-webhook: {line}");
            }
            return ExitCode::from(2);
        }
    };
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("cx-webhook: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(async move {
        let shown = settings.to_string();
        let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(30);
        let result = async {
            let repo = PostgresBookings::new(*settings)?;
            if migrate {
                let m = repo.migrate(deadline).await?;
                if m.from == m.to {
                    println!("postgres {shown}: already at schema version {}", m.to);
                } else {
                    println!(
                        "postgres {shown}: migrated from schema version {} to {}",
                        m.from, m.to
                    );
                }
            }
            repo.check(deadline).await
        }
        .await;
        match result {
            Ok(status) => {
                println!("postgres {shown}: PostgreSQL {}", status.server_version);
                match status.schema_version {
                    Some(v) => println!(
                        "schema version {v} (this build: {})",
                        postgres::SCHEMA_VERSION
                    ),
                    None => {
                        println!("no schema yet (`db migrate` or the first `serve` creates it)")
                    }
                }
                if let Some(n) = status.bookings {
                    println!("{:>16}: {n}", "bookings");
                }
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!(
                    "cx-webhook: postgres {shown}: {}",
                    telemetry::error_chain(&e)
                );
                if e.is_newer_schema() {
                    ExitCode::from(2)
                } else {
                    ExitCode::FAILURE
                }
            }
        }
    })
}

fn describe(opened: Opened) -> String {
    match opened {
        Opened::Existing => "already up to date".into(),
        Opened::Migrated(from) => format!("migrated from schema version {from}"),
        Opened::Created => "created".into(),
    }
}

/// Opens the service's database, creating and seeding it when missing.
fn open_store(path: &std::path::Path) -> Result<Store, store::StoreError> {
    let (store, opened) = Store::open(path, Create::IfMissing { seed: true })?;
    match opened {
        Opened::Created => tracing::info!(
            path = %path.display(),
            "database did not exist: created it with the demo data"
        ),
        Opened::Migrated(from) => {
            tracing::info!(path = %path.display(), from, "database schema migrated")
        }
        Opened::Existing => tracing::info!(path = %path.display(), "database opened"),
    }
    if store.is_read_only() {
        tracing::warn!(
            path = %path.display(),
            "the database file is read-only: answers work, bookings will fail"
        );
    }
    Ok(store)
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
    let store = match open_store(&config.database_path) {
        Ok(store) => store,
        Err(e) => {
            let reason = telemetry::error_chain(&e);
            tracing::error!(error = %reason, "cannot use the database; refusing to start");
            eprintln!("cx-webhook: {reason}");
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
        let app = match App::build(config, store).await {
            Ok(app) => Arc::new(app),
            Err(e) => {
                let error = telemetry::error_chain(&e);
                tracing::error!(%error, "cannot build the service");
                eprintln!("cx-webhook: cannot build the service: {error}");
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
        let shutdown = match server::shutdown_signal() {
            Ok(signal) => signal,
            Err(e) => {
                tracing::error!(error = %e, "cannot install signal handlers");
                return ExitCode::FAILURE;
            }
        };
        match server::run(listener, app, shutdown).await {
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
