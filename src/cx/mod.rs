//! The Dialogflow CX webhook wire model.
//!
//! - [`request`]: `WebhookRequest`, read as the proto3 JSON mapping allows (nulls, proto names);
//! - [`response`]: `WebhookResponse` and its builder, which makes the wrong answers hard to write;
//! - [`rich`]: Dialogflow Messenger rich content for `fulfillmentResponse.messages[].payload`;
//! - [`params`]: a typed, merged view of form, intent and session parameters;
//! - [`json`]: JSON written by hand on the per-call paths, byte for byte as `serde_json` writes it.
//!
//! This module depends on nothing else in the crate: it is the contract with Dialogflow.

pub mod json;
pub mod params;
pub mod request;
pub mod response;
pub mod rich;

pub use params::{ParamError, Params, Place};
pub use request::{RequestError, RequestErrorKind, WebhookRequest};
pub use response::{
    MAX_RESPONSE_BYTES, MergeBehavior, OutputAudioText, ResponseMessage, Transition, Trim,
    WebhookResponse,
};
pub use rich::{Chip, RichContent, RichElement};
