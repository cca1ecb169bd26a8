//! The SQLite store: the only module that knows SQL. It knows nothing of HTTP or Dialogflow.
//!
//! ## Connections
//! - **One writer** connection behind a mutex; every write runs on a blocking thread
//!   (`Store::write` via `spawn_blocking`), because a write can wait on locks and on `fsync`.
//! - **A bounded set of read-only connections** (`SQLITE_OPEN_READ_ONLY`, `query_only`, prepared
//!   statements cached per connection), checked out of a pool and returned after use. When every pooled
//!   connection is busy an extra one is opened for that read and dropped after, so a read never
//!   waits for another read.
//! - WAL mode (readers never block the writer or each other), `synchronous=FULL` (a committed booking
//!   survives a crash of the process or the machine), `foreign_keys=ON`, `busy_timeout`.
//! - A file this process cannot write is served read-only (reads work, writes fail and the handlers
//!   say so); WAL still needs its `-shm` file, so a read-only file in a read-only directory is refused
//!   at start with [`StoreError::DirectoryNotWritable`], naming the fix.
//!
//! ## Where a read runs: measured, not assumed
//! `benches/store.rs` compares three ways to run an indexed point read (an account by id) from async
//! code: inline on the tokio worker with a pooled connection, a `spawn_blocking` hop, and a dedicated
//! reader thread fed by a channel. Each iteration runs 256 concurrent reads as tasks on a 2-worker
//! runtime. Medians from one run on the 2-core dev machine (2026-11-28, other builds running):
//!
//! | strategy       | reads/s | per read |
//! |----------------|--------:|---------:|
//! | inline         |  331 K  |  3.0 µs  |
//! | reader thread  |  234 K  |  4.3 µs  |
//! | spawn_blocking |   46 K  | 21.6 µs  |
//!
//! A second run, with tests compiling beside it, gave medians of 242 K (inline), 245 K (reader
//! thread) and 39 K (spawn_blocking): inline and a dedicated thread tie under load, the hop stays six
//! times slower. The hop costs several times the read it carries; an indexed read over cached pages takes a few
//! microseconds and, in WAL mode, never waits for the writer. So point reads run **inline** and are
//! for bounded, indexed reads only (a handful of rows through an index). Anything that can wait on a
//! lock or touch many pages — every write, the catalog's name lists (whole small tables), the
//! integrity check — runs on the blocking pool.
//!
//! **Plans do not depend on bound values** (the query planner stability guarantee, on every
//! connection). Without it SQLite marks a statement whose plan *could* depend on a value (a
//! `LIMIT ?`, an equality it might estimate) to be re-prepared on each new binding, so the cached
//! statement is parsed again on every call: 28,000 instructions, a quarter of a verified
//! account.balance call (callgrind). Every read here is indexed, with one plan for all values.
//!
//! **Accounts, owners and phones are held in memory** ([`book`]): the service never writes them,
//! and each SQLite read transaction costs three system calls (the `-shm` read-mark lock and unlock,
//! an `fstat`) that a hash lookup does not. A change counter kept by triggers brings changes from
//! other processes within about a second.
//!
//! ## Repositories
//! Callers never see SQL or a connection: [`Store::accounts`], [`Store::catalog`] and
//! [`Store::bookings`] hand out typed repositories that speak [`crate::domain`] types. Bookings sit
//! behind the [`bookings::BookingRepository`] trait, since they may live elsewhere (PostgreSQL).

pub mod accounts;
pub mod book;
pub mod bookings;
pub mod catalog;
pub mod pins;
pub mod postgres;
pub mod schema;
pub mod seed;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use rusqlite::config::DbConfig;
use rusqlite::{Connection, OpenFlags};

use crate::domain::Currency;
use accounts::Accounts;
use bookings::sqlite::SqliteBookings;
use catalog::Catalog;
use schema::{Found, SCHEMA_VERSION};

