//! `cx-webhook send`: post one `WebhookRequest` to a webhook the way Dialogflow CX would, and show
//! the answer. It works against a local server, a container, or a deployed Cloud Run service.
//!
//! Design choices:
//! - The request is a fixture file sent as is, a built-in example (`--example NAME`: the fixtures of
//!   `tests/fixtures`, embedded in the binary), or a minimal valid request built from `--tag` or
//!   `--intent` and `--param`. With a file or an example, the flags change it.
//! - A built request and every example get a fresh `detectIntentResponseId`, so a side effect such as
//!   a booking is not mistaken for a retry. The `booking-create` example's `booking_date` is set to
//!   a day D-PUN-01 is open (not a Sunday), at least [`BOOKING_DAYS_AHEAD`] days after today in
//!   Asia/Kolkata, so it books; `--param booking_date=...` still overrides it.
//! - `--intent NAME` sends an empty tag and `intentInfo.displayName` NAME: the service routes by
//!   intent only when the tag is empty. `--form NAME[=STATE]` lists NAME in the page's form
//!   (`pageInfo.formInfo.parameterInfo`), so a handler that rejects it marks it `INVALID` there.
//! - The answer's body goes to stdout, pretty-printed when it is JSON, so `| jq` works; the status
//!   line and latency go to stderr. Exit code 0 means a 2xx answer, 1 any other status, 2 that
//!   nothing could be sent (bad arguments, no credentials, no connection).
//! - `--webhook-token adc` mints a Google ID token from Application Default Credentials with
//!   google-cloud-auth (a service account key, an impersonated service account, or the metadata
//!   server), for the audience Dialogflow's service agent would use: the webhook URL as configured,
//!   path included ("Service agent authentication" in
//!   <https://cloud.google.com/dialogflow/cx/docs/concept/webhook>). `--audience` overrides it. A token is a [`Secret`]: it is sent and never printed, in output,
//!   errors or `Debug`.
//! - `--user SUBJECT` signs the request in as an end user, the way a web page passes its signed-in
//!   user's ID token to Dialogflow: it asks the dev identity provider (`examples/dev_idp`, at
//!   `DEV_IDP_URL`) for an ID token for SUBJECT (`POST DEV_IDP_URL/mint`, `{"sub": SUBJECT}`) and
//!   puts it in `payload.<END_USER_TOKEN_FIELD>` (default `userIdToken`), where CX hands the
//!   page's token to the webhook. Without `DEV_IDP_URL`, or when no token comes back, nothing is
//!   sent (exit code 2): a request silently sent without the token would look like a refusal.
//! - Log lines (from the libraries, if any) go to stderr, so stdout stays parseable.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use clap::Args;
use google_cloud_auth::credentials::idtoken;
use jiff::ToSpan;
use jiff::civil::{Date, Weekday};
use serde_json::{Map, Value, json};

use crate::auth::end_user::DEFAULT_TOKEN_FIELD;
use crate::config::Secret;
use crate::domain::home_today;
use crate::telemetry::error_chain;

/// Dialogflow's default webhook timeout; a slower answer is flagged.
const DIALOGFLOW_DEFAULT_TIMEOUT: Duration = Duration::from_secs(5);

/// Where credentials come from, and what to do outside Google Cloud.
const ADC_HINT: &str = "Credentials are looked up in GOOGLE_APPLICATION_CREDENTIALS, then gcloud's \
    application-default file, then the metadata server (on Google Cloud only). On your machine, \
    impersonate a service account that may invoke the service: gcloud auth application-default \
    login --impersonate-service-account=SA_EMAIL";

/// How many days after today the `booking-create` example books, at least: inside the booking
/// window (after today, at most 60 days ahead) with room to spare.
pub const BOOKING_DAYS_AHEAD: i64 = 3;

/// One built-in example: a fixture of `tests/fixtures`, embedded in the binary.
#[derive(Debug)]
pub struct Example {
    /// Its name: the fixture's file name without `.json`.
    pub name: &'static str,
    /// What it asks and what the demo data answers.
    pub about: &'static str,
    /// The request.
    pub json: &'static str,
    /// Whether its `booking_date` is set relative to today when sent.
    pub dated: bool,
}

macro_rules! example {
    ($name:literal, $about:literal) => {
        example!($name, $about, false)
    };
    ($name:literal, $about:literal, $dated:literal) => {
        Example {
            name: $name,
            about: $about,
            json: include_str!(concat!("../tests/fixtures/", $name, ".json")),
            dated: $dated,
        }
    };
}

/// The built-in examples, in the order `--example list` shows them.
pub const EXAMPLES: &[Example] = &[
    example!(
        "account-balance",
        "account.balance: the balance of account A1001"
    ),
    example!(
        "account-transactions",
        "account.transactions: the last 5 transactions of A1001"
    ),
    example!(
        "dealers-nearby",
        "dealers.nearby: dealers selling the Nexon in Pune"
    ),
    example!(
        "service-cost",
        "service.cost: a periodic service for a diesel Nexon"
    ),
    example!(
        "booking-validate-bad-date",
        "booking.validate: a date in the past, marked INVALID in the page's form"
    ),
    example!(
        "booking-create",
        "booking.create: books a Nexon service at D-PUN-01 (Pune), 10:30 on an open day a few days ahead",
        true
    ),
    example!(
        "weather",
        "weather: current conditions in Mumbai (asks Open-Meteo: needs the internet)"
    ),
    example!(
        "event-triggered",
        "account.balance called on an event (triggerEvent, no user text)"
    ),
    example!(
        "seed-database-query",
        "database-query with query_type=account_balance: an alias of account.balance"
    ),
    example!(
        "seed-guide-sample",
        "the tag weather-webhook, which no handler serves: the polite fallback"
    ),
    example!("unknown-tag", "an unknown tag: the polite fallback"),
];

