//! One WebSocket connection on an [`IOStream`]: the frame loop, the closing
//! handshake, keep-alive pings and the write bound.
//!
//! Mirrors the I/O half of Tornado's `websocket.py`
//! (`WebSocketProtocol13`: `_receive_frame_loop`, `_write_frame`, `close`,
//! `_abort`, `periodic_ping`, `on_connection_close`). The protocol rules
//! themselves (frames, fragmentation, UTF-8, close codes) are the sans-IO
//! codec of the sibling modules; this file only moves bytes and keeps time.
//!
//! # The frame loop
//!
//! ```text
//!   IOStream ──read_bytes(64 KiB, partial)──▶ MessageReader ──▶ Text/Binary ──▶ on_message
//!      ▲        (try_read first: the sync                  ├──▶ Ping ──▶ write Pong, on_ping
//!      │         fast path, up to 16 rounds)               ├──▶ Pong ──▶ on_pong
//!      └─────────── read again ◀─────────────              ├──▶ Close ──▶ Event::PeerClose
//!                                                          └──▶ error ──▶ Event::LocalClose(1002/1007/1009)
//! ```
//!
//! A read is pending for as long as the stream is open, in every state:
//! that is how a peer that goes away is noticed, and the pending read's
//! callback is what keeps the connection alive (the loop holds streams only
//! weakly).
//!
//! # The closing handshake (RFC 6455 §5.5.1, §7)
//!
//! [`ConnState`] is the whole state; every change goes through one
//! `match` in `WebSocket::step` (smoltcp's style for TCP):
//!
//! | state     | event                                    | action                                                    | next      |
//! |-----------|------------------------------------------|-----------------------------------------------------------|-----------|
//! | `Open`    | `LocalClose` (app, protocol error, ping timeout) | send Close(code); FIN once it is flushed; arm close timer; discard incoming data | `Closing` |
//! | `Open`    | `PeerClose`                              | echo the peer's code; close TCP once flushed; arm close timer | `Closed`  |
//! | `Closing` | `PeerClose`                              | close TCP (nothing left to send)                          | `Closed`  |
//! | `Open`, `Closing` | `Abort` (write bound exceeded)   | close TCP now, dropping unsent bytes                      | `Closed`  |
//! | `Closing`, `Closed` | `CloseTimeout`                 | close TCP now                                             | `Closed`  |
//! | any       | `StreamClosed`                           | cancel timers, free the reader, fire `on_close` once      | `Closed`  |
//! | otherwise | —                                        | nothing (a second close is a no-op)                       | same      |
//!
//! `on_close` fires from the stream's close callback and from nowhere else,
//! so it fires exactly once, after the socket is gone, however the
//! connection ended. Its code is, in order: the code of the peer's Close
//! frame (1005 if it had none); else the code we closed with (ours, when the
//! peer never answered); else 1006 (the TCP connection simply ended).
//!
//! # Invariants
//!
//! * **No re-entrancy.** No `RefCell` of the connection is borrowed while
//!   application code runs (`on_message`, `open`, ...), so the application
//!   may call any method of any connection from any callback. `on_close`
//!   runs from a queued loop callback, never inside `close()`.
//! * **Bounded.** Reads come in chunks of at most 64 KiB; a message is at
//!   most `max_message_size` (the reader refuses more with 1009); unsent
//!   output, counted with its queue slots, is at most `max_write_buffer` —
//!   past it the connection is aborted (a peer that does not read cannot
//!   make us hold more).
//! * **Nothing after our Close.** Once we sent a Close frame no other frame
//!   is written, and data messages that still arrive are dropped.

use std::borrow::Cow;
use std::cell::{Cell, RefCell};
use std::fmt;
use std::hash::{Hash, Hasher};
use std::rc::{Rc, Weak};
use std::time::{Duration, Instant};

use super::close::{self, GOING_AWAY, INTERNAL_ERROR, NO_STATUS_RECEIVED, POLICY_VIOLATION};
use super::frame::{encode_frame, OpCode, Role, MAX_CONTROL_PAYLOAD};
use super::handler::{RequestInfo, WebSocketHandler};
use super::message::{Message, MessageReader, DEFAULT_MAX_MESSAGE_SIZE};
use super::prepared::PreparedMessage;
use crate::ioloop::{IOLoop, TimeoutHandle};
use crate::iostream::{IOStream, ReadTarget, QUEUED_CHUNK_COST};
use crate::web::Settings;

