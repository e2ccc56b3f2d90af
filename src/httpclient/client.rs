//! [`AsyncHTTPClient`]: the queue, the timers, redirects and the pool
//! around each [`exchange`].
//!
//! Mirrors Tornado's `SimpleAsyncHTTPClient` (`fetch_impl`,
//! `_process_queue`, `_on_timeout`) and `_HTTPConnection.run` / `finish`
//! in `tornado/simple_httpclient.py`.
//!
//! # One fetch
//!
//! ```text
//! fetch() ─validate─▶ Queued ──slot free──▶ Connecting ──▶ Requesting ──▶ callback(Ok)
//!    │                  │      (max_clients)  resolve,        exchange       ▲
//!    │                  │                     connect         │ 3xx+Location │
//!    │                  │                       ▲             └──redirect────┘ (same slot)
//!    ▼                  ▼                       └─────────────────┘
//! callback(Err)    deadline timer / connect timer / error ──────────────▶ callback(Err)
//! ```
//!
//! A [`Fetch`] lives from `fetch()` to its callback. Its **deadline** is
//! `fetch time + request_timeout`: time in the queue, connecting, and
//! following redirects all count (Tornado's queue timeout does the same
//! job). While connecting, a second timer enforces `connect_timeout`.
//!
//! # Invariants
//!
//! * **The callback runs exactly once**, always from the loop's callback
//!   queue (never inside `fetch` or inside the client's own code), so a
//!   callback may call `fetch` again freely.
//! * **Whoever finishes first wins.** A timer, an error and the response
//!   race; `finish` takes the callback out, cancels both timers, closes the
//!   stream and frees the slot. Late arrivals see the callback gone (or a
//!   newer `attempt`) and do nothing.
//! * **A slot is held from dequeue to finish**, across redirects and the
//!   retry, and is given back exactly once (`holds_slot`).

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::rc::Rc;
use std::time::{Duration, Instant};

use super::encode::{encode, validate};
use super::exchange::{self, Failure, Limits, RawResponse};
use super::pool::{Key, Pool};
use super::request::{HTTPClientError, HTTPRequest, HTTPResponse, TimeoutPhase};
use super::resolve::{resolve, Resolved};
use super::url::Url;
use crate::ioloop::{deadline_after, IOLoop, TimeoutHandle};
use crate::iostream::{IOStream, StreamError, READ_CHUNK_SIZE};

/// What the caller's callback receives.
pub type FetchResult = Result<HTTPResponse, HTTPClientError>;

/// The caller's callback.
type Callback = Box<dyn FnOnce(FetchResult)>;

/// Limits and behaviour of one [`AsyncHTTPClient`].
#[derive(Clone, Debug)]
pub struct ClientOptions {
    /// Fetches in progress at once; more wait in a FIFO queue (Tornado: 10).
    pub max_clients: usize,
    /// Largest response body kept in memory (Tornado's `max_buffer_size`
    /// and `max_body_size`: 100 MiB). Over it: [`HTTPClientError::TooLarge`].
    pub max_body_size: usize,
    /// Largest response head (Tornado: 64 KiB).
    pub max_header_size: usize,
    /// Reuse connections. Off (the default, as in Tornado): every request
    /// says `Connection: close`. On: idle connections are pooled per host.
    pub keep_alive: bool,
    /// Idle connections kept per `(host, port)` (with `keep_alive`).
    pub max_idle_per_host: usize,
    /// Idle connections kept in all (with `keep_alive`).
    pub max_idle_total: usize,
    /// An idle connection older than this is closed, not reused.
    pub max_idle_time: Duration,
}

impl Default for ClientOptions {
    fn default() -> ClientOptions {
        ClientOptions {
            max_clients: 10,
            max_body_size: 100 * 1024 * 1024,
            max_header_size: 64 * 1024,
            keep_alive: false,
            max_idle_per_host: 4,
            max_idle_total: 64,
            max_idle_time: Duration::from_secs(60),
        }
    }
}

