//! The async-vs-blocking demo: the "tweet rate" example of "Introduction to
//! Tornado", chapter 5, with a local slow upstream instead of Twitter.
//!
//! | file        | what it is                                                   |
//! |-------------|--------------------------------------------------------------|
//! | [`server`]  | `/upstream`: the slow JSON API, on a second loop and thread (started on first use) |
//! | [`rate`]    | `/rate/blocking`, `/rate/async`, `/rate/offload`             |
//!
//! `/rate` is the page that explains the three (template `upstream.html`).
//! The measured table is in `docs/httpclient.md`.

pub mod rate;
pub mod server;

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::rc::Rc;

use crate::httpclient::AsyncHTTPClient;
use crate::web::{Application, Ctx, HandlerResult, RequestHandler};

pub use rate::{
    client_options, BlockingPolicy, RateAsync, RateBlocking, RateConfig, RateOffload,
    BLOCKING_OFF_MESSAGE, DEFAULT_BLOCKING_SLACK, DEFAULT_MAX_OFFLOADS, DEFAULT_SLACK,
    MAX_ANSWER_SIZE,
};
pub use server::{fake_search, PendingUpstream, Upstream, UpstreamServer, MAX_DELAY_MS};

/// Bind the upstream server's port (on `bind`, a free port) and mount the
/// demo's routes on `app`, pointed at it. The upstream's thread starts with
/// the first request to a `/rate/...` route ([`PendingUpstream`]).
/// `blocking` limits `/rate/blocking`, `max_offloads` `/rate/offload`
/// ([`RateConfig::max_offloads`]).
pub fn start(
    app: &mut Application,
    bind: IpAddr,
    default_delay_ms: u64,
    blocking: BlockingPolicy,
    max_offloads: usize,
) -> io::Result<SocketAddr> {
    let upstream = Rc::new(PendingUpstream::bind(SocketAddr::new(bind, 0))?);
    let addr = upstream.addr;
    log::info!(
        "/rate demo: slow upstream at http://{addr}/upstream, on its own thread from first use"
    );
    mount_routes(
        app,
        RateConfig {
            blocking,
            max_offloads,
            ..RateConfig::new(format!("http://{addr}"), default_delay_ms)
        },
        Some(upstream),
    );
    Ok(addr)
}

/// Mount `/rate`, `/rate/blocking`, `/rate/async`, `/rate/offload` and
/// `/upstream` on `app`, with the upstream at `config.upstream`.
///
/// `/upstream` on the main server is the same handler for trying it out;
/// the rate routes never call it there — `/rate/blocking` would wait on its
/// own frozen loop.
pub fn mount(app: &mut Application, config: RateConfig) {
    mount_routes(app, config, None);
}

/// [`mount`], with the rate routes starting `upstream` first if given.
fn mount_routes(app: &mut Application, config: RateConfig, upstream: Option<Rc<PendingUpstream>>) {
    app.route(
        "/rate",
        RatePage {
            config: config.clone(),
        },
    );
    app.route(
        "/rate/blocking",
        StartsUpstream::new(&upstream, RateBlocking(config.clone())),
    );
    app.route(
        "/rate/async",
        StartsUpstream::new(
            &upstream,
            RateAsync {
                config: config.clone(),
                client: AsyncHTTPClient::with_options(rate::client_options()),
            },
        ),
    );
    app.route(
        "/rate/offload",
        StartsUpstream::new(&upstream, RateOffload::new(config)),
    );
    app.route("/upstream", Upstream);
}

/// A rate route that makes sure the upstream's thread runs before it
/// fetches from it (the rate routes answer GET, and HEAD through it).
struct StartsUpstream<H> {
    /// `None` when the caller runs its own upstream ([`mount`]).
    upstream: Option<Rc<PendingUpstream>>,
    /// The route itself.
    handler: H,
}

impl<H: RequestHandler> StartsUpstream<H> {
    fn new(upstream: &Option<Rc<PendingUpstream>>, handler: H) -> StartsUpstream<H> {
        StartsUpstream {
            upstream: upstream.clone(),
            handler,
        }
    }
}

impl<H: RequestHandler> RequestHandler for StartsUpstream<H> {
    fn prepare(&self, cx: &Ctx) -> HandlerResult {
        self.handler.prepare(cx)
    }

    fn get(&self, cx: &Ctx) -> HandlerResult {
        if let Some(upstream) = &self.upstream {
            upstream.start();
        }
        self.handler.get(cx)
    }
}

/// `GET /rate`: the page that explains the three routes.
struct RatePage {
    /// Where the upstream is and its default delay.
    config: RateConfig,
}

impl RequestHandler for RatePage {
    fn get(&self, cx: &Ctx) -> HandlerResult {
        cx.render(
            "upstream.html",
            serde_json::json!({
                "upstream": self.config.upstream,
                "default_delay_ms": self.config.default_delay_ms,
                "max_delay_ms": MAX_DELAY_MS,
            }),
        )
    }
}