/// Default bound on unsent output per connection: 4 MiB, four times the
/// default largest message, so a client may fall a few messages behind but
/// no further. (Redis closes pub/sub clients past 32 MB at once, or past
/// 8 MB for 60 s; Tornado has no bound.)
pub const DEFAULT_MAX_WRITE_BUFFER: usize = 4 * 1024 * 1024;

/// Default time to wait for the peer's side of the closing handshake
/// (Tornado waits 5 s, then aborts).
pub const DEFAULT_CLOSE_TIMEOUT: Duration = Duration::from_secs(5);

/// Close code for "no Close frame at all" (RFC 6455 §7.4.1, 1006): only
/// ever reported to `on_close`, never sent.
pub const ABNORMAL_CLOSURE: u16 = close::ABNORMAL_CLOSURE;

/// Bytes asked of the stream per read.
const READ_CHUNK: usize = 64 * 1024;

/// Reads served synchronously from the stream in one go before yielding to
/// the loop, so a peer that floods us cannot starve the other connections.
const MAX_SYNC_READS: usize = 16;

/// Room above `max_write_buffer` for the stream's own cap: our bound is
/// checked first, and a Close frame (at most 131 bytes) must always fit.
const WRITE_BUFFER_SLACK: usize = 1024;

/// Per-connection limits and timers. A server connection starts from its
/// application's settings ([`WebSocketOptions::from_settings`]), a client
/// connection from [`ConnectOptions::websocket`](super::ConnectOptions);
/// the handler's [`WebSocketHandler::options`] sees them and returns what
/// the connection uses. The defaults suit a chat.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebSocketOptions {
    /// Largest message accepted, summed over its fragments; larger ones
    /// fail the connection with 1009. Default 1 MiB (Tornado: 10 MiB).
    pub max_message_size: usize,
    /// Send a Ping this often (`None`: never, Tornado's default).
    pub ping_interval: Option<Duration>,
    /// After a Ping, close (1001) if nothing at all arrived from the peer
    /// within this time. `None`: the ping interval.
    pub ping_timeout: Option<Duration>,
    /// Most unsent output the connection may hold: the bytes, plus
    /// [`QUEUED_CHUNK_COST`] for each frame queued on its own (a broadcast
    /// frame, or any frame of 2 KiB or more). A write that would go past it
    /// aborts the connection (`on_close` gets 1008). Must exceed the
    /// largest message the application sends.
    pub max_write_buffer: usize,
    /// How long to wait for the peer's part of the closing handshake before
    /// dropping the TCP connection.
    pub close_timeout: Duration,
}

impl Default for WebSocketOptions {
    fn default() -> Self {
        WebSocketOptions {
            max_message_size: DEFAULT_MAX_MESSAGE_SIZE,
            ping_interval: None,
            ping_timeout: None,
            max_write_buffer: DEFAULT_MAX_WRITE_BUFFER,
            close_timeout: DEFAULT_CLOSE_TIMEOUT,
        }
    }
}

impl WebSocketOptions {
    /// What an application's [`Settings`] give every WebSocket it serves:
    /// its `websocket_ping_interval`, `websocket_ping_timeout` and
    /// `websocket_max_message_size` (if set), the rest as [`Default`].
    /// This is what [`WebSocketHandler::options`] receives on the server
    /// side.
    pub fn from_settings(settings: &Settings) -> WebSocketOptions {
        WebSocketOptions {
            max_message_size: settings
                .websocket_max_message_size
                .unwrap_or(DEFAULT_MAX_MESSAGE_SIZE),
            ping_interval: settings.websocket_ping_interval,
            ping_timeout: settings.websocket_ping_timeout,
            ..WebSocketOptions::default()
        }
    }
}

/// A write was refused because the connection is closing or closed
/// (Tornado's `WebSocketClosedError`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WebSocketClosedError;

impl fmt::Display for WebSocketClosedError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "websocket is closed")
    }
}

impl std::error::Error for WebSocketClosedError {}

