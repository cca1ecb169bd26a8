//! The tool endpoints over real HTTP on a real socket: each tool's good call and each error status
//! (400 naming the field, 401/403 from the webhook's auth, 401 without an end-user token, 404, 409,
//! 413, 415, 503), the account tools' end-user seam, and that `/openapi.json` documents exactly the
//! routes the server serves.

use crate::common;

use std::convert::Infallible;
use std::sync::Arc;

use bytes::Bytes;
use common::idp::{self, Idp};
use common::{Answer, TestApp, oidc, open_day, seeded_store, spawn_app_from, spawn_fake, today};
use cx_webhook::config::AuthConfig;
use cx_webhook::domain::AccountId;
use cx_webhook::handlers::{self, Dispatcher};
use cx_webhook::tools::{self, EndUser, Input, TOOLS};
use cx_webhook::{App, Config};
use http::{Method, Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;
use jiff::ToSpan;
use serde_json::{Value, json};

/// The server with tools over a fresh seeded database.
async fn spawn_tools(mut config: Config) -> (TestApp, tempfile::TempDir) {
    let (store, dir) = seeded_store();
    config.database_path = store.path().to_owned();
    let deps = Arc::new(App::deps(&config, store.clone()).await.unwrap());
    let dispatcher = Dispatcher::new(handlers::table(&deps)).unwrap();
    let app = App::new(config, dispatcher).unwrap().with_tools(deps);
    (spawn_app_from(app, store).await, dir)
}

async fn local() -> (TestApp, tempfile::TempDir) {
    spawn_tools(Config::local()).await
}

async fn post(app: &TestApp, tool: &str, body: Value) -> Answer {
    app.call(
        Method::POST,
        &format!("/tools/{tool}"),
        &[("content-type", "application/json")],
        serde_json::to_vec(&body).unwrap(),
    )
    .await
}

/// Asserts a problem answer with `status` and returns it.
fn problem(a: &Answer, status: u16) -> Value {
    assert_eq!(
        a.status.as_u16(),
        status,
        "{}",
        String::from_utf8_lossy(&a.body)
    );
    assert_eq!(a.headers["content-type"], "application/problem+json");
    let p = a.json();
    assert_eq!(p["status"], status);
    assert!(
        p["type"]
            .as_str()
            .unwrap()
            .starts_with("urn:cx-webhook:problem:")
    );
    assert!(p["title"].is_string() && p["detail"].is_string(), "{p}");
    p
}

/// Asserts a 400 naming `field` first.
fn bad_field(a: &Answer, field: &str) -> Value {
    let p = problem(a, 400);
    assert_eq!(p["errors"][0]["field"], field, "{p}");
    p
}

fn ok(a: &Answer) -> Value {
    assert_eq!(
        a.status,
        StatusCode::OK,
        "{}",
        String::from_utf8_lossy(&a.body)
    );
    assert_eq!(a.headers["content-type"], "application/json");
    a.json()
}

#[tokio::test]
async fn the_document_lists_exactly_the_routes_served() {
    let (app, _dir) = local().await;
    let a = app.call(Method::GET, "/openapi.json", &[], vec![]).await;
    let doc = ok(&a);
    assert_eq!(doc["openapi"], "3.0.3");
    assert_eq!(doc["servers"][0]["url"], format!("http://{}", app.addr));
    let paths = doc["paths"].as_object().unwrap();
    // Every documented operation is routed: it answers something other than 404/405.
    for (path, item) in paths {
        assert_eq!(item.as_object().unwrap().len(), 1, "{path}: POST only");
        let a = app
            .call(
                Method::POST,
                path,
                &[("content-type", "application/json")],
                b"{}".to_vec(),
            )
            .await;
        assert!(
            ![404, 405].contains(&a.status.as_u16()),
            "{path} is documented but answers {}",
            a.status
        );
        let get = app.call(Method::GET, path, &[], vec![]).await;
        assert_eq!(get.status, StatusCode::METHOD_NOT_ALLOWED, "{path}");
        assert_eq!(get.headers["allow"], "POST");
    }
    // Every route is documented.
    assert_eq!(paths.len(), TOOLS.len());
    for t in TOOLS {
        let op = &paths[&format!("/tools/{}", t.name)]["post"];
        assert_eq!(op["operationId"], t.operation_id);
        assert!(tools::tool(t.name).is_some());
    }
    // Nothing else under /tools/ is.
    let a = post(&app, "no-such-tool", json!({})).await;
    problem(&a, 404);
    // One operation, for CX Agent Studio's one-operation tools.
    let a = app
        .call(
            Method::GET,
            "/openapi.json?operation=createBooking",
            &[],
            vec![],
        )
        .await;
    let one = ok(&a);
    assert_eq!(one["paths"].as_object().unwrap().len(), 1);
    assert!(one["paths"]["/tools/create-booking"]["post"].is_object());
}

#[tokio::test]
async fn find_dealers() {
    let (app, _dir) = local().await;
    let a = post(
        &app,
        "find-dealers",
        json!({"location": "pune", "dealer_kind": "service"}),
    )
    .await;
    let v = ok(&a);
    assert_eq!(v["area"], "Pune");
    let dealers = v["dealers"].as_array().unwrap();
    assert!(dealers.iter().any(|d| d["dealer_id"] == "D-PUN-01"), "{v}");
    assert!(dealers.iter().all(|d| d["kind"] == "service"));
    // A PIN code works the same way.
    let v = ok(&post(&app, "find-dealers", json!({"location": "411001"})).await);
    assert_eq!(v["area"], "PIN code 411001");
    assert!(!v["dealers"].as_array().unwrap().is_empty());
    // Nowhere we cover: an empty list and the covered cities.
    let v = ok(&post(&app, "find-dealers", json!({"location": "Atlantis"})).await);
    assert_eq!(v["dealers"], json!([]));
    assert!(
        v["covered_cities"]
            .as_array()
            .unwrap()
            .contains(&json!("Pune"))
    );
    bad_field(&post(&app, "find-dealers", json!({})).await, "location");
    bad_field(
        &post(
            &app,
            "find-dealers",
            json!({"location": "Pune", "dealer_kind": "spaceship"}),
        )
        .await,
        "dealer_kind",
    );
    let p = bad_field(
        &post(
            &app,
            "find-dealers",
            json!({"location": "Pune", "car_model": "Model T"}),
        )
        .await,
        "car_model",
    );
    assert!(
        p["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("Nexon")
    );
}

#[tokio::test]
async fn service_cost() {
    let (app, _dir) = local().await;
    let v = ok(&post(
        &app,
        "service-cost",
        json!({"car_model": "NEXON", "service_type": "general service", "fuel_type": "petrol"}),
    )
    .await);
    assert_eq!(v["car_model"], "Nexon");
    assert_eq!(v["service_type"], "Periodic service");
    assert_eq!(v["currency"], "INR");
    let amount = |k: &str| v[k].as_str().unwrap().parse::<f64>().unwrap();
    assert_eq!(amount("parts") + amount("labour"), amount("total"));
    // One fuel variant: no need to name it.
    let v = ok(&post(
        &app,
        "service-cost",
        json!({"car_model": "Harrier", "service_type": "oil change"}),
    )
    .await);
    assert_eq!(v["fuel_type"], "diesel");
    let p = bad_field(
        &post(
            &app,
            "service-cost",
            json!({"car_model": "Nexon", "service_type": "periodic"}),
        )
        .await,
        "fuel_type",
    );
    assert!(p["detail"].as_str().unwrap().contains("petrol"), "{p}");
    bad_field(
        &post(
            &app,
            "service-cost",
            json!({"car_model": "Model T", "service_type": "periodic"}),
        )
        .await,
        "car_model",
    );
    bad_field(
        &post(
            &app,
            "service-cost",
            json!({"car_model": "Nexon", "service_type": "teleport"}),
        )
        .await,
        "service_type",
    );
    bad_field(
        &post(&app, "service-cost", json!({"service_type": "periodic"})).await,
        "car_model",
    );
}

fn booking(date: jiff::civil::Date, time: &str, vehicle: &str) -> Value {
    json!({
        "vehicle_number": vehicle,
        "dealer_id": "D-PUN-01",
        "service_type": "periodic service",
        "booking_date": date.to_string(),
        "booking_time": time,
    })
}

#[tokio::test]
async fn validate_booking() {
    let (app, _dir) = local().await;
    let v = ok(&post(
        &app,
        "validate-booking",
        json!({"vehicle_number": "mh 12 ab 1234", "dealer_id": "d-pun-01"}),
    )
    .await);
    assert_eq!(v["valid"], true, "{v}");
    assert_eq!(v["vehicle_number"], "MH12AB1234");
    assert_eq!(
        v["missing"],
        json!(["service_type", "booking_date", "booking_time"])
    );
    let v = ok(&post(
        &app,
        "validate-booking",
        json!({"vehicle_number": "XX 99", "booking_date": today().to_string()}),
    )
    .await);
    assert_eq!(v["valid"], false);
    let fields: Vec<&str> = v["problems"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["field"].as_str().unwrap())
        .collect();
    assert_eq!(fields, ["vehicle_number", "booking_date"]);
}

#[tokio::test]
async fn create_booking_books_once_and_reports_a_full_slot_as_409() {
    let (app, _dir) = local().await;
    let day = open_day(3);
    let mut body = booking(day, "10:30", "MH12AB1234");
    body["request_id"] = json!("conv-1");
    let v = ok(&post(&app, "create-booking", body.clone()).await);
    let id = v["booking_id"].as_str().unwrap().to_owned();
    assert!(id.starts_with("BK-"), "{v}");
    assert_eq!(v["status"], "confirmed");
    assert_eq!(v["booking_date"], day.to_string());
    // A retry with the same request id gets the same booking.
    let again = ok(&post(&app, "create-booking", body).await);
    assert_eq!(again["booking_id"], id);
    // D-PUN-01 takes 3 per slot: two more fill it, the fourth is a conflict.
    for v in ["MH12AB1235", "MH12AB1236"] {
        ok(&post(&app, "create-booking", booking(day, "10:30", v)).await);
    }
    let a = post(&app, "create-booking", booking(day, "10:30", "MH12AB1237")).await;
    let p = problem(&a, 409);
    assert_eq!(p["errors"][0]["field"], "booking_time");
    assert!(
        p["detail"].as_str().unwrap().contains("Free times nearby"),
        "{p}"
    );
    // The validation tool sees the same rule.
    let v = ok(&post(
        &app,
        "validate-booking",
        booking(day, "10:30", "MH12AB1238"),
    )
    .await);
    assert_eq!(v["problems"][0]["field"], "booking_time");
    // Bad input: each field named.
    bad_field(
        &post(
            &app,
            "create-booking",
            booking(today(), "10:30", "MH12AB1234"),
        )
        .await,
        "booking_date",
    );
    bad_field(
        &post(&app, "create-booking", booking(day, "10:31", "MH12AB1234")).await,
        "booking_time",
    );
    let far = today().checked_add(90.days()).unwrap();
    bad_field(
        &post(&app, "create-booking", booking(far, "10:30", "MH12AB1234")).await,
        "booking_date",
    );
    let mut missing = booking(day, "11:00", "MH12AB1234");
    missing.as_object_mut().unwrap().remove("dealer_id");
    bad_field(&post(&app, "create-booking", missing).await, "dealer_id");
}

/// A fake Open-Meteo that knows Mumbai only.
async fn fake_meteo(req: Request<Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    let query = req.uri().query().unwrap_or_default().to_lowercase();
    let body = if req.uri().path() == "/v1/search" {
        if query.contains("name=mumbai") {
            json!({"results": [{"name": "Mumbai", "latitude": 19.07, "longitude": 72.88,
                "country": "India", "admin1": "Maharashtra"}]})
        } else {
            json!({"generationtime_ms": 0.4})
        }
    } else {
        json!({"current": {"time": "2031-03-14T10:30", "temperature_2m": 29.44,
            "weather_code": 2, "wind_speed_10m": 12.3}})
    };
    Ok(Response::builder()
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(body.to_string())))
        .unwrap())
}

