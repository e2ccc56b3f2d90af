//! Spare byte buffers for what reads hand out, per thread.
//!
//! A completed `read_until` / `read_bytes` gives its caller a fresh
//! `Vec<u8>`. On a keep-alive connection that is one `malloc` per request
//! for a request head of the same hundred-odd bytes each time, freed again
//! when the request is done. The HTTP layer gives a finished request's
//! head back here ([`give`]), and the next read that needs a buffer takes
//! it ([`take`]): cleared, with its capacity.
//!
//! Bounded twice, so the pool never holds memory worth speaking of: at
//! most [`MAX_SPARES`] buffers, each at most [`MAX_CAPACITY`] bytes (a
//! larger one is freed). Per thread because each loop runs on one thread;
//! no locking. (Tornado has no equivalent: CPython's allocator recycles
//! small objects.) The response side has its own spares in
//! `web/recycle.rs`.

use std::cell::RefCell;

/// Most buffers kept. One is the steady state of a synchronous handler;
/// the rest cover requests finished in a burst.
const MAX_SPARES: usize = 16;

/// Largest capacity kept: a typical request head fits many times over.
const MAX_CAPACITY: usize = 4 * 1024;

thread_local! {
    static SPARES: RefCell<Vec<Vec<u8>>> = const { RefCell::new(Vec::new()) };
}

/// An empty buffer, with capacity from an earlier request if one is spare.
pub(crate) fn take() -> Vec<u8> {
    // `try_with`: a read can still run while the thread's locals are torn
    // down (a stream dropped at thread exit); then there is no pool.
    SPARES
        .try_with(|s| s.borrow_mut().pop())
        .ok()
        .flatten()
        .unwrap_or_default()
}

/// A buffer its owner is done with (kept if it is small and the pool is
/// not full, else freed).
pub(crate) fn give(mut buf: Vec<u8>) {
    if buf.capacity() == 0 || buf.capacity() > MAX_CAPACITY {
        return;
    }
    buf.clear();
    let _ = SPARES.try_with(|s| {
        let mut spares = s.borrow_mut();
        if spares.len() < MAX_SPARES {
            spares.push(buf);
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounded_in_count_and_size() {
        for _ in 0..(MAX_SPARES + 5) {
            give(Vec::with_capacity(100));
        }
        give(Vec::with_capacity(MAX_CAPACITY + 1));
        let mut kept = 0;
        loop {
            let buf = take();
            if buf.capacity() == 0 {
                break;
            }
            assert!(buf.is_empty() && buf.capacity() <= MAX_CAPACITY);
            kept += 1;
        }
        assert_eq!(kept, MAX_SPARES);
    }
}
