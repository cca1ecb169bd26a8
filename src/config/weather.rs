//! Settings of the weather provider (the `weather` tag): `WEATHER_*`.

use std::fmt;
use std::time::Duration;

use clap::Args;
use reqwest::Url;

use super::url::{Schemes, parse_url, without_query};
use crate::clients::weather::{DEFAULT_FORECAST_URL, DEFAULT_GEOCODING_URL};

/// Default `WEATHER_TIMEOUT_MS` (when `WEBHOOK_DEADLINE_MS` is longer).
pub const DEFAULT_WEATHER_TIMEOUT_MS: u64 = 2500;
/// Shortest `WEATHER_TIMEOUT_MS`: enough for a cached or loopback answer, not for a round trip.
const MIN_WEATHER_TIMEOUT_MS: u64 = 10;
/// Default `WEATHER_CACHE_TTL_SECS`: ten minutes.
pub const DEFAULT_WEATHER_CACHE_TTL_SECS: u64 = 600;
/// Default `WEATHER_STALE_TTL_SECS`: an hour.
pub const DEFAULT_WEATHER_STALE_TTL_SECS: u64 = 3600;

/// Settings of the weather provider, as given.
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "Weather provider")]
pub struct WeatherArgs {
    /// Geocoding endpoint (Open-Meteo's, or a compatible one): place name -> coordinates.
    #[arg(long, env, value_name = "URL", default_value = DEFAULT_GEOCODING_URL, hide_short_help = true)]
    pub weather_geocoding_url: String,

    /// Forecast endpoint (Open-Meteo's, or a compatible one): coordinates -> current conditions.
    #[arg(long, env, value_name = "URL", default_value = DEFAULT_FORECAST_URL, hide_short_help = true)]
    pub weather_forecast_url: String,

    /// Budget for one weather lookup (geocoding and forecast together) in milliseconds.
    ///
    /// 10 up to WEBHOOK_DEADLINE_MS. Unset: 2500, or WEBHOOK_DEADLINE_MS when that is shorter. A
    /// call with less time left gets what it has left, less the time kept to answer.
    #[arg(long, env, value_name = "MS", hide_short_help = true)]
    pub weather_timeout_ms: Option<u64>,

    /// Seconds a place's conditions are reused without asking the provider again.
    ///
    /// 0: always ask; concurrent calls for one place still share one lookup.
    #[arg(long, env, value_name = "SECS", default_value_t = DEFAULT_WEATHER_CACHE_TTL_SECS, hide_short_help = true)]
    pub weather_cache_ttl_secs: u64,

    /// Seconds a place's last good conditions may stand in when the provider fails.
    ///
    /// At least WEATHER_CACHE_TTL_SECS.
    #[arg(long, env, value_name = "SECS", default_value_t = DEFAULT_WEATHER_STALE_TTL_SECS, hide_short_help = true)]
    pub weather_stale_ttl_secs: u64,
}

/// Weather provider settings, validated.
#[derive(Clone)]
pub struct WeatherConfig {
    /// Geocoding endpoint.
    pub geocoding_url: Url,
    /// Forecast endpoint.
    pub forecast_url: Url,
    /// Budget for one lookup (both calls).
    pub timeout: Duration,
    /// How long a lookup is reused.
    pub cache_ttl: Duration,
    /// How long the last good conditions may stand in on failure.
    pub stale_ttl: Duration,
}

impl Default for WeatherConfig {
    /// Open-Meteo, with the default budget and lifetimes.
    fn default() -> Self {
        WeatherConfig {
            geocoding_url: Url::parse(DEFAULT_GEOCODING_URL)
                .expect("the built-in geocoding URL is valid"),
            forecast_url: Url::parse(DEFAULT_FORECAST_URL)
                .expect("the built-in forecast URL is valid"),
            timeout: Duration::from_millis(DEFAULT_WEATHER_TIMEOUT_MS),
            cache_ttl: Duration::from_secs(DEFAULT_WEATHER_CACHE_TTL_SECS),
            stale_ttl: Duration::from_secs(DEFAULT_WEATHER_STALE_TTL_SECS),
        }
    }
}

impl fmt::Debug for WeatherConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Without queries: a commercial provider URL may carry an API key there.
        f.debug_struct("WeatherConfig")
            .field("geocoding_url", &without_query(&self.geocoding_url))
            .field("forecast_url", &without_query(&self.forecast_url))
            .field("timeout", &self.timeout)
            .field("cache_ttl", &self.cache_ttl)
            .field("stale_ttl", &self.stale_ttl)
            .finish()
    }
}

