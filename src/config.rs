//! Typed configuration: every setting is a flag and an environment variable (one clap definition),
//! validated once at start into a [`Config`] that the rest of the service trusts.
//!
//! Validation collects *every* problem and reports one line each, so a misconfigured deployment is
//! fixed in one round. Secrets never appear in `Debug` output (see [`Secret`]).

use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, ValueEnum};
use reqwest::Url;

pub mod booking_store;
use booking_store::{BookingStoreArgs, BookingStoreConfig};

use crate::clients::weather::{DEFAULT_FORECAST_URL, DEFAULT_GEOCODING_URL};
use http::HeaderName;

/// Google's JSON Web Key Set for the keys that sign Google ID tokens.
pub const GOOGLE_JWKS_URL: &str = "https://www.googleapis.com/oauth2/v3/certs";

/// The largest accepted `AUTH_LEEWAY_SECS`: Node's Google library uses 300 s, more is a smell.
pub const MAX_LEEWAY_SECS: u64 = 300;

/// The largest accepted `AUTH_TOKEN_CACHE_SIZE`.
pub const MAX_TOKEN_CACHE_SIZE: u64 = 1_000_000;

/// The shortest accepted `AUTH_API_KEY`.
pub const MIN_API_KEY_CHARS: usize = 16;

/// How webhook callers are authenticated (`AUTH_MODE`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum AuthMode {
    /// Public ingress: verify the Google-signed ID token Dialogflow sends (signature with Google's
    /// keys, issuer, audience, lifetime) and pin the caller's email.
    GoogleOidc,
    /// Behind Cloud Run IAM (`--no-allow-unauthenticated`): Cloud Run verified the token and
    /// stripped its signature; check its claims and pin the caller's email.
    CloudRunIam,
    /// Dialogflow's custom-header authentication: a shared key in a header (not Authorization).
    ApiKey,
    /// No authentication. Local testing only: refused on Cloud Run (`K_SERVICE` set).
    None,
}

impl fmt::Display for AuthMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            AuthMode::GoogleOidc => "google-oidc",
            AuthMode::CloudRunIam => "cloud-run-iam",
            AuthMode::ApiKey => "api-key",
            AuthMode::None => "none",
        })
    }
}

/// Where the SQLite database lives (shared by `serve` and `db`).
#[derive(Debug, Clone, Args)]
pub struct StoreArgs {
    /// The SQLite database file. `serve` creates and seeds it when it does not exist.
    #[arg(
        long,
        env = "DATABASE_PATH",
        default_value = "data/cx-webhook.db",
        global = true
    )]
    pub database_path: PathBuf,

    /// Where bookings live (`BOOKING_STORE`, `BOOKING_DATABASE_URL`, ...).
    #[command(flatten)]
    pub booking: BookingStoreArgs,
}

/// Settings of `cx-webhook serve` (also accepted without the subcommand).
#[derive(Debug, Clone, Args)]
pub struct ServeArgs {
    /// The database.
    #[command(flatten)]
    pub store: StoreArgs,

    /// Address to listen on (Cloud Run needs 0.0.0.0).
    #[arg(long, env = "BIND", default_value = "0.0.0.0")]
    pub bind: IpAddr,

    /// Port to listen on (Cloud Run injects PORT).
    #[arg(long, env = "PORT", default_value_t = 8080)]
    pub port: u16,

