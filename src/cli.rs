//! The command line: `cx-webhook [serve] [OPTIONS]`, `cx-webhook db ...` and `cx-webhook send ...`.
//! Every setting is a flag and an environment variable of the same name (`--auth-mode` /
//! `AUTH_MODE`, shown in the help), which is how Cloud Run configures the service.
//!
//! `-h`/`--help` lists the settings one needs to start; `--help-all` lists every setting with its
//! full description. A subcommand's help lists only the flags it uses.

use std::process::ExitCode;
use std::sync::Arc;

use clap::{ArgAction, CommandFactory, FromArgMatches, Parser, Subcommand};

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
#[command(args_conflicts_with_subcommands = true, disable_help_flag = true)]
#[command(
    after_help = "--help-all lists every setting; each flag is also an environment variable."
)]
pub struct Cli {
    /// What to do; `serve` when omitted.
    #[command(subcommand)]
    pub command: Option<Command>,

    /// The help flags (first, so that they are listed under "Options").
    #[command(flatten)]
    pub help: HelpArgs,

    /// Settings of `serve`, accepted without the subcommand too.
    #[command(flatten)]
    pub serve: ServeArgs,

    /// Logging settings.
    #[command(flatten, next_help_heading = "Logging")]
    pub log: LogArgs,
}

/// `--help` shows the common settings, `--help-all` every one (clap's `-h`/`--help` pair made
/// explicit, so that the short one is `--help`).
#[derive(Debug, clap::Args)]
pub struct HelpArgs {
    /// Print help (the common settings; --help-all lists every one).
    #[arg(short = 'h', long = "help", action = ArgAction::HelpShort, global = true, display_order = 1000)]
    help: Option<bool>,

    /// Print help with every setting and its full description.
    #[arg(long = "help-all", action = ArgAction::HelpLong, global = true, display_order = 1001)]
    help_all: Option<bool>,
}

/// Global flags that `send` ignores: still accepted there (a script that passes them keeps
/// working), but not shown in `send --help`.
const IGNORED_BY_SEND: &[&str] = &["database_path", "project_id"];

/// The command-line definition, with each subcommand's help limited to the flags it uses.
pub fn command() -> clap::Command {
    let command = Cli::command();
    // A subcommand that already has an argument of a global's id keeps its own: give `send`
    // hidden copies of the globals it ignores.
    let hidden: Vec<clap::Arg> = command
        .get_arguments()
        .filter(|arg| IGNORED_BY_SEND.contains(&arg.get_id().as_str()))
        .map(|arg| arg.clone().hide(true))
        .collect();
    command.mut_subcommand("send", |send| send.args(hidden))
}

