//! The client's reactor: a pool of non-blocking connections on one mio `Poll`.
//!
//! [`Pool::pump`] waits for readiness once, does the I/O (finish a connect,
//! flush pending writes, read what arrived) and then hands each ready
//! connection to the scenario's closure, which parses [`Conn::unread`] and
//! queues its next request with [`Conn::send`]. Scenario state lives beside
//! the pool in plain vectors indexed like `pool.conns`.
//!
//! Reads stop at `WouldBlock` or at a short read (the socket was drained at
//! that instant and the next arrival raises a new edge on Linux), which
//! halves the read syscalls on the hot path so the client stays lean.

use mio::net::TcpStream;
use mio::{Events, Interest, Poll, Token};
use std::io::{self, Read, Write};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

/// Never hold more than this many unread bytes for one connection.
const MAX_UNREAD: usize = 32 * 1024 * 1024;

/// One client connection and its buffers.
pub struct Conn {
    pub stream: Option<TcpStream>,
    /// Receive buffer: `rbuf[rpos..rlen]` is unread.
    rbuf: Vec<u8>,
    rpos: usize,
    rlen: usize,
    wbuf: Vec<u8>,
    wpos: usize,
    pub connected: bool,
    /// Set by the pool when the connect completed during this pump.
    pub just_connected: bool,
    /// The peer closed its side.
    pub eof: bool,
    /// Why the connection failed, if it did (the stream is then gone).
    pub error: Option<String>,
    /// When `add_conn` started the connect.
    pub started: Instant,
}

impl Conn {
    /// A connection over `stream`, or a dead one (`None`: the connect
    /// failed before there was a socket).
    fn new(stream: Option<TcpStream>) -> Conn {
        Conn {
            stream,
            rbuf: Vec::new(),
            rpos: 0,
            rlen: 0,
            wbuf: Vec::new(),
            wpos: 0,
            connected: false,
            just_connected: false,
            eof: false,
            error: None,
            started: Instant::now(),
        }
    }

    /// Bytes received and not yet consumed.
    pub fn unread(&self) -> &[u8] {
        &self.rbuf[self.rpos..self.rlen]
    }

    /// Mark `n` bytes of [`Conn::unread`] as used.
    pub fn consume(&mut self, n: usize) {
        self.rpos = (self.rpos + n).min(self.rlen);
        if self.rpos == self.rlen {
            self.rpos = 0;
            self.rlen = 0;
        }
    }

    /// Whether the connection is gone (failed, closed by us or reset).
    pub fn is_dead(&self) -> bool {
        self.stream.is_none()
    }

    /// Whether queued bytes are still waiting for the socket.
    pub fn write_pending(&self) -> bool {
        self.wpos < self.wbuf.len()
    }

    /// Queue bytes and try to write them now.
    pub fn send(&mut self, bytes: &[u8]) {
        if self.stream.is_none() {
            return;
        }
        self.wbuf.extend_from_slice(bytes);
        if self.connected {
            self.flush();
        }
    }

    fn fail(&mut self, why: String) {
        if self.error.is_none() {
            self.error = Some(why);
        }
        self.close();
    }

    /// Close abortively (RST): no `TIME_WAIT` left behind on our side.
    pub fn close(&mut self) {
        if let Some(s) = self.stream.take() {
            crate::sys::set_linger_zero(&s);
        }
        self.wbuf = Vec::new();
        self.wpos = 0;
    }

    /// Write queued bytes until done or `WouldBlock`.
    pub fn flush(&mut self) {
        while self.wpos < self.wbuf.len() {
            let Some(s) = self.stream.as_mut() else {
                return;
            };
            match s.write(&self.wbuf[self.wpos..]) {
                Ok(0) => return self.fail("write returned 0".into()),
                Ok(n) => self.wpos += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return self.fail(format!("write: {e}")),
            }
        }
        self.wbuf.clear();
        self.wpos = 0;
    }

