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
//! | [`websocket`] | RFC 6455 codec: frames, messages, handshake  | `websocket.py`        |
pub mod ioloop;
pub mod iostream;
pub mod tcpserver;
pub mod websocket;
