//! Where bookings live: `BOOKING_STORE=sqlite` (the embedded default: the `DATABASE_PATH` file, one
//! instance) or `postgres` (`BOOKING_DATABASE_URL`, shared by any number of instances). Accounts,
//! dealers and prices stay in the SQLite file either way.
//!
//! `BOOKING_DATABASE_URL` is a secret (it may hold a password): it never appears in `--help` values,
//! `Debug` output or logs; [`PgSettings`]'s `Display` shows it without credentials.

use std::fmt;

use clap::{Args, ValueEnum};

use crate::store::postgres::{PgAuth, PgSettings};

/// `BOOKING_STORE`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, ValueEnum)]
pub enum BookingStoreKind {
    /// The embedded SQLite file (`DATABASE_PATH`): local runs, the demo, one instance.
    #[default]
    Sqlite,
    /// PostgreSQL / Cloud SQL (`BOOKING_DATABASE_URL`): any number of instances.
    Postgres,
}

/// The booking store's flags and environment variables (shared by `serve` and `db`; listed by
/// `--help-all`).
#[derive(Clone, Args)]
#[command(next_help_heading = "Booking store")]
pub struct BookingStoreArgs {
    /// Where bookings live.
    #[arg(
        long,
        env = "BOOKING_STORE",
        value_enum,
        default_value_t,
        global = true,
        hide_short_help = true
    )]
    pub booking_store: BookingStoreKind,

    /// PostgreSQL connection, as a `postgresql://` URL or libpq `key=value` string. On Cloud Run
    /// with the built-in Cloud SQL connection: `host=/cloudsql/PROJECT:REGION:INSTANCE user=...
    /// dbname=...`. Over TCP add `sslmode=require` or `verify-full` (with `sslrootcert=`).
    #[arg(
        long,
        env = "BOOKING_DATABASE_URL",
        hide_env_values = true,
        global = true,
        hide_short_help = true
    )]
    pub booking_database_url: Option<String>,

    /// `password` (from the URL, e.g. a Secret Manager secret exposed as BOOKING_DATABASE_URL) or
    /// `iam` (Cloud SQL IAM database authentication: the runtime service account's access token).
    #[arg(
        long,
        env = "BOOKING_DATABASE_AUTH",
        default_value = "password",
        value_parser = parse_auth,
        global = true,
        hide_short_help = true
    )]
    pub booking_database_auth: PgAuth,

    /// PostgreSQL connections per instance (mind Cloud SQL's max_connections times the instances).
    #[arg(
        long,
        env = "BOOKING_DATABASE_POOL_SIZE",
        default_value_t = 5,
        global = true,
        hide_short_help = true
    )]
    pub booking_database_pool_size: usize,
}

fn parse_auth(s: &str) -> Result<PgAuth, String> {
    s.parse()
}

impl fmt::Debug for BookingStoreArgs {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BookingStoreArgs")
            .field("booking_store", &self.booking_store)
            .field(
                "booking_database_url",
                &self.booking_database_url.as_ref().map(|_| "[redacted]"),
            )
            .field("booking_database_auth", &self.booking_database_auth)
            .field(
                "booking_database_pool_size",
                &self.booking_database_pool_size,
            )
            .finish()
    }
}

/// The validated choice.
#[derive(Debug, Clone, Default)]
pub enum BookingStoreConfig {
    /// Bookings in the SQLite file.
    #[default]
    Sqlite,
    /// Bookings in PostgreSQL.
    Postgres(Box<PgSettings>),
}

impl BookingStoreConfig {
    /// Validates the arguments, adding one line per problem to `problems`.
    pub fn from_args(
        args: &BookingStoreArgs,
        problems: &mut Vec<String>,
    ) -> Option<BookingStoreConfig> {
        let url = args
            .booking_database_url
            .as_deref()
            .filter(|u| !u.trim().is_empty());
        match (args.booking_store, url) {
            (BookingStoreKind::Sqlite, None) => Some(BookingStoreConfig::Sqlite),
            (BookingStoreKind::Sqlite, Some(_)) => {
                problems.push(
                    "BOOKING_DATABASE_URL is set but BOOKING_STORE is sqlite: set BOOKING_STORE=postgres \
                     (or unset the URL)"
                        .into(),
                );
                None
            }
            (BookingStoreKind::Postgres, None) => {
                problems.push("BOOKING_STORE=postgres needs BOOKING_DATABASE_URL".into());
                None
            }
            (BookingStoreKind::Postgres, Some(url)) => {
                if !(1..=100).contains(&args.booking_database_pool_size) {
                    problems.push(format!(
                        "BOOKING_DATABASE_POOL_SIZE: {} is outside 1..=100",
                        args.booking_database_pool_size
                    ));
                    return None;
                }
                match PgSettings::parse(
                    url,
                    args.booking_database_auth,
                    args.booking_database_pool_size,
                ) {
                    Ok(settings) => Some(BookingStoreConfig::Postgres(Box::new(settings))),
                    Err(e) => {
                        problems.push(e.to_string());
                        None
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[derive(Debug, Parser)]
    struct T {
        #[command(flatten)]
        store: BookingStoreArgs,
    }

    fn parse(args: &[&str]) -> (Option<BookingStoreConfig>, Vec<String>) {
        let t = T::try_parse_from(std::iter::once("t").chain(args.iter().copied())).unwrap();
        let mut problems = Vec::new();
        (
            BookingStoreConfig::from_args(&t.store, &mut problems),
            problems,
        )
    }

    #[test]
    fn sqlite_is_the_default_and_postgres_needs_a_url() {
        assert!(matches!(parse(&[]).0, Some(BookingStoreConfig::Sqlite)));
        let (c, p) = parse(&["--booking-store", "postgres"]);
        assert!(c.is_none());
        assert_eq!(p, ["BOOKING_STORE=postgres needs BOOKING_DATABASE_URL"]);
        let (c, p) = parse(&["--booking-database-url", "postgresql://u:pw@h/db"]);
        assert!(c.is_none() && p[0].contains("BOOKING_STORE is sqlite"));
    }

    #[test]
    fn postgres_settings_are_validated_and_never_shown() {
        let (c, p) = parse(&[
            "--booking-store",
            "postgres",
            "--booking-database-url",
            "postgresql://cxw:hunter2@10.1.2.3/cxw?sslmode=require",
            "--booking-database-auth",
            "password",
        ]);
        assert!(p.is_empty(), "{p:?}");
        let shown = format!("{c:?}");
        assert!(
            shown.contains("10.1.2.3") && !shown.contains("hunter2"),
            "{shown}"
        );
        let t = T::try_parse_from([
            "t",
            "--booking-database-url",
            "postgresql://cxw:hunter2@h/db",
        ])
        .unwrap();
        assert!(!format!("{t:?}").contains("hunter2"));

        let (c, p) = parse(&[
            "--booking-store",
            "postgres",
            "--booking-database-url",
            "postgresql://cxw:hunter2@10.1.2.3/cxw",
            "--booking-database-auth",
            "iam",
        ]);
        assert!(c.is_none());
        assert!(p[0].contains("leave the password out") && !p[0].contains("hunter2"));
        assert!(
            T::try_parse_from(["t", "--booking-database-auth", "kerberos"]).is_err(),
            "unknown auth is refused"
        );
        let (_, p) = parse(&[
            "--booking-store",
            "postgres",
            "--booking-database-url",
            "postgresql://u@h/db",
            "--booking-database-pool-size",
            "0",
        ]);
        assert!(p[0].contains("BOOKING_DATABASE_POOL_SIZE"));
    }
}
