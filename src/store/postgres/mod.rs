//! Bookings in PostgreSQL (Cloud SQL), shared by any number of instances.
//!
//! Crates: tokio-postgres (the maintained async driver: pipelining, Unix sockets, binary protocol)
//! under a deadpool pool (async, small, lets us supply the connect step, which IAM authentication
//! needs: see `connect.rs`). TLS is rustls with aws-lc-rs, the one crypto library of the build.
//!
//! **Atomicity.** [`PostgresBookings::create`] runs one READ COMMITTED transaction:
//! 1. a booking with the same request key, or a confirmed one of the same vehicle in the same slot,
//!    is returned as a replay and nothing is written;
//! 2. the slot's row in `booking_slots` is claimed with one conditional upsert
//!    (`INSERT .. ON CONFLICT DO UPDATE SET confirmed = confirmed + 1 WHERE confirmed < capacity
//!    RETURNING`): it takes the row lock, re-reads the latest count under it and raises it only when
//!    there is room, so creates for one slot queue on that row, for every instance together, and
//!    creates for other slots do not wait at all. No row back means full;
//! 3. the booking is inserted with a random id (`ON CONFLICT DO NOTHING`: on a unique clash the
//!    rows it clashed with are looked up, which turns a concurrent identical request into a replay
//!    and an id collision into a redraw) and the transaction commits.
//!
//! `booking_slots.confirmed` is kept in the same transaction as the bookings it counts (and is what
//! `slot_counts` reads): a future cancel must lower it in the transaction that cancels.
//!
//! Chosen over SERIALIZABLE with retries on 40001 by measurement (`benches/postgres_contention.rs`,
//! `docs/postgres.md`): under contention for one slot, serializable transactions abort and retry,
//! while the row lock makes them wait their turn once.
//!
//! **Deadlines.** Every wait is bounded by the call's deadline: the pool checkout, the connect, each
//! statement. A write transaction also sets `statement_timeout` and `lock_timeout` to the time left,
//! so the server gives up by itself. When the deadline passes mid-call, the connection is taken out
//! of the pool and closed: PostgreSQL rolls back whatever was not committed, and
//! [`BookingError::Deadline`] is returned (if the deadline passes while COMMIT is in flight, the
//! booking may exist; a retry of the same request then finds it).
//!
//! **Outages.** [`PostgresBookings::connect`] never needs the database: the pool connects lazily.
//! The schema is migrated at start when the database answers, otherwise in the background and
//! before the first call that needs it. A connection-class failure (refused, reset, server shutting
//! down) is [`BookingError::Unavailable`]; a call that finds its pooled connection dead retries once
//! on a fresh one while its deadline allows, so bookings resume as soon as PostgreSQL is back.

mod connect;
pub mod migrations;
pub mod settings;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use deadpool::managed::{self, Object, PoolError};
use jiff::civil::Date;
use tokio::time::{Instant, timeout_at};
use tokio_postgres::Row;
use tokio_postgres::error::SqlState;
use tokio_postgres::types::ToSql;

use connect::Connector;
pub use connect::{ConnectError, SQL_LOGIN_SCOPE};
pub use migrations::{Migrated, SCHEMA_VERSION, SchemaError};
pub use settings::{PgAuth, PgSettings, PgSettingsError, TlsMode};

use crate::domain::{
    AccountId, Booking, BookingDraft, BookingId, BookingOutcome, DealerId, SlotCounts,
};
use crate::store::bookings::{
    BookingError, BookingRepository, BookingRow, BoxError, RepoFuture, slot_counts,
};
use crate::store::pins::{Attempt, Counter, PinAttempts, begin_step, finish_step};

type Pool = managed::Pool<Connector>;

/// Runs `$op` (a future using `$conn`) on a pooled connection by `$deadline`, after making sure the
/// schema is ready; a dead connection is replaced once and a serialization failure retried.
macro_rules! run {
    ($repo:expr, $deadline:expr, |$conn:ident| $op:expr) => {{
        $repo.ready($deadline).await?;
        let mut attempt = 0;
        loop {
            attempt += 1;
            #[allow(unused_mut)]
            let mut $conn = $repo.conn($deadline).await?;
            let result = timeout_at($deadline, $op).await;
            if let Some(outcome) = PostgresBookings::settle($conn, result, attempt, $deadline) {
                break outcome;
            }
        }
    }};
}
type Conn = Object<Connector>;

