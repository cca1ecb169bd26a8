//! The remote booking API client against a local fake booking API and a local fake GCE metadata
//! server: the ID token and the idempotency key reach the API, each status maps to its error, a
//! dropped connection is retried once, a timeout is not, and the token never reaches the logs.
//!
//! This is its own test binary because it sets process environment once, before any client is
//! built: `GCE_METADATA_HOST` points google-cloud-auth at the fake metadata server, `HOME` at an
//! empty directory and `GOOGLE_APPLICATION_CREDENTIALS` is removed, so no real ADC file is used.
//! The metadata server runs on its own thread and runtime because it outlives every test's runtime.

use std::collections::HashMap;
mod common;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use common::logs::LogBuffer;
use common::{spawn_fake, spawn_fake_forever};
use cx_webhook::clients::booking_api::{
    BookingApiClient, BookingApiError, BookingConfirmation, BookingRequest,
};
use cx_webhook::telemetry::CloudLoggingLayer;
use cx_webhook::{App, Config};
use http::{Request, Response};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use jiff::civil::date;
use serde_json::{Value, json};
use tokio::sync::watch;
use tracing_subscriber::layer::SubscriberExt;

/// Part of every fake token; it must never appear in a log line.
const TOKEN_MARKER: &str = "sig-NOT-FOR-LOGS";

/// A fresh ID token for `audience`: a JWT-shaped string whose payload carries `aud` and `exp` (an
/// hour ahead; google-cloud-auth reads it to schedule refreshes) and a serial number.
fn mint_token(audience: &str, serial: usize) -> String {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let payload = json!({"iss": "https://accounts.google.com", "aud": audience, "exp": now + 3600,
        "iat": now, "sub": "1234567890", "serial": serial});
    format!(
        "{}.{}.{TOKEN_MARKER}",
        base64url(br#"{"alg":"RS256","typ":"JWT"}"#),
        base64url(payload.to_string().as_bytes())
    )
}

fn base64url(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, b)| n | (u32::from(*b) << (16 - 8 * i)));
        for i in 0..=chunk.len() {
            out.push(ALPHABET[(n >> (18 - 6 * i)) as usize & 63] as char);
        }
    }
    out
}

/// One request the fake metadata server received.
#[derive(Debug, Clone)]
struct MetadataRequest {
    path: String,
    audience: Option<String>,
    flavor: Option<String>,
}

/// What the fake metadata server saw and issued.
#[derive(Default)]
struct Metadata {
    requests: Vec<MetadataRequest>,
    /// The last token issued per audience.
    issued: HashMap<String, String>,
}

/// Process-wide test setup: the fake metadata server, the environment, and a log capture.
struct Setup {
    metadata: Arc<Mutex<Metadata>>,
    logs: LogBuffer,
}

impl Setup {
    /// The `Authorization` value a request for `audience` must carry.
    fn bearer_for(&self, audience: &str) -> Option<String> {
        let metadata = self.metadata.lock().unwrap();
        metadata.issued.get(audience).map(|t| format!("Bearer {t}"))
    }

    /// The metadata requests made for `audience`.
    fn requests_for(&self, audience: &str) -> Vec<MetadataRequest> {
        let metadata = self.metadata.lock().unwrap();
        metadata
            .requests
            .iter()
            .filter(|r| r.audience.as_deref() == Some(audience))
            .cloned()
            .collect()
    }
}

/// Every test calls this first, before anything reads the environment.
fn setup() -> &'static Setup {
    static SETUP: OnceLock<Setup> = OnceLock::new();
    SETUP.get_or_init(|| {
        let logs = LogBuffer::default();
        // Every level of every crate, so a token logged anywhere would be caught.
        let subscriber =
            tracing_subscriber::registry().with(CloudLoggingLayer::new(None, logs.clone()));
        tracing::subscriber::set_global_default(subscriber).unwrap();

        let metadata = Arc::new(Mutex::new(Metadata::default()));
        let recorded = metadata.clone();
        let addr = spawn_fake_forever(move |req| metadata_server(recorded.clone(), req));
        // An empty home inside target/: no gcloud ADC file to find there.
        let home = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("booking-api-home");
        std::fs::create_dir_all(&home).unwrap();
        // SAFETY: runs once, inside `get_or_init`, as the first thing every test does; no other
        // thread of this process reads the environment until it returns.
        unsafe {
            std::env::set_var("GCE_METADATA_HOST", addr.to_string());
            std::env::set_var("HOME", &home);
            std::env::remove_var("GOOGLE_APPLICATION_CREDENTIALS");
        }
        Setup { metadata, logs }
    })
}

