//! Settings of the remote booking API: `BOOKING_API_*`.

use clap::Args;
use reqwest::Url;

use super::url::{Schemes, parse_url};

/// Settings of the remote booking API, as given.
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "Remote booking API")]
pub struct BookingApiArgs {
    /// Remote booking API (a dealer-management system) that all instances can share.
    ///
    /// Bookings are POSTed there as JSON with a Google ID token (contract in README). https, or
    /// http for localhost only. Unset: bookings are kept in the SQLite file.
    #[arg(long, env, value_name = "URL", hide_short_help = true)]
    pub booking_api_url: Option<String>,

    /// Audience of the ID token sent to BOOKING_API_URL (default: the URL's origin, which Cloud Run
    /// accepts).
    #[arg(long, env, value_name = "AUDIENCE", hide_short_help = true)]
    pub booking_api_audience: Option<String>,
}

/// Remote booking API settings, validated.
#[derive(Debug, Clone)]
pub struct BookingApiConfig {
    /// Where bookings are POSTed.
    pub url: Url,
    /// ID token audience; `None` means the URL's origin.
    pub audience: Option<String>,
}

impl BookingApiArgs {
    /// Validates the booking API settings: `None` when BOOKING_API_URL is unset (or blank).
    pub(crate) fn validate(&self, problems: &mut Vec<String>) -> Option<BookingApiConfig> {
        let audience = non_empty(&self.booking_api_audience).map(str::to_owned);
        let Some(raw) = non_empty(&self.booking_api_url) else {
            if audience.is_some() {
                problems.push("BOOKING_API_AUDIENCE is set but BOOKING_API_URL is not".into());
            }
            return None;
        };
        // Requests carry an ID token: https, except to this machine.
        match parse_url("BOOKING_API_URL", raw, Schemes::HttpsOrLoopback) {
            Ok(url) => Some(BookingApiConfig { url, audience }),
            Err(problem) => {
                problems.push(problem);
                None
            }
        }
    }
}

/// The trimmed value, or `None` when unset or blank.
fn non_empty(value: &Option<String>) -> Option<&str> {
    value.as_deref().map(str::trim).filter(|v| !v.is_empty())
}

#[cfg(test)]
mod tests {
    use crate::config::Config;
    use crate::config::tests::parse;

    #[test]
    fn booking_api_needs_https_except_on_localhost() {
        let with = |url: &str, audience: Option<&str>| {
            let mut args = parse(&["--auth-mode", "none"]);
            args.booking_api.booking_api_url = Some(url.into());
            args.booking_api.booking_api_audience = audience.map(str::to_owned);
            Config::from_args(&args)
        };
        let c = with("https://dms.example.com/v1/bookings", Some("https://dms")).unwrap();
        let b = c.booking_api.unwrap();
        assert_eq!(b.url.as_str(), "https://dms.example.com/v1/bookings");
        assert_eq!(b.audience.as_deref(), Some("https://dms"));
        for local in [
            "http://127.0.0.1:9000/b",
            "http://localhost/b",
            "http://[::1]:1/b",
        ] {
            assert!(with(local, None).unwrap().booking_api.is_some(), "{local}");
        }
        let err = with("http://dms.example.com/b", None).unwrap_err();
        assert!(err.to_string().contains("use https"), "{err}");
        assert!(with("not a url", None).is_err());
        assert!(with("  ", None).unwrap().booking_api.is_none());
    }

    #[test]
    fn booking_api_audience_needs_a_url() {
        let mut args = parse(&["--auth-mode", "none"]);
        args.booking_api.booking_api_url = None;
        args.booking_api.booking_api_audience = Some("https://dms".into());
        let err = Config::from_args(&args).unwrap_err();
        assert_eq!(
            err.0,
            vec!["BOOKING_API_AUDIENCE is set but BOOKING_API_URL is not".to_string()]
        );
    }
}
