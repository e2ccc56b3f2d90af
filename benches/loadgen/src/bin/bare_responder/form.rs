//! `application/x-www-form-urlencoded` bodies and query strings, and the
//! `Cookie` header: just enough to read the chat routes' fields.

use std::borrow::Cow;

/// The fields of a form body or query string, decoded (`+` is a space,
/// `%XX` a byte). `None` when an escape is malformed or a field is not
/// UTF-8: the caller answers 400.
pub fn parse(raw: &[u8]) -> Option<Vec<(Cow<'_, str>, Cow<'_, str>)>> {
    let mut out = Vec::new();
    for pair in raw.split(|b| *b == b'&') {
        if pair.is_empty() {
            continue;
        }
        let (k, v) = match pair.iter().position(|b| *b == b'=') {
            Some(i) => (&pair[..i], &pair[i + 1..]),
            None => (pair, &pair[pair.len()..]),
        };
        out.push((decode(k)?, decode(v)?));
    }
    Some(out)
}

/// The first value of field `name`.
pub fn get<'a>(fields: &'a [(Cow<'_, str>, Cow<'_, str>)], name: &str) -> Option<&'a str> {
    fields.iter().find(|(k, _)| k == name).map(|(_, v)| &**v)
}

/// Percent-decode one key or value, borrowing when there is nothing to do.
fn decode(s: &[u8]) -> Option<Cow<'_, str>> {
    if !s.iter().any(|b| *b == b'%' || *b == b'+') {
        return std::str::from_utf8(s).ok().map(Cow::Borrowed);
    }
    let mut out = Vec::with_capacity(s.len());
    let mut i = 0;
    while i < s.len() {
        match s[i] {
            b'+' => out.push(b' '),
            b'%' => {
                let hi = hex(*s.get(i + 1)?)?;
                let lo = hex(*s.get(i + 2)?)?;
                out.push(hi << 4 | lo);
                i += 2;
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8(out).ok().map(Cow::Owned)
}

/// Value of one hex digit.
fn hex(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// The value of cookie `name` in a `Cookie` header value.
pub fn cookie<'a>(header: &'a [u8], name: &str) -> Option<&'a str> {
    let h = std::str::from_utf8(header).ok()?;
    h.split(';').find_map(|part| {
        let (k, v) = part.split_once('=')?;
        (k.trim() == name).then(|| v.trim().trim_matches('"'))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forms_and_cookies() {
        let f = parse(b"body=a+b%7Cc&room=r1&&flag").unwrap();
        assert_eq!(get(&f, "body"), Some("a b|c"));
        assert_eq!(get(&f, "room"), Some("r1"));
        assert_eq!(get(&f, "flag"), Some(""));
        assert!(parse(b"x=%4").is_none());
        assert!(parse(b"x=%ff").is_none());
        assert_eq!(cookie(b"_xsrf=abc; user=\"bob\"", "user"), Some("bob"));
        assert_eq!(cookie(b"_xsrf=abc", "user"), None);
    }
}
