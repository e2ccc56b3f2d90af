//! Sending the write buffer: at the end of the iteration
//! ([`schedule_flush`], through the loop's `EndOfIteration` hook), at once
//! when a lot is queued ([`flush_when_due`]), or on the writable edge; and
//! what one socket write's result does to the stream ([`after_write`]).
//!
//! Mirrors `_handle_write` and `write_to_fd` of Tornado's
//! `tornado/iostream.py`. Holding writes until the end of the iteration is
//! Redis's `beforeSleep`, not Tornado's: it sends everything one pass wrote
//! to a socket in one `writev`.
//!
//! Keeps the parent's *edge-triggered* invariant on the write side: write
//! until the buffer is empty or the socket says `WouldBlock`, then set
//! `write_blocked` and wait for the writable edge. Write callbacks whose
//! bytes are out are queued, never called here; a close or `shutdown_write`
//! that waits for an empty buffer happens here.

use std::cell::RefCell;
use std::io::{self, IoSlice};
use std::rc::Rc;

use super::close::{close_inner, shutdown_socket_write};
use super::{StreamError, StreamInner};
use crate::ioloop::EndOfIteration;

/// Once the write buffer holds this much, `write` flushes at once instead
/// of waiting for the end of the iteration (keeps big writes from piling up).
pub(super) const EAGER_FLUSH_BYTES: usize = 64 * 1024;

/// At most this many buffers go into one `writev`.
const MAX_IOVECS: usize = 64;

/// After queuing: write now if a lot is queued, else at the end of the
/// iteration (where the writes of one pass leave together).
pub(super) fn flush_when_due(st: &mut StreamInner) {
    if st.write_buf.len >= EAGER_FLUSH_BYTES {
        flush(st);
    } else {
        schedule_flush(st);
    }
}

/// Queue a flush for the end of this iteration (once).
fn schedule_flush(st: &mut StreamInner) {
    if st.flush_scheduled || st.write_blocked {
        return;
    }
    let Some(inner) = st.me.upgrade() else { return };
    st.flush_scheduled = true;
    // Holds the stream alive until the flush ran: bytes queued just before
    // the last handle was dropped still leave. (The stream's own `Rc`, not
    // a boxed closure: see `EndOfIteration`.)
    st.ioloop.add_end_of_iteration_rc(inner);
}

/// The flush [`schedule_flush`] queued.
impl EndOfIteration for RefCell<StreamInner> {
    fn end_of_iteration(self: Rc<Self>) {
        let mut st = self.borrow_mut();
        st.flush_scheduled = false;
        if st.closed.is_none() && !st.write_blocked {
            flush(&mut st);
        }
    }
}

/// Write `data` to the socket until done or it would block (then
/// `write_blocked` is set); a failure closes the stream. Returns the bytes
/// sent. The caller has checked that nothing is queued ahead.
pub(super) fn send_direct(st: &mut StreamInner, data: &[u8]) -> usize {
    let mut sent = 0;
    while sent < data.len() {
        let Some(socket) = st.socket.as_mut() else {
            break;
        };
        let result = socket.write(&data[sent..]);
        match after_write(st, result) {
            Wrote::Sent(n) => sent += n,
            Wrote::Again => {}
            Wrote::Stop => break,
        }
    }
    sent
}

/// What a socket write's result means for the stream.
enum Wrote {
    /// This many bytes went out.
    Sent(usize),
    /// Interrupted by a signal: try again.
    Again,
    /// Stop writing: the socket would block (`write_blocked` is now set) or
    /// failed (the stream is now closed).
    Stop,
}

/// Read a write's result: the one place that decides what `WouldBlock`, a
/// zero-byte write and an error do to the stream (for `flush` and
/// `send_direct` alike).
fn after_write(st: &mut StreamInner, result: io::Result<usize>) -> Wrote {
    match result {
        Ok(0) => {
            close_inner(
                st,
                StreamError::Io(io::ErrorKind::WriteZero, "write returned 0".into()),
            );
            Wrote::Stop
        }
        Ok(n) => Wrote::Sent(n),
        Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
            st.write_blocked = true;
            Wrote::Stop
        }
        Err(e) if e.kind() == io::ErrorKind::Interrupted => Wrote::Again,
        Err(e) => {
            log::debug!("{:?}: write error: {e}", st.peer);
            close_inner(st, e.into());
            Wrote::Stop
        }
    }
}

/// Write until the buffer is empty or the socket would block.
pub(super) fn flush(st: &mut StreamInner) {
    while st.write_buf.len > 0 {
        let Some(socket) = st.socket.as_mut() else {
            return;
        };
        let result = {
            let mut slices: [IoSlice<'_>; MAX_IOVECS] = [IoSlice::new(&[]); MAX_IOVECS];
            let mut count = 0;
            for (i, chunk) in st.write_buf.chunks.iter().take(MAX_IOVECS).enumerate() {
                let from = if i == 0 { st.write_buf.front_sent } else { 0 };
                slices[i] = IoSlice::new(&chunk.bytes()[from..]);
                count += 1;
            }
            socket.write_vectored(&slices[..count])
        };
        match after_write(st, result) {
            Wrote::Sent(n) => {
                st.write_buf.advance(n);
                st.total_sent += n as u64;
            }
            Wrote::Again => {}
            Wrote::Stop if st.closed.is_some() => return,
            Wrote::Stop => break,
        }
    }
    while let Some((index, _)) = st.write_callbacks.front() {
        if *index > st.total_sent {
            break;
        }
        if let Some((_, cb)) = st.write_callbacks.pop_front() {
            st.ioloop.add_callback(cb);
        }
    }
    if st.write_buf.len == 0 {
        // Like the read buffer: an idle connection keeps no buffer memory.
        st.write_buf.chunks.release_room();
        if st.shutdown_when_flushed {
            st.shutdown_when_flushed = false;
            shutdown_socket_write(st);
        }
        if st.close_when_flushed {
            close_inner(st, StreamError::Closed);
        }
    }
}
