//! Typed reads: accounts, transactions, dealers and the price list.
//!
//! Every query here is bounded and indexed (a primary-key lookup or an index range with a `LIMIT`),
//! which is what makes it safe to run inline (see the module docs of [`crate::store`]). Lookups by
//! what a user typed go through [`key`], the one normalisation shared with the seed data, and through
//! alias tables (`bombay` -> Mumbai, `general service` -> periodic service).

use jiff::Timestamp;
use jiff::civil::{Time, Weekday};
use rusqlite::{Connection, OptionalExtension, Row, params};

use crate::domain::{AccountId, Currency, Money};

/// Normalises user text into a lookup key: lowercase ASCII letters and digits, single spaces.
pub fn key(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for word in text
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
    {
        if !out.is_empty() {
            out.push(' ');
        }
        out.extend(word.chars().flat_map(char::to_lowercase));
    }
    out
}

fn currency(code: &str) -> rusqlite::Result<Currency> {
    Currency::parse(code).ok_or_else(|| {
        rusqlite::Error::FromSqlConversionFailure(
            0,
            rusqlite::types::Type::Text,
            format!("bad currency code {code:?}").into(),
        )
    })
}

fn conversion(what: &str, value: &str) -> rusqlite::Error {
    rusqlite::Error::FromSqlConversionFailure(
        0,
        rusqlite::types::Type::Text,
        format!("bad {what} {value:?}").into(),
    )
}

/// A customer account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Account {
    /// Its number.
    pub id: AccountId,
    /// The holder's name.
    pub holder_name: String,
    /// Current balance.
    pub balance: Money,
}

/// One posted transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transaction {
    /// When it was posted.
    pub posted_at: Timestamp,
    /// What it was.
    pub description: String,
    /// Signed amount: negative for debits.
    pub amount: Money,
}

/// The account with this id, if it exists.
pub fn account(conn: &Connection, id: &AccountId) -> rusqlite::Result<Option<Account>> {
    conn.prepare_cached(
        "SELECT holder_name, currency, balance_minor FROM accounts WHERE account_id = ?1",
    )?
    .query_row([id.as_str()], |r| {
        Ok(Account {
            id: id.clone(),
            holder_name: r.get(0)?,
            balance: Money::new(r.get(2)?, currency(&r.get::<_, String>(1)?)?),
        })
    })
    .optional()
}

/// The newest `limit` transactions of one account, newest first.
pub fn recent_transactions(
    conn: &Connection,
    id: &AccountId,
    limit: u32,
) -> rusqlite::Result<Vec<Transaction>> {
    let mut stmt = conn.prepare_cached(
        "SELECT t.posted_at, t.description, t.amount_minor, a.currency
         FROM transactions t JOIN accounts a ON a.account_id = t.account_id
         WHERE t.account_id = ?1
         ORDER BY t.posted_at DESC, t.id DESC
         LIMIT ?2",
    )?;
    let rows = stmt.query_map(params![id.as_str(), limit], |r| {
        let posted: String = r.get(0)?;
        Ok(Transaction {
            posted_at: posted
                .parse()
                .map_err(|_| conversion("timestamp", &posted))?,
            description: r.get(1)?,
            amount: Money::new(r.get(2)?, currency(&r.get::<_, String>(3)?)?),
        })
    })?;
    rows.collect()
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
    /// Parses `sales`/`showroom`/`dealer` or `service`/`service centre`/`workshop`.
    pub fn parse(text: &str) -> Option<DealerKind> {
        match key(text).as_str() {
            "sales" | "sale" | "showroom" | "dealer" | "dealership" | "buy" => {
                Some(DealerKind::Sales)
            }
            "service" | "service centre" | "service center" | "workshop" | "servicing"
            | "repair" => Some(DealerKind::Service),
            _ => None,
        }
    }

    /// The stored value.
    pub fn as_str(self) -> &'static str {
        match self {
            DealerKind::Sales => "sales",
            DealerKind::Service => "service",
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
    pub opens: Time,
    /// Closing time (local); the last slot starts a slot length before it.
    pub closes: Time,
    /// Slot length in minutes.
    pub slot_minutes: i32,
    /// Appointments per slot.
    pub slot_capacity: i32,
}

impl OpeningHours {
    /// Whether the dealer opens on `day`.
    pub fn open_on(&self, day: Weekday) -> bool {
        self.days.contains(&day)
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
        format!(
            "{days} {}-{}",
            self.opens.strftime("%H:%M"),
            self.closes.strftime("%H:%M")
        )
    }
}

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

fn parse_day(name: &str) -> Option<Weekday> {
    [
        Weekday::Monday,
        Weekday::Tuesday,
        Weekday::Wednesday,
        Weekday::Thursday,
        Weekday::Friday,
        Weekday::Saturday,
        Weekday::Sunday,
    ]
    .into_iter()
    .find(|d| day_name(*d).eq_ignore_ascii_case(name.trim()))
}

/// A dealer or service centre.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dealer {
    /// Its id, e.g. `D-PUN-01`.
    pub id: String,
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
    /// IANA time zone of the dealer, e.g. `Asia/Kolkata`.
    pub time_zone: String,
    /// Opening hours and slots.
    pub hours: OpeningHours,
}

