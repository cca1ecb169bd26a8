//! Service appointments: create one without ever double-booking, idempotently, durably.
//!
//! [`create`] runs in one `BEGIN IMMEDIATE` transaction on the writer connection (one writer per
//! process, and IMMEDIATE takes SQLite's write lock up front against other processes), so the
//! capacity check and the insert cannot interleave with another booking:
//! 1. a row with the same `request_key` (the Dialogflow session + `detectIntentResponseId`) is a retry
//!    of a call already answered: its booking is returned, nothing is written;
//! 2. a confirmed booking of the same vehicle into the same slot is returned as well (the user said
//!    "book it" twice);
//! 3. otherwise, if the slot holds `slot_capacity` confirmed bookings, the answer is [`Outcome::SlotFull`];
//! 4. otherwise the booking is inserted with a random id (`BK-` + 10 Crockford base32 characters, 50
//!    random bits; unique by constraint, and re-drawn on the rare collision) and committed with
//!    `synchronous=FULL`, so a booking answered as confirmed survives a crash.

use jiff::Timestamp;
use jiff::civil::{Date, Time};
use rusqlite::{Connection, OptionalExtension, TransactionBehavior, params};

use super::StoreError;
use crate::domain::VehicleNumber;

/// A booking to make.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewBooking {
    /// Identifies the request, so a retry finds the booking it made.
    pub request_key: String,
    /// Dealer (a service centre).
    pub dealer_id: String,
    /// Day of the appointment (dealer's local date).
    pub date: Date,
    /// Slot start (dealer's local time).
    pub time: Time,
    /// The vehicle.
    pub vehicle: VehicleNumber,
    /// Service type key.
    pub service_key: String,
    /// Car model, if known.
    pub car_model: Option<String>,
    /// Dialogflow session id.
    pub session_id: String,
}

/// A stored booking.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Booking {
    /// `BK-…`.
    pub id: String,
    /// Dealer.
    pub dealer_id: String,
    /// Day.
    pub date: Date,
    /// Slot start.
    pub time: Time,
    /// Vehicle registration number.
    pub vehicle_number: String,
    /// Service type key.
    pub service_key: String,
    /// `confirmed` or `cancelled`.
    pub status: String,
}

/// What [`create`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The booking exists: made now (`replayed == false`) or by an earlier identical call.
    Confirmed {
        /// The booking.
        booking: Booking,
        /// True when no row was written because the booking already existed.
        replayed: bool,
    },
    /// The slot is at capacity.
    SlotFull,
    /// The dealer does not exist.
    UnknownDealer,
}

/// `HH:MM` as stored.
pub fn slot_text(time: Time) -> String {
    time.strftime("%H:%M").to_string()
}

const CROCKFORD: &[u8; 32] = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ";

/// A fresh random booking id: `BK-` and 10 Crockford base32 characters (50 bits from the OS RNG).
pub fn new_booking_id() -> Result<String, StoreError> {
    let mut bytes = [0u8; 8];
    getrandom::fill(&mut bytes).map_err(|e| {
        StoreError::Sqlite(rusqlite::Error::ToSqlConversionFailure(
            format!("no randomness for a booking id: {e}").into(),
        ))
    })?;
    let mut bits = u64::from_le_bytes(bytes);
    let mut id = String::with_capacity(13);
    id.push_str("BK-");
    for _ in 0..10 {
        id.push(CROCKFORD[(bits & 31) as usize] as char);
        bits >>= 5;
    }
    Ok(id)
}

fn booking_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Booking> {
    let date: String = r.get(2)?;
    let time: String = r.get(3)?;
    let bad = |what: &str, v: &str| {
        rusqlite::Error::FromSqlConversionFailure(
            0,
            rusqlite::types::Type::Text,
            format!("bad {what} {v:?}").into(),
        )
    };
    Ok(Booking {
        id: r.get(0)?,
        dealer_id: r.get(1)?,
        date: date.parse().map_err(|_| bad("date", &date))?,
        time: time.parse().map_err(|_| bad("time", &time))?,
        vehicle_number: r.get(4)?,
        service_key: r.get(5)?,
        status: r.get(6)?,
    })
}

