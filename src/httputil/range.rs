//! Single byte-range requests (RFC 9110 §14.1.2, the `Range` header) for
//! static files. Mirrors `_parse_request_range` in Tornado's `httputil.py`
//! together with the decisions `StaticFileHandler.get` makes from it in
//! `web.py`, so the caller only maps the answer to a status code.

/// What to answer to a `Range` header, for a representation of a known size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ByteRange {
    /// Send the whole representation with `200 OK`: there was no usable
    /// range (malformed, another unit, several ranges) or the range covers
    /// everything (`bytes=0-`: some players refuse a 206 for it).
    Whole,
    /// Send bytes `start..end` (end exclusive, `end > start`) with
    /// `206 Partial Content` and [`ByteRange::content_range`].
    Partial {
        /// First byte to send.
        start: u64,
        /// One past the last byte to send (at most the size).
        end: u64,
    },
    /// Answer `416 Range Not Satisfiable` with
    /// `Content-Range: bytes */<size>` ([`ByteRange::content_range`]).
    Unsatisfiable,
}

impl ByteRange {
    /// The `Content-Range` header value to send with this answer, if any:
    /// `bytes <first>-<last>/<size>` for a partial answer, `bytes */<size>`
    /// for an unsatisfiable one.
    pub fn content_range(&self, size: u64) -> Option<String> {
        match *self {
            ByteRange::Whole => None,
            ByteRange::Partial { start, end } => {
                Some(format!("bytes {start}-{}/{size}", end.saturating_sub(1)))
            }
            ByteRange::Unsatisfiable => Some(format!("bytes */{size}")),
        }
    }
}

/// Decides how to answer `Range: <header>` for a representation of `size`
/// bytes. Only one range is supported, as in Tornado:
///
/// ```text
/// ranges-specifier = range-unit "=" range-set   ; only "bytes", one range
/// int-range        = first-pos "-" [ last-pos ] ; "a-b", "a-"
/// suffix-range     = "-" suffix-length          ; "-n": the last n bytes
/// ```
///
/// Following Tornado: `last-pos` past the end is capped at the end; a first
/// position at or past the end, `last-pos < first-pos` (`bytes=5-2`) and
/// `bytes=-0` are [`ByteRange::Unsatisfiable`]; a suffix longer than the
/// file means the whole file; anything unparsable (including
/// `bytes=1-2,5-6`) is ignored, i.e. [`ByteRange::Whole`]. The unit is
/// matched case-insensitively and numbers are plain decimal digits.
///
/// ```
/// use squall::httputil::range::{parse_range, ByteRange};
/// assert_eq!(parse_range("bytes=0-9", 100), ByteRange::Partial { start: 0, end: 10 });
/// assert_eq!(parse_range("bytes=-10", 100), ByteRange::Partial { start: 90, end: 100 });
/// assert_eq!(parse_range("bytes=0-", 100), ByteRange::Whole);
/// assert_eq!(parse_range("bytes=100-", 100), ByteRange::Unsatisfiable);
/// ```
pub fn parse_range(header: &str, size: u64) -> ByteRange {
    let Some((unit, spec)) = header.split_once('=') else {
        return ByteRange::Whole;
    };
    if !unit.trim().eq_ignore_ascii_case("bytes") {
        return ByteRange::Whole;
    }
    let Some((first, last)) = spec.split_once('-') else {
        return ByteRange::Whole;
    };
    let (Ok(first), Ok(last)) = (parse_pos(first), parse_pos(last)) else {
        return ByteRange::Whole;
    };
    let (start, end) = match (first, last) {
        // "bytes=" / "bytes=-": nothing asked, Tornado serves everything.
        (None, None) => return ByteRange::Whole,
        (None, Some(0)) => return ByteRange::Unsatisfiable,
        (None, Some(suffix)) => (size.saturating_sub(suffix), size),
        (Some(first), None) => (first, size),
        (Some(first), Some(last)) => {
            if last < first {
                return ByteRange::Unsatisfiable;
            }
            (first, last.saturating_add(1).min(size))
        }
    };
    if start >= size {
        ByteRange::Unsatisfiable
    } else if start == 0 && end == size {
        ByteRange::Whole
    } else {
        ByteRange::Partial { start, end }
    }
}