#[tokio::test]
async fn current_weather() {
    let meteo = spawn_fake(fake_meteo).await;
    let mut config = Config::local();
    config.weather.geocoding_url = format!("http://{meteo}/v1/search").parse().unwrap();
    config.weather.forecast_url = format!("http://{meteo}/v1/forecast").parse().unwrap();
    let (app, _dir) = spawn_tools(config).await;
    let v = ok(&post(&app, "current-weather", json!({"location": "Mumbai"})).await);
    assert_eq!(v["condition"], "partly cloudy");
    assert_eq!(v["temperature_c"], 29.4);
    assert_eq!(v["stale"], false);
    bad_field(
        &post(&app, "current-weather", json!({"location": "Atlantis"})).await,
        "location",
    );
    bad_field(
        &post(&app, "current-weather", json!({"location": "x".repeat(81)})).await,
        "location",
    );
    bad_field(&post(&app, "current-weather", json!({})).await, "location");

    // A provider that does not answer, and nothing cached: 503 with Retry-After.
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    };
    let mut config = Config::local();
    config.weather.geocoding_url = format!("http://{closed}/v1/search").parse().unwrap();
    config.weather.forecast_url = format!("http://{closed}/v1/forecast").parse().unwrap();
    let (down, _dir2) = spawn_tools(config).await;
    let a = post(&down, "current-weather", json!({"location": "Mumbai"})).await;
    let p = problem(&a, 503);
    assert!(a.headers.contains_key("retry-after"));
    assert!(
        !p["detail"].as_str().unwrap().contains("127.0.0.1"),
        "no internals: {p}"
    );
}

