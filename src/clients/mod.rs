//! Outbound HTTP: the services cx-webhook calls (the weather provider, the remote booking API).
//!
//! Design choice: one shared [`reqwest::Client`] (rustls, already in the tree through
//! google-cloud-auth), built once at start by [`http_client`] and cloned into every client, so all
//! outbound calls share one connection pool and one TLS configuration. The shared client carries a
//! connect timeout and, as a last resort, a total timeout equal to the webhook deadline; each call
//! bounds itself by the time its webhook call has left (a per-request timeout replaces the total
//! one, so callers never pass more than that).
//! Redirects are not followed (an API that redirects is misconfigured, and a redirect must never
//! carry our ID token elsewhere). Response bodies are read with a size cap ([`read_capped`]) so a
//! misbehaving server cannot make us buffer without bound.
//!
//! This module knows nothing of Dialogflow: it speaks HTTP and returns domain values and errors.

pub mod booking_api;
pub mod weather;

use std::time::Duration;

use bytes::{Bytes, BytesMut};

/// Longest time to establish a TCP (and TLS) connection to an outside service.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);

/// Largest response body accepted from an outside service.
pub const MAX_RESPONSE_BYTES: usize = 64 * 1024;

/// Builds the shared outbound client. `total` is the ceiling for any one request (the webhook
/// deadline); callers set tighter per-request timeouts. The connect timeout is
/// [`CONNECT_TIMEOUT`], or `total` when that is shorter.
pub fn http_client(total: Duration) -> Result<reqwest::Client, reqwest::Error> {
    reqwest::Client::builder()
        .connect_timeout(CONNECT_TIMEOUT.min(total))
        .timeout(total)
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(concat!("cx-webhook/", env!("CARGO_PKG_VERSION")))
        .build()
}

/// A response body could not be read in full.
#[derive(Debug, thiserror::Error)]
pub enum BodyError {
    /// The body is larger than the cap.
    #[error("the response body is larger than {limit} bytes")]
    TooLarge {
        /// The cap that was exceeded.
        limit: usize,
    },
    /// The connection failed or timed out while reading.
    #[error("reading the response body failed")]
    Read(#[source] reqwest::Error),
}

/// Reads a whole response body, refusing more than `limit` bytes.
pub async fn read_capped(
    mut response: reqwest::Response,
    limit: usize,
) -> Result<Bytes, BodyError> {
    if response
        .content_length()
        .is_some_and(|len| len > limit as u64)
    {
        return Err(BodyError::TooLarge { limit });
    }
    let mut body = BytesMut::new();
    while let Some(chunk) = response
        .chunk()
        .await
        .map_err(|e| BodyError::Read(e.without_url()))?
    {
        if body.len() + chunk.len() > limit {
            return Err(BodyError::TooLarge { limit });
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body.freeze())
}

/// Text from an outside service made safe to show or log: control characters removed, whitespace
/// collapsed, at most `max_chars` characters.
pub fn clean_text(text: &str, max_chars: usize) -> String {
    let mut out = String::new();
    for word in text.split_whitespace() {
        let word: String = word.chars().filter(|c| !c.is_control()).collect();
        if word.is_empty() {
            continue;
        }
        if !out.is_empty() {
            out.push(' ');
        }
        out.push_str(&word);
    }
    match out.char_indices().nth(max_chars) {
        Some((cut, _)) => out[..cut].trim_end().to_owned(),
        None => out,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clean_text_strips_controls_and_bounds_length() {
        assert_eq!(
            clean_text("  Mum\u{0007}bai \n\t India ", 100),
            "Mumbai India"
        );
        assert_eq!(clean_text("abcdef", 3), "abc");
        assert_eq!(clean_text("ab cdef", 3), "ab");
        assert_eq!(clean_text("\u{0000}", 10), "");
        assert_eq!(clean_text("Zürich", 3), "Zür");
    }
}
