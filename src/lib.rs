//! squall: Tornado's reactor design rebuilt from scratch in Rust.
//!
//! One thread runs one [`ioloop::IOLoop`]; everything else is callbacks on top.
//!
//! # Layout
//!
//! Lower layers never import higher ones.
//!
//! | module        | what it is                                   | Tornado file          |
//! |---------------|----------------------------------------------|-----------------------|
//! | [`ioloop`]    | the reactor: fd handlers, callbacks, timers  | `ioloop.py`           |
//! | [`iostream`]  | buffered non-blocking socket with callbacks  | `iostream.py`         |
//! | [`tcpserver`] | listen + accept, one IOStream per connection | `tcpserver.py`        |
//! | [`httputil`]  | sans-IO HTTP pieces: headers, args, cookies  | `httputil.py`         |
//! | [`http`]      | HTTP/1.1 connection state machine, server    | `http1connection.py`, `httpserver.py` |
//! | [`escape`]    | HTML/JSON/URL escaping, linkify              | `escape.py`           |
//! | [`web`]       | Application, RequestHandler, cookies, XSRF   | `web.py`              |
//! | [`websocket`] | RFC 6455: codec, connection, handler, client | `websocket.py`        |
//! | [`httpclient`] | AsyncHTTPClient, blocking HTTPClient (http://) | `simple_httpclient.py`, `httpclient.py` |
//! | [`logging`]   | the logger: `RUST_LOG`, a line per record, batched per loop iteration | `log.py` |
//! | [`apps`]      | the demo apps (echo, chat, cart, ...)        | `demos/`              |
pub mod ioloop;
pub mod iostream;
pub mod tcpserver;

pub mod escape;
pub mod http;
pub mod httpclient;
pub mod httputil;
pub mod web;
pub mod websocket;

pub mod logging;

pub mod apps;
