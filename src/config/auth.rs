//! Authentication settings (`AUTH_*`, `DIALOGFLOW_PROJECT_NUMBER`): the clap arguments, their
//! validation, and the validated [`AuthConfig`] of the chosen mode.
//!
//! Values are checked whenever they are set, so a typo is reported even in a mode that does not
//! use it; what a mode *needs* is checked for that mode only.

use std::fmt;
use std::time::Duration;

use clap::{Args, ValueEnum};
use http::HeaderName;

use super::secret::{Secret, parse_secret};
use super::url::{Schemes, parse_url};

/// Google's JSON Web Key Set for the keys that sign Google ID tokens (default `AUTH_JWKS_URL`).
pub const GOOGLE_JWKS_URL: &str = "https://www.googleapis.com/oauth2/v3/certs";

pub use crate::auth::settings::{ApiKeyConfig, AuthConfig, JwksConfig, OidcConfig};

/// Default `AUTH_LEEWAY_SECS` (the authenticator's own default).
pub const DEFAULT_LEEWAY_SECS: u64 = crate::auth::settings::DEFAULT_LEEWAY.as_secs();

/// The largest accepted `AUTH_LEEWAY_SECS`: Node's Google library uses 300 s, more is a smell.
pub const MAX_LEEWAY_SECS: u64 = 300;

/// Default `AUTH_TOKEN_CACHE_SIZE`.
pub use crate::auth::settings::DEFAULT_TOKEN_CACHE_SIZE;

/// The largest accepted `AUTH_TOKEN_CACHE_SIZE`.
pub const MAX_TOKEN_CACHE_SIZE: u64 = 1_000_000;

/// Default `AUTH_API_KEY_HEADER`.
pub const DEFAULT_API_KEY_HEADER: &str = "X-Api-Key";

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

/// Authentication settings, as given.
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "Authentication")]
pub struct AuthArgs {
    /// How callers are authenticated. Required: there is no silent default.
    #[arg(long, env, value_name = "MODE", value_enum)]
    pub auth_mode: Option<AuthMode>,

    /// Accepted token audiences (`aud`), comma separated: the webhook URL as configured in
    /// Dialogflow, path included.
    ///
    /// Required by google-oidc; checked by cloud-run-iam when set.
    #[arg(long, env, value_name = "URL,...", value_delimiter = ',')]
    pub auth_audiences: Vec<String>,

    /// Caller emails allowed to call, comma separated (google-oidc, cloud-run-iam).
    ///
    /// Added to the service agent derived from DIALOGFLOW_PROJECT_NUMBER.
    #[arg(long, env, value_name = "EMAIL,...", value_delimiter = ',')]
    pub auth_allowed_emails: Vec<String>,

    /// Number of the project that owns the Dialogflow agent: allows its service agent to call.
    ///
    /// The service agents are `service-<N>@gcp-sa-dialogflow.iam.gserviceaccount.com` (Dialogflow
    /// CX webhooks and Playbook tools) and `service-<N>@gcp-sa-ces.iam.gserviceaccount.com` (CX Agent
    /// Studio tools).
    #[arg(long, env, value_name = "NUMBER")]
    pub dialogflow_project_number: Option<String>,

    /// The API key (api-key mode), at least 16 characters.
    ///
    /// Prefer the environment variable (on Cloud Run, from Secret Manager): a flag is visible in
    /// the process list. Its value is never shown, in help or logs.
    #[arg(long, env, value_name = "KEY", hide_env_values = true, value_parser = parse_secret)]
    pub auth_api_key: Option<Secret>,

    /// Header that carries the API key (api-key mode).
    ///
    /// Not Authorization: in Dialogflow CX a custom Authorization header replaces the service
    /// agent's ID token.
    #[arg(long, env, value_name = "HEADER", default_value = DEFAULT_API_KEY_HEADER, hide_short_help = true)]
    pub auth_api_key_header: String,

    /// Where Google's token-signing keys are fetched from (a JSON Web Key Set).
    #[arg(long, env, value_name = "URL", default_value = GOOGLE_JWKS_URL, hide_short_help = true)]
    pub auth_jwks_url: String,

    /// Clock skew tolerated when checking a token's exp, iat and nbf, in seconds (at most 300).
    #[arg(long, env, value_name = "SECS", default_value_t = DEFAULT_LEEWAY_SECS, hide_short_help = true)]
    pub auth_leeway_secs: u64,

    /// How many verified ID tokens to remember (by SHA-256) until they expire.
    ///
    /// A token Dialogflow sends again then skips the RSA verification; 0 turns the cache off.
    #[arg(long, env, value_name = "N", default_value_t = DEFAULT_TOKEN_CACHE_SIZE, hide_short_help = true)]
    pub auth_token_cache_size: u64,

    /// Set by Cloud Run; its presence means "deployed", where AUTH_MODE=none is refused.
    #[arg(long, env, hide = true)]
    pub k_service: Option<String>,
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

impl AuthArgs {
    /// Validates the authentication settings into the chosen mode's [`AuthConfig`], adding one
    /// line per problem to `problems` (in the order the settings are listed above).
    pub(crate) fn validate(&self, problems: &mut Vec<String>) -> Option<AuthConfig> {
        let audiences = self.audiences(problems);
        let emails = self.allowed_emails(problems);
        self.check_oidc_limits(problems);
        let header = self.api_key_header(problems);
        self.check_api_key(problems);

        let on_cloud_run = self.k_service.as_deref().is_some_and(|s| !s.is_empty());
        match self.auth_mode {
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
            Some(mode @ AuthMode::GoogleOidc) => Some(AuthConfig::GoogleOidc(
                self.oidc(mode, audiences, emails, problems),
            )),
            Some(mode @ AuthMode::CloudRunIam) => Some(AuthConfig::CloudRunIam(
                self.oidc(mode, audiences, emails, problems),
            )),
            Some(AuthMode::ApiKey) => {
                if self.auth_api_key.is_none() {
                    problems.push(
                        "AUTH_MODE=api-key needs AUTH_API_KEY (on Cloud Run, from Secret Manager)"
                            .into(),
                    );
                }
                Some(AuthConfig::ApiKey(ApiKeyConfig::new(
                    header?,
                    self.auth_api_key.as_ref()?.expose(),
                )))
            }
        }
    }

