//! The outbound half of the wire model: `WebhookResponse` and a builder that keeps it correct.
//!
//! What the types enforce (the `WebhookResponse` reference,
//! <https://cloud.google.com/dialogflow/cx/docs/reference/rest/v3/WebhookResponse>, and the webhook
//! guide, <https://cloud.google.com/dialogflow/cx/docs/concept/webhook>):
//! - a transition is one [`Transition`] value, so `targetPage` and `targetFlow` can never both be set,
//!   and both carry full resource names checked at construction;
//! - deleting a session parameter puts JSON `null` on the wire (omitting it would keep the value);
//! - form invalidation writes `state: INVALID` with the parameter's display name (the only state CX
//!   honours) and clears the session value, as Google's own sample does;
//! - Dialogflow Messenger rich content goes into `fulfillmentResponse.messages[].payload.richContent`
//!   (see [`super::rich`]), never into the top-level `payload`, which CX does not render;
//! - [`WebhookResponse::to_bounded_json`] keeps the encoded answer within CX's 64 KiB limit.
//!
//! Responses also deserialize (for the `send` tool and for tests), and deserializing checks the
//! transition oneof too.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::json;
use super::rich::RichContent;

/// CX rejects webhook responses larger than this (64 KiB).
pub const MAX_RESPONSE_BYTES: usize = 64 * 1024;

/// A Dialogflow CX `WebhookResponse`. Build it with the chained methods; every field is optional.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", try_from = "RawResponse")]
pub struct WebhookResponse {
    #[serde(skip_serializing_if = "Option::is_none")]
    fulfillment_response: Option<FulfillmentResponse>,
    #[serde(skip_serializing_if = "Option::is_none")]
    page_info: Option<ResponsePageInfo>,
    #[serde(skip_serializing_if = "Option::is_none")]
    session_info: Option<ResponseSessionInfo>,
    #[serde(skip_serializing_if = "Option::is_none")]
    payload: Option<Map<String, Value>>,
    #[serde(flatten, skip_serializing_if = "Option::is_none")]
    transition: Option<Transition>,
}

/// `WebhookResponse.fulfillmentResponse`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FulfillmentResponse {
    /// Messages to send to the user, in order.
    #[serde(default)]
    pub messages: Vec<ResponseMessage>,
    /// Whether these messages are appended to or replace the ones already queued.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub merge_behavior: Option<MergeBehavior>,
}

/// `FulfillmentResponse.mergeBehavior`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum MergeBehavior {
    /// Same as `APPEND`.
    MergeBehaviorUnspecified,
    /// Append to the messages queued so far.
    Append,
    /// Replace the messages queued so far.
    Replace,
}

/// One `ResponseMessage`: exactly one kind, optionally for one channel only.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ResponseMessage {
    /// The message itself (the proto's `message` oneof).
    #[serde(flatten)]
    pub kind: MessageKind,
    /// Only sent to requests made with the same `QueryParameters.channel`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub channel: Option<String>,
}

/// The `ResponseMessage.message` oneof, limited to the kinds a webhook may send.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum MessageKind {
    /// Text; with several variants CX picks one at run time.
    Text(Text),
    /// A custom payload: Dialogflow Messenger's `richContent` lives here.
    Payload(Map<String, Value>),
    /// Marks the conversation as successful (for analytics and integrations).
    ConversationSuccess(Metadata),
    /// Text or SSML for speech synthesis.
    OutputAudioText(OutputAudioText),
    /// Hands the conversation to a human agent.
    LiveAgentHandoff(Metadata),
    /// Plays an audio file (telephony).
    PlayAudio(PlayAudio),
    /// Transfers the call to a phone number (telephony).
    TelephonyTransferCall(TelephonyTransferCall),
}

/// `ResponseMessage.text`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Text {
    /// The variants; at least one.
    pub text: Vec<String>,
}

