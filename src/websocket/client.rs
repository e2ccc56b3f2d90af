//! The client: [`websocket_connect`] opens a `ws://` URL on an
//! [`IOStream`] and hands the connection to a [`WebSocketHandler`].
//!
//! Mirrors Tornado's `websocket.py` `websocket_connect` and
//! `WebSocketClientConnection` (the upgrade request, `headers_received`),
//! in callback style: instead of a future, the handler's `open` runs when
//! the handshake succeeded and `on_connect_error` when it did not.
//!
//! ```text
//!  parse URL ─▶ resolve (IP literal: at once; a name: on the worker pool,
//!     │          getaddrinfo blocks) ─▶ IOStream::connect ─▶ write GET + Upgrade
//!     │                                                          │
//!     └─ connect_timeout covers it all ◀─ read_until_empty_line ◀┘
//!                                              │ validate_response (§4.1)
//!                                              ▼
//!                           WebSocket::start(Role::Client): open(), frame loop
//! ```
//!
//! After the handshake the connection is the same
//! [`WebSocket`](super::WebSocket) as on the
//! server, with one difference: every frame we send is masked with a fresh
//! random key (RFC 6455 §5.3), and frames we receive must not be.
//! Only plain `ws://` is spoken (no TLS).

use std::cell::{Cell, RefCell};
use std::fmt;
use std::net::{IpAddr, SocketAddr, ToSocketAddrs};
use std::rc::Rc;
use std::time::Duration;

use super::connection::WebSocketOptions;
use super::frame::Role;
use super::handler::WebSocketHandler;
use super::handshake;
use crate::httputil::{is_field_value, is_token};
use crate::ioloop::{IOLoop, TimeoutHandle};
use crate::iostream::{IOStream, StreamError};

/// Default time allowed for resolving, connecting and the handshake
/// together (Tornado's `connect_timeout` default is 20 s).
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(20);

/// Largest handshake response head accepted from a server.
const MAX_RESPONSE_HEAD: usize = 64 * 1024;

/// Most response headers parsed.
const MAX_RESPONSE_HEADERS: usize = 64;

/// How to open a connection, besides the URL.
#[derive(Debug, Clone)]
pub struct ConnectOptions {
    /// Extra request headers (`Origin`, `Cookie`, ...). The handshake's own
    /// (`Host`, `Upgrade`, `Connection`, `Sec-WebSocket-*`) are refused.
    pub headers: Vec<(String, String)>,
    /// Subprotocols to offer, most preferred first.
    pub subprotocols: Vec<String>,
    /// Give up if the connection is not open within this time.
    pub connect_timeout: Duration,
    /// The connection's limits and timers once open (Tornado's
    /// `websocket_connect` arguments `ping_interval`, `ping_timeout`,
    /// `max_message_size`); the handler's
    /// [`options`](WebSocketHandler::options) receives them and may change
    /// them.
    pub websocket: WebSocketOptions,
}

impl Default for ConnectOptions {
    fn default() -> Self {
        ConnectOptions {
            headers: Vec::new(),
            subprotocols: Vec::new(),
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            websocket: WebSocketOptions::default(),
        }
    }
}

/// Why a connection could not be opened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConnectError {
    /// Not a usable `ws://` URL.
    InvalidUrl(String),
    /// A request header that may not be sent.
    InvalidHeader(String),
    /// The host name did not resolve.
    Resolve(String),
    /// The TCP connection failed or broke during the handshake.
    Stream(StreamError),
    /// `connect_timeout` passed.
    Timeout,
    /// The server answered, but not with a valid `101` (status, reason).
    Handshake(u16, String),
    /// No randomness for the handshake key.
    Random(String),
}

impl fmt::Display for ConnectError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConnectError::InvalidUrl(why) => write!(f, "invalid websocket URL: {why}"),
            ConnectError::InvalidHeader(name) => write!(f, "invalid request header {name:?}"),
            ConnectError::Resolve(why) => write!(f, "cannot resolve host: {why}"),
            ConnectError::Stream(e) => write!(f, "connection failed: {e}"),
            ConnectError::Timeout => write!(f, "timed out"),
            ConnectError::Handshake(status, why) => {
                write!(f, "handshake refused (status {status}): {why}")
            }
            ConnectError::Random(why) => write!(f, "no randomness: {why}"),
        }
    }
}

impl std::error::Error for ConnectError {}

/// A parsed `ws://` URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WsUrl {
    /// Host to connect to (an IPv6 literal without its brackets).
    pub host: String,
    /// Port (80 if the URL gives none).
    pub port: u16,
    /// `Host` header value: the URL's authority as written.
    pub host_header: String,
    /// Path and query ("resource name", RFC 6455 §3), at least `/`.
    pub resource: String,
}

