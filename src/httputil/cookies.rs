//! Cookies (RFC 6265): parsing the request's `Cookie` header and
//! formatting a response's `Set-Cookie` value. Mirrors `parse_cookie` in
//! Tornado's `httputil.py` (linear since 6.4.2, CVE-2024-7592) and
//! `RequestHandler.set_cookie` in `web.py` (which refuses characters that
//! could inject attributes or headers).

use std::collections::HashMap;
use std::fmt;
use std::time::SystemTime;

use super::date::format_http_date;
use super::headers::is_token;

/// Parses a `Cookie` header into a name → value map, the way browsers
/// actually send it rather than by the letter of RFC 6265:
///
/// - pairs are split on `;`, each on its first `=`; a pair without `=` is a
///   value with an empty name (as Mozilla treats it);
/// - names and values are trimmed of whitespace; a pair with both empty is
///   skipped;
/// - a value wrapped in double quotes is unquoted, resolving `\"`-style
///   escapes and `\ooo` octal escapes, like Python's `http.cookies`;
/// - when a name repeats, the last value wins.
///
/// Runs in time linear in the header length whatever its content.
///
/// ```
/// use squall::httputil::parse_cookie;
/// let c = parse_cookie("user=alice; _xsrf=2|ab|cd|1; theme=\"dark\\073mode\"");
/// assert_eq!(c["user"], "alice");
/// assert_eq!(c["_xsrf"], "2|ab|cd|1");
/// assert_eq!(c["theme"], "dark;mode");
/// ```
pub fn parse_cookie(header: &str) -> HashMap<String, String> {
    let mut cookies = HashMap::new();
    for chunk in header.split(';') {
        let (name, value) = chunk.split_once('=').unwrap_or(("", chunk));
        let (name, value) = (name.trim(), value.trim());
        if !name.is_empty() || !value.is_empty() {
            cookies.insert(name.to_string(), unquote_cookie(value));
        }
    }
    cookies
}

/// Python's `http.cookies._unquote`, in one left-to-right pass.
fn unquote_cookie(value: &str) -> String {
    let Some(inner) = value.strip_prefix('"').and_then(|v| v.strip_suffix('"')) else {
        return value.to_string();
    };
    let mut out = String::with_capacity(inner.len());
    let mut rest = inner;
    while let Some(backslash) = rest.find('\\') {
        out.push_str(&rest[..backslash]);
        let after = &rest[backslash + 1..];
        let octal = after.as_bytes().get(..3).filter(|d| {
            (b'0'..=b'3').contains(&d[0]) && d[1..].iter().all(|c| (b'0'..=b'7').contains(c))
        });
        if let Some(d) = octal {
            let code = (d[0] - b'0') * 64 + (d[1] - b'0') * 8 + (d[2] - b'0');
            out.push(char::from(code));
            rest = &after[3..];
        } else {
            match after.chars().next() {
                // `\` + any character but newline: the character itself.
                Some(c) if c != '\n' => {
                    out.push(c);
                    rest = &after[c.len_utf8()..];
                }
                _ => {
                    out.push('\\');
                    rest = after;
                }
            }
        }
    }
    out.push_str(rest);
    out
}

/// The `SameSite` attribute (RFC 6265bis §5.6.7).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SameSite {
    /// `SameSite=Strict`: never sent on cross-site requests.
    Strict,
    /// `SameSite=Lax`: sent on top-level cross-site navigations only.
    Lax,
    /// `SameSite=None`: always sent (browsers require `Secure` with it).
    None,
}

impl SameSite {
    fn as_str(self) -> &'static str {
        match self {
            SameSite::Strict => "Strict",
            SameSite::Lax => "Lax",
            SameSite::None => "None",
        }
    }
}

/// Attributes of a `Set-Cookie` header; `Default` gives Tornado's
/// defaults: `Path=/` and nothing else.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CookieOptions {
    /// `Domain=`; `None` means host-only.
    pub domain: Option<String>,
    /// `Path=`; defaults to `/`. `None` omits the attribute.
    pub path: Option<String>,
    /// `expires=` as an HTTP date. (Tornado's `expires_days` is
    /// `now + days`, computed by the caller, who owns the clock.)
    pub expires: Option<SystemTime>,
    /// `Max-Age=` in seconds; `Some(0)` asks the browser to delete it.
    pub max_age: Option<u64>,
    /// `HttpOnly`: hidden from scripts.
    pub httponly: bool,
    /// `Secure`: only sent over HTTPS.
    pub secure: bool,
    /// `SameSite=`.
    pub samesite: Option<SameSite>,
}

