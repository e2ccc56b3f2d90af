//! Percent-encoding (RFC 3986 §2.1) of URL components, and splitting of
//! `application/x-www-form-urlencoded` query strings.
//!
//! Mirrors `url_escape` / `url_unescape` in Tornado's `escape.py` (which wrap
//! Python's `urllib.parse.quote[_plus]` / `unquote[_plus]`) and
//! `parse_qs_bytes` in `httputil.py` (Python's `parse_qsl` with
//! `keep_blank_values=True`).

use std::borrow::Cow;

/// Percent-encodes `s` for use in a URL.
///
/// Unreserved characters (RFC 3986 §2.3, `ALPHA / DIGIT / "-" / "." / "_" /
/// "~"`) are kept. With `plus` (the form-encoding flavour, Tornado's default
/// `plus=True`) a space becomes `+` and `/` is escaped; without it a space
/// becomes `%20` and `/` is kept, so a path can be escaped whole.
///
/// ```
/// use squall::httputil::url_escape;
/// assert_eq!(url_escape("a b/c&d", true), "a+b%2Fc%26d");
/// assert_eq!(url_escape("a b/c&d", false), "a%20b/c%26d");
/// ```
pub fn url_escape(s: &str, plus: bool) -> String {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    let mut out = String::with_capacity(s.len());
    for &b in s.as_bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                out.push(char::from(b))
            }
            b'/' if !plus => out.push('/'),
            b' ' if plus => out.push('+'),
            _ => {
                out.push('%');
                out.push(char::from(HEX[usize::from(b >> 4)]));
                out.push(char::from(HEX[usize::from(b & 0x0f)]));
            }
        }
    }
    out
}

/// Decodes percent-escapes (`pct-encoded = "%" HEXDIG HEXDIG`).
///
/// With `plus_as_space`, `+` means a space first (form encoding), so `%2B`
/// still decodes to a literal `+`. An escape that is not followed by two hex
/// digits (`%`, `%4`, `%zz`) is kept literally, as Python does. The decoded
/// bytes are read as UTF-8; invalid sequences become U+FFFD.
///
/// Borrows the input when there is nothing to decode.
///
/// ```
/// use squall::httputil::url_unescape;
/// assert_eq!(url_unescape("a+b%20c%2B", true), "a b c+");
/// assert_eq!(url_unescape("100%zz", false), "100%zz");
/// ```
pub fn url_unescape<B: AsRef<[u8]> + ?Sized>(input: &B, plus_as_space: bool) -> Cow<'_, str> {
    let bytes = input.as_ref();
    if !bytes
        .iter()
        .any(|&b| b == b'%' || (plus_as_space && b == b'+'))
    {
        return String::from_utf8_lossy(bytes);
    }
    let out = percent_decode(bytes, plus_as_space);
    Cow::Owned(match String::from_utf8(out) {
        Ok(s) => s,
        Err(e) => String::from_utf8_lossy(e.as_bytes()).into_owned(),
    })
}

/// Splits a query string (or an `application/x-www-form-urlencoded` body)
/// into decoded `(name, value)` pairs, in order.
///
/// ```text
/// query = pair *( "&" pair )      ; only "&" separates (not ";")
/// pair  = name [ "=" value ]      ; "+" is a space, %XX escapes decoded
/// ```
///
/// Empty segments (`a=1&&b=2`) are skipped; a segment without `=` is a name
/// with an empty value and blank values are kept (Tornado parses with
/// `keep_blank_values=True`). Names and values are decoded with
/// [`url_unescape`]`(_, true)`.
///
/// ```
/// use squall::httputil::parse_query;
/// let pairs = parse_query("a=1&b=x+y&a=%32&flag");
/// assert_eq!(pairs[0], ("a".to_string(), "1".to_string()));
/// assert_eq!(pairs[1], ("b".to_string(), "x y".to_string()));
/// assert_eq!(pairs[2], ("a".to_string(), "2".to_string()));
/// assert_eq!(pairs[3], ("flag".to_string(), String::new()));
/// ```
pub fn parse_query<B: AsRef<[u8]> + ?Sized>(query: &B) -> Vec<(String, String)> {
    query
        .as_ref()
        .split(|&b| b == b'&')
        .filter(|segment| !segment.is_empty())
        .map(|segment| {
            let (name, value) = match segment.iter().position(|&b| b == b'=') {
                Some(eq) => (&segment[..eq], &segment[eq + 1..]),
                None => (segment, &b""[..]),
            };
            (
                url_unescape(name, true).into_owned(),
                url_unescape(value, true).into_owned(),
            )
        })
        .collect()
}