/// Parses the command line (exits with clap's message and status 2 on an error, 0 after help).
pub fn parse() -> Cli {
    let matches = command().get_matches();
    Cli::from_arg_matches(&matches).unwrap_or_else(|e| e.exit())
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
    Send(Box<SendArgs>),
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
    let cli = parse();
    // `send` logs to stderr: its stdout is the webhook's answer, kept parseable.
    let init = match cli.command {
        Some(Command::Send(_)) => telemetry::init_stderr(&cli.log),
        _ => telemetry::init(&cli.log),
    };
    // Held to the end: dropping it writes out the log lines still queued.
    let _log_guard = match init {
        Ok(guard) => guard,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(2);
        }
    };
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
    if !matches!(action, DbAction::Init { .. }) && !path.exists() {
        eprintln!(
            "cx-webhook: {} does not exist. Create it with the demo data: `cx-webhook db init \
             --seed` (from a checkout: `cargo run -- db init --seed`), or point --database-path \
             (DATABASE_PATH) at an existing file.",
            path.display()
        );
        return ExitCode::FAILURE;
    }
    let result = match action {
        DbAction::Init { seed } => {
            Store::open(path, Create::IfMissing { seed: *seed }).and_then(|(s, opened)| {
                let reseeded = *seed && opened != Opened::Created;
                if reseeded {
                    s.seed()?;
                }
                emit(&format!(
                    "{}: {}\n",
                    path.display(),
                    describe_init(opened, *seed)
                ));
                Ok(s)
            })
        }
        DbAction::Seed => Store::open(path, Create::Never).and_then(|(s, _)| {
            s.seed()?;
            emit(&format!(
                "{}: demo data rewritten (bookings kept)\n",
                path.display()
            ));
            Ok(s)
        }),
        DbAction::Check => Store::open(path, Create::Never).map(|(s, _)| s),
        DbAction::Migrate => Store::open(path, Create::Never).map(|(s, opened)| {
            let done = match opened {
                Opened::Migrated(from) => format!("schema migrated from version {from}"),
                _ => "schema already up to date".to_owned(),
            };
            emit(&format!(
                "{}: {done}
",
                path.display()
            ));
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
            let mut report = format!(
                "integrity: ok (schema version {})\n",
                store::schema::SCHEMA_VERSION
            );
            for (table, n) in counts {
                report.push_str(&format!("{table:>16}: {n}\n"));
            }
            emit(&report);
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

/// Writes to stdout; a reader that went away (`db check | head -1`) is no reason to panic.
fn emit(text: &str) {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    let _ = out.write_all(text.as_bytes()).and_then(|()| out.flush());
}

/// What `db init` did: to the schema, and (with `--seed`) to the demo data.
fn describe_init(opened: Opened, seed: bool) -> String {
    let schema = match opened {
        Opened::Created if seed => return "created, with the demo data".into(),
        Opened::Created => {
            return "created, without data (`cx-webhook db seed` writes the demo data)".into();
        }
        Opened::Existing => "schema already up to date".to_owned(),
        Opened::Migrated(from) => format!("schema migrated from version {from}"),
    };
    if seed {
        format!("{schema}; demo data rewritten (bookings kept)")
    } else {
        format!("{schema}; data unchanged")
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

/// Reports why `serve` cannot start, each reason once: one plain line per reason on stderr (what a
/// person at a terminal or a platform's log reads), and one ERROR log event that only counts them,
/// so that a terminal or a log collecting both streams does not show every reason twice.
fn refuse_to_start(what: &str, reasons: &[String], code: ExitCode) -> ExitCode {
    for reason in reasons {
        eprintln!("cx-webhook: {reason}");
    }
    tracing::error!(
        reasons = reasons.len(),
        "refusing to start: {what} (reasons on stderr)"
    );
    code
}

/// Says at start who the service accepts (a warning for `AUTH_MODE=none`).
fn log_auth_mode(auth: &AuthConfig) {
    match auth {
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
}

fn serve(args: &ServeArgs) -> ExitCode {
    let config = match Config::from_args(args) {
        Ok(config) => config,
        Err(errors) => return refuse_to_start("invalid settings", &errors.0, ExitCode::from(2)),
    };
    // Read the system's root certificates beside the start-up, not on its way.
    crate::tls::preload();
    let store = match open_store(&config.database_path) {
        Ok(store) => store,
        Err(e) => {
            let reason = telemetry::error_chain(&e);
            return refuse_to_start("cannot use the database", &[reason], ExitCode::from(2));
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            let reason = format!("cannot start the async runtime: {e}");
            return refuse_to_start("no runtime", &[reason], ExitCode::FAILURE);
        }
    };
    runtime.block_on(async move {
        log_auth_mode(&config.auth);
        let listen = config.listen;
        let app = match App::build(config, store).await {
            Ok(app) => Arc::new(app),
            Err(e) => {
                let reason = format!("cannot build the service: {}", telemetry::error_chain(&e));
                // A booking schema newer than this build: a setting to fix (roll forward), like
                // invalid settings, not a transient failure.
                let code = if e.is_newer_schema() {
                    ExitCode::from(2)
                } else {
                    ExitCode::FAILURE
                };
                return refuse_to_start("cannot build the service", &[reason], code);
            }
        };
        let listener = match tokio::net::TcpListener::bind(listen).await {
            Ok(l) => l,
            Err(e) => {
                let reason = format!("cannot listen on {listen}: {e}");
                return refuse_to_start("cannot listen", &[reason], ExitCode::FAILURE);
            }
        };
        let shutdown = match server::shutdown_signal() {
            Ok(signal) => signal,
            Err(e) => {
                let reason = format!("cannot install signal handlers: {e}");
                return refuse_to_start("no signal handlers", &[reason], ExitCode::FAILURE);
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

#[cfg(test)]
mod tests {
    use super::*;

    /// Every argument of `command`, its subcommands included.
    fn all_args(command: &clap::Command) -> Vec<clap::Arg> {
        let mut args: Vec<clap::Arg> = command.get_arguments().cloned().collect();
        for sub in command.get_subcommands() {
            args.extend(all_args(sub));
        }
        args
    }

    #[test]
    fn every_flag_is_named_after_its_variable() {
        let command = command();
        command.clone().debug_assert();
        let mut checked = 0;
        for arg in all_args(&command) {
            let Some(env) = arg.get_env() else { continue };
            let env = env.to_string_lossy();
            let flag = arg.get_long().unwrap_or_default();
            assert_eq!(
                flag,
                env.to_ascii_lowercase().replace('_', "-"),
                "--{flag} is set by {env}"
            );
            checked += 1;
        }
        assert!(checked > 30, "{checked}");
    }

    fn help(args: &[&str]) -> String {
        let err = command()
            .try_get_matches_from(std::iter::once("cx-webhook").chain(args.iter().copied()))
            .unwrap_err();
        assert!(
            matches!(
                err.kind(),
                clap::error::ErrorKind::DisplayHelp
                    | clap::error::ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand
            ),
            "{err}"
        );
        err.render().to_string()
    }

    #[test]
    fn help_is_short_and_help_all_lists_everything() {
        let short = help(&["--help"]);
        assert_eq!(short, help(&["-h"]));
        assert!(short.contains("--auth-mode"), "{short}");
        assert!(!short.contains("--weather-timeout-ms"), "{short}");
        let all = help(&["--help-all"]);
        assert!(all.contains("--weather-timeout-ms"), "{all}");
        assert!(short.lines().count() * 3 < all.lines().count(), "{short}");
    }

    #[test]
    fn send_help_lists_only_what_send_uses() {
        for flag in ["--help", "--help-all"] {
            let help = help(&["send", flag]);
            for own in [
                "--webhook-url",
                "--tag",
                "--param",
                "--webhook-token",
                "--user",
                "--dev-idp-url",
                "--rust-log",
            ] {
                assert!(help.contains(own), "{own} missing:\n{help}");
            }
            for ignored in [
                "--database-path",
                "--google-cloud-project",
                "--auth-mode",
                "--port",
            ] {
                assert!(!help.contains(ignored), "{ignored} shown:\n{help}");
            }
        }
    }

    #[test]
    fn send_still_accepts_the_globals_it_ignores_and_the_old_spellings() {
        let cli = Cli::from_arg_matches(
            &command()
                .try_get_matches_from([
                    "cx-webhook",
                    "send",
                    "--database-path",
                    "x.db",
                    "--project-id",
                    "p",
                    "--url",
                    "http://127.0.0.1:1/w",
                    "--token",
                    "adc",
                    "--log-filter",
                    "debug",
                ])
                .unwrap(),
        )
        .unwrap();
        let Some(Command::Send(send)) = cli.command else {
            panic!("{:?}", cli.command)
        };
        assert_eq!(send.url, "http://127.0.0.1:1/w");
        assert!(matches!(send.token, crate::send::TokenSource::Adc));
        assert_eq!(cli.log.log_filter, "debug");
    }
}
