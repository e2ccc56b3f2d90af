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
//!
//! # Storage
//!
//! Every request and every response has a header map, so its cost is paid
//! on the hot path: names and values live back to back in one `String`, and
//! each field is four offsets into it. A map of any size is two
//! allocations; a parsed request keeps its received head block as that
//! string (no copy per field), request line included (the `pinned` prefix,
//! which [`HTTPServerRequest`](crate::http::HTTPServerRequest) reads its
//! method and target from).

use std::fmt;

use crate::iostream::spare::SparePool;

/// Where one field's name and value are in [`HTTPHeaders::text`].
///
/// `u32` offsets keep a field at 16 bytes; a map's text is bounded far
/// below 4 GiB (request heads by the server's header limit; response
/// headers are refused past [`MAX_TEXT`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct FieldSpan {
    /// Name: `text[name.0..name.1]`.
    pub(crate) name: (u32, u32),
    /// Value: `text[value.0..value.1]`.
    pub(crate) value: (u32, u32),
}

thread_local! {
    /// Field tables of finished requests, for the next request's parse:
    /// the same few fields every time, so no `malloc` per request. At most
    /// 16, of at most 64 fields. The head text has its twin in
    /// `iostream/spare.rs`.
    static SPARE_FIELDS: SparePool<FieldSpan> = const { SparePool::new(16, 64) };
}

/// An empty field table, with capacity from an earlier request if spare.
/// (`try_with`: at thread exit the pool may already be gone.)
pub(crate) fn take_fields() -> Vec<FieldSpan> {
    SPARE_FIELDS.try_with(SparePool::take).unwrap_or_default()
}

/// A field table its map is done with (see `SparePool::give`).
pub(crate) fn give_fields(fields: Vec<FieldSpan>) {
    let _ = SPARE_FIELDS.try_with(|pool| pool.give(fields));
}

/// Drop every spare field table of this thread.
pub(crate) fn release_spare_fields() {
    let _ = SPARE_FIELDS.try_with(SparePool::clear);
}

/// Most bytes of names and values one map holds (a field that would pass it
/// is dropped with an error log): far beyond any real header block.
const MAX_TEXT: usize = 1 << 30;

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
#[derive(Clone, Default)]
pub struct HTTPHeaders {
    /// Names and values back to back (after the pinned prefix). Fields
    /// point into it; replaced or removed fields leave dead bytes behind.
    text: String,
    /// Each field's name and value, in insertion order.
    fields: Vec<FieldSpan>,
    /// Leading bytes of `text` that belong to the owner, not to a field (a
    /// request's request line): compaction keeps them in place.
    pinned: u32,
    /// Bytes of `text` after `pinned` that no field refers to any more.
    /// When they outnumber the live ones, `text` is compacted, so a handler
    /// that sets one header a million times stays bounded.
    dead: usize,
}

impl HTTPHeaders {
    /// An empty header map.
    pub fn new() -> Self {
        Self::default()
    }

    /// A map over a received header block: `text` is kept as it is, and
    /// `fields` point into it. The first `pinned` bytes (the request line)
    /// stay where they are for the owner to read through [`Self::raw`].
    ///
    /// Callers guarantee every span lies inside `text` on char boundaries
    /// and `text.len() <= u32::MAX`; the parser builds them from one
    /// validated block.
    pub(crate) fn from_block(text: String, fields: Vec<FieldSpan>, pinned: u32) -> Self {
        debug_assert!(fields
            .iter()
            .all(|f| f.name.1 as usize <= text.len() && f.value.1 as usize <= text.len()));
        HTTPHeaders {
            text,
            fields,
            pinned,
            dead: 0,
        }
    }

    /// An empty map built from this thread's spare buffers (text and
    /// field table), so filling it costs no `malloc` on a busy thread.
    pub(crate) fn from_spares() -> Self {
        // A cleared buffer is empty, and empty is valid UTF-8.
        let text = String::from_utf8(crate::iostream::spare::take()).unwrap_or_default();
        HTTPHeaders::from_block(text, take_fields(), 0)
    }

    /// Give the map's buffers to this thread's spares. They are kept as a
    /// pair: a map whose text is too big to keep (or finds its pool full)
    /// is freed whole.
    pub(crate) fn recycle(self) {
        if crate::iostream::spare::give(self.text.into_bytes()) {
            give_fields(self.fields);
        }
    }

    /// `text[start..end]` of the underlying string (for the pinned prefix).
    pub(crate) fn raw(&self, (start, end): (u32, u32)) -> &str {
        self.text.get(start as usize..end as usize).unwrap_or("")
    }

