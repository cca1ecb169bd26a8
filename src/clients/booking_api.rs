//! The remote booking API: where bookings go when `BOOKING_API_URL` is set, so that many Cloud Run
//! instances share one booking store (a dealer-management system, often another Cloud Run service).
//!
//! ## The contract we call
//! `POST {BOOKING_API_URL}` with headers
//! - `Authorization: Bearer <Google-signed ID token>` for the audience `BOOKING_API_AUDIENCE`
//!   (default: the URL's origin, e.g. `https://dms-abc-ew.a.run.app`, which Cloud Run accepts);
//! - `Idempotency-Key: <key>`: the same booking always carries the same key, so a retried request
//!   must not book twice; the API answers a repeated key with the first booking;
//! - `Content-Type: application/json`, and the body
//!   `{"vehicle_number", "dealer_id", "service_type", "car_model" (string or null),
//!   "date": "YYYY-MM-DD", "time": "HH:MM" (24 h, local to the dealer), "session_id"}`.
//!
//! Answers, and what they become:
//! | status | body | result |
//! |---|---|---|
//! | 201 or 200 | `{"booking_id": "...", "status": "..."}` | [`BookingConfirmation`] |
//! | 409 | `{"code": "slot_taken"}` | [`BookingApiError::SlotTaken`] |
//! | 400, 422 | `{"field": "booking_date" (optional), "message": "..."}` | [`BookingApiError::Rejected`] |
//! | 401, 403 | any | [`BookingApiError::Unauthorized`] (logged at ERROR: our identity or audience is wrong) |
//! | 408, 429, 5xx | any | [`BookingApiError::Unavailable`] |
//! | anything else, or a body not as above | | [`BookingApiError::Protocol`] |
//!
//! ## Design choices
//! - The ID token comes from google-cloud-auth's `idtoken` credentials, built once from Application
//!   Default Credentials: the metadata server on Cloud Run (`GCE_METADATA_HOST` overrides its
//!   address), a service-account key or impersonation locally. The library caches and refreshes the
//!   token in a background task, so it must be built inside the tokio runtime ([`BookingApiClient::new`]
//!   is async for that reason). The token is never logged and never part of an error.
//! - One budget (`timeout`) covers getting the token, both attempts and reading the answer.
//! - One retry, only when no connection could be made or the connection dropped before an answer
//!   arrived (safe because of the idempotency key), and only within the budget. Never after an HTTP
//!   status, and never after the request timed out: each attempt may use all the time left, so a
//!   timed-out request may still be running and there is no time for another.
//! - Failures are logged here (ERROR for [`BookingApiError::Unauthorized`], WARNING for
//!   [`BookingApiError::Unavailable`] and [`BookingApiError::Protocol`]), so callers only answer.

use std::fmt;
use std::time::Duration;

use bytes::Bytes;
use google_cloud_auth::credentials::idtoken::{self, IDTokenCredentials};
use reqwest::Url;
use reqwest::header::{ACCEPT, AUTHORIZATION, CONTENT_TYPE, HeaderValue};
use serde::{Deserialize, Serialize};
use tokio::time::Instant;

use super::{BodyError, MAX_RESPONSE_BYTES, clean_text, read_capped};

/// The header that carries the idempotency key.
pub const IDEMPOTENCY_KEY_HEADER: &str = "Idempotency-Key";

/// Longest idempotency key accepted.
const MAX_KEY_LEN: usize = 255;

/// What to book. Dates/times are jiff civil types.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BookingRequest {
    /// The vehicle's registration number, e.g. `MH12AB1234`.
    pub vehicle_number: String,
    /// The dealer or service centre.
    pub dealer_id: String,
    /// The kind of service, e.g. `general_service`.
    pub service_type: String,
    /// The car model, when known.
    pub car_model: Option<String>,
    /// The day of the appointment.
    pub date: jiff::civil::Date,
    /// The slot start (`HH:MM` on the wire).
    pub time: crate::domain::SlotTime,
    /// The Dialogflow session that asked (for the dealer's records).
    pub session_id: String,
}

