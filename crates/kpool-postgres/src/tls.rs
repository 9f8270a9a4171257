//! TLS over rustls (feature `tls`): a connector for [`Manager::tls`](crate::Manager::tls)
//! and [`blocking::Manager::tls`](crate::blocking::Manager::tls).
//!
//! ```
//! use kpool_postgres::{Manager, tls};
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! // Trust one CA (or a server's self-signed certificate), in PEM.
//! # let pem = std::fs::read("/etc/ssl/certs/ssl-cert-snakeoil.pem").unwrap_or_default();
//! # if pem.is_empty() { return Ok(()); }
//! let roots = tls::roots_from_pem(&pem)?;
//! let manager = Manager::from_url("postgres://root@localhost:5432/test?sslmode=require")?.tls(tls::connector(roots));
//! # let _ = manager;
//! # Ok(()) }
//! ```
//!
//! The connection's `sslmode` decides whether TLS is used: `prefer` (the
//! default) tries it and falls back to plain text, `require` insists.
//! Certificates are verified against the given roots and the host name (use
//! the certificate's name as `host` and the IP as `hostaddr` when they differ).

use std::sync::Arc;

pub use rustls;
pub use tokio_postgres_rustls::MakeRustlsConnect;

use rustls::RootCertStore;
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;

/// A connector that verifies servers against `roots`, with rustls' `ring`
/// provider and its safe default protocol versions (TLS 1.2 and 1.3).
///
/// # Panics
///
/// Never in practice: the `ring` provider supports the default versions.
pub fn connector(roots: RootCertStore) -> MakeRustlsConnect {
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .expect("ring supports the default protocol versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
    MakeRustlsConnect::new(config)
}

/// Reads every certificate in a PEM bundle into a root store.
///
/// # Errors
///
/// Malformed PEM, a certificate rustls rejects, or no certificate at all.
pub fn roots_from_pem(pem: &[u8]) -> Result<RootCertStore, rustls::Error> {
    let mut roots = RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(pem) {
        let cert = cert.map_err(|e| rustls::Error::General(format!("invalid PEM: {e}")))?;
        roots.add(cert)?;
    }
    if roots.is_empty() {
        return Err(rustls::Error::General("no certificate in the PEM data".into()));
    }
    Ok(roots)
}
