//! End-user identity settings (`ACCOUNT_ACCESS`, `SESSION_SIGNING_KEY`): who may read account data.
//!
//! `ACCOUNT_ACCESS=verified` (the default) answers account questions only for an end user who has
//! proven they own the account: a signed end-user ID token (web and app channels) or a session grant
//! earned with the account's PIN (voice). `open` answers for any account number the user names, as
//! a demo does; it must be chosen explicitly, is logged at WARNING at start, and is refused on Cloud
//! Run (`K_SERVICE` set) unless `ACCOUNT_ACCESS_OPEN_ON_CLOUD_RUN=true`, the way `AUTH_MODE=none` is.

use std::fmt;

use clap::{Args, ValueEnum};

use super::secret::{Secret, parse_secret};

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
    #[arg(long, env, value_name = "KEY", hide_env_values = true, value_parser = parse_secret)]
    pub session_signing_key: Option<Secret>,
}

/// The validated identity settings.
#[derive(Debug, Clone, Default)]
pub struct IdentityConfig {
    /// Who may read account data.
    pub access: AccountAccess,
    /// The key that MACs session grants (the PIN path is off without it).
    pub session_key: Option<Secret>,
}

impl IdentityArgs {
    /// Checks the settings; `on_cloud_run` is whether `K_SERVICE` is set.
    pub fn validate(&self, on_cloud_run: bool, problems: &mut Vec<String>) -> IdentityConfig {
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
        open.validate(true, &mut problems);
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
            allowed.validate(true, &mut problems).access,
            AccountAccess::Open
        );
        assert!(problems.is_empty(), "{problems:?}");
    }

    #[test]
    fn short_session_keys_are_refused() {
        let mut problems = Vec::new();
        parse(&["--session-signing-key", "short"])
            .identity
            .validate(false, &mut problems);
        assert!(problems[0].starts_with("SESSION_SIGNING_KEY: too short"));
    }
}
