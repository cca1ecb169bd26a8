//! Service appointments: slots, booking ids, drafts and outcomes. What makes a booking valid lives in
//! the handler's checks; what makes it atomic and idempotent lives in each booking backend.

use std::collections::BTreeMap;
use std::fmt;

use jiff::civil::{Date, Time};

use super::{DealerId, ServiceKey, VehicleNumber};

/// How far ahead a booking may be made, in days.
pub const MAX_DAYS_AHEAD: i64 = 60;

/// A time of day on the minute (a slot start, opening or closing time). Its one text form is
/// `HH:MM`, which is also how every store keeps it (so it sorts as text).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SlotTime(u16);

impl SlotTime {
    /// `hour:minute` (`None` outside 00:00..=23:59).
    pub fn new(hour: u8, minute: u8) -> Option<SlotTime> {
        (hour < 24 && minute < 60).then(|| SlotTime(u16::from(hour) * 60 + u16::from(minute)))
    }

    /// A civil time on the minute (`None` when it has seconds: not a slot boundary).
    pub fn from_time(time: Time) -> Option<SlotTime> {
        if time.second() != 0 || time.subsec_nanosecond() != 0 {
            return None;
        }
        let hour = u8::try_from(time.hour()).ok()?;
        let minute = u8::try_from(time.minute()).ok()?;
        SlotTime::new(hour, minute)
    }

    /// Parses `HH:MM` (the stored form).
    pub fn parse(text: &str) -> Option<SlotTime> {
        let (h, m) = text.split_once(':')?;
        if h.len() != 2 || m.len() != 2 {
            return None;
        }
        SlotTime::new(h.parse().ok()?, m.parse().ok()?)
    }

    /// Minutes since midnight.
    pub fn minutes(self) -> u16 {
        self.0
    }

    /// `minutes` later the same day (`None` past midnight).
    pub fn plus_minutes(self, minutes: u16) -> Option<SlotTime> {
        let m = self.0.checked_add(minutes)?;
        (m < 24 * 60).then_some(SlotTime(m))
    }

    /// Minutes between two times of day.
    pub fn distance(self, other: SlotTime) -> u16 {
        self.0.abs_diff(other.0)
    }

    /// As a civil time.
    pub fn to_time(self) -> Time {
        // Both parts are in range by construction.
        Time::new((self.0 / 60) as i8, (self.0 % 60) as i8, 0, 0).unwrap_or(Time::midnight())
    }
}

impl fmt::Display for SlotTime {
    /// `HH:MM`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:02}:{:02}", self.0 / 60, self.0 % 60)
    }
}

/// A booking id: `BK-` and 10 Crockford base32 characters (50 random bits), e.g. `BK-7Q2M9ZK4XA`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct BookingId(String);

const CROCKFORD: &[u8; 32] = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ";

impl BookingId {
    /// A fresh random id from the OS's random source (not guessable).
    pub fn random() -> Result<BookingId, getrandom::Error> {
        let mut bytes = [0u8; 8];
        getrandom::fill(&mut bytes)?;
        let mut bits = u64::from_le_bytes(bytes);
        let mut id = String::with_capacity(13);
        id.push_str("BK-");
        for _ in 0..10 {
            id.push(CROCKFORD[(bits & 31) as usize] as char);
            bits >>= 5;
        }
        Ok(BookingId(id))
    }

    /// Parses an id (trimmed, any case).
    pub fn parse(text: &str) -> Option<BookingId> {
        let id = text.trim().to_ascii_uppercase();
        let body = id.strip_prefix("BK-")?;
        (body.len() == 10 && body.bytes().all(|b| CROCKFORD.contains(&b))).then_some(BookingId(id))
    }

    /// The id.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for BookingId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// What makes a retried call find the booking it made: the Dialogflow session and the
/// `detectIntentResponseId` (Dialogflow retries with both unchanged).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct RequestKey(String);

impl RequestKey {
    /// The key for one call of one session. Without a response id the booking's own details stand
    /// in, so the same request still maps to the same key.
    pub fn new(session: &str, response_id: &str, fallback: impl FnOnce() -> String) -> RequestKey {
        let response_id = response_id.trim();
        if response_id.is_empty() {
            RequestKey(format!("{session}/{}", fallback()))
        } else {
            RequestKey(format!("{session}/{response_id}"))
        }
    }

    /// The key.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Where a booking stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BookingStatus {
    /// Holds its slot.
    Confirmed,
    /// Gave its slot back.
    Cancelled,
}

impl BookingStatus {
    /// The stored and wire value (`confirmed`, `cancelled`).
    pub fn as_str(self) -> &'static str {
        match self {
            BookingStatus::Confirmed => "confirmed",
            BookingStatus::Cancelled => "cancelled",
        }
    }

