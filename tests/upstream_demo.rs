//! The tweet-rate demo over real sockets: the async and offload routes
//! leave the loop free while they wait; the blocking route freezes it.
//!
//! Proven by ordering, not by clocks. A scripted upstream holds its answer
//! until the test releases it and counts the answers it gave; `/ping` on the
//! main server reports that count. A ping answered while a rate request is
//! still waiting (count 0) shows the loop was free; a ping that could only
//! be answered after the upstream replied (count 1) shows it was blocked.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::sync::Arc;
use std::thread;
use std::time::Duration;

use squall::apps::config::Config;
use squall::apps::site;
use squall::apps::upstream::{
    fake_search, mount, BlockingPolicy, RateConfig, BLOCKING_OFF_MESSAGE, MAX_ANSWER_SIZE,
};
use squall::http::HTTPServerOptions;
use squall::ioloop::IOLoop;
use squall::web::{Application, Ctx, HandlerResult, RequestHandler, Settings};

/// Nothing in these tests may take longer than this.
const GUARD: Duration = Duration::from_secs(10);

/// A plain HTTP/1.1 GET with `Connection: close`: (status, body).
fn get(addr: SocketAddr, path: &str) -> std::io::Result<(u16, String)> {
    let mut s = TcpStream::connect(addr)?;
    s.set_read_timeout(Some(GUARD))?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n"
    )?;
    read_response(s)
}

fn read_response(mut s: TcpStream) -> std::io::Result<(u16, String)> {
    let mut raw = Vec::new();
    s.read_to_end(&mut raw)?;
    let text = String::from_utf8_lossy(&raw).into_owned();
    let status = text
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    Ok((status, body))
}

/// An upstream that takes `n` connections one after another: for each, it
/// reads the request, says so on `accepted`, and answers only when
/// released. `answers` counts the answers it started to send.
struct HeldUpstream {
    base: String,
    accepted: Receiver<()>,
    release: Sender<()>,
    answers: Arc<AtomicUsize>,
}

/// Read one request head from `sock` (up to its empty line), so that the
/// upstream answers after the whole request, as a server does.
fn read_request_head(sock: &TcpStream) {
    let mut reader = BufReader::new(sock.try_clone().expect("clone"));
    let mut line = String::new();
    while reader.read_line(&mut line).is_ok_and(|n| n > 0) && line != "\r\n" {
        line.clear();
    }
}

fn held_upstream(n: usize) -> HeldUpstream {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let base = format!("http://{}", listener.local_addr().expect("addr"));
    let (accepted_tx, accepted) = mpsc::channel();
    let (release, release_rx) = mpsc::channel::<()>();
    let answers = Arc::new(AtomicUsize::new(0));
    let count = Arc::clone(&answers);
    thread::spawn(move || {
        for _ in 0..n {
            let Ok((mut sock, _)) = listener.accept() else {
                return;
            };
            read_request_head(&sock);
            let _ = accepted_tx.send(());
            if release_rx.recv_timeout(GUARD).is_err() {
                return;
            }
            let body = fake_search("held").to_string();
            count.fetch_add(1, Ordering::SeqCst);
            let _ = write!(
                sock,
                "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
        }
    });
    HeldUpstream {
        base,
        accepted,
        release,
        answers,
    }
}

/// `/ping`: says how many answers the upstream had sent when it ran.
struct Ping(Arc<AtomicUsize>);

impl RequestHandler for Ping {
    fn get(&self, cx: &Ctx) -> HandlerResult {
        cx.write(format!("answers={}", self.0.load(Ordering::SeqCst)));
        Ok(())
    }
}

/// The demo mounted on its own loop and thread, pointed at `upstream`.
///
/// The blocking route's fetch may take the whole guard time: the held
/// upstream answers when the test says so, however loaded the machine.
fn start_app(upstream: &HeldUpstream) -> SocketAddr {
    let config = RateConfig {
        blocking: BlockingPolicy {
            slack: GUARD,
            ..BlockingPolicy::default()
        },
        ..RateConfig::new(upstream.base.clone(), 0)
    };
    start_demo(config, Arc::clone(&upstream.answers))
}

/// The demo with `config` on its own loop and thread; `/ping` reports
/// `answers`.
fn start_demo(config: RateConfig, answers: Arc<AtomicUsize>) -> SocketAddr {
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        let ioloop = IOLoop::current();
        let settings = Settings {
            cookie_secret: b"test secret".to_vec(),
            ..Settings::default()
        };
        let mut app = Application::new(settings).expect("app");
        app.route("/ping", Ping(answers));
        mount(&mut app, config);
        let (_server, addr) = app
            .listen(
                "127.0.0.1:0".parse().expect("addr"),
                HTTPServerOptions::default(),
            )
            .expect("listen");
        tx.send(addr).expect("send");
        ioloop.start();
    });
    rx.recv_timeout(GUARD).expect("app started")
}