/// How long a connection waits for a lock held by another connection before failing.
pub(crate) const BUSY_TIMEOUT: Duration = Duration::from_secs(2);
/// Prepared statements cached per connection.
const STATEMENT_CACHE: usize = 32;

/// Boxed error source.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// The future a repository method that may live elsewhere (bookings, PIN attempts) returns.
pub type RepoFuture<'a, T> =
    std::pin::Pin<Box<dyn std::future::Future<Output = Result<T, RepoError>> + Send + 'a>>;

/// Why a repository that may live elsewhere (bookings, PIN attempts) failed. None of these is the
/// user's fault; handlers answer each with a sentence and never show the cause.
#[derive(Debug, thiserror::Error)]
pub enum RepoError {
    /// The backend cannot take writes now (a read-only file, a database that is down or
    /// unreachable, a full pool). Retrying later may work.
    #[error("the store is unavailable")]
    Unavailable(#[source] BoxError),
    /// The call's deadline came first; nothing was committed.
    #[error("the store did not answer before the deadline")]
    Deadline,
    /// Anything else (corrupt data, a bug).
    #[error("the store failed")]
    Failed(#[source] BoxError),
}

/// Why the store failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The file could not be opened or created.
    #[error("cannot open the database {path}")]
    Open {
        /// The database file.
        path: PathBuf,
        /// SQLite's reason.
        #[source]
        source: rusqlite::Error,
    },
    /// The file is a database of some other application, or not a database at all.
    #[error("{path} is not a cx-webhook database ({detail})")]
    NotOurs {
        /// The database file.
        path: PathBuf,
        /// What was found instead.
        detail: String,
    },
    /// The file is readable but SQLite cannot create its `-wal`/`-shm` files beside it.
    #[error(
        "{path} is read-only and so is its directory: SQLite needs to create {path}-wal and -shm \
         beside it; make the directory writable by this process's user"
    )]
    DirectoryNotWritable {
        /// The database file.
        path: PathBuf,
    },
    /// The schema is newer than this build understands.
    #[error(
        "{path} has schema version {found}, newer than version {supported} that this build \
         knows; run a newer cx-webhook"
    )]
    TooNew {
        /// The database file.
        path: PathBuf,
        /// Its version.
        found: i32,
        /// This build's version.
        supported: i32,
    },
    /// The integrity check failed.
    #[error("{path} is corrupt: {detail}")]
    Corrupt {
        /// The database file.
        path: PathBuf,
        /// The first problem SQLite reported.
        detail: String,
    },
    /// A query or statement failed.
    #[error("database operation failed")]
    Sqlite(#[from] rusqlite::Error),
    /// The blocking task running the operation died.
    #[error("database task failed")]
    Task(#[from] tokio::task::JoinError),
}

/// A cheap-to-clone handle to one database file.
#[derive(Clone)]
pub struct Store {
    inner: Arc<Inner>,
}

struct Inner {
    path: PathBuf,
    writer: Mutex<Connection>,
    readers: Mutex<Vec<Connection>>,
    max_idle_readers: usize,
    read_only: bool,
    book: book::BookCell,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("path", &self.inner.path)
            .field("read_only", &self.inner.read_only)
            .finish()
    }
}

/// What [`Store::open`] did besides opening.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Opened {
    /// The file existed and was current.
    Existing,
    /// The file existed and was migrated from this version.
    Migrated(i32),
    /// The file was created (and seeded when asked).
    Created,
}

/// Whether [`Store::open`] may create a missing file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Create {
    /// Create the file and schema if missing; seed the demo data into a new file when `seed`.
    IfMissing {
        /// Seed demo data into a newly created file.
        seed: bool,
    },
    /// The file must exist already.
    Never,
}

/// A stored value that does not parse: the one conversion error of every repository and backend.
#[derive(Debug, thiserror::Error)]
#[error("bad {what} {value:?}")]
pub(crate) struct BadValue {
    /// What the value is (`time`, `booking id`).
    pub what: &'static str,
    /// The value as stored.
    pub value: String,
}

