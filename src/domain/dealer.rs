//! Dealers: showrooms and service centres, where they are, and when they take appointments.

use std::fmt;

use jiff::civil::{Date, Weekday};
use jiff::tz::TimeZone;
use jiff::{Timestamp, ToSpan};

use super::SlotTime;

/// A dealer id as the catalog writes it, e.g. `D-PUN-01`: uppercase ASCII letters, digits and
/// hyphens, 3 to 32 characters. Parsing trims and uppercases what the user said.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct DealerId(String);

impl DealerId {
    /// Parses user input (`d-pun-01 ` -> `D-PUN-01`).
    pub fn parse(input: &str) -> Option<DealerId> {
        let id = input.trim().to_ascii_uppercase();
        ((3..=32).contains(&id.len()) && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-'))
            .then_some(DealerId(id))
    }

    /// The id, e.g. `D-PUN-01`.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for DealerId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Sales showroom or service centre.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DealerKind {
    /// Sells cars.
    Sales,
    /// Services cars (bookable).
    Service,
}

impl DealerKind {
    /// The value the store keeps (`sales`, `service`).
    pub fn as_str(self) -> &'static str {
        match self {
            DealerKind::Sales => "sales",
            DealerKind::Service => "service",
        }
    }

    /// The stored value back (`None` for anything else).
    pub fn from_stored(value: &str) -> Option<DealerKind> {
        match value {
            "sales" => Some(DealerKind::Sales),
            "service" => Some(DealerKind::Service),
            _ => None,
        }
    }

    /// A phrase for messages.
    pub fn label(self) -> &'static str {
        match self {
            DealerKind::Sales => "showroom",
            DealerKind::Service => "service centre",
        }
    }
}

/// When a dealer takes appointments.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpeningHours {
    /// Days open (Monday first).
    pub days: Vec<Weekday>,
    /// Opening time (local).
    pub opens: SlotTime,
    /// Closing time (local); the last slot ends at or before it.
    pub closes: SlotTime,
    /// Slot length in minutes (at least 1).
    pub slot_minutes: u16,
    /// Appointments per slot.
    pub slot_capacity: u32,
}

impl OpeningHours {
    /// Whether the dealer opens on `day`.
    pub fn open_on(&self, day: Weekday) -> bool {
        self.days.contains(&day)
    }

    /// Slot start times of a day, in order.
    pub fn slots(&self) -> Vec<SlotTime> {
        let step = self.slot_minutes.max(1);
        let mut out = Vec::new();
        let mut start = self.opens;
        while let Some(end) = start.plus_minutes(step) {
            if end > self.closes {
                break;
            }
            out.push(start);
            start = end;
        }
        out
    }

    /// "Mon-Sat 09:00-18:00" style summary.
    pub fn summary(&self) -> String {
        let days = match (self.days.first(), self.days.last()) {
            (Some(first), Some(last)) if self.days.len() > 2 => {
                format!("{}-{}", day_name(*first), day_name(*last))
            }
            _ => self
                .days
                .iter()
                .map(|d| day_name(*d))
                .collect::<Vec<_>>()
                .join(", "),
        };
        format!("{days} {}-{}", self.opens, self.closes)
    }
}

const WEEK: [Weekday; 7] = [
    Weekday::Monday,
    Weekday::Tuesday,
    Weekday::Wednesday,
    Weekday::Thursday,
    Weekday::Friday,
    Weekday::Saturday,
    Weekday::Sunday,
];

/// Three-letter English day name.
pub fn day_name(day: Weekday) -> &'static str {
    match day {
        Weekday::Monday => "Mon",
        Weekday::Tuesday => "Tue",
        Weekday::Wednesday => "Wed",
        Weekday::Thursday => "Thu",
        Weekday::Friday => "Fri",
        Weekday::Saturday => "Sat",
        Weekday::Sunday => "Sun",
    }
}

/// The day for a three-letter name (`Mon`), any case.
pub fn parse_day(name: &str) -> Option<Weekday> {
    WEEK.into_iter()
        .find(|d| day_name(*d).eq_ignore_ascii_case(name.trim()))
}

/// A dealer or service centre.
#[derive(Debug, Clone)]
pub struct Dealer {
    /// Its id.
    pub id: DealerId,
    /// Its name.
    pub name: String,
    /// Showroom or service centre.
    pub kind: DealerKind,
    /// City name.
    pub city: String,
    /// Postal code.
    pub postal_code: String,
    /// Street address.
    pub address: String,
    /// Phone number (E.164).
    pub phone: String,
    /// The dealer's time zone: dates and slots are its local ones.
    pub time_zone: TimeZone,
    /// Opening hours and slots.
    pub hours: OpeningHours,
}

impl Dealer {
    /// Today's date where the dealer is.
    pub fn today(&self, now: Timestamp) -> Date {
        now.to_zoned_datetime(self.time_zone.clone()).date()
    }
}

/// The business's home time zone, for dates shown when no dealer says otherwise.
pub const HOME_TIME_ZONE: &str = "Asia/Kolkata";

/// [`HOME_TIME_ZONE`] (UTC if the bundled database lacked it, which it does not).
pub fn home_time_zone() -> TimeZone {
    TimeZone::get(HOME_TIME_ZONE).unwrap_or(TimeZone::UTC)
}

/// Today in [`HOME_TIME_ZONE`].
pub fn home_today(now: Timestamp) -> Date {
    now.to_zoned_datetime(home_time_zone()).date()
}

/// The bookable window seen from `today`: from tomorrow to `max_days_ahead` days ahead.
pub fn booking_window(today: Date, max_days_ahead: i64) -> (Date, Date) {
    let first = today.tomorrow().unwrap_or(today);
    let last = today.checked_add(max_days_ahead.days()).unwrap_or(today);
    (first, last)
}

/// A city the dealer network covers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct City {
    /// Its lookup key (`pune`).
    pub key: String,
    /// Its display name (`Pune`).
    pub name: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hours(opens: (u8, u8), closes: (u8, u8), slot_minutes: u16) -> OpeningHours {
        OpeningHours {
            days: vec![Weekday::Monday],
            opens: SlotTime::new(opens.0, opens.1).unwrap(),
            closes: SlotTime::new(closes.0, closes.1).unwrap(),
            slot_minutes,
            slot_capacity: 1,
        }
    }

    #[test]
    fn slots_fit_inside_opening_hours() {
        let s: Vec<String> = hours((9, 0), (11, 0), 30)
            .slots()
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(s, ["09:00", "09:30", "10:00", "10:30"]);
        let late = hours((22, 0), (23, 59), 60);
        assert_eq!(late.slots(), vec![SlotTime::new(22, 0).unwrap()]);
    }

    #[test]
    fn dealer_ids_are_normalised_or_refused() {
        assert_eq!(DealerId::parse(" d-pun-01 ").unwrap().as_str(), "D-PUN-01");
        for bad in ["", "D", "D PUN 01", "D-PUN-01; --", &"X".repeat(33)] {
            assert!(DealerId::parse(bad).is_none(), "{bad}");
        }
    }

    #[test]
    fn days_round_trip() {
        for day in WEEK {
            assert_eq!(parse_day(day_name(day)), Some(day));
        }
        assert_eq!(parse_day(" sat "), Some(Weekday::Saturday));
        assert_eq!(parse_day("Caturday"), None);
        let h = OpeningHours {
            days: WEEK[..6].to_vec(),
            ..hours((9, 0), (18, 0), 30)
        };
        assert_eq!(h.summary(), "Mon-Sat 09:00-18:00");
    }
}
