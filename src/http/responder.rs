//! Writing one response: status line, headers, body framing, access log.
//!
//! Mirrors the writing half of Tornado's `tornado/http1connection.py`
//! (`write_headers`, `write`, `finish`). The framing rules (RFC 9112 §6):
//!
//! | case                                             | framing                         |
//! |--------------------------------------------------|---------------------------------|
//! | response finished in one call                    | `Content-Length` = body length   |
//! | app set `Content-Length` itself                  | that length, enforced            |
//! | streamed, HTTP/1.1                               | `Transfer-Encoding: chunked`     |
//! | streamed, HTTP/1.0                               | until close (no keep-alive)     |
//! | `HEAD`, 1xx, 204, 304                            | headers only, never a body       |

use std::cell::RefCell;
use std::io::Write as _;
use std::net::IpAddr;
use std::rc::Rc;
use std::time::{Instant, SystemTime};

use super::connection::{self, Conn};
use super::parse::Version;
use super::request::HTTPServerRequest;
use crate::httputil::HTTPHeaders;
use crate::iostream::IOStream;

/// The `Server` header squall sends unless the application sets one.
pub const SERVER_HEADER: &str = concat!("squall/", env!("CARGO_PKG_VERSION"));

/// Bodies up to this size are built behind the head (in the stream's write
/// buffer, or in the scratch buffer for a response sent at once), so head
/// and body reach the stream in one copy; larger ones are queued on their
/// own.
const SMALL_BODY_BYTES: usize = 2048;

/// A scratch buffer grown past this (a huge header block) is freed after
/// use rather than kept for the thread's lifetime.
const MAX_SCRATCH_BYTES: usize = 64 * 1024;

/// Log target of the access log: a line per response, at info below 400,
/// warn for 4xx, error for 5xx (`RUST_LOG=info,squall::access=warn` keeps
/// only the errors).
pub const ACCESS_LOG_TARGET: &str = "squall::access";

/// One piece of response body, framed (see [`HTTPResponder::frame_body`]).
enum BodyPiece<'c> {
    /// Nothing goes on the wire (no body allowed, or empty).
    Nothing,
    /// The bytes as they are (Content-Length or until-close framing).
    Raw(&'c [u8]),
    /// One chunk of `Transfer-Encoding: chunked`: size line, data, CRLF.
    Chunk(&'c [u8]),
}

impl BodyPiece<'_> {
    /// Append the piece's wire bytes to `out`.
    fn encode(&self, out: &mut Vec<u8>) {
        match *self {
            BodyPiece::Nothing => {}
            BodyPiece::Raw(bytes) => out.extend_from_slice(bytes),
            BodyPiece::Chunk(bytes) => {
                // RFC 9112 §7.1: chunk-size is hex, then CRLF, data, CRLF.
                let _ = write!(out, "{:x}\r\n", bytes.len());
                out.extend_from_slice(bytes);
                out.extend_from_slice(b"\r\n");
            }
        }
    }
}

/// Where a response is.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Progress {
    /// Nothing written yet.
    NotStarted,
    /// Headers sent; body streaming with this framing.
    Streaming(Framing),
    /// Complete.
    Finished,
}

/// How the body of a streamed response is delimited.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Framing {
    /// No body may be sent (HEAD, 1xx, 204, 304).
    NoBody,
    /// `Content-Length`: this many bytes still owed.
    Length(u64),
    /// Chunked transfer coding.
    Chunked,
    /// Until the connection closes (HTTP/1.0 without a length).
    UntilClose,
}

/// The request's part of its access-log line: Tornado's `_request_summary`
/// without the address, `GET /path?query`, copied when the request arrives
/// (the response may outlive its request). Kept only while the access log
/// writes some status: every status at `info`, only 4xx and 5xx at `warn`
/// (as Tornado's `tornado.access` at WARNING).
struct AccessLogLine {
    /// Method and request-target, as sent.
    request_line: RequestLine,
    /// The client's address; `None` is written `()`.
    remote_ip: Option<IpAddr>,
    /// The log takes `info` lines (statuses below 400). Read once here, so
    /// that a line the log skips costs no second look at the filter.
    info_on: bool,
}

