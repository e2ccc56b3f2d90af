//! `bare_responder --port P`: the ceiling for the `hello` scenarios.
//!
//! A minimal single-threaded mio + httparse HTTP/1.1 keep-alive server that
//! answers every request with the 13-byte body `Hello, world!`. It does
//! the least work any correct server must: drain the socket, parse every
//! complete request in the read buffer, append one canned response per
//! request, and write them all in one `write`. It is the upper bound squall
//! is compared with in the same run, not a server to deploy.
//!
//! Bounds: 64 KiB of unparsed request per connection, 1 MiB of unwritten
//! responses (past that it stops reading until the client drains), request
//! bodies up to 1 MiB skipped by `Content-Length`; chunked request bodies
//! and anything unparsable get a 400 and a close.

use mio::net::{TcpListener, TcpStream};
use mio::{Events, Interest, Poll, Token};
use std::io::{self, Read, Write};
use std::os::fd::FromRawFd;

const RESPONSE: &[u8] =
    b"HTTP/1.1 200 OK\r\nContent-Length: 13\r\nContent-Type: text/plain\r\n\r\nHello, world!";
const BAD: &[u8] = b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";
const MAX_UNPARSED: usize = 64 * 1024;
const MAX_UNWRITTEN: usize = 1024 * 1024;
const MAX_BODY: usize = 1024 * 1024;
const LISTENER: Token = Token(usize::MAX);

struct Conn {
    stream: TcpStream,
    rbuf: Vec<u8>,
    wbuf: Vec<u8>,
    wpos: usize,
    /// Body bytes of the last request still to skip.
    skip: usize,
    close_after_write: bool,
}

/// A listening socket with a deep accept queue (the bare ceiling should
/// never be the one dropping connections in `connect-storm`).
fn listen(port: u16, backlog: i32) -> io::Result<TcpListener> {
    // SAFETY: plain socket calls on a descriptor we own; it is handed to
    // std's TcpListener, which closes it.
    unsafe {
        let fd = libc::socket(
            libc::AF_INET,
            libc::SOCK_STREAM | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
            0,
        );
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        let listener = std::net::TcpListener::from_raw_fd(fd);
        let one: libc::c_int = 1;
        libc::setsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_REUSEADDR,
            &one as *const libc::c_int as *const libc::c_void,
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        );
        let addr = libc::sockaddr_in {
            sin_family: libc::AF_INET as libc::sa_family_t,
            sin_port: port.to_be(),
            sin_addr: libc::in_addr {
                s_addr: u32::from_be_bytes([127, 0, 0, 1]).to_be(),
            },
            sin_zero: [0; 8],
        };
        if libc::bind(
            fd,
            &addr as *const libc::sockaddr_in as *const libc::sockaddr,
            std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t,
        ) != 0
        {
            return Err(io::Error::last_os_error());
        }
        if libc::listen(fd, backlog) != 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(TcpListener::from_std(listener))
    }
}

/// Parse every complete request in `c.rbuf`, queueing one response each.
/// Returns false when the connection must close after writing.
fn parse_all(c: &mut Conn) -> bool {
    let mut pos = 0;
    loop {
        if c.skip > 0 {
            let n = c.skip.min(c.rbuf.len() - pos);
            pos += n;
            c.skip -= n;
            if c.skip > 0 {
                break;
            }
        }
        if pos == c.rbuf.len() || c.wbuf.len() - c.wpos > MAX_UNWRITTEN {
            break;
        }
        let mut hs = [httparse::EMPTY_HEADER; 32];
        let mut req = httparse::Request::new(&mut hs);
        match req.parse(&c.rbuf[pos..]) {
            Ok(httparse::Status::Complete(n)) => {
                let mut body = 0usize;
                let mut close = req.version == Some(0);
                for h in req.headers.iter() {
                    if h.name.eq_ignore_ascii_case("content-length") {
                        match std::str::from_utf8(h.value)
                            .ok()
                            .and_then(|v| v.trim().parse().ok())
                        {
                            Some(v) if v <= MAX_BODY => body = v,
                            _ => return bad(c),
                        }
                    } else if h.name.eq_ignore_ascii_case("transfer-encoding") {
                        return bad(c);
                    } else if h.name.eq_ignore_ascii_case("connection") {
                        if h.value.eq_ignore_ascii_case(b"close") {
                            close = true;
                        } else if h.value.eq_ignore_ascii_case(b"keep-alive") {
                            close = false;
                        }
                    }
                }
                pos += n;
                c.skip = body;
                c.wbuf.extend_from_slice(RESPONSE);
                if close {
                    c.close_after_write = true;
                    c.rbuf.clear();
                    return false;
                }
            }
            Ok(httparse::Status::Partial) => {
                if c.rbuf.len() - pos > MAX_UNPARSED {
                    return bad(c);
                }
                break;
            }
            Err(_) => return bad(c),
        }
    }
    c.rbuf.drain(..pos);
    true
}

