//! The chat contract's routes, as little of it as `loadgen longpoll-fanout`,
//! `ws-fanout` and `idle --kind longpoll|ws` use (docs/benchmarks.md, "What
//! the loadgen assumes of squall's contract"):
//!
//! | route | answer |
//! |---|---|
//! | `GET /metrics` | `squall_chat_waiters`, `squall_http_connections`, ... |
//! | `GET /auth/login`, `GET /auth/register` | 200, sets the `_xsrf` cookie |
//! | `POST /auth/register`, `POST /auth/login` | 302 to `/`, sets `user` = the name |
//! | `POST /a/message/new` | 200, the message object; broadcast to the room |
//! | `POST /a/message/updates` | 200 `{"messages":[...]}` after `cursor`, or parked until the next message |
//! | `GET /chatsocket?room=R` | 101, then [`ws`](crate::ws) |
//!
//! Posts check that the `_xsrf` field equals the `_xsrf` cookie, and chat
//! routes need a `user` cookie (403 otherwise). The `user` cookie is the bare
//! name, not signed, and there is no account store: the floor skips the
//! crypto and bookkeeping of a real login, which happen outside the fan-out.

use crate::chat::{Chat, RoomError, MAX_MESSAGE_BODY};
use crate::form;
use crate::http::answer;
use crate::message::Message;
use crate::ws;
use std::rc::Rc;

/// One request with its body, as [`route`] sees it.
pub struct Request<'a> {
    /// `GET`, `POST`, ...
    pub method: &'a str,
    /// The target before `?`.
    pub path: &'a str,
    /// The target after `?` (empty when none).
    pub query: &'a str,
    /// Looked up by name only on the routes that need one.
    pub headers: &'a [httparse::Header<'a>],
    /// The whole body (`Content-Length` bytes, already received).
    pub body: &'a [u8],
    /// The connection closes after this answer.
    pub close: bool,
}

/// What the connection does after [`route`].
pub enum Outcome {
    /// The answer is queued.
    Answered,
    /// No answer yet: park the request in this room.
    Park(u32),
    /// The 101 is queued: the connection is a WebSocket member of this room,
    /// posting as this user.
    Upgrade(u32, Box<str>),
    /// The 400 is queued: close after it.
    Bad,
}

/// Content types of the answers.
const JSON: &str = "application/json; charset=UTF-8";
const HTML: &str = "text/html; charset=UTF-8";
const TEXT: &str = "text/plain; charset=UTF-8";

/// Answer the request `r` into `out`.
pub fn route(r: &Request, out: &mut Vec<u8>, chat: &mut Chat) -> Outcome {
    match (r.method, r.path) {
        ("GET", "/metrics") => {
            let text = chat.metrics();
            reply(
                r,
                out,
                "200 OK",
                "text/plain; version=0.0.4",
                "",
                text.as_bytes(),
            );
            Outcome::Answered
        }
        ("GET", "/auth/login" | "/auth/register") => login_page(r, out, chat),
        ("POST", "/auth/login" | "/auth/register") => sign_in(r, out),
        ("POST", "/a/message/new") => new_message(r, out, chat),
        ("POST", "/a/message/updates") => updates(r, out, chat),
        ("GET", "/chatsocket") => upgrade(r, out, chat),
        (
            _,
            "/metrics" | "/auth/login" | "/auth/register" | "/a/message/new" | "/a/message/updates"
            | "/chatsocket",
        ) => error(r, out, "405 Method Not Allowed"),
        _ => error(r, out, "404 Not Found"),
    }
}

/// [`answer`] plus `Connection: close` when the request asked for it.
fn reply(r: &Request, out: &mut Vec<u8>, status: &str, ctype: &str, extra: &str, body: &[u8]) {
    if r.close {
        let extra = format!("{extra}Connection: close\r\n");
        answer(out, status, ctype, &extra, body);
    } else {
        answer(out, status, ctype, extra, body);
    }
}

/// A short text answer with `status`.
fn error(r: &Request, out: &mut Vec<u8>, status: &str) -> Outcome {
    reply(r, out, status, TEXT, "", status.as_bytes());
    Outcome::Answered
}

