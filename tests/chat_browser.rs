//! End to end in real headless Chromium: two browser contexts register,
//! chat in the lobby, and do not see another room's messages; the client
//! recovers from errors by itself. Drives `node tests/e2e/chat.mjs`
//! (playwright-core + Debian's chromium) against the real `squall` binary.
//!
//! Peers: node, /usr/bin/chromium (or $CHROMIUM), and
//! tests/e2e/node_modules (`npm ci` there). If one is missing the test
//! fails when $CI is set, else prints "SKIPPED: <why>" and passes.
//! Screenshots land in `<target>/tmp/chat-e2e/`.

mod chat_support;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use chat_support::Server;

/// Why the browser test cannot run here, if it cannot.
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

#[test]
fn two_users_chat_in_chromium() {
    let e2e = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/e2e");
    let chromium = PathBuf::from(std::env::var("CHROMIUM").unwrap_or("/usr/bin/chromium".into()));
    if let Some(why) = missing_peer(&e2e, &chromium) {
        assert!(
            std::env::var_os("CI").is_none(),
            "browser test cannot run in CI: {why}"
        );
        println!("SKIPPED: {why}");
        return;
    }
    let out = Path::new(env!("CARGO_TARGET_TMPDIR")).join("chat-e2e");
    let server = Server::start(&[]);
    let mut child = Command::new("node")
        .arg(e2e.join("chat.mjs"))
        .arg(format!("http://{}", server.addr))
        .arg(&out)
        .env("CHROMIUM", &chromium)
        .spawn()
        .expect("run node");
    // Guard: the script finishes in seconds; never hang the suite.
    let deadline = Instant::now() + Duration::from_secs(180);
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait for node") {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("the browser test did not finish in 180 s");
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(status.success(), "tests/e2e/chat.mjs failed ({status})");
    for shot in ["chat-desktop.png", "chat-phone.png", "login-desktop.png"] {
        assert!(out.join(shot).exists(), "no screenshot {shot}");
    }
    println!("screenshots: {}", out.display());
}
