//! Listen, accept, and hand each connection over as an [`IOStream`].
//!
//! Mirrors Tornado's `tornado/tcpserver.py` plus the socket helpers of
//! `tornado/netutil.py` (`bind_sockets`, `add_accept_handler`).
//!
//! ```text
//!  listen socket ──readable──▶ accept until WouldBlock (≤ ACCEPTS_PER_EVENT,
//!                               then continue on the next iteration)
//!                                   │ each connection
//!                                   ▼
//!          IOStream::accepted(socket, addr) ──▶ handle_stream(stream, addr)
//! ```
//!
//! When `accept` fails because the process (EMFILE) or the system (ENFILE,
//! ENOBUFS, ENOMEM) is out of resources, the listener is not drained, so —
//! being edge-triggered — it would never wake us again; and retrying at
//! once would spin at 100% CPU. So the server logs, waits (10 ms doubling
//! up to 1 s), and tries again from a timer, Tornado-issue-#1200 style. An
//! error it does not know is handled the same way, so the connections
//! still queued are never stranded. An error that belongs to one pending
//! connection (Linux reports the peer's network errors from `accept`,
//! accept(2)) skips that connection and goes on.

use std::cell::{Cell, RefCell};
use std::io;
use std::net::{SocketAddr, ToSocketAddrs};
use std::rc::Rc;
use std::time::Duration;

use mio::net::TcpListener;
use mio::{Interest, Token};

use crate::ioloop::{IOLoop, TimeoutHandle};
use crate::iostream::IOStream;

/// Default listen backlog. Tornado uses 128, which drops connections under
/// a burst; the kernel clamps this to `net.core.somaxconn` (4096 on
/// current Linux).
pub const DEFAULT_BACKLOG: i32 = 4096;

/// At most this many accepts per readiness event, then the rest on the next
/// loop iteration, so a connection storm cannot starve established clients
/// (Tornado's `_DEFAULT_BACKLOG` plays this role in `add_accept_handler`).
pub const ACCEPTS_PER_EVENT: usize = 128;

/// First and last wait after running out of file descriptors.
const EMFILE_BACKOFF_MIN: Duration = Duration::from_millis(10);
const EMFILE_BACKOFF_MAX: Duration = Duration::from_secs(1);

/// How to bind a listening socket.
#[derive(Clone, Debug)]
pub struct BindOptions {
    /// Listen queue length (see [`DEFAULT_BACKLOG`]).
    pub backlog: i32,
    /// Set `SO_REUSEPORT`, so several processes can listen on one port and
    /// the kernel spreads connections among them (Linux).
    pub reuse_port: bool,
    /// TCP keep-alive probes on every accepted connection, so a peer that
    /// vanished without a FIN is noticed (`None`: the kernel's default,
    /// which is off; Tornado sets none either).
    pub keepalive: Option<TcpKeepalive>,
}

impl Default for BindOptions {
    fn default() -> BindOptions {
        BindOptions {
            backlog: DEFAULT_BACKLOG,
            reuse_port: false,
            keepalive: None,
        }
    }
}

/// TCP keep-alive for the connections a listener accepts.
///
/// A peer that vanished without a FIN or an RST (power cut, a laptop lid,
/// a NAT box that forgot the flow) sends nothing more, so a connection
/// that waits for it (a parked long-poll, an idle keep-alive or telnet
/// session) would wait forever: nothing on the wire tells the server. With
/// keep-alive on, once the connection has carried nothing either way for
/// `idle`, the kernel sends an empty probe, then one every `interval`:
///
/// ```text
///  silent for idle ──▶ probe ──ACK──▶ (alive: silent for idle again)
///                        │ RST (the peer's host forgot the connection)
///                        ├────────▶ socket fails now: ECONNRESET
///                        │ no answer
///                        └─ every interval; `probes` unanswered in a row
///                           ──▶ socket fails: ETIMEDOUT
/// ```
///
/// The failure reaches the loop as a readable event; the read fails, the
/// stream closes with [`StreamError::Io`](crate::iostream::StreamError)
/// and its close callback runs, as for any hang-up. WebSocket pings do the
/// same job one layer up, and also catch a peer whose kernel is alive but
/// whose program is stuck; this catches the rest, for every protocol.
///
/// Whole seconds only (the kernel's unit): a fraction is dropped. `idle`
/// and `interval` must be at least 1 s and `probes` at least 1; the kernel
/// refuses 0, and [`bind_socket`] returns its `InvalidInput` error.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TcpKeepalive {
    /// Silence, both ways, before the first probe (`TCP_KEEPIDLE`).
    pub idle: Duration,
    /// Time between unanswered probes (`TCP_KEEPINTVL`).
    pub interval: Duration,
    /// Unanswered probes in a row that end the connection (`TCP_KEEPCNT`).
    pub probes: u32,
}

