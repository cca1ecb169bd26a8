//! `cx-webhook send`, run as the real binary: against the service itself (a fixture, the
//! `--tag`/`--param` form, a non-2xx answer, nobody listening), and against a tiny local server that
//! plays a deployed webhook (to see the `Authorization` header) and the GCE metadata server (to mint
//! an ID token through google-cloud-auth's Application Default Credentials flow, as on Cloud Run).
//!
//! Every run gets an empty environment and an empty `HOME`, so a developer's own credentials are
//! never found or used.

use crate::common;

use std::convert::Infallible;
use std::process::{Command, Output};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use common::process::{Binary, signal, wait_exit};
use http::{Request, Response};
use http_body_util::Full;
use hyper::body::Incoming;
use serde_json::{Value, json};

/// The metadata server's ID token path (google-cloud-auth asks the default service account).
const IDENTITY_PATH: &str = "/computeMetadata/v1/instance/service-accounts/default/identity";

/// Runs `cx-webhook send ARGS` with only `env` set (plus an empty `HOME`).
fn send(args: &[&str], env: &[(&str, &str)]) -> Output {
    let home = tempfile::tempdir().unwrap();
    send_with_home(args, env, home.path())
}

fn send_with_home(args: &[&str], env: &[(&str, &str)], home: &std::path::Path) -> Output {
    let out = Command::new(env!("CARGO_BIN_EXE_cx-webhook"))
        .env_clear()
        .env("HOME", home)
        .envs(env.iter().copied())
        .arg("send")
        .args(args)
        .output()
        .unwrap();
    eprintln!(
        "send {args:?}: {:?}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn stdout_json(out: &Output) -> Value {
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "stdout is not JSON ({e}): {}",
            String::from_utf8_lossy(&out.stdout)
        )
    })
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// The service binary, started for one test and stopped (exit 0 expected) at the end.
struct Service {
    child: std::process::Child,
    address: String,
    _dir: tempfile::TempDir,
}

impl Service {
    fn start() -> Service {
        let dir = tempfile::tempdir().unwrap();
        let (child, address) = Binary::new(&dir).env("ACCOUNT_ACCESS", "open").start();
        Service {
            child,
            address,
            _dir: dir,
        }
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.address)
    }

    fn stop(mut self) {
        signal(&self.child, libc::SIGTERM);
        let status = wait_exit(&mut self.child, Duration::from_secs(15));
        assert_eq!(status.code(), Some(0));
    }
}

#[test]
fn a_fixture_is_posted_and_the_answer_printed_as_json() {
    let service = Service::start();
    let fixture = format!(
        "{}/tests/fixtures/account-balance.json",
        env!("CARGO_MANIFEST_DIR")
    );
    let out = send(&[&fixture, "--url", &service.url("/webhook")], &[]);
    assert_eq!(out.status.code(), Some(0));
    let answer = stdout_json(&out);
    assert_eq!(
        answer["fulfillmentResponse"]["messages"][0]["text"]["text"][0],
        "The balance of account A1001 is ₹1,25,430.50."
    );
    let status_line = format!("POST {} -> 200 OK in ", service.url("/webhook"));
    assert!(stderr(&out).starts_with(&status_line), "{}", stderr(&out));
    service.stop();
}

#[test]
fn tag_and_params_make_a_request_without_a_file() {
    let service = Service::start();
    let out = send(
        &[
            "--url",
            &service.url("/webhook"),
            "--tag",
            "account.balance",
            "--param",
            "account_id=A1001",
        ],
        &[],
    );
    assert_eq!(out.status.code(), Some(0));
    let answer = stdout_json(&out);
    assert_eq!(answer["sessionInfo"]["parameters"]["account_id"], "A1001");
    assert_eq!(answer["sessionInfo"]["parameters"]["currency"], "INR");
    service.stop();
}

#[test]
fn a_non_2xx_answer_is_printed_and_exits_1() {
    let service = Service::start();
    let out = send(
        &[
            "--url",
            &service.url("/nowhere"),
            "--tag",
            "account.balance",
        ],
        &[],
    );
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(stdout_json(&out)["error"]["code"], "not_found");
    assert!(
        stderr(&out).contains("-> 404 Not Found"),
        "{}",
        stderr(&out)
    );
    service.stop();
}

#[test]
fn nothing_listening_exits_2_with_the_reason() {
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/webhook", closed.local_addr().unwrap());
    drop(closed);
    let out = send(&["--webhook-url", &url, "--tag", "x"], &[]);
    assert_eq!(out.status.code(), Some(2));
    let err = stderr(&out);
    assert!(
        err.contains(&format!("nothing answers at {url}: is the server running?")),
        "{err}"
    );
    assert!(
        err.contains("cargo run -- serve --auth-mode none --account-access open --bind 127.0.0.1"),
        "{err}"
    );
    assert!(err.contains("Connection refused"), "{err}");
    assert_eq!(err.matches(&url).count(), 1, "the URL once: {err}");
    assert!(out.stdout.is_empty());
}