impl AccessLogLine {
    /// The line's request part, if the access log takes any line now.
    fn new(request: &HTTPServerRequest) -> Option<AccessLogLine> {
        let info_on = log::log_enabled!(target: ACCESS_LOG_TARGET, log::Level::Info);
        if !info_on && !log::log_enabled!(target: ACCESS_LOG_TARGET, log::Level::Warn) {
            return None;
        }
        Some(AccessLogLine {
            request_line: RequestLine::new(request),
            remote_ip: request.remote_ip,
            info_on,
        })
    }
}

/// Request lines up to this long (method, space, target) are kept inside
/// the responder, longer ones on the heap. 46 bytes, the tag and the
/// length make [`RequestLine`] 48 bytes, three times a `Box<str>`.
const INLINE_REQUEST_LINE: usize = 46;

/// `GET /path?query`, copied. At `warn` nearly every one is copied and
/// never written, so the copy must be cheap. Copied to the heap, the line
/// cost about 320 instructions per pipelined request at `warn`
/// (callgrind); in place, about 180, 4 % of the request.
enum RequestLine {
    /// The first `len` bytes of `bytes`.
    Inline {
        len: u8,
        bytes: [u8; INLINE_REQUEST_LINE],
    },
    /// A line too long for `Inline`.
    Heap(Box<str>),
}

impl RequestLine {
    /// The request's method and target with a space between.
    fn new(request: &HTTPServerRequest) -> RequestLine {
        let line = request.method_and_target();
        if line.len() > INLINE_REQUEST_LINE {
            return RequestLine::Heap(line.into());
        }
        let mut bytes = [0u8; INLINE_REQUEST_LINE];
        bytes[..line.len()].copy_from_slice(line.as_bytes());
        RequestLine::Inline {
            len: line.len() as u8,
            bytes,
        }
    }

    /// The line as text.
    fn as_str(&self) -> &str {
        match self {
            // Two `&str`s and a space: valid UTF-8.
            RequestLine::Inline { len, bytes } => {
                std::str::from_utf8(&bytes[..usize::from(*len)]).unwrap_or("?")
            }
            RequestLine::Heap(line) => line,
        }
    }
}

/// Append `ip` as text. IPv4 is written by hand: `Ipv4Addr`'s `Display`
/// costs about a thousand instructions, a fifth of a whole pipelined
/// request (callgrind). IPv6 goes through `Display`.
fn push_ip(out: &mut String, ip: IpAddr) {
    match ip {
        IpAddr::V4(v4) => {
            for (i, octet) in v4.octets().into_iter().enumerate() {
                if i > 0 {
                    out.push('.');
                }
                if octet >= 100 {
                    out.push(char::from(b'0' + octet / 100));
                }
                if octet >= 10 {
                    out.push(char::from(b'0' + octet / 10 % 10));
                }
                out.push(char::from(b'0' + octet % 10));
            }
        }
        IpAddr::V6(v6) => {
            use std::fmt::Write;
            let _ = write!(out, "{v6}");
        }
    }
}

/// Writes the response to one request. The application gets it with the
/// request, may keep it as long as it likes (a long-poll keeps it until a
/// message arrives), and must end with [`finish`](Self::finish).
///
/// Dropping it unfinished is answered for you: `500` if nothing was sent
/// yet, else the connection is closed (the client sees a truncated
/// response, never a hang), and an error is logged.
pub struct HTTPResponder {
    /// The connection (shared with its state machine).
    conn: Rc<Conn>,
    /// The request's HTTP version: the status line echoes it.
    version: Version,
    /// HEAD request: never send a body.
    head_request: bool,
    /// Keep the connection after this response.
    keep_alive: bool,
    /// Where the response is.
    progress: Progress,
    /// Status sent, for the access log.
    status: u16,
    /// When the request arrived, for the access log.
    start_time: Instant,
    /// Present only if the access log takes some status (see
    /// [`AccessLogLine`]).
    log_line: Option<AccessLogLine>,
    /// Whether the response leaves as soon as it is finished rather than
    /// with its pipelined batch: [`connection::sends_at_once`], asked
    /// once, when the head is queued (after that, the response's own bytes
    /// would be mistaken for a batch queued before it).
    leaves_at_once: bool,
}