/// Free-form metadata of `conversationSuccess` and `liveAgentHandoff`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Metadata {
    /// Anything the integration understands.
    #[serde(default, skip_serializing_if = "Map::is_empty")]
    pub metadata: Map<String, Value>,
}

/// `ResponseMessage.outputAudioText`: its `source` oneof is either plain text or SSML.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum OutputAudioText {
    /// Plain text to synthesize.
    Text(String),
    /// SSML to synthesize.
    Ssml(String),
}

/// `ResponseMessage.playAudio`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PlayAudio {
    /// URI of the audio clip.
    pub audio_uri: String,
}

/// `ResponseMessage.telephonyTransferCall`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TelephonyTransferCall {
    /// E.164 number, e.g. `+14155550100`.
    pub phone_number: String,
}

/// `WebhookResponse.pageInfo`: only form-parameter state can be changed.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ResponsePageInfo {
    /// The form.
    pub form_info: ResponseFormInfo,
}

/// `PageInfo.formInfo` in a response.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ResponseFormInfo {
    /// One entry per parameter whose state the webhook changes.
    pub parameter_info: Vec<ResponseParameterInfo>,
}

/// A form parameter the webhook marks invalid. CX honours only `INVALID`, so that is the only state
/// this type can express.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ResponseParameterInfo {
    /// The parameter's display name (required by CX).
    pub display_name: String,
    /// Always [`ParameterState::Invalid`].
    pub state: ParameterState,
}

/// The one parameter state a webhook can usefully send.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ParameterState {
    /// Fires `sys.invalid-parameter` and re-prompts for the parameter.
    Invalid,
}

/// `WebhookResponse.sessionInfo`: parameters to set, or (as `null`) to delete.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ResponseSessionInfo {
    /// Display name -> new value; `Value::Null` deletes the parameter.
    pub parameters: BTreeMap<String, Value>,
}

/// The response's transition: a page in the current flow or another flow, never both.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Transition {
    /// `targetPage`: `projects/<P>/locations/<L>/agents/<A>/flows/<F>/pages/<PG>`.
    TargetPage(String),
    /// `targetFlow`: `projects/<P>/locations/<L>/agents/<A>/flows/<F>`.
    TargetFlow(String),
}

/// A transition target that is not a full resource name of the right kind.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{name}` is not a full {kind} resource name ({expected})")]
pub struct InvalidTarget {
    name: String,
    kind: &'static str,
    expected: &'static str,
}

const FLOW_SHAPE: &[&str] = &["projects", "locations", "agents", "flows"];

fn has_shape(name: &str, shape: &[&str]) -> bool {
    let parts: Vec<&str> = name.split('/').collect();
    parts.len() == shape.len() * 2
        && parts
            .chunks(2)
            .zip(shape)
            .all(|(pair, key)| pair[0] == *key && !pair[1].is_empty())
}

impl Transition {
    /// A transition to a page, given its full resource name (special pages such as `END_SESSION`
    /// are page ids too: `.../flows/<F>/pages/END_SESSION`).
    pub fn page(name: impl Into<String>) -> Result<Self, InvalidTarget> {
        Self::checked(
            name.into(),
            &[FLOW_SHAPE, &["pages"]].concat(),
            Transition::TargetPage,
            "page",
            "projects/<P>/locations/<L>/agents/<A>/flows/<F>/pages/<PAGE>",
        )
    }

    /// A transition to a flow, given its full resource name.
    pub fn flow(name: impl Into<String>) -> Result<Self, InvalidTarget> {
        Self::checked(
            name.into(),
            FLOW_SHAPE,
            Transition::TargetFlow,
            "flow",
            "projects/<P>/locations/<L>/agents/<A>/flows/<F>",
        )
    }

