//! `BOOKING_STORE=postgres` end to end: real `cx-webhook` processes on loopback, sharing one fresh
//! PostgreSQL database (`TEST_POSTGRES_URL`), spoken to over HTTP as Dialogflow would. No double
//! booking across instances, a retry answered by another instance, no lost confirmed booking when an
//! instance is SIGKILLed, and 200 answers through a database outage (made with a TCP proxy between
//! the servers and PostgreSQL, so the shared cluster is never restarted).
//!
//! Without `TEST_POSTGRES_URL` the tests print why they skip; with `CI` set they fail instead.

use crate::common;
use crate::pg;

use std::io::{Read, Write};
use std::process::Child;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::process::{Binary, wait_exit};
use common::{CxRequest, booking_create, booking_validate, booking_values, open_day};
use cx_webhook::domain::DealerId;
use cx_webhook::store::{Create, Store};
use pg::{BLACKHOLE, PASS, Proxy, REFUSE, base_url, fresh_db, host_port, sql, through};
use serde_json::Value;

/// One running server process, killed when dropped.
struct Instance {
    child: Child,
    address: String,
    dir: tempfile::TempDir,
}

impl Instance {
    fn start(url: &str) -> Instance {
        let dir = tempfile::tempdir().unwrap();
        let (child, address) = Binary::new(&dir)
            .env("BOOKING_STORE", "postgres")
            .env("BOOKING_DATABASE_URL", url)
            .env("BOOKING_DATABASE_POOL_SIZE", "5")
            .start();
        Instance {
            child,
            address,
            dir,
        }
    }

    /// D-PUN-01's slot capacity, from this instance's catalog.
    fn capacity(&self) -> usize {
        let (store, _) =
            Store::open(&self.dir.path().join("cx-webhook.db"), Create::Never).unwrap();
        store
            .catalog()
            .dealer(&DealerId::parse("D-PUN-01").unwrap())
            .unwrap()
            .unwrap()
            .hours
            .slot_capacity as usize
    }

    fn post(&self, request: &CxRequest) -> std::io::Result<Answer> {
        post(&self.address, &request.build())
    }
}

impl Drop for Instance {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = wait_exit(&mut self.child, Duration::from_secs(10));
    }
}

#[derive(Debug)]
struct Answer {
    status: u16,
    body: Value,
    took: Duration,
}

impl Answer {
    fn text(&self) -> String {
        self.body["fulfillmentResponse"]["messages"]
            .as_array()
            .into_iter()
            .flatten()
            .flat_map(|m| m["text"]["text"].as_array().cloned().unwrap_or_default())
            .filter_map(|t| t.as_str().map(str::to_owned))
            .collect::<Vec<_>>()
            .join(" ")
    }

    fn param(&self, name: &str) -> &Value {
        &self.body["sessionInfo"]["parameters"][name]
    }

    fn booking_id(&self) -> Option<String> {
        (self.param("booking_status") == "confirmed")
            .then(|| self.param("booking_id").as_str().unwrap().to_owned())
    }
}

/// One `POST /webhook` (`connection: close`), bounded at 15 s; an error if the server is gone.
fn post(address: &str, body: &[u8]) -> std::io::Result<Answer> {
    let started = Instant::now();
    let mut s = std::net::TcpStream::connect(address)?;
    s.set_read_timeout(Some(Duration::from_secs(15)))?;
    write!(
        s,
        "POST /webhook HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n\
         content-length: {}\r\nconnection: close\r\n\r\n",
        body.len()
    )?;
    s.write_all(body)?;
    let mut raw = String::new();
    s.read_to_string(&mut raw)?;
    let took = started.elapsed();
    let (head, body) = raw
        .split_once("\r\n\r\n")
        .ok_or_else(|| std::io::Error::other(format!("no complete answer: {raw:?}")))?;
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| std::io::Error::other(format!("no status: {head:?}")))?;
    let body = serde_json::from_str(body).unwrap_or(Value::Null);
    Ok(Answer { status, body, took })
}

/// A booking.create for D-PUN-01 at 10:30 on `day` for `vehicle`, as Dialogflow turn `response_id`
/// of `session`.
fn create(day: jiff::civil::Date, vehicle: &str, session: &str, response_id: &str) -> CxRequest {
    booking_create(day)
        .param("vehicle_number", vehicle)
        .session(session)
        .response_id(response_id)
}

fn vehicle(n: usize) -> String {
    format!("MH12AB{:04}", 1000 + n)
}