/// Where a connection is in its life (see the module's transition table).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConnState {
    /// Messages flow both ways.
    Open,
    /// We sent a Close frame and wait for the peer's (or for the TCP
    /// connection to end), at most `close_timeout`.
    Closing,
    /// No more frames either way; the TCP connection is closed or closing.
    Closed,
}

/// What can happen to a connection; input of `WebSocket::step`.
#[derive(Debug)]
enum Event<'a> {
    /// We close with this code: the application called `close`, the peer
    /// broke the protocol, or it stopped answering pings.
    LocalClose { code: u16, reason: Cow<'a, str> },
    /// The peer's Close frame arrived (its code and reason, if any).
    PeerClose(Option<(u16, String)>),
    /// Give up at once, without a closing handshake (write bound exceeded).
    Abort { code: u16, reason: &'static str },
    /// The closing handshake took longer than `close_timeout`.
    CloseTimeout,
    /// The IOStream closed, for whatever reason.
    StreamClosed,
}

/// What to do once our Close frame has been written.
#[derive(Clone, Copy)]
enum AfterClose {
    /// We spoke first: send FIN and keep reading for the peer's answer.
    HalfClose,
    /// We answered the peer: close the TCP connection (§7.1.1, the server
    /// closes first; squall's client does the same).
    Close,
}

thread_local! {
    /// Next connection id on this thread.
    static NEXT_ID: Cell<u64> = const { Cell::new(1) };
    /// Connections opened and not yet reported to `on_close`.
    static OPEN: Cell<usize> = const { Cell::new(0) };
    /// Connection objects not yet freed (a leak shows here).
    static LIVE: Cell<usize> = const { Cell::new(0) };
}

/// Connections on this thread's loop that are open or closing (opened, and
/// `on_close` not yet fired). For `/metrics` and leak tests.
pub fn open_connections() -> usize {
    OPEN.with(Cell::get)
}

/// Connection objects on this thread not yet freed: drops to zero once the
/// application has let go of every [`WebSocket`] handle of closed
/// connections.
pub fn live_connections() -> usize {
    LIVE.with(Cell::get)
}

/// The state of one connection, shared by every [`WebSocket`] handle.
struct WsInner {
    /// Unique on this thread; identity for `Eq`/`Hash`.
    id: u64,
    /// Server (we unmask what we read, never mask) or client (the reverse).
    role: Role,
    /// The socket. Kept after close: its buffers are freed by the close.
    stream: IOStream,
    /// The application's callbacks.
    handler: Rc<dyn WebSocketHandler>,
    /// Limits and timers, fixed at open.
    options: WebSocketOptions,
    /// The upgrade request (server side only), captured before the HTTP
    /// layer let go of it.
    info: Option<RequestInfo>,
    /// Subprotocol agreed in the handshake.
    subprotocol: Option<String>,
    /// See [`ConnState`]. Changed only by `step`.
    state: Cell<ConnState>,
    /// Frames → messages. Replaced by a fresh one at close to free a
    /// partial message at once.
    reader: RefCell<MessageReader>,
    /// The peer's Close frame, once received: `Some(None)` if it had no
    /// body (Tornado's `close_code` / `close_reason`).
    peer_close: RefCell<Option<Option<(u16, String)>>>,
    /// Why we closed, if we did first (the code of our Close frame, or the
    /// reason we aborted).
    local_close: RefCell<Option<(u16, String)>>,
    /// Closing-handshake deadline, while one runs.
    close_timer: Cell<Option<TimeoutHandle>>,
    /// Next keep-alive ping.
    ping_timer: Cell<Option<TimeoutHandle>>,
    /// Deadline for an answer to the outstanding ping.
    pong_timer: Cell<Option<TimeoutHandle>>,
    /// When the ping that armed `pong_timer` was sent.
    ping_sent: Cell<Option<Instant>>,
    /// When bytes last arrived from the peer (any bytes count as a sign of
    /// life, not only pongs).
    last_received: Cell<Instant>,
    /// `on_close` has run (it runs once).
    close_reported: Cell<bool>,
}

impl Drop for WsInner {
    fn drop(&mut self) {
        LIVE.with(|n| n.set(n.get().saturating_sub(1)));
    }
}

/// A handle on one WebSocket connection (Tornado's `WebSocketHandler`
/// instance, seen from the outside). Cheap to clone; every clone is the
/// same connection, and handles compare and hash by connection, so they can
/// be kept in a `HashSet` (a chat room's members).
#[derive(Clone)]
pub struct WebSocket {
    inner: Rc<WsInner>,
}

impl PartialEq for WebSocket {
    fn eq(&self, other: &Self) -> bool {
        self.inner.id == other.inner.id
    }
}

impl Eq for WebSocket {}

impl Hash for WebSocket {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.inner.id.hash(state);
    }
}

