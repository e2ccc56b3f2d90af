//! Shared pieces of the chat scenarios: log in, pick a room, read the
//! cursor, build the long-poll request, and know when the server has parked
//! every waiter.

use crate::cli::Target;
use crate::http::{form, login, Session};
use crate::sys::Rng;
use serde_json::Value;
use std::time::{Duration, Instant};

/// The Prometheus gauge of parked long-poll waiters that both servers expose
/// (summed over its labels). Override with `--waiters-metric`.
pub const DEFAULT_WAITERS_METRIC: &str = "squall_chat_waiters";

/// A logged-in user in a fresh room, with the room's current cursor.
pub struct ChatSetup {
    pub session: Session,
    pub room: String,
    pub cursor: String,
    pub cookie: String,
    pub xsrf: String,
}

/// Register a new user, and post one seed message in a fresh room so the
/// cursor (its id) is the room's latest message.
pub fn setup(target: &Target, room: Option<String>, rng: &mut Rng) -> Result<ChatSetup, String> {
    let name = format!("bench{}", rng.hex(10));
    let mut session = login(target, &name, "bench-password-1")?;
    let room = room.unwrap_or_else(|| format!("bench{}", rng.hex(8)));
    let r = session
        .client
        .post_form("/a/message/new", &[("body", "seed"), ("room", &room)])?;
    if r.status != 200 {
        return Err(format!("POST /a/message/new answered {}", r.status));
    }
    let cursor = r
        .json()?
        .get("id")
        .and_then(Value::as_str)
        .ok_or("POST /a/message/new: no string \"id\" in the answer")?
        .to_string();
    let cookie = session.cookie_header();
    let xsrf = session.xsrf();
    Ok(ChatSetup {
        session,
        room,
        cursor,
        cookie,
        xsrf,
    })
}

/// `POST /a/message/updates` with form `cursor`, `room`, `_xsrf` (keep-alive).
pub fn updates_request(host: &str, cookie: &str, xsrf: &str, room: &str, cursor: &str) -> Vec<u8> {
    let body = form(&[("cursor", cursor), ("room", room), ("_xsrf", xsrf)]);
    post_raw(host, "/a/message/updates", cookie, &body)
}

/// `POST /a/message/new` with form `body`, `room`, `_xsrf` (keep-alive).
pub fn new_message_request(
    host: &str,
    cookie: &str,
    xsrf: &str,
    room: &str,
    body: &str,
) -> Vec<u8> {
    let b = form(&[("body", body), ("room", room), ("_xsrf", xsrf)]);
    post_raw(host, "/a/message/new", cookie, &b)
}

fn post_raw(host: &str, path: &str, cookie: &str, body: &str) -> Vec<u8> {
    format!(
        "POST {path} HTTP/1.1\r\nHost: {host}\r\nCookie: {cookie}\r\n\
         Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

/// The message objects of an answer: `{"messages": [...]}`, a bare array,
/// or one message object.
pub fn messages_of(v: &Value) -> Vec<&Value> {
    if let Some(a) = v.get("messages").and_then(Value::as_array) {
        return a.iter().collect();
    }
    if let Some(a) = v.as_array() {
        return a.iter().collect();
    }
    if v.get("body").is_some() {
        return vec![v];
    }
    Vec::new()
}

/// How the scenario learns that the server has parked its waiters.
pub struct ParkCheck {
    pub target: Target,
    pub metric: String,
    pub pid: Option<u32>,
    pub settle: Duration,
    /// Set after the first look at `/metrics`: whether the gauge exists.
    pub has_metric: Option<bool>,
}

/// The answer of one [`ParkCheck::poll`].
pub enum Parked {
    Yes(&'static str),
    NotYet,
}

impl ParkCheck {
    /// A check that has not looked at `/metrics` yet.
    pub fn new(target: Target, metric: String, pid: Option<u32>, settle: Duration) -> ParkCheck {
        ParkCheck {
            target,
            metric,
            pid,
            settle,
            has_metric: None,
        }
    }

    /// One look: `expected` waiters parked? `since` is when the last request
    /// was written, `cpu_prev` carries the previous CPU sample between calls.
    ///
    /// 1. the gauge in `/metrics` reaches `expected` (exact);
    /// 2. else, with a server pid: its CPU time stops moving for 200 ms
    ///    (it has parsed and parked everything it was sent);
    /// 3. else a fixed settle time after the last request was written.
    pub fn poll(
        &mut self,
        expected: usize,
        since: Instant,
        cpu_prev: &mut Option<(Instant, f64)>,
    ) -> Parked {
        if self.has_metric != Some(false) {
            match crate::http::read_metric(&self.target, &self.metric) {
                Some(v) => {
                    self.has_metric = Some(true);
                    return if v >= expected as f64 {
                        Parked::Yes("metrics")
                    } else {
                        Parked::NotYet
                    };
                }
                None => self.has_metric = Some(false),
            }
        }
        if let Some(pid) = self.pid {
            let now = Instant::now();
            let Some(cpu) = crate::sys::proc_cpu(pid) else {
                return Parked::Yes("server gone");
            };
            match cpu_prev {
                Some((t, c)) if now.duration_since(*t) >= Duration::from_millis(200) => {
                    if cpu - *c < 0.005 && now.duration_since(since) >= Duration::from_millis(200) {
                        return Parked::Yes("cpu-quiet");
                    }
                    *cpu_prev = Some((now, cpu));
                }
                Some(_) => {}
                None => *cpu_prev = Some((now, cpu)),
            }
            return Parked::NotYet;
        }
        if since.elapsed() >= self.settle {
            Parked::Yes("settle")
        } else {
            Parked::NotYet
        }
    }
}
