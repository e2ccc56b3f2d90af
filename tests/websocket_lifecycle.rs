//! How connections end: keep-alive pings and their timeout, the write
//! bound that closes a client that does not read while the others go on,
//! the closing-handshake timeout, a peer that vanishes, and `close` called
//! at awkward moments. In every case `on_close` fires exactly once and the
//! server releases everything.

mod websocket_support;

use std::cell::{Cell, RefCell};
use std::net::TcpStream;
use std::rc::Rc;
use std::time::Duration;

use squall::ioloop::IOLoop;
use squall::websocket::{
    websocket_connect, ConnectOptions, Message, WebSocket, WebSocketClosedError, WebSocketHandler,
    WebSocketOptions, WebSocketRoute,
};

use websocket_support::{close_body, masked, Ev, Events, RawClient, TestServer, GUARD};

fn finish(server: &TestServer) {
    server.events.assert_each_closed_once();
    server.assert_released();
}

// ----- keep-alive ------------------------------------------------------------

#[test]
fn a_peer_that_never_answers_pings_is_closed_with_1001() {
    let server = TestServer::echo_with(WebSocketOptions {
        ping_interval: Some(Duration::from_millis(50)),
        ping_timeout: Some(Duration::from_millis(120)),
        ..WebSocketOptions::default()
    });
    // Reads everything, answers nothing.
    let mut c = RawClient::connect(server.addr, "/echo");
    let mut pings = 0;
    let close = loop {
        let f = c.recv_frame();
        match f.opcode() {
            0x9 => pings += 1,
            0x8 => break f,
            _ => panic!("unexpected {f:?}"),
        }
    };
    assert!(pings >= 2, "saw {pings} pings before the close");
    assert_eq!(&close.payload[..], &close_body(1001, b"ping timeout")[..]);
    c.expect_eof();
    drop(c);
    let id = server.events.wait_open(1);
    assert_eq!(server.events.wait_close(id), (1001, "ping timeout".into()));
    finish(&server);
}

#[test]
fn a_dead_peer_is_dropped_after_ping_timeout_and_close_timeout() {
    let server = TestServer::echo_with(WebSocketOptions {
        ping_interval: Some(Duration::from_millis(50)),
        ping_timeout: Some(Duration::from_millis(50)),
        close_timeout: Duration::from_millis(200),
        ..WebSocketOptions::default()
    });
    // Connects, then neither reads nor writes nor closes.
    let c = RawClient::connect(server.addr, "/echo");
    let id = server.events.wait_open(1);
    assert_eq!(server.events.wait_close(id), (1001, "ping timeout".into()));
    server.assert_released();
    drop(c);
    finish(&server);
}

/// Counts pings and pongs; closes once both sides saw enough of them.
struct KeepAliveClient {
    events: Events,
    pings: Cell<usize>,
    pongs: Cell<usize>,
}

impl WebSocketHandler for KeepAliveClient {
    fn options(&self, _inherited: WebSocketOptions) -> WebSocketOptions {
        WebSocketOptions {
            ping_interval: Some(Duration::from_millis(20)),
            ping_timeout: Some(Duration::from_millis(200)),
            ..WebSocketOptions::default()
        }
    }
    fn on_message(&self, _ws: &WebSocket, _message: Message) {}
    fn on_ping(&self, ws: &WebSocket, _data: &[u8]) {
        self.pings.set(self.pings.get() + 1);
        self.maybe_done(ws);
    }
    fn on_pong(&self, ws: &WebSocket, _data: &[u8]) {
        self.pongs.set(self.pongs.get() + 1);
        self.maybe_done(ws);
    }
    fn on_close(&self, ws: &WebSocket, code: u16, reason: &str) {
        self.events.push(Ev::Close(ws.id(), code, reason.into()));
        self.events.push(Ev::Text(
            ws.id(),
            format!("pings {} pongs {}", self.pings.get(), self.pongs.get()),
        ));
        IOLoop::current().stop();
    }
}

impl KeepAliveClient {
    fn maybe_done(&self, ws: &WebSocket) {
        if self.pings.get() >= 5 && self.pongs.get() >= 5 {
            ws.close(1000, "enough");
        }
    }
}

#[test]
fn peers_that_answer_stay_connected_both_sides_pinging() {
    let server = TestServer::echo_with(WebSocketOptions {
        ping_interval: Some(Duration::from_millis(20)),
        ping_timeout: Some(Duration::from_millis(200)),
        ..WebSocketOptions::default()
    });
    let events = Events::default();
    let ioloop = IOLoop::new().unwrap();
    ioloop.make_current();
    let guard = ioloop.call_later(GUARD, || IOLoop::current().stop());
    let client = KeepAliveClient {
        events: events.clone(),
        pings: Cell::new(0),
        pongs: Cell::new(0),
    };
    websocket_connect(&server.url("/echo"), ConnectOptions::default(), client).unwrap();
    ioloop.start();
    assert!(ioloop.remove_timeout(guard), "client loop timed out");
    IOLoop::clear_current();
    let got = events.all();
    assert!(
        matches!(&got[..], [Ev::Close(_, 1000, _), Ev::Text(..)]),
        "{got:?}"
    );
    let id = server.events.wait_open(1);
    assert_eq!(server.events.wait_close(id), (1000, "enough".into()));
    let pongs = server
        .events
        .all()
        .iter()
        .filter(|e| matches!(e, Ev::Pong(..)))
        .count();
    assert!(pongs >= 5, "server saw {pongs} pongs");
    finish(&server);
}

