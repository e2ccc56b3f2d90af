//! The write buffer of an [`IOStream`](super::IOStream): queued outgoing
//! bytes as a FIFO of chunks, the first partly sent.
//!
//! Mirrors Tornado's `_StreamBuffer` (`tornado/iostream.py`): small writes
//! are copied into the last chunk, big ones are queued as they are, so a
//! `writev` sends them together without copying the big ones. Two things
//! Tornado has no need for: chunks *shared* between streams (one broadcast
//! frame queued on 10 000 WebSockets by reference), and a queue whose first
//! chunk is stored inline, so a stream that has one thing to send at a time
//! (a response, a broadcast frame) never allocates a queue for it.

use std::collections::VecDeque;
use std::rc::Rc;

use super::flush::EAGER_FLUSH_BYTES;

/// Chunks smaller than this are copied into the previous chunk instead of
/// being queued on their own (Tornado's `_StreamBuffer` uses 2048).
const COALESCE_BYTES: usize = 2048;

/// Capacity of a chunk started for a small borrowed write: room for the
/// other small writes of the same pass (a batch of pipelined responses).
const NEW_CHUNK_BYTES: usize = 1024;

/// One queued piece of output.
pub(super) enum Chunk {
    /// This stream's own bytes; small writes are appended to the last one.
    Owned(Vec<u8>),
    /// Bytes shared with other streams (one broadcast frame queued on
    /// thousands of them): held by reference, never copied or appended to.
    Shared(Rc<[u8]>),
}

impl Chunk {
    /// The bytes to send.
    pub(super) fn bytes(&self) -> &[u8] {
        match self {
            Chunk::Owned(v) => v,
            Chunk::Shared(s) => s,
        }
    }
}

/// Queued outgoing bytes: a FIFO of chunks, the first partly sent.
#[derive(Default)]
pub(super) struct WriteBuffer {
    /// Chunks in order. Small writes are coalesced into the last chunk.
    pub(super) chunks: ChunkQueue,
    /// Bytes of the first chunk already sent.
    pub(super) front_sent: usize,
    /// Unsent bytes in total.
    pub(super) len: usize,
}

impl WriteBuffer {
    /// The last chunk, if small writes may still be appended to it: owned
    /// and under [`EAGER_FLUSH_BYTES`]. (Appending never disturbs
    /// `front_sent`, which counts from the chunk's start.)
    fn open_tail(&mut self) -> Option<&mut Vec<u8>> {
        match self.chunks.back_mut() {
            Some(Chunk::Owned(last)) if last.len() < EAGER_FLUSH_BYTES => Some(last),
            _ => None,
        }
    }

    /// Copy `data` onto the last chunk if it is small and that chunk is
    /// open (Tornado's coalescing); false if it needs a chunk of its own.
    fn coalesce(&mut self, data: &[u8]) -> bool {
        if data.len() >= COALESCE_BYTES {
            return false;
        }
        match self.open_tail() {
            Some(last) => {
                last.extend_from_slice(data);
                true
            }
            None => false,
        }
    }

    /// Queue owned bytes: small ones join the last chunk, others are
    /// queued as they are (no copy).
    pub(super) fn push(&mut self, data: Vec<u8>) {
        if data.is_empty() {
            return;
        }
        self.len += data.len();
        if !self.coalesce(&data) {
            self.chunks.push_back(Chunk::Owned(data));
        }
    }

    /// Queue bytes shared with other streams as a chunk of their own:
    /// no copy, whatever their size.
    pub(super) fn push_shared(&mut self, data: Rc<[u8]>) {
        if data.is_empty() {
            return;
        }
        self.len += data.len();
        self.chunks.push_back(Chunk::Shared(data));
    }

    /// Like [`push`](Self::push) for borrowed bytes: small ones are copied
    /// straight into the last chunk, so a response built in a scratch
    /// buffer costs no allocation of its own.
    pub(super) fn push_slice(&mut self, data: &[u8]) {
        if data.is_empty() {
            return;
        }
        self.len += data.len();
        if self.coalesce(data) {
            return;
        }
        // Room for the next few small writes of this pass (pipelined
        // responses) without growing.
        let mut chunk = Vec::with_capacity(data.len().max(NEW_CHUNK_BYTES));
        chunk.extend_from_slice(data);
        self.chunks.push_back(Chunk::Owned(chunk));
    }

    /// Let `fill` append to the last chunk (or to a new one when the last
    /// is full or there is none), as a small borrowed write would have been
    /// copied there. Returns how many bytes `fill` appended.
    ///
    /// Relies on `fill` only appending: bytes already queued are never
    /// touched (the first chunk may be partly sent).
    pub(super) fn append_with(&mut self, fill: impl FnOnce(&mut Vec<u8>)) -> usize {
        if self.open_tail().is_none() {
            self.chunks
                .push_back(Chunk::Owned(Vec::with_capacity(NEW_CHUNK_BYTES)));
        }
        let Some(last) = self.open_tail() else {
            return 0;
        };
        let before = last.len();
        fill(last);
        let added = last.len().saturating_sub(before);
        if last.is_empty() {
            self.chunks.pop_back();
        }
        self.len += added;
        added
    }

