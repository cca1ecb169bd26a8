//! TLS for every outbound connection (the HTTPS clients in `clients` and `auth`, PostgreSQL in
//! `store`): one rustls configuration for the process, trusting the system's root certificates
//! through rustls-platform-verifier, which are read once, and not on the way to the first answer.
//!
//! Why not reqwest's own TLS setup: reqwest builds a platform verifier per client, and on Linux
//! that reads the CA bundle *and* every file in `/etc/ssl/certs` (about 300 on Debian) and parses
//! them all, 3 to 5 ms per client. Two clients were built before the server listened (the key
//! set's and the app's), so that was about a third of the cold start. Here:
//! - the roots are loaded on first use ([`SystemRoots`]), once for the process, so building a
//!   client reads nothing;
//! - `serve` calls [`preload`], which loads them on a thread of their own, beside the start-up
//!   rather than on its way: on Cloud Run they are ready, or nearly, by the first handshake (the
//!   key set fetch from Google); a handshake that comes before the load ends waits for it, once;
//! - a system without any root certificate is reported by `preload` as an ERROR log line, and every
//!   handshake then fails with that reason instead of the service refusing to start: the service
//!   can still serve what needs no outbound TLS.

use std::sync::{Arc, LazyLock, OnceLock};

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, SignatureScheme};

/// The crypto provider of every TLS connection: aws-lc-rs, the one crypto library of the build.
pub fn provider() -> Arc<CryptoProvider> {
    static PROVIDER: LazyLock<Arc<CryptoProvider>> =
        LazyLock::new(|| Arc::new(rustls::crypto::aws_lc_rs::default_provider()));
    PROVIDER.clone()
}

/// Loads a verifier: the system's roots, or (in tests) a given set.
type Load = Box<dyn Fn() -> Result<Arc<dyn ServerCertVerifier>, rustls::Error> + Send + Sync>;

/// A certificate verifier whose roots are loaded by the first handshake that needs them (or by
/// [`preload`]), then kept for the life of the process. A load that fails is not retried: the
/// system's certificate store does not change under a running container, and every handshake
/// reports the same reason.
pub struct SystemRoots {
    provider: Arc<CryptoProvider>,
    load: Load,
    loaded: OnceLock<Result<Arc<dyn ServerCertVerifier>, rustls::Error>>,
}

impl std::fmt::Debug for SystemRoots {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SystemRoots")
            .field("loaded", &self.is_loaded())
            .finish()
    }
}

impl SystemRoots {
    /// The platform's roots (rustls-platform-verifier), not loaded yet.
    fn platform() -> Self {
        SystemRoots::with_loader(provider(), || {
            rustls_platform_verifier::Verifier::new(provider())
                .map(|v| Arc::new(v) as Arc<dyn ServerCertVerifier>)
        })
    }

    /// A verifier that calls `load` the first time it is needed.
    pub fn with_loader(
        provider: Arc<CryptoProvider>,
        load: impl Fn() -> Result<Arc<dyn ServerCertVerifier>, rustls::Error> + Send + Sync + 'static,
    ) -> Self {
        SystemRoots {
            provider,
            load: Box::new(load),
            loaded: OnceLock::new(),
        }
    }

    /// Loads the roots now unless that was done; the reason when there are none to use.
    pub fn load(&self) -> Result<&Arc<dyn ServerCertVerifier>, rustls::Error> {
        self.loaded
            .get_or_init(|| (self.load)())
            .as_ref()
            .map_err(Clone::clone)
    }

    /// Whether the roots have been loaded (or their loading failed).
    pub fn is_loaded(&self) -> bool {
        self.loaded.get().is_some()
    }
}

impl ServerCertVerifier for SystemRoots {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        self.load()?
            .verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.load()?.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.load()?.verify_tls13_signature(message, cert, dss)
    }

    /// Offered in the ClientHello, before any certificate is seen: the provider's schemes, as the
    /// loaded verifier would answer, so saying hello does not wait for the roots.
    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

static SYSTEM: LazyLock<Arc<SystemRoots>> = LazyLock::new(|| Arc::new(SystemRoots::platform()));

/// The process's verifier of the system's roots.
pub fn system_roots() -> Arc<SystemRoots> {
    SYSTEM.clone()
}

/// Starts loading the system's roots on a thread of its own, unless they are loaded; logs an ERROR
/// when there are none (every outbound HTTPS call will then fail with that reason).
pub fn preload() {
    if SYSTEM.is_loaded() {
        return;
    }
    let spawned = std::thread::Builder::new()
        .name("tls-roots".into())
        .spawn(|| {
            if let Err(e) = SYSTEM.load() {
                tracing::error!(
                    error = %e,
                    "no usable root certificates: outbound HTTPS calls will fail \
                     (is the ca-certificates bundle in the image?)"
                );
            }
        });
    if let Err(e) = spawned {
        // The first handshake loads them instead.
        tracing::debug!(error = %e, "cannot start the thread that loads root certificates");
    }
}

/// A client configuration verifying servers with `verifier`, TLS 1.2 and 1.3, no client
/// certificate, no ALPN (callers set theirs).
pub fn client_config(verifier: Arc<dyn ServerCertVerifier>) -> Result<ClientConfig, rustls::Error> {
    Ok(ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()?
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_no_client_auth())
}

