//! The `squall` server: one [`Application`] with every demo app mounted,
//! plus the operations endpoints (`/healthz`, `/metrics`).
//!
//! Each app lives in its own module and adds its routes here in
//! [`build`]; this file only wires them together.

use std::cell::RefCell;
use std::fmt::Write as _;
use std::io;
use std::net::SocketAddr;
use std::rc::Rc;

use super::config::Config;
use crate::http::{HTTPServer, ServerStats};
use crate::ioloop::IOLoop;
use crate::web::{Application, Ctx, HandlerResult, RequestHandler, Settings};
use crate::websocket::WebSocketRoute;

/// Something that appends Prometheus text lines to `/metrics`.
pub type MetricsWriter = Box<dyn Fn(&mut String)>;

/// The `/metrics` registry: each component registers a writer for its own
/// gauges and counters, so the metrics page knows no app's internals.
#[derive(Clone, Default)]
pub struct Metrics {
    /// Registered writers, in order.
    writers: Rc<RefCell<Vec<MetricsWriter>>>,
}

impl Metrics {
    /// Register `writer`.
    pub fn register(&self, writer: impl Fn(&mut String) + 'static) {
        self.writers.borrow_mut().push(Box::new(writer));
    }

    /// The whole page.
    pub fn render(&self) -> String {
        let mut out = String::new();
        for w in self.writers.borrow().iter() {
            w(&mut out);
        }
        out
    }
}

/// Append one metric with its `# HELP` and `# TYPE` lines.
pub fn write_metric(
    out: &mut String,
    name: &str,
    kind: &str,
    help: &str,
    value: impl std::fmt::Display,
) {
    let _ = writeln!(
        out,
        "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}"
    );
}

/// What the running server is made of.
pub struct Site {
    /// The HTTP server.
    pub server: HTTPServer,
    /// Where it listens.
    pub addrs: Vec<SocketAddr>,
    /// The metrics registry.
    pub metrics: Metrics,
    /// Set when shutdown starts; `/healthz` then answers 503.
    pub draining: super::shutdown::Draining,
    /// Gives memory back after a mass close (runs while this lives).
    pub trimmer: super::memory::Trimmer,
}

/// Build the application for `config` and start listening (the loop is not
/// started: the caller does that).
pub fn build(config: &Config) -> io::Result<Site> {
    // The pool's ceiling; its threads start only when jobs need them.
    IOLoop::current().set_executor_threads(config.worker_threads);
    let settings = Settings {
        cookie_secret: cookie_secret(config)?,
        template_path: config.template_path.clone(),
        template_bundle: Some(super::assets::TEMPLATES),
        static_path: config.static_path.clone(),
        static_bundle: Some(super::assets::STATIC),
        debug: config.debug,
        // Every WebSocket route inherits them (chat, cart, echo).
        websocket_ping_interval: config.ws_ping_interval,
        websocket_ping_timeout: config.ws_ping_timeout,
        ..Settings::default()
    };
    let mut app = Application::new(settings)?;
    let metrics = Metrics::default();

    let accounts = super::accounts::Accounts::open(config.data_dir.as_deref())?;
    let chat = super::chat::Chat::new(super::chat::ChatOptions::from_config(config))?;
    super::accounts::handlers::mount(&mut app, &accounts);
    super::chat::handlers::mount(&mut app, &chat, &accounts);
    accounts.register_metrics(&metrics);
    chat.register_metrics(&metrics);
    let chat_socket = super::chat::socket::mount(&mut app, &chat, &accounts);
    chat_socket.register_metrics(&metrics);
    app.route("/hello", Hello);
    let draining = super::shutdown::Draining::default();
    app.route(
        "/healthz",
        Healthz {
            draining: draining.clone(),
        },
    );
    app.route(
        "/metrics",
        MetricsPage {
            metrics: metrics.clone(),
        },
    );
    let inventory = super::cart::mount(&mut app);
    metrics.register(move |out| {
        write_metric(
            out,
            "squall_cart_inventory",
            "gauge",
            "Books left in the cart demo.",
            inventory.count(),
        );
        write_metric(
            out,
            "squall_cart_waiters",
            "gauge",
            "Parked /cart/status long-polls.",
            inventory.waiter_count(),
        );
        write_metric(
            out,
            "squall_cart_subscribers",
            "gauge",
            "Open /cart/socket WebSockets.",
            inventory.subscriber_count(),
        );
    });

    app.route("/ws/echo", WebSocketRoute::new(super::ws_echo::WsEcho));
    metrics.register(|out| {
        let open = crate::websocket::open_connections();
        let help = "Open WebSocket connections.";
        write_metric(out, "squall_websocket_connections", "gauge", help, open);
    });
    let blocking = super::upstream::BlockingPolicy {
        enabled: config.rate_blocking,
        max_delay_ms: config.rate_blocking_max_delay_ms,
        ..super::upstream::BlockingPolicy::default()
    };
    // A queue of three rounds behind the threads (DEFAULT_MAX_OFFLOADS).
    let max_offloads = config.worker_threads.saturating_mul(4);
    let started = super::upstream::start(
        &mut app,
        config.address,
        config.upstream_delay_ms,
        blocking,
        max_offloads,
    );
    if let Err(e) = started {
        log::error!("the /rate demo is off: cannot bind its upstream server's port: {e}");
    }

    let server = HTTPServer::new(config.http.clone(), app.into_callback());
    register_core_metrics(&metrics, server.stats());
    let stats = server.stats();
    let trimmer = super::memory::start(move || {
        stats.open_connections.get() + crate::websocket::open_connections()
    });
    let addrs = server.listen_host(
        &config.address.to_string(),
        config.port,
        &config.bind_options(),
    )?;
    Ok(Site {
        server,
        addrs,
        metrics,
        draining,
        trimmer,
    })
}

