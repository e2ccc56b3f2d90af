//! The opening handshake through the web layer: refusals (400 / 403 /
//! 405 / 426), the origin check, `prepare`, route guards, and what the
//! connection captures from the request (user, cookies, query, path
//! captures, headers set before the upgrade).

mod websocket_support;

use std::time::SystemTime;

use squall::web::signed::create_signed_value;
use squall::web::{Ctx, HTTPError, HandlerResult};
use squall::websocket::handshake::accept_key;
use squall::websocket::{Message, WebSocket, WebSocketHandler, WebSocketRoute};

use websocket_support::{Echo, Ev, Events, RawClient, TestServer, COOKIE_SECRET, RAW_KEY};

fn status_of(head: &str) -> u16 {
    head.split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0)
}

fn header<'a>(head: &'a str, name: &str) -> Option<&'a str> {
    head.lines().find_map(|l| {
        let (n, v) = l.split_once(':')?;
        n.eq_ignore_ascii_case(name).then(|| v.trim())
    })
}

/// Send `request` and return the response head and the client.
fn ask(server: &TestServer, request: String) -> (String, RawClient) {
    let (client, head) = RawClient::request(server.addr, request.as_bytes());
    (head, client)
}

fn upgrade(server: &TestServer, path: &str, extra: &str) -> (String, RawClient) {
    ask(server, RawClient::upgrade_request(server.addr, path, extra))
}

#[test]
fn a_valid_upgrade_is_101_with_the_accept_key() {
    let server = TestServer::echo();
    let (head, mut c) = upgrade(&server, "/echo", "");
    assert_eq!(status_of(&head), 101, "{head}");
    assert_eq!(
        header(&head, "Sec-WebSocket-Accept"),
        Some(accept_key(RAW_KEY).as_str())
    );
    assert_eq!(header(&head, "Upgrade"), Some("websocket"));
    assert_eq!(header(&head, "Connection"), Some("Upgrade"));
    assert!(header(&head, "Content-Type").is_none());
    assert!(header(&head, "Sec-WebSocket-Protocol").is_none());
    c.send(&websocket_support::masked(0x88, &[]));
    c.expect_close(None);
    server.events.assert_each_closed_once();
}

#[test]
fn bad_upgrade_requests_are_refused_like_tornado() {
    let server = TestServer::echo();
    let addr = server.addr;
    let base = |lines: &str| format!("GET /echo HTTP/1.1\r\nHost: {addr}\r\n{lines}\r\n");
    let key = format!("Sec-WebSocket-Key: {RAW_KEY}\r\n");
    let cases: Vec<(String, u16, &str)> = vec![
        (
            base(&format!("Connection: Upgrade\r\n{key}Sec-WebSocket-Version: 13\r\n")),
            400,
            "Can \"Upgrade\" only to \"WebSocket\".",
        ),
        (
            base(&format!(
                "Upgrade: websocket\r\nConnection: keep-alive\r\n{key}Sec-WebSocket-Version: 13\r\n"
            )),
            400,
            "\"Connection\" must be \"Upgrade\".",
        ),
        (
            base(&format!(
                "Upgrade: websocket\r\nConnection: Upgrade\r\n{key}Sec-WebSocket-Version: 8\r\n"
            )),
            426,
            "Upgrade Required",
        ),
        (
            base("Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: short\r\nSec-WebSocket-Version: 13\r\n"),
            400,
            "Missing/Invalid WebSocket headers",
        ),
        (
            format!(
                "GET /echo HTTP/1.0\r\nHost: {addr}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n{key}Sec-WebSocket-Version: 13\r\n\r\n"
            ),
            400,
            "WebSocket requires HTTP/1.1 or later.",
        ),
    ];
    for (request, status, text) in cases {
        let (head, mut c) = ask(&server, request.clone());
        assert_eq!(status_of(&head), status, "{request}\n→ {head}");
        if status == 426 {
            assert_eq!(header(&head, "Sec-WebSocket-Version"), Some("13"));
        }
        let len: usize = header(&head, "Content-Length").unwrap().parse().unwrap();
        let body = c.read_exact(len);
        assert_eq!(String::from_utf8(body).unwrap().trim_end(), text);
    }
    // HEAD is 405 with Allow: GET.
    let (head, _) = ask(
        &server,
        RawClient::upgrade_request(addr, "/echo", "").replacen("GET", "HEAD", 1),
    );
    assert_eq!(status_of(&head), 405, "{head}");
    assert_eq!(header(&head, "Allow"), Some("GET"));
    // No connection was opened.
    assert!(server.events.all().is_empty());
}

