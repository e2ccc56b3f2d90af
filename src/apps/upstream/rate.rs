//! The book's "tweet rate" handlers ("Introduction to Tornado", ch. 5),
//! three ways, against the slow upstream.
//!
//! | route           | how it waits for the upstream                       | book        |
//! |-----------------|-----------------------------------------------------|-------------|
//! | `/rate/blocking`| [`HTTPClient`] inside the handler: **the loop stops** | listing 5-1 |
//! | `/rate/async`   | [`AsyncHTTPClient`] + callback; the Ctx clone is finished there | listing 5-2 |
//! | `/rate/offload` | the blocking client on a worker thread (`run_in_executor`), result back on the loop | — |
//!
//! All three answer the same page fragment: the query and its tweets per
//! second, computed from the first and last result's timestamps.

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::time::Duration;

use crate::escape::xhtml_escape;
use crate::httpclient::{
    AsyncHTTPClient, ClientOptions, FetchResult, HTTPClient, HTTPClientError, HTTPRequest,
};
use crate::httputil::url_escape;
use crate::ioloop::IOLoop;
use crate::web::{Ctx, HTTPError, HandlerResult, RequestHandler};

use super::server::{delay_arg, query_arg, MAX_DELAY_MS};

/// Default of [`RateConfig::slack`].
pub const DEFAULT_SLACK: Duration = Duration::from_secs(10);

/// Largest upstream answer the rate routes read (1 MiB). The real answer
/// is about 8 KiB of JSON; the client's default limit (100 MiB, Tornado's)
/// would let a broken upstream make every waiting page request hold that
/// much.
pub const MAX_ANSWER_SIZE: usize = 1024 * 1024;

/// Client options of the rate routes: the defaults with the body capped at
/// [`MAX_ANSWER_SIZE`].
pub fn client_options() -> ClientOptions {
    ClientOptions {
        max_body_size: MAX_ANSWER_SIZE,
        ..ClientOptions::default()
    }
}

/// Default of [`BlockingPolicy::slack`].
pub const DEFAULT_BLOCKING_SLACK: Duration = Duration::from_secs(1);

/// What `/rate/blocking` may cost the server. Each of its requests freezes
/// the whole loop for up to `max_delay_ms + slack`, and requests queue up
/// behind one another, so an operator can turn it off or shorten it; the
/// default keeps the lesson (any delay the upstream allows).
#[derive(Clone, Debug)]
pub struct BlockingPolicy {
    /// Serve the route (default). Off (`--no-rate-blocking`): it answers
    /// 403 saying why and how to turn it on, and fetches nothing.
    pub enabled: bool,
    /// Largest `delay_ms` it accepts (`--rate-blocking-max-delay-ms`,
    /// default [`MAX_DELAY_MS`]); more is a 400 naming the option. The
    /// default delay is lowered to this if it is higher.
    pub max_delay_ms: u64,
    /// Its fetch's request timeout is the delay plus this
    /// ([`DEFAULT_BLOCKING_SLACK`]), not plus [`RateConfig::slack`]: an
    /// upstream that never answers freezes the loop this long past the
    /// delay, then the page is a 504.
    pub slack: Duration,
}

impl Default for BlockingPolicy {
    fn default() -> BlockingPolicy {
        BlockingPolicy {
            enabled: true,
            max_delay_ms: MAX_DELAY_MS,
            slack: DEFAULT_BLOCKING_SLACK,
        }
    }
}

/// What every rate handler needs: where the upstream is, its default
/// delay, and how long past that delay a fetch may take.
#[derive(Clone, Debug)]
pub struct RateConfig {
    /// Base URL of the upstream server, e.g. `http://127.0.0.1:40123`.
    pub upstream: String,
    /// `delay_ms` sent to the upstream when the request gives none.
    pub default_delay_ms: u64,
    /// A fetch's request timeout is the delay it asks for plus this
    /// ([`DEFAULT_SLACK`]): an upstream that never answers costs the page
    /// a 504 after that long, not a hang.
    pub slack: Duration,
    /// What `/rate/blocking` may cost.
    pub blocking: BlockingPolicy,
    /// Most `/rate/offload` fetches on or queued for a worker thread at
    /// once; more get 503 ([`DEFAULT_MAX_OFFLOADS`]).
    pub max_offloads: usize,
}

/// Default of [`RateConfig::max_offloads`]: four times the binary's
/// default worker pool (16), so the demo still shows requests queueing for
/// threads (ten or twenty `siege` clients against 16 or 4 threads), but the
/// queue, which has no bound of its own, cannot grow with whoever keeps
/// asking (each queued fetch holds its request and its closure; they are
/// not cancelled when the client leaves). The binary sets four times its
/// `--worker-threads`.
pub const DEFAULT_MAX_OFFLOADS: usize = 64;

