//! Current weather for a place name: Open-Meteo's geocoding and forecast APIs (no key needed)
//! behind a TTL cache.
//!
//! [`OpenMeteo`] makes the two calls, bounded together by one timeout:
//! - `GET {geocoding_url}?name=<place>&count=1&language=en&format=json` answers
//!   `{"results": [{"name", "latitude", "longitude", "country", "admin1", ...}]}`; when nothing
//!   matches, `results` is absent.
//! - `GET {forecast_url}?latitude=..&longitude=..&current=temperature_2m,weather_code,wind_speed_10m
//!   &temperature_unit=celsius&wind_speed_unit=kmh` answers
//!   `{"current": {"time", "temperature_2m", "weather_code", "wind_speed_10m"}, "current_units": {..}}`;
//!   `weather_code` is a WMO code, turned into words by [`condition`].
//!
//! Anything else (another status, a body that is not that JSON, values out of physical range, more
//! than [`super::MAX_RESPONSE_BYTES`]) is a [`WeatherError`], never a panic.
//!
//! [`Weather`] puts two moka caches in front, keyed by [`cache_key`] (trimmed, whitespace collapsed,
//! lowercase, so `Mumbai` and ` MUMBAI ` share an entry):
//! - `fresh` (TTL `WEATHER_CACHE_TTL_SECS`, default 10 min) answers hits without any outbound call.
//!   Misses go through `try_get_with`, so concurrent misses for one place share one lookup. Only
//!   successful lookups are stored (an unknown place is a successful lookup); errors are not.
//! - `stale` (TTL `WEATHER_STALE_TTL_SECS`, default 1 h) keeps the last good conditions per place
//!   and is read only when the provider fails or the caller's budget runs out.
//!
//! The caller passes its time budget: a lookup that cannot finish within it is abandoned (a
//! concurrent caller with more time then takes over the lookup), and the answer falls back to the
//! stale entry or to [`Report::Unavailable`]. Errors never carry the request URL, which holds the
//! place name the user said.

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant};

use moka::future::Cache;
use reqwest::Url;
use serde::Deserialize;
use serde::de::DeserializeOwned;

use super::{BodyError, MAX_RESPONSE_BYTES, clean_text, read_capped};

/// Most places kept in each cache (an entry is a few hundred bytes).
const CACHE_CAPACITY: u64 = 10_000;

/// Longest place name kept from the provider's answer.
const MAX_PLACE_CHARS: usize = 80;

/// The Open-Meteo geocoding endpoint.
pub const DEFAULT_GEOCODING_URL: &str = "https://geocoding-api.open-meteo.com/v1/search";

/// The Open-Meteo forecast endpoint.
pub const DEFAULT_FORECAST_URL: &str = "https://api.open-meteo.com/v1/forecast";

/// Current conditions at a place.
#[derive(Debug, Clone, PartialEq)]
pub struct Conditions {
    /// The place as the provider names it, e.g. `Mumbai, India`.
    pub place: String,
    /// The WMO weather code in words, e.g. `partly cloudy`.
    pub condition: &'static str,
    /// Air temperature 2 m above ground, in degrees Celsius.
    pub temperature_c: f64,
    /// Wind speed 10 m above ground in km/h, when the provider gave a plausible one.
    pub wind_kmh: Option<f64>,
    /// When we received these conditions.
    pub fetched_at: Instant,
}

/// The result of a successful lookup.
#[derive(Debug, Clone)]
pub enum Lookup {
    /// The place was found and its conditions read.
    Found(Arc<Conditions>),
    /// The provider knows no place by that name.
    UnknownPlace,
}

