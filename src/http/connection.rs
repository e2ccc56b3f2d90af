//! One HTTP/1.1 server connection: a state machine over an [`IOStream`].
//!
//! Mirrors Tornado's `tornado/http1connection.py` (`HTTP1ServerConnection`
//! and the reading half of `HTTP1Connection`).
//!
//! # States and transitions
//!
//! ```text
//!            ┌──────────────── keep-alive, response finished ───────────────┐
//!            ▼                                                              │
//!      ReadingHead ──head, no body──────────────────────────▶ Responding ───┤
//!        │    │                                                  ▲          │
//!        │    └──head with body──▶ ReadingBody ──body complete───┘          │
//!        │                              │                                   │
//!        └──bad head / timeout / EOF────┴──bad body / timeout / EOF──▶ Closed ◀┘ not keep-alive
//! ```
//!
//! | state         | waiting for                  | timer                            |
//! |---------------|------------------------------|----------------------------------|
//! | `ReadingHead` | `read_until_empty_line`      | header timeout; idle timeout while nothing arrived |
//! | `ReadingBody` | `read_bytes` / chunk lines   | body timeout                     |
//! | `Responding`  | the application's `finish`   | none (long-polls may wait long)  |
//! | `Closed`      | nothing                      | none                             |
//!
//! # The pump
//!
//! [`pump`] drives the machine: it asks the state what to read next, tries
//! to get it from the stream's buffer *synchronously* ([`IOStream::try_read`],
//! the fast path), and only when the bytes are not there yet registers a read
//! callback that re-enters the pump (the slow path). So pipelined requests
//! already in the buffer are parsed and answered in one go, and their
//! responses leave in one `writev` at the end of the loop iteration, back to
//! back with the batches of the other connections ([`sends_at_once`]).
//!
//! Requests are strictly serial (as in Tornado): the next head is not parsed
//! until the current response is finished. The application is called from
//! the pump, which holds no borrow of the connection while it runs; a
//! `finish` from inside the application records the new state (and may send
//! the bytes, see [`sends_at_once`]) but runs no pump, and the pump continues
//! when the application returns. A `finish` that comes later
//! (long-poll) schedules the pump with `add_callback`.

use std::borrow::Cow;
use std::cell::{Cell, RefCell};
use std::net::IpAddr;
use std::rc::{Rc, Weak};
use std::time::{Duration, Instant};

use super::parse::{
    check_trailer_line, parse_chunk_size, parse_request_head, BodyFraming, RequestHead, TargetForm,
    Version, MAX_CHUNK_LINE,
};
use super::request::HTTPServerRequest;
use super::responder::{simple_response, HTTPResponder};
use super::server::{HTTPServerOptions, RequestCallback, ServerStats};
use crate::ioloop::{deadline_after, IOLoop, IterationClock, TimeoutHandle};
use crate::iostream::{IOStream, ReadHandler, ReadTarget, StreamError};

/// Where the connection is in its request/response cycle.
enum State {
    /// Waiting for a request head (idle keep-alive, or a head arriving).
    ReadingHead,
    /// Reading the body of `head`.
    ReadingBody {
        /// The head already parsed. Boxed so that `State` stays small: it
        /// is moved and rewritten on every request, with or without a body.
        head: Box<RequestHead>,
        /// Body bytes so far (de-chunked).
        body: Vec<u8>,
        /// What comes next in the body.
        step: BodyStep,
    },
    /// The request is with the application; its response is not finished.
    Responding,
    /// Closing or closed; nothing more is read.
    Closed,
}

/// Position inside a request body.
#[derive(Clone, Copy)]
enum BodyStep {
    /// `Content-Length` framing: this many bytes left.
    Fixed(u64),
    /// Chunked: next is a chunk-size line.
    ChunkSize,
    /// Chunked: this many data bytes, then CRLF.
    ChunkData(u64),
    /// Chunked: after the last chunk, trailer lines until an empty line;
    /// the bytes of trailer lines read so far (they count against the
    /// body limit, so their number is bounded too).
    Trailers(u64),
}

