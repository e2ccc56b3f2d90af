//! squall's client (`websocket_connect`) against squall's server, against a
//! raw TCP server that inspects its frames, and its failure paths.
//!
//! The client runs on the test thread's own `IOLoop`; the server on its own
//! thread. The loop swallows panics in callbacks (it logs and goes on), so
//! handlers only record what happened and the assertions run after the
//! loop has stopped.

mod websocket_support;

use std::cell::Cell;
use std::io::{Read, Write};
use std::net::TcpListener;
use std::rc::Rc;
use std::time::Duration;

use squall::ioloop::IOLoop;
use squall::websocket::handshake::accept_key;
use squall::websocket::{
    websocket_connect, ConnectError, ConnectOptions, Message, PreparedMessage, WebSocket,
    WebSocketHandler, WebSocketOptions,
};

use websocket_support::{run_client_loop, Ev, Events, TestServer, GUARD};

/// What a test client does besides recording: act on open and on each
/// message (given how many messages arrived so far, this one included).
type OnOpen = Box<dyn Fn(&WebSocket)>;
type OnMessage = Box<dyn Fn(&WebSocket, &Message, usize)>;

/// A client handler that records into `events` and stops the loop when the
/// connection ends or fails.
pub struct Client {
    events: Events,
    options: WebSocketOptions,
    on_open: OnOpen,
    on_message: OnMessage,
    received: Cell<usize>,
}

impl Client {
    fn new(events: &Events, on_open: OnOpen, on_message: OnMessage) -> Client {
        Client {
            events: events.clone(),
            options: WebSocketOptions::default(),
            on_open,
            on_message,
            received: Cell::new(0),
        }
    }
}

impl WebSocketHandler for Client {
    fn options(&self, _inherited: WebSocketOptions) -> WebSocketOptions {
        self.options.clone()
    }
    fn open(&self, ws: &WebSocket) {
        self.events.push(Ev::Open(ws.id()));
        (self.on_open)(ws);
    }
    fn on_message(&self, ws: &WebSocket, message: Message) {
        let n = self.received.get() + 1;
        self.received.set(n);
        self.events.push(match &message {
            Message::Text(t) => Ev::Text(ws.id(), t.clone()),
            Message::Binary(b) => Ev::Binary(ws.id(), b.clone()),
            other => Ev::Text(ws.id(), format!("unexpected {other:?}")),
        });
        (self.on_message)(ws, &message, n);
    }
    fn on_pong(&self, ws: &WebSocket, data: &[u8]) {
        self.events.push(Ev::Pong(ws.id(), data.to_vec()));
    }
    fn on_ping(&self, ws: &WebSocket, data: &[u8]) {
        self.events.push(Ev::Ping(ws.id(), data.to_vec()));
    }
    fn on_close(&self, ws: &WebSocket, code: u16, reason: &str) {
        self.events
            .push(Ev::Close(ws.id(), code, reason.to_owned()));
        IOLoop::current().stop();
    }
    fn on_connect_error(&self, error: &ConnectError) {
        self.events.push(Ev::ConnectError(format!("{error:?}")));
        IOLoop::current().stop();
    }
}

/// Run `start` on a fresh loop on this thread until a handler stops it;
/// fail if the guard timer fires first.
fn run_client(start: impl FnOnce()) {
    let (ioloop, timed_out) = run_client_loop(start);
    // Let queued callbacks (the close's aftermath) run, then check that the
    // client side let go of everything too.
    for _ in 0..3 {
        let l = ioloop.clone();
        ioloop.add_callback(move || l.stop());
        ioloop.start();
    }
    assert!(!timed_out, "client loop timed out");
    assert_eq!(squall::websocket::open_connections(), 0);
    assert_eq!(squall::websocket::live_connections(), 0);
    assert_eq!(ioloop.timer_count(), 0, "client timers left");
    IOLoop::clear_current();
}

fn texts(events: &[Ev]) -> Vec<String> {
    events
        .iter()
        .filter_map(|e| match e {
            Ev::Text(_, t) => Some(t.clone()),
            _ => None,
        })
        .collect()
}

fn close_of(events: &[Ev]) -> Option<(u16, String)> {
    events.iter().find_map(|e| match e {
        Ev::Close(_, code, reason) => Some((*code, reason.clone())),
        _ => None,
    })
}

