//! The slow upstream API that stands in for Twitter's search, served by a
//! second [`IOLoop`] on its own thread.
//!
//! `GET /upstream?q=<query>&delay_ms=<N>` answers, after `N` ms, JSON shaped
//! like the old search API the book called: `{"query": q, "results":
//! [{"id", "created_at_ms", "text"}, ...]}` (100 results, newest first,
//! spaced by an interval derived from `q`, so each query has its own rate).
//! The wait is a `call_later`, so the upstream's loop never blocks and one
//! upstream serves any number of slow requests at once.
//!
//! # Why a second loop on a second thread
//!
//! `/rate/blocking` freezes the main loop while it waits for the upstream.
//! If the upstream were served by that same loop, nobody would be left to
//! answer it: the fetch would wait on itself until it timed out. So the
//! upstream runs on its own thread with its own loop and its own
//! HTTPServer, on a port chosen at start-up. An `IOLoop` belongs to the
//! thread that runs it (it is not `Send`): the main thread cannot even hold
//! the upstream's loop — it gets an [`IOLoopHandle`], whose `add_callback`
//! is the one thread-safe door into it (used here to stop it).
//!
//! The site binds the upstream's port at start-up but starts its thread
//! only when a `/rate` route first needs it ([`PendingUpstream`]): until
//! then the server is one thread (see `docs/reactor.md`, "Signals").

use std::cell::RefCell;
use std::io;
use std::net::SocketAddr;
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::Duration;

use serde_json::json;

use mio::net::TcpListener;

use crate::http::{HTTPServer, HTTPServerOptions};
use crate::ioloop::{IOLoop, IOLoopHandle};
use crate::tcpserver::{bind_socket, BindOptions};
use crate::web::{Application, Ctx, HTTPError, HandlerResult, RequestHandler, Settings};

/// Longest delay the upstream accepts (ms).
pub const MAX_DELAY_MS: u64 = 10_000;

/// Results in one answer (the book asked Twitter for `rpp=100`).
pub const RESULTS: usize = 100;

/// Longest accepted query.
pub const MAX_QUERY_LEN: usize = 200;

/// `GET /upstream`: the slow API.
pub struct Upstream;

impl RequestHandler for Upstream {
    fn get(&self, cx: &Ctx) -> HandlerResult {
        let q = query_arg(cx)?;
        let delay = delay_arg(cx, 0)?;
        let ioloop = IOLoop::current();
        let waiting = cx.clone();
        let timer = ioloop.call_later(Duration::from_millis(delay), move || {
            waiting.set_header("Content-Type", "application/json; charset=UTF-8");
            waiting.finish_json(&fake_search(&q));
        });
        // A client that leaves frees its timer (and with it the Ctx) now.
        cx.on_connection_close(move || {
            IOLoop::current().remove_timeout(timer);
        });
        Ok(())
    }
}

/// `q`, default `squall`, at most [`MAX_QUERY_LEN`] bytes.
pub(crate) fn query_arg(cx: &Ctx) -> Result<String, HTTPError> {
    let q = cx
        .get_argument_opt("q")?
        .filter(|q| !q.is_empty())
        .unwrap_or_else(|| "squall".to_string());
    if q.len() > MAX_QUERY_LEN {
        return Err(HTTPError::bad_request(format!(
            "q: at most {MAX_QUERY_LEN} bytes"
        )));
    }
    Ok(q)
}

/// `delay_ms`, default `default`, 0..=[`MAX_DELAY_MS`].
pub(crate) fn delay_arg(cx: &Ctx, default: u64) -> Result<u64, HTTPError> {
    match cx.get_argument_opt("delay_ms")? {
        None => Ok(default),
        Some(s) => match s.parse::<u64>() {
            Ok(ms) if ms <= MAX_DELAY_MS => Ok(ms),
            _ => Err(HTTPError::bad_request(format!(
                "delay_ms: a whole number of milliseconds from 0 to {MAX_DELAY_MS}"
            ))),
        },
    }
}

/// The fake search answer for `q`: deterministic, 100 results newest first.
pub fn fake_search(q: &str) -> serde_json::Value {
    // FNV-1a: a stable per-query interval between 50 and 2049 ms.
    let hash = q.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    });
    let interval = 50 + hash % 2000;
    let newest: u64 = 1_300_000_000_000; // March 2011, the book's era
    let results: Vec<serde_json::Value> = (0..RESULTS as u64)
        .map(|i| {
            json!({
                "id": i,
                "created_at_ms": newest - i * interval,
                "text": format!("tweet {i} about {q}"),
            })
        })
        .collect();
    json!({ "query": q, "results": results })
}

