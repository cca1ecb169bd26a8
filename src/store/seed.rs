//! Demo data for the CarConnect agent: deterministic, so every run, test and image holds the same
//! rows, and realistic enough to demo with (the request fixtures in `tests/fixtures`, which
//! `send --example` sends, rely on `A1001`, `D-PUN-01` in Pune 411001, and a priced `Nexon` petrol
//! and diesel).
//!
//! Seeding is idempotent: reference rows are upserted by key and demo transactions are rewritten, so
//! `db seed` can run again over a database that already holds bookings (bookings are never touched).
//! Amounts are integer paise.

use rusqlite::{Connection, params};

use super::StoreError;
use crate::domain::HOME_TIME_ZONE;
use crate::domain::vocabulary::key;

/// Number of demo accounts (`A1001` upwards).
pub const ACCOUNTS: u32 = 60;

/// Every demo account's PIN (documented; demo data only).
pub const DEMO_PIN: &str = "1234";

/// The demo end user who owns `account` (`A1001` upwards, `n` = 0 for A1001): `demo-user-1` owns
/// A1001 and A1002, `demo-user-2` owns A1003, `demo-user-3` A1004, and so on.
pub fn demo_owner(n: u32) -> String {
    format!("demo-user-{}", n.max(1))
}

/// The registered phone of demo account number `1001 + n`: `+91987650` and the account's digits
/// (A1001 -> +919876501001).
pub fn demo_phone(n: u32) -> String {
    format!("+91987650{}", 1001 + n)
}

/// A small deterministic generator (xorshift64*), so the data needs no `rand` and never changes.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// Uniform in `lo..=hi`.
    fn range(&mut self, lo: i64, hi: i64) -> i64 {
        let span = u64::try_from(hi - lo + 1).unwrap_or(1);
        lo + i64::try_from(self.next() % span).unwrap_or(0)
    }

    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[(self.next() % items.len() as u64) as usize]
    }
}

const FIRST_NAMES: &[&str] = &[
    "Aarav", "Priya", "Rohan", "Ananya", "Vikram", "Isha", "Arjun", "Meera", "Kabir", "Diya",
    "Sanjay", "Neha",
];
const LAST_NAMES: &[&str] = &[
    "Sharma", "Patel", "Iyer", "Reddy", "Kulkarni", "Banerjee", "Singh", "Nair", "Desai", "Gupta",
];

/// (description, lowest, highest amount in rupees; negative = debit).
const SPENDING: &[(&str, i64, i64)] = &[
    ("Fuel - CarConnect Fuel Card", -4_500, -1_200),
    ("Service payment - CarConnect Service", -18_000, -3_500),
    ("Car loan EMI", -22_000, -9_000),
    ("Motor insurance premium", -16_000, -7_000),
    ("FASTag recharge", -2_000, -500),
    ("Accessories - CarConnect Store", -6_000, -800),
    ("Refund - service overcharge", 300, 2_500),
    ("Cashback - fuel card", 50, 600),
];

/// (city key, display name, aliases, postal district prefix).
const CITIES: &[(&str, &str, &[&str], &str)] = &[
    ("pune", "Pune", &["poona"], "411"),
    ("mumbai", "Mumbai", &["bombay"], "400"),
    ("delhi", "Delhi", &["new delhi"], "110"),
    ("bengaluru", "Bengaluru", &["bangalore"], "560"),
    ("chennai", "Chennai", &["madras"], "600"),
    ("hyderabad", "Hyderabad", &["secunderabad"], "500"),
    ("kolkata", "Kolkata", &["calcutta"], "700"),
    ("ahmedabad", "Ahmedabad", &["amdavad"], "380"),
];

/// Per city: (id suffix, kind, locality, postal code suffix).
const BRANCHES: &[(&str, &str, &str, &str)] = &[
    ("01", "service", "Central", "001"),
    ("02", "sales", "Downtown", "005"),
    ("03", "service", "East", "014"),
    ("04", "sales", "West", "057"),
];

/// (model key, name, fuels, price factor in percent).
const MODELS: &[(&str, &str, &[&str], i64)] = &[
    ("nexon", "Nexon", &["petrol", "diesel", "electric"], 100),
    ("punch", "Punch", &["petrol", "cng", "electric"], 85),
    ("harrier", "Harrier", &["diesel"], 140),
    ("safari", "Safari", &["diesel"], 150),
    ("tiago", "Tiago", &["petrol", "cng", "electric"], 75),
    ("altroz", "Altroz", &["petrol", "diesel", "cng"], 90),
    ("curvv", "Curvv", &["petrol", "diesel", "electric"], 115),
];

