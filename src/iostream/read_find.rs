//! Is the pending read met? [`find_read`] looks at the buffered bytes for
//! a [`ReadTarget`] and says where its result ends, that it can never be
//! met, or to wait; the byte scans under it go a word at a time.
//!
//! Mirrors `_find_read_pos` and `_check_max_bytes` of Tornado's
//! `tornado/iostream.py`; [`find_empty_line`] stands in for the regex of
//! `read_until_regex(b"\r?\n\r?\n")`.
//!
//! Looks only: nothing here consumes bytes or completes a read. It advances
//! `StreamInner::scan_from` (where to resume an `Until` scan, so a trickle
//! of bytes is not rescanned from the start) and keeps the parent's
//! *everything is bounded* invariant for reads: a target the limits can
//! never let through is [`Found::Failed`].

use super::{ReadTarget, StreamError, StreamInner};

/// What `find_read` concluded about the pending target.
pub(super) enum Found {
    /// The first `n` unconsumed bytes are the result.
    Ready(usize),
    /// Wait for more bytes.
    NotYet,
    /// The target can never be met.
    Failed(StreamError),
}

/// Is `target` met by the buffered bytes?
pub(super) fn find_read(st: &mut StreamInner, target: &ReadTarget) -> Found {
    let avail = st.read_buf.len() - st.read_pos;
    match target {
        ReadTarget::Bytes { n, partial } => {
            if avail >= *n || (*partial && avail > 0) {
                Found::Ready(avail.min(*n))
            } else if *n > st.max_buffer_size {
                Found::Failed(StreamError::BufferFull {
                    max_buffer_size: st.max_buffer_size,
                })
            } else {
                Found::NotYet
            }
        }
        ReadTarget::Until {
            delimiter,
            max_bytes,
        } => scan_until(st, *max_bytes, delimiter.len(), |data| {
            find_subslice(data, delimiter).map(|i| i + delimiter.len())
        }),
        // The match ends at most 3 bytes after the LF it starts from.
        ReadTarget::UntilEmptyLine { max_bytes } => scan_until(st, *max_bytes, 3, find_empty_line),
        ReadTarget::UntilClose => {
            if avail >= st.max_buffer_size {
                Found::Failed(StreamError::BufferFull {
                    max_buffer_size: st.max_buffer_size,
                })
            } else {
                Found::NotYet
            }
        }
    }
}

/// The `Until`-style scan shared by [`ReadTarget::Until`] and
/// [`ReadTarget::UntilEmptyLine`]: `find` returns where the first match in
/// its slice *ends*; `span` is the longest a match can be, so a rescan
/// starts early enough to catch a match straddling the old end.
fn scan_until(
    st: &mut StreamInner,
    max_bytes: Option<usize>,
    span: usize,
    find: impl Fn(&[u8]) -> Option<usize>,
) -> Found {
    let data = &st.read_buf[st.read_pos..];
    if data.is_empty() && max_bytes.is_none_or(|max| max > 0) {
        // Nothing buffered (a read being set up): nothing to scan.
        return Found::NotYet;
    }
    // Resume where the last scan stopped.
    let from = st.scan_from.saturating_sub(span.saturating_sub(1));
    if let Some(end) = find(&data[from.min(data.len())..]) {
        let end = from + end;
        if let Some(max) = max_bytes {
            if end > max {
                return Found::Failed(StreamError::Unsatisfiable { max_bytes: max });
            }
        }
        return Found::Ready(end);
    }
    st.scan_from = data.len();
    if let Some(max) = max_bytes {
        if data.len() >= max {
            return Found::Failed(StreamError::Unsatisfiable { max_bytes: max });
        }
    }
    if data.len() >= st.max_buffer_size {
        return Found::Failed(StreamError::BufferFull {
            max_buffer_size: st.max_buffer_size,
        });
    }
    Found::NotYet
}

/// Where the first `\r?\n\r?\n` in `hay` ends (one past its last LF).
/// Each LF is a candidate: the line after it is empty if it is `\n` or
/// `\r\n`. (The optional CR before the first LF needs no check: the match
/// ends at the second LF either way.)
fn find_empty_line(hay: &[u8]) -> Option<usize> {
    let mut i = 0;
    while let Some(p) = find_byte(&hay[i..], b'\n') {
        let lf = i + p;
        match hay.get(lf + 1..) {
            Some([b'\n', ..]) => return Some(lf + 2),
            Some([b'\r', b'\n', ..]) => return Some(lf + 3),
            _ => i = lf + 1,
        }
    }
    None
}