/// One connection. Shared (`Rc`) by the pending read callback, the
/// responder of the in-flight request, and timers (weakly).
pub(crate) struct Conn {
    /// The socket.
    pub(crate) stream: IOStream,
    /// Server settings (limits, timeouts).
    pub(crate) options: Rc<HTTPServerOptions>,
    /// The application.
    delegate: RequestCallback,
    /// Peer address (before any `xheaders` rewrite).
    remote_ip: Option<IpAddr>,
    /// The state machine.
    state: RefCell<State>,
    /// True while the application runs inside [`dispatch`]: a `finish` then
    /// must not schedule the pump, which continues by itself.
    in_dispatch: Cell<bool>,
    /// The pending header/body/idle timer, and when it will fire.
    timer: Cell<Option<(TimeoutHandle, Instant)>>,
    /// When this connection started waiting for the current request head
    /// (or, while reading a body, when the head arrived).
    waiting_since: Cell<Instant>,
    /// When the timer first saw part of the current head buffered.
    head_seen_at: Cell<Option<Instant>>,
    /// The pump is waiting for the peer to read the answers queued (see
    /// [`PIPELINE_WRITE_HIGH_WATER`]); the timer then applies the idle
    /// timeout, not the header timeout, to the requests still buffered.
    awaiting_drain: Cell<bool>,
    /// The application's `on_connection_close` for the in-flight request.
    close_callback: RefCell<Option<Box<dyn FnOnce()>>>,
    /// Server-wide counters.
    stats: Rc<ServerStats>,
}

impl Drop for Conn {
    fn drop(&mut self) {
        self.stats
            .open_connections
            .set(self.stats.open_connections.get() - 1);
        if let Some((t, _)) = self.timer.take() {
            IOLoop::current().remove_timeout(t);
        }
    }
}

/// Take over a newly accepted stream and start reading requests.
pub(crate) fn start(
    stream: IOStream,
    options: Rc<HTTPServerOptions>,
    delegate: RequestCallback,
    stats: Rc<ServerStats>,
) {
    stats.open_connections.set(stats.open_connections.get() + 1);
    let remote_ip = stream.peer_addr().map(|a| a.ip());
    let conn = Rc::new(Conn {
        stream,
        options,
        delegate,
        remote_ip,
        state: RefCell::new(State::ReadingHead),
        in_dispatch: Cell::new(false),
        timer: Cell::new(None),
        waiting_since: Cell::new(IterationClock::now()),
        head_seen_at: Cell::new(None),
        awaiting_drain: Cell::new(false),
        close_callback: RefCell::new(None),
        stats,
    });
    let weak = Rc::downgrade(&conn);
    conn.stream.set_close_callback(move || {
        if let Some(conn) = weak.upgrade() {
            on_stream_closed(&conn);
        }
    });
    pump(&conn);
}

/// Most pipelined requests of one connection that one turn of the pump
/// serves. With more already buffered, the pump then yields: it queues
/// itself with `add_callback`, so the events of other connections from
/// the same poll are handled before this one goes on. Without it, one
/// client pipelining a thousand costly requests held the loop for seconds.
/// Sixteen keeps a typical pipelined batch (and the benchmark's ×16) in one
/// turn and one `writev`.
const MAX_REQUESTS_PER_TURN: usize = 16;

/// Answers one connection may have waiting in its write buffer before the
/// pump stops parsing the pipelined requests behind them. Over this (after
/// a flush), the peer is not reading: the pump waits until it has taken
/// everything queued ([`IOStream::on_flushed`]) and only then parses the
/// next request. Tornado reads the next request only once the previous
/// answer is written; this allows a pipelined batch's answers to gather
/// first. Without a mark, a client that sends requests and never reads
/// made the server buffer up to the write cap (100 MiB) per connection.
const PIPELINE_WRITE_HIGH_WATER: usize = 64 * 1024;