/// (service key, name, aliases, parts and labour in rupees for the reference model).
const SERVICES: &[(&str, &str, &[&str], i64, i64)] = &[
    (
        "periodic",
        "Periodic service",
        &[
            "periodic service",
            "general service",
            "regular service",
            "routine service",
            "scheduled service",
            "maintenance",
            "full service",
        ],
        3_200,
        1_800,
    ),
    (
        "oil_change",
        "Oil change",
        &["oil change", "engine oil", "oil"],
        2_100,
        600,
    ),
    (
        "brake_service",
        "Brake service",
        &["brake service", "brakes", "brake", "brake pads"],
        2_800,
        1_200,
    ),
    (
        "ac_service",
        "AC service",
        &["ac service", "ac", "air conditioning", "aircon"],
        1_900,
        900,
    ),
    (
        "wheel_alignment",
        "Wheel alignment and balancing",
        &[
            "wheel alignment",
            "alignment",
            "wheel balancing",
            "balancing",
        ],
        400,
        1_100,
    ),
    (
        "battery_check",
        "Battery check",
        &["battery check", "battery", "battery service"],
        0,
        500,
    ),
];

/// Writes the demo data (idempotently) in one transaction.
pub fn seed(conn: &mut Connection) -> Result<(), StoreError> {
    let tx = conn.transaction()?;
    let mut rng = Rng(0x005E_EDCA_4C0A_AEC7);
    seed_accounts(&tx, &mut rng)?;
    seed_owners(&tx)?;
    seed_dealers(&tx)?;
    seed_prices(&tx)?;
    tx.commit()?;
    Ok(())
}

fn seed_accounts(tx: &Connection, rng: &mut Rng) -> rusqlite::Result<()> {
    let mut account = tx.prepare(
        "INSERT INTO accounts (account_id, holder_name, currency, balance_minor)
         VALUES (?1, ?2, 'INR', ?3)
         ON CONFLICT(account_id) DO UPDATE SET holder_name = excluded.holder_name,
             currency = excluded.currency, balance_minor = excluded.balance_minor",
    )?;
    let mut clear = tx.prepare("DELETE FROM transactions WHERE account_id = ?1")?;
    let mut txn = tx.prepare(
        "INSERT INTO transactions (account_id, posted_at, description, amount_minor)
         VALUES (?1, ?2, ?3, ?4)",
    )?;
    // Transactions are dated back from a fixed day, so the data never depends on the clock.
    let base = jiff::Timestamp::from_second(1_795_168_800) // 2026-11-20T10:00:00Z
        .unwrap_or(jiff::Timestamp::UNIX_EPOCH);
    for n in 0..ACCOUNTS {
        let id = format!("A{}", 1001 + n);
        let name = format!("{} {}", rng.pick(FIRST_NAMES), rng.pick(LAST_NAMES));
        let balance = if n == 0 {
            12_543_050 // ₹1,25,430.50: the documented demo account
        } else {
            rng.range(5_000, 4_000_000) * 100 + rng.range(0, 99)
        };
        account.execute(params![id, name, balance])?;
        clear.execute([&id])?;
        let count = if n == 0 { 8 } else { rng.range(3, 12) };
        for i in 0..count {
            let (description, lo, hi) = *rng.pick(SPENDING);
            let amount = rng.range(lo, hi) * 100;
            let hours_back = i * 61 + rng.range(0, 40);
            let posted = base
                .checked_sub(jiff::SignedDuration::from_hours(hours_back))
                .unwrap_or(base)
                .to_string();
            txn.execute(params![id, posted, description, amount])?;
        }
    }
    Ok(())
}

/// Owners, phones and PIN hashes of the demo accounts (see [`demo_owner`], [`demo_phone`],
/// [`DEMO_PIN`]). The hashes use the minimum argon2id cost and a salt derived from the account
/// number, so the data is deterministic and seeding fast; real deployments store real hashes.
fn seed_owners(tx: &Connection) -> Result<(), StoreError> {
    let mut owner = tx.prepare(
        "INSERT INTO account_owners (subject, account_id) VALUES (?1, ?2) ON CONFLICT DO NOTHING",
    )?;
    let mut phone = tx.prepare(
        "INSERT INTO account_phones (phone, account_id) VALUES (?1, ?2) ON CONFLICT DO NOTHING",
    )?;
    let mut pin = tx.prepare("UPDATE accounts SET pin_hash = ?2 WHERE account_id = ?1")?;
    for n in 0..ACCOUNTS {
        let id = format!("A{}", 1001 + n);
        owner.execute(params![demo_owner(n), id])?;
        phone.execute(params![demo_phone(n), id])?;
        let mut salt = [b'.'; 16];
        let seed = format!("cxwh-demo-{id}");
        for (s, b) in salt.iter_mut().zip(seed.bytes()) {
            *s = b;
        }
        let hash = crate::domain::pin::demo_hash(DEMO_PIN, &salt).map_err(|e| {
            StoreError::Sqlite(rusqlite::Error::ToSqlConversionFailure(
                format!("cannot hash the demo PIN: {e}").into(),
            ))
        })?;
        pin.execute(params![id, hash])?;
    }
    Ok(())
}