impl WeatherArgs {
    /// Validates the weather settings; `deadline_ms` is WEBHOOK_DEADLINE_MS.
    pub(crate) fn validate(
        &self,
        deadline_ms: u64,
        problems: &mut Vec<String>,
    ) -> Option<WeatherConfig> {
        let mut url = |name, raw| {
            parse_url(name, raw, Schemes::HttpOrHttps)
                .map_err(|problem| problems.push(problem))
                .ok()
        };
        let geocoding_url = url("WEATHER_GEOCODING_URL", &self.weather_geocoding_url);
        let forecast_url = url("WEATHER_FORECAST_URL", &self.weather_forecast_url);
        let before = problems.len();
        // Unset, the budget follows a short deadline down: a per-call budget never exceeds the
        // deadline anyway, and refusing the default would make every short deadline need two settings.
        let timeout_ms = match self.weather_timeout_ms {
            None => DEFAULT_WEATHER_TIMEOUT_MS.min(deadline_ms),
            Some(ms) if (MIN_WEATHER_TIMEOUT_MS..=deadline_ms).contains(&ms) => ms,
            Some(ms) => {
                problems.push(format!(
                    "WEATHER_TIMEOUT_MS: {ms} must be between {MIN_WEATHER_TIMEOUT_MS} and WEBHOOK_DEADLINE_MS \
                     ({deadline_ms}); leave it unset to follow the deadline"
                ));
                ms
            }
        };
        if self.weather_cache_ttl_secs > 86_400 {
            problems.push(format!(
                "WEATHER_CACHE_TTL_SECS: {} is more than 86400 (a day)",
                self.weather_cache_ttl_secs
            ));
        }
        if self.weather_stale_ttl_secs < self.weather_cache_ttl_secs
            || self.weather_stale_ttl_secs > 7 * 86_400
        {
            problems.push(format!(
                "WEATHER_STALE_TTL_SECS: {} must be between WEATHER_CACHE_TTL_SECS ({}) and 604800 (a week)",
                self.weather_stale_ttl_secs, self.weather_cache_ttl_secs
            ));
        }
        if problems.len() > before {
            return None;
        }
        Some(WeatherConfig {
            geocoding_url: geocoding_url?,
            forecast_url: forecast_url?,
            timeout: Duration::from_millis(timeout_ms),
            cache_ttl: Duration::from_secs(self.weather_cache_ttl_secs),
            stale_ttl: Duration::from_secs(self.weather_stale_ttl_secs),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::tests::parse;
    use crate::config::{Config, ConfigErrors};

    #[test]
    fn weather_defaults_to_open_meteo() {
        let c = Config::from_args(&parse(&["--auth-mode", "none"])).unwrap();
        assert_eq!(c.weather.geocoding_url.as_str(), DEFAULT_GEOCODING_URL);
        assert_eq!(c.weather.forecast_url.as_str(), DEFAULT_FORECAST_URL);
        assert_eq!(c.weather.timeout, Duration::from_millis(2500));
        assert_eq!(c.weather.cache_ttl, Duration::from_secs(600));
        assert_eq!(c.weather.stale_ttl, Duration::from_secs(3600));
        assert!(c.booking_api.is_none());
        assert_eq!(
            format!("{:?}", c.weather),
            format!("{:?}", WeatherConfig::default())
        );
    }

    #[test]
    fn weather_settings_are_validated() {
        let mut args = parse(&["--auth-mode", "none"]);
        args.weather.weather_geocoding_url = "ftp://example.com/search".into();
        args.weather.weather_forecast_url = "https://user:hunter2@example.com/forecast".into();
        args.weather.weather_timeout_ms = Some(4501);
        args.weather.weather_cache_ttl_secs = 7200;
        args.weather.weather_stale_ttl_secs = 60;
        let err: ConfigErrors = Config::from_args(&args).unwrap_err();
        let text = err.to_string();
        assert_eq!(err.0.len(), 4, "{text}");
        assert!(text.contains("WEATHER_GEOCODING_URL must be an http or https URL"));
        assert!(text.contains("WEATHER_FORECAST_URL must not contain a user name or password"));
        assert!(!text.contains("hunter2"), "{text}");
        assert!(text.contains(
            "WEATHER_TIMEOUT_MS: 4501 must be between 10 and WEBHOOK_DEADLINE_MS (4500)"
        ));
        assert!(text.contains("WEATHER_STALE_TTL_SECS: 60 must be between"));
    }

    #[test]
    fn a_short_deadline_takes_the_weather_budget_down_with_it() {
        let c = Config::from_args(&parse(&[
            "--auth-mode",
            "none",
            "--webhook-deadline-ms",
            "50",
        ]))
        .unwrap();
        assert_eq!(c.deadline, Duration::from_millis(50));
        assert_eq!(c.weather.timeout, Duration::from_millis(50));
        let c = Config::from_args(&parse(&[
            "--auth-mode",
            "none",
            "--webhook-deadline-ms",
            "50",
            "--weather-timeout-ms",
            "30",
        ]))
        .unwrap();
        assert_eq!(c.weather.timeout, Duration::from_millis(30));
        for (deadline, weather, problem) in [
            ("9", None, "WEBHOOK_DEADLINE_MS: 9 is outside 10..=29000"),
            ("50", Some("9"), "WEATHER_TIMEOUT_MS: 9 must be between 10"),
            (
                "50",
                Some("2500"),
                "WEATHER_TIMEOUT_MS: 2500 must be between 10 and WEBHOOK_DEADLINE_MS (50)",
            ),
        ] {
            let mut argv = vec!["--auth-mode", "none", "--webhook-deadline-ms", deadline];
            argv.extend(
                weather
                    .map(|w| ["--weather-timeout-ms", w])
                    .into_iter()
                    .flatten(),
            );
            let text = Config::from_args(&parse(&argv)).unwrap_err().to_string();
            assert!(text.contains(problem), "{deadline}/{weather:?}: {text}");
        }
    }

    #[test]
    fn weather_urls_are_shown_without_their_query() {
        let c = WeatherConfig {
            geocoding_url: "https://customer-api.open-meteo.com/v1/search?apikey=s3cret"
                .parse()
                .unwrap(),
            ..WeatherConfig::default()
        };
        let shown = format!("{c:?}");
        assert!(shown.contains("https://customer-api.open-meteo.com/v1/search"));
        assert!(!shown.contains("s3cret"), "{shown}");
    }
}
