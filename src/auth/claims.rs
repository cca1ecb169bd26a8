//! The claim checks of a Google ID token, in one place for both ID-token modes.
//!
//! In google-oidc the claims come out of a token whose signature jsonwebtoken has just verified; in
//! cloud-run-iam they come out of a token whose signature Cloud Run verified and then stripped, so
//! no JWT library can check them. Keeping every claim check here (and configuring jsonwebtoken to
//! verify the signature only) means the two modes cannot drift apart, and every failure gets its
//! own reason code.
//!
//! What is checked, in order (each with the configured leeway on the clock):
//! - `iss` is `https://accounts.google.com` or `accounts.google.com` (401);
//! - `exp` is present and not passed, `iat` is present and not in the future, `nbf` (when present)
//!   is not in the future (401). A token is not required to be fresh: callers cache ID tokens for
//!   up to their hour of life;
//! - `aud` is present and one of the configured audiences, when audiences are configured (403);
//! - `email` is one of the allowed callers and `email_verified` is true (403).
//!
//! From the audience check on, the token is known to be a valid Google token and only the caller is
//! wrong, hence 403; the caller's email travels with every error so the refusal log can name it.

use serde::Deserialize;

use super::AuthError;

/// The issuers of Google ID tokens (both spellings occur).
const GOOGLE_ISSUERS: [&str; 2] = ["https://accounts.google.com", "accounts.google.com"];

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
    /// The caller's email (a service account for Dialogflow).
    pub email: Option<String>,
    /// Whether Google vouches for `email`.
    pub email_verified: Option<Verified>,
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

/// A JWT NumericDate: seconds since the epoch, possibly fractional.
#[derive(Debug, Clone, Copy, PartialEq, Deserialize)]
#[serde(transparent)]
pub struct NumericDate(pub f64);

impl NumericDate {
    /// Whole seconds (fractions round down; out-of-range values saturate).
    pub fn secs(self) -> i64 {
        self.0.floor() as i64
    }
}

/// `email_verified`: a boolean, or the strings `"true"`/`"false"` that older Google tokens carried.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum Verified {
    /// JSON boolean.
    Bool(bool),
    /// JSON string; only `"true"` counts as verified.
    Text(String),
}

