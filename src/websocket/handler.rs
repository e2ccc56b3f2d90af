//! What an application implements to serve WebSockets
//! ([`WebSocketHandler`]), and the route that upgrades an HTTP request to
//! one ([`WebSocketRoute`]).
//!
//! Mirrors Tornado's `websocket.py` `WebSocketHandler`: its `get` (the
//! handshake checks, `check_origin`, `select_subprotocol`, the `101`
//! response) and its callbacks (`open`, `on_message`, `on_close`,
//! `on_ping`, `on_pong`). In Tornado one handler object exists per
//! connection; here, as for [`RequestHandler`], one value serves the whole
//! route and the connection is the [`WebSocket`] handle passed to every
//! callback (keep per-connection state keyed by it, or in a `HashSet` of
//! handles).
//!
//! ```no_run
//! use squall::websocket::{Message, WebSocket, WebSocketHandler, WebSocketRoute};
//! use squall::web::{Application, Settings};
//!
//! struct Echo;
//! impl WebSocketHandler for Echo {
//!     fn on_message(&self, ws: &WebSocket, message: Message) {
//!         let _ = match message {
//!             Message::Text(text) => ws.write_message(&text),
//!             Message::Binary(data) => ws.write_binary(&data),
//!             _ => Ok(()),
//!         };
//!     }
//! }
//!
//! let mut app = Application::new(Settings::default()).unwrap();
//! app.route("/ws/echo", WebSocketRoute::new(Echo));
//! ```
//!
//! # The upgrade, step by step (`WebSocketRoute::get`)
//!
//! 1. [`WebSocketHandler::prepare`] (may refuse with any HTTP error, e.g.
//!    403 when nobody is logged in);
//! 2. [`handshake::validate_request`]: 405 / 400 / 426 on failure;
//! 3. `Origin` (if any) through [`WebSocketHandler::check_origin`]: 403;
//! 4. [`WebSocketHandler::select_subprotocol`];
//! 5. capture the request ([`RequestInfo`]: path, query, headers, cookies,
//!    current user) while the `Ctx` still has it;
//! 6. [`Ctx::detach`] → write `101 Switching Protocols` → detach the
//!    stream from HTTP;
//! 7. [`WebSocket`] takes the stream over: `open`, then the frame loop.

use std::cell::OnceCell;
use std::collections::HashMap;
use std::net::IpAddr;
use std::rc::Rc;

use super::connection::{WebSocket, WebSocketOptions};
use super::frame::Role;
use super::handshake::{self, Accepted};
use super::message::Message;
use crate::http::{with_http_date, Version, SERVER_HEADER};
use crate::httputil::{is_field_value, is_token, parse_cookie, Arguments, HTTPHeaders};
use crate::web::{Ctx, HTTPError, HandlerResult, RequestHandler};

