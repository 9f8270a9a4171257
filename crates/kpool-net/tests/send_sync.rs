//! Every public type crosses threads, and the error fits `Box<dyn Error + Send + Sync>`.

#![allow(dead_code)] // the assertions are compile-time

fn send_sync<T: Send + Sync + 'static>() {}
fn std_error<T: std::error::Error + Send + Sync + 'static>() {}

#[test]
fn public_types_are_send_and_sync() {
    send_sync::<kpool_net::Address>();
    send_sync::<kpool_net::AddressParseError>();
    send_sync::<kpool_net::Error>();
    send_sync::<kpool_net::Options>();
    send_sync::<kpool_net::Step>();
    send_sync::<kpool_net::UnreadData>();
    send_sync::<kpool_net::blocking::TcpManager>();
    #[cfg(unix)]
    send_sync::<kpool_net::blocking::UnixManager>();
    std_error::<kpool_net::Error>();
    std_error::<kpool_net::AddressParseError>();
    std_error::<kpool::Error<kpool_net::Error>>();
    send_sync::<kpool::blocking::Pool<kpool_net::blocking::TcpManager>>();
}

#[cfg(feature = "tokio")]
#[test]
fn async_managers_and_their_pools_are_send_and_sync() {
    send_sync::<kpool_net::TcpManager>();
    #[cfg(unix)]
    send_sync::<kpool_net::UnixManager>();
    send_sync::<kpool::Pool<kpool_net::TcpManager>>();
    send_sync::<tokio::net::TcpStream>();
    // An acquire future can be spawned.
    fn spawnable<F: std::future::Future + Send + 'static>(_: F) {}
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    rt.block_on(async {
        let pool = kpool::Pool::builder(kpool_net::TcpManager::new()).build().unwrap();
        spawnable(pool.get_owned());
    });
}

#[cfg(feature = "tls")]
#[test]
fn tls_managers_are_send_and_sync() {
    send_sync::<kpool_net::blocking::TlsManager>();
    send_sync::<kpool_net::blocking::TlsStream>();
    #[cfg(feature = "tokio")]
    {
        send_sync::<kpool_net::TlsManager>();
        send_sync::<kpool_net::TlsStream>();
    }
}
