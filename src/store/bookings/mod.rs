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
//! Backends: [`sqlite::SqliteBookings`] (the embedded default, one writer per process).

pub mod sqlite;

use jiff::civil::Date;
use tokio::time::Instant;

use crate::domain::{Booking, BookingDraft, BookingId, BookingOutcome, DealerId, SlotCounts};

pub use super::{BoxError, RepoError as BookingError, RepoFuture};

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