/// Drive the state machine as far as buffered bytes allow (see module docs).
fn pump(conn: &Rc<Conn>) {
    // Request heads taken in this turn (see MAX_REQUESTS_PER_TURN).
    let mut heads = 0;
    loop {
        let target = match &*conn.state.borrow() {
            State::ReadingHead => ReadTarget::UntilEmptyLine {
                max_bytes: Some(conn.options.max_header_size),
            },
            State::ReadingBody { step, .. } => body_target(*step, conn.options.max_header_size),
            State::Responding | State::Closed => return,
        };
        let next_head = matches!(target, ReadTarget::UntilEmptyLine { .. });
        if next_head && heads > 0 && yields_before_next_request(conn, heads) {
            return;
        }
        match conn.stream.try_read(&target) {
            Some(result) => {
                heads += usize::from(next_head);
                if !on_read(conn, result) {
                    return;
                }
            }
            None => {
                arm_wait_timer(conn);
                // The pending read holds the connection (an `Rc` clone, no
                // allocation) until bytes come or the stream closes.
                conn.stream
                    .start_read_with(target, Rc::clone(conn) as Rc<dyn ReadHandler>);
                return;
            }
        }
    }
}

/// Between two requests of one pump turn: whether this connection lets the
/// others go first. If so, the pump has been set to resume (on the next
/// iteration, or once the peer read what is queued) and must return.
fn yields_before_next_request(conn: &Rc<Conn>, heads: usize) -> bool {
    if conn.stream.write_buffer_len() >= PIPELINE_WRITE_HIGH_WATER {
        conn.stream.flush_now();
        if conn.stream.write_buffer_len() >= PIPELINE_WRITE_HIGH_WATER {
            // The idle timeout runs meanwhile: a peer that never reads is
            // let go like an idle one.
            conn.awaiting_drain.set(true);
            arm_wait_timer(conn);
            let again = Rc::clone(conn);
            conn.stream.on_flushed(move || {
                again.awaiting_drain.set(false);
                pump(&again);
            });
            return true;
        }
    }
    if heads >= MAX_REQUESTS_PER_TURN && conn.stream.buffered_len() > 0 {
        // The answers so far leave now, not after the others' turn.
        conn.stream.flush_now();
        let again = Rc::clone(conn);
        IOLoop::current().add_callback(move || pump(&again));
        return true;
    }
    false
}

impl ReadHandler for Conn {
    /// The slow path of [`pump`]: the bytes it waited for arrived.
    fn on_read(self: Rc<Self>, result: Result<Vec<u8>, StreamError>) {
        if on_read(&self, result) {
            pump(&self);
        }
    }
}

/// What to read for the next piece of a body. A trailer line is a field
/// line, so it may be as long as a header line (`max_header_size`); a
/// chunk-size line is short (`MAX_CHUNK_LINE`).
fn body_target(step: BodyStep, max_header_size: usize) -> ReadTarget {
    match step {
        BodyStep::Fixed(n) => ReadTarget::Bytes {
            n: usize::try_from(n).unwrap_or(usize::MAX),
            partial: false,
        },
        BodyStep::ChunkSize => ReadTarget::Until {
            delimiter: Cow::Borrowed(b"\r\n"),
            max_bytes: Some(MAX_CHUNK_LINE),
        },
        BodyStep::Trailers(_) => ReadTarget::Until {
            delimiter: Cow::Borrowed(b"\r\n"),
            max_bytes: Some(max_header_size),
        },
        BodyStep::ChunkData(n) => ReadTarget::Bytes {
            n: usize::try_from(n.saturating_add(2)).unwrap_or(usize::MAX),
            partial: false,
        },
    }
}