const DEALER_COLUMNS: &str = "d.dealer_id, d.name, d.kind, c.name, d.postal_code, d.address, \
     d.phone, d.time_zone, d.open_days, d.opens_at, d.closes_at, d.slot_minutes, d.slot_capacity";

fn dealer_row(r: &Row<'_>) -> rusqlite::Result<Dealer> {
    let kind: String = r.get(2)?;
    let days: String = r.get(8)?;
    let time = |i: usize| -> rusqlite::Result<Time> {
        let text: String = r.get(i)?;
        text.parse().map_err(|_| conversion("time", &text))
    };
    Ok(Dealer {
        id: r.get(0)?,
        name: r.get(1)?,
        kind: match kind.as_str() {
            "sales" => DealerKind::Sales,
            "service" => DealerKind::Service,
            _ => return Err(conversion("dealer kind", &kind)),
        },
        city: r.get(3)?,
        postal_code: r.get(4)?,
        address: r.get(5)?,
        phone: r.get(6)?,
        time_zone: r.get(7)?,
        hours: OpeningHours {
            days: days
                .split(',')
                .map(|d| parse_day(d).ok_or_else(|| conversion("day", d)))
                .collect::<rusqlite::Result<_>>()?,
            opens: time(9)?,
            closes: time(10)?,
            slot_minutes: r.get(11)?,
            slot_capacity: r.get(12)?,
        },
    })
}

/// One dealer by id.
pub fn dealer(conn: &Connection, id: &str) -> rusqlite::Result<Option<Dealer>> {
    conn.prepare_cached(&format!(
        "SELECT {DEALER_COLUMNS} FROM dealers d JOIN cities c ON c.city_key = d.city_key
         WHERE d.dealer_id = ?1"
    ))?
    .query_row([id.trim().to_ascii_uppercase()], dealer_row)
    .optional()
}

/// Runs a `(key, display name)` lookup whose `?1` is the normalised `text`.
fn resolve(conn: &Connection, sql: &str, text: &str) -> rusqlite::Result<Option<(String, String)>> {
    conn.prepare_cached(sql)?
        .query_row([key(text)], |r| Ok((r.get(0)?, r.get(1)?)))
        .optional()
}

/// A city the dealer network covers: `(city_key, display name)` for a name or alias.
pub fn resolve_city(conn: &Connection, text: &str) -> rusqlite::Result<Option<(String, String)>> {
    resolve(
        conn,
        "SELECT c.city_key, c.name FROM cities c
         WHERE c.city_key = ?1
            OR c.city_key = (SELECT city_key FROM city_aliases WHERE alias_key = ?1)",
        text,
    )
}

/// Which dealers to list.
#[derive(Debug, Clone, Copy, Default)]
pub struct DealerFilter<'a> {
    /// Only this kind.
    pub kind: Option<DealerKind>,
    /// Only dealers that carry/service this model key.
    pub model_key: Option<&'a str>,
}

/// Dealers matching `condition` (over `?1` and optionally `?2`) and the filter.
fn dealers_where(
    conn: &Connection,
    condition: &str,
    place: &str,
    upper: &str,
    filter: DealerFilter<'_>,
    limit: u32,
) -> rusqlite::Result<Vec<Dealer>> {
    let sql = format!(
        "SELECT {DEALER_COLUMNS} FROM dealers d JOIN cities c ON c.city_key = d.city_key
         WHERE {condition}
           AND (?3 IS NULL OR d.kind = ?3)
           AND (?4 IS NULL OR EXISTS (SELECT 1 FROM dealer_models m
                                      WHERE m.model_key = ?4 AND m.dealer_id = d.dealer_id))
         ORDER BY d.kind = 'service' DESC, d.dealer_id
         LIMIT ?5"
    );
    let mut stmt = conn.prepare_cached(&sql)?;
    let rows = stmt.query_map(
        params![
            place,
            upper,
            filter.kind.map(DealerKind::as_str),
            filter.model_key,
            limit
        ],
        dealer_row,
    )?;
    rows.collect()
}

/// Dealers in a city (by `city_key`), service centres first.
pub fn dealers_in_city(
    conn: &Connection,
    city_key: &str,
    filter: DealerFilter<'_>,
    limit: u32,
) -> rusqlite::Result<Vec<Dealer>> {
    dealers_where(conn, "d.city_key = ?1", city_key, "", filter, limit)
}

/// Dealers with this postal code; if none, dealers in the same postal district (same first three
/// digits, which is how Indian PIN codes are organised).
pub fn dealers_near_postal_code(
    conn: &Connection,
    postal_code: &str,
    filter: DealerFilter<'_>,
    limit: u32,
) -> rusqlite::Result<Vec<Dealer>> {
    let exact = dealers_where(conn, "d.postal_code = ?1", postal_code, "", filter, limit)?;
    if !exact.is_empty() || postal_code.len() < 3 || !postal_code.is_ascii() {
        return Ok(exact);
    }
    let district = &postal_code[..3];
    let next: String = match district.parse::<u32>() {
        Ok(n) => format!("{:03}", n + 1),
        Err(_) => return Ok(exact),
    };
    dealers_where(
        conn,
        "d.postal_code >= ?1 AND d.postal_code < ?2",
        district,
        &next,
        filter,
        limit,
    )
}