/// Why a lookup failed. Messages never contain the place name or the URL.
#[derive(Debug, thiserror::Error)]
pub enum WeatherError {
    /// The lookup did not finish in the time it had.
    #[error("the weather lookup did not finish within {0:?}")]
    Timeout(Duration),
    /// The request could not be sent or its answer not received.
    #[error("the {what} request failed")]
    Unreachable {
        /// Which call (`geocoding` or `forecast`).
        what: &'static str,
        /// The transport error (its URL removed).
        #[source]
        source: reqwest::Error,
    },
    /// The provider answered with a status other than 2xx.
    #[error("the {what} request was answered with HTTP {status}")]
    Status {
        /// Which call.
        what: &'static str,
        /// The HTTP status code.
        status: u16,
    },
    /// The answer's body could not be read.
    #[error("the {what} answer could not be read")]
    Body {
        /// Which call.
        what: &'static str,
        /// Why.
        #[source]
        source: BodyError,
    },
    /// The answer is not the JSON we expect, or its values are impossible.
    #[error("the {what} answer is malformed: {detail}")]
    Malformed {
        /// Which call.
        what: &'static str,
        /// What is wrong, without the body itself.
        detail: String,
    },
}

/// The Open-Meteo client: geocoding, then current conditions.
#[derive(Clone)]
pub struct OpenMeteo {
    http: reqwest::Client,
    geocoding_url: Url,
    forecast_url: Url,
    timeout: Duration,
}

impl fmt::Debug for OpenMeteo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Hosts only: a commercial Open-Meteo URL may carry an API key in its query.
        f.debug_struct("OpenMeteo")
            .field("geocoding_host", &self.geocoding_url.host_str())
            .field("forecast_host", &self.forecast_url.host_str())
            .field("timeout", &self.timeout)
            .finish()
    }
}

#[derive(Deserialize)]
struct GeocodingAnswer {
    #[serde(default)]
    results: Option<Vec<GeocodingResult>>,
}

#[derive(Deserialize)]
struct GeocodingResult {
    name: String,
    latitude: f64,
    longitude: f64,
    #[serde(default)]
    country: Option<String>,
}

#[derive(Deserialize)]
struct ForecastAnswer {
    current: CurrentValues,
}

#[derive(Deserialize)]
struct CurrentValues {
    temperature_2m: f64,
    weather_code: f64,
    #[serde(default)]
    wind_speed_10m: Option<f64>,
}

/// The forecast's current values, checked.
struct Reading {
    weather_code: u8,
    temperature_c: f64,
    wind_kmh: Option<f64>,
}

impl OpenMeteo {
    /// A client for the given endpoints. `timeout` bounds one whole lookup (both calls).
    pub fn new(
        http: reqwest::Client,
        geocoding_url: Url,
        forecast_url: Url,
        timeout: Duration,
    ) -> Self {
        OpenMeteo {
            http,
            geocoding_url,
            forecast_url,
            timeout,
        }
    }

    /// Looks `place` up and reads its current conditions.
    pub async fn lookup(&self, place: &str) -> Result<Lookup, WeatherError> {
        let work = async {
            let Some((name, latitude, longitude)) = self.geocode(place).await? else {
                return Ok(Lookup::UnknownPlace);
            };
            let reading = self.current(latitude, longitude).await?;
            Ok(Lookup::Found(Arc::new(Conditions {
                place: name,
                condition: condition(reading.weather_code),
                temperature_c: reading.temperature_c,
                wind_kmh: reading.wind_kmh,
                fetched_at: Instant::now(),
            })))
        };
        tokio::time::timeout(self.timeout, work)
            .await
            .unwrap_or(Err(WeatherError::Timeout(self.timeout)))
    }