/// First index of `needle` in `hay`.
fn find_subslice(hay: &[u8], needle: &[u8]) -> Option<usize> {
    match needle.len() {
        0 => Some(0),
        1 => find_byte(hay, needle[0]),
        n => {
            let first = needle[0];
            let mut i = 0;
            while i + n <= hay.len() {
                match find_byte(&hay[i..=hay.len() - n], first) {
                    None => return None,
                    Some(p) => {
                        i += p;
                        // The first byte matched; the rest of a delimiter is
                        // a few bytes, compared in line (no memcmp call).
                        if hay[i + 1..i + n].iter().eq(&needle[1..]) {
                            return Some(i);
                        }
                        i += 1;
                    }
                }
            }
            None
        }
    }
}

/// First index of `byte` in `hay`, eight bytes per step.
///
/// Every request head is scanned for its `\r\n\r\n` this way, so the
/// scan is word-at-a-time: XOR a word with `byte` in every lane, and a lane
/// that became zero is a match. `(x - 0x01..01) & !x & 0x80..80` sets the
/// top bit of zero lanes; a borrow can also flag a lane *above* a true zero
/// one, never below it, so the lowest flag (little-endian: the first byte)
/// is always a real match.
fn find_byte(hay: &[u8], byte: u8) -> Option<usize> {
    const LANES_LOW: u64 = 0x0101_0101_0101_0101;
    const LANES_HIGH: u64 = 0x8080_8080_8080_8080;
    let pattern = LANES_LOW * u64::from(byte);
    let mut words = hay.chunks_exact(8);
    let mut base = 0;
    for word in &mut words {
        let mut lanes = [0u8; 8];
        lanes.copy_from_slice(word);
        let x = u64::from_le_bytes(lanes) ^ pattern;
        let zero_lanes = x.wrapping_sub(LANES_LOW) & !x & LANES_HIGH;
        if zero_lanes != 0 {
            return Some(base + (zero_lanes.trailing_zeros() / 8) as usize);
        }
        base += 8;
    }
    words
        .remainder()
        .iter()
        .position(|&b| b == byte)
        .map(|p| base + p)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn find_byte_agrees_with_a_plain_scan() {
        // Every position in and around a word boundary, with decoys of
        // neighbouring values (a borrow from 0x00 lanes, 0x80 lanes) before
        // and after the match.
        for len in 0..40 {
            for at in 0..=len {
                for filler in [0u8, b'a', 0x80, 0xff, b'\n' + 1, b'\n' - 1] {
                    let mut hay = vec![filler; len];
                    if at < len {
                        hay[at] = b'\n';
                        if at + 1 < len {
                            hay[at + 1] = b'\n';
                        }
                    }
                    let plain = hay.iter().position(|&b| b == b'\n');
                    assert_eq!(find_byte(&hay, b'\n'), plain, "len {len} at {at}");
                }
            }
        }
        assert_eq!(find_byte(b"\x00\x01\x00", 0), Some(0));
        assert_eq!(
            find_byte(b"\x01\x01\x01\x01\x01\x01\x01\x01\x00", 0),
            Some(8)
        );
    }

    #[test]
    fn find_empty_line_accepts_crlf_and_bare_lf() {
        assert_eq!(find_empty_line(b"a\r\n\r\n"), Some(5));
        assert_eq!(find_empty_line(b"a\n\n"), Some(3));
        assert_eq!(find_empty_line(b"a\n\r\nb"), Some(4));
        assert_eq!(find_empty_line(b"a\r\n\nb"), Some(4));
        // An LF at the very end might still be followed by the rest.
        assert_eq!(find_empty_line(b"a\r\nb\r\n"), None);
        assert_eq!(find_empty_line(b"a\r\n\r"), None);
        // A lone CR is not a line end.
        assert_eq!(find_empty_line(b"a\r\r\n"), None);
        assert_eq!(find_empty_line(b""), None);
    }

    #[test]
    fn find_subslice_finds_the_first_match() {
        assert_eq!(find_subslice(b"abc", b""), Some(0));
        assert_eq!(find_subslice(b"", b"a"), None);
        assert_eq!(find_subslice(b"abc", b"c"), Some(2));
        assert_eq!(find_subslice(b"a\r\n\r\n", b"\r\n\r\n"), Some(1));
        // A false start right before the real match.
        assert_eq!(find_subslice(b"\r\n\r\r\n\r\n", b"\r\n\r\n"), Some(3));
        assert_eq!(find_subslice(b"\r\n\r", b"\r\n\r\n"), None);
        assert_eq!(find_subslice(b"abab", b"abab"), Some(0));
        assert_eq!(find_subslice(b"aab", b"ab"), Some(1));
        assert_eq!(find_subslice(b"ab", b"abc"), None);
    }
}