    /// Mark `n` bytes sent.
    pub(super) fn advance(&mut self, mut n: usize) {
        self.len -= n;
        while n > 0 {
            let Some(front) = self.chunks.front() else {
                return;
            };
            let left = front.bytes().len() - self.front_sent;
            if n >= left {
                n -= left;
                self.chunks.pop_front();
                self.front_sent = 0;
            } else {
                self.front_sent += n;
                n = 0;
            }
        }
    }
}

/// A FIFO of chunks whose oldest chunk lives inline.
///
/// A broadcast to 10 000 WebSockets queues one frame on each, and each is
/// sent at the end of the same iteration: with a plain `VecDeque` that was
/// a `malloc` and a `free` per member per broadcast just for the queue's
/// slots, on the slow path of the allocator (callgrind: a third of the
/// instructions of queuing a frame). Only a stream with two or more chunks
/// waiting (a slow reader, a body bigger than the coalescing limit) uses
/// `rest`.
///
/// Invariant: `first` is `None` only when `rest` is empty too.
#[derive(Default)]
pub(super) struct ChunkQueue {
    /// The oldest chunk (the one being sent).
    first: Option<Chunk>,
    /// The others, oldest first.
    rest: VecDeque<Chunk>,
}

impl ChunkQueue {
    /// How many chunks are queued.
    pub(super) fn len(&self) -> usize {
        usize::from(self.first.is_some()) + self.rest.len()
    }

    /// Queue `chunk` last.
    fn push_back(&mut self, chunk: Chunk) {
        if self.first.is_none() {
            self.first = Some(chunk);
        } else {
            self.rest.push_back(chunk);
        }
    }

    /// Take the oldest chunk out.
    fn pop_front(&mut self) -> Option<Chunk> {
        let front = self.first.take();
        self.first = self.rest.pop_front();
        front
    }

    /// Take the newest chunk out.
    fn pop_back(&mut self) -> Option<Chunk> {
        self.rest.pop_back().or_else(|| self.first.take())
    }

    /// The oldest chunk.
    fn front(&self) -> Option<&Chunk> {
        self.first.as_ref()
    }

    /// The newest chunk.
    fn back_mut(&mut self) -> Option<&mut Chunk> {
        match self.rest.back_mut() {
            Some(last) => Some(last),
            None => self.first.as_mut(),
        }
    }

    /// The chunks, oldest first.
    pub(super) fn iter(&self) -> impl Iterator<Item = &Chunk> {
        self.first.iter().chain(self.rest.iter())
    }

    /// Drop the room `rest` kept after it emptied: an idle connection keeps
    /// no buffer memory (the room costs ~100 bytes per connection; making
    /// it again for the next burst costs one small `malloc`).
    pub(super) fn release_room(&mut self) {
        if self.rest.is_empty() && self.rest.capacity() > 0 {
            self.rest = VecDeque::new();
        }
    }
}

/// For the tests: `queue[i]`, the `i`th oldest chunk.
#[cfg(test)]
impl std::ops::Index<usize> for ChunkQueue {
    type Output = Chunk;

