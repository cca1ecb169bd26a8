//! A typed, merged view of a request's parameters.
//!
//! CX hands a webhook parameters in three places: the form's `pageInfo.formInfo.parameterInfo[].value`,
//! the matched intent's `intentInfo.parameters` (`resolvedValue`, else `originalValue`) and the session's
//! `sessionInfo.parameters`. [`Params`] looks a name up in that order (the form's value is the one CX is
//! collecting right now; an intent's value is what the user just said; the session holds the rest) and
//! treats JSON `null` and empty strings as absent. Getters parse the system entity shapes: `@sys.date`
//! as `{year, month, day}` or an ISO date/date-time string, `@sys.time` as `{hours, minutes, seconds}` or
//! `HH:MM[:SS]`, numbers that arrive as doubles (`5.0`) or strings.

use jiff::civil::{Date, Time};
use serde_json::Value;

use super::request::WebhookRequest;

/// A parameter that is present but cannot be read as the type asked for.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("parameter `{name}` {problem}")]
pub struct ParamError {
    /// The parameter's name.
    pub name: String,
    /// What is wrong with it, e.g. "is not a whole number".
    pub problem: String,
}

impl ParamError {
    fn new(name: &str, problem: impl Into<String>) -> Self {
        ParamError {
            name: name.to_owned(),
            problem: problem.into(),
        }
    }
}

/// Borrowed, merged parameter view of one request.
#[derive(Debug, Clone, Copy)]
pub struct Params<'a> {
    request: &'a WebhookRequest,
}

fn present(v: &Value) -> bool {
    match v {
        Value::Null => false,
        Value::String(s) => !s.trim().is_empty(),
        _ => true,
    }
}

impl<'a> Params<'a> {
    /// The view over `request`.
    pub fn new(request: &'a WebhookRequest) -> Self {
        Params { request }
    }

    /// The raw value of `name`: form value, else intent value, else session value.
    pub fn value(&self, name: &str) -> Option<&'a Value> {
        let request = self.request;
        let form = request
            .form_parameters()
            .iter()
            .find(|p| p.display_name == name)
            .and_then(|p| p.value.as_ref());
        let intent = request
            .intent_info
            .as_ref()
            .and_then(|i| i.parameters.get(name))
            .and_then(|p| {
                p.get("resolvedValue")
                    .filter(|v| present(v))
                    .or_else(|| p.get("originalValue"))
            });
        let session = request.session_info.parameters.get(name);
        [form, intent, session]
            .into_iter()
            .flatten()
            .find(|v| present(v))
    }

    /// True when `name` has a (non-null, non-empty) value.
    pub fn has(&self, name: &str) -> bool {
        self.value(name).is_some()
    }

    /// The first of `names` that has a value (for aliases such as `account_id` / `user_id`).
    pub fn first_present<'n>(&self, names: &[&'n str]) -> Option<&'n str> {
        names.iter().copied().find(|n| self.has(n))
    }

    /// A text value, trimmed. Numbers are accepted and written out (a postal code may arrive as
    /// `411001`); objects and lists are an error.
    pub fn text(&self, name: &str) -> Result<Option<String>, ParamError> {
        match self.value(name) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.trim().to_owned())),
            Some(Value::Number(n)) => Ok(Some(match whole(n) {
                Some(i) => i.to_string(),
                None => n.to_string(),
            })),
            Some(Value::Bool(b)) => Ok(Some(b.to_string())),
            Some(_) => Err(ParamError::new(name, "is not text")),
        }
    }

    /// A whole number: a JSON integer, a double without fraction (`5.0`) or a numeric string.
    pub fn int(&self, name: &str) -> Result<Option<i64>, ParamError> {
        let bad = || ParamError::new(name, "is not a whole number");
        match self.value(name) {
            None => Ok(None),
            Some(Value::Number(n)) => whole(n).map(Some).ok_or_else(bad),
            Some(Value::String(s)) => s.trim().parse::<i64>().map(Some).map_err(|_| bad()),
            Some(_) => Err(bad()),
        }
    }

    /// A calendar date: `@sys.date`'s `{year, month, day}`, or an ISO `YYYY-MM-DD` string (a
    /// date-time string is accepted and its date part used).
    pub fn date(&self, name: &str) -> Result<Option<Date>, ParamError> {
        match self.value(name) {
            None => Ok(None),
            Some(Value::Object(o)) => {
                let field = |k: &str| o.get(k).and_then(as_whole);
                match (field("year"), field("month"), field("day")) {
                    (Some(y), Some(m), Some(d)) => {
                        let (Ok(y), Ok(m), Ok(d)) =
                            (i16::try_from(y), i8::try_from(m), i8::try_from(d))
                        else {
                            return Err(ParamError::new(name, "is not a real date"));
                        };
                        Date::new(y, m, d)
                            .map(Some)
                            .map_err(|_| ParamError::new(name, "is not a real date"))
                    }
                    _ => Err(ParamError::new(
                        name,
                        "is not a date (expected {year, month, day})",
                    )),
                }
            }
            Some(Value::String(s)) => parse_date(s.trim())
                .map(Some)
                .ok_or_else(|| ParamError::new(name, "is not a date (expected YYYY-MM-DD)")),
            Some(_) => Err(ParamError::new(name, "is not a date")),
        }
    }

    /// A time of day: `@sys.time`'s `{hours, minutes, seconds}`, or `HH:MM[:SS]` (a date-time string
    /// is accepted and its time part used).
    pub fn time(&self, name: &str) -> Result<Option<Time>, ParamError> {
        match self.value(name) {
            None => Ok(None),
            Some(Value::Object(o)) => {
                let field = |k: &str| o.get(k).and_then(as_whole);
                let Some(hours) = field("hours") else {
                    return Err(ParamError::new(
                        name,
                        "is not a time (expected {hours, minutes, seconds})",
                    ));
                };
                let minutes = field("minutes").unwrap_or(0);
                let seconds = field("seconds").unwrap_or(0);
                let (Ok(h), Ok(m), Ok(s)) = (
                    i8::try_from(hours),
                    i8::try_from(minutes),
                    i8::try_from(seconds),
                ) else {
                    return Err(ParamError::new(name, "is not a real time of day"));
                };
                Time::new(h, m, s, 0)
                    .map(Some)
                    .map_err(|_| ParamError::new(name, "is not a real time of day"))
            }
            Some(Value::String(s)) => parse_time(s.trim())
                .map(Some)
                .ok_or_else(|| ParamError::new(name, "is not a time (expected HH:MM)")),
            Some(_) => Err(ParamError::new(name, "is not a time")),
        }
    }
}

