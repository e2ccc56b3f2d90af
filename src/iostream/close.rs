//! Closing a stream: the close callback, `close`, `close_when_flushed`, the
//! half-close `shutdown_write`, and [`close_inner`], the one place a stream
//! stops being open.
//!
//! Mirrors `set_close_callback`, `close`, `_maybe_run_close_callback`,
//! `closed` and `error` of Tornado's `tornado/iostream.py`.
//!
//! Keeps the parent's invariants: the close callback is always queued, so
//! it runs after a read callback queued before it; *bytes are never lost*
//! (unread bytes stay readable after a close); and *dropping the last
//! handle closes the socket* (the `Drop` impl here), except after
//! `close_when_flushed`, where the stream holds itself (`keep_alive`) until
//! its bytes are out and [`close_inner`] breaks that cycle.

use std::net::Shutdown;

use super::read_deliver::{close_pending_read, try_satisfy_read, Delivery};
use super::write_buffer::WriteBuffer;
use super::{IOStream, Socket, StreamError, StreamInner};

impl IOStream {
    /// Run `callback` once, when the stream closes (by either side). Replaces
    /// an earlier one. If the stream is already closed it runs on the next
    /// iteration.
    pub fn set_close_callback(&self, callback: impl FnOnce() + 'static) {
        let mut st = self.inner.borrow_mut();
        if st.closed.is_some() {
            st.ioloop.add_callback(callback);
        } else {
            st.close_callback = Some(Box::new(callback));
        }
    }

    /// Remove the close callback without running it.
    pub fn clear_close_callback(&self) {
        let cb = self.inner.borrow_mut().close_callback.take();
        drop(cb);
    }

    /// Close now. Unsent bytes are dropped; a pending read gets
    /// [`StreamError::Closed`] (or its data, if the buffer already meets it;
    /// a `read_until_close` gets what is buffered). Unread bytes stay
    /// readable.
    pub fn close(&self) {
        let mut st = self.inner.borrow_mut();
        close_inner(&mut st, StreamError::Closed);
    }

    /// Close once every queued byte has been sent (or at once if none are).
    /// Until then the stream keeps itself alive, so the handles may be
    /// dropped right after this call without cutting the bytes short.
    pub fn close_when_flushed(&self) {
        let mut st = self.inner.borrow_mut();
        close_after_flush(&mut st);
    }

    /// True once closed.
    pub fn closed(&self) -> bool {
        self.inner.borrow().closed.is_some()
    }

    /// Why the stream closed (`None` while open).
    pub fn error(&self) -> Option<StreamError> {
        self.inner.borrow().closed.clone()
    }

    /// Shut down the write half (send FIN) once queued bytes are sent; used
    /// by clients that signal the end of a request by closing their side.
    pub fn shutdown_write(&self) {
        let mut st = self.inner.borrow_mut();
        if st.write_buf.len == 0 {
            shutdown_socket_write(&st);
        } else {
            st.shutdown_when_flushed = true;
        }
    }
}

impl Drop for StreamInner {
    fn drop(&mut self) {
        // Nobody holds the stream any more: release the socket and the slab
        // entry. Queued close callback runs if one was set.
        if self.closed.is_none() {
            close_inner(self, StreamError::Closed);
        }
    }
}

/// Close now if nothing is queued, else once the write buffer is empty
/// (the stream keeps itself alive until then).
pub(super) fn close_after_flush(st: &mut StreamInner) {
    if st.write_buf.len == 0 {
        close_inner(st, StreamError::Closed);
    } else {
        st.close_when_flushed = true;
        st.keep_alive = st.me.upgrade();
    }
}

/// Send FIN: no more bytes from us (the read half stays open).
pub(super) fn shutdown_socket_write(st: &StreamInner) {
    if let Some(Socket::Tcp(s)) = &st.socket {
        let _ = s.shutdown(Shutdown::Write);
    }
}

/// Close: release the socket and the loop's handler, fail the pending read
/// (after giving it buffered data if that satisfies it), drop unsent bytes
/// and their callbacks, and queue the close callback.
pub(super) fn close_inner(st: &mut StreamInner, why: StreamError) {
    if st.closed.is_some() {
        return;
    }
    // A read the buffer already satisfies gets its data first (Tornado).
    try_satisfy_read(st, Delivery::Queued);
    st.closed = Some(why);
    // Break the close_when_flushed self-reference. Never the last strong
    // reference here: whoever borrowed `st` holds one.
    let keep_alive = st.keep_alive.take();
    if let Some(mut socket) = st.socket.take() {
        let _ = st.ioloop.deregister(socket.source());
    }
    if let Some(token) = st.token.take() {
        st.ioloop.remove_handler(token);
    }
    close_pending_read(st);
    if let Some(cb) = st.connect_callback.take() {
        let err = st.closed.clone().unwrap_or(StreamError::Closed);
        st.ioloop.add_callback(move || cb(Err(err)));
    }
    st.write_buf = WriteBuffer::default();
    st.write_callbacks.clear();
    // Unconsumed bytes stay readable: the peer may send its last lines and
    // close at once, and a read asked for after that (say, in the callback
    // of the read before) must still get them. Tornado keeps its read
    // buffer on close too. They are freed with the stream.
    if st.read_pos == st.read_buf.len() {
        st.read_buf = Vec::new();
        st.read_pos = 0;
    }
    if let Some(cb) = st.close_callback.take() {
        st.ioloop.add_callback(cb);
    }
    drop(keep_alive);
}