/// Handle one completed read. Returns true if the pump should go on.
fn on_read(conn: &Rc<Conn>, result: Result<Vec<u8>, StreamError>) -> bool {
    let data = match result {
        Ok(data) => data,
        Err(err) => {
            let (reading_head, reading_trailers) = match &*conn.state.borrow() {
                State::ReadingHead => (true, false),
                State::ReadingBody { step, .. } => (false, matches!(step, BodyStep::Trailers(_))),
                _ => (false, false),
            };
            match err {
                StreamError::Unsatisfiable { .. } | StreamError::BufferFull { .. }
                    if reading_head =>
                {
                    reject(conn, 431, "request head too large");
                }
                StreamError::Unsatisfiable { .. } if reading_trailers => {
                    reject(conn, 431, "trailer line too large");
                }
                StreamError::Unsatisfiable { .. } => reject(conn, 400, "chunk size line too long"),
                StreamError::BufferFull { .. } => reject(conn, 413, "request body too large"),
                // The peer sent nothing more (EOF): the answers already
                // queued (a pipelined batch before a half-close) still go.
                StreamError::Closed => {
                    *conn.state.borrow_mut() = State::Closed;
                    conn.stream.close_when_flushed();
                }
                _ => close(conn),
            }
            return false;
        }
    };
    let state = std::mem::replace(&mut *conn.state.borrow_mut(), State::Closed);
    match state {
        State::ReadingHead => on_head(conn, data),
        State::ReadingBody { head, body, step } => on_body(conn, head, body, step, data),
        State::Responding | State::Closed => false,
    }
}

/// A complete header block arrived.
fn on_head(conn: &Rc<Conn>, block: Vec<u8>) -> bool {
    conn.head_seen_at.set(None);
    // RFC 9112 §2.2: empty lines before a request-line are ignored. The
    // parser strips them from the front of a head, but a block that is
    // nothing but empty lines ("\r\n\r\n" or "\n\n": the read stopped at
    // them) has no head yet: keep reading.
    if block.iter().all(|&b| b == b'\r' || b == b'\n') {
        *conn.state.borrow_mut() = State::ReadingHead;
        return true;
    }
    let head = match parse_request_head(block, conn.options.max_body_size) {
        Ok(head) => head,
        Err(e) => {
            log::info!(
                "malformed HTTP request from {:?}: {}",
                conn.remote_ip,
                e.reason
            );
            reject(conn, e.status, &e.reason);
            return false;
        }
    };
    let step = match head.body {
        BodyFraming::None => return dispatch(conn, head, Vec::new()),
        BodyFraming::Length(n) => BodyStep::Fixed(n),
        BodyFraming::Chunked => BodyStep::ChunkSize,
    };
    // RFC 9110 §10.1.1: a server that receives 100-continue "ought to" send
    // an immediate 100 (Continue) response before reading the body.
    if head.expect_continue && head.version == Version::Http11 {
        let _ = conn.stream.write(&b"HTTP/1.1 100 Continue\r\n\r\n"[..]);
    }
    let capacity = match step {
        BodyStep::Fixed(n) => usize::try_from(n).unwrap_or(0),
        _ => 0,
    };
    *conn.state.borrow_mut() = State::ReadingBody {
        head: Box::new(head),
        body: Vec::with_capacity(capacity),
        step,
    };
    // The body timeout counts from here.
    conn.waiting_since.set(IterationClock::now());
    true
}

