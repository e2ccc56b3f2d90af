//! The event loop: one thread, one mio `Poll`, edge-triggered.
//!
//! Each readiness event runs [`on_event`] for its connection (flush, read,
//! parse, answer). Messages posted meanwhile are queued in
//! [`Chat::pending`](crate::chat::Chat) and delivered by [`Server::deliver`]
//! right after the event, since delivering touches other connections: per
//! broadcast the long-poll answer and the WebSocket frame are each built
//! once, then written with one `write` per waiter or member.

use crate::chat::Chat;
use crate::conn::{Conn, MAX_UNWRITTEN};
use crate::{http, routes, ws};
use mio::net::TcpListener;
use mio::{Events, Interest, Poll, Token};
use std::io::{self, Read};

/// The listener's token; connections use their slab index.
const LISTENER: Token = Token(usize::MAX);

/// The whole server.
pub struct Server {
    /// One epoll set for the listener and every connection.
    poll: Poll,
    listener: TcpListener,
    /// Connections by token; `None` is a free slot.
    conns: Vec<Option<Conn>>,
    /// Free slots of `conns`, reused first so tokens stay dense.
    free: Vec<usize>,
    /// Rooms and gauges; apart from `conns` so both can be borrowed at once.
    chat: Chat,
    /// The one read buffer: the kernel copies into it and only the bytes
    /// received are appended to the connection's `rbuf`. Allocated and
    /// zeroed once, as squall's per-thread scratch is; a stack array here
    /// would be zeroed on every event (64 KiB of stores, ≈ 1 µs).
    scratch: Box<[u8]>,
}

/// Size of [`Server::scratch`]: the most one `read` takes.
const READ_CHUNK: usize = 65536;

impl Server {
    /// A server accepting on `listener` (see [`crate::listen::listen`]).
    pub fn new(mut listener: TcpListener) -> io::Result<Server> {
        let poll = Poll::new()?;
        poll.registry()
            .register(&mut listener, LISTENER, Interest::READABLE)?;
        Ok(Server {
            poll,
            listener,
            conns: Vec::new(),
            free: Vec::new(),
            chat: Chat::new(),
            scratch: vec![0; READ_CHUNK].into_boxed_slice(),
        })
    }

    /// Serve until `poll` fails.
    pub fn run(&mut self) -> io::Result<()> {
        let mut events = Events::with_capacity(1024);
        loop {
            if let Err(e) = self.poll.poll(&mut events, None) {
                if e.kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                return Err(e);
            }
            for ev in events.iter() {
                if ev.token() == LISTENER {
                    self.accept();
                    continue;
                }
                let idx = ev.token().0;
                let keep = match self.conns.get_mut(idx).and_then(Option::as_mut) {
                    Some(c) => on_event(
                        c,
                        &mut self.chat,
                        &mut self.scratch,
                        ev.is_readable() || ev.is_read_closed(),
                        ev.is_writable(),
                    ),
                    None => continue,
                };
                if !keep {
                    self.close(idx);
                }
                if !self.chat.pending.is_empty() {
                    self.deliver();
                }
            }
        }
    }