impl HTTPResponder {
    pub(crate) fn new(
        conn: Rc<Conn>,
        request: &HTTPServerRequest,
        keep_alive: bool,
    ) -> HTTPResponder {
        let log_line = AccessLogLine::new(request);
        HTTPResponder {
            conn,
            version: request.version,
            head_request: request.method() == "HEAD",
            keep_alive,
            progress: Progress::NotStarted,
            status: 0,
            start_time: request.start_time,
            log_line,
            leaves_at_once: true,
        }
    }

    /// Send the status line, `headers`, and a first body `chunk`. With
    /// `finishing` the response is complete (the usual case: the whole body
    /// is known, so `Content-Length` is used); otherwise more may follow via
    /// [`write`](Self::write).
    ///
    /// Header names must be tokens and values must not contain CR, LF or NUL
    /// (header injection); a bad header turns the response into a 500.
    pub fn write_headers(
        &mut self,
        status: u16,
        headers: &HTTPHeaders,
        chunk: &[u8],
        finishing: bool,
    ) {
        self.write_headers_typed(status, headers, None, chunk, finishing);
    }

    /// [`write_headers`](Self::write_headers), plus `Content-Type:
    /// implied_type` when given, which is not in `headers`: the web layer's
    /// implied type (Tornado's default `text/html`, or JSON), sent without
    /// building a header map for it. The caller guarantees `headers` has
    /// no `Content-Type` of its own then.
    pub(crate) fn write_headers_typed(
        &mut self,
        status: u16,
        headers: &HTTPHeaders,
        implied_type: Option<&'static str>,
        chunk: &[u8],
        finishing: bool,
    ) {
        debug_assert!(implied_type.is_none() || !headers.contains("Content-Type"));
        if self.progress != Progress::NotStarted {
            log::error!("write_headers called twice for one response");
            return;
        }
        // One pass over the application's headers: validate each, note the
        // Content-Length it set, if any, and which headers the responder
        // would otherwise add or drop (so `build_head` need not look again).
        let mut content_length = None;
        let mut seen = HeadFlags {
            implied_type,
            ..HeadFlags::default()
        };
        for (name, value) in headers.iter() {
            if !crate::httputil::is_token(name)
                || !crate::httputil::is_field_value(value.as_bytes())
            {
                log::error!("refusing response header {name:?}: invalid name or value");
                let body = b"500: Internal Server Error\n";
                self.write_headers(500, &HTTPHeaders::new(), body, true);
                return;
            }
            match Special::of(name) {
                Special::Server => seen.server = true,
                Special::Date => seen.date = true,
                Special::ContentLength => {
                    seen.length = true;
                    if content_length.is_none() {
                        content_length = Some(value);
                    }
                }
                Special::Framing => seen.framing = true,
                Special::Upgrade => seen.upgrade = true,
                Special::Other => {}
            }
        }
        self.status = status;
        let body_allowed =
            !(self.head_request || (100..200).contains(&status) || status == 204 || status == 304);
        let framing = if !body_allowed {
            Framing::NoBody
        } else if let Some(cl) = content_length {
            match cl.trim().parse::<u64>() {
                Ok(n) => Framing::Length(n),
                Err(_) => {
                    log::error!("invalid Content-Length {cl:?} set by the application");
                    self.write_headers(
                        500,
                        &HTTPHeaders::new(),
                        b"500: Internal Server Error\n",
                        true,
                    );
                    return;
                }
            }
        } else if finishing {
            Framing::Length(chunk.len() as u64)
        } else if self.version == Version::Http11 {
            Framing::Chunked
        } else {
            self.keep_alive = false;
            Framing::UntilClose
        };

        if self.conn.stream.closed() {
            self.keep_alive = false;
        }
        self.leaves_at_once = connection::sends_at_once(&self.conn);
        self.progress = Progress::Streaming(framing);
        let small_body = chunk.len() <= SMALL_BODY_BYTES;
        let (piece, cut_short) = if small_body {
            self.frame_body(chunk)
        } else {
            (BodyPiece::Nothing, false)
        };
        let this = &*self;
        let fill = |out: &mut Vec<u8>| {
            this.build_head(out, status, headers, seen, framing, chunk, finishing);
            piece.encode(out);
        };
        if finishing && small_body && self.leaves_at_once {
            // A whole response that leaves at once (see
            // `connection::sends_at_once`) is built in a per-thread scratch
            // buffer and goes from there straight to the socket: no copy
            // into the write buffer, no allocation.
            thread_local! {
                static SCRATCH: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
            }
            SCRATCH.with(|scratch| {
                let mut out = scratch.borrow_mut();
                out.clear();
                fill(&mut out);
                let _ = self.conn.stream.write_now(&out);
                out.clear();
                if out.capacity() > MAX_SCRATCH_BYTES {
                    *out = Vec::new();
                }
            });
        } else {
            // Otherwise (pipelined responses, streaming) it is built in
            // place at the tail of the stream's write buffer, behind the
            // responses queued before it.
            let _ = self.conn.stream.write_with(fill);
        }
        if cut_short {
            // After the bytes are queued, so that they still go out.
            self.conn.stream.close_when_flushed();
        }
        if !small_body {
            // Queued as its own chunk, not copied through the scratch.
            self.write(chunk);
        }
        if finishing {
            self.finish();
        }
    }

