//! A buffered, non-blocking socket driven by callbacks.
//!
//! Mirrors Tornado's `tornado/iostream.py` in its callback era (v3.2): the
//! API is `read_until(delimiter, callback)`, `read_bytes(n, callback)`,
//! `read_until_close(callback)`, `write(data, callback)`,
//! `set_close_callback(callback)` — with two Rust-shaped changes:
//!
//! * The pending read is one enum, [`ReadTarget`], instead of Tornado's bag of
//!   `_read_delimiter` / `_read_bytes` / `_read_until_close` attributes, so
//!   "at most one read at a time" is a property of the type, not an assert.
//! * Read callbacks receive a `Result`: a stream that closes while a read is
//!   pending hands that read a [`StreamError`] saying why (Tornado 4+ fails
//!   the read's future the same way); the close callback fires as well.
//!
//! # How a byte travels
//!
//! ```text
//!  kernel socket ──readable event──▶ IOLoop ──▶ handle_events()
//!        │                                         │ read until drained
//!        ▼                                         ▼ (short read; see below)
//!   read_buffer ◀──────────────────────────────────┘
//!        │ try_satisfy_read(): is the pending ReadTarget met?
//!        ▼ yes
//!   borrow released ──▶ callback(Ok(bytes)), from the event handler
//!
//!   write(bytes) ──▶ write_buffer ──end of iteration──▶ flush(): write until
//!                                   (or at once if big)   WouldBlock; the rest
//!                                                         waits for a writable
//!                                                         event
//! ```
//!
//! # Invariants
//!
//! * **User callbacks never run while the stream is borrowed, nor inside a
//!   call the user made.** Every completion (read, write, connect, close) is
//!   queued with [`IOLoop::add_callback`] and runs on a later pass, with one
//!   exception: a read that the bytes of a readable event complete is
//!   delivered by the event handler itself, after it released the borrow
//!   (the loop is dispatching an event; no user code is on the stack).
//!   Callbacks queued earlier run earlier, and the close callback is always
//!   queued, so it runs after the read callback (Tornado: "close callback
//!   runs only after pending callbacks drain").
//! * **Edge-triggered.** The socket is registered once for readable and
//!   writable. On a readable event the stream reads until the kernel is
//!   drained: a short read or `WouldBlock` (and on to EOF when the event
//!   carried a hang-up); if it stops early (buffer limits), it sets
//!   `readable_pending` and resumes when a read is next asked for. Writes
//!   go until `WouldBlock`, then wait for the writable edge.
//! * **Bytes are never lost.** Data that arrives before a read is asked for
//!   stays in the read buffer for the next read, even if the stream has
//!   closed since (the peer may send its last lines and close at once).
//! * **The last bytes before a FIN are answered.** When the peer's FIN
//!   comes in the same read as the bytes that complete a pending read, the
//!   stream does not close before that read's callback has run: it closes
//!   on the next iteration, once the writes the callback made are flushed
//!   (`input_ended`; meanwhile a read the buffer cannot meet fails at
//!   once). A client that half-closes right behind its request still gets
//!   the answer. A FIN that completes no read closes at once, as in
//!   Tornado.
//! * **Everything is bounded.** The read buffer stops growing at
//!   `max_buffer_size` (a read that cannot be met within it fails with
//!   [`StreamError::BufferFull`]); `read_until`'s `max_bytes` fails with
//!   [`StreamError::Unsatisfiable`]; the write buffer is capped by
//!   `max_write_buffer_size` ([`StreamError::WriteBufferFull`]). A failed read
//!   stops all further reading, and the stream closes as soon as the failed
//!   read's callback has run and the writes it made (say, an error message
//!   to the client) are flushed.
//! * **Dropping the last handle closes the socket.** The loop only holds a
//!   weak reference; a pending read or write callback that captures the
//!   stream keeps it alive, which is the normal case. One exception:
//!   after [`IOStream::close_when_flushed`] the stream keeps itself alive
//!   until its bytes are out, so "write the reply, close when flushed, drop
//!   the handle" sends the whole reply however slowly the peer reads.

use std::borrow::Cow;
use std::cell::RefCell;
use std::fmt;
use std::io::{self, IoSlice, Read, Write};
use std::net::{Shutdown, SocketAddr};
use std::rc::{Rc, Weak};

use mio::net::TcpStream;
#[cfg(unix)]
use mio::net::UnixStream;
use mio::{Interest, Token};

use crate::ioloop::{EndOfIteration, IOLoop, OnReady, Ready};

pub(crate) mod spare;
mod write_buffer;

use write_buffer::WriteBuffer;

/// Default cap on the read buffer: 100 MiB (Tornado's `max_buffer_size`).
pub const DEFAULT_MAX_BUFFER_SIZE: usize = 100 * 1024 * 1024;

/// Default cap on the write buffer: 100 MiB. Tornado leaves it unbounded;
/// an unbounded buffer is how one slow reader eats a server's memory.
pub const DEFAULT_MAX_WRITE_BUFFER_SIZE: usize = 100 * 1024 * 1024;

/// Bytes asked of the kernel per `read` call (Tornado's `read_chunk_size`).
pub const READ_CHUNK_SIZE: usize = 64 * 1024;

/// Once the write buffer holds this much, `write` flushes at once instead
/// of waiting for the end of the iteration (keeps big writes from piling up).
const EAGER_FLUSH_BYTES: usize = 64 * 1024;

/// At most this many buffers go into one `writev`.
const MAX_IOVECS: usize = 64;

/// What one queued chunk costs besides its bytes: its slot in the write
/// queue, counted twice because the queue (a `VecDeque`) grows by doubling
/// and may have as many free slots as used ones. It matters for chunks
/// shared with other streams ([`IOStream::write_shared`]), which are never
/// coalesced: ten thousand 2-byte broadcast frames are 20 KB of bytes but
/// ten thousand slots.
pub const QUEUED_CHUNK_COST: usize = 2 * std::mem::size_of::<write_buffer::Chunk>();

/// A read buffer that emptied keeps its allocation only if at most this big,
/// so idle connections hold (almost) no buffer memory.
const KEEP_READ_CAPACITY: usize = 4 * 1024;

/// Why a read failed or a stream closed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StreamError {
    /// The stream was closed (by the peer, or locally by `close`).
    Closed,
    /// `read_until` found no delimiter within `max_bytes` bytes.
    Unsatisfiable {
        /// The limit that was exceeded.
        max_bytes: usize,
    },
    /// The read buffer reached `max_buffer_size` without meeting the read.
    BufferFull {
        /// The limit that was reached.
        max_buffer_size: usize,
    },
    /// A write would have grown the write buffer past its cap.
    WriteBufferFull {
        /// The limit that would have been exceeded.
        max_write_buffer_size: usize,
    },
    /// A socket error (reset, refused, ...).
    Io(io::ErrorKind, String),
    /// A second read was asked for while one was pending.
    AlreadyReading,
}

impl fmt::Display for StreamError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StreamError::Closed => write!(f, "stream is closed"),
            StreamError::Unsatisfiable { max_bytes } => {
                write!(f, "delimiter not found within {max_bytes} bytes")
            }
            StreamError::BufferFull { max_buffer_size } => {
                write!(
                    f,
                    "reached maximum read buffer size ({max_buffer_size} bytes)"
                )
            }
            StreamError::WriteBufferFull {
                max_write_buffer_size,
            } => write!(
                f,
                "reached maximum write buffer size ({max_write_buffer_size} bytes)"
            ),
            StreamError::Io(_, msg) => write!(f, "{msg}"),
            StreamError::AlreadyReading => write!(f, "already reading"),
        }
    }
}

impl std::error::Error for StreamError {}

