//! Parsing of header values that carry `; name=value` parameters, such as
//! `Content-Type: multipart/form-data; boundary="x"` and
//! `Content-Disposition: form-data; name="f"; filename="a.txt"`.
//! Mirrors `_parse_header` in Tornado's `httputil.py`, in one linear pass
//! (Python's `_parseparam` re-counts quotes from the start of the line for
//! every `;`, which is quadratic).

use super::url::{percent_decode, url_unescape};

/// A header value split into its main value and its parameters.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ParsedHeader {
    /// The part before the first `;`, trimmed (e.g. `form-data`,
    /// `text/html`). Case is kept; compare with `eq_ignore_ascii_case`.
    pub value: String,
    /// The parameters in order, names lower-cased, values unquoted. A name
    /// given twice keeps the last value.
    pub params: Vec<(String, String)>,
}

impl ParsedHeader {
    /// The value of parameter `name` (ASCII case-insensitive), if present.
    pub fn param(&self, name: &str) -> Option<&str> {
        self.params
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    fn insert(&mut self, name: String, value: String) {
        match self.params.iter_mut().find(|(n, _)| *n == name) {
            Some(slot) => slot.1 = value,
            None => self.params.push((name, value)),
        }
    }
}

/// Splits `line` into its main value and parameters (RFC 9110 §5.6.6):
///
/// ```text
/// parameters      = *( OWS ";" OWS [ parameter ] )
/// parameter       = parameter-name "=" parameter-value
/// parameter-value = ( token / quoted-string )
/// quoted-string   = DQUOTE *( qdtext / quoted-pair ) DQUOTE
/// quoted-pair     = "\" ( HTAB / SP / VCHAR / obs-text )
/// ```
///
/// Parsing is lenient, like Tornado's: a segment without `=` is skipped, a
/// `;` inside a quoted string does not split. A parameter in the RFC 8187
/// extended form (`filename*=UTF-8''%E2%82%AC.txt`) is decoded and stored
/// under the plain name, where it wins over the plain form whatever the
/// order (RFC 6266 §4.3). `ISO-8859-1` values are decoded as Latin-1, any
/// other charset as UTF-8 (lossily). RFC 2231 continuations (`name*0`) are
/// not joined; they stay as their own raw parameters.
///
/// ```
/// use squall::httputil::parse_header;
/// let h = parse_header(r#"form-data; name="a;b"; filename="x\"y.txt""#);
/// assert_eq!(h.value, "form-data");
/// assert_eq!(h.param("name"), Some("a;b"));
/// assert_eq!(h.param("FILENAME"), Some("x\"y.txt"));
/// ```
pub fn parse_header(line: &str) -> ParsedHeader {
    let mut segments = split_outside_quotes(line).into_iter();
    let mut parsed = ParsedHeader {
        value: segments.next().unwrap_or_default().trim().to_string(),
        params: Vec::new(),
    };
    let mut extended = Vec::new();
    for segment in segments {
        let Some((name, value)) = segment.split_once('=') else {
            continue;
        };
        let name = name.trim().to_ascii_lowercase();
        let value = value.trim();
        match name.strip_suffix('*') {
            Some(plain) if !plain.is_empty() && !plain.contains('*') => {
                extended.push((plain.to_string(), decode_ext_value(value)));
            }
            _ => parsed.insert(name, unquote(value)),
        }
    }
    for (name, value) in extended {
        parsed.insert(name, value);
    }
    parsed
}

/// Splits on `;` that are not inside a quoted string; `\` escapes the next
/// character inside quotes. One pass, no allocation per character.
fn split_outside_quotes(line: &str) -> Vec<&str> {
    let mut pieces = Vec::new();
    let (mut start, mut in_quotes, mut escaped) = (0, false, false);
    for (i, c) in line.char_indices() {
        if escaped {
            escaped = false;
        } else if in_quotes && c == '\\' {
            escaped = true;
        } else if c == '"' {
            in_quotes = !in_quotes;
        } else if c == ';' && !in_quotes {
            pieces.push(&line[start..i]);
            start = i + 1;
        }
    }
    pieces.push(&line[start..]);
    pieces
}

/// Removes the surrounding `DQUOTE`s of a quoted-string and resolves its
/// quoted-pairs; anything else is returned as is.
fn unquote(value: &str) -> String {
    let Some(inner) = value.strip_prefix('"').and_then(|v| v.strip_suffix('"')) else {
        return value.to_string();
    };
    let mut out = String::with_capacity(inner.len());
    let mut chars = inner.chars();
    while let Some(c) = chars.next() {
        if c == '\\' {
            // A trailing lone backslash is kept.
            out.push(chars.next().unwrap_or('\\'));
        } else {
            out.push(c);
        }
    }
    out
}

/// Decodes an RFC 8187 `ext-value`:
///
/// ```text
/// ext-value   = charset  "'" [ language ] "'" value-chars
/// value-chars = *( pct-encoded / attr-char )
/// ```
///
/// A value that does not have the two `'` is treated as a plain value.
fn decode_ext_value(value: &str) -> String {
    let mut fields = value.splitn(3, '\'');
    let (Some(charset), Some(_language), Some(encoded)) =
        (fields.next(), fields.next(), fields.next())
    else {
        return unquote(value);
    };
    if charset.eq_ignore_ascii_case("iso-8859-1") {
        let bytes = percent_decode(encoded.as_bytes(), false);
        bytes.into_iter().map(char::from).collect()
    } else {
        url_unescape(encoded, false).into_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_type_with_boundary() {
        let h = parse_header("multipart/form-data; boundary=----WebKitFormBoundaryAbc");
        assert_eq!(h.value, "multipart/form-data");
        assert_eq!(h.param("boundary"), Some("----WebKitFormBoundaryAbc"));
        let q = parse_header("multipart/form-data; boundary=\"a b;c\"");
        assert_eq!(q.param("boundary"), Some("a b;c"));
    }

    #[test]
    fn whitespace_case_and_junk() {
        let h = parse_header("  Text/HTML ;Charset = UTF-8 ; junk ;; q=1");
        assert_eq!(h.value, "Text/HTML");
        assert_eq!(h.param("charset"), Some("UTF-8"));
        assert_eq!(h.params.len(), 2);
        assert_eq!(parse_header("").value, "");
        assert_eq!(parse_header("x; a=1; a=2").param("a"), Some("2"));
    }

    #[test]
    fn quoted_pairs_and_unterminated_quotes() {
        let h = parse_header(r#"form-data; name="a\\b\"c""#);
        assert_eq!(h.param("name"), Some(r#"a\b"c"#));
        // An unterminated quote swallows the rest of the line, without panic.
        let u = parse_header("form-data; name=\"abc; filename=x");
        assert_eq!(u.param("name"), Some("\"abc; filename=x"));
        assert_eq!(u.param("filename"), None);
        assert_eq!(unquote("\""), "\"");
        assert_eq!(unquote("\"\\\""), "\\");
    }

    #[test]
    fn extended_parameters_win() {
        let h = parse_header(
            "attachment; filename*=UTF-8''%E2%82%AC%20rates.txt; filename=\"fallback.txt\"",
        );
        assert_eq!(h.param("filename"), Some("\u{20ac} rates.txt"));
        let l = parse_header("attachment; filename*=iso-8859-1'en'caf%E9");
        assert_eq!(l.param("filename"), Some("caf\u{e9}"));
        let bad = parse_header("attachment; filename*=nocharset");
        assert_eq!(bad.param("filename"), Some("nocharset"));
        let trunc = parse_header("attachment; filename*=UTF-8''%E");
        assert_eq!(trunc.param("filename"), Some("%E"));
    }
}
