//! Command-line options of the `squall` binary (Tornado's `options.py`
//! `define(...)` + `parse_command_line()`, on lexopt).
//!
//! Two options also read an environment variable, so a secret need not
//! appear in `ps` output: `--cookie-secret` ← `SQUALL_COOKIE_SECRET` and
//! `--data-dir` ← `SQUALL_DATA_DIR` (the flag wins when both are given).

use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

use crate::http::HTTPServerOptions;
use crate::tcpserver::{BindOptions, TcpKeepalive};
use crate::web::AssetSource;

/// Where the repository's `templates/` and `static/` are, for `cargo run`
/// from any directory. A binary whose checkout is gone uses the copies
/// built into it ([`super::assets`]).
const CRATE_DIR: &str = env!("CARGO_MANIFEST_DIR");

/// The checkout's directory `name`, if it is still there: the default of
/// `--template-path` and `--static-path`. `None` means the copy built into
/// the binary.
fn checkout_dir(name: &str) -> Option<PathBuf> {
    let dir = PathBuf::from(CRATE_DIR).join(name);
    dir.is_dir().then_some(dir)
}

/// What to run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// The web server (default).
    Serve,
    /// The line echo server.
    Echo,
}

/// Parsed options.
#[derive(Debug, Clone)]
pub struct Config {
    /// Which program.
    pub command: Command,
    /// Listen address (default 127.0.0.1: nothing is exposed by accident).
    pub address: IpAddr,
    /// Listen port (8888, as Tornado's demos; echo: 8889).
    pub port: u16,
    /// Re-read templates and static files per request; verbose errors.
    pub debug: bool,
    /// Secret for signed cookies; generated per run if absent.
    pub cookie_secret: Option<String>,
    /// Where users' data (accounts, chat history) is kept; none = memory only.
    pub data_dir: Option<PathBuf>,
    /// Template directory; `None`: the templates built into the binary.
    pub template_path: Option<PathBuf>,
    /// Static file directory; `None`: the static files built into the
    /// binary.
    pub static_path: Option<PathBuf>,
    /// Set SO_REUSEPORT so several processes can share the port.
    pub reuse_port: bool,
    /// HTTP limits and timeouts.
    pub http: HTTPServerOptions,
    /// Longest echo line.
    pub max_line: usize,
    /// Delay of the slow upstream in the async-vs-blocking demo (ms), when
    /// a request gives no `delay_ms`.
    pub upstream_delay_ms: u64,
    /// Serve `/rate/blocking` (on by default on a loopback address: it is
    /// the demo's lesson; off by default on any other, since one request
    /// from anyone freezes the server for up to 11 s; off, it answers 403
    /// saying how to turn it on). `--rate-blocking` / `--no-rate-blocking`
    /// decide explicitly.
    pub rate_blocking: bool,
    /// Largest `delay_ms` `/rate/blocking` accepts: the longest one request
    /// may freeze the loop, bar the timeout's 1 s of slack.
    pub rate_blocking_max_delay_ms: u64,
    /// Most worker threads for blocking work (`run_in_executor`); they
    /// start on demand and exit after idling. The offload
    /// demo parks one per request for the upstream's whole delay, so this is
    /// above the core count: I/O-bound waits, not CPU.
    pub worker_threads: usize,
    /// How often one chat user may post.
    pub chat_post_rate: crate::apps::chat::PostRate,
    /// After SIGINT/SIGTERM: time in-flight requests get before the loop
    /// stops (a second signal stops at once).
    pub shutdown_grace: Duration,
    /// Keep-alive of the site's WebSockets (chat, cart, echo): a ping this
    /// often, and a peer silent for [`Config::ws_ping_timeout`] after one
    /// is dropped; `None` = no pings. Tornado's `websocket_ping_interval`
    /// setting.
    pub ws_ping_interval: Option<Duration>,
    /// How long a WebSocket peer may stay silent after a ping; `None` = the
    /// ping interval (Tornado's default). Tornado's
    /// `websocket_ping_timeout` setting.
    pub ws_ping_timeout: Option<Duration>,
    /// TCP keep-alive on every accepted connection (site and echo): probes
    /// after this long with no traffic either way, so a client that
    /// vanished without a FIN is let go (its parked long-poll, its idle
    /// connection); `None` = the kernel's default (off).
    pub tcp_keepalive: Option<Duration>,
}

