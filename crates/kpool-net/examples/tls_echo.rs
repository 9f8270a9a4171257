//! TLS through the pool: a tokio-rustls echo server with a certificate made
//! on the spot, and a pool of TLS connections that trusts only it.
//!
//! Run with `cargo run -p kpool-net --features tls --example tls_echo`.

use std::sync::Arc;
use std::time::Duration;

use kpool::Pool;
use kpool_net::rustls::pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};
use kpool_net::rustls::{RootCertStore, ServerConfig};
use kpool_net::tokio_rustls::TlsAcceptor;
use kpool_net::{Address, TlsManager};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    // A certificate for "localhost", and a server that presents it.
    let made = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()])?;
    let cert = made.cert.der().clone();
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(made.signing_key.serialize_der()));
    let provider = Arc::new(kpool_net::rustls::crypto::ring::default_provider());
    let server_config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(vec![cert.clone()], key)?;
    let acceptor = TlsAcceptor::from(Arc::new(server_config));
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let port = listener.local_addr()?.port();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let Ok(tls) = acceptor.accept(tcp).await else { return };
                let (mut rd, mut wr) = tokio::io::split(tls);
                let _ = tokio::io::copy(&mut rd, &mut wr).await;
            });
        }
    });

    // The client trusts that one certificate and checks the name "localhost".
    let mut roots = RootCertStore::empty();
    roots.add(cert)?;
    let manager = TlsManager::new(kpool_net::tls::client_config(roots)).connect_timeout(Some(Duration::from_secs(2)));
    let pool = Pool::builder(manager).max_size(2).endpoint(Address::host("localhost", port)).build()?;

    for i in 0..10 {
        let mut conn = pool.get().await?;
        let msg = format!("hello #{i}");
        conn.write_all(msg.as_bytes()).await?;
        let mut reply = vec![0; msg.len()];
        conn.read_exact(&mut reply).await?;
        assert_eq!(reply, msg.as_bytes());
    }
    let version = pool.get().await?.get_ref().1.protocol_version();
    let c = pool.counters();
    println!("10 round trips over {} TLS connection(s) ({version:?}), {} errors", c.created, c.errors);
    pool.close_timeout(Duration::from_secs(2)).await;
    Ok(())
}
