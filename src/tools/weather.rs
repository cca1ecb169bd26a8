//! `getCurrentWeather`: the `weather` tag's lookup (the same place rule, the same cached provider).
//! Cached conditions stand in, marked `stale`, when the provider fails; with nothing cached the answer
//! is 503. The place name is never logged.

use serde_json::{Value, json};

use super::{Input, Problem, Tool, ToolResult, prop};
use crate::clients::weather::{Conditions, Report};
use crate::handlers::weather::place_label;

/// `POST /tools/current-weather`.
pub const CURRENT: Tool = Tool {
    name: "current-weather",
    operation_id: "getCurrentWeather",
    summary: "Current weather conditions for a place",
    description: "Returns the current conditions (description, temperature in degrees Celsius, \
        wind) for a city or place name. Use it when the customer asks about the weather now, e.g. \
        before driving to a service appointment. Not a forecast.",
    request,
    response,
    statuses: &[],
    end_user: false,
    run: |input| Box::pin(current(input)),
};

fn request() -> Value {
    json!({
        "type": "object",
        "required": ["location"],
        "properties": {
            "location": prop("string", "A city or place name, at most 80 characters.", json!("Mumbai"))
        }
    })
}

fn response() -> Value {
    json!({
        "type": "object",
        "required": ["place", "condition", "temperature_c", "stale", "age_seconds"],
        "properties": {
            "place": prop("string", "The place the provider matched.", json!("Mumbai, India")),
            "condition": prop("string", "The conditions in words.", json!("partly cloudy")),
            "temperature_c": {"type": "number", "description": "Degrees Celsius, one decimal.", "example": 29.4},
            "wind_kmh": {"type": "number", "description": "Wind speed in km/h, when known.", "example": 12.0},
            "stale": {"type": "boolean", "description": "True when the provider failed and these are earlier conditions."},
            "age_seconds": {"type": "integer", "description": "How old the reading is."}
        }
    })
}

async fn current(input: Input) -> ToolResult {
    let unclear = || {
        Problem::invalid(
            "location",
            "`location` must be a city or place name of at most 80 characters.",
        )
    };
    let place = match input.params().place("location") {
        Ok(Some(place)) => place,
        Ok(None) => {
            return Err(Problem::invalid(
                "location",
                "`location` is required: a city or place name.",
            ));
        }
        Err(_) => return Err(unclear()),
    };
    let label = place_label(&place).ok_or_else(unclear)?;
    match input.deps.weather.current(&label, input.budget()).await {
        Report::Fresh(conditions) => Ok(answer(&conditions, false)),
        Report::Stale { conditions, error } => {
            tracing::warn!(
                error = %crate::telemetry::error_chain(&*error),
                "weather provider failed; the tool answers with cached conditions"
            );
            Ok(answer(&conditions, true))
        }
        Report::UnknownPlace => Err(Problem::invalid(
            "location",
            format!("No place called \u{201c}{label}\u{201d} was found. Ask for a city name."),
        )),
        Report::Unavailable(error) => {
            tracing::warn!(
                error = %crate::telemetry::error_chain(&*error),
                "weather provider failed and nothing recent is cached"
            );
            Err(Problem::unavailable(
                "The weather service is not answering. Please retry in a few minutes.",
            ))
        }
    }
}

fn answer(c: &Conditions, stale: bool) -> Value {
    let mut v = json!({
        "place": c.place,
        "condition": c.condition,
        "temperature_c": (c.temperature_c * 10.0).round() / 10.0,
        "stale": stale,
        "age_seconds": c.fetched_at.elapsed().as_secs(),
    });
    if let Some(wind) = c.wind_kmh.filter(|w| w.is_finite()) {
        v["wind_kmh"] = json!((wind * 10.0).round() / 10.0);
    }
    v
}