/// The cookie-signing secret: the configured one; else the one kept in the
/// data directory (created on first start, mode 0600), so logins survive a
/// restart; else a random one for this run only (said in the log).
fn cookie_secret(config: &Config) -> io::Result<Vec<u8>> {
    if let Some(s) = &config.cookie_secret {
        return Ok(s.as_bytes().to_vec());
    }
    if let Some(dir) = &config.data_dir {
        return super::store::load_or_create_secret(dir);
    }
    let mut secret = vec![0u8; 32];
    // Without randomness no secret is safe: refuse to start.
    getrandom::fill(&mut secret)
        .map_err(|e| io::Error::other(format!("cannot generate a cookie secret: {e}")))?;
    log::warn!(
        "no --cookie-secret given: using a random one, so logins end when the server restarts"
    );
    Ok(secret)
}

fn register_core_metrics(metrics: &Metrics, stats: Rc<ServerStats>) {
    metrics.register(move |out| {
        let ioloop = IOLoop::current();
        write_metric(
            out,
            "squall_http_connections",
            "gauge",
            "Open HTTP connections.",
            stats.open_connections.get(),
        );
        write_metric(
            out,
            "squall_http_requests_total",
            "counter",
            "Requests dispatched.",
            stats.requests.get(),
        );
        write_metric(
            out,
            "squall_ioloop_handlers",
            "gauge",
            "Sockets registered with the IOLoop.",
            ioloop.handler_count(),
        );
        write_metric(
            out,
            "squall_ioloop_timers",
            "gauge",
            "Pending timers.",
            ioloop.timer_count(),
        );
        write_metric(
            out,
            "squall_ioloop_worker_threads",
            "gauge",
            "Worker threads alive (started on demand, gone after idling).",
            ioloop.executor_thread_count(),
        );
    });
}

/// `GET /hello`: the 13-byte body the benchmarks compare.
struct Hello;

impl RequestHandler for Hello {
    fn get(&self, cx: &Ctx) -> HandlerResult {
        cx.set_header("Content-Type", "text/plain; charset=UTF-8");
        cx.write("Hello, world!");
        Ok(())
    }
}

/// `GET /healthz`: 200 `ok` while serving, 503 `draining` once shutdown
/// began (so a load balancer stops sending traffic during the grace period).
struct Healthz {
    /// Set by the shutdown handler.
    draining: super::shutdown::Draining,
}

impl RequestHandler for Healthz {
    fn get(&self, cx: &Ctx) -> HandlerResult {
        cx.set_header("Content-Type", "text/plain; charset=UTF-8");
        cx.set_header("Cache-Control", "no-store");
        if self.draining.get() {
            cx.set_status(503);
            cx.write("draining\n");
        } else {
            cx.write("ok\n");
        }
        Ok(())
    }
}

/// `GET /metrics`: Prometheus text format.
struct MetricsPage {
    metrics: Metrics,
}

impl RequestHandler for MetricsPage {
    fn get(&self, cx: &Ctx) -> HandlerResult {
        cx.set_header("Content-Type", "text/plain; version=0.0.4; charset=utf-8");
        cx.set_header("Cache-Control", "no-store");
        cx.write(self.metrics.render());
        Ok(())
    }
}
