//! Booking creates under slot contention: which atomicity scheme, and PostgreSQL (three instances)
//! versus SQLite (one), in one run.
//!
//! Workload per scenario: `CLIENTS` concurrent clients send `CREATES` creates, each a new request and
//! vehicle, for one dealer's slots:
//! - `hot slot, all fit`: every create aims at the same slot, whose capacity fits them all, so every
//!   create writes and all of them contend for one slot (the worst case for any scheme);
//! - `hot slot, capacity 5`: the rush at a slot's opening: 5 win, the rest are told it is full;
//! - `20 slots`: creates spread over 20 slots (the everyday case).
//!
//! Contenders:
//! - `pg slot-row x3`: the repository ([`PostgresBookings`]: conditional upsert of the slot row
//!   under its row lock, READ COMMITTED), three instances (three pools of 8 connections);
//! - `pg serializable x3`: the alternative: SERIALIZABLE transaction (look up, count the slot,
//!   insert), retried on 40001 until it commits, same three pools;
//! - `sqlite x1`: the embedded store ([`SqliteBookings`]: one writer, `BEGIN IMMEDIATE`,
//!   `synchronous=FULL`).
//!
//! Reports creates per second, p50 and p99 latency and (serializable) the retries. Needs
//! `TEST_POSTGRES_URL` (a role with CREATEDB; see `.ci/run`), otherwise it says so and exits.
//! Run: `cargo bench --bench postgres_contention`. The figures are recorded in docs/postgres.md.

#[path = "../tests/api/pg.rs"]
mod pg;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use cx_webhook::domain::{
    BookingDraft, BookingId, BookingOutcome, DealerId, RequestKey, ServiceKey, SlotTime,
    VehicleNumber,
};
use cx_webhook::store::bookings::BookingRepository;
use cx_webhook::store::bookings::sqlite::SqliteBookings;
use cx_webhook::store::postgres::{PgAuth, PgSettings, PostgresBookings};
use cx_webhook::store::{Create, Store};
use tokio::task::JoinSet;
use tokio::time::Instant;

const CLIENTS: usize = 48;
const CREATES: usize = 1200;

#[derive(Clone, Copy)]
struct Scenario {
    name: &'static str,
    slots: usize,
    capacity: u32,
}

const SCENARIOS: &[Scenario] = &[
    Scenario {
        name: "hot slot, all fit",
        slots: 1,
        capacity: 100_000,
    },
    Scenario {
        name: "hot slot, capacity 5",
        slots: 1,
        capacity: 5,
    },
    Scenario {
        name: "20 slots",
        slots: 20,
        capacity: 100_000,
    },
];

fn main() {
    let Ok(base) = std::env::var("TEST_POSTGRES_URL") else {
        eprintln!("postgres_contention: TEST_POSTGRES_URL is not set; nothing to measure");
        return;
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async move {
        println!(
            "{CLIENTS} clients, {CREATES} creates per scenario (2 tokio workers; PostgreSQL 3 pools x 8)"
        );
        println!(
            "{:<22} {:<20} {:>9} {:>9} {:>9} {:>8} {:>8}",
            "scenario", "store", "creates/s", "p50 ms", "p99 ms", "booked", "retries"
        );
        for s in SCENARIOS {
            let url = pg::fresh_db(&base).await;
            let row = slot_row(&url, *s).await;
            row.print(s.name, "pg slot-row x3");
            let url = pg::fresh_db(&base).await;
            let ser = serializable(&url, *s).await;
            ser.print(s.name, "pg serializable x3");
            let lite = sqlite(*s).await;
            lite.print(s.name, "sqlite x1");
        }
    });
}

struct Run {
    elapsed: Duration,
    latencies: Vec<Duration>,
    booked: usize,
    retries: u64,
    errors: usize,
}

