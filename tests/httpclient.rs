//! AsyncHTTPClient and HTTPClient against real servers on 127.0.0.1: our
//! own HTTPServer for well-formed answers, and raw TCP servers scripted on
//! a thread for broken ones.

use std::cell::RefCell;
use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::rc::Rc;
use std::sync::mpsc;
use std::thread;
use std::time::Duration;

use squall::http::{HTTPResponder, HTTPServer, HTTPServerOptions, HTTPServerRequest};
use squall::httpclient::{
    AsyncHTTPClient, ClientOptions, FetchResult, HTTPClient, HTTPClientError, HTTPRequest,
    TimeoutPhase,
};
use squall::httputil::HTTPHeaders;
use squall::ioloop::IOLoop;

/// Nothing in these tests may take longer than this.
const GUARD: Duration = Duration::from_secs(10);

/// Our HTTPServer on the current loop, port 0.
fn serve(handler: impl Fn(HTTPServerRequest, HTTPResponder) + 'static) -> (HTTPServer, String) {
    let server = HTTPServer::new(HTTPServerOptions::default(), handler);
    let addr = server
        .listen("127.0.0.1:0".parse().expect("addr"))
        .expect("listen");
    (server, format!("http://{addr}"))
}

/// Run the loop until every fetch in `requests` finished; results in order.
fn fetch_all(client: &AsyncHTTPClient, requests: Vec<HTTPRequest>) -> Vec<FetchResult> {
    let n = requests.len();
    let results: Rc<RefCell<Vec<Option<FetchResult>>>> = Rc::new(RefCell::new(vec![None; n]));
    for (i, req) in requests.into_iter().enumerate() {
        let results = Rc::clone(&results);
        client.fetch(req, move |r| {
            results.borrow_mut()[i] = Some(r);
            if results.borrow().iter().all(Option::is_some) {
                IOLoop::current().stop();
            }
        });
    }
    run_loop();
    let out = results.borrow_mut().drain(..).collect::<Vec<_>>();
    out.into_iter()
        .map(|r| r.expect("fetch did not finish within the guard timeout"))
        .collect()
}

fn fetch_one(client: &AsyncHTTPClient, req: HTTPRequest) -> FetchResult {
    fetch_all(client, vec![req]).remove(0)
}

/// Start the loop with a guard timer that stops it.
fn run_loop() {
    let ioloop = IOLoop::current();
    let guard = ioloop.call_later(GUARD, || IOLoop::current().stop());
    ioloop.start();
    ioloop.remove_timeout(guard);
}

/// A raw TCP server on a thread: for each connection in turn, read the
/// request head, then run `script` with the socket. Returns the base URL.
fn raw_server(
    connections: usize,
    script: impl Fn(usize, TcpStream) + Send + Sync + 'static,
) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr");
    thread::spawn(move || {
        for i in 0..connections {
            let Ok((mut sock, _)) = listener.accept() else {
                return;
            };
            sock.set_read_timeout(Some(GUARD)).ok();
            read_head(&mut sock);
            script(i, sock);
        }
    });
    format!("http://{addr}")
}

/// Read up to the end of a request head (and no further).
fn read_head(sock: &mut TcpStream) -> String {
    let mut reader = BufReader::new(sock);
    let mut head = String::new();
    loop {
        let mut line = String::new();
        match reader.read_line(&mut line) {
            Ok(0) | Err(_) => return head,
            Ok(_) => {}
        }
        head.push_str(&line);
        if line == "\r\n" {
            return head;
        }
    }
}

/// A raw server that answers one connection with `bytes` and closes.
fn canned(bytes: &'static [u8]) -> String {
    raw_server(1, move |_, mut sock| {
        let _ = sock.write_all(bytes);
    })
}

