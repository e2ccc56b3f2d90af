//! `HTTPServer` = [`TCPServer`] + one HTTP/1.1 connection state machine per
//! accepted stream + the application callback.
//!
//! Mirrors Tornado's `tornado/httpserver.py`. Defaults are Tornado's where
//! the issue or the contract does not say otherwise; each says why.

use std::cell::Cell;
use std::io;
use std::net::SocketAddr;
use std::rc::Rc;
use std::time::Duration;

use super::connection;
use super::request::HTTPServerRequest;
use super::responder::HTTPResponder;
use crate::tcpserver::{BindOptions, StreamOptions, TCPServer};

/// The application: called once per complete request, with the responder
/// that answers it.
pub type RequestCallback = Rc<dyn Fn(HTTPServerRequest, HTTPResponder)>;

/// Limits and timeouts of an [`HTTPServer`].
#[derive(Clone, Debug)]
pub struct HTTPServerOptions {
    /// Largest request head (request line + headers). Over it: 431.
    /// Tornado: `max_header_size` = 64 KiB.
    pub max_header_size: usize,
    /// Largest request body. Over it: 413 (before reading the body when
    /// `Content-Length` says so). 10 MiB: Tornado's 100 MiB default is far
    /// more than any form or JSON API here needs.
    pub max_body_size: u64,
    /// A request head must be complete within this time once the client
    /// started sending it (slowloris defence); else 408 and close.
    pub header_timeout: Duration,
    /// A request body must arrive within this time; else 408 and close.
    pub body_timeout: Duration,
    /// An idle keep-alive connection is closed after this long. Tornado:
    /// `idle_connection_timeout` = 3600 s, which bdarnell calls "deliberately
    /// conservative"; 5 minutes frees descriptors sooner while still far
    /// above any browser's own keep-alive.
    pub idle_connection_timeout: Duration,
    /// Close every connection after one response.
    pub no_keep_alive: bool,
    /// Trust `X-Real-Ip` / `X-Forwarded-For` for `remote_ip` (behind a proxy).
    pub xheaders: bool,
    /// Cap on each connection's write buffer (slow readers are closed past it).
    pub max_write_buffer_size: usize,
}

impl Default for HTTPServerOptions {
    fn default() -> HTTPServerOptions {
        HTTPServerOptions {
            max_header_size: 64 * 1024,
            max_body_size: 10 * 1024 * 1024,
            header_timeout: Duration::from_secs(30),
            body_timeout: Duration::from_secs(120),
            idle_connection_timeout: Duration::from_secs(300),
            no_keep_alive: false,
            xheaders: false,
            max_write_buffer_size: crate::iostream::DEFAULT_MAX_WRITE_BUFFER_SIZE,
        }
    }
}

/// Counters shared by all connections of a server (for `/metrics`).
#[derive(Default, Debug)]
pub struct ServerStats {
    /// Connections currently open.
    pub open_connections: Cell<usize>,
    /// Requests dispatched since start.
    pub requests: Cell<u64>,
}

/// An HTTP/1.1 server.
///
/// ```no_run
/// use squall::http::{HTTPServer, HTTPServerOptions};
/// use squall::httputil::HTTPHeaders;
/// let server = HTTPServer::new(HTTPServerOptions::default(), |request, mut responder| {
///     let body = format!("you asked for {}\n", request.path());
///     responder.write_headers(200, &HTTPHeaders::new(), body.as_bytes(), true);
/// });
/// server.listen("127.0.0.1:8888".parse().unwrap()).unwrap();
/// squall::ioloop::IOLoop::current().start();
/// ```
#[derive(Clone)]
pub struct HTTPServer {
    /// Accepts connections.
    tcp: TCPServer,
    /// Counters.
    stats: Rc<ServerStats>,
}

impl HTTPServer {
    /// A server on the current loop that calls `callback` for each request.
    pub fn new(
        options: HTTPServerOptions,
        callback: impl Fn(HTTPServerRequest, HTTPResponder) + 'static,
    ) -> HTTPServer {
        let stats = Rc::new(ServerStats::default());
        let callback: RequestCallback = Rc::new(callback);
        let stream_options = StreamOptions {
            // Room for a whole head or body plus what may be pipelined behind.
            max_buffer_size: (options.max_header_size as u64)
                .max(options.max_body_size)
                .saturating_add(64 * 1024)
                .try_into()
                .unwrap_or(usize::MAX),
            max_write_buffer_size: options.max_write_buffer_size,
        };
        let options = Rc::new(options);
        let conn_stats = Rc::clone(&stats);
        let tcp = TCPServer::with_options(stream_options, move |stream, _addr| {
            connection::start(
                stream,
                Rc::clone(&options),
                Rc::clone(&callback),
                Rc::clone(&conn_stats),
            );
        });
        HTTPServer { tcp, stats }
    }

    /// Listen on `addr` (port 0 picks one); returns the bound address.
    pub fn listen(&self, addr: SocketAddr) -> io::Result<SocketAddr> {
        self.tcp.listen(addr)
    }

    /// Listen on every address `host` resolves to.
    pub fn listen_host(
        &self,
        host: &str,
        port: u16,
        options: &BindOptions,
    ) -> io::Result<Vec<SocketAddr>> {
        self.tcp.listen_host(host, port, options)
    }

    /// Stop accepting new connections (open ones go on).
    pub fn stop(&self) {
        self.tcp.stop();
    }

    /// Server-wide counters.
    pub fn stats(&self) -> Rc<ServerStats> {
        Rc::clone(&self.stats)
    }

    /// The underlying TCP server.
    pub fn tcp(&self) -> &TCPServer {
        &self.tcp
    }
}