/// An upstream that accepts up to `n` connections and never answers (nor
/// reads). Its sockets stay open until the returned sender drops.
fn silent_upstream(n: usize) -> (String, Sender<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let base = format!("http://{}", listener.local_addr().expect("addr"));
    let (done, done_rx) = mpsc::channel::<()>();
    thread::spawn(move || {
        let mut held = Vec::new();
        for _ in 0..n {
            let Ok((sock, _)) = listener.accept() else {
                return;
            };
            held.push(sock);
        }
        let _ = done_rx.recv_timeout(GUARD);
    });
    (base, done)
}

/// The whole server as the binary builds it from `config` (on a free port,
/// with a fixed cookie secret), on its own loop and thread.
fn start_site(config: Config) -> SocketAddr {
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        let config = Config {
            port: 0,
            cookie_secret: Some("test".into()),
            ..config
        };
        let s = site::build(&config).expect("site");
        tx.send(s.addrs[0]).expect("send");
        IOLoop::current().start();
    });
    rx.recv_timeout(GUARD).expect("site up")
}

/// A rate request on a thread; its result arrives on the returned channel.
fn rate_request(addr: SocketAddr, route: &str) -> Receiver<std::io::Result<(u16, String)>> {
    let (tx, rx) = mpsc::channel();
    let path = format!("/rate/{route}?q=held");
    thread::spawn(move || {
        let _ = tx.send(get(addr, &path));
    });
    rx
}

fn assert_loop_stays_free(route: &str) {
    let upstream = held_upstream(1);
    let addr = start_app(&upstream);
    let rate = rate_request(addr, route);
    upstream
        .accepted
        .recv_timeout(GUARD)
        .expect("the rate handler reached the upstream");
    // The rate request now waits on the upstream. Another request is
    // answered meanwhile (a blocked loop would hit the read timeout):
    let (status, body) = get(addr, "/ping").expect("ping answered while the upstream is held");
    assert_eq!((status, body.as_str()), (200, "answers=0"));
    assert!(
        matches!(rate.try_recv(), Err(mpsc::TryRecvError::Empty)),
        "the rate request cannot be done before the upstream answered"
    );
    upstream.release.send(()).expect("release");
    let (status, body) = rate
        .recv_timeout(GUARD)
        .expect("rate finished")
        .expect("rate response");
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("tweets per second"), "{body}");
    assert!(body.contains(&format!("fetched: {route}")), "{body}");
}

#[test]
fn async_route_does_not_block_the_loop() {
    assert_loop_stays_free("async");
}

#[test]
fn offload_route_does_not_block_the_loop() {
    assert_loop_stays_free("offload");
}

