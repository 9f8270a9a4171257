//! A certificate made for the test, and the configurations that use it.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};

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
    static SERIAL: AtomicU32 = AtomicU32::new(0);
    let names: Vec<String> = names.iter().map(|n| n.to_string()).collect();
    let mut params = rcgen::CertificateParams::new(names).unwrap();
    // A subject of its own, so that another fixture's client does not even
    // know the issuer.
    let cn = format!("kpool-net test {}", SERIAL.fetch_add(1, Ordering::Relaxed));
    params.distinguished_name.push(rcgen::DnType::CommonName, cn);
    let signing_key = rcgen::KeyPair::generate().unwrap();
    let cert = params.self_signed(&signing_key).unwrap();
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
