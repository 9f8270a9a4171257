//! `kpool probe URL`: connect once, check the connection, time each step,
//! and say in plain words what went wrong.

use std::error::Error;
use std::future::Future;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use kpool_net::Address;

use crate::Fail;
use crate::cli::ProbeArgs;
use crate::report::fmt_ms;
use crate::target::Target;
use crate::work::{Postgres, Workload};

/// `kpool probe`.
pub(crate) fn main(args: ProbeArgs) -> Result<ExitCode, Fail> {
    let target = Target::parse(&args.url)?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| Fail::Run(format!("cannot start the tokio runtime: {e}")))?;
    let result = runtime.block_on(probe(&target, args.timeout));
    // A name lookup that timed out still runs on a blocking thread: do not wait for it.
    runtime.shutdown_background();
    result.map(|()| ExitCode::SUCCESS)
}

fn step(name: &str, took: Duration, detail: &str) {
    println!("  {name:<11}{:>10}  {detail}", fmt_ms(took.as_secs_f64() * 1e3));
}

async fn timed<T>(limit: Duration, fut: impl Future<Output = T>) -> (Duration, Option<T>) {
    let start = Instant::now();
    let out = tokio::time::timeout(limit, fut).await.ok();
    (start.elapsed(), out)
}

async fn probe(target: &Target, limit: Duration) -> Result<(), Fail> {
    let shown = target.display();
    println!("probing {shown}");
    if let Some((host, port)) = target.host_port() {
        let (took, out) = timed(limit, tokio::net::lookup_host((host.as_str(), port))).await;
        match out {
            None => return Err(Fail::Run(format!("cannot resolve '{host}': timed out after {limit:?}"))),
            Some(Err(e)) => return Err(Fail::Run(format!("cannot resolve '{host}': {e}"))),
            Some(Ok(addrs)) => {
                let addrs: Vec<_> = addrs.collect();
                let Some(first) = addrs.first() else {
                    return Err(Fail::Run(format!("cannot resolve '{host}': no address found")));
                };
                let more = if addrs.len() > 1 { format!(" (+{} more)", addrs.len() - 1) } else { String::new() };
                step("resolve", took, &format!("{first}{more}"));
            }
        }
    }
    let connect = Some(limit);
    match target {
        Target::Tcp { host, port } => {
            let m = kpool_net::TcpManager::new().connect_timeout(connect);
            probe_with(&m, Address::host(host.clone(), *port), &shown, limit).await
        }
        Target::Unix(path) => {
            let m = kpool_net::UnixManager::new().connect_timeout(connect);
            probe_with(&m, path.clone(), &shown, limit).await
        }
        Target::Tls { host, port, ca } => {
            let m = kpool_net::TlsManager::new(crate::work::tls_config(ca.as_deref())?).connect_timeout(connect);
            probe_with(&m, Address::host(host.clone(), *port), &shown, limit).await
        }
        Target::Postgres(url) => match crate::work::postgres(url)? {
            Postgres::Plain(m) => probe_with(&m, (), &shown, limit).await,
            Postgres::Tls(m) => probe_with(&m, (), &shown, limit).await,
        },
        Target::Redis(url) => {
            let m = crate::work::redis(url)?.connection_timeout(connect).response_timeout(connect);
            probe_with(&m, (), &shown, limit).await
        }
    }
}

async fn probe_with<M: Workload>(manager: &M, endpoint: M::Endpoint, shown: &str, limit: Duration) -> Result<(), Fail> {
    let (took, out) = timed(limit, manager.create(&endpoint)).await;
    let mut conn = match out {
        None => return Err(Fail::Run(format!("cannot connect to {shown}: timed out after {limit:?}"))),
        Some(Err(e)) => return Err(Fail::Run(format!("cannot connect to {shown}: {}", explain(&e)))),
        Some(Ok(conn)) => conn,
    };
    step("connect", took, "connected");
    let (took, out) = timed(limit, manager.check_alive(&endpoint, &mut conn)).await;
    match out {
        None => return Err(Fail::Run(format!("{shown}: the aliveness check timed out after {limit:?}"))),
        Some(Err(e)) => return Err(Fail::Run(format!("{shown}: the aliveness check failed: {}", explain(&e)))),
        Some(Ok(false)) => {
            return Err(Fail::Run(format!("{shown}: the connection was found dead right after connecting")));
        }
        Some(Ok(true)) => step("check", took, "alive"),
    }
    let (took, out) = timed(limit, manager.run_op(&mut conn)).await;
    match out {
        None => return Err(Fail::Run(format!("{shown}: no answer within {limit:?}"))),
        Some(Err(e)) => return Err(Fail::Run(format!("{shown}: {e}"))),
        Some(Ok(())) => step("round trip", took, "answered"),
    }
    let _ = manager.dispose(&endpoint, conn).await;
    println!("ok");
    Ok(())
}

