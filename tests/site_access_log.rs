//! The binary's access log (`RUST_LOG=info`): lines are batched per loop
//! iteration (`squall::logging`), so these check what batching must not
//! change: a line is out as soon as its request is answered, even when
//! nothing else happens afterwards; none is lost; they keep the order of
//! the requests.

mod chat_support;

use std::io::{Read, Write};
use std::net::TcpStream;

use chat_support::{Server, GUARD};

#[test]
fn a_lone_request_is_logged_while_the_server_sits_idle() {
    let server = Server::start_logging(&[], "info");
    let mut client = server.client();
    let r = client.get("/hello?lone=1");
    assert_eq!(r.status, 200);
    // Nothing else reaches the server from here on: the line must have left
    // before its loop went to sleep.
    let line = server.wait_log("the access line of GET /hello?lone=1", |l| {
        l.contains("squall::access") && l.contains("GET /hello?lone=1")
    });
    // The whole line, as env_logger's default format had it (what scripts
    // reading the log expect): `[2026-11-23T06:45:45Z INFO  squall::access]
    // 200 GET /hello?lone=1 (127.0.0.1) 0.28ms`.
    let (stamp, rest) = line
        .strip_prefix('[')
        .and_then(|l| l.split_once(' '))
        .unwrap_or_else(|| panic!("no timestamp: {line}"));
    let shape: String = stamp
        .chars()
        .map(|c| if c.is_ascii_digit() { 'd' } else { c })
        .collect();
    assert_eq!(shape, "dddd-dd-ddTdd:dd:ddZ", "{line}");
    let time = rest
        .strip_prefix("INFO  squall::access] 200 GET /hello?lone=1 (127.0.0.1) ")
        .and_then(|t| t.strip_suffix("ms"))
        .unwrap_or_else(|| panic!("not an access line: {line}"));
    let (whole, hundredths) = time.split_once('.').unwrap_or_else(|| panic!("{line}"));
    assert!(
        !whole.is_empty()
            && whole.bytes().all(|b| b.is_ascii_digit())
            && hundredths.len() == 2
            && hundredths.bytes().all(|b| b.is_ascii_digit()),
        "{line}"
    );
}

#[test]
fn pipelined_requests_are_each_logged_in_order() {
    const N: usize = 300;
    let server = Server::start_logging(&[], "info");
    let mut batch = String::new();
    for n in 0..N {
        batch.push_str(&format!("GET /hello?n={n} HTTP/1.1\r\nHost: x\r\n\r\n"));
    }
    batch.push_str("GET /hello?n=last HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    let mut stream = TcpStream::connect(server.addr).unwrap();
    stream.set_read_timeout(Some(GUARD)).unwrap();
    stream.write_all(batch.as_bytes()).unwrap();
    let mut answers = String::new();
    stream.read_to_string(&mut answers).unwrap();
    assert_eq!(answers.matches("HTTP/1.1 200 OK").count(), N + 1);
    for n in 0..N {
        let want = format!("GET /hello?n={n} ");
        let line = server.wait_log(&want, |l| l.contains("squall::access"));
        assert!(line.contains(&want), "expected {want:?}, got {line}");
    }
    server.wait_log("the last line", |l| l.contains("GET /hello?n=last "));
}

#[test]
fn rust_log_directives_reach_the_binarys_logger() {
    // `squall::access=warn` silences the access log (docs: README); the
    // shutdown notice, at info under `squall`, still comes. Everything the
    // binary logs before that notice is checked: no access line.
    let server = Server::start_logging(&[], "info,squall::access=warn");
    let mut client = server.client();
    assert_eq!(client.get("/hello?quiet=1").status, 200);
    assert_eq!(client.get("/no/such/page").status, 404);
    server.signal(libc::SIGTERM);
    let access_lines = std::cell::Cell::new(0);
    server.wait_log("the shutdown notice", |l| {
        if l.contains("squall::access") {
            access_lines.set(access_lines.get() + 1);
        }
        l.contains("INFO  squall::apps::shutdown] shutting down")
    });
    assert_eq!(access_lines.get(), 0, "the access log was not silenced");
}
