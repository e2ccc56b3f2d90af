//! `idle`: memory held per idle connection.
//!
//! Reads the server's RSS (`VmRSS`), opens N connections of one kind and
//! leaves them idle, reads RSS again, closes them all, waits for the server
//! to let go, reads RSS a third time, and checks the server still answers.
//!
//! Kinds: `keepalive` (one GET answered, then silence), `longpoll` (a parked
//! `/a/message/updates` waiter), `ws` (an open `/chatsocket` WebSocket).

use super::chat::{self, ParkCheck, Parked};
use super::wsfanout;
use crate::cli::{Args, Target};
use crate::http::{parse_response, Client};
use crate::net::Pool;
use crate::stats::{merge, round3, ClientCpu};
use crate::sys::{proc_alive, proc_rss_kb, proc_rss_parts_kb, Rng};
use serde_json::{json, Value};
use std::time::{Duration, Instant};

pub const FLAGS: &[&str] = &[
    "url",
    "n",
    "kind",
    "server-pid",
    "path",
    "waiters-metric",
    "settle-ms",
    "setup-timeout",
    "connect-batch",
    "conns-metric",
];

/// squall's gauge of open HTTP connections, read (when present) to check
/// that the server's count returns after the close.
pub const DEFAULT_CONNS_METRIC: &str = "squall_http_connections";

