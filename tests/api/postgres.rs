//! The PostgreSQL booking repository against a real PostgreSQL (`TEST_POSTGRES_URL`, a role that
//! may create databases). Every test works in a database of its own. Outages are made with a TCP
//! proxy in front of the server that the test closes, blackholes and reopens.
//!
//! Without `TEST_POSTGRES_URL` the tests print why they skip; with `CI` set they fail instead.

use crate::pg;

use std::time::Duration;

use cx_webhook::domain::{
    BookingDraft, BookingId, BookingOutcome, DealerId, RequestKey, ServiceKey, SlotTime,
    VehicleNumber,
};
use cx_webhook::store::bookings::{BookingError, BookingRepository};
use cx_webhook::store::postgres::{PgAuth, PgSettings, PostgresBookings, SCHEMA_VERSION};
use tokio::task::JoinSet;
use tokio::time::Instant;

use pg::{Proxy, base_url, count, fresh_db, host_port, sql, through};

fn settings(url: &str) -> PgSettings {
    PgSettings::parse(url, PgAuth::Password, 8).unwrap()
}

async fn repo(url: &str) -> PostgresBookings {
    PostgresBookings::connect(settings(url)).await.unwrap()
}

fn draft(key: &str, vehicle: &str, time: &str, capacity: u32) -> BookingDraft {
    BookingDraft {
        request_key: RequestKey::new("sess", key, || unreachable!()),
        session_id: "sess".into(),
        dealer: DealerId::parse("D-PUN-01").unwrap(),
        date: jiff::civil::date(2027, 3, 15),
        time: SlotTime::parse(time).unwrap(),
        vehicle: VehicleNumber::parse(vehicle).unwrap(),
        service: ServiceKey::new("periodic"),
        car_model: Some("nexon".into()),
        capacity,
    }
}

/// `MH12AB` + four digits from `n`.
fn vehicle(n: usize) -> String {
    format!("MH12AB{:04}", n + 1)
}

fn soon() -> Instant {
    Instant::now() + Duration::from_secs(10)
}

