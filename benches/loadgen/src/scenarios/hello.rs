//! `hello`: keep-alive GETs of a tiny route, closed loop.
//!
//! Each of `--conns` connections sends `--pipeline` requests in one write,
//! waits for all their answers, and sends the next batch, for `--duration`
//! seconds after every connection is up. Reports req/s, latency percentiles
//! (from the batch's send to each answer), and with `--server-pid` the
//! server's CPU seconds per request.
//!
//! Answers are parsed with httparse once; an answer byte-identical to the
//! previous good one is then recognised by a prefix compare, which keeps the
//! client cheap at millions of answers per second.

use crate::cli::{Args, Target};
use crate::http::parse_response;
use crate::net::Pool;
use crate::stats::{merge, round3, ClientCpu, Histogram, ServerCpu};
use serde_json::{json, Value};
use std::time::{Duration, Instant};

pub const FLAGS: &[&str] = &[
    "url",
    "conns",
    "duration",
    "pipeline",
    "server-pid",
    "connect-batch",
];

pub fn run(argv: &[String]) -> Result<Value, String> {
    let a = Args::parse(argv, FLAGS)?;
    let target = Target::parse(&a.str("url", "http://127.0.0.1:8888/hello"))?;
    let conns: usize = a.num("conns", 50)?;
    let secs: f64 = a.num("duration", 10.0)?;
    let pipeline: usize = a.num::<usize>("pipeline", 1)?.max(1);
    let pid: Option<u32> = a.opt_num("server-pid")?;
    let batch: usize = a.num("connect-batch", 100)?;

    let one = format!(
        "GET {} HTTP/1.1\r\nHost: {}\r\n\r\n",
        target.path, target.host
    );
    let req: Vec<u8> = one.repeat(pipeline).into_bytes();

    let mut pool = Pool::new(target.addr)?;
    let range = pool.open_paced(conns, batch, Instant::now() + Duration::from_secs(60))?;
    let up = pool.live(range.clone());
    println!(
        "hello: {up}/{conns} connections up to {}{} (pipeline {pipeline})",
        target.host, target.path
    );
    if up == 0 {
        return Err("no connection could be opened".into());
    }

    let mut outstanding = vec![0usize; conns];
    let mut sent_at = vec![Instant::now(); conns];
    let mut hist = Histogram::new();
    let mut completed: u64 = 0;
    let mut non_2xx: u64 = 0;
    let mut errors: u64 = 0;
    let mut reconnects: u64 = 0;
    let mut cache: Vec<u8> = Vec::new();
    let mut to_reconnect: Vec<usize> = Vec::new();

    let client = ClientCpu::start();
    let server = ServerCpu::start(pid);
    let start = Instant::now();
    let end = start + Duration::from_secs_f64(secs);
    for i in range.clone() {
        let c = &mut pool.conns[i];
        if c.connected && !c.is_dead() {
            c.send(&req);
            outstanding[i] = pipeline;
            sent_at[i] = start;
        }
    }

    while Instant::now() < end {
        let left = end.saturating_duration_since(Instant::now());
        pool.pump(left.min(Duration::from_millis(100)), |i, c, now| {
            if c.just_connected && outstanding[i] == 0 && now < end {
                c.send(&req);
                outstanding[i] = pipeline;
                sent_at[i] = now;
            }
            while outstanding[i] > 0 {
                let buf = c.unread();
                let used;
                if !cache.is_empty() && buf.starts_with(&cache) {
                    used = cache.len();
                } else {
                    match parse_response(buf, c.eof, false) {
                        Ok(Some(r)) => {
                            used = r.consumed;
                            if (200..300).contains(&r.status) {
                                if !r.close && r.consumed <= 4096 {
                                    cache = buf[..used].to_vec();
                                }
                            } else {
                                non_2xx += 1;
                            }
                            if r.close {
                                to_reconnect.push(i);
                            }
                        }
                        Ok(None) => break,
                        Err(_) => {
                            errors += 1;
                            to_reconnect.push(i);
                            break;
                        }
                    }
                }
                c.consume(used);
                outstanding[i] -= 1;
                if now < end {
                    completed += 1;
                    hist.record(now - sent_at[i]);
                }
            }
            if outstanding[i] == 0
                && now < end
                && !c.is_dead()
                && c.connected
                && !to_reconnect.contains(&i)
            {
                c.send(&req);
                outstanding[i] = pipeline;
                sent_at[i] = now;
            }
            if (c.is_dead() || c.eof) && !to_reconnect.contains(&i) {
                errors += 1;
                to_reconnect.push(i);
            }
        });
        for i in to_reconnect.drain(..) {
            if reconnects > (conns as u64) * 100 {
                return Err("server keeps closing connections; giving up".into());
            }
            reconnects += 1;
            outstanding[i] = 0;
            pool.reconnect(i);
        }
    }
    let wall = start.elapsed().as_secs_f64();
    let server_cpu = server.elapsed();
    pool.close_all();

    let rps = completed as f64 / wall;
    let mut out = json!({
        "scenario": "hello",
        "url": format!("http://{}{}", target.host, target.path),
        "conns": conns,
        "conns_up": up,
        "pipeline": pipeline,
        "duration_s": round3(wall),
        "requests": completed,
        "rps": rps.round(),
        "non_2xx": non_2xx,
        "errors": errors,
        "reconnects": reconnects,
    });
    merge(&mut out, hist.summary());
    if let Some(cpu) = server_cpu {
        merge(
            &mut out,
            json!({
                "server_cpu_s": cpu,
                // Share of its core the server used: near 1 = saturated.
                "server_cpu_frac": round3(cpu / wall),
                "server_cpu_us_per_req": if completed > 0 { round3(cpu * 1e6 / completed as f64) } else { 0.0 },
            }),
        );
    }
    merge(&mut out, client.finish_with_server(server_cpu));
    if out["client_bound"] == json!(true) {
        println!(
            "hello: WARNING client-bound (client used {} of its core)",
            out["client_cpu_frac"]
        );
    }
    let cpu_note = match out.get("server_cpu_us_per_req") {
        Some(us) => format!("; server CPU {us} us/request"),
        None => String::new(),
    };
    println!(
        "hello: {completed} requests in {wall:.2} s = {rps:.0} req/s; p50 {} ms p99 {} ms; non-2xx {non_2xx}, errors {errors}{cpu_note}",
        out["p50_ms"], out["p99_ms"]
    );
    Ok(out)
}