    /// Path(s) that accept webhook calls, comma separated. Each also accepts sub-paths, so
    /// `/dialogflow` serves `/dialogflow/account` too.
    #[arg(
        long = "webhook-path",
        env = "WEBHOOK_PATHS",
        value_delimiter = ',',
        default_value = "/webhook"
    )]
    pub webhook_paths: Vec<String>,

    /// Largest accepted request body in bytes (larger ones get 413).
    #[arg(long, env = "MAX_BODY_BYTES", default_value_t = 256 * 1024)]
    pub max_body_bytes: usize,

    /// Seconds a client may take to send the request headers (HTTP/1).
    #[arg(long, env = "HEADER_READ_TIMEOUT_SECS", default_value_t = 10)]
    pub header_read_timeout_secs: u64,

    /// Seconds a client may take to send the request body (then 408).
    #[arg(long, env = "BODY_READ_TIMEOUT_SECS", default_value_t = 10)]
    pub body_read_timeout_secs: u64,

    /// Budget for answering one webhook call, in milliseconds; keep it under the webhook timeout
    /// configured in Dialogflow (5 s by default). On overrun the caller still gets a 200 answer.
    #[arg(long, env = "WEBHOOK_DEADLINE_MS", default_value_t = 4500)]
    pub deadline_ms: u64,

    /// Seconds in-flight requests get to finish after SIGTERM/SIGINT (Cloud Run allows 10).
    #[arg(long, env = "SHUTDOWN_GRACE_SECS", default_value_t = 8)]
    pub shutdown_grace_secs: u64,

    /// How callers are authenticated. Required: there is no silent default.
    #[arg(long, env = "AUTH_MODE", value_enum)]
    pub auth_mode: Option<AuthMode>,

    /// Accepted token audiences (`aud`), comma separated: the webhook URL as configured in
    /// Dialogflow, path included. Required by google-oidc; checked by cloud-run-iam when set.
    #[arg(long, env = "AUTH_AUDIENCES", value_delimiter = ',')]
    pub auth_audiences: Vec<String>,

    /// Caller emails allowed to call, comma separated (google-oidc, cloud-run-iam). Added to the
    /// service agent derived from DIALOGFLOW_PROJECT_NUMBER.
    #[arg(long, env = "AUTH_ALLOWED_EMAILS", value_delimiter = ',')]
    pub auth_allowed_emails: Vec<String>,

    /// Number of the project that owns the Dialogflow agent; allows its service agent
    /// service-<N>@gcp-sa-dialogflow.iam.gserviceaccount.com to call.
    #[arg(long, env = "DIALOGFLOW_PROJECT_NUMBER")]
    pub dialogflow_project_number: Option<String>,

    /// Where Google's token-signing keys are fetched from (a JSON Web Key Set).
    #[arg(long, env = "AUTH_JWKS_URL", default_value = GOOGLE_JWKS_URL)]
    pub auth_jwks_url: String,

    /// Clock skew tolerated when checking a token's exp, iat and nbf, in seconds (at most 300).
    #[arg(long, env = "AUTH_LEEWAY_SECS", default_value_t = 30)]
    pub auth_leeway_secs: u64,

    /// Header that carries the API key (api-key mode). Not Authorization: in Dialogflow CX a
    /// custom Authorization header replaces the service agent's ID token.
    #[arg(long, env = "AUTH_API_KEY_HEADER", default_value = "X-Api-Key")]
    pub auth_api_key_header: String,

    /// How many verified ID tokens to remember (by SHA-256) until they expire, so a token
    /// Dialogflow sends again skips the RSA verification; 0 turns the cache off.
    #[arg(long, env = "AUTH_TOKEN_CACHE_SIZE", default_value_t = 10_000)]
    pub auth_token_cache_size: u64,

    /// The API key (api-key mode), at least 16 characters. Prefer the environment variable (on
    /// Cloud Run, from Secret Manager): a flag is visible in the process list.
    #[arg(long, env = "AUTH_API_KEY", hide_env_values = true, value_parser = parse_secret)]
    pub auth_api_key: Option<Secret>,

    /// Set by Cloud Run; its presence means "deployed", where AUTH_MODE=none is refused.
    #[arg(long = "k-service", env = "K_SERVICE", hide = true)]
    pub k_service: Option<String>,

    /// Weather provider settings.
    #[command(flatten)]
    pub weather: WeatherArgs,

    /// Remote booking API settings.
    #[command(flatten)]
    pub booking_api: BookingApiArgs,
}

/// Settings of the weather provider (the `weather` tag).
#[derive(Debug, Clone, Args)]
pub struct WeatherArgs {
    /// Geocoding endpoint (Open-Meteo's, or a compatible one): place name -> coordinates.
    #[arg(long, env = "WEATHER_GEOCODING_URL", default_value = DEFAULT_GEOCODING_URL)]
    pub weather_geocoding_url: String,

    /// Forecast endpoint (Open-Meteo's, or a compatible one): coordinates -> current conditions.
    #[arg(long, env = "WEATHER_FORECAST_URL", default_value = DEFAULT_FORECAST_URL)]
    pub weather_forecast_url: String,

    /// Budget for one weather lookup (geocoding and forecast together) in milliseconds; must be
    /// below WEBHOOK_DEADLINE_MS. A call with less time left gets what it has left.
    #[arg(long, env = "WEATHER_TIMEOUT_MS", default_value_t = 2500)]
    pub weather_timeout_ms: u64,

    /// Seconds a place's conditions are reused without asking the provider again (0: always ask;
    /// concurrent calls for one place still share one lookup).
    #[arg(long, env = "WEATHER_CACHE_TTL_SECS", default_value_t = 600)]
    pub weather_cache_ttl_secs: u64,

    /// Seconds a place's last good conditions may stand in when the provider fails (at least
    /// WEATHER_CACHE_TTL_SECS).
    #[arg(long, env = "WEATHER_STALE_TTL_SECS", default_value_t = 3600)]
    pub weather_stale_ttl_secs: u64,
}

/// Settings of the remote booking API.
#[derive(Debug, Clone, Args)]
pub struct BookingApiArgs {
    /// Remote booking API (a dealer-management system) that all instances can share: bookings are
    /// POSTed there as JSON with a Google ID token (contract in README). https, or http for
    /// localhost only.
    #[arg(long, env = "BOOKING_API_URL")]
    pub booking_api_url: Option<String>,

    /// Audience of the ID token sent to BOOKING_API_URL (default: the URL's origin, which Cloud Run
    /// accepts).
    #[arg(long, env = "BOOKING_API_AUDIENCE")]
    pub booking_api_audience: Option<String>,
}

/// The validated configuration the server runs with.
#[derive(Debug, Clone)]
pub struct Config {
    /// Socket address to listen on.
    pub listen: SocketAddr,
    /// Webhook path prefixes (each starts with `/`, none ends with `/`).
    pub webhook_paths: Vec<String>,
    /// Largest accepted request body.
    pub max_body_bytes: usize,
    /// HTTP/1 header read timeout.
    pub header_read_timeout: Duration,
    /// Request body read timeout.
    pub body_read_timeout: Duration,
    /// Per-call answer budget.
    pub deadline: Duration,
    /// Grace period for in-flight requests at shutdown.
    pub shutdown_grace: Duration,
    /// Authentication settings.
    pub auth: AuthConfig,
    /// The SQLite database file.
    pub database_path: PathBuf,
    /// Weather provider settings.
    pub weather: WeatherConfig,
    /// The remote booking API, when configured.
    pub booking_api: Option<BookingApiConfig>,
    /// Where bookings live (SQLite file or PostgreSQL).
    pub booking_store: BookingStoreConfig,
}

