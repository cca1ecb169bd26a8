//! Outbound HTTP: the services cx-webhook calls (the weather provider, the remote booking API).
//!
//! Design choice: one shared [`reqwest::Client`] (rustls, already in the tree through
//! google-cloud-auth), built once at start by [`http_client`] and cloned into every client, so all
//! outbound calls share one connection pool. Every client, this one and the key set's, verifies
//! servers with the process's one set of system roots ([`crate::tls`]), loaded once and lazily.
//! The shared client carries a connect timeout and, as a last resort, a total timeout equal to the
//! webhook deadline; each call bounds itself by the time its webhook call has left (a per-request
//! timeout replaces the total one, so callers never pass more than that).
//! Redirects are not followed (an API that redirects is misconfigured, and a redirect must never
//! carry our ID token elsewhere). Response bodies are read with a size cap ([`read_capped`]) so a
//! misbehaving server cannot make us buffer without bound.
//!
//! This module knows nothing of Dialogflow: it speaks HTTP and returns domain values and errors.

pub mod booking_api;
pub mod weather;

use std::time::Duration;

use bytes::{Bytes, BytesMut};

/// Longest time to establish a TCP (and TLS) connection to an outside service.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);

/// Largest response body accepted from an outside service.
pub const MAX_RESPONSE_BYTES: usize = 64 * 1024;

/// An outbound HTTP client could not be built.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The TLS configuration was refused.
    #[error("cannot configure TLS")]
    Tls(#[source] rustls::Error),
    /// reqwest refused the settings.
    #[error("cannot build the HTTP client")]
    Build(#[source] reqwest::Error),
}

/// Builds an outbound client. `total` is the ceiling for any one request (the webhook deadline);
/// callers set tighter per-request timeouts. The connect timeout is [`CONNECT_TIMEOUT`], or `total`
/// when that is shorter. Servers are verified with the system's roots
/// ([`crate::tls::system_roots`]); HTTP/2 and HTTP/1.1 are offered by ALPN, as reqwest offers them
/// on its own.
pub fn http_client(total: Duration) -> Result<reqwest::Client, ClientError> {
    http_client_verifying(total, crate::tls::system_roots())
}

/// [`http_client`] with another verifier (tests trust their own certificate authority).
fn http_client_verifying(
    total: Duration,
    verifier: std::sync::Arc<dyn rustls::client::danger::ServerCertVerifier>,
) -> Result<reqwest::Client, ClientError> {
    let mut tls = crate::tls::client_config(verifier).map_err(ClientError::Tls)?;
    tls.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    reqwest::Client::builder()
        .tls_backend_preconfigured(tls)
        .connect_timeout(CONNECT_TIMEOUT.min(total))
        .timeout(total)
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(concat!("cx-webhook/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(ClientError::Build)
}

/// A response body could not be read in full.
#[derive(Debug, thiserror::Error)]
pub enum BodyError {
    /// The body is larger than the cap.
    #[error("the response body is larger than {limit} bytes")]
    TooLarge {
        /// The cap that was exceeded.
        limit: usize,
    },
    /// The connection failed or timed out while reading.
    #[error("reading the response body failed")]
    Read(#[source] reqwest::Error),
}

/// Reads a whole response body, refusing more than `limit` bytes.
pub async fn read_capped(
    mut response: reqwest::Response,
    limit: usize,
) -> Result<Bytes, BodyError> {
    if response
        .content_length()
        .is_some_and(|len| len > limit as u64)
    {
        return Err(BodyError::TooLarge { limit });
    }
    let mut body = BytesMut::new();
    while let Some(chunk) = response
        .chunk()
        .await
        .map_err(|e| BodyError::Read(e.without_url()))?
    {
        if body.len() + chunk.len() > limit {
            return Err(BodyError::TooLarge { limit });
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body.freeze())
}

/// Text from an outside service made safe to show or log: control characters removed, whitespace
/// collapsed, at most `max_chars` characters.
pub fn clean_text(text: &str, max_chars: usize) -> String {
    let mut out = String::new();
    for word in text.split_whitespace() {
        let word: String = word.chars().filter(|c| !c.is_control()).collect();
        if word.is_empty() {
            continue;
        }
        if !out.is_empty() {
            out.push(' ');
        }
        out.push_str(&word);
    }
    match out.char_indices().nth(max_chars) {
        Some((cut, _)) => out[..cut].trim_end().to_owned(),
        None => out,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clean_text_strips_controls_and_bounds_length() {
        assert_eq!(
            clean_text("  Mum\u{0007}bai \n\t India ", 100),
            "Mumbai India"
        );
        assert_eq!(clean_text("abcdef", 3), "abc");
        assert_eq!(clean_text("ab cdef", 3), "ab");
        assert_eq!(clean_text("\u{0000}", 10), "");
        assert_eq!(clean_text("Zürich", 3), "Zür");
    }

    /// An HTTPS server on loopback presenting `ca`'s `localhost` certificate, offering h2 and
    /// HTTP/1.1 by ALPN, answering every request with the protocol version it was made in.
    async fn https_server(ca: &crate::tls::test_ca::TestCa) -> std::net::SocketAddr {
        use hyper_util::rt::{TokioExecutor, TokioIo};
        let mut config = (*ca.server).clone();
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        let acceptor = tokio_rustls::TlsAcceptor::from(std::sync::Arc::new(config));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                let acceptor = acceptor.clone();
                tokio::spawn(async move {
                    let Ok(tls) = acceptor.accept(tcp).await else {
                        return;
                    };
                    let answer = hyper::service::service_fn(|req: http::Request<_>| async move {
                        let version = format!("{:?}", req.version());
                        Ok::<_, std::convert::Infallible>(http::Response::new(
                            http_body_util::Full::new(Bytes::from(version)),
                        ))
                    });
                    let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                        .serve_connection(TokioIo::new(tls), answer)
                        .await;
                });
            }
        });
        addr
    }

    #[tokio::test]
    async fn the_shared_client_verifies_servers_and_speaks_h2_when_offered() {
        let ca = crate::tls::test_ca::new();
        let addr = https_server(&ca).await;
        let url = format!("https://localhost:{}/", addr.port());
        let total = Duration::from_secs(5);

        let trusting =
            http_client_verifying(total, crate::tls::test_ca::trusting(&ca.root)).unwrap();
        let answer = trusting.get(&url).send().await.unwrap();
        assert_eq!(answer.status(), 200);
        // ALPN offered h2 (a preconfigured TLS setup gets none from reqwest).
        assert_eq!(answer.version(), http::Version::HTTP_2);
        assert_eq!(answer.text().await.unwrap(), "HTTP/2.0");

        // The system's roots do not know the tests' authority: the call fails on the certificate.
        let system = http_client(total).unwrap();
        let error = system.get(&url).send().await.unwrap_err();
        let chain = crate::telemetry::error_chain(&error);
        assert!(chain.contains("certificate"), "{chain}");
    }
}