/// [`BadValue`] as SQLite's conversion error.
pub(crate) fn bad_value(what: &'static str, value: &str) -> rusqlite::Error {
    rusqlite::Error::FromSqlConversionFailure(
        0,
        rusqlite::types::Type::Text,
        Box::new(BadValue {
            what,
            value: value.to_owned(),
        }),
    )
}

/// A stored currency code.
pub(crate) fn currency(code: &str) -> rusqlite::Result<Currency> {
    Currency::parse(code).ok_or_else(|| bad_value("currency code", code))
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding a connection cannot leave it half-used in a way SQLite cares about
    // (transactions roll back on drop), so a poisoned lock is still usable.
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Process-wide SQLite settings, applied once before the first connection opens.
///
/// Memory statistics off: with them on (SQLite's default), every `sqlite3_malloc` and `free` takes
/// one process-wide mutex, so the runtime's workers, each running a point read inline, queue on it
/// (strace under load: ~0.7 contended futex calls per account call, against ~0.02 for a bare hyper
/// server). Nothing here reads `sqlite3_status`. A call after SQLite started (another library
/// opened a connection first) is refused by SQLite and changes nothing, which is harmless.
fn sqlite_process_settings() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        // SAFETY: SQLITE_CONFIG_MEMSTATUS takes one int; sqlite3_config is safe to call before
        // sqlite3_initialize and returns SQLITE_MISUSE (ignored) after it.
        let _ = unsafe {
            rusqlite::ffi::sqlite3_config(
                rusqlite::ffi::SQLITE_CONFIG_MEMSTATUS,
                std::ffi::c_int::from(0u8),
            )
        };
    });
}

fn configure(conn: &Connection) -> rusqlite::Result<()> {
    // Plans never depend on bound values, so cached statements are never re-prepared on a new
    // binding (module docs; `accounts`' tests pin it).
    conn.set_db_config(DbConfig::SQLITE_DBCONFIG_ENABLE_QPSG, true)?;
    conn.busy_timeout(BUSY_TIMEOUT)?;
    conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
    conn.pragma_update(None, "foreign_keys", true)?;
    Ok(())
}

fn open_reader(path: &Path) -> rusqlite::Result<Connection> {
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    configure(&conn)?;
    conn.pragma_update(None, "query_only", true)?;
    Ok(conn)
}

/// Refuses a missing file unless `create` allows one, and creates its directory when it does.
fn prepare_path(path: &Path, create: Create) -> Result<(), StoreError> {
    if path.exists() {
        return Ok(());
    }
    if create == Create::Never {
        return Err(StoreError::Open {
            path: path.into(),
            source: rusqlite::Error::SqliteFailure(
                rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_CANTOPEN),
                Some("the file does not exist".into()),
            ),
        });
    }
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|e| StoreError::Open {
            path: path.into(),
            source: rusqlite::Error::SqliteFailure(
                rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_CANTOPEN),
                Some(format!("cannot create {}: {e}", dir.display())),
            ),
        })?;
    }
    Ok(())
}

