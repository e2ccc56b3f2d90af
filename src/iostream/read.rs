//! The read API of [`IOStream`]: what a read asks for ([`ReadTarget`]), who
//! gets its result ([`ReadCallback`], [`ReadHandler`]), and the methods that
//! start one (`read_until`, `read_bytes`, `read_until_close`, `start_read`,
//! `start_read_with`) or try one synchronously (`try_read`).
//!
//! Mirrors the read methods of Tornado's `tornado/iostream.py`
//! (`read_until`, `read_until_regex`, `read_bytes`, `read_until_close`,
//! `_start_read`), with one [`ReadTarget`] in place of its
//! `_read_delimiter` / `_read_bytes` / `_read_until_close` attributes.
//!
//! Relies on the parent's invariants: at most one read is pending
//! (`StreamInner::read` is an `Option`; a second read gets
//! [`StreamError::AlreadyReading`]); a started read never completes inside
//! the call that started it (`start_read` queues even a read the buffer
//! already meets; `try_read` returns its result instead of calling
//! anything); and *bytes are never lost*: a read takes only its own bytes
//! and leaves the rest buffered for the next.

use std::borrow::Cow;
use std::rc::Rc;

use super::close::close_inner;
use super::read_buffer::{consume, fail_read, read_to_buffer};
use super::read_deliver::{end_input, end_input_after_this_read, try_inline_read};
use super::read_find::{find_read, Found};
use super::{IOStream, StreamError};
use crate::ioloop::IOLoop;

/// The one read a stream may have pending.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReadTarget {
    /// Up to and including `delimiter`; fail if not found within `max_bytes`.
    Until {
        /// The bytes that end the read (included in the result).
        /// Borrowed for the constant delimiters protocols use (`"\r\n\r\n"`),
        /// so starting a read allocates nothing.
        delimiter: Cow<'static, [u8]>,
        /// Most bytes (delimiter included) the result may have.
        max_bytes: Option<usize>,
    },
    /// Exactly `n` bytes, or with `partial` any 1..=n bytes available.
    Bytes {
        /// How many bytes.
        n: usize,
        /// Return as soon as at least one byte is there.
        partial: bool,
    },
    /// Up to and including the first empty line: the end of an HTTP head.
    /// Lines may end in CRLF or a bare LF, as Tornado's
    /// `read_until_regex(b"\r?\n\r?\n")` in `http1connection.py` allows
    /// (RFC 9112 §2.2: "a recipient MAY recognize a single LF as a line
    /// terminator"). Fails like `Until` beyond `max_bytes`.
    UntilEmptyLine {
        /// Most bytes (the empty line included) the result may have.
        max_bytes: Option<usize>,
    },
    /// Everything until the peer closes.
    UntilClose,
}

/// Callback for a read: the bytes, or why the read failed.
pub type ReadCallback = Box<dyn FnOnce(Result<Vec<u8>, StreamError>)>;

/// A long-lived reader: protocol code that reads from one stream over and
/// over (an HTTP connection reading head after head) implements this once
/// and passes an `Rc` of itself to [`IOStream::start_read_with`]. Handing
/// over an `Rc` clone costs no allocation, where a [`ReadCallback`] is a
/// fresh `Box` per read.
pub trait ReadHandler {
    /// The read completed: the bytes, or why it failed. Called like a
    /// [`ReadCallback`] (never inside the stream's own code).
    fn on_read(self: Rc<Self>, result: Result<Vec<u8>, StreamError>);
}

/// Who gets a pending read's result.
pub(super) enum ReadCompletion {
    /// A one-off callback.
    Once(ReadCallback),
    /// A long-lived reader.
    Handler(Rc<dyn ReadHandler>),
}

impl ReadCompletion {
    /// Hand `result` to the reader.
    pub(super) fn complete(self, result: Result<Vec<u8>, StreamError>) {
        match self {
            ReadCompletion::Once(callback) => callback(result),
            ReadCompletion::Handler(handler) => handler.on_read(result),
        }
    }
}

impl IOStream {
    /// Read up to and including `delimiter`. If it is not found within
    /// `max_bytes` bytes, the read fails with [`StreamError::Unsatisfiable`]
    /// and the stream closes (after the callback ran and its writes flushed):
    /// Tornado closes too, as protection against memory exhaustion.
    pub fn read_until(
        &self,
        delimiter: &[u8],
        max_bytes: Option<usize>,
        callback: impl FnOnce(Result<Vec<u8>, StreamError>) + 'static,
    ) {
        self.start_read(
            ReadTarget::Until {
                delimiter: Cow::Owned(delimiter.to_vec()),
                max_bytes,
            },
            Box::new(callback),
        );
    }