/// Default of [`Config::tcp_keepalive`]: a client that vanished is let go
/// about two minutes after its connection went silent (60 s, then six
/// probes 10 s apart: [`TcpKeepalive::after`]), at once if its host
/// answers the first probe with an RST. An idle connection costs one
/// probe and its answer a minute.
pub const DEFAULT_TCP_KEEPALIVE: Duration = Duration::from_secs(60);

/// Longest `--tcp-keepalive` Linux accepts (`MAX_TCP_KEEPIDLE`).
const MAX_TCP_KEEPALIVE_SECS: u64 = 32_767;

impl Config {
    /// Where the templates come from: `template_path`, or the copies
    /// built into the binary when it is `None`. (The web layer makes the
    /// same choice from `Settings`; the chat's `message.html` renderer,
    /// which has no application, takes it from here.)
    pub fn template_source(&self) -> AssetSource {
        match &self.template_path {
            Some(dir) => AssetSource::Dir(dir.clone()),
            None => AssetSource::Bundled(super::assets::TEMPLATES),
        }
    }

    /// How the server's listening sockets are bound: `--reuse-port` and
    /// `--tcp-keepalive`.
    pub fn bind_options(&self) -> BindOptions {
        BindOptions {
            reuse_port: self.reuse_port,
            keepalive: self.tcp_keepalive.map(TcpKeepalive::after),
            ..BindOptions::default()
        }
    }
}

/// Default of [`Config::ws_ping_interval`]: a vanished browser leaves its
/// chat room within about a minute. (Tornado sends no pings unless
/// `websocket_ping_interval` is set; a chat needs them to tell who is
/// still there.)
pub const DEFAULT_WS_PING_INTERVAL: Duration = Duration::from_secs(30);

impl Default for Config {
    fn default() -> Config {
        Config {
            command: Command::Serve,
            address: IpAddr::from([127, 0, 0, 1]),
            port: 8888,
            debug: false,
            cookie_secret: None,
            data_dir: None,
            template_path: checkout_dir("templates"),
            static_path: checkout_dir("static"),
            reuse_port: false,
            http: HTTPServerOptions::default(),
            max_line: super::echo::DEFAULT_MAX_LINE,
            upstream_delay_ms: 1000,
            rate_blocking: true,
            rate_blocking_max_delay_ms: super::upstream::MAX_DELAY_MS,
            worker_threads: 16,
            chat_post_rate: crate::apps::chat::PostRate::default(),
            shutdown_grace: super::shutdown::DEFAULT_GRACE,
            ws_ping_interval: Some(DEFAULT_WS_PING_INTERVAL),
            ws_ping_timeout: None,
            tcp_keepalive: Some(DEFAULT_TCP_KEEPALIVE),
        }
    }
}

/// The `--help` text.
pub const HELP: &str = "\
squall — Tornado's classic demo apps on a hand-written Rust reactor

USAGE:
    squall [OPTIONS]            serve chat, cart and the demos on http://127.0.0.1:8888/
    squall echo [OPTIONS]       line echo server (telnet 127.0.0.1 8889)