/// The offload route holds a worker thread per request, and the pool is
/// shared with password hashing: past `max_offloads` in flight it answers
/// 503 with `Retry-After` at once instead of queuing, and a place comes
/// back when a fetch ends.
#[test]
fn offloads_past_the_cap_are_refused_not_queued() {
    let upstream = held_upstream(2);
    let addr = start_demo(
        RateConfig {
            max_offloads: 1,
            ..RateConfig::new(upstream.base.clone(), 0)
        },
        Arc::clone(&upstream.answers),
    );
    let first = rate_request(addr, "offload");
    upstream
        .accepted
        .recv_timeout(GUARD)
        .expect("the first offload reached the upstream");
    // The one place is taken: the next is refused without waiting.
    let mut s = TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(GUARD)).expect("timeout");
    write!(
        s,
        "GET /rate/offload?q=more HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n"
    )
    .expect("send");
    let mut raw = String::new();
    s.read_to_string(&mut raw).expect("read");
    assert!(raw.starts_with("HTTP/1.1 503 "), "{raw}");
    assert!(raw.contains("\r\nRetry-After: 1\r\n"), "{raw}");
    assert!(raw.contains("waiting for a worker thread"), "{raw}");
    // The first is answered; its place is free again.
    upstream.release.send(()).expect("release");
    let (status, _) = first.recv_timeout(GUARD).expect("done").expect("response");
    assert_eq!(status, 200);
    let again = rate_request(addr, "offload");
    upstream
        .accepted
        .recv_timeout(GUARD)
        .expect("reached the upstream");
    upstream.release.send(()).expect("release");
    let (status, body) = again.recv_timeout(GUARD).expect("done").expect("response");
    assert_eq!(status, 200, "{body}");
}

#[test]
fn blocking_route_blocks_the_loop() {
    let upstream = held_upstream(1);
    let addr = start_app(&upstream);
    let rate = rate_request(addr, "blocking");
    upstream
        .accepted
        .recv_timeout(GUARD)
        .expect("the rate handler reached the upstream");
    // The main loop is now inside HTTPClient::fetch. Send a ping.
    let (sent_tx, sent_rx) = mpsc::channel();
    let (ping_tx, ping_rx) = mpsc::channel();
    thread::spawn(move || {
        let result = TcpStream::connect(addr).and_then(|mut s| {
            s.set_read_timeout(Some(GUARD))?;
            s.write_all(b"GET /ping HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n")?;
            let _ = sent_tx.send(());
            read_response(s)
        });
        let _ = ping_tx.send(result);
    });
    sent_rx.recv_timeout(GUARD).expect("ping sent");
    // A free loop would answer the ping now; give it the chance to show.
    match ping_rx.recv_timeout(Duration::from_millis(300)) {
        Err(RecvTimeoutError::Timeout) => {}
        Ok(r) => panic!("ping answered while the blocking fetch was waiting: {r:?}"),
        Err(e) => panic!("ping thread: {e}"),
    }
    upstream.release.send(()).expect("release");
    let (status, body) = rate
        .recv_timeout(GUARD)
        .expect("rate finished")
        .expect("rate response");
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("fetched: blocking"), "{body}");
    // The ping ran only after the upstream had answered the blocked fetch.
    let (status, body) = ping_rx
        .recv_timeout(GUARD)
        .expect("ping finished")
        .expect("ping response");
    assert_eq!((status, body.as_str()), (200, "answers=1"));
}