/// The booking the API made.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct BookingConfirmation {
    /// The API's id for the booking.
    pub booking_id: String,
    /// Its status, e.g. `confirmed` or `pending`.
    pub status: String,
}

/// Why a booking was not made.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BookingApiError {
    /// The slot is no longer free (HTTP 409).
    #[error("the booking API says the slot is taken")]
    SlotTaken,
    /// The API refused a value (HTTP 400/422).
    #[error("the booking API refused the booking: {message}")]
    Rejected {
        /// The field it refused, when it named one (e.g. `date`).
        field: Option<String>,
        /// Its explanation (control characters removed, at most 200 characters).
        message: String,
    },
    /// Our identity or configuration is wrong (HTTP 401/403, or no ID token could be had).
    #[error("the booking API refused our identity: {0}")]
    Unauthorized(String),
    /// The API could not be reached in time or failed (5xx, timeouts, connection errors after the
    /// retry).
    #[error("the booking API is unavailable: {0}")]
    Unavailable(String),
    /// An unexpected status or body, or a request that could not be formed.
    #[error("unexpected exchange with the booking API: {0}")]
    Protocol(String),
}

/// The client could not be set up.
#[derive(Debug, thiserror::Error)]
#[error("cannot load Google credentials for ID tokens (Application Default Credentials)")]
pub struct BookingApiBuildError(#[source] google_cloud_auth::build_errors::Error);

/// A client of the remote booking API. Build once, share behind an `Arc`.
pub struct BookingApiClient {
    url: Url,
    audience: String,
    http: reqwest::Client,
    credentials: IDTokenCredentials,
}

impl fmt::Debug for BookingApiClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // No credentials: nothing token-shaped ever reaches a log line through Debug.
        f.debug_struct("BookingApiClient")
            .field("url", &self.url.as_str())
            .field("audience", &self.audience)
            .finish_non_exhaustive()
    }
}

#[derive(Serialize)]
struct WireBooking<'a> {
    vehicle_number: &'a str,
    dealer_id: &'a str,
    service_type: &'a str,
    car_model: Option<&'a str>,
    date: String,
    time: String,
    session_id: &'a str,
}

impl<'a> From<&'a BookingRequest> for WireBooking<'a> {
    fn from(b: &'a BookingRequest) -> Self {
        WireBooking {
            vehicle_number: &b.vehicle_number,
            dealer_id: &b.dealer_id,
            service_type: &b.service_type,
            car_model: b.car_model.as_deref(),
            date: b.date.to_string(),
            time: b.time.to_string(),
            session_id: &b.session_id,
        }
    }
}

#[derive(Deserialize)]
struct Conflict {
    #[serde(default)]
    code: Option<String>,
}

#[derive(Deserialize)]
struct Refusal {
    #[serde(default)]
    field: Option<String>,
    #[serde(default)]
    message: Option<String>,
}

/// The origin of `url` (`scheme://host[:port]`), the default ID token audience.
pub fn default_audience(url: &Url) -> String {
    url.origin().ascii_serialization()
}

impl BookingApiClient {
    /// A client for the API at `url`, with ID tokens for `audience` (default: the URL's origin).
    /// Loads Application Default Credentials; must run inside the tokio runtime.
    pub async fn new(
        url: Url,
        audience: Option<String>,
        http: reqwest::Client,
    ) -> Result<Self, BookingApiBuildError> {
        let audience = audience.unwrap_or_else(|| default_audience(&url));
        let credentials = idtoken::Builder::new(audience.clone())
            .build()
            .map_err(BookingApiBuildError)?;
        Ok(BookingApiClient {
            url,
            audience,
            http,
            credentials,
        })
    }