fn ok_handler(body: &'static str) -> impl Fn(HTTPServerRequest, HTTPResponder) + 'static {
    move |_req, mut resp| resp.write_headers(200, &HTTPHeaders::new(), body.as_bytes(), true)
}

#[test]
fn content_length_response() {
    let (_server, base) = serve(|req, mut resp| {
        let mut h = HTTPHeaders::new();
        h.add("X-Path", req.uri());
        resp.write_headers(200, &h, b"hello, world", true);
    });
    let client = AsyncHTTPClient::new();
    let r = fetch_one(&client, HTTPRequest::new(format!("{base}/a?b=1"))).expect("200");
    assert_eq!(r.code, 200);
    assert_eq!(r.body, b"hello, world");
    assert_eq!(r.headers.get("X-Path"), Some("/a?b=1"));
    assert_eq!(r.headers.get("Content-Length"), Some("12"));
    assert_eq!(r.effective_url, format!("{base}/a?b=1"));
}

#[test]
fn chunked_response_from_our_server() {
    let (_server, base) = serve(|_req, mut resp| {
        resp.write_headers(200, &HTTPHeaders::new(), b"first,", false);
        resp.write(b"second,");
        resp.write(b"third");
        resp.finish();
    });
    let r = fetch_one(&AsyncHTTPClient::new(), HTTPRequest::new(base)).expect("200");
    assert_eq!(r.headers.get("Transfer-Encoding"), Some("chunked"));
    assert_eq!(r.text(), "first,second,third");
}

#[test]
fn chunked_response_with_extensions_and_trailers() {
    let base = canned(
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n\
          5\r\nhello\r\n6;ext=1\r\n world\r\n0\r\nX-Trailer: y\r\n\r\n",
    );
    let r = fetch_one(&AsyncHTTPClient::new(), HTTPRequest::new(base)).expect("200");
    assert_eq!(r.text(), "hello world");
}

/// Like Tornado's client (the same `\r?\n\r?\n` head reader as its
/// server), a head whose lines end in a bare LF is read, not waited on.
#[test]
fn bare_lf_response_head_is_accepted() {
    let base = canned(b"HTTP/1.1 200 OK\nContent-Length: 5\nX-A: b\n\nhello");
    let r = fetch_one(&AsyncHTTPClient::new(), HTTPRequest::new(base)).expect("200");
    assert_eq!(r.headers.get("X-A"), Some("b"));
    assert_eq!(r.text(), "hello");
}

#[test]
fn read_until_close_response() {
    let base = canned(b"HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\n\r\nall of this until EOF");
    let r = fetch_one(&AsyncHTTPClient::new(), HTTPRequest::new(base)).expect("200");
    assert_eq!(r.text(), "all of this until EOF");
}

#[test]
fn head_204_and_304_have_no_body() {
    let (_server, base) = serve(|req, mut resp| {
        let status = match req.path() {
            "/204" => 204,
            "/304" => 304,
            _ => 200,
        };
        resp.write_headers(status, &HTTPHeaders::new(), b"body of a GET", true);
    });
    let client = AsyncHTTPClient::new();
    let results = fetch_all(
        &client,
        vec![
            HTTPRequest::new(format!("{base}/x")).method("HEAD"),
            HTTPRequest::new(format!("{base}/204")),
            HTTPRequest::new(format!("{base}/304")).raise_error(false),
        ],
    );
    let head = results[0].as_ref().expect("HEAD ok");
    assert_eq!(head.headers.get("Content-Length"), Some("13"));
    assert!(head.body.is_empty());
    let r204 = results[1].as_ref().expect("204 ok");
    assert_eq!((r204.code, r204.body.len()), (204, 0));
    let r304 = results[2].as_ref().expect("304 without raise_error");
    assert_eq!((r304.code, r304.body.len()), (304, 0));
}

#[test]
fn post_body_and_headers_arrive() {
    let (_server, base) = serve(|req, mut resp| {
        let echo = format!(
            "{} {} ua={} ct={}",
            req.method(),
            String::from_utf8_lossy(&req.body),
            req.headers().get("User-Agent").unwrap_or(""),
            req.headers().get("Content-Type").unwrap_or("")
        );
        resp.write_headers(200, &HTTPHeaders::new(), echo.as_bytes(), true);
    });
    let req = HTTPRequest::new(base)
        .method("POST")
        .header("Content-Type", "text/plain")
        .body("payload");
    let r = fetch_one(&AsyncHTTPClient::new(), req).expect("200");
    assert_eq!(
        r.text(),
        format!(
            "POST payload ua={} ct=text/plain",
            squall::httpclient::DEFAULT_USER_AGENT
        )
    );
}

#[test]
fn non_2xx_is_an_error_unless_raise_error_is_off() {
    let (_server, base) =
        serve(|_req, mut resp| resp.write_headers(404, &HTTPHeaders::new(), b"nope", true));
    let client = AsyncHTTPClient::new();
    let results = fetch_all(
        &client,
        vec![
            HTTPRequest::new(base.clone()),
            HTTPRequest::new(base).raise_error(false),
        ],
    );
    match &results[0] {
        Err(e @ HTTPClientError::Http(r)) => {
            assert_eq!((e.code(), r.body.as_slice()), (404, &b"nope"[..]))
        }
        other => panic!("expected an Http error, got {other:?}"),
    }
    assert_eq!(
        results[1].as_ref().expect("Ok with raise_error off").code,
        404
    );
}

/// Records (method, path, body, Authorization, Cookie) of every request.
type Seen = Rc<RefCell<Vec<(String, String, String, Option<String>, Option<String>)>>>;

fn redirecting_server(seen: Seen, other_origin: Option<String>) -> (HTTPServer, String) {
    serve(move |req, mut resp| {
        seen.borrow_mut().push((
            req.method().to_string(),
            req.uri().to_string(),
            String::from_utf8_lossy(&req.body).into_owned(),
            req.headers().get("Authorization").map(str::to_string),
            req.headers().get("Cookie").map(str::to_string),
        ));
        let mut h = HTTPHeaders::new();
        let (status, location) = match req.path() {
            "/302" => (302, "/final".to_string()),
            "/303" => (303, "final".to_string()),
            "/307" => (307, "/final".to_string()),
            "/loop" => (302, "/loop".to_string()),
            "/away" => (
                302,
                format!("{}/final", other_origin.clone().unwrap_or_default()),
            ),
            _ => (200, String::new()),
        };
        if !location.is_empty() {
            h.add("Location", location);
        }
        resp.write_headers(status, &h, req.path().as_bytes(), true);
    })
}

#[test]
fn redirects_are_followed_with_tornados_method_rules() {
    let seen: Seen = Rc::default();
    let (_server, base) = redirecting_server(Rc::clone(&seen), None);
    let client = AsyncHTTPClient::new();
    let post = |path: &str| {
        HTTPRequest::new(format!("{base}{path}"))
            .method("POST")
            .header("Content-Type", "text/plain")
            .body("data")
    };
    let results = fetch_all(&client, vec![post("/302"), post("/303"), post("/307")]);
    for r in &results {
        let r = r.as_ref().expect("followed to /final");
        assert_eq!((r.code, r.text().as_ref()), (200, "/final"));
        assert_eq!(r.effective_url, format!("{base}/final"));
    }
    let seen = seen.borrow();
    let finals: Vec<(&str, &str)> = seen
        .iter()
        .filter(|s| s.1 == "/final")
        .map(|s| (s.0.as_str(), s.2.as_str()))
        .collect();
    // 302 after POST and 303 become GET without body; 307 keeps both.
    assert_eq!(finals.len(), 3);
    assert_eq!(finals.iter().filter(|f| *f == &("GET", "")).count(), 2);
    assert_eq!(finals.iter().filter(|f| *f == &("POST", "data")).count(), 1);
}

#[test]
fn redirect_loop_is_bounded() {
    let seen: Seen = Rc::default();
    let (_server, base) = redirecting_server(Rc::clone(&seen), None);
    let r = fetch_one(
        &AsyncHTTPClient::new(),
        HTTPRequest::new(format!("{base}/loop")),
    );
    match r {
        Err(HTTPClientError::TooManyRedirects {
            max_redirects,
            response,
        }) => {
            assert_eq!(max_redirects, 5);
            assert_eq!(response.code, 302);
        }
        other => panic!("expected TooManyRedirects, got {other:?}"),
    }
    // The original request plus 5 followed redirects.
    assert_eq!(seen.borrow().len(), 6);
    let r = fetch_one(
        &AsyncHTTPClient::new(),
        HTTPRequest::new(format!("{base}/loop")).follow_redirects(false),
    );
    assert_eq!(r.expect_err("302 is an error").code(), 302);
}

#[test]
fn credentials_do_not_follow_a_cross_origin_redirect() {
    let seen_b: Seen = Rc::default();
    let (_b, base_b) = redirecting_server(Rc::clone(&seen_b), None);
    let seen_a: Seen = Rc::default();
    let (_a, base_a) = redirecting_server(Rc::clone(&seen_a), Some(base_b));
    let r = fetch_one(
        &AsyncHTTPClient::new(),
        HTTPRequest::new(format!("{base_a}/away"))
            .header("Authorization", "Basic c2VjcmV0")
            .header("Cookie", "session=1")
            .header("X-Other", "kept"),
    );
    assert_eq!(r.expect("followed").text(), "/final");
    assert_eq!(seen_a.borrow()[0].3.as_deref(), Some("Basic c2VjcmV0"));
    let b = seen_b.borrow();
    assert_eq!(b.len(), 1);
    assert_eq!((b[0].3.as_deref(), b[0].4.as_deref()), (None, None));
}

#[test]
fn request_timeout_when_the_server_never_answers() {
    let (held_tx, held_rx) = mpsc::channel::<TcpStream>();
    let base = raw_server(1, move |_, sock| {
        // Keep the socket open (and silent) until the test is over.
        let _ = held_tx.send(sock);
    });
    let r = fetch_one(
        &AsyncHTTPClient::new(),
        HTTPRequest::new(base).request_timeout(Duration::from_millis(300)),
    );
    match r {
        Err(HTTPClientError::Timeout(TimeoutPhase::Request)) => {}
        other => panic!("expected a request timeout, got {other:?}"),
    }
    drop(held_rx);
}

#[test]
fn connection_refused() {
    let port = {
        let l = TcpListener::bind("127.0.0.1:0").expect("bind");
        l.local_addr().expect("addr").port()
    };
    let r = fetch_one(
        &AsyncHTTPClient::new(),
        HTTPRequest::new(format!("http://127.0.0.1:{port}/")),
    );
    match r {
        Err(e @ HTTPClientError::Connect { kind, .. }) => {
            assert_eq!(kind, std::io::ErrorKind::ConnectionRefused);
            assert_eq!(e.code(), 599);
        }
        other => panic!("expected connection refused, got {other:?}"),
    }
}

#[test]
fn malformed_status_lines_and_headers() {
    for bad in [
        &b"HTTP/1.1 abc OK\r\n\r\n"[..],
        b"hello there\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nNo Colon Here\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
    ] {
        let r = fetch_one(&AsyncHTTPClient::new(), HTTPRequest::new(canned(bad)));
        assert!(
            matches!(r, Err(HTTPClientError::MalformedResponse(_))),
            "{:?} gave {r:?}",
            String::from_utf8_lossy(bad)
        );
    }
}

#[test]
fn closed_before_the_body_was_complete() {
    let base = canned(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nshort");
    let r = fetch_one(&AsyncHTTPClient::new(), HTTPRequest::new(base));
    assert!(matches!(r, Err(HTTPClientError::ClosedEarly)), "{r:?}");
}

#[test]
fn oversize_responses_are_refused() {
    let small = ClientOptions {
        max_body_size: 1000,
        ..ClientOptions::default()
    };
    let client = AsyncHTTPClient::with_options(small);
    let big = "x".repeat(5000);
    let length = raw_server(1, {
        let big = big.clone();
        move |_, mut sock| {
            let _ = write!(sock, "HTTP/1.1 200 OK\r\nContent-Length: 5000\r\n\r\n{big}");
        }
    });
    let chunked = raw_server(1, {
        let big = big.clone();
        move |_, mut sock| {
            let _ = write!(
                sock,
                "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n258\r\n{}\r\n258\r\n{}\r\n0\r\n\r\n",
                &big[..600],
                &big[..600]
            );
        }
    });
    let until_close = raw_server(1, move |_, mut sock| {
        let _ = write!(sock, "HTTP/1.0 200 OK\r\n\r\n{big}");
    });
    let results = fetch_all(
        &client,
        vec![
            HTTPRequest::new(length),
            HTTPRequest::new(chunked),
            HTTPRequest::new(until_close),
        ],
    );
    for r in results {
        assert!(
            matches!(r, Err(HTTPClientError::TooLarge { limit: 1000 })),
            "{r:?}"
        );
    }
}

#[test]
fn an_oversize_head_or_trailer_section_is_told_apart_from_an_oversize_body() {
    let small = ClientOptions {
        max_header_size: 200,
        ..ClientOptions::default()
    };
    let client = AsyncHTTPClient::with_options(small);
    let long = "y".repeat(300);
    let head = raw_server(1, {
        let long = long.clone();
        move |_, mut sock| {
            let _ = write!(sock, "HTTP/1.1 200 OK\r\nX-Long: {long}\r\n\r\n");
        }
    });
    // One trailer line longer than the section may be, and a section of
    // short lines that adds up past it.
    let one_line = raw_server(1, {
        let long = long.clone();
        move |_, mut sock| {
            let _ = write!(
                sock,
                "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0\r\nX-Long: {long}\r\n\r\n"
            );
        }
    });
    let many_lines = raw_server(1, move |_, mut sock| {
        let trailers = "X-T: 0123456789\r\n".repeat(20);
        let _ = write!(
            sock,
            "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n{trailers}\r\n"
        );
    });
    let results = fetch_all(
        &client,
        vec![
            HTTPRequest::new(head),
            HTTPRequest::new(one_line),
            HTTPRequest::new(many_lines),
        ],
    );
    for r in results {
        match r {
            Err(e @ HTTPClientError::HeadTooLarge { limit: 200 }) => assert_eq!(
                e.to_string(),
                "response head larger than the limit of 200 bytes"
            ),
            other => panic!("expected HeadTooLarge, got {other:?}"),
        }
    }
}

/// The trailer section has the head's grammar (RFC 9112 §7.1.2), and the
/// client checks it as squall's server does: a line that is not a field
/// line is a broken response, not something to skip.
#[test]
fn a_malformed_trailer_line_is_a_malformed_response() {
    let bad: [&'static [u8]; 3] = [
        b"no colon here\r\n",
        b"Bad Name: x\r\n",
        b" X-Folded: obs-fold\r\n",
    ];
    for line in bad {
        let base = raw_server(1, move |_, mut sock| {
            let _ = sock.write_all(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n");
            let _ = sock.write_all(b"5\r\nhello\r\n0\r\n");
            let _ = sock.write_all(line);
            let _ = sock.write_all(b"\r\n");
        });
        match fetch_one(&AsyncHTTPClient::new(), HTTPRequest::new(base)) {
            Err(HTTPClientError::MalformedResponse(m)) => {
                assert!(m.contains("malformed trailer line"), "{m}")
            }
            other => panic!(
                "{:?}: expected MalformedResponse, got {other:?}",
                String::from_utf8_lossy(line)
            ),
        }
    }
}

#[test]
fn https_is_refused_with_a_clear_error() {
    let r = fetch_one(
        &AsyncHTTPClient::new(),
        HTTPRequest::new("https://127.0.0.1/"),
    );
    match r {
        Err(HTTPClientError::InvalidUrl(m)) => assert!(m.contains("https is not supported"), "{m}"),
        other => panic!("expected InvalidUrl, got {other:?}"),
    }
}

#[test]
fn max_clients_queues_the_rest() {
    // The server sees connections one by one: it holds the first two
    // unanswered and checks that no third one is waiting before it answers.
    let (tx, rx) = mpsc::channel::<String>();
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr: SocketAddr = listener.local_addr().expect("addr");
    thread::spawn(move || {
        let mut held = Vec::new();
        for _ in 0..2 {
            let (mut s, _) = listener.accept().expect("accept");
            read_head(&mut s);
            held.push(s);
        }
        listener.set_nonblocking(true).expect("nonblocking");
        let third_early = listener.accept().is_ok();
        listener.set_nonblocking(false).expect("blocking");
        let _ = tx.send(format!("third connection early: {third_early}"));
        for (i, mut s) in held.into_iter().enumerate() {
            let _ = write!(s, "HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\n{i}");
        }
        if !third_early {
            let (mut s, _) = listener.accept().expect("accept third");
            read_head(&mut s);
            let _ = s.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\n2");
        }
    });
    let client = AsyncHTTPClient::with_options(ClientOptions {
        max_clients: 2,
        ..ClientOptions::default()
    });
    let base = format!("http://{addr}/");
    let results = Rc::new(RefCell::new(Vec::new()));
    for _ in 0..3 {
        let results = Rc::clone(&results);
        client.fetch(HTTPRequest::new(base.clone()), move |r| {
            results.borrow_mut().push(r.map(|r| r.text().into_owned()));
            if results.borrow().len() == 3 {
                IOLoop::current().stop();
            }
        });
    }
    assert_eq!((client.active(), client.queued()), (2, 1));
    run_loop();
    assert_eq!(
        rx.recv_timeout(GUARD).expect("server report"),
        "third connection early: false"
    );
    let mut bodies: Vec<String> = results
        .borrow_mut()
        .drain(..)
        .map(|r| r.expect("200"))
        .collect();
    bodies.sort();
    assert_eq!(bodies, ["0", "1", "2"]);
    assert_eq!((client.active(), client.queued()), (0, 0));
}

#[test]
fn queue_time_counts_against_request_timeout() {
    let (held_tx, held_rx) = mpsc::channel::<TcpStream>();
    let base = raw_server(1, move |_, sock| {
        let _ = held_tx.send(sock);
    });
    let client = AsyncHTTPClient::with_options(ClientOptions {
        max_clients: 1,
        ..ClientOptions::default()
    });
    let results = fetch_all(
        &client,
        vec![
            HTTPRequest::new(base.clone()).request_timeout(Duration::from_millis(600)),
            HTTPRequest::new(base).request_timeout(Duration::from_millis(200)),
        ],
    );
    assert!(
        matches!(
            results[0],
            Err(HTTPClientError::Timeout(TimeoutPhase::Request))
        ),
        "{:?}",
        results[0]
    );
    assert!(
        matches!(
            results[1],
            Err(HTTPClientError::Timeout(TimeoutPhase::InQueue))
        ),
        "{:?}",
        results[1]
    );
    drop(held_rx);
}

#[test]
fn keep_alive_reuses_one_connection() {
    let (server, base) = serve(ok_handler("pooled"));
    let client = AsyncHTTPClient::with_options(ClientOptions {
        keep_alive: true,
        ..ClientOptions::default()
    });
    for _ in 0..3 {
        let r = fetch_one(&client, HTTPRequest::new(base.clone())).expect("200");
        assert_eq!(r.text(), "pooled");
        assert_eq!(client.idle_connections(), 1);
    }
    assert_eq!(server.tcp().accepted(), 1);
    // Without keep-alive every fetch is a new connection.
    let plain = AsyncHTTPClient::new();
    for _ in 0..2 {
        fetch_one(&plain, HTTPRequest::new(base.clone())).expect("200");
    }
    assert_eq!(server.tcp().accepted(), 3);
    assert_eq!(plain.idle_connections(), 0);
}

#[test]
fn a_stale_pooled_connection_is_retried_once() {
    // Connection 0 answers once with keep-alive, then closes without
    // answering the second request; connection 1 answers it.
    let base = raw_server(2, |i, mut sock| {
        if i == 0 {
            let _ = sock.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nfirst");
            read_head(&mut sock);
        } else {
            let _ = sock.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\nsecond");
        }
    });
    let client = AsyncHTTPClient::with_options(ClientOptions {
        keep_alive: true,
        ..ClientOptions::default()
    });
    let first = fetch_one(&client, HTTPRequest::new(base.clone())).expect("first");
    assert_eq!(first.text(), "first");
    let second = fetch_one(&client, HTTPRequest::new(base)).expect("retried");
    assert_eq!(second.text(), "second");
}

#[test]
fn host_names_resolve_off_the_loop() {
    let Ok(name) = std::fs::read_to_string("/proc/sys/kernel/hostname") else {
        println!("SKIPPED: no hostname");
        return;
    };
    let name = name.trim().to_string();
    use std::net::ToSocketAddrs;
    let resolvable = (name.as_str(), 80)
        .to_socket_addrs()
        .map(|mut a| a.any(|a| a.ip().is_loopback()))
        .unwrap_or(false);
    if !resolvable || squall::httpclient::resolve_inline(&name, 80).is_some() {
        println!("SKIPPED: {name:?} does not resolve to a loopback address here");
        return;
    }
    let (_server, base) = serve(ok_handler("by name"));
    let port = base.rsplit(':').next().expect("port");
    let r = fetch_one(
        &AsyncHTTPClient::new(),
        HTTPRequest::new(format!("http://{name}:{port}/")),
    );
    assert_eq!(r.expect("200").text(), "by name");
}

#[test]
fn blocking_client_fetches_from_another_thread() {
    let (tx, rx) = mpsc::channel::<String>();
    thread::spawn(move || {
        let (_server, base) = serve(ok_handler("from the server thread"));
        tx.send(base).expect("send");
        IOLoop::current().start();
    });
    let base = rx.recv_timeout(GUARD).expect("server up");
    let client = HTTPClient::new().expect("client");
    for _ in 0..2 {
        let r = client.fetch(HTTPRequest::new(base.clone())).expect("200");
        assert_eq!(r.text(), "from the server thread");
    }
    let refused = client.fetch(HTTPRequest::new("http://127.0.0.1:1/"));
    assert!(matches!(refused, Err(HTTPClientError::Connect { .. })));
}

#[test]
fn the_loop_is_left_clean() {
    // A fresh thread: its loop has no handler and no timer yet.
    let ioloop = IOLoop::current();
    let client = AsyncHTTPClient::new();
    let base = canned(b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nx");
    fetch_one(&client, HTTPRequest::new(base)).expect("200");
    fetch_one(&client, HTTPRequest::new("http://127.0.0.1:1/")).expect_err("refused");
    // Every stream closed, every timer (deadline, connect) cancelled.
    assert_eq!((ioloop.handler_count(), ioloop.timer_count()), (0, 0));
}