impl From<io::Error> for StreamError {
    fn from(e: io::Error) -> StreamError {
        StreamError::Io(e.kind(), e.to_string())
    }
}

/// The one read a stream may have pending.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReadTarget {
    /// Up to and including `delimiter`; fail if not found within `max_bytes`.
    Until {
        /// The bytes that end the read (included in the result).
        /// Borrowed for the constant delimiters protocols use (`"\r\n\r\n"`),
        /// so starting a read allocates nothing.
        delimiter: Cow<'static, [u8]>,
        /// Most bytes (delimiter included) the result may have.
        max_bytes: Option<usize>,
    },
    /// Exactly `n` bytes, or with `partial` any 1..=n bytes available.
    Bytes {
        /// How many bytes.
        n: usize,
        /// Return as soon as at least one byte is there.
        partial: bool,
    },
    /// Up to and including the first empty line: the end of an HTTP head.
    /// Lines may end in CRLF or a bare LF, as Tornado's
    /// `read_until_regex(b"\r?\n\r?\n")` in `http1connection.py` allows
    /// (RFC 9112 §2.2: "a recipient MAY recognize a single LF as a line
    /// terminator"). Fails like `Until` beyond `max_bytes`.
    UntilEmptyLine {
        /// Most bytes (the empty line included) the result may have.
        max_bytes: Option<usize>,
    },
    /// Everything until the peer closes.
    UntilClose,
}

/// Callback for a read: the bytes, or why the read failed.
pub type ReadCallback = Box<dyn FnOnce(Result<Vec<u8>, StreamError>)>;

/// A long-lived reader: protocol code that reads from one stream over and
/// over (an HTTP connection reading head after head) implements this once
/// and passes an `Rc` of itself to [`IOStream::start_read_with`]. Handing
/// over an `Rc` clone costs no allocation, where a [`ReadCallback`] is a
/// fresh `Box` per read.
pub trait ReadHandler {
    /// The read completed: the bytes, or why it failed. Called like a
    /// [`ReadCallback`] (never inside the stream's own code).
    fn on_read(self: Rc<Self>, result: Result<Vec<u8>, StreamError>);
}

/// Who gets a pending read's result.
enum ReadCompletion {
    /// A one-off callback.
    Once(ReadCallback),
    /// A long-lived reader.
    Handler(Rc<dyn ReadHandler>),
}

impl ReadCompletion {
    fn complete(self, result: Result<Vec<u8>, StreamError>) {
        match self {
            ReadCompletion::Once(callback) => callback(result),
            ReadCompletion::Handler(handler) => handler.on_read(result),
        }
    }
}

/// Callback for `connect`: `Ok(())` once connected, or why it failed.
pub type ConnectCallback = Box<dyn FnOnce(Result<(), StreamError>)>;

/// The socket under a stream.
enum Socket {
    Tcp(TcpStream),
    #[cfg(unix)]
    Unix(UnixStream),
}

impl Socket {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Socket::Tcp(s) => s.read(buf),
            #[cfg(unix)]
            Socket::Unix(s) => s.read(buf),
        }
    }

    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Socket::Tcp(s) => s.write(buf),
            #[cfg(unix)]
            Socket::Unix(s) => s.write(buf),
        }
    }

    /// `writev`, or a plain `send` for one buffer: the kernel's vectored
    /// path costs measurably more per call, and one buffer is the usual
    /// case (a response written at once).
    fn write_vectored(&mut self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        if let [one] = bufs {
            return self.write(one);
        }
        match self {
            Socket::Tcp(s) => s.write_vectored(bufs),
            #[cfg(unix)]
            Socket::Unix(s) => s.write_vectored(bufs),
        }
    }

    fn take_error(&self) -> io::Result<Option<io::Error>> {
        match self {
            Socket::Tcp(s) => s.take_error(),
            #[cfg(unix)]
            Socket::Unix(s) => s.take_error(),
        }
    }

    fn source(&mut self) -> &mut dyn mio::event::Source {
        match self {
            Socket::Tcp(s) => s,
            #[cfg(unix)]
            Socket::Unix(s) => s,
        }
    }
}

/// Bytes handed to [`IOStream::write_inner`]: a buffer to take over, or a
/// slice to copy.
enum Payload<'a> {
    Owned(Vec<u8>),
    Borrowed(&'a [u8]),
    Shared(Rc<[u8]>),
}

impl Payload<'_> {
    fn len(&self) -> usize {
        match self {
            Payload::Owned(v) => v.len(),
            Payload::Borrowed(s) => s.len(),
            Payload::Shared(s) => s.len(),
        }
    }
}

/// Everything a stream knows. Only this module touches it, and never while a
/// user callback runs (see the module invariants).
struct StreamInner {
    /// This stream, weakly: for completions that act on it later without
    /// keeping it alive.
    me: Weak<RefCell<StreamInner>>,
    /// The loop this stream lives on.
    ioloop: IOLoop,
    /// The socket; `None` once closed.
    socket: Option<Socket>,
    /// Registration token; `None` once closed.
    token: Option<Token>,
    /// Address of the peer, if known.
    peer: Option<SocketAddr>,
    /// Bytes read and not yet consumed: `read_buf[read_pos..]`.
    read_buf: Vec<u8>,
    /// Start of unconsumed bytes in `read_buf` (avoids shifting on consume).
    read_pos: usize,
    /// For `Until` reads: where to resume the delimiter search, so a slow
    /// trickle of bytes is not rescanned from the start each time.
    scan_from: usize,
    /// The pending read and its callback, if any.
    read: Option<(ReadTarget, ReadCompletion)>,
    /// The kernel may have more bytes for us: we stopped reading before
    /// `WouldBlock` (buffer limits), so no edge will come to remind us.
    readable_pending: bool,
    /// An event said the peer hung up (or the socket failed). Sticky: the
    /// FIN, RST or error is queued behind whatever data the kernel still
    /// holds and raises no further edge, so every later read of the socket
    /// goes on to EOF instead of stopping at a short read. Without this, a
    /// read resumed after a backpressure stop (`readable_pending`) took its
    /// short read for "drained" and waited for an event that never came.
    peer_closed: bool,
    /// A read failed on a limit: reading is over, the stream closes once the
    /// failed read's callback ran and writes flushed.
    read_failed: bool,
    /// The peer sent EOF right behind the bytes of a read just completed
    /// (see the module's invariants): nothing more is read from the socket,
    /// a read the buffer cannot meet fails at once, and a close is queued.
    input_ended: bool,
    /// Outgoing bytes.
    write_buf: WriteBuffer,
    /// Total bytes ever queued / ever sent: a write callback fires when the
    /// sent count reaches the queued count at the time of its write
    /// (Tornado's `_total_write_index` / `_total_write_done_index`).
    total_queued: u64,
    total_sent: u64,
    /// Write callbacks waiting for their bytes to leave: (index, callback).
    write_callbacks: std::collections::VecDeque<(u64, Box<dyn FnOnce()>)>,
    /// The socket said `WouldBlock` on write; wait for the writable edge.
    write_blocked: bool,
    /// A flush is already queued for the end of this iteration.
    flush_scheduled: bool,
    /// Close as soon as the write buffer is empty.
    close_when_flushed: bool,
    /// Send FIN (shut down the write half) as soon as the write buffer is
    /// empty.
    shutdown_when_flushed: bool,
    /// Set by `close_when_flushed` while bytes are queued: the stream holds
    /// itself so that dropping every handle does not cut the reply short.
    /// Cleared by `close_inner`, which breaks the cycle.
    keep_alive: Option<Rc<RefCell<StreamInner>>>,
    /// Runs once when the stream closes.
    close_callback: Option<Box<dyn FnOnce()>>,
    /// Pending `connect` completion.
    connect_callback: Option<ConnectCallback>,
    /// Closed, and why (`None` = open).
    closed: Option<StreamError>,
    /// Cap on `read_buf`.
    max_buffer_size: usize,
    /// Cap on `write_buf`.
    max_write_buffer_size: usize,
}

