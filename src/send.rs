//! `cx-webhook send`: post one `WebhookRequest` to a webhook the way Dialogflow CX would, and show
//! the answer. It replaces the seed guide's curl test script, and works against a local server, a
//! container, or a deployed Cloud Run service.
//!
//! Design choices:
//! - The request is a fixture file sent as is, or a minimal valid request built from `--tag` and
//!   `--param` (each with a fresh `detectIntentResponseId`, so a side effect such as a booking is not
//!   mistaken for a retry). With both, the file is the base and the flags override it.
//! - The answer's body goes to stdout, pretty-printed when it is JSON, so `| jq` works; the status
//!   line and latency go to stderr. Exit code 0 means a 2xx answer, 1 any other status, 2 that
//!   nothing could be sent (bad arguments, no credentials, no connection).
//! - `--webhook-token adc` mints a Google ID token from Application Default Credentials with
//!   google-cloud-auth (a service account key, an impersonated service account, or the metadata
//!   server), for the audience Dialogflow's service agent would use: the webhook URL as configured,
//!   path included (PROTOCOL.md §1.2). `--audience` overrides it. A token is a [`Secret`]: it is sent
//!   and never printed, in output, errors or `Debug`.
//! - Log lines (from the libraries, if any) go to stderr, so stdout stays parseable.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use clap::Args;
use google_cloud_auth::credentials::idtoken;
use serde_json::{Map, Value, json};

use crate::config::Secret;
use crate::telemetry::error_chain;

/// Dialogflow's default webhook timeout; a slower answer is flagged.
const DIALOGFLOW_DEFAULT_TIMEOUT: Duration = Duration::from_secs(5);

/// Where credentials come from, and what to do outside Google Cloud.
const ADC_HINT: &str = "Credentials are looked up in GOOGLE_APPLICATION_CREDENTIALS, then gcloud's \
    application-default file, then the metadata server (on Google Cloud only). On your machine, \
    impersonate a service account that may invoke the service: gcloud auth application-default \
    login --impersonate-service-account=SA_EMAIL";

/// Settings of `cx-webhook send`.
#[derive(Debug, Clone, Args)]
pub struct SendArgs {
    /// A WebhookRequest JSON file, e.g. tests/fixtures/account-balance.json.
    ///
    /// Without it, --tag builds a minimal request.
    pub fixture: Option<PathBuf>,

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