/// Weather provider settings, validated.
#[derive(Clone)]
pub struct WeatherConfig {
    /// Geocoding endpoint.
    pub geocoding_url: Url,
    /// Forecast endpoint.
    pub forecast_url: Url,
    /// Budget for one lookup (both calls).
    pub timeout: Duration,
    /// How long a lookup is reused.
    pub cache_ttl: Duration,
    /// How long the last good conditions may stand in on failure.
    pub stale_ttl: Duration,
}

impl Default for WeatherConfig {
    /// Open-Meteo, 2.5 s per lookup, 10 min fresh, 1 h stale.
    fn default() -> Self {
        WeatherConfig {
            geocoding_url: Url::parse(DEFAULT_GEOCODING_URL)
                .expect("the built-in geocoding URL is valid"),
            forecast_url: Url::parse(DEFAULT_FORECAST_URL)
                .expect("the built-in forecast URL is valid"),
            timeout: Duration::from_millis(2500),
            cache_ttl: Duration::from_secs(600),
            stale_ttl: Duration::from_secs(3600),
        }
    }
}

impl fmt::Debug for WeatherConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Without queries: a commercial provider URL may carry an API key there.
        f.debug_struct("WeatherConfig")
            .field("geocoding_url", &without_query(&self.geocoding_url))
            .field("forecast_url", &without_query(&self.forecast_url))
            .field("timeout", &self.timeout)
            .field("cache_ttl", &self.cache_ttl)
            .field("stale_ttl", &self.stale_ttl)
            .finish()
    }
}

/// Remote booking API settings, validated.
#[derive(Debug, Clone)]
pub struct BookingApiConfig {
    /// Where bookings are POSTed.
    pub url: Url,
    /// ID token audience; `None` means the URL's origin.
    pub audience: Option<String>,
}

fn without_query(url: &Url) -> String {
    format!("{}{}", url.origin().ascii_serialization(), url.path())
}

/// Authentication settings, per mode.
#[derive(Debug, Clone)]
pub enum AuthConfig {
    /// Full verification of Google-signed ID tokens (public ingress).
    GoogleOidc(OidcConfig),
    /// Claims of ID tokens Cloud Run IAM already verified (signature stripped); a token that still
    /// carries a signature is verified fully.
    CloudRunIam(OidcConfig),
    /// A shared key in a custom header.
    ApiKey(ApiKeyConfig),
    /// No authentication (local only).
    None,
}

impl AuthConfig {
    /// The mode this configuration is for.
    pub fn mode(&self) -> AuthMode {
        match self {
            AuthConfig::GoogleOidc(_) => AuthMode::GoogleOidc,
            AuthConfig::CloudRunIam(_) => AuthMode::CloudRunIam,
            AuthConfig::ApiKey(_) => AuthMode::ApiKey,
            AuthConfig::None => AuthMode::None,
        }
    }
}

/// Settings of the two ID-token modes.
#[derive(Debug, Clone)]
pub struct OidcConfig {
    /// Accepted `aud` values. Never empty in google-oidc; empty in cloud-run-iam means "not
    /// checked" (Cloud Run checked it).
    pub audiences: Vec<String>,
    /// Accepted `email` values, lowercase, never empty.
    pub allowed_emails: Vec<String>,
    /// Clock skew tolerated on `exp`, `iat` and `nbf`.
    pub leeway: Duration,
    /// Where and how Google's keys are fetched and cached.
    pub jwks: JwksConfig,
    /// Verified tokens remembered until they expire; 0 verifies every request.
    pub token_cache_size: u64,
}

impl OidcConfig {
    /// Settings with the default leeway and key-cache policy.
    pub fn new(audiences: Vec<String>, allowed_emails: Vec<String>, jwks_url: String) -> Self {
        OidcConfig {
            audiences,
            allowed_emails,
            leeway: Duration::from_secs(30),
            jwks: JwksConfig::new(jwks_url),
            token_cache_size: 10_000,
        }
    }
}

/// The key-set cache policy. Only the URL is a setting; the rest are fixed policy that tests may
/// shorten.
#[derive(Debug, Clone)]
pub struct JwksConfig {
    /// The JSON Web Key Set URL (https, or http on loopback for tests and local tools).
    pub url: String,
    /// Shortest time a fetched key set is trusted to be current, whatever `Cache-Control` says.
    pub min_ttl: Duration,
    /// Longest time a fetched key set is trusted to be current, whatever `Cache-Control` says.
    pub max_ttl: Duration,
    /// Minimum time between two fetches caused by requests (an unknown `kid`, no keys yet), so a
    /// flood of made-up key ids cannot turn into a flood of fetches.
    pub refetch_interval: Duration,
    /// Budget of one fetch, connection included.
    pub fetch_timeout: Duration,
}

impl JwksConfig {
    /// The default policy for `url`: trust a key set 60 s to 24 h, refetch on demand at most every
    /// 10 s, give a fetch 3 s.
    pub fn new(url: String) -> Self {
        JwksConfig {
            url,
            min_ttl: Duration::from_secs(60),
            max_ttl: Duration::from_secs(24 * 3600),
            refetch_interval: Duration::from_secs(10),
            fetch_timeout: Duration::from_secs(3),
        }
    }
}

