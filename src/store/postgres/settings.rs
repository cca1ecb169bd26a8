//! `BOOKING_DATABASE_URL` and friends, parsed and checked once at start.
//!
//! The URL is either a `postgresql://` URL or libpq's `key=value` form; tokio-postgres parses both.
//! Two libpq keys it does not know are taken out first and handled here:
//! - `sslmode`: `disable`, `prefer` (libpq's default: TLS if the server offers it, unverified),
//!   `require` (TLS, certificate not verified: libpq's meaning) or `verify-full` (TLS, the chain and
//!   the host name verified against `sslrootcert` or else the platform's trust store);
//! - `sslrootcert`: a PEM file of the CAs to trust with `verify-full` (Cloud SQL's server CA).
//!
//! A Unix socket host (`host=/cloudsql/PROJECT:REGION:INSTANCE`, Cloud Run's built-in Cloud SQL
//! connection) never uses TLS: the socket is local and the Cloud SQL connector encrypts the way to
//! the instance.
//!
//! The password comes from the URL (a Secret Manager secret exposed as the environment variable), or,
//! with [`PgAuth::Iam`], is an OAuth2 access token minted for each new connection. Nothing here ever
//! formats the password: [`PgSettings`]'s `Display` and `Debug` show user, hosts, database, TLS mode
//! and the kind of credential only.

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use tokio_postgres::config::Host;

/// How connections prove who they are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PgAuth {
    /// The password in the URL (or none, e.g. `trust` or peer authentication on a socket).
    Password,
    /// Cloud SQL IAM database authentication: the password of every new connection is a fresh
    /// OAuth2 access token of the runtime service account (Application Default Credentials).
    Iam,
}

impl FromStr for PgAuth {
    type Err = String;
    fn from_str(s: &str) -> Result<PgAuth, String> {
        match s.trim().to_ascii_lowercase().as_str() {
            "password" | "" => Ok(PgAuth::Password),
            "iam" => Ok(PgAuth::Iam),
            other => Err(format!("{other:?} is not one of password, iam")),
        }
    }
}

/// TLS on TCP connections.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TlsMode {
    /// Plain TCP.
    Disable,
    /// TLS when the server offers it; the certificate is not verified.
    Prefer,
    /// TLS always; the certificate is not verified (libpq's `require`).
    Require,
    /// TLS always; chain and host name verified, against these roots or the platform's store.
    VerifyFull {
        /// `sslrootcert`, when given.
        root_cert: Option<PathBuf>,
    },
}

impl TlsMode {
    fn name(&self) -> &'static str {
        match self {
            TlsMode::Disable => "disable",
            TlsMode::Prefer => "prefer",
            TlsMode::Require => "require",
            TlsMode::VerifyFull { .. } => "verify-full",
        }
    }
}

/// Validated PostgreSQL connection settings.
#[derive(Clone)]
pub struct PgSettings {
    /// tokio-postgres's config without `sslmode`/`sslrootcert` (and, with IAM, without a password).
    pub(crate) config: tokio_postgres::Config,
    /// TLS on TCP.
    pub tls: TlsMode,
    /// Where the password comes from.
    pub auth: PgAuth,
    /// Connections this process keeps at most.
    pub pool_size: usize,
}

/// Why `BOOKING_DATABASE_URL` was refused (never contains the password).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("BOOKING_DATABASE_URL: {0}")]
pub struct PgSettingsError(pub String);

/// How long one connection attempt may take at most (the call's deadline usually cuts it shorter).
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// The `.gserviceaccount.com` suffix that IAM database user names leave out.
const SA_SUFFIX: &str = ".gserviceaccount.com";

