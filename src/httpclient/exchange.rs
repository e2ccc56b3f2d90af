//! One request and its response on one connected [`IOStream`].
//!
//! Mirrors the I/O half of Tornado's `_HTTPConnection` in
//! `tornado/simple_httpclient.py` (`_write_body`, `headers_received`,
//! `data_received`, `finish`) together with `HTTP1Connection`'s client-side
//! reading. It knows nothing of timers, redirects or queues: the client
//! ([`super::client`]) owns those and ends an exchange by closing its
//! stream, which fails the pending read and so reaches `done` (whose
//! owner then ignores it).
//!
//! ```text
//!  write(request) ─▶ Head ─1xx─▶ Head
//!                     │ framing
//!                     ├─ None ───────────────────────────────▶ done(Ok)
//!                     ├─ Length(n) ─ read_bytes(n) ──────────▶ done(Ok)
//!                     ├─ Chunked ─ size line ─ data+CRLF ─ … ─ 0 ─ trailers ─▶ done(Ok)
//!                     └─ UntilClose ─ read_bytes(64 KiB, partial) … EOF ─▶ done(Ok)
//!  any read error / limit ─▶ done(Err)
//! ```
//!
//! Every step re-checks the body against `max_body_size` before reading,
//! so memory stays bounded whatever the server sends.

use std::cell::{Cell, RefCell};
use std::rc::Rc;

use super::request::HTTPClientError;
use super::response::{parse_response_head, ResponseFraming, ResponseHead};
use crate::http::parse::{check_trailer_line, parse_chunk_size, MAX_CHUNK_LINE};
use crate::iostream::{IOStream, StreamError, READ_CHUNK_SIZE};

/// Interim (1xx) responses skipped before the real one, at most.
const MAX_INTERIM_RESPONSES: u32 = 8;

/// Size limits of one exchange.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Limits {
    /// Longest response head (status line + headers).
    pub max_header_size: usize,
    /// Longest response body (de-chunked).
    pub max_body_size: usize,
}

/// A complete response as read off the wire.
pub(crate) struct RawResponse {
    /// Status line and headers.
    pub head: ResponseHead,
    /// The body, de-chunked.
    pub body: Vec<u8>,
    /// The connection may carry another request: the server allows it, the
    /// body was self-delimited, and no stray bytes follow it.
    pub reusable: bool,
}

/// An exchange that produced no response.
pub(crate) struct Failure {
    /// Why.
    pub error: HTTPClientError,
    /// The connection broke before any response arrived: a request on a
    /// reused keep-alive connection may be retried on a fresh one (the
    /// server may have closed it just as we sent).
    pub before_response: bool,
}

/// Receives the outcome, once.
pub(crate) type Done = Box<dyn FnOnce(Result<RawResponse, Failure>)>;

/// Where the body reader is.
#[derive(Clone, Copy)]
enum Step {
    /// Waiting for a chunk-size line.
    ChunkSize,
    /// Waiting for `n` data bytes plus CRLF.
    ChunkData(usize),
    /// After the last chunk: trailer lines until an empty one.
    Trailers,
}

/// State of one exchange, shared by its pending read callback.
struct Exchange {
    /// The connection.
    stream: IOStream,
    /// Method of the request (HEAD responses have no body).
    method: String,
    /// Size limits.
    limits: Limits,
    /// The outcome's receiver; `None` once called.
    done: RefCell<Option<Done>>,
    /// The final (non-1xx) head, once read.
    head: RefCell<Option<ResponseHead>>,
    /// Body bytes so far.
    body: RefCell<Vec<u8>>,
    /// Interim responses skipped so far.
    interim: Cell<u32>,
    /// Trailer bytes read so far (bounded by `max_header_size`).
    trailer_bytes: Cell<usize>,
}

/// Send `request` (head and body, already encoded) on `stream` and read the
/// response to it; `done` gets the outcome.
pub(crate) fn start(stream: IOStream, request: Vec<u8>, method: &str, limits: Limits, done: Done) {
    let ex = Rc::new(Exchange {
        stream,
        method: method.to_string(),
        limits,
        done: RefCell::new(Some(done)),
        head: RefCell::new(None),
        body: RefCell::new(Vec::new()),
        interim: Cell::new(0),
        trailer_bytes: Cell::new(0),
    });
    if let Err(e) = ex.stream.write(request) {
        fail(&ex, stream_error(e, "request"));
        return;
    }
    read_head(&ex);
}

