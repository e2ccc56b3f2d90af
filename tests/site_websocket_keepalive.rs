//! The `squall` binary's WebSockets keep themselves alive: the chat, the
//! cart's socket and `/ws/echo` ping every `--ws-ping-interval`, close a
//! peer that stays silent as long again (1001), and keep one that answers.
//!
//! A vanished peer (no FIN, no RST) looks exactly like a silent one, which
//! is what the raw client here plays: it reads and never answers. The
//! interval is half a second so the test waits for events (the ping, the
//! close frame, the end of the stream), each within the guard, not for a
//! clock.

mod chat_support;
mod websocket_support;

use std::net::TcpStream;

use chat_support::{Client, Server};
use tungstenite::Message;
use websocket_support::{close_body, masked, Frame, RawClient, GUARD};

/// Opcodes read here.
const TEXT: u8 = 0x1;
const CLOSE: u8 = 0x8;
const PING: u8 = 0x9;

/// The next frame that is not a text message (the cart pushes its count at
/// open, the chat its join notice and history).
fn next_control(client: &mut RawClient) -> Frame {
    loop {
        let frame = client.recv_frame();
        if frame.opcode() != TEXT {
            return frame;
        }
    }
}

/// Open `path` as a raw client; `cookie` for the chat's login.
fn open_raw(server: &Server, path: &str, cookie: Option<&str>) -> RawClient {
    let extra = cookie.map_or(String::new(), |c| format!("Cookie: {c}\r\n"));
    let request = RawClient::upgrade_request(server.addr, path, &extra);
    let (mut client, head) = RawClient::request(server.addr, request.as_bytes());
    assert!(head.starts_with("HTTP/1.1 101 "), "{path}: {head}");
    client.response = head;
    client
}

/// A logged-in chat user's cookie header value.
fn chat_cookie(server: &Server) -> String {
    let c: Client = Client::user(server, "keeper");
    let pairs: Vec<String> = c.cookies.iter().map(|(k, v)| format!("{k}={v}")).collect();
    pairs.join("; ")
}

#[test]
fn a_silent_peer_is_pinged_then_closed_with_1001_on_every_site_socket() {
    let server = Server::start(&["--ws-ping-interval", "0.5"]);
    let cookie = chat_cookie(&server);
    // All three open first, so their timers run side by side.
    let mut sockets = [
        ("/ws/echo", open_raw(&server, "/ws/echo", None)),
        ("/cart/socket", open_raw(&server, "/cart/socket", None)),
        (
            "/chatsocket",
            open_raw(&server, "/chatsocket?room=keepalive", Some(&cookie)),
        ),
    ];
    for (path, client) in &mut sockets {
        let ping = next_control(client);
        assert_eq!(ping.opcode(), PING, "{path}: expected a ping, got {ping:?}");
        // Not answered: the next thing is the server's close.
        let close = next_control(client);
        assert_eq!(
            close.opcode(),
            CLOSE,
            "{path}: expected Close, got {close:?}"
        );
        assert_eq!(close.close_code(), Some(1001), "{path}: {close:?}");
        // Finish the closing handshake; the server then ends the stream.
        client.send(&masked(0x88, &close_body(1001, b"")));
        client.expect_eof();
    }
    server.wait_metric("squall_websocket_connections", 0.0);
    server.wait_metric("squall_cart_subscribers", 0.0);
}

#[test]
fn a_longer_ping_timeout_lets_a_silent_peer_stay_through_several_pings() {
    // With the timeout left at the interval, the frame after the first
    // unanswered ping is the server's Close (the test above). With 60 s, a
    // peer that says nothing is still pinged, not closed.
    let server = Server::start(&["--ws-ping-interval", "0.2", "--ws-ping-timeout", "60"]);
    let mut client = open_raw(&server, "/ws/echo", None);
    for n in 0..5 {
        let frame = next_control(&mut client);
        assert_eq!(
            frame.opcode(),
            PING,
            "frame {n}: expected a ping, got {frame:?}"
        );
    }
    client.send(&masked(0x88, &close_body(1000, b"")));
    let close = next_control(&mut client);
    assert_eq!(close.opcode(), CLOSE, "{close:?}");
    client.expect_eof();
    server.wait_metric("squall_websocket_connections", 0.0);
}

#[test]
fn a_peer_that_answers_pings_stays_open() {
    let server = Server::start(&["--ws-ping-interval", "0.5"]);
    let url = format!("ws://{}/ws/echo", server.addr);
    let stream = TcpStream::connect(server.addr).expect("connect");
    stream.set_read_timeout(Some(GUARD)).expect("timeout");
    let (mut ws, _) = tungstenite::client(url, stream).expect("handshake");
    // tungstenite answers each ping with a pong on its next read. Three
    // pings span more than one interval plus the ping timeout, the time a
    // silent peer is given, so the pongs are what kept the socket open.
    let mut pings = 0;
    while pings < 3 {
        match ws.read().expect("read (closed or timed out?)") {
            Message::Ping(_) => pings += 1,
            other => panic!("expected a ping, got {other:?}"),
        }
    }
    ws.send(Message::text("still here")).expect("send");
    loop {
        match ws.read().expect("read the echo") {
            Message::Text(t) => {
                assert_eq!(t.as_str(), "still here");
                break;
            }
            Message::Ping(_) => continue,
            other => panic!("expected the echo, got {other:?}"),
        }
    }
    ws.close(None).expect("close");
}
