//! The one validator for URL settings (key set, weather provider, booking API).

use std::net::IpAddr;

use reqwest::Url;

/// Which schemes a URL setting accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Schemes {
    /// http or https (public data, e.g. the weather provider).
    HttpOrHttps,
    /// https; plain http only to this machine (tests, dev tools), because what travels carries
    /// or vouches for credentials (ID tokens, token-signing keys).
    HttpsOrLoopback,
}

/// Parses the URL setting `name`: `schemes`, a host, no credentials and no fragment. The problem
/// never echoes the value (a provider URL may carry a key in its query).
pub(crate) fn parse_url(name: &str, raw: &str, schemes: Schemes) -> Result<Url, String> {
    let url = Url::parse(raw.trim()).map_err(|e| format!("{name} is not a valid URL ({e})"))?;
    match (url.scheme(), schemes) {
        ("https", _) | ("http", Schemes::HttpOrHttps) => {}
        ("http", Schemes::HttpsOrLoopback) if url.host_str().is_some_and(is_loopback) => {}
        ("http", Schemes::HttpsOrLoopback) => {
            return Err(format!(
                "{name} must use https (plain http is accepted on loopback only)"
            ));
        }
        (_, Schemes::HttpOrHttps) => return Err(format!("{name} must be an http or https URL")),
        (_, Schemes::HttpsOrLoopback) => return Err(format!("{name} must be an https URL")),
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(format!("{name} has no host"));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(format!("{name} must not contain a user name or password"));
    }
    if url.fragment().is_some() {
        return Err(format!("{name} must not have a #fragment"));
    }
    Ok(url)
}

/// `localhost` or a loopback address (`host_str` form: an IPv6 address is in brackets).
fn is_loopback(host: &str) -> bool {
    host.eq_ignore_ascii_case("localhost")
        || host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// The URL without its query (which may carry a key), for `Debug` output.
pub(crate) fn without_query(url: &Url) -> String {
    format!("{}{}", url.origin().ascii_serialization(), url.path())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn https_or_loopback_allows_plain_http_only_to_this_machine() {
        for ok in [
            "https://www.googleapis.com/oauth2/v3/certs",
            "http://127.0.0.1:9000/certs",
            "http://localhost/c",
            "http://LOCALHOST/c",
            "http://[::1]:1/c",
        ] {
            assert!(parse_url("X", ok, Schemes::HttpsOrLoopback).is_ok(), "{ok}");
        }
        for (bad, says) in [
            ("http://10.0.0.1/c", "X must use https"),
            ("http://localhost.example.com/c", "X must use https"),
            ("ftp://x/c", "X must be an https URL"),
            ("certs", "X is not a valid URL"),
            ("", "X is not a valid URL"),
            (
                "https://user:pw@host/c",
                "X must not contain a user name or password",
            ),
            ("https://host/c#f", "X must not have a #fragment"),
        ] {
            let err = parse_url("X", bad, Schemes::HttpsOrLoopback).unwrap_err();
            assert!(err.starts_with(says), "{bad}: {err}");
        }
    }

    #[test]
    fn http_or_https_takes_any_host_and_never_echoes_the_value() {
        assert!(parse_url("X", " http://10.0.0.1/c ", Schemes::HttpOrHttps).is_ok());
        let err = parse_url("X", "ftp://s3cret@x/c", Schemes::HttpOrHttps).unwrap_err();
        assert_eq!(err, "X must be an http or https URL");
        let err = parse_url("X", "https://u:s3cret@x/c", Schemes::HttpOrHttps).unwrap_err();
        assert!(!err.contains("s3cret"), "{err}");
        assert!(parse_url("X", "file:///etc/passwd", Schemes::HttpOrHttps).is_err());
    }
}