pub fn run(argv: &[String]) -> Result<Value, String> {
    let a = Args::parse(argv, FLAGS)?;
    let target = Target::parse(&a.str("url", "http://127.0.0.1:8888"))?;
    let n: usize = a.num("n", 15000)?;
    let kind = a.str("kind", "keepalive");
    let pid: u32 = a.opt_num("server-pid")?.ok_or("idle needs --server-pid")?;
    let settle = Duration::from_millis(a.num("settle-ms", 1000)?);
    let setup_timeout = Duration::from_secs_f64(a.num("setup-timeout", 180.0)?);
    let batch: usize = a.num("connect-batch", 100)?;
    let metric = a.str("waiters-metric", chat::DEFAULT_WAITERS_METRIC);
    let conns_metric = a.str("conns-metric", DEFAULT_CONNS_METRIC);
    let mut rng = Rng::new();
    let client = ClientCpu::start();
    let deadline = Instant::now() + setup_timeout;
    let mut pool = Pool::new(target.addr)?;
    pool.check_fd_budget(n)?;

    // Everything that is not per connection happens before the first reading.
    let chat_setup = match kind.as_str() {
        "keepalive" => None,
        "longpoll" | "ws" => Some(chat::setup(&target, None, &mut rng)?),
        k => return Err(format!("--kind {k}: expected keepalive, longpoll or ws")),
    };
    std::thread::sleep(Duration::from_millis(300));
    let rss0 = proc_rss_kb(pid).ok_or("cannot read the server's VmRSS")?;
    let parts0 = proc_rss_parts_kb(pid);
    let waiters0 = crate::http::read_metric(&target, &metric);
    let conns0 = crate::http::read_metric(&target, &conns_metric);
    let mut first_error: Option<String> = None;

    let held = match kind.as_str() {
        "keepalive" => {
            let path = a.str("path", "/hello");
            let req = format!("GET {path} HTTP/1.1\r\nHost: {}\r\n\r\n", target.host).into_bytes();
            let range = pool.open_paced(n, batch, deadline)?;
            let mut answered = vec![false; n];
            let mut dead = vec![false; n];
            for i in range.clone() {
                let c = &mut pool.conns[i];
                if c.connected && !c.is_dead() {
                    c.send(&req);
                } else {
                    dead[i] = true;
                    first_error
                        .get_or_insert(c.error.clone().unwrap_or_else(|| "connect failed".into()));
                }
            }
            let mut left = (0..n).filter(|i| !dead[*i]).count();
            while left > 0 && Instant::now() < deadline {
                pool.pump(Duration::from_millis(50), |i, c, _| {
                    if i >= n || answered[i] || dead[i] {
                        return;
                    }
                    match parse_response(c.unread(), c.eof, false) {
                        Ok(Some(r)) => {
                            let used = r.consumed;
                            let st = r.status;
                            c.consume(used);
                            answered[i] = true;
                            left -= 1;
                            if st != 200 {
                                first_error.get_or_insert(format!("{path} answered {st}"));
                            }
                        }
                        Ok(None) if !(c.is_dead() || c.eof) => {}
                        Ok(None) | Err(_) => {
                            dead[i] = true;
                            left -= 1;
                            first_error.get_or_insert(
                                c.error
                                    .clone()
                                    .unwrap_or_else(|| "bad answer or closed".into()),
                            );
                        }
                    }
                });
            }
            answered.iter().filter(|x| **x).count()
        }
        "longpoll" => {
            let cs = chat_setup.as_ref().ok_or("no chat setup")?;
            let range = pool.open_paced(n, batch, deadline)?;
            let req =
                chat::updates_request(&target.host, &cs.cookie, &cs.xsrf, &cs.room, &cs.cursor);
            for i in range.clone() {
                let c = &mut pool.conns[i];
                if c.connected && !c.is_dead() {
                    c.send(&req);
                } else {
                    first_error
                        .get_or_insert(c.error.clone().unwrap_or_else(|| "connect failed".into()));
                }
            }
            let live = pool.live(range.clone());
            let mut park = ParkCheck::new(target.clone(), metric.clone(), Some(pid), settle);
            let since = Instant::now();
            let mut prev = None;
            let mut early = 0usize;
            loop {
                let t = Instant::now();
                while t.elapsed() < Duration::from_millis(100) {
                    pool.pump(Duration::from_millis(20), |_, c, _| {
                        if !c.unread().is_empty() || c.eof {
                            // A waiter should not be answered while idle.
                            early += 1;
                            c.consume(usize::MAX);
                            c.close();
                        }
                    });
                }
                let expect = waiters0.map(|w| w as usize).unwrap_or(0) + live - early;
                if let Parked::Yes(_) = park.poll(expect, since, &mut prev) {
                    break;
                }
                if Instant::now() > deadline {
                    break;
                }
            }
            if early > 0 {
                first_error.get_or_insert(format!(
                    "{early} waiters were answered or closed while idle"
                ));
            }
            live - early
        }
        _ => {
            let cs = chat_setup.as_ref().ok_or("no chat setup")?;
            let path = format!("/chatsocket?room={}", crate::http::form_encode(&cs.room));
            let up = wsfanout::Upgrade {
                target: &target,
                path: &path,
                cookie: &cs.cookie,
                batch,
            };
            let (clients, err) = wsfanout::open_many(&mut pool, &up, n, deadline, &mut rng)?;
            if let Some(e) = err {
                first_error.get_or_insert(e);
            }
            clients.iter().filter(|w| w.open).count()
        }
    };
    // Let the server finish and the allocator settle.
    let t = Instant::now();
    while t.elapsed() < settle {
        pool.pump(Duration::from_millis(50), |_, _, _| {});
    }
    let rss1 = proc_rss_kb(pid).ok_or("cannot read the server's VmRSS")?;
    let parts1 = proc_rss_parts_kb(pid);
    let waiters1 = crate::http::read_metric(&target, &metric);
    let conns1 = crate::http::read_metric(&target, &conns_metric);
    println!("idle: {held}/{n} {kind} connections held; server RSS {rss0} KiB -> {rss1} KiB");

    pool.close_all();
    // Wait for the server to notice: the waiter gauge back to where it was,
    // or its CPU quiet, then the settle time.
    let mut park = ParkCheck::new(target.clone(), metric.clone(), Some(pid), settle);
    let since = Instant::now();
    let mut prev = None;
    let until = Instant::now() + Duration::from_secs(30);
    loop {
        std::thread::sleep(Duration::from_millis(100));
        let w = crate::http::read_metric(&target, &metric);
        let open = crate::http::read_metric(&target, &conns_metric);
        let done = match (waiters0, w, conns0, open) {
            // The server's connection count is back (the probe itself is one).
            (_, _, Some(a), Some(b)) => b <= a + 1.0,
            (Some(a), Some(b), _, _) => b <= a,
            _ => matches!(park.poll(usize::MAX, since, &mut prev), Parked::Yes(_)),
        };
        if done || Instant::now() > until {
            break;
        }
    }
    std::thread::sleep(settle);
    let rss2 = proc_rss_kb(pid).ok_or("cannot read the server's VmRSS")?;
    let parts2 = proc_rss_parts_kb(pid);
    let waiters2 = crate::http::read_metric(&target, &metric);
    let conns2 = crate::http::read_metric(&target, &conns_metric);

    let mut c = Client::new(&target);
    c.timeout = Duration::from_secs(10);
    let still = proc_alive(pid)
        && (c.get("/healthz").map(|r| r.status == 200).unwrap_or(false)
            || c.get("/hello").map(|r| r.status == 200).unwrap_or(false));
    let per_conn = if held > 0 {
        (rss1 as f64 - rss0 as f64) * 1024.0 / held as f64
    } else {
        0.0
    };
    let ret_pct = (rss2 as f64 - rss0 as f64) * 100.0 / rss0.max(1) as f64;
    let mut out = json!({
        "scenario": "idle",
        "kind": kind,
        "n": n,
        "held": held,
        "rss_before_kb": rss0,
        "rss_open_kb": rss1,
        "rss_after_close_kb": rss2,
        // The same three readings split (heap / mapped files), to tell what
        // connections held from code pages first touched during the run.
        "rss_anon_kb": [parts0.map(|p| p.0), parts1.map(|p| p.0), parts2.map(|p| p.0)],
        "rss_file_kb": [parts0.map(|p| p.1), parts1.map(|p| p.1), parts2.map(|p| p.1)],
        "bytes_per_conn": per_conn.round(),
        "rss_after_close_vs_before_pct": round3(ret_pct),
        "waiters_before": waiters0,
        "waiters_open": waiters1,
        "waiters_after_close": waiters2,
        "server_conns_before": conns0,
        "server_conns_open": conns1,
        "server_conns_after_close": conns2,
        "still_answers": still,
        "first_error": first_error,
    });
    merge(&mut out, client.finish());
    println!(
        "idle: {kind}: {:.0} bytes/connection; after closing RSS {rss2} KiB ({:+.1}% vs before); still answers: {still}",
        per_conn, ret_pct
    );
    Ok(out)
}