impl RateConfig {
    /// The upstream at `upstream`, `default_delay_ms`, default slack and
    /// blocking policy.
    pub fn new(upstream: impl Into<String>, default_delay_ms: u64) -> RateConfig {
        RateConfig {
            upstream: upstream.into(),
            default_delay_ms,
            slack: DEFAULT_SLACK,
            blocking: BlockingPolicy::default(),
            max_offloads: DEFAULT_MAX_OFFLOADS,
        }
    }

    /// The upstream request for this page request (400 on bad arguments).
    fn request(&self, cx: &Ctx) -> Result<(String, HTTPRequest), HTTPError> {
        let q = query_arg(cx)?;
        let delay = delay_arg(cx, self.default_delay_ms)?;
        let request = self.upstream_request(&q, delay, self.slack);
        Ok((q, request))
    }

    /// [`request`](Self::request) for `/rate/blocking`, within its policy.
    fn blocking_request(&self, cx: &Ctx) -> Result<(String, HTTPRequest), HTTPError> {
        let policy = &self.blocking;
        let q = query_arg(cx)?;
        let delay = delay_arg(cx, self.default_delay_ms.min(policy.max_delay_ms))?;
        if delay > policy.max_delay_ms {
            return Err(HTTPError::bad_request(format!(
                "delay_ms: /rate/blocking accepts at most {} ms on this server \
                 (--rate-blocking-max-delay-ms); /rate/async waits longer \
                 without freezing anyone",
                policy.max_delay_ms
            )));
        }
        let request = self.upstream_request(&q, delay, policy.slack);
        Ok((q, request))
    }

    /// The fetch of `q` with `delay_ms`, timing out `slack` past the delay.
    fn upstream_request(&self, q: &str, delay: u64, slack: Duration) -> HTTPRequest {
        let url = format!(
            "{}/upstream?q={}&delay_ms={delay}",
            self.upstream,
            url_escape(q, true)
        );
        HTTPRequest::new(url).request_timeout(Duration::from_millis(delay) + slack)
    }
}

/// What `/rate/blocking` answers when [`BlockingPolicy::enabled`] is off.
pub const BLOCKING_OFF_MESSAGE: &str = "/rate/blocking is turned off on this \
    server (--no-rate-blocking, the default beyond a loopback address): it \
    freezes the whole server while it waits for the upstream. /rate/async and \
    /rate/offload fetch the same answer without blocking; start squall with \
    --rate-blocking to see the blocking one.";

/// `GET /rate/blocking`: listing 5-1. While `fetch` waits, this thread —
/// the main loop's — does nothing else: every other request, timer and
/// callback of the server waits too. How long, at most, and whether the
/// route runs at all, is [`RateConfig::blocking`].
pub struct RateBlocking(pub RateConfig);

impl RequestHandler for RateBlocking {
    fn get(&self, cx: &Ctx) -> HandlerResult {
        if !self.0.blocking.enabled {
            return Err(HTTPError::forbidden(BLOCKING_OFF_MESSAGE));
        }
        let (q, request) = self.0.blocking_request(cx)?;
        let result = blocking_fetch(request);
        render_rate(cx, &q, "blocking", result);
        Ok(())
    }
}

/// `GET /rate/async`: listing 5-2. The handler starts the fetch and
/// returns; the loop serves others; the callback finishes the response.
pub struct RateAsync {
    /// Settings.
    pub config: RateConfig,
    /// One client for all requests (its `max_clients` slots are shared),
    /// made with [`client_options`].
    pub client: AsyncHTTPClient,
}

impl RequestHandler for RateAsync {
    fn get(&self, cx: &Ctx) -> HandlerResult {
        let (q, request) = self.config.request(cx)?;
        let cx = cx.clone();
        self.client.fetch(request, move |result| {
            render_rate(&cx, &q, "async", result);
        });
        Ok(())
    }
}

/// `GET /rate/offload`: the blocking client, moved to a worker thread.
/// The loop stays free; the result comes back through the loop's
/// thread-safe `add_callback` and is finished there. Throughput is bounded
/// by the worker pool (`--worker-threads`): each waiting request holds a
/// thread; the rest wait in the pool's queue, at most
/// [`RateConfig::max_offloads`] in all (503 with `Retry-After` beyond).
/// Password hashing shares the pool but goes ahead of the queue
/// ([`IOLoop::run_in_executor_first`]).
pub struct RateOffload {
    /// Settings.
    config: RateConfig,
    /// Fetches now on (or queued for) a worker thread.
    in_flight: Rc<Cell<usize>>,
}