impl Run {
    fn print(mut self, scenario: &str, store: &str) {
        self.latencies.sort();
        let pct = |p: f64| {
            let i =
                ((self.latencies.len() as f64 * p).ceil() as usize).clamp(1, self.latencies.len());
            self.latencies[i - 1].as_secs_f64() * 1000.0
        };
        println!(
            "{scenario:<22} {store:<20} {:>9.0} {:>9.1} {:>9.1} {:>8} {:>8}{}",
            CREATES as f64 / self.elapsed.as_secs_f64(),
            pct(0.50),
            pct(0.99),
            self.booked,
            self.retries,
            if self.errors > 0 {
                format!("  ({} errors)", self.errors)
            } else {
                String::new()
            }
        );
    }
}

fn vehicle(n: usize) -> String {
    let series = ["AB", "CD", "EF", "GH"][n / 9999 % 4];
    format!("MH12{series}{:04}", n % 9999 + 1)
}

fn slot(n: usize, s: Scenario) -> String {
    let m = 9 * 60 + (n % s.slots) * 15;
    format!("{:02}:{:02}", m / 60, m % 60)
}

fn draft(n: usize, s: Scenario) -> BookingDraft {
    BookingDraft {
        request_key: RequestKey::new("bench", &format!("r{n}"), || unreachable!()),
        session_id: "bench".into(),
        dealer: DealerId::parse("D-PUN-01").unwrap(),
        date: jiff::civil::date(2027, 3, 15),
        time: SlotTime::parse(&slot(n, s)).unwrap(),
        vehicle: VehicleNumber::parse(&vehicle(n)).unwrap(),
        service: ServiceKey::new("periodic"),
        car_model: None,
        capacity: s.capacity,
    }
}

/// Runs `CREATES` calls of `create(n)` from `CLIENTS` tasks; `Ok(true)` = booked.
async fn drive<F, Fut>(create: F) -> Run
where
    F: Fn(usize) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<bool, String>> + Send,
{
    let create = Arc::new(create);
    let next = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let mut tasks = JoinSet::new();
    for _ in 0..CLIENTS {
        let (create, next) = (create.clone(), next.clone());
        tasks.spawn(async move {
            let mut out = (Vec::new(), 0usize, 0usize);
            loop {
                let n = next.fetch_add(1, Ordering::Relaxed) as usize;
                if n >= CREATES {
                    return out;
                }
                let t = Instant::now();
                match create(n).await {
                    Ok(booked) => out.1 += usize::from(booked),
                    Err(_) => out.2 += 1,
                }
                out.0.push(t.elapsed());
            }
        });
    }
    let mut run = Run {
        elapsed: Duration::ZERO,
        latencies: Vec::with_capacity(CREATES),
        booked: 0,
        retries: 0,
        errors: 0,
    };
    while let Some(done) = tasks.join_next().await {
        let (lat, booked, errors) = done.unwrap();
        run.latencies.extend(lat);
        run.booked += booked;
        run.errors += errors;
    }
    run.elapsed = started.elapsed();
    run
}

async fn slot_row(url: &str, s: Scenario) -> Run {
    let mut repos = Vec::new();
    for _ in 0..3 {
        let settings = PgSettings::parse(url, PgAuth::Password, 8).unwrap();
        repos.push(PostgresBookings::connect(settings).await.unwrap());
    }
    let repos = Arc::new(repos);
    drive(move |n| {
        let repos = repos.clone();
        async move {
            let d = draft(n, s);
            match repos[n % 3]
                .create(&d, Instant::now() + Duration::from_secs(30))
                .await
            {
                Ok(BookingOutcome::Confirmed { .. }) => Ok(true),
                Ok(BookingOutcome::SlotFull) => Ok(false),
                Err(e) => Err(e.to_string()),
            }
        }
    })
    .await
}