impl WsUrl {
    /// Parse `ws://host[:port][/path][?query]` (RFC 6455 §3). Refused:
    /// `wss://` (no TLS here), user info, fragments ("Fragment identifiers
    /// are meaningless in the context of WebSocket URIs and MUST NOT be
    /// used"), and any byte outside visible ASCII (spaces, CR, LF: the URL
    /// goes into the request line).
    pub fn parse(url: &str) -> Result<WsUrl, ConnectError> {
        let bad = |why: &str| Err(ConnectError::InvalidUrl(format!("{why}: {url:?}")));
        if !url.bytes().all(|b| b.is_ascii_graphic()) {
            return bad("characters outside visible ASCII");
        }
        let rest = match url.split_once("://") {
            Some((scheme, rest)) if scheme.eq_ignore_ascii_case("ws") => rest,
            Some((scheme, _)) if scheme.eq_ignore_ascii_case("wss") => {
                return bad("wss:// (TLS) is not supported");
            }
            _ => return bad("not a ws:// URL"),
        };
        if rest.contains('#') {
            return bad("fragment in a websocket URL");
        }
        let split = rest.find(['/', '?']).unwrap_or(rest.len());
        let (authority, resource) = rest.split_at(split);
        if authority.is_empty() || authority.contains('@') {
            return bad("missing host, or user info");
        }
        let resource = match resource.as_bytes().first() {
            None => "/".to_owned(),
            Some(b'?') => format!("/{resource}"),
            Some(_) => resource.to_owned(),
        };
        let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
            let Some((host, after)) = v6.split_once(']') else {
                return bad("unclosed '['");
            };
            (host, after.strip_prefix(':'))
        } else {
            match authority.rsplit_once(':') {
                Some((host, port)) => (host, Some(port)),
                None => (authority, None),
            }
        };
        let port = match port {
            None => 80,
            Some(p) => match p.parse::<u16>() {
                Ok(p) if p != 0 => p,
                _ => return bad("invalid port"),
            },
        };
        if host.is_empty() {
            return bad("missing host");
        }
        Ok(WsUrl {
            host: host.to_owned(),
            port,
            host_header: authority.to_owned(),
            resource,
        })
    }
}

/// Open a WebSocket connection to `url` (`ws://host:port/path?query`).
///
/// Returns at once. Later, exactly one of these happens: the handshake
/// succeeds and `handler.open(ws)` runs (then messages, then `on_close`
/// once), or `handler.on_connect_error(e)` runs. `Err` here means the
/// request could not even be formed (bad URL or header, no randomness).
///
/// ```no_run
/// use squall::ioloop::IOLoop;
/// use squall::websocket::{websocket_connect, ConnectOptions, Message, WebSocket, WebSocketHandler};
///
/// struct Hello;
/// impl WebSocketHandler for Hello {
///     fn open(&self, ws: &WebSocket) {
///         let _ = ws.write_message("hello");
///     }
///     fn on_message(&self, ws: &WebSocket, message: Message) {
///         println!("got {message:?}");
///         ws.close(1000, "bye");
///     }
///     fn on_close(&self, _ws: &WebSocket, code: u16, _reason: &str) {
///         println!("closed with {code}");
///         IOLoop::current().stop();
///     }
/// }
///
/// websocket_connect("ws://127.0.0.1:8888/ws/echo", ConnectOptions::default(), Hello).unwrap();
/// IOLoop::current().start();
/// ```
pub fn websocket_connect(
    url: &str,
    options: ConnectOptions,
    handler: impl WebSocketHandler,
) -> Result<(), ConnectError> {
    let url = WsUrl::parse(url)?;
    let mut nonce = [0u8; 16];
    getrandom::fill(&mut nonce).map_err(|e| ConnectError::Random(e.to_string()))?;
    let key = handshake::client_key(nonce);
    let request = upgrade_request(&url, &key, &options)?;
    let attempt = Rc::new(Attempt {
        handler: Rc::new(handler),
        key,
        subprotocols: options.subprotocols,
        websocket: options.websocket,
        request: RefCell::new(Some(request)),
        stream: RefCell::new(None),
        timer: Cell::new(None),
        done: Cell::new(false),
    });
    let weak = Rc::downgrade(&attempt);
    let timer = IOLoop::current().call_later(options.connect_timeout, move || {
        if let Some(attempt) = weak.upgrade() {
            attempt.timer.set(None);
            attempt.fail(ConnectError::Timeout);
        }
    });
    attempt.timer.set(Some(timer));
    let literal = url.host.parse::<IpAddr>().ok();
    match literal {
        Some(ip) => attempt.connect(SocketAddr::new(ip, url.port)),
        None => {
            // getaddrinfo blocks: the worker pool does it.
            let (host, port) = (url.host.clone(), url.port);
            IOLoop::current().run_in_executor(
                move || {
                    (host.as_str(), port)
                        .to_socket_addrs()
                        .map(|mut addrs| addrs.next())
                        .map_err(|e| e.to_string())
                },
                move |resolved| match resolved {
                    Ok(Some(addr)) => attempt.connect(addr),
                    Ok(None) => attempt.fail(ConnectError::Resolve("no address".into())),
                    Err(e) => attempt.fail(ConnectError::Resolve(e)),
                },
            );
        }
    }
    Ok(())
}

