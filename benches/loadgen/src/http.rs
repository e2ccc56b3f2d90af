//! HTTP/1.1 client pieces: an incremental response parser used by the mio
//! scenarios, and a small blocking client (std sockets with time-outs) for
//! setup steps: log in, read `/metrics`, post a seed message, read the cart.
//!
//! Nothing here panics on a bad answer: every oddity is an `Err(String)` that
//! the scenario counts as an error.

use crate::cli::Target;
use std::borrow::Cow;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

/// Largest response head we accept.
const MAX_HEAD: usize = 64 * 1024;
/// Largest response body we accept (a chat page with 200 messages fits).
pub const MAX_BODY: usize = 16 * 1024 * 1024;

/// One complete response found at the start of a buffer.
pub struct Response<'a> {
    pub status: u16,
    /// Bytes of the buffer this response used (head + body).
    pub consumed: usize,
    pub body: Cow<'a, [u8]>,
    /// Lower-cased header names with their values, only when asked for.
    pub headers: Vec<(String, String)>,
    /// The server said `Connection: close` (or spoke HTTP/1.0 without keep-alive).
    pub close: bool,
}

/// Parse one response at the start of `buf`.
///
/// `Ok(None)`: incomplete, read more. `eof`: the peer closed, so a body
/// delimited by close is complete. `want_headers` copies the headers out.
pub fn parse_response(
    buf: &[u8],
    eof: bool,
    want_headers: bool,
) -> Result<Option<Response<'_>>, String> {
    let mut hs = [httparse::EMPTY_HEADER; 48];
    let mut r = httparse::Response::new(&mut hs);
    let head_len = match r.parse(buf) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) => {
            if buf.len() > MAX_HEAD {
                return Err("response head too large".into());
            }
            return Ok(None);
        }
        Err(e) => return Err(format!("bad response head: {e}")),
    };
    let status = r.code.unwrap_or(0);
    let mut content_length: Option<usize> = None;
    let mut chunked = false;
    let mut close = r.version == Some(0);
    let mut headers = Vec::new();
    for h in r.headers.iter() {
        let name = h.name;
        if name.eq_ignore_ascii_case("content-length") {
            let v = std::str::from_utf8(h.value).map_err(|_| "bad content-length")?;
            content_length = Some(v.trim().parse().map_err(|_| "bad content-length")?);
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            chunked = h.value.eq_ignore_ascii_case(b"chunked");
        } else if name.eq_ignore_ascii_case("connection") {
            let v = String::from_utf8_lossy(h.value).to_ascii_lowercase();
            if v.contains("close") {
                close = true;
            } else if v.contains("keep-alive") {
                close = false;
            }
        }
        if want_headers {
            headers.push((
                name.to_ascii_lowercase(),
                String::from_utf8_lossy(h.value).into_owned(),
            ));
        }
    }
    // No body for 1xx, 204 and 304.
    if status / 100 == 1 || status == 204 || status == 304 {
        return Ok(Some(Response {
            status,
            consumed: head_len,
            body: Cow::Borrowed(&[]),
            headers,
            close,
        }));
    }
    if chunked {
        let mut pos = head_len;
        let mut body = Vec::new();
        loop {
            let Some(eol) = find_crlf(&buf[pos..]) else {
                return Ok(None);
            };
            let line = std::str::from_utf8(&buf[pos..pos + eol]).map_err(|_| "bad chunk size")?;
            let size_txt = line.split(';').next().unwrap_or("").trim();
            let size = usize::from_str_radix(size_txt, 16).map_err(|_| "bad chunk size")?;
            pos += eol + 2;
            if size == 0 {
                // Trailers (usually none) end with an empty line.
                loop {
                    let Some(e) = find_crlf(&buf[pos..]) else {
                        return Ok(None);
                    };
                    pos += e + 2;
                    if e == 0 {
                        break;
                    }
                }
                return Ok(Some(Response {
                    status,
                    consumed: pos,
                    body: Cow::Owned(body),
                    headers,
                    close,
                }));
            }
            if body.len() + size > MAX_BODY {
                return Err("chunked body too large".into());
            }
            if buf.len() < pos + size + 2 {
                return Ok(None);
            }
            body.extend_from_slice(&buf[pos..pos + size]);
            pos += size + 2;
        }
    }
    match content_length {
        Some(n) => {
            if n > MAX_BODY {
                return Err("body too large".into());
            }
            if buf.len() < head_len + n {
                return Ok(None);
            }
            Ok(Some(Response {
                status,
                consumed: head_len + n,
                body: Cow::Borrowed(&buf[head_len..head_len + n]),
                headers,
                close,
            }))
        }
        None => {
            // Delimited by close.
            if !eof {
                return Ok(None);
            }
            Ok(Some(Response {
                status,
                consumed: buf.len(),
                body: Cow::Borrowed(&buf[head_len..]),
                headers,
                close: true,
            }))
        }
    }
}

