//! RFC 9457 problem details: the one error shape of the tool endpoints.
//!
//! A [`Problem`] is served as `application/problem+json` with `type`, `title`, `status`, `detail`
//! and, for bad input, `errors: [{field, message}]` naming each field and what would be right. The
//! `type` is `urn:cx-webhook:problem:<code>`, a stable machine-readable code. Nothing inside (a
//! cause chain, SQL, a backend's message) ever goes into one: internal failures are logged by the
//! caller and answered with a fixed sentence.

use bytes::Bytes;
use http::header::{self, HeaderValue};
use http::{Response, StatusCode};
use http_body_util::Full;
use serde::Serialize;
use serde_json::{Value, json};

use crate::auth::AuthError;

/// The media type of a problem.
pub const PROBLEM_JSON: &str = "application/problem+json";

/// One field that was wrong, and what would be right.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FieldError {
    /// The request body's field name, e.g. `booking_date`.
    pub field: String,
    /// What is wrong and what would be right.
    pub message: String,
}

/// An error answer of a tool endpoint.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Problem {
    /// The machine-readable code, served as `type`: `urn:cx-webhook:problem:<code>`.
    #[serde(rename = "type", serialize_with = "type_uri")]
    pub code: &'static str,
    /// A short summary of the problem type.
    pub title: &'static str,
    /// The HTTP status.
    pub status: u16,
    /// What happened in this call, in a sentence an agent can act on.
    pub detail: String,
    /// The fields that were wrong (bad input only).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<FieldError>,
    /// Headers that go with it (`Retry-After`, `WWW-Authenticate`); boxed, as most problems have none.
    #[serde(skip)]
    pub headers: Option<Box<ProblemHeaders>>,
}

/// Headers a problem answer carries besides its body.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProblemHeaders {
    /// `Retry-After` seconds (503).
    pub retry_after: Option<u64>,
    /// `WWW-Authenticate` challenge (401).
    pub challenge: Option<String>,
}

fn type_uri<S: serde::Serializer>(code: &&'static str, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&format!("urn:cx-webhook:problem:{code}"))
}

impl Problem {
    /// A problem of kind `code` with `status`.
    pub fn new(
        status: StatusCode,
        code: &'static str,
        title: &'static str,
        detail: impl Into<String>,
    ) -> Self {
        Problem {
            code,
            title,
            status: status.as_u16(),
            detail: detail.into(),
            errors: Vec::new(),
            headers: None,
        }
    }

    /// The same problem answered with `Retry-After: secs`.
    pub fn retry_after(mut self, secs: u64) -> Self {
        self.headers.get_or_insert_default().retry_after = Some(secs);
        self
    }

    /// The same problem answered with `WWW-Authenticate: challenge`.
    pub fn challenge(mut self, challenge: String) -> Self {
        self.headers.get_or_insert_default().challenge = Some(challenge);
        self
    }

    /// 400 naming one field.
    pub fn invalid(field: &str, message: impl Into<String>) -> Self {
        Problem::invalid_fields(vec![FieldError {
            field: field.to_owned(),
            message: message.into(),
        }])
    }

    /// 400 naming each bad field; `detail` joins their messages.
    pub fn invalid_fields(errors: Vec<FieldError>) -> Self {
        let names: Vec<&str> = errors.iter().map(|e| e.field.as_str()).collect();
        let detail = match errors.as_slice() {
            [one] => one.message.clone(),
            _ => format!("These fields need another value: {}.", names.join(", ")),
        };
        Problem::new(
            StatusCode::BAD_REQUEST,
            "invalid_input",
            "Invalid input",
            detail,
        )
        .with_errors(errors)
    }

    /// The same problem listing `errors`.
    pub fn with_errors(mut self, errors: Vec<FieldError>) -> Self {
        self.errors = errors;
        self
    }