impl PgSettings {
    /// Parses a URL or `key=value` string (see the module docs).
    pub fn parse(url: &str, auth: PgAuth, pool_size: usize) -> Result<PgSettings, PgSettingsError> {
        let err = |m: String| PgSettingsError(m);
        let url = url.trim();
        if url.is_empty() {
            return Err(err("is empty".into()));
        }
        let (rest, sslmode, root_cert) =
            if url.starts_with("postgres://") || url.starts_with("postgresql://") {
                take_url_params(url)
            } else {
                take_kv_params(url).map_err(err)?
            };
        let mut config = tokio_postgres::Config::from_str(&rest)
            // tokio-postgres's messages name the option, never its value.
            .map_err(|e| err(format!("cannot parse: {e}")))?;
        let tls = tls_mode(sslmode.as_deref(), root_cert).map_err(err)?;
        if config.get_hosts().is_empty() {
            return Err(err(
                "no host: give host=/cloudsql/PROJECT:REGION:INSTANCE or a TCP host".into(),
            ));
        }
        if config.get_dbname().is_none() {
            return Err(err("no database name (dbname=...)".into()));
        }
        let Some(user) = config.get_user().map(str::to_owned) else {
            return Err(err("no user".into()));
        };
        if auth == PgAuth::Iam {
            if config.get_password().is_some() {
                return Err(err(
                    "has a password, but BOOKING_DATABASE_AUTH=iam mints one per connection: \
                     leave the password out"
                        .into(),
                ));
            }
            // The IAM user of a service account is its email without the domain's tail.
            if let Some(short) = user.strip_suffix(SA_SUFFIX) {
                config.user(short);
            }
            let tcp = config.get_hosts().iter().any(|h| matches!(h, Host::Tcp(_)));
            if tcp && matches!(tls, TlsMode::Disable | TlsMode::Prefer) {
                return Err(err(
                    "BOOKING_DATABASE_AUTH=iam over TCP sends an access token: use \
                     sslmode=require or verify-full (or the /cloudsql Unix socket)"
                        .into(),
                ));
            }
        }
        if pool_size == 0 {
            return Err(err("the pool size must be at least 1".into()));
        }
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(CONNECT_TIMEOUT);
        }
        config.application_name("cx-webhook");
        Ok(PgSettings {
            config,
            tls,
            auth,
            pool_size,
        })
    }

    /// True when every host is a Unix socket directory.
    pub fn unix_socket_only(&self) -> bool {
        self.config
            .get_hosts()
            .iter()
            .all(|h| !matches!(h, Host::Tcp(_)))
    }
}

/// The TLS mode a libpq `sslmode` (and `sslrootcert`) asks for, or why it cannot be served.
fn tls_mode(sslmode: Option<&str>, root_cert: Option<String>) -> Result<TlsMode, String> {
    let tls = match sslmode {
        None | Some("prefer") => TlsMode::Prefer,
        Some("disable") => TlsMode::Disable,
        Some("require") => TlsMode::Require,
        Some("verify-full") => TlsMode::VerifyFull {
            root_cert: root_cert.clone().map(PathBuf::from),
        },
        Some(mode @ ("allow" | "verify-ca")) => {
            return Err(format!(
                "sslmode={mode} is not supported: use disable, prefer, require or verify-full"
            ));
        }
        Some(other) => return Err(format!("sslmode={other:?} is not a libpq sslmode")),
    };
    if root_cert.is_some() && !matches!(tls, TlsMode::VerifyFull { .. }) {
        return Err("sslrootcert is only used with sslmode=verify-full".into());
    }
    Ok(tls)
}

impl fmt::Display for PgSettings {
    /// `user@host[,host]:port/dbname (sslmode=…, auth=…)`, without any secret.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let c = &self.config;
        let hosts: Vec<String> = c
            .get_hosts()
            .iter()
            .map(|h| match h {
                Host::Tcp(name) => name.clone(),
                #[cfg(unix)]
                Host::Unix(path) => path.display().to_string(),
            })
            .collect();
        let ports: Vec<String> = c.get_ports().iter().map(u16::to_string).collect();
        let credential = match (self.auth, c.get_password().is_some()) {
            (PgAuth::Iam, _) => "iam token",
            (PgAuth::Password, true) => "password",
            (PgAuth::Password, false) => "no password",
        };
        let tls = if self.unix_socket_only() {
            "unix socket"
        } else {
            self.tls.name()
        };
        write!(
            f,
            "{}@{}:{}/{} (tls: {tls}, credential: {credential})",
            c.get_user().unwrap_or("?"),
            hosts.join(","),
            if ports.is_empty() {
                "5432".into()
            } else {
                ports.join(",")
            },
            c.get_dbname().unwrap_or("?"),
        )
    }
}

impl fmt::Debug for PgSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PgSettings({self})")
    }
}

type Taken = (String, Option<String>, Option<String>);

