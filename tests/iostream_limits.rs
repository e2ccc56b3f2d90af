//! Bounded buffers: exceeding max_buffer_size, read_until's max_bytes or
//! max_write_buffer_size is an error for that one stream (with the error
//! that says why) and closes it; other streams on the loop go on.
mod common;

use std::cell::{Cell, RefCell};
use std::io::Write;
use std::rc::Rc;

use common::*;
use squall::iostream::{IOStream, StreamError};

type ReadResult = Result<Vec<u8>, StreamError>;

/// A second, healthy stream on the same loop: after `bad` closes, it must
/// still answer a line. Calls `stop` when it did.
fn healthy_stream_still_reads(
    stream: IOStream,
    client: Rc<RefCell<std::net::TcpStream>>,
    out: Log<String>,
) {
    let keep = stream.clone();
    stream.read_until(b"\n", None, move |res| {
        out.borrow_mut().push(format!("healthy: {res:?}"));
        drop(keep);
        stop();
    });
    client
        .borrow_mut()
        .write_all(b"ok\n")
        .expect("healthy client write");
}

#[test]
fn max_buffer_size_closes_only_that_stream_with_buffer_full() {
    let events: Log<String> = log();
    let keep = slot();
    run_loop(|_| {
        let (bad, bad_client) = stream_pair();
        let (good, good_client) = stream_pair();
        let good_client = Rc::new(RefCell::new(good_client));
        let bad_client = Rc::new(RefCell::new(bad_client));
        *keep.borrow_mut() = Some((good.clone(), good_client.clone(), bad_client.clone()));
        bad.set_max_buffer_size(1024);
        let e = events.clone();
        bad.set_close_callback(move || {
            e.borrow_mut().push("bad closed".into());
            healthy_stream_still_reads(good, good_client, e);
        });
        let (e, b) = (events.clone(), bad.clone());
        bad.read_until(b"\n", None, move |res| {
            e.borrow_mut()
                .push(format!("bad read: {res:?}, closed yet: {}", b.closed()));
        });
        // 4 KiB and no newline: can never fit in 1 KiB.
        bad_client
            .borrow_mut()
            .write_all(&[b'x'; 4096])
            .expect("write");
    });
    let full = StreamError::BufferFull {
        max_buffer_size: 1024,
    };
    assert_eq!(
        events.take(),
        vec![
            // The callback runs first (it may write an apology), then the
            // stream closes.
            format!("bad read: {:?}, closed yet: false", Err::<Vec<u8>, _>(full)),
            "bad closed".to_string(),
            format!("healthy: {:?}", Ok::<_, StreamError>(b"ok\n".to_vec())),
        ]
    );
}

#[test]
fn read_until_max_bytes_fails_unsatisfiable_and_the_reply_still_leaves() {
    let results: Log<ReadResult> = log();
    let peer_got = slot();
    let keep = slot();
    run_loop(|_| {
        let (stream, client) = stream_pair();
        let client = Rc::new(RefCell::new(client));
        *keep.borrow_mut() = Some(client.clone());
        let (r, s) = (results.clone(), stream.clone());
        stream.read_until(b"\n", Some(100), move |res| {
            r.borrow_mut().push(res);
            // Told why, then closed once this is flushed.
            s.write(b"line too long\n".to_vec()).expect("reply");
        });
        client.borrow_mut().write_all(&[b'y'; 150]).expect("write");
        let received = Rc::new(RefCell::new(Vec::new()));
        let (c, g, p) = (client.clone(), received.clone(), peer_got.clone());
        wait_until(
            move || drain_nonblocking(&mut c.borrow_mut(), &mut g.borrow_mut()),
            move || {
                *p.borrow_mut() = Some(received.take());
                stop();
            },
        );
    });
    assert_eq!(
        results.take(),
        vec![Err(StreamError::Unsatisfiable { max_bytes: 100 })]
    );
    // The reply, then EOF (drain_nonblocking returned true).
    assert_eq!(peer_got.take(), Some(b"line too long\n".to_vec()));
}

