//! The claim checks of ID tokens, in one place for both ID-token modes and the end-user verifier.
//!
//! In google-oidc the claims come out of a token whose signature jsonwebtoken has just verified; in
//! cloud-run-iam they come out of a token whose signature Cloud Run verified and then stripped, so
//! no JWT library can check them. Keeping every claim check here (and configuring jsonwebtoken to
//! verify the signature only) means the modes cannot drift apart, and every failure gets its own
//! [`AuthFailure`].
//!
//! What [`Policy::check`] checks for a service-agent token, in order (times with the configured
//! leeway on the clock, [`check_lifetime`], shared with [`super::end_user`]):
//! - `iss` is `https://accounts.google.com` or `accounts.google.com` (401);
//! - `exp` is present and not passed, `iat` is present and not in the future, `nbf` (when present)
//!   is not in the future (401). A token is not required to be fresh: callers cache ID tokens for
//!   up to their hour of life;
//! - `aud` is present and one of the configured audiences, when audiences are configured (403);
//! - `email` is present (else 401 `missing_claim`: a token that names no caller is incomplete, not
//!   a caller we refuse), one of the allowed callers (403), and `email_verified` is true (403).
//!
//! Deliberate choices about claim shapes (each pinned by a test):
//! - **Times** (`exp`, `iat`, `nbf`) must be whole JSON integers in `0..=9999-12-31`. RFC 7519
//!   allows fractions, but no issuer we accept writes them, and `exp: 1e300` must not saturate into
//!   "valid forever": anything else is 401 `invalid_claim` naming the claim.
//! - **`email_verified`** is verified when it is JSON `true` or exactly the string `"true"` (Google
//!   has sent it as a string); every other value, type or absence is 403 `email_not_verified`.
//!
//! From the audience check on, the token is known to be a valid Google token and only the caller is
//! wrong, hence 403; the caller's email travels with every error so the refusal log can name it.

use serde::Deserialize;

use super::{AuthError, AuthFailure};

/// The issuers of Google ID tokens (both spellings occur).
const GOOGLE_ISSUERS: [&str; 2] = ["https://accounts.google.com", "accounts.google.com"];

/// The latest NumericDate accepted: 9999-12-31T23:59:59Z. Anything later is no real token's time.
pub const MAX_NUMERIC_DATE: i64 = 253_402_300_799;

/// The claims of an ID token that the checks read; everything else is ignored.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct Claims {
    /// Issuer.
    pub iss: Option<String>,
    /// Audience: one string, or a list of which one must match.
    pub aud: Option<Audience>,
    /// Expiry (seconds since the epoch).
    pub exp: Option<NumericDate>,
    /// Issue time (seconds since the epoch).
    pub iat: Option<NumericDate>,
    /// Not-before time (seconds since the epoch).
    pub nbf: Option<NumericDate>,
    /// Subject: the user's stable id at the issuer (read by the end-user verifier).
    pub sub: Option<String>,
    /// The caller's email (a service account for Dialogflow).
    pub email: Option<String>,
    /// Whether the issuer vouches for `email`: only `true` or `"true"` count (see the module docs).
    pub email_verified: Option<serde_json::Value>,
}

/// The `aud` claim: RFC 7519 allows a string or an array of strings.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum Audience {
    /// A single audience (what Google issues).
    One(String),
    /// Several audiences.
    Many(Vec<String>),
}

impl Audience {
    fn any(&self, allowed: &[String]) -> bool {
        match self {
            Audience::One(aud) => allowed.contains(aud),
            Audience::Many(auds) => auds.iter().any(|aud| allowed.contains(aud)),
        }
    }
}

/// A JWT NumericDate as it came on the wire: any JSON number. Only a whole number of seconds in
/// `0..=MAX_NUMERIC_DATE` is accepted ([`NumericDate::secs`]); `1e300`, `1.5e9` or `-1` are refused
/// as invalid claims rather than saturated or rounded into something that passes.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(transparent)]
pub struct NumericDate(pub serde_json::Number);