/// Settings of the api-key mode.
#[derive(Debug, Clone)]
pub struct ApiKeyConfig {
    /// The header carrying the key (never `authorization`).
    pub header: HeaderName,
    /// The expected key.
    pub key: Secret,
}

/// A secret value (API key, password): usable, but never shown by `Debug` or `Display`.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret.
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }

    /// The secret itself; call only where it is used.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret([redacted])")
    }
}

/// clap's parser for secret settings: wraps the value at once, so not even `ServeArgs`'s `Debug`
/// can show it.
fn parse_secret(value: &str) -> Result<Secret, std::convert::Infallible> {
    Ok(Secret::new(value))
}

/// Every problem found in the settings, one line each.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigErrors(pub Vec<String>);

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, line) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{line}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigErrors {}

impl Config {
    /// Defaults for tests and local embedding: loopback, port 0 (ephemeral), authentication off.
    pub fn local() -> Self {
        Config {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            webhook_paths: vec!["/webhook".into()],
            max_body_bytes: 256 * 1024,
            header_read_timeout: Duration::from_secs(10),
            body_read_timeout: Duration::from_secs(10),
            deadline: Duration::from_millis(4500),
            shutdown_grace: Duration::from_secs(8),
            auth: AuthConfig::None,
            database_path: PathBuf::from("data/cx-webhook.db"),
            weather: WeatherConfig::default(),
            booking_api: None,
            booking_store: BookingStoreConfig::Sqlite,
        }
    }

    /// Validates the command-line/environment settings.
    pub fn from_args(args: &ServeArgs) -> Result<Config, ConfigErrors> {
        let mut problems = Vec::new();

        let mut webhook_paths = Vec::new();
        for raw in &args.webhook_paths {
            let path = raw.trim().trim_end_matches('/');
            if !raw.trim().starts_with('/') {
                problems.push(format!(
                    "WEBHOOK_PATHS: `{raw}` must start with `/` (e.g. /webhook)"
                ));
            } else if path.is_empty() {
                problems.push(
                    "WEBHOOK_PATHS: `/` would swallow /health; use a path such as /webhook".into(),
                );
            } else if path == "/health" || path.starts_with("/health/") {
                problems.push(format!("WEBHOOK_PATHS: `{raw}` collides with /health"));
            } else if path.contains(['?', '#', ' ']) {
                problems.push(format!("WEBHOOK_PATHS: `{raw}` is not a plain path"));
            } else {
                webhook_paths.push(path.to_owned());
            }
        }
        if args.webhook_paths.is_empty() {
            problems.push("WEBHOOK_PATHS: at least one path is needed".into());
        }

        if !(1024..=16 * 1024 * 1024).contains(&args.max_body_bytes) {
            problems.push(format!(
                "MAX_BODY_BYTES: {} is outside 1024..=16777216",
                args.max_body_bytes
            ));
        }
        if !(100..=29_000).contains(&args.deadline_ms) {
            problems.push(format!(
                "WEBHOOK_DEADLINE_MS: {} is outside 100..=29000 (Dialogflow's webhook timeout is at most 30 s)",
                args.deadline_ms
            ));
        }
        if !(1..=300).contains(&args.header_read_timeout_secs) {
            problems.push(format!(
                "HEADER_READ_TIMEOUT_SECS: {} is outside 1..=300",
                args.header_read_timeout_secs
            ));
        }
        if !(1..=300).contains(&args.body_read_timeout_secs) {
            problems.push(format!(
                "BODY_READ_TIMEOUT_SECS: {} is outside 1..=300",
                args.body_read_timeout_secs
            ));
        }
        if args.store.database_path.as_os_str().is_empty() {
            problems.push("DATABASE_PATH: empty".into());
        }
        if args.shutdown_grace_secs > 3600 {
            problems.push(format!(
                "SHUTDOWN_GRACE_SECS: {} is more than 3600",
                args.shutdown_grace_secs
            ));
        }

        let auth = auth_config(args, &mut problems);

        let weather = weather_config(&args.weather, args.deadline_ms, &mut problems);
        let booking_api = booking_api_config(&args.booking_api, &mut problems);
        let booking_store = BookingStoreConfig::from_args(&args.store.booking, &mut problems);

        match (auth, weather, booking_store) {
            (Some(auth), Some(weather), Some(booking_store)) if problems.is_empty() => Ok(Config {
                listen: SocketAddr::new(args.bind, args.port),
                webhook_paths,
                max_body_bytes: args.max_body_bytes,
                header_read_timeout: Duration::from_secs(args.header_read_timeout_secs),
                body_read_timeout: Duration::from_secs(args.body_read_timeout_secs),
                deadline: Duration::from_millis(args.deadline_ms),
                shutdown_grace: Duration::from_secs(args.shutdown_grace_secs),
                auth,
                database_path: args.store.database_path.clone(),
                weather,
                booking_api,
                booking_store,
            }),
            _ => Err(ConfigErrors(problems)),
        }
    }
}

