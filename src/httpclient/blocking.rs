//! [`HTTPClient`]: the blocking client — **the deliberately bad example**
//! when called on a loop's thread.
//!
//! Mirrors Tornado's `tornado.httpclient.HTTPClient`, which is exactly this:
//! an [`AsyncHTTPClient`] on a *private* [`IOLoop`] that `fetch` runs until
//! the response is there. Reusing the async client means one parser and
//! one set of limits, timeouts and redirect rules for both.
//!
//! `fetch` blocks the calling thread, and that is the point of the
//! `/rate/blocking` demo: called inside a request handler, it freezes the
//! server's loop (no other request, timer or callback runs) for as long as
//! the upstream takes. Use it in scripts, tests and worker threads
//! ([`IOLoop::run_in_executor`]), never on a loop's thread.
//!
//! Before it blocks, `fetch` runs the calling loop's end-of-iteration hooks
//! ([`IOLoop::run_end_of_iteration_now`]): squall flushes writes at the end
//! of a loop iteration, so without this, responses finished earlier in the
//! same iteration would wait behind the block too.
//!
//! While `fetch` runs, the private loop is this thread's *current* loop
//! (so the streams it opens register with it), and the previous current
//! loop is restored afterwards — even if a callback panics.

use std::cell::RefCell;
use std::io;
use std::rc::Rc;

use super::client::{AsyncHTTPClient, ClientOptions, FetchResult};
use super::request::{HTTPClientError, HTTPRequest};
use crate::ioloop::IOLoop;

/// A blocking HTTP client (see the module docs for why it exists and when
/// not to use it).
pub struct HTTPClient {
    /// The loop only this client runs.
    ioloop: IOLoop,
    /// The async client on that loop (its pool survives between fetches).
    client: AsyncHTTPClient,
}

/// Makes a loop current for a scope, and restores the previous one.
struct CurrentGuard {
    /// The loop that was current before.
    previous: IOLoop,
}

impl CurrentGuard {
    fn enter(ioloop: &IOLoop) -> CurrentGuard {
        // `current()` creates a loop for a thread that has none; that loop
        // then simply stays this thread's (idle) current loop.
        let previous = IOLoop::current();
        ioloop.make_current();
        CurrentGuard { previous }
    }
}

impl Drop for CurrentGuard {
    fn drop(&mut self) {
        self.previous.make_current();
    }
}

impl HTTPClient {
    /// A blocking client with [`ClientOptions::default`].
    pub fn new() -> io::Result<HTTPClient> {
        HTTPClient::with_options(ClientOptions::default())
    }

    /// A blocking client with `options`.
    pub fn with_options(options: ClientOptions) -> io::Result<HTTPClient> {
        let _outer = IOLoop::current();
        // The thread already has a current loop, so this one does not
        // become current by itself.
        let ioloop = IOLoop::new()?;
        let client = {
            let _guard = CurrentGuard::enter(&ioloop);
            AsyncHTTPClient::with_options(options)
        };
        Ok(HTTPClient { ioloop, client })
    }

    /// Fetch `request`, blocking this thread until the response (or the
    /// error) is there. Every error is a value; the request's timeouts bound
    /// the wait.
    pub fn fetch(&self, request: HTTPRequest) -> FetchResult {
        if self.ioloop.is_running() {
            return Err(HTTPClientError::InvalidRequest(
                "HTTPClient::fetch called from inside its own loop".into(),
            ));
        }
        // About to block this thread. If it runs a loop, let the output
        // that loop already produced this iteration leave first (its
        // writes are flushed at the end of an iteration, which is now
        // delayed by the block): finished responses are not held back.
        let outer = IOLoop::current();
        if outer.is_running() {
            outer.run_end_of_iteration_now();
        }
        let _guard = CurrentGuard::enter(&self.ioloop);
        let slot: Rc<RefCell<Option<FetchResult>>> = Rc::new(RefCell::new(None));
        let out = Rc::clone(&slot);
        let ioloop = self.ioloop.clone();
        self.client.fetch(request, move |result| {
            *out.borrow_mut() = Some(result);
            ioloop.stop();
        });
        self.ioloop.start();
        let result = slot.borrow_mut().take();
        result.unwrap_or(Err(HTTPClientError::ClientClosed))
    }
}

impl Drop for HTTPClient {
    fn drop(&mut self) {
        // No CurrentGuard here: closing needs no current loop (streams and
        // fetches know their loop), and a client kept in a thread-local is
        // dropped while the thread's other thread-locals — the current loop
        // among them — may already be gone.
        self.client.close();
    }
}
