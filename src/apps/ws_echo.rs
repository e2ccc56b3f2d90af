//! `/ws/echo`: a WebSocket echo endpoint, the first thing to try against
//! any WebSocket server (a browser console, `websocat`, Python's
//! `websockets`), and the shape of every WebSocket app in ten lines.
//!
//! Mirrors the echo handler Tornado uses for its Autobahn runs
//! (`maint/test/websocket/server.py`): text comes back as text, binary as
//! binary. The default limits apply: messages up to 1 MiB, 4 MiB of unsent
//! output per client, same-origin browsers only; pings as the
//! application's `websocket_ping_interval` says (the site's
//! `--ws-ping-interval`), which a handler inherits without a line of its
//! own.
//!
//! ```text
//! $ python3 -c "from websockets.sync.client import connect
//! with connect('ws://127.0.0.1:8888/ws/echo') as ws: ws.send('hi'); print(ws.recv())"
//! hi
//! ```

use crate::websocket::{Message, WebSocket, WebSocketHandler};

/// Echoes every message to its sender.
pub struct WsEcho;

impl WebSocketHandler for WsEcho {
    fn on_message(&self, ws: &WebSocket, message: Message) {
        // A full write buffer closes the connection; nothing else to do.
        let _ = match message {
            Message::Text(text) => ws.write_message(&text),
            Message::Binary(data) => ws.write_binary(&data),
            _ => Ok(()),
        };
    }
}