/// A non-blocking socket with buffered reads and writes. Cheap to clone:
/// every clone is the same stream.
#[derive(Clone)]
pub struct IOStream {
    inner: Rc<RefCell<StreamInner>>,
}

impl IOStream {
    /// Wrap a connected TCP socket (as handed out by `accept`) on the current
    /// loop.
    pub fn new(socket: TcpStream) -> io::Result<IOStream> {
        let peer = socket.peer_addr().ok();
        Self::register(Socket::Tcp(socket), peer, None)
    }

    /// [`new`](Self::new) for a socket whose peer `accept` already named:
    /// no `getpeername` call to learn it again.
    pub(crate) fn accepted(socket: TcpStream, peer: SocketAddr) -> io::Result<IOStream> {
        Self::register(Socket::Tcp(socket), Some(peer), None)
    }

    /// Wrap a connected Unix-domain socket on the current loop.
    #[cfg(unix)]
    pub fn from_unix(socket: UnixStream) -> io::Result<IOStream> {
        Self::register(Socket::Unix(socket), None, None)
    }

    /// Start a non-blocking TCP connect to `addr` (Tornado's
    /// `IOStream.connect`). The stream is usable at once: reads and writes
    /// issued now are served when the connection is up. `callback` gets
    /// `Ok(())` when connected, or the error (the stream is then closed).
    pub fn connect(
        addr: SocketAddr,
        callback: impl FnOnce(Result<(), StreamError>) + 'static,
    ) -> io::Result<IOStream> {
        let socket = TcpStream::connect(addr)?;
        Self::register(Socket::Tcp(socket), Some(addr), Some(Box::new(callback)))
    }

    fn register(
        mut socket: Socket,
        peer: Option<SocketAddr>,
        connect_callback: Option<ConnectCallback>,
    ) -> io::Result<IOStream> {
        let ioloop = IOLoop::current();
        let inner = Rc::new_cyclic(|me| {
            RefCell::new(StreamInner {
                me: me.clone(),
                ioloop: ioloop.clone(),
                socket: None,
                token: None,
                peer,
                read_buf: Vec::new(),
                read_pos: 0,
                scan_from: 0,
                read: None,
                readable_pending: false,
                peer_closed: false,
                read_failed: false,
                input_ended: false,
                write_buf: WriteBuffer::default(),
                total_queued: 0,
                total_sent: 0,
                write_callbacks: std::collections::VecDeque::new(),
                write_blocked: connect_callback.is_some(),
                flush_scheduled: false,
                close_when_flushed: false,
                shutdown_when_flushed: false,
                keep_alive: None,
                close_callback: None,
                connect_callback,
                closed: None,
                max_buffer_size: DEFAULT_MAX_BUFFER_SIZE,
                max_write_buffer_size: DEFAULT_MAX_WRITE_BUFFER_SIZE,
            })
        });
        let weak: Weak<RefCell<StreamInner>> = Rc::downgrade(&inner);
        // Registered once, for both directions, edge-triggered: see the
        // module invariants. The loop holds the stream weakly.
        let token = ioloop.add_handler_rc(
            socket.source(),
            Interest::READABLE | Interest::WRITABLE,
            weak,
        )?;
        {
            let mut st = inner.borrow_mut();
            st.socket = Some(socket);
            st.token = Some(token);
        }
        Ok(IOStream { inner })
    }

    /// Set the read buffer cap (default [`DEFAULT_MAX_BUFFER_SIZE`]).
    pub fn set_max_buffer_size(&self, bytes: usize) {
        self.inner.borrow_mut().max_buffer_size = bytes.max(1);
    }

    /// Set the write buffer cap (default [`DEFAULT_MAX_WRITE_BUFFER_SIZE`]).
    pub fn set_max_write_buffer_size(&self, bytes: usize) {
        self.inner.borrow_mut().max_write_buffer_size = bytes.max(1);
    }

    /// Read up to and including `delimiter`. If it is not found within
    /// `max_bytes` bytes, the read fails with [`StreamError::Unsatisfiable`]
    /// and the stream closes (after the callback ran and its writes flushed):
    /// Tornado closes too, as protection against memory exhaustion.
    pub fn read_until(
        &self,
        delimiter: &[u8],
        max_bytes: Option<usize>,
        callback: impl FnOnce(Result<Vec<u8>, StreamError>) + 'static,
    ) {
        self.start_read(
            ReadTarget::Until {
                delimiter: Cow::Owned(delimiter.to_vec()),
                max_bytes,
            },
            Box::new(callback),
        );
    }

    /// Read up to and including the first empty line (an HTTP head's end),
    /// lines ending in CRLF or a bare LF: see [`ReadTarget::UntilEmptyLine`].
    /// Fails beyond `max_bytes` like [`IOStream::read_until`].
    pub fn read_until_empty_line(
        &self,
        max_bytes: Option<usize>,
        callback: impl FnOnce(Result<Vec<u8>, StreamError>) + 'static,
    ) {
        self.start_read(ReadTarget::UntilEmptyLine { max_bytes }, Box::new(callback));
    }

    /// Read exactly `n` bytes; with `partial`, as soon as 1..=n are there.
    pub fn read_bytes(
        &self,
        n: usize,
        partial: bool,
        callback: impl FnOnce(Result<Vec<u8>, StreamError>) + 'static,
    ) {
        self.start_read(ReadTarget::Bytes { n, partial }, Box::new(callback));
    }

    /// Read everything until the peer closes (bounded by `max_buffer_size`).
    pub fn read_until_close(&self, callback: impl FnOnce(Result<Vec<u8>, StreamError>) + 'static) {
        self.start_read(ReadTarget::UntilClose, Box::new(callback));
    }

    /// Start `target` with `callback`. Completes from the buffer if it can
    /// (still through the loop's callback queue), else waits for data.
    pub fn start_read(&self, target: ReadTarget, callback: ReadCallback) {
        self.start_read_inner(target, ReadCompletion::Once(callback));
    }

    /// Like [`start_read`](Self::start_read), for a long-lived
    /// [`ReadHandler`]: no allocation per read.
    pub fn start_read_with(&self, target: ReadTarget, handler: Rc<dyn ReadHandler>) {
        self.start_read_inner(target, ReadCompletion::Handler(handler));
    }

    fn start_read_inner(&self, target: ReadTarget, completion: ReadCompletion) {
        let mut st = self.inner.borrow_mut();
        if st.read.is_some() {
            drop(st);
            log::error!("IOStream: a second read was started while one was pending");
            IOLoop::current()
                .add_callback(move || completion.complete(Err(StreamError::AlreadyReading)));
            return;
        }
        st.scan_from = 0;
        st.read = Some((target, completion));
        try_inline_read(&mut st);
    }