    /// `make(name)` when `name` has `shape`; else the error naming the `kind` and its `expected` form.
    fn checked(
        name: String,
        shape: &[&str],
        make: fn(String) -> Self,
        kind: &'static str,
        expected: &'static str,
    ) -> Result<Self, InvalidTarget> {
        if has_shape(&name, shape) {
            Ok(make(name))
        } else {
            Err(InvalidTarget {
                name,
                kind,
                expected,
            })
        }
    }

    /// A transition to page `page_id` of the flow that `current_page` (a full page name, as in
    /// `pageInfo.currentPage`) belongs to.
    pub fn page_in_same_flow(current_page: &str, page_id: &str) -> Result<Self, InvalidTarget> {
        let flow = current_page.rsplitn(3, '/').nth(2).unwrap_or_default();
        Self::page(format!("{flow}/pages/{page_id}"))
    }
}

/// The deserialization shape, checked into a [`WebhookResponse`] (the oneof must hold).
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawResponse {
    #[serde(default, alias = "fulfillment_response")]
    fulfillment_response: Option<FulfillmentResponse>,
    #[serde(default, alias = "page_info")]
    page_info: Option<ResponsePageInfo>,
    #[serde(default, alias = "session_info")]
    session_info: Option<ResponseSessionInfo>,
    #[serde(default)]
    payload: Option<Map<String, Value>>,
    #[serde(default, alias = "target_page")]
    target_page: Option<String>,
    #[serde(default, alias = "target_flow")]
    target_flow: Option<String>,
}

impl TryFrom<RawResponse> for WebhookResponse {
    type Error = String;

    fn try_from(raw: RawResponse) -> Result<Self, String> {
        let transition = match (raw.target_page, raw.target_flow) {
            (Some(_), Some(_)) => return Err("targetPage and targetFlow are a oneof".into()),
            (Some(p), None) => Some(Transition::TargetPage(p)),
            (None, Some(f)) => Some(Transition::TargetFlow(f)),
            (None, None) => None,
        };
        Ok(WebhookResponse {
            fulfillment_response: raw.fulfillment_response,
            page_info: raw.page_info,
            session_info: raw.session_info,
            payload: raw.payload,
            transition,
        })
    }
}

impl ResponseMessage {
    /// A text message with one variant.
    pub fn text(text: impl Into<String>) -> Self {
        MessageKind::Text(Text {
            text: vec![text.into()],
        })
        .into()
    }

    /// Restricts this message to one channel.
    pub fn on_channel(mut self, channel: impl Into<String>) -> Self {
        self.channel = Some(channel.into());
        self
    }

    /// The text variants, when this is a text message.
    pub fn as_text(&self) -> Option<&[String]> {
        match &self.kind {
            MessageKind::Text(t) => Some(&t.text),
            _ => None,
        }
    }
}

impl From<MessageKind> for ResponseMessage {
    fn from(kind: MessageKind) -> Self {
        ResponseMessage {
            kind,
            channel: None,
        }
    }
}

impl WebhookResponse {
    /// An empty response (valid: CX proceeds as if the webhook said nothing).
    pub fn new() -> Self {
        Self::default()
    }

    /// Appends any message.
    pub fn message(mut self, message: impl Into<ResponseMessage>) -> Self {
        self.fulfillment_response
            .get_or_insert_with(Default::default)
            .messages
            .push(message.into());
        self
    }

    /// Appends a text message with one variant.
    pub fn text(self, text: impl Into<String>) -> Self {
        self.message(ResponseMessage::text(text))
    }

    /// Appends one text message with several variants; CX picks one at run time.
    pub fn text_variants<I, S>(self, variants: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        let text: Vec<String> = variants.into_iter().map(Into::into).collect();
        if text.is_empty() {
            return self;
        }
        self.message(MessageKind::Text(Text { text }))
    }

    /// Appends Dialogflow Messenger rich content (one payload message holding all its cards).
    pub fn rich_content(self, content: RichContent) -> Self {
        if content.is_empty() {
            return self;
        }
        self.message(MessageKind::Payload(content.into_payload()))
    }