impl NumericDate {
    /// A date `secs` seconds after the epoch.
    pub fn from_secs(secs: i64) -> Self {
        NumericDate(secs.into())
    }

    /// Whole seconds since the epoch, or [`AuthFailure::InvalidClaim`] naming `claim`.
    pub fn secs(&self, claim: &'static str) -> Result<i64, AuthFailure> {
        self.0
            .as_i64()
            .filter(|secs| (0..=MAX_NUMERIC_DATE).contains(secs))
            .ok_or(AuthFailure::InvalidClaim(claim))
    }
}

/// The time checks every token gets, with `leeway` seconds of clock skew both ways: `exp` present
/// and not passed, `iat` present and not in the future, `nbf` (when present) not in the future.
/// Returns `exp`.
pub fn check_lifetime(claims: &Claims, now: i64, leeway: i64) -> Result<i64, AuthFailure> {
    let date = |date: &Option<NumericDate>, claim| {
        date.as_ref()
            .ok_or(AuthFailure::MissingClaim(claim))?
            .secs(claim)
    };
    let latest = now.saturating_add(leeway);
    let exp = date(&claims.exp, "exp")?;
    if !unexpired(exp, now, leeway) {
        return Err(AuthFailure::Expired);
    }
    if date(&claims.iat, "iat")? > latest {
        return Err(AuthFailure::IssuedInFuture);
    }
    if claims.nbf.is_some() && date(&claims.nbf, "nbf")? > latest {
        return Err(AuthFailure::NotYetValid);
    }
    Ok(exp)
}

/// Whether a token expiring at `exp` is still unexpired at `now`, with `leeway`.
pub fn unexpired(exp: i64, now: i64, leeway: i64) -> bool {
    now < exp.saturating_add(leeway)
}

/// `aud` is present and one of `allowed`.
pub fn check_audience(claims: &Claims, allowed: &[String]) -> Result<(), AuthFailure> {
    let aud = claims
        .aud
        .as_ref()
        .ok_or(AuthFailure::MissingClaim("aud"))?;
    if aud.any(allowed) {
        Ok(())
    } else {
        Err(AuthFailure::AudienceNotAllowed)
    }
}

/// Who may call and how much clock skew to allow.
#[derive(Debug, Clone)]
pub struct Policy {
    /// Accepted audiences; empty means `aud` is not checked (cloud-run-iam without AUTH_AUDIENCES).
    pub audiences: Vec<String>,
    /// Accepted emails, lowercase.
    pub allowed_emails: Vec<String>,
    /// Tolerated clock skew in seconds.
    pub leeway: i64,
}

/// What a token that passed [`Policy::check`] established.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgentClaims {
    /// The caller's email, as the token spells it.
    pub email: String,
    /// The token's expiry (seconds since the epoch).
    pub exp: i64,
}

impl Policy {
    /// Checks `claims` at time `now` (seconds since the epoch). On success returns the caller's
    /// email and the token's expiry; every error carries the email too, when the token has one.
    pub fn check(&self, claims: &Claims, now: i64) -> Result<AgentClaims, AuthError> {
        self.check_inner(claims, now)
            .map_err(|e| AuthError::from(e).with_email(claims.email.clone()))
    }

    fn check_inner(&self, claims: &Claims, now: i64) -> Result<AgentClaims, AuthFailure> {
        let iss = claims
            .iss
            .as_deref()
            .ok_or(AuthFailure::MissingClaim("iss"))?;
        if !GOOGLE_ISSUERS.contains(&iss) {
            return Err(AuthFailure::InvalidIssuer);
        }
        let exp = check_lifetime(claims, now, self.leeway)?;
        if !self.audiences.is_empty() {
            check_audience(claims, &self.audiences)?;
        }
        let email = claims
            .email
            .as_deref()
            .ok_or(AuthFailure::MissingClaim("email"))?;
        if !self.allowed_emails.contains(&email.to_ascii_lowercase()) {
            return Err(AuthFailure::EmailNotAllowed);
        }
        if !email_verified(claims.email_verified.as_ref()) {
            return Err(AuthFailure::EmailNotVerified);
        }
        Ok(AgentClaims {
            email: email.to_owned(),
            exp,
        })
    }
}

