//! The api-key mode: Dialogflow's custom-header authentication, a shared key in a header named by
//! `AUTH_API_KEY_HEADER` (never `Authorization`, which in CX would replace the ID token).
//!
//! The presented value and the expected key are both hashed with SHA-256 and the digests compared
//! in constant time (aws-lc-rs), so the comparison leaks neither the key's content nor its length.
//! Only the digest of the key is kept in memory after start.

use std::fmt;

use aws_lc_rs::constant_time::verify_slices_are_equal;
use aws_lc_rs::digest::{SHA256, digest};
use http::{HeaderMap, HeaderName};

use super::settings::ApiKeyConfig;
use super::{AuthFailure, Caller};

/// Checks the API key header.
pub struct ApiKeyVerifier {
    /// The header carrying the key.
    header: HeaderName,
    /// SHA-256 of the expected key.
    expected: Vec<u8>,
}

impl fmt::Debug for ApiKeyVerifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ApiKeyVerifier")
            .field("header", &self.header)
            .finish_non_exhaustive()
    }
}

impl ApiKeyVerifier {
    /// A verifier for `config`.
    pub fn new(config: &ApiKeyConfig) -> Self {
        ApiKeyVerifier {
            header: config.header.clone(),
            expected: config.key_digest().to_vec(),
        }
    }

    /// Accepts the request when its key header (sent exactly once) holds the key.
    pub fn verify(&self, headers: &HeaderMap) -> Result<Caller, AuthFailure> {
        let mut values = headers.get_all(&self.header).iter();
        let Some(value) = values.next() else {
            return Err(AuthFailure::MissingApiKey(self.header.clone()));
        };
        let presented = digest(&SHA256, value.as_bytes());
        let matches = verify_slices_are_equal(presented.as_ref(), &self.expected).is_ok();
        if !matches || values.next().is_some() {
            return Err(AuthFailure::InvalidApiKey(self.header.clone()));
        }
        Ok(Caller::default())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn verifier() -> ApiKeyVerifier {
        ApiKeyVerifier::new(&ApiKeyConfig::new(
            HeaderName::from_static("x-api-key"),
            "0123456789abcdef-key",
        ))
    }

    #[test]
    fn the_key_is_never_in_debug_output() {
        let shown = format!("{:?}", verifier());
        assert!(!shown.contains("0123456789abcdef"), "{shown}");
        let config = ApiKeyConfig::new(HeaderName::from_static("x-api-key"), "0123456789abcdef");
        let shown = format!("{config:?}");
        assert!(!shown.contains("0123456789abcdef"), "{shown}");
    }

    #[test]
    fn a_repeated_header_is_refused_even_if_one_value_is_right() {
        let mut headers = HeaderMap::new();
        headers.append("x-api-key", "0123456789abcdef-key".parse().unwrap());
        assert!(verifier().verify(&headers).is_ok());
        headers.append("x-api-key", "guess".parse().unwrap());
        assert_eq!(
            verifier().verify(&headers).unwrap_err(),
            AuthFailure::InvalidApiKey(HeaderName::from_static("x-api-key"))
        );
    }
}
