//! TCPServer and client connects over 127.0.0.1: connect success and
//! failure, bind options, stop, and that connections that go away give
//! back every slab entry and timer they held.
mod common;

use std::cell::Cell;
use std::io::Write;
use std::net::SocketAddr;
use std::rc::Rc;
use std::time::Duration;

use common::*;
use squall::apps::echo;
use squall::ioloop::IOLoop;
use squall::iostream::{IOStream, StreamError};
use squall::tcpserver::{bind_socket, BindOptions, TCPServer, TcpKeepalive};

fn localhost() -> SocketAddr {
    "127.0.0.1:0".parse().expect("addr")
}

#[test]
fn connect_to_a_listening_port_succeeds_and_early_writes_are_sent() {
    let events: Log<String> = log();
    run_loop(|_| {
        let (_server, addr) = echo::listen(localhost(), 1024).expect("listen");
        let e = events.clone();
        let stream = IOStream::connect(addr, move |r| {
            e.borrow_mut().push(format!("connect: {r:?}"))
        })
        .expect("connect");
        // Written and read before the connection is up: served once it is.
        stream
            .write(b"hello over connect\n".to_vec())
            .expect("write");
        let (e, s) = (events.clone(), stream.clone());
        stream.read_until(b"\n", None, move |r| {
            e.borrow_mut().push(format!(
                "read: {:?}",
                r.map(|v| String::from_utf8_lossy(&v).into_owned())
            ));
            e.borrow_mut()
                .push(format!("peer: {:?}", s.peer_addr() == Some(addr)));
            stop();
        });
    });
    assert_eq!(
        events.take(),
        vec![
            "connect: Ok(())".to_string(),
            "read: Ok(\"hello over connect\\n\")".to_string(),
            "peer: true".to_string(),
        ]
    );
}

#[test]
fn connect_to_a_closed_port_fails_with_an_error_value() {
    // A port that was just bound and released: nothing listens there.
    let addr = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        l.local_addr().expect("addr")
    };
    let connect_result: Slot<std::io::ErrorKind> = slot();
    // (refused synchronously, why the stream closed)
    let close_error: Slot<(bool, Option<StreamError>)> = slot();
    run_loop(|_| {
        let c = connect_result.clone();
        let connecting = IOStream::connect(addr, move |r| {
            *c.borrow_mut() = Some(r.map_or_else(|e| kind_of(&e), |()| std::io::ErrorKind::Other));
        });
        match connecting {
            // Refused synchronously: also an error value, not a panic.
            Err(e) => {
                *connect_result.borrow_mut() = Some(e.kind());
                *close_error.borrow_mut() = Some((true, None));
                stop();
            }
            Ok(stream) => {
                let (c, s) = (close_error.clone(), stream.clone());
                stream.set_close_callback(move || {
                    *c.borrow_mut() = Some((false, s.error()));
                    stop();
                });
            }
        }
    });
    assert_eq!(
        connect_result.take(),
        Some(std::io::ErrorKind::ConnectionRefused)
    );
    let (sync, why) = close_error.take().expect("closed");
    // Either refused synchronously (no stream was made), or the stream
    // closed and says why.
    assert!(
        sync || matches!(
            why,
            Some(StreamError::Io(std::io::ErrorKind::ConnectionRefused, _))
        ),
        "{why:?}"
    );
}

fn kind_of(e: &StreamError) -> std::io::ErrorKind {
    match e {
        StreamError::Io(kind, _) => *kind,
        _ => std::io::ErrorKind::Other,
    }
}

/// Connect `n` clients to `addr` one after the other; each sends a line,
/// waits for its echo, and closes. Calls `done(echoes_ok)` at the end.
fn echo_and_close(addr: SocketAddr, i: usize, n: usize, ok: Rc<Cell<usize>>, done: Rc<dyn Fn()>) {
    if i == n {
        done();
        return;
    }
    let stream = IOStream::connect(addr, |_| {}).expect("connect");
    let line = format!("client {i}\n").into_bytes();
    stream.write(line.clone()).expect("write");
    let s = stream.clone();
    stream.read_until(b"\n", None, move |r| {
        if r.as_deref() == Ok(&line[..]) {
            ok.set(ok.get() + 1);
        }
        s.close();
        echo_and_close(addr, i + 1, n, ok, done);
    });
}

