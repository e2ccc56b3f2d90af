//! One client connection: its socket, its read and write buffers with their
//! bounds, and where it stands in the chat (a parked long-poll waiter or a
//! WebSocket member).

use crate::ws::WsState;
use mio::net::TcpStream;
use std::io::{self, Write};

/// Most unparsed bytes of a request head.
pub const MAX_UNPARSED: usize = 64 * 1024;
/// Most unwritten output; past it the connection stops reading (and a
/// WebSocket member is dropped by a broadcast).
pub const MAX_UNWRITTEN: usize = 1024 * 1024;
/// Largest request body (read on the chat routes, skipped elsewhere).
pub const MAX_BODY: usize = 1024 * 1024;

/// A parked `POST /a/message/updates`.
pub struct Parked {
    /// The room whose next message answers it.
    pub room: u32,
    /// Its index in that room's waiter list, so a close removes it in O(1).
    pub slot: u32,
    /// The request asked for `Connection: close`: close once answered (the
    /// shared answer bytes carry no such header, so it is remembered here).
    pub close: bool,
}

/// One accepted connection.
pub struct Conn {
    /// Non-blocking, registered edge-triggered for both directions.
    pub stream: TcpStream,
    /// Its index in the server's slab (and its mio token), the name a room
    /// knows it by.
    pub id: usize,
    /// Received bytes not consumed yet.
    pub rbuf: Vec<u8>,
    /// Output not written yet: `wbuf[wpos..]`.
    pub wbuf: Vec<u8>,
    /// How much of `wbuf` the socket took; reset when it is all written.
    pub wpos: usize,
    /// Body bytes of the last `/hello` request still to skip.
    pub skip: usize,
    /// Answer what is queued, then close (an error or `Connection: close`).
    pub close_after_write: bool,
    /// Input may be waiting that no readiness edge will announce: reading
    /// stopped at a bound, or requests sat in `rbuf` while the connection
    /// was parked. Cleared when the connection is looked at again.
    pub input_pending: bool,
    /// Set while a long-poll request is parked; nothing after it is parsed
    /// until it is answered (HTTP/1.1 answers in order).
    pub parked: Option<Parked>,
    /// Set once upgraded to a WebSocket; boxed so plain HTTP connections
    /// stay small.
    pub ws: Option<Box<WsState>>,
}

impl Conn {
    /// A fresh connection with slab index `id`.
    pub fn new(stream: TcpStream, id: usize) -> Conn {
        Conn {
            stream,
            id,
            rbuf: Vec::new(),
            wbuf: Vec::new(),
            wpos: 0,
            skip: 0,
            close_after_write: false,
            input_pending: false,
            parked: None,
            ws: None,
        }
    }

    /// Bytes queued and not yet written.
    pub fn unwritten(&self) -> usize {
        self.wbuf.len() - self.wpos
    }

    /// Whether reading must pause: too much output is waiting for the
    /// client, or too much input is waiting behind a parked request.
    pub fn input_blocked(&self) -> bool {
        self.unwritten() > MAX_UNWRITTEN || self.rbuf.len() > MAX_UNPARSED + MAX_BODY
    }

    /// Write what is queued; `Ok(true)` when everything left.
    pub fn flush(&mut self) -> io::Result<bool> {
        while self.wpos < self.wbuf.len() {
            match self.stream.write(&self.wbuf[self.wpos..]) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => self.wpos += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(false),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        self.wbuf.clear();
        self.wpos = 0;
        Ok(true)
    }

    /// Send `bytes` (a broadcast shared by many connections): one `write`
    /// straight from the shared buffer when nothing is queued before it,
    /// and only what the socket did not take is copied into `wbuf`.
    pub fn send(&mut self, bytes: &[u8]) -> io::Result<()> {
        let mut done = 0;
        if self.wpos == self.wbuf.len() {
            loop {
                match self.stream.write(bytes) {
                    Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                    Ok(n) => done = n,
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    Err(e) => return Err(e),
                }
                break;
            }
        }
        if done < bytes.len() {
            // The writable edge flushes the rest.
            self.wbuf.extend_from_slice(&bytes[done..]);
        }
        Ok(())
    }

    /// Give back the buffers of a connection that only waits (a parked
    /// waiter or a WebSocket member) once they are empty: what an idle
    /// connection holds is one of the figures compared.
    pub fn trim_idle(&mut self) {
        if self.parked.is_none() && self.ws.is_none() {
            return;
        }
        if self.rbuf.is_empty() && self.rbuf.capacity() > 0 {
            self.rbuf = Vec::new();
        }
        if self.wbuf.is_empty() && self.wbuf.capacity() > 0 {
            self.wbuf = Vec::new();
        }
    }
}