    /// Appends a field, keeping any existing fields of the same name.
    pub fn add(&mut self, name: impl AsRef<str>, value: impl AsRef<str>) {
        let (name, value) = (name.as_ref(), value.as_ref());
        let start = self.text.len();
        if start + name.len() + value.len() > MAX_TEXT {
            log::error!("header {name:?} dropped: the header map is over its size limit");
            return;
        }
        if self.text.capacity() == 0 {
            // Most maps hold a few short fields: one allocation for them all.
            self.text.reserve(128);
        }
        self.text.push_str(name);
        self.text.push_str(value);
        let mid = start + name.len();
        // In range: the text stays under MAX_TEXT < u32::MAX.
        self.fields.push(FieldSpan {
            name: (start as u32, mid as u32),
            value: (mid as u32, self.text.len() as u32),
        });
    }

    /// Replaces every field called `name` with a single one holding `value`.
    ///
    /// The field keeps the position of the first existing one (like a Python
    /// dict assignment), or goes last if there was none.
    pub fn set(&mut self, name: impl AsRef<str>, value: impl AsRef<str>) {
        let (name, value) = (name.as_ref(), value.as_ref());
        let Some(first) = self.position(name) else {
            self.add(name, value);
            return;
        };
        // Later fields of the same name go; the first is re-pointed at a
        // fresh copy of name and value, keeping its position.
        self.drop_fields_named(name, first + 1);
        let before = self.fields.len();
        self.add(name, value);
        if self.fields.len() > before {
            if let Some(new) = self.fields.pop() {
                self.dead += span_len(&self.fields[first]);
                self.fields[first] = new;
            }
        }
        self.maybe_compact();
    }

    /// The first value of `name`, if any.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.get_all(name).next()
    }

    /// Every value of `name`, in insertion order.
    pub fn get_all<'a, 'n>(&'a self, name: &'n str) -> impl Iterator<Item = &'a str> + use<'a, 'n> {
        self.iter()
            .filter(move |(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v)
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
        self.drop_fields_named(name, 0);
        self.maybe_compact();
        before - self.fields.len()
    }

    /// Drop the fields called `name` at index `from` or later, counting
    /// their bytes as dead.
    fn drop_fields_named(&mut self, name: &str, from: usize) {
        let text = &self.text;
        if !self.fields[from.min(self.fields.len())..]
            .iter()
            .any(|f| field_name(text, f).eq_ignore_ascii_case(name))
        {
            return;
        }
        let mut index = 0;
        let mut dead = 0;
        self.fields.retain(|f| {
            let keep = index < from || !field_name(text, f).eq_ignore_ascii_case(name);
            if !keep {
                dead += span_len(f);
            }
            index += 1;
            keep
        });
        self.dead += dead;
    }

    /// All `(name, value)` pairs in insertion order, names as given.
    pub fn iter(&self) -> Iter<'_> {
        Iter {
            text: &self.text,
            fields: self.fields.iter(),
        }
    }

    /// Number of fields (a name added twice counts twice).
    pub fn len(&self) -> usize {
        self.fields.len()
    }

    /// Whether there are no fields at all.
    pub fn is_empty(&self) -> bool {
        self.fields.is_empty()
    }

    /// Removes every field (a pinned prefix stays).
    pub fn clear(&mut self) {
        self.fields.clear();
        self.text.truncate(self.pinned as usize);
        self.dead = 0;
    }

    /// True if the map owns no heap memory (never written to).
    pub(crate) fn is_unallocated(&self) -> bool {
        self.text.capacity() == 0 && self.fields.capacity() == 0
    }

    /// Give back spare capacity (for maps kept a long time, such as the
    /// request of a parked long-poll).
    pub fn shrink_to_fit(&mut self) {
        self.compact();
        self.text.shrink_to_fit();
        self.fields.shrink_to_fit();
    }

    fn position(&self, name: &str) -> Option<usize> {
        self.iter().position(|(n, _)| n.eq_ignore_ascii_case(name))
    }

    fn maybe_compact(&mut self) {
        let live = self.text.len() - self.pinned as usize - self.dead;
        if self.dead > 256 && self.dead > live {
            self.compact();
        }
    }

    /// Rewrite `text` with only the pinned prefix and live fields.
    fn compact(&mut self) {
        if self.dead == 0 {
            return;
        }
        let mut text = String::with_capacity(self.text.len() - self.dead);
        text.push_str(self.raw((0, self.pinned)));
        for f in &mut self.fields {
            let start = text.len() as u32;
            text.push_str(field_name(&self.text, f));
            let mid = text.len() as u32;
            text.push_str(field_value(&self.text, f));
            *f = FieldSpan {
                name: (start, mid),
                value: (mid, text.len() as u32),
            };
        }
        self.text = text;
        self.dead = 0;
    }
}

fn field_name<'a>(text: &'a str, f: &FieldSpan) -> &'a str {
    text.get(f.name.0 as usize..f.name.1 as usize).unwrap_or("")
}