fn bad(c: &mut Conn) -> bool {
    c.wbuf.extend_from_slice(BAD);
    c.close_after_write = true;
    c.rbuf.clear();
    false
}

/// Write what is queued; `Ok(true)` when everything left.
fn flush(c: &mut Conn) -> io::Result<bool> {
    while c.wpos < c.wbuf.len() {
        match c.stream.write(&c.wbuf[c.wpos..]) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => c.wpos += n,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(false),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    c.wbuf.clear();
    c.wpos = 0;
    Ok(true)
}

/// Handle one readiness event; `false` means close the connection.
fn on_event(c: &mut Conn, readable: bool, writable: bool) -> bool {
    if writable && c.wpos < c.wbuf.len() {
        match flush(c) {
            Ok(true) if c.close_after_write => return false,
            Ok(_) => {}
            Err(_) => return false,
        }
    }
    if !readable || c.close_after_write {
        return true;
    }
    let mut tmp = [0u8; 65536];
    loop {
        match c.stream.read(&mut tmp) {
            Ok(0) => return false,
            Ok(n) => {
                c.rbuf.extend_from_slice(&tmp[..n]);
                let keep = parse_all(c);
                if !keep || n < tmp.len() {
                    break;
                }
                if c.wbuf.len() - c.wpos > MAX_UNWRITTEN {
                    break;
                }
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(_) => return false,
        }
    }
    match flush(c) {
        Ok(true) => !c.close_after_write,
        Ok(false) => true,
        Err(_) => false,
    }
}

fn main() {
    let mut port: u16 = 9999;
    let mut backlog: i32 = 4096;
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut i = 0;
    while i < args.len() {
        let val = args.get(i + 1).and_then(|v| v.parse::<i64>().ok());
        match (args[i].as_str(), val) {
            ("--port", Some(v)) if (1..=65535).contains(&v) => port = v as u16,
            ("--backlog", Some(v)) if v > 0 => backlog = v.min(i32::MAX as i64) as i32,
            _ => {
                eprintln!("usage: bare_responder [--port 9999] [--backlog 4096]");
                std::process::exit(2);
            }
        }
        i += 2;
    }
    let mut listener = match listen(port, backlog) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("bare_responder: cannot listen on 127.0.0.1:{port}: {e}");
            std::process::exit(1);
        }
    };
    let mut poll = match Poll::new() {
        Ok(p) => p,
        Err(e) => {
            eprintln!("bare_responder: poll: {e}");
            std::process::exit(1);
        }
    };
    if let Err(e) = poll
        .registry()
        .register(&mut listener, LISTENER, Interest::READABLE)
    {
        eprintln!("bare_responder: register: {e}");
        std::process::exit(1);
    }
    eprintln!("bare_responder: listening on 127.0.0.1:{port}");
    let mut events = Events::with_capacity(1024);
    let mut conns: Vec<Option<Conn>> = Vec::new();
    let mut free: Vec<usize> = Vec::new();
    loop {
        if let Err(e) = poll.poll(&mut events, None) {
            if e.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            eprintln!("bare_responder: poll: {e}");
            std::process::exit(1);
        }
        for ev in events.iter() {
            if ev.token() == LISTENER {
                loop {
                    match listener.accept() {
                        Ok((mut stream, _)) => {
                            stream.set_nodelay(true).ok();
                            let idx = free.pop().unwrap_or_else(|| {
                                conns.push(None);
                                conns.len() - 1
                            });
                            if poll
                                .registry()
                                .register(
                                    &mut stream,
                                    Token(idx),
                                    Interest::READABLE | Interest::WRITABLE,
                                )
                                .is_err()
                            {
                                free.push(idx);
                                continue;
                            }
                            conns[idx] = Some(Conn {
                                stream,
                                rbuf: Vec::new(),
                                wbuf: Vec::new(),
                                wpos: 0,
                                skip: 0,
                                close_after_write: false,
                            });
                        }
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                        Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                        // EMFILE and friends: stop accepting this round.
                        Err(_) => break,
                    }
                }
                continue;
            }
            let idx = ev.token().0;
            let keep = match conns.get_mut(idx).and_then(Option::as_mut) {
                Some(c) => on_event(c, ev.is_readable() || ev.is_read_closed(), ev.is_writable()),
                None => continue,
            };
            if !keep {
                if let Some(mut c) = conns[idx].take() {
                    let _ = poll.registry().deregister(&mut c.stream);
                }
                free.push(idx);
            }
        }
    }
}
