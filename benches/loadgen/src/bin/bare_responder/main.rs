//! `bare_responder --port P`: the ceiling for the `hello` cases and the
//! floor for the chat fan-out cases.
//!
//! A minimal single-threaded mio + httparse HTTP/1.1 keep-alive server that
//! does the least work any correct server must, so that squall can be
//! measured against it in the same run:
//!
//! - `GET /hello` and `GET /healthz` answer the canned 13-byte
//!   `Hello, world!`: drain the socket, parse every complete request in the
//!   read buffer, append one canned response per request, write them all in
//!   one `write` (the `hello` ceiling; this path is kept as lean as before
//!   the chat routes were added).
//! - The minimum of the chat contract that `loadgen longpoll-fanout`,
//!   `ws-fanout` and `idle --kind longpoll|ws` use (see [`routes`]): every
//!   broadcast is serialized once, then written to each waiter or member
//!   with one `write` of the same bytes (the fan-out floor).
//!
//! It is a yardstick, not a server to deploy: logins are not signed, there
//! is no account store and no access log.
//!
//! Bounds: 64 KiB of unparsed request head per connection, request bodies
//! up to 1 MiB (skipped on `/hello`, read on the chat routes), 1 MiB of
//! unwritten output (past that it stops reading until the client drains; a
//! WebSocket member that falls that far behind a broadcast is dropped),
//! WebSocket messages up to 64 KiB (close 1009 beyond), 200 cached messages
//! per room, 1 024 rooms. Chunked request bodies and anything unparsable get
//! a 400 and a close.
//!
//! | module       | what it holds                                              |
//! |--------------|------------------------------------------------------------|
//! | [`listen`]   | the listening socket with a deep accept queue             |
//! | [`server`]   | the event loop: accept, read, write, close, deliver        |
//! | [`conn`]     | one connection: buffers, bounds, and its chat state        |
//! | [`http`]     | request framing, the `/hello` fast path, answer heads      |
//! | [`routes`]   | the chat contract's routes                                 |
//! | [`form`]     | urlencoded forms, query strings and cookies                |
//! | [`chat`]     | rooms: history, parked waiters, WebSocket members          |
//! | [`message`]  | one chat message serialized the way squall does            |
//! | [`ws`]       | the server side of RFC 6455                                |
//! | [`clock`]    | calendar dates for `Date:` and the message's `<time>`      |

mod chat;
mod clock;
mod conn;
mod form;
mod http;
mod listen;
mod message;
mod routes;
mod server;
mod ws;

/// Parse `--port` and `--backlog`, listen on 127.0.0.1, serve forever.
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
    let listener = match listen::listen(port, backlog) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("bare_responder: cannot listen on 127.0.0.1:{port}: {e}");
            std::process::exit(1);
        }
    };
    let mut server = match server::Server::new(listener) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("bare_responder: poll: {e}");
            std::process::exit(1);
        }
    };
    eprintln!("bare_responder: listening on 127.0.0.1:{port}");
    if let Err(e) = server.run() {
        eprintln!("bare_responder: poll: {e}");
        std::process::exit(1);
    }
}
