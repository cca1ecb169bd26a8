//! Shared test support: `spawn_app()` starts the real server on an ephemeral loopback port with a
//! per-test configuration, and `TestApp` speaks real HTTP to it; [`CxRequest`] builds the
//! `WebhookRequest` a test posts; [`idp`] stands in for Google's keys and tokens; `spawn_fake()`
//! starts a local fake of an outside service.
#![allow(dead_code)]

pub mod idp;
pub mod logs;
pub mod process;
pub mod request;

pub use request::CxRequest;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use cx_webhook::auth::keys::KeyCache;
use cx_webhook::config::{AuthConfig, OidcConfig};
use cx_webhook::cx::WebhookResponse;
use cx_webhook::handlers::{self, Call, Dispatcher, Handler};
use cx_webhook::store::{Create, Store};
use cx_webhook::{App, Config};
use http::{HeaderMap, Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo};
use idp::{AGENT, AUDIENCE, Idp};
use jiff::ToSpan;
use jiff::civil::{Date, Weekday};
use serde_json::{Value, json};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// A running server and a client for it.
pub struct TestApp {
    pub addr: SocketAddr,
    /// The running service (to look at its authenticator's key cache).
    pub app: Arc<App>,
    pub client: Client<HttpConnector, Full<Bytes>>,
    /// The app's database (a fresh seeded file per app).
    pub store: Store,
    _dir: Option<tempfile::TempDir>,
    shutdown: Option<oneshot::Sender<()>>,
    handle: Option<JoinHandle<std::io::Result<()>>>,
}

/// One answer.
#[derive(Debug)]
pub struct Answer {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Answer {
    /// The body as JSON (panics with the body text if it is not JSON).
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {:?}", String::from_utf8_lossy(&self.body)))
    }

    /// All text variants of a WebhookResponse body, in order.
    pub fn texts(&self) -> Vec<String> {
        let response: cx_webhook::cx::WebhookResponse = serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not a WebhookResponse ({e}): {:?}", self.body));
        response.texts().into_iter().map(String::from).collect()
    }

    /// The `error.code` of a JSON error body.
    pub fn error_code(&self) -> String {
        self.json()["error"]["code"]
            .as_str()
            .unwrap_or_else(|| panic!("no error.code in {:?}", self.body))
            .to_owned()
    }
}

