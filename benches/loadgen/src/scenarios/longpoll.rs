//! `longpoll-fanout`: N parked long-poll waiters, one new message, time to
//! every full answer.
//!
//! Setup: register a user, post a seed message in a fresh room (its id is
//! the cursor), open N keep-alive connections, each sends `POST
//! /a/message/updates` (`cursor`, `room`, `_xsrf`), and wait until the server
//! has parked them all (see [`super::chat::ParkCheck`]).
//!
//! Each round: one extra connection posts `POST /a/message/new`; each
//! waiter's latency runs from just before that POST is written to the moment
//! its whole answer is in. Like chat.js, each waiter then re-polls with the
//! last id as its new cursor; the round ends when every live waiter is parked
//! again, and the server CPU of the round (delivery plus the N re-polls) is
//! the "re-poll CPU".
//!
//! `--repoll after` (default) sends the N re-polls once every answer is in:
//! N browsers re-poll in parallel, but one client thread writing a re-poll
//! (a loopback `write` that runs the server side's TCP input) between reads
//! would delay reading the other answers and inflate their latencies by the
//! client's own work. `--repoll immediate` re-polls inside the read loop,
//! exactly as chat.js sequences it, so the re-polls compete with delivery.

use super::chat::{self, ParkCheck, Parked};
use crate::cli::{Args, Target};
use crate::http::parse_response;
use crate::net::Pool;
use crate::stats::{merge, round3, ClientCpu, Samples};
use crate::sys::{proc_cpu, Rng};
use serde_json::{json, Value};
use std::time::{Duration, Instant};

pub const FLAGS: &[&str] = &[
    "url",
    "n",
    "rounds",
    "server-pid",
    "room",
    "waiters-metric",
    "settle-ms",
    "round-timeout",
    "repoll",
    "setup-timeout",
    "connect-batch",
];

#[derive(Clone, Copy, PartialEq)]
enum W {
    Waiting,
    Dead,
}

