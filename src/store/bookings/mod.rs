//! Bookings behind one trait, so a backend plugs in without touching a handler.
//!
//! Every backend gives the same guarantees, for all the instances that share it:
//! - **atomic capacity**: the check that a slot has room and the insert are one step, so a slot never
//!   holds more than [`BookingDraft::capacity`] confirmed bookings;
//! - **idempotent per request**: a retry of the same call ([`BookingDraft::request_key`]) gets the
//!   booking it made, and so does a new call for the same vehicle in the same slot (the user said
//!   "book it" twice, or the first answer was lost to a deadline);
//! - **durable**: a booking answered as confirmed survives a crash;
//! - **non-guessable ids** ([`BookingId::random`]);
//! - **bounded by the call's deadline**: no wait outlives it, and a write that has not committed by
//!   then rolls back and reports [`BookingError::Deadline`]: nothing is left behind that the caller
//!   was not told about.
//!
//! Backends: [`sqlite::SqliteBookings`] (the embedded default, one writer per process) and
//! [`crate::store::postgres::PostgresBookings`] (shared by every instance). Both read a booking as
//! the same seven texts (`BookingRow`) and slot counts as `("HH:MM", n)` pairs (`slot_counts`),
//! so a stored value is checked the same way whichever backend holds it.

pub mod sqlite;

use jiff::civil::Date;
use tokio::time::Instant;

use crate::domain::{
    Booking, BookingDraft, BookingId, BookingOutcome, BookingStatus, DealerId, ServiceKey,
    SlotCounts, SlotTime, VehicleNumber,
};

pub use super::{BoxError, RepoError as BookingError, RepoFuture};
use crate::store::BadValue;

/// Where bookings live.
pub trait BookingRepository: Send + Sync + 'static {
    /// Makes the booking atomically, or finds the one this request (or this vehicle in this slot)
    /// already made, or reports the slot full. See the module docs for the guarantees.
    fn create<'a>(
        &'a self,
        draft: &'a BookingDraft,
        deadline: Instant,
    ) -> RepoFuture<'a, BookingOutcome>;

    /// Confirmed bookings per slot of `dealer` on `date`.
    fn slot_counts<'a>(
        &'a self,
        dealer: &'a DealerId,
        date: Date,
        deadline: Instant,
    ) -> RepoFuture<'a, SlotCounts>;

    /// One booking by id.
    fn get<'a>(&'a self, id: &'a BookingId, deadline: Instant) -> RepoFuture<'a, Option<Booking>>;

    /// The backend's name for logs and `db check` (`sqlite`, `postgres`).
    fn backend(&self) -> &'static str;
}

/// A booking as a backend reads it: booking id, dealer id, date (`YYYY-MM-DD`), time (`HH:MM`),
/// vehicle, service key and status, as texts.
pub(crate) struct BookingRow {
    texts: [String; 7],
}

impl BookingRow {
    /// Reads the seven columns with `text(i)`.
    pub fn read<E>(text: impl Fn(usize) -> Result<String, E>) -> Result<Self, E> {
        Ok(BookingRow {
            texts: [
                text(0)?,
                text(1)?,
                text(2)?,
                text(3)?,
                text(4)?,
                text(5)?,
                text(6)?,
            ],
        })
    }

    /// The typed booking, or the first value that does not parse.
    pub fn into_booking(self) -> Result<Booking, BadValue> {
        let [id, dealer, date, time, vehicle, service, status] = self.texts;
        fn check<T>(what: &'static str, value: &str, parsed: Option<T>) -> Result<T, BadValue> {
            parsed.ok_or_else(|| BadValue {
                what,
                value: value.to_owned(),
            })
        }
        Ok(Booking {
            id: check("booking id", &id, BookingId::parse(&id))?,
            dealer: check("dealer id", &dealer, DealerId::parse(&dealer))?,
            date: check("date", &date, date.parse().ok())?,
            time: check("time", &time, SlotTime::parse(&time))?,
            vehicle: check("vehicle", &vehicle, VehicleNumber::parse(&vehicle))?,
            service: ServiceKey::new(service),
            status: check("status", &status, BookingStatus::from_stored(&status))?,
        })
    }
}

/// Slot counts from `("HH:MM", confirmed bookings)` rows, or the first time that does not parse.
pub(crate) fn slot_counts(rows: Vec<(String, u32)>) -> Result<SlotCounts, BadValue> {
    let counts = rows
        .into_iter()
        .map(|(time, n)| match SlotTime::parse(&time) {
            Some(slot) => Ok((slot, n)),
            None => Err(BadValue {
                what: "time",
                value: time,
            }),
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(SlotCounts::new(counts))
}