/// RFC 9110 §15.5.22: "The server MUST send an Upgrade header field in a
/// 426 response to indicate the required protocol(s)", and §7.8: "When
/// Upgrade is sent, the sender MUST also send a Connection header field
/// ... that contains an "upgrade" connection option". The refusal does
/// not end the connection: a correct upgrade on it then succeeds.
#[test]
fn a_426_names_the_protocol_in_upgrade_and_connection() {
    let server = TestServer::echo();
    let addr = server.addr;
    for version in ["Sec-WebSocket-Version: 8\r\n", ""] {
        let request = format!(
            "GET /echo HTTP/1.1\r\nHost: {addr}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Key: {RAW_KEY}\r\n{version}\r\n"
        );
        let (head, mut c) = ask(&server, request);
        assert_eq!(status_of(&head), 426, "{version:?}: {head}");
        assert_eq!(header(&head, "Sec-WebSocket-Version"), Some("13"));
        assert_eq!(header(&head, "Upgrade"), Some("websocket"), "{head}");
        let connection = header(&head, "Connection").unwrap_or("");
        assert!(
            connection
                .split(',')
                .any(|option| option.trim().eq_ignore_ascii_case("upgrade")),
            "{head}"
        );
        assert!(!connection.to_ascii_lowercase().contains("close"), "{head}");
        let len: usize = header(&head, "Content-Length")
            .and_then(|l| l.parse().ok())
            .expect("Content-Length");
        c.read_exact(len);
        c.send(RawClient::upgrade_request(addr, "/echo", "").as_bytes());
        let head = c.read_head();
        assert_eq!(status_of(&head), 101, "{head}");
    }
    // When the connection closes after the answer, both options are sent.
    let request = format!(
        "GET /echo HTTP/1.1\r\nHost: {addr}\r\nUpgrade: websocket\r\nConnection: Upgrade, close\r\n\
         Sec-WebSocket-Key: {RAW_KEY}\r\n\r\n"
    );
    let (head, _) = ask(&server, request);
    assert_eq!(status_of(&head), 426, "{head}");
    assert_eq!(
        header(&head, "Connection"),
        Some("close, Upgrade"),
        "{head}"
    );
}

/// A method the web layer does not know is refused before the handshake
/// code runs; the 405 still names the one method a WebSocket route
/// serves (RFC 9110 §15.5.6: a 405 MUST carry `Allow`).
#[test]
fn unknown_method_on_a_websocket_route_is_405_allowing_get() {
    let server = TestServer::echo();
    let (head, _) = ask(
        &server,
        RawClient::upgrade_request(server.addr, "/echo", "").replacen("GET", "BREW", 1),
    );
    assert_eq!(status_of(&head), 405, "{head}");
    assert_eq!(header(&head, "Allow"), Some("GET"), "{head}");
    assert!(server.events.all().is_empty());
}

#[test]
fn repeated_connection_headers_still_upgrade() {
    let server = TestServer::echo();
    let request = format!(
        "GET /echo HTTP/1.1\r\nHost: {}\r\nUpgrade: websocket\r\nConnection: keep-alive\r\n\
         Connection: Upgrade\r\nSec-WebSocket-Key: {RAW_KEY}\r\nSec-WebSocket-Version: 13\r\n\r\n",
        server.addr
    );
    let (head, _) = ask(&server, request);
    assert_eq!(status_of(&head), 101, "{head}");
}

#[test]
fn cross_origin_is_403_unless_the_handler_allows_it() {
    struct AnyOrigin(Echo);
    impl WebSocketHandler for AnyOrigin {
        fn check_origin(&self, _origin: &str, _host: &str) -> bool {
            true
        }
        fn on_message(&self, ws: &WebSocket, message: Message) {
            self.0.on_message(ws, message)
        }
    }
    let server = TestServer::start(|app, events| {
        let echo = || Echo {
            events: events.clone(),
            options: Default::default(),
            subprotocol: None,
        };
        app.route("/same", WebSocketRoute::new(echo()));
        app.route("/any", WebSocketRoute::new(AnyOrigin(echo())));
    });
    let addr = server.addr;
    let same = format!("Origin: http://{addr}\r\n");
    let evil = "Origin: http://evil.example\r\n";
    let draft = "Sec-WebSocket-Origin: http://evil.example\r\n";
    for (path, extra, status) in [
        ("/same", "", 101),
        ("/same", same.as_str(), 101),
        ("/same", evil, 403),
        ("/same", draft, 403),
        ("/any", evil, 101),
    ] {
        let (head, _) = upgrade(&server, path, extra);
        assert_eq!(status_of(&head), status, "{path} {extra}: {head}");
    }
    // An absolute-form target's authority is the request's host (RFC 9112
    // §3.2.2: the Host header is then ignored), for the origin check too.
    for (target, host, status) in [
        (format!("http://{addr}/same"), "other.example", 101),
        (
            "http://other.example/same".to_string(),
            &*addr.to_string(),
            403,
        ),
    ] {
        let request = RawClient::upgrade_request(addr, &target, &same).replacen(
            &format!("Host: {addr}"),
            &format!("Host: {host}"),
            1,
        );
        let (head, _) = ask(&server, request);
        assert_eq!(
            status_of(&head),
            status,
            "{target} with Host {host}: {head}"
        );
    }
}

