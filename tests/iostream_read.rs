//! IOStream reads over real sockets: read_until, read_bytes,
//! read_until_close, buffering before a read, one read at a time, and what a
//! pending read sees when the stream closes.
mod common;

use std::cell::{Cell, RefCell};
use std::io::Write;
use std::net::{Shutdown, TcpStream};
use std::rc::Rc;

use common::*;
use squall::iostream::{IOStream, ReadTarget, StreamError};

type ReadResult = Result<Vec<u8>, StreamError>;

/// Write `bytes` from the loop thread (small writes to a fresh socket never
/// block).
fn send(client: &Rc<RefCell<TcpStream>>, bytes: &[u8]) {
    client.borrow_mut().write_all(bytes).expect("client write");
}

#[test]
fn read_until_delimiter_split_across_two_writes() {
    let got: Slot<ReadResult> = slot();
    let pending_after_first_half = slot();
    let left_over = slot();
    let keep = slot();
    run_loop(|_| {
        let (stream, client) = stream_pair();
        let client = Rc::new(RefCell::new(client));
        *keep.borrow_mut() = Some(Rc::clone(&client));
        let (g, lo, s) = (got.clone(), left_over.clone(), stream.clone());
        stream.read_until(b"\r\n", None, move |r| {
            *g.borrow_mut() = Some(r);
            *lo.borrow_mut() = Some(s.buffered_len());
            stop();
        });
        send(&client, b"hello\r");
        let (s, p, probe) = (
            stream.clone(),
            pending_after_first_half.clone(),
            stream.clone(),
        );
        wait_until(
            move || probe.buffered_len() == 6,
            move || {
                // The first half sits in the buffer; the read still waits.
                *p.borrow_mut() = Some(s.reading());
                send(&client, b"\nworld");
            },
        );
    });
    assert_eq!(pending_after_first_half.take(), Some(true));
    assert_eq!(got.take(), Some(Ok(b"hello\r\n".to_vec())));
    // "world" stays buffered for the next read.
    assert_eq!(left_over.take(), Some(5));
}

/// Feed `data` one byte per write, each byte waiting until the stream has
/// taken the previous one in (so every byte arrives in its own `read`).
fn feed_one_byte_at_a_time(
    client: Rc<RefCell<TcpStream>>,
    stream: IOStream,
    data: Rc<Vec<u8>>,
    i: usize,
    delivered: Rc<Cell<usize>>,
) {
    if i == data.len() {
        return;
    }
    send(&client, &data[i..=i]);
    let s = stream.clone();
    let d = Rc::clone(&delivered);
    wait_until(
        move || s.buffered_len() + d.get() == i + 1,
        move || feed_one_byte_at_a_time(client, stream, data, i + 1, delivered),
    );
}

/// How a test asks for a head, given the stream and the callback.
type HeadRead = fn(&IOStream, Box<dyn FnOnce(ReadResult)>);

/// Feed `message` one byte per write; read its head with `read_head`, then
/// 4 more bytes. Returns both results.
fn head_then_body_one_byte_at_a_time(message: &[u8], read_head: HeadRead) -> Vec<ReadResult> {
    let results: Log<ReadResult> = log();
    let keep = slot();
    run_loop(|_| {
        let (stream, client) = stream_pair();
        let client = Rc::new(RefCell::new(client));
        *keep.borrow_mut() = Some(Rc::clone(&client));
        let delivered = Rc::new(Cell::new(0));
        let (r, d, s) = (results.clone(), delivered.clone(), stream.clone());
        read_head(
            &stream,
            Box::new(move |res| {
                d.set(d.get() + res.as_ref().map(Vec::len).unwrap_or(0));
                r.borrow_mut().push(res);
                let (r, d) = (r.clone(), d.clone());
                s.read_bytes(4, false, move |res| {
                    d.set(d.get() + res.as_ref().map(Vec::len).unwrap_or(0));
                    r.borrow_mut().push(res);
                    stop();
                });
            }),
        );
        feed_one_byte_at_a_time(client, stream, Rc::new(message.to_vec()), 0, delivered);
    });
    results.take()
}

#[test]
fn read_until_multibyte_delimiter_across_many_one_byte_writes() {
    // "\r\n" pieces of the delimiter appear early, so the resumable search
    // must not skip or double-count a straddling prefix.
    let results =
        head_then_body_one_byte_at_a_time(b"GET / HTTP/1.0\r\nHost: x\r\n\r\nBODY", |s, cb| {
            s.read_until(b"\r\n\r\n", Some(1000), cb)
        });
    assert_eq!(
        results,
        vec![
            Ok(b"GET / HTTP/1.0\r\nHost: x\r\n\r\n".to_vec()),
            Ok(b"BODY".to_vec())
        ]
    );
}