    /// Appends a custom channel payload message (rendered by the integration that understands it).
    pub fn custom_payload(self, payload: Map<String, Value>) -> Self {
        self.message(MessageKind::Payload(payload))
    }

    /// Appends a `conversationSuccess` message.
    pub fn conversation_success(self, metadata: Map<String, Value>) -> Self {
        self.message(MessageKind::ConversationSuccess(Metadata { metadata }))
    }

    /// Appends a `liveAgentHandoff` message.
    pub fn live_agent_handoff(self, metadata: Map<String, Value>) -> Self {
        self.message(MessageKind::LiveAgentHandoff(Metadata { metadata }))
    }

    /// Appends an `outputAudioText` message (text or SSML).
    pub fn output_audio(self, audio: OutputAudioText) -> Self {
        self.message(MessageKind::OutputAudioText(audio))
    }

    /// Appends a `playAudio` message.
    pub fn play_audio(self, audio_uri: impl Into<String>) -> Self {
        self.message(MessageKind::PlayAudio(PlayAudio {
            audio_uri: audio_uri.into(),
        }))
    }

    /// Appends a `telephonyTransferCall` message.
    pub fn telephony_transfer_call(self, phone_number: impl Into<String>) -> Self {
        self.message(MessageKind::TelephonyTransferCall(TelephonyTransferCall {
            phone_number: phone_number.into(),
        }))
    }

    /// Sets how these messages combine with the ones already queued.
    pub fn merge_behavior(mut self, merge: MergeBehavior) -> Self {
        self.fulfillment_response
            .get_or_insert_with(Default::default)
            .merge_behavior = Some(merge);
        self
    }

    /// Sets a session parameter.
    pub fn set_param(mut self, name: impl Into<String>, value: impl Into<Value>) -> Self {
        self.params_mut().insert(name.into(), value.into());
        self
    }

    /// Deletes a session parameter (JSON `null` on the wire).
    pub fn delete_param(self, name: impl Into<String>) -> Self {
        self.set_param(name, Value::Null)
    }

    /// Marks a form parameter invalid (CX re-prompts for it) and clears its session value.
    pub fn invalidate_form_param(mut self, display_name: impl Into<String>) -> Self {
        let display_name = display_name.into();
        let infos = &mut self
            .page_info
            .get_or_insert_with(Default::default)
            .form_info
            .parameter_info;
        if !infos.iter().any(|p| p.display_name == display_name) {
            infos.push(ResponseParameterInfo {
                display_name: display_name.clone(),
                state: ParameterState::Invalid,
            });
        }
        self.delete_param(display_name)
    }

    /// Sets the transition, replacing any earlier one (there is at most one).
    pub fn transition(mut self, transition: Transition) -> Self {
        self.transition = Some(transition);
        self
    }

    /// Sets the top-level payload (returned to API callers in `webhookPayloads`; not shown to users).
    pub fn payload(mut self, payload: Map<String, Value>) -> Self {
        self.payload = Some(payload);
        self
    }

    fn params_mut(&mut self) -> &mut BTreeMap<String, Value> {
        &mut self
            .session_info
            .get_or_insert_with(Default::default)
            .parameters
    }

    /// The messages, in order.
    pub fn messages(&self) -> &[ResponseMessage] {
        self.fulfillment_response
            .as_ref()
            .map(|f| f.messages.as_slice())
            .unwrap_or(&[])
    }

    /// All text variants of all text messages, in order (handy in logs and tests).
    pub fn texts(&self) -> Vec<&str> {
        self.messages()
            .iter()
            .filter_map(ResponseMessage::as_text)
            .flatten()
            .map(String::as_str)
            .collect()
    }

    /// The session parameters this response sets or deletes.
    pub fn session_params(&self) -> Option<&BTreeMap<String, Value>> {
        self.session_info.as_ref().map(|s| &s.parameters)
    }