/// The example called `name`.
pub fn example(name: &str) -> Option<&'static Example> {
    EXAMPLES.iter().find(|e| e.name == name)
}

/// The day the `booking-create` example books: at least [`BOOKING_DAYS_AHEAD`] days after `today`,
/// not a Sunday (D-PUN-01 is open Monday to Saturday).
pub fn booking_day(today: Date) -> Date {
    let mut day = today.saturating_add(BOOKING_DAYS_AHEAD.days());
    while day.weekday() == Weekday::Sunday {
        day = day.saturating_add(1.day());
    }
    day
}

/// Settings of `cx-webhook send`.
#[derive(Debug, Clone, Args)]
pub struct SendArgs {
    /// A WebhookRequest JSON file, e.g. tests/fixtures/account-balance.json.
    ///
    /// Without it (and without --example), --tag or --intent builds a minimal request.
    pub fixture: Option<PathBuf>,

    /// A built-in example request by name; `--example list` lists them.
    ///
    /// The examples are the fixtures of tests/fixtures, each sent with a fresh
    /// detectIntentResponseId; `booking-create` is dated a few days ahead so that it books.
    #[arg(long, value_name = "NAME", conflicts_with = "fixture")]
    pub example: Option<String>,

    /// The webhook URL, path included (as configured in the agent).
    #[arg(
        long = "webhook-url",
        alias = "url",
        value_name = "URL",
        env = "WEBHOOK_URL",
        default_value = "http://localhost:8080/webhook"
    )]
    pub url: String,

    /// The `fulfillmentInfo.tag` to send (overrides the file's).
    #[arg(long)]
    pub tag: Option<String>,

    /// The matched intent's display name; the tag is sent empty, so the intent picks the handler.
    ///
    /// The service routes by intent only when the tag is empty, as when a route without a
    /// fulfillment tag calls the webhook.
    #[arg(long, value_name = "NAME", conflicts_with = "tag")]
    pub intent: Option<String>,

    /// A session parameter (repeatable); a VALUE that is JSON is sent as JSON.
    ///
    /// `limit=3` and `booking_time={"hours":10,"minutes":30}` send a number and an object;
    /// anything that is not JSON is sent as a string.
    #[arg(long = "param", value_name = "NAME=VALUE", value_parser = parse_param)]
    pub params: Vec<(String, Value)>,

    /// Lists NAME as a parameter of the page's form (repeatable), so a rejected value is marked
    /// INVALID in pageInfo.formInfo.
    ///
    /// STATE is EMPTY, FILLED or INVALID; without it, FILLED when the session has a value for
    /// NAME, else EMPTY. The form entry carries the session's value.
    #[arg(long = "form", value_name = "NAME[=STATE]", value_parser = parse_form)]
    pub form: Vec<(String, Option<String>)>,

    /// Authorization: `none`, `adc` (an ID token from Application Default Credentials) or a token.
    ///
    /// `adc` mints a Google ID token from Application Default Credentials, as Dialogflow's
    /// service agent presents one; anything else is sent as `Bearer <token>`. The token is never
    /// shown.
    #[arg(
        long = "webhook-token",
        alias = "token",
        value_name = "none|adc|TOKEN",
        env = "WEBHOOK_TOKEN",
        hide_env_values = true,
        default_value = "none",
        value_parser = parse_token
    )]
    pub token: TokenSource,

    /// The ID token's audience for `--webhook-token adc`; default: the URL exactly as given.
    #[arg(long)]
    pub audience: Option<String>,

    /// Sign the request in as end user SUBJECT (e.g. demo-user-1): an ID token for SUBJECT from
    /// the dev identity provider (DEV_IDP_URL) goes in payload.<END_USER_TOKEN_FIELD>.
    ///
    /// This is how a web page passes its signed-in user to Dialogflow, so that a server with
    /// ACCOUNT_ACCESS=verified shows SUBJECT's own accounts. `cargo run --example dev_idp --
    /// /tmp/idp.env` starts the dev identity provider and writes the settings for both `serve` and
    /// `send` (`env $(cat /tmp/idp.env) cargo run -- send --user demo-user-1 ...`). Without
    /// DEV_IDP_URL nothing is sent. The token is never shown.
    #[arg(long, value_name = "SUBJECT", value_parser = parse_subject)]
    pub user: Option<String>,

    /// The dev identity provider that signs --user's token (printed by examples/dev_idp).
    #[arg(long, value_name = "URL", env = "DEV_IDP_URL")]
    pub dev_idp_url: Option<String>,

    /// The WebhookRequest.payload field for --user's token: the server's END_USER_TOKEN_FIELD.
    #[arg(
        long,
        value_name = "FIELD",
        env = "END_USER_TOKEN_FIELD",
        default_value = DEFAULT_TOKEN_FIELD,
        value_parser = parse_field
    )]
    pub end_user_token_field: String,

    /// Seconds to wait for the token and for the answer.
    #[arg(long, value_name = "SECS", default_value_t = 30)]
    pub timeout_secs: u64,
}