/// A place the user named: a city and/or a postal code (from a plain string, `@sys.geo-city`, or an
/// `@sys.location` / `@sys.address` object).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Place {
    /// City name as given (trimmed), e.g. `Pune`.
    pub city: Option<String>,
    /// Postal code as given (spaces removed), e.g. `411001`.
    pub postal_code: Option<String>,
    /// Country, when the object form named one.
    pub country: Option<String>,
}

impl Place {
    /// Reads a free-text place: a string of digits (and at most one space or hyphen) is a postal
    /// code, anything else a city name.
    pub fn from_text(text: &str) -> Option<Place> {
        let text = text.trim();
        if text.is_empty() {
            return None;
        }
        let compact: String = text.chars().filter(|c| !matches!(c, ' ' | '-')).collect();
        if compact.len() >= 3 && compact.len() <= 10 && compact.chars().all(|c| c.is_ascii_digit())
        {
            return Some(Place {
                postal_code: Some(compact),
                ..Place::default()
            });
        }
        Some(Place {
            city: Some(text.to_owned()),
            ..Place::default()
        })
    }

    /// A short label for messages: the city, else the postal code.
    pub fn label(&self) -> &str {
        self.city
            .as_deref()
            .or(self.postal_code.as_deref())
            .unwrap_or_default()
    }
}