// ----- backpressure ------------------------------------------------------------

/// Every member gets every broadcast; "next" from anyone broadcasts one
/// 64 KiB message.
struct Broadcast {
    events: Events,
    members: RefCell<Vec<WebSocket>>,
}

impl WebSocketHandler for Broadcast {
    fn options(&self, _inherited: WebSocketOptions) -> WebSocketOptions {
        WebSocketOptions {
            max_write_buffer: 256 * 1024,
            ..WebSocketOptions::default()
        }
    }
    fn open(&self, ws: &WebSocket) {
        self.events.push(Ev::Open(ws.id()));
        self.members.borrow_mut().push(ws.clone());
    }
    fn on_message(&self, _ws: &WebSocket, message: Message) {
        if message == Message::Text("next".into()) {
            let payload = vec![0xAB; 64 * 1024];
            // Clone the list: a write may fail and close a member, and the
            // application must not hold its own borrow while writing.
            let members = self.members.borrow().clone();
            for member in members {
                let _ = member.write_binary(&payload);
            }
        }
    }
    fn on_close(&self, ws: &WebSocket, code: u16, reason: &str) {
        self.members.borrow_mut().retain(|m| m != ws);
        self.events.push(Ev::Close(ws.id(), code, reason.into()));
    }
}

#[test]
fn a_client_that_does_not_read_is_closed_and_the_others_go_on() {
    let server = TestServer::start(|app, events| {
        app.route(
            "/broadcast",
            WebSocketRoute::new(Broadcast {
                events,
                members: RefCell::new(Vec::new()),
            }),
        );
    });
    // Client A: a tiny receive buffer, and it never reads.
    let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    socket.connect(&server.addr.into()).unwrap();
    let stream: TcpStream = socket.into();
    let request = RawClient::upgrade_request(server.addr, "/broadcast", "");
    let (slow, head) = RawClient::request_over(stream, request.as_bytes());
    assert!(head.starts_with("HTTP/1.1 101"), "{head}");
    let slow_id = server.events.wait_open(1);

    // Client B: tungstenite, reads every message.
    let stream = TcpStream::connect(server.addr).unwrap();
    stream.set_read_timeout(Some(GUARD)).unwrap();
    let (mut fast, _) = tungstenite::client(server.url("/broadcast"), stream).unwrap();
    let fast_id = server.events.wait_open(2);

    let slow_closed = |events: &Events| {
        events
            .all()
            .iter()
            .any(|e| matches!(e, Ev::Close(id, ..) if *id == slow_id))
    };
    let mut rounds = 0;
    let mut after_close = 0;
    while after_close < 20 {
        assert!(rounds < 2000, "the slow client was never closed");
        fast.send(tungstenite::Message::text("next")).unwrap();
        match fast.read().unwrap() {
            tungstenite::Message::Binary(data) => assert_eq!(data.len(), 64 * 1024),
            other => panic!("{other:?}"),
        }
        rounds += 1;
        if slow_closed(&server.events) {
            after_close += 1;
        }
    }
    assert_eq!(
        server.events.wait_close(slow_id),
        (1008, "write buffer full".into())
    );
    // The slow client's kernel buffers absorb a few MiB first; then the
    // 256 KiB bound trips.
    assert!(rounds > 20, "closed after only {rounds} rounds");
    fast.close(None).unwrap();
    loop {
        match fast.read() {
            Err(tungstenite::Error::ConnectionClosed) => break,
            Ok(_) => {}
            Err(e) => panic!("{e}"),
        }
    }
    assert_eq!(server.events.wait_close(fast_id).0, 1005);
    drop(slow);
    finish(&server);
}

// ----- closing -------------------------------------------------------------------

#[test]
fn a_peer_that_vanishes_is_1006() {
    let server = TestServer::echo();
    let c = RawClient::connect(server.addr, "/echo");
    let id = server.events.wait_open(1);
    drop(c);
    assert_eq!(server.events.wait_close(id), (1006, String::new()));
    // The same in the middle of a fragmented message and a partial frame.
    let mut c = RawClient::connect(server.addr, "/echo");
    c.send(&masked(0x01, b"first fragment"));
    let partial = masked(0x80, &[b'x'; 1000]);
    c.send(&partial[..500]);
    let id = server.events.wait_open(2);
    drop(c);
    assert_eq!(server.events.wait_close(id), (1006, String::new()));
    finish(&server);
}