#[tokio::test]
async fn account_tools_need_the_end_users_token() {
    let (app, _dir) = local().await;
    for tool in ["account-balance", "recent-transactions"] {
        let a = post(&app, tool, json!({"account_id": "A1001"})).await;
        let p = problem(&a, 401);
        assert_eq!(p["type"], "urn:cx-webhook:problem:end_user_token_required");
        assert!(
            a.headers["www-authenticate"]
                .to_str()
                .unwrap()
                .starts_with("Bearer")
        );
    }
}

#[tokio::test]
async fn the_account_seam_applies_ownership_then_existence() {
    let (app, _dir) = local().await;
    let deps = app.app.tools.clone().unwrap();
    let input = |body: Value| {
        Input::new(
            deps.clone(),
            body.as_object().unwrap().clone(),
            tokio::time::Instant::now() + std::time::Duration::from_secs(5),
        )
    };
    let user = EndUser {
        subject: "user-1".into(),
        accounts: vec![
            AccountId::parse("A1001").unwrap(),
            AccountId::parse("A9999").unwrap(),
        ],
    };
    let v =
        tools::account::balance_for(&input(json!({"account_id": "a1001"})), Some(&user)).unwrap();
    assert_eq!(v["account_id"], "A1001");
    assert!(v["balance"].as_str().unwrap().contains('.'));
    let v = tools::account::transactions_for(
        &input(json!({"account_id": "A1001", "limit": 2})),
        Some(&user),
    )
    .unwrap();
    assert_eq!(v["transactions"].as_array().unwrap().len(), 2);
    let status = |r: Result<Value, tools::Problem>| r.unwrap_err().status;
    assert_eq!(
        status(tools::account::balance_for(
            &input(json!({"account_id": "A1001"})),
            None
        )),
        401
    );
    assert_eq!(
        status(tools::account::balance_for(
            &input(json!({"account_id": "A1002"})),
            Some(&user)
        )),
        403
    );
    assert_eq!(
        status(tools::account::balance_for(
            &input(json!({"account_id": "A9999"})),
            Some(&user)
        )),
        404
    );
    assert_eq!(
        status(tools::account::balance_for(
            &input(json!({"account_id": "B1"})),
            Some(&user)
        )),
        400
    );
    assert_eq!(
        status(tools::account::transactions_for(
            &input(json!({"account_id": "A1001", "limit": 50})),
            Some(&user)
        )),
        400
    );
}

