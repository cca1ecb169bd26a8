//! The PostgreSQL schema: versioned SQL compiled into the binary.
//!
//! [`migrate`] runs in one transaction that first takes a transaction-scoped advisory lock
//! ([`MIGRATION_LOCK`]), so of ten instances starting at once one migrates and the other nine wait,
//! then find the schema current and do nothing. PostgreSQL's DDL is transactional: a migration that
//! fails (or a connection that drops) leaves the previous version intact, and the lock goes with the
//! transaction. The applied versions are rows of `cxw_schema_migrations`; a database whose highest
//! version is above [`SCHEMA_VERSION`] was migrated by a newer build and is refused, never touched.

use tokio_postgres::Client;

/// The schema version this build writes and reads: one per migration.
pub const SCHEMA_VERSION: i32 = MIGRATIONS.len() as i32;

/// `pg_advisory_xact_lock` key that serialises migrations: ASCII "CXWH" and 1.
pub const MIGRATION_LOCK: i64 = 0x4358_5748_0000_0001;

/// Migration `i` takes the schema from version `i` to `i + 1`.
const MIGRATIONS: &[&str] = &[
    // 0 -> 1: bookings, and one row per slot that counts its confirmed bookings. A create locks
    // the slot's row while it checks and raises the count (see the repository's docs).
    r#"
    CREATE TABLE bookings (
        booking_id     text PRIMARY KEY CHECK (booking_id ~ '^BK-[0-9A-HJKMNP-TV-Z]{10}$'),
        request_key    text NOT NULL UNIQUE,
        dealer_id      text NOT NULL,
        slot_date      date NOT NULL,
        slot_time      time(0) NOT NULL,
        vehicle_number text NOT NULL,
        service_key    text NOT NULL,
        car_model      text,
        session_id     text NOT NULL,
        status         text NOT NULL CHECK (status IN ('confirmed', 'cancelled')),
        created_at     timestamptz NOT NULL DEFAULT now()
    );
    -- One confirmed booking per vehicle per slot.
    CREATE UNIQUE INDEX bookings_vehicle_slot ON bookings (dealer_id, slot_date, slot_time, vehicle_number)
        WHERE status = 'confirmed';

    CREATE TABLE booking_slots (
        dealer_id text NOT NULL,
        slot_date date NOT NULL,
        slot_time time(0) NOT NULL,
        confirmed integer NOT NULL CHECK (confirmed >= 0),
        PRIMARY KEY (dealer_id, slot_date, slot_time)
    );
    "#,
    // 1 -> 2: the PIN lockout counters, shared by every instance (see `store::pins`).
    r#"
    CREATE TABLE pin_attempts (
        account_id   text PRIMARY KEY,
        failures     integer NOT NULL CHECK (failures >= 0),
        locked_until bigint
    );
    "#,
];

/// What [`migrate`] found and did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Migrated {
    /// The version before.
    pub from: i32,
    /// The version now ([`SCHEMA_VERSION`]).
    pub to: i32,
}

/// Why the schema cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum SchemaError {
    /// A newer build migrated this database.
    #[error(
        "the booking database has schema version {found}, newer than this build's {known}: \
         deploy the newer build (or roll the database back)"
    )]
    Newer {
        /// The database's version.
        found: i32,
        /// This build's.
        known: i32,
    },
    /// The database failed.
    #[error(transparent)]
    Postgres(#[from] tokio_postgres::Error),
}

const VERSION_TABLE: &str = "CREATE TABLE IF NOT EXISTS cxw_schema_migrations (
    version    integer PRIMARY KEY,
    applied_at timestamptz NOT NULL DEFAULT now()
)";

/// Brings the schema to [`SCHEMA_VERSION`] under the advisory lock (see the module docs).
pub async fn migrate(client: &mut Client) -> Result<Migrated, SchemaError> {
    let tx = client.transaction().await?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])
        .await?;
    // Not the NOTICE "already exists, skipping" on every start.
    tx.batch_execute("SET LOCAL client_min_messages = warning")
        .await?;
    tx.batch_execute(VERSION_TABLE).await?;
    let from = current(&tx).await?.unwrap_or(0);
    if from > SCHEMA_VERSION {
        return Err(SchemaError::Newer {
            found: from,
            known: SCHEMA_VERSION,
        });
    }
    for (step, sql) in MIGRATIONS.iter().enumerate().skip(from as usize) {
        tx.batch_execute(sql).await?;
        let version = step as i32 + 1;
        tx.execute(
            "INSERT INTO cxw_schema_migrations (version) VALUES ($1)",
            &[&version],
        )
        .await?;
    }
    tx.commit().await?;
    Ok(Migrated {
        from,
        to: SCHEMA_VERSION,
    })
}

/// The database's schema version (`None`: never migrated), without changing anything.
pub async fn version(
    client: &impl tokio_postgres::GenericClient,
) -> Result<Option<i32>, tokio_postgres::Error> {
    current(client).await
}

async fn current(
    client: &impl tokio_postgres::GenericClient,
) -> Result<Option<i32>, tokio_postgres::Error> {
    let exists: bool = client
        .query_one(
            "SELECT to_regclass('cxw_schema_migrations') IS NOT NULL",
            &[],
        )
        .await?
        .get(0);
    if !exists {
        return Ok(None);
    }
    client
        .query_one("SELECT max(version) FROM cxw_schema_migrations", &[])
        .await
        .map(|row| row.get(0))
}
