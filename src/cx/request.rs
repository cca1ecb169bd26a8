//! The inbound half of the wire model: `WebhookRequest` as Dialogflow CX sends it.
//!
//! Field names and meanings follow `google/cloud/dialogflow/cx/v3/webhook.proto`
//! (<https://github.com/googleapis/googleapis/blob/master/google/cloud/dialogflow/cx/v3/webhook.proto>).
//! Input is read as the proto3 JSON mapping (<https://protobuf.dev/programming-guides/json/>) allows
//! it to be written, because Google omits default values and adds fields over time:
//! - a missing field, and a field that is JSON `null`, is its default, at every depth;
//! - the lowerCamelCase name and the original proto name (`fulfillmentInfo`, `fulfillment_info`)
//!   are both accepted;
//! - unknown fields are ignored, and `Value`/`Struct` payloads stay `serde_json::Value` (a `null`
//!   inside a `Struct` is a value and stays `Value::Null`).
//!
//! It is strict about *types*: a `fulfillmentInfo` that is a string is not a webhook request, and
//! [`WebhookRequest::from_slice`] says so with a [`RequestError`] the server turns into HTTP 400.

use serde::Deserialize;
use serde_json::{Map, Value};

/// A Dialogflow CX `WebhookRequest` (camelCase on the wire).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct WebhookRequest {
    /// Unique id of the detectIntent response this call belongs to; with the tag it identifies a
    /// retried call (Dialogflow retries on timeouts).
    #[serde(
        alias = "detect_intent_response_id",
        deserialize_with = "null_is_default"
    )]
    pub detect_intent_response_id: String,
    /// The user's text, when the query was text.
    pub text: Option<String>,
    /// The intent that was triggered directly, when the query was an intent.
    #[serde(alias = "trigger_intent")]
    pub trigger_intent: Option<String>,
    /// The speech transcript, when the query was audio.
    pub transcript: Option<String>,
    /// The event name, when the query was an event.
    #[serde(alias = "trigger_event")]
    pub trigger_event: Option<String>,
    /// The DTMF digits, when the query was DTMF.
    #[serde(alias = "dtmf_digits")]
    pub dtmf_digits: Option<String>,
    /// Language of the query, e.g. `en`.
    #[serde(alias = "language_code")]
    pub language_code: Option<String>,
    /// Language detection details.
    #[serde(alias = "language_info")]
    pub language_info: Option<LanguageInfo>,
    /// Which fulfillment called the webhook; its `tag` selects the handler.
    #[serde(alias = "fulfillment_info", deserialize_with = "null_is_default")]
    pub fulfillment_info: FulfillmentInfo,
    /// The matched intent and its parameters; absent when an event or a page called the webhook.
    #[serde(alias = "intent_info")]
    pub intent_info: Option<IntentInfo>,
    /// The current page and its form; may be absent.
    #[serde(alias = "page_info")]
    pub page_info: Option<PageInfo>,
    /// The session name and its parameters.
    #[serde(alias = "session_info", deserialize_with = "null_is_default")]
    pub session_info: SessionInfo,
    /// Response messages queued so far in this turn (kept as raw JSON).
    #[serde(deserialize_with = "null_is_default")]
    pub messages: Vec<Value>,
    /// `QueryParameters.payload` from the detectIntent caller (e.g. telephony caller id).
    pub payload: Option<Map<String, Value>>,
    /// Sentiment of the query, when sentiment analysis is enabled.
    #[serde(alias = "sentiment_analysis_result")]
    pub sentiment_analysis_result: Option<SentimentAnalysisResult>,
}

/// `WebhookRequest.fulfillmentInfo`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct FulfillmentInfo {
    /// The tag of the fulfillment that called the webhook (may be empty).
    #[serde(deserialize_with = "null_is_default")]
    pub tag: String,
}

