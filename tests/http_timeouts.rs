//! Timeouts of the connection state machine: a slowloris client (a byte
//! every 200 ms, never finishing its head) is answered 408 and closed after
//! the header timeout while other clients are served; a stalled body gets
//! 408 after the body timeout; an idle keep-alive connection is closed
//! silently; a response the application takes its time over is not a
//! timeout at all.
//!
//! The timeouts are configured short. Assertions are about order and
//! outcome (408 then close, the others served), plus the one timing fact a
//! timer guarantees: it never fires early.
#[path = "http_common/mod.rs"]
mod common;

use std::sync::mpsc;
use std::time::{Duration, Instant};

use common::plain::{self, HELLO};
use common::{get, one_request, RawClient};
use squall::http::HTTPServerOptions;

const HEADER_TIMEOUT: Duration = Duration::from_millis(1000);
const PACE: Duration = Duration::from_millis(200);

#[test]
fn slowloris_gets_408_after_the_header_timeout_while_others_are_served() {
    let server = plain::start(HTTPServerOptions {
        header_timeout: HEADER_TIMEOUT,
        ..HTTPServerOptions::default()
    });
    let addr = server.addr;
    let (started_tx, started_rx) = mpsc::channel();
    let slow = std::thread::spawn(move || {
        let mut client = RawClient::connect(addr);
        // A head that never ends, sent a byte at a time: each byte would
        // reset a naive "time since last byte" timer.
        let trickle = b"GET /hello HTTP/1.1\r\nHost: t\r\nX-Slow: "
            .iter()
            .chain(b"a".iter().cycle());
        let start = Instant::now();
        let mut sent = 0;
        for &byte in trickle.take(100) {
            if !client.send_lossy([byte]) {
                break;
            }
            sent += 1;
            if sent == 3 {
                let _ = started_tx.send(());
            }
            // The pacing of the attack; stop as soon as the server speaks.
            if client.wait_for_data(PACE) {
                break;
            }
        }
        let answered_after = start.elapsed();
        let response = client.read_response();
        let closed = client.closed_cleanly();
        (sent, answered_after, response, closed)
    });
    started_rx
        .recv_timeout(common::GUARD)
        .expect("slowloris started");
    // Meanwhile: fresh connections and a keep-alive one are served.
    let mut keep_alive = server.raw();
    let mut served = 0;
    while !slow.is_finished() && served < 10_000 {
        assert_eq!(one_request(addr, get("/hello")).text(), HELLO);
        assert_eq!(keep_alive.request(get("/hello")).text(), HELLO);
        served += 1;
    }
    let (sent, answered_after, response, closed) = slow.join().expect("slowloris thread");
    assert!(
        served > 0,
        "no request was served while the slowloris waited"
    );
    assert_eq!(response.status, 408, "{}", response.text());
    assert!(closed, "slowloris connection not closed after 408");
    assert!(
        answered_after >= HEADER_TIMEOUT,
        "408 came before the header timeout: {answered_after:?}"
    );
    assert!(sent > 1, "the trickle was cut short ({sent} bytes)");
    // The keep-alive client, which kept sending whole requests, is still up.
    assert_eq!(keep_alive.request(get("/hello")).text(), HELLO);
}

#[test]
fn stalled_body_gets_408_after_the_body_timeout() {
    let body_timeout = Duration::from_millis(300);
    let server = plain::start(HTTPServerOptions {
        body_timeout,
        ..HTTPServerOptions::default()
    });
    let mut client = server.raw();
    let start = Instant::now();
    client.send("POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 10\r\n\r\nhalf!");
    let r = client.read_response();
    assert_eq!(r.status, 408);
    assert!(start.elapsed() >= body_timeout);
    assert!(client.closed_cleanly());
    server.wait_open_connections(0);
}

#[test]
fn idle_keep_alive_connection_is_closed_silently() {
    let idle = Duration::from_millis(600);
    let server = plain::start(HTTPServerOptions {
        header_timeout: Duration::from_millis(200),
        idle_connection_timeout: idle,
        ..HTTPServerOptions::default()
    });
    let mut client = server.raw();
    // The server's idle clock starts when its poll returned with the
    // request, which is after this instant: the close can come no earlier
    // than `idle` from here. (The instant the client *read* the answer is
    // not a bound: a loaded machine may leave this thread unscheduled for
    // a while after the server's clock started.)
    let before_request = Instant::now();
    assert_eq!(client.request(get("/hello")).text(), HELLO);
    // No 408 for a client that merely kept its connection: just a close.
    assert!(client.closed_cleanly(), "idle close must send nothing");
    assert!(
        before_request.elapsed() >= idle,
        "closed before the idle timeout"
    );
    // A connection that never sends anything goes the same way.
    let mut silent = server.raw();
    assert!(silent.closed_cleanly());
    server.wait_open_connections(0);
}

#[test]
fn a_slow_response_is_not_a_timeout() {
    let server = plain::start(HTTPServerOptions {
        header_timeout: Duration::from_millis(100),
        idle_connection_timeout: Duration::from_millis(200),
        body_timeout: Duration::from_millis(100),
        ..HTTPServerOptions::default()
    });
    let mut client = server.raw();
    // The application answers after 3× every timeout: the Responding state
    // has no timer (a long-poll may wait as long as it likes).
    let r = client.request(get("/later?ms=600"));
    assert_eq!((r.status, r.text().as_str()), (200, "later"));
    assert_eq!(client.request(get("/hello")).text(), HELLO);
}

/// `Duration::MAX` (or an operator's `--header-timeout
/// 18446744073709551615`) means "no timeout": `Instant + Duration::MAX`
/// would panic in the loop's callbacks, so every deadline saturates
/// (`ioloop::deadline_after`). A split head, a body and keep-alive all
/// work as with any other timeout.
#[test]
fn timeouts_of_duration_max_mean_never() {
    let server = plain::start(HTTPServerOptions {
        header_timeout: Duration::MAX,
        body_timeout: Duration::MAX,
        idle_connection_timeout: Duration::MAX,
        ..HTTPServerOptions::default()
    });
    let mut client = server.raw();
    // Half a head: the header timer is armed while the rest is awaited.
    client.send("GET /hello HTTP/1.1\r\nHo");
    client.send("st: t\r\n\r\n");
    let r = client.read_response();
    assert_eq!((r.status, r.text().as_str()), (200, HELLO));
    // A body arriving in two pieces arms the body timer.
    client.send("POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 4\r\n\r\nab");
    client.send("cd");
    let r = client.read_response();
    assert_eq!((r.status, r.text().as_str()), (200, "abcd"));
    assert_eq!(client.request(get("/hello")).text(), HELLO);
    assert_eq!(server.open_connections(), 1);
}
