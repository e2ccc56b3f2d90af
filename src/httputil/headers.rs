//! `HTTPHeaders`: a case-insensitive, multi-valued, insertion-ordered header
//! map, plus the RFC 9110 grammar checks used to refuse bad header names and
//! values. Mirrors `HTTPHeaders` in Tornado's `httputil.py`.
//!
//! Differences from Tornado, on purpose:
//! - names are stored exactly as given (Tornado normalises them to
//!   `Content-Type` form); lookups compare ASCII case-insensitively without
//!   allocating;
//! - [`HTTPHeaders::get`] returns the *first* value; Tornado's `headers[name]`
//!   joins all values with `,`. Use [`HTTPHeaders::get_list`] for all of them.
//! - the map itself does not validate; callers check names with [`is_token`]
//!   and values with [`is_field_value`] where input enters or output leaves.

/// A case-insensitive multi-map of HTTP header fields, in insertion order.
///
/// Lookups are linear scans, which is the right trade-off for the dozens of
/// fields a message carries (the header block itself is size-bounded by the
/// HTTP layer).
///
/// ```
/// use squall::httputil::HTTPHeaders;
/// let mut h = HTTPHeaders::new();
/// h.add("Set-Cookie", "a=1");
/// h.add("set-cookie", "b=2");
/// assert_eq!(h.get("SET-COOKIE"), Some("a=1"));
/// assert_eq!(h.get_list("Set-Cookie"), ["a=1", "b=2"]);
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HTTPHeaders {
    fields: Vec<(String, String)>,
}

impl HTTPHeaders {
    /// An empty header map.
    pub fn new() -> Self {
        Self::default()
    }

    /// Appends a field, keeping any existing fields of the same name.
    pub fn add(&mut self, name: impl Into<String>, value: impl Into<String>) {
        self.fields.push((name.into(), value.into()));
    }

    /// Replaces every field called `name` with a single one holding `value`.
    ///
    /// The field keeps the position of the first existing one (like a Python
    /// dict assignment), or goes last if there was none.
    pub fn set(&mut self, name: impl Into<String>, value: impl Into<String>) {
        let name = name.into();
        let value = value.into();
        let Some(first) = self.position(&name) else {
            self.fields.push((name, value));
            return;
        };
        let mut index = 0;
        self.fields.retain(|(n, _)| {
            let keep = index <= first || !n.eq_ignore_ascii_case(&name);
            index += 1;
            keep
        });
        self.fields[first] = (name, value);
    }

    /// The first value of `name`, if any.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.get_all(name).next()
    }

    /// Every value of `name`, in insertion order.
    pub fn get_all<'a, 'n>(&'a self, name: &'n str) -> impl Iterator<Item = &'a str> + use<'a, 'n> {
        self.fields
            .iter()
            .filter(move |(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// Every value of `name` collected into a `Vec` (Tornado's `get_list`).
    pub fn get_list(&self, name: &str) -> Vec<&str> {
        self.get_all(name).collect()
    }

    /// Whether at least one field called `name` is present.
    pub fn contains(&self, name: &str) -> bool {
        self.position(name).is_some()
    }

    /// Removes every field called `name`; returns how many were removed.
    pub fn remove(&mut self, name: &str) -> usize {
        let before = self.fields.len();
        self.fields.retain(|(n, _)| !n.eq_ignore_ascii_case(name));
        before - self.fields.len()
    }

    /// All `(name, value)` pairs in insertion order, names as given.
    pub fn iter(&self) -> Iter<'_> {
        Iter(self.fields.iter())
    }

    /// Number of fields (a name added twice counts twice).
    pub fn len(&self) -> usize {
        self.fields.len()
    }

    /// Whether there are no fields at all.
    pub fn is_empty(&self) -> bool {
        self.fields.is_empty()
    }

    /// Removes every field.
    pub fn clear(&mut self) {
        self.fields.clear();
    }

    fn position(&self, name: &str) -> Option<usize> {
        self.fields
            .iter()
            .position(|(n, _)| n.eq_ignore_ascii_case(name))
    }
}

/// Iterator over `(name, value)` pairs of an [`HTTPHeaders`], in order.
#[derive(Debug, Clone)]
pub struct Iter<'a>(std::slice::Iter<'a, (String, String)>);

impl<'a> Iterator for Iter<'a> {
    type Item = (&'a str, &'a str);

    fn next(&mut self) -> Option<Self::Item> {
        self.0.next().map(|(n, v)| (n.as_str(), v.as_str()))
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        self.0.size_hint()
    }
}

impl<'a> IntoIterator for &'a HTTPHeaders {
    type Item = (&'a str, &'a str);
    type IntoIter = Iter<'a>;

    fn into_iter(self) -> Iter<'a> {
        self.iter()
    }
}

impl<N: Into<String>, V: Into<String>> FromIterator<(N, V)> for HTTPHeaders {
    fn from_iter<I: IntoIterator<Item = (N, V)>>(iter: I) -> Self {
        let mut headers = HTTPHeaders::new();
        for (name, value) in iter {
            headers.add(name, value);
        }
        headers
    }
}