/// `WebhookRequest.intentInfo`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct IntentInfo {
    /// Full resource name of the matched intent.
    #[serde(alias = "last_matched_intent", deserialize_with = "null_is_default")]
    pub last_matched_intent: String,
    /// Display name of the matched intent.
    #[serde(alias = "display_name", deserialize_with = "null_is_default")]
    pub display_name: String,
    /// Parameters the intent extracted, keyed by parameter id.
    #[serde(deserialize_with = "null_is_default")]
    pub parameters: Map<String, Value>,
    /// Match confidence, 0..1.
    #[serde(deserialize_with = "null_is_default")]
    pub confidence: f64,
}

/// `WebhookRequest.pageInfo` (also used in responses to invalidate form parameters).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct PageInfo {
    /// Full resource name of the current page.
    #[serde(alias = "current_page", deserialize_with = "null_is_default")]
    pub current_page: String,
    /// Display name of the current page.
    #[serde(alias = "display_name", deserialize_with = "null_is_default")]
    pub display_name: String,
    /// The page's form, when it has one.
    #[serde(alias = "form_info")]
    pub form_info: Option<FormInfo>,
}

/// `PageInfo.formInfo`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct FormInfo {
    /// One entry per form parameter.
    #[serde(alias = "parameter_info", deserialize_with = "null_is_default")]
    pub parameter_info: Vec<ParameterInfo>,
}

/// `FormInfo.parameterInfo[]`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct ParameterInfo {
    /// The parameter's display name.
    #[serde(alias = "display_name", deserialize_with = "null_is_default")]
    pub display_name: String,
    /// Whether the form requires it.
    #[serde(deserialize_with = "null_is_default")]
    pub required: bool,
    /// `EMPTY`, `INVALID`, `FILLED` or `PARAMETER_STATE_UNSPECIFIED` (kept as a string so a new
    /// state never breaks parsing).
    #[serde(deserialize_with = "null_is_default")]
    pub state: String,
    /// The collected value, if any.
    pub value: Option<Value>,
    /// True when the value was collected by this very turn.
    #[serde(alias = "just_collected", deserialize_with = "null_is_default")]
    pub just_collected: bool,
}

/// `WebhookRequest.sessionInfo`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct SessionInfo {
    /// `projects/<P>/locations/<L>/agents/<A>[/environments/<E>]/sessions/<S>`.
    #[serde(deserialize_with = "null_is_default")]
    pub session: String,
    /// Session parameters keyed by display name.
    #[serde(deserialize_with = "null_is_default")]
    pub parameters: Map<String, Value>,
}

/// `WebhookRequest.languageInfo`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct LanguageInfo {
    /// The language code the query arrived with.
    #[serde(alias = "input_language_code", deserialize_with = "null_is_default")]
    pub input_language_code: String,
    /// The language code Dialogflow resolved.
    #[serde(alias = "resolved_language_code", deserialize_with = "null_is_default")]
    pub resolved_language_code: String,
    /// Confidence of the resolution.
    #[serde(alias = "confidence_score", deserialize_with = "null_is_default")]
    pub confidence_score: f64,
}

/// `WebhookRequest.sentimentAnalysisResult`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct SentimentAnalysisResult {
    /// -1.0 (negative) .. 1.0 (positive).
    #[serde(deserialize_with = "null_is_default")]
    pub score: f64,
    /// Strength of the emotion, >= 0.
    #[serde(deserialize_with = "null_is_default")]
    pub magnitude: f64,
}

/// Reads a field whose JSON `null` means its default, as in the proto3 JSON mapping (serde's own
/// `default` covers only a missing field). `Option` fields need no help: `null` is `None`.
fn null_is_default<'de, D, T>(deserializer: D) -> Result<T, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de> + Default,
{
    Option::<T>::deserialize(deserializer).map(Option::unwrap_or_default)
}

