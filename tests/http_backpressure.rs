//! One connection's pipelined requests against everyone else: turn-taking,
//! backpressure on a peer that does not read, and a peer that half-closes
//! right behind its requests. Raw bytes over real sockets.
//!
//! Each test pins an order of events, not a duration: which request the
//! server handled first, whether a connection was cut, whether an answer
//! came at all.
#[path = "http_common/mod.rs"]
mod common;

use std::io::Write;
use std::net::{Shutdown, TcpStream};
use std::sync::{Arc, Mutex};

use common::{get, RawClient, TestServer};
use squall::http::{HTTPResponder, HTTPServer, HTTPServerOptions, HTTPServerRequest};
use squall::httputil::HTTPHeaders;

/// Answer `request` with `body` (200, text/plain).
fn answer(mut responder: HTTPResponder, body: &[u8]) {
    let mut headers = HTTPHeaders::new();
    headers.add("Content-Type", "text/plain");
    responder.write_headers(200, &headers, body, true);
}

#[test]
fn a_pipelining_client_takes_turns_with_the_others() {
    const PIPELINED: usize = 200;
    // The order in which the server handled requests, by path.
    let log: Arc<Mutex<Vec<String>>> = Arc::default();
    // B's socket: A's first request sends B's request through it, so B's
    // bytes arrive while A's backlog is being served.
    let b_socket: Arc<Mutex<Option<TcpStream>>> = Arc::default();
    let (log_in, b_in) = (Arc::clone(&log), Arc::clone(&b_socket));
    let server = TestServer::start(move || {
        HTTPServer::new(
            HTTPServerOptions::default(),
            move |request: HTTPServerRequest, responder: HTTPResponder| {
                let mut log = log_in.lock().expect("log");
                log.push(request.path().to_string());
                if log.len() == 1 {
                    if let Some(mut b) = b_in.lock().expect("b").take() {
                        b.write_all(get("/b").as_bytes()).expect("B sends");
                    }
                }
                drop(log);
                answer(responder, b"ok");
            },
        )
    });
    let mut b = RawClient::connect(server.addr);
    // B is accepted and waiting before A sends anything.
    server.wait_open_connections(1);
    *b_socket.lock().expect("b") = Some(b.stream.try_clone().expect("clone B"));
    let mut a = RawClient::connect(server.addr);
    a.send(get("/a").repeat(PIPELINED));

    assert_eq!(b.read_response().status, 200);
    for _ in 0..PIPELINED {
        assert_eq!(a.read_response().text(), "ok");
    }
    let log = log.lock().expect("log");
    let b_at = log.iter().position(|p| p == "/b").expect("B was served");
    // Before the fix B waited for all 200 of A's requests (b_at == 200).
    assert!(
        b_at < PIPELINED,
        "B was served only after A's whole backlog (at {b_at})"
    );
}

#[test]
fn a_peer_that_does_not_read_stops_the_parsing_instead_of_growing_the_buffer() {
    // Each answer is 4 KiB; the write cap is 256 KiB, so without
    // backpressure the 65th unread answer closed the connection.
    const BODY: usize = 4096;
    let options = HTTPServerOptions {
        max_write_buffer_size: 256 * 1024,
        ..HTTPServerOptions::default()
    };
    let server = TestServer::start(move || {
        HTTPServer::new(options, |_request: HTTPServerRequest, responder| {
            answer(responder, &[b'x'; BODY]);
        })
    });
    let mut client = TcpStream::connect(server.addr).expect("connect");
    client.set_nonblocking(true).expect("nonblocking");
    // Send requests, reading nothing, until the kernel will take no more:
    // the server has stopped reading them.
    let request = get("/big");
    let mut sent = 0usize;
    let mut pending = request.as_bytes();
    while sent < 1_000_000 {
        match client.write(pending) {
            Ok(n) if n == pending.len() => {
                sent += 1;
                pending = request.as_bytes();
            }
            Ok(n) => pending = &pending[n..],
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
            Err(e) => panic!("send failed after {sent} requests: {e}"),
        }
    }
    assert!(sent < 1_000_000, "the server never stopped taking requests");
    // A request cut short by WouldBlock: finish it, so each one is whole.
    client.set_nonblocking(false).expect("blocking");
    if pending.len() < request.len() {
        // The rest goes once the server reads again (it will, as we read).
        let rest = pending.to_vec();
        let mut writer = client.try_clone().expect("clone");
        std::thread::spawn(move || writer.write_all(&rest));
        sent += 1;
    }
    // Every request accepted is answered, in full: nothing was cut.
    let mut reader = RawClient::from_stream(client);
    for i in 0..sent {
        let r = reader.read_response();
        assert_eq!(r.status, 200, "answer {i} of {sent}");
        assert_eq!(r.body.len(), BODY, "answer {i} of {sent}");
    }
    assert!(
        sent > 64,
        "the test must outrun the write cap ({sent} sent)"
    );
}