    /// The transition, if any.
    pub fn target(&self) -> Option<&Transition> {
        self.transition.as_ref()
    }

    /// Encodes the response as JSON within [`MAX_RESPONSE_BYTES`] (`limit`).
    ///
    /// An answer that is too large first loses its payload messages (rich content) and top-level
    /// payload; if it is still too large it is replaced by `fallback_text` alone. The returned
    /// [`Trim`] says what happened so the caller can log it.
    pub fn to_bounded_json(&self, limit: usize, fallback_text: &str) -> (Vec<u8>, Trim) {
        let full = encode(self);
        if full.len() <= limit {
            return (full, Trim::None);
        }
        let mut lean = self.clone();
        lean.payload = None;
        if let Some(f) = lean.fulfillment_response.as_mut() {
            f.messages
                .retain(|m| !matches!(m.kind, MessageKind::Payload(_)));
        }
        let lean_json = encode(&lean);
        if lean_json.len() <= limit {
            return (
                lean_json,
                Trim::DroppedPayloads {
                    original_bytes: full.len(),
                },
            );
        }
        let fallback = encode(&WebhookResponse::new().text(fallback_text));
        (
            fallback,
            Trim::ReplacedByFallback {
                original_bytes: full.len(),
            },
        )
    }
}

/// The answer as JSON: by hand (see [`super::json`]), byte for byte what the derived `Serialize`
/// writes; the tests hold the two equal for every kind of message and field.
fn encode(response: &WebhookResponse) -> Vec<u8> {
    let mut out = Vec::with_capacity(512);
    write_response(&mut out, response);
    out
}