#[test]
fn echo_round_trip_of_text_binary_and_pings() {
    let server = TestServer::echo();
    let events = Events::default();
    let sizes = [0usize, 125, 126, 65535, 65536, 1 << 20];
    let client = Client::new(
        &events,
        Box::new(move |ws| {
            // The pong comes back before the echoes (after them we close,
            // and a closing connection delivers nothing more).
            ws.ping(b"are you there").unwrap();
            for size in sizes {
                ws.write_message(&"t".repeat(size)).unwrap();
                ws.write_binary(&vec![7u8; size]).unwrap();
            }
        }),
        Box::new(move |ws, _, n| {
            if n == 2 * sizes.len() {
                ws.close(4000, "client done");
            }
        }),
    );
    run_client(|| {
        websocket_connect(&server.url("/echo"), ConnectOptions::default(), client).unwrap()
    });
    let got = events.all();
    let mut expected = Vec::new();
    for size in sizes {
        expected.push(Ev::Text(0, "t".repeat(size)));
        expected.push(Ev::Binary(0, vec![7u8; size]));
    }
    let messages: Vec<Ev> = got
        .iter()
        .filter_map(|e| match e {
            Ev::Text(_, t) => Some(Ev::Text(0, t.clone())),
            Ev::Binary(_, b) => Some(Ev::Binary(0, b.clone())),
            _ => None,
        })
        .collect();
    assert!(messages == expected, "echoed messages differ");
    assert!(got
        .iter()
        .any(|e| matches!(e, Ev::Pong(_, d) if d == b"are you there")));
    // The server echoed our close code.
    assert_eq!(close_of(&got).map(|c| c.0), Some(4000));
    let id = server.events.wait_open(1);
    assert_eq!(server.events.wait_close(id), (4000, "client done".into()));
    server.events.assert_each_closed_once();
    server.assert_released();
}

#[test]
fn a_prepared_message_from_a_client_is_masked_per_frame() {
    // The prepared frame is the unmasked server form; a client must mask
    // what it sends (the server fails unmasked frames with 1002), so this
    // echo only comes back if the client re-encoded it.
    let server = TestServer::echo();
    let events = Events::default();
    let client = Client::new(
        &events,
        Box::new(|ws| {
            let text = PreparedMessage::text("prepared text");
            let binary = PreparedMessage::binary(&[1, 2, 3, 255]);
            ws.write_prepared(&text).unwrap();
            ws.write_prepared(&binary).unwrap();
            ws.write_prepared(&text).unwrap();
        }),
        Box::new(|ws, _, n| {
            if n == 3 {
                ws.close(4000, "client done");
            }
        }),
    );
    run_client(|| {
        websocket_connect(&server.url("/echo"), ConnectOptions::default(), client).unwrap()
    });
    let got = events.all();
    let messages: Vec<Ev> = got
        .iter()
        .filter_map(|e| match e {
            Ev::Text(_, t) => Some(Ev::Text(0, t.clone())),
            Ev::Binary(_, b) => Some(Ev::Binary(0, b.clone())),
            _ => None,
        })
        .collect();
    assert_eq!(
        messages,
        [
            Ev::Text(0, "prepared text".into()),
            Ev::Binary(0, vec![1, 2, 3, 255]),
            Ev::Text(0, "prepared text".into()),
        ]
    );
    assert_eq!(close_of(&got).map(|c| c.0), Some(4000));
    server.events.assert_each_closed_once();
    server.assert_released();
}

#[test]
fn server_initiated_close_and_subprotocol() {
    let server = TestServer::echo();
    let events = Events::default();
    let chosen = Rc::new(std::cell::RefCell::new(None));
    let seen = Rc::clone(&chosen);
    let client = Client::new(
        &events,
        Box::new(move |ws| {
            *seen.borrow_mut() = ws.subprotocol().map(str::to_owned);
            ws.write_message("close 3002 go away").unwrap();
        }),
        Box::new(|_, _, _| {}),
    );
    let options = ConnectOptions {
        subprotocols: vec!["superchat".into(), "chat".into()],
        ..ConnectOptions::default()
    };
    run_client(|| websocket_connect(&server.url("/echo"), options, client).unwrap());
    assert_eq!(chosen.borrow().as_deref(), Some("chat"));
    assert_eq!(
        close_of(&events.all()),
        Some((3002, "go away".into())),
        "the client reports the server's code and reason"
    );
    let id = server.events.wait_open(1);
    assert_eq!(server.events.wait_close(id).0, 3002);
    server.events.assert_each_closed_once();
    server.assert_released();
}

#[test]
fn host_names_are_resolved_off_the_loop() {
    let server = TestServer::echo();
    let events = Events::default();
    let client = Client::new(
        &events,
        Box::new(|ws| ws.write_message("via localhost").unwrap()),
        Box::new(|ws, _, _| ws.close(1000, "")),
    );
    let url = format!("ws://localhost:{}/echo", server.addr.port());
    run_client(|| websocket_connect(&url, ConnectOptions::default(), client).unwrap());
    assert_eq!(texts(&events.all()), ["via localhost"]);
    server.events.assert_each_closed_once();
}

