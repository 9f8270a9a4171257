//! `kpool bench` against the embedded echo server (and a test echo server):
//! the JSON figures must agree with each other and with the pool's limits.

mod common;

use common::{bench_json, closed_port, expect_error, kpool, parts};
use serde_json::Value;

fn u(v: &Value, path: &str) -> u64 {
    v.pointer(path).and_then(Value::as_u64).unwrap_or_else(|| panic!("{path} is not a count in the report"))
}

fn f(v: &Value, path: &str) -> f64 {
    v.pointer(path).and_then(Value::as_f64).unwrap_or_else(|| panic!("{path} is not a number in the report"))
}

/// The invariants every report must hold.
fn check_consistent(r: &Value) {
    let ops = u(r, "/ops");
    assert!(ops > 0, "some operations completed");
    let acquired = u(r, "/pool_counters/acquired");
    assert_eq!(acquired, ops + u(r, "/op_errors"), "every acquire is one operation, good or failed");
    assert_eq!(
        u(r, "/pool_counters/requests"),
        acquired + u(r, "/pool_counters/timeouts") + u(r, "/pool_counters/errors"),
        "every request ends acquired, timed out or failed"
    );
    assert_eq!(u(r, "/timeouts"), u(r, "/pool_counters/timeouts"));
    assert_eq!(u(r, "/acquire_errors"), u(r, "/pool_counters/errors"));

    let w = |k: &str| f(r, &format!("/acquire_wait_ms/{k}"));
    assert!(w("p50") <= w("p90") && w("p90") <= w("p99") && w("p99") <= w("p999") && w("p999") <= w("max"));
    assert_eq!(u(r, "/acquire_wait_ms/count"), acquired, "one wait figure per acquire");
    assert!(f(r, "/throughput_ops_per_s") > 0.0);

    let max_size = u(r, "/sizing/configured");
    assert!(u(r, "/peak/endpoint_in_use") <= max_size, "no endpoint ever exceeded its max size");
    let tasks = u(r, "/load/tasks");
    let hint = u(r, "/sizing/suggested_max_size");
    assert!(hint >= 1 && hint <= tasks, "the demand cannot exceed the number of workers");
    let saturated = r.pointer("/sizing/saturated").and_then(Value::as_bool).unwrap();
    assert_eq!(saturated, hint > max_size);
    if !saturated {
        assert!(hint <= max_size);
    }

    let timeline = r["timeline"].as_array().unwrap();
    assert!(!timeline.is_empty());
    assert_eq!(timeline.iter().map(|s| s["ops"].as_u64().unwrap()).sum::<u64>(), ops, "slices add up to the total");
    let buckets = r["wait_histogram"].as_array().unwrap();
    assert_eq!(buckets.iter().map(|b| b["count"].as_u64().unwrap()).sum::<u64>(), acquired);
    let samples = &r["samples"];
    let n = samples["t_s"].as_array().unwrap().len();
    assert!(n > 0);
    for series in ["in_use", "idle", "waiting", "total"] {
        assert_eq!(samples[series].as_array().unwrap().len(), n, "{series} has one value per sample");
    }
}

#[test]
fn fewer_tasks_than_connections_fit_without_waiting() {
    let dir = tempfile::tempdir().unwrap();
    let r = bench_json(dir.path(), &["--duration", "1s", "--tasks", "2", "--max-size", "8", "--quiet"]);
    check_consistent(&r);
    assert_eq!(u(&r, "/sizing/configured"), 8);
    assert!(!r["sizing"]["saturated"].as_bool().unwrap());
    assert!(u(&r, "/sizing/suggested_max_size") <= 2, "two workers never need more than two connections");
    assert!(u(&r, "/pool_counters/created") <= 2);
    assert!(r["errors"].as_array().unwrap().is_empty(), "no error on a healthy server");
}

#[test]
fn more_tasks_than_connections_wait_and_stay_within_max_size() {
    let dir = tempfile::tempdir().unwrap();
    let r = bench_json(dir.path(), &["--duration", "1s", "--tasks", "12", "--max-size", "3", "--min-idle", "1"]);
    check_consistent(&r);
    assert!(u(&r, "/peak/total") <= 3);
    assert!(u(&r, "/pool_counters/created") >= 1);
}

#[test]
fn blocking_mode_with_a_preset() {
    let dir = tempfile::tempdir().unwrap();
    let r = bench_json(
        dir.path(),
        &["--duration", "1s", "--mode", "blocking", "--tasks", "6", "--preset", "conservative", "--hold", "1ms"],
    );
    check_consistent(&r);
    assert_eq!(r["mode"], "blocking");
    assert_eq!(r["pool"]["preset"], "conservative");
    assert_eq!(u(&r, "/pool/max_size"), 5, "the conservative preset's max size");
}