/// The callbacks of a WebSocket endpoint (server) or connection (client).
///
/// Every method has a default except `on_message`. Callbacks run on the
/// loop, one at a time, and may call anything on any [`WebSocket`]
/// (including closing this one): the connection holds no borrow of itself
/// while they run.
pub trait WebSocketHandler: 'static {
    /// Runs before the handshake is looked at (Tornado's `prepare`):
    /// return an error to refuse the upgrade with it (e.g. 403, or 400 for a
    /// missing argument). Server side only.
    fn prepare(&self, _cx: &Ctx) -> HandlerResult {
        Ok(())
    }

    /// May a page from `origin` open this WebSocket? `host` is the request's
    /// host: its `Host` header, or an absolute-form target's authority,
    /// which replaces it (RFC 9112 §3.2.2). Only asked when the request has
    /// an `Origin` (browsers always send one; other clients usually don't).
    /// Default: same origin only ([`handshake::same_origin`]); refusal is a
    /// 403. Server side only.
    fn check_origin(&self, origin: &str, host: &str) -> bool {
        handshake::same_origin(Some(origin), Some(host))
    }

    /// Pick one of the subprotocols the client offered (in its order of
    /// preference), or none. A pick that was not offered is ignored.
    /// Server side only.
    fn select_subprotocol(&self, _offered: &[String]) -> Option<String> {
        None
    }

    /// Limits and keep-alive for each connection, asked once per
    /// connection as it opens. `inherited` is what the connection gets
    /// unless the handler says otherwise: on the server side the
    /// application's settings ([`WebSocketOptions::from_settings`], so
    /// Tornado's `websocket_ping_interval` reaches every handler), on the
    /// client side [`ConnectOptions::websocket`](super::ConnectOptions).
    /// Default: `inherited` as it is. Override to change a field and keep
    /// the rest, e.g. no pings on this route whatever the application says:
    /// `WebSocketOptions { ping_interval: None, ..inherited }`.
    fn options(&self, inherited: WebSocketOptions) -> WebSocketOptions {
        inherited
    }

    /// Should request header `name` stay in the connection's
    /// [`RequestInfo::headers`] (and so be readable through
    /// [`WebSocket::request`] and [`WebSocket::get_cookie`]) for as long as
    /// the connection lives? Asked once per header, at the handshake.
    /// Default: every header is kept, as Tornado keeps `self.request`.
    ///
    /// The request headers are most of what an idle connection holds
    /// (a browser's `Cookie` and `User-Agent` alone are often 500 bytes),
    /// so a server that keeps thousands of sockets open and needs nothing
    /// of them after `open` should keep none, or only the few it reads.
    /// The path, query, route captures, client address and logged-in user
    /// are captured whatever this says. Server side only.
    fn keep_request_header(&self, _name: &str) -> bool {
        true
    }

    /// The connection is open: the `101` is written (server) or validated
    /// (client). Writes made here follow the handshake.
    fn open(&self, _ws: &WebSocket) {}

    /// A complete message: [`Message::Text`] or [`Message::Binary`] (control
    /// frames go to `on_ping` / `on_pong` / `on_close`, never here).
    fn on_message(&self, ws: &WebSocket, message: Message);

    /// A Ping arrived (and was already answered with a Pong).
    fn on_ping(&self, _ws: &WebSocket, _data: &[u8]) {}

    /// A Pong arrived.
    fn on_pong(&self, _ws: &WebSocket, _data: &[u8]) {}

    /// The connection is over; called exactly once per opened connection,
    /// after the socket is closed, however it ended. `code` is the peer's
    /// close code (1005: its Close frame had none); if the peer never sent
    /// one, the code we closed with (1002/1007/1009 protocol errors, 1001
    /// ping timeout, 1008 write bound, or the application's); 1006 if the
    /// TCP connection just ended. Drop your clones of `ws` here.
    fn on_close(&self, _ws: &WebSocket, _code: u16, _reason: &str) {}

    /// Client side: the connection could not be opened (connect, timeout,
    /// refused handshake). `open` and `on_close` are then never called.
    fn on_connect_error(&self, error: &super::client::ConnectError) {
        log::warn!("websocket connect failed: {error}");
    }
}

/// Share one handler between routes (or keep a handle on it yourself).
impl<H: WebSocketHandler + ?Sized> WebSocketHandler for Rc<H> {
    fn prepare(&self, cx: &Ctx) -> HandlerResult {
        (**self).prepare(cx)
    }
    fn check_origin(&self, origin: &str, host: &str) -> bool {
        (**self).check_origin(origin, host)
    }
    fn select_subprotocol(&self, offered: &[String]) -> Option<String> {
        (**self).select_subprotocol(offered)
    }
    fn options(&self, inherited: WebSocketOptions) -> WebSocketOptions {
        (**self).options(inherited)
    }
    fn keep_request_header(&self, name: &str) -> bool {
        (**self).keep_request_header(name)
    }
    fn open(&self, ws: &WebSocket) {
        (**self).open(ws)
    }
    fn on_message(&self, ws: &WebSocket, message: Message) {
        (**self).on_message(ws, message)
    }
    fn on_ping(&self, ws: &WebSocket, data: &[u8]) {
        (**self).on_ping(ws, data)
    }
    fn on_pong(&self, ws: &WebSocket, data: &[u8]) {
        (**self).on_pong(ws, data)
    }
    fn on_close(&self, ws: &WebSocket, code: u16, reason: &str) {
        (**self).on_close(ws, code, reason)
    }
    fn on_connect_error(&self, error: &super::client::ConnectError) {
        (**self).on_connect_error(error)
    }
}

/// The upgrade request, captured at handshake time: the HTTP layer's
/// request object does not outlive the upgrade, so what a WebSocket
/// application needs later (room, user, cookies) is copied here.
#[derive(Debug)]
pub struct RequestInfo {
    /// The request-target, e.g. `/chatsocket?room=lobby`.
    pub uri: String,
    /// `uri` before the `?`.
    pub path: String,
    /// `uri` after the `?` (empty if none).
    pub query: String,
    /// Captures of the route pattern, in order.
    pub path_args: Vec<(String, String)>,
    /// The request headers the handler chose to keep
    /// ([`WebSocketHandler::keep_request_header`]; by default all).
    pub headers: HTTPHeaders,
    /// The client's address.
    pub remote_ip: Option<IpAddr>,
    /// The logged-in user (signed `user` cookie), checked at handshake time.
    pub current_user: Option<String>,
    /// Cookies, parsed on first use.
    cookies: OnceCell<HashMap<String, String>>,
}