impl fmt::Debug for WebSocket {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "WebSocket(#{}, {:?}, {:?})",
            self.inner.id,
            self.inner.role,
            self.inner.state.get()
        )
    }
}

impl WebSocket {
    /// Take over `stream` after a successful opening handshake: call
    /// `handler.open`, then start the frame loop on the next iteration
    /// (bytes the peer sent right behind its handshake are still in the
    /// stream's buffer and are read first).
    pub(crate) fn start(
        stream: IOStream,
        role: Role,
        handler: Rc<dyn WebSocketHandler>,
        options: WebSocketOptions,
        info: Option<RequestInfo>,
        subprotocol: Option<String>,
    ) -> WebSocket {
        // Small messages leave at once: `TCP_NODELAY` is already on (set
        // by `TCPServer` at accept, by the client's `Attempt::connect`).
        stream.set_max_write_buffer_size(options.max_write_buffer + WRITE_BUFFER_SLACK);
        let id = NEXT_ID.with(|n| {
            let id = n.get();
            n.set(id + 1);
            id
        });
        let reader = MessageReader::new(role).with_max_message_size(options.max_message_size);
        let ws = WebSocket {
            inner: Rc::new(WsInner {
                id,
                role,
                stream,
                handler,
                options,
                info,
                subprotocol,
                state: Cell::new(ConnState::Open),
                reader: RefCell::new(reader),
                peer_close: RefCell::new(None),
                local_close: RefCell::new(None),
                close_timer: Cell::new(None),
                ping_timer: Cell::new(None),
                pong_timer: Cell::new(None),
                ping_sent: Cell::new(None),
                last_received: Cell::new(Instant::now()),
                close_reported: Cell::new(false),
            }),
        };
        OPEN.with(|n| n.set(n.get() + 1));
        LIVE.with(|n| n.set(n.get() + 1));
        // Strong on purpose: the stream holds the connection until it
        // closes, and the close callback is taken (breaking the cycle) when
        // it does. A read is pending while the stream is open, so it does
        // close when the peer goes away.
        let on_closed = ws.clone();
        ws.inner
            .stream
            .set_close_callback(move || on_closed.step(Event::StreamClosed));
        ws.arm_ping_timer();
        // Queued before `open` runs (so it still starts after it): even an
        // `open` that panics leaves a connection that reads, and so notices
        // when the peer goes.
        let reading = ws.clone();
        IOLoop::current().add_callback(move || read_loop(&reading));
        let handler = Rc::clone(&ws.inner.handler);
        handler.open(&ws);
        ws
    }

    // ----- writing ------------------------------------------------------

    /// Send a text message (Tornado's `write_message(str)`).
    pub fn write_message(&self, text: &str) -> Result<(), WebSocketClosedError> {
        self.send_frame(OpCode::Text, text.as_bytes())
    }

    /// Send a binary message (Tornado's `write_message(bytes, binary=True)`).
    pub fn write_binary(&self, data: &[u8]) -> Result<(), WebSocketClosedError> {
        self.send_frame(OpCode::Binary, data)
    }

    /// Send `value` as a JSON text message (Tornado's `write_message(dict)`).
    pub fn write_json(&self, value: &serde_json::Value) -> Result<(), WebSocketClosedError> {
        self.write_message(&value.to_string())
    }

