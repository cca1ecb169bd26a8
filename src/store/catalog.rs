//! The catalog: cities, dealers and the price list.
//!
//! Lookups by what a user typed go through [`crate::domain::vocabulary::key`], the one normalisation shared with the
//! seed data, and through the alias tables (`bombay` -> Mumbai, `general service` -> periodic). The
//! lookups and dealer lists are indexed reads of a handful of rows, safe inline; the name lists
//! (every city, model or service, for "I can offer: ..." answers) read whole tables, so they run on
//! the blocking pool and stop at [`MAX_NAMES`].

use jiff::tz::TimeZone;
use rusqlite::{OptionalExtension, Row, params};

use super::{Store, StoreError, bad_value, currency};
use crate::domain::vocabulary::key;
use crate::domain::{
    CarModel, City, Dealer, DealerId, DealerKind, Fuel, Money, OpeningHours, Price, ServiceKey,
    ServiceType, SlotTime, parse_day,
};

/// Most names a name list returns.
pub const MAX_NAMES: u32 = 100;

/// Which dealers to list.
#[derive(Debug, Clone, Copy, Default)]
pub struct DealerFilter<'a> {
    /// Only this kind.
    pub kind: Option<DealerKind>,
    /// Only dealers that carry or service this model.
    pub model: Option<&'a CarModel>,
}

/// The catalog repository (borrowed from a [`Store`]).
#[derive(Debug, Clone, Copy)]
pub struct Catalog<'s> {
    pub(super) store: &'s Store,
}

const DEALER_COLUMNS: &str = "d.dealer_id, d.name, d.kind, c.name, d.postal_code, d.address, \
     d.phone, d.time_zone, d.open_days, d.opens_at, d.closes_at, d.slot_minutes, d.slot_capacity";

fn dealer_row(r: &Row<'_>) -> rusqlite::Result<Dealer> {
    let text = |i: usize| r.get::<_, String>(i);
    let id = text(0)?;
    let kind = text(2)?;
    let zone = text(7)?;
    let days = text(8)?;
    let time = |i: usize| -> rusqlite::Result<SlotTime> {
        let t = text(i)?;
        SlotTime::parse(&t).ok_or_else(|| bad_value("time", &t))
    };
    Ok(Dealer {
        id: DealerId::parse(&id).ok_or_else(|| bad_value("dealer id", &id))?,
        name: text(1)?,
        kind: DealerKind::from_stored(&kind).ok_or_else(|| bad_value("dealer kind", &kind))?,
        city: text(3)?,
        postal_code: text(4)?,
        address: text(5)?,
        phone: text(6)?,
        time_zone: TimeZone::get(&zone).map_err(|_| bad_value("time zone", &zone))?,
        hours: OpeningHours {
            days: days
                .split(',')
                .map(|d| parse_day(d).ok_or_else(|| bad_value("day", d)))
                .collect::<rusqlite::Result<_>>()?,
            opens: time(9)?,
            closes: time(10)?,
            slot_minutes: r.get(11)?,
            slot_capacity: r.get(12)?,
        },
    })
}