#[test]
fn handler_and_timer_counts_return_to_baseline_after_100_connections_close() {
    let report = slot();
    run_loop(|ioloop| {
        let (server, addr) = echo::listen(localhost(), 1024).expect("listen");
        let (handlers, timers) = (ioloop.handler_count(), ioloop.timer_count());
        let ok = Rc::new(Cell::new(0));
        let (o, r) = (ok.clone(), report.clone());
        let done: Rc<dyn Fn()> = Rc::new(move || {
            let (o, r, server) = (o.clone(), r.clone(), server.clone());
            // The server side notices each close on its next readable event.
            wait_until(
                move || IOLoop::current().handler_count() == handlers,
                move || {
                    let l = IOLoop::current();
                    *r.borrow_mut() = Some((
                        o.get(),
                        server.accepted(),
                        l.handler_count() - handlers,
                        l.timer_count() - timers,
                    ));
                    stop();
                },
            );
        });
        echo_and_close(addr, 0, 100, ok, done);
    });
    // (echoes ok, accepted, extra handlers, extra timers)
    assert_eq!(report.take(), Some((100, 100, 0, 0)));
}

#[test]
fn clients_that_reset_mid_line_release_their_server_side_streams() {
    const N: usize = 100;
    let report = slot();
    let keep = slot();
    run_loop(|ioloop| {
        let (server, addr) = echo::listen(localhost(), 1024).expect("listen");
        let baseline = ioloop.handler_count();
        let mut clients = Vec::new();
        for i in 0..N {
            let mut c = client(addr);
            // Half a line: the server has a read pending when the RST comes.
            c.write_all(format!("partial {i}").as_bytes())
                .expect("write");
            clients.push(c);
        }
        *keep.borrow_mut() = Some(clients);
        let (k, r, s) = (keep.clone(), report.clone(), server.clone());
        wait_until(
            move || s.accepted() == N as u64 && IOLoop::current().handler_count() == baseline + N,
            move || {
                // SO_LINGER 0: close sends RST instead of FIN.
                for c in k.borrow_mut().take().expect("clients") {
                    socket2::SockRef::from(&c)
                        .set_linger(Some(std::time::Duration::ZERO))
                        .expect("linger");
                }
                wait_until(
                    move || IOLoop::current().handler_count() == baseline,
                    move || {
                        *r.borrow_mut() = Some(server.accepted());
                        stop();
                    },
                );
            },
        );
    });
    assert_eq!(report.take(), Some(N as u64));
}

#[test]
fn stop_closes_the_listener_but_established_connections_go_on() {
    let events: Log<String> = log();
    let keep = slot();
    run_loop(|ioloop| {
        let (server, addr) = echo::listen(localhost(), 1024).expect("listen");
        let baseline = ioloop.handler_count();
        let stream = IOStream::connect(addr, |_| {}).expect("connect");
        *keep.borrow_mut() = Some(stream.clone());
        let (s, e) = (server.clone(), events.clone());
        wait_until(
            move || s.accepted() == 1,
            move || {
                server.stop();
                e.borrow_mut().push(format!(
                    "after stop: listeners {}, handlers {:+}",
                    server.local_addrs().len(),
                    IOLoop::current().handler_count() as i64 - baseline as i64
                ));
                e.borrow_mut().push(format!(
                    "new connect: {:?}",
                    std::net::TcpStream::connect(addr).map_err(|e| e.kind())
                ));
                stream.write(b"still echoing\n".to_vec()).expect("write");
                let ev = e.clone();
                stream.read_until(b"\n", None, move |r| {
                    ev.borrow_mut()
                        .push(format!("{:?}", r.map(String::from_utf8)));
                    stop();
                });
            },
        );
    });
    assert_eq!(
        events.take(),
        vec![
            // Listener gone (-1); the client stream and its server stream stay (+2).
            "after stop: listeners 0, handlers +1".to_string(),
            "new connect: Err(ConnectionRefused)".to_string(),
            "Ok(Ok(\"still echoing\\n\"))".to_string(),
        ]
    );
}