/// A 400 that closes the connection (the request could not be read).
fn bad(out: &mut Vec<u8>) -> Outcome {
    answer(
        out,
        "400 Bad Request",
        TEXT,
        "Connection: close\r\n",
        b"400 Bad Request",
    );
    Outcome::Bad
}

/// Value of header `name`.
fn header<'a>(r: &Request<'a>, name: &str) -> Option<&'a [u8]> {
    r.headers
        .iter()
        .find(|h| h.name.eq_ignore_ascii_case(name))
        .map(|h| h.value)
}

/// Value of cookie `name`.
fn cookie<'a>(r: &Request<'a>, name: &str) -> Option<&'a str> {
    header(r, "cookie").and_then(|h| form::cookie(h, name))
}

/// The logged-in user: a `user` cookie holding a valid name.
fn user<'a>(r: &Request<'a>) -> Option<&'a str> {
    cookie(r, "user").filter(|n| valid_name(n))
}

/// `[A-Za-z0-9_.-]{1,32}`, the Tornado peer's rule.
fn valid_name(n: &str) -> bool {
    (1..=32).contains(&n.len())
        && n.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
}

/// The form's `_xsrf` field equals the `_xsrf` cookie.
fn xsrf_ok(r: &Request, fields: &[(std::borrow::Cow<str>, std::borrow::Cow<str>)]) -> bool {
    match (cookie(r, "_xsrf"), form::get(fields, "_xsrf")) {
        (Some(c), Some(f)) => !c.is_empty() && c == f,
        _ => false,
    }
}

/// The room named by `name` (default `lobby`), or the error answer.
fn room(r: &Request, out: &mut Vec<u8>, chat: &mut Chat, name: Option<&str>) -> Option<u32> {
    match chat.room(name.unwrap_or("lobby")) {
        Ok(id) => Some(id),
        Err(RoomError::BadName) => {
            error(r, out, "404 Not Found");
            None
        }
        Err(RoomError::Full) => {
            error(r, out, "503 Service Unavailable");
            None
        }
    }
}

/// `GET /auth/login`: a minimal form, and a fresh `_xsrf` cookie.
fn login_page(r: &Request, out: &mut Vec<u8>, chat: &mut Chat) -> Outcome {
    let token = chat.token();
    let page = format!(
        "<!DOCTYPE html><form method=\"post\"><input type=\"hidden\" name=\"_xsrf\" value=\"{token}\">\
         <input name=\"name\"><input name=\"password\" type=\"password\"></form>\n"
    );
    let cookie = format!("Set-Cookie: _xsrf={token}; Path=/; SameSite=Lax\r\n");
    reply(r, out, "200 OK", HTML, &cookie, page.as_bytes());
    Outcome::Answered
}

/// `POST /auth/register` or `/auth/login`: any valid name with a password
/// is let in (no account store), redirected to `/` with the `user` cookie.
fn sign_in(r: &Request, out: &mut Vec<u8>) -> Outcome {
    let Some(fields) = form::parse(r.body) else {
        return bad(out);
    };
    if !xsrf_ok(r, &fields) {
        return error(r, out, "403 Forbidden");
    }
    let name = form::get(&fields, "name").unwrap_or("").trim();
    let password = form::get(&fields, "password").unwrap_or("");
    if !valid_name(name) || password.is_empty() {
        return error(r, out, "400 Bad Request");
    }
    let extra =
        format!("Set-Cookie: user={name}; Path=/; HttpOnly; SameSite=Lax\r\nLocation: /\r\n");
    reply(r, out, "302 Found", HTML, &extra, b"");
    Outcome::Answered
}