fn read_head(ex: &Rc<Exchange>) {
    let again = Rc::clone(ex);
    ex.stream
        .read_until_empty_line(Some(ex.limits.max_header_size), move |r| on_head(&again, r));
}

fn on_head(ex: &Rc<Exchange>, result: Result<Vec<u8>, StreamError>) {
    let block = match result {
        Ok(block) => block,
        Err(e) => {
            let limit = ex.limits.max_header_size;
            return fail(
                ex,
                match e {
                    StreamError::Unsatisfiable { .. } | StreamError::BufferFull { .. } => {
                        HTTPClientError::HeadTooLarge { limit }
                    }
                    e => stream_error(e, "head"),
                },
            );
        }
    };
    let head = match parse_response_head(&block, &ex.method) {
        Ok(head) => head,
        Err(message) => return fail(ex, HTTPClientError::MalformedResponse(message)),
    };
    if (100..200).contains(&head.code) {
        // 100 Continue, 103 Early Hints: informational, the real response
        // follows. 101 would switch protocols, which we never asked for.
        if head.code == 101 || ex.interim.get() >= MAX_INTERIM_RESPONSES {
            return fail(
                ex,
                HTTPClientError::MalformedResponse(format!("unexpected {} response", head.code)),
            );
        }
        ex.interim.set(ex.interim.get() + 1);
        return read_head(ex);
    }
    let framing = head.framing;
    *ex.head.borrow_mut() = Some(head);
    match framing {
        ResponseFraming::None => complete(ex),
        ResponseFraming::Length(n) => {
            let n = match usize::try_from(n) {
                Ok(n) if n <= ex.limits.max_body_size => n,
                _ => return too_large(ex),
            };
            let again = Rc::clone(ex);
            ex.stream.read_bytes(n, false, move |r| match r {
                Ok(data) => {
                    *again.body.borrow_mut() = data;
                    complete(&again);
                }
                Err(e) => fail(&again, body_error(&again, e)),
            });
        }
        ResponseFraming::Chunked => read_chunked(ex, Step::ChunkSize),
        ResponseFraming::UntilClose => read_until_close(ex),
    }
}

/// Read the next piece of a chunked body.
fn read_chunked(ex: &Rc<Exchange>, step: Step) {
    let again = Rc::clone(ex);
    let on_read = move |r: Result<Vec<u8>, StreamError>| match r {
        Ok(data) => on_chunk_piece(&again, step, data),
        // One trailer line longer than the whole section may be.
        Err(StreamError::Unsatisfiable { .. }) if matches!(step, Step::Trailers) => fail(
            &again,
            HTTPClientError::HeadTooLarge {
                limit: again.limits.max_header_size,
            },
        ),
        Err(StreamError::Unsatisfiable { .. }) => fail(
            &again,
            HTTPClientError::MalformedResponse("chunk size line too long".into()),
        ),
        Err(e) => fail(&again, body_error(&again, e)),
    };
    match step {
        Step::ChunkSize => ex.stream.read_until(b"\r\n", Some(MAX_CHUNK_LINE), on_read),
        Step::Trailers => {
            let max = ex.limits.max_header_size;
            ex.stream.read_until(b"\r\n", Some(max), on_read)
        }
        Step::ChunkData(n) => ex.stream.read_bytes(n.saturating_add(2), false, on_read),
    }
}

