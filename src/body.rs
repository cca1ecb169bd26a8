//! Bodies in and out, the same for both doors (the webhook and `POST /tools/<name>`): the one
//! request-body reader, and [`json_answer`], the uncached JSON response they all send.
//!
//! [`read`] checks the `Content-Type` against the route's rule, refuses a declared or actual body
//! over `max_body_bytes`, gives up after `body_read_timeout`, and holds the bytes it collects
//! against the connection's [`BodyBudget`] (h2c multiplexes many requests on one connection; their
//! bodies share one budget, so a connection cannot make the server buffer more than that). Each
//! route turns a [`BodyError`] into its own error format: the webhook's `{"error": ...}` JSON, the
//! tools' RFC 9457 problems.

use std::pin::pin;
use std::sync::atomic::{AtomicUsize, Ordering};

use bytes::Bytes;
use http::header::{self, HeaderValue};
use http::{HeaderMap, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full, LengthLimitError, Limited};
use hyper::body::Incoming;

use crate::config::Config;

/// The request-body bytes held by one connection's requests (h2c multiplexes many); a body that
/// would take the connection past its budget is refused rather than buffered.
#[derive(Debug)]
pub struct BodyBudget {
    limit: usize,
    held: AtomicUsize,
}

impl BodyBudget {
    /// A budget of `limit` bytes.
    pub fn new(limit: usize) -> Self {
        BodyBudget {
            limit,
            held: AtomicUsize::new(0),
        }
    }

    /// The bytes the connection's requests may hold at once.
    pub fn limit(&self) -> usize {
        self.limit
    }
}

/// One request's share of its connection's [`BodyBudget`], given back when dropped.
pub struct BodyHold<'a> {
    budget: &'a BodyBudget,
    bytes: usize,
}

impl BodyHold<'_> {
    /// Takes `n` more bytes; false (taking nothing) when the connection's budget is spent.
    fn take(&mut self, n: usize) -> bool {
        let before = self.budget.held.fetch_add(n, Ordering::AcqRel);
        if before + n > self.budget.limit {
            self.budget.held.fetch_sub(n, Ordering::AcqRel);
            return false;
        }
        self.bytes += n;
        true
    }
}

impl Drop for BodyHold<'_> {
    fn drop(&mut self) {
        self.budget.held.fetch_sub(self.bytes, Ordering::AcqRel);
    }
}

/// Why a body could not be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BodyError {
    /// The `Content-Type` (as sent; empty when missing) is not one the route accepts.
    UnsupportedMediaType(String),
    /// Declared or sent, the body is over `max_body_bytes`.
    TooLarge,
    /// The body did not arrive within `body_read_timeout`.
    Timeout,
    /// Holding the body would take the connection past its budget.
    OverBudget,
    /// The connection failed while the body was read.
    Unreadable(String),
}

/// `application/json` (any case, any parameters).
pub fn json_only(content_type: &str) -> bool {
    subtype_of_application(content_type).is_some_and(|sub| sub.eq_ignore_ascii_case(b"json"))
}

/// `application/json` or a structured `application/*+json` type (any case, any parameters).
pub fn json_or_suffix(content_type: &str) -> bool {
    subtype_of_application(content_type).is_some_and(|sub| {
        sub.eq_ignore_ascii_case(b"json")
            || sub
                .len()
                .checked_sub(b"+json".len())
                .is_some_and(|at| sub[at..].eq_ignore_ascii_case(b"+json"))
    })
}

/// The subtype of an `application/...` media type, parameters and spaces left out; compared
/// without case and without a lower-cased copy, since this runs on every call.
fn subtype_of_application(content_type: &str) -> Option<&[u8]> {
    // memchr and an ASCII trim (a header value read as text holds nothing else): `split(';')`
    // and `str::trim` cost 200 instructions here.
    let value = content_type.as_bytes();
    let essence = memchr::memchr(b';', value)
        .map_or(value, |at| &value[..at])
        .trim_ascii();
    let prefix = b"application/";
    (essence.len() >= prefix.len() && essence[..prefix.len()].eq_ignore_ascii_case(prefix))
        .then(|| &essence[prefix.len()..])
}