    /// The status line and header block of a response. `seen` says which
    /// headers the application set among those the responder adds or drops.
    #[allow(clippy::too_many_arguments)] // one call site, all plain values
    fn build_head(
        &self,
        out: &mut Vec<u8>,
        status: u16,
        headers: &HTTPHeaders,
        seen: HeadFlags,
        framing: Framing,
        chunk: &[u8],
        finishing: bool,
    ) {
        // The common case, `HTTP/1.1 200 OK` with our Server and Date, is
        // two copies of prepared bytes; anything else is built piece by
        // piece.
        if status == 200 && self.version == Version::Http11 {
            out.extend_from_slice(b"HTTP/1.1 200 OK\r\n");
        } else {
            out.extend_from_slice(self.version.as_str().as_bytes());
            out.push(b' ');
            push_decimal(out, u64::from(status));
            out.push(b' ');
            out.extend_from_slice(reason_phrase(status).as_bytes());
            out.extend_from_slice(b"\r\n");
        }
        match (seen.server, seen.date) {
            (false, false) => with_server_and_date(|block| out.extend_from_slice(block)),
            (false, true) => push_header(out, "Server", SERVER_HEADER),
            (true, false) => with_http_date(|date| push_header(out, "Date", date)),
            (true, true) => {}
        }
        for (name, value) in headers.iter() {
            // Framing and persistence are the connection's business.
            if seen.framing && matches!(Special::of(name), Special::Framing) {
                continue;
            }
            push_header(out, name, value);
        }
        if let Some(content_type) = seen.implied_type {
            push_header(out, "Content-Type", content_type);
        }
        let has_length = seen.length;
        match framing {
            Framing::Length(n) if !has_length => push_length(out, n),
            Framing::NoBody if self.head_request && !has_length && finishing => {
                // HEAD: the length the GET would have had.
                push_length(out, chunk.len() as u64);
            }
            Framing::Chunked => push_header(out, "Transfer-Encoding", "chunked"),
            _ => {}
        }
        // RFC 9110 §7.8: "When Upgrade is sent, the sender MUST also send a
        // Connection header field (Section 7.6.1) that contains an
        // "upgrade" connection option, in order to prevent Upgrade from
        // being accidentally forwarded by intermediaries that might not
        // implement the listed protocols." (A 426 names the protocol to
        // upgrade to that way.) The option joins what persistence needs.
        match (self.version, self.keep_alive, seen.upgrade) {
            (Version::Http11, false, false) => push_header(out, "Connection", "close"),
            (Version::Http11, false, true) => push_header(out, "Connection", "close, Upgrade"),
            (Version::Http11, true, true) => push_header(out, "Connection", "Upgrade"),
            (Version::Http10, true, false) => push_header(out, "Connection", "keep-alive"),
            (Version::Http10, true, true) => {
                push_header(out, "Connection", "keep-alive, Upgrade");
            }
            (Version::Http10, false, true) => push_header(out, "Connection", "Upgrade"),
            (Version::Http11, true, false) | (Version::Http10, false, false) => {}
        }
        out.extend_from_slice(b"\r\n");
    }