/// A certificate authority of the tests' own, and a server certificate it issued for `localhost`.
#[cfg(test)]
pub(crate) mod test_ca {
    use std::sync::Arc;

    use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};
    use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

    pub struct TestCa {
        /// The authority's certificate, to trust.
        pub root: CertificateDer<'static>,
        /// A server configuration presenting a `localhost` certificate the authority issued.
        pub server: Arc<rustls::ServerConfig>,
    }

    pub fn new() -> TestCa {
        let ca_key = KeyPair::generate().unwrap();
        let mut ca = CertificateParams::new(Vec::new()).unwrap();
        ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let root = ca.self_signed(&ca_key).unwrap().der().clone();
        let issuer = Issuer::new(ca, ca_key);
        let key = KeyPair::generate().unwrap();
        let leaf = CertificateParams::new(vec!["localhost".into()])
            .unwrap()
            .signed_by(&key, &issuer)
            .unwrap();
        let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der()));
        let server = rustls::ServerConfig::builder_with_provider(super::provider())
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(vec![leaf.der().clone()], key)
            .unwrap();
        TestCa {
            root,
            server: Arc::new(server),
        }
    }

    /// A verifier trusting only `root`.
    pub fn trusting(
        root: &CertificateDer<'static>,
    ) -> Arc<dyn rustls::client::danger::ServerCertVerifier> {
        let mut roots = rustls::RootCertStore::empty();
        roots.add(root.clone()).unwrap();
        rustls::client::WebPkiServerVerifier::builder_with_provider(
            Arc::new(roots),
            super::provider(),
        )
        .build()
        .unwrap()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use rustls::{ClientConnection, ServerConnection};

    use super::*;

    /// A whole handshake in memory between a client verifying with `verifier` and `server`.
    fn handshake(
        verifier: Arc<dyn ServerCertVerifier>,
        server: &Arc<rustls::ServerConfig>,
    ) -> Result<(), rustls::Error> {
        let config = Arc::new(client_config(verifier).unwrap());
        let name = ServerName::try_from("localhost").unwrap();
        let mut client = ClientConnection::new(config, name).unwrap();
        let mut server = ServerConnection::new(server.clone()).unwrap();
        let mut wire = Vec::new();
        for _ in 0..10 {
            if !client.is_handshaking() && !server.is_handshaking() {
                return Ok(());
            }
            wire.clear();
            while client.wants_write() {
                client.write_tls(&mut wire).unwrap();
            }
            server.read_tls(&mut &wire[..]).unwrap();
            server.process_new_packets()?;
            wire.clear();
            while server.wants_write() {
                server.write_tls(&mut wire).unwrap();
            }
            client.read_tls(&mut &wire[..]).unwrap();
            client.process_new_packets()?;
        }
        panic!("the handshake did not finish");
    }

    #[test]
    fn roots_are_loaded_by_the_first_handshake_and_only_once() {
        let ca = test_ca::new();
        let loads = Arc::new(AtomicUsize::new(0));
        let counted = loads.clone();
        let root = ca.root.clone();
        let roots = Arc::new(SystemRoots::with_loader(provider(), move || {
            counted.fetch_add(1, Ordering::SeqCst);
            Ok(test_ca::trusting(&root))
        }));
        // Building a configuration reads nothing.
        let _config = client_config(roots.clone()).unwrap();
        assert!(!roots.is_loaded());
        assert_eq!(loads.load(Ordering::SeqCst), 0);
        handshake(roots.clone(), &ca.server).unwrap();
        handshake(roots.clone(), &ca.server).unwrap();
        assert!(roots.is_loaded());
        assert_eq!(loads.load(Ordering::SeqCst), 1);
    }

    #[test]
    fn the_platform_roots_do_not_trust_a_private_authority() {
        let ca = test_ca::new();
        let roots = Arc::new(SystemRoots::platform());
        let error = handshake(roots.clone(), &ca.server).unwrap_err();
        // With the system's roots loaded the certificate's issuer is unknown; on a machine without
        // any (no ca-certificates) the load itself is the reason. Either way the handshake fails.
        match &error {
            rustls::Error::InvalidCertificate(rustls::CertificateError::UnknownIssuer) => {
                assert!(roots.load().is_ok());
            }
            rustls::Error::General(reason) => assert!(reason.contains("CA certificates")),
            other => panic!("unexpected failure: {other:?}"),
        }
    }

    #[test]
    fn a_failed_load_fails_every_handshake_with_its_reason_and_is_not_retried() {
        let ca = test_ca::new();
        let loads = Arc::new(AtomicUsize::new(0));
        let counted = loads.clone();
        let roots = Arc::new(SystemRoots::with_loader(provider(), move || {
            counted.fetch_add(1, Ordering::SeqCst);
            Err(rustls::Error::General("no CA certificates here".into()))
        }));
        for _ in 0..2 {
            let error = handshake(roots.clone(), &ca.server).unwrap_err();
            assert_eq!(
                error,
                rustls::Error::General("no CA certificates here".into())
            );
        }
        assert_eq!(loads.load(Ordering::SeqCst), 1);
    }
}