/// Reports what it captured from the upgrade request as its first message.
struct Info {
    events: Events,
    /// The one request header to keep (`None`: the default, all of them).
    keep: Option<&'static str>,
}

impl WebSocketHandler for Info {
    fn prepare(&self, cx: &Ctx) -> HandlerResult {
        // A refusal before the handshake, with any status.
        if cx.get_query_argument("room").is_err() {
            return Err(HTTPError::bad_request("room required"));
        }
        cx.set_header("X-Prepared", "yes");
        Ok(())
    }
    fn keep_request_header(&self, name: &str) -> bool {
        self.keep.is_none_or(|keep| keep.eq_ignore_ascii_case(name))
    }
    fn open(&self, ws: &WebSocket) {
        self.events.push(Ev::Open(ws.id()));
        let request = ws.request().unwrap();
        let report = serde_json::json!({
            "user": ws.current_user(),
            "room": ws.get_query_argument("room"),
            "name": ws.path_arg("name"),
            "flavour": ws.get_cookie("flavour"),
            "path": request.path,
            "agent": request.headers.get("User-Agent"),
            "ip": request.remote_ip.map(|ip| ip.to_string()),
            "headers": request.headers.len(),
        });
        ws.write_json(&report).unwrap();
    }
    fn on_message(&self, _ws: &WebSocket, _message: Message) {}
    fn on_close(&self, ws: &WebSocket, code: u16, reason: &str) {
        self.events.push(Ev::Close(ws.id(), code, reason.into()));
    }
}

#[test]
fn the_connection_keeps_the_user_cookies_and_arguments_of_its_request() {
    let server = TestServer::start(|app, events| {
        app.route(
            "/info/{name}",
            WebSocketRoute::new(Info { events, keep: None }),
        )
        .authenticated()
        .api();
    });
    let user = create_signed_value(COOKIE_SECRET, "user", b"alice", SystemTime::now());
    let cookie = format!("Cookie: user={user}; flavour=mint\r\nUser-Agent: raw-test\r\n");

    // Not logged in: 403 before any handshake (route guard).
    let (head, _) = upgrade(&server, "/info/x?room=lobby", "");
    assert_eq!(status_of(&head), 403, "{head}");
    // prepare() refuses without a room.
    let (head, _) = upgrade(&server, "/info/x", &cookie);
    assert_eq!(status_of(&head), 400, "{head}");

    let (head, mut c) = upgrade(&server, "/info/the%20name?room=%20lobby%20", &cookie);
    assert_eq!(status_of(&head), 101, "{head}");
    assert_eq!(header(&head, "X-Prepared"), Some("yes"));
    let f = c.recv_frame();
    let report: serde_json::Value = serde_json::from_slice(&f.payload).unwrap();
    assert_eq!(
        report,
        serde_json::json!({
            "user": "alice",
            "room": "lobby",
            "name": "the name",
            "flavour": "mint",
            "path": "/info/the%20name",
            "agent": "raw-test",
            "ip": "127.0.0.1",
            // Host, Upgrade, Connection, key, version, Cookie, User-Agent.
            "headers": 7,
        })
    );
    c.send(&websocket_support::masked(0x88, &[]));
    c.expect_close(None);
    server.events.assert_each_closed_once();
    server.assert_released();
}

#[test]
fn a_handler_may_keep_only_some_request_headers() {
    let server = TestServer::start(|app, events| {
        let info = Info {
            events,
            keep: Some("user-agent"),
        };
        app.route("/info/{name}", WebSocketRoute::new(info))
            .authenticated()
            .api();
    });
    let user = create_signed_value(COOKIE_SECRET, "user", b"alice", SystemTime::now());
    let cookie = format!("Cookie: user={user}; flavour=mint\r\nUser-Agent: raw-test\r\n");
    let (head, mut c) = upgrade(&server, "/info/n?room=lobby", &cookie);
    assert_eq!(status_of(&head), 101, "{head}");
    let f = c.recv_frame();
    let report: serde_json::Value = serde_json::from_slice(&f.payload).unwrap();
    assert_eq!(
        report,
        serde_json::json!({
            // Captured whatever the handler keeps.
            "user": "alice",
            "room": "lobby",
            "name": "n",
            "path": "/info/n",
            "ip": "127.0.0.1",
            // The one header kept; the cookies went with the others.
            "agent": "raw-test",
            "headers": 1,
            "flavour": null,
        })
    );
    c.send(&websocket_support::masked(0x88, &[]));
    c.expect_close(None);
    server.events.assert_each_closed_once();
    server.assert_released();
}