/// A fixture from `tests/fixtures`.
pub fn fixture(name: &str) -> Vec<u8> {
    let path = format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// Today where the Pune dealers are.
pub fn today() -> Date {
    jiff::Timestamp::now().in_tz("Asia/Kolkata").unwrap().date()
}

/// The first day at least `ahead` days out on which D-PUN-01 (closed on Sundays) is open.
pub fn open_day(ahead: i64) -> Date {
    let mut d = today().checked_add(ahead.days()).unwrap();
    while d.weekday() == Weekday::Sunday {
        d = d.tomorrow().unwrap();
    }
    d
}

pub fn date_json(d: Date) -> Value {
    json!({"year": d.year(), "month": d.month(), "day": d.day()})
}

/// Good booking values: a periodic service for MH12AB1234 at D-PUN-01 on `day` at 10:30.
pub fn booking_values(day: Date) -> Value {
    json!({
        "vehicle_number": "MH12AB1234",
        "service_type": "periodic",
        "dealer_id": "D-PUN-01",
        "booking_date": date_json(day),
        "booking_time": {"hours": 10, "minutes": 30, "seconds": 0}
    })
}

/// booking.create with [`booking_values`] on `day`, for a Nexon, as sent on the confirm page.
pub fn booking_create(day: Date) -> CxRequest {
    CxRequest::tag("booking.create")
        .params(booking_values(day))
        .param("car_model", "Nexon")
}

/// booking.validate whose page form holds `values` (all FILLED), mirrored in the session.
pub fn booking_validate(values: Value) -> CxRequest {
    CxRequest::tag("booking.validate").filled_form(values)
}

/// A handler that answers `text` after `pause` (for deadlines, draining and shutdown).
pub fn sleeps(pause: Duration, text: &'static str) -> impl Handler {
    move |_call: Call| async move {
        tokio::time::sleep(pause).await;
        Ok(WebhookResponse::new().text(text))
    }
}

/// The server with default local settings and the standard table.
pub async fn spawn_app() -> TestApp {
    spawn_with(Config::local(), |_| {}).await
}

/// A fresh database with the demo data in a temporary directory.
pub fn seeded_store() -> (Store, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let (store, _) = Store::open(
        &dir.path().join("cx-webhook.db"),
        Create::IfMissing { seed: true },
    )
    .expect("seeded database");
    (store, dir)
}

/// The server with `ACCOUNT_ACCESS=open` (any account number is answered for), for tests of what
/// the account handlers read and say rather than who may see it.
pub async fn spawn_open_accounts() -> TestApp {
    let mut config = Config::local();
    config.identity.access = cx_webhook::config::AccountAccess::Open;
    spawn_with(config, |_| {}).await
}

/// The server with `config` and the standard table over a fresh seeded database, customised by
/// `customize`.
pub async fn spawn_with(mut config: Config, customize: impl FnOnce(&mut Dispatcher)) -> TestApp {
    let (store, dir) = seeded_store();
    config.database_path = store.path().to_owned();
    let deps = std::sync::Arc::new(App::deps(&config, store.clone()).await.unwrap());
    let mut dispatcher = Dispatcher::new(handlers::table(&deps)).unwrap();
    customize(&mut dispatcher);
    let app = App::new(config, dispatcher).expect("the app builds");
    let mut app = spawn_app_from(app, store).await;
    app._dir = Some(dir);
    app
}

/// A local fake of an outside service: HTTP/1 on an ephemeral loopback port, every request answered
/// by `handle`, until the current runtime stops. Returns its address.
pub async fn spawn_fake<F, Fut, E>(handle: F) -> SocketAddr
where
    F: Fn(Request<Incoming>) -> Fut + Clone + Send + 'static,
    Fut: Future<Output = Result<Response<Full<Bytes>>, E>> + Send + 'static,
    E: Into<Box<dyn std::error::Error + Send + Sync>> + 'static,
{
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let handle = handle.clone();
            tokio::spawn(async move {
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service_fn(handle))
                    .await;
            });
        }
    });
    addr
}

/// Like [`spawn_fake`], on a thread and runtime of its own, so the fake outlives every test's runtime
/// (for process-wide fakes such as the GCE metadata server). Serves until the process ends.
pub fn spawn_fake_forever<F, Fut, E>(handle: F) -> SocketAddr
where
    F: Fn(Request<Incoming>) -> Fut + Clone + Send + 'static,
    Fut: Future<Output = Result<Response<Full<Bytes>>, E>> + Send + 'static,
    E: Into<Box<dyn std::error::Error + Send + Sync>> + 'static,
{
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async move {
            tx.send(spawn_fake(handle).await).unwrap();
            std::future::pending::<()>().await
        });
    });
    rx.recv().unwrap()
}

/// The server for a fully built app over `store`.
pub async fn spawn_app_from(app: App, store: Store) -> TestApp {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = oneshot::channel::<()>();
    let app = Arc::new(app);
    let handle = tokio::spawn(cx_webhook::server::run(listener, app.clone(), async move {
        let _ = rx.await;
    }));
    TestApp {
        addr,
        app,
        client: Client::builder(TokioExecutor::new()).build_http(),
        store,
        _dir: None,
        shutdown: Some(tx),
        handle: Some(handle),
    }
}

impl TestApp {
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    /// Sends a request and reads the whole answer.
    pub async fn send(&self, request: Request<Full<Bytes>>) -> Answer {
        let response = tokio::time::timeout(Duration::from_secs(30), self.client.request(request))
            .await
            .expect("answer within 30 s")
            .expect("HTTP exchange");
        let (parts, body) = response.into_parts();
        let body = body.collect().await.expect("body").to_bytes();
        Answer {
            status: parts.status,
            headers: parts.headers,
            body,
        }
    }