impl RequestInfo {
    /// Copy what a WebSocket needs out of the request being upgraded
    /// (every header).
    pub fn capture(cx: &Ctx) -> RequestInfo {
        let mut info = RequestInfo::capture_with(cx, |_| false);
        info.headers = cx.request().headers().clone();
        info
    }

    /// Like [`capture`](Self::capture), keeping only the headers for which
    /// `keep(name)` is true.
    pub fn capture_with(cx: &Ctx, keep: impl Fn(&str) -> bool) -> RequestInfo {
        let request = cx.request();
        let mut headers = HTTPHeaders::new();
        for (name, value) in request.headers().iter().filter(|(name, _)| keep(name)) {
            headers.add(name, value);
        }
        RequestInfo {
            uri: request.uri().to_string(),
            path: request.path().to_string(),
            query: request.query().to_string(),
            path_args: cx.path_args().to_vec(),
            headers,
            remote_ip: request.remote_ip,
            current_user: cx.current_user().map(str::to_owned),
            cookies: OnceCell::new(),
        }
    }

    /// Last value of query argument `name`, cleaned as Tornado's
    /// `get_argument` does (control characters dropped, whitespace trimmed).
    ///
    /// The query is parsed again on each call rather than kept parsed: it
    /// is short, read once or twice at `open`, and a parsed copy would
    /// stay with every idle connection.
    pub fn get_query_argument(&self, name: &str) -> Option<String> {
        let args = Arguments::from_query(&self.query);
        args.get_last(name)
            .map(|v| crate::web::context::clean_argument(v))
    }

    /// A request cookie.
    pub fn get_cookie(&self, name: &str) -> Option<&str> {
        self.cookies
            .get_or_init(|| {
                self.headers
                    .get_all("Cookie")
                    .flat_map(|h| parse_cookie(h).into_iter())
                    .collect()
            })
            .get(name)
            .map(String::as_str)
    }

