//! The async-vs-blocking demo: the "tweet rate" example of "Introduction to
//! Tornado", chapter 5, with a local slow upstream instead of Twitter.
//!
//! | file        | what it is                                                   |
//! |-------------|--------------------------------------------------------------|
//! | [`server`]  | `/upstream`: the slow JSON API, on a second loop and thread |
//! | [`rate`]    | `/rate/blocking`, `/rate/async`, `/rate/offload`             |
//!
//! `/rate` is the page that explains the three (template `upstream.html`).
//! The measured table is in `docs/httpclient.md`.

pub mod rate;
pub mod server;

use std::io;
use std::net::{IpAddr, SocketAddr};

use crate::httpclient::AsyncHTTPClient;
use crate::web::{Application, Ctx, HandlerResult, RequestHandler};

pub use rate::{RateAsync, RateBlocking, RateConfig, RateOffload};
pub use server::{fake_search, Upstream, UpstreamServer, MAX_DELAY_MS};

/// Start the upstream server on its own thread (on `bind`, a free port) and
/// mount the demo's routes on `app`, pointed at it.
pub fn start(
    app: &mut Application,
    bind: IpAddr,
    default_delay_ms: u64,
) -> io::Result<UpstreamServer> {
    let upstream = UpstreamServer::spawn(SocketAddr::new(bind, 0))?;
    log::info!(
        "/rate demo: slow upstream on its own thread at http://{}/upstream",
        upstream.addr
    );
    mount(
        app,
        RateConfig {
            upstream: format!("http://{}", upstream.addr),
            default_delay_ms,
        },
    );
    Ok(upstream)
}

/// Mount `/rate`, `/rate/blocking`, `/rate/async`, `/rate/offload` and
/// `/upstream` on `app`, with the upstream at `config.upstream`.
///
/// `/upstream` on the main server is the same handler for trying it out;
/// the rate routes never call it there — `/rate/blocking` would wait on its
/// own frozen loop.
pub fn mount(app: &mut Application, config: RateConfig) {
    app.route(
        "/rate",
        RatePage {
            config: config.clone(),
        },
    );
    app.route("/rate/blocking", RateBlocking(config.clone()));
    app.route(
        "/rate/async",
        RateAsync {
            config: config.clone(),
            client: AsyncHTTPClient::new(),
        },
    );
    app.route("/rate/offload", RateOffload(config));
    app.route("/upstream", Upstream);
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