impl TcpKeepalive {
    /// Default time between unanswered probes, when [`after`](Self::after)
    /// is given a longer `idle`.
    pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(10);
    /// Default count of unanswered probes (the kernel's own default is 9,
    /// with a 75 s interval: 11 minutes).
    pub const DEFAULT_PROBES: u32 = 6;

    /// Probe after `idle` of silence, then every
    /// [`DEFAULT_INTERVAL`](Self::DEFAULT_INTERVAL) (or `idle`, if
    /// shorter), [`DEFAULT_PROBES`](Self::DEFAULT_PROBES) times.
    pub fn after(idle: Duration) -> TcpKeepalive {
        TcpKeepalive {
            idle,
            interval: idle.min(Self::DEFAULT_INTERVAL),
            probes: Self::DEFAULT_PROBES,
        }
    }

    /// The longest a vanished peer that answers nothing can hold its
    /// connection once the connection went silent: `idle` plus every probe
    /// interval. A peer whose host answers with an RST goes at the first
    /// probe.
    pub fn gives_up_after(&self) -> Duration {
        self.idle + self.interval * self.probes
    }

    fn to_socket2(self) -> socket2::TcpKeepalive {
        socket2::TcpKeepalive::new()
            .with_time(self.idle)
            .with_interval(self.interval)
            .with_retries(self.probes)
    }
}

/// Settings applied to every accepted stream.
#[derive(Clone, Debug)]
pub struct StreamOptions {
    /// Read buffer cap for each connection.
    pub max_buffer_size: usize,
    /// Write buffer cap for each connection.
    pub max_write_buffer_size: usize,
}

impl Default for StreamOptions {
    fn default() -> StreamOptions {
        StreamOptions {
            max_buffer_size: crate::iostream::DEFAULT_MAX_BUFFER_SIZE,
            max_write_buffer_size: crate::iostream::DEFAULT_MAX_WRITE_BUFFER_SIZE,
        }
    }
}

/// Bind a non-blocking listening socket on `addr` (Tornado's
/// `bind_sockets`, for one address): `SO_REUSEADDR` always, `IPV6_V6ONLY` on
/// IPv6 so a v4 socket can share the port, `SO_REUSEPORT` and TCP
/// keep-alive if asked.
pub fn bind_socket(addr: SocketAddr, options: &BindOptions) -> io::Result<TcpListener> {
    use socket2::{Domain, Protocol, Socket, Type};
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    socket.set_reuse_address(true)?;
    if addr.is_ipv6() {
        socket.set_only_v6(true)?;
    }
    #[cfg(unix)]
    if options.reuse_port {
        socket.set_reuse_port(true)?;
    }
    if let Some(keepalive) = options.keepalive {
        // Set once, on the listener: Linux copies `SO_KEEPALIVE` and the
        // three `TCP_KEEP*` values to every socket `accept` returns
        // (`tcp_create_openreq_child`), so no connection costs a syscall
        // for it (test `accepted_connections_inherit_the_listeners_keepalive`).
        socket.set_tcp_keepalive(&keepalive.to_socket2())?;
    }
    socket.set_nonblocking(true)?;
    socket.bind(&addr.into())?;
    socket.listen(options.backlog)?;
    Ok(TcpListener::from_std(socket.into()))
}

/// Called with each accepted connection.
type StreamHandler = Box<dyn FnMut(IOStream, SocketAddr)>;

/// One listening socket and its registration.
struct Listener {
    /// The socket.
    socket: TcpListener,
    /// Its token on the loop.
    token: Token,
}

/// The server's state, shared with the accept handlers and timers.
struct ServerInner {
    /// The loop the server accepts on.
    ioloop: IOLoop,
    /// Listening sockets (one per address).
    listeners: RefCell<Vec<Listener>>,
    /// The application's `handle_stream`.
    handle_stream: RefCell<StreamHandler>,
    /// Applied to each accepted stream.
    stream_options: StreamOptions,
    /// Current wait after EMFILE/ENFILE (grows while it persists).
    backoff: Cell<Duration>,
    /// Pending retry after running out of descriptors (accepting paused).
    retry: Cell<Option<TimeoutHandle>>,
    /// Connections accepted so far (for metrics).
    accepted: Cell<u64>,
}

/// A TCP server: give it a `handle_stream` function and `listen`.
///
/// ```no_run
/// use squall::{ioloop::IOLoop, tcpserver::TCPServer};
/// let server = TCPServer::new(|stream, addr| {
///     println!("connection from {addr}");
///     stream.write(b"hello\n".to_vec()).ok();
///     stream.close_when_flushed();
/// });
/// server.listen("127.0.0.1:8889".parse().unwrap()).unwrap();
/// IOLoop::current().start();
/// ```
#[derive(Clone)]
pub struct TCPServer {
    inner: Rc<ServerInner>,
}