/// Two blocking requests handled in one loop iteration (they arrive while
/// the loop is blocked by a third): the first one's response leaves before
/// the second one blocks the loop again. squall flushes writes at the end
/// of an iteration; the blocking client runs that flush before it blocks.
#[test]
fn blocking_route_sends_each_response_before_blocking_again() {
    let upstream = held_upstream(3);
    let addr = start_app(&upstream);
    let accepted = |what: &str| {
        upstream
            .accepted
            .recv_timeout(GUARD)
            .unwrap_or_else(|_| panic!("{what} reached the upstream"));
    };
    let x = rate_request(addr, "blocking");
    accepted("X");
    // The loop is blocked in X's fetch. A and B connect and send their
    // requests now, so the loop will accept both in one batch.
    let (sent_tx, sent_rx) = mpsc::channel();
    let (done_tx, done_rx) = mpsc::channel();
    for _ in 0..2 {
        let (sent_tx, done_tx) = (sent_tx.clone(), done_tx.clone());
        thread::spawn(move || {
            let result = TcpStream::connect(addr).and_then(|mut s| {
                s.set_read_timeout(Some(GUARD))?;
                s.write_all(
                    b"GET /rate/blocking?q=ab HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n",
                )?;
                let _ = sent_tx.send(());
                read_response(s)
            });
            let _ = done_tx.send(result);
        });
    }
    for _ in 0..2 {
        sent_rx.recv_timeout(GUARD).expect("A/B sent");
    }
    upstream.release.send(()).expect("release X");
    assert_eq!(
        x.recv_timeout(GUARD).expect("X").expect("X response").0,
        200
    );
    accepted("the first of A and B");
    upstream.release.send(()).expect("release the first");
    accepted("the second of A and B");
    // The loop is blocked again, in the second fetch. The first response
    // must be out already, not held back until the second is done:
    let first = done_rx
        .recv_timeout(GUARD)
        .expect("a finished response was held back while the loop blocked again");
    assert_eq!(first.expect("first response").0, 200);
    assert_eq!(upstream.answers.load(Ordering::SeqCst), 2);
    upstream.release.send(()).expect("release the second");
    let second = done_rx.recv_timeout(GUARD).expect("second");
    assert_eq!(second.expect("second response").0, 200);
}

/// The whole server as the binary builds it: its own upstream thread,
/// the page, the three routes, argument checks.
#[test]
fn site_serves_the_demo() {
    let addr = start_site(Config {
        upstream_delay_ms: 5,
        ..Config::default()
    });
    // The index (the chat lobby, behind a login) links the demo.
    let index = include_str!("../templates/index.html");
    assert!(index.contains("href=\"/rate\""), "index links the demo");
    let (status, page) = get(addr, "/rate").expect("page");
    assert_eq!(status, 200);
    assert!(page.contains("Async vs blocking"), "{page}");
    assert!(page.contains("12.59"), "the book's table is on the page");
    for route in ["blocking", "async", "offload"] {
        let (status, body) = get(addr, &format!("/rate/{route}?q=%3Cb%3E")).expect("rate");
        assert_eq!(status, 200, "{route}: {body}");
        assert!(body.contains("&lt;b&gt;"), "query escaped: {body}");
        assert!(body.contains("tweets per second"), "{body}");
    }
    for bad in [
        "/rate/async?delay_ms=x",
        "/rate/blocking?delay_ms=10001",
        "/rate/offload?delay_ms=-1",
        "/upstream?delay_ms=99999999999999999999",
    ] {
        assert_eq!(get(addr, bad).expect("answer").0, 400, "{bad}");
    }
    let (status, json) = get(addr, "/upstream?delay_ms=1&q=abc").expect("upstream");
    assert_eq!(status, 200);
    let v: serde_json::Value = serde_json::from_str(&json).expect("json");
    assert_eq!(v["query"], "abc");
    assert_eq!(v["results"].as_array().map(Vec::len), Some(100));
}

/// An upstream that never answers costs each route a 504 Gateway Timeout
/// (RFC 9110 §15.6.5) saying so, after the delay plus the slack — not a
/// hang, and not the 502 of a broken answer.
#[test]
fn an_upstream_that_never_answers_is_a_504() {
    let (base, _hold) = silent_upstream(3);
    let config = RateConfig {
        slack: Duration::from_millis(200),
        ..RateConfig::new(base, 0)
    };
    let addr = start_demo(config, Arc::default());
    for route in ["async", "offload", "blocking"] {
        let (status, body) =
            get(addr, &format!("/rate/{route}?q=x")).unwrap_or_else(|e| panic!("{route}: {e}"));
        assert_eq!(status, 504, "{route}: {body}");
        assert!(body.contains("Timeout during request"), "{route}: {body}");
    }
}

