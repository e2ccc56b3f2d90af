//! Path patterns: `/room/{name}`, `/static/{*path}`.
//!
//! Tornado routes are regular expressions whose groups become positional
//! arguments. squall uses a smaller pattern language that covers what the
//! apps need and is matched without a regex engine:
//!
//! | pattern piece | matches                                  |
//! |---------------|------------------------------------------|
//! | `literal`     | itself                                   |
//! | `{name}`      | one non-empty path segment (no `/`)      |
//! | `{*name}`     | the rest of the path, possibly empty (last piece only) |
//!
//! Captured values are percent-decoded (Tornado decodes path arguments too).

use crate::httputil::url_unescape;

/// One piece of a compiled pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Piece {
    /// Text that must match exactly.
    Literal(String),
    /// `{name}`: one segment.
    Segment(String),
    /// `{*name}`: everything left.
    Rest(String),
}

/// A compiled path pattern.
#[derive(Debug, Clone)]
pub struct PathPattern {
    /// The pattern as written, for errors and `reverse_url`.
    source: String,
    /// Its pieces in order.
    pieces: Vec<Piece>,
}

impl PathPattern {
    /// Compile `pattern`.
    ///
    /// # Panics
    /// On a malformed pattern (unclosed `{`, `{*rest}` not at the end): routes
    /// are written by the programmer at start-up, never taken from input.
    pub fn new(pattern: &str) -> PathPattern {
        let mut pieces = Vec::new();
        let mut rest = pattern;
        while !rest.is_empty() {
            match rest.find('{') {
                Some(0) => {
                    let close = rest
                        .find('}')
                        .unwrap_or_else(|| panic!("route {pattern:?}: '{{' without '}}'"));
                    let name = &rest[1..close];
                    rest = &rest[close + 1..];
                    if let Some(name) = name.strip_prefix('*') {
                        assert!(
                            rest.is_empty(),
                            "route {pattern:?}: {{*{name}}} must be last"
                        );
                        pieces.push(Piece::Rest(name.to_string()));
                    } else {
                        pieces.push(Piece::Segment(name.to_string()));
                    }
                }
                Some(i) => {
                    pieces.push(Piece::Literal(rest[..i].to_string()));
                    rest = &rest[i..];
                }
                None => {
                    pieces.push(Piece::Literal(rest.to_string()));
                    rest = "";
                }
            }
        }
        PathPattern {
            source: pattern.to_string(),
            pieces,
        }
    }

    /// Match `path`; on success the captures in order, as (name, value).
    pub fn matches(&self, path: &str) -> Option<Vec<(String, String)>> {
        let mut captures = Vec::new();
        let mut rest = path;
        for piece in &self.pieces {
            match piece {
                Piece::Literal(text) => rest = rest.strip_prefix(text.as_str())?,
                Piece::Segment(name) => {
                    let end = rest.find('/').unwrap_or(rest.len());
                    if end == 0 {
                        return None;
                    }
                    captures.push((name.clone(), url_unescape(&rest[..end], false).into_owned()));
                    rest = &rest[end..];
                }
                Piece::Rest(name) => {
                    captures.push((name.clone(), url_unescape(rest, false).into_owned()));
                    rest = "";
                }
            }
        }
        rest.is_empty().then_some(captures)
    }

    /// The path this pattern matches if it has no captures (`/hello`), so
    /// the router can look it up by hash instead of trying it in turn.
    pub fn literal(&self) -> Option<&str> {
        match self.pieces.as_slice() {
            [Piece::Literal(text)] => Some(text),
            [] => Some(""),
            _ => None,
        }
    }

    /// The pattern as written.
    pub fn as_str(&self) -> &str {
        &self.source
    }
}

/// Hasher for the exact-path route table: FNV-1a, a few instructions per
/// byte where the standard SipHash costs ~150 per lookup, paid on every
/// request. SipHash's protection against chosen-key flooding is not needed
/// here: the table's keys are the application's routes, fixed at startup;
/// a request only looks a path up and inserts nothing.
#[derive(Clone, Copy)]
pub(crate) struct PathHasher(u64);

impl Default for PathHasher {
    fn default() -> Self {
        PathHasher(0xcbf2_9ce4_8422_2325)
    }
}

impl std::hash::Hasher for PathHasher {
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 ^= u64::from(b);
            self.0 = self.0.wrapping_mul(0x0000_0100_0000_01b3);
        }
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

/// Builds [`PathHasher`]s for a `HashMap`.
pub(crate) type BuildPathHasher = std::hash::BuildHasherDefault<PathHasher>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn literal_and_captures() {
        let p = PathPattern::new("/room/{name}");
        assert_eq!(
            p.matches("/room/lobby"),
            Some(vec![("name".into(), "lobby".into())])
        );
        assert_eq!(
            p.matches("/room/a%20b"),
            Some(vec![("name".into(), "a b".into())])
        );
        assert_eq!(p.matches("/room/"), None);
        assert_eq!(p.matches("/room/a/b"), None);
        assert_eq!(p.matches("/rooms/a"), None);
        assert_eq!(PathPattern::new("/").matches("/"), Some(vec![]));
        assert_eq!(PathPattern::new("/").matches("/x"), None);
    }

    #[test]
    fn rest_capture() {
        let p = PathPattern::new("/static/{*path}");
        assert_eq!(
            p.matches("/static/a/b.css"),
            Some(vec![("path".into(), "a/b.css".into())])
        );
        assert_eq!(
            p.matches("/static/"),
            Some(vec![("path".into(), "".into())])
        );
        assert_eq!(p.matches("/stat"), None);
    }
}