/// Why a `db` command or the start-up failed.
#[derive(Debug, thiserror::Error)]
pub enum PgError {
    /// The settings cannot be used.
    #[error(transparent)]
    Settings(#[from] PgSettingsError),
    /// TLS or credentials could not be set up.
    #[error(transparent)]
    Setup(#[from] ConnectError),
    /// The database is newer than this build: exit code 2.
    #[error(transparent)]
    Schema(SchemaError),
    /// The database could not be used (down, unreachable, refused, timed out).
    #[error("the booking database is unavailable")]
    Unavailable(#[source] BoxError),
}

impl PgError {
    /// True when the database was migrated by a newer build (the CLI exits with code 2).
    pub fn is_newer_schema(&self) -> bool {
        matches!(self, PgError::Schema(SchemaError::Newer { .. }))
    }
}

/// What `db check` reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PgStatus {
    /// The database's schema version (`None`: not migrated yet).
    pub schema_version: Option<i32>,
    /// Rows in `bookings` (when the schema exists).
    pub bookings: Option<i64>,
    /// The server's `server_version`.
    pub server_version: String,
}

/// How long [`PostgresBookings::connect`] tries to migrate before leaving it to the background.
const START_BUDGET: Duration = Duration::from_secs(5);

/// The PostgreSQL booking repository; cheap to clone (one pool shared).
#[derive(Clone)]
pub struct PostgresBookings {
    inner: Arc<Inner>,
}

struct Inner {
    pool: Pool,
    settings: PgSettings,
    schema_ready: AtomicBool,
    /// One migration attempt at a time in this process (the advisory lock covers the others).
    migrating: tokio::sync::Mutex<()>,
}

impl std::fmt::Debug for PostgresBookings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "PostgresBookings({})", self.inner.settings)
    }
}

impl PostgresBookings {
    /// A repository with a lazy pool: nothing is connected yet, so this works with PostgreSQL down.
    /// Must be called inside the tokio runtime.
    pub fn new(settings: PgSettings) -> Result<PostgresBookings, PgError> {
        let connector = Connector::new(&settings)?;
        let pool = Pool::builder(connector)
            .max_size(settings.pool_size)
            .runtime(deadpool::Runtime::Tokio1)
            .recycle_timeout(Some(Duration::from_secs(2)))
            .build()
            .map_err(|e| PgError::Unavailable(e.into()))?;
        Ok(PostgresBookings {
            inner: Arc::new(Inner {
                pool,
                settings,
                schema_ready: AtomicBool::new(false),
                migrating: tokio::sync::Mutex::new(()),
            }),
        })
    }

    /// For `serve`: [`new`](Self::new), then migrate if PostgreSQL answers within a few seconds.
    /// PostgreSQL down is not an error (a background task keeps trying, and every call tries
    /// first); a schema newer than this build is ([`PgError::is_newer_schema`]: exit code 2).
    pub async fn connect(settings: PgSettings) -> Result<PostgresBookings, PgError> {
        let repo = PostgresBookings::new(settings)?;
        match repo.migrate(Instant::now() + START_BUDGET).await {
            Ok(m) => {
                tracing::info!(database = %repo.inner.settings, from = m.from, to = m.to, "booking database ready");
            }
            Err(e) if e.is_newer_schema() => return Err(e),
            Err(e) => {
                tracing::warn!(
                    database = %repo.inner.settings,
                    error = %crate::telemetry::error_chain(&e),
                    "booking database unavailable at start: answering without bookings until it is back"
                );
                let background = repo.clone();
                tokio::spawn(async move { background.migrate_until_ready().await });
            }
        }
        Ok(repo)
    }

    /// Migrates the schema to [`SCHEMA_VERSION`] (under the advisory lock), by `deadline`.
    pub async fn migrate(&self, deadline: Instant) -> Result<Migrated, PgError> {
        let _one = timeout_at(deadline, self.inner.migrating.lock())
            .await
            .map_err(|_| PgError::Unavailable("timed out waiting for a migration".into()))?;
        let mut conn = self.conn(deadline).await.map_err(unavailable)?;
        let result = timeout_at(deadline, migrations::migrate(&mut conn)).await;
        match result {
            Ok(Ok(m)) => {
                self.inner.schema_ready.store(true, Ordering::Release);
                Ok(m)
            }
            Ok(Err(SchemaError::Postgres(e))) => Err(PgError::Unavailable(e.into())),
            Ok(Err(e)) => Err(PgError::Schema(e)),
            Err(_) => {
                discard(conn);
                Err(PgError::Unavailable("timed out migrating".into()))
            }
        }
    }