#[test]
fn reuse_port_lets_two_servers_share_a_port_and_plain_bind_does_not() {
    let results: Log<String> = log();
    run_loop(|_| {
        let opts = BindOptions {
            reuse_port: true,
            ..BindOptions::default()
        };
        let a = TCPServer::new(|_, _| {});
        let addr = a.bind(localhost(), &opts).expect("first bind");
        let b = TCPServer::new(|_, _| {});
        results
            .borrow_mut()
            .push(format!("reuse_port: {:?}", b.bind(addr, &opts).map(|_| ())));
        let c = TCPServer::new(|_, _| {});
        results.borrow_mut().push(format!(
            "plain: {:?}",
            c.bind(addr, &BindOptions::default())
                .map(|_| ())
                .map_err(|e| e.kind())
        ));
        a.stop();
        b.stop();
        stop();
    });
    assert_eq!(
        results.take(),
        vec![
            "reuse_port: Ok(())".to_string(),
            "plain: Err(AddrInUse)".to_string()
        ]
    );
}

#[test]
fn listen_host_binds_every_address_on_one_port() {
    let bound = slot();
    run_loop(|_| {
        let server = TCPServer::new(|_, _| {});
        let addrs = server
            .listen_host("localhost", 0, &BindOptions::default())
            .expect("listen_host");
        *bound.borrow_mut() = Some((addrs.clone(), server.local_addrs()));
        server.stop();
        stop();
    });
    let (addrs, local) = bound.take().expect("recorded");
    assert!(!addrs.is_empty());
    assert_eq!(addrs, local);
    let port = addrs[0].port();
    assert_ne!(port, 0);
    assert!(addrs.iter().all(|a| a.port() == port), "{addrs:?}");
}

#[test]
fn accepted_connections_inherit_the_listeners_keepalive() {
    use std::os::fd::{FromRawFd, IntoRawFd};
    let keepalive = TcpKeepalive {
        idle: Duration::from_secs(7),
        interval: Duration::from_secs(3),
        probes: 4,
    };
    let options = BindOptions {
        keepalive: Some(keepalive),
        ..BindOptions::default()
    };
    let listener = bind_socket(localhost(), &options).expect("bind");
    // SAFETY: the descriptor comes straight from the listener, which gives
    // it up.
    let listener = unsafe { std::net::TcpListener::from_raw_fd(listener.into_raw_fd()) };
    listener.set_nonblocking(false).expect("blocking");
    let _client = client(listener.local_addr().expect("addr"));
    let (accepted, _) = listener.accept().expect("accept");
    // What the server's accept loop gets, with no call of its own.
    let socket = socket2::SockRef::from(&accepted);
    assert!(socket.keepalive().expect("SO_KEEPALIVE"));
    assert_eq!(socket.keepalive_time().expect("idle"), keepalive.idle);
    assert_eq!(
        socket.keepalive_interval().expect("interval"),
        keepalive.interval
    );
    assert_eq!(socket.keepalive_retries().expect("probes"), 4);
    assert_eq!(keepalive.gives_up_after(), Duration::from_secs(19));
}

#[test]
fn keepalive_closes_the_connection_of_a_peer_that_vanished_without_a_fin() {
    let events: Log<String> = log();
    run_loop(|_| {
        let e = events.clone();
        let server = TCPServer::new(move |stream, _| {
            let (e, s) = (e.clone(), stream.clone());
            // Idle: no read pending, nothing to write. Only the probe's
            // answer can tell this stream that its peer is gone.
            stream.set_close_callback(move || {
                e.borrow_mut().push(format!("closed: {:?}", s.error()));
                stop();
            });
        });
        let options = BindOptions {
            keepalive: Some(TcpKeepalive::after(Duration::from_secs(1))),
            ..BindOptions::default()
        };
        let addr = server.bind(localhost(), &options).expect("bind");
        // The handshake completes from the backlog; the loop accepts later.
        vanish(client(addr));
    });
    let events = events.take();
    assert_eq!(events.len(), 1, "{events:?}");
    assert!(
        events[0].contains("Connection reset by peer"),
        "the probe's RST closes the stream: {events:?}"
    );
}