#[test]
fn connect_errors_are_reported_once() {
    // A bad URL is refused at once.
    let events = Events::default();
    let client = Client::new(&events, Box::new(|_| {}), Box::new(|_, _, _| {}));
    assert!(matches!(
        websocket_connect("wss://127.0.0.1/", ConnectOptions::default(), client),
        Err(ConnectError::InvalidUrl(_))
    ));

    // Connection refused: a port nobody listens on.
    let port = {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let events = Events::default();
    let client = Client::new(&events, Box::new(|_| {}), Box::new(|_, _, _| {}));
    let url = format!("ws://127.0.0.1:{port}/");
    run_client(|| websocket_connect(&url, ConnectOptions::default(), client).unwrap());
    let got = events.all();
    assert_eq!(got.len(), 1, "{got:?}");
    assert!(
        matches!(&got[0], Ev::ConnectError(e) if e.starts_with("Stream")),
        "{got:?}"
    );

    // The server refuses the handshake (no such route: 404).
    let server = TestServer::echo();
    let events = Events::default();
    let client = Client::new(&events, Box::new(|_| {}), Box::new(|_, _, _| {}));
    run_client(|| {
        websocket_connect(&server.url("/nowhere"), ConnectOptions::default(), client).unwrap()
    });
    let got = events.all();
    assert!(
        matches!(&got[..], [Ev::ConnectError(e)] if e.starts_with("Handshake(404")),
        "{got:?}"
    );
    server.assert_released();
}

#[test]
fn connect_timeout_when_the_server_never_answers() {
    // Accepts the connection (the kernel does) but never answers.
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("ws://{}/", listener.local_addr().unwrap());
    let events = Events::default();
    let client = Client::new(&events, Box::new(|_| {}), Box::new(|_, _, _| {}));
    let options = ConnectOptions {
        connect_timeout: Duration::from_millis(200),
        ..ConnectOptions::default()
    };
    run_client(|| websocket_connect(&url, options, client).unwrap());
    assert_eq!(events.all(), [Ev::ConnectError("Timeout".into())]);
    drop(listener);
}

/// A hand-written server: answers the handshake correctly, then reads what
/// our client sends and checks the masking of every frame.
#[test]
fn every_client_frame_is_masked_with_a_fresh_key() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("ws://{}/raw", listener.local_addr().unwrap());
    let server = std::thread::spawn(move || {
        let (mut sock, _) = listener.accept().unwrap();
        sock.set_read_timeout(Some(GUARD)).unwrap();
        let mut head = Vec::new();
        let mut byte = [0u8; 1];
        while !head.ends_with(b"\r\n\r\n") {
            sock.read_exact(&mut byte).unwrap();
            head.push(byte[0]);
        }
        let head = String::from_utf8(head).unwrap();
        let key = head
            .lines()
            .find_map(|l| l.strip_prefix("Sec-WebSocket-Key: "))
            .unwrap()
            .to_owned();
        assert!(head.starts_with("GET /raw HTTP/1.1\r\n"), "{head}");
        let response = format!(
            "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Accept: {}\r\n\r\n",
            accept_key(&key)
        );
        sock.write_all(response.as_bytes()).unwrap();
        // Read 20 frames (19 texts and a close); collect their keys.
        let mut keys = Vec::new();
        let mut payloads = Vec::new();
        for _ in 0..20 {
            let mut h = [0u8; 2];
            sock.read_exact(&mut h).unwrap();
            assert!(h[1] & 0x80 != 0, "client frame not masked");
            let len = (h[1] & 0x7F) as usize;
            assert!(len < 126);
            let mut key = [0u8; 4];
            sock.read_exact(&mut key).unwrap();
            let mut payload = vec![0u8; len];
            sock.read_exact(&mut payload).unwrap();
            for (i, b) in payload.iter_mut().enumerate() {
                *b ^= key[i % 4];
            }
            keys.push(key);
            payloads.push((h[0], payload));
        }
        // Answer the close (unmasked, as a server must) and hang up.
        sock.write_all(&[0x88, 0x02, 0x03, 0xE8]).unwrap();
        (keys, payloads)
    });
    let events = Events::default();
    let client = Client::new(
        &events,
        Box::new(|ws| {
            for i in 0..19 {
                ws.write_message(&format!("frame {i}")).unwrap();
            }
            ws.close(1000, "");
        }),
        Box::new(|_, _, _| {}),
    );
    run_client(|| websocket_connect(&url, ConnectOptions::default(), client).unwrap());
    let (keys, payloads) = server.join().unwrap();
    for (i, (b0, payload)) in payloads.iter().take(19).enumerate() {
        assert_eq!(*b0, 0x81);
        assert_eq!(payload, format!("frame {i}").as_bytes());
    }
    assert_eq!(payloads[19], (0x88, vec![0x03, 0xE8]));
    let mut distinct = keys.clone();
    distinct.sort_unstable();
    distinct.dedup();
    assert!(distinct.len() >= 18, "masking keys repeat: {keys:?}");
    assert_eq!(close_of(&events.all()).map(|c| c.0), Some(1000));
}