    /// Fast path for protocol code: complete `target` synchronously if the
    /// buffered bytes (plus whatever the kernel has now) already satisfy it.
    ///
    /// Returns `None` if the read would have to wait; then the caller falls
    /// back to the callback form. This is Tornado's `_try_inline_read`
    /// without the deferral, for framework code that is itself running in a
    /// loop callback and so cannot be re-entered. Errors (closed, limits)
    /// are returned, not raised.
    pub fn try_read(&self, target: &ReadTarget) -> Option<Result<Vec<u8>, StreamError>> {
        let mut st = self.inner.borrow_mut();
        if st.read.is_some() {
            return Some(Err(StreamError::AlreadyReading));
        }
        st.scan_from = 0;
        match find_read(&mut st, target) {
            Found::Ready(n) => return Some(Ok(consume(&mut st, n))),
            Found::Failed(e) => return Some(Err(fail_read(&mut st, e))),
            Found::NotYet => {}
        }
        if st.input_ended && st.closed.is_none() {
            return Some(end_input(&mut st, target));
        }
        if st.readable_pending && st.closed.is_none() && !st.read_failed {
            let eof = read_to_buffer(&mut st, Some(target));
            match find_read(&mut st, target) {
                Found::Ready(n) => {
                    if eof == Some(StreamError::Closed) {
                        // The FIN came behind these bytes: answer them first.
                        end_input_after_this_read(&mut st);
                    } else if let Some(err) = eof {
                        close_inner(&mut st, err);
                    }
                    return Some(Ok(consume(&mut st, n)));
                }
                Found::Failed(e) => return Some(Err(fail_read(&mut st, e))),
                Found::NotYet => {}
            }
            if let Some(err) = eof {
                if *target == ReadTarget::UntilClose && err == StreamError::Closed {
                    let n = st.read_buf.len() - st.read_pos;
                    let data = consume(&mut st, n);
                    close_inner(&mut st, err);
                    return Some(Ok(data));
                }
                close_inner(&mut st, err.clone());
                return Some(Err(err));
            }
        }
        if let Some(err) = st.closed.clone() {
            if *target == ReadTarget::UntilClose && err == StreamError::Closed {
                let n = st.read_buf.len() - st.read_pos;
                return Some(Ok(consume(&mut st, n)));
            }
            return Some(Err(err));
        }
        None
    }

    /// Number of bytes buffered and not yet read.
    pub fn buffered_len(&self) -> usize {
        let st = self.inner.borrow();
        st.read_buf.len() - st.read_pos
    }

    /// Queue `data` for sending. Returns an error (and queues nothing) if the
    /// stream is closed; if the write buffer would exceed its cap the stream
    /// is closed with [`StreamError::WriteBufferFull`].
    pub fn write(&self, data: impl Into<Vec<u8>>) -> Result<(), StreamError> {
        self.write_inner(Payload::Owned(data.into()), None)
    }

    /// Like [`write`](Self::write) for bytes the caller keeps: they are
    /// copied into the write buffer (joining the bytes queued before them
    /// when small), with no allocation of a `Vec` for them alone. For
    /// protocol code that builds each message in a reused scratch buffer.
    pub fn write_bytes(&self, data: &[u8]) -> Result<(), StreamError> {
        self.write_inner(Payload::Borrowed(data), None)
    }

    /// Queue bytes shared with other streams (a broadcast frame) by
    /// reference: no copy and no buffer of this stream's own, however many
    /// streams queue the same bytes. Errors as for [`write`](Self::write).
    pub fn write_shared(&self, data: Rc<[u8]>) -> Result<(), StreamError> {
        self.write_inner(Payload::Shared(data), None)
    }

    /// Queue bytes built in place: `fill` appends them to the tail of the
    /// write buffer, where [`write_bytes`](Self::write_bytes) would have
    /// copied them, so a response head needs no scratch buffer and no copy.
    /// `fill` must only append, and runs while the stream is borrowed: it
    /// must not call this stream. For small writes (heads, small bodies);
    /// errors as for [`write`](Self::write), except that the write-buffer
    /// cap is checked after `fill` ran.
    pub fn write_with(&self, fill: impl FnOnce(&mut Vec<u8>)) -> Result<(), StreamError> {
        let mut st = self.inner.borrow_mut();
        if let Some(err) = &st.closed {
            return Err(err.clone());
        }
        let added = st.write_buf.append_with(fill);
        st.total_queued += added as u64;
        if st.write_buf.len > st.max_write_buffer_size {
            return Err(close_write_buffer_full(&mut st));
        }
        flush_when_due(&mut st);
        Ok(())
    }

    /// Send `data` now instead of at the end of the iteration. When nothing
    /// is queued ahead of it (the usual case for a response that is
    /// finished at once), the bytes go from `data` straight to the socket:
    /// no copy into the write buffer and no allocation. Whatever the kernel
    /// does not take is buffered and waits for the writable edge, as with
    /// [`write_bytes`](Self::write_bytes), whose errors this shares.
    pub fn write_now(&self, data: &[u8]) -> Result<(), StreamError> {
        let mut st = self.inner.borrow_mut();
        if let Some(err) = &st.closed {
            return Err(err.clone());
        }
        // Order: bytes queued earlier must leave first, and a connecting or
        // blocked socket cannot take any.
        if st.write_buf.len > 0 || st.write_blocked || data.len() > st.max_write_buffer_size {
            drop(st);
            self.write_inner(Payload::Borrowed(data), None)?;
            self.flush_now();
            return Ok(());
        }
        st.total_queued += data.len() as u64;
        let sent = send_direct(&mut st, data);
        st.total_sent += sent as u64;
        if sent < data.len() && st.closed.is_none() {
            // `write_blocked` is set: the writable edge flushes the rest.
            st.write_buf.push_slice(&data[sent..]);
        }
        Ok(())
    }

    /// Like [`write`](Self::write); `callback` runs once these bytes (and all
    /// before them) have been handed to the kernel. It does not run if the
    /// stream closes first.
    pub fn write_with_callback(
        &self,
        data: impl Into<Vec<u8>>,
        callback: impl FnOnce() + 'static,
    ) -> Result<(), StreamError> {
        self.write_inner(Payload::Owned(data.into()), Some(Box::new(callback)))
    }

    /// Run `callback` once every byte queued so far has been handed to the
    /// kernel (on the next iteration if none is queued). It does not run if
    /// the stream closes first. Backpressure for producers: the HTTP
    /// connection parses no more pipelined requests until a peer that is
    /// not reading has taken the answers already queued.
    pub fn on_flushed(&self, callback: impl FnOnce() + 'static) {
        let mut st = self.inner.borrow_mut();
        if st.closed.is_some() {
            return;
        }
        if st.write_buf.len == 0 {
            st.ioloop.add_callback(callback);
            return;
        }
        let index = st.total_queued;
        st.write_callbacks.push_back((index, Box::new(callback)));
    }

    fn write_inner(
        &self,
        data: Payload<'_>,
        callback: Option<Box<dyn FnOnce()>>,
    ) -> Result<(), StreamError> {
        let mut st = self.inner.borrow_mut();
        if let Some(err) = &st.closed {
            return Err(err.clone());
        }
        if st.write_buf.len + data.len() > st.max_write_buffer_size {
            return Err(close_write_buffer_full(&mut st));
        }
        st.total_queued += data.len() as u64;
        match data {
            Payload::Owned(data) => st.write_buf.push(data),
            Payload::Borrowed(data) => st.write_buf.push_slice(data),
            Payload::Shared(data) => st.write_buf.push_shared(data),
        }
        if let Some(cb) = callback {
            let index = st.total_queued;
            st.write_callbacks.push_back((index, cb));
        }
        flush_when_due(&mut st);
        Ok(())
    }

    /// Bytes queued and not yet sent.
    pub fn write_buffer_len(&self) -> usize {
        self.inner.borrow().write_buf.len
    }

    /// Memory the write buffer holds for the peer: the unsent bytes plus
    /// [`QUEUED_CHUNK_COST`] per queued chunk. A bound on what a peer that
    /// does not read may cost should check this, not
    /// [`write_buffer_len`](Self::write_buffer_len): shared chunks are
    /// queued one by one however small, so their slots can outweigh their
    /// bytes many times over.
    pub fn write_buffer_footprint(&self) -> usize {
        let st = self.inner.borrow();
        st.write_buf.len + st.write_buf.chunks.len() * QUEUED_CHUNK_COST
    }

    /// True while bytes are queued.
    pub fn writing(&self) -> bool {
        self.inner.borrow().write_buf.len > 0
    }