#[tokio::test]
async fn tools_take_the_webhooks_auth() {
    let idp = Idp::start(&[idp::key(0)]).await;
    let mut config = Config::local();
    config.auth = AuthConfig::GoogleOidc(oidc(&idp, |_| {}));
    let (app, _dir) = spawn_tools(config).await;
    common::wait_for_keys(&app, &idp).await;
    let body = serde_json::to_vec(&json!({"location": "Pune"})).unwrap();
    let send = |token: Option<String>| {
        let body = body.clone();
        let app = &app;
        async move {
            let auth = token.map(|t| format!("Bearer {t}"));
            let mut headers = vec![("content-type", "application/json")];
            if let Some(a) = auth.as_deref() {
                headers.push(("authorization", a));
            }
            app.call(Method::POST, "/tools/find-dealers", &headers, body)
                .await
        }
    };
    let a = send(None).await;
    problem(&a, 401);
    assert!(a.headers.contains_key("www-authenticate"));
    let stranger = idp::with(idp::agent_claims(), "email", json!("someone@example.com"));
    problem(&send(Some(idp::key(0).mint(&stranger))).await, 403);
    ok(&send(Some(idp::key(0).mint(&idp::agent_claims()))).await);
    // The document itself is public, like /health.
    ok(&app.call(Method::GET, "/openapi.json", &[], vec![]).await);
}

#[tokio::test]
async fn bodies_are_checked_like_the_webhooks() {
    let mut config = Config::local();
    config.max_body_bytes = 2048;
    let (app, _dir) = spawn_tools(config).await;
    let path = "/tools/find-dealers";
    let a = app
        .call(
            Method::POST,
            path,
            &[("content-type", "text/plain")],
            b"{}".to_vec(),
        )
        .await;
    problem(&a, 415);
    let json_ct = [("content-type", "application/json")];
    problem(
        &app.call(Method::POST, path, &json_ct, b"{nope".to_vec())
            .await,
        400,
    );
    problem(
        &app.call(Method::POST, path, &json_ct, b"[1]".to_vec())
            .await,
        400,
    );
    let big = format!("{{\"location\": \"{}\"}}", "x".repeat(4096));
    problem(
        &app.call(Method::POST, path, &json_ct, big.into_bytes())
            .await,
        413,
    );
    // Wrong types name the field.
    bad_field(
        &post(
            &app,
            "find-dealers",
            json!({"location": "Pune", "dealer_kind": [1]}),
        )
        .await,
        "dealer_kind",
    );
    bad_field(
        &post(
            &app,
            "service-cost",
            json!({"car_model": {"a": 1}, "service_type": "x"}),
        )
        .await,
        "car_model",
    );
}
