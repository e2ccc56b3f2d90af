//! The shopping cart over real sockets: the race the book's demo loses,
//! the long-poll that misses no change, the WebSocket that pushes every
//! change (`tungstenite` as the client), and bad input.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::mpsc;
use std::thread;
use std::time::Duration;

use squall::apps::{config::Config, site};
use squall::ioloop::{IOLoop, IOLoopHandle};

/// A running squall site on its own loop thread; stopped on drop.
struct Server {
    addr: SocketAddr,
    handle: IOLoopHandle,
    thread: Option<thread::JoinHandle<()>>,
}

impl Server {
    fn start() -> Server {
        let (tx, rx) = mpsc::channel();
        let thread = thread::spawn(move || {
            let ioloop = IOLoop::current();
            let config = Config {
                port: 0,
                cookie_secret: Some("test-secret".into()),
                ..Config::default()
            };
            let site = site::build(&config).expect("site starts");
            tx.send((site.addrs[0], ioloop.handle()))
                .expect("send addr");
            ioloop.start();
        });
        let (addr, handle) = rx.recv_timeout(Duration::from_secs(10)).expect("server up");
        Server {
            addr,
            handle,
            thread: Some(thread),
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.handle.add_callback(|| IOLoop::current().stop());
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// A parsed response.
struct Response {
    status: u16,
    head: String,
    body: String,
}

impl Response {
    fn header(&self, name: &str) -> Option<String> {
        self.head.lines().find_map(|l| {
            let (n, v) = l.split_once(':')?;
            n.trim()
                .eq_ignore_ascii_case(name)
                .then(|| v.trim().to_string())
        })
    }
}

/// One request on a fresh connection (`Connection: close`), with a read
/// timeout so a test can never hang.
fn request(addr: SocketAddr, method: &str, path: &str, cookie: &str, body: &str) -> Response {
    let mut s = send(addr, method, path, cookie, body);
    read_response(&mut s)
}

fn send(addr: SocketAddr, method: &str, path: &str, cookie: &str, body: &str) -> TcpStream {
    let mut s = TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    let mut req = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    if !cookie.is_empty() {
        req.push_str(&format!("Cookie: {cookie}\r\n"));
    }
    if method == "POST" {
        req.push_str("Content-Type: application/x-www-form-urlencoded\r\n");
        req.push_str(&format!("Content-Length: {}\r\n", body.len()));
    }
    req.push_str("\r\n");
    req.push_str(body);
    s.write_all(req.as_bytes()).expect("write");
    s
}

fn read_response(s: &mut TcpStream) -> Response {
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).expect("read response");
    let text = String::from_utf8_lossy(&raw).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").expect("complete response");
    let status = head[9..12].parse().expect("status");
    Response {
        status,
        head: head.to_string(),
        body: body.to_string(),
    }
}

/// The `_xsrf` cookie value a browser would get from the cart page, and the
/// page's session id.
fn open_page(addr: SocketAddr) -> (String, String) {
    let page = request(addr, "GET", "/cart", "", "");
    assert_eq!(page.status, 200);
    let set_cookie = page.header("Set-Cookie").expect("page sets _xsrf");
    let xsrf = set_cookie
        .strip_prefix("_xsrf=")
        .and_then(|v| v.split(';').next())
        .expect("_xsrf cookie")
        .to_string();
    let session = page
        .body
        .split("session: \"")
        .nth(1)
        .and_then(|s| s.split('"').next())
        .expect("session in page")
        .to_string();
    (xsrf, session)
}

fn post_cart(addr: SocketAddr, xsrf: &str, action: &str, session: &str) -> Response {
    let cookie = format!("_xsrf={xsrf}");
    let body = format!(
        "action={action}&session={session}&_xsrf={}",
        squall::httputil::url_escape(xsrf, true)
    );
    request(addr, "POST", "/cart", &cookie, &body)
}

fn count_of(body: &str) -> i64 {
    let v: serde_json::Value = serde_json::from_str(body).expect("JSON body");
    v["inventoryCount"].as_i64().expect("inventoryCount")
}

fn metric(addr: SocketAddr, name: &str) -> f64 {
    let page = request(addr, "GET", "/metrics", "", "");
    page.body
        .lines()
        .find_map(|l| {
            l.strip_prefix(&format!("{name} "))
                .and_then(|v| v.trim().parse().ok())
        })
        .unwrap_or_else(|| panic!("metric {name} missing"))
}

type Ws = tungstenite::WebSocket<TcpStream>;

/// Open `/cart/socket` (with `origin`, if any), or the handshake's status.
fn try_socket(addr: SocketAddr, origin: Option<&str>) -> Result<Ws, u16> {
    use tungstenite::client::IntoClientRequest;
    let mut req = format!("ws://{addr}/cart/socket")
        .into_client_request()
        .expect("request");
    if let Some(origin) = origin {
        let value = tungstenite::http::HeaderValue::from_str(origin).expect("origin");
        req.headers_mut().insert("Origin", value);
    }
    let stream = TcpStream::connect(addr).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    match tungstenite::client(req, stream) {
        Ok((ws, _)) => Ok(ws),
        Err(tungstenite::HandshakeError::Failure(tungstenite::Error::Http(r))) => {
            Err(r.status().as_u16())
        }
        Err(e) => panic!("handshake: {e}"),
    }
}

fn socket(addr: SocketAddr) -> Ws {
    try_socket(addr, None).expect("handshake")
}

/// The next pushed count (a read timeout fails the test).
fn pushed(ws: &mut Ws) -> i64 {
    match ws.read().expect("a pushed count") {
        tungstenite::Message::Text(t) => count_of(&t),
        other => panic!("expected a text frame, got {other:?}"),
    }
}

/// Close as a browser does and read to the end.
fn close(mut ws: Ws) {
    ws.close(None).expect("close");
    while ws.read().is_ok() {}
}

/// Wait until `/metrics` shows `name` = `value` (no push for gauges).
fn wait_metric(addr: SocketAddr, name: &str, value: f64) {
    let mut now = f64::NAN;
    for _ in 0..500 {
        now = metric(addr, name);
        if now == value {
            return;
        }
        thread::sleep(Duration::from_millis(10));
    }
    panic!("{name} stayed at {now}, expected {value}");
}

#[test]
fn fifty_concurrent_adds_sell_exactly_ten() {
    let server = Server::start();
    let addr = server.addr;
    let (xsrf, _) = open_page(addr);
    // A page watching over the WebSocket sees every sale, and only sales.
    let mut watcher = socket(addr);
    assert_eq!(pushed(&mut watcher), 10);
    let workers: Vec<_> = (0..50)
        .map(|i| {
            let xsrf = xsrf.clone();
            thread::spawn(move || {
                let session = format!("session-{i}");
                (post_cart(addr, &xsrf, "add", &session).status, session)
            })
        })
        .collect();
    let results: Vec<(u16, String)> = workers
        .into_iter()
        .map(|w| w.join().expect("worker"))
        .collect();
    let statuses: Vec<u16> = results.iter().map(|(s, _)| *s).collect();
    assert_eq!(
        statuses.iter().filter(|&&s| s == 200).count(),
        10,
        "{statuses:?}"
    );
    assert_eq!(
        statuses.iter().filter(|&&s| s == 409).count(),
        40,
        "{statuses:?}"
    );
    let status = request(addr, "GET", "/cart/status", "", "");
    assert_eq!(count_of(&status.body), 0);
    let seen: Vec<i64> = (0..10).map(|_| pushed(&mut watcher)).collect();
    assert_eq!(seen, [9, 8, 7, 6, 5, 4, 3, 2, 1, 0]);
    // A winner removing gives one back; removing again changes nothing; a
    // loser removing changes nothing either.
    let winner = &results.iter().find(|(s, _)| *s == 200).expect("a winner").1;
    let loser = &results.iter().find(|(s, _)| *s == 409).expect("a loser").1;
    assert_eq!(count_of(&post_cart(addr, &xsrf, "remove", winner).body), 1);
    assert_eq!(count_of(&post_cart(addr, &xsrf, "remove", winner).body), 1);
    assert_eq!(count_of(&post_cart(addr, &xsrf, "remove", loser).body), 1);
    // One change, one push: the refused adds and removes pushed nothing
    // (the next frame is the next real change).
    assert_eq!(pushed(&mut watcher), 1);
    assert_eq!(post_cart(addr, &xsrf, "add", loser).status, 200);
    assert_eq!(pushed(&mut watcher), 0);
    close(watcher);
}

#[test]
fn socket_and_long_poll_both_see_every_change() {
    let server = Server::start();
    let addr = server.addr;
    let (xsrf, session) = open_page(addr);
    let mut ws = socket(addr);
    assert_eq!(pushed(&mut ws), 10, "the count on open");
    let mut count = 10;
    let (one, two) = (format!("{session}-1"), format!("{session}-2"));
    for (action, who, expected) in [
        ("add", &one, 9),
        ("remove", &one, 10),
        ("add", &one, 9),
        ("add", &two, 8),
        ("remove", &one, 9),
    ] {
        // A long poll parked on the current count, then the change.
        let mut parked = send(addr, "GET", &format!("/cart/status?count={count}"), "", "");
        wait_metric(addr, "squall_cart_waiters", 1.0);
        assert_eq!(post_cart(addr, &xsrf, action, who).status, 200);
        let polled = count_of(&read_response(&mut parked).body);
        assert_eq!(
            (polled, pushed(&mut ws)),
            (expected, expected),
            "{action} {who}"
        );
        count = expected;
    }
    // A second page opening now gets the current count at once.
    let mut late = socket(addr);
    assert_eq!(pushed(&mut late), count);
    assert_eq!(metric(addr, "squall_cart_subscribers"), 2.0);
    close(late);
    drop(ws); // vanishes without a Close frame
    wait_metric(addr, "squall_cart_subscribers", 0.0);
    wait_metric(addr, "squall_websocket_connections", 0.0);
}

#[test]
fn socket_refuses_other_origins() {
    let server = Server::start();
    let addr = server.addr;
    assert_eq!(
        try_socket(addr, Some("http://evil.example")).err(),
        Some(403)
    );
    let mut ws = try_socket(addr, Some(&format!("http://{addr}"))).expect("same origin");
    assert_eq!(pushed(&mut ws), 10);
    close(ws);
}

#[test]
fn long_poll_answers_on_change_and_never_misses_one() {
    let server = Server::start();
    let addr = server.addr;
    let (xsrf, session) = open_page(addr);
    // A stale count is answered at once (the change happened between polls).
    let stale = request(addr, "GET", "/cart/status?count=3", "", "");
    assert_eq!((stale.status, count_of(&stale.body)), (200, 10));
    // The current count parks the request until something changes.
    let mut parked = send(addr, "GET", "/cart/status?count=10", "", "");
    let mut waiters = 0.0;
    for _ in 0..200 {
        waiters = metric(addr, "squall_cart_waiters");
        if waiters >= 1.0 {
            break;
        }
        thread::sleep(Duration::from_millis(10));
    }
    assert_eq!(waiters, 1.0, "the long-poll is parked");
    let added = post_cart(addr, &xsrf, "add", &session);
    assert_eq!(added.status, 200);
    assert_eq!(count_of(&read_response(&mut parked).body), 9);
}

#[test]
fn departed_waiter_is_removed() {
    let server = Server::start();
    let addr = server.addr;
    let parked = send(addr, "GET", "/cart/status?count=10", "", "");
    let mut waiters = 0.0;
    for _ in 0..200 {
        waiters = metric(addr, "squall_cart_waiters");
        if waiters >= 1.0 {
            break;
        }
        thread::sleep(Duration::from_millis(10));
    }
    assert_eq!(waiters, 1.0);
    drop(parked);
    for _ in 0..200 {
        waiters = metric(addr, "squall_cart_waiters");
        if waiters == 0.0 {
            break;
        }
        thread::sleep(Duration::from_millis(10));
    }
    assert_eq!(waiters, 0.0, "a client that left no longer waits");
}

#[test]
fn bad_input_is_refused_clearly() {
    let server = Server::start();
    let addr = server.addr;
    let (xsrf, session) = open_page(addr);
    let cookie = format!("_xsrf={xsrf}");
    let token = squall::httputil::url_escape(&xsrf, true);
    let no_xsrf = request(
        addr,
        "POST",
        "/cart",
        &cookie,
        &format!("action=add&session={session}"),
    );
    assert_eq!(no_xsrf.status, 403);
    let bad_action = request(
        addr,
        "POST",
        "/cart",
        &cookie,
        &format!("action=steal&session={session}&_xsrf={token}"),
    );
    assert_eq!(bad_action.status, 400);
    assert!(
        bad_action.body.contains("action must be add or remove"),
        "{}",
        bad_action.body
    );
    let no_session = request(
        addr,
        "POST",
        "/cart",
        &cookie,
        &format!("action=add&_xsrf={token}"),
    );
    assert_eq!(no_session.status, 400);
    assert!(
        no_session.body.contains("Missing argument session"),
        "{}",
        no_session.body
    );
    let bad_session = request(
        addr,
        "POST",
        "/cart",
        &cookie,
        &format!("action=add&session=%3Cscript%3E&_xsrf={token}"),
    );
    assert_eq!(bad_session.status, 400);
    let bad_count = request(addr, "GET", "/cart/status?count=lots", "", "");
    assert_eq!(bad_count.status, 400);
    // Nothing was sold by any of that.
    assert_eq!(
        count_of(&request(addr, "GET", "/cart/status", "", "").body),
        10
    );
}