    /// True while a read is pending.
    pub fn reading(&self) -> bool {
        self.inner.borrow().read.is_some()
    }

    /// Run `callback` once, when the stream closes (by either side). Replaces
    /// an earlier one. If the stream is already closed it runs on the next
    /// iteration.
    pub fn set_close_callback(&self, callback: impl FnOnce() + 'static) {
        let mut st = self.inner.borrow_mut();
        if st.closed.is_some() {
            st.ioloop.add_callback(callback);
        } else {
            st.close_callback = Some(Box::new(callback));
        }
    }

    /// Remove the close callback without running it.
    pub fn clear_close_callback(&self) {
        let cb = self.inner.borrow_mut().close_callback.take();
        drop(cb);
    }

    /// Close now. Unsent bytes are dropped; a pending read gets
    /// [`StreamError::Closed`] (or its data, if the buffer already meets it;
    /// a `read_until_close` gets what is buffered). Unread bytes stay
    /// readable.
    pub fn close(&self) {
        let mut st = self.inner.borrow_mut();
        close_inner(&mut st, StreamError::Closed);
    }

    /// Hand queued bytes to the kernel now instead of at the end of this
    /// loop iteration. For writes that know no more bytes for this stream
    /// are coming in this pass (a long-poll answer during a fan-out to
    /// thousands), so the first answers leave while the rest are built.
    pub fn flush_now(&self) {
        let mut st = self.inner.borrow_mut();
        if st.closed.is_none() && !st.write_blocked && st.write_buf.len > 0 {
            flush(&mut st);
        }
    }

    /// Close once every queued byte has been sent (or at once if none are).
    /// Until then the stream keeps itself alive, so the handles may be
    /// dropped right after this call without cutting the bytes short.
    pub fn close_when_flushed(&self) {
        let mut st = self.inner.borrow_mut();
        close_after_flush(&mut st);
    }

    /// True once closed.
    pub fn closed(&self) -> bool {
        self.inner.borrow().closed.is_some()
    }

    /// Why the stream closed (`None` while open).
    pub fn error(&self) -> Option<StreamError> {
        self.inner.borrow().closed.clone()
    }

    /// The peer's address, if known.
    pub fn peer_addr(&self) -> Option<SocketAddr> {
        self.inner.borrow().peer
    }

    /// Set `TCP_NODELAY` (no-op for Unix sockets or a closed stream).
    pub fn set_nodelay(&self, nodelay: bool) {
        if let Some(Socket::Tcp(s)) = &self.inner.borrow().socket {
            let _ = s.set_nodelay(nodelay);
        }
    }

    /// Shut down the write half (send FIN) once queued bytes are sent; used
    /// by clients that signal the end of a request by closing their side.
    pub fn shutdown_write(&self) {
        let mut st = self.inner.borrow_mut();
        if st.write_buf.len == 0 {
            shutdown_socket_write(&st);
        } else {
            st.shutdown_when_flushed = true;
        }
    }
}

impl fmt::Debug for IOStream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.inner.try_borrow() {
            Ok(st) => write!(f, "IOStream({:?}, closed={})", st.peer, st.closed.is_some()),
            Err(_) => write!(f, "IOStream(<busy>)"),
        }
    }
}

impl Drop for StreamInner {
    fn drop(&mut self) {
        // Nobody holds the stream any more: release the socket and the slab
        // entry. Queued close callback runs if one was set.
        if self.closed.is_none() {
            close_inner(self, StreamError::Closed);
        }
    }
}

/// What `find_read` concluded about the pending target.
enum Found {
    /// The first `n` unconsumed bytes are the result.
    Ready(usize),
    /// Wait for more bytes.
    NotYet,
    /// The target can never be met.
    Failed(StreamError),
}

/// Is `target` met by the buffered bytes?
fn find_read(st: &mut StreamInner, target: &ReadTarget) -> Found {
    let avail = st.read_buf.len() - st.read_pos;
    match target {
        ReadTarget::Bytes { n, partial } => {
            if avail >= *n || (*partial && avail > 0) {
                Found::Ready(avail.min(*n))
            } else if *n > st.max_buffer_size {
                Found::Failed(StreamError::BufferFull {
                    max_buffer_size: st.max_buffer_size,
                })
            } else {
                Found::NotYet
            }
        }
        ReadTarget::Until {
            delimiter,
            max_bytes,
        } => scan_until(st, *max_bytes, delimiter.len(), |data| {
            find_subslice(data, delimiter).map(|i| i + delimiter.len())
        }),
        // The match ends at most 3 bytes after the LF it starts from.
        ReadTarget::UntilEmptyLine { max_bytes } => scan_until(st, *max_bytes, 3, find_empty_line),
        ReadTarget::UntilClose => {
            if avail >= st.max_buffer_size {
                Found::Failed(StreamError::BufferFull {
                    max_buffer_size: st.max_buffer_size,
                })
            } else {
                Found::NotYet
            }
        }
    }
}

/// The `Until`-style scan shared by [`ReadTarget::Until`] and
/// [`ReadTarget::UntilEmptyLine`]: `find` returns where the first match in
/// its slice *ends*; `span` is the longest a match can be, so a rescan
/// starts early enough to catch a match straddling the old end.
fn scan_until(
    st: &mut StreamInner,
    max_bytes: Option<usize>,
    span: usize,
    find: impl Fn(&[u8]) -> Option<usize>,
) -> Found {
    let data = &st.read_buf[st.read_pos..];
    if data.is_empty() && max_bytes.is_none_or(|max| max > 0) {
        // Nothing buffered (a read being set up): nothing to scan.
        return Found::NotYet;
    }
    // Resume where the last scan stopped.
    let from = st.scan_from.saturating_sub(span.saturating_sub(1));
    if let Some(end) = find(&data[from.min(data.len())..]) {
        let end = from + end;
        if let Some(max) = max_bytes {
            if end > max {
                return Found::Failed(StreamError::Unsatisfiable { max_bytes: max });
            }
        }
        return Found::Ready(end);
    }
    st.scan_from = data.len();
    if let Some(max) = max_bytes {
        if data.len() >= max {
            return Found::Failed(StreamError::Unsatisfiable { max_bytes: max });
        }
    }
    if data.len() >= st.max_buffer_size {
        return Found::Failed(StreamError::BufferFull {
            max_buffer_size: st.max_buffer_size,
        });
    }
    Found::NotYet
}

/// Where the first `\r?\n\r?\n` in `hay` ends (one past its last LF).
/// Each LF is a candidate: the line after it is empty if it is `\n` or
/// `\r\n`. (The optional CR before the first LF needs no check: the match
/// ends at the second LF either way.)
fn find_empty_line(hay: &[u8]) -> Option<usize> {
    let mut i = 0;
    while let Some(p) = find_byte(&hay[i..], b'\n') {
        let lf = i + p;
        match hay.get(lf + 1..) {
            Some([b'\n', ..]) => return Some(lf + 2),
            Some([b'\r', b'\n', ..]) => return Some(lf + 3),
            _ => i = lf + 1,
        }
    }
    None
}

/// First index of `needle` in `hay`.
fn find_subslice(hay: &[u8], needle: &[u8]) -> Option<usize> {
    match needle.len() {
        0 => Some(0),
        1 => find_byte(hay, needle[0]),
        n => {
            let first = needle[0];
            let mut i = 0;
            while i + n <= hay.len() {
                match find_byte(&hay[i..=hay.len() - n], first) {
                    None => return None,
                    Some(p) => {
                        i += p;
                        // The first byte matched; the rest of a delimiter is
                        // a few bytes, compared in line (no memcmp call).
                        if hay[i + 1..i + n].iter().eq(&needle[1..]) {
                            return Some(i);
                        }
                        i += 1;
                    }
                }
            }
            None
        }
    }
}

