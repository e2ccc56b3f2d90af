//! Test support for the chat tests: run the real `squall` binary on a free
//! port, and talk to it over real sockets with a tiny HTTP/1.1 client that
//! keeps cookies (so `_xsrf` and the signed `user` cookie work as in a
//! browser).
#![allow(dead_code)] // each test file uses a different part

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// Guard timeout for anything a test waits for.
pub const GUARD: Duration = Duration::from_secs(30);

/// A running `squall` process; killed on drop.
pub struct Server {
    pub addr: SocketAddr,
    child: Child,
    /// Every line it writes to stderr, as it arrives.
    log: mpsc::Receiver<String>,
}

impl Server {
    /// `squall --port 0 --cookie-secret test-secret` plus `extra`.
    pub fn start(extra: &[&str]) -> Server {
        let mut args = vec!["--cookie-secret", "test-secret"];
        args.extend_from_slice(extra);
        Server::start_raw(&args)
    }

    /// `squall --address 127.0.0.1 --port 0` plus exactly `args`.
    pub fn start_raw(args: &[&str]) -> Server {
        Server::start_logging(args, "info,squall::access=warn")
    }

    /// [`Server::start_raw`] with `RUST_LOG=rust_log`.
    pub fn start_logging(args: &[&str], rust_log: &str) -> Server {
        let mut child = Command::new(env!("CARGO_BIN_EXE_squall"))
            .args(["--address", "127.0.0.1", "--port", "0"])
            .args(args)
            .env("RUST_LOG", rust_log)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn squall");
        let stderr = child.stderr.take().expect("stderr");
        let (tx, rx) = mpsc::channel();
        let (log_tx, log) = mpsc::channel();
        // Read the log: report the listening address, then keep draining
        // (a full pipe would block the server's logging).
        std::thread::spawn(move || {
            let mut tx = Some(tx);
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if std::env::var_os("SQUALL_TEST_LOG").is_some() {
                    eprintln!("[squall] {line}");
                }
                let _ = log_tx.send(line.clone());
                // The site says "squall listening on http://ADDR/", `squall
                // echo` says "echo server listening on ADDR".
                let rest = line
                    .split("squall listening on http://")
                    .nth(1)
                    .or_else(|| line.split("echo server listening on ").nth(1));
                if let Some(rest) = rest {
                    if let (Some(tx), Ok(addr)) = (tx.take(), rest.trim_end_matches('/').parse()) {
                        let _ = tx.send(addr);
                    }
                }
            }
        });
        let addr = match rx.recv_timeout(GUARD) {
            Ok(addr) => addr,
            Err(_) => {
                let _ = child.kill();
                panic!("squall did not report its address");
            }
        };
        Server { addr, child, log }
    }

    /// Wait (at most [`GUARD`]) for the next stderr line that `matches`,
    /// skipping the others; the line.
    pub fn wait_log(&self, what: &str, matches: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + GUARD;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.log.recv_timeout(left) {
                Ok(line) if matches(&line) => return line,
                Ok(_) => {}
                Err(_) => panic!("no log line: {what}"),
            }
        }
    }

    /// A new client (empty cookie jar) for this server.
    pub fn client(&self) -> Client {
        Client {
            addr: self.addr,
            cookies: HashMap::new(),
        }
    }

    /// The value of an unlabelled metric in `/metrics`.
    pub fn metric(&self, name: &str) -> f64 {
        let r = self.client().get("/metrics");
        assert_eq!(r.status, 200);
        r.text()
            .lines()
            .filter(|l| !l.starts_with('#'))
            .find_map(|l| {
                let (n, v) = l.split_once(' ')?;
                (n == name).then(|| v.trim().parse().ok()).flatten()
            })
            .unwrap_or_else(|| panic!("no metric {name}"))
    }

    /// Wait until `metric` equals `value`. The server offers no push
    /// notification of its gauges, so this re-reads `/metrics` (the same
    /// check the benchmark's load generator makes), under the guard timeout.
    pub fn wait_metric(&self, name: &str, value: f64) {
        let deadline = Instant::now() + GUARD;
        loop {
            let now = self.metric(name);
            if now == value {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{name} stayed at {now}, expected {value}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Send `signal` (e.g. `libc::SIGTERM`) to the process.
    pub fn signal(&self, signal: i32) {
        let pid = i32::try_from(self.child.id()).expect("pid fits");
        // SAFETY: kill(2) with a pid this test started and still owns.
        let rc = unsafe { libc::kill(pid, signal) };
        assert_eq!(rc, 0, "kill({pid}, {signal})");
    }

    /// Threads the process has now (`/proc/PID/task`).
    pub fn threads(&self) -> usize {
        std::fs::read_dir(format!("/proc/{}/task", self.child.id()))
            .expect("/proc/PID/task")
            .count()
    }

    /// File descriptors the process has open now (`/proc/PID/fd`): its
    /// sockets, for servers that count nothing else.
    pub fn open_fds(&self) -> usize {
        std::fs::read_dir(format!("/proc/{}/fd", self.child.id()))
            .expect("/proc/PID/fd")
            .count()
    }

    /// Wait (up to `GUARD`) for the process to exit; its status, or `None`
    /// if it is still running then.
    pub fn wait_exit(&mut self) -> Option<std::process::ExitStatus> {
        let deadline = Instant::now() + GUARD;
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                return Some(status);
            }
            if Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Stop the process and wait for it.
    pub fn kill(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One HTTP response.
#[derive(Debug)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Response {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.text()))
    }

    /// The ids of a `{"messages": [...]}` answer.
    pub fn message_ids(&self) -> Vec<String> {
        self.json()["messages"]
            .as_array()
            .unwrap_or_else(|| panic!("no messages array: {}", self.text()))
            .iter()
            .map(|m| m["id"].as_str().expect("id").to_string())
            .collect()
    }
}

/// A browser-like client: a cookie jar, one connection per request.
#[derive(Clone)]
pub struct Client {
    pub addr: SocketAddr,
    pub cookies: HashMap<String, String>,
}

impl Client {
    pub fn get(&mut self, path: &str) -> Response {
        let req = self.request("GET", path, "");
        self.exchange(&req)
    }

    /// POST form `fields` (the `_xsrf` cookie is added as a field unless
    /// `fields` has one).
    pub fn post(&mut self, path: &str, fields: &[(&str, &str)]) -> Response {
        let req = self.post_request(path, fields);
        self.exchange(&req)
    }

    /// POST form `fields` as they are (no `_xsrf` added).
    pub fn post_raw(&mut self, path: &str, fields: &[(&str, &str)]) -> Response {
        let req = self.request("POST", path, &form(fields));
        self.exchange(&req)
    }

    /// Start a POST and return the socket without reading the answer (a
    /// long poll); finish with [`read_response`].
    pub fn start_post(&self, path: &str, fields: &[(&str, &str)]) -> TcpStream {
        let mut stream = TcpStream::connect(self.addr).expect("connect");
        stream
            .write_all(&self.post_request(path, fields))
            .expect("write");
        stream
    }

    /// The `_xsrf` cookie (fetching a page that sets it if needed).
    pub fn xsrf(&mut self) -> String {
        if !self.cookies.contains_key("_xsrf") {
            self.get("/auth/login");
        }
        self.cookies.get("_xsrf").cloned().expect("_xsrf cookie")
    }

    /// Register `name` and keep the user cookie.
    pub fn register(&mut self, name: &str, password: &str) -> Response {
        self.xsrf();
        let r = self.post(
            "/auth/register",
            &[("name", name), ("password", password), ("next", "/")],
        );
        assert_eq!(r.status, 302, "register {name}: {}", r.text());
        assert!(self.cookies.contains_key("user"));
        r
    }

    /// A logged-in user: a new client registered as `name`.
    pub fn user(server: &Server, name: &str) -> Client {
        let mut c = server.client();
        c.register(name, "password-123");
        c
    }

    fn post_request(&self, path: &str, fields: &[(&str, &str)]) -> Vec<u8> {
        let mut all: Vec<(&str, &str)> = fields.to_vec();
        let xsrf = self.cookies.get("_xsrf").cloned().unwrap_or_default();
        if !fields.iter().any(|(k, _)| *k == "_xsrf") {
            all.push(("_xsrf", &xsrf));
        }
        self.request("POST", path, &form(&all))
    }

    fn request(&self, method: &str, path: &str, body: &str) -> Vec<u8> {
        let cookie: Vec<String> = self
            .cookies
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        let mut req = format!("{method} {path} HTTP/1.1\r\nHost: {}\r\n", self.addr);
        if !cookie.is_empty() {
            req.push_str(&format!("Cookie: {}\r\n", cookie.join("; ")));
        }
        if method == "POST" {
            req.push_str("Content-Type: application/x-www-form-urlencoded\r\n");
            req.push_str(&format!("Content-Length: {}\r\n", body.len()));
        }
        req.push_str("Connection: close\r\n\r\n");
        req.push_str(body);
        req.into_bytes()
    }

    fn exchange(&mut self, req: &[u8]) -> Response {
        let mut stream = TcpStream::connect(self.addr).expect("connect");
        stream.write_all(req).expect("write");
        let r = read_response(&mut stream);
        self.absorb_cookies(&r);
        r
    }

    /// Keep the cookies `r` sets (and drop the ones it clears).
    pub fn absorb_cookies(&mut self, r: &Response) {
        for (name, value) in &r.headers {
            if !name.eq_ignore_ascii_case("Set-Cookie") {
                continue;
            }
            let first = value.split(';').next().unwrap_or("");
            let Some((k, v)) = first.split_once('=') else {
                continue;
            };
            if value.contains("Max-Age=0") || v.is_empty() {
                self.cookies.remove(k.trim());
            } else {
                self.cookies.insert(k.trim().to_string(), v.to_string());
            }
        }
    }
}

/// Read one response from `stream` (the server closes after it, or says
/// its length), under the guard timeout.
pub fn read_response(stream: &mut TcpStream) -> Response {
    stream.set_read_timeout(Some(GUARD)).expect("timeout");
    let mut buf = Vec::new();
    let mut chunk = [0u8; 16384];
    let head_end = loop {
        if let Some(i) = find(&buf, b"\r\n\r\n") {
            break i;
        }
        let n = stream.read(&mut chunk).expect("read head (timed out?)");
        assert!(n > 0, "connection closed before a response head");
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
    let mut lines = head.split("\r\n");
    let status_line = lines.next().expect("status line");
    let status: u16 = status_line
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("bad status line {status_line:?}"));
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_string(), v.trim().to_string()))
        .collect();
    let mut body = buf[head_end + 4..].to_vec();
    let length = headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case("Content-Length"))
        .and_then(|(_, v)| v.parse::<usize>().ok());
    match length {
        Some(len) => {
            while body.len() < len {
                let n = stream.read(&mut chunk).expect("read body");
                assert!(n > 0, "connection closed inside the body");
                body.extend_from_slice(&chunk[..n]);
            }
            body.truncate(len);
        }
        None => {
            stream.read_to_end(&mut body).expect("read to close");
        }
    }
    Response {
        status,
        headers,
        body,
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// `application/x-www-form-urlencoded`.
pub fn form(fields: &[(&str, &str)]) -> String {
    fields
        .iter()
        .map(|(k, v)| format!("{}={}", enc(k), enc(v)))
        .collect::<Vec<_>>()
        .join("&")
}

fn enc(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// A fresh empty directory under the system temp dir.
pub fn temp_dir(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("squall-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir
}

/// Wait until `path` contains `needle` (the writer thread is asynchronous
/// by design), under the guard timeout.
pub fn wait_file_contains(path: &Path, needle: &str) {
    let deadline = Instant::now() + GUARD;
    loop {
        if std::fs::read_to_string(path).is_ok_and(|s| s.contains(needle)) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{} never contained {needle:?}",
            path.display()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}