    /// The schema version and booking count, without changing anything (`db check`). A newer
    /// schema is an error ([`PgError::is_newer_schema`]).
    pub async fn check(&self, deadline: Instant) -> Result<PgStatus, PgError> {
        let conn = self.conn(deadline).await.map_err(unavailable)?;
        let status = timeout_at(deadline, async {
            let schema_version = migrations::version(&**conn).await?;
            let bookings = match schema_version {
                Some(_) => Some(
                    conn.query_one("SELECT count(*) FROM bookings", &[])
                        .await?
                        .get(0),
                ),
                None => None,
            };
            let server_version: String = conn.query_one("SHOW server_version", &[]).await?.get(0);
            Ok::<_, tokio_postgres::Error>(PgStatus {
                schema_version,
                bookings,
                server_version,
            })
        })
        .await
        .map_err(|_| PgError::Unavailable("timed out".into()))?
        .map_err(|e| PgError::Unavailable(e.into()))?;
        if let Some(found) = status.schema_version
            && found > SCHEMA_VERSION
        {
            return Err(PgError::Schema(SchemaError::Newer {
                found,
                known: SCHEMA_VERSION,
            }));
        }
        Ok(status)
    }

    /// The settings, for logs (redacted by their `Display`).
    pub fn settings(&self) -> &PgSettings {
        &self.inner.settings
    }

    async fn migrate_until_ready(&self) {
        let mut pause = Duration::from_secs(1);
        while !self.inner.schema_ready.load(Ordering::Acquire) {
            tokio::time::sleep(pause).await;
            match self.migrate(Instant::now() + Duration::from_secs(10)).await {
                Ok(_) => tracing::info!("booking database reachable again; schema ready"),
                Err(e) if e.is_newer_schema() => {
                    tracing::error!(error = %e, "bookings stay unavailable");
                    return;
                }
                Err(_) => pause = (pause * 2).min(Duration::from_secs(30)),
            }
        }
    }

    async fn ready(&self, deadline: Instant) -> Result<(), BookingError> {
        if self.inner.schema_ready.load(Ordering::Acquire) {
            return Ok(());
        }
        match self.migrate(deadline).await {
            Ok(_) => Ok(()),
            Err(PgError::Unavailable(e)) if Instant::now() >= deadline => {
                tracing::debug!(error = %e, "migration cut short by the deadline");
                Err(BookingError::Deadline)
            }
            Err(PgError::Unavailable(e)) => Err(BookingError::Unavailable(e)),
            Err(e) => Err(BookingError::Failed(e.into())),
        }
    }

    /// A pooled connection by `deadline`.
    async fn conn(&self, deadline: Instant) -> Result<Conn, BookingError> {
        match timeout_at(deadline, self.inner.pool.get()).await {
            Err(_) => Err(BookingError::Deadline),
            Ok(Ok(conn)) => Ok(conn),
            Ok(Err(PoolError::Backend(e))) => Err(BookingError::Unavailable(e.into())),
            Ok(Err(e)) => Err(BookingError::Unavailable(e.to_string().into())),
        }
    }

    /// What to do after running an operation on `conn` under `deadline`: its value, or its error
    /// (a dead connection or a serialization failure: `None`, run it again on a fresh connection
    /// while the deadline and `attempt` allow).
    fn settle<T>(
        conn: Conn,
        result: Result<Result<T, tokio_postgres::Error>, tokio::time::error::Elapsed>,
        attempt: u32,
        deadline: Instant,
    ) -> Option<Result<T, BookingError>> {
        let e = match result {
            Ok(Ok(value)) => return Some(Ok(value)),
            Err(_) => {
                // Mid-statement or mid-transaction: closing the connection rolls it back.
                discard(conn);
                return Some(Err(BookingError::Deadline));
            }
            Ok(Err(e)) => e,
        };
        // It may be inside a failed transaction: never hand it to the next caller.
        discard(conn);
        let time_left = Instant::now() < deadline;
        Some(Err(match classify(&e) {
            Class::Retry if attempt < 3 && time_left => return None,
            Class::Connection if attempt < 2 && time_left => return None,
            Class::Connection | Class::Retry => BookingError::Unavailable(e.into()),
            Class::Deadline => BookingError::Deadline,
            Class::Other => BookingError::Failed(e.into()),
        }))
    }