fn seed_dealers(tx: &Connection) -> rusqlite::Result<()> {
    let mut city = upsert(tx, "cities", "city_key", "name")?;
    let mut alias = upsert(tx, "city_aliases", "alias_key", "city_key")?;
    let mut model = upsert(tx, "car_models", "model_key", "name")?;
    let mut dealer = tx.prepare(
        "INSERT INTO dealers (dealer_id, name, kind, city_key, postal_code, address, phone,
             time_zone, open_days, opens_at, closes_at, slot_minutes, slot_capacity)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?12, ?8, ?9, ?10, 30, ?11)
         ON CONFLICT(dealer_id) DO UPDATE SET name = excluded.name, kind = excluded.kind,
             city_key = excluded.city_key, postal_code = excluded.postal_code,
             address = excluded.address, phone = excluded.phone, time_zone = excluded.time_zone,
             open_days = excluded.open_days, opens_at = excluded.opens_at,
             closes_at = excluded.closes_at, slot_minutes = excluded.slot_minutes,
             slot_capacity = excluded.slot_capacity",
    )?;
    let mut carries = tx.prepare(
        "INSERT INTO dealer_models (dealer_id, model_key) VALUES (?1, ?2) ON CONFLICT DO NOTHING",
    )?;
    for (key, name, _, _) in MODELS {
        model.execute([key, name])?;
    }
    for (c, (city_key, city_name, aliases, district)) in CITIES.iter().enumerate() {
        city.execute([city_key, city_name])?;
        for a in *aliases {
            alias.execute([key(a).as_str(), city_key])?;
        }
        let code = &city_key[..3].to_ascii_uppercase();
        for (b, (suffix, kind, locality, postal)) in BRANCHES.iter().enumerate() {
            let id = format!("D-{code}-{suffix}");
            let service = *kind == "service";
            let name = if service {
                format!("CarConnect Service {city_name} {locality}")
            } else {
                format!("CarConnect Motors {city_name} {locality}")
            };
            // One service centre per city opens on Sundays too; showrooms open every day.
            let (days, opens, closes, capacity) = match (service, b) {
                (true, 0) => ("Mon,Tue,Wed,Thu,Fri,Sat", "09:00", "18:00", 3),
                (true, _) => ("Mon,Tue,Wed,Thu,Fri,Sat,Sun", "08:00", "17:00", 2),
                (false, _) => ("Mon,Tue,Wed,Thu,Fri,Sat,Sun", "10:00", "20:00", 0),
            };
            dealer.execute(params![
                id,
                name,
                kind,
                city_key,
                format!("{district}{postal}"),
                format!("{} {locality} Road, {city_name}", 10 + c * 7 + b * 3),
                format!("+9120{:08}", 4_000_000 + c * 1000 + b),
                days,
                opens,
                closes,
                capacity,
                HOME_TIME_ZONE,
            ])?;
            for (m, (model_key, _, _, _)) in MODELS.iter().enumerate() {
                // Service centres service every model; showrooms carry a rotating subset.
                if service || (m + c + b) % 3 != 0 {
                    carries.execute([&id, *model_key])?;
                }
            }
        }
    }
    Ok(())
}

/// `INSERT INTO table (key, value) VALUES (?1, ?2)`, updating `value` when `key` is there: the
/// statement every name and alias table is seeded with.
fn upsert<'c>(
    tx: &'c Connection,
    table: &str,
    key: &str,
    value: &str,
) -> rusqlite::Result<rusqlite::Statement<'c>> {
    tx.prepare(&format!(
        "INSERT INTO {table} ({key}, {value}) VALUES (?1, ?2)
         ON CONFLICT({key}) DO UPDATE SET {value} = excluded.{value}"
    ))
}

fn seed_prices(tx: &Connection) -> rusqlite::Result<()> {
    let mut service = upsert(tx, "service_types", "service_key", "name")?;
    let mut alias = upsert(tx, "service_aliases", "alias_key", "service_key")?;
    let mut price = tx.prepare(
        "INSERT INTO service_prices (model_key, service_key, fuel_type, currency, parts_minor,
             labour_minor)
         VALUES (?1, ?2, ?3, 'INR', ?4, ?5)
         ON CONFLICT(model_key, service_key, fuel_type) DO UPDATE SET currency = excluded.currency,
             parts_minor = excluded.parts_minor, labour_minor = excluded.labour_minor",
    )?;
    for (service_key, name, aliases, parts, labour) in SERVICES {
        service.execute([service_key, name])?;
        for a in *aliases {
            alias.execute([key(a).as_str(), service_key])?;
        }
        for (model_key, _, fuels, factor) in MODELS {
            for fuel in *fuels {
                // Electric cars have no engine oil; their periodic service needs fewer parts.
                let (fuel_parts, fuel_labour) = match *fuel {
                    "electric" if *service_key == "oil_change" => continue,
                    "electric" => (55, 80),
                    "diesel" => (115, 110),
                    "cng" => (105, 105),
                    _ => (100, 100),
                };
                let rupees = |base: i64, fuel_factor: i64| base * factor * fuel_factor / 10_000;
                price.execute(params![
                    model_key,
                    service_key,
                    fuel,
                    rupees(*parts, fuel_parts) * 100,
                    rupees(*labour, fuel_labour) * 100,
                ])?;
            }
        }
    }
    Ok(())
}