/// Where the `Authorization` header comes from.
#[derive(Clone)]
pub enum TokenSource {
    /// No header.
    None,
    /// A Google ID token minted from Application Default Credentials.
    Adc,
    /// This token, as `Bearer <token>`.
    Literal(Secret),
}

impl std::fmt::Debug for TokenSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            TokenSource::None => f.write_str("None"),
            TokenSource::Adc => f.write_str("Adc"),
            TokenSource::Literal(secret) => f.debug_tuple("Literal").field(secret).finish(),
        }
    }
}

/// Why nothing was sent (exit code 2). No variant carries a token.
#[derive(Debug, thiserror::Error)]
pub enum SendError {
    /// The fixture file could not be read.
    #[error("cannot read {path}: {source}")]
    ReadFixture {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// `--tag`/`--param` need a JSON object to change, and the file is not one.
    #[error("{path} is not a JSON object, so --tag/--param cannot be applied to it")]
    FixtureNotObject {
        /// The file.
        path: PathBuf,
    },
    /// Neither a file, an example, a tag nor an intent was given.
    #[error(
        "nothing to send: give a FIXTURE file, --example NAME (`--example list` lists them), or \
         --tag TAG / --intent NAME (with --param NAME=VALUE ...)"
    )]
    NothingToSend,
    /// No built-in example has this name.
    #[error("no example is called `{name}`; the examples are: {names}", names = example_names())]
    UnknownExample {
        /// The name asked for.
        name: String,
    },
    /// The URL is not an http(s) URL.
    #[error("--webhook-url `{0}` is not an http:// or https:// URL")]
    BadUrl(String),
    /// Application Default Credentials could not be loaded.
    #[error("no usable Application Default Credentials: {0}. {hint}", hint = ADC_HINT)]
    Credentials(String),
    /// The ID token could not be minted.
    #[error("cannot mint an ID token for audience {audience}: {reason}. {hint}", hint = ADC_HINT)]
    Mint {
        /// The requested audience.
        audience: String,
        /// Why.
        reason: String,
    },
    /// Nothing accepted the connection: most often, no server is running there.
    #[error("nothing answers at {url}: is the server running? {next_step}")]
    Unreachable {
        /// The URL.
        url: String,
        /// What to do about it.
        next_step: &'static str,
        /// Why (without the URL, which the message already names).
        source: reqwest::Error,
    },
    /// The request could not be sent or its answer not read.
    #[error("request to {url} failed")]
    Http {
        /// The URL.
        url: String,
        /// Why.
        source: reqwest::Error,
    },
    /// `--user` was given without a dev identity provider to sign the token.
    #[error(
        "--user needs a dev identity provider to sign the end user's ID token, and DEV_IDP_URL \
         (--dev-idp-url) is not set. Start one with `cargo run --example dev_idp -- /tmp/idp.env`, \
         then serve and send with its settings: `env $(cat /tmp/idp.env) cargo run -- serve` and \
         `env $(cat /tmp/idp.env) cargo run -- send --user SUBJECT ...`"
    )]
    NoDevIdp,
    /// The dev identity provider gave no token for `--user`.
    #[error("no ID token for --user from the dev identity provider at {url}: {reason}")]
    DevIdp {
        /// Its mint endpoint.
        url: String,
        /// Why (never the token).
        reason: String,
    },
    /// The async runtime could not start.
    #[error("cannot start the async runtime: {0}")]
    Runtime(std::io::Error),
}

/// What the webhook answered.
#[derive(Debug)]
pub struct Answer {
    /// The HTTP status.
    pub status: reqwest::StatusCode,
    /// Time from sending the request to the end of the body.
    pub latency: Duration,
    /// The body.
    pub body: Vec<u8>,
}

/// The examples' names, comma separated.
fn example_names() -> String {
    EXAMPLES
        .iter()
        .map(|e| e.name)
        .collect::<Vec<_>>()
        .join(", ")
}

/// `--example list`: one line per example, its name and what it does.
fn list_examples() -> String {
    let width = EXAMPLES.iter().map(|e| e.name.len()).max().unwrap_or(0);
    let mut out = String::new();
    for e in EXAMPLES {
        out.push_str(&format!("{:width$}  {}\n", e.name, e.about));
    }
    out
}

/// Runs `cx-webhook send` and maps the outcome to the documented exit codes.
pub fn main(args: &SendArgs) -> ExitCode {
    if args.example.as_deref() == Some("list") {
        print_stdout(&list_examples());
        return ExitCode::SUCCESS;
    }
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => return fail(&SendError::Runtime(e)),
    };
    match runtime.block_on(send(args)) {
        Ok(answer) => {
            report(args, &answer);
            if answer.status.is_success() {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            }
        }
        Err(e) => fail(&e),
    }
}

