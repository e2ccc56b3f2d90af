//! HTTP/1.1 server, hand-written on httparse.
//!
//! | file            | what it is                                        | Tornado            |
//! |-----------------|---------------------------------------------------|--------------------|
//! | `parse.rs`      | header block → validated head; framing rules      | `http1connection.py` (reading), `httputil.parse_request_start_line` |
//! | `connection.rs` | per-connection state machine (the pump)            | `http1connection.py` (`HTTP1ServerConnection`) |
//! | `responder.rs`  | response framing: length / chunked / close        | `http1connection.py` (writing) |
//! | `request.rs`    | the request handed to the application             | `httputil.HTTPServerRequest` |
//! | `server.rs`     | TCPServer + connections + the application         | `httpserver.py`    |
mod connection;
pub mod parse;
mod request;
mod responder;
mod server;

pub use parse::Version;
pub use request::HTTPServerRequest;
pub use responder::{
    reason_phrase, with_http_date, HTTPResponder, ACCESS_LOG_TARGET, SERVER_HEADER,
};
pub use server::{HTTPServer, HTTPServerOptions, RequestCallback, ServerStats};
