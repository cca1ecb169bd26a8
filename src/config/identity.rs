//! End-user identity settings (`ACCOUNT_ACCESS`, `SESSION_SIGNING_KEY`): who may read account data.
//!
//! `ACCOUNT_ACCESS=verified` (the default) answers account questions only for an end user who has
//! proven they own the account: a signed end-user ID token (web and app channels) or a session grant
//! earned with the account's PIN (voice). `open` answers for any account number the user names, as
//! a demo does; it must be chosen explicitly, is logged at WARNING at start, and is refused on Cloud
//! Run (`K_SERVICE` set) unless `ACCOUNT_ACCESS_OPEN_ON_CLOUD_RUN=true`, the way `AUTH_MODE=none` is.

use std::fmt;

use std::time::Duration;

use clap::{Args, ValueEnum};

use super::auth::list;
use super::secret::{Secret, parse_secret};
use super::url::{Schemes, parse_url};
use crate::auth::end_user::{DEFAULT_TOKEN_FIELD, EndUserSettings};

/// The shortest accepted `SESSION_SIGNING_KEY` (bytes): 256 bits for HMAC-SHA256.
pub const MIN_SESSION_KEY_BYTES: usize = 32;

/// Who may read account data (`ACCOUNT_ACCESS`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Default)]
pub enum AccountAccess {
    /// Only an end user who proved they own the account (signed ID token or PIN grant).
    #[default]
    Verified,
    /// Anyone who names an account number (demos only).
    Open,
}

impl fmt::Display for AccountAccess {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            AccountAccess::Verified => "verified",
            AccountAccess::Open => "open",
        })
    }
}

/// End-user identity settings, as given.
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "End-user identity")]
pub struct IdentityArgs {
    /// Who may read account data: `verified` (the owner, proven by a signed ID token or a PIN)
    /// or `open` (anyone naming an account number; demos only, refused on Cloud Run).
    #[arg(long, env, value_name = "MODE", value_enum, default_value_t = AccountAccess::Verified)]
    pub account_access: AccountAccess,

    /// Allow `ACCOUNT_ACCESS=open` on Cloud Run anyway (a public demo with fake data).
    #[arg(
        long,
        env,
        value_name = "BOOL",
        hide_short_help = true,
        default_value_t = false
    )]
    pub account_access_open_on_cloud_run: bool,

    /// Key for session grants (the voice PIN path) and log pseudonyms: at least 32 bytes, from
    /// Secret Manager on Cloud Run. Without it the PIN path is off.
    #[arg(
        long,
        env,
        value_name = "KEY",
        hide_env_values = true,
        hide_short_help = true,
        value_parser = parse_secret
    )]
    pub session_signing_key: Option<Secret>,
}

/// The end user's signed ID token (web and app channels). Unset END_USER_ISSUER turns the end-user
/// verifier off.
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "End-user identity")]
pub struct EndUserArgs {
    /// The exact `iss` of end users' ID tokens, e.g. `https://securetoken.google.com/<project>` for
    /// Firebase Authentication / Identity Platform, or an OIDC provider's issuer URL.
    #[arg(long, env, value_name = "URL", hide_short_help = true)]
    pub end_user_issuer: Option<String>,

    /// Accepted `aud` values of end users' ID tokens, comma separated (for Firebase: the project
    /// id; for Google Sign-In: the OAuth client id). Required with END_USER_ISSUER.
    #[arg(
        long,
        env,
        value_name = "AUD,...",
        value_delimiter = ',',
        hide_short_help = true
    )]
    pub end_user_audiences: Vec<String>,

    /// The issuer's key set (JWKS). Default: Google's securetoken keys for
    /// `https://securetoken.google.com/` issuers, else the `jwks_uri` of the issuer's
    /// /.well-known/openid-configuration.
    #[arg(long, env, value_name = "URL", hide_short_help = true)]
    pub end_user_jwks_url: Option<String>,

    /// The `WebhookRequest.payload` field that carries the end user's ID token.
    #[arg(long, env, value_name = "FIELD", hide_short_help = true, default_value = DEFAULT_TOKEN_FIELD)]
    pub end_user_token_field: String,
}

/// The validated identity settings.
#[derive(Debug, Clone, Default)]
pub struct IdentityConfig {
    /// Who may read account data.
    pub access: AccountAccess,
    /// The key that MACs session grants (the PIN path is off without it).
    pub session_key: Option<Secret>,
    /// The end-user ID-token verifier's settings, when END_USER_ISSUER is set.
    pub end_user: Option<EndUserSettings>,
}