/// An error in plain words: what most likely went wrong, from the kind of
/// the innermost cause, else the error's own message chain.
pub(crate) fn explain<E: Error + 'static>(e: &E) -> String {
    explain_dyn(e)
}

fn explain_dyn(e: &(dyn Error + 'static)) -> String {
    if let Some(net) = find::<kpool_net::Error>(e) {
        if net.is_tls() {
            return format!("TLS failure: {}", chain(net));
        }
        if net.is_timeout() {
            return chain(net);
        }
    }
    if let Some(pg) = find::<kpool_postgres::tokio_postgres::Error>(e) {
        if let Some(words) = postgres_words(pg) {
            return words;
        }
    }
    if let Some(redis) = find::<kpool_redis::redis::RedisError>(e) {
        if let Some(words) = redis_words(redis) {
            return words;
        }
    }
    let mut cause: Option<&(dyn Error + 'static)> = Some(e);
    while let Some(err) = cause {
        if let Some(io) = err.downcast_ref::<std::io::Error>() {
            if let Some(words) = io_words(io) {
                return words;
            }
        }
        cause = err.source();
    }
    chain(e)
}

/// What the PostgreSQL server said, in words, for the errors people hit first.
fn postgres_words(e: &kpool_postgres::tokio_postgres::Error) -> Option<String> {
    use kpool_postgres::tokio_postgres::error::SqlState;
    let Some(db) = e.as_db_error() else {
        let text = chain(e);
        return text.contains("TLS").then(|| format!("TLS failure: {text}"));
    };
    let code = db.code();
    let words = if *code == SqlState::INVALID_PASSWORD {
        format!("wrong password ({})", db.message())
    } else if *code == SqlState::INVALID_CATALOG_NAME {
        format!("unknown database ({})", db.message())
    } else if *code == SqlState::INVALID_AUTHORIZATION_SPECIFICATION {
        format!("login rejected: {}", db.message())
    } else if *code == SqlState::TOO_MANY_CONNECTIONS {
        format!("the server has no connection slot left ({})", db.message())
    } else {
        format!("the server said: {} (SQLSTATE {})", db.message(), code.code())
    };
    Some(words)
}

/// A Redis error in words.
fn redis_words(e: &kpool_redis::redis::RedisError) -> Option<String> {
    use kpool_redis::redis::ErrorKind;
    let text = e.to_string();
    if e.kind() == ErrorKind::AuthenticationFailed || text.contains("WRONGPASS") {
        Some("wrong password (the server refused the login)".into())
    } else if text.contains("without any password configured") {
        Some("the server has no password set, but the URL gives one".into())
    } else if text.contains("NOAUTH") {
        Some("the server needs a password (redis://:password@host)".into())
    } else if e.is_connection_refusal() {
        Some("connection refused: nothing is listening there".into())
    } else if e.is_timeout() {
        Some("timed out".into())
    } else {
        None
    }
}

/// The first error of type `T` in the chain.
fn find<'a, T: Error + 'static>(e: &'a (dyn Error + 'static)) -> Option<&'a T> {
    let mut cause = Some(e);
    while let Some(err) = cause {
        if let Some(found) = err.downcast_ref::<T>() {
            return Some(found);
        }
        cause = err.source();
    }
    None
}

fn io_words(e: &std::io::Error) -> Option<String> {
    use std::io::ErrorKind::*;
    let words = match e.kind() {
        ConnectionRefused => "connection refused: nothing is listening there",
        TimedOut => "timed out",
        NotFound => "no such socket file: is the server running, and is the path right?",
        PermissionDenied => "permission denied",
        ConnectionReset => "the server reset the connection",
        ConnectionAborted => "the connection was aborted",
        UnexpectedEof => "the server closed the connection",
        AddrNotAvailable => "address not available",
        _ => {
            let text = e.to_string();
            if text.contains("lookup address") || text.contains("Name or service not known") {
                return Some(format!("cannot resolve the host name ({text})"));
            }
            return None;
        }
    };
    Some(words.to_owned())
}

/// The error's message followed by each source's, joined by ": ".
fn chain(e: &(dyn Error + 'static)) -> String {
    let mut out = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        let text = c.to_string();
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        cause = c.source();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn io_errors_in_words() {
        let refused = std::io::Error::from(std::io::ErrorKind::ConnectionRefused);
        assert!(explain(&refused).contains("nothing is listening"));
        let other = std::io::Error::other("something odd");
        assert_eq!(explain(&other), "something odd");
    }
}