pub fn run(argv: &[String]) -> Result<Value, String> {
    let a = Args::parse(argv, FLAGS)?;
    let target = Target::parse(&a.str("url", "http://127.0.0.1:8888"))?;
    let n: usize = a.num("n", 1000)?;
    let rounds: usize = a.num("rounds", 3)?;
    let pid: Option<u32> = a.opt_num("server-pid")?;
    let round_timeout = Duration::from_secs_f64(a.num("round-timeout", 60.0)?);
    let repoll = a.str("repoll", "after");
    let defer_repoll = match repoll.as_str() {
        "after" => true,
        "immediate" => false,
        m => return Err(format!("--repoll {m}: expected after or immediate")),
    };
    let setup_timeout = Duration::from_secs_f64(a.num("setup-timeout", 120.0)?);
    let batch: usize = a.num("connect-batch", 100)?;
    let mut park = ParkCheck::new(
        target.clone(),
        a.str("waiters-metric", chat::DEFAULT_WAITERS_METRIC),
        pid,
        Duration::from_millis(a.num("settle-ms", 2000)?),
    );
    let mut rng = Rng::new();
    let client = ClientCpu::start();
    let setup_deadline = Instant::now() + setup_timeout;

    let cs = chat::setup(&target, a.opt("room"), &mut rng)?;
    println!(
        "longpoll-fanout: user {} in room {} (cursor {})",
        cs.session.name, cs.room, cs.cursor
    );
    let host = target.host.clone();
    let mut pool = Pool::new(target.addr)?;
    let range = pool.open_paced(n, batch, setup_deadline)?;
    let poster = pool.add_conn();
    let mut state = vec![W::Waiting; n];
    let mut cursor = vec![cs.cursor.clone(); n];
    let mut errors: u64 = 0;
    let mut first_error: Option<String> = None;
    for i in range.clone() {
        let c = &mut pool.conns[i];
        if c.connected && !c.is_dead() {
            c.send(&chat::updates_request(
                &host, &cs.cookie, &cs.xsrf, &cs.room, &cursor[i],
            ));
        } else {
            state[i] = W::Dead;
            errors += 1;
            if first_error.is_none() {
                first_error = c.error.clone();
            }
        }
    }
    let mut last_write = Instant::now();

    // Per-round bookkeeping read by the event handler.
    let mut cur_body = String::new();
    let mut t_send = Instant::now();
    let mut delivered_round = 0usize;
    let mut lat_round = Samples::default();
    let mut post_status: Option<u16> = None;
    let mut post_ms = 0.0;
    let mut early_answers: u64 = 0;
    let mut deferred: Vec<usize> = Vec::new();

    // One handler for every phase.
    macro_rules! pump {
        ($timeout:expr) => {
            pool.pump($timeout, |i, c, now| {
                if i == poster {
                    if let Ok(Some(r)) = parse_response(c.unread(), c.eof, false) {
                        post_status = Some(r.status);
                        post_ms = round3((now - t_send).as_secs_f64() * 1e3);
                        let used = r.consumed;
                        c.consume(used);
                    }
                    return;
                }
                if state[i] == W::Dead {
                    return;
                }
                loop {
                    let (status, used, body) = match parse_response(c.unread(), c.eof, false) {
                        Ok(Some(r)) => (r.status, r.consumed, r.body.into_owned()),
                        Ok(None) => break,
                        Err(e) => {
                            state[i] = W::Dead;
                            errors += 1;
                            first_error.get_or_insert(e);
                            break;
                        }
                    };
                    c.consume(used);
                    if status != 200 {
                        state[i] = W::Dead;
                        errors += 1;
                        first_error.get_or_insert(format!("updates answered {status}"));
                        break;
                    }
                    let Ok(v) = serde_json::from_slice::<Value>(&body) else {
                        state[i] = W::Dead;
                        errors += 1;
                        first_error.get_or_insert("updates answer is not JSON".into());
                        break;
                    };
                    let msgs = chat::messages_of(&v);
                    let mut ours = false;
                    for m in &msgs {
                        if !cur_body.is_empty()
                            && m.get("body").and_then(Value::as_str) == Some(cur_body.as_str())
                        {
                            ours = true;
                        }
                    }
                    if let Some(id) = msgs
                        .last()
                        .and_then(|m| m.get("id"))
                        .and_then(Value::as_str)
                    {
                        cursor[i] = id.to_string();
                    }
                    if ours {
                        delivered_round += 1;
                        lat_round.push(now - t_send);
                    } else {
                        early_answers += 1;
                    }
                    if ours && defer_repoll {
                        // Sent once every waiter has its answer (see the module note).
                        deferred.push(i);
                    } else {
                        // Re-poll at once, as chat.js does.
                        c.send(&chat::updates_request(
                            &host, &cs.cookie, &cs.xsrf, &cs.room, &cursor[i],
                        ));
                        last_write = now;
                    }
                }
                if c.is_dead() || (c.eof && c.unread().is_empty()) {
                    if state[i] != W::Dead {
                        state[i] = W::Dead;
                        errors += 1;
                        first_error.get_or_insert(
                            c.error.clone().unwrap_or_else(|| "server closed".into()),
                        );
                    }
                }
            })
        };
    }

    // Initial parking: keep pumping (early answers are handled) and look at
    // the park check every 100 ms.
    let live = |state: &Vec<W>| state.iter().filter(|s| **s == W::Waiting).count();
    let mut how = "timeout";
    let mut prev = None;
    loop {
        let t = Instant::now();
        while t.elapsed() < Duration::from_millis(100) {
            pump!(Duration::from_millis(20));
        }
        if let Parked::Yes(h) = park.poll(live(&state), last_write, &mut prev) {
            how = h;
            break;
        }
        if Instant::now() > setup_deadline {
            break;
        }
    }
    let parked = live(&state);
    println!("longpoll-fanout: {parked}/{n} waiters parked (detected by {how})");
    if parked == 0 {
        return Err(format!(
            "no waiter parked: {}",
            first_error.unwrap_or_else(|| "unknown".into())
        ));
    }

    let mut all = Samples::default();
    let mut per_round = Vec::new();
    let mut delivered_total = 0usize;
    let mut expected_total = 0usize;
    let nonce = rng.hex(8);
    for r in 0..rounds {
        let expected = live(&state);
        expected_total += expected;
        cur_body = format!("lp-{nonce}-{r}");
        delivered_round = 0;
        lat_round = Samples::default();
        post_status = None;
        // A server may close the poster's keep-alive connection: open a new one.
        if pool.conns[poster].is_dead() || pool.conns[poster].eof {
            pool.reconnect(poster);
        }
        let cpu0 = pid.and_then(proc_cpu);
        let client0 = crate::sys::self_cpu();
        t_send = Instant::now();
        let req = chat::new_message_request(&host, &cs.cookie, &cs.xsrf, &cs.room, &cur_body);
        pool.conns[poster].send(&req);
        let deadline = t_send + round_timeout;
        while (delivered_round < expected || post_status.is_none()) && Instant::now() < deadline {
            pump!(Duration::from_millis(50));
            if pool.conns[poster].is_dead() && post_status.is_none() {
                break;
            }
        }
        let t_delivered = t_send.elapsed();
        let delivery_client_frac =
            (crate::sys::self_cpu() - client0).as_secs_f64() / t_delivered.as_secs_f64().max(1e-9);
        // The re-polls held back during delivery go out now, all at once.
        for i in deferred.drain(..) {
            if state[i] == W::Waiting {
                let req = chat::updates_request(&host, &cs.cookie, &cs.xsrf, &cs.room, &cursor[i]);
                pool.conns[i].send(&req);
            }
        }
        last_write = Instant::now();
        // Re-poll phase: until every live waiter is parked again.
        let repark_deadline = Instant::now() + round_timeout;
        let mut prev = None;
        let mut how = "timeout";
        loop {
            let t = Instant::now();
            while t.elapsed() < Duration::from_millis(50) {
                pump!(Duration::from_millis(10));
            }
            if let Parked::Yes(h) = park.poll(live(&state), last_write, &mut prev) {
                how = h;
                break;
            }
            if Instant::now() > repark_deadline {
                break;
            }
        }
        let cpu1 = pid.and_then(proc_cpu);
        let cpu = match (cpu0, cpu1) {
            (Some(a), Some(b)) => Some(round3(b - a)),
            _ => None,
        };
        let s = lat_round.summary();
        println!(
            "longpoll-fanout: round {r}: delivered {delivered_round}/{expected}, p50 {} ms p99 {} ms max {} ms, POST {:?} in {post_ms} ms, all answered after {:.1} ms, re-parked ({how}) after {:.1} ms, server CPU {}",
            s["p50_ms"], s["p99_ms"], s["max_ms"], post_status, t_delivered.as_secs_f64() * 1e3,
            t_send.elapsed().as_secs_f64() * 1e3,
            cpu.map(|c| format!("{c} s")).unwrap_or_else(|| "n/a".into())
        );
        let mut row = json!({
            "round": r,
            "expected": expected,
            "delivered": delivered_round,
            "post_status": post_status,
            "post_ms": post_ms,
            "repark_ms": round3(t_send.elapsed().as_secs_f64() * 1e3),
            // Our own CPU share while the answers came in: near 1 means the
            // client, reading N sockets in turn, added to the latencies.
            "delivery_client_cpu_frac": round3(delivery_client_frac),
            "repark_detected_by": how,
            "server_cpu_s": cpu,
        });
        merge(&mut row, s);
        per_round.push(row);
        delivered_total += delivered_round;
        all.0.append(&mut lat_round.0);
    }
    pool.close_all();

    let mut cpus: Vec<f64> = per_round
        .iter()
        .filter_map(|r| r["server_cpu_s"].as_f64())
        .collect();
    cpus.sort_by(f64::total_cmp);
    let repoll_cpu = cpus.get(cpus.len() / 2).copied();
    let mut out = json!({
        "scenario": "longpoll-fanout",
        "n": n,
        "parked": parked,
        "rounds": rounds,
        "delivered": delivered_total,
        "expected": expected_total,
        "errors": errors,
        "early_answers": early_answers,
        "first_error": first_error,
        "parked_detected_by": how,
        "repoll": repoll,
        "repoll_cpu_s": repoll_cpu,
        "per_round": per_round,
    });
    merge(&mut out, all.summary());
    merge(&mut out, client.finish());
    println!(
        "longpoll-fanout: n={n}: delivered {delivered_total}/{expected_total}; p50 {} ms p99 {} ms max {} ms; median round CPU {}",
        out["p50_ms"], out["p99_ms"], out["max_ms"],
        repoll_cpu.map(|c| format!("{c} s")).unwrap_or_else(|| "n/a".into())
    );
    Ok(out)
}