/// Takes `sslmode` and `sslrootcert` out of a URL's query string.
fn take_url_params(url: &str) -> Taken {
    let Some((base, query)) = url.split_once('?') else {
        return (url.to_owned(), None, None);
    };
    let (mut sslmode, mut root) = (None, None);
    let mut kept = Vec::new();
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        match k {
            "sslmode" => sslmode = Some(percent_decode(v)),
            "sslrootcert" => root = Some(percent_decode(v)),
            _ => kept.push(pair),
        }
    }
    let rest = if kept.is_empty() {
        base.to_owned()
    } else {
        format!("{base}?{}", kept.join("&"))
    };
    (rest, sslmode, root)
}

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let hex = |c: u8| (c as char).to_digit(16);
        if b[i] == b'%'
            && i + 2 < b.len()
            && let (Some(h), Some(l)) = (hex(b[i + 1]), hex(b[i + 2]))
        {
            out.push((h * 16 + l) as u8);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Takes `sslmode` and `sslrootcert` out of a libpq `key=value` string and gives back the rest,
/// re-quoted.
fn take_kv_params(s: &str) -> Result<Taken, String> {
    let (mut sslmode, mut root) = (None, None);
    let mut kept = Vec::new();
    let mut chars = s.chars().peekable();
    loop {
        while chars.next_if(|c| c.is_whitespace()).is_some() {}
        if chars.peek().is_none() {
            break;
        }
        let mut key = String::new();
        while let Some(c) = chars.next_if(|c| *c != '=' && !c.is_whitespace()) {
            key.push(c);
        }
        while chars.next_if(|c| c.is_whitespace()).is_some() {}
        if chars.next() != Some('=') {
            return Err(format!("expected `=` after {key:?}"));
        }
        while chars.next_if(|c| c.is_whitespace()).is_some() {}
        let mut value = String::new();
        if chars.next_if_eq(&'\'').is_some() {
            loop {
                match chars.next() {
                    None => return Err(format!("unterminated quoted value of {key:?}")),
                    Some('\'') => break,
                    Some('\\') => value.extend(chars.next()),
                    Some(c) => value.push(c),
                }
            }
        } else {
            while let Some(c) = chars.next_if(|c| !c.is_whitespace()) {
                if c == '\\' {
                    value.extend(chars.next());
                } else {
                    value.push(c);
                }
            }
        }
        match key.as_str() {
            "sslmode" => sslmode = Some(value),
            "sslrootcert" => root = Some(value),
            _ => kept.push(format!(
                "{key}='{}'",
                value.replace('\\', "\\\\").replace('\'', "\\'")
            )),
        }
    }
    Ok((kept.join(" "), sslmode, root))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn url_form_with_tls_and_password_is_redacted() {
        let s = PgSettings::parse(
            "postgresql://cxw:s3cret-pw@db.example.com:6432/bookings?sslmode=verify-full&sslrootcert=%2Fsecrets%2Fca.pem",
            PgAuth::Password,
            4,
        )
        .unwrap();
        assert_eq!(
            s.tls,
            TlsMode::VerifyFull {
                root_cert: Some("/secrets/ca.pem".into())
            }
        );
        let shown = format!("{s} {s:?}");
        assert!(!shown.contains("s3cret"), "{shown}");
        assert_eq!(
            s.to_string(),
            "cxw@db.example.com:6432/bookings (tls: verify-full, credential: password)"
        );
    }

    #[test]
    fn key_value_form_with_a_cloud_sql_socket() {
        let s = PgSettings::parse(
            "host=/cloudsql/proj:europe-west1:main user=cxw password='a \\'b\\' c' dbname=cxw",
            PgAuth::Password,
            4,
        )
        .unwrap();
        assert!(s.unix_socket_only());
        assert_eq!(s.config.get_password(), Some(&b"a 'b' c"[..]));
        assert_eq!(
            s.to_string(),
            "cxw@/cloudsql/proj:europe-west1:main:5432/cxw (tls: unix socket, credential: password)"
        );
    }

    #[test]
    fn iam_needs_no_password_strips_the_domain_and_wants_tls_on_tcp() {
        let s = PgSettings::parse(
            "host=/cloudsql/p:r:i user=cx-webhook@proj.iam.gserviceaccount.com dbname=cxw",
            PgAuth::Iam,
            4,
        )
        .unwrap();
        assert_eq!(s.config.get_user(), Some("cx-webhook@proj.iam"));
        assert!(
            PgSettings::parse(
                "host=/cloudsql/p:r:i user=u password=x dbname=cxw",
                PgAuth::Iam,
                4
            )
            .is_err()
        );
        let plain = PgSettings::parse("postgresql://u@10.0.0.5/cxw", PgAuth::Iam, 4);
        assert!(plain.unwrap_err().0.contains("sslmode"));
        assert!(
            PgSettings::parse(
                "postgresql://u@10.0.0.5/cxw?sslmode=require",
                PgAuth::Iam,
                4
            )
            .is_ok()
        );
    }

    #[test]
    fn bad_settings_are_named_without_their_secrets() {
        for (url, part) in [
            ("", "empty"),
            ("postgresql://u:pw@h/db?sslmode=verify-ca", "not supported"),
            (
                "postgresql://u:pw@h/db?sslmode=bogus",
                "not a libpq sslmode",
            ),
            ("postgresql://u:pw@h/db?sslrootcert=/x", "only used"),
            ("postgresql://u:pw@h", "database"),
            ("host=h dbname=d password=pw", "no user"),
            ("host=h user=u dbname=d password='pw", "unterminated"),
            ("postgresql://u:pw@h/db?bogus=1", "cannot parse"),
        ] {
            let e = PgSettings::parse(url, PgAuth::Password, 4).unwrap_err();
            assert!(e.to_string().contains(part), "{url}: {e}");
            assert!(!e.to_string().contains("pw"), "{url}: {e}");
        }
        assert!(PgSettings::parse("postgresql://u@h/db", PgAuth::Password, 0).is_err());
        assert_eq!("IAM".parse::<PgAuth>(), Ok(PgAuth::Iam));
        assert!("oauth".parse::<PgAuth>().is_err());
    }
}