    /// Send a message encoded once for many connections (a broadcast:
    /// build one [`PreparedMessage`] and call this on every member).
    ///
    /// A server connection copies the prepared frame into its stream
    /// without encoding (or serializing) anything again; a client
    /// connection masks a fresh copy, as every client frame must be. Same
    /// write bound, errors and timing as
    /// [`write_message`](Self::write_message): the frame leaves with this
    /// connection's other frames at the end of the loop iteration.
    pub fn write_prepared(&self, message: &PreparedMessage) -> Result<(), WebSocketClosedError> {
        if self.inner.state.get() != ConnState::Open {
            return Err(WebSocketClosedError);
        }
        match self.inner.role {
            // By reference: one broadcast frame is queued on every member
            // without a copy or a buffer of its own per member.
            Role::Server => {
                let frame = message.shared_frame();
                self.make_room(frame.len())?;
                self.inner
                    .stream
                    .write_shared(frame)
                    .map_err(|_| WebSocketClosedError)
            }
            Role::Client => self.send_frame(message.opcode(), message.payload()),
        }
    }

    /// Send a Ping with `data`; at most 125 bytes of it are sent (a control
    /// frame's limit). The answer arrives as [`WebSocketHandler::on_pong`].
    pub fn ping(&self, data: &[u8]) -> Result<(), WebSocketClosedError> {
        let data = &data[..data.len().min(MAX_CONTROL_PAYLOAD)];
        self.send_frame(OpCode::Ping, data)
    }

    /// Start the closing handshake with `code` and `reason` (Tornado's
    /// `close(code, reason)`); `on_close` follows once the peer answered or
    /// `close_timeout` passed. A code that may not be sent on the wire
    /// (RFC 6455 §7.4: e.g. 1005, 1006, 2000) is replaced by 1000; a reason
    /// longer than 123 bytes is cut. Does nothing if already closing.
    pub fn close(&self, code: u16, reason: &str) {
        let code = if close::is_valid_code(code) {
            code
        } else {
            log::warn!("websocket close: code {code} may not be sent; using 1000");
            close::NORMAL
        };
        self.step(Event::LocalClose {
            code,
            reason: Cow::Borrowed(reason),
        });
    }

    /// True once the connection is closing or closed: writes are refused.
    pub fn is_closed(&self) -> bool {
        self.inner.state.get() != ConnState::Open
    }

    /// Where the connection is in its life.
    pub fn state(&self) -> ConnState {
        self.inner.state.get()
    }

    /// The limits and timers this connection runs with: what
    /// [`WebSocketHandler::options`] returned as it opened.
    pub fn options(&self) -> &WebSocketOptions {
        &self.inner.options
    }

    /// Unsent bytes waiting for the peer to read them.
    pub fn buffered_amount(&self) -> usize {
        self.inner.stream.write_buffer_len()
    }

    // ----- what we know about the connection ----------------------------

    /// A number unique among this thread's connections.
    pub fn id(&self) -> u64 {
        self.inner.id
    }

    /// Which end of the connection we are.
    pub fn role(&self) -> Role {
        self.inner.role
    }

    /// The subprotocol agreed in the handshake, if any.
    pub fn subprotocol(&self) -> Option<&str> {
        self.inner.subprotocol.as_deref()
    }

    /// The upgrade request, as captured at handshake time (server side;
    /// `None` for a client connection).
    pub fn request(&self) -> Option<&RequestInfo> {
        self.inner.info.as_ref()
    }

    /// The logged-in user of the upgrade request (the signed `user` cookie,
    /// checked at handshake time).
    pub fn current_user(&self) -> Option<&str> {
        self.request()?.current_user.as_deref()
    }

    /// A query argument of the upgrade request (last value, trimmed), e.g.
    /// `room` in `/chatsocket?room=lobby`.
    pub fn get_query_argument(&self, name: &str) -> Option<String> {
        self.request()?.get_query_argument(name)
    }

    /// A cookie of the upgrade request.
    pub fn get_cookie(&self, name: &str) -> Option<&str> {
        self.request()?.get_cookie(name)
    }

    /// A capture of the route pattern (`/ws/{room}` → `"room"`).
    pub fn path_arg(&self, name: &str) -> Option<&str> {
        self.request()?.path_arg(name)
    }

    /// Code of the peer's Close frame (1005 if it had none), once received
    /// (Tornado's `close_code`).
    pub fn close_code(&self) -> Option<u16> {
        let peer = self.inner.peer_close.borrow();
        peer.as_ref()
            .map(|s| s.as_ref().map_or(NO_STATUS_RECEIVED, |(c, _)| *c))
    }

