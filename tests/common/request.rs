//! [`CxRequest`]: the one way the tests build a Dialogflow CX `WebhookRequest`. Start from a tag (a
//! minimal request as CX sends one: response id, language, session and tag) or from a real CX sample
//! in `tests/fixtures`, set what the test is about, and post it with `TestApp::post` (or take the
//! bytes with [`CxRequest::build`]):
//!
//! ```ignore
//! let a = app.post(CxRequest::tag("account.balance").param("account_id", "A1001")).await;
//! ```

use serde_json::{Map, Value, json};

/// The session path of the fixtures, up to the session id.
pub const SESSION_PREFIX: &str = "projects/carconnect-demo/locations/global/agents/7f3c2a1e-5b8d-4c1e-9a60-2d4b8e9f1c07/sessions/";
/// The fixtures' session id, and a built request's unless [`CxRequest::session`] says otherwise.
pub const SESSION: &str = "s-4f9e2b";
/// The fixtures' `detectIntentResponseId`, and a built request's unless
/// [`CxRequest::response_id`] says otherwise.
pub const RESPONSE_ID: &str = "0a1b2c3d-0000-4000-8000-000000000001";

/// A `WebhookRequest` under construction (JSON, so a test can also send what no typed request holds).
#[derive(Clone, Debug)]
#[must_use]
pub struct CxRequest(Value);

impl CxRequest {
    /// A request for `tag` with no parameters, in session [`SESSION`].
    pub fn tag(tag: &str) -> Self {
        CxRequest(json!({
            "detectIntentResponseId": RESPONSE_ID,
            "languageCode": "en",
            "sessionInfo": {"session": format!("{SESSION_PREFIX}{SESSION}"), "parameters": {}},
            "fulfillmentInfo": {"tag": tag},
        }))
    }

    /// A real CX sample from `tests/fixtures` as the base.
    pub fn fixture(name: &str) -> Self {
        let v: Value = serde_json::from_slice(&super::fixture(name))
            .unwrap_or_else(|e| panic!("fixture {name}: {e}"));
        CxRequest(v)
    }

    /// Replaces the tag (`""` routes by the intent's display name).
    pub fn with_tag(mut self, tag: &str) -> Self {
        self.0["fulfillmentInfo"]["tag"] = json!(tag);
        self
    }

    /// Sets one session parameter.
    pub fn param(mut self, name: &str, value: impl Into<Value>) -> Self {
        self.session_parameters().insert(name.into(), value.into());
        self
    }

    /// Replaces all session parameters with `params` (a JSON object).
    pub fn params(mut self, params: Value) -> Self {
        assert!(
            params.is_object(),
            "session parameters are an object: {params}"
        );
        self.0["sessionInfo"]["parameters"] = params;
        self
    }

    /// Removes one session parameter.
    pub fn without_param(mut self, name: &str) -> Self {
        self.session_parameters().remove(name);
        self
    }

    /// Sets the matched intent's display name (keeping its parameters).
    pub fn intent(mut self, display_name: &str) -> Self {
        self.0["intentInfo"]["displayName"] = json!(display_name);
        self
    }

    /// Sets one intent parameter as CX sends it: `originalValue` (the words) and `resolvedValue`.
    pub fn intent_param(mut self, name: &str, value: impl Into<Value>) -> Self {
        let value = value.into();
        let original = value
            .as_str()
            .map_or_else(|| value.to_string(), str::to_owned);
        self.0["intentInfo"]["parameters"][name] =
            json!({"originalValue": original, "resolvedValue": value});
        self
    }

    /// Removes every intent parameter (keeping the intent).
    pub fn without_intent_params(mut self) -> Self {
        self.0["intentInfo"]["parameters"] = json!({});
        self
    }

    /// Removes `intentInfo` (as when an event or a page, not an intent, called the webhook).
    pub fn without_intent(mut self) -> Self {
        self.object().remove("intentInfo");
        self
    }

    /// A page form holding `values` (a JSON object), each required and FILLED, mirrored as the
    /// session parameters (replacing them), as CX sends a form being filled.
    pub fn filled_form(mut self, values: Value) -> Self {
        let infos: Vec<Value> = values
            .as_object()
            .expect("form values are an object")
            .iter()
            .map(
                |(k, v)| json!({"displayName": k, "required": true, "state": "FILLED", "value": v}),
            )
            .collect();
        self.0["pageInfo"]["formInfo"]["parameterInfo"] = Value::Array(infos);
        self.params(values)
    }

    /// The session id (the last segment of the session path).
    pub fn session(mut self, id: &str) -> Self {
        self.0["sessionInfo"]["session"] = json!(format!("{SESSION_PREFIX}{id}"));
        self
    }

    /// The `detectIntentResponseId` (with the tag, what identifies a retried call).
    pub fn response_id(mut self, id: &str) -> Self {
        self.0["detectIntentResponseId"] = json!(id);
        self
    }

    /// Replaces the detectIntent caller's `payload` (a JSON object).
    pub fn payload(mut self, payload: Value) -> Self {
        assert!(payload.is_object(), "the payload is an object: {payload}");
        self.0["payload"] = payload;
        self
    }

    /// The end user's ID token in the payload, where the chat page puts it (`userIdToken`).
    pub fn user_token(mut self, token: &str) -> Self {
        self.0["payload"]["userIdToken"] = json!(token);
        self
    }

    /// The caller's number in the payload, as CX telephony sends it (`telephony.caller_id`).
    pub fn caller_id(mut self, number: &str) -> Self {
        self.0["payload"]["telephony"]["caller_id"] = json!(number);
        self
    }

    /// The request as JSON.
    pub fn json(self) -> Value {
        self.0
    }

    /// The request body.
    pub fn build(&self) -> Vec<u8> {
        serde_json::to_vec(&self.0).unwrap()
    }

    fn object(&mut self) -> &mut Map<String, Value> {
        self.0.as_object_mut().expect("a request is a JSON object")
    }

    fn session_parameters(&mut self) -> &mut Map<String, Value> {
        let params = &mut self.0["sessionInfo"]["parameters"];
        if !params.is_object() {
            *params = json!({});
        }
        params.as_object_mut().unwrap()
    }
}