/// A non-blocking HTTP/1.1 client on the current [`IOLoop`] (plain
/// `http://` only; `https://` fails with "https is not supported").
///
/// ```no_run
/// use squall::httpclient::{AsyncHTTPClient, HTTPRequest};
/// use squall::ioloop::IOLoop;
/// let client = AsyncHTTPClient::new();
/// client.fetch(HTTPRequest::new("http://127.0.0.1:8888/hello"), |result| {
///     match result {
///         Ok(response) => println!("{} {}", response.code, response.text()),
///         Err(e) => println!("failed: {e}"),
///     }
///     IOLoop::current().stop();
/// });
/// IOLoop::current().start();
/// ```
///
/// Cheap to clone: clones share the queue, the slots and the pool.
#[derive(Clone)]
pub struct AsyncHTTPClient {
    inner: Rc<ClientInner>,
}

/// State shared by a client's clones and its fetches.
struct ClientInner {
    /// The loop everything runs on.
    ioloop: IOLoop,
    /// Limits.
    options: ClientOptions,
    /// Fetches holding a slot.
    active: Cell<usize>,
    /// Fetches waiting for a slot, oldest first.
    queue: RefCell<VecDeque<Rc<Fetch>>>,
    /// Idle keep-alive connections.
    pool: Rc<RefCell<Pool>>,
    /// `close` was called: new fetches fail at once.
    closed: Cell<bool>,
}

/// One call of `fetch`, across its redirects.
struct Fetch {
    /// The client (a queued fetch keeps it alive; the cycle through the
    /// queue is broken when the fetch leaves it).
    client: Rc<ClientInner>,
    /// The request of the current hop (redirects rewrite method, body and
    /// headers).
    request: RefCell<HTTPRequest>,
    /// The URL of the current hop.
    url: RefCell<Url>,
    /// Redirects still allowed.
    redirects_left: Cell<u32>,
    /// When `fetch` was called.
    start: Instant,
    /// `start + request_timeout`.
    deadline: Instant,
    /// The caller's callback; `None` once finished.
    callback: RefCell<Option<Callback>>,
    /// The whole-fetch timer.
    deadline_timer: Cell<Option<TimeoutHandle>>,
    /// The connect timer (only while connecting).
    connect_timer: Cell<Option<TimeoutHandle>>,
    /// What the fetch is doing (for the timeout message).
    phase: Cell<TimeoutPhase>,
    /// The connection in use, if any.
    stream: RefCell<Option<IOStream>>,
    /// This fetch counts against `max_clients`.
    holds_slot: Cell<bool>,
    /// Bumped at every connection attempt; callbacks of an older attempt
    /// are stale and ignored.
    attempt: Cell<u64>,
    /// The one retry on a fresh connection was used.
    retried: Cell<bool>,
}

impl Default for AsyncHTTPClient {
    fn default() -> AsyncHTTPClient {
        AsyncHTTPClient::new()
    }
}

impl AsyncHTTPClient {
    /// A client on the current loop with [`ClientOptions::default`].
    pub fn new() -> AsyncHTTPClient {
        AsyncHTTPClient::with_options(ClientOptions::default())
    }

    /// A client on the current loop with `options`.
    pub fn with_options(options: ClientOptions) -> AsyncHTTPClient {
        let pool = Pool::new(
            options.max_idle_per_host,
            options.max_idle_total,
            options.max_idle_time,
        );
        AsyncHTTPClient {
            inner: Rc::new(ClientInner {
                ioloop: IOLoop::current(),
                options,
                active: Cell::new(0),
                queue: RefCell::new(VecDeque::new()),
                pool: Rc::new(RefCell::new(pool)),
                closed: Cell::new(false),
            }),
        }
    }

    /// The options.
    pub fn options(&self) -> &ClientOptions {
        &self.inner.options
    }