OPTIONS:
    --address ADDR              listen address [127.0.0.1]
    --port N                    listen port [8888; echo: 8889]
    --debug                     re-read templates/static files on every request
    --cookie-secret S           signing key for cookies [env SQUALL_COOKIE_SECRET;
                                default: stored in --data-dir, else random per run]
    --data-dir DIR              keep accounts and chat history here [env SQUALL_DATA_DIR]
    --template-path DIR         templates [<crate>/templates while it exists,
                                else the copies built into the binary]
    --static-path DIR           static files [<crate>/static, likewise]
    --builtin-assets            serve the built-in templates and static files
                                even where the checkout's directories exist
    --reuse-port                SO_REUSEPORT: several processes may share the port
    --max-body-size BYTES       largest request body [10485760]
    --max-header-size BYTES     largest request head [65536]
    --header-timeout SECS       time to send a request head [30]
    --body-timeout SECS         time to send a request body [120]
    --idle-timeout SECS         idle keep-alive connections close after [300]
    --no-keep-alive             close every connection after one response
    --xheaders                  trust X-Real-Ip / X-Forwarded-For (behind a proxy)
    --max-line BYTES            echo: longest line [65536]
    --upstream-delay-ms MS      /rate demo: the slow upstream's delay [1000; max 10000]
    --rate-blocking, --no-rate-blocking
                                /rate demo: serve /rate/blocking, which freezes
                                the whole server for each request's delay, or
                                answer it 403 [on for a loopback --address,
                                else off]
    --rate-blocking-max-delay-ms MS
                                /rate demo: the longest delay /rate/blocking
                                accepts; it freezes the server that long, plus
                                at most 1 s if the upstream is silent [10000]
    --worker-threads N          most threads for blocking work (run_in_executor),
                                started on demand, gone after 10 s idle [16]
    --shutdown-grace SECS       after SIGINT/SIGTERM, time left to requests in
                                flight; a second signal stops at once [5]
    --chat-post-rate N          chat: posts per second one user may keep up
                                (0 = no limit; fractions allowed) [5]
    --chat-post-burst N         chat: posts one user may send back to back [20]
    --ws-ping-interval SECS     WebSockets (chat, cart, echo): ping this often
                                (0 = no pings) [30]
    --ws-ping-timeout SECS      how long a WebSocket peer may stay silent after a
                                ping before it is dropped [the ping interval]
    --tcp-keepalive SECS        TCP keep-alive: probe a connection silent for SECS
                                (then up to 6 probes 10 s apart), so a client that
                                vanished without a FIN is let go (0 = off;
                                at most 32767) [60]
    -h, --help                  this text

Logging: RUST_LOG=info (default), e.g. RUST_LOG=info,squall::access=warn to
keep only the access log's 4xx and 5xx lines.";

