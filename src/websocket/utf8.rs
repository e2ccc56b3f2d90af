//! Incremental UTF-8 validation for text messages that arrive in pieces.
//!
//! Tornado validates a text message only once it is complete
//! (`decode("utf-8")` in `WebSocketProtocol13._handle_message`); squall
//! checks every chunk as it arrives, so that a bad message fails on the
//! fragment where it goes wrong (Autobahn 6.4.x, "fail fast"):
//!
//! > When an endpoint is to interpret a byte stream as UTF-8 but finds that
//! > the byte stream is not, in fact, a valid UTF-8 stream, that endpoint
//! > MUST _Fail the WebSocket Connection_. (RFC 6455 §8.1)
//!
//! The work is done by `std::str::from_utf8`, which is exact about the
//! difference between "invalid" (`error_len()` is `Some`) and "valid so far
//! but cut short" (`error_len()` is `None`): overlong forms, surrogates
//! (U+D800-U+DFFF) and code points above U+10FFFF are all caught at the
//! first byte that makes them impossible.

/// Remembers how much of a growing buffer is known to be valid UTF-8, so
/// each byte is examined about once (at most 3 bytes of an unfinished code
/// point are looked at again when more arrive).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Utf8Validator {
    /// `buf[..valid_up_to]` is complete, valid UTF-8. Invariant: never more
    /// than the length of the buffer it was last given.
    valid_up_to: usize,
}

impl Utf8Validator {
    /// Check the bytes appended to `buf` since the last call. Returns false
    /// as soon as `buf` cannot be the start of valid UTF-8; a code point cut
    /// off at the end of `buf` is fine and is checked again next time.
    pub(crate) fn check(&mut self, buf: &[u8]) -> bool {
        let Some(new) = buf.get(self.valid_up_to..) else {
            return false;
        };
        match std::str::from_utf8(new) {
            Ok(_) => {
                self.valid_up_to = buf.len();
                true
            }
            Err(e) if e.error_len().is_none() => {
                self.valid_up_to += e.valid_up_to();
                true
            }
            Err(_) => false,
        }
    }

    /// Is all of `buf` (the complete message) valid, with no code point
    /// left unfinished?
    pub(crate) fn is_complete(&self, buf: &[u8]) -> bool {
        self.valid_up_to == buf.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Feed `bytes` cut at `cut`, return (both parts ok, complete at end).
    fn split_check(bytes: &[u8], cut: usize) -> (bool, bool) {
        let mut v = Utf8Validator::default();
        let ok1 = v.check(&bytes[..cut]);
        let ok2 = ok1 && v.check(bytes);
        (ok1 && ok2, v.is_complete(bytes))
    }

    #[test]
    fn valid_text_split_anywhere() {
        let text = "Hello-µ@ßöäüàá-UTF-8!! κόσμε \u{10FFFF} \u{FFFF} 🎉";
        let bytes = text.as_bytes();
        for cut in 0..=bytes.len() {
            assert_eq!(split_check(bytes, cut), (true, true), "cut at {cut}");
        }
    }

    #[test]
    fn truncated_code_point_is_incomplete_not_invalid() {
        let mut v = Utf8Validator::default();
        assert!(v.check(b"ok\xf0\x9f\x8e"));
        assert!(!v.is_complete(b"ok\xf0\x9f\x8e"));
    }

    #[test]
    fn invalid_sequences_fail_at_first_impossible_byte() {
        // (prefix that is still fine, the byte that makes it invalid)
        let cases: &[(&[u8], u8)] = &[
            (b"", 0x80),                 // lone continuation byte
            (b"", 0xC0),                 // never-valid lead byte (overlong)
            (b"", 0xFF),                 // never-valid byte
            (b"\xE0", 0x80),             // overlong 3-byte form
            (b"\xF0", 0x80),             // overlong 4-byte form
            (b"\xED", 0xA0),             // UTF-16 surrogate U+D800
            (b"\xF4", 0x90),             // above U+10FFFF
            (b"\xce\xba\xe1\xbd", 0x41), // κ then a cut-short code point
        ];
        for (prefix, bad) in cases {
            let mut v = Utf8Validator::default();
            let mut buf = b"abc".to_vec();
            buf.extend_from_slice(prefix);
            assert!(v.check(&buf), "prefix {prefix:x?} alone is valid so far");
            buf.push(*bad);
            assert!(!v.check(&buf), "{prefix:x?} + {bad:#x} must fail");
        }
    }
}