impl EndUserArgs {
    /// Validates the end-user settings: `None` when END_USER_ISSUER is unset. Leeway and token
    /// cache size are the service agent's (`AUTH_LEEWAY_SECS`, `AUTH_TOKEN_CACHE_SIZE`).
    pub fn validate(
        &self,
        leeway: Duration,
        token_cache_size: u64,
        problems: &mut Vec<String>,
    ) -> Option<EndUserSettings> {
        let audiences = list(&self.end_user_audiences);
        let jwks_url = self
            .end_user_jwks_url
            .as_deref()
            .map(str::trim)
            .filter(|u| !u.is_empty());
        let field = self.end_user_token_field.trim();
        if field.is_empty() || field.len() > 64 || !field.bytes().all(|b| b.is_ascii_graphic()) {
            problems.push(format!(
                "END_USER_TOKEN_FIELD: `{field}` is not a field name (1 to 64 visible characters)"
            ));
        }
        if let Some(url) = jwks_url
            && let Err(why) = parse_url("END_USER_JWKS_URL", url, Schemes::HttpsOrLoopback)
        {
            problems.push(why);
        }
        let issuer = self
            .end_user_issuer
            .as_deref()
            .map(str::trim)
            .filter(|i| !i.is_empty());
        let Some(issuer) = issuer else {
            if !audiences.is_empty() || jwks_url.is_some() {
                problems.push(
                    "END_USER_AUDIENCES or END_USER_JWKS_URL is set but END_USER_ISSUER is not"
                        .into(),
                );
            }
            return None;
        };
        if let Err(why) = parse_url("END_USER_ISSUER", issuer, Schemes::HttpsOrLoopback) {
            problems.push(why);
        }
        if audiences.is_empty() {
            problems.push(
                "END_USER_ISSUER needs END_USER_AUDIENCES: the `aud` of your users' tokens (for \
                 Firebase, the project id)"
                    .into(),
            );
        }
        let mut settings =
            EndUserSettings::new(issuer.to_owned(), audiences, jwks_url.map(str::to_owned));
        settings.leeway = leeway;
        settings.token_cache_size = token_cache_size;
        settings.token_field = field.to_owned();
        Some(settings)
    }
}

impl IdentityArgs {
    /// Checks the settings; `on_cloud_run` is whether `K_SERVICE` is set.
    pub fn validate(
        &self,
        on_cloud_run: bool,
        end_user: Option<EndUserSettings>,
        problems: &mut Vec<String>,
    ) -> IdentityConfig {
        if self.account_access == AccountAccess::Open
            && on_cloud_run
            && !self.account_access_open_on_cloud_run
        {
            problems.push(
                "ACCOUNT_ACCESS=open is refused on Cloud Run (K_SERVICE is set): it shows any \
                 account to anyone who names its number. Use ACCOUNT_ACCESS=verified, or set \
                 ACCOUNT_ACCESS_OPEN_ON_CLOUD_RUN=true for a demo with fake data"
                    .into(),
            );
        }
        if let Some(key) = &self.session_signing_key
            && key.expose().len() < MIN_SESSION_KEY_BYTES
        {
            problems.push(format!(
                "SESSION_SIGNING_KEY: too short ({} bytes); use at least {MIN_SESSION_KEY_BYTES} \
                 random bytes, e.g. `openssl rand -base64 48`",
                key.expose().len()
            ));
        }
        IdentityConfig {
            access: self.account_access,
            session_key: self.session_signing_key.clone(),
            end_user,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::parse;
    use super::*;

    #[test]
    fn verified_is_the_default_and_open_is_refused_on_cloud_run() {
        let args = parse(&["--auth-mode", "none"]);
        assert_eq!(args.identity.account_access, AccountAccess::Verified);
        let mut problems = Vec::new();
        let open = parse(&["--account-access", "open"]).identity;
        open.validate(true, None, &mut problems);
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert!(problems[0].contains("refused on Cloud Run"));
        let mut problems = Vec::new();
        let allowed = parse(&[
            "--account-access",
            "open",
            "--account-access-open-on-cloud-run",
        ])
        .identity;
        assert_eq!(
            allowed.validate(true, None, &mut problems).access,
            AccountAccess::Open
        );
        assert!(problems.is_empty(), "{problems:?}");
    }

    #[test]
    fn short_session_keys_are_refused() {
        let mut problems = Vec::new();
        parse(&["--session-signing-key", "short"])
            .identity
            .validate(false, None, &mut problems);
        assert!(problems[0].starts_with("SESSION_SIGNING_KEY: too short"));
    }

    fn end_user(args: &[&str]) -> Result<Option<EndUserSettings>, crate::config::ConfigErrors> {
        let mut all = vec!["--auth-mode", "none", "--auth-leeway-secs", "45"];
        all.extend_from_slice(args);
        crate::config::Config::from_args(&parse(&all)).map(|c| c.identity.end_user)
    }

    #[test]
    fn unset_issuer_means_no_end_user_verifier() {
        assert!(end_user(&[]).unwrap().is_none());
        let err = end_user(&["--end-user-audiences", "p"]).unwrap_err();
        assert!(err.0[0].contains("END_USER_ISSUER is not"), "{err}");
    }

    #[test]
    fn a_firebase_issuer_with_its_project_gets_googles_securetoken_keys() {
        let s = end_user(&[
            "--end-user-issuer",
            "https://securetoken.google.com/my-project",
            "--end-user-audiences",
            "my-project, other",
        ])
        .unwrap()
        .unwrap();
        assert_eq!(s.audiences, ["my-project", "other"]);
        assert_eq!(s.jwks.url, crate::auth::end_user::SECURETOKEN_JWKS_URL);
        assert_eq!(
            s.leeway,
            Duration::from_secs(45),
            "the service agent's leeway"
        );
        assert_eq!(s.token_field, "userIdToken");
    }

    #[test]
    fn bad_end_user_values_are_each_reported() {
        let err = end_user(&[
            "--end-user-issuer",
            "http://idp.example",
            "--end-user-jwks-url",
            "ftp://idp.example/keys",
            "--end-user-token-field",
            "user token",
        ])
        .unwrap_err();
        let text = err.to_string();
        for name in [
            "END_USER_ISSUER",
            "END_USER_JWKS_URL",
            "END_USER_TOKEN_FIELD:",
            "needs END_USER_AUDIENCES",
        ] {
            assert!(text.contains(name), "{name}: {text}");
        }
    }
}