fn on_chunk_piece(ex: &Rc<Exchange>, step: Step, data: Vec<u8>) {
    let next = match step {
        Step::ChunkSize => match parse_chunk_size(&data) {
            Err(e) => {
                return fail(
                    ex,
                    HTTPClientError::MalformedResponse(format!("chunked body: {}", e.reason)),
                )
            }
            Ok(0) => Step::Trailers,
            Ok(n) => {
                let have = ex.body.borrow().len() as u64;
                match usize::try_from(n) {
                    Ok(n) if have.saturating_add(n as u64) <= ex.limits.max_body_size as u64 => {
                        Step::ChunkData(n)
                    }
                    _ => return too_large(ex),
                }
            }
        },
        Step::ChunkData(_) => {
            let Some(chunk) = data.strip_suffix(b"\r\n") else {
                return fail(
                    ex,
                    HTTPClientError::MalformedResponse("chunk data not followed by CRLF".into()),
                );
            };
            ex.body.borrow_mut().extend_from_slice(chunk);
            Step::ChunkSize
        }
        Step::Trailers => {
            if data == b"\r\n" {
                return complete(ex);
            }
            // Trailer fields are checked like the server checks them (a
            // line that is no field line is a broken message, RFC 9112
            // §7.1.2), then dropped (RFC 9110 §6.5.1), within the head-size
            // budget.
            let total = ex.trailer_bytes.get() + data.len();
            if total > ex.limits.max_header_size {
                return fail(
                    ex,
                    HTTPClientError::HeadTooLarge {
                        limit: ex.limits.max_header_size,
                    },
                );
            }
            if let Err(e) = check_trailer_line(&data) {
                return fail(
                    ex,
                    HTTPClientError::MalformedResponse(format!("chunked body: {}", e.reason)),
                );
            }
            ex.trailer_bytes.set(total);
            Step::Trailers
        }
    };
    read_chunked(ex, next);
}

/// No length given: everything until the server closes, in pieces, each
/// checked against the limit before it is kept.
fn read_until_close(ex: &Rc<Exchange>) {
    let again = Rc::clone(ex);
    ex.stream
        .read_bytes(READ_CHUNK_SIZE, true, move |r| match r {
            Ok(data) => {
                let over = again.body.borrow().len() + data.len() > again.limits.max_body_size;
                if over {
                    return too_large(&again);
                }
                again.body.borrow_mut().extend_from_slice(&data);
                read_until_close(&again);
            }
            // A clean end of stream is the end of the body.
            Err(StreamError::Closed) => complete(&again),
            Err(e) => fail(&again, stream_error(e, "body")),
        });
}

fn complete(ex: &Rc<Exchange>) {
    let Some(head) = ex.head.borrow_mut().take() else {
        return;
    };
    let body = std::mem::take(&mut *ex.body.borrow_mut());
    let reusable = head.keep_alive
        && head.framing != ResponseFraming::UntilClose
        && !ex.stream.closed()
        && ex.stream.buffered_len() == 0;
    let done = ex.done.borrow_mut().take();
    if let Some(done) = done {
        done(Ok(RawResponse {
            head,
            body,
            reusable,
        }));
    }
}

fn too_large(ex: &Rc<Exchange>) {
    let limit = ex.limits.max_body_size;
    fail(ex, HTTPClientError::TooLarge { limit });
}

fn fail(ex: &Rc<Exchange>, error: HTTPClientError) {
    let before_response = ex.head.borrow().is_none()
        && ex.interim.get() == 0
        && matches!(
            error,
            HTTPClientError::ClosedEarly | HTTPClientError::Io { .. }
        );
    ex.body.borrow_mut().clear();
    let done = ex.done.borrow_mut().take();
    if let Some(done) = done {
        done(Err(Failure {
            error,
            before_response,
        }));
    }
}

/// A read of the body failed: a limit means the body is too large.
fn body_error(ex: &Exchange, e: StreamError) -> HTTPClientError {
    match e {
        StreamError::BufferFull { .. } => HTTPClientError::TooLarge {
            limit: ex.limits.max_body_size,
        },
        e => stream_error(e, "body"),
    }
}

/// Map a stream error met while doing `what`.
pub(crate) fn stream_error(e: StreamError, what: &str) -> HTTPClientError {
    match e {
        StreamError::Closed => HTTPClientError::ClosedEarly,
        StreamError::Io(kind, message) => HTTPClientError::Io { kind, message },
        StreamError::BufferFull { max_buffer_size } => HTTPClientError::TooLarge {
            limit: max_buffer_size,
        },
        StreamError::WriteBufferFull {
            max_write_buffer_size,
        } => HTTPClientError::InvalidRequest(format!(
            "request larger than the write buffer ({max_write_buffer_size} bytes)"
        )),
        StreamError::Unsatisfiable { max_bytes } => HTTPClientError::MalformedResponse(format!(
            "{what}: line longer than {max_bytes} bytes"
        )),
        StreamError::AlreadyReading => HTTPClientError::Io {
            kind: std::io::ErrorKind::Other,
            message: format!("{what}: internal error: a read was already pending"),
        },
    }
}