    /// `AUTH_AUDIENCES`: trimmed, non-empty, without whitespace inside.
    fn audiences(&self, problems: &mut Vec<String>) -> Vec<String> {
        let audiences = list(&self.auth_audiences);
        for aud in &audiences {
            if aud.contains(char::is_whitespace) {
                problems.push(format!("AUTH_AUDIENCES: `{aud}` contains whitespace"));
            }
        }
        audiences
    }

    /// `AUTH_ALLOWED_EMAILS` (lowercased) and the service agent of `DIALOGFLOW_PROJECT_NUMBER`,
    /// sorted, without duplicates.
    fn allowed_emails(&self, problems: &mut Vec<String>) -> Vec<String> {
        let mut emails = Vec::new();
        for email in list(&self.auth_allowed_emails) {
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
        match self.dialogflow_project_number.as_deref().map(str::trim) {
            None | Some("") => {}
            Some(n) if n.len() <= 20 && n.bytes().all(|b| b.is_ascii_digit()) => emails.extend([
                format!("service-{n}@gcp-sa-dialogflow.iam.gserviceaccount.com"),
                format!("service-{n}@gcp-sa-ces.iam.gserviceaccount.com"),
            ]),
            Some(n) => problems.push(format!(
                "DIALOGFLOW_PROJECT_NUMBER: `{n}` is not a project number (digits only; the \
                 project id is not accepted)"
            )),
        }
        emails.sort();
        emails.dedup();
        emails
    }

    /// `AUTH_LEEWAY_SECS`, `AUTH_TOKEN_CACHE_SIZE` and `AUTH_JWKS_URL`.
    fn check_oidc_limits(&self, problems: &mut Vec<String>) {
        if self.auth_leeway_secs > MAX_LEEWAY_SECS {
            problems.push(format!(
                "AUTH_LEEWAY_SECS: {} is more than {MAX_LEEWAY_SECS}",
                self.auth_leeway_secs
            ));
        }
        if self.auth_token_cache_size > MAX_TOKEN_CACHE_SIZE {
            problems.push(format!(
                "AUTH_TOKEN_CACHE_SIZE: {} is more than {MAX_TOKEN_CACHE_SIZE}",
                self.auth_token_cache_size
            ));
        }
        // The keys vouch for every token: https, except to this machine (tests, dev tools).
        if let Err(problem) = parse_url(
            "AUTH_JWKS_URL",
            &self.auth_jwks_url,
            Schemes::HttpsOrLoopback,
        ) {
            problems.push(problem);
        }
    }

    /// `AUTH_API_KEY_HEADER`: a valid header name other than Authorization.
    fn api_key_header(&self, problems: &mut Vec<String>) -> Option<HeaderName> {
        match HeaderName::from_bytes(self.auth_api_key_header.trim().as_bytes()) {
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
                    self.auth_api_key_header
                ));
                None
            }
        }
    }

    /// `AUTH_API_KEY`, when set: long enough, and able to travel in a header. Never echoed.
    fn check_api_key(&self, problems: &mut Vec<String>) {
        let Some(key) = &self.auth_api_key else {
            return;
        };
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

    /// The settings of an ID-token `mode`, naming what that mode needs and lacks.
    fn oidc(
        &self,
        mode: AuthMode,
        audiences: Vec<String>,
        emails: Vec<String>,
        problems: &mut Vec<String>,
    ) -> OidcConfig {
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
        OidcConfig {
            leeway: Duration::from_secs(self.auth_leeway_secs),
            token_cache_size: self.auth_token_cache_size,
            ..OidcConfig::new(audiences, emails, self.auth_jwks_url.trim().to_owned())
        }
    }
}

/// Trimmed, non-empty entries of a comma-separated setting.
pub(super) fn list(values: &[String]) -> Vec<String> {
    values
        .iter()
        .map(|v| v.trim())
        .filter(|v| !v.is_empty())
        .map(str::to_owned)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::tests::parse;
    use crate::config::{Config, ConfigErrors};

    fn auth_of(args: &[&str]) -> Result<AuthConfig, ConfigErrors> {
        let mut args = parse(args);
        args.auth.k_service = None;
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
                "service-123456789@gcp-sa-ces.iam.gserviceaccount.com",
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
            "AUTH_JWKS_URL must use https",
            "AUTH_TOKEN_CACHE_SIZE: 2000000 is more than 1000000",
            "needs AUTH_ALLOWED_EMAILS or DIALOGFLOW_PROJECT_NUMBER",
        ] {
            assert!(text.contains(says), "missing {says:?} in:\n{text}");
        }
        assert_eq!(err.0.len(), 6, "{text}");
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
        let expected = ApiKeyConfig::new(api.header.clone(), "0123456789abcdef");
        assert_eq!(api.key_digest(), expected.key_digest());
    }
}
