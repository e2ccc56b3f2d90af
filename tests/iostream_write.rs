//! IOStream writes and close semantics over real sockets: a big write to a
//! slow reader, write callbacks, close callbacks firing exactly once, and
//! what closing does to queued bytes.
mod common;

use std::cell::{Cell, RefCell};
use std::io::Read;
use std::rc::Rc;

use common::*;
use squall::ioloop::IOLoop;
use squall::iostream::StreamError;

/// The byte at offset `i` of the test payloads (period 251, a prime, so a
/// shifted or repeated chunk is caught).
fn pattern(i: usize) -> u8 {
    (i % 251) as u8
}

/// A reader thread: reads `size` bytes in 1 KiB steps (slowly, checking
/// each byte), or until EOF if `size` is `None`. Returns (bytes, intact).
///
/// The client's receive buffer is made small (64 KiB) first, so the kernel
/// cannot take a big write at once (loopback autotuning could otherwise
/// take 4 MiB): bytes stay queued on the stream's side and it must wait
/// for writable edges and resume.
fn slow_reader(
    mut client: std::net::TcpStream,
    size: Option<usize>,
) -> std::thread::JoinHandle<(usize, bool)> {
    socket2::SockRef::from(&client)
        .set_recv_buffer_size(64 * 1024)
        .expect("SO_RCVBUF");
    std::thread::spawn(move || {
        let mut buf = [0u8; 1024];
        let (mut total, mut intact) = (0usize, true);
        while size.is_none_or(|size| total < size) {
            match client.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => {
                    intact &= buf[..n]
                        .iter()
                        .enumerate()
                        .all(|(k, &b)| b == pattern(total + k));
                    total += n;
                }
                Err(e) => panic!("reader: {e}"),
            }
        }
        (total, intact)
    })
}

#[test]
fn a_16_mib_write_to_a_slow_reader_completes_and_its_callback_fires_once() {
    const SIZE: usize = 16 << 20;
    let fired = Rc::new(Cell::new(0usize));
    let unsent_right_after_write = slot();
    let unsent_when_callback_ran = slot();
    let reader = slot();
    let keep = slot();
    run_loop(|_| {
        let (stream, client) = stream_pair();
        *keep.borrow_mut() = Some(stream.clone());
        *reader.borrow_mut() = Some(slow_reader(client, Some(SIZE)));
        let data: Vec<u8> = (0..SIZE).map(pattern).collect();
        let (f, u, s) = (
            fired.clone(),
            unsent_when_callback_ran.clone(),
            stream.clone(),
        );
        stream
            .write_with_callback(data, move || {
                f.set(f.get() + 1);
                *u.borrow_mut() = Some(s.write_buffer_len());
                // Give a second firing every chance to show up.
                after_iterations(3, stop);
            })
            .expect("write");
        *unsent_right_after_write.borrow_mut() = Some(stream.write_buffer_len());
    });
    let unsent = unsent_right_after_write.take().expect("recorded");
    assert!(
        unsent > 0 && unsent < SIZE,
        "the first flush should send some but not all: {unsent} unsent"
    );
    assert_eq!(fired.get(), 1, "write callback must fire exactly once");
    assert_eq!(unsent_when_callback_ran.take(), Some(0));
    // Every byte was handed to the kernel; the reader gets them all, intact.
    let reader = reader.take().expect("reader");
    assert_eq!(reader.join().expect("reader thread"), (SIZE, true));
}

#[test]
fn write_callbacks_run_in_order_after_their_bytes_left() {
    let events: Log<String> = log();
    let keep = slot();
    run_loop(|_| {
        let (stream, client) = stream_pair();
        let client = Rc::new(RefCell::new(client));
        *keep.borrow_mut() = Some((stream.clone(), Rc::clone(&client)));
        for (i, chunk) in [&b"alpha "[..], b"beta ", b"gamma\n"].iter().enumerate() {
            let (e, s) = (events.clone(), stream.clone());
            stream
                .write_with_callback(chunk.to_vec(), move || {
                    e.borrow_mut()
                        .push(format!("cb{i} unsent={}", s.write_buffer_len()));
                })
                .expect("write");
        }
        // Deferred: the small writes wait for the end of the iteration.
        events
            .borrow_mut()
            .push(format!("queued={}", stream.write_buffer_len()));
        let (c, e) = (client.clone(), events.clone());
        let got = Rc::new(RefCell::new(Vec::new()));
        let g = got.clone();
        wait_until(
            move || {
                drain_nonblocking(&mut c.borrow_mut(), &mut g.borrow_mut());
                g.borrow().ends_with(b"\n")
            },
            move || {
                e.borrow_mut()
                    .push(String::from_utf8_lossy(&got.borrow()).into_owned());
                stop();
            },
        );
    });
    assert_eq!(
        events.take(),
        vec![
            "queued=17".to_string(),
            "cb0 unsent=0".to_string(),
            "cb1 unsent=0".to_string(),
            "cb2 unsent=0".to_string(),
            "alpha beta gamma\n".to_string(),
        ]
    );
}

