//! The `weather` tag over HTTP against a local fake Open-Meteo: misses and hits, one lookup for
//! concurrent misses, stale answers when the provider fails, a provider slower than the deadline,
//! garbage from the provider, and places that are missing, unusable or unknown.
//!
//! The fake counts calls per endpoint (tests await the counters, never sleep), can hold geocoding
//! calls behind a gate, and can fail, hang or answer garbage.

use crate::common;

use std::convert::Infallible;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use common::{CxRequest, TestApp, spawn_fake, spawn_with};
use cx_webhook::Config;
use cx_webhook::handlers::weather::{ASK_LOCATION_TEXT, UNAVAILABLE_TEXT, UNCLEAR_LOCATION_TEXT};
use http::{Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;
use serde_json::{Value, json};
use tokio::sync::watch;

/// How the fake answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// Real Open-Meteo shapes.
    Ok,
    /// HTTP 500 on every call.
    Fail,
    /// Never answers.
    Hang,
    /// Geocoding answers HTML.
    GarbageGeocoding,
    /// Forecast answers JSON of the wrong shape.
    GarbageForecast,
    /// Forecast answers an impossible temperature.
    ImpossibleForecast,
}

struct State {
    mode: Mutex<Mode>,
    /// Geocoding calls wait until this is true.
    gate: watch::Sender<bool>,
    geocoding: watch::Sender<usize>,
    forecast: watch::Sender<usize>,
    queries: Mutex<Vec<String>>,
}

/// A fake Open-Meteo (geocoding at `/v1/search`, forecast at `/v1/forecast`).
struct FakeMeteo {
    addr: std::net::SocketAddr,
    state: Arc<State>,
}

impl FakeMeteo {
    async fn start() -> FakeMeteo {
        let state = Arc::new(State {
            mode: Mutex::new(Mode::Ok),
            gate: watch::channel(true).0,
            geocoding: watch::channel(0).0,
            forecast: watch::channel(0).0,
            queries: Mutex::new(Vec::new()),
        });
        let shared = state.clone();
        let addr = spawn_fake(move |req| answer(shared.clone(), req)).await;
        FakeMeteo { addr, state }
    }

    /// A configuration whose weather provider is this fake.
    fn config(&self) -> Config {
        let mut config = Config::local();
        config.weather.geocoding_url = format!("http://{}/v1/search", self.addr).parse().unwrap();
        config.weather.forecast_url = format!("http://{}/v1/forecast", self.addr).parse().unwrap();
        config
    }

    fn set_mode(&self, mode: Mode) {
        *self.state.mode.lock().unwrap() = mode;
    }

    fn set_gate(&self, open: bool) {
        self.state.gate.send_replace(open);
    }

    fn calls(&self) -> (usize, usize) {
        (
            *self.state.geocoding.borrow(),
            *self.state.forecast.borrow(),
        )
    }

    async fn geocoding_calls_reach(&self, n: usize) {
        let mut rx = self.state.geocoding.subscribe();
        rx.wait_for(|c| *c >= n).await.unwrap();
    }

    /// The query strings received, in order.
    fn queries(&self) -> Vec<String> {
        self.state.queries.lock().unwrap().clone()
    }
}

fn respond(status: u16, body: impl Into<Bytes>) -> Response<Full<Bytes>> {
    Response::builder()
        .status(status)
        .header("content-type", "application/json")
        .body(Full::new(body.into()))
        .unwrap()
}

