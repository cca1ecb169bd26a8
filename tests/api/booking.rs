//! booking.validate and booking.create against a freshly seeded database: every validation rule, no
//! double booking under concurrency, idempotent retries, and durability across a killed process.

use crate::common;

use std::time::Duration;

use common::process::{Binary, post, wait_exit};
use common::{
    booking_create, booking_validate, booking_values, date_json, open_day, spawn_app, today,
};
use cx_webhook::domain::{BookingId, BookingStatus, DealerId, SlotTime};
use cx_webhook::store::Store;
use cx_webhook::store::bookings::BookingRepository;
use jiff::ToSpan;
use jiff::civil::Weekday;
use serde_json::{Value, json};

/// A deadline no store operation here comes near.
fn far_deadline() -> tokio::time::Instant {
    tokio::time::Instant::now() + Duration::from_secs(30)
}

/// Bookings stored in `store`'s file, as `db check` counts them.
fn bookings_stored(store: &Store) -> i64 {
    let counts = store.check().unwrap();
    counts.iter().find(|(t, _)| t == "bookings").unwrap().1
}

fn invalid(v: &Value) -> Vec<String> {
    v["pageInfo"]["formInfo"]["parameterInfo"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|p| p["displayName"].as_str().unwrap().to_owned())
                .collect()
        })
        .unwrap_or_default()
}

fn good_values() -> Value {
    booking_values(open_day(3))
}

#[tokio::test]
async fn validate_fixture_rejects_the_past_date_only() {
    let app = spawn_app().await;
    let a = app.post_fixture("booking-validate-bad-date.json").await;
    let v = a.json();
    assert_eq!(invalid(&v), vec!["booking_date"]);
    assert_eq!(
        v["pageInfo"]["formInfo"]["parameterInfo"][0]["state"],
        "INVALID"
    );
    assert!(v["sessionInfo"]["parameters"]["booking_date"].is_null());
    let text = &a.texts()[0];
    assert!(
        text.starts_with("15 January has already passed. Please choose a date between"),
        "{text}"
    );
}

#[tokio::test]
async fn validate_leaves_good_values_alone_and_normalises_the_vehicle() {
    let app = spawn_app().await;
    let mut values = good_values();
    values["vehicle_number"] = json!("mh 12 ab-1234");
    let a = app.post(booking_validate(values)).await;
    let v = a.json();
    assert!(invalid(&v).is_empty(), "{v}");
    assert!(a.texts().is_empty());
    assert_eq!(
        v["sessionInfo"]["parameters"],
        json!({"vehicle_number": "MH12AB1234"})
    );

    // Strings are as good as the @sys objects.
    let mut values = good_values();
    values["booking_date"] = json!(open_day(4).to_string());
    values["booking_time"] = json!("11:00");
    let a = app.post(booking_validate(values)).await;
    assert!(invalid(&a.json()).is_empty(), "{}", a.json());
}

#[tokio::test]
async fn validate_explains_every_rule() {
    let app = spawn_app().await;
    let sunday = {
        let mut d = today().checked_add(2.days()).unwrap();
        while d.weekday() != Weekday::Sunday {
            d = d.tomorrow().unwrap();
        }
        d
    };
    let cases: Vec<(&str, Value, &str)> = vec![
        (
            "vehicle_number",
            json!("HELLO123"),
            "isn't a vehicle registration number",
        ),
        ("dealer_id", json!("D-PUN-02"), "is a showroom"),
        (
            "dealer_id",
            json!("D-XXX-99"),
            "couldn't find the service centre",
        ),
        ("service_type", json!("teleportation"), "I can book:"),
        ("booking_date", date_json(today()), "has already passed"),
        (
            "booking_date",
            date_json(today().checked_add(61.days()).unwrap()),
            "60 days ahead",
        ),
        ("booking_date", date_json(sunday), "is closed on Sundays"),
        (
            "booking_date",
            json!({"year": 2031, "month": 2, "day": 30}),
            "doesn't exist",
        ),
        (
            "booking_time",
            json!({"hours": 10, "minutes": 15}),
            "every 30 minutes from 09:00 to 17:30",
        ),
        (
            "booking_time",
            json!({"hours": 18, "minutes": 0}),
            "every 30 minutes",
        ),
        ("booking_time", json!("noon-ish"), "didn't catch the time"),
    ];
    for (param, value, says) in cases {
        let mut values = good_values();
        values[param] = value.clone();
        let a = app.post(booking_validate(values)).await;
        let v = a.json();
        assert_eq!(invalid(&v), vec![param], "{param}={value}: {v}");
        assert!(v["sessionInfo"]["parameters"][param].is_null());
        let text = a.texts().join(" ");
        assert!(text.contains(says), "{param}={value}: {text}");
    }
}