impl Catalog<'_> {
    /// One dealer by id (a primary-key read).
    pub fn dealer(&self, id: &DealerId) -> Result<Option<Dealer>, StoreError> {
        self.store.read(|conn| {
            conn.prepare_cached(&format!(
                "SELECT {DEALER_COLUMNS} FROM dealers d JOIN cities c ON c.city_key = d.city_key
                 WHERE d.dealer_id = ?1"
            ))?
            .query_row([id.as_str()], dealer_row)
            .optional()
        })
    }

    /// Runs a `(key, display name)` lookup whose `?1` is the normalised `text`.
    fn resolve(&self, sql: &str, text: &str) -> Result<Option<(String, String)>, StoreError> {
        self.store.read(|conn| {
            conn.prepare_cached(sql)?
                .query_row([key(text)], |r| Ok((r.get(0)?, r.get(1)?)))
                .optional()
        })
    }

    /// The city the user named (a name or an alias such as `Bombay`).
    pub fn city(&self, text: &str) -> Result<Option<City>, StoreError> {
        let found = self.resolve(
            "SELECT c.city_key, c.name FROM cities c
             WHERE c.city_key = ?1
                OR c.city_key = (SELECT city_key FROM city_aliases WHERE alias_key = ?1)",
            text,
        )?;
        Ok(found.map(|(key, name)| City { key, name }))
    }

    /// The car model the user named.
    pub fn model(&self, text: &str) -> Result<Option<CarModel>, StoreError> {
        let found = self.resolve(
            "SELECT model_key, name FROM car_models WHERE model_key = ?1",
            text,
        )?;
        Ok(found.map(|(key, name)| CarModel { key, name }))
    }

    /// The service type the user named (a name or an alias such as `general service`).
    pub fn service(&self, text: &str) -> Result<Option<ServiceType>, StoreError> {
        let found = self.resolve(
            "SELECT s.service_key, s.name FROM service_types s
             WHERE s.service_key = ?1
                OR s.service_key = (SELECT service_key FROM service_aliases WHERE alias_key = ?1)",
            text,
        )?;
        Ok(found.map(|(key, name)| ServiceType {
            key: ServiceKey::new(key),
            name,
        }))
    }

    /// Dealers matching `condition` (over `?1` and `?2`) and the filter, service centres first.
    fn dealers_where(
        &self,
        condition: &str,
        low: &str,
        high: &str,
        filter: DealerFilter<'_>,
        limit: u32,
    ) -> Result<Vec<Dealer>, StoreError> {
        let sql = format!(
            "SELECT {DEALER_COLUMNS} FROM dealers d JOIN cities c ON c.city_key = d.city_key
             WHERE {condition}
               AND (?3 IS NULL OR d.kind = ?3)
               AND (?4 IS NULL OR EXISTS (SELECT 1 FROM dealer_models m
                                          WHERE m.model_key = ?4 AND m.dealer_id = d.dealer_id))
             ORDER BY d.kind = 'service' DESC, d.dealer_id
             LIMIT ?5"
        );
        self.store.read(|conn| {
            let mut stmt = conn.prepare_cached(&sql)?;
            let rows = stmt.query_map(
                params![
                    low,
                    high,
                    filter.kind.map(DealerKind::as_str),
                    filter.model.map(|m| m.key.as_str()),
                    limit
                ],
                dealer_row,
            )?;
            rows.collect()
        })
    }

    /// Dealers in a city, service centres first (an index range).
    pub fn dealers_in_city(
        &self,
        city: &City,
        filter: DealerFilter<'_>,
        limit: u32,
    ) -> Result<Vec<Dealer>, StoreError> {
        self.dealers_where("d.city_key = ?1", &city.key, "", filter, limit)
    }

    /// Dealers with this postal code; if none, dealers in the same postal district (same first
    /// three digits, which is how Indian PIN codes are organised). Index ranges.
    pub fn dealers_near_postal_code(
        &self,
        postal_code: &str,
        filter: DealerFilter<'_>,
        limit: u32,
    ) -> Result<Vec<Dealer>, StoreError> {
        let exact = self.dealers_where("d.postal_code = ?1", postal_code, "", filter, limit)?;
        let district = postal_code
            .get(..3)
            .filter(|d| d.bytes().all(|b| b.is_ascii_digit()));
        let (false, Some(district)) = (!exact.is_empty(), district) else {
            return Ok(exact);
        };
        let next = match district.parse::<u32>() {
            Ok(n) => format!("{:03}", n + 1),
            Err(_) => return Ok(exact),
        };
        self.dealers_where(
            "d.postal_code >= ?1 AND d.postal_code < ?2",
            district,
            &next,
            filter,
            limit,
        )
    }

    /// Every fuel variant's price of one service for one model (a primary-key range).
    pub fn prices(&self, model: &CarModel, service: &ServiceKey) -> Result<Vec<Price>, StoreError> {
        self.store.read(|conn| {
            let mut stmt = conn.prepare_cached(
                "SELECT fuel_type, currency, parts_minor, labour_minor FROM service_prices
                 WHERE model_key = ?1 AND service_key = ?2 ORDER BY fuel_type",
            )?;
            let rows = stmt.query_map([model.key.as_str(), service.as_str()], |r| {
                let fuel: String = r.get(0)?;
                let cur = currency(&r.get::<_, String>(1)?)?;
                Ok(Price {
                    fuel: Fuel::from_stored(&fuel).ok_or_else(|| bad_value("fuel", &fuel))?,
                    parts: Money::new(r.get(2)?, cur),
                    labour: Money::new(r.get(3)?, cur),
                })
            })?;
            rows.collect()
        })
    }

    /// Display names of the cities with dealers, alphabetically (on the blocking pool).
    pub async fn city_names(&self) -> Result<Vec<String>, StoreError> {
        self.names("SELECT name FROM cities ORDER BY name LIMIT ?1")
            .await
    }

    /// Display names of the car models on the price list, alphabetically (on the blocking pool).
    pub async fn model_names(&self) -> Result<Vec<String>, StoreError> {
        self.names("SELECT name FROM car_models ORDER BY name LIMIT ?1")
            .await
    }

    /// Display names of the service types, alphabetically (on the blocking pool).
    pub async fn service_names(&self) -> Result<Vec<String>, StoreError> {
        self.names("SELECT name FROM service_types ORDER BY name LIMIT ?1")
            .await
    }

    async fn names(&self, sql: &'static str) -> Result<Vec<String>, StoreError> {
        self.store
            .read_blocking(move |conn| {
                let mut stmt = conn.prepare_cached(sql)?;
                let rows = stmt.query_map([MAX_NAMES], |r| r.get(0))?;
                rows.collect()
            })
            .await
    }
}