/// Checks what the file at `path` holds and brings it to [`SCHEMA_VERSION`]: migrates an older
/// schema, creates (and seeds, if asked) an empty file, refuses a foreign or newer one.
fn bring_to_schema(
    writer: &mut Connection,
    path: &Path,
    create: Create,
) -> Result<Opened, StoreError> {
    let open_err = |source| StoreError::Open {
        path: path.into(),
        source,
    };
    let not_ours = |detail: String| StoreError::NotOurs {
        path: path.into(),
        detail,
    };
    let found = match schema::inspect(writer) {
        Ok(found) => found,
        Err(e) if is_not_a_database(&e) => {
            return Err(not_ours("the file is not a SQLite database".into()));
        }
        Err(e)
            if e.sqlite_error().map(|s| s.extended_code)
                == Some(rusqlite::ffi::SQLITE_READONLY_DIRECTORY) =>
        {
            return Err(StoreError::DirectoryNotWritable { path: path.into() });
        }
        Err(e) => return Err(open_err(e)),
    };
    match found {
        Found::Foreign(app_id) => Err(not_ours(format!(
            "it has other tables and application_id {app_id:#x}"
        ))),
        Found::Ours(v) if v > SCHEMA_VERSION => Err(StoreError::TooNew {
            path: path.into(),
            found: v,
            supported: SCHEMA_VERSION,
        }),
        Found::Ours(SCHEMA_VERSION) => Ok(Opened::Existing),
        Found::Ours(v) => {
            schema::migrate(writer, v).map_err(open_err)?;
            Ok(Opened::Migrated(v))
        }
        Found::Empty if create == Create::Never => {
            Err(not_ours("it has no cx-webhook schema".into()))
        }
        Found::Empty => {
            schema::migrate(writer, 0).map_err(open_err)?;
            if matches!(create, Create::IfMissing { seed: true }) {
                seed::seed(writer)?;
            }
            Ok(Opened::Created)
        }
    }
}

impl Store {
    /// Opens (and if allowed creates, migrates and seeds) the database at `path`, then checks it.
    ///
    /// Refuses a file that is not a cx-webhook database, is corrupt, or has a newer schema. Blocking:
    /// call it at start, or from a blocking thread.
    pub fn open(path: &Path, create: Create) -> Result<(Store, Opened), StoreError> {
        sqlite_process_settings();
        prepare_path(path, create)?;
        let open_err = |source| StoreError::Open {
            path: path.into(),
            source,
        };
        let mut writer = Connection::open_with_flags(
            path,
            OpenFlags::SQLITE_OPEN_READ_WRITE
                | OpenFlags::SQLITE_OPEN_CREATE
                | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .map_err(open_err)?;
        configure(&writer).map_err(open_err)?;

        let read_only = writer.is_readonly(rusqlite::MAIN_DB).map_err(open_err)?;
        let opened = bring_to_schema(&mut writer, path, create)?;
        if !read_only {
            // WAL is a property of the file; setting it needs write access.
            writer
                .pragma_update(None, "journal_mode", "WAL")
                .map_err(open_err)?;
        }
        writer
            .pragma_update(None, "synchronous", "FULL")
            .map_err(open_err)?;
        check_integrity(&writer, path, "quick_check")?;
        let book = book::BookCell::default();
        book.reload(&writer).map_err(open_err)?;

        let workers = std::thread::available_parallelism().map_or(2, |n| n.get());
        let store = Store {
            inner: Arc::new(Inner {
                path: path.into(),
                writer: Mutex::new(writer),
                readers: Mutex::new(Vec::new()),
                max_idle_readers: workers * 2 + 2,
                read_only,
                book,
            }),
        };
        Ok((store, opened))
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    /// True when the file could only be opened read-only (writes will fail).
    pub fn is_read_only(&self) -> bool {
        self.inner.read_only
    }

    /// Accounts and their transactions.
    pub fn accounts(&self) -> Accounts<'_> {
        Accounts { store: self }
    }

    /// Cities, dealers and the price list.
    pub fn catalog(&self) -> Catalog<'_> {
        Catalog { store: self }
    }

    /// Bookings kept in this file.
    pub fn bookings(&self) -> SqliteBookings {
        SqliteBookings::new(self.clone())
    }

    /// Writes (or rewrites) the demo data; bookings are never touched. Blocking.
    pub fn seed(&self) -> Result<(), StoreError> {
        self.write_now(|conn| {
            seed::seed(conn)?;
            Ok(self.inner.book.reload(conn)?)
        })
    }