#[test]
fn a_request_followed_at_once_by_a_half_close_is_answered() {
    let server = TestServer::start(|| {
        HTTPServer::new(
            HTTPServerOptions::default(),
            |request: HTTPServerRequest, responder| {
                let body = request.path().as_bytes().to_vec();
                answer(responder, &body);
            },
        )
    });
    for requests in [1, 3] {
        let mut client = TcpStream::connect(server.addr).expect("connect");
        let mut batch = String::new();
        for i in 0..requests {
            batch.push_str(&get(&format!("/r{i}")));
        }
        // The requests and the FIN leave in one go: the server sees them
        // in one read, the FIN right behind the last request.
        client.write_all(batch.as_bytes()).expect("send");
        client.shutdown(Shutdown::Write).expect("half-close");
        let mut reader = RawClient::from_stream(client);
        for i in 0..requests {
            let r = reader.read_response();
            assert_eq!(r.status, 200);
            assert_eq!(r.text(), format!("/r{i}"));
        }
        // Then the server closes too.
        assert!(
            reader.closed_cleanly(),
            "unexpected bytes after the answers"
        );
    }
    server.wait_open_connections(0);
}

/// A request the application holds (a parked long-poll) reads nothing
/// more from its connection, and the stream stops taking bytes once a
/// 64 KiB chunk is buffered with nobody reading. A client that sent more
/// than that behind its request and then hung up left its FIN behind
/// unread bytes: the server never learned it had gone, and the descriptor
/// stayed open until the request was answered — never, for a long-poll
/// in a quiet room. Once the peer has closed, the stream reads on to the
/// EOF, and the connection closes.
#[test]
fn a_parked_request_whose_client_sent_more_and_left_is_let_go() {
    use std::cell::RefCell;
    use std::rc::Rc;
    let server = TestServer::start(|| {
        HTTPServer::new(
            HTTPServerOptions::default(),
            |_request: HTTPServerRequest, responder: HTTPResponder| {
                // Parked until the connection closes, as the chat's
                // long-poll waiters are (their close callback cancels
                // them); the connection counts as open until then.
                let parked = Rc::new(RefCell::new(None));
                let on_close = Rc::clone(&parked);
                responder.set_close_callback(move || drop(on_close.borrow_mut().take()));
                *parked.borrow_mut() = Some(responder);
            },
        )
    });
    // (Within the server's receive buffer: a client whose FIN is still
    // behind unsent data in its own kernel can only be found by keep-alive.)
    for extra in [70 * 1024, 100 * 1024] {
        let mut client = TcpStream::connect(server.addr).expect("connect");
        client.write_all(get("/park").as_bytes()).expect("request");
        server.wait_open_connections(1);
        // More than a chunk behind it (pipelined junk), then the FIN.
        client.write_all(&vec![b'x'; extra]).expect("junk");
        drop(client);
        server.wait_open_connections(0);
    }
}