    /// Read what has arrived (see the module note on short reads).
    fn read_some(&mut self) {
        loop {
            let Some(s) = self.stream.as_mut() else {
                return;
            };
            if self.rpos > 0 && self.rpos * 2 >= self.rbuf.len() {
                self.rbuf.copy_within(self.rpos..self.rlen, 0);
                self.rlen -= self.rpos;
                self.rpos = 0;
            }
            if self.rlen == self.rbuf.len() {
                if self.rlen - self.rpos >= MAX_UNREAD {
                    return self.fail("too much unread data".into());
                }
                let grow = (self.rbuf.len() * 2).clamp(4096, MAX_UNREAD);
                self.rbuf.resize(grow, 0);
            }
            let room = self.rbuf.len() - self.rlen;
            match s.read(&mut self.rbuf[self.rlen..]) {
                Ok(0) => {
                    self.eof = true;
                    return;
                }
                Ok(n) => {
                    self.rlen += n;
                    if n < room {
                        return;
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return self.fail(format!("read: {e}")),
            }
        }
    }
}

/// Many connections on one poll.
pub struct Pool {
    poll: Poll,
    events: Events,
    pub addr: SocketAddr,
    pub conns: Vec<Conn>,
}

impl Pool {
    pub fn new(addr: SocketAddr) -> Result<Pool, String> {
        Ok(Pool {
            poll: Poll::new().map_err(|e| format!("poll: {e}"))?,
            events: Events::with_capacity(4096),
            addr,
            conns: Vec::new(),
        })
    }

    /// Check the open-file limit before opening `n` more sockets.
    pub fn check_fd_budget(&self, n: usize) -> Result<(), String> {
        let limit = crate::sys::nofile_limit() as usize;
        if self.conns.len() + n + 32 > limit {
            return Err(format!(
                "{} connections need more than the open-file limit {limit} allows",
                self.conns.len() + n
            ));
        }
        Ok(())
    }

    /// Start a non-blocking connect; returns the connection's index.
    pub fn add_conn(&mut self) -> usize {
        let idx = self.conns.len();
        let c = self.connect(idx);
        self.conns.push(c);
        idx
    }

    /// A non-blocking connect registered under `Token(idx)`, or a dead
    /// connection that carries why it failed.
    fn connect(&mut self, idx: usize) -> Conn {
        match TcpStream::connect(self.addr) {
            Ok(mut s) => {
                s.set_nodelay(true).ok();
                let reg = self.poll.registry().register(
                    &mut s,
                    Token(idx),
                    Interest::READABLE | Interest::WRITABLE,
                );
                let mut c = Conn::new(Some(s));
                if let Err(e) = reg {
                    c.fail(format!("register: {e}"));
                }
                c
            }
            Err(e) => {
                let mut c = Conn::new(None);
                c.error = Some(format!("connect: {e}"));
                c
            }
        }
    }

    /// Replace connection `idx` with a fresh connect (after the server closed it).
    pub fn reconnect(&mut self, idx: usize) {
        if let Some(mut s) = self.conns[idx].stream.take() {
            let _ = self.poll.registry().deregister(&mut s);
        }
        self.conns[idx] = self.connect(idx);
    }

    /// Wait up to `timeout` for readiness, do the I/O, then call `on_ready`
    /// for every connection that had an event.
    pub fn pump<F: FnMut(usize, &mut Conn, Instant)>(
        &mut self,
        timeout: Duration,
        mut on_ready: F,
    ) {
        if let Err(e) = self.poll.poll(&mut self.events, Some(timeout)) {
            if e.kind() != io::ErrorKind::Interrupted {
                eprintln!("poll: {e}");
            }
            return;
        }
        for ev in self.events.iter() {
            let idx = ev.token().0;
            let Some(c) = self.conns.get_mut(idx) else {
                continue;
            };
            if c.stream.is_none() {
                continue;
            }
            if !c.connected {
                let Some(s) = c.stream.as_ref() else {
                    continue;
                };
                match s.take_error() {
                    Ok(Some(e)) | Err(e) => {
                        c.fail(format!("connect: {e}"));
                        on_ready(idx, c, Instant::now());
                        continue;
                    }
                    Ok(None) => {}
                }
                match s.peer_addr() {
                    Ok(_) => {
                        c.connected = true;
                        c.just_connected = true;
                    }
                    Err(e) if e.kind() == io::ErrorKind::NotConnected => {
                        if ev.is_error() || ev.is_read_closed() {
                            c.fail("connect: refused or reset".into());
                            on_ready(idx, c, Instant::now());
                        }
                        continue;
                    }
                    Err(e) => {
                        c.fail(format!("connect: {e}"));
                        on_ready(idx, c, Instant::now());
                        continue;
                    }
                }
            }
            if ev.is_writable() || c.just_connected {
                c.flush();
            }
            if ev.is_readable() || ev.is_read_closed() || ev.is_error() {
                c.read_some();
            }
            on_ready(idx, c, Instant::now());
            c.just_connected = false;
        }
    }

    /// Open `n` more connections, at most `batch` connects in flight at a
    /// time, so a server with a short listen queue is not flooded by the
    /// setup itself. Returns the indices of the new connections.
    pub fn open_paced(
        &mut self,
        n: usize,
        batch: usize,
        deadline: Instant,
    ) -> Result<std::ops::Range<usize>, String> {
        self.check_fd_budget(n)?;
        let first = self.conns.len();
        let end = first + n;
        let batch = batch.max(1);
        let mut next = first;
        loop {
            let pending = |conns: &[Conn]| {
                conns
                    .iter()
                    .filter(|c| !c.connected && !c.is_dead())
                    .count()
            };
            let start = batch
                .saturating_sub(pending(&self.conns[first..next]))
                .min(end - next);
            for _ in 0..start {
                self.add_conn();
                next += 1;
            }
            if next == end && pending(&self.conns[first..next]) == 0 {
                break;
            }
            if Instant::now() > deadline {
                break;
            }
            self.pump(Duration::from_millis(20), |_, _, _| {});
        }
        Ok(first..end)
    }

    /// Count of connections that completed their connect and are still open.
    pub fn live(&self, range: std::ops::Range<usize>) -> usize {
        self.conns[range]
            .iter()
            .filter(|c| c.connected && !c.is_dead())
            .count()
    }

    /// Close every connection abortively.
    pub fn close_all(&mut self) {
        for c in &mut self.conns {
            if let Some(s) = c.stream.as_mut() {
                let _ = self.poll.registry().deregister(s);
            }
            c.close();
        }
    }
}