    /// A capture of the route pattern by name.
    pub fn path_arg(&self, name: &str) -> Option<&str> {
        self.path_args
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// A route that upgrades `GET` requests to WebSocket connections served by
/// a [`WebSocketHandler`]: `app.route("/chatsocket", WebSocketRoute::new(h))`.
///
/// Route options apply as to any route: `.authenticated().api()` answers
/// 403 to a request without a logged-in user before any handshake.
pub struct WebSocketRoute {
    /// The application's callbacks, shared by every connection.
    handler: Rc<dyn WebSocketHandler>,
}

impl WebSocketRoute {
    /// A route served by `handler` (wrap it in an `Rc` to keep a handle).
    pub fn new(handler: impl WebSocketHandler) -> WebSocketRoute {
        WebSocketRoute {
            handler: Rc::new(handler),
        }
    }
}

impl RequestHandler for WebSocketRoute {
    /// Only `GET` can upgrade (RFC 6455 §4.1); `HEAD` is refused too.
    fn allowed_methods(&self) -> &[&str] {
        &["GET"]
    }

    fn prepare(&self, cx: &Ctx) -> HandlerResult {
        self.handler.prepare(cx)
    }

    fn get(&self, cx: &Ctx) -> HandlerResult {
        let accepted = match validate(cx, self.handler.as_ref()) {
            Ok(accepted) => accepted,
            Err(refusal) => {
                refusal.send(cx);
                return Ok(());
            }
        };
        let subprotocol = self
            .handler
            .select_subprotocol(&accepted.subprotocols)
            .filter(|p| accepted.subprotocols.contains(p));
        let handler = &self.handler;
        let options = handler.options(WebSocketOptions::from_settings(cx.settings()));
        let info = RequestInfo::capture_with(cx, |name| handler.keep_request_header(name));
        let Some((mut responder, headers)) = cx.detach() else {
            return Err(HTTPError::new(500, "response already started"));
        };
        responder.write_raw(response_head(&accepted, subprotocol.as_deref(), &headers));
        let stream = responder.detach();
        WebSocket::start(
            stream,
            Role::Server,
            Rc::clone(&self.handler),
            options,
            Some(info),
            subprotocol,
        );
        Ok(())
    }

    // HEAD falls through to `get`, which answers 405 (Allow: GET).
    fn post(&self, cx: &Ctx) -> HandlerResult {
        method_not_allowed(cx)
    }
    fn put(&self, cx: &Ctx) -> HandlerResult {
        method_not_allowed(cx)
    }
    fn patch(&self, cx: &Ctx) -> HandlerResult {
        method_not_allowed(cx)
    }
    fn delete(&self, cx: &Ctx) -> HandlerResult {
        method_not_allowed(cx)
    }
    fn options(&self, cx: &Ctx) -> HandlerResult {
        method_not_allowed(cx)
    }
}

/// An answer that is not `101`: status, text, extra headers.
struct Refusal {
    status: u16,
    message: &'static str,
    headers: &'static [(&'static str, &'static str)],
}

impl Refusal {
    /// Answer with it through the `Ctx` (plain text, like Tornado's).
    fn send(&self, cx: &Ctx) {
        cx.set_status(self.status);
        cx.set_header("Content-Type", "text/plain; charset=UTF-8");
        for (name, value) in self.headers {
            cx.set_header(name, *value);
        }
        cx.write(self.message);
        cx.write("\n");
        cx.finish();
    }
}

fn method_not_allowed(cx: &Ctx) -> HandlerResult {
    Refusal {
        status: 405,
        message: "Method Not Allowed",
        headers: &[("Allow", "GET")],
    }
    .send(cx);
    Ok(())
}

/// Headers the handshake looks at; repeated ones are joined with ", " (so
/// `Connection: keep-alive` + `Connection: Upgrade` still upgrades, and two
/// keys are refused).
const HANDSHAKE_HEADERS: [&str; 6] = [
    "Host",
    "Upgrade",
    "Connection",
    "Sec-WebSocket-Version",
    "Sec-WebSocket-Key",
    "Sec-WebSocket-Protocol",
];

/// The handshake and origin checks of the module docs (steps 2 and 3).
fn validate(cx: &Ctx, handler: &dyn WebSocketHandler) -> Result<Accepted, Refusal> {
    let request = cx.request();
    let joined: Vec<(&str, String)> = HANDSHAKE_HEADERS
        .iter()
        .filter(|name| request.headers().contains(name))
        .map(|name| (*name, request.headers().get_list(name).join(", ")))
        .collect();
    let lookup = |name: &str| {
        joined
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    };
    let version = match request.version {
        Version::Http10 => (1, 0),
        Version::Http11 => (1, 1),
    };
    let accepted =
        handshake::validate_request(request.method(), version, lookup).map_err(|e| Refusal {
            status: e.status,
            message: e.message,
            headers: e.headers,
        })?;
    // Tornado also honours the pre-RFC `Sec-WebSocket-Origin` (draft 8).
    let origin = request
        .headers()
        .get("Origin")
        .or_else(|| request.headers().get("Sec-WebSocket-Origin"));
    if let Some(origin) = origin {
        // The request's host: an absolute-form target's authority, else
        // the Host header (RFC 9112 §3.2.2).
        if !handler.check_origin(origin, request.host()) {
            return Err(Refusal {
                status: 403,
                message: "Cross origin websockets not allowed",
                headers: &[],
            });
        }
    }
    Ok(accepted)
}

/// Response headers the `101` never copies from the `Ctx`: framing and
/// the handshake's own.
const NOT_COPIED: [&str; 6] = [
    "Content-Type",
    "Content-Length",
    "Transfer-Encoding",
    "Connection",
    "Upgrade",
    "Server",
];

/// `101 Switching Protocols` with the handshake headers (§4.2.2), plus the
/// headers the application set on the `Ctx` (cookies set in `prepare`, for
/// instance; Tornado sends those too). Invalid names or values (header
/// injection) are dropped and logged.
fn response_head(accepted: &Accepted, subprotocol: Option<&str>, extra: &HTTPHeaders) -> Vec<u8> {
    let mut out = Vec::with_capacity(256);
    out.extend_from_slice(b"HTTP/1.1 101 Switching Protocols\r\n");
    let mut push = |name: &str, value: &str| {
        out.extend_from_slice(name.as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(value.as_bytes());
        out.extend_from_slice(b"\r\n");
    };
    for (name, value) in accepted.response_headers(subprotocol) {
        push(name, &value);
    }
    push("Server", SERVER_HEADER);
    let has_date = extra.contains("Date");
    if !has_date {
        with_http_date(|date| push("Date", date));
    }
    for (name, value) in extra.iter() {
        if NOT_COPIED.iter().any(|n| n.eq_ignore_ascii_case(name))
            || name
                .get(..13)
                .is_some_and(|p| p.eq_ignore_ascii_case("Sec-WebSocket"))
        {
            continue;
        }
        if !is_token(name) || !is_field_value(value.as_bytes()) {
            log::error!("websocket upgrade: dropping invalid response header {name:?}");
            continue;
        }
        push(name, value);
    }
    out.extend_from_slice(b"\r\n");
    out
}
