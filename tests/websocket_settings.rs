//! Where a connection's `WebSocketOptions` come from: the application's
//! `websocket_*` settings on the server side, `ConnectOptions::websocket`
//! on the client side, each handed to the handler's `options`, which keeps
//! them by default and may change any field (Tornado's
//! `websocket_ping_interval` setting and its per-handler override).

mod websocket_support;

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use squall::ioloop::IOLoop;
use squall::web::Settings;
use squall::websocket::{
    websocket_connect, ConnectOptions, Message, WebSocket, WebSocketHandler, WebSocketOptions,
    WebSocketRoute,
};

use websocket_support::{masked, run_client_loop, Ev, RawClient, TestServer};

const PING: u8 = 0x9;
const TEXT: u8 = 0x1;

/// Options each opened connection reported, by route name.
type Seen = Arc<Mutex<Vec<(&'static str, WebSocketOptions)>>>;

/// A handler with no `options` of its own: it must get the application's.
/// Reports its connections' options under `route`; echoes text.
struct Plain {
    route: &'static str,
    seen: Seen,
}

impl WebSocketHandler for Plain {
    fn open(&self, ws: &WebSocket) {
        let options = ws.options().clone();
        self.seen.lock().unwrap().push((self.route, options));
    }
    fn on_message(&self, ws: &WebSocket, message: Message) {
        if let Message::Text(text) = message {
            let _ = ws.write_message(&text);
        }
    }
}

/// [`Plain`], but turning the application's pings off and keeping the
/// rest.
struct Quiet(Plain);

impl WebSocketHandler for Quiet {
    fn options(&self, inherited: WebSocketOptions) -> WebSocketOptions {
        WebSocketOptions {
            ping_interval: None,
            ..inherited
        }
    }
    fn open(&self, ws: &WebSocket) {
        self.0.open(ws)
    }
    fn on_message(&self, ws: &WebSocket, message: Message) {
        self.0.on_message(ws, message)
    }
}

const INTERVAL: Duration = Duration::from_millis(50);
/// Long, so a client that does not answer pings is not dropped mid-test.
const TIMEOUT: Duration = Duration::from_secs(10);
const MAX_MESSAGE: usize = 4096;

/// A server whose application pings every [`INTERVAL`], with `/plain` and
/// `/quiet` routes recording their connections' options into the result.
fn server() -> (TestServer, Seen) {
    let seen: Seen = Arc::default();
    let settings = Settings {
        websocket_ping_interval: Some(INTERVAL),
        websocket_ping_timeout: Some(TIMEOUT),
        websocket_max_message_size: Some(MAX_MESSAGE),
        ..Settings::default()
    };
    let routes = Arc::clone(&seen);
    let server = TestServer::start_with_settings(settings, move |app, _events| {
        let plain = Plain {
            route: "plain",
            seen: Arc::clone(&routes),
        };
        let quiet = Plain {
            route: "quiet",
            seen: routes,
        };
        app.route("/plain", WebSocketRoute::new(plain));
        app.route("/quiet", WebSocketRoute::new(Quiet(quiet)));
    });
    (server, seen)
}

fn options_of(seen: &Seen, route: &str) -> WebSocketOptions {
    let seen = seen.lock().unwrap();
    let found = seen.iter().find(|(name, _)| *name == route);
    found.map(|(_, o)| o.clone()).expect("route never opened")
}

#[test]
fn a_handler_without_options_gets_the_applications_websocket_settings() {
    let (server, seen) = server();
    let mut client = RawClient::connect(server.addr, "/plain");
    for n in 0..2 {
        let frame = client.recv_frame();
        assert_eq!(frame.opcode(), PING, "frame {n}: {frame:?}");
    }
    let options = options_of(&seen, "plain");
    assert_eq!(options.ping_interval, Some(INTERVAL));
    assert_eq!(options.ping_timeout, Some(TIMEOUT));
    assert_eq!(options.max_message_size, MAX_MESSAGE);
    // The size limit is the application's too: one byte over fails the
    // connection with 1009.
    client.send(&masked(0x81, &vec![b'x'; MAX_MESSAGE + 1]));
    loop {
        let frame = client.recv_frame();
        if frame.opcode() != PING {
            assert_eq!(frame.close_code(), Some(1009), "{frame:?}");
            break;
        }
    }
    drop(client);
    server.assert_released();
}

#[test]
fn a_handler_can_turn_off_the_applications_pings_and_keep_the_rest() {
    let (server, seen) = server();
    // The quiet connection opens first, so every ping the plain one gets
    // is an interval in which the quiet one would have had a ping too.
    let mut quiet = RawClient::connect(server.addr, "/quiet");
    server.wait_on_loop("the quiet connection open", || {
        squall::websocket::open_connections() == 1
    });
    let mut plain = RawClient::connect(server.addr, "/plain");
    for _ in 0..3 {
        assert_eq!(plain.recv_frame().opcode(), PING);
    }
    quiet.send(&masked(0x81, b"still there?"));
    let first = quiet.recv_frame();
    assert_eq!(
        (first.opcode(), &first.payload[..]),
        (TEXT, &b"still there?"[..]),
        "the quiet connection got something before its echo"
    );
    let options = options_of(&seen, "quiet");
    assert_eq!(options.ping_interval, None);
    assert_eq!(options.ping_timeout, Some(TIMEOUT));
    assert_eq!(options.max_message_size, MAX_MESSAGE);
    drop((quiet, plain));
    server.assert_released();
}

/// A client handler with no `options`: counts pongs, closes after two.
struct Pinger {
    pongs: Cell<usize>,
    options: Rc<RefCell<Option<WebSocketOptions>>>,
}

impl WebSocketHandler for Pinger {
    fn open(&self, ws: &WebSocket) {
        *self.options.borrow_mut() = Some(ws.options().clone());
    }
    fn on_message(&self, _ws: &WebSocket, _message: Message) {}
    fn on_pong(&self, ws: &WebSocket, _data: &[u8]) {
        self.pongs.set(self.pongs.get() + 1);
        if self.pongs.get() == 2 {
            ws.close(1000, "enough");
        }
    }
    fn on_close(&self, _ws: &WebSocket, _code: u16, _reason: &str) {
        IOLoop::current().stop();
    }
}

#[test]
fn a_client_handler_without_options_gets_its_connect_options() {
    let server = TestServer::echo_with(WebSocketOptions::default());
    let seen = Rc::new(RefCell::new(None));
    let connect = ConnectOptions {
        websocket: WebSocketOptions {
            ping_interval: Some(Duration::from_millis(20)),
            ping_timeout: Some(TIMEOUT),
            ..WebSocketOptions::default()
        },
        ..ConnectOptions::default()
    };
    let handler = Pinger {
        pongs: Cell::new(0),
        options: Rc::clone(&seen),
    };
    let (_ioloop, timed_out) =
        run_client_loop(|| websocket_connect(&server.url("/echo"), connect, handler).unwrap());
    IOLoop::clear_current();
    assert!(!timed_out, "the client never got two pongs");
    let options = seen.borrow().clone().expect("the client never opened");
    assert_eq!(options.ping_interval, Some(Duration::from_millis(20)));
    assert_eq!(options.ping_timeout, Some(TIMEOUT));
    // The server saw the client's pings (empty, as every keep-alive ping).
    let pings = server.events.wait_for("two pings from the client", |evs| {
        evs.iter().filter(|e| matches!(e, Ev::Ping(..))).count() >= 2
    });
    assert!(pings
        .iter()
        .all(|e| !matches!(e, Ev::Ping(_, d) if !d.is_empty())));
}