/// The fake metadata server: an ID token for `?audience=` at Google's path, when asked with
/// `Metadata-Flavor: Google`.
async fn metadata_server(
    recorded: Arc<Mutex<Metadata>>,
    req: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let audience = req
        .uri()
        .query()
        .and_then(|q| url_decode_param(q, "audience"));
    let flavor = req
        .headers()
        .get("metadata-flavor")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let path = req.uri().path().to_owned();
    let mut recorded = recorded.lock().unwrap();
    recorded.requests.push(MetadataRequest {
        path: path.clone(),
        audience: audience.clone(),
        flavor: flavor.clone(),
    });
    let ok = path == "/computeMetadata/v1/instance/service-accounts/default/identity"
        && flavor.as_deref() == Some("Google");
    Ok(match (ok, audience) {
        (true, Some(audience)) => {
            let token = mint_token(&audience, recorded.requests.len());
            recorded.issued.insert(audience, token.clone());
            Response::builder()
                .header("metadata-flavor", "Google")
                .header("content-type", "text/html")
                .body(Full::new(Bytes::from(token)))
                .unwrap()
        }
        _ => Response::builder()
            .status(404)
            .body(Full::new(Bytes::from_static(b"not found")))
            .unwrap(),
    })
}

fn url_decode_param(query: &str, name: &str) -> Option<String> {
    reqwest::Url::parse(&format!("http://x/?{query}"))
        .ok()?
        .query_pairs()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
}

/// What the fake booking API does with one attempt.
#[derive(Clone)]
enum Action {
    /// Answer with this status and body.
    Respond(u16, &'static str),
    /// Read the request, then close the connection without answering.
    Drop,
    /// Never answer.
    Hang,
}

/// One request the fake booking API received.
#[derive(Debug, Clone)]
struct Seen {
    authorization: Option<String>,
    idempotency_key: Option<String>,
    content_type: Option<String>,
    body: Value,
}

/// A fake booking API at `/v1/bookings` answering attempt `i` with `script[i]` (the last entry
/// repeats).
struct FakeApi {
    addr: SocketAddr,
    seen: watch::Sender<Vec<Seen>>,
}

impl FakeApi {
    async fn start(script: Vec<Action>) -> FakeApi {
        let seen = watch::channel(Vec::new()).0;
        let log = seen.clone();
        let script = Arc::new(script);
        let addr = spawn_fake(move |req| book(log.clone(), script.clone(), req)).await;
        FakeApi { addr, seen }
    }

    fn url(&self) -> reqwest::Url {
        format!("http://{}/v1/bookings", self.addr).parse().unwrap()
    }

    fn origin(&self) -> String {
        format!("http://{}", self.addr)
    }

    fn seen(&self) -> Vec<Seen> {
        self.seen.borrow().clone()
    }

