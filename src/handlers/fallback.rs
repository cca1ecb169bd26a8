//! The answer for a tag no handler serves: HTTP 200 with a polite text, and a WARNING naming the tag
//! so the agent's designer sees the typo or the missing handler in the logs.

use super::{Call, Reply};
use crate::cx::WebhookResponse;

/// What the user hears when no handler serves the tag.
pub const FALLBACK_TEXT: &str =
    "Sorry, I can't help with that just yet. Is there something else I can do for you?";

/// The fallback handler.
pub async fn fallback(call: Call) -> Reply {
    let intent = call.request.intent_display_name().unwrap_or("");
    tracing::warn!(tag = call.tag(), intent, "no handler for this webhook tag");
    Ok(WebhookResponse::new().text(FALLBACK_TEXT))
}
