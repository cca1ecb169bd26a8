//! The inbound half of the wire model: `WebhookRequest` as Dialogflow CX sends it.
//!
//! Field names and meanings follow `google/cloud/dialogflow/cx/v3/webhook.proto` (PROTOCOL.md §2.1).
//! The model is deliberately lenient, because proto3 JSON omits default values and Google adds fields
//! over time: every field has a default, unknown fields are ignored, and `Value`/`Struct` payloads stay
//! `serde_json::Value`. It is strict about *types*: a `fulfillmentInfo` that is a string is not a
//! webhook request, and [`WebhookRequest::from_slice`] says so with a [`RequestError`] the server
//! turns into HTTP 400.

use serde::Deserialize;
use serde_json::{Map, Value};

/// A Dialogflow CX `WebhookRequest` (camelCase on the wire).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct WebhookRequest {
    /// Unique id of the detectIntent response this call belongs to; with the tag it identifies a
    /// retried call (Dialogflow retries on timeouts).
    pub detect_intent_response_id: String,
    /// The user's text, when the query was text.
    pub text: Option<String>,
    /// The intent that was triggered directly, when the query was an intent.
    pub trigger_intent: Option<String>,
    /// The speech transcript, when the query was audio.
    pub transcript: Option<String>,
    /// The event name, when the query was an event.
    pub trigger_event: Option<String>,
    /// The DTMF digits, when the query was DTMF.
    pub dtmf_digits: Option<String>,
    /// Language of the query, e.g. `en`.
    pub language_code: Option<String>,
    /// Language detection details.
    pub language_info: Option<LanguageInfo>,
    /// Which fulfillment called the webhook; its `tag` selects the handler.
    pub fulfillment_info: FulfillmentInfo,
    /// The matched intent and its parameters; absent when an event or a page called the webhook.
    pub intent_info: Option<IntentInfo>,
    /// The current page and its form; may be absent.
    pub page_info: Option<PageInfo>,
    /// The session name and its parameters.
    pub session_info: SessionInfo,
    /// Response messages queued so far in this turn (kept as raw JSON).
    pub messages: Vec<Value>,
    /// `QueryParameters.payload` from the detectIntent caller (e.g. telephony caller id).
    pub payload: Option<Map<String, Value>>,
    /// Sentiment of the query, when sentiment analysis is enabled.
    pub sentiment_analysis_result: Option<SentimentAnalysisResult>,
}

/// `WebhookRequest.fulfillmentInfo`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct FulfillmentInfo {
    /// The tag of the fulfillment that called the webhook (may be empty).
    pub tag: String,
}

/// `WebhookRequest.intentInfo`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct IntentInfo {
    /// Full resource name of the matched intent.
    pub last_matched_intent: String,
    /// Display name of the matched intent.
    pub display_name: String,
    /// Parameters the intent extracted, keyed by parameter id.
    pub parameters: Map<String, Value>,
    /// Match confidence, 0..1.
    pub confidence: f64,
}

/// One intent parameter value as CX reports it.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct IntentParameterValue {
    /// What the user said.
    pub original_value: Option<String>,
    /// The entity-resolved value (any JSON).
    pub resolved_value: Option<Value>,
}

/// `WebhookRequest.pageInfo` (also used in responses to invalidate form parameters).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct PageInfo {
    /// Full resource name of the current page.
    pub current_page: String,
    /// Display name of the current page.
    pub display_name: String,
    /// The page's form, when it has one.
    pub form_info: Option<FormInfo>,
}

/// `PageInfo.formInfo`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct FormInfo {
    /// One entry per form parameter.
    pub parameter_info: Vec<ParameterInfo>,
}

/// `FormInfo.parameterInfo[]`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct ParameterInfo {
    /// The parameter's display name.
    pub display_name: String,
    /// Whether the form requires it.
    pub required: bool,
    /// `EMPTY`, `INVALID`, `FILLED` or `PARAMETER_STATE_UNSPECIFIED` (kept as a string so a new
    /// state never breaks parsing).
    pub state: String,
    /// The collected value, if any.
    pub value: Option<Value>,
    /// True when the value was collected by this very turn.
    pub just_collected: bool,
}

/// `WebhookRequest.sessionInfo`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct SessionInfo {
    /// `projects/<P>/locations/<L>/agents/<A>[/environments/<E>]/sessions/<S>`.
    pub session: String,
    /// Session parameters keyed by display name.
    pub parameters: Map<String, Value>,
}

/// `WebhookRequest.languageInfo`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct LanguageInfo {
    /// The language code the query arrived with.
    pub input_language_code: String,
    /// The language code Dialogflow resolved.
    pub resolved_language_code: String,
    /// Confidence of the resolution.
    pub confidence_score: f64,
}

/// `WebhookRequest.sentimentAnalysisResult`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct SentimentAnalysisResult {
    /// -1.0 (negative) .. 1.0 (positive).
    pub score: f64,
    /// Strength of the emotion, >= 0.
    pub magnitude: f64,
}

/// Why a request body is not a webhook request; the server answers 400 with `code` and `message`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct RequestError {
    /// Machine-readable reason: `malformed_json`, `not_an_object` or `invalid_request`.
    pub code: &'static str,
    /// What was wrong, in words a developer can act on.
    pub message: String,
}

