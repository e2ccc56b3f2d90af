//! A second independent peer: Python's `websockets` package
//! (tests/peers/*.py), as a client of squall's server and as a server for
//! squall's client. Missing Python or `websockets`: the tests fail under
//! `CI` (which installs them, see .ci/run) and are skipped elsewhere.

mod websocket_support;

use std::cell::Cell;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

use squall::ioloop::IOLoop;
use squall::websocket::{websocket_connect, ConnectOptions, Message, WebSocket, WebSocketHandler};

use websocket_support::{peer_script, python_peer, run_client_loop, Ev, Events, TestServer};

#[test]
fn python_websockets_client_against_squall_server() {
    if !python_peer("python_websockets_client_against_squall_server") {
        return;
    }
    let server = TestServer::echo();
    // The script bounds every step with its own 10 s timeouts.
    let output = Command::new("python3")
        .arg(peer_script("ws_client.py"))
        .arg(server.url("/echo"))
        .output()
        .expect("run python3");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "python client failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(
        lines,
        [
            "subprotocol chat",
            "echo 0",
            "echo 125",
            "echo 126",
            "echo 65535",
            "echo 65536",
            "echo 1048576",
            "fragmented",
            "pong",
            "closed 4000 ''",
        ]
    );
    let id = server.events.wait_open(1);
    assert_eq!(server.events.wait_close(id), (4000, "python bye".into()));
    assert!(server
        .events
        .all()
        .contains(&Ev::Text(id, "fragmented κόσμε".into())));
    server.events.assert_each_closed_once();
    server.assert_released();
}

/// Sends a script of messages one at a time, each after the previous echo.
struct Script {
    events: Events,
    script: Vec<Message>,
    next: Cell<usize>,
}

impl Script {
    fn send_next(&self, ws: &WebSocket) {
        let i = self.next.get();
        self.next.set(i + 1);
        let _ = match self.script.get(i) {
            Some(Message::Text(t)) => ws.write_message(t),
            Some(Message::Binary(b)) => ws.write_binary(b),
            Some(Message::Ping(p)) => ws.ping(p),
            _ => Ok(()),
        };
    }
}

impl WebSocketHandler for Script {
    fn open(&self, ws: &WebSocket) {
        self.events.push(Ev::Open(ws.id()));
        self.send_next(ws);
    }
    fn on_message(&self, ws: &WebSocket, message: Message) {
        self.events.push(match message {
            Message::Text(t) => Ev::Text(ws.id(), t),
            Message::Binary(b) => Ev::Binary(ws.id(), b),
            other => Ev::Text(ws.id(), format!("unexpected {other:?}")),
        });
        self.send_next(ws);
    }
    fn on_pong(&self, ws: &WebSocket, data: &[u8]) {
        self.events.push(Ev::Pong(ws.id(), data.to_vec()));
        self.send_next(ws);
    }
    fn on_close(&self, ws: &WebSocket, code: u16, reason: &str) {
        self.events.push(Ev::Close(ws.id(), code, reason.into()));
        IOLoop::current().stop();
    }
    fn on_connect_error(&self, error: &squall::websocket::ConnectError) {
        self.events.push(Ev::ConnectError(error.to_string()));
        IOLoop::current().stop();
    }
}

#[test]
fn squall_client_against_python_websockets_server() {
    if !python_peer("squall_client_against_python_websockets_server") {
        return;
    }
    let mut child = Command::new("python3")
        .arg(peer_script("ws_echo_server.py"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("run python3");
    let mut port = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut port)
        .unwrap();
    let url = format!("ws://127.0.0.1:{}/", port.trim());

    let sizes = [0usize, 125, 126, 65535, 65536, 1 << 20];
    let mut script = Vec::new();
    for size in sizes {
        script.push(Message::Text("κ".repeat(size / 2)));
        script.push(Message::Binary(vec![0xC3; size]));
    }
    script.push(Message::Ping(b"to python".to_vec()));
    script.push(Message::Text("close 4001 python server bye".into()));
    let events = Events::default();
    let handler = Script {
        events: events.clone(),
        script: script.clone(),
        next: Cell::new(0),
    };

    let (_ioloop, timed_out) =
        run_client_loop(|| websocket_connect(&url, ConnectOptions::default(), handler).unwrap());
    IOLoop::clear_current();
    drop(child.stdin.take()); // the server exits at EOF
    let _ = child.wait();
    assert!(!timed_out, "timed out; events: {:?}", events.all());

    let got = events.all();
    let echoed: Vec<Message> = got
        .iter()
        .filter_map(|e| match e {
            Ev::Text(_, t) => Some(Message::Text(t.clone())),
            Ev::Binary(_, b) => Some(Message::Binary(b.clone())),
            _ => None,
        })
        .collect();
    assert!(echoed == script[..sizes.len() * 2], "echoes differ");
    assert!(got
        .iter()
        .any(|e| matches!(e, Ev::Pong(_, d) if d == b"to python")));
    assert!(
        matches!(got.last(), Some(Ev::Close(_, 4001, r)) if r == "python server bye"),
        "{:?}",
        got.last()
    );
}