#[tokio::test]
async fn create_books_once_and_a_retry_gets_the_same_booking() {
    let app = spawn_app().await;
    let day = open_day(5);
    let body = booking_create(day);
    let first = app.post(body.clone()).await;
    let v = first.json();
    let id = v["sessionInfo"]["parameters"]["booking_id"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(id.starts_with("BK-") && id.len() == 13, "{id}");
    assert_eq!(
        v["sessionInfo"]["parameters"]["booking_status"],
        "confirmed"
    );
    let text = &first.texts()[0];
    assert!(
        text.contains("booked for") && text.contains(&id) && text.contains("10:30"),
        "{text}"
    );

    let again = app.post(body).await;
    assert_eq!(
        again.json()["sessionInfo"]["parameters"]["booking_id"],
        id.as_str()
    );
    assert_eq!(bookings_stored(&app.store), 1);
}

#[tokio::test]
async fn create_refuses_the_fixture_date_too_far_ahead_and_missing_values() {
    let app = spawn_app().await;
    let a = app.post_fixture("booking-create.json").await;
    let v = a.json();
    assert!(a.texts()[0].contains("60 days ahead"), "{:?}", a.texts());
    assert!(v["sessionInfo"]["parameters"]["booking_date"].is_null());
    assert!(v["sessionInfo"]["parameters"].get("booking_id").is_none());

    let a = app
        .post(booking_create(open_day(3)).without_param("vehicle_number"))
        .await;
    assert!(a.texts()[0].contains("I still need your vehicle's registration number"));
}

#[tokio::test]
async fn concurrent_requests_never_overbook_a_slot() {
    let app = std::sync::Arc::new(spawn_app().await);
    let day = open_day(6);
    let capacity = app
        .store
        .catalog()
        .dealer(&DealerId::parse("D-PUN-01").unwrap())
        .unwrap()
        .unwrap()
        .hours
        .slot_capacity as usize;
    let n = capacity + 5;
    let mut tasks = Vec::new();
    for i in 0..n {
        let app = app.clone();
        let req = booking_create(day)
            .param("vehicle_number", format!("MH12AB{:04}", 1000 + i))
            .response_id(&format!("resp-{i}"));
        tasks.push(tokio::spawn(async move { app.post(req).await }));
    }
    let (mut booked, mut taken) = (0, 0);
    for t in tasks {
        let a = t.await.unwrap();
        let v = a.json();
        if v["sessionInfo"]["parameters"]["booking_status"] == "confirmed" {
            booked += 1;
        } else {
            assert!(a.texts()[0].contains("was just taken"), "{:?}", a.texts());
            assert!(v["sessionInfo"]["parameters"]["booking_time"].is_null());
            taken += 1;
        }
    }
    assert_eq!((booked, taken), (capacity, n - capacity));
    let counts = app
        .store
        .bookings()
        .slot_counts(&DealerId::parse("D-PUN-01").unwrap(), day, far_deadline())
        .await
        .unwrap();
    assert_eq!(
        counts.get(SlotTime::new(10, 30).unwrap()) as usize,
        capacity
    );

    // Validation now sees the slot full and suggests free times.
    let mut values = good_values();
    values["booking_date"] = date_json(day);
    let a = app.post(booking_validate(values)).await;
    assert!(
        a.texts()[0].contains("is fully booked. Free times nearby: 09:30, 10:00, 11:00."),
        "{:?}",
        a.texts()
    );
}

#[test]
fn a_confirmed_booking_survives_a_killed_process() {
    let dir = tempfile::tempdir().unwrap();
    let binary = Binary::new(&dir);
    let (mut child, address) = binary.start();
    let body = booking_create(open_day(7)).build();
    let answer = post(&address, &body);
    let start = answer.find("BK-").expect("a booking id");
    let id = answer[start..start + 13].to_owned();

    child.kill().unwrap(); // SIGKILL: no shutdown, no flush, no goodbye
    wait_exit(&mut child, Duration::from_secs(10));

    let (mut child, address) = binary.start();
    let (store, _) = cx_webhook::store::Store::open(
        &dir.path().join("cx-webhook.db"),
        cx_webhook::store::Create::Never,
    )
    .unwrap();
    let id = BookingId::parse(&id).unwrap();
    let lookup = store.bookings();
    let booking = tokio::runtime::Runtime::new()
        .unwrap()
        .block_on(lookup.get(&id, far_deadline()))
        .unwrap()
        .expect("the confirmed booking is still there");
    assert_eq!(booking.status, BookingStatus::Confirmed);
    // And the restarted service knows it: the retried call returns the same id.
    assert!(post(&address, &body).contains(id.as_str()));
    child.kill().unwrap();
    wait_exit(&mut child, Duration::from_secs(10));
}