/// Validates the weather settings; `deadline_ms` is WEBHOOK_DEADLINE_MS.
fn weather_config(
    args: &WeatherArgs,
    deadline_ms: u64,
    problems: &mut Vec<String>,
) -> Option<WeatherConfig> {
    let geocoding_url = parse_url(
        "WEATHER_GEOCODING_URL",
        &args.weather_geocoding_url,
        problems,
    );
    let forecast_url = parse_url("WEATHER_FORECAST_URL", &args.weather_forecast_url, problems);
    let mut ok = true;
    if args.weather_timeout_ms < 100 || args.weather_timeout_ms >= deadline_ms {
        problems.push(format!(
            "WEATHER_TIMEOUT_MS: {} must be at least 100 and below WEBHOOK_DEADLINE_MS ({deadline_ms})",
            args.weather_timeout_ms
        ));
        ok = false;
    }
    if args.weather_cache_ttl_secs > 86_400 {
        problems.push(format!(
            "WEATHER_CACHE_TTL_SECS: {} is more than 86400 (a day)",
            args.weather_cache_ttl_secs
        ));
        ok = false;
    }
    if args.weather_stale_ttl_secs < args.weather_cache_ttl_secs
        || args.weather_stale_ttl_secs > 7 * 86_400
    {
        problems.push(format!(
            "WEATHER_STALE_TTL_SECS: {} must be between WEATHER_CACHE_TTL_SECS ({}) and 604800 (a week)",
            args.weather_stale_ttl_secs, args.weather_cache_ttl_secs
        ));
        ok = false;
    }
    Some(WeatherConfig {
        geocoding_url: geocoding_url?,
        forecast_url: forecast_url?,
        timeout: Duration::from_millis(args.weather_timeout_ms),
        cache_ttl: Duration::from_secs(args.weather_cache_ttl_secs),
        stale_ttl: Duration::from_secs(args.weather_stale_ttl_secs),
    })
    .filter(|_| ok)
}

/// Validates the booking API settings: `None` when BOOKING_API_URL is unset (or empty).
fn booking_api_config(
    args: &BookingApiArgs,
    problems: &mut Vec<String>,
) -> Option<BookingApiConfig> {
    let audience = non_empty(&args.booking_api_audience).map(str::to_owned);
    let Some(raw) = non_empty(&args.booking_api_url) else {
        if audience.is_some() {
            problems.push("BOOKING_API_AUDIENCE is set but BOOKING_API_URL is not".into());
        }
        return None;
    };
    let url = parse_url("BOOKING_API_URL", raw, problems)?;
    if url.scheme() == "http" && !is_loopback(url.host_str().unwrap_or_default()) {
        problems.push(
            "BOOKING_API_URL: use https (http is accepted for localhost only): requests carry an \
             ID token"
                .into(),
        );
        return None;
    }
    Some(BookingApiConfig { url, audience })
}

/// The trimmed value, or `None` when unset or blank.
fn non_empty(value: &Option<String>) -> Option<&str> {
    value.as_deref().map(str::trim).filter(|v| !v.is_empty())
}

/// Parses an http(s) URL with a host, no credentials and no fragment. Problems never echo the
/// value (it may hold a key).
fn parse_url(name: &str, raw: &str, problems: &mut Vec<String>) -> Option<Url> {
    let problem = match Url::parse(raw.trim()) {
        Err(e) => format!("{name} is not a valid URL ({e})"),
        Ok(url) if !matches!(url.scheme(), "http" | "https") => {
            format!("{name} must be an http or https URL")
        }
        Ok(url) if url.host_str().is_none_or(str::is_empty) => format!("{name} has no host"),
        Ok(url) if !url.username().is_empty() || url.password().is_some() => {
            format!("{name} must not contain a user name or password")
        }
        Ok(url) if url.fragment().is_some() => format!("{name} must not have a #fragment"),
        Ok(url) => return Some(url),
    };
    problems.push(problem);
    None
}