    /// The stored value back.
    pub fn from_stored(value: &str) -> Option<BookingStatus> {
        match value {
            "confirmed" => Some(BookingStatus::Confirmed),
            "cancelled" => Some(BookingStatus::Cancelled),
            _ => None,
        }
    }
}

/// A booking every check has passed, ready for a backend to make atomically.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BookingDraft {
    /// Identifies the call, so a retry finds the booking it made.
    pub request_key: RequestKey,
    /// The Dialogflow session.
    pub session_id: String,
    /// The service centre (checked against the catalog).
    pub dealer: DealerId,
    /// The day (the dealer's local date).
    pub date: Date,
    /// The slot start (the dealer's local time).
    pub time: SlotTime,
    /// The vehicle.
    pub vehicle: VehicleNumber,
    /// The service type.
    pub service: ServiceKey,
    /// The car model, if the user gave one.
    pub car_model: Option<String>,
    /// Confirmed bookings the slot may hold (the dealer's slot capacity).
    pub capacity: u32,
}

impl BookingDraft {
    /// The confirmed booking this draft becomes under `id`.
    pub fn confirmed(&self, id: BookingId) -> Booking {
        Booking {
            id,
            dealer: self.dealer.clone(),
            date: self.date,
            time: self.time,
            vehicle: self.vehicle.clone(),
            service: self.service.clone(),
            status: BookingStatus::Confirmed,
        }
    }
}

/// A stored booking.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Booking {
    /// Its id.
    pub id: BookingId,
    /// The service centre.
    pub dealer: DealerId,
    /// The day.
    pub date: Date,
    /// The slot start.
    pub time: SlotTime,
    /// The vehicle.
    pub vehicle: VehicleNumber,
    /// The service type.
    pub service: ServiceKey,
    /// Where it stands.
    pub status: BookingStatus,
}

/// What a backend did with a [`BookingDraft`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BookingOutcome {
    /// The booking exists: made now (`replayed == false`), or found from an earlier call of the
    /// same request or of the same vehicle for the same slot.
    Confirmed {
        /// The booking.
        booking: Booking,
        /// True when nothing was written because the booking existed already.
        replayed: bool,
    },
    /// The slot holds its capacity of confirmed bookings.
    SlotFull,
}

/// Confirmed bookings per slot of one dealer on one day.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SlotCounts(BTreeMap<SlotTime, u32>);

impl SlotCounts {
    /// Counts from `(slot, confirmed bookings)` pairs.
    pub fn new(counts: impl IntoIterator<Item = (SlotTime, u32)>) -> SlotCounts {
        SlotCounts(counts.into_iter().collect())
    }

    /// Confirmed bookings in `slot`.
    pub fn get(&self, slot: SlotTime) -> u32 {
        self.0.get(&slot).copied().unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slot_times_have_one_text_form() {
        let t = SlotTime::new(9, 5).unwrap();
        assert_eq!(t.to_string(), "09:05");
        assert_eq!(SlotTime::parse("09:05"), Some(t));
        assert_eq!(SlotTime::from_time(jiff::civil::time(9, 5, 0, 0)), Some(t));
        assert_eq!(SlotTime::from_time(jiff::civil::time(9, 5, 30, 0)), None);
        assert_eq!(t.to_time(), jiff::civil::time(9, 5, 0, 0));
        for bad in ["9:05", "24:00", "12:60", "12-30", ""] {
            assert_eq!(SlotTime::parse(bad), None, "{bad}");
        }
        assert_eq!(SlotTime::new(23, 30).unwrap().plus_minutes(30), None);
        assert_eq!(t.distance(SlotTime::new(10, 0).unwrap()), 55);
    }

    #[test]
    fn booking_ids_look_right_and_differ() {
        let ids: std::collections::HashSet<String> = (0..1000)
            .map(|_| BookingId::random().unwrap().as_str().to_owned())
            .collect();
        assert_eq!(ids.len(), 1000);
        for id in &ids {
            assert_eq!(id.len(), 13);
            assert_eq!(BookingId::parse(&id.to_lowercase()).unwrap().as_str(), id);
        }
        assert!(BookingId::parse("BK-0000").is_none());
        assert!(BookingId::parse("BK-UUUUUUUUUU").is_none());
    }

    #[test]
    fn request_keys_prefer_the_response_id() {
        let k = RequestKey::new("s1", " r1 ", || unreachable!());
        assert_eq!(k.as_str(), "s1/r1");
        let k = RequestKey::new("s1", "", || "MH12AB1234/D-PUN-01".into());
        assert_eq!(k.as_str(), "s1/MH12AB1234/D-PUN-01");
    }
}
