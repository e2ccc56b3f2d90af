//! Completing the pending read: after bytes arrive ([`handle_read`]), when
//! a read is asked for ([`try_inline_read`]), and when the stream closes or
//! the peer's EOF ends the input ([`close_pending_read`],
//! [`end_input_after_this_read`], [`end_input`]). [`try_satisfy_read`] is
//! the one place a met or failed read is taken out.
//!
//! Mirrors `_handle_read`, `_try_inline_read`, `_read_from_buffer` and
//! `_run_read_callback` of Tornado's `tornado/iostream.py`.
//!
//! Keeps the parent's invariants: *user callbacks never run while the
//! stream is borrowed, nor inside a call the user made*: every read
//! callback here is queued with `add_callback`, except a read met under
//! [`Delivery::ToCaller`], which is handed back to the event handler to run
//! once it has released the borrow ([`end_input`] calls nothing: it returns
//! its result to `try_read`'s caller); *the last bytes before a FIN are
//! answered* (`input_ended`); and a read failed on a limit closes the
//! stream only after its callback ran and the writes it made are flushed.

use super::close::{close_after_flush, close_inner};
use super::read_buffer::{consume, fail_read, read_to_buffer};
use super::read_find::{find_read, Found};
use super::{IOStream, ReadCompletion, ReadTarget, StreamError, StreamInner};

/// How [`handle_read`] hands over a read the new bytes met.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Delivery {
    /// Through the loop's callback queue (the caller is inside user code).
    Queued,
    /// Back to the caller, who runs it once the stream's borrow is released
    /// (the caller is the loop's event dispatch).
    ToCaller,
}

/// Readable: pull bytes in (on to EOF once the peer is known to have
/// closed, `StreamInner::peer_closed`), then see whether the pending read
/// is met. With [`Delivery::ToCaller`], a read met with data is returned instead of
/// queued; failures are always queued.
pub(super) fn handle_read(
    st: &mut StreamInner,
    delivery: Delivery,
) -> Option<(ReadCompletion, Vec<u8>)> {
    // Take the pending read out while reading (no clone of its delimiter),
    // and put it back before anything else can look at it.
    let read = st.read.take();
    let eof = read_to_buffer(st, read.as_ref().map(|(t, _)| t));
    st.read = read;
    let (met, delivered) = match try_satisfy_read(st, delivery) {
        ReadOutcome::Met(completion, data) => (Some((completion, data)), true),
        ReadOutcome::Queued => (None, true),
        ReadOutcome::Pending => (None, false),
    };
    if eof == Some(StreamError::Closed) && delivered {
        // A FIN right behind the bytes of the read just completed: close
        // after its callback, so that its answer goes out.
        end_input_after_this_read(st);
    } else if let Some(err) = eof {
        // A pending read_until_close gets what there is (close_pending_read).
        if !matches!(err, StreamError::Closed) {
            log::debug!("{:?}: read error: {err}", st.peer);
        }
        close_inner(st, err);
    }
    met
}

/// A read was just asked for: serve it from the buffer, or read the socket
/// now if the kernel may be holding bytes we have not picked up.
pub(super) fn try_inline_read(st: &mut StreamInner) {
    if !matches!(try_satisfy_read(st, Delivery::Queued), ReadOutcome::Pending) {
        return;
    }
    if st.closed.is_some() {
        close_pending_read(st);
        return;
    }
    if st.input_ended {
        // Nothing more will come: the read gets what there is or fails.
        close_pending_read(st);
        close_after_flush(st);
        return;
    }
    if st.readable_pending && !st.read_failed {
        handle_read(st, Delivery::Queued);
    }
}

/// The peer's EOF came with the bytes of a read being completed now: read
/// no more, and close on the next iteration (after the read's callback, and
/// once what it wrote is flushed) instead of now.
pub(super) fn end_input_after_this_read(st: &mut StreamInner) {
    st.input_ended = true;
    let me = st.me.clone();
    st.ioloop.add_callback(move || {
        if let Some(inner) = me.upgrade() {
            let mut st = inner.borrow_mut();
            if st.closed.is_none() {
                close_pending_read(&mut st);
                close_after_flush(&mut st);
            }
        }
    });
}

/// [`IOStream::try_read`] after the peer's EOF (`input_ended`) with a
/// target the buffer cannot meet: `read_until_close` gets what is left,
/// any other read fails with [`StreamError::Closed`]; the stream closes
/// once its writes are out.
pub(super) fn end_input(st: &mut StreamInner, target: &ReadTarget) -> Result<Vec<u8>, StreamError> {
    let result = if *target == ReadTarget::UntilClose {
        let n = st.read_buf.len() - st.read_pos;
        Ok(consume(st, n))
    } else {
        Err(StreamError::Closed)
    };
    close_after_flush(st);
    result
}

/// What [`try_satisfy_read`] did with the pending read.
pub(super) enum ReadOutcome {
    /// Not met yet (or no read pending): it stays.
    Pending,
    /// Done, its completion queued.
    Queued,
    /// Met, handed back for the caller to complete ([`Delivery::ToCaller`]).
    Met(ReadCompletion, Vec<u8>),
}

/// If the pending read is met (or can never be), take it. A met read is
/// queued, or handed back with [`Delivery::ToCaller`]; a failed one is
/// always queued.
pub(super) fn try_satisfy_read(st: &mut StreamInner, delivery: Delivery) -> ReadOutcome {
    let Some((target, cb)) = st.read.take() else {
        return ReadOutcome::Pending;
    };
    match find_read(st, &target) {
        Found::NotYet => {
            st.read = Some((target, cb));
            ReadOutcome::Pending
        }
        Found::Ready(n) => {
            let data = consume(st, n);
            if delivery == Delivery::ToCaller {
                return ReadOutcome::Met(cb, data);
            }
            st.ioloop.add_callback(move || cb.complete(Ok(data)));
            ReadOutcome::Queued
        }
        Found::Failed(err) => {
            {
                let err = fail_read(st, err);
                let ioloop = st.ioloop.clone();
                let weak = st.me.clone();
                ioloop.add_callback(move || {
                    cb.complete(Err(err));
                    // The callback had its chance to write a reply; now
                    // close once that reply is out.
                    if let Some(inner) = weak.upgrade() {
                        IOStream { inner }.close_when_flushed();
                    }
                });
            }
            ReadOutcome::Queued
        }
    }
}

/// Finish the pending read because the stream is closed: a
/// `read_until_close` gets what is buffered (the close is what it waited
/// for; Tornado's `close` does the same), any other read gets the error.
pub(super) fn close_pending_read(st: &mut StreamInner) {
    if let Some((target, cb)) = st.read.take() {
        let err = st.closed.clone().unwrap_or(StreamError::Closed);
        if target == ReadTarget::UntilClose && err == StreamError::Closed {
            let n = st.read_buf.len() - st.read_pos;
            let data = consume(st, n);
            st.ioloop.add_callback(move || cb.complete(Ok(data)));
        } else {
            st.ioloop.add_callback(move || cb.complete(Err(err)));
        }
    }
}