/// The upstream's thread, loop and server.
pub struct UpstreamServer {
    /// Where it listens.
    pub addr: SocketAddr,
    /// Reaches its loop from other threads.
    handle: IOLoopHandle,
    /// Its thread.
    thread: Option<JoinHandle<()>>,
}

impl UpstreamServer {
    /// Start a thread that runs its own loop and an HTTPServer with
    /// `/upstream` on `addr` (port 0 picks one). Returns once it listens.
    /// Dropping the value leaves the thread running (for the life of the
    /// process); [`stop`](Self::stop) ends it.
    pub fn spawn(addr: SocketAddr) -> io::Result<UpstreamServer> {
        UpstreamServer::serve(bind_socket(addr, &BindOptions::default())?)
    }

    /// [`spawn`](Self::spawn) on a listener bound already (by
    /// [`PendingUpstream`], before the thread exists).
    pub fn serve(listener: TcpListener) -> io::Result<UpstreamServer> {
        let (tx, rx) = mpsc::channel::<io::Result<(SocketAddr, IOLoopHandle)>>();
        let thread = std::thread::Builder::new()
            .name("squall-upstream".into())
            .spawn(move || {
                // A new thread: this creates its own loop.
                let ioloop = IOLoop::current();
                let started = Application::new(Settings::default()).and_then(|mut app| {
                    app.route("/upstream", Upstream);
                    let server = HTTPServer::new(HTTPServerOptions::default(), app.into_callback());
                    server.tcp().add_socket(listener)
                });
                match started {
                    Ok(bound) => {
                        let _ = tx.send(Ok((bound, ioloop.handle())));
                        ioloop.start();
                    }
                    Err(e) => {
                        let _ = tx.send(Err(e));
                    }
                }
            })?;
        let (addr, handle) = rx
            .recv()
            .map_err(|_| io::Error::other("the upstream thread died while starting"))??;
        Ok(UpstreamServer {
            addr,
            handle,
            thread: Some(thread),
        })
    }

    /// Stop its loop and wait for the thread to end.
    pub fn stop(mut self) {
        self.handle.add_callback(|| IOLoop::current().stop());
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// The upstream's port, bound at start-up, and its thread, started on
/// first use.
///
/// Connections that arrive before the thread runs wait in the listen
/// queue. Lives on the main loop's thread (not `Send`).
pub struct PendingUpstream {
    /// Where it listens (known before the thread starts).
    pub addr: SocketAddr,
    /// The bound listener until [`start`](Self::start) hands it on; `None`
    /// afterwards.
    listener: RefCell<Option<TcpListener>>,
    /// The running thread, kept so it is not detached silently.
    running: RefCell<Option<UpstreamServer>>,
}

impl PendingUpstream {
    /// Bind `addr` (port 0 picks one); no thread yet.
    pub fn bind(addr: SocketAddr) -> io::Result<PendingUpstream> {
        let listener = bind_socket(addr, &BindOptions::default())?;
        Ok(PendingUpstream {
            addr: listener.local_addr()?,
            listener: RefCell::new(Some(listener)),
            running: RefCell::new(None),
        })
    }

    /// Start the thread if it is not running yet. A failure is logged: the
    /// listener is gone with it, so the demo's fetches then fail with
    /// "connection refused" and show that on their page.
    pub fn start(&self) {
        let Some(listener) = self.listener.borrow_mut().take() else {
            return;
        };
        match UpstreamServer::serve(listener) {
            Ok(server) => {
                log::info!(
                    "/rate demo: slow upstream started at http://{}/upstream",
                    server.addr
                );
                *self.running.borrow_mut() = Some(server);
            }
            Err(e) => log::error!("/rate demo: cannot start the upstream's thread: {e}"),
        }
    }

    /// True once the thread runs.
    pub fn is_running(&self) -> bool {
        self.running.borrow().is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fake_search_is_deterministic_and_newest_first() {
        let a = fake_search("tornado");
        assert_eq!(a, fake_search("tornado"));
        let results = a["results"].as_array().expect("results");
        assert_eq!(results.len(), RESULTS);
        let first = results[0]["created_at_ms"].as_u64().expect("ms");
        let last = results[RESULTS - 1]["created_at_ms"].as_u64().expect("ms");
        assert!(first > last);
    }
}
