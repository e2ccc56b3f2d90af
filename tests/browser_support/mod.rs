//! Test support for the browser tests: run one `tests/e2e/*.mjs` script
//! (playwright-core driving headless Chromium) against a server, under a
//! guard timeout.
//!
//! Peers: node, /usr/bin/chromium (or $CHROMIUM), and
//! tests/e2e/node_modules (`npm ci` there). If one is missing the test
//! fails when $CI is set, else prints "SKIPPED: <why>" and passes.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

/// Longest a script may run.
const GUARD: Duration = Duration::from_secs(180);

/// Why the browser tests cannot run here, if they cannot.
fn missing_peer(e2e: &Path, chromium: &Path) -> Option<String> {
    let node = Command::new("node").arg("--version").output();
    if !node.is_ok_and(|o| o.status.success()) {
        return Some("node is not installed".into());
    }
    if !chromium.exists() {
        return Some(format!("{} is not installed", chromium.display()));
    }
    if !e2e.join("node_modules/playwright-core").exists() {
        return Some("tests/e2e/node_modules is missing (run npm ci in tests/e2e)".into());
    }
    None
}

/// The output directory for screenshots of `name`.
pub fn out_dir(name: &str) -> PathBuf {
    Path::new(env!("CARGO_TARGET_TMPDIR")).join(name)
}

/// Can the browser tests run? If not: panic under CI, else say SKIPPED.
pub fn available() -> bool {
    let e2e = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/e2e");
    match missing_peer(&e2e, &chromium()) {
        None => true,
        Some(why) => {
            assert!(
                std::env::var_os("CI").is_none(),
                "browser test cannot run in CI: {why}"
            );
            println!("SKIPPED: {why}");
            false
        }
    }
}

fn chromium() -> PathBuf {
    PathBuf::from(std::env::var("CHROMIUM").unwrap_or("/usr/bin/chromium".into()))
}

/// Run `node tests/e2e/<script> http://<addr> <out>`; fail unless it exits 0
/// within the guard time.
pub fn run_script(script: &str, addr: SocketAddr, out: &Path) {
    let e2e = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/e2e");
    let mut child = Command::new("node")
        .arg(e2e.join(script))
        .arg(format!("http://{addr}"))
        .arg(out)
        .env("CHROMIUM", chromium())
        .spawn()
        .expect("run node");
    let deadline = Instant::now() + GUARD;
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait for node") {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("tests/e2e/{script} did not finish in {GUARD:?}");
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(status.success(), "tests/e2e/{script} failed ({status})");
}