    /// Reason of the peer's Close frame, once received (Tornado's
    /// `close_reason`).
    pub fn close_reason(&self) -> Option<String> {
        let peer = self.inner.peer_close.borrow();
        peer.as_ref()
            .map(|s| s.as_ref().map_or(String::new(), |(_, r)| r.clone()))
    }

    // ----- internals ----------------------------------------------------

    /// Encode and queue one frame, enforcing the write bound.
    fn send_frame(&self, opcode: OpCode, payload: &[u8]) -> Result<(), WebSocketClosedError> {
        if self.inner.state.get() != ConnState::Open {
            return Err(WebSocketClosedError);
        }
        let Some(mask) = self.new_mask() else {
            return Err(WebSocketClosedError);
        };
        let mut frame = Vec::new();
        encode_frame(&mut frame, true, opcode, payload, mask);
        self.make_room(frame.len())?;
        self.inner
            .stream
            .write(frame)
            .map_err(|_| WebSocketClosedError)
    }

    /// The write bound, checked before queuing a frame of `len` bytes (the
    /// caller checked that the connection is `Open`): past it the peer is
    /// not reading, and the connection is aborted with 1008.
    ///
    /// What counts is the stream's footprint, the unsent bytes plus a slot
    /// per queued chunk, and the new frame is charged a slot too (it may
    /// get one). Counting bytes alone let a peer that does not read, in a
    /// room of small broadcast frames (each queued by reference in a slot
    /// of its own), cost several times the bound: 2-byte frames under a
    /// 16 KiB bound queued 8 192 slots.
    fn make_room(&self, len: usize) -> Result<(), WebSocketClosedError> {
        let held = self.inner.stream.write_buffer_footprint();
        if held + len + QUEUED_CHUNK_COST > self.inner.options.max_write_buffer {
            log::warn!(
                "websocket #{}: peer is not reading ({held} bytes held); closing it",
                self.inner.id
            );
            self.step(Event::Abort {
                code: POLICY_VIOLATION,
                reason: "write buffer full",
            });
            return Err(WebSocketClosedError);
        }
        Ok(())
    }

    /// The masking key for the next frame we send: none for a server, a
    /// fresh random one for a client ("The masking key is a 32-bit value
    /// chosen at random by the client", RFC 6455 §5.3). `None` (and the
    /// connection is closed with 1011) if the OS has no randomness for us.
    fn new_mask(&self) -> Option<Option<[u8; 4]>> {
        match self.inner.role {
            Role::Server => Some(None),
            Role::Client => {
                let mut key = [0u8; 4];
                match getrandom::fill(&mut key) {
                    Ok(()) => Some(Some(key)),
                    Err(e) => {
                        log::error!("websocket: no randomness for a masking key: {e}");
                        self.step(Event::Abort {
                            code: INTERNAL_ERROR,
                            reason: "no randomness for a masking key",
                        });
                        None
                    }
                }
            }
        }
    }

    /// Write our Close frame, then `after`. Not subject to the write bound
    /// (the stream's own cap leaves room for it).
    fn send_close_frame(&self, status: Option<(u16, &str)>, after: AfterClose) {
        let Some(mask) = self.new_mask() else { return };
        let body = close::payload(status.map(|(c, _)| c), status.map_or("", |(_, r)| r));
        let mut frame = Vec::new();
        encode_frame(&mut frame, true, OpCode::Close, &body, mask);
        let stream = &self.inner.stream;
        match after {
            AfterClose::HalfClose => {
                let weak = Rc::downgrade(&self.inner);
                let _ = stream.write_with_callback(frame, move || {
                    if let Some(inner) = weak.upgrade() {
                        inner.stream.shutdown_write();
                    }
                });
            }
            AfterClose::Close => {
                let _ = stream.write(frame);
                stream.close_when_flushed();
            }
        }
    }