fn field_value<'a>(text: &'a str, f: &FieldSpan) -> &'a str {
    text.get(f.value.0 as usize..f.value.1 as usize)
        .unwrap_or("")
}

fn span_len(f: &FieldSpan) -> usize {
    (f.name.1 - f.name.0) as usize + (f.value.1 - f.value.0) as usize
}

impl fmt::Debug for HTTPHeaders {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.iter()).finish()
    }
}

/// Equal when the same fields are in the same order (names compared as
/// given); how the bytes are stored does not matter.
impl PartialEq for HTTPHeaders {
    fn eq(&self, other: &Self) -> bool {
        self.len() == other.len() && self.iter().eq(other.iter())
    }
}

impl Eq for HTTPHeaders {}

/// Iterator over `(name, value)` pairs of an [`HTTPHeaders`], in order.
#[derive(Debug, Clone)]
pub struct Iter<'a> {
    text: &'a str,
    fields: std::slice::Iter<'a, FieldSpan>,
}

impl<'a> Iterator for Iter<'a> {
    type Item = (&'a str, &'a str);

    fn next(&mut self) -> Option<Self::Item> {
        self.fields
            .next()
            .map(|f| (field_name(self.text, f), field_value(self.text, f)))
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        self.fields.size_hint()
    }
}

impl<'a> IntoIterator for &'a HTTPHeaders {
    type Item = (&'a str, &'a str);
    type IntoIter = Iter<'a>;

    fn into_iter(self) -> Iter<'a> {
        self.iter()
    }
}

impl<N: AsRef<str>, V: AsRef<str>> FromIterator<(N, V)> for HTTPHeaders {
    fn from_iter<I: IntoIterator<Item = (N, V)>>(iter: I) -> Self {
        let mut headers = HTTPHeaders::new();
        for (name, value) in iter {
            headers.add(name, value);
        }
        headers
    }
}

/// `tchar` as a table (RFC 9110 §5.6.2, quoted at [`is_tchar`]): one load
/// per byte, since every response header name is checked on its way out.
static TCHAR: [bool; 256] = {
    let mut table = [false; 256];
    let mut b = 0;
    while b < 256 {
        let c = b as u8;
        table[b] = c.is_ascii_alphanumeric()
            || matches!(
                c,
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
            );
        b += 1;
    }
    table
};

/// Whether `b` is a `tchar` (RFC 9110 §5.6.2):
///
/// ```text
/// tchar = "!" / "#" / "$" / "%" / "&" / "'" / "*"
///       / "+" / "-" / "." / "^" / "_" / "`" / "|" / "~"
///       / DIGIT / ALPHA
/// ```
pub fn is_tchar(b: u8) -> bool {
    TCHAR[b as usize]
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
    // SP, VCHAR and obs-text are every byte from 0x20 up except DEL. A fold
    // without early exit: every response header goes through here, and the
    // branch-free loop is the faster one for values this short.
    value.iter().fold(true, |ok, &b| {
        ok & ((b >= 0x20 && b != 0x7f) | (b == b'\t'))
    })
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
    fn replaced_fields_are_compacted_away_and_the_pinned_prefix_stays() {
        let text = "GET / HTTP/1.1\r\nHostx".to_string();
        let span = FieldSpan {
            name: (16, 20),
            value: (20, 21),
        };
        let mut h = HTTPHeaders::from_block(text, vec![span], 14);
        assert_eq!(h.get("host"), Some("x"));
        for i in 0..10_000 {
            h.set("X-Counter", i.to_string());
        }
        assert_eq!(h.get("X-Counter"), Some("9999"));
        assert!(h.text.len() < 2_000, "dead bytes were never reclaimed");
        assert_eq!(h.raw((0, 14)), "GET / HTTP/1.1");
        assert_eq!(h.get("Host"), Some("x"));
        h.shrink_to_fit();
        assert_eq!(h.raw((0, 14)), "GET / HTTP/1.1");
        let all: Vec<_> = h.iter().collect();
        assert_eq!(all, [("Host", "x"), ("X-Counter", "9999")]);
        h.clear();
        assert!(h.is_empty());
        assert_eq!(h.raw((0, 14)), "GET / HTTP/1.1");
    }

    #[test]
    fn equality_ignores_storage() {
        let mut a = HTTPHeaders::new();
        a.add("A", "1");
        a.set("A", "2");
        let b: HTTPHeaders = [("A", "2")].into_iter().collect();
        assert_eq!(a, b);
        assert_ne!(a, HTTPHeaders::new());
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
    fn field_value_accepts_exactly_sp_htab_vchar_and_obs_text() {
        for b in 0..=255u8 {
            let grammar = b == b'\t' || b == b' ' || (0x21..=0x7e).contains(&b) || b >= 0x80;
            assert_eq!(is_field_value(&[b'a', b, b'z']), grammar, "byte {b:#04x}");
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