    async fn geocode(&self, place: &str) -> Result<Option<(String, f64, f64)>, WeatherError> {
        const WHAT: &str = "geocoding";
        let mut url = self.geocoding_url.clone();
        url.query_pairs_mut()
            .append_pair("name", place)
            .append_pair("count", "1")
            .append_pair("language", "en")
            .append_pair("format", "json");
        let answer: GeocodingAnswer = self.get_json(url, WHAT).await?;
        let Some(first) = answer.results.and_then(|r| r.into_iter().next()) else {
            return Ok(None);
        };
        let malformed = |detail: &str| WeatherError::Malformed {
            what: WHAT,
            detail: detail.into(),
        };
        if !(-90.0..=90.0).contains(&first.latitude) || !(-180.0..=180.0).contains(&first.longitude)
        {
            return Err(malformed("coordinates out of range"));
        }
        let name = clean_text(&first.name, MAX_PLACE_CHARS);
        if name.is_empty() {
            return Err(malformed("the place has no name"));
        }
        let country = first
            .country
            .map(|c| clean_text(&c, MAX_PLACE_CHARS))
            .filter(|c| !c.is_empty() && *c != name);
        let label = match country {
            Some(country) => format!("{name}, {country}"),
            None => name,
        };
        Ok(Some((label, first.latitude, first.longitude)))
    }

    async fn current(&self, latitude: f64, longitude: f64) -> Result<Reading, WeatherError> {
        const WHAT: &str = "forecast";
        let mut url = self.forecast_url.clone();
        url.query_pairs_mut()
            .append_pair("latitude", &latitude.to_string())
            .append_pair("longitude", &longitude.to_string())
            .append_pair("current", "temperature_2m,weather_code,wind_speed_10m")
            .append_pair("temperature_unit", "celsius")
            .append_pair("wind_speed_unit", "kmh");
        let answer: ForecastAnswer = self.get_json(url, WHAT).await?;
        let current = answer.current;
        let malformed = |detail: &str| WeatherError::Malformed {
            what: WHAT,
            detail: detail.into(),
        };
        if !(-100.0..=70.0).contains(&current.temperature_2m) {
            return Err(malformed("temperature out of range"));
        }
        let code = current.weather_code;
        if code.fract() != 0.0 || !(0.0..=99.0).contains(&code) {
            return Err(malformed("weather_code is not a WMO code"));
        }
        Ok(Reading {
            weather_code: code as u8,
            temperature_c: current.temperature_2m,
            wind_kmh: current.wind_speed_10m.filter(|w| (0.0..=500.0).contains(w)),
        })
    }

    async fn get_json<T: DeserializeOwned>(
        &self,
        url: Url,
        what: &'static str,
    ) -> Result<T, WeatherError> {
        let response = self
            .http
            .get(url)
            .header(reqwest::header::ACCEPT, "application/json")
            .send()
            .await
            .map_err(|e| WeatherError::Unreachable {
                what,
                source: e.without_url(),
            })?;
        let status = response.status();
        if !status.is_success() {
            return Err(WeatherError::Status {
                what,
                status: status.as_u16(),
            });
        }
        let body = read_capped(response, MAX_RESPONSE_BYTES)
            .await
            .map_err(|source| WeatherError::Body { what, source })?;
        serde_json::from_slice(&body).map_err(|e| WeatherError::Malformed {
            what,
            detail: e.to_string(),
        })
    }
}

/// A WMO weather code in words (Open-Meteo's subset; other codes read as `mixed conditions`).
pub fn condition(code: u8) -> &'static str {
    match code {
        0 => "clear sky",
        1 => "mainly clear",
        2 => "partly cloudy",
        3 => "overcast",
        45 => "fog",
        48 => "freezing fog",
        51 => "light drizzle",
        53 => "drizzle",
        55 => "dense drizzle",
        56 => "light freezing drizzle",
        57 => "freezing drizzle",
        61 => "light rain",
        63 => "rain",
        65 => "heavy rain",
        66 => "light freezing rain",
        67 => "freezing rain",
        71 => "light snow",
        73 => "snow",
        75 => "heavy snow",
        77 => "snow grains",
        80 => "light rain showers",
        81 => "rain showers",
        82 => "violent rain showers",
        85 => "light snow showers",
        86 => "heavy snow showers",
        95 => "thunderstorm",
        96 => "thunderstorm with light hail",
        99 => "thunderstorm with heavy hail",
        _ => "mixed conditions",
    }
}