    async fn create_in(
        &self,
        draft: &BookingDraft,
        deadline: Instant,
    ) -> Result<BookingOutcome, BookingError> {
        let outcome = run!(self, deadline, |conn| create_tx(&mut conn, draft, deadline))?;
        match outcome {
            Found::Made(id) => Ok(BookingOutcome::Confirmed {
                booking: draft.confirmed(id),
                replayed: false,
            }),
            Found::Replay(row) => Ok(BookingOutcome::Confirmed {
                booking: booking_row(&row)?,
                replayed: true,
            }),
            Found::Full => Ok(BookingOutcome::SlotFull),
            Found::NoRandom(e) => Err(BookingError::Failed(e.into())),
        }
    }
}

/// One create transaction (see the module docs); `conn` is closed by the caller on any error.
///
/// Long on purpose: it is one transaction read top to bottom (timeouts, replay check, slot claim,
/// insert with id retries), and every early return must end it with ROLLBACK or COMMIT; split into
/// parts, each part would have to know what state the transaction is in.
async fn create_tx(
    conn: &mut Conn,
    draft: &BookingDraft,
    deadline: Instant,
) -> Result<Found, tokio_postgres::Error> {
    let date = draft.date.to_string();
    let time = draft.time.to_string();
    let capacity = i32::try_from(draft.capacity).unwrap_or(i32::MAX);
    let left = deadline
        .saturating_duration_since(Instant::now())
        .as_millis()
        .max(1);
    // One round trip; the timeouts end with the transaction.
    conn.batch_execute(&format!(
        "BEGIN; SET LOCAL statement_timeout = {left}; SET LOCAL lock_timeout = {left}"
    ))
    .await?;
    let existing = conn.prepare_cached(EXISTING).await?;
    let key: [&(dyn ToSql + Sync); 5] = [
        &draft.request_key.as_str(),
        &draft.dealer.as_str(),
        &date,
        &time,
        &draft.vehicle.as_str(),
    ];
    if let Some(row) = conn.query_opt(&existing, &key).await? {
        conn.batch_execute("ROLLBACK").await?;
        return Ok(Found::Replay(row));
    }
    let claimed = if capacity <= 0 {
        None
    } else {
        let claim = conn.prepare_cached(CLAIM).await?;
        conn.query_opt(&claim, &[&draft.dealer.as_str(), &date, &time, &capacity])
            .await?
    };
    if claimed.is_none() {
        // Full, unless an identical request got in while this one waited for the slot.
        let again = conn.query_opt(&existing, &key).await?;
        conn.batch_execute("ROLLBACK").await?;
        return Ok(again.map_or(Found::Full, Found::Replay));
    }
    let insert = conn.prepare_cached(INSERT).await?;
    for _ in 0..8 {
        let id = match BookingId::random() {
            Ok(id) => id,
            Err(e) => {
                conn.batch_execute("ROLLBACK").await?;
                return Ok(Found::NoRandom(format!(
                    "no randomness for a booking id: {e}"
                )));
            }
        };
        let inserted = conn
            .execute(
                &insert,
                &[
                    &id.as_str(),
                    &draft.request_key.as_str(),
                    &draft.dealer.as_str(),
                    &date,
                    &time,
                    &draft.vehicle.as_str(),
                    &draft.service.as_str(),
                    &draft.car_model,
                    &draft.session_id,
                ],
            )
            .await?;
        if inserted == 1 {
            conn.batch_execute("COMMIT").await?;
            return Ok(Found::Made(id));
        }
        // A unique clash: an identical request committed meanwhile, or the id was taken.
        if let Some(row) = conn.query_opt(&existing, &key).await? {
            conn.batch_execute("ROLLBACK").await?;
            return Ok(Found::Replay(row));
        }
    }
    conn.batch_execute("ROLLBACK").await?;
    Ok(Found::NoRandom(
        "8 random booking ids in a row were taken".into(),
    ))
}

