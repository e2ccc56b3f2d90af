//! The `squall` binary lets go of clients that vanished without a FIN
//! (`--tcp-keepalive`, on by default): nothing on the wire says such a
//! client is gone, so without keep-alive probes its parked long-poll, or its
//! telnet session on `squall echo`, would be held until the next message,
//! or forever.
//!
//! The client here vanishes for real ([`common::vanish`]: its socket is
//! dropped in `TCP_REPAIR` mode, so no FIN and no RST leave), the way a
//! host that lost power does; its kernel then answers the server's first
//! probe with an RST. One second of silence before that probe, so the test
//! waits for the server's own counts to change, under the guard, not for a
//! clock.

mod chat_support;
mod common;

use std::io::{BufRead, BufReader, Write};

use chat_support::{read_response, Client, Server, GUARD};

#[test]
fn a_parked_long_poll_of_a_client_that_vanished_is_let_go() {
    let server = Server::start(&["--tcp-keepalive", "1"]);
    let ghost = Client::user(&server, "ghost");
    let mut stays = Client::user(&server, "stays");
    let vanishing = ghost.start_post("/a/message/updates", &[("room", "gone")]);
    let mut waiting = stays.start_post("/a/message/updates", &[("room", "gone")]);
    server.wait_metric("squall_chat_waiters", 2.0);
    common::vanish(vanishing);

    // No message is posted: only the probe's answer can end the ghost's
    // wait. The other waiter, whose client is there, stays.
    server.wait_metric("squall_chat_waiters", 1.0);
    let posted = stays.post(
        "/a/message/new",
        &[("room", "gone"), ("body", "still here")],
    );
    assert_eq!(posted.status, 200, "{}", posted.text());
    let got = read_response(&mut waiting);
    assert_eq!(got.json()["messages"][0]["body"], "still here");
    server.wait_metric("squall_chat_waiters", 0.0);
}

#[test]
fn the_echo_server_closes_the_session_of_a_client_that_vanished() {
    let server = Server::start_raw(&["echo", "--tcp-keepalive", "1"]);
    let before = server.open_fds();
    let session = common::client(server.addr);
    let mut reader = BufReader::new(session.try_clone().expect("clone"));
    (&session).write_all(b"are you there?\n").expect("write");
    let mut line = String::new();
    reader.read_line(&mut line).expect("echo");
    assert_eq!(line, "are you there?\n");
    assert_eq!(server.open_fds(), before + 1, "the session's socket");
    drop(reader);
    common::vanish(session);

    // The echo server counts nothing; its descriptor table shows the
    // session's socket go.
    let deadline = std::time::Instant::now() + GUARD;
    while server.open_fds() > before {
        assert!(
            std::time::Instant::now() < deadline,
            "the vanished session's socket is still open"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}
