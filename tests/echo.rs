//! The echo server (src/apps/echo.rs) under real clients: 1000 at once, and
//! a client whose line is too long.
mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Barrier};

use common::*;
use squall::apps::echo;
use squall::ioloop::IOLoop;

fn localhost() -> SocketAddr {
    "127.0.0.1:0".parse().expect("addr")
}

/// Read from `s` until `n` bytes came (or EOF / error).
fn read_exactly(s: &mut TcpStream, n: usize) -> Vec<u8> {
    let mut got = vec![0u8; n];
    let mut have = 0;
    while have < n {
        match s.read(&mut got[have..]) {
            Ok(0) | Err(_) => break,
            Ok(k) => have += k,
        }
    }
    got.truncate(have);
    got
}

/// Read one line (through `\n`), byte by byte so nothing past it is eaten.
fn read_line(s: &mut TcpStream) -> Vec<u8> {
    let mut line = Vec::new();
    let mut b = [0u8; 1];
    while let Ok(1) = s.read(&mut b) {
        line.push(b[0]);
        if b[0] == b'\n' {
            break;
        }
    }
    line
}

/// What client `i` sends: several lines whose lengths and contents differ
/// per client, so a crossed wire or a lost chunk shows.
fn payload(i: usize) -> Vec<u8> {
    let mut out = Vec::new();
    for j in 0..5 {
        let pad_len = (i * 31 + j * 17) % 300;
        let pad: String = (0..pad_len)
            .map(|k| (b'a' + ((i + j + k) % 26) as u8) as char)
            .collect();
        out.extend_from_slice(format!("client {i} line {j} {pad}\n").as_bytes());
    }
    out
}

#[test]
fn a_thousand_concurrent_echo_clients_each_get_exactly_their_own_bytes() {
    const CLIENTS: usize = 1000;
    let (tx, rx) = mpsc::channel::<(usize, bool)>();
    let observed = slot();
    let threads = slot();
    run_loop(|ioloop| {
        let (server, addr) = echo::listen(localhost(), echo::DEFAULT_MAX_LINE).expect("listen");
        let baseline = ioloop.handler_count();
        // All connect before any sends; all stay connected until the loop
        // has counted them (the loop thread is the last party).
        let connected = Arc::new(Barrier::new(CLIENTS));
        let hold = Arc::new(Barrier::new(CLIENTS + 1));
        let finished = Arc::new(AtomicUsize::new(0));
        let mut handles = Vec::with_capacity(CLIENTS);
        for i in 0..CLIENTS {
            let (connected, hold, finished, tx) = (
                connected.clone(),
                hold.clone(),
                finished.clone(),
                tx.clone(),
            );
            let h = std::thread::Builder::new()
                .stack_size(128 * 1024)
                .spawn(move || {
                    let mut s = client(addr);
                    connected.wait();
                    let data = payload(i);
                    // Split at an odd place so lines straddle writes.
                    let cut = (i * 7) % data.len();
                    s.write_all(&data[..cut]).expect("write");
                    s.write_all(&data[cut..]).expect("write");
                    let back = read_exactly(&mut s, data.len());
                    tx.send((i, back == data)).expect("report");
                    finished.fetch_add(1, Ordering::SeqCst);
                    hold.wait();
                })
                .expect("spawn client thread");
            handles.push(h);
        }
        *threads.borrow_mut() = Some(handles);
        let (o, f) = (observed.clone(), finished.clone());
        wait_until(
            move || f.load(Ordering::SeqCst) == CLIENTS,
            move || {
                // Every client is connected right now: 1000 server streams.
                let during = IOLoop::current().handler_count() - baseline;
                // Let them go (the clients are waiting only for us).
                hold.wait();
                wait_until(
                    move || IOLoop::current().handler_count() == baseline,
                    move || {
                        *o.borrow_mut() = Some((during, server.accepted()));
                        stop();
                    },
                );
            },
        );
    });
    for h in threads.take().expect("threads") {
        h.join().expect("client thread");
    }
    drop(tx);
    let mut ok = vec![false; CLIENTS];
    for (i, good) in rx.iter() {
        ok[i] = good;
    }
    let bad: Vec<usize> = (0..CLIENTS).filter(|&i| !ok[i]).collect();
    assert!(bad.is_empty(), "clients with wrong echoes: {bad:?}");
    // (server streams open at once, connections accepted)
    assert_eq!(observed.take(), Some((CLIENTS, CLIENTS as u64)));
}