    /// Start fetching `request`; `callback` gets the response or the error,
    /// on a later loop iteration, exactly once.
    pub fn fetch(&self, request: HTTPRequest, callback: impl FnOnce(FetchResult) + 'static) {
        let inner = &self.inner;
        let callback: Callback = Box::new(callback);
        let checked = if inner.closed.get() {
            Err(HTTPClientError::ClientClosed)
        } else {
            validate(&request)
                .and_then(|()| Url::parse(&request.url).map_err(HTTPClientError::InvalidUrl))
        };
        let url = match checked {
            Ok(url) => url,
            Err(e) => {
                inner.ioloop.add_callback(move || callback(Err(e)));
                return;
            }
        };
        let start = inner.ioloop.time();
        let fetch = Rc::new(Fetch {
            client: Rc::clone(inner),
            redirects_left: Cell::new(request.max_redirects),
            deadline: deadline_after(start, request.request_timeout),
            request: RefCell::new(request),
            url: RefCell::new(url),
            start,
            callback: RefCell::new(Some(callback)),
            deadline_timer: Cell::new(None),
            connect_timer: Cell::new(None),
            phase: Cell::new(TimeoutPhase::InQueue),
            stream: RefCell::new(None),
            holds_slot: Cell::new(false),
            attempt: Cell::new(0),
            retried: Cell::new(false),
        });
        let weak = Rc::downgrade(&fetch);
        let timer = inner.ioloop.call_at(fetch.deadline, move || {
            if let Some(fetch) = weak.upgrade() {
                fetch.deadline_timer.set(None);
                let phase = fetch.phase.get();
                finish(&fetch, Err(HTTPClientError::Timeout(phase)));
            }
        });
        fetch.deadline_timer.set(Some(timer));
        inner.queue.borrow_mut().push_back(fetch);
        process_queue(inner);
    }

    /// Fetches holding a slot now.
    pub fn active(&self) -> usize {
        self.inner.active.get()
    }

    /// Fetches waiting for a slot now.
    pub fn queued(&self) -> usize {
        self.inner.queue.borrow().len()
    }

    /// Idle keep-alive connections held now.
    pub fn idle_connections(&self) -> usize {
        self.inner.pool.borrow().len()
    }

    /// Stop: queued fetches fail with [`HTTPClientError::ClientClosed`],
    /// idle connections close, new fetches fail at once. Fetches already
    /// running finish normally.
    pub fn close(&self) {
        self.inner.closed.set(true);
        let queued: Vec<Rc<Fetch>> = self.inner.queue.borrow_mut().drain(..).collect();
        for fetch in queued {
            finish(&fetch, Err(HTTPClientError::ClientClosed));
        }
        let idle = self.inner.pool.borrow_mut().clear();
        for stream in idle {
            stream.close();
        }
    }
}

/// Start queued fetches while slots are free.
fn process_queue(client: &Rc<ClientInner>) {
    while client.active.get() < client.options.max_clients.max(1) {
        let next = client.queue.borrow_mut().pop_front();
        let Some(fetch) = next else { return };
        if fetch.callback.borrow().is_none() {
            continue;
        }
        client.active.set(client.active.get() + 1);
        fetch.holds_slot.set(true);
        start_hop(&fetch, true);
    }
}

/// True if a callback of `attempt` arrives too late to matter.
fn stale(fetch: &Fetch, attempt: u64) -> bool {
    fetch.callback.borrow().is_none() || fetch.attempt.get() != attempt
}

/// Connect (or take a pooled connection) for the current URL and send.
fn start_hop(fetch: &Rc<Fetch>, may_reuse: bool) {
    let attempt = fetch.attempt.get() + 1;
    fetch.attempt.set(attempt);
    fetch.phase.set(TimeoutPhase::Connecting);
    let client = &fetch.client;
    let key = key_of(&fetch.url.borrow());
    if client.options.keep_alive && may_reuse {
        let reused = client.pool.borrow_mut().take(&key);
        if let Some(stream) = reused {
            send(fetch, stream, true);
            return;
        }
    }
    let connect_by = fetch.deadline.min(deadline_after(
        client.ioloop.time(),
        fetch.request.borrow().connect_timeout,
    ));
    let weak = Rc::downgrade(fetch);
    let timer = client.ioloop.call_at(connect_by, move || {
        if let Some(fetch) = weak.upgrade() {
            fetch.connect_timer.set(None);
            finish(
                &fetch,
                Err(HTTPClientError::Timeout(TimeoutPhase::Connecting)),
            );
        }
    });
    if let Some(old) = fetch.connect_timer.replace(Some(timer)) {
        client.ioloop.remove_timeout(old);
    }
    let again = Rc::clone(fetch);
    resolve(&key.0, key.1, move |resolved: Resolved| {
        if stale(&again, attempt) {
            return;
        }
        match resolved {
            Ok(addrs) => connect_next(&again, attempt, Rc::new(addrs), 0, None),
            Err(e) => finish(&again, Err(e)),
        }
    });
}

