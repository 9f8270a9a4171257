//! A certificate made for the test, and the configurations that use it.

use std::sync::Arc;

use kpool_net::rustls;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use rustls::{ClientConfig, RootCertStore, ServerConfig};

/// A self-signed certificate for `names`, a server configuration serving it
/// and a client configuration trusting it.
pub struct Fixture {
    pub cert: CertificateDer<'static>,
    pub server: Arc<ServerConfig>,
    pub client: Arc<ClientConfig>,
}

pub fn fixture(names: &[&str]) -> Fixture {
    let names: Vec<String> = names.iter().map(|n| n.to_string()).collect();
    let rcgen::CertifiedKey { cert, signing_key } = rcgen::generate_simple_self_signed(names).unwrap();
    let cert = cert.der().clone();
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(signing_key.serialize_der()));
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let server = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(vec![cert.clone()], key)
        .unwrap();
    let mut roots = RootCertStore::empty();
    roots.add(cert.clone()).unwrap();
    Fixture { cert, server: Arc::new(server), client: kpool_net::tls::client_config(roots) }
}