fn fail(e: &SendError) -> ExitCode {
    eprintln!("cx-webhook send: {}", error_chain(e));
    ExitCode::from(2)
}

/// Status line and latency on stderr, the body on stdout.
fn report(args: &SendArgs, answer: &Answer) {
    eprintln!(
        "POST {} -> {} in {} ms",
        args.url,
        answer.status,
        answer.latency.as_millis()
    );
    if answer.latency > DIALOGFLOW_DEFAULT_TIMEOUT {
        eprintln!(
            "note: slower than Dialogflow's default webhook timeout ({} s)",
            DIALOGFLOW_DEFAULT_TIMEOUT.as_secs()
        );
    }
    let text = match serde_json::from_slice::<Value>(&answer.body) {
        Ok(v) => serde_json::to_string_pretty(&v).unwrap_or_else(|_| v.to_string()),
        Err(_) if answer.body.is_empty() => return,
        Err(_) => String::from_utf8_lossy(&answer.body).into_owned(),
    };
    print_stdout(&format!("{text}\n"));
}

/// Writes to stdout; a reader that went away (`send ... | head`) is not an error worth a panic.
fn print_stdout(text: &str) {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    let _ = out.write_all(text.as_bytes()).and_then(|()| out.flush());
}

/// Builds the request, obtains the token, posts, and reads the whole answer.
pub async fn send(args: &SendArgs) -> Result<Answer, SendError> {
    let url = args.url.as_str();
    if !(url.starts_with("http://") || url.starts_with("https://")) {
        return Err(SendError::BadUrl(url.to_owned()));
    }
    let base = base(args)?;
    let timeout = Duration::from_secs(args.timeout_secs.max(1));
    let client = reqwest::Client::builder()
        .timeout(timeout)
        .user_agent(concat!("cx-webhook-send/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|source| SendError::Http {
            url: url.to_owned(),
            source,
        })?;
    let user_token = match &args.user {
        Some(subject) => Some(end_user_token(&client, args.dev_idp_url.as_deref(), subject).await?),
        None => None,
    };
    let edits = Edits {
        tag: args.tag.as_deref(),
        intent: args.intent.as_deref(),
        params: &args.params,
        form: &args.form,
        user_token: user_token
            .as_ref()
            .map(|token| (args.end_user_token_field.as_str(), token)),
    };
    let body = request_body(base, &edits)?;
    if let Some(subject) = &args.user {
        eprintln!(
            "signed in as {subject}: an ID token from the dev identity provider in payload.{}",
            args.end_user_token_field
        );
    }
    let token = match &args.token {
        TokenSource::None => None,
        TokenSource::Literal(secret) => Some(secret.clone()),
        TokenSource::Adc => {
            let audience = args.audience.as_deref().unwrap_or(url);
            eprintln!("minting a Google ID token for audience {audience}");
            Some(mint_id_token(audience, timeout).await?)
        }
    };

    let http = |source: reqwest::Error| {
        let url = url.to_owned();
        // reqwest's message repeats the URL; ours names it once.
        let source = source.without_url();
        if source.is_connect() {
            let next_step = next_step_when_unreachable(&url);
            SendError::Unreachable {
                url,
                next_step,
                source,
            }
        } else {
            SendError::Http { url, source }
        }
    };
    let mut request = client
        .post(url)
        .header(reqwest::header::CONTENT_TYPE, "application/json")
        .body(body);
    if let Some(token) = &token {
        request = request.bearer_auth(token.expose());
    }
    let started = Instant::now();
    let response = request.send().await.map_err(http)?;
    let status = response.status();
    let body = response.bytes().await.map_err(http)?.to_vec();
    Ok(Answer {
        status,
        latency: started.elapsed(),
        body,
    })
}

/// An ID token for end user `subject` from the dev identity provider at `dev_idp`
/// (`POST <dev_idp>/mint`, `{"sub": subject}`, answered with `{"id_token": ...}`).
async fn end_user_token(
    client: &reqwest::Client,
    dev_idp: Option<&str>,
    subject: &str,
) -> Result<Secret, SendError> {
    let base = dev_idp
        .map(str::trim)
        .filter(|u| !u.is_empty())
        .ok_or(SendError::NoDevIdp)?;
    let url = format!("{}/mint", base.trim_end_matches('/'));
    let refused = |reason: String| SendError::DevIdp {
        url: url.clone(),
        reason,
    };
    if !(url.starts_with("http://") || url.starts_with("https://")) {
        return Err(refused(
            "DEV_IDP_URL is not an http:// or https:// URL".into(),
        ));
    }
    let response = client
        .post(&url)
        .json(&json!({ "sub": subject }))
        .send()
        .await
        .map_err(|e| {
            refused(if e.is_connect() {
                "nothing answers there: is examples/dev_idp still running? DEV_IDP_URL must be the \
                 one it printed this time"
                    .into()
            } else {
                error_chain(&e.without_url())
            })
        })?;
    let status = response.status();
    let answer: Value = response.json().await.map_err(|e| {
        refused(format!(
            "{status}, and not the JSON a dev_idp answers ({})",
            error_chain(&e.without_url())
        ))
    })?;
    match answer.get("id_token").and_then(Value::as_str) {
        Some(token) if status.is_success() && !token.is_empty() => Ok(Secret::new(token)),
        _ => Err(refused(format!(
            "{status}: {}",
            answer
                .get("error")
                .and_then(Value::as_str)
                .unwrap_or("no id_token in the answer (is DEV_IDP_URL the one dev_idp printed?)")
        ))),
    }
}

