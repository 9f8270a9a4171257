//! Helpers shared by the CLI tests: run the built `kpool` binary, and small
//! loopback echo servers to point it at.

#![allow(dead_code)]

use std::io::{Read, Write};
use std::path::Path;
use std::process::{Command, Output};

/// The built binary's output for these arguments.
pub fn kpool(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_kpool"))
        .args(args)
        .env_remove("RUST_LOG")
        .output()
        .expect("running the kpool binary")
}

/// Exit code, stdout and stderr, as text.
pub fn parts(out: &Output) -> (i32, String, String) {
    (
        out.status.code().expect("kpool exited normally"),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Runs kpool expecting the exit code `code` and exactly one line on stderr
/// containing `needle`; returns that line.
pub fn expect_error(args: &[&str], code: i32, needle: &str) -> String {
    let (got, stdout, stderr) = parts(&kpool(args));
    assert_eq!(got, code, "kpool {args:?}: exit code\nstdout: {stdout}\nstderr: {stderr}");
    let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 1, "kpool {args:?}: one error line expected, got: {stderr}");
    assert!(lines[0].contains(needle), "kpool {args:?}: expected '{needle}' in: {}", lines[0]);
    lines[0].to_owned()
}

/// Runs `kpool bench` with `args` plus `--json`, asserts success, and returns the JSON report.
pub fn bench_json(dir: &Path, args: &[&str]) -> serde_json::Value {
    let json = dir.join("report.json");
    let mut all = vec!["bench"];
    all.extend_from_slice(args);
    let json_arg = json.to_str().unwrap().to_owned();
    all.extend_from_slice(&["--json", &json_arg]);
    let (code, stdout, stderr) = parts(&kpool(&all));
    assert_eq!(code, 0, "kpool {all:?}\nstdout: {stdout}\nstderr: {stderr}");
    assert!(stdout.contains("throughput") && stdout.contains("sizing hint"), "text report: {stdout}");
    assert!(!stdout.contains('\u{1b}') && !stdout.contains('\r'), "no progress bar when stdout is not a terminal");
    serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).expect("the JSON report parses")
}

/// A free loopback port with nothing listening on it (bound, then released).
pub fn closed_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

fn echo<S: Read + Write>(mut s: S) {
    let mut buf = [0u8; 1024];
    while let Ok(n) = s.read(&mut buf) {
        if n == 0 || s.write_all(&buf[..n]).is_err() {
            return;
        }
    }
}

/// A TCP echo server on a loopback port that serves until the test process ends.
pub fn tcp_echo() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for s in l.incoming().flatten() {
            std::thread::spawn(move || echo(s));
        }
    });
    port
}

/// A Unix-socket echo server at `path`, serving until the test process ends.
pub fn unix_echo(path: &Path) {
    let l = std::os::unix::net::UnixListener::bind(path).unwrap();
    std::thread::spawn(move || {
        for s in l.incoming().flatten() {
            std::thread::spawn(move || echo(s));
        }
    });
}

/// Whether the test must not skip what needs a local service (under CI).
pub fn required() -> bool {
    std::env::var_os("CI").is_some_and(|v| !v.is_empty() && v != "false" && v != "0")
}