async fn slot_counts_q(
    conn: &mut Conn,
    dealer: &DealerId,
    date: &str,
) -> Result<Vec<Row>, tokio_postgres::Error> {
    let stmt = conn
        .prepare_cached(
            "SELECT to_char(slot_time, 'HH24:MI'), confirmed FROM booking_slots
             WHERE dealer_id = $1 AND slot_date = $2::text::date AND confirmed > 0",
        )
        .await?;
    conn.query(&stmt, &[&dealer.as_str(), &date]).await
}

async fn get_q(conn: &mut Conn, id: &BookingId) -> Result<Option<Row>, tokio_postgres::Error> {
    let stmt = conn
        .prepare_cached(&format!(
            "SELECT {COLUMNS} FROM bookings WHERE booking_id = $1"
        ))
        .await?;
    conn.query_opt(&stmt, &[&id.as_str()]).await
}

enum Found {
    Made(BookingId),
    Replay(Row),
    Full,
    NoRandom(String),
}

const COLUMNS: &str = "booking_id, dealer_id, to_char(slot_date, 'YYYY-MM-DD'), \
     to_char(slot_time, 'HH24:MI'), vehicle_number, service_key, status";

const EXISTING: &str = "SELECT * FROM (
    SELECT booking_id, dealer_id, to_char(slot_date, 'YYYY-MM-DD'), to_char(slot_time, 'HH24:MI'),
           vehicle_number, service_key, status
    FROM bookings WHERE request_key = $1
    UNION ALL
    SELECT booking_id, dealer_id, to_char(slot_date, 'YYYY-MM-DD'), to_char(slot_time, 'HH24:MI'),
           vehicle_number, service_key, status
    FROM bookings
    WHERE dealer_id = $2 AND slot_date = $3::text::date AND slot_time = $4::text::time
      AND vehicle_number = $5 AND status = 'confirmed'
) AS found LIMIT 1";

const CLAIM: &str = "INSERT INTO booking_slots AS s (dealer_id, slot_date, slot_time, confirmed)
    VALUES ($1, $2::text::date, $3::text::time, 1)
    ON CONFLICT (dealer_id, slot_date, slot_time)
    DO UPDATE SET confirmed = s.confirmed + 1 WHERE s.confirmed < $4
    RETURNING confirmed";

const INSERT: &str =
    "INSERT INTO bookings (booking_id, request_key, dealer_id, slot_date, slot_time,
        vehicle_number, service_key, car_model, session_id, status)
    VALUES ($1, $2, $3, $4::text::date, $5::text::time, $6, $7, $8, $9, 'confirmed')
    ON CONFLICT DO NOTHING";

fn booking_row(row: &Row) -> Result<Booking, BookingError> {
    BookingRow::read(|i| row.try_get::<_, String>(i))
        .map_err(|e| BookingError::Failed(e.into()))?
        .into_booking()
        .map_err(|e| BookingError::Failed(e.into()))
}

/// Closes a connection instead of returning it to the pool (its state is unknown).
fn discard(conn: Conn) {
    drop(Object::take(conn));
}