/// What to suggest when nothing answers at `url`: start the local server, or check the URL.
fn next_step_when_unreachable(url: &str) -> &'static str {
    let host = reqwest::Url::parse(url)
        .ok()
        .and_then(|u| u.host_str().map(str::to_owned))
        .unwrap_or_default();
    if matches!(host.as_str(), "localhost" | "127.0.0.1" | "[::1]") {
        "Start it in another terminal with `cargo run -- serve --auth-mode none --account-access open --bind 127.0.0.1` \
         (or point --webhook-url / WEBHOOK_URL at a running one)."
    } else {
        "Check --webhook-url (WEBHOOK_URL): the host and port, and that the service is deployed."
    }
}

/// What the request starts from: `--fixture`'s file, `--example`'s sample (saying which booking day
/// a dated one gets), or a minimal request.
fn base(args: &SendArgs) -> Result<Base<'_>, SendError> {
    Ok(match (&args.fixture, &args.example) {
        (Some(path), _) => Base::File(
            path.as_path(),
            std::fs::read(path).map_err(|source| SendError::ReadFixture {
                path: path.clone(),
                source,
            })?,
        ),
        (None, Some(name)) => {
            let example =
                example(name).ok_or_else(|| SendError::UnknownExample { name: name.clone() })?;
            let today = home_today(jiff::Timestamp::now());
            if example.dated {
                eprintln!(
                    "booking_date: {} ({}, at least {BOOKING_DAYS_AHEAD} days after today in the dealer's time zone)",
                    booking_day(today),
                    booking_day(today).strftime("%A")
                );
            }
            Base::Example(example, today)
        }
        (None, None) => Base::Built,
    })
}

/// Where the request starts from.
enum Base<'a> {
    /// A file's bytes.
    File(&'a Path, Vec<u8>),
    /// A built-in example, and today in the dealer's time zone (for a dated example).
    Example(&'static Example, Date),
    /// A minimal request.
    Built,
}

/// What the flags change in the request.
#[derive(Debug, Default)]
struct Edits<'a> {
    tag: Option<&'a str>,
    intent: Option<&'a str>,
    params: &'a [(String, Value)],
    form: &'a [(String, Option<String>)],
    /// The end user's ID token and the `payload` field it goes in.
    user_token: Option<(&'a str, &'a Secret)>,
}

impl Edits<'_> {
    fn is_empty(&self) -> bool {
        self.tag.is_none()
            && self.intent.is_none()
            && self.params.is_empty()
            && self.form.is_empty()
            && self.user_token.is_none()
    }
}

/// The bytes to post: a file untouched when no flag changes it; else the file, the example (with a
/// fresh response id and, when dated, its booking date) or a minimal request, with the edits applied.
fn request_body(base: Base<'_>, edits: &Edits<'_>) -> Result<Vec<u8>, SendError> {
    let mut request = match base {
        Base::File(_, bytes) if edits.is_empty() => return Ok(bytes),
        Base::File(path, bytes) => match serde_json::from_slice::<Value>(&bytes) {
            Ok(Value::Object(map)) => map,
            _ => {
                return Err(SendError::FixtureNotObject {
                    path: path.to_owned(),
                });
            }
        },
        Base::Example(example, today) => {
            // Every example is a JSON object (a unit test parses each).
            let Ok(Value::Object(mut map)) = serde_json::from_str::<Value>(example.json) else {
                return Err(SendError::FixtureNotObject {
                    path: PathBuf::from(example.name),
                });
            };
            map.insert(
                "detectIntentResponseId".into(),
                Value::from(format!("send-{}", random_hex())),
            );
            if example.dated {
                let day = booking_day(today);
                set_params(
                    &mut map,
                    &[(
                        "booking_date".to_owned(),
                        json!({"year": day.year(), "month": day.month(), "day": day.day()}),
                    )],
                );
            }
            map
        }
        Base::Built if edits.tag.is_none() && edits.intent.is_none() => {
            return Err(SendError::NothingToSend);
        }
        Base::Built => minimal_request(),
    };
    if let Some(tag) = edits.tag {
        set_tag(&mut request, tag);
    }
    if let Some(intent) = edits.intent {
        // Routing by intent happens only when the tag is empty.
        set_tag(&mut request, "");
        let mut info = take_object(&mut request, "intentInfo");
        info.remove("lastMatchedIntent");
        info.insert("displayName".into(), Value::from(intent));
        info.insert("confidence".into(), Value::from(1.0));
        info.entry("parameters").or_insert_with(|| json!({}));
        request.insert("intentInfo".into(), Value::Object(info));
    }
    set_params(&mut request, edits.params);
    if !edits.form.is_empty() {
        set_form(&mut request, edits.form);
    }
    if let Some((field, token)) = edits.user_token {
        let mut payload = take_object(&mut request, "payload");
        payload.insert(field.into(), Value::from(token.expose()));
        request.insert("payload".into(), Value::Object(payload));
    }
    Ok(Value::Object(request).to_string().into_bytes())
}