/// A piece of body arrived.
fn on_body(
    conn: &Rc<Conn>,
    head: Box<RequestHead>,
    mut body: Vec<u8>,
    step: BodyStep,
    data: Vec<u8>,
) -> bool {
    let next = match step {
        BodyStep::Fixed(_) => {
            if body.is_empty() {
                body = data;
            } else {
                body.extend_from_slice(&data);
            }
            return dispatch(conn, *head, body);
        }
        BodyStep::ChunkSize => match parse_chunk_size(&data) {
            Err(e) => {
                reject(conn, e.status, &e.reason);
                return false;
            }
            Ok(0) => BodyStep::Trailers(0),
            Ok(n) => {
                if (body.len() as u64).saturating_add(n) > conn.options.max_body_size {
                    reject(conn, 413, "request body too large");
                    return false;
                }
                BodyStep::ChunkData(n)
            }
        },
        BodyStep::ChunkData(_) => {
            // The read asked for exactly size + 2 bytes: data, then CRLF.
            let Some(chunk) = data.strip_suffix(b"\r\n") else {
                reject(conn, 400, "chunk data not followed by CRLF");
                return false;
            };
            body.extend_from_slice(chunk);
            BodyStep::ChunkSize
        }
        BodyStep::Trailers(seen) => {
            if data == b"\r\n" {
                return dispatch(conn, *head, body);
            }
            // Trailer fields are checked like header lines, then dropped
            // (RFC 9110 §6.5.1 lets a recipient discard them); they count
            // against the body limit.
            if let Err(e) = check_trailer_line(&data) {
                reject(conn, e.status, &e.reason);
                return false;
            }
            let seen = seen.saturating_add(data.len() as u64);
            if (body.len() as u64).saturating_add(seen) > conn.options.max_body_size {
                reject(conn, 413, "request body too large");
                return false;
            }
            BodyStep::Trailers(seen)
        }
    };
    *conn.state.borrow_mut() = State::ReadingBody {
        head,
        body,
        step: next,
    };
    true
}

/// Hand a complete request to the application. Returns true if the
/// response finished during the call and the pump may read the next one.
fn dispatch(conn: &Rc<Conn>, head: RequestHead, body: Vec<u8>) -> bool {
    let remote_ip = if conn.options.xheaders {
        forwarded_ip(&head.headers).or(conn.remote_ip)
    } else {
        conn.remote_ip
    };
    let keep_alive = head.keep_alive && !conn.options.no_keep_alive;
    let asterisk = head.form == TargetForm::Asterisk;
    let request = HTTPServerRequest::from_head(head, body, remote_ip, IterationClock::now());
    let mut responder = HTTPResponder::new(Rc::clone(conn), &request, keep_alive);
    *conn.state.borrow_mut() = State::Responding;
    conn.stats.requests.set(conn.stats.requests.get() + 1);
    conn.in_dispatch.set(true);
    if asterisk {
        // `OPTIONS *` (the only method parse lets use "*") asks about the
        // server as a whole, "only useful as a "ping" or "no-op" type of
        // method" (RFC 9110 §9.3.7): answered here, 200 with
        // `Content-Length: 0` (which §9.3.7 requires when there is no
        // content) and no `Allow`, which is about one resource. So an
        // application only ever sees paths that start with "/".
        drop(request);
        responder.write_headers(200, &crate::httputil::HTTPHeaders::new(), b"", true);
    } else {
        (conn.delegate)(request, responder);
    }
    conn.in_dispatch.set(false);
    matches!(&*conn.state.borrow(), State::ReadingHead)
}

/// `X-Real-Ip`, else the last `X-Forwarded-For` hop (Tornado's `xheaders`).
fn forwarded_ip(headers: &crate::httputil::HTTPHeaders) -> Option<IpAddr> {
    let raw = headers.get("X-Real-Ip").or_else(|| {
        headers
            .get("X-Forwarded-For")
            .and_then(|v| v.rsplit(',').next())
    })?;
    raw.trim().parse().ok()
}