/// First index of `byte` in `hay`, eight bytes per step.
///
/// Every request head is scanned for its `\r\n\r\n` this way, so the
/// scan is word-at-a-time: XOR a word with `byte` in every lane, and a lane
/// that became zero is a match. `(x - 0x01..01) & !x & 0x80..80` sets the
/// top bit of zero lanes; a borrow can also flag a lane *above* a true zero
/// one, never below it, so the lowest flag (little-endian: the first byte)
/// is always a real match.
fn find_byte(hay: &[u8], byte: u8) -> Option<usize> {
    const LANES_LOW: u64 = 0x0101_0101_0101_0101;
    const LANES_HIGH: u64 = 0x8080_8080_8080_8080;
    let pattern = LANES_LOW * u64::from(byte);
    let mut words = hay.chunks_exact(8);
    let mut base = 0;
    for word in &mut words {
        let mut lanes = [0u8; 8];
        lanes.copy_from_slice(word);
        let x = u64::from_le_bytes(lanes) ^ pattern;
        let zero_lanes = x.wrapping_sub(LANES_LOW) & !x & LANES_HIGH;
        if zero_lanes != 0 {
            return Some(base + (zero_lanes.trailing_zeros() / 8) as usize);
        }
        base += 8;
    }
    words
        .remainder()
        .iter()
        .position(|&b| b == byte)
        .map(|p| base + p)
}

/// Take the first `n` unconsumed bytes out of the read buffer.
fn consume(st: &mut StreamInner, n: usize) -> Vec<u8> {
    st.scan_from = 0;
    let start = st.read_pos;
    if start == 0 && n == st.read_buf.len() {
        // The whole buffer is the answer: hand the allocation over.
        return std::mem::take(&mut st.read_buf);
    }
    let mut out = spare::take();
    out.extend_from_slice(&st.read_buf[start..start + n]);
    st.read_pos += n;
    if st.read_pos == st.read_buf.len() {
        st.read_pos = 0;
        st.read_buf.clear();
        if st.read_buf.capacity() > KEEP_READ_CAPACITY {
            st.read_buf = Vec::new();
        }
    } else if st.read_pos > st.read_buf.len() / 2 {
        // Compact so the buffer does not creep forward forever.
        st.read_buf.drain(..st.read_pos);
        st.read_pos = 0;
    }
    out
}

/// A read failed on a limit: reading is over for this stream. Drop what was
/// buffered, and close once the failed read's callback ran (see the caller)
/// and writes flushed.
fn fail_read(st: &mut StreamInner, err: StreamError) -> StreamError {
    log::info!("{:?}: {err}", st.peer);
    st.read_failed = true;
    st.read_buf = Vec::new();
    st.read_pos = 0;
    err
}

/// Read from the socket into the buffer until `WouldBlock` or a limit.
///
/// Returns `Some(error)` when the peer closed (EOF: [`StreamError::Closed`])
/// or the socket failed; the caller decides how to finish.
///
/// Backpressure: we stop early once the buffer reaches `max_buffer_size`, or
/// once a whole chunk (`READ_CHUNK_SIZE`) or more is buffered and `target`
/// is met (or no read is pending at all). Then `readable_pending` records that the
/// kernel may hold more, because edge-triggered polling will not say so again.
///
/// A read that returns fewer bytes than asked for emptied the kernel's
/// buffer, so we stop there instead of paying one more `read` just to see
/// `WouldBlock`: with edge-triggered polling, bytes that arrive later raise
/// a new event (nginx does the same). The exception is a peer known to
/// have closed (`StreamInner::peer_closed`, from this event or an earlier
/// one): the FIN is already queued behind the data and will not raise
/// another event, so then we read on until EOF.
fn read_to_buffer(st: &mut StreamInner, target: Option<&ReadTarget>) -> Option<StreamError> {
    thread_local! {
        /// One read buffer per thread: the kernel copies into it, and only the
        /// bytes actually received are appended to the stream's own buffer,
        /// so an idle stream owns no 64 KiB chunk.
        static SCRATCH: RefCell<Vec<u8>> = RefCell::new(vec![0; READ_CHUNK_SIZE]);
    }
    SCRATCH.with(|scratch| {
        let mut scratch = scratch.borrow_mut();
        loop {
            let buffered = st.read_buf.len() - st.read_pos;
            if buffered >= st.max_buffer_size {
                st.readable_pending = true;
                return None;
            }
            // (Size first: the search only matters with a chunk buffered.)
            if buffered >= READ_CHUNK_SIZE
                && target.is_none_or(|t| matches!(find_read(st, t), Found::Ready(_)))
            {
                st.readable_pending = true;
                return None;
            }
            let want = READ_CHUNK_SIZE.min(st.max_buffer_size - buffered);
            let Some(socket) = st.socket.as_mut() else {
                return Some(StreamError::Closed);
            };
            match socket.read(&mut scratch[..want]) {
                Ok(0) => {
                    st.readable_pending = false;
                    return Some(StreamError::Closed);
                }
                Ok(n) => {
                    if st.read_buf.capacity() == 0 {
                        // Handed over whole by the last `consume`.
                        st.read_buf = spare::take();
                    }
                    st.read_buf.extend_from_slice(&scratch[..n]);
                    if n < want && !st.peer_closed {
                        st.readable_pending = false;
                        return None;
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    st.readable_pending = false;
                    return None;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    st.readable_pending = false;
                    return Some(e.into());
                }
            }
        }
    })
}

impl OnReady for RefCell<StreamInner> {
    fn on_ready(self: Rc<Self>, ready: Ready) {
        handle_events(&self, ready);
    }
}

/// The readiness handler registered with the loop.
fn handle_events(inner: &Rc<RefCell<StreamInner>>, ready: Ready) {
    let mut st = inner.borrow_mut();
    if st.closed.is_some() {
        return;
    }
    if st.connect_callback.is_some() {
        if !(ready.writable || ready.error || ready.hup) {
            return;
        }
        finish_connect(&mut st);
        if st.closed.is_some() {
            return;
        }
    }
    if ready.writable {
        st.write_blocked = false;
        if st.write_buf.len > 0 {
            flush(&mut st);
            if st.closed.is_some() {
                return;
            }
        }
    }
    if ready.readable || ready.hup || ready.error {
        if st.read_failed || st.input_ended {
            return;
        }
        st.peer_closed |= ready.hup || ready.error;
        let met = handle_read(&mut st, Delivery::ToCaller);
        // The loop is dispatching this event: nothing of the user's is on
        // the stack and the borrow is released, so a read met by the bytes
        // just received is delivered here, not queued (see the invariants).
        drop(st);
        if let Some((completion, data)) = met {
            completion.complete(Ok(data));
        }
    }
}

/// How [`handle_read`] hands over a read the new bytes met.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Delivery {
    /// Through the loop's callback queue (the caller is inside user code).
    Queued,
    /// Back to the caller, who runs it once the stream's borrow is released
    /// (the caller is the loop's event dispatch).
    ToCaller,
}

/// Readable: pull bytes in (on to EOF once the peer is known to have
/// closed, `StreamInner::peer_closed`), then see whether the pending read
/// is met. With [`Delivery::ToCaller`], a read met with data is returned instead of
/// queued; failures are always queued.
fn handle_read(st: &mut StreamInner, delivery: Delivery) -> Option<(ReadCompletion, Vec<u8>)> {
    // Take the pending read out while reading (no clone of its delimiter),
    // and put it back before anything else can look at it.
    let read = st.read.take();
    let eof = read_to_buffer(st, read.as_ref().map(|(t, _)| t));
    st.read = read;
    let (met, delivered) = match try_satisfy_read(st, delivery) {
        ReadOutcome::Met(completion, data) => (Some((completion, data)), true),
        ReadOutcome::Queued => (None, true),
        ReadOutcome::Pending => (None, false),
    };
    if eof == Some(StreamError::Closed) && delivered {
        // A FIN right behind the bytes of the read just completed: close
        // after its callback, so that its answer goes out.
        end_input_after_this_read(st);
    } else if let Some(err) = eof {
        // A pending read_until_close gets what there is (close_pending_read).
        if !matches!(err, StreamError::Closed) {
            log::debug!("{:?}: read error: {err}", st.peer);
        }
        close_inner(st, err);
    }
    met
}