fn unavailable(e: BookingError) -> PgError {
    match e {
        BookingError::Deadline => PgError::Unavailable("timed out connecting".into()),
        BookingError::Unavailable(e) | BookingError::Failed(e) => PgError::Unavailable(e),
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Class {
    /// The connection or the server is gone or refusing: try a fresh connection.
    Connection,
    /// A serialization failure or deadlock: the transaction may simply be run again.
    Retry,
    /// `statement_timeout` / `lock_timeout` (set from the deadline) fired.
    Deadline,
    Other,
}

fn classify(e: &tokio_postgres::Error) -> Class {
    if e.is_closed() {
        return Class::Connection;
    }
    match e.code() {
        // No SQLSTATE: an I/O failure (reset, EOF) is the connection's; anything else (a row that
        // does not decode, ...) is ours.
        None if std::error::Error::source(e).is_some_and(|s| s.is::<std::io::Error>()) => {
            Class::Connection
        }
        None => Class::Other,
        Some(c) if c.code().starts_with("08") => Class::Connection,
        Some(c)
            if *c == SqlState::ADMIN_SHUTDOWN
                || *c == SqlState::CRASH_SHUTDOWN
                || *c == SqlState::CANNOT_CONNECT_NOW
                || *c == SqlState::TOO_MANY_CONNECTIONS
                || *c == SqlState::READ_ONLY_SQL_TRANSACTION =>
        {
            Class::Connection
        }
        Some(c)
            if *c == SqlState::T_R_SERIALIZATION_FAILURE
                || *c == SqlState::T_R_DEADLOCK_DETECTED =>
        {
            Class::Retry
        }
        Some(c) if *c == SqlState::QUERY_CANCELED || *c == SqlState::LOCK_NOT_AVAILABLE => {
            Class::Deadline
        }
        Some(_) => Class::Other,
    }
}

impl BookingRepository for PostgresBookings {
    fn create<'a>(
        &'a self,
        draft: &'a BookingDraft,
        deadline: Instant,
    ) -> RepoFuture<'a, BookingOutcome> {
        Box::pin(self.create_in(draft, deadline))
    }

    fn slot_counts<'a>(
        &'a self,
        dealer: &'a DealerId,
        date: Date,
        deadline: Instant,
    ) -> RepoFuture<'a, SlotCounts> {
        Box::pin(async move {
            let date = date.to_string();
            let rows = run!(self, deadline, |conn| slot_counts_q(
                &mut conn, dealer, &date
            ))?;
            let mut counts = Vec::with_capacity(rows.len());
            for row in rows {
                let time: String = row.try_get(0).map_err(|e| BookingError::Failed(e.into()))?;
                let n: i32 = row.try_get(1).map_err(|e| BookingError::Failed(e.into()))?;
                counts.push((time, u32::try_from(n).unwrap_or(0)));
            }
            slot_counts(counts).map_err(|e| BookingError::Failed(e.into()))
        })
    }

    fn get<'a>(&'a self, id: &'a BookingId, deadline: Instant) -> RepoFuture<'a, Option<Booking>> {
        Box::pin(async move {
            let row = run!(self, deadline, |conn| get_q(&mut conn, id))?;
            row.as_ref().map(booking_row).transpose()
        })
    }

    fn backend(&self) -> &'static str {
        "postgres"
    }
}

/// Reads an account's PIN counter under a row lock (creating the row), computes the next state
/// with `step`, stores it, and commits: one transaction, so concurrent attempts from any number of
/// instances are counted one after another.
async fn pin_tx<T>(
    conn: &mut Conn,
    account: &str,
    step: impl FnOnce(Counter) -> (T, Option<Counter>),
) -> Result<T, tokio_postgres::Error> {
    let tx = conn.transaction().await?;
    tx.execute(
        "INSERT INTO pin_attempts (account_id, failures) VALUES ($1, 0) ON CONFLICT DO NOTHING",
        &[&account],
    )
    .await?;
    let row = tx
        .query_one(
            "SELECT failures, locked_until FROM pin_attempts WHERE account_id = $1 FOR UPDATE",
            &[&account],
        )
        .await?;
    let failures: i32 = row.try_get(0)?;
    let locked_until: Option<i64> = row.try_get(1)?;
    let counter = Counter {
        failures: u32::try_from(failures).unwrap_or(0),
        locked_until: locked_until.and_then(|s| jiff::Timestamp::from_second(s).ok()),
    };
    let (out, next) = step(counter);
    if let Some(next) = next {
        let failures = i32::try_from(next.failures).unwrap_or(i32::MAX);
        let until = next.locked_until.map(|t| t.as_second());
        tx.execute(
            "UPDATE pin_attempts SET failures = $2, locked_until = $3 WHERE account_id = $1",
            &[&account, &failures, &until],
        )
        .await?;
    }
    tx.commit().await?;
    Ok(out)
}

impl PinAttempts for PostgresBookings {
    fn begin<'a>(
        &'a self,
        account: &'a AccountId,
        now: jiff::Timestamp,
        deadline: Instant,
    ) -> RepoFuture<'a, Attempt> {
        Box::pin(async move {
            run!(self, deadline, |conn| pin_tx(
                &mut conn,
                account.as_str(),
                |c| { begin_step(c, now) }
            ))
        })
    }

    fn finish<'a>(
        &'a self,
        account: &'a AccountId,
        matched: bool,
        now: jiff::Timestamp,
        deadline: Instant,
    ) -> RepoFuture<'a, Option<jiff::Timestamp>> {
        Box::pin(async move {
            run!(self, deadline, |conn| pin_tx(
                &mut conn,
                account.as_str(),
                |c| { finish_step(c, matched, now) }
            ))
        })
    }
}