/// `POST /a/message/new`: post to the room (delivered by the server right
/// after this connection is handled) and answer the message object.
fn new_message(r: &Request, out: &mut Vec<u8>, chat: &mut Chat) -> Outcome {
    let Some(fields) = form::parse(r.body) else {
        return bad(out);
    };
    let (true, Some(from)) = (xsrf_ok(r, &fields), user(r)) else {
        return error(r, out, "403 Forbidden");
    };
    let body = form::get(&fields, "body").unwrap_or("");
    if body.trim().is_empty() || body.chars().count() > MAX_MESSAGE_BODY {
        return error(r, out, "400 Bad Request");
    }
    let Some(room) = room(r, out, chat, form::get(&fields, "room")) else {
        return Outcome::Answered;
    };
    let m = chat.post(room, from, body);
    reply(r, out, "200 OK", JSON, "", &m.json);
    Outcome::Answered
}

/// `POST /a/message/updates`: the messages after `cursor` at once, or park.
fn updates(r: &Request, out: &mut Vec<u8>, chat: &mut Chat) -> Outcome {
    let Some(fields) = form::parse(r.body) else {
        return bad(out);
    };
    if !xsrf_ok(r, &fields) || user(r).is_none() {
        return error(r, out, "403 Forbidden");
    }
    let Some(room) = room(r, out, chat, form::get(&fields, "room")) else {
        return Outcome::Answered;
    };
    let cursor = form::get(&fields, "cursor").filter(|c| !c.is_empty());
    let mut since = chat.since(room, cursor).peekable();
    if since.peek().is_none() {
        return Outcome::Park(room);
    }
    let body = updates_body(since);
    reply(r, out, "200 OK", JSON, "", &body);
    Outcome::Answered
}

/// `{"messages":[m1,m2,...]}` from already serialized messages.
pub fn updates_body<'m>(msgs: impl Iterator<Item = &'m Rc<Message>>) -> Vec<u8> {
    let mut body = b"{\"messages\":[".to_vec();
    for (i, m) in msgs.enumerate() {
        if i > 0 {
            body.push(b',');
        }
        body.extend_from_slice(&m.json);
    }
    body.extend_from_slice(b"]}");
    body
}

/// The long-poll answer every parked waiter of a room gets for message `m`:
/// built once per broadcast, written as is to each.
pub fn updates_answer(m: &Rc<Message>) -> Vec<u8> {
    let body = updates_body(std::iter::once(m));
    let mut out = Vec::with_capacity(body.len() + 160);
    answer(&mut out, "200 OK", JSON, "", &body);
    out
}

/// `GET /chatsocket?room=R`: the RFC 6455 handshake, same-origin only, for
/// a logged-in user.
fn upgrade(r: &Request, out: &mut Vec<u8>, chat: &mut Chat) -> Outcome {
    let has = |name: &str, token: &[u8]| {
        header(r, name).is_some_and(|v| {
            v.split(|b| *b == b',')
                .any(|t| t.trim_ascii().eq_ignore_ascii_case(token))
        })
    };
    let key = header(r, "sec-websocket-key")
        .and_then(|k| std::str::from_utf8(k).ok())
        .map(str::trim)
        .filter(|k| k.len() == 24);
    let (true, true, true, Some(key)) = (
        has("upgrade", b"websocket"),
        has("connection", b"upgrade"),
        header(r, "sec-websocket-version") == Some(b"13"),
        key,
    ) else {
        return error(r, out, "400 Bad Request");
    };
    if let Some(origin) = header(r, "origin") {
        let host = header(r, "host").unwrap_or(b"");
        let o = origin
            .strip_prefix(b"http://")
            .or_else(|| origin.strip_prefix(b"https://"))
            .unwrap_or(origin);
        if !o.eq_ignore_ascii_case(host) {
            return error(r, out, "403 Forbidden");
        }
    }
    let Some(from) = user(r) else {
        return error(r, out, "403 Forbidden");
    };
    let Some(query) = form::parse(r.query.as_bytes()) else {
        return error(r, out, "400 Bad Request");
    };
    let Some(room) = room(r, out, chat, form::get(&query, "room")) else {
        return Outcome::Answered;
    };
    out.extend_from_slice(
        b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
          Sec-WebSocket-Accept: ",
    );
    out.extend_from_slice(ws::accept(key).as_bytes());
    out.extend_from_slice(b"\r\n\r\n");
    Outcome::Upgrade(room, from.into())
}