fn confirmed(outcome: &BookingOutcome) -> Option<(&BookingId, bool)> {
    match outcome {
        BookingOutcome::Confirmed { booking, replayed } => Some((&booking.id, *replayed)),
        BookingOutcome::SlotFull => None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sixty_concurrent_creates_from_three_instances_fill_the_slot_exactly() {
    let Some(base) = base_url() else { return };
    let url = fresh_db(&base).await;
    let instances = [repo(&url).await, repo(&url).await, repo(&url).await];
    let mut tasks = JoinSet::new();
    for n in 0..60 {
        let repo = instances[n % 3].clone();
        tasks.spawn(async move {
            repo.create(&draft(&format!("r{n}"), &vehicle(n), "10:00", 5), soon())
                .await
        });
    }
    let mut made = Vec::new();
    let mut full = 0;
    while let Some(done) = tasks.join_next().await {
        match done.unwrap().unwrap() {
            BookingOutcome::Confirmed { booking, replayed } => {
                assert!(!replayed);
                made.push(booking.id);
            }
            BookingOutcome::SlotFull => full += 1,
        }
    }
    assert_eq!((made.len(), full), (5, 55));
    assert_eq!(count(&url, "slot_time = '10:00'").await, 5);
    let counts = instances[1]
        .slot_counts(
            &DealerId::parse("D-PUN-01").unwrap(),
            jiff::civil::date(2027, 3, 15),
            soon(),
        )
        .await
        .unwrap();
    assert_eq!(counts.get(SlotTime::parse("10:00").unwrap()), 5);
    assert_eq!(counts.get(SlotTime::parse("10:30").unwrap()), 0);
    for id in &made {
        let got = instances[2].get(id, soon()).await.unwrap().unwrap();
        assert_eq!(&got.id, id);
        assert_eq!(got.time.to_string(), "10:00");
        assert_eq!(got.date, jiff::civil::date(2027, 3, 15));
    }
    assert!(
        instances[0]
            .get(&BookingId::parse("BK-0000000000").unwrap(), soon())
            .await
            .unwrap()
            .is_none()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_retry_to_another_instance_and_the_same_vehicle_get_the_same_booking() {
    let Some(base) = base_url() else { return };
    let url = fresh_db(&base).await;
    let (a, b) = (repo(&url).await, repo(&url).await);
    let first = a
        .create(&draft("resp-1", "MH12AB1234", "11:00", 3), soon())
        .await
        .unwrap();
    let (id, replayed) = confirmed(&first).unwrap();
    assert!(!replayed);
    // Dialogflow's retry, answered by another instance.
    let retry = b
        .create(&draft("resp-1", "MH12AB1234", "11:00", 3), soon())
        .await
        .unwrap();
    assert_eq!(confirmed(&retry), Some((id, true)));
    // The user said "book it" again: a new request, the same vehicle and slot.
    let again = b
        .create(&draft("resp-2", "mh 12 ab 1234", "11:00", 3), soon())
        .await
        .unwrap();
    assert_eq!(confirmed(&again), Some((id, true)));
    // The same request replays even once the slot is full.
    for n in 0..2 {
        let d = draft(&format!("other-{n}"), &vehicle(n), "11:00", 3);
        assert!(confirmed(&a.create(&d, soon()).await.unwrap()).is_some());
    }
    let full = b
        .create(&draft("resp-9", "MH12AB9999", "11:00", 3), soon())
        .await
        .unwrap();
    assert_eq!(full, BookingOutcome::SlotFull);
    let retry = a
        .create(&draft("resp-1", "MH12AB1234", "11:00", 3), soon())
        .await
        .unwrap();
    assert_eq!(confirmed(&retry), Some((id, true)));
    assert_eq!(count(&url, "true").await, 3);

    // Ten copies of one request racing on two instances: one booking, one id.
    let mut tasks = JoinSet::new();
    for n in 0..10 {
        let repo = if n % 2 == 0 { a.clone() } else { b.clone() };
        tasks.spawn(async move {
            repo.create(&draft("race", "KA01M1234", "12:00", 3), soon())
                .await
        });
    }
    let mut ids = std::collections::HashSet::new();
    let mut fresh = 0;
    while let Some(done) = tasks.join_next().await {
        let outcome = done.unwrap().unwrap();
        let (id, replayed) = confirmed(&outcome).unwrap();
        ids.insert(id.clone());
        fresh += usize::from(!replayed);
    }
    assert_eq!((ids.len(), fresh), (1, 1));
    assert_eq!(count(&url, "slot_time = '12:00'").await, 1);
    let counts = sql(&url)
        .await
        .query_one(
            "SELECT confirmed FROM booking_slots WHERE slot_time = '12:00'",
            &[],
        )
        .await
        .unwrap()
        .get::<_, i32>(0);
    assert_eq!(counts, 1, "a replay must not raise the slot's count");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_create_stuck_behind_a_locked_slot_gives_up_at_the_deadline_and_leaves_nothing() {
    let Some(base) = base_url() else { return };
    let url = fresh_db(&base).await;
    let bookings = repo(&url).await;
    bookings
        .create(&draft("first", &vehicle(0), "09:00", 4), soon())
        .await
        .unwrap();
    // Another session holds the slot's row lock.
    let mut other = sql(&url).await;
    let tx = other.transaction().await.unwrap();
    tx.execute(
        "SELECT * FROM booking_slots WHERE slot_time = '09:00' FOR UPDATE",
        &[],
    )
    .await
    .unwrap();

    let started = Instant::now();
    let result = bookings
        .create(
            &draft("stuck", &vehicle(1), "09:00", 4),
            started + Duration::from_millis(300),
        )
        .await;
    let took = started.elapsed();
    assert!(matches!(result, Err(BookingError::Deadline)), "{result:?}");
    assert!(took < Duration::from_millis(1500), "took {took:?}");
    // The lock goes; the abandoned write must not land afterwards.
    tx.rollback().await.unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(count(&url, "request_key = 'sess/stuck'").await, 0);
    assert_eq!(count(&url, "true").await, 1);
    let slot: i32 = sql(&url)
        .await
        .query_one(
            "SELECT confirmed FROM booking_slots WHERE slot_time = '09:00'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(slot, 1);
    // And the repository still works.
    let later = bookings
        .create(&draft("stuck", &vehicle(1), "09:00", 4), soon())
        .await
        .unwrap();
    assert_eq!(confirmed(&later).map(|(_, r)| r), Some(false));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn down_at_start_unavailable_while_down_and_working_again_without_a_rebuild() {
    let Some(base) = base_url() else { return };
    let url = fresh_db(&base).await;
    assert!(url.contains(&format!("{}:{}", host_port(&url).0, host_port(&url).1)));
    let proxy = Proxy::start(host_port(&url)).await;
    proxy.set(1);
    let url = through(&url, &proxy);

    // Down at start: the repository is built anyway, quickly.
    let started = Instant::now();
    let bookings = PostgresBookings::connect(settings(&url)).await.unwrap();
    assert!(started.elapsed() < Duration::from_secs(2));
    let d = draft("r1", &vehicle(0), "10:00", 2);
    let started = Instant::now();
    let down = bookings.create(&d, started + Duration::from_secs(3)).await;
    assert!(
        matches!(down, Err(BookingError::Unavailable(_))),
        "{down:?}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "refused should be quick"
    );

    // Swallowed connections: the deadline ends the wait.
    proxy.set(2);
    let started = Instant::now();
    let hung = bookings
        .create(&d, started + Duration::from_millis(400))
        .await;
    assert!(matches!(hung, Err(BookingError::Deadline)), "{hung:?}");
    assert!(started.elapsed() < Duration::from_millis(1200));

    // Back: the same repository migrates and books.
    proxy.set(0);
    let made = bookings.create(&d, soon()).await.unwrap();
    let (id, replayed) = confirmed(&made).unwrap();
    assert!(!replayed);
    let id = id.clone();

    // Every pooled connection cut (a server restart): the next call reconnects.
    proxy.set(0);
    let got = bookings.get(&id, soon()).await.unwrap();
    assert_eq!(got.map(|b| b.id), Some(id.clone()));

    // Down again mid-run, then back.
    proxy.set(1);
    let down = bookings
        .get(&id, Instant::now() + Duration::from_secs(2))
        .await;
    assert!(
        matches!(down, Err(BookingError::Unavailable(_))),
        "{down:?}"
    );
    proxy.set(0);
    let again = bookings
        .create(&draft("r2", &vehicle(1), "10:00", 2), soon())
        .await
        .unwrap();
    assert_eq!(confirmed(&again).map(|(_, r)| r), Some(false));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn ten_instances_migrating_at_once_apply_the_schema_once() {
    let Some(base) = base_url() else { return };
    let url = fresh_db(&base).await;
    let mut tasks = JoinSet::new();
    for _ in 0..10 {
        let s = settings(&url);
        tasks.spawn(async move {
            let repo = PostgresBookings::new(s).unwrap();
            repo.migrate(soon()).await.unwrap()
        });
    }
    let mut from_zero = 0;
    while let Some(done) = tasks.join_next().await {
        let m = done.unwrap();
        assert_eq!(m.to, SCHEMA_VERSION);
        from_zero += usize::from(m.from == 0);
    }
    assert_eq!(from_zero, 1);
    let versions: i64 = sql(&url)
        .await
        .query_one("SELECT count(*) FROM cxw_schema_migrations", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(versions, i64::from(SCHEMA_VERSION));
    let status = repo(&url).await.check(soon()).await.unwrap();
    assert_eq!(status.schema_version, Some(SCHEMA_VERSION));
    assert_eq!(status.bookings, Some(0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_schema_newer_than_the_build_is_refused() {
    let Some(base) = base_url() else { return };
    let url = fresh_db(&base).await;
    let fresh = PostgresBookings::new(settings(&url)).unwrap();
    assert_eq!(fresh.check(soon()).await.unwrap().schema_version, None);
    fresh.migrate(soon()).await.unwrap();
    sql(&url)
        .await
        .execute(
            "INSERT INTO cxw_schema_migrations (version) VALUES ($1)",
            &[&(SCHEMA_VERSION + 1)],
        )
        .await
        .unwrap();
    let repo = PostgresBookings::new(settings(&url)).unwrap();
    assert!(repo.migrate(soon()).await.unwrap_err().is_newer_schema());
    assert!(repo.check(soon()).await.unwrap_err().is_newer_schema());
    let err = PostgresBookings::connect(settings(&url)).await.unwrap_err();
    assert!(err.is_newer_schema());
    assert!(err.to_string().contains("newer than this build"), "{err}");
    // Calls on a repository that never saw its schema refuse too (not Unavailable).
    let r = repo
        .create(&draft("x", &vehicle(0), "10:00", 1), soon())
        .await;
    assert!(matches!(r, Err(BookingError::Failed(_))), "{r:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_require_encrypts_and_verify_full_rejects_an_untrusted_certificate() {
    let Some(base) = base_url() else { return };
    let url = fresh_db(&base).await;
    let client = sql(&url).await;
    let ssl: String = client.query_one("SHOW ssl", &[]).await.unwrap().get(0);
    if ssl != "on" {
        eprintln!("SKIPPED: the test server has ssl=off");
        return;
    }
    let sep = if url.contains('?') { '&' } else { '?' };
    let tls = repo(&format!("{url}{sep}sslmode=require")).await;
    tls.create(&draft("t", &vehicle(0), "10:00", 1), soon())
        .await
        .unwrap();
    // The server's certificate is not from a public CA: verify-full must refuse it.
    let strict =
        PostgresBookings::new(settings(&format!("{url}{sep}sslmode=verify-full"))).unwrap();
    let refused = strict.check(Instant::now() + Duration::from_secs(3)).await;
    assert!(refused.is_err(), "{refused:?}");
    // And the sessions really are encrypted.
    let encrypted: i64 = client
        .query_one(
            "SELECT count(*) FROM pg_stat_ssl s JOIN pg_stat_activity a USING (pid)
             WHERE s.ssl AND a.application_name = 'cx-webhook' AND a.datname = current_database()",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert!(encrypted >= 1);
}

/// `cx-webhook db migrate` / `db check` with BOOKING_STORE=postgres, through the real binary.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn db_migrate_and_check_work_against_postgres_and_refuse_a_newer_schema() {
    let Some(base) = base_url() else { return };
    let url = fresh_db(&base).await;
    let dir = tempfile::tempdir().unwrap();
    let sqlite = dir.path().join("cx.db");
    let bin = env!("CARGO_BIN_EXE_cx-webhook");
    let config: tokio_postgres::Config = url.parse().unwrap();
    let password = config
        .get_password()
        .map(|p| String::from_utf8_lossy(p).into_owned());
    let run = |args: &[&str]| {
        let out = std::process::Command::new(bin)
            .args(args)
            .env("DATABASE_PATH", &sqlite)
            .env("BOOKING_STORE", "postgres")
            .env("BOOKING_DATABASE_URL", &url)
            .env_remove("BOOKING_DATABASE_AUTH")
            .output()
            .unwrap();
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(!text.contains(&url), "the URL was shown: {text}");
        if let Some(pw) = password.as_deref() {
            assert!(
                !text.contains(&format!(":{pw}@")),
                "the password was shown: {text}"
            );
        }
        (out.status.code(), text)
    };
    let (code, _) = run(&["db", "init"]);
    assert_eq!(code, Some(0));
    let (code, text) = run(&["db", "migrate"]);
    assert_eq!(code, Some(0), "{text}");
    assert!(
        text.contains(&format!(
            "migrated from schema version 0 to {SCHEMA_VERSION}"
        )),
        "{text}"
    );
    let (code, text) = run(&["db", "migrate"]);
    assert_eq!(code, Some(0), "{text}");
    assert!(
        text.contains(&format!("already at schema version {SCHEMA_VERSION}")),
        "{text}"
    );
    let (code, text) = run(&["db", "check"]);
    assert_eq!(code, Some(0), "{text}");
    assert!(
        text.contains(&format!(
            "schema version {SCHEMA_VERSION} (this build: {SCHEMA_VERSION})"
        )),
        "{text}"
    );

    sql(&url)
        .await
        .execute(
            "INSERT INTO cxw_schema_migrations (version) VALUES ($1)",
            &[&(SCHEMA_VERSION + 1)],
        )
        .await
        .unwrap();
    for cmd in ["check", "migrate"] {
        let (code, text) = run(&["db", cmd]);
        assert_eq!(code, Some(2), "{cmd}: {text}");
        assert!(text.contains("newer than this build"), "{text}");
    }
}

/// Issue 12: twenty concurrent wrong PINs from two instances sharing PostgreSQL get at most
/// MAX_PIN_FAILURES checks, then the account is locked for both, even for the right PIN.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn pin_attempts_lock_across_instances() {
    use cx_webhook::domain::AccountId;
    use cx_webhook::store::pins::{Attempt, MAX_PIN_FAILURES, PinAttempts};

    let Some(base) = base_url() else { return };
    let url = fresh_db(&base).await;
    let instances = [repo(&url).await, repo(&url).await];
    let now = jiff::Timestamp::now();
    let mut tasks = JoinSet::new();
    for n in 0..20 {
        let repo = instances[n % 2].clone();
        tasks.spawn(async move {
            let account = AccountId::parse("A1005").unwrap();
            let attempt = repo.begin(&account, now, soon()).await.unwrap();
            if attempt == Attempt::Go {
                repo.finish(&account, false, now, soon()).await.unwrap();
            }
            attempt
        });
    }
    let mut checked = 0;
    while let Some(done) = tasks.join_next().await {
        if done.unwrap() == Attempt::Go {
            checked += 1;
        }
    }
    assert!(
        (1..=MAX_PIN_FAILURES).contains(&checked),
        "{checked} PINs checked"
    );
    let account = AccountId::parse("A1005").unwrap();
    for repo in &instances {
        let attempt = repo.begin(&account, now, soon()).await.unwrap();
        assert!(matches!(attempt, Attempt::Locked { .. }), "{attempt:?}");
    }
}
