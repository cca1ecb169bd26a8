//! dealers.nearby and service.cost against the seeded demo data, over real HTTP.

use crate::common;

use common::{CxRequest, spawn_app};
use cx_webhook::domain::{DealerId, DealerKind, Fuel, ServiceKey};
use serde_json::{Value, json};

/// service.cost for `model` and `service`.
fn cost(model: &str, service: &str) -> CxRequest {
    CxRequest::tag("service.cost")
        .param("car_model", model)
        .param("service_type", service)
}

fn dealer_ids(v: &Value) -> Vec<String> {
    v["sessionInfo"]["parameters"]["dealer_options"]
        .as_array()
        .map(|a| a.iter().map(|d| d.as_str().unwrap().to_owned()).collect())
        .unwrap_or_default()
}

#[tokio::test]
async fn dealers_fixture_lists_pune_dealers_for_the_nexon() {
    let app = spawn_app().await;
    let a = app.post_fixture("dealers-nearby.json").await;
    let v = a.json();
    let ids = dealer_ids(&v);
    assert_eq!(ids.first().map(String::as_str), Some("D-PUN-01"));
    assert!(ids.len() <= 5 && ids.iter().all(|id| id.starts_with("D-PUN-")));
    let text = &a.texts()[0];
    assert!(text.starts_with("Here are"), "{text}");
    assert!(text.contains("for the Nexon in Pune"), "{text}");
    let messages = v["fulfillmentResponse"]["messages"].as_array().unwrap();
    let rich = &messages[1]["payload"]["richContent"];
    let listed = rich[0]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["type"] == "list")
        .count();
    assert_eq!(listed, ids.len());
    assert_eq!(rich[1][0]["type"], "chips");
}

#[tokio::test]
async fn every_location_form_finds_the_same_city() {
    let app = spawn_app().await;
    let forms = [
        json!("pune"),
        json!("  PUNE "),
        json!("Poona"),
        json!("411001"),
        json!(411001),
        json!({"city": "Pune", "country": "India"}),
        json!({"zip-code": "411001"}),
        json!({"original": "Pune"}),
    ];
    for location in forms {
        let a = app
            .post(CxRequest::tag("dealers.nearby").param("location", location.clone()))
            .await;
        let ids = dealer_ids(&a.json());
        assert!(
            ids.contains(&"D-PUN-01".to_owned()),
            "{location}: {:?}",
            a.texts()
        );
    }
}

#[tokio::test]
async fn kind_filter_and_postal_district_fallback() {
    let app = spawn_app().await;
    let a = app
        .post(
            CxRequest::tag("dealers.nearby")
                .params(json!({"location": "Bangalore", "dealer_kind": "service centre"})),
        )
        .await;
    let ids = dealer_ids(&a.json());
    assert!(!ids.is_empty());
    for id in &ids {
        let id = DealerId::parse(id).unwrap();
        let d = app.store.catalog().dealer(&id).unwrap().unwrap();
        assert_eq!(d.kind, DealerKind::Service);
        assert_eq!(d.city, "Bengaluru");
    }
    // 400099 has no dealer of its own; Mumbai's 400 district answers.
    let a = app
        .post(CxRequest::tag("dealers.nearby").param("location", "400099"))
        .await;
    assert!(
        dealer_ids(&a.json())
            .iter()
            .all(|id| id.starts_with("D-MUM-"))
    );
}

#[tokio::test]
async fn a_place_without_dealers_lists_the_cities_and_asks_again() {
    let app = spawn_app().await;
    let a = app
        .post(CxRequest::tag("dealers.nearby").param("location", "Atlantis"))
        .await;
    let text = &a.texts()[0];
    assert!(
        text.contains("couldn't find CarConnect dealers in Atlantis"),
        "{text}"
    );
    assert!(text.contains("Mumbai") && text.contains("Pune"), "{text}");
    let v = a.json();
    assert!(v["sessionInfo"]["parameters"]["location"].is_null());
    assert!(dealer_ids(&v).is_empty());

    let a = app.post(CxRequest::tag("dealers.nearby")).await;
    assert!(a.texts()[0].starts_with("Which city or PIN code"));
}

#[tokio::test]
async fn service_cost_fixture_adds_parts_and_labour() {
    let app = spawn_app().await;
    let a = app.post_fixture("service-cost.json").await;
    let catalog = app.store.catalog();
    let nexon = catalog.model("nexon").unwrap().unwrap();
    let prices = catalog
        .prices(&nexon, &ServiceKey::new("periodic"))
        .unwrap();
    let diesel = prices.iter().find(|p| p.fuel == Fuel::Diesel).unwrap();
    let total = diesel.parts.checked_add(diesel.labour).unwrap();
    assert_eq!(
        a.texts(),
        vec![format!(
            "A periodic service for a diesel Nexon costs {total}: parts {} and labour {}.",
            diesel.parts, diesel.labour
        )]
    );
    assert_eq!(
        a.json()["sessionInfo"]["parameters"]["service_cost"],
        total.decimal()
    );
    assert_eq!(a.json()["sessionInfo"]["parameters"]["currency"], "INR");
}

#[tokio::test]
async fn service_cost_understands_synonyms_and_single_fuel_models() {
    let app = spawn_app().await;
    let a = app
        .post(cost("NEXON", "general service").param("fuel_type", "Petrol"))
        .await;
    assert!(a.texts()[0].starts_with("A periodic service for a petrol Nexon costs ₹"));
    // The Harrier comes only in diesel: no need to ask.
    let a = app.post(cost("harrier", "brakes")).await;
    assert!(
        a.texts()[0].starts_with("A brake service for a diesel Harrier costs"),
        "{:?}",
        a.texts()
    );
}

#[tokio::test]
async fn service_cost_asks_or_rejects_what_it_cannot_price() {
    let app = spawn_app().await;
    // Several fuels and none given: ask, with chips, nothing rejected.
    let a = app.post(cost("Nexon", "periodic")).await;
    assert_eq!(
        a.texts(),
        vec!["Is your Nexon diesel, electric or petrol? The price depends on it."]
    );
    assert!(a.json().get("sessionInfo").is_none());

    let a = app.post(cost("Model T", "periodic")).await;
    assert!(a.texts()[0].contains("I don't have prices for \"Model T\""));
    assert!(a.texts()[0].contains("Nexon"));
    assert!(a.json()["sessionInfo"]["parameters"]["car_model"].is_null());

    let a = app.post(cost("Nexon", "teleportation")).await;
    assert!(a.texts()[0].contains("I don't know the service"));
    assert!(a.json()["sessionInfo"]["parameters"]["service_type"].is_null());

    // Electric cars have no oil change.
    let a = app
        .post(cost("Nexon", "oil change").param("fuel_type", "electric"))
        .await;
    assert!(
        a.texts()[0].contains("isn't priced for \"electric\""),
        "{:?}",
        a.texts()
    );
    assert!(a.json()["sessionInfo"]["parameters"]["fuel_type"].is_null());
}