async fn answer(
    state: Arc<State>,
    req: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let query = req.uri().query().unwrap_or_default().to_owned();
    state.queries.lock().unwrap().push(query.clone());
    let geocoding = req.uri().path() == "/v1/search";
    if geocoding {
        state.geocoding.send_modify(|c| *c += 1);
        let mut gate = state.gate.subscribe();
        let _ = gate.wait_for(|open| *open).await;
    } else {
        state.forecast.send_modify(|c| *c += 1);
    }
    let mode = *state.mode.lock().unwrap();
    Ok(match (mode, geocoding) {
        (Mode::Fail, _) => respond(500, r#"{"error":true,"reason":"internal"}"#),
        (Mode::Hang, _) => std::future::pending().await,
        (Mode::GarbageGeocoding, true) => respond(200, "<html>rate limited</html>"),
        (Mode::GarbageForecast, false) => respond(200, r#"{"current":{"temperature_2m":"hot"}}"#),
        (Mode::ImpossibleForecast, false) => respond(
            200,
            r#"{"current":{"temperature_2m":500.0,"weather_code":2}}"#,
        ),
        (_, true) => {
            let name = query
                .split('&')
                .find_map(|kv| kv.strip_prefix("name="))
                .unwrap_or_default()
                .to_lowercase();
            match name.as_str() {
                "mumbai" => respond(
                    200,
                    json!({"results": [{"id": 1275339, "name": "Mumbai", "latitude": 19.07283,
                        "longitude": 72.88261, "country": "India", "admin1": "Maharashtra",
                        "timezone": "Asia/Kolkata"}], "generationtime_ms": 0.9})
                    .to_string(),
                ),
                // Open-Meteo leaves `results` out when nothing matches.
                _ => respond(200, r#"{"generationtime_ms":0.4}"#),
            }
        }
        (_, false) => respond(
            200,
            json!({"latitude": 19.125, "longitude": 72.875, "timezone": "GMT",
                "current_units": {"time": "iso8601", "interval": "seconds",
                    "temperature_2m": "\u{b0}C", "weather_code": "wmo code",
                    "wind_speed_10m": "km/h"},
                "current": {"time": "2031-03-14T10:30", "interval": 900,
                    "temperature_2m": 29.4, "weather_code": 2, "wind_speed_10m": 12.3}})
            .to_string(),
        ),
    })
}

const MUMBAI_TEXT: &str = "Right now in Mumbai, India: partly cloudy, 29\u{b0}C, wind 12 km/h.";

/// The shared Mumbai fixture with `location` replaced everywhere it appears.
fn weather_request(location: Value) -> CxRequest {
    CxRequest::fixture("weather.json")
        .intent_param("location", location.clone())
        .param("location", location)
}

async fn start(configure: impl FnOnce(&mut Config)) -> (FakeMeteo, TestApp) {
    let fake = FakeMeteo::start().await;
    let mut config = fake.config();
    configure(&mut config);
    let app = spawn_with(config, |_| {}).await;
    (fake, app)
}

#[tokio::test]
async fn a_miss_asks_the_provider_and_answers_with_the_conditions() {
    let (fake, app) = start(|_| {}).await;
    let a = app.post_fixture("weather.json").await;
    assert_eq!(a.status, StatusCode::OK);
    assert_eq!(a.texts(), vec![MUMBAI_TEXT]);
    let session = &a.json()["sessionInfo"]["parameters"];
    assert_eq!(session["weather_condition"], "partly cloudy");
    assert_eq!(session["temperature"], 29.4);
    assert_eq!(fake.calls(), (1, 1));
    let queries = fake.queries();
    assert_eq!(queries[0], "name=mumbai&count=1&language=en&format=json");
    assert!(
        queries[1].starts_with(
            "latitude=19.07283&longitude=72.88261&current=temperature_2m%2Cweather_code"
        ),
        "{}",
        queries[1]
    );
}

#[tokio::test]
async fn a_hit_answers_without_an_outbound_call() {
    let (fake, app) = start(|_| {}).await;
    assert_eq!(
        app.post_fixture("weather.json").await.texts(),
        vec![MUMBAI_TEXT]
    );
    assert_eq!(fake.calls(), (1, 1));
    // Another spelling of the same place is the same cache entry.
    let a = app.post(weather_request(json!("  MUMBAI "))).await;
    assert_eq!(a.texts(), vec![MUMBAI_TEXT]);
    assert_eq!(fake.calls(), (1, 1));
}

#[tokio::test]
async fn concurrent_misses_for_one_place_share_one_lookup() {
    let (fake, app) = start(|_| {}).await;
    fake.set_gate(false);
    let spellings = [
        "Mumbai", "mumbai", "MUMBAI", " Mumbai ", "mUmBaI", "Mumbai", "mumbai", "MUMBAI",
    ];
    let requests = futures_util::future::join_all(
        spellings
            .iter()
            .map(|s| app.post(weather_request(json!(s)))),
    );
    let release = async {
        fake.geocoding_calls_reach(1).await;
        fake.set_gate(true);
    };
    let (answers, ()) = tokio::join!(requests, release);
    for a in &answers {
        assert_eq!(a.texts(), vec![MUMBAI_TEXT]);
    }
    assert_eq!(fake.calls(), (1, 1));
}

#[tokio::test]
async fn stale_conditions_stand_in_when_the_provider_fails() {
    // No fresh caching, so the second call must ask the provider.
    let (fake, app) = start(|c| c.weather.cache_ttl = Duration::ZERO).await;
    assert_eq!(
        app.post_fixture("weather.json").await.texts(),
        vec![MUMBAI_TEXT]
    );
    fake.set_mode(Mode::Fail);
    let a = app.post_fixture("weather.json").await;
    assert_eq!(a.status, StatusCode::OK);
    assert_eq!(
        a.texts(),
        vec![
            "I can't reach the weather service right now. A moment ago in Mumbai, India: \
             partly cloudy, 29\u{b0}C, wind 12 km/h."
        ]
    );
    assert_eq!(a.json()["sessionInfo"]["parameters"]["temperature"], 29.4);
    assert_eq!(fake.calls().0, 2, "the failing provider was asked");
}

#[tokio::test]
async fn a_provider_slower_than_the_deadline_gets_a_graceful_answer_in_time() {
    // The lookup's own timeout is longer than the whole deadline: only the call's remaining time
    // can stop it before the dispatcher's last-resort timeout does.
    let (fake, app) = start(|c| {
        c.deadline = Duration::from_millis(1000);
        c.weather.timeout = Duration::from_secs(30);
    })
    .await;
    fake.set_mode(Mode::Hang);
    let a = app.post_fixture("weather.json").await;
    assert_eq!(a.status, StatusCode::OK);
    // Not the dispatcher's TIMEOUT_TEXT: the handler answered before the deadline.
    assert_eq!(a.texts(), vec![UNAVAILABLE_TEXT]);
    assert_eq!(fake.calls().0, 1);
}

#[tokio::test]
async fn garbage_from_the_provider_is_a_graceful_answer_and_is_not_cached() {
    let (fake, app) = start(|_| {}).await;
    for (n, mode) in [
        Mode::GarbageGeocoding,
        Mode::GarbageForecast,
        Mode::ImpossibleForecast,
    ]
    .into_iter()
    .enumerate()
    {
        fake.set_mode(mode);
        let a = app.post_fixture("weather.json").await;
        assert_eq!(a.status, StatusCode::OK, "{mode:?}");
        assert_eq!(a.texts(), vec![UNAVAILABLE_TEXT], "{mode:?}");
        assert_eq!(fake.calls().0, n + 1, "{mode:?}: failures are not cached");
    }
    fake.set_mode(Mode::Ok);
    assert_eq!(
        app.post_fixture("weather.json").await.texts(),
        vec![MUMBAI_TEXT]
    );
}

#[tokio::test]
async fn an_unknown_place_asks_again_and_invalidates_the_form_parameter() {
    let (fake, app) = start(|_| {}).await;
    let body = weather_request(json!("Atlantis")).filled_form(json!({"location": "Atlantis"}));
    let a = app.post(body.clone()).await;
    assert_eq!(a.status, StatusCode::OK);
    assert_eq!(
        a.texts(),
        vec![
            "Sorry, I couldn't find a place called \u{201c}Atlantis\u{201d}. Which city would you \
             like the weather for?"
        ]
    );
    let json = a.json();
    assert_eq!(
        json["pageInfo"]["formInfo"]["parameterInfo"][0],
        json!({"displayName": "location", "state": "INVALID"})
    );
    assert_eq!(json["sessionInfo"]["parameters"]["location"], Value::Null);
    // "No such place" is a valid answer, and cached like one.
    app.post(body).await;
    assert_eq!(fake.calls(), (1, 0));
}

#[tokio::test]
async fn a_missing_or_unusable_location_asks_for_a_city_without_calling_out() {
    let (fake, app) = start(|_| {}).await;
    let request = CxRequest::fixture("weather.json")
        .without_intent_params()
        .params(json!({}));
    let a = app.post(request).await;
    assert_eq!(a.texts(), vec![ASK_LOCATION_TEXT]);

    for unusable in [
        json!({"country": ""}),
        json!(["Pune"]),
        json!("x".repeat(200)),
    ] {
        let a = app.post(weather_request(unusable.clone())).await;
        assert_eq!(a.status, StatusCode::OK);
        assert_eq!(a.texts(), vec![UNCLEAR_LOCATION_TEXT], "{unusable}");
        assert_eq!(
            a.json()["sessionInfo"]["parameters"]["location"],
            Value::Null
        );
    }
    assert_eq!(fake.calls(), (0, 0));
}

#[tokio::test]
async fn the_intent_alias_reaches_the_weather_handler() {
    let (fake, app) = start(|_| {}).await;
    let a = app
        .post(CxRequest::fixture("weather.json").with_tag(""))
        .await;
    assert_eq!(a.texts(), vec![MUMBAI_TEXT]);
    assert_eq!(fake.calls(), (1, 1));
}
