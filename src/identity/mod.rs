//! End-user identity: who is talking, as opposed to who is calling (Dialogflow's token says only
//! the latter). Nothing here trusts a session parameter by itself: a detectIntent caller can set
//! any of them.
//!
//! - [`Subject`](crate::domain::Subject): a user proven by a signed end-user ID token (verified by
//!   [`crate::auth`]); [`Pin`](crate::domain::Pin): what a caller keys in on the phone.
//! - [`grant`]: a session grant earned with the account's PIN on the phone: an expiring token bound
//!   to one session and one account, MAC'd with `SESSION_SIGNING_KEY`.
//! - [`Pseudonyms`]: how logs name a user (a keyed hash of the subject, never the subject itself).
//!
//! Depends on [`crate::domain`] and [`crate::config::Secret`] only.

pub mod grant;

use std::fmt;

use aws_lc_rs::hmac;

use crate::config::Secret;
use crate::domain::Subject;

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
