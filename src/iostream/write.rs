//! The write API of [`IOStream`]: queue bytes (`write`, `write_bytes`,
//! `write_shared`, `write_with`), send them now (`write_now`,
//! `flush_now`), and learn when they have left (`write_with_callback`,
//! `on_flushed`).
//!
//! Mirrors `write` and `writing` of Tornado's `tornado/iostream.py`. The
//! buffer itself is `write_buffer.rs` (Tornado's `_StreamBuffer`); sending
//! it is `flush.rs`.
//!
//! Keeps the parent's *everything is bounded* invariant for writes: a write
//! that would take the buffer past `max_write_buffer_size` closes the
//! stream with [`StreamError::WriteBufferFull`]. Relies on *user callbacks
//! never run inside a call the user made*: a write callback waits in
//! `write_callbacks` and is queued once its bytes are out, never called
//! from here.

use std::rc::Rc;

use super::close::close_inner;
use super::flush::{flush, flush_when_due, send_direct};
use super::{IOStream, StreamError, StreamInner, QUEUED_CHUNK_COST};

/// Bytes handed to [`IOStream::write_inner`]: a buffer to take over, or a
/// slice to copy.
enum Payload<'a> {
    Owned(Vec<u8>),
    Borrowed(&'a [u8]),
    Shared(Rc<[u8]>),
}

impl Payload<'_> {
    fn len(&self) -> usize {
        match self {
            Payload::Owned(v) => v.len(),
            Payload::Borrowed(s) => s.len(),
            Payload::Shared(s) => s.len(),
        }
    }
}

impl IOStream {
    /// Queue `data` for sending. Returns an error (and queues nothing) if the
    /// stream is closed; if the write buffer would exceed its cap the stream
    /// is closed with [`StreamError::WriteBufferFull`].
    pub fn write(&self, data: impl Into<Vec<u8>>) -> Result<(), StreamError> {
        self.write_inner(Payload::Owned(data.into()), None)
    }

    /// Like [`write`](Self::write) for bytes the caller keeps: they are
    /// copied into the write buffer (joining the bytes queued before them
    /// when small), with no allocation of a `Vec` for them alone. For
    /// protocol code that builds each message in a reused scratch buffer.
    pub fn write_bytes(&self, data: &[u8]) -> Result<(), StreamError> {
        self.write_inner(Payload::Borrowed(data), None)
    }

    /// Queue bytes shared with other streams (a broadcast frame) by
    /// reference: no copy and no buffer of this stream's own, however many
    /// streams queue the same bytes. Errors as for [`write`](Self::write).
    pub fn write_shared(&self, data: Rc<[u8]>) -> Result<(), StreamError> {
        self.write_inner(Payload::Shared(data), None)
    }

    /// Queue bytes built in place: `fill` appends them to the tail of the
    /// write buffer, where [`write_bytes`](Self::write_bytes) would have
    /// copied them, so a response head needs no scratch buffer and no copy.
    /// `fill` must only append, and runs while the stream is borrowed: it
    /// must not call this stream. For small writes (heads, small bodies);
    /// errors as for [`write`](Self::write), except that the write-buffer
    /// cap is checked after `fill` ran.
    pub fn write_with(&self, fill: impl FnOnce(&mut Vec<u8>)) -> Result<(), StreamError> {
        let mut st = self.inner.borrow_mut();
        if let Some(err) = &st.closed {
            return Err(err.clone());
        }
        let added = st.write_buf.append_with(fill);
        st.total_queued += added as u64;
        if st.write_buf.len > st.max_write_buffer_size {
            return Err(close_write_buffer_full(&mut st));
        }
        flush_when_due(&mut st);
        Ok(())
    }

    /// Send `data` now instead of at the end of the iteration. When nothing
    /// is queued ahead of it (the usual case for a response that is
    /// finished at once), the bytes go from `data` straight to the socket:
    /// no copy into the write buffer and no allocation. Whatever the kernel
    /// does not take is buffered and waits for the writable edge, as with
    /// [`write_bytes`](Self::write_bytes), whose errors this shares.
    pub fn write_now(&self, data: &[u8]) -> Result<(), StreamError> {
        let mut st = self.inner.borrow_mut();
        if let Some(err) = &st.closed {
            return Err(err.clone());
        }
        // Order: bytes queued earlier must leave first, and a connecting or
        // blocked socket cannot take any.
        if st.write_buf.len > 0 || st.write_blocked || data.len() > st.max_write_buffer_size {
            drop(st);
            self.write_inner(Payload::Borrowed(data), None)?;
            self.flush_now();
            return Ok(());
        }
        st.total_queued += data.len() as u64;
        let sent = send_direct(&mut st, data);
        st.total_sent += sent as u64;
        if sent < data.len() && st.closed.is_none() {
            // `write_blocked` is set: the writable edge flushes the rest.
            st.write_buf.push_slice(&data[sent..]);
        }
        Ok(())
    }