fn set_tag(request: &mut Map<String, Value>, tag: &str) {
    let mut info = take_object(request, "fulfillmentInfo");
    info.insert("tag".into(), Value::from(tag));
    request.insert("fulfillmentInfo".into(), Value::Object(info));
}

fn set_params(request: &mut Map<String, Value>, params: &[(String, Value)]) {
    if params.is_empty() {
        return;
    }
    let mut session = take_object(request, "sessionInfo");
    let mut parameters = take_object(&mut session, "parameters");
    parameters.extend(params.iter().cloned());
    session.insert("parameters".into(), Value::Object(parameters));
    request.insert("sessionInfo".into(), Value::Object(session));
}

/// Lists each form parameter in `pageInfo.formInfo.parameterInfo` (replacing an entry of the same
/// name), with the session's value and the given state (default: FILLED with a value, else EMPTY).
fn set_form(request: &mut Map<String, Value>, form: &[(String, Option<String>)]) {
    let values = request
        .get("sessionInfo")
        .and_then(|s| s.get("parameters"))
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default();
    let mut page = take_object(request, "pageInfo");
    let mut form_info = take_object(&mut page, "formInfo");
    let mut infos = match form_info.remove("parameterInfo") {
        Some(Value::Array(infos)) => infos,
        _ => Vec::new(),
    };
    for (name, state) in form {
        infos.retain(|info| info.get("displayName").and_then(Value::as_str) != Some(name));
        let value = values.get(name).filter(|v| !v.is_null());
        let state = state
            .clone()
            .unwrap_or_else(|| if value.is_some() { "FILLED" } else { "EMPTY" }.to_owned());
        let mut info = Map::new();
        info.insert("displayName".into(), Value::from(name.as_str()));
        info.insert("required".into(), Value::from(true));
        info.insert("state".into(), Value::from(state));
        if let Some(value) = value {
            info.insert("value".into(), value.clone());
        }
        infos.push(Value::Object(info));
    }
    form_info.insert("parameterInfo".into(), Value::Array(infos));
    page.insert("formInfo".into(), Value::Object(form_info));
    request.insert("pageInfo".into(), Value::Object(page));
}

/// Removes and returns the object at `map[key]` (an empty one if absent or not an object).
fn take_object(map: &mut Map<String, Value>, key: &str) -> Map<String, Value> {
    match map.remove(key) {
        Some(Value::Object(inner)) => inner,
        _ => Map::new(),
    }
}

/// The smallest request the service treats as a real call: an id, a session and a language.
fn minimal_request() -> Map<String, Value> {
    let id = random_hex();
    let mut request = Map::new();
    request.insert(
        "detectIntentResponseId".into(),
        Value::from(format!("send-{id}")),
    );
    request.insert("languageCode".into(), Value::from("en"));
    request.insert(
        "sessionInfo".into(),
        json!({
            "session": format!("projects/cx-webhook-send/locations/global/agents/send/sessions/send-{id}"),
            "parameters": {}
        }),
    );
    request.insert("fulfillmentInfo".into(), json!({"tag": ""}));
    request
}

