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
//!   `readable_pending` and resumes when a read is next asked for — except
//!   once the peer has closed: then it reads on to the EOF even with no
//!   read pending, and a full buffer nobody reads closes the stream, so
//!   a peer that left is always noticed. Writes go until `WouldBlock`,
//!   then wait for the writable edge.
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
//!
//! # Where the parts live
//!
//! Each file under `src/iostream/` holds one idea; this one holds the
//! stream's state (`StreamInner`), its constructors and this map.
//!
//! | file in `src/iostream/` | what it holds                                                 | Tornado (`iostream.py`)              |
//! |-------------------------|---------------------------------------------------------------|--------------------------------------|
//! | `read.rs`               | [`ReadTarget`], read callbacks and handlers, the read methods | `read_until`, `read_bytes`, …        |
//! | `read_find.rs`          | is the pending read met? the delimiter and empty-line scans   | `_find_read_pos`                     |
//! | `read_buffer.rs`        | socket → read buffer → a read's bytes                         | `_read_to_buffer`, `_consume`        |
//! | `read_deliver.rs`       | completing the pending read (`try_satisfy_read`)              | `_handle_read`, `_try_inline_read`   |
//! | `write.rs`              | the write methods                                             | `write`                              |
//! | `write_buffer.rs`       | the queue of outgoing chunks                                  | `_StreamBuffer`                      |
//! | `flush.rs`              | write buffer → socket, at the end of the iteration            | `_handle_write`                      |
//! | `events.rs`             | the readiness handler (`handle_events`)                       | `_handle_events`                     |
//! | `connect.rs`            | [`IOStream::connect`] and its completion                      | `connect`, `_handle_connect`         |
//! | `close.rs`              | close, close callbacks, `close_when_flushed`, half-close      | `close`, `_maybe_run_close_callback` |
//! | `error.rs`              | [`StreamError`]                                               | `StreamClosedError`, …               |
//! | `socket.rs`             | the TCP or Unix socket under a stream                         | `read_from_fd`, `write_to_fd`        |
//! | `spare.rs`              | per-thread spare byte buffers that completed reads hand out   | —                                    |

use std::cell::RefCell;
use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::rc::{Rc, Weak};

use mio::net::TcpStream;
#[cfg(unix)]
use mio::net::UnixStream;
use mio::{Interest, Token};

use crate::ioloop::IOLoop;

mod close;
mod connect;
mod error;
mod events;
mod flush;
mod read;
mod read_buffer;
mod read_deliver;
mod read_find;
mod socket;
pub(crate) mod spare;
mod write;
mod write_buffer;

pub use connect::ConnectCallback;
pub use error::StreamError;
use read::ReadCompletion;
pub use read::{ReadCallback, ReadHandler, ReadTarget};
use socket::Socket;
use write_buffer::WriteBuffer;

/// Default cap on the read buffer: 100 MiB (Tornado's `max_buffer_size`).
pub const DEFAULT_MAX_BUFFER_SIZE: usize = 100 * 1024 * 1024;

/// Default cap on the write buffer: 100 MiB. Tornado leaves it unbounded;
/// an unbounded buffer is how one slow reader eats a server's memory.
pub const DEFAULT_MAX_WRITE_BUFFER_SIZE: usize = 100 * 1024 * 1024;

/// Bytes asked of the kernel per `read` call (Tornado's `read_chunk_size`).
pub const READ_CHUNK_SIZE: usize = 64 * 1024;

/// What one queued chunk costs besides its bytes: its slot in the write
/// queue, counted twice because the queue (a `VecDeque`) grows by doubling
/// and may have as many free slots as used ones. It matters for chunks
/// shared with other streams ([`IOStream::write_shared`]), which are never
/// coalesced: ten thousand 2-byte broadcast frames are 20 KB of bytes but
/// ten thousand slots.
pub const QUEUED_CHUNK_COST: usize = 2 * std::mem::size_of::<write_buffer::Chunk>();

/// Everything a stream knows. Only this module and its files under
/// `src/iostream/` touch it, and never while a user callback runs (see the
/// module invariants).
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
}

impl fmt::Debug for IOStream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.inner.try_borrow() {
            Ok(st) => write!(f, "IOStream({:?}, closed={})", st.peer, st.closed.is_some()),
            Err(_) => write!(f, "IOStream(<busy>)"),
        }
    }
}