#[test]
fn read_until_max_bytes_counts_the_delimiter() {
    // Exactly max_bytes including the delimiter is fine; one more is not,
    // even when the delimiter is already in the buffer.
    let results: Log<ReadResult> = log();
    let keep = slot();
    run_loop(|_| {
        let (stream, client) = stream_pair();
        let client = Rc::new(RefCell::new(client));
        *keep.borrow_mut() = Some(client.clone());
        let mut line = vec![b'a'; 9];
        line.push(b'\n');
        let mut long = vec![b'b'; 10];
        long.push(b'\n');
        let mut both = line.clone();
        both.extend_from_slice(&long);
        client.borrow_mut().write_all(&both).expect("write");
        let (r, s) = (results.clone(), stream.clone());
        stream.read_until(b"\n", Some(10), move |res| {
            r.borrow_mut().push(res);
            let r = r.clone();
            s.read_until(b"\n", Some(10), move |res| {
                r.borrow_mut().push(res);
                stop();
            });
        });
    });
    let mut line = vec![b'a'; 9];
    line.push(b'\n');
    assert_eq!(
        results.take(),
        vec![Ok(line), Err(StreamError::Unsatisfiable { max_bytes: 10 })]
    );
}

#[test]
fn read_bytes_larger_than_max_buffer_size_fails_at_once() {
    let results: Log<ReadResult> = log();
    let keep = slot();
    run_loop(|_| {
        let (stream, client) = stream_pair();
        *keep.borrow_mut() = Some(client);
        stream.set_max_buffer_size(100);
        let (r, s) = (results.clone(), stream.clone());
        stream.read_bytes(101, false, move |res| {
            r.borrow_mut().push(res);
            let r = r.clone();
            // The stream closes once the failed read's callback ran.
            wait_until(
                move || s.closed(),
                move || {
                    r.borrow_mut().push(Ok(b"closed".to_vec()));
                    stop();
                },
            );
        });
    });
    assert_eq!(
        results.take(),
        vec![
            Err(StreamError::BufferFull {
                max_buffer_size: 100
            }),
            Ok(b"closed".to_vec())
        ]
    );
}

#[test]
fn read_until_close_past_max_buffer_size_is_buffer_full() {
    let results: Log<ReadResult> = log();
    let keep = slot();
    run_loop(|_| {
        let (stream, client) = stream_pair();
        let client = Rc::new(RefCell::new(client));
        *keep.borrow_mut() = Some((stream.clone(), client.clone()));
        stream.set_max_buffer_size(10_000);
        let r = results.clone();
        stream.read_until_close(move |res| {
            r.borrow_mut()
                .push(res.map(|v| v.len().to_string().into_bytes()));
            stop();
        });
        client
            .borrow_mut()
            .write_all(&vec![b'z'; 50_000])
            .expect("write");
    });
    assert_eq!(
        results.take(),
        vec![Err(StreamError::BufferFull {
            max_buffer_size: 10_000
        })]
    );
}

#[test]
fn max_write_buffer_size_closes_only_that_stream_with_write_buffer_full() {
    let events: Log<String> = log();
    let writes_accepted = Rc::new(Cell::new(0usize));
    let keep = slot();
    run_loop(|_| {
        let (bad, bad_client) = stream_pair();
        let (good, good_client) = stream_pair();
        // The bad peer never reads, and its receive buffer is small.
        socket2::SockRef::from(&bad_client)
            .set_recv_buffer_size(16 * 1024)
            .expect("SO_RCVBUF");
        let good_client = Rc::new(RefCell::new(good_client));
        *keep.borrow_mut() = Some((bad.clone(), bad_client, good_client.clone()));
        bad.set_max_write_buffer_size(1 << 20);
        let e = events.clone();
        let g = good.clone();
        bad.set_close_callback(move || {
            e.borrow_mut().push("bad closed".into());
            healthy_stream_still_reads(g, good_client, e);
        });
        // Keep writing 256 KiB until the stream refuses.
        let chunk = vec![b'w'; 256 * 1024];
        let error = loop {
            match bad.write(chunk.clone()) {
                Ok(()) => writes_accepted.set(writes_accepted.get() + 1),
                Err(e) => break e,
            }
            assert!(
                writes_accepted.get() < 1000,
                "the write buffer never filled"
            );
        };
        events.borrow_mut().push(format!(
            "write refused: {error:?}, closed: {}, error(): {:?}",
            bad.closed(),
            bad.error()
        ));
    });
    let full = StreamError::WriteBufferFull {
        max_write_buffer_size: 1 << 20,
    };
    assert!(writes_accepted.get() >= 4, "{}", writes_accepted.get());
    assert_eq!(
        events.take(),
        vec![
            format!(
                "write refused: {full:?}, closed: true, error(): {:?}",
                Some(&full)
            ),
            "bad closed".to_string(),
            format!("healthy: {:?}", Ok::<_, StreamError>(b"ok\n".to_vec())),
        ]
    );
}