/// Display names of all cities with dealers (a small table), alphabetically.
pub fn city_names(conn: &Connection) -> rusqlite::Result<Vec<String>> {
    names(conn, "SELECT name FROM cities ORDER BY name")
}

/// Display names of all car models on the price list, alphabetically.
pub fn model_names(conn: &Connection) -> rusqlite::Result<Vec<String>> {
    names(conn, "SELECT name FROM car_models ORDER BY name")
}

/// Display names of all service types, alphabetically.
pub fn service_names(conn: &Connection) -> rusqlite::Result<Vec<String>> {
    names(conn, "SELECT name FROM service_types ORDER BY name")
}

fn names(conn: &Connection, sql: &str) -> rusqlite::Result<Vec<String>> {
    let mut stmt = conn.prepare_cached(sql)?;
    let rows = stmt.query_map([], |r| r.get(0))?;
    rows.collect()
}

/// A car model for a name the user said: `(model_key, display name)`.
pub fn resolve_model(conn: &Connection, text: &str) -> rusqlite::Result<Option<(String, String)>> {
    resolve(
        conn,
        "SELECT model_key, name FROM car_models WHERE model_key = ?1",
        text,
    )
}

/// A service type for a name or alias: `(service_key, display name)`.
pub fn resolve_service(
    conn: &Connection,
    text: &str,
) -> rusqlite::Result<Option<(String, String)>> {
    resolve(
        conn,
        "SELECT s.service_key, s.name FROM service_types s
         WHERE s.service_key = ?1
            OR s.service_key = (SELECT service_key FROM service_aliases WHERE alias_key = ?1)",
        text,
    )
}

/// Fuel a price applies to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fuel {
    /// Petrol.
    Petrol,
    /// Diesel.
    Diesel,
    /// Compressed natural gas.
    Cng,
    /// Battery electric.
    Electric,
}

impl Fuel {
    /// Parses `petrol`/`gasoline`, `diesel`, `cng`, `electric`/`ev`.
    pub fn parse(text: &str) -> Option<Fuel> {
        match key(text).as_str() {
            "petrol" | "gasoline" | "gas" => Some(Fuel::Petrol),
            "diesel" => Some(Fuel::Diesel),
            "cng" => Some(Fuel::Cng),
            "electric" | "ev" | "battery" => Some(Fuel::Electric),
            _ => None,
        }
    }

    /// The stored value and display word.
    pub fn as_str(self) -> &'static str {
        match self {
            Fuel::Petrol => "petrol",
            Fuel::Diesel => "diesel",
            Fuel::Cng => "CNG",
            Fuel::Electric => "electric",
        }
    }
}

/// One line of the price list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Price {
    /// Fuel variant.
    pub fuel: Fuel,
    /// Parts cost.
    pub parts: Money,
    /// Labour cost.
    pub labour: Money,
}

/// All fuel variants' prices of one service for one model.
pub fn prices(
    conn: &Connection,
    model_key: &str,
    service_key: &str,
) -> rusqlite::Result<Vec<Price>> {
    let mut stmt = conn.prepare_cached(
        "SELECT fuel_type, currency, parts_minor, labour_minor FROM service_prices
         WHERE model_key = ?1 AND service_key = ?2 ORDER BY fuel_type",
    )?;
    let rows = stmt.query_map([model_key, service_key], |r| {
        let fuel: String = r.get(0)?;
        let cur = currency(&r.get::<_, String>(1)?)?;
        Ok(Price {
            fuel: Fuel::parse(&fuel).ok_or_else(|| conversion("fuel", &fuel))?,
            parts: Money::new(r.get(2)?, cur),
            labour: Money::new(r.get(3)?, cur),
        })
    })?;
    rows.collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_fold_case_punctuation_and_spaces() {
        assert_eq!(key("  Periodic   Service! "), "periodic service");
        assert_eq!(key("oil-change"), "oil change");
        assert_eq!(key("NEXON"), "nexon");
        assert_eq!(key("São Paulo"), "são paulo");
        assert_eq!(key("--"), "");
    }

    #[test]
    fn kinds_and_fuels_parse_synonyms() {
        assert_eq!(
            DealerKind::parse("Service Center"),
            Some(DealerKind::Service)
        );
        assert_eq!(DealerKind::parse("showroom"), Some(DealerKind::Sales));
        assert_eq!(DealerKind::parse("spaceship"), None);
        assert_eq!(Fuel::parse("Diesel"), Some(Fuel::Diesel));
        assert_eq!(Fuel::parse("EV"), Some(Fuel::Electric));
        assert_eq!(Fuel::parse("steam"), None);
    }
}