    /// Read up to and including the first empty line (an HTTP head's end),
    /// lines ending in CRLF or a bare LF: see [`ReadTarget::UntilEmptyLine`].
    /// Fails beyond `max_bytes` like [`IOStream::read_until`].
    pub fn read_until_empty_line(
        &self,
        max_bytes: Option<usize>,
        callback: impl FnOnce(Result<Vec<u8>, StreamError>) + 'static,
    ) {
        self.start_read(ReadTarget::UntilEmptyLine { max_bytes }, Box::new(callback));
    }

    /// Read exactly `n` bytes; with `partial`, as soon as 1..=n are there.
    pub fn read_bytes(
        &self,
        n: usize,
        partial: bool,
        callback: impl FnOnce(Result<Vec<u8>, StreamError>) + 'static,
    ) {
        self.start_read(ReadTarget::Bytes { n, partial }, Box::new(callback));
    }

    /// Read everything until the peer closes (bounded by `max_buffer_size`).
    pub fn read_until_close(&self, callback: impl FnOnce(Result<Vec<u8>, StreamError>) + 'static) {
        self.start_read(ReadTarget::UntilClose, Box::new(callback));
    }

    /// Start `target` with `callback`. Completes from the buffer if it can
    /// (still through the loop's callback queue), else waits for data.
    pub fn start_read(&self, target: ReadTarget, callback: ReadCallback) {
        self.start_read_inner(target, ReadCompletion::Once(callback));
    }

    /// Like [`start_read`](Self::start_read), for a long-lived
    /// [`ReadHandler`]: no allocation per read.
    pub fn start_read_with(&self, target: ReadTarget, handler: Rc<dyn ReadHandler>) {
        self.start_read_inner(target, ReadCompletion::Handler(handler));
    }

    fn start_read_inner(&self, target: ReadTarget, completion: ReadCompletion) {
        let mut st = self.inner.borrow_mut();
        if st.read.is_some() {
            drop(st);
            log::error!("IOStream: a second read was started while one was pending");
            IOLoop::current()
                .add_callback(move || completion.complete(Err(StreamError::AlreadyReading)));
            return;
        }
        st.scan_from = 0;
        st.read = Some((target, completion));
        try_inline_read(&mut st);
    }

    /// Fast path for protocol code: complete `target` synchronously if the
    /// buffered bytes (plus whatever the kernel has now) already satisfy it.
    ///
    /// Returns `None` if the read would have to wait; then the caller falls
    /// back to the callback form. This is Tornado's `_try_inline_read`
    /// without the deferral, for framework code that is itself running in a
    /// loop callback and so cannot be re-entered. Errors (closed, limits)
    /// are returned, not raised.
    pub fn try_read(&self, target: &ReadTarget) -> Option<Result<Vec<u8>, StreamError>> {
        let mut st = self.inner.borrow_mut();
        if st.read.is_some() {
            return Some(Err(StreamError::AlreadyReading));
        }
        st.scan_from = 0;
        match find_read(&mut st, target) {
            Found::Ready(n) => return Some(Ok(consume(&mut st, n))),
            Found::Failed(e) => return Some(Err(fail_read(&mut st, e))),
            Found::NotYet => {}
        }
        if st.input_ended && st.closed.is_none() {
            return Some(end_input(&mut st, target));
        }
        if st.readable_pending && st.closed.is_none() && !st.read_failed {
            let eof = read_to_buffer(&mut st, Some(target));
            match find_read(&mut st, target) {
                Found::Ready(n) => {
                    if eof == Some(StreamError::Closed) {
                        // The FIN came behind these bytes: answer them first.
                        end_input_after_this_read(&mut st);
                    } else if let Some(err) = eof {
                        close_inner(&mut st, err);
                    }
                    return Some(Ok(consume(&mut st, n)));
                }
                Found::Failed(e) => return Some(Err(fail_read(&mut st, e))),
                Found::NotYet => {}
            }
            if let Some(err) = eof {
                if *target == ReadTarget::UntilClose && err == StreamError::Closed {
                    let n = st.read_buf.len() - st.read_pos;
                    let data = consume(&mut st, n);
                    close_inner(&mut st, err);
                    return Some(Ok(data));
                }
                close_inner(&mut st, err.clone());
                return Some(Err(err));
            }
        }
        if let Some(err) = st.closed.clone() {
            if *target == ReadTarget::UntilClose && err == StreamError::Closed {
                let n = st.read_buf.len() - st.read_pos;
                return Some(Ok(consume(&mut st, n)));
            }
            return Some(Err(err));
        }
        None
    }

    /// Number of bytes buffered and not yet read.
    pub fn buffered_len(&self) -> usize {
        let st = self.inner.borrow();
        st.read_buf.len() - st.read_pos
    }

    /// True while a read is pending.
    pub fn reading(&self) -> bool {
        self.inner.borrow().read.is_some()
    }
}
