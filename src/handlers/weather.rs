//! The `weather` tag (alias: intent `weather.current` with an empty tag): current conditions for
//! the `location` parameter, from [`crate::clients::weather::Weather`] (Open-Meteo behind a TTL
//! cache).
//!
//! Design choice: this handler never returns an error. Every outcome is an answer the user can act
//! on: the conditions; the last good conditions, said to be from earlier, when the provider fails;
//! "I can't reach the weather service right now" when nothing recent is cached; or a question
//! asking for a city when `location` is missing, unusable or unknown (the parameter is then
//! invalidated if it is a form parameter on the page, and cleared from the session). The provider
//! gets the call's [`Call::budget`] (the remaining time less the answer reserve), so the handler answers before the
//! dispatcher's deadline rather than relying on it. The place name is never logged.

use std::sync::Arc;

use super::{Call, Deps, Reply, reject};
use crate::clients::clean_text;
use crate::clients::weather::{Conditions, Report};
use crate::cx::WebhookResponse;

/// The parameter holding the place.
pub const LOCATION: &str = "location";

/// Longest place name accepted from the user.
const MAX_LOCATION_CHARS: usize = 80;

/// Asked when no place was given.
pub const ASK_LOCATION_TEXT: &str = "Which city would you like the weather for?";

/// Said when the place cannot be read as a city or postal code.
pub const UNCLEAR_LOCATION_TEXT: &str =
    "Sorry, I didn't catch a place name there. Which city would you like the weather for?";

/// Said when the provider fails and nothing recent is cached.
pub const UNAVAILABLE_TEXT: &str =
    "Sorry, I can't reach the weather service right now. Please try again in a few minutes.";

/// The `weather` handler: never an error, see the module docs.
pub async fn weather(call: Call, deps: Arc<Deps>) -> Reply {
    Ok(answer(call, &deps).await)
}

async fn answer(call: Call, deps: &Deps) -> WebhookResponse {
    let place = match call.params().place(LOCATION) {
        Ok(Some(place)) => place,
        Ok(None) => return ask_again(&call, ASK_LOCATION_TEXT.into(), false),
        Err(_) => return ask_again(&call, UNCLEAR_LOCATION_TEXT.into(), true),
    };
    let label = clean_text(place.label(), usize::MAX);
    if label.is_empty() || label.chars().count() > MAX_LOCATION_CHARS {
        return ask_again(&call, UNCLEAR_LOCATION_TEXT.into(), true);
    }
    let budget = call.budget();
    match deps.weather.current(&label, budget).await {
        Report::Fresh(conditions) => with_conditions(&conditions, now_text(&conditions)),
        Report::Stale { conditions, error } => {
            tracing::warn!(
                error = %crate::telemetry::error_chain(&*error),
                age_secs = conditions.fetched_at.elapsed().as_secs(),
                "weather provider failed; answering with cached conditions"
            );
            with_conditions(&conditions, stale_text(&conditions))
        }
        Report::UnknownPlace => ask_again(
            &call,
            format!(
                "Sorry, I couldn't find a place called \u{201c}{label}\u{201d}. Which city would you like the weather for?"
            ),
            true,
        ),
        Report::Unavailable(error) => {
            tracing::warn!(
                error = %crate::telemetry::error_chain(&*error),
                "weather provider failed and nothing recent is cached"
            );
            WebhookResponse::new().text(UNAVAILABLE_TEXT)
        }
    }
}

/// Asks for a city. When `clear` is set, the unusable value is rejected (invalidated on the form, or
/// removed from the session), so CX asks again instead of reusing it.
fn ask_again(call: &Call, text: String, clear: bool) -> WebhookResponse {
    let response = WebhookResponse::new().text(text);
    if clear {
        reject(call, response, LOCATION)
    } else {
        response
    }
}

/// The answer for known conditions: the text, and session `weather_condition` and `temperature`
/// (degrees Celsius, one decimal).
fn with_conditions(conditions: &Conditions, text: String) -> WebhookResponse {
    let temperature = (conditions.temperature_c * 10.0).round() / 10.0;
    WebhookResponse::new()
        .text(text)
        .set_param("weather_condition", conditions.condition)
        .set_param("temperature", temperature)
}

/// `partly cloudy, 29°C, wind 12 km/h`.
fn summary(conditions: &Conditions) -> String {
    let mut out = format!(
        "{}, {}\u{b0}C",
        conditions.condition,
        whole(conditions.temperature_c)
    );
    if let Some(wind) = conditions.wind_kmh {
        out.push_str(&format!(", wind {} km/h", whole(wind)));
    }
    out
}

fn now_text(conditions: &Conditions) -> String {
    format!(
        "Right now in {}: {}.",
        conditions.place,
        summary(conditions)
    )
}

fn stale_text(conditions: &Conditions) -> String {
    let minutes = conditions.fetched_at.elapsed().as_secs() / 60;
    let when = match minutes {
        0 => "A moment ago".to_owned(),
        1 => "About a minute ago".to_owned(),
        m => format!("About {m} minutes ago"),
    };
    format!(
        "I can't reach the weather service right now. {when} in {}: {}.",
        conditions.place,
        summary(conditions)
    )
}

/// A number rounded to a whole, never `-0`.
fn whole(value: f64) -> String {
    let rounded = value.round();
    if rounded == 0.0 {
        "0".into()
    } else {
        format!("{rounded:.0}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Instant;

    fn conditions(temperature_c: f64, wind_kmh: Option<f64>) -> Conditions {
        Conditions {
            place: "Mumbai, India".into(),
            condition: "partly cloudy",
            temperature_c,
            wind_kmh,
            fetched_at: Instant::now(),
        }
    }

    #[test]
    fn texts_read_naturally() {
        assert_eq!(
            now_text(&conditions(29.44, Some(12.3))),
            "Right now in Mumbai, India: partly cloudy, 29\u{b0}C, wind 12 km/h."
        );
        assert_eq!(
            now_text(&conditions(-0.4, None)),
            "Right now in Mumbai, India: partly cloudy, 0\u{b0}C."
        );
        assert!(stale_text(&conditions(30.0, None)).starts_with(
            "I can't reach the weather service right now. A moment ago in Mumbai, India: "
        ));
    }

    #[test]
    fn session_temperature_has_one_decimal() {
        let r = with_conditions(&conditions(29.44, None), String::new());
        let params = r.session_params().unwrap();
        assert_eq!(params["temperature"], serde_json::json!(29.4));
        assert_eq!(params["weather_condition"], "partly cloudy");
    }
}