impl Verified {
    fn is_true(&self) -> bool {
        match self {
            Verified::Bool(b) => *b,
            Verified::Text(s) => s == "true",
        }
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

impl Policy {
    /// Checks `claims` at time `now` (seconds since the epoch). On success returns the caller's
    /// email; every error carries the email too, when the token has one.
    pub fn check(&self, claims: &Claims, now: i64) -> Result<String, AuthError> {
        self.check_inner(claims, now)
            .map_err(|e| e.with_email(claims.email.clone()))
    }

    /// Whether a token that passed [`Policy::check`] and expires at `exp` is still unexpired at
    /// `now`.
    pub fn unexpired(&self, exp: i64, now: i64) -> bool {
        now < exp.saturating_add(self.leeway)
    }

    fn check_inner(&self, claims: &Claims, now: i64) -> Result<String, AuthError> {
        let iss = claims.iss.as_deref().ok_or_else(|| missing("iss"))?;
        if !GOOGLE_ISSUERS.contains(&iss) {
            return Err(AuthError::unauthorized(
                "invalid_issuer",
                "the token was not issued by Google (iss)",
            ));
        }
        let exp = claims.exp.ok_or_else(|| missing("exp"))?.secs();
        if !self.unexpired(exp, now) {
            return Err(AuthError::unauthorized(
                "token_expired",
                "the token has expired (exp)",
            ));
        }
        let iat = claims.iat.ok_or_else(|| missing("iat"))?.secs();
        if iat > now.saturating_add(self.leeway) {
            return Err(AuthError::unauthorized(
                "issued_in_future",
                "the token claims to be issued in the future (iat)",
            ));
        }
        if let Some(nbf) = claims.nbf
            && nbf.secs() > now.saturating_add(self.leeway)
        {
            return Err(AuthError::unauthorized(
                "token_not_yet_valid",
                "the token is not valid yet (nbf)",
            ));
        }
        if !self.audiences.is_empty() {
            let aud = claims.aud.as_ref().ok_or_else(|| missing("aud"))?;
            if !aud.any(&self.audiences) {
                return Err(AuthError::forbidden(
                    "audience_not_allowed",
                    "the token is for another audience (aud)",
                ));
            }
        }
        let email = match claims.email.as_deref() {
            Some(email) if self.allowed_emails.contains(&email.to_ascii_lowercase()) => email,
            Some(_) => {
                return Err(AuthError::forbidden(
                    "email_not_allowed",
                    "this caller is not allowed to call the webhook (email)",
                ));
            }
            None => {
                return Err(AuthError::forbidden(
                    "email_not_allowed",
                    "the token names no caller (no email claim)",
                ));
            }
        };
        if !claims
            .email_verified
            .as_ref()
            .is_some_and(Verified::is_true)
        {
            return Err(AuthError::forbidden(
                "email_not_verified",
                "the token's email is not verified (email_verified)",
            ));
        }
        Ok(email.to_owned())
    }
}

fn missing(claim: &'static str) -> AuthError {
    AuthError::unauthorized("missing_claim", format!("the token has no `{claim}` claim"))
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

    fn good() -> Claims {
        serde_json::from_value(serde_json::json!({
            "iss": "https://accounts.google.com",
            "aud": "https://hook.example/webhook",
            "exp": NOW + 3000,
            "iat": NOW - 600,
            "email": AGENT,
            "email_verified": true,
            "sub": "1234567890",
        }))
        .unwrap()
    }

    fn code(claims: &Claims) -> (u16, &'static str) {
        let e = policy().check(claims, NOW).unwrap_err();
        (e.status, e.code)
    }

    #[test]
    fn good_claims_pass_and_name_the_caller() {
        assert_eq!(policy().check(&good(), NOW).unwrap(), AGENT);
        let mut c = good();
        c.iss = Some("accounts.google.com".into());
        c.email_verified = Some(Verified::Text("true".into()));
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
        c.exp = Some(NumericDate((NOW - 29) as f64));
        c.iat = Some(NumericDate((NOW + 29) as f64));
        c.nbf = Some(NumericDate((NOW + 29) as f64));
        assert!(policy().check(&c, NOW).is_ok());
        c.exp = Some(NumericDate((NOW - 30) as f64));
        assert_eq!(code(&c), (401, "token_expired"));
    }

    #[test]
    fn each_failed_check_has_its_own_reason() {
        type Case = (fn(&mut Claims), (u16, &'static str));
        let cases: Vec<Case> = vec![
            (|c| c.iss = None, (401, "missing_claim")),
            (
                |c| c.iss = Some("https://evil.example".into()),
                (401, "invalid_issuer"),
            ),
            (|c| c.exp = None, (401, "missing_claim")),
            (
                |c| c.exp = Some(NumericDate((NOW - 3600) as f64)),
                (401, "token_expired"),
            ),
            (|c| c.iat = None, (401, "missing_claim")),
            (
                |c| c.iat = Some(NumericDate((NOW + 600) as f64)),
                (401, "issued_in_future"),
            ),
            (
                |c| c.nbf = Some(NumericDate((NOW + 600) as f64)),
                (401, "token_not_yet_valid"),
            ),
            (|c| c.aud = None, (401, "missing_claim")),
            (
                |c| c.aud = Some(Audience::One("https://other.example".into())),
                (403, "audience_not_allowed"),
            ),
            (
                |c| c.email = Some("someone@example.com".into()),
                (403, "email_not_allowed"),
            ),
            (|c| c.email = None, (403, "email_not_allowed")),
            (
                |c| c.email_verified = Some(Verified::Bool(false)),
                (403, "email_not_verified"),
            ),
            (
                |c| c.email_verified = Some(Verified::Text("false".into())),
                (403, "email_not_verified"),
            ),
            (|c| c.email_verified = None, (403, "email_not_verified")),
        ];
        for (i, (mutate, expected)) in cases.into_iter().enumerate() {
            let mut c = good();
            mutate(&mut c);
            assert_eq!(code(&c), expected, "case {i}");
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
            r#"{"aud":["a","b"],"exp":1.5e9,"email_verified":"true","extra":{"x":1}}"#,
        )
        .unwrap();
        assert!(matches!(c.aud, Some(Audience::Many(ref v)) if v.len() == 2));
        assert_eq!(c.exp.unwrap().secs(), 1_500_000_000);
        assert!(serde_json::from_str::<Claims>(r#"{"exp":"soon"}"#).is_err());
        assert!(serde_json::from_str::<Claims>(r#"{"aud":"a","aud":"b"}"#).is_err());
    }
}