    /// The one place the connection changes state (see the module docs).
    fn step(&self, event: Event<'_>) {
        let inner = &self.inner;
        let state = inner.state.get();
        let next = match (state, event) {
            (ConnState::Open, Event::LocalClose { code, reason }) => {
                *inner.local_close.borrow_mut() = Some((code, reason.to_string()));
                // Data that arrives before the peer's Close is never
                // delivered: stop keeping it. (The reader is borrowed only
                // inside `on_bytes`' read statement, never across a step;
                // if it ever were, messages would merely be assembled.)
                if let Ok(mut reader) = inner.reader.try_borrow_mut() {
                    reader.discard_data();
                }
                self.send_close_frame(Some((code, &reason)), AfterClose::HalfClose);
                self.arm_close_timer();
                ConnState::Closing
            }
            (ConnState::Open, Event::PeerClose(status)) => {
                // §5.5.1: "the endpoint typically echos the status code it
                // received", which is what Tornado does (code only).
                let echo = status.as_ref().map(|(code, _)| (*code, ""));
                self.send_close_frame(echo, AfterClose::Close);
                *inner.peer_close.borrow_mut() = Some(status);
                self.arm_close_timer();
                ConnState::Closed
            }
            (ConnState::Closing, Event::PeerClose(status)) => {
                *inner.peer_close.borrow_mut() = Some(status);
                inner.stream.close_when_flushed();
                ConnState::Closed
            }
            (ConnState::Open | ConnState::Closing, Event::Abort { code, reason }) => {
                inner
                    .local_close
                    .borrow_mut()
                    .get_or_insert_with(|| (code, reason.to_string()));
                inner.stream.close();
                ConnState::Closed
            }
            (ConnState::Closing | ConnState::Closed, Event::CloseTimeout) => {
                log::debug!("websocket #{}: closing handshake timed out", inner.id);
                inner.stream.close();
                ConnState::Closed
            }
            (_, Event::StreamClosed) => {
                inner.state.set(ConnState::Closed);
                self.release();
                self.report_close();
                ConnState::Closed
            }
            (ConnState::Closing | ConnState::Closed, Event::LocalClose { .. })
            | (ConnState::Closed, Event::PeerClose(_) | Event::Abort { .. })
            | (ConnState::Open, Event::CloseTimeout) => state,
        };
        inner.state.set(next);
    }

    /// The stream is gone: free timers and the partial message now.
    fn release(&self) {
        let inner = &self.inner;
        let ioloop = IOLoop::current();
        for timer in [&inner.close_timer, &inner.ping_timer, &inner.pong_timer] {
            if let Some(handle) = timer.take() {
                ioloop.remove_timeout(handle);
            }
        }
        // A new reader holds nothing; the old one may hold up to
        // max_message_size of a message that will never complete.
        *inner.reader.borrow_mut() = MessageReader::new(inner.role).with_max_message_size(0);
    }

    /// Fire `on_close` (once), with the code described in the module docs.
    fn report_close(&self) {
        let inner = &self.inner;
        if inner.close_reported.replace(true) {
            return;
        }
        OPEN.with(|n| n.set(n.get().saturating_sub(1)));
        let peer = inner.peer_close.borrow().clone();
        let (code, reason) = match peer {
            Some(Some((code, reason))) => (code, reason),
            Some(None) => (NO_STATUS_RECEIVED, String::new()),
            None => inner
                .local_close
                .borrow()
                .clone()
                .unwrap_or((ABNORMAL_CLOSURE, String::new())),
        };
        let handler = Rc::clone(&inner.handler);
        handler.on_close(self, code, &reason);
    }

    fn arm_close_timer(&self) {
        let weak = Rc::downgrade(&self.inner);
        let handle = IOLoop::current().call_later(self.inner.options.close_timeout, move || {
            if let Some(ws) = upgrade(&weak) {
                ws.inner.close_timer.set(None);
                ws.step(Event::CloseTimeout);
            }
        });
        if let Some(old) = self.inner.close_timer.replace(Some(handle)) {
            IOLoop::current().remove_timeout(old);
        }
    }

    // ----- keep-alive ---------------------------------------------------

    fn arm_ping_timer(&self) {
        let Some(interval) = self.inner.options.ping_interval else {
            return;
        };
        if interval.is_zero() {
            return;
        }
        let weak = Rc::downgrade(&self.inner);
        let handle = IOLoop::current().call_later(interval, move || {
            if let Some(ws) = upgrade(&weak) {
                ws.inner.ping_timer.set(None);
                ws.on_ping_timer();
            }
        });
        self.inner.ping_timer.set(Some(handle));
    }

