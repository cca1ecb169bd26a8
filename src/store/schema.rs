//! The schema and its versioned migrations.
//!
//! A cx-webhook database is marked with `PRAGMA application_id` ([`APPLICATION_ID`], "CXWH") and its
//! schema version is `PRAGMA user_version`. [`migrate`] brings a new or older database up to
//! [`SCHEMA_VERSION`] in one transaction per step; a database with another application id, or a newer
//! version than this build knows, is refused rather than touched.
//!
//! Money columns are `*_minor INTEGER` (minor units) beside a `currency` code; dates and times are
//! ISO text (`YYYY-MM-DD`, `HH:MM`, RFC 3339 UTC for instants), so they sort and compare as text.
//! Tables are STRICT: a wrong type is an error, not a silent coercion.

use rusqlite::Connection;

/// `PRAGMA application_id` of a cx-webhook database: ASCII "CXWH".
pub const APPLICATION_ID: i32 = 0x4358_5748;

/// The schema version this build writes and reads: one per migration, so adding a migration is
/// all it takes to bump it.
pub const SCHEMA_VERSION: i32 = MIGRATIONS.len() as i32;

/// Migration `i` takes the schema from version `i` to `i + 1`.
const MIGRATIONS: &[&str] = &[
    // 0 -> 1: accounts, transactions, dealers, price list, bookings.
    r#"
    CREATE TABLE accounts (
        account_id    TEXT PRIMARY KEY,
        holder_name   TEXT NOT NULL,
        currency      TEXT NOT NULL CHECK (length(currency) = 3),
        balance_minor INTEGER NOT NULL
    ) STRICT;

    CREATE TABLE transactions (
        id           INTEGER PRIMARY KEY,
        account_id   TEXT NOT NULL REFERENCES accounts(account_id),
        posted_at    TEXT NOT NULL,
        description  TEXT NOT NULL,
        amount_minor INTEGER NOT NULL
    ) STRICT;
    CREATE INDEX transactions_by_account ON transactions(account_id, posted_at DESC, id DESC);

    CREATE TABLE cities (
        city_key TEXT PRIMARY KEY,
        name     TEXT NOT NULL
    ) STRICT, WITHOUT ROWID;

    CREATE TABLE city_aliases (
        alias_key TEXT PRIMARY KEY,
        city_key  TEXT NOT NULL REFERENCES cities(city_key)
    ) STRICT, WITHOUT ROWID;

    CREATE TABLE dealers (
        dealer_id     TEXT PRIMARY KEY,
        name          TEXT NOT NULL,
        kind          TEXT NOT NULL CHECK (kind IN ('sales', 'service')),
        city_key      TEXT NOT NULL REFERENCES cities(city_key),
        postal_code   TEXT NOT NULL,
        address       TEXT NOT NULL,
        phone         TEXT NOT NULL,
        time_zone     TEXT NOT NULL,
        open_days     TEXT NOT NULL,
        opens_at      TEXT NOT NULL,
        closes_at     TEXT NOT NULL,
        slot_minutes  INTEGER NOT NULL CHECK (slot_minutes > 0),
        slot_capacity INTEGER NOT NULL CHECK (slot_capacity >= 0)
    ) STRICT;
    CREATE INDEX dealers_by_city ON dealers(city_key, kind, dealer_id);
    CREATE INDEX dealers_by_postal_code ON dealers(postal_code);

    CREATE TABLE car_models (
        model_key TEXT PRIMARY KEY,
        name      TEXT NOT NULL
    ) STRICT, WITHOUT ROWID;

    CREATE TABLE dealer_models (
        dealer_id TEXT NOT NULL REFERENCES dealers(dealer_id),
        model_key TEXT NOT NULL REFERENCES car_models(model_key),
        PRIMARY KEY (model_key, dealer_id)
    ) STRICT, WITHOUT ROWID;

    CREATE TABLE service_types (
        service_key TEXT PRIMARY KEY,
        name        TEXT NOT NULL
    ) STRICT, WITHOUT ROWID;

    CREATE TABLE service_aliases (
        alias_key   TEXT PRIMARY KEY,
        service_key TEXT NOT NULL REFERENCES service_types(service_key)
    ) STRICT, WITHOUT ROWID;

    CREATE TABLE service_prices (
        model_key    TEXT NOT NULL REFERENCES car_models(model_key),
        service_key  TEXT NOT NULL REFERENCES service_types(service_key),
        fuel_type    TEXT NOT NULL CHECK (fuel_type IN ('petrol', 'diesel', 'cng', 'electric')),
        currency     TEXT NOT NULL CHECK (length(currency) = 3),
        parts_minor  INTEGER NOT NULL CHECK (parts_minor >= 0),
        labour_minor INTEGER NOT NULL CHECK (labour_minor >= 0),
        PRIMARY KEY (model_key, service_key, fuel_type)
    ) STRICT, WITHOUT ROWID;

    CREATE TABLE bookings (
        booking_id     TEXT PRIMARY KEY,
        request_key    TEXT NOT NULL UNIQUE,
        dealer_id      TEXT NOT NULL REFERENCES dealers(dealer_id),
        slot_date      TEXT NOT NULL,
        slot_time      TEXT NOT NULL,
        vehicle_number TEXT NOT NULL,
        service_key    TEXT NOT NULL REFERENCES service_types(service_key),
        car_model      TEXT,
        session_id     TEXT NOT NULL,
        status         TEXT NOT NULL CHECK (status IN ('confirmed', 'cancelled')),
        created_at     TEXT NOT NULL
    ) STRICT;
    CREATE INDEX bookings_by_slot ON bookings(dealer_id, slot_date, slot_time, status);
    CREATE UNIQUE INDEX bookings_one_per_vehicle_and_slot
        ON bookings(vehicle_number, dealer_id, slot_date, slot_time) WHERE status = 'confirmed';
    "#,
    // 1 -> 2: who owns each account (end-user subjects, registered phones, a PIN hash), and the
    // PIN lockout counters.
    r#"
    ALTER TABLE accounts ADD COLUMN pin_hash TEXT;

    CREATE TABLE account_owners (
        subject    TEXT NOT NULL,
        account_id TEXT NOT NULL REFERENCES accounts(account_id),
        PRIMARY KEY (subject, account_id)
    ) STRICT, WITHOUT ROWID;

    CREATE TABLE account_phones (
        phone      TEXT NOT NULL,
        account_id TEXT NOT NULL REFERENCES accounts(account_id),
        PRIMARY KEY (phone, account_id)
    ) STRICT, WITHOUT ROWID;

    CREATE TABLE pin_attempts (
        account_id   TEXT PRIMARY KEY,
        failures     INTEGER NOT NULL CHECK (failures >= 0),
        locked_until TEXT
    ) STRICT, WITHOUT ROWID;
    "#,
    // 2 -> 3: a counter every change to accounts, owners or phones bumps (by trigger, whoever
    // writes), so the in-memory account book (see `crate::store::book`) knows when to reload.
    r#"
    CREATE TABLE account_data_version (
        id      INTEGER PRIMARY KEY CHECK (id = 1),
        version INTEGER NOT NULL
    ) STRICT;
    INSERT INTO account_data_version (id, version) VALUES (1, 0);

    CREATE TRIGGER accounts_inserted AFTER INSERT ON accounts
        BEGIN UPDATE account_data_version SET version = version + 1; END;
    CREATE TRIGGER accounts_updated AFTER UPDATE ON accounts
        BEGIN UPDATE account_data_version SET version = version + 1; END;
    CREATE TRIGGER accounts_deleted AFTER DELETE ON accounts
        BEGIN UPDATE account_data_version SET version = version + 1; END;
    CREATE TRIGGER account_owners_inserted AFTER INSERT ON account_owners
        BEGIN UPDATE account_data_version SET version = version + 1; END;
    CREATE TRIGGER account_owners_updated AFTER UPDATE ON account_owners
        BEGIN UPDATE account_data_version SET version = version + 1; END;
    CREATE TRIGGER account_owners_deleted AFTER DELETE ON account_owners
        BEGIN UPDATE account_data_version SET version = version + 1; END;
    CREATE TRIGGER account_phones_inserted AFTER INSERT ON account_phones
        BEGIN UPDATE account_data_version SET version = version + 1; END;
    CREATE TRIGGER account_phones_updated AFTER UPDATE ON account_phones
        BEGIN UPDATE account_data_version SET version = version + 1; END;
    CREATE TRIGGER account_phones_deleted AFTER DELETE ON account_phones
        BEGIN UPDATE account_data_version SET version = version + 1; END;
    "#,
];