/// Whether `b` is a `tchar` (RFC 9110 §5.6.2):
///
/// ```text
/// tchar = "!" / "#" / "$" / "%" / "&" / "'" / "*"
///       / "+" / "-" / "." / "^" / "_" / "`" / "|" / "~"
///       / DIGIT / ALPHA
/// ```
pub fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric()
        || matches!(
            b,
            b'!' | b'#'
                | b'$'
                | b'%'
                | b'&'
                | b'\''
                | b'*'
                | b'+'
                | b'-'
                | b'.'
                | b'^'
                | b'_'
                | b'`'
                | b'|'
                | b'~'
        )
}

/// Whether `s` is a `token` (RFC 9110 §5.6.2): `token = 1*tchar`.
///
/// Field names and methods must be tokens; use this to refuse a header name
/// before it is sent or accepted.
pub fn is_token(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(is_tchar)
}

/// Whether `value` may appear as a field value (RFC 9110 §5.5):
///
/// ```text
/// field-value   = *field-content
/// field-content = field-vchar [ 1*( SP / HTAB / field-vchar ) field-vchar ]
/// field-vchar   = VCHAR / obs-text        ; obs-text = %x80-FF
/// ```
///
/// Every control character except HTAB is refused — in particular NUL, CR
/// and LF, which is what stops header injection (`"x\r\nSet-Cookie: ..."`).
/// Leading/trailing whitespace is tolerated (parsers strip it, RFC 9110 §5.5).
pub fn is_field_value(value: &[u8]) -> bool {
    value
        .iter()
        .all(|&b| b == b'\t' || b == b' ' || (0x21..=0x7e).contains(&b) || b >= 0x80)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lookups_ignore_ascii_case_and_keep_names_as_given() {
        let mut h = HTTPHeaders::new();
        h.add("Content-Type", "text/html");
        assert_eq!(h.get("content-type"), Some("text/html"));
        assert_eq!(h.get("CONTENT-TYPE"), Some("text/html"));
        assert!(h.contains("cOnTeNt-TyPe"));
        assert_eq!(h.get("Content-Length"), None);
        assert_eq!(h.iter().next(), Some(("Content-Type", "text/html")));
    }

    #[test]
    fn multi_values_keep_insertion_order() {
        let mut h = HTTPHeaders::new();
        h.add("Set-Cookie", "a=1");
        h.add("X-Other", "x");
        h.add("set-cookie", "b=2");
        assert_eq!(h.get("Set-Cookie"), Some("a=1"));
        assert_eq!(h.get_list("SET-COOKIE"), vec!["a=1", "b=2"]);
        let names: Vec<_> = h.iter().map(|(n, _)| n).collect();
        assert_eq!(names, ["Set-Cookie", "X-Other", "set-cookie"]);
        assert_eq!(h.len(), 3);
    }

    #[test]
    fn set_replaces_all_values_in_place_of_the_first() {
        let mut h = HTTPHeaders::new();
        h.add("A", "1");
        h.add("B", "2");
        h.add("a", "3");
        h.add("C", "4");
        h.set("a", "new");
        let all: Vec<_> = h.iter().collect();
        assert_eq!(all, [("a", "new"), ("B", "2"), ("C", "4")]);
        h.set("D", "5");
        assert_eq!(h.iter().last(), Some(("D", "5")));
    }

    #[test]
    fn remove_and_clear() {
        let mut h: HTTPHeaders = [("A", "1"), ("b", "2"), ("a", "3")].into_iter().collect();
        assert_eq!(h.remove("A"), 2);
        assert_eq!(h.remove("A"), 0);
        assert_eq!(h.get_list("a"), Vec::<&str>::new());
        assert_eq!((&h).into_iter().count(), 1);
        h.clear();
        assert!(h.is_empty());
    }

    #[test]
    fn token_grammar() {
        assert!(is_token("Content-Type"));
        assert!(is_token("X-Weird!#$%&'*+.^_`|~9"));
        assert!(!is_token(""));
        assert!(!is_token("Bad Name"));
        assert!(!is_token("Bad:Name"));
        assert!(!is_token("Bad\r\nName"));
        assert!(!is_token("caf\u{e9}"));
        for b in [
            b'(', b')', b',', b'/', b';', b'<', b'=', b'>', b'?', b'@', b'[', b'\\', b']', b'{',
            b'}', b'"',
        ] {
            assert!(!is_tchar(b), "{}", b as char);
        }
    }

    #[test]
    fn field_value_grammar_refuses_injection() {
        assert!(is_field_value(b"text/html; charset=utf-8"));
        assert!(is_field_value(b"a\tb"));
        assert!(is_field_value(b""));
        assert!(is_field_value("caf\u{e9}".as_bytes()));
        assert!(!is_field_value(b"x\r\nSet-Cookie: evil=1"));
        assert!(!is_field_value(b"x\ny"));
        assert!(!is_field_value(b"x\ry"));
        assert!(!is_field_value(b"x\0y"));
        assert!(!is_field_value(b"x\x7fy"));
        assert!(!is_field_value(b"x\x1by"));
    }
}