/// Whether a finished response should be sent now rather than at the end
/// of the loop iteration.
///
/// | the response                                   | leaves                  |
/// |------------------------------------------------|-------------------------|
/// | finished outside the pump (a long-poll woken)  | now                     |
/// | more requests of this connection are buffered  | with the rest of its batch |
/// | the last of a pipelined batch (answers queued) | at the end of the iteration |
/// | the only one (nothing queued, nothing buffered)| now                     |
///
/// A lone response goes at once: nothing would join it, and holding every
/// answer of a poll batch until all are built (1000 busy connections)
/// leaves the client idle while the server computes, so the two cores
/// take turns instead of working at once. A response finished later (a
/// long-poll woken by a message) goes at once too: in a fan-out to
/// thousands, the first answers leave while the others are still built.
///
/// A pipelined batch is different. Its answers are already coalesced, and
/// the client, which sent many requests per write, is waiting for whole
/// batches. Each write to a peer that sleeps in `epoll_wait` wakes it, and
/// on loopback the waking is charged to the writer: with a write per
/// connection the moment its batch is done, 14 % of squall's CPU went to
/// waking the client again and again (`perf`: `sock_def_readable` →
/// `_raw_spin_unlock_irqrestore`). Writing the batches of one pass back to
/// back at the end of the iteration (Redis's `beforeSleep` writes replies
/// the same way) wakes it far less often: 2.5 %. Pipelined ×16, that is
/// 12 % less server CPU per request at 50 connections and 5 % at 1 000
/// (`benches/ab.sh`, cheaper in every round; `docs/benchmarks.md`).
///
/// Asked by the responder once, before it queues the response's head: the
/// write buffer then holds only the answers queued before this one.
pub(crate) fn sends_at_once(conn: &Conn) -> bool {
    !conn.in_dispatch.get()
        || (conn.stream.buffered_len() == 0 && conn.stream.write_buffer_len() == 0)
}

/// The responder finished the response. Called by [`HTTPResponder`], with
/// what [`sends_at_once`] said when the head was queued; a response
/// finished later, outside the pump, leaves at once whatever it said.
pub(crate) fn response_finished(conn: &Rc<Conn>, keep_alive: bool, leaves_at_once: bool) {
    let cb = conn.close_callback.borrow_mut().take();
    drop(cb);
    if leaves_at_once || !conn.in_dispatch.get() {
        conn.stream.flush_now();
    }
    if keep_alive && !conn.stream.closed() {
        *conn.state.borrow_mut() = State::ReadingHead;
        conn.waiting_since.set(IterationClock::now());
        if !conn.in_dispatch.get() {
            let again = Rc::clone(conn);
            IOLoop::current().add_callback(move || pump(&again));
        }
    } else {
        *conn.state.borrow_mut() = State::Closed;
        conn.stream.close_when_flushed();
    }
}

/// The application took the stream over (WebSocket): HTTP stops here.
pub(crate) fn detach(conn: &Rc<Conn>) {
    cancel_timer(conn);
    *conn.state.borrow_mut() = State::Closed;
    conn.stream.clear_close_callback();
    let cb = conn.close_callback.borrow_mut().take();
    drop(cb);
}

/// Store the application's on-connection-close callback for this request.
pub(crate) fn set_close_callback(conn: &Conn, callback: Box<dyn FnOnce()>) {
    *conn.close_callback.borrow_mut() = Some(callback);
}

/// Answer an unparseable or over-limit request and close.
fn reject(conn: &Rc<Conn>, status: u16, reason: &str) {
    *conn.state.borrow_mut() = State::Closed;
    if !conn.stream.closed() {
        let _ = conn.stream.write(simple_response(status, reason));
    }
    conn.stream.close_when_flushed();
}

/// Close at once (peer gone or socket error).
fn close(conn: &Rc<Conn>) {
    *conn.state.borrow_mut() = State::Closed;
    conn.stream.close();
}

/// The stream closed (either side): stop timers, tell the application.
fn on_stream_closed(conn: &Rc<Conn>) {
    cancel_timer(conn);
    *conn.state.borrow_mut() = State::Closed;
    let cb = conn.close_callback.borrow_mut().take();
    if let Some(cb) = cb {
        cb();
    }
}

fn cancel_timer(conn: &Conn) {
    if let Some((t, _)) = conn.timer.take() {
        IOLoop::current().remove_timeout(t);
    }
}