/// Reads `req`'s body within `config`'s size and time limits and `budget`, after checking its
/// `Content-Type` with `accepts`. The bytes stay held against the budget until the returned hold is
/// dropped.
pub async fn read<'a>(
    req: Request<Incoming>,
    accepts: fn(&str) -> bool,
    config: &Config,
    budget: &'a BodyBudget,
) -> Result<(Bytes, BodyHold<'a>), BodyError> {
    let content_type = header_str(req.headers(), header::CONTENT_TYPE);
    if !accepts(content_type) {
        return Err(BodyError::UnsupportedMediaType(content_type.to_owned()));
    }
    let declared = header_str(req.headers(), header::CONTENT_LENGTH).parse::<u64>();
    if declared.is_ok_and(|n| n > config.max_body_bytes as u64) {
        return Err(BodyError::TooLarge);
    }
    let collected = collect(req.into_body(), config.max_body_bytes, budget);
    match tokio::time::timeout(config.body_read_timeout, collected).await {
        Ok(result) => result,
        Err(_) => Err(BodyError::Timeout),
    }
}

fn header_str(headers: &HeaderMap, name: header::HeaderName) -> &str {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
}

/// Collects a body of at most `max` bytes, holding its bytes against `budget` until the returned
/// hold is dropped. A body that arrives in one chunk is not copied.
async fn collect<'a>(
    body: Incoming,
    max: usize,
    budget: &'a BodyBudget,
) -> Result<(Bytes, BodyHold<'a>), BodyError> {
    let mut hold = BodyHold { budget, bytes: 0 };
    let mut body = pin!(Limited::new(body, max));
    let mut first: Option<Bytes> = None;
    let mut rest: Vec<u8> = Vec::new();
    while let Some(frame) = body.frame().await {
        let frame = match frame {
            Ok(frame) => frame,
            Err(e) if e.downcast_ref::<LengthLimitError>().is_some() => {
                return Err(BodyError::TooLarge);
            }
            Err(e) => return Err(BodyError::Unreadable(e.to_string())),
        };
        let Ok(data) = frame.into_data() else {
            continue; // trailers
        };
        if !hold.take(data.len()) {
            return Err(BodyError::OverBudget);
        }
        match &first {
            None if rest.is_empty() => first = Some(data),
            _ => {
                if let Some(first) = first.take() {
                    rest.extend_from_slice(&first);
                }
                rest.extend_from_slice(&data);
            }
        }
    }
    let bytes = first.unwrap_or_else(|| Bytes::from(rest));
    Ok((bytes, hold))
}

/// A `status` answer carrying `body` as `content_type` (a JSON type), never cached.
pub fn json_answer(
    status: StatusCode,
    content_type: &'static str,
    body: Vec<u8>,
) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_content_types() {
        assert!(json_or_suffix("application/json"));
        assert!(json_or_suffix("Application/JSON; charset=utf-8"));
        assert!(json_or_suffix("application/vnd.api+json"));
        assert!(!json_or_suffix("text/plain"));
        assert!(!json_or_suffix("application/x-www-form-urlencoded"));
        assert!(!json_or_suffix(""));
        assert!(json_or_suffix("  APPLICATION/VND.API+JSON ; q=1"));
        for refused in [
            "applicatio/json",
            "application/jsonx",
            "text/json",
            "application/",
            "application/json+",
            "applicatión/json",
            "application/ǰson",
        ] {
            assert!(!json_or_suffix(refused), "{refused}");
            assert!(!json_only(refused), "{refused}");
        }
        assert!(json_only("Application/JSON; charset=utf-8"));
        assert!(!json_only("application/vnd.api+json"));
        assert!(!json_only(""));
    }

    #[test]
    fn a_hold_gives_its_bytes_back_and_never_takes_past_the_limit() {
        let budget = BodyBudget::new(10);
        let mut a = BodyHold {
            budget: &budget,
            bytes: 0,
        };
        assert!(a.take(6));
        let mut b = BodyHold {
            budget: &budget,
            bytes: 0,
        };
        assert!(!b.take(5), "6 + 5 is past 10");
        assert!(b.take(4));
        drop(a);
        assert!(b.take(6), "a's 6 bytes came back");
        drop(b);
        assert_eq!(budget.held.load(Ordering::Acquire), 0);
    }
}
