//! The binary's access log (`RUST_LOG=info`): lines are batched per loop
//! iteration (`squall::logging`), so these check what batching must not
//! change: a line is out as soon as its request is answered, even when
//! nothing else happens afterwards; none is lost; they keep the order of
//! the requests.

mod chat_support;

use std::io::{Read, Write};
use std::net::TcpStream;

use chat_support::{read_response, Server, GUARD};

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

/// `GET path` on an open keep-alive connection: the status.
fn get_kept(stream: &mut TcpStream, path: &str) -> u16 {
    write!(stream, "GET {path} HTTP/1.1\r\nHost: test\r\n\r\n").expect("write");
    read_response(stream).status
}

#[test]
fn at_warn_the_access_log_keeps_only_client_and_server_errors() {
    // Tornado's `log_request`: below 400 at info, 4xx at warning, 5xx at
    // error. So `squall::access=warn` (README) drops the 200s and keeps the
    // errors, while `info` elsewhere (the shutdown notice) still comes.
    let mut server =
        Server::start_logging(&["--shutdown-grace", "600"], "info,squall::access=warn");
    let mut kept = TcpStream::connect(server.addr).expect("connect");
    kept.set_read_timeout(Some(GUARD)).expect("timeout");
    assert_eq!(get_kept(&mut kept, "/hello?quiet=1"), 200);
    assert_eq!(get_kept(&mut kept, "/no/such/page"), 404);
    // A request line too long for the responder's inline copy.
    let long = format!("/no/such/page/{}", "x".repeat(80));
    assert_eq!(get_kept(&mut kept, &long), 404);

    // Everything the binary logs up to the shutdown notice: the two 404s,
    // whole, in order, and nothing for the 200.
    server.signal(libc::SIGTERM);
    let access_lines = std::cell::RefCell::new(Vec::new());
    server.wait_log("the shutdown notice", |l| {
        if l.contains("squall::access") {
            access_lines.borrow_mut().push(l.to_string());
        }
        l.contains("INFO  squall::apps::shutdown] shutting down")
    });
    let lines = access_lines.into_inner();
    assert_eq!(lines.len(), 2, "{lines:#?}");
    for (line, path) in lines.iter().zip(["/no/such/page", long.as_str()]) {
        let want = format!("WARN  squall::access] 404 GET {path} (127.0.0.1) ");
        assert!(line.contains(&want), "expected {want:?} in {line}");
    }

    // Draining, `/healthz` answers 503: a server error, logged at error.
    // (The signal is handled on the loop's next iteration: ask until the
    // answer changes.)
    while get_kept(&mut kept, "/healthz") != 503 {}
    let line = server.wait_log("the 503's line", |l| l.contains("squall::access"));
    assert!(
        line.contains("ERROR squall::access] 503 GET /healthz (127.0.0.1) "),
        "{line}"
    );
    server.signal(libc::SIGINT);
    let status = server
        .wait_exit()
        .expect("the second signal did not stop the server");
    assert!(status.success(), "exit status {status}");
}
