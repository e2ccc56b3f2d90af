//! `hyper_peer --port P [--backlog B]`: hyper 1.x, one thread, for the
//! `hello` cases of `benches/compare.sh`.
//!
//! The issue states squall's hello targets against hyper ("≈ 1.1× hyper at
//! 50 connections", "pipelined ≥ 4× hyper"), so hyper runs in the same run,
//! on the same core and with the same client, as squall, Tornado and the bare
//! responder. It is configured the way hyper's own examples serve HTTP/1.1:
//! a current-thread tokio runtime (one core, like every server here), one
//! task per connection, keep-alive on, hyper's defaults otherwise; in
//! particular `pipeline_flush` stays off, as in the measurements the issue
//! quotes, so hyper writes each pipelined response separately.
//!
//! Routes: `GET /hello` → `Hello, world!` (`text/plain; charset=UTF-8`, like
//! squall's and the bare responder's), `GET /healthz` → `ok\n` (the readiness
//! probe), anything else → 404. The listen backlog is squall's default
//! (4096) so `storm-*` compares accept queues alike.

use std::convert::Infallible;
use std::net::{Ipv4Addr, SocketAddr};

use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::header::{HeaderValue, CONTENT_TYPE};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpSocket;

/// Answer one request (see the module docs for the routes).
async fn answer(req: Request<Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    let (status, body): (StatusCode, &'static [u8]) = match req.uri().path() {
        "/hello" => (StatusCode::OK, b"Hello, world!"),
        "/healthz" => (StatusCode::OK, b"ok\n"),
        _ => (StatusCode::NOT_FOUND, b"not found\n"),
    };
    let mut resp = Response::new(Full::new(Bytes::from_static(body)));
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=UTF-8"),
    );
    Ok(resp)
}

/// `--port` and `--backlog` from the command line.
fn parse_args() -> Result<(u16, u32), String> {
    let (mut port, mut backlog) = (9998u16, 4096u32);
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut i = 0;
    while i < args.len() {
        let value = args
            .get(i + 1)
            .ok_or(format!("{} needs a value", args[i]))?;
        match args[i].as_str() {
            "--port" => port = value.parse().map_err(|e| format!("--port: {e}"))?,
            "--backlog" => backlog = value.parse().map_err(|e| format!("--backlog: {e}"))?,
            other => return Err(format!("unknown argument {other}")),
        }
        i += 2;
    }
    Ok((port, backlog))
}

fn main() {
    let (port, backlog) = match parse_args() {
        Ok(v) => v,
        Err(e) => {
            eprintln!("hyper_peer: {e} (usage: hyper_peer --port P [--backlog B])");
            std::process::exit(2);
        }
    };
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("hyper_peer: tokio runtime: {e}");
            std::process::exit(1);
        }
    };
    if let Err(e) = runtime.block_on(serve(port, backlog)) {
        eprintln!("hyper_peer: {e}");
        std::process::exit(1);
    }
}

/// Listen on 127.0.0.1:`port` and serve every connection on this thread.
async fn serve(port: u16, backlog: u32) -> std::io::Result<()> {
    let socket = TcpSocket::new_v4()?;
    socket.set_reuseaddr(true)?;
    socket.bind(SocketAddr::from((Ipv4Addr::LOCALHOST, port)))?;
    let listener = socket.listen(backlog)?;
    loop {
        let (stream, _) = match listener.accept().await {
            Ok(pair) => pair,
            // EMFILE and friends: skip this one, keep serving the rest.
            Err(e) => {
                eprintln!("hyper_peer: accept: {e}");
                tokio::task::yield_now().await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        tokio::task::spawn(async move {
            // A client that resets or sends garbage ends only its own task.
            let _ = http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service_fn(answer))
                .await;
        });
    }
}