/// An upstream answering more than `MAX_ANSWER_SIZE` is refused with a 502
/// that names the limit: the demo's clients do not read (and hold) up to
/// the client's default 100 MiB per waiting page request.
#[test]
fn an_oversized_upstream_answer_is_refused() {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let base = format!("http://{}", listener.local_addr().expect("addr"));
    thread::spawn(move || {
        for _ in 0..3 {
            let Ok((mut sock, _)) = listener.accept() else {
                return;
            };
            // Read the request first, so that closing sends a FIN, not a
            // reset that could overtake the answer.
            read_request_head(&sock);
            let size = MAX_ANSWER_SIZE + 1;
            let _ = write!(
                sock,
                "HTTP/1.1 200 OK\r\nContent-Length: {size}\r\nConnection: close\r\n\r\n"
            );
            let _ = sock.write_all(&vec![b' '; size]);
        }
    });
    let addr = start_demo(RateConfig::new(base, 0), Arc::default());
    for route in ["async", "offload", "blocking"] {
        let (status, body) =
            get(addr, &format!("/rate/{route}?q=x")).unwrap_or_else(|e| panic!("{route}: {e}"));
        assert_eq!(status, 502, "{route}: {body}");
        assert!(
            body.contains(&format!("larger than the limit of {MAX_ANSWER_SIZE} bytes")),
            "{route}: {body}"
        );
    }
}

/// The operator's switch: with `--no-rate-blocking` the route answers 403
/// saying why and how to turn it back on, and never reaches the upstream;
/// the page and the other routes are unchanged.
#[test]
fn blocking_route_can_be_turned_off() {
    let addr = start_site(Config {
        upstream_delay_ms: 0,
        rate_blocking: false,
        ..Config::default()
    });
    let (status, body) = get(addr, "/rate/blocking?q=x").expect("answer");
    assert_eq!(status, 403, "{body}");
    assert!(body.contains("--no-rate-blocking"), "{body}");
    assert!(BLOCKING_OFF_MESSAGE.contains("start squall with --rate-blocking"));
    let (status, body) = get(addr, "/rate/async?q=x").expect("answer");
    assert_eq!(status, 200, "{body}");
    assert_eq!(get(addr, "/rate").expect("page").0, 200);
}

/// `--rate-blocking-max-delay-ms` caps the delay, so the freeze, of
/// `/rate/blocking` only: over it is a 400 naming the option, before any
/// fetch; the default delay is lowered to the cap.
#[test]
fn blocking_delay_is_capped() {
    let upstream = held_upstream(1);
    let config = RateConfig {
        blocking: BlockingPolicy {
            max_delay_ms: 50,
            ..BlockingPolicy::default()
        },
        ..RateConfig::new(upstream.base.clone(), 5000)
    };
    let addr = start_demo(config, Arc::clone(&upstream.answers));
    let (status, body) = get(addr, "/rate/blocking?q=x&delay_ms=51").expect("answer");
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("--rate-blocking-max-delay-ms"), "{body}");
    // No delay_ms: the default (5000) is lowered to the cap, not refused.
    let rate = rate_request(addr, "blocking");
    upstream.accepted.recv_timeout(GUARD).expect("fetched");
    upstream.release.send(()).expect("release");
    let (status, body) = rate.recv_timeout(GUARD).expect("done").expect("answer");
    assert_eq!(status, 200, "{body}");
}

/// A silent upstream freezes the loop through `/rate/blocking` for the
/// delay plus the blocking slack (1 s), not plus the 10 s the non-blocking
/// routes allow: the page is a 504 well within the test's guard.
#[test]
fn a_silent_upstream_freezes_the_blocking_route_only_briefly() {
    let (base, _hold) = silent_upstream(1);
    let addr = start_demo(RateConfig::new(base, 0), Arc::default());
    let (status, body) = get(addr, "/rate/blocking?q=x").expect("answered within the guard");
    assert_eq!(status, 504, "{body}");
}