    /// Send more body (after [`write_headers`](Self::write_headers) with
    /// `finishing = false`).
    pub fn write(&mut self, chunk: &[u8]) {
        if chunk.is_empty() {
            return;
        }
        if !matches!(self.progress, Progress::Streaming(_)) {
            log::error!("HTTPResponder::write before write_headers or after finish");
            return;
        }
        let (piece, cut_short) = self.frame_body(chunk);
        if !matches!(piece, BodyPiece::Nothing) {
            // Its own chunk of the write buffer: a big body is not copied
            // into the tail of what is queued.
            let mut out = Vec::with_capacity(chunk.len() + 16);
            piece.encode(&mut out);
            let _ = self.conn.stream.write(out);
        }
        if cut_short {
            self.conn.stream.close_when_flushed();
        }
    }

    /// How `chunk` goes on the wire under the response's framing, with what
    /// is owed updated. A chunk longer than the Content-Length still owed is
    /// cut to it and the connection stops being kept alive; the `true` then
    /// returned tells the caller to close the stream once the cut piece is
    /// queued (closing first would lose it).
    fn frame_body<'c>(&mut self, chunk: &'c [u8]) -> (BodyPiece<'c>, bool) {
        let Progress::Streaming(framing) = self.progress else {
            return (BodyPiece::Nothing, false);
        };
        if chunk.is_empty() {
            return (BodyPiece::Nothing, false);
        }
        match framing {
            Framing::NoBody => (BodyPiece::Nothing, false),
            Framing::UntilClose => (BodyPiece::Raw(chunk), false),
            Framing::Chunked => (BodyPiece::Chunk(chunk), false),
            Framing::Length(owed) => {
                let n = chunk.len() as u64;
                if n > owed {
                    log::error!(
                        "response body longer than its Content-Length; closing the connection"
                    );
                    self.keep_alive = false;
                    self.progress = Progress::Streaming(Framing::Length(0));
                    let kept = &chunk[..usize::try_from(owed).unwrap_or(0)];
                    return (BodyPiece::Raw(kept), true);
                }
                self.progress = Progress::Streaming(Framing::Length(owed - n));
                (BodyPiece::Raw(chunk), false)
            }
        }
    }

    /// Complete the response. The connection then reads the next request
    /// (keep-alive) or closes once the response is sent.
    pub fn finish(&mut self) {
        match self.progress {
            Progress::Finished => {
                log::error!("finish called twice");
                return;
            }
            Progress::NotStarted => {
                self.write_headers(200, &HTTPHeaders::new(), b"", true);
                return;
            }
            Progress::Streaming(Framing::Chunked) => {
                let _ = self.conn.stream.write_bytes(b"0\r\n\r\n");
            }
            Progress::Streaming(Framing::Length(owed)) if owed > 0 => {
                log::error!("response finished {owed} bytes short of its Content-Length; closing");
                self.keep_alive = false;
            }
            Progress::Streaming(Framing::UntilClose) => self.keep_alive = false,
            Progress::Streaming(_) => {}
        }
        self.progress = Progress::Finished;
        self.log_access();
        connection::response_finished(&self.conn, self.keep_alive, self.leaves_at_once);
    }

    /// True once [`finish`](Self::finish) ran.
    pub fn finished(&self) -> bool {
        self.progress == Progress::Finished
    }

    /// True once headers were sent.
    pub fn headers_written(&self) -> bool {
        self.progress != Progress::NotStarted
    }

    /// The status sent (0 before `write_headers`).
    pub fn status(&self) -> u16 {
        self.status
    }

    /// True if the client has gone away.
    pub fn connection_closed(&self) -> bool {
        self.conn.stream.closed()
    }

    /// Run `callback` if the client disconnects before the response is
    /// finished (Tornado's `on_connection_close`). Replaces an earlier one;
    /// dropped uncalled when the response finishes.
    pub fn set_close_callback(&self, callback: impl FnOnce() + 'static) {
        if self.conn.stream.closed() {
            crate::ioloop::IOLoop::current().add_callback(callback);
        } else {
            connection::set_close_callback(&self.conn, Box::new(callback));
        }
    }

    /// Leave HTTP: the caller takes over the raw stream (after writing, e.g.,
    /// a `101 Switching Protocols`). Bytes the client already sent stay in
    /// the stream's buffer.
    pub fn detach(mut self) -> IOStream {
        self.progress = Progress::Finished;
        self.log_access();
        connection::detach(&self.conn);
        self.conn.stream.clone()
    }

    /// Write raw bytes to the connection (for protocol upgrades).
    pub fn write_raw(&mut self, bytes: Vec<u8>) {
        self.status = self.status.max(101);
        let _ = self.conn.stream.write(bytes);
    }

    /// Tornado's `log_request`: `200 GET /hello (127.0.0.1) 0.28ms`, at
    /// info below 400, warn for 4xx, error for 5xx.
    fn log_access(&self) {
        let Some(line) = &self.log_line else { return };
        let level = match self.status {
            0..=399 if !line.info_on => return,
            0..=399 => log::Level::Info,
            400..=499 => log::Level::Warn,
            _ => log::Level::Error,
        };
        // Hundredths of a millisecond, rounded: Tornado's `%.2fms`.
        let micros = u64::try_from(self.start_time.elapsed().as_micros()).unwrap_or(u64::MAX);
        let centis = micros.saturating_add(5) / 10;
        // Built by hand: `core::fmt` spent about a thousand instructions on
        // the line's three numbers (callgrind), a fifth of a whole
        // pipelined request. "255.255.255.255" is 15 bytes; an IPv6
        // address may grow the line once.
        let request_line = line.request_line.as_str();
        let mut message = String::with_capacity(request_line.len() + 40);
        push_decimal_text(&mut message, u64::from(self.status));
        message.push(' ');
        message.push_str(request_line);
        message.push_str(" (");
        if let Some(ip) = line.remote_ip {
            push_ip(&mut message, ip);
        }
        message.push_str(") ");
        push_decimal_text(&mut message, centis / 100);
        message.push('.');
        push_decimal_text(&mut message, centis / 10 % 10);
        push_decimal_text(&mut message, centis % 10);
        message.push_str("ms");
        log::log!(target: ACCESS_LOG_TARGET, level, "{message}");
    }
}

