//! `connect-storm`: N connects started at once, unpaced.
//!
//! Every connect is started in one loop, without waiting for any (the loop
//! only peeks at completions every 100 connects so answers are timed
//! fairly); each connection that completes sends one GET and waits for its
//! answer. Within `--timeout` each connection ends as answered,
//! refused/reset, or still waiting. A SYN or handshake ACK that the server's
//! full listen queue dropped is retried by our kernel after 1 s, 3 s, 7 s...:
//! each answered connection's `TCP_INFO` retransmit count tells whether it
//! needed that ("retransmitted"), and the kernel's `ListenOverflows` /
//! `ListenDrops` counters (system-wide) are read before and after.
//! `dropped` = retransmitted + refused/reset + never answered.

use crate::cli::{Args, Target};
use crate::http::parse_response;
use crate::net::Pool;
use crate::stats::{merge, ClientCpu, Samples, ServerCpu};
use crate::sys::listen_counters;
use serde_json::{json, Value};
use std::time::{Duration, Instant};

pub const FLAGS: &[&str] = &["url", "n", "timeout", "server-pid"];

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
    let pid: Option<u32> = a.opt_num("server-pid")?;
    let client = ClientCpu::start();
    let req = format!(
        "GET {} HTTP/1.1\r\nHost: {}\r\n\r\n",
        target.path, target.host
    )
    .into_bytes();

    let mut pool = Pool::new(target.addr)?;
    pool.check_fd_budget(n)?;
    let lc0 = listen_counters();
    let server = ServerCpu::start(pid);
    let t0 = Instant::now();
    let mut state = vec![S::Pending; n];
    let mut lat = Samples::default();
    let mut retransmitted = 0usize;
    let mut non_2xx = 0usize;
    let mut first_error: Option<String> = None;
    let mut pending = n;
    let mut started = 0usize;
    while (pending > 0 || started < n) && t0.elapsed() < timeout {
        if started < n {
            let upto = (started + 100).min(n);
            while started < upto {
                let i = pool.add_conn();
                let c = &pool.conns[i];
                if c.is_dead() {
                    state[i] = S::Failed;
                    pending -= 1;
                    first_error.get_or_insert(c.error.clone().unwrap_or_default());
                }
                started += 1;
            }
        }
        let wait = if started < n {
            Duration::ZERO
        } else {
            Duration::from_millis(50)
        };
        pool.pump(wait, |i, c, now| {
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
                    if c.stream
                        .as_ref()
                        .and_then(crate::sys::tcp_retransmits)
                        .unwrap_or(0)
                        > 0
                    {
                        retransmitted += 1;
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
    let server_cpu = server.elapsed();
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
        "answered_first_try": answered - retransmitted,
        "answered_retransmitted": retransmitted,
        "refused_or_reset": failed,
        "timed_out": pending,
        "dropped": n - (answered - retransmitted),
        "non_2xx": non_2xx,
        "listen_overflows": ov,
        "listen_drops": dr,
        "wall_s": (wall * 1000.0).round() / 1000.0,
        "server_cpu_s": server_cpu,
        "first_error": first_error,
    });
    merge(&mut out, lat.summary());
    merge(&mut out, client.finish());
    println!(
        "connect-storm: n={n}: answered {answered} ({} first try, {retransmitted} after a retransmission), refused/reset {failed}, timed out {pending}; ListenOverflows +{:?}",
        answered - retransmitted,
        ov
    );
    Ok(out)
}