    /// `method path` with optional JSON body and extra headers.
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        headers: &[(&str, &str)],
        body: Vec<u8>,
    ) -> Answer {
        let mut builder = Request::builder().method(method).uri(self.url(path));
        for (k, v) in headers {
            builder = builder.header(*k, *v);
        }
        self.send(builder.body(Full::new(Bytes::from(body))).unwrap())
            .await
    }

    /// POST a JSON body to `/webhook`.
    pub async fn post_webhook(&self, body: Vec<u8>) -> Answer {
        self.call(
            Method::POST,
            "/webhook",
            &[("content-type", "application/json")],
            body,
        )
        .await
    }

    /// POST the fallback fixture to `/webhook` with `headers` besides the JSON content type.
    pub async fn post_with(&self, headers: &[(&str, &str)]) -> Answer {
        let mut all = vec![("content-type", "application/json")];
        all.extend_from_slice(headers);
        self.call(Method::POST, "/webhook", &all, fixture("unknown-tag.json"))
            .await
    }

    /// POST the fallback fixture to `/webhook` with `Authorization: Bearer <token>`.
    pub async fn post_bearer(&self, token: &str) -> Answer {
        self.post_with(&[("authorization", &format!("Bearer {token}"))])
            .await
    }

    /// POST a built request to `/webhook`.
    pub async fn post(&self, request: CxRequest) -> Answer {
        self.post_webhook(request.build()).await
    }

    /// POST a fixture to `/webhook`.
    pub async fn post_fixture(&self, name: &str) -> Answer {
        self.post_webhook(fixture(name)).await
    }

    /// Triggers shutdown and waits for `server::run` to return.
    pub async fn shutdown(mut self) -> std::io::Result<()> {
        self.begin_shutdown();
        self.stopped().await
    }

    /// Signals shutdown without waiting.
    pub fn begin_shutdown(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }

    /// Waits for `server::run` to return after `begin_shutdown`.
    pub async fn stopped(mut self) -> std::io::Result<()> {
        let handle = self.handle.take().unwrap();
        tokio::time::timeout(Duration::from_secs(30), handle)
            .await
            .expect("server stops within 30 s")
            .expect("server task")
    }
}

/// Asserts a 200 webhook answer with some text.
pub fn assert_ok(a: &Answer) {
    assert_eq!(
        a.status,
        StatusCode::OK,
        "{:?}",
        String::from_utf8_lossy(&a.body)
    );
    assert!(!a.texts().is_empty());
}

/// The server with the standard table and `auth`.
pub async fn spawn_auth(auth: AuthConfig) -> TestApp {
    let mut config = Config::local();
    config.auth = auth;
    spawn_with(config, |_| {}).await
}

/// ID-token settings for `idp`'s keys, the test audience and the service agent, as `tweak` says.
pub fn oidc(idp: &Idp, tweak: impl FnOnce(&mut OidcConfig)) -> OidcConfig {
    let mut config = OidcConfig::new(vec![AUDIENCE.into()], vec![AGENT.into()], idp.url());
    tweak(&mut config);
    config
}

/// The server in google-oidc mode against `idp`, once its first key set is in.
pub async fn google_oidc(idp: &Idp) -> TestApp {
    let app = spawn_auth(AuthConfig::GoogleOidc(oidc(idp, |_| {}))).await;
    wait_for_keys(&app, idp).await;
    app
}

/// The app's key cache (ID-token modes only).
pub fn keys(app: &TestApp) -> &KeyCache {
    app.app.auth.keys().expect("an ID-token mode")
}

/// Waits until `cond` holds (panics after 10 s).
pub async fn until(what: &str, cond: impl Fn() -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !cond() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "not within 10 s: {what}"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// Waits for the app's first key set, and checks it took exactly one fetch.
pub async fn wait_for_keys(app: &TestApp, idp: &Idp) {
    idp.wait_for_fetches(1).await;
    until("the first key set is in", || keys(app).has_keys()).await;
    assert_eq!(idp.fetches(), 1, "one fetch at start");
}