#[test]
fn an_over_long_line_closes_only_that_client() {
    const MAX_LINE: usize = 64;
    let worker = slot();
    run_loop(|ioloop| {
        let (_server, addr) = echo::listen(localhost(), MAX_LINE).expect("listen");
        let handle = ioloop.handle();
        *worker.borrow_mut() = Some(std::thread::spawn(move || {
            let mut good = client(addr);
            let mut bad = client(addr);
            good.write_all(b"hello\n").expect("write");
            let first = read_line(&mut good);
            // One write, no newline, well past the limit.
            bad.write_all(&[b'x'; 200]).expect("write");
            let mut told = Vec::new();
            let bad_end = bad.read_to_end(&mut told).map_err(|e| e.kind());
            good.write_all(b"still here\n").expect("write");
            let second = read_line(&mut good);
            handle.add_callback(stop);
            (first, told, bad_end, second)
        }));
    });
    let (first, told, bad_end, second) = worker
        .take()
        .expect("worker")
        .join()
        .expect("client thread");
    assert_eq!(first, b"hello\n");
    assert_eq!(
        String::from_utf8_lossy(&told),
        format!("error: line longer than {MAX_LINE} bytes; closing\n")
    );
    // read_to_end returned: the server closed that connection.
    assert!(bad_end.is_ok(), "{bad_end:?}");
    assert_eq!(second, b"still here\n");
}

#[test]
fn a_line_of_exactly_max_line_bytes_is_echoed() {
    const MAX_LINE: usize = 64;
    let worker = slot();
    run_loop(|ioloop| {
        let (_server, addr) = echo::listen(localhost(), MAX_LINE).expect("listen");
        let handle = ioloop.handle();
        *worker.borrow_mut() = Some(std::thread::spawn(move || {
            let mut c = client(addr);
            let mut line = vec![b'q'; MAX_LINE - 1];
            line.push(b'\n');
            c.write_all(&line).expect("write");
            let back = read_line(&mut c);
            handle.add_callback(stop);
            back == line
        }));
    });
    let echoed = worker
        .take()
        .expect("worker")
        .join()
        .expect("client thread");
    assert!(echoed);
}

#[test]
fn lines_sent_with_a_half_close_are_all_echoed_before_the_close() {
    // `printf 'one\ntwo\n' | nc -N`: the lines and the FIN arrive together.
    // The stream must not close before the lines are echoed.
    let worker = slot();
    run_loop(|ioloop| {
        let (_server, addr) = echo::listen(localhost(), echo::DEFAULT_MAX_LINE).expect("listen");
        let handle = ioloop.handle();
        *worker.borrow_mut() = Some(std::thread::spawn(move || {
            let mut c = client(addr);
            c.write_all(b"one\ntwo\n").expect("write");
            c.shutdown(std::net::Shutdown::Write).expect("half-close");
            let mut back = Vec::new();
            let end = c.read_to_end(&mut back).map_err(|e| e.kind());
            handle.add_callback(stop);
            (back, end)
        }));
    });
    let (back, end) = worker
        .take()
        .expect("worker")
        .join()
        .expect("client thread");
    assert_eq!(String::from_utf8_lossy(&back), "one\ntwo\n");
    // read_to_end returned Ok: the server closed its side after echoing.
    assert!(end.is_ok(), "{end:?}");
}