/// What [`inspect`] found in a database file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Found {
    /// No schema at all: a new file (or an empty SQLite database).
    Empty,
    /// A cx-webhook database at this version.
    Ours(i32),
    /// Another application's database (its application id and whether it has tables).
    Foreign(i32),
}

/// Reads the application id, version and table count.
pub fn inspect(conn: &Connection) -> rusqlite::Result<Found> {
    let app_id: i32 = conn.query_row("PRAGMA application_id", [], |r| r.get(0))?;
    let version: i32 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    let tables: i64 = conn.query_row(
        "SELECT count(*) FROM sqlite_schema WHERE type = 'table'",
        [],
        |r| r.get(0),
    )?;
    Ok(match (app_id, version, tables) {
        (APPLICATION_ID, v, _) => Found::Ours(v),
        (0, 0, 0) => Found::Empty,
        (other, _, _) => Found::Foreign(other),
    })
}

/// Applies the migrations from `from` up to [`SCHEMA_VERSION`], each in its own transaction.
pub fn migrate(conn: &mut Connection, from: i32) -> rusqlite::Result<()> {
    let from = usize::try_from(from).unwrap_or(0);
    for (step, sql) in MIGRATIONS.iter().enumerate().skip(from) {
        let tx = conn.transaction()?;
        tx.execute_batch(sql)?;
        tx.pragma_update(None, "application_id", APPLICATION_ID)?;
        tx.pragma_update(None, "user_version", (step + 1) as i32)?;
        tx.commit()?;
    }
    Ok(())
}