#[test]
fn read_until_empty_line_takes_crlf_or_bare_lf_one_byte_at_a_time() {
    // Line ends of both kinds, and an empty line that is "\r\n" after a
    // bare LF: every candidate LF straddles a read boundary.
    for (message, head) in [
        (&b"GET / HTTP/1.0\r\nHost: x\r\n\r\nBODY"[..], 27),
        (b"GET / HTTP/1.0\nHost: x\n\nBODY", 24),
        (b"GET / HTTP/1.0\r\nHost: x\n\r\nBODY", 26),
    ] {
        let results = head_then_body_one_byte_at_a_time(message, |s, cb| {
            s.read_until_empty_line(Some(1000), cb)
        });
        assert_eq!(
            results,
            vec![Ok(message[..head].to_vec()), Ok(b"BODY".to_vec())],
            "{:?}",
            String::from_utf8_lossy(message)
        );
    }
}

#[test]
fn read_bytes_exact_waits_for_all_and_leaves_the_rest() {
    let results: Log<ReadResult> = log();
    let early = slot();
    let keep = slot();
    run_loop(|_| {
        let (stream, client) = stream_pair();
        let client = Rc::new(RefCell::new(client));
        *keep.borrow_mut() = Some(Rc::clone(&client));
        let (r, s) = (results.clone(), stream.clone());
        stream.read_bytes(5, false, move |res| {
            r.borrow_mut().push(res);
            let r = r.clone();
            // "67" is already buffered: served from the buffer.
            s.read_bytes(2, false, move |res| {
                r.borrow_mut().push(res);
                stop();
            });
        });
        send(&client, b"12");
        let (s, e, r) = (stream.clone(), early.clone(), results.clone());
        wait_until(
            move || s.buffered_len() == 2,
            move || {
                // 2 of 5 bytes: nothing delivered yet.
                *e.borrow_mut() = Some(r.borrow().len());
                send(&client, b"34567");
            },
        );
    });
    assert_eq!(early.take(), Some(0));
    assert_eq!(
        results.take(),
        vec![Ok(b"12345".to_vec()), Ok(b"67".to_vec())]
    );
}

#[test]
fn read_bytes_partial_returns_what_is_there_up_to_n() {
    let results: Log<ReadResult> = log();
    let keep = slot();
    run_loop(|_| {
        let (stream, client) = stream_pair();
        let client = Rc::new(RefCell::new(client));
        *keep.borrow_mut() = Some(Rc::clone(&client));
        let (r, s, c) = (results.clone(), stream.clone(), client.clone());
        // Partial with fewer bytes than n: returns the 3 that came.
        stream.read_bytes(100, true, move |res| {
            r.borrow_mut().push(res);
            send(&c, b"abcdefgh");
            let s2 = s.clone();
            let r = r.clone();
            // Partial with more bytes than n: returns exactly n.
            s.read_bytes(5, true, move |res| {
                r.borrow_mut().push(res);
                let r = r.clone();
                s2.read_bytes(5, true, move |res| {
                    r.borrow_mut().push(res);
                    stop();
                });
            });
        });
        send(&client, b"xyz");
    });
    // One 8-byte write on loopback arrives as one segment, so the second
    // read sees all 8 bytes and must take exactly 5, leaving 3.
    assert_eq!(
        results.take(),
        vec![
            Ok(b"xyz".to_vec()),
            Ok(b"abcde".to_vec()),
            Ok(b"fgh".to_vec())
        ]
    );
}

#[test]
fn read_until_close_gets_everything_then_the_stream_is_closed() {
    // More than one READ_CHUNK_SIZE, in several writes, then FIN.
    let payload: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
    let got: Slot<ReadResult> = slot();
    let closed_after = slot();
    run_loop(|_| {
        let (stream, client) = stream_pair();
        let (g, s, c) = (got.clone(), stream.clone(), closed_after.clone());
        stream.read_until_close(move |res| {
            *g.borrow_mut() = Some(res);
            *c.borrow_mut() = Some(s.closed());
            stop();
        });
        let data = payload.clone();
        // A writer thread: 300 KB may not fit the socket buffers at once.
        std::thread::spawn(move || {
            let mut client = client;
            for chunk in data.chunks(70_000) {
                client.write_all(chunk).expect("client write");
            }
            client.shutdown(Shutdown::Write).expect("shutdown");
            drop(client);
        });
    });
    let got = got
        .take()
        .expect("callback ran")
        .expect("read_until_close ok");
    assert_eq!(got.len(), payload.len());
    assert!(got == payload, "bytes differ");
    assert_eq!(closed_after.take(), Some(true));
}

