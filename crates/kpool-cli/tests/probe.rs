//! `kpool probe`: timings on success, plain words and the right exit code on
//! each kind of failure (2 bad input, 1 failed probe, 0 success).

mod common;

use common::{closed_port, expect_error, kpool, parts};

#[test]
fn tcp_echo_server_answers() {
    let port = common::tcp_echo();
    let (code, stdout, stderr) = parts(&kpool(&["probe", &format!("tcp://127.0.0.1:{port}")]));
    assert_eq!(code, 0, "stdout: {stdout}\nstderr: {stderr}");
    for step in ["resolve", "connect", "check", "round trip"] {
        assert!(stdout.contains(step), "'{step}' timing in: {stdout}");
    }
    assert!(stdout.contains("alive") && stdout.trim_end().ends_with("ok"), "{stdout}");
}

#[test]
fn localhost_name_resolves() {
    let port = common::tcp_echo();
    let (code, stdout, stderr) = parts(&kpool(&["probe", &format!("tcp://localhost:{port}")]));
    // localhost may resolve to ::1 first while the echo server listens on 127.0.0.1 only.
    if code == 0 {
        assert!(stdout.contains("resolve"), "{stdout}");
    } else {
        assert!(stderr.contains("connection refused"), "{stderr}");
    }
}

#[test]
fn unix_socket_echo_server_answers() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("echo.sock");
    common::unix_echo(&path);
    let (code, stdout, stderr) = parts(&kpool(&["probe", &format!("unix://{}", path.display())]));
    assert_eq!(code, 0, "stdout: {stdout}\nstderr: {stderr}");
    assert!(!stdout.contains("resolve"), "no name to resolve for a socket path");
    assert!(stdout.contains("round trip"), "{stdout}");
}

#[test]
fn refused_port() {
    let url = format!("tcp://127.0.0.1:{}", closed_port());
    let line = expect_error(&["probe", &url], 1, "connection refused");
    assert!(line.contains(&url), "names the target: {line}");
}

#[test]
fn missing_unix_socket() {
    expect_error(&["probe", "unix:///nonexistent/kpool.sock"], 1, "no such socket file");
}

#[test]
fn unresolvable_host() {
    expect_error(
        &["probe", "tcp://nonexistent.invalid:80", "--timeout", "3s"],
        1,
        "cannot resolve 'nonexistent.invalid'",
    );
}

#[test]
fn unknown_scheme() {
    expect_error(&["probe", "mysql://127.0.0.1:3306"], 2, "unknown scheme 'mysql'");
}

#[test]
fn bad_urls() {
    expect_error(&["probe", "127.0.0.1:80"], 2, "bad URL");
    expect_error(&["probe", "localhost"], 2, "no scheme");
    expect_error(&["probe", "tcp://127.0.0.1"], 2, "no port");
    expect_error(&["probe", "tcp://127.0.0.1:70000"], 2, "bad URL");
    expect_error(&["probe", "tcp://exa mple.com:80"], 2, "bad URL");
}

#[test]
fn not_an_echo_server() {
    // A server that accepts and closes at once: connect works, the round trip does not.
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for s in l.incoming().flatten() {
            drop(s);
        }
    });
    let (code, stdout, stderr) = parts(&kpool(&["probe", &format!("tcp://127.0.0.1:{port}")]));
    assert_eq!(code, 1, "stdout: {stdout}\nstderr: {stderr}");
    assert!(stdout.contains("connect"), "{stdout}");
    assert!(stderr.contains("closed the connection") || stderr.contains("found dead"), "{stderr}");
}