#[test]
fn close_callback_fires_exactly_once_on_peer_close() {
    let count = Rc::new(Cell::new(0));
    let keep = slot();
    run_loop(|_| {
        let (stream, client) = stream_pair();
        *keep.borrow_mut() = Some(stream.clone());
        let (c, s) = (count.clone(), stream.clone());
        stream.set_close_callback(move || {
            c.set(c.get() + 1);
            // Closing again, locally, must not fire it a second time.
            s.close();
            s.close_when_flushed();
            after_iterations(3, stop);
        });
        drop(client);
    });
    assert_eq!(count.get(), 1);
    let stream = keep.take().expect("stream");
    assert!(stream.closed());
    assert_eq!(stream.error(), Some(StreamError::Closed));
}

#[test]
fn close_callback_fires_exactly_once_on_local_close_and_the_peer_sees_eof() {
    let count = Rc::new(Cell::new(0));
    let fired_inside_close = slot();
    let peer_read = slot();
    let keep = slot();
    run_loop(|_| {
        let (stream, client) = stream_pair();
        let client = Rc::new(RefCell::new(client));
        *keep.borrow_mut() = Some(stream.clone());
        let c = count.clone();
        stream.set_close_callback(move || c.set(c.get() + 1));
        stream.close();
        stream.close();
        // The close callback is deferred, never run inside close().
        *fired_inside_close.borrow_mut() = Some(count.get());
        let p = peer_read.clone();
        after_iterations(3, move || {
            let mut buf = [0u8; 16];
            *p.borrow_mut() = Some(client.borrow_mut().read(&mut buf).map_err(|e| e.kind()));
            stop();
        });
    });
    assert_eq!(fired_inside_close.take(), Some(0));
    assert_eq!(count.get(), 1);
    assert_eq!(peer_read.take(), Some(Ok(0)), "peer must see EOF");
}

#[test]
fn set_close_callback_on_a_closed_stream_runs_it_on_the_next_iteration() {
    let events: Log<&'static str> = log();
    run_loop(|_| {
        let (stream, _client) = stream_pair();
        stream.close();
        let e = events.clone();
        stream.set_close_callback(move || {
            e.borrow_mut().push("close callback");
            stop();
        });
        events.borrow_mut().push("set_close_callback returned");
    });
    assert_eq!(
        events.take(),
        vec!["set_close_callback returned", "close callback"]
    );
}

#[test]
fn closing_drops_queued_bytes_and_their_callbacks_and_later_writes_fail() {
    let fired = Rc::new(Cell::new(false));
    let write_after_close = slot();
    run_loop(|_| {
        let (stream, _client) = stream_pair();
        let f = fired.clone();
        stream
            .write_with_callback(b"never sent".to_vec(), move || f.set(true))
            .expect("write");
        stream.close();
        *write_after_close.borrow_mut() = Some(stream.write(b"late".to_vec()));
        after_iterations(3, stop);
    });
    assert!(
        !fired.get(),
        "a write callback must not run if its bytes never left"
    );
    assert_eq!(write_after_close.take(), Some(Err(StreamError::Closed)));
}

#[test]
fn close_when_flushed_sends_everything_then_closes() {
    const SIZE: usize = 8 << 20;
    let close_count = Rc::new(Cell::new(0));
    let closed_right_away = slot();
    let handlers = slot();
    let reader = slot();
    run_loop(|ioloop| {
        let baseline = ioloop.handler_count();
        let (stream, client) = stream_pair();
        // Reads until EOF, so it only returns once the stream closed.
        *reader.borrow_mut() = Some(slow_reader(client, None));
        let (c, h) = (close_count.clone(), handlers.clone());
        stream.set_close_callback(move || {
            c.set(c.get() + 1);
            // The kept-alive stream released its slab entry on close.
            *h.borrow_mut() = Some((baseline, IOLoop::current().handler_count()));
            after_iterations(3, stop);
        });
        stream
            .write((0..SIZE).map(pattern).collect::<Vec<u8>>())
            .expect("write");
        stream.close_when_flushed();
        // Not closed yet: bytes are still queued.
        *closed_right_away.borrow_mut() = Some(stream.closed());
        // The last handle is dropped here; the queued bytes still leave.
        drop(stream);
    });
    assert_eq!(closed_right_away.take(), Some(false));
    assert_eq!(close_count.get(), 1);
    let (baseline, at_close) = handlers.take().expect("recorded");
    assert_eq!(at_close, baseline);
    let reader = reader.take().expect("reader");
    assert_eq!(reader.join().expect("reader thread"), (SIZE, true));
}