/// Try `addrs[i..]` in order; the first that connects is used.
fn connect_next(
    fetch: &Rc<Fetch>,
    attempt: u64,
    addrs: Rc<Vec<std::net::SocketAddr>>,
    i: usize,
    last_error: Option<HTTPClientError>,
) {
    let Some(&addr) = addrs.get(i) else {
        let e = last_error.unwrap_or(HTTPClientError::Connect {
            kind: std::io::ErrorKind::NotFound,
            message: "no address to connect to".into(),
        });
        finish(fetch, Err(e));
        return;
    };
    let again = Rc::clone(fetch);
    let addrs2 = Rc::clone(&addrs);
    let connected = IOStream::connect(addr, move |r: Result<(), StreamError>| {
        if stale(&again, attempt) {
            return;
        }
        match r {
            Ok(()) => {
                if let Some(t) = again.connect_timer.take() {
                    again.client.ioloop.remove_timeout(t);
                }
                let stream = again.stream.borrow_mut().take();
                if let Some(stream) = stream {
                    send(&again, stream, false);
                }
            }
            Err(e) => {
                again.stream.borrow_mut().take();
                let error = connect_error(e);
                connect_next(&again, attempt, addrs2, i + 1, Some(error));
            }
        }
    });
    match connected {
        Ok(stream) => {
            let o = &fetch.client.options;
            stream.set_max_buffer_size(
                o.max_body_size
                    .saturating_add(o.max_header_size)
                    .saturating_add(2 * READ_CHUNK_SIZE),
            );
            stream.set_nodelay(true);
            *fetch.stream.borrow_mut() = Some(stream);
        }
        Err(e) => {
            let error = HTTPClientError::Connect {
                kind: e.kind(),
                message: e.to_string(),
            };
            connect_next(fetch, attempt, addrs, i + 1, Some(error));
        }
    }
}

fn connect_error(e: StreamError) -> HTTPClientError {
    match e {
        StreamError::Io(kind, message) => HTTPClientError::Connect { kind, message },
        other => HTTPClientError::Connect {
            kind: std::io::ErrorKind::Other,
            message: other.to_string(),
        },
    }
}

/// Send the current hop's request on `stream` and read the response.
fn send(fetch: &Rc<Fetch>, stream: IOStream, reused: bool) {
    let attempt = fetch.attempt.get();
    fetch.phase.set(TimeoutPhase::Request);
    *fetch.stream.borrow_mut() = Some(stream.clone());
    let o = &fetch.client.options;
    let limits = Limits {
        max_header_size: o.max_header_size,
        max_body_size: o.max_body_size,
    };
    let (bytes, method) = {
        let req = fetch.request.borrow();
        (
            encode(&req, &fetch.url.borrow(), o.keep_alive),
            req.method.clone(),
        )
    };
    let again = Rc::clone(fetch);
    exchange::start(
        stream,
        bytes,
        &method,
        limits,
        Box::new(move |r| on_exchange(&again, attempt, reused, r)),
    );
}

