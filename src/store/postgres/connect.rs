//! Opening one connection: TLS per [`TlsMode`], and with IAM authentication a fresh access token as
//! the password of every new connection. [`Connector`] is the pool's deadpool `Manager` (our own
//! rather than deadpool-postgres's, whose `Connect` hook can only fail with a `tokio_postgres::Error`,
//! which a token failure is not): the pool calls `create` whenever it needs a connection, so a pool
//! that lost all its connections (PostgreSQL restarted) reconnects on the next call, with a token
//! that is still valid, and `recycle` drops connections that closed.

use std::sync::Arc;

use deadpool::managed::{self, Metrics, RecycleError, RecycleResult};
use deadpool_postgres::ClientWrapper;
use google_cloud_auth::credentials::AccessTokenCredentials;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};
use tokio_postgres::NoTls;
use tokio_postgres::config::SslMode;
use tokio_postgres_rustls::MakeRustlsConnect;

use super::settings::{PgAuth, PgSettings, TlsMode};

/// The OAuth2 scope Cloud SQL IAM database authentication accepts for login.
pub const SQL_LOGIN_SCOPE: &str = "https://www.googleapis.com/auth/sqlservice.login";

/// Why a connection could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    /// The TLS settings cannot be used (an unreadable or empty `sslrootcert`).
    #[error("TLS setup: {0}")]
    Tls(String),
    /// No access token for IAM authentication.
    #[error("cannot mint an access token for IAM database authentication")]
    Token(#[source] google_cloud_auth::errors::CredentialsError),
    /// PostgreSQL refused or failed the connection.
    #[error(transparent)]
    Postgres(#[from] tokio_postgres::Error),
    /// Application Default Credentials cannot be built.
    #[error("cannot load Application Default Credentials")]
    Credentials(#[source] google_cloud_auth::build_errors::Error),
}

/// Opens connections for deadpool.
pub struct Connector {
    config: tokio_postgres::Config,
    tls: Option<MakeRustlsConnect>,
    tokens: Option<AccessTokenCredentials>,
}

impl Connector {
    /// Builds the TLS client configuration and, for IAM, the credentials (which must happen inside
    /// the tokio runtime: google-cloud-auth refreshes tokens in a background task before they
    /// expire).
    pub fn new(settings: &PgSettings) -> Result<Connector, ConnectError> {
        let mut config = settings.config.clone();
        let tls = if settings.unix_socket_only() {
            config.ssl_mode(SslMode::Disable);
            None
        } else {
            match &settings.tls {
                TlsMode::Disable => {
                    config.ssl_mode(SslMode::Disable);
                    None
                }
                TlsMode::Prefer => {
                    config.ssl_mode(SslMode::Prefer);
                    Some(unverified()?)
                }
                TlsMode::Require => {
                    config.ssl_mode(SslMode::Require);
                    Some(unverified()?)
                }
                TlsMode::VerifyFull { root_cert } => {
                    config.ssl_mode(SslMode::Require);
                    Some(verified(root_cert.as_deref())?)
                }
            }
        };
        let tokens = match settings.auth {
            PgAuth::Password => None,
            PgAuth::Iam => Some(
                google_cloud_auth::credentials::Builder::default()
                    .with_scopes([SQL_LOGIN_SCOPE])
                    .build_access_token_credentials()
                    .map_err(ConnectError::Credentials)?,
            ),
        };
        Ok(Connector {
            config,
            tls: tls.map(MakeRustlsConnect::new),
            tokens,
        })
    }
}

impl managed::Manager for Connector {
    type Type = ClientWrapper;
    type Error = ConnectError;

    async fn create(&self) -> Result<ClientWrapper, ConnectError> {
        let mut config = self.config.clone();
        if let Some(tokens) = &self.tokens {
            // google-cloud-auth caches the token and refreshes it before it expires, so this is a
            // memory read except right after start.
            let token = tokens.access_token().await.map_err(ConnectError::Token)?;
            config.password(token.token);
        }
        let (client, task) = match &self.tls {
            Some(tls) => {
                let (client, conn) = config.connect(tls.clone()).await?;
                (client, tokio::spawn(drive(conn)))
            }
            None => {
                let (client, conn) = config.connect(NoTls).await?;
                (client, tokio::spawn(drive(conn)))
            }
        };
        Ok(ClientWrapper::new(client, task))
    }

    async fn recycle(
        &self,
        client: &mut ClientWrapper,
        _: &Metrics,
    ) -> RecycleResult<ConnectError> {
        if client.is_closed() {
            return Err(RecycleError::message("connection closed"));
        }
        Ok(())
    }
}

/// Runs a connection until it closes (the pool notices through `Client::is_closed`).
async fn drive<F: std::future::Future<Output = Result<(), tokio_postgres::Error>>>(conn: F) {
    if let Err(e) = conn.await {
        tracing::debug!(error = %e, "PostgreSQL connection closed");
    }
}

fn verified(root_cert: Option<&std::path::Path>) -> Result<ClientConfig, ConnectError> {
    let builder = ClientConfig::builder_with_provider(crate::tls::provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| ConnectError::Tls(e.to_string()))?;
    match root_cert {
        Some(path) => {
            let mut roots = RootCertStore::empty();
            let certs = CertificateDer::pem_file_iter(path)
                .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
                .map_err(|e| ConnectError::Tls(format!("sslrootcert {}: {e}", path.display())))?;
            let (added, _) = roots.add_parsable_certificates(certs);
            if added == 0 {
                return Err(ConnectError::Tls(format!(
                    "sslrootcert {}: no usable certificate",
                    path.display()
                )));
            }
            Ok(builder.with_root_certificates(roots).with_no_client_auth())
        }
        None => Ok(builder
            .dangerous()
            .with_custom_certificate_verifier(crate::tls::system_roots())
            .with_no_client_auth()),
    }
}

/// libpq's `sslmode=require`: encrypted, but any certificate is accepted (signatures in the
/// handshake are still checked, so the session key belongs to whoever holds the certificate).
fn unverified() -> Result<ClientConfig, ConnectError> {
    let provider = crate::tls::provider();
    Ok(ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| ConnectError::Tls(e.to_string()))?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(AnyCertificate(provider)))
        .with_no_client_auth())
}

#[derive(Debug)]
struct AnyCertificate(Arc<rustls::crypto::CryptoProvider>);

impl ServerCertVerifier for AnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}