/// `email_verified` is JSON `true` or exactly the string `"true"`; anything else (absent, `false`,
/// `"false"`, `"TRUE"`, `1`, `null`) is not verified.
fn email_verified(value: Option<&serde_json::Value>) -> bool {
    match value {
        Some(serde_json::Value::Bool(verified)) => *verified,
        Some(serde_json::Value::String(text)) => text == "true",
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_800_000_000;
    const AGENT: &str = "service-123@gcp-sa-dialogflow.iam.gserviceaccount.com";

    fn policy() -> Policy {
        Policy {
            audiences: vec!["https://hook.example/webhook".into()],
            allowed_emails: vec![AGENT.into()],
            leeway: 30,
        }
    }

    fn claims(value: serde_json::Value) -> Claims {
        serde_json::from_value(value).unwrap()
    }

    fn good() -> Claims {
        claims(serde_json::json!({
            "iss": "https://accounts.google.com",
            "aud": "https://hook.example/webhook",
            "exp": NOW + 3000,
            "iat": NOW - 600,
            "email": AGENT,
            "email_verified": true,
            "sub": "1234567890",
        }))
    }

    fn failure(claims: &Claims) -> AuthFailure {
        policy().check(claims, NOW).unwrap_err().failure
    }

    #[test]
    fn good_claims_pass_and_name_the_caller() {
        assert_eq!(
            policy().check(&good(), NOW).unwrap(),
            AgentClaims {
                email: AGENT.into(),
                exp: NOW + 3000
            }
        );
        let mut c = good();
        c.iss = Some("accounts.google.com".into());
        c.email_verified = Some("true".into());
        c.aud = Some(Audience::Many(vec![
            "other".into(),
            "https://hook.example/webhook".into(),
        ]));
        c.email = Some(AGENT.to_uppercase());
        assert!(policy().check(&c, NOW).is_ok());
    }

    #[test]
    fn leeway_applies_both_ways_on_the_clock() {
        let mut c = good();
        c.exp = Some(NumericDate::from_secs(NOW - 29));
        c.iat = Some(NumericDate::from_secs(NOW + 29));
        c.nbf = Some(NumericDate::from_secs(NOW + 29));
        assert!(policy().check(&c, NOW).is_ok());
        c.exp = Some(NumericDate::from_secs(NOW - 30));
        assert_eq!(failure(&c), AuthFailure::Expired);
    }

    #[test]
    fn each_failed_check_has_its_own_reason() {
        type Case = (fn(&mut Claims), AuthFailure);
        let cases: Vec<Case> = vec![
            (|c| c.iss = None, AuthFailure::MissingClaim("iss")),
            (
                |c| c.iss = Some("https://evil.example".into()),
                AuthFailure::InvalidIssuer,
            ),
            (|c| c.exp = None, AuthFailure::MissingClaim("exp")),
            (
                |c| c.exp = Some(NumericDate::from_secs(NOW - 3600)),
                AuthFailure::Expired,
            ),
            (|c| c.iat = None, AuthFailure::MissingClaim("iat")),
            (
                |c| c.iat = Some(NumericDate::from_secs(NOW + 600)),
                AuthFailure::IssuedInFuture,
            ),
            (
                |c| c.nbf = Some(NumericDate::from_secs(NOW + 600)),
                AuthFailure::NotYetValid,
            ),
            (|c| c.aud = None, AuthFailure::MissingClaim("aud")),
            (
                |c| c.aud = Some(Audience::One("https://other.example".into())),
                AuthFailure::AudienceNotAllowed,
            ),
            (
                |c| c.email = Some("someone@example.com".into()),
                AuthFailure::EmailNotAllowed,
            ),
            (|c| c.email = None, AuthFailure::MissingClaim("email")),
            (
                |c| c.email_verified = Some(false.into()),
                AuthFailure::EmailNotVerified,
            ),
            (|c| c.email_verified = None, AuthFailure::EmailNotVerified),
        ];
        for (i, (mutate, expected)) in cases.into_iter().enumerate() {
            let mut c = good();
            mutate(&mut c);
            assert_eq!(failure(&c), expected, "case {i}");
        }
    }

    #[test]
    fn a_token_without_email_is_incomplete_401_not_a_refused_caller_403() {
        let mut c = good();
        c.email = None;
        let e = failure(&c);
        assert_eq!(e, AuthFailure::MissingClaim("email"));
        assert_eq!(e.status(), http::StatusCode::UNAUTHORIZED);
    }

    #[test]
    fn email_verified_is_true_or_exactly_the_string_true() {
        for yes in [serde_json::json!(true), serde_json::json!("true")] {
            let mut c = good();
            c.email_verified = Some(yes.clone());
            assert!(policy().check(&c, NOW).is_ok(), "{yes}");
        }
        for no in [
            serde_json::json!(false),
            serde_json::json!("false"),
            serde_json::json!("TRUE"),
            serde_json::json!(" true"),
            serde_json::json!("yes"),
            serde_json::json!(1),
            serde_json::json!(null),
            serde_json::json!([true]),
        ] {
            let mut c = good();
            c.email_verified = Some(no.clone());
            assert_eq!(failure(&c), AuthFailure::EmailNotVerified, "{no}");
        }
    }

    #[test]
    fn times_must_be_whole_seconds_in_range() {
        type Set = fn(&mut Claims, NumericDate);
        let setters: [(&str, Set); 3] = [
            ("exp", |c, d| c.exp = Some(d)),
            ("iat", |c, d| c.iat = Some(d)),
            ("nbf", |c, d| c.nbf = Some(d)),
        ];
        for (claim, set) in setters {
            for bad in [
                "1e300",
                "1.8e9",
                "1800000000.5",
                "-1",
                "253402300800",
                "18446744073709551615",
            ] {
                let mut c = good();
                set(&mut c, serde_json::from_str(bad).unwrap());
                assert_eq!(
                    failure(&c),
                    AuthFailure::InvalidClaim(claim),
                    "{claim}: {bad}"
                );
            }
        }
    }

    #[test]
    fn errors_carry_the_callers_email_when_known() {
        let mut c = good();
        c.email = Some("intruder@example.com".into());
        let e = policy().check(&c, NOW).unwrap_err();
        assert_eq!(e.email.as_deref(), Some("intruder@example.com"));
        c.email = None;
        assert_eq!(policy().check(&c, NOW).unwrap_err().email, None);
    }

    #[test]
    fn no_audiences_configured_means_aud_is_not_checked() {
        let mut p = policy();
        p.audiences.clear();
        let mut c = good();
        c.aud = None;
        assert!(p.check(&c, NOW).is_ok());
    }

    #[test]
    fn claim_shapes_from_the_wire() {
        let c: Claims = serde_json::from_str(
            r#"{"aud":["a","b"],"exp":1500000000,"email_verified":"true","extra":{"x":1}}"#,
        )
        .unwrap();
        assert!(matches!(c.aud, Some(Audience::Many(ref v)) if v.len() == 2));
        assert_eq!(c.exp.unwrap().secs("exp"), Ok(1_500_000_000));
        assert!(serde_json::from_str::<Claims>(r#"{"exp":"soon"}"#).is_err());
        assert!(serde_json::from_str::<Claims>(r#"{"aud":"a","aud":"b"}"#).is_err());
    }
}