/// The exchange ended.
fn on_exchange(fetch: &Rc<Fetch>, attempt: u64, reused: bool, r: Result<RawResponse, Failure>) {
    if stale(fetch, attempt) {
        return;
    }
    let stream = fetch.stream.borrow_mut().take();
    let raw = match r {
        Ok(raw) => raw,
        Err(failure) => {
            if let Some(s) = stream {
                s.close();
            }
            let idempotent = matches!(
                fetch.request.borrow().method.as_str(),
                "GET" | "HEAD" | "PUT" | "DELETE" | "OPTIONS"
            );
            if reused && failure.before_response && idempotent && !fetch.retried.get() {
                // The server closed the idle connection as we reused it.
                fetch.retried.set(true);
                start_hop(fetch, false);
                return;
            }
            finish(fetch, Err(failure.error));
            return;
        }
    };
    if let Some(s) = stream {
        if raw.reusable && fetch.client.options.keep_alive {
            Pool::put(&fetch.client.pool, key_of(&fetch.url.borrow()), s);
        } else {
            s.close();
        }
    }
    let response = HTTPResponse {
        code: raw.head.code,
        reason: raw.head.reason,
        version: raw.head.version,
        headers: raw.head.headers,
        body: raw.body,
        effective_url: fetch.url.borrow().to_url_string(),
        request_time: fetch.start.elapsed(),
    };
    let location = redirect_location(fetch, &response);
    if let Some(location) = location {
        if fetch.redirects_left.get() == 0 {
            let max_redirects = fetch.request.borrow().max_redirects;
            finish(
                fetch,
                Err(HTTPClientError::TooManyRedirects {
                    max_redirects,
                    response: Box::new(response),
                }),
            );
            return;
        }
        match follow(fetch, response.code, &location) {
            Ok(()) => start_hop(fetch, true),
            Err(e) => finish(fetch, Err(e)),
        }
        return;
    }
    let raise = fetch.request.borrow().raise_error;
    if raise && !(200..300).contains(&response.code) {
        finish(fetch, Err(HTTPClientError::Http(Box::new(response))));
    } else {
        finish(fetch, Ok(response));
    }
}

/// The `Location` to follow, if this response is a redirect we follow.
fn redirect_location(fetch: &Fetch, response: &HTTPResponse) -> Option<String> {
    if !fetch.request.borrow().follow_redirects
        || !matches!(response.code, 301 | 302 | 303 | 307 | 308)
    {
        return None;
    }
    response.headers.get("Location").map(str::to_string)
}

/// Rewrite the fetch for the next hop (Tornado's `finish` redirect branch):
/// 303 (and 301/302 after POST) become GET without a body; 307/308 keep
/// method and body; credentials do not follow a cross-origin redirect.
fn follow(fetch: &Fetch, code: u16, location: &str) -> Result<(), HTTPClientError> {
    let next = fetch
        .url
        .borrow()
        .join(location)
        .map_err(|e| HTTPClientError::InvalidUrl(format!("redirect to {location:?}: {e}")))?;
    let mut req = fetch.request.borrow_mut();
    let to_get = (code == 303 && req.method != "HEAD")
        || (matches!(code, 301 | 302) && req.method == "POST");
    if to_get {
        req.method = "GET".to_string();
        req.body = None;
        for h in [
            "Content-Length",
            "Content-Type",
            "Content-Encoding",
            "Transfer-Encoding",
        ] {
            req.headers.remove(h);
        }
    }
    if !fetch.url.borrow().same_origin(&next) {
        req.headers.remove("Authorization");
        req.headers.remove("Cookie");
    }
    req.headers.remove("Host");
    req.url = next.to_url_string();
    drop(req);
    fetch.redirects_left.set(fetch.redirects_left.get() - 1);
    *fetch.url.borrow_mut() = next;
    Ok(())
}

fn key_of(url: &Url) -> Key {
    (url.host.clone(), url.port)
}

/// End the fetch with `result` (first caller wins; see module invariants).
fn finish(fetch: &Rc<Fetch>, result: FetchResult) {
    let Some(callback) = fetch.callback.borrow_mut().take() else {
        return;
    };
    let client = Rc::clone(&fetch.client);
    for timer in [fetch.deadline_timer.take(), fetch.connect_timer.take()]
        .into_iter()
        .flatten()
    {
        client.ioloop.remove_timeout(timer);
    }
    let stream = fetch.stream.borrow_mut().take();
    if let Some(stream) = stream {
        stream.close();
    }
    if fetch.holds_slot.replace(false) {
        client.active.set(client.active.get() - 1);
    } else {
        client.queue.borrow_mut().retain(|f| !Rc::ptr_eq(f, fetch));
    }
    client.ioloop.add_callback(move || callback(result));
    process_queue(&client);
}