/// Validates the authentication settings into the chosen mode's [`AuthConfig`], adding one line
/// per problem. Values are checked whenever they are set, so a typo is reported even in a mode that
/// does not use it; what a mode *needs* is checked for that mode only.
fn auth_config(args: &ServeArgs, problems: &mut Vec<String>) -> Option<AuthConfig> {
    let audiences = list(&args.auth_audiences);
    for aud in &audiences {
        if aud.contains(char::is_whitespace) {
            problems.push(format!("AUTH_AUDIENCES: `{aud}` contains whitespace"));
        }
    }

    let mut emails = Vec::new();
    for email in list(&args.auth_allowed_emails) {
        match email.split_once('@') {
            Some((local, domain))
                if !local.is_empty()
                    && domain.contains('.')
                    && !email.contains(char::is_whitespace) =>
            {
                emails.push(email.to_ascii_lowercase())
            }
            _ => problems.push(format!(
                "AUTH_ALLOWED_EMAILS: `{email}` is not an email address"
            )),
        }
    }
    match args.dialogflow_project_number.as_deref().map(str::trim) {
        None | Some("") => {}
        Some(n) if n.len() <= 20 && n.bytes().all(|b| b.is_ascii_digit()) => emails.push(format!(
            "service-{n}@gcp-sa-dialogflow.iam.gserviceaccount.com"
        )),
        Some(n) => problems.push(format!(
            "DIALOGFLOW_PROJECT_NUMBER: `{n}` is not a project number (digits only; the project \
             id is not accepted)"
        )),
    }
    emails.sort();
    emails.dedup();

    if args.auth_leeway_secs > MAX_LEEWAY_SECS {
        problems.push(format!(
            "AUTH_LEEWAY_SECS: {} is more than {MAX_LEEWAY_SECS}",
            args.auth_leeway_secs
        ));
    }
    if args.auth_token_cache_size > MAX_TOKEN_CACHE_SIZE {
        problems.push(format!(
            "AUTH_TOKEN_CACHE_SIZE: {} is more than {MAX_TOKEN_CACHE_SIZE}",
            args.auth_token_cache_size
        ));
    }
    if let Err(why) = check_jwks_url(&args.auth_jwks_url) {
        problems.push(format!("AUTH_JWKS_URL: `{}` {why}", args.auth_jwks_url));
    }

    let header = match HeaderName::from_bytes(args.auth_api_key_header.trim().as_bytes()) {
        Ok(name) if name == http::header::AUTHORIZATION => {
            problems.push(
                "AUTH_API_KEY_HEADER: Authorization is refused: in Dialogflow CX a custom \
                 Authorization header replaces the service agent's ID token; use e.g. X-Api-Key"
                    .into(),
            );
            None
        }
        Ok(name) => Some(name),
        Err(_) => {
            problems.push(format!(
                "AUTH_API_KEY_HEADER: `{}` is not a valid header name",
                args.auth_api_key_header
            ));
            None
        }
    };
    if let Some(key) = &args.auth_api_key {
        let key = key.expose();
        if key.chars().count() < MIN_API_KEY_CHARS {
            problems.push(format!(
                "AUTH_API_KEY: shorter than {MIN_API_KEY_CHARS} characters; use a long random \
                 value (e.g. `openssl rand -base64 32`)"
            ));
        } else if !key.bytes().all(|b| b.is_ascii_graphic()) {
            problems.push(
                "AUTH_API_KEY: only visible ASCII characters (no spaces) can travel in a header"
                    .into(),
            );
        }
    }

    let oidc = |mode: AuthMode, problems: &mut Vec<String>| {
        if mode == AuthMode::GoogleOidc && audiences.is_empty() {
            problems.push(
                "AUTH_MODE=google-oidc needs AUTH_AUDIENCES: the webhook URL as configured in \
                 Dialogflow, path included"
                    .into(),
            );
        }
        if emails.is_empty() {
            problems.push(format!(
                "AUTH_MODE={mode} needs AUTH_ALLOWED_EMAILS or DIALOGFLOW_PROJECT_NUMBER: which \
                 caller to accept"
            ));
        }
        let mut config = OidcConfig::new(
            audiences.clone(),
            emails.clone(),
            args.auth_jwks_url.trim().to_owned(),
        );
        config.leeway = Duration::from_secs(args.auth_leeway_secs);
        config.token_cache_size = args.auth_token_cache_size;
        config
    };
    let on_cloud_run = args.k_service.as_deref().is_some_and(|s| !s.is_empty());
    match args.auth_mode {
        None => {
            problems.push(
                "AUTH_MODE is not set: choose one explicitly with --auth-mode or AUTH_MODE \
                 (google-oidc, cloud-run-iam, api-key, or `none` for local testing only)"
                    .into(),
            );
            None
        }
        Some(AuthMode::None) if on_cloud_run => {
            problems.push(
                "AUTH_MODE=none is refused on Cloud Run (K_SERVICE is set): the webhook would \
                 answer anyone"
                    .into(),
            );
            None
        }
        Some(AuthMode::None) => Some(AuthConfig::None),
        Some(mode @ AuthMode::GoogleOidc) => Some(AuthConfig::GoogleOidc(oidc(mode, problems))),
        Some(mode @ AuthMode::CloudRunIam) => Some(AuthConfig::CloudRunIam(oidc(mode, problems))),
        Some(AuthMode::ApiKey) => {
            if args.auth_api_key.is_none() {
                problems.push(
                    "AUTH_MODE=api-key needs AUTH_API_KEY (on Cloud Run, from Secret Manager)"
                        .into(),
                );
            }
            Some(AuthConfig::ApiKey(ApiKeyConfig {
                header: header?,
                key: args.auth_api_key.clone()?,
            }))
        }
    }
}

/// Trimmed, non-empty entries of a comma-separated setting.
fn list(values: &[String]) -> Vec<String> {
    values
        .iter()
        .map(|v| v.trim())
        .filter(|v| !v.is_empty())
        .map(str::to_owned)
        .collect()
}

/// The key set must come over https; plain http only from this machine (tests, dev tools).
fn check_jwks_url(url: &str) -> Result<(), &'static str> {
    let uri: http::Uri = url.trim().parse().map_err(|_| "is not a URL")?;
    let host = uri.host().ok_or("has no host")?;
    match uri.scheme_str() {
        Some("https") => Ok(()),
        Some("http") if is_loopback(host) => Ok(()),
        Some("http") => Err("must use https (plain http only on loopback)"),
        _ => Err("must be an https URL"),
    }
}

