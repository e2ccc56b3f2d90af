//! `cart-race`: N sessions press "add" at the same instant.
//!
//! `GET /cart` gives the `_xsrf` cookie; each of N connections gets its own
//! session id: with `--sessions page` (the default `auto` picks it when the
//! page shows a uuid) one `GET /cart` per session and the uuid4 found in the
//! page, with `--sessions client` uuid4 strings made here. All N
//! connections are opened first, then every `POST /cart` (`action=add`,
//! `session`, `_xsrf`) is written in one tight loop. Counts 200 (accepted)
//! and 409 (refused), reads the inventory from `GET /cart/status?count=-1`
//! before and after, then removes what was accepted so the next run starts
//! from the same stock.

use crate::cli::{Args, Target};
use crate::http::{form, parse_response, Client};
use crate::net::Pool;
use crate::stats::{merge, ClientCpu, ServerCpu};
use crate::sys::Rng;
use serde_json::{json, Value};
use std::time::{Duration, Instant};

pub const FLAGS: &[&str] = &[
    "url",
    "n",
    "timeout",
    "connect-batch",
    "sessions",
    "server-pid",
];

/// The first uuid4-shaped string in `text`, as the cart page shows its session.
fn find_uuid(text: &str) -> Option<String> {
    let b = text.as_bytes();
    let shape = |w: &[u8]| {
        w.len() == 36
            && w.iter().enumerate().all(|(i, c)| match i {
                8 | 13 | 18 | 23 => *c == b'-',
                _ => c.is_ascii_hexdigit(),
            })
    };
    (0..b.len().saturating_sub(35))
        .find(|&i| shape(&b[i..i + 36]))
        .map(|i| text[i..i + 36].to_string())
}

/// `inventoryCount` from the JSON (a number, or a string as in the book).
fn inventory_of(v: &Value) -> Option<i64> {
    let x = v.get("inventoryCount")?;
    x.as_i64().or_else(|| x.as_str()?.trim().parse().ok())
}

fn read_inventory(c: &mut Client) -> Result<i64, String> {
    let r = c.get("/cart/status?count=-1")?;
    if r.status != 200 {
        return Err(format!("GET /cart/status?count=-1 answered {}", r.status));
    }
    inventory_of(&r.json()?).ok_or_else(|| "no inventoryCount in /cart/status".into())
}

