//! Recycled response buffers.
//!
//! Every response builds a header map (two allocations: its text and its
//! field table) and a body buffer. On a busy keep-alive connection those
//! are three `malloc`/`free` pairs per request, for buffers of the same few
//! hundred bytes each time. A finished response gives them back, and the
//! next response takes them: cleared, with their capacity.
//!
//! The spares are the thread's shared pools, the same ones request heads
//! use (`iostream/spare.rs` for bytes, `httputil/headers.rs` for field
//! tables): bounded in count and in the size of what they keep, so one
//! huge response does not pin its memory. A response takes a spare only
//! when it first writes a header or a byte of body, so a response that
//! waits (a parked long-poll) holds nothing it did not use. (Tornado has
//! no equivalent: CPython's allocator recycles small objects.)

use crate::httputil::HTTPHeaders;
use crate::iostream::spare;

/// An empty header map, with room from an earlier response if one is spare.
pub(crate) fn take_headers() -> HTTPHeaders {
    HTTPHeaders::from_spares()
}

/// An empty body buffer, with room from an earlier response if one is spare.
pub(crate) fn take_body() -> Vec<u8> {
    spare::take()
}

/// A finished response's buffers, for the next one (dropped if too big or
/// if enough are spare already).
pub(crate) fn give_back(headers: HTTPHeaders, body: Option<Vec<u8>>) {
    headers.recycle();
    if let Some(body) = body {
        let _ = spare::give(body);
    }
}

/// Drop every spare: the memory trimmer calls this after a wave of closes,
/// with the loop's own `shrink_to_fit`.
pub(crate) fn release_all() {
    spare::release_all();
    crate::httputil::headers::release_spare_fields();
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The shared byte pool's bounds (see `iostream/spare.rs`).
    const MAX_SPARES: usize = 32;
    const MAX_BODY_CAPACITY: usize = 4 * 1024;
    const MAX_HEADER_TEXT: usize = 4 * 1024;

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
        release_all();
        for _ in 0..MAX_SPARES + 5 {
            give_back(HTTPHeaders::new(), Some(Vec::with_capacity(16)));
        }
        assert_eq!(spare::spare_count(), MAX_SPARES);
        release_all();
        assert_eq!(spare::spare_count(), 0);
    }
}
