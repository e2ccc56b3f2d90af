//! HTTP/1.1 framing: parse every complete request in a connection's read
//! buffer, answer `/hello` and `/healthz` from the canned response (the
//! ceiling's fast path, unchanged), hand the rest to [`routes`](crate::routes)
//! with its body, and write answer heads.

use crate::chat::Chat;
use crate::clock;
use crate::conn::{Conn, Parked, MAX_BODY, MAX_UNPARSED, MAX_UNWRITTEN};
use crate::routes::{self, Outcome, Request};
use crate::ws::WsState;
use std::io::Write;

/// The canned `/hello` answer.
const HELLO: &[u8] =
    b"HTTP/1.1 200 OK\r\nContent-Length: 13\r\nContent-Type: text/plain\r\n\r\nHello, world!";
/// The answer to anything unparsable; the connection closes after it.
const BAD: &[u8] = b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";

/// Parse every complete request in `c.rbuf`, queueing one answer each.
/// Stops at a parked request or an upgrade (what follows waits, or is
/// WebSocket frames). Returns false when the connection must close after
/// writing.
pub fn parse_all(c: &mut Conn, chat: &mut Chat) -> bool {
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
        if pos == c.rbuf.len() || c.parked.is_some() || c.ws.is_some() {
            break;
        }
        if c.wbuf.len() - c.wpos > MAX_UNWRITTEN {
            // Parsed once the client drains (see `Conn::input_pending`).
            c.input_pending = true;
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
                let target = req.path.unwrap_or("");
                // The exact targets first: the ceiling's requests skip the split.
                let (path, query) = if target == "/hello" || target == "/healthz" {
                    (target, "")
                } else {
                    target.split_once('?').unwrap_or((target, ""))
                };
                if path == "/hello" || path == "/healthz" {
                    pos += n;
                    c.skip = body;
                    c.wbuf.extend_from_slice(HELLO);
                    if close {
                        c.close_after_write = true;
                        c.rbuf.clear();
                        return false;
                    }
                    continue;
                }
                // Every other route reads its body: wait until it is all in.
                if c.rbuf.len() - pos - n < body {
                    break;
                }
                let r = Request {
                    method: req.method.unwrap_or(""),
                    path,
                    query,
                    headers: req.headers,
                    body: &c.rbuf[pos + n..pos + n + body],
                    close,
                };
                let outcome = routes::route(&r, &mut c.wbuf, chat);
                pos += n + body;
                match outcome {
                    Outcome::Answered if close => {}
                    Outcome::Answered => continue,
                    Outcome::Park(room) => {
                        let slot = chat.park(room, c.id);
                        c.parked = Some(Parked { room, slot, close });
                        break;
                    }
                    Outcome::Upgrade(room, name) => {
                        let slot = chat.join(room, c.id);
                        c.ws = Some(Box::new(WsState::new(room, slot, name)));
                        break;
                    }
                    Outcome::Bad => {}
                }
                c.close_after_write = true;
                c.rbuf.clear();
                return false;
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

/// Queue the 400 and close after it.
fn bad(c: &mut Conn) -> bool {
    c.wbuf.extend_from_slice(BAD);
    c.close_after_write = true;
    c.rbuf.clear();
    false
}

/// Append a complete answer: status line (`"200 OK"`), the head squall
/// sends (type, server, date, length), `extra` header lines (each ending
/// in CRLF), then `body`.
pub fn answer(out: &mut Vec<u8>, status: &str, ctype: &str, extra: &str, body: &[u8]) {
    head(out, status, ctype, extra, body.len());
    out.extend_from_slice(body);
}

/// Append an answer head for a body of `len` bytes.
pub fn head(out: &mut Vec<u8>, status: &str, ctype: &str, extra: &str, len: usize) {
    // Writing into a Vec cannot fail.
    let _ = write!(
        out,
        "HTTP/1.1 {status}\r\nContent-Type: {ctype}\r\nServer: bare_responder\r\nDate: {}\r\n\
         {extra}Content-Length: {len}\r\n\r\n",
        clock::http_date(clock::now_secs())
    );
}