pub fn run(argv: &[String]) -> Result<Value, String> {
    let a = Args::parse(argv, FLAGS)?;
    let target = Target::parse(&a.str("url", "http://127.0.0.1:8888"))?;
    let n: usize = a.num("n", 200)?;
    let timeout = Duration::from_secs_f64(a.num("timeout", 30.0)?);
    let batch: usize = a.num("connect-batch", 100)?;
    let pid: Option<u32> = a.opt_num("server-pid")?;
    let mut rng = Rng::new();
    let client = ClientCpu::start();

    let mut c = Client::new(&target);
    let page = c.get("/cart")?;
    let xsrf = c
        .cookie("_xsrf")
        .ok_or_else(|| format!("GET /cart (status {}) set no _xsrf cookie", page.status))?
        .to_string();
    let cookie = c.cookie_header();
    let before = read_inventory(&mut c)?;

    let mode = a.str("sessions", "auto");
    let page_uuid = find_uuid(&String::from_utf8_lossy(&page.body));
    let from_page = match mode.as_str() {
        "page" => true,
        "client" => false,
        "auto" => page_uuid.is_some(),
        m => return Err(format!("--sessions {m}: expected auto, page or client")),
    };
    let mut sessions: Vec<String> = Vec::with_capacity(n);
    if from_page {
        for _ in 0..n {
            let p = c.get("/cart")?;
            let id = find_uuid(&String::from_utf8_lossy(&p.body))
                .ok_or("GET /cart shows no session uuid")?;
            sessions.push(id);
        }
    } else {
        sessions.extend((0..n).map(|_| rng.uuid4()));
    }
    let mut pool = Pool::new(target.addr)?;
    let deadline = Instant::now() + timeout;
    let range = pool.open_paced(n, batch, deadline)?;
    let reqs: Vec<Vec<u8>> = sessions
        .iter()
        .map(|s| {
            let body = form(&[("action", "add"), ("session", s), ("_xsrf", &xsrf)]);
            format!(
                "POST /cart HTTP/1.1\r\nHost: {}\r\nCookie: {cookie}\r\n\
                 Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\r\n{body}",
                target.host,
                body.len()
            )
            .into_bytes()
        })
        .collect();
    // Fire.
    let server = ServerCpu::start(pid);
    let mut status: Vec<Option<u16>> = vec![None; n];
    let mut failed = vec![false; n];
    for i in range.clone() {
        let c = &mut pool.conns[i];
        if c.connected && !c.is_dead() {
            c.send(&reqs[i]);
        } else {
            failed[i] = true;
        }
    }
    let t0 = Instant::now();
    let mut counts_seen: Vec<i64> = Vec::new();
    let pending = |status: &Vec<Option<u16>>, failed: &Vec<bool>| {
        (0..n).any(|i| status[i].is_none() && !failed[i])
    };
    while pending(&status, &failed) && t0.elapsed() < timeout {
        pool.pump(Duration::from_millis(50), |i, c, _| {
            if i >= n || status[i].is_some() || failed[i] {
                return;
            }
            match parse_response(c.unread(), c.eof, false) {
                Ok(Some(r)) => {
                    status[i] = Some(r.status);
                    if let Some(k) = serde_json::from_slice::<Value>(&r.body)
                        .ok()
                        .as_ref()
                        .and_then(inventory_of)
                    {
                        counts_seen.push(k);
                    }
                    let used = r.consumed;
                    c.consume(used);
                }
                Ok(None) if !(c.is_dead() || c.eof) => {}
                Ok(None) | Err(_) => failed[i] = true,
            }
        });
    }
    let race_ms = t0.elapsed().as_secs_f64() * 1e3;
    let server_cpu = server.elapsed();
    pool.close_all();
    let accepted: Vec<usize> = (0..n).filter(|i| status[*i] == Some(200)).collect();
    let refused = status.iter().filter(|s| **s == Some(409)).count();
    let other = status
        .iter()
        .filter(|s| matches!(s, Some(x) if *x != 200 && *x != 409))
        .count();
    let no_answer = (0..n).filter(|i| status[*i].is_none()).count();
    let after = read_inventory(&mut c)?;

    // Give the stock back so a repeat starts where this one did.
    let mut release_errors = 0;
    for &i in &accepted {
        match c.post_form("/cart", &[("action", "remove"), ("session", &sessions[i])]) {
            Ok(r) if r.status == 200 => {}
            _ => release_errors += 1,
        }
    }
    let released = read_inventory(&mut c).ok();
    let min_seen = counts_seen.iter().min().copied();
    let mut out = json!({
        "scenario": "cart-race",
        "n": n,
        "sessions_from": if from_page { "page" } else { "client" },
        "inventory_before": before,
        "accepted": accepted.len(),
        "refused": refused,
        "other_status": other,
        "no_answer": no_answer,
        "inventory_after": after,
        "min_inventory_seen": min_seen,
        "oversold": (accepted.len() as i64) > before,
        "negative": after < 0 || min_seen.is_some_and(|m| m < 0),
        "inventory_after_release": released,
        "release_errors": release_errors,
        "race_ms": (race_ms * 1000.0).round() / 1000.0,
        "server_cpu_s": server_cpu,
    });
    merge(&mut out, client.finish());
    println!(
        "cart-race: n={n}: inventory {before} -> {after}; accepted {} refused {refused} other {other} no answer {no_answer}; after release {:?}",
        accepted.len(),
        released
    );
    Ok(out)
}

#[cfg(test)]
mod tests {
    #[test]
    fn finds_the_session_uuid() {
        let page =
            r#"<input type="hidden" name="session" value="0f8fad5b-d9cb-469f-a165-70867728950e">"#;
        assert_eq!(
            super::find_uuid(page).as_deref(),
            Some("0f8fad5b-d9cb-469f-a165-70867728950e")
        );
        assert_eq!(super::find_uuid("no id here"), None);
    }
}
