//! Shared harness of the HTTP integration tests.
//!
//! * [`TestServer`]: an [`HTTPServer`] on its own thread with its own
//!   [`IOLoop`], listening on `127.0.0.1:0`; dropping it stops the loop and
//!   joins the thread. [`TestServer::on_loop`] runs a closure on the loop's
//!   thread (to read counters, which are not `Send`).
//! * [`RawClient`]: a blocking `std::net::TcpStream` that sends exact bytes
//!   and reads responses back, the head parsed by `httparse` (a parser we did
//!   not write). For the edge cases no polite client would produce.
//! * [`peer_available`]: the rule for external peers (curl, python `h11`):
//!   missing under `CI` is a failure, elsewhere a printed skip.
//!
//! Every blocking read has a guard timeout ([`GUARD`]) so no test hangs.
#![allow(dead_code)]

use std::cell::RefCell;
use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::Command;
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::Duration;

use squall::http::HTTPServer;
use squall::ioloop::{IOLoop, IOLoopHandle};

/// Longest any single blocking step of a test may take before it fails.
pub const GUARD: Duration = Duration::from_secs(15);

thread_local! {
    /// The server of this loop thread (each test server has its own thread).
    static SERVER: RefCell<Option<HTTPServer>> = const { RefCell::new(None) };
}

/// A server running on its own IOLoop thread.
pub struct TestServer {
    /// Where it listens.
    pub addr: SocketAddr,
    /// Reaches the loop from the test thread.
    handle: IOLoopHandle,
    /// The loop thread, joined on drop.
    thread: Option<JoinHandle<()>>,
    /// Temporary directories removed once the server has stopped.
    temp_dirs: Vec<std::path::PathBuf>,
}

impl TestServer {
    /// Start a server: `setup` runs on the new loop thread (servers and
    /// applications hold `Rc`s, so they are built where they live) and
    /// returns the server, which is then bound to `127.0.0.1:0`.
    pub fn start(setup: impl FnOnce() -> HTTPServer + Send + 'static) -> TestServer {
        let (tx, rx) = mpsc::channel();
        let thread = std::thread::spawn(move || {
            let ioloop = IOLoop::new().expect("create an IOLoop");
            ioloop.make_current();
            let server = setup();
            let addr = server
                .listen("127.0.0.1:0".parse().expect("address"))
                .expect("listen on port 0");
            SERVER.with(|s| *s.borrow_mut() = Some(server));
            tx.send((addr, ioloop.handle()))
                .expect("report the address");
            ioloop.start();
            SERVER.with(|s| s.borrow_mut().take());
        });
        let (addr, handle) = rx.recv_timeout(GUARD).expect("server started");
        TestServer {
            addr,
            handle,
            thread: Some(thread),
            temp_dirs: Vec::new(),
        }
    }

    /// Remove `dir` when the server is dropped (after its loop stopped).
    pub fn remove_on_drop(mut self, dir: std::path::PathBuf) -> TestServer {
        self.temp_dirs.push(dir);
        self
    }