impl Drop for HTTPResponder {
    fn drop(&mut self) {
        match self.progress {
            Progress::Finished => {}
            Progress::NotStarted => {
                if !self.conn.stream.closed() {
                    log::error!("response dropped without finish; answering 500");
                }
                let mut headers = HTTPHeaders::new();
                headers.add("Content-Type", "text/plain; charset=utf-8");
                self.write_headers(500, &headers, b"500: Internal Server Error\n", true);
            }
            Progress::Streaming(_) => {
                log::error!("streamed response dropped without finish; closing the connection");
                self.keep_alive = false;
                self.progress = Progress::Finished;
                self.conn.stream.close_when_flushed();
                connection::response_finished(&self.conn, false, self.leaves_at_once);
            }
        }
    }
}

/// Append `n` in decimal (no allocation: this runs for every response).
fn push_decimal(out: &mut Vec<u8>, n: u64) {
    // Status codes and small bodies: up to three digits without the loop.
    if n < 1000 {
        let (hundreds, tens, ones) = ((n / 100) as u8, (n / 10 % 10) as u8, (n % 10) as u8);
        if n >= 100 {
            out.push(b'0' + hundreds);
        }
        if n >= 10 {
            out.push(b'0' + tens);
        }
        out.push(b'0' + ones);
        return;
    }
    let (digits, start) = decimal_digits(n);
    out.extend_from_slice(&digits[start..]);
}

/// [`push_decimal`] onto text.
fn push_decimal_text(out: &mut String, n: u64) {
    let (digits, start) = decimal_digits(n);
    for &digit in &digits[start..] {
        out.push(char::from(digit));
    }
}

/// The decimal digits of `n`, at the end of a buffer: `(buffer, where
/// they start)`.
fn decimal_digits(mut n: u64) -> ([u8; 20], usize) {
    let mut digits = [0u8; 20];
    let mut start = digits.len();
    loop {
        start -= 1;
        digits[start] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            return (digits, start);
        }
    }
}