fn is_loopback(host: &str) -> bool {
    host.eq_ignore_ascii_case("localhost")
        || host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct T {
        #[command(flatten)]
        serve: ServeArgs,
    }

    fn parse(args: &[&str]) -> ServeArgs {
        T::try_parse_from(std::iter::once("t").chain(args.iter().copied()))
            .unwrap()
            .serve
    }

    #[test]
    fn auth_mode_must_be_explicit() {
        let mut args = parse(&[]);
        args.auth_mode = None;
        let err = Config::from_args(&args).unwrap_err();
        assert!(
            err.0.iter().any(|l| l.starts_with("AUTH_MODE is not set")),
            "{err}"
        );
    }

    #[test]
    fn none_is_refused_on_cloud_run() {
        let mut args = parse(&["--auth-mode", "none"]);
        args.k_service = Some("cx-webhook".into());
        let err = Config::from_args(&args).unwrap_err();
        assert!(err.to_string().contains("refused on Cloud Run"), "{err}");
    }

    #[test]
    fn every_problem_is_reported_once() {
        let mut args = parse(&["--auth-mode", "none", "--webhook-path", "hook,/health,/"]);
        args.deadline_ms = 40_000;
        args.max_body_bytes = 10;
        let err = Config::from_args(&args).unwrap_err();
        assert_eq!(err.0.len(), 5, "{err}");
    }

    #[test]
    fn defaults_are_cloud_run_friendly() {
        let mut args = parse(&["--auth-mode", "none"]);
        args.k_service = None;
        args.port = 8080;
        args.bind = "0.0.0.0".parse().unwrap();
        let c = Config::from_args(&args).unwrap();
        assert_eq!(c.listen, "0.0.0.0:8080".parse().unwrap());
        assert_eq!(c.deadline, Duration::from_millis(4500));
        assert_eq!(c.shutdown_grace, Duration::from_secs(8));
        assert_eq!(c.webhook_paths, vec!["/webhook".to_string()]);
    }

    fn auth_of(args: &[&str]) -> Result<AuthConfig, ConfigErrors> {
        let mut args = parse(args);
        args.k_service = None;
        Config::from_args(&args).map(|c| c.auth)
    }

    const HOOK: &str = "https://hook.example/webhook";

    #[test]
    fn google_oidc_derives_the_service_agent_from_the_project_number() {
        let auth = auth_of(&[
            "--auth-mode",
            "google-oidc",
            "--auth-audiences",
            &format!("{HOOK}, https://other.example/x"),
            "--dialogflow-project-number",
            "123456789",
            "--auth-allowed-emails",
            "Ops@Example.com",
        ])
        .unwrap();
        let AuthConfig::GoogleOidc(oidc) = auth else {
            panic!("{auth:?}")
        };
        assert_eq!(oidc.audiences, [HOOK, "https://other.example/x"]);
        assert_eq!(
            oidc.allowed_emails,
            [
                "ops@example.com",
                "service-123456789@gcp-sa-dialogflow.iam.gserviceaccount.com"
            ]
        );
        assert_eq!(oidc.leeway, Duration::from_secs(30));
        assert_eq!(oidc.jwks.url, GOOGLE_JWKS_URL);
    }

    #[test]
    fn google_oidc_names_each_missing_setting() {
        let err = auth_of(&["--auth-mode", "google-oidc"]).unwrap_err();
        assert_eq!(err.0.len(), 2, "{err}");
        assert!(err.0[0].contains("needs AUTH_AUDIENCES"), "{err}");
        assert!(
            err.0[1].contains("needs AUTH_ALLOWED_EMAILS or DIALOGFLOW_PROJECT_NUMBER"),
            "{err}"
        );
    }

    #[test]
    fn cloud_run_iam_needs_a_caller_but_not_audiences() {
        let err = auth_of(&["--auth-mode", "cloud-run-iam"]).unwrap_err();
        assert_eq!(err.0.len(), 1, "{err}");
        assert!(err.0[0].starts_with("AUTH_MODE=cloud-run-iam needs AUTH_ALLOWED_EMAILS"));
        let auth = auth_of(&[
            "--auth-mode",
            "cloud-run-iam",
            "--dialogflow-project-number",
            "42",
        ])
        .unwrap();
        assert!(matches!(auth, AuthConfig::CloudRunIam(ref o) if o.audiences.is_empty()));
    }

    #[test]
    fn bad_auth_values_are_each_reported() {
        let err = auth_of(&[
            "--auth-mode",
            "google-oidc",
            "--auth-audiences",
            HOOK,
            "--dialogflow-project-number",
            "my-project",
            "--auth-allowed-emails",
            "not-an-email",
            "--auth-leeway-secs",
            "301",
            "--auth-jwks-url",
            "http://keys.example/certs",
            "--auth-token-cache-size",
            "2000000",
        ])
        .unwrap_err();
        let text = err.to_string();
        for says in [
            "DIALOGFLOW_PROJECT_NUMBER: `my-project` is not a project number",
            "AUTH_ALLOWED_EMAILS: `not-an-email`",
            "AUTH_LEEWAY_SECS: 301 is more than 300",
            "AUTH_JWKS_URL: `http://keys.example/certs` must use https",
            "AUTH_TOKEN_CACHE_SIZE: 2000000 is more than 1000000",
            "needs AUTH_ALLOWED_EMAILS or DIALOGFLOW_PROJECT_NUMBER",
        ] {
            assert!(text.contains(says), "missing {says:?} in:\n{text}");
        }
        assert_eq!(err.0.len(), 6, "{text}");
    }

    #[test]
    fn jwks_url_may_be_plain_http_only_on_loopback() {
        for ok in [
            GOOGLE_JWKS_URL,
            "http://127.0.0.1:9000/certs",
            "http://localhost/c",
            "http://[::1]:1/c",
        ] {
            assert_eq!(check_jwks_url(ok), Ok(()), "{ok}");
        }
        for bad in ["http://10.0.0.1/c", "ftp://x/c", "certs", ""] {
            assert!(check_jwks_url(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn api_key_mode_needs_a_long_key_in_a_header_other_than_authorization() {
        let err = auth_of(&["--auth-mode", "api-key"]).unwrap_err();
        assert_eq!(
            err.0,
            ["AUTH_MODE=api-key needs AUTH_API_KEY (on Cloud Run, from Secret Manager)"]
        );
        let err = auth_of(&[
            "--auth-mode",
            "api-key",
            "--auth-api-key",
            "short",
            "--auth-api-key-header",
            "Authorization",
        ])
        .unwrap_err();
        assert_eq!(err.0.len(), 2, "{err}");
        assert!(err.0[0].starts_with("AUTH_API_KEY_HEADER: Authorization is refused"));
        assert!(err.0[1].starts_with("AUTH_API_KEY: shorter than 16"));
        let err = auth_of(&[
            "--auth-mode",
            "api-key",
            "--auth-api-key",
            "has a space in it!!",
        ])
        .unwrap_err();
        assert!(err.0[0].contains("visible ASCII"), "{err}");

        let auth = auth_of(&[
            "--auth-mode",
            "api-key",
            "--auth-api-key",
            "0123456789abcdef",
            "--auth-api-key-header",
            "X-Webhook-Key",
        ])
        .unwrap();
        let AuthConfig::ApiKey(api) = auth else {
            panic!("{auth:?}")
        };
        assert_eq!(api.header, "x-webhook-key");
        assert_eq!(api.key.expose(), "0123456789abcdef");
    }

    #[test]
    fn the_api_key_never_shows_in_debug_output() {
        let args = parse(&[
            "--auth-mode",
            "api-key",
            "--auth-api-key",
            "0123456789abcdef-secret",
        ]);
        assert!(!format!("{args:?}").contains("0123456789abcdef"));
        let config = Config::from_args(&ServeArgs {
            k_service: None,
            ..args
        })
        .unwrap();
        assert!(!format!("{config:?}").contains("0123456789abcdef"));
    }

    #[test]
    fn weather_defaults_to_open_meteo() {
        let c = Config::from_args(&parse(&["--auth-mode", "none"])).unwrap();
        assert_eq!(c.weather.geocoding_url.as_str(), DEFAULT_GEOCODING_URL);
        assert_eq!(c.weather.forecast_url.as_str(), DEFAULT_FORECAST_URL);
        assert_eq!(c.weather.timeout, Duration::from_millis(2500));
        assert_eq!(c.weather.cache_ttl, Duration::from_secs(600));
        assert_eq!(c.weather.stale_ttl, Duration::from_secs(3600));
        assert!(c.booking_api.is_none());
    }

    #[test]
    fn weather_settings_are_validated() {
        let mut args = parse(&["--auth-mode", "none"]);
        args.weather.weather_geocoding_url = "ftp://example.com/search".into();
        args.weather.weather_forecast_url = "https://user:hunter2@example.com/forecast".into();
        args.weather.weather_timeout_ms = 4500;
        args.weather.weather_cache_ttl_secs = 7200;
        args.weather.weather_stale_ttl_secs = 60;
        let err = Config::from_args(&args).unwrap_err();
        let text = err.to_string();
        assert_eq!(err.0.len(), 4, "{text}");
        assert!(text.contains("WEATHER_GEOCODING_URL must be an http or https URL"));
        assert!(text.contains("WEATHER_FORECAST_URL must not contain a user name or password"));
        assert!(!text.contains("hunter2"), "{text}");
        assert!(text.contains("WEATHER_TIMEOUT_MS: 4500 must be at least 100 and below"));
        assert!(text.contains("WEATHER_STALE_TTL_SECS: 60 must be between"));
    }

    #[test]
    fn booking_api_needs_https_except_on_localhost() {
        let with = |url: &str, audience: Option<&str>| {
            let mut args = parse(&["--auth-mode", "none"]);
            args.booking_api.booking_api_url = Some(url.into());
            args.booking_api.booking_api_audience = audience.map(str::to_owned);
            Config::from_args(&args)
        };
        let c = with("https://dms.example.com/v1/bookings", Some("https://dms")).unwrap();
        let b = c.booking_api.unwrap();
        assert_eq!(b.url.as_str(), "https://dms.example.com/v1/bookings");
        assert_eq!(b.audience.as_deref(), Some("https://dms"));
        for local in [
            "http://127.0.0.1:9000/b",
            "http://localhost/b",
            "http://[::1]:1/b",
        ] {
            assert!(with(local, None).unwrap().booking_api.is_some(), "{local}");
        }
        let err = with("http://dms.example.com/b", None).unwrap_err();
        assert!(err.to_string().contains("use https"), "{err}");
        assert!(with("not a url", None).is_err());
        assert!(with("  ", None).unwrap().booking_api.is_none());
    }

    #[test]
    fn booking_api_audience_needs_a_url() {
        let mut args = parse(&["--auth-mode", "none"]);
        args.booking_api.booking_api_url = None;
        args.booking_api.booking_api_audience = Some("https://dms".into());
        let err = Config::from_args(&args).unwrap_err();
        assert_eq!(
            err.0,
            vec!["BOOKING_API_AUDIENCE is set but BOOKING_API_URL is not".to_string()]
        );
    }

    #[test]
    fn weather_urls_are_shown_without_their_query() {
        let c = WeatherConfig {
            geocoding_url: "https://customer-api.open-meteo.com/v1/search?apikey=s3cret"
                .parse()
                .unwrap(),
            ..WeatherConfig::default()
        };
        let shown = format!("{c:?}");
        assert!(shown.contains("https://customer-api.open-meteo.com/v1/search"));
        assert!(!shown.contains("s3cret"), "{shown}");
    }

    #[test]
    fn secrets_are_redacted() {
        assert_eq!(
            format!("{:?}", Secret::new("hunter2")),
            "Secret([redacted])"
        );
    }
}