/// A booking.validate whose form holds good values for D-PUN-01 at 10:30 on `day`.
fn validate(day: jiff::civil::Date) -> CxRequest {
    booking_validate(booking_values(day))
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

/// Rows in `bookings` matching `filter`.
fn count(rt: &tokio::runtime::Runtime, url: &str, filter: &str) -> i64 {
    rt.block_on(pg::count(url, filter))
}

#[test]
fn three_instances_sixty_creates_for_one_slot_book_exactly_its_capacity() {
    let Some(base) = base_url() else { return };
    let rt = runtime();
    let url = rt.block_on(fresh_db(&base));
    let instances: Vec<Arc<Instance>> = (0..3).map(|_| Arc::new(Instance::start(&url))).collect();
    let capacity = instances[0].capacity();
    assert!(capacity < 60, "{capacity}");
    let day = open_day(4);
    let threads: Vec<_> = (0..60)
        .map(|n| {
            let instance = instances[n % 3].clone();
            std::thread::spawn(move || {
                instance
                    .post(&create(
                        day,
                        &vehicle(n),
                        &format!("s-{n}"),
                        &format!("r-{n}"),
                    ))
                    .unwrap()
            })
        })
        .collect();
    let (mut booked, mut taken) = (Vec::new(), 0);
    for t in threads {
        let a = t.join().unwrap();
        assert_eq!(a.status, 200, "{a:?}");
        match a.booking_id() {
            Some(id) => booked.push(id),
            None => {
                assert!(a.text().contains("was just taken"), "{a:?}");
                assert!(a.param("booking_time").is_null(), "not re-prompted: {a:?}");
                taken += 1;
            }
        }
    }
    assert_eq!((booked.len(), taken), (capacity, 60 - capacity));
    booked.sort();
    booked.dedup();
    assert_eq!(booked.len(), capacity);
    assert_eq!(count(&rt, &url, "true"), capacity as i64);

    // Every instance's validation now sees the slot full and offers other times.
    for instance in &instances {
        let a = instance.post(&validate(day)).unwrap();
        assert_eq!(a.status, 200);
        assert!(
            a.text().contains("is fully booked. Free times nearby"),
            "{a:?}"
        );
    }
}

#[test]
fn a_retry_sent_to_another_instance_returns_the_same_booking() {
    let Some(base) = base_url() else { return };
    let rt = runtime();
    let url = rt.block_on(fresh_db(&base));
    let (a, b) = (Instance::start(&url), Instance::start(&url));
    let day = open_day(5);
    let req = create(day, "MH12AB1234", "s-retry", "resp-1");
    let first = a.post(&req).unwrap();
    let id = first.booking_id().expect("booked");
    assert!(id.starts_with("BK-") && id.len() == 13, "{id}");
    assert!(
        first.text().contains(&id) && first.text().contains("10:30"),
        "{first:?}"
    );
    // Dialogflow's retry of the same turn, answered by the other instance.
    let retry = b.post(&req).unwrap();
    assert_eq!(
        retry.booking_id().as_deref(),
        Some(id.as_str()),
        "{retry:?}"
    );
    assert_eq!(count(&rt, &url, "true"), 1);
    // A new turn of another session for the same vehicle and slot: still one booking.
    let again = b
        .post(&create(day, "mh 12 ab 1234", "s-other", "resp-2"))
        .unwrap();
    assert_eq!(
        again.booking_id().as_deref(),
        Some(id.as_str()),
        "{again:?}"
    );
    assert_eq!(count(&rt, &url, "true"), 1);
}

#[test]
fn sigkill_during_a_write_burst_loses_no_confirmed_booking() {
    let Some(base) = base_url() else { return };
    let rt = runtime();
    let url = rt.block_on(fresh_db(&base));
    let instances: Vec<Arc<Mutex<Instance>>> = (0..3)
        .map(|_| Arc::new(Mutex::new(Instance::start(&url))))
        .collect();
    let addresses: Vec<String> = instances
        .iter()
        .map(|i| i.lock().unwrap().address.clone())
        .collect();
    let confirmed = Arc::new(Mutex::new(Vec::<String>::new()));
    let failed = Arc::new(Mutex::new(0usize));
    // 12 clients, each sending creates for its own vehicles over many days and slots.
    let clients: Vec<_> = (0..12)
        .map(|c| {
            let address = addresses[c % 3].clone();
            let (confirmed, failed) = (confirmed.clone(), failed.clone());
            std::thread::spawn(move || {
                for k in 0..15 {
                    let n = c * 100 + k;
                    let req = create(
                        open_day(2 + (k % 20) as i64),
                        &vehicle(n),
                        "s-burst",
                        &format!("r-{n}"),
                    );
                    match post(&address, &req.build()) {
                        Ok(a) => {
                            assert!(a.status < 500, "{a:?}");
                            if let Some(id) = a.booking_id() {
                                confirmed.lock().unwrap().push(id);
                            }
                        }
                        Err(_) => *failed.lock().unwrap() += 1,
                    }
                }
            })
        })
        .collect();
    // Kill the middle instance once the burst is under way.
    let started = Instant::now();
    while confirmed.lock().unwrap().len() < 10 && started.elapsed() < Duration::from_secs(30) {
        std::thread::sleep(Duration::from_millis(5));
    }
    {
        let mut victim = instances[1].lock().unwrap();
        victim.child.kill().unwrap(); // SIGKILL
        wait_exit(&mut victim.child, Duration::from_secs(10));
    }
    for c in clients {
        c.join().unwrap();
    }
    let confirmed = confirmed.lock().unwrap().clone();
    let failed = *failed.lock().unwrap();
    eprintln!(
        "{} confirmed, {failed} requests cut by the kill",
        confirmed.len()
    );
    assert!(confirmed.len() >= 10);
    assert!(
        failed > 0,
        "the kill landed after the burst: the test proved nothing"
    );
    let rows = rt.block_on(async {
        sql(&url)
            .await
            .query(
                "SELECT booking_id FROM bookings WHERE status = 'confirmed'",
                &[],
            )
            .await
            .unwrap()
            .into_iter()
            .map(|r| r.get::<_, String>(0))
            .collect::<std::collections::HashSet<_>>()
    });
    for id in &confirmed {
        assert!(
            rows.contains(id),
            "{id} was confirmed to a client but is not stored"
        );
    }
}

#[test]
fn a_database_outage_gets_graceful_answers_and_bookings_resume_after() {
    let Some(base) = base_url() else { return };
    let rt = runtime();
    let url = rt.block_on(fresh_db(&base));
    let proxy = rt.block_on(Proxy::start(host_port(&url)));
    let proxied = through(&url, &proxy);
    let mut instances = vec![Instance::start(&proxied), Instance::start(&proxied)];
    let day = open_day(6);
    let before = instances[0]
        .post(&create(day, &vehicle(0), "s-out", "r-0"))
        .unwrap();
    assert!(before.booking_id().is_some(), "{before:?}");

    for (mode, what) in [(REFUSE, "refused"), (BLACKHOLE, "swallowed")] {
        rt.block_on(async { proxy.set(mode) });
        if mode == REFUSE {
            // A third instance starts while PostgreSQL is down, and serves.
            instances.push(Instance::start(&proxied));
        }
        for (i, instance) in instances.iter().enumerate() {
            let n = 10 + i + usize::from(mode) * 10; // distinct per mode and instance
            let a = instance
                .post(&create(day, &vehicle(n), "s-out", &format!("r-{n}")))
                .unwrap();
            assert_eq!(a.status, 200, "{what}: {a:?}");
            assert!(a.booking_id().is_none(), "{what}: {a:?}");
            assert!(
                a.text().contains("can't take bookings right now"),
                "{what}: {a:?}"
            );
            // The webhook deadline (4.5 s by default) bounds the answer.
            assert!(a.took < Duration::from_secs(6), "{what}: took {:?}", a.took);
            // Reads from the catalog keep working.
            let cost = CxRequest::fixture("service-cost.json").response_id(&format!("cost-{n}"));
            let read = instance.post(&cost).unwrap();
            assert_eq!(read.status, 200, "{what}: {read:?}");
            assert!(read.text().contains('₹'), "{what}: {read:?}");
            // And validation still answers.
            let v = instance.post(&validate(day)).unwrap();
            assert_eq!(v.status, 200, "{what}: {v:?}");
            assert!(v.took < Duration::from_secs(6), "{what}: took {:?}", v.took);
        }
    }

    // Back: every instance books again, without a restart.
    rt.block_on(async { proxy.set(PASS) });
    for (i, instance) in instances.iter().enumerate() {
        let n = 50 + i;
        // A day each: the slot's capacity is small.
        let req = create(
            open_day(10 + i as i64),
            &vehicle(n),
            "s-out",
            &format!("r-{n}"),
        );
        let started = Instant::now();
        let id = loop {
            let a = instance.post(&req).unwrap();
            assert_eq!(a.status, 200, "{a:?}");
            if let Some(id) = a.booking_id() {
                break id;
            }
            assert!(
                started.elapsed() < Duration::from_secs(20),
                "never resumed: {a:?}"
            );
            std::thread::sleep(Duration::from_millis(200));
        };
        assert_eq!(count(&rt, &url, &format!("booking_id = '{id}'")), 1);
    }
    assert_eq!(count(&rt, &url, "true"), 4);
}

#[test]
fn a_booking_schema_newer_than_the_build_refuses_to_start_with_code_2() {
    let Some(base) = base_url() else { return };
    let rt = runtime();
    let url = rt.block_on(fresh_db(&base));
    drop(Instance::start(&url)); // migrates
    rt.block_on(async {
        sql(&url)
            .await
            .execute(
                "INSERT INTO cxw_schema_migrations (version) VALUES ($1)",
                &[&(cx_webhook::store::postgres::SCHEMA_VERSION + 1)],
            )
            .await
            .unwrap()
    });
    let dir = tempfile::tempdir().unwrap();
    let out = Binary::new(&dir)
        .env("BOOKING_STORE", "postgres")
        .env("BOOKING_DATABASE_URL", &url)
        .run();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("newer than this build"), "{stderr}");
    assert!(!stderr.contains(&url), "the URL was shown: {stderr}");
}