    /// Runs `f` over the in-memory account book (see [`book`]), first checking the file for
    /// changes when that is due; `None` when the book is not held (too large): read SQLite.
    fn book<T>(&self, f: impl FnOnce(&book::Book) -> T) -> Option<T> {
        let cell = &self.inner.book;
        if cell.check_due() {
            // A failed check keeps the book as of the last good one and is retried at the next
            // interval; a per-call read would have failed the same way.
            if let Err(error) = self.read(|conn| cell.refresh(conn)) {
                tracing::warn!(
                    error = %crate::telemetry::error_chain(&error),
                    "cannot check the account tables for changes"
                );
            }
        }
        cell.with(f)
    }

    /// Runs a bounded, indexed read on the calling thread with a pooled read-only connection.
    /// See the module docs for why this is inline and what may run here.
    pub(crate) fn read<T>(
        &self,
        f: impl FnOnce(&Connection) -> rusqlite::Result<T>,
    ) -> Result<T, StoreError> {
        let conn = match lock(&self.inner.readers).pop() {
            Some(conn) => conn,
            None => open_reader(&self.inner.path)?,
        };
        let result = f(&conn);
        let mut idle = lock(&self.inner.readers);
        if idle.len() < self.inner.max_idle_readers {
            idle.push(conn);
        }
        Ok(result?)
    }

    /// Runs a read that may touch many pages on a blocking thread.
    pub(crate) async fn read_blocking<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Connection) -> rusqlite::Result<T> + Send + 'static,
    ) -> Result<T, StoreError> {
        let store = self.clone();
        let span = tracing::Span::current();
        tokio::task::spawn_blocking(move || span.in_scope(|| store.read(f))).await?
    }

    /// Runs `f` on the writer connection, on a blocking thread. `f` opens its own transaction.
    pub(crate) async fn write<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Connection) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        let store = self.clone();
        let span = tracing::Span::current();
        tokio::task::spawn_blocking(move || {
            span.in_scope(|| {
                let mut conn = lock(&store.inner.writer);
                f(&mut conn)
            })
        })
        .await?
    }

    /// Runs `f` on the writer connection on the calling thread (start-up use only).
    fn write_now<T>(
        &self,
        f: impl FnOnce(&mut Connection) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let mut conn = lock(&self.inner.writer);
        f(&mut conn)
    }

    /// Full integrity check plus row counts per table of the schema, by table name (for
    /// `cx-webhook db check`). Blocking.
    pub fn check(&self) -> Result<Vec<(String, i64)>, StoreError> {
        let conn = lock(&self.inner.writer);
        check_integrity(&conn, &self.inner.path, "integrity_check")?;
        let tables: Vec<String> = conn
            .prepare(
                "SELECT name FROM sqlite_schema
                 WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name",
            )?
            .query_map([], |r| r.get(0))?
            .collect::<rusqlite::Result<_>>()?;
        let mut counts = Vec::with_capacity(tables.len());
        for table in tables {
            // The name comes from the schema itself; quote it as an identifier all the same.
            let sql = format!("SELECT count(*) FROM \"{}\"", table.replace('"', "\"\""));
            let n: i64 = conn.query_row(&sql, [], |r| r.get(0))?;
            counts.push((table, n));
        }
        Ok(counts)
    }
}

fn is_not_a_database(e: &rusqlite::Error) -> bool {
    matches!(
        e.sqlite_error_code(),
        Some(rusqlite::ErrorCode::NotADatabase)
    )
}

fn check_integrity(conn: &Connection, path: &Path, pragma: &str) -> Result<(), StoreError> {
    let corrupt = |detail: String| StoreError::Corrupt {
        path: path.into(),
        detail,
    };
    let result: rusqlite::Result<String> =
        conn.query_row(&format!("PRAGMA {pragma}"), [], |r| r.get(0));
    match result {
        Ok(ok) if ok == "ok" => Ok(()),
        Ok(problem) => Err(corrupt(problem)),
        Err(e)
            if matches!(
                e.sqlite_error_code(),
                Some(rusqlite::ErrorCode::DatabaseCorrupt | rusqlite::ErrorCode::NotADatabase)
            ) =>
        {
            Err(corrupt(e.to_string()))
        }
        Err(e) => Err(e.into()),
    }
}
