//! Python's h11 — a strict, independent HTTP/1.1 implementation — as a
//! black-box judge of squall's responses: every response of a keep-alive
//! session (fixed length, chunked, HEAD, 100-continue, 304, errors, the
//! final `Connection: close`) must satisfy its parser and state machine.
//! The client is `tests/h11_client.py`.
#[path = "http_common/mod.rs"]
mod common;

use std::io::Write;
use std::process::{Command, Stdio};

use serde_json::{json, Value};

/// Run the h11 client against `addr` with `requests`; its JSON results.
fn run_h11(addr: std::net::SocketAddr, requests: &Value) -> Vec<Value> {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/h11_client.py");
    let mut child = Command::new("python3")
        .arg(script)
        .arg(addr.ip().to_string())
        .arg(addr.port().to_string())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run python3");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(requests.to_string().as_bytes())
        .expect("send requests");
    let out = child.wait_with_output().expect("h11 client");
    assert!(
        out.status.success(),
        "h11 rejected a response:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let results: Value = serde_json::from_slice(&out.stdout).expect("JSON from the client");
    results.as_array().expect("a list").clone()
}

fn req(method: &str, target: &str) -> Value {
    json!({"method": method, "target": target, "headers": []})
}

#[test]
fn h11_accepts_a_keep_alive_session_on_the_http_layer() {
    if !common::have_python_module("h11") {
        return;
    }
    let server = common::plain::start_default();
    let requests = json!([
        req("GET", "/hello"),
        req("HEAD", "/hello"),
        req("GET", "/stream"),
        {"method": "POST", "target": "/echo", "headers": [], "body": "posted"},
        {"method": "POST", "target": "/echo", "headers": [], "chunks": ["chunk one, ", "chunk two"]},
        {"method": "POST", "target": "/echo", "headers": [["Expect", "100-continue"]], "body": "after 100"},
        req("GET", "/later?ms=20"),
        req("GET", "/missing"),
        {"method": "GET", "target": "/hello", "headers": [["Connection", "close"]]},
    ]);
    let results = run_h11(server.addr, &requests);
    assert_eq!(results.len(), 10, "{results:#?}");
    let bodies: Vec<&str> = results[..9]
        .iter()
        .map(|r| r["body"].as_str().unwrap_or("?"))
        .collect();
    assert_eq!(
        bodies,
        [
            "Hello, world!",
            "",
            "one,two,three",
            "posted",
            "chunk one, chunk two",
            "after 100",
            "later",
            "not found",
            "Hello, world!"
        ]
    );
    assert_eq!(results[1]["headers"]["content-length"], "13");
    assert_eq!(results[2]["headers"]["transfer-encoding"], "chunked");
    assert_eq!(results[5]["informational"], json!([100]));
    assert_eq!(results[7]["status"], 404);
    assert_eq!(results[8]["headers"]["connection"], "close");
    assert_eq!(results[9]["closed_by_server"], true);
}

#[test]
fn h11_accepts_a_keep_alive_session_on_the_web_layer() {
    if !common::have_python_module("h11") {
        return;
    }
    let (tx, _rx) = std::sync::mpsc::channel();
    let server = common::webapp::start(tx);
    let requests = json!([
        req("GET", "/form"),
        {"method": "GET", "target": "/big", "headers": [["Accept-Encoding", "gzip"]]},
        req("GET", "/stream"),
        req("GET", "/dropped"),
        req("GET", "/arg"),
        req("GET", "/a/arg"),
        req("HEAD", "/fast"),
        req("GET", "/render"),
        req("GET", "/private"),
        {"method": "POST", "target": "/form", "headers": [], "body": "name=x"},
        {"method": "GET", "target": "/fast", "headers": [["Connection", "close"]]},
    ]);
    let results = run_h11(server.addr, &requests);
    assert_eq!(results.len(), 12, "{results:#?}");
    let statuses: Vec<u64> = results[..11]
        .iter()
        .map(|r| r["status"].as_u64().unwrap_or(0))
        .collect();
    assert_eq!(
        statuses,
        [200, 200, 200, 500, 400, 400, 200, 200, 302, 403, 200]
    );
    assert_eq!(results[1]["headers"]["content-encoding"], "gzip");
    assert_eq!(results[2]["body"], "abc");
    assert_eq!(results[10]["body"], "fast");
    assert_eq!(results[11]["closed_by_server"], true);
}
