//! End-user identity: who is talking, as opposed to who is calling (Dialogflow's token says only
//! the latter). Nothing here trusts a session parameter by itself: a detectIntent caller can set
//! any of them.
//!
//! - [`Subject`]: a user proven by a signed end-user ID token (verified by
//!   [`crate::auth`]); [`Pin`](crate::domain::Pin): what a caller keys in on the phone.
//! - [`grant`]: a session grant earned with the account's PIN on the phone: an expiring token bound
//!   to one session and one account, MAC'd with `SESSION_SIGNING_KEY`.
//! - [`Pseudonyms`]: how logs name a user (a keyed hash of the subject, never the subject itself).
//!
//! [`Identity`] holds them together for the handlers: the access mode, the end-user token verifier,
//! the grant key and the pseudonym key. Depends on [`crate::domain`], [`crate::config`] and
//! [`crate::auth`] (for the token verifier).

pub mod grant;

use std::fmt;

use aws_lc_rs::hmac;

use crate::auth::SetupError;
use crate::auth::end_user::EndUserVerifier;
use crate::config::{AccountAccess, IdentityConfig, Secret};
use crate::domain::Subject;

/// Everything that decides who the end user is, built once at start.
#[derive(Debug)]
pub struct Identity {
    /// Who may read account data.
    pub access: AccountAccess,
    /// Verifies end users' ID tokens (web and app channels), when `END_USER_ISSUER` is set.
    pub end_users: Option<EndUserVerifier>,
    /// Issues and checks PIN session grants (voice), when `SESSION_SIGNING_KEY` is set.
    pub grants: Option<grant::Grants>,
    /// How logs name a user.
    pub pseudonyms: Pseudonyms,
}

impl Identity {
    /// Builds the verifier, the grant key and the pseudonym key from `config`. Must run inside the
    /// tokio runtime (the verifier starts fetching keys).
    pub fn new(config: &IdentityConfig) -> Result<Identity, SetupError> {
        let end_users = match &config.end_user {
            Some(settings) => Some(EndUserVerifier::new(settings)?),
            None => None,
        };
        Ok(Identity {
            access: config.access,
            end_users,
            grants: config.session_key.as_ref().map(grant::Grants::new),
            pseudonyms: Pseudonyms::new(config.session_key.as_ref()),
        })
    }

    /// No end-user proof is accepted (open access, or verified access with no verifier and no
    /// grant key: account data is then out of reach).
    pub fn open() -> Identity {
        Identity {
            access: AccountAccess::Open,
            end_users: None,
            grants: None,
            pseudonyms: Pseudonyms::new(None),
        }
    }
}

/// Stable pseudonyms for logs: HMAC-SHA256 of the subject under `SESSION_SIGNING_KEY`, 16 hex
/// digits. Without the key a random per-process key is used: pseudonyms are then stable within one
/// process only.
#[derive(Clone)]
pub struct Pseudonyms {
    key: hmac::Key,
}

impl fmt::Debug for Pseudonyms {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Pseudonyms")
    }
}

impl Pseudonyms {
    /// Pseudonyms keyed by `key`, or by a random key when there is none.
    pub fn new(key: Option<&Secret>) -> Pseudonyms {
        let bytes = match key {
            Some(k) => k.expose().as_bytes().to_vec(),
            None => {
                let mut random = [0u8; 32];
                // Without randomness the pseudonyms are still keyed, just not secret-keyed.
                let _ = getrandom::fill(&mut random);
                random.to_vec()
            }
        };
        Pseudonyms {
            key: hmac::Key::new(hmac::HMAC_SHA256, &bytes),
        }
    }

    /// The pseudonym of `subject`, e.g. `u-3f9a0c1d2e4b5a69`.
    pub fn of(&self, subject: &Subject) -> String {
        let tag = hmac::sign(
            &self.key,
            format!("pseudonym|{}", subject.as_str()).as_bytes(),
        );
        let mut out = String::from("u-");
        for b in &tag.as_ref()[..8] {
            out.push_str(&format!("{b:02x}"));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subjects_are_never_shown_and_pseudonyms_are_stable_per_key() {
        let s = Subject::new("demo-user-1").unwrap();
        assert_eq!(format!("{s:?}"), "Subject([redacted])");
        assert!(Subject::new("").is_none());
        let key = Secret::new("k".repeat(32));
        let a = Pseudonyms::new(Some(&key));
        let b = Pseudonyms::new(Some(&key));
        assert_eq!(a.of(&s), b.of(&s));
        assert_ne!(a.of(&s), a.of(&Subject::new("demo-user-2").unwrap()));
        assert!(!a.of(&s).contains("demo"));
        assert_eq!(a.of(&s).len(), 18);
    }
}