impl Default for CookieOptions {
    fn default() -> Self {
        Self {
            domain: None,
            path: Some("/".to_string()),
            expires: None,
            max_age: None,
            httponly: false,
            secure: false,
            samesite: None,
        }
    }
}

/// A cookie name, value or attribute that cannot be sent safely.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvalidCookie {
    what: &'static str,
}

impl fmt::Display for InvalidCookie {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "invalid cookie {}", self.what)
    }
}

impl std::error::Error for InvalidCookie {}

/// Formats the value of a `Set-Cookie` header (RFC 6265 §4.1.1):
///
/// ```text
/// set-cookie-string = cookie-pair *( ";" SP cookie-av )
/// cookie-pair       = cookie-name "=" cookie-value
/// cookie-name       = token
/// cookie-value      = *cookie-octet / ( DQUOTE *cookie-octet DQUOTE )
/// cookie-octet      = %x21 / %x23-2B / %x2D-3A / %x3C-5B / %x5D-7E
/// path-value        = <any CHAR except CTLs or ";">
/// ```
///
/// Attributes come in the order Python's `SimpleCookie` writes them
/// (alphabetical): `Domain`, `expires`, `HttpOnly`, `Max-Age`, `Path`,
/// `SameSite`, `Secure`.
///
/// Refuses (instead of quoting, as `SimpleCookie` would) a name that is not
/// a token, a value with characters outside `cookie-octet` (space, `"`,
/// `,`, `;`, `\`, controls, non-ASCII — escape such values first, e.g.
/// with [`url_escape`](super::url_escape)), and a domain or path with
/// spaces, controls, `;` or non-ASCII (Tornado 6.5.5).
///
/// ```
/// use squall::httputil::{format_set_cookie, CookieOptions, SameSite};
/// let opts = CookieOptions { httponly: true, samesite: Some(SameSite::Lax), ..Default::default() };
/// assert_eq!(
///     format_set_cookie("user", "alice", &opts).unwrap(),
///     "user=alice; HttpOnly; Path=/; SameSite=Lax"
/// );
/// assert!(format_set_cookie("user", "x; Domain=evil.example", &opts).is_err());
/// ```
pub fn format_set_cookie(
    name: &str,
    value: &str,
    options: &CookieOptions,
) -> Result<String, InvalidCookie> {
    if !is_token(name) {
        return Err(InvalidCookie { what: "name" });
    }
    if !is_cookie_value(value) {
        return Err(InvalidCookie { what: "value" });
    }
    let mut out = format!("{name}={value}");
    if let Some(domain) = &options.domain {
        if !is_attribute_value(domain) {
            return Err(InvalidCookie { what: "domain" });
        }
        out.push_str("; Domain=");
        out.push_str(domain);
    }
    if let Some(expires) = options.expires {
        out.push_str("; expires=");
        out.push_str(&format_http_date(expires));
    }
    if options.httponly {
        out.push_str("; HttpOnly");
    }
    if let Some(max_age) = options.max_age {
        out.push_str(&format!("; Max-Age={max_age}"));
    }
    if let Some(path) = &options.path {
        if !is_attribute_value(path) {
            return Err(InvalidCookie { what: "path" });
        }
        out.push_str("; Path=");
        out.push_str(path);
    }
    if let Some(samesite) = options.samesite {
        out.push_str("; SameSite=");
        out.push_str(samesite.as_str());
    }
    if options.secure {
        out.push_str("; Secure");
    }
    Ok(out)
}

fn is_cookie_octet(b: u8) -> bool {
    matches!(b, 0x21 | 0x23..=0x2B | 0x2D..=0x3A | 0x3C..=0x5B | 0x5D..=0x7E)
}

fn is_cookie_value(value: &str) -> bool {
    let bytes = value.as_bytes();
    let inner = match bytes {
        [b'"', inner @ .., b'"'] => inner,
        _ => bytes,
    };
    inner.iter().all(|&b| is_cookie_octet(b))
}