    /// Like [`write`](Self::write); `callback` runs once these bytes (and all
    /// before them) have been handed to the kernel. It does not run if the
    /// stream closes first.
    pub fn write_with_callback(
        &self,
        data: impl Into<Vec<u8>>,
        callback: impl FnOnce() + 'static,
    ) -> Result<(), StreamError> {
        self.write_inner(Payload::Owned(data.into()), Some(Box::new(callback)))
    }

    /// Run `callback` once every byte queued so far has been handed to the
    /// kernel (on the next iteration if none is queued). It does not run if
    /// the stream closes first. Backpressure for producers: the HTTP
    /// connection parses no more pipelined requests until a peer that is
    /// not reading has taken the answers already queued.
    pub fn on_flushed(&self, callback: impl FnOnce() + 'static) {
        let mut st = self.inner.borrow_mut();
        if st.closed.is_some() {
            return;
        }
        if st.write_buf.len == 0 {
            st.ioloop.add_callback(callback);
            return;
        }
        let index = st.total_queued;
        st.write_callbacks.push_back((index, Box::new(callback)));
    }

    fn write_inner(
        &self,
        data: Payload<'_>,
        callback: Option<Box<dyn FnOnce()>>,
    ) -> Result<(), StreamError> {
        let mut st = self.inner.borrow_mut();
        if let Some(err) = &st.closed {
            return Err(err.clone());
        }
        if st.write_buf.len + data.len() > st.max_write_buffer_size {
            return Err(close_write_buffer_full(&mut st));
        }
        st.total_queued += data.len() as u64;
        match data {
            Payload::Owned(data) => st.write_buf.push(data),
            Payload::Borrowed(data) => st.write_buf.push_slice(data),
            Payload::Shared(data) => st.write_buf.push_shared(data),
        }
        if let Some(cb) = callback {
            let index = st.total_queued;
            st.write_callbacks.push_back((index, cb));
        }
        flush_when_due(&mut st);
        Ok(())
    }

    /// Bytes queued and not yet sent.
    pub fn write_buffer_len(&self) -> usize {
        self.inner.borrow().write_buf.len
    }

    /// Memory the write buffer holds for the peer: the unsent bytes plus
    /// [`QUEUED_CHUNK_COST`] per queued chunk. A bound on what a peer that
    /// does not read may cost should check this, not
    /// [`write_buffer_len`](Self::write_buffer_len): shared chunks are
    /// queued one by one however small, so their slots can outweigh their
    /// bytes many times over.
    pub fn write_buffer_footprint(&self) -> usize {
        let st = self.inner.borrow();
        st.write_buf.len + st.write_buf.chunks.len() * QUEUED_CHUNK_COST
    }

    /// True while bytes are queued.
    pub fn writing(&self) -> bool {
        self.inner.borrow().write_buf.len > 0
    }

    /// Hand queued bytes to the kernel now instead of at the end of this
    /// loop iteration. For writes that know no more bytes for this stream
    /// are coming in this pass (a long-poll answer during a fan-out to
    /// thousands), so the first answers leave while the rest are built.
    pub fn flush_now(&self) {
        let mut st = self.inner.borrow_mut();
        if st.closed.is_none() && !st.write_blocked && st.write_buf.len > 0 {
            flush(&mut st);
        }
    }
}

/// The write buffer is over its cap: close the stream (a peer that does not
/// read must not grow it without bound) and say why.
fn close_write_buffer_full(st: &mut StreamInner) -> StreamError {
    let err = StreamError::WriteBufferFull {
        max_write_buffer_size: st.max_write_buffer_size,
    };
    log::warn!("closing {:?}: {err}", st.peer);
    close_inner(st, err.clone());
    err
}