/// We are about to wait for bytes: make sure the connection's timer runs.
///
/// One timer per connection serves the idle keep-alive, header (slowloris)
/// and body timeouts. It is armed when the connection first has to wait and
/// is *not* cancelled when bytes arrive: when it fires it looks at the state
/// and the timestamps and either acts or re-arms for the time left. So a
/// busy keep-alive connection costs no timer operations per request — only
/// one wake-up per timeout period.
///
/// | state at firing          | rule                                                   |
/// |--------------------------|--------------------------------------------------------|
/// | `ReadingHead`, waiting for the peer to read its answers | idle: close after `idle_connection_timeout` |
/// | `ReadingHead`, nothing buffered | idle: close after `idle_connection_timeout`     |
/// | `ReadingHead`, part of a head   | 408 once `header_timeout` passed since a firing first saw it |
/// | `ReadingBody`            | 408 once `body_timeout` passed since the head arrived    |
/// | `Responding`, `Closed`   | the application has the request: the timer lapses       |
///
/// A timer already armed is kept unless the new state needs an earlier
/// deadline (a body timeout shorter than the header timeout): then it is
/// replaced.
fn arm_wait_timer(conn: &Rc<Conn>) {
    let delay = match &*conn.state.borrow() {
        State::ReadingHead => conn.options.header_timeout,
        State::ReadingBody { .. } => conn.options.body_timeout,
        _ => return,
    };
    if let Some((handle, fires_at)) = conn.timer.get() {
        if fires_at <= deadline_after(IterationClock::now(), delay) {
            return;
        }
        IOLoop::current().remove_timeout(handle);
        conn.timer.set(None);
    }
    arm_timer(conn, delay);
}

fn arm_timer(conn: &Rc<Conn>, delay: Duration) {
    let weak: Weak<Conn> = Rc::downgrade(conn);
    let handle = IOLoop::current().call_later(delay, move || {
        if let Some(conn) = weak.upgrade() {
            conn.timer.set(None);
            on_wait_timer(&conn);
        }
    });
    conn.timer
        .set(Some((handle, deadline_after(IterationClock::now(), delay))));
}

/// The connection's timer fired (see [`arm_wait_timer`]).
fn on_wait_timer(conn: &Rc<Conn>) {
    let now = IterationClock::now();
    let opts = &conn.options;
    let reading_head = match &*conn.state.borrow() {
        State::ReadingHead => true,
        State::ReadingBody { .. } => false,
        State::Responding | State::Closed => return,
    };
    let (since, limit, what) = if !reading_head {
        (conn.waiting_since.get(), opts.body_timeout, "request body")
    } else if conn.awaiting_drain.get() {
        let idle = now.saturating_duration_since(conn.waiting_since.get());
        if idle >= opts.idle_connection_timeout {
            log::info!("closing {:?}: it reads none of its answers", conn.remote_ip);
            close(conn);
        } else {
            arm_timer(conn, opts.idle_connection_timeout - idle);
        }
        return;
    } else if conn.stream.buffered_len() == 0 {
        conn.head_seen_at.set(None);
        let idle = now.saturating_duration_since(conn.waiting_since.get());
        if idle >= opts.idle_connection_timeout {
            log::debug!("closing idle connection from {:?}", conn.remote_ip);
            close(conn);
        } else {
            arm_timer(
                conn,
                (opts.idle_connection_timeout - idle).min(opts.header_timeout),
            );
        }
        return;
    } else {
        // Part of a head is here. We cannot know when it arrived, so count
        // from the first firing that sees it: an honest client always gets a
        // full `header_timeout`, a slowloris at most twice that.
        let seen = match conn.head_seen_at.get() {
            Some(t) => t,
            None => {
                conn.head_seen_at.set(Some(now));
                now
            }
        };
        (seen, opts.header_timeout, "request head")
    };
    let elapsed = now.saturating_duration_since(since);
    if elapsed >= limit {
        log::info!("closing {:?}: {what} not received in time", conn.remote_ip);
        reject(conn, 408, &format!("{what} not received in time"));
    } else {
        arm_timer(conn, limit - elapsed);
    }
}