#[test]
fn bytes_that_arrive_before_any_read_are_kept() {
    let results: Log<ReadResult> = log();
    let keep = slot();
    run_loop(|_| {
        let (stream, client) = stream_pair();
        let client = Rc::new(RefCell::new(client));
        *keep.borrow_mut() = Some(Rc::clone(&client));
        send(&client, b"first\nsecond\nthi");
        let (s, r, probe) = (stream.clone(), results.clone(), stream.clone());
        // No read pending: the stream still takes the bytes in (so it can
        // notice a close), and must keep them.
        wait_until(
            move || probe.buffered_len() == 16,
            move || {
                let s2 = s.clone();
                s.read_until(b"\n", None, move |res| {
                    r.borrow_mut().push(res);
                    let (r, s3) = (r.clone(), s2.clone());
                    s2.read_until(b"\n", None, move |res| {
                        r.borrow_mut().push(res);
                        // The tail stays too.
                        r.borrow_mut().push(Ok(vec![s3.buffered_len() as u8]));
                        stop();
                    });
                });
            },
        );
    });
    assert_eq!(
        results.take(),
        vec![
            Ok(b"first\n".to_vec()),
            Ok(b"second\n".to_vec()),
            Ok(vec![3])
        ]
    );
}

#[test]
fn bytes_that_arrived_with_the_peers_fin_can_still_be_read() {
    // The peer sends two lines and closes at once: both lines arrive in one
    // readable event together with EOF. The second read is only asked for
    // inside the first read's callback, after the stream saw EOF; Tornado
    // still serves it from the buffer, and so must we ("bytes are never
    // lost").
    let results: Log<ReadResult> = log();
    run_loop(|_| {
        let (stream, mut client) = stream_pair();
        let (r, s) = (results.clone(), stream.clone());
        stream.read_until(b"\n", None, move |res| {
            r.borrow_mut().push(res);
            let (r, s2) = (r.clone(), s.clone());
            s.read_until(b"\n", None, move |res| {
                r.borrow_mut().push(res);
                let r = r.clone();
                // Then the read that cannot be met fails with Closed.
                s2.read_until(b"\n", None, move |res| {
                    r.borrow_mut().push(res);
                    stop();
                });
            });
        });
        client.write_all(b"one\ntwo\n").expect("write");
        drop(client);
    });
    assert_eq!(
        results.take(),
        vec![
            Ok(b"one\n".to_vec()),
            Ok(b"two\n".to_vec()),
            Err(StreamError::Closed)
        ]
    );
}

#[test]
fn read_until_close_after_eof_returns_the_buffered_tail() {
    let results: Log<ReadResult> = log();
    run_loop(|_| {
        let (stream, mut client) = stream_pair();
        let (r, s) = (results.clone(), stream.clone());
        stream.read_until(b"\n", None, move |res| {
            r.borrow_mut().push(res);
            let r = r.clone();
            s.read_until_close(move |res| {
                r.borrow_mut().push(res);
                stop();
            });
        });
        client
            .write_all(b"head\ntail without newline")
            .expect("write");
        drop(client);
    });
    assert_eq!(
        results.take(),
        vec![Ok(b"head\n".to_vec()), Ok(b"tail without newline".to_vec())]
    );
}