    /// 503: a backend (store, booking system, weather provider) cannot answer now.
    pub fn unavailable(detail: impl Into<String>) -> Self {
        Problem::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "backend_unavailable",
            "Service temporarily unavailable",
            detail,
        )
        .retry_after(5)
    }

    /// 500 with nothing of the cause (the caller logs it).
    pub fn internal() -> Self {
        Problem::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal_error",
            "Internal error",
            "Something went wrong on our side. Please try again later.",
        )
    }

    /// 401: the account tools need the end user's verified ID token.
    pub fn end_user_required() -> Self {
        Problem::new(
            StatusCode::UNAUTHORIZED,
            "end_user_token_required",
            "End-user ID token required",
            "This tool reads account data, which needs the signed-in end user's ID token in \
             `Authorization: Bearer` (configure the tool's bearer token as the session parameter \
             that holds it).",
        )
        .challenge(
            "Bearer realm=\"cx-webhook\", error=\"invalid_token\", \
             error_description=\"end-user ID token required\""
                .into(),
        )
    }

    /// The response: `application/problem+json`, never cached.
    pub fn into_response(self) -> Response<Full<Bytes>> {
        let status = StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let body = serde_json::to_vec(&self).unwrap_or_default();
        let mut response = crate::body::json_answer(status, PROBLEM_JSON, body);
        let headers = response.headers_mut();
        let extra = self.headers.map(|h| *h).unwrap_or_default();
        if let Some(secs) = extra.retry_after {
            headers.insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        if let Some(v) = extra
            .challenge
            .as_deref()
            .and_then(|c| HeaderValue::from_str(c).ok())
        {
            headers.insert(header::WWW_AUTHENTICATE, v);
        }
        response
    }
}

impl From<AuthError> for Problem {
    /// The webhook's refusal (401/403/503) as a problem with the same code and sentence.
    fn from(e: AuthError) -> Self {
        let failure = e.failure;
        let status = failure.status();
        let title = match status {
            StatusCode::UNAUTHORIZED => "Unauthenticated",
            StatusCode::FORBIDDEN => "Forbidden",
            _ => "Cannot authenticate now",
        };
        let mut problem = Problem::new(status, failure.code(), title, failure.to_string());
        if let Some(secs) = failure.retry_after() {
            problem = problem.retry_after(secs);
        }
        if status == StatusCode::UNAUTHORIZED {
            problem = problem.challenge(failure.challenge());
        }
        problem
    }
}

/// The JSON schema of a [`Problem`] (OpenAPI 3.0), for the published document.
pub fn schema() -> Value {
    json!({
        "type": "object",
        "description": "An RFC 9457 problem detail.",
        "required": ["type", "title", "status", "detail"],
        "properties": {
            "type": {"type": "string", "description": "urn:cx-webhook:problem:<code>, a stable code.",
                     "example": "urn:cx-webhook:problem:invalid_input"},
            "title": {"type": "string", "example": "Invalid input"},
            "status": {"type": "integer", "example": 400},
            "detail": {"type": "string", "description": "What happened, in a sentence to act on."},
            "errors": {
                "type": "array",
                "description": "Each field that needs another value.",
                "items": {
                    "type": "object",
                    "required": ["field", "message"],
                    "properties": {
                        "field": {"type": "string", "example": "booking_date"},
                        "message": {"type": "string"}
                    }
                }
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn problems_serialise_per_rfc_9457() {
        let p = Problem::invalid("location", "I need a city or PIN code.");
        let v = serde_json::to_value(&p).unwrap();
        assert_eq!(v["type"], "urn:cx-webhook:problem:invalid_input");
        assert_eq!(v["status"], 400);
        assert_eq!(v["detail"], "I need a city or PIN code.");
        assert_eq!(v["errors"][0]["field"], "location");
        assert_eq!(p.code, "invalid_input");
        let v = serde_json::to_value(Problem::internal()).unwrap();
        assert!(v.get("errors").is_none());
        let r = Problem::unavailable("down").into_response();
        assert_eq!(r.headers()[header::CONTENT_TYPE], PROBLEM_JSON);
        assert_eq!(r.headers()[header::RETRY_AFTER], "5");
    }
}