impl TCPServer {
    /// A server on the current loop that passes each connection to
    /// `handle_stream`.
    pub fn new(handle_stream: impl FnMut(IOStream, SocketAddr) + 'static) -> TCPServer {
        Self::with_options(StreamOptions::default(), handle_stream)
    }

    /// Like [`new`](Self::new), with per-stream limits.
    pub fn with_options(
        stream_options: StreamOptions,
        handle_stream: impl FnMut(IOStream, SocketAddr) + 'static,
    ) -> TCPServer {
        TCPServer {
            inner: Rc::new(ServerInner {
                ioloop: IOLoop::current(),
                listeners: RefCell::new(Vec::new()),
                handle_stream: RefCell::new(Box::new(handle_stream)),
                stream_options,
                backoff: Cell::new(EMFILE_BACKOFF_MIN),
                retry: Cell::new(None),
                accepted: Cell::new(0),
            }),
        }
    }

    /// Bind `addr` with default options and start accepting. Returns the
    /// bound address (useful with port 0).
    pub fn listen(&self, addr: SocketAddr) -> io::Result<SocketAddr> {
        self.bind(addr, &BindOptions::default())
    }

    /// Resolve `host` and bind every address it names on `port` (Tornado
    /// binds each address family). With port 0 the first ephemeral port is
    /// reused for the others. Resolution may block: call before `start`.
    pub fn listen_host(
        &self,
        host: &str,
        port: u16,
        options: &BindOptions,
    ) -> io::Result<Vec<SocketAddr>> {
        let mut bound: Vec<SocketAddr> = Vec::new();
        let mut port = port;
        let mut addrs: Vec<SocketAddr> = (host, port).to_socket_addrs()?.collect();
        addrs.dedup();
        for mut addr in addrs {
            addr.set_port(port);
            let local = self.bind(addr, options)?;
            port = local.port();
            bound.push(local);
        }
        if bound.is_empty() {
            return Err(io::Error::new(
                io::ErrorKind::NotFound,
                format!("{host} resolves to no address"),
            ));
        }
        Ok(bound)
    }

    /// Bind one address with `options` and start accepting on it.
    pub fn bind(&self, addr: SocketAddr, options: &BindOptions) -> io::Result<SocketAddr> {
        let socket = bind_socket(addr, options)?;
        self.add_socket(socket)
    }

    /// Start accepting on an already-bound, non-blocking listener (for
    /// sockets made elsewhere, e.g. inherited or `SO_REUSEPORT` groups).
    pub fn add_socket(&self, mut socket: TcpListener) -> io::Result<SocketAddr> {
        let local = socket.local_addr()?;
        // The loop's handler owns the server (as in Tornado, where the IOLoop
        // references the accept handler): a listening server lives until
        // `stop`, even if the caller drops its `TCPServer`.
        let server = Rc::clone(&self.inner);
        let token =
            self.inner
                .ioloop
                .add_handler(&mut socket, Interest::READABLE, move |_ready| {
                    accept_ready(&server);
                })?;
        self.inner
            .listeners
            .borrow_mut()
            .push(Listener { socket, token });
        Ok(local)
    }

    /// Stop accepting: close the listening sockets and release the server.
    /// Connections already accepted go on (Tornado's `TCPServer.stop`).
    pub fn stop(&self) {
        let listeners = std::mem::take(&mut *self.inner.listeners.borrow_mut());
        for mut l in listeners {
            let _ = self.inner.ioloop.deregister(&mut l.socket);
            self.inner.ioloop.remove_handler(l.token);
        }
        if let Some(h) = self.inner.retry.take() {
            self.inner.ioloop.remove_timeout(h);
        }
    }

    /// Addresses currently listened on.
    pub fn local_addrs(&self) -> Vec<SocketAddr> {
        self.inner
            .listeners
            .borrow()
            .iter()
            .filter_map(|l| l.socket.local_addr().ok())
            .collect()
    }

    /// Connections accepted since start.
    pub fn accepted(&self) -> u64 {
        self.inner.accepted.get()
    }
}