#[test]
fn dropping_the_last_handle_closes_the_socket_and_frees_its_handler() {
    let counts = slot();
    let peer_read = slot();
    run_loop(|ioloop| {
        let baseline = ioloop.handler_count();
        let (stream, client) = stream_pair();
        let with_stream = ioloop.handler_count();
        drop(stream);
        *counts.borrow_mut() = Some((baseline, with_stream, ioloop.handler_count()));
        let mut buf = [0u8; 4];
        let mut client = client;
        *peer_read.borrow_mut() = Some(client.read(&mut buf).map_err(|e| e.kind()));
        stop();
    });
    let (baseline, with_stream, after) = counts.take().expect("recorded");
    assert_eq!(with_stream, baseline + 1);
    assert_eq!(after, baseline);
    assert_eq!(peer_read.take(), Some(Ok(0)));
}

#[test]
fn shutdown_write_sends_fin_only_after_the_queued_bytes() {
    // Larger than the kernel's send buffer can ever grow (tcp_wmem's max is
    // 4 MiB by default) plus the reader's 64 KiB: bytes must stay queued in
    // the stream when shutdown_write is called.
    const SIZE: usize = 16 << 20;
    let reader = slot();
    let keep = slot();
    run_loop(|_| {
        let (stream, client) = stream_pair();
        *keep.borrow_mut() = Some(stream.clone());
        // A small receive buffer keeps bytes queued on our side after the
        // first flush (loopback autotuning could otherwise take 4 MiB).
        // Reads until EOF: it must see every byte first, then the FIN.
        *reader.borrow_mut() = Some(slow_reader(client, None));
        let data: Vec<u8> = (0..SIZE).map(pattern).collect();
        stream.write(data).expect("write");
        stream.shutdown_write();
        // More than the kernel takes at once is still queued here.
        assert!(
            stream.write_buffer_len() > 0,
            "the test needs bytes still queued"
        );
        let s = stream.clone();
        wait_until(move || s.write_buffer_len() == 0, stop);
    });
    let handle = reader.borrow_mut().take().expect("reader started");
    let (total, intact) = handle.join().expect("reader thread");
    assert_eq!(total, SIZE, "every byte arrives before the FIN");
    assert!(intact);
}

#[test]
fn write_now_sends_at_once_and_queues_only_what_the_kernel_refuses() {
    const SIZE: usize = 16 << 20;
    let unsent_after_small = slot();
    let unsent_after_big = slot();
    let reader = slot();
    let keep = slot();
    run_loop(|_| {
        let (stream, client) = stream_pair();
        *keep.borrow_mut() = Some(stream.clone());
        *reader.borrow_mut() = Some(slow_reader(client, Some(SIZE)));
        let data: Vec<u8> = (0..SIZE).map(pattern).collect();
        // A small write queued first must still leave first.
        stream.write(data[..10].to_vec()).expect("write");
        stream.write_now(&data[10..100]).expect("write_now");
        *unsent_after_small.borrow_mut() = Some(stream.write_buffer_len());
        // A big one: the kernel takes part, the rest waits for writable.
        stream.write_now(&data[100..]).expect("write_now");
        *unsent_after_big.borrow_mut() = Some(stream.write_buffer_len());
        let s = stream.clone();
        stream
            .write_with_callback(Vec::new(), move || {
                assert_eq!(s.write_buffer_len(), 0);
                stop();
            })
            .expect("write");
    });
    // Nothing waited for the end of the iteration.
    assert_eq!(unsent_after_small.take(), Some(0));
    let unsent = unsent_after_big.take().expect("recorded");
    assert!(unsent > 0 && unsent < SIZE, "{unsent} unsent");
    let reader = reader.take().expect("reader");
    assert_eq!(reader.join().expect("reader thread"), (SIZE, true));
}