impl RateOffload {
    /// The route, with no fetch in flight.
    pub fn new(config: RateConfig) -> RateOffload {
        RateOffload {
            config,
            in_flight: Rc::new(Cell::new(0)),
        }
    }
}

impl RequestHandler for RateOffload {
    fn get(&self, cx: &Ctx) -> HandlerResult {
        let (q, request) = self.config.request(cx)?;
        if self.in_flight.get() >= self.config.max_offloads {
            return Err(HTTPError::new(
                503,
                "too many offloaded fetches are waiting for a worker thread; try again in a moment",
            )
            .with_header("Retry-After", "1"));
        }
        let slot = OffloadSlot::take(&self.in_flight);
        let cx = cx.clone();
        IOLoop::current().run_in_executor(
            move || blocking_fetch(request),
            move |result| {
                drop(slot);
                render_rate(&cx, &q, "offload", result);
            },
        );
        Ok(())
    }
}

/// One of [`RateOffload`]'s places, given back when dropped: when the
/// result arrives, or if the loop drops the callback without calling it.
struct OffloadSlot(Rc<Cell<usize>>);

impl OffloadSlot {
    fn take(in_flight: &Rc<Cell<usize>>) -> OffloadSlot {
        in_flight.set(in_flight.get() + 1);
        OffloadSlot(Rc::clone(in_flight))
    }
}

impl Drop for OffloadSlot {
    fn drop(&mut self) {
        self.0.set(self.0.get().saturating_sub(1));
    }
}

/// Fetch with this thread's blocking client (one private loop per thread,
/// kept between calls).
fn blocking_fetch(request: HTTPRequest) -> FetchResult {
    thread_local! {
        static CLIENT: RefCell<Option<Rc<HTTPClient>>> = const { RefCell::new(None) };
    }
    let client = CLIENT.with(|c| {
        let mut c = c.borrow_mut();
        if c.is_none() {
            *c = HTTPClient::with_options(client_options()).ok().map(Rc::new);
        }
        c.clone()
    });
    match client {
        Some(client) => client.fetch(request),
        None => Err(HTTPClientError::Io {
            kind: std::io::ErrorKind::Other,
            message: "cannot create the blocking client's loop".into(),
        }),
    }
}

/// Tweets per second from the upstream's JSON: results over the time
/// between the newest and the oldest (the book's computation).
pub fn tweets_per_second(answer: &serde_json::Value) -> Option<f64> {
    let results = answer.get("results")?.as_array()?;
    let newest = results.first()?.get("created_at_ms")?.as_u64()?;
    let oldest = results.last()?.get("created_at_ms")?.as_u64()?;
    let span = newest.checked_sub(oldest)? as f64 / 1000.0;
    Some(if span > 0.0 {
        results.len() as f64 / span
    } else {
        results.len() as f64
    })
}

/// Write the book's fragment and finish, or answer a 502 (504 for a
/// timeout) saying what went wrong upstream. Either way the response is
/// finished on return.
fn render_rate(cx: &Ctx, q: &str, how: &str, result: FetchResult) {
    let rate = result.as_ref().ok().and_then(|r| {
        serde_json::from_slice::<serde_json::Value>(&r.body)
            .ok()
            .and_then(|v| tweets_per_second(&v))
    });
    match (result, rate) {
        (Ok(_), Some(rate)) => {
            cx.write(format!(
                "<div style=\"text-align: center\">\n  <div style=\"font-size: 72px\">{}</div>\n  \
                 <div style=\"font-size: 144px\">{rate:.2}</div>\n  \
                 <div style=\"font-size: 24px\">tweets per second</div>\n  \
                 <div style=\"font-size: 12px\">fetched: {how}</div>\n</div>\n",
                xhtml_escape(q)
            ));
            cx.finish();
        }
        (Ok(_), None) => cx.send_error(502, "the upstream answered something other than results"),
        (Err(e), _) => {
            log::warn!("/rate/{how}: upstream fetch failed: {e}");
            // RFC 9110 §15.6.5: 504 "indicates that the server, while acting
            // as a gateway or proxy, did not receive a timely response from
            // an upstream server it needed to access in order to complete
            // the request". Anything else that went wrong upstream is 502
            // (§15.6.3, "received an invalid response").
            let status = match e {
                HTTPClientError::Timeout(_) => 504,
                _ => 502,
            };
            cx.send_error(status, &format!("upstream fetch failed: {e}"));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rate_of_the_fake_search() {
        let answer = super::super::server::fake_search("x");
        let rate = tweets_per_second(&answer).expect("rate");
        assert!(rate > 0.0);
        assert_eq!(tweets_per_second(&serde_json::json!({})), None);
        let one = serde_json::json!({"results": [{"created_at_ms": 5}]});
        assert_eq!(tweets_per_second(&one), Some(1.0));
    }
}