fn find_crlf(b: &[u8]) -> Option<usize> {
    b.windows(2).position(|w| w == b"\r\n")
}

/// `application/x-www-form-urlencoded` encoding of one value.
pub fn form_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 8);
    for &b in s.as_bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(b as char)
            }
            b' ' => out.push('+'),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

/// A form body from pairs.
pub fn form(pairs: &[(&str, &str)]) -> String {
    pairs
        .iter()
        .map(|(k, v)| format!("{}={}", form_encode(k), form_encode(v)))
        .collect::<Vec<_>>()
        .join("&")
}

/// An owned response from the blocking client.
#[derive(Debug)]
pub struct OwnedResponse {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl OwnedResponse {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
    pub fn json(&self) -> Result<serde_json::Value, String> {
        serde_json::from_slice(&self.body)
            .map_err(|e| format!("bad JSON ({e}) from status {}", self.status))
    }
}

/// A blocking client with a cookie jar: one connection per request
/// (`Connection: close`), every step bounded by `timeout`.
pub struct Client {
    pub target: Target,
    pub cookies: Vec<(String, String)>,
    pub timeout: Duration,
}

impl Client {
    pub fn new(target: &Target) -> Client {
        Client {
            target: target.clone(),
            cookies: Vec::new(),
            timeout: Duration::from_secs(30),
        }
    }

