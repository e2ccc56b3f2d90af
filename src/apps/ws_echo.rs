//! `/ws/echo`: a WebSocket echo endpoint, the first thing to try against
//! any WebSocket server (a browser console, `websocat`, Python's
//! `websockets`), and the shape of every WebSocket app in ten lines.
//!
//! Mirrors the echo handler Tornado uses for its Autobahn runs
//! (`maint/test/websocket/server.py`): text comes back as text, binary as
//! binary. The default limits apply: messages up to 1 MiB, 4 MiB of unsent
//! output per client, same-origin browsers only; pings as the site's
//! `--ws-ping-interval` says.
//!
//! ```text
//! $ python3 -c "from websockets.sync.client import connect
//! with connect('ws://127.0.0.1:8888/ws/echo') as ws: ws.send('hi'); print(ws.recv())"
//! hi
//! ```

use std::time::Duration;

use crate::websocket::{Message, WebSocket, WebSocketHandler, WebSocketOptions};

/// Echoes every message to its sender.
pub struct WsEcho {
    /// Keep-alive pings (`None`: none), so a vanished peer is dropped.
    pub ping_interval: Option<Duration>,
}

impl WebSocketHandler for WsEcho {
    fn options(&self) -> WebSocketOptions {
        WebSocketOptions {
            ping_interval: self.ping_interval,
            ..WebSocketOptions::default()
        }
    }

    fn on_message(&self, ws: &WebSocket, message: Message) {
        // A full write buffer closes the connection; nothing else to do.
        let _ = match message {
            Message::Text(text) => ws.write_message(&text),
            Message::Binary(data) => ws.write_binary(&data),
            _ => Ok(()),
        };
    }
}