    /// Accept everything the queue holds.
    fn accept(&mut self) {
        loop {
            match self.listener.accept() {
                Ok((mut stream, _)) => {
                    stream.set_nodelay(true).ok();
                    let idx = self.free.pop().unwrap_or_else(|| {
                        self.conns.push(None);
                        self.conns.len() - 1
                    });
                    if self
                        .poll
                        .registry()
                        .register(
                            &mut stream,
                            Token(idx),
                            Interest::READABLE | Interest::WRITABLE,
                        )
                        .is_err()
                    {
                        self.free.push(idx);
                        continue;
                    }
                    self.conns[idx] = Some(Conn::new(stream, idx));
                    self.chat.connections += 1;
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                // EMFILE and friends: stop accepting this round.
                Err(_) => break,
            }
        }
    }

    /// Drop connection `idx`, leaving its room.
    fn close(&mut self, idx: usize) {
        let Some(mut c) = self.conns.get_mut(idx).and_then(Option::take) else {
            return;
        };
        if let Some(p) = c.parked.take() {
            if let Some(moved) = self.chat.unpark(p.room, p.slot) {
                if let Some(m) = self.conn(moved).and_then(|m| m.parked.as_mut()) {
                    m.slot = p.slot;
                }
            }
        }
        if let Some(w) = c.ws.take() {
            if let Some(moved) = self.chat.leave(w.room, w.slot) {
                if let Some(m) = self.conn(moved).and_then(|m| m.ws.as_mut()) {
                    m.slot = w.slot;
                }
            }
        }
        let _ = self.poll.registry().deregister(&mut c.stream);
        self.free.push(idx);
        self.chat.connections -= 1;
    }

    /// Connection `idx`, if open.
    fn conn(&mut self, idx: usize) -> Option<&mut Conn> {
        self.conns.get_mut(idx).and_then(Option::as_mut)
    }

    /// Deliver every queued broadcast. Bounded: each was posted by input
    /// already read, and handling an answered waiter's pipelined requests
    /// only consumes more of it.
    fn deliver(&mut self) {
        while let Some(b) = self.chat.pending.pop_front() {
            let mut closing = Vec::new();
            let mut resume = Vec::new();
            let waiters = self.chat.take_waiters(b.room);
            if !waiters.is_empty() {
                let answer = routes::updates_answer(&b.message);
                for &idx in &waiters {
                    let Some(c) = self.conns.get_mut(idx).and_then(Option::as_mut) else {
                        continue;
                    };
                    let close = c.parked.take().is_some_and(|p| p.close);
                    if c.send(&answer).is_err() {
                        closing.push(idx);
                    } else if close {
                        c.close_after_write = true;
                        c.rbuf.clear();
                        if c.unwritten() == 0 {
                            closing.push(idx);
                        }
                    } else if !c.rbuf.is_empty() || c.input_pending {
                        resume.push(idx);
                    }
                }
                self.chat.recycle_waiters(b.room, waiters);
            }
            let members = &self.chat.get(b.room).members;
            if !members.is_empty() {
                let mut frame = Vec::with_capacity(b.message.json.len() + 10);
                ws::encode(&mut frame, ws::OP_TEXT, &b.message.json);
                for &idx in members {
                    let Some(c) = self.conns.get_mut(idx).and_then(Option::as_mut) else {
                        continue;
                    };
                    // A member this far behind is dropped rather than buffered without bound.
                    if c.send(&frame).is_err() || c.unwritten() > MAX_UNWRITTEN {
                        closing.push(idx);
                    }
                }
            }
            for idx in closing {
                self.close(idx);
            }
            // Answered waiters with requests queued behind the parked one.
            for idx in resume {
                let keep = match self.conns.get_mut(idx).and_then(Option::as_mut) {
                    Some(c) => {
                        c.input_pending = true;
                        on_event(c, &mut self.chat, &mut self.scratch, false, false)
                    }
                    None => continue,
                };
                if !keep {
                    self.close(idx);
                }
            }
        }
    }
}

/// Handle one readiness event (or a resume: both flags false and
/// `c.input_pending` set); false means close the connection.
fn on_event(c: &mut Conn, chat: &mut Chat, tmp: &mut [u8], readable: bool, writable: bool) -> bool {
    if writable && c.wpos < c.wbuf.len() {
        match c.flush() {
            Ok(true) if c.close_after_write => return false,
            Ok(true) => c.trim_idle(),
            Ok(false) => {}
            Err(_) => return false,
        }
    }
    if c.close_after_write {
        return true;
    }
    let resume = std::mem::take(&mut c.input_pending);
    if !readable && !resume {
        return true;
    }
    if resume && !c.rbuf.is_empty() && !process(c, chat) {
        return finish(c);
    }
    loop {
        if c.input_blocked() {
            c.input_pending = true;
            break;
        }
        match c.stream.read(tmp) {
            Ok(0) => return false,
            Ok(n) => {
                c.rbuf.extend_from_slice(&tmp[..n]);
                // A short read drained the socket: the next arrival raises a new edge.
                if !process(c, chat) || n < tmp.len() {
                    break;
                }
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(_) => return false,
        }
    }
    finish(c)
}

/// Parse what `c.rbuf` holds, as HTTP or as WebSocket frames (both when
/// an upgrade request is followed by frames). False: close after writing.
fn process(c: &mut Conn, chat: &mut Chat) -> bool {
    if c.ws.is_none() {
        if !http::parse_all(c, chat) {
            return false;
        }
        if c.ws.is_none() {
            return true;
        }
    }
    ws::on_input(c, chat)
}

/// Write what was queued; false means close.
fn finish(c: &mut Conn) -> bool {
    match c.flush() {
        Ok(true) if c.close_after_write => false,
        Ok(true) => {
            c.trim_idle();
            true
        }
        Ok(false) => true,
        Err(_) => false,
    }
}
