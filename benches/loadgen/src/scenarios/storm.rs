//! `connect-storm`: N connects started at once, unpaced.
//!
//! Every connect is started in one loop; each connection that completes sends
//! one GET and waits for its answer. Within `--timeout` each connection ends
//! as answered, refused/reset, or still waiting. A SYN or handshake ACK that
//! the server's full listen queue dropped is retried by our kernel after 1 s,
//! 3 s, 7 s..., so the answered ones are also split into "first try" (under
//! `--slow-ms`, default 900 ms) and "slow" (needed a retransmission). The
//! kernel's `ListenOverflows`/`ListenDrops` counters (system-wide) are read
//! before and after.

use crate::cli::{Args, Target};
use crate::http::parse_response;
use crate::net::Pool;
use crate::stats::{merge, ClientCpu, Samples};
use crate::sys::listen_counters;
use serde_json::{json, Value};
use std::time::{Duration, Instant};

pub const FLAGS: &[&str] = &["url", "n", "timeout", "slow-ms"];

#[derive(Clone, Copy, PartialEq)]
enum S {
    Pending,
    Answered,
    Failed,
}

pub fn run(argv: &[String]) -> Result<Value, String> {
    let a = Args::parse(argv, FLAGS)?;
    let target = Target::parse(&a.str("url", "http://127.0.0.1:8888/hello"))?;
    let n: usize = a.num("n", 15000)?;
    let timeout = Duration::from_secs_f64(a.num("timeout", 20.0)?);
    let slow = Duration::from_millis(a.num("slow-ms", 900)?);
    let client = ClientCpu::start();
    let req = format!(
        "GET {} HTTP/1.1\r\nHost: {}\r\n\r\n",
        target.path, target.host
    )
    .into_bytes();

    let mut pool = Pool::new(target.addr)?;
    pool.check_fd_budget(n)?;
    let lc0 = listen_counters();
    let t0 = Instant::now();
    for _ in 0..n {
        pool.add_conn();
    }
    let started_ms = t0.elapsed().as_secs_f64() * 1e3;
    let mut state = vec![S::Pending; n];
    let mut lat = Samples::default();
    let mut slow_count = 0usize;
    let mut non_2xx = 0usize;
    let mut first_error: Option<String> = None;
    for (i, c) in pool.conns.iter().enumerate() {
        if c.is_dead() {
            state[i] = S::Failed;
            first_error.get_or_insert(c.error.clone().unwrap_or_default());
        }
    }
    let mut pending = state.iter().filter(|s| **s == S::Pending).count();
    while pending > 0 && t0.elapsed() < timeout {
        pool.pump(Duration::from_millis(50), |i, c, now| {
            if i >= n || state[i] != S::Pending {
                return;
            }
            if c.just_connected {
                c.send(&req);
            }
            match parse_response(c.unread(), c.eof, false) {
                Ok(Some(r)) => {
                    state[i] = S::Answered;
                    pending -= 1;
                    let d = now - c.started;
                    if d >= slow {
                        slow_count += 1;
                    }
                    if !(200..300).contains(&r.status) {
                        non_2xx += 1;
                    }
                    lat.push(d);
                    c.close();
                }
                Ok(None) if !(c.is_dead() || c.eof) => {}
                Ok(None) | Err(_) => {
                    state[i] = S::Failed;
                    pending -= 1;
                    first_error.get_or_insert(
                        c.error
                            .clone()
                            .unwrap_or_else(|| "closed without an answer".into()),
                    );
                    c.close();
                }
            }
        });
    }
    let wall = t0.elapsed().as_secs_f64();
    pool.close_all();
    let lc1 = listen_counters();
    let answered = state.iter().filter(|s| **s == S::Answered).count();
    let failed = state.iter().filter(|s| **s == S::Failed).count();
    let (ov, dr) = match (lc0, lc1) {
        (Some(a), Some(b)) => (Some(b.0.saturating_sub(a.0)), Some(b.1.saturating_sub(a.1))),
        _ => (None, None),
    };
    let mut out = json!({
        "scenario": "connect-storm",
        "n": n,
        "answered": answered,
        "answered_first_try": answered - slow_count,
        "answered_slow": slow_count,
        "refused_or_reset": failed,
        "timed_out": pending,
        "dropped": n - (answered - slow_count),
        "non_2xx": non_2xx,
        "listen_overflows": ov,
        "listen_drops": dr,
        "connects_started_ms": (started_ms * 1000.0).round() / 1000.0,
        "wall_s": (wall * 1000.0).round() / 1000.0,
        "first_error": first_error,
    });
    merge(&mut out, lat.summary());
    merge(&mut out, client.finish());
    println!(
        "connect-storm: n={n}: answered {answered} ({} first try, {slow_count} after a retransmission), refused/reset {failed}, timed out {pending}; ListenOverflows +{:?}",
        answered - slow_count,
        ov
    );
    Ok(out)
}
