//! The HTML report opened in a real browser (headless Chromium from Debian's
//! packages): the three charts must be drawn, no script error reported, and
//! the screenshot must show a page.
//!
//! Without Chromium the test skips with a message; with `KPOOL_REQUIRE_CHROMIUM`
//! set it fails instead. `.ci/run` installs Chromium (`.ci/chromium`) before
//! the tests and sets `KPOOL_REQUIRE_CHROMIUM=1`, so CI never passes without
//! the browser check.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{kpool, parts};

fn chromium() -> Option<PathBuf> {
    let candidates = [std::env::var_os("CHROMIUM").map(PathBuf::from), Some("/usr/bin/chromium".into())];
    candidates.into_iter().flatten().find(|p| p.exists())
}

/// Runs headless Chromium with `extra` on `page`, killing it after a minute.
fn run_chromium(bin: &Path, profile: &Path, extra: &[&str], page: &Path) -> String {
    let out_file = profile.with_extension("out");
    let mut child = Command::new(bin)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .args(extra)
        .arg(format!("file://{}", page.display()))
        .stdout(std::fs::File::create(&out_file).unwrap())
        .stderr(Stdio::null())
        .spawn()
        .expect("starting chromium");
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            assert!(status.success(), "chromium {extra:?} failed: {status}");
            break;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("chromium {extra:?} did not finish within a minute");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    std::fs::read_to_string(out_file).unwrap()
}

#[test]
fn html_report_is_self_contained_and_draws_its_charts_in_a_browser() {
    let dir = tempfile::tempdir().unwrap();
    let page = dir.path().join("report.html");
    let (code, stdout, stderr) = parts(&kpool(&[
        "bench",
        "--duration",
        "1s",
        "--tasks",
        "8",
        "--max-size",
        "4",
        "--quiet",
        "--html",
        page.to_str().unwrap(),
    ]));
    assert_eq!(code, 0, "stdout: {stdout}\nstderr: {stderr}");
    assert!(stdout.contains("HTML report:"), "{stdout}");
    let html = std::fs::read_to_string(&page).unwrap();
    assert_eq!(html.matches("<figure class=\"chart\">").count(), 3);
    for external in ["src=\"http", "href=\"http", "<link", "@import", "url(http"] {
        assert!(!html.contains(external), "the page loads nothing from the network ({external})");
    }

    let Some(bin) = chromium() else {
        let required = std::env::var_os("KPOOL_REQUIRE_CHROMIUM").is_some();
        assert!(!required, "Chromium is required (KPOOL_REQUIRE_CHROMIUM) but /usr/bin/chromium is missing");
        eprintln!(
            "SKIPPED the browser check: /usr/bin/chromium is missing{}; install it with .ci/steps/40-chromium.sh",
            if common::required() { " (CI runs it again after that step)" } else { "" }
        );
        return;
    };

    let dom = run_chromium(&bin, &dir.path().join("profile-dom"), &["--dump-dom"], &page);
    assert!(dom.contains("data-rendered=\"3\""), "all three charts drawn; body was: {}", &dom[..dom.len().min(600)]);
    assert!(dom.contains("<div id=\"errors\"></div>"), "no error reported by the page: {}", errors_of(&dom));
    assert!(dom.matches("class=\"series\"").count() >= 8, "lines and bars are in the DOM");

    let shot = dir.path().join("shot.png");
    let arg = format!("--screenshot={}", shot.display());
    run_chromium(&bin, &dir.path().join("profile-shot"), &[&arg, "--window-size=1200,1600"], &page);
    let png = std::fs::read(&shot).expect("chromium wrote the screenshot");
    assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n", "a PNG");
    assert!(png.len() > 20_000, "a page with charts, not a blank one ({} bytes)", png.len());
    // Keep it where a person can look at it.
    let keep = Path::new(env!("CARGO_TARGET_TMPDIR")).join("kpool-html-report.png");
    let _ = std::fs::copy(&shot, &keep);
    eprintln!("screenshot: {}", keep.display());
}

fn errors_of(dom: &str) -> &str {
    dom.split("<div id=\"errors\">").nth(1).and_then(|s| s.split("</div>").next()).unwrap_or("(no #errors element)")
}
