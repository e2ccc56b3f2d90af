//! What an application implements: [`RequestHandler`], one per route.
//!
//! Mirrors the method half of Tornado's `tornado/web.py` `RequestHandler`
//! (`get`, `post`, ..., `prepare`). The other half — the per-request
//! `self` with `get_argument`, `write`, `finish` — is [`Ctx`].
//!
//! # Callback style (Tornado's `@asynchronous`)
//!
//! A method gets `&Ctx` and returns. If it called `finish` (or wrote a
//! body and returned), the response goes out. If it wants to answer later —
//! a long-poll waiting for a message — it keeps a clone of the `Ctx` (in a
//! waiter list, a timer, a callback) and returns `Ok(())`: **while any
//! clone of the `Ctx` is alive, the response stays open**. Whoever holds it
//! calls `finish` when ready. If the last clone is dropped unfinished, the
//! client gets a 500 and an error is logged — a forgotten response never
//! hangs a client.
//!
//! A response that waits long (a parked long-poll) should keep only
//! [`Ctx::response_handle`](super::Ctx::response_handle): the same rule holds
//! for handles, and the request (head, body, parsed arguments, cookies) is
//! freed when the method returns instead of living as long as the wait.
//!
//! Returning `Err(HTTPError)` (usually through `?`, e.g. from
//! `cx.get_argument("name")?`) sends that error page instead.

use std::fmt;

use super::context::Ctx;

/// What a handler method returns.
pub type HandlerResult = Result<(), HTTPError>;

/// An error answered with an HTTP status (Tornado's `HTTPError`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HTTPError {
    /// Status code, e.g. 400.
    pub status: u16,
    /// Message shown to the client (and logged).
    pub message: String,
    /// Headers of the error answer itself, e.g. `Retry-After` on a 429 or
    /// 503 (RFC 9110 §10.2.3). Headers the handler set before failing are
    /// dropped with the rest of its response.
    pub headers: Vec<(String, String)>,
}

impl HTTPError {
    /// An error with `status` and a message for the client.
    pub fn new(status: u16, message: impl Into<String>) -> HTTPError {
        HTTPError {
            status,
            message: message.into(),
            headers: Vec::new(),
        }
    }

    /// The same error, its answer carrying `name: value` too.
    pub fn with_header(mut self, name: impl Into<String>, value: impl Into<String>) -> HTTPError {
        self.headers.push((name.into(), value.into()));
        self
    }

    /// 400 Bad Request.
    pub fn bad_request(message: impl Into<String>) -> HTTPError {
        HTTPError::new(400, message)
    }

    /// 403 Forbidden.
    pub fn forbidden(message: impl Into<String>) -> HTTPError {
        HTTPError::new(403, message)
    }

    /// 404 Not Found.
    pub fn not_found(message: impl Into<String>) -> HTTPError {
        HTTPError::new(404, message)
    }
}

impl fmt::Display for HTTPError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "HTTP {}: {}", self.status, self.message)
    }
}

impl std::error::Error for HTTPError {}

/// A route's handler. Implement the methods you serve; the others answer
/// 405. One value serves every request to its route, so keep per-request
/// state in the [`Ctx`] (or in what you capture from it), and shared state
/// (a chat room, the inventory) in the handler's fields.
///
/// A handler that serves anything but `get` (and the `head` that falls
/// back to it) also overrides [`allowed_methods`](Self::allowed_methods),
/// which names them in the `Allow` header of its 405 answers.
pub trait RequestHandler: 'static {
    /// The methods this handler serves, as listed in the `Allow` header of
    /// every 405 its route answers: RFC 9110 §15.5.6, "The origin server
    /// MUST generate an Allow header field in a 405 response containing a
    /// list of the target resource's currently supported methods."
    ///
    /// Rust cannot tell which of the default methods below a handler
    /// overrode, so the handler says it. The default, `GET` and `HEAD`,
    /// fits the usual handler that implements only `get`; one that
    /// implements `post` as well returns `&["GET", "HEAD", "POST"]`, one
    /// that implements only `post` returns `&["POST"]`. (Tornado has the
    /// similar `SUPPORTED_METHODS` but sends no `Allow`.) The method being
    /// refused is left out of the header even if listed, so a handler that
    /// refuses a listed method with a 405 of its own never contradicts
    /// itself.
    fn allowed_methods(&self) -> &[&str] {
        &["GET", "HEAD"]
    }

    /// Runs before the method (Tornado's `prepare`). Return an error to
    /// answer with it, or finish the response yourself to stop there.
    fn prepare(&self, _cx: &Ctx) -> HandlerResult {
        Ok(())
    }
    /// `GET`.
    fn get(&self, _cx: &Ctx) -> HandlerResult {
        Err(method_not_allowed())
    }
    /// `HEAD`: by default `get`, with the body dropped by the server.
    fn head(&self, cx: &Ctx) -> HandlerResult {
        self.get(cx)
    }
    /// `POST`.
    fn post(&self, _cx: &Ctx) -> HandlerResult {
        Err(method_not_allowed())
    }
    /// `PUT`.
    fn put(&self, _cx: &Ctx) -> HandlerResult {
        Err(method_not_allowed())
    }
    /// `PATCH`.
    fn patch(&self, _cx: &Ctx) -> HandlerResult {
        Err(method_not_allowed())
    }
    /// `DELETE`.
    fn delete(&self, _cx: &Ctx) -> HandlerResult {
        Err(method_not_allowed())
    }
    /// `OPTIONS`.
    fn options(&self, _cx: &Ctx) -> HandlerResult {
        Err(method_not_allowed())
    }
}

fn method_not_allowed() -> HTTPError {
    HTTPError::new(405, "Method Not Allowed")
}