/// Parse `args` (without the program name), then environment fallbacks.
pub fn parse<I>(args: I) -> Result<Option<Config>, String>
where
    I: IntoIterator<Item = std::ffi::OsString>,
{
    use lexopt::prelude::*;
    let mut config = Config::default();
    let mut port_given = false;
    let mut builtin_assets = false;
    let mut rate_blocking: Option<bool> = None;
    let (mut template_given, mut static_given) = (false, false);
    let mut parser = lexopt::Parser::from_args(args);
    let err = |e: lexopt::Error| e.to_string();
    while let Some(arg) = parser.next().map_err(err)? {
        match arg {
            Short('h') | Long("help") => return Ok(None),
            Long("address") => config.address = parsed(&mut parser)?,
            Long("port") => {
                config.port = parsed(&mut parser)?;
                port_given = true;
            }
            Long("debug") => config.debug = true,
            Long("cookie-secret") => {
                config.cookie_secret = Some(parser.value().map_err(err)?.string().map_err(err)?)
            }
            Long("data-dir") => config.data_dir = Some(parser.value().map_err(err)?.into()),
            Long("template-path") => {
                config.template_path = Some(parser.value().map_err(err)?.into());
                template_given = true;
            }
            Long("static-path") => {
                config.static_path = Some(parser.value().map_err(err)?.into());
                static_given = true;
            }
            Long("builtin-assets") => builtin_assets = true,
            Long("reuse-port") => config.reuse_port = true,
            Long("max-body-size") => config.http.max_body_size = parsed(&mut parser)?,
            Long("max-header-size") => config.http.max_header_size = parsed(&mut parser)?,
            Long("header-timeout") => config.http.header_timeout = secs(parsed(&mut parser)?),
            Long("body-timeout") => config.http.body_timeout = secs(parsed(&mut parser)?),
            Long("idle-timeout") => {
                config.http.idle_connection_timeout = secs(parsed(&mut parser)?)
            }
            Long("no-keep-alive") => config.http.no_keep_alive = true,
            Long("xheaders") => config.http.xheaders = true,
            Long("max-line") => config.max_line = parsed(&mut parser)?,
            Long("upstream-delay-ms") => {
                config.upstream_delay_ms = delay_ms(&mut parser, "upstream-delay-ms")?
            }
            Long("rate-blocking") => rate_blocking = Some(true),
            Long("no-rate-blocking") => rate_blocking = Some(false),
            Long("rate-blocking-max-delay-ms") => {
                config.rate_blocking_max_delay_ms =
                    delay_ms(&mut parser, "rate-blocking-max-delay-ms")?
            }
            Long("shutdown-grace") => config.shutdown_grace = secs(parsed(&mut parser)?),
            Long("worker-threads") => {
                let n: usize = parsed(&mut parser)?;
                if n == 0 {
                    return Err("--worker-threads: at least 1".into());
                }
                config.worker_threads = n;
            }
            Long("chat-post-rate") => {
                let n: f64 = parsed(&mut parser)?;
                if !(n >= 0.0 && n.is_finite()) {
                    return Err("--chat-post-rate: a number, 0 or more".into());
                }
                config.chat_post_rate.per_second = n;
            }
            Long("ws-ping-interval") => {
                config.ws_ping_interval = ping_seconds(&mut parser, "ws-ping-interval")?;
            }
            Long("ws-ping-timeout") => match ping_seconds(&mut parser, "ws-ping-timeout")? {
                Some(timeout) => config.ws_ping_timeout = Some(timeout),
                None => return Err("--ws-ping-timeout: over 0 seconds".into()),
            },
            Long("tcp-keepalive") => {
                let s: u64 = parsed(&mut parser)?;
                if s > MAX_TCP_KEEPALIVE_SECS {
                    return Err(format!(
                        "--tcp-keepalive: whole seconds, 0 (off) to {MAX_TCP_KEEPALIVE_SECS}"
                    ));
                }
                config.tcp_keepalive = (s > 0).then(|| secs(s));
            }
            Long("chat-post-burst") => {
                let n: u32 = parsed(&mut parser)?;
                if n == 0 {
                    return Err("--chat-post-burst: at least 1".into());
                }
                config.chat_post_rate.burst = n;
            }
            Value(v) if v == "echo" && config.command == Command::Serve => {
                config.command = Command::Echo
            }
            Value(v) if v == "serve" => config.command = Command::Serve,
            _ => return Err(arg.unexpected().to_string()),
        }
    }
    // Anyone who can reach a public address could freeze the server.
    config.rate_blocking = rate_blocking.unwrap_or(config.address.is_loopback());
    // An explicit path wins over --builtin-assets, whatever the order.
    if builtin_assets && !template_given {
        config.template_path = None;
    }
    if builtin_assets && !static_given {
        config.static_path = None;
    }
    if config.command == Command::Echo && !port_given {
        config.port = 8889;
    }
    if config.cookie_secret.is_none() {
        config.cookie_secret = std::env::var("SQUALL_COOKIE_SECRET")
            .ok()
            .filter(|s| !s.is_empty());
    }
    if config.data_dir.is_none() {
        config.data_dir = std::env::var_os("SQUALL_DATA_DIR")
            .filter(|s| !s.is_empty())
            .map(PathBuf::from);
    }
    Ok(Some(config))
}

/// The value of the option just read, parsed as a `T`.
fn parsed<T>(parser: &mut lexopt::Parser) -> Result<T, String>
where
    T: std::str::FromStr,
    T::Err: Into<Box<dyn std::error::Error + Send + Sync + 'static>>,
{
    use lexopt::ValueExt;
    parser
        .value()
        .and_then(|value| value.parse())
        .map_err(|e| e.to_string())
}

/// The value of `--flag`, WebSocket ping seconds (fractions allowed): 0
/// is `None`, at most a day.
fn ping_seconds(parser: &mut lexopt::Parser, flag: &str) -> Result<Option<Duration>, String> {
    let s: f64 = parsed(parser)?;
    if !(0.0..=86_400.0).contains(&s) {
        return Err(format!("--{flag}: seconds, 0 to 86400"));
    }
    Ok((s > 0.0).then(|| Duration::from_secs_f64(s)))
}

