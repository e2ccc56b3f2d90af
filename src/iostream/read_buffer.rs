//! The read buffer's two ends: bytes come in from the socket
//! ([`read_to_buffer`]) and go out to a completed read ([`consume`]), or
//! are dropped when a read fails on a limit ([`fail_read`]).
//!
//! Mirrors `_read_to_buffer_loop`, `_read_to_buffer` and `_consume` of
//! Tornado's `tornado/iostream.py`.
//!
//! Keeps the parent's *edge-triggered* invariant on the read side:
//! [`read_to_buffer`] reads until the kernel is drained (a short read or
//! `WouldBlock`; on to EOF once `peer_closed`), and when it stops early for
//! backpressure it sets `readable_pending`, since no edge will come to say
//! the kernel holds more. Keeps *everything is bounded*: the buffer never
//! grows past `max_buffer_size`. And an idle stream holds (almost) no
//! buffer memory: an emptied buffer keeps at most [`KEEP_READ_CAPACITY`]
//! bytes of room.

use std::cell::RefCell;
use std::io;

use super::read_find::{find_read, Found};
use super::{spare, ReadTarget, StreamError, StreamInner, READ_CHUNK_SIZE};

/// A read buffer that emptied keeps its allocation only if at most this big,
/// so idle connections hold (almost) no buffer memory.
const KEEP_READ_CAPACITY: usize = 4 * 1024;

/// Take the first `n` unconsumed bytes out of the read buffer.
pub(super) fn consume(st: &mut StreamInner, n: usize) -> Vec<u8> {
    st.scan_from = 0;
    let start = st.read_pos;
    if start == 0 && n == st.read_buf.len() {
        // The whole buffer is the answer: hand the allocation over.
        return std::mem::take(&mut st.read_buf);
    }
    let mut out = spare::take();
    out.extend_from_slice(&st.read_buf[start..start + n]);
    st.read_pos += n;
    if st.read_pos == st.read_buf.len() {
        st.read_pos = 0;
        st.read_buf.clear();
        if st.read_buf.capacity() > KEEP_READ_CAPACITY {
            st.read_buf = Vec::new();
        }
    } else if st.read_pos > st.read_buf.len() / 2 {
        // Compact so the buffer does not creep forward forever.
        st.read_buf.drain(..st.read_pos);
        st.read_pos = 0;
    }
    out
}

/// A read failed on a limit: reading is over for this stream. Drop what was
/// buffered, and close once the failed read's callback ran (see the caller)
/// and writes flushed.
pub(super) fn fail_read(st: &mut StreamInner, err: StreamError) -> StreamError {
    log::info!("{:?}: {err}", st.peer);
    st.read_failed = true;
    st.read_buf = Vec::new();
    st.read_pos = 0;
    err
}

/// Read from the socket into the buffer until `WouldBlock` or a limit.
///
/// Returns `Some(error)` when the peer closed (EOF: [`StreamError::Closed`])
/// or the socket failed; the caller decides how to finish.
///
/// Backpressure: we stop early once the buffer reaches `max_buffer_size`, or
/// once a whole chunk (`READ_CHUNK_SIZE`) or more is buffered and `target`
/// is met (or no read is pending at all). Then `readable_pending` records that the
/// kernel may hold more, because edge-triggered polling will not say so again.
/// Once the peer has closed (`peer_closed`) only `max_buffer_size` stops
/// us, and with no read pending even that ends the stream: the peer's FIN
/// must be seen, or a stream that nobody reads just now (an HTTP
/// connection answering a parked request) would never learn its peer left.
///
/// A read that returns fewer bytes than asked for emptied the kernel's
/// buffer, so we stop there instead of paying one more `read` just to see
/// `WouldBlock`: with edge-triggered polling, bytes that arrive later raise
/// a new event (nginx does the same). The exception is a peer known to
/// have closed (`StreamInner::peer_closed`, from this event or an earlier
/// one): the FIN is already queued behind the data and will not raise
/// another event, so then we read on until EOF.
pub(super) fn read_to_buffer(
    st: &mut StreamInner,
    target: Option<&ReadTarget>,
) -> Option<StreamError> {
    thread_local! {
        /// One read buffer per thread: the kernel copies into it, and only the
        /// bytes actually received are appended to the stream's own buffer,
        /// so an idle stream owns no 64 KiB chunk.
        static SCRATCH: RefCell<Vec<u8>> = RefCell::new(vec![0; READ_CHUNK_SIZE]);
    }
    SCRATCH.with(|scratch| {
        let mut scratch = scratch.borrow_mut();
        loop {
            let buffered = st.read_buf.len() - st.read_pos;
            if buffered >= st.max_buffer_size {
                st.readable_pending = true;
                if st.peer_closed && target.is_none() {
                    // Full, nobody reading, and the peer is gone or has
                    // half-closed: no event will come again, and the EOF
                    // sits behind bytes we will not take. Close as if it
                    // had been read (see below); the buffer stays readable.
                    return Some(StreamError::Closed);
                }
                return None;
            }
            // (Size first: the search only matters with a chunk buffered.)
            // Not once the peer closed: then the rest in the kernel is
            // finite and the EOF behind it is the only news that the peer
            // is gone. Stopping here left a parked request whose client
            // sent 64 KiB more and hung up holding its descriptor until the
            // request was answered, perhaps never (a long-poll).
            if buffered >= READ_CHUNK_SIZE
                && !st.peer_closed
                && target.is_none_or(|t| matches!(find_read(st, t), Found::Ready(_)))
            {
                st.readable_pending = true;
                return None;
            }
            let want = READ_CHUNK_SIZE.min(st.max_buffer_size - buffered);
            let Some(socket) = st.socket.as_mut() else {
                return Some(StreamError::Closed);
            };
            match socket.read(&mut scratch[..want]) {
                Ok(0) => {
                    st.readable_pending = false;
                    return Some(StreamError::Closed);
                }
                Ok(n) => {
                    if st.read_buf.capacity() == 0 {
                        // Handed over whole by the last `consume`.
                        st.read_buf = spare::take();
                    }
                    st.read_buf.extend_from_slice(&scratch[..n]);
                    if n < want && !st.peer_closed {
                        st.readable_pending = false;
                        return None;
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    st.readable_pending = false;
                    return None;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    st.readable_pending = false;
                    return Some(e.into());
                }
            }
        }
    })
}