/// What the fake server saw of one request.
#[derive(Debug, Clone)]
struct Seen {
    /// Path and query, as sent.
    target: String,
    /// The `Authorization` header.
    authorization: Option<String>,
    /// The `Metadata-Flavor` header (the metadata server requires `Google`).
    metadata_flavor: Option<String>,
}

/// A local server on a random port: the metadata server's identity endpoint answers an ID token
/// for the requested audience ([`minted_token`]); any other path answers like a webhook.
struct FakeGoogle {
    addr: std::net::SocketAddr,
    seen: Arc<Mutex<Vec<Seen>>>,
}

impl FakeGoogle {
    fn start() -> FakeGoogle {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let record = seen.clone();
        let addr = common::spawn_fake_forever(move |request: Request<Incoming>| {
            let answer = answer(&record, &request);
            async move { Ok::<_, Infallible>(answer) }
        });
        FakeGoogle { addr, seen }
    }

    fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }
}

fn answer(record: &Mutex<Vec<Seen>>, request: &Request<Incoming>) -> Response<Full<Bytes>> {
    let header = |name: &str| {
        request
            .headers()
            .get(name)
            .map(|v| v.to_str().unwrap().to_owned())
    };
    let target = request
        .uri()
        .path_and_query()
        .map_or_else(String::new, ToString::to_string);
    record.lock().unwrap().push(Seen {
        target: target.clone(),
        authorization: header("authorization"),
        metadata_flavor: header("metadata-flavor"),
    });
    if request.uri().path() == IDENTITY_PATH {
        let audience = query_param(&target, "audience").unwrap_or_default();
        return Response::builder()
            .header("metadata-flavor", "Google")
            .header("content-type", "application/text")
            .body(Full::new(Bytes::from(minted_token(&audience))))
            .unwrap();
    }
    let body = json!({"fulfillmentResponse": {"messages": [{"text": {"text": ["hi"]}}]}});
    Response::builder()
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(body.to_string())))
        .unwrap()
}

fn query_param(target: &str, name: &str) -> Option<String> {
    let url = reqwest::Url::parse(&format!("http://x{target}")).unwrap();
    url.query_pairs()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
}

/// The ID token the fake metadata server issues for `audience`: a JWT with the claims google-cloud-auth
/// reads (`exp`) and those Dialogflow's service agent token carries (signed with a test key; the
/// client does not verify it).
fn minted_token(audience: &str) -> String {
    let now = jiff::Timestamp::now().as_second();
    let claims = json!({
        "iss": "https://accounts.google.com",
        "aud": audience,
        "email": "runtime@test-project.iam.gserviceaccount.com",
        "email_verified": true,
        "iat": now,
        "exp": now + 3600,
    });
    jsonwebtoken::encode(
        &jsonwebtoken::Header::default(),
        &claims,
        &jsonwebtoken::EncodingKey::from_secret(b"test"),
    )
    .unwrap()
}

#[test]
fn a_literal_token_is_sent_as_bearer_and_never_printed() {
    let fake = FakeGoogle::start();
    let token = minted_token("https://cx-webhook.example/webhook");
    let out = send(
        &[
            "--url",
            &fake.url("/webhook"),
            "--tag",
            "x",
            "--token",
            &token,
        ],
        &[],
    );
    assert_eq!(out.status.code(), Some(0));
    let seen = fake.seen();
    assert_eq!(seen.len(), 1, "{seen:?}");
    assert_eq!(seen[0].authorization, Some(format!("Bearer {token}")));
    assert!(!String::from_utf8_lossy(&out.stdout).contains(&token));
    assert!(!stderr(&out).contains(&token));
}

#[test]
fn adc_mints_an_id_token_for_the_webhook_url_from_the_metadata_server() {
    let fake = FakeGoogle::start();
    let metadata_host = fake.addr.to_string();
    let webhook = fake.url("/dialogflow/webhook");
    let out = send(
        &["--url", &webhook, "--tag", "x", "--token", "adc"],
        &[("GCE_METADATA_HOST", &metadata_host)],
    );
    assert_eq!(out.status.code(), Some(0));
    let seen = fake.seen();
    assert_eq!(seen.len(), 2, "{seen:?}");
    let (mds, call) = (&seen[0], &seen[1]);
    assert!(mds.target.starts_with(IDENTITY_PATH), "{mds:?}");
    assert_eq!(mds.metadata_flavor.as_deref(), Some("Google"));
    // Dialogflow's audience is the webhook URL as configured, path included.
    assert_eq!(query_param(&mds.target, "audience"), Some(webhook.clone()));
    let bearer = call.authorization.as_deref().unwrap();
    assert_eq!(call.target, "/dialogflow/webhook");
    let sent = bearer.strip_prefix("Bearer ").unwrap();
    let claims: Value = jsonwebtoken::dangerous::insecure_decode_claims(sent).unwrap();
    assert_eq!(
        claims["aud"], webhook,
        "the metadata server's token is the one sent"
    );
    for stream in [&out.stdout, &out.stderr] {
        assert!(!String::from_utf8_lossy(stream).contains(sent));
    }

    let out = send(
        &[
            "--url",
            &webhook,
            "--tag",
            "x",
            "--token",
            "adc",
            "--audience",
            "https://cx-webhook-abc-ew.a.run.app/dialogflow/webhook",
        ],
        &[("GCE_METADATA_HOST", &metadata_host)],
    );
    assert_eq!(out.status.code(), Some(0));
    let seen = fake.seen();
    assert_eq!(
        query_param(&seen[2].target, "audience").as_deref(),
        Some("https://cx-webhook-abc-ew.a.run.app/dialogflow/webhook")
    );
}