    /// Panics past the end, like a slice.
    fn index(&self, i: usize) -> &Chunk {
        match (i, &self.first) {
            (0, Some(first)) => first,
            _ => &self.rest[i.wrapping_sub(1)],
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn write_buffer_shares_broadcast_bytes_and_never_appends_to_them() {
        let mut wb = WriteBuffer::default();
        wb.push_slice(b"head");
        let frame: Rc<[u8]> = Rc::from(&b"frame"[..]);
        wb.push_shared(Rc::clone(&frame));
        // Queued by reference: the stream holds the same bytes.
        assert_eq!(Rc::strong_count(&frame), 2);
        // A small write after it gets a chunk of its own.
        wb.push_slice(b"tail");
        wb.append_with(|out| out.extend_from_slice(b"+"));
        let chunks: Vec<&[u8]> = wb.chunks.iter().map(Chunk::bytes).collect();
        assert_eq!(chunks, vec![&b"head"[..], b"frame", b"tail+"]);
        assert_eq!(wb.len, 14);
        // Sending walks across the shared chunk and lets it go.
        wb.advance(6);
        assert_eq!((wb.front_sent, wb.chunks.len()), (2, 2));
        wb.advance(3);
        assert_eq!(Rc::strong_count(&frame), 1);
        assert_eq!(wb.chunks[0].bytes(), b"tail+");
    }

    #[test]
    fn write_buffer_append_with_builds_in_the_tail_chunk() {
        let mut wb = WriteBuffer::default();
        // Nothing appended: no empty chunk is left behind.
        assert_eq!(wb.append_with(|_| {}), 0);
        assert_eq!((wb.len, wb.chunks.len()), (0, 0));
        assert_eq!(wb.append_with(|out| out.extend_from_slice(b"head")), 4);
        wb.push_slice(b"+");
        assert_eq!(wb.append_with(|out| out.extend_from_slice(b"next")), 4);
        assert_eq!(wb.chunks.len(), 1);
        assert_eq!(wb.chunks[0].bytes(), b"head+next");
        // A full tail chunk is not appended to.
        wb.push(vec![b'x'; EAGER_FLUSH_BYTES]);
        wb.append_with(|out| out.push(b'y'));
        assert_eq!(wb.chunks.len(), 3);
        assert_eq!(wb.len, 9 + EAGER_FLUSH_BYTES + 1);
    }

    #[test]
    fn write_buffer_coalesces_small_writes_and_keeps_big_ones_apart() {
        let mut wb = WriteBuffer::default();
        wb.push(Vec::new());
        assert_eq!((wb.len, wb.chunks.len()), (0, 0));
        wb.push(b"ab".to_vec());
        wb.push(b"cd".to_vec());
        // Two small writes share a chunk.
        assert_eq!(wb.chunks.len(), 1);
        assert_eq!(wb.chunks[0].bytes(), b"abcd");
        // A big write gets its own chunk (no copy).
        wb.push(vec![b'x'; COALESCE_BYTES]);
        assert_eq!(wb.chunks.len(), 2);
        // A small write after a big one joins it while it is under the cap.
        wb.push(b"e".to_vec());
        assert_eq!(wb.chunks.len(), 2);
        assert_eq!(wb.len, 4 + COALESCE_BYTES + 1);
    }

    #[test]
    fn write_buffer_stops_coalescing_into_a_full_chunk() {
        let mut wb = WriteBuffer::default();
        wb.push(vec![b'x'; EAGER_FLUSH_BYTES]);
        wb.push(b"y".to_vec());
        assert_eq!(wb.chunks.len(), 2);
    }

    #[test]
    fn write_buffer_advance_walks_across_chunks() {
        let mut wb = WriteBuffer::default();
        wb.push(vec![1u8; COALESCE_BYTES]);
        wb.push(vec![2u8; COALESCE_BYTES]);
        wb.advance(10);
        assert_eq!((wb.front_sent, wb.chunks.len()), (10, 2));
        // Across the end of the first chunk into the second.
        wb.advance(COALESCE_BYTES);
        assert_eq!((wb.front_sent, wb.chunks.len()), (10, 1));
        assert_eq!(wb.len, COALESCE_BYTES - 10);
        // A small push appends to the partly sent front; front_sent holds.
        wb.push(b"z".to_vec());
        assert_eq!((wb.front_sent, wb.chunks.len()), (10, 1));
        wb.advance(COALESCE_BYTES - 10 + 1);
        assert_eq!((wb.len, wb.chunks.len(), wb.front_sent), (0, 0, 0));
    }

    #[test]
    fn chunk_queue_keeps_its_first_chunk_inline_and_its_order() {
        let owned = |b: &[u8]| Chunk::Owned(b.to_vec());
        let mut q = ChunkQueue::default();
        q.push_back(owned(b"a"));
        // One chunk: nothing allocated for the rest.
        assert_eq!((q.len(), q.rest.capacity()), (1, 0));
        q.push_back(owned(b"b"));
        q.push_back(owned(b"c"));
        let all: Vec<&[u8]> = q.iter().map(Chunk::bytes).collect();
        assert_eq!(all, vec![&b"a"[..], b"b", b"c"]);
        assert_eq!(q[2].bytes(), b"c");
        assert_eq!(
            q.pop_front().map(|c| c.bytes().to_vec()),
            Some(b"a".to_vec())
        );
        assert_eq!(q.front().map(Chunk::bytes), Some(&b"b"[..]));
        assert_eq!(
            q.pop_back().map(|c| c.bytes().to_vec()),
            Some(b"c".to_vec())
        );
        assert_eq!(
            q.pop_back().map(|c| c.bytes().to_vec()),
            Some(b"b".to_vec())
        );
        assert!(q.pop_front().is_none() && q.pop_back().is_none());
        assert_eq!(q.len(), 0);
        q.release_room();
        assert_eq!(q.rest.capacity(), 0);
        // Refilled after emptying: the first chunk is inline again.
        q.push_back(owned(b"d"));
        assert_eq!((q.len(), q.rest.len()), (1, 0));
        if let Some(Chunk::Owned(last)) = q.back_mut() {
            last.push(b'!');
        }
        assert_eq!(q[0].bytes(), b"d!");
    }
}
