//! Line echo server: the first example of the library.
//!
//! Mirrors Tornado's `demos/tcpecho/server.py`: each connection loops
//! `read_until(b"\n")` → write the line back. A client that sends more than
//! `max_line` bytes without a newline is told why and disconnected; the
//! others are not affected.
//!
//! Try it: `cargo run --example echo_server -- --port 8889`, then
//! `telnet 127.0.0.1 8889` (or `nc 127.0.0.1 8889`) and type lines.

use std::net::SocketAddr;

use crate::iostream::{IOStream, StreamError};
use crate::tcpserver::{BindOptions, TCPServer};

/// Longest line accepted by default, newline included.
pub const DEFAULT_MAX_LINE: usize = 64 * 1024;

/// Start an echo server on `addr`; returns it and the bound address.
pub fn listen(addr: SocketAddr, max_line: usize) -> std::io::Result<(TCPServer, SocketAddr)> {
    listen_with(addr, max_line, &BindOptions::default())
}

/// [`listen`] with bind options (the `squall echo` command passes its
/// `--reuse-port` and `--tcp-keepalive`: a telnet client that vanished
/// would otherwise hold its connection forever).
pub fn listen_with(
    addr: SocketAddr,
    max_line: usize,
    options: &BindOptions,
) -> std::io::Result<(TCPServer, SocketAddr)> {
    let server = TCPServer::new(move |stream, peer| {
        log::debug!("echo: connection from {peer}");
        echo_next_line(stream, max_line);
    });
    let bound = server.bind(addr, options)?;
    log::info!("echo server listening on {bound}");
    Ok((server, bound))
}

/// Read one line, write it back, repeat until the client goes away.
fn echo_next_line(stream: IOStream, max_line: usize) {
    let s = stream.clone();
    stream.read_until(b"\n", Some(max_line), move |result| match result {
        Ok(line) => {
            if s.write(line).is_ok() {
                echo_next_line(s, max_line);
            }
        }
        Err(StreamError::Unsatisfiable { max_bytes }) => {
            // The stream closes itself once this message is flushed.
            let msg = format!("error: line longer than {max_bytes} bytes; closing\n");
            let _ = s.write(msg.into_bytes());
        }
        Err(StreamError::Closed) => log::debug!("echo: lost client {:?}", s.peer_addr()),
        Err(e) => log::info!("echo: client {:?}: {e}", s.peer_addr()),
    });
}
