//! Spare buffers, per thread: [`SparePool`], and the pool of byte buffers
//! that reads hand out.
//!
//! A completed `read_until` / `read_bytes` gives its caller a fresh
//! `Vec<u8>`. On a keep-alive connection that is one `malloc` per request
//! for a request head of the same hundred-odd bytes each time, freed again
//! when the request is done; a response's header map and body are the
//! same story. Finished requests and responses give their byte buffers
//! back here ([`give`]), and the next read, header map or body that needs
//! one takes it ([`take`]): cleared, with its capacity. (Header maps'
//! field tables have the twin pool in `httputil/headers.rs`;
//! `web/recycle.rs` is the response side's use of both.)
//!
//! Bounded twice, so a pool never holds memory worth speaking of: at most
//! `max_spares` buffers, each of at most `max_capacity` elements (a larger
//! one is freed). Per thread because each loop runs on one thread; no
//! locking. (Tornado has no equivalent: CPython's allocator recycles small
//! objects.)

use std::cell::RefCell;

/// A bounded stack of empty `Vec<T>`s kept for their capacity. Meant to
/// live in a `thread_local!`.
pub(crate) struct SparePool<T> {
    /// The spares, each cleared.
    items: RefCell<Vec<Vec<T>>>,
    /// Most spares kept: one is the steady state of a synchronous
    /// handler; the rest cover requests finished in a burst.
    max_spares: usize,
    /// Largest capacity kept.
    max_capacity: usize,
}

impl<T> SparePool<T> {
    /// An empty pool with these bounds.
    pub(crate) const fn new(max_spares: usize, max_capacity: usize) -> SparePool<T> {
        SparePool {
            items: RefCell::new(Vec::new()),
            max_spares,
            max_capacity,
        }
    }

    /// An empty `Vec`, with capacity from an earlier owner if one is spare.
    pub(crate) fn take(&self) -> Vec<T> {
        self.items.borrow_mut().pop().unwrap_or_default()
    }

    /// Drop every spare (the memory trimmer, after a wave of closes).
    pub(crate) fn clear(&self) {
        *self.items.borrow_mut() = Vec::new();
    }

    /// How many spares are kept now.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.items.borrow().len()
    }

    /// A `Vec` its owner is done with: kept if small and the pool is not
    /// full (true), else freed (false).
    pub(crate) fn give(&self, mut spare: Vec<T>) -> bool {
        if spare.capacity() == 0 || spare.capacity() > self.max_capacity {
            return false;
        }
        spare.clear();
        let mut items = self.items.borrow_mut();
        if items.len() >= self.max_spares {
            return false;
        }
        items.push(spare);
        true
    }
}

thread_local! {
    /// Byte buffers: at most 32 (request heads, response header texts and
    /// bodies share them), of at most 4 KiB (a typical request head fits
    /// many times over).
    static BYTES: SparePool<u8> = const { SparePool::new(32, 4 * 1024) };
}

/// An empty byte buffer, with capacity from an earlier request if spare.
pub(crate) fn take() -> Vec<u8> {
    // `try_with`: a read can still run while the thread's locals are torn
    // down (a stream dropped at thread exit); then there is no pool.
    BYTES.try_with(SparePool::take).unwrap_or_default()
}

/// A byte buffer its owner is done with (see [`SparePool::give`]): true
/// if it was kept.
pub(crate) fn give(buf: Vec<u8>) -> bool {
    BYTES.try_with(|pool| pool.give(buf)).unwrap_or(false)
}

/// Drop every spare byte buffer of this thread.
pub(crate) fn release_all() {
    let _ = BYTES.try_with(SparePool::clear);
}

/// How many byte buffers this thread keeps (for tests).
#[cfg(test)]
pub(crate) fn spare_count() -> usize {
    BYTES.try_with(SparePool::len).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounded_in_count_and_size() {
        let pool = SparePool::<u8>::new(3, 100);
        for _ in 0..5 {
            pool.give(Vec::with_capacity(50));
        }
        pool.give(Vec::with_capacity(101));
        pool.give(Vec::new());
        let mut kept = 0;
        loop {
            let buf = pool.take();
            if buf.capacity() == 0 {
                break;
            }
            assert!(buf.is_empty() && buf.capacity() <= 100);
            kept += 1;
        }
        assert_eq!(kept, 3);
    }

    #[test]
    fn a_given_buffer_comes_back_cleared() {
        let pool = SparePool::<u8>::new(1, 100);
        let mut buf = Vec::with_capacity(64);
        buf.extend_from_slice(b"GET / HTTP/1.1\r\n\r\n");
        pool.give(buf);
        let again = pool.take();
        assert!(again.is_empty());
        assert!(again.capacity() >= 64);
    }
}