impl<'a> Params<'a> {
    /// A place: a string (city or postal code), a number (postal code), or an object with `city`
    /// (also `geo-city`, `subadmin-area`, `admin-area` as fallbacks) and/or `zip-code` /
    /// `postal-code`, as `@sys.geo-city`, `@sys.location` and `@sys.address` produce.
    pub fn place(&self, name: &str) -> Result<Option<Place>, ParamError> {
        let unusable = || ParamError::new(name, "does not name a city or postal code");
        match self.value(name) {
            None => Ok(None),
            Some(Value::Object(o)) => {
                let field = |keys: &[&str]| {
                    keys.iter().find_map(|k| match o.get(*k) {
                        Some(Value::String(s)) if !s.trim().is_empty() => Some(s.trim().to_owned()),
                        Some(Value::Number(n)) => Some(n.to_string()),
                        _ => None,
                    })
                };
                let place = Place {
                    city: field(&["city", "geo-city", "subadmin-area", "admin-area"]),
                    postal_code: field(&["zip-code", "postal-code", "zip_code", "postal_code"])
                        .map(|z| z.replace([' ', '-'], "")),
                    country: field(&["country"]),
                };
                if place.city.is_none() && place.postal_code.is_none() {
                    // `{"original": "Pune"}`-style objects: fall back to the text the user said.
                    return field(&["original", "originalValue"])
                        .and_then(|t| Place::from_text(&t))
                        .map(Some)
                        .ok_or_else(unusable);
                }
                Ok(Some(place))
            }
            Some(_) => match self.text(name)? {
                Some(text) => Ok(Place::from_text(&text)),
                None => Ok(None),
            },
        }
    }
}

/// Doubles above this are not all whole numbers that can be told apart (2^53).
const MAX_EXACT_DOUBLE: f64 = 9_007_199_254_740_992.0;

/// A JSON number as a whole number: an integer, or a double without fraction that is exact
/// (Dialogflow sends every `@sys.number` as a double, so `5` arrives as `5.0`).
fn whole(n: &serde_json::Number) -> Option<i64> {
    n.as_i64().or_else(|| {
        n.as_f64()
            .filter(|f| f.fract() == 0.0 && f.abs() <= MAX_EXACT_DOUBLE)
            .map(|f| f as i64)
    })
}