/// An optional position: empty (after trimming) is `None`, digits are a
/// number (saturating, so an absurdly large one is simply "past the end"),
/// anything else is an error.
fn parse_pos(s: &str) -> Result<Option<u64>, ()> {
    let s = s.trim();
    if s.is_empty() {
        return Ok(None);
    }
    if !s.bytes().all(|b| b.is_ascii_digit()) {
        return Err(());
    }
    Ok(Some(s.bytes().fold(0u64, |n, d| {
        n.saturating_mul(10).saturating_add(u64::from(d - b'0'))
    })))
}

#[cfg(test)]
mod tests {
    use super::*;
    use ByteRange::*;

    #[test]
    fn satisfiable_ranges() {
        assert_eq!(parse_range("bytes=1-2", 10), Partial { start: 1, end: 3 });
        assert_eq!(parse_range("bytes=6-", 10), Partial { start: 6, end: 10 });
        assert_eq!(parse_range("bytes=-6", 10), Partial { start: 4, end: 10 });
        assert_eq!(parse_range("bytes=9-9", 10), Partial { start: 9, end: 10 });
        assert_eq!(
            parse_range(" Bytes = 2 - 3 ", 10),
            Partial { start: 2, end: 4 }
        );
    }

    #[test]
    fn whole_file_answers() {
        assert_eq!(parse_range("bytes=0-", 10), Whole);
        assert_eq!(parse_range("bytes=0-9", 10), Whole);
        assert_eq!(parse_range("bytes=-10", 10), Whole);
        assert_eq!(
            parse_range("bytes=-99", 10),
            Whole,
            "suffix longer than file"
        );
        assert_eq!(parse_range("bytes=0-99", 10), Whole, "end capped");
        assert_eq!(parse_range("bytes=", 10), Whole);
    }

    #[test]
    fn beyond_end_is_capped_or_unsatisfiable() {
        assert_eq!(parse_range("bytes=5-99", 10), Partial { start: 5, end: 10 });
        assert_eq!(parse_range("bytes=10-", 10), Unsatisfiable);
        assert_eq!(parse_range("bytes=10-20", 10), Unsatisfiable);
        assert_eq!(
            parse_range("bytes=99999999999999999999999-", 10),
            Unsatisfiable
        );
        assert_eq!(parse_range("bytes=0-", 0), Unsatisfiable);
        assert_eq!(
            parse_range("bytes=5-99999999999999999999999", 10),
            Partial { start: 5, end: 10 }
        );
    }

    #[test]
    fn unsatisfiable_specials() {
        assert_eq!(parse_range("bytes=-0", 10), Unsatisfiable);
        assert_eq!(parse_range("bytes=5-2", 10), Unsatisfiable);
    }

    #[test]
    fn malformed_is_ignored() {
        for header in [
            "",
            "bytes",
            "bytes=abc",
            "bytes=1",
            "bytes=1-2,6-10",
            "bytes=+1-2",
            "bytes=1--2",
            "bytes=0x1-2",
            "items=1-2",
            "bytes=\u{665}-",
        ] {
            assert_eq!(parse_range(header, 10), Whole, "{header:?}");
        }
    }

    #[test]
    fn content_range_values() {
        assert_eq!(
            Partial { start: 1, end: 3 }.content_range(10).as_deref(),
            Some("bytes 1-2/10")
        );
        assert_eq!(
            Unsatisfiable.content_range(10).as_deref(),
            Some("bytes */10")
        );
        assert_eq!(Whole.content_range(10), None);
    }
}
