//! TLS for tests: a self-signed certificate for `localhost` (rcgen), the gateway's `[tls]`
//! section naming it, and a rustls client that trusts it and offers HTTP/1.1 by ALPN.

use rustls::pki_types::CertificateDer;
use std::sync::Arc;
use tokio_rustls::TlsConnector;

/// A certificate on disk for the gateway and a connector for clients.
pub(crate) struct TlsClient {
    pub(crate) cert: CertificateDer<'static>,
    pub(crate) connector: TlsConnector,
    dir: tempfile::TempDir,
}

// === impl TlsClient ===

impl TlsClient {
    pub(crate) fn new() -> Self {
        let certified = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()])
            .expect("generate a certificate");
        let dir = tempfile::tempdir().expect("temp dir");
        std::fs::write(dir.path().join("cert.pem"), certified.cert.pem()).expect("write cert");
        std::fs::write(
            dir.path().join("key.pem"),
            certified.signing_key.serialize_pem(),
        )
        .expect("write key");
        let cert = certified.cert.der().clone();
        let mut roots = rustls::RootCertStore::empty();
        roots.add(cert.clone()).expect("trust the certificate");
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("protocol versions")
            .with_root_certificates(roots)
            .with_no_client_auth();
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Self {
            cert,
            connector: TlsConnector::from(Arc::new(config)),
            dir,
        }
    }

    /// The gateway's `[tls]` section for this certificate.
    pub(crate) fn server_config(&self) -> String {
        format!(
            "[tls]\ncert = \"{}\"\nkey = \"{}\"\n",
            self.dir.path().join("cert.pem").display(),
            self.dir.path().join("key.pem").display()
        )
    }
}