    /// A session parameter (repeatable); a VALUE that is JSON is sent as JSON.
    ///
    /// `limit=3` and `booking_time={"hours":10,"minutes":30}` send a number and an object;
    /// anything that is not JSON is sent as a string.
    #[arg(long = "param", value_name = "NAME=VALUE", value_parser = parse_param)]
    pub params: Vec<(String, Value)>,

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
    /// Neither a file nor a tag was given.
    #[error("nothing to send: give a FIXTURE file, or --tag TAG (with --param NAME=VALUE ...)")]
    NothingToSend,
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

/// Runs `cx-webhook send` and maps the outcome to the documented exit codes.
pub fn main(args: &SendArgs) -> ExitCode {
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
    match serde_json::from_slice::<Value>(&answer.body) {
        Ok(v) => println!(
            "{}",
            serde_json::to_string_pretty(&v).unwrap_or_else(|_| v.to_string())
        ),
        Err(_) if answer.body.is_empty() => {}
        Err(_) => println!("{}", String::from_utf8_lossy(&answer.body)),
    }
}

/// Builds the request, obtains the token, posts, and reads the whole answer.
pub async fn send(args: &SendArgs) -> Result<Answer, SendError> {
    let url = args.url.as_str();
    if !(url.starts_with("http://") || url.starts_with("https://")) {
        return Err(SendError::BadUrl(url.to_owned()));
    }
    let fixture = match &args.fixture {
        Some(path) => Some((
            path.as_path(),
            std::fs::read(path).map_err(|source| SendError::ReadFixture {
                path: path.clone(),
                source,
            })?,
        )),
        None => None,
    };
    let body = request_body(fixture, args.tag.as_deref(), &args.params)?;
    let timeout = Duration::from_secs(args.timeout_secs.max(1));
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
    let client = reqwest::Client::builder()
        .timeout(timeout)
        .user_agent(concat!("cx-webhook-send/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(http)?;
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

/// What to suggest when nothing answers at `url`: start the local server, or check the URL.
fn next_step_when_unreachable(url: &str) -> &'static str {
    let host = reqwest::Url::parse(url)
        .ok()
        .and_then(|u| u.host_str().map(str::to_owned))
        .unwrap_or_default();
    if matches!(host.as_str(), "localhost" | "127.0.0.1" | "[::1]") {
        "Start it in another terminal with `cargo run -- serve --auth-mode none --bind 127.0.0.1` \
         (or point --webhook-url / WEBHOOK_URL at a running one)."
    } else {
        "Check --webhook-url (WEBHOOK_URL): the host and port, and that the service is deployed."
    }
}

/// The bytes to post: the file untouched when no flag changes it; else the file (or a minimal
/// request) with the tag and parameters applied.
fn request_body(
    fixture: Option<(&Path, Vec<u8>)>,
    tag: Option<&str>,
    params: &[(String, Value)],
) -> Result<Vec<u8>, SendError> {
    let mut request = match fixture {
        Some((_, bytes)) if tag.is_none() && params.is_empty() => return Ok(bytes),
        Some((path, bytes)) => match serde_json::from_slice::<Value>(&bytes) {
            Ok(Value::Object(map)) => map,
            _ => {
                return Err(SendError::FixtureNotObject {
                    path: path.to_owned(),
                });
            }
        },
        None if tag.is_none() => return Err(SendError::NothingToSend),
        None => minimal_request(),
    };
    if let Some(tag) = tag {
        let mut info = take_object(&mut request, "fulfillmentInfo");
        info.insert("tag".into(), Value::from(tag));
        request.insert("fulfillmentInfo".into(), Value::Object(info));
    }
    if !params.is_empty() {
        let mut session = take_object(&mut request, "sessionInfo");
        let mut parameters = take_object(&mut session, "parameters");
        parameters.extend(params.iter().cloned());
        session.insert("parameters".into(), Value::Object(parameters));
        request.insert("sessionInfo".into(), Value::Object(session));
    }
    Ok(Value::Object(request).to_string().into_bytes())
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
        let body = request_body(
            None,
            Some("account.balance"),
            &params(&["account_id=A1001"]),
        )
        .unwrap();
        let request = WebhookRequest::from_slice(&body).unwrap();
        assert_eq!(request.fulfillment_info.tag, "account.balance");
        assert_eq!(request.session_info.parameters["account_id"], "A1001");
        assert!(request.detect_intent_response_id.starts_with("send-"));
        assert!(request.session_info.session.contains("/sessions/send-"));
    }

    #[test]
    fn every_built_request_is_a_new_call() {
        let a = WebhookRequest::from_slice(&request_body(None, Some("t"), &[]).unwrap()).unwrap();
        let b = WebhookRequest::from_slice(&request_body(None, Some("t"), &[]).unwrap()).unwrap();
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
        assert_eq!(
            request_body(Some((path, file.to_vec())), None, &[]).unwrap(),
            file.to_vec()
        );
        let body =
            request_body(Some((path, file.to_vec())), Some("new"), &params(&["b=3"])).unwrap();
        let v: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(v["fulfillmentInfo"]["tag"], "new");
        assert_eq!(v["sessionInfo"]["parameters"], json!({"a": 1, "b": 3}));
        assert!(matches!(
            request_body(Some((path, b"[1]".to_vec())), Some("t"), &[]),
            Err(SendError::FixtureNotObject { .. })
        ));
        assert!(matches!(
            request_body(None, None, &params(&["a=1"])),
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
}