#[test]
fn a_second_read_while_one_is_pending_is_already_reading() {
    let results: Log<(&'static str, ReadResult)> = log();
    let keep = slot();
    run_loop(|_| {
        let (stream, client) = stream_pair();
        let client = Rc::new(RefCell::new(client));
        // The callbacks do not hold the stream; dropping the last handle
        // would close it.
        *keep.borrow_mut() = Some((stream.clone(), Rc::clone(&client)));
        let r = results.clone();
        stream.read_until(b"\n", None, move |res| {
            r.borrow_mut().push(("first", res));
            stop();
        });
        let r = results.clone();
        stream.read_bytes(1, false, move |res| {
            r.borrow_mut().push(("second", res));
        });
        // try_read refuses too, without disturbing the pending read.
        let r = results.clone();
        let tried = stream.try_read(&ReadTarget::Bytes {
            n: 1,
            partial: true,
        });
        r.borrow_mut()
            .push(("try_read", tried.expect("try_read answers")));
        send(&client, b"line\n");
    });
    assert_eq!(
        results.take(),
        vec![
            ("try_read", Err(StreamError::AlreadyReading)),
            ("second", Err(StreamError::AlreadyReading)),
            ("first", Ok(b"line\n".to_vec())),
        ]
    );
}

#[test]
fn a_pending_read_gets_closed_when_the_peer_closes() {
    let events: Log<String> = log();
    let keep = slot();
    run_loop(|_| {
        let (stream, mut client) = stream_pair();
        *keep.borrow_mut() = Some(stream.clone());
        let e = events.clone();
        stream.set_close_callback(move || {
            e.borrow_mut().push("close callback".into());
            stop();
        });
        let e = events.clone();
        stream.read_until(b"\n", None, move |res| {
            e.borrow_mut().push(format!("read: {res:?}"));
        });
        client.write_all(b"no newline").expect("write");
        drop(client);
    });
    // The read learns why, and runs before the close callback.
    assert_eq!(
        events.take(),
        vec![
            "read: Err(Closed)".to_string(),
            "close callback".to_string()
        ]
    );
}

#[test]
fn a_pending_read_gets_closed_on_local_close() {
    let events: Log<String> = log();
    let keep = slot();
    run_loop(|_| {
        let (stream, client) = stream_pair();
        *keep.borrow_mut() = Some((stream.clone(), client));
        let e = events.clone();
        stream.set_close_callback(move || {
            e.borrow_mut().push("close callback".into());
            stop();
        });
        let e = events.clone();
        stream.read_bytes(10, false, move |res| {
            e.borrow_mut().push(format!("read: {res:?}"));
        });
        stream.close();
        // Deferred: nothing ran inside close().
        events.borrow_mut().push("after close()".into());
    });
    assert_eq!(
        events.take(),
        vec![
            "after close()".to_string(),
            "read: Err(Closed)".to_string(),
            "close callback".to_string()
        ]
    );
}

#[test]
fn read_callbacks_never_run_inside_the_call_that_completes_them() {
    // Even when the buffer already satisfies a read, its callback is queued
    // (re-entrancy is impossible by construction).
    let order: Log<&'static str> = log();
    let keep = slot();
    run_loop(|_| {
        let (stream, client) = stream_pair();
        let client = Rc::new(RefCell::new(client));
        *keep.borrow_mut() = Some(Rc::clone(&client));
        send(&client, b"ab");
        let (s, o, probe) = (stream.clone(), order.clone(), stream.clone());
        wait_until(
            move || probe.buffered_len() == 2,
            move || {
                let o2 = o.clone();
                s.read_bytes(1, false, move |_| {
                    o2.borrow_mut().push("callback");
                    stop();
                });
                o.borrow_mut().push("read_bytes returned");
            },
        );
    });
    assert_eq!(order.take(), vec!["read_bytes returned", "callback"]);
}

/// A long-lived reader: re-arms itself for the next line from inside its
/// own completion, and records each line.
struct LineReader {
    stream: IOStream,
    lines: Log<String>,
}

impl squall::iostream::ReadHandler for LineReader {
    fn on_read(self: Rc<Self>, result: ReadResult) {
        match result {
            Ok(line) => {
                self.lines
                    .borrow_mut()
                    .push(String::from_utf8_lossy(&line).into_owned());
                let target = ReadTarget::Until {
                    delimiter: b"\n"[..].into(),
                    max_bytes: None,
                };
                let again = Rc::clone(&self) as Rc<dyn squall::iostream::ReadHandler>;
                self.stream.start_read_with(target, again);
            }
            Err(e) => {
                self.lines.borrow_mut().push(format!("error: {e}"));
            }
        }
    }
}

#[test]
fn a_read_handler_gets_every_line_and_rearms_from_its_own_completion() {
    let events: Log<String> = log();
    let keep = slot();
    run_loop(|_| {
        let (stream, client) = stream_pair();
        let client = Rc::new(RefCell::new(client));
        *keep.borrow_mut() = Some(Rc::clone(&client));
        let e = events.clone();
        stream.set_close_callback(move || {
            e.borrow_mut().push("closed".into());
            stop();
        });
        let reader = Rc::new(LineReader {
            stream: stream.clone(),
            lines: events.clone(),
        });
        let target = ReadTarget::Until {
            delimiter: b"\n"[..].into(),
            max_bytes: None,
        };
        stream.start_read_with(target, reader);
        // Two lines in one write (the second is met from the buffer, inside
        // the first one's completion), then a third alone, then EOF.
        send(&client, b"one\ntwo\n");
        let (c, e) = (client.clone(), events.clone());
        wait_until(
            move || e.borrow().len() == 2,
            move || {
                send(&c, b"three\n");
                c.borrow().shutdown(Shutdown::Write).expect("shutdown");
            },
        );
    });
    // "three" and the EOF came in one event: the stream stays open until
    // "three" has been handled (its answer could still go out), the read
    // that "three"'s completion asks for fails at once, as nothing more
    // will come, and the close callback follows.
    assert_eq!(
        *events.borrow(),
        [
            "one\n",
            "two\n",
            "three\n",
            "error: stream is closed",
            "closed"
        ]
    );
}