/// What kind of body was refused; each maps to one wire `code` and one HTTP status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RequestErrorKind {
    /// Not JSON at all (or an empty body).
    MalformedJson,
    /// JSON, but not an object.
    NotAnObject,
    /// An object whose fields have the wrong types.
    InvalidRequest,
}

impl RequestErrorKind {
    /// The machine-readable `error.code` on the wire.
    pub fn code(self) -> &'static str {
        match self {
            RequestErrorKind::MalformedJson => "malformed_json",
            RequestErrorKind::NotAnObject => "not_an_object",
            RequestErrorKind::InvalidRequest => "invalid_request",
        }
    }

    /// The HTTP status the server answers with: the caller sent a body that is not a request.
    pub fn status(self) -> http::StatusCode {
        http::StatusCode::BAD_REQUEST
    }
}

/// Why a request body is not a webhook request; the server answers [`RequestError::status`] with
/// [`RequestError::code`] and `message`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct RequestError {
    /// What kind of problem it is.
    pub kind: RequestErrorKind,
    /// What was wrong, in words a developer can act on.
    pub message: String,
}

impl RequestError {
    fn new(kind: RequestErrorKind, message: impl Into<String>) -> Self {
        RequestError {
            kind,
            message: message.into(),
        }
    }

    /// The machine-readable `error.code` on the wire.
    pub fn code(&self) -> &'static str {
        self.kind.code()
    }

    /// The HTTP status to answer with.
    pub fn status(&self) -> http::StatusCode {
        self.kind.status()
    }
}

impl WebhookRequest {
    /// Parses a request body, telling apart malformed JSON, JSON that is not an object, and an object
    /// whose fields have the wrong types.
    pub fn from_slice(body: &[u8]) -> Result<Self, RequestError> {
        let first = body.iter().copied().find(|b| !b.is_ascii_whitespace());
        match first {
            None => {
                return Err(RequestError::new(
                    RequestErrorKind::MalformedJson,
                    "the request body is empty; expected a JSON WebhookRequest object",
                ));
            }
            Some(b'{') => {}
            Some(_) => {
                // Tell "valid JSON but not an object" from "not JSON at all".
                return Err(
                    match serde_json::from_slice::<serde::de::IgnoredAny>(body) {
                        Ok(_) => RequestError::new(
                            RequestErrorKind::NotAnObject,
                            "the request body must be a JSON object (a WebhookRequest)",
                        ),
                        Err(e) => malformed(&e),
                    },
                );
            }
        }
        // One UTF-8 check of the whole body, then `from_str`, which trusts it: `from_slice` checks
        // every string again on its own (a quarter of the parse, measured with callgrind). A body
        // that is not UTF-8 goes through `from_slice` for its error, which names where it broke.
        let parsed = match std::str::from_utf8(body) {
            Ok(text) => serde_json::from_str::<WebhookRequest>(text),
            Err(_) => serde_json::from_slice::<WebhookRequest>(body),
        };
        parsed.map_err(|e| match e.classify() {
            serde_json::error::Category::Data => invalid(body, &e),
            _ => malformed(&e),
        })
    }