/// Decodes `%XX` escapes (and `+` when `plus_as_space`) into raw bytes;
/// a `%` not followed by two hex digits is kept literally.
pub(crate) fn percent_decode(bytes: &[u8], plus_as_space: bool) -> Vec<u8> {
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' => {
                let hi = bytes.get(i + 1).copied().and_then(hex_value);
                let lo = bytes.get(i + 2).copied().and_then(hex_value);
                if let (Some(hi), Some(lo)) = (hi, lo) {
                    out.push(hi << 4 | lo);
                    i += 3;
                    continue;
                }
                out.push(b'%');
            }
            b'+' if plus_as_space => out.push(b' '),
            b => out.push(b),
        }
        i += 1;
    }
    out
}

/// The value of one ASCII hex digit (`HEXDIG`, either case).
pub(crate) fn hex_value(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unescape_valid_escapes() {
        assert_eq!(url_unescape("%41%62%2f", false), "Ab/");
        assert_eq!(url_unescape("caf%C3%A9", false), "caf\u{e9}");
        assert_eq!(url_unescape(b"%00".as_slice(), false), "\0");
    }

    #[test]
    fn unescape_invalid_escapes_are_kept_literally() {
        assert_eq!(url_unescape("%", false), "%");
        assert_eq!(url_unescape("%4", false), "%4");
        assert_eq!(url_unescape("a%4", false), "a%4");
        assert_eq!(url_unescape("%zz", false), "%zz");
        assert_eq!(url_unescape("%4g%41", false), "%4gA");
        assert_eq!(url_unescape("%%41", false), "%A");
        assert_eq!(url_unescape("100%", true), "100%");
    }

    #[test]
    fn unescape_plus() {
        assert_eq!(url_unescape("a+b", true), "a b");
        assert_eq!(url_unescape("a+b", false), "a+b");
        assert_eq!(url_unescape("%2B+", true), "+ ");
    }

    #[test]
    fn unescape_invalid_utf8_is_lossy() {
        assert_eq!(url_unescape("%FF", false), "\u{fffd}");
        assert_eq!(url_unescape(b"a\xffb".as_slice(), false), "a\u{fffd}b");
        assert_eq!(url_unescape("%C3", false), "\u{fffd}");
    }

    #[test]
    fn unescape_borrows_when_nothing_to_do() {
        assert!(matches!(
            url_unescape("plain", true),
            Cow::Borrowed("plain")
        ));
        assert!(matches!(url_unescape("a+b", false), Cow::Borrowed(_)));
        assert!(matches!(url_unescape("a+b", true), Cow::Owned(_)));
    }

    #[test]
    fn escape_round_trips() {
        let s = "h\u{e9}llo w/rld?&=+%~._-";
        assert_eq!(url_unescape(&url_escape(s, true), true), s);
        assert_eq!(url_unescape(&url_escape(s, false), false), s);
        assert_eq!(url_escape("caf\u{e9}", true), "caf%C3%A9");
        assert_eq!(url_escape("~a-b_c.d", true), "~a-b_c.d");
        assert_eq!(url_escape("+", false), "%2B");
    }

    #[test]
    fn query_edge_cases() {
        let pairs = |q: &str| parse_query(q);
        assert!(pairs("").is_empty());
        assert!(pairs("&&&").is_empty());
        assert_eq!(pairs("=x"), [(String::new(), "x".to_string())]);
        assert_eq!(pairs("a="), [("a".to_string(), String::new())]);
        assert_eq!(pairs("a=b=c"), [("a".to_string(), "b=c".to_string())]);
        assert_eq!(pairs("a=1;b=2"), [("a".to_string(), "1;b=2".to_string())]);
        assert_eq!(
            pairs("a%26b=c%3Dd"),
            [("a&b".to_string(), "c=d".to_string())]
        );
        assert_eq!(pairs("x=%"), [("x".to_string(), "%".to_string())]);
    }
}