impl WebhookRequest {
    /// Parses a request body, telling apart malformed JSON, JSON that is not an object, and an object
    /// whose fields have the wrong types.
    pub fn from_slice(body: &[u8]) -> Result<Self, RequestError> {
        let first = body.iter().copied().find(|b| !b.is_ascii_whitespace());
        match first {
            None => {
                return Err(RequestError {
                    code: "malformed_json",
                    message: "the request body is empty; expected a JSON WebhookRequest object"
                        .into(),
                });
            }
            Some(b'{') => {}
            Some(_) => {
                // Tell "valid JSON but not an object" from "not JSON at all".
                return Err(
                    match serde_json::from_slice::<serde::de::IgnoredAny>(body) {
                        Ok(_) => RequestError {
                            code: "not_an_object",
                            message: "the request body must be a JSON object (a WebhookRequest)"
                                .into(),
                        },
                        Err(e) => malformed(&e),
                    },
                );
            }
        }
        serde_json::from_slice::<WebhookRequest>(body).map_err(|e| match e.classify() {
            serde_json::error::Category::Data => invalid(body, &e),
            _ => malformed(&e),
        })
    }

    /// The session id: the last path segment of `sessionInfo.session` (empty if there is none).
    pub fn session_id(&self) -> &str {
        let session = self.session_info.session.as_str();
        session.rsplit('/').next().unwrap_or(session)
    }

    /// The display name of the matched intent, if an intent matched.
    pub fn intent_display_name(&self) -> Option<&str> {
        self.intent_info
            .as_ref()
            .map(|i| i.display_name.as_str())
            .filter(|n| !n.is_empty())
    }

    /// The form's parameter infos (empty when the page has no form).
    pub fn form_parameters(&self) -> &[ParameterInfo] {
        self.page_info
            .as_ref()
            .and_then(|p| p.form_info.as_ref())
            .map(|f| f.parameter_info.as_slice())
            .unwrap_or(&[])
    }
}

/// Builds the 400 message for a type error. The fast parse above does not track where it is, so on
/// this (rare) path the body is parsed again with `serde_path_to_error` to name the offending field.
fn invalid(body: &[u8], e: &serde_json::Error) -> RequestError {
    let mut de = serde_json::Deserializer::from_slice(body);
    let message = match serde_path_to_error::deserialize::<_, WebhookRequest>(&mut de) {
        Err(traced) if traced.path().to_string() != "." => format!(
            "the body is not a valid WebhookRequest: field `{}`: {}",
            traced.path(),
            traced.inner()
        ),
        _ => format!("the body is not a valid WebhookRequest: {e}"),
    };
    RequestError {
        code: "invalid_request",
        message,
    }
}

fn malformed(e: &serde_json::Error) -> RequestError {
    RequestError {
        code: "malformed_json",
        message: format!("the request body is not valid JSON: {e}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn minimal_object_is_a_request_with_defaults() {
        let r = WebhookRequest::from_slice(b"{}").unwrap();
        assert_eq!(r.fulfillment_info.tag, "");
        assert!(r.intent_info.is_none());
        assert!(r.page_info.is_none());
        assert_eq!(r.session_id(), "");
    }

    #[test]
    fn unknown_fields_are_ignored() {
        let r = WebhookRequest::from_slice(
            br#"{"fulfillmentInfo":{"tag":"t","future":1},"toolCall":{},"languageInfo":{"x":2}}"#,
        )
        .unwrap();
        assert_eq!(r.fulfillment_info.tag, "t");
    }

    #[test]
    fn wrong_types_are_invalid_requests() {
        let e = WebhookRequest::from_slice(br#"{"fulfillmentInfo":"weather"}"#).unwrap_err();
        assert_eq!(e.code, "invalid_request");
        assert!(
            e.message.contains("field `fulfillmentInfo`"),
            "{}",
            e.message
        );
        let e = WebhookRequest::from_slice(br#"{"sessionInfo":{"parameters":[]}}"#).unwrap_err();
        assert!(
            e.message.contains("field `sessionInfo.parameters`"),
            "{}",
            e.message
        );
    }

    #[test]
    fn non_objects_and_garbage_are_told_apart() {
        assert_eq!(
            WebhookRequest::from_slice(b"[1,2]").unwrap_err().code,
            "not_an_object"
        );
        assert_eq!(
            WebhookRequest::from_slice(b"\"x\"").unwrap_err().code,
            "not_an_object"
        );
        assert_eq!(
            WebhookRequest::from_slice(b"{\"a\":").unwrap_err().code,
            "malformed_json"
        );
        assert_eq!(
            WebhookRequest::from_slice(b"nope").unwrap_err().code,
            "malformed_json"
        );
        assert_eq!(
            WebhookRequest::from_slice(b"  ").unwrap_err().code,
            "malformed_json"
        );
    }

    #[test]
    fn session_id_is_last_segment() {
        let r = WebhookRequest::from_slice(
            br#"{"sessionInfo":{"session":"projects/p/locations/l/agents/a/environments/e/sessions/s-1"}}"#,
        )
        .unwrap();
        assert_eq!(r.session_id(), "s-1");
    }
}
