//! IOStream: bytes that arrive together with the peer's FIN can still be
//! read after the stream closed (Tornado serves reads from the buffer
//! before its closed check). An HTTP client depends on it: a server that
//! writes a whole response and closes at once must not lose the body.

use std::cell::RefCell;
use std::io::Write;
use std::net::TcpListener;
use std::rc::Rc;
use std::thread;
use std::time::Duration;

use squall::ioloop::IOLoop;
use squall::iostream::{IOStream, StreamError};

type Log = Rc<RefCell<Vec<Result<Vec<u8>, StreamError>>>>;

/// Run `ioloop` until a callback stops it, or 10 s pass (a guard, so a
/// test that waits for an event that never comes fails instead of hanging).
fn run_until_stopped(ioloop: &IOLoop) {
    let guard = ioloop.call_later(Duration::from_secs(10), || IOLoop::current().stop());
    ioloop.start();
    ioloop.remove_timeout(guard);
}

#[test]
fn reads_after_eof_drain_the_buffer_first() {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr");
    let server = thread::spawn(move || {
        let (mut sock, _) = listener.accept().expect("accept");
        sock.write_all(b"head\r\n\r\nbody-bytes-and-the-rest")
            .expect("write");
        // Dropping the socket sends FIN right behind the data.
    });
    let ioloop = IOLoop::current();
    let log: Log = Rc::default();
    let stream = IOStream::connect(addr, |_| {}).expect("connect");
    server.join().expect("server thread");
    let (s2, log2) = (stream.clone(), Rc::clone(&log));
    // Wait for the close first, so every later read runs on a closed stream.
    stream.set_close_callback(move || {
        let (s3, log3) = (s2.clone(), Rc::clone(&log2));
        s2.read_until(b"\r\n\r\n", None, move |r| {
            log3.borrow_mut().push(r);
            let (s4, log4) = (s3.clone(), Rc::clone(&log3));
            s3.read_bytes(10, false, move |r| {
                log4.borrow_mut().push(r);
                let log5 = Rc::clone(&log4);
                s4.read_until_close(move |r| {
                    log5.borrow_mut().push(r);
                    IOLoop::current().stop();
                });
            });
        });
    });
    run_until_stopped(&ioloop);
    assert_eq!(
        *log.borrow(),
        vec![
            Ok(b"head\r\n\r\n".to_vec()),
            Ok(b"body-bytes".to_vec()),
            Ok(b"-and-the-rest".to_vec()),
        ]
    );
    drop(stream);
}

/// A peer's FIN seen by an event in which the stream stopped reading early
/// (a whole chunk buffered and the pending read met: backpressure) is not
/// forgotten. The next read resumes on the socket, takes a short read, and
/// must go on to the EOF behind it: the hang-up was signalled once, on
/// that earlier edge, and no other event comes. An HTTP client reading a
/// body the server cut short waited here for its request timeout.
#[test]
fn eof_seen_before_a_backpressure_stop_reaches_the_next_read() {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let mut peer =
        std::net::TcpStream::connect(listener.local_addr().expect("addr")).expect("connect");
    let (sock, _) = listener.accept().expect("accept");
    // More than one read chunk (64 KiB) and less than two, then the FIN,
    // all queued in the kernel before the stream reads at all: its first
    // event carries data and hang-up together.
    let mut data = b"line\n".to_vec();
    data.resize(64 * 1024 + 10_000, b'x');
    peer.set_write_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    peer.write_all(&data).expect("fits in the socket buffers");
    peer.shutdown(std::net::Shutdown::Write).expect("FIN");
    sock.set_nonblocking(true).expect("nonblocking");
    let ioloop = IOLoop::current();
    let stream = IOStream::new(mio::net::TcpStream::from_std(sock)).expect("stream");
    let log: Log = Rc::default();
    let (s2, log2) = (stream.clone(), Rc::clone(&log));
    stream.read_until(b"\n", None, move |r| {
        log2.borrow_mut().push(r);
        let log3 = Rc::clone(&log2);
        // Asks for more than the peer sent: only the EOF can end it.
        s2.read_bytes(1_000_000, false, move |r| {
            log3.borrow_mut().push(r);
            IOLoop::current().stop();
        });
    });
    run_until_stopped(&ioloop);
    assert_eq!(
        *log.borrow(),
        vec![Ok(b"line\n".to_vec()), Err(StreamError::Closed)],
        "the second read must fail with Closed, not wait for the guard"
    );
    drop(peer);
}

/// Nobody reads and the buffer is at `max_buffer_size` when the peer's FIN
/// comes behind more bytes: edge-triggered, no event will come again, and
/// the EOF sits behind bytes the stream will not take. It closes (the
/// close callback runs) instead of holding the socket until someone reads,
/// which for an HTTP connection answering a parked request may be never;
/// what it buffered stays readable.
#[test]
fn a_full_buffer_nobody_reads_closes_when_the_peer_has_gone() {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr");
    let ioloop = IOLoop::current();
    let stream = IOStream::connect(addr, |_| {}).expect("connect");
    stream.set_max_buffer_size(4096);
    let (mut peer, _) = listener.accept().expect("accept");
    // 20 KB (within the kernel's buffers, so the FIN gets through), then FIN.
    peer.write_all(&[b'x'; 20 * 1024]).expect("write");
    drop(peer);
    let closed = Rc::new(RefCell::new(false));
    let c = Rc::clone(&closed);
    stream.set_close_callback(move || {
        *c.borrow_mut() = true;
        IOLoop::current().stop();
    });
    run_until_stopped(&ioloop);
    assert!(
        *closed.borrow(),
        "the stream never learned its peer had gone"
    );
    assert_eq!(stream.buffered_len(), 4096, "what it buffered is kept");
    let got: Log = Rc::default();
    let g = Rc::clone(&got);
    stream.read_bytes(4096, false, move |r| {
        g.borrow_mut().push(r);
        IOLoop::current().stop();
    });
    run_until_stopped(&ioloop);
    assert_eq!(*got.borrow(), vec![Ok(vec![b'x'; 4096])]);
}
