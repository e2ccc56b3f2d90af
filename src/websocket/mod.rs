//! WebSocket (RFC 6455): the protocol core, sans-IO (bytes in, messages
//! out; messages in, bytes out: no sockets, no clock, no randomness), and
//! the connection layer that runs it on an [`IOStream`](crate::iostream).
//!
//! Mirrors Tornado's `websocket.py`: the protocol half
//! (`WebSocketProtocol13` and the handshake checks of
//! `WebSocketHandler.get`) is the codec below; the half that owns a stream
//! (reading, writing, timers for the closing handshake and pings) is
//! [`connection`], with [`handler`] (server side, on the web layer's
//! routes) and [`client`] (`websocket_connect`) on top. docs/websocket.md
//! walks through all of it.
//!
//! | module         | what it is                                            | RFC 6455   |
//! |----------------|-------------------------------------------------------|------------|
//! | [`handshake`]  | `Sec-WebSocket-Accept`, request and response checks   | §1.3, §4   |
//! | [`frame`]      | frame header parser, push decoder, encoder, masking   | §5.1-§5.3  |
//! | [`message`]    | [`MessageReader`]: frames → [`Message`]s, size limit  | §5.4-§5.6  |
//! | [`close`]      | close codes, Close body, [`ProtocolError`]            | §5.5.1, §7 |
//! | `utf8`         | incremental UTF-8 check for text spread over frames   | §8.1       |
//! | [`prepared`]   | [`PreparedMessage`]: a frame encoded once for a broadcast | §5.1, §5.6 |
//! | [`connection`] | [`WebSocket`]: frame loop, closing handshake, pings, write bound | §5.5, §7 |
//! | [`handler`]    | [`WebSocketHandler`] trait, [`WebSocketRoute`] (the upgrade) | §4.2 |
//! | [`client`]     | [`websocket_connect`]: URL, connect, client handshake | §3, §4.1   |
//!
//! `handler` is the one file that reaches up into the web layer (the route
//! is a `RequestHandler` and reads the `Ctx`), as Tornado's
//! `WebSocketHandler` subclasses `RequestHandler`; the codec, the
//! connection and the client do not depend on it.
//!
//! # Driving the codec from a connection (what [`connection`] does)
//!
//! 1. **Handshake.** On a request for a WebSocket URL call
//!    [`handshake::validate_request`]. On `Err(e)` answer `e.status` with
//!    `e.message` and `e.headers`. On `Ok(accepted)` check the origin
//!    ([`handshake::same_origin`], 403 if refused), pick a subprotocol from
//!    `accepted.subprotocols`, and write `101 Switching Protocols` with
//!    `accepted.response_headers(chosen)`. Every byte after the request's
//!    blank line belongs to the WebSocket.
//! 2. **Reading.** Keep one [`MessageReader`] per connection. Whenever bytes
//!    arrive, run `while let Some(m) = reader.read_message(&mut input)?`
//!    and dispatch each message; when it returns `Ok(None)` every byte has
//!    been taken, so the read buffer can be cleared.
//!    * `Text` / `Binary`: the application's `on_message`.
//!    * `Ping(data)`: send `Message::Pong(data)` (§5.5.2), then `on_ping`.
//!    * `Pong(data)`: `on_pong` (and the keep-alive timer, if any).
//!    * `Close(status)`: if we have not sent a Close yet, send one echoing
//!      the peer's code (`Message::Close(status)`, as Tornado does), then
//!      close the TCP connection (a server closes first, §7.1.1).
//! 3. **Failing.** On `Err(e)` from the reader, send
//!    `Message::Close(Some((e.code, e.reason.into())))` if possible and
//!    close the TCP connection (§7.1.7); don't read any more.
//! 4. **Writing.** [`Message::encode`] (or [`frame::encode_frame`] for
//!    fragments) appends a frame to the write buffer. A server passes
//!    `mask: None`; a client passes a fresh random 4-byte key per frame.
//!
//! ```
//! use squall::websocket::{Message, MessageReader, Role};
//!
//! // A client sent a masked "Hello" (RFC 6455 §5.7) and a masked ping.
//! let mut wire = Vec::new();
//! Message::Text("Hello".into()).encode(&mut wire, Some([0x37, 0xfa, 0x21, 0x3d]));
//! Message::Ping(b"are you there".to_vec()).encode(&mut wire, Some([1, 2, 3, 4]));
//!
//! let mut reader = MessageReader::new(Role::Server);
//! let mut out = Vec::new(); // what the server writes back
//! let mut input = &wire[..];
//! while let Some(message) = reader.read_message(&mut input).expect("valid frames") {
//!     match message {
//!         Message::Text(text) => Message::Text(text).encode(&mut out, None), // echo
//!         Message::Ping(data) => Message::Pong(data).encode(&mut out, None),
//!         other => println!("{other:?}"),
//!     }
//! }
//! assert_eq!(&out[..7], [0x81, 0x05, b'H', b'e', b'l', b'l', b'o']);
//! ```
//!
//! Not supported: extensions (permessage-deflate; RSV bits are refused) and
//! sending fragmented messages via [`Message`] (use [`frame::encode_frame`]).

pub mod client;
pub mod close;
pub mod connection;
pub mod frame;
pub mod handler;
pub mod handshake;
pub mod message;
pub mod prepared;
mod utf8;

pub use client::{websocket_connect, ConnectError, ConnectOptions};
pub use close::ProtocolError;
pub use connection::{
    live_connections, open_connections, ConnState, WebSocket, WebSocketClosedError,
    WebSocketOptions,
};
pub use frame::{OpCode, Role};
pub use handler::{RequestInfo, WebSocketHandler, WebSocketRoute};
pub use message::{Message, MessageReader, DEFAULT_MAX_MESSAGE_SIZE};
pub use prepared::PreparedMessage;
