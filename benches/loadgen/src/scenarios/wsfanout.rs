//! `ws-fanout`: N WebSocket members of one room; one of them sends M chat
//! messages `--interval-ms` apart; latency from each send to its arrival at
//! every member (the sender included), and how many arrived.
//!
//! Messages are recognised by their `body` (`wsb-<nonce>-<seq>`), so join or
//! leave notices and history replays that a server may push are ignored.

use crate::cli::{Args, Target};
use crate::net::{Conn, Pool};
use crate::stats::{merge, round3, ClientCpu, Samples, ServerCpu};
use crate::sys::Rng;
use crate::ws;
use serde_json::{json, Value};
use std::time::{Duration, Instant};

pub const FLAGS: &[&str] = &[
    "url",
    "n",
    "messages",
    "interval-ms",
    "server-pid",
    "room",
    "timeout",
    "setup-timeout",
    "connect-batch",
    "settle-ms",
];

/// State of one WebSocket client.
pub struct WsClient {
    pub key: String,
    pub open: bool,
    pub dead: bool,
    pub reader: ws::Reader,
}

/// Drive handshakes and frames for one connection; calls `on_message` for
/// each complete message. Errors close the connection and are returned.
pub fn handle(
    c: &mut Conn,
    w: &mut WsClient,
    rng: &mut Rng,
    mut on_message: impl FnMut(&[u8]),
) -> Result<(), String> {
    if w.dead {
        return Ok(());
    }
    if !w.open {
        match ws::check_handshake(c.unread(), &w.key) {
            Ok(Some(n)) => {
                c.consume(n);
                w.open = true;
            }
            Ok(None) => {
                if c.is_dead() || c.eof {
                    w.dead = true;
                    return Err(c
                        .error
                        .clone()
                        .unwrap_or_else(|| "closed during handshake".into()));
                }
                return Ok(());
            }
            Err(e) => {
                w.dead = true;
                c.close();
                return Err(e);
            }
        }
    }
    loop {
        let f = match ws::parse_frame(c.unread()) {
            Ok(Some(f)) => f,
            Ok(None) => break,
            Err(e) => {
                w.dead = true;
                c.close();
                return Err(e);
            }
        };
        c.consume(f.consumed);
        match w.reader.on_frame(f) {
            Ok(ws::Event::Message(m)) => on_message(&m),
            Ok(ws::Event::Ping(p)) => {
                let mut out = Vec::new();
                let mut mask = [0u8; 4];
                rng.fill(&mut mask);
                ws::encode_frame(&mut out, ws::OP_PONG, &p, mask);
                c.send(&out);
            }
            Ok(ws::Event::Close) => {
                w.dead = true;
                c.close();
                return Err("server sent close".into());
            }
            Ok(ws::Event::Nothing) => {}
            Err(e) => {
                w.dead = true;
                c.close();
                return Err(e);
            }
        }
    }
    if c.is_dead() || c.eof {
        w.dead = true;
        return Err(c.error.clone().unwrap_or_else(|| "server closed".into()));
    }
    Ok(())
}

/// Where and how to open WebSocket connections.
pub struct Upgrade<'a> {
    pub target: &'a Target,
    /// Path and query, e.g. `/chatsocket?room=x`.
    pub path: &'a str,
    /// `Cookie` header value (the logged-in user).
    pub cookie: &'a str,
    /// Connects in flight at once.
    pub batch: usize,
}

/// Open `n` WebSocket connections and complete their handshakes.
/// Returns the clients (dead ones marked) and the first error seen.
pub fn open_many(
    pool: &mut Pool,
    up: &Upgrade,
    n: usize,
    deadline: Instant,
    rng: &mut Rng,
) -> Result<(Vec<WsClient>, Option<String>), String> {
    let (target, path, cookie) = (up.target, up.path, up.cookie);
    let range = pool.open_paced(n, up.batch, deadline)?;
    let mut clients = Vec::with_capacity(n);
    let mut first_error = None;
    for i in range.clone() {
        let key = ws::new_key(rng);
        let c = &mut pool.conns[i];
        let dead = !c.connected || c.is_dead();
        if dead {
            first_error.get_or_insert(c.error.clone().unwrap_or_else(|| "connect failed".into()));
        } else {
            c.send(&ws::handshake_request(path, &target.host, &key, cookie));
        }
        clients.push(WsClient {
            key,
            open: false,
            dead,
            reader: ws::Reader::default(),
        });
    }
    let base = range.start;
    while clients.iter().any(|w| !w.open && !w.dead) && Instant::now() < deadline {
        pool.pump(Duration::from_millis(50), |i, c, _| {
            if i < base || i - base >= clients.len() {
                return;
            }
            if let Err(e) = handle(c, &mut clients[i - base], rng, |_| {}) {
                first_error.get_or_insert(e);
            }
        });
    }
    Ok((clients, first_error))
}