/// Which of the headers the responder has a say in the application set
/// (see [`Special`]), gathered while the headers are validated.
#[derive(Clone, Copy, Default)]
struct HeadFlags {
    /// `Server` set: ours is not added.
    server: bool,
    /// `Date` set: ours is not added.
    date: bool,
    /// `Content-Length` set: the computed one is not added.
    length: bool,
    /// `Connection` or `Transfer-Encoding` set: they must be filtered out.
    framing: bool,
    /// `Upgrade` set: `Connection` must carry the `upgrade` option.
    upgrade: bool,
    /// A `Content-Type` to send that is not among the headers (see
    /// [`HTTPResponder::write_headers_typed`]).
    implied_type: Option<&'static str>,
}

/// Response headers the responder itself has a say in.
enum Special {
    /// `Server`: ours is added unless the application set one.
    Server,
    /// `Date`: ours is added unless the application set one.
    Date,
    /// `Content-Length`: the application's wins over the computed one.
    ContentLength,
    /// `Connection`, `Transfer-Encoding`: dropped, the connection decides.
    Framing,
    /// `Upgrade`: sent as set, and the responder's `Connection` gets the
    /// `upgrade` option.
    Upgrade,
    /// Everything else: sent as set.
    Other,
}

impl Special {
    /// Classify a header name (case-insensitively), comparing at most one
    /// candidate: the one with the same length.
    fn of(name: &str) -> Special {
        let is = |candidate: &str| name.eq_ignore_ascii_case(candidate);
        match name.len() {
            4 if is("Date") => Special::Date,
            6 if is("Server") => Special::Server,
            7 if is("Upgrade") => Special::Upgrade,
            10 if is("Connection") => Special::Framing,
            14 if is("Content-Length") => Special::ContentLength,
            17 if is("Transfer-Encoding") => Special::Framing,
            _ => Special::Other,
        }
    }
}

/// `Content-Length: n` without formatting machinery.
fn push_length(out: &mut Vec<u8>, n: u64) {
    out.extend_from_slice(b"Content-Length: ");
    push_decimal(out, n);
    out.extend_from_slice(b"\r\n");
}

fn push_header(out: &mut Vec<u8>, name: &str, value: &str) {
    out.extend_from_slice(name.as_bytes());
    out.extend_from_slice(b": ");
    out.extend_from_slice(value.as_bytes());
    out.extend_from_slice(b"\r\n");
}

/// A complete `Connection: close` response for errors found before any
/// application code ran (bad request, limits, timeouts).
pub(crate) fn simple_response(status: u16, detail: &str) -> Vec<u8> {
    let body = format!("{status} {}: {detail}\n", reason_phrase(status));
    let mut out = Vec::with_capacity(160 + body.len());
    out.extend_from_slice(format!("HTTP/1.1 {status} {}\r\n", reason_phrase(status)).as_bytes());
    push_header(&mut out, "Server", SERVER_HEADER);
    with_http_date(|date| push_header(&mut out, "Date", date));
    push_header(&mut out, "Content-Type", "text/plain; charset=utf-8");
    push_header(&mut out, "Content-Length", &body.len().to_string());
    push_header(&mut out, "Connection", "close");
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(body.as_bytes());
    out
}

/// Call `f` with the current `Date` header value. Formatting a date costs
/// more than the rest of a small response, so it is done at most once a
/// second per thread.
pub fn with_http_date<R>(f: impl FnOnce(&str) -> R) -> R {
    with_date_cache(|cache| f(&cache.text))
}

/// Call `f` with the lines `Server: squall/…` and `Date: …`, CRLF after
/// each, as most responses send them: one copy instead of six.
fn with_server_and_date<R>(f: impl FnOnce(&[u8]) -> R) -> R {
    with_date_cache(|cache| f(&cache.server_and_date))
}

/// The formatted date of the current second, per thread.
struct DateCache {
    /// The `Date` value (RFC 9110 §5.6.7 IMF-fixdate).
    text: String,
    /// `Server: …\r\nDate: <text>\r\n`, rebuilt with `text`.
    server_and_date: Vec<u8>,
    /// The second `text` is for.
    secs: u64,
    /// The clock reading it was last checked against: the same for every
    /// response of one loop iteration, which then skips the conversion to
    /// seconds.
    checked: SystemTime,
}