/// A read was just asked for: serve it from the buffer, or read the socket
/// now if the kernel may be holding bytes we have not picked up.
fn try_inline_read(st: &mut StreamInner) {
    if !matches!(try_satisfy_read(st, Delivery::Queued), ReadOutcome::Pending) {
        return;
    }
    if st.closed.is_some() {
        close_pending_read(st);
        return;
    }
    if st.input_ended {
        // Nothing more will come: the read gets what there is or fails.
        close_pending_read(st);
        close_after_flush(st);
        return;
    }
    if st.readable_pending && !st.read_failed {
        handle_read(st, Delivery::Queued);
    }
}

/// The peer's EOF came with the bytes of a read being completed now: read
/// no more, and close on the next iteration (after the read's callback, and
/// once what it wrote is flushed) instead of now.
fn end_input_after_this_read(st: &mut StreamInner) {
    st.input_ended = true;
    let me = st.me.clone();
    st.ioloop.add_callback(move || {
        if let Some(inner) = me.upgrade() {
            let mut st = inner.borrow_mut();
            if st.closed.is_none() {
                close_pending_read(&mut st);
                close_after_flush(&mut st);
            }
        }
    });
}

/// [`IOStream::try_read`] after the peer's EOF (`input_ended`) with a
/// target the buffer cannot meet: `read_until_close` gets what is left,
/// any other read fails with [`StreamError::Closed`]; the stream closes
/// once its writes are out.
fn end_input(st: &mut StreamInner, target: &ReadTarget) -> Result<Vec<u8>, StreamError> {
    let result = if *target == ReadTarget::UntilClose {
        let n = st.read_buf.len() - st.read_pos;
        Ok(consume(st, n))
    } else {
        Err(StreamError::Closed)
    };
    close_after_flush(st);
    result
}

/// Close now if nothing is queued, else once the write buffer is empty
/// (the stream keeps itself alive until then).
fn close_after_flush(st: &mut StreamInner) {
    if st.write_buf.len == 0 {
        close_inner(st, StreamError::Closed);
    } else {
        st.close_when_flushed = true;
        st.keep_alive = st.me.upgrade();
    }
}

/// What [`try_satisfy_read`] did with the pending read.
enum ReadOutcome {
    /// Not met yet (or no read pending): it stays.
    Pending,
    /// Done, its completion queued.
    Queued,
    /// Met, handed back for the caller to complete ([`Delivery::ToCaller`]).
    Met(ReadCompletion, Vec<u8>),
}

/// If the pending read is met (or can never be), take it. A met read is
/// queued, or handed back with [`Delivery::ToCaller`]; a failed one is
/// always queued.
fn try_satisfy_read(st: &mut StreamInner, delivery: Delivery) -> ReadOutcome {
    let Some((target, cb)) = st.read.take() else {
        return ReadOutcome::Pending;
    };
    match find_read(st, &target) {
        Found::NotYet => {
            st.read = Some((target, cb));
            ReadOutcome::Pending
        }
        Found::Ready(n) => {
            let data = consume(st, n);
            if delivery == Delivery::ToCaller {
                return ReadOutcome::Met(cb, data);
            }
            st.ioloop.add_callback(move || cb.complete(Ok(data)));
            ReadOutcome::Queued
        }
        Found::Failed(err) => {
            {
                let err = fail_read(st, err);
                let ioloop = st.ioloop.clone();
                let weak = st.me.clone();
                ioloop.add_callback(move || {
                    cb.complete(Err(err));
                    // The callback had its chance to write a reply; now
                    // close once that reply is out.
                    if let Some(inner) = weak.upgrade() {
                        IOStream { inner }.close_when_flushed();
                    }
                });
            }
            ReadOutcome::Queued
        }
    }
}

/// Finish the pending read because the stream is closed: a
/// `read_until_close` gets what is buffered (the close is what it waited
/// for; Tornado's `close` does the same), any other read gets the error.
fn close_pending_read(st: &mut StreamInner) {
    if let Some((target, cb)) = st.read.take() {
        let err = st.closed.clone().unwrap_or(StreamError::Closed);
        if target == ReadTarget::UntilClose && err == StreamError::Closed {
            let n = st.read_buf.len() - st.read_pos;
            let data = consume(st, n);
            st.ioloop.add_callback(move || cb.complete(Ok(data)));
        } else {
            st.ioloop.add_callback(move || cb.complete(Err(err)));
        }
    }
}

/// The write buffer is over its cap: close the stream (a peer that does not
/// read must not grow it without bound) and say why.
fn close_write_buffer_full(st: &mut StreamInner) -> StreamError {
    let err = StreamError::WriteBufferFull {
        max_write_buffer_size: st.max_write_buffer_size,
    };
    log::warn!("closing {:?}: {err}", st.peer);
    close_inner(st, err.clone());
    err
}

/// After queuing: write now if a lot is queued, else at the end of the
/// iteration (where the writes of one pass leave together).
fn flush_when_due(st: &mut StreamInner) {
    if st.write_buf.len >= EAGER_FLUSH_BYTES {
        flush(st);
    } else {
        schedule_flush(st);
    }
}

/// Queue a flush for the end of this iteration (once).
fn schedule_flush(st: &mut StreamInner) {
    if st.flush_scheduled || st.write_blocked {
        return;
    }
    let Some(inner) = st.me.upgrade() else { return };
    st.flush_scheduled = true;
    // Holds the stream alive until the flush ran: bytes queued just before
    // the last handle was dropped still leave. (The stream's own `Rc`, not
    // a boxed closure: see `EndOfIteration`.)
    st.ioloop.add_end_of_iteration_rc(inner);
}

/// The flush [`schedule_flush`] queued.
impl EndOfIteration for RefCell<StreamInner> {
    fn end_of_iteration(self: Rc<Self>) {
        let mut st = self.borrow_mut();
        st.flush_scheduled = false;
        if st.closed.is_none() && !st.write_blocked {
            flush(&mut st);
        }
    }
}

/// Write `data` to the socket until done or it would block (then
/// `write_blocked` is set); a failure closes the stream. Returns the bytes
/// sent. The caller has checked that nothing is queued ahead.
fn send_direct(st: &mut StreamInner, data: &[u8]) -> usize {
    let mut sent = 0;
    while sent < data.len() {
        let Some(socket) = st.socket.as_mut() else {
            break;
        };
        let result = socket.write(&data[sent..]);
        match after_write(st, result) {
            Wrote::Sent(n) => sent += n,
            Wrote::Again => {}
            Wrote::Stop => break,
        }
    }
    sent
}

/// What a socket write's result means for the stream.
enum Wrote {
    /// This many bytes went out.
    Sent(usize),
    /// Interrupted by a signal: try again.
    Again,
    /// Stop writing: the socket would block (`write_blocked` is now set) or
    /// failed (the stream is now closed).
    Stop,
}