#[test]
fn keyed_load_respects_the_per_endpoint_limit() {
    let dir = tempfile::tempdir().unwrap();
    let r = bench_json(
        dir.path(),
        &["--duration", "1s", "--endpoints", "3", "--tasks", "9", "--max-size", "2", "--min-idle", "0"],
    );
    check_consistent(&r);
    assert!(u(&r, "/peak/endpoint_in_use") <= 2);
    assert!(u(&r, "/peak/in_use") <= 6, "three endpoints of two connections each");
    let endpoints = r["endpoints"].as_array().unwrap();
    assert_eq!(endpoints.len(), 3);
    assert_eq!(
        endpoints.iter().map(|e| e["acquired"].as_u64().unwrap()).sum::<u64>(),
        u(&r, "/pool_counters/acquired")
    );
    assert!(endpoints.iter().all(|e| e["acquired"].as_u64().unwrap() > 0 && e["created"].as_u64().unwrap() <= 2));
}

#[test]
fn rate_limited_load_with_server_latency() {
    let dir = tempfile::tempdir().unwrap();
    let r = bench_json(
        dir.path(),
        &["--duration", "1s", "--rate", "200", "--tasks", "4", "--server-latency", "1ms", "--max-size", "4"],
    );
    check_consistent(&r);
    assert!(u(&r, "/ops") <= 200, "at most rate x duration operations");
    assert_eq!(f(&r, "/server/latency_ms"), 1.0);
}

#[test]
fn dropped_connections_count_as_errors_and_are_replaced() {
    let dir = tempfile::tempdir().unwrap();
    let r = bench_json(dir.path(), &["--duration", "1s", "--tasks", "4", "--max-size", "4", "--drop-rate", "0.2"]);
    check_consistent(&r);
    let op_errors = u(&r, "/op_errors");
    assert!(op_errors > 0, "a 20% drop rate over a second of echoes drops some");
    assert_eq!(u(&r, "/server/dropped"), op_errors, "each drop is one failed operation");
    assert_eq!(u(&r, "/pool_counters/disposed_by_reason/broken"), op_errors, "failed connections are not reused");
    assert!(u(&r, "/pool_counters/created") >= op_errors, "dropped connections were replaced");
    assert!(r["errors"][0]["message"].as_str().unwrap().contains("closed the connection"));
}

#[test]
fn echo_server_url() {
    let port = common::tcp_echo();
    let dir = tempfile::tempdir().unwrap();
    let url = format!("tcp://127.0.0.1:{port}");
    let r = bench_json(dir.path(), &["--url", &url, "--duration", "1s", "--tasks", "3", "--max-size", "2"]);
    check_consistent(&r);
    assert_eq!(r["target"], url.as_str());
    assert!(r["server"].is_null(), "no embedded server");
}

#[test]
fn bad_input_is_one_line_and_exit_code_2() {
    expect_error(&["bench", "--min-idle", "20", "--max-size", "5"], 2, "min_idle (20) is greater than max_size (5)");
    expect_error(&["bench", "--burst", "2", "--max-size", "5"], 2, "burst_limit (2) is less than max_size (5)");
    expect_error(&["bench", "--url", "http://localhost:80"], 2, "unknown scheme 'http'");
    expect_error(&["bench", "--url", "tcp://127.0.0.1"], 2, "no port");
    expect_error(&["bench", "--drop-rate", "2"], 2, "--drop-rate");
    expect_error(&["bench", "--url", "tcp://127.0.0.1:9", "--drop-rate", "0.1"], 2, "embedded server");
    let (code, _, stderr) = parts(&kpool(&["bench", "--tasks", "0"]));
    assert_eq!(code, 2, "clap rejects it: {stderr}");
}

#[test]
fn unreachable_server_fails_fast_with_exit_code_1() {
    let url = format!("tcp://127.0.0.1:{}", closed_port());
    expect_error(&["bench", "--url", &url, "--duration", "1s"], 1, "connection refused");
}

#[test]
fn ctrl_c_ends_the_run_early_with_a_report() {
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("report.json");
    let child = std::process::Command::new(env!("CARGO_BIN_EXE_kpool"))
        .args(["bench", "--duration", "10m", "--tasks", "2", "--json", json.to_str().unwrap()])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // The handler is installed before the load starts; give the run a moment.
    std::thread::sleep(std::time::Duration::from_millis(1500));
    let sent = std::process::Command::new("kill").args(["-INT", &child.id().to_string()]).status().unwrap();
    assert!(sent.success());
    let out = child.wait_with_output().unwrap();
    let (code, stdout, stderr) = parts(&out);
    assert_eq!(code, 0, "stdout: {stdout}\nstderr: {stderr}");
    assert!(stdout.contains("interrupted by Ctrl-C"), "{stdout}");
    let r: Value = serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    assert_eq!(r["interrupted"], true);
    check_consistent(&r);
}