/// The `GET` request of the opening handshake (§4.1).
fn upgrade_request(
    url: &WsUrl,
    key: &str,
    options: &ConnectOptions,
) -> Result<Vec<u8>, ConnectError> {
    let offered: Vec<&str> = options.subprotocols.iter().map(String::as_str).collect();
    if offered.iter().any(|p| !is_token(p)) {
        return Err(ConnectError::InvalidHeader("Sec-WebSocket-Protocol".into()));
    }
    let mut out = format!(
        "GET {} HTTP/1.1\r\nHost: {}\r\n",
        url.resource, url.host_header
    );
    for (name, value) in handshake::request_headers(key, &offered) {
        out.push_str(&format!("{name}: {value}\r\n"));
    }
    for (name, value) in &options.headers {
        let reserved = ["Host", "Upgrade", "Connection"]
            .iter()
            .any(|r| r.eq_ignore_ascii_case(name))
            || name
                .get(..13)
                .is_some_and(|p| p.eq_ignore_ascii_case("Sec-WebSocket"));
        if reserved || !is_token(name) || !is_field_value(value.as_bytes()) {
            return Err(ConnectError::InvalidHeader(name.clone()));
        }
        out.push_str(&format!("{name}: {value}\r\n"));
    }
    out.push_str("\r\n");
    Ok(out.into_bytes())
}

/// One connection attempt, until it becomes a [`WebSocket`](super::WebSocket) or fails.
struct Attempt {
    /// Who hears about the outcome.
    handler: Rc<dyn WebSocketHandler>,
    /// Our `Sec-WebSocket-Key`, to check the server's `Accept`.
    key: String,
    /// What we offered, to check the server's pick.
    subprotocols: Vec<String>,
    /// The caller's options for the open connection, before the handler's
    /// say.
    websocket: WebSocketOptions,
    /// The request bytes, until written.
    request: RefCell<Option<Vec<u8>>>,
    /// The stream, once connecting.
    stream: RefCell<Option<IOStream>>,
    /// The connect timeout, while it runs.
    timer: Cell<Option<TimeoutHandle>>,
    /// Opened or failed: later events are ignored.
    done: Cell<bool>,
}

impl Attempt {
    /// Connect to `addr`, send the request, wait for the response head.
    fn connect(self: Rc<Self>, addr: SocketAddr) {
        if self.done.get() {
            return;
        }
        let on_connect = Rc::clone(&self);
        let stream = match IOStream::connect(addr, move |result| {
            if let Err(e) = result {
                on_connect.fail(ConnectError::Stream(e));
            }
        }) {
            Ok(stream) => stream,
            Err(e) => return self.fail(ConnectError::Stream(e.into())),
        };
        // Small messages should leave at once (Tornado does the same); the
        // server side gets this from `TCPServer` at accept.
        stream.set_nodelay(true);
        // Writes and reads issued now are served once connected.
        if let Some(request) = self.request.borrow_mut().take() {
            let _ = stream.write(request);
        }
        let on_head = Rc::clone(&self);
        stream.read_until_empty_line(Some(MAX_RESPONSE_HEAD), move |result| match result {
            Ok(head) => on_head.on_response_head(&head),
            Err(e) => on_head.fail(ConnectError::Stream(e)),
        });
        *self.stream.borrow_mut() = Some(stream);
    }