    /// Time for a keep-alive ping (Tornado's `periodic_ping`).
    fn on_ping_timer(&self) {
        if self.inner.state.get() != ConnState::Open {
            return;
        }
        let now = Instant::now();
        if self.send_frame(OpCode::Ping, b"").is_err() {
            return;
        }
        // One deadline at a time: if the last ping is still unanswered, its
        // deadline (the earlier one) stands.
        if self.inner.pong_timer.get().is_none() {
            let timeout = self
                .inner
                .options
                .ping_timeout
                .or(self.inner.options.ping_interval)
                .unwrap_or(Duration::ZERO);
            self.inner.ping_sent.set(Some(now));
            let weak = Rc::downgrade(&self.inner);
            let handle = IOLoop::current().call_later(timeout, move || {
                if let Some(ws) = upgrade(&weak) {
                    ws.inner.pong_timer.set(None);
                    ws.on_pong_deadline();
                }
            });
            self.inner.pong_timer.set(Some(handle));
        }
        self.arm_ping_timer();
    }

    /// The answer to a ping is due: anything received since it was sent
    /// counts.
    fn on_pong_deadline(&self) {
        let Some(sent) = self.inner.ping_sent.take() else {
            return;
        };
        if self.inner.last_received.get() >= sent {
            return;
        }
        log::info!(
            "websocket #{}: no answer to ping within the timeout; closing",
            self.inner.id
        );
        self.step(Event::LocalClose {
            code: GOING_AWAY,
            reason: Cow::Borrowed("ping timeout"),
        });
    }

    // ----- reading ------------------------------------------------------

    /// Bytes arrived: run them through the reader and dispatch each message.
    fn on_bytes(&self, data: &[u8]) {
        self.inner.last_received.set(Instant::now());
        let mut input = data;
        loop {
            // The borrow ends with this statement: dispatch runs
            // application code, which may use this connection.
            let next = self.inner.reader.borrow_mut().read_message(&mut input);
            match next {
                Ok(Some(message)) => self.dispatch(message),
                Ok(None) => return,
                Err(error) => {
                    if self.inner.state.get() == ConnState::Open {
                        log::info!("websocket #{}: {error}", self.inner.id);
                    }
                    // §7.1.7: fail the connection, with the error's code.
                    self.step(Event::LocalClose {
                        code: error.code,
                        reason: error.reason,
                    });
                    return;
                }
            }
        }
    }

    /// One message from the reader.
    fn dispatch(&self, message: Message) {
        let open = self.inner.state.get() == ConnState::Open;
        let handler = Rc::clone(&self.inner.handler);
        match message {
            Message::Text(_) | Message::Binary(_) => {
                if open {
                    handler.on_message(self, message);
                }
            }
            Message::Ping(data) => {
                if open {
                    // §5.5.2: answer with the same application data.
                    let _ = self.send_frame(OpCode::Pong, &data);
                    handler.on_ping(self, &data);
                }
            }
            Message::Pong(data) => {
                if open {
                    handler.on_pong(self, &data);
                }
            }
            Message::Close(status) => self.step(Event::PeerClose(status)),
        }
    }
}

/// A handle from a weak reference, for timers (which must not keep a
/// connection alive).
fn upgrade(weak: &Weak<WsInner>) -> Option<WebSocket> {
    weak.upgrade().map(|inner| WebSocket { inner })
}

/// The read loop: serve what the stream has synchronously (a few rounds),
/// then wait for more with a callback. Runs until the stream closes.
fn read_loop(ws: &WebSocket) {
    const TARGET: ReadTarget = ReadTarget::Bytes {
        n: READ_CHUNK,
        partial: true,
    };
    for _ in 0..MAX_SYNC_READS {
        match ws.inner.stream.try_read(&TARGET) {
            Some(Ok(data)) => ws.on_bytes(&data),
            // Closed: the close callback reports it.
            Some(Err(_)) => return,
            None => break,
        }
    }
    let again = ws.clone();
    ws.inner.stream.start_read(
        TARGET,
        Box::new(move |result| {
            if let Ok(data) = result {
                again.on_bytes(&data);
                read_loop(&again);
            }
        }),
    );
}