/// Read a write's result: the one place that decides what `WouldBlock`, a
/// zero-byte write and an error do to the stream (for `flush` and
/// `send_direct` alike).
fn after_write(st: &mut StreamInner, result: io::Result<usize>) -> Wrote {
    match result {
        Ok(0) => {
            close_inner(
                st,
                StreamError::Io(io::ErrorKind::WriteZero, "write returned 0".into()),
            );
            Wrote::Stop
        }
        Ok(n) => Wrote::Sent(n),
        Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
            st.write_blocked = true;
            Wrote::Stop
        }
        Err(e) if e.kind() == io::ErrorKind::Interrupted => Wrote::Again,
        Err(e) => {
            log::debug!("{:?}: write error: {e}", st.peer);
            close_inner(st, e.into());
            Wrote::Stop
        }
    }
}

/// Write until the buffer is empty or the socket would block.
fn flush(st: &mut StreamInner) {
    while st.write_buf.len > 0 {
        let Some(socket) = st.socket.as_mut() else {
            return;
        };
        let result = {
            let mut slices: [IoSlice<'_>; MAX_IOVECS] = [IoSlice::new(&[]); MAX_IOVECS];
            let mut count = 0;
            for (i, chunk) in st.write_buf.chunks.iter().take(MAX_IOVECS).enumerate() {
                let from = if i == 0 { st.write_buf.front_sent } else { 0 };
                slices[i] = IoSlice::new(&chunk.bytes()[from..]);
                count += 1;
            }
            socket.write_vectored(&slices[..count])
        };
        match after_write(st, result) {
            Wrote::Sent(n) => {
                st.write_buf.advance(n);
                st.total_sent += n as u64;
            }
            Wrote::Again => {}
            Wrote::Stop if st.closed.is_some() => return,
            Wrote::Stop => break,
        }
    }
    while let Some((index, _)) = st.write_callbacks.front() {
        if *index > st.total_sent {
            break;
        }
        if let Some((_, cb)) = st.write_callbacks.pop_front() {
            st.ioloop.add_callback(cb);
        }
    }
    if st.write_buf.len == 0 {
        // Like the read buffer: an idle connection keeps no buffer memory.
        st.write_buf.chunks.release_room();
        if st.shutdown_when_flushed {
            st.shutdown_when_flushed = false;
            shutdown_socket_write(st);
        }
        if st.close_when_flushed {
            close_inner(st, StreamError::Closed);
        }
    }
}

/// Send FIN: no more bytes from us (the read half stays open).
fn shutdown_socket_write(st: &StreamInner) {
    if let Some(Socket::Tcp(s)) = &st.socket {
        let _ = s.shutdown(Shutdown::Write);
    }
}

/// The connect finished (writable) or failed (error/hup).
fn finish_connect(st: &mut StreamInner) {
    let Some(cb) = st.connect_callback.take() else {
        return;
    };
    let err = match st.socket.as_ref().map(|s| s.take_error()) {
        Some(Ok(None)) => match &st.socket {
            Some(Socket::Tcp(s)) => match s.peer_addr() {
                Ok(_) => None,
                Err(e) if e.kind() == io::ErrorKind::NotConnected => {
                    // Spurious wake-up before the handshake finished.
                    st.connect_callback = Some(cb);
                    return;
                }
                Err(e) => Some(StreamError::from(e)),
            },
            _ => None,
        },
        Some(Ok(Some(e))) | Some(Err(e)) => Some(StreamError::from(e)),
        None => Some(StreamError::Closed),
    };
    match err {
        None => {
            st.write_blocked = false;
            st.ioloop.add_callback(move || cb(Ok(())));
            if st.write_buf.len > 0 {
                flush(st);
            }
        }
        Some(e) => {
            log::debug!("connect to {:?} failed: {e}", st.peer);
            st.ioloop.add_callback({
                let e = e.clone();
                move || cb(Err(e))
            });
            close_inner(st, e);
        }
    }
}

/// Close: release the socket and the loop's handler, fail the pending read
/// (after giving it buffered data if that satisfies it), drop unsent bytes
/// and their callbacks, and queue the close callback.
fn close_inner(st: &mut StreamInner, why: StreamError) {
    if st.closed.is_some() {
        return;
    }
    // A read the buffer already satisfies gets its data first (Tornado).
    try_satisfy_read(st, Delivery::Queued);
    st.closed = Some(why);
    // Break the close_when_flushed self-reference. Never the last strong
    // reference here: whoever borrowed `st` holds one.
    let keep_alive = st.keep_alive.take();
    if let Some(mut socket) = st.socket.take() {
        let _ = st.ioloop.deregister(socket.source());
    }
    if let Some(token) = st.token.take() {
        st.ioloop.remove_handler(token);
    }
    close_pending_read(st);
    if let Some(cb) = st.connect_callback.take() {
        let err = st.closed.clone().unwrap_or(StreamError::Closed);
        st.ioloop.add_callback(move || cb(Err(err)));
    }
    st.write_buf = WriteBuffer::default();
    st.write_callbacks.clear();
    // Unconsumed bytes stay readable: the peer may send its last lines and
    // close at once, and a read asked for after that (say, in the callback
    // of the read before) must still get them. Tornado keeps its read
    // buffer on close too. They are freed with the stream.
    if st.read_pos == st.read_buf.len() {
        st.read_buf = Vec::new();
        st.read_pos = 0;
    }
    if let Some(cb) = st.close_callback.take() {
        st.ioloop.add_callback(cb);
    }
    drop(keep_alive);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn find_byte_agrees_with_a_plain_scan() {
        // Every position in and around a word boundary, with decoys of
        // neighbouring values (a borrow from 0x00 lanes, 0x80 lanes) before
        // and after the match.
        for len in 0..40 {
            for at in 0..=len {
                for filler in [0u8, b'a', 0x80, 0xff, b'\n' + 1, b'\n' - 1] {
                    let mut hay = vec![filler; len];
                    if at < len {
                        hay[at] = b'\n';
                        if at + 1 < len {
                            hay[at + 1] = b'\n';
                        }
                    }
                    let plain = hay.iter().position(|&b| b == b'\n');
                    assert_eq!(find_byte(&hay, b'\n'), plain, "len {len} at {at}");
                }
            }
        }
        assert_eq!(find_byte(b"\x00\x01\x00", 0), Some(0));
        assert_eq!(
            find_byte(b"\x01\x01\x01\x01\x01\x01\x01\x01\x00", 0),
            Some(8)
        );
    }

    #[test]
    fn find_empty_line_accepts_crlf_and_bare_lf() {
        assert_eq!(find_empty_line(b"a\r\n\r\n"), Some(5));
        assert_eq!(find_empty_line(b"a\n\n"), Some(3));
        assert_eq!(find_empty_line(b"a\n\r\nb"), Some(4));
        assert_eq!(find_empty_line(b"a\r\n\nb"), Some(4));
        // An LF at the very end might still be followed by the rest.
        assert_eq!(find_empty_line(b"a\r\nb\r\n"), None);
        assert_eq!(find_empty_line(b"a\r\n\r"), None);
        // A lone CR is not a line end.
        assert_eq!(find_empty_line(b"a\r\r\n"), None);
        assert_eq!(find_empty_line(b""), None);
    }

    #[test]
    fn find_subslice_finds_the_first_match() {
        assert_eq!(find_subslice(b"abc", b""), Some(0));
        assert_eq!(find_subslice(b"", b"a"), None);
        assert_eq!(find_subslice(b"abc", b"c"), Some(2));
        assert_eq!(find_subslice(b"a\r\n\r\n", b"\r\n\r\n"), Some(1));
        // A false start right before the real match.
        assert_eq!(find_subslice(b"\r\n\r\r\n\r\n", b"\r\n\r\n"), Some(3));
        assert_eq!(find_subslice(b"\r\n\r", b"\r\n\r\n"), None);
        assert_eq!(find_subslice(b"abab", b"abab"), Some(0));
        assert_eq!(find_subslice(b"aab", b"ab"), Some(1));
        assert_eq!(find_subslice(b"ab", b"abc"), None);
    }
}