/// The value of `--flag`, a delay of the `/rate` demo in milliseconds:
/// at most [`super::upstream::MAX_DELAY_MS`].
fn delay_ms(parser: &mut lexopt::Parser, flag: &str) -> Result<u64, String> {
    let ms: u64 = parsed(parser)?;
    let max = super::upstream::MAX_DELAY_MS;
    if ms > max {
        return Err(format!("--{flag}: at most {max} ms"));
    }
    Ok(ms)
}

fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(list: &[&str]) -> Vec<std::ffi::OsString> {
        list.iter().map(|s| s.into()).collect()
    }

    #[test]
    fn defaults_and_overrides() {
        let c = parse(args(&[])).expect("parses").expect("not help");
        assert_eq!(c.port, 8888);
        assert_eq!(c.command, Command::Serve);
        let c = parse(args(&["--port", "9000", "--debug", "--max-body-size=1024"]))
            .expect("parses")
            .expect("not help");
        assert_eq!(c.port, 9000);
        assert!(c.debug);
        assert_eq!(c.http.max_body_size, 1024);
        let e = parse(args(&["echo"])).expect("parses").expect("not help");
        assert_eq!((e.command, e.port), (Command::Echo, 8889));
        assert!(parse(args(&["--help"])).expect("parses").is_none());
        assert!(parse(args(&["--port", "x"])).is_err());
        assert!(parse(args(&["--bogus"])).is_err());
        let u = parse(args(&["--upstream-delay-ms", "250", "--worker-threads=3"]))
            .expect("parses")
            .expect("not help");
        assert_eq!((u.upstream_delay_ms, u.worker_threads), (250, 3));
        assert_eq!(c.upstream_delay_ms, 1000);
        assert_eq!(c.shutdown_grace, Duration::from_secs(5));
        let g = parse(args(&["--shutdown-grace", "0"]))
            .expect("ok")
            .expect("serve");
        assert_eq!(g.shutdown_grace, Duration::ZERO);
        assert!(parse(args(&["--shutdown-grace", "-1"])).is_err());
        assert!(parse(args(&["--upstream-delay-ms", "10001"])).is_err());
        assert!(parse(args(&["--worker-threads", "0"])).is_err());
    }

    #[test]
    fn asset_paths_default_to_the_checkout_and_builtin_replaces_only_defaults() {
        let crate_dir = PathBuf::from(CRATE_DIR);
        let c = parse(args(&[])).expect("parses").expect("not help");
        // The tests run in the checkout, so its directories are there.
        assert_eq!(c.template_path, Some(crate_dir.join("templates")));
        assert_eq!(c.static_path, Some(crate_dir.join("static")));
        let b = parse(args(&["--builtin-assets"]))
            .expect("ok")
            .expect("serve");
        assert_eq!((b.template_path, b.static_path), (None, None));
        for order in [
            ["--template-path", "/t", "--builtin-assets"],
            ["--builtin-assets", "--template-path", "/t"],
        ] {
            let m = parse(args(&order)).expect("ok").expect("serve");
            assert_eq!(m.template_path, Some(PathBuf::from("/t")), "{order:?}");
            assert_eq!(m.static_path, None, "{order:?}");
        }
        assert_eq!(checkout_dir("no-such-directory-here"), None);
    }

    #[test]
    fn websocket_ping_interval() {
        let c = parse(args(&[])).expect("parses").expect("not help");
        assert_eq!(c.ws_ping_interval, Some(DEFAULT_WS_PING_INTERVAL));
        let off = parse(args(&["--ws-ping-interval", "0"]))
            .expect("ok")
            .expect("serve");
        assert_eq!(off.ws_ping_interval, None);
        let quick = parse(args(&["--ws-ping-interval=0.5"]))
            .expect("ok")
            .expect("serve");
        assert_eq!(quick.ws_ping_interval, Some(Duration::from_millis(500)));
        for bad in ["-1", "NaN", "86401", "soon"] {
            assert!(parse(args(&["--ws-ping-interval", bad])).is_err(), "{bad}");
        }
    }

    #[test]
    fn websocket_ping_timeout() {
        let c = parse(args(&[])).expect("parses").expect("not help");
        assert_eq!(c.ws_ping_timeout, None, "default: the interval");
        let long = parse(args(&["--ws-ping-timeout", "90"]))
            .expect("ok")
            .expect("serve");
        assert_eq!(long.ws_ping_timeout, Some(Duration::from_secs(90)));
        for bad in ["0", "-1", "NaN", "86401", "soon"] {
            assert!(parse(args(&["--ws-ping-timeout", bad])).is_err(), "{bad}");
        }
    }

    #[test]
    fn tcp_keepalive() {
        let c = parse(args(&[])).expect("parses").expect("not help");
        assert_eq!(c.tcp_keepalive, Some(DEFAULT_TCP_KEEPALIVE));
        let bind = c.bind_options();
        assert_eq!(
            bind.keepalive,
            Some(TcpKeepalive {
                idle: Duration::from_secs(60),
                interval: Duration::from_secs(10),
                probes: 6,
            })
        );
        assert!(!bind.reuse_port);
        let off = parse(args(&["--tcp-keepalive", "0", "--reuse-port"]))
            .expect("ok")
            .expect("serve");
        assert_eq!(off.bind_options().keepalive, None);
        assert!(off.bind_options().reuse_port);
        let quick = parse(args(&["--tcp-keepalive=2"]))
            .expect("ok")
            .expect("serve");
        let quick = quick.bind_options().keepalive.expect("on");
        // A short idle shortens the probes' spacing too.
        assert_eq!((quick.idle, quick.interval), (secs(2), secs(2)));
        assert_eq!(quick.gives_up_after(), secs(14));
        for bad in ["-1", "0.5", "32768", "soon"] {
            assert!(parse(args(&["--tcp-keepalive", bad])).is_err(), "{bad}");
        }
    }

    #[test]
    fn rate_blocking_switches() {
        let c = parse(args(&[])).expect("parses").expect("not help");
        assert!(c.rate_blocking);
        assert_eq!(c.rate_blocking_max_delay_ms, 10_000);
        let c = parse(args(&[
            "--no-rate-blocking",
            "--rate-blocking-max-delay-ms=500",
        ]))
        .expect("parses")
        .expect("not help");
        assert!(!c.rate_blocking);
        assert_eq!(c.rate_blocking_max_delay_ms, 500);
        // Beyond loopback it is off unless asked for.
        let on = |a: &[&str]| {
            parse(args(a))
                .expect("parses")
                .expect("not help")
                .rate_blocking
        };
        assert!(!on(&["--address", "0.0.0.0"]));
        assert!(!on(&["--address", "192.0.2.7"]));
        assert!(on(&["--address", "0.0.0.0", "--rate-blocking"]));
        assert!(on(&["--address", "::1"]));
        assert!(
            !on(&["--rate-blocking", "--no-rate-blocking"]),
            "the last one wins"
        );
        assert!(parse(args(&["--rate-blocking-max-delay-ms", "10001"])).is_err());
        assert!(parse(args(&["--rate-blocking-max-delay-ms", "-1"])).is_err());
    }

    #[test]
    fn chat_post_rate() {
        use crate::apps::chat::PostRate;
        let c = parse(args(&[])).expect("parses").expect("not help");
        assert_eq!(c.chat_post_rate, PostRate::default());
        let c = parse(args(&["--chat-post-rate", "0.5", "--chat-post-burst=3"]))
            .expect("parses")
            .expect("not help");
        assert_eq!(
            c.chat_post_rate,
            PostRate {
                per_second: 0.5,
                burst: 3
            }
        );
        let c = parse(args(&["--chat-post-rate", "0"]))
            .expect("parses")
            .expect("not help");
        assert_eq!(c.chat_post_rate.per_second, 0.0);
        for bad in [
            ["--chat-post-rate", "-1"],
            ["--chat-post-rate", "NaN"],
            ["--chat-post-rate", "inf"],
            ["--chat-post-burst", "0"],
        ] {
            assert!(parse(args(&bad)).is_err(), "{bad:?}");
        }
    }
}
