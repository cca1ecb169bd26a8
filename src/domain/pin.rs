//! End users: the verified [`Subject`] of an ID token, and PINs for the voice channel: 4 to 8 digits, stored only as salted argon2id hashes (PHC strings).
//!
//! Hashing is deliberately slow (the default cost takes tens of milliseconds): [`verify`] must run
//! on the blocking pool, never on a worker. The demo data hashes its documented PINs with the
//! minimum cost ([`demo_hash`]) so seeding stays fast; a real deployment stores hashes made with
//! [`hash`] (the argon2 crate's default cost, OWASP's recommendation).

use std::fmt;

use argon2::{Algorithm, Argon2, Params, PasswordHasher, PasswordVerifier, Version};

/// An end user proven by a verified ID token: its `sub` (non-empty, at most 255 bytes).
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Subject(String);

impl Subject {
    /// A verified token's subject (`None` when empty or absurdly long).
    pub fn new(sub: &str) -> Option<Subject> {
        (!sub.is_empty() && sub.len() <= 255).then(|| Subject(sub.to_owned()))
    }

    /// The subject, for lookups; never for logs (use `identity::Pseudonyms`).
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Subject {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Subject([redacted])")
    }
}

/// A PIN as said or keyed in: 4 to 8 digits (spaces and hyphens ignored).
#[derive(Clone, PartialEq, Eq)]
pub struct Pin(String);

impl std::fmt::Debug for Pin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Pin([redacted])")
    }
}

impl Pin {
    /// Parses what the caller said or keyed.
    pub fn parse(input: &str) -> Option<Pin> {
        let digits: String = input.chars().filter(|c| !matches!(c, ' ' | '-')).collect();
        ((4..=8).contains(&digits.len()) && digits.bytes().all(|b| b.is_ascii_digit()))
            .then_some(Pin(digits))
    }
}

/// A new hash of `pin` with a random salt and the default (production) cost.
pub fn hash(pin: &Pin) -> Result<String, argon2::password_hash::Error> {
    let mut salt = [0u8; 16];
    getrandom::fill(&mut salt).map_err(|_| argon2::password_hash::Error::Crypto)?;
    Ok(Argon2::default()
        .hash_password_with_salt(pin.0.as_bytes(), &salt)?
        .to_string())
}

/// A decoy hash at the default cost that no PIN matches (its input is not digits): checked when an
/// account has no hash, so an unknown account takes about as long as a known one.
pub fn decoy_hash() -> String {
    Argon2::default()
        .hash_password_with_salt(b"no account has this PIN", &[0; 16])
        .map(|h| h.to_string())
        .unwrap_or_default()
}

/// A hash of `pin` with `salt` and the minimum cost: for the demo data only.
pub fn demo_hash(pin: &str, salt: &[u8; 16]) -> Result<String, argon2::password_hash::Error> {
    let params = Params::new(Params::MIN_M_COST.max(64), 1, 1, None)?;
    Ok(Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
        .hash_password_with_salt(pin.as_bytes(), salt)?
        .to_string())
}

/// Whether `pin` matches the stored PHC string (its own parameters and salt are used). A malformed
/// hash matches nothing. Slow by design: call from the blocking pool.
pub fn verify(pin: &Pin, stored: &str) -> bool {
    Argon2::default()
        .verify_password(pin.0.as_bytes(), stored)
        .is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subjects_and_pins_parse_and_hide() {
        assert_eq!(
            format!("{:?}", Subject::new("demo-user-1").unwrap()),
            "Subject([redacted])"
        );
        assert!(Subject::new("").is_none());
        assert!(Pin::parse("12 34").is_some());
        for bad in ["123", "123456789", "12a4", ""] {
            assert!(Pin::parse(bad).is_none(), "{bad}");
        }
        assert_eq!(
            format!("{:?}", Pin::parse("1234").unwrap()),
            "Pin([redacted])"
        );
    }

    #[test]
    fn hashes_are_salted_and_verify() {
        let pin = Pin::parse("1234").unwrap();
        let a = demo_hash("1234", &[1; 16]).unwrap();
        let b = demo_hash("1234", &[2; 16]).unwrap();
        assert_ne!(a, b);
        assert!(a.starts_with("$argon2id$"));
        assert!(verify(&pin, &a) && verify(&pin, &b));
        assert!(!verify(&Pin::parse("4321").unwrap(), &a));
        assert!(!verify(&pin, "not a hash"));
        let strong = hash(&pin).unwrap();
        assert!(verify(&pin, &strong));
    }
}