    /// The audience of the ID tokens sent.
    pub fn audience(&self) -> &str {
        &self.audience
    }

    /// Creates `booking` under `idempotency_key` (reuse the key when retrying the same booking),
    /// answering within `timeout`.
    pub async fn create(
        &self,
        booking: &BookingRequest,
        idempotency_key: &str,
        timeout: Duration,
    ) -> Result<BookingConfirmation, BookingApiError> {
        let result = self.try_create(booking, idempotency_key, timeout).await;
        match &result {
            Err(e @ BookingApiError::Unauthorized(_)) => {
                tracing::error!(audience = %self.audience, error = %e, "booking API call failed");
            }
            Err(e @ (BookingApiError::Unavailable(_) | BookingApiError::Protocol(_))) => {
                tracing::warn!(error = %e, "booking API call failed");
            }
            _ => {}
        }
        result
    }

    async fn try_create(
        &self,
        booking: &BookingRequest,
        idempotency_key: &str,
        timeout: Duration,
    ) -> Result<BookingConfirmation, BookingApiError> {
        let deadline = Instant::now() + timeout;
        let key = HeaderValue::from_str(idempotency_key)
            .ok()
            .filter(|_| !idempotency_key.is_empty() && idempotency_key.len() <= MAX_KEY_LEN)
            .ok_or_else(|| {
                BookingApiError::Protocol(
                    "the idempotency key must be 1 to 255 visible ASCII characters".into(),
                )
            })?;
        let body = serde_json::to_vec(&WireBooking::from(booking))
            .map(Bytes::from)
            .map_err(|e| BookingApiError::Protocol(format!("cannot encode the booking: {e}")))?;
        let authorization = self.authorization(deadline).await?;

        let mut retried = false;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(BookingApiError::Unavailable(
                    "no time left for the request".into(),
                ));
            }
            let sent = self
                .http
                .post(self.url.clone())
                .timeout(left)
                .header(AUTHORIZATION, authorization.clone())
                .header(IDEMPOTENCY_KEY_HEADER, key.clone())
                .header(CONTENT_TYPE, "application/json")
                .header(ACCEPT, "application/json")
                .body(body.clone())
                .send()
                .await;
            match sent {
                Ok(response) => return answer(response).await,
                Err(e) if !retried && is_connection_error(&e) => {
                    tracing::warn!(
                        error = %e.without_url(),
                        "booking API connection failed; retrying once with the same idempotency key"
                    );
                    retried = true;
                }
                Err(e) => {
                    let what = if e.is_timeout() {
                        format!("no answer within {timeout:?}")
                    } else {
                        format!("request failed: {}", e.without_url())
                    };
                    return Err(BookingApiError::Unavailable(what));
                }
            }
        }
    }

    /// The `Authorization` header value, marked sensitive so `Debug` never shows it.
    async fn authorization(&self, deadline: Instant) -> Result<HeaderValue, BookingApiError> {
        let token = match tokio::time::timeout_at(deadline, self.credentials.id_token()).await {
            Err(_) => {
                return Err(BookingApiError::Unavailable(
                    "no ID token within the time budget".into(),
                ));
            }
            Ok(Err(e)) if e.is_transient() => {
                return Err(BookingApiError::Unavailable(format!(
                    "getting an ID token failed: {e}"
                )));
            }
            Ok(Err(e)) => {
                return Err(BookingApiError::Unauthorized(format!(
                    "getting an ID token failed: {e}"
                )));
            }
            Ok(Ok(token)) => token,
        };
        let mut value = HeaderValue::from_str(&format!("Bearer {token}")).map_err(|_| {
            BookingApiError::Unauthorized("the ID token is not a valid header value".into())
        })?;
        value.set_sensitive(true);
        Ok(value)
    }
}

/// True when no connection could be made (nothing was sent; a connect timeout counts) or the
/// connection dropped before an answer; false when the request itself timed out.
fn is_connection_error(e: &reqwest::Error) -> bool {
    e.is_connect() || (e.is_request() && !e.is_timeout())
}