async fn serializable(url: &str, s: Scenario) -> Run {
    // The same schema, made by the repository's migration.
    let settings = PgSettings::parse(url, PgAuth::Password, 1).unwrap();
    PostgresBookings::new(settings)
        .unwrap()
        .migrate(Instant::now() + Duration::from_secs(10))
        .await
        .unwrap();
    let config: tokio_postgres::Config = url.parse().unwrap();
    let pools: Vec<deadpool_postgres::Pool> = (0..3)
        .map(|_| {
            let manager = deadpool_postgres::Manager::new(config.clone(), tokio_postgres::NoTls);
            deadpool_postgres::Pool::builder(manager)
                .max_size(8)
                .build()
                .unwrap()
        })
        .collect();
    let pools = Arc::new(pools);
    let retries = Arc::new(AtomicU64::new(0));
    let r = retries.clone();
    let mut run = drive(move |n| {
        let (pools, retries) = (pools.clone(), r.clone());
        async move {
            let d = draft(n, s);
            let mut client = pools[n % 3].get().await.map_err(|e| e.to_string())?;
            loop {
                match serializable_create(&mut client, &d).await {
                    Ok(booked) => return Ok(booked),
                    Err(e)
                        if e.code()
                            == Some(
                                &tokio_postgres::error::SqlState::T_R_SERIALIZATION_FAILURE,
                            ) =>
                    {
                        retries.fetch_add(1, Ordering::Relaxed);
                    }
                    Err(e) => return Err(e.to_string()),
                }
            }
        }
    })
    .await;
    run.retries = retries.load(Ordering::Relaxed);
    run
}

async fn serializable_create(
    client: &mut deadpool_postgres::Client,
    d: &BookingDraft,
) -> Result<bool, tokio_postgres::Error> {
    let tx = client
        .build_transaction()
        .isolation_level(tokio_postgres::IsolationLevel::Serializable)
        .start()
        .await?;
    let (date, time) = (d.date.to_string(), d.time.to_string());
    let existing = tx
        .query_opt(
            "SELECT booking_id FROM bookings WHERE request_key = $1
             UNION ALL
             SELECT booking_id FROM bookings WHERE dealer_id = $2 AND slot_date = $3::text::date
               AND slot_time = $4::text::time AND vehicle_number = $5 AND status = 'confirmed'
             LIMIT 1",
            &[
                &d.request_key.as_str(),
                &d.dealer.as_str(),
                &date,
                &time,
                &d.vehicle.as_str(),
            ],
        )
        .await?;
    if existing.is_some() {
        tx.commit().await?;
        return Ok(true);
    }
    let booked: i64 = tx
        .query_one(
            "SELECT count(*) FROM bookings WHERE dealer_id = $1 AND slot_date = $2::text::date
               AND slot_time = $3::text::time AND status = 'confirmed'",
            &[&d.dealer.as_str(), &date, &time],
        )
        .await?
        .get(0);
    if booked >= i64::from(d.capacity) {
        tx.commit().await?;
        return Ok(false);
    }
    let id = BookingId::random().unwrap();
    tx.execute(
        "INSERT INTO bookings (booking_id, request_key, dealer_id, slot_date, slot_time,
             vehicle_number, service_key, session_id, status)
         VALUES ($1, $2, $3, $4::text::date, $5::text::time, $6, $7, $8, 'confirmed')",
        &[
            &id.as_str(),
            &d.request_key.as_str(),
            &d.dealer.as_str(),
            &date,
            &time,
            &d.vehicle.as_str(),
            &d.service.as_str(),
            &d.session_id,
        ],
    )
    .await?;
    tx.commit().await?;
    Ok(true)
}

async fn sqlite(s: Scenario) -> Run {
    let dir = tempfile::tempdir().unwrap();
    let (store, _) =
        Store::open(&dir.path().join("cx.db"), Create::IfMissing { seed: true }).unwrap();
    let repo = Arc::new(SqliteBookings::new(store));
    let run = drive(move |n| {
        let repo = repo.clone();
        async move {
            let d = draft(n, s);
            match repo
                .create(&d, Instant::now() + Duration::from_secs(30))
                .await
            {
                Ok(BookingOutcome::Confirmed { .. }) => Ok(true),
                Ok(BookingOutcome::SlotFull) => Ok(false),
                Err(e) => Err(e.to_string()),
            }
        }
    })
    .await;
    drop(dir);
    run
}