    pub fn cookie(&self, name: &str) -> Option<&str> {
        self.cookies
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// The `Cookie:` header value for the jar (empty when none).
    pub fn cookie_header(&self) -> String {
        self.cookies
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("; ")
    }

    fn store_cookie(&mut self, set_cookie: &str) {
        let mut parts = set_cookie.split(';');
        let Some((name, value)) = parts.next().and_then(|p| p.split_once('=')) else {
            return;
        };
        let name = name.trim().to_string();
        let value = value.trim().trim_matches('"').to_string();
        let expired = parts.any(|a| {
            let a = a.trim().to_ascii_lowercase();
            a == "max-age=0" || a.starts_with("expires=") && a.contains("1970")
        });
        self.cookies.retain(|(k, _)| *k != name);
        if !expired && !value.is_empty() {
            self.cookies.push((name, value));
        }
    }

    /// Send one request and read the whole answer.
    pub fn request(
        &mut self,
        method: &str,
        path: &str,
        body: Option<&str>,
    ) -> Result<OwnedResponse, String> {
        let deadline = Instant::now() + self.timeout;
        let mut s = TcpStream::connect_timeout(&self.target.addr, self.timeout)
            .map_err(|e| format!("connect: {e}"))?;
        s.set_nodelay(true).ok();
        let mut req = format!(
            "{method} {path} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\nUser-Agent: squall-loadgen\r\n",
            self.target.host
        );
        let ck = self.cookie_header();
        if !ck.is_empty() {
            req.push_str(&format!("Cookie: {ck}\r\n"));
        }
        if let Some(b) = body {
            req.push_str(&format!(
                "Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n",
                b.len()
            ));
        }
        req.push_str("\r\n");
        if let Some(b) = body {
            req.push_str(b);
        }
        s.set_write_timeout(Some(self.timeout)).ok();
        s.write_all(req.as_bytes())
            .map_err(|e| format!("write: {e}"))?;
        let mut buf = Vec::with_capacity(4096);
        let mut tmp = [0u8; 16384];
        let mut eof = false;
        loop {
            if let Some(r) = parse_response(&buf, eof, true)? {
                let resp = OwnedResponse {
                    status: r.status,
                    headers: r.headers,
                    body: r.body.into_owned(),
                };
                for (k, v) in &resp.headers {
                    if k == "set-cookie" {
                        let v = v.clone();
                        self.store_cookie(&v);
                    }
                }
                return Ok(resp);
            }
            if eof {
                return Err("connection closed before a full response".into());
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err("timed out".into());
            }
            s.set_read_timeout(Some(left)).ok();
            match s.read(&mut tmp) {
                Ok(0) => eof = true,
                Ok(n) => {
                    if buf.len() + n > MAX_BODY + MAX_HEAD {
                        return Err("response too large".into());
                    }
                    buf.extend_from_slice(&tmp[..n]);
                }
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(format!("read: {e}")),
            }
        }
    }

    pub fn get(&mut self, path: &str) -> Result<OwnedResponse, String> {
        self.request("GET", path, None)
    }

    /// POST a form; the `_xsrf` cookie is echoed as the `_xsrf` field.
    pub fn post_form(
        &mut self,
        path: &str,
        pairs: &[(&str, &str)],
    ) -> Result<OwnedResponse, String> {
        let xsrf = self.cookie("_xsrf").unwrap_or("").to_string();
        let mut all: Vec<(&str, &str)> = pairs.to_vec();
        all.push(("_xsrf", &xsrf));
        let body = form(&all);
        self.request("POST", path, Some(&body))
    }
}

/// A logged-in chat user: the cookie jar holds `_xsrf` and the signed `user`.
pub struct Session {
    pub client: Client,
    pub name: String,
}

impl Session {
    /// `Cookie` header value to put on raw requests.
    pub fn cookie_header(&self) -> String {
        self.client.cookie_header()
    }
    pub fn xsrf(&self) -> String {
        self.client.cookie("_xsrf").unwrap_or("").to_string()
    }
}

/// Register a fresh user (falling back to login if the name exists) per the
/// contract: `GET /auth/login` for the `_xsrf` cookie, then `POST
/// /auth/register` with `name`, `password`, `_xsrf`; expect the `user` cookie.
pub fn login(target: &Target, name: &str, password: &str) -> Result<Session, String> {
    let mut c = Client::new(target);
    let r = c.get("/auth/login")?;
    if c.cookie("_xsrf").is_none() {
        // Some servers set the cookie only on the register page.
        c.get("/auth/register")?;
    }
    if c.cookie("_xsrf").is_none() {
        return Err(format!(
            "GET /auth/login (status {}) set no _xsrf cookie",
            r.status
        ));
    }
    let reg = c.post_form(
        "/auth/register",
        &[("name", name), ("password", password), ("next", "/")],
    )?;
    if c.cookie("user").is_none() {
        let lg = c.post_form(
            "/auth/login",
            &[("name", name), ("password", password), ("next", "/")],
        )?;
        if c.cookie("user").is_none() {
            return Err(format!(
                "no user cookie after POST /auth/register ({}) and POST /auth/login ({})",
                reg.status, lg.status
            ));
        }
    }
    Ok(Session {
        client: c,
        name: name.to_string(),
    })
}

/// Sum of the samples of Prometheus metric `name` (any labels) in `/metrics`;
/// `None` when the route or the metric is absent.
pub fn read_metric(target: &Target, name: &str) -> Option<f64> {
    let mut c = Client::new(target);
    c.timeout = Duration::from_secs(10);
    let r = c.get("/metrics").ok()?;
    if r.status != 200 {
        return None;
    }
    let text = String::from_utf8_lossy(&r.body);
    let mut found = false;
    let mut sum = 0.0;
    for line in text.lines() {
        if line.starts_with('#') {
            continue;
        }
        let metric = line.split(['{', ' ']).next().unwrap_or("");
        if metric != name {
            continue;
        }
        if let Some(v) = line.rsplit(' ').next().and_then(|v| v.parse::<f64>().ok()) {
            sum += v;
            found = true;
        }
    }
    found.then_some(sum)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_content_length_and_pipelined() {
        let b = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhelloHTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n";
        let r = parse_response(b, false, false).unwrap().unwrap();
        assert_eq!((r.status, &*r.body), (200, &b"hello"[..]));
        let r2 = parse_response(&b[r.consumed..], false, false)
            .unwrap()
            .unwrap();
        assert_eq!(r2.status, 404);
    }

    #[test]
    fn parses_chunked_and_partial() {
        let b = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n";
        let r = parse_response(b, false, false).unwrap().unwrap();
        assert_eq!(&*r.body, b"abcde");
        assert_eq!(r.consumed, b.len());
        assert!(parse_response(&b[..b.len() - 1], false, false)
            .unwrap()
            .is_none());
        assert!(parse_response(
            b"HTTP/1.1 200 OK\r\nContent-Length: x\r\n\r\n",
            false,
            false
        )
        .is_err());
    }

    #[test]
    fn form_encoding() {
        assert_eq!(form(&[("a", "x y|z"), ("b", "é")]), "a=x+y%7Cz&b=%C3%A9");
    }
}