#[test]
fn a_peer_that_never_answers_our_close_is_dropped_after_close_timeout() {
    let server = TestServer::echo_with(WebSocketOptions {
        close_timeout: Duration::from_millis(200),
        ..WebSocketOptions::default()
    });
    let mut c = RawClient::connect(server.addr, "/echo");
    c.send(&masked(0x81, b"close 4001 bye"));
    let f = c.recv_frame();
    assert_eq!(f.close_code(), Some(4001));
    c.expect_eof();
    // We neither answer nor close our socket: the server gives up.
    let id = server.events.wait_open(1);
    assert_eq!(server.events.wait_close(id), (4001, "bye".into()));
    server.assert_released();
    drop(c);
    finish(&server);
}

/// Closes in `open` or on the first message, twice, and tries to write
/// after closing and inside `on_close`.
struct Awkward {
    events: Events,
    close_in_open: bool,
}

impl Awkward {
    fn close_twice(&self, ws: &WebSocket) {
        ws.close(4100, "first");
        ws.close(4200, "second is ignored");
        if ws.write_message("after close") == Err(WebSocketClosedError) {
            self.events.push(Ev::Text(ws.id(), "write refused".into()));
        }
    }
}

impl WebSocketHandler for Awkward {
    fn open(&self, ws: &WebSocket) {
        self.events.push(Ev::Open(ws.id()));
        if self.close_in_open {
            self.close_twice(ws);
        }
    }
    fn on_message(&self, ws: &WebSocket, _message: Message) {
        self.close_twice(ws);
    }
    fn on_close(&self, ws: &WebSocket, code: u16, reason: &str) {
        ws.close(1000, "from on_close");
        assert!(ws.write_message("x").is_err());
        assert!(ws.is_closed());
        self.events.push(Ev::Close(ws.id(), code, reason.into()));
    }
}

#[test]
fn close_twice_in_open_in_on_message_and_in_on_close() {
    let server = TestServer::start(|app, events| {
        app.route(
            "/in-open",
            WebSocketRoute::new(Awkward {
                events: events.clone(),
                close_in_open: true,
            }),
        );
        app.route(
            "/on-message",
            WebSocketRoute::new(Awkward {
                events,
                close_in_open: false,
            }),
        );
    });
    for (n, path) in [(1, "/in-open"), (2, "/on-message")] {
        let mut c = RawClient::connect(server.addr, path);
        if n == 2 {
            c.send(&masked(0x81, b"hello"));
        }
        let f = c.recv_frame();
        assert_eq!(&f.payload[..], &close_body(4100, b"first")[..]);
        c.expect_eof();
        c.send(&masked(0x88, &close_body(4100, b"")));
        let id = server.events.wait_open(n);
        assert_eq!(server.events.wait_close(id), (4100, String::new()));
        assert!(server
            .events
            .all()
            .contains(&Ev::Text(id, "write refused".into())));
    }
    finish(&server);
}

#[test]
fn many_connections_opened_and_dropped_release_everything() {
    let server = TestServer::echo_with(WebSocketOptions {
        ping_interval: Some(Duration::from_secs(60)),
        ..WebSocketOptions::default()
    });
    let mut clients: Vec<RawClient> = (0..200)
        .map(|_| RawClient::connect(server.addr, "/echo"))
        .collect();
    server.events.wait_open(200);
    let counts = server.on_loop(|| {
        (
            squall::websocket::open_connections(),
            IOLoop::current().timer_count(),
        )
    });
    assert_eq!(counts, (200, 200), "one ping timer per connection");
    // Half close properly, half just go away.
    for (i, c) in clients.iter_mut().enumerate() {
        if i % 2 == 0 {
            c.send(&masked(0x88, &close_body(1000, b"")));
        }
    }
    for (i, mut c) in clients.drain(..).enumerate() {
        if i % 2 == 0 {
            c.expect_close(Some(1000));
        }
    }
    let events = server.events.wait_for("200 closes", |evs| {
        evs.iter().filter(|e| matches!(e, Ev::Close(..))).count() == 200
    });
    let normal = events
        .iter()
        .filter(|e| matches!(e, Ev::Close(_, 1000, _)))
        .count();
    assert_eq!(normal, 100);
    finish(&server);
}

/// `Rc<H>` is a handler too, so an application can keep a handle on its
/// handler's state.
#[test]
fn a_shared_handler_behind_an_rc() {
    struct Count(Events, Rc<Cell<usize>>);
    impl WebSocketHandler for Count {
        fn open(&self, ws: &WebSocket) {
            self.0.push(Ev::Open(ws.id()));
            self.1.set(self.1.get() + 1);
            ws.close(1000, "");
        }
        fn on_message(&self, _: &WebSocket, _: Message) {}
        fn on_close(&self, ws: &WebSocket, code: u16, reason: &str) {
            self.0.push(Ev::Close(ws.id(), code, reason.into()));
        }
    }
    let server = TestServer::start(|app, events| {
        let shared = Rc::new(Count(events, Rc::new(Cell::new(0))));
        app.route("/a", WebSocketRoute::new(Rc::clone(&shared)));
        app.route("/b", WebSocketRoute::new(shared));
    });
    for path in ["/a", "/b"] {
        let mut c = RawClient::connect(server.addr, path);
        c.expect_close(Some(1000));
    }
    finish(&server);
}