/// Visible ASCII except `;` (stricter than `path-value`, which allows
/// spaces; Tornado 6.5.5 refuses them too).
fn is_attribute_value(value: &str) -> bool {
    !value.is_empty()
        && value
            .bytes()
            .all(|b| (0x21..=0x7E).contains(&b) && b != b';')
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, UNIX_EPOCH};

    #[test]
    fn parse_like_browsers_send_it() {
        let c = parse_cookie("a=1; b = 2 ;c=;=d; e=x=y; lone; ; a=3");
        assert_eq!(c["a"], "3", "last wins");
        assert_eq!(c["b"], "2");
        assert_eq!(c["c"], "");
        assert_eq!(c["e"], "x=y");
        // "=d" then "lone" both have an empty name; the later one wins.
        assert_eq!(c[""], "lone");
        assert_eq!(c.len(), 5);
        assert!(parse_cookie("").is_empty());
        assert!(parse_cookie(" ; ;").is_empty());
    }

    #[test]
    fn unquoting() {
        assert_eq!(unquote_cookie("\"a\\\"b\\\\c\""), "a\"b\\c");
        assert_eq!(unquote_cookie("\"\\101\\400\""), "A400");
        assert_eq!(unquote_cookie("\"caf\\351\""), "caf\u{e9}");
        assert_eq!(unquote_cookie("\"trailing\\\""), "trailing\\");
        assert_eq!(unquote_cookie("\"a\\\nb\""), "a\\\nb");
        assert_eq!(unquote_cookie("\"\u{e9}\\\u{e9}\""), "\u{e9}\u{e9}");
        assert_eq!(unquote_cookie("\""), "\"");
        assert_eq!(unquote_cookie("\"\""), "");
        assert_eq!(unquote_cookie("no\"quotes\""), "no\"quotes\"");
    }

    #[test]
    fn parse_is_linear_on_hostile_input() {
        // CVE-2024-7592 was quadratic on long runs of backslashes.
        let hostile = format!("a=\"{}\"", "\\".repeat(200_000));
        let c = parse_cookie(&hostile);
        assert_eq!(c["a"].len(), 100_000);
        let many = "x=1;".repeat(50_000);
        assert_eq!(parse_cookie(&many).len(), 1);
    }

    #[test]
    fn set_cookie_with_every_attribute() {
        let opts = CookieOptions {
            domain: Some("example.com".into()),
            path: Some("/app".into()),
            expires: Some(UNIX_EPOCH + Duration::from_secs(784_111_777)),
            max_age: Some(3600),
            httponly: true,
            secure: true,
            samesite: Some(SameSite::Strict),
        };
        assert_eq!(
            format_set_cookie("sid", "\"abc\"", &opts).unwrap(),
            "sid=\"abc\"; Domain=example.com; expires=Sun, 06 Nov 1994 08:49:37 GMT; \
             HttpOnly; Max-Age=3600; Path=/app; SameSite=Strict; Secure"
        );
        let bare = CookieOptions {
            path: None,
            ..Default::default()
        };
        assert_eq!(format_set_cookie("a", "", &bare).unwrap(), "a=");
        let delete = CookieOptions {
            max_age: Some(0),
            samesite: Some(SameSite::None),
            ..Default::default()
        };
        assert_eq!(
            format_set_cookie("a", "", &delete).unwrap(),
            "a=; Max-Age=0; Path=/; SameSite=None"
        );
    }

    #[test]
    fn signed_and_xsrf_values_are_legal() {
        let opts = CookieOptions::default();
        assert!(
            format_set_cookie("user", "2|1:0|10:1300000000|4:user|8:YWxpY2U=|0f", &opts).is_ok()
        );
        assert!(format_set_cookie("_xsrf", "2|0a0b0c0d|00ff|1300000000", &opts).is_ok());
    }

    #[test]
    fn injection_is_refused() {
        let opts = CookieOptions::default();
        for (name, value) in [
            ("a", "x\r\nSet-Cookie: evil=1"),
            ("a", "x; Domain=evil.example"),
            ("a", "has space"),
            ("a", "comma,"),
            ("a", "back\\slash"),
            ("a", "quote\"inside"),
            ("a", "\"unbalanced"),
            ("a", "caf\u{e9}"),
            ("a", "nul\0"),
            ("", "x"),
            ("a b", "x"),
            ("a=b", "x"),
            ("a;b", "x"),
            ("a\r\n", "x"),
        ] {
            assert!(
                format_set_cookie(name, value, &opts).is_err(),
                "{name:?}={value:?}"
            );
        }
        for bad in ["/a; Secure", "/a b", "/a\r\n", "", "/caf\u{e9}"] {
            let path = CookieOptions {
                path: Some(bad.into()),
                ..Default::default()
            };
            assert!(format_set_cookie("a", "b", &path).is_err(), "path {bad:?}");
            let domain = CookieOptions {
                domain: Some(bad.into()),
                ..Default::default()
            };
            assert!(
                format_set_cookie("a", "b", &domain).is_err(),
                "domain {bad:?}"
            );
        }
        let err = format_set_cookie("a", "b c", &opts).unwrap_err();
        assert_eq!(err.to_string(), "invalid cookie value");
    }
}