/// Run `f` on this thread's [`DateCache`], brought up to date first.
fn with_date_cache<R>(f: impl FnOnce(&DateCache) -> R) -> R {
    thread_local! {
        static CACHE: RefCell<DateCache> = const {
            RefCell::new(DateCache {
                text: String::new(),
                server_and_date: Vec::new(),
                secs: u64::MAX,
                checked: SystemTime::UNIX_EPOCH,
            })
        };
    }
    let now = crate::ioloop::IterationClock::system_now();
    CACHE.with(|cache| {
        let mut cache = cache.borrow_mut();
        if cache.checked != now || cache.text.is_empty() {
            let secs = now
                .duration_since(SystemTime::UNIX_EPOCH)
                .map(|d| d.as_secs())
                .unwrap_or(0);
            if cache.secs != secs || cache.text.is_empty() {
                let cache = &mut *cache;
                cache.text = httpdate::fmt_http_date(now);
                cache.server_and_date.clear();
                push_header(&mut cache.server_and_date, "Server", SERVER_HEADER);
                push_header(&mut cache.server_and_date, "Date", &cache.text);
                cache.secs = secs;
            }
            cache.checked = now;
        }
        f(&cache)
    })
}

/// The reason phrase for a status code (RFC 9110 §15).
pub fn reason_phrase(status: u16) -> &'static str {
    match status {
        100 => "Continue",
        101 => "Switching Protocols",
        200 => "OK",
        201 => "Created",
        202 => "Accepted",
        204 => "No Content",
        206 => "Partial Content",
        301 => "Moved Permanently",
        302 => "Found",
        303 => "See Other",
        304 => "Not Modified",
        307 => "Temporary Redirect",
        308 => "Permanent Redirect",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        409 => "Conflict",
        411 => "Length Required",
        413 => "Content Too Large",
        416 => "Range Not Satisfiable",
        426 => "Upgrade Required",
        429 => "Too Many Requests",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        505 => "HTTP Version Not Supported",
        _ => "Unknown",
    }
}

#[cfg(test)]
mod tests {
    use super::{push_decimal, push_decimal_text, push_ip, RequestLine, INLINE_REQUEST_LINE};
    use crate::http::{HTTPServerRequest, Version};
    use crate::httputil::HTTPHeaders;
    use std::net::IpAddr;

    #[test]
    fn the_request_line_is_kept_whole_inline_or_not() {
        let fits = "/".repeat(INLINE_REQUEST_LINE - "GET ".len());
        let over = format!("{fits}x");
        for (method, uri, inline) in [
            ("GET", "/hello?x=1", true),
            ("GET", fits.as_str(), true),
            ("GET", over.as_str(), false),
            ("DELETE", "/ünïcode/%20", true),
        ] {
            let request =
                HTTPServerRequest::new(method, uri, Version::Http11, &HTTPHeaders::new(), vec![]);
            let line = RequestLine::new(&request);
            assert_eq!(line.as_str(), format!("{method} {uri}"));
            assert_eq!(matches!(line, RequestLine::Inline { .. }), inline, "{uri}");
        }
    }

    #[test]
    fn ip_text_matches_display() {
        for text in [
            "0.0.0.0",
            "127.0.0.1",
            "10.0.100.9",
            "192.168.1.10",
            "255.255.255.255",
            "::1",
            "::ffff:1.2.3.4",
            "2001:db8::8a2e:370:7334",
        ] {
            let ip: IpAddr = text.parse().unwrap();
            let mut out = String::new();
            push_ip(&mut out, ip);
            assert_eq!(out, ip.to_string());
        }
    }

    #[test]
    fn decimal_digits() {
        for n in [0u64, 7, 9, 10, 99, 100, 200, 999, 1000, 65536, u64::MAX] {
            let mut out = Vec::new();
            push_decimal(&mut out, n);
            assert_eq!(out, n.to_string().into_bytes());
            let mut text = String::from("x");
            push_decimal_text(&mut text, n);
            assert_eq!(text, format!("x{n}"));
        }
    }
}