#[test]
fn adc_without_a_metadata_server_exits_2_and_says_what_to_do() {
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let metadata_host = closed.local_addr().unwrap().to_string();
    drop(closed);
    let out = send(
        &[
            "--url",
            "http://127.0.0.1:9/webhook",
            "--tag",
            "x",
            "--token",
            "adc",
            "--timeout-secs",
            "10",
        ],
        &[("GCE_METADATA_HOST", &metadata_host)],
    );
    assert_eq!(out.status.code(), Some(2));
    let err = stderr(&out);
    assert!(err.contains("cannot mint an ID token"), "{err}");
    assert!(err.contains("--impersonate-service-account"), "{err}");
}

#[test]
fn adc_from_a_user_login_is_refused_with_the_impersonation_hint() {
    let fake = FakeGoogle::start();
    let home = tempfile::tempdir().unwrap();
    let gcloud = home.path().join(".config/gcloud");
    std::fs::create_dir_all(&gcloud).unwrap();
    std::fs::write(
        gcloud.join("application_default_credentials.json"),
        json!({
            "type": "authorized_user",
            "client_id": "id.apps.googleusercontent.com",
            "client_secret": "not-a-secret",
            "refresh_token": "not-a-token",
        })
        .to_string(),
    )
    .unwrap();
    let out = send_with_home(
        &[
            "--url",
            &fake.url("/webhook"),
            "--tag",
            "x",
            "--token",
            "adc",
        ],
        &[("GCE_METADATA_HOST", &fake.addr.to_string())],
        home.path(),
    );
    assert_eq!(out.status.code(), Some(2));
    let err = stderr(&out);
    assert!(err.contains("a user account's, which cannot mint"), "{err}");
    assert!(err.contains("--impersonate-service-account"), "{err}");
    assert!(
        fake.seen().is_empty(),
        "nothing is sent without a token: {:?}",
        fake.seen()
    );
}

#[test]
fn the_booking_example_books_on_an_open_day_and_again_returns_the_same_booking() {
    let service = Service::start();
    let url = service.url("/webhook");
    let book = || send(&["--example", "booking-create", "--webhook-url", &url], &[]);
    let first = book();
    assert_eq!(first.status.code(), Some(0));
    let answer = stdout_json(&first);
    let params = &answer["sessionInfo"]["parameters"];
    assert_eq!(params["booking_status"], "confirmed", "{answer}");
    let day = stderr(&first);
    assert!(day.contains("booking_date: 20"), "{day}");
    assert!(!day.contains("Sunday"), "{day}");
    // One vehicle, one slot: the second send gets the first booking back.
    let again = stdout_json(&book());
    assert_eq!(
        again["sessionInfo"]["parameters"]["booking_id"],
        params["booking_id"]
    );
    service.stop();
}

#[test]
fn an_intent_routes_with_an_empty_tag_and_examples_are_listed_by_name() {
    let service = Service::start();
    let url = service.url("/webhook");
    let out = send(
        &[
            "--intent",
            "dealer.find",
            "--param",
            "location=Pune",
            "--webhook-url",
            &url,
        ],
        &[],
    );
    assert_eq!(out.status.code(), Some(0));
    let text = stdout_json(&out)["fulfillmentResponse"]["messages"][0]["text"]["text"][0].clone();
    assert!(text.as_str().unwrap().contains("dealers in Pune"), "{text}");
    // The same name as a tag is not a tag: the fallback answers.
    let out = send(
        &[
            "--tag",
            "dealer.find",
            "--param",
            "location=Pune",
            "--webhook-url",
            &url,
        ],
        &[],
    );
    let text = stdout_json(&out)["fulfillmentResponse"]["messages"][0]["text"]["text"][0].clone();
    assert!(text.as_str().unwrap().starts_with("Sorry"), "{text}");

    let list = send(&["--example", "list"], &[]);
    assert_eq!(list.status.code(), Some(0));
    let list = String::from_utf8(list.stdout).unwrap();
    assert!(list.starts_with("account-balance "), "{list}");
    assert!(list.contains("\nbooking-create "), "{list}");
    let unknown = send(&["--example", "nope"], &[]);
    assert_eq!(unknown.status.code(), Some(2));
    assert!(
        stderr(&unknown).contains("no example is called `nope`; the examples are: account-balance"),
        "{}",
        stderr(&unknown)
    );
    service.stop();
}
