//! Recycled response buffers.
//!
//! Every response builds a header map (two allocations: its text and its
//! field table) and a body buffer. On a busy keep-alive connection those
//! are three `malloc`/`free` pairs per request, for buffers of the same few
//! hundred bytes each time. A finished response gives them back here, and
//! the next response takes them: cleared, with their capacity.
//!
//! The spares are per thread (one loop per thread) and bounded twice: at
//! most [`MAX_SPARES`] of each kind, and only buffers under a size cap are
//! kept, so one huge response does not pin its memory. A response takes a
//! spare only when it first writes a header or a byte of body, so a
//! response that waits (a parked long-poll) holds nothing it did not use.
//! (Tornado has no equivalent: CPython's allocator recycles small objects.)

use std::cell::RefCell;

use crate::httputil::HTTPHeaders;

/// Most spares of each kind kept per thread. Synchronous handlers finish
/// before the next request starts, so one is the steady state; the rest
/// cover responses finished in a burst (a long-poll wake-up).
const MAX_SPARES: usize = 16;

/// A body buffer is kept only up to this capacity.
const MAX_BODY_CAPACITY: usize = 8 * 1024;

/// A header map is kept only up to this much text...
const MAX_HEADER_TEXT: usize = 1024;

/// ...and this many fields.
const MAX_HEADER_FIELDS: usize = 32;

#[derive(Default)]
struct Spares {
    headers: Vec<HTTPHeaders>,
    bodies: Vec<Vec<u8>>,
}

thread_local! {
    static SPARES: RefCell<Spares> = RefCell::new(Spares::default());
}

/// An empty header map, with room from an earlier response if one is spare.
pub(crate) fn take_headers() -> HTTPHeaders {
    SPARES
        .with(|s| s.borrow_mut().headers.pop())
        .unwrap_or_default()
}

/// An empty body buffer, with room from an earlier response if one is spare.
pub(crate) fn take_body() -> Vec<u8> {
    SPARES
        .with(|s| s.borrow_mut().bodies.pop())
        .unwrap_or_default()
}

/// A finished response's buffers, for the next one (dropped if too big or
/// if enough are spare already).
pub(crate) fn give_back(mut headers: HTTPHeaders, body: Option<Vec<u8>>) {
    SPARES.with(|s| {
        let mut spares = s.borrow_mut();
        if spares.headers.len() < MAX_SPARES
            && !headers.is_unallocated()
            && headers.clear_for_reuse(MAX_HEADER_TEXT, MAX_HEADER_FIELDS)
        {
            spares.headers.push(headers);
        }
        if let Some(mut body) = body {
            if spares.bodies.len() < MAX_SPARES
                && body.capacity() > 0
                && body.capacity() <= MAX_BODY_CAPACITY
            {
                body.clear();
                spares.bodies.push(body);
            }
        }
    });
}

/// Drop every spare: the memory trimmer calls this after a wave of closes,
/// with the loop's own `shrink_to_fit`.
pub(crate) fn release_all() {
    SPARES.with(|s| *s.borrow_mut() = Spares::default());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_given_back_map_comes_back_empty_with_its_room() {
        release_all();
        let mut headers = take_headers();
        assert!(headers.is_unallocated());
        headers.add("Content-Type", "text/plain");
        give_back(headers, Some(b"hello".to_vec()));
        let again = take_headers();
        assert!(!again.is_unallocated());
        assert_eq!(again.iter().count(), 0);
        let body = take_body();
        assert!(body.is_empty() && body.capacity() >= 5);
        // Nothing more is spare.
        assert!(take_headers().is_unallocated());
        assert_eq!(take_body().capacity(), 0);
    }

    #[test]
    fn big_buffers_and_extra_spares_are_dropped() {
        release_all();
        give_back(HTTPHeaders::new(), Some(vec![0; MAX_BODY_CAPACITY + 1]));
        assert_eq!(take_body().capacity(), 0);
        let mut big = HTTPHeaders::new();
        big.add("X-Big", "v".repeat(MAX_HEADER_TEXT));
        give_back(big, None);
        assert!(take_headers().is_unallocated());
        for _ in 0..MAX_SPARES + 5 {
            give_back(HTTPHeaders::new(), Some(Vec::with_capacity(16)));
        }
        let count = SPARES.with(|s| s.borrow().bodies.len());
        assert_eq!(count, MAX_SPARES);
        release_all();
    }
}