    /// The session id: the last path segment of `sessionInfo.session` (empty if there is none).
    pub fn session_id(&self) -> &str {
        let session = self.session_info.session.as_str();
        // memrchr: this runs on every call (the span's `session`); `rsplit` cost 200 instructions.
        memchr::memrchr(b'/', session.as_bytes()).map_or(session, |slash| &session[slash + 1..])
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
    RequestError::new(RequestErrorKind::InvalidRequest, message)
}

fn malformed(e: &serde_json::Error) -> RequestError {
    RequestError::new(
        RequestErrorKind::MalformedJson,
        format!("the request body is not valid JSON: {e}"),
    )
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
        assert_eq!(e.kind, RequestErrorKind::InvalidRequest);
        assert_eq!((e.code(), e.status().as_u16()), ("invalid_request", 400));
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
            WebhookRequest::from_slice(b"[1,2]").unwrap_err().kind,
            RequestErrorKind::NotAnObject
        );
        assert_eq!(
            WebhookRequest::from_slice(b"\"x\"").unwrap_err().kind,
            RequestErrorKind::NotAnObject
        );
        assert_eq!(
            WebhookRequest::from_slice(b"{\"a\":").unwrap_err().kind,
            RequestErrorKind::MalformedJson
        );
        assert_eq!(
            WebhookRequest::from_slice(b"nope").unwrap_err().kind,
            RequestErrorKind::MalformedJson
        );
        assert_eq!(
            WebhookRequest::from_slice(b"  ").unwrap_err().kind,
            RequestErrorKind::MalformedJson
        );
    }

    #[test]
    fn a_body_that_is_not_utf8_is_malformed_json() {
        let e = WebhookRequest::from_slice(b"{\"text\":\"caf\xe9\"}").unwrap_err();
        assert_eq!(e.kind, RequestErrorKind::MalformedJson);
        assert!(e.message.contains("line 1 column"), "{}", e.message);
        // Multi-byte UTF-8 is text like any other.
        let r = WebhookRequest::from_slice("{\"text\":\"café ₹\"}".as_bytes()).unwrap();
        assert_eq!(r.text.as_deref(), Some("café ₹"));
    }

    #[test]
    fn session_id_is_last_segment() {
        let r = WebhookRequest::from_slice(
            br#"{"sessionInfo":{"session":"projects/p/locations/l/agents/a/environments/e/sessions/s-1"}}"#,
        )
        .unwrap();
        assert_eq!(r.session_id(), "s-1");
        let id = |session: &str| {
            let mut r = WebhookRequest::default();
            r.session_info.session = session.to_owned();
            r.session_id().to_owned()
        };
        assert_eq!(id("s-2"), "s-2", "no slash: the whole name");
        assert_eq!(id("sessions/"), "");
        assert_eq!(id(""), "");
        assert_eq!(id("a/é/ü-1"), "ü-1");
    }

    #[test]
    fn the_kinds_keep_their_wire_codes() {
        for (kind, code) in [
            (RequestErrorKind::MalformedJson, "malformed_json"),
            (RequestErrorKind::NotAnObject, "not_an_object"),
            (RequestErrorKind::InvalidRequest, "invalid_request"),
        ] {
            assert_eq!(kind.code(), code);
            assert_eq!(kind.status(), http::StatusCode::BAD_REQUEST);
        }
    }

    /// A real Dialogflow CX request in the proto3 JSON mapping's other spellings: every field
    /// `null` that can be, the original proto (snake_case) names, and fields this model lacks.
    const PROTO_SPELLING: &[u8] = br#"{
        "detect_intent_response_id": "d-1",
        "language_code": "en",
        "language_info": {"input_language_code": "en-IN", "resolved_language_code": null,
                          "confidence_score": 0.5},
        "fulfillment_info": {"tag": "booking.validate"},
        "intent_info": {"last_matched_intent": "projects/p/locations/l/agents/a/intents/i",
                        "display_name": "booking.create", "parameters": null,
                        "confidence": null, "future_field": [1]},
        "page_info": {"current_page": null, "display_name": "Booking",
                      "form_info": {"parameter_info": [
                          {"display_name": "booking_time", "required": true, "state": "FILLED",
                           "value": {"hours": 10, "minutes": 30}, "just_collected": null},
                          {"display_name": "dealer_id", "required": null, "state": null,
                           "value": null, "just_collected": true}
                      ]}},
        "session_info": {"session": "projects/p/locations/l/agents/a/sessions/s-9",
                         "parameters": {"account_id": "A1001", "note": null}},
        "messages": null,
        "payload": null,
        "sentiment_analysis_result": {"score": null, "magnitude": 0.25},
        "text": null,
        "toolCallResult": {"unknown": true},
        "languageInfoV2": "ignored"
    }"#;

    #[test]
    fn proto_field_names_are_accepted_beside_lower_camel_case() {
        let r = WebhookRequest::from_slice(PROTO_SPELLING).unwrap();
        assert_eq!(r.detect_intent_response_id, "d-1");
        assert_eq!(r.language_code.as_deref(), Some("en"));
        assert_eq!(r.fulfillment_info.tag, "booking.validate");
        assert_eq!(r.intent_display_name(), Some("booking.create"));
        let intent = r.intent_info.as_ref().unwrap();
        assert!(intent.last_matched_intent.ends_with("/intents/i"));
        assert_eq!(r.session_id(), "s-9");
        assert_eq!(r.session_info.parameters["account_id"], "A1001");
        let page = r.page_info.as_ref().unwrap();
        assert_eq!(page.display_name, "Booking");
        let form = r.form_parameters();
        assert_eq!(form.len(), 2);
        assert_eq!(form[0].display_name, "booking_time");
        assert!(form[0].required);
        assert_eq!(form[0].value.as_ref().unwrap()["minutes"], 30);
        assert!(form[1].just_collected);
        let language = r.language_info.as_ref().unwrap();
        assert_eq!(language.input_language_code, "en-IN");
        assert_eq!(language.confidence_score, 0.5);
        assert_eq!(
            r.sentiment_analysis_result.as_ref().unwrap().magnitude,
            0.25
        );
    }

    #[test]
    fn null_means_the_default_at_every_level() {
        let r = WebhookRequest::from_slice(PROTO_SPELLING).unwrap();
        let intent = r.intent_info.as_ref().unwrap();
        assert!(intent.parameters.is_empty());
        assert_eq!(intent.confidence, 0.0);
        assert_eq!(r.page_info.as_ref().unwrap().current_page, "");
        let form = r.form_parameters();
        assert!(!form[0].just_collected);
        assert!(!form[1].required);
        assert_eq!(form[1].state, "");
        assert!(form[1].value.is_none());
        assert_eq!(r.language_info.as_ref().unwrap().resolved_language_code, "");
        assert_eq!(r.sentiment_analysis_result.as_ref().unwrap().score, 0.0);
        assert!(r.messages.is_empty());
        assert!(r.payload.is_none());
        assert!(r.text.is_none());
        // A null *inside* a Struct is a value (NullValue), not a missing field: it stays.
        assert!(r.session_info.parameters["note"].is_null());

        // Every top-level field null at once, in both spellings, is the empty request.
        let all_null = br#"{"detectIntentResponseId": null, "fulfillmentInfo": null,
            "sessionInfo": null, "intentInfo": null, "pageInfo": null, "languageInfo": null,
            "messages": null, "payload": null, "sentimentAnalysisResult": null,
            "triggerIntent": null, "transcript": null, "triggerEvent": null,
            "dtmfDigits": null, "languageCode": null, "text": null}"#;
        let r = WebhookRequest::from_slice(all_null).unwrap();
        assert_eq!(r.fulfillment_info.tag, "");
        assert_eq!(r.session_id(), "");
        assert!(r.intent_info.is_none() && r.page_info.is_none());
        let r = WebhookRequest::from_slice(
            br#"{"fulfillment_info": {"tag": null}, "session_info": {"session": null,
                 "parameters": null}, "page_info": {"form_info": {"parameter_info": null}}}"#,
        )
        .unwrap();
        assert_eq!(r.fulfillment_info.tag, "");
        assert!(r.session_info.parameters.is_empty());
        assert!(r.form_parameters().is_empty());
    }

    #[test]
    fn null_does_not_hide_a_wrong_type() {
        let e = WebhookRequest::from_slice(br#"{"session_info":{"parameters":"x"}}"#).unwrap_err();
        assert_eq!(e.kind, RequestErrorKind::InvalidRequest);
        assert!(e.message.contains("parameters"), "{}", e.message);
    }
}
