//! Bookings in the embedded SQLite file: one writer per process, SQLite's write lock across processes.
//!
//! [`SqliteBookings::create`] runs one `BEGIN IMMEDIATE` transaction on the writer connection, on the
//! blocking pool (IMMEDIATE takes the write lock up front, against other processes too), so the
//! capacity check and the insert cannot interleave with another booking:
//! 1. a row with the same request key is a retry of a call already answered, and a confirmed booking
//!    of the same vehicle into the same slot is the user saying "book it" twice: either is returned
//!    and nothing is written;
//! 2. otherwise, a slot holding its capacity of confirmed bookings is [`BookingOutcome::SlotFull`];
//! 3. otherwise the booking is inserted with a random id (unique by constraint, re-drawn on the rare
//!    collision) and committed with `synchronous=FULL`.
//!
//! The call's deadline bounds it: the lock wait (`busy_timeout`) is at most the time left, and the
//! deadline is checked again just before `COMMIT`; past it the transaction rolls back and the answer
//! is [`BookingError::Deadline`]. A commit that races the deadline anyway (it was checked, then the
//! `fsync` ran long) is found by the next attempt through rule 1 (same vehicle, same slot), so the
//! user is told about it then rather than booked twice.

use std::time::{Duration, Instant as StdInstant};

use jiff::Timestamp;
use jiff::civil::Date;
use rusqlite::{Connection, ErrorCode, OptionalExtension, TransactionBehavior, params};
use tokio::time::Instant;

use super::{BookingError, BookingRepository, BookingRow, RepoFuture, slot_counts};
use crate::domain::{Booking, BookingDraft, BookingId, BookingOutcome, DealerId, SlotCounts};
use crate::store::{BUSY_TIMEOUT, Store, StoreError, bad_value};

/// Bookings in a [`Store`]'s file.
#[derive(Debug, Clone)]
pub struct SqliteBookings {
    store: Store,
}

impl SqliteBookings {
    /// Bookings kept in `store`.
    pub fn new(store: Store) -> Self {
        SqliteBookings { store }
    }
}

const BOOKING_COLUMNS: &str =
    "booking_id, dealer_id, slot_date, slot_time, vehicle_number, service_key, status";

fn booking_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Booking> {
    BookingRow::read(|i| r.get::<_, String>(i))?
        .into_booking()
        .map_err(|e| bad_value(e.what, &e.value))
}

/// Confirmed bookings in one slot.
fn booked(conn: &Connection, draft: &BookingDraft) -> rusqlite::Result<u32> {
    conn.prepare_cached(
        "SELECT count(*) FROM bookings
         WHERE dealer_id = ?1 AND slot_date = ?2 AND slot_time = ?3 AND status = 'confirmed'",
    )?
    .query_row(
        params![
            draft.dealer.as_str(),
            draft.date.to_string(),
            draft.time.to_string()
        ],
        |r| r.get(0),
    )
}

/// Why a write failed, in the trait's terms.
pub(crate) fn classify(e: StoreError, deadline: StdInstant) -> BookingError {
    let code = match &e {
        StoreError::Sqlite(s) => s.sqlite_error_code(),
        _ => None,
    };
    match code {
        Some(ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked)
            if StdInstant::now() >= deadline =>
        {
            BookingError::Deadline
        }
        Some(
            ErrorCode::DatabaseBusy
            | ErrorCode::DatabaseLocked
            | ErrorCode::ReadOnly
            | ErrorCode::DiskFull
            | ErrorCode::CannotOpen,
        ) => BookingError::Unavailable(e.into()),
        _ => BookingError::Failed(e.into()),
    }
}

/// The transaction itself (see the module docs). `Ok(None)` means the deadline passed before commit
/// and everything rolled back.
fn create_now(
    conn: &mut Connection,
    draft: &BookingDraft,
    deadline: StdInstant,
) -> Result<Option<BookingOutcome>, StoreError> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let (date, time) = (draft.date.to_string(), draft.time.to_string());
    let earlier = tx
        .prepare_cached(&format!(
            "SELECT {BOOKING_COLUMNS} FROM bookings WHERE request_key = ?1
             UNION ALL
             SELECT {BOOKING_COLUMNS} FROM bookings
             WHERE vehicle_number = ?2 AND dealer_id = ?3 AND slot_date = ?4 AND slot_time = ?5
               AND status = 'confirmed'
             LIMIT 1"
        ))?
        .query_row(
            params![
                draft.request_key.as_str(),
                draft.vehicle.as_str(),
                draft.dealer.as_str(),
                date,
                time
            ],
            booking_row,
        )
        .optional()?;
    if let Some(booking) = earlier {
        return Ok(Some(BookingOutcome::Confirmed {
            booking,
            replayed: true,
        }));
    }
    if booked(&tx, draft)? >= draft.capacity {
        return Ok(Some(BookingOutcome::SlotFull));
    }
    let mut insert = tx.prepare_cached(
        "INSERT INTO bookings (booking_id, request_key, dealer_id, slot_date, slot_time,
             vehicle_number, service_key, car_model, session_id, status, created_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, 'confirmed', ?10)
         ON CONFLICT(booking_id) DO NOTHING",
    )?;
    let now = Timestamp::now().to_string();
    let id = loop {
        let id = BookingId::random().map_err(|e| {
            StoreError::Sqlite(rusqlite::Error::ToSqlConversionFailure(
                format!("no randomness for a booking id: {e}").into(),
            ))
        })?;
        // A collision of 50 random bits is practically impossible; draw again if it happens.
        let inserted = insert.execute(params![
            id.as_str(),
            draft.request_key.as_str(),
            draft.dealer.as_str(),
            date,
            time,
            draft.vehicle.as_str(),
            draft.service.as_str(),
            draft.car_model,
            draft.session_id,
            now,
        ])?;
        if inserted == 1 {
            break id;
        }
    };
    drop(insert);
    if StdInstant::now() >= deadline {
        // The caller has been (or is about to be) told "try again": write nothing it wasn't told.
        tx.rollback()?;
        return Ok(None);
    }
    tx.commit()?;
    Ok(Some(BookingOutcome::Confirmed {
        booking: draft.confirmed(id),
        replayed: false,
    }))
}