/// A listener is readable: accept what is waiting, on every listener (they
/// share one handler body; an extra accept attempt just sees WouldBlock).
fn accept_ready(server: &Rc<ServerInner>) {
    if server.retry.get().is_some() {
        // Paused after EMFILE: the retry timer will drain the queue.
        return;
    }
    let mut accepted: Vec<(mio::net::TcpStream, SocketAddr)> = Vec::new();
    let mut more = false;
    // Why accepting must pause (and retry from a timer), if it must.
    let mut pause: Option<io::Error> = None;
    {
        let listeners = server.listeners.borrow();
        'listeners: for l in listeners.iter() {
            loop {
                if accepted.len() >= ACCEPTS_PER_EVENT {
                    more = true;
                    break 'listeners;
                }
                match l.socket.accept() {
                    Ok(pair) => accepted.push(pair),
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) => match AcceptError::of(&e) {
                        // That connection is gone (the peer gave up between
                        // SYN and accept, or its network failed): next one.
                        AcceptError::ThisConnection => {}
                        AcceptError::OutOfResources | AcceptError::Unknown => {
                            pause = Some(e);
                            break 'listeners;
                        }
                    },
                }
            }
        }
    }
    for (socket, addr) in accepted {
        server.accepted.set(server.accepted.get() + 1);
        // Small responses should leave at once, not wait for Nagle.
        let _ = socket.set_nodelay(true);
        match IOStream::accepted(socket, addr) {
            Ok(stream) => {
                stream.set_max_buffer_size(server.stream_options.max_buffer_size);
                stream.set_max_write_buffer_size(server.stream_options.max_write_buffer_size);
                let mut handle = server.handle_stream.borrow_mut();
                (*handle)(stream, addr);
            }
            Err(e) => log::error!("cannot register connection from {addr}: {e}"),
        }
    }
    if let Some(e) = pause {
        let wait = server.backoff.get();
        match AcceptError::of(&e) {
            AcceptError::OutOfResources => log::warn!(
                "accept failed: {e}; out of resources, pausing accepts for {} ms",
                wait.as_millis()
            ),
            _ => log::error!(
                "accept failed: {e}; pausing accepts for {} ms",
                wait.as_millis()
            ),
        }
        server.backoff.set((wait * 2).min(EMFILE_BACKOFF_MAX));
        let again = Rc::clone(server);
        let handle = server.ioloop.call_later(wait, move || {
            again.retry.set(None);
            accept_ready(&again);
        });
        server.retry.set(Some(handle));
        return;
    }
    server.backoff.set(EMFILE_BACKOFF_MIN);
    if more {
        // Edge-triggered: no new event will come for connections already
        // queued, so continue on the next iteration.
        let again = Rc::clone(server);
        server.ioloop.add_callback(move || accept_ready(&again));
    }
}

/// EMFILE (process limit) or ENFILE (system limit).
/// What a failed `accept` means for the loop over the queue.
#[derive(Debug, PartialEq, Eq)]
enum AcceptError {
    /// One pending connection failed: skip it and accept the next.
    /// `ECONNABORTED`, and the network errors Linux passes on from the
    /// new socket (accept(2): "should treat them like EAGAIN by retrying").
    ThisConnection,
    /// The process or the kernel is out of descriptors or buffers
    /// (`EMFILE`, `ENFILE`, `ENOBUFS`, `ENOMEM`): retrying at once would
    /// fail again, so pause.
    OutOfResources,
    /// Anything else: pause too, rather than strand the queue (no new edge
    /// comes for connections already waiting) or spin.
    Unknown,
}

impl AcceptError {
    fn of(e: &io::Error) -> AcceptError {
        if e.kind() == io::ErrorKind::ConnectionAborted {
            return AcceptError::ThisConnection;
        }
        match e.raw_os_error() {
            Some(libc::EMFILE | libc::ENFILE | libc::ENOBUFS | libc::ENOMEM) => {
                AcceptError::OutOfResources
            }
            Some(
                libc::ENETDOWN
                | libc::EPROTO
                | libc::ENOPROTOOPT
                | libc::EHOSTDOWN
                | libc::EHOSTUNREACH
                | libc::EOPNOTSUPP
                | libc::ENETUNREACH,
            ) => AcceptError::ThisConnection,
            _ => AcceptError::Unknown,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn os(code: i32) -> AcceptError {
        AcceptError::of(&io::Error::from_raw_os_error(code))
    }

    #[test]
    fn accept_errors_skip_one_connection_pause_or_never_strand_the_queue() {
        // A pending connection's own failure: go on with the next one.
        for code in [
            libc::ECONNABORTED,
            libc::EPROTO,
            libc::ENETUNREACH,
            libc::EHOSTDOWN,
        ] {
            assert_eq!(os(code), AcceptError::ThisConnection, "errno {code}");
        }
        // Out of descriptors or kernel memory: pause and retry.
        for code in [libc::EMFILE, libc::ENFILE, libc::ENOBUFS, libc::ENOMEM] {
            assert_eq!(os(code), AcceptError::OutOfResources, "errno {code}");
        }
        // Unknown (a listener turned bad, a seccomp refusal): pause too,
        // which the caller does for both; only `ThisConnection` goes on.
        assert_eq!(os(libc::EPERM), AcceptError::Unknown);
        assert_eq!(os(libc::EINVAL), AcceptError::Unknown);
    }
}