    /// The server's answer arrived: check it (§4.1) and open.
    fn on_response_head(&self, head: &[u8]) {
        if self.done.get() {
            return;
        }
        let mut headers = [httparse::EMPTY_HEADER; MAX_RESPONSE_HEADERS];
        let mut response = httparse::Response::new(&mut headers);
        let status = match response.parse(head) {
            Ok(httparse::Status::Complete(_)) => response.code.unwrap_or(0),
            Ok(httparse::Status::Partial) | Err(_) => {
                return self.fail(ConnectError::Handshake(0, "malformed response".into()));
            }
        };
        // Repeated headers joined with ", ", names as sent.
        let mut joined: Vec<(&str, String)> = Vec::new();
        for h in response.headers.iter() {
            let value = String::from_utf8_lossy(h.value).into_owned();
            match joined
                .iter_mut()
                .find(|(n, _)| n.eq_ignore_ascii_case(h.name))
            {
                Some((_, v)) => {
                    v.push_str(", ");
                    v.push_str(&value);
                }
                None => joined.push((h.name, value)),
            }
        }
        let lookup = |name: &str| {
            joined
                .iter()
                .find(|(n, _)| n.eq_ignore_ascii_case(name))
                .map(|(_, v)| v.as_str())
        };
        let offered: Vec<&str> = self.subprotocols.iter().map(String::as_str).collect();
        let subprotocol = match handshake::validate_response(status, lookup, &self.key, &offered) {
            Ok(p) => p,
            Err(e) => return self.fail(ConnectError::Handshake(status, e.reason.into())),
        };
        let Some(stream) = self.finish() else { return };
        let options = self.handler.options(self.websocket.clone());
        super::connection::WebSocket::start(
            stream,
            Role::Client,
            Rc::clone(&self.handler),
            options,
            None,
            subprotocol,
        );
    }

    /// Mark the attempt over: stop the timer, hand over the stream.
    fn finish(&self) -> Option<IOStream> {
        if self.done.replace(true) {
            return None;
        }
        if let Some(timer) = self.timer.take() {
            IOLoop::current().remove_timeout(timer);
        }
        self.stream.borrow_mut().take()
    }

    /// The attempt failed: close the stream, tell the handler (from a loop
    /// callback, so never inside `websocket_connect` itself).
    fn fail(&self, error: ConnectError) {
        if self.done.get() {
            return;
        }
        if let Some(stream) = self.finish() {
            stream.close();
        }
        let handler = Rc::clone(&self.handler);
        IOLoop::current().add_callback(move || handler.on_connect_error(&error));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_ws_urls() {
        let u = WsUrl::parse("ws://127.0.0.1:8888/chatsocket?room=a").unwrap();
        assert_eq!(
            (u.host.as_str(), u.port, u.host_header.as_str()),
            ("127.0.0.1", 8888, "127.0.0.1:8888")
        );
        assert_eq!(u.resource, "/chatsocket?room=a");
        let u = WsUrl::parse("WS://example.com").unwrap();
        assert_eq!((u.port, u.resource.as_str()), (80, "/"));
        let u = WsUrl::parse("ws://example.com?x=1").unwrap();
        assert_eq!(u.resource, "/?x=1");
        let u = WsUrl::parse("ws://[::1]:9000/a").unwrap();
        assert_eq!(
            (u.host.as_str(), u.port, u.host_header.as_str()),
            ("::1", 9000, "[::1]:9000")
        );
    }

    #[test]
    fn refuses_bad_urls() {
        for url in [
            "wss://example.com/",
            "http://example.com/",
            "ws://",
            "ws://:80/",
            "ws://h:0/",
            "ws://h:99999/",
            "ws://user@h/",
            "ws://h/#frag",
            "ws://h/a b",
            "ws://h/a\r\nX-Injected: 1",
            "ws://[::1/",
            "example.com",
        ] {
            assert!(
                matches!(WsUrl::parse(url), Err(ConnectError::InvalidUrl(_))),
                "{url:?}"
            );
        }
    }

    #[test]
    fn request_refuses_reserved_and_invalid_headers() {
        let url = WsUrl::parse("ws://h/").unwrap();
        for (name, value) in [
            ("Host", "x"),
            ("sec-websocket-key", "x"),
            ("Bad Name", "x"),
            ("X-Ok", "a\r\nb"),
        ] {
            let options = ConnectOptions {
                headers: vec![(name.into(), value.into())],
                ..ConnectOptions::default()
            };
            assert!(upgrade_request(&url, "k", &options).is_err(), "{name}");
        }
        let options = ConnectOptions {
            headers: vec![("Origin".into(), "http://h".into())],
            subprotocols: vec!["chat".into()],
            ..ConnectOptions::default()
        };
        let request = String::from_utf8(upgrade_request(&url, "k", &options).unwrap()).unwrap();
        assert!(request.starts_with("GET / HTTP/1.1\r\nHost: h\r\n"));
        assert!(request.contains("Sec-WebSocket-Protocol: chat\r\n"));
        assert!(request.ends_with("Origin: http://h\r\n\r\n"));
    }
}
