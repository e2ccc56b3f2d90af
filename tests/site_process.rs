//! The `squall` binary as a process: graceful shutdown on SIGTERM/SIGINT,
//! and how many threads it runs.
//!
//! Signals reach the loop through a self-pipe the loop watches (no signal
//! thread), the `/rate` demo's upstream thread starts on first use, and the
//! worker pool starts a thread only when a job finds none idle and lets it
//! go after ten idle seconds, so a server that has not needed blocking work
//! lately is a single thread.
//!
//! Proven by ordering, not by clocks: a grace period of ten minutes means a
//! process that exits within the test's guard did so because of the second
//! signal.

mod chat_support;

use std::io::Write;
use std::net::TcpStream;

use chat_support::{read_response, Server, GUARD};

/// `GET path` on an open keep-alive connection: (status, body).
fn get_kept(stream: &mut TcpStream, path: &str) -> (u16, String) {
    write!(stream, "GET {path} HTTP/1.1\r\nHost: test\r\n\r\n").expect("write");
    let r = read_response(stream);
    (r.status, r.text())
}

#[test]
fn a_first_signal_drains_and_a_second_stops_at_once() {
    let mut server = Server::start(&["--shutdown-grace", "600"]);
    let mut kept = TcpStream::connect(server.addr).expect("connect");
    assert_eq!(get_kept(&mut kept, "/healthz"), (200, "ok\n".to_string()));

    server.signal(libc::SIGTERM);
    // The signal is handled on the loop's next iteration: ask until the
    // answer changes (each ask is a full round trip through that loop).
    let deadline = std::time::Instant::now() + GUARD;
    loop {
        let (status, body) = get_kept(&mut kept, "/healthz");
        if status == 503 {
            assert_eq!(body, "draining\n");
            break;
        }
        assert_eq!(status, 200);
        assert!(std::time::Instant::now() < deadline, "never drained");
    }
    // Draining: the listener is closed, connections already open are served.
    assert!(
        TcpStream::connect(server.addr).is_err(),
        "a new connection was accepted while draining"
    );
    assert_eq!(get_kept(&mut kept, "/hello").0, 200);
    assert_eq!(server.threads(), 1, "signals need no thread of their own");

    server.signal(libc::SIGINT);
    let status = server
        .wait_exit()
        .expect("the second signal did not stop the server");
    assert!(status.success(), "exit status {status}");
}

#[test]
fn with_no_grace_the_first_signal_stops_the_server() {
    let mut server = Server::start(&["--shutdown-grace", "0"]);
    assert_eq!(server.client().get("/healthz").status, 200);
    server.signal(libc::SIGINT);
    let status = server.wait_exit().expect("still running after SIGINT");
    assert!(status.success(), "exit status {status}");
}

#[test]
fn the_server_is_one_thread_until_a_rate_route_needs_its_upstream() {
    let server = Server::start(&["--upstream-delay-ms", "0"]);
    let mut client = server.client();
    // Chat, cart, static files, the rate page itself: none needs a thread.
    for path in [
        "/hello",
        "/rate",
        "/upstream?q=x&delay_ms=0",
        "/static/chat.js",
    ] {
        assert_eq!(client.get(path).status, 200, "{path}");
    }
    assert_eq!(server.threads(), 1);

    // The blocking route fetches from the upstream on the loop's own
    // thread: had the upstream not been started first, the fetch would wait
    // for its whole timeout and fail.
    let r = client.get("/rate/blocking?q=tornado&delay_ms=0");
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(r.text().contains("tweets per second"), "{}", r.text());
    assert_eq!(server.threads(), 2, "the upstream runs on its own thread");
    let r = client.get("/rate/async?q=tornado&delay_ms=0");
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(r.text().contains("tweets per second"), "{}", r.text());
    assert_eq!(server.threads(), 2, "one upstream thread, started once");
}

#[test]
fn a_password_hash_starts_one_worker_thread_which_exits_when_idle() {
    // Sixteen workers allowed: one login at a time needs only one.
    let server = Server::start(&["--worker-threads", "16"]);
    assert_eq!(server.threads(), 1);
    let mut alice = server.client();
    alice.register("alice", "correct horse");
    assert_eq!(server.metric("squall_ioloop_worker_threads"), 1.0);
    assert_eq!(server.threads(), 2, "the loop and one worker");
    // The worker waits ten seconds for another job, then exits; the gauge
    // drops when it has decided to, the thread itself a moment later.
    server.wait_metric("squall_ioloop_worker_threads", 0.0);
    let deadline = std::time::Instant::now() + GUARD;
    while server.threads() != 1 {
        assert!(
            std::time::Instant::now() < deadline,
            "worker thread still there"
        );
        std::thread::yield_now();
    }
    // And the pool starts again on demand.
    let mut bob = server.client();
    bob.register("bob", "battery staple");
    assert_eq!(server.threads(), 2);
}