    async fn client(&self, audience: Option<&str>) -> BookingApiClient {
        BookingApiClient::new(self.url(), audience.map(str::to_owned), http())
            .await
            .unwrap()
    }
}

async fn book(
    log: watch::Sender<Vec<Seen>>,
    script: Arc<Vec<Action>>,
    req: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, std::io::Error> {
    let header = |name: &str| {
        req.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    let (authorization, idempotency_key, content_type) = (
        header("authorization"),
        header("idempotency-key"),
        header("content-type"),
    );
    let bytes = req.into_body().collect().await.unwrap().to_bytes();
    let mut attempt = 0;
    log.send_modify(|seen| {
        attempt = seen.len();
        seen.push(Seen {
            authorization,
            idempotency_key,
            content_type,
            body: serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        });
    });
    let action = script[attempt.min(script.len() - 1)].clone();
    match action {
        Action::Respond(status, body) => Ok(Response::builder()
            .status(status)
            .header("content-type", "application/json")
            .body(Full::new(Bytes::from_static(body.as_bytes())))
            .unwrap()),
        Action::Drop => Err(std::io::Error::other("dropping the connection")),
        Action::Hang => std::future::pending().await,
    }
}

fn http() -> reqwest::Client {
    cx_webhook::clients::http_client(Duration::from_secs(10)).unwrap()
}

fn booking() -> BookingRequest {
    BookingRequest {
        vehicle_number: "MH12AB1234".into(),
        dealer_id: "D-PUNE-01".into(),
        service_type: "general_service".into(),
        car_model: Some("Nexon".into()),
        date: date(2031, 3, 14),
        time: cx_webhook::domain::SlotTime::new(10, 30).unwrap(),
        session_id: "s-4f9e2b".into(),
    }
}

const CREATED: &str = r#"{"booking_id":"B-1001","status":"confirmed"}"#;
const BUDGET: Duration = Duration::from_secs(5);

#[tokio::test]
async fn a_created_booking_carries_the_id_token_and_the_idempotency_key() {
    let setup = setup();
    let api = FakeApi::start(vec![Action::Respond(201, CREATED)]).await;
    let client = api.client(None).await;
    assert_eq!(client.audience(), api.origin());

    let confirmation = client.create(&booking(), "key-1001", BUDGET).await;
    assert_eq!(
        confirmation,
        Ok(BookingConfirmation {
            booking_id: "B-1001".into(),
            status: "confirmed".into()
        })
    );
    let seen = api.seen();
    assert_eq!(seen.len(), 1);
    let bearer = setup.bearer_for(&api.origin());
    assert!(bearer.is_some(), "the metadata server issued no token");
    assert_eq!(seen[0].authorization, bearer);
    assert_eq!(seen[0].idempotency_key.as_deref(), Some("key-1001"));
    assert_eq!(seen[0].content_type.as_deref(), Some("application/json"));
    assert_eq!(
        seen[0].body,
        json!({"vehicle_number": "MH12AB1234", "dealer_id": "D-PUNE-01",
            "service_type": "general_service", "car_model": "Nexon",
            "date": "2031-03-14", "time": "10:30", "session_id": "s-4f9e2b"})
    );
    for r in setup.requests_for(&api.origin()) {
        assert_eq!(
            r.path,
            "/computeMetadata/v1/instance/service-accounts/default/identity"
        );
        assert_eq!(r.flavor.as_deref(), Some("Google"));
    }
}

#[tokio::test]
async fn a_configured_audience_is_the_token_audience() {
    let setup = setup();
    let api = FakeApi::start(vec![Action::Respond(200, CREATED)]).await;
    let audience = "https://dms.example.com";
    let client = api.client(Some(audience)).await;
    assert!(client.create(&booking(), "key-aud", BUDGET).await.is_ok());
    let bearer = setup.bearer_for(audience);
    assert!(bearer.is_some(), "no token was issued for {audience}");
    assert_eq!(api.seen()[0].authorization, bearer);
}

#[tokio::test]
async fn a_conflict_means_the_slot_is_taken() {
    setup();
    let api = FakeApi::start(vec![Action::Respond(409, r#"{"code":"slot_taken"}"#)]).await;
    let result = api.client(None).await.create(&booking(), "k", BUDGET).await;
    assert_eq!(result, Err(BookingApiError::SlotTaken));
}

#[tokio::test]
async fn a_refused_value_names_the_field() {
    setup();
    let api = FakeApi::start(vec![Action::Respond(
        422,
        r#"{"field":"date","message":"The dealer is closed on Sundays."}"#,
    )])
    .await;
    let result = api.client(None).await.create(&booking(), "k", BUDGET).await;
    assert_eq!(
        result,
        Err(BookingApiError::Rejected {
            field: Some("date".into()),
            message: "The dealer is closed on Sundays.".into()
        })
    );
}

#[tokio::test]
async fn a_server_error_is_unavailable_and_not_retried() {
    setup();
    let api = FakeApi::start(vec![Action::Respond(503, "{}")]).await;
    let result = api.client(None).await.create(&booking(), "k", BUDGET).await;
    assert_eq!(result, Err(BookingApiError::Unavailable("HTTP 503".into())));
    assert_eq!(api.seen().len(), 1);
}

#[tokio::test]
async fn a_refused_identity_is_unauthorized() {
    setup();
    let api = FakeApi::start(vec![Action::Respond(403, "forbidden")]).await;
    let result = api.client(None).await.create(&booking(), "k", BUDGET).await;
    assert_eq!(
        result,
        Err(BookingApiError::Unauthorized("HTTP 403".into()))
    );
}

#[tokio::test]
async fn an_unexpected_body_is_a_protocol_error() {
    setup();
    for body in [
        "<html>ok</html>",
        r#"{"booking_id":"","status":"confirmed"}"#,
    ] {
        let api = FakeApi::start(vec![Action::Respond(201, body)]).await;
        let result = api.client(None).await.create(&booking(), "k", BUDGET).await;
        assert!(
            matches!(result, Err(BookingApiError::Protocol(_))),
            "{body}: {result:?}"
        );
    }
}

#[tokio::test]
async fn a_dropped_connection_is_retried_once_with_the_same_key() {
    setup();
    let api = FakeApi::start(vec![Action::Drop, Action::Respond(201, CREATED)]).await;
    let result = api
        .client(None)
        .await
        .create(&booking(), "key-retry", BUDGET)
        .await;
    assert!(result.is_ok(), "{result:?}");
    let seen = api.seen();
    assert_eq!(seen.len(), 2);
    assert_eq!(seen[0].idempotency_key, seen[1].idempotency_key);
    assert_eq!(seen[0].authorization, seen[1].authorization);
    assert_eq!(seen[0].body, seen[1].body);
}

#[tokio::test]
async fn a_connection_dropped_twice_is_unavailable() {
    setup();
    let api = FakeApi::start(vec![Action::Drop]).await;
    let result = api.client(None).await.create(&booking(), "k", BUDGET).await;
    assert!(
        matches!(result, Err(BookingApiError::Unavailable(_))),
        "{result:?}"
    );
    assert_eq!(api.seen().len(), 2, "one retry, no more");
}

#[tokio::test]
async fn a_timeout_is_unavailable_and_not_retried() {
    setup();
    let api = FakeApi::start(vec![Action::Respond(201, CREATED), Action::Hang]).await;
    let client = api.client(None).await;
    // The first booking fetches the token, so the short budget below is spent on the request.
    assert!(client.create(&booking(), "first", BUDGET).await.is_ok());
    let budget = Duration::from_millis(300);
    let result = client.create(&booking(), "second", budget).await;
    // A retry would have found the budget spent and said so instead.
    assert_eq!(
        result,
        Err(BookingApiError::Unavailable(format!(
            "no answer within {budget:?}"
        )))
    );
    assert_eq!(api.seen().len(), 2, "a timed-out request is not retried");
}

#[tokio::test]
async fn the_token_never_reaches_the_logs() {
    let setup = setup();
    // A success, an ERROR (refused identity) and a WARNING (dropped connection, retried).
    for script in [
        vec![Action::Respond(201, CREATED)],
        vec![Action::Respond(401, "{}")],
        vec![Action::Drop, Action::Respond(201, CREATED)],
    ] {
        let api = FakeApi::start(script).await;
        let client = api.client(None).await;
        let _ = client.create(&booking(), "k", BUDGET).await;
        assert!(!format!("{client:?}").contains(TOKEN_MARKER));
    }
    let logs = setup.logs.text();
    assert!(
        logs.contains("booking API call failed") && logs.contains("retrying once"),
        "the failures were logged: {logs}"
    );
    assert!(!logs.contains(TOKEN_MARKER), "a token was logged: {logs}");
}

#[tokio::test]
async fn the_app_builds_the_client_when_the_url_is_set() {
    setup();
    let mut config = Config::local();
    let (store, _dir) = common::seeded_store();
    assert!(
        App::deps(&config, store.clone())
            .await
            .unwrap()
            .booking_api
            .is_none()
    );
    config.booking_api = Some(cx_webhook::config::BookingApiConfig {
        url: "http://127.0.0.1:9/v1/bookings".parse().unwrap(),
        audience: None,
    });
    let deps = App::deps(&config, store).await.unwrap();
    let client = deps.booking_api.expect("a booking API client");
    assert_eq!(client.audience(), "http://127.0.0.1:9");
}

/// The service with `BOOKING_API_URL` pointing at `api`.
async fn app_with_remote_bookings(api: &FakeApi) -> common::TestApp {
    let mut config = Config::local();
    config.booking_api = Some(cx_webhook::config::BookingApiConfig {
        url: api.url(),
        audience: None,
    });
    common::spawn_with(config, |_| {}).await
}

#[tokio::test]
async fn booking_create_goes_to_the_remote_api_when_configured() {
    let setup = setup();
    let api = FakeApi::start(vec![Action::Respond(201, CREATED)]).await;
    let app = app_with_remote_bookings(&api).await;
    let day = common::open_day(3);
    let request = common::booking_create(day);
    let a = app.post(request.clone()).await;
    let v = a.json();
    assert_eq!(v["sessionInfo"]["parameters"]["booking_id"], "B-1001");
    assert_eq!(
        v["sessionInfo"]["parameters"]["booking_status"],
        "confirmed"
    );
    assert!(
        a.texts()[0].contains("Your booking id is B-1001."),
        "{:?}",
        a.texts()
    );

    let seen = api.seen();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].authorization, setup.bearer_for(&api.origin()));
    let key = format!(
        "s-4f9e2b/{}",
        request.json()["detectIntentResponseId"].as_str().unwrap()
    );
    assert_eq!(seen[0].idempotency_key.as_deref(), Some(key.as_str()));
    assert_eq!(seen[0].body["dealer_id"], "D-PUN-01");
    assert_eq!(seen[0].body["service_type"], "periodic");
    assert_eq!(seen[0].body["date"], day.to_string());
    assert_eq!(seen[0].body["time"], "10:30");
    // Nothing was booked locally.
    let counts = app.store.check().unwrap();
    assert_eq!(counts.iter().find(|(t, _)| t == "bookings").unwrap().1, 0);
}

#[tokio::test]
async fn remote_refusals_become_answers_that_ask_again() {
    setup();
    let request = common::booking_create(common::open_day(3)).build();

    let api = FakeApi::start(vec![Action::Respond(409, r#"{"code":"slot_taken"}"#)]).await;
    let a = app_with_remote_bookings(&api)
        .await
        .post_webhook(request.clone())
        .await;
    assert!(a.texts()[0].contains("was just taken"), "{:?}", a.texts());
    assert!(a.json()["sessionInfo"]["parameters"]["booking_time"].is_null());

    let body = r#"{"field":"date","message":"the workshop is closed for a holiday"}"#;
    let api = FakeApi::start(vec![Action::Respond(422, body)]).await;
    let a = app_with_remote_bookings(&api)
        .await
        .post_webhook(request.clone())
        .await;
    assert!(
        a.texts()[0].contains("closed for a holiday"),
        "{:?}",
        a.texts()
    );
    assert!(a.json()["sessionInfo"]["parameters"]["booking_date"].is_null());

    let api = FakeApi::start(vec![Action::Respond(503, "{}")]).await;
    let a = app_with_remote_bookings(&api)
        .await
        .post_webhook(request)
        .await;
    assert_eq!(a.status, http::StatusCode::OK);
    assert!(
        a.texts()[0].contains("can't reach the booking system"),
        "{:?}",
        a.texts()
    );
}
