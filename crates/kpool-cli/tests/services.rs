//! `kpool probe` and `kpool bench` against the local PostgreSQL
//! (127.0.0.1:5432, database `test`, user `root`) and Redis (127.0.0.1:6379).
//! Under `CI` they must be there (`.ci/services` starts them); elsewhere a
//! missing server skips its test with a message.

mod common;

use common::{bench_json, closed_port, expect_error, kpool, parts};

const PG: &str = "postgres://root@127.0.0.1:5432/test";
const REDIS: &str = "redis://127.0.0.1:6379";

/// Whether `port` answers on loopback; panics under CI when it does not.
fn up(name: &str, port: u16) -> bool {
    if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
        return true;
    }
    assert!(!common::required(), "{name} must answer on 127.0.0.1:{port} under CI (see .ci/services)");
    eprintln!("SKIPPED: {name} does not answer on 127.0.0.1:{port}");
    false
}

fn probe_ok(url: &str) {
    let (code, stdout, stderr) = parts(&kpool(&["probe", url]));
    assert_eq!(code, 0, "probe {url}\nstdout: {stdout}\nstderr: {stderr}");
    for step in ["resolve", "connect", "check", "round trip"] {
        assert!(stdout.contains(step), "'{step}' timing in: {stdout}");
    }
}

fn bench_ok(url: &str, mode: &str) {
    let dir = tempfile::tempdir().unwrap();
    let r = bench_json(
        dir.path(),
        &["--url", url, "--mode", mode, "--duration", "1s", "--tasks", "4", "--max-size", "2", "--quiet"],
    );
    let ops = r["ops"].as_u64().unwrap();
    assert!(ops > 0, "{url} {mode}: some operations");
    assert_eq!(r["pool_counters"]["acquired"].as_u64().unwrap(), ops, "{url} {mode}: no failed operation");
    assert!(r["peak"]["endpoint_in_use"].as_u64().unwrap() <= 2);
    assert!(r["pool_counters"]["created"].as_u64().unwrap() <= 2, "{url} {mode}: connections were reused");
}

#[test]
fn postgres_probe_and_bench() {
    if !up("PostgreSQL", 5432) {
        return;
    }
    probe_ok(PG);
    bench_ok(PG, "async");
    bench_ok(PG, "blocking");
}

#[test]
fn postgres_failures_in_words() {
    if !up("PostgreSQL", 5432) {
        return;
    }
    expect_error(&["probe", "postgres://root@127.0.0.1:5432/kpool_no_such_db"], 1, "unknown database");
    let line =
        expect_error(&["probe", "postgres://kpool_no_such_role:secret@127.0.0.1:5432/test"], 1, "login rejected");
    assert!(
        line.contains("kpool_no_such_role") && !line.contains("secret"),
        "names the role, hides the password: {line}"
    );
    let url = format!("postgres://root@127.0.0.1:{}/test", closed_port());
    expect_error(&["probe", &url], 1, "connection refused");
    expect_error(
        &["bench", "--url", "postgres://root@127.0.0.1:5432/kpool_no_such_db", "-d", "1s"],
        1,
        "unknown database",
    );
    expect_error(&["probe", "postgres://root@127.0.0.1:5432/test?sslmode=sometimes"], 2, "bad URL");
}

#[test]
fn postgres_over_tls() {
    if !up("PostgreSQL", 5432) {
        return;
    }
    // Debian's self-signed certificate, which the system's bundle does not trust.
    let line = expect_error(&["probe", "postgres://root@localhost:5432/test?sslmode=require"], 1, "TLS");
    assert!(line.contains("TLS failure") || line.contains("does not support TLS"), "{line}");
    let cert = "/etc/ssl/certs/ssl-cert-snakeoil.pem";
    if std::path::Path::new(cert).exists() && line.contains("TLS failure") {
        probe_ok(&format!("postgres://root@localhost:5432/test?sslmode=require&sslrootcert={cert}"));
    }
    expect_error(
        &["probe", "postgres://root@localhost:5432/test?sslmode=require&sslrootcert=/nonexistent.pem"],
        2,
        "cannot read certificates",
    );
}

#[test]
fn redis_probe_and_bench() {
    if !up("Redis", 6379) {
        return;
    }
    probe_ok(REDIS);
    bench_ok(REDIS, "async");
    bench_ok(REDIS, "blocking");
}

#[test]
fn redis_failures_in_words() {
    if !up("Redis", 6379) {
        return;
    }
    // The local server has no password: any password is refused.
    let line = expect_error(&["probe", "redis://:not-the-password@127.0.0.1:6379"], 1, "password");
    assert!(!line.contains("not-the-password"), "the password stays hidden: {line}");
    let url = format!("redis://127.0.0.1:{}", closed_port());
    expect_error(&["probe", &url], 1, "connection refused");
}