/// Maps the API's answer to a result.
async fn answer(response: reqwest::Response) -> Result<BookingConfirmation, BookingApiError> {
    let status = response.status().as_u16();
    let body = read_capped(response, MAX_RESPONSE_BYTES)
        .await
        .map_err(|e| match e {
            BodyError::Read(_) => BookingApiError::Unavailable(format!(
                "HTTP {status}: the body did not arrive in full"
            )),
            BodyError::TooLarge { .. } => BookingApiError::Protocol(format!("HTTP {status}: {e}")),
        })?;
    match status {
        200 | 201 => {
            let confirmation: BookingConfirmation = serde_json::from_slice(&body)
                .map_err(|e| BookingApiError::Protocol(format!("HTTP {status} body: {e}")))?;
            let valid = |s: &str, max: usize| {
                !s.is_empty() && s.len() <= max && s.chars().all(|c| !c.is_control())
            };
            if !valid(&confirmation.booking_id, 128) || !valid(&confirmation.status, 64) {
                return Err(BookingApiError::Protocol(format!(
                    "HTTP {status} body: booking_id or status is empty, too long or not text"
                )));
            }
            Ok(confirmation)
        }
        409 => {
            let code = serde_json::from_slice::<Conflict>(&body)
                .ok()
                .and_then(|c| c.code);
            match code.as_deref() {
                None | Some("slot_taken") => Err(BookingApiError::SlotTaken),
                Some(other) => Err(BookingApiError::Protocol(format!(
                    "HTTP 409 with code `{}`",
                    clean_text(other, 64)
                ))),
            }
        }
        400 | 422 => {
            let refusal = serde_json::from_slice::<Refusal>(&body).ok();
            let field = refusal
                .as_ref()
                .and_then(|r| r.field.as_deref())
                .map(|f| clean_text(f, 64))
                .filter(|f| !f.is_empty());
            let message = refusal
                .as_ref()
                .and_then(|r| r.message.as_deref())
                .map(|m| clean_text(m, 200))
                .filter(|m| !m.is_empty())
                .unwrap_or_else(|| {
                    format!("the booking service refused the request (HTTP {status})")
                });
            Err(BookingApiError::Rejected { field, message })
        }
        401 | 403 => Err(BookingApiError::Unauthorized(format!("HTTP {status}"))),
        408 | 429 | 500..=599 => Err(BookingApiError::Unavailable(format!("HTTP {status}"))),
        _ => Err(BookingApiError::Protocol(format!(
            "unexpected HTTP {status}"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use jiff::civil::date;

    #[test]
    fn wire_format_uses_iso_date_and_hh_mm() {
        let booking = BookingRequest {
            vehicle_number: "MH12AB1234".into(),
            dealer_id: "D-7".into(),
            service_type: "general_service".into(),
            car_model: None,
            date: date(2031, 3, 4),
            time: crate::domain::SlotTime::new(9, 5).unwrap(),
            session_id: "s-1".into(),
        };
        let json = serde_json::to_value(WireBooking::from(&booking)).unwrap();
        assert_eq!(
            json,
            serde_json::json!({
                "vehicle_number": "MH12AB1234", "dealer_id": "D-7",
                "service_type": "general_service", "car_model": null,
                "date": "2031-03-04", "time": "09:05", "session_id": "s-1"
            })
        );
    }

    #[test]
    fn default_audience_is_the_origin() {
        let url = Url::parse("https://dms-abc-ew.a.run.app/v1/bookings?x=1").unwrap();
        assert_eq!(default_audience(&url), "https://dms-abc-ew.a.run.app");
        let url = Url::parse("http://127.0.0.1:8081/bookings").unwrap();
        assert_eq!(default_audience(&url), "http://127.0.0.1:8081");
    }
}