/// 16 random hex digits (from the clock if the OS has no randomness to give).
fn random_hex() -> String {
    let mut bytes = [0u8; 8];
    if getrandom::fill(&mut bytes).is_err() {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        bytes = (nanos as u64).to_be_bytes();
    }
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Mints an ID token for `audience` from Application Default Credentials.
async fn mint_id_token(audience: &str, timeout: Duration) -> Result<Secret, SendError> {
    // Dialogflow's token names its service agent in `email`, and the service checks it; an
    // impersonated service account's token carries `email` only when asked to.
    let credentials = idtoken::Builder::new(audience)
        .with_include_email()
        .build()
        .map_err(|e| {
            SendError::Credentials(if e.is_not_supported() {
                // An `authorized_user` file, from a plain `gcloud auth application-default login`.
                "they are a user account's, which cannot mint an ID token for the service's URL"
                    .to_owned()
            } else {
                error_chain(&e)
            })
        })?;
    let mint_error = |reason: String| SendError::Mint {
        audience: audience.to_owned(),
        reason,
    };
    match tokio::time::timeout(timeout, credentials.id_token()).await {
        Ok(Ok(token)) => Ok(Secret::new(token)),
        Ok(Err(e)) => Err(mint_error(error_chain(&e))),
        Err(_) => Err(mint_error(format!(
            "no answer within {} s",
            timeout.as_secs()
        ))),
    }
}

/// Parses `NAME=VALUE`; a VALUE that is valid JSON stays JSON.
fn parse_param(raw: &str) -> Result<(String, Value), String> {
    let (name, value) = raw
        .split_once('=')
        .ok_or_else(|| format!("`{raw}` is not NAME=VALUE"))?;
    let name = name.trim();
    if name.is_empty() {
        return Err(format!("`{raw}` has no NAME"));
    }
    let value = serde_json::from_str(value).unwrap_or_else(|_| Value::from(value));
    Ok((name.to_owned(), value))
}

/// Parses `--form NAME[=STATE]`.
fn parse_form(raw: &str) -> Result<(String, Option<String>), String> {
    let (name, state) = match raw.split_once('=') {
        Some((name, state)) => (name.trim(), Some(state.trim().to_ascii_uppercase())),
        None => (raw.trim(), None),
    };
    if name.is_empty() {
        return Err(format!("`{raw}` has no NAME"));
    }
    if let Some(state) = &state
        && !matches!(state.as_str(), "EMPTY" | "FILLED" | "INVALID")
    {
        return Err(format!(
            "`{state}` is not a form parameter state: EMPTY, FILLED or INVALID"
        ));
    }
    Ok((name.to_owned(), state))
}

/// Parses `--user SUBJECT`: 1 to 255 bytes, no control characters (what an ID token's `sub` may be).
fn parse_subject(raw: &str) -> Result<String, String> {
    if raw.is_empty() || raw.len() > 255 || raw.chars().any(char::is_control) {
        return Err("a subject is 1 to 255 bytes without control characters".into());
    }
    Ok(raw.to_owned())
}

/// Parses `--end-user-token-field` (`END_USER_TOKEN_FIELD`): 1 to 64 visible ASCII characters, as
/// the server accepts.
fn parse_field(raw: &str) -> Result<String, String> {
    let field = raw.trim();
    if field.is_empty() || field.len() > 64 || !field.bytes().all(|b| b.is_ascii_graphic()) {
        return Err("a payload field name is 1 to 64 visible ASCII characters".into());
    }
    Ok(field.to_owned())
}

/// Parses `--webhook-token`; a literal token is checked to fit in a header, and never echoed.
fn parse_token(raw: &str) -> Result<TokenSource, String> {
    match raw.trim() {
        "" | "none" => Ok(TokenSource::None),
        "adc" => Ok(TokenSource::Adc),
        token if reqwest::header::HeaderValue::from_str(&format!("Bearer {token}")).is_ok() => {
            Ok(TokenSource::Literal(Secret::new(token)))
        }
        _ => Err("the token has characters a header cannot carry".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cx::WebhookRequest;

    fn params(raw: &[&str]) -> Vec<(String, Value)> {
        raw.iter().map(|r| parse_param(r).unwrap()).collect()
    }

    #[test]
    fn a_tag_makes_a_request_the_service_accepts() {
        let params = params(&["account_id=A1001"]);
        let edits = Edits {
            tag: Some("account.balance"),
            params: &params,
            ..Edits::default()
        };
        let body = request_body(Base::Built, &edits).unwrap();
        let request = WebhookRequest::from_slice(&body).unwrap();
        assert_eq!(request.fulfillment_info.tag, "account.balance");
        assert_eq!(request.session_info.parameters["account_id"], "A1001");
        assert!(request.detect_intent_response_id.starts_with("send-"));
        assert!(request.session_info.session.contains("/sessions/send-"));
    }

    #[test]
    fn every_built_request_is_a_new_call() {
        let edits = Edits {
            tag: Some("t"),
            ..Edits::default()
        };
        let a = WebhookRequest::from_slice(&request_body(Base::Built, &edits).unwrap()).unwrap();
        let b = WebhookRequest::from_slice(&request_body(Base::Built, &edits).unwrap()).unwrap();
        assert_ne!(a.detect_intent_response_id, b.detect_intent_response_id);
    }

    #[test]
    fn json_values_stay_json_and_the_rest_are_strings() {
        let p = params(&[
            "limit=3",
            "booking_time={\"hours\":10}",
            "city=Pune",
            "note=a=b",
        ]);
        assert_eq!(p[0], ("limit".into(), json!(3)));
        assert_eq!(p[1].1, json!({"hours": 10}));
        assert_eq!(p[2].1, json!("Pune"));
        assert_eq!(p[3], ("note".into(), json!("a=b")));
        assert!(parse_param("novalue").is_err());
        assert!(parse_param("=x").is_err());
    }

    #[test]
    fn flags_override_the_file_and_an_untouched_file_is_sent_verbatim() {
        let path = Path::new("f.json");
        let file =
            br#"{"fulfillmentInfo":{"tag":"old"},"sessionInfo":{"parameters":{"a":1,"b":2}}}"#;
        let file_base = || Base::File(path, file.to_vec());
        assert_eq!(
            request_body(file_base(), &Edits::default()).unwrap(),
            file.to_vec()
        );
        let b3 = params(&["b=3"]);
        let edits = Edits {
            tag: Some("new"),
            params: &b3,
            ..Edits::default()
        };
        let body = request_body(file_base(), &edits).unwrap();
        let v: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(v["fulfillmentInfo"]["tag"], "new");
        assert_eq!(v["sessionInfo"]["parameters"], json!({"a": 1, "b": 3}));
        let tag_only = Edits {
            tag: Some("t"),
            ..Edits::default()
        };
        assert!(matches!(
            request_body(Base::File(path, b"[1]".to_vec()), &tag_only),
            Err(SendError::FixtureNotObject { .. })
        ));
        let a1 = params(&["a=1"]);
        let params_only = Edits {
            params: &a1,
            ..Edits::default()
        };
        assert!(matches!(
            request_body(Base::Built, &params_only),
            Err(SendError::NothingToSend)
        ));
    }

    #[test]
    fn a_literal_token_is_never_shown() {
        let token = parse_token("eyJhbGciOiJSUzI1NiJ9.e30.c2ln").unwrap();
        assert!(matches!(token, TokenSource::Literal(_)));
        assert!(!format!("{token:?}").contains("eyJ"), "{token:?}");
        assert!(matches!(parse_token("none"), Ok(TokenSource::None)));
        assert!(matches!(parse_token("adc"), Ok(TokenSource::Adc)));
        let err = parse_token("bad\ntoken").err().unwrap();
        assert!(!err.contains("bad"), "{err}");
    }

    #[test]
    fn the_end_users_token_goes_in_the_payload_field_beside_what_is_there() {
        let token = Secret::new("eyJ.user.token");
        let edits = Edits {
            user_token: Some(("firebaseToken", &token)),
            ..Edits::default()
        };
        let file = br#"{"fulfillmentInfo":{"tag":"account.balance"},"payload":{"telephony":{"caller_id":"+1"}}}"#;
        let body = request_body(Base::File(Path::new("f.json"), file.to_vec()), &edits).unwrap();
        let v: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(
            v["payload"],
            json!({"telephony": {"caller_id": "+1"}, "firebaseToken": "eyJ.user.token"})
        );
        assert!(!format!("{edits:?}").contains("eyJ"), "{edits:?}");
        assert!(parse_subject("demo-user-1").is_ok());
        for bad in ["", "a\nb", &"x".repeat(256)] {
            assert!(parse_subject(bad).is_err(), "{bad:?}");
        }
        assert_eq!(parse_field(" userIdToken ").unwrap(), "userIdToken");
        assert!(parse_field("user token").is_err());
    }

    #[test]
    fn an_intent_is_sent_with_an_empty_tag_so_that_it_routes() {
        let path = Path::new("f.json");
        let edits = Edits {
            intent: Some("dealer.find"),
            ..Edits::default()
        };
        let file = br#"{"fulfillmentInfo":{"tag":"x"},"intentInfo":{"displayName":"old","lastMatchedIntent":"projects/p/intents/1"}}"#;
        for base in [Base::Built, Base::File(path, file.to_vec())] {
            let request = WebhookRequest::from_slice(&request_body(base, &edits).unwrap()).unwrap();
            assert_eq!(request.fulfillment_info.tag, "");
            assert_eq!(request.intent_display_name(), Some("dealer.find"));
        }
    }

    #[test]
    fn form_parameters_carry_the_session_value_and_a_state() {
        let values = params(&["booking_date={\"year\":2020,\"month\":1,\"day\":15}"]);
        let form = vec![
            parse_form("booking_date").unwrap(),
            parse_form("booking_time").unwrap(),
            parse_form("dealer_id=invalid").unwrap(),
        ];
        let edits = Edits {
            tag: Some("booking.validate"),
            params: &values,
            form: &form,
            ..Edits::default()
        };
        let request =
            WebhookRequest::from_slice(&request_body(Base::Built, &edits).unwrap()).unwrap();
        let infos = request.form_parameters();
        let states: Vec<_> = infos
            .iter()
            .map(|i| (i.display_name.as_str(), i.state.as_str()))
            .collect();
        assert_eq!(
            states,
            [
                ("booking_date", "FILLED"),
                ("booking_time", "EMPTY"),
                ("dealer_id", "INVALID")
            ]
        );
        assert_eq!(
            infos[0].value,
            Some(json!({"year": 2020, "month": 1, "day": 15}))
        );
        assert!(parse_form("x=HALF").is_err());
        assert!(parse_form("=FILLED").is_err());
    }

    #[test]
    fn every_fixture_is_an_example_and_every_example_a_request() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
        let mut files: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter_map(|n| n.strip_suffix(".json").map(str::to_owned))
            .collect();
        files.sort();
        let mut names: Vec<String> = EXAMPLES.iter().map(|e| e.name.to_owned()).collect();
        names.sort();
        assert_eq!(files, names);
        for e in EXAMPLES {
            let body = request_body(
                Base::Example(e, Date::constant(2030, 1, 1)),
                &Edits::default(),
            )
            .unwrap();
            WebhookRequest::from_slice(&body).unwrap_or_else(|err| panic!("{}: {err:?}", e.name));
        }
        assert!(list_examples().lines().count() == EXAMPLES.len());
    }

    #[test]
    fn the_booking_example_is_dated_on_an_open_day_ahead() {
        // 2030-01-01 is a Tuesday: three days on is a Friday. 2030-01-03 (Thursday) + 3 is a Sunday,
        // so the Monday after.
        assert_eq!(
            booking_day(Date::constant(2030, 1, 1)),
            Date::constant(2030, 1, 4)
        );
        assert_eq!(
            booking_day(Date::constant(2030, 1, 3)),
            Date::constant(2030, 1, 7)
        );
        let body = request_body(
            Base::Example(
                example("booking-create").unwrap(),
                Date::constant(2030, 1, 3),
            ),
            &Edits::default(),
        )
        .unwrap();
        let v: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(
            v["sessionInfo"]["parameters"]["booking_date"],
            json!({"year": 2030, "month": 1, "day": 7})
        );
        assert!(
            v["detectIntentResponseId"]
                .as_str()
                .unwrap()
                .starts_with("send-")
        );
    }
}