    /// Run `f` on the loop thread with the server; wait for its result.
    pub fn on_loop<T: Send + 'static>(
        &self,
        f: impl FnOnce(&HTTPServer) -> T + Send + 'static,
    ) -> T {
        let (tx, rx) = mpsc::channel();
        self.handle.add_callback(move || {
            let result = SERVER.with(|s| s.borrow().as_ref().map(f));
            let _ = tx.send(result.expect("server present"));
        });
        rx.recv_timeout(GUARD).expect("the loop answered")
    }

    /// Connections the server has open right now.
    pub fn open_connections(&self) -> usize {
        self.on_loop(|s| s.stats().open_connections.get())
    }

    /// Wait until the server has `n` connections open (they close
    /// asynchronously after the client's FIN, on a later loop iteration).
    /// Each check is one round trip through the loop, so this waits for
    /// loop iterations, not for wall-clock time.
    pub fn wait_open_connections(&self, n: usize) {
        let deadline = std::time::Instant::now() + GUARD;
        loop {
            let open = self.open_connections();
            if open == n {
                return;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "open connections stayed at {open}, expected {n}"
            );
            std::thread::yield_now();
        }
    }

    /// `http://127.0.0.1:port` + `path`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    /// A raw client connected to this server.
    pub fn raw(&self) -> RawClient {
        RawClient::connect(self.addr)
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.handle.add_callback(|| IOLoop::current().stop());
        if let Some(t) = self.thread.take() {
            let result = t.join();
            if result.is_err() && !std::thread::panicking() {
                panic!("the server thread panicked");
            }
        }
        for dir in &self.temp_dirs {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

/// A response as read by [`RawClient`].
#[derive(Debug, Clone)]
pub struct Response {
    /// `HTTP/1.0` or `HTTP/1.1`.
    pub version: u8,
    /// Status code.
    pub status: u16,
    /// Headers in order, as sent.
    pub headers: Vec<(String, String)>,
    /// The body, de-chunked.
    pub body: Vec<u8>,
    /// The body came chunked.
    pub chunked: bool,
}

impl Response {
    /// First value of header `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// Every value of header `name`.
    pub fn headers_named(&self, name: &str) -> Vec<&str> {
        self.headers
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
            .collect()
    }

    /// The body as text (lossy).
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// A blocking client that sends exact bytes and parses what comes back.
pub struct RawClient {
    /// The socket.
    pub stream: TcpStream,
    /// Bytes received and not yet consumed.
    buf: Vec<u8>,
    /// The server closed its side.
    eof: bool,
}

impl RawClient {
    /// Connect with [`GUARD`] read/write timeouts.
    pub fn connect(addr: SocketAddr) -> RawClient {
        let stream = TcpStream::connect(addr).expect("connect");
        stream.set_read_timeout(Some(GUARD)).expect("timeout");
        stream.set_write_timeout(Some(GUARD)).expect("timeout");
        stream.set_nodelay(true).expect("nodelay");
        RawClient {
            stream,
            buf: Vec::new(),
            eof: false,
        }
    }

    /// Wrap a socket the test opened itself (same [`GUARD`] timeouts).
    pub fn from_stream(stream: TcpStream) -> RawClient {
        stream.set_read_timeout(Some(GUARD)).expect("timeout");
        stream.set_write_timeout(Some(GUARD)).expect("timeout");
        RawClient {
            stream,
            buf: Vec::new(),
            eof: false,
        }
    }

    /// Send `bytes` (all of them, in one `write_all`).
    pub fn send(&mut self, bytes: impl AsRef<[u8]>) {
        self.stream.write_all(bytes.as_ref()).expect("send");
    }

    /// Send, ignoring errors (for a peer that may already have closed).
    pub fn send_lossy(&mut self, bytes: impl AsRef<[u8]>) -> bool {
        self.stream.write_all(bytes.as_ref()).is_ok()
    }

    /// Read more from the socket into the buffer; false at EOF.
    fn fill(&mut self) -> bool {
        if self.eof {
            return false;
        }
        let mut chunk = [0u8; 16 * 1024];
        match self.stream.read(&mut chunk) {
            Ok(0) => {
                self.eof = true;
                false
            }
            Ok(n) => {
                self.buf.extend_from_slice(&chunk[..n]);
                true
            }
            // A reset after the server closed counts as EOF for tests.
            Err(e) if e.kind() == ErrorKind::ConnectionReset => {
                self.eof = true;
                false
            }
            Err(e) => panic!("read failed (guard timeout?): {e}"),
        }
    }

    /// Wait up to `timeout` for the server to send something (or close);
    /// true if it did. The bytes stay buffered for the next read.
    pub fn wait_for_data(&mut self, timeout: Duration) -> bool {
        if !self.buf.is_empty() || self.eof {
            return true;
        }
        self.stream
            .set_read_timeout(Some(timeout))
            .expect("timeout");
        let mut chunk = [0u8; 16 * 1024];
        let got = match self.stream.read(&mut chunk) {
            Ok(0) => {
                self.eof = true;
                true
            }
            Ok(n) => {
                self.buf.extend_from_slice(&chunk[..n]);
                true
            }
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => false,
            Err(e) if e.kind() == ErrorKind::ConnectionReset => {
                self.eof = true;
                true
            }
            Err(e) => panic!("read failed: {e}"),
        };
        self.stream.set_read_timeout(Some(GUARD)).expect("timeout");
        got
    }

    /// Read exactly `n` bytes.
    pub fn read_exact_bytes(&mut self, n: usize) -> Vec<u8> {
        while self.buf.len() < n {
            assert!(self.fill(), "EOF after {} of {n} bytes", self.buf.len());
        }
        self.buf.drain(..n).collect()
    }

    /// Read through the next `delim` (inclusive).
    pub fn read_until(&mut self, delim: &[u8]) -> Vec<u8> {
        loop {
            if let Some(i) = find(&self.buf, delim) {
                return self.buf.drain(..i + delim.len()).collect();
            }
            assert!(
                self.fill(),
                "EOF before {:?}; got {:?}",
                String::from_utf8_lossy(delim),
                String::from_utf8_lossy(&self.buf)
            );
        }
    }

    /// Read a response head (status line + headers), body untouched.
    pub fn read_head(&mut self) -> Response {
        let head = self.read_until(b"\r\n\r\n");
        let mut headers = [httparse::EMPTY_HEADER; 64];
        let mut parsed = httparse::Response::new(&mut headers);
        match parsed.parse(&head) {
            Ok(httparse::Status::Complete(_)) => {}
            other => panic!(
                "unparseable response head {other:?}: {:?}",
                String::from_utf8_lossy(&head)
            ),
        }
        Response {
            version: parsed.version.expect("version"),
            status: parsed.code.expect("status"),
            headers: parsed
                .headers
                .iter()
                .map(|h| {
                    (
                        h.name.to_string(),
                        String::from_utf8(h.value.to_vec()).expect("UTF-8 header value"),
                    )
                })
                .collect(),
            body: Vec::new(),
            chunked: false,
        }
    }

    /// Read one complete response. `head_request`: the request was HEAD,
    /// so no body follows whatever the headers say.
    pub fn read_response_to(&mut self, head_request: bool) -> Response {
        let mut r = self.read_head();
        let no_body = head_request || r.status < 200 || r.status == 204 || r.status == 304;
        if no_body {
            return r;
        }
        let te = r.header("Transfer-Encoding").map(str::to_ascii_lowercase);
        if te.as_deref() == Some("chunked") {
            r.chunked = true;
            loop {
                let line = self.read_until(b"\r\n");
                let text = std::str::from_utf8(&line[..line.len() - 2]).expect("chunk line");
                let size = usize::from_str_radix(text.split(';').next().unwrap_or(""), 16)
                    .expect("hex chunk size");
                if size == 0 {
                    // No trailers from our server: the final CRLF.
                    assert_eq!(self.read_exact_bytes(2), b"\r\n");
                    break;
                }
                let data = self.read_exact_bytes(size + 2);
                assert!(data.ends_with(b"\r\n"), "chunk data not followed by CRLF");
                r.body.extend_from_slice(&data[..size]);
            }
        } else if let Some(cl) = r.header("Content-Length") {
            let n: usize = cl.parse().expect("numeric Content-Length");
            r.body = self.read_exact_bytes(n);
        } else {
            r.body = self.read_to_end();
        }
        r
    }

    /// Read one complete response to a non-HEAD request.
    pub fn read_response(&mut self) -> Response {
        self.read_response_to(false)
    }

    /// Everything until the server closes.
    pub fn read_to_end(&mut self) -> Vec<u8> {
        while self.fill() {}
        std::mem::take(&mut self.buf)
    }

    /// True if the server has closed the connection and sent nothing more
    /// (waits for EOF up to the guard).
    pub fn closed_cleanly(&mut self) -> bool {
        self.read_to_end().is_empty()
    }

    /// Send `request` and read its response.
    pub fn request(&mut self, request: impl AsRef<[u8]>) -> Response {
        let head = request.as_ref().starts_with(b"HEAD ");
        self.send(request);
        self.read_response_to(head)
    }
}

/// Position of `needle` in `hay`.
pub fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// A `GET path` with `Host` on HTTP/1.1.
pub fn get(path: &str) -> String {
    format!("GET {path} HTTP/1.1\r\nHost: test\r\n\r\n")
}

/// Send one request on a fresh connection; return the response.
pub fn one_request(addr: SocketAddr, request: impl AsRef<[u8]>) -> Response {
    RawClient::connect(addr).request(request)
}

/// Is the external peer there? `check` is a command that succeeds if so.
/// Missing under `CI`: the test fails (CI installs its peers); elsewhere
/// it prints `SKIPPED: <why>` and the caller returns.
pub fn peer_available(what: &str, check: &mut Command) -> bool {
    let ok = check
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !ok {
        assert!(
            std::env::var_os("CI").is_none(),
            "{what} is required under CI (see .ci/run)"
        );
        println!("SKIPPED: {what} is not installed");
    }
    ok
}

/// `curl` is installed.
pub fn have_curl() -> bool {
    peer_available("curl", Command::new("curl").arg("--version"))
}

/// Python 3 with module `module` is installed.
pub fn have_python_module(module: &str) -> bool {
    peer_available(
        &format!("python3 with the {module} module"),
        Command::new("python3").args(["-c", &format!("import {module}")]),
    )
}

/// Run `curl` with `args` plus `--max-time`; return (exit ok, stdout, stderr).
pub fn curl(args: &[&str]) -> (bool, String, String) {
    let out = Command::new("curl")
        .args(["--silent", "--show-error", "--max-time", "15"])
        .args(args)
        .output()
        .expect("run curl");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// A fresh empty directory under the system temp dir for one test.
pub fn temp_dir(tag: &str) -> std::path::PathBuf {
    use std::sync::atomic::{AtomicUsize, Ordering};
    static COUNTER: AtomicUsize = AtomicUsize::new(0);
    let dir = std::env::temp_dir().join(format!(
        "squall-test-{}-{tag}-{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("create temp dir");
    dir
}

/// A ureq agent that returns 4xx/5xx as responses (not errors) and never
/// follows redirects, so tests see exactly what the server sent.
pub fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .max_redirects(0)
        .timeout_global(Some(GUARD))
        .build()
        .into()
}

pub mod plain;
pub mod webapp;