fn as_whole(v: &Value) -> Option<i64> {
    match v {
        Value::Number(n) => whole(n),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

fn parse_date(s: &str) -> Option<Date> {
    if let Ok(d) = s.parse::<Date>() {
        return Some(d);
    }
    // A date-time with an offset or zone ("2031-03-14T00:00:00+05:30"): the local date part.
    s.get(..10)
        .filter(|_| s.len() > 10)
        .and_then(|d| d.parse().ok())
}

fn parse_time(s: &str) -> Option<Time> {
    if let Ok(t) = s.parse::<Time>() {
        return Some(t);
    }
    // A date-time string: the local time part after `T` (offset ignored).
    let (_, rest) = s.split_once(['T', 't', ' '])?;
    let end = rest.find(['+', '-', 'Z', 'z', '[']).unwrap_or(rest.len());
    rest[..end].parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use jiff::civil::{date, time};
    use serde_json::json;

    #[test]
    fn whole_numbers_are_integers_or_exact_doubles_without_fraction() {
        let n = |v: serde_json::Value| whole(v.as_number().unwrap());
        assert_eq!(n(json!(5)), Some(5));
        assert_eq!(n(json!(5.0)), Some(5));
        assert_eq!(n(json!(-411001.0)), Some(-411001));
        assert_eq!(
            n(json!(9_007_199_254_740_992.0)),
            Some(9_007_199_254_740_992)
        );
        assert_eq!(n(json!(1e16)), None, "past 2^53 a double is not exact");
        assert_eq!(n(json!(1e300)), None);
        assert_eq!(n(json!(5.5)), None);
        assert_eq!(n(json!(i64::MAX)), Some(i64::MAX));
    }

    fn req(v: Value) -> WebhookRequest {
        WebhookRequest::from_slice(&serde_json::to_vec(&v).unwrap()).unwrap()
    }

    #[test]
    fn form_then_intent_then_session() {
        let r = req(json!({
            "intentInfo": {"parameters": {
                "a": {"originalValue": "pune", "resolvedValue": "Pune"},
                "b": {"originalValue": "five"},
                "c": {"originalValue": "x", "resolvedValue": null}
            }},
            "pageInfo": {"formInfo": {"parameterInfo": [
                {"displayName": "a", "state": "FILLED", "value": "Mumbai"},
                {"displayName": "d", "state": "EMPTY"}
            ]}},
            "sessionInfo": {"parameters": {"a": "Delhi", "b": "session", "d": "kept", "e": "", "f": null}}
        }));
        let p = Params::new(&r);
        assert_eq!(p.text("a").unwrap().as_deref(), Some("Mumbai"));
        assert_eq!(p.text("b").unwrap().as_deref(), Some("five"));
        assert_eq!(p.text("c").unwrap().as_deref(), Some("x"));
        assert_eq!(p.text("d").unwrap().as_deref(), Some("kept"));
        assert_eq!(p.text("e").unwrap(), None);
        assert_eq!(p.text("f").unwrap(), None);
        assert_eq!(p.first_present(&["e", "zz", "d"]), Some("d"));
    }

    #[test]
    fn integers_in_every_shape() {
        let r = req(json!({"sessionInfo": {"parameters": {
            "i": 5, "f": 5.0, "s": " 7 ", "frac": 2.5, "word": "five", "postal": 411001
        }}}));
        let p = Params::new(&r);
        assert_eq!(p.int("i").unwrap(), Some(5));
        assert_eq!(p.int("f").unwrap(), Some(5));
        assert_eq!(p.int("s").unwrap(), Some(7));
        assert_eq!(p.int("missing").unwrap(), None);
        assert_eq!(p.int("frac").unwrap_err().problem, "is not a whole number");
        assert!(p.int("word").is_err());
        assert_eq!(p.text("postal").unwrap().as_deref(), Some("411001"));
    }

    #[test]
    fn dates_from_objects_and_strings() {
        let r = req(json!({"sessionInfo": {"parameters": {
            "o": {"year": 2031, "month": 3, "day": 14},
            "of": {"year": 2031.0, "month": 3.0, "day": 14.0},
            "iso": "2031-03-14",
            "dt": "2031-03-14T10:30:00+05:30",
            "bad": {"year": 2031, "month": 2, "day": 30},
            "partial": {"year": 2031},
            "word": "tomorrow"
        }}}));
        let p = Params::new(&r);
        for k in ["o", "of", "iso", "dt"] {
            assert_eq!(p.date(k).unwrap(), Some(date(2031, 3, 14)), "{k}");
        }
        assert_eq!(p.date("bad").unwrap_err().problem, "is not a real date");
        assert!(p.date("partial").is_err());
        assert!(p.date("word").is_err());
    }

    #[test]
    fn places_in_every_shape() {
        let r = req(json!({"sessionInfo": {"parameters": {
            "s": " Pune ",
            "zip": "411 001",
            "num": 411001,
            "geo": {"city": "Mumbai", "country": "India", "zip-code": "400 001"},
            "admin": {"admin-area": "Delhi"},
            "orig": {"original": "Bengaluru"},
            "empty": {"country": ""},
            "list": ["Pune"]
        }}}));
        let p = Params::new(&r);
        let city = |c: &str| Place {
            city: Some(c.into()),
            ..Place::default()
        };
        let zip = |z: &str| Place {
            postal_code: Some(z.into()),
            ..Place::default()
        };
        assert_eq!(p.place("s").unwrap(), Some(city("Pune")));
        assert_eq!(p.place("zip").unwrap(), Some(zip("411001")));
        assert_eq!(p.place("num").unwrap(), Some(zip("411001")));
        let geo = p.place("geo").unwrap().unwrap();
        assert_eq!(geo.city.as_deref(), Some("Mumbai"));
        assert_eq!(geo.postal_code.as_deref(), Some("400001"));
        assert_eq!(geo.country.as_deref(), Some("India"));
        assert_eq!(geo.label(), "Mumbai");
        assert_eq!(p.place("admin").unwrap(), Some(city("Delhi")));
        assert_eq!(p.place("orig").unwrap(), Some(city("Bengaluru")));
        assert!(p.place("empty").is_err());
        assert!(p.place("list").is_err());
        assert_eq!(p.place("missing").unwrap(), None);
    }

    #[test]
    fn times_from_objects_and_strings() {
        let r = req(json!({"sessionInfo": {"parameters": {
            "o": {"hours": 10, "minutes": 30, "seconds": 0},
            "short": "10:30",
            "long": "10:30:00",
            "dt": "2031-03-14T10:30:00Z",
            "bad": {"hours": 25, "minutes": 0},
            "word": "noonish"
        }}}));
        let p = Params::new(&r);
        for k in ["o", "short", "long", "dt"] {
            assert_eq!(p.time(k).unwrap(), Some(time(10, 30, 0, 0)), "{k}");
        }
        assert!(p.time("bad").is_err());
        assert!(p.time("word").is_err());
    }
}