const BOOKING_COLUMNS: &str =
    "booking_id, dealer_id, slot_date, slot_time, vehicle_number, service_key, status";

/// One booking by id.
pub fn booking(conn: &Connection, id: &str) -> rusqlite::Result<Option<Booking>> {
    conn.prepare_cached(&format!(
        "SELECT {BOOKING_COLUMNS} FROM bookings WHERE booking_id = ?1"
    ))?
    .query_row([id], booking_row)
    .optional()
}

/// Confirmed bookings in one slot (an index range; safe inline).
pub fn booked(conn: &Connection, dealer_id: &str, date: Date, time: Time) -> rusqlite::Result<i64> {
    conn.prepare_cached(
        "SELECT count(*) FROM bookings
         WHERE dealer_id = ?1 AND slot_date = ?2 AND slot_time = ?3 AND status = 'confirmed'",
    )?
    .query_row(params![dealer_id, date.to_string(), slot_text(time)], |r| {
        r.get(0)
    })
}

/// Confirmed bookings per slot (`HH:MM` -> count) of one dealer on one day (an index range).
pub fn booked_by_slot(
    conn: &Connection,
    dealer_id: &str,
    date: Date,
) -> rusqlite::Result<std::collections::HashMap<String, i64>> {
    let mut stmt = conn.prepare_cached(
        "SELECT slot_time, count(*) FROM bookings
         WHERE dealer_id = ?1 AND slot_date = ?2 AND status = 'confirmed'
         GROUP BY slot_time",
    )?;
    let rows = stmt.query_map(params![dealer_id, date.to_string()], |r| {
        Ok((r.get(0)?, r.get(1)?))
    })?;
    rows.collect()
}

/// Creates the booking unless it exists already or the slot is full (see the module docs).
pub fn create(
    conn: &mut Connection,
    new: &NewBooking,
    now: Timestamp,
) -> Result<Outcome, StoreError> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let date = new.date.to_string();
    let time = slot_text(new.time);

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
                new.request_key,
                new.vehicle.as_str(),
                new.dealer_id,
                date,
                time
            ],
            booking_row,
        )
        .optional()?;
    if let Some(booking) = earlier {
        return Ok(Outcome::Confirmed {
            booking,
            replayed: true,
        });
    }

    let capacity: Option<i64> = tx
        .prepare_cached("SELECT slot_capacity FROM dealers WHERE dealer_id = ?1")?
        .query_row([&new.dealer_id], |r| r.get(0))
        .optional()?;
    let Some(capacity) = capacity else {
        return Ok(Outcome::UnknownDealer);
    };
    if booked(&tx, &new.dealer_id, new.date, new.time)? >= capacity {
        return Ok(Outcome::SlotFull);
    }

    let mut insert = tx.prepare_cached(
        "INSERT INTO bookings (booking_id, request_key, dealer_id, slot_date, slot_time,
             vehicle_number, service_key, car_model, session_id, status, created_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, 'confirmed', ?10)
         ON CONFLICT(booking_id) DO NOTHING",
    )?;
    let mut id = new_booking_id()?;
    // A collision of 50 random bits is practically impossible; draw again if it happens.
    while insert.execute(params![
        id,
        new.request_key,
        new.dealer_id,
        date,
        time,
        new.vehicle.as_str(),
        new.service_key,
        new.car_model,
        new.session_id,
        now.to_string(),
    ])? == 0
    {
        id = new_booking_id()?;
    }
    drop(insert);
    tx.commit()?;
    Ok(Outcome::Confirmed {
        booking: Booking {
            id,
            dealer_id: new.dealer_id.clone(),
            date: new.date,
            time: new.time,
            vehicle_number: new.vehicle.as_str().to_owned(),
            service_key: new.service_key.clone(),
            status: "confirmed".into(),
        },
        replayed: false,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn booking_ids_look_right_and_differ() {
        let ids: std::collections::HashSet<String> =
            (0..1000).map(|_| new_booking_id().unwrap()).collect();
        assert_eq!(ids.len(), 1000);
        for id in &ids {
            assert_eq!(id.len(), 13);
            assert!(id.starts_with("BK-"));
            assert!(id[3..].bytes().all(|b| CROCKFORD.contains(&b)));
        }
    }
}