impl BookingRepository for SqliteBookings {
    fn create<'a>(
        &'a self,
        draft: &'a BookingDraft,
        deadline: Instant,
    ) -> RepoFuture<'a, BookingOutcome> {
        Box::pin(async move {
            if self.store.is_read_only() {
                return Err(BookingError::Unavailable(
                    format!("{} is read-only", self.store.path().display()).into(),
                ));
            }
            let deadline = deadline.into_std();
            let owned = draft.clone();
            let result = self
                .store
                .write(move |conn| {
                    let left = deadline.saturating_duration_since(StdInstant::now());
                    if left.is_zero() {
                        return Ok(None);
                    }
                    // Wait for another process's write lock no longer than the call may.
                    conn.busy_timeout(left.min(BUSY_TIMEOUT).max(Duration::from_millis(1)))?;
                    let result = create_now(conn, &owned, deadline);
                    conn.busy_timeout(BUSY_TIMEOUT)?;
                    result
                })
                .await;
            match result {
                Ok(Some(outcome)) => Ok(outcome),
                Ok(None) => Err(BookingError::Deadline),
                Err(e) => Err(classify(e, deadline)),
            }
        })
    }

    fn slot_counts<'a>(
        &'a self,
        dealer: &'a DealerId,
        date: Date,
        _deadline: Instant,
    ) -> RepoFuture<'a, SlotCounts> {
        // An index range over one dealer's day: inline, and it never waits for the writer (WAL).
        Box::pin(async move {
            let rows: Vec<(String, u32)> = self
                .store
                .read(|conn| {
                    let mut stmt = conn.prepare_cached(
                        "SELECT slot_time, count(*) FROM bookings
                         WHERE dealer_id = ?1 AND slot_date = ?2 AND status = 'confirmed'
                         GROUP BY slot_time",
                    )?;
                    let rows = stmt.query_map(params![dealer.as_str(), date.to_string()], |r| {
                        Ok((r.get(0)?, r.get(1)?))
                    })?;
                    rows.collect()
                })
                .map_err(|e| BookingError::Failed(e.into()))?;
            slot_counts(rows).map_err(|e| BookingError::Failed(e.into()))
        })
    }

    fn get<'a>(&'a self, id: &'a BookingId, _deadline: Instant) -> RepoFuture<'a, Option<Booking>> {
        Box::pin(async move {
            self.store
                .read(|conn| {
                    conn.prepare_cached(&format!(
                        "SELECT {BOOKING_COLUMNS} FROM bookings WHERE booking_id = ?1"
                    ))?
                    .query_row([id.as_str()], booking_row)
                    .optional()
                })
                .map_err(|e| BookingError::Failed(e.into()))
        })
    }

    fn backend(&self) -> &'static str {
        "sqlite"
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::domain::{RequestKey, ServiceKey, SlotTime, VehicleNumber};
    use crate::store::Create;

    fn draft(n: u32) -> BookingDraft {
        BookingDraft {
            request_key: RequestKey::new("s", &format!("r-{n}"), String::new),
            session_id: "s".into(),
            dealer: DealerId::parse("D-PUN-01").unwrap(),
            date: jiff::civil::date(2031, 3, 14),
            time: SlotTime::new(10, 30).unwrap(),
            vehicle: VehicleNumber::parse(&format!("MH12AB{:04}", 1000 + n)).unwrap(),
            service: ServiceKey::new("periodic"),
            car_model: None,
            capacity: 3,
        }
    }

    /// Issue 14: with the file locked by another process past the caller's deadline, the write
    /// gives up with `Deadline` and nothing is committed afterwards.
    #[tokio::test]
    async fn a_write_that_misses_its_deadline_commits_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("cx.db");
        let (store, _) = Store::open(&path, Create::IfMissing { seed: true }).unwrap();
        let bookings = SqliteBookings::new(store.clone());

        // Another connection (as another process would) holds the write lock for 1 s.
        let locker = std::thread::spawn({
            let path = path.clone();
            move || {
                let conn = Connection::open(&path).unwrap();
                conn.execute_batch("BEGIN IMMEDIATE").unwrap();
                std::thread::sleep(Duration::from_millis(1000));
                conn.execute_batch("ROLLBACK").unwrap();
            }
        });
        std::thread::sleep(Duration::from_millis(100));
        let deadline = Instant::now() + Duration::from_millis(150);
        let started = StdInstant::now();
        let result = bookings.create(&draft(1), deadline).await;
        assert!(matches!(result, Err(BookingError::Deadline)), "{result:?}");
        assert!(
            started.elapsed() < Duration::from_millis(900),
            "waited past the deadline"
        );
        locker.join().unwrap();

        let far = Instant::now() + Duration::from_secs(10);
        let counts = bookings
            .slot_counts(&draft(1).dealer, draft(1).date, far)
            .await
            .unwrap();
        assert_eq!(
            counts.get(draft(1).time),
            0,
            "a given-up booking was committed"
        );
        // The next attempt books normally.
        let outcome = bookings.create(&draft(1), far).await.unwrap();
        assert!(matches!(
            outcome,
            BookingOutcome::Confirmed {
                replayed: false,
                ..
            }
        ));
    }
}