fn write_response(out: &mut Vec<u8>, r: &WebhookResponse) {
    use json::{push_key, push_list, push_map, push_str, push_value};
    let mut first = true;
    let mut field = |out: &mut Vec<u8>, key: &str| {
        out.push(if std::mem::take(&mut first) {
            b'{'
        } else {
            b','
        });
        push_key(out, key);
    };
    if let Some(f) = &r.fulfillment_response {
        field(out, "fulfillmentResponse");
        out.push(b'{');
        push_key(out, "messages");
        push_list(out, &f.messages, write_message);
        if let Some(merge) = f.merge_behavior {
            out.push(b',');
            push_key(out, "mergeBehavior");
            push_str(
                out,
                match merge {
                    MergeBehavior::MergeBehaviorUnspecified => "MERGE_BEHAVIOR_UNSPECIFIED",
                    MergeBehavior::Append => "APPEND",
                    MergeBehavior::Replace => "REPLACE",
                },
            );
        }
        out.push(b'}');
    }
    if let Some(page) = &r.page_info {
        field(out, "pageInfo");
        out.extend_from_slice(br#"{"formInfo":{"parameterInfo":"#);
        push_list(out, &page.form_info.parameter_info, |out, p| {
            out.extend_from_slice(br#"{"displayName":"#);
            push_str(out, &p.display_name);
            let ParameterState::Invalid = p.state;
            out.extend_from_slice(br#","state":"INVALID"}"#);
        });
        out.extend_from_slice(b"}}");
    }
    if let Some(session) = &r.session_info {
        field(out, "sessionInfo");
        out.extend_from_slice(br#"{"parameters":"#);
        push_map(out, &session.parameters, push_value);
        out.push(b'}');
    }
    if let Some(payload) = &r.payload {
        field(out, "payload");
        push_map(out, payload, push_value);
    }
    match &r.transition {
        Some(Transition::TargetPage(page)) => {
            field(out, "targetPage");
            push_str(out, page);
        }
        Some(Transition::TargetFlow(flow)) => {
            field(out, "targetFlow");
            push_str(out, flow);
        }
        None => {}
    }
    if first {
        out.push(b'{');
    }
    out.push(b'}');
}

fn write_message(out: &mut Vec<u8>, m: &ResponseMessage) {
    use json::{push_key, push_list, push_map, push_str, push_value};
    let metadata = |out: &mut Vec<u8>, m: &Metadata| {
        out.push(b'{');
        if !m.metadata.is_empty() {
            push_key(out, "metadata");
            push_map(out, &m.metadata, push_value);
        }
        out.push(b'}');
    };
    out.push(b'{');
    match &m.kind {
        MessageKind::Text(t) => {
            out.extend_from_slice(br#""text":{"text":"#);
            push_list(out, &t.text, |out, s| push_str(out, s));
            out.push(b'}');
        }
        MessageKind::Payload(p) => {
            push_key(out, "payload");
            push_map(out, p, push_value);
        }
        MessageKind::ConversationSuccess(m) => {
            push_key(out, "conversationSuccess");
            metadata(out, m);
        }
        MessageKind::OutputAudioText(a) => {
            out.extend_from_slice(br#""outputAudioText":{"#);
            let (key, text) = match a {
                OutputAudioText::Text(t) => ("text", t),
                OutputAudioText::Ssml(t) => ("ssml", t),
            };
            push_key(out, key);
            push_str(out, text);
            out.push(b'}');
        }
        MessageKind::LiveAgentHandoff(m) => {
            push_key(out, "liveAgentHandoff");
            metadata(out, m);
        }
        MessageKind::PlayAudio(p) => {
            out.extend_from_slice(br#""playAudio":{"audioUri":"#);
            push_str(out, &p.audio_uri);
            out.push(b'}');
        }
        MessageKind::TelephonyTransferCall(t) => {
            out.extend_from_slice(br#""telephonyTransferCall":{"phoneNumber":"#);
            push_str(out, &t.phone_number);
            out.push(b'}');
        }
    }
    if let Some(channel) = &m.channel {
        out.push(b',');
        push_key(out, "channel");
        push_str(out, channel);
    }
    out.push(b'}');
}

/// What [`WebhookResponse::to_bounded_json`] had to do to stay within the limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Trim {
    /// Nothing: the answer fit.
    None,
    /// Payload messages and the top-level payload were dropped.
    DroppedPayloads {
        /// Size of the untrimmed answer.
        original_bytes: usize,
    },
    /// The whole answer was replaced by the fallback text.
    ReplacedByFallback {
        /// Size of the untrimmed answer.
        original_bytes: usize,
    },
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cx::rich::{Anchor, Chip, Info, RichElement};
    use serde_json::json;

    fn to_json(r: &WebhookResponse) -> Value {
        serde_json::to_value(r).unwrap()
    }

    #[test]
    fn empty_response_is_an_empty_object() {
        assert_eq!(to_json(&WebhookResponse::new()), json!({}));
    }

    #[test]
    fn text_messages_golden() {
        let r = WebhookResponse::new()
            .text("Hello")
            .text_variants(["Hi", "Hey"])
            .merge_behavior(MergeBehavior::Replace);
        assert_eq!(
            to_json(&r),
            json!({"fulfillmentResponse": {
                "messages": [{"text": {"text": ["Hello"]}}, {"text": {"text": ["Hi", "Hey"]}}],
                "mergeBehavior": "REPLACE"
            }})
        );
    }

    #[test]
    fn every_message_kind_golden() {
        let meta: Map<String, Value> = json!({"reason": "done"}).as_object().unwrap().clone();
        let r = WebhookResponse::new()
            .conversation_success(meta.clone())
            .live_agent_handoff(meta)
            .output_audio(OutputAudioText::Ssml("<speak>Hi</speak>".into()))
            .output_audio(OutputAudioText::Text("Hi".into()))
            .play_audio("gs://b/a.wav")
            .telephony_transfer_call("+14155550100")
            .message(ResponseMessage::text("web only").on_channel("DF_MESSENGER"))
            .custom_payload(json!({"line": {"sticker": 7}}).as_object().unwrap().clone());
        assert_eq!(
            to_json(&r)["fulfillmentResponse"]["messages"],
            json!([
                {"conversationSuccess": {"metadata": {"reason": "done"}}},
                {"liveAgentHandoff": {"metadata": {"reason": "done"}}},
                {"outputAudioText": {"ssml": "<speak>Hi</speak>"}},
                {"outputAudioText": {"text": "Hi"}},
                {"playAudio": {"audioUri": "gs://b/a.wav"}},
                {"telephonyTransferCall": {"phoneNumber": "+14155550100"}},
                {"text": {"text": ["web only"]}, "channel": "DF_MESSENGER"},
                {"payload": {"line": {"sticker": 7}}}
            ])
        );
    }

    #[test]
    fn deleting_a_parameter_sends_null() {
        let r = WebhookResponse::new()
            .set_param("booking_id", "BK-1")
            .delete_param("old");
        let v = to_json(&r);
        assert_eq!(
            v,
            json!({"sessionInfo": {"parameters": {"booking_id": "BK-1", "old": null}}})
        );
        assert!(serde_json::to_string(&r).unwrap().contains(r#""old":null"#));
    }

    #[test]
    fn form_invalidation_golden() {
        let r = WebhookResponse::new()
            .invalidate_form_param("booking_date")
            .invalidate_form_param("booking_date")
            .text("That date is in the past.");
        assert_eq!(
            to_json(&r),
            json!({
                "fulfillmentResponse": {"messages": [{"text": {"text": ["That date is in the past."]}}]},
                "pageInfo": {"formInfo": {"parameterInfo": [
                    {"displayName": "booking_date", "state": "INVALID"}
                ]}},
                "sessionInfo": {"parameters": {"booking_date": null}}
            })
        );
    }

    #[test]
    fn transition_is_one_of_page_or_flow() {
        let page = "projects/p/locations/global/agents/a/flows/f/pages/pg";
        let flow = "projects/p/locations/global/agents/a/flows/f2";
        let r = WebhookResponse::new()
            .transition(Transition::page(page).unwrap())
            .transition(Transition::flow(flow).unwrap());
        let v = to_json(&r);
        assert_eq!(v, json!({"targetFlow": flow}));
        assert!(v.get("targetPage").is_none());
        let r = r.transition(Transition::page(page).unwrap());
        assert_eq!(to_json(&r), json!({"targetPage": page}));
    }

    #[test]
    fn transition_names_are_checked() {
        assert!(Transition::page("Confirm Booking").is_err());
        assert!(Transition::page("projects/p/locations/l/agents/a/flows/f").is_err());
        assert!(Transition::flow("projects/p/locations/l/agents/a/flows/f/pages/x").is_err());
        assert!(Transition::flow("projects/p/locations/l/agents//flows/f").is_err());
        let t = Transition::page_in_same_flow(
            "projects/p/locations/l/agents/a/flows/f/pages/start",
            "END_SESSION",
        )
        .unwrap();
        assert_eq!(
            t,
            Transition::TargetPage(
                "projects/p/locations/l/agents/a/flows/f/pages/END_SESSION".into()
            )
        );
    }

    #[test]
    fn deserializing_rejects_both_targets() {
        let both = r#"{"targetPage":"a","targetFlow":"b"}"#;
        assert!(serde_json::from_str::<WebhookResponse>(both).is_err());
        let one: WebhookResponse = serde_json::from_str(r#"{"targetFlow":"b"}"#).unwrap();
        assert_eq!(one.target(), Some(&Transition::TargetFlow("b".into())));
    }

    #[test]
    fn the_hand_written_encoding_is_what_serde_writes() {
        let meta = |v: Value| v.as_object().unwrap().clone();
        let page = "projects/p/locations/l/agents/a/flows/f/pages/pg";
        let cases = [
            WebhookResponse::new(),
            WebhookResponse::new()
                .text("plain")
                .text("needs \"escaping\"\n\t₹"),
            WebhookResponse::new()
                .text_variants(["one", "two"])
                .merge_behavior(MergeBehavior::Replace),
            WebhookResponse::new().merge_behavior(MergeBehavior::MergeBehaviorUnspecified),
            WebhookResponse::new().merge_behavior(MergeBehavior::Append),
            WebhookResponse::new()
                .conversation_success(Map::new())
                .conversation_success(meta(json!({"reason": "done", "n": 1.5})))
                .live_agent_handoff(Map::new())
                .live_agent_handoff(meta(json!({"queue": ["a", null, true]})))
                .output_audio(OutputAudioText::Ssml("<speak>Hi</speak>".into()))
                .output_audio(OutputAudioText::Text("Hi".into()))
                .play_audio("gs://b/a.wav")
                .telephony_transfer_call("+14155550100")
                .message(ResponseMessage::text("web only").on_channel("DF_\"MESSENGER"))
                .custom_payload(meta(json!({"line": {"sticker": 7, "x": [-1, 2e-9]}})))
                .rich_content(RichContent::new().card(vec![RichElement::chips([Chip::new("x")])])),
            WebhookResponse::new()
                .set_param("k", 1)
                .set_param("s", "t\u{1}")
                .set_param("f", 0.25)
                .set_param("o", json!({"deep": [{}]}))
                .delete_param("gone")
                .invalidate_form_param("p")
                .invalidate_form_param("q\"")
                .payload(meta(json!({"api": true})))
                .transition(Transition::page(page).unwrap()),
            WebhookResponse::new()
                .transition(Transition::flow("projects/p/locations/l/agents/a/flows/f").unwrap()),
            WebhookResponse::new().invalidate_form_param("only"),
            WebhookResponse::new().payload(Map::new()),
        ];
        for r in &cases {
            let ours = String::from_utf8(encode(r)).unwrap();
            assert_eq!(ours, serde_json::to_string(r).unwrap());
        }
    }

    #[test]
    fn round_trip_keeps_everything() {
        let r = WebhookResponse::new()
            .text("a")
            .rich_content(RichContent::new().card(vec![RichElement::chips([Chip::new("x")])]))
            .set_param("k", 1)
            .delete_param("gone")
            .invalidate_form_param("p")
            .payload(json!({"api": true}).as_object().unwrap().clone())
            .transition(Transition::flow("projects/p/locations/l/agents/a/flows/f").unwrap());
        let back: WebhookResponse = serde_json::from_slice(&encode(&r)).unwrap();
        assert_eq!(back, r);
    }

    #[test]
    fn oversized_answers_are_trimmed_then_replaced() {
        let big = "x".repeat(40_000);
        let info = RichElement::Info(Info {
            title: big.clone(),
            anchor: Some(Anchor::new("https://example.com")),
            ..Default::default()
        });
        let r = WebhookResponse::new()
            .text("short")
            .rich_content(RichContent::new().card(vec![info.clone(), info]))
            .set_param("k", "v");
        let (bytes, trim) = r.to_bounded_json(MAX_RESPONSE_BYTES, "fallback");
        assert!(matches!(trim, Trim::DroppedPayloads { .. }));
        assert!(bytes.len() <= MAX_RESPONSE_BYTES);
        let v: Value = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(
            v["fulfillmentResponse"]["messages"],
            json!([{"text": {"text": ["short"]}}])
        );
        assert_eq!(v["sessionInfo"]["parameters"]["k"], "v");

        let r = WebhookResponse::new().text(big.repeat(2));
        let (bytes, trim) = r.to_bounded_json(MAX_RESPONSE_BYTES, "fallback");
        assert!(
            matches!(trim, Trim::ReplacedByFallback { original_bytes } if original_bytes > 80_000)
        );
        let v: Value = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(
            v,
            json!({"fulfillmentResponse": {"messages": [{"text": {"text": ["fallback"]}}]}})
        );
    }
}