pub fn run(argv: &[String]) -> Result<Value, String> {
    let a = Args::parse(argv, FLAGS)?;
    let target = Target::parse(&a.str("url", "http://127.0.0.1:8888"))?;
    let n: usize = a.num::<usize>("n", 1000)?.max(1);
    let m: usize = a.num("messages", 10)?;
    let interval = Duration::from_millis(a.num("interval-ms", 100)?);
    let pid: Option<u32> = a.opt_num("server-pid")?;
    let timeout = Duration::from_secs_f64(a.num("timeout", 30.0)?);
    let setup_timeout = Duration::from_secs_f64(a.num("setup-timeout", 120.0)?);
    let batch: usize = a.num("connect-batch", 100)?;
    let settle = Duration::from_millis(a.num("settle-ms", 300)?);
    let mut rng = Rng::new();
    let client = ClientCpu::start();

    let name = format!("bench{}", rng.hex(10));
    let session = crate::http::login(&target, &name, "bench-password-1")?;
    let room = a
        .opt("room")
        .unwrap_or_else(|| format!("bench{}", rng.hex(8)));
    let path = format!("/chatsocket?room={}", crate::http::form_encode(&room));
    let mut pool = Pool::new(target.addr)?;
    let deadline = Instant::now() + setup_timeout;
    let (mut clients, mut first_error) = {
        let cookie = session.cookie_header();
        let up = Upgrade {
            target: &target,
            path: &path,
            cookie: &cookie,
            batch,
        };
        open_many(&mut pool, &up, n, deadline, &mut rng)?
    };
    let opened = clients.iter().filter(|w| w.open).count();
    println!("ws-fanout: {opened}/{n} WebSocket clients open in room {room}");
    let Some(sender) = clients.iter().position(|w| w.open) else {
        return Err(format!(
            "no WebSocket opened: {}",
            first_error.unwrap_or_default()
        ));
    };
    // Let the server finish its open() bookkeeping for the last ones.
    let t = Instant::now();
    while t.elapsed() < settle {
        pool.pump(Duration::from_millis(20), |i, c, _| {
            let _ = handle(c, &mut clients[i], &mut rng, |_| {});
        });
    }

    let nonce = rng.hex(8);
    let prefix = format!("wsb-{nonce}-");
    let mut got = vec![false; n * m.max(1)];
    let mut per_msg = vec![Samples::default(); m];
    let mut all = Samples::default();
    let mut sent_at: Vec<Option<Instant>> = vec![None; m];
    let mut delivered = 0usize;
    let mut dups = 0u64;
    let mut errors = 0u64;
    let mut sent = 0usize;
    let server = ServerCpu::start(pid);
    let window = ClientCpu::start();
    let t0 = Instant::now();
    let expected = opened * m;
    loop {
        let now = Instant::now();
        if sent < m && now >= t0 + interval * sent as u32 {
            let body = serde_json::to_vec(&json!({ "body": format!("{prefix}{sent}") }))
                .unwrap_or_default();
            let mut out = Vec::new();
            let mut mask = [0u8; 4];
            rng.fill(&mut mask);
            ws::encode_frame(&mut out, ws::OP_TEXT, &body, mask);
            sent_at[sent] = Some(Instant::now());
            pool.conns[sender].send(&out);
            sent += 1;
        }
        if sent == m && (delivered >= expected || now > sent_at[m - 1].unwrap_or(now) + timeout) {
            break;
        }
        if now > t0 + interval * m as u32 + timeout * 2 {
            break;
        }
        let wait = if sent < m {
            (t0 + interval * sent as u32)
                .saturating_duration_since(now)
                .min(Duration::from_millis(50))
        } else {
            Duration::from_millis(50)
        };
        pool.pump(wait, |i, c, now| {
            let w = &mut clients[i];
            let r = handle(c, w, &mut rng, |msg| {
                let Ok(v) = serde_json::from_slice::<Value>(msg) else {
                    return;
                };
                for mv in crate::scenarios::chat::messages_of(&v) {
                    let Some(b) = mv.get("body").and_then(Value::as_str) else {
                        continue;
                    };
                    let Some(seq) = b
                        .strip_prefix(&prefix)
                        .and_then(|s| s.parse::<usize>().ok())
                    else {
                        continue;
                    };
                    if seq >= m {
                        continue;
                    }
                    let slot = i * m + seq;
                    if got[slot] {
                        dups += 1;
                        continue;
                    }
                    got[slot] = true;
                    delivered += 1;
                    if let Some(t) = sent_at[seq] {
                        per_msg[seq].push(now - t);
                        all.push(now - t);
                    }
                }
            });
            if let Err(e) = r {
                errors += 1;
                first_error.get_or_insert(e);
            }
        });
    }
    let server_cpu = server.elapsed();
    pool.close_all();

    // Time until the last member had each message: the broadcast's span.
    let mut to_all: Vec<f64> = per_msg
        .iter()
        .filter(|s| !s.is_empty())
        .map(|s| s.pct_ms(1.0))
        .collect();
    to_all.sort_by(f64::total_cmp);
    let mut out = json!({
        "scenario": "ws-fanout",
        "n": n,
        "opened": opened,
        "messages": m,
        "interval_ms": interval.as_millis() as u64,
        "delivered": delivered,
        "expected": expected,
        "duplicates": dups,
        "errors": errors,
        "first_error": first_error,
        "to_all_median_ms": to_all.get(to_all.len() / 2).copied(),
        // The first message meets no queue of earlier broadcasts: the
        // latency of one broadcast on its own.
        "first_msg": per_msg.first().map(Samples::summary),
        "server_cpu_s": server_cpu,
        "wall_s": round3(t0.elapsed().as_secs_f64()),
    });
    merge(&mut out, all.summary());
    merge(&mut out, client.finish());
    let w = window.finish_with_server(server_cpu);
    if let Some(o) = w.get("other_cpu_frac") {
        merge(&mut out, json!({ "other_cpu_frac": o }));
    }
    // Our own CPU share while messages were sent and received: near 1 means
    // the client, reading N sockets in turn, added to the latencies.
    merge(
        &mut out,
        json!({ "delivery_client_cpu_frac": w["client_cpu_frac"] }),
    );
    println!(
        "ws-fanout: n={n}: delivered {delivered}/{expected}; p50 {} ms p99 {} ms max {} ms; errors {errors}",
        out["p50_ms"], out["p99_ms"], out["max_ms"]
    );
    Ok(out)
}
