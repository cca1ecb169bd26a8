//! Session grants: what a caller who keyed the right PIN holds for the rest of the call.
//!
//! A grant is the session parameter `account_grant`: `g1.<account>.<expiry>.<mac>`, where the MAC is
//! HMAC-SHA256 under `SESSION_SIGNING_KEY` over the version, the *whole session name*, the account
//! and the expiry (Unix seconds). So a grant copied into another session, edited, or kept past its
//! expiry is worthless; the session name itself never appears in it. Verification compares MACs in
//! constant time.

use std::fmt;

use aws_lc_rs::hmac;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jiff::{SignedDuration, Timestamp};

use crate::config::Secret;
use crate::domain::AccountId;

/// How long a grant is good for.
pub const GRANT_TTL: SignedDuration = SignedDuration::from_mins(15);

/// The session parameter that holds a grant.
pub const GRANT_PARAM: &str = "account_grant";

const VERSION: &str = "g1";

/// Why a grant was refused (for logs; the user hears the same answer for all of them).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum GrantError {
    /// Not a grant at all.
    #[error("malformed grant")]
    Malformed,
    /// Made with another key, for another session, or edited.
    #[error("grant does not verify (another session, another key, or edited)")]
    Forged,
    /// Past its expiry.
    #[error("grant expired")]
    Expired,
}

/// Issues and checks grants under one key.
#[derive(Clone)]
pub struct Grants {
    key: hmac::Key,
}

impl fmt::Debug for Grants {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Grants")
    }
}

fn signed_part(session: &str, account: &str, expiry: i64) -> String {
    format!("{VERSION}|{session}|{account}|{expiry}")
}

impl Grants {
    /// Grants MAC'd with `key`.
    pub fn new(key: &Secret) -> Grants {
        Grants {
            key: hmac::Key::new(hmac::HMAC_SHA256, key.expose().as_bytes()),
        }
    }

    /// A grant for `account` in `session`, good for [`GRANT_TTL`] from `now`.
    pub fn issue(&self, session: &str, account: &AccountId, now: Timestamp) -> String {
        let expiry = now.as_second().saturating_add(GRANT_TTL.as_secs());
        let mac = hmac::sign(
            &self.key,
            signed_part(session, account.as_str(), expiry).as_bytes(),
        );
        format!(
            "{VERSION}.{account}.{expiry}.{}",
            URL_SAFE_NO_PAD.encode(mac.as_ref())
        )
    }

    /// The account a grant vouches for in `session` at `now`.
    pub fn verify(
        &self,
        grant: &str,
        session: &str,
        now: Timestamp,
    ) -> Result<AccountId, GrantError> {
        let mut parts = grant.trim().split('.');
        let (Some(VERSION), Some(account), Some(expiry), Some(mac), None) = (
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
        ) else {
            return Err(GrantError::Malformed);
        };
        let account = AccountId::parse(account).ok_or(GrantError::Malformed)?;
        let expiry: i64 = expiry.parse().map_err(|_| GrantError::Malformed)?;
        let mac = URL_SAFE_NO_PAD
            .decode(mac)
            .map_err(|_| GrantError::Malformed)?;
        hmac::verify(
            &self.key,
            signed_part(session, account.as_str(), expiry).as_bytes(),
            &mac,
        )
        .map_err(|_| GrantError::Forged)?;
        if now.as_second() >= expiry {
            return Err(GrantError::Expired);
        }
        Ok(account)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SESSION: &str = "projects/p/locations/global/agents/a/sessions/s-1";

    fn grants(key: &str) -> Grants {
        Grants::new(&Secret::new(key.repeat(32)))
    }

    #[test]
    fn a_grant_holds_only_in_its_session_under_its_key_until_expiry() {
        let g = grants("k");
        let a1001 = AccountId::parse("A1001").unwrap();
        let now = Timestamp::from_second(1_800_000_000).unwrap();
        let token = g.issue(SESSION, &a1001, now);
        assert_eq!(g.verify(&token, SESSION, now), Ok(a1001.clone()));
        assert_eq!(
            g.verify(
                &token,
                "projects/p/locations/global/agents/a/sessions/s-2",
                now
            ),
            Err(GrantError::Forged)
        );
        assert_eq!(
            grants("x").verify(&token, SESSION, now),
            Err(GrantError::Forged)
        );
        let tampered = token.replace("A1001", "A1002");
        assert_eq!(g.verify(&tampered, SESSION, now), Err(GrantError::Forged));
        let later = now + GRANT_TTL;
        assert_eq!(g.verify(&token, SESSION, later), Err(GrantError::Expired));
        for junk in [
            "",
            "g1.A1001",
            "g2.A1001.1.AAAA",
            "g1.A1001.x.AAAA",
            "g1.A1001.1.%%%",
        ] {
            assert_eq!(
                g.verify(junk, SESSION, now),
                Err(GrantError::Malformed),
                "{junk}"
            );
        }
    }
}