/// The cache key for a place name: trimmed, inner whitespace collapsed, lowercase.
pub fn cache_key(place: &str) -> String {
    place
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .to_lowercase()
}

/// What [`Weather::current`] found.
#[derive(Debug, Clone)]
pub enum Report {
    /// Conditions from the provider, now or within the cache TTL.
    Fresh(Arc<Conditions>),
    /// The provider failed; these are the last good conditions (see `fetched_at`).
    Stale {
        /// The last good conditions.
        conditions: Arc<Conditions>,
        /// Why no fresh ones were had.
        error: Arc<WeatherError>,
    },
    /// The provider knows no such place.
    UnknownPlace,
    /// The provider failed and nothing recent is cached.
    Unavailable(Arc<WeatherError>),
}

/// Cache lifetimes for [`Weather`].
#[derive(Debug, Clone, Copy)]
pub struct CacheTtl {
    /// How long a lookup answers without asking again (0 = every call asks).
    pub fresh: Duration,
    /// How long the last good conditions may stand in when the provider fails.
    pub stale: Duration,
}

/// Current weather behind the fresh and stale caches. Cheap to share behind an `Arc`.
pub struct Weather {
    provider: OpenMeteo,
    fresh: Cache<String, Lookup>,
    stale: Cache<String, Arc<Conditions>>,
}

impl fmt::Debug for Weather {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Weather")
            .field("provider", &self.provider)
            .field("fresh_entries", &self.fresh.entry_count())
            .field("stale_entries", &self.stale.entry_count())
            .finish()
    }
}

impl Weather {
    /// The cached service over `provider`.
    pub fn new(provider: OpenMeteo, ttl: CacheTtl) -> Self {
        Weather {
            provider,
            fresh: Cache::builder()
                .max_capacity(CACHE_CAPACITY)
                .time_to_live(ttl.fresh)
                .build(),
            stale: Cache::builder()
                .max_capacity(CACHE_CAPACITY)
                .time_to_live(ttl.stale)
                .build(),
        }
    }

    /// Current conditions for `place`, answered within `budget`. A cache hit needs no budget and
    /// makes no outbound call.
    pub async fn current(&self, place: &str, budget: Duration) -> Report {
        let key = cache_key(place);
        if key.is_empty() {
            return Report::UnknownPlace;
        }
        match self.fresh.get(&key).await {
            Some(Lookup::Found(conditions)) => return Report::Fresh(conditions),
            Some(Lookup::UnknownPlace) => return Report::UnknownPlace,
            None => {}
        }
        let load = async {
            let lookup = self.provider.lookup(&key).await?;
            if let Lookup::Found(conditions) = &lookup {
                self.stale.insert(key.clone(), conditions.clone()).await;
            }
            Ok::<_, WeatherError>(lookup)
        };
        let error =
            match tokio::time::timeout(budget, self.fresh.try_get_with(key.clone(), load)).await {
                Ok(Ok(Lookup::Found(conditions))) => return Report::Fresh(conditions),
                Ok(Ok(Lookup::UnknownPlace)) => return Report::UnknownPlace,
                Ok(Err(error)) => error,
                Err(_) => Arc::new(WeatherError::Timeout(budget)),
            };
        match self.stale.get(&key).await {
            Some(conditions) => Report::Stale { conditions, error },
            None => Report::Unavailable(error),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_ignore_case_and_spacing() {
        assert_eq!(cache_key("  New   York "), "new york");
        assert_eq!(cache_key("MUMBAI"), cache_key("mumbai"));
        assert_eq!(cache_key("ZÜRICH"), "zürich");
        assert_eq!(cache_key(" \t "), "");
    }

    #[test]
    fn wmo_codes_in_words() {
        assert_eq!(condition(0), "clear sky");
        assert_eq!(condition(2), "partly cloudy");
        assert_eq!(condition(63), "rain");
        assert_eq!(condition(99), "thunderstorm with heavy hail");
        assert_eq!(condition(4), "mixed conditions");
    }
}
